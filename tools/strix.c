/*
 * strix.c - the command-line tool's commands and its entry point.
 * Uses only the public header. Fatal conditions end here, through die().
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---- commands ---- */

struct run_out {
    const strix_model *m;
    const strix_sampler *smp;
    int n_probs;
};

static int run_emit(void *user, const char *text, size_t n, strix_token tok)
{
    const struct run_out *r = user;
    fwrite(text, 1, n, stdout);
    fflush(stdout);
    if (r->n_probs > 0 && tok >= 0)
        print_probs(r->m, r->smp, r->n_probs);
    return 0;
}

/* Per layer, the tokens each expert received (run --expert-stats). */
static void print_expert_stats(const strix_context *ctx, const strix_model *m)
{
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    uint64_t counts[1024];
    if (strix_expert_load(ctx, 0, counts, 1024) <= 0) {
        fprintf(stderr, "expert load: the model has no experts\n");
        return;
    }
    fprintf(stderr, "expert load (tokens per expert):\n");
    for (int l = 0; l < in.n_layer; l++) {
        const int ne = strix_expert_load(ctx, l, counts, 1024);
        fprintf(stderr, "  layer %2d:", l);
        for (int e = 0; e < ne && e < 1024; e++)
            fprintf(stderr, " %llu", (unsigned long long)counts[e]);
        fputc('\n', stderr);
    }
}

/* strix run --beams W: the best hypothesis after the prompt on stdout, and
 * with --n-best K each of the K best with its scores on stderr. */
/* The text of toks as generation shows it: each piece after the token before
 * it (prev: the last prompt token), so spacing is the same as greedy output.
 * Caller frees. */
char *tokens_text(const strix_model *m, strix_token prev, const strix_token *toks, int n)
{
    size_t cap = 64, len = 0;
    char *text = malloc(cap);
    for (int i = 0; text && i < n; i++) {
        int k;
        while (text && (k = strix_token_to_text(m, prev, toks[i], text + len,
                                                (int)(cap - len - 1))) >= (int)(cap - len - 1))
            text = realloc(text, cap *= 2);
        if (text && k > 0)
            len += (size_t)k;
        prev = toks[i];
    }
    if (!text)
        die("out of memory");
    text[len] = '\0';
    return text;
}

static int run_beams(const struct opts *o, strix_model *m, strix_context *ctx, strix_token *ids,
                     int n_prompt, const char *prompt)
{
    struct strix_beam_params bp = strix_beam_default_params();
    bp.n_beams = o->beams;
    bp.n_best = o->n_best > 0 ? o->n_best : 1;
    bp.length_penalty = o->length_penalty;
    bp.stop_at_bos = o->stop_bos;
    const int room = strix_context_n_ctx(ctx) - n_prompt;
    const int ctx_bound = o->n_predict < 0 || o->n_predict > room;
    bp.n_predict = ctx_bound ? room : o->n_predict;
    struct strix_beam_result res = {.struct_size = sizeof res};
    strix_error err;
    const double t0 = now();
    if (strix_beam_search(m, ctx, ids, n_prompt, &bp, &res, &err))
        die("beam search: %s", err.msg);
    const double dt = now() - t0;
    for (int i = 0; i < res.n; i++) {
        const struct strix_beam_hyp *h = &res.hyps[i];
        char *text = tokens_text(m, ids[n_prompt - 1], h->tokens, h->n_tokens);
        if (i == 0) {
            printf("%s%s\n", prompt, text);
            fflush(stdout);
            if (ctx_bound && !h->finished && h->n_tokens >= room)
                fprintf(stderr, "run: the context of %d tokens is full: the text is cut "
                                "(a larger -c gives it room)\n",
                        strix_context_n_ctx(ctx));
        }
        if (bp.n_best > 1)
            fprintf(stderr, "[%d] score %.4f, log-probability %.4f, %d tokens%s: %s%s\n", i + 1,
                    h->score, h->logprob, h->n_tokens, h->finished ? "" : " (cut)", prompt, text);
        free(text);
    }
    fprintf(stderr, "beam search: width %d, %d hypotheses, %.2f s\n", bp.n_beams, res.n, dt);
    strix_beam_result_free(&res);
    strix_context_free(ctx);
    free(ids);
    strix_model_free(m);
    return 0;
}

/* Speculative decoding (tools/spec.c's draft options): the whole text at
 * the end, then the draft's figures on stderr. */
