/*
 * model.c - loading a model: format detection, the weight table (every
 * weight's name, shape and place, built from the architecture's row in
 * arch.c), placing the tensors of a GGUF file (format/gguf.c) or a llama2.c
 * checkpoint (format/l2c.c) into it by name, validation of every shape,
 * model info, and saving as GGUF. The forward pass lives in
 * runtime/forward.c.
 */
#include "model/model.h"

#include <stdio.h>
#include <string.h>

#include "model/arch.h"
#include "quant/dtype.h"
#include "format/atomic_file.h"
#include "format/gguf.h"
#include "format/l2c.h"

/* Hyperparameter bounds: anything larger is rejected as corrupt, which also
 * keeps every size computed from them far from overflow. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096
#define MAX_CTX (1 << 24)
#define MAX_HEADS 4096 /* so that tokens (< 2^16 a batch) x heads fits an int */

UTIL_PARAMS_DEFINE(model, .vocab_path = NULL)

int model_weight_in_stage(const strix_model *m, int i)
{
    STRIX_ASSERT(i >= 0 && i < m->n_all);
    if (i >= m->n_slots_global) {
        const int il = (i - m->n_slots_global) / m->n_slots_layer;
        return il >= m->layer_first && il < m->layer_end;
    }
    const struct tensor *t = m->all[i];
    const int first = m->layer_first == 0, last = m->layer_end == m->hp.n_layer;
    if (t == &m->tok_embd)
        return first || (last && m->tied_output);
    if (t == &m->output || t == &m->output_norm || t == &m->output_norm_b)
        return last;
    return first; /* positions, the embeddings' norm */
}

/* The layer range of params (0, 0: all) onto a loaded model. */
static int set_stage(strix_model *m, const struct strix_model_params *params, strix_error *err)
{
    const int first = params->layer_first, end = params->layer_end;
    if (m->vocab_only || (first == 0 && end == 0))
        return STRIX_OK;
    if (first < 0 || end <= first || end > m->hp.n_layer)
        return err_set(err, STRIX_ERR_ARG, "layer range [%d, %d) is not within the %d layers",
                       first, end, m->hp.n_layer);
    if (m->hp.yoco && (first != 0 || end != m->hp.n_layer)) /* the whole model is one stage */
        return err_set(err, STRIX_ERR_UNSUPPORTED, "yoco models cannot be split into stages "
                       "(the cross-decoder reads the cache the self-decoder's output fills)");
    m->layer_first = first;
    m->layer_end = end;
    return STRIX_OK;
}

const struct vocab *model_vocab(const strix_model *m)
{
    return m ? m->vocab : NULL;
}

void model_slot(strix_model *m, int i, struct slot *s)
{
    STRIX_ASSERT(i >= 0 && i < m->n_all);
    *s = m->slots[i];
}

/* The slots of the model's architecture: model-wide weights, then each
 * block's, in the order of enum tkind (for llama: token_embd, output_norm,
 * output, then attn_norm, q, k, v, o, ffn_norm, gate, down, up per block). */
static int count_slots(strix_model *m)
{
    m->n_slots_global = m->n_slots_layer = 0;
    for (int k = 0; k < T_FIRST_LAYER; k++)
        m->n_slots_global += arch_has(m, k);
    int n = m->n_slots_global;
    for (int il = 0; il < m->hp.n_layer; il++) {
        int in_layer = 0;
        for (int k = T_FIRST_LAYER; k < T_COUNT; k++)
            in_layer += arch_has_layer(m, k, il);
        n += in_layer;
        if (in_layer > m->n_slots_layer)
            m->n_slots_layer = in_layer;
    }
    return n;
}

static void fill_slot(strix_model *m, int k, int il, struct slot *s)
{
    memset(s, 0, sizeof *s);
    arch_tensor_name(k, il, s->name, sizeof s->name);
    s->t = arch_tensor(m, k, il);
    arch_shape(m, k, &s->n_dims, s->ne);
}

