/*
 * generate.c - the smallest complete use of the strix library: load a model,
 * tokenize a prompt, decode it as one batch (of any length), then sample
 * token by token and print the text as it comes, until EOS, the token
 * budget or a full context (STRIX_ERR_FULL). Build: make examples; run:
 *
 *   build/examples/generate models/stories260K.gguf "Once upon a time" 50
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strix.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT N_TOKENS\n", argv[0]);
        return 1;
    }
    const int n_new = atoi(argv[3]);
    strix_error err;
    strix_model *model = NULL;
    strix_context *ctx = NULL;
    strix_sampler *smp = NULL;
    strix_token ids[512];
    int n = 0, rc = 1;

    /* parameters: start from the defaults, change what you need */
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = 256;
    if (strix_model_load(argv[1], NULL, &model, &err) ||
        strix_context_create(model, &cp, &ctx, &err) ||
        strix_tokenize(model, argv[2], strlen(argv[2]), 1, ids, 512, &n, &err))
        goto done;
    struct strix_sampler_params sp = strix_sampler_default_params();
    sp.temperature = 0; /* greedy */
    if (strix_sampler_create(&sp, strix_vocab_size(model), &smp, &err) ||
        strix_decode(ctx, ids, NULL, n, NULL, &err)) /* the prompt, one batch */
        goto done;

    fputs(argv[2], stdout);
    strix_token prev = ids[n - 1];
    for (int i = 0; i < n_new; i++) {
        strix_token tok = strix_sampler_sample(smp, strix_get_logits(ctx, -1));
        if (tok == strix_token_eos(model) || tok == strix_token_bos(model))
            break;
        char piece[64];
        int len = strix_token_to_text(model, prev, tok, piece, sizeof piece);
        fwrite(piece, 1, (size_t)(len < (int)sizeof piece ? len : (int)sizeof piece), stdout);
        prev = tok;
        int drc = strix_decode(ctx, &tok, NULL, 1, NULL, &err); /* one more position */
        if (drc == STRIX_ERR_FULL)
            break; /* the context is full: a normal end */
        if (drc)
            goto done;
    }
    putchar('\n');
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "error: %s\n", err.msg);
    strix_sampler_free(smp);
    strix_context_free(ctx);
    strix_model_free(model);
    return rc;
}
