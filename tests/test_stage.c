/*
 * test_stage.c - pipeline stages without MPI: a model is split into two and
 * three stages (strix_model_params.layer_first/end) inside one process, the
 * hidden states handed from stage to stage with strix_decode_hidden, and the
 * logits compared bit for bit with the whole model's (which test_logits.c and
 * test_arch.c check against llama.cpp): the bundled model, a llama2.c
 * checkpoint and every architecture's synthetic model, batches split into
 * several forward passes, then tokens one at a time, then a rollback.
 * Also: the hidden state leaving a stage equals the whole model's
 * observation hook at that block; each stage's weight bytes equal the sum
 * over the tensors its blocks own (by name, from the tensor list); and
 * misuse (a range out of bounds, strix_decode_batch on a stage, a middle
 * stage without its input) is an error, never a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage_fixture.h"

#define N_PROMPT 13
#define N_STEPS 4
#define N_CTX 32
#define MAX_STAGES STAGE_MAX

/* The hook's copy of one block's output (the whole model's residual stream). */
struct grab {
    int layer, n_embd;
    float *rows; /* (N_PROMPT, n_embd) */
    int n_seen;
};

static void grab_hook(void *user, const struct strix_layer_obs *o)
{
    struct grab *g = user;
    if (o->layer != g->layer || o->i_first + o->n_tokens > N_PROMPT)
        return;
    memcpy(g->rows + (size_t)o->i_first * (size_t)g->n_embd, o->out,
           (size_t)o->n_tokens * (size_t)g->n_embd * sizeof(float));
    g->n_seen += o->n_tokens;
}

/* Logits of the schedule every test uses: the prompt in one batch (all its
 * logits, n_batch 5: three passes), N_STEPS tokens one at a time, then a
 * rollback to position 7 and one token again. `decode` runs one batch and
 * returns the logits of its tokens. */
typedef int (*decode_fn)(void *self, const strix_batch *b, float *logits);

static int run_schedule(decode_fn decode, void *self, int nv, const strix_token *ids, float *out)
{
    int8_t want[N_PROMPT];
    memset(want, 1, sizeof want);
    int32_t pos[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++)
        pos[i] = i;
    const strix_batch b = {N_PROMPT, ids, pos, NULL, want};
    if (!decode(self, &b, out))
        return 0;
    float *o = out + (size_t)N_PROMPT * (size_t)nv;
    for (int s = 0; s < N_STEPS; s++, o += nv) {
        const int32_t p = N_PROMPT + s;
        const strix_batch b1 = {1, &ids[s], &p, NULL, NULL};
        if (!decode(self, &b1, o))
            return 0;
    }
    /* rollback by position: the batch replaces what sequence 0 held from 7 on */
    const int32_t p = 7;
    const strix_batch b2 = {1, &ids[N_PROMPT - 1], &p, NULL, NULL};
    return decode(self, &b2, o);
}
#define N_ROWS (N_PROMPT + N_STEPS + 1)

struct pipe {
    int n_stages, nv, n_embd;
    strix_context *ctx[MAX_STAGES];
    float *h[2]; /* (N_PROMPT, n_embd) hidden states between stages */
};

static int pipe_decode(void *self, const strix_batch *b, float *logits)
{
    struct pipe *p = self;
    strix_error err;
    for (int s = 0; s < p->n_stages; s++) {
        const int last = s == p->n_stages - 1;
        /* stage s reads h[(s - 1) % 2] and writes h[s % 2] */
        const float *in = s == 0 ? NULL : p->h[(s + 1) % 2];
        float *out = last ? NULL : p->h[s % 2];
        const strix_batch bs = {b->n, s == 0 ? b->token : NULL, b->pos, b->seq, b->logits};
        if (strix_decode_hidden(p->ctx[s], &bs, in, out, &err) != STRIX_OK) {
            fprintf(stderr, "stage %d: %s\n", s, err.msg);
            return 0;
        }
    }
    for (int i = 0; i < b->n; i++) {
        const float *l = strix_get_logits(p->ctx[p->n_stages - 1], b->n == 1 ? -1 : i);
        if (!l)
            return 0;
        memcpy(logits + (size_t)i * (size_t)p->nv, l, (size_t)p->nv * sizeof(float));
    }
    return 1;
}

/* The bytes of the weights a stage [first, end) of an n_layer model reads,
 * from the tensor names: blk.N.* for N in range, token_embd and position
 * weights on the first stage, output_norm and output on the last (and
 * token_embd there when the output is tied). */
