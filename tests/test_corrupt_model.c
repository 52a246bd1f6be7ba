/*
 * test_corrupt_model.c - hostile model files through the public loader: each
 * must give a non-zero status and a message, never a crash, a sanitizer
 * report or a leak. Covers llama2.c checkpoints (truncated at every tensor
 * boundary and at random offsets, every header field made absurd), GGUF
 * models that parse but do not describe a valid llama model (missing or
 * misshapen tensors, bad hyperparameters, unsupported types), and allocation
 * failure injected at every step of a load. GGUF byte-level corruption is
 * tested in test_gguf.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "format/gguf.h"
#include "harness.h"
#include "util.h"

static char tmp_path[4096];

static void write_tmp(const void *buf, size_t len)
{
    FILE *f = tmp_path[0] ? fopen(tmp_path, "wb") : NULL;
    CHECKF(f != NULL, "cannot write %s", tmp_path);
    if (!f)
        return;
    if (len)
        fwrite(buf, 1, len, f);
    fclose(f);
}

/* Loads buf as a model file; returns the status, checking a message is set. */
static int try_load(const void *buf, size_t len, const char *vocab, const char *what)
{
    write_tmp(buf, len);
    struct strix_model_params mp = strix_model_default_params();
    char vpath[4096];
    if (vocab) {
        snprintf(vpath, sizeof vpath, "%s", test_path(vocab));
        mp.vocab_path = vpath;
    }
    strix_model *m = NULL;
    strix_error err = {0, ""};
    int rc = strix_model_load(tmp_path, &mp, &m, &err);
    if (rc != STRIX_OK)
        CHECKF(err.msg[0] != '\0' && m == NULL, "%s: no message", what);
    strix_model_free(m);
    return rc;
}

static void expect_fail(const void *buf, size_t len, const char *vocab, const char *what)
{
    int rc = try_load(buf, len, vocab, what);
    CHECKF(rc != STRIX_OK, "%s: loaded", what);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* buf cut at 60 random lengths: none may load. */
static void expect_cuts_fail(const uint8_t *buf, size_t len, const char *vocab, const char *tag)
{
    char what[64];
    for (int i = 0; i < 60; i++) {
        size_t cut = (size_t)(next_rand() % len);
        snprintf(what, sizeof what, "%s cut at %zu", tag, cut);
        expect_fail(buf, cut, vocab, what);
    }
}

/* A copy of buf with the `width` bytes at off replaced by v's: it may not load. */
static void expect_patch_fails(const uint8_t *buf, size_t len, size_t off, const void *v,
                               size_t width, const char *vocab, const char *what)
{
    uint8_t *c = malloc(len);
    CHECK(c != NULL);
    if (!c)
        return;
    memcpy(c, buf, len);
    memcpy(c + off, v, width);
    expect_fail(c, len, vocab, what);
    free(c);
}

/* Fixture `name`, which must load intact with tokenizer fixture `vocab`
 * before its corrupt copies can say anything; NULL if it cannot be read. */
static uint8_t *read_intact(const char *name, const char *vocab, size_t *len)
{
    uint8_t *buf = (uint8_t *)read_fixture(name, len);
    if (buf)
        CHECKF(try_load(buf, *len, vocab, "intact") == STRIX_OK, "%s does not load", name);
    return buf;
}

static void test_l2c_legacy(void)
{
    size_t len;
    uint8_t *buf = read_intact("stories260K.bin", "tok512.bin", &len);
    if (!buf)
        return;
    /* tensor boundaries: dim 64, hidden 172, 5 layers, kv dim 32, vocab 512, seq 512 */
    const size_t d = 64, h = 172, L = 5, kv = 32, V = 512, S = 512, hs = 8;
    const size_t sizes[] = {V * d,     L * d,      L * d * d, L * kv * d, L * kv * d,
                            L * d * d, L * d,      L * h * d, L * d * h,  L * h * d,
                            d,         S * hs / 2, S * hs / 2};
    size_t off = 28;
    char what[64];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int delta = -1; delta <= 1; delta++) {
            size_t cut = off + (size_t)(delta + 0);
            snprintf(what, sizeof what, "legacy cut at %zu", cut);
            expect_fail(buf, cut, "tok512.bin", what);
        }
        off += sizes[i] * 4;
    }
    CHECK(off == len);
    expect_cuts_fail(buf, len, "tok512.bin", "legacy");
    expect_fail(buf, 0, NULL, "empty file");
    /* extra bytes at the end */
    uint8_t *big = malloc(len + 8);
    memcpy(big, buf, len);
    memset(big + len, 0, 8);
    expect_fail(big, len + 8, "tok512.bin", "trailing bytes");
    free(big);
    /* every header field made absurd: each value changes the size the
     * header implies (dimension, layers, sequence length), breaks
     * dim % heads or heads % kv_heads, or gives a vocabulary that is not the
     * tokenizer's 512, so none of them may load */
    const int32_t bad[] = {0, -1, 3, 1 << 30, INT32_MIN, 7};
    for (int field = 0; field < 7; field++) {
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            snprintf(what, sizeof what, "legacy header field %d = %d", field, bad[b]);
            expect_patch_fails(buf, len, 4 * (size_t)field, &bad[b], 4, "tok512.bin", what);
        }
    }
    /* a wrong vocabulary for the model */
    expect_fail(buf, len, "tok4096.bin", "vocab size mismatch");
    /* allocation failure at every step */
    int steps = 0;
    for (long n = 0; n < 10000; n++) {
        util_fail_alloc_after(n);
        int rc = try_load(buf, len, "tok512.bin", "alloc failure");
        util_fail_alloc_after(-1);
        if (rc == STRIX_OK)
            break;
        steps++;
    }
    CHECKF(steps > 3, "allocation failure was injected %d times", steps);
    free(buf);
}

