/*
 * test_sampler.c - each stage of the sampling chain on hand-made
 * distributions, checked against its definition computed here; the chain
 * order; seeds; log-probabilities; stop strings.
 */
#include <math.h>

#include "harness.h"
#include "strix.h"

#define NV 4
/* probabilities 0.5, 0.3, 0.15, 0.05 as logits */
static float logits4[NV];

static void init_logits(void)
{
    const double p[NV] = {0.5, 0.3, 0.15, 0.05};
    for (int i = 0; i < NV; i++)
        logits4[i] = (float)log(p[i]);
}

/* Draws n tokens with params; counts[i] gets how often token i came. */
static void draw(const struct strix_sampler_params *sp, const float *logits, int nv, int n,
                 int *counts)
{
    strix_sampler *s;
    strix_error err;
    int rc = strix_sampler_create(sp, nv, &s, &err);
    CHECKF(rc == STRIX_OK, "%s", err.msg);
    memset(counts, 0, (size_t)nv * sizeof *counts);
    for (int i = 0; rc == STRIX_OK && i < n; i++) {
        const strix_token t = strix_sampler_sample(s, logits);
        CHECK(t >= 0 && t < nv);
        if (t >= 0 && t < nv)
            counts[t]++;
    }
    strix_sampler_free(s);
}

/* Only the truncation under test: everything else off, temperature 1. */
static struct strix_sampler_params plain(void)
{
    struct strix_sampler_params p = strix_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 1234;
    return p;
}

static void test_softmax_draw(void)
{
    /* with nothing truncated, frequencies follow softmax(logits / T) */
    const float temps[] = {1.0f, 0.5f, 2.0f};
    for (int k = 0; k < 3; k++) {
        struct strix_sampler_params p = plain();
        p.temperature = temps[k];
        int c[NV];
        const int n = 40000;
        draw(&p, logits4, NV, n, c);
        double z = 0, q[NV];
        for (int i = 0; i < NV; i++)
            z += q[i] = exp(logits4[i] / temps[k]);
        for (int i = 0; i < NV; i++)
            CHECKF(fabs(c[i] / (double)n - q[i] / z) < 0.01, "T=%g token %d: %g vs %g", temps[k],
                   i, c[i] / (double)n, q[i] / z);
    }
}

static void test_truncation(void)
{
    int c[NV];
    struct strix_sampler_params p = plain();
    /* top-k 2: the two largest only, in proportion 0.5 : 0.3 */
    p.top_k = 2;
    draw(&p, logits4, NV, 20000, c);
    CHECK(c[2] == 0 && c[3] == 0 && fabs(c[0] / (double)(c[0] + c[1]) - 0.625) < 0.015);
    /* top-p: the smallest prefix whose mass reaches p */
    const float tps[] = {0.4f, 0.7f, 0.85f, 0.96f};
    for (int k = 0; k < 4; k++) {
        p = plain();
        p.top_p = tps[k];
        draw(&p, logits4, NV, 4000, c);
        const double mass[NV] = {0.5, 0.8, 0.95, 1.0};
        int want = 0;
        while (mass[want] < tps[k] - 1e-6)
            want++;
        for (int i = 0; i < NV; i++)
            CHECKF((c[i] > 0) == (i <= want), "top-p %g: token %d drawn %d times", tps[k], i,
                   c[i]);
    }
    /* min-p: p_i >= min_p * p_max */
    const float mps[] = {0.2f, 0.5f, 0.7f};
    for (int k = 0; k < 3; k++) {
        p = plain();
        p.min_p = mps[k];
        draw(&p, logits4, NV, 4000, c);
        const double prob[NV] = {0.5, 0.3, 0.15, 0.05};
        for (int i = 0; i < NV; i++)
            CHECKF((c[i] > 0) == (prob[i] >= mps[k] * 0.5 - 1e-6), "min-p %g: token %d: %d",
                   mps[k], i, c[i]);
    }
    /* typical-p: tokens ordered by |-ln p - H|, kept until their mass exceeds typical_p */
    const double prob[NV] = {0.5, 0.3, 0.15, 0.05};
    double H = 0;
    for (int i = 0; i < NV; i++)
        H -= prob[i] * log(prob[i]);
    int order[NV] = {0, 1, 2, 3};
    for (int i = 0; i < NV; i++) /* sort by distance, here by hand */
        for (int j = i + 1; j < NV; j++)
            if (fabs(-log(prob[order[j]]) - H) < fabs(-log(prob[order[i]]) - H)) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    CHECK(order[0] == 1); /* the second most likely token is the most typical */
    const float tys[] = {0.2f, 0.5f, 0.9f};
    for (int k = 0; k < 3; k++) {
        int keep[NV] = {0};
        double cum = 0;
        for (int i = 0; i < NV; i++) {
            keep[order[i]] = 1;
            cum += prob[order[i]];
            if (cum > tys[k])
                break;
        }
        p = plain();
        p.typical_p = tys[k];
        draw(&p, logits4, NV, 4000, c);
        for (int i = 0; i < NV; i++)
            CHECKF((c[i] > 0) == keep[i], "typical %g: token %d: %d", tys[k], i, c[i]);
    }
}

