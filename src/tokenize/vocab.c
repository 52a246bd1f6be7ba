/*
 * vocab.c - owns the vocabulary: its two loaders (GGUF tokenizer.ggml.* keys
 * and llama2.c tokenizer.bin), the writer of those GGUF keys, the two
 * tokenizers (SentencePiece-style BPE for "llama" vocabularies, byte-level BPE
 * for "gpt2" ones; both reproduce llama.cpp's token for token), the splitting
 * of special tokens out of the text, the detokenizer, and the strix_vocab_* /
 * strix_token_* / strix_tokenize* / strix_detokenize wrappers of strix.h.
 * The byte-level pre-tokenizers and merge ranks live in bpe.c.
 *
 * Pieces are stored in one blob, each NUL-terminated, with an explicit length
 * (a piece may hold a NUL byte, e.g. a raw-byte vocabulary's piece for byte 0;
 * vocab_piece then shows it cut short, the tokenizer uses the full length).
 */
#include "tokenize/vocab.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenize/bpe.h"
#include "model/model.h"
#include "util.h"

#define SPACE_ESC "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */
#define SPACE_ESC_LEN 3
#define VOCAB_MAX (1 << 24)              /* far above any real vocabulary */
#define TEXT_MAX ((size_t)INT32_MAX / 8) /* so every count below fits an int32 */
#define VOCAB_MODELS "llama (SentencePiece BPE), gpt2 (byte-level BPE)"

struct tok {
    size_t off;   /* of the piece in vocab->text */
    uint32_t len; /* bytes, without the NUL */
    float score;
    int type;      /* enum strix_token_attr */
    uint8_t strip; /* STRIP_*: whitespace a special token takes from its sides */
};

enum { STRIP_LEFT = 1, STRIP_RIGHT = 2 };

struct vocab {
    int n;
    struct tok *toks;
    char *text;    /* every piece, each NUL-terminated */
    int32_t *hash; /* open addressing over pieces: token id or -1 */
    uint32_t hash_mask;
    uint32_t max_len;          /* longest piece, bounds every lookup */
    strix_token bos, eos, unk; /* -1: none */
    int add_space_prefix, add_bos;
    strix_token byte_tok[256]; /* byte fallback of each byte; -1: none (unk then) */
    uint64_t *special;         /* control, user-defined and unknown tokens, longest first */
    int n_special;
    struct bpe *bpe; /* "gpt2" vocabularies: pre-tokenizer and merges; NULL: SentencePiece */
};

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

static const char *piece_of(const struct vocab *v, strix_token id)
{
    return v->text + v->toks[id].off;
}

/* The id of the piece s[0..n), or -1. Duplicate pieces map to the highest id,
 * as llama.cpp's token_to_id map does (later tokens overwrite earlier ones). */
static strix_token vocab_find(const struct vocab *v, const char *s, size_t n)
{
    if (n == 0 || n > v->max_len)
        return -1;
    for (uint32_t i = hash_bytes(s, n) & v->hash_mask;; i = (i + 1) & v->hash_mask) {
        int32_t id = v->hash[i];
        if (id < 0)
            return -1;
        if (v->toks[id].len == n && memcmp(piece_of(v, id), s, n) == 0)
            return id;
    }
}

static int is_byte_piece(const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdefABCDEF";
    return n == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>' && p[3] && p[4] && strchr(hex, p[3]) &&
           strchr(hex, p[4]);
}

