/* trace_text.c — the byte-level pieces of the reasoning runtime: growing buffers, the tag and
 * stop-string matcher, the UTF-8 assembler and the loop detector (interfaces in trace.h). */
#include "trace.h"

#include "utf8.h"

#include <stdlib.h>
#include <string.h>

reason_status byte_buf_append(byte_buf *b, const void *bytes, size_t n) {
    size_t need;
    if (!rs_add_size(b->len, n + 1, &need))
        return rs_error(REASON_ERR_NOMEM, "out of memory: text of %zu bytes", b->len);
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) return rs_error(REASON_ERR_NOMEM, "out of memory: text buffer of %zu bytes", cap);
        b->data = data;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
    return REASON_OK;
}

void byte_buf_free(byte_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- matcher --------------------------------------------------------------------------------- */

reason_status matcher_init(text_matcher *m, const char *const *patterns, int32_t n_patterns) {
    memset(m, 0, sizeof *m);
    m->patterns = patterns;
    m->n_patterns = n_patterns;
    for (int32_t i = 0; i < n_patterns; i++) m->max_len = RS_MAX(m->max_len, strlen(patterns[i]));
    if (m->max_len == 0) return REASON_OK;
    m->held = rs_malloc(m->max_len, "matcher");
    m->held_tok = rs_malloc(m->max_len * sizeof *m->held_tok, "matcher");
    m->held_first = rs_malloc(m->max_len, "matcher");
    if (!m->held || !m->held_tok || !m->held_first) {
        matcher_free(m);
        return REASON_ERR_NOMEM;
    }
    return REASON_OK;
}

void matcher_free(text_matcher *m) {
    free(m->held);
    free(m->held_tok);
    free(m->held_first);
    memset(m, 0, sizeof *m);
}

void matcher_reset(text_matcher *m) { m->n_held = 0; }

/* held[from..n_held) is a prefix of some pattern */
static bool held_is_prefix(const text_matcher *m, size_t from) {
    const size_t n = m->n_held - from;
    for (int32_t p = 0; p < m->n_patterns; p++) {
        const size_t len = strlen(m->patterns[p]);
        if (n <= len && memcmp(m->patterns[p], m->held + from, n) == 0) return true;
    }
    return false;
}

int32_t matcher_feed(text_matcher *m, char b, int32_t tok, int32_t first, byte_buf *out) {
    if (m->n_patterns == 0) return byte_buf_append(out, &b, 1) == REASON_OK ? -1 : -2;
    /* held is a proper prefix of some pattern, so there is room for one more byte */
    m->held[m->n_held] = b;
    m->held_tok[m->n_held] = tok;
    m->held_first[m->n_held] = (uint8_t)(first != 0);
    m->n_held++;
    /* the earliest-ending match: a pattern that is a suffix of the held bytes */
    for (int32_t p = 0; p < m->n_patterns; p++) {
        const size_t len = strlen(m->patterns[p]);
        if (len > m->n_held || memcmp(m->patterns[p], m->held + m->n_held - len, len) != 0)
            continue;
        const size_t start = m->n_held - len;
        if (byte_buf_append(out, m->held, start) != REASON_OK) return -2;
        m->match_tok = m->held_tok[start];
        m->match_tok_first = m->held_first[start];
        m->n_held = 0;
        return p;
    }
    size_t drop = 0;
    while (drop < m->n_held && !held_is_prefix(m, drop)) drop++;
    if (drop) {
        if (byte_buf_append(out, m->held, drop) != REASON_OK) return -2;
        m->n_held -= drop;
        memmove(m->held, m->held + drop, m->n_held);
        memmove(m->held_tok, m->held_tok + drop, m->n_held * sizeof *m->held_tok);
        memmove(m->held_first, m->held_first + drop, m->n_held);
    }
    return -1;
}

reason_status matcher_flush(text_matcher *m, byte_buf *out) {
    reason_status st = byte_buf_append(out, m->held, m->n_held);
    m->n_held = 0;
    return st;
}

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

static reason_status put_replacement(byte_buf *out) {
    static const char fffd[3] = {'\xEF', '\xBF', '\xBD'};
    return byte_buf_append(out, fffd, 3);
}

/* Appends the valid characters of s[0..n) to out; returns in *rest how many trailing bytes form a
 * truncated character (only when !final). */
static reason_status utf8_emit(const uint8_t *s, size_t n, bool final, byte_buf *out,
                               size_t *rest) {
    size_t i = 0, run = 0; /* run: start of valid bytes not yet appended */
    *rest = 0;
    while (i < n) {
        uint32_t cp;
        const int k = utf8_next(s + i, n - i, &cp);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        RS_TRY(byte_buf_append(out, s + run, i - run));
        if (k == 0 && !final) {
            *rest = n - i;
            return REASON_OK;
        }
        RS_TRY(put_replacement(out));
        i += k == 0 ? n - i : (size_t)(-k);
        run = i;
    }
    return byte_buf_append(out, s + run, i - run);
}

reason_status utf8_stream_push(utf8_stream *u, const char *bytes, size_t n, bool final,
                               byte_buf *out) {
    if (u->n_pending == 0) {
        size_t rest;
        RS_TRY(utf8_emit((const uint8_t *)bytes, n, final, out, &rest));
        memcpy(u->pending, bytes + n - rest, rest);
        u->n_pending = rest;
        return REASON_OK;
    }
    u->scratch.len = 0;
    RS_TRY(byte_buf_append(&u->scratch, u->pending, u->n_pending));
    RS_TRY(byte_buf_append(&u->scratch, bytes, n));
    size_t rest;
    RS_TRY(utf8_emit((const uint8_t *)u->scratch.data, u->scratch.len, final, out, &rest));
    memcpy(u->pending, u->scratch.data + u->scratch.len - rest, rest);
    u->n_pending = rest;
    return REASON_OK;
}

void utf8_stream_free(utf8_stream *u) {
    byte_buf_free(&u->scratch);
    u->n_pending = 0;
}

/* ---- loop guard ------------------------------------------------------------------------------ */

reason_status loop_detector_init(loop_detector *d, int32_t max_cycle, int32_t repeats) {
    memset(d, 0, sizeof *d);
    if (max_cycle <= 0) return REASON_OK;
    d->max_cycle = max_cycle;
    d->repeats = RS_MAX(repeats, 2);
    d->run = rs_calloc((size_t)max_cycle + 1, sizeof *d->run, "loop guard");
    d->recent = rs_calloc((size_t)max_cycle, sizeof *d->recent, "loop guard");
    if (!d->run || !d->recent) {
        loop_detector_free(d);
        return REASON_ERR_NOMEM;
    }
    return REASON_OK;
}

void loop_detector_free(loop_detector *d) {
    free(d->run);
    free(d->recent);
    memset(d, 0, sizeof *d);
}

void loop_detector_reset(loop_detector *d) {
    if (d->run) memset(d->run, 0, ((size_t)d->max_cycle + 1) * sizeof *d->run);
    d->n = 0;
}

int32_t loop_detector_add(loop_detector *d, reason_token token) {
    if (d->max_cycle <= 0) return 0;
    const int32_t max_l = RS_MIN(d->max_cycle, d->n);
    int32_t found = 0;
    for (int32_t l = 1; l <= max_l; l++) {
        const reason_token back = d->recent[(d->n - l) % d->max_cycle];
        d->run[l] = token == back ? d->run[l] + 1 : 0;
        /* run[l] equalities in a row: the last run[l] + l tokens have period l */
        const int64_t need = RS_MAX((int64_t)d->repeats * l, 2 * (int64_t)d->max_cycle);
        if (!found && d->run[l] + (int64_t)l >= need) found = l;
    }
    d->recent[d->n % d->max_cycle] = token;
    if (d->n < INT32_MAX) d->n++;
    return found;
}
