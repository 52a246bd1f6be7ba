/*
 * answer.c - the final numeric answer of a worked solution, as GSM8K-style
 * evaluations score it: the number after the last "####" marker, or else
 * the last number in the text, normalised (strix_answer_extract).
 */
#include <ctype.h>
#include <string.h>

#include "strix.h"

/* The number starting at s[i] (digits with optional commas, one decimal
 * point), normalised into out; returns its end, or i when none starts there. */
static size_t number_at(const char *s, size_t n, size_t i, char *out, size_t cap, int *ok)
{
    size_t j = i, len = 0;
    int neg = 0, dot = 0;
    char buf[64];
    if (j < n && s[j] == '-' && j + 1 < n && isdigit((unsigned char)s[j + 1]))
        neg = 1, j++;
    if (j >= n || !isdigit((unsigned char)s[j]))
        return i;
    while (j < n) {
        const char c = s[j];
        if (isdigit((unsigned char)c)) {
            if (len < sizeof buf - 1)
                buf[len++] = c;
        } else if (c == ',' && j + 1 < n && isdigit((unsigned char)s[j + 1]) && !dot) {
            /* thousands separator: dropped */
        } else if (c == '.' && !dot && j + 1 < n && isdigit((unsigned char)s[j + 1])) {
            dot = 1;
            if (len < sizeof buf - 1)
                buf[len++] = c;
        } else {
            break;
        }
        j++;
    }
    buf[len] = '\0';
    if (dot) { /* 18.50 -> 18.5, 18.00 -> 18 */
        while (len > 0 && buf[len - 1] == '0')
            buf[--len] = '\0';
        if (len > 0 && buf[len - 1] == '.')
            buf[--len] = '\0';
    }
    const char *d = buf; /* 007 -> 7 */
    while (d[0] == '0' && d[1] && d[1] != '.')
        d++;
    const int zero = strcmp(d, "0") == 0;
    *ok = (size_t)(neg && !zero) + strlen(d) + 1 <= cap;
    if (*ok) {
        out[0] = '\0';
        if (neg && !zero)
            strcpy(out, "-");
        strcat(out, d);
    }
    return j;
}

int strix_answer_extract(const char *text, size_t n, char *out, size_t cap)
{
    if (!text || !out || cap == 0)
        return 0;
    out[0] = '\0';
    /* after the last "####": the first number there */
    size_t mark = n;
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(text + i, "####", 4) == 0)
            mark = i + 4;
    int found = 0, ok = 0;
    if (mark < n) {
        size_t i = mark;
        while (i < n && (isspace((unsigned char)text[i]) || text[i] == '$' || text[i] == '#'))
            i++;
        if (number_at(text, n, i, out, cap, &ok) != i && ok)
            return 1;
        out[0] = '\0';
    }
    /* the last number of the text */
    char tmp[64];
    for (size_t i = 0; i < n;) {
        const int starts = (i == 0 || !isdigit((unsigned char)text[i - 1])) &&
                           (text[i] == '-' || isdigit((unsigned char)text[i]));
        const size_t e = starts ? number_at(text, n, i, tmp, sizeof tmp, &ok) : i;
        if (e != i) {
            if (ok && strlen(tmp) < cap) {
                strcpy(out, tmp);
                found = 1;
            }
            i = e;
        } else {
            i++;
        }
    }
    return found;
}
