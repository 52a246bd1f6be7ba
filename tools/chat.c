/*
 * chat.c - `strix chat`: a conversation in the terminal. Each turn the whole
 * conversation is rendered with the chat template; the part after the text
 * already in the KV cache is tokenized and decoded, so a turn evaluates only
 * its new tokens. Ctrl-C stops the answer being written, not the program;
 * end of input ends it.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct answer {
    char *text; /* as shown */
    size_t n, cap;
    strix_token *toks; /* every token sampled and shown (the last may not be decoded) */
    int n_toks, cap_toks;
};

static int on_text(void *user, const char *text, size_t n, strix_token tok)
{
    struct answer *a = user;
    if (tok >= 0) {
        if (a->n_toks == a->cap_toks) {
            a->cap_toks = a->cap_toks ? 2 * a->cap_toks : 64;
            a->toks = realloc(a->toks, (size_t)a->cap_toks * sizeof *a->toks);
            if (!a->toks)
                die("out of memory");
        }
        a->toks[a->n_toks++] = tok;
    }
    fwrite(text, 1, n, stdout);
    fflush(stdout);
    if (a->n + n + 1 > a->cap) {
        a->cap = 2 * (a->n + n + 1);
        a->text = realloc(a->text, a->cap);
        if (!a->text)
            die("out of memory");
    }
    memcpy(a->text + a->n, text, n);
    a->n += n;
    a->text[a->n] = '\0';
    return interrupted != 0;
}

static char *render(const char *tmpl, const struct strix_chat_msg *msgs, size_t n, int add_ass)
{
    size_t len;
    strix_error err;
    if (strix_chat_apply(tmpl, msgs, n, add_ass, NULL, 0, &len, &err))
        die("chat template: %s", err.msg);
    char *s = malloc(len + 1);
    if (!s || strix_chat_apply(tmpl, msgs, n, add_ass, s, len + 1, NULL, &err))
        die("chat template: %s", s ? err.msg : "out of memory");
    return s;
}

/* Tokenizes text into *ids, growing it (*cap entries) to the count the
 * tokenizer asks for; returns the number of tokens. */
static int tokenize_all(const strix_model *m, const char *text, int flags, strix_token **ids,
                        int *cap)
{
    for (;;) {
        int n = 0;
        strix_error e;
        const int rc = strix_tokenize_ex(m, text, strlen(text), flags, *ids, *cap, &n, &e);
        if (rc == STRIX_OK)
            return n;
        if (rc != STRIX_ERR_ARG || n <= *cap)
            die("tokenize: %s", e.msg);
        strix_token *p = realloc(*ids, (size_t)n * sizeof *p);
        if (!p)
            die("out of memory");
        *ids = p;
        *cap = n;
    }
}

