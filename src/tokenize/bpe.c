/*
 * bpe.c - owns the byte-level BPE pre-tokenizers, the GPT-2 byte mapping and
 * the merge-rank table (see bpe.h). vocab.c runs the merges and owns pieces.
 *
 * A pre-tokenizer is a list of regular expressions applied one after the
 * other, as in llama.cpp: each splits every fragment the previous ones left
 * into its matches and the text between them (which also stays a fragment).
 * The expressions are those of each model's tokenizer.json, written for PCRE2
 * (UTF mode, Unicode properties). Two details make them agree with llama.cpp:
 *  - \s is the Unicode White_Space set there, which has U+0085 where PCRE2's
 *    \s has not; every \s and \S is widened to take it in (see widen_ws).
 *  - expressions without \p{..} match non-ASCII whitespace as \s only (the
 *    code points are replaced before matching), so the ranges of CJK
 *    characters below leave the whitespace code points out.
 * Fragments are passed to PCRE2 alone, so a lookahead or `$` sees the
 * fragment's end (PCRE2_DOLLAR_ENDONLY: `$` is not fooled by a final "\n").
 */
#include "tokenize/bpe.h"

#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util.h"

#define MAX_RE 6
/* Bytes of a code point in bpe_split's output: 4 UTF-8 bytes, each mapped to
 * a GPT-2 code point below U+0800, written in 2 bytes. */
#define BPE_BYTES_PER_CPT 8
#define MERGES_MAX (1 << 24)

/* ---- the pre-tokenizers ------------------------------------------------------ */

/* GPT-2's expression: contractions, letters, numbers, other symbols, and
 * whitespace (a run before a non-space leaves its last character to it). */
#define RE_GPT2_CORE                                                                               \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_GPT2 RE_GPT2_CORE "|\\s+"
/* Llama 3's: case-insensitive contractions, one non-letter glued before
 * letters, digits in groups of up to three, newlines kept with symbols. */
#define RE_LLAMA3_HEAD                                                                             \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_LLAMA3_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3 RE_LLAMA3_HEAD "\\p{N}{1,3}" RE_LLAMA3_TAIL
#define RE_QWEN2 RE_LLAMA3_HEAD "\\p{N}" RE_LLAMA3_TAIL
/* Letters with case (DeepSeek LLM's list of ranges). */
#define RE_CASED_LETTERS                                                                           \
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}" \
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"           \
    "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}" \
    "\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}" \
    "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}"                  \
    "\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}"                  \
    "\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}"         \
    "\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"         \
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}"         \
    "\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"           \
    "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}"         \
    "\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"         \
    "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"                  \
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"                  \
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"               \
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"         \
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
/* CJK ideographs, U+0800..U+4E00 and Hangul (DeepSeek's), less the
 * whitespace code points inside those ranges. */
#define RE_CJK                                                                                     \
    "[\\x{800}-\\x{167F}\\x{1681}-\\x{1FFF}\\x{200B}-\\x{2027}\\x{202A}-\\x{202E}"                 \
    "\\x{2030}-\\x{205E}\\x{2060}-\\x{2FFF}\\x{3001}-\\x{9FA5}\\x{AC00}-\\x{D7FF}]+"
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"

enum {
    SET_DEFAULT,
    SET_LLAMA3,
    SET_DEEPSEEK_LLM,
    SET_DEEPSEEK3,
    SET_DEEPSEEK_CODER,
    SET_FALCON,
    SET_STARCODER,
    SET_GPT2,
    SET_QWEN2,
    SET_PORO,
    SET_VIKING,
    SET_TEKKEN,
    SET_CHAMELEON,
};