static int hex_val(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static struct vocab *vocab_new(int n, size_t text_bytes)
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
static void set_piece(struct vocab *v, int i, size_t *pos, const char *s, size_t n, int escape)
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

static int cmp_user(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Builds the lookup structures once pieces, scores and types are set. */
static int vocab_finish(struct vocab *v, strix_error *err)
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
        if (t->type == STRIX_TOKEN_BYTE && !is_byte_piece(piece_of(v, i), t->len))
            return err_set(err, STRIX_ERR_FORMAT,
                           "token %d is a byte token but its piece is not of the form <0xXX>", i);
        if (t->len > v->max_len)
            v->max_len = t->len;
        if (t->len == 0)
            continue; /* never matched: symbols are never empty */
        uint32_t h = hash_bytes(piece_of(v, i), t->len) & v->hash_mask;
        while (v->hash[h] >= 0 && !(v->toks[v->hash[h]].len == t->len &&
                                    memcmp(piece_of(v, v->hash[h]), piece_of(v, i), t->len) == 0))
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

static int is_special(int type)
{
    return type == STRIX_TOKEN_CONTROL || type == STRIX_TOKEN_USER_DEFINED ||
           type == STRIX_TOKEN_UNKNOWN;
}

/* Special tokens are split out of the text before BPE, longest first
 * (llama.cpp's tokenizer_st_partition): keys (UINT32_MAX - len) << 32 | id.
 * Called once the types are final. */
static int vocab_list_special(struct vocab *v, strix_error *err)
{
    v->n_special = 0;
    for (int i = 0; i < v->n; i++)
        v->n_special += is_special(v->toks[i].type) && v->toks[i].len > 0;
    if (v->n_special == 0)
        return STRIX_OK;
    if (!(v->special = util_malloc((size_t)v->n_special * sizeof *v->special)))
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for the vocabulary index");
    for (int i = 0, k = 0; i < v->n; i++)
        if (is_special(v->toks[i].type) && v->toks[i].len > 0)
            v->special[k++] = (uint64_t)(UINT32_MAX - v->toks[i].len) << 32 | (uint32_t)i;
    qsort(v->special, (size_t)v->n_special, sizeof *v->special, cmp_user);
    return STRIX_OK;
}

static void set_type(struct vocab *v, const char *piece, int type)
{
    strix_token id = vocab_find(v, piece, strlen(piece));
    if (id >= 0)
        v->toks[id].type = type;
}

/*
 * What llama.cpp's loader changes in the types the file gives: tokens it
 * takes for end of generation (and, when the file names none, for end of
 * turn and fill-in-the-middle) by their text become control tokens; Phi-3's
 * special tokens swallow the whitespace after them, Jina v2's <mask> the
 * whitespace before it. (llama.cpp takes the first name it meets in a hash
 * map where several could serve for one role; here every such name counts.)
 */
static void vocab_fix_types(struct vocab *v, const gguf *g)
{
    static const char *const eog[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                      "<|endoftext|>", "<|eom_id|>", "<EOT>"};
#define FW_BAR "\xef\xbd\x9c" /* U+FF5C FULLWIDTH VERTICAL LINE, DeepSeek's */
    static const struct {
        const char *key;
        const char *names[5];
    } roles[] = {
        {"tokenizer.ggml.eot_token_id", {"<" FW_BAR "end" SPACE_ESC "of" SPACE_ESC "sentence" FW_BAR ">"}},
        {"tokenizer.ggml.fim_pre_token_id",
         {"<|fim_prefix|>", "<fim-prefix>", "<" FW_BAR "fim" SPACE_ESC "begin" FW_BAR ">", "<PRE>"}},
        {"tokenizer.ggml.fim_suf_token_id",
         {"<|fim_suffix|>", "<fim-suffix>", "<" FW_BAR "fim" SPACE_ESC "hole" FW_BAR ">", "<SUF>"}},
        {"tokenizer.ggml.fim_mid_token_id",
         {"<|fim_middle|>", "<fim-middle>", "<" FW_BAR "fim" SPACE_ESC "end" FW_BAR ">", "<MID>"}},
        {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<PAD>"}},
        {"tokenizer.ggml.fim_rep_token_id", {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}},
        {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>"}},
    };
#undef FW_BAR
    for (size_t i = 0; i < sizeof eog / sizeof eog[0]; i++)
        set_type(v, eog[i], STRIX_TOKEN_CONTROL);
    for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) {
        if (gguf_find_kv(g, roles[r].key))
            continue;
        for (int k = 0; k < 5 && roles[r].names[k]; k++)
            set_type(v, roles[r].names[k], STRIX_TOKEN_CONTROL);
    }
    /* The per-model whitespace stripping (lower-cased general.name). */
    struct gguf_str name = {0}, pre = {0};
    char low[128] = {0};
    if (gguf_get_str(g, "general.name", 0, &name, NULL) == STRIX_OK)
        for (size_t i = 0; i < name.len && i + 1 < sizeof low; i++)
            low[i] = (char)(name.ptr[i] >= 'A' && name.ptr[i] <= 'Z' ? name.ptr[i] + 32 : name.ptr[i]);
    if (gguf_get_str(g, "tokenizer.ggml.pre", 0, &pre, NULL) == STRIX_OK && pre.len >= 10 &&
        memcmp(pre.ptr, "jina-v2-", 8) == 0 &&
        ((pre.len == 10 && (memcmp(pre.ptr + 8, "de", 2) == 0 || memcmp(pre.ptr + 8, "es", 2) == 0)) ||
         (pre.len == 12 && memcmp(pre.ptr + 8, "code", 4) == 0))) {
        strix_token id = vocab_find(v, "<mask>", 6);
        if (id >= 0)
            v->toks[id].strip |= STRIP_LEFT;
    } else if (strstr(low, "phi-3") || strstr(low, "phi3")) {
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (int i = 0; i < v->n; i++)
            if (is_special(v->toks[i].type))
                v->toks[i].strip |= STRIP_RIGHT;
        strix_token id = vocab_find(v, "</s>", 4);
        if (id >= 0)
            v->toks[id].strip |= STRIP_RIGHT;
        for (int i = 0; i < 3; i++)
            if ((id = vocab_find(v, keep[i], strlen(keep[i]))) >= 0)
                v->toks[id].strip &= (uint8_t)~STRIP_RIGHT;
    }
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

/* ---- GGUF ------------------------------------------------------------------ */

/* Optional special id: absent keeps *id; UINT32_MAX (llama.cpp's "none") gives -1. */
static int get_id(const gguf *g, const char *key, int n, strix_token *id, strix_error *err)
{
    uint32_t u;
    int rc = gguf_get_u32(g, key, 0, &u, err);
    if (rc == STRIX_OK && u != UINT32_MAX && u >= (uint32_t)n)
        return err_set(err, STRIX_ERR_FORMAT, "%s is %u but there are %d tokens", key, u, n);
    if (rc == STRIX_OK)
        *id = u == UINT32_MAX ? -1 : (strix_token)u;
    return rc == STRIX_ERR_ARG ? STRIX_OK : rc; /* STRIX_ERR_ARG: absent */
}

static int get_flag(const gguf *g, const char *key, int *flag, strix_error *err)
{
    int b, rc = gguf_get_bool(g, key, 0, &b, err);
    if (rc == STRIX_OK)
        *flag = b != 0;
    return rc == STRIX_ERR_ARG ? STRIX_OK : rc;
}

/* A per-token array of the given element type: NULL and *rc == 0 if absent. */
static const struct gguf_kv *get_arr(const gguf *g, const char *key, uint32_t type, uint64_t n,
                                     int *rc, strix_error *err)
{
    const struct gguf_kv *kv = NULL;
    *rc = STRIX_OK;
    if (gguf_find_kv(g, key) && !(kv = gguf_get_arr(g, key, type, err)))
        *rc = STRIX_ERR_FORMAT;
    else if (kv && n && kv->n != n)
        *rc = err_set(err, STRIX_ERR_FORMAT, "%s has %llu entries but there are %llu tokens", key,
                      (unsigned long long)kv->n, (unsigned long long)n);
    return *rc ? NULL : kv;
}

int vocab_load_gguf(const gguf *g, struct vocab **out, strix_error *err)
{
    if (out)
        *out = NULL;
    if (!g || !out)
        return err_set(err, STRIX_ERR_ARG, "vocab_load_gguf: NULL argument");
    struct gguf_str model;
    int rc = gguf_get_str(g, "tokenizer.ggml.model", 1, &model, err);
    if (rc)
        return rc;
    const int is_bpe = model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0;
    if (!is_bpe && !(model.len == 5 && memcmp(model.ptr, "llama", 5) == 0))
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "tokenizer model '%.*s' (tokenizer.ggml.model) is not supported; "
                       "supported: %s",
                       (int)(model.len < 64 ? model.len : 64), model.ptr, VOCAB_MODELS);
    const struct gguf_kv *kt = get_arr(g, "tokenizer.ggml.tokens", GGUF_VT_STR, 0, &rc, err);
    if (!rc && (!kt || kt->n < 1 || kt->n > VOCAB_MAX || !kt->arr_strs))
        rc = err_set(err, STRIX_ERR_FORMAT,
                     "tokenizer.ggml.tokens is missing or has %llu tokens (1..%d)",
                     kt ? (unsigned long long)kt->n : 0ull, VOCAB_MAX);
    if (rc)
        return rc;
    const int n = (int)kt->n;
    const struct gguf_kv *ks = get_arr(g, "tokenizer.ggml.scores", GGUF_VT_F32, kt->n, &rc, err);
    if (rc)
        return rc;
    const struct gguf_kv *ky =
        get_arr(g, "tokenizer.ggml.token_type", GGUF_VT_I32, kt->n, &rc, err);
    if (rc)
        return rc;

    size_t text_bytes = 0;
    for (int i = 0; i < n; i++) {
        if (kt->arr_strs[i].len >= UINT32_MAX ||
            !util_add_size(text_bytes, (size_t)kt->arr_strs[i].len + 1, &text_bytes))
            return err_set(err, STRIX_ERR_FORMAT, "token %d is too long", i);
    }
    struct vocab *v = vocab_new(n, text_bytes);
    if (!v)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for %d tokens", n);
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        const struct gguf_str *s = &kt->arr_strs[i];
        set_piece(v, i, &pos, s->ptr, (size_t)s->len, 0);
        struct tok *t = &v->toks[i];
        t->score = ks ? gguf_arr_f32(ks, (uint64_t)i) : 0.0f;
        if (isnan(t->score)) {
            rc = err_set(err, STRIX_ERR_FORMAT, "token %d has a NaN score", i);
            goto fail;
        }
        if (ky) {
            int64_t ty = gguf_arr_i64(ky, (uint64_t)i);
            if (ty < 0 || ty > STRIX_TOKEN_BYTE) {
                rc = err_set(err, STRIX_ERR_FORMAT, "token %d has unknown type %lld", i,
                             (long long)ty);
                goto fail;
            }
            t->type = ty == 0 ? STRIX_TOKEN_NORMAL : (int)ty; /* 0: llama.cpp's "undefined" */
        } else {
            t->type = is_byte_piece(piece_of(v, i), t->len) ? STRIX_TOKEN_BYTE : STRIX_TOKEN_NORMAL;
        }
    }
    /* llama.cpp's defaults, where the vocabulary is big enough to have them:
     * llama 0/1/2 for unknown/BOS/EOS, gpt2 11 for both BOS and EOS. */
    if (is_bpe) {
        v->unk = -1;
        v->bos = v->eos = n > 11 ? 11 : -1;
        v->add_space_prefix = v->add_bos = 0;
        struct gguf_str pre = {0};
        if ((rc = gguf_get_str(g, "tokenizer.ggml.pre", 0, &pre, err)) == STRIX_ERR_ARG)
            rc = STRIX_OK; /* absent: "default" */
        if (rc || (rc = bpe_create(pre.ptr, (size_t)pre.len, gguf_find_kv(g, "tokenizer.ggml.merges"),
                                   &v->bpe, err)))
            goto fail;
    } else {
        v->unk = 0;
        v->bos = n > 1 ? 1 : -1;
        v->eos = n > 2 ? 2 : -1;
    }
    /* tokenizer.ggml.seperator_token_id / padding_token_id are not used. */
    if ((rc = get_id(g, "tokenizer.ggml.bos_token_id", n, &v->bos, err)) ||
        (rc = get_id(g, "tokenizer.ggml.eos_token_id", n, &v->eos, err)) ||
        (rc = get_id(g, "tokenizer.ggml.unknown_token_id", n, &v->unk, err)) ||
        (rc = get_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err)) ||
        (rc = get_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err)) ||
        (rc = vocab_finish(v, err)))
        goto fail;
    vocab_fix_types(v, g);
    if ((rc = vocab_list_special(v, err)))
        goto fail;
    *out = v;
    return STRIX_OK;
fail:
    vocab_free(v);
    return rc;
}

