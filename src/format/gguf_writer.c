/*
 * gguf_writer.c - owns the GGUF v3 writer declared in gguf.h: key/values and
 * tensors are collected in memory (tensor data borrowed) in the order added,
 * then written with every tensor's data aligned to GGUF_DEFAULT_ALIGNMENT,
 * through a temporary file renamed over the target (format/atomic_file.c).
 * Keys copied from a parsed file keep their bytes. Reading is gguf.c's.
 */
#include "format/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/atomic_file.h"
#include "quant/dtype.h"
#include "util.h"

#define GGUF_WRITER_MAX_NAME 63 /* what llama.cpp accepts */

struct wkv {
    char *key;
    uint32_t type, arr_type;
    uint64_t n;  /* element count of an array */
    void *bytes; /* the value of a scalar, the elements of a numeric array */
    size_t nbytes;
    char **strs; /* the value of a string, the elements of a string array */
    size_t n_strs;
    int raw; /* bytes hold the whole value as a file holds it (copied kvs) */
};

struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;
    size_t nbytes;
};

struct gguf_writer {
    struct wkv *kvs;
    size_t n_kv, cap_kv;
    struct wtensor *tensors;
    size_t n_tensors, cap_tensors;
    int keep_first; /* adding a key already present keeps the first value */
};

void gguf_writer_keep_first(gguf_writer *w)
{
    if (w)
        w->keep_first = 1;
}

gguf_writer *gguf_writer_create(void)
{
    return util_calloc(1, sizeof(gguf_writer));
}

static void wkv_clear(struct wkv *kv)
{
    for (size_t j = 0; kv->strs && j < kv->n_strs; j++)
        util_free(kv->strs[j]);
    util_free(kv->strs);
    util_free(kv->key);
    util_free(kv->bytes);
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++)
        wkv_clear(&w->kvs[i]);
    for (size_t i = 0; i < w->n_tensors; i++)
        util_free(w->tensors[i].name);
    util_free(w->kvs);
    util_free(w->tensors);
    util_free(w);
}

/* Returns arr (n used of *cap elements of size sz) grown so that one more
 * fits, or NULL (arr unchanged) on out of memory. */
static void *grow(void *arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : 16, bytes;
    if (!util_mul_size(nc, sz, &bytes))
        return NULL;
    void *p = util_realloc(arr, bytes);
    if (p)
        *cap = nc;
    return p;
}

/* Adds a kv whose value is nbytes copied from v or the n_strs strings s. */
int gguf_writer_has_key(const gguf_writer *w, const char *key)
{
    for (size_t i = 0; w && key && i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, key) == 0)
            return 1;
    return 0;
}

static int add_kv(gguf_writer *w, const char *key, uint32_t type, uint32_t arr_type, uint64_t n,
                  const void *v, size_t nbytes, const char *const *s, size_t n_strs)
{
    if (!w || !key || !key[0] || (nbytes && !v) || (n_strs && !s))
        return STRIX_ERR_ARG;
    for (size_t j = 0; j < n_strs; j++)
        if (!s[j])
            return STRIX_ERR_ARG;
    if (gguf_writer_has_key(w, key))
        return w->keep_first ? STRIX_OK : STRIX_ERR_ARG;
    /* The file is always written with alignment 32; anything else would lie. */
    if (strcmp(key, "general.alignment") == 0 &&
        (type != GGUF_VT_U32 || memcmp(v, &(uint32_t){GGUF_DEFAULT_ALIGNMENT}, 4) != 0))
        return STRIX_ERR_ARG;
    void *p = grow(w->kvs, &w->cap_kv, w->n_kv, sizeof *w->kvs);
    if (!p)
        return STRIX_ERR_NOMEM;
    w->kvs = p;
    struct wkv kv = {util_strndup(key, strlen(key)), type, arr_type, n, NULL, nbytes, NULL, n_strs, 0};
    kv.bytes = util_malloc(nbytes);
    if (kv.key && kv.bytes && n_strs)
        kv.strs = util_calloc(n_strs, sizeof *kv.strs);
    for (size_t j = 0; kv.strs && j < n_strs; j++)
        if (!(kv.strs[j] = util_strndup(s[j], strlen(s[j]))))
            break;
    if (!kv.key || !kv.bytes || (n_strs && (!kv.strs || !kv.strs[n_strs - 1]))) {
        wkv_clear(&kv);
        return STRIX_ERR_NOMEM;
    }
    if (nbytes)
        memcpy(kv.bytes, v, nbytes);
    w->kvs[w->n_kv++] = kv;
    return STRIX_OK;
}

int gguf_writer_copy_kv(gguf_writer *w, const struct gguf_kv *kv)
{
    if (!w || !kv || !kv->key.ptr || kv->type >= GGUF_VT_COUNT || (kv->raw_len && !kv->raw) ||
        memchr(kv->key.ptr, 0, (size_t)kv->key.len))
        return STRIX_ERR_ARG;
    char *key = util_strndup(kv->key.ptr, (size_t)kv->key.len);
    if (!key)
        return STRIX_ERR_NOMEM;
    /* a scalar's raw bytes are its value, which add_kv's checks can read */
    int rc = add_kv(w, key, kv->type, 0, 1, kv->raw, kv->raw_len, NULL, 0);
    if (rc == STRIX_OK)
        w->kvs[w->n_kv - 1].raw = 1;
    util_free(key);
    return rc;
}

