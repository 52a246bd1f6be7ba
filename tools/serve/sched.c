/*
 * sched.c - the scheduler thread of `strix serve`: continuous batching.
 *
 * Each step builds one batch over every active job: the token each running
 * choice sampled last step (one row each, with logits), then chunks of the
 * prompts still being read, up to n_batch rows in all, so a long prompt is
 * read over several steps while running streams keep getting a token per
 * step. One strix_decode_batch runs it; then every row with logits is
 * sampled, stop strings and budgets are checked, and the new text goes to
 * the job's output under srv->mu. Jobs join from the queue between steps
 * when enough slots (sequences of the cache) are free, and leave as soon as
 * they finish or their client goes away.
 *
 * Prefix sharing: a slot remembers the tokens its sequence holds. A new job
 * takes the longest common prefix of its prompt held by any slot (running or
 * idle): in place when that slot is free, or shared with strix_kv_seq_cp
 * (no copy of keys or values), and reads only the rest. The choices of a
 * request with n > 1 share its prompt the same way. Only sequences that
 * skipped the same layers (skip_layers) share: a prefix read with other
 * layers holds other keys and values.
 *
 * skip_layers: each slot's mask is set on the context
 * (strix_context_set_seq_layer_skip) when a group takes it; the context's
 * masks are turned on with the first request that has one (until then no
 * decode goes through the per-layer gather).
 *
 * Several prompts (completions with an array of prompts): each prompt is a
 * group of choices (best_of candidates, n without best_of) that starts when
 * enough slots are free, groups of running jobs first, and frees its slots
 * as soon as its choices have finished; the job answers when every group
 * has. A group's choices never see another group's, so each prompt gets the
 * answer it would get alone.
 *
 * Only this thread touches the context, the samplers and the choices.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "serve.h"
#include "spec_draw.h"

#include "../cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

int sbuf_add(struct sbuf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

void sbuf_free(struct sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void job_free(struct job *j)
{
    for (int i = 0; i < j->n_choices; i++) {
        strix_sampler_free(j->ch[i].smp);
        sbuf_free(&j->ch[i].text);
        cJSON_Delete(j->ch[i].logprobs);
        cJSON_Delete(j->ch[i].step_lp);
        json_state_free(j->ch[i].json);
        strix_draft_free(j->ch[i].draft);
    }
    free(j->ch);
    for (int g = 0; g < j->n_groups; g++) {
        free(j->grp[g].prompt);
        free(j->grp[g].echo);
        cJSON_Delete(j->grp[g].echo_lp);
    }
    free(j->grp);
    req_free(&j->r);
    free(j->skip);
    sbuf_free(&j->out);
    pthread_cond_destroy(&j->cond);
    free(j);
}

void job_release_locked(struct server *srv, struct job *j)
{
    if (--j->refs > 0)
        return;
    job_free(j);
    srv->n_live--;
    pthread_cond_broadcast(&srv->wake);
}

int sched_submit(struct server *srv, struct job *j, struct api_error *err)
{
    pthread_mutex_lock(&srv->mu);
    int rc = 0;
    if (srv->draining)
        rc = api_error_set(err, 503, "server_error", "", "shutting_down",
                           "the server is shutting down");
    else if (srv->n_queued >= srv->max_queue)
        rc = api_error_set(err, 503, "server_error", "", "queue_full",
                           "the server is busy: %d requests are waiting; retry later",
                           srv->n_queued);
    else if (j->per_group > srv->n_slots)
        rc = api_error_set(err, 400, "invalid_request_error",
                           j->r.best_of > j->r.n ? "best_of" : "n", "invalid_value",
                           "'%s' is %d; this server runs at most %d sequences (--parallel)",
                           j->r.best_of > j->r.n ? "best_of" : "n", j->per_group, srv->n_slots);
    if (rc == 0) {
        j->refs = 2;
        j->state = JOB_QUEUED;
        j->next = NULL;
        if (srv->queue_tail)
            srv->queue_tail->next = j;
        else
            srv->queue = j;
        srv->queue_tail = j;
        srv->n_queued++;
        srv->n_live++;
        pthread_cond_broadcast(&srv->wake);
    }
    pthread_mutex_unlock(&srv->mu);
    return rc;
}

static int common_prefix(const strix_token *a, int na, const strix_token *b, int nb)
{
    int n = 0;
    while (n < na && n < nb && a[n] == b[n])
        n++;
    return n;
}

/* A free slot other than `not`, the one holding the fewest tokens (the
 * least worth keeping); -1 if none. */
