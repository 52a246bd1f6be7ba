/*
 * vocab.h - the vocabulary and its tokenizers: SentencePiece-style BPE
 * ("llama") and byte-level BPE ("gpt2", pre-tokenizers in bpe.h).
 *
 * SentencePiece pieces are kept in their form: a space is U+2581 ("▁"); byte-
 * level pieces as the file has them (GPT-2's byte mapping). Vocabularies
 * come from GGUF metadata (tokenizer.ggml.*) or a llama2.c tokenizer.bin, whose
 * pieces use plain spaces and are converted on load, so both sources give the
 * same pieces that llama.cpp's converter writes.
 */
#ifndef STRIX_VOCAB_H
#define STRIX_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "format/gguf.h"
#include "strix.h"

struct vocab;

/* From GGUF keys tokenizer.ggml.{model,tokens,scores,token_type,bos_token_id,
 * eos_token_id,unknown_token_id,add_bos_token,add_space_prefix}. */
int vocab_load_gguf(const gguf *g, struct vocab **out, strix_error *err);
/* From a llama2.c tokenizer.bin held in buf[0..len); n_vocab is the model's
 * vocabulary size (the file has no count of its own). */
int vocab_load_l2c(const uint8_t *buf, size_t len, int n_vocab, struct vocab **out,
                   strix_error *err);
void vocab_free(struct vocab *v);

/* Adds the tokenizer.ggml.* keys llama.cpp expects for the vocabulary ("llama"
 * or "gpt2" with its pre-tokenizer and merges). */
int vocab_write_gguf(const struct vocab *v, gguf_writer *w, strix_error *err);

int vocab_n(const struct vocab *v);
strix_token vocab_bos(const struct vocab *v);
strix_token vocab_eos(const struct vocab *v);
const char *vocab_piece(const struct vocab *v, strix_token id); /* NUL-terminated */
int vocab_type(const struct vocab *v, strix_token id);          /* enum strix_token_attr */
/* 1 if the special token takes the whitespace beside it from the text. */
int vocab_token_strips(const struct vocab *v, strix_token id);
const char *vocab_model_name(const struct vocab *v);            /* "llama" or "gpt2" */
const char *vocab_pre_name(const struct vocab *v);              /* gpt2: its pre-tokenizer */
int vocab_add_bos(const struct vocab *v); /* tokenizer.ggml.add_bos_token (and a BOS exists) */

/* flags: STRIX_TOKENIZE_* (1 alone is "add BOS", so 0/1 callers keep working). */
int vocab_tokenize(const struct vocab *v, const char *text, size_t n_text, int flags,
                   strix_token *out, int cap, int *n_out, strix_error *err);
int vocab_token_to_text(const struct vocab *v, strix_token prev, strix_token id, char *buf,
                        int cap);
int vocab_detokenize(const struct vocab *v, const strix_token *ids, int n, char *buf, size_t cap);

#endif
