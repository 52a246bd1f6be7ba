/*
 * chat.c - chat templates: turning a list of (role, content) messages into the
 * prompt text a chat-tuned model was trained on, and tokenizing that text with
 * its control markers ("<|im_start|>", "</s>") as single tokens.
 *
 * The templates are written out in C, one renderer per family, rather than
 * interpreted from the Jinja source a GGUF file stores: the stored source is
 * only used to recognise the family by distinctive substrings, in the same
 * order and with the same names as llama.cpp's llama_chat_apply_template, so
 * a name means the same text in both. "plain" is strix's own: the contents
 * joined by newlines, for models without a template (the story models).
 *
 * Decoding the prompt and generating the answer are left to the caller (the
 * CLI's chat command); this file is pure text processing.
 */
#include <ctype.h>
#include <string.h>

#include "util.h"

enum tmpl {
    T_CHATML,
    T_LLAMA2,
    T_LLAMA2_SYS,
    T_LLAMA2_SYS_BOS,
    T_LLAMA2_SYS_STRIP,
    T_MISTRAL_V1,
    T_MISTRAL_V3,
    T_MISTRAL_V3_TEKKEN,
    T_MISTRAL_V7,
    T_PHI3,
    T_ZEPHYR,
    T_GEMMA,
    T_DEEPSEEK,
    T_LLAMA3,
    T_PLAIN,
    T_COUNT
};

static const char *const tmpl_names[T_COUNT] = {
    "chatml",     "llama2",     "llama2-sys",        "llama2-sys-bos", "llama2-sys-strip",
    "mistral-v1", "mistral-v3", "mistral-v3-tekken", "mistral-v7",     "phi3",
    "zephyr",     "gemma",      "deepseek",          "llama3",         "plain",
};

/* The text that ends an assistant turn, used as a stop string. */
static const char *const tmpl_end[T_COUNT] = {
    "<|im_end|>", "</s>", "</s>",          "</s>", "</s>", "</s>",      "</s>", "</s>",
    "</s>",       "<|end|>", "<|endoftext|>", "<end_of_turn>", "<|EOT|>", "<|eot_id|>", NULL,
};

const char *strix_chat_template_name(int i)
{
    return i >= 0 && i < T_COUNT ? tmpl_names[i] : NULL;
}

static int has(const char *s, const char *sub)
{
    return strstr(s, sub) != NULL;
}

/* The family of a template name or stored Jinja source; -1 if unknown. */
static int detect(const char *t)
{
    for (int i = 0; i < T_COUNT; i++)
        if (strcmp(t, tmpl_names[i]) == 0)
            return i;
    if (has(t, "<|im_start|>"))
        return has(t, "<|im_sep|>") ? -1 : T_CHATML; /* im_sep: phi-4, not supported */
    if (strncmp(t, "mistral", 7) == 0 || has(t, "[INST]")) {
        if (has(t, "[SYSTEM_PROMPT]"))
            return T_MISTRAL_V7;
        if (has(t, "' [INST] ' + system_message") || has(t, "[AVAILABLE_TOOLS]")) {
            if (has(t, " [INST]"))
                return T_MISTRAL_V1;
            if (has(t, "\"[INST]\""))
                return T_MISTRAL_V3_TEKKEN;
            return T_MISTRAL_V3;
        }
        if (has(t, "content.strip()"))
            return T_LLAMA2_SYS_STRIP;
        if (has(t, "bos_token + '[INST]"))
            return T_LLAMA2_SYS_BOS;
        return has(t, "<<SYS>>") ? T_LLAMA2_SYS : T_LLAMA2;
    }
    if (has(t, "<|assistant|>") && has(t, "<|end|>"))
        return T_PHI3;
    if (has(t, "<|assistant|>") && has(t, "<|user|>"))
        return -1; /* falcon-3 / glm-edge */
    if (has(t, "<|user|>") && has(t, "<|endoftext|>"))
        return T_ZEPHYR;
    if (has(t, "bos_token + message['role']"))
        return -1; /* monarch */
    if (has(t, "<start_of_turn>"))
        return T_GEMMA;
    if (has(t, "### Instruction:") && has(t, "<|EOT|>"))
        return T_DEEPSEEK;
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>"))
        return T_LLAMA3;
    return -1;
}