static int free_slot(const struct server *srv, int not)
{
    int best = -1;
    for (int s = 0; s < srv->n_slots; s++)
        if (!srv->slots[s].job && s != not &&
            (best < 0 || srv->slots[s].n_toks < srv->slots[best].n_toks))
            best = s;
    return best;
}

/* Whether a slot's mask equals a job's (NULL: none). */
static int same_skip(const struct server *srv, const uint8_t *slot, const uint8_t *job)
{
    for (int l = 0; l < srv->n_layer; l++)
        if (slot[l] != (job ? job[l] : 0))
            return 0;
    return 1;
}

static void slot_clear(struct server *srv, int s)
{
    strix_kv_seq_rm(srv->ctx, s, 0, -1);
    srv->slots[s].n_toks = 0;
}

/* Gives group g of job j its slots and the longest cached prefix of its
 * prompt (none when the prompt's own log-probabilities are wanted: they need
 * the logits of every prompt token). */
static void group_start(struct server *srv, struct job *j, int g)
{
    struct group *gr = &j->grp[g];
    int src = -1, best = 0;
    const int reuse = !gr->echo_lp;
    for (int s = 0; s < srv->n_slots && reuse; s++) {
        if (!same_skip(srv, srv->slots[s].skip, j->skip))
            continue;
        const int l =
            common_prefix(srv->slots[s].toks, srv->slots[s].n_toks, gr->prompt, gr->n_prompt);
        if (l > best || (l == best && l > 0 && !srv->slots[s].job))
            best = l, src = s;
    }
    if (best > gr->n_prompt - 1)
        best = gr->n_prompt - 1; /* the last prompt token is read again for its logits */
    int dst = (src >= 0 && !srv->slots[src].job) ? src : free_slot(srv, -1);
    if (dst == src && best > 0) {
        strix_kv_seq_rm(srv->ctx, dst, best, -1);
        srv->slots[dst].n_toks = best;
    } else {
        slot_clear(srv, dst);
        if (best > 0 && strix_kv_seq_cp(srv->ctx, src, dst, 0, best) == STRIX_OK) {
            memcpy(srv->slots[dst].toks, gr->prompt, (size_t)best * sizeof *gr->prompt);
            srv->slots[dst].n_toks = best;
        } else {
            best = 0;
        }
    }
    srv->slots[dst].job = j;
    j->ch[gr->ch0].slot = dst;
    for (int i = 1; i < j->per_group; i++) {
        const int s = free_slot(srv, -1);
        slot_clear(srv, s);
        srv->slots[s].job = j;
        j->ch[gr->ch0 + i].slot = s;
    }
    for (int i = 0; i < j->per_group; i++) {
        const int s = j->ch[gr->ch0 + i].slot;
        if (j->skip)
            memcpy(srv->slots[s].skip, j->skip, (size_t)srv->n_layer);
        else
            memset(srv->slots[s].skip, 0, (size_t)srv->n_layer);
        if (srv->skip_on) /* (cannot fail once on: no allocation, s in range) */
            strix_context_set_seq_layer_skip(srv->ctx, s, j->skip, NULL);
    }
    gr->n_past = gr->n_cached = best;
    gr->state = JOB_PROMPT;
    srv->m.cached_tokens += (uint64_t)best;
    srv->m.prompt_tokens += (uint64_t)gr->n_prompt;
}

static int n_free_slots(const struct server *srv)
{
    int n = 0;
    for (int s = 0; s < srv->n_slots; s++)
        n += !srv->slots[s].job;
    return n;
}

/* Starts j's waiting groups, in order, while slots last; 1 if all started. */
static int start_groups(struct server *srv, struct job *j)
{
    for (int g = 0; g < j->n_groups; g++) {
        if (j->grp[g].state != JOB_QUEUED)
            continue;
        if (n_free_slots(srv) < j->per_group)
            return 0;
        group_start(srv, j, g);
    }
    return 1;
}

