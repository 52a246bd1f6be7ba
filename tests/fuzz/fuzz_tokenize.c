/*
 * fuzz_tokenize.c - libFuzzer target for the tokenizers (src/tokenize): a
 * SentencePiece vocabulary (llama-spm), byte-level BPE vocabularies (gpt-2,
 * deepseek-llm, and gpt-2 with the llama-bpe pre-tokenizer) and a llama2.c
 * tokenizer.bin, each with and without special-token parsing and BOS, then
 * the detokenizer. The first input byte chooses the vocabulary, the flags and
 * how the rest becomes the text: as it is, or each byte as one code point
 * from a table of the kinds tokenizers treat apart (ASCII, 2- and 3-byte
 * letters, CJK, emoji and other code points above U+FFFF, joiners and
 * selectors, Unicode spaces, invalid bytes), so that mutations reach long
 * runs of any kind. Checked beyond "no crash": every id is in range, the
 * detokenizer's counted length matches what it writes and is NUL-terminated,
 * a too small buffer is not overrun, and byte-level BPE gives valid UTF-8
 * back byte for byte when special tokens are not parsed.
 *
 * The vocabularies are read once from $STRIX_FUZZ_DATA (default tests/data,
 * so run from the repository root). Built by `make fuzz`; scripts/fuzz.sh
 * runs it on a copy of tests/fuzz/corpus/fuzz_tokenize.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../utf8_check.h"
#include "fuzz_common.h"
#include "format/gguf.h"
#include "tokenize/vocab.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

enum { N_VOCABS = 5 };
static struct vocab *vocabs[N_VOCABS];
static const char *const names[N_VOCABS] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf",
                                             "ggml-vocab-deepseek-llm.gguf", "llama-bpe",
                                             "tok512.bin"};

static uint8_t *read_all(const char *name, size_t *len)
{
    const char *dir = getenv("STRIX_FUZZ_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "tests/data", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_tokenize: cannot open %s (set STRIX_FUZZ_DATA)\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n)
        exit(1);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* A GGUF vocabulary; pre (may be NULL) replaces tokenizer.ggml.pre. */
static struct vocab *load(const char *name, const char *pre)
{
    size_t len;
    uint8_t *b = read_all(name, &len);
    gguf *g = NULL;
    struct vocab *v = NULL;
    strix_error err;
    if (gguf_parse(b, len, &g, &err) != STRIX_OK)
        exit(1);
    if (pre) {
        const struct gguf_kv *kv = gguf_find_kv(g, "tokenizer.ggml.pre");
        if (!kv || kv->type != GGUF_VT_STR)
            exit(1);
        struct gguf_kv *w = (struct gguf_kv *)kv; /* the parsed view, ours to edit */
        w->str.ptr = pre;
        w->str.len = strlen(pre);
    }
    if (vocab_load_gguf(g, &v, &err) != STRIX_OK) {
        fprintf(stderr, "fuzz_tokenize: %s: %s\n", name, err.msg);
        exit(1);
    }
    gguf_free(g);
    free(b); /* the vocabulary keeps copies of what it needs */
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vocabs[0] = load(names[0], NULL);
    vocabs[1] = load(names[1], NULL);
    vocabs[2] = load(names[2], NULL);
    vocabs[3] = load(names[1], "llama-bpe");
    size_t len;
    uint8_t *b = read_all(names[4], &len);
    strix_error err;
    if (vocab_load_l2c(b, len, 512, &vocabs[4], &err) != STRIX_OK)
        exit(1);
    free(b);
    return 0;
}

