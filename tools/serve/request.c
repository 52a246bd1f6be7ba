/*
 * request.c - an OpenAI-style request body (JSON, parsed by cJSON) into
 * generation parameters (struct req), every field checked for its type and
 * range, with an OpenAI error naming the field otherwise. Unknown fields are
 * ignored, as OpenAI's clients send many. Tokenizing and the chat template
 * are the server's (server.c); this file sees only the JSON.
 */
#include "request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define BAD "invalid_request_error"

int api_error_set(struct api_error *err, int status, const char *type, const char *param,
                  const char *code, const char *fmt, ...)
{
    err->status = status;
    err->type = type;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    snprintf(err->code, sizeof err->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

void req_limits_default(struct req_limits *lim)
{
    lim->max_n = 8;
    lim->max_stops = 16;
    lim->max_stop_len = 256;
    lim->max_logit_bias = 1024;
    lim->max_messages = 1024;
    lim->max_tokens = 1 << 20;
    lim->n_vocab = 0;
    lim->max_prompts = 64;
    lim->n_layer = 0;
}

int req_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        const unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07;
        else
            return 0;
        if (n - i < (size_t)len)
            return 0;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

static char *dup_str(const char *s)
{
    const size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* A number field in [lo, hi] (absent or null: unchanged). */
static int get_num(const cJSON *root, const char *key, double lo, double hi, float *out,
                   struct api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return api_error_set(err, 400, BAD, key, "invalid_type", "'%s' must be a number", key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return api_error_set(err, 400, BAD, key, "invalid_value",
                             "'%s' is %g; it must be between %g and %g", key, v->valuedouble, lo,
                             hi);
    *out = (float)v->valuedouble;
    return 0;
}

/* An integer field in [lo, hi] (absent or null: unchanged). */
static int get_int(const cJSON *root, const char *key, long lo, long hi, int *out,
                   struct api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        !isfinite(v->valuedouble))
        return api_error_set(err, 400, BAD, key, "invalid_type", "'%s' must be an integer", key);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return api_error_set(err, 400, BAD, key, "invalid_value",
                             "'%s' is %.0f; it must be between %ld and %ld", key, v->valuedouble,
                             lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *root, const char *key, int *out, struct api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return api_error_set(err, 400, BAD, key, "invalid_type", "'%s' must be a boolean", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A message's content: a string, or an array of {"type": "text", "text": ...}
 * parts joined. NULL content (an assistant turn with tool calls) is "". */
static int message_content(const cJSON *c, int i, char **out, struct api_error *err)
{
    if (!c || cJSON_IsNull(c)) {
        *out = dup_str("");
    } else if (cJSON_IsString(c)) {
        *out = dup_str(c->valuestring);
    } else if (cJSON_IsArray(c)) {
        size_t len = 0;
        const cJSON *part;
        cJSON_ArrayForEach(part, c)
        {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 ||
                !cJSON_IsString(text))
                return api_error_set(err, 400, BAD, "messages", "invalid_type",
                                     "messages[%d].content: only text parts are supported", i);
            len += strlen(text->valuestring);
        }
        char *s = malloc(len + 1);
        if (!s)
            return api_error_set(err, 500, "server_error", "", "", "out of memory");
        len = 0;
        cJSON_ArrayForEach(part, c)
        {
            const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
            memcpy(s + len, t, strlen(t));
            len += strlen(t);
        }
        s[len] = '\0';
        *out = s;
    } else {
        return api_error_set(err, 400, BAD, "messages", "invalid_type",
                             "messages[%d].content must be a string or an array of text parts", i);
    }
    if (!*out)
        return api_error_set(err, 500, "server_error", "", "", "out of memory");
    return 0;
}

static int parse_messages(const cJSON *root, const struct req_limits *lim, struct req *r,
                          struct api_error *err)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!m)
        return api_error_set(err, 400, BAD, "messages", "missing_required_parameter",
                             "'messages' is required");
    if (!cJSON_IsArray(m))
        return api_error_set(err, 400, BAD, "messages", "invalid_type",
                             "'messages' must be an array");
    const int n = cJSON_GetArraySize(m);
    if (n < 1)
        return api_error_set(err, 400, BAD, "messages", "invalid_value",
                             "'messages' must hold at least one message");
    if (n > lim->max_messages)
        return api_error_set(err, 400, BAD, "messages", "invalid_value",
                             "'messages' holds %d messages; at most %d are accepted", n,
                             lim->max_messages);
    r->msgs = calloc((size_t)n, sizeof *r->msgs);
    if (!r->msgs)
        return api_error_set(err, 500, "server_error", "", "", "out of memory");
    int i = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, m)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role))
            return api_error_set(err, 400, BAD, "messages", "invalid_type",
                                 "messages[%d] must be an object with a string 'role'", i);
        const char *rs = role->valuestring;
        if (strcmp(rs, "developer") == 0)
            rs = "system";
        if (strcmp(rs, "system") != 0 && strcmp(rs, "user") != 0 && strcmp(rs, "assistant") != 0)
            return api_error_set(err, 400, BAD, "messages", "invalid_value",
                                 "messages[%d].role must be system, developer, user or assistant",
                                 i);
        char *content = NULL;
        if (message_content(cJSON_GetObjectItemCaseSensitive(msg, "content"), i, &content, err))
            return -1;
        r->msgs[i].content = content;
        r->msgs[i].role = dup_str(rs);
        r->n_msg = ++i;
        if (!r->msgs[i - 1].role)
            return api_error_set(err, 500, "server_error", "", "", "out of memory");
    }
    return 0;
}

