/*
 * json.c - constrained decoding for response_format {"type": "json_object"}:
 * a byte-level pushdown automaton that accepts exactly the prefixes of one
 * JSON object (RFC 8259 grammar; at most JSON_DEPTH nested containers; at
 * most JSON_WS whitespace bytes in a row between tokens; no surrogate \u
 * escapes), and the token mask
 * built on it: before each draw, every vocabulary token whose text would
 * leave the grammar gets logit -inf.
 *
 * Termination: json_close_cost is the fewest bytes that close the object
 * from a state (a quote, a ':0' after a key, one bracket per open
 * container, ...). The mask keeps only tokens after which that cost fits in
 * the tokens the request still has (each closing byte exists as a one-byte
 * token in SentencePiece vocabularies with byte fallback), so a generation
 * with a budget ends with a complete object rather than a cut one.
 */
#include "serve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH 32
#define JSON_WS 3

enum {
    M_TOP,       /* before the object: '{' */
    M_VALUE,     /* a value (after ':' or ',' in an array) */
    M_OBJ_FIRST, /* after '{': a key or '}' */
    M_OBJ_KEY,   /* after ',' in an object: a key */
    M_COLON,     /* after a key */
    M_AFTER,     /* after a value in a container: ',' or its closing bracket */
    M_ARR_FIRST, /* after '[': a value or ']' */
    M_STR,       /* inside a string (sub: 0, 1 after '\\', 2..5 in \uXXXX) */
    M_NUM,       /* inside a number (sub: enum below) */
    M_LIT,       /* inside true/false/null (sub: which, pos: bytes read) */
    M_DONE,      /* the object is closed: whitespace only */
};
enum { N_MINUS = 1, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char *const literals[3] = {"true", "false", "null"};

struct json_state {
    unsigned char stack[JSON_DEPTH]; /* 'o' object, 'a' array */
    int depth, mode, sub, pos, ws, key;
};

struct json_state *json_state_new(void)
{
    return calloc(1, sizeof(struct json_state)); /* M_TOP */
}

void json_state_free(struct json_state *s)
{
    free(s);
}

int json_done(const struct json_state *s)
{
    return s->mode == M_DONE;
}

static void value_end(struct json_state *s)
{
    s->mode = s->depth == 0 ? M_DONE : M_AFTER;
}

static int push(struct json_state *s, unsigned char kind)
{
    if (s->depth >= JSON_DEPTH)
        return -1;
    s->stack[s->depth++] = kind;
    s->mode = kind == 'o' ? M_OBJ_FIRST : M_ARR_FIRST;
    return 0;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* The start of a value (M_VALUE, M_ARR_FIRST). */
static int value_start(struct json_state *s, int c)
{
    if (c == '{' || c == '[')
        return push(s, (unsigned char)(c == '{' ? 'o' : 'a'));
    if (c == '"') {
        s->mode = M_STR, s->sub = 0, s->key = 0;
        return 0;
    }
    if (c == '-' || is_digit(c)) {
        s->mode = M_NUM;
        s->sub = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
        return 0;
    }
    for (int k = 0; k < 3; k++)
        if (c == literals[k][0]) {
            s->mode = M_LIT, s->sub = k, s->pos = 1;
            return 0;
        }
    return -1;
}

static int byte(struct json_state *s, int c)
{
    const int ws = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (s->mode == M_NUM) {
        const int sub = s->sub;
        if (is_digit(c)) {
            if (sub == N_ZERO)
                return -1; /* no leading zeros */
            s->sub = sub == N_MINUS ? (c == '0' ? N_ZERO : N_INT)
                     : sub == N_DOT ? N_FRAC
                     : sub == N_E || sub == N_ESIGN ? N_EXP
                                                    : sub;
            return 0;
        }
        if (c == '.' && (sub == N_ZERO || sub == N_INT)) {
            s->sub = N_DOT;
            return 0;
        }
        if ((c == 'e' || c == 'E') && (sub == N_ZERO || sub == N_INT || sub == N_FRAC)) {
            s->sub = N_E;
            return 0;
        }
        if ((c == '+' || c == '-') && sub == N_E) {
            s->sub = N_ESIGN;
            return 0;
        }
        if (sub != N_ZERO && sub != N_INT && sub != N_FRAC && sub != N_EXP)
            return -1;
        value_end(s); /* the number ended: c belongs to what follows */
    }
    if (s->mode == M_STR) {
        if (s->sub == 0) {
            if (c == '"') {
                if (s->key)
                    s->mode = M_COLON;
                else
                    value_end(s);
                s->ws = 0;
                return 0;
            }
            if (c == '\\')
                s->sub = 1;
            return c < 0x20 ? -1 : 0;
        }
        if (s->sub == 1) {
            if (!strchr("\"\\/bfnrtu", c) || c == 0)
                return -1;
            s->sub = c == 'u' ? 2 : 0;
            return 0;
        }
        if (!is_digit(c) && !((c | 0x20) >= 'a' && (c | 0x20) <= 'f'))
            return -1;
        /* no \uD800-\uDFFF: a surrogate escape is grammatical but strict
         * parsers refuse a lone one (other characters can be written as
         * UTF-8) */
        if (s->sub == 2)
            s->pos = (c | 0x20) == 'd';
        else if (s->sub == 3 && s->pos && !(c >= '0' && c <= '7'))
            return -1;
        s->sub = s->sub == 5 ? 0 : s->sub + 1;
        return 0;
    }
    if (s->mode == M_LIT) {
        const char *lit = literals[s->sub];
        if (c != lit[s->pos])
            return -1;
        if (lit[++s->pos] == '\0')
            value_end(s);
        return 0;
    }
    if (ws) {
        if (++s->ws > JSON_WS)
            return -1;
        return 0;
    }
    s->ws = 0;
    switch (s->mode) {
    case M_TOP: return c == '{' ? push(s, 'o') : -1;
    case M_VALUE: return value_start(s, c);
    case M_ARR_FIRST:
        if (c == ']') {
            s->depth--;
            value_end(s);
            return 0;
        }
        return value_start(s, c);
    case M_OBJ_FIRST:
    case M_OBJ_KEY:
        if (c == '"') {
            s->mode = M_STR, s->sub = 0, s->key = 1;
            return 0;
        }
        if (c == '}' && s->mode == M_OBJ_FIRST) {
            s->depth--;
            value_end(s);
            return 0;
        }
        return -1;
    case M_COLON:
        if (c != ':')
            return -1;
        s->mode = M_VALUE;
        return 0;
    case M_AFTER: {
        const unsigned char top = s->stack[s->depth - 1];
        if (c == ',') {
            s->mode = top == 'o' ? M_OBJ_KEY : M_VALUE;
            return 0;
        }
        if ((c == '}' && top == 'o') || (c == ']' && top == 'a')) {
            s->depth--;
            value_end(s);
            return 0;
        }
        return -1;
    }
    default: return -1; /* M_DONE: whitespace only */
    }
}

int json_feed(struct json_state *s, const char *bytes, size_t n)
{
    struct json_state t = *s;
    for (size_t i = 0; i < n; i++)
        if (byte(&t, (unsigned char)bytes[i]))
            return -1;
    *s = t;
    return 0;
}

int json_close_cost(const struct json_state *s)
{
    int c = s->depth;
    switch (s->mode) {
    case M_TOP: return 2;
    case M_VALUE: return c + 1;
    case M_OBJ_KEY: return c + 4; /* "":0 */
    case M_COLON: return c + 2;   /* :0 */
    case M_STR: {
        const int rest = s->sub == 0 ? 1 : s->sub == 1 ? 2 : 6 - s->sub + 1;
        return c + rest + (s->key ? 2 : 0);
    }
    case M_NUM:
        return c + (s->sub == N_MINUS || s->sub == N_DOT || s->sub == N_E || s->sub == N_ESIGN);
    case M_LIT: return c + (int)strlen(literals[s->sub]) - s->pos;
    default: return c; /* OBJ_FIRST, AFTER, ARR_FIRST, DONE */
    }
}

struct json_vocab {
    int n;
    char **text; /* each token's text (NUL-terminated) */
    int *len;
    unsigned char *ok; /* scratch: 1 valid, 2 valid within the budget */
};

void json_vocab_free(struct json_vocab *v)
{
    if (!v)
        return;
    for (int i = 0; v->text && i < v->n; i++)
        free(v->text[i]);
    free(v->text);
    free(v->len);
    free(v->ok);
    free(v);
}

struct json_vocab *json_vocab_new(const strix_model *model)
{
    const int n = strix_vocab_size(model);
    struct json_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->n = n;
    v->text = calloc((size_t)n, sizeof *v->text);
    v->len = calloc((size_t)n, sizeof *v->len);
    v->ok = calloc((size_t)n, 1);
    if (!v->text || !v->len || !v->ok) {
        json_vocab_free(v);
        return NULL;
    }
    /* the texts a token has in the middle of a text: after a token that
     * does not start it (SentencePiece drops a leading space only there) */
    strix_token prev = -1;
    char one[8];
    for (int i = 0; i < n && prev < 0; i++)
        if (strix_token_to_text(model, -1, i, one, (int)sizeof one) > 0)
            prev = i;
    for (int i = 0; i < n; i++) {
        const int len = strix_token_to_text(model, prev, i, NULL, 0);
        v->len[i] = len > 0 ? len : 0;
        v->text[i] = malloc((size_t)v->len[i] + 1);
        if (!v->text[i]) {
            json_vocab_free(v);
            return NULL;
        }
        if (len > 0)
            strix_token_to_text(model, prev, i, v->text[i], len);
        v->text[i][v->len[i]] = '\0';
    }
    return v;
}

int json_mask(const struct json_state *s, const struct json_vocab *v, float *logits, int budget)
{
    int n_valid = 0, n_fit = 0;
    for (int i = 0; i < v->n; i++) {
        v->ok[i] = 0;
        if (v->len[i] == 0 || logits[i] == -INFINITY)
            continue; /* control tokens (EOS included) and banned ones */
        struct json_state t = *s;
        if (json_feed(&t, v->text[i], (size_t)v->len[i]))
            continue;
        n_valid++;
        v->ok[i] = 1;
        if (json_close_cost(&t) <= budget - 1) {
            v->ok[i] = 2;
            n_fit++;
        }
    }
    const unsigned char need = n_fit > 0 ? 2 : 1;
    for (int i = 0; i < v->n; i++)
        if (v->ok[i] < need)
            logits[i] = -INFINITY;
    return n_fit > 0 ? n_fit : n_valid;
}
