/*
 * l2c.h - llama2.c checkpoints read into a list of named tensors.
 *
 * The reader knows the file formats only: it names every tensor the way
 * GGUF files name them ("token_embd.weight", "blk.3.attn_q.weight", ...)
 * with its type, shape and bytes, and leaves it to the model's weight
 * table (model.c) to place them. It knows nothing of models.
 */
#ifndef STRIX_L2C_H
#define STRIX_L2C_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The seven header ints of every llama2.c checkpoint. */
struct l2c_config {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

struct l2c_tensor {
    char name[64];  /* GGUF name */
    uint32_t type;  /* enum dtype: F32, or Q8_0 for int8 weights */
    int n_dims;     /* 1 (norm weights) or 2 */
    int64_t ne[2];  /* ne[0] values per row, ne[1] rows */
    const void *data; /* borrowed from the file bytes, or into l2c_file.owned */
    size_t nbytes;
};

struct l2c_file {
    struct l2c_config cfg; /* vocab_size made positive */
    int version;           /* 0 legacy, 1 fp32, 2 int8 groups */
    int group;             /* version 2: values per scale */
    int shared;            /* 1: the classifier is the embedding table */
    int n_tensors;
    struct l2c_tensor *tensors; /* in file order */
    void *owned; /* converted int8 weights; the caller may take it (then set NULL) */
};

/* 1 if the bytes look like a llama2.c checkpoint header (legacy or ak42). */
int l2c_probe(const uint8_t *buf, size_t len);

/*
 * Parses a checkpoint held in buf[0..len) (which must outlive the tensors).
 * Version 2 int8 weights become Q8_0: each group of int8 values is cut into
 * blocks of 32 that keep the values and take the group's scale rounded to
 * fp16. A tensor whose rows or groups do not fall into whole blocks, or
 * whose scales fp16 cannot hold to 11 bits, is dequantized to F32 instead.
 * On failure *out holds nothing to free.
 */
int l2c_parse(const uint8_t *buf, size_t len, struct l2c_file *out, strix_error *err);
void l2c_free(struct l2c_file *f);

#endif
