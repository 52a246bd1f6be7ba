/*
 * test_gen_robust.c - generation on models that misbehave, through the whole
 * stack (the sampler's own tests check the same on hand-made logits):
 *  - NaN logits (a broken fine-tune, an overflow): a random-weight model with
 *    the output rows of some tokens set to NaN. Sampled generation (the
 *    default chain, greedy, typical-p, mirostat) and beam search must run,
 *    never pick a NaN token, and report finite log-probabilities.
 *  - A token whose text is longer than any fixed buffer (a user-defined
 *    piece of 1000 bytes): generation must stream all of it.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>

#include <unistd.h>

#include "fixtures.h"
#include "format/gguf.h"
#include "harness.h"
#include "model/model.h"
#include "strix.h"
#include "strix_dev.h"

static int is_nan_token(strix_token t)
{
    return t % 7 == 3 || t == 2; /* EOS too, so that generation runs to the budget */
}

struct seen {
    int n, bad;
};

static int on_token(void *user, const char *text, size_t n, strix_token tok)
{
    (void)text;
    (void)n;
    struct seen *s = user;
    if (tok >= 0) {
        s->n++;
        s->bad += is_nan_token(tok);
    }
    return 0;
}

struct text {
    char *s;
    size_t n;
};

static int on_text(void *user, const char *text, size_t n, strix_token tok)
{
    (void)tok;
    struct text *t = user;
    char *p = realloc(t->s, t->n + n + 1);
    if (!p)
        return 1;
    memcpy(p + t->n, text, n);
    t->s = p;
    t->n += n;
    t->s[t->n] = '\0';
    return 0;
}

/* The stories vocabulary with token LONG_ID made a user-defined piece of
 * LONG_LEN bytes, written as a vocabulary-only GGUF at path. */
enum { LONG_ID = 300, LONG_LEN = 1000 };

static int write_long_vocab(const char *path, char *piece)
{
    size_t len = 0;
    uint8_t *buf = (uint8_t *)test_read_file(test_path("stories260K-ref.gguf"), &len);
    gguf *g = NULL;
    strix_error err;
    int rc = -1;
    if (!buf || gguf_parse(buf, len, &g, &err) != STRIX_OK) {
        free(buf);
        return -1;
    }
    const struct gguf_kv *kt = gguf_find_kv(g, "tokenizer.ggml.tokens"),
                         *ks = gguf_find_kv(g, "tokenizer.ggml.scores"),
                         *ky = gguf_find_kv(g, "tokenizer.ggml.token_type");
    const uint64_t n = kt ? kt->n : 0;
    char **toks = calloc(n ? n : 1, sizeof *toks);
    float *scores = malloc((n ? n : 1) * sizeof *scores);
    int32_t *types = malloc((n ? n : 1) * sizeof *types);
    gguf_writer *w = gguf_writer_create();
    if (kt && ks && ky && ks->n == n && ky->n == n && n > LONG_ID && toks && scores && types && w) {
        for (uint64_t i = 0; i < n; i++) {
            toks[i] = strndup(kt->arr_strs[i].ptr, kt->arr_strs[i].len);
            scores[i] = gguf_arr_f32(ks, i);
            types[i] = (int32_t)gguf_arr_i64(ky, i);
        }
        for (int i = 0; i < LONG_LEN; i++)
            piece[i] = (char)('a' + i % 26);
        piece[LONG_LEN] = '\0';
        free(toks[LONG_ID]);
        toks[LONG_ID] = strdup(piece);
        types[LONG_ID] = STRIX_TOKEN_USER_DEFINED;
        rc = gguf_writer_add_str(w, "general.architecture", "llama") ||
             gguf_writer_add_str(w, "tokenizer.ggml.model", "llama") ||
             gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, n) ||
             gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", scores, n) ||
             gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, n) ||
             gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1) ||
             gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2) ||
             gguf_writer_write(w, path, &err);
        CHECKF(rc == 0, "writing the vocabulary: %s", err.msg);
    }
    for (uint64_t i = 0; toks && i < n; i++)
        free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    gguf_writer_free(w);
    gguf_free(g);
    free(buf);
    return rc;
}