/* One prompt: a string, or an array of token ids (at least one). */
static int parse_one_prompt(const cJSON *p, int i, const struct req_limits *lim,
                            struct req_prompt *out, struct api_error *err)
{
    if (cJSON_IsString(p)) {
        out->text = dup_str(p->valuestring);
        if (!out->text)
            return api_error_set(err, 500, "server_error", "", "", "out of memory");
        return 0;
    }
    const int n = cJSON_IsArray(p) ? cJSON_GetArraySize(p) : 0;
    if (n == 0)
        return api_error_set(err, 400, BAD, "prompt", "invalid_type",
                             "prompt %d must be a string or a non-empty array of token ids", i);
    out->ids = malloc((size_t)n * sizeof *out->ids);
    if (!out->ids)
        return api_error_set(err, 500, "server_error", "", "", "out of memory");
    const cJSON *t;
    cJSON_ArrayForEach(t, p)
    {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble >= (lim->n_vocab > 0 ? lim->n_vocab : 2147483647.0))
            return api_error_set(err, 400, BAD, "prompt", "invalid_value",
                                 "prompt %d: token ids must be integers in [0, %d)", i,
                                 lim->n_vocab);
        out->ids[out->n_ids++] = (strix_token)t->valuedouble;
    }
    return 0;
}

/* 'prompt': a string, an array of token ids (one prompt), or an array of
 * strings or of token-id arrays (several prompts). */
static int parse_prompt(const cJSON *root, const struct req_limits *lim, struct req *r,
                        struct api_error *err)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p)
        return api_error_set(err, 400, BAD, "prompt", "missing_required_parameter",
                             "'prompt' is required");
    const int several =
        cJSON_IsArray(p) && p->child && (cJSON_IsString(p->child) || cJSON_IsArray(p->child));
    const int n = several ? cJSON_GetArraySize(p) : 1;
    if (n > lim->max_prompts)
        return api_error_set(err, 400, BAD, "prompt", "invalid_value",
                             "'prompt' holds %d prompts; at most %d are accepted", n,
                             lim->max_prompts);
    r->prompts = calloc((size_t)n, sizeof *r->prompts);
    if (!r->prompts)
        return api_error_set(err, 500, "server_error", "", "", "out of memory");
    if (!several) {
        if (!cJSON_IsString(p) && !cJSON_IsArray(p))
            return api_error_set(err, 400, BAD, "prompt", "invalid_type",
                                 "'prompt' must be a string, an array of token ids, or an "
                                 "array of strings or of token-id arrays");
        r->n_prompts = 1;
        return parse_one_prompt(p, 0, lim, &r->prompts[0], err);
    }
    int i = 0;
    const cJSON *one;
    cJSON_ArrayForEach(one, p)
    {
        if (cJSON_IsString(one) != cJSON_IsString(p->child))
            return api_error_set(err, 400, BAD, "prompt", "invalid_type",
                                 "'prompt' must not mix strings and token-id arrays");
        r->n_prompts = i + 1;
        if (parse_one_prompt(one, i, lim, &r->prompts[i], err))
            return -1;
        i++;
    }
    return 0;
}

/* response_format: {"type": "text" | "json_object"}; a JSON schema is
 * refused with a clear message. */