static void test_l2c_v2(void)
{
    size_t len;
    uint8_t *buf = read_intact("shakespeare_q80.bin", "byte_tokenizer.bin", &len);
    if (!buf)
        return;
    expect_cuts_fail(buf, len, "byte_tokenizer.bin", "v2");
    const size_t cuts[] = {4, 8, 36, 37, 41, 255, 256};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_fail(buf, cuts[i], "byte_tokenizer.bin", "v2 header cut");
    struct {
        size_t off;
        int32_t v;
        int width;
    } patches[] = {{4, 3, 4},    {4, 0, 4},        {4, -2, 4}, {37, 0, 4}, {37, 63, 4},
                   {37, -64, 4}, {37, 1 << 30, 4}, {36, 2, 1}, {8, 0, 4},  {8, 1 << 30, 4},
                   {20, 7, 4},   {28, -259, 4},    {28, 0, 4}};
    for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "v2 patch %zu at %zu", i, patches[i].off);
        expect_patch_fails(buf, len, patches[i].off, &patches[i].v, (size_t)patches[i].width,
                           "byte_tokenizer.bin", what);
    }
    free(buf);
}

/* Rewrites a parsed GGUF through the writer, dropping or changing one thing. */
struct edit {
    const char *drop_kv, *drop_tensor;
    const char *set_u32_key;
    uint32_t set_u32;
    const char *retype_tensor;  /* re-declared as Q4_1 (unsupported) */
    const char *reshape_tensor; /* rows halved */
    const char *set_str_key, *set_str;
    const char *expect; /* a word the error message must contain, or NULL */
    int legacy_kv_b; /* deepseek2: the older layout (one attn_kv_b, no *_length_mla) */
};

/* deepseek2's older layout: blk.N.attn_kv_b rows are, per head h, the
 * no-rope key rows (attn_k_b[h] transposed) then the value rows
 * (attn_v_b[h]), each over the latent. Written F32 in place of attn_k_b. */
static int add_kv_b(const gguf *g, gguf_writer *w, const struct gguf_tensor *kt, int halve,
                    float **kept)
{
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)kt->name.len, kt->name.ptr);
    char *tail = strstr(name, "attn_k_b");
    memcpy(tail, "attn_v_b", 8);
    const struct gguf_tensor *vt = gguf_find_tensor(g, name);
    if (!vt || kt->type != 0 || vt->type != 0)
        return 1;
    const int64_t nope = kt->ne[0], r = kt->ne[1], nh = kt->ne[2], hv = vt->ne[1], per = nope + hv;
    const float *k = kt->data, *v = vt->data;
    float *kv = malloc((size_t)(nh * per * r) * sizeof *kv);
    for (int64_t h = 0; h < nh; h++)
        for (int64_t i = 0; i < per; i++)
            for (int64_t j = 0; j < r; j++)
                kv[(h * per + i) * r + j] =
                    i < nope ? k[(h * r + j) * nope + i] : v[(h * hv + i - nope) * r + j];
    memcpy(tail, "attn_kv_b", 10);
    memcpy(tail + 9, ".weight", 8);
    int64_t ne[4] = {r, nh * per / (halve ? 2 : 1), 1, 1};
    *kept = kv; /* the writer reads it when the file is written */
    return gguf_writer_add_tensor(w, name, 0, 2, ne, kv, (size_t)(ne[0] * ne[1]) * sizeof *kv);
}

