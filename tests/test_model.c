/*
 * test_model.c - end-to-end model tests against references strix did not
 * write: greedy text from llama2.c's run.c for three models, loaded from the
 * llama2.c files, from strix's own GGUF conversions and from llama.cpp's
 * conversion, at 1 and 2 threads. Then the properties of decoding: batched ==
 * one-by-one, KV rollback reproduces logits, seeds reproduce text, the NeoX
 * rope layout on permuted weights equals the interleaved one.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "fixtures.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "format/gguf.h"
#include "model/arch.h"
#include "model/model.h"
#include "runtime/context.h"
#include "quant/dtype.h"
#include "strix.h"
#include "strix_dev.h"

/* Greedy generation as llama2.c's run.c does it: n_steps positions in all,
 * BOS and prompt included, each position printing the token that follows it;
 * stops at BOS. Returns malloc'd text. */
static char *generate(const strix_model *m, const char *prompt, int n_steps, int n_threads)
{
    strix_token ids[512];
    int n_prompt = 0;
    strix_error err;
    if (strix_tokenize(m, prompt, strlen(prompt), 1, ids, 512, &n_prompt, &err)) {
        fprintf(stderr, "tokenize: %s\n", err.msg);
        return NULL;
    }
    struct strix_context_params cp = strix_context_default_params();
    cp.n_threads = n_threads;
    cp.n_ctx = n_steps + 2;
    strix_context *ctx;
    if (strix_context_create(m, &cp, &ctx, &err)) {
        fprintf(stderr, "context: %s\n", err.msg);
        return NULL;
    }
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0;
    strix_sampler *s;
    strix_sampler_create(&sp, strix_vocab_size(m), &s, &err);
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    len = (size_t)snprintf(out, cap, "%s", prompt);
    int rc = strix_decode(ctx, ids, NULL, n_prompt, NULL, &err);
    strix_token prev = ids[n_prompt - 1];
    for (int pos = n_prompt; rc == STRIX_OK && pos <= n_steps; pos++) {
        strix_token t = strix_sampler_sample(s, strix_get_logits(ctx, -1));
        if (t == strix_token_bos(m))
            break;
        char piece[128];
        int n = strix_token_to_text(m, prev, t, piece, sizeof piece);
        if (n > 0 && len + (size_t)n < cap) {
            memcpy(out + len, piece, (size_t)n);
            len += (size_t)n;
        }
        prev = t;
        rc = strix_decode(ctx, &t, NULL, 1, NULL, &err);
    }
    CHECKF(rc == STRIX_OK, "decode: %s", err.msg);
    out[len] = '\0';
    strix_sampler_free(s);
    strix_context_free(ctx);
    return out;
}

static void check_golden(const strix_model *m, const char *what, const char *prompt, int n_steps,
                         const char *golden_file)
{
    char *golden = read_fixture(golden_file, NULL);
    if (!golden || !m)
        return;
    size_t gl = strlen(golden);
    if (gl && golden[gl - 1] == '\n') /* run.c ends with a newline of its own */
        golden[gl - 1] = '\0';
    for (int nt = 1; nt <= 2; nt++) {
        char *text = generate(m, prompt, n_steps, nt);
        int same = text && strcmp(text, golden) == 0;
        CHECKF(same, "%s, %d thread(s): greedy text differs from %s\n got: %s\nwant: %s", what, nt,
               golden_file, text ? text : "(null)", golden);
        free(text);
    }
    free(golden);
}

struct golden_case {
    const char *model, *vocab, *prompt, *file;
    int n_steps;
};

static const struct golden_case cases[] = {
    {"stories260K.bin", "tok512.bin", "Once upon a time", "stories260K-once.txt", 256},
    {"stories260K.bin", "tok512.bin", "Zoo", "stories260K-zoo.txt", 60},
    {"stories3M-q80.bin", "tok4096.bin", "Once upon a time", "stories3M-once.txt", 200},
    {"shakespeare_q80.bin", "byte_tokenizer.bin", "ROMEO:", "shakespeare-romeo.txt", 200},
};

