/*
 * test_tokenizer.c - the vocabulary loaders (llama2.c tokenizer.bin and GGUF),
 * the GGUF vocabulary writer, the tokenizer against llama.cpp's goldens, the
 * detokenizer, and robustness: hostile tokenizer.bin files, allocation
 * failure, empty and megabyte inputs, a too small output buffer.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "tokenize/bpe.h"
#include "format/gguf.h"
#include "harness.h"
#include "utf8_check.h"
#include "util.h"
#include "tokenize/vocab.h"

#define SEP "\n__ggml_vocab_test__\n"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint8_t *read_data(const char *name, size_t *len)
{
    return (uint8_t *)read_fixture(name, len);
}

static struct vocab *load_l2c(const char *name, int n_vocab)
{
    size_t len = 0;
    uint8_t *buf = read_data(name, &len);
    struct vocab *v = NULL;
    strix_error err = {0};
    if (buf) {
        int rc = vocab_load_l2c(buf, len, n_vocab, &v, &err);
        CHECKF(rc == STRIX_OK && v, "%s: %s", name, err.msg);
    }
    free(buf);
    return v;
}

static int parse_gguf_bytes(const uint8_t *buf, size_t len, gguf **g, strix_error *err)
{
    int rc = gguf_parse(buf, len, g, err);
    CHECKF(rc == STRIX_OK, "gguf_parse: %s", err->msg);
    return rc;
}

/* Loads the vocabulary of a GGUF file (the gguf handle and bytes are freed). */
static struct vocab *load_gguf(const char *path)
{
    size_t len = 0;
    uint8_t *buf = (uint8_t *)test_read_file(path, &len);
    CHECKF(buf != NULL, "cannot read %s", path);
    struct vocab *v = NULL;
    gguf *g = NULL;
    strix_error err = {0};
    if (buf && parse_gguf_bytes(buf, len, &g, &err) == STRIX_OK) {
        int rc = vocab_load_gguf(g, &v, &err);
        CHECKF(rc == STRIX_OK && v, "%s: %s", path, err.msg);
    }
    gguf_free(g);
    free(buf);
    return v;
}

/* Tokenizes into a malloc'd array (caller frees); NULL on error. flags:
 * STRIX_TOKENIZE_* (1 = add BOS). */
static strix_token *tok(const struct vocab *v, const char *s, size_t n, int flags, int *n_out)
{
    int cap = (int)(3 * n + 8);
    strix_token *out = malloc((size_t)cap * sizeof *out);
    strix_error err = {0};
    int rc = vocab_tokenize(v, s, n, flags, out, cap, n_out, &err);
    CHECKF(rc == STRIX_OK, "tokenize: %s", err.msg);
    if (rc) {
        free(out);
        return NULL;
    }
    return out;
}

/* Checks detokenize(ids) == s (s valid UTF-8). */
static int roundtrip_ok(const struct vocab *v, const strix_token *ids, int n, const char *s,
                        size_t len)
{
    int need = vocab_detokenize(v, ids, n, NULL, 0);
    if (need < 0)
        return 0;
    char *buf = malloc((size_t)need + 1);
    int got = vocab_detokenize(v, ids, n, buf, (size_t)need + 1);
    int ok = got == need && (size_t)got == len && memcmp(buf, s, len) == 0 && buf[got] == '\0';
    free(buf);
    return ok;
}

/* Whether detokenize(tokenize(s)) must give s back: not where a control or
 * unknown token came from the text, nor where a special token took the
 * whitespace beside it, nor where SentencePiece's space mark U+2581 was in the
 * text (it comes back as a space, in llama.cpp too). */
static int must_roundtrip(const struct vocab *v, const char *s, size_t len, const strix_token *ids,
                          int n)
{
    if (strcmp(vocab_model_name(v), "llama") == 0)
        for (size_t i = 0; i + 3 <= len; i++)
            if (memcmp(s + i, "\xe2\x96\x81", 3) == 0)
                return 0;
    for (int i = 0; i < n; i++)
        if (vocab_type(v, ids[i]) == STRIX_TOKEN_CONTROL ||
            vocab_type(v, ids[i]) == STRIX_TOKEN_UNKNOWN || vocab_token_strips(v, ids[i]))
            return 0;
    return 1;
}

/* Runs every case of INP (cases split by SEP) against the lines of OUT. */
static void golden_ex(const struct vocab *v, const char *inp_name, const char *out_name,
                      const char *label, int flags)
{
    size_t n_inp = 0, n_outf = 0;
    char *inp = (char *)read_data(inp_name, &n_inp);
    char *outf = (char *)read_data(out_name, &n_outf);
    if (!inp || !outf) {
        free(inp);
        free(outf);
        return;
    }
    int n_cases = 0, n_fail = 0, n_rt = 0;
    char *p = inp, *end = inp + n_inp, *line = outf;
    while (p < end) {               /* a trailing separator ends the last case */
        char *hit = strstr(p, SEP); /* the goldens hold no NUL bytes */
        size_t len = hit ? (size_t)(hit - p) : (size_t)(end - p);
        char *nl = strchr(line, '\n');
        CHECKF(nl != NULL, "%s: %s has too few lines", label, out_name);
        if (!nl)
            break;
        *nl = '\0';
        strix_token want[4096];
        int n_want = 0;
        for (char *q = line, *e; n_want < 4096; q = e) {
            long x = strtol(q, &e, 10);
            if (e == q)
                break;
            want[n_want++] = (strix_token)x;
        }
        int n_got = 0;
        strix_token *got = tok(v, p, len, flags, &n_got);
        int same = got && n_got == n_want && memcmp(got, want, (size_t)n_got * sizeof *got) == 0;
        CHECKF(same, "%s case %d (%.40s): got %d tokens, want %d", label, n_cases, p, n_got,
               n_want);
        if (!same && got) {
            n_fail++;
            fprintf(stderr, "  got :");
            for (int i = 0; i < n_got && i < 40; i++)
                fprintf(stderr, " %d", got[i]);
            fprintf(stderr, "\n  want:");
            for (int i = 0; i < n_want && i < 40; i++)
                fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n");
        }
        if (got && valid_utf8((const unsigned char *)p, len) && must_roundtrip(v, p, len, got, n_got)) {
            CHECKF(roundtrip_ok(v, got, n_got, p, len), "%s case %d: detokenize(tokenize(s)) != s",
                   label, n_cases);
            n_rt++;
        }
        free(got);
        n_cases++;
        line = nl + 1;
        if (!hit)
            break;
        p = hit + strlen(SEP);
    }
    CHECKF(*line == '\0', "%s: %s has more lines than cases", label, out_name);
    printf("%s: %d golden cases, %d failed, %d round trips\n", label, n_cases, n_fail, n_rt);
    free(inp);
    free(outf);
}

/* Runs every case of BASE.inp / BASE.out against v. */
static void golden(const struct vocab *v, const char *base, const char *label)
{
    char a[256], b[256];
    snprintf(a, sizeof a, "%s.inp", base);
    snprintf(b, sizeof b, "%s.out", base);
    golden_ex(v, a, b, label, 0);
}

static const char *tmp_path(void)
{
    static char path[4096];
    if (!path[0])
        test_tmpfile(path, sizeof path, "tok");
    return path;
}

/* Writes w to a temporary file and parses it back; *buf must outlive *g. */
static int write_parse(gguf_writer *w, uint8_t **buf, gguf **g)
{
    strix_error err = {0};
    size_t len = 0;
    *buf = NULL;
    *g = NULL;
    int rc = gguf_writer_write(w, tmp_path(), &err);
    CHECKF(rc == STRIX_OK, "gguf_writer_write: %s", err.msg);
    if (rc)
        return rc;
    *buf = (uint8_t *)test_read_file(tmp_path(), &len);
    remove(tmp_path());
    if (!*buf)
        return STRIX_ERR_IO;
    return parse_gguf_bytes(*buf, len, g, &err);
}

