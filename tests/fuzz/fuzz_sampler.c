/*
 * fuzz_sampler.c - libFuzzer target for the sampler (src/generate/sampler.c):
 * hostile logits (any float bits: NaN, infinities, huge and tiny values) and
 * random parameters (temperature, top-k, top-p, min-p, typical-p, penalties,
 * mirostat, stage order, logit biases, n_probs, history and its rewinding).
 *
 * Input: a 32-byte header of parameters, then the logits as raw float32
 * (1 to 512 of them: the vocabulary). Parameters the sampler refuses end the
 * run. Checked beyond "no crash": every token is in range; the distribution
 * strix_sampler_dist returns is finite, >= 0, sums to 1 and gives the token
 * the sampler then draws a non-zero probability (the draw is from it); a NaN
 * logit is never drawn while another logit is finite or +inf (no logit bias);
 * log-probabilities are never NaN.
 *
 * Built by `make fuzz`; scripts/fuzz.sh runs it on a copy of
 * tests/fuzz/corpus/fuzz_sampler.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "strix.h"

enum { HEADER = 32, MAX_VOCAB = 512 };

static float f_of(const uint8_t *p)
{
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}

/* A byte as a value in [lo, hi]. */
static float scaled(uint8_t b, float lo, float hi)
{
    return lo + (hi - lo) * (float)b / 255.0f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER + 4)
        return 0;
    const uint8_t *h = data;
    int nv = (int)((size - HEADER) / 4);
    nv = nv > MAX_VOCAB ? MAX_VOCAB : nv;
    float *l = malloc((size_t)nv * sizeof *l), *pr = malloc((size_t)nv * sizeof *pr);
    REQUIRE(l && pr);
    for (int i = 0; i < nv; i++)
        l[i] = f_of(data + HEADER + 4 * i);

    static const char *const orders[] = {
        NULL, "top_k;temperature", "temperature;top_p;min_p", "typical_p;top_k;penalties",
        "min_p;typical_p;temperature;top_p", "penalties", "", "temperature;penalties;top_k"};
    struct strix_sampler_params p = strix_sampler_default_params();
    p.temperature = h[0] < 32 ? 0.0f : h[0] < 40 ? -1.0f : scaled(h[0], 0.0f, 4.0f);
    p.top_k = (int)h[1] - 16;
    p.top_p = h[2] == 255 ? INFINITY : scaled(h[2], -0.1f, 1.1f);
    p.min_p = scaled(h[3], -0.1f, 1.1f);
    p.typical_p = scaled(h[4], -0.1f, 1.1f);
    p.repeat_penalty = scaled(h[5], 0.01f, 3.0f);
    p.repeat_last_n = h[6] % 16;
    p.frequency_penalty = scaled(h[7], -2.0f, 2.0f);
    p.presence_penalty = scaled(h[8], -2.0f, 2.0f);
    p.mirostat = h[9] % 4 == 0 ? 2 : 0;
    p.mirostat_tau = scaled(h[10], 0.0f, 10.0f);
    p.mirostat_eta = scaled(h[11], 0.0f, 2.0f);
    p.order = orders[h[12] % 8];
    p.n_probs = h[13] % 5 < nv ? h[13] % 5 : 0;
    p.seed = (uint64_t)h[14] << 8 | h[15];
    struct strix_logit_bias bias[4];
    p.n_logit_bias = h[16] % 5;
    for (int i = 0; i < p.n_logit_bias; i++) {
        bias[i].token = h[17 + i] % nv;
        bias[i].bias = h[21 + i] == 0 ? -INFINITY : h[21 + i] == 1 ? INFINITY
                                                                   : scaled(h[21 + i], -8, 8);
    }
    p.logit_bias = bias;

    strix_sampler *s;
    strix_error err;
    if (strix_sampler_create(&p, nv, &s, &err) != STRIX_OK) {
        free(l);
        free(pr);
        return 0;
    }
    int any_number = 0; /* a finite or +inf logit */
    for (int i = 0; i < nv; i++)
        any_number |= !isnan(l[i]) && l[i] != -INFINITY;
    const int n_steps = 1 + h[25] % 8;
    for (int step = 0; step < n_steps; step++) {
        REQUIRE(strix_sampler_dist(s, l, nv, pr, &err) == STRIX_OK);
        double sum = 0.0;
        for (int i = 0; i < nv; i++) {
            REQUIRE(pr[i] >= 0.0f && pr[i] <= 1.0f);
            sum += pr[i];
        }
        REQUIRE(fabs(sum - 1.0) < 1e-3);
        const strix_token t = strix_sampler_sample(s, l);
        REQUIRE(t >= 0 && t < nv && pr[t] > 0.0f);
        if (p.n_logit_bias == 0 && any_number)
            REQUIRE(!isnan(l[t]));
        struct strix_token_prob ch, top[4];
        const int n = strix_sampler_last_probs(s, &ch, top, 4);
        REQUIRE(ch.id == t && !isnan(ch.logprob) && n == p.n_probs);
        for (int i = 0; i < n; i++)
            REQUIRE(top[i].id >= 0 && top[i].id < nv && !isnan(top[i].logprob));
        strix_token u = -1;
        REQUIRE(strix_sampler_sample_dist(s, pr, nv, &u, &err) == STRIX_OK && u >= 0 && u < nv &&
                pr[u] > 0.0f);
        strix_sampler_accept(s, h[26 + step % 6] % 2 ? t : (strix_token)(h[26 + step % 6] % nv));
        if (h[26 + step % 6] % 5 == 0) { /* take some back: allowed or refused, never a fault */
            const int rc = strix_sampler_rewind(s, h[26 + step % 6] % 7, &err);
            REQUIRE(rc == STRIX_OK || rc == STRIX_ERR_ARG);
        }
        const float r = strix_sampler_uniform(s);
        REQUIRE(r >= 0.0f && r < 1.0f);
        if (h[31] & 1)
            l[(step * 37) % nv] = f_of(h + 4 * (step % 7)); /* the logits move between steps */
        any_number = 0;
        for (int i = 0; i < nv; i++)
            any_number |= !isnan(l[i]) && l[i] != -INFINITY;
    }
    strix_sampler_free(s);
    free(l);
    free(pr);
    return 0;
}