static strix_token greedy_after(const struct strix_sampler_params *sp, const float *logits, int nv,
                                const strix_token *hist, int n_hist)
{
    strix_sampler *s;
    strix_error err;
    if (strix_sampler_create(sp, nv, &s, &err) != STRIX_OK)
        return -2;
    for (int i = 0; i < n_hist; i++)
        strix_sampler_accept(s, hist[i]);
    const strix_token t = strix_sampler_sample(s, logits);
    strix_sampler_free(s);
    return t;
}

static void test_penalties_bias(void)
{
    const float l[3] = {2.0f, 1.9f, -1.0f};
    const strix_token h3[3] = {0, 0, 0};
    struct strix_sampler_params p = plain();
    p.temperature = 0.0f;
    CHECK(greedy_after(&p, l, 3, NULL, 0) == 0);
    p.repeat_penalty = 2.0f; /* 2 / 2 = 1 < 1.9 */
    CHECK(greedy_after(&p, l, 3, h3, 1) == 1);
    p.repeat_penalty = 1.04f; /* 2 / 1.04 = 1.92 > 1.9 */
    CHECK(greedy_after(&p, l, 3, h3, 3) == 0);
    /* a negative logit is multiplied: token 2 at -1 stays below with penalty */
    const float ln[3] = {-1.0f, -1.05f, -3.0f};
    const strix_token h0[1] = {0};
    p.repeat_penalty = 1.1f; /* -1.1 < -1.05 */
    CHECK(greedy_after(&p, ln, 3, h0, 1) == 1);
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 0.05f; /* 2 - 3 * 0.05 = 1.85 < 1.9 */
    CHECK(greedy_after(&p, l, 3, h3, 3) == 1);
    CHECK(greedy_after(&p, l, 3, h3, 1) == 0); /* 2 - 0.05 = 1.95 */
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.15f; /* once, however many times: 1.85 */
    CHECK(greedy_after(&p, l, 3, h3, 1) == 1);
    p.presence_penalty = 0.05f; /* 1.95 */
    CHECK(greedy_after(&p, l, 3, h3, 3) == 0);
    /* the window: only the last repeat_last_n tokens count */
    p.presence_penalty = 0.15f;
    p.repeat_last_n = 2;
    const strix_token hw[3] = {0, 2, 2};
    CHECK(greedy_after(&p, l, 3, hw, 3) == 0);
    /* logit bias, and a ban */
    p = plain();
    p.temperature = 0.0f;
    const struct strix_logit_bias b1[1] = {{2, 3.5f}};
    p.logit_bias = b1;
    p.n_logit_bias = 1;
    CHECK(greedy_after(&p, l, 3, NULL, 0) == 2);
    const struct strix_logit_bias ban[1] = {{0, -INFINITY}};
    p.logit_bias = ban;
    p.temperature = 1.0f;
    int c[3];
    draw(&p, l, 3, 2000, c);
    CHECK(c[0] == 0 && c[1] > 0);
    /* bad parameters are refused */
    strix_sampler *s;
    strix_error err;
    const struct strix_logit_bias oob[1] = {{7, 1.0f}};
    p.logit_bias = oob;
    CHECK(strix_sampler_create(&p, 3, &s, &err) == STRIX_ERR_ARG);
    p = plain();
    p.order = "top_k;bogus";
    CHECK(strix_sampler_create(&p, 3, &s, &err) == STRIX_ERR_ARG);
    p.order = "top_k;top_k";
    CHECK(strix_sampler_create(&p, 3, &s, &err) == STRIX_ERR_ARG);
    p = plain();
    p.mirostat = 1;
    CHECK(strix_sampler_create(&p, 3, &s, &err) == STRIX_ERR_ARG);
}

