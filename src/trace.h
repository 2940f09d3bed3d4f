/* trace.h — the reasoning runtime's internal pieces (DESIGN.md §2): the thinking delimiters of
 * each template family, the text-level matcher that finds <think>, </think> and stop strings in
 * streamed bytes, the UTF-8 assembler that turns token bytes into valid text pieces, the loop
 * detector, and the engine interface through which trace.c drives a model. */
#ifndef REASON_TRACE_H
#define REASON_TRACE_H

#include "context.h"
#include "core.h"

/* A growing byte buffer, always NUL-terminated once anything was appended. */
typedef struct byte_buf {
    char *data;
    size_t len;
    size_t cap;
} byte_buf;

RS_INTERNAL reason_status byte_buf_append(byte_buf *b, const void *bytes, size_t n);
RS_INTERNAL void byte_buf_free(byte_buf *b);

/* Finds the first occurrence of any of a few patterns in a byte stream fed one byte at a time.
 * It holds back the longest suffix of the stream that could still begin a match; everything
 * before it can never be part of a match and is released. For each held byte it remembers which
 * token brought it, so a caller can take back the tokens that spelled a match. */
typedef struct text_matcher {
    const char *const *patterns; /* (n_patterns) NUL-terminated, non-empty; borrowed */
    int32_t n_patterns;
    size_t max_len;  /* longest pattern */
    char *held;      /* (max_len) */
    int32_t *held_tok; /* (max_len) token index of each held byte */
    uint8_t *held_first; /* (max_len) 1 when the byte was its token's first */
    size_t n_held;
    /* of the last match: the token that brought its first byte, and whether that byte was the
     * token's first */
    int32_t match_tok;
    int32_t match_tok_first;
} text_matcher;

RS_INTERNAL reason_status matcher_init(text_matcher *m, const char *const *patterns,
                                       int32_t n_patterns);
RS_INTERNAL void matcher_free(text_matcher *m);
/* Feeds byte b (of token tok; first: it is the token's first byte). Bytes released for good are
 * appended to out. Returns the index of the pattern whose match this byte completed (the held
 * bytes are then dropped, match_tok/match_tok_first describe it), or -1; -2 on out-of-memory. */
RS_INTERNAL int32_t matcher_feed(text_matcher *m, char b, int32_t tok, int32_t first, byte_buf *out);
/* Releases the held bytes into out (the stream ended or text is injected after them). */
RS_INTERNAL reason_status matcher_flush(text_matcher *m, byte_buf *out);
/* Drops the held bytes. */
RS_INTERNAL void matcher_reset(text_matcher *m);

/* Streams bytes into valid UTF-8: a character split across pushes waits for its last byte;
 * invalid bytes become U+FFFD (on push when certain, on flush for a truncated tail). */
typedef struct utf8_stream {
    char pending[4]; /* the first bytes of a character waiting for the rest (at most 3) */
    size_t n_pending;
    byte_buf scratch; /* pending + new bytes */
} utf8_stream;

/* Appends the text bytes complete to out; final: the stream ends (a truncated tail → U+FFFD). */
RS_INTERNAL reason_status utf8_stream_push(utf8_stream *u, const char *bytes, size_t n,
                                           bool final, byte_buf *out);
RS_INTERNAL void utf8_stream_free(utf8_stream *u);

/* Loop guard: a cycle of L tokens (1 <= L <= max_cycle) repeated `repeats` times in a row at the
 * end of the stream, covering at least max(repeats * L, 2 * max_cycle) tokens (so that a run of
 * one repeated digit or separator token must be long before it counts). O(max_cycle) per token. */
typedef struct loop_detector {
    int32_t max_cycle;
    int32_t repeats;
    int32_t *run;          /* (max_cycle + 1) run[L]: how many latest tokens equal the one L back */
    reason_token *recent;  /* (max_cycle) ring of the latest tokens */
    int32_t n;             /* tokens seen since the last reset */
} loop_detector;

RS_INTERNAL reason_status loop_detector_init(loop_detector *d, int32_t max_cycle, int32_t repeats);
RS_INTERNAL void loop_detector_free(loop_detector *d);
RS_INTERNAL void loop_detector_reset(loop_detector *d);
/* Adds a token; returns the cycle length L of a detected loop, or 0. */
RS_INTERNAL int32_t loop_detector_add(loop_detector *d, reason_token token);

/* ---- thinking delimiters per template family (trace_syntax.c) ---- */

/* A message channel and the phase its text belongs to. */
typedef struct syntax_channel {
    const char *name;
    int32_t phase; /* enum reason_phase */
} syntax_channel;