static void run_speculative(const struct opts *o, strix_model *m, strix_context *ctx,
                            strix_pool *pool, strix_sampler *smp, const strix_token *ids,
                            int n_prompt)
{
    strix_error err;
    struct spec_setup ss;
    spec_setup(o, m, ctx, pool, ids, n_prompt, &ss);
    print_seed(o);
    const int room = strix_context_n_ctx(ctx) - n_prompt;
    const int cap = o->n_predict < 0 || o->n_predict > room ? room : o->n_predict;
    strix_token *out = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *out);
    if (!out)
        die("out of memory");
    struct strix_spec_stats st = {.struct_size = sizeof st};
    const double t0 = now();
    if (strix_speculative_generate(m, ctx, smp, ss.d, ids, n_prompt, &ss.pp, out, cap, &st, &err))
        die("speculative: %s", err.msg);
    const double dt = now() - t0;
    char *text = tokens_text(m, ids[n_prompt - 1], out, st.n_tokens);
    printf("%s\n", text);
    fflush(stdout);
    spec_report(&st, ss.pp.n_draft_max, dt,
                spec_step_time(ctx, st.n_tokens ? out[st.n_tokens - 1] : ids[n_prompt - 1]));
    free(text);
    free(out);
    spec_free(&ss);
}

static int cmd_run(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o,
               " m vocab p f n t c temp top-k top-p min-p rp rln seed no-stop-bos freq pres typical"
               " mirostat mirostat-lr mirostat-ent samplers logit-bias n-probs stop expert-stats"
               " parse-special beams n-best length-penalty draft draft-max draft-ngram draft-quant"
               " draft-skip draft-lossy draft-knob draft-entropy-min draft-budget draft-window"
               " draft-p-min draft-adaptive router keep skip-random skip-layers" CACHE_OPTS);
    if (o.prompt && o.file)
        die("run takes -p TEXT or -f FILE, not both");
    const int spec = spec_wanted(&o);
    spec_check_opts(&o);
    if (spec && (o.beams || o.n_stops || o.n_probs || o.sp.mirostat))
        die("speculative decoding (--draft*) does not take --beams, --stop, "
            "--n-probs or --mirostat");
    if (!o.beams) {
        if (opt_given(&o, "n-best") || opt_given(&o, "length-penalty"))
            die("--n-best and --length-penalty apply to beam search: add --beams W");
    } else {
        static const char *const not_beam[] = {"stop", "n-probs", "temp", "top-k", "top-p",
                                               "min-p", "rp", "rln", "seed", "freq", "pres",
                                               "typical", "mirostat", "mirostat-lr",
                                               "mirostat-ent", "samplers", "logit-bias"};
        for (size_t i = 0; i < sizeof not_beam / sizeof not_beam[0]; i++)
            if (opt_given(&o, not_beam[i]))
                die("--%s does not apply to beam search (--beams), which does not sample",
                    strcmp(not_beam[i], "rp") == 0     ? "repeat-penalty"
                    : strcmp(not_beam[i], "rln") == 0  ? "repeat-last-n"
                    : strcmp(not_beam[i], "freq") == 0 ? "frequency-penalty"
                    : strcmp(not_beam[i], "pres") == 0 ? "presence-penalty"
                                                       : not_beam[i]);
    }
    size_t prompt_len = 0;
    char *file_text = o.file ? read_file(o.file, &prompt_len) : NULL;
    const char *prompt = file_text ? file_text : o.prompt ? o.prompt : "";
    if (!file_text)
        prompt_len = strlen(prompt);
    else if (memchr(file_text, 0, prompt_len))
        die("%s holds a NUL byte: a prompt is text", o.file);
    strix_model *m = load_model(&o, 0);
    int n_prompt;
    /* BOS where the vocabulary asks for it, and before an empty prompt. */
    const int add_bos = strix_vocab_add_bos(m) || (!*prompt && strix_token_bos(m) >= 0);
    strix_token *ids = tokenize(m, prompt, prompt_len,
                                (add_bos ? STRIX_TOKENIZE_ADD_BOS : 0) |
                                    (o.parse_special ? STRIX_TOKENIZE_PARSE_SPECIAL : 0),
                                &n_prompt);
    if (n_prompt == 0)
        die("the model has no BOS token and the prompt is empty");

    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = o.n_ctx;
    cp.n_threads = o.n_threads;
    cp.n_seq_max = o.beams > 0 ? 2 * o.beams : 1;
    if (spec && o.draft_max > 14) /* recurrent models roll a verified draft back */
        cp.n_state_keep = o.draft_max + 2;
    strix_context *ctx;
    strix_error err;
    strix_pool *pool = NULL;
    if (spec && strix_pool_create(o.n_threads, &pool, &err))
        die("%s", err.msg);
    cp.pool = pool;
    cp.kv_grow = route_wanted(&o);
    cache_types_apply(&o, &cp);
    if (strix_context_create(m, &cp, &ctx, &err))
        die("%s", err.msg);
    strix_router *router = route_wanted(&o) ? route_apply(&o, m, ctx) : NULL;
    const int n_ctx = strix_context_n_ctx(ctx);
    if (n_prompt >= n_ctx)
        die("the prompt has %d tokens; the context holds %d", n_prompt, n_ctx);
    if (o.beams > 0) {
        run_beams(&o, m, ctx, ids, n_prompt, prompt);
        free(file_text);
        return 0;
    }
    sampling_opts(&o, strix_vocab_size(m));
    strix_sampler *smp;
    if (strix_sampler_create(&o.sp, strix_vocab_size(m), &smp, &err))
        die("%s", err.msg);
    for (int i = 0; i < n_prompt; i++)
        strix_sampler_accept(smp, ids[i]);

    fwrite(prompt, 1, prompt_len, stdout);
    fflush(stdout);
    if (spec) {
        run_speculative(&o, m, ctx, pool, smp, ids, n_prompt);
        strix_sampler_free(smp);
        strix_context_free(ctx);
        strix_pool_free(pool);
        free(ids);
        free(file_text);
        strix_model_free(m);
        return 0;
    }
    double t0 = now();
    int batch = 512;
    for (int i = 0; i < n_prompt; i += batch) {
        int n = n_prompt - i < batch ? n_prompt - i : batch;
        if (strix_decode(ctx, ids + i, NULL, n, NULL, &err))
            die("decode: %s", err.msg);
    }
    double t1 = now();
    struct strix_gen_params gp = strix_gen_default_params();
    gp.n_predict = o.n_predict;
    gp.stop_at_bos = o.stop_bos;
    gp.stop = o.stops;
    gp.n_stop = o.n_stops;
    print_seed(&o);
    struct run_out ro = {m, smp, o.n_probs};
    struct strix_gen_result res = {.struct_size = sizeof res};
    if (strix_generate(m, ctx, smp, ids[n_prompt - 1], &gp, run_emit, &ro, &res, &err))
        die("generate: %s", err.msg);
    const int n_gen = res.n_tokens;
    double t2 = now();
    fputc('\n', stdout);
    fflush(stdout);
    if (res.stop_reason == STRIX_STOP_CONTEXT)
        fprintf(stderr, "run: the context of %d tokens is full: the text is cut (a larger -c "
                        "gives it room)\n",
                n_ctx);
    fprintf(stderr, "prompt: %d tokens, %.1f tok/s; generation: %d tokens, %.1f tok/s\n", n_prompt,
            n_prompt / (t1 - t0 > 0 ? t1 - t0 : 1e-9), n_gen,
            n_gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    if (o.expert_stats)
        print_expert_stats(ctx, m);
    route_report(ctx, "run");
    strix_sampler_free(smp);
    strix_context_free(ctx);
    strix_router_free(router);
    free(ids);
    free(file_text);
    strix_model_free(m);
    return 0;
}

