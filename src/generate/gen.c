/*
 * gen.c - the generation loop shared by the CLI's run and chat commands (and
 * the server to come): sample, stop at EOS, a stop string, the token budget or
 * a full context, stream the text through a callback, decode the token.
 * Holding back text that may be the start of a stop string is done by
 * strix_stop_find, which callers with their own loop can use alone.
 *
 * Sampling belongs to sampler.c, decoding to context.c; this file only calls
 * the public API. Any sequence of a multi-sequence context can be extended.
 */
#include <stdint.h>
#include <string.h>

#include "util.h"

UTIL_PARAMS_DEFINE(gen, .n_predict = -1)

long strix_stop_find(const char *text, size_t n, const char *const *stops, int n_stops,
                     size_t *n_safe)
{
    long first = -1;
    size_t safe = n;
    for (int k = 0; k < n_stops; k++) {
        const char *st = stops[k];
        const size_t len = st ? strlen(st) : 0;
        if (len == 0)
            continue;
        /* earliest complete occurrence */
        for (size_t i = 0; i + len <= n && (first < 0 || i < (size_t)first); i++)
            if (memcmp(text + i, st, len) == 0) {
                first = (long)i;
                break;
            }
        /* the longest tail of text that starts this stop string: hold it back */
        for (size_t t = len - 1 < n ? len - 1 : n; t > 0; t--)
            if (memcmp(text + n - t, st, t) == 0) {
                if (n - t < safe)
                    safe = n - t;
                break;
            }
    }
    if (first >= 0)
        safe = (size_t)first;
    if (n_safe)
        *n_safe = safe;
    return first;
}

int strix_generate(const strix_model *model, strix_context *ctx, strix_sampler *smp,
                   strix_token prev, const struct strix_gen_params *caller_params,
                   strix_gen_cb cb, void *user, struct strix_gen_result *res, strix_error *err)
{
    err_clear(err);
    struct strix_gen_result r = {.struct_size = sizeof r, .stop_reason = STRIX_STOP_NONE};
    const int rrc = util_result_start(res, &r, UTIL_END_OF(struct strix_gen_result, stop_reason),
                                      sizeof r, "gen", err);
    if (rrc)
        return rrc;
    if (!model || !ctx || !smp || !caller_params)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    struct strix_gen_params gp;
    int prc = UTIL_PARAMS_READ(gen, &gp, caller_params, err);
    if (prc)
        return prc;
    const struct strix_gen_params *params = &gp;
    const int32_t seq = params->seq;
    if (seq < 0 || seq >= strix_context_n_seq_max(ctx))
        return err_set(err, STRIX_ERR_ARG, "sequence %d is out of range [0, %d)", seq,
                       strix_context_n_seq_max(ctx));
    if (params->n_stop < 0 || (params->n_stop > 0 && !params->stop))
        return err_set(err, STRIX_ERR_ARG, "bad stop strings");
    if (!strix_get_logits(ctx, -1))
        return err_set(err, STRIX_ERR_ARG, "no logits: decode the prompt first");
    size_t max_stop = 0;
    for (int k = 0; k < params->n_stop; k++)
        if (params->stop[k] && strlen(params->stop[k]) > max_stop)
            max_stop = strlen(params->stop[k]);
    /* pending: text not shown yet because it may begin a stop string */
    size_t cap = max_stop + 512, n_pend = 0;
    char *pend = util_malloc(cap);
    if (!pend)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    const strix_token bos = strix_token_bos(model), eos = strix_token_eos(model);
    const int n_ctx = strix_context_n_ctx(ctx);
    int rc = STRIX_OK;
    while (r.stop_reason == STRIX_STOP_NONE) {
        if (params->n_predict >= 0 && r.n_tokens >= params->n_predict) {
            r.stop_reason = STRIX_STOP_BUDGET;
            break;
        }
        /* the sequence is at n_ctx, or the (shared) cache has no free cell */
        if (strix_kv_seq_pos_max(ctx, seq) + 1 >= n_ctx ||
            strix_kv_cells_used(ctx) >= strix_kv_cells(ctx)) {
            r.stop_reason = STRIX_STOP_CONTEXT;
            break;
        }
        const strix_token tok = strix_sampler_sample(smp, strix_get_logits(ctx, -1));
        r.n_tokens++;
        if (tok == eos || (params->stop_at_bos && tok == bos)) {
            r.stop_reason = STRIX_STOP_EOS;
            if (n_pend > 0 && cb && cb(user, pend, n_pend, -1))
                r.stop_reason = STRIX_STOP_CALLER;
            n_pend = 0;
            break;
        }
        strix_sampler_accept(smp, tok);
        /* the token's text, however long, straight into pend: written into
         * the room left, and once more after growing pend if it did not fit */
        const size_t room = cap - n_pend;
        const int len = strix_token_to_text(model, prev, tok, pend + n_pend,
                                            room > INT32_MAX ? INT32_MAX : (int)room);
        if (len > 0 && (size_t)len > room) {
            char *p = util_realloc(pend, 2 * cap + (size_t)len);
            if (!p) {
                rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
                break;
            }
            pend = p;
            cap = 2 * cap + (size_t)len;
            strix_token_to_text(model, prev, tok, pend + n_pend, len);
        }
        if (len > 0)
            n_pend += (size_t)len;
        prev = tok;
        size_t safe;
        const long at = strix_stop_find(pend, n_pend, params->stop, params->n_stop, &safe);
        const int last = at >= 0 || (params->n_predict >= 0 && r.n_tokens >= params->n_predict);
        if (at >= 0)
            r.stop_reason = STRIX_STOP_STRING;
        else if (last)
            safe = n_pend; /* nothing more is coming: show everything */
        if (cb && cb(user, pend, safe, tok) && r.stop_reason == STRIX_STOP_NONE)
            r.stop_reason = STRIX_STOP_CALLER;
        memmove(pend, pend + safe, n_pend - safe);
        n_pend -= safe;
        if (r.stop_reason != STRIX_STOP_NONE || last)
            continue; /* the loop head names the budget as the reason */
        const strix_batch b = {1, &tok, NULL, &seq, NULL};
        rc = strix_decode_batch(ctx, &b, err);
        if (rc == STRIX_ERR_FULL) { /* checked above; kept for safety */
            err_clear(err);
            rc = STRIX_OK;
            r.stop_reason = STRIX_STOP_CONTEXT;
        }
        if (rc)
            break;
    }
    if (rc == STRIX_OK && n_pend > 0 && cb &&
        (r.stop_reason == STRIX_STOP_BUDGET || r.stop_reason == STRIX_STOP_CONTEXT))
        cb(user, pend, n_pend, -1); /* text held back for a stop string that never came */
    util_free(pend);
    if (res)
        util_result_write(res, &r, sizeof r);
    return rc;
}
