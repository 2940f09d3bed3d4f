/* cli.c — see cli.h. */
#include "cli.h"

#include "reason.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef REASON_DEFAULT_MODEL_DIR
#define REASON_DEFAULT_MODEL_DIR "models"
#endif
#define DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

char *cli_read_stream(FILE *f, size_t *out_len) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    if (out_len) *out_len = len;
    return buf;
}

const char *cli_default_model(void) {
    static char path[4096];
    const char *env = getenv("REASON_MODEL");
    if (env && *env) return env;
    const char *dirs[] = {"models", REASON_DEFAULT_MODEL_DIR};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dirs[i], DEFAULT_MODEL_FILE);
        if (access(path, R_OK) == 0) return path;
    }
    return NULL;
}

int cli_fail(const char *prog, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, reason_last_error());
    return 1;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_parse_int(const char *s, long min, long max, int32_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max || v < INT32_MIN || v > INT32_MAX) return -1;
    *out = (int32_t)v;
    return 0;
}

int cli_parse_float(const char *s, double min, double max, float *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= min && v <= max)) return -1;
    *out = (float)v;
    return 0;
}

int cli_parse_int_list(const char *s, long min, long max, int32_t **out) {
    if (!s || !*s) return -1;
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    int32_t *v = malloc(sizeof *v * (size_t)n);
    char *copy = strdup(s);
    int count = 0;
    if (!v || !copy) goto fail;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (count == n || cli_parse_int(item, min, max, &v[count]) != 0) goto fail;
        count++;
    }
    /* strtok_r skips empty items: "64,,256" and a trailing comma are malformed, not shorter */
    if (count != n) goto fail;
    free(copy);
    *out = v;
    return count;
fail:
    free(copy);
    free(v);
    return -1;
}

static int status_open; /* a redrawn line is on screen */

int cli_stderr_is_tty(void) {
    static int tty = -1;
    if (tty < 0) tty = isatty(STDERR_FILENO);
    return tty;
}

void cli_status(int final, const char *fmt, ...) {
    const int tty = cli_stderr_is_tty();
    if (!tty && !final) return;
    va_list ap;
    va_start(ap, fmt);
    if (tty) fputs("\r", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (tty) {
        fputs("\033[K", stderr);
        status_open = 1;
    } else {
        fputc('\n', stderr);
    }
    fflush(stderr);
}

void cli_status_done(int keep) {
    if (status_open) fputs(keep ? "\n" : "\r\033[K", stderr);
    status_open = 0;
    fflush(stderr);
}
