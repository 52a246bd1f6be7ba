/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader (src/format/gguf.c): parses
 * the input and, when it parses, reads every string and tensor byte range it
 * returns, so that a pointer outside the input shows up under ASan. Built
 * by `make fuzz` (clang); scripts/fuzz.sh runs it on a copy of
 * tests/fuzz/corpus/fuzz_gguf, or by hand:
 *
 *   build/fuzz/fuzz_gguf -max_total_time=60 DIR
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "format/gguf.h"

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf *g = NULL;
    strix_error err;
    if (gguf_parse(data, size, &g, &err) != STRIX_OK)
        return 0;
    unsigned sum = gguf_version(g) + gguf_alignment(g) + (unsigned)gguf_data_offset(g);
    for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        sum += (uint8_t)kv->key.ptr[kv->key.len - 1];
        if (gguf_find_kv(g, "general.alignment") == kv)
            sum++;
        if (kv->type == GGUF_VT_STR && kv->str.len)
            sum += (uint8_t)kv->str.ptr[kv->str.len - 1];
        for (uint64_t j = 0; kv->arr_strs && j < kv->n; j++)
            if (kv->arr_strs[j].len)
                sum += (uint8_t)kv->arr_strs[j].ptr[kv->arr_strs[j].len - 1];
        if (kv->arr_data && kv->n)
            sum += (unsigned)gguf_arr_i64(kv, kv->n - 1) + (gguf_arr_f32(kv, 0) > 0);
    }
    for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        sum += p[0] + p[t->nbytes - 1] + (uint8_t)t->name.ptr[0];
    }
    sink = sum;
    gguf_free(g);
    return 0;
}
