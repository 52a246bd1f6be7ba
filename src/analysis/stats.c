/*
 * stats.c - the statistics of stats.h over sets of hidden states: linearity
 * score, input-output cosine, covariance spectrum (anisotropy, PCA-90),
 * mean pair cosine and the TwoNN intrinsic dimension. Collecting the hidden
 * states is analyze.c's. LAPACK and BLAS are used through their C
 * interfaces (lapacke.h, cblas.h) when STRIX_HAVE_LAPACK is defined, and
 * loaded with dlopen on the first call that needs them: nothing else in
 * strix uses them, and linking them would start OpenBLAS's thread pool in
 * every process (tens of milliseconds before a small model's first token).
 */
#include "analysis/stats.h"

#include <math.h>
#include <string.h>

#include "util.h"

#ifdef STRIX_HAVE_LAPACK
#include <cblas.h>
#include <dlfcn.h>
#include <lapacke.h>
#include <pthread.h>
#include <stdio.h>
#endif

void stats_cosine(const float *x, const float *y, int n, int d, double *mean, double *sd)
{
    double s = 0.0, s2 = 0.0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const float *a = x + (size_t)i * (size_t)d, *b = y + (size_t)i * (size_t)d;
        double ab = 0.0, aa = 0.0, bb = 0.0;
        for (int j = 0; j < d; j++) {
            ab += (double)a[j] * b[j];
            aa += (double)a[j] * a[j];
            bb += (double)b[j] * b[j];
        }
        if (aa <= 0.0 || bb <= 0.0)
            continue;
        const double c = ab / sqrt(aa * bb);
        s += c;
        s2 += c * c;
        k++;
    }
    *mean = k ? s / k : NAN;
    *sd = k ? sqrt(fmax(0.0, s2 / k - (s / k) * (s / k))) : NAN;
}

double stats_pair_cosine(const float *x, int n, int d)
{
    double *sum = util_calloc((size_t)d, sizeof *sum);
    if (!sum)
        return NAN;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const float *a = x + (size_t)i * (size_t)d;
        double aa = 0.0;
        for (int j = 0; j < d; j++)
            aa += (double)a[j] * a[j];
        if (aa <= 0.0)
            continue;
        const double inv = 1.0 / sqrt(aa);
        for (int j = 0; j < d; j++)
            sum[j] += a[j] * inv;
        k++;
    }
    double ss = 0.0;
    for (int j = 0; j < d; j++)
        ss += sum[j] * sum[j];
    util_free(sum);
    return k >= 2 ? (ss - k) / ((double)k * (k - 1)) : NAN;
}

#ifdef STRIX_HAVE_LAPACK

/* The four routines used, typed by their headers' declarations (__typeof__
 * of a declaration references no symbol, so nothing is linked). */
static struct {
    __typeof__(&LAPACKE_dgelsd) dgelsd;
    __typeof__(&LAPACKE_dsyevd) dsyevd;
    __typeof__(&cblas_dgemm) dgemm;
    __typeof__(&cblas_dsyrk) dsyrk;
    char why[256]; /* empty when loaded */
} lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

/* The first of `names` that dlopen finds, or NULL with lib.why set. */
static void *open_first(const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
        if (i == 0) {
            const char *e = dlerror();
            snprintf(lib.why, sizeof lib.why, "%s", e ? e : names[0]);
        }
    }
    return NULL;
}

/* dlsym in `h`, then in `h2` when given; NULL with lib.why set. */
static void *symbol(void *h, void *h2, const char *name)
{
    void *f = dlsym(h, name);
    if (!f && h2)
        f = dlsym(h2, name);
    if (!f)
        snprintf(lib.why, sizeof lib.why, "no %s in the LAPACKE/BLAS libraries", name);
    return f;
}

static void lib_load(void)
{
    static const char *const lapacke[] = {"liblapacke.so.3", "liblapacke.so"};
    static const char *const blas[] = {"libopenblas.so.0", "libopenblas.so", "libcblas.so.3",
                                       "libblas.so.3"};
    void *hl = open_first(lapacke, (int)(sizeof lapacke / sizeof *lapacke));
    if (!hl)
        return;
    /* LAPACKE's own dependencies usually carry CBLAS; otherwise a BLAS */
    void *hb = dlsym(hl, "cblas_dgemm") ? NULL
                                          : open_first(blas, (int)(sizeof blas / sizeof *blas));
    void *d1 = symbol(hl, NULL, "LAPACKE_dgelsd"), *d2 = symbol(hl, NULL, "LAPACKE_dsyevd");
    void *d3 = symbol(hl, hb, "cblas_dgemm"), *d4 = symbol(hl, hb, "cblas_dsyrk");
    if (!d1 || !d2 || !d3 || !d4)
        return; /* the handles stay open: dlclose of a BLAS with threads is not safe */
    /* POSIX: a dlsym result converts to a function pointer */
    memcpy(&lib.dgelsd, &d1, sizeof d1);
    memcpy(&lib.dsyevd, &d2, sizeof d2);
    memcpy(&lib.dgemm, &d3, sizeof d3);
    memcpy(&lib.dsyrk, &d4, sizeof d4);
    lib.why[0] = '\0';
}

