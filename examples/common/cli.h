/* cli.h — small helpers shared by the example binaries. */
#ifndef REASON_CLI_H
#define REASON_CLI_H

#include <stddef.h>
#include <stdio.h>

/* Reads all of a stream into a NUL-terminated malloc'd buffer; NULL on failure. */
char *cli_read_stream(FILE *f, size_t *out_len);
/* Path of the default model (models/ of the source tree, or $REASON_MODEL); NULL when absent. */
const char *cli_default_model(void);
/* Prints "<prog>: <what>: <library message>" to stderr and returns 1 (an exit code). */
int cli_fail(const char *prog, const char *what);
/* Monotonic seconds. */
double cli_now(void);

#endif