static const char *const re_sets[][MAX_RE + 1] = {
    [SET_DEFAULT] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2_CORE, "\\p{N}+", "[0-9][0-9][0-9]"},
    [SET_LLAMA3] = {RE_LLAMA3},
    [SET_DEEPSEEK_LLM] = {"[\\r\\n]", "\\s?[" RE_CASED_LETTERS "]+",
                          "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}"
                          "\\x{3001}-\\x{3002}]+",
                          "\\s+$", RE_CJK, "\\p{N}+"},
    [SET_DEEPSEEK3] = {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
                       "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|"
                       "[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|"
                       "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    [SET_DEEPSEEK_CODER] = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"},
    [SET_FALCON] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2_CORE, "[0-9][0-9][0-9]"},
    [SET_STARCODER] = {"\\p{N}", RE_GPT2_CORE},
    [SET_GPT2] = {RE_GPT2},
    [SET_QWEN2] = {RE_QWEN2},
    [SET_PORO] = {RE_PORO},
    [SET_VIKING] = {RE_PORO, "\\p{N}"},
    [SET_TEKKEN] = {"[^\\r\\n\\p{L}\\p{N}]?(?:(?=\\p{L})[^a-z])*(?:(?=\\p{L})[^A-Z])+|"
                    "[^\\r\\n\\p{L}\\p{N}]?(?:(?=\\p{L})[^a-z])+(?:(?=\\p{L})[^A-Z])*|"
                    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    [SET_CHAMELEON] = {"<sentinel:[0-9]+>", "IMGIMG[A-I]{1,4}Z", "[\\t\\n]|    |  ", "\\p{N}",
                       "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2_CORE},
};

/* tokenizer.ggml.pre values (llama.cpp's names) and their expressions. */
static const struct {
    const char *name;
    int set, ignore_merges;
} pre_defs[] = {
    {"default", SET_DEFAULT, 0},         {"llama3", SET_LLAMA3, 1},
    {"llama-v3", SET_LLAMA3, 1},         {"llama-bpe", SET_LLAMA3, 1},
    {"falcon3", SET_LLAMA3, 1},          {"dbrx", SET_LLAMA3, 0},
    {"smaug-bpe", SET_LLAMA3, 0},        {"chatglm-bpe", SET_LLAMA3, 0},
    {"deepseek-llm", SET_DEEPSEEK_LLM, 0}, {"deepseek-v3", SET_DEEPSEEK3, 0},
    {"deepseek-coder", SET_DEEPSEEK_CODER, 0}, {"falcon", SET_FALCON, 0},
    {"starcoder", SET_STARCODER, 0},     {"refact", SET_STARCODER, 0},
    {"command-r", SET_STARCODER, 0},     {"smollm", SET_STARCODER, 0},
    {"codeshell", SET_STARCODER, 0},     {"exaone", SET_STARCODER, 0},
    {"minerva-7b", SET_STARCODER, 0},    {"gpt-2", SET_GPT2, 0},
    {"mpt", SET_GPT2, 0},                {"phi-2", SET_GPT2, 0},
    {"olmo", SET_GPT2, 0},               {"jais", SET_GPT2, 0},
    {"jina-es", SET_GPT2, 0},            {"jina-de", SET_GPT2, 0},
    {"jina-v1-en", SET_GPT2, 0},         {"jina-v2-es", SET_GPT2, 0},
    {"jina-v2-de", SET_GPT2, 0},         {"jina-v2-code", SET_GPT2, 0},
    {"gigachat", SET_GPT2, 0},           {"roberta-bpe", SET_GPT2, 0},
    {"qwen2", SET_QWEN2, 0},             {"deepseek-r1-qwen", SET_QWEN2, 0},
    {"megrez", SET_QWEN2, 0},            {"stablelm2", SET_QWEN2, 0},
    {"poro-chat", SET_PORO, 0},          {"bloom", SET_PORO, 0},
    {"gpt3-finnish", SET_PORO, 0},       {"viking", SET_VIKING, 0},
    {"tekken", SET_TEKKEN, 1},           {"chameleon", SET_CHAMELEON, 0},
};
#define N_PRE (sizeof pre_defs / sizeof pre_defs[0])

const char *bpe_pre_name_at(int i)
{
    return i >= 0 && (size_t)i < N_PRE ? pre_defs[i].name : NULL;
}

/* ---- the table ----------------------------------------------------------------- */

struct merge {
    uint32_t off;    /* of LEFT RIGHT (no space) in bpe->blob */
    uint32_t n;      /* bytes of both */
    uint32_t n_left; /* bytes of LEFT */
    int32_t rank;
};

struct bpe {
    char pre[64];
    int ignore_merges;
    int n_re;
    pcre2_code *re[MAX_RE];
    pcre2_general_context *gctx;
    char *blob;
    struct merge *m;
    uint32_t n_m;
    uint32_t *hash; /* open addressing: merge index + 1, 0 = empty */
    uint32_t mask;
};

static void *re_malloc(PCRE2_SIZE n, void *data)
{
    (void)data;
    return util_malloc(n);
}

static void re_free(void *p, void *data)
{
    (void)data;
    util_free(p);
}

static uint32_t merge_hash(const char *s, size_t n, size_t n_left)
{
    uint32_t h = 2166136261u; /* FNV-1a, then the split point mixed in */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    h ^= (uint32_t)n_left * 0x9E3779B1u;
    return h ^ (h >> 15);
}

int32_t bpe_rank(const struct bpe *b, const char *s, size_t n, size_t n_left)
{
    for (uint32_t i = merge_hash(s, n, n_left) & b->mask;; i = (i + 1) & b->mask) {
        uint32_t k = b->hash[i];
        if (k == 0)
            return -1;
        const struct merge *m = &b->m[k - 1];
        if (m->n == n && m->n_left == n_left && memcmp(b->blob + m->off, s, n) == 0)
            return m->rank;
    }
}

/* Copies pat with every \s widened to take U+0085 in; out has room for
 * 12 * strlen(pat) + 1 bytes. Returns 0 if pat has \S inside a class. */
static int widen_ws(const char *pat, char *out)
{
    size_t k = 0;
    int in_class = 0;
    for (const char *p = pat; *p; p++) {
        if (*p == '\\' && (p[1] == 's' || p[1] == 'S')) {
            const char *rep = in_class ? (p[1] == 's' ? "\\s\\x{85}" : NULL)
                                       : (p[1] == 's' ? "[\\s\\x{85}]" : "[^\\s\\x{85}]");
            if (!rep)
                return 0;
            memcpy(out + k, rep, strlen(rep));
            k += strlen(rep);
            p++;
            continue;
        }
        if (*p == '\\' && p[1]) {
            out[k++] = *p++;
        } else if (*p == '[' && !in_class) {
            in_class = 1;
        } else if (*p == ']' && in_class) {
            in_class = 0;
        }
        out[k++] = *p;
    }
    out[k] = '\0';
    return 1;
}

static int compile_set(struct bpe *b, int set, strix_error *err)
{
    pcre2_compile_context *cc = pcre2_compile_context_create(b->gctx);
    if (!cc)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for the pre-tokenizer");
    int rc = STRIX_OK;
    for (int i = 0; i < MAX_RE && re_sets[set][i] && rc == STRIX_OK; i++) {
        const char *pat = re_sets[set][i];
        char *wide = util_malloc(12 * strlen(pat) + 1);
        if (!wide) {
            rc = err_set(err, STRIX_ERR_NOMEM, "out of memory for the pre-tokenizer");
            break;
        }
        STRIX_ASSERT(widen_ws(pat, wide));
        int code;
        PCRE2_SIZE at;
        b->re[i] = pcre2_compile((PCRE2_SPTR)wide, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at, cc);
        util_free(wide);
        if (!b->re[i]) {
            PCRE2_UCHAR msg[128];
            if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
                strcpy((char *)msg, "?");
            /* Out of memory is the only way a fixed expression fails. */
            rc = err_set(err, code == PCRE2_ERROR_HEAP_FAILED ? STRIX_ERR_NOMEM : STRIX_ERR_UNSUPPORTED,
                         "pre-tokenizer %s: expression %d does not compile (%s)", b->pre, i,
                         (const char *)msg);
            break;
        }
        b->n_re = i + 1;
        pcre2_jit_compile(b->re[i], PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    }
    pcre2_compile_context_free(cc);
    return rc;
}

static int build_merges(struct bpe *b, const struct gguf_kv *kv, strix_error *err)
{
    if (!kv || kv->type != GGUF_VT_ARR || kv->arr_type != GGUF_VT_STR || !kv->arr_strs)
        return err_set(err, STRIX_ERR_FORMAT, "tokenizer.ggml.merges is missing or not strings");
    if (kv->n > MERGES_MAX)
        return err_set(err, STRIX_ERR_FORMAT, "tokenizer.ggml.merges has %llu entries (at most %d)",
                       (unsigned long long)kv->n, MERGES_MAX);
    size_t bytes = 0;
    for (uint64_t i = 0; i < kv->n; i++)
        if (kv->arr_strs[i].len > UINT32_MAX / 2 ||
            !util_add_size(bytes, (size_t)kv->arr_strs[i].len, &bytes) || bytes > UINT32_MAX / 2)
            return err_set(err, STRIX_ERR_FORMAT, "tokenizer.ggml.merges is too large");
    uint32_t size = 16;
    while (size < 2 * (uint32_t)kv->n + 2)
        size *= 2;
    b->blob = util_malloc(bytes + 1);
    b->m = util_malloc(((size_t)kv->n + 1) * sizeof *b->m);
    b->hash = util_calloc(size, sizeof *b->hash);
    if (!b->blob || !b->m || !b->hash)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for %llu merges",
                       (unsigned long long)kv->n);
    b->mask = size - 1;
    uint32_t pos = 0;
    for (uint64_t i = 0; i < kv->n; i++) {
        const char *s = kv->arr_strs[i].ptr;
        const size_t n = (size_t)kv->arr_strs[i].len;
        /* The first space after the first byte splits LEFT from RIGHT. */
        const char *sp = n >= 2 ? memchr(s + 1, ' ', n - 1) : NULL;
        if (!sp || sp == s + n - 1)
            continue; /* no pair: such an entry can never apply */
        const size_t n_left = (size_t)(sp - s), n_all = n - 1;
        memcpy(b->blob + pos, s, n_left);
        memcpy(b->blob + pos + n_left, sp + 1, n - n_left - 1);
        uint32_t h = merge_hash(b->blob + pos, n_all, n_left) & b->mask;
        for (; b->hash[h]; h = (h + 1) & b->mask) {
            const struct merge *o = &b->m[b->hash[h] - 1];
            if (o->n == n_all && o->n_left == n_left && memcmp(b->blob + o->off, b->blob + pos, n_all) == 0)
                break;
        }
        if (b->hash[h])
            continue; /* a repeated pair keeps its first (best) rank */
        b->m[b->n_m] = (struct merge){pos, (uint32_t)n_all, (uint32_t)n_left, (int32_t)i};
        b->hash[h] = ++b->n_m;
        pos += (uint32_t)n_all;
    }
    return STRIX_OK;
}

int bpe_create(const char *pre, size_t n_pre, const struct gguf_kv *merges, struct bpe **out,
               strix_error *err)
{
    if (!out)
        return err_set(err, STRIX_ERR_ARG, "bpe_create: NULL argument");
    *out = NULL;
    if (!pre || n_pre == 0)
        pre = "default", n_pre = 7;
    size_t i = 0;
    while (i < N_PRE && !(strlen(pre_defs[i].name) == n_pre && memcmp(pre_defs[i].name, pre, n_pre) == 0))
        i++;
    if (i == N_PRE)
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "pre-tokenizer '%.*s' (tokenizer.ggml.pre) is not supported; supported: %s",
                       (int)(n_pre < 64 ? n_pre : 64), pre, BPE_PRE_NAMES);
    struct bpe *b = util_calloc(1, sizeof *b);
    if (!b)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory for the tokenizer");
    strcpy(b->pre, pre_defs[i].name);
    b->ignore_merges = pre_defs[i].ignore_merges;
    int rc = STRIX_OK;
    if (!(b->gctx = pcre2_general_context_create(re_malloc, re_free, NULL)))
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory for the pre-tokenizer");
    if (rc == STRIX_OK)
        rc = build_merges(b, merges, err);
    if (rc == STRIX_OK)
        rc = compile_set(b, pre_defs[i].set, err);
    if (rc) {
        bpe_free(b);
        return rc;
    }
    *out = b;
    return STRIX_OK;
}

