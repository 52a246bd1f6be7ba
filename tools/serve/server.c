/*
 * server.c - `strix serve`: options, start-up, the HTTP side (libmicrohttpd,
 * one thread per connection), routing and the endpoints, and the drain on
 * SIGINT/SIGTERM. Generation requests become jobs for the scheduler thread
 * (sched.c); a connection thread waits on its job's condition variable and
 * sends what the scheduler wrote, watching its socket so that a client that
 * leaves cancels its job. Uses only the public header.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "../cli.h"
#include "serve.h"

double srv_now(void)
{
    return now();
}

enum { EP_CHAT, EP_COMPLETIONS, EP_MODELS, EP_TOKENIZE, EP_OTHER, EP_PAGE };

/* One HTTP request: its body as it arrives, and its job. */
struct conn {
    struct server *srv;
    struct MHD_Connection *mc;
    struct sbuf body;
    int too_large;
    struct job *job;
    size_t sent; /* bytes of job->out already handed to the library */
};

/* ---- responses ---- */

static void count_status(struct server *srv, unsigned status)
{
    pthread_mutex_lock(&srv->mu);
    if (status < 400)
        srv->m.responses_2xx++;
    else if (status < 500)
        srv->m.responses_4xx++;
    else
        srv->m.responses_5xx++;
    pthread_mutex_unlock(&srv->mu);
}

/* CORS, and how long an idle connection may be reused: half the server's
 * idle timeout, so that a client (even a slow one) never sends on a
 * connection the server is closing. */
static void add_common_headers(const struct server *srv, struct MHD_Response *r)
{
    char ka[32];
    snprintf(ka, sizeof ka, "timeout=%d", srv->timeout / 2 > 1 ? srv->timeout / 2 : 1);
    MHD_add_response_header(r, "Keep-Alive", ka);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
}

/* Queues body (malloc'd, taken) with this status and content type. */
static enum MHD_Result send_body(struct server *srv, struct MHD_Connection *c, unsigned status,
                                 char *body, const char *type)
{
    if (!body)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    add_common_headers(srv, r);
    const enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    count_status(srv, status);
    return rc;
}

static enum MHD_Result send_json(struct server *srv, struct MHD_Connection *c, unsigned status,
                                 cJSON *root)
{
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return send_body(srv, c, status, s, "application/json");
}

static enum MHD_Result send_error(struct server *srv, struct MHD_Connection *c,
                                  const struct api_error *e)
{
    return send_body(srv, c, (unsigned)e->status, out_error_json(e), "application/json");
}

static enum MHD_Result send_err(struct server *srv, struct MHD_Connection *c, int status,
                                const char *type, const char *code, const char *msg)
{
    struct api_error e;
    api_error_set(&e, status, type, "", code, "%s", msg);
    return send_error(srv, c, &e);
}

/* 1 if the client closed its end of the connection. */
static int client_gone(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 1;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Waits (srv->mu held) up to 100 ms for the job to move. */
static void wait_job(struct server *srv, struct job *j)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->cond, &srv->mu, &ts);
}

static void cancel_locked(struct server *srv, struct job *j)
{
    if (j->state != JOB_DONE) {
        j->cancel = 1;
        pthread_cond_broadcast(&srv->wake);
    }
}

/* Server-sent events: hands out what the scheduler wrote, as it comes. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct conn *cn = cls;
    struct server *srv = cn->srv;
    struct job *j = cn->job;
    pthread_mutex_lock(&srv->mu);
    for (;;) {
        if (cn->sent < j->out.n) {
            size_t k = j->out.n - cn->sent;
            if (k > max)
                k = max;
            memcpy(buf, j->out.p + cn->sent, k);
            cn->sent += k;
            pthread_mutex_unlock(&srv->mu);
            return (ssize_t)k;
        }
        if (j->state == JOB_DONE) {
            pthread_mutex_unlock(&srv->mu);
            return j->cancel ? MHD_CONTENT_READER_END_WITH_ERROR
                             : MHD_CONTENT_READER_END_OF_STREAM;
        }
        wait_job(srv, j);
        if (cn->sent == j->out.n && j->state != JOB_DONE && client_gone(cn->mc)) {
            cancel_locked(srv, j);
            pthread_mutex_unlock(&srv->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* ---- generation ---- */

