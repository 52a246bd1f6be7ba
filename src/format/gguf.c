/*
 * gguf.c - owns the GGUF reader (a validating parser over a caller-owned
 * buffer: header, key/values, tensor infos, data section bounds) declared in
 * gguf.h. The writer is gguf_writer.c.
 *
 * The reader never reads outside buf[0..len): every count and length is
 * compared with the bytes that remain before it is used, with overflow-safe
 * arithmetic, and multi-byte numbers are read with memcpy (unaligned-safe).
 */
#include "format/gguf.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/dtype.h"
#include "util.h"

/* Arrays of arrays may nest this deep (a top-level array is level 1). */
#define GGUF_MAX_NESTING 8
/* Longest tensor name accepted. ggml keeps names in a fixed 64-byte field
 * (GGML_MAX_NAME) and llama.cpp rejects longer ones; 255 is a more lenient
 * cap in the same spirit that still bounds names in messages and lookups. */
#define GGUF_MAX_NAME 255
/* Lower bounds on the encoded size of one kv (key length 8, value type 4)
 * and one tensor info (name length 8, n_dims 4, one dimension 8, type 4,
 * offset 8): counts are checked against them before anything is allocated. */
#define GGUF_MIN_KV 12
#define GGUF_MIN_TENSOR 32

static const char *const vt_names[GGUF_VT_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
static const uint8_t vt_sizes[GGUF_VT_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static const char *vt_name(uint32_t t)
{
    return t < GGUF_VT_COUNT ? vt_names[t] : "unknown";
}
static int vt_is_float(uint32_t t)
{
    return t == GGUF_VT_F32 || t == GGUF_VT_F64;
}
static int vt_is_int(uint32_t t)
{
    return t <= GGUF_VT_I32 || t == GGUF_VT_U64 || t == GGUF_VT_I64;
}
static int vt_is_numeric(uint32_t t)
{
    return t < GGUF_VT_COUNT && vt_sizes[t] != 0;
}

struct gguf {
    uint32_t version, alignment;
    size_t data_offset;
    uint64_t n_kv, n_tensors;
    struct gguf_kv *kvs;
    struct gguf_tensor *tensors;
    /* Pointers to kvs[i].key / tensors[i].name (first members), sorted. */
    const struct gguf_str **kv_index;
    const struct gguf_str **tensor_index;
};

/* A printable, bounded copy of a name from the file, for messages. */
static const char *safe_name(char out[80], const char *p, uint64_t len)
{
    size_t n = len > 64 ? 64 : (size_t)len, j;
    for (j = 0; j < n; j++)
        out[j] = (p[j] >= 0x20 && p[j] < 0x7f) ? p[j] : '?';
    if (len > n)
        memcpy(out + j, "...", 3), j += 3;
    out[j] = '\0';
    return out;
}

static int str_cmp(const struct gguf_str *a, const struct gguf_str *b)
{
    size_t n = (size_t)(a->len < b->len ? a->len : b->len);
    int c = n ? memcmp(a->ptr, b->ptr, n) : 0;
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Orders by string, then by position so duplicates come out in file order. */
static int index_cmp(const void *pa, const void *pb)
{
    const struct gguf_str *a = *(const struct gguf_str *const *)pa;
    const struct gguf_str *b = *(const struct gguf_str *const *)pb;
    int c = str_cmp(a, b);
    return c ? c : (a > b) - (a < b);
}

static const struct gguf_str *index_find(const struct gguf_str *const *idx, uint64_t n,
                                         const char *s)
{
    if (!s)
        return NULL;
    struct gguf_str want = {s, strlen(s)};
    size_t lo = 0, hi = (size_t)n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = str_cmp(idx[mid], &want);
        if (c == 0)
            return idx[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- reader ---- */

struct rd {
    const uint8_t *buf;
    size_t len, pos;
    strix_error *err;
    char where[160]; /* what is being parsed, e.g. "kv 5 'general.name' at offset 120" */
};

static void rd_where(struct rd *r, const char *fmt, ...) STRIX_PRINTF(2, 3);
static void rd_where(struct rd *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->where, sizeof r->where, fmt, ap);
    va_end(ap);
}

static int rd_fail(struct rd *r, int code, const char *fmt, ...) STRIX_PRINTF(3, 4);
static int rd_fail(struct rd *r, int code, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(r->err, code, "gguf: %s: %s", r->where, msg);
}

static size_t rd_left(const struct rd *r)
{
    return r->len - r->pos;
}

static int rd_need(struct rd *r, size_t n, const char *what)
{
    if (rd_left(r) < n)
        return rd_fail(r, STRIX_ERR_FORMAT,
                       "%s at offset %zu needs %zu bytes, only %zu remain (truncated file?)", what,
                       r->pos, n, rd_left(r));
    return STRIX_OK;
}

/* Reads an n-byte little-endian number (n = sizeof *v) into v. */
static int rd_num(struct rd *r, void *v, size_t n, const char *what)
{
    int rc = rd_need(r, n, what);
    if (rc == STRIX_OK) {
        memcpy(v, r->buf + r->pos, n);
        r->pos += n;
    }
    return rc;
}
#define rd_u32(r, v, what) rd_num(r, v, 4, what)
#define rd_u64(r, v, what) rd_num(r, v, 8, what)

static int rd_str(struct rd *r, struct gguf_str *s, const char *what)
{
    uint64_t n;
    size_t at = r->pos;
    int rc = rd_u64(r, &n, what);
    if (rc)
        return rc;
    if (n > rd_left(r))
        return rd_fail(r, STRIX_ERR_FORMAT,
                       "%s length %llu at offset %zu exceeds remaining %zu bytes", what,
                       (unsigned long long)n, at, rd_left(r));
    s->ptr = (const char *)r->buf + r->pos;
    s->len = n;
    r->pos += (size_t)n;
    return STRIX_OK;
}

static int vt_is_signed(uint32_t t)
{
    return t == GGUF_VT_I8 || t == GGUF_VT_I16 || t == GGUF_VT_I32 || t == GGUF_VT_I64;
}

/* Decodes one number of type t from p: integers and bools into *i (signed
 * types sign-extended) and *u, floats into *f. Assumes a little-endian host. */
static void num_decode(uint32_t t, const uint8_t *p, int64_t *i, uint64_t *u, double *f)
{
    if (t == GGUF_VT_F32) {
        float v;
        memcpy(&v, p, 4);
        *f = v;
    } else if (t == GGUF_VT_F64) {
        memcpy(f, p, 8);
    } else {
        unsigned bits = 8u * vt_sizes[t];
        uint64_t v = 0;
        memcpy(&v, p, vt_sizes[t]);
        if (vt_is_signed(t) && bits < 64 && (v >> (bits - 1)) & 1)
            v |= ~0ull << bits;
        *u = v;
        *i = (int64_t)v;
    }
}

/* Parses an array (after its value type) at nesting level depth (0: a kv's
 * own value). kv is NULL for nested arrays, which are validated and skipped. */
static int rd_array(struct rd *r, struct gguf_kv *kv, int depth)
{
    uint32_t et;
    uint64_t n;
    size_t at = r->pos;
    int rc;
    if ((rc = rd_u32(r, &et, "array element type")))
        return rc;
    if (et >= GGUF_VT_COUNT)
        return rd_fail(r, STRIX_ERR_FORMAT, "unknown array element type %u at offset %zu", et, at);
    at = r->pos;
    if ((rc = rd_u64(r, &n, "array count")))
        return rc;
    if (kv)
        kv->arr_type = et, kv->n = n;
    /* smallest element: an empty array (type + count), an empty string
     * (length) or the number itself */
    size_t esz = et == GGUF_VT_ARR ? 12 : et == GGUF_VT_STR ? 8 : vt_sizes[et];
    if (n > rd_left(r) / esz)
        return rd_fail(r, STRIX_ERR_FORMAT,
                       "array of %llu %s at offset %zu exceeds remaining %zu bytes",
                       (unsigned long long)n, vt_names[et], at, rd_left(r));
    if (et == GGUF_VT_ARR) {
        if (depth + 1 >= GGUF_MAX_NESTING)
            return rd_fail(r, STRIX_ERR_FORMAT, "arrays nested more than %d deep at offset %zu",
                           GGUF_MAX_NESTING, at);
        for (uint64_t j = 0; j < n; j++)
            if ((rc = rd_array(r, NULL, depth + 1)))
                return rc;
    } else if (et == GGUF_VT_STR) {
        if (kv) {
            kv->arr_strs = util_calloc((size_t)n, sizeof *kv->arr_strs);
            if (!kv->arr_strs)
                return rd_fail(r, STRIX_ERR_NOMEM, "out of memory for %llu strings",
                               (unsigned long long)n);
        }
        for (uint64_t j = 0; j < n; j++) {
            struct gguf_str tmp;
            if ((rc = rd_str(r, kv ? &kv->arr_strs[j] : &tmp, "array string")))
                return rc;
        }
    } else {
        const uint8_t *p = r->buf + r->pos;
        if (et == GGUF_VT_BOOL)
            for (size_t j = 0; j < (size_t)n; j++)
                if (p[j] > 1)
                    return rd_fail(r, STRIX_ERR_FORMAT, "bool element %zu at offset %zu is %u", j,
                                   r->pos + j, p[j]);
        if (kv)
            kv->arr_data = p;
        r->pos += (size_t)n * esz;
    }
    return STRIX_OK;
}

static int rd_value(struct rd *r, struct gguf_kv *kv, size_t type_at)
{
    uint32_t t = kv->type;
    kv->n = 1;
    if (t >= GGUF_VT_COUNT)
        return rd_fail(r, STRIX_ERR_FORMAT, "unknown value type %u at offset %zu", t, type_at);
    if (t == GGUF_VT_STR)
        return rd_str(r, &kv->str, "string value");
    if (t == GGUF_VT_ARR)
        return rd_array(r, kv, 0);
    int rc = rd_need(r, vt_sizes[t], vt_names[t]);
    if (rc)
        return rc;
    const uint8_t *p = r->buf + r->pos;
    if (t == GGUF_VT_BOOL && p[0] > 1)
        return rd_fail(r, STRIX_ERR_FORMAT, "bool value at offset %zu is %u", r->pos, p[0]);
    num_decode(t, p, &kv->i, &kv->u, &kv->f);
    r->pos += vt_sizes[t];
    return STRIX_OK;
}

/* Sorts pointers to the first member (a gguf_str) of n structs of the given
 * stride and rejects duplicates. */
static int build_index(struct rd *r, const struct gguf_str ***out, const void *base, size_t stride,
                       uint64_t n, const char *what, const char *label)
{
    size_t bytes;
    if (!util_mul_size((size_t)n, sizeof **out, &bytes) || !(*out = util_malloc(bytes)))
        return err_set(r->err, STRIX_ERR_NOMEM, "gguf: out of memory for the %s index", what);
    const char *b = base;
    for (size_t j = 0; j < (size_t)n; j++)
        (*out)[j] = (const struct gguf_str *)(const void *)(b + j * stride);
    if (n > 1)
        qsort(*out, (size_t)n, sizeof **out, index_cmp);
    for (size_t j = 1; j < (size_t)n; j++) {
        if (str_cmp((*out)[j - 1], (*out)[j]) == 0) {
            char nm[80];
            size_t i0 = (size_t)((const char *)(*out)[j - 1] - b) / stride;
            size_t i1 = (size_t)((const char *)(*out)[j] - b) / stride;
            return err_set(r->err, STRIX_ERR_FORMAT, "gguf: duplicate %s '%s' (%s %zu and %s %zu)",
                           what, safe_name(nm, (*out)[j]->ptr, (*out)[j]->len), label, i0, label,
                           i1);
        }
    }
    return STRIX_OK;
}

static int rd_tensor_info(struct rd *r, struct gguf_tensor *t, uint64_t i, uint32_t align)
{
    char nm[80];
    size_t at = r->pos;
    int rc;
    rd_where(r, "tensor %llu at offset %zu", (unsigned long long)i, at);
    if ((rc = rd_str(r, &t->name, "name")))
        return rc;
    if (t->name.len == 0)
        return rd_fail(r, STRIX_ERR_FORMAT, "empty name");
    if (t->name.len > GGUF_MAX_NAME)
        return rd_fail(r, STRIX_ERR_FORMAT, "name of %llu bytes is longer than %d",
                       (unsigned long long)t->name.len, GGUF_MAX_NAME);
    rd_where(r, "tensor %llu '%s' at offset %zu", (unsigned long long)i,
             safe_name(nm, t->name.ptr, t->name.len), at);
    if ((rc = rd_u32(r, &t->n_dims, "n_dims")))
        return rc;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return rd_fail(r, STRIX_ERR_FORMAT, "n_dims %u at offset %zu is not in 1..%d", t->n_dims,
                       r->pos - 4, GGUF_MAX_DIMS);
    int64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t v = 1;
        if (d < t->n_dims && (rc = rd_u64(r, &v, "dimension")))
            return rc;
        if (v < 1 || v > (uint64_t)INT64_MAX)
            return rd_fail(r, STRIX_ERR_FORMAT, "ne[%u] = %lld at offset %zu is not positive", d,
                           (long long)v, r->pos - 8);
        t->ne[d] = (int64_t)v;
        if (t->ne[d] > INT64_MAX / nel)
            return rd_fail(r, STRIX_ERR_FORMAT, "element count overflows int64 at ne[%u]", d);
        nel *= t->ne[d];
    }
    if ((uint64_t)nel != (size_t)nel)
        return rd_fail(r, STRIX_ERR_FORMAT, "element count %lld overflows size_t", (long long)nel);
    if ((rc = rd_u32(r, &t->type, "type")))
        return rc;
    const struct dtype_traits *tr = dtype_get(t->type);
    if (!tr)
        return rd_fail(r, STRIX_ERR_UNSUPPORTED, "unknown tensor type %u at offset %zu", t->type,
                       r->pos - 4);
    if (t->ne[0] % tr->block_size != 0)
        return rd_fail(r, STRIX_ERR_FORMAT,
                       "row length ne[0] = %lld is not a multiple of the %s block size %d",
                       (long long)t->ne[0], tr->name, tr->block_size);
    size_t row = dtype_row_size(t->type, t->ne[0]);
    if (row == 0 || !util_mul_size(row, (size_t)(t->ne[1] * t->ne[2] * t->ne[3]), &t->nbytes))
        return rd_fail(r, STRIX_ERR_FORMAT, "size of %lld x %lld x %lld x %lld %s overflows",
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3], tr->name);
    if ((rc = rd_u64(r, &t->offset, "offset")))
        return rc;
    if (t->offset % align != 0)
        return rd_fail(r, STRIX_ERR_FORMAT,
                       "data offset %llu is not a multiple of the alignment %u",
                       (unsigned long long)t->offset, align);
    return STRIX_OK;
}

int gguf_parse(const uint8_t *buf, size_t len, gguf **out, strix_error *err)
{
    struct rd r = {buf, len, 0, err, "header"};
    char nm[80];
    int rc;
    if (!out || (!buf && len))
        return err_set(err, STRIX_ERR_ARG, "gguf: no buffer or no output pointer");
    *out = NULL;
    if (len < 4 || memcmp(buf, "GGUF", 4) != 0)
        return err_set(err, STRIX_ERR_FORMAT, "gguf: not a GGUF file (%s)",
                       len < 4 ? "shorter than 4 bytes" : "bad magic");
    r.pos = 4;
    uint32_t version;
    uint64_t nt, nkv;
    if ((rc = rd_u32(&r, &version, "version")))
        return rc;
    if (version != 2 && version != 3) {
        uint32_t sw = (version >> 24) | ((version >> 8) & 0xff00) | ((version << 8) & 0xff0000);
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "gguf: version %u is not supported (only 2 and 3%s)", version,
                       sw == 2 || sw == 3 ? "; a big-endian file?" : "");
    }
    if ((rc = rd_u64(&r, &nt, "n_tensors")) || (rc = rd_u64(&r, &nkv, "n_kv")))
        return rc;
    size_t left = rd_left(&r);
    if (nkv > left / GGUF_MIN_KV || nt > left / GGUF_MIN_TENSOR ||
        nkv * GGUF_MIN_KV + nt * GGUF_MIN_TENSOR > left)
        return rd_fail(&r, STRIX_ERR_FORMAT,
                       "%llu tensors and %llu kvs cannot fit in the remaining %zu bytes",
                       (unsigned long long)nt, (unsigned long long)nkv, left);

    gguf *g = util_calloc(1, sizeof *g);
    if (!g)
        return err_set(err, STRIX_ERR_NOMEM, "gguf: out of memory");
    g->version = version;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    g->n_kv = nkv;
    g->n_tensors = nt;
    g->kvs = util_calloc((size_t)nkv, sizeof *g->kvs);
    g->tensors = util_calloc((size_t)nt, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) {
        rc = err_set(err, STRIX_ERR_NOMEM, "gguf: out of memory for %llu kvs and %llu tensors",
                     (unsigned long long)nkv, (unsigned long long)nt);
        goto fail;
    }

    for (uint64_t i = 0; i < nkv; i++) {
        struct gguf_kv *kv = &g->kvs[i];
        size_t at = r.pos;
        rd_where(&r, "kv %llu at offset %zu", (unsigned long long)i, at);
        if ((rc = rd_str(&r, &kv->key, "key")))
            goto fail;
        if (kv->key.len == 0) {
            rc = rd_fail(&r, STRIX_ERR_FORMAT, "empty key");
            goto fail;
        }
        rd_where(&r, "kv %llu '%s' at offset %zu", (unsigned long long)i,
                 safe_name(nm, kv->key.ptr, kv->key.len), at);
        size_t type_at = r.pos;
        if ((rc = rd_u32(&r, &kv->type, "value type")) || (rc = rd_value(&r, kv, type_at)))
            goto fail;
        kv->raw = r.buf + type_at + 4;
        kv->raw_len = r.pos - (type_at + 4);
    }
    rd_where(&r, "header");
    if ((rc = build_index(&r, &g->kv_index, g->kvs, sizeof *g->kvs, nkv, "key", "kv")))
        goto fail;
    const struct gguf_kv *al = gguf_find_kv(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_VT_U32) {
            rc = err_set(err, STRIX_ERR_FORMAT, "gguf: general.alignment has type %s, expected u32",
                         vt_name(al->type));
            goto fail;
        }
        if (al->u == 0 || (al->u & (al->u - 1)) != 0) {
            rc = err_set(err, STRIX_ERR_FORMAT,
                         "gguf: general.alignment %llu is not a nonzero power of two",
                         (unsigned long long)al->u);
            goto fail;
        }
        g->alignment = (uint32_t)al->u;
    }

    for (uint64_t i = 0; i < nt; i++)
        if ((rc = rd_tensor_info(&r, &g->tensors[i], i, g->alignment)))
            goto fail;
    rd_where(&r, "header");
    if ((rc = build_index(&r, &g->tensor_index, g->tensors, sizeof *g->tensors, nt, "tensor name",
                          "tensor")))
        goto fail;

    /* The data section starts at the end of the header rounded up. A file
     * without tensors may end before that padding (older writers omit it),
     * so data_offset may then exceed len. */
    if (!util_add_size(r.pos, g->alignment - 1, &g->data_offset)) {
        rc = err_set(err, STRIX_ERR_FORMAT, "gguf: data section offset overflows");
        goto fail;
    }
    g->data_offset &= ~(size_t)(g->alignment - 1);
    if (nt > 0 && g->data_offset > len) {
        rc = err_set(err, STRIX_ERR_FORMAT,
                     "gguf: header ends at offset %zu; the data section at offset %zu is past "
                     "the end of the file (%zu bytes)",
                     r.pos, g->data_offset, len);
        goto fail;
    }
    for (uint64_t i = 0; i < nt; i++) {
        struct gguf_tensor *t = &g->tensors[i];
        size_t room = len - g->data_offset;
        if (t->offset > room || t->nbytes > room - (size_t)t->offset) {
            rc = err_set(err, STRIX_ERR_FORMAT,
                         "gguf: tensor %llu '%s': data [offset %llu, %zu bytes] extends past end "
                         "of file (%zu bytes, data section at %zu)",
                         (unsigned long long)i, safe_name(nm, t->name.ptr, t->name.len),
                         (unsigned long long)t->offset, t->nbytes, len, g->data_offset);
            goto fail;
        }
        t->data = buf + g->data_offset + (size_t)t->offset;
    }
    *out = g;
    return STRIX_OK;
fail:
    gguf_free(g);
    return rc;
}

