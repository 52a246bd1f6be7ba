/*
 * output.c - the JSON the server sends, in OpenAI's shapes: errors, whole
 * responses (chat.completion, text_completion), streamed chunks
 * (chat.completion.chunk) with their usage chunk, and log-probability
 * entries. Generated text is made valid UTF-8 here (a byte sequence that is
 * not becomes U+FFFD), since a model may emit any bytes.
 */
#include "serve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

size_t out_utf8_complete(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    /* look back at most 3 bytes for the lead byte of an unfinished sequence */
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        const unsigned c = s[n - k];
        if ((c & 0xc0) == 0x80)
            continue; /* a continuation byte: keep looking */
        const size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > k ? n - k : n;
    }
    return n;
}

/* s[0..n) with every invalid sequence replaced by U+FFFD; NUL-terminated,
 * malloc'd. */
static char *utf8_clean(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    char *o = malloc(3 * n + 1);
    if (!o)
        return NULL;
    size_t i = 0, w = 0;
    while (i < n) {
        size_t len = 1;
        if (s[i] >= 0x80) {
            len = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : s[i] >= 0xc2 ? 2 : 0;
            if (len == 0 || i + len > n || !req_utf8_valid(str + i, len)) {
                memcpy(o + w, "\xef\xbf\xbd", 3);
                w += 3;
                i++;
                continue;
            }
        } else if (s[i] == 0) {
            i++; /* no NUL inside a JSON string we build */
            continue;
        }
        memcpy(o + w, s + i, len);
        w += len;
        i += len;
    }
    o[w] = '\0';
    return o;
}

static cJSON *add_text(cJSON *obj, const char *key, const char *s, size_t n)
{
    char *t = utf8_clean(s ? s : "", s ? n : 0);
    cJSON *v = cJSON_AddStringToObject(obj, key, t ? t : "");
    free(t);
    return v;
}

char *out_error_json(const struct api_error *e)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "server_error");
    if (e->param[0])
        cJSON_AddStringToObject(err, "param", e->param);
    else
        cJSON_AddNullToObject(err, "param");
    if (e->code[0])
        cJSON_AddStringToObject(err, "code", e->code);
    else
        cJSON_AddNullToObject(err, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static cJSON *header(const struct server *srv, const struct job *j, const char *object)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", srv->model_name);
    cJSON_AddStringToObject(root, "system_fingerprint", "strix-" STRIX_VERSION);
    return root;
}

static int completion_tokens(const struct job *j)
{
    int n = 0;
    for (int i = 0; i < j->n_choices; i++)
        n += j->ch[i].n_gen;
    return n;
}

static void add_usage(cJSON *root, const struct job *j)
{
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    const int nc = completion_tokens(j);
    cJSON_AddNumberToObject(u, "prompt_tokens", j->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", nc);
    cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt + nc);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", j->n_cached);
}

static const char *finish_name(int f)
{
    return f == 1 ? "stop" : f == 2 ? "length" : NULL;
}

/* The completions API's logprobs object from a list of entries
 * {token, logprob, top: {token: logprob}}. */
static cJSON *completion_logprobs(const cJSON *entries, size_t offset0)
{
    cJSON *lp = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens");
    cJSON *tlp = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *top = cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON *off = cJSON_AddArrayToObject(lp, "text_offset");
    size_t o = offset0;
    const cJSON *e;
    cJSON_ArrayForEach(e, entries)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "token");
        cJSON_AddItemToArray(tokens, cJSON_CreateString(t->valuestring));
        cJSON_AddItemToArray(
            tlp, cJSON_CreateNumber(cJSON_GetObjectItemCaseSensitive(e, "logprob")->valuedouble));
        cJSON *m = cJSON_CreateObject();
        const cJSON *alt;
        cJSON_ArrayForEach(alt, cJSON_GetObjectItemCaseSensitive(e, "top_logprobs"))
        {
            const char *k = cJSON_GetObjectItemCaseSensitive(alt, "token")->valuestring;
            if (!cJSON_GetObjectItemCaseSensitive(m, k))
                cJSON_AddNumberToObject(
                    m, k, cJSON_GetObjectItemCaseSensitive(alt, "logprob")->valuedouble);
        }
        cJSON_AddItemToArray(top, m);
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)o));
        o += strlen(t->valuestring);
    }
    return lp;
}

