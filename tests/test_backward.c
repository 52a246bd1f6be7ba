/*
 * test_backward.c - the Llama block's and the head's backward pass
 * (src/train/backward.c) against central finite differences of their own
 * forward, and the block's forward against a direct double-precision
 * evaluation of the formulas written out here, on a tiny random model with
 * grouped-query attention, both rotary layouts, a token whose keys are
 * invisible (skipped layer) and positions with a gap.
 */
#include <math.h>

#include "harness.h"
#include "train/backward.h"

enum { E = 8, NH = 4, NKV = 2, HD = 4, FF = 12, T = 5, V = 11 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static void fill(float *a, int n, float s, float off)
{
    for (int i = 0; i < n; i++)
        a[i] = off + s * urand();
}

static float wq[NH * HD * E], wk[NKV * HD * E], wv[NKV * HD * E], wo[E * NH * HD];
static float g1[E], g2[E], wg[FF * E], wu[FF * E], wd[E * FF], gout[E], wout[V * E];

/* sum(c * D(x)) in float through bw_block_forward */
static double block_obj(const struct bw_dims *d, const struct bw_block *w, struct bw_tape *tp,
                        const int32_t *pos, const uint8_t *vis, const float *x, const float *c)
{
    float delta[T * E];
    bw_block_forward(d, w, tp, T, pos, vis, x, delta);
    double s = 0.0;
    for (int i = 0; i < T * E; i++)
        s += (double)c[i] * delta[i];
    return s;
}

/* d(block_obj)/d(*v) by central differences; v: an entry of x or of a
 * weight that block_obj reads */
static double central(const struct bw_dims *d, const struct bw_block *w, struct bw_tape *tp,
                      const int32_t *pos, const uint8_t *vis, const float *x, const float *c,
                      float *v)
{
    const float v0 = *v, h = 1e-2f;
    *v = v0 + h;
    const double up = block_obj(d, w, tp, pos, vis, x, c);
    *v = v0 - h;
    const double dn = block_obj(d, w, tp, pos, vis, x, c);
    *v = v0;
    return (up - dn) / (2.0 * h);
}

/* D(x) in double, straight from the formulas (backward.h), for token t */
static void block_ref(const struct bw_dims *d, const int32_t *pos, const uint8_t *vis,
                      const float *x, double *out)
{
    double n1[T][E], q[T][NH * HD], k[T][NKV * HD], v[T][NKV * HD];
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < E; i++)
            ss += (double)x[t * E + i] * x[t * E + i];
        const double r = 1.0 / sqrt(ss / E + d->eps);
        for (int i = 0; i < E; i++)
            n1[t][i] = x[t * E + i] * r * g1[i];
        for (int o = 0; o < NH * HD; o++) {
            q[t][o] = 0;
            for (int i = 0; i < E; i++)
                q[t][o] += wq[o * E + i] * n1[t][i];
        }
        for (int o = 0; o < NKV * HD; o++) {
            k[t][o] = v[t][o] = 0;
            for (int i = 0; i < E; i++) {
                k[t][o] += wk[o * E + i] * n1[t][i];
                v[t][o] += wv[o * E + i] * n1[t][i];
            }
        }
        /* rotary: pair (a, b) of dimension index i turns by pos * base^(-2i/n_rot) */
        for (int h = 0; h < NH + NKV; h++) {
            double *vec = h < NH ? &q[t][h * HD] : &k[t][(h - NH) * HD];
            for (int i = 0; i < d->n_rot / 2; i++) {
                const double th = pos[t] * pow(d->rope_base, -2.0 * i / d->n_rot);
                const int a = d->neox ? i : 2 * i, b = d->neox ? i + d->n_rot / 2 : 2 * i + 1;
                const double v0 = vec[a], v1 = vec[b];
                vec[a] = v0 * cos(th) - v1 * sin(th);
                vec[b] = v0 * sin(th) + v1 * cos(th);
            }
        }
    }
    for (int t = 0; t < T; t++) {
        double o[NH * HD] = {0}, a[E], h[E], n2[E], act[FF];
        for (int hh = 0; hh < NH; hh++) {
            const int g = hh / (NH / NKV);
            double sc[T], mx = -1e300, sum = 0;
            for (int s = 0; s <= t; s++) {
                sc[s] = -1e300;
                if (s < t && !vis[s])
                    continue;
                sc[s] = 0;
                for (int i = 0; i < HD; i++)
                    sc[s] += q[t][hh * HD + i] * k[s][g * HD + i];
                sc[s] /= sqrt((double)HD);
                mx = sc[s] > mx ? sc[s] : mx;
            }
            for (int s = 0; s <= t; s++)
                sum += sc[s] > -1e299 ? exp(sc[s] - mx) : 0;
            for (int s = 0; s <= t; s++)
                if (sc[s] > -1e299)
                    for (int i = 0; i < HD; i++)
                        o[hh * HD + i] += exp(sc[s] - mx) / sum * v[s][g * HD + i];
        }
        double ss = 0;
        for (int i = 0; i < E; i++) {
            a[i] = 0;
            for (int j = 0; j < NH * HD; j++)
                a[i] += wo[i * NH * HD + j] * o[j];
            h[i] = x[t * E + i] + a[i];
            ss += h[i] * h[i];
        }
        const double r = 1.0 / sqrt(ss / E + d->eps);
        for (int i = 0; i < E; i++)
            n2[i] = h[i] * r * g2[i];
        for (int f = 0; f < FF; f++) {
            double gg = 0, uu = 0;
            for (int i = 0; i < E; i++) {
                gg += wg[f * E + i] * n2[i];
                uu += wu[f * E + i] * n2[i];
            }
            act[f] = gg / (1 + exp(-gg)) * uu;
        }
        for (int i = 0; i < E; i++) {
            double dd = a[i];
            for (int f = 0; f < FF; f++)
                dd += wd[i * FF + f] * act[f];
            out[t * E + i] = dd;
        }
    }
}

