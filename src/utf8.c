/* utf8.c — UTF-8 validation, decoding, and lossy conversion.
 *
 * Validity follows the Unicode table of well-formed byte sequences (Unicode §3.9, table 3-7): the
 * second byte's range depends on the lead byte (E0: A0..BF, ED: 80..9F, F0: 90..BF, F4: 80..8F),
 * which rules out overlong forms, surrogates and code points past U+10FFFF. */
#include "utf8.h"

/* Number of bytes a lead byte announces, 0 for bytes that cannot start a sequence. */
static int lead_length(uint8_t b) {
    if (b < 0x80) return 1;
    if (b < 0xC2) return 0;
    if (b < 0xE0) return 2;
    if (b < 0xF0) return 3;
    if (b < 0xF5) return 4;
    return 0;
}

static bool second_ok(uint8_t lead, uint8_t b) {
    switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
    }
}

int utf8_next(const uint8_t *s, size_t len, uint32_t *cp) {
    uint8_t b = s[0];
    int n = lead_length(b);
    if (n == 1) {
        *cp = b;
        return 1;
    }
    if (n == 0) return -1;
    for (int i = 1; i < n; i++) {
        if ((size_t)i >= len) return 0;
        bool ok = i == 1 ? second_ok(b, s[1]) : (s[i] & 0xC0) == 0x80;
        if (!ok) return -i;
    }
    uint32_t c = b & (0x7F >> n);
    for (int i = 1; i < n; i++) c = (c << 6) | (s[i] & 0x3F);
    *cp = c;
    return n;
}

size_t utf8_validate(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int n = utf8_next(s + i, len - i, &cp);
        if (n <= 0) return i;
        i += (size_t)n;
    }
    return len;
}

int utf8_encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_lossy(const uint8_t *in, size_t len, bool final, uint8_t *out, size_t *consumed) {
    static const uint8_t replacement[3] = {0xEF, 0xBF, 0xBD};
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        int n = utf8_next(in + i, len - i, &cp);
        if (n > 0) {
            for (int k = 0; k < n; k++) out[o++] = in[i + (size_t)k];
            i += (size_t)n;
        } else if (n < 0) {
            for (int k = 0; k < 3; k++) out[o++] = replacement[k];
            i += (size_t)-n;
        } else if (final) {
            /* A truncated sequence at the very end is one maximal subpart. */
            for (int k = 0; k < 3; k++) out[o++] = replacement[k];
            i = len;
        } else {
            break;
        }
    }
    *consumed = i;
    return o;
}
