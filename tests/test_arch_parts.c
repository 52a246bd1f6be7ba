/*
 * test_arch_parts.c - the pieces of the architecture variants, each against
 * a direct computation written here from the papers' formulas (in double),
 * so a failure names the part: ALiBi slopes (12 heads, not a power of two),
 * YaRN's correction dimensions, angles and scale, linear scaling,
 * LayerNorm, GELU, MoE routing and expert statistics, sinusoidal positions,
 * soft-capping. (The sliding-window KV cache is test_api's.)
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>

#define PI 3.14159265358979323846

#include "runtime/context.h"
#include "fixtures.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "strix.h"
#include "strix_dev.h"

static void test_alibi(void)
{
    /* Press et al.: for n heads, a power of two, slopes 2^(-8 i / n),
     * i = 1..n; otherwise the n2 = 8 slopes of the closest power of two
     * below, then every other slope of 2 * n2 = 16 heads. */
    float s[12];
    kern_alibi_slopes(s, 12, 8.0f);
    for (int h = 0; h < 12; h++) {
        const double want = h < 8 ? pow(2.0, -8.0 * (h + 1) / 8.0)
                                  : pow(2.0, -8.0 * (2 * (h - 8) + 1) / 16.0);
        CHECKF(fabs(s[h] - want) < 1e-6 * want, "alibi slope %d: %g vs %g", h, s[h], want);
    }
    /* a power of two, and another maximum bias (MPT's setting) */
    float s8[8];
    kern_alibi_slopes(s8, 8, 4.0f);
    for (int h = 0; h < 8; h++)
        CHECK(fabs(s8[h] - pow(2.0, -4.0 * (h + 1) / 8.0)) < 1e-6);
}

static void test_rope_scaling(void)
{
    const int n_rot = 64, n_ctx_orig = 4096;
    const double base = 10000.0, factor = 4.0;
    /* YaRN: dimension d completes n_ctx_orig / (2 pi base^(d / n_rot)) turns
     * over the original context; the ramp runs from the dimension with 32
     * turns (rounded down) to the one with 1 turn (rounded up). */
    double lo = n_rot * log(n_ctx_orig / (32 * 2 * PI)) / (2 * log(base));
    double hi = n_rot * log(n_ctx_orig / (1 * 2 * PI)) / (2 * log(base));
    float dims[2];
    kern_yarn_corr_dims(n_rot, n_ctx_orig, (float)base, 32.0f, 1.0f, dims);
    CHECKF(dims[0] == (float)floor(lo) && dims[1] == (float)ceil(hi), "yarn dims %g %g", dims[0],
           dims[1]);
    struct kern_rope_cfg r = {n_rot, 1, (float)base, (float)(1 / factor), 1.0f, 1.0f,
                              {dims[0], dims[1]}};
    const double mscale = 1.0 + 0.1 * log(factor);
    const int pos = 37;
    for (int i = 0; i < n_rot / 2; i++) {
        const double extrap = pos / pow(base, 2.0 * i / n_rot), interp = extrap / factor;
        double ramp = (i - floor(lo)) / (ceil(hi) - floor(lo));
        ramp = ramp < 0 ? 0 : (ramp > 1 ? 1 : ramp);
        const double theta = interp * ramp + extrap * (1 - ramp);
        float c, s;
        kern_rope_angle(&r, pos, i, &c, &s);
        CHECKF(fabs(c - cos(theta) * mscale) < 2e-4 && fabs(s - sin(theta) * mscale) < 2e-4,
               "yarn angle %d: %g %g vs %g %g", i, c, s, cos(theta) * mscale,
               sin(theta) * mscale);
    }
    /* linear scaling (position interpolation): theta / factor, no scale */
    struct kern_rope_cfg lin = {n_rot, 0, (float)base, 0.5f, 0.0f, 1.0f, {0, 0}};
    for (int i = 0; i < n_rot / 2; i++) {
        const double theta = pos / pow(base, 2.0 * i / n_rot) * 0.5;
        float c, s;
        kern_rope_angle(&lin, pos, i, &c, &s);
        CHECK(fabs(c - cos(theta)) < 2e-4 && fabs(s - sin(theta)) < 2e-4);
    }
    /* unscaled, kern_rope_ext rotates like kern_rope */
    float a[64], b[64];
    for (int i = 0; i < 64; i++)
        a[i] = b[i] = sinf((float)i);
    struct kern_rope_cfg plain = {32, 1, 10000.0f, 1.0f, 0.0f, 1.0f, {0, 0}};
    kern_rope_ext(a, 11, &plain);
    kern_rope(b, 32, 11, 10000.0f, 1);
    int same = 1;
    for (int i = 0; i < 64; i++)
        same &= fabsf(a[i] - b[i]) < 1e-6f;
    CHECK(same);
}

