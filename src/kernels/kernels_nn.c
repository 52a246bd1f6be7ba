/*
 * kernels_nn.c - scalar kernels of the architecture variants (see
 * kernels.h): LayerNorm, GELU and ReLU, bias adds, ALiBi slopes, scaled and
 * YaRN rotary positions, sinusoidal positions, soft-capping and the top-k
 * routing of Mixture-of-Experts layers. Plain loops; the formulas follow the
 * papers and the conventions of llama.cpp's ggml where it fixes a detail
 * (GELU's tanh approximation, ALiBi's slopes for head counts that are not
 * powers of two, YaRN's correction dimensions).
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

void kern_layernorm(float *y, const float *x, const float *w, const float *b, int n, float eps)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)x[i];
    const float mean = (float)(sum / n);
    double sum2 = 0.0;
    for (int i = 0; i < n; i++) {
        const float v = x[i] - mean;
        y[i] = v;
        sum2 += (double)(v * v);
    }
    const float var = (float)(sum2 / n);
    const float scale = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < n; i++) {
        float v = y[i] * scale;
        if (w)
            v *= w[i];
        if (b)
            v += b[i];
        y[i] = v;
    }
}

float kern_gelu1(float x)
{
    const float k = 0.79788456080286535588f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + 0.044715f * x * x)));
}

void kern_act(int act, float *x, int n)
{
    for (int i = 0; i < n; i++) {
        const float v = x[i];
        switch (act) {
        case KERN_ACT_GELU: x[i] = kern_gelu1(v); break;
        case KERN_ACT_RELU: x[i] = v > 0.0f ? v : 0.0f; break;
        default: x[i] = v / (1.0f + expf(-v)); break;
        }
    }
}

void kern_act_mul(int act, float *a, const float *b, int n)
{
    if (act == KERN_ACT_SILU) {
        kern_silu_mul(a, b, n);
        return;
    }
    kern_act(act, a, n);
    for (int i = 0; i < n; i++)
        a[i] *= b[i];
}

void kern_add(float *y, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += b[i];
}

void kern_alibi_slopes(float *slopes, int n_head, float max_bias)
{
    /* the largest power of two <= n_head gets the geometric sequence
     * 2^(-max_bias * (h+1) / n2); the remaining heads take the odd terms of
     * the sequence for 2 * n2 heads */
    int n2 = 1;
    while (n2 * 2 <= n_head)
        n2 *= 2;
    const float m0 = powf(2.0f, -max_bias / (float)n2);
    const float m1 = powf(2.0f, -(max_bias / 2.0f) / (float)n2);
    for (int h = 0; h < n_head; h++)
        slopes[h] = h < n2 ? powf(m0, (float)(h + 1)) : powf(m1, (float)(2 * (h - n2) + 1));
}

void kern_yarn_corr_dims(int n_rot, int n_ctx_orig, float base, float beta_fast, float beta_slow,
                         float dims[2])
{
    /* the dimension whose wavelength fits `rotations` times in n_ctx_orig */
    const float pi2 = 6.28318530717958647692f;
    const float lo = (float)n_rot * logf((float)n_ctx_orig / (beta_fast * pi2)) / (2 * logf(base));
    const float hi = (float)n_rot * logf((float)n_ctx_orig / (beta_slow * pi2)) / (2 * logf(base));
    const float start = floorf(lo), end = ceilf(hi);
    dims[0] = start > 0.0f ? start : 0.0f;
    dims[1] = end < (float)(n_rot - 1) ? end : (float)(n_rot - 1);
}

void kern_rope_angle(const struct kern_rope_cfg *r, int pos, int i, float *cos_t, float *sin_t)
{
    const float extrap = (float)pos / powf(r->base, (float)(2 * i) / (float)r->n_rot);
    const float interp = r->freq_scale * extrap;
    float theta = interp, mscale = r->attn_factor;
    if (r->ext_factor != 0.0f) {
        /* YaRN: high-frequency dimensions extrapolate, low ones interpolate,
         * with a linear ramp between the correction dimensions */
        const float span = r->corr[1] - r->corr[0] > 0.001f ? r->corr[1] - r->corr[0] : 0.001f;
        float y = ((float)i - r->corr[0]) / span;
        y = y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
        const float mix = (1.0f - y) * r->ext_factor;
        theta = interp * (1.0f - mix) + extrap * mix;
        mscale *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
    }
    *cos_t = cosf(theta) * mscale;
    *sin_t = sinf(theta) * mscale;
}

void kern_rope_ext_table(float *cs, int pos, const struct kern_rope_cfg *r)
{
    for (int i = 0; i < r->n_rot / 2; i++)
        kern_rope_angle(r, pos, i, &cs[2 * i], &cs[2 * i + 1]);
}

void kern_rope_ext(float *v, int pos, const struct kern_rope_cfg *r)
{
    const int half = r->n_rot / 2;
    for (int i = 0; i < half; i++) {
        float c, s;
        kern_rope_angle(r, pos, i, &c, &s);
        const int a = r->neox ? i : 2 * i;
        const int b = r->neox ? i + half : 2 * i + 1;
        const float v0 = v[a], v1 = v[b];
        v[a] = v0 * c - v1 * s;
        v[b] = v0 * s + v1 * c;
    }
}

void kern_sinusoid_add(float *x, int n, int pos)
{
    for (int i = 0; i + 1 < n; i += 2) {
        const double angle = (double)pos / pow(10000.0, (double)i / (double)n);
        x[i] += (float)sin(angle);
        x[i + 1] += (float)cos(angle);
    }
    if (n % 2)
        x[n - 1] += (float)sin((double)pos / pow(10000.0, (double)(n - 1) / (double)n));
}

void kern_softcap(float *x, size_t n, float cap)
{
    for (size_t i = 0; i < n; i++)
        x[i] = cap * tanhf(x[i] / cap);
}

void kern_moe_route(float *logits, int n_expert, int k, int renorm, int *ids, float *w)
{
    kern_softmax(logits, n_expert);
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < n_expert; e++) {
            int taken = 0;
            for (int i = 0; i < j && !taken; i++)
                taken = ids[i] == e;
            if (!taken && (best < 0 || logits[e] > logits[best]))
                best = e;
        }
        ids[j] = best;
        w[j] = logits[best];
    }
    if (renorm) {
        float sum = 0.0f;
        for (int j = 0; j < k; j++)
            sum += w[j];
        for (int j = 0; j < k; j++)
            w[j] /= sum;
    }
}