static int parse_format(const cJSON *root, struct req *r, struct api_error *err)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (!f || cJSON_IsNull(f))
        return 0;
    const cJSON *type = cJSON_IsObject(f) ? cJSON_GetObjectItemCaseSensitive(f, "type") : NULL;
    if (!cJSON_IsString(type))
        return api_error_set(err, 400, BAD, "response_format", "invalid_type",
                             "'response_format' must be an object with a string 'type'");
    if (strcmp(type->valuestring, "text") == 0)
        return 0;
    if (strcmp(type->valuestring, "json_object") == 0) {
        r->json = 1;
        return 0;
    }
    if (strcmp(type->valuestring, "json_schema") == 0)
        return api_error_set(err, 400, BAD, "response_format", "unsupported_value",
                             "response_format json_schema is not supported by this server; "
                             "use {\"type\": \"json_object\"} (any JSON object)");
    return api_error_set(err, 400, BAD, "response_format", "invalid_value",
                         "response_format type must be text, json_object or json_schema");
}

static int parse_stops(const cJSON *root, const struct req_limits *lim, struct req *r,
                       struct api_error *err)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!s || cJSON_IsNull(s))
        return 0;
    const int n = cJSON_IsString(s) ? 1 : cJSON_IsArray(s) ? cJSON_GetArraySize(s) : -1;
    if (n < 0)
        return api_error_set(err, 400, BAD, "stop", "invalid_type",
                             "'stop' must be a string or an array of strings");
    if (n > lim->max_stops)
        return api_error_set(err, 400, BAD, "stop", "invalid_value",
                             "'stop' holds %d strings; at most %d are accepted", n,
                             lim->max_stops);
    r->stops = calloc((size_t)n + 1, sizeof *r->stops);
    if (!r->stops)
        return api_error_set(err, 500, "server_error", "", "", "out of memory");
    const cJSON *one = s, *it = cJSON_IsArray(s) ? s->child : s;
    for (int i = 0; i < n; i++, it = it->next) {
        one = it;
        if (!cJSON_IsString(one))
            return api_error_set(err, 400, BAD, "stop", "invalid_type",
                                 "'stop' must be a string or an array of strings");
        const size_t len = strlen(one->valuestring);
        if (len == 0 || len > lim->max_stop_len)
            return api_error_set(err, 400, BAD, "stop", "invalid_value",
                                 "a stop string must have 1 to %zu bytes", lim->max_stop_len);
        r->stops[i] = dup_str(one->valuestring);
        if (!r->stops[i])
            return api_error_set(err, 500, "server_error", "", "", "out of memory");
        r->n_stops = i + 1;
    }
    return 0;
}

static int parse_logit_bias(const cJSON *root, const struct req_limits *lim, struct req *r,
                            struct api_error *err)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (!b || cJSON_IsNull(b))
        return 0;
    if (!cJSON_IsObject(b))
        return api_error_set(err, 400, BAD, "logit_bias", "invalid_type",
                             "'logit_bias' must be an object of token ids to numbers");
    const int n = cJSON_GetArraySize(b);
    if (n > lim->max_logit_bias)
        return api_error_set(err, 400, BAD, "logit_bias", "invalid_value",
                             "'logit_bias' holds %d entries; at most %d are accepted", n,
                             lim->max_logit_bias);
    if (n == 0)
        return 0;
    r->bias = malloc((size_t)n * sizeof *r->bias);
    if (!r->bias)
        return api_error_set(err, 500, "server_error", "", "", "out of memory");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, b)
    {
        char *end;
        const long id = strtol(e->string, &end, 10);
        if (!*e->string || *end || id < 0 ||
            (lim->n_vocab > 0 ? id >= lim->n_vocab : id > 2147483647L))
            return api_error_set(err, 400, BAD, "logit_bias", "invalid_value",
                                 "logit_bias: '%.32s' is not a token id of this model", e->string);
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble < -100 ||
            e->valuedouble > 100)
            return api_error_set(err, 400, BAD, "logit_bias", "invalid_value",
                                 "logit_bias values must be numbers between -100 and 100");
        r->bias[i].token = (strix_token)id;
        /* -100 bans the token, as OpenAI documents */
        r->bias[i].bias = e->valuedouble <= -100 ? -INFINITY : (float)e->valuedouble;
        i++;
    }
    r->sp.logit_bias = r->bias;
    r->sp.n_logit_bias = i;
    return 0;
}