int vocab_write_gguf(const struct vocab *v, gguf_writer *w, strix_error *err)
{
    if (!v || !w)
        return err_set(err, STRIX_ERR_ARG, "vocab_write_gguf: NULL argument");
    const char **strs = util_malloc((size_t)v->n * sizeof *strs);
    float *scores = util_malloc((size_t)v->n * sizeof *scores);
    int32_t *types = util_malloc((size_t)v->n * sizeof *types);
    char *mblob = NULL;
    const char **merges = NULL;
    uint32_t n_merges = 0;
    int rc = STRIX_OK;
    const char *key = "";
    if (!strs || !scores || !types ||
        (v->bpe && bpe_merge_strings(v->bpe, &mblob, &merges, &n_merges))) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory writing the vocabulary");
        goto done;
    }
    for (int i = 0; i < v->n; i++) {
        /* The writer takes C strings; GGUF could hold the NUL, our API cannot. */
        if (memchr(piece_of(v, i), 0, v->toks[i].len)) {
            rc = err_set(err, STRIX_ERR_UNSUPPORTED,
                         "token %d holds a NUL byte, which cannot be written to GGUF", i);
            goto done;
        }
        strs[i] = piece_of(v, i);
        scores[i] = v->toks[i].score;
        types[i] = v->toks[i].type;
    }
    if (v->bpe) { /* keys in the order llama.cpp's HF converter writes them */
        if ((rc = gguf_writer_add_str(w, key = "tokenizer.ggml.model", "gpt2")) ||
            (rc = gguf_writer_add_str(w, key = "tokenizer.ggml.pre", bpe_pre_name(v->bpe))) ||
            (rc = gguf_writer_add_arr_str(w, key = "tokenizer.ggml.tokens", strs, (uint64_t)v->n)) ||
            (rc = gguf_writer_add_arr_i32(w, key = "tokenizer.ggml.token_type", types,
                                          (uint64_t)v->n)) ||
            (rc = gguf_writer_add_arr_str(w, key = "tokenizer.ggml.merges", merges, n_merges)) ||
            (v->bos >= 0 && (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.bos_token_id",
                                                      (uint32_t)v->bos))) ||
            (v->eos >= 0 && (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.eos_token_id",
                                                      (uint32_t)v->eos))) ||
            (v->unk >= 0 && (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.unknown_token_id",
                                                      (uint32_t)v->unk))) ||
            (v->add_bos && (rc = gguf_writer_add_bool(w, key = "tokenizer.ggml.add_bos_token", 1))))
            rc = err_set(err, rc, "cannot add GGUF key %s (%s)", key, strix_status_name(rc));
        goto done;
    }
    /* Keys in the order llama.cpp's llama2.c converter writes them. */
    if ((rc = gguf_writer_add_str(w, key = "tokenizer.ggml.model", "llama")) ||
        (rc = gguf_writer_add_arr_str(w, key = "tokenizer.ggml.tokens", strs, (uint64_t)v->n)) ||
        (rc = gguf_writer_add_arr_f32(w, key = "tokenizer.ggml.scores", scores, (uint64_t)v->n)) ||
        (rc = gguf_writer_add_arr_i32(w, key = "tokenizer.ggml.token_type", types,
                                      (uint64_t)v->n)) ||
        (v->unk >= 0 && (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.unknown_token_id",
                                                  (uint32_t)v->unk))) ||
        (v->bos >= 0 &&
         (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.bos_token_id", (uint32_t)v->bos))) ||
        (v->eos >= 0 &&
         (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.eos_token_id", (uint32_t)v->eos))) ||
        /* The two flags only where they differ from llama.cpp's defaults. */
        (!v->add_space_prefix &&
         (rc = gguf_writer_add_bool(w, key = "tokenizer.ggml.add_space_prefix", 0))) ||
        (!v->add_bos && (rc = gguf_writer_add_bool(w, key = "tokenizer.ggml.add_bos_token", 0))))
        rc = err_set(err, rc, "cannot add GGUF key %s (%s)", key, strix_status_name(rc));
done:
    util_free(strs);
    util_free(scores);
    util_free(types);
    util_free(mblob);
    util_free((void *)merges);
    return rc;
}

/* ---- llama2.c tokenizer.bin -------------------------------------------------- */

static int32_t rd_i32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t i;
    memcpy(&i, &u, 4);
    return i;
}

static float rd_f32(const uint8_t *p)
{
    int32_t i = rd_i32(p);
    float f;
    memcpy(&f, &i, 4);
    return f;
}

/*
 * Layout: int32 max_token_length, then n_vocab times {float32 score, int32 len,
 * len bytes}. The file has no count, so a mismatch with the model can only be
 * seen at the end: trailing bytes are rejected. max_token_length is only
 * checked to be non-negative (pieces longer than it are accepted).
 *
 * Conversion to the pieces llama.cpp's convert-llama2c-to-ggml writes: id 0 is
 * "<unk>" (unknown), ids 1 and 2 are "<s>" and "</s>" (control; llama2.c
 * stores "\n<s>\n" and "\n</s>\n"), empty pieces are control, "<0xXX>" pieces
 * are byte tokens, every ' ' becomes U+2581.
 */
int vocab_load_l2c(const uint8_t *buf, size_t len, int n_vocab, struct vocab **out,
                   strix_error *err)
{
    static const char *const fixed[3] = {"<unk>", "<s>", "</s>"};
    static const int fixed_type[3] = {STRIX_TOKEN_UNKNOWN, STRIX_TOKEN_CONTROL,
                                      STRIX_TOKEN_CONTROL};
    if (out)
        *out = NULL;
    if (!out || (!buf && len))
        return err_set(err, STRIX_ERR_ARG, "vocab_load_l2c: NULL argument");
    if (n_vocab < 3 || n_vocab > VOCAB_MAX)
        return err_set(err, STRIX_ERR_FORMAT, "llama2.c vocabulary size %d is not in 3..%d",
                       n_vocab, VOCAB_MAX);
    if (len < 4 || rd_i32(buf) < 0)
        return err_set(err, STRIX_ERR_FORMAT, "tokenizer.bin: bad or truncated header");
    if ((len - 4) / 8 < (size_t)n_vocab) /* each token takes 8 bytes at least */
        return err_set(err, STRIX_ERR_FORMAT,
                       "tokenizer.bin (%zu bytes) is too short for %d tokens", len, n_vocab);
    /* Escaping at most triples a piece; plus a NUL each and the fixed pieces. */
    size_t text_bytes;
    if (len > (SIZE_MAX - 16) / 4 || !util_add_size(3 * len, (size_t)n_vocab + 16, &text_bytes))
        return err_set(err, STRIX_ERR_FORMAT, "tokenizer.bin is too large");
    struct vocab *v = vocab_new(n_vocab, text_bytes);
    if (!v)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for %d tokens", n_vocab);
    int rc = STRIX_OK;
    size_t off = 4, pos = 0;
    for (int i = 0; i < n_vocab; i++) {
        struct tok *t = &v->toks[i];
        if (len - off < 8) {
            rc = err_set(err, STRIX_ERR_FORMAT, "tokenizer.bin ends in token %d of %d", i, n_vocab);
            break;
        }
        int32_t n = rd_i32(buf + off + 4);
        const char *s = (const char *)buf + off + 8;
        t->score = rd_f32(buf + off);
        if (n < 0 || (size_t)n > len - off - 8)
            rc = err_set(err, STRIX_ERR_FORMAT,
                         "tokenizer.bin: token %d at byte %zu has length %d, %zu bytes remain", i,
                         off, (int)n, len - off - 8);
        else if (isnan(t->score))
            rc = err_set(err, STRIX_ERR_FORMAT, "tokenizer.bin: token %d has a NaN score", i);
        if (rc)
            break;
        if (i < 3)
            set_piece(v, i, &pos, fixed[i], strlen(fixed[i]), 0);
        else
            set_piece(v, i, &pos, s, (size_t)n, 1);
        t->type = i < 3                         ? fixed_type[i]
                  : n == 0                      ? STRIX_TOKEN_CONTROL
                  : is_byte_piece(s, (size_t)n) ? STRIX_TOKEN_BYTE
                                                : STRIX_TOKEN_NORMAL;
        off += 8 + (size_t)n;
    }
    if (!rc && off != len)
        rc = err_set(err, STRIX_ERR_FORMAT,
                     "tokenizer.bin has %zu bytes after its %d tokens (not this model's?)",
                     len - off, n_vocab);
    v->unk = 0;
    v->bos = 1;
    v->eos = 2;
    if (rc || (rc = vocab_finish(v, err)) || (rc = vocab_list_special(v, err))) {
        vocab_free(v);
        return rc;
    }
    *out = v;
    return STRIX_OK;
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
    return v && id >= 0 && id < v->n ? piece_of(v, id) : NULL;
}

int vocab_type(const struct vocab *v, strix_token id)
{
    return v && id >= 0 && id < v->n ? v->toks[id].type : 0;
}

int vocab_token_strips(const struct vocab *v, strix_token id)
{
    return v && id >= 0 && id < v->n && v->toks[id].strip != 0;
}

/* ---- tokenizer ------------------------------------------------------------------ */

/*
 * The algorithm of llama.cpp's llm_tokenizer_spm, which gives SentencePiece's
 * BPE result: the text is split into UTF-8 characters (symbols), every
 * adjacent pair whose concatenation is a piece goes into a max-heap by that
 * piece's score, and the best pair is merged until none is left. Equal scores
 * go leftmost first. A merge makes the queued pairs that overlap it stale;
 * they are recognised when popped (a side merged away, or the pair's byte
 * count changed) and skipped, and the new symbol's pairs with its neighbours
 * are queued. O(n log n).
 */
struct sym {
    int32_t prev, next; /* neighbours in the chain, -1 at the ends */
    uint32_t start, n;  /* bytes in the escaped fragment; n == 0: merged away */
};

struct bigram {
    float score;         /* of the piece the pair forms */
    int32_t left, right; /* symbols */
    uint32_t size;       /* bytes of the pair when queued */
};

struct frag {
    size_t off, len;
    strix_token tok; /* >= 0: a user-defined token split out of the text */
};

struct tk {
    const struct vocab *v;
    char *esc;       /* SentencePiece: the escaped fragment (room for the whole text) */
    const char *src; /* the bytes the symbols index: esc, or a byte-level word */
    struct bpe_words words;
    struct sym *sym;
    struct bigram *heap;
    size_t cap_sym, n_heap, cap_heap;
    strix_token *out;
    size_t cap, n_out;
};

/* Room for `need` elements: the array (maybe moved), or NULL (p intact). */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
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

static int bigram_before(const struct bigram *a, const struct bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(struct tk *t, struct bigram b)
{
    struct bigram *h = grow(t->heap, &t->cap_heap, t->n_heap + 1, sizeof b);
    if (!h)
        return STRIX_ERR_NOMEM;
    t->heap = h;
    size_t i = t->n_heap++;
    for (; i > 0 && bigram_before(&b, &t->heap[(i - 1) / 2]); i = (i - 1) / 2)
        t->heap[i] = t->heap[(i - 1) / 2];
    t->heap[i] = b;
    return STRIX_OK;
}

static struct bigram heap_pop(struct tk *t)
{
    struct bigram top = t->heap[0], last = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (size_t c; (c = 2 * i + 1) < n; i = c) {
        if (c + 1 < n && bigram_before(&t->heap[c + 1], &t->heap[c]))
            c++;
        if (!bigram_before(&t->heap[c], &last))
            break;
        t->heap[i] = t->heap[c];
    }
    if (n > 0)
        t->heap[i] = last;
    return top;
}

static int try_add(struct tk *t, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return STRIX_OK;
    size_t size = (size_t)t->sym[left].n + t->sym[right].n;
    const char *s = t->src + t->sym[left].start;
    if (t->v->bpe) { /* byte-level: the lowest merge rank first (ranks < 2^24 are exact) */
        int32_t rank = bpe_rank(t->v->bpe, s, size, t->sym[left].n);
        struct bigram b = {-(float)rank, left, right, (uint32_t)size};
        return rank < 0 ? STRIX_OK : heap_push(t, b);
    }
    strix_token id = vocab_find(t->v, s, size);
    if (id < 0)
        return STRIX_OK;
    struct bigram b = {t->v->toks[id].score, left, right, (uint32_t)size};
    return heap_push(t, b);
}

static void emit(struct tk *t, strix_token id)
{
    if (t->n_out < t->cap)
        t->out[t->n_out] = id;
    t->n_out++;
}

/* llama.cpp's utf8_len: the length a lead byte announces, from its top four
 * bits. Nothing is validated (a stray continuation byte is a 1-byte symbol, a
 * lead byte takes the next bytes whatever they are), so symbols match
 * llama.cpp's on invalid UTF-8 too. */
static size_t utf8_len(uint8_t c)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

/* Splits t->src[0..m) into characters and merges them (see above); the
 * result is the chain of t->sym from symbol 0 (none if m == 0). */
static int merge(struct tk *t, size_t m)
{
    size_t n_sym = 0;
    for (size_t i = 0; i < m; n_sym++)
        i += utf8_len((uint8_t)t->src[i]);
    struct sym *sy = grow(t->sym, &t->cap_sym, n_sym + 1, sizeof *sy);
    if (!sy)
        return STRIX_ERR_NOMEM;
    t->sym = sy;
    for (size_t i = 0, k = 0; i < m; k++) {
        size_t len = utf8_len((uint8_t)t->src[i]);
        len = len < m - i ? len : m - i;
        sy[k] = (struct sym){(int32_t)k - 1, i + len == m ? -1 : (int32_t)k + 1, (uint32_t)i,
                             (uint32_t)len};
        i += len;
    }
    t->n_heap = 0;
    for (size_t i = 1; i < n_sym; i++)
        if (try_add(t, (int32_t)i - 1, (int32_t)i))
            return STRIX_ERR_NOMEM;
    while (t->n_heap > 0) {
        struct bigram b = heap_pop(t);
        struct sym *l = &t->sym[b.left], *r = &t->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            t->sym[r->next].prev = b.left;
        if (try_add(t, l->prev, b.left) || try_add(t, b.left, l->next))
            return STRIX_ERR_NOMEM;
    }
    if (m == 0)
        sy[0].n = 0; /* marks the chain empty */
    return STRIX_OK;
}

/* SentencePiece: one fragment of text. */
static int spm(struct tk *t, const char *s, size_t n, int prefix, strix_error *err)
{
    const struct vocab *v = t->v;
    /* SentencePiece's escaping: spaces become U+2581, with one prepended. */
    size_t m = 0;
    if (prefix)
        memcpy(t->esc, SPACE_ESC, m = SPACE_ESC_LEN);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ')
            memcpy(t->esc + m, SPACE_ESC, SPACE_ESC_LEN);
        else
            t->esc[m] = s[i];
        m += s[i] == ' ' ? SPACE_ESC_LEN : 1;
    }
    t->src = t->esc;
    if (merge(t, m))
        return err_set(err, STRIX_ERR_NOMEM, "out of memory tokenizing %zu bytes", n);
    /* A symbol that is no piece is an unmerged character: its bytes as byte
     * tokens, or, if some byte has none, one unknown token (SentencePiece's
     * behaviour without byte fallback; llama.cpp would throw here). */
    for (int32_t i = 0; m > 0 && i >= 0; i = t->sym[i].next) {
        const struct sym *y = &t->sym[i];
        const uint8_t *p = (const uint8_t *)t->esc + y->start;
        strix_token id = vocab_find(v, (const char *)p, y->n);
        uint32_t j = 0;
        while (id < 0 && j < y->n && v->byte_tok[p[j]] >= 0)
            j++;
        if (id >= 0 || j < y->n) {
            if (id < 0 && (id = v->unk) < 0)
                return err_set(err, STRIX_ERR_ARG,
                               "the vocabulary has no token for byte 0x%02X and no unknown token",
                               p[j]);
            emit(t, id);
        } else {
            for (j = 0; j < y->n; j++)
                emit(t, v->byte_tok[p[j]]);
        }
    }
    return STRIX_OK;
}

/* Byte-level BPE: one fragment of text, split into words by the
 * pre-tokenizer; each word is merged on its own. A final symbol that is no
 * piece gives the pieces of its single bytes, where they exist (llama.cpp
 * drops the others). */
static int byte_bpe(struct tk *t, const char *s, size_t n, strix_error *err)
{
    const struct vocab *v = t->v;
    int rc = bpe_split(v->bpe, s, n, &t->words, err);
    if (rc)
        return rc;
    for (size_t w = 0; w < t->words.n; w++) {
        const size_t a = w ? t->words.end[w - 1] : 0, m = t->words.end[w] - a;
        t->src = t->words.buf + a;
        strix_token id;
        if (bpe_ignore_merges(v->bpe) && (id = vocab_find(v, t->src, m)) >= 0) {
            emit(t, id);
            continue;
        }
        if (merge(t, m))
            return err_set(err, STRIX_ERR_NOMEM, "out of memory tokenizing %zu bytes", n);
        for (int32_t i = 0; m > 0 && i >= 0; i = t->sym[i].next) {
            const struct sym *y = &t->sym[i];
            if ((id = vocab_find(v, t->src + y->start, y->n)) >= 0) {
                emit(t, id);
                continue;
            }
            for (uint32_t j = 0; j < y->n; j++)
                if ((id = vocab_find(v, t->src + y->start + j, 1)) >= 0)
                    emit(t, id);
        }
    }
    return STRIX_OK;
}

static const char *find_mem(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0 || nn > hn)
        return NULL;
    const char *last = h + (hn - nn);
    for (const char *p = h; p <= last; p++) {
        p = memchr(p, nd[0], (size_t)(last - p) + 1);
        if (!p)
            return NULL;
        if (memcmp(p, nd, nn) == 0)
            return p;
    }
    return NULL;
}