void gguf_free(gguf *g)
{
    if (!g)
        return;
    if (g->kvs)
        for (uint64_t i = 0; i < g->n_kv; i++)
            util_free(g->kvs[i].arr_strs);
    util_free(g->kvs);
    util_free(g->tensors);
    util_free(g->kv_index);
    util_free(g->tensor_index);
    util_free(g);
}

uint32_t gguf_version(const gguf *g)
{
    return g->version;
}
uint32_t gguf_alignment(const gguf *g)
{
    return g->alignment;
}
size_t gguf_data_offset(const gguf *g)
{
    return g->data_offset;
}
uint64_t gguf_n_kv(const gguf *g)
{
    return g->n_kv;
}
uint64_t gguf_n_tensors(const gguf *g)
{
    return g->n_tensors;
}

const struct gguf_kv *gguf_kv_at(const gguf *g, uint64_t i)
{
    return i < g->n_kv ? &g->kvs[i] : NULL;
}

const struct gguf_kv *gguf_find_kv(const gguf *g, const char *key)
{
    /* key is the first member of struct gguf_kv */
    return (const struct gguf_kv *)(const void *)index_find(g->kv_index, g->n_kv, key);
}

const struct gguf_tensor *gguf_tensor_at(const gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const gguf *g, const char *name)
{
    /* name is the first member of struct gguf_tensor */
    return (const struct gguf_tensor *)(const void *)index_find(g->tensor_index, g->n_tensors,
                                                                name);
}