/* strix's skip_layers: a list of block numbers the request's tokens skip. */
static int parse_skip(const cJSON *root, const struct req_limits *lim, struct req *r,
                      struct api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "skip_layers");
    if (!v || cJSON_IsNull(v))
        return 0;
    const int cap = lim->n_layer > 0 ? lim->n_layer : 4096;
    if (!cJSON_IsArray(v))
        return api_error_set(err, 400, BAD, "skip_layers", "invalid_type",
                             "'skip_layers' must be a list of layer numbers");
    const int n = cJSON_GetArraySize(v);
    if (n > cap)
        return api_error_set(err, 400, BAD, "skip_layers", "invalid_value",
                             "'skip_layers' lists %d layers; the model has %d", n, cap);
    if (n == 0)
        return 0;
    if (!(r->skip_layers = malloc((size_t)n * sizeof *r->skip_layers)))
        return api_error_set(err, 500, "server_error", "", "", "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) ||
            e->valuedouble < 0 || e->valuedouble >= cap)
            return api_error_set(err, 400, BAD, "skip_layers", "invalid_value",
                                 "'skip_layers' entries must be layer numbers from 0 to %d",
                                 cap - 1);
        r->skip_layers[r->n_skip_layers++] = (int)e->valuedouble;
    }
    if (lim->n_layer > 0) {
        /* every layer skipped leaves nothing of the model */
        int n_distinct = 0;
        for (int i = 0; i < r->n_skip_layers; i++) {
            int seen = 0;
            for (int k = 0; k < i && !seen; k++)
                seen = r->skip_layers[k] == r->skip_layers[i];
            n_distinct += !seen;
        }
        if (n_distinct == lim->n_layer)
            return api_error_set(err, 400, BAD, "skip_layers", "invalid_value",
                                 "'skip_layers' names all %d layers; at least one must run",
                                 lim->n_layer);
    }
    return 0;
}

/* strix's speculative: {"ngram": N (1..16, 3), "max": K (1..16, 4)}. The
 * acceptance test needs the sampler's distribution and nothing else of the
 * draw, so fields that read the draw (log-probabilities, best_of's ranking,
 * mirostat's update) or that mask the logits (json_object) are refused. */
static int parse_spec(const cJSON *root, struct req *r, struct api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "speculative");
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        return api_error_set(err, 400, BAD, "speculative", "invalid_type",
                             "'speculative' must be an object: {\"ngram\": N, \"max\": K}");
    r->spec_ngram = 3;
    r->spec_max = 4;
    struct api_error e2;
    if (get_int(v, "ngram", 1, 16, &r->spec_ngram, &e2) ||
        get_int(v, "max", 1, 16, &r->spec_max, &e2))
        return api_error_set(err, 400, BAD, "speculative", "invalid_value",
                             "speculative: %s", e2.message);
    const char *clash = r->logprobs ? "logprobs" : r->best_of > r->n ? "best_of"
                        : r->json ? "response_format" : r->sp.mirostat ? "mirostat" : NULL;
    if (clash)
        return api_error_set(err, 400, BAD, "speculative", "invalid_value",
                             "'speculative' cannot be combined with '%s'", clash);
    return 0;
}