struct frags {
    struct frag *a;
    size_t n, cap;
};

static int push_frag(struct frags *f, size_t off, size_t len, strix_token tok)
{
    struct frag *a = grow(f->a, &f->cap, f->n + 1, sizeof *a);
    if (!a)
        return STRIX_ERR_NOMEM;
    f->a = a;
    a[f->n++] = (struct frag){off, len, tok};
    return STRIX_OK;
}

static int is_ascii_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* llama.cpp's tokenizer_st_partition: special tokens are cut out of the text
 * first, longest piece first, each at every non-overlapping occurrence, left
 * to right. User-defined tokens always are; control and unknown tokens only
 * with parse_special (otherwise their text is tokenized as text). A token
 * marked so takes the ASCII whitespace before or after it. */
static int partition(const struct vocab *v, const char *text, size_t n, int parse_special,
                     struct frags *out)
{
    struct frags f = {0}, g = {0}, x;
    if (push_frag(&f, 0, n, -1))
        return STRIX_ERR_NOMEM;
    for (int u = 0; u < v->n_special; u++) {
        const strix_token id = (strix_token)(v->special[u] & 0xffffffff);
        const struct tok *tk = &v->toks[id];
        if (!parse_special && tk->type != STRIX_TOKEN_USER_DEFINED)
            continue;
        const char *p = piece_of(v, id), *hit;
        size_t k = tk->len;
        g.n = 0;
        for (size_t i = 0; i < f.n; i++) {
            size_t off = f.a[i].off, end = f.a[i].off + f.a[i].len;
            while (f.a[i].tok < 0 && (hit = find_mem(text + off, end - off, p, k))) {
                size_t at = (size_t)(hit - text), left = at;
                if (tk->strip & STRIP_LEFT)
                    while (left > off && is_ascii_space(text[left - 1]))
                        left--;
                if ((left > off && push_frag(&g, off, left - off, -1)) || push_frag(&g, at, k, id))
                    goto nomem;
                off = at + k;
                if (tk->strip & STRIP_RIGHT)
                    while (off < end && is_ascii_space(text[off]))
                        off++;
            }
            if (off < end && push_frag(&g, off, end - off, f.a[i].tok))
                goto nomem;
        }
        x = f, f = g, g = x;
    }
    util_free(g.a);
    *out = f;
    return STRIX_OK;
nomem:
    util_free(f.a);
    util_free(g.a);
    return STRIX_ERR_NOMEM;
}