/* ---- typed getters ---- */

static int wrong_type(const struct gguf_kv *kv, const char *key, const char *want, strix_error *err)
{
    return err_set(err, STRIX_ERR_FORMAT, "gguf: key '%s' is %s %s, expected %s", key,
                   kv->type == GGUF_VT_ARR ? "an" : "a", vt_name(kv->type), want);
}

static int vt_is_bool(uint32_t t)
{
    return t == GGUF_VT_BOOL;
}
static int vt_is_str(uint32_t t)
{
    return t == GGUF_VT_STR;
}

/* The getters' lookup: key's pair, with *rc = STRIX_OK, if it is present and
 * type_ok accepts its type; otherwise NULL with *rc = STRIX_ERR_FORMAT (and a
 * message naming `want`) for a pair of another type or a required key that
 * is missing, or STRIX_ERR_ARG (no message) for an optional one. */
static const struct gguf_kv *get_kv(const gguf *g, const char *key, int required,
                                    int (*type_ok)(uint32_t), const char *want, int *rc,
                                    strix_error *err)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) {
        *rc = required ? err_set(err, STRIX_ERR_FORMAT, "gguf: required key '%s' is missing", key)
                       : STRIX_ERR_ARG;
        return NULL;
    }
    if (!type_ok(kv->type)) {
        *rc = wrong_type(kv, key, want, err);
        return NULL;
    }
    *rc = STRIX_OK;
    return kv;
}

