/*
 * test_beam.c - beam search on the story models: width 1 is greedy
 * decoding; wider beams never return a lower total log-probability (length
 * penalty 0); n-best lists are sorted and distinct; each hypothesis's
 * log-probability equals the one recomputed here by decoding it.
 */
#include <math.h>

#include "fixtures.h"
#include "harness.h"
#include "strix.h"

#define NEW 24

static double log_softmax_at(const float *l, int nv, strix_token t)
{
    double mx = l[0], z = 0;
    for (int v = 1; v < nv; v++)
        mx = l[v] > mx ? l[v] : mx;
    for (int v = 0; v < nv; v++)
        z += exp((double)l[v] - mx);
    return (double)l[t] - mx - log(z);
}

/* Greedy tokens after the prompt, stopping at EOS/BOS; returns the count. */
static int greedy(const strix_model *m, strix_context *ctx, const strix_token *p, int n_p,
                  strix_token *out)
{
    strix_error err;
    strix_kv_seq_rm(ctx, -1, 0, -1);
    CHECK(strix_decode(ctx, p, NULL, n_p, NULL, &err) == STRIX_OK);
    const int nv = strix_vocab_size(m);
    int n = 0;
    while (n < NEW) {
        const float *l = strix_get_logits(ctx, -1);
        strix_token best = 0;
        for (int v = 1; v < nv; v++)
            best = l[v] > l[best] ? v : best;
        if (best == strix_token_eos(m) || best == strix_token_bos(m))
            break;
        out[n++] = best;
        CHECK(strix_decode(ctx, &best, NULL, 1, NULL, &err) == STRIX_OK);
    }
    return n;
}

/* The log-probability of tokens t after the prompt, plus the end token's if
 * finished, by decoding them here. */
static double rescore(const strix_model *m, strix_context *ctx, const strix_token *p, int n_p,
                      const struct strix_beam_hyp *h)
{
    strix_error err;
    strix_kv_seq_rm(ctx, -1, 0, -1);
    CHECK(strix_decode(ctx, p, NULL, n_p, NULL, &err) == STRIX_OK);
    const int nv = strix_vocab_size(m);
    double lp = 0;
    for (int i = 0; i <= h->n_tokens; i++) {
        const float *l = strix_get_logits(ctx, -1);
        if (i == h->n_tokens) {
            if (h->finished) /* the end: EOS or BOS, whichever the model preferred */
                lp += fmax(log_softmax_at(l, nv, strix_token_eos(m)),
                           log_softmax_at(l, nv, strix_token_bos(m)));
            break;
        }
        lp += log_softmax_at(l, nv, h->tokens[i]);
        CHECK(strix_decode(ctx, &h->tokens[i], NULL, 1, NULL, &err) == STRIX_OK);
    }
    return lp;
}

static void check_model(const char *name, strix_model *m)
{
    if (!m)
        return;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 256;
    cp.n_seq_max = 16;
    cp.n_threads = 2;
    strix_context *ctx;
    strix_error err;
    CHECK(strix_context_create(m, &cp, &ctx, &err) == STRIX_OK);
    const char *prompts[] = {"Once upon a time", "The cat", "Tom and Sue went to the"};
    for (int k = 0; k < 3; k++) {
        strix_token p[64], g[NEW];
        int n_p;
        CHECK(strix_tokenize(m, prompts[k], strlen(prompts[k]), 1, p, 64, &n_p, &err) == 0);
        const int n_g = greedy(m, ctx, p, n_p, g);
        struct strix_beam_params bp = strix_beam_default_params();
        bp.n_predict = NEW;
        bp.stop_at_bos = 1;
        double lp1 = 0;
        for (int w = 1; w <= 8; w *= 2) {
            bp.n_beams = w;
            bp.n_best = w;
            struct strix_beam_result r;
            int rc = strix_beam_search(m, ctx, p, n_p, &bp, &r, &err);
            CHECKF(rc == STRIX_OK && r.n >= 1, "%s: %s", name, err.msg);
            if (rc || r.n < 1)
                continue;
            if (w == 1) {
                CHECKF(r.hyps[0].n_tokens == n_g &&
                           memcmp(r.hyps[0].tokens, g, (size_t)n_g * sizeof *g) == 0,
                       "%s '%s': width 1 differs from greedy", name, prompts[k]);
                lp1 = r.hyps[0].logprob;
            }
            /* 1e-4: a batch of beams and one token at a time round differently */
            CHECKF(r.hyps[0].logprob >= lp1 - 1e-4, "%s '%s' width %d: %.6f < width 1's %.6f",
                   name, prompts[k], w, r.hyps[0].logprob, lp1);
            int sorted = 1, distinct = 1, scored = 1;
            for (int i = 0; i < r.n; i++) {
                if (i > 0)
                    sorted &= r.hyps[i].score <= r.hyps[i - 1].score;
                for (int j = 0; j < i; j++)
                    distinct &= r.hyps[i].n_tokens != r.hyps[j].n_tokens ||
                                memcmp(r.hyps[i].tokens, r.hyps[j].tokens,
                                       (size_t)r.hyps[i].n_tokens * sizeof(strix_token)) != 0;
                const double re = rescore(m, ctx, p, n_p, &r.hyps[i]);
                scored &= fabs(re - r.hyps[i].logprob) < 1e-3;
            }
            CHECKF(sorted && distinct && scored, "%s width %d: sorted %d distinct %d scored %d",
                   name, w, sorted, distinct, scored);
            if (k == 0) {
                char text[512];
                strix_detokenize(m, r.hyps[0].tokens, r.hyps[0].n_tokens, text, sizeof text);
                printf("%s width %d: log-prob %.4f (%d of %d finished): %s%s\n", name, w,
                       r.hyps[0].logprob, r.hyps[0].finished, r.n, prompts[k], text);
            }
            strix_beam_result_free(&r);
        }
        /* length penalty and early stopping run and keep the list sorted */
        bp.n_beams = 4;
        bp.n_best = 3;
        bp.length_penalty = 1.0f;
        bp.early_stopping = 1;
        struct strix_beam_result r;
        CHECK(strix_beam_search(m, ctx, p, n_p, &bp, &r, &err) == STRIX_OK && r.n >= 1);
        for (int i = 1; i < r.n; i++)
            CHECK(r.hyps[i].score <= r.hyps[i - 1].score);
        strix_beam_result_free(&r);
    }
    /* too many beams for the context's sequences */
    struct strix_beam_params bp = strix_beam_default_params();
    bp.n_beams = 9; /* needs 18 > 16 */
    strix_token p[4] = {1, 2, 3, 4};
    p[0] = strix_token_bos(m);
    struct strix_beam_result r;
    CHECK(strix_beam_search(m, ctx, p, 1, &bp, &r, &err) == STRIX_ERR_ARG && r.n == 0);
    bp.n_beams = 0;
    CHECK(strix_beam_search(m, ctx, p, 1, &bp, &r, &err) == STRIX_ERR_ARG);
    strix_context_free(ctx);
    strix_model_free(m);
}

int main(void)
{
    check_model("stories260K", load_fixture("stories260K.bin", "tok512.bin"));
    /* the F32 copy (fixtures.h): Q8_0 rounding of the activations would turn
     * the cache order of beams into differences above the rescoring bound */
    check_model("stories3M", load_fixture_f32("stories3M-q80.bin", "tok4096.bin"));
    TEST_MAIN_END();
}
