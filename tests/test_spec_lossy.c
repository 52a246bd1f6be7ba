/*
 * test_spec_lossy.c - lossy speculative decoding, its error control and
 * adaptive K, each held to what strix.h says, against figures computed here:
 *   - knob 0: every scheme with knob 0 (and any scheme with a budget of 0
 *     nats) gives, seed for seed, the very tokens of exact mode, whose
 *     distribution test_speculative checks by chi-square; greedy stays plain
 *     greedy at any knob. A knob > 0 does relax (so the identity is not
 *     vacuous);
 *   - error control: for every relaxed acceptance the library reports, the
 *     target's p and the draft's q at that position are recomputed here from
 *     one-token decodes of fresh contexts: the reported cost is log(q/p), the
 *     exact test could have rejected (q > p > 0), the token satisfies the
 *     scheme's rule (inside the nucleus computed here by sorting; within the
 *     factor of the maximum), the target's entropy there is at least
 *     entropy_min; and every window of W output tokens sums to at most the
 *     budget, while the same run without a budget exceeds it (so the bound
 *     binds);
 *   - the reported KL: 0 in exact mode, > 0 and growing with the knob;
 *   - adaptive K: a draft equal to the target keeps K, a poor one falls to
 *     short drafts; the output stays plain greedy.
 */
#include <math.h>

#include "fixtures.h"
#include "harness.h"
#include "strix.h"
#include "spec_fixture.h"
#include "strix_dev.h"

#define NEW 32

/* One seeded speculative run of NEW tokens after "Once upon a time". */
static int run(const strix_model *t, strix_context *tctx, strix_draft *d,
               const struct strix_sampler_params *sp, const struct strix_spec_params *pp,
               uint64_t seed, strix_token *out, struct strix_spec_stats *st)
{
    strix_token p[16];
    const int n_p = spec_tokenize(t, "Once upon a time", p, 16);
    strix_sampler *s = spec_sampler(sp, strix_vocab_size(t));
    strix_sampler_reset(s, seed);
    for (int i = 0; i < n_p; i++)
        strix_sampler_accept(s, p[i]);
    st->struct_size = sizeof *st;
    strix_error err;
    const int rc = strix_speculative_generate(t, tctx, s, d, p, n_p, pp, out, NEW, st, &err);
    CHECKF(rc == STRIX_OK, "%s", err.msg);
    strix_sampler_free(s);
    return rc == STRIX_OK ? st->n_tokens : 0;
}

static const char *const scheme_names[4] = {"exact", "lenient", "top-p", "near-max"};

/* Knob 0 is exact mode, draw for draw; a budget of 0 nats too. */
static void test_knob_zero(const strix_model *t, strix_context *tctx, strix_draft *d)
{
    const struct strix_sampler_params sp = spec_temp1();
    long same = 0, runs = 0, relaxed = 0;
    for (uint64_t seed = 1; seed <= 60; seed++) {
        strix_token ref[NEW], got[NEW];
        struct strix_spec_params pp = strix_spec_default_params();
        pp.n_draft_max = 4;
        struct strix_spec_stats st0, st;
        const int n0 = run(t, tctx, d, &sp, &pp, seed, ref, &st0);
        CHECK(st0.n_relaxed == 0 && st0.kl_sum == 0);
        for (int mode = STRIX_SPEC_LENIENT; mode <= STRIX_SPEC_NEAR_MAX; mode++)
            for (int variant = 0; variant < 2; variant++) {
                pp.lossy = mode;
                pp.lossy_knob = variant ? 0.5f : 0.0f;
                pp.budget_window = variant ? 16 : 0; /* knob 0.5 with a budget of 0 */
                pp.budget_nats = 0;
                const int n = run(t, tctx, d, &sp, &pp, seed, got, &st);
                const int eq = n == n0 && memcmp(got, ref, (size_t)n * sizeof *got) == 0;
                CHECKF(eq && st.n_relaxed == 0 && st.kl_sum == 0,
                       "%s knob %g budget %d: seed %llu differs from exact mode",
                       scheme_names[mode], (double)pp.lossy_knob, pp.budget_window,
                       (unsigned long long)seed);
                same += eq;
                runs++;
                /* without the budget, knob 0.5 relaxes somewhere */
                pp.budget_window = 0;
                if (variant) {
                    run(t, tctx, d, &sp, &pp, seed, got, &st);
                    relaxed += st.n_relaxed;
                }
            }
    }
    printf("knob 0 and budget 0: %ld of %ld runs equal exact mode; knob 0.5 relaxed %ld tokens\n",
           same, runs, relaxed);
    CHECK(relaxed > 100);
}

