/* vote.h — what a trace's text and tokens are worth: answer extraction and normalisation,
 * confidence measures (mean log-probability; DeepConf's sliding-window group confidence), the
 * vote tally with its early-stop rule, and the DeepConf pruning threshold. */
#ifndef REASON_VOTE_H
#define REASON_VOTE_H

#include "core.h"

/* Extracts an answer from text with a method of enum reason_extract_kind (regex: a PCRE2
 * pattern, callbacks: for REASON_EXTRACT_CALLBACK) and normalises it (answer_normalize).
 * *out is a malloc'd NUL-terminated string, or NULL when the text holds no answer. A bad regex
 * is REASON_ERR_INVALID_ARG naming the offset in the pattern.
 *
 * The methods, precisely:
 * - BOXED: the contents of the \boxed{...} or \fbox{...} that closes last (nested braces
 *   balanced, "\{" "\}" escapes not counted; for nested boxes the outer one; a last \boxed{ left
 *   unclosed, as when the output was cut off, leaves the previous complete one).
 * - LAST_NUMBER: the last number: [-] digits (with "," thousands groups of exactly three digits)
 *   [. digits] [/ digits], or [-] . digits. Digits that continue a word are no number ("x2",
 *   "H2O", "v1.5" hold none); a word may follow ("5cm" is 5); a '-' right after a letter or digit
 *   is no sign ("3-4" ends in 4). LaTeX is not parsed ("\frac{1}{2}" ends in 2).
 * - FINAL_LINE: the last line with a non-space character.
 * - REGEX: PCRE2 with UTF and UCP, matched over the whole text (invalid UTF-8 replaced by U+FFFD
 *   first); of the LAST match (answers come at the end), the first capture group that took part,
 *   else the whole match; matches whose answer would be empty are skipped. The pattern is
 *   compiled before the text is looked at, so an empty text checks it. A match error (e.g. the
 *   backtracking limit) is REASON_ERR_INVALID_ARG.
 * - CALLBACK: callbacks->extract with a buffer of len + 256 bytes; a returned length >= capacity
 *   is taken, like snprintf's, as the size needed and the call is made once more with that room.
 * - AUTO: BOXED; else the last "answer is X" / "answer: X" (any case, markdown '*' allowed, e.g.
 *   "**Final Answer:** X"), X cut to a leading $...$, or to a leading number when no more
 *   mathematics follows it ("5 apples." gives 5, "2 + 3i" stays whole), or up to the first ". ";
 *   else LAST_NUMBER; else FINAL_LINE.
 * An answer that normalises to "" counts as none (NULL). */
RS_INTERNAL reason_status answer_extract(int32_t kind, const char *regex,
                                         const reason_callbacks *callbacks, const char *text,
                                         size_t len, char **out);

/* REASON_OK when regex compiles as REASON_EXTRACT_REGEX compiles it (for checking parameters
 * before any trace runs); else REASON_ERR_INVALID_ARG naming the offset. */
RS_INTERNAL reason_status answer_regex_check(const char *regex);

/* Canonical form so that equal answers compare equal: trimmed, inner whitespace collapsed,
 * surrounding $…$ / \text{} / trailing period removed, thousands separators removed from numbers,
 * numbers in canonical decimal form ("3.50" → "3.5", "007" → "7", "-0" → "0"), simple fractions
 * reduced ("6/8" → "3/4"; "\frac{6}{8}" → "3/4"; "4/2" → "2"). malloc'd; NULL on out-of-memory.
 *
 * The passes, in order (each linear in the input; any input terminates, the output is valid
 * UTF-8):
 * 1. Invalid UTF-8 becomes U+FFFD; NUL and U+200B are dropped; U+2212 (minus) becomes '-';
 *    U+00A0, U+2008, U+2009, U+202F (no-break and thin spaces) become ' '.
 * 2. LaTeX: "\," "\!" "\;" "\:" dropped ("1\,000" → "1000"); "\ " "\quad" "\qquad" → ' ';
 *    \left \right (and the '.' of "\left.") and \displaystyle dropped; \dfrac \tfrac → \frac;
 *    "\%" → "%", "\$" → "$"; "^\circ" "^{\circ}" → "°"; \text \textbf \textit \textrm
 *    \textsf \textnormal \mathrm \mathbf \mathit \mbox {X} → X anywhere ("5\text{ cm}" → "5 cm").
 * 3. Whitespace: trimmed, runs collapsed to one ' '.
 * 4. \frac{a}{b} (and \frac12) with integers a, b → "a/b" reduced, anywhere ("x=\frac{6}{8}" →
 *    "x=3/4", "\frac{-2}{4}" → "-1/2"); other \frac are kept.
 * 5. Outer layers, at most 16: a trailing '.'; surrounding $…$, $$…$$, \(…\), \[…\]; a whole
 *    \boxed{…} or \fbox{…}; a currency '$' before a number ("$18" → "18"); a '%' or '°' after a
 *    number ("50%" → "50": the percent sign is taken as a unit, so "50%" equals "50", not "0.5").
 * 6. If what is left is one number: canonical decimal ("+1,234.50" → "1234.5", ".5" → "0.5",
 *    "-0.0" → "0"); if it is "a/b" or "a / b" with integers: reduced ("-6/8" → "-3/4", "0/5" →
 *    "0"; a zero denominator stays as written; beyond 19 digits only leading zeros go).
 * Numbers inside longer text keep their form (only whole-answer numbers are rewritten: "(1,234)"
 * could be a pair). Case is kept ("Yes" differs from "yes"); scientific notation stays text. */
