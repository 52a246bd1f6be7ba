/*
 * test_speculative.c - speculative decoding held to what it guarantees,
 * each against something computed independently here:
 *   - greedy: the output equals a plain greedy loop written here (argmax of
 *     one-token decodes) token for token, for a draft equal to the target
 *     (which must then accept every draft), a random-weight model with the
 *     same vocabulary (a poor draft) and n-gram lookup, at several K, up to
 *     a full context;
 *   - sampling: over many seeded runs, the first generated token and the
 *     second given the first follow the target's exact distribution (the
 *     sampler's own strix_sampler_dist over one-token decodes), by a
 *     chi-square test at p < 1e-6, with and without top-k/top-p/temperature
 *     and penalties; plain sampling passes the same test, and two wrong
 *     residuals (p itself; max(0, p - q) over the draft's top 8 only),
 *     switched on through the internal fault hook, fail it;
 *   - bad input: another vocabulary, K out of range, bad n-gram length,
 *     prompts that do not fit, NULL arguments.
 * Seeds are fixed, so the test is deterministic.
 */
#include <math.h>

#include "fixtures.h"
#include "generate/speculative.h"
#include "harness.h"
#include "strix.h"
#include "spec_fixture.h"
#include "strix_dev.h"

#define NEW 40
#define N_RUNS 2000

static strix_context *make_ctx(const strix_model *m, int n_ctx)
{
    return fixture_context(m, n_ctx, n_ctx, 1);
}


/* Plain greedy after the prompt: one token per decode, stopping at EOS/BOS,
 * after n tokens, or when the text fills the context. */
static int greedy_ref(const strix_model *m, strix_context *ctx, const strix_token *p, int n_p,
                      int n, strix_token *out)
{
    strix_error err;
    strix_kv_seq_rm(ctx, -1, 0, -1);
    CHECK(strix_decode(ctx, p, NULL, n_p, NULL, &err) == STRIX_OK);
    const int nv = strix_vocab_size(m), n_ctx = strix_context_n_ctx(ctx);
    int k = 0;
    while (k < n && n_p + k < n_ctx) {
        strix_token t = argmax(strix_get_logits(ctx, -1), nv);
        if (t == strix_token_eos(m) || t == strix_token_bos(m))
            break;
        out[k++] = t;
        if (k < n && n_p + k < n_ctx)
            CHECK(strix_decode(ctx, &t, NULL, 1, NULL, &err) == STRIX_OK);
    }
    return k;
}

/* A greedy sampler, the prompt "Once upon a time" and plain greedy's tokens
 * after it in c (the reference every greedy check compares with). */
struct greedy_case {
    strix_sampler *s;
    strix_token p[16], ref[NEW], got[NEW];
    int n_p, n_ref;
};

static void greedy_case_init(struct greedy_case *g, const strix_model *t, strix_context *c)
{
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0;
    g->s = spec_sampler(&sp, strix_vocab_size(t));
    g->n_p = spec_tokenize(t, "Once upon a time", g->p, 16);
    g->n_ref = greedy_ref(t, c, g->p, g->n_p, NEW, g->ref);
}

static int greedy_case_same(const struct greedy_case *g, int n_tokens)
{
    return n_tokens == g->n_ref && memcmp(g->got, g->ref, (size_t)g->n_ref * sizeof *g->ref) == 0;
}

