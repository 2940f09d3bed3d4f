/* pretokenizer.c — regex splitting of text into words (Hugging Face pre-tokenizers), and the
 * table of GGUF tokenizer.ggml.pre names.
 *
 * The regexes come from the tokenizer.json files (Oniguruma syntax in the Rust crate); PCRE2 with
 * PCRE2_UTF | PCRE2_UCP reads the same syntax: \p{L} \p{N} \p{Lu}, (?i:...), (?!...). Both match
 * leftmost-first with backtracking, so the same alternatives win. Matching uses the JIT. */
#include "pretokenizer.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

const char *const pretok_gpt2_regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static reason_status add_step(pretokenizer *pre, pretok_step step) {
    if (pre->n_steps >= PRETOK_MAX_STEPS) {
        pcre2_code_free(step.re);
        return rs_error(REASON_ERR_UNSUPPORTED, "pre-tokenizer has more than %d steps",
                        PRETOK_MAX_STEPS);
    }
    pre->steps[pre->n_steps++] = step;
    return REASON_OK;
}

static reason_status compile(const char *pattern, size_t len, uint32_t extra_options,
                             const char *label, pcre2_code **out) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    /* PCRE2_LITERAL refuses PCRE2_UCP (which only matters to character classes). */
    uint32_t ucp = (extra_options & PCRE2_LITERAL) ? 0 : PCRE2_UCP;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | ucp | extra_options,
                                   &error, &error_offset, NULL);
    if (!re) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error, message, sizeof message);
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: pre-tokenizer regex '%.*s' does not compile at offset %zu: %s", label,
                        (int)RS_MIN(len, 200), pattern, (size_t)error_offset, (char *)message);
    }
    /* Without the JIT (not built for this CPU) the interpreter gives the same matches. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return REASON_OK;
}

reason_status pretok_add_regex(pretokenizer *pre, const char *pattern, size_t len,
                               int32_t behavior, bool invert, const char *label) {
    pcre2_code *re = NULL;
    RS_TRY(compile(pattern, len, 0, label, &re));
    return add_step(pre, (pretok_step){.re = re, .behavior = behavior, .invert = invert});
}

reason_status pretok_add_literal(pretokenizer *pre, const char *text, size_t len,
                                 int32_t behavior, bool invert, const char *label) {
    pcre2_code *re = NULL;
    RS_TRY(compile(text, len, PCRE2_LITERAL, label, &re));
    return add_step(pre, (pretok_step){.re = re, .behavior = behavior, .invert = invert});
}

reason_status pretok_add_bytelevel(pretokenizer *pre, bool add_prefix_space, bool use_regex) {
    pcre2_code *re = NULL;
    if (use_regex)
        RS_TRY(compile(pretok_gpt2_regex, strlen(pretok_gpt2_regex), 0, "ByteLevel", &re));
    if (!re && !add_prefix_space) return REASON_OK;
    return add_step(pre, (pretok_step){.re = re, .behavior = PRETOK_ISOLATED,
                                       .add_prefix_space = add_prefix_space});
}

/* ---- GGUF pre-tokenizer names ---------------------------------------------------------------- */

/* The regexes as the models' tokenizer.json files write them. */
#define QWEN2_REGEX                                                                                \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"      \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Qwen3.5's: Qwen2's with combining marks (\p{M}) kept in words and out of punctuation runs */
#define QWEN35_REGEX                                                                               \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}|"                \
    " ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_REGEX                                                                               \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define O200K_REGEX                                                                                \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"     \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"     \
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* llama.cpp's fallback for "default": four splits applied in turn. */
#define DEFAULT_REGEX_1 "[\\p{P}\\$\\+<=>\\^~\\|]+"
#define DEFAULT_REGEX_2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define DEFAULT_REGEX_3 "\\p{N}+"
#define DEFAULT_REGEX_4 "[0-9][0-9][0-9]"

enum preset_kind { P_DEFAULT, P_GPT2, P_LLAMA3, P_QWEN2, P_QWEN35, P_SMOLLM, P_O200K };