static void emit_locked(struct job *j, char *json);

/* srv->mu held: j's output becomes a server error (a streamed one as its
 * last event). */
static void fail_body_locked(struct job *j, const char *msg)
{
    struct api_error e;
    api_error_set(&e, 500, "server_error", "", "decode_failed", "generation failed: %s", msg);
    char *body = out_error_json(&e);
    j->error = 1;
    if (j->r.stream)
        emit_locked(j, body);
    else if (body) {
        j->out.n = 0;
        sbuf_add(&j->out, body, strlen(body));
        free(body);
    }
}

/* srv->mu held: queued jobs whose client left are dropped; the waiting
 * groups of running jobs start; then queued jobs join in order while slots
 * last (a job joins when its first group can start). */
static void admit(struct server *srv)
{
    for (struct job **pp = &srv->queue; *pp;) {
        struct job *j = *pp;
        if (j->cancel) {
            *pp = j->next;
            srv->n_queued--;
            srv->m.cancelled++;
            j->state = JOB_DONE;
            job_release_locked(srv, j);
            continue;
        }
        pp = &j->next;
    }
    srv->queue_tail = NULL;
    for (struct job *j = srv->queue; j; j = j->next)
        srv->queue_tail = j;
    for (struct job *j = srv->active; j; j = j->next)
        if (!start_groups(srv, j))
            return; /* running jobs first */
    while (srv->queue && n_free_slots(srv) >= srv->queue->per_group) {
        struct job *j = srv->queue;
        srv->queue = j->next;
        if (!srv->queue)
            srv->queue_tail = NULL;
        srv->n_queued--;
        if (j->skip && !srv->skip_on) {
            /* the first request with skip_layers: the context's masks (all
             * sequences' empty) are made once */
            strix_error e;
            const uint8_t *none = srv->slots[0].skip; /* all 0: no slot has had a mask */
            if (strix_context_set_seq_layer_skip(srv->ctx, 0, none, &e) == STRIX_OK) {
                srv->skip_on = 1;
            } else {
                fail_body_locked(j, e.msg);
                j->state = JOB_DONE;
                j->t_end = srv_now();
                pthread_cond_broadcast(&j->cond);
                job_release_locked(srv, j);
                continue;
            }
        }
        j->state = JOB_GEN;
        start_groups(srv, j);
        j->next = NULL;
        struct job **tail = &srv->active;
        while (*tail)
            tail = &(*tail)->next;
        *tail = j;
        srv->n_active++;
    }
}

/* srv->mu held: group g's choices have all finished; its slots become free
 * (their cache kept for prefixes). */
static void group_end(struct server *srv, struct job *j, int g)
{
    struct group *gr = &j->grp[g];
    for (int i = 0; i < j->per_group; i++) {
        struct choice *c = &j->ch[gr->ch0 + i];
        if (c->slot >= 0 && srv->slots[c->slot].job == j)
            srv->slots[c->slot].job = NULL;
        c->slot = -1;
    }
    gr->state = JOB_DONE;
}

/* srv->mu held: j leaves the active list; its slots become free (a
 * cancelled job's cache is dropped, a finished one's kept for prefixes). */