/* Tokenizes without dying; NULL with *err set. */
static strix_token *tokenize_text(const struct server *srv, const char *text, int flags, int *n,
                                  struct api_error *err)
{
    const size_t len = strlen(text);
    int cap = (int)(len > (size_t)INT_MAX / 8 ? INT_MAX / 8 : len) + 8;
    strix_token *ids = malloc((size_t)cap * sizeof *ids);
    strix_error e;
    int rc = ids ? strix_tokenize_ex(srv->model, text, len, flags, ids, cap, n, &e)
                 : STRIX_ERR_NOMEM;
    if (rc == STRIX_ERR_ARG && *n > cap) {
        cap = *n;
        strix_token *p = realloc(ids, (size_t)cap * sizeof *ids);
        rc = p ? strix_tokenize_ex(srv->model, text, len, flags, p, cap, n, &e) : STRIX_ERR_NOMEM;
        ids = p ? p : ids;
    }
    if (rc) {
        free(ids);
        api_error_set(err, rc == STRIX_ERR_NOMEM ? 500 : 400,
                      rc == STRIX_ERR_NOMEM ? "server_error" : "invalid_request_error", "", "",
                      "cannot tokenize: %s", rc == STRIX_ERR_NOMEM ? "out of memory" : e.msg);
        return NULL;
    }
    return ids;
}

/* The prompt tokens of group g: the chat template applied to the messages,
 * or completion prompt g (text or ids); with echo, its text too. */
static int group_prompt(struct server *srv, struct job *j, int g, struct api_error *err)
{
    const struct req *r = &j->r;
    struct group *gr = &j->grp[g];
    const struct req_prompt *p = r->kind == REQ_COMPLETION ? &r->prompts[g] : NULL;
    if (p && p->ids) {
        gr->prompt = malloc((size_t)p->n_ids * sizeof *gr->prompt);
        if (!gr->prompt)
            return api_error_set(err, 500, "server_error", "", "", "out of memory");
        memcpy(gr->prompt, p->ids, (size_t)p->n_ids * sizeof *gr->prompt);
        gr->n_prompt = p->n_ids;
        if (r->echo) {
            /* the text the ids stand for */
            const int need = strix_detokenize(srv->model, p->ids, p->n_ids, NULL, 0);
            gr->echo = malloc((size_t)(need > 0 ? need : 0) + 1);
            if (!gr->echo)
                return api_error_set(err, 500, "server_error", "", "", "out of memory");
            strix_detokenize(srv->model, p->ids, p->n_ids, gr->echo, (size_t)need + 1);
            gr->n_echo = need > 0 ? (size_t)need : 0;
        }
        return 0;
    }
    char *text = NULL;
    int flags;
    if (r->kind == REQ_CHAT) {
        size_t need = 0;
        strix_error e;
        if (strix_chat_apply(srv->tmpl, r->msgs, (size_t)r->n_msg, 1, NULL, 0, &need, &e))
            return api_error_set(err, 400, "invalid_request_error", "messages", "", "%s", e.msg);
        text = malloc(need + 1);
        if (!text)
            return api_error_set(err, 500, "server_error", "", "", "out of memory");
        if (strix_chat_apply(srv->tmpl, r->msgs, (size_t)r->n_msg, 1, text, need + 1, NULL, &e)) {
            free(text);
            return api_error_set(err, 400, "invalid_request_error", "messages", "", "%s", e.msg);
        }
        flags = STRIX_TOKENIZE_PARSE_SPECIAL | (strix_vocab_add_bos(srv->model) ? 1 : 0);
    } else {
        /* as `strix run` reads a prompt */
        flags = strix_vocab_add_bos(srv->model) || (!*p->text && srv->bos >= 0)
                    ? STRIX_TOKENIZE_ADD_BOS
                    : 0;
        if (r->echo) {
            gr->n_echo = strlen(p->text);
            if (!(gr->echo = strdup(p->text)))
                return api_error_set(err, 500, "server_error", "", "", "out of memory");
        }
    }
    gr->prompt = tokenize_text(srv, text ? text : p->text, flags, &gr->n_prompt, err);
    free(text);
    if (!gr->prompt)
        return -1;
    /* a template that writes BOS itself: not twice */
    if (gr->n_prompt >= 2 && gr->prompt[0] == srv->bos && gr->prompt[1] == srv->bos) {
        memmove(gr->prompt, gr->prompt + 1, (size_t)(gr->n_prompt - 1) * sizeof *gr->prompt);
        gr->n_prompt--;
    }
    return 0;
}