int vocab_tokenize(const struct vocab *v, const char *text, size_t n_text, int flags,
                   strix_token *out, int cap, int *n_out, strix_error *err)
{
    const int add_bos = (flags & STRIX_TOKENIZE_ADD_BOS) != 0;
    const int parse_special = (flags & STRIX_TOKENIZE_PARSE_SPECIAL) != 0;
    if (n_out)
        *n_out = 0;
    if (!v || !n_out || (!text && n_text > 0) || cap < 0 || (!out && cap > 0))
        return err_set(err, STRIX_ERR_ARG, "vocab_tokenize: bad argument");
    if (n_text > TEXT_MAX)
        return err_set(err, STRIX_ERR_ARG, "text of %zu bytes is too long to tokenize", n_text);
    if (add_bos && v->bos < 0)
        return err_set(err, STRIX_ERR_ARG, "the vocabulary has no BOS token");
    struct tk t = {.v = v, .out = out, .cap = (size_t)cap};
    struct frag one = {0, n_text, -1};
    struct frags fr = {&one, n_text > 0, 1};
    int rc = STRIX_OK;
    if (add_bos)
        emit(&t, v->bos);
    if (flags & ~(STRIX_TOKENIZE_ADD_BOS | STRIX_TOKENIZE_PARSE_SPECIAL))
        return err_set(err, STRIX_ERR_ARG, "unknown tokenize flags 0x%x", (unsigned)flags);
    if (n_text > 0 && ((!v->bpe && !(t.esc = util_malloc(3 * n_text + SPACE_ESC_LEN))) ||
                       (v->n_special > 0 && partition(v, text, n_text, parse_special, &fr)))) {
        fr.a = NULL;
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory tokenizing %zu bytes", n_text);
    }
    /* The space prefix (SentencePiece's add_dummy_prefix) goes before the
     * first text and, as in llama.cpp, before text that follows a token split
     * out of it; it is added even when the text starts with a space. */
    int prev_special = 1;
    for (size_t i = 0; rc == STRIX_OK && i < fr.n; i++) {
        if (fr.a[i].tok >= 0) {
            emit(&t, fr.a[i].tok);
            prev_special = 1;
        } else if (v->bpe) {
            rc = byte_bpe(&t, text + fr.a[i].off, fr.a[i].len, err);
        } else {
            rc = spm(&t, text + fr.a[i].off, fr.a[i].len, v->add_space_prefix && prev_special, err);
            prev_special = 0;
        }
    }
    if (fr.a != &one)
        util_free(fr.a);
    util_free(t.esc);
    util_free(t.sym);
    util_free(t.heap);
    bpe_words_free(&t.words);
    if (rc)
        return rc;
    *n_out = (int)t.n_out;
    if (t.n_out > (size_t)cap)
        return err_set(err, STRIX_ERR_ARG, "%d tokens do not fit in %d", *n_out, cap);
    return STRIX_OK;
}