/* Loads LAPACKE and CBLAS once per process; STRIX_ERR_UNSUPPORTED with the
 * loader's reason when they cannot be found. */
static int lib_ready(strix_error *err)
{
    pthread_once(&lib_once, lib_load);
    if (lib.dgelsd)
        return STRIX_OK;
    return err_set(err, STRIX_ERR_UNSUPPORTED,
                   "LAPACK/BLAS could not be loaded (%s); the statistics need LAPACKE "
                   "and a CBLAS (Debian: liblapacke libopenblas0)", lib.why);
}

int stats_available(void)
{
    return lib_ready(NULL) == STRIX_OK;
}

/* x (n, d) row-major float -> a column-major double (n, d) matrix with the
 * column means removed, scaled to unit Frobenius norm when `scale`. A zero
 * matrix stays zero. */
static void centre(const float *x, int n, int d, double *a, int scale)
{
    double fro = 0.0;
    for (int j = 0; j < d; j++) {
        double *col = a + (size_t)j * (size_t)n;
        double mean = 0.0;
        for (int i = 0; i < n; i++)
            mean += col[i] = x[(size_t)i * (size_t)d + (size_t)j];
        mean /= n;
        for (int i = 0; i < n; i++) {
            col[i] -= mean;
            fro += col[i] * col[i];
        }
    }
    if (scale && fro > 0.0) {
        const double inv = 1.0 / sqrt(fro);
        for (size_t i = 0; i < (size_t)n * (size_t)d; i++)
            a[i] *= inv;
    }
}

static int alloc_doubles(double **p, size_t n, size_t m, strix_error *err)
{
    size_t bytes;
    if (!util_mul_size(n, m, &bytes) || !util_mul_size(bytes, sizeof(double), &bytes) ||
        !(*p = util_malloc(bytes ? bytes : 1)))
        return err_set(err, STRIX_ERR_NOMEM, "out of memory (%zu x %zu doubles)", n, m);
    return STRIX_OK;
}

int stats_linearity(const float *x, const float *y, int n, int d, double *score,
                    strix_error *err)
{
    *score = NAN;
    int rc = lib_ready(err);
    if (rc)
        return rc;
    if (n < 2 || d < 1)
        return err_set(err, STRIX_ERR_ARG, "linearity needs at least 2 vectors (got %d)", n);
    const int ldb = n > d ? n : d;
    double *a = NULL, *a0 = NULL, *b = NULL, *sv = NULL, *y0 = NULL;
    if ((rc = alloc_doubles(&a, (size_t)n, (size_t)d, err)) ||
        (rc = alloc_doubles(&a0, (size_t)n, (size_t)d, err)) ||
        (rc = alloc_doubles(&b, (size_t)ldb, (size_t)d, err)) ||
        (rc = alloc_doubles(&y0, (size_t)n, (size_t)d, err)) ||
        (rc = alloc_doubles(&sv, (size_t)d, 1, err)))
        goto done;
    centre(x, n, d, a, 1);
    memcpy(a0, a, (size_t)n * (size_t)d * sizeof(double));
    /* b: centred, scaled y (n rows of its ldb); then the solution A in its
     * first d rows */
    centre(y, n, d, b, 1);
    if (ldb != n) { /* move columns to the ldb stride (n < d) */
        for (int j = d - 1; j >= 0; j--) {
            memmove(b + (size_t)j * (size_t)ldb, b + (size_t)j * (size_t)n,
                    (size_t)n * sizeof(double));
            memset(b + (size_t)j * (size_t)ldb + n, 0, (size_t)(ldb - n) * sizeof(double));
        }
    }
    for (int j = 0; j < d; j++)
        memcpy(y0 + (size_t)j * (size_t)n, b + (size_t)j * (size_t)ldb, (size_t)n * sizeof(double));
    lapack_int rank = 0;
    const lapack_int info =
        lib.dgelsd(LAPACK_COL_MAJOR, n, d, d, a, n, b, ldb, sv, -1.0, &rank);
    if (info != 0) {
        rc = err_set(err, info < 0 ? STRIX_ERR_ARG : STRIX_ERR_UNSUPPORTED,
                     "least squares (dgelsd) failed: info %d", (int)info);
        goto done;
    }
    /* residual y0 - a0 A, A = b's first d rows (ldb stride) */
    lib.dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, d, d, -1.0, a0, n, b, ldb, 1.0, y0,
                n);
    double r = 0.0;
    for (size_t i = 0; i < (size_t)n * (size_t)d; i++)
        r += y0[i] * y0[i];
    *score = 1.0 - r;
