/*
 * vocab_detok.c - token ids to text: pieces unescaped (U+2581, byte tokens,
 * GPT-2's byte mapping), special tokens shown or not, and invalid UTF-8
 * repaired on the way.
 */
#include <limits.h>
#include <string.h>

#include "tokenize/bpe.h"
#include "tokenize/vocab_impl.h"

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
    const char *p = vocab_text(v, id);
    if (t->type == STRIX_TOKEN_BYTE) {
        put_byte(s, (uint8_t)(vocab_hex_val(p[3]) << 4 | vocab_hex_val(p[4])));
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