/* ---- detokenizer ------------------------------------------------------------------ */

/* Output that counts everything and stores what fits. */
struct sink {
    char *buf;
    size_t cap, n;
    int utf8;        /* 1: repair UTF-8 on the way */
    uint8_t pend[4]; /* an incomplete UTF-8 sequence */
    int n_pend, need;
};

static void put_raw(struct sink *s, const void *p, size_t n)
{
    if (s->n < s->cap)
        memcpy(s->buf + s->n, p, n < s->cap - s->n ? n : s->cap - s->n);
    s->n += n;
}

static void put_fffd(struct sink *s)
{
    put_raw(s, "\xef\xbf\xbd", 3);
}

/* Valid UTF-8 passes; each maximal ill-formed subsequence becomes one U+FFFD
 * (the Unicode "substitution of maximal subparts" practice). */
static void put_byte(struct sink *s, uint8_t b)
{
    if (!s->utf8) {
        put_raw(s, &b, 1);
        return;
    }
    if (s->n_pend > 0) {
        uint8_t lo = 0x80, hi = 0xBF; /* the second byte's range narrows for some leads */
        if (s->n_pend == 1) {
            lo = s->pend[0] == 0xE0 ? 0xA0 : s->pend[0] == 0xF0 ? 0x90 : 0x80;
            hi = s->pend[0] == 0xED ? 0x9F : s->pend[0] == 0xF4 ? 0x8F : 0xBF;
        }
        if (b >= lo && b <= hi) {
            s->pend[s->n_pend++] = b;
            if (s->n_pend == s->need) {
                put_raw(s, s->pend, (size_t)s->n_pend);
                s->n_pend = 0;
            }
            return;
        }
        put_fffd(s);
        s->n_pend = 0; /* and b starts afresh */
    }
    if (b < 0x80) {
        put_raw(s, &b, 1);
    } else if (b >= 0xC2 && b <= 0xF4) {
        s->pend[0] = b;
        s->n_pend = 1;
        s->need = b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    } else {
        put_fffd(s);
    }
}