static void check_block(int neox, int n_rot)
{
    const struct bw_dims d = {E, NH, NKV, HD, FF, n_rot, neox, 1e-5f, 10000.0f, 0};
    const struct bw_block w = {g1, wq, wk, wv, wo, g2, wg, wu, wd, {0}, {0}};
    struct bw_tape tp;
    CHECK(bw_tape_init(&tp, &d, T));
    const int32_t pos[T] = {3, 4, 5, 9, 10}; /* a gap: positions are kept, not renumbered */
    const uint8_t vis[T] = {1, 0, 1, 1, 0};  /* token 1 skipped the layer */
    float x[T * E], c[T * E], dx[T * E] = {0};
    fill(x, T * E, 1.0f, 0.0f);
    fill(c, T * E, 1.0f, 0.0f);

    /* forward against the double-precision formulas */
    float delta[T * E];
    double ref[T * E];
    bw_block_forward(&d, &w, &tp, T, pos, vis, x, delta);
    block_ref(&d, pos, vis, x, ref);
    double worst = 0;
    for (int i = 0; i < T * E; i++)
        worst = fmax(worst, fabs(delta[i] - ref[i]) / (1e-3 + fabs(ref[i])));
    CHECKF(worst < 1e-3, "neox %d: forward off by %g", neox, worst);

    /* backward against central differences */
    bw_block_forward(&d, &w, &tp, T, pos, vis, x, delta);
    bw_block_backward(&d, &w, &tp, T, c, dx, NULL);
    double err = 0, scale = 0;
    for (int i = 0; i < T * E; i++) {
        const double fd = central(&d, &w, &tp, pos, vis, x, c, &x[i]);
        err = fmax(err, fabs(fd - dx[i]));
        scale = fmax(scale, fabs(fd));
    }
    CHECKF(err < 2e-3 * scale, "neox %d: dx off by %g (scale %g)", neox, err, scale);
    /* the invisible token's keys and values reach no other token: changing
     * its input moves only its own delta */
    float x2[T * E], delta2[T * E];
    memcpy(x2, x, sizeof x2);
    for (int i = 0; i < E; i++)
        x2[1 * E + i] += 0.5f;
    bw_block_forward(&d, &w, &tp, T, pos, vis, x, delta);
    bw_block_forward(&d, &w, &tp, T, pos, vis, x2, delta2);
    int others_same = 1, own_moved = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < E; i++) {
            if (t != 1 && delta[t * E + i] != delta2[t * E + i])
                others_same = 0;
            if (t == 1 && delta[t * E + i] != delta2[t * E + i])
                own_moved = 1;
        }
    CHECK(others_same && own_moved);
    bw_tape_free(&tp);
}

