/*
 * vocab_special.c - special tokens: which tokens are (control, user-defined,
 * unknown), the type and whitespace changes llama.cpp's loader makes by
 * token text and model name, and the cutting of special tokens out of a text
 * before the tokenizers see it.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenize/vocab_impl.h"

static int cmp_user(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int vocab_is_special(int type)
{
    return type == STRIX_TOKEN_CONTROL || type == STRIX_TOKEN_USER_DEFINED ||
           type == STRIX_TOKEN_UNKNOWN;
}

/* Special tokens are split out of the text before BPE, longest first
 * (llama.cpp's tokenizer_st_partition): keys (UINT32_MAX - len) << 32 | id.
 * Called once the types are final. */
int vocab_special_list(struct vocab *v, strix_error *err)
{
    v->n_special = 0;
    for (int i = 0; i < v->n; i++)
        v->n_special += vocab_is_special(v->toks[i].type) && v->toks[i].len > 0;
    if (v->n_special == 0)
        return STRIX_OK;
    if (!(v->special = util_malloc((size_t)v->n_special * sizeof *v->special)))
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for the vocabulary index");
    for (int i = 0, k = 0; i < v->n; i++)
        if (vocab_is_special(v->toks[i].type) && v->toks[i].len > 0)
            v->special[k++] = (uint64_t)(UINT32_MAX - v->toks[i].len) << 32 | (uint32_t)i;
    qsort(v->special, (size_t)v->n_special, sizeof *v->special, cmp_user);
    return STRIX_OK;
}

static void set_type(struct vocab *v, const char *piece, int type)
{
    strix_token id = vocab_find(v, piece, strlen(piece));
    if (id >= 0)
        v->toks[id].type = type;
}

/*
 * What llama.cpp's loader changes in the types the file gives: tokens it
 * takes for end of generation (and, when the file names none, for end of
 * turn and fill-in-the-middle) by their text become control tokens; Phi-3's
 * special tokens swallow the whitespace after them, Jina v2's <mask> the
 * whitespace before it. (llama.cpp takes the first name it meets in a hash
 * map where several could serve for one role; here every such name counts.)
 */
void vocab_special_fix_types(struct vocab *v, const gguf *g)
{
    static const char *const eog[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                      "<|endoftext|>", "<|eom_id|>", "<EOT>"};
#define FW_BAR "\xef\xbd\x9c" /* U+FF5C FULLWIDTH VERTICAL LINE, DeepSeek's */
    static const struct {
        const char *key;
        const char *names[5];
    } roles[] = {
        {"tokenizer.ggml.eot_token_id", {"<" FW_BAR "end" SPACE_ESC "of" SPACE_ESC "sentence" FW_BAR ">"}},
        {"tokenizer.ggml.fim_pre_token_id",
         {"<|fim_prefix|>", "<fim-prefix>", "<" FW_BAR "fim" SPACE_ESC "begin" FW_BAR ">", "<PRE>"}},
        {"tokenizer.ggml.fim_suf_token_id",
         {"<|fim_suffix|>", "<fim-suffix>", "<" FW_BAR "fim" SPACE_ESC "hole" FW_BAR ">", "<SUF>"}},
        {"tokenizer.ggml.fim_mid_token_id",
         {"<|fim_middle|>", "<fim-middle>", "<" FW_BAR "fim" SPACE_ESC "end" FW_BAR ">", "<MID>"}},
        {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<PAD>"}},
        {"tokenizer.ggml.fim_rep_token_id", {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}},
        {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>"}},
    };
#undef FW_BAR
    for (size_t i = 0; i < sizeof eog / sizeof eog[0]; i++)
        set_type(v, eog[i], STRIX_TOKEN_CONTROL);
    for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) {
        if (gguf_find_kv(g, roles[r].key))
            continue;
        for (int k = 0; k < 5 && roles[r].names[k]; k++)
            set_type(v, roles[r].names[k], STRIX_TOKEN_CONTROL);
    }
    /* The per-model whitespace stripping (lower-cased general.name). */
    struct gguf_str name = {0}, pre = {0};
    char low[128] = {0};
    if (gguf_get_str(g, "general.name", 0, &name, NULL) == STRIX_OK)
        for (size_t i = 0; i < name.len && i + 1 < sizeof low; i++)
            low[i] = (char)(name.ptr[i] >= 'A' && name.ptr[i] <= 'Z' ? name.ptr[i] + 32 : name.ptr[i]);
    if (gguf_get_str(g, "tokenizer.ggml.pre", 0, &pre, NULL) == STRIX_OK && pre.len >= 10 &&
        memcmp(pre.ptr, "jina-v2-", 8) == 0 &&
        ((pre.len == 10 && (memcmp(pre.ptr + 8, "de", 2) == 0 || memcmp(pre.ptr + 8, "es", 2) == 0)) ||
         (pre.len == 12 && memcmp(pre.ptr + 8, "code", 4) == 0))) {
        strix_token id = vocab_find(v, "<mask>", 6);
        if (id >= 0)
            v->toks[id].strip |= STRIP_LEFT;
    } else if (strstr(low, "phi-3") || strstr(low, "phi3")) {
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (int i = 0; i < v->n; i++)
            if (vocab_is_special(v->toks[i].type))
                v->toks[i].strip |= STRIP_RIGHT;
        strix_token id = vocab_find(v, "</s>", 4);
        if (id >= 0)
            v->toks[id].strip |= STRIP_RIGHT;
        for (int i = 0; i < 3; i++)
            if ((id = vocab_find(v, keep[i], strlen(keep[i]))) >= 0)
                v->toks[id].strip &= (uint8_t)~STRIP_RIGHT;
    }
}


static const char *find_mem(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0 || nn > hn)
        return NULL;
    const char *last = h + (hn - nn);
    for (const char *p = h; p <= last; p++) {
        p = memchr(p, nd[0], (size_t)(last - p) + 1);
        if (!p)
            return NULL;
        if (memcmp(p, nd, nn) == 0)
            return p;
    }
    return NULL;
}

