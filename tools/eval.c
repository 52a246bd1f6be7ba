/*
 * eval.c - `strix eval --task gsm8k`: GSM8K-style word problems from a JSONL
 * file ({"question": ..., "answer": "... #### N"} per line), a few-shot
 * chain-of-thought prompt (the last K problems of the file, with their
 * worked answers, as examples; they are not scored), the final answer of
 * each generation by strix_answer_extract, and accuracy and speed. With a
 * draft (tools/spec.c's options) it decodes speculatively and reports the
 * acceptance; --compare runs plain decoding, exact speculative decoding and
 * lossy settings on the same problems with the same seeds and reports how
 * often each setting's answer agrees with exact decoding's. "ppl" is the
 * perplexity of the generated tokens under the target (its final
 * distribution for speculative settings, its raw one for plain decoding:
 * the same at temperature 1 without truncation).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct problem {
    char *question, *answer; /* answer: the worked solution, "<<...>>" notes removed */
    char gold[32];
};

/* Appends the UTF-8 encoding of code point c. */
static size_t put_utf8(char *o, unsigned c)
{
    if (c < 0x80)
        return o[0] = (char)c, 1;
    if (c < 0x800)
        return o[0] = (char)(0xc0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3f)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xe0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 0x3f)),
               o[2] = (char)(0x80 | (c & 0x3f)), 3;
    return o[0] = (char)(0xf0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 0x3f)),
           o[2] = (char)(0x80 | (c >> 6 & 0x3f)), o[3] = (char)(0x80 | (c & 0x3f)), 4;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        const char c = s[i];
        const int d = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (d < 0)
            return 0;
        *v = *v << 4 | (unsigned)d;
    }
    return 1;
}

/* The string value of "key" in one JSON object line, unescaped; NULL if the
 * key is missing or its value is not a well-formed string. Caller frees. */
