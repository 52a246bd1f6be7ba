/*
 * fuzz_model.c - libFuzzer target for whole-model loading from bytes (GGUF or
 * llama2.c: header, hyperparameters, vocabulary, weight table), then, when a
 * small model loads, a short decode and a greedy step, so that shapes the
 * loader accepts are also ones the forward pass survives. Built by
 * `make fuzz` (clang); seed the corpus with small models, e.g.
 *
 *   mkdir -p /tmp/model_corpus && cp tests/data/llamacpp-synth-Q4_0.gguf /tmp/model_corpus
 *   build/fuzz/fuzz_model -max_total_time=60 -max_len=200000 /tmp/model_corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    strix_model *m = calloc(1, sizeof *m);
    if (!m)
        return 0;
    m->map.data = data; /* borrowed: cleared before the model is freed */
    m->map.size = size;
    struct strix_model_params p = strix_model_default_params();
    strix_error err;
    int rc = model_load_map(m, &p, &err);
    if (rc == STRIX_OK && !m->vocab_only) {
        struct strix_model_info in = {.struct_size = sizeof in};
        strix_model_get_info(m, &in);
        if (in.n_params < (1 << 20)) {
            struct strix_context_params cp = strix_context_default_params();
            cp.n_ctx = 8;
            cp.n_threads = 1;
            strix_context *ctx;
            if (strix_context_create(m, &cp, &ctx, &err) == STRIX_OK) {
                strix_token t[2] = {0, in.n_vocab - 1};
                strix_decode(ctx, t, NULL, 2, NULL, &err);
                strix_context_free(ctx);
            }
        }
    }
    memset(&m->map, 0, sizeof m->map);
    strix_model_free(m);
    return 0;
}
