/*
 * test_gguf.c - tests of the GGUF reader and writer (src/gguf.c): the
 * fixture files parse with the expected contents; the writer round-trips
 * every value kind and several tensor types and reproduces a real file;
 * a corpus of corrupt, truncated and bit-flipped files is rejected with a
 * message and without a crash; allocation failures are reported, not leaked.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "quant/dtype.h"
#include "format/gguf.h"
#include "harness.h"
#include "util.h"

static int verbose;

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static char tmp_name[4096];
static const char *tmp_path(void)
{
    test_tmpfile(tmp_name, sizeof tmp_name, "gguf");
    return tmp_name;
}

static int str_eq(struct gguf_str s, const char *c)
{
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

/* Parses buf[0..n) in place and from an exact-size heap copy (so that ASan
 * sees any overread); both must fail with a "gguf: " message. Returns rc. */
static int expect_fail(const uint8_t *buf, size_t n, const char *what, const char *msg_part)
{
    strix_error e = {0};
    gguf *g = NULL;
    int rc = gguf_parse(buf, n, &g, &e);
    CHECKF(rc != 0 && g == NULL, "%s: parsed (rc %d)", what, rc);
    CHECKF(strncmp(e.msg, "gguf: ", 6) == 0 && strlen(e.msg) > 6, "%s: message '%s'", what, e.msg);
    if (msg_part)
        CHECKF(strstr(e.msg, msg_part) != NULL, "%s: message '%s' lacks '%s'", what, e.msg,
               msg_part);
    if (verbose)
        printf("  %-28s rc %d: %s\n", what, rc, e.msg);
    gguf_free(g);
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, buf, n);
    strix_error e2 = {0};
    int rc2 = gguf_parse(copy, n, &g, &e2);
    CHECKF(rc2 == rc && strcmp(e.msg, e2.msg) == 0, "%s: copy gave rc %d '%s'", what, rc2, e2.msg);
    gguf_free(g);
    free(copy);
    return rc;
}

/* Reads everything a parsed file points to, so that ASan checks it. */
static unsigned walk(const gguf *g)
{
    unsigned sum = 0;
    for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        sum += (unsigned char)kv->key.ptr[0] + (unsigned char)kv->key.ptr[kv->key.len - 1];
        if (kv->type == GGUF_VT_STR && kv->str.len)
            sum += (unsigned char)kv->str.ptr[kv->str.len - 1];
        if (kv->arr_strs)
            for (uint64_t j = 0; j < kv->n; j++)
                if (kv->arr_strs[j].len)
                    sum += (unsigned char)kv->arr_strs[j].ptr[kv->arr_strs[j].len - 1];
        if (kv->arr_data)
            for (uint64_t j = 0; j < kv->n; j++)
                sum += (unsigned)gguf_arr_i64(kv, j) + (unsigned)(gguf_arr_f32(kv, j) > 0);
    }
    for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        const uint8_t *d = t->data;
        sum += d[0] + d[t->nbytes - 1] + (unsigned char)t->name.ptr[t->name.len - 1];
    }
    return sum;
}

/* Parses buf with byte i flipped (and restores it): 1 if it still parses,
 * after reading all it returns (a pointer outside buf shows under ASan); 0
 * after checking the failure left a message and no handle. */
static int parses_flipped(uint8_t *buf, size_t n, size_t i, const char *tag)
{
    buf[i] ^= 0xff;
    gguf *g = NULL;
    strix_error e = {0};
    const int ok = gguf_parse(buf, n, &g, &e) == 0;
    if (ok)
        walk(g);
    else
        CHECKF(e.msg[0] != '\0' && g == NULL, "%s flip %zu", tag, i);
    gguf_free(g);
    buf[i] ^= 0xff;
    return ok;
}

/* ---- 1. the fixtures ---- */

static void test_fixtures(void)
{
    size_t n;
    uint8_t *buf = (uint8_t *)read_fixture("stories260K-ref.gguf", &n);
    if (!buf)
        return;
    gguf *g = NULL;
    strix_error e = {0};
    int rc = gguf_parse(buf, n, &g, &e);
    CHECKF(rc == STRIX_OK, "%s", e.msg);
    if (rc == STRIX_OK) {
        CHECK(gguf_version(g) == 3);
        CHECK(gguf_n_tensors(g) == 48);
        CHECK(gguf_n_kv(g) == 19);
        CHECK(gguf_alignment(g) == 32);
        CHECK(gguf_data_offset(g) % 32 == 0 && gguf_data_offset(g) < n);
        uint32_t emb = 0;
        CHECK(gguf_get_u32(g, "llama.embedding_length", 1, &emb, &e) == STRIX_OK && emb == 64);
        struct gguf_str arch;
        CHECK(gguf_get_str(g, "general.architecture", 1, &arch, &e) == 0 && str_eq(arch, "llama"));
        float eps = 0;
        CHECK(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", 1, &eps, &e) == 0 &&
              fabsf(eps - 1e-5f) < 1e-9f);
        const struct gguf_tensor *t = gguf_find_tensor(g, "blk.0.attn_k.weight");
        CHECK(t && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 32 && t->ne[2] == 1 &&
              t->ne[3] == 1 && t->type == DTYPE_F32 && t->nbytes == 64 * 32 * 4);
        CHECK(t && (const uint8_t *)t->data == buf + gguf_data_offset(g) + t->offset);
        CHECK(gguf_find_tensor(g, "blk.0.attn_k.weigh") == NULL);
        CHECK(gguf_find_tensor(g, "no.such.tensor") == NULL);
        /* every tensor is found by name, at its own index */
        int all = 1;
        for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
            const struct gguf_tensor *ti = gguf_tensor_at(g, i);
            char name[300];
            snprintf(name, sizeof name, "%.*s", (int)ti->name.len, ti->name.ptr);
            all &= gguf_find_tensor(g, name) == ti;
        }
        CHECK(all);
        CHECK(gguf_tensor_at(g, 48) == NULL && gguf_kv_at(g, 19) == NULL);
        const struct gguf_kv *tok = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_VT_STR, &e);
        CHECK(tok && tok->n == 512 && str_eq(tok->arr_strs[1], "<s>") &&
              str_eq(tok->arr_strs[0], "<unk>"));
        const struct gguf_kv *sc = gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_VT_F32, &e);
        CHECK(sc && sc->n == 512);
        const struct gguf_kv *tt = gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_VT_I32, &e);
        CHECK(tt && tt->n == 512 && gguf_arr_i64(tt, 0) == 2 && gguf_arr_i64(tt, 1) == 3);
    }
    gguf_free(g);
    free(buf);

    static const char *const vocabs[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf"};
    for (int v = 0; v < 2; v++) {
        buf = (uint8_t *)read_fixture(vocabs[v], &n);
        if (!buf)
            continue;
        rc = gguf_parse(buf, n, &g, &e);
        CHECKF(rc == STRIX_OK, "%s: %s", vocabs[v], e.msg);
        if (rc == STRIX_OK) {
            CHECK(gguf_n_tensors(g) == 0);
            const struct gguf_kv *tok = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_VT_STR, &e);
            CHECK(tok && tok->n >= 32000 && str_eq(tok->arr_strs[1], "<s>"));
            int add_bos = 0;
            CHECK(gguf_get_bool(g, "tokenizer.ggml.add_bos_token", 1, &add_bos, &e) == 0 &&
                  add_bos == 1);
        }
        gguf_free(g);
        free(buf);
    }
}