static void test_greedy(const strix_model *t, strix_context *tctx, const char *name, strix_draft *d,
                        int all_accepted)
{
    static const char *prompts[] = {"Once upon a time", "The little dog", "Lily and Tom went"};
    const int nv = strix_vocab_size(t);
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0;
    strix_sampler *s = spec_sampler(&sp, nv);
    long drafted = 0, accepted = 0, rounds = 0;
    for (int ip = 0; ip < 3; ip++)
        for (int K = 1; K <= 8; K *= 2) {
            strix_token p[64], ref[NEW], got[NEW];
            const int n_p = spec_tokenize(t, prompts[ip], p, 64);
            const int n_ref = greedy_ref(t, tctx, p, n_p, NEW, ref);
            struct strix_spec_params pp = strix_spec_default_params();
            pp.n_draft_max = K;
            pp.stop_at_bos = 1;
            struct strix_spec_stats st = {.struct_size = sizeof st};
            strix_error err;
            strix_sampler_reset(s, 1);
            int rc = strix_speculative_generate(t, tctx, s, d, p, n_p, &pp, got, NEW, &st, &err);
            CHECKF(rc == STRIX_OK, "%s: %s", name, err.msg);
            CHECKF(st.n_tokens == n_ref && memcmp(got, ref, (size_t)n_ref * sizeof *ref) == 0,
                   "%s K=%d prompt %d: %d tokens, plain greedy %d", name, K, ip, st.n_tokens,
                   n_ref);
            CHECK(st.n_accepted <= st.n_drafted && st.n_rounds >= 1);
            /* each round gives its accepted drafts and one token of the target's */
            CHECK(st.stop_reason != STRIX_STOP_BUDGET ||
                  st.n_tokens == st.n_accepted + st.n_rounds);
            if (all_accepted)
                CHECKF(st.n_accepted == st.n_drafted && st.n_drafted > 0, "%s: %d of %d", name,
                       st.n_accepted, st.n_drafted);
            drafted += st.n_drafted;
            accepted += st.n_accepted;
            rounds += st.n_rounds;
        }
    printf("greedy %-7s: output = plain greedy; drafted %ld, accepted %ld (%.1f%%), mean "
           "accepted length %.2f\n",
           name, drafted, accepted, drafted ? 100.0 * (double)accepted / (double)drafted : 0.0,
           (double)accepted / (double)rounds);
    strix_sampler_free(s);
}

/* A draft whose context is shorter than the text stops drafting there; the
 * output stays plain greedy. */
static void test_short_draft(const strix_model *t, const strix_model *dm, strix_context *tctx,
                             strix_draft *full)
{
    strix_context *dc = make_ctx(dm, 12);
    strix_draft *d = NULL;
    strix_error err;
    CHECK(strix_draft_model_create(t, dm, dc, &d, &err) == STRIX_OK);
    struct greedy_case g;
    greedy_case_init(&g, t, tctx);
    struct strix_spec_params pp = strix_spec_default_params();
    pp.stop_at_bos = 1;
    struct strix_spec_stats st = {.struct_size = sizeof st};
    CHECK(strix_speculative_generate(t, tctx, g.s, d, g.p, g.n_p, &pp, g.got, NEW, &st, &err) ==
          STRIX_OK);
    CHECK(greedy_case_same(&g, st.n_tokens));
    const int n_short = st.n_drafted;
    CHECK(strix_speculative_generate(t, tctx, g.s, full, g.p, g.n_p, &pp, g.got, NEW, &st, &err) ==
          STRIX_OK);
    CHECKF(n_short > 0 && n_short < st.n_drafted / 2, "drafted %d, %d with a full context", n_short,
           st.n_drafted);
    strix_draft_free(d);
    strix_sampler_free(g.s);
    strix_context_free(dc);
}

/* The confidence threshold: p_min 1 drafts nothing (a softmax below 1
 * everywhere), p_min 0.5 less than p_min 0; the output stays plain greedy. */
static void test_p_min(const strix_model *t, strix_context *tctx, strix_draft *d)
{
    struct greedy_case g;
    greedy_case_init(&g, t, tctx);
    const float p_mins[3] = {0, 0.5f, 1};
    int drafted[3];
    for (int i = 0; i < 3; i++) {
        struct strix_spec_params pp = strix_spec_default_params();
        pp.n_draft_max = 6;
        pp.p_min = p_mins[i];
        pp.stop_at_bos = 1;
        struct strix_spec_stats st = {.struct_size = sizeof st};
        strix_error err;
        CHECK(strix_speculative_generate(t, tctx, g.s, d, g.p, g.n_p, &pp, g.got, NEW, &st,
                                         &err) == STRIX_OK);
        CHECK(greedy_case_same(&g, st.n_tokens));
        drafted[i] = st.n_drafted;
    }
    printf("p_min 0 / 0.5 / 1: drafted %d / %d / %d\n", drafted[0], drafted[1], drafted[2]);
    CHECK(drafted[0] > drafted[1] && drafted[1] > 0 && drafted[2] == 0);
    strix_sampler_free(g.s);
}