int model_init_tables(strix_model *m, strix_error *err)
{
    struct hparams *hp = &m->hp;
    if (!m->ad && !(m->ad = arch_find(m->arch)))
        return err_set(err, STRIX_ERR_UNSUPPORTED, "architecture '%s' is not supported", m->arch);
    if (hp->n_ff_dense == 0)
        hp->n_ff_dense = hp->n_ff;
    hp->n_ff = hp->n_ff_dense;
    if (hp->n_ff_exp > hp->n_ff)
        hp->n_ff = hp->n_ff_exp;
    if (hp->n_ff_shexp > hp->n_ff)
        hp->n_ff = hp->n_ff_shexp;
#define CHECK_RANGE(v, lo, hi)                                                                     \
    if ((v) < (lo) || (v) > (hi))                                                                  \
        return err_set(err, STRIX_ERR_FORMAT, "hyperparameter %s = %d is out of range [%d, %d]",   \
                       #v, (int)(v), (int)(lo), (int)(hi));
    CHECK_RANGE(hp->n_vocab, 1, MAX_DIM * 4);
    CHECK_RANGE(hp->n_embd, 1, MAX_DIM);
    CHECK_RANGE(hp->n_ff, 1, MAX_DIM);
    CHECK_RANGE(hp->n_ff_dense, hp->n_expert > 0 ? 0 : 1, MAX_DIM);
    CHECK_RANGE(hp->n_layer, 1, MAX_LAYERS);
    CHECK_RANGE(hp->n_head, 1, hp->n_embd < MAX_HEADS ? hp->n_embd : MAX_HEADS);
    CHECK_RANGE(hp->n_head_kv, 1, hp->n_head);
    CHECK_RANGE(hp->n_ctx_train, 1, MAX_CTX);
    CHECK_RANGE(hp->n_expert, 0, 1024);
    CHECK_RANGE(hp->n_expert_used, hp->n_expert > 0 ? 1 : 0, hp->n_expert);
    CHECK_RANGE(hp->n_swa, 0, MAX_CTX);
#undef CHECK_RANGE
    if (hp->head_dim == 0 && hp->n_embd % hp->n_head != 0)
        return err_set(err, STRIX_ERR_FORMAT, "n_embd %d is not a multiple of n_head %d",
                       hp->n_embd, hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0)
        return err_set(err, STRIX_ERR_FORMAT, "n_head %d is not a multiple of n_head_kv %d",
                       hp->n_head, hp->n_head_kv);
    if (hp->head_dim == 0)
        hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->head_dim < 1 || hp->head_dim > 4096 || (int64_t)hp->head_dim * hp->n_head > MAX_DIM)
        return err_set(err, STRIX_ERR_FORMAT, "head size %d is out of range", hp->head_dim);
    if (hp->n_rot <= 0)
        hp->n_rot = hp->head_dim;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return err_set(err, STRIX_ERR_FORMAT, "rope dimension %d must be even and at most %d",
                       hp->n_rot, hp->head_dim);
    if (!(hp->norm_eps > 0.0f && hp->norm_eps < 1.0f))
        return err_set(err, STRIX_ERR_FORMAT, "norm epsilon %g is out of range", hp->norm_eps);
    if (!(hp->rope_freq_base > 1.0f && hp->rope_freq_base < 1e12f))
        return err_set(err, STRIX_ERR_FORMAT, "rope base %g is out of range", hp->rope_freq_base);
    if (hp->rope_freq_scale == 0.0f)
        hp->rope_freq_scale = 1.0f;
    if (hp->yarn_attn_factor == 0.0f)
        hp->yarn_attn_factor = 1.0f;
    m->layers = util_calloc((size_t)hp->n_layer, sizeof *m->layers);
    m->slot_first = util_calloc((size_t)hp->n_layer + 1, sizeof *m->slot_first);
    m->n_all = count_slots(m);
    m->all = util_calloc((size_t)m->n_all, sizeof *m->all);
    m->slots = util_calloc((size_t)m->n_all, sizeof *m->slots);
    if (!m->layers || !m->all || !m->slots || !m->slot_first)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for the weight table");
    int i = 0;
    for (int k = 0; k < T_FIRST_LAYER; k++)
        if (arch_has(m, k))
            fill_slot(m, k, 0, &m->slots[i++]);
    for (int il = 0; il < hp->n_layer; il++) {
        m->slot_first[il] = i;
        for (int k = T_FIRST_LAYER; k < T_COUNT; k++)
            if (arch_has_layer(m, k, il))
                fill_slot(m, k, il, &m->slots[i++]);
    }
    m->slot_first[hp->n_layer] = i;
    for (i = 0; i < m->n_all; i++)
        m->all[i] = m->slots[i].t;
    m->layer_first = 0;
    m->layer_end = hp->n_layer;
    if (m->tied_output)
        m->output = m->tok_embd; /* refreshed once token_embd is set */
    return STRIX_OK;
}