/*
 * One token's text. Normal pieces of a SentencePiece vocabulary: U+2581
 * becomes ' ', and the first piece of the text (prev < 0, or prev is BOS)
 * loses one leading space when the vocabulary adds a space prefix: it is the
 * space the tokenizer added (SentencePiece's decoder and llama2.c's run.c do
 * the same). Normal pieces of a byte-level vocabulary: each code point is a
 * byte. (llama.cpp also removes spaces before punctuation for many byte-level
 * vocabularies, "clean_up_tokenization_spaces"; strix does not, so that text
 * survives a round trip.) User-defined
 * pieces come out as stored, byte tokens as their byte; control, unknown and
 * unused tokens give nothing (as llama.cpp's token_to_piece without
 * "special").
 */
static void token_text(const struct vocab *v, strix_token prev, strix_token id, struct sink *s)
{
    const struct tok *t = &v->toks[id];
    const char *p = piece_of(v, id);
    if (t->type == STRIX_TOKEN_BYTE) {
        put_byte(s, (uint8_t)(hex_val(p[3]) << 4 | hex_val(p[4])));
    } else if (t->type == STRIX_TOKEN_USER_DEFINED) {
        for (size_t i = 0; i < t->len; i++)
            put_byte(s, (uint8_t)p[i]);
    } else if (t->type == STRIX_TOKEN_NORMAL && v->bpe) {
        /* Each code point stands for a byte (GPT-2's mapping); one that
         * stands for none (no tokenizer output has it) comes out as itself. */
        for (size_t i = 0; i < t->len;) {
            uint32_t c;
            size_t k = bpe_utf8_decode((const uint8_t *)p + i, t->len - i, &c);
            int b = bpe_cpt_to_byte(c);
            if (b >= 0)
                put_byte(s, (uint8_t)b);
            else
                for (size_t j = 0; j < k; j++)
                    put_byte(s, (uint8_t)p[i + j]);
            i += k;
        }
    } else if (t->type == STRIX_TOKEN_NORMAL) {
        int strip = v->add_space_prefix && (prev < 0 || prev == v->bos);
        for (size_t i = 0; i < t->len;) {
            if (t->len - i >= SPACE_ESC_LEN && memcmp(p + i, SPACE_ESC, SPACE_ESC_LEN) == 0) {
                if (!(strip && i == 0))
                    put_byte(s, ' ');
                i += SPACE_ESC_LEN;
            } else {
                put_byte(s, (uint8_t)p[i++]);
            }
        }
    }
}

