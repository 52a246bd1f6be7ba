/*
 * test_beam.c - beam search on the story models, held to what beam search
 * guarantees: width 1 is greedy decoding; n-best lists are sorted by score
 * and distinct; each hypothesis's log-probability equals the one recomputed
 * here by decoding it and summing log-softmax, and its score is that
 * log-probability over n^length_penalty; over a few steps the result is the
 * one a search written here from the algorithm's definition finds (each step
 * keeps the W best continuations of the live beams; an end token among them
 * finishes a hypothesis), each candidate's log-probability computed by
 * decoding its whole sequence afresh. At depth 1 that is exhaustive: the W
 * most probable tokens. (Wider beams may score lower: no such check.)
 */
#include <math.h>

#include "fixtures.h"
#include "harness.h"
#include "strix.h"

#define NEW 24
#define REF_DEPTH 3
#define REF_W 8

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

/* A hypothesis of the reference search. */
struct ref_hyp {
    strix_token t[REF_DEPTH];
    int n, finished;
    double lp, score;
};

/* log-softmax of the logits after prompt + t[0..n), decoded afresh in one batch */
static int ref_logsoftmax(const strix_model *m, strix_context *ctx, const strix_token *p, int n_p,
                          const strix_token *t, int n, double *ls)
{
    strix_token all[128];
    memcpy(all, p, (size_t)n_p * sizeof *p);
    if (n > 0)
        memcpy(all + n_p, t, (size_t)n * sizeof *t);
    strix_error err;
    strix_kv_seq_rm(ctx, -1, 0, -1);
    if (strix_decode(ctx, all, NULL, n_p + n, NULL, &err) != STRIX_OK)
        return -1;
    const float *l = strix_get_logits(ctx, -1);
    const int nv = strix_vocab_size(m);
    double mx = l[0], z = 0;
    for (int v = 1; v < nv; v++)
        mx = l[v] > mx ? l[v] : mx;
    for (int v = 0; v < nv; v++)
        z += exp((double)l[v] - mx);
    for (int v = 0; v < nv; v++)
        ls[v] = (double)l[v] - mx - log(z);
    return 0;
}

static double ref_score(double lp, int n, float alpha)
{
    return alpha == 0.0f || n <= 0 ? lp : lp / pow((double)n, (double)alpha);
}

/* Orders by score (best first). */
static int cmp_ref(const void *a, const void *b)
{
    const struct ref_hyp *x = a, *y = b;
    return (x->score < y->score) - (x->score > y->score);
}

/* Beam search of width W over `depth` steps, from its definition: every
 * continuation of every live beam is ranked by total log-probability (ties:
 * earlier beam, then lower token); going down that list, an end token
 * (EOS, BOS) within the first W finishes a hypothesis and other tokens live
 * on until W beams live; with length penalty 0, the search stops once W
 * hypotheses have finished and none scores below the best live beam. The
 * finished and the last live hypotheses, best score first: returns how many,
 * at most max(n_best, W) of them. */
static int ref_beam(const strix_model *m, strix_context *ctx, const strix_token *p, int n_p,
                    int W, int depth, float alpha, struct ref_hyp *out)
{
    const int nv = strix_vocab_size(m);
    double *ls = malloc((size_t)nv * sizeof *ls);
    struct ref_hyp live[REF_W], next[REF_W], *fin = out;
    struct ref_hyp *cand = malloc((size_t)REF_W * (size_t)nv * sizeof *cand);
    int n_live = 1, n_fin = 0;
    memset(live, 0, sizeof live);
    for (int step = 0; step < depth && ls && cand; step++) {
        int n_cand = 0;
        for (int k = 0; k < n_live; k++) {
            if (ref_logsoftmax(m, ctx, p, n_p, live[k].t, live[k].n, ls)) {
                n_live = 0;
                break;
            }
            for (int v = 0; v < nv; v++) {
                struct ref_hyp *c = &cand[n_cand++];
                *c = live[k];
                c->t[c->n++] = v;
                c->lp = live[k].lp + ls[v];
            }
        }
        /* stable: equal log-probabilities keep beam, then token order */
        for (int i = 1; i < n_cand; i++)
            for (int j = i; j > 0 && cand[j - 1].lp < cand[j].lp; j--) {
                struct ref_hyp tmp = cand[j];
                cand[j] = cand[j - 1];
                cand[j - 1] = tmp;
            }
        int n_next = 0;
        for (int i = 0; i < n_cand && n_next < W; i++) {
            const strix_token t = cand[i].t[cand[i].n - 1];
            if (t == strix_token_eos(m) || t == strix_token_bos(m)) {
                if (i < W) {
                    fin[n_fin] = cand[i];
                    fin[n_fin].n--; /* the end token is not listed */
                    fin[n_fin].finished = 1;
                    fin[n_fin].score = ref_score(cand[i].lp, cand[i].n, alpha);
                    n_fin++;
                }
                continue;
            }
            next[n_next++] = cand[i];
        }
        memcpy(live, next, sizeof next);
        n_live = n_next;
        qsort(fin, (size_t)n_fin, sizeof *fin, cmp_ref);
        if (n_live == 0)
            break;
        if (alpha <= 0 && n_fin >= W && live[0].lp <= fin[W - 1].score)
            break;
    }
    for (int k = 0; k < n_live; k++) {
        fin[n_fin] = live[k];
        fin[n_fin].score = ref_score(live[k].lp, live[k].n, alpha);
        n_fin++;
    }
    qsort(fin, (size_t)n_fin, sizeof *fin, cmp_ref);
    free(ls);
    free(cand);
    return n_fin < W ? n_fin : W;
}

/* The search against the reference for widths 1..REF_W over REF_DEPTH
 * steps, with and without a length penalty. */
