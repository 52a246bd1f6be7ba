/*
 * test_sampler.c - each stage of the sampling chain on hand-made
 * distributions, checked against its definition computed here; the chain
 * order (the default against llama.cpp's, from its source); seeds;
 * log-probabilities; the distribution API (strix_sampler_dist and _sample_dist)
 * against a direct computation and the sampler's own draws; NaN and infinite
 * logits; typical-p on a 128k vocabulary; stop strings; the greedy
 * shortcut against the full chain.
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

/* A small vocabulary of logits that vary with the step (for the tests that
 * compare distributions and draws). */
static void wave(float *l, int nv, int step)
{
    for (int i = 0; i < nv; i++)
        l[i] = (float)(sin(i * 1.7 + step * 0.61) * 3.0 + cos(i * 0.37 * (step % 5 + 1)));
}

/* The distribution of the chain for these parameters, or 0 on failure. */
static int dist_of(const struct strix_sampler_params *sp, const float *l, int nv, float *probs,
                   const strix_token *hist, int n_hist)
{
    strix_sampler *s;
    strix_error err;
    if (strix_sampler_create(sp, nv, &s, &err) != STRIX_OK)
        return 0;
    for (int i = 0; i < n_hist; i++)
        strix_sampler_accept(s, hist[i]);
    int rc = strix_sampler_dist(s, l, nv, probs, &err);
    strix_sampler_free(s);
    return rc == STRIX_OK;
}

/* The default stage order is llama.cpp's (tests/data/llamacpp-sampler-order.txt,
 * copied from llama.cpp's source) restricted to the stages strix has: the
 * default chain and the chain spelled from the fixture give the same
 * distribution, with every stage active, on inputs where the order matters. */