int vocab_token_to_text(const struct vocab *v, strix_token prev, strix_token id, char *buf, int cap)
{
    if (!v || id < 0 || id >= v->n)
        return -1;
    struct sink s = {.buf = buf, .cap = buf && cap > 0 ? (size_t)cap : 0};
    token_text(v, prev, id, &s);
    return s.n > INT_MAX ? -1 : (int)s.n;
}

/* Returns -1 also when the text would not fit an int. */
int vocab_detokenize(const struct vocab *v, const strix_token *ids, int n, char *buf, size_t cap)
{
    if (!v || n < 0 || (!ids && n > 0))
        return -1;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v->n)
            return -1;
    struct sink s = {.buf = buf, .cap = buf && cap > 0 ? cap - 1 : 0, .utf8 = 1};
    for (int i = 0; i < n; i++)
        token_text(v, i > 0 ? ids[i - 1] : -1, ids[i], &s);
    if (s.n_pend > 0)
        put_fffd(&s);
    if (buf && cap > 0)
        buf[s.n < cap - 1 ? s.n : cap - 1] = '\0';
    return s.n > INT_MAX ? -1 : (int)s.n;
}

/* ---- public API wrappers ------------------------------------------------------------ */

static const struct vocab *vocab_of(const strix_model *m)
{
    return m ? model_vocab(m) : NULL;
}

int strix_vocab_size(const strix_model *model)
{
    return vocab_n(vocab_of(model));
}
strix_token strix_token_bos(const strix_model *model)
{
    return vocab_bos(vocab_of(model));
}
strix_token strix_token_eos(const strix_model *model)
{
    return vocab_eos(vocab_of(model));
}

const char *strix_token_piece(const strix_model *model, strix_token id)
{
    return vocab_piece(vocab_of(model), id);
}

int strix_token_type(const strix_model *model, strix_token id)
{
    return vocab_type(vocab_of(model), id);
}

int strix_tokenize_ex(const strix_model *model, const char *text, size_t n_text, int flags,
                      strix_token *out, int cap, int *n_out, strix_error *err)
{
    const struct vocab *v = vocab_of(model);
    if (!v && n_out)
        *n_out = 0;
    if (!v)
        return err_set(err, STRIX_ERR_ARG, "the model has no vocabulary");
    return vocab_tokenize(v, text, n_text, flags, out, cap, n_out, err);
}

int strix_tokenize(const strix_model *model, const char *text, size_t n_text, int add_bos,
                   strix_token *out, int cap, int *n_out, strix_error *err)
{
    return strix_tokenize_ex(model, text, n_text, add_bos ? STRIX_TOKENIZE_ADD_BOS : 0, out, cap,
                             n_out, err);
}

const char *strix_vocab_model(const strix_model *model)
{
    return vocab_model_name(vocab_of(model));
}

const char *strix_vocab_pre(const strix_model *model)
{
    return vocab_pre_name(vocab_of(model));
}

int strix_vocab_add_bos(const strix_model *model)
{
    return vocab_add_bos(vocab_of(model));
}

const char *strix_tokenizers_supported(void)
{
    return VOCAB_MODELS "; gpt2 pre-tokenizers (tokenizer.ggml.pre): " BPE_PRE_NAMES;
}

int strix_token_to_text(const strix_model *model, strix_token prev, strix_token id, char *buf,
                        int cap)
{
    return vocab_token_to_text(vocab_of(model), prev, id, buf, cap);
}

int strix_detokenize(const strix_model *model, const strix_token *ids, int n, char *buf, size_t cap)
{
    const struct vocab *v = vocab_of(model);
    if (!v && buf && cap > 0)
        buf[0] = '\0';
    return vocab_detokenize(v, ids, n, buf, cap);
}