static const struct gguf_kv *kv_of(const gguf *g, const char *key)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    CHECKF(kv != NULL, "missing %s", key);
    return kv;
}

/* The tokenizer.ggml.* arrays of a and b are identical (bytes, bits). */
static void same_vocab_keys(const gguf *a, const gguf *b, const char *label)
{
    const struct gguf_kv *ta = kv_of(a, "tokenizer.ggml.tokens"),
                         *tb = kv_of(b, "tokenizer.ggml.tokens");
    const struct gguf_kv *sa = kv_of(a, "tokenizer.ggml.scores"),
                         *sb = kv_of(b, "tokenizer.ggml.scores");
    const struct gguf_kv *ya = kv_of(a, "tokenizer.ggml.token_type");
    const struct gguf_kv *yb = kv_of(b, "tokenizer.ggml.token_type");
    if (!ta || !tb || !sa || !sb || !ya || !yb)
        return;
    CHECKF(ta->n == tb->n && sa->n == sb->n && ya->n == yb->n && ta->n == sa->n && ta->n == ya->n,
           "%s: array lengths differ", label);
    CHECK(sa->arr_type == GGUF_VT_F32 && sb->arr_type == GGUF_VT_F32);
    CHECK(ya->arr_type == GGUF_VT_I32 && yb->arr_type == GGUF_VT_I32);
    int bad_t = 0, bad_s = 0, bad_y = 0;
    for (uint64_t i = 0; i < ta->n && i < tb->n; i++) {
        bad_t += ta->arr_strs[i].len != tb->arr_strs[i].len ||
                 memcmp(ta->arr_strs[i].ptr, tb->arr_strs[i].ptr, ta->arr_strs[i].len) != 0;
        float fa = gguf_arr_f32(sa, i), fb = gguf_arr_f32(sb, i);
        bad_s += memcmp(&fa, &fb, sizeof fa) != 0;
        bad_y += gguf_arr_i64(ya, i) != gguf_arr_i64(yb, i);
    }
    CHECKF(bad_t == 0 && bad_s == 0 && bad_y == 0, "%s: %d pieces, %d scores, %d types differ",
           label, bad_t, bad_s, bad_y);
    static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                      "tokenizer.ggml.unknown_token_id"};
    for (int i = 0; i < 3; i++) {
        uint32_t x = 0, y = 1;
        CHECK(gguf_get_u32(a, ids[i], 1, &x, NULL) == STRIX_OK);
        CHECK(gguf_get_u32(b, ids[i], 1, &y, NULL) == STRIX_OK);
        CHECKF(x == y, "%s: %s %u != %u", label, ids[i], x, y);
    }
}

/* tok512.bin converted = stories260K-ref.gguf (llama.cpp's own conversion);
 * also checks vocab_write_gguf round trips through gguf_parse. */
static void test_l2c_vs_ref(void)
{
    struct vocab *v = load_l2c("tok512.bin", 512);
    struct vocab *r = load_gguf(test_path("stories260K-ref.gguf"));
    if (!v || !r)
        goto out;
    CHECK(vocab_n(v) == 512 && vocab_n(r) == 512);
    CHECK(vocab_bos(v) == 1 && vocab_eos(v) == 2);
    CHECK(strcmp(vocab_model_name(v), "llama") == 0);
    CHECK(strcmp(vocab_piece(v, 0), "<unk>") == 0 && vocab_type(v, 0) == STRIX_TOKEN_UNKNOWN);
    CHECK(strcmp(vocab_piece(v, 1), "<s>") == 0 && vocab_type(v, 1) == STRIX_TOKEN_CONTROL);
    CHECK(strcmp(vocab_piece(v, 2), "</s>") == 0 && vocab_type(v, 2) == STRIX_TOKEN_CONTROL);
    CHECK(strcmp(vocab_piece(v, 3), "<0x00>") == 0 && vocab_type(v, 3) == STRIX_TOKEN_BYTE);
    CHECK(strcmp(vocab_piece(v, 259), "\xe2\x96\x81t") == 0 && vocab_type(v, 259) == 1);
    CHECK(vocab_piece(v, 512) == NULL && vocab_piece(v, -1) == NULL && vocab_type(v, 512) == 0);
    int diff = 0;
    for (int i = 0; i < 512; i++)
        diff += strcmp(vocab_piece(v, i), vocab_piece(r, i)) != 0 ||
                vocab_type(v, i) != vocab_type(r, i);
    CHECKF(diff == 0, "%d tokens differ from stories260K-ref.gguf", diff);

    /* Write, parse back, compare the keys with llama.cpp's file. */
    size_t len = 0;
    uint8_t *refbuf = read_data("stories260K-ref.gguf", &len), *buf = NULL;
    gguf *ref = NULL, *g = NULL;
    gguf_writer *w = gguf_writer_create();
    strix_error err = {0};
    CHECK(w != NULL);
    if (refbuf && w && parse_gguf_bytes(refbuf, len, &ref, &err) == STRIX_OK) {
        int rc = vocab_write_gguf(v, w, &err);
        CHECKF(rc == STRIX_OK, "vocab_write_gguf: %s", err.msg);
        if (rc == STRIX_OK && write_parse(w, &buf, &g) == STRIX_OK) {
            struct gguf_str m = {0};
            CHECK(gguf_get_str(g, "tokenizer.ggml.model", 1, &m, NULL) == STRIX_OK && m.len == 5 &&
                  memcmp(m.ptr, "llama", 5) == 0);
            same_vocab_keys(g, ref, "written vs stories260K-ref");
            struct vocab *back = NULL;
            rc = vocab_load_gguf(g, &back, &err);
            CHECKF(rc == STRIX_OK, "reload: %s", err.msg);
            if (back) {
                int d = vocab_n(back) != 512 || vocab_bos(back) != 1 || vocab_eos(back) != 2;
                for (int i = 0; i < 512; i++)
                    d += strcmp(vocab_piece(v, i), vocab_piece(back, i)) != 0 ||
                         vocab_type(v, i) != vocab_type(back, i);
                CHECKF(d == 0, "reloaded vocabulary differs");
                golden(back, "tok512", "tok512 (written GGUF)");
            }
            vocab_free(back);
        }
    }
    gguf_writer_free(w);
    gguf_free(g);
    gguf_free(ref);
    free(buf);
    free(refbuf);
out:
    vocab_free(v);
    vocab_free(r);
}

static void test_goldens(void)
{
    struct vocab *v = load_l2c("tok512.bin", 512);
    if (v)
        golden(v, "tok512", "tok512 (tokenizer.bin)");
    vocab_free(v);
    v = load_gguf(test_path("stories260K-ref.gguf"));
    if (v)
        golden(v, "tok512", "tok512 (stories260K-ref.gguf)");
    vocab_free(v);
    v = load_l2c("tok4096.bin", 4096);
    if (v)
        golden(v, "tok4096", "tok4096 (tokenizer.bin)");
    vocab_free(v);
    v = load_gguf(test_path("ggml-vocab-llama-spm.gguf"));
    if (v)
        golden(v, "ggml-vocab-llama-spm.gguf", "llama-spm");
    vocab_free(v);
    v = load_gguf(test_path("ggml-vocab-phi-3.gguf"));
    if (v)
        golden(v, "ggml-vocab-phi-3.gguf", "phi-3");
    vocab_free(v);
}

