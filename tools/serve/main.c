/*
 * main.c - strix-serve, the program behind `strix serve`: the server with
 * its HTTP and JSON libraries (libmicrohttpd, cJSON). They live in their
 * own program so that every other strix command starts without loading
 * them (libmicrohttpd brings GnuTLS and a dozen more libraries, several
 * milliseconds of every process). `strix serve ARGS` executes
 * `strix-serve serve ARGS` from the same folder (tools/strix.c);
 * `strix-serve ARGS` works too.
 */
#include <stdlib.h>
#include <string.h>

#include "../cli.h"

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return cmd_serve(argc, argv);
    /* strix-serve ARGS: as `strix serve ARGS` */
    char **args = malloc(((size_t)argc + 2) * sizeof *args);
    if (!args)
        die("out of memory");
    args[0] = argv[0];
    args[1] = "serve";
    for (int i = 1; i <= argc; i++) /* argv[argc] is NULL */
        args[i + 1] = argv[i];
    const int rc = cmd_serve(argc + 1, args);
    free(args);
    return rc;
}
