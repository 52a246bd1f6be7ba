/*
 * test_files.c - what the library writes: every key of a source GGUF survives
 * quantize and convert (key by key, every value type, arrays of arrays
 * included) except the ones the conversion rewrites; a model or KL base is
 * never written onto the model's own file (same path, symbolic link, hard
 * link); a failed write (unwritable directory, file size limit hit mid-way)
 * leaves the old target and no temporary file.
 *
 * The source file is crafted here: the keys of a converted llama2.c model
 * plus hand-encoded values (little-endian bytes written out in this file,
 * not by the writer's own encoders).
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/gguf.h"
#include "harness.h"
#include "strix.h"

static char dir[512];

static const char *tpath(const char *name)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* ---- hand-encoded values ---- */

struct bytes {
    uint8_t b[512];
    size_t n;
};

static void put_le(struct bytes *o, uint64_t v, int size)
{
    for (int i = 0; i < size; i++)
        o->b[o->n++] = (uint8_t)(v >> (8 * i));
}

static void put_s(struct bytes *o, const char *s)
{
    put_le(o, strlen(s), 8);
    memcpy(o->b + o->n, s, strlen(s));
    o->n += strlen(s);
}

/* The value of a GGUF array of n strings. */
static void put_strs(struct bytes *o, int n, const char *const *s)
{
    put_le(o, GGUF_VT_STR, 4);
    put_le(o, (uint64_t)n, 8);
    for (int i = 0; i < n; i++)
        put_s(o, s[i]);
}

struct extra {
    const char *key;
    uint32_t type;
    struct bytes v;
};

#define N_EXTRA 40
static struct extra extras[N_EXTRA];
static int n_extra;

static struct bytes *add_extra(const char *key, uint32_t type)
{
    struct extra *e = &extras[n_extra++];
    e->key = key;
    e->type = type;
    e->v.n = 0;
    return &e->v;
}

static void make_extras(void)
{
    static const int sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    static const char *const scalar_keys[] = {
        "custom.u8",  "custom.i8",   "custom.u16", "custom.i16", "custom.u32",
        "custom.i32", "custom.f32",  "custom.bool", NULL,        NULL,
        "custom.u64", "custom.i64",  "custom.f64"};
    static const char *const array_keys[] = {
        "custom.arr.u8",  "custom.arr.i8",  "custom.arr.u16", "custom.arr.i16",
        "custom.arr.u32", "custom.arr.i32", "custom.arr.f32", "custom.arr.bool",
        NULL,             NULL,             "custom.arr.u64", "custom.arr.i64",
        "custom.arr.f64"};
    struct bytes *b;
    for (uint32_t t = 0; t < GGUF_VT_COUNT; t++) {
        if (!scalar_keys[t])
            continue;
        const uint64_t v = t == GGUF_VT_BOOL ? 1 : 0x8877665544332211ull >> (t % 5);
        put_le(add_extra(scalar_keys[t], t), v, sizes[t]);
        b = add_extra(array_keys[t], GGUF_VT_ARR);
        put_le(b, t, 4);
        put_le(b, 3, 8);
        for (int i = 0; i < 3; i++)
            put_le(b, t == GGUF_VT_BOOL ? (uint64_t)(i & 1) : v + (uint64_t)i, sizes[t]);
    }
    put_s(add_extra("custom.str", GGUF_VT_STR), "a value with spaces, ümlauts and \"quotes\"");
    put_strs(add_extra("custom.arr.str", GGUF_VT_ARR), 3,
             (const char *const[]){"one", "", "three"});
    b = add_extra("custom.arr.empty", GGUF_VT_ARR);
    put_le(b, GGUF_VT_I32, 4);
    put_le(b, 0, 8);
    b = add_extra("custom.arr.arr", GGUF_VT_ARR); /* [[1, 2], [3]] of u16 */
    put_le(b, GGUF_VT_ARR, 4);
    put_le(b, 2, 8);
    put_le(b, GGUF_VT_U16, 4);
    put_le(b, 2, 8);
    put_le(b, 1, 2);
    put_le(b, 2, 2);
    put_le(b, GGUF_VT_U16, 4);
    put_le(b, 1, 8);
    put_le(b, 3, 2);
    put_s(add_extra("tokenizer.chat_template", GGUF_VT_STR),
          "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}");
    put_le(add_extra("tokenizer.ggml.eot_token_id", GGUF_VT_U32), 2, 4);
    put_le(add_extra("tokenizer.ggml.padding_token_id", GGUF_VT_U32), 0, 4);
    put_le(add_extra("tokenizer.ggml.prefix_token_id", GGUF_VT_U32), 3, 4);
    put_le(add_extra("tokenizer.ggml.suffix_token_id", GGUF_VT_U32), 4, 4);
    put_le(add_extra("tokenizer.ggml.middle_token_id", GGUF_VT_U32), 5, 4);
    put_le(add_extra("tokenizer.ggml.add_eos_token", GGUF_VT_BOOL), 0, 1);
    put_s(add_extra("general.author", GGUF_VT_STR), "someone");
    put_s(add_extra("general.license", GGUF_VT_STR), "MIT");
    put_strs(add_extra("general.tags", GGUF_VT_ARR), 2, (const char *const[]){"story", "tiny"});
    /* rewritten by every conversion */
    put_le(add_extra("general.quantization_version", GGUF_VT_U32), 1, 4);
}

