/*
 * gguf.h - GGUF files: a validating reader over bytes in memory and a writer.
 * Knows nothing about models.
 *
 * The format (v2 and v3; all numbers little-endian):
 *
 *   uint32 magic "GGUF" (bytes 47 47 55 46)
 *   uint32 version            2 or 3 (v1 used 32-bit counts and is rejected)
 *   uint64 n_tensors
 *   uint64 n_kv
 *   n_kv times:   string key, uint32 value_type, value
 *   n_tensors times: string name, uint32 n_dims (1..4), uint64 ne[n_dims],
 *                 uint32 type, uint64 offset (relative to the data section)
 *   padding to `general.alignment` (uint32 key, default 32, a power of two)
 *   data section: each tensor at its offset, which is a multiple of the
 *                 alignment
 *
 *   string = uint64 length + bytes (not NUL-terminated)
 *   value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte),
 *                8 string, 9 array (uint32 elem_type, uint64 count, elems;
 *                arrays of arrays are allowed by the format), 10 u64, 11 i64, 12 f64
 *
 * The reader checks every count, length, type and offset against the bytes
 * that exist, with overflow-safe arithmetic, and names what is wrong and at
 * which byte offset. All strings and data it returns point into the caller's
 * buffer (borrowed): the buffer must outlive the gguf handle.
 */
#ifndef STRIX_GGUF_H
#define STRIX_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "strix.h"

enum gguf_vtype {
    GGUF_VT_U8 = 0,
    GGUF_VT_I8 = 1,
    GGUF_VT_U16 = 2,
    GGUF_VT_I16 = 3,
    GGUF_VT_U32 = 4,
    GGUF_VT_I32 = 5,
    GGUF_VT_F32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STR = 8,
    GGUF_VT_ARR = 9,
    GGUF_VT_U64 = 10,
    GGUF_VT_I64 = 11,
    GGUF_VT_F64 = 12,
    GGUF_VT_COUNT = 13,
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

struct gguf_str {
    const char *ptr; /* borrowed from the buffer; not NUL-terminated */
    uint64_t len;
};

struct gguf_kv {
    struct gguf_str key;
    uint32_t type;     /* enum gguf_vtype */
    uint32_t arr_type; /* element type when type == GGUF_VT_ARR */
    uint64_t n;        /* element count for arrays, 1 otherwise */
    /* Scalars, decoded (the field matching the type's family is set):
     * integers and bools in i (signed types sign-extended) and u, floats in f. */
    int64_t i;
    uint64_t u;
    double f;
    struct gguf_str str;       /* type == GGUF_VT_STR */
    const uint8_t *arr_data;   /* arrays of numbers: first element (maybe unaligned) */
    struct gguf_str *arr_strs; /* arrays of strings: n entries (owned by the handle) */
    const uint8_t *raw;        /* the value's bytes as in the file, after the type (borrowed) */
    size_t raw_len;
};

struct gguf_tensor {
    struct gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* unused dims are 1; ne[0] is the row length */
    uint32_t type;             /* enum dtype */
    uint64_t offset;           /* relative to the data section */
    size_t nbytes;
    const void *data; /* borrowed: points into the buffer */
};

typedef struct gguf gguf;

/* Parses a whole GGUF file held in buf[0..len). On failure *out is NULL,
 * the return value is a strix_status and err names the problem. */
int gguf_parse(const uint8_t *buf, size_t len, gguf **out, strix_error *err);
void gguf_free(gguf *g);

uint32_t gguf_version(const gguf *g);
uint32_t gguf_alignment(const gguf *g);
/* File offset of the data section; may lie past the end of the buffer when the
 * file has no tensors (vocabulary-only files end before the padding). */
size_t gguf_data_offset(const gguf *g);

uint64_t gguf_n_kv(const gguf *g);
const struct gguf_kv *gguf_kv_at(const gguf *g, uint64_t i);
const struct gguf_kv *gguf_find_kv(const gguf *g, const char *key); /* NULL if absent */

uint64_t gguf_n_tensors(const gguf *g);
const struct gguf_tensor *gguf_tensor_at(const gguf *g, uint64_t i);
const struct gguf_tensor *gguf_find_tensor(const gguf *g, const char *name);

/* Typed getters. Absent key: return STRIX_ERR_ARG quietly if `required` is 0
 * (the caller keeps its default), else STRIX_ERR_FORMAT with a message. A key
 * of the wrong type is always STRIX_ERR_FORMAT. Integer getters accept any
 * integer type whose value fits; float getters accept f32 and f64. */
int gguf_get_u32(const gguf *g, const char *key, int required, uint32_t *out, strix_error *err);
int gguf_get_f32(const gguf *g, const char *key, int required, float *out, strix_error *err);
int gguf_get_bool(const gguf *g, const char *key, int required, int *out, strix_error *err);
int gguf_get_str(const gguf *g, const char *key, int required, struct gguf_str *out,
                 strix_error *err);
/* Array of exactly the given element type (GGUF_VT_STR for strings); its count
 * is kv->n. NULL with STRIX_ERR_ARG in err->code when the key is absent, NULL
 * with STRIX_ERR_FORMAT when it has another type. */
const struct gguf_kv *gguf_get_arr(const gguf *g, const char *key, uint32_t elem_type,
                                   strix_error *err);
/* Element i of a numeric array as float / int64 (any numeric element type). */
float gguf_arr_f32(const struct gguf_kv *kv, uint64_t i);
int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i);

/* ---- writer ---- */

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_create(void); /* NULL on out of memory */
void gguf_writer_free(gguf_writer *w);
/* Keys and strings are copied. Adding a key twice is STRIX_ERR_ARG. */
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v);
int gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
int gguf_writer_add_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
int gguf_writer_add_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* Copies a key and its value exactly as a parsed file holds them (any type,
 * arrays of arrays included). */
int gguf_writer_copy_kv(gguf_writer *w, const struct gguf_kv *kv);
/* From now on, adding a key already present is no error and keeps the value
 * added first (a file's own keys copied before the ones a converter derives). */
void gguf_writer_keep_first(gguf_writer *w);
/* 1 if the key has been added. */
int gguf_writer_has_key(const gguf_writer *w, const char *key);
/* The tensor data is borrowed until gguf_writer_write returns; nbytes must
 * equal the size its type and shape imply. Names must be shorter than 64 bytes
 * (llama.cpp's limit), so every file written loads there. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data, size_t nbytes);
/* Writes a v3 file with alignment 32, through a temporary file renamed over
 * path (format/atomic_file.h): path is replaced whole or left as it was. */
int gguf_writer_write(gguf_writer *w, const char *path, strix_error *err);

#endif