static const struct {
    const char *name;
    enum preset_kind kind;
} preset_names[] = {
    {"default", P_DEFAULT},   {"gpt-2", P_GPT2},         {"phi-2", P_GPT2},
    {"mpt", P_GPT2},          {"olmo", P_GPT2},          {"llama-bpe", P_LLAMA3},
    {"llama3", P_LLAMA3},     {"llama-v3", P_LLAMA3},    {"qwen2", P_QWEN2},
    {"deepseek-r1-qwen", P_QWEN2}, {"smollm", P_SMOLLM}, {"starcoder", P_SMOLLM},
    {"gpt-4o", P_O200K},      {"qwen35", P_QWEN35},
};

reason_status pretok_from_name(pretokenizer *pre, const char *name, pretok_preset *preset) {
    int kind = -1;
    for (size_t i = 0; i < sizeof preset_names / sizeof preset_names[0]; i++)
        if (strcmp(name, preset_names[i].name) == 0) kind = (int)preset_names[i].kind;
    *preset = (pretok_preset){0};
    const char *label = "tokenizer.ggml.pre";
    switch (kind) {
    case P_DEFAULT:
        RS_TRY(pretok_add_regex(pre, DEFAULT_REGEX_1, strlen(DEFAULT_REGEX_1), 0, false, label));
        RS_TRY(pretok_add_regex(pre, DEFAULT_REGEX_2, strlen(DEFAULT_REGEX_2), 0, false, label));
        RS_TRY(pretok_add_regex(pre, DEFAULT_REGEX_3, strlen(DEFAULT_REGEX_3), 0, false, label));
        return pretok_add_regex(pre, DEFAULT_REGEX_4, strlen(DEFAULT_REGEX_4), 0, false, label);
    case P_GPT2: return pretok_add_bytelevel(pre, false, true);
    case P_LLAMA3:
        preset->ignore_merges = true;
        preset->add_bos = true;
        return pretok_add_regex(pre, LLAMA3_REGEX, strlen(LLAMA3_REGEX), 0, false, label);
    case P_QWEN2:
        preset->nfc = true;
        return pretok_add_regex(pre, QWEN2_REGEX, strlen(QWEN2_REGEX), 0, false, label);
    case P_QWEN35: /* NFC as Qwen2/3 (docs/qwen35.md) */
        preset->nfc = true;
        return pretok_add_regex(pre, QWEN35_REGEX, strlen(QWEN35_REGEX), 0, false, label);
    case P_SMOLLM: /* Digits(individual_digits) then ByteLevel(use_regex) */
        RS_TRY(pretok_add_regex(pre, "\\p{N}", 5, 0, false, label));
        return pretok_add_bytelevel(pre, false, true);
    case P_O200K:
        preset->ignore_merges = true;
        return pretok_add_regex(pre, O200K_REGEX, strlen(O200K_REGEX), 0, false, label);
    default:
        return rs_error(REASON_ERR_UNSUPPORTED, "unsupported pre-tokenizer '%s' (tokenizer.ggml.pre)",
                        name);
    }
}

void pretok_free(pretokenizer *pre) {
    for (int32_t i = 0; i < pre->n_steps; i++) pcre2_code_free(pre->steps[i].re);
    pre->n_steps = 0;
}

/* ---- running ---------------------------------------------------------------------------------- */

static reason_status run_step(const pretokenizer *pre, int32_t k, const uint8_t *s, size_t len,
                              pretok_scratch *scratch, pretok_sink sink, void *ctx);

static reason_status emit(const pretokenizer *pre, int32_t k, const uint8_t *s, size_t len,
                          bool is_match, pretok_scratch *scratch, pretok_sink sink, void *ctx) {
    const pretok_step *step = &pre->steps[k];
    if (len == 0) return REASON_OK;
    if (step->behavior == PRETOK_REMOVED && is_match != step->invert) return REASON_OK;
    return run_step(pre, k + 1, s, len, scratch, sink, ctx);
}

