/* error.c — the thread-local last-error message and the status names. */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RS_ERROR_CAPACITY 1024

static _Thread_local char last_error[RS_ERROR_CAPACITY] = "no error";

const char *reason_last_error(void) { return last_error; }

const char *reason_status_name(reason_status status) {
    switch (status) {
    case REASON_OK: return "REASON_OK";
    case REASON_ERR_INVALID_ARG: return "REASON_ERR_INVALID_ARG";
    case REASON_ERR_IO: return "REASON_ERR_IO";
    case REASON_ERR_FORMAT: return "REASON_ERR_FORMAT";
    case REASON_ERR_UNSUPPORTED: return "REASON_ERR_UNSUPPORTED";
    case REASON_ERR_NOMEM: return "REASON_ERR_NOMEM";
    case REASON_ERR_BUFFER: return "REASON_ERR_BUFFER";
    case REASON_ERR_CONTEXT_FULL: return "REASON_ERR_CONTEXT_FULL";
    case REASON_ERR_DEVICE: return "REASON_ERR_DEVICE";
    case REASON_ERR_TEMPLATE: return "REASON_ERR_TEMPLATE";
    case REASON_ERR_INTERNAL: return "REASON_ERR_INTERNAL";
    default: return "REASON_ERR_UNKNOWN";
    }
}

#define RS_STR2(x) #x
#define RS_STR(x) RS_STR2(x)

const char *reason_version(void) {
    return RS_STR(REASON_VERSION_MAJOR) "." RS_STR(REASON_VERSION_MINOR) "." RS_STR(
        REASON_VERSION_PATCH);
}

reason_status rs_error(reason_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

reason_status rs_error_prefix(reason_status status, const char *fmt, ...) {
    char previous[RS_ERROR_CAPACITY];
    memcpy(previous, last_error, sizeof previous);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 2 >= sizeof last_error) return status;
    /* append ": previous", cut to fit */
    size_t at = (size_t)n;
    last_error[at++] = ':';
    last_error[at++] = ' ';
    const size_t room = sizeof last_error - at - 1;
    const size_t len = RS_MIN(strlen(previous), room);
    memcpy(last_error + at, previous, len);
    last_error[at + len] = '\0';
    return status;
}

void *rs_malloc(size_t size, const char *what) {
    void *p = malloc(size ? size : 1);
    if (!p) rs_error(REASON_ERR_NOMEM, "out of memory allocating %zu bytes for %s", size, what);
    return p;
}

void *rs_calloc(size_t n, size_t size, const char *what) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) rs_error(REASON_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}

void *rs_aligned_alloc(size_t size, const char *what) {
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 64) != 0) {
        rs_error(REASON_ERR_NOMEM, "out of memory allocating %zu bytes for %s", size, what);
        return NULL;
    }
    return p;
}

reason_status rs_copy_out(const char *src, size_t len, char *buf, size_t capacity, size_t *out_len) {
    if (out_len) *out_len = len;
    if (!buf || capacity < len + 1)
        return rs_error(REASON_ERR_BUFFER, "buffer of %zu bytes too small: %zu needed", capacity,
                        len + 1);
    if (len) memcpy(buf, src, len);
    buf[len] = '\0';
    return REASON_OK;
}