int gguf_get_u32(const gguf *g, const char *key, int required, uint32_t *out, strix_error *err)
{
    int rc;
    const struct gguf_kv *kv = get_kv(g, key, required, vt_is_int, "an integer", &rc, err);
    if (!kv)
        return rc;
    int sgn = vt_is_signed(kv->type);
    if (sgn && (kv->i < 0 || kv->i > (int64_t)UINT32_MAX))
        return err_set(err, STRIX_ERR_FORMAT, "gguf: key '%s' = %lld does not fit in u32", key,
                       (long long)kv->i);
    if (!sgn && kv->u > UINT32_MAX)
        return err_set(err, STRIX_ERR_FORMAT, "gguf: key '%s' = %llu does not fit in u32", key,
                       (unsigned long long)kv->u);
    *out = (uint32_t)kv->u;
    return STRIX_OK;
}

int gguf_get_f32(const gguf *g, const char *key, int required, float *out, strix_error *err)
{
    int rc;
    const struct gguf_kv *kv = get_kv(g, key, required, vt_is_float, "f32 or f64", &rc, err);
    if (!kv)
        return rc;
    if (isfinite(kv->f) && fabs(kv->f) > FLT_MAX)
        return err_set(err, STRIX_ERR_FORMAT, "gguf: key '%s' = %g does not fit in f32", key,
                       kv->f);
    *out = (float)kv->f;
    return STRIX_OK;
}