void bpe_free(struct bpe *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->n_re; i++)
        pcre2_code_free(b->re[i]);
    pcre2_general_context_free(b->gctx);
    util_free(b->blob);
    util_free(b->m);
    util_free(b->hash);
    util_free(b);
}

int bpe_merge_strings(const struct bpe *b, char **blob, const char ***strs, uint32_t *n)
{
    size_t bytes = 0;
    for (uint32_t i = 0; i < b->n_m; i++)
        bytes += (size_t)b->m[i].n + 2;
    *blob = util_malloc(bytes + 1);
    *strs = util_malloc(((size_t)b->n_m + 1) * sizeof **strs);
    *n = b->n_m;
    if (!*blob || !*strs) {
        util_free(*blob);
        util_free((void *)*strs);
        *blob = NULL;
        *strs = NULL;
        return STRIX_ERR_NOMEM;
    }
    char *p = *blob;
    for (uint32_t i = 0; i < b->n_m; i++) {
        const struct merge *m = &b->m[i];
        (*strs)[i] = p;
        memcpy(p, b->blob + m->off, m->n_left);
        p[m->n_left] = ' ';
        memcpy(p + m->n_left + 1, b->blob + m->off + m->n_left, m->n - m->n_left);
        p[m->n + 1] = '\0';
        p += m->n + 2;
    }
    return STRIX_OK;
}

