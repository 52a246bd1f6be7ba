/*
 * lora.h - writing a model with router training's low-rank adapters merged
 * into its weights (lora.c).
 */
#ifndef STRIX_LORA_H
#define STRIX_LORA_H

#include "model/model.h"
#include "train/backward.h"

/* Writes m to path (a temporary file renamed) with every projection that
 * has an adapter in blk (n_layer blocks: the F32 views of m's weights and
 * the adapters of rank d->lora_rank) replaced by W + B A in F32, through
 * model_save_gguf (model.h). Refuses m's own file. */
int lora_write_model(const strix_model *m, const struct bw_dims *d, const struct bw_block *blk,
                     const char *path, strix_error *err);

#endif