/* llama.cpp's test vectors for byte-level BPE vocabularies. */
static void test_bpe_goldens(void)
{
    static const char *const names[] = {"gpt-2",     "falcon",       "mpt",           "starcoder",
                                        "refact",    "deepseek-llm", "deepseek-coder"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char base[128];
        snprintf(base, sizeof base, "ggml-vocab-%s.gguf", names[i]);
        struct vocab *v = load_gguf(test_path(base));
        if (v) {
            CHECKF(strcmp(vocab_model_name(v), "gpt2") == 0, "%s: model %s", names[i],
                   vocab_model_name(v));
            golden(v, base, names[i]);
        }
        /* Written back to GGUF and loaded again, it tokenizes the same. */
        gguf_writer *w = gguf_writer_create();
        uint8_t *buf = NULL;
        gguf *g = NULL;
        struct vocab *back = NULL;
        strix_error err = {0};
        if (v && w && vocab_write_gguf(v, w, &err) == STRIX_OK && write_parse(w, &buf, &g) == 0) {
            int rc = vocab_load_gguf(g, &back, &err);
            CHECKF(rc == STRIX_OK, "%s reloaded: %s", names[i], err.msg);
            if (back) {
                char label[96];
                snprintf(label, sizeof label, "%s (written GGUF)", names[i]);
                CHECK(strcmp(vocab_pre_name(back), vocab_pre_name(v)) == 0 &&
                      vocab_bos(back) == vocab_bos(v) && vocab_eos(back) == vocab_eos(v) &&
                      vocab_add_bos(back) == vocab_add_bos(v));
                golden(back, base, label);
            }
        } else {
            CHECKF(0, "%s: writing failed: %s", names[i], err.msg);
        }
        vocab_free(back);
        gguf_free(g);
        free(buf);
        gguf_writer_free(w);
        vocab_free(v);
    }
}

/* NUL-terminated copies of a GGUF string array (caller frees each and the array). */
static char **copy_strs(const struct gguf_kv *kv)
{
    char **s = calloc(kv->n, sizeof *s);
    for (uint64_t i = 0; s && i < kv->n; i++) {
        s[i] = malloc(kv->arr_strs[i].len + 1);
        memcpy(s[i], kv->arr_strs[i].ptr, kv->arr_strs[i].len);
        s[i][kv->arr_strs[i].len] = '\0';
    }
    return s;
}

static void free_strs(char **s, uint64_t n)
{
    for (uint64_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

/* The byte-level vocabulary of the GGUF file at path, with tokenizer.ggml.pre
 * set to pre: what llama.cpp loads from a copy of the file with that one key
 * changed. */
static struct vocab *load_with_pre(const char *path, const char *pre)
{
    size_t len = 0;
    uint8_t *buf = (uint8_t *)test_read_file(path, &len), *buf2 = NULL;
    gguf *g = NULL, *g2 = NULL;
    struct vocab *v = NULL;
    strix_error err = {0};
    gguf_writer *w = gguf_writer_create();
    if (!buf || !w || parse_gguf_bytes(buf, len, &g, &err) != STRIX_OK)
        goto out;
    const struct gguf_kv *kt = kv_of(g, "tokenizer.ggml.tokens"),
                         *km = kv_of(g, "tokenizer.ggml.merges"),
                         *ky = kv_of(g, "tokenizer.ggml.token_type");
    uint32_t bos = 0, eos = 0;
    if (!kt || !km || !ky || gguf_get_u32(g, "tokenizer.ggml.bos_token_id", 1, &bos, &err) ||
        gguf_get_u32(g, "tokenizer.ggml.eos_token_id", 1, &eos, &err))
        goto out;
    char **toks = copy_strs(kt), **merges = copy_strs(km);
    int32_t *types = malloc(ky->n * sizeof *types);
    for (uint64_t i = 0; types && i < ky->n; i++)
        types[i] = (int32_t)gguf_arr_i64(ky, i);
    if (toks && merges && types) {
        gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
        gguf_writer_add_str(w, "tokenizer.ggml.pre", pre);
        gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, kt->n);
        gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, ky->n);
        gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, km->n);
        gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", bos);
        gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", eos);
        if (write_parse(w, &buf2, &g2) == STRIX_OK) {
            int rc = vocab_load_gguf(g2, &v, &err);
            CHECKF(rc == STRIX_OK, "pre %s: %s", pre, err.msg);
        }
    }
    free_strs(toks, kt->n);
    free_strs(merges, km->n);
    free(types);
out:
    gguf_writer_free(w);
    gguf_free(g);
    gguf_free(g2);
    free(buf);
    free(buf2);
    return v;
}

/*
 * vocab/extra.inp: strings beyond llama.cpp's test vectors (scripts, emoji,
 * CJK, Unicode whitespace, numbers, code, invalid UTF-8, special tokens'
 * text), against llama-tokenize's ids for each vocabulary, without and with
 * special-token parsing. "gpt2-PRE" is the gpt-2 vocabulary with its
 * pre-tokenizer swapped for PRE, to try pre-tokenizers no test file has.
 */
static void test_extra_strings(void)
{
    static const char *const files[] = {"llama-spm", "phi-3",        "gpt-2",
                                        "falcon",    "mpt",          "starcoder",
                                        "refact",    "deepseek-llm", "deepseek-coder"};
    static const char *const pres[] = {"llama-bpe", "qwen2",  "deepseek-v3", "default",
                                       "poro-chat", "tekken", "chameleon",   "viking"};
    const size_t n_files = sizeof files / sizeof files[0];
    for (size_t i = 0; i < n_files + sizeof pres / sizeof pres[0]; i++) {
        char label[64], path[128], out[128];
        struct vocab *v;
        if (i < n_files) {
            snprintf(label, sizeof label, "%s", files[i]);
            snprintf(path, sizeof path, "ggml-vocab-%s.gguf", files[i]);
            v = load_gguf(test_path(path));
        } else {
            snprintf(label, sizeof label, "gpt2-%s", pres[i - n_files]);
            v = load_with_pre(test_path("ggml-vocab-gpt-2.gguf"), pres[i - n_files]);
        }
        if (!v)
            continue;
        for (int special = 0; special < 2; special++) {
            char what[96];
            snprintf(out, sizeof out, "vocab/extra-%s%s.out", label, special ? "-special" : "");
            snprintf(what, sizeof what, "extra %s%s", label, special ? " (parse special)" : "");
            golden_ex(v, "vocab/extra.inp", out, what, special ? STRIX_TOKENIZE_PARSE_SPECIAL : 0);
        }
        vocab_free(v);
    }
}

/* Text made mostly of code points above U+FFFF (emoji, CJK extension B):
 * each is 4 bytes of UTF-8 and 8 bytes once every byte is written as its
 * GPT-2 code point, the most any code point takes. The byte-level split
 * buffer once had room for 6 per code point: 5 emoji overflowed it, 100
 * aborted. Every byte-level pre-tokenizer must tokenize such text and give it
 * back byte for byte. */
static void test_supplementary_plane(void)
{
    static const char *const files[] = {"gpt-2",  "falcon",       "mpt",           "starcoder",
                                        "refact", "deepseek-llm", "deepseek-coder"};
    static const char *const pres[] = {"llama-bpe", "qwen2",  "deepseek-v3", "default",
                                       "poro-chat", "tekken", "chameleon",   "viking"};
    /* U+1F999 U+1F680 U+1F600 U+1F389 U+1F44D, then U+20000 U+2A6D6 U+10400 */
    static const char *const cps[] = {"\xf0\x9f\xa6\x99", "\xf0\x9f\x9a\x80", "\xf0\x9f\x98\x80",
                                      "\xf0\x9f\x8e\x89", "\xf0\x9f\x91\x8d", "\xf0\xa0\x80\x80",
                                      "\xf0\xaa\x9b\x96", "\xf0\x90\x90\x80"};
    char five[32], hundred[512], mixed[1024];
    for (int i = 0; i < 5; i++)
        memcpy(five + 4 * i, cps[i], 4);
    five[20] = '\0';
    for (int i = 0; i < 100; i++)
        memcpy(hundred + 4 * i, cps[i % 5], 4);
    hundred[400] = '\0';
    size_t k = 0; /* glued runs of every code point above, with a few ASCII and spaces */
    for (int i = 0; i < 200; i++) {
        memcpy(mixed + k, cps[(i * 7) % 8], 4);
        k += 4;
        if (i % 50 == 49)
            mixed[k++] = i % 100 == 99 ? ' ' : 'a';
    }
    mixed[k] = '\0';
    const char *const texts[] = {five, hundred, mixed};
    const size_t n_files = sizeof files / sizeof files[0];
    for (size_t i = 0; i < n_files + sizeof pres / sizeof pres[0]; i++) {
        char path[128];
        struct vocab *v;
        const char *label = i < n_files ? files[i] : pres[i - n_files];
        if (i < n_files) {
            snprintf(path, sizeof path, "ggml-vocab-%s.gguf", files[i]);
            v = load_gguf(test_path(path));
        } else {
            v = load_with_pre(test_path("ggml-vocab-gpt-2.gguf"), pres[i - n_files]);
        }
        for (size_t t = 0; v && t < sizeof texts / sizeof texts[0]; t++) {
            for (int flags = 0; flags < 4; flags += 2) {
                int n_out = 0;
                const size_t len = strlen(texts[t]);
                strix_token *ids = tok(v, texts[t], len, flags, &n_out);
                CHECKF(ids && n_out > 0 && roundtrip_ok(v, ids, n_out, texts[t], len),
                       "%s: text %zu (%zu bytes, flags %d) does not come back", label, t, len,
                       flags);
                free(ids);
            }
        }
        vocab_free(v);
    }
}