const char *strix_chat_template_detect(const char *tmpl)
{
    if (!tmpl)
        return NULL;
    const int t = detect(tmpl);
    return t < 0 ? NULL : tmpl_names[t];
}

const char *strix_chat_template_end(const char *name)
{
    const int t = name ? detect(name) : -1;
    return t < 0 ? NULL : tmpl_end[t];
}

/* ---- a growing string ---- */

struct sb {
    char *s;
    size_t n, cap;
    int oom;
};

static void sb_addn(struct sb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *p = util_realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_add(struct sb *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* Appends s without leading and trailing ASCII white space. */
static void sb_add_trim(struct sb *b, const char *s)
{
    size_t a = 0, e = strlen(s);
    while (a < e && isspace((unsigned char)s[a]))
        a++;
    while (e > a && isspace((unsigned char)s[e - 1]))
        e--;
    sb_addn(b, s + a, e - a);
}

/* ---- renderers ---- */

static void render_llama2(struct sb *b, int t, const struct strix_chat_msg *m, size_t n)
{
    const int sys = t != T_LLAMA2, bos_inside = t == T_LLAMA2_SYS_BOS,
              strip = t == T_LLAMA2_SYS_STRIP;
    int in_turn = 1; /* the first [INST] opens without a BOS: the tokenizer adds it */
    sb_add(b, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        void (*add)(struct sb *, const char *) = strip ? sb_add_trim : sb_add;
        if (!in_turn) {
            in_turn = 1;
            sb_add(b, bos_inside ? "<s>[INST] " : "[INST] ");
        }
        if (strcmp(m[i].role, "system") == 0) {
            if (sys) {
                sb_add(b, "<<SYS>>\n");
                add(b, m[i].content);
                sb_add(b, "\n<</SYS>>\n\n");
            } else { /* no system slot: the text leads the first instruction */
                add(b, m[i].content);
                sb_add(b, "\n");
            }
        } else if (strcmp(m[i].role, "user") == 0) {
            add(b, m[i].content);
            sb_add(b, " [/INST]");
        } else {
            add(b, m[i].content);
            sb_add(b, "</s>");
            in_turn = 0;
        }
    }
}

static void render_mistral(struct sb *b, int t, const struct strix_chat_msg *m, size_t n)
{
    if (t == T_MISTRAL_V7) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(m[i].role, "system") == 0) {
                sb_add(b, "[SYSTEM_PROMPT] ");
                sb_add(b, m[i].content);
                sb_add(b, "[/SYSTEM_PROMPT]");
            } else if (strcmp(m[i].role, "user") == 0) {
                sb_add(b, "[INST] ");
                sb_add(b, m[i].content);
                sb_add(b, "[/INST]");
            } else {
                sb_add(b, " ");
                sb_add(b, m[i].content);
                sb_add(b, "</s>");
            }
        }
        return;
    }
    /* v1: " [INST] "; v3: "[INST] ", answers trimmed; v3-tekken: "[INST]" */
    const char *lead = t == T_MISTRAL_V1 ? " " : "";
    const char *trail = t == T_MISTRAL_V3_TEKKEN ? "" : " ";
    int in_turn = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            sb_add(b, lead);
            sb_add(b, "[INST]");
            sb_add(b, trail);
            in_turn = 1;
        }
        if (strcmp(m[i].role, "system") == 0) {
            sb_add(b, m[i].content);
            sb_add(b, "\n\n");
        } else if (strcmp(m[i].role, "user") == 0) {
            sb_add(b, m[i].content);
            sb_add(b, lead);
            sb_add(b, "[/INST]");
        } else {
            sb_add(b, trail);
            (t == T_MISTRAL_V3 ? sb_add_trim : sb_add)(b, m[i].content);
            sb_add(b, "</s>");
            in_turn = 0;
        }
    }
}

static void render_gemma(struct sb *b, const struct strix_chat_msg *m, size_t n, int add_ass)
{
    const char *sys = NULL; /* gemma has no system turn: it joins the next user turn */
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].role, "system") == 0) {
            sys = m[i].content;
            continue;
        }
        const int model = strcmp(m[i].role, "assistant") == 0;
        sb_add(b, "<start_of_turn>");
        sb_add(b, model ? "model" : m[i].role);
        sb_add(b, "\n");
        if (sys && !model) {
            struct sb t = {0};
            sb_add_trim(&t, sys);
            if (t.n > 0) {
                sb_addn(b, t.s, t.n);
                sb_add(b, "\n\n");
            }
            b->oom |= t.oom;
            util_free(t.s);
            sys = NULL;
        }
        sb_add_trim(b, m[i].content);
        sb_add(b, "<end_of_turn>\n");
    }
    if (add_ass)
        sb_add(b, "<start_of_turn>model\n");
}

