/*
 * router_train.h - a test entry point of router training (router_train.c):
 * the loss and gradient of one window, so tests can compare them with
 * finite differences.
 */
#ifndef STRIX_ROUTER_TRAIN_H
#define STRIX_ROUTER_TRAIN_H

#include "runtime/route.h"

/* Loss (LM + penalty) of the p->window tokens at tokens (and the next one,
 * the last target) under router r with noise seed `seed` (non-zero), and its
 * gradient with respect to r's parameters (w1, b1, w2, b2 in that order)
 * into grad. soft: the layer output uses the soft decision g instead of the
 * hard one (the attention mask stays the hard one), so the loss is
 * differentiable where no decision flips. frac: the hard executed
 * fraction. With p->lora_rank > 0, adapters of that rank with the values
 * lora (router_train_lora_size floats, in the trainer's order: per layer,
 * per projection q k v o gate up down, A then B; NULL: zero) and grad holds
 * their gradient after the router's. NAN when out of memory. */
double router_train_grad(const strix_model *m, strix_router *r, const strix_token *tokens,
                         const struct strix_router_train_params *p, uint64_t seed, int soft,
                         const float *lora, float *grad, double *frac);

/* Floats of the adapters of the given rank for m. */
size_t router_train_lora_size(const strix_model *m, int rank);

#endif