done:
    util_free(y0);
    util_free(a);
    util_free(a0);
    util_free(b);
    util_free(sv);
    return rc;
}

int stats_spectrum(const float *x, int n, int d, double *pc1_share, int *pca90,
                   strix_error *err)
{
    *pc1_share = NAN;
    *pca90 = 0;
    int rc = lib_ready(err);
    if (rc)
        return rc;
    if (n < 2 || d < 1)
        return err_set(err, STRIX_ERR_ARG, "a spectrum needs at least 2 vectors (got %d)", n);
    double *a = NULL, *c = NULL, *w = NULL;
    if ((rc = alloc_doubles(&a, (size_t)n, (size_t)d, err)) ||
        (rc = alloc_doubles(&c, (size_t)d, (size_t)d, err)) ||
        (rc = alloc_doubles(&w, (size_t)d, 1, err)))
        goto done;
    centre(x, n, d, a, 0);
    /* covariance up to the factor 1/(n-1), which no share depends on */
    lib.dsyrk(CblasColMajor, CblasUpper, CblasTrans, d, n, 1.0, a, n, 0.0, c, d);
    const lapack_int info = lib.dsyevd(LAPACK_COL_MAJOR, 'N', 'U', d, c, d, w);
    if (info != 0) {
        rc = err_set(err, STRIX_ERR_UNSUPPORTED, "eigenvalues (dsyevd) failed: info %d",
                     (int)info);
        goto done;
    }
    double total = 0.0;
    for (int j = 0; j < d; j++)
        total += fmax(w[j], 0.0); /* rounding can leave tiny negative ones */
    if (total > 0.0) {
        *pc1_share = fmax(w[d - 1], 0.0) / total;
        double acc = 0.0;
        for (int j = d - 1; j >= 0; j--) { /* ascending order: largest last */
            acc += fmax(w[j], 0.0);
            if (acc >= 0.9 * total) {
                *pca90 = d - j;
                break;
            }
        }
    }
done:
    util_free(a);
    util_free(c);
    util_free(w);
    return rc;
}

int stats_affine_fit(const float *x, const float *y, int n, int d, float *w, float *bias,
                     strix_error *err)
{
    int rc = lib_ready(err);
    if (rc)
        return rc;
    if (n < d + 1)
        return err_set(err, STRIX_ERR_ARG, "fitting a map of width %d needs at least %d vectors "
                       "(got %d)", d, d + 1, n);
    double *a = NULL, *b = NULL, *sv = NULL, *mx = NULL, *my = NULL;
    if ((rc = alloc_doubles(&a, (size_t)n, (size_t)d, err)) ||
        (rc = alloc_doubles(&b, (size_t)n, (size_t)d, err)) ||
        (rc = alloc_doubles(&sv, (size_t)d, 1, err)) ||
        (rc = alloc_doubles(&mx, (size_t)d, 1, err)) ||
        (rc = alloc_doubles(&my, (size_t)d, 1, err)))
        goto done;
    centre(x, n, d, a, 0);
    centre(y, n, d, b, 0);
    for (int j = 0; j < d; j++) { /* the means, for the bias */
        double sx = 0.0, sy = 0.0;
        for (int i = 0; i < n; i++) {
            sx += x[(size_t)i * (size_t)d + (size_t)j];
            sy += y[(size_t)i * (size_t)d + (size_t)j];
        }
        mx[j] = sx / n;
        my[j] = sy / n;
    }
    lapack_int rank = 0;
    const lapack_int info = lib.dgelsd(LAPACK_COL_MAJOR, n, d, d, a, n, b, n, sv, -1.0, &rank);
    if (info != 0) {
        rc = err_set(err, STRIX_ERR_UNSUPPORTED, "least squares (dgelsd) failed: info %d",
                     (int)info);
        goto done;
    }
    /* A (d_in, d_out) in b's first d rows, column o = output o */
    for (int o = 0; o < d; o++) {
        double c = my[o];
        for (int i = 0; i < d; i++) {
            const double aio = b[(size_t)o * (size_t)n + (size_t)i];
            w[(size_t)o * (size_t)d + (size_t)i] = (float)aio;
            c -= mx[i] * aio;
        }
        bias[o] = (float)c;
    }
done:
    util_free(a);
    util_free(b);
    util_free(sv);
    util_free(mx);
    util_free(my);
    return rc;
}

