/*
 * utf8_check.h - a UTF-8 validity check for tests and fuzz targets, written
 * from the standard's table of well-formed sequences (RFC 3629 section 4)
 * and independent of the tokenizer's own decoder, so it can judge it.
 */
#ifndef STRIX_UTF8_CHECK_H
#define STRIX_UTF8_CHECK_H

#include <stddef.h>

/* 1 if s[0..n) is well-formed UTF-8: no overlong form, no surrogate, nothing
 * above U+10FFFF, no sequence cut short. */
static inline int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], k = c < 0x80                 ? 1
                               : c >= 0xC2 && c <= 0xDF ? 2
                               : c >= 0xE0 && c <= 0xEF ? 3
                               : c >= 0xF0 && c <= 0xF4 ? 4
                                                        : 0;
        if (!k || k > n - i)
            return 0;
        for (unsigned j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        i += k;
    }
    return 1;
}

#endif