static int match_once(const pcre2_code *re, const uint8_t *s, size_t len, size_t start,
                      pretok_scratch *scratch) {
    int rc = pcre2_match(re, s, len, start, PCRE2_NO_UTF_CHECK, scratch->match,
                         scratch->match_context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !scratch->jit_stack) {
        /* Long runs can outgrow the JIT's default 32 KiB machine-stack area. */
        scratch->match_context = pcre2_match_context_create(NULL);
        scratch->jit_stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, NULL);
        if (!scratch->match_context || !scratch->jit_stack) return PCRE2_ERROR_NOMEMORY;
        pcre2_jit_stack_assign(scratch->match_context, NULL, scratch->jit_stack);
        rc = pcre2_match(re, s, len, start, PCRE2_NO_UTF_CHECK, scratch->match,
                         scratch->match_context);
    }
    return rc;
}

static reason_status run_step(const pretokenizer *pre, int32_t k, const uint8_t *s, size_t len,
                              pretok_scratch *scratch, pretok_sink sink, void *ctx) {
    if (len == 0) return REASON_OK;
    if (k == pre->n_steps) return sink(ctx, s, len);
    const pretok_step *step = &pre->steps[k];
    if (step->add_prefix_space && s[0] != ' ') {
        if (scratch->copy_capacity[k] < len + 1) {
            size_t capacity = RS_MAX(len + 1, 2 * scratch->copy_capacity[k]);
            uint8_t *copy = realloc(scratch->copy[k], capacity);
            if (!copy) return rs_error(REASON_ERR_NOMEM, "out of memory in pre-tokenizer");
            scratch->copy[k] = copy;
            scratch->copy_capacity[k] = capacity;
        }
        scratch->copy[k][0] = ' ';
        memcpy(scratch->copy[k] + 1, s, len);
        s = scratch->copy[k];
        len++;
    }
    if (!step->re) return run_step(pre, k + 1, s, len, scratch, sink, ctx);
    if (!scratch->match) {
        scratch->match = pcre2_match_data_create(1, NULL);
        if (!scratch->match) return rs_error(REASON_ERR_NOMEM, "out of memory in pre-tokenizer");
    }
    size_t gap = 0, pos = 0;
    while (pos < len) {
        int rc = match_once(step->re, s, len, pos, scratch);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(rc, message, sizeof message);
            return rs_error(REASON_ERR_INTERNAL, "pre-tokenizer regex failed at byte %zu: %s", pos,
                            (char *)message);
        }
        PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(scratch->match);
        size_t begin = ovector[0], end = ovector[1];
        if (end == begin) { /* an empty match splits nothing; step over one character */
            pos = begin + 1;
            while (pos < len && (s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (step->behavior == PRETOK_MERGED_WITH_PREVIOUS) {
            /* The crate's pieces: text before a match and the match are one; a match right after
             * a match (or at the start) stands alone. */
            RS_TRY(emit(pre, k, s + gap, end - gap, false, scratch, sink, ctx));
        } else {
            RS_TRY(emit(pre, k, s + gap, begin - gap, false, scratch, sink, ctx));
            RS_TRY(emit(pre, k, s + begin, end - begin, true, scratch, sink, ctx));
        }
        gap = pos = end;
    }
    return emit(pre, k, s + gap, len - gap, false, scratch, sink, ctx);
}

reason_status pretok_run(const pretokenizer *pre, const uint8_t *text, size_t len,
                         pretok_scratch *scratch, pretok_sink sink, void *ctx) {
    return run_step(pre, 0, text, len, scratch, sink, ctx);
}

void pretok_scratch_free(pretok_scratch *scratch) {
    pcre2_match_data_free(scratch->match);
    pcre2_match_context_free(scratch->match_context);
    pcre2_jit_stack_free(scratch->jit_stack);
    for (int i = 0; i < PRETOK_MAX_STEPS; i++) free(scratch->copy[i]);
    memset(scratch, 0, sizeof *scratch);
}
