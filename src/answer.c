/* answer.c — extracting an answer from a trace's text and normalising it so that equal answers
 * compare equal (declared in vote.h).
 *
 * Text handling is written for hostile input (model output can be anything, including 100k
 * characters of braces or invalid UTF-8): every pass is a single left-to-right (or right-to-left)
 * scan with counters or explicit stacks, never recursion, and any step that could repeat is
 * bounded, so work is linear in the input and every call terminates. */
#include "vote.h"

#include "utf8.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------- */
/* A growable byte string; a failed allocation latches `oom` and later appends do nothing. */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static bool sb_reserve(sbuf *b, size_t extra) {
    if (b->oom) return false;
    size_t need;
    if (!rs_add_size(b->len, extra, &need) || !rs_add_size(need, 1, &need)) {
        b->oom = true;
        return false;
    }
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (!rs_mul_size(cap, 2, &cap)) {
            cap = need;
            break;
        }
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (n == 0 || !sb_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_putc(sbuf *b, char c) { sb_put(b, &c, 1); }

/* The NUL-terminated string, ownership to the caller (NULL on out-of-memory). */
static char *sb_finish(sbuf *b) {
    if (!sb_reserve(b, 0)) {
        free(b->p);
        return NULL;
    }
    b->p[b->len] = '\0';
    return b->p;
}

/* ---------------------------------------------------------------------------------------------- */
/* Character classes (ASCII only: bytes >= 0x80 are neither letters, digits nor spaces). */

static bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_word(unsigned char c) { return is_alpha(c) || is_digit(c) || c == '_'; }
static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static bool starts_with(const char *s, size_t n, size_t i, const char *lit) {
    size_t k = strlen(lit);
    return i <= n && n - i >= k && memcmp(s + i, lit, k) == 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Numbers */

/* After 1-3 leading digits ending at i: past any ",ddd" thousands groups (a group is exactly three
 * digits: "1,2345" has none). */
static size_t skip_groups(const char *s, size_t n, size_t i) {
    while (n - i >= 4 && s[i] == ',' && is_digit((unsigned char)s[i + 1]) &&
           is_digit((unsigned char)s[i + 2]) && is_digit((unsigned char)s[i + 3]) &&
           (n - i == 4 || !is_digit((unsigned char)s[i + 4])))
        i += 4;
    return i;
}

/* Parses a whole decimal number s[0..n): [+-] digits (or 1-3 digits and ",ddd" groups) [. digits],
 * or [+-] . digits. Writes its canonical form to out and returns true; false (nothing written)
 * when s is not such a number. */
static bool canon_number(const char *s, size_t n, sbuf *out) {
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    const size_t int_begin = i;
    while (i < n && is_digit((unsigned char)s[i])) i++;
    if (i - int_begin >= 1 && i - int_begin <= 3) i = skip_groups(s, n, i);
    const size_t int_end = i;
    size_t frac_begin = i, frac_end = i;
    if (i < n && s[i] == '.') {
        frac_begin = ++i;
        while (i < n && is_digit((unsigned char)s[i])) i++;
        frac_end = i;
    }
    if (i != n) return false;
    if (int_end == int_begin && frac_end == frac_begin) return false; /* no digit at all */

    /* canonical: no leading zeros, no trailing fractional zeros, no "-0" */
    size_t a = int_begin;
    while (a < int_end && (s[a] == '0' || s[a] == ',')) a++;
    size_t z = frac_end;
    while (z > frac_begin && s[z - 1] == '0') z--;
    const bool zero = a == int_end && z == frac_begin;
    if (zero) {
        sb_putc(out, '0');
        return true;
    }
    if (neg) sb_putc(out, '-');
    if (a == int_end) sb_putc(out, '0');
    for (size_t k = a; k < int_end; k++)
        if (s[k] != ',') sb_putc(out, s[k]);
    if (z > frac_begin) {
        sb_putc(out, '.');
        sb_put(out, s + frac_begin, z - frac_begin);
    }
    return true;
}

/* [+-] digits in s[0..n) as sign and a uint64 magnitude; *fits false when it has more than 19
 * significant digits. False when s is not a signed integer. */
static bool parse_int(const char *s, size_t n, bool *neg, uint64_t *value, bool *fits,
                      size_t *digits_at) {
    size_t i = 0;
    *neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) *neg = s[i++] == '-';
    if (i == n) return false;
    for (size_t k = i; k < n; k++)
        if (!is_digit((unsigned char)s[k])) return false;
    while (i + 1 < n && s[i] == '0') i++;
    *digits_at = i;
    *fits = n - i <= 19;
    *value = 0;
    if (*fits)
        for (size_t k = i; k < n; k++) *value = *value * 10 + (uint64_t)(s[k] - '0');
    return true;
}

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void put_u64(sbuf *out, uint64_t v) {
    char tmp[24];
    size_t k = sizeof tmp;
    do {
        tmp[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_put(out, tmp + k, sizeof tmp - k);
}

/* num/den (signed integers, given as text) reduced: "6","8" → "3/4", "4","2" → "2", "-0","5" → "0".
 * False (nothing written) when either is not an integer or den is zero. */
static bool put_fraction(const char *num, size_t num_n, const char *den, size_t den_n,
                         sbuf *out) {
    bool nneg, dneg, nfits, dfits;
    uint64_t nv, dv;
    size_t nat, dat;
    if (!parse_int(num, num_n, &nneg, &nv, &nfits, &nat)) return false;
    if (!parse_int(den, den_n, &dneg, &dv, &dfits, &dat)) return false;
    const bool den_zero = dfits && dv == 0;
    if (den_zero) return false;
    const bool num_zero = nfits && nv == 0;
    if (num_zero) {
        sb_putc(out, '0');
        return true;
    }
    if (nneg != dneg) sb_putc(out, '-');
    if (nfits && dfits) {
        uint64_t g = gcd_u64(nv, dv);
        put_u64(out, nv / g);
        if (dv / g != 1) {
            sb_putc(out, '/');
            put_u64(out, dv / g);
        }
    } else { /* too large to reduce: leading zeros and signs only */
        sb_put(out, num + nat, num_n - nat);
        sb_putc(out, '/');
        sb_put(out, den + dat, den_n - dat);
    }
    return true;
}

/* A whole-string fraction "a/b" or "a / b" (signed integers). */
static bool canon_fraction(const char *s, size_t n, sbuf *out) {
    const char *slash = memchr(s, '/', n);
    if (!slash) return false;
    size_t a_end = (size_t)(slash - s), b_begin = a_end + 1;
    if (a_end > 0 && s[a_end - 1] == ' ') a_end--;
    if (b_begin < n && s[b_begin] == ' ') b_begin++;
    return put_fraction(s, a_end, s + b_begin, n - b_begin, out);
}

/* The end of a number starting at s[i] for extraction (LAST_NUMBER, "answer is 5 apples"), or i
 * when none starts there. A number is [-] (digits with optional ",ddd" thousands groups | . digit)
 * [. digits] [/ digits]; it must not continue a word ("x2", "H2O", "v1.5" hold none; "5cm" is 5):
 * the byte before its first character is not a letter, digit, '_' or '.'. A '-' is its sign only
 * when the byte before the '-' is not a letter or digit ("3-4" ends in 4, not -4). */
static size_t number_end(const char *s, size_t n, size_t i) {
    const size_t start = i;
    if (start > 0 && (is_word((unsigned char)s[start - 1]) || s[start - 1] == '.')) return start;
    if (s[i] == '-') i++;
    else if (starts_with(s, n, i, "\xE2\x88\x92")) i += 3; /* U+2212 minus sign */
    if (i >= n) return start;
    if (is_digit((unsigned char)s[i])) {
        const size_t d = i;
        while (i < n && is_digit((unsigned char)s[i])) i++;
        if (i - d <= 3) i = skip_groups(s, n, i);
        if (i + 1 < n && s[i] == '.' && is_digit((unsigned char)s[i + 1])) {
            i++;
            while (i < n && is_digit((unsigned char)s[i])) i++;
        }
    } else if (s[i] == '.' && i + 1 < n && is_digit((unsigned char)s[i + 1])) {
        i++;
        while (i < n && is_digit((unsigned char)s[i])) i++;
    } else {
        return start;
    }
    if (i + 1 < n && s[i] == '/' && is_digit((unsigned char)s[i + 1])) {
        size_t j = i + 1;
        while (j < n && is_digit((unsigned char)s[j])) j++;
        if (!(j + 1 < n && s[j] == '.' && is_digit((unsigned char)s[j + 1]))) i = j;
    }
    return i;
}

/* ---------------------------------------------------------------------------------------------- */
/* Normalisation: a fixed sequence of linear passes (see vote.h for the rules). */

/* Valid UTF-8 (invalid bytes become U+FFFD), NUL and zero-width space dropped, the Unicode minus
 * sign as '-', no-break and thin spaces as ' '. */
static bool pass_unicode(const char *s, size_t len, sbuf *out) {
    size_t cap;
    if (!rs_mul_size(len, 3, &cap)) return false;
    uint8_t *tmp = malloc(cap ? cap : 1);
    if (!tmp) return false;
    size_t consumed = 0;
    const size_t n = utf8_lossy((const uint8_t *)s, len, true, tmp, &consumed);
    const char *t = (const char *)tmp;
    for (size_t i = 0; i < n;) {
        if (t[i] == '\0') {
            i++;
        } else if (starts_with(t, n, i, "\xE2\x88\x92")) {
            sb_putc(out, '-');
            i += 3;
        } else if (starts_with(t, n, i, "\xC2\xA0")) {
            sb_putc(out, ' ');
            i += 2;
        } else if (starts_with(t, n, i, "\xE2\x80\x89") || starts_with(t, n, i, "\xE2\x80\xAF") ||
                   starts_with(t, n, i, "\xE2\x80\x88")) {
            sb_putc(out, ' ');
            i += 3;
        } else if (starts_with(t, n, i, "\xE2\x80\x8B")) {
            i += 3;
        } else {
            sb_putc(out, t[i++]);
        }
    }
    free(tmp);
    return !out->oom;
}

/* LaTeX commands that only wrap text: "\text{abc}" → "abc". */
static bool is_unwrap_command(const char *name, size_t n) {
    static const char *const names[] = {"text",   "textbf", "textit", "textrm", "textnormal",
                                        "textsf", "mathrm", "mathbf", "mathit", "mbox"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strlen(names[k]) == n && memcmp(names[k], name, n) == 0) return true;
    return false;
}

static bool name_is(const char *name, size_t n, const char *lit) {
    return strlen(lit) == n && memcmp(name, lit, n) == 0;
}

/* LaTeX clean-up: spacing commands (\, \! \; \: \quad \qquad) dropped, "\ " as a space,
 * \left/\right (and the "." of "\left.") dropped, \displaystyle dropped, \dfrac/\tfrac as \frac,
 * "\%" and "\$" as "%" and "$", "^\circ" and "^{\circ}" as "°", and \text{}-like wrappers unwrapped
 * wherever they are (their closing brace found with a stack of opening depths). Escaped braces
 * "\{" "\}" are kept and do not count as braces. */
static bool pass_latex(const char *s, size_t n, sbuf *out) {
    size_t *stack = NULL, depth_n = 0, depth_cap = 0; /* depths at which a wrapper opened */
    size_t depth = 0;
    bool ok = true;
    for (size_t i = 0; i < n;) {
        const char c = s[i];
        if (c == '^' && (starts_with(s, n, i, "^\\circ") || starts_with(s, n, i, "^{\\circ}"))) {
            const size_t k = s[i + 1] == '{' ? 8 : 6;
            if (k == 8 || i + 6 >= n || !is_alpha((unsigned char)s[i + 6])) {
                sb_put(out, "\xC2\xB0", 2);
                i += k;
                continue;
            }
        }
        if (c == '{') {
            depth++;
            sb_putc(out, c);
            i++;
            continue;
        }
        if (c == '}') {
            if (depth > 0) {
                depth--;
                if (depth_n > 0 && stack[depth_n - 1] == depth) {
                    depth_n--;
                    i++;
                    continue;
                }
            }
            sb_putc(out, c);
            i++;
            continue;
        }
        if (c != '\\') {
            sb_putc(out, c);
            i++;
            continue;
        }
        if (i + 1 >= n) {
            sb_putc(out, c);
            i++;
            continue;
        }
        const char d = s[i + 1];
        if (d == ',' || d == '!' || d == ';' || d == ':') {
            i += 2;
            continue;
        }
        if (d == ' ') {
            sb_putc(out, ' ');
            i += 2;
            continue;
        }
        if (d == '%' || d == '$') {
            sb_putc(out, d);
            i += 2;
            continue;
        }
        if (!is_alpha((unsigned char)d)) { /* "\{", "\}", "\\" and other symbols: kept whole */
            sb_put(out, s + i, 2);
            i += 2;
            continue;
        }
        size_t j = i + 1;
        while (j < n && is_alpha((unsigned char)s[j])) j++;
        const char *name = s + i + 1;
        const size_t name_n = j - i - 1;
        if (name_is(name, name_n, "left") || name_is(name, name_n, "right")) {
            i = j;
            if (i < n && s[i] == '.') i++;
            continue;
        }
        if (name_is(name, name_n, "quad") || name_is(name, name_n, "qquad")) {
            sb_putc(out, ' ');
            i = j;
            continue;
        }
        if (name_is(name, name_n, "displaystyle")) {
            i = j;
            continue;
        }
        if (name_is(name, name_n, "dfrac") || name_is(name, name_n, "tfrac")) {
            sb_put(out, "\\frac", 5);
            i = j;
            continue;
        }
        if (j < n && s[j] == '{' && is_unwrap_command(name, name_n)) {
            if (depth_n == depth_cap) {
                size_t cap = depth_cap ? depth_cap * 2 : 16;
                size_t *p = realloc(stack, cap * sizeof *stack);
                if (!p) {
                    ok = false;
                    break;
                }
                stack = p;
                depth_cap = cap;
            }
            stack[depth_n++] = depth;
            depth++;
            i = j + 1;
            continue;
        }
        sb_put(out, s + i, j - i);
        i = j;
    }
    free(stack);
    return ok && !out->oom;
}

/* Trimmed, inner runs of whitespace as one space. */
static bool pass_space(const char *s, size_t n, sbuf *out) {
    bool pending = false;
    for (size_t i = 0; i < n; i++) {
        if (is_space((unsigned char)s[i])) {
            pending = out->len > 0;
            continue;
        }
        if (pending) sb_putc(out, ' ');
        pending = false;
        sb_putc(out, s[i]);
    }
    return !out->oom;
}

/* One \frac argument at s[i]: "{ [+-]digits }" (spaces allowed inside) or a single digit. Sets
 * [*a, *b) to the integer's text and returns the index after the argument, or 0 when none. */
static size_t frac_arg(const char *s, size_t n, size_t i, size_t *a, size_t *b) {
    if (i < n && s[i] == ' ') i++;
    if (i >= n) return 0;
    if (is_digit((unsigned char)s[i])) {
        *a = i;
        *b = i + 1;
        return i + 1;
    }
    if (s[i] != '{') return 0;
    i++;
    if (i < n && s[i] == ' ') i++;
    *a = i;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    const size_t d = i;
    while (i < n && is_digit((unsigned char)s[i])) i++;
    if (i == d) return 0;
    *b = i;
    if (i < n && s[i] == ' ') i++;
    if (i >= n || s[i] != '}') return 0;
    return i + 1;
}

/* \frac{a}{b} (and \frac12) with integer a, b as the reduced fraction a/b, wherever it is; other
 * \frac are kept (their arguments are scanned like the rest of the text). */
static bool pass_frac(const char *s, size_t n, sbuf *out) {
    for (size_t i = 0; i < n;) {
        if (s[i] == '\\' && starts_with(s, n, i, "\\frac") &&
            (i + 5 >= n || !is_alpha((unsigned char)s[i + 5]))) {
            size_t a0, a1, b0, b1;
            size_t j = frac_arg(s, n, i + 5, &a0, &a1);
            size_t k = j ? frac_arg(s, n, j, &b0, &b1) : 0;
            const size_t mark = out->len;
            if (k && put_fraction(s + a0, a1 - a0, s + b0, b1 - b0, out)) {
                i = k;
                continue;
            }
            out->len = mark;
            sb_put(out, s + i, 5);
            i += 5;
            continue;
        }
        if (s[i] == '\\' && i + 1 < n) { /* keep escapes such as "\\" whole */
            sb_put(out, s + i, 2);
            i += 2;
            continue;
        }
        sb_putc(out, s[i++]);
    }
    return !out->oom;
}

/* The index of the '}' matching the '{' at s[open], or n when unbalanced. Escaped braces do not
 * count. */
static size_t match_brace(const char *s, size_t n, size_t open) {
    size_t depth = 0;
    for (size_t i = open; i < n; i++) {
        if (s[i] == '\\') {
            i++;
            continue;
        }
        if (s[i] == '{') depth++;
        if (s[i] == '}' && --depth == 0) return i;
    }
    return n;
}

static bool number_ends_at(const char *s, size_t b, size_t e) {
    return e > b && is_digit((unsigned char)s[e - 1]);
}

/* Outer wrappers, removed layer by layer (at most 16 layers: real answers have two or three, and
 * the bound keeps hostile input linear): surrounding whitespace, a trailing '.', surrounding
 * $…$ / $$…$$ / \(…\) / \[…\], a whole \boxed{…} / \fbox{…}, a leading currency '$' before a
 * number, a trailing '%' or '°' after a number. Works on [*b, *e) of s. */
static void strip_wrappers(const char *s, size_t *pb, size_t *pe) {
    size_t b = *pb, e = *pe;
    for (int round = 0; round < 16; round++) {
        const size_t b0 = b, e0 = e;
        while (b < e && s[b] == ' ') b++;
        while (e > b && s[e - 1] == ' ') e--;
        if (e > b && s[e - 1] == '.') e--;
        const size_t n = e - b;
        const char *t = s + b;
        if (n >= 4 && t[0] == '$' && t[1] == '$' && t[n - 1] == '$' && t[n - 2] == '$') {
            b += 2;
            e -= 2;
        } else if (n >= 2 && t[0] == '$' && t[n - 1] == '$') {
            b += 1;
            e -= 1;
        } else if (n >= 4 && t[0] == '\\' && t[n - 2] == '\\' &&
                   ((t[1] == '(' && t[n - 1] == ')') || (t[1] == '[' && t[n - 1] == ']'))) {
            b += 2;
            e -= 2;
        } else if ((starts_with(t, n, 0, "\\boxed") || starts_with(t, n, 0, "\\fbox")) &&
                   t[n - 1] == '}') {
            size_t k = t[1] == 'b' ? 6 : 5;
            if (k < n && t[k] == ' ') k++;
            if (k < n && t[k] == '{' && match_brace(t, n, k) == n - 1) {
                b += k + 1;
                e -= 1;
            }
        } else if (n >= 2 && t[0] == '$' && (is_digit((unsigned char)t[1]) || t[1] == '.' ||
                                             t[1] == '-')) {
            b += 1;
        } else if (n >= 2 && t[n - 1] == '%' && number_ends_at(s, b, e - 1)) {
            e -= 1;
        } else if (n >= 3 && t[n - 2] == '\xC2' && t[n - 1] == '\xB0' &&
                   number_ends_at(s, b, e - 2)) {
            e -= 2;
        }
        if (b == b0 && e == e0) break;
    }
    while (b < e && s[b] == ' ') b++;
    while (e > b && s[e - 1] == ' ') e--;
    *pb = b;
    *pe = e;
}

char *answer_normalize(const char *s, size_t len) {
    if (!s) len = 0;
    sbuf a = {0}, b = {0};
    char *result = NULL;
    if (!pass_unicode(s ? s : "", len, &a)) goto done;
    if (!pass_latex(a.p ? a.p : "", a.len, &b)) goto done;
    a.len = 0;
    if (!pass_space(b.p ? b.p : "", b.len, &a)) goto done;
    b.len = 0;
    if (!pass_frac(a.p ? a.p : "", a.len, &b)) goto done;

    const char *t = b.p ? b.p : "";
    size_t lo = 0, hi = b.len;
    strip_wrappers(t, &lo, &hi);
    sbuf out = {0};
    if (!canon_number(t + lo, hi - lo, &out) && !canon_fraction(t + lo, hi - lo, &out))
        sb_put(&out, t + lo, hi - lo);
    result = sb_finish(&out);
done:
    free(a.p);
    free(b.p);
    if (!result)
        rs_error(REASON_ERR_NOMEM, "out of memory normalising an answer of %zu bytes", len);
    return result;
}

/* ---------------------------------------------------------------------------------------------- */
/* Extraction */

/* Normalised s[0..n) into *out; an answer that normalises to "" is no answer (NULL). */
static reason_status set_answer(const char *s, size_t n, char **out) {
    char *a = answer_normalize(s, n);
    if (!a) return REASON_ERR_NOMEM;
    if (a[0] == '\0') {
        free(a);
        a = NULL;
    }
    *out = a;
    return REASON_OK;
}

/* The contents of the \boxed{…} / \fbox{…} that closes last (for nested ones, the outer one; a
 * final, unclosed \boxed{ — output cut off — leaves the previous complete one). One scan with a
 * stack of the brace depths at which a \boxed opened. */
static reason_status extract_boxed(const char *s, size_t n, char **out) {
    size_t *stack = NULL, stack_n = 0, stack_cap = 0; /* pairs: (depth, content start) */
    size_t depth = 0, best_b = 0, best_e = 0;
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') {
            size_t k = 0;
            if (starts_with(s, n, i, "\\boxed")) k = 6;
            else if (starts_with(s, n, i, "\\fbox")) k = 5;
            if (k) { /* "\boxedx{" is no box: a '{' (or spaces then '{') must follow */
                size_t j = i + k;
                while (j < n && s[j] == ' ') j++;
                if (j < n && s[j] == '{') {
                    if (stack_n + 2 > stack_cap) {
                        size_t cap = stack_cap ? stack_cap * 2 : 16;
                        size_t *p = realloc(stack, cap * sizeof *stack);
                        if (!p) {
                            free(stack);
                            return rs_error(REASON_ERR_NOMEM, "out of memory extracting \\boxed");
                        }
                        stack = p;
                        stack_cap = cap;
                    }
                    stack[stack_n++] = depth;
                    stack[stack_n++] = j + 1;
                    depth++;
                    i = j;
                    continue;
                }
            }
            i++; /* skip the escaped character: "\{", "\}", "\\" */
            continue;
        }
        if (s[i] == '{') depth++;
        if (s[i] == '}' && depth > 0) {
            depth--;
            if (stack_n > 0 && stack[stack_n - 2] == depth) {
                best_b = stack[stack_n - 1];
                best_e = i;
                found = true;
                stack_n -= 2;
            }
        }
    }
    free(stack);
    *out = NULL;
    return found ? set_answer(s + best_b, best_e - best_b, out) : REASON_OK;
}

static reason_status extract_last_number(const char *s, size_t n, char **out) {
    size_t best_b = 0, best_e = 0;
    for (size_t i = 0; i < n;) {
        size_t e = number_end(s, n, i);
        if (e > i) {
            best_b = i;
            best_e = e;
            i = e;
        } else {
            i++;
        }
    }
    *out = NULL;
    return best_e > best_b ? set_answer(s + best_b, best_e - best_b, out) : REASON_OK;
}

static reason_status extract_final_line(const char *s, size_t n, char **out) {
    size_t e = n;
    *out = NULL;
    while (e > 0) {
        size_t b = e;
        while (b > 0 && s[b - 1] != '\n') b--;
        for (size_t k = b; k < e; k++) {
            if (!is_space((unsigned char)s[k])) return set_answer(s + b, e - b, out);
        }
        if (b == 0) break;
        e = b - 1;
    }
    return REASON_OK;
}

/* "answer is X" / "answer: X" (case-insensitive, markdown '*' around allowed: "**Answer:** 42",
 * "The final answer is $\frac{1}{2}$."), last occurrence with a non-empty X. X runs to the end of
 * its line and is cut to: a leading $…$ math segment; else a leading number when what follows it is
 * not more mathematics ("5 apples" → 5, "2 + 3i" stays); else the text up to the first ". ". */
static bool answer_phrase(const char *s, size_t n, size_t *xb, size_t *xe) {
    static const char word[] = "answer";
    const size_t w = sizeof word - 1;
    for (size_t at = n >= w ? n - w + 1 : 0; at-- > 0;) {
        size_t k = 0;
        while (k < w && lower((unsigned char)s[at + k]) == (unsigned char)word[k]) k++;
        if (k < w || (at > 0 && is_alpha((unsigned char)s[at - 1]))) continue;
        size_t i = at + w;
        while (i < n && (s[i] == '*' || s[i] == ' ')) i++;
        if (i < n && s[i] == ':') {
            i++;
        } else if (i + 1 < n && lower((unsigned char)s[i]) == 'i' &&
                   lower((unsigned char)s[i + 1]) == 's' &&
                   (i + 2 == n || !is_alpha((unsigned char)s[i + 2]))) {
            i += 2;
            if (i < n && s[i] == ':') i++;
        } else {
            continue;
        }
        while (i < n && (s[i] == '*' || s[i] == ' ' || s[i] == '\t')) i++;
        size_t end = i;
        while (end < n && s[end] != '\n') end++;
        while (end > i && (is_space((unsigned char)s[end - 1]) || s[end - 1] == '*')) end--;
        if (end == i) continue;
        if (s[i] == '$') {
            const bool dbl = i + 1 < end && s[i + 1] == '$';
            const size_t open = dbl ? 2 : 1;
            for (size_t j = i + open; j < end; j++) {
                if (s[j] == '\\') {
                    j++;
                    continue;
                }
                if (s[j] == '$' && (!dbl || (j + 1 < end && s[j + 1] == '$'))) {
                    *xb = i;
                    *xe = j + open;
                    return true;
                }
            }
        }
        size_t num = i;
        if (s[num] == '$') num++;
        else if (starts_with(s, end, num, "\\$")) num += 2;
        const size_t ne = num < end ? number_end(s, end, num) : num;
        if (ne > num) {
            size_t q = ne;
            while (q < end && (s[q] == ' ' || (s[q] == '*' && q + 1 < end && s[q + 1] == '*')))
                q += s[q] == '*' ? 2 : 1;
            const bool escape = s[q] == '\\' && q + 1 < end && (s[q + 1] == '%' || s[q + 1] == '$');
            if (q == end || !strchr("+-*/^=_<>\\{(", s[q]) || escape) {
                *xb = i;
                *xe = ne;
                if (q < end && s[q] == '%') *xe = q + 1;
                if (starts_with(s, end, q, "\\%")) *xe = q + 2;
                return true;
            }
        }
        for (size_t j = i; j + 1 < end; j++) {
            if (s[j] == '.' && is_space((unsigned char)s[j + 1])) {
                end = j;
                break;
            }
        }
        *xb = i;
        *xe = end;
        return true;
    }
    return false;
}

static reason_status compile_regex(const char *regex, pcre2_code **out) {
    if (!regex) return rs_error(REASON_ERR_INVALID_ARG, "extract_regex: NULL pattern");
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                   &error, &offset, NULL);
    if (!re) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error, message, sizeof message);
        return rs_error(REASON_ERR_INVALID_ARG,
                        "extract_regex '%.200s' does not compile at offset %zu: %s", regex,
                        (size_t)offset, (const char *)message);
    }
    *out = re;
    return REASON_OK;
}