int model_set_tensor(const struct slot *s, uint32_t type, const int64_t *ne, int n_dims,
                     const void *data, size_t nbytes, strix_error *err)
{
    const struct dtype_traits *tr = dtype_get(type);
    if (!tr)
        return err_set(err, STRIX_ERR_FORMAT, "tensor '%s': unknown type %u", s->name, type);
    if (!tr->dequantize)
        return err_set(err, STRIX_ERR_UNSUPPORTED, "tensor '%s': type %s is not supported yet",
                       s->name, tr->name);
    if (s->n_dims == 1 && type != DTYPE_F32)
        return err_set(err, STRIX_ERR_UNSUPPORTED, "tensor '%s': norm weights must be F32, not %s",
                       s->name, tr->name);
    int64_t got[3] = {ne[0], n_dims > 1 ? ne[1] : 1, n_dims > 2 ? ne[2] : 1};
    for (int d = 3; d < n_dims; d++)
        if (ne[d] != 1)
            got[2] = -1;
    if (got[0] != s->ne[0] || got[1] != s->ne[1] || got[2] != s->ne[2]) {
        if (s->ne[2] > 1 || got[2] != 1)
            return err_set(err, STRIX_ERR_FORMAT,
                           "tensor '%s' has shape [%lld, %lld, %lld], expected [%lld, %lld, %lld]",
                           s->name, (long long)got[0], (long long)got[1], (long long)got[2],
                           (long long)s->ne[0], (long long)s->ne[1], (long long)s->ne[2]);
        return err_set(err, STRIX_ERR_FORMAT,
                       "tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", s->name,
                       (long long)ne[0], (long long)(n_dims > 1 ? ne[1] : 1), (long long)s->ne[0],
                       (long long)s->ne[1]);
    }
    size_t row = dtype_row_size(type, s->ne[0]), total;
    if (row == 0 || !util_mul_size(row, (size_t)s->ne[1], &total) ||
        !util_mul_size(total, (size_t)s->ne[2], &total) || total != nbytes)
        return err_set(err, STRIX_ERR_FORMAT, "tensor '%s': %zu bytes do not fit type %s and shape",
                       s->name, nbytes, tr->name);
    struct tensor *t = s->t;
    memcpy(t->name, s->name, sizeof t->name);
    t->type = type;
    t->n_dims = s->n_dims;
    t->ne[0] = s->ne[0], t->ne[1] = s->ne[1], t->ne[2] = s->ne[2], t->ne[3] = 1;
    t->data = data;
    t->nbytes = nbytes;
    t->row_bytes = row;
    return STRIX_OK;
}

/* The slot named name[0..len), or NULL. Slots are the model-wide ones, then
 * each block's from slot_first[il] (model_init_tables), so only one block's
 * are searched. */
static const struct slot *find_slot(const strix_model *m, const char *name, size_t len)
{
    int lo = 0, hi = m->n_slots_global;
    if (len > 4 && memcmp(name, "blk.", 4) == 0) {
        long il = 0;
        for (size_t i = 4; i < len && name[i] >= '0' && name[i] <= '9' && il <= m->hp.n_layer; i++)
            il = il * 10 + (name[i] - '0');
        if (il >= m->hp.n_layer)
            return NULL;
        lo = m->slot_first[il];
        hi = m->slot_first[il + 1];
    }
    for (int i = lo; i < hi; i++)
        if (strlen(m->slots[i].name) == len && memcmp(m->slots[i].name, name, len) == 0)
            return &m->slots[i];
    return NULL;
}