static uint64_t random_seed(void)
{
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 31;
    return x * 0xbf58476d1ce4e5b9ULL;
}

/* Builds the job of a parsed request: prompt, choices and samplers. */
static int job_setup(struct server *srv, struct job *j, struct api_error *err)
{
    struct req *r = &j->r;
    if (r->model && strcmp(r->model, srv->model_name) != 0)
        return api_error_set(err, 404, "invalid_request_error", "model", "model_not_found",
                             "the model '%.200s' does not exist: this server runs '%.100s'",
                             r->model, srv->model_name);
    j->n_groups = r->kind == REQ_COMPLETION ? r->n_prompts : 1;
    j->per_group = r->best_of > r->n ? r->best_of : r->n;
    j->grp = calloc((size_t)j->n_groups, sizeof *j->grp);
    if (!j->grp)
        return api_error_set(err, 500, "server_error", "", "", "out of memory");
    if (r->n_skip_layers > 0) {
        if (!(j->skip = calloc((size_t)srv->n_layer, 1)))
            return api_error_set(err, 500, "server_error", "", "", "out of memory");
        for (int i = 0; i < r->n_skip_layers; i++)
            j->skip[r->skip_layers[i]] = 1;
    }
    j->n_choices = j->n_groups * j->per_group;
    j->ch = calloc((size_t)j->n_choices, sizeof *j->ch);
    if (!j->ch)
        return api_error_set(err, 500, "server_error", "", "", "out of memory");
    const uint64_t seed = r->has_seed ? r->seed : random_seed();
    for (int g = 0; g < j->n_groups; g++) {
        struct group *gr = &j->grp[g];
        if (group_prompt(srv, j, g, err))
            return -1;
        if (gr->n_prompt == 0)
            return api_error_set(err, 400, "invalid_request_error", "prompt", "",
                                 "the prompt is empty and the model has no BOS token");
        if (gr->n_prompt >= srv->n_ctx)
            return api_error_set(err, 400, "invalid_request_error",
                                 r->kind == REQ_CHAT ? "messages" : "prompt",
                                 "context_length_exceeded",
                                 "the prompt%s has %d tokens; this server's context holds %d (the "
                                 "prompt and at least one generated token)",
                                 j->n_groups > 1 ? " (one of them)" : "", gr->n_prompt,
                                 srv->n_ctx);
        gr->ch0 = g * j->per_group;
        if (r->echo && r->logprobs) {
            /* the prompt tokens' log-probabilities: the first has none */
            gr->echo_lp = cJSON_CreateArray();
            cJSON *e = out_prompt_entry(srv, j, NULL, -1, gr->prompt[0]);
            if (!gr->echo_lp || !e) {
                cJSON_Delete(e);
                return api_error_set(err, 500, "server_error", "", "", "out of memory");
            }
            cJSON_AddItemToArray(gr->echo_lp, e);
        }
        for (int i = 0; i < j->per_group; i++) {
            struct choice *c = &j->ch[gr->ch0 + i];
            /* prompt g's choice i is drawn as choice i of a request with
             * prompt g alone */
            c->index = g * r->n + i;
            c->group = g;
            c->slot = -1;
            c->pending = -1;
            c->off0 = gr->n_echo;
            c->prev = gr->prompt[gr->n_prompt - 1];
            struct strix_sampler_params sp = r->sp;
            sp.seed = seed + (uint64_t)i;
            sp.n_probs = r->logprobs ? (r->top_logprobs > 0 ? r->top_logprobs : 1)
                         : j->per_group > r->n ? 1
                                               : 0;
            strix_error e;
            if (strix_sampler_create(&sp, srv->n_vocab, &c->smp, &e))
                return api_error_set(err, 400, "invalid_request_error", "", "", "sampling: %s",
                                     e.msg);
            for (int t = 0; t < gr->n_prompt; t++)
                strix_sampler_accept(c->smp, gr->prompt[t]);
            if (r->json && !(c->json = json_state_new()))
                return api_error_set(err, 500, "server_error", "", "", "out of memory");
            if (r->spec_max > 0 && strix_draft_ngram_create(r->spec_ngram, &c->draft, &e))
                return api_error_set(err, 400, "invalid_request_error", "speculative", "",
                                     "speculative: %s", e.msg);
        }
    }
    static uint64_t serial;
    snprintf(j->id, sizeof j->id, "%s-%llx%04llx", r->kind == REQ_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL),
             (unsigned long long)__atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED));
    j->created = (long)time(NULL);
    return 0;
}