static int rewrite(const gguf *g, const struct edit *e, const char *path)
{
    gguf_writer *w = gguf_writer_create();
    int rc = 0, n_kept = 0;
    float *kept[64]; /* legacy_kv_b: the tensors made */
    for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        if (e->drop_kv && strcmp(key, e->drop_kv) == 0)
            continue;
        if (e->legacy_kv_b && strstr(key, "_length_mla"))
            continue;
        if (e->legacy_kv_b && strcmp(key, "deepseek2.attention.head_count_kv") == 0) {
            uint32_t v = 0; /* keys and values per head, as such files were made */
            rc |= gguf_get_u32(g, "deepseek2.attention.head_count", 1, &v, NULL);
            rc |= gguf_writer_add_u32(w, key, v);
            continue;
        }
        if (e->legacy_kv_b && (strcmp(key, "deepseek2.attention.key_length") == 0 ||
                               strcmp(key, "deepseek2.attention.value_length") == 0)) {
            char mla[300];
            snprintf(mla, sizeof mla, "%s_mla", key); /* the per-head sizes */
            uint32_t v = 0;
            rc |= gguf_get_u32(g, mla, 1, &v, NULL);
            rc |= gguf_writer_add_u32(w, key, v);
            continue;
        }
        if (e->set_str_key && strcmp(key, e->set_str_key) == 0) {
            rc |= gguf_writer_add_str(w, key, e->set_str);
            continue;
        }
        if (e->set_u32_key && strcmp(key, e->set_u32_key) == 0) {
            rc |= gguf_writer_add_u32(w, key, e->set_u32);
            continue;
        }
        if (kv->type == GGUF_VT_U32 || kv->type == GGUF_VT_I32) {
            rc |= gguf_writer_add_u32(w, key, (uint32_t)kv->u);
        } else if (kv->type == GGUF_VT_BOOL) {
            rc |= gguf_writer_add_bool(w, key, kv->u != 0);
        } else if (kv->type == GGUF_VT_F32) {
            rc |= gguf_writer_add_f32(w, key, (float)kv->f);
        } else if (kv->type == GGUF_VT_STR) {
            char *s = strndup(kv->str.ptr, kv->str.len);
            rc |= gguf_writer_add_str(w, key, s);
            free(s);
        } else if (kv->type == GGUF_VT_ARR && kv->arr_type == GGUF_VT_STR) {
            const char **v = malloc(kv->n * sizeof *v);
            for (uint64_t j = 0; j < kv->n; j++)
                v[j] = strndup(kv->arr_strs[j].ptr, kv->arr_strs[j].len);
            rc |= gguf_writer_add_arr_str(w, key, v, kv->n);
            for (uint64_t j = 0; j < kv->n; j++)
                free((void *)v[j]);
            free(v);
        } else if (kv->type == GGUF_VT_ARR && kv->arr_type == GGUF_VT_F32) {
            float *v = malloc(kv->n * sizeof *v);
            for (uint64_t j = 0; j < kv->n; j++)
                v[j] = gguf_arr_f32(kv, j);
            rc |= gguf_writer_add_arr_f32(w, key, v, kv->n);
            free(v);
        } else if (kv->type == GGUF_VT_ARR && kv->arr_type == GGUF_VT_I32) {
            int32_t *v = malloc(kv->n * sizeof *v);
            for (uint64_t j = 0; j < kv->n; j++)
                v[j] = (int32_t)gguf_arr_i64(kv, j);
            rc |= gguf_writer_add_arr_i32(w, key, v, kv->n);
            free(v);
        }
    }
    for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (e->drop_tensor && strcmp(name, e->drop_tensor) == 0)
            continue;
        if (e->legacy_kv_b && (strstr(name, "attn_k_b") || strstr(name, "attn_v_b"))) {
            if (strstr(name, "attn_k_b") && n_kept < 64)
                rc |= add_kv_b(g, w, t,
                               e->reshape_tensor && strncmp(name, e->reshape_tensor, 6) == 0,
                               &kept[n_kept++]);
            continue;
        }
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        uint32_t type = t->type;
        size_t nbytes = t->nbytes;
        if (e->retype_tensor && strcmp(name, e->retype_tensor) == 0) {
            type = 3; /* Q4_1: 32 weights in 20 bytes */
            ne[0] = 32;
            ne[1] = (int64_t)(t->nbytes / 20);
            nbytes = (size_t)ne[1] * 20;
        }
        if (e->reshape_tensor && strcmp(name, e->reshape_tensor) == 0) {
            ne[1] /= 2;
            nbytes /= 2;
        }
        rc |= gguf_writer_add_tensor(w, name, type, t->n_dims, ne, t->data, nbytes);
    }
    if (rc == 0)
        rc = gguf_writer_write(w, path, NULL);
    gguf_writer_free(w);
    for (int i = 0; i < n_kept; i++)
        free(kept[i]);
    return rc;
}

