/*
 * test_abi.c - strix.h's rules for structs that grow and for NULL handles
 * (the header's opening comment), checked byte by byte:
 *   - parameter structs: struct_size checks, an older caller's smaller
 *     struct (guard bytes after it are neither read nor written), a newer
 *     caller's zero or set extra fields, every *_default_params;
 *   - result structs: the library writes only the caller's struct_size
 *     bytes, checked with guard bytes, and fills what fits as a full
 *     struct's call does; a struct_size left unset is refused before
 *     anything runs;
 *   - NULL handles: every public function given NULL handles returns
 *     STRIX_ERR_ARG with a message, or its documented "none";
 *   - the shared library's soname.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <math.h>
#include <stddef.h>

#include "fixtures.h"
#include "harness.h"
#include "runtime/context.h"
#include "util.h"
#include "strix.h"
#include "strix_dev.h"

#define MODEL "stories260K-ref.gguf" /* F32 llama, 5 layers, 512 tokens */

static const strix_token PROMPT[] = {1, 403, 407, 261, 378, 285, 328, 270, 282, 458, 275, 363};
#define N_PROMPT ((int)(sizeof PROMPT / sizeof PROMPT[0]))

#define NO_TAIL_PADDING(T, last)                                                                   \
    _Static_assert(sizeof(T) == offsetof(T, last) + sizeof(((T *)0)->last), #T " ends in padding")
NO_TAIL_PADDING(struct strix_model_params, reserved_);
NO_TAIL_PADDING(struct strix_quantize_params, log_user);
NO_TAIL_PADDING(struct strix_context_params, reserved_state_);
NO_TAIL_PADDING(struct strix_route_params, skip_layers);
NO_TAIL_PADDING(struct strix_sampler_params, n_probs);
NO_TAIL_PADDING(struct strix_gen_params, seq);
NO_TAIL_PADDING(struct strix_beam_params, stop_at_bos);
NO_TAIL_PADDING(struct strix_ppl_params, decode_user);
NO_TAIL_PADDING(struct strix_synth_params, kan_range);
NO_TAIL_PADDING(struct strix_analyze_params, user);
NO_TAIL_PADDING(struct strix_prune_params, user);
NO_TAIL_PADDING(struct strix_tail_params, user);

static strix_context *make_ctx(const strix_model *m, int n_ctx, int n_seq)
{
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_seq_max = n_seq;
    cp.n_threads = 1;
    strix_context *c = NULL;
    strix_error err;
    CHECKF(strix_context_create(m, &cp, &c, &err) == STRIX_OK, "%s", err.msg);
    return c;
}

/* A caller's struct of `size` bytes (struct_size = size) in buf, followed
 * by guard bytes up to cap. */
#define GUARD 0xab
static void *sized(void *buf, size_t cap, size_t size)
{
    memset(buf, GUARD, cap);
    memcpy(buf, &size, sizeof size);
    return buf;
}
/* 1 if bytes [from, cap) of buf still hold the guard. */
static int guard_kept(const void *buf, size_t from, size_t cap)
{
    for (size_t i = from; i < cap; i++)
        if (((const unsigned char *)buf)[i] != GUARD)
            return 0;
    return 1;
}

/* The struct_size a caller's struct now holds (the library never writes it). */
static size_t size_of(const void *buf)
{
    size_t n;
    memcpy(&n, buf, sizeof n);
    return n;
}

/* ---- parameter structs ---- */

static void test_params(const strix_model *m)
{
    strix_error err;
    struct strix_context_params cp = strix_context_default_params();
    CHECK(cp.struct_size == sizeof cp && cp.n_seq_max == 1 && cp.pool == NULL);
    CHECK(strix_model_default_params().struct_size == sizeof(struct strix_model_params));
    CHECK(strix_gen_default_params().n_predict == -1);
    CHECK(strix_beam_default_params().n_beams == 4);
    CHECK(strix_synth_default_params().n_embd == 256);
    CHECK(strix_quantize_default_params().struct_size == sizeof(struct strix_quantize_params));
    CHECK(strix_ppl_default_params().struct_size == sizeof(struct strix_ppl_params));
    CHECK(strix_tail_default_params().struct_size == sizeof(struct strix_tail_params) &&
          !strix_tail_default_params().decode);
    /* the sampler's are llama.cpp's (common/common.h, struct common_params_sampling) */
    const struct strix_sampler_params sd = strix_sampler_default_params();
    CHECK(sd.struct_size == sizeof sd && sd.temperature == 0.8f && sd.top_k == 40 &&
          sd.top_p == 0.95f && sd.min_p == 0.05f && sd.repeat_penalty == 1.0f &&
          sd.repeat_last_n == 64 && sd.typical_p == 1.0f && sd.mirostat == 0 &&
          sd.mirostat_tau == 5.0f && sd.mirostat_eta == 0.1f && sd.order == NULL &&
          sd.n_probs == 0);

    /* zero struct_size: the caller did not start from the defaults */
    struct strix_context_params zero;
    memset(&zero, 0, sizeof zero);
    strix_context *c = NULL;
    CHECK(strix_context_create(m, &zero, &c, &err) == STRIX_ERR_ARG && !c);
    CHECK(strstr(err.msg, "strix_context_default_params") != NULL);
    struct strix_model_params mp = strix_model_default_params();
    mp.struct_size = 0;
    strix_model *m2 = NULL;
    CHECK(strix_model_load(test_path(MODEL), &mp, &m2, &err) == STRIX_ERR_ARG && !m2);
    struct strix_gen_params gp = strix_gen_default_params();
    gp.struct_size = 3;
    CHECK(strix_generate(m, NULL, NULL, 0, &gp, NULL, NULL, NULL, &err) == STRIX_ERR_ARG);
    struct strix_ppl_params pp = strix_ppl_default_params();
    struct strix_ppl_result pr = {.struct_size = sizeof pr};
    pp.struct_size = 0;
    strix_context *pc = make_ctx(m, 32, 1);
    CHECK(strix_perplexity(m, pc, PROMPT, N_PROMPT, &pp, &pr, &err) == STRIX_ERR_ARG);
    struct strix_beam_params bp = strix_beam_default_params();
    struct strix_beam_result br = {.struct_size = sizeof br};
    bp.struct_size = 0;
    CHECK(strix_beam_search(m, pc, PROMPT, 3, &bp, &br, &err) == STRIX_ERR_ARG);
    struct strix_quantize_params qp = strix_quantize_default_params();
    qp.struct_size = 0;
    CHECK(strix_model_quantize(m, "/nonexistent/x.gguf", "Q8_0", &qp, &err) == STRIX_ERR_ARG);
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.struct_size = 0;
    strix_sampler *smp = NULL;
    CHECK(strix_sampler_create(&sp, 512, &smp, &err) == STRIX_ERR_ARG && !smp);
    CHECK(strstr(err.msg, "strix_sampler_default_params") != NULL);
    strix_context_free(pc);

    /* an older caller: its struct ends before pool and on_layer; whatever
     * lies beyond must not be read */
    unsigned char old[sizeof(struct strix_context_params) + 32];
    const size_t old_size = offsetof(struct strix_context_params, n_cells);
    memset(old, GUARD, sizeof old);
    CHECK(strix_context_params_init((struct strix_context_params *)(void *)old, old_size) ==
          STRIX_OK);
    CHECK(size_of(old) == old_size && guard_kept(old, old_size, sizeof old));
    int n_ctx = 24;
    memcpy(old + offsetof(struct strix_context_params, n_ctx), &n_ctx, sizeof n_ctx);
    CHECKF(strix_context_create(m, (const struct strix_context_params *)(const void *)old, &c,
                                &err) == STRIX_OK,
           "%s", err.msg);
    if (c) {
        CHECK(strix_context_n_ctx(c) == 24 && c->on_layer == NULL && c->own_pool != NULL);
        CHECK(strix_decode(c, PROMPT, NULL, 4, NULL, &err) == STRIX_OK);
        strix_context_free(c);
        c = NULL;
    }
    /* an older sampler caller: no n_probs (guard bytes there would ask for
     * 0xabababab log-probabilities) */
    _Alignas(16) unsigned char olds[sizeof(struct strix_sampler_params) + 32];
    const size_t olds_size = offsetof(struct strix_sampler_params, n_probs);
    memset(olds, GUARD, sizeof olds);
    CHECK(strix_sampler_params_init((struct strix_sampler_params *)(void *)olds, olds_size) ==
          STRIX_OK);
    CHECK(size_of(olds) == olds_size && guard_kept(olds, olds_size, sizeof olds));
    CHECKF(strix_sampler_create((const struct strix_sampler_params *)(const void *)olds, 512, &smp,
                                &err) == STRIX_OK,
           "%s", err.msg);
    CHECK(smp && strix_sampler_last_probs(smp, NULL, NULL, 8) == 0);
    strix_sampler_free(smp);
    smp = NULL;
    /* a newer caller: extra zero bytes are fine, extra set fields are not */
    unsigned char newer[sizeof(struct strix_context_params) + 16];
    memset(newer, 0, sizeof newer);
    CHECK(strix_context_params_init((struct strix_context_params *)(void *)newer, sizeof newer) ==
          STRIX_OK);
    CHECK(strix_context_create(m, (const struct strix_context_params *)(const void *)newer, &c,
                               &err) == STRIX_OK);
    strix_context_free(c);
    c = NULL;
    newer[sizeof newer - 1] = 1;
    CHECK(strix_context_create(m, (const struct strix_context_params *)(const void *)newer, &c,
                               &err) == STRIX_ERR_UNSUPPORTED &&
          !c);
    _Alignas(16) unsigned char news[sizeof(struct strix_sampler_params) + 8];
    memset(news, 0, sizeof news);
    CHECK(strix_sampler_params_init((struct strix_sampler_params *)(void *)news, sizeof news) ==
          STRIX_OK);
    news[sizeof news - 2] = 7;
    CHECK(strix_sampler_create((const struct strix_sampler_params *)(const void *)news, 512, &smp,
                               &err) == STRIX_ERR_UNSUPPORTED &&
          !smp);
    CHECK(strix_context_params_init(NULL, sizeof cp) == STRIX_ERR_ARG);
    CHECK(strix_context_params_init(&cp, 4) == STRIX_ERR_ARG);
    CHECK(strix_sampler_params_init(&sp, 4) == STRIX_ERR_ARG);
}

/* ---- result structs ---- */

/* The mechanism itself, with a library struct that has grown: a caller
 * built against version 1 (two fields) gets those two, a caller built
 * against a version 3 keeps its third field, a struct_size below version
 * 1 is refused. */
struct res_v2 {
    size_t struct_size;
    int a, b;
    double c; /* added in "version 2" */
};

static void test_result_mechanism(void)
{
    const struct res_v2 lib = {sizeof lib, 11, 22, 3.5};
    const size_t v1 = UTIL_END_OF(struct res_v2, b);
    _Alignas(16) unsigned char buf[64];
    sized(buf, sizeof buf, v1);
    CHECK(util_result_check(buf, v1, sizeof lib, "v", NULL) == STRIX_OK);
    util_result_write(buf, &lib, sizeof lib);
    const struct res_v2 *got = (const struct res_v2 *)(const void *)buf;
    CHECK(got->struct_size == v1 && got->a == 11 && got->b == 22);
    CHECKF(guard_kept(buf, v1, sizeof buf), "written past an older caller's struct");
    /* a newer caller: 8 more bytes that the library leaves alone */
    sized(buf, sizeof buf, sizeof lib + 8);
    CHECK(util_result_check(buf, v1, sizeof lib, "v", NULL) == STRIX_OK);
    util_result_write(buf, &lib, sizeof lib);
    CHECK(got->struct_size == sizeof lib + 8 && got->c == 3.5);
    CHECK(guard_kept(buf, sizeof lib, sizeof buf));
    strix_error err;
    sized(buf, sizeof buf, v1 - 4);
    CHECK(util_result_check(buf, v1, sizeof lib, "v", &err) == STRIX_ERR_ARG);
    CHECK(strstr(err.msg, "struct_size") != NULL);
    sized(buf, sizeof buf, sizeof lib + 5000);
    CHECK(util_result_check(buf, v1, sizeof lib, "v", NULL) == STRIX_ERR_ARG);
}

/* For each result struct of strix.h: a struct_size that was not set is
 * refused and nothing is written; a newer caller's larger struct gets the
 * same fields as an exact one, and its extra bytes and everything after are
 * left alone. */
static void test_results(const strix_model *m)
{
    strix_error err;
    _Alignas(16) unsigned char buf[1024];
    const size_t extra = 24;

    /* model info */
    struct strix_model_info mi = {.struct_size = sizeof mi};
    CHECK(strix_model_get_info(m, &mi) == STRIX_OK && mi.n_layer == 5 && mi.n_vocab == 512);
    sized(buf, sizeof buf, 0);
    CHECK(strix_model_get_info(m, (struct strix_model_info *)(void *)buf) == STRIX_ERR_ARG);
    CHECK(size_of(buf) == 0 && guard_kept(buf, sizeof(size_t), sizeof buf));
    sized(buf, sizeof buf, sizeof mi + extra);
    const struct strix_model_info *gi = (const void *)buf;
    CHECK(strix_model_get_info(m, (struct strix_model_info *)(void *)buf) == STRIX_OK);
    CHECK(gi->n_layer == mi.n_layer && gi->n_params == mi.n_params &&
          gi->weight_bytes == mi.weight_bytes && strcmp(gi->arch, "llama") == 0);
    CHECK(size_of(buf) == sizeof mi + extra && guard_kept(buf, sizeof mi, sizeof buf));

    /* tensor info */
    struct strix_tensor_info ti = {.struct_size = sizeof ti};
    CHECK(strix_model_tensor_info(m, 1, &ti) == STRIX_OK && ti.nbytes > 0);
    sized(buf, sizeof buf, 4);
    CHECK(strix_model_tensor_info(m, 1, (struct strix_tensor_info *)(void *)buf) == STRIX_ERR_ARG);
    CHECK(guard_kept(buf, sizeof(size_t), sizeof buf));
    sized(buf, sizeof buf, sizeof ti + extra);
    const struct strix_tensor_info *gt = (const void *)buf;
    CHECK(strix_model_tensor_info(m, 1, (struct strix_tensor_info *)(void *)buf) == STRIX_OK);
    CHECK(gt->name == ti.name && gt->nbytes == ti.nbytes && gt->ne[0] == ti.ne[0]);
    CHECK(guard_kept(buf, sizeof ti, sizeof buf));

    /* generation: greedy, 6 tokens */
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0;
    strix_sampler *smp = NULL;
    strix_context *c = make_ctx(m, 64, 4);
    CHECK(strix_sampler_create(&sp, 512, &smp, &err) == STRIX_OK);
    struct strix_gen_params gp = strix_gen_default_params();
    gp.n_predict = 6;
    struct strix_gen_result gr = {.struct_size = sizeof gr};
    CHECK(c && strix_decode(c, PROMPT, NULL, 4, NULL, &err) == STRIX_OK);
    sized(buf, sizeof buf, 0);
    CHECK(strix_generate(m, c, smp, PROMPT[3], &gp, NULL, NULL,
                         (struct strix_gen_result *)(void *)buf, &err) == STRIX_ERR_ARG);
    CHECK(strix_kv_len(c) == 4 && guard_kept(buf, sizeof(size_t), sizeof buf));
    CHECK(strix_generate(m, c, smp, PROMPT[3], &gp, NULL, NULL, &gr, &err) == STRIX_OK);
    CHECK(gr.n_tokens == 6 && gr.stop_reason == STRIX_STOP_BUDGET);
    strix_kv_truncate(c, 4, NULL);
    strix_sampler_reset(smp, 0);
    sized(buf, sizeof buf, sizeof gr + extra);
    const struct strix_gen_result *gg = (const void *)buf;
    CHECK(strix_generate(m, c, smp, PROMPT[3], &gp, NULL, NULL,
                         (struct strix_gen_result *)(void *)buf, &err) == STRIX_OK);
    CHECK(gg->n_tokens == 6 && gg->stop_reason == STRIX_STOP_BUDGET);
    CHECK(guard_kept(buf, sizeof gr, sizeof buf));

    /* beam search: W = 2 */
    struct strix_beam_params bp = strix_beam_default_params();
    bp.n_beams = 2;
    bp.n_predict = 4;
    struct strix_beam_result br = {.struct_size = sizeof br};
    sized(buf, sizeof buf, UTIL_END_OF(struct strix_beam_result, hyps));
    CHECK(strix_beam_search(m, c, PROMPT, 4, &bp, (struct strix_beam_result *)(void *)buf,
                            &err) == STRIX_ERR_ARG);
    CHECK(guard_kept(buf, sizeof(size_t), sizeof buf));
    CHECKF(strix_beam_search(m, c, PROMPT, 4, &bp, &br, &err) == STRIX_OK, "%s", err.msg);
    sized(buf, sizeof buf, sizeof br + extra);
    struct strix_beam_result *gb = (void *)buf;
    CHECK(strix_beam_search(m, c, PROMPT, 4, &bp, gb, &err) == STRIX_OK);
    CHECK(gb->n == br.n && br.n == 1 && gb->hyps[0].n_tokens == br.hyps[0].n_tokens &&
          memcmp(gb->hyps[0].tokens, br.hyps[0].tokens,
                 (size_t)br.hyps[0].n_tokens * sizeof(strix_token)) == 0);
    CHECK(guard_kept(buf, sizeof br, sizeof buf));
    strix_beam_result_free(gb);
    strix_beam_result_free(&br);

    /* perplexity over the 12 prompt tokens, windows of 8 */
    struct strix_ppl_params pp = strix_ppl_default_params();
    pp.n_ctx = 8;
    struct strix_ppl_result pr = {.struct_size = sizeof pr};
    sized(buf, sizeof buf, 0);
    CHECK(strix_perplexity(m, c, PROMPT, N_PROMPT, &pp, (struct strix_ppl_result *)(void *)buf,
                           &err) == STRIX_ERR_ARG);
    CHECK(guard_kept(buf, sizeof(size_t), sizeof buf));
    CHECKF(strix_perplexity(m, c, PROMPT, N_PROMPT, &pp, &pr, &err) == STRIX_OK, "%s", err.msg);
    CHECKF(pr.n_scored > 0 && pr.n_windows == 1 && pr.ppl > 1.0, "%d scored", (int)pr.n_scored);
    sized(buf, sizeof buf, sizeof pr + extra);
    const struct strix_ppl_result *gp2 = (const void *)buf;
    CHECK(strix_perplexity(m, c, PROMPT, N_PROMPT, &pp, (struct strix_ppl_result *)(void *)buf,
                           &err) == STRIX_OK);
    CHECK(gp2->n_scored == pr.n_scored && gp2->ppl == pr.ppl && gp2->has_kl == 0);
    CHECK(guard_kept(buf, sizeof pr, sizeof buf));
    strix_sampler_free(smp);
    strix_context_free(c);
}

/* ---- NULL handles ---- */

/* Every public function of strix.h (and strix_dev.h) with NULL for its
 * handle, and for required pointers where it has a handle. */
static void test_null_handles(const strix_model *m)
{
    strix_error err;
    char buf[16] = "x";
    strix_token tok = 5;
    size_t n_safe = 0;
    int n_out = 7;
#define ARG_MSG(call)                                                                              \
    do {                                                                                           \
        memset(&err, 0, sizeof err);                                                               \
        CHECK((call) == STRIX_ERR_ARG && err.code == STRIX_ERR_ARG && err.msg[0] != '\0');         \
    } while (0)
    /* params */
    CHECK(strix_model_params_init(NULL, 64) == STRIX_ERR_ARG);
    CHECK(strix_quantize_params_init(NULL, 64) == STRIX_ERR_ARG);
    CHECK(strix_context_params_init(NULL, 64) == STRIX_ERR_ARG);
    CHECK(strix_sampler_params_init(NULL, 64) == STRIX_ERR_ARG);
    CHECK(strix_gen_params_init(NULL, 64) == STRIX_ERR_ARG);
    CHECK(strix_beam_params_init(NULL, 64) == STRIX_ERR_ARG);
    CHECK(strix_ppl_params_init(NULL, 64) == STRIX_ERR_ARG);
    CHECK(strix_synth_params_init(NULL, 64) == STRIX_ERR_ARG);
    /* model */
    strix_model *mo = (strix_model *)1;
    ARG_MSG(strix_model_load(NULL, NULL, &mo, &err));
    CHECK(mo == NULL);
    ARG_MSG(strix_model_load(test_path(MODEL), NULL, NULL, &err));
    strix_model_free(NULL);
    ARG_MSG(strix_model_save_gguf(NULL, "/nonexistent/x.gguf", NULL, &err));
    ARG_MSG(strix_model_quantize(NULL, "/nonexistent/x.gguf", "Q8_0", NULL, &err));
    ARG_MSG(strix_model_synth(NULL, test_path(MODEL), &mo, &err));
    struct strix_model_info mi = {.struct_size = sizeof mi};
    CHECK(strix_model_get_info(NULL, &mi) == STRIX_ERR_ARG && mi.arch == NULL);
    CHECK(strix_model_get_info(m, NULL) == STRIX_ERR_ARG);
    CHECK(strix_model_n_tensors(NULL) == 0);
    struct strix_tensor_info ti = {.struct_size = sizeof ti};
    CHECK(strix_model_tensor_info(NULL, 0, &ti) == STRIX_ERR_ARG);
    CHECK(strix_model_tensor_info(m, 0, NULL) == STRIX_ERR_ARG);
    CHECK(strix_model_meta_str(NULL, "general.name", buf, sizeof buf) == -1 && buf[0] == '\0');
    CHECK(strix_archs() != NULL && strix_tokenizers_supported() != NULL);
    CHECK(strcmp(strix_status_name(99), "unknown error") == 0);
    /* vocabulary */
    CHECK(strix_vocab_size(NULL) == 0 && strix_token_bos(NULL) == -1 &&
          strix_token_eos(NULL) == -1 && strix_token_piece(NULL, 0) == NULL &&
          strix_token_type(NULL, 0) == 0 && strix_vocab_model(NULL) == NULL &&
          strix_vocab_pre(NULL) == NULL && strix_vocab_add_bos(NULL) == 0);
    ARG_MSG(strix_tokenize(NULL, "a", 1, 1, &tok, 1, &n_out, &err));
    CHECK(n_out == 0);
    ARG_MSG(strix_tokenize_ex(NULL, "a", 1, 0, &tok, 1, NULL, &err));
    CHECK(strix_token_to_text(NULL, -1, 0, buf, sizeof buf) == -1);
    buf[0] = 'x';
    CHECK(strix_detokenize(NULL, &tok, 1, buf, sizeof buf) == -1 && buf[0] == '\0');
    /* pool and context */
    ARG_MSG(strix_pool_create(1, NULL, &err));
    strix_pool_free(NULL);
    CHECK(strix_pool_n_threads(NULL) == 0);
    strix_context *c = (strix_context *)1;
    ARG_MSG(strix_context_create(NULL, NULL, &c, &err));
    CHECK(c == NULL);
    ARG_MSG(strix_context_create(m, NULL, NULL, &err));
    strix_context_free(NULL);
    CHECK(strix_context_n_ctx(NULL) == 0 && strix_context_n_seq_max(NULL) == 0);
    uint64_t counts[4];
    CHECK(strix_expert_load(NULL, 0, counts, 4) == -1);
    strix_expert_load_reset(NULL);
    ARG_MSG(strix_decode(NULL, &tok, NULL, 1, NULL, &err));
    const strix_batch b = {1, &tok, NULL, NULL, NULL};
    ARG_MSG(strix_decode_batch(NULL, &b, &err));
    CHECK(strix_get_logits(NULL, -1) == NULL && strix_kv_len(NULL) == 0);
    ARG_MSG(strix_kv_truncate(NULL, 0, &err));
    ARG_MSG(strix_kv_seq_truncate(NULL, 0, 0, &err));
    CHECK(strix_kv_cells(NULL) == 0 && strix_kv_cells_used(NULL) == 0);
    CHECK(strix_kv_seq_rm(NULL, 0, 0, -1) == STRIX_ERR_ARG);
    CHECK(strix_kv_seq_cp(NULL, 0, 1, 0, -1) == STRIX_ERR_ARG);
    CHECK(strix_kv_seq_keep(NULL, 0) == STRIX_ERR_ARG);
    CHECK(strix_kv_seq_pos_max(NULL, 0) == -1);
    c = make_ctx(m, 16, 1);
    ARG_MSG(strix_decode_batch(c, NULL, &err));
    ARG_MSG(strix_decode(c, NULL, NULL, 1, NULL, &err));
    /* sampler */
    float logits[512] = {0}, probs[512];
    strix_sampler *s = (strix_sampler *)1;
    ARG_MSG(strix_sampler_create(NULL, 512, &s, &err));
    CHECK(s == NULL);
    const struct strix_sampler_params sp = strix_sampler_default_params();
    ARG_MSG(strix_sampler_create(&sp, 512, NULL, &err));
    strix_sampler_free(NULL);
    CHECK(strix_sampler_sample(NULL, logits) == -1);
    ARG_MSG(strix_sampler_dist(NULL, logits, 512, probs, &err));
    ARG_MSG(strix_sampler_sample_dist(NULL, probs, 512, &tok, &err));
    CHECK(tok == -1);
    strix_sampler_accept(NULL, 3);
    ARG_MSG(strix_sampler_rewind(NULL, 0, &err));
    CHECK(isnan(strix_sampler_uniform(NULL)));
    strix_sampler_reset(NULL, 1);
    struct strix_token_prob chosen = {5, 0.0f}, top[2];
    CHECK(strix_sampler_last_probs(NULL, &chosen, top, 2) == 0 && chosen.id == -1);
    CHECK(strix_sampler_create(&sp, 512, &s, &err) == STRIX_OK);
    CHECK(strix_sampler_sample(s, NULL) == -1);
    ARG_MSG(strix_sampler_dist(s, NULL, 512, probs, &err));
    ARG_MSG(strix_sampler_sample_dist(s, NULL, 512, &tok, &err));
    /* generation, beams, perplexity, chat */
    CHECK(strix_stop_find("ab", 2, NULL, 0, &n_safe) == -1 && n_safe == 2);
    const struct strix_gen_params gp = strix_gen_default_params();
    ARG_MSG(strix_generate(NULL, c, s, 0, &gp, NULL, NULL, NULL, &err));
    ARG_MSG(strix_generate(m, NULL, s, 0, &gp, NULL, NULL, NULL, &err));
    ARG_MSG(strix_generate(m, c, NULL, 0, &gp, NULL, NULL, NULL, &err));
    const struct strix_beam_params bp = strix_beam_default_params();
    struct strix_beam_result br = {.struct_size = sizeof br};
    ARG_MSG(strix_beam_search(NULL, c, PROMPT, 2, &bp, &br, &err));
    ARG_MSG(strix_beam_search(m, NULL, PROMPT, 2, &bp, &br, &err));
    ARG_MSG(strix_beam_search(m, c, PROMPT, 2, &bp, NULL, &err));
    strix_beam_result_free(NULL);
    const struct strix_ppl_params pp = strix_ppl_default_params();
    struct strix_ppl_result pr = {.struct_size = sizeof pr};
    ARG_MSG(strix_perplexity(NULL, c, PROMPT, N_PROMPT, &pp, &pr, &err));
    ARG_MSG(strix_perplexity(m, NULL, PROMPT, N_PROMPT, &pp, &pr, &err));
    ARG_MSG(strix_perplexity(m, c, PROMPT, N_PROMPT, &pp, NULL, &err));
    CHECK(strix_chat_template_name(-1) == NULL && strix_chat_template_detect(NULL) == NULL &&
          strix_chat_template_end(NULL) == NULL);
    ARG_MSG(strix_chat_apply(NULL, NULL, 0, 1, buf, sizeof buf, NULL, &err));
#undef ARG_MSG
    strix_sampler_free(s);
    strix_context_free(c);
}

/* ---- the soname ---- */

/* The soname recorded in the shared library's dynamic section. */
static void test_soname(void)
{
    void *h = dlopen(STRIX_LIBDIR "/libstrix.so", RTLD_NOW | RTLD_LOCAL);
    CHECKF(h != NULL, "dlopen: %s", dlerror());
    if (!h)
        return;
    struct link_map *lm = NULL;
    const char *soname = NULL;
    if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm) {
        const char *strtab = NULL;
        ElfW(Xword) off = (ElfW(Xword)) - 1;
        for (const ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++) {
            if (d->d_tag == DT_STRTAB)
                strtab = (const char *)d->d_un.d_ptr;
            if (d->d_tag == DT_SONAME)
                off = d->d_un.d_val;
        }
        if (strtab && off != (ElfW(Xword)) - 1)
            soname = strtab + off;
    }
    CHECKF(soname && strcmp(soname, "libstrix.so.0") == 0, "soname %s", soname ? soname : "none");
    const char *(*name)(int) = (const char *(*)(int))dlsym(h, "strix_status_name");
    CHECK(name && strcmp(name(STRIX_ERR_FULL), "KV cache full") == 0);
    dlclose(h);
}

int main(void)
{
    test_result_mechanism();
    strix_model *m = load_fixture(MODEL, NULL);
    if (m) {
        test_params(m);
        test_results(m);
        test_null_handles(m);
    }
    test_soname();
    strix_model_free(m);
    TEST_MAIN_END();
}
