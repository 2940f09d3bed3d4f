/* utf8.h — UTF-8 validation, decoding, and lossy conversion (invalid bytes become U+FFFD). */
#ifndef REASON_UTF8_H
#define REASON_UTF8_H

#include "core.h"

/* The offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
 * surrogates and code points above U+10FFFF are invalid), or len when all of s is valid. */
RS_INTERNAL size_t utf8_validate(const uint8_t *s, size_t len);

/* Looks at the sequence starting at s[0] (len >= 1). Returns its length (1..4) when it is a
 * complete valid character and stores the code point; returns 0 when s is a valid but truncated
 * prefix of a character (more bytes may complete it); returns -n when the first n bytes are the
 * maximal invalid subpart (to be replaced by one U+FFFD, as WHATWG and Rust's lossy decoding do). */
RS_INTERNAL int utf8_next(const uint8_t *s, size_t len, uint32_t *cp);

/* Encodes cp (<= U+10FFFF) into out; returns the number of bytes (1..4). */
RS_INTERNAL int utf8_encode(uint32_t cp, uint8_t out[4]);

/* Converts in[0..len) into valid UTF-8 at out (capacity >= 3 * len bytes). When final is false a
 * truncated character at the end is left unconsumed. Returns the bytes written; *consumed gets the
 * input bytes used. */
RS_INTERNAL size_t utf8_lossy(const uint8_t *in, size_t len, bool final, uint8_t *out,
                              size_t *consumed);

#endif