/* Every pre-tokenizer of bpe.c's table is in the advertised list (and the
 * list has no others), its expressions compile, and it splits text; the GPT-2
 * byte mapping is a bijection onto its 256 code points. */
static void test_pre_tokenizers(void)
{
    const char *list = BPE_PRE_NAMES;
    int n_names = 1;
    for (const char *p = list; *p; p++)
        n_names += *p == ',';
    int i = 0;
    for (const char *name; (name = bpe_pre_name_at(i)); i++) {
        char key[64];
        snprintf(key, sizeof key, ", %s,", name);
        char padded[1200];
        snprintf(padded, sizeof padded, ", %s,", list);
        CHECKF(strstr(padded, key) != NULL, "pre-tokenizer %s missing from BPE_PRE_NAMES", name);
        struct gguf_kv merges = {0};
        struct gguf_str m[1] = {{"a b", 3}};
        merges.type = GGUF_VT_ARR;
        merges.arr_type = GGUF_VT_STR;
        merges.n = 1;
        merges.arr_strs = m;
        struct bpe *b = NULL;
        strix_error err = {0};
        int rc = bpe_create(name, strlen(name), &merges, &b, &err);
        CHECKF(rc == STRIX_OK && b, "%s: %s", name, err.msg);
        struct bpe_words w = {0};
        const char *text = "Hello, World! 123 \xe4\xb8\xad\xe6\x96\x87 \n\n  x";
        if (b) {
            CHECKF(bpe_split(b, text, strlen(text), &w, &err) == STRIX_OK && w.n >= 5, "%s: %s",
                   name, err.msg);
            CHECK(bpe_rank(b, "ab", 2, 1) == 0 && bpe_rank(b, "ab", 2, 0) == -1 &&
                  bpe_rank(b, "ba", 2, 1) == -1);
        }
        bpe_words_free(&w);
        bpe_free(b);
    }
    CHECKF(i == n_names, "%d pre-tokenizers in the table, %d names in BPE_PRE_NAMES", i, n_names);
    int seen[324] = {0}, bad = 0;
    for (int byte = 0; byte < 256; byte++) {
        uint32_t c = bpe_byte_to_cpt((uint8_t)byte);
        bad += c >= 324 || seen[c]++ || bpe_cpt_to_byte(c) != byte;
    }
    CHECKF(bad == 0, "%d bytes map wrongly", bad);
    CHECK(bpe_byte_to_cpt(' ') == 0x120 && bpe_byte_to_cpt('\n') == 0x10A &&
          bpe_byte_to_cpt('a') == 'a' && bpe_cpt_to_byte(0x2581) == -1 && bpe_cpt_to_byte(0x7F) == -1);
}

