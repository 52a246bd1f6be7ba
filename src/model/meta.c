/*
 * meta.c - read access to a model's GGUF metadata by key, for the keys the
 * model loader does not interpret itself (tokenizer.chat_template, ...).
 * The parsed header belongs to model.c; this file only reads it.
 */
#include <string.h>

#include "format/gguf.h"
#include "model/model.h"

int strix_model_meta_str(const strix_model *model, const char *key, char *buf, size_t cap)
{
    if (cap > 0 && buf)
        buf[0] = '\0';
    if (!model || !key || !model->gguf)
        return -1;
    const struct gguf_kv *kv = gguf_find_kv(model->gguf, key);
    if (!kv || kv->type != GGUF_VT_STR || kv->str.len > (uint64_t)INT32_MAX)
        return -1;
    const size_t len = (size_t)kv->str.len;
    if (buf && cap > 0) {
        const size_t n = len < cap - 1 ? len : cap - 1;
        memcpy(buf, kv->str.ptr, n);
        buf[n] = '\0';
    }
    return (int)len;
}