/* Adapters (LoRA): the forward pass equals the plain block with merged
 * weights W + B A (block_ref, double precision); the gradients with respect
 * to x, every A and every B equal central differences. */
enum { R = 2, MAXD = FF + NH * HD }; /* MAXD: above every row and column count */
static float la[BW_NPROJ][R * MAXD], lb[BW_NPROJ][MAXD * R];

static void check_block_lora(int neox)
{
    const struct bw_dims d = {E, NH, NKV, HD, FF, HD, neox, 1e-5f, 10000.0f, R};
    struct bw_block w = {g1, wq, wk, wv, wo, g2, wg, wu, wd, {0}, {0}};
    float *W[BW_NPROJ] = {wq, wk, wv, wo, wg, wu, wd};
    const int rows[BW_NPROJ] = {NH * HD, NKV * HD, NKV * HD, E, FF, FF, E};
    const int cols[BW_NPROJ] = {E, E, E, NH * HD, E, E, FF};
    for (int k = 0; k < BW_NPROJ; k++) {
        fill(la[k], R * cols[k], 0.5f, 0.0f);
        fill(lb[k], rows[k] * R, 0.5f, 0.0f);
        w.lora_a[k] = la[k];
        w.lora_b[k] = lb[k];
    }
    struct bw_tape tp;
    CHECK(bw_tape_init(&tp, &d, T));
    const int32_t pos[T] = {0, 1, 2, 3, 4};
    const uint8_t vis[T] = {1, 1, 0, 1, 1};
    float x[T * E], c[T * E], dx[T * E] = {0}, delta[T * E];
    fill(x, T * E, 1.0f, 0.0f);
    fill(c, T * E, 1.0f, 0.0f);

    /* forward against the formulas with W + B A */
    static float saved[BW_NPROJ][FF * NH * HD > FF * E ? FF * NH * HD : FF * E];
    for (int k = 0; k < BW_NPROJ; k++) {
        memcpy(saved[k], W[k], (size_t)rows[k] * cols[k] * sizeof(float));
        for (int i = 0; i < rows[k]; i++)
            for (int j = 0; j < cols[k]; j++)
                for (int q = 0; q < R; q++)
                    W[k][i * cols[k] + j] += lb[k][i * R + q] * la[k][q * cols[k] + j];
    }
    double ref[T * E];
    block_ref(&d, pos, vis, x, ref);
    for (int k = 0; k < BW_NPROJ; k++)
        memcpy(W[k], saved[k], (size_t)rows[k] * cols[k] * sizeof(float));
    bw_block_forward(&d, &w, &tp, T, pos, vis, x, delta);
    double worst = 0;
    for (int i = 0; i < T * E; i++)
        worst = fmax(worst, fabs(delta[i] - ref[i]) / (1e-3 + fabs(ref[i])));
    CHECKF(worst < 1e-3, "adapters, neox %d: forward off by %g", neox, worst);

    /* backward: x, then a few entries of every A and B */
    static float ga[BW_NPROJ][R * MAXD], gb[BW_NPROJ][MAXD * R];
    memset(ga, 0, sizeof ga);
    memset(gb, 0, sizeof gb);
    struct bw_lora_grad g;
    for (int k = 0; k < BW_NPROJ; k++) {
        g.a[k] = ga[k];
        g.b[k] = gb[k];
    }
    bw_block_forward(&d, &w, &tp, T, pos, vis, x, delta);
    bw_block_backward(&d, &w, &tp, T, c, dx, &g);
    double err = 0, scale = 0;
    for (int k = 0; k < BW_NPROJ; k++)
        for (int ab = 0; ab < 2; ab++)
            for (int s = 0; s < 3; s++) {
                const int n = ab ? rows[k] * R : R * cols[k];
                const int i = (s * 7 + k) % n;
                const double fd = central(&d, &w, &tp, pos, vis, x, c, ab ? &lb[k][i] : &la[k][i]);
                const double an = ab ? gb[k][i] : ga[k][i];
                err = fmax(err, fabs(fd - an));
                scale = fmax(scale, fabs(fd));
                CHECKF(fabs(fd - an) < 5e-3 * fmax(1.0, fabs(fd)),
                       "adapter %d %c[%d]: %g vs %g", k, ab ? 'B' : 'A', i, an, fd);
            }
    for (int i = 0; i < T * E; i++) {
        const double fd = central(&d, &w, &tp, pos, vis, x, c, &x[i]);
        err = fmax(err, fabs(fd - dx[i]));
        scale = fmax(scale, fabs(fd));
        CHECKF(fabs(fd - dx[i]) < 5e-3 * fmax(1.0, fabs(fd)), "adapters: dx[%d] %g vs %g", i,
               dx[i], fd);
    }
    printf("test_backward: adapters, neox %d: gradients vs finite differences: max error %.3g "
           "of %.3g\n", neox, err, scale);
    CHECK(scale > 0.1);
    bw_tape_free(&tp);
}