/* ---- 2. the writer ---- */

static uint8_t *write_and_read(gguf_writer *w, size_t *n)
{
    strix_error e = {0};
    const char *path = tmp_path();
    int rc = gguf_writer_write(w, path, &e);
    CHECKF(rc == STRIX_OK, "write: %s", e.msg);
    uint8_t *buf = (uint8_t *)test_read_file(path, n);
    unlink(path);
    return rc == STRIX_OK ? buf : (free(buf), NULL);
}

struct wt {
    const char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
    size_t nbytes;
};

static void test_writer_roundtrip(void)
{
    static const char *const strs[] = {"a", "", "<s>", "\xc3\xbcnic\xc3\xb6\x64\x65"};
    static const float f32s[] = {0.0f, -1.5f, 3.25e10f, 1e-20f, -0.0f};
    static const int32_t i32s[] = {0, -1, INT32_MAX, INT32_MIN};
    static const struct wt ts[] = {
        {"a.f32", DTYPE_F32, 2, {64, 3, 1, 1}, 64 * 3 * 4},
        {"b.f16", DTYPE_F16, 3, {32, 5, 2, 1}, 32 * 5 * 2 * 2},
        {"c.q8_0", DTYPE_Q8_0, 2, {64, 3, 1, 1}, 2 * 34 * 3},
        {"d.q4_0", DTYPE_Q4_0, 3, {32, 5, 2, 1}, 18 * 10},
        {"e.f32.4d", DTYPE_F32, 4, {3, 1, 2, 1}, 24},
        {"f.q8_0.1d", DTYPE_Q8_0, 1, {96, 1, 1, 1}, 3 * 34},
    };
    enum { NTS = sizeof ts / sizeof ts[0] };
    uint8_t *data[NTS];
    gguf_writer *w = gguf_writer_create();
    CHECK(w != NULL);
    CHECK(gguf_writer_add_u32(w, "r.u32", 0xdeadbeefu) == 0);
    CHECK(gguf_writer_add_i32(w, "r.i32", -123456) == 0);
    CHECK(gguf_writer_add_f32(w, "r.f32", 3.25f) == 0);
    CHECK(gguf_writer_add_bool(w, "r.true", 7) == 0);
    CHECK(gguf_writer_add_bool(w, "r.false", 0) == 0);
    CHECK(gguf_writer_add_str(w, "r.str", "h\xc3\xa9llo w\xc3\xb6rld") == 0);
    CHECK(gguf_writer_add_str(w, "r.empty", "") == 0);
    CHECK(gguf_writer_add_arr_str(w, "r.strs", strs, 4) == 0);
    CHECK(gguf_writer_add_arr_str(w, "r.strs0", NULL, 0) == 0);
    CHECK(gguf_writer_add_arr_f32(w, "r.f32s", f32s, 5) == 0);
    CHECK(gguf_writer_add_arr_i32(w, "r.i32s", i32s, 4) == 0);
    CHECK(gguf_writer_add_arr_f32(w, "r.f32s0", NULL, 0) == 0);
    CHECK(gguf_writer_add_u32(w, "general.alignment", 32) == 0);
    for (int i = 0; i < NTS; i++) {
        data[i] = malloc(ts[i].nbytes);
        for (size_t j = 0; j < ts[i].nbytes; j++)
            data[i][j] = (uint8_t)rng();
        CHECKF(gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, data[i],
                                      ts[i].nbytes) == 0,
               "%s", ts[i].name);
    }

    /* argument errors leave the writer as it was */
    int64_t ne[5] = {64, 3, 1, 1, 1};
    CHECK(gguf_writer_add_u32(w, "r.u32", 1) == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_str(w, "r.f32", "x") == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_u32(w, "", 1) == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_u32(w, "general.alignment", 64) == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_str(w, "x.null", NULL) == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "a.f32", DTYPE_F32, 2, ne, data[0], 768) == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "x", DTYPE_F32, 2, ne, data[0], 767) == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "x", DTYPE_F32, 0, ne, data[0], 768) == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "x", DTYPE_F32, 5, ne, data[0], 768) == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "x", 36, 2, ne, data[0], 768) == STRIX_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "", DTYPE_F32, 2, ne, data[0], 768) == STRIX_ERR_ARG);
    int64_t ne_bad[2] = {48, 3};
    CHECK(gguf_writer_add_tensor(w, "x", DTYPE_Q8_0, 2, ne_bad, data[0], 102) == STRIX_ERR_ARG);
    int64_t ne_zero[2] = {64, 0};
    CHECK(gguf_writer_add_tensor(w, "x", DTYPE_F32, 2, ne_zero, data[0], 0) == STRIX_ERR_ARG);

    size_t n = 0;
    uint8_t *buf = write_and_read(w, &n);
    gguf *g = NULL;
    strix_error e = {0};
    int rc = buf ? gguf_parse(buf, n, &g, &e) : -1;
    CHECKF(rc == STRIX_OK, "%s", e.msg);
    if (rc == STRIX_OK) {
        uint32_t v32, ver;
        uint64_t v64;
        memcpy(&ver, buf + 4, 4);
        CHECK(memcmp(buf, "GGUF", 4) == 0 && ver == 3 && gguf_version(g) == 3);
        memcpy(&v64, buf + 8, 8);
        CHECK(v64 == NTS && gguf_n_tensors(g) == NTS);
        memcpy(&v64, buf + 16, 8);
        CHECK(v64 == 13 && gguf_n_kv(g) == 13);
        CHECK(gguf_alignment(g) == 32 && gguf_data_offset(g) % 32 == 0);
        CHECK(gguf_get_u32(g, "r.u32", 1, &v32, &e) == 0 && v32 == 0xdeadbeefu);
        const struct gguf_kv *kv = gguf_find_kv(g, "r.i32");
        CHECK(kv && kv->type == GGUF_VT_I32 && kv->i == -123456);
        float f = 0;
        CHECK(gguf_get_f32(g, "r.f32", 1, &f, &e) == 0 && f == 3.25f);
        int b = -1;
        CHECK(gguf_get_bool(g, "r.true", 1, &b, &e) == 0 && b == 1);
        CHECK(gguf_get_bool(g, "r.false", 1, &b, &e) == 0 && b == 0);
        struct gguf_str s;
        CHECK(gguf_get_str(g, "r.str", 1, &s, &e) == 0 && str_eq(s, "h\xc3\xa9llo w\xc3\xb6rld"));
        CHECK(gguf_get_str(g, "r.empty", 1, &s, &e) == 0 && s.len == 0);
        kv = gguf_get_arr(g, "r.strs", GGUF_VT_STR, &e);
        CHECK(kv && kv->n == 4);
        for (int i = 0; kv && i < 4; i++)
            CHECK(str_eq(kv->arr_strs[i], strs[i]));
        kv = gguf_get_arr(g, "r.strs0", GGUF_VT_STR, &e);
        CHECK(kv && kv->n == 0);
        kv = gguf_get_arr(g, "r.f32s", GGUF_VT_F32, &e);
        CHECK(kv && kv->n == 5 && memcmp(kv->arr_data, f32s, sizeof f32s) == 0);
        for (int i = 0; kv && i < 5; i++)
            CHECK(gguf_arr_f32(kv, (uint64_t)i) == f32s[i]);
        kv = gguf_get_arr(g, "r.i32s", GGUF_VT_I32, &e);
        CHECK(kv && kv->n == 4 && memcmp(kv->arr_data, i32s, sizeof i32s) == 0);
        for (int i = 0; kv && i < 4; i++)
            CHECK(gguf_arr_i64(kv, (uint64_t)i) == i32s[i]);
        CHECK(kv && gguf_arr_f32(kv, 1) == -1.0f && gguf_arr_i64(kv, 4) == 0);
        kv = gguf_get_arr(g, "r.f32s0", GGUF_VT_F32, &e);
        CHECK(kv && kv->n == 0);
        /* the kvs come back in the order they were added */
        CHECK(str_eq(gguf_kv_at(g, 0)->key, "r.u32") &&
              str_eq(gguf_kv_at(g, 12)->key, "general.alignment"));

        uint64_t off = 0;
        for (int i = 0; i < NTS; i++) {
            const struct gguf_tensor *t = gguf_tensor_at(g, (uint64_t)i);
            CHECK(t && str_eq(t->name, ts[i].name) && gguf_find_tensor(g, ts[i].name) == t);
            if (!t)
                continue;
            CHECK(t->type == ts[i].type && t->n_dims == ts[i].n_dims);
            CHECK(memcmp(t->ne, ts[i].ne, sizeof t->ne) == 0);
            CHECK(t->nbytes == ts[i].nbytes && memcmp(t->data, data[i], t->nbytes) == 0);
            CHECK(t->offset == off && t->offset % 32 == 0);
            /* the padding after each tensor is zero */
            const uint8_t *p = (const uint8_t *)t->data + t->nbytes;
            int zero = 1;
            while ((size_t)(p - buf) % 32)
                zero &= *p++ == 0;
            CHECK(zero);
            off += (t->nbytes + 31) / 32 * 32;
        }
        CHECK(n == gguf_data_offset(g) + off);
    }
    gguf_free(g);
    free(buf);

    /* I/O errors name the path */
    rc = gguf_writer_write(w, "/nonexistent-strix-dir/x.gguf", &e);
    CHECK(rc == STRIX_ERR_IO && strstr(e.msg, "/nonexistent-strix-dir/x.gguf") != NULL);
    if (access("/dev/full", W_OK) == 0) {
        rc = gguf_writer_write(w, "/dev/full", &e);
        CHECKF(rc == STRIX_ERR_IO && strstr(e.msg, "/dev/full") != NULL, "rc %d: %s", rc, e.msg);
    }
    gguf_writer_free(w);
    gguf_writer_free(NULL);
    for (int i = 0; i < NTS; i++)
        free(data[i]);

    /* An empty writer gives a valid file with nothing in it. */
    w = gguf_writer_create();
    buf = write_and_read(w, &n);
    rc = buf ? gguf_parse(buf, n, &g, &e) : -1;
    CHECK(rc == 0 && n == 32 && gguf_n_kv(g) == 0 && gguf_n_tensors(g) == 0);
    gguf_free(g);
    free(buf);
    gguf_writer_free(w);
}

