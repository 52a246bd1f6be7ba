/*
 * fuzz_common.h - what the libFuzzer targets in tests/fuzz share: the entry
 * point's prototype and REQUIRE, which reports a broken property with its
 * file and line and aborts, so that libFuzzer keeps the input as a crash.
 */
#ifndef STRIX_FUZZ_COMMON_H
#define STRIX_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