static void add_logprobs(cJSON *choice, const struct job *j, const cJSON *entries, size_t off)
{
    if (!j->r.logprobs || !entries) {
        cJSON_AddNullToObject(choice, "logprobs");
        return;
    }
    if (j->r.kind == REQ_CHAT) {
        cJSON *lp = cJSON_AddObjectToObject(choice, "logprobs");
        cJSON_AddItemToObject(lp, "content", cJSON_Duplicate(entries, 1));
        cJSON_AddNullToObject(lp, "refusal");
    } else {
        cJSON_AddItemToObject(choice, "logprobs", completion_logprobs(entries, off));
    }
}

char *out_final(const struct server *srv, const struct job *j)
{
    const int chat = j->r.kind == REQ_CHAT;
    cJSON *root = header(srv, j, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    for (int i = 0; i < j->n_choices; i++) {
        const struct choice *c = &j->ch[i];
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", i);
        if (chat) {
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            add_text(msg, "content", c->text.p, c->text.n);
            cJSON_AddNullToObject(msg, "refusal");
        } else {
            add_text(ch, "text", c->text.p, c->text.n);
        }
        const cJSON *empty = NULL;
        cJSON *none = j->r.logprobs && !c->logprobs ? cJSON_CreateArray() : NULL;
        empty = c->logprobs ? c->logprobs : none;
        add_logprobs(ch, j, empty, 0);
        cJSON_Delete(none);
        const char *f = finish_name(c->finish);
        cJSON_AddStringToObject(ch, "finish_reason", f ? f : "length");
        cJSON_AddItemToArray(choices, ch);
    }
    add_usage(root, j);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

char *out_chunk(const struct server *srv, const struct job *j, const struct choice *c,
                const char *text, size_t n, int role)
{
    const int chat = j->r.kind == REQ_CHAT;
    cJSON *root = header(srv, j, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", c->index);
    /* the closing chunk: no text, the finish reason */
    const int closing = !role && n == 0 && c->finish && !c->step_lp;
    if (chat) {
        cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
        if (role) {
            cJSON_AddStringToObject(delta, "role", "assistant");
            cJSON_AddStringToObject(delta, "content", "");
        } else if (!closing) {
            add_text(delta, "content", text, n);
        }
    } else {
        add_text(ch, "text", text, n);
    }
    add_logprobs(ch, j, c->step_lp, c->n_sent);
    if (closing)
        cJSON_AddStringToObject(ch, "finish_reason", finish_name(c->finish));
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    if (j->r.include_usage)
        cJSON_AddNullToObject(root, "usage");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

char *out_usage_chunk(const struct server *srv, const struct job *j)
{
    cJSON *root =
        header(srv, j, j->r.kind == REQ_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(root, "choices");
    add_usage(root, j);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* {token, logprob, bytes} for one token after prev. */
static cJSON *token_entry(const struct server *srv, strix_token prev, strix_token tok, float lp)
{
    char buf[512];
    int len = strix_token_to_text(srv->model, prev, tok, buf, (int)sizeof buf);
    if (len < 0)
        len = 0;
    if (len > (int)sizeof buf)
        len = (int)sizeof buf;
    cJSON *e = cJSON_CreateObject();
    add_text(e, "token", buf, (size_t)len);
    cJSON_AddNumberToObject(e, "logprob", isfinite(lp) ? lp : -9999.0);
    cJSON *bytes = cJSON_AddArrayToObject(e, "bytes");
    for (int i = 0; i < len; i++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)buf[i]));
    return e;
}

void *out_logprob_entry(const struct server *srv, const struct job *j, strix_sampler *smp,
                        strix_token prev, strix_token tok)
{
    struct strix_token_prob chosen, top[20];
    const int cap = j->r.top_logprobs < 20 ? j->r.top_logprobs : 20;
    const int n_top = strix_sampler_last_probs(smp, &chosen, top, cap);
    cJSON *e = token_entry(srv, prev, tok, chosen.id == tok ? chosen.logprob : NAN);
    cJSON *alts = cJSON_AddArrayToObject(e, "top_logprobs");
    for (int i = 0; i < n_top; i++)
        cJSON_AddItemToArray(alts, token_entry(srv, prev, top[i].id, top[i].logprob));
    return e;
}