static void test_gguf_models(void)
{
    size_t len;
    uint8_t *buf = (uint8_t *)test_read_file(test_path("stories260K-ref.gguf"), &len);
    gguf *g = NULL;
    CHECK(buf && gguf_parse(buf, len, &g, NULL) == STRIX_OK);
    if (!g) {
        free(buf);
        return;
    }
    const struct edit edits[] = {
        {.drop_tensor = "blk.2.ffn_down.weight"},
        {.drop_tensor = "token_embd.weight"},
        {.drop_kv = "llama.block_count"},
        {.drop_kv = "llama.embedding_length"},
        {.drop_kv = "general.architecture"},
        {.drop_kv = "tokenizer.ggml.tokens"},
        {.set_u32_key = "llama.attention.head_count", .set_u32 = 0},
        {.set_u32_key = "llama.attention.head_count", .set_u32 = 7},
        {.set_u32_key = "llama.attention.head_count_kv", .set_u32 = 3},
        {.set_u32_key = "llama.attention.head_count_kv", .set_u32 = 16},
        {.set_u32_key = "llama.block_count", .set_u32 = 6},
        {.set_u32_key = "llama.block_count", .set_u32 = 0xffffffffu},
        {.set_u32_key = "llama.embedding_length", .set_u32 = 1u << 31},
        {.set_u32_key = "llama.feed_forward_length", .set_u32 = 171},
        {.set_u32_key = "llama.rope.dimension_count", .set_u32 = 7},
        {.set_u32_key = "llama.rope.dimension_count", .set_u32 = 64},
        {.set_u32_key = "tokenizer.ggml.bos_token_id", .set_u32 = 512},
        {.retype_tensor = "blk.1.attn_q.weight"},
        {.reshape_tensor = "blk.0.attn_k.weight"},
        {.reshape_tensor = "output.weight"},
    };
    char path[4096];
    test_tmpfile(path, sizeof path, "corrupt-gguf");
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        CHECK(rewrite(g, &edits[i], path) == STRIX_OK);
        strix_model *m = NULL;
        strix_error err = {0, ""};
        int rc = strix_model_load(path, NULL, &m, &err);
        CHECKF(rc != STRIX_OK && m == NULL && err.msg[0], "edit %zu loaded", i);
        strix_model_free(m);
    }
    /* the unchanged rewrite loads */
    const struct edit none = {0};
    CHECK(rewrite(g, &none, path) == STRIX_OK);
    strix_model *m = NULL;
    strix_error err;
    CHECKF(strix_model_load(path, NULL, &m, &err) == STRIX_OK, "%s", err.msg);
    strix_model_free(m);
    unlink(path);
    /* allocation failure at every step of a GGUF load */
    int steps = 0;
    for (long n = 0; n < 10000; n++) {
        util_fail_alloc_after(n);
        int rc = try_load(buf, len, NULL, "gguf alloc failure");
        util_fail_alloc_after(-1);
        if (rc == STRIX_OK)
            break;
        steps++;
    }
    CHECKF(steps > 3, "allocation failure was injected %d times", steps);
    /* not a model at all; a missing file */
    expect_fail("hello world, this is not a model file at all", 44, NULL, "text file");
    m = NULL;
    CHECK(strix_model_load("/nonexistent/model.gguf", NULL, &m, &err) == STRIX_ERR_IO &&
          strstr(err.msg, "/nonexistent/model.gguf"));
    gguf_free(g);
    free(buf);
}

/* The other architectures: their own keys, fused and stacked expert
 * tensors, each broken in turn. */
