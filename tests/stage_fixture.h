/*
 * stage_fixture.h - the set-up the pipeline-stage tests (test_stage.c,
 * test_tail.c) share: loading a model file's layer range as a stage, and a
 * model split into n stages of (nearly) equal layers, each with its own
 * context.
 */
#ifndef STRIX_STAGE_FIXTURE_H
#define STRIX_STAGE_FIXTURE_H

#include "fixtures.h"
#include "harness.h"
#include "strix.h"

#define STAGE_MAX 3

/* Layers [first, end) of the model file at path (0, 0: the whole model),
 * with the tokenizer of vocab (NULL: the file's own). NULL and err set on
 * failure. */
static inline strix_model *stage_load(const char *path, const char *vocab, int first, int end,
                                      strix_error *err)
{
    struct strix_model_params p = strix_model_default_params();
    p.vocab_path = vocab;
    p.layer_first = first;
    p.layer_end = end;
    strix_model *m = NULL;
    if (strix_model_load(path, &p, &m, err) != STRIX_OK)
        return NULL;
    return m;
}

/* A model of n_layer layers split into n stages: stage s holds layers
 * [cut[s], cut[s + 1]) with cut[s] = s * n_layer / n. */
struct stages {
    int n;
    int cut[STAGE_MAX + 1];
    strix_model *model[STAGE_MAX];
    strix_context *ctx[STAGE_MAX];
};

/* Loads the n (<= STAGE_MAX) stages of path (vocab as stage_load) and
 * creates a context on each with cp; a failure is a failed check naming
 * name and the stage. Returns 1 if every stage and context is there; what
 * was made is freed by stages_free either way. */
static inline int stages_load(struct stages *st, const char *name, const char *path,
                              const char *vocab, int n_layer, int n,
                              const struct strix_context_params *cp)
{
    memset(st, 0, sizeof *st);
    st->n = n;
    for (int s = 0; s <= n; s++)
        st->cut[s] = s * n_layer / n;
    for (int s = 0; s < n; s++) {
        strix_error err;
        st->model[s] = stage_load(path, vocab, st->cut[s], st->cut[s + 1], &err);
        CHECKF(st->model[s] != NULL, "%s: stage [%d, %d): %s", name, st->cut[s], st->cut[s + 1],
               err.msg);
        if (!st->model[s] || !(st->ctx[s] = fixture_context_with(st->model[s], cp)))
            return 0;
    }
    return 1;
}

static inline void stages_free(struct stages *st)
{
    for (int s = 0; s < st->n; s++) {
        strix_context_free(st->ctx[s]);
        strix_model_free(st->model[s]);
    }
    memset(st, 0, sizeof *st);
}

#endif