static void job_end(struct server *srv, struct job *j)
{
    for (struct job **pp = &srv->active; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    srv->n_active--;
    for (int i = 0; i < j->n_choices; i++) {
        const int s = j->ch[i].slot;
        if (s < 0 || srv->slots[s].job != j)
            continue;
        srv->slots[s].job = NULL;
        if (j->cancel || j->error)
            slot_clear(srv, s);
    }
    j->state = JOB_DONE;
    j->t_end = srv_now();
    if (j->cancel)
        srv->m.cancelled++;
    else if (!j->error)
        hist_add(&srv->m.latency, j->t_end - j->t_arrive);
    pthread_cond_broadcast(&j->cond);
    job_release_locked(srv, j);
}

/* Appends a streamed chunk to the job's output (srv->mu held). */
static void emit_locked(struct job *j, char *json)
{
    if (!json)
        return;
    sbuf_add(&j->out, "data: ", 6);
    sbuf_add(&j->out, json, strlen(json));
    sbuf_add(&j->out, "\n\n", 2);
    free(json);
}

/* After a token: the text choice c may show now, streamed (srv->mu held). */
static void stream_step_locked(struct server *srv, struct job *j, struct choice *c, size_t upto)
{
    const int has_lp = c->step_lp && cJSON_GetArraySize(c->step_lp) > 0;
    if (upto > c->n_sent || has_lp)
        emit_locked(j, out_chunk(srv, j, c, c->text.p + c->n_sent, upto - c->n_sent, 0));
    c->n_sent = upto;
    if (c->step_lp) {
        cJSON_Delete(c->step_lp);
        c->step_lp = NULL;
    }
    if (c->finish)
        emit_locked(j, out_chunk(srv, j, c, "", 0, 0));
}

/* The text of tok after prev, appended to b; its length (0: none). */
static int append_piece(const struct server *srv, struct sbuf *b, strix_token prev,
                        strix_token tok)
{
    const int len = strix_token_to_text(srv->model, prev, tok, NULL, 0);
    if (len <= 0)
        return 0;
    const size_t at = b->n;
    char tmp[256];
    char *p = len <= (int)sizeof tmp ? tmp : malloc((size_t)len);
    if (!p)
        return 0;
    strix_token_to_text(srv->model, prev, tok, p, len);
    const int rc = sbuf_add(b, p, (size_t)len);
    if (p != tmp)
        free(p);
    return rc == 0 && b->n == at + (size_t)len ? len : 0;
}

/* Streams the echoed prompt of choice c (its text, and its tokens'
 * log-probabilities when asked for) before its first token (srv->mu held). */
static void emit_echo_locked(struct server *srv, struct job *j, struct choice *c,
                             const struct group *gr)
{
    c->step_lp = gr->echo_lp ? cJSON_Duplicate(gr->echo_lp, 1) : NULL;
    const size_t off0 = c->off0;
    c->off0 = 0;
    emit_locked(j, out_chunk(srv, j, c, gr->echo ? gr->echo : "", gr->n_echo, 0));
    c->off0 = off0;
    cJSON_Delete(c->step_lp);
    c->step_lp = NULL;
}

/* Samples choice c of job j from logits (or takes `forced`, >= 0, drawn by
 * the speculative test) and decides what it shows; the streamed text goes
 * out under the lock. Returns the token. */
static strix_token choice_sample(struct server *srv, struct job *j, struct choice *c,
                                 const float *logits, strix_token forced)
{
    const struct req *r = &j->r;
    if (c->json) {
        /* response_format json_object: only tokens that keep the text a
         * prefix of an object that can still be closed in the budget */
        int budget = srv->n_ctx - srv->slots[c->slot].n_toks;
        if (r->max_tokens >= 0 && r->max_tokens - c->n_gen < budget)
            budget = r->max_tokens - c->n_gen;
        memcpy(srv->mask_buf, logits, (size_t)srv->n_vocab * sizeof *logits);
        json_mask(c->json, srv->json_vocab, srv->mask_buf, budget);
        logits = srv->mask_buf;
    }
    const strix_token tok = forced >= 0 ? forced : strix_sampler_sample(c->smp, logits);
    c->n_gen++;
    if (j->per_group > r->n) {
        /* best_of: the candidates are ranked by mean log-probability */
        struct strix_token_prob chosen;
        strix_sampler_last_probs(c->smp, &chosen, NULL, 0);
        if (chosen.id == tok && tok >= 0)
            c->sum_lp += isfinite(chosen.logprob) ? chosen.logprob : -1e4;
    }
    size_t upto;
    const size_t at = c->text.n;
    int len = 0;
    if (tok >= 0 && !(tok == srv->eos && !r->ignore_eos) &&
        !(r->stop_at_bos && tok == srv->bos && !r->ignore_eos))
        len = append_piece(srv, &c->text, c->prev, tok);
    if (tok < 0 || (tok == srv->eos && !r->ignore_eos) ||
        (r->stop_at_bos && tok == srv->bos && !r->ignore_eos) ||
        (c->json && json_feed(c->json, len ? c->text.p + at : "", (size_t)len))) {
        /* the end (or, with every token masked, no token that fits) */
        c->text.n = at;
        if (c->text.p)
            c->text.p[at] = '\0';
        c->finish = 1;
        upto = c->text.n;
    } else {
        if (r->logprobs) {
            cJSON *e = out_logprob_entry(srv, j, c->smp, c->prev, tok);
            cJSON **arr = (cJSON **)(r->stream ? &c->step_lp : &c->logprobs);
            if (!*arr)
                *arr = cJSON_CreateArray();
            if (*arr && e)
                cJSON_AddItemToArray(*arr, e);
            else
                cJSON_Delete(e);
        }
        strix_sampler_accept(c->smp, tok);
        c->prev = tok;
        /* stop strings: the request's, and the template's end of turn */
        const char *stops[64 + 1];
        int n_stops = 0;
        for (int i = 0; i < r->n_stops && n_stops < 64; i++)
            stops[n_stops++] = r->stops[i];
        if (r->kind == REQ_CHAT && srv->tmpl_end && !c->json)
            stops[n_stops++] = srv->tmpl_end; /* (a JSON answer ends when it closes) */
        size_t safe = 0;
        const long stop_at = strix_stop_find(c->text.p ? c->text.p + c->n_sent : "",
                                             c->text.n - c->n_sent, stops, n_stops, &safe);
        if (stop_at >= 0) {
            c->text.n = c->n_sent + (size_t)stop_at;
            if (c->text.p)
                c->text.p[c->text.n] = '\0';
            c->finish = 1;
            upto = c->text.n;
        } else if (c->json && json_done(c->json)) {
            c->finish = 1; /* the object is closed */
            upto = c->text.n;
        } else if (r->max_tokens >= 0 && c->n_gen >= r->max_tokens) {
            c->finish = 2;
            upto = c->text.n;
        } else {
            upto = c->n_sent + out_utf8_complete(c->text.p + c->n_sent, safe);
            c->pending = tok;
        }
    }
    pthread_mutex_lock(&srv->mu);
    if (j->t_first == 0) {
        j->t_first = srv_now();
        hist_add(&srv->m.ttft, j->t_first - j->t_arrive);
    }
    srv->m.completion_tokens++;
    if (r->stream)
        stream_step_locked(srv, j, c, upto);
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&srv->mu);
    return tok;
}