/* Places a tensor of the file, known by its name, into the slot of that
 * name; a name the architecture has no slot for, or one seen twice, is an
 * error. */
static int place_tensor(strix_model *m, const char *name, size_t name_len, uint32_t type,
                        const int64_t *ne, int n_dims, const void *data, size_t nbytes,
                        strix_error *err)
{
    const struct slot *s = find_slot(m, name, name_len);
    if (!s)
        return err_set(err, STRIX_ERR_UNSUPPORTED, "unexpected tensor '%.*s'",
                       (int)(name_len > 200 ? 200 : name_len), name);
    if (s->t->data)
        return err_set(err, STRIX_ERR_FORMAT, "tensor '%s' appears twice", s->name);
    return model_set_tensor(s, type, ne, n_dims, data, nbytes, err);
}

/* After placing: every slot of the table must have its tensor. */
static int check_all_placed(const strix_model *m, strix_error *err)
{
    for (int i = 0; i < m->n_all; i++)
        if (!m->slots[i].t->data)
            return err_set(err, STRIX_ERR_FORMAT, "tensor '%s' is missing", m->slots[i].name);
    return STRIX_OK;
}

/* ---- llama2.c ---- */

int model_load_l2c(strix_model *m, const char *vocab_path, strix_error *err)
{
    struct l2c_file f;
    int rc = l2c_parse(m->map.data, m->map.size, &f, err);
    if (rc)
        return rc;
    struct hparams *hp = &m->hp;
    snprintf(m->arch, sizeof m->arch, "llama");
    hp->n_embd = f.cfg.dim;
    hp->n_ff = f.cfg.hidden_dim;
    hp->n_layer = f.cfg.n_layers;
    hp->n_head = f.cfg.n_heads;
    hp->n_head_kv = f.cfg.n_kv_heads;
    hp->n_vocab = f.cfg.vocab_size;
    hp->n_ctx_train = f.cfg.seq_len;
    hp->rope_freq_base = 10000.0f;
    hp->norm_eps = 1e-5f; /* llama2.c's rmsnorm constant */
    m->tied_output = f.shared;
    m->owned = f.owned; /* the converted int8 weights */
    f.owned = NULL;
    rc = model_init_tables(m, err);
    for (int i = 0; i < f.n_tensors && rc == STRIX_OK; i++) {
        const struct l2c_tensor *t = &f.tensors[i];
        rc = place_tensor(m, t->name, strlen(t->name), t->type, t->ne, t->n_dims, t->data,
                          t->nbytes, err);
    }
    l2c_free(&f);
    if (rc || (rc = check_all_placed(m, err)) || !vocab_path)
        return rc;
    struct util_map vm;
    if ((rc = util_map_file(vocab_path, &vm, err)))
        return rc;
    rc = vocab_load_l2c(vm.data, vm.size, hp->n_vocab, &m->vocab, err);
    util_unmap(&vm);
    if (rc)
        err_prefix(err, "%s", vocab_path);
    return rc;
}

/* ---- GGUF ---- */