static int cmd_tokenize(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o, " m vocab p f ids no-bos parse-special ");
    if (!o.prompt == !o.file)
        die("tokenize needs exactly one of -p TEXT or -f FILE");
    strix_model *m = load_model(&o, 1);
    size_t len;
    char *text = o.file ? read_file(o.file, &len) : NULL;
    if (!text)
        len = strlen(o.prompt);
    int n;
    const int flags = (!o.no_bos && strix_vocab_add_bos(m) ? STRIX_TOKENIZE_ADD_BOS : 0) |
                      (o.parse_special ? STRIX_TOKENIZE_PARSE_SPECIAL : 0);
    strix_token *ids = tokenize(m, text ? text : o.prompt, len, flags, &n);
    for (int i = 0; i < n; i++) {
        if (o.ids)
            printf(i ? " %d" : "%d", ids[i]);
        else
            printf("%6d -> '%s'\n", ids[i], strix_token_piece(m, ids[i]));
    }
    if (o.ids)
        putchar('\n');
    free(ids);
    free(text);
    strix_model_free(m);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o, " m vocab c" CACHE_OPTS);
    strix_model *m = load_model(&o, 0);
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    printf("model:        %s\n", o.model);
    printf("architecture: %s%s\n", in.arch, in.vocab_only ? " (vocabulary only)" : "");
    printf("supported:    %s\n", strix_archs());
    if (in.name[0])
        printf("name:         %s\n", in.name);
    if (strix_vocab_size(m) > 0)
        printf("vocabulary:   %d tokens (bos %d, eos %d)\n", in.n_vocab, strix_token_bos(m),
               strix_token_eos(m));
    else
        printf("vocabulary:   none in the file (%d rows; pass --vocab TOKENIZER.bin)\n",
               in.n_vocab);
    if (strix_vocab_model(m)) {
        const char *pre = strix_vocab_pre(m);
        printf("tokenizer:    %s%s%s%s\n", strix_vocab_model(m), *pre ? " (pre-tokenizer " : "",
               pre, *pre ? ")" : "");
    }
    printf("tokenizers:   %s\n", strix_tokenizers_supported());