static void test_golden(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct golden_case *g = &cases[i];
        /* run.c computed with the exact weights: int8 checkpoints are
         * checked through their F32 copy (fixtures.h) */
        const int int8 = strstr(g->model, "q80") != NULL;
        strix_model *m = int8 ? load_fixture_f32(g->model, g->vocab) : load_fixture(g->model, g->vocab);
        char what[256];
        snprintf(what, sizeof what, "%s (llama2.c file%s)", g->model, int8 ? ", F32 copy" : "");
        check_golden(m, what, g->prompt, g->n_steps, g->file);
        /* strix's own GGUF conversion must give the same text */
        char tmp[4096];
        test_tmpfile(tmp, sizeof tmp, "model");
        strix_error err;
        int rc = m ? strix_model_save_gguf(m, tmp, NULL, &err) : -1;
        CHECKF(rc == STRIX_OK, "save %s: %s", g->model, err.msg);
        strix_model *m2 = NULL;
        rc = strix_model_load(tmp, NULL, &m2, &err);
        CHECKF(rc == STRIX_OK, "reload %s: %s", g->model, err.msg);
        snprintf(what, sizeof what, "%s (strix GGUF)", g->model);
        check_golden(m2, what, g->prompt, g->n_steps, g->file);
        unlink(tmp);
        strix_model_free(m2);
        strix_model_free(m);
    }
    /* llama.cpp's own conversion of stories260K */
    strix_model *ref = load_fixture("stories260K-ref.gguf", NULL);
    check_golden(ref, "stories260K-ref.gguf (llama.cpp GGUF)", "Once upon a time", 256,
                 "stories260K-once.txt");
    strix_model_free(ref);
}

static void test_batch_and_rollback(void)
{
    strix_model *m = load_fixture("stories3M-q80.bin", "tok4096.bin");
    if (!m)
        return;
    const int nv = strix_vocab_size(m);
    strix_token ids[40];
    int n = 0;
    const char *text = "Once upon a time, there was a little dog named Max. He liked to run.";
    CHECK(strix_tokenize(m, text, strlen(text), 1, ids, 40, &n, NULL) == STRIX_OK);
    float *a = fixture_logits(m, ids, n, 1, 64, 1);
    float *b = fixture_logits(m, ids, n, 0, 64, 1);
    float *c = fixture_logits(m, ids, n, 1, 64, 2);
    CHECK(a && b && c);
    if (a && b && c) {
        CHECKF(memcmp(a, b, (size_t)n * (size_t)nv * 4) == 0,
               "batched and one-by-one logits differ");
        CHECKF(memcmp(a, c, (size_t)n * (size_t)nv * 4) == 0, "1 and 2 threads differ");
    }

    /* roll back: decode all, truncate to 7, decode the rest again */
    strix_context *ctx = fixture_context(m, 64, 0, 0);
    strix_error err;
    CHECK(strix_decode(ctx, ids, NULL, n, NULL, &err) == STRIX_OK);
    CHECK(strix_kv_len(ctx) == n);
    CHECK(strix_kv_truncate(ctx, 7, &err) == STRIX_OK);
    CHECK(strix_kv_len(ctx) == 7);
    int8_t want[40] = {0};
    for (int i = 0; i < n - 7; i++)
        want[i] = 1;
    CHECK(strix_decode(ctx, ids + 7, NULL, n - 7, want, &err) == STRIX_OK);
    int same = 1;
    for (int i = 7; i < n && a; i++)
        same &=
            memcmp(strix_get_logits(ctx, i - 7), a + (size_t)i * (size_t)nv, (size_t)nv * 4) == 0;
    CHECKF(same, "logits after rollback differ");
    /* an explicit position below the cache length overwrites from there */
    int32_t pos[1] = {3};
    CHECK(strix_decode(ctx, ids + 3, pos, 1, NULL, &err) == STRIX_OK);
    CHECK(strix_kv_len(ctx) == 4);
    CHECK(a && memcmp(strix_get_logits(ctx, -1), a + 3 * (size_t)nv, (size_t)nv * 4) == 0);
    /* bad requests are refused */
    pos[0] = 10;
    CHECK(strix_decode(ctx, ids, pos, 1, NULL, &err) == STRIX_ERR_ARG && err.msg[0]);
    strix_token bad = nv;
    CHECK(strix_decode(ctx, &bad, NULL, 1, NULL, &err) == STRIX_ERR_ARG);
    CHECK(strix_decode(ctx, ids, NULL, 0, NULL, &err) == STRIX_ERR_ARG);
    CHECK(strix_get_logits(ctx, 5) == NULL);
    strix_context_free(ctx);
    free(a);
    free(b);
    free(c);
    strix_model_free(m);
}

