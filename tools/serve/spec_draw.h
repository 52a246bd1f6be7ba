/*
 * spec_draw.h - the server's sampled speculative test of one drafted token
 * (a point mass on x), split so that a test can check its distribution
 * exactly: spec_draw_test takes the uniform number as an argument, and
 * spec_draw composes it with the sampler's generator and residual draw.
 * Header-only and public API only (include/strix.h), so tests/test_spec_draw.c
 * builds it without the server's libraries.
 *
 * The rule: x is accepted with probability p(x); on rejection the token is
 * drawn from p with x removed, renormalised. The output is then distributed
 * as p exactly: p(x) for x, and (1 - p(x)) * p(v) / (1 - p(x)) = p(v) for
 * v != x. Forgetting to remove x would give x the probability
 * p(x) + (1 - p(x)) * p(x).
 */
#ifndef STRIX_SPEC_DRAW_H
#define STRIX_SPEC_DRAW_H

#include "strix.h"

/* The acceptance test for draft x under the distribution p[0..n) with the
 * uniform number u in [0, 1). Returns 1 if x is accepted (p unchanged);
 * 0 if rejected, with p turned into the residual to draw from (p[x] = 0,
 * not renormalised: strix_sampler_sample_dist normalises); -1 if rejected
 * and nothing is left to draw from (cannot happen for a distribution p:
 * u < 1 always accepts a point mass), or x is out of range. */
static inline int spec_draw_test(float *p, int n, strix_token x, float u)
{
    if (x < 0 || x >= n)
        return -1;
    if (u < p[x])
        return 1;
    p[x] = 0.0f;
    double sum = 0.0;
    for (int v = 0; v < n; v++)
        sum += p[v];
    return sum > 0.0 ? 0 : -1;
}

/* The whole draw for draft x: p[0..n) is the request's final distribution
 * (strix_sampler_dist of smp; overwritten by the residual on rejection), the
 * uniform number and a rejection's draw come from smp's generator. Sets
 * *tok (x when accepted) and returns STRIX_OK, or an error with *tok = -1. */
static inline int spec_draw(strix_sampler *smp, float *p, int n, strix_token x, strix_token *tok)
{
    *tok = -1;
    const int r = spec_draw_test(p, n, x, strix_sampler_uniform(smp));
    if (r == 1) {
        *tok = x;
        return STRIX_OK;
    }
    if (r < 0)
        return STRIX_ERR_ARG;
    return strix_sampler_sample_dist(smp, p, n, tok, NULL);
}

#endif