int gguf_get_bool(const gguf *g, const char *key, int required, int *out, strix_error *err)
{
    int rc;
    const struct gguf_kv *kv = get_kv(g, key, required, vt_is_bool, "a bool", &rc, err);
    if (kv)
        *out = kv->u != 0;
    return rc;
}

int gguf_get_str(const gguf *g, const char *key, int required, struct gguf_str *out,
                 strix_error *err)
{
    int rc;
    const struct gguf_kv *kv = get_kv(g, key, required, vt_is_str, "a string", &rc, err);
    if (kv)
        *out = kv->str;
    return rc;
}

const struct gguf_kv *gguf_get_arr(const gguf *g, const char *key, uint32_t elem_type,
                                   strix_error *err)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) {
        err_set(err, STRIX_ERR_ARG, "gguf: key '%s' is missing", key);
        return NULL;
    }
    if (kv->type != GGUF_VT_ARR || kv->arr_type != elem_type) {
        char want[40];
        snprintf(want, sizeof want, "an array of %s", vt_name(elem_type));
        if (kv->type == GGUF_VT_ARR)
            err_set(err, STRIX_ERR_FORMAT, "gguf: key '%s' is an array of %s, expected %s", key,
                    vt_name(kv->arr_type), want);
        else
            wrong_type(kv, key, want, err);
        return NULL;
    }
    return kv;
}

