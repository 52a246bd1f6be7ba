/*
 * test_chat.c - chat templates against llama.cpp's llama_chat_apply_template
 * (tests/data/llamacpp-chat-templates.txt: one fixed conversation rendered by
 * llama.cpp for each template name, with and without the assistant opening),
 * template detection on the templates published with 31 models and their
 * rendering against llama.cpp's (tests/data/llamacpp-chat-published.txt),
 * special-token tokenizing and metadata strings.
 */
#include "fixtures.h"
#include "harness.h"
#include "strix.h"

/* The conversation llama.cpp rendered (see tests/data/README.md). */
static const struct strix_chat_msg conv[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "  Hi there, how can I help?  "},
    {"user", "Tell me a story"},
};

static void test_golden(void)
{
    size_t len;
    char *g = read_fixture("llamacpp-chat-templates.txt", &len);
    if (!g)
        return;
    int n_cases = 0;
    for (char *p = g; (p = strstr(p, "=== ")) != NULL;) {
        char name[64];
        int add, n;
        const char *nl = strchr(p, '\n');
        if (!nl || sscanf(p, "=== %63s add_ass=%d n=%d", name, &add, &n) != 3) {
            p += 4;
            continue;
        }
        const char *want = nl + 1; /* the text starts right after the header line */
        CHECK(want + n <= g + len);
        char got[4096];
        size_t n_got = 0;
        strix_error err;
        int rc = strix_chat_apply(name, conv, 4, add, got, sizeof got, &n_got, &err);
        CHECKF(rc == STRIX_OK, "%s: %s", name, err.msg);
        CHECKF(n_got == (size_t)n && memcmp(got, want, (size_t)n) == 0,
               "%s add_ass=%d:\n--- strix (%zu)\n%s\n--- llama.cpp (%d)\n%.*s", name, add, n_got,
               got, n, n, want);
        /* the name is recognised as itself */
        const char *det = strix_chat_template_detect(name);
        CHECKF(det && strcmp(det, name) == 0, "%s detected as %s", name, det ? det : "NULL");
        n_cases++;
        p = (char *)want + n;
    }
    CHECKF(n_cases == 28, "%d golden cases", n_cases);
    free(g);
}

/* llama.cpp's own test conversation for the published templates. */
static const struct strix_chat_msg conv6[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

/* Reads "KEY n=N\n" then N bytes and a newline at *p; returns a malloc'd
 * NUL-terminated copy, or NULL. */
static char *read_field(char **p, const char *end, const char *key)
{
    int n = -1;
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s n=%%d", key);
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl || sscanf(*p, fmt, &n) != 1 || n < 0 || nl + 1 + n > end)
        return NULL;
    char *out = malloc((size_t)n + 1);
    memcpy(out, nl + 1, (size_t)n);
    out[n] = '\0';
    *p = (char *)nl + 1 + n + 1;
    return out;
}

/*
 * Detection on the tokenizer.chat_template strings published with models, as
 * llama.cpp's tests/test-chat-template.cpp lists them
 * (tests/data/llamacpp-chat-published.txt, with the output llama.cpp's
 * llama_chat_apply_template gives for its six-message conversation with the
 * assistant opening). Where strix recognises a template, its rendering must
 * be llama.cpp's byte for byte; the families strix implements must be
 * recognised (named here); the others must not be (NULL).
 */