int cmd_chat(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o,
               " m vocab n t c temp top-k top-p min-p rp rln seed freq pres typical mirostat"
               " mirostat-lr mirostat-ent samplers logit-bias sys tmpl stop no-stop-bos" CACHE_OPTS);
    strix_model *m = load_model(&o, 0);
    /* the template: named, else the stored one, else chatml if the vocabulary
     * has its markers, else plain text */
    static char stored[1 << 16];
    const char *tmpl = o.chat_template;
    if (!tmpl && strix_model_meta_str(m, "tokenizer.chat_template", stored, sizeof stored) > 0) {
        tmpl = strix_chat_template_detect(stored);
        if (!tmpl)
            fprintf(stderr, "chat: the model's template is not one strix knows; using chatml\n");
        tmpl = tmpl ? tmpl : "chatml";
    }
    if (!tmpl) {
        int n, has_chatml = 0;
        strix_token t;
        strix_error e;
        has_chatml = strix_tokenize_ex(m, "<|im_start|>", 12, STRIX_TOKENIZE_PARSE_SPECIAL, &t, 1,
                                       &n, &e) == 0 &&
                     n == 1 && strix_token_type(m, t) == STRIX_TOKEN_CONTROL;
        tmpl = has_chatml ? "chatml" : "plain";
    }
    if (!strix_chat_template_detect(tmpl)) {
        char known[1024];
        size_t at = 0;
        known[0] = '\0';
        for (int i = 0; strix_chat_template_name(i) && at < sizeof known; i++)
            at += (size_t)snprintf(known + at, sizeof known - at, "%s%s", i ? ", " : "",
                                   strix_chat_template_name(i));
        die("unknown chat template '%s' (known: %s)", tmpl, known);
    }
    tmpl = strix_chat_template_detect(tmpl);
    fprintf(stderr,
            "chat: template %s; end a line to send it, Ctrl-C stops an answer, "
            "end of input quits\n",
            tmpl);

    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = o.n_ctx;
    cp.n_threads = o.n_threads;
    cache_types_apply(&o, &cp);
    strix_error err;
    strix_context *ctx;
    if (strix_context_create(m, &cp, &ctx, &err))
        die("%s", err.msg);
    const int n_ctx = strix_context_n_ctx(ctx);
    sampling_opts(&o, strix_vocab_size(m));
    strix_sampler *smp;
    if (strix_sampler_create(&o.sp, strix_vocab_size(m), &smp, &err))
        die("%s", err.msg);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    struct strix_chat_msg *msgs = NULL;
    size_t n_msg = 0, cap_msg = 0;
    char *done = NULL; /* the rendered text whose tokens are in the cache */
    strix_token *ids = NULL;
    int cap_ids = 0;
    int n_cache = 0; /* tokens in the cache; the last of them is `prev` */
    strix_token prev = -1;
    const char *stop_list[OPT_LIST_MAX + 1];
    int n_stops = 0;
    if (strix_chat_template_end(tmpl))
        stop_list[n_stops++] = strix_chat_template_end(tmpl);
    for (int i = 0; i < o.n_stops; i++)
        stop_list[n_stops++] = o.stops[i];
    print_seed(&o);
    char *line = NULL;
    size_t line_cap = 0;
    if (o.system) {
        msgs = realloc(msgs, (cap_msg = 8) * sizeof *msgs);
        if (!msgs)
            die("out of memory");
        msgs[n_msg].role = "system";
        msgs[n_msg++].content = strdup(o.system);
    }
    for (;;) {
        fputs("> ", stderr);
        interrupted = 0;
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0)
            break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0)
            continue;
        if (n_msg + 2 > cap_msg) {
            cap_msg = cap_msg ? 2 * cap_msg : 8;
            msgs = realloc(msgs, cap_msg * sizeof *msgs);
            if (!msgs)
                die("out of memory");
        }
        msgs[n_msg].role = "user";
        msgs[n_msg++].content = strdup(line);
        char *full = render(tmpl, msgs, n_msg, 1);
        /* the new part: after the text in the cache, if it is a prefix */
        const size_t n_done = done ? strlen(done) : 0;
        const char *delta = full;
        if (done && strncmp(full, done, n_done) == 0) {
            delta = full + n_done;
        } else if (n_cache > 0) { /* the template rewrote history: start over */
            strix_kv_truncate(ctx, 0, NULL);
            n_cache = 0;
        }
        const int n_new = tokenize_all(m, delta,
                                       STRIX_TOKENIZE_PARSE_SPECIAL |
                                           (n_cache == 0 ? STRIX_TOKENIZE_ADD_BOS : 0),
                                       &ids, &cap_ids);
        if (n_cache + n_new >= n_ctx)
            die("the conversation fills the context of %d tokens", n_ctx);
        for (int i = 0; i < n_new; i += 512) {
            const int n = n_new - i < 512 ? n_new - i : 512;
            if (strix_decode(ctx, ids + i, NULL, n, NULL, &err))
                die("decode: %s", err.msg);
        }
        if (getenv("STRIX_CHAT_DEBUG"))
            fprintf(stderr, "[chat: %d tokens in the cache, %d new]\n", n_cache, n_new);
        n_cache += n_new;
        if (n_new > 0)
            prev = ids[n_new - 1];
        for (int i = 0; i < n_new; i++)
            strix_sampler_accept(smp, ids[i]);
        struct strix_gen_params gp = strix_gen_default_params();
        gp.n_predict = o.n_predict;
        gp.stop = stop_list;
        gp.n_stop = n_stops;
        gp.stop_at_bos = strcmp(tmpl, "plain") == 0 && !o.no_stop_bos;
        struct answer a = {NULL, 0, 0, NULL, 0, 0};
        on_text(&a, "", 0, -1);
        struct strix_gen_result res = {.struct_size = sizeof res};
        if (strix_generate(m, ctx, smp, prev, &gp, on_text, &a, &res, &err))
            die("generate: %s", err.msg);
        fputc('\n', stdout);
        fflush(stdout);
        if (res.stop_reason == STRIX_STOP_CALLER)
            fprintf(stderr, "[stopped]\n");
        msgs[n_msg].role = "assistant";
        msgs[n_msg++].content = a.text;
        /* the text the cache holds: the prompt, then the answer tokens that
         * were decoded (the last one sampled is not, and a stop string's
         * tokens may be without being shown); if next turn's rendering does
         * not start with it, the cache is rebuilt */
        const int n_dec = strix_kv_len(ctx) - n_cache;
        size_t n_full = strlen(full), cap_done = n_full + 1;
        for (int i = 0; i < n_dec && i < a.n_toks; i++)
            cap_done += (size_t)(strix_token_to_text(m, -1, a.toks[i], NULL, 0) + 1) + 8;
        free(done);
        done = malloc(cap_done);
        if (!done)
            die("out of memory");
        memcpy(done, full, n_full);
        size_t at = n_full;
        for (int i = 0; i < n_dec && i < a.n_toks; i++) {
            const int k = strix_token_to_text(m, i ? a.toks[i - 1] : prev, a.toks[i], done + at,
                                              (int)(cap_done - at - 1));
            at += k > 0 ? (size_t)k : 0;
            prev = a.toks[i];
        }
        done[at] = '\0';
        n_cache = strix_kv_len(ctx);
        free(a.toks);
        free(full);
        if (n_cache >= n_ctx - 1) {
            fprintf(stderr, "chat: the context is full\n");
            break;
        }
    }
    free(line);
    for (size_t i = 0; i < n_msg; i++)
        free((char *)msgs[i].content);
    free(msgs);
    free(done);
    free(ids);
    strix_sampler_free(smp);
    strix_context_free(ctx);
    strix_model_free(m);
    return 0;
}