static int parse_fields(const cJSON *root, int kind, const struct req_limits *lim, struct req *r,
                        struct api_error *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model))
            return api_error_set(err, 400, BAD, "model", "invalid_type",
                                 "'model' must be a string");
        if (!(r->model = dup_str(model->valuestring)))
            return api_error_set(err, 500, "server_error", "", "", "out of memory");
    }
    if (kind == REQ_CHAT ? parse_messages(root, lim, r, err) : parse_prompt(root, lim, r, err))
        return -1;
    if (get_bool(root, "stream", &r->stream, err))
        return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return api_error_set(err, 400, BAD, "stream_options", "invalid_type",
                                 "'stream_options' must be an object");
        if (get_bool(so, "include_usage", &r->include_usage, err))
            return -1;
    }
    if (get_int(root, "max_tokens", 0, lim->max_tokens, &r->max_tokens, err) ||
        get_int(root, "max_completion_tokens", 0, lim->max_tokens, &r->max_tokens, err) ||
        get_int(root, "n_predict", -1, lim->max_tokens, &r->max_tokens, err) ||
        get_int(root, "n", 1, lim->max_n, &r->n, err))
        return -1;
    r->best_of = r->n;
    if (kind == REQ_COMPLETION) {
        if (get_bool(root, "echo", &r->echo, err) ||
            get_int(root, "best_of", 1, lim->max_n, &r->best_of, err))
            return -1;
        if (r->best_of < r->n)
            return api_error_set(err, 400, BAD, "best_of", "invalid_value",
                                 "'best_of' (%d) must be at least 'n' (%d)", r->best_of, r->n);
        if (r->best_of > r->n && r->stream)
            return api_error_set(err, 400, BAD, "best_of", "invalid_value",
                                 "'best_of' cannot be used with 'stream'");
    }
    if (parse_format(root, r, err))
        return -1;
    struct strix_sampler_params *sp = &r->sp;
    if (get_num(root, "temperature", 0, 100, &sp->temperature, err) ||
        get_num(root, "top_p", 0, 1, &sp->top_p, err) ||
        get_int(root, "top_k", 0, 1 << 30, &sp->top_k, err) ||
        get_num(root, "min_p", 0, 1, &sp->min_p, err) ||
        get_num(root, "typical_p", 0, 1, &sp->typical_p, err) ||
        get_num(root, "frequency_penalty", -2, 2, &sp->frequency_penalty, err) ||
        get_num(root, "presence_penalty", -2, 2, &sp->presence_penalty, err) ||
        get_num(root, "repeat_penalty", 0.01, 100, &sp->repeat_penalty, err) ||
        get_int(root, "repeat_last_n", 0, 1 << 20, &sp->repeat_last_n, err) ||
        get_int(root, "mirostat", 0, 2, &sp->mirostat, err) ||
        get_num(root, "mirostat_tau", 0, 100, &sp->mirostat_tau, err) ||
        get_num(root, "mirostat_eta", 0, 10, &sp->mirostat_eta, err) ||
        get_bool(root, "ignore_eos", &r->ignore_eos, err) ||
        get_bool(root, "stop_at_bos", &r->stop_at_bos, err))
        return -1;
    if (sp->mirostat == 1)
        return api_error_set(err, 400, BAD, "mirostat", "invalid_value",
                             "mirostat 1 is not implemented: use 0 or 2");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (seed && !cJSON_IsNull(seed)) {
        if (!cJSON_IsNumber(seed) || seed->valuedouble != floor(seed->valuedouble) ||
            fabs(seed->valuedouble) > 9007199254740992.0)
            return api_error_set(err, 400, BAD, "seed", "invalid_type",
                                 "'seed' must be an integer");
        r->has_seed = 1;
        r->seed = (uint64_t)(int64_t)seed->valuedouble;
    }
    if (parse_stops(root, lim, r, err) || parse_logit_bias(root, lim, r, err) ||
        parse_skip(root, lim, r, err))
        return -1;
    /* logprobs: a boolean for chat (with top_logprobs), a count for completions */
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    if (kind == REQ_CHAT) {
        if (get_bool(root, "logprobs", &r->logprobs, err) ||
            get_int(root, "top_logprobs", 0, 20, &r->top_logprobs, err))
            return -1;
        if (r->top_logprobs > 0 && !r->logprobs)
            return api_error_set(err, 400, BAD, "top_logprobs", "invalid_value",
                                 "'top_logprobs' needs 'logprobs': true");
    } else if (lp && !cJSON_IsNull(lp)) {
        if (get_int(root, "logprobs", 0, 20, &r->top_logprobs, err))
            return -1;
        r->logprobs = 1;
    }
    return parse_spec(root, r, err);
}

int req_parse(const char *body, size_t len, int kind, const struct req_limits *lim,
              struct req *out, struct api_error *err)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->max_tokens = -1;
    out->n = 1;
    out->best_of = 1;
    out->stop_at_bos = 1;
    out->sp = strix_sampler_default_params();
    if (!req_utf8_valid(body, len))
        return api_error_set(err, 400, BAD, "", "invalid_utf8",
                             "the request body is not valid UTF-8");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return api_error_set(err, 400, BAD, "", "invalid_json",
                             "the request body is not valid JSON (or is nested too deeply)");
    int rc = 0;
    if (!cJSON_IsObject(root))
        rc = api_error_set(err, 400, BAD, "", "invalid_json",
                           "the request body must be a JSON object");
    else
        rc = parse_fields(root, kind, lim, out, err);
    cJSON_Delete(root);
    if (rc)
        req_free(out);
    return rc;
}

void req_free(struct req *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_msg; i++) {
        free((char *)r->msgs[i].role);
        free((char *)r->msgs[i].content);
    }
    free(r->msgs);
    for (int i = 0; i < r->n_stops; i++)
        free(r->stops[i]);
    free(r->stops);
    free(r->model);
    for (int i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    free(r->bias);
    free(r->skip_layers);
    memset(r, 0, sizeof *r);
}
