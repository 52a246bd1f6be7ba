/*
 * quantize.c - `strix quantize IN OUT.gguf TYPE`: a model re-encoded to one
 * of the quantized types or mixes (see strix_model_quantize in strix.h),
 * printing the type chosen for each class of tensor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The header goes out with the first line, so that an error stays one line. */
static void log_line(void *user, const char *line)
{
    const char **header = user;
    if (*header) {
        fputs(*header, stderr);
        *header = NULL;
    }
    fprintf(stderr, "  %s\n", line);
}

int cmd_quantize(int argc, char **argv)
{
    /* positional IN OUT TYPE anywhere among the options */
    const char *pos[3];
    int n_pos = 0;
    char **rest = malloc((size_t)argc * sizeof *rest);
    if (!rest)
        die("out of memory");
    int n_rest = 0;
    rest[n_rest++] = argv[0];
    rest[n_rest++] = argv[1];
    for (int i = 2; i < argc; i++) {
        if (is_help(argv[i])) {
            usage("quantize", stdout);
            exit(0);
        }
        const int takes_value = strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "--threads") == 0 ||
                                strcmp(argv[i], "--vocab") == 0 || strcmp(argv[i], "-z") == 0;
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            rest[n_rest++] = argv[i];
            if (takes_value && i + 1 < argc)
                rest[n_rest++] = argv[++i];
        } else if (n_pos < 3) {
            pos[n_pos++] = argv[i];
        } else {
            die("quantize takes IN OUT.gguf TYPE; '%s' is one too many", argv[i]);
        }
    }
    if (n_pos != 3)
        die("usage: strix quantize IN OUT.gguf TYPE [--vocab TOKENIZER.bin] [-t THREADS] [--pure]");
    struct opts o;
    parse_opts(n_rest, rest, &o, " vocab t pure ");
    o.model = pos[0];
    refuse_overwrite(pos[1], (const char *const[]){o.model, o.vocab}, 2);
    strix_model *m = load_model(&o, 0);
    struct strix_quantize_params qp = strix_quantize_default_params();
    qp.n_threads = o.n_threads;
    qp.pure = o.pure;
    char header[1024];
    snprintf(header, sizeof header, "quantizing %s to %s as %s:\n", pos[0], pos[1], pos[2]);
    const char *pending = header;
    qp.log = log_line;
    qp.log_user = &pending;
    strix_error err;
    const double t0 = now();
    if (strix_model_quantize(m, pos[1], pos[2], &qp, &err))
        die("%s", err.msg);
    fprintf(stderr, "wrote %s in %.1f s\n", pos[1], now() - t0);
    strix_model_free(m);
    free(rest);
    return 0;
}