reason_status answer_regex_check(const char *regex) {
    pcre2_code *re = NULL;
    RS_TRY(compile_regex(regex, &re));
    pcre2_code_free(re);
    return REASON_OK;
}

/* The last match with a non-empty answer: its first capture group that took part, else the whole
 * match. Matches do not
 * overlap (the search resumes after each); an empty match is retried non-empty at the same place
 * before the search moves on by one character. */
static reason_status extract_regex(const char *regex, const char *text, size_t n, char **out) {
    *out = NULL;
    pcre2_code *re = NULL;
    RS_TRY(compile_regex(regex, &re));
    reason_status st = REASON_OK;
    uint8_t *fixed = NULL;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        st = rs_error(REASON_ERR_NOMEM, "out of memory matching extract_regex");
        goto done;
    }
    const char *s = text;
    if (utf8_validate((const uint8_t *)text, n) != n) { /* PCRE2 needs valid UTF-8 */
        size_t cap, consumed;
        if (!rs_mul_size(n, 3, &cap) || !(fixed = malloc(cap))) {
            st = rs_error(REASON_ERR_NOMEM, "out of memory matching extract_regex");
            goto done;
        }
        n = utf8_lossy((const uint8_t *)text, n, true, fixed, &consumed);
        s = (const char *)fixed;
    }
    uint32_t n_groups = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &n_groups);
    size_t best_b = 0, best_e = 0, start = 0;
    bool found = false;
    uint32_t options = 0;
    while (start <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, options | PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) {
            if (!options) break;
            /* no non-empty match at start: move on by one character */
            options = 0;
            start++;
            while (start < n && ((unsigned char)s[start] & 0xC0) == 0x80) start++;
            continue;
        }
        if (rc < 0) {
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(rc, message, sizeof message);
            st = rs_error(REASON_ERR_INVALID_ARG, "extract_regex '%.200s' failed to match: %s",
                          regex, (const char *)message);
            goto done;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t b = ov[0], e = ov[1];
        for (uint32_t g = 1; g <= n_groups && g < (uint32_t)rc; g++) {
            if (ov[2 * g] != PCRE2_UNSET) {
                b = ov[2 * g];
                e = ov[2 * g + 1];
                break;
            }
        }
        if (e > b) { /* an empty answer is none: keep the last non-empty one */
            found = true;
            best_b = b;
            best_e = e;
        }
        if (ov[0] == ov[1] && ov[1] >= start) {
            options = PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
            start = ov[1];
        } else if (ov[1] > start) {
            options = 0;
            start = ov[1];
        } else { /* \K can end a match before where the search began: move on */
            options = 0;
            start++;
            while (start < n && ((unsigned char)s[start] & 0xC0) == 0x80) start++;
        }
    }
    if (found && best_e >= best_b) st = set_answer(s + best_b, best_e - best_b, out);