const char *bpe_pre_name(const struct bpe *b)
{
    return b ? b->pre : "";
}

int bpe_ignore_merges(const struct bpe *b)
{
    return b && b->ignore_merges;
}

/* ---- bytes and code points --------------------------------------------------------- */

static int printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t bpe_byte_to_cpt(uint8_t byte)
{
    if (printable(byte))
        return byte;
    /* 0x00-0x20 -> 256..288, 0x7F-0xA0 -> 289..322, 0xAD -> 323 */
    return byte <= 0x20 ? 256u + byte : byte <= 0xA0 ? 289u + (byte - 0x7Fu) : 323u;
}

int bpe_cpt_to_byte(uint32_t cpt)
{
    if (cpt < 256)
        return printable(cpt) ? (int)cpt : -1;
    if (cpt > 323)
        return -1;
    uint32_t k = cpt - 256;
    return k < 33 ? (int)k : k < 67 ? (int)(0x7F + k - 33) : 0xAD;
}

size_t bpe_utf8_decode(const uint8_t *s, size_t n, uint32_t *cpt)
{
    const uint8_t c = s[0];
    const size_t len = c < 0x80 ? 1 : !(c & 0x40) ? 0 : !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
    static const uint8_t lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    if (len == 0 || len > n)
        goto bad;
    uint32_t v = c & lead_mask[len];
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto bad;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v > 0x10FFFF)
        goto bad; /* not encodable again (llama.cpp fails on it) */
    *cpt = v;
    return len;