static char *json_string(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p++ != ':')
        return NULL;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p++ != '"')
        return NULL;
    char *out = malloc(strlen(p) + 1), *o = out;
    if (!out)
        die("out of memory");
    for (; *p && *p != '"'; p++) {
        if (*p != '\\') {
            *o++ = *p;
            continue;
        }
        p++;
        unsigned c;
        switch (*p) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case '"': case '\\': case '/': *o++ = *p; break;
        case 'u':
            if (!hex4(p + 1, &c))
                goto bad;
            p += 4;
            if (c >= 0xd800 && c < 0xdc00) { /* a surrogate pair */
                unsigned lo;
                if (p[1] != '\\' || p[2] != 'u' || !hex4(p + 3, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    goto bad;
                c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            o += put_utf8(o, c);
            break;
        default:
            goto bad;
        }
    }
    if (*p != '"')
        goto bad;
    *o = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* Drops the calculator notes "<<16-3-4=9>>" of GSM8K's worked answers. */
static void strip_notes(char *s)
{
    char *o = s;
    for (char *p = s; *p;) {
        char *e;
        if (p[0] == '<' && p[1] == '<' && (e = strstr(p, ">>")) != NULL) {
            p = e + 2;
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
}

static int load_problems(const char *path, struct problem **out)
{
    size_t len;
    char *buf = read_file(path, &len);
    int n = 0, cap = 0, line_no = 0;
    struct problem *ps = NULL;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        line_no++;
        if (line[strspn(line, " \t\r")] != '\0') {
            struct problem pr = {json_string(line, "question"), json_string(line, "answer"), ""};
            if (!pr.question || !pr.answer)
                die("%s:%d: not a JSON object with \"question\" and \"answer\" strings", path,
                    line_no);
            if (!strix_answer_extract(pr.answer, strlen(pr.answer), pr.gold, sizeof pr.gold))
                die("%s:%d: the answer has no final number", path, line_no);
            strip_notes(pr.answer);
            if (n == cap && !(ps = realloc(ps, (size_t)(cap = cap ? 2 * cap : 256) * sizeof *ps)))
                die("out of memory");
            ps[n++] = pr;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (n == 0)
        die("%s: no problems", path);
    *out = ps;
    return n;
}

/* "Question: ...\nAnswer: ...\n\n" for each example, then the question. */
static char *make_prompt(const struct problem *ps, int n, int shots, const struct problem *q)
{
    size_t cap = strlen(q->question) + 64;
    for (int i = n - shots; i < n; i++)
        cap += strlen(ps[i].question) + strlen(ps[i].answer) + 64;
    char *s = malloc(cap);
    if (!s)
        die("out of memory");
    size_t at = 0;
    for (int i = n - shots; i < n; i++)
        at += (size_t)snprintf(s + at, cap - at, "Question: %s\nAnswer: %s\n\n", ps[i].question,
                               ps[i].answer);
    snprintf(s + at, cap - at, "Question: %s\nAnswer:", q->question);
    return s;
}

/* One decoding setting of --compare and its totals. */
struct setting {
    char name[48];
    int use_draft;
    struct strix_spec_params pp;
    int correct, agree, n_tokens, drafted, accepted, rounds;
    double seconds, kl_sum, nll;
    char (*answers)[32];
};

struct collected {
    strix_token *toks;
    int n;
    const strix_sampler *smp;
    double nll; /* -log p of the tokens under the model's own (raw) distribution */
};

static int collect(void *user, const char *text, size_t n, strix_token tok)
{
    (void)text, (void)n;
    struct collected *c = user;
    if (tok >= 0) {
        struct strix_token_prob chosen;
        strix_sampler_last_probs(c->smp, &chosen, NULL, 0);
        c->nll -= chosen.logprob;
        c->toks[c->n++] = tok;
    }
    return 0;
}

/* Generates at most cap tokens after the prompt with setting s; returns the
 * number, tokens in out. */
static int generate(const struct opts *o, strix_model *m, strix_context *ctx, strix_sampler *smp,
                    struct spec_setup *ss, struct setting *s, const strix_token *ids, int n_ids,
                    uint64_t seed, int cap, strix_token *out)
{
    strix_error err;
    strix_sampler_reset(smp, seed);
    for (int i = 0; i < n_ids; i++) /* the penalties see the prompt, as in strix run */
        strix_sampler_accept(smp, ids[i]);
    const double t0 = now();
    int n = 0;
    if (s->use_draft) {
        struct strix_spec_stats st = {.struct_size = sizeof st};
        if (strix_speculative_generate(m, ctx, smp, ss->d, ids, n_ids, &s->pp, out, cap, &st,
                                       &err))
            die("speculative: %s", err.msg);
        n = st.n_tokens;
        s->drafted += st.n_drafted;
        s->accepted += st.n_accepted;
        s->rounds += st.n_rounds;
        s->kl_sum += st.kl_sum;
        s->nll += st.nll_sum;
    } else {
        strix_kv_seq_rm(ctx, -1, 0, -1);
        if (strix_decode(ctx, ids, NULL, n_ids, NULL, &err))
            die("decode: %s", err.msg);
        struct strix_gen_params gp = strix_gen_default_params();
        gp.n_predict = cap;
        gp.stop_at_bos = o->stop_bos;
        struct collected c = {malloc((size_t)(cap + 1) * sizeof *out), 0, smp, 0};
        if (!c.toks)
            die("out of memory");
        struct strix_gen_result res = {.struct_size = sizeof res};
        if (strix_generate(m, ctx, smp, ids[n_ids - 1], &gp, collect, &c, &res, &err))
            die("generate: %s", err.msg);
        n = c.n < cap ? c.n : cap;
        memcpy(out, c.toks, (size_t)n * sizeof *out);
        free(c.toks);
        s->nll += c.nll;
    }
    s->seconds += now() - t0;
    s->n_tokens += n;
    return n;
}

int cmd_eval(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o,
               " m vocab f n t c seed temp top-k top-p min-p rp rln freq pres typical task limit"
               " shots compare draft draft-max draft-ngram draft-quant draft-skip draft-lossy"
               " draft-knob draft-entropy-min draft-budget draft-window draft-p-min"
               " draft-adaptive" CACHE_OPTS);
    if (!o.task || strcmp(o.task, "gsm8k") != 0)
        die("eval needs --task gsm8k (the one task there is)");
    if (!o.file)
        die("eval needs -f FILE.jsonl (GSM8K problems)");
    spec_check_opts(&o);
    if (o.compare && !spec_wanted(&o))
        die("--compare needs a draft: --draft FILE, --draft-quant TYPE, --draft-skip "
            "LAYERS|auto or --draft-ngram N");
    if (o.sp.mirostat)
        die("eval does not take --mirostat");
    struct problem *ps;
    const int n_all = load_problems(o.file, &ps);
    int shots = opt_given(&o, "shots") ? o.shots : 4;
    if (shots >= n_all)
        die("--shots %d: the file has %d problems (the examples are its last ones)", shots,
            n_all);
    const int n_eval = o.limit > 0 && o.limit < n_all - shots ? o.limit : n_all - shots;
    const int n_new = o.n_predict > 0 ? o.n_predict : 192;
    strix_model *m = load_model(&o, 0);
    strix_error err;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = o.n_ctx;
    cache_types_apply(&o, &cp);
    strix_pool *pool = NULL;
    strix_context *ctx = NULL;
    if (strix_pool_create(o.n_threads, &pool, &err))
        die("%s", err.msg);
    cp.pool = pool;
    if (strix_context_create(m, &cp, &ctx, &err))
        die("%s", err.msg);
    const int n_ctx = strix_context_n_ctx(ctx);
    /* as many of the examples as leave room for the answer in every prompt */
    int n_ids = 0;
    strix_token *ids = NULL;
    for (;; shots--) {
        int worst = 0;
        for (int i = 0; i < n_eval; i++) {
            char *pr = make_prompt(ps, n_all, shots, &ps[i]);
            free(ids);
            ids = tokenize(m, pr, strlen(pr), 1, &n_ids);
            free(pr);
            worst = n_ids > worst ? n_ids : worst;
        }
        if (worst + n_new <= n_ctx)
            break;
        if (shots == 0)
            die("a question takes %d tokens: with %d new ones it does not fit the context of %d",
                worst, n_new, n_ctx);
    }
    free(ids);
    struct strix_sampler_params sp = o.sp;
    sampling_opts(&o, strix_vocab_size(m));
    sp = o.sp;
    strix_sampler *smp = NULL;
    if (strix_sampler_create(&sp, strix_vocab_size(m), &smp, &err))
        die("%s", err.msg);
    /* the settings */
    struct spec_setup ss = {0};
    struct setting set[8];
    int n_set = 0;
    memset(set, 0, sizeof set);
    if (spec_wanted(&o)) {
        char *calib = make_prompt(ps, n_all, shots, &ps[0]);
        int n_c;
        strix_token *c = tokenize(m, calib, strlen(calib), 1, &n_c);
        spec_setup(&o, m, ctx, pool, c, n_c < n_ctx ? n_c : n_ctx, &ss);
        free(calib);
        free(c);
    }
    if (o.compare) {
        set[n_set++] = (struct setting){.name = "plain"};
        struct strix_spec_params exact = ss.pp;
        exact.lossy = STRIX_SPEC_EXACT;
        set[n_set++] = (struct setting){.name = "exact", .use_draft = 1, .pp = exact};
        if (o.draft_lossy) { /* the scheme; with a budget also without it */
            set[n_set] = (struct setting){.use_draft = 1, .pp = ss.pp};
            set[n_set].pp.budget_window = 0;
            set[n_set].pp.entropy_min = 0;
            snprintf(set[n_set++].name, sizeof set[0].name, "%s %.2f", o.draft_lossy,
                     (double)ss.pp.lossy_knob);
            if (ss.pp.budget_window > 0 || ss.pp.entropy_min > 0) {
                set[n_set] = (struct setting){.use_draft = 1, .pp = ss.pp};
                snprintf(set[n_set++].name, sizeof set[0].name, "%s %.2f ctl", o.draft_lossy,
                         (double)ss.pp.lossy_knob);
            }
        } else {
            static const struct {
                const char *name;
                int mode;
                float knob;
            } dflt[] = {{"lenient", STRIX_SPEC_LENIENT, 0.5f},
                        {"top-p", STRIX_SPEC_TOP_P, 0.9f},
                        {"near-max", STRIX_SPEC_NEAR_MAX, 0.5f}};
            for (int i = 0; i < 3; i++) {
                set[n_set] = (struct setting){.use_draft = 1, .pp = exact};
                set[n_set].pp.lossy = dflt[i].mode;
                set[n_set].pp.lossy_knob = dflt[i].knob;
                snprintf(set[n_set++].name, sizeof set[0].name, "%s %.2f", dflt[i].name,
                         (double)dflt[i].knob);
            }
        }
    } else {
        set[n_set] = (struct setting){.name = "plain", .use_draft = spec_wanted(&o), .pp = ss.pp};
        if (spec_wanted(&o))
            snprintf(set[n_set].name, sizeof set[0].name, "%s",
                     ss.pp.lossy ? o.draft_lossy : "exact");
        n_set++;
    }
    for (int k = 0; k < n_set; k++)
        if (!(set[k].answers = calloc((size_t)n_eval, sizeof *set[k].answers)))
            die("out of memory");
    strix_token *out = malloc((size_t)n_new * sizeof *out);
    if (!out)
        die("out of memory");
    fprintf(stderr, "eval: gsm8k, %d problems, %d-shot, up to %d new tokens, %s\n", n_eval, shots,
            n_new, sp.temperature <= 0 ? "greedy" : "sampled");
    for (int i = 0; i < n_eval; i++) {
        char *pr = make_prompt(ps, n_all, shots, &ps[i]);
        ids = tokenize(m, pr, strlen(pr), 1, &n_ids);
        free(pr);
        for (int k = 0; k < n_set; k++) {
            const int n = generate(&o, m, ctx, smp, &ss, &set[k], ids, n_ids,
                                   sp.seed + (uint64_t)i, n_new, out);
            char *text = tokens_text(m, ids[n_ids - 1], out, n);
            char *next = strstr(text, "Question:"); /* the model goes on to a new problem */
            const size_t len = next ? (size_t)(next - text) : strlen(text);
            strix_answer_extract(text, len, set[k].answers[i], sizeof set[k].answers[i]);
            set[k].correct += strcmp(set[k].answers[i], ps[i].gold) == 0;
            free(text);
        }
        free(ids);
        fprintf(stderr, "\reval: %d/%d", i + 1, n_eval);
    }
    fprintf(stderr, "\n");
    const int ref = o.compare ? 1 : 0; /* agreement with exact decoding */
    printf("%-16s %9s %9s %9s %9s %10s %9s %9s\n", "setting", "accuracy", "agree", "tok/s",
           "ppl", "acceptance", "mean len", "mean KL");
    for (int k = 0; k < n_set; k++) {
        for (int i = 0; i < n_eval; i++)
            set[k].agree += strcmp(set[k].answers[i], set[ref].answers[i]) == 0;
        const struct setting *s = &set[k];
        printf("%-16s %8.1f%% %8.1f%% %9.1f", s->name, 100.0 * s->correct / n_eval,
               100.0 * s->agree / n_eval, s->n_tokens / (s->seconds > 0 ? s->seconds : 1e-9));
        printf(" %9.3f", s->n_tokens ? exp(s->nll / s->n_tokens) : 0.0);
        if (s->use_draft)
            printf(" %9.1f%% %9.2f %9.4f\n", s->drafted ? 100.0 * s->accepted / s->drafted : 0.0,
                   s->rounds ? (double)s->accepted / s->rounds : 0.0,
                   s->n_tokens ? s->kl_sum / s->n_tokens : 0.0);
        else
            printf(" %10s %9s %9s\n", "-", "-", "-");
    }
    for (int k = 0; k < n_set; k++)
        free(set[k].answers);
    for (int i = 0; i < n_all; i++) {
        free(ps[i].question);
        free(ps[i].answer);
    }
    free(ps);
    free(out);
    spec_free(&ss);
    strix_sampler_free(smp);
    strix_context_free(ctx);
    strix_pool_free(pool);
    strix_model_free(m);
    return 0;
}
