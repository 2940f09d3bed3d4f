/* cli.h — small helpers shared by the example binaries. */
#ifndef REASON_CLI_H
#define REASON_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Reads all of a stream into a NUL-terminated malloc'd buffer; NULL on failure. */
char *cli_read_stream(FILE *f, size_t *out_len);
/* Path of the default model (models/ of the source tree, or $REASON_MODEL); NULL when absent. */
const char *cli_default_model(void);
/* Prints "<prog>: <what>: <library message>" to stderr and returns 1 (an exit code). */
int cli_fail(const char *prog, const char *what);
/* Monotonic seconds. */
double cli_now(void);

/* Strict number parsing for options: the whole string must be a number within [min, max].
 * 0 on success, -1 otherwise (out untouched). */
int cli_parse_int(const char *s, long min, long max, int32_t *out);
int cli_parse_float(const char *s, double min, double max, float *out);
/* Parses a comma-separated list of integers in [min, max] ("64,256") into a malloc'd array;
 * returns the count, or -1 on a malformed list or out of memory. */
int cli_parse_int_list(const char *s, long min, long max, int32_t **out);

/* A one-line status on stderr. On a terminal it is redrawn in place (\r, cleared to the end of the
 * line); otherwise only lines marked final are printed, one per line, so logs stay readable. */
int cli_stderr_is_tty(void);
void cli_status(int final, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends a redrawn status line on a terminal, kept (a newline) or erased, so later output starts
 * on a clean line. */
void cli_status_done(int keep);

#endif