static void render(struct sb *b, int t, const struct strix_chat_msg *m, size_t n, int add_ass)
{
    switch (t) {
    case T_CHATML:
    case T_PHI3:
    case T_ZEPHYR: {
        /* <|im_start|>ROLE\nTEXT<|im_end|>\n  or  <|ROLE|>\nTEXT<|end|>\n */
        const char *open = t == T_CHATML ? "<|im_start|>" : "<|";
        const char *close = t == T_CHATML ? "\n" : "|>\n";
        for (size_t i = 0; i < n; i++) {
            sb_add(b, open);
            sb_add(b, m[i].role);
            sb_add(b, close);
            sb_add(b, m[i].content);
            sb_add(b, tmpl_end[t]);
            sb_add(b, "\n");
        }
        if (add_ass) {
            sb_add(b, open);
            sb_add(b, "assistant");
            sb_add(b, close);
        }
        break;
    }
    case T_LLAMA2:
    case T_LLAMA2_SYS:
    case T_LLAMA2_SYS_BOS:
    case T_LLAMA2_SYS_STRIP: render_llama2(b, t, m, n); break;
    case T_MISTRAL_V1:
    case T_MISTRAL_V3:
    case T_MISTRAL_V3_TEKKEN:
    case T_MISTRAL_V7: render_mistral(b, t, m, n); break;
    case T_GEMMA: render_gemma(b, m, n, add_ass); break;
    case T_DEEPSEEK:
        for (size_t i = 0; i < n; i++) {
            if (strcmp(m[i].role, "system") == 0) {
                sb_add(b, m[i].content);
            } else if (strcmp(m[i].role, "user") == 0) {
                sb_add(b, "### Instruction:\n");
                sb_add(b, m[i].content);
                sb_add(b, "\n");
            } else if (strcmp(m[i].role, "assistant") == 0) {
                sb_add(b, "### Response:\n");
                sb_add(b, m[i].content);
                sb_add(b, "\n<|EOT|>\n");
            }
        }
        if (add_ass)
            sb_add(b, "### Response:\n");
        break;
    case T_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            sb_add(b, "<|start_header_id|>");
            sb_add(b, m[i].role);
            sb_add(b, "<|end_header_id|>\n\n");
            sb_add_trim(b, m[i].content);
            sb_add(b, "<|eot_id|>");
        }
        if (add_ass)
            sb_add(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case T_PLAIN:
        /* A newline before each system or user message but the first; an
         * answer continues the text directly, as the model wrote it. */
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && strcmp(m[i].role, "assistant") != 0)
                sb_add(b, "\n");
            sb_add(b, m[i].content);
        }
        break;
    default: STRIX_ASSERT(0);
    }
}

int strix_chat_apply(const char *tmpl, const struct strix_chat_msg *msgs, size_t n_msg,
                     int add_assistant, char *buf, size_t cap, size_t *n_out, strix_error *err)
{
    err_clear(err);
    if (n_out)
        *n_out = 0;
    if (buf && cap > 0)
        buf[0] = '\0';
    if (!tmpl || (n_msg > 0 && !msgs))
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    for (size_t i = 0; i < n_msg; i++)
        if (!msgs[i].role || !msgs[i].content)
            return err_set(err, STRIX_ERR_ARG, "message %zu has no role or content", i);
    const int t = detect(tmpl);
    if (t < 0)
        return err_set(err, STRIX_ERR_UNSUPPORTED, "unknown chat template");
    struct sb b = {0};
    sb_add(&b, ""); /* so that b.s is a string even for no messages */
    render(&b, t, msgs, n_msg, add_assistant);
    if (b.oom) {
        util_free(b.s);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    if (buf && cap > 0) {
        const size_t k = b.n < cap - 1 ? b.n : cap - 1;
        memcpy(buf, b.s, k);
        buf[k] = '\0';
    }
    if (n_out)
        *n_out = b.n;
    util_free(b.s);
    return STRIX_OK;
}