static int load_gguf(strix_model *m, const struct strix_model_params *params, strix_error *err)
{
    int rc = gguf_parse(m->map.data, m->map.size, &m->gguf, err);
    if (rc)
        return rc;
    const gguf *g = m->gguf;
    struct gguf_str s;
    if ((rc = gguf_get_str(g, "general.architecture", 1, &s, err)))
        return rc;
    if (s.len == 0 || s.len >= sizeof m->arch || memchr(s.ptr, 0, s.len))
        return err_set(err, STRIX_ERR_FORMAT, "bad general.architecture");
    memcpy(m->arch, s.ptr, s.len);
    m->arch[s.len] = '\0';
    if (gguf_get_str(g, "general.name", 0, &s, NULL) == STRIX_OK) {
        m->name = util_strndup(s.ptr, s.len);
        if (!m->name)
            return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    if ((rc = vocab_load_gguf(g, &m->vocab, err)))
        return rc;
    m->vocab_only = params->vocab_only || gguf_n_tensors(g) == 0;
    if (m->vocab_only) {
        m->hp.n_vocab = vocab_n(m->vocab);
        return STRIX_OK;
    }
    if (!(m->ad = arch_find(m->arch)))
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "architecture '%s' is not supported (strix runs: %s)", m->arch,
                       arch_names());
    struct hparams *hp = &m->hp;
    if ((rc = arch_load_hparams(m, g, err)))
        return rc;
    const struct gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb)
        return err_set(err, STRIX_ERR_FORMAT, "tensor 'token_embd.weight' is missing");
    if (emb->ne[1] > MAX_DIM * 4)
        return err_set(err, STRIX_ERR_FORMAT, "token_embd.weight has %lld rows",
                       (long long)emb->ne[1]);
    hp->n_vocab = (int)emb->ne[1];
    /* the output projection: tied when the row says so, or when optional and absent */
    m->tied_output = m->ad->output == W_NO ||
                     (m->ad->output == W_OPT && gguf_find_tensor(g, "output.weight") == NULL);
    for (int k = 0; k < T_COUNT; k++) {
        if ((m->ad->w[k] != W_OPT && m->ad->w[k] != W_MOE_OPT) || k == T_OUTPUT)
            continue;
        char name[64]; /* looked for in the first block that may have it */
        arch_tensor_name(k, m->ad->w[k] == W_MOE_OPT ? hp->n_layer_dense_lead : 0, name,
                         sizeof name);
        if (gguf_find_tensor(g, name))
            m->opt_present[k] = 1;
    }
    if ((rc = model_init_tables(m, err)))
        return rc;
    if (hp->mla_legacy && (rc = arch_deepseek2_split_kv_b(m, g, err)))
        return rc;
    for (int i = 0; i < m->n_all; i++) {
        const struct slot *sl = &m->slots[i];
        const struct gguf_tensor *t = gguf_find_tensor(g, sl->name);
        if (!t && sl->t->data)
            continue; /* made at load (arch_deepseek2_split_kv_b) */
        if (!t)
            return err_set(err, STRIX_ERR_FORMAT, "tensor '%s' is missing", sl->name);
        if ((rc = model_set_tensor(sl, t->type, t->ne, (int)t->n_dims, t->data, t->nbytes, err)))
            return rc;
    }
    if ((rc = linear_load(m, g, err))) /* blocks replaced by linear maps, if any */
        return rc;
    /* the names are unique in a GGUF file (gguf.c), so equal counts mean no extra tensor */
    for (uint64_t i = 0; (uint64_t)m->n_all != gguf_n_tensors(g) && i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        if (!find_slot(m, t->name.ptr, t->name.len) && !linear_is_name(t->name.ptr, t->name.len) &&
            !arch_deepseek2_legacy_name(m, t->name.ptr, t->name.len))
            return err_set(err, STRIX_ERR_UNSUPPORTED, "unexpected tensor '%.*s'",
                           (int)(t->name.len > 200 ? 200 : t->name.len), t->name.ptr);
    }
    return STRIX_OK;
}

static int finish(strix_model *m, strix_error *err)
{
    if (m->vocab_only)
        return STRIX_OK;
    if (m->tied_output)
        m->output = m->tok_embd;
    if (m->vocab && vocab_n(m->vocab) != m->hp.n_vocab)
        return err_set(err, STRIX_ERR_FORMAT,
                       "the vocabulary has %d tokens but the embeddings have %d rows",
                       vocab_n(m->vocab), m->hp.n_vocab);
    return STRIX_OK;
}

int model_load_map(strix_model *m, const struct strix_model_params *params, strix_error *err)
{
    int rc;
    if (m->map.size >= 4 && memcmp(m->map.data, "GGUF", 4) == 0)
        rc = load_gguf(m, params, err);
    else if (l2c_probe(m->map.data, m->map.size))
        rc = model_load_l2c(m, params->vocab_path, err);
    else
        rc = err_set(err, STRIX_ERR_FORMAT, "not a GGUF file or llama2.c checkpoint");
    return rc ? rc : finish(m, err);
}

