/*
 * vocab_l2c.c - the vocabulary from a llama2.c tokenizer.bin.
 */
#include <math.h>
#include <string.h>

#include "tokenize/vocab_impl.h"

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
            vocab_set_piece(v, i, &pos, fixed[i], strlen(fixed[i]), 0);
        else
            vocab_set_piece(v, i, &pos, s, (size_t)n, 1);
        t->type = i < 3                         ? fixed_type[i]
                  : n == 0                      ? STRIX_TOKEN_CONTROL
                  : vocab_is_byte_piece(s, (size_t)n) ? STRIX_TOKEN_BYTE
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
    if (rc || (rc = vocab_finish(v, err)) || (rc = vocab_special_list(v, err))) {
        vocab_free(v);
        return rc;
    }
    *out = v;
    return STRIX_OK;
}