/* Greedy up to a full context of 24 positions: the same tokens as plain. */
static void test_context_end(const strix_model *t, strix_draft *d)
{
    strix_context *c = make_ctx(t, 24);
    struct greedy_case g;
    greedy_case_init(&g, t, c);
    struct strix_spec_params pp = strix_spec_default_params();
    pp.n_draft_max = 5;
    struct strix_spec_stats st = {.struct_size = sizeof st};
    strix_error err;
    CHECK(strix_speculative_generate(t, c, g.s, d, g.p, g.n_p, &pp, g.got, NEW, &st, &err) ==
          STRIX_OK);
    CHECKF(greedy_case_same(&g, st.n_tokens), "%d tokens, plain %d", st.n_tokens, g.n_ref);
    CHECK(g.n_ref == 24 - g.n_p && st.stop_reason == STRIX_STOP_CONTEXT);
    strix_sampler_free(g.s);
    strix_context_free(c);
}

/* ---- sampling: chi-square against the exact distribution ---- */

/* Pearson's statistic of counts[0..nv) (n draws) against probabilities p;
 * cells expected below 5 are pooled. A draw where p is 0 gives INFINITY.
 * *df gets the degrees of freedom. */
static double chi_square(const long *counts, const double *p, int nv, long n, int *df)
{
    double chi = 0, pool_e = 0, pool_o = 0;
    int cells = 0;
    for (int v = 0; v < nv; v++) {
        const double e = p[v] * (double)n;
        if (p[v] <= 0) {
            if (counts[v] > 0)
                return INFINITY;
            continue;
        }
        if (e < 5) {
            pool_e += e;
            pool_o += (double)counts[v];
            continue;
        }
        chi += ((double)counts[v] - e) * ((double)counts[v] - e) / e;
        cells++;
    }
    if (pool_e > 0) {
        chi += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        cells++;
    }
    *df = cells - 1;
    return chi;
}

/* The chi-square value exceeded with probability 1e-6 (Wilson-Hilferty). */
static double chi_crit(int df)
{
    if (df < 1)
        return INFINITY; /* one cell: nothing to test */
    const double z = 4.7534, a = 2.0 / (9.0 * df);
    return df * pow(1 - a + z * sqrt(a), 3);
}

/* The target's exact distribution of the next token after prompt + extra,
 * with `extra` accepted into a fresh sampler (as generation would have). */
static void exact_dist(const strix_model *t, strix_context *tctx,
                       const struct strix_sampler_params *sp, const strix_token *p, int n_p,
                       const strix_token *extra, int n_extra, double *out)
{
    const int nv = strix_vocab_size(t);
    strix_token seq[80];
    memcpy(seq, p, (size_t)n_p * sizeof *p);
    if (n_extra > 0)
        memcpy(seq + n_p, extra, (size_t)n_extra * sizeof *p);
    strix_error err;
    strix_kv_seq_rm(tctx, -1, 0, -1);
    CHECK(strix_decode(tctx, seq, NULL, n_p + n_extra, NULL, &err) == STRIX_OK);
    strix_sampler *s = spec_sampler(sp, nv);
    for (int i = 0; i < n_p; i++) /* the penalties see the prompt, as in strix run */
        strix_sampler_accept(s, p[i]);
    for (int i = 0; i < n_extra; i++)
        strix_sampler_accept(s, extra[i]);
    float *f = malloc((size_t)nv * sizeof *f);
    CHECK(strix_sampler_dist(s, strix_get_logits(tctx, -1), nv, f, &err) == STRIX_OK);
    for (int v = 0; v < nv; v++)
        out[v] = f[v];
    free(f);
    strix_sampler_free(s);
}

/* Runs N_RUNS seeded generations of 2 tokens (speculative with draft d, or
 * plain sampling when d is NULL) and tests the first token, and the second
 * after the likeliest first, against the exact distributions. Returns the
 * larger statistic over its critical value (> 1: the test rejects). */