static size_t put_utf8(uint8_t *d, uint32_t c)
{
    if (c < 0x80)
        return d[0] = (uint8_t)c, 1;
    if (c < 0x800)
        return d[0] = (uint8_t)(0xC0 | c >> 6), d[1] = (uint8_t)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000)
        return d[0] = (uint8_t)(0xE0 | c >> 12), d[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F)),
               d[2] = (uint8_t)(0x80 | (c & 0x3F)), 3;
    d[0] = (uint8_t)(0xF0 | c >> 18), d[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    d[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), d[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* Byte b as text (code point mode): at most 4 bytes into d. */
static size_t expand(uint8_t b, uint8_t *d)
{
    static const uint32_t marks[8] = {0x2581, 0x3000, 0x85, 0xA0, 0x200D, 0xFE0F, 0x1F3FB, 0x301};
    if (b < 0x80)
        return put_utf8(d, b);
    if (b < 0xA0)
        return put_utf8(d, 0xC0 + (b - 0x80u) * 3); /* Latin-1 and Latin Extended letters */
    if (b < 0xB0)
        return put_utf8(d, 0x4E00 + (b - 0xA0u) * 97); /* CJK */
    if (b < 0xC0)
        return put_utf8(d, 0x0900 + (b - 0xB0u) * 5); /* Devanagari: letters and marks */
    if (b < 0xD8)
        return put_utf8(d, 0x1F600 + (b - 0xC0u) * 11); /* emoji */
    if (b < 0xE8)
        return put_utf8(d, 0x20000 + (b - 0xD8u) * 4099); /* CJK extension B */
    if (b < 0xF0)
        return put_utf8(d, 0x1F1E6 + (b - 0xE8u)); /* regional indicators */
    if (b < 0xF8)
        return put_utf8(d, marks[b - 0xF0]);
    static const uint8_t bad[8][3] = {{0xFF}, {0xC0}, {0x80}, {0xED, 0xA0, 0x80},
                                      {0xF4, 0x90, 0x80}, {0xE2, 0x82}, {0xF0, 0x9F}, {0xC3}};
    const size_t k = b == 0xFB || b == 0xFC ? 3 : b == 0xFD || b == 0xFE ? 2 : 1;
    memcpy(d, bad[b - 0xF8], k);
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    const int which = data[0] % N_VOCABS;
    const int flags = (data[0] / N_VOCABS) % 4; /* ADD_BOS | PARSE_SPECIAL */
    const int cpt_mode = (data[0] / (4 * N_VOCABS)) % 2;
    const struct vocab *v = vocabs[which];
    static uint8_t wide[4 * 4096];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    if (cpt_mode) {
        size_t k = 0;
        for (size_t i = 1; i < size; i++)
            k += expand(data[i], wide + k);
        text = (const char *)wide;
        n = k;
    }
    if ((flags & STRIX_TOKENIZE_ADD_BOS) && vocab_bos(v) < 0)
        return 0;
    /* the count first (no room), then the ids */
    int n_ids = -1;
    strix_error err;
    int rc = vocab_tokenize(v, text, n, flags, NULL, 0, &n_ids, &err);
    REQUIRE(rc == STRIX_OK || rc == STRIX_ERR_ARG);
    if (rc != STRIX_OK && n_ids == 0)
        return 0; /* refused outright (e.g. no unknown token for a byte) */
    REQUIRE(n_ids >= 0);
    strix_token *ids = malloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof *ids);
    REQUIRE(ids);
    int n2 = -1;
    rc = vocab_tokenize(v, text, n, flags, ids, n_ids, &n2, &err);
    REQUIRE(rc == STRIX_OK && n2 == n_ids);
    for (int i = 0; i < n_ids; i++)
        REQUIRE(ids[i] >= 0 && ids[i] < vocab_n(v));
    /* detokenize: counted length, exact buffer, short buffer */
    const int need = vocab_detokenize(v, ids, n_ids, NULL, 0);
    REQUIRE(need >= 0);
    char *buf = malloc((size_t)need + 1);
    REQUIRE(buf);
    REQUIRE(vocab_detokenize(v, ids, n_ids, buf, (size_t)need + 1) == need && buf[need] == '\0');
    if (need > 1) {
        char *small = malloc((size_t)need / 2);
        REQUIRE(small);
        REQUIRE(vocab_detokenize(v, ids, n_ids, small, (size_t)need / 2) == need);
        REQUIRE(memchr(small, '\0', (size_t)need / 2) != NULL);
        free(small);
    }
    /* token by token */
    char piece[64];
    for (int i = 0; i < n_ids; i++) {
        const int k = vocab_token_to_text(v, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        REQUIRE(k >= 0);
    }
    /* byte-level BPE, neither BOS nor special tokens: valid UTF-8 comes back as it was */
    if ((which == 1 || which == 2 || which == 3) && flags == 0 &&
        valid_utf8((const uint8_t *)text, n))
        REQUIRE((size_t)need == n && memcmp(buf, text, n) == 0);
    free(buf);
    free(ids);
    return 0;
}
