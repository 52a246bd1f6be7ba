/*
 * vocab_gguf.c - the vocabulary from GGUF metadata (tokenizer.ggml.*), and
 * the writer of those keys for saving.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenize/bpe.h"
#include "tokenize/vocab_impl.h"

/* ---- GGUF ------------------------------------------------------------------ */

/* Optional special id: absent keeps *id; UINT32_MAX (llama.cpp's "none") gives -1. */
static int get_id(const gguf *g, const char *key, int n, strix_token *id, strix_error *err)
{
    uint32_t u;
    int rc = gguf_get_u32(g, key, 0, &u, err);
    if (rc == STRIX_OK && u != UINT32_MAX && u >= (uint32_t)n)
        return err_set(err, STRIX_ERR_FORMAT, "%s is %u but there are %d tokens", key, u, n);
    if (rc == STRIX_OK)
        *id = u == UINT32_MAX ? -1 : (strix_token)u;
    return rc == STRIX_ERR_ARG ? STRIX_OK : rc; /* STRIX_ERR_ARG: absent */
}

static int get_flag(const gguf *g, const char *key, int *flag, strix_error *err)
{
    int b, rc = gguf_get_bool(g, key, 0, &b, err);
    if (rc == STRIX_OK)
        *flag = b != 0;
    return rc == STRIX_ERR_ARG ? STRIX_OK : rc;
}

/* A per-token array of the given element type: NULL and *rc == 0 if absent. */
static const struct gguf_kv *get_arr(const gguf *g, const char *key, uint32_t type, uint64_t n,
                                     int *rc, strix_error *err)
{
    const struct gguf_kv *kv = NULL;
    *rc = STRIX_OK;
    if (gguf_find_kv(g, key) && !(kv = gguf_get_arr(g, key, type, err)))
        *rc = STRIX_ERR_FORMAT;
    else if (kv && n && kv->n != n)
        *rc = err_set(err, STRIX_ERR_FORMAT, "%s has %llu entries but there are %llu tokens", key,
                      (unsigned long long)kv->n, (unsigned long long)n);
    return *rc ? NULL : kv;
}

int vocab_load_gguf(const gguf *g, struct vocab **out, strix_error *err)
{
    if (out)
        *out = NULL;
    if (!g || !out)
        return err_set(err, STRIX_ERR_ARG, "vocab_load_gguf: NULL argument");
    struct gguf_str model;
    int rc = gguf_get_str(g, "tokenizer.ggml.model", 1, &model, err);
    if (rc)
        return rc;
    const int is_bpe = model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0;
    if (!is_bpe && !(model.len == 5 && memcmp(model.ptr, "llama", 5) == 0))
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "tokenizer model '%.*s' (tokenizer.ggml.model) is not supported; "
                       "supported: %s",
                       (int)(model.len < 64 ? model.len : 64), model.ptr, VOCAB_MODELS);
    const struct gguf_kv *kt = get_arr(g, "tokenizer.ggml.tokens", GGUF_VT_STR, 0, &rc, err);
    if (!rc && (!kt || kt->n < 1 || kt->n > VOCAB_MAX || !kt->arr_strs))
        rc = err_set(err, STRIX_ERR_FORMAT,
                     "tokenizer.ggml.tokens is missing or has %llu tokens (1..%d)",
                     kt ? (unsigned long long)kt->n : 0ull, VOCAB_MAX);
    if (rc)
        return rc;
    const int n = (int)kt->n;
    const struct gguf_kv *ks = get_arr(g, "tokenizer.ggml.scores", GGUF_VT_F32, kt->n, &rc, err);
    if (rc)
        return rc;
    const struct gguf_kv *ky =
        get_arr(g, "tokenizer.ggml.token_type", GGUF_VT_I32, kt->n, &rc, err);
    if (rc)
        return rc;

    size_t text_bytes = 0;
    for (int i = 0; i < n; i++) {
        if (kt->arr_strs[i].len >= UINT32_MAX ||
            !util_add_size(text_bytes, (size_t)kt->arr_strs[i].len + 1, &text_bytes))
            return err_set(err, STRIX_ERR_FORMAT, "token %d is too long", i);
    }
    struct vocab *v = vocab_new(n, text_bytes);
    if (!v)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for %d tokens", n);
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        const struct gguf_str *s = &kt->arr_strs[i];
        vocab_set_piece(v, i, &pos, s->ptr, (size_t)s->len, 0);
        struct tok *t = &v->toks[i];
        t->score = ks ? gguf_arr_f32(ks, (uint64_t)i) : 0.0f;
        if (isnan(t->score)) {
            rc = err_set(err, STRIX_ERR_FORMAT, "token %d has a NaN score", i);
            goto fail;
        }
        if (ky) {
            int64_t ty = gguf_arr_i64(ky, (uint64_t)i);
            if (ty < 0 || ty > STRIX_TOKEN_BYTE) {
                rc = err_set(err, STRIX_ERR_FORMAT, "token %d has unknown type %lld", i,
                             (long long)ty);
                goto fail;
            }
            t->type = ty == 0 ? STRIX_TOKEN_NORMAL : (int)ty; /* 0: llama.cpp's "undefined" */
        } else {
            t->type = vocab_is_byte_piece(vocab_text(v, i), t->len) ? STRIX_TOKEN_BYTE : STRIX_TOKEN_NORMAL;
        }
    }
    /* llama.cpp's defaults, where the vocabulary is big enough to have them:
     * llama 0/1/2 for unknown/BOS/EOS, gpt2 11 for both BOS and EOS. */
    if (is_bpe) {
        v->unk = -1;
        v->bos = v->eos = n > 11 ? 11 : -1;
        v->add_space_prefix = v->add_bos = 0;
        struct gguf_str pre = {0};
        if ((rc = gguf_get_str(g, "tokenizer.ggml.pre", 0, &pre, err)) == STRIX_ERR_ARG)
            rc = STRIX_OK; /* absent: "default" */
        if (rc || (rc = bpe_create(pre.ptr, (size_t)pre.len, gguf_find_kv(g, "tokenizer.ggml.merges"),
                                   &v->bpe, err)))
            goto fail;
    } else {
        v->unk = 0;
        v->bos = n > 1 ? 1 : -1;
        v->eos = n > 2 ? 2 : -1;
    }
    /* tokenizer.ggml.seperator_token_id / padding_token_id are not used. */
    if ((rc = get_id(g, "tokenizer.ggml.bos_token_id", n, &v->bos, err)) ||
        (rc = get_id(g, "tokenizer.ggml.eos_token_id", n, &v->eos, err)) ||
        (rc = get_id(g, "tokenizer.ggml.unknown_token_id", n, &v->unk, err)) ||
        (rc = get_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err)) ||
        (rc = get_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err)) ||
        (rc = vocab_finish(v, err)))
        goto fail;
    vocab_special_fix_types(v, g);
    if ((rc = vocab_special_list(v, err)))
        goto fail;
    *out = v;
    return STRIX_OK;
