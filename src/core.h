/* core.h — what every source file needs: the public header, error reporting, checked sizes. */
#ifndef REASON_CORE_H
#define REASON_CORE_H

#include "reason.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RS_INTERNAL __attribute__((visibility("hidden")))

#if defined(__GNUC__)
#define RS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RS_PRINTF(a, b)
#endif

/* Records a formatted message as this thread's last error and returns status, so that failures
 * read `return rs_error(REASON_ERR_FORMAT, "tensor '%s' at offset %llu: ...", ...);`. */
RS_INTERNAL reason_status rs_error(reason_status status, const char *fmt, ...) RS_PRINTF(2, 3);
/* Prepends "prefix: " to the current message (adds where-context as an error travels up). */
RS_INTERNAL reason_status rs_error_prefix(reason_status status, const char *fmt, ...)
    RS_PRINTF(2, 3);

#define RS_TRY(expr)                                                                               \
    do {                                                                                           \
        reason_status rs_try_status_ = (expr);                                                     \
        if (rs_try_status_ != REASON_OK) return rs_try_status_;                                    \
    } while (0)

#define RS_CHECK_ARG(cond)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return rs_error(REASON_ERR_INVALID_ARG, "%s: invalid argument (%s)", __func__, #cond); \
    } while (0)

/* Overflow-checked size arithmetic: false when the result does not fit. */
static inline bool rs_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool rs_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* Allocation helpers that set the last error on failure. */
RS_INTERNAL void *rs_malloc(size_t size, const char *what);
RS_INTERNAL void *rs_calloc(size_t n, size_t size, const char *what);
RS_INTERNAL void *rs_aligned_alloc(size_t size, const char *what); /* 64-byte aligned; free() */

/* Copies src into (buf, capacity) with a NUL; REASON_ERR_BUFFER with the needed length (without
 * the NUL) when it does not fit. */
RS_INTERNAL reason_status rs_copy_out(const char *src, size_t len, char *buf, size_t capacity,
                                      size_t *out_len);

#define RS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RS_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
