/*
 * moe_route.c - DeepSeekMoE routing (mla.h): gating, the selection bias,
 * group-limited top-k, renormalisation and scaling of the chosen experts'
 * weights, as llama.cpp reads them from deepseek2 files. The experts
 * themselves run in forward.c's moe().
 */
#include <math.h>

#include "kernels/kernels.h"
#include "runtime/mla.h"

#define MAX_EXPERTS 1024 /* arch.c refuses more */

/* Index of the largest of x[0..n) not yet taken (taken[i] != 0); ties go to
 * the lower index. -1 if all are taken or -inf. */
static int best_free(const float *x, const uint8_t *taken, int n)
{
    int b = -1;
    for (int i = 0; i < n; i++)
        if (!taken[i] && x[i] > -INFINITY && (b < 0 || x[i] > x[b]))
            b = i;
    return b;
}

void moe_route_ds(const struct hparams *hp, float *logits, const float *bias, int *ids, float *w)
{
    const int ne = hp->n_expert, k = hp->n_expert_used;
    float sel[MAX_EXPERTS];
    uint8_t taken[MAX_EXPERTS];
    STRIX_ASSERT(ne <= MAX_EXPERTS);
    if (hp->moe_gating == MOE_GATING_SIGMOID)
        for (int e = 0; e < ne; e++)
            logits[e] = 1.0f / (1.0f + expf(-logits[e]));
    else
        kern_softmax(logits, ne);
    for (int e = 0; e < ne; e++)
        sel[e] = logits[e] + (bias ? bias[e] : 0.0f);
    if (hp->n_expert_groups > 1) {
        /* a group scores the sum of its two best selection values; the
         * experts of all but the n_group_used best groups are dropped */
        const int ng = hp->n_expert_groups, per = ne / ng;
        float score[MAX_EXPERTS];
        for (int g = 0; g < ng; g++) {
            const float *x = sel + (size_t)g * (size_t)per;
            float a = -INFINITY, b = -INFINITY;
            for (int i = 0; i < per; i++) {
                if (x[i] > a) {
                    b = a;
                    a = x[i];
                } else if (x[i] > b) {
                    b = x[i];
                }
            }
            score[g] = per > 1 ? a + b : a;
            taken[g] = 0;
        }
        uint8_t keep[MAX_EXPERTS] = {0};
        for (int j = 0; j < hp->n_group_used; j++) {
            const int g = best_free(score, taken, ng);
            if (g < 0)
                break;
            taken[g] = 1;
            keep[g] = 1;
        }
        for (int e = 0; e < ne; e++)
            if (!keep[e / per])
                sel[e] = -INFINITY;
    }
    for (int e = 0; e < ne; e++)
        taken[e] = 0;
    float sum = 0.0f;
    for (int j = 0; j < k; j++) {
        int e = best_free(sel, taken, ne);
        if (e < 0) /* fewer experts left than k: cannot happen for valid counts */
            for (e = 0; taken[e]; e++) {
            }
        taken[e] = 1;
        ids[j] = e;
        w[j] = logits[e];
        sum += w[j];
    }
    if (hp->moe_norm_w) {
        sum = sum < 6.103515625e-5f ? 6.103515625e-5f : sum; /* llama.cpp's clamp */
        for (int j = 0; j < k; j++)
            w[j] /= sum;
    }
    if (hp->moe_w_scale != 0.0f && hp->moe_w_scale != 1.0f)
        for (int j = 0; j < k; j++)
            w[j] *= hp->moe_w_scale;
}