static int same_ids(const strix_token *a, int na, const strix_token *b, int nb)
{
    return a && b && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

static int text_is(const struct vocab *v, const strix_token *ids, int n, const char *want)
{
    char buf[256];
    int got = vocab_detokenize(v, ids, n, buf, sizeof buf);
    int ok = got == (int)strlen(want) && strcmp(buf, want) == 0;
    if (!ok)
        fprintf(stderr, "  detokenize gave %d '%s', want '%s'\n", got, got >= 0 ? buf : "", want);
    return ok;
}

/* Detokenization and small tokenizer behaviours on the llama-spm vocabulary. */
static void test_llama_spm(void)
{
    struct vocab *v = load_gguf(test_path("ggml-vocab-llama-spm.gguf"));
    if (!v)
        return;
    char buf[64];
    /* token_to_text: leading space dropped at the start and after BOS only. */
    CHECK(vocab_token_to_text(v, -1, 15043, buf, sizeof buf) == 5 && memcmp(buf, "Hello", 5) == 0);
    CHECK(vocab_token_to_text(v, 1, 15043, buf, sizeof buf) == 5 && memcmp(buf, "Hello", 5) == 0);
    CHECK(vocab_token_to_text(v, 100, 15043, buf, sizeof buf) == 6 &&
          memcmp(buf, " Hello", 6) == 0);
    memset(buf, 'z', sizeof buf);
    CHECK(vocab_token_to_text(v, 100, 15043, buf, 2) == 6 && memcmp(buf, " Hz", 3) == 0);
    CHECK(vocab_token_to_text(v, 100, 15043, NULL, 0) == 6);
    CHECK(vocab_token_to_text(v, 100, 13, buf, sizeof buf) == 1 && buf[0] == '\n'); /* <0x0A> */
    CHECK(vocab_token_to_text(v, -1, 1, buf, sizeof buf) == 0);                     /* control */
    CHECK(vocab_token_to_text(v, -1, 0, buf, sizeof buf) == 0);                     /* unknown */
    CHECK(vocab_token_to_text(v, -1, 32000, buf, sizeof buf) == -1);
    CHECK(vocab_token_to_text(v, -1, -1, buf, sizeof buf) == -1);

    /* detokenize: BOS, spaces, byte merging, invalid sequences, truncation. */
    strix_token a[] = {1, 15043, 3186};
    CHECK(text_is(v, a, 3, "Hello world"));
    CHECK(text_is(v, a + 1, 2, "Hello world"));
    strix_token llama[] = {1, 3 + 0xF0, 3 + 0x9F, 3 + 0xA6, 3 + 0x99};
    CHECK(text_is(v, llama, 5, "\xF0\x9F\xA6\x99"));
    strix_token cut[] = {3 + 0xF0, 3 + 0x9F, 15043};
    CHECK(text_is(v, cut, 3, "\xEF\xBF\xBD Hello"));
    strix_token sur[] = {3 + 0xED, 3 + 0xA0, 3 + 0x80, 3 + 'x'};
    CHECK(text_is(v, sur, 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx"));
    strix_token tail[] = {3 + 'a', 3 + 0xC3};
    CHECK(text_is(v, tail, 2, "a\xEF\xBF\xBD"));
    strix_token lone[] = {3 + 0x80, 3 + 0xFF, 3 + 0xC0, 3 + 0xAF};
    CHECK(text_is(v, lone, 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));
    char small[5];
    CHECK(vocab_detokenize(v, a, 3, small, sizeof small) == 11 && strcmp(small, "Hell") == 0);
    CHECK(vocab_detokenize(v, a, 3, NULL, 0) == 11);
    CHECK(vocab_detokenize(v, a, 0, small, sizeof small) == 0 && small[0] == '\0');
    strix_token bad[] = {1, 32000};
    CHECK(vocab_detokenize(v, bad, 2, small, sizeof small) == -1);

    /* Emoji falls back to byte tokens and comes back whole. */
    const char *s = "a \xF0\x9F\xA6\x99 b \xE2\x82\xAC";
    int n = 0;
    strix_token *ids = tok(v, s, strlen(s), 1, &n);
    CHECK(ids && n > 4 && ids[0] == 1);
    CHECK(ids && roundtrip_ok(v, ids, n, s, strlen(s)));
    free(ids);

    /* Empty text, BOS. */
    strix_token one[2] = {-7, -7};
    strix_error err = {0};
    int n_out = -1;
    CHECK(vocab_tokenize(v, "", 0, 0, one, 2, &n_out, &err) == STRIX_OK && n_out == 0);
    CHECK(vocab_tokenize(v, NULL, 0, 1, one, 2, &n_out, &err) == STRIX_OK && n_out == 1 &&
          one[0] == 1);
    CHECK(vocab_tokenize(v, NULL, 0, 0, NULL, 0, &n_out, &err) == STRIX_OK && n_out == 0);

    /* cap too small: STRIX_ERR_ARG, *n_out the count needed, nothing past cap. */
    strix_token out[4] = {-7, -7, -7, -7};
    CHECK(vocab_tokenize(v, "Hello world", 11, 1, NULL, 0, &n_out, &err) == STRIX_ERR_ARG &&
          n_out == 3 && err.code == STRIX_ERR_ARG);
    CHECK(vocab_tokenize(v, "Hello world", 11, 1, out, 2, &n_out, &err) == STRIX_ERR_ARG &&
          n_out == 3 && out[0] == 1 && out[1] == 15043 && out[2] == -7);
    CHECK(vocab_tokenize(v, "Hello world", 11, 1, out, 3, &n_out, &err) == STRIX_OK && n_out == 3 &&
          out[2] == 3186 && out[3] == -7);
    CHECK(vocab_tokenize(v, "x", 1, 0, out, -1, &n_out, &err) == STRIX_ERR_ARG);
    CHECK(vocab_tokenize(v, NULL, 1, 0, out, 4, &n_out, &err) == STRIX_ERR_ARG);
    CHECK(vocab_tokenize(NULL, "x", 1, 0, out, 4, &n_out, &err) == STRIX_ERR_ARG);

    /* Invalid UTF-8 is split like llama.cpp's (no validation) and byte-encoded. */
    const char inv[] = "\xC3(a\x80\xFF";
    ids = tok(v, inv, sizeof inv - 1, 0, &n);
    strix_token inv_want[] = {29871, 3 + 0xC3, 3 + '(', 29874, 3 + 0x80, 3 + 0xFF};
    CHECK(same_ids(ids, n, inv_want, 6));
    free(ids);
    vocab_free(v);
}

/* phi-3 marks "</s>" user-defined: llama.cpp cuts it out of the text before
 * BPE and puts a space prefix on the text after it. */
static void test_user_defined(void)
{
    struct vocab *v = load_gguf(test_path("ggml-vocab-phi-3.gguf"));
    if (!v)
        return;
    CHECK(vocab_type(v, 2) == STRIX_TOKEN_USER_DEFINED && vocab_eos(v) == 32000);
    int na, nb, nab, nx;
    strix_token *a = tok(v, "a", 1, 0, &na), *b = tok(v, "b</s>", 5, 0, &nb);
    strix_token *ab = tok(v, "a</s>b</s></s>", 14, 1, &nab);
    strix_token *x = tok(v, "</s", 3, 0, &nx);
    strix_token want[16];
    int nw = 0;
    want[nw++] = 1;
    for (int i = 0; a && i < na && nw < 12; i++)
        want[nw++] = a[i];
    want[nw++] = 2;
    for (int i = 0; b && i < nb && nw < 12; i++)
        want[nw++] = b[i];
    want[nw++] = 2;
    CHECK(b && nb >= 2 && b[nb - 1] == 2);
    CHECK(same_ids(ab, nab, want, nw));
    CHECK(x && nx >= 1);
    for (int i = 0; x && i < nx; i++)
        CHECK(x[i] != 2);
    free(a);
    free(b);
    free(ab);
    free(x);
    vocab_free(v);
}

/* Appends one llama2.c token record. */
static size_t put_tok(uint8_t *p, size_t at, float score, const void *s, int32_t len)
{
    memcpy(p + at, &score, 4);
    memcpy(p + at + 4, &len, 4);
    if (len > 0)
        memcpy(p + at + 8, s, (size_t)len);
    return at + 8 + (size_t)(len > 0 ? len : 0);
}

/* A vocabulary whose pieces are raw bytes (no <0xXX> tokens): text bytes map
 * straight to 1-byte pieces, including bytes that are no UTF-8 by themselves. */
static void test_raw_byte_vocab(void)
{
    uint8_t *b = calloc(1, 8192);
    int32_t maxlen = 6;
    memcpy(b, &maxlen, 4);
    size_t at = put_tok(b, 4, 0, "<unk>", 5);
    at = put_tok(b, at, 0, "\n<s>\n", 5);
    at = put_tok(b, at, 0, "\n</s>\n", 6);
    for (int i = 0; i < 256; i++) {
        uint8_t c = (uint8_t)i;
        at = put_tok(b, at, 0, &c, 1);
    }
    at = put_tok(b, at, -1, "he", 2);   /* 259 */
    at = put_tok(b, at, -2, " t", 2);   /* 260 */
    at = put_tok(b, at, -3, " the", 4); /* 261 */
    struct vocab *v = NULL;
    strix_error err = {0};
    int rc = vocab_load_l2c(b, at, 262, &v, &err);
    CHECKF(rc == STRIX_OK, "%s", err.msg);
    if (v) {
        CHECK(strcmp(vocab_piece(v, 3 + ' '), "\xe2\x96\x81") == 0);
        CHECK(strcmp(vocab_piece(v, 261), "\xe2\x96\x81the") == 0);
        CHECK(vocab_piece(v, 3)[0] == '\0' && vocab_type(v, 3) == STRIX_TOKEN_NORMAL);
        const char s[] = "the \x80\xC3\xA9\0x";
        int n = 0;
        strix_token *ids = tok(v, s, sizeof s - 1, 0, &n);
        strix_token want[] = {261, 3 + ' ', 3 + 0x80, 3 + 0xC3, 3 + 0xA9, 3, 3 + 'x'};
        CHECK(same_ids(ids, n, want, 7));
        char out[64];
        CHECK(ids && vocab_detokenize(v, ids, n, out, sizeof out) == 11 &&
              memcmp(out, "the \xEF\xBF\xBD\xC3\xA9\0x", 12) == 0);
        free(ids);
        const char *t = "he the \xC3\xA9t\xE2\x82\xAC";
        ids = tok(v, t, strlen(t), 1, &n);
        CHECK(ids && roundtrip_ok(v, ids, n, t, strlen(t)));
        free(ids);
        /* A NUL inside a piece cannot go through the C-string writer. */
        gguf_writer *w = gguf_writer_create();
        CHECK(w && vocab_write_gguf(v, w, &err) == STRIX_ERR_UNSUPPORTED);
        gguf_writer_free(w);
    }
    vocab_free(v);

    /* Neither byte tokens nor raw-byte pieces: one unknown token per character. */
    at = put_tok(b, 4, 0, "<unk>", 5);
    at = put_tok(b, at, 0, "\n<s>\n", 5);
    at = put_tok(b, at, 0, "\n</s>\n", 6);
    at = put_tok(b, at, 0, "a", 1);
    rc = vocab_load_l2c(b, at, 4, &v, &err);
    CHECKF(rc == STRIX_OK, "%s", err.msg);
    if (v) {
        int n = 0;
        strix_token *ids = tok(v, "ab\xC3\xA9", 4, 1, &n);
        strix_token want[] = {1, 0, 3, 0, 0};
        CHECK(same_ids(ids, n, want, 5));
        free(ids);
    }
    vocab_free(v);
    free(b);

    /* tests/data/byte_tokenizer.bin: printable ASCII, \t \n \r as 1-byte pieces, the
     * other bytes as <0xXX> byte tokens, no merges. */
    v = load_l2c("byte_tokenizer.bin", 259);
    if (v) {
        CHECK(vocab_type(v, 3 + 'H') == STRIX_TOKEN_NORMAL && vocab_type(v, 1) == 3);
        CHECK(vocab_type(v, 3 + 0x80) == STRIX_TOKEN_BYTE && vocab_type(v, 3) == 6);
        CHECK(strcmp(vocab_piece(v, 3 + ' '), "\xe2\x96\x81") == 0);
        int n = 0;
        const char *s = "Hi!\n caf\xC3\xA9";
        strix_token *ids = tok(v, s, strlen(s), 1, &n);
        strix_token want[] = {1,       3 + ' ', 3 + 'H', 3 + 'i', 3 + '!',  3 + '\n',
                              3 + ' ', 3 + 'c', 3 + 'a', 3 + 'f', 3 + 0xC3, 3 + 0xA9};
        CHECK(same_ids(ids, n, want, 12));
        CHECK(ids && roundtrip_ok(v, ids, n, s, strlen(s)));
        free(ids);
    }
    vocab_free(v);
}

static void expect_l2c_error(const uint8_t *src, size_t len, int n_vocab, const char *what)
{
    uint8_t *copy = malloc(len ? len : 1); /* exact size, so ASan sees any overread */
    if (len)
        memcpy(copy, src, len);
    struct vocab *v = (struct vocab *)copy; /* must be reset to NULL */
    strix_error err = {0};
    int rc = vocab_load_l2c(copy, len, n_vocab, &v, &err);
    CHECKF(rc != STRIX_OK && v == NULL && err.code == rc && err.msg[0], "%s (len %zu): rc %d", what,
           len, rc);
    if (rc == STRIX_OK)
        vocab_free(v);
    free(copy);
}

static void test_hostile_l2c(void)
{
    size_t len = 0;
    uint8_t *b = read_data("tok512.bin", &len);
    if (!b)
        return;
    int n_trunc = 0;
    for (size_t off = 0; off < len; off += off < 200 ? 1 : 97, n_trunc++)
        expect_l2c_error(b, off, 512, "truncated");
    expect_l2c_error(b, len, 513, "n_vocab larger than the file");
    expect_l2c_error(b, len, 511, "trailing bytes");
    expect_l2c_error(b, len, 2, "n_vocab too small");
    expect_l2c_error(b, len, -5, "n_vocab negative");
    expect_l2c_error(b, len, 1 << 30, "n_vocab huge");
    /* token 5 sits at 4 + 3 records of known size; find it by walking. */
    size_t at = 4;
    for (int i = 0; i < 5; i++) {
        int32_t n;
        memcpy(&n, b + at + 4, 4);
        at += 8 + (size_t)n;
    }
    uint8_t *m = malloc(len);
    int32_t x;
    memcpy(m, b, len);
    x = -1;
    memcpy(m + at + 4, &x, 4);
    expect_l2c_error(m, len, 512, "negative length");
    x = INT32_MIN;
    memcpy(m + at + 4, &x, 4);
    expect_l2c_error(m, len, 512, "INT32_MIN length");
    x = (int32_t)len;
    memcpy(m + at + 4, &x, 4);
    expect_l2c_error(m, len, 512, "length past the end");
    x = INT32_MAX;
    memcpy(m + at + 4, &x, 4);
    expect_l2c_error(m, len, 512, "INT32_MAX length");
    memcpy(m, b, len);
    float nan = NAN;
    memcpy(m + at, &nan, 4);
    expect_l2c_error(m, len, 512, "NaN score");
    memcpy(m, b, len);
    x = -1;
    memcpy(m, &x, 4);
    expect_l2c_error(m, len, 512, "negative max_token_length");
    printf("hostile tokenizer.bin: %d truncations rejected\n", n_trunc);
    struct vocab *v = NULL;
    CHECK(vocab_load_l2c(NULL, 0, 512, &v, NULL) != STRIX_OK && v == NULL);
    CHECK(vocab_load_l2c(b, len, 512, NULL, NULL) == STRIX_ERR_ARG);
    free(m);
    free(b);
}

/* GGUF files made with the writer, each wrong in one way. */
enum {
    G_OK,
    G_GPT2,
    G_NOMODEL,
    G_NOTOKENS,
    G_TOKF32,
    G_SCORES,
    G_TYPES,
    G_BADTYPE,
    G_BOS,
    G_BOSNONE,
    G_BYTETYPE,
    G_MINIMAL,
    G_NOPREFIX,
    G_USER,
    G_USER2,
    G_ABFIRST,
    G_BERT,   /* a tokenizer model strix lacks */
    G_BADPRE, /* gpt2 with merges, but an unknown pre-tokenizer */
    G_BPE,    /* gpt2 with merges and pre-tokenizer */
    G_COUNT
};

static int build_gguf(int variant, struct vocab **out, strix_error *err)
{
    const char *toks[] = {"<unk>", "<s>",           "</s>", "<0x41>", "\xe2\x96\x81",
                          "a",     "\342\226\201a", "ab",   ""};
    const int n = 9;
    float scores[10] = {0, 0, 0, 0, -1, -2, -3, -4, -5, 0};
    int32_t types[10] = {2, 3, 3, 6, 1, 1, 1, 1, 3, 1};
    if (variant == G_BADTYPE)
        types[5] = 9;
    if (variant == G_BYTETYPE)
        types[5] = 6;
    if (variant == G_USER || variant == G_USER2)
        types[7] = 4; /* "ab" user-defined */
    if (variant == G_USER2)
        types[5] = 4; /* "a" too, cut out after the longer "ab" */
    if (variant == G_ABFIRST)
        scores[7] = 5;
    gguf_writer *w = gguf_writer_create();
    if (!w)
        return STRIX_ERR_NOMEM;
    if (variant != G_NOMODEL)
        gguf_writer_add_str(w, "tokenizer.ggml.model",
                            variant == G_BERT                                          ? "bert"
                            : variant == G_GPT2 || variant == G_BADPRE || variant == G_BPE ? "gpt2"
                                                                                         : "llama");
    if (variant == G_BADPRE || variant == G_BPE) {
        const char *merges[] = {"a b", "\xe2\x96\x81 a", "nospace", "a b"};
        gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, 4);
        gguf_writer_add_str(w, "tokenizer.ggml.pre", variant == G_BPE ? "gpt-2" : "klingon");
    }
    if (variant == G_TOKF32)
        gguf_writer_add_arr_f32(w, "tokenizer.ggml.tokens", scores, 9);
    else if (variant != G_NOTOKENS)
        gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n);
    if (variant != G_MINIMAL) {
        gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", scores, variant == G_SCORES ? 8 : 9);
        gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, variant == G_TYPES ? 10 : 9);
        gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id",
                            variant == G_BOS       ? 9u
                            : variant == G_BOSNONE ? UINT32_MAX
                                                   : 1u);
        gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", UINT32_MAX);
    }
    if (variant == G_NOPREFIX)
        gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", 0);
    uint8_t *buf = NULL;
    gguf *g = NULL;
    int rc = write_parse(w, &buf, &g);
    gguf_writer_free(w);
    if (rc == STRIX_OK)
        rc = vocab_load_gguf(g, out, err);
    gguf_free(g);
    free(buf);
    return rc;
}

