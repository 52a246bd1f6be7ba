/*
 * route.h - router files (decision modules of dynamic depth) as src/ sees
 * them: the struct behind strix_router, the decision logit shared by
 * inference and training, and saving a router (training writes them).
 */
#ifndef STRIX_ROUTE_H
#define STRIX_ROUTE_H

#include <stdint.h>

#include "model/model.h"

#define ROUTE_MAX_CALIB 32

struct strix_router {
    char arch[32];        /* base model's architecture */
    int n_layer, n_embd;  /* base model's shape */
    int n_hidden;         /* width of each decision module's hidden layer */
    uint64_t fingerprint; /* route_fingerprint of the base model */
    float keep;           /* executed fraction trained for (0: unknown) */
    /* calibration (router.calib_keep/_shift; n_calib 0 in older files):
     * with logit shift calib_shift[i] (execute when s >= shift) the
     * executed fraction on the calibration text was calib_keep[i];
     * calib_keep ascending */
    int n_calib;
    float calib_keep[ROUTE_MAX_CALIB], calib_shift[ROUTE_MAX_CALIB];
    /* decision module of layer l: s = w2 . relu(W1 rmsnorm(x) + b1) + b2 */
    float *w1; /* (n_layer, n_hidden, n_embd) */
    float *b1; /* (n_layer, n_hidden) */
    float *w2; /* (n_layer, n_hidden) */
    float *b2; /* (n_layer) */
};

/* A fingerprint of m's weights: its architecture, shape, and for each weight
 * its name, type, shape and bytes sampled at 64 places (cheap for a 1B
 * model, and any retrained or requantized file differs). */
uint64_t route_fingerprint(const strix_model *m);
/* A router for m with zero weights (NULL: out of memory). */
strix_router *route_router_new(const strix_model *m, int n_hidden);
/* Writes r as a GGUF router file (temp file renamed over path). */
int route_router_save(const strix_router *r, const char *path, strix_error *err);
/* The decision logit of layer l for hidden state x (n_embd). scratch:
 * n_embd + n_hidden floats, left holding the normed input, then the hidden
 * activations after relu (training reads them). */
/* The logit shift that the calibration table gives for executed fraction
 * keep (linear between its entries; 0 without a table). */
float route_calib_shift(const strix_router *r, float keep);
float route_logit(const strix_router *r, int l, const float *x, float *scratch);

#endif
