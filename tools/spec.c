/*
 * spec.c - the speculative-decoding options shared by `strix run` and
 * `strix eval`: which draft (a model file, a quantized copy of the target,
 * the target with layers skipped, n-gram lookup), K, the lossy scheme and
 * its error control, and the figures printed after a run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int spec_wanted(const struct opts *o)
{
    return o->draft || o->draft_quant || o->draft_skip || o->draft_ngram;
}

void spec_check_opts(const struct opts *o)
{
    const int n_kinds = !!o->draft + !!o->draft_quant + !!o->draft_skip + !!o->draft_ngram;
    if (n_kinds > 1)
        die("take one draft: --draft FILE, --draft-quant TYPE, --draft-skip LAYERS|auto or "
            "--draft-ngram N");
    static const char *const needs[] = {"draft-max",    "draft-lossy",       "draft-knob",
                                        "draft-budget", "draft-entropy-min", "draft-window",
                                        "draft-p-min",  "draft-adaptive"};
    for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++)
        if (opt_given(o, needs[i]) && !n_kinds)
            die("--%s needs a draft: --draft FILE, --draft-quant TYPE, --draft-skip "
                "LAYERS|auto or --draft-ngram N",
                needs[i]);
    if (o->draft_lossy && strcmp(o->draft_lossy, "lenient") != 0 &&
        strcmp(o->draft_lossy, "top-p") != 0 && strcmp(o->draft_lossy, "near-max") != 0)
        die("--draft-lossy %s: the schemes are lenient, top-p and near-max", o->draft_lossy);
    if (!o->draft_lossy && (opt_given(o, "draft-knob") || opt_given(o, "draft-budget") ||
                            opt_given(o, "draft-entropy-min") || opt_given(o, "draft-window")))
        die("--draft-knob, --draft-budget, --draft-window and --draft-entropy-min need "
            "--draft-lossy SCHEME");
    if (opt_given(o, "draft-budget") != opt_given(o, "draft-window"))
        die("--draft-budget NATS and --draft-window W go together");
}

/* "3,5,7-9" into layers (at most cap); dies on anything else. */
static int parse_layers(const char *s, int *layers, int cap)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p || a < 0)
            die("--draft-skip %s: expected layers like 3,5,7-9 or auto", s);
        p = end;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1 || b < a)
                die("--draft-skip %s: bad range", s);
            p = end;
        }
        for (long l = a; l <= b; l++) {
            if (n == cap || l > 1 << 20)
                die("--draft-skip %s: too many layers", s);
            layers[n++] = (int)l;
        }
        if (*p == ',')
            p++;
        else if (*p)
            die("--draft-skip %s: expected layers like 3,5,7-9 or auto", s);
    }
    return n;
}

void spec_setup(const struct opts *o, strix_model *m, strix_context *ctx, strix_pool *pool,
                const strix_token *calib, int n_calib, struct spec_setup *s)
{
    strix_error err;
    memset(s, 0, sizeof *s);
    if (o->draft_max >= strix_context_n_ctx(ctx))
        die("--draft-max %d: a draft longer than the context of %d positions", o->draft_max,
            strix_context_n_ctx(ctx));
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = strix_context_n_ctx(ctx);
    cp.pool = pool; /* the target's: two pools would fight over the cores */
    if (o->draft_max > 14) /* recurrent drafts roll rejected tokens back */
        cp.n_state_keep = o->draft_max + 2;
    const strix_model *dm = NULL;
    const char *what = o->draft;
    if (o->draft) {
        struct strix_model_params mp = strix_model_default_params();
        if (strix_model_load(o->draft, &mp, &s->dm, &err))
            die("draft %s: %s", o->draft, err.msg);
        dm = s->dm;
    } else if (o->draft_quant) {
        struct strix_quantize_params qp = strix_quantize_default_params();
        qp.n_threads = strix_pool_n_threads(pool);
        if (strix_model_quantize_copy(m, o->draft_quant, &qp, &s->dm, &err))
            die("--draft-quant: %s", err.msg);
        dm = s->dm;
        what = o->draft_quant;
    } else if (o->draft_skip) {
        dm = m;
        what = "--draft-skip";
    }
    if (dm) {
        if (strix_context_create(dm, &cp, &s->dctx, &err))
            die("draft %s: %s", what, err.msg);
        if (o->draft_skip) {
            struct strix_model_info mi = {.struct_size = sizeof mi};
            strix_model_get_info(m, &mi);
            int *layers = malloc((size_t)mi.n_layer * 2 * sizeof *layers);
            int n = 0;
            if (!layers)
                die("out of memory");
            if (strcmp(o->draft_skip, "auto") == 0) {
                struct strix_sampler_params sp = o->sp;
                strix_sampler *smp = NULL;
                double sx = 0;
                if (strix_sampler_create(&sp, mi.n_vocab, &smp, &err) ||
                    strix_draft_skip_auto(m, ctx, s->dctx, smp, calib, n_calib,
                                          o->draft_max > 0 ? o->draft_max : 8, layers, &n, &sx,
                                          &err))
                    die("--draft-skip auto: %s", err.msg);
                strix_sampler_free(smp);
                fprintf(stderr, "draft-skip auto: %d of %d layers skipped (", n, mi.n_layer);
                for (int i = 0; i < n; i++)
                    fprintf(stderr, "%s%d", i ? "," : "", layers[i]);
                fprintf(stderr, "), predicted speedup %.2fx\n", sx);
            } else {
                n = parse_layers(o->draft_skip, layers, mi.n_layer * 2);
                if (n >= mi.n_layer)
                    die("--draft-skip %s: skips every layer of %d", o->draft_skip, mi.n_layer);
                if (strix_context_set_layer_skip(s->dctx, layers, n, &err))
                    die("--draft-skip %s: %s", o->draft_skip, err.msg);
            }
            free(layers);
        }
        if (strix_draft_model_create(m, dm, s->dctx, &s->d, &err))
            die("draft %s: %s", what, err.msg);
    } else if (strix_draft_ngram_create(o->draft_ngram, &s->d, &err)) {
        die("%s", err.msg);
    }
    struct strix_spec_params *pp = &s->pp;
    *pp = strix_spec_default_params();
    if (o->draft_max > 0)
        pp->n_draft_max = o->draft_max;
    pp->p_min = o->draft_pmin;
    pp->adaptive = o->draft_adaptive;
    pp->stop_at_bos = o->stop_bos;
    if (o->draft_lossy) {
        pp->lossy = strcmp(o->draft_lossy, "lenient") == 0 ? STRIX_SPEC_LENIENT
                    : strcmp(o->draft_lossy, "top-p") == 0 ? STRIX_SPEC_TOP_P
                                                           : STRIX_SPEC_NEAR_MAX;
        pp->lossy_knob = o->draft_knob;
        pp->entropy_min = o->draft_hmin;
        pp->budget_window = o->draft_window;
        pp->budget_nats = o->draft_budget;
        if (pp->lossy != STRIX_SPEC_TOP_P && pp->lossy_knob >= 1)
            die("--draft-knob %g: %s needs a knob below 1", (double)pp->lossy_knob,
                o->draft_lossy);
    }
}

