/*
 * fixtures.h - loading a model from tests/data for tests that use the
 * public API.
 */
#ifndef STRIX_FIXTURES_H
#define STRIX_FIXTURES_H

#include <stdlib.h>

#include "harness.h"
#include "kernels/kernels.h"
#include "strix.h"

/* The kernel set: STRIX_KERNELS forces one (tests/run.sh runs the golden
 * tests under each). Prints the set in use and returns 1; returns 0 if the
 * forced set is one this CPU cannot run (the caller skips, as printed). A
 * forced set that is not the one in use is a failure. */
static inline int fixture_kernels(const char *test)
{
    kern_init();
    const char *want = getenv("STRIX_KERNELS");
    if (want && *want && !kern_isa_get(want)) {
        printf("%s: STRIX_KERNELS=%s: not supported by this CPU, skipped\n", test, want);
        return 0;
    }
    printf("%s: kernel set %s\n", test, kern_isa_active()->name);
    CHECKF(!want || !*want || strcmp(kern_isa_active()->name, want) == 0,
           "STRIX_KERNELS=%s but %s is in use", want, kern_isa_active()->name);
    return 1;
}

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