static size_t stage_bytes_by_name(const strix_model *m, int first, int end, int n_layer, int tied)
{
    size_t sum = 0;
    for (int i = 0; i < strix_model_n_tensors(m); i++) {
        struct strix_tensor_info t = {.struct_size = sizeof t};
        strix_model_tensor_info(m, i, &t);
        int il;
        if (sscanf(t.name, "blk.%d.", &il) == 1) {
            sum += il >= first && il < end ? t.nbytes : 0;
        } else if (strncmp(t.name, "output", 6) == 0) {
            sum += end == n_layer ? t.nbytes : 0;
        } else if (strcmp(t.name, "token_embd.weight") == 0) {
            sum += first == 0 || (end == n_layer && tied) ? t.nbytes : 0;
        } else {
            sum += first == 0 ? t.nbytes : 0; /* position_embd, token_embd_norm */
        }
    }
    return sum;
}

static void check_model(const char *name, const char *path, const char *vocab)
{
    strix_error err;
    strix_model *whole = stage_load(path, vocab, 0, 0, &err);
    CHECKF(whole != NULL, "%s: %s", name, err.msg);
    if (!whole)
        return;
    struct strix_model_info info = {.struct_size = sizeof info};
    strix_model_get_info(whole, &info);
    const int nv = strix_vocab_size(whole), L = info.n_layer, embd = info.n_embd;
    CHECK(info.layer_first == 0 && info.layer_end == L &&
          info.stage_weight_bytes == info.weight_bytes);
    strix_token ids[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++)
        ids[i] = (strix_token)((1 + 37 * i) % nv);

    /* the whole model: logits, and the residual stream after every block */
    float *ref = malloc((size_t)N_ROWS * (size_t)nv * sizeof(float));
    float *hidden = malloc((size_t)L * N_PROMPT * (size_t)embd * sizeof(float));
    struct grab g[1] = {{0, embd, NULL, 0}};
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = N_CTX;
    cp.n_batch = 5;
    cp.n_threads = 1;
    strix_context *wc = fixture_context_with(whole, &cp);
    /* the rows of every prompt logit: run_schedule's decode keeps them */
    int ok = wc != NULL;
    {
        int8_t want[N_PROMPT];
        memset(want, 1, sizeof want);
        int32_t pos[N_PROMPT];
        for (int i = 0; i < N_PROMPT; i++)
            pos[i] = i;
        const strix_batch b = {N_PROMPT, ids, pos, NULL, want};
        ok = ok && strix_decode_batch(wc, &b, &err) == STRIX_OK;
        for (int i = 0; ok && i < N_PROMPT; i++)
            memcpy(ref + (size_t)i * (size_t)nv, strix_get_logits(wc, i), (size_t)nv * 4);
        for (int s = 0; ok && s <= N_STEPS; s++) {
            const int32_t p = s < N_STEPS ? N_PROMPT + s : 7;
            const strix_token t = s < N_STEPS ? ids[s] : ids[N_PROMPT - 1];
            ok = strix_decode(wc, &t, &p, 1, NULL, &err) == STRIX_OK;
            if (ok)
                memcpy(ref + (size_t)(N_PROMPT + s) * (size_t)nv, strix_get_logits(wc, -1),
                       (size_t)nv * 4);
        }
    }
    CHECKF(ok, "%s: whole model: %s", name, err.msg);
    strix_context_free(wc);
    /* each block's output, from the observation hook of a fresh context */
    for (int l = 0; ok && l < L; l++) {
        g->layer = l;
        g->rows = hidden + (size_t)l * N_PROMPT * (size_t)embd;
        g->n_seen = 0;
        struct strix_context_params hp = cp;
        hp.on_layer = grab_hook;
        hp.on_layer_user = g;
        strix_context *hc = fixture_context_with(whole, &hp);
        ok = hc && strix_decode(hc, ids, NULL, N_PROMPT, NULL, &err) == STRIX_OK &&
             g->n_seen == N_PROMPT;
        strix_context_free(hc);
    }
    CHECKF(ok, "%s: hook: %s", name, err.msg);

    /* two and three stages (as many as the layers allow) */
    for (int n_st = 2; ok && n_st <= MAX_STAGES && n_st <= L; n_st++) {
        struct stages st;
        int sok = stages_load(&st, name, path, vocab, L, n_st, &cp);
        const int *cut = st.cut;
        struct pipe p = {n_st, nv, embd, {NULL}, {NULL, NULL}};
        for (int s = 0; s < n_st; s++)
            p.ctx[s] = st.ctx[s];
        float *h0 = malloc((size_t)N_PROMPT * (size_t)embd * sizeof(float));
        float *h1 = malloc((size_t)N_PROMPT * (size_t)embd * sizeof(float));
        p.h[0] = h0;
        p.h[1] = h1;
        for (int s = 0; s < n_st && sok; s++) {
            struct strix_model_info si = {.struct_size = sizeof si};
            strix_model_get_info(st.model[s], &si);
            CHECKF(si.layer_first == cut[s] && si.layer_end == cut[s + 1] &&
                       si.stage_weight_bytes == stage_bytes_by_name(st.model[s], cut[s],
                                                                    cut[s + 1], L, si.tied_output),
                   "%s: stage %d info", name, s);
        }
        if (sok) {
            /* the first stage's output is the whole model's block cut[1] - 1 */
            const strix_batch b = {N_PROMPT, ids, NULL, NULL, NULL};
            float *h = malloc((size_t)N_PROMPT * (size_t)embd * sizeof(float));
            CHECK(strix_decode_hidden(p.ctx[0], &b, NULL, h, &err) == STRIX_OK);
            CHECKF(memcmp(h, hidden + (size_t)(cut[1] - 1) * N_PROMPT * (size_t)embd,
                          (size_t)N_PROMPT * (size_t)embd * 4) == 0,
                   "%s: %d stages: hidden state after block %d differs from the hook's", name,
                   n_st, cut[1] - 1);
            free(h);
            CHECK(strix_kv_seq_rm(p.ctx[0], -1, 0, -1) == STRIX_OK);
            float *got = malloc((size_t)N_ROWS * (size_t)nv * sizeof(float));
            sok = run_schedule(pipe_decode, &p, nv, ids, got);
            CHECKF(sok, "%s: %d stages: decode failed", name, n_st);
            int n_diff = 0;
            for (int r = 0; sok && r < N_ROWS; r++)
                n_diff += memcmp(got + (size_t)r * (size_t)nv, ref + (size_t)r * (size_t)nv,
                                 (size_t)nv * 4) != 0;
            CHECKF(sok && n_diff == 0, "%s: %d stages: %d of %d logit rows differ", name, n_st,
                   n_diff, N_ROWS);
            free(got);
            /* misuse */
            const strix_batch b1 = {1, ids, NULL, NULL, NULL};
            CHECK(strix_decode_batch(p.ctx[0], &b1, &err) == STRIX_ERR_ARG);
            CHECK(strix_decode_hidden(p.ctx[1], &b1, NULL, h0, &err) == STRIX_ERR_ARG);
            CHECK(strix_decode_hidden(p.ctx[0], &b1, NULL, NULL, &err) == STRIX_ERR_ARG);
            CHECK(strix_decode_hidden(p.ctx[1], &b1, h0, h0 + 1, &err) == STRIX_ERR_ARG);
        }
        stages_free(&st);
        free(h0);
        free(h1);
    }
    /* ranges out of bounds */
    CHECK(stage_load(path, vocab, 0, L + 1, &err) == NULL && err.code == STRIX_ERR_ARG);
    CHECK(stage_load(path, vocab, 2, 1, &err) == NULL && err.code == STRIX_ERR_ARG);
    CHECK(stage_load(path, vocab, -1, 1, &err) == NULL && err.code == STRIX_ERR_ARG);
    printf("%s: %d layers split into 2..%d stages: logits bit-identical\n", name, L,
           L < MAX_STAGES ? L : MAX_STAGES);
    free(ref);
    free(hidden);
    strix_model_free(whole);
}

int main(void)
{
    char path[4096], vocab[4096];
    snprintf(path, sizeof path, "%s", test_path("stories260K-ref.gguf"));
    check_model("stories260K-ref.gguf", path, NULL);
    snprintf(path, sizeof path, "%s", test_path("stories260K.bin"));
    snprintf(vocab, sizeof vocab, "%s", test_path("tok512.bin"));
    check_model("stories260K.bin", path, vocab);
    static const char *const archs[] = {"bloom",  "falcon",     "gemma",     "gemma2", "gpt2",
                                        "llama-linear", "llama-yarn", "mixtral", "mpt",
                                        "phi3",   "qwen2",      "qwen2moe",  "starcoder", "retnet",
                                        "peer",   "kan"};
    /* (yoco is refused as stages: its cross-decoder reads the cache the
     * self-decoder's output makes; test_retnet checks the refusal) */
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "arch/%s.gguf", archs[i]);
        snprintf(path, sizeof path, "%s", test_path(name));
        check_model(name, path, NULL);
    }
    TEST_MAIN_END();
}