int strix_model_load(const char *path, const struct strix_model_params *params, strix_model **out,
                     strix_error *err)
{
    err_clear(err);
    if (!out)
        return err_set(err, STRIX_ERR_ARG, "out is NULL");
    *out = NULL;
    if (!path)
        return err_set(err, STRIX_ERR_ARG, "no model path");
    struct strix_model_params def;
    int prc = UTIL_PARAMS_READ(model, &def, params, err);
    if (prc)
        return prc;
    params = &def;
    strix_model *m = util_calloc(1, sizeof *m);
    if (!m)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    int rc = util_map_file(path, &m->map, err);
    if (rc == STRIX_OK)
        rc = model_load_map(m, params, err);
    if (rc == STRIX_OK)
        rc = set_stage(m, params, err);
    if (rc)
        goto fail;
    if (!m->vocab_only)
        model_pack(m);
    *out = m;
    return STRIX_OK;
fail:
    err_prefix(err, "%s", path);
    strix_model_free(m);
    return rc;
}

void strix_model_free(strix_model *m)
{
    if (!m)
        return;
    model_unpack(m);
    for (int i = 0; m->all && i < m->n_all; i++)
        if (m->all[i])
            util_free(m->all[i]->data_mem);
    if (!m->vocab_borrowed)
        vocab_free(m->vocab);
    gguf_free(m->gguf);
    util_unmap(&m->map);
    util_free(m->owned);
    util_free(m->layers);
    util_free(m->all);
    util_free(m->slots);
    util_free(m->slot_first);
    util_free(m->name);
    util_free(m);
}

int strix_model_get_info(const strix_model *m, struct strix_model_info *caller_info)
{
    if (util_result_check(caller_info, UTIL_END_OF(struct strix_model_info, weight_bytes),
                          sizeof(struct strix_model_info), "model info", NULL))
        return STRIX_ERR_ARG;
    struct strix_model_info full = {.struct_size = sizeof full}, *info = &full;
    util_result_write(caller_info, &full, sizeof full);
    if (!m)
        return STRIX_ERR_ARG; /* all zero: no model */
    info->arch = m->arch;
    info->name = m->name ? m->name : "";
    info->n_vocab = m->vocab ? vocab_n(m->vocab) : m->hp.n_vocab;
    info->n_embd = m->hp.n_embd;
    info->n_ff = m->hp.n_ff;
    info->n_layer = m->hp.n_layer;
    info->n_head = m->hp.n_head;
    info->n_head_kv = m->hp.n_head_kv;
    info->head_dim = m->hp.head_dim;
    info->n_rot = m->hp.n_rot;
    info->n_ctx_train = m->hp.n_ctx_train;
    info->rope_neox = m->hp.rope_neox;
    info->rope_freq_base = m->hp.rope_freq_base;
    info->norm_eps = m->hp.norm_eps;
    info->tied_output = m->tied_output;
    info->vocab_only = m->vocab_only;
    if (!m->vocab_only) {
        const struct hparams *hp = &m->hp;
        const size_t layers = (size_t)hp->n_layer * sizeof(float);
        const size_t kv = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
        info->cache_token_bytes = hp->ssm ? 0 : layers * (hp->mla ? kv : 2 * kv);
        if (hp->yoco) /* one shared layer of keys and values */
            info->cache_token_bytes = sizeof(float) * 2 * kv;
        info->cache_token_bytes_mha =
            layers * (size_t)hp->n_head *
            (hp->mla ? (size_t)(hp->head_k_mla + hp->head_v_mla) : 2 * (size_t)hp->head_dim);
        if (hp->ssm) {
            if (!hp->yoco)
                info->cache_token_bytes_mha = 0;
            info->state_seq_bytes = (hp->yoco ? (size_t)hp->yoco_n_self * sizeof(float) : layers) *
                                    (size_t)hp->ssm_d_inner *
                                    (size_t)(hp->ssm_d_conv - 1 + hp->ssm_d_state);
        }
    }
    for (int i = 0; i < m->n_all; i++) {
        info->n_params += m->all[i]->ne[0] * m->all[i]->ne[1] * m->all[i]->ne[2];
        info->weight_bytes += m->all[i]->nbytes;
        if (model_weight_in_stage(m, i))
            info->stage_weight_bytes += m->all[i]->nbytes;
    }
    info->layer_first = m->layer_first;
    info->layer_end = m->layer_end;
    util_result_write(caller_info, &full, sizeof full);
    return STRIX_OK;
}