static int arr_elem(const struct gguf_kv *kv, uint64_t i, int64_t *iv, uint64_t *uv, double *fv)
{
    *iv = 0, *uv = 0, *fv = 0;
    if (!kv || kv->type != GGUF_VT_ARR || !vt_is_numeric(kv->arr_type) || !kv->arr_data ||
        i >= kv->n)
        return 0;
    num_decode(kv->arr_type, kv->arr_data + (size_t)i * vt_sizes[kv->arr_type], iv, uv, fv);
    return 1;
}

float gguf_arr_f32(const struct gguf_kv *kv, uint64_t i)
{
    int64_t iv;
    uint64_t uv;
    double fv;
    if (!arr_elem(kv, i, &iv, &uv, &fv))
        return 0.0f;
    if (!vt_is_float(kv->arr_type))
        return kv->arr_type == GGUF_VT_U64 ? (float)uv : (float)iv;
    return fv > FLT_MAX ? INFINITY : fv < -FLT_MAX ? -INFINITY : (float)fv;
}

int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i)
{
    int64_t iv;
    uint64_t uv;
    double fv;
    if (!arr_elem(kv, i, &iv, &uv, &fv))
        return 0;
    if (!vt_is_float(kv->arr_type))
        return kv->arr_type == GGUF_VT_U64 && uv > (uint64_t)INT64_MAX ? INT64_MAX : iv;
    if (isnan(fv))
        return 0;
    /* saturate: converting an out-of-range double to int64 is undefined */
    return fv >= 0x1p63 ? INT64_MAX : fv < -0x1p63 ? INT64_MIN : (int64_t)fv;
}
