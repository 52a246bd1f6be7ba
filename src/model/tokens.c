/*
 * tokens.c - strix.h's token functions over a model (strix_tokenize,
 * strix_detokenize, strix_token_*, strix_vocab_*): each takes the model's
 * vocabulary (NULL when the model has none, which every vocab_* function
 * accepts) and calls src/tokenize.
 */
#include "model/model.h"

static const struct vocab *vocab_of(const strix_model *m)
{
    return m ? model_vocab(m) : NULL;
}

int strix_vocab_size(const strix_model *model)
{
    return vocab_n(vocab_of(model));
}
strix_token strix_token_bos(const strix_model *model)
{
    return vocab_bos(vocab_of(model));
}
strix_token strix_token_eos(const strix_model *model)
{
    return vocab_eos(vocab_of(model));
}

const char *strix_token_piece(const strix_model *model, strix_token id)
{
    return vocab_piece(vocab_of(model), id);
}

int strix_token_type(const strix_model *model, strix_token id)
{
    return vocab_type(vocab_of(model), id);
}

int strix_tokenize_ex(const strix_model *model, const char *text, size_t n_text, int flags,
                      strix_token *out, int cap, int *n_out, strix_error *err)
{
    const struct vocab *v = vocab_of(model);
    if (!v && n_out)
        *n_out = 0;
    if (!v)
        return err_set(err, STRIX_ERR_ARG, "the model has no vocabulary");
    return vocab_tokenize(v, text, n_text, flags, out, cap, n_out, err);
}

int strix_tokenize(const strix_model *model, const char *text, size_t n_text, int add_bos,
                   strix_token *out, int cap, int *n_out, strix_error *err)
{
    return strix_tokenize_ex(model, text, n_text, add_bos ? STRIX_TOKENIZE_ADD_BOS : 0, out, cap,
                             n_out, err);
}

const char *strix_vocab_model(const strix_model *model)
{
    return vocab_model_name(vocab_of(model));
}

const char *strix_vocab_pre(const strix_model *model)
{
    return vocab_pre_name(vocab_of(model));
}

int strix_vocab_add_bos(const strix_model *model)
{
    return vocab_add_bos(vocab_of(model));
}

int strix_token_to_text(const strix_model *model, strix_token prev, strix_token id, char *buf,
                        int cap)
{
    return vocab_token_to_text(vocab_of(model), prev, id, buf, cap);
}

int strix_detokenize(const strix_model *model, const strix_token *ids, int n, char *buf, size_t cap)
{
    const struct vocab *v = vocab_of(model);
    if (!v && buf && cap > 0)
        buf[0] = '\0';
    return vocab_detokenize(v, ids, n, buf, cap);
}