static void test_norm_act(void)
{
    float x[37], y[37], w[37], b[37];
    for (int i = 0; i < 37; i++) {
        x[i] = sinf(0.7f * (float)i) * 3.0f + 0.5f;
        w[i] = 1.0f + 0.01f * (float)i;
        b[i] = 0.1f * cosf((float)i);
    }
    double mean = 0, var = 0;
    for (int i = 0; i < 37; i++)
        mean += x[i];
    mean /= 37;
    for (int i = 0; i < 37; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= 37;
    kern_layernorm(y, x, w, b, 37, 1e-5f);
    for (int i = 0; i < 37; i++) {
        const double want = (x[i] - mean) / sqrt(var + 1e-5) * w[i] + b[i];
        CHECKF(fabs(y[i] - want) < 1e-5, "layernorm %d: %g vs %g", i, y[i], want);
    }
    for (float v = -6.0f; v <= 6.0f; v += 0.25f) {
        const double want = 0.5 * v * (1 + tanh(sqrt(2 / PI) * (v + 0.044715 * v * v * v)));
        CHECKF(fabs(kern_gelu1(v) - want) < 1e-6, "gelu(%g)", v);
        float r = v;
        kern_act(KERN_ACT_RELU, &r, 1);
        CHECK(r == (v > 0 ? v : 0.0f));
    }
    float z[3] = {100.0f, -3.0f, 0.5f};
    kern_softcap(z, 3, 30.0f);
    CHECK(fabs(z[0] - 30 * tanh(100.0 / 30)) < 1e-4 && fabs(z[2] - 30 * tanh(0.5 / 30)) < 1e-6);
    /* sinusoidal positions */
    float pe[8] = {0};
    kern_sinusoid_add(pe, 8, 3);
    for (int i = 0; i < 4; i++) {
        const double angle = 3.0 / pow(10000.0, 2.0 * i / 8);
        CHECK(fabs(pe[2 * i] - sin(angle)) < 1e-6 && fabs(pe[2 * i + 1] - cos(angle)) < 1e-6);
    }
}

static void test_moe_route(void)
{
    const float logits[6] = {0.3f, 2.0f, -1.0f, 1.5f, 1.5f, 0.0f};
    float l[6];
    memcpy(l, logits, sizeof l);
    int ids[3];
    float w[3];
    kern_moe_route(l, 6, 2, 1, ids, w);
    double p[6], sum = 0;
    for (int e = 0; e < 6; e++)
        sum += p[e] = exp(logits[e]);
    CHECK(ids[0] == 1 && ids[1] == 3); /* the tie 3 / 4 goes to the lower */
    CHECK(fabs(w[0] - p[1] / (p[1] + p[3])) < 1e-6 && fabs(w[1] - p[3] / (p[1] + p[3])) < 1e-6);
    memcpy(l, logits, sizeof l);
    kern_moe_route(l, 6, 3, 0, ids, w);
    CHECK(ids[2] == 4 && fabs(w[0] - p[1] / sum) < 1e-6 && fabs(w[2] - p[4] / sum) < 1e-6);
}

/* Expert load statistics count every routed token once per chosen expert. */
static void test_expert_stats(void)
{
    strix_model *m = load_fixture("arch/mixtral.gguf", NULL);
    if (!m)
        return;
    strix_context *ctx;
    strix_error err;
    CHECK(strix_context_create(m, NULL, &ctx, &err) == STRIX_OK);
    strix_token ids[10] = {1, 5, 9, 200, 300, 7, 7, 7, 100, 42};
    CHECK(strix_decode(ctx, ids, NULL, 10, NULL, &err) == STRIX_OK);
    uint64_t counts[8];
    for (int l = 0; l < 2; l++) {
        CHECK(strix_expert_load(ctx, l, counts, 8) == 4);
        uint64_t total = 0;
        for (int e = 0; e < 4; e++)
            total += counts[e];
        CHECKF(total == 10 * 2, "layer %d: %llu routed", l, (unsigned long long)total);
    }
    CHECK(strix_expert_load(ctx, 2, counts, 8) == -1);
    strix_expert_load_reset(ctx);
    CHECK(strix_expert_load(ctx, 0, counts, 8) == 4 && counts[0] + counts[1] + counts[2] + counts[3] == 0);
    strix_context_free(ctx);
    strix_model_free(m);
}

static float *last_logits(strix_model *m, const strix_token *ids, int n)
{
    strix_context *ctx;
    strix_error err;
    float *out = NULL;
    if (strix_context_create(m, NULL, &ctx, &err) != STRIX_OK)
        return NULL;
    if (strix_decode(ctx, ids, NULL, n, NULL, &err) == STRIX_OK) {
        out = malloc((size_t)strix_vocab_size(m) * sizeof(float));
        memcpy(out, strix_get_logits(ctx, -1), (size_t)strix_vocab_size(m) * sizeof(float));
    }
    strix_context_free(ctx);
    return out;
}

/* Sinusoidal positions and post-norm blocks (strix's own keys): the model
 * has no learned positions, the options survive a save and load, and they
 * change the result. */
static void test_strix_options(void)
{
    struct strix_synth_params sp = strix_synth_default_params();
    sp.arch = "gpt2", sp.n_embd = 32, sp.n_ff = 64, sp.n_layer = 2, sp.n_head = 4;
    sp.n_head_kv = 4, sp.n_ctx = 64, sp.seed = 3;
    strix_model *pre = synth_fixture(&sp), *post = NULL, *back = NULL;
    strix_error err;
    sp.post_norm = 1, sp.sinusoidal = 1;
    post = synth_fixture(&sp);
    if (!pre || !post)
        return;
    CHECK(strix_model_n_tensors(post) == strix_model_n_tensors(pre) - 1); /* no position_embd */
    char path[4096];
    test_tmpfile(path, sizeof path, "options");
    CHECKF(strix_model_save_gguf(post, path, NULL, &err) == STRIX_OK, "%s", err.msg);
    CHECKF(strix_model_load(path, NULL, &back, &err) == STRIX_OK, "%s", err.msg);
    remove(path);
    const strix_token ids[6] = {1, 40, 41, 300, 12, 7};
    float *a = last_logits(pre, ids, 6), *b = last_logits(post, ids, 6);
    float *c = back ? last_logits(back, ids, 6) : NULL;
    CHECK(a && b && c);
    if (a && b && c) {
        CHECK(back->hp.post_norm == 1 && back->hp.sinusoidal == 1);
        CHECK(memcmp(b, c, (size_t)strix_vocab_size(post) * sizeof(float)) == 0);
        CHECK(memcmp(a, b, (size_t)strix_vocab_size(post) * sizeof(float)) != 0);
    }
    free(a);
    free(b);
    free(c);
    strix_model_free(pre);
    strix_model_free(post);
    strix_model_free(back);
}

int main(void)
{
    test_strix_options();
    test_alibi();
    test_rope_scaling();
    test_norm_act();
    test_moe_route();
    test_expert_stats();
    TEST_MAIN_END();
}