/* The speculative test of draft x at a row of choice c: greedy, the
 * target's pick (the plain draw) must be x; sampled, spec_draw (x accepted
 * with probability p(x) under the request's final distribution p, else a
 * draw from p without x). Either way the token is then taken as a plain one.
 * Returns 1 if x was accepted and the choice runs on. */
static int spec_sample(struct server *srv, struct job *j, struct choice *c, const float *logits,
                       strix_token x)
{
    strix_token tok = -1;
    if (j->r.sp.temperature > 0.0f) {
        float *p = srv->mask_buf;
        if (strix_sampler_dist(c->smp, logits, srv->n_vocab, p, NULL) != STRIX_OK ||
            spec_draw(c->smp, p, srv->n_vocab, x, &tok) != STRIX_OK)
            tok = -1;
    }
    tok = choice_sample(srv, j, c, logits, tok);
    return tok == x && !c->finish;
}

/* Ends a job whose choices have all finished: the closing output. */
static void job_finish_locked(struct server *srv, struct job *j)
{
    if (j->r.stream) {
        if (j->r.include_usage)
            emit_locked(j, out_usage_chunk(srv, j));
        sbuf_add(&j->out, "data: [DONE]\n\n", 14);
    } else {
        char *body = out_final(srv, j);
        if (body) {
            sbuf_add(&j->out, body, strlen(body));
            free(body);
        } else {
            j->error = 1;
        }
    }
    job_end(srv, j);
}

/* A decode failed: every job in it ends with a server error. */
static void job_fail_locked(struct server *srv, struct job *j, const char *msg)
{
    fail_body_locked(j, msg);
    job_end(srv, j);
}