static void check_reference(const char *name, const strix_model *m, strix_context *ctx,
                            const strix_token *p, int n_p)
{
    static struct ref_hyp want[REF_W * REF_DEPTH + REF_W];
    for (int W = 1; W <= REF_W; W *= 2)
        for (int pen = 0; pen <= 1; pen++) {
            struct strix_beam_params bp = strix_beam_default_params();
            bp.n_beams = W;
            bp.n_best = W;
            bp.n_predict = REF_DEPTH;
            bp.stop_at_bos = 1;
            bp.length_penalty = pen ? 1.0f : 0.0f;
            struct strix_beam_result r = {.struct_size = sizeof r};
            strix_error err;
            CHECKF(strix_beam_search(m, ctx, p, n_p, &bp, &r, &err) == STRIX_OK, "%s", err.msg);
            const int n_want = ref_beam(m, ctx, p, n_p, W, REF_DEPTH, bp.length_penalty, want);
            int same = r.n == n_want;
            for (int i = 0; same && i < r.n; i++)
                same = r.hyps[i].n_tokens == want[i].n && r.hyps[i].finished == want[i].finished &&
                       memcmp(r.hyps[i].tokens, want[i].t,
                              (size_t)want[i].n * sizeof(strix_token)) == 0 &&
                       fabs(r.hyps[i].logprob - want[i].lp) < 1e-4;
            CHECKF(same, "%s width %d, penalty %d: %d hypotheses differ from the reference's %d",
                   name, W, pen, r.n, n_want);
            strix_beam_result_free(&r);
        }
    /* depth 1 is exhaustive: the W most probable first tokens */
    const int nv = strix_vocab_size(m);
    double *ls = malloc((size_t)nv * sizeof *ls);
    struct strix_beam_params bp = strix_beam_default_params();
    bp.n_beams = bp.n_best = REF_W;
    bp.n_predict = 1;
    bp.stop_at_bos = 1;
    struct strix_beam_result r = {.struct_size = sizeof r};
    strix_error err;
    if (ls && ref_logsoftmax(m, ctx, p, n_p, NULL, 0, ls) == 0 &&
        strix_beam_search(m, ctx, p, n_p, &bp, &r, &err) == STRIX_OK) {
        int ok = r.n == REF_W;
        for (int i = 0; ok && i < r.n; i++) {
            const strix_token t = r.hyps[i].n_tokens ? r.hyps[i].tokens[0] : -1;
            int above = 0; /* tokens more probable than this hypothesis */
            for (int v = 0; v < nv; v++)
                above += ls[v] > r.hyps[i].logprob + 1e-9;
            ok = above == i && (t < 0 || fabs(ls[t] - r.hyps[i].logprob) < 1e-4);
        }
        CHECKF(ok, "%s: depth 1 is not the %d most probable tokens", name, REF_W);
        strix_beam_result_free(&r);
    }
    free(ls);
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
        for (int w = 1; w <= 8; w *= 2) {
            bp.n_beams = w;
            bp.n_best = w;
            struct strix_beam_result r = {.struct_size = sizeof r};
            int rc = strix_beam_search(m, ctx, p, n_p, &bp, &r, &err);
            CHECKF(rc == STRIX_OK && r.n >= 1, "%s: %s", name, err.msg);
            if (rc || r.n < 1)
                continue;
            if (w == 1) {
                CHECKF(r.hyps[0].n_tokens == n_g &&
                           memcmp(r.hyps[0].tokens, g, (size_t)n_g * sizeof *g) == 0,
                       "%s '%s': width 1 differs from greedy", name, prompts[k]);
            }
            int sorted = 1, distinct = 1, scored = 1;
            for (int i = 0; i < r.n; i++) {
                if (i > 0)
                    sorted &= r.hyps[i].score <= r.hyps[i - 1].score;
                for (int j = 0; j < i; j++)
                    distinct &= r.hyps[i].n_tokens != r.hyps[j].n_tokens ||
                                memcmp(r.hyps[i].tokens, r.hyps[j].tokens,
                                       (size_t)r.hyps[i].n_tokens * sizeof(strix_token)) != 0;
                const double re = rescore(m, ctx, p, n_p, &r.hyps[i]);
                scored &= fabs(re - r.hyps[i].logprob) < 1e-3 &&
                          r.hyps[i].score == r.hyps[i].logprob; /* penalty 0 */
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
        /* length penalty 1 and early stopping: sorted, and each score is the
         * recomputed log-probability over n, the end token counted */
        bp.n_beams = 4;
        bp.n_best = 3;
        bp.length_penalty = 1.0f;
        bp.early_stopping = 1;
        struct strix_beam_result r = {.struct_size = sizeof r};
        CHECK(strix_beam_search(m, ctx, p, n_p, &bp, &r, &err) == STRIX_OK && r.n >= 1);
        for (int i = 0; i < r.n; i++) {
            CHECK(i == 0 || r.hyps[i].score <= r.hyps[i - 1].score);
            const double re = rescore(m, ctx, p, n_p, &r.hyps[i]);
            const int len = r.hyps[i].n_tokens + r.hyps[i].finished;
            CHECKF(fabs(r.hyps[i].score - re / len) < 1e-4, "%s: score %.6f, recomputed %.6f / %d",
                   name, r.hyps[i].score, re, len);
        }
        strix_beam_result_free(&r);
        check_reference(name, m, ctx, p, n_p);
    }
    /* too many beams for the context's sequences */
    struct strix_beam_params bp = strix_beam_default_params();
    bp.n_beams = 9; /* needs 18 > 16 */
    strix_token p[4] = {1, 2, 3, 4};
    p[0] = strix_token_bos(m);
    struct strix_beam_result r = {.struct_size = sizeof r};
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
