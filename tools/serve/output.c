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

/* Usage of the whole request: every prompt, every candidate generated. */
static void add_usage(cJSON *root, const struct job *j)
{
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    const int nc = completion_tokens(j);
    int np = 0, cached = 0;
    for (int g = 0; g < j->n_groups; g++)
        np += j->grp[g].n_prompt, cached += j->grp[g].n_cached;
    cJSON_AddNumberToObject(u, "prompt_tokens", np);
    cJSON_AddNumberToObject(u, "completion_tokens", nc);
    cJSON_AddNumberToObject(u, "total_tokens", np + nc);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", cached);
    if (j->r.spec_max > 0) {
        /* speculative: OpenAI's fields for predicted tokens */
        cJSON *cd = cJSON_AddObjectToObject(u, "completion_tokens_details");
        cJSON_AddNumberToObject(cd, "accepted_prediction_tokens", j->spec_accepted);
        cJSON_AddNumberToObject(cd, "rejected_prediction_tokens",
                                j->spec_drafted - j->spec_accepted);
    }
}

static const char *finish_name(int f)
{
    return f == 1 ? "stop" : f == 2 ? "length" : NULL;
}

/* Appends one list of entries {token, logprob, top_logprobs: [...]} to the
 * completions API's four arrays (a null logprob and no top_logprobs: a
 * first prompt token, whose top_logprobs is null too). */
static void completion_entries(cJSON *lp, const cJSON *entries, size_t *o)
{
    cJSON *tokens = cJSON_GetObjectItemCaseSensitive(lp, "tokens");
    cJSON *tlp = cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs");
    cJSON *top = cJSON_GetObjectItemCaseSensitive(lp, "top_logprobs");
    cJSON *off = cJSON_GetObjectItemCaseSensitive(lp, "text_offset");
    const cJSON *e;
    cJSON_ArrayForEach(e, entries)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "token");
        cJSON_AddItemToArray(tokens, cJSON_CreateString(t->valuestring));
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "logprob");
        cJSON_AddItemToArray(tlp, cJSON_IsNumber(v) ? cJSON_CreateNumber(v->valuedouble)
                                                    : cJSON_CreateNull());
        const cJSON *alts = cJSON_GetObjectItemCaseSensitive(e, "top_logprobs");
        if (!alts) {
            cJSON_AddItemToArray(top, cJSON_CreateNull());
        } else {
            cJSON *m = cJSON_CreateObject();
            const cJSON *alt;
            cJSON_ArrayForEach(alt, alts)
            {
                const char *k = cJSON_GetObjectItemCaseSensitive(alt, "token")->valuestring;
                if (!cJSON_GetObjectItemCaseSensitive(m, k))
                    cJSON_AddNumberToObject(
                        m, k, cJSON_GetObjectItemCaseSensitive(alt, "logprob")->valuedouble);
            }
            cJSON_AddItemToArray(top, m);
        }
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)*o));
        *o += strlen(t->valuestring);
    }
}

/* The completions API's logprobs object: the entries of `first` (the
 * echoed prompt's, or NULL), then those of `entries`, offsets from o. */
static cJSON *completion_logprobs(const cJSON *first, const cJSON *entries, size_t o)
{
    cJSON *lp = cJSON_CreateObject();
    cJSON_AddArrayToObject(lp, "tokens");
    cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON_AddArrayToObject(lp, "text_offset");
    if (first)
        completion_entries(lp, first, &o);
    if (entries)
        completion_entries(lp, entries, &o);
    return lp;
}

static void add_logprobs(cJSON *choice, const struct job *j, const cJSON *first,
                         const cJSON *entries, size_t off)
{
    if (!j->r.logprobs || (!first && !entries)) {
        cJSON_AddNullToObject(choice, "logprobs");
        return;
    }
    if (j->r.kind == REQ_CHAT) {
        cJSON *lp = cJSON_AddObjectToObject(choice, "logprobs");
        cJSON_AddItemToObject(lp, "content",
                              entries ? cJSON_Duplicate(entries, 1) : cJSON_CreateArray());
        cJSON_AddNullToObject(lp, "refusal");
    } else {
        cJSON_AddItemToObject(choice, "logprobs", completion_logprobs(first, entries, off));
    }
}

