/*
 * vocab.c - the vocabulary's core: building one (pieces, the piece index,
 * byte fallback), its accessors and freeing it. Loading is in vocab_gguf.c
 * and vocab_l2c.c, special tokens in vocab_special.c, the tokenizers in
 * vocab_tokenize.c (byte-level pre-tokenizers and merge ranks: bpe.c), the
 * detokenizer in vocab_detok.c; strix.h's token functions over a model are
 * in model/tokens.c.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenize/bpe.h"
#include "tokenize/vocab_impl.h"

/* ---- construction ---------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

const char *vocab_text(const struct vocab *v, strix_token id)
{
    return v->text + v->toks[id].off;
}

/* The id of the piece s[0..n), or -1. Duplicate pieces map to the highest id,
 * as llama.cpp's token_to_id map does (later tokens overwrite earlier ones). */
strix_token vocab_find(const struct vocab *v, const char *s, size_t n)
{
    if (n == 0 || n > v->max_len)
        return -1;
    for (uint32_t i = hash_bytes(s, n) & v->hash_mask;; i = (i + 1) & v->hash_mask) {
        int32_t id = v->hash[i];
        if (id < 0)
            return -1;
        if (v->toks[id].len == n && memcmp(vocab_text(v, id), s, n) == 0)
            return id;
    }
}

int vocab_is_byte_piece(const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdefABCDEF";
    return n == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>' && p[3] && p[4] && strchr(hex, p[3]) &&
           strchr(hex, p[4]);
}

int vocab_hex_val(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

struct vocab *vocab_new(int n, size_t text_bytes)
{
    struct vocab *v = util_calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->n = n;
    v->bos = v->eos = v->unk = -1;
    v->add_space_prefix = v->add_bos = 1;
    v->toks = util_calloc((size_t)n, sizeof *v->toks);
    v->text = util_malloc(text_bytes);
    if (!v->toks || !v->text) {
        vocab_free(v);
        return NULL;
    }
    return v;
}

/* Copies piece i to the blob at *pos, turning ' ' into U+2581 if escape. */
void vocab_set_piece(struct vocab *v, int i, size_t *pos, const char *s, size_t n, int escape)
{
    char *d = v->text + *pos;
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        if (escape && s[j] == ' ') {
            memcpy(d + k, SPACE_ESC, SPACE_ESC_LEN);
            k += SPACE_ESC_LEN;
        } else {
            d[k++] = s[j];
        }
    }
    d[k] = '\0';
    v->toks[i].off = *pos;
    v->toks[i].len = (uint32_t)k;
    *pos += k + 1;
}

/* Builds the lookup structures once pieces, scores and types are set. */
int vocab_finish(struct vocab *v, strix_error *err)
{
    uint32_t size = 16;
    while (size < 2u * (uint32_t)v->n)
        size *= 2;
    v->hash = util_malloc((size_t)size * sizeof *v->hash);
    if (!v->hash)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for the vocabulary index");
    memset(v->hash, 0xff, (size_t)size * sizeof *v->hash);
    v->hash_mask = size - 1;
    for (int i = 0; i < v->n; i++) {
        const struct tok *t = &v->toks[i];
        if (t->type == STRIX_TOKEN_BYTE && !vocab_is_byte_piece(vocab_text(v, i), t->len))
            return err_set(err, STRIX_ERR_FORMAT,
                           "token %d is a byte token but its piece is not of the form <0xXX>", i);
        if (t->len > v->max_len)
            v->max_len = t->len;
        if (t->len == 0)
            continue; /* never matched: symbols are never empty */
        uint32_t h = hash_bytes(vocab_text(v, i), t->len) & v->hash_mask;
        while (v->hash[h] >= 0 && !(v->toks[v->hash[h]].len == t->len &&
                                    memcmp(vocab_text(v, v->hash[h]), vocab_text(v, i), t->len) == 0))
            h = (h + 1) & v->hash_mask;
        v->hash[h] = i; /* a duplicate piece: the later id wins */
    }
    /* Byte fallback as llama.cpp does it: the piece "<0xXX>" (by text, upper
     * case), else a piece that is that single raw byte, else unk. */
    for (int b = 0; b < 256; b++) {
        static const char hex[] = "0123456789ABCDEF";
        const char p[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        const char raw = (char)b;
        v->byte_tok[b] = vocab_find(v, p, 6);
        if (v->byte_tok[b] < 0)
            v->byte_tok[b] = vocab_find(v, &raw, 1);
    }
    return STRIX_OK;
}


/* Room for `need` elements: the array (maybe moved), or NULL (p intact). */
void *vocab_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap && p)
        return p;
    size_t n = *cap > 16 ? *cap : 16, bytes;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    void *q = util_mul_size(n, elem, &bytes) ? util_realloc(p, bytes) : NULL;
    if (q)
        *cap = n;
    return q;
}

void vocab_free(struct vocab *v)
{
    if (!v)
        return;
    util_free(v->toks);
    util_free(v->text);
    util_free(v->hash);
    util_free(v->special);
    bpe_free(v->bpe);
    util_free(v);
}


/* ---- accessors --------------------------------------------------------------- */

int vocab_n(const struct vocab *v)
{
    return v ? v->n : 0;
}
strix_token vocab_bos(const struct vocab *v)
{
    return v ? v->bos : -1;
}
strix_token vocab_eos(const struct vocab *v)
{
    return v ? v->eos : -1;
}
const char *vocab_model_name(const struct vocab *v)
{
    return !v ? NULL : v->bpe ? "gpt2" : "llama";
}
const char *vocab_pre_name(const struct vocab *v)
{
    return !v ? NULL : v->bpe ? bpe_pre_name(v->bpe) : "";
}
int vocab_add_bos(const struct vocab *v)
{
    return v && v->add_bos && v->bos >= 0;
}

const char *vocab_piece(const struct vocab *v, strix_token id)
{
    return v && id >= 0 && id < v->n ? vocab_text(v, id) : NULL;
}

int vocab_type(const struct vocab *v, strix_token id)
{
    return v && id >= 0 && id < v->n ? v->toks[id].type : 0;
}

int vocab_token_strips(const struct vocab *v, strix_token id)
{
    return v && id >= 0 && id < v->n && v->toks[id].strip != 0;
}


const char *strix_tokenizers_supported(void)
{
    return VOCAB_MODELS "; gpt2 pre-tokenizers (tokenizer.ggml.pre): " BPE_PRE_NAMES;
}