/* Greedy: p is one-hot, nothing can be relaxed; the output is plain greedy. */
static void test_greedy_stays(const strix_model *t, strix_context *tctx, strix_draft *d)
{
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0;
    strix_token ref[NEW], got[NEW];
    struct strix_spec_params pp = strix_spec_default_params();
    struct strix_spec_stats st;
    const int n0 = run(t, tctx, d, &sp, &pp, 1, ref, &st);
    for (int mode = STRIX_SPEC_LENIENT; mode <= STRIX_SPEC_NEAR_MAX; mode++) {
        pp.lossy = mode;
        pp.lossy_knob = 0.9f;
        const int n = run(t, tctx, d, &sp, &pp, 1, got, &st);
        CHECKF(n == n0 && memcmp(got, ref, (size_t)n * sizeof *got) == 0 && st.n_relaxed == 0,
               "greedy %s", scheme_names[mode]);
    }
}

/* The final distribution of model m's next token after seq[0..n) (fresh
 * sampler with the same stages and history), into out[0..nv). */
static void dist_after(const strix_model *m, strix_context *c, const struct strix_sampler_params *sp,
                       const strix_token *seq, int n, float *out)
{
    strix_error err;
    strix_kv_seq_rm(c, -1, 0, -1);
    CHECK(strix_decode(c, seq, NULL, n, NULL, &err) == STRIX_OK);
    strix_sampler *s = spec_sampler(sp, strix_vocab_size(m));
    for (int i = 0; i < n; i++)
        strix_sampler_accept(s, seq[i]);
    CHECK(strix_sampler_dist(s, strix_get_logits(c, -1), strix_vocab_size(m), out, &err) ==
          STRIX_OK);
    strix_sampler_free(s);
}