static void test_arch_models(void)
{
    static const struct {
        const char *file;
        struct edit e;
    } cases[] = {
        {"arch/gpt2.gguf", {.set_str_key = "general.architecture", .set_str = "gptj", .expect = "gptj"}},
        {"arch/gpt2.gguf", {.drop_tensor = "blk.1.attn_qkv.bias", .expect = "attn_qkv.bias"}},
        {"arch/gpt2.gguf", {.drop_tensor = "position_embd.weight", .expect = "position_embd"}},
        {"arch/gpt2.gguf", {.reshape_tensor = "blk.0.attn_qkv.weight", .expect = "attn_qkv"}},
        {"arch/gpt2.gguf", {.drop_kv = "gpt2.feed_forward_length"}},
        {"arch/bloom.gguf", {.drop_tensor = "token_embd_norm.bias", .expect = "token_embd_norm"}},
        {"arch/mpt.gguf", {.drop_kv = "mpt.attention.max_alibi_bias", .expect = "max_alibi_bias"}},
        {"arch/phi3.gguf", {.drop_kv = "phi3.attention.sliding_window", .expect = "sliding_window"}},
        {"arch/phi3.gguf", {.reshape_tensor = "blk.1.ffn_up.weight", .expect = "ffn_up"}},
        {"arch/phi3.gguf", {.set_u32_key = "phi3.rope.dimension_count", .set_u32 = 18}},
        {"arch/mixtral.gguf", {.set_u32_key = "llama.expert_used_count", .set_u32 = 5, .expect = "expert"}},
        {"arch/mixtral.gguf", {.set_u32_key = "llama.expert_count", .set_u32 = 0}},
        {"arch/mixtral.gguf", {.set_u32_key = "llama.expert_count", .set_u32 = 1u << 30}},
        {"arch/mixtral.gguf", {.reshape_tensor = "blk.1.ffn_down_exps.weight", .expect = "ffn_down_exps"}},
        {"arch/mixtral.gguf", {.drop_tensor = "blk.0.ffn_gate_inp.weight", .expect = "ffn_gate_inp"}},
        {"arch/qwen2moe.gguf", {.drop_tensor = "blk.1.ffn_gate_inp_shexp.weight", .expect = "shexp"}},
        {"arch/qwen2moe.gguf", {.drop_kv = "qwen2moe.expert_count", .expect = "expert"}},
        {"arch/llama-yarn.gguf", {.set_str_key = "llama.rope.scaling.type", .set_str = "longrope", .expect = "longrope"}},
        {"arch/gemma.gguf", {.set_u32_key = "gemma.attention.head_count_kv", .set_u32 = 3}},
        {"arch/falcon.gguf", {.drop_tensor = "blk.0.attn_norm.bias", .expect = "attn_norm.bias"}},
        /* deepseek2: latent attention sizes, expert groups, dense blocks */
        {"arch/deepseek2.gguf", {.drop_tensor = "blk.1.attn_k_b.weight", .expect = "attn_k_b"}},
        {"arch/deepseek2.gguf", {.reshape_tensor = "blk.2.attn_kv_a_mqa.weight", .expect = "attn_kv_a_mqa"}},
        {"arch/deepseek2.gguf", {.reshape_tensor = "blk.0.attn_v_b.weight", .expect = "attn_v_b"}},
        {"arch/deepseek2.gguf", {.drop_tensor = "blk.0.ffn_gate.weight", .expect = "ffn_gate"}},
        {"arch/deepseek2.gguf", {.drop_tensor = "blk.1.exp_probs_b.bias", .expect = "exp_probs_b"}},
        {"arch/deepseek2.gguf", {.drop_kv = "deepseek2.attention.kv_lora_rank", .expect = "kv_lora_rank"}},
        {"arch/deepseek2.gguf", {.drop_kv = "deepseek2.attention.key_length_mla", .expect = "key_length_mla"}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.attention.key_length", .set_u32 = 15, .expect = "key_length"}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.rope.dimension_count", .set_u32 = 12, .expect = "MLA"}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.expert_group_count", .set_u32 = 3, .expect = "groups"}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.expert_group_used_count", .set_u32 = 4, .expect = "groups"}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.expert_group_used_count", .set_u32 = 1, .expect = "groups"}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.expert_count", .set_u32 = 0, .expect = "expert"}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.expert_count", .set_u32 = 7}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.expert_shared_count", .set_u32 = 0, .expect = "shared"}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.leading_dense_block_count", .set_u32 = 5, .expect = "leading_dense"}},
        {"arch/deepseek2.gguf", {.set_u32_key = "deepseek2.expert_gating_func", .set_u32 = 7, .expect = "gating"}},
        {"arch/deepseek2-lite.gguf", {.drop_tensor = "blk.1.attn_q.weight", .expect = "attn_q"}},
        {"arch/deepseek2-lite.gguf", {.legacy_kv_b = 1, .reshape_tensor = "blk.1.", .expect = "blk.1.attn_kv_b"}},
        {"arch/deepseek2-lite.gguf", {.legacy_kv_b = 1, .drop_kv = "deepseek2.attention.kv_lora_rank", .expect = "kv_lora_rank"}},
        {"arch/deepseek2-yarn.gguf", {.set_str_key = "deepseek2.rope.scaling.type", .set_str = "linear", .expect = "linear"}},
        {"arch/deepseek2-yarn.gguf", {.set_u32_key = "deepseek2.rope.scaling.yarn_log_multiplier", .set_u32 = 7, .expect = "yarn_log_multiplier"}},
        {"arch/deepseek2-lite.gguf", {.set_u32_key = "deepseek2.attention.q_lora_rank", .set_u32 = 8, .expect = "attn_q"}},
        /* mamba: state-space sizes and weights */
        {"arch/mamba.gguf", {.drop_tensor = "blk.1.ssm_a", .expect = "ssm_a"}},
        {"arch/mamba.gguf", {.drop_tensor = "blk.0.ssm_conv1d.bias", .expect = "ssm_conv1d.bias"}},
        {"arch/mamba.gguf", {.reshape_tensor = "blk.0.ssm_x.weight", .expect = "ssm_x"}},
        {"arch/mamba.gguf", {.reshape_tensor = "blk.1.ssm_conv1d.weight", .expect = "ssm_conv1d"}},
        {"arch/mamba.gguf", {.drop_kv = "mamba.ssm.state_size", .expect = "state_size"}},
        {"arch/mamba.gguf", {.set_u32_key = "mamba.ssm.inner_size", .set_u32 = 48, .expect = "inner_size"}},
        {"arch/mamba.gguf", {.set_u32_key = "mamba.ssm.conv_kernel", .set_u32 = 0, .expect = "conv_kernel"}},
        {"arch/mamba.gguf", {.set_u32_key = "mamba.ssm.time_step_rank", .set_u32 = 1000, .expect = "dt rank"}},
        {"arch/mamba.gguf", {.set_u32_key = "mamba.ssm.state_size", .set_u32 = 1u << 30, .expect = "state_size"}},
        /* retnet: retention weights, value length, heads, decay */
        {"arch/retnet.gguf", {.drop_tensor = "blk.1.ret_gate.weight", .expect = "ret_gate"}},
        {"arch/retnet.gguf", {.drop_tensor = "blk.0.ret_norm.weight", .expect = "ret_norm"}},
        {"arch/retnet.gguf", {.reshape_tensor = "blk.0.attn_v.weight", .expect = "attn_v"}},
        {"arch/retnet.gguf", {.reshape_tensor = "blk.1.attn_output.weight", .expect = "attn_output"}},
        {"arch/retnet.gguf", {.set_u32_key = "retnet.attention.value_length", .set_u32 = 12, .expect = "attn_v"}},
        {"arch/retnet.gguf", {.set_u32_key = "retnet.attention.value_length", .set_u32 = 0, .expect = "value_length"}},
        {"arch/retnet.gguf", {.set_u32_key = "retnet.attention.head_count_kv", .set_u32 = 2, .expect = "key/value heads"}},
        {"arch/retnet.gguf", {.set_u32_key = "retnet.retention.decay_first", .set_u32 = 5, .expect = "decay_first"}},
        {"arch/retnet.gguf", {.drop_kv = "retnet.attention.head_count", .expect = "head_count"}},
        /* yoco: the shared key/value projection, the gated decay, the split */
        {"arch/yoco.gguf", {.drop_tensor = "blk.2.cross_k.weight", .expect = "cross_k"}},
        {"arch/yoco.gguf", {.drop_tensor = "blk.0.ret_decay.weight", .expect = "ret_decay"}},
        {"arch/yoco.gguf", {.reshape_tensor = "blk.2.cross_v.weight", .expect = "cross_v"}},
        {"arch/yoco.gguf", {.reshape_tensor = "blk.1.attn_v.weight", .expect = "attn_v"}},
        {"arch/yoco.gguf", {.set_u32_key = "yoco.self_block_count", .set_u32 = 4, .expect = "self_block_count"}},
        {"arch/yoco.gguf", {.set_u32_key = "yoco.self_block_count", .set_u32 = 0, .expect = "self_block_count"}},
        {"arch/yoco.gguf", {.set_u32_key = "yoco.self_block_count", .set_u32 = 1, .expect = "cross"}},
        {"arch/yoco.gguf", {.set_u32_key = "yoco.attention.head_count_kv", .set_u32 = 3, .expect = "kv heads"}},
        {"arch/yoco.gguf", {.set_u32_key = "yoco.retention.gate_temperature", .set_u32 = 16, .expect = "gate_temperature"}},
        /* PEER and KAN feed-forward layers (model/arch_ffn.c) */
        {"arch/peer.gguf", {.set_u32_key = "llama.peer.expert_count", .set_u32 = 63, .expect = "expert_count"}},
        {"arch/peer.gguf", {.set_u32_key = "llama.peer.sub_key_count", .set_u32 = 9, .expect = "sub_key_count^2"}},
        {"arch/peer.gguf", {.set_u32_key = "llama.peer.sub_key_count", .set_u32 = 1u << 20, .expect = "sub-key"}},
        {"arch/peer.gguf", {.set_u32_key = "llama.peer.top_k", .set_u32 = 9, .expect = "top-k"}},
        {"arch/peer.gguf", {.set_u32_key = "llama.peer.key_length", .set_u32 = 7, .expect = "key length"}},
        {"arch/peer.gguf", {.set_u32_key = "llama.peer.head_count", .set_u32 = 3, .expect = "ffn_peer_query"}},
        {"arch/peer.gguf", {.drop_kv = "llama.peer.head_count", .expect = "head_count"}},
        {"arch/peer.gguf", {.set_str_key = "llama.peer.gating", .set_str = "relu", .expect = "gating"}},
        {"arch/peer.gguf", {.set_str_key = "llama.ffn_kind", .set_str = "moe2", .expect = "ffn_kind"}},
        {"arch/peer.gguf", {.reshape_tensor = "blk.0.ffn_peer_keys.weight", .expect = "ffn_peer_keys"}},
        {"arch/peer.gguf", {.reshape_tensor = "blk.1.ffn_peer_down.weight", .expect = "ffn_peer_down"}},
        {"arch/peer.gguf", {.drop_tensor = "blk.1.ffn_peer_up.weight", .expect = "ffn_peer_up"}},
        {"arch/kan.gguf", {.set_u32_key = "llama.kan.grid_size", .set_u32 = 6, .expect = "ffn_kan_spline1"}},
        {"arch/kan.gguf", {.set_u32_key = "llama.kan.grid_size", .set_u32 = 0, .expect = "grid size"}},
        {"arch/kan.gguf", {.set_u32_key = "llama.kan.spline_order", .set_u32 = 9, .expect = "order"}},
        {"arch/kan.gguf", {.set_u32_key = "llama.kan.grid_range", .set_u32 = 2, .expect = "grid_range"}},
        {"arch/kan.gguf", {.drop_kv = "llama.kan.grid_range", .expect = "grid_range"}},
        {"arch/kan.gguf", {.set_u32_key = "llama.feed_forward_length", .set_u32 = 40, .expect = "ffn_kan"}},
        {"arch/kan.gguf", {.set_str_key = "llama.ffn_kind", .set_str = "peer", .expect = "peer"}},
        {"arch/kan.gguf", {.reshape_tensor = "blk.0.ffn_kan_base2.weight", .expect = "ffn_kan_base2"}},
        {"arch/kan.gguf", {.drop_tensor = "blk.1.ffn_kan_spline2.weight", .expect = "ffn_kan_spline2"}},
        {"arch/kan.gguf", {.set_str_key = "llama.ffn_kind", .set_str = "mlp", .expect = "ffn_gate"}},
    };
    char path[4096];
    test_tmpfile(path, sizeof path, "corrupt-arch");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = 0;
        uint8_t *buf = (uint8_t *)test_read_file(test_path(cases[i].file), &len);
        gguf *g = NULL;
        CHECK(buf && gguf_parse(buf, len, &g, NULL) == STRIX_OK);
        if (g) {
            CHECK(rewrite(g, &cases[i].e, path) == STRIX_OK);
            strix_model *m = NULL;
            strix_error err = {0, ""};
            int rc = strix_model_load(path, NULL, &m, &err);
            CHECKF(rc != STRIX_OK && m == NULL && err.msg[0], "%s edit %zu loaded", cases[i].file, i);
            CHECKF(!cases[i].e.expect || strstr(err.msg, cases[i].e.expect), "%s: '%s'",
                   cases[i].file, err.msg);
            strix_model_free(m);
            /* and allocation failure at every step of loading the intact file */
            if (i == 0 || strcmp(cases[i].file, cases[i - 1].file) != 0) {
                int steps = 0;
                for (long n = 0; n < 10000; n++) {
                    util_fail_alloc_after(n);
                    rc = try_load(buf, len, NULL, cases[i].file);
                    util_fail_alloc_after(-1);
                    if (rc == STRIX_OK)
                        break;
                    steps++;
                }
                CHECKF(steps > 3, "%s: allocation failure injected %d times", cases[i].file, steps);
            }
        }
        gguf_free(g);
        free(buf);
    }
    unlink(path);
}