static int rewritten(const struct gguf_str *k)
{
    return (k->len == 17 && memcmp(k->ptr, "general.file_type", 17) == 0) ||
           (k->len == 28 && memcmp(k->ptr, "general.quantization_version", 28) == 0);
}

/* Parses a file; the caller frees *buf and the handle. */
static gguf *parse_file(const char *path, char **buf)
{
    size_t len;
    *buf = test_read_file(path, &len);
    gguf *g = NULL;
    strix_error err;
    if (*buf && gguf_parse((const uint8_t *)*buf, len, &g, &err) != STRIX_OK)
        fprintf(stderr, "%s: %s\n", path, err.msg);
    return g;
}

/* The crafted source: base's keys and tensors, then the extras. */
static int craft(const char *base, const char *out)
{
    char *buf;
    gguf *g = parse_file(base, &buf);
    gguf_writer *w = gguf_writer_create();
    int rc = g && w ? STRIX_OK : STRIX_ERR_ARG;
    for (uint64_t i = 0; rc == STRIX_OK && i < gguf_n_kv(g); i++)
        if (!rewritten(&gguf_kv_at(g, i)->key))
            rc = gguf_writer_copy_kv(w, gguf_kv_at(g, i));
    for (int i = 0; rc == STRIX_OK && i < n_extra; i++) {
        struct gguf_kv kv;
        memset(&kv, 0, sizeof kv);
        kv.key.ptr = extras[i].key;
        kv.key.len = strlen(extras[i].key);
        kv.type = extras[i].type;
        kv.raw = extras[i].v.b;
        kv.raw_len = extras[i].v.n;
        rc = gguf_writer_copy_kv(w, &kv);
    }
    for (uint64_t i = 0; rc == STRIX_OK && i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        rc = gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    strix_error err;
    if (rc == STRIX_OK)
        rc = gguf_writer_write(w, out, &err);
    gguf_writer_free(w);
    gguf_free(g);
    free(buf);
    return rc;
}

/* Every key of src is in out with the same type and bytes, except the
 * rewritten ones; out has no key src lacks but those. */
static void check_keys(const char *src, const char *out, uint32_t ftype, int quantized)
{
    char *bs, *bo;
    gguf *gs = parse_file(src, &bs), *go = parse_file(out, &bo);
    CHECKF(gs && go, "%s, %s", src, out);
    if (!gs || !go)
        goto done;
    int n_same = 0;
    for (uint64_t i = 0; i < gguf_n_kv(gs); i++) {
        const struct gguf_kv *a = gguf_kv_at(gs, i);
        if (rewritten(&a->key))
            continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)a->key.len, a->key.ptr);
        const struct gguf_kv *b = gguf_find_kv(go, key);
        CHECKF(b && b->type == a->type && b->raw_len == a->raw_len &&
                   memcmp(b->raw, a->raw, a->raw_len) == 0,
               "%s: key '%s' %s", out, key, b ? "differs" : "is missing");
        n_same += b != NULL;
    }
    CHECKF(n_same >= n_extra + 10, "%d keys compared", n_same);
    for (uint64_t i = 0; i < gguf_n_kv(go); i++) {
        const struct gguf_kv *b = gguf_kv_at(go, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)b->key.len, b->key.ptr);
        CHECKF(rewritten(&b->key) || gguf_find_kv(gs, key), "%s: key '%s' is new", out, key);
    }
    const struct gguf_kv *ft = gguf_find_kv(go, "general.file_type");
    CHECKF(ft && ft->type == GGUF_VT_U32 && ft->u == ftype, "%s: file type", out);
    const struct gguf_kv *qv = gguf_find_kv(go, "general.quantization_version");
    if (quantized)
        CHECKF(qv && qv->type == GGUF_VT_U32 && qv->u == 2, "%s: quantization version", out);
    else
        CHECKF(!qv, "%s: quantization version in a file without quantized weights", out);