#ifdef STRIX_MPI
    printf("mpi:          %s\n", mpi_support());
#else
    printf("mpi:          not compiled in (make MPI=1 builds strix-mpi)\n");
#endif
    if (!in.vocab_only) {
        printf("n_embd %d, n_ff %d, n_layer %d, n_head %d, n_head_kv %d, head_dim %d\n", in.n_embd,
               in.n_ff, in.n_layer, in.n_head, in.n_head_kv, in.head_dim);
        printf("rope: %d dims, base %g, %s layout; rms_norm eps %g; context %d; output %s\n",
               in.n_rot, in.rope_freq_base, in.rope_neox ? "neox" : "interleaved", in.norm_eps,
               in.n_ctx_train, in.tied_output ? "tied to embeddings" : "separate");
        printf("parameters: %lld, %.2f MiB\n", (long long)in.n_params,
               (double)in.weight_bytes / 1048576.0);
        if (in.state_seq_bytes && in.cache_token_bytes) /* yoco */
            printf("cache: %zu bytes per token (one shared layer; F32; as multi-head attention: "
                   "%zu), plus a recurrent state of %zu bytes per sequence\n",
                   in.cache_token_bytes, in.cache_token_bytes_mha, in.state_seq_bytes);
        else if (in.state_seq_bytes)
            printf("cache: none per token; recurrent state %zu bytes per sequence (F32)\n",
                   in.state_seq_bytes);
        else
            printf("cache: %zu bytes per token (F32; as multi-head attention: %zu)\n",
                   in.cache_token_bytes, in.cache_token_bytes_mha);
        if (opt_given(&o, "c")) { /* what a context of -c positions allocates */
            struct strix_context_params cp = strix_context_default_params();
            cp.n_ctx = o.n_ctx;
            cp.n_threads = 1;
            cache_types_apply(&o, &cp);
            strix_context *ctx;
            strix_error err;
            size_t total = 0, tok = 0, seq = 0;
            if (strix_context_create(m, &cp, &ctx, &err))
                die("context: %s", err.msg);
            strix_context_cache_bytes(ctx, &total, &tok, &seq);
            printf("context of %d positions: cache %zu bytes (%zu per cell, %zu per sequence, "
                   "%d cells)\n",
                   strix_context_n_ctx(ctx), total, tok, seq, strix_kv_cells(ctx));
            strix_context_free(ctx);
        }
        printf("tensors:\n");
        for (int i = 0; i < strix_model_n_tensors(m); i++) {
            struct strix_tensor_info t = {.struct_size = sizeof t};
            strix_model_tensor_info(m, i, &t);
            printf("  %-28s %-5s [%lld, %lld] %zu bytes\n", t.name, t.type, (long long)t.ne[0],
                   (long long)t.ne[1], t.nbytes);
        }
    }
    strix_model_free(m);
    return 0;
}

/* convert and synth: writes m to o->out as GGUF, converted to o->type if
 * given (any type `strix quantize` writes, mixes included, --pure not
 * implied), and frees it. */