static void test_published(void)
{
    static const struct {
        const char *model, *want;
    } known[] = {
        {"teknium/OpenHermes-2.5-Mistral-7B", "chatml"},
        {"mistralai/Mistral-7B-Instruct-v0.2 (NOTE: Old pre-v1 without a system prompt)", "llama2"},
        {"TheBloke/FusionNet_34Bx2_MoE-AWQ", "llama2-sys-bos"},
        {"bofenghuang/vigogne-2-70b-chat", "llama2-sys-strip"},
        {"google/gemma-7b-it", "gemma"},
        {"deepseek-ai/deepseek-coder-33b-instruct", "deepseek"},
        {"Llama-3", "llama3"},
        {"Phi-3-mini", "phi3"},
        {"Phi-3-small", "phi3"},
        {"Phi-3-medium", "phi3"},
        {"Phi-3-vision", "phi3"},
        {"mistralai/Mistral-7B-Instruct-v0.2 (mistralai 'v1' template with a system prompt)",
         "mistral-v1"},
        {"Mistral-Large-Instruct-2407 (mistralai 'v3' template; modified to have system prompt at "
         "start)",
         "mistral-v3"},
        {"Mistral-Nemo-Instruct-2407 (mistralai 'v3-tekken' template; modified to have system "
         "prompt at start)",
         "mistral-v3-tekken"},
        {"mistralai/Mistral-Large-Instruct-2411 (mistralai 'v7' template)", "mistral-v7"},
    };
    size_t len = 0;
    char *g = read_fixture("llamacpp-chat-published.txt", &len);
    if (!g)
        return;
    const char *end = g + len;
    int n_cases = 0, n_detected = 0;
    for (char *p = g; p < end && strncmp(p, "=== ", 4) == 0;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        char model[256];
        snprintf(model, sizeof model, "%.*s", (int)(nl - p - 4), p + 4);
        p = nl + 1;
        char *tmpl = read_field(&p, end, "template");
        char *want = tmpl ? read_field(&p, end, "expected") : NULL;
        CHECKF(tmpl && want, "%s: malformed case", model);
        if (!tmpl || !want) {
            free(tmpl);
            break;
        }
        n_cases++;
        const char *det = strix_chat_template_detect(tmpl);
        const char *expect_name = NULL;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strcmp(known[i].model, model) == 0)
                expect_name = known[i].want;
        CHECKF(expect_name ? det && strcmp(det, expect_name) == 0 : det == NULL,
               "%s: detected as %s, expected %s", model, det ? det : "NULL",
               expect_name ? expect_name : "NULL");
        if (det) {
            n_detected++;
            char got[4096];
            size_t n_got = 0;
            strix_error err;
            const int rc = strix_chat_apply(det, conv6, 6, 1, got, sizeof got, &n_got, &err);
            CHECKF(rc == STRIX_OK && n_got == strlen(want) && strcmp(got, want) == 0,
                   "%s (%s):\n--- strix\n%s\n--- llama.cpp\n%s", model, det, got, want);
        }
        free(tmpl);
        free(want);
    }
    CHECKF(n_cases == 31, "%d published templates read", n_cases);
    printf("published templates: %d, recognised %d\n", n_cases, n_detected);
    free(g);
}