bad:
    *cpt = 0xFFFD;
    return 1;
}

/* Encodes any code point up to U+10FFFF (surrogates too) as llama.cpp does. */
static size_t put_utf8(char *d, uint32_t c)
{
    if (c < 0x80) {
        d[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        d[0] = (char)(0xC0 | c >> 6);
        d[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        d[0] = (char)(0xE0 | c >> 12);
        d[1] = (char)(0x80 | (c >> 6 & 0x3F));
        d[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | c >> 18);
    d[1] = (char)(0x80 | (c >> 12 & 0x3F));
    d[2] = (char)(0x80 | (c >> 6 & 0x3F));
    d[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- splitting ------------------------------------------------------------------------ */

void bpe_words_free(struct bpe_words *w)
{
    if (!w)
        return;
    util_free(w->buf);
    util_free(w->end);
    memset(w, 0, sizeof *w);
}

/* The index k in [lo, hi] with off[k] == x (x is a character boundary). */
static uint32_t cpt_at(const uint32_t *off, uint32_t lo, uint32_t hi, uint32_t x)
{
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (off[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int words_reserve(struct bpe_words *w, size_t n_buf, size_t n_end)
{
    if (n_buf > w->cap_buf) {
        char *p = util_realloc(w->buf, n_buf);
        if (!p)
            return STRIX_ERR_NOMEM;
        w->buf = p;
        w->cap_buf = n_buf;
    }
    if (n_end > w->cap_end) {
        size_t bytes;
        size_t *p = util_mul_size(n_end, sizeof *p, &bytes) ? util_realloc(w->end, bytes) : NULL;
        if (!p)
            return STRIX_ERR_NOMEM;
        w->end = p;
        w->cap_end = n_end;
    }
    return STRIX_OK;
}

int bpe_split(const struct bpe *b, const char *text, size_t n, struct bpe_words *w,
              strix_error *err)
{
    w->n = 0;
    if (n == 0)
        return STRIX_OK;
    if (n > (size_t)UINT32_MAX / 8)
        return err_set(err, STRIX_ERR_ARG, "text of %zu bytes is too long to tokenize", n);
    /* Code points, and the UTF-8 PCRE2 sees: the same, except that surrogates
     * (which llama.cpp lets through) become U+FFFF, like them no letter,
     * number, mark, punctuation, symbol or space. off[k]: byte of code point k. */
    uint32_t *cpt = util_malloc(n * sizeof *cpt), *off = util_malloc((n + 1) * sizeof *off);
    uint32_t *bd = util_malloc((n + 1) * sizeof *bd), *nbd = util_malloc((n + 1) * sizeof *nbd);
    char *u8 = util_malloc(3 * n + 1);
    pcre2_match_data *md = NULL;
    int rc = STRIX_OK;
    uint32_t n_cpt = 0, n_bd = 0;
    if (!cpt || !off || !bd || !nbd || !u8)
        goto nomem;
    uint32_t nb = 0;
    for (size_t i = 0; i < n; n_cpt++) {
        uint32_t c;
        i += bpe_utf8_decode((const uint8_t *)text + i, n - i, &c);
        cpt[n_cpt] = c;
        off[n_cpt] = nb;
        nb += (uint32_t)put_utf8(u8 + nb, c >= 0xD800 && c <= 0xDFFF ? 0xFFFF : c);
    }
    off[n_cpt] = nb;
    /* Fragments are [bd[i], bd[i+1]) in code points. */
    bd[n_bd++] = 0;
    bd[n_bd++] = n_cpt;
    for (int r = 0; r < b->n_re; r++) {
        pcre2_match_data_free(md);
        if (!(md = pcre2_match_data_create_from_pattern(b->re[r], b->gctx)))
            goto nomem;
        uint32_t n_new = 0;
        nbd[n_new++] = 0;
        for (uint32_t f = 0; f + 1 < n_bd; f++) {
            const uint32_t a = bd[f], z = bd[f + 1];
            PCRE2_SPTR subj = (PCRE2_SPTR)u8 + off[a];
            const PCRE2_SIZE len = off[z] - off[a];
            PCRE2_SIZE start = 0;
            while (start < len) {
                int m = pcre2_match(b->re[r], subj, len, start, PCRE2_NO_UTF_CHECK, md, NULL);
                if (m == PCRE2_ERROR_JIT_STACKLIMIT)
                    m = pcre2_match(b->re[r], subj, len, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                                    md, NULL);
                if (m == PCRE2_ERROR_NOMATCH)
                    break;
                if (m < 0) {
                    PCRE2_UCHAR msg[128];
                    if (pcre2_get_error_message(m, msg, sizeof msg) < 0)
                        strcpy((char *)msg, "?");
                    rc = err_set(err, m == PCRE2_ERROR_NOMEMORY ? STRIX_ERR_NOMEM : STRIX_ERR_ARG,
                                 "pre-tokenizer %s failed on the text (%s)", b->pre,
                                 (const char *)msg);
                    goto done;
                }
                const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                if (ov[1] <= ov[0]) { /* empty: no word; go on from the next character */
                    start = ov[0] + 1;
                    while (start < len && (subj[start] & 0xC0) == 0x80)
                        start++;
                    continue;
                }
                const uint32_t s = cpt_at(off, a, z, off[a] + (uint32_t)ov[0]);
                const uint32_t e = cpt_at(off, a, z, off[a] + (uint32_t)ov[1]);
                if (s > nbd[n_new - 1])
                    nbd[n_new++] = s;
                nbd[n_new++] = e;
                start = ov[1];
            }
            if (z > nbd[n_new - 1])
                nbd[n_new++] = z;
        }
        uint32_t *t = bd;
        bd = nbd;
        nbd = t;
        n_bd = n_new;
    }
    /* Each code point's UTF-8 bytes, each byte as its GPT-2 code point: up to
     * 4 bytes, each written as a code point below U+0800 (2 bytes), so at most
     * BPE_BYTES_PER_CPT = 8 bytes per code point (n_cpt <= n < 2^32 / 8). */
    if (words_reserve(w, BPE_BYTES_PER_CPT * (size_t)n_cpt + 1, n_bd))
        goto nomem;
    size_t k = 0;
    for (uint32_t f = 0; f + 1 < n_bd; f++) {
        for (uint32_t i = bd[f]; i < bd[f + 1]; i++) {
            char raw[4];
            size_t nr = put_utf8(raw, cpt[i]);
            for (size_t j = 0; j < nr; j++)
                k += put_utf8(w->buf + k, bpe_byte_to_cpt((uint8_t)raw[j]));
            STRIX_ASSERT(k <= BPE_BYTES_PER_CPT * (size_t)(i + 1));
        }
        w->end[w->n++] = k;
    }
    goto done;
nomem:
    rc = err_set(err, STRIX_ERR_NOMEM, "out of memory tokenizing %zu bytes", n);
done:
    pcre2_match_data_free(md);
    util_free(cpt);
    util_free(off);
    util_free(bd);
    util_free(nbd);
    util_free(u8);
    return rc;
}
