/*
 * fuzz_chat.c - libFuzzer target for the chat templates (src/generate/chat.c):
 * hostile template strings (names, fragments of stored Jinja templates, any
 * bytes) and hostile messages (any roles, empty, long, white space only).
 *
 * Input: fields separated by NUL bytes. Field 0 is the template: if it is one
 * byte, the byte picks a known name; otherwise it is used as it is. Then
 * role/content pairs, at most 64 messages. The last byte of the input picks
 * add_assistant and the output buffer's size (none, short, exact). Checked:
 * the full length does not depend on the buffer, the output is always
 * NUL-terminated within the buffer and is a prefix of the full text, and
 * detection and the end string agree with apply.
 *
 * Built by `make fuzz`; scripts/fuzz.sh runs it on a copy of
 * tests/fuzz/corpus/fuzz_chat.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "strix.h"

enum { MAX_MSG = 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 16)
        return 0;
    const uint8_t mode = data[size - 1];
    /* a NUL-terminated copy, split in place */
    char *s = malloc(size);
    REQUIRE(s);
    memcpy(s, data, size - 1);
    s[size - 1] = '\0';
    const char *field[1 + 2 * MAX_MSG];
    int n_field = 0;
    for (size_t i = 0; i < size && n_field < 1 + 2 * MAX_MSG;) {
        field[n_field++] = s + i;
        i += strlen(s + i) + 1;
    }
    int n_names = 0;
    while (strix_chat_template_name(n_names))
        n_names++;
    const char *tmpl = field[0];
    if (strlen(tmpl) == 1)
        tmpl = strix_chat_template_name((unsigned char)tmpl[0] % n_names);
    struct strix_chat_msg msgs[MAX_MSG];
    size_t n_msg = 0;
    for (int i = 1; i + 1 < n_field; i += 2) {
        msgs[n_msg].role = field[i];
        msgs[n_msg].content = field[i + 1];
        n_msg++;
    }
    const int add_ass = mode & 1;
    const char *name = strix_chat_template_detect(tmpl);
    const char *end = strix_chat_template_end(tmpl);
    REQUIRE(!end || name); /* an end string only for a known template */
    size_t full = 0;
    strix_error err;
    int rc = strix_chat_apply(tmpl, msgs, n_msg, add_ass, NULL, 0, &full, &err);
    REQUIRE(rc == (name ? STRIX_OK : STRIX_ERR_UNSUPPORTED));
    if (rc == STRIX_OK) {
        char *all = malloc(full + 1);
        REQUIRE(all);
        size_t n2 = 0;
        REQUIRE(strix_chat_apply(tmpl, msgs, n_msg, add_ass, all, full + 1, &n2, &err) ==
                    STRIX_OK &&
                n2 == full && all[full] == '\0');
        /* a buffer of one byte, half the text, or one byte short of it */
        const size_t c3 = (mode >> 1) % 3;
        const size_t cap = c3 == 0 || full == 0 ? 1 : c3 == 1 ? full / 2 + 1 : full;
        char *part = malloc(cap);
        REQUIRE(part);
        size_t n3 = 0;
        REQUIRE(strix_chat_apply(tmpl, msgs, n_msg, add_ass, part, cap, &n3, &err) == STRIX_OK &&
                n3 == full);
        const size_t k = strnlen(part, cap);
        REQUIRE(k < cap && memcmp(part, all, k) == 0);
        /* the same through the detected name */
        size_t n4 = 0;
        REQUIRE(strix_chat_apply(name, msgs, n_msg, add_ass, NULL, 0, &n4, &err) == STRIX_OK &&
                n4 == full);
        free(part);
        free(all);
    }
    free(s);
    return 0;
}
