/*
 * fixtures.h - loading a model from tests/data for tests that use the
 * public API.
 */
#ifndef STRIX_FIXTURES_H
#define STRIX_FIXTURES_H

#include <stdlib.h>

#include "harness.h"
#include "strix.h"

/* Loads fixture `model` (with llama2.c tokenizer fixture `vocab`, or NULL);
 * records a failure and returns NULL if it does not load. */
static inline strix_model *load_fixture(const char *model, const char *vocab)
{
    char mp[4096], vp[4096];
    snprintf(mp, sizeof mp, "%s", test_path(model));
    struct strix_model_params p = strix_model_default_params();
    if (vocab) {
        snprintf(vp, sizeof vp, "%s", test_path(vocab));
        p.vocab_path = vp;
    }
    strix_model *m = NULL;
    strix_error err;
    int rc = strix_model_load(mp, &p, &m, &err);
    CHECKF(rc == STRIX_OK, "%s: %s", model, err.msg);
    return m;
}

/* Whitespace-separated token ids from a fixture file; returns how many. */
static inline int read_ids(const char *name, strix_token *ids, int cap)
{
    char *text = test_read_file(test_path(name), NULL);
    int n = 0;
    for (char *p = text, *end; p && n < cap; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        ids[n++] = (strix_token)v;
    }
    free(text);
    return n;
}

/* Index of the largest of n values (the first, on ties). */
static inline int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

#endif