static void job_discard(struct job *j)
{
    for (int i = 0; i < j->n_choices; i++) {
        strix_sampler_free(j->ch[i].smp);
        json_state_free(j->ch[i].json);
    }
    free(j->ch);
    for (int g = 0; g < j->n_groups; g++) {
        free(j->grp[g].prompt);
        free(j->grp[g].echo);
        cJSON_Delete(j->grp[g].echo_lp);
    }
    free(j->grp);
    req_free(&j->r);
    pthread_cond_destroy(&j->cond);
    free(j);
}

static enum MHD_Result handle_generate(struct server *srv, struct conn *cn, int kind)
{
    struct MHD_Connection *c = cn->mc;
    struct api_error err;
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return send_err(srv, c, 500, "server_error", "", "out of memory");
    pthread_cond_init(&j->cond, NULL);
    j->t_arrive = srv_now();
    if (req_parse(cn->body.p ? cn->body.p : "", cn->body.n, kind, &srv->lim, &j->r, &err) ||
        job_setup(srv, j, &err) || sched_submit(srv, j, &err)) {
        job_discard(j);
        return send_error(srv, c, &err);
    }
    cn->job = j; /* the completion callback drops our reference */
    if (j->r.stream) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, cn, NULL);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        add_common_headers(srv, r);
        const enum MHD_Result rc = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        count_status(srv, 200);
        return rc;
    }
    pthread_mutex_lock(&srv->mu);
    while (j->state != JOB_DONE) {
        wait_job(srv, j);
        if (j->state != JOB_DONE && client_gone(c)) {
            cancel_locked(srv, j);
            pthread_mutex_unlock(&srv->mu);
            return MHD_NO;
        }
    }
    const int status = j->error ? 500 : j->cancel ? 503 : 200;
    char *body = j->out.p ? strdup(j->out.p) : NULL;
    pthread_mutex_unlock(&srv->mu);
    if (status == 503) {
        free(body);
        return send_err(srv, c, 503, "server_error", "shutting_down",
                        "the server shut down before the request ran");
    }
    return send_body(srv, c, (unsigned)status, body, "application/json");
}

/* ---- other endpoints ---- */

static enum MHD_Result handle_models(struct server *srv, struct conn *cn)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", srv->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "strix");
    cJSON *meta = cJSON_AddObjectToObject(m, "meta");
    cJSON_AddNumberToObject(meta, "n_vocab", srv->n_vocab);
    cJSON_AddNumberToObject(meta, "n_ctx", srv->n_ctx);
    cJSON_AddNumberToObject(meta, "n_parallel", srv->n_slots);
    cJSON_AddStringToObject(meta, "chat_template", srv->tmpl);
    cJSON_AddItemToArray(data, m);
    return send_json(srv, cn->mc, 200, root);
}