static void test_detect(void)
{
    static const struct {
        const char *tmpl, *want;
    } cases[] = {
        {"{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>", "chatml"},
        {"{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
         "'<|end_header_id|>\\n\\n' }}",
         "llama3"},
        {"{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>' }}",
         "gemma"},
        {"{{'<|user|>' + '\\n' + message['content'] + '<|end|>'}}{{'<|assistant|>'}}", "phi3"},
        {"{{ '<|user|>\\n' + message['content'] + '<|endoftext|>' }}", "zephyr"},
        {"### Instruction:\\n{{ content }}\\n### Response:\\n{{ content }}\\n<|EOT|>", "deepseek"},
        {"{{ bos_token + '[INST] ' + '<<SYS>>\\n' + system + '\\n<</SYS>>' }}", "llama2-sys-bos"},
        {"[INST] <<SYS>>\\n{{ system }}<</SYS>>", "llama2-sys"},
        {"{{ '[INST] ' + message['content'] + ' [/INST]' }}", "llama2"},
        {"{{ '[SYSTEM_PROMPT] ' + system }}[INST]", "mistral-v7"},
        {"<|im_start|>user<|im_sep|>", NULL}, /* phi-4: not supported */
        {"{{ message.content }}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = strix_chat_template_detect(cases[i].tmpl);
        CHECKF(cases[i].want ? got && strcmp(got, cases[i].want) == 0 : got == NULL,
               "case %zu: got %s, want %s", i, got ? got : "NULL",
               cases[i].want ? cases[i].want : "NULL");
    }
    strix_error err;
    CHECK(strix_chat_apply("no such template", conv, 4, 1, NULL, 0, NULL, &err) ==
          STRIX_ERR_UNSUPPORTED);
    const struct strix_chat_msg bad = {NULL, "x"};
    CHECK(strix_chat_apply("chatml", &bad, 1, 1, NULL, 0, NULL, &err) == STRIX_ERR_ARG);
    /* every listed name renders, and its end marker appears after an answer */
    for (int i = 0; strix_chat_template_name(i); i++) {
        const char *name = strix_chat_template_name(i);
        char buf[1024];
        size_t n;
        CHECK(strix_chat_apply(name, conv, 3, 0, buf, sizeof buf, &n, &err) == STRIX_OK);
        const char *end = strix_chat_template_end(name);
        CHECKF(!end || strstr(buf, end), "%s: no %s in %s", name, end, buf);
    }
    /* snprintf semantics: truncated, NUL-terminated, full length reported */
    char small[8];
    size_t n_full = 0;
    CHECK(strix_chat_apply("chatml", conv, 2, 1, small, sizeof small, &n_full, &err) == STRIX_OK);
    CHECK(strlen(small) == 7 && memcmp(small, "<|im_st", 7) == 0 && n_full > 7);
}

/* Each turn's rendering starts with the previous turn's prompt plus the
 * answer, so a chat can keep its KV cache: true of "plain" and chatml. */
static void test_prefix(void)
{
    const char *names[] = {"plain", "chatml", "llama3", "phi3"};
    for (size_t k = 0; k < 4; k++) {
        char a[1024], b[1024];
        size_t na, nb;
        strix_error err;
        CHECK(strix_chat_apply(names[k], conv, 2, 1, a, sizeof a, &na, &err) == STRIX_OK);
        const struct strix_chat_msg more[] = {
            conv[0], conv[1], {"assistant", "Hi."}, {"user", "More"}};
        CHECK(strix_chat_apply(names[k], more, 4, 1, b, sizeof b, &nb, &err) == STRIX_OK);
        CHECKF(nb > na && memcmp(a, b, na) == 0 && strncmp(b + na, "Hi.", 3) == 0,
               "%s: '%s' then '%s'", names[k], a, b);
    }
    char p[256];
    strix_error err;
    CHECK(strix_chat_apply("plain", conv, 4, 1, p, sizeof p, NULL, &err) == STRIX_OK);
    CHECK(strcmp(p, "You are a helpful assistant\nHello  Hi there, how can I help?  \nTell me a "
                    "story") == 0);
}

static void test_tokenize_special(void)
{
    strix_model *m = load_fixture("ggml-vocab-phi-3.gguf", NULL);
    if (!m)
        return;
    strix_token ids[64];
    int n = 0;
    strix_error err;
    const char *text = "<|user|>\nHello<|end|>\n<|assistant|>\n";
    CHECK(strix_tokenize_ex(m, text, strlen(text),
                            STRIX_TOKENIZE_PARSE_SPECIAL | STRIX_TOKENIZE_ADD_BOS, ids, 64, &n,
                            &err) == STRIX_OK);
    CHECK(n > 4 && ids[0] == strix_token_bos(m));
    int seen_user = 0, seen_end = 0;
    for (int i = 0; i < n; i++) {
        const char *piece = strix_token_piece(m, ids[i]);
        seen_user += strcmp(piece, "<|user|>") == 0;
        seen_end += strcmp(piece, "<|end|>") == 0;
    }
    CHECKF(seen_user == 1 && seen_end == 1, "markers split: %d %d", seen_user, seen_end);
    /* EOS's piece ("<|endoftext|>") is a control token */
    char eos_text[64];
    snprintf(eos_text, sizeof eos_text, "Hi%s", strix_token_piece(m, strix_token_eos(m)));
    CHECK(strix_tokenize_ex(m, eos_text, strlen(eos_text), STRIX_TOKENIZE_PARSE_SPECIAL, ids, 64,
                            &n, &err) == STRIX_OK);
    CHECK(n >= 2 && ids[n - 1] == strix_token_eos(m));
    /* plain text gives what strix_tokenize gives */
    strix_token a[64], b[64];
    int na, nb;
    CHECK(strix_tokenize_ex(m, "Hello world", 11,
                            STRIX_TOKENIZE_PARSE_SPECIAL | STRIX_TOKENIZE_ADD_BOS, a, 64, &na,
                            &err) == STRIX_OK);
    CHECK(strix_tokenize(m, "Hello world", 11, 1, b, 64, &nb, &err) == STRIX_OK);
    CHECK(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    /* too small a buffer: the count needed */
    CHECK(strix_tokenize_ex(m, text, strlen(text),
                            STRIX_TOKENIZE_PARSE_SPECIAL | STRIX_TOKENIZE_ADD_BOS, ids, 2, &n,
                            &err) == STRIX_ERR_ARG &&
          n > 4);
    strix_model_free(m);
}

static void test_meta(void)
{
    strix_model *m = load_fixture("stories260K-ref.gguf", NULL);
    if (m) {
        char buf[64];
        CHECK(strix_model_meta_str(m, "general.architecture", buf, sizeof buf) == 5);
        CHECK(strcmp(buf, "llama") == 0);
        CHECK(strix_model_meta_str(m, "general.architecture", buf, 3) == 5 &&
              strcmp(buf, "ll") == 0);
        CHECK(strix_model_meta_str(m, "tokenizer.chat_template", buf, sizeof buf) == -1);
        CHECK(strix_model_meta_str(m, "llama.block_count", buf, sizeof buf) == -1); /* a u32 */
        strix_model_free(m);
    }
    m = load_fixture("stories260K.bin", "tok512.bin");
    if (m) {
        CHECK(strix_model_meta_str(m, "general.architecture", NULL, 0) == -1);
        strix_model_free(m);
    }
}

int main(void)
{
    test_golden();
    test_detect();
    test_published();
    test_prefix();
    test_tokenize_special();
    test_meta();
    TEST_MAIN_END();
}