/* deepseek2 files in the older layout (one attn_kv_b per block) load and
 * give the split file's logits (which match llama.cpp's, test_arch): every
 * position of the fixtures' 48 ids, one batch. */
static void test_mla_legacy(void)
{
    static const char *const files[] = {"arch/deepseek2-lite.gguf", "arch/deepseek2.gguf",
                                        "arch/deepseek2-yarn.gguf"};
    char path[4096];
    test_tmpfile(path, sizeof path, "mla-legacy");
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t len = 0;
        uint8_t *buf = (uint8_t *)test_read_file(test_path(files[f]), &len);
        gguf *g = NULL;
        CHECK(buf && gguf_parse(buf, len, &g, NULL) == STRIX_OK);
        const struct edit e = {.legacy_kv_b = 1};
        strix_model *ms = NULL, *ml = NULL;
        strix_error err = {0, ""};
        CHECK(g && rewrite(g, &e, path) == STRIX_OK);
        CHECK(strix_model_load(test_path(files[f]), NULL, &ms, NULL) == STRIX_OK);
        CHECKF(strix_model_load(path, NULL, &ml, &err) == STRIX_OK, "%s legacy: %s", files[f],
               err.msg);
        if (ms && ml) {
            strix_token ids[48];
            int8_t want[48];
            for (int i = 0; i < 48; i++)
                ids[i] = (strix_token)((i * 131 + 7) % 512), want[i] = 1;
            struct strix_context_params cp = strix_context_default_params();
            cp.n_ctx = 64;
            cp.n_threads = 1;
            strix_context *cs = NULL, *cl = NULL;
            CHECK(strix_context_create(ms, &cp, &cs, NULL) == STRIX_OK);
            CHECK(strix_context_create(ml, &cp, &cl, NULL) == STRIX_OK);
            CHECK(cs && cl && strix_decode(cs, ids, NULL, 48, want, NULL) == STRIX_OK &&
                  strix_decode(cl, ids, NULL, 48, want, NULL) == STRIX_OK);
            float d = cs && cl ? 0.0f : 1.0f;
            for (int i = 0; cs && cl && i < 48; i++) {
                const float *a = strix_get_logits(cs, i), *b = strix_get_logits(cl, i);
                for (int j = 0; a && b && j < 512; j++)
                    d = fmaxf(d, fabsf(a[j] - b[j]));
            }
            CHECKF(d == 0.0f, "%s: the legacy layout's logits differ by %g", files[f], d);
            printf("%s in the attn_kv_b layout: logits of 48 positions differ by %g\n", files[f],
                   d);
            strix_context_free(cs);
            strix_context_free(cl);
        }
        strix_model_free(ms);
        strix_model_free(ml);
        gguf_free(g);
        free(buf);
    }
    unlink(path);
}