RS_INTERNAL char *answer_normalize(const char *s, size_t len);

/* DeepConf's token confidence: the negative mean log-probability of the token's top-k
 * alternatives (choice->top_logprobs; with none, -choice->logprob). Higher = more confident.
 * Each log-probability is clamped to [-100, 0] (NaN as -100), so the result is in [0, 100]. */
RS_INTERNAL float token_confidence(const reason_token_choice *choice);

/* Running confidence of one trace: mean log-probability of its tokens, and the lowest mean token
 * confidence over any `window` consecutive tokens (over all tokens while fewer than window).
 * O(1) per token: a ring of the last window confidences and running sums in double (rounding
 * drift stays far below float resolution over millions of tokens). confidence_add clamps logprob
 * to [-100, 0] and token_conf to [0, 100] (NaN: the least confident value) so that sums stay
 * finite. */
typedef struct confidence_tracker {
    int32_t window;
    float *ring; /* (window) token confidences */
    int32_t n;   /* tokens seen */
    double ring_sum;
    double logprob_sum;
    float lowest_group;
} confidence_tracker;

RS_INTERNAL reason_status confidence_init(confidence_tracker *t, int32_t window);
RS_INTERNAL void confidence_add(confidence_tracker *t, float logprob, float token_conf);
RS_INTERNAL float confidence_mean_logprob(const confidence_tracker *t);   /* 0 when empty */
/* The mean of the last min(n, window) token confidences; +inf when empty. A pruning check should
 * wait for n >= window, or it judges a trace on its first few tokens. */
RS_INTERNAL float confidence_current_group(const confidence_tracker *t);
RS_INTERNAL float confidence_lowest_group(const confidence_tracker *t);  /* +inf when empty */
RS_INTERNAL void confidence_free(confidence_tracker *t); /* zeroes t; safe twice */

/* The weight a finished trace brings to the vote, for an enum reason_vote_kind: MAJORITY 1;
 * MEAN_LOGPROB exp(mean log-probability), in (0, 1] (1 for a trace without tokens);
 * LOWEST_GROUP the lowest group confidence, at least 1e-6 (1e-6 for a trace without tokens).
 * An unknown kind weighs 1. */
RS_INTERNAL double vote_weight(int32_t vote_kind, const confidence_tracker *t);

/* Votes by answer. Answers are compared after normalisation (exact string equality). */
typedef struct vote_tally vote_tally;
RS_INTERNAL reason_status vote_tally_create(vote_tally **out);
RS_INTERNAL void vote_tally_free(vote_tally *tally);
/* Adds a vote; answer NULL or "" counts as no answer (no weight to anyone, not in the total).
 * A weight that is negative, NaN or infinite is REASON_ERR_INVALID_ARG. */
RS_INTERNAL reason_status vote_tally_add(vote_tally *tally, const char *answer, double weight);
/* Decided when the leader cannot be overtaken by n_remaining traces that bring at most
 * max_weight each, or (share > 0) when its weight is at least share of the weight cast plus the
 * weight the remaining traces could still bring. Precisely, with L and R the weights of the first
 * and second answers (R = 0 when there is one) and M = n_remaining * max_weight: decided when
 * n_remaining <= 0 (nothing can change; also with no answers), else when there is an answer and
 * L > R + M (strict: a possible tie is not decided), or share > 0, L > 0 and
 * L >= share * (total_weight + M). */
RS_INTERNAL bool vote_tally_decided(const vote_tally *tally, int32_t n_remaining, double max_weight,
                                    float share);
/* Answers sorted by decreasing weight (ties: more votes, then first seen). */
RS_INTERNAL int32_t vote_tally_n_answers(const vote_tally *tally);
RS_INTERNAL const char *vote_tally_answer(const vote_tally *tally, int32_t i, int32_t *count,
                                          double *weight);
RS_INTERNAL double vote_tally_total_weight(const vote_tally *tally);

/* DeepConf online: the threshold a trace's group confidence must stay above, from the lowest
 * group confidences of the warm-up traces: their (100 - keep_percent)th percentile, so that
 * keep_percent of warm-up-like traces would survive (linear interpolation between ranks, as
 * numpy.percentile's default: rank (100 - keep) / 100 * (n - 1) of the sorted values).
 * keep_percent is clamped to [0, 100]; NaN values are ignored; n == 0 (or all NaN, or NaN
 * keep_percent) gives -inf, under which nothing is pruned. */
RS_INTERNAL float prune_threshold(const float *warmup_lowest_groups, int32_t n, float keep_percent);

#endif