/* A token longer than the generation loop's piece buffer comes out whole. */
static void test_long_piece(void)
{
    char path[512], piece[LONG_LEN + 1];
    const char *d = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/strix_test_longpiece_%ld.gguf", d && *d ? d : "/tmp",
             (long)getpid());
    const int wrote = write_long_vocab(path, piece);
    CHECK(wrote == 0);
    if (wrote) {
        remove(path);
        return;
    }
    struct strix_synth_params sp = strix_synth_default_params();
    sp.n_embd = 16, sp.n_ff = 32, sp.n_layer = 1, sp.n_head = 2, sp.n_head_kv = 1, sp.seed = 2;
    strix_model *m = NULL;
    strix_error err;
    CHECKF(strix_model_synth(&sp, path, &m, &err) == STRIX_OK, "%s", err.msg);
    remove(path);
    if (!m)
        return;
    CHECK(strcmp(strix_token_piece(m, LONG_ID), piece) == 0);
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 1;
    strix_context *ctx = NULL;
    CHECK(strix_context_create(m, &cp, &ctx, &err) == STRIX_OK);
    const strix_token prompt[2] = {1, 20};
    struct strix_sampler_params p = strix_sampler_default_params();
    p.temperature = 0.0f;
    const struct strix_logit_bias force[1] = {{LONG_ID, 1000.0f}};
    p.logit_bias = force;
    p.n_logit_bias = 1;
    strix_sampler *s = NULL;
    CHECK(strix_sampler_create(&p, strix_vocab_size(m), &s, &err) == STRIX_OK);
    struct strix_gen_params gp = strix_gen_default_params();
    gp.n_predict = 3;
    struct text t = {NULL, 0};
    if (ctx && s && strix_decode(ctx, prompt, NULL, 2, NULL, &err) == STRIX_OK) {
        const int rc = strix_generate(m, ctx, s, prompt[1], &gp, on_text, &t, NULL, &err);
        CHECKF(rc == STRIX_OK && t.n == 3 * LONG_LEN, "rc %d: %zu bytes of text for 3 tokens of %d",
               rc, t.n, LONG_LEN);
        int same = t.s != NULL;
        for (int k = 0; same && k < 3; k++)
            same &= memcmp(t.s + k * LONG_LEN, piece, LONG_LEN) == 0;
        CHECK(same);
    }
    free(t.s);
    strix_sampler_free(s);
    strix_context_free(ctx);
    strix_model_free(m);
}

int main(void)
{
    test_long_piece();
    struct strix_synth_params sp = strix_synth_default_params();
    sp.n_embd = 32, sp.n_ff = 64, sp.n_layer = 1, sp.n_head = 2, sp.n_head_kv = 1, sp.seed = 5;
    strix_model *m = synth_fixture(&sp);
    strix_error err;
    if (!m)
        TEST_MAIN_END();
    const int nv = strix_vocab_size(m);
    /* NaN rows in the output matrix (F32 in a synthesized model, not packed) */
    CHECK(m->output.type == 0 /* F32 */ && m->output.packed == NULL);
    for (strix_token t = 0; t < nv; t++)
        if (is_nan_token(t)) {
            float *row = (float *)((char *)m->output.data + (size_t)t * m->output.row_bytes);
            for (int64_t j = 0; j < m->output.ne[0]; j++)
                row[j] = NAN;
        }
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 64;
    cp.n_seq_max = 8;
    cp.n_threads = 1;
    strix_context *ctx = NULL;
    CHECK(strix_context_create(m, &cp, &ctx, &err) == STRIX_OK);
    const strix_token prompt[3] = {1, 20, 30}; /* none with a NaN row (tied embeddings) */
    for (int cfg = 0; ctx && cfg < 4; cfg++) {
        strix_kv_seq_rm(ctx, -1, 0, -1);
        CHECK(strix_decode(ctx, prompt, NULL, 3, NULL, &err) == STRIX_OK);
        const float *l = strix_get_logits(ctx, -1);
        CHECK(l && isnan(l[3]) && isnan(l[2]) && !isnan(l[4]));
        struct strix_sampler_params p = strix_sampler_default_params();
        p.seed = 11 + (uint64_t)cfg;
        p.n_probs = 2;
        if (cfg == 1)
            p.temperature = 0.0f;
        if (cfg == 2)
            p.typical_p = 0.9f, p.top_k = 0;
        if (cfg == 3)
            p.mirostat = 2;
        strix_sampler *s = NULL;
        CHECK(strix_sampler_create(&p, nv, &s, &err) == STRIX_OK);
        struct strix_gen_params gp = strix_gen_default_params();
        gp.n_predict = 30;
        struct seen seen = {0, 0};
        struct strix_gen_result res = {.struct_size = sizeof res};
        const int rc = strix_generate(m, ctx, s, prompt[2], &gp, on_token, &seen, &res, &err);
        struct strix_token_prob ch;
        strix_sampler_last_probs(s, &ch, NULL, 0);
        CHECKF(rc == STRIX_OK && seen.n == 30 && seen.bad == 0 && isfinite(ch.logprob),
               "config %d: rc %d, %d tokens, %d with NaN logits, logprob %g", cfg, rc, seen.n,
               seen.bad, (double)ch.logprob);
        strix_sampler_free(s);
    }
    /* beam search */
    for (int w = 1; ctx && w <= 4; w *= 2) {
        struct strix_beam_params bp = strix_beam_default_params();
        bp.n_beams = w;
        bp.n_best = w;
        bp.n_predict = 10;
        struct strix_beam_result r = {.struct_size = sizeof r};
        const int rc = strix_beam_search(m, ctx, prompt, 3, &bp, &r, &err);
        int ok = rc == STRIX_OK && r.n >= 1;
        for (int i = 0; ok && i < r.n; i++) {
            ok &= isfinite(r.hyps[i].logprob) && isfinite(r.hyps[i].score) &&
                  r.hyps[i].n_tokens == 10;
            for (int j = 0; j < r.hyps[i].n_tokens; j++)
                ok &= !is_nan_token(r.hyps[i].tokens[j]);
        }
        CHECKF(ok, "beams %d: rc %d, %d hypotheses, first logprob %g", w, rc, r.n,
               r.n > 0 ? r.hyps[0].logprob : 0.0);
        if (rc == STRIX_OK)
            strix_beam_result_free(&r);
    }
    strix_context_free(ctx);
    strix_model_free(m);
    TEST_MAIN_END();
}
