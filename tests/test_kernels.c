/*
 * test_kernels.c - numeric primitives against double-precision references,
 * and the thread pool under many short jobs (each element of the work is
 * done exactly once, at every thread count).
 */
#include <math.h>
#include <stdatomic.h>

#include "harness.h"
#include "kernels/kernels.h"
#include "pool.h"

static float frand(uint32_t *x)
{
    *x = *x * 1664525u + 1013904223u;
    return (float)(*x >> 8) / 16777216.0f * 2.0f - 1.0f;
}

static void test_dot(void)
{
    uint32_t x = 1;
    float a[1031], b[1031];
    for (int i = 0; i < 1031; i++) {
        a[i] = frand(&x);
        b[i] = frand(&x);
    }
    const int sizes[] = {0, 1, 7, 8, 9, 31, 64, 100, 1031};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int n = sizes[k];
        double ref = 0;
        for (int i = 0; i < n; i++)
            ref += (double)a[i] * b[i];
        float got = kern_dot_f32(n, a, b);
        CHECKF(fabs(got - ref) <= 1e-5 * (1 + n), "dot n=%d: %g vs %g", n, got, ref);
        /* the four-token kernel gives the same bits as four single dots */
        if (n + 3 <= 1031) {
            float s4[4];
            kern_dot_f32_x4(n, a, b, b + 1, b + 2, b + 3, s4);
            int same = 1;
            for (int t = 0; t < 4; t++) {
                const float one = kern_dot_f32(n, a, b + t);
                same &= memcmp(&one, &s4[t], sizeof one) == 0;
            }
            CHECKF(same, "dot_x4 differs from dot at n=%d", n);
        }
    }
}

static void test_norm_softmax_silu(void)
{
    float x[37], g[37], y[37];
    uint32_t s = 5;
    double ss = 0;
    for (int i = 0; i < 37; i++) {
        x[i] = frand(&s) * 3;
        g[i] = frand(&s);
        ss += (double)x[i] * x[i];
    }
    kern_rmsnorm(y, x, g, 37, 1e-5f);
    const double scale = 1.0 / sqrt(ss / 37 + 1e-5);
    int ok = 1;
    for (int i = 0; i < 37; i++)
        ok &= fabs(y[i] - g[i] * x[i] * scale) < 1e-5;
    CHECK(ok);

    float p[5] = {1000.0f, 999.0f, -1000.0f, 0.0f, 1000.0f}; /* large values must not overflow */
    kern_softmax(p, 5);
    double sum = 0;
    for (int i = 0; i < 5; i++)
        sum += p[i];
    CHECK(fabs(sum - 1.0) < 1e-6 && fabs(p[0] - p[4]) < 1e-7 && p[2] == 0.0f);
    CHECK(fabs(p[0] / p[1] - exp(1.0)) < 1e-4);

    float a[3] = {0.0f, 2.0f, -2.0f}, b[3] = {1.0f, 1.0f, 2.0f};
    kern_silu_mul(a, b, 3);
    CHECK(a[0] == 0.0f && fabs(a[1] - 2.0 / (1 + exp(-2.0))) < 1e-6 &&
          fabs(a[2] - 2 * (-2.0 / (1 + exp(2.0)))) < 1e-6);
}

static void test_rope(void)
{
    float v[16], w[16], n0 = 0, n1 = 0;
    uint32_t s = 9;
    for (int i = 0; i < 16; i++)
        v[i] = w[i] = frand(&s);
    kern_rope(w, 16, 0, 10000.0f, 0);
    CHECK(memcmp(v, w, sizeof v) == 0); /* position 0 is the identity */
    kern_rope(w, 16, 37, 10000.0f, 0);
    for (int i = 0; i < 16; i++) {
        n0 += v[i] * v[i];
        n1 += w[i] * w[i];
    }
    CHECK(fabsf(n0 - n1) < 1e-4f); /* a rotation keeps the norm */
    /* pair 0 turns by pos * base^0 = 37 radians */
    CHECK(fabsf(w[0] - (v[0] * cosf(37) - v[1] * sinf(37))) < 1e-5f);
    /* NeoX on the permuted vector equals the permuted interleaved result */
    float pv[16], pw[16];
    for (int i = 0; i < 8; i++) {
        pv[i] = v[2 * i];
        pv[i + 8] = v[2 * i + 1];
        pw[i] = w[2 * i];
        pw[i + 8] = w[2 * i + 1];
    }
    kern_rope(pv, 16, 37, 10000.0f, 1);
    int ok = 1;
    for (int i = 0; i < 16; i++)
        ok &= fabsf(pv[i] - pw[i]) < 1e-6f;
    CHECK(ok);
    /* partial rotation leaves the tail alone */
    float t[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    kern_rope(t, 4, 5, 10000.0f, 0);
    CHECK(t[4] == 5 && t[5] == 6 && t[6] == 7 && t[7] == 8);
}

struct count_job {
    atomic_int hits[1000];
    int n;
};

static void count_worker(void *arg, int ith, int nth)
{
    struct count_job *j = arg;
    for (int i = ith; i < j->n; i += nth)
        atomic_fetch_add(&j->hits[i], 1);
}

static void test_pool(void)
{
    for (int nt = 1; nt <= 5; nt++) {
        struct pool *p = pool_create(nt);
        CHECK(p != NULL);
        if (!p)
            continue;
        static struct count_job j;
        for (int i = 0; i < 1000; i++)
            atomic_init(&j.hits[i], 0);
        j.n = 1000;
        for (int r = 0; r < 500; r++)
            pool_run_n(p, count_worker, &j, r % 3 == 0 ? 1 : nt);
        int ok = 1;
        for (int i = 0; i < 1000; i++)
            ok &= atomic_load(&j.hits[i]) == 500;
        CHECKF(ok, "pool with %d threads lost or repeated work", nt);
        pool_free(p);
    }
    pool_free(NULL);
}

int main(void)
{
    test_dot();
    test_norm_softmax_silu();
    test_rope();
    test_pool();
    TEST_MAIN_END();
}
