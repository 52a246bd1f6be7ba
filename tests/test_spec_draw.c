/*
 * test_spec_draw.c - the server's sampled speculative test of a draft token
 * (tools/serve/spec_draw.h): the output must be distributed as the target
 * distribution p itself.
 *
 * Exactly: for each small p and each draft x, spec_draw_test runs over a
 * grid of K uniform numbers; the share accepted and the residual it leaves
 * give the output distribution in closed form (accepted share on x, the
 * rest spread over the residual normalised, as strix_sampler_sample_dist
 * draws), which must equal p within the grid's 1/K. A rule that kept x in
 * the residual would give x the probability p(x) + (1 - p(x)) p(x) and fail.
 * Then through a real sampler (strix_sampler_dist, the generator, the
 * residual draw): token counts over many draws within 5 standard deviations
 * of p (fixed seed, so the outcome is fixed).
 */
#include <math.h>

#include "harness.h"
#include "strix.h"

#include "../tools/serve/spec_draw.h"

#define V 7
#define K 4096 /* uniform numbers on the grid */

static uint64_t rng_state = 88172645463325252ull;

static double rnd(void) /* xorshift64, [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* The output distribution of the draw for draft x under p, from the grid;
 * checks every call accepts or rejects, the residual is p without x and the
 * same for every rejection. */
static void grid_out(const float *p, int x, double *out)
{
    float q[V], res[V];
    int n_acc = 0, n_rej = 0, res_same = 1;
    for (int k = 0; k < K; k++) {
        memcpy(q, p, sizeof q);
        const int r = spec_draw_test(q, V, x, (float)((k + 0.5) / K));
        res_same &= r == 1 || r == 0;
        if (r == 1) {
            n_acc++;
            res_same &= memcmp(q, p, sizeof q) == 0;
        } else if (r == 0) {
            if (n_rej++ == 0)
                memcpy(res, q, sizeof q);
            res_same &= memcmp(q, res, sizeof q) == 0;
        }
    }
    CHECK(res_same);
    const double acc = (double)n_acc / K;
    double sum = 0.0;
    for (int v = 0; v < V; v++)
        sum += n_rej ? res[v] : 0.0;
    for (int v = 0; v < V; v++)
        out[v] = (v == x ? acc : 0.0) + (n_rej && sum > 0.0 ? (1.0 - acc) * res[v] / sum : 0.0);
    if (n_rej) {
        for (int v = 0; v < V; v++)
            CHECKF(res[v] == (v == x ? 0.0f : p[v]), "residual[%d] %g, p %g, x %d", v,
                   (double)res[v], (double)p[v], x);
    }
}

static void test_exact(void)
{
    float p[V];
    double out[V];
    for (int trial = 0; trial < 40; trial++) {
        double sum = 0.0;
        for (int v = 0; v < V; v++) {
            /* some zeros (truncated tokens), one trial a point mass */
            double w = trial % 5 == 1 && v % 3 == 0 ? 0.0 : rnd() + 0.01;
            if (trial == 3)
                w = v == 2;
            p[v] = (float)w;
            sum += w;
        }
        for (int v = 0; v < V; v++)
            p[v] = (float)(p[v] / sum);
        for (int x = 0; x < V; x++) {
            grid_out(p, x, out);
            double worst = 0.0;
            for (int v = 0; v < V; v++)
                worst = fmax(worst, fabs(out[v] - p[v]));
            CHECKF(worst <= 1.0 / K + 1e-6, "trial %d, x %d: output off p by %g", trial, x, worst);
        }
    }
    /* edges: p(x) = 1 accepts at every u < 1, p(x) = 0 never */
    float one[V] = {0}, q[V];
    one[4] = 1.0f;
    memcpy(q, one, sizeof q);
    CHECK(spec_draw_test(q, V, 4, nextafterf(1.0f, 0.0f)) == 1);
    memcpy(q, one, sizeof q);
    CHECK(spec_draw_test(q, V, 1, 0.0f) == 0 && q[1] == 0.0f && q[4] == 1.0f);
    /* out of range, or nothing left: -1, and spec_draw says so */
    CHECK(spec_draw_test(q, V, -1, 0.5f) == -1);
    CHECK(spec_draw_test(q, V, V, 0.5f) == -1);
    float zero[V] = {0};
    CHECK(spec_draw_test(zero, V, 0, 0.5f) == -1);
}

static void test_sampler_draws(void)
{
    const double pw[V] = {0.30, 0.22, 0.16, 0.12, 0.10, 0.06, 0.04};
    float logits[V], p[V], q[V];
    for (int v = 0; v < V; v++)
        logits[v] = (float)log(pw[v]);
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = 1234;
    strix_sampler *s;
    strix_error err;
    int rc = strix_sampler_create(&sp, V, &s, &err);
    CHECKF(rc == STRIX_OK, "%s", err.msg);
    if (rc != STRIX_OK)
        return;
    CHECK(strix_sampler_dist(s, logits, V, p, &err) == STRIX_OK);
    for (int v = 0; v < V; v++)
        CHECKF(fabs(p[v] - pw[v]) < 1e-6, "dist[%d] %g", v, (double)p[v]);
    enum { N = 20000 };
    for (int x = 0; x < V; x += 3) {
        int count[V] = {0};
        for (int i = 0; i < N; i++) {
            strix_token tok;
            memcpy(q, p, sizeof q);
            CHECK(spec_draw(s, q, V, x, &tok) == STRIX_OK);
            if (tok >= 0 && tok < V)
                count[tok]++;
        }
        for (int v = 0; v < V; v++) {
            const double sd = sqrt(N * pw[v] * (1.0 - pw[v]));
            CHECKF(fabs(count[v] - N * pw[v]) <= 5.0 * sd, "x %d: token %d drawn %d times, %g expected",
                   x, v, count[v], N * pw[v]);
        }
    }
    strix_token tok = 0;
    memcpy(q, p, sizeof q);
    CHECK(spec_draw(s, q, V, V, &tok) == STRIX_ERR_ARG && tok == -1);
    strix_sampler_free(s);
}

int main(void)
{
    test_exact();
    test_sampler_draws();
    TEST_MAIN_END();
}