fail:
    vocab_free(v);
    return rc;
}

int vocab_write_gguf(const struct vocab *v, gguf_writer *w, strix_error *err)
{
    if (!v || !w)
        return err_set(err, STRIX_ERR_ARG, "vocab_write_gguf: NULL argument");
    const char **strs = util_malloc((size_t)v->n * sizeof *strs);
    float *scores = util_malloc((size_t)v->n * sizeof *scores);
    int32_t *types = util_malloc((size_t)v->n * sizeof *types);
    char *mblob = NULL;
    const char **merges = NULL;
    uint32_t n_merges = 0;
    int rc = STRIX_OK;
    const char *key = "";
    if (!strs || !scores || !types ||
        (v->bpe && bpe_merge_strings(v->bpe, &mblob, &merges, &n_merges))) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory writing the vocabulary");
        goto done;
    }
    for (int i = 0; i < v->n; i++) {
        /* The writer takes C strings; GGUF could hold the NUL, our API cannot. */
        if (memchr(vocab_text(v, i), 0, v->toks[i].len)) {
            rc = err_set(err, STRIX_ERR_UNSUPPORTED,
                         "token %d holds a NUL byte, which cannot be written to GGUF", i);
            goto done;
        }
        strs[i] = vocab_text(v, i);
        scores[i] = v->toks[i].score;
        types[i] = v->toks[i].type;
    }
    if (v->bpe) { /* keys in the order llama.cpp's HF converter writes them */
        if ((rc = gguf_writer_add_str(w, key = "tokenizer.ggml.model", "gpt2")) ||
            (rc = gguf_writer_add_str(w, key = "tokenizer.ggml.pre", bpe_pre_name(v->bpe))) ||
            (rc = gguf_writer_add_arr_str(w, key = "tokenizer.ggml.tokens", strs, (uint64_t)v->n)) ||
            (rc = gguf_writer_add_arr_i32(w, key = "tokenizer.ggml.token_type", types,
                                          (uint64_t)v->n)) ||
            (rc = gguf_writer_add_arr_str(w, key = "tokenizer.ggml.merges", merges, n_merges)) ||
            (v->bos >= 0 && (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.bos_token_id",
                                                      (uint32_t)v->bos))) ||
            (v->eos >= 0 && (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.eos_token_id",
                                                      (uint32_t)v->eos))) ||
            (v->unk >= 0 && (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.unknown_token_id",
                                                      (uint32_t)v->unk))) ||
            (v->add_bos && (rc = gguf_writer_add_bool(w, key = "tokenizer.ggml.add_bos_token", 1))))
            rc = err_set(err, rc, "cannot add GGUF key %s (%s)", key, strix_status_name(rc));
        goto done;
    }
    /* Keys in the order llama.cpp's llama2.c converter writes them. */
    if ((rc = gguf_writer_add_str(w, key = "tokenizer.ggml.model", "llama")) ||
        (rc = gguf_writer_add_arr_str(w, key = "tokenizer.ggml.tokens", strs, (uint64_t)v->n)) ||
        (rc = gguf_writer_add_arr_f32(w, key = "tokenizer.ggml.scores", scores, (uint64_t)v->n)) ||
        (rc = gguf_writer_add_arr_i32(w, key = "tokenizer.ggml.token_type", types,
                                      (uint64_t)v->n)) ||
        (v->unk >= 0 && (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.unknown_token_id",
                                                  (uint32_t)v->unk))) ||
        (v->bos >= 0 &&
         (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.bos_token_id", (uint32_t)v->bos))) ||
        (v->eos >= 0 &&
         (rc = gguf_writer_add_u32(w, key = "tokenizer.ggml.eos_token_id", (uint32_t)v->eos))) ||
        /* The two flags only where they differ from llama.cpp's defaults. */
        (!v->add_space_prefix &&
         (rc = gguf_writer_add_bool(w, key = "tokenizer.ggml.add_space_prefix", 0))) ||
        (!v->add_bos && (rc = gguf_writer_add_bool(w, key = "tokenizer.ggml.add_bos_token", 0))))
        rc = err_set(err, rc, "cannot add GGUF key %s (%s)", key, strix_status_name(rc));
done:
    util_free(strs);
    util_free(scores);
    util_free(types);
    util_free(mblob);
    util_free((void *)merges);
    return rc;
}