struct row {
    struct job *job;
    struct choice *c; /* NULL: a row of a prompt */
    int g;            /* that prompt's group */
    int k;            /* a choice's row: 0 its pending token, k its k-th draft */
};

struct step_buf {
    strix_token *tok;
    int32_t *pos, *seq;
    int8_t *logits;
    struct row *row;
    int cap;
    strix_token *hist; /* n_ctx + 1: a sequence's text for the drafts */
};

/* Speculative: the drafts of choice c after its pending token (row n - 1),
 * appended as rows n.. with logits; as many as the request's "max", the
 * context (the last position stays free for the token after them) and its
 * max_tokens allow (a step samples at most drafts + 1 tokens), within half
 * the batch. Returns
 * their number. */
static int add_drafts(struct server *srv, struct step_buf *b, struct job *j, struct choice *c,
                      int n)
{
    const struct slot *sl = &srv->slots[c->slot];
    int k_max = j->r.spec_max;
    if (k_max > srv->n_ctx - 2 - c->base)
        k_max = srv->n_ctx - 2 - c->base;
    if (j->r.max_tokens >= 0 && k_max > j->r.max_tokens - c->n_gen - 1)
        k_max = j->r.max_tokens - c->n_gen - 1;
    if (k_max > srv->n_batch / 2 - n) /* (prompts keep half the batch) */
        k_max = srv->n_batch / 2 - n;
    if (k_max <= 0)
        return 0;
    memcpy(b->hist, sl->toks, (size_t)c->base * sizeof *b->hist);
    int nh = c->base;
    b->hist[nh++] = c->pending;
    int k = 0;
    while (k < k_max && nh > j->r.spec_ngram) {
        strix_token t;
        int kind;
        if (c->draft->propose(c->draft->self, c->smp, b->hist, nh, 0.0f, &t, NULL, &kind,
                              NULL) != STRIX_OK ||
            kind != STRIX_DRAFT_FIXED || t < 0 || t >= srv->n_vocab)
            break;
        b->hist[nh++] = t;
        c->drafts[k] = t;
        b->tok[n + k] = t;
        b->pos[n + k] = c->base + 1 + k;
        b->seq[n + k] = c->slot;
        b->logits[n + k] = 1;
        b->row[n + k] = (struct row){j, c, c->group, k + 1};
        k++;
    }
    c->n_drafts = k;
    return k;
}

