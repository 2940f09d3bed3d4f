/* cli.c — see cli.h. */
#include "cli.h"

#include "reason.h"

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