static enum MHD_Result handle_health(struct server *srv, struct conn *cn)
{
    pthread_mutex_lock(&srv->mu);
    const int draining = srv->draining, active = srv->n_active, queued = srv->n_queued;
    pthread_mutex_unlock(&srv->mu);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", draining ? "shutting down" : "ok");
    cJSON_AddNumberToObject(root, "requests_processing", active);
    cJSON_AddNumberToObject(root, "requests_queued", queued);
    return send_json(srv, cn->mc, draining ? 503 : 200, root);
}

/* POST /tokenize {"content": text, "add_special": bool, "parse_special": bool}
 * and POST /detokenize {"tokens": [ids]}. */
static enum MHD_Result handle_tokens(struct server *srv, struct conn *cn, int detok)
{
    struct api_error err;
    if (!req_utf8_valid(cn->body.p ? cn->body.p : "", cn->body.n))
        return send_err(srv, cn->mc, 400, "invalid_request_error", "invalid_utf8",
                        "the request body is not valid UTF-8");
    cJSON *in = cJSON_ParseWithLength(cn->body.p ? cn->body.p : "", cn->body.n);
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return send_err(srv, cn->mc, 400, "invalid_request_error", "invalid_json",
                        "the request body must be a JSON object");
    }
    cJSON *out = cJSON_CreateObject();
    if (!detok) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(in, "content");
        const cJSON *add = cJSON_GetObjectItemCaseSensitive(in, "add_special");
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(in, "parse_special");
        if (!cJSON_IsString(content)) {
            cJSON_Delete(in);
            cJSON_Delete(out);
            return send_err(srv, cn->mc, 400, "invalid_request_error", "invalid_type",
                            "'content' must be a string");
        }
        const int flags = (cJSON_IsTrue(add) ? STRIX_TOKENIZE_ADD_BOS : 0) |
                          (cJSON_IsTrue(special) ? STRIX_TOKENIZE_PARSE_SPECIAL : 0);
        int n = 0;
        strix_token *ids = tokenize_text(srv, content->valuestring, flags, &n, &err);
        cJSON_Delete(in);
        if (!ids) {
            cJSON_Delete(out);
            return send_error(srv, cn->mc, &err);
        }
        cJSON *arr = cJSON_AddArrayToObject(out, "tokens");
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
        free(ids);
        return send_json(srv, cn->mc, 200, out);
    }
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(in, "tokens");
    const int n = cJSON_IsArray(toks) ? cJSON_GetArraySize(toks) : -1;
    strix_token *ids = n >= 0 ? malloc(((size_t)n + 1) * sizeof *ids) : NULL;
    int ok = ids != NULL, k = 0;
    const cJSON *t;
    if (ok)
        cJSON_ArrayForEach(t, toks)
        {
            if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble >= srv->n_vocab ||
                t->valuedouble != (double)(int)t->valuedouble)
                ok = 0;
            else
                ids[k++] = (strix_token)t->valuedouble;
        }
    cJSON_Delete(in);
    if (!ok) {
        free(ids);
        cJSON_Delete(out);
        return send_err(srv, cn->mc, 400, "invalid_request_error", "invalid_value",
                        "'tokens' must be an array of token ids of this model");
    }
    const int len = strix_detokenize(srv->model, ids, k, NULL, 0);
    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (text)
        strix_detokenize(srv->model, ids, k, text, (size_t)len + 1);
    free(ids);
    cJSON_AddStringToObject(out, "content", text ? text : "");
    free(text);
    return send_json(srv, cn->mc, 200, out);
}

static int authorized(const struct server *srv, struct MHD_Connection *c)
{
    if (!srv->api_key)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *k = h + 7, *want = srv->api_key;
    const size_t nk = strlen(k), nw = strlen(want);
    unsigned diff = nk != nw;
    for (size_t i = 0; i < nw; i++)
        diff |= (unsigned)(want[i] ^ (i < nk ? k[i] : 0));
    return diff == 0;
}

static void count_request(struct server *srv, int ep)
{
    pthread_mutex_lock(&srv->mu);
    srv->m.requests[ep]++;
    pthread_mutex_unlock(&srv->mu);
}