/* Runs one batched decode over the active jobs and samples what it gives. */
static void step(struct server *srv, struct step_buf *b)
{
    int n = 0, n_seqs = 0;
    /* 1. the running choices: one token each */
    for (struct job *j = srv->active; j; j = j->next) {
        for (int i = 0; i < j->n_choices; i++) {
            struct choice *c = &j->ch[i];
            if (j->grp[c->group].state != JOB_GEN || c->finish || c->pending < 0 ||
                n >= b->cap)
                continue;
            const int base = srv->slots[c->slot].n_toks;
            b->tok[n] = c->pending;
            b->pos[n] = base;
            b->seq[n] = c->slot;
            b->logits[n] = 1;
            b->row[n] = (struct row){j, c, c->group, 0};
            n++;
            n_seqs++;
            c->n_drafts = c->n_acc = 0;
            c->base = base;
            c->walk = 1;
            if (c->draft)
                n += add_drafts(srv, b, j, c, n);
        }
    }
    /* 2. prompt chunks while the batch has room */
    int budget = srv->n_batch - n;
    for (struct job *j = srv->active; j && budget > 0; j = j->next) {
        for (int g = 0; g < j->n_groups && budget > 0; g++) {
            struct group *gr = &j->grp[g];
            if (gr->state != JOB_PROMPT)
                continue;
            const int k = gr->n_prompt - gr->n_past < budget ? gr->n_prompt - gr->n_past : budget;
            const int s = j->ch[gr->ch0].slot;
            for (int t = 0; t < k; t++) {
                b->tok[n] = gr->prompt[gr->n_past + t];
                b->pos[n] = gr->n_past + t;
                b->seq[n] = s;
                b->logits[n] = gr->echo_lp != NULL; /* echo: every prompt token's */
                b->row[n] = (struct row){j, NULL, g, 0};
                n++;
            }
            if (gr->n_past + k == gr->n_prompt)
                b->logits[n - 1] = 1;
            budget -= k;
            n_seqs++;
        }
    }
    if (n == 0)
        return;
    strix_batch batch = {n, b->tok, b->pos, b->seq, b->logits};
    strix_error err;
    const int rc = strix_decode_batch(srv->ctx, &batch, &err);
    if (srv->step_delay_ms > 0) {
        const long ms = srv->step_delay_ms;
        const struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&d, NULL);
    }
    if (rc) {
        fprintf(stderr, "strix serve: decode of %d tokens failed: %s\n", n, err.msg);
        pthread_mutex_lock(&srv->mu);
        for (struct job *j = srv->active, *next; j; j = next) {
            next = j->next;
            job_fail_locked(srv, j, err.msg);
        }
        pthread_mutex_unlock(&srv->mu);
        return;
    }
    /* what the cache now holds */
    for (int i = 0; i < n; i++) {
        struct slot *sl = &srv->slots[b->seq[i]];
        sl->toks[b->pos[i]] = b->tok[i];
        sl->n_toks = b->pos[i] + 1;
        if (b->row[i].c)
            b->row[i].c->pending = -1;
        else
            b->row[i].job->grp[b->row[i].g].n_past = b->pos[i] + 1;
    }
    /* sample the rows with logits */
    for (int i = 0; i < n; i++) {
        if (!b->logits[i])
            continue;
        const float *logits = strix_get_logits(srv->ctx, i);
        struct job *j = b->row[i].job;
        if (b->row[i].c) {
            struct choice *c = b->row[i].c;
            if (!c->walk)
                continue; /* a draft after the first rejection */
            if (b->pos[i] + 1 >= srv->n_ctx) {
                /* the sequence fills the context: no room for another token */
                c->finish = 2;
                pthread_mutex_lock(&srv->mu);
                if (j->r.stream)
                    stream_step_locked(srv, j, c, c->text.n);
                pthread_mutex_unlock(&srv->mu);
            } else if (b->row[i].k < c->n_drafts) {
                /* speculative: the row after draft k checks draft k + 1 */
                if (spec_sample(srv, j, c, logits, c->drafts[b->row[i].k]))
                    c->n_acc++;
                else
                    c->walk = 0;
            } else {
                choice_sample(srv, j, c, logits, -1);
                c->walk = 0;
            }
            continue;
        }
        struct group *gr = &j->grp[b->row[i].g];
        if (b->pos[i] < gr->n_prompt - 1) {
            /* echo with logprobs: this row predicted the next prompt token */
            cJSON *e = out_prompt_entry(srv, j, logits, gr->prompt[b->pos[i]],
                                        gr->prompt[b->pos[i] + 1]);
            if (e)
                cJSON_AddItemToArray(gr->echo_lp, e);
            continue;
        }
        /* the prompt is read: the other choices share it, then all sample */
        pthread_mutex_lock(&srv->mu);
        gr->state = JOB_GEN;
        pthread_mutex_unlock(&srv->mu);
        for (int k = 1; k < j->per_group; k++) {
            const int s = j->ch[gr->ch0 + k].slot;
            strix_kv_seq_cp(srv->ctx, j->ch[gr->ch0].slot, s, 0, gr->n_prompt);
            memcpy(srv->slots[s].toks, gr->prompt, (size_t)gr->n_prompt * sizeof *gr->prompt);
            srv->slots[s].n_toks = gr->n_prompt;
        }
        for (int k = 0; k < j->per_group; k++) {
            struct choice *c = &j->ch[gr->ch0 + k];
            if (j->r.stream) {
                pthread_mutex_lock(&srv->mu);
                emit_locked(j, out_chunk(srv, j, c, "", 0, 1));
                if (gr->n_echo > 0 || gr->echo_lp)
                    emit_echo_locked(srv, j, c, gr);
                pthread_mutex_unlock(&srv->mu);
            }
            if (j->r.max_tokens == 0) {
                c->finish = 2;
                pthread_mutex_lock(&srv->mu);
                if (j->r.stream)
                    stream_step_locked(srv, j, c, 0);
                pthread_mutex_unlock(&srv->mu);
            } else {
                choice_sample(srv, j, c, logits, -1);
            }
        }
    }
    /* speculative: the cache keeps the accepted drafts only */
    uint64_t drafted = 0, accepted = 0;
    for (int i = 0; i < n; i++) {
        struct choice *c = b->row[i].c;
        if (!c || b->row[i].k != 0 || c->n_drafts == 0)
            continue;
        const int keep = c->base + 1 + c->n_acc;
        if (srv->slots[c->slot].n_toks > keep) {
            strix_kv_seq_rm(srv->ctx, c->slot, keep, -1);
            srv->slots[c->slot].n_toks = keep;
        }
        b->row[i].job->spec_drafted += c->n_drafts;
        b->row[i].job->spec_accepted += c->n_acc;
        drafted += (uint64_t)c->n_drafts;
        accepted += (uint64_t)c->n_acc;
        c->n_drafts = 0;
    }
    /* jobs whose choices have all finished leave */
    pthread_mutex_lock(&srv->mu);
    srv->m.steps++;
    srv->m.spec_drafted += drafted;
    srv->m.spec_accepted += accepted;
    srv->m.kv_used = strix_kv_cells_used(srv->ctx);
    srv->m.kv_cells = strix_kv_cells(srv->ctx);
    hist_add(&srv->m.batch_tokens, n);
    hist_add(&srv->m.batch_seqs, n_seqs);
    for (struct job *j = srv->active, *next; j; j = next) {
        next = j->next;
        int all = 1;
        for (int g = 0; g < j->n_groups; g++) {
            struct group *gr = &j->grp[g];
            if (gr->state == JOB_GEN) {
                int done = 1;
                for (int k = 0; k < j->per_group; k++)
                    done &= j->ch[gr->ch0 + k].finish != 0;
                if (done)
                    group_end(srv, j, g);
            }
            all &= gr->state == JOB_DONE;
        }
        if (all)
            job_finish_locked(srv, j);
    }
    pthread_mutex_unlock(&srv->mu);
}