static int desc(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Checks each relaxed acceptance of one run against p and q recomputed here;
 * returns the largest window sum of the costs over W tokens. */
static double check_relaxed(const strix_model *t, const strix_model *dm, strix_context *tc,
                            strix_context *dc, const struct strix_sampler_params *sp,
                            const struct strix_spec_params *pp, const strix_token *out, int n,
                            const float *costs, int W, int *n_checked)
{
    const int nv = strix_vocab_size(t);
    strix_token seq[64];
    const int n_p = spec_tokenize(t, "Once upon a time", seq, 16);
    memcpy(seq + n_p, out, (size_t)n * sizeof *out);
    float *p = malloc((size_t)nv * sizeof *p), *q = malloc((size_t)nv * sizeof *q);
    float *sorted = malloc((size_t)nv * sizeof *sorted);
    for (int j = 0; j < n; j++) {
        if (costs[j] == 0)
            continue;
        (*n_checked)++;
        const strix_token x = out[j];
        dist_after(t, tc, sp, seq, n_p + j, p);
        dist_after(dm, dc, sp, seq, n_p + j, q);
        const double want = log((double)q[x] / p[x]);
        CHECKF(p[x] > 0 && q[x] > p[x] && fabs(costs[j] - want) <= 1e-3 * (1 + fabs(want)),
               "token %d: cost %g, log(q/p) = log(%g/%g) = %g", j, (double)costs[j],
               (double)q[x], (double)p[x], want);
        double h = 0, mx = 0;
        for (int v = 0; v < nv; v++) {
            h -= p[v] > 0 ? p[v] * log(p[v]) : 0;
            mx = p[v] > mx ? p[v] : mx;
        }
        CHECKF(h >= pp->entropy_min - 1e-4, "token %d relaxed at entropy %g < %g", j, h,
               (double)pp->entropy_min);
        if (pp->lossy == STRIX_SPEC_NEAR_MAX)
            CHECKF(p[x] >= (1 - pp->lossy_knob) * mx * (1 - 1e-5), "token %d: p %g, max %g", j,
                   (double)p[x], mx);
        if (pp->lossy == STRIX_SPEC_TOP_P) { /* the mass of the tokens likelier than x */
            memcpy(sorted, p, (size_t)nv * sizeof *p);
            qsort(sorted, (size_t)nv, sizeof *sorted, desc);
            double above = 0;
            for (int v = 0; v < nv && sorted[v] > p[x]; v++)
                above += sorted[v];
            CHECKF(above < pp->lossy_knob + 1e-5, "token %d: mass above it %g, nucleus %g", j,
                   above, (double)pp->lossy_knob);
        }
    }
    double worst = 0;
    for (int s = 0; s < n; s++) {
        double sum = 0;
        for (int j = s; j < n && j < s + W; j++)
            sum += costs[j];
        worst = sum > worst ? sum : worst;
    }
    free(p);
    free(q);
    free(sorted);
    return worst;
}

static void test_error_control(const strix_model *t, const strix_model *dm, strix_context *tctx,
                               strix_draft *d)
{
    strix_context *tc = fixture_context(t, 64, 64, 1), *dc = fixture_context(dm, 64, 64, 1);
    const struct strix_sampler_params sp = spec_temp1();
    const int W = 8;
    const float B = 1.0f;
    for (int mode = STRIX_SPEC_LENIENT; mode <= STRIX_SPEC_NEAR_MAX; mode++) {
        double worst_free = 0, worst_budget = 0;
        int checked = 0;
        long relaxed_free = 0, relaxed_budget = 0;
        for (uint64_t seed = 1; seed <= 8; seed++)
            for (int budget = 0; budget < 2; budget++) {
                struct strix_spec_params pp = strix_spec_default_params();
                pp.n_draft_max = 4;
                pp.lossy = mode;
                pp.lossy_knob = mode == STRIX_SPEC_LENIENT ? 0.6f : 0.95f;
                pp.entropy_min = seed % 2 ? 0.0f : 3.0f;
                pp.budget_window = budget ? W : 0;
                pp.budget_nats = B;
                float costs[NEW] = {0};
                pp.relaxed_cost = costs;
                strix_token out[NEW];
                struct strix_spec_stats st;
                const int n = run(t, tctx, d, &sp, &pp, seed, out, &st);
                const double w = check_relaxed(t, dm, tc, dc, &sp, &pp, out, n, costs, W, &checked);
                double total = 0;
                int n_rel = 0;
                for (int j = 0; j < n; j++)
                    total += costs[j], n_rel += costs[j] > 0;
                CHECK(n_rel == st.n_relaxed && fabs(total - st.relaxed_nats) < 1e-3 * (1 + total));
                CHECK(st.kl_sum > 0 || st.n_relaxed == 0);
                if (budget) {
                    CHECKF(w <= B + 1e-5, "%s: a window of %d tokens holds %g nats > %g",
                           scheme_names[mode], W, w, (double)B);
                    worst_budget = w > worst_budget ? w : worst_budget;
                    relaxed_budget += st.n_relaxed;
                } else {
                    worst_free = w > worst_free ? w : worst_free;
                    relaxed_free += st.n_relaxed;
                }
            }
        printf("%-8s: %d relaxed acceptances checked; most nats per %d tokens %.2f without the "
               "budget (%ld relaxed), %.2f with %.1f (%ld relaxed)\n",
               scheme_names[mode], checked, W, worst_free, relaxed_free, worst_budget, (double)B,
               relaxed_budget);
        CHECKF(worst_free > B && relaxed_budget > 0, "%s: the budget is never binding",
               scheme_names[mode]);
    }
    strix_context_free(tc);
    strix_context_free(dc);
}

/* nll_sum is -log p(x) summed over the output, p recomputed here. */
static void test_nll(const strix_model *t, strix_context *tctx, strix_draft *d)
{
    const struct strix_sampler_params sp = spec_temp1();
    struct strix_spec_params pp = strix_spec_default_params();
    pp.lossy = STRIX_SPEC_LENIENT;
    pp.lossy_knob = 0.5f;
    strix_token out[NEW], seq[64];
    struct strix_spec_stats st;
    const int n = run(t, tctx, d, &sp, &pp, 7, out, &st);
    const int n_p = spec_tokenize(t, "Once upon a time", seq, 16);
    memcpy(seq + n_p, out, (size_t)n * sizeof *out);
    strix_context *c = fixture_context(t, 64, 64, 1);
    float *p = malloc((size_t)strix_vocab_size(t) * sizeof *p);
    double nll = 0;
    for (int j = 0; j < n; j++) {
        dist_after(t, c, &sp, seq, n_p + j, p);
        nll -= log((double)p[out[j]]);
    }
    printf("nll of %d tokens: %.4f reported, %.4f recomputed\n", n, st.nll_sum, nll);
    CHECK(n > 10 && fabs(st.nll_sum - nll) < 1e-3 * (1 + nll));
    CHECK(st.t_verify > 0 && st.t_draft > 0);
    free(p);
    strix_context_free(c);
}

/* The reported mean KL grows with the knob (lenient, a fixed seed set). */
static void test_kl_grows(const strix_model *t, strix_context *tctx, strix_draft *d)
{
    const struct strix_sampler_params sp = spec_temp1();
    const float knobs[3] = {0.2f, 0.5f, 0.8f};
    double kl[3];
    for (int i = 0; i < 3; i++) {
        double sum = 0;
        long n = 0;
        for (uint64_t seed = 1; seed <= 10; seed++) {
            struct strix_spec_params pp = strix_spec_default_params();
            pp.lossy = STRIX_SPEC_LENIENT;
            pp.lossy_knob = knobs[i];
            strix_token out[NEW];
            struct strix_spec_stats st;
            n += run(t, tctx, d, &sp, &pp, seed, out, &st);
            sum += st.kl_sum;
        }
        kl[i] = sum / (double)(n ? n : 1);
    }
    printf("lenient 0.2 / 0.5 / 0.8: mean KL %.4f / %.4f / %.4f nats\n", kl[0], kl[1], kl[2]);
    CHECK(kl[0] > 0 && kl[0] < kl[1] && kl[1] < kl[2]);
}

/* Adaptive K: the output stays plain greedy; a perfect draft keeps K, a poor
 * one drafts short rounds. */
static void test_adaptive(const strix_model *t, strix_context *tctx, strix_draft *same,
                          strix_draft *poor)
{
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0;
    strix_token ref[NEW], got[NEW];
    struct strix_spec_params pp = strix_spec_default_params();
    pp.n_draft_max = 8;
    struct strix_spec_stats st0, st;
    const int n0 = run(t, tctx, poor, &sp, &pp, 1, ref, &st0);
    pp.adaptive = 1;
    int n = run(t, tctx, poor, &sp, &pp, 1, got, &st);
    CHECK(n == n0 && memcmp(got, ref, (size_t)n * sizeof *got) == 0);
    printf("adaptive K, poor draft: %d drafted in %d rounds (fixed K: %d in %d), next K %d\n",
           st.n_drafted, st.n_rounds, st0.n_drafted, st0.n_rounds, st.k_last);
    CHECK(st.n_drafted < st0.n_drafted / 2 && st.k_last <= 2);
    n = run(t, tctx, same, &sp, &pp, 1, got, &st);
    CHECK(n == n0 && memcmp(got, ref, (size_t)n * sizeof *got) == 0);
    CHECK(st.k_last == 8 && st.n_accepted == st.n_drafted);
}

static void test_bad_params(const strix_model *t, strix_context *tctx, strix_draft *d)
{
    const struct strix_sampler_params sp = spec_temp1();
    strix_sampler *s = spec_sampler(&sp, strix_vocab_size(t));
    strix_token p[2] = {1, 2}, out[4];
    struct {
        int mode;
        float knob, hmin, nats;
        int window;
    } bad[] = {{7, 0, 0, 0, 0},   {STRIX_SPEC_LENIENT, 1, 0, 0, 0},
               {STRIX_SPEC_TOP_P, 1.5f, 0, 0, 0}, {STRIX_SPEC_NEAR_MAX, -0.1f, 0, 0, 0},
               {STRIX_SPEC_LENIENT, NAN, 0, 0, 0}, {STRIX_SPEC_LENIENT, 0.5f, -1, 0, 0},
               {STRIX_SPEC_LENIENT, 0.5f, 0, -1, 4}, {STRIX_SPEC_LENIENT, 0.5f, 0, 1, -2}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct strix_spec_params pp = strix_spec_default_params();
        pp.lossy = bad[i].mode;
        pp.lossy_knob = bad[i].knob;
        pp.entropy_min = bad[i].hmin;
        pp.budget_nats = bad[i].nats;
        pp.budget_window = bad[i].window;
        strix_error err;
        CHECKF(strix_speculative_generate(t, tctx, s, d, p, 2, &pp, out, 4, NULL, &err) ==
                   STRIX_ERR_ARG,
               "bad params %zu", i);
        if (i == 1)
            printf("knob 1 for lenient: %s\n", err.msg);
    }
    strix_sampler_free(s);
}

/* The in-memory Q4_0 copy computes exactly what the same quantization
 * written to a file and loaded computes, and leaves the target as it was. */
static strix_model *q4_copy(const strix_model *t)
{
    const strix_token toks[6] = {1, 400, 30, 250, 7, 99};
    strix_context *c = fixture_context(t, 16, 16, 1);
    strix_error err;
    const int nv = strix_vocab_size(t);
    float *before = malloc((size_t)nv * sizeof *before), *ref = malloc((size_t)nv * sizeof *ref);
    CHECK(strix_decode(c, toks, NULL, 6, NULL, &err) == STRIX_OK);
    memcpy(before, strix_get_logits(c, -1), (size_t)nv * sizeof *before);
    strix_context_free(c);
    struct strix_quantize_params qp = strix_quantize_default_params();
    qp.n_threads = 2;
    qp.pure = 1;
    strix_model *q = NULL, *f = NULL;
    CHECKF(strix_model_quantize_copy(t, "Q4_0", &qp, &q, &err) == STRIX_OK, "%s", err.msg);
    CHECK(strix_model_quantize_copy(t, "Q3_X", &qp, &f, &err) == STRIX_ERR_ARG && !f);
    printf("unknown type: %s\n", err.msg);
    char path[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/strix-lossy-q4-%d.gguf", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    CHECKF(strix_model_quantize(t, path, "Q4_0", &qp, &err) == STRIX_OK, "%s", err.msg);
    struct strix_model_params mp = strix_model_default_params();
    CHECKF(strix_model_load(path, &mp, &f, &err) == STRIX_OK, "%s", err.msg);
    remove(path);
    if (q && f) {
        c = fixture_context(f, 16, 16, 1);
        CHECK(strix_decode(c, toks, NULL, 6, NULL, &err) == STRIX_OK);
        memcpy(ref, strix_get_logits(c, -1), (size_t)nv * sizeof *ref);
        strix_context_free(c);
        c = fixture_context(q, 16, 16, 1);
        CHECK(strix_decode(c, toks, NULL, 6, NULL, &err) == STRIX_OK);
        CHECK(memcmp(ref, strix_get_logits(c, -1), (size_t)nv * sizeof *ref) == 0);
        CHECK(memcmp(ref, before, (size_t)nv * sizeof *ref) != 0);
        strix_context_free(c);
    }
    strix_model_free(f);
    c = fixture_context(t, 16, 16, 1);
    CHECK(strix_decode(c, toks, NULL, 6, NULL, &err) == STRIX_OK);
    CHECK(memcmp(before, strix_get_logits(c, -1), (size_t)nv * sizeof *before) == 0);
    strix_context_free(c);
    free(before);
    free(ref);
    return q;
}

/* ---- self-drafts: the static layer mask ---- */

#define OBS_MAX 16
struct obs_log {
    int n, layer[OBS_MAX];
    float in[OBS_MAX][512], out[OBS_MAX][512]; /* the last token's residual */
};

static void on_layer(void *user, const struct strix_layer_obs *o)
{
    struct obs_log *g = user;
    if (g->n >= OBS_MAX || o->n_embd > 512)
        return;
    const size_t last = (size_t)(o->n_tokens - 1) * (size_t)o->n_embd;
    g->layer[g->n] = o->layer;
    memcpy(g->in[g->n], o->in + last, (size_t)o->n_embd * sizeof(float));
    memcpy(g->out[g->n], o->out + last, (size_t)o->n_embd * sizeof(float));
    g->n++;
}

/* A skipped block is not run and passes the residual on; the blocks before
 * it compute what they compute unmasked; decoding one token at a time gives
 * the batched logits (the skipped block's missing keys are never read); an
 * empty mask gives the full model's logits again; bad layers are refused. */
static void test_layer_mask(const strix_model *t)
{
    const strix_token toks[8] = {1, 400, 30, 250, 7, 99, 12, 300};
    struct strix_model_info mi = {.struct_size = sizeof mi};
    strix_model_get_info(t, &mi);
    const int nv = strix_vocab_size(t), ne = mi.n_embd, skip = 2;
    static struct obs_log full, part;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 1;
    cp.on_layer = on_layer;
    cp.on_layer_user = &full;
    strix_context *cf = fixture_context_with(t, &cp);
    cp.on_layer_user = &part;
    strix_context *cs = fixture_context_with(t, &cp);
    strix_error err;
    full.n = part.n = 0;
    CHECK(strix_decode(cf, toks, NULL, 8, NULL, &err) == STRIX_OK);
    CHECKF(strix_context_set_layer_skip(cs, &skip, 1, &err) == STRIX_OK, "%s", err.msg);
    CHECK(strix_decode(cs, toks, NULL, 8, NULL, &err) == STRIX_OK);
    CHECKF(full.n == mi.n_layer && part.n == mi.n_layer - 1, "%d and %d blocks ran", full.n,
           part.n);
    for (int i = 0; i < part.n; i++) {
        CHECK(part.layer[i] != skip);
        if (part.layer[i] < skip)
            CHECK(memcmp(part.out[i], full.out[i], (size_t)ne * sizeof(float)) == 0);
        if (part.layer[i] == skip + 1) /* its input is block skip - 1's output */
            CHECK(memcmp(part.in[i], part.out[i - 1], (size_t)ne * sizeof(float)) == 0);
    }
    float *batched = malloc((size_t)nv * sizeof *batched);
    memcpy(batched, strix_get_logits(cs, -1), (size_t)nv * sizeof *batched);
    CHECK(memcmp(batched, strix_get_logits(cf, -1), (size_t)nv * sizeof *batched) != 0);
    strix_kv_seq_rm(cs, -1, 0, -1);
    for (int i = 0; i < 8; i++)
        CHECK(strix_decode(cs, toks + i, NULL, 1, NULL, &err) == STRIX_OK);
    CHECK(memcmp(batched, strix_get_logits(cs, -1), (size_t)nv * sizeof *batched) == 0);
    CHECK(strix_context_set_layer_skip(cs, NULL, 0, &err) == STRIX_OK);
    CHECK(strix_decode(cs, toks, NULL, 8, NULL, &err) == STRIX_OK);
    CHECK(memcmp(strix_get_logits(cf, -1), strix_get_logits(cs, -1), (size_t)nv * sizeof(float)) ==
          0);
    const int bad[2] = {1, mi.n_layer};
    CHECK(strix_context_set_layer_skip(cs, bad, 2, &err) == STRIX_ERR_ARG);
    printf("layer mask: %s\n", err.msg);
    free(batched);
    strix_context_free(cf);
    strix_context_free(cs);
}

/* Greedy with a layer-skip self-draft (a given set, and the one auto picks)
 * is plain greedy. */
static void test_skip_draft(const strix_model *t, strix_context *tctx)
{
    strix_context *dc = fixture_context(t, 128, 128, 1);
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0;
    strix_sampler *s = spec_sampler(&sp, strix_vocab_size(t));
    strix_token calib[64], ref[NEW], got[NEW];
    const int n_c = spec_tokenize(t, "Once upon a time, there was a little girl named Lily. She liked "
                                "to play outside in the park with her dog.", calib, 64);
    int layers[16], n_l = -1;
    double sx = 0;
    strix_error err;
    CHECKF(strix_draft_skip_auto(t, tctx, dc, s, calib, n_c, 4, layers, &n_l, &sx, &err) ==
               STRIX_OK,
           "%s", err.msg);
    printf("skip auto: %d layers skipped, predicted speedup %.2f\n", n_l, sx);
    CHECK(n_l >= 0 && n_l < 5 && sx >= 1);
    const int two[2] = {1, 3};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            CHECK(strix_context_set_layer_skip(dc, two, 2, &err) == STRIX_OK);
        strix_draft *d = NULL;
        CHECK(strix_draft_model_create(t, t, dc, &d, &err) == STRIX_OK);
        struct strix_spec_params pp = strix_spec_default_params();
        struct strix_spec_stats st0;
        const int n0 = run(t, tctx, d, &sp, &pp, 1, ref, &st0); /* K = 8 */
        strix_token p[16];
        const int n_p = spec_tokenize(t, "Once upon a time", p, 16);
        /* plain greedy, one token per decode */
        strix_kv_seq_rm(tctx, -1, 0, -1);
        CHECK(strix_decode(tctx, p, NULL, n_p, NULL, &err) == STRIX_OK);
        int n = 0;
        while (n < NEW) {
            const float *l = strix_get_logits(tctx, -1);
            strix_token b = 0;
            for (int v = 1; v < strix_vocab_size(t); v++)
                b = l[v] > l[b] ? v : b;
            if (b == strix_token_eos(t))
                break;
            got[n++] = b;
            CHECK(strix_decode(tctx, &b, NULL, 1, NULL, &err) == STRIX_OK);
        }
        CHECKF(n == n0 && memcmp(got, ref, (size_t)n * sizeof *got) == 0,
               "skip draft (pass %d) differs from plain greedy", pass);
        printf("skip draft %s: acceptance %.1f%%\n", pass ? "{1,3}" : "auto",
               100.0 * st0.n_accepted / (st0.n_drafted ? st0.n_drafted : 1));
        strix_draft_free(d);
    }
    strix_sampler_free(s);
    strix_context_free(dc);
}

int main(void)
{
    if (!fixture_kernels("test_spec_lossy"))
        return 0;
    struct spec_fixture f;
    if (spec_fixture_open(&f, 128, q4_copy)) {
        test_knob_zero(f.t, f.tctx, f.q4);
        test_greedy_stays(f.t, f.tctx, f.q4);
        test_error_control(f.t, f.q4m, f.tctx, f.q4);
        test_kl_grows(f.t, f.tctx, f.q4);
        test_nll(f.t, f.tctx, f.q4);
        test_adaptive(f.t, f.tctx, f.same, f.pd);
        test_bad_params(f.t, f.tctx, f.pd);
        test_layer_mask(f.t);
        test_skip_draft(f.t, f.tctx);
    }
    spec_fixture_close(&f);
    TEST_MAIN_END();
}
