/*
 * vocab_impl.h - what the files of the vocabulary share (vocab.c the core,
 * vocab_gguf.c, vocab_l2c.c, vocab_special.c, vocab_tokenize.c,
 * vocab_detok.c): the struct behind struct vocab and its construction
 * helpers. Nothing outside src/tokenize includes it; the rest of strix uses
 * vocab.h.
 *
 * Pieces are stored in one blob, each NUL-terminated, with an explicit length
 * (a piece may hold a NUL byte, e.g. a raw-byte vocabulary's piece for byte 0;
 * vocab_piece then shows it cut short, the tokenizer uses the full length).
 */
#ifndef STRIX_VOCAB_IMPL_H
#define STRIX_VOCAB_IMPL_H

#include "tokenize/vocab.h"
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


struct frag {
    size_t off, len;
    strix_token tok; /* >= 0: a user-defined token split out of the text */
};

struct frags {
    struct frag *a;
    size_t n, cap;
};

/* ---- vocab.c: construction ---- */

/* The piece of token id, NUL-terminated (toks[id].len bytes long). */
const char *vocab_text(const struct vocab *v, strix_token id);
/* The id of the piece s[0..n), or -1 (duplicates: the highest id). */
strix_token vocab_find(const struct vocab *v, const char *s, size_t n);
/* Whether p[0..n) is of the form <0xXX>, and the value of one hex digit. */
int vocab_is_byte_piece(const char *p, size_t n);
int vocab_hex_val(char c);
/* A vocabulary of n tokens with text_bytes of room for the pieces. */
struct vocab *vocab_new(int n, size_t text_bytes);
/* Copies piece i to the blob at *pos, turning ' ' into U+2581 if escape. */
void vocab_set_piece(struct vocab *v, int i, size_t *pos, const char *s, size_t n, int escape);
/* Builds the lookup structures once pieces, scores and types are set. */
int vocab_finish(struct vocab *v, strix_error *err);
/* Room for `need` elements of elem bytes: the array (maybe moved), or NULL
 * (p intact). */
void *vocab_grow(void *p, size_t *cap, size_t need, size_t elem);

/* ---- vocab_special.c: special tokens ---- */

int vocab_is_special(int type);
/* Lists the special tokens, longest first; once the types are final. */
int vocab_special_list(struct vocab *v, strix_error *err);
/* The type changes llama.cpp's loader makes by token text and model name. */
void vocab_special_fix_types(struct vocab *v, const gguf *g);
/* Splits text[0..n) into fragments: special tokens and text between them. */
int vocab_special_partition(const struct vocab *v, const char *text, size_t n, int parse_special,
                            struct frags *out);

#endif