/* 100 tokens sampled after "Once" with the given seed and thread count, as
 * text; NULL (with a failure recorded) if any step fails. */
static char *sample_text(const strix_model *m, uint64_t seed, int n_threads)
{
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0.9f;
    sp.top_k = 40;
    sp.top_p = 0.9f;
    sp.min_p = 0.02f;
    sp.repeat_penalty = 1.1f;
    sp.seed = seed;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_threads = n_threads;
    cp.n_ctx = 128;
    strix_sampler *s = NULL;
    strix_context *ctx = NULL;
    strix_error err = {0, ""};
    strix_token ids[128];
    int n = 0;
    char *text = NULL;
    int rc = strix_sampler_create(&sp, strix_vocab_size(m), &s, &err);
    if (rc == STRIX_OK)
        rc = strix_context_create(m, &cp, &ctx, &err);
    if (rc == STRIX_OK)
        rc = strix_tokenize(m, "Once", 4, 1, ids, 128, &n, &err);
    if (rc == STRIX_OK)
        rc = strix_decode(ctx, ids, NULL, n, NULL, &err);
    while (rc == STRIX_OK && n < 100) {
        strix_token t = strix_sampler_sample(s, strix_get_logits(ctx, -1));
        if (t < 0 || t >= strix_vocab_size(m)) {
            rc = -1;
            snprintf(err.msg, sizeof err.msg, "sampled token %d", (int)t);
            break;
        }
        strix_sampler_accept(s, t);
        ids[n++] = t;
        rc = strix_decode(ctx, &t, NULL, 1, NULL, &err);
    }
    CHECKF(rc == STRIX_OK, "seed %llu, %d threads: %s", (unsigned long long)seed, n_threads,
           err.msg);
    if (rc == STRIX_OK) {
        text = malloc(4096);
        const int len = text ? strix_detokenize(m, ids, n, text, 4096) : -1;
        if (text && (len <= 0 || len >= 4096)) {
            free(text);
            text = NULL;
        }
        CHECK(text != NULL);
    }
    strix_sampler_free(s);
    strix_context_free(ctx);
    return text;
}

static void test_seed(void)
{
    strix_model *m = load_fixture("stories260K.bin", "tok512.bin");
    if (!m)
        return;
    char *a = sample_text(m, 1234, 1), *b = sample_text(m, 1234, 2), *c = sample_text(m, 99, 1);
    CHECK(a && b && c);
    if (a && b && c) {
        CHECKF(strlen(a) > 100, "sampled text too short: '%s'", a);
        CHECKF(strcmp(a, b) == 0, "same seed, different text:\n%s\n%s", a, b);
        CHECKF(strcmp(a, c) != 0, "different seeds gave the same text");
    }
    free(a);
    free(b);
    free(c);
    strix_model_free(m);
}

/* Rows of q/k laid out for the interleaved rope, rearranged for NeoX: within
 * each head, component 2i goes to i and 2i+1 to i + half. */
static void permute_rows(struct tensor *t, int n_heads, int head_dim)
{
    const size_t rb = t->row_bytes;
    uint8_t *data = (uint8_t *)t->data, *tmp = malloc(rb * (size_t)head_dim);
    for (int h = 0; h < n_heads; h++) {
        uint8_t *base = data + (size_t)h * (size_t)head_dim * rb;
        for (int i = 0; i < head_dim / 2; i++) {
            memcpy(tmp + (size_t)i * rb, base + (size_t)(2 * i) * rb, rb);
            memcpy(tmp + (size_t)(i + head_dim / 2) * rb, base + (size_t)(2 * i + 1) * rb, rb);
        }
        memcpy(base, tmp, rb * (size_t)head_dim);
    }
    free(tmp);
}