static char *dup_str(struct gguf_str s)
{
    char *c = malloc(s.len + 1);
    memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

/* Rewrites every kv and tensor of a parsed file through the writer. */
static gguf_writer *rewrite(const gguf *g, int *skipped)
{
    gguf_writer *w = gguf_writer_create();
    *skipped = 0;
    for (uint64_t i = 0; w && i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        char *key = dup_str(kv->key);
        int rc = -1;
        if (kv->type == GGUF_VT_U32) {
            rc = gguf_writer_add_u32(w, key, (uint32_t)kv->u);
        } else if (kv->type == GGUF_VT_I32) {
            rc = gguf_writer_add_i32(w, key, (int32_t)kv->i);
        } else if (kv->type == GGUF_VT_F32) {
            rc = gguf_writer_add_f32(w, key, (float)kv->f);
        } else if (kv->type == GGUF_VT_BOOL) {
            rc = gguf_writer_add_bool(w, key, (int)kv->u);
        } else if (kv->type == GGUF_VT_STR) {
            char *v = dup_str(kv->str);
            rc = gguf_writer_add_str(w, key, v);
            free(v);
        } else if (kv->type == GGUF_VT_ARR && kv->arr_type == GGUF_VT_STR) {
            char **v = malloc((kv->n ? kv->n : 1) * sizeof *v);
            for (uint64_t j = 0; j < kv->n; j++)
                v[j] = dup_str(kv->arr_strs[j]);
            rc = gguf_writer_add_arr_str(w, key, (const char *const *)v, kv->n);
            for (uint64_t j = 0; j < kv->n; j++)
                free(v[j]);
            free(v);
        } else if (kv->type == GGUF_VT_ARR &&
                   (kv->arr_type == GGUF_VT_F32 || kv->arr_type == GGUF_VT_I32)) {
            void *v = malloc(kv->n * 4 + 1);
            memcpy(v, kv->arr_data, kv->n * 4);
            rc = kv->arr_type == GGUF_VT_F32 ? gguf_writer_add_arr_f32(w, key, v, kv->n)
                                             : gguf_writer_add_arr_i32(w, key, v, kv->n);
            free(v);
        } else {
            ++*skipped;
            rc = 0;
        }
        CHECKF(rc == 0, "rewrite kv '%s': rc %d", key, rc);
        free(key);
    }
    for (uint64_t i = 0; w && i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        char *name = dup_str(t->name);
        int rc = gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
        CHECKF(rc == 0, "rewrite tensor '%s': rc %d", name, rc);
        free(name);
    }
    return w;
}

static void test_rewrite_fixture(void)
{
    size_t n, n2 = 0;
    uint8_t *buf = (uint8_t *)test_read_file(test_path("stories260K-ref.gguf"), &n);
    gguf *g = NULL, *g2 = NULL;
    strix_error e = {0};
    if (!buf || gguf_parse(buf, n, &g, &e) != 0) {
        CHECKF(0, "stories260K-ref.gguf: %s", e.msg);
        free(buf);
        return;
    }
    int skipped = 0;
    gguf_writer *w = rewrite(g, &skipped);
    CHECK(w != NULL && skipped == 0);
    uint8_t *buf2 = w ? write_and_read(w, &n2) : NULL;
    int rc = buf2 ? gguf_parse(buf2, n2, &g2, &e) : -1;
    CHECKF(rc == 0, "rewritten file: %s", e.msg);
    if (rc == 0) {
        CHECK(gguf_n_kv(g2) == gguf_n_kv(g) && gguf_n_tensors(g2) == gguf_n_tensors(g));
        for (uint64_t i = 0; i < gguf_n_tensors(g) && i < gguf_n_tensors(g2); i++) {
            const struct gguf_tensor *a = gguf_tensor_at(g, i), *b = gguf_tensor_at(g2, i);
            CHECK(a->name.len == b->name.len && memcmp(a->name.ptr, b->name.ptr, a->name.len) == 0);
            CHECK(a->type == b->type && memcmp(a->ne, b->ne, sizeof a->ne) == 0);
            CHECK(a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0);
        }
        /* The reference file was written by llama.cpp's tools with the
         * standard layout: the rewrite must reproduce it byte for byte. */
        CHECK(n2 == n && memcmp(buf, buf2, n) == 0);
    }
    gguf_free(g2);
    free(buf2);
    gguf_writer_free(w);
    gguf_free(g);
    free(buf);
}

/* ---- 3. corrupt files ---- */

struct bb {
    uint8_t *p;
    size_t n, cap;
};

static void bb_put(struct bb *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void bb_u8(struct bb *b, uint8_t v)
{
    bb_put(b, &v, 1);
}
static void bb_u16(struct bb *b, uint16_t v)
{
    bb_put(b, &v, 2);
}
static void bb_u32(struct bb *b, uint32_t v)
{
    bb_put(b, &v, 4);
}
static void bb_u64(struct bb *b, uint64_t v)
{
    bb_put(b, &v, 8);
}
static void bb_str(struct bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_kv(struct bb *b, const char *key, uint32_t type)
{
    bb_str(b, key);
    bb_u32(b, type);
}

/* An array value (after its type) of `levels` nested levels of arrays. */
static void bb_nest(struct bb *b, int levels)
{
    if (levels == 1) {
        bb_u32(b, GGUF_VT_U8);
        bb_u64(b, 2);
        bb_u16(b, 0x0201);
        return;
    }
    bb_u32(b, GGUF_VT_ARR);
    bb_u64(b, 2);
    bb_nest(b, levels - 1);
    bb_nest(b, levels - 1);
}

enum {
    /* these parse */
    C_OK,
    C_OK_V2,
    C_OK_NOALIGN,
    C_OK_ALIGN64,
    C_OK_NEST8,
    C_OK_NAME255,
    C_N_OK,
    /* these must fail */
    C_MAGIC = C_N_OK,
    C_V0,
    C_V1,
    C_V4,
    C_VMAX,
    C_NT63,
    C_NT40,
    C_NKV63,
    C_NKV40,
    C_NKV_MORE,
    C_KEYLEN_HUGE,
    C_STRLEN_HUGE,
    C_STRLEN_OVER,
    C_EMPTY_KEY,
    C_DUP_KEY,
    C_VT13,
    C_VTMAX,
    C_ARR_ET13,
    C_ARR_ETMAX,
    C_ARR_HUGE,
    C_ARR_HUGE_BYTES,
    C_ARRSTR_HUGE,
    C_ARR_BOOL2,
    C_BOOL2,
    C_NEST9,
    C_ALIGN0,
    C_ALIGN3,
    C_ALIGN_U64,
    C_ALIGN_STR,
    C_NDIMS0,
    C_NDIMS5,
    C_DIM0,
    C_DIMNEG,
    C_DIM_I64,
    C_DIM_SIZE,
    C_DIM_ROW,
    C_DIM_BIG,
    C_TYPE4,
    C_TYPE36,
    C_TYPE1000,
    C_Q80_NE0,
    C_OFF_PAST,
    C_OFF_SIZE_PAST,
    C_MISALIGNED,
    C_MISALIGNED64,
    C_DUP_TENSOR,
    C_EMPTY_NAME,
    C_LONG_NAME,
    C_NAMELEN_HUGE,
    C_NO_DATA,
    C_COUNT
};

static const struct {
    const char *name;
    int rc;
    const char *msg; /* part of the expected message */
} cases[C_COUNT] = {
    [C_OK] = {"valid", 0, NULL},
    [C_OK_V2] = {"valid v2", 0, NULL},
    [C_OK_NOALIGN] = {"valid, default alignment", 0, NULL},
    [C_OK_ALIGN64] = {"valid, alignment 64", 0, NULL},
    [C_OK_NEST8] = {"valid, arrays nested 8 deep", 0, NULL},
    [C_OK_NAME255] = {"valid, 255-byte name", 0, NULL},
    [C_MAGIC] = {"bad magic", STRIX_ERR_FORMAT, "not a GGUF file"},
    [C_V0] = {"version 0", STRIX_ERR_UNSUPPORTED, "version 0 is not supported"},
    [C_V1] = {"version 1", STRIX_ERR_UNSUPPORTED, "version 1 is not supported"},
    [C_V4] = {"version 4", STRIX_ERR_UNSUPPORTED, "version 4 is not supported"},
    [C_VMAX] = {"version 0xffffffff", STRIX_ERR_UNSUPPORTED, "version 4294967295"},
    [C_NT63] = {"n_tensors 2^63", STRIX_ERR_FORMAT, "9223372036854775808 tensors"},
    [C_NT40] = {"n_tensors 2^40", STRIX_ERR_FORMAT, "cannot fit"},
    [C_NKV63] = {"n_kv 2^63", STRIX_ERR_FORMAT, "9223372036854775808 kvs"},
    [C_NKV40] = {"n_kv 2^40", STRIX_ERR_FORMAT, "cannot fit"},
    [C_NKV_MORE] = {"n_kv one too many", STRIX_ERR_FORMAT, NULL},
    [C_KEYLEN_HUGE] = {"huge key length", STRIX_ERR_FORMAT,
                       "kv 0 at offset 24: key length 18446744073709551615 at offset 24 exceeds"},
    [C_STRLEN_HUGE] = {"huge string length", STRIX_ERR_FORMAT,
                       "kv 0 'general.architecture' at offset 24: string value length "
                       "18446744073709551615"},
    [C_STRLEN_OVER] = {"string length past end", STRIX_ERR_FORMAT, "exceeds remaining"},
    [C_EMPTY_KEY] = {"empty key", STRIX_ERR_FORMAT, "empty key"},
    [C_DUP_KEY] = {"duplicate key", STRIX_ERR_FORMAT, "duplicate key 't.u8' (kv 1 and kv 16)"},
    [C_VT13] = {"value type 13", STRIX_ERR_FORMAT, "kv 5 't.u32'"},
    [C_VTMAX] = {"value type 0xffffffff", STRIX_ERR_FORMAT, "unknown value type 4294967295"},
    [C_ARR_ET13] = {"array elem type 13", STRIX_ERR_FORMAT, "unknown array element type 13"},
    [C_ARR_ETMAX] = {"array elem type 0xffffffff", STRIX_ERR_FORMAT, "element type 4294967295"},
    [C_ARR_HUGE] = {"huge array count", STRIX_ERR_FORMAT, "array of 18446744073709551615 i32"},
    [C_ARR_HUGE_BYTES] = {"array bytes overflow", STRIX_ERR_FORMAT, "exceeds remaining"},
    [C_ARRSTR_HUGE] = {"huge string array", STRIX_ERR_FORMAT,
                       "array of 2305843009213693952 string at offset 368 exceeds"},
    [C_ARR_BOOL2] = {"bool array element 2", STRIX_ERR_FORMAT, "bool element 1"},
    [C_BOOL2] = {"bool value 2", STRIX_ERR_FORMAT, "bool value"},
    [C_NEST9] = {"arrays nested 9 deep", STRIX_ERR_FORMAT, "nested more than 8"},
    [C_ALIGN0] = {"alignment 0", STRIX_ERR_FORMAT, "alignment 0 is not"},
    [C_ALIGN3] = {"alignment 3", STRIX_ERR_FORMAT, "alignment 3 is not"},
    [C_ALIGN_U64] = {"alignment u64", STRIX_ERR_FORMAT, "has type u64"},
    [C_ALIGN_STR] = {"alignment string", STRIX_ERR_FORMAT, "has type string"},
    [C_NDIMS0] = {"n_dims 0", STRIX_ERR_FORMAT, "tensor 1 'w.q8'"},
    [C_NDIMS5] = {"n_dims 5", STRIX_ERR_FORMAT, "n_dims 5"},
    [C_DIM0] = {"dimension 0", STRIX_ERR_FORMAT, "ne[1] = 0"},
    [C_DIMNEG] = {"dimension -2", STRIX_ERR_FORMAT, "ne[1] = -2"},
    [C_DIM_I64] = {"dims overflow int64", STRIX_ERR_FORMAT, "overflows int64"},
    [C_DIM_SIZE] = {"bytes overflow size_t", STRIX_ERR_FORMAT, "overflows"},
    [C_DIM_ROW] = {"row bytes overflow", STRIX_ERR_FORMAT, "overflows"},
    [C_DIM_BIG] = {"dims past end", STRIX_ERR_FORMAT, "extends past end of file"},
    [C_TYPE4] = {"tensor type 4", STRIX_ERR_UNSUPPORTED, "unknown tensor type 4"},
    [C_TYPE36] = {"tensor type 36", STRIX_ERR_UNSUPPORTED, "unknown tensor type 36"},
    [C_TYPE1000] = {"tensor type 1000", STRIX_ERR_UNSUPPORTED, "unknown tensor type 1000"},
    [C_Q80_NE0] = {"Q8_0 ne0 48", STRIX_ERR_FORMAT, "not a multiple of the Q8_0 block size"},
    [C_OFF_PAST] = {"offset past end", STRIX_ERR_FORMAT, "tensor 2 'w.f16': data [offset"},
    [C_OFF_SIZE_PAST] = {"offset+size past end", STRIX_ERR_FORMAT, "extends past end of file"},
    [C_MISALIGNED] = {"misaligned offset", STRIX_ERR_FORMAT, "multiple of the alignment 32"},
    [C_MISALIGNED64] = {"offset not 64-aligned", STRIX_ERR_FORMAT, "multiple of the alignment 64"},
    [C_DUP_TENSOR] = {"duplicate tensor", STRIX_ERR_FORMAT, "duplicate tensor name 'w.q8'"},
    [C_EMPTY_NAME] = {"empty tensor name", STRIX_ERR_FORMAT, "empty name"},
    [C_LONG_NAME] = {"256-byte name", STRIX_ERR_FORMAT, "longer than 255"},
    [C_NAMELEN_HUGE] = {"huge name length", STRIX_ERR_FORMAT, "name length"},
    [C_NO_DATA] = {"no data section", STRIX_ERR_FORMAT, NULL},
};

#define NKV 17

static uint64_t pad_to(uint64_t n, uint64_t a)
{
    return (n + a - 1) / a * a;
}

/* A small file with every value kind and three tensors, broken as case c says. */
static void build(struct bb *b, int c)
{
    uint32_t align = c == C_OK_ALIGN64 || c == C_MISALIGNED64 ? 64 : 32;
    uint64_t nkv = NKV - (c == C_OK_NOALIGN);
    b->n = 0;
    bb_put(b, c == C_MAGIC ? "GGUG" : "GGUF", 4);
    bb_u32(b, c == C_V0      ? 0
              : c == C_V1    ? 1
              : c == C_V4    ? 4
              : c == C_VMAX  ? 0xffffffffu
              : c == C_OK_V2 ? 2
                             : 3);
    bb_u64(b, c == C_NT63 ? 1ull << 63 : c == C_NT40 ? 1ull << 40 : 3);
    bb_u64(b, c == C_NKV63 ? 1ull << 63 : c == C_NKV40 ? 1ull << 40 : nkv + (c == C_NKV_MORE));

    if (c == C_KEYLEN_HUGE) {
        bb_u64(b, UINT64_MAX);
        bb_put(b, "general.architecture", 20);
    } else {
        bb_str(b, c == C_EMPTY_KEY ? "" : "general.architecture");
    }
    bb_u32(b, GGUF_VT_STR);
    if (c == C_STRLEN_HUGE || c == C_STRLEN_OVER) {
        bb_u64(b, c == C_STRLEN_HUGE ? UINT64_MAX : 100000);
        bb_put(b, "llama", 5);
    } else {
        bb_str(b, "llama");
    }
    bb_kv(b, "t.u8", GGUF_VT_U8), bb_u8(b, 200);
    bb_kv(b, "t.i8", GGUF_VT_I8), bb_u8(b, (uint8_t)-5);
    bb_kv(b, "t.u16", GGUF_VT_U16), bb_u16(b, 65000);
    bb_kv(b, "t.i16", GGUF_VT_I16), bb_u16(b, (uint16_t)-30000);
    bb_kv(b, "t.u32", c == C_VT13 ? 13 : c == C_VTMAX ? 0xffffffffu : GGUF_VT_U32);
    bb_u32(b, 4000000000u);
    bb_kv(b, "t.i32", GGUF_VT_I32), bb_u32(b, (uint32_t)-2000000000);
    float f = 1.5f;
    bb_kv(b, "t.f32", GGUF_VT_F32), bb_put(b, &f, 4);
    bb_kv(b, "t.bool", GGUF_VT_BOOL), bb_u8(b, c == C_BOOL2 ? 2 : 1);
    bb_kv(b, "t.u64", GGUF_VT_U64), bb_u64(b, 1ull << 40);
    bb_kv(b, "t.i64", GGUF_VT_I64), bb_u64(b, (uint64_t) - (1ll << 40));
    double d = -2.25;
    bb_kv(b, "t.f64", GGUF_VT_F64), bb_put(b, &d, 8);
    bb_kv(b, "t.arr_i32", GGUF_VT_ARR);
    bb_u32(b, c == C_ARR_ET13 ? 13 : c == C_ARR_ETMAX ? 0xffffffffu : GGUF_VT_I32);
    bb_u64(b, c == C_ARR_HUGE ? UINT64_MAX : c == C_ARR_HUGE_BYTES ? (1ull << 62) + 1 : 3);
    bb_u32(b, 7), bb_u32(b, (uint32_t)-8), bb_u32(b, 9);
    bb_kv(b, "t.arr_str", GGUF_VT_ARR), bb_u32(b, GGUF_VT_STR);
    bb_u64(b, c == C_ARRSTR_HUGE ? 1ull << 61 : 3);
    bb_str(b, "ab"), bb_str(b, ""), bb_str(b, "<s>");
    bb_kv(b, "t.arr_bool", GGUF_VT_ARR), bb_u32(b, GGUF_VT_BOOL), bb_u64(b, 3);
    bb_u8(b, 1), bb_u8(b, c == C_ARR_BOOL2 ? 2 : 0), bb_u8(b, 1);
    bb_kv(b, "t.nested", GGUF_VT_ARR);
    bb_nest(b, c == C_OK_NEST8 ? 8 : c == C_NEST9 ? 9 : 2);
    if (c != C_OK_NOALIGN) {
        bb_kv(b, c == C_DUP_KEY ? "t.u8" : "general.alignment",
              c == C_ALIGN_U64   ? GGUF_VT_U64
              : c == C_ALIGN_STR ? GGUF_VT_STR
                                 : GGUF_VT_U32);
        if (c == C_ALIGN_U64)
            bb_u64(b, 32);
        else if (c == C_ALIGN_STR)
            bb_str(b, "32");
        else
            bb_u32(b, c == C_ALIGN0 ? 0 : c == C_ALIGN3 ? 3 : align);
    }

    /* tensor 0: F32 {64, 3}, 768 bytes */
    uint64_t off1 = pad_to(768, align), off2 = pad_to(off1 + 136, align);
    uint64_t data_len = pad_to(off2 + 96, align);
    char name[300];
    memset(name, 'x', sizeof name);
    if (c == C_NAMELEN_HUGE) {
        bb_u64(b, UINT64_MAX - 5);
        bb_put(b, "w.f32", 5);
    } else if (c == C_LONG_NAME || c == C_OK_NAME255) {
        bb_u64(b, c == C_LONG_NAME ? 256 : 255);
        bb_put(b, name, c == C_LONG_NAME ? 256 : 255);
    } else {
        bb_str(b, "w.f32");
    }
    bb_u32(b, 2);
    bb_u64(b, c == C_DIM_SIZE  ? 1ull << 61
              : c == C_DIM_ROW ? 1ull << 62
              : c == C_DIM_BIG ? 1ull << 40
                               : 64);
    bb_u64(b, c == C_DIM_SIZE ? 2 : c == C_DIM_ROW || c == C_DIM_BIG ? 1 : 3);
    bb_u32(b, DTYPE_F32);
    bb_u64(b, 0);
    /* tensor 1: Q8_0 {64, 2}, 136 bytes */
    bb_str(b, c == C_EMPTY_NAME ? "" : "w.q8");
    uint32_t nd = c == C_NDIMS0 ? 0 : c == C_NDIMS5 ? 5 : c == C_DIM_I64 ? 3 : 2;
    bb_u32(b, nd);
    const uint64_t ne1[5] = {c == C_Q80_NE0 ? 48 : 64,
                             c == C_DIM0      ? 0
                             : c == C_DIMNEG  ? (uint64_t)-2
                             : c == C_DIM_I64 ? 1ull << 40
                                              : 2,
                             1ull << 40, 1, 1};
    for (uint32_t i = 0; i < nd; i++)
        bb_u64(b, ne1[i]);
    bb_u32(b, c == C_TYPE4 ? 4 : c == C_TYPE36 ? 36 : c == C_TYPE1000 ? 1000 : DTYPE_Q8_0);
    bb_u64(b, c == C_MISALIGNED ? off1 + 2 : c == C_MISALIGNED64 ? 800 : off1);
    /* tensor 2: F16 {8, 1, 2, 3}, 96 bytes */
    bb_str(b, c == C_DUP_TENSOR ? "w.q8" : "w.f16");
    bb_u32(b, 4);
    bb_u64(b, 8), bb_u64(b, 1), bb_u64(b, 2), bb_u64(b, 3);
    bb_u32(b, DTYPE_F16);
    bb_u64(b, c == C_OFF_PAST ? 1ull << 40 : c == C_OFF_SIZE_PAST ? data_len - align : off2);
    if (c == C_NO_DATA)
        return;
    while (b->n % align)
        bb_u8(b, 0);
    for (uint64_t i = 0; i < data_len; i++)
        bb_u8(b, (uint8_t)(i * 7 + 1));
}

static void check_valid_case(const gguf *g, int c)
{
    const struct gguf_kv *kv;
    strix_error e = {0};
    CHECK(gguf_version(g) == (c == C_OK_V2 ? 2u : 3u));
    CHECK(gguf_alignment(g) == (c == C_OK_ALIGN64 ? 64u : 32u));
    CHECK(gguf_n_kv(g) == NKV - (c == C_OK_NOALIGN) && gguf_n_tensors(g) == 3);
    CHECK((kv = gguf_find_kv(g, "t.u8")) && kv->type == GGUF_VT_U8 && kv->u == 200 && kv->i == 200);
    CHECK((kv = gguf_find_kv(g, "t.i8")) && kv->i == -5 && kv->u == (uint64_t)-5);
    CHECK((kv = gguf_find_kv(g, "t.u16")) && kv->u == 65000);
    CHECK((kv = gguf_find_kv(g, "t.i16")) && kv->i == -30000);
    CHECK((kv = gguf_find_kv(g, "t.u32")) && kv->u == 4000000000u);
    CHECK((kv = gguf_find_kv(g, "t.i32")) && kv->i == -2000000000);
    CHECK((kv = gguf_find_kv(g, "t.f32")) && kv->f == 1.5);
    CHECK((kv = gguf_find_kv(g, "t.bool")) && kv->u == 1 && kv->n == 1);
    CHECK((kv = gguf_find_kv(g, "t.u64")) && kv->u == 1ull << 40);
    CHECK((kv = gguf_find_kv(g, "t.i64")) && kv->i == -(1ll << 40));
    CHECK((kv = gguf_find_kv(g, "t.f64")) && kv->f == -2.25);
    CHECK((kv = gguf_find_kv(g, "t.nested")) && kv->arr_type == GGUF_VT_ARR && kv->n == 2 &&
          !kv->arr_data && !kv->arr_strs);
    CHECK(gguf_find_kv(g, "t.u") == NULL && gguf_find_kv(g, "t.u80") == NULL);
    const struct gguf_tensor *t = gguf_find_tensor(g, "w.f16");
    CHECK(t && t->n_dims == 4 && t->ne[3] == 3 && t->nbytes == 96 &&
          (size_t)t->offset == (c == C_OK_ALIGN64 ? 960 : 928));
    CHECK((t = gguf_tensor_at(g, 1)) && t->type == DTYPE_Q8_0 && t->nbytes == 136);
    if (c != C_OK)
        return;
    /* the getters, on the full valid case */
    uint32_t u = 0;
    float f = 0;
    int b = 0;
    struct gguf_str s;
    CHECK(gguf_get_u32(g, "t.u32", 1, &u, &e) == 0 && u == 4000000000u);
    CHECK(gguf_get_u32(g, "t.u8", 1, &u, &e) == 0 && u == 200);
    CHECK(gguf_get_u32(g, "t.u16", 0, &u, &e) == 0 && u == 65000);
    CHECK(gguf_get_u32(g, "t.i8", 1, &u, &e) == STRIX_ERR_FORMAT && strstr(e.msg, "-5"));
    CHECK(gguf_get_u32(g, "t.u64", 1, &u, &e) == STRIX_ERR_FORMAT);
    CHECK(gguf_get_u32(g, "t.f32", 1, &u, &e) == STRIX_ERR_FORMAT && strstr(e.msg, "f32"));
    CHECK(gguf_get_u32(g, "t.bool", 1, &u, &e) == STRIX_ERR_FORMAT);
    e.code = 77;
    u = 5;
    CHECK(gguf_get_u32(g, "t.missing", 0, &u, &e) == STRIX_ERR_ARG && u == 5 && e.code == 77);
    CHECK(gguf_get_u32(g, "t.missing", 1, &u, &e) == STRIX_ERR_FORMAT &&
          strstr(e.msg, "t.missing") && u == 5);
    CHECK(gguf_get_f32(g, "t.f32", 1, &f, &e) == 0 && f == 1.5f);
    CHECK(gguf_get_f32(g, "t.f64", 1, &f, &e) == 0 && f == -2.25f);
    CHECK(gguf_get_f32(g, "t.u32", 1, &f, &e) == STRIX_ERR_FORMAT);
    CHECK(gguf_get_f32(g, "t.missing", 0, &f, &e) == STRIX_ERR_ARG);
    CHECK(gguf_get_bool(g, "t.bool", 1, &b, &e) == 0 && b == 1);
    CHECK(gguf_get_bool(g, "t.u8", 1, &b, &e) == STRIX_ERR_FORMAT);
    CHECK(gguf_get_str(g, "general.architecture", 1, &s, &e) == 0 && str_eq(s, "llama"));
    CHECK(gguf_get_str(g, "t.arr_str", 1, &s, &e) == STRIX_ERR_FORMAT);
    CHECK(gguf_get_str(g, "t.missing", 0, &s, &e) == STRIX_ERR_ARG);
    kv = gguf_get_arr(g, "t.arr_i32", GGUF_VT_I32, &e);
    CHECK(kv && kv->n == 3 && gguf_arr_i64(kv, 0) == 7 && gguf_arr_i64(kv, 1) == -8 &&
          gguf_arr_f32(kv, 2) == 9.0f && gguf_arr_i64(kv, 3) == 0);
    CHECK(gguf_get_arr(g, "t.arr_i32", GGUF_VT_F32, &e) == NULL && e.code == STRIX_ERR_FORMAT);
    CHECK(gguf_get_arr(g, "t.u32", GGUF_VT_U32, &e) == NULL && e.code == STRIX_ERR_FORMAT);
    CHECK(gguf_get_arr(g, "t.missing", GGUF_VT_U32, &e) == NULL && e.code == STRIX_ERR_ARG);
    kv = gguf_get_arr(g, "t.arr_bool", GGUF_VT_BOOL, &e);
    CHECK(kv && gguf_arr_i64(kv, 0) == 1 && gguf_arr_f32(kv, 1) == 0.0f);
    kv = gguf_get_arr(g, "t.arr_str", GGUF_VT_STR, &e);
    CHECK(kv && kv->n == 3 && str_eq(kv->arr_strs[2], "<s>") && kv->arr_strs[1].len == 0 &&
          gguf_arr_i64(kv, 0) == 0);
}

static void test_corrupt_cases(void)
{
    struct bb b = {0};
    for (int c = 0; c < C_COUNT; c++) {
        build(&b, c);
        if (c < C_N_OK) {
            uint8_t *copy = malloc(b.n);
            memcpy(copy, b.p, b.n);
            gguf *g = NULL;
            strix_error e = {0};
            int rc = gguf_parse(copy, b.n, &g, &e);
            CHECKF(rc == 0, "%s: %s", cases[c].name, e.msg);
            if (g) {
                check_valid_case(g, c);
                walk(g);
            }
            gguf_free(g);
            free(copy);
            continue;
        }
        long allocs = util_alloc_count();
        int rc = expect_fail(b.p, b.n, cases[c].name, cases[c].msg);
        CHECKF(rc == cases[c].rc, "%s: rc %d, expected %d", cases[c].name, rc, cases[c].rc);
        if (c >= C_NT63 && c <= C_NKV40) /* huge counts fail before any allocation */
            CHECK(util_alloc_count() == allocs);
    }

    /* Each byte of the valid file flipped in turn: no crash, and whatever
     * parses points only inside the buffer. */
    build(&b, C_OK);
    int n_ok = 0;
    uint8_t *exact = malloc(b.n); /* no spare capacity for a read past the end to hide in */
    CHECK(exact != NULL);
    if (exact)
        memcpy(exact, b.p, b.n);
    for (size_t i = 0; exact && i < b.n; i++)
        n_ok += parses_flipped(exact, b.n, i, "small");
    free(exact);
    if (verbose)
        printf("  byte flips: %d of %zu still parse\n", n_ok, b.n);
    CHECK(n_ok > 0 && n_ok < (int)b.n);
    /* ... and truncated at every length */
    for (size_t cut = 0; cut < b.n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, b.p, cut);
        gguf *g = NULL;
        int rc = gguf_parse(copy, cut, &g, NULL);
        CHECKF(rc != 0 && g == NULL, "small file cut at %zu", cut);
        gguf_free(g);
        free(copy);
    }
    free(b.p);
}

static void test_truncated_fixture(void)
{
    size_t n;
    uint8_t *buf = (uint8_t *)test_read_file(test_path("stories260K-ref.gguf"), &n);
    gguf *g = NULL;
    if (!buf || gguf_parse(buf, n, &g, NULL) != 0) {
        CHECK(0);
        free(buf);
        return;
    }
    /* section boundaries, from the parsed layout */
    static const size_t head[] = {0, 1, 3, 4, 5, 8, 12, 16, 20, 24, 25, 31, 32};
    size_t nc = 0, data_end = 0, hdr_end = 0, data_off = gguf_data_offset(g);
    size_t *cuts = malloc((13 + 3 * gguf_n_kv(g) + 3 * gguf_n_tensors(g) + 5 + 200) * sizeof *cuts);
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        cuts[nc++] = head[i];
    for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        size_t key_at = (size_t)((const uint8_t *)kv->key.ptr - buf);
        cuts[nc++] = key_at - 8;                           /* end of the previous kv */
        cuts[nc++] = key_at + (size_t)kv->key.len;         /* before the value type */
        cuts[nc++] = key_at + (size_t)kv->key.len + 4 + 3; /* inside the value */
    }
    for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        size_t at = (size_t)((const uint8_t *)t->name.ptr - buf);
        cuts[nc++] = at - 8;                       /* end of the previous kv or tensor info */
        cuts[nc++] = at + (size_t)t->name.len + 2; /* inside n_dims */
        hdr_end = at + (size_t)t->name.len + 4 + 8 * t->n_dims + 4 + 8;
        size_t end = (size_t)((const uint8_t *)t->data - buf) + t->nbytes;
        cuts[nc++] = end - t->nbytes / 2; /* inside the data */
        data_end = end > data_end ? end : data_end;
    }
    cuts[nc++] = hdr_end;
    if (hdr_end + 1 < data_off)
        cuts[nc++] = hdr_end + 1; /* inside the padding */
    cuts[nc++] = data_off;
    cuts[nc++] = data_off + 1;
    cuts[nc++] = data_end - 1;
    size_t n_boundary = nc;
    while (nc < n_boundary + 200)
        cuts[nc++] = (size_t)(rng() % n);
    gguf_free(g);

    for (size_t i = 0; i < nc; i++) {
        char what[64];
        snprintf(what, sizeof what, "stories cut at %zu", cuts[i]);
        if (cuts[i] < data_end) {
            expect_fail(buf, cuts[i], what, NULL);
        } else {
            CHECKF(gguf_parse(buf, cuts[i], &g, NULL) == 0, "%s", what);
            gguf_free(g);
        }
    }
    if (verbose)
        printf("  %zu boundary cuts, %zu random cuts\n", n_boundary, nc - n_boundary);

    /* Each header byte flipped in turn, in place: no crash, and whatever
     * parses points only inside the file. */
    free(cuts);
    int n_ok = 0;
    for (size_t i = 0; i < data_off; i++)
        n_ok += parses_flipped(buf, n, i, "stories");
    if (verbose)
        printf("  stories header flips: %d of %zu still parse\n", n_ok, data_off);
    free(buf);
}

