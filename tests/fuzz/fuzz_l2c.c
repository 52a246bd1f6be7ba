/*
 * fuzz_l2c.c - libFuzzer target for the llama2.c parsers: the checkpoint
 * reader (src/format/l2c.c, placed by src/model/model.c) and the tokenizer.bin
 * reader (src/tokenize). Built by
 * `make fuzz` (clang); run with a corpus seeded from tests/data, e.g.
 *
 *   mkdir -p /tmp/l2c_corpus && cp tests/data/stories260K.bin tests/data/tok512.bin /tmp/l2c_corpus
 *   build/fuzz/fuzz_l2c -max_total_time=60 -max_len=1100000 /tmp/l2c_corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "format/l2c.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (l2c_probe(data, size)) {
        strix_model *m = calloc(1, sizeof *m);
        if (!m)
            return 0;
        m->map.data = data; /* borrowed: cleared before the model is freed */
        m->map.size = size;
        strix_error err;
        model_load_l2c(m, NULL, &err);
        memset(&m->map, 0, sizeof m->map);
        strix_model_free(m);
    }
    /* the same bytes as a tokenizer.bin for a few vocabulary sizes */
    const int sizes[] = {1, 3, 259, 512};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct vocab *v = NULL;
        if (vocab_load_l2c(data, size, sizes[i], &v, NULL) == STRIX_OK) {
            strix_token ids[64];
            int n;
            vocab_tokenize(v, "Hello world \xe2\x96\x81 \xf0\x9f\x98\x80", 20, 1, ids, 64, &n,
                           NULL);
            char buf[256];
            vocab_detokenize(v, ids, n < 64 ? n : 64, buf, sizeof buf);
        }
        vocab_free(v);
    }
    return 0;
}