void *sched_main(void *arg)
{
    struct server *srv = arg;
    struct step_buf b;
    b.cap = srv->n_batch + srv->n_slots * 17; /* a choice: its token and 16 drafts */
    b.hist = malloc(((size_t)srv->n_ctx + 1) * sizeof *b.hist);
    b.tok = malloc((size_t)b.cap * sizeof *b.tok);
    b.pos = malloc((size_t)b.cap * sizeof *b.pos);
    b.seq = malloc((size_t)b.cap * sizeof *b.seq);
    b.logits = malloc((size_t)b.cap);
    b.row = malloc((size_t)b.cap * sizeof *b.row);
    if (!b.tok || !b.pos || !b.seq || !b.logits || !b.row || !b.hist) {
        die("out of memory in the scheduler");
    }
    pthread_mutex_lock(&srv->mu);
    for (;;) {
        /* clients that left: their jobs end before the next step */
        for (struct job *j = srv->active, *next; j; j = next) {
            next = j->next;
            if (j->cancel || srv->quit)
                job_end(srv, j);
        }
        if (srv->quit)
            break;
        admit(srv);
        if (!srv->active) {
            pthread_cond_wait(&srv->wake, &srv->mu);
            continue;
        }
        pthread_mutex_unlock(&srv->mu);
        step(srv, &b);
        pthread_mutex_lock(&srv->mu);
    }
    /* quit: queued jobs end unserved */
    while (srv->queue) {
        struct job *j = srv->queue;
        srv->queue = j->next;
        srv->n_queued--;
        j->cancel = 1;
        j->state = JOB_DONE;
        pthread_cond_broadcast(&j->cond);
        job_release_locked(srv, j);
    }
    srv->queue_tail = NULL;
    pthread_mutex_unlock(&srv->mu);
    free(b.tok);
    free(b.pos);
    free(b.seq);
    free(b.logits);
    free(b.row);
    free(b.hist);
    return NULL;
}