/* Allocation failure at every step of creating a context and a sampler. */
static void test_alloc_runtime(void)
{
    char mp[4096], vp[4096];
    snprintf(mp, sizeof mp, "%s", test_path("stories260K.bin"));
    snprintf(vp, sizeof vp, "%s", test_path("tok512.bin"));
    struct strix_model_params p = strix_model_default_params();
    p.vocab_path = vp;
    strix_model *m = NULL;
    CHECK(strix_model_load(mp, &p, &m, NULL) == STRIX_OK);
    if (!m)
        return;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_threads = 2;
    int steps = 0, ok = 1;
    for (long n = 0; n < 1000; n++) {
        strix_context *ctx = NULL;
        strix_error err;
        util_fail_alloc_after(n);
        int rc = strix_context_create(m, &cp, &ctx, &err);
        util_fail_alloc_after(-1);
        if (rc == STRIX_OK) {
            strix_token t = 1;
            ok &= strix_decode(ctx, &t, NULL, 1, NULL, &err) == STRIX_OK;
            strix_context_free(ctx);
            break;
        }
        ok &= rc == STRIX_ERR_NOMEM && ctx == NULL && err.msg[0];
        steps++;
    }
    CHECKF(ok && steps > 5, "context allocation failures: %d steps", steps);
    struct strix_sampler_params sp = strix_sampler_default_params();
    steps = 0;
    for (long n = 0; n < 100; n++) {
        strix_sampler *s = NULL;
        util_fail_alloc_after(n);
        int rc = strix_sampler_create(&sp, 512, &s, NULL);
        util_fail_alloc_after(-1);
        strix_sampler_free(s);
        if (rc == STRIX_OK)
            break;
        steps++;
    }
    CHECK(steps >= 2);
    strix_model_free(m);
}

int main(void)
{
    test_tmpfile(tmp_path, sizeof tmp_path, "corrupt");
    test_alloc_runtime();
    test_l2c_legacy();
    test_l2c_v2();
    test_gguf_models();
    test_arch_models();
    test_mla_legacy();
    unlink(tmp_path);
    TEST_MAIN_END();
}