int strix_model_n_tensors(const strix_model *m)
{
    return !m || m->vocab_only ? 0 : m->n_all;
}

int strix_model_tensor_info(const strix_model *m, int i, struct strix_tensor_info *info)
{
    if (i < 0 || i >= strix_model_n_tensors(m) ||
        util_result_check(info, UTIL_END_OF(struct strix_tensor_info, nbytes),
                          sizeof(struct strix_tensor_info), "tensor info", NULL))
        return STRIX_ERR_ARG;
    const struct tensor *t = m->all[i];
    struct strix_tensor_info full = {.struct_size = sizeof full, .name = t->name,
                                     .type = dtype_name(t->type), .n_dims = t->n_dims,
                                     .nbytes = t->nbytes};
    memcpy(full.ne, t->ne, sizeof full.ne);
    util_result_write(info, &full, sizeof full);
    return STRIX_OK;
}

/* general.file_type as llama.cpp numbers it, from the type of the 2-D weights. */
static uint32_t file_type(uint32_t t)
{
    switch (t) {
    case DTYPE_F16: return 1;
    case DTYPE_Q4_0: return 2;
    case DTYPE_Q8_0: return 7;
    case DTYPE_BF16: return 32;
    default: return 0;
    }
}

/* Parses a weight type name for saving; returns -1 if strix cannot write it. */
static int parse_weight_type(const char *name)
{
    static const uint32_t types[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(name, dtype_name(types[i])) == 0)
            return (int)types[i];
    return -1;
}

static void encode_row(uint32_t type, const float *src, void *dst, int64_t n)
{
    uint8_t *d = dst;
    switch (type) {
    case DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = util_fp32_to_fp16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = util_fp32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    default: dtype_get(type)->quantize(src, dst, n); break;
    }
}

/* The weight t re-encoded as `type` into a new buffer (*out, caller frees).
 * Rows whose length is not a multiple of the type's block stay as they are. */
static int convert_tensor(const struct tensor *t, uint32_t type, void **out, uint32_t *out_type,
                          size_t *out_bytes, strix_error *err)
{
    *out = NULL;
    *out_type = t->type;
    *out_bytes = t->nbytes;
    const size_t rb = dtype_row_size(type, t->ne[0]);
    if (t->n_dims != 2 || t->type == type || rb == 0)
        return STRIX_OK;
    float *row = util_malloc((size_t)t->ne[0] * sizeof(float));
    uint8_t *buf = util_malloc(rb * (size_t)t->ne[1]);
    if (!row || !buf) {
        util_free(row);
        util_free(buf);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory converting '%s'", t->name);
    }
    const dtype_dequant_fn deq = dtype_get(t->type)->dequantize;
    for (int64_t r = 0; r < t->ne[1]; r++) {
        deq((const uint8_t *)t->data + (size_t)r * t->row_bytes, row, t->ne[0]);
        encode_row(type, row, buf + (size_t)r * rb, t->ne[0]);
    }
    util_free(row);
    *out = buf;
    *out_type = type;
    *out_bytes = rb * (size_t)t->ne[1];
    return STRIX_OK;
}

/* The save_gguf converter: every 2-D weight to one type (user: the type id,
 * or NULL to keep each weight as it is). */
static int convert_to(void *user, const struct tensor *t, void **out, uint32_t *out_type,
                      size_t *out_bytes, strix_error *err)
{
    *out = NULL;
    *out_type = t->type;
    *out_bytes = t->nbytes;
    return user ? convert_tensor(t, *(const uint32_t *)user, out, out_type, out_bytes, err)
                : STRIX_OK;
}

