/*
 * vocab_tokenize.c - text to token ids: SentencePiece-style BPE for "llama"
 * vocabularies and byte-level BPE for "gpt2" ones (pre-tokenizers and merge
 * ranks in bpe.c); both reproduce llama.cpp's token for token. Special
 * tokens are cut out first (vocab_special.c).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenize/bpe.h"
#include "tokenize/vocab_impl.h"

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

static int bigram_before(const struct bigram *a, const struct bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(struct tk *t, struct bigram b)
{
    struct bigram *h = vocab_grow(t->heap, &t->cap_heap, t->n_heap + 1, sizeof b);
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
    struct sym *sy = vocab_grow(t->sym, &t->cap_sym, n_sym + 1, sizeof *sy);
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
                       (v->n_special > 0 && vocab_special_partition(v, text, n_text, parse_special, &fr)))) {
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