static double sample_test(const strix_model *t, strix_context *tctx, strix_draft *d,
                          const struct strix_sampler_params *sp, const char *prompt,
                          const char *what)
{
    const int nv = strix_vocab_size(t);
    const strix_token eos = strix_token_eos(t);
    strix_token p[64];
    const int n_p = spec_tokenize(t, prompt, p, 64);
    double *p1 = malloc((size_t)nv * sizeof *p1), *p2 = malloc((size_t)nv * sizeof *p2);
    long *c1 = calloc((size_t)nv, sizeof *c1), *c2 = calloc((size_t)nv, sizeof *c2);
    float *l1 = malloc((size_t)nv * sizeof *l1), *l2 = malloc((size_t)nv * sizeof *l2);
    exact_dist(t, tctx, sp, p, n_p, NULL, 0, p1);
    memcpy(l1, strix_get_logits(tctx, -1), (size_t)nv * sizeof *l1);
    strix_token a = 0;
    for (int v = 1; v < nv; v++)
        a = p1[v] > p1[a] ? v : a;
    exact_dist(t, tctx, sp, p, n_p, &a, 1, p2);
    memcpy(l2, strix_get_logits(tctx, -1), (size_t)nv * sizeof *l2);
    strix_sampler *s = spec_sampler(sp, nv);
    long n2 = 0, drafted = 0, accepted = 0;
    for (int run = 0; run < N_RUNS; run++) {
        strix_sampler_reset(s, 1000 + (uint64_t)run);
        for (int i = 0; i < n_p; i++)
            strix_sampler_accept(s, p[i]);
        strix_token out[3] = {eos, eos, eos};
        strix_error err;
        if (d) {
            struct strix_spec_params pp = strix_spec_default_params();
            pp.n_draft_max = 4; /* at most 2 drafts: the budget is 3 tokens */
            struct strix_spec_stats st = {.struct_size = sizeof st};
            CHECKF(strix_speculative_generate(t, tctx, s, d, p, n_p, &pp, out, 3, &st, &err) ==
                       STRIX_OK,
                   "%s", err.msg);
            drafted += st.n_drafted;
            accepted += st.n_accepted;
        } else { /* plain sampling from the same logits */
            out[0] = strix_sampler_sample(s, l1);
            strix_sampler_accept(s, out[0]);
            if (out[0] == a)
                out[1] = strix_sampler_sample(s, l2);
        }
        c1[out[0]]++;
        if (out[0] == a) {
            c2[out[1]]++;
            n2++;
        }
    }
    int df1, df2;
    const double x1 = chi_square(c1, p1, nv, N_RUNS, &df1);
    const double x2 = chi_square(c2, p2, nv, n2, &df2);
    const double r1 = x1 / chi_crit(df1), r2 = x2 / chi_crit(df2);
    printf("%-34s token 1: chi2 %8.1f df %3d (crit %.1f); token 2 (n %4ld): chi2 %8.1f df %3d "
           "(crit %.1f)",
           what, x1, df1, chi_crit(df1), n2, x2, df2, chi_crit(df2));
    if (d)
        printf("; acceptance %.1f%%", 100.0 * (double)accepted / (double)(drafted ? drafted : 1));
    printf("\n");
    strix_sampler_free(s);
    free(p1);
    free(p2);
    free(l1);
    free(l2);
    free(c1);
    free(c2);
    return r1 > r2 ? r1 : r2;
}

static void test_sampling(const strix_model *t, strix_context *tctx, strix_draft *q4,
                          strix_draft *poor, strix_draft *same, strix_draft *ngram)
{
    struct strix_sampler_params cfg[4];
    const char *names[4] = {"temp 1", "temp 0.8 top-k 20", "temp 1.5 top-p 0.97",
                            "repeat 1.3 freq 0.5"};
    for (int i = 0; i < 4; i++)
        cfg[i] = spec_temp1();
    cfg[1].temperature = 0.8f;
    cfg[1].top_k = 20;
    cfg[2].temperature = 1.5f;
    cfg[2].top_p = 0.97f;
    cfg[3].repeat_penalty = 1.3f;
    cfg[3].frequency_penalty = 0.5f;
    cfg[3].repeat_last_n = 64;
    /* n-gram lookup gets a repeated phrase, so that it drafts from the first token */
    const char *pr = "Once upon a time, there was a little";
    const char *rp =
        "Once upon a time, there was a little girl. Once upon a time, there was a little";
    char what[96];
    for (int i = 0; i < 4; i++) {
        snprintf(what, sizeof what, "plain, %s", names[i]);
        CHECKF(sample_test(t, tctx, NULL, &cfg[i], pr, what) < 1, "%s", what);
        snprintf(what, sizeof what, "Q4_0 draft, %s", names[i]);
        CHECKF(sample_test(t, tctx, q4, &cfg[i], pr, what) < 1, "%s", what);
    }
    CHECK(sample_test(t, tctx, poor, &cfg[0], pr, "poor draft, temp 1") < 1);
    CHECK(sample_test(t, tctx, same, &cfg[0], pr, "same draft, temp 1") < 1);
    CHECK(sample_test(t, tctx, ngram, &cfg[0], rp, "n-gram draft, temp 1") < 1);
    CHECK(sample_test(t, tctx, ngram, &cfg[3], rp, "n-gram draft, penalties") < 1);
    /* the same test must catch wrong residuals */
    speculative_set_fault(SPECULATIVE_FAULT_RESIDUAL_P);
    CHECK(sample_test(t, tctx, q4, &cfg[0], pr, "FAULT residual p, Q4_0 draft") > 1);
    CHECK(sample_test(t, tctx, ngram, &cfg[0], rp, "FAULT residual p, n-gram") > 1);
    speculative_set_fault(SPECULATIVE_FAULT_RESIDUAL_TOPK);
    CHECK(sample_test(t, tctx, q4, &cfg[2], pr, "FAULT top-8 residual, Q4_0 top-p") > 1);
    speculative_set_fault(SPECULATIVE_FAULT_NONE);
}

