/*
 * fuzz_request.c - libFuzzer target for the server's request parsing
 * (tools/serve/request.c): any bytes as the JSON body of a chat or
 * completion request, parsed into generation parameters.
 *
 * Input: the first byte picks the kind (bit 0: chat or completion) and
 * tighter limits (bit 1); the rest is the body. Checked: a refusal carries a
 * 4xx/5xx status, a type and a non-empty message; an accepted request stays
 * within the limits (choices, stop strings and their lengths, messages,
 * bias entries, token ids below the vocabulary) and its sampler parameters
 * are ones strix_sampler_create accepts, so nothing a client sends can make
 * the scheduler fail; a body that is not valid UTF-8 is never accepted.
 * Several prompts, echo, best_of and response_format are checked the same
 * way (prompt count, best_of >= n and never with stream).
 *
 * The same bytes also drive the json_object automaton of tools/serve/json.c:
 * fed byte by byte, no byte lowers its closing cost by more than one; when it
 * says the object is closed, cJSON parses exactly those bytes as an object;
 * otherwise json_close_cost bytes, each found as one the automaton takes
 * that lowers the cost by one, close it into an object cJSON parses.
 *
 * Built by `make fuzz` (with cJSON); scripts/fuzz.sh runs it on a copy of
 * tests/fuzz/corpus/fuzz_request.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/serve/json.c"
#include "../../tools/serve/request.c"
#include "fuzz_common.h"

enum { N_VOCAB = 512 };

/* The json_object automaton on the input's bytes (see the top). */
static void check_json_automaton(const char *s, size_t n)
{
    struct json_state *st = json_state_new();
    REQUIRE(st);
    size_t i = 0;
    for (; i < n && !json_done(st); i++) {
        const int before = json_close_cost(st);
        if (json_feed(st, s + i, 1))
            break;
        /* one byte moves the closing cost by at most one down */
        REQUIRE(json_close_cost(st) >= before - 1);
    }
    if (json_done(st)) {
        cJSON *v = cJSON_ParseWithLength(s, i);
        REQUIRE(v && cJSON_IsObject(v));
        cJSON_Delete(v);
    } else {
        /* close it greedily: among the bytes the automaton takes, one that
         * lowers the cost; the cost says how many are needed */
        const int cost = json_close_cost(st);
        char buf[1 << 12];
        /* the most: JSON_DEPTH open containers and, inside the innermost
         * object's key, a \u with no hex digit yet (4 digits, the quote,
         * then ':' and '0') */
        REQUIRE(cost >= 0 && cost <= JSON_DEPTH + 7);
        if (i + (size_t)cost < sizeof buf) {
            memcpy(buf, s, i);
            size_t m = i;
            for (int k = 0; k < cost; k++) {
                const int now = json_close_cost(st);
                int ok = 0;
                for (const char *c = "{\"}]:0ntrueafls"; *c && !ok; c++) {
                    struct json_state t = *st;
                    if (json_feed(&t, c, 1) == 0 && json_close_cost(&t) == now - 1) {
                        *st = t;
                        buf[m++] = *c;
                        ok = 1;
                    }
                }
                REQUIRE(ok);
            }
            REQUIRE(json_done(st));
            cJSON *v = cJSON_ParseWithLength(buf, m);
            REQUIRE(v && cJSON_IsObject(v));
            cJSON_Delete(v);
        }
    }
    json_state_free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    check_json_automaton((const char *)data + 1, size - 1);
    const int kind = data[0] & 1 ? REQ_CHAT : REQ_COMPLETION;
    struct req_limits lim;
    req_limits_default(&lim);
    lim.n_vocab = N_VOCAB;
    if (data[0] & 2) {
        lim.max_n = 2;
        lim.max_stops = 2;
        lim.max_stop_len = 4;
        lim.max_logit_bias = 3;
        lim.max_messages = 2;
        lim.max_tokens = 10;
    }
    const char *body = (const char *)data + 1;
    const size_t len = size - 1;
    struct req r;
    struct api_error err;
    memset(&err, 0, sizeof err);
    if (req_parse(body, len, kind, &lim, &r, &err) != 0) {
        REQUIRE(err.status >= 400 && err.status < 600);
        REQUIRE(err.type && err.type[0]);
        REQUIRE(err.message[0] && memchr(err.message, 0, sizeof err.message));
        /* the struct was emptied: freeing it again is harmless */
        req_free(&r);
        return 0;
    }
    REQUIRE(req_utf8_valid(body, len));
    REQUIRE(r.kind == kind);
    REQUIRE(r.n >= 1 && r.n <= lim.max_n);
    REQUIRE(r.max_tokens >= -1 && r.max_tokens <= lim.max_tokens);
    REQUIRE(r.n_stops >= 0 && r.n_stops <= lim.max_stops);
    for (int i = 0; i < r.n_stops; i++)
        REQUIRE(strlen(r.stops[i]) >= 1 && strlen(r.stops[i]) <= lim.max_stop_len);
    if (kind == REQ_CHAT) {
        REQUIRE(r.n_msg >= 1 && r.n_msg <= lim.max_messages);
        for (int i = 0; i < r.n_msg; i++)
            REQUIRE(r.msgs[i].role && r.msgs[i].content);
    } else {
        REQUIRE(r.n_prompts >= 1 && r.n_prompts <= lim.max_prompts);
        for (int p = 0; p < r.n_prompts; p++) {
            REQUIRE((r.prompts[p].text != NULL) != (r.prompts[p].ids != NULL));
            REQUIRE(r.prompts[p].text || r.prompts[p].n_ids >= 1);
            for (int i = 0; i < r.prompts[p].n_ids; i++)
                REQUIRE(r.prompts[p].ids[i] >= 0 && r.prompts[p].ids[i] < N_VOCAB);
        }
        REQUIRE(r.best_of >= r.n && r.best_of <= lim.max_n);
        REQUIRE(!(r.stream && r.best_of > r.n));
    }
    REQUIRE(r.sp.n_logit_bias <= lim.max_logit_bias);
    for (int i = 0; i < r.sp.n_logit_bias; i++)
        REQUIRE(r.sp.logit_bias[i].token >= 0 && r.sp.logit_bias[i].token < N_VOCAB);
    REQUIRE(r.top_logprobs >= 0 && r.top_logprobs <= 20);
    /* the parameters are ones the sampler takes */
    struct strix_sampler_params sp = r.sp;
    sp.n_probs = r.logprobs ? (r.top_logprobs > 0 ? r.top_logprobs : 1) : 0;
    strix_sampler *s = NULL;
    strix_error e;
    if (strix_sampler_create(&sp, N_VOCAB, &s, &e) != STRIX_OK) {
        fprintf(stderr, "accepted parameters the sampler refuses: %s\n", e.msg);
        abort();
    }
    strix_sampler_free(s);
    req_free(&r);
    return 0;
}