done:
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    free(fixed);
    return st;
}

static reason_status extract_callback(const reason_callbacks *cb, const char *text, size_t n,
                                      char **out) {
    *out = NULL;
    if (!cb || !cb->extract)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "REASON_EXTRACT_CALLBACK without callbacks->extract");
    size_t cap;
    if (!rs_add_size(n, 256, &cap)) cap = n;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *buf = calloc(cap, 1);
        if (!buf) return rs_error(REASON_ERR_NOMEM, "out of memory for an extracted answer");
        const size_t got = cb->extract(cb->user, text, n, buf, cap);
        if (got < cap) {
            reason_status st = got ? set_answer(buf, got, out) : REASON_OK;
            free(buf);
            return st;
        }
        free(buf);
        /* like snprintf: a length >= capacity asks for a larger buffer */
        if (got == SIZE_MAX || got > ((size_t)1 << 30)) break;
        cap = got + 1;
    }
    return rs_error(REASON_ERR_INVALID_ARG,
                    "callbacks->extract returned a length that does not fit its buffer");
}

reason_status answer_extract(int32_t kind, const char *regex, const reason_callbacks *callbacks,
                             const char *text, size_t len, char **out) {
    RS_CHECK_ARG(out != NULL);
    *out = NULL;
    RS_CHECK_ARG(text != NULL || len == 0);
    if (!text) text = "";
    switch (kind) {
    case REASON_EXTRACT_BOXED: return extract_boxed(text, len, out);
    case REASON_EXTRACT_LAST_NUMBER: return extract_last_number(text, len, out);
    case REASON_EXTRACT_FINAL_LINE: return extract_final_line(text, len, out);
    case REASON_EXTRACT_REGEX: return extract_regex(regex, text, len, out);
    case REASON_EXTRACT_CALLBACK: return extract_callback(callbacks, text, len, out);
    case REASON_EXTRACT_AUTO: {
        RS_TRY(extract_boxed(text, len, out));
        if (*out) return REASON_OK;
        size_t xb, xe;
        if (answer_phrase(text, len, &xb, &xe)) {
            RS_TRY(set_answer(text + xb, xe - xb, out));
            if (*out) return REASON_OK;
        }
        RS_TRY(extract_last_number(text, len, out));
        if (*out) return REASON_OK;
        return extract_final_line(text, len, out);
    }
    default: return rs_error(REASON_ERR_INVALID_ARG, "unknown answer extraction kind %d", kind);
    }
}