static int push_frag(struct frags *f, size_t off, size_t len, strix_token tok)
{
    struct frag *a = vocab_grow(f->a, &f->cap, f->n + 1, sizeof *a);
    if (!a)
        return STRIX_ERR_NOMEM;
    f->a = a;
    a[f->n++] = (struct frag){off, len, tok};
    return STRIX_OK;
}

static int is_ascii_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* llama.cpp's tokenizer_st_partition: special tokens are cut out of the text
 * first, longest piece first, each at every non-overlapping occurrence, left
 * to right. User-defined tokens always are; control and unknown tokens only
 * with parse_special (otherwise their text is tokenized as text). A token
 * marked so takes the ASCII whitespace before or after it. */
int vocab_special_partition(const struct vocab *v, const char *text, size_t n, int parse_special,
                     struct frags *out)
{
    struct frags f = {0}, g = {0}, x;
    if (push_frag(&f, 0, n, -1))
        return STRIX_ERR_NOMEM;
    for (int u = 0; u < v->n_special; u++) {
        const strix_token id = (strix_token)(v->special[u] & 0xffffffff);
        const struct tok *tk = &v->toks[id];
        if (!parse_special && tk->type != STRIX_TOKEN_USER_DEFINED)
            continue;
        const char *p = vocab_text(v, id), *hit;
        size_t k = tk->len;
        g.n = 0;
        for (size_t i = 0; i < f.n; i++) {
            size_t off = f.a[i].off, end = f.a[i].off + f.a[i].len;
            while (f.a[i].tok < 0 && (hit = find_mem(text + off, end - off, p, k))) {
                size_t at = (size_t)(hit - text), left = at;
                if (tk->strip & STRIP_LEFT)
                    while (left > off && is_ascii_space(text[left - 1]))
                        left--;
                if ((left > off && push_frag(&g, off, left - off, -1)) || push_frag(&g, at, k, id))
                    goto nomem;
                off = at + k;
                if (tk->strip & STRIP_RIGHT)
                    while (off < end && is_ascii_space(text[off]))
                        off++;
            }
            if (off < end && push_frag(&g, off, end - off, f.a[i].tok))
                goto nomem;
        }
        x = f, f = g, g = x;
    }
    util_free(g.a);
    *out = f;
    return STRIX_OK;
nomem:
    util_free(f.a);
    util_free(g.a);
    return STRIX_ERR_NOMEM;
}