static void test_neox_layout(void)
{
    strix_model *m = load_fixture("stories3M-q80.bin", "tok4096.bin"); /* weights owned: writable */
    if (!m)
        return;
    strix_token ids[] = {1, 403, 407, 261, 378, 29};
    const int n = 6, nv = strix_vocab_size(m);
    float *a = fixture_logits(m, ids, n, 1, 64, 1);
    model_unpack(m); /* the packed copies would keep the old order */
    for (int l = 0; l < m->hp.n_layer; l++) {
        permute_rows(&m->layers[l].wq, m->hp.n_head, m->hp.head_dim);
        permute_rows(&m->layers[l].wk, m->hp.n_head_kv, m->hp.head_dim);
    }
    model_pack(m);
    m->hp.rope_neox = 1;
    float *b = fixture_logits(m, ids, n, 1, 64, 1);
    float maxdiff = 0;
    for (size_t i = 0; a && b && i < (size_t)n * (size_t)nv; i++)
        maxdiff = fmaxf(maxdiff, fabsf(a[i] - b[i]));
    CHECKF(a && b && maxdiff < 1e-3f, "neox on permuted weights differs by %g", maxdiff);
    free(a);
    free(b);
    strix_model_free(m);
}

/* An int8 checkpoint runs as Q8_0: every block holds the file's int8 values
 * unchanged and its group's scale rounded to fp16 (read here from the file
 * bytes, independently of the loader), and the weights are packed for the
 * active kernels as a Q8_0 GGUF's are. */
static void test_int8_as_q8_0(void)
{
    size_t len = 0;
    uint8_t *b = (uint8_t *)test_read_file(test_path("stories3M-q80.bin"), &len);
    strix_model *m = load_fixture("stories3M-q80.bin", "tok4096.bin");
    CHECK(b && m);
    if (!b || !m) {
        free(b);
        strix_model_free(m);
        return;
    }
    int32_t h[10], group;
    memcpy(h, b, sizeof h);
    memcpy(&group, b + 37, 4);
    const size_t D = (size_t)h[2], L = (size_t)h[4], V = (size_t)h[7];
    /* after the norms: token_embd (V x D), then wq of every layer */
    const size_t emb = 256 + (2 * L * D + D) * 4, wq0 = emb + V * D + V * D / (size_t)group * 4;
    const struct {
        const struct tensor *t;
        size_t off, n;
    } w[] = {{&m->tok_embd, emb, V * D}, {&m->layers[0].wq, wq0, D * D}};
    for (size_t c = 0; c < 2; c++) {
        const struct tensor *t = w[c].t;
        CHECKF(t->type == DTYPE_Q8_0, "%s is %s", t->name, dtype_name(t->type));
        if (t->type != DTYPE_Q8_0)
            continue;
        const struct block_q8_0 *blk = t->data;
        const int8_t *q = (const int8_t *)(b + w[c].off);
        const uint8_t *sc = b + w[c].off + w[c].n;
        size_t bad = 0;
        for (size_t i = 0; i < w[c].n / 32; i++) {
            float s;
            memcpy(&s, sc + 4 * (i * 32 / (size_t)group), 4);
            const float d = util_fp16_to_fp32(blk[i].d);
            bad += memcmp(blk[i].qs, q + 32 * i, 32) != 0 || fabsf(d - s) > fabsf(s) * 0x1p-11f;
        }
        CHECKF(bad == 0, "%s: %zu blocks differ from the file", t->name, bad);
    }
    CHECKF(!kern_isa_active()->pack[DTYPE_Q8_0] || m->layers[0].wq.packed != NULL,
           "Q8_0 weights of an int8 checkpoint are not packed for %s", kern_isa_active()->name);
    free(b);
    strix_model_free(m);
}

/* A key the GGUF writer refuses is reported with its own status and name
 * (a duplicate is a bad argument, not "out of memory"). */