/* The target's file with the piece of token `id` changed in its last byte
 * (an ASCII letter, swapped in case), loaded; NULL if it cannot be made. */
static strix_model *piece_changed(const strix_model *t, int id)
{
    size_t len = 0;
    char *buf = test_read_file(test_path("stories260K-ref.gguf"), &len);
    const char *piece = strix_token_piece(t, id);
    const size_t n = piece ? strlen(piece) : 0;
    strix_model *m = NULL;
    if (!buf || n == 0)
        goto out;
    /* the piece as GGUF stores it: a uint64 length (little-endian), the bytes */
    char pat[72];
    if (n + 8 > sizeof pat)
        goto out;
    for (int b = 0; b < 8; b++)
        pat[b] = (char)((uint64_t)n >> (8 * b));
    memcpy(pat + 8, piece, n);
    char *at = NULL;
    for (size_t i = 0; i + n + 8 <= len && !at; i++)
        if (memcmp(buf + i, pat, n + 8) == 0)
            at = buf + i + 8 + n - 1;
    if (!at || !((*at >= 'a' && *at <= 'z') || (*at >= 'A' && *at <= 'Z')))
        goto out;
    *at ^= 0x20;
    char path[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/strix-spec-vocab-%d.gguf", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        goto out;
    const int ok = fwrite(buf, 1, len, f) == len;
    fclose(f);
    struct strix_model_params mp = strix_model_default_params();
    strix_error err;
    if (ok && strix_model_load(path, &mp, &m, &err) != STRIX_OK)
        m = NULL;
    remove(path);
out:
    free(buf);
    return m;
}

static void test_bad_input(const strix_model *t, strix_context *tctx, strix_draft *d)
{
    strix_error err;
    strix_draft *x = NULL;
    /* the same size, one piece differs: named */
    strix_model *pc = piece_changed(t, 300);
    CHECKF(pc != NULL, "could not make a vocabulary with token 300 changed (\"%s\")",
           strix_token_piece(t, 300));
    if (pc) {
        strix_context *pcc = make_ctx(pc, 16);
        CHECK(strix_draft_model_create(t, pc, pcc, &x, &err) == STRIX_ERR_ARG && x == NULL);
        CHECKF(strstr(err.msg, "differs at token 300") != NULL, "%s", err.msg);
        printf("one piece changed: %s\n", err.msg);
        strix_context_free(pcc);
        strix_model_free(pc);
    }
    /* another vocabulary */
    struct strix_synth_params syp = strix_synth_default_params();
    syp.n_embd = 16, syp.n_ff = 32, syp.n_layer = 1, syp.n_head = 2, syp.n_head_kv = 2;
    syp.n_ctx = 64;
    strix_model *other = NULL;
    CHECKF(strix_model_synth(&syp, test_path("ggml-vocab-gpt-2.gguf"), &other, &err) == STRIX_OK,
           "%s", err.msg);
    if (other) {
        strix_context *oc = make_ctx(other, 64);
        CHECK(strix_draft_model_create(t, other, oc, &x, &err) == STRIX_ERR_ARG);
        CHECK(x == NULL && strstr(err.msg, "draft vocabulary"));
        printf("other vocabulary: %s\n", err.msg);
        strix_context_free(oc);
        strix_model_free(other);
    }
    CHECK(strix_draft_ngram_create(0, &x, &err) == STRIX_ERR_ARG && x == NULL);
    CHECK(strix_draft_ngram_create(17, &x, &err) == STRIX_ERR_ARG && x == NULL);
    CHECK(strix_draft_model_create(NULL, t, tctx, &x, &err) == STRIX_ERR_ARG);
    struct strix_sampler_params sp = strix_sampler_default_params();
    strix_sampler *s = spec_sampler(&sp, strix_vocab_size(t));
    strix_token p[8] = {1, 2, 3}, out[8];
    struct strix_spec_params pp = strix_spec_default_params();
    struct strix_spec_stats st = {.struct_size = sizeof st};
    const int bad_k[] = {0, -1, STRIX_SPEC_DRAFT_MAX + 1, 1000000};
    for (int i = 0; i < 4; i++) {
        pp.n_draft_max = bad_k[i];
        CHECK(strix_speculative_generate(t, tctx, s, d, p, 3, &pp, out, 8, &st, &err) ==
              STRIX_ERR_ARG);
        CHECK(strstr(err.msg, "draft length") != NULL);
    }
    printf("K out of range: %s\n", err.msg);
    pp = strix_spec_default_params();
    pp.p_min = NAN;
    CHECK(strix_speculative_generate(t, tctx, s, d, p, 3, &pp, out, 8, &st, &err) == STRIX_ERR_ARG);
    pp = strix_spec_default_params();
    CHECK(strix_speculative_generate(t, tctx, s, d, p, 0, &pp, out, 8, &st, &err) == STRIX_ERR_ARG);
    CHECK(strix_speculative_generate(t, tctx, s, d, p, 3, &pp, out, -1, &st, &err) ==
          STRIX_ERR_ARG);
    CHECK(strix_speculative_generate(t, tctx, s, NULL, p, 3, &pp, out, 8, &st, &err) ==
          STRIX_ERR_ARG);
    strix_context *small = make_ctx(t, 4);
    strix_token longp[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(strix_speculative_generate(t, small, s, d, longp, 8, &pp, out, 8, &st, &err) ==
          STRIX_ERR_ARG);
    printf("long prompt: %s\n", err.msg);
    strix_context_free(small);
    strix_sampler_free(s);
}

/* The target quantized to Q4_0, written to TMPDIR: a realistic draft. */
static strix_model *quantized(const strix_model *t)
{
    char path[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/strix-spec-q4-%d.gguf", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    struct strix_quantize_params qp = strix_quantize_default_params();
    qp.n_threads = 1;
    qp.pure = 1;
    strix_error err;
    strix_model *m = NULL;
    CHECKF(strix_model_quantize(t, path, "Q4_0", &qp, &err) == STRIX_OK, "%s", err.msg);
    struct strix_model_params mp = strix_model_default_params();
    CHECKF(strix_model_load(path, &mp, &m, &err) == STRIX_OK, "%s", err.msg);
    remove(path);
    return m;
}

int main(void)
{
    if (!fixture_kernels("test_speculative"))
        return 0;
    struct spec_fixture f;
    strix_draft *ng = NULL;
    strix_error err;
    CHECKF(strix_draft_ngram_create(2, &ng, &err) == STRIX_OK, "%s", err.msg);
    if (spec_fixture_open(&f, 256, quantized) && ng) {
        test_greedy(f.t, f.tctx, "same", f.same, 1);
        test_greedy(f.t, f.tctx, "Q4_0", f.q4, 0);
        test_greedy(f.t, f.tctx, "poor", f.pd, 0);
        test_greedy(f.t, f.tctx, "n-gram", ng, 0);
        test_p_min(f.t, f.tctx, f.q4);
        test_short_draft(f.t, f.q4m, f.tctx, f.q4);
        test_context_end(f.t, ng);
        test_context_end(f.t, f.q4);
        test_sampling(f.t, f.tctx, f.q4, f.pd, f.same, ng);
        test_bad_input(f.t, f.tctx, ng);
    }
    strix_draft_free(ng);
    spec_fixture_close(&f);
    TEST_MAIN_END();
}