int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return add_kv(w, key, GGUF_VT_U32, 0, 1, &v, 4, NULL, 0);
}
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v)
{
    return add_kv(w, key, GGUF_VT_I32, 0, 1, &v, 4, NULL, 0);
}
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v)
{
    return add_kv(w, key, GGUF_VT_F32, 0, 1, &v, 4, NULL, 0);
}
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v)
{
    uint8_t b = v != 0;
    return add_kv(w, key, GGUF_VT_BOOL, 0, 1, &b, 1, NULL, 0);
}
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v)
{
    return add_kv(w, key, GGUF_VT_STR, 0, 1, NULL, 0, v ? &v : NULL, 1);
}
int gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
    if ((size_t)n != n)
        return STRIX_ERR_ARG;
    return add_kv(w, key, GGUF_VT_ARR, GGUF_VT_STR, n, NULL, 0, v, (size_t)n);
}
int gguf_writer_add_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    size_t bytes;
    if ((size_t)n != n || !util_mul_size((size_t)n, 4, &bytes))
        return STRIX_ERR_ARG;
    return add_kv(w, key, GGUF_VT_ARR, GGUF_VT_F32, n, v, bytes, NULL, 0);
}
int gguf_writer_add_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    size_t bytes;
    if ((size_t)n != n || !util_mul_size((size_t)n, 4, &bytes))
        return STRIX_ERR_ARG;
    return add_kv(w, key, GGUF_VT_ARR, GGUF_VT_I32, n, v, bytes, NULL, 0);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data, size_t nbytes)
{
    if (!w || !name || !name[0] || strlen(name) > GGUF_WRITER_MAX_NAME || !ne || !data ||
        n_dims < 1 || n_dims > GGUF_MAX_DIMS || !dtype_get(type))
        return STRIX_ERR_ARG;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return STRIX_ERR_ARG;
    struct wtensor t = {NULL, type, n_dims, {1, 1, 1, 1}, data, nbytes};
    int64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 1 || ne[d] > INT64_MAX / nel)
            return STRIX_ERR_ARG;
        t.ne[d] = ne[d];
        nel *= ne[d];
    }
    size_t row = dtype_row_size(type, t.ne[0]), want;
    if (row == 0 || (uint64_t)nel != (size_t)nel ||
        !util_mul_size(row, (size_t)(nel / t.ne[0]), &want) || want != nbytes)
        return STRIX_ERR_ARG;
    void *p = grow(w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors);
    if (!p)
        return STRIX_ERR_NOMEM;
    w->tensors = p;
    if (!(t.name = util_strndup(name, strlen(name))))
        return STRIX_ERR_NOMEM;
    w->tensors[w->n_tensors++] = t;
    return STRIX_OK;
}

struct wout {
    FILE *f;
    uint64_t pos;
    int errnum; /* first error, 0 if none */
};

static void put(struct wout *o, const void *p, size_t n)
{
    if (o->errnum || n == 0)
        return;
    errno = 0;
    if (fwrite(p, 1, n, o->f) != n)
        o->errnum = errno ? errno : EIO;
    o->pos += n;
}
static void put_u32(struct wout *o, uint32_t v)
{
    put(o, &v, 4);
}
static void put_u64(struct wout *o, uint64_t v)
{
    put(o, &v, 8);
}
static void put_str(struct wout *o, const char *s)
{
    size_t n = strlen(s);
    put_u64(o, n);
    put(o, s, n);
}
static void put_pad(struct wout *o)
{
    static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT];
    put(o, zeros,
        (size_t)((GGUF_DEFAULT_ALIGNMENT - o->pos % GGUF_DEFAULT_ALIGNMENT) %
                 GGUF_DEFAULT_ALIGNMENT));
}

static uint64_t pad_up(uint64_t n)
{
    return (n + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT;
}

int gguf_writer_write(gguf_writer *w, const char *path, strix_error *err)
{
    if (!w || !path)
        return err_set(err, STRIX_ERR_ARG, "gguf: no writer or no path");
    struct atomic_file af;
    int rc = atomic_file_open(&af, path, err);
    if (rc) {
        err_prefix(err, "gguf");
        return rc;
    }
    struct wout o = {af.f, 0, 0};
    put(&o, "GGUF", 4);
    put_u32(&o, 3);
    put_u64(&o, w->n_tensors);
    put_u64(&o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        const struct wkv *kv = &w->kvs[i];
        put_str(&o, kv->key);
        put_u32(&o, kv->type);
        if (kv->type == GGUF_VT_ARR && !kv->raw) {
            put_u32(&o, kv->arr_type);
            put_u64(&o, kv->n);
        }
        put(&o, kv->bytes, kv->nbytes);
        for (size_t j = 0; j < kv->n_strs; j++)
            put_str(&o, kv->strs[j]);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        put_str(&o, t->name);
        put_u32(&o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(&o, (uint64_t)t->ne[d]);
        put_u32(&o, t->type);
        put_u64(&o, off);
        off += pad_up(t->nbytes);
    }
    put_pad(&o);
    for (size_t i = 0; i < w->n_tensors; i++) {
        put(&o, w->tensors[i].data, w->tensors[i].nbytes);
        put_pad(&o);
    }
    if (o.errnum) { /* nothing is left behind but the old file, if any */
        atomic_file_abort(&af);
        return err_set(err, STRIX_ERR_IO, "gguf: cannot write '%s': %s", path, strerror(o.errnum));
    }
    if ((rc = atomic_file_commit(&af, err)))
        err_prefix(err, "gguf");
    return rc;
}