/* ---- 4. allocation failures ---- */

static void test_alloc_failures(void)
{
    size_t n;
    uint8_t *buf = (uint8_t *)test_read_file(test_path("stories260K-ref.gguf"), &n);
    if (!buf) {
        CHECK(0);
        return;
    }
    int rc = -1, fails = 0, bad = 0;
    long k;
    for (k = 0; k < 1000 && rc != 0; k++) {
        gguf *g = NULL;
        strix_error e = {0};
        util_fail_alloc_after(k);
        rc = gguf_parse(buf, n, &g, &e);
        util_fail_alloc_after(-1);
        if (rc != 0) {
            fails++;
            bad += rc != STRIX_ERR_NOMEM || g != NULL || e.msg[0] == '\0';
        }
        gguf_free(g);
    }
    CHECKF(rc == 0 && fails > 0 && bad == 0, "parse: rc %d after %ld steps, %d bad", rc, k, bad);

    /* the writer, re-writing the fixture: every failure is reported */
    gguf *g = NULL;
    CHECK(gguf_parse(buf, n, &g, NULL) == 0);
    rc = -1;
    fails = 0;
    for (k = 0; g && k < 2000 && rc != 0; k++) {
        util_fail_alloc_after(k);
        gguf_writer *w = gguf_writer_create();
        rc = w ? 0 : STRIX_ERR_NOMEM;
        for (uint64_t i = 0; rc == 0 && i < gguf_n_kv(g); i++) {
            const struct gguf_kv *kv = gguf_kv_at(g, i);
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
            if (kv->type == GGUF_VT_U32)
                rc = gguf_writer_add_u32(w, key, (uint32_t)kv->u);
            else if (kv->type == GGUF_VT_STR)
                rc = gguf_writer_add_str(w, key, "x");
            else if (kv->type == GGUF_VT_ARR && kv->arr_type == GGUF_VT_STR)
                rc = gguf_writer_add_arr_str(w, key, (const char *const[]){"a", "b"}, 2);
            else if (kv->type == GGUF_VT_ARR)
                rc = gguf_writer_add_arr_i32(w, key, (const int32_t[]){1, 2}, 2);
            else
                rc = gguf_writer_add_f32(w, key, 1.0f);
        }
        for (uint64_t i = 0; rc == 0 && i < gguf_n_tensors(g); i++) {
            const struct gguf_tensor *t = gguf_tensor_at(g, i);
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
            rc = gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
        }
        util_fail_alloc_after(-1);
        if (rc != 0) {
            fails++;
            CHECKF(rc == STRIX_ERR_NOMEM, "writer step %ld: rc %d", k, rc);
        }
        gguf_writer_free(w);
    }
    CHECKF(rc == 0 && fails > 0, "writer: rc %d after %ld steps", rc, k);
    gguf_free(g);
    free(buf);
}

int main(void)
{
    verbose = getenv("STRIX_TEST_VERBOSE") != NULL;
    test_fixtures();
    test_writer_roundtrip();
    test_rewrite_fixture();
    test_corrupt_cases();
    test_truncated_fixture();
    test_alloc_failures();
    gguf_free(NULL);
    TEST_MAIN_END();
}
