/*
 * bpe.h - the parts of a byte-level BPE tokenizer ("gpt2" vocabularies) that
 * the SentencePiece tokenizer does not have: the pre-tokenizer named by
 * tokenizer.ggml.pre (regular expressions, run with PCRE2), the GPT-2 mapping
 * between bytes and code points, and the table of merge ranks.
 *
 * vocab.c owns the pieces and runs the merge loop; this module knows nothing
 * about tokens.
 */
#ifndef STRIX_BPE_H
#define STRIX_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "format/gguf.h"
#include "strix.h"

struct bpe;

/* pre: the tokenizer.ggml.pre value (NULL or "": "default"); merges: the
 * tokenizer.ggml.merges array of strings "LEFT RIGHT" (rank = index). An
 * unknown pre-tokenizer is STRIX_ERR_UNSUPPORTED. */
int bpe_create(const char *pre, size_t n_pre, const struct gguf_kv *merges, struct bpe **out,
               strix_error *err);
void bpe_free(struct bpe *b);

const char *bpe_pre_name(const struct bpe *b); /* as given, or "default" */
/* 1 where a word that is a whole piece skips the merges (llama3, tekken). */
int bpe_ignore_merges(const struct bpe *b);
/* Every pre-tokenizer name that bpe_create accepts (a test keeps this list
 * and bpe.c's table the same). */
#define BPE_PRE_NAMES                                                                              \
    "default, llama3, llama-v3, llama-bpe, falcon3, dbrx, smaug-bpe, chatglm-bpe, "              \
    "deepseek-llm, deepseek-v3, deepseek-coder, falcon, starcoder, refact, command-r, smollm, "  \
    "codeshell, exaone, minerva-7b, gpt-2, mpt, phi-2, olmo, jais, jina-es, jina-de, "           \
    "jina-v1-en, jina-v2-es, jina-v2-de, jina-v2-code, gigachat, roberta-bpe, qwen2, "           \
    "deepseek-r1-qwen, megrez, stablelm2, poro-chat, bloom, gpt3-finnish, viking, tekken, "      \
    "chameleon"
/* The i-th name of bpe.c's table, NULL past the end (for that test). */
const char *bpe_pre_name_at(int i);

/* The merges as tokenizer.ggml.merges strings "LEFT RIGHT", best first
 * (entries that can never apply are left out): *strs[i] point into *blob;
 * the caller util_free()s both. */
int bpe_merge_strings(const struct bpe *b, char **blob, const char ***strs, uint32_t *n);

/* The rank of the merge of s[0..n_left) with s[n_left..n), or -1 if none. */
int32_t bpe_rank(const struct bpe *b, const char *s, size_t n, size_t n_left);

/* Words of a text, each already byte-encoded (every byte as its GPT-2 code
 * point, in UTF-8): word i is buf[end[i-1] .. end[i]) (end[-1] = 0). */
struct bpe_words {
    char *buf;
    size_t *end;
    size_t n, cap_buf, cap_end;
};
/* Splits text[0..n) into words; w is reused across calls (zero it first, free
 * it with bpe_words_free). Bytes that are not valid UTF-8 become U+FFFD, as in
 * llama.cpp. */
int bpe_split(const struct bpe *b, const char *text, size_t n, struct bpe_words *w,
              strix_error *err);
void bpe_words_free(struct bpe_words *w);

/* GPT-2's byte <-> code point mapping: printable Latin-1 bytes are their own
 * code point, the other 68 bytes are U+0100.. in order. */
uint32_t bpe_byte_to_cpt(uint8_t byte);
int bpe_cpt_to_byte(uint32_t cpt); /* -1 if cpt is no byte's */

/* Lenient UTF-8 decoding as llama.cpp does it: a lead byte and the right
 * number of continuation bytes give a code point (overlong forms and
 * surrogates included); anything else is one byte giving U+FFFD. Returns the
 * bytes consumed (>= 1; n > 0). */
size_t bpe_utf8_decode(const uint8_t *s, size_t n, uint32_t *cpt);

#endif