#define TWONN_BLOCK 256 /* rows of the Gram matrix computed at once */

static double dist2(const float *a, const float *b, int d)
{
    double s = 0.0;
    for (int j = 0; j < d; j++) {
        const double t = (double)a[j] - b[j];
        s += t * t;
    }
    return s;
}

int stats_twonn(const float *x, int n, int d, double *dim, strix_error *err)
{
    *dim = NAN;
    int rc = lib_ready(err);
    if (rc || n < 3)
        return rc;
    double *a = NULL, *g = NULL, *sq = NULL;
    if ((rc = alloc_doubles(&a, (size_t)n, (size_t)d, err)) ||
        (rc = alloc_doubles(&g, TWONN_BLOCK, (size_t)n, err)) ||
        (rc = alloc_doubles(&sq, (size_t)n, 1, err)))
        goto done;
    for (int i = 0; i < n; i++) { /* row-major double copy and squared norms */
        double s = 0.0;
        for (int j = 0; j < d; j++) {
            const double v = x[(size_t)i * (size_t)d + (size_t)j];
            a[(size_t)i * (size_t)d + (size_t)j] = v;
            s += v * v;
        }
        sq[i] = s;
    }
    double sum_log = 0.0;
    int used = 0;
    for (int i0 = 0; i0 < n; i0 += TWONN_BLOCK) {
        const int nb = n - i0 < TWONN_BLOCK ? n - i0 : TWONN_BLOCK;
        /* g (nb, n) = a[i0..i0+nb) a^T */
        lib.dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, n, d, 1.0,
                    a + (size_t)i0 * (size_t)d, d, a, d, 0.0, g, n);
        for (int bi = 0; bi < nb; bi++) {
            const int i = i0 + bi;
            /* the two nearest others by the Gram distances, then their exact
             * distances (the Gram form loses digits for near neighbours) */
            int j1 = -1, j2 = -1;
            double e1 = INFINITY, e2 = INFINITY;
            const double *gr = g + (size_t)bi * (size_t)n;
            for (int j = 0; j < n; j++) {
                if (j == i)
                    continue;
                const double e = sq[i] + sq[j] - 2.0 * gr[j];
                if (e < e1) {
                    e2 = e1, j2 = j1;
                    e1 = e, j1 = j;
                } else if (e < e2) {
                    e2 = e, j2 = j;
                }
            }
            const float *xi = x + (size_t)i * (size_t)d;
            double r1 = dist2(xi, x + (size_t)j1 * (size_t)d, d);
            double r2 = dist2(xi, x + (size_t)j2 * (size_t)d, d);
            if (r1 > r2) {
                const double t = r1;
                r1 = r2, r2 = t;
            }
            if (r1 <= 0.0)
                continue; /* a duplicate: mu undefined */
            sum_log += 0.5 * log(r2 / r1);
            used++;
        }
    }
    if (used >= 2 && sum_log > 0.0)
        *dim = used / sum_log;
done:
    util_free(a);
    util_free(g);
    util_free(sq);
    return rc;
}

#else /* built without LAPACK */

int stats_available(void)
{
    return 0;
}

static int no_lapack(strix_error *err)
{
    return err_set(err, STRIX_ERR_UNSUPPORTED,
                   "strix was built without LAPACK/BLAS (install liblapacke-dev and "
                   "libopenblas-dev and rebuild)");
}

int stats_linearity(const float *x, const float *y, int n, int d, double *score,
                    strix_error *err)
{
    (void)x, (void)y, (void)n, (void)d;
    *score = NAN;
    return no_lapack(err);
}

int stats_spectrum(const float *x, int n, int d, double *pc1_share, int *pca90,
                   strix_error *err)
{
    (void)x, (void)n, (void)d;
    *pc1_share = NAN;
    *pca90 = 0;
    return no_lapack(err);
}

int stats_twonn(const float *x, int n, int d, double *dim, strix_error *err)
{
    (void)x, (void)n, (void)d;
    *dim = NAN;
    return no_lapack(err);
}

int stats_affine_fit(const float *x, const float *y, int n, int d, float *w, float *b,
                     strix_error *err)
{
    (void)x, (void)y, (void)n, (void)d, (void)w, (void)b;
    return no_lapack(err);
}

#endif