static void test_default_order(void)
{
    size_t len = 0;
    char *fix = read_fixture("llamacpp-sampler-order.txt", &len);
    if (!fix)
        return;
    static const char *const known[] = {"penalties", "top_k", "typical_p", "top_p", "min_p",
                                        "temperature"};
    static const char *const absent[] = {"dry", "top_n_sigma", "xtc"}; /* off in llama.cpp */
    char order[256] = "";
    int n_known = 0, n_lines = 0;
    for (char *line = strtok(fix, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        const char *pfx = "COMMON_SAMPLER_TYPE_";
        CHECKF(strncmp(line, pfx, strlen(pfx)) == 0, "fixture line '%s'", line);
        char name[64];
        size_t k = 0;
        for (const char *c = line + strlen(pfx); *c && k + 1 < sizeof name; c++)
            name[k++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        name[k] = '\0';
        n_lines++;
        int is_known = 0, is_absent = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            is_known |= strcmp(name, known[i]) == 0;
        for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
            is_absent |= strcmp(name, absent[i]) == 0;
        CHECKF(is_known || is_absent, "llama.cpp stage %s is unknown here", name);
        if (is_known) {
            strcat(order, n_known++ ? ";" : "");
            strcat(order, name);
        }
    }
    free(fix);
    CHECK(n_lines == 9 && n_known == 6);
    enum { V = 64 };
    float l[V], a[V], b[V];
    const strix_token hist[6] = {3, 9, 9, 17, 40, 41};
    struct strix_sampler_params d = strix_sampler_default_params();
    d.top_k = 30;
    d.typical_p = 0.97f;
    d.top_p = 0.9f;
    d.min_p = 0.02f;
    d.temperature = 1.7f;
    d.repeat_penalty = 1.3f;
    d.frequency_penalty = 0.4f;
    int same = 1, differs = 0;
    for (int step = 0; step < 20; step++) {
        wave(l, V, step);
        struct strix_sampler_params q = d;
        CHECK(dist_of(&d, l, V, a, hist, 6));
        q.order = order;
        CHECK(dist_of(&q, l, V, b, hist, 6));
        same &= memcmp(a, b, sizeof a) == 0;
        q.order = "temperature;penalties;top_k;typical_p;top_p;min_p";
        CHECK(dist_of(&q, l, V, b, hist, 6));
        differs |= memcmp(a, b, sizeof a) != 0;
    }
    CHECKF(same, "default order differs from llama.cpp's (%s)", order);
    CHECK(differs); /* the comparison can tell orders apart */
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
    test_default_order();
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

/* NaN logits (a broken model) never crash a stage nor get drawn while any
 * other logit is finite or +inf; +inf logits share the draw; all NaN still
 * gives a token in range. */
static void test_nan_logits(void)
{
    enum { V = 32000 };
    float *l = malloc(V * sizeof *l), *pr = malloc(V * sizeof *pr);
    if (!l || !pr) {
        CHECK(0);
        free(l);
        free(pr);
        return;
    }
    for (int i = 0; i < V; i++)
        l[i] = i % 3 == 0 ? NAN : (float)sin(i * 0.7) * 4.0f;
    l[0] = NAN;
    const char *const orders[] = {NULL, "top_p;min_p;temperature", "typical_p;temperature",
                                  "penalties;top_k;temperature"};
    for (int o = 0; o < 4; o++) {
        for (int greedy = 0; greedy < 2; greedy++) {
            struct strix_sampler_params p = strix_sampler_default_params();
            p.order = orders[o];
            p.typical_p = o == 2 ? 0.9f : 1.0f;
            p.top_k = o == 1 ? 0 : 40;
            p.temperature = greedy ? 0.0f : 0.8f;
            p.n_probs = 3;
            p.repeat_penalty = 1.1f;
            strix_sampler *s;
            strix_error err;
            CHECK(strix_sampler_create(&p, V, &s, &err) == STRIX_OK);
            int bad = 0;
            for (int t = 0; t < 200; t++) {
                const strix_token tok = strix_sampler_sample(s, l);
                bad += tok < 0 || tok >= V || isnan(l[tok]);
                if (tok >= 0 && tok < V)
                    strix_sampler_accept(s, tok);
                struct strix_token_prob ch, top[3];
                const int n = strix_sampler_last_probs(s, &ch, top, 3);
                bad += n != 3 || !isfinite(ch.logprob);
                for (int i = 0; i < n; i++)
                    bad += !isfinite(top[i].logprob) || isnan(l[top[i].id]);
            }
            double sum = 0;
            CHECK(strix_sampler_dist(s, l, V, pr, &err) == STRIX_OK);
            for (int i = 0; i < V; i++) {
                bad += !(pr[i] >= 0.0f && pr[i] <= 1.0f) || (isnan(l[i]) && pr[i] != 0.0f);
                sum += pr[i];
            }
            CHECKF(bad == 0 && fabs(sum - 1.0) < 1e-5, "order %d greedy %d: %d bad, sum %g", o,
                   greedy, bad, sum);
            strix_sampler_free(s);
        }
    }
    /* every logit NaN: a token in range, a finite distribution */
    for (int i = 0; i < V; i++)
        l[i] = NAN;
    struct strix_sampler_params p = strix_sampler_default_params();
    strix_sampler *s;
    strix_error err;
    CHECK(strix_sampler_create(&p, V, &s, &err) == STRIX_OK);
    const strix_token t = strix_sampler_sample(s, l);
    CHECK(t >= 0 && t < V);
    CHECK(strix_sampler_dist(s, l, V, pr, &err) == STRIX_OK);
    double sum = 0;
    for (int i = 0; i < V; i++)
        sum += isfinite(pr[i]) ? pr[i] : 1e9;
    CHECK(fabs(sum - 1.0) < 1e-4);
    strix_sampler_free(s);
    /* +inf: the two tokens at +inf share the draw, NaN and finite get nothing */
    for (int i = 0; i < V; i++)
        l[i] = i % 2 ? NAN : 1.0f;
    l[10] = l[20] = INFINITY;
    p = plain();
    p.n_probs = 2;
    CHECK(strix_sampler_create(&p, V, &s, &err) == STRIX_OK);
    CHECK(strix_sampler_dist(s, l, V, pr, &err) == STRIX_OK);
    CHECK(pr[10] == 0.5f && pr[20] == 0.5f && pr[0] == 0.0f && pr[11] == 0.0f);
    int hits = 0;
    for (int k = 0; k < 100; k++) {
        const strix_token u = strix_sampler_sample(s, l);
        hits += u == 10 || u == 20;
    }
    struct strix_token_prob ch;
    strix_sampler_last_probs(s, &ch, NULL, 0);
    CHECK(hits == 100 && fabs(ch.logprob - log(0.5)) < 1e-6);
    strix_sampler_free(s);
    free(l);
    free(pr);
}

/* The distribution the sampler draws from: a direct computation on a small
 * example; greedy one-hot; drawing from it is the sampler's own draw. */
static void test_dist(void)
{
    enum { V = 8 };
    const float l[V] = {1.0f, 3.0f, -0.5f, 2.5f, 2.0f, 0.0f, 2.6f, -2.0f};
    struct strix_sampler_params p = plain();
    p.temperature = 0.7f;
    p.top_k = 5;
    p.top_p = 0.8f;
    const struct strix_logit_bias bias[1] = {{5, 2.2f}}; /* token 5: 0 -> 2.2 */
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    /* by hand: biased logits 1, 3, -.5, 2.5, 2, 2.2, 2.6, -2; top-5 by value:
     * 1 (3), 6 (2.6), 3 (2.5), 5 (2.2), 4 (2); top-p 0.8 on their softmax at
     * T = 1 (llama.cpp's order: top-p before temperature), then softmax of the
     * kept logits / 0.7 */
    const int top5[5] = {1, 6, 3, 5, 4};
    const double bl[V] = {1, 3, -0.5, 2.5, 2, 2.2, 2.6, -2};
    double z = 0, cum = 0;
    for (int i = 0; i < 5; i++)
        z += exp(bl[top5[i]]);
    int kept = 0;
    while (kept < 5) {
        cum += exp(bl[top5[kept]]) / z;
        kept++;
        if (cum >= 0.8)
            break;
    }
    CHECK(kept == 4); /* 0.328 0.220 0.199 0.148: 0.747 after three */
    double want[V] = {0}, zt = 0;
    for (int i = 0; i < kept; i++)
        zt += exp(bl[top5[i]] / 0.7);
    for (int i = 0; i < kept; i++)
        want[top5[i]] = exp(bl[top5[i]] / 0.7) / zt;
    float got[V];
    CHECK(dist_of(&p, l, V, got, NULL, 0));
    double err_max = 0;
    for (int i = 0; i < V; i++)
        err_max = fmax(err_max, fabs(got[i] - want[i]));
    CHECKF(err_max < 1e-6, "distribution off by %g", err_max);
    /* greedy: one-hot on the first maximum */
    p.temperature = 0.0f;
    CHECK(dist_of(&p, l, V, got, NULL, 0));
    int onehot = 1;
    for (int i = 0; i < V; i++)
        onehot &= got[i] == (i == 1 ? 1.0f : 0.0f);
    CHECK(onehot);
    /* the same seed draws the same tokens, through sample or dist + sample_dist,
     * with penalties, and mirostat (whose mu moves only in sample) aside */
    enum { W = 300 };
    float lw[W], pw[W];
    for (int cfg = 0; cfg < 4; cfg++) {
        struct strix_sampler_params q = strix_sampler_default_params();
        q.seed = 77 + (uint64_t)cfg;
        q.top_k = cfg == 1 ? 0 : 40;
        q.typical_p = cfg == 2 ? 0.8f : 1.0f;
        q.temperature = cfg == 3 ? 0.0f : 0.9f;
        q.repeat_penalty = 1.2f;
        strix_sampler *a, *b;
        strix_error err;
        CHECK(strix_sampler_create(&q, W, &a, &err) == STRIX_OK);
        CHECK(strix_sampler_create(&q, W, &b, &err) == STRIX_OK);
        int same = 1, distinct = 0;
        strix_token prev = -1;
        for (int step = 0; step < 200; step++) {
            wave(lw, W, step);
            const strix_token ta = strix_sampler_sample(a, lw);
            strix_token tb = -1;
            same &= strix_sampler_dist(b, lw, W, pw, &err) == STRIX_OK &&
                    strix_sampler_sample_dist(b, pw, W, &tb, &err) == STRIX_OK && ta == tb;
            same &= pw[ta] > 0.0f;
            distinct += ta != prev;
            prev = ta;
            strix_sampler_accept(a, ta);
            strix_sampler_accept(b, tb);
        }
        CHECKF(same && distinct > 20, "config %d: draws differ (%d changes)", cfg, distinct);
        strix_sampler_free(a);
        strix_sampler_free(b);
    }
    /* drawing from a caller's weights (not normalized) follows them */
    const float wts[4] = {0.2f, 0.0f, 1.2f, 0.6f};
    strix_sampler *s;
    strix_error err;
    p = plain();
    CHECK(strix_sampler_create(&p, 4, &s, &err) == STRIX_OK);
    int c[4] = {0};
    const int n = 40000;
    for (int i = 0; i < n; i++) {
        strix_token t = -1;
        if (strix_sampler_sample_dist(s, wts, 4, &t, &err) == STRIX_OK && t >= 0 && t < 4)
            c[t]++;
    }
    CHECK(c[1] == 0 && fabs(c[0] / (double)n - 0.1) < 0.01 && fabs(c[2] / (double)n - 0.6) < 0.01 &&
          fabs(c[3] / (double)n - 0.3) < 0.01);
    /* bad input is refused and draws nothing */
    const float neg[2] = {0.5f, -0.1f}, nan2[2] = {NAN, 1.0f}, zero[2] = {0.0f, 0.0f},
                inf2[2] = {INFINITY, 1.0f};
    strix_token t = 5;
    CHECK(strix_sampler_sample_dist(s, neg, 2, &t, &err) == STRIX_ERR_ARG && t == -1);
    CHECK(strix_sampler_sample_dist(s, nan2, 2, &t, &err) == STRIX_ERR_ARG);
    CHECK(strix_sampler_sample_dist(s, zero, 2, &t, &err) == STRIX_ERR_ARG);
    CHECK(strix_sampler_sample_dist(s, inf2, 2, &t, &err) == STRIX_ERR_ARG);
    CHECK(strix_sampler_sample_dist(s, wts, 0, &t, &err) == STRIX_ERR_ARG);
    float out4[4];
    CHECK(strix_sampler_dist(s, l, 5, out4, &err) == STRIX_ERR_ARG);
    CHECK(strix_sampler_dist(s, NULL, 4, out4, &err) == STRIX_ERR_ARG);
    strix_sampler_free(s);
}

/* Rewinding accepted tokens gives the distribution of a sampler that never
 * accepted them, inside the limits the header states; uniform numbers come
 * from the seeded generator. */
static void test_rewind(void)
{
    enum { V = 16 };
    float l[V], a[V], b[V];
    wave(l, V, 3);
    struct strix_sampler_params p = plain();
    p.repeat_penalty = 1.5f;
    p.frequency_penalty = 0.3f;
    p.presence_penalty = 0.2f;
    p.repeat_last_n = 8;
    strix_token seq[400];
    for (int i = 0; i < 400; i++)
        seq[i] = (strix_token)((i * 7 + i / 3) % V);
    strix_sampler *s, *f;
    strix_error err;
    CHECK(strix_sampler_create(&p, V, &s, &err) == STRIX_OK);
    CHECK(strix_sampler_rewind(s, 1, &err) == STRIX_ERR_ARG); /* nothing accepted */
    for (int i = 0; i < 20; i++)
        strix_sampler_accept(s, seq[i]);
    CHECK(strix_sampler_rewind(s, 21, &err) == STRIX_ERR_ARG);
    CHECK(strix_sampler_rewind(s, 15, &err) == STRIX_OK); /* 5 left, under the window */
    CHECK(strix_sampler_dist(s, l, V, a, &err) == STRIX_OK);
    CHECK(dist_of(&p, l, V, b, seq, 5));
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* past the ring's end: 300 accepted, 264 kept, 256 can go back */
    strix_sampler_reset(s, p.seed);
    for (int i = 0; i < 300; i++)
        strix_sampler_accept(s, seq[i]);
    CHECK(strix_sampler_rewind(s, STRIX_SAMPLER_REWIND_MAX + 1, &err) == STRIX_ERR_ARG);
    CHECK(strix_sampler_rewind(s, STRIX_SAMPLER_REWIND_MAX - 6, &err) == STRIX_OK);
    CHECK(strix_sampler_rewind(s, 6, &err) == STRIX_OK);
    CHECK(strix_sampler_dist(s, l, V, a, &err) == STRIX_OK);
    CHECK(dist_of(&p, l, V, b, seq, 300 - STRIX_SAMPLER_REWIND_MAX));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(strix_sampler_rewind(s, 1, &err) == STRIX_ERR_ARG); /* the window would lose a token */
    CHECK(strix_sampler_dist(s, l, V, a, &err) == STRIX_OK && memcmp(a, b, sizeof a) == 0);
    /* and the history goes on from there */
    for (int i = 0; i < 3; i++)
        strix_sampler_accept(s, seq[399 - i]);
    strix_token seq2[300 - STRIX_SAMPLER_REWIND_MAX + 3];
    memcpy(seq2, seq, (300 - STRIX_SAMPLER_REWIND_MAX) * sizeof *seq);
    for (int i = 0; i < 3; i++)
        seq2[300 - STRIX_SAMPLER_REWIND_MAX + i] = seq[399 - i];
    CHECK(strix_sampler_dist(s, l, V, a, &err) == STRIX_OK);
    CHECK(dist_of(&p, l, V, b, seq2, 300 - STRIX_SAMPLER_REWIND_MAX + 3));
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* the penalties matter here (the test can fail) */
    CHECK(dist_of(&p, l, V, b, seq, 0) && memcmp(a, b, sizeof a) != 0);
    /* uniform numbers: seeded, in [0, 1), in step with the draws */
    CHECK(strix_sampler_create(&p, V, &f, &err) == STRIX_OK);
    strix_sampler_reset(s, 9);
    strix_sampler_reset(f, 9);
    int same = 1;
    double mean = 0;
    for (int i = 0; i < 4000; i++) {
        const float u = strix_sampler_uniform(s);
        same &= u == strix_sampler_uniform(f) && u >= 0.0f && u < 1.0f;
        same &= strix_sampler_sample(s, l) == strix_sampler_sample(f, l);
        mean += u / 4000.0;
    }
    CHECK(same && fabs(mean - 0.5) < 0.02);
    strix_sampler_free(s);
    strix_sampler_free(f);
}

struct by_dist {
    double d;
    int i;
};

static int cmp_by_dist(const void *a, const void *b)
{
    const struct by_dist *x = a, *y = b;
    return x->d < y->d ? -1 : x->d > y->d ? 1 : (x->i > y->i) - (x->i < y->i);
}

/* Typical-p's kept set and distribution against the definition computed
 * here in double: on a small vocabulary, and on 128k tokens with the set
 * kept being most of the vocabulary (a selection quadratic in it would not
 * finish). Logits come in 1000 levels, so distances are far apart between
 * levels and tied within one (ties: the lower id first, as a sort by logit
 * then id gives). */
static void test_typical_exact(void)
{
    const int sizes[2] = {12, 131072};
    for (int k = 0; k < 2; k++) {
        const int V = sizes[k];
        const float tp = k ? 0.9f : 0.6f;
        float *l = malloc((size_t)V * sizeof *l), *got = malloc((size_t)V * sizeof *got);
        double *want = calloc((size_t)V, sizeof *want), *pr = malloc((size_t)V * sizeof *pr);
        struct by_dist *bd = malloc((size_t)V * sizeof *bd);
        if (!l || !got || !want || !pr || !bd) {
            CHECK(0);
        } else {
            double mx = -1e30, z = 0, ent = 0;
            for (int i = 0; i < V; i++) {
                l[i] = k ? (float)((i * 7919L) % 1000) * 0.002f : (float)(sin(i * 2.1) * 2.0);
                mx = fmax(mx, l[i]);
            }
            for (int i = 0; i < V; i++)
                z += pr[i] = exp(l[i] - mx);
            for (int i = 0; i < V; i++) {
                pr[i] /= z;
                ent -= pr[i] * log(pr[i]);
            }
            for (int i = 0; i < V; i++)
                bd[i] = (struct by_dist){fabs(-log(pr[i]) - ent), i};
            /* ties in distance are ties in logit: the lower id first */
            qsort(bd, (size_t)V, sizeof *bd, cmp_by_dist);
            double cum = 0, zk = 0;
            int kept = 0;
            while (kept < V) {
                cum += pr[bd[kept++].i];
                if (cum > tp)
                    break;
            }
            /* not at the edge of float rounding */
            CHECKF(fabs(cum - tp) > 1e-6 && fabs(cum - pr[bd[kept - 1].i] - tp) > 1e-6,
                   "V=%d: the cut is too close to call", V);
            for (int i = 0; i < kept; i++)
                zk += pr[bd[i].i];
            for (int i = 0; i < kept; i++)
                want[bd[i].i] = pr[bd[i].i] / zk;
            struct strix_sampler_params p = plain();
            p.typical_p = tp;
            CHECK(dist_of(&p, l, V, got, NULL, 0));
            int n_kept = 0, same_set = 1;
            double err_max = 0;
            for (int i = 0; i < V; i++) {
                n_kept += got[i] > 0.0f;
                same_set &= (got[i] > 0.0f) == (want[i] > 0.0);
                err_max = fmax(err_max, fabs(got[i] - want[i]) / fmax(want[i], 1e-30));
            }
            CHECKF(same_set && n_kept == kept && err_max < 1e-4,
                   "typical %g on %d tokens: kept %d of %d wanted, same %d, err %g", tp, V,
                   n_kept, kept, same_set, err_max);
            if (k)
                CHECKF(kept > V / 2, "kept %d cum %g", kept, cum);
        }
        free(l);
        free(got);
        free(want);
        free(pr);
        free(bd);
    }
}

/* Greedy sampling without bias or penalties takes a shortcut (one pass over
 * the logits): on logits with NaN, infinities, ties and signed zeros it picks
 * the first maximum defined here, agrees with the full chain (forced by a zero
 * bias), keeps the generator in step with it, and its log-probabilities,
 * asked for after the logits buffer was overwritten, are those of the logits
 * it was given. */
static void test_greedy_shortcut(void)
{
    enum { V = 300, ROUNDS = 400 };
    struct strix_sampler_params p = strix_sampler_default_params();
    p.temperature = 0.0f;
    p.seed = 7;
    p.n_probs = 3;
    strix_sampler *fast, *full;
    strix_error err;
    CHECK(strix_sampler_create(&p, V, &fast, &err) == STRIX_OK);
    const struct strix_logit_bias zero = {5, 0.0f};
    p.logit_bias = &zero;
    p.n_logit_bias = 1;
    CHECK(strix_sampler_create(&p, V, &full, &err) == STRIX_OK);
    float l[V], saved[V];
    uint32_t r = 12345u;
    int bad_pick = 0, bad_full = 0, bad_rng = 0, bad_probs = 0;
    for (int round = 0; round < ROUNDS; round++) {
        const int kind = round % 5; /* 0: values from a few levels (ties) */
        for (int i = 0; i < V; i++) {
            r = r * 1664525u + 1013904223u;
            const int u = (int)(r >> 24);
            l[i] = kind == 0   ? (float)(u % 4) - 2.0f
                   : kind == 1 ? (u % 7 == 0 ? NAN : (u % 11 == 0 ? INFINITY : (float)u))
                   : kind == 2 ? (u % 2 ? -0.0f : 0.0f)
                   : kind == 3 ? (round % 2 ? NAN : -INFINITY) /* all NaN / all -inf */
                               : (u % 3 ? NAN : -INFINITY);
        }
        int want = -1; /* the first largest non-NaN logit; 0 when all are NaN */
        for (int i = 0; i < V; i++)
            if (!isnan(l[i]) && (want < 0 || l[i] > l[want]))
                want = i;
        want = want < 0 ? 0 : want;
        const strix_token a = strix_sampler_sample(fast, l);
        const strix_token b = strix_sampler_sample(full, l);
        bad_pick += a != want;
        bad_full += a != b;
        memcpy(saved, l, sizeof l);
        for (int i = 0; i < V; i++)
            l[i] = (float)i; /* the next decode overwrites the logits */
        struct strix_token_prob ca, cb, ta[3], tb[3];
        const int na = strix_sampler_last_probs(fast, &ca, ta, 3);
        const int nb = strix_sampler_last_probs(full, &cb, tb, 3);
        int same = na == 3 && nb == 3 && ca.id == a && cb.id == b;
        same &= memcmp(&ca.logprob, &cb.logprob, sizeof(float)) == 0;
        for (int i = 0; i < 3 && same; i++)
            same &= ta[i].id == tb[i].id && memcmp(&ta[i].logprob, &tb[i].logprob, 4) == 0;
        /* the chosen token's log-probability from the saved logits (finite case) */
        if (kind == 0) {
            double z = 0.0;
            for (int i = 0; i < V; i++)
                z += exp(saved[i]);
            same &= fabs(ca.logprob - (saved[a] - log(z))) < 1e-5;
        }
        bad_probs += !same;
        bad_rng += strix_sampler_uniform(fast) != strix_sampler_uniform(full);
    }
    CHECKF(bad_pick == 0 && bad_full == 0 && bad_rng == 0 && bad_probs == 0,
           "greedy shortcut: %d wrong picks, %d unlike the chain, %d generator, %d probs",
           bad_pick, bad_full, bad_rng, bad_probs);
    strix_sampler_free(fast);
    strix_sampler_free(full);
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
    test_nan_logits();
    test_dist();
    test_rewind();
    test_typical_exact();
    test_greedy_shortcut();
    test_stop_find();
    TEST_MAIN_END();
}