static enum MHD_Result route(struct server *srv, struct conn *cn, const char *url,
                             const char *method)
{
    struct MHD_Connection *c = cn->mc;
    const int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    const int post = strcmp(method, "POST") == 0;
    if (strcmp(method, "OPTIONS") == 0) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        const enum MHD_Result rc = MHD_queue_response(c, 204, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strncmp(url, "/v1/", 4) == 0)
        url += 3; /* /v1/chat/completions and /chat/completions alike */
    static const struct {
        const char *path;
        int post, ep, open; /* open: no API key needed */
    } routes[] = {
        {"/chat/completions", 1, EP_CHAT, 0}, {"/completions", 1, EP_COMPLETIONS, 0},
        {"/models", 0, EP_MODELS, 0},         {"/tokenize", 1, EP_TOKENIZE, 0},
        {"/detokenize", 1, EP_TOKENIZE, 0},   {"/health", 0, EP_OTHER, 1},
        {"/metrics", 0, EP_OTHER, 0},         {"/", 0, EP_PAGE, 1},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].path) != 0)
            continue;
        count_request(srv, routes[i].ep);
        if (routes[i].post ? !post : !get)
            return send_err(srv, c, 405, "invalid_request_error", "method_not_allowed",
                            routes[i].post ? "use POST" : "use GET");
        if (!routes[i].open && !authorized(srv, c))
            return send_err(srv, c, 401, "invalid_request_error", "invalid_api_key",
                            "a valid API key is required: Authorization: Bearer KEY");
        switch (i) {
        case 0: return handle_generate(srv, cn, REQ_CHAT);
        case 1: return handle_generate(srv, cn, REQ_COMPLETION);
        case 2: return handle_models(srv, cn);
        case 3: return handle_tokens(srv, cn, 0);
        case 4: return handle_tokens(srv, cn, 1);
        case 5: return handle_health(srv, cn);
        case 6: return send_body(srv, c, 200, metrics_text(srv), "text/plain; version=0.0.4");
        default: {
            char *page = strdup(serve_page_html);
            return send_body(srv, c, 200, page, "text/html; charset=utf-8");
        }
        }
    }
    count_request(srv, EP_OTHER);
    return send_err(srv, c, 404, "invalid_request_error", "not_found", "no such endpoint");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct server *srv = cls;
    struct conn *cn = *con_cls;
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn)
            return MHD_NO;
        cn->srv = srv;
        cn->mc = c;
        *con_cls = cn;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->max_body) {
            cn->too_large = 1; /* answered now; the body is never read */
            return send_err(srv, c, 413, "invalid_request_error", "request_too_large",
                            "the request body is larger than this server accepts (--max-body)");
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!cn->too_large && cn->body.n + *upload_data_size > srv->max_body) {
            cn->too_large = 1;
            sbuf_free(&cn->body);
        }
        if (!cn->too_large && sbuf_add(&cn->body, upload_data, *upload_data_size))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cn->too_large)
        return send_err(srv, c, 413, "invalid_request_error", "request_too_large",
                        "the request body is larger than this server accepts (--max-body)");
    return route(srv, cn, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct server *srv = cls;
    struct conn *cn = *con_cls;
    if (!cn)
        return;
    if (cn->job) {
        pthread_mutex_lock(&srv->mu);
        cancel_locked(srv, cn->job);
        job_release_locked(srv, cn->job);
        pthread_mutex_unlock(&srv->mu);
    }
    sbuf_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

/* ---- start-up and shut-down ---- */

struct serve_opts {
    const char *model, *host, *api_key, *tmpl, *alias;
    int port, parallel, n_ctx, n_threads, n_batch, max_queue, timeout, drain;
    long max_body, step_delay_ms;
};

static void serve_parse(int argc, char **argv, struct serve_opts *o)
{
    *o = (struct serve_opts){.host = "127.0.0.1", .port = 8080, .parallel = 4, .n_batch = 256,
                             .max_queue = 64, .timeout = 30, .drain = 60,
                             .max_body = 8L << 20};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            usage("serve", stdout);
            exit(0);
        }
        if (i + 1 >= argc)
            die("serve: %s needs a value (see strix serve --help)", a);
        const char *v = argv[++i];
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0)
            o->model = v;
        else if (strcmp(a, "--host") == 0)
            o->host = v;
        else if (strcmp(a, "--port") == 0)
            o->port = (int)parse_long(a, v, 0, 65535);
        else if (strcmp(a, "--parallel") == 0 || strcmp(a, "-np") == 0)
            o->parallel = (int)parse_long(a, v, 1, STRIX_SEQ_MAX);
        else if (strcmp(a, "-c") == 0 || strcmp(a, "--ctx-size") == 0)
            o->n_ctx = (int)parse_long(a, v, 0, 1 << 20);
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0)
            o->n_threads = (int)parse_long(a, v, 0, 1024);
        else if (strcmp(a, "-b") == 0 || strcmp(a, "--batch") == 0)
            o->n_batch = (int)parse_long(a, v, 1, 8192);
        else if (strcmp(a, "--api-key") == 0)
            o->api_key = v;
        else if (strcmp(a, "--chat-template") == 0)
            o->tmpl = v;
        else if (strcmp(a, "--alias") == 0)
            o->alias = v;
        else if (strcmp(a, "--queue") == 0)
            o->max_queue = (int)parse_long(a, v, 0, 1 << 20);
        else if (strcmp(a, "--max-body") == 0)
            o->max_body = parse_long(a, v, 1024, 1L << 32);
        else if (strcmp(a, "--timeout") == 0)
            o->timeout = (int)parse_long(a, v, 1, 86400);
        else if (strcmp(a, "--drain-timeout") == 0)
            o->drain = (int)parse_long(a, v, 0, 86400);
        else if (strcmp(a, "--step-delay-ms") == 0) /* debugging and tests: slow steps */
            o->step_delay_ms = parse_long(a, v, 0, 1000);
        else
            die("serve: unknown option '%s' (see strix serve --help)", a);
    }
    if (!o->model)
        o->model = default_model();
}