/* How a family's models delimit their thinking. Two shapes: tags around the thinking (<think>
 * ... </think>, then the answer), or message headers naming a channel (Harmony: after
 * "<|start|>assistant" the model writes "<|channel|>analysis<|message|>", the thinking, "<|end|>",
 * then "<|start|>assistant<|channel|>final<|message|>", the answer, "<|return|>"; Gemma 4:
 * "<|channel>thought\n", the thinking, "<channel|>", the answer at once, "<turn|>"). The runtime
 * reads these texts only; nothing else in it names a family. */
typedef struct think_syntax {
    const char *name;
    const char *open;          /* what opens thinking in the output ("<think>") */
    const char *close;         /* what the model writes to end its thinking */
    const char *inject_close;  /* injected to end thinking (budget, callback, end token); it
                                  begins with close */
    const char *prompted_open; /* appended after the generation prompt in prompted mode */
    const char *off_suffix;    /* appended where the prompt leaves the model about to think, when
                                  thinking is off */
    /* message headers; NULL for tag families */
    const char *header_start; /* a header (role, channel) begins */
    const char *channel_tag;  /* the channel's name follows, up to a space or the next tag */
    const char *header_end;   /* the message body follows */
    const char *answer_ends[2]; /* end the answer (besides close and end-of-generation tokens) */
    syntax_channel channels[3];
    int32_t effort_switch; /* 1: effort presets set the template's reasoning_effort */
    int32_t answer_follows_close; /* 1: the answer follows the close directly, with no header
                                     (Gemma 4: "<|channel>thought\n...<channel|>answer") */
} think_syntax;

/* The syntax of a chat-template family (enum reason_template_kind; unknown: the <think> tags). */
RS_INTERNAL const think_syntax *syntax_for_family(int32_t family);
/* The phase of a message whose header is header[0..len): the channel after the last channel_tag;
 * no channel or an unknown one: answer (the text is for the user). */
RS_INTERNAL int32_t syntax_channel_phase(const think_syntax *syn, const char *header, size_t len);
/* Where a prompt leaves a header family's model: *in_header when it ends inside a header (after
 * "<|start|>assistant"), else *phase is that of the message it ends in (-1: none, between
 * messages; where the answer follows the close, ANSWER after a close that ends the prompt's
 * last turn). */
RS_INTERNAL void syntax_prompt_state(const think_syntax *syn, const char *prompt, int32_t *phase,
                                     int32_t *in_header);

/* ---- the engine (trace.c wraps a reason_context; tests script a fake one) ---- */

/* What the runtime uses of a model and its context, so that tests can drive traces with chosen
 * tokens through a scripted model. Calls have reason_decode's and reason_seq_*'s contracts. */
typedef struct trace_engine {
    void *self;
    const reason_tokenizer *tok;
    const char *chat_template; /* NULL: none */
    int32_t n_vocab;           /* logits per row */
    reason_context_params cp;
    reason_status (*decode)(void *self, const reason_batch *batch);
    reason_status (*logits)(void *self, int32_t i, const float **out);
    reason_status (*seq_length)(void *self, int32_t seq, int32_t *len);
    reason_status (*seq_truncate)(void *self, int32_t seq, int32_t n_keep);
    reason_status (*seq_fork)(void *self, int32_t parent, int32_t child);
    reason_status (*seq_free)(void *self, int32_t seq);
    reason_status (*kv_used)(void *self, int64_t *slots); /* KV slots held now */
} trace_engine;

/* reason_run (question) or reason_run_prompt (raw_prompt) on an engine. */
RS_INTERNAL reason_status trace_run(const trace_engine *e, const char *question,
                                    const char *raw_prompt, const reason_params *params,
                                    reason_result **out_result);

/* ---- parameters and results (trace_params.c) ---- */

#define DEFAULT_CONTINUATION "\nWait"
#define DEFAULT_NUDGE "\nLet me try a different approach.\n"
#define EFFORT_LOW_TOKENS 512
#define EFFORT_MEDIUM_TOKENS 2048
#define EFFORT_HIGH_TOKENS 8192
#define BUDGET_UNLIMITED INT32_MAX

/* REASON_ERR_INVALID_ARG naming the first bad field, or what the context lacks. */
RS_INTERNAL reason_status trace_check_params(const reason_params *p,
                                             const reason_context_params *cp);
/* Effort presets and -1 budgets into numbers; min_thinking clamped to max_thinking. */
RS_INTERNAL void trace_resolve_budgets(reason_params *p);

/* What reason_run returns: every string is owned here (freed by reason_result_free). */
struct reason_result {
    int32_t n_traces;
    reason_trace_info *info;
    char **texts; /* (3 * n_traces) thinking, answer, extracted of each trace */
    int32_t n_answers;
    char **answers;
    int32_t *counts;
    float *weights;
    char *winner;
    float share;
    reason_usage usage;
};

#endif