static void write_model(strix_model *m, const struct opts *o)
{
    strix_error err;
    struct strix_quantize_params qp = strix_quantize_default_params();
    qp.n_threads = o->n_threads;
    if (o->type ? strix_model_quantize(m, o->out, o->type, &qp, &err)
                : strix_model_save_gguf(m, o->out, NULL, &err))
        die("%s", err.msg);
    strix_model_free(m);
    fprintf(stderr, "wrote %s\n", o->out);
}

static int cmd_convert(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o, " m vocab o type t ");
    if (!o.out)
        die("convert needs -o OUT.gguf");
    refuse_overwrite(o.out, (const char *const[]){o.model, o.vocab}, 2);
    strix_model *m = load_model(&o, 0);
    write_model(m, &o);
    return 0;
}

static int cmd_synth(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o,
               " m o type t dim ff layers heads kv-heads c seed arch rot experts experts-used swa "
               "rope-scaling rope-scale alibi-bias ff-exp lora-q lora-kv head-k head-v dense-lead "
               "experts-shared expert-groups groups-used expert-sigmoid expert-bias expert-norm "
               "expert-scale ssm-conv ssm-state ssm-dt-rank ffn peer-keys peer-heads peer-topk "
               "peer-key-len peer-sigmoid kan-grid kan-order kan-range ");
    if (!o.out)
        die("synth needs -o OUT.gguf");
    refuse_overwrite(o.out, (const char *const[]){o.model}, 1);
    /* options that only some architectures have (the library reads them only there) */
    if (opt_given(&o, "alibi-bias") && (!o.synth.arch || strcmp(o.synth.arch, "mpt") != 0))
        die("--alibi-bias applies to --arch mpt (the other ALiBi architectures fix the bias)");
    if (opt_given(&o, "rope-scale") && !o.synth.rope_scaling)
        die("--rope-scale needs --rope-scaling linear|yarn");
    if (o.n_ctx)
        o.synth.n_ctx = o.n_ctx;
    /* weights from seed 1 unless asked: --seed N, or --seed -1 for a random one */
    o.synth.seed = opt_given(&o, "seed") ? o.sp.seed : 1;
    if (opt_given(&o, "seed") && !o.seed_given)
        fprintf(stderr, "seed %llu\n", (unsigned long long)o.synth.seed);
    strix_model *m;
    strix_error err;
    if (strix_model_synth(&o.synth, o.model, &m, &err))
        die("%s", err.msg);
    write_model(m, &o);
    return 0;
}

#if defined(STRIX_SERVE) && !defined(STRIX_MPI)
/* The server is its own program, strix-serve (tools/serve/main.c), built
 * beside strix, so that no other command loads its libraries: run it in
 * this process's place with the same arguments. (strix-mpi links the server
 * in.) */
int cmd_serve(int argc, char **argv)
{
    (void)argc;
    char path[PATH_MAX];
    const ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    if (len <= 0)
        die("serve: cannot find this program's folder: %s", strerror(errno));
    path[len] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) + sizeof "/strix-serve" > sizeof path)
        die("serve: cannot find this program's folder");
    memcpy(slash, "/strix-serve", sizeof "/strix-serve");
    fflush(NULL);
    execv(path, argv);
    die("serve: cannot run %s: %s (it is built and installed beside strix)", path,
        strerror(errno));
}
#elif !defined(STRIX_SERVE)
/* Built without libmicrohttpd and cJSON: no server. */
int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    die("serve: this strix was built without server support (install libmicrohttpd and cJSON "
        "with scripts/deps.sh, then rebuild)");
}
#endif

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(NULL, stderr);
        return 1;
    }
#ifdef STRIX_MPI
    int mpi_rc;
    if (mpi_main(argc, argv, &mpi_rc))
        return mpi_rc;
#endif
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } commands[] = {
        {"run", cmd_run},         {"tokenize", cmd_tokenize}, {"info", cmd_info},
        {"convert", cmd_convert}, {"synth", cmd_synth},       {"bench", cmd_bench},
        {"ppl", cmd_ppl},         {"chat", cmd_chat},         {"quantize", cmd_quantize},
        {"serve", cmd_serve},
        {"router", cmd_router},
        {"analyze", cmd_analyze}, {"prune", cmd_prune},
        {"eval", cmd_eval},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].fn(argc, argv);
    if (is_help(cmd) || strcmp(cmd, "help") == 0) {
        usage(argc > 2 ? argv[2] : NULL, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("strix %s\n", STRIX_VERSION);
        return 0;
    }
    die("unknown command '%s' (see strix --help)", cmd);
    return 1;
}