static void test_gguf_variants(void)
{
    static const int want[G_COUNT] = {[G_OK] = STRIX_OK,
                                      [G_GPT2] = STRIX_ERR_FORMAT,
                                      [G_BERT] = STRIX_ERR_UNSUPPORTED,
                                      [G_BADPRE] = STRIX_ERR_UNSUPPORTED,
                                      [G_BPE] = STRIX_OK,
                                      [G_NOMODEL] = STRIX_ERR_FORMAT,
                                      [G_NOTOKENS] = STRIX_ERR_FORMAT,
                                      [G_TOKF32] = STRIX_ERR_FORMAT,
                                      [G_SCORES] = STRIX_ERR_FORMAT,
                                      [G_TYPES] = STRIX_ERR_FORMAT,
                                      [G_BADTYPE] = STRIX_ERR_FORMAT,
                                      [G_BOS] = STRIX_ERR_FORMAT,
                                      [G_BOSNONE] = STRIX_OK,
                                      [G_BYTETYPE] = STRIX_ERR_FORMAT,
                                      [G_MINIMAL] = STRIX_OK,
                                      [G_NOPREFIX] = STRIX_OK,
                                      [G_USER] = STRIX_OK,
                                      [G_USER2] = STRIX_OK,
                                      [G_ABFIRST] = STRIX_OK};
    for (int i = 0; i < G_COUNT; i++) {
        struct vocab *v = (struct vocab *)&want; /* must be reset to NULL on failure */
        strix_error err = {0};
        int rc = build_gguf(i, &v, &err);
        CHECKF(rc == want[i], "variant %d: rc %d (%s), want %d", i, rc, err.msg, want[i]);
        CHECK(rc == STRIX_OK ? v != NULL : v == NULL);
        if (i == G_GPT2)
            CHECKF(strstr(err.msg, "tokenizer.ggml.merges is missing"), "%s", err.msg);
        if (i == G_BERT)
            CHECKF(strstr(err.msg, "tokenizer model 'bert'") && strstr(err.msg, "supported: llama"),
                   "%s", err.msg);
        if (i == G_BADPRE)
            CHECKF(strstr(err.msg, "pre-tokenizer 'klingon'") && strstr(err.msg, "gpt-2"), "%s",
                   err.msg);
        if (i == G_BPE && v) { /* "ab": merge rank 0; no byte-level piece for ' ' or 'A' */
            int n = 0;
            strix_token *ids = tok(v, "ab A", 4, 0, &n);
            CHECK(same_ids(ids, n, (strix_token[]){7}, 1));
            CHECK(strcmp(vocab_model_name(v), "gpt2") == 0 && strcmp(vocab_pre_name(v), "gpt-2") == 0);
            CHECK(vocab_bos(v) == 1 && !vocab_add_bos(v));
            free(ids);
            vocab_free(v);
            continue;
        }
        if (rc != STRIX_OK || !v)
            continue;
        int n = 0, n2 = 0;
        strix_token *ids = tok(v, "aab A", 5, 0, &n), *ab = tok(v, "ab", 2, 0, &n2);
        if (i == G_MINIMAL || i == G_OK) /* "▁a" and "ab" overlap: the tie goes leftmost */
            CHECK(same_ids(ab, n2, (strix_token[]){6, 0}, 2));
        if (i == G_ABFIRST) /* a higher score wins */
            CHECK(same_ids(ab, n2, (strix_token[]){4, 7}, 2));
        free(ab);
        if (i == G_USER) { /* "ab" cut out; a space prefix again after it */
            CHECK(same_ids(ids, n, (strix_token[]){6, 7, 4, 4, 3}, 5));
        } else if (i == G_USER2) { /* "ab" first (longer), then "a" */
            CHECK(same_ids(ids, n, (strix_token[]){5, 7, 4, 4, 3}, 5));
        } else if (i == G_NOPREFIX) {
            CHECK(same_ids(ids, n, (strix_token[]){5, 7, 4, 3}, 4)); /* a ab ▁ <0x41> */
        } else if (i == G_MINIMAL) {
            /* all scores 0: ties go leftmost ("▁a" first); ids default to 1/2/0 */
            CHECK(same_ids(ids, n, (strix_token[]){6, 7, 4, 3}, 4));
            CHECK(vocab_bos(v) == 1 && vocab_eos(v) == 2 && vocab_type(v, 3) == STRIX_TOKEN_BYTE);
            CHECK(vocab_type(v, 0) == STRIX_TOKEN_NORMAL); /* types absent: normal */
        } else {
            /* "▁a" (-3) merges before "ab" (-4); "A" falls back to <0x41> */
            CHECK(same_ids(ids, n, (strix_token[]){6, 7, 4, 3}, 4));
            CHECK(vocab_bos(v) == (i == G_BOSNONE ? -1 : 1) && vocab_eos(v) == 2);
            CHECK(vocab_type(v, 8) == STRIX_TOKEN_CONTROL && strcmp(vocab_piece(v, 8), "") == 0);
        }
        if (i == G_BOSNONE) {
            strix_error e2 = {0};
            int k;
            CHECK(vocab_tokenize(v, "a", 1, 1, NULL, 0, &k, &e2) == STRIX_ERR_ARG);
        }
        free(ids);
        vocab_free(v);
    }
}