void spec_free(struct spec_setup *s)
{
    strix_draft_free(s->d);
    strix_context_free(s->dctx);
    strix_model_free(s->dm);
    memset(s, 0, sizeof *s);
}

/* The median time of 3 one-token decodes of the target after the text
 * generated so far (each rolled back after): a plain decoding step, the
 * unit of Leviathan's costs. 0 when the context has no room left. */
double spec_step_time(strix_context *ctx, strix_token tok)
{
    const int32_t pos = strix_kv_seq_pos_max(ctx, 0) + 1;
    if (pos < 1 || pos >= strix_context_n_ctx(ctx))
        return 0;
    double ts[3];
    for (int r = 0; r < 3; r++) {
        strix_error err;
        const double t0 = now();
        const int rc = strix_decode(ctx, &tok, &pos, 1, NULL, &err);
        ts[r] = now() - t0;
        strix_kv_seq_rm(ctx, 0, pos, -1);
        if (rc)
            return 0;
    }
    const double lo = fmin(ts[0], fmin(ts[1], ts[2])), hi = fmax(ts[0], fmax(ts[1], ts[2]));
    return ts[0] + ts[1] + ts[2] - lo - hi;
}

/* dt: the whole call; the rate counts generation only (without the prompt's
 * prefill, as `strix run` without a draft reports it). The times per round
 * split a round into the draft's proposals, the target's batched verify and
 * the rest (acceptance tests, sampling, cache rollback). t_step: a plain
 * target step (spec_step_time), 0 if not measured. */
void spec_report(const struct strix_spec_stats *st, int k, double dt, double t_step)
{
    const double gen = dt - st->t_prompt;
    fprintf(stderr,
            "speculative: %d tokens, %.1f tok/s; %d rounds, drafted %d, accepted %d, "
            "acceptance %.1f%%, mean accepted length %.2f",
            st->n_tokens, st->n_tokens / (gen > 0 ? gen : 1e-9), st->n_rounds, st->n_drafted,
            st->n_accepted, st->n_drafted ? 100.0 * st->n_accepted / st->n_drafted : 0.0,
            st->n_rounds ? (double)st->n_accepted / st->n_rounds : 0.0);
    /* Leviathan et al.: acceptance a, K drafts, a draft step costing c and the
     * verify of K + 1 tokens costing v plain target steps (their formula takes
     * v = 1): (1 - a^(K+1)) / ((1 - a)(cK + v)). Beside it, the same costs with
     * the measured tokens per round (mean accepted length + 1) instead of the
     * formula's, which assumes each draft is accepted independently. */
    if (st->n_drafted > 0 && st->n_rounds > 0 && st->t_verify > 0 && t_step > 0) {
        const double a = (double)st->n_accepted / st->n_drafted;
        const double c = (st->t_draft / st->n_drafted) / t_step;
        const double v = (st->t_verify / st->n_rounds) / t_step;
        const double tok = a < 1 ? (1 - pow(a, k + 1)) / (1 - a) : k + 1;
        const double per_round = (double)st->n_accepted / st->n_rounds + 1;
        const double drafted = (double)st->n_drafted / st->n_rounds;
        fprintf(stderr,
                "; plain step %.3f ms, cost ratio %.3f, verify %.2f steps, predicted speedup "
                "%.2fx (measured length: %.2fx)",
                1e3 * t_step, c, v, tok / (c * k + v), per_round / (c * drafted + v));
    }
    if (st->n_tokens > 0)
        fprintf(stderr, "; target ppl %.3f", exp(st->nll_sum / st->n_tokens));
    if (st->n_relaxed || st->kl_sum > 0)
        fprintf(stderr, "; relaxed %d (%.2f nats), mean KL %.4f", st->n_relaxed,
                st->relaxed_nats, st->n_tokens ? st->kl_sum / st->n_tokens : 0.0);
    if (st->n_rounds > 0)
        fprintf(stderr, "; ms: prompt %.2f, per drafted token %.3f, per round: verify %.3f, other %.3f",
                1e3 * st->t_prompt, st->n_drafted ? 1e3 * st->t_draft / st->n_drafted : 0.0,
                1e3 * st->t_verify / st->n_rounds,
                1e3 * (gen - st->t_draft - st->t_verify) / st->n_rounds);
    fprintf(stderr, "\n");
}