static void test_save_key_status(void)
{
    strix_model *m = load_fixture("stories260K.bin", "tok512.bin");
    gguf_writer *w = gguf_writer_create();
    CHECK(m && w);
    if (m && w) {
        strix_error err;
        CHECK(gguf_writer_add_u32(w, "llama.block_count", 1) == STRIX_OK);
        const int rc = arch_save_hparams(m, w, &err);
        CHECKF(rc == STRIX_ERR_ARG && strstr(err.msg, "llama.block_count"),
               "duplicate key: rc %d (%s)", rc, err.msg);
    }
    gguf_writer_free(w);
    strix_model_free(m);
}

/* A decode that does not fit the cache fails before it changes anything:
 * the cells of the positions it would have replaced are still there. */
static void test_full_cache_unchanged(void)
{
    strix_model *m = load_fixture("stories260K.bin", "tok512.bin");
    strix_context *c = NULL;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 16;
    CHECK(m && strix_context_create(m, &cp, &c, NULL) == STRIX_OK);
    if (c) {
        for (int l = 0; l < c->kv.n_layer; l++)
            c->kv.layer[l].size = 4; /* a cache of 4 cells (the buffers are larger) */
        const strix_token ids[4] = {1, 403, 407, 261};
        const int32_t pos[4] = {2, 3, 4, 5};
        strix_error err;
        CHECK(strix_decode(c, ids, NULL, 4, NULL, &err) == STRIX_OK);
        /* positions 2..5 replace 2 and 3 but need 4 cells; 2 would be free */
        const int rc = strix_decode(c, ids, pos, 4, NULL, &err);
        CHECKF(rc != STRIX_OK && strstr(err.msg, "full"), "rc %d: %s", rc, err.msg);
        CHECKF(strix_kv_seq_pos_max(c, 0) == 3, "the failed decode left positions up to %d",
               strix_kv_seq_pos_max(c, 0));
    }
    strix_context_free(c);
    strix_model_free(m);
}

/* strix.h's model and token functions given no model (or no output)
 * return their documented "none" instead of crashing. */
static void test_null_handles(void)
{
    struct strix_model_info info;
    memset(&info, 0xff, sizeof info);
    info.struct_size = sizeof info;
    CHECK(strix_model_get_info(NULL, &info) == STRIX_ERR_ARG);
    CHECK(info.n_layer == 0 && info.arch == NULL);
    CHECK(strix_model_get_info(NULL, NULL) == STRIX_ERR_ARG);
    CHECK(strix_model_n_tensors(NULL) == 0);
    struct strix_tensor_info ti = {.struct_size = sizeof ti};
    CHECK(strix_model_tensor_info(NULL, 0, &ti) == STRIX_ERR_ARG);
    strix_model *m = load_fixture("stories260K.bin", "tok512.bin");
    CHECK(m && strix_model_tensor_info(m, 0, NULL) == STRIX_ERR_ARG);
    CHECK(m && strix_model_tensor_info(m, 0, &ti) == STRIX_OK);
    strix_model_free(m);
    CHECK(strix_vocab_size(NULL) == 0 && strix_token_bos(NULL) == -1 &&
          strix_token_piece(NULL, 0) == NULL);
    char buf[8] = "x";
    CHECK(strix_detokenize(NULL, NULL, 0, buf, sizeof buf) == -1 && buf[0] == '\0');
    strix_error err;
    int n = 5;
    CHECK(strix_tokenize(NULL, "a", 1, 1, NULL, 0, &n, &err) == STRIX_ERR_ARG && n == 0);
    CHECK(strix_model_meta_str(NULL, "k", buf, sizeof buf) == -1);
    CHECK(strix_model_save_gguf(NULL, "x", NULL, &err) == STRIX_ERR_ARG);
    CHECK(strix_model_synth(NULL, "x", NULL, &err) == STRIX_ERR_ARG);
}

/* Writes a llama2.c version 2 checkpoint (dim 64, 1 layer, 4 heads, 32
 * tokens) with int8 groups of `group`; wq's first scale is `odd_scale` if
 * non-zero. Tensor k has q[i] = (int8_t)((i * 7 + k) % 255), group g scale
 * 0.01 * (g + 1). */
