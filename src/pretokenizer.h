/* pretokenizer.h — splitting normalized text into words before BPE: a sequence of steps, each
 * splitting every piece the previous step produced (Hugging Face "Split" with a PCRE2 regex,
 * "ByteLevel" with its optional prefix space and GPT-2 regex, "Digits"). */
#ifndef REASON_PRETOKENIZER_H
#define REASON_PRETOKENIZER_H

#include "core.h"

#define PRETOK_MAX_STEPS 8

enum pretok_behavior {
    PRETOK_ISOLATED = 0, /* matches and the text between them are separate pieces */
    PRETOK_REMOVED = 1,  /* matches are dropped */
    PRETOK_MERGED_WITH_PREVIOUS = 2, /* a match ends the piece before it (if that is no match) */
};

typedef struct pretok_step {
    struct pcre2_real_code_8 *re; /* NULL for a step that only adds the prefix space */
    int32_t behavior;             /* enum pretok_behavior */
    bool invert;                  /* the pattern describes what to keep between splits */
    bool add_prefix_space;        /* prepend ' ' to a piece that does not start with one */
} pretok_step;

typedef struct pretokenizer {
    pretok_step steps[PRETOK_MAX_STEPS];
    int32_t n_steps;
} pretokenizer;

/* The regex of GPT-2's ByteLevel pre-tokenizer (Hugging Face's use_regex). */
extern const char *const pretok_gpt2_regex;

/* Appends a regex split. label names the source in error messages (e.g. "tokenizer.json"). */
RS_INTERNAL reason_status pretok_add_regex(pretokenizer *pre, const char *pattern, size_t len,
                                           int32_t behavior, bool invert, const char *label);
/* Appends a split on a literal string. */
RS_INTERNAL reason_status pretok_add_literal(pretokenizer *pre, const char *text, size_t len,
                                             int32_t behavior, bool invert, const char *label);
/* Appends Hugging Face's ByteLevel pre-tokenizer. */
RS_INTERNAL reason_status pretok_add_bytelevel(pretokenizer *pre, bool add_prefix_space,
                                               bool use_regex);

/* What a GGUF tokenizer.ggml.pre name stands for. */
typedef struct pretok_preset {
    bool nfc;           /* the model's normalizer is NFC (Qwen) */
    bool ignore_merges; /* a word that is a token is emitted whole */
    bool add_bos;       /* BOS by default when the file does not say */
} pretok_preset;

/* Builds the pre-tokenizer named by tokenizer.ggml.pre; REASON_ERR_UNSUPPORTED naming it when
 * unknown. */
RS_INTERNAL reason_status pretok_from_name(pretokenizer *pre, const char *name,
                                           pretok_preset *preset);

RS_INTERNAL void pretok_free(pretokenizer *pre);

/* Receives each final piece, in order. */
typedef reason_status (*pretok_sink)(void *ctx, const uint8_t *piece, size_t len);

/* Per-call working memory (match data, prefix-space copies); zero-initialise, then free. */
typedef struct pretok_scratch {
    struct pcre2_real_match_data_8 *match;
    struct pcre2_real_match_context_8 *match_context;
    struct pcre2_real_jit_stack_8 *jit_stack;
    uint8_t *copy[PRETOK_MAX_STEPS];
    size_t copy_capacity[PRETOK_MAX_STEPS];
} pretok_scratch;

/* Splits text (valid UTF-8) and hands every piece to sink. */
RS_INTERNAL reason_status pretok_run(const pretokenizer *pre, const uint8_t *text, size_t len,
                                     pretok_scratch *scratch, pretok_sink sink, void *ctx);
RS_INTERNAL void pretok_scratch_free(pretok_scratch *scratch);

#endif