/* Every allocation of a load (and of tokenizing) failing in turn. */
static void test_alloc_failure(void)
{
    size_t len = 0;
    uint8_t *b = read_data("tok512.bin", &len);
    if (!b)
        return;
    long steps = 0;
    for (long n = 0;; n++) {
        struct vocab *v = NULL;
        strix_error err = {0};
        util_fail_alloc_after(n);
        int rc = vocab_load_l2c(b, len, 512, &v, &err);
        util_fail_alloc_after(-1);
        if (rc == STRIX_OK) {
            CHECK(v != NULL && vocab_n(v) == 512);
            vocab_free(v);
            steps = n;
            break;
        }
        CHECKF(rc == STRIX_ERR_NOMEM && v == NULL, "fail after %ld: rc %d %s", n, rc, err.msg);
        if (n > 1000)
            break;
    }
    CHECK(steps > 0 && steps < 1000);
    printf("vocab_load_l2c: %ld allocation failures handled\n", steps);
    free(b);

    /* vocab_write_gguf (and the writer, which copies each piece) failing at each allocation. */
    struct vocab *bv = load_l2c("byte_tokenizer.bin", 259);
    for (long n = 0; bv && n < 2000; n++) {
        strix_error err = {0};
        util_fail_alloc_after(n);
        gguf_writer *w = gguf_writer_create();
        int rc = w ? vocab_write_gguf(bv, w, &err) : STRIX_ERR_NOMEM;
        util_fail_alloc_after(-1);
        gguf_writer_free(w);
        if (rc == STRIX_OK) {
            printf("vocab_write_gguf: %ld allocation failures handled\n", n);
            break;
        }
        CHECKF(rc != STRIX_OK && n < 1999, "write fail after %ld: rc %d", n, rc);
    }
    vocab_free(bv);

    /* GGUF load and tokenize (phi-3: with user-defined partitioning). */
    b = read_data("ggml-vocab-phi-3.gguf", &len);
    gguf *g = NULL;
    strix_error err = {0};
    if (b && parse_gguf_bytes(b, len, &g, &err) == STRIX_OK) {
        struct vocab *v = NULL;
        for (long n = 0; n < 1000; n++) {
            util_fail_alloc_after(n);
            int rc = vocab_load_gguf(g, &v, &err);
            util_fail_alloc_after(-1);
            if (rc == STRIX_OK)
                break;
            CHECKF(rc == STRIX_ERR_NOMEM && v == NULL, "gguf fail after %ld: rc %d", n, rc);
        }
        CHECK(v != NULL);
        const char *s = "Hello </s> world, \xF0\x9F\xA6\x99 a long enough text to grow things";
        strix_token out[256];
        int n_out = 0, ok = 0;
        for (long n = 0; v && n < 1000; n++) {
            util_fail_alloc_after(n);
            int rc = vocab_tokenize(v, s, strlen(s), 1, out, 256, &n_out, &err);
            util_fail_alloc_after(-1);
            if (rc == STRIX_OK) {
                ok = n_out > 10;
                break;
            }
            CHECKF(rc == STRIX_ERR_NOMEM, "tokenize fail after %ld: rc %d", n, rc);
        }
        CHECK(ok);
        vocab_free(v);
    }
    gguf_free(g);
    free(b);

    /* The same for a byte-level vocabulary (mpt: merges, pre-tokenizer,
     * user-defined tokens), tokenizing with special-token parsing. */
    b = read_data("ggml-vocab-mpt.gguf", &len);
    g = NULL;
    if (b && parse_gguf_bytes(b, len, &g, &err) == STRIX_OK) {
        struct vocab *v = NULL;
        long n_load = 0;
        for (long n = 0; n < 1000; n++, n_load = n) {
            util_fail_alloc_after(n);
            int rc = vocab_load_gguf(g, &v, &err);
            util_fail_alloc_after(-1);
            if (rc == STRIX_OK)
                break;
            CHECKF(rc == STRIX_ERR_NOMEM && v == NULL, "bpe load fail after %ld: rc %d %s", n, rc,
                   err.msg);
        }
        CHECK(v != NULL);
        const char *s = "<|endoftext|>Hello      world, \xF0\x9F\xA6\x99 it's 2024\n\tcode();";
        strix_token out[256];
        int n_out = 0, ok = 0;
        long n_tok = 0;
        for (long n = 0; v && n < 1000; n++, n_tok = n) {
            util_fail_alloc_after(n);
            int rc = vocab_tokenize(v, s, strlen(s), STRIX_TOKENIZE_PARSE_SPECIAL, out, 256, &n_out,
                                    &err);
            util_fail_alloc_after(-1);
            if (rc == STRIX_OK) {
                ok = n_out > 10 && out[0] == 0; /* <|endoftext|> */
                break;
            }
            CHECKF(rc == STRIX_ERR_NOMEM, "bpe tokenize fail after %ld: rc %d %s", n, rc, err.msg);
        }
        CHECK(ok);
        printf("byte-level vocabulary: %ld load and %ld tokenize allocation failures handled\n",
               n_load, n_tok);
        vocab_free(v);
    }
    gguf_free(g);
    free(b);
}