static int write_v2(const char *path, int group, float odd_scale)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    uint8_t h[256] = {0};
    const int32_t v[9] = {0x616b3432, 2, 64, 64, 1, 4, 4, 32, 8};
    memcpy(h, v, sizeof v);
    h[36] = 1;
    memcpy(h + 37, &group, 4);
    fwrite(h, 1, sizeof h, f);
    const float one = 1.0f;
    for (int i = 0; i < 3 * 64; i++) /* attn_norm, ffn_norm, output_norm */
        fwrite(&one, 4, 1, f);
    const int n[8] = {32 * 64, 64 * 64, 64 * 64, 64 * 64, 64 * 64, 64 * 64, 64 * 64, 64 * 64};
    for (int k = 0; k < 8; k++) {
        for (int i = 0; i < n[k]; i++)
            fputc((i * 7 + k) % 255, f); /* read back as int8 */
        for (int g = 0; g < n[k] / group; g++) {
            const float sc = k == 1 && g == 0 && odd_scale != 0.0f ? odd_scale : 0.01f * (float)(g + 1);
            fwrite(&sc, 4, 1, f);
        }
    }
    return fclose(f) == 0;
}

/* Q8_0 where the groups fall into whole blocks and the scales fit fp16,
 * exact F32 otherwise: checked weight by weight on wq (tensor k = 1). */
static void test_int8_fallback(void)
{
    static const struct {
        int group;
        float odd_scale;
        uint32_t want;
    } cs[] = {{64, 0, DTYPE_Q8_0}, {16, 0, DTYPE_F32}, {64, 1e-7f, DTYPE_F32}};
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/strix-v2-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        strix_model *m = NULL;
        strix_error err;
        CHECK(write_v2(path, cs[c].group, cs[c].odd_scale));
        CHECKF(strix_model_load(path, NULL, &m, &err) == STRIX_OK, "group %d: %s",
               cs[c].group, err.msg);
        if (!m)
            continue;
        const struct tensor *t = &m->layers[0].wq;
        CHECKF(t->type == cs[c].want, "group %d: wq is %s", cs[c].group,
               dtype_name(t->type));
        size_t bad = 0;
        for (int i = 0; i < 64 * 64; i++) {
            const int g = i / cs[c].group;
            const float s = g == 0 && cs[c].odd_scale != 0.0f ? cs[c].odd_scale
                                                                 : 0.01f * (float)(g + 1);
            const int8_t q = (int8_t)(uint8_t)((i * 7 + 1) % 255);
            float got;
            if (t->type == DTYPE_F32) {
                got = ((const float *)t->data)[i];
                bad += got != (float)q * s;
            } else {
                const struct block_q8_0 *b = (const struct block_q8_0 *)t->data + i / 32;
                bad += b->qs[i % 32] != q || b->d != util_fp32_to_fp16(s);
            }
        }
        CHECKF(bad == 0, "group %d: %zu weights differ from the file", cs[c].group, bad);
        strix_model_free(m);
    }
    unlink(path);
}

/* The set of tokens (a bit each) that n draws from a sampler with params sp
 * over 8 logits give; bit 31 if the sampler cannot be created. */
static unsigned tokens_drawn(const struct strix_sampler_params *sp, const float *logits, int n)
{
    strix_sampler *s;
    if (strix_sampler_create(sp, 8, &s, NULL) != STRIX_OK)
        return 1u << 31;
    unsigned seen = 0;
    for (int i = 0; i < n; i++) {
        const strix_token t = strix_sampler_sample(s, logits);
        seen |= t >= 0 && t < 8 ? 1u << t : 1u << 31;
    }
    strix_sampler_free(s);
    return seen;
}

