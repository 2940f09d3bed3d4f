/* chat_template.h — rendering chat messages into prompt text for the known template families. */
#ifndef REASON_CHAT_TEMPLATE_H
#define REASON_CHAT_TEMPLATE_H

#include "core.h"

/* Template variants. The public kinds (enum reason_template_kind) name families; members of a
 * family whose real templates render differently get a variant of their own. Variants 1..8 are
 * the public kinds; the others are recognised from the template source (chat_detect_variant). */
enum chat_variant {
    CHAT_CHATML = REASON_TEMPLATE_CHATML,           /* plain ChatML, no default system prompt */
    CHAT_QWEN3 = REASON_TEMPLATE_QWEN3,             /* Qwen3: think stripping, enable_thinking */
    CHAT_DEEPSEEK_R1 = REASON_TEMPLATE_DEEPSEEK_R1, /* R1 distills, generation prompt opens
                                                       "<think>\n" (templates of 2025-02 on) */
    CHAT_LLAMA3 = REASON_TEMPLATE_LLAMA3,           /* Llama 3.1 / 3.2: dated system block */
    CHAT_SMOLLM2 = REASON_TEMPLATE_SMOLLM2,         /* ChatML + SmolLM's default system prompt */
    CHAT_QWEN35 = REASON_TEMPLATE_QWEN35,           /* Qwen3.5: trimmed contents, "<think>\n"
                                                       opened unless enable_thinking is 0 */
    CHAT_HARMONY = REASON_TEMPLATE_HARMONY,         /* gpt-oss: Harmony messages and channels */
    CHAT_GEMMA4 = REASON_TEMPLATE_GEMMA4,           /* Gemma 4: an assistant message after another
                                                       continues the same model turn */
    CHAT_QWEN2_5 = 16,       /* ChatML + Qwen2.5's default system prompt */
    CHAT_LLAMA3_0 = 17,      /* Llama 3.0: no system block; the assistant header always ends it */
    CHAT_DEEPSEEK_R1_V1 = 18, /* first R1 distill template: generation prompt ends at Assistant */
    CHAT_QWEN38 = 19,         /* Qwen3.8 (family QWEN35): reasoning_effort, preserve_thinking */
    CHAT_GEMMA4_INTERLEAVED = 20 /* Gemma 4's "interleaved" template (family GEMMA4): every
                                    assistant message opens its own model turn */
};

/* Renders with an explicit kind (not AUTO): a public kind or an enum chat_variant. */
RS_INTERNAL reason_status chat_render(int32_t kind, const reason_chat_message *messages,
                                      size_t n_messages, const reason_chat_params *params,
                                      char *buf, size_t capacity, size_t *out_len);

/* Recognises a Jinja template source by distinctive fragments; REASON_ERR_UNSUPPORTED if none. */
RS_INTERNAL reason_status chat_detect_variant(const char *template_source, int32_t *out_variant);

/* The public family (enum reason_template_kind) of a variant; 0 for an unknown value. */
RS_INTERNAL int32_t chat_variant_family(int32_t variant);

/* Where a prompt rendered with these params leaves the model, for the trace's phase tracking. */
enum chat_prompt_end {
    CHAT_END_PLAIN = 0,           /* no thinking markup: the model opens <think> itself if at all */
    CHAT_END_IN_THINKING = 1,     /* the prompt ends inside an opened <think> (R1 distills) */
    CHAT_END_THINKING_CLOSED = 2, /* the prompt holds an empty, closed think block (Qwen3 /
                                     Qwen3.5 off) or thought channel (Gemma 4 off) */
};
RS_INTERNAL int32_t chat_prompt_end(int32_t variant, const reason_chat_params *params);

#endif