done:
    gguf_free(gs);
    gguf_free(go);
    free(bs);
    free(bo);
}

static int same_bytes(const char *path, const char *want, size_t n)
{
    size_t len;
    char *b = test_read_file(path, &len);
    const int same = b && len == n && memcmp(b, want, n) == 0;
    free(b);
    return same;
}

static int n_tmp_files(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/strix-files-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    strix_model *m = NULL;
    struct strix_model_params mp = strix_model_default_params();
    char vocab[1024];
    snprintf(vocab, sizeof vocab, "%s", test_path("tok512.bin"));
    mp.vocab_path = vocab;
    strix_error err;
    CHECK(strix_model_load(test_path("stories260K.bin"), &mp, &m, &err) == STRIX_OK);
    CHECK(m && strix_model_save_gguf(m, tpath("base.gguf"), NULL, &err) == STRIX_OK);
    strix_model_free(m);
    m = NULL;
    make_extras();
    CHECK(craft(tpath("base.gguf"), tpath("src.gguf")) == STRIX_OK);
    CHECKF(strix_model_load(tpath("src.gguf"), NULL, &m, &err) == STRIX_OK, "%s", err.msg);
    if (!m)
        goto out;

    /* metadata survives quantize (lowercase type too) and convert */
    struct strix_quantize_params qp = strix_quantize_default_params();
    qp.n_threads = 2;
    CHECKF(strix_model_quantize(m, tpath("q8.gguf"), "q8_0", &qp, &err) == STRIX_OK, "%s",
           err.msg);
    check_keys(tpath("src.gguf"), tpath("q8.gguf"), 7, 1);
    CHECK(strix_model_quantize(m, tpath("q4km.gguf"), "Q4_K_M", &qp, &err) == STRIX_OK);
    check_keys(tpath("src.gguf"), tpath("q4km.gguf"), 15, 1);
    CHECK(strix_model_save_gguf(m, tpath("f16.gguf"), "F16", &err) == STRIX_OK);
    check_keys(tpath("src.gguf"), tpath("f16.gguf"), 1, 0);
    CHECK(strix_model_save_gguf(m, tpath("same.gguf"), NULL, &err) == STRIX_OK);
    check_keys(tpath("src.gguf"), tpath("same.gguf"), 0, 0);
    /* and the copy is what the model reads: the template comes back */
    strix_model *m2 = NULL;
    char tmpl[512];
    CHECK(strix_model_load(tpath("q8.gguf"), NULL, &m2, &err) == STRIX_OK);
    CHECK(m2 && strix_model_meta_str(m2, "tokenizer.chat_template", tmpl, sizeof tmpl) > 0 &&
          strstr(tmpl, "<|im_start|>"));
    strix_model_free(m2);
    /* a mix converted without a type keeps its file type (15: Q4_K_M) */
    m2 = NULL;
    CHECK(strix_model_load(tpath("q4km.gguf"), NULL, &m2, &err) == STRIX_OK);
    CHECK(m2 && strix_model_save_gguf(m2, tpath("q4km-copy.gguf"), NULL, &err) == STRIX_OK);
    check_keys(tpath("q4km.gguf"), tpath("q4km-copy.gguf"), 15, 1);
    strix_model_free(m2);

    /* never onto the model's own file: by its path, a symbolic link, a hard link */
    size_t src_len;
    char *src = test_read_file(tpath("src.gguf"), &src_len);
    CHECK(symlink(tpath("src.gguf"), tpath("link.gguf")) == 0);
    CHECK(link(tpath("src.gguf"), tpath("hard.gguf")) == 0);
    const char *own[] = {"src.gguf", "link.gguf", "hard.gguf"};
    for (int i = 0; i < 3; i++) {
        CHECKF(strix_model_quantize(m, tpath(own[i]), "Q8_0", &qp, &err) == STRIX_ERR_ARG &&
                   strstr(err.msg, "refusing"),
               "quantize onto %s", own[i]);
        CHECKF(strix_model_save_gguf(m, tpath(own[i]), "F16", &err) == STRIX_ERR_ARG,
               "save onto %s", own[i]);
        CHECK(same_bytes(tpath("src.gguf"), src, src_len));
    }
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    strix_context *ctx = NULL;
    CHECK(strix_context_create(m, &cp, &ctx, &err) == STRIX_OK);
    strix_token toks[128];
    for (int i = 0; i < 128; i++)
        toks[i] = (strix_token)(1 + i * 7 % 500);
    struct strix_ppl_params pp = strix_ppl_default_params();
    struct strix_ppl_result pr = {.struct_size = sizeof pr};
    pp.n_ctx = 64;
    for (int i = 0; ctx && i < 3; i++) {
        pp.kl_save = tpath(own[i]);
        CHECKF(strix_perplexity(m, ctx, toks, 128, &pp, &pr, &err) == STRIX_ERR_ARG,
               "KL base onto %s", own[i]);
        CHECK(same_bytes(tpath("src.gguf"), src, src_len));
    }
    /* a KL base that fails to score leaves the old file as it was */
    FILE *f = fopen(tpath("old.kl"), "wb");
    CHECK(f && fputs("old", f) >= 0 && fclose(f) == 0);
    pp.kl_save = tpath("old.kl");
    pp.n_ctx = 2; /* scores nothing: an error */
    CHECK(ctx && strix_perplexity(m, ctx, toks, 128, &pp, &pr, &err) == STRIX_ERR_ARG);
    CHECK(same_bytes(tpath("old.kl"), "old", 3));
    pp.n_ctx = 64;
    CHECK(ctx && strix_perplexity(m, ctx, toks, 128, &pp, &pr, &err) == STRIX_OK);
    CHECK(!same_bytes(tpath("old.kl"), "old", 3));
    strix_context_free(ctx);
    free(src);

    /* unwritable places: an error, and nothing left behind */
    f = fopen(tpath("afile"), "wb");
    CHECK(f && fclose(f) == 0);
    CHECK(strix_model_save_gguf(m, tpath("afile/x.gguf"), NULL, &err) == STRIX_ERR_IO);
    CHECK(strix_model_save_gguf(m, tpath("nodir/x.gguf"), NULL, &err) == STRIX_ERR_IO);
    CHECK(strix_model_save_gguf(m, dir, NULL, &err) == STRIX_ERR_IO);
    CHECK(access(tpath("nodir"), F_OK) != 0);

    /* the disk fills up mid-write (a file size limit): the old target stays */
    f = fopen(tpath("target.gguf"), "wb");
    CHECK(f && fputs("old contents", f) >= 0 && fclose(f) == 0);
    struct rlimit old_lim, lim;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(getrlimit(RLIMIT_FSIZE, &old_lim) == 0);
    lim = old_lim;
    lim.rlim_cur = 64 * 1024; /* the model is about 1 MB */
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    const int rc = strix_model_save_gguf(m, tpath("target.gguf"), NULL, &err);
    CHECK(setrlimit(RLIMIT_FSIZE, &old_lim) == 0);
    CHECKF(rc == STRIX_ERR_IO, "rc %d: %s", rc, err.msg);
    CHECK(same_bytes(tpath("target.gguf"), "old contents", 12));
    /* and without the limit the same call replaces it, keeping its mode */
    CHECK(chmod(tpath("target.gguf"), 0640) == 0);
    CHECK(strix_model_save_gguf(m, tpath("target.gguf"), NULL, &err) == STRIX_OK);
    struct stat st;
    CHECK(stat(tpath("target.gguf"), &st) == 0 && (st.st_mode & 0777) == 0640 &&
          st.st_size > 100000);
    /* written through a symbolic link: the link stays, the file it names changes */
    CHECK(symlink(tpath("target.gguf"), tpath("tlink.gguf")) == 0);
    CHECK(strix_model_quantize(m, tpath("tlink.gguf"), "Q8_0", &qp, &err) == STRIX_OK);
    CHECK(lstat(tpath("tlink.gguf"), &st) == 0 && S_ISLNK(st.st_mode));
    char *q8 = test_read_file(tpath("q8.gguf"), &src_len);
    CHECK(q8 && same_bytes(tpath("target.gguf"), q8, src_len));
    free(q8);
    CHECKF(n_tmp_files() == 0, "%d temporary files left", n_tmp_files());
out:
    strix_model_free(m);
    /* clean up the directory */
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(tpath(e->d_name));
    if (d)
        closedir(d);
    rmdir(dir);
    TEST_MAIN_END();
}