/* Mean log-probability of a candidate's tokens (best_of ranks by it). */
static double mean_lp(const struct choice *c)
{
    return c->n_gen > 0 ? c->sum_lp / c->n_gen : 0;
}

char *out_final(const struct server *srv, const struct job *j)
{
    const int chat = j->r.kind == REQ_CHAT;
    const int n = j->r.n;
    cJSON *root = header(srv, j, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    for (int g = 0; g < j->n_groups; g++) {
        const struct group *gr = &j->grp[g];
        /* the group's candidates, best first when there are more than n
         * (a stable order: the earlier candidate wins a tie) */
        int order[64];
        const int m = j->per_group < 64 ? j->per_group : 64;
        for (int k = 0; k < m; k++) {
            int at = k;
            while (at > 0 && j->per_group > n &&
                   mean_lp(&j->ch[gr->ch0 + order[at - 1]]) < mean_lp(&j->ch[gr->ch0 + k])) {
                order[at] = order[at - 1];
                at--;
            }
            order[at] = k;
        }
        for (int k = 0; k < n && k < m; k++) {
            const struct choice *c = &j->ch[gr->ch0 + order[k]];
            cJSON *ch = cJSON_CreateObject();
            cJSON_AddNumberToObject(ch, "index", g * n + k);
            if (chat) {
                cJSON *msg = cJSON_AddObjectToObject(ch, "message");
                cJSON_AddStringToObject(msg, "role", "assistant");
                add_text(msg, "content", c->text.p, c->text.n);
                cJSON_AddNullToObject(msg, "refusal");
            } else if (gr->n_echo > 0) {
                char *t = malloc(gr->n_echo + c->text.n + 1);
                if (t) {
                    memcpy(t, gr->echo, gr->n_echo);
                    if (c->text.n)
                        memcpy(t + gr->n_echo, c->text.p, c->text.n);
                }
                add_text(ch, "text", t, t ? gr->n_echo + c->text.n : 0);
                free(t);
            } else {
                add_text(ch, "text", c->text.p, c->text.n);
            }
            cJSON *none = j->r.logprobs && !c->logprobs ? cJSON_CreateArray() : NULL;
            add_logprobs(ch, j, gr->echo_lp, c->logprobs ? c->logprobs : none, 0);
            cJSON_Delete(none);
            const char *f = finish_name(c->finish);
            cJSON_AddStringToObject(ch, "finish_reason", f ? f : "length");
            cJSON_AddItemToArray(choices, ch);
        }
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
    add_logprobs(ch, j, NULL, c->step_lp, c->off0 + c->n_sent);
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

void *out_prompt_entry(const struct server *srv, const struct job *j, const float *logits,
                       strix_token prev, strix_token tok)
{
    if (!logits) {
        char buf[512];
        int len = strix_token_to_text(srv->model, prev, tok, buf, (int)sizeof buf);
        len = len < 0 ? 0 : len > (int)sizeof buf ? (int)sizeof buf : len;
        cJSON *e = cJSON_CreateObject();
        add_text(e, "token", buf, (size_t)len);
        cJSON_AddNullToObject(e, "logprob");
        return e;
    }
    /* log-softmax of the raw logits, and the top_logprobs best tokens */
    const int nv = srv->n_vocab;
    float mx = -INFINITY;
    for (int i = 0; i < nv; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0;
    for (int i = 0; i < nv; i++)
        sum += exp((double)logits[i] - mx);
    const double lse = mx + log(sum);
    const int k = j->r.top_logprobs < 20 ? j->r.top_logprobs : 20;
    strix_token top[20];
    int n_top = 0;
    for (int i = 0; i < nv; i++) {
        if (n_top == k && (k == 0 || logits[i] <= logits[top[k - 1]]))
            continue;
        int at = n_top < k ? n_top++ : k - 1;
        while (at > 0 && logits[top[at - 1]] < logits[i]) {
            top[at] = top[at - 1];
            at--;
        }
        top[at] = i;
    }
    cJSON *e = token_entry(srv, prev, tok, (float)(logits[tok] - lse));
    cJSON *alts = cJSON_AddArrayToObject(e, "top_logprobs");
    for (int i = 0; i < n_top; i++)
        cJSON_AddItemToArray(alts, token_entry(srv, prev, top[i], (float)(logits[top[i]] - lse)));
    return e;
}