static void test_sampler(void)
{
    float logits[8] = {0.1f, 2.0f, -1.0f, 2.5f, 0.0f, 1.0f, 2.4f, -3.0f};
    struct strix_sampler_params sp = strix_sampler_default_params();
    strix_sampler *s;
    sp.temperature = 0;
    CHECK(strix_sampler_create(&sp, 8, &s, NULL) == STRIX_OK);
    CHECK(strix_sampler_sample(s, logits) == 3);
    strix_sampler_free(s);
    /* top-k 1 is greedy whatever the temperature */
    sp.temperature = 5;
    sp.top_k = 1;
    CHECK(tokens_drawn(&sp, logits, 50) == 1u << 3);
    /* top-k 2: only tokens 3 and 6 */
    sp.top_k = 2;
    sp.top_p = 1;
    sp.min_p = 0;
    CHECK(tokens_drawn(&sp, logits, 200) == (1u << 3 | 1u << 6));
    /* min-p 0.5 at temperature 1 keeps tokens with p >= p_max / 2: 3, 6, 1 */
    sp.top_k = 0;
    sp.temperature = 1;
    sp.min_p = 0.5f;
    CHECK((tokens_drawn(&sp, logits, 200) & ~(1u << 3 | 1u << 6 | 1u << 1)) == 0);
    /* the repetition penalty turns greedy away from a repeated token */
    sp.temperature = 0;
    sp.min_p = 0;
    sp.repeat_penalty = 2.0f;
    strix_sampler_create(&sp, 8, &s, NULL);
    strix_sampler_accept(s, 3);
    CHECK(strix_sampler_sample(s, logits) == 6);
    strix_sampler_free(s);
    sp.repeat_penalty = -1;
    CHECK(strix_sampler_create(&sp, 8, &s, NULL) == STRIX_ERR_ARG);

    /* top-k over many tied logits keeps exactly the k best, ties to the lower
     * id: at a high temperature every kept token turns up, no other does */
    enum { NV = 3000, K = 37 };
    static float big[NV];
    int rank_above[NV];
    for (int i = 0; i < NV; i++)
        big[i] = (float)((i * 7919) % 101); /* values 0..100, each ~30 times */
    for (int i = 0; i < NV; i++) {
        rank_above[i] = 0;
        for (int j = 0; j < NV; j++)
            rank_above[i] += big[j] > big[i] || (big[j] == big[i] && j < i);
    }
    sp = strix_sampler_default_params();
    sp.temperature = 1000;
    sp.top_k = K;
    sp.top_p = 1;
    sp.min_p = 0;
    strix_sampler_create(&sp, NV, &s, NULL);
    int seen[NV] = {0}, outside = 0, n_seen = 0;
    for (int i = 0; i < 3000; i++) {
        int t = strix_sampler_sample(s, big);
        outside += rank_above[t] >= K;
        n_seen += !seen[t]++;
    }
    CHECKF(outside == 0 && n_seen == K, "top-k kept %d tokens, %d samples outside", n_seen,
           outside);
    strix_sampler_free(s);
}

static void test_vocab_only(void)
{
    struct strix_model_params mp = strix_model_default_params();
    strix_model *m = NULL;
    strix_error err;
    int rc = strix_model_load(test_path("ggml-vocab-llama-spm.gguf"), &mp, &m, &err);
    CHECKF(rc == STRIX_OK, "%s", err.msg);
    if (!m)
        return;
    CHECK(strix_vocab_size(m) == 32000);
    strix_token ids[16];
    int n;
    CHECK(strix_tokenize(m, "Hello world", 11, 0, ids, 16, &n, &err) == STRIX_OK);
    CHECK(n == 2 && ids[0] == 15043 && ids[1] == 3186);
    strix_context *ctx = NULL;
    CHECK(strix_context_create(m, NULL, &ctx, &err) == STRIX_ERR_ARG && ctx == NULL);
    strix_model_free(m);
}

int main(void)
{
    if (!fixture_kernels(__FILE__))
        TEST_MAIN_END();
    test_sampler();
    test_golden();
    test_batch_and_rollback();
    test_seed();
    test_neox_layout();
    test_int8_as_q8_0();
    test_int8_fallback();
    test_save_key_status();
    test_full_cache_unchanged();
    test_null_handles();
    test_vocab_only();
    TEST_MAIN_END();
}