static void time_tokenize(const struct vocab *v, const char *s, size_t n, const char *label,
                          int roundtrip)
{
    double t0 = now();
    int n_out = 0;
    strix_token *ids = tok(v, s, n, 1, &n_out);
    double dt = now() - t0;
    printf("%s: %zu bytes -> %d tokens in %.3f s\n", label, n, n_out, dt);
    CHECKF(ids != NULL, "%s failed", label); /* the time is printed, not judged: see the benchmarks */
    if (ids && roundtrip)
        CHECKF(roundtrip_ok(v, ids, n_out, s, n), "%s: round trip", label);
    free(ids);
}

static void test_big(void)
{
    size_t n_inp = 0;
    char *inp = (char *)read_data("tok512.inp", &n_inp);
    struct vocab *a = load_l2c("tok512.bin", 512);
    struct vocab *b = load_gguf(test_path("ggml-vocab-llama-spm.gguf"));
    struct vocab *c = load_gguf(test_path("ggml-vocab-gpt-2.gguf"));
    struct vocab *d = load_gguf(test_path("ggml-vocab-deepseek-llm.gguf"));
    const size_t n = 1 << 20;
    char *s = malloc(n + 1);
    if (inp && a && b && c && d && s) {
        /* Golden text without separators, repeated to 1 MiB; must not start with a space
         * for the round trip (the detokenizer drops one leading space). */
        size_t k = 0;
        for (char *p = inp; k < n; p = *p ? p : inp) {
            char *hit = strstr(p, SEP);
            size_t len = hit ? (size_t)(hit - p) : strlen(p);
            for (size_t i = 0; i < len && k < n; i++)
                s[k++] = p[i];
            if (k < n)
                s[k++] = '\n';
            p = hit ? hit + strlen(SEP) : p + len;
        }
        s[0] = 'X';
        size_t j = n - 1; /* no UTF-8 sequence cut at the end */
        while (j > 0 && (s[j] & 0xC0) == 0x80)
            j--;
        if ((unsigned char)s[j] >= 0xC0)
            memset(s + j, 'x', n - j);
        time_tokenize(a, s, n, "1 MiB text, tok512", 0);
        time_tokenize(b, s, n, "1 MiB text, llama-spm", 1);
        time_tokenize(c, s, n, "1 MiB text, gpt-2", 1);
        time_tokenize(d, s, n, "1 MiB text, deepseek-llm", 1);
        memset(s, 'a', n);
        time_tokenize(b, s, n, "1 MiB of 'a', llama-spm", 1);
        time_tokenize(c, s, n, "1 MiB of 'a', gpt-2", 1);
        memset(s, ' ', n);
        time_tokenize(b, s, n, "1 MiB of spaces, llama-spm", 1);
        time_tokenize(c, s, n, "1 MiB of spaces, gpt-2", 1);
        time_tokenize(d, s, n, "1 MiB of spaces, deepseek-llm", 1);
        for (size_t i = 0; i < n; i++)
            s[i] = (char)(0x80 + i % 64);
        time_tokenize(a, s, n, "1 MiB of continuation bytes, tok512", 0);
    }
    free(s);
    free(inp);
    vocab_free(a);
    vocab_free(b);
    vocab_free(c);
    vocab_free(d);
}

/* The public wrappers without a model. */
static void test_wrappers(void)
{
    strix_error err = {0};
    int n = 5;
    char buf[4] = "xyz";
    CHECK(strix_vocab_size(NULL) == 0 && strix_token_bos(NULL) == -1 &&
          strix_token_eos(NULL) == -1);
    CHECK(strix_token_piece(NULL, 0) == NULL && strix_token_type(NULL, 0) == 0);
    CHECK(strix_tokenize(NULL, "a", 1, 1, NULL, 0, &n, &err) == STRIX_ERR_ARG && n == 0);
    CHECK(strix_tokenize_ex(NULL, "a", 1, STRIX_TOKENIZE_PARSE_SPECIAL, NULL, 0, &n, &err) ==
              STRIX_ERR_ARG &&
          n == 0);
    CHECK(strix_vocab_model(NULL) == NULL && strix_vocab_pre(NULL) == NULL &&
          strix_vocab_add_bos(NULL) == 0 && strstr(strix_tokenizers_supported(), "gpt2"));
    struct vocab *v = load_gguf(test_path("ggml-vocab-gpt-2.gguf"));
    strix_token ids[8];
    if (v) { /* an unknown flag is refused; <|endoftext|> is parsed only when asked */
        CHECK(vocab_tokenize(v, "a", 1, 4, ids, 8, &n, &err) == STRIX_ERR_ARG &&
              strstr(err.msg, "flags"));
        CHECK(vocab_tokenize(v, "<|endoftext|>", 13, STRIX_TOKENIZE_PARSE_SPECIAL, ids, 8, &n,
                             &err) == STRIX_OK &&
              n == 1 && ids[0] == 50256);
        CHECK(vocab_tokenize(v, "<|endoftext|>", 13, 0, ids, 8, &n, &err) == STRIX_OK && n > 1);
        CHECK(vocab_detokenize(v, ids, n, buf, 4) == 13); /* its text comes back */
    }
    vocab_free(v);
    CHECK(strix_token_to_text(NULL, -1, 0, buf, 4) == -1);
    CHECK(strix_detokenize(NULL, NULL, 0, buf, 4) == -1 && buf[0] == '\0');
}

int main(void)
{
    test_l2c_vs_ref();
    test_goldens();
    test_bpe_goldens();
    test_extra_strings();
    test_supplementary_plane();
    test_pre_tokenizers();
    test_llama_spm();
    test_user_defined();
    test_raw_byte_vocab();
    test_hostile_l2c();
    test_gguf_variants();
    test_alloc_failure();
    test_big();
    test_wrappers();
    TEST_MAIN_END();
}