static void test_order(void)
{
    /* T = 0.4 sharpens to p0 = 0.751: top-p 0.7 after temperature keeps
     * token 0 alone; before temperature it keeps tokens 0 and 1 */
    struct strix_sampler_params p = plain();
    p.temperature = 0.4f;
    p.top_p = 0.7f;
    int c[NV];
    p.order = "temperature;top_p";
    draw(&p, logits4, NV, 3000, c);
    CHECK(c[0] == 3000);
    p.order = "top_p;temperature";
    draw(&p, logits4, NV, 3000, c);
    CHECK(c[1] > 0 && c[2] == 0 && c[3] == 0);
    /* a stage left out of the order does not run */
    p.order = "temperature";
    draw(&p, logits4, NV, 3000, c);
    CHECK(c[2] > 0);
    /* the default order equals the spelled-out llama.cpp order */
    struct strix_sampler_params d = strix_sampler_default_params();
    d.seed = 5;
    int a[NV], b[NV];
    draw(&d, logits4, NV, 3000, a);
    d.order = "penalties;top_k;typical_p;top_p;min_p;temperature";
    draw(&d, logits4, NV, 3000, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
}

static void test_mirostat(void)
{
    struct strix_sampler_params p = plain();
    p.mirostat = 2;
    p.mirostat_tau = 0.1f; /* mu starts at 0.2 bits, below the top token's 1 bit: it alone is
                              kept, its surprise after renormalising is 0, and mu grows by
                              eta * tau = 0.01 a step: still under 1.74 bits (token 1) after 100 */
    int c[NV];
    draw(&p, logits4, NV, 100, c);
    CHECK(c[0] == 100);
    p.mirostat_tau = 3.0f; /* target 3 bits */
    strix_sampler *s;
    strix_error err;
    CHECK(strix_sampler_create(&p, NV, &s, &err) == STRIX_OK);
    const int n = 20000;
    int seen[NV] = {0};
    for (int i = 0; i < n; i++) {
        const strix_token t = strix_sampler_sample(s, logits4);
        seen[t]++;
    }
    /* the full distribution's entropy is 1.65 bits, below tau: mu grows until
     * nothing is cut, so every token appears */
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0 && seen[3] > 0);
    strix_sampler_free(s);
}

static void test_seed_and_probs(void)
{
    enum { V = 50 };
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = (float)sin(i * 1.7) * 3.0f;
    struct strix_sampler_params p = strix_sampler_default_params();
    p.seed = 99;
    p.n_probs = 5;
    p.top_k = 0;
    strix_sampler *a, *b;
    strix_error err;
    CHECK(strix_sampler_create(&p, V, &a, &err) == STRIX_OK);
    CHECK(strix_sampler_create(&p, V, &b, &err) == STRIX_OK);
    strix_token seq[64];
    int same = 1;
    for (int i = 0; i < 64; i++) {
        seq[i] = strix_sampler_sample(a, l);
        same &= seq[i] == strix_sampler_sample(b, l);
    }
    CHECK(same);
    strix_sampler_reset(a, 99);
    for (int i = 0; i < 64; i++)
        same &= seq[i] == strix_sampler_sample(a, l);
    CHECK(same);
    /* log-probabilities: log-softmax of the raw logits */
    double z = 0;
    for (int i = 0; i < V; i++)
        z += exp(l[i]);
    struct strix_token_prob ch, top[8];
    const strix_token t = strix_sampler_sample(a, l);
    const int n = strix_sampler_last_probs(a, &ch, top, 8);
    CHECK(n == 5 && ch.id == t && fabs(ch.logprob - (l[t] - log(z))) < 1e-5);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        ok &= fabs(top[i].logprob - (l[top[i].id] - log(z))) < 1e-5;
        if (i > 0)
            ok &= top[i].logprob <= top[i - 1].logprob;
        int rank = 0; /* tokens strictly more likely than top[i] */
        for (int j = 0; j < V; j++)
            rank += l[j] > l[top[i].id];
        ok &= rank == i;
    }
    CHECK(ok);
    strix_sampler_free(a);
    strix_sampler_free(b);
}

static void test_stop_find(void)
{
    const char *stops[] = {"</s>", "User:", "\n\n"};
    size_t safe;
    CHECK(strix_stop_find("Hello world", 11, stops, 3, &safe) == -1 && safe == 11);
    CHECK(strix_stop_find("Hello </", 8, stops, 3, &safe) == -1 && safe == 6);
    CHECK(strix_stop_find("Hello </s> more", 15, stops, 3, &safe) == 6 && safe == 6);
    CHECK(strix_stop_find("a\n\nUser:", 8, stops, 3, &safe) == 1 && safe == 1);
    CHECK(strix_stop_find("Us", 2, stops, 3, &safe) == -1 && safe == 0);
    CHECK(strix_stop_find("abc\n", 4, stops, 3, &safe) == -1 && safe == 3);
    CHECK(strix_stop_find("abc", 3, NULL, 0, &safe) == -1 && safe == 3);
}

int main(void)
{
    init_logits();
    test_softmax_draw();
    test_truncation();
    test_penalties_bias();
    test_order();
    test_mirostat();
    test_seed_and_probs();
    test_stop_find();
    TEST_MAIN_END();
}