static void check_head(void)
{
    const struct bw_dims d = {E, NH, NKV, HD, FF, HD, 0, 1e-5f, 10000.0f, 0};
    float x[T * E], dx[T * E], logits[V], xn[E];
    const int32_t target[T] = {3, -1, 0, 10, 7};
    fill(x, T * E, 1.0f, 0.0f);
    const double loss = bw_head_loss(&d, gout, wout, V, T, x, target, dx, logits, xn);
    /* the loss by hand at one token, in double */
    double l0 = 0;
    {
        double ss = 0, lg[V], mx = -1e300, sum = 0;
        for (int i = 0; i < E; i++)
            ss += (double)x[i] * x[i];
        const double r = 1 / sqrt(ss / E + 1e-5);
        for (int o = 0; o < V; o++) {
            lg[o] = 0;
            for (int i = 0; i < E; i++)
                lg[o] += wout[o * E + i] * x[i] * r * gout[i];
            mx = fmax(mx, lg[o]);
        }
        for (int o = 0; o < V; o++)
            sum += exp(lg[o] - mx);
        l0 = log(sum) + mx - lg[3];
    }
    double rest = 0;
    for (int t = 2; t < T; t++)
        rest += bw_head_loss(&d, gout, wout, V, 1, x + t * E, target + t, NULL, logits, xn);
    CHECKF(fabs(loss - (l0 + rest) / 4) < 1e-5, "head loss %g vs %g", loss, (l0 + rest) / 4);
    double err = 0, scale = 0;
    for (int i = 0; i < T * E; i++) {
        const float x0 = x[i], h = 1e-2f;
        x[i] = x0 + h;
        const double up = bw_head_loss(&d, gout, wout, V, T, x, target, NULL, logits, xn);
        x[i] = x0 - h;
        const double dn = bw_head_loss(&d, gout, wout, V, T, x, target, NULL, logits, xn);
        x[i] = x0;
        const double fd = (up - dn) / (2.0 * h);
        err = fmax(err, fabs(fd - dx[i]));
        scale = fmax(scale, fabs(fd));
    }
    CHECKF(err < 2e-3 * scale, "head dx off by %g (scale %g)", err, scale);
    const int32_t none[T] = {-1, -1, -1, -1, -1};
    CHECK(isnan(bw_head_loss(&d, gout, wout, V, T, x, none, dx, logits, xn)));
}

int main(void)
{
    fill(wq, NH * HD * E, 0.5f, 0.0f);
    fill(wk, NKV * HD * E, 0.5f, 0.0f);
    fill(wv, NKV * HD * E, 0.5f, 0.0f);
    fill(wo, E * NH * HD, 0.5f, 0.0f);
    fill(g1, E, 0.3f, 1.0f);
    fill(g2, E, 0.3f, 1.0f);
    fill(wg, FF * E, 0.5f, 0.0f);
    fill(wu, FF * E, 0.5f, 0.0f);
    fill(wd, E * FF, 0.5f, 0.0f);
    fill(gout, E, 0.3f, 1.0f);
    fill(wout, V * E, 0.7f, 0.0f);
    check_block(0, HD);
    check_block(1, HD);
    check_block(0, HD / 2); /* partial rotary */
    check_block_lora(0);
    check_block_lora(1);
    check_head();
    TEST_MAIN_END();
}