int strix_model_save_gguf(const strix_model *m, const char *path, const char *weight_type,
                          strix_error *err)
{
    err_clear(err);
    if (!m || !path)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    int target = -1;
    if (weight_type && (target = parse_weight_type(weight_type)) < 0)
        return err_set(err, STRIX_ERR_ARG,
                       "cannot write weights as '%s' (F32, F16, BF16, Q8_0, Q4_0)", weight_type);
    uint32_t type = target >= 0 ? (uint32_t)target : 0;
    uint32_t main_type = type;
    if (target < 0 && !m->vocab_only)
        for (int i = 0; i < m->n_all; i++)
            if (m->all[i]->n_dims >= 2)
                main_type = m->all[i]->type; /* the last matrix's type */
    uint32_t ftype = file_type(main_type);
    /* weights kept as they are: the source's file type (mixes included) stays */
    if (target < 0 && m->gguf)
        gguf_get_u32(m->gguf, "general.file_type", 0, &ftype, NULL);
    return model_save_gguf(m, path, ftype, convert_to, target >= 0 ? &type : NULL, err);
}

int model_save_gguf(const strix_model *m, const char *path, uint32_t ftype,
                    model_convert_fn convert, void *user, strix_error *err)
{
    err_clear(err);
    if (!m || !path)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    if (m->vocab_only || !m->vocab)
        return err_set(err, STRIX_ERR_ARG, "only a full model with a vocabulary can be saved");
    if (m->map.from_file && atomic_file_is(path, m->map.dev, m->map.ino))
        return err_set(err, STRIX_ERR_ARG, "refusing to write '%s': it is the model's own file %s",
                       path, m->map.path);
    gguf_writer *w = gguf_writer_create();
    void **bufs = util_calloc((size_t)m->n_all, sizeof *bufs);
    if (!w || !bufs) {
        gguf_writer_free(w);
        util_free(bufs);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    int rc = 0, quantized = 0;
    /* every key of the source file first, as it was, except those this
     * conversion rewrites; the keys derived below fill in what is missing */
    const char *const rewritten[] = {"general.file_type", "general.quantization_version",
                                     "general.alignment"};
    for (uint64_t i = 0; m->gguf && rc == STRIX_OK && i < gguf_n_kv(m->gguf); i++) {
        const struct gguf_kv *kv = gguf_kv_at(m->gguf, i);
        int skip = 0;
        for (size_t k = 0; k < sizeof rewritten / sizeof rewritten[0]; k++)
            skip |= kv->key.len == strlen(rewritten[k]) &&
                    memcmp(kv->key.ptr, rewritten[k], (size_t)kv->key.len) == 0;
        if (!skip && (rc = gguf_writer_copy_kv(w, kv)))
            err_set(err, rc, "cannot copy the key '%.*s' (%s)", (int)kv->key.len, kv->key.ptr,
                    strix_status_name(rc));
    }
    if (rc)
        goto done;
    gguf_writer_keep_first(w);
    const char *key;
    if ((rc = gguf_writer_add_str(w, key = "general.architecture", m->arch)) ||
        (rc = gguf_writer_add_str(w, key = "general.name", m->name ? m->name : "strix")) ||
        (rc = gguf_writer_add_u32(w, key = "general.file_type", ftype))) {
        rc = err_set(err, rc, "cannot add GGUF key %s (%s)", key, strix_status_name(rc));
        goto done;
    }
    if ((rc = arch_save_hparams(m, w, err)) || (rc = vocab_write_gguf(m->vocab, w, err)))
        goto done;
    for (int i = 0; i < m->n_all; i++) {
        const struct tensor *t = m->all[i];
        uint32_t type;
        size_t nbytes;
        if ((rc = convert(user, t, &bufs[i], &type, &nbytes, err)))
            goto done;
        quantized |= dtype_get(type)->block_size > 1;
        rc = gguf_writer_add_tensor(w, t->name, type, (uint32_t)t->n_dims, t->ne,
                                    bufs[i] ? bufs[i] : t->data, nbytes);
        if (rc) {
            err_set(err, rc, "cannot add tensor '%s'", t->name);
            goto done;
        }
    }
    if (quantized && (rc = gguf_writer_add_u32(w, "general.quantization_version", 2))) {
        err_set(err, rc, "cannot add general.quantization_version"); /* llama.cpp's value */
        goto done;
    }
    rc = gguf_writer_write(w, path, err);
done:
    for (int i = 0; i < m->n_all; i++)
        util_free(bufs[i]);
    util_free(bufs);
    gguf_writer_free(w);
    return rc;
}