/* The chat template: --chat-template, else the model's, else "plain". */
static const char *pick_template(const strix_model *m, const char *given)
{
    if (given) {
        const char *t = strix_chat_template_detect(given);
        if (!t)
            die("serve: unknown chat template '%s'", given);
        return t;
    }
    char probe[1];
    const int n = strix_model_meta_str(m, "tokenizer.chat_template", probe, sizeof probe);
    if (n > 0) {
        char *s = malloc((size_t)n + 1);
        if (!s)
            die("out of memory");
        strix_model_meta_str(m, "tokenizer.chat_template", s, (size_t)n + 1);
        const char *t = strix_chat_template_detect(s);
        free(s);
        if (t)
            return t;
        fprintf(stderr, "strix serve: the model's chat template is not one strix knows; "
                        "using \"plain\" (--chat-template NAME chooses one)\n");
    }
    return "plain";
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int cmd_serve(int argc, char **argv)
{
    struct serve_opts o;
    serve_parse(argc, argv, &o);
    /* signals: SIGINT and SIGTERM are taken by sigwait below, in this thread
     * only (the threads started after this inherit the mask) */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct server srv_;
    struct server *srv = &srv_;
    strix_error err;
    if (strix_pool_create(o.n_threads, &srv->pool, &err))
        die("%s", err.msg);
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = o.n_ctx;
    cp.n_batch = o.n_batch;
    cp.n_seq_max = o.parallel;
    cp.pool = srv->pool;
    if (serve_open_hook) { /* strix-mpi: rank 0's pipeline stage (cli.h) */
        if (serve_open_hook(o.model, &cp, &srv->model, &srv->ctx, &err))
            die("%s", err.msg);
    } else {
        struct strix_model_params mp = strix_model_default_params();
        if (strix_model_load(o.model, &mp, &srv->model, &err))
            die("%s", err.msg);
        if (strix_context_create(srv->model, &cp, &srv->ctx, &err))
            die("%s", err.msg);
    }
    srv->model_name = o.alias ? o.alias : base_name(o.model);
    srv->tmpl = pick_template(srv->model, o.tmpl);
    srv->tmpl_end = strix_chat_template_end(srv->tmpl);
    srv->api_key = o.api_key;
    srv->n_ctx = strix_context_n_ctx(srv->ctx);
    srv->n_vocab = strix_vocab_size(srv->model);
    srv->n_slots = o.parallel;
    srv->n_batch = o.n_batch;
    struct strix_model_info mi = {.struct_size = sizeof mi};
    if (strix_model_get_info(srv->model, &mi))
        die("serve: cannot read the model's shape");
    srv->n_layer = mi.n_layer;
    srv->step_delay_ms = o.step_delay_ms;
    srv->max_queue = o.max_queue;
    srv->timeout = o.timeout;
    srv->max_body = (size_t)o.max_body;
    srv->bos = strix_token_bos(srv->model);
    srv->eos = strix_token_eos(srv->model);
    req_limits_default(&srv->lim);
    srv->lim.n_vocab = srv->n_vocab;
    srv->lim.max_n = o.parallel;
    srv->lim.n_layer = srv->n_layer;
    srv->json_vocab = json_vocab_new(srv->model);
    srv->mask_buf = malloc((size_t)srv->n_vocab * sizeof *srv->mask_buf);
    if (!srv->json_vocab || !srv->mask_buf)
        die("out of memory");
    srv->t_start = srv_now();
    static const double t_le[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    static const double b_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048};
    hist_init(&srv->m.ttft, t_le, 12);
    hist_init(&srv->m.latency, t_le, 12);
    hist_init(&srv->m.batch_tokens, b_le, 12);
    hist_init(&srv->m.batch_seqs, b_le, 8);
    srv->slots = calloc((size_t)o.parallel, sizeof *srv->slots);
    for (int s = 0; srv->slots && s < o.parallel; s++)
        if (!(srv->slots[s].toks = malloc((size_t)srv->n_ctx * sizeof(strix_token))) ||
            !(srv->slots[s].skip = calloc((size_t)srv->n_layer, 1)))
            die("out of memory");
    if (!srv->slots)
        die("out of memory");
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->wake, NULL);
    pthread_t sched;
    if (pthread_create(&sched, NULL, sched_main, srv))
        die("serve: cannot start the scheduler thread");

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o.port);
    if (getaddrinfo(o.host, port, &hints, &ai) || !ai)
        die("serve: cannot resolve host '%s'", o.host);
    /* (no MHD_USE_ERROR_LOG: a client that leaves is not worth a line) */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)o.port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o.timeout, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)512, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d)
        die("serve: cannot listen on %s:%d: %s", o.host, o.port, strerror(errno));
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr,
            "strix serve: model %s (%s), context %d, %d parallel, chat template %s\n"
            "strix serve: listening on http://%s:%u\n",
            srv->model_name, o.model, srv->n_ctx, o.parallel, srv->tmpl, o.host,
            di ? di->port : (unsigned)o.port);
    fflush(stderr);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "strix serve: %s: finishing the requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* drain: no new jobs; wait (bounded) for the running and queued ones to
     * end and their clients to have the whole answer */
    pthread_mutex_lock(&srv->mu);
    srv->draining = 1;
    const double deadline = srv_now() + o.drain;
    while (srv->n_live > 0 && srv_now() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->wake, &srv->mu, &ts);
    }
    const int left = srv->n_live;
    srv->quit = 1;
    pthread_cond_broadcast(&srv->wake);
    pthread_mutex_unlock(&srv->mu);
    pthread_join(sched, NULL);
    MHD_stop_daemon(d);
    fprintf(stderr, "strix serve: stopped%s\n", left ? " (some requests were cut)" : "");
    for (int s = 0; s < o.parallel; s++) {
        free(srv->slots[s].toks);
        free(srv->slots[s].skip);
    }
    free(srv->slots);
    pthread_cond_destroy(&srv->wake);
    pthread_mutex_destroy(&srv->mu);
    json_vocab_free(srv->json_vocab);
    free(srv->mask_buf);
    strix_context_free(srv->ctx);
    strix_pool_free(srv->pool);
    strix_model_free(srv->model);
    return 0;
}
