/* vote.h — what a trace's text and tokens are worth: answer extraction and normalisation,
 * confidence measures (mean log-probability; DeepConf's sliding-window group confidence), the
 * vote tally with its early-stop rule, and the DeepConf pruning threshold. */
#ifndef REASON_VOTE_H
#define REASON_VOTE_H

#include "core.h"

/* Extracts an answer from text with a method of enum reason_extract_kind (regex: a PCRE2
 * pattern, callbacks: for REASON_EXTRACT_CALLBACK) and normalises it (answer_normalize).
 * *out is a malloc'd NUL-terminated string, or NULL when the text holds no answer. A bad regex
 * is REASON_ERR_INVALID_ARG naming the offset in the pattern. */
RS_INTERNAL reason_status answer_extract(int32_t kind, const char *regex,
                                         const reason_callbacks *callbacks, const char *text,
                                         size_t len, char **out);

/* Canonical form so that equal answers compare equal: trimmed, inner whitespace collapsed,
 * surrounding $…$ / \text{} / trailing period removed, thousands separators removed from numbers,
 * numbers in canonical decimal form ("3.50" → "3.5", "007" → "7", "-0" → "0"), simple fractions
 * reduced ("6/8" → "3/4"; "\frac{6}{8}" → "3/4"; "4/2" → "2"). malloc'd; NULL on out-of-memory. */
RS_INTERNAL char *answer_normalize(const char *s, size_t len);

/* DeepConf's token confidence: the negative mean log-probability of the token's top-k
 * alternatives (choice->top_logprobs; with none, -choice->logprob). Higher = more confident. */
RS_INTERNAL float token_confidence(const reason_token_choice *choice);

/* Running confidence of one trace: mean log-probability of its tokens, and the lowest mean token
 * confidence over any `window` consecutive tokens (over all tokens while fewer than window). */
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
RS_INTERNAL float confidence_current_group(const confidence_tracker *t); /* last window's mean */
RS_INTERNAL float confidence_lowest_group(const confidence_tracker *t);  /* +inf when empty */
RS_INTERNAL void confidence_free(confidence_tracker *t);

/* The weight a finished trace brings to the vote, for an enum reason_vote_kind. */
RS_INTERNAL double vote_weight(int32_t vote_kind, const confidence_tracker *t);

/* Votes by answer. Answers are compared after normalisation (exact string equality). */
typedef struct vote_tally vote_tally;
RS_INTERNAL reason_status vote_tally_create(vote_tally **out);
RS_INTERNAL void vote_tally_free(vote_tally *tally);
/* Adds a vote; answer NULL or "" counts as no answer (no weight to anyone). */
RS_INTERNAL reason_status vote_tally_add(vote_tally *tally, const char *answer, double weight);
/* Decided when the leader cannot be overtaken by n_remaining traces that bring at most
 * max_weight each, or (share > 0) when its weight is at least share of the weight cast plus the
 * weight the remaining traces could still bring. */
RS_INTERNAL bool vote_tally_decided(const vote_tally *tally, int32_t n_remaining, double max_weight,
                                    float share);
/* Answers sorted by decreasing weight (ties: more votes, then first seen). */
RS_INTERNAL int32_t vote_tally_n_answers(const vote_tally *tally);
RS_INTERNAL const char *vote_tally_answer(const vote_tally *tally, int32_t i, int32_t *count,
                                          double *weight);
RS_INTERNAL double vote_tally_total_weight(const vote_tally *tally);

/* DeepConf online: the threshold a trace's group confidence must stay above, from the lowest
 * group confidences of the warm-up traces: their (100 - keep_percent)th percentile, so that
 * keep_percent of warm-up-like traces would survive (linear interpolation between ranks). */
RS_INTERNAL float prune_threshold(const float *warmup_lowest_groups, int32_t n, float keep_percent);

#endif
