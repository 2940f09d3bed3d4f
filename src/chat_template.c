/* chat_template.c — chat messages to prompt text, for the template families we know, without a
 * Jinja interpreter.
 *
 * Each family is rendered by a small function that reproduces, byte for byte, what the model's
 * real Jinja template produces under Hugging Face transformers' apply_chat_template
 * (trim_blocks, lstrip_blocks, no tools). tools/gen_chat_fixtures.py renders the real templates
 * with jinja2 and tests/test_chat_template.c compares every case (Gemma 4's: tools/
 * gen_gemma4_chat_fixtures.py, tests/data/chat/gemma4.json); gpt-oss's Harmony format follows
 * OpenAI's own renderer, openai-harmony (tools/gen_harmony_fixtures.py). Where a template
 * transforms content we follow Python's string semantics: Jinja's `trim` is str.strip() (Unicode whitespace),
 * `lstrip('\n')` strips only newlines, `split(s)[-1]` is what follows the last s.
 */
#include "chat_template.h"
#include "model.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------------- */
/* Output: a writer with no buffer only counts; chat_render counts first, then writes into a      */
/* buffer it knows is large enough.                                                               */

typedef struct writer {
    char *buf; /* NULL: count only */
    size_t len;
} writer;

static void put(writer *w, const char *s, size_t n) {
    if (w->buf && n) memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_str(writer *w, const char *s) { put(w, s, strlen(s)); }

typedef struct span {
    const char *p;
    size_t n;
} span;

static void put_span(writer *w, span s) { put(w, s.p, s.n); }

static span span_of(const char *s) { return (span){s, strlen(s)}; }

static const char *find_first(span s, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= s.n; i++)
        if (memcmp(s.p + i, needle, k) == 0) return s.p + i;
    return NULL;
}

static const char *find_last(span s, const char *needle) {
    size_t k = strlen(needle);
    if (k > s.n) return NULL;
    for (size_t i = s.n - k + 1; i-- > 0;)
        if (memcmp(s.p + i, needle, k) == 0) return s.p + i;
    return NULL;
}

static bool starts_with(span s, const char *prefix) {
    size_t k = strlen(prefix);
    return s.n >= k && memcmp(s.p, prefix, k) == 0;
}

static bool ends_with(span s, const char *suffix) {
    size_t k = strlen(suffix);
    return s.n >= k && memcmp(s.p + s.n - k, suffix, k) == 0;
}

/* Python's str.lstrip('\n') / rstrip('\n'). */
static span lstrip_nl(span s) {
    while (s.n && s.p[0] == '\n') s.p++, s.n--;
    return s;
}
static span rstrip_nl(span s) {
    while (s.n && s.p[s.n - 1] == '\n') s.n--;
    return s;
}

/* Python whitespace (str.isspace) in UTF-8: the length of such a character starting at p, or 0. */
static size_t space_at(const unsigned char *p, size_t n) {
    if (n >= 1 && ((p[0] >= 0x09 && p[0] <= 0x0d) || (p[0] >= 0x1c && p[0] <= 0x20))) return 1;
    if (n >= 2 && p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0)) return 2;
    if (n >= 3) {
        if (p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) return 3; /* U+1680 */
        if (p[0] == 0xe2 && p[1] == 0x80 &&
            ((p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf))
            return 3; /* U+2000..200A, U+2028, U+2029, U+202F */
        if (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) return 3; /* U+205F */
        if (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80) return 3; /* U+3000 */
    }
    return 0;
}

/* The length of a Python-whitespace character ending at p + n, or 0. */
static size_t space_before(const unsigned char *p, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        if (k > 1 && p[n - k] < 0xc0) continue; /* not a lead byte */
        if (space_at(p + n - k, k) == k) return k;
    }
    return 0;
}

/* Python's str.lstrip() / rstrip(). */
static span ltrim(span s) {
    size_t k;
    while (s.n && (k = space_at((const unsigned char *)s.p, s.n)) > 0) s.p += k, s.n -= k;
    return s;
}
static span rtrim(span s) {
    size_t k;
    while (s.n && (k = space_before((const unsigned char *)s.p, s.n)) > 0) s.n -= k;
    return s;
}

/* Jinja's trim filter: Python's str.strip(). */
static span trim(span s) { return rtrim(ltrim(s)); }

/* ---------------------------------------------------------------------------------------------- */
/* Families                                                                                       */

#define IM_START "<|im_start|>"
#define IM_END "<|im_end|>"
#define QWEN25_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
#define SMOLLM2_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
#define DS_BOS "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define DS_EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define DS_USER "<\xef\xbd\x9cUser\xef\xbd\x9c>"
#define DS_ASSISTANT "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"
#define LLAMA_BOS "<|begin_of_text|>"
#define LLAMA_HEADER(role) "<|start_header_id|>" role "<|end_header_id|>\n\n"
#define LLAMA_EOT "<|eot_id|>"

typedef struct chat {
    const reason_chat_message *m;
    size_t n;
    bool gen;      /* add_generation_prompt */
    bool think;    /* enable_thinking */
    int32_t keep;  /* preserve_thinking (enum reason_chat_preserve) */
    int32_t effort; /* reasoning_effort (enum reason_chat_effort) */
    int32_t date;  /* Harmony's current date, YYYYMMDD, resolved once for both passes; -1: none */
} chat;

static bool role_is(const reason_chat_message *m, const char *role) {
    return strcmp(m->role, role) == 0;
}

static void chatml_turn(writer *w, const reason_chat_message *m) {
    put_str(w, IM_START);
    put_str(w, m->role);
    put_str(w, "\n");
    put_str(w, m->content);
    put_str(w, IM_END "\n");
}

/* CHATML, QWEN2_5 and SMOLLM2: ChatML turns, differing in the default system prompt and in
 * whether a leading system message is part of the loop. */
static void render_chatml(writer *w, const chat *c, int32_t variant) {
    size_t first = 0;
    if (variant == CHAT_QWEN2_5) {
        if (c->n > 0 && role_is(&c->m[0], "system")) {
            put_str(w, IM_START "system\n");
            put_str(w, c->m[0].content);
            put_str(w, IM_END "\n");
            first = 1;
        } else {
            put_str(w, IM_START "system\n" QWEN25_SYSTEM IM_END "\n");
        }
    } else if (variant == CHAT_SMOLLM2) {
        if (c->n > 0 && !role_is(&c->m[0], "system"))
            put_str(w, IM_START "system\n" SMOLLM2_SYSTEM IM_END "\n");
    }
    for (size_t i = first; i < c->n; i++) chatml_turn(w, &c->m[i]);
    if (c->gen) put_str(w, IM_START "assistant\n");
}

/* Qwen3: past assistant turns lose their <think> block; turns after the last real user query
 * keep (or get an empty) one. */
static void render_qwen3(writer *w, const chat *c) {
    if (c->n > 0 && role_is(&c->m[0], "system")) {
        put_str(w, IM_START "system\n");
        put_str(w, c->m[0].content);
        put_str(w, IM_END "\n");
    }
    /* The last user message that is not a wrapped tool response. */
    size_t last_query = c->n - 1;
    for (size_t k = c->n; k-- > 0;) {
        span content = span_of(c->m[k].content);
        if (role_is(&c->m[k], "user") &&
            !(starts_with(content, "<tool_response>") && ends_with(content, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        const reason_chat_message *m = &c->m[i];
        if (role_is(m, "user") || (role_is(m, "system") && i > 0)) {
            chatml_turn(w, m);
        } else if (role_is(m, "assistant")) {
            span content = span_of(m->content);
            span reasoning = {"", 0};
            const char *first_close = find_first(content, "</think>");
            if (first_close) {
                const char *last_close = find_last(content, "</think>");
                span before = rstrip_nl((span){content.p, (size_t)(first_close - content.p)});
                const char *open = find_last(before, "<think>");
                if (open) before = (span){open + 7, before.n - (size_t)(open + 7 - before.p)};
                reasoning = lstrip_nl(before);
                span after = {last_close + 8, content.n - (size_t)(last_close + 8 - content.p)};
                content = lstrip_nl(after);
            }
            put_str(w, IM_START "assistant\n");
            if (i > last_query && (i == c->n - 1 || reasoning.n > 0)) {
                put_str(w, "<think>\n");
                put_span(w, rstrip_nl(lstrip_nl(reasoning)));
                put_str(w, "\n</think>\n\n");
                put_span(w, lstrip_nl(content));
            } else {
                put_span(w, content);
            }
            put_str(w, IM_END "\n");
        }
    }
    if (c->gen) {
        put_str(w, IM_START "assistant\n");
        if (!c->think) put_str(w, "<think>\n\n</think>\n\n");
    }
}

/* An assistant message's content split as the Qwen templates do: the reasoning is what precedes
 * the first "</think>" (newlines stripped on its right), after the last "<think>" before it
 * (newlines stripped on its left); the content is what follows the last "</think>", newlines
 * stripped on its left. No "</think>": no reasoning, the content as it is. */
static void qwen_split_think(span content, span *reasoning, span *answer) {
    *reasoning = (span){"", 0};
    *answer = content;
    const char *first_close = find_first(content, "</think>");
    if (!first_close) return;
    const char *last_close = find_last(content, "</think>");
    span before = rstrip_nl((span){content.p, (size_t)(first_close - content.p)});
    const char *open = find_last(before, "<think>");
    if (open) before = (span){open + 7, before.n - (size_t)(open + 7 - before.p)};
    *reasoning = lstrip_nl(before);
    *answer = lstrip_nl((span){last_close + 8, content.n - (size_t)(last_close + 8 - content.p)});
}

/* Qwen3.5's last real user query: the last user message whose trimmed content is not a wrapped
 * tool response; -1 when there is none (the template refuses such a conversation). */
static long qwen35_last_query(const chat *c) {
    for (size_t k = c->n; k-- > 0;) {
        span content = trim(span_of(c->m[k].content));
        if (role_is(&c->m[k], "user") &&
            !(starts_with(content, "<tool_response>") && ends_with(content, "</tool_response>")))
            return (long)k;
    }
    return -1;
}

/* Qwen3.5 (tests/data/chat/qwen3_5.jinja): every content trimmed; a leading system message only
 * (chat_render refuses one elsewhere, and a conversation without a user query, as the template
 * raises); assistant turns after the last user query always carry a think block (empty when the
 * content had none), earlier ones lose it; the generation prompt opens "<think>\n" unless
 * enable_thinking is 0, which pre-closes an empty block. The template has no preserve_thinking
 * or reasoning_effort. */
static void render_qwen35(writer *w, const chat *c) {
    const long last_query = qwen35_last_query(c);
    for (size_t i = 0; i < c->n; i++) {
        const reason_chat_message *m = &c->m[i];
        span content = trim(span_of(m->content));
        if (role_is(m, "system")) {
            put_str(w, IM_START "system\n");
            put_span(w, content);
            put_str(w, IM_END "\n");
        } else if (role_is(m, "user")) {
            put_str(w, IM_START "user\n");
            put_span(w, content);
            put_str(w, IM_END "\n");
        } else {
            span reasoning, answer;
            qwen_split_think(content, &reasoning, &answer);
            put_str(w, IM_START "assistant\n");
            if ((long)i > last_query) {
                put_str(w, "<think>\n");
                put_span(w, trim(reasoning));
                put_str(w, "\n</think>\n\n");
            }
            put_span(w, answer);
            put_str(w, IM_END "\n");
        }
    }
    if (c->gen) put_str(w, c->think ? IM_START "assistant\n<think>\n"
                                    : IM_START "assistant\n<think>\n\n</think>\n\n");
}

#define QWEN38_XHIGH                                                                               \
    "Reasoning effort is set to xhigh. Please think carefully through the task, validate key "    \
    "assumptions, consider plausible alternatives, and prioritize correctness, consistency, and " \
    "clarity in the final answer."
#define QWEN38_LOW                                                                                 \
    "Reasoning effort is set to low. Keep your thinking brief and focused, moving directly to "   \
    "the conclusion without unnecessary elaboration."

/* Qwen3.8 (tests/data/chat/qwen3_8.jinja): Qwen3.5's structure with a reasoning-effort sentence
 * opening the system block when thinking (xhigh by default, none for medium), and assistant
 * turns that take their reasoning only from a reasoning_content field (our messages have none,
 * so an empty block) and keep it in every turn unless preserve_thinking is false. Contents are
 * trimmed but not split at "</think>". */
static void render_qwen38(writer *w, const chat *c) {
    const char *instr = !c->think                          ? ""
                        : c->effort == REASON_CHAT_EFFORT_LOW    ? QWEN38_LOW
                        : c->effort == REASON_CHAT_EFFORT_MEDIUM ? ""
                                                            : QWEN38_XHIGH;
    const bool has_system = role_is(&c->m[0], "system");
    span sys = has_system ? trim(span_of(c->m[0].content)) : (span){"", 0};
    if (sys.n || *instr) {
        put_str(w, IM_START "system\n");
        put_str(w, instr);
        if (sys.n && *instr) put_str(w, "\n\n");
        put_span(w, sys);
        put_str(w, IM_END "\n");
    }
    const long last_query = qwen35_last_query(c);
    for (size_t i = has_system ? 1 : 0; i < c->n; i++) {
        const reason_chat_message *m = &c->m[i];
        span content = trim(span_of(m->content));
        if (role_is(m, "user")) {
            put_str(w, IM_START "user\n");
        } else {
            put_str(w, IM_START "assistant\n");
            if (c->keep != REASON_CHAT_PRESERVE_OFF || (long)i > last_query)
                put_str(w, "<think>\n\n</think>\n\n");
        }
        put_span(w, content);
        put_str(w, IM_END "\n");
    }
    if (c->gen) put_str(w, c->think ? IM_START "assistant\n<think>\n"
                                    : IM_START "assistant\n<think>\n\n</think>\n\n");
}

/* DeepSeek-R1 distills: BOS and the (last) system prompt first, turns without separators,
 * past answers without their thinking. */
static void render_deepseek_r1(writer *w, const chat *c, int32_t variant) {
    put_str(w, DS_BOS);
    for (size_t i = c->n; i-- > 0;) {
        if (role_is(&c->m[i], "system")) {
            put_str(w, c->m[i].content);
            break;
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        const reason_chat_message *m = &c->m[i];
        span content = span_of(m->content);
        if (role_is(m, "user")) {
            put_str(w, DS_USER);
            put_span(w, content);
        } else if (role_is(m, "assistant")) {
            const char *close = find_last(content, "</think>");
            if (close) content = (span){close + 8, content.n - (size_t)(close + 8 - content.p)};
            put_str(w, DS_ASSISTANT);
            put_span(w, content);
            put_str(w, DS_EOS);
        }
    }
    if (c->gen)
        put_str(w, variant == CHAT_DEEPSEEK_R1_V1 ? DS_ASSISTANT : DS_ASSISTANT "<think>\n");
}

static void llama3_turn(writer *w, const reason_chat_message *m) {
    put_str(w, "<|start_header_id|>");
    put_str(w, m->role);
    put_str(w, "<|end_header_id|>\n\n");
    put_span(w, trim(span_of(m->content)));
    put_str(w, LLAMA_EOT);
}

/* Llama 3.1 / 3.2 always open with a system block carrying the knowledge cut-off and the date
 * (the templates' default, "26 Jul 2024"); Llama 3.0 has none and always ends with the assistant
 * header. Contents are trimmed. */
static void render_llama3(writer *w, const chat *c, int32_t variant) {
    if (variant == CHAT_LLAMA3_0) {
        for (size_t i = 0; i < c->n; i++) {
            if (i == 0) put_str(w, LLAMA_BOS);
            llama3_turn(w, &c->m[i]);
        }
        put_str(w, LLAMA_HEADER("assistant"));
        return;
    }
    put_str(w, LLAMA_BOS LLAMA_HEADER("system"));
    put_str(w, "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
    size_t first = 0;
    if (c->n > 0 && role_is(&c->m[0], "system")) {
        put_span(w, trim(span_of(c->m[0].content)));
        first = 1;
    }
    put_str(w, LLAMA_EOT);
    for (size_t i = first; i < c->n; i++) llama3_turn(w, &c->m[i]);
    if (c->gen) put_str(w, LLAMA_HEADER("assistant"));
}

#define HARMONY_SYSTEM                                                                             \
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"     \
    "Knowledge cutoff: 2024-06\n"
#define HARMONY_CHANNELS                                                                           \
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."

static bool role_is_instructions(const reason_chat_message *m) {
    return role_is(m, "system") || role_is(m, "developer");
}

/* gpt-oss's Harmony format, as openai-harmony renders it (tests/data/chat/harmony.json from
 * tools/gen_harmony_fixtures.py): the system block OpenAI's renderer builds from its defaults
 * plus the date and effort; the first system/developer message as developer instructions (none
 * when empty, as gpt-oss's Jinja template does); past answers in the final channel, their
 * analysis kept only when asked (openai-harmony drops analysis before a final message). Contents
 * are not trimmed. */
static void render_harmony(writer *w, const chat *c) {
    put_str(w, HARMONY_SYSTEM);
    if (c->date > 0) {
        char line[48];
        snprintf(line, sizeof line, "Current date: %04d-%02d-%02d\n", (int)(c->date / 10000),
                 (int)(c->date / 100 % 100), (int)(c->date % 100));
        put_str(w, line);
    }
    put_str(w, "\nReasoning: ");
    put_str(w, c->effort == REASON_CHAT_EFFORT_LOW    ? "low"
               : c->effort == REASON_CHAT_EFFORT_HIGH ? "high"
                                                      : "medium");
    put_str(w, "\n\n" HARMONY_CHANNELS "<|end|>");
    size_t first = 0;
    if (c->n > 0 && role_is_instructions(&c->m[0])) {
        first = 1;
        if (c->m[0].content[0]) {
            put_str(w, "<|start|>developer<|message|># Instructions\n\n");
            put_str(w, c->m[0].content);
            put_str(w, "<|end|>");
        }
    }
    for (size_t i = first; i < c->n; i++) {
        const reason_chat_message *m = &c->m[i];
        if (role_is(m, "user")) {
            put_str(w, "<|start|>user<|message|>");
            put_str(w, m->content);
            put_str(w, "<|end|>");
            continue;
        }
        span reasoning, answer;
        qwen_split_think(span_of(m->content), &reasoning, &answer);
        if (c->keep == REASON_CHAT_PRESERVE_ON && reasoning.n) {
            put_str(w, "<|start|>assistant<|channel|>analysis<|message|>");
            put_span(w, reasoning);
            put_str(w, "<|end|>");
        }
        put_str(w, "<|start|>assistant<|channel|>final<|message|>");
        put_span(w, answer);
        put_str(w, "<|end|>");
    }
    if (c->gen) put_str(w, "<|start|>assistant");
}

#define G4_OPEN "<|channel>"
#define G4_CLOSE "<channel|>"

/* The next piece of an assistant content that Gemma 4's strip_thinking keeps: the content is
 * split at every "<channel|>" (as Python's split: a trailing close leaves an empty last part),
 * each part cut at its first "<|channel>". *at: where the next part starts; past the end: done. */
static bool gemma4_next_kept(span content, size_t *at, span *out) {
    if (*at > content.n) return false;
    span part = {content.p + *at, content.n - *at};
    const char *close = find_first(part, G4_CLOSE);
    if (close) {
        part.n = (size_t)(close - part.p);
        *at = (size_t)(close - content.p) + strlen(G4_CLOSE);
    } else {
        *at = content.n + 1;
    }
    const char *open = find_first(part, G4_OPEN);
    if (open) part.n = (size_t)(open - part.p);
    *out = part;
    return true;
}

/* strip_thinking: the kept pieces joined, then str.strip() over the whole. Blank pieces before
 * the first non-blank one and after the last fall away; those two are trimmed outside only. */
static void put_gemma4_answer(writer *w, span content) {
    size_t first = SIZE_MAX, last = 0, k = 0, at = 0;
    span part;
    for (; gemma4_next_kept(content, &at, &part); k++) {
        if (!trim(part).n) continue;
        if (first == SIZE_MAX) first = k;
        last = k;
    }
    if (first == SIZE_MAX) return;
    at = 0;
    for (k = 0; k <= last && gemma4_next_kept(content, &at, &part); k++) {
        if (k < first) continue;
        if (k == first) part = ltrim(part);
        if (k == last) part = rtrim(part);
        put_span(w, part);
    }
}

/* Gemma 4 (tests/data/chat/gemma4*.jinja, no tools): BOS; a system turn when thinking is on or
 * the first message is system/developer, "<|think|>\n" atop it when on; turns with trimmed
 * contents, assistant ones as "model" without their thought channels (the template renders past
 * reasoning only beside tool calls, so preserve_thinking has nothing to keep); thinking off
 * pre-closes an empty thought channel after the generation prompt. */
static void render_gemma4(writer *w, const chat *c, int32_t variant) {
    put_str(w, "<bos>");
    const bool lead = c->n > 0 && role_is_instructions(&c->m[0]);
    if (c->think || lead) {
        put_str(w, "<|turn>system\n");
        if (c->think) put_str(w, "<|think|>\n");
        if (lead) put_span(w, trim(span_of(c->m[0].content)));
        put_str(w, "<turn|>\n");
    }
    for (size_t i = lead ? 1 : 0; i < c->n; i++) {
        const reason_chat_message *m = &c->m[i];
        const bool model = role_is(m, "assistant");
        /* the main template writes an assistant message that follows another into the same
         * model turn (no new header) */
        const bool goes_on = model && variant == CHAT_GEMMA4 && i > (lead ? 1u : 0u) &&
                             role_is(&c->m[i - 1], "assistant");
        if (!goes_on) {
            put_str(w, "<|turn>");
            put_str(w, model ? "model" : m->role);
            put_str(w, "\n");
        }
        if (model) put_gemma4_answer(w, span_of(m->content));
        else put_span(w, trim(span_of(m->content)));
        put_str(w, "<turn|>\n");
    }
    if (c->gen)
        put_str(w, c->think ? "<|turn>model\n" : "<|turn>model\n" G4_OPEN "thought\n" G4_CLOSE);
}

/* Harmony's date: YYYYMMDD checked, 0 made today's (local time, as the template's strftime_now),
 * negative left out. */
static reason_status harmony_date(int32_t given, int32_t *out) {
    if (given < 0) {
        *out = -1;
        return REASON_OK;
    }
    if (given == 0) {
        const time_t now = time(NULL);
        struct tm tm;
        if (now == (time_t)-1 || !localtime_r(&now, &tm))
            return rs_error(REASON_ERR_TEMPLATE, "chat template Harmony: no clock for today's "
                                                 "date; set params->current_date");
        *out = (int32_t)(tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
        return REASON_OK;
    }
    const int32_t y = given / 10000, mo = given / 100 % 100, d = given % 100;
    if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "chat template: current_date = %d is not a date written YYYYMMDD",
                        (int)given);
    *out = given;
    return REASON_OK;
}

static const char *variant_name(int32_t variant) {
    switch (variant) {
    case CHAT_CHATML: return "ChatML";
    case CHAT_QWEN3: return "Qwen3";
    case CHAT_DEEPSEEK_R1: return "DeepSeek-R1";
    case CHAT_LLAMA3: return "Llama 3.1";
    case CHAT_SMOLLM2: return "SmolLM2";
    case CHAT_QWEN35: return "Qwen3.5";
    case CHAT_QWEN38: return "Qwen3.8";
    case CHAT_HARMONY: return "Harmony";
    case CHAT_QWEN2_5: return "Qwen2.5";
    case CHAT_LLAMA3_0: return "Llama 3.0";
    case CHAT_DEEPSEEK_R1_V1: return "DeepSeek-R1 (first release)";
    case CHAT_GEMMA4: return "Gemma 4";
    case CHAT_GEMMA4_INTERLEAVED: return "Gemma 4 (interleaved)";
    default: return NULL;
    }
}

int32_t chat_variant_family(int32_t variant) {
    switch (variant) {
    case CHAT_CHATML:
    case CHAT_QWEN2_5: return REASON_TEMPLATE_CHATML;
    case CHAT_QWEN3: return REASON_TEMPLATE_QWEN3;
    case CHAT_DEEPSEEK_R1:
    case CHAT_DEEPSEEK_R1_V1: return REASON_TEMPLATE_DEEPSEEK_R1;
    case CHAT_LLAMA3:
    case CHAT_LLAMA3_0: return REASON_TEMPLATE_LLAMA3;
    case CHAT_SMOLLM2: return REASON_TEMPLATE_SMOLLM2;
    case CHAT_QWEN35:
    case CHAT_QWEN38: return REASON_TEMPLATE_QWEN35;
    case CHAT_HARMONY: return REASON_TEMPLATE_HARMONY;
    case CHAT_GEMMA4:
    case CHAT_GEMMA4_INTERLEAVED: return REASON_TEMPLATE_GEMMA4;
    default: return 0;
    }
}

int32_t chat_prompt_end(int32_t variant, const reason_chat_params *params) {
    reason_chat_params defaults;
    if (!params) {
        reason_chat_params_default(&defaults);
        params = &defaults;
    }
    if (!params->add_generation_prompt) return CHAT_END_PLAIN;
    if (variant == CHAT_DEEPSEEK_R1) return CHAT_END_IN_THINKING;
    if (variant == CHAT_QWEN3 && !params->enable_thinking) return CHAT_END_THINKING_CLOSED;
    if (variant == CHAT_QWEN35 || variant == CHAT_QWEN38)
        return params->enable_thinking ? CHAT_END_IN_THINKING : CHAT_END_THINKING_CLOSED;
    if ((variant == CHAT_GEMMA4 || variant == CHAT_GEMMA4_INTERLEAVED) && !params->enable_thinking)
        return CHAT_END_THINKING_CLOSED;
    return CHAT_END_PLAIN;
}

static void render(writer *w, const chat *c, int32_t kind) {
    switch (kind) {
    case CHAT_CHATML:
    case CHAT_QWEN2_5:
    case CHAT_SMOLLM2: render_chatml(w, c, kind); break;
    case CHAT_QWEN3: render_qwen3(w, c); break;
    case CHAT_QWEN35: render_qwen35(w, c); break;
    case CHAT_QWEN38: render_qwen38(w, c); break;
    case CHAT_DEEPSEEK_R1:
    case CHAT_DEEPSEEK_R1_V1: render_deepseek_r1(w, c, kind); break;
    case CHAT_LLAMA3:
    case CHAT_LLAMA3_0: render_llama3(w, c, kind); break;
    case CHAT_HARMONY: render_harmony(w, c); break;
    case CHAT_GEMMA4:
    case CHAT_GEMMA4_INTERLEAVED: render_gemma4(w, c, kind); break;
    default: break;
    }
}

reason_status chat_render(int32_t kind, const reason_chat_message *messages, size_t n_messages,
                          const reason_chat_params *params, char *buf, size_t capacity,
                          size_t *out_len) {
    const char *name = variant_name(kind);
    if (!name)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "chat template: template_kind %d is not a known kind", (int)kind);
    if (!messages || n_messages == 0)
        return rs_error(REASON_ERR_INVALID_ARG, "chat template: no messages to render");
    for (size_t i = 0; i < n_messages; i++) {
        const reason_chat_message *m = &messages[i];
        if (!m->role || !m->content)
            return rs_error(REASON_ERR_INVALID_ARG, "chat template: messages[%zu].%s is NULL", i,
                            !m->role ? "role" : "content");
        /* Harmony's and Gemma 4's templates know developer messages too; tool messages (and
         * tool calls) are out of scope */
        const bool developer = kind == CHAT_HARMONY || kind == CHAT_GEMMA4 ||
                               kind == CHAT_GEMMA4_INTERLEAVED;
        if (!role_is(m, "system") && !role_is(m, "user") && !role_is(m, "assistant") &&
            !(developer && role_is(m, "developer")))
            return rs_error(REASON_ERR_TEMPLATE,
                            "chat template %s: messages[%zu] has role '%.64s'; only system, user "
                            "and assistant are supported%s",
                            name, i, m->role, developer ? " (and developer)" : "");
    }
    reason_chat_params defaults;
    if (!params) {
        reason_chat_params_default(&defaults);
        params = &defaults;
    }
    if (params->preserve_thinking < REASON_CHAT_PRESERVE_DEFAULT ||
        params->preserve_thinking > REASON_CHAT_PRESERVE_OFF)
        return rs_error(REASON_ERR_INVALID_ARG, "chat template: preserve_thinking = %d is not a "
                        "reason_chat_preserve value", (int)params->preserve_thinking);
    if (params->reasoning_effort < REASON_CHAT_EFFORT_DEFAULT ||
        params->reasoning_effort > REASON_CHAT_EFFORT_HIGH)
        return rs_error(REASON_ERR_INVALID_ARG, "chat template: reasoning_effort = %d is not a "
                        "reason_chat_effort value", (int)params->reasoning_effort);
    chat c = {messages, n_messages, params->add_generation_prompt != 0,
              params->enable_thinking != 0, params->preserve_thinking, params->reasoning_effort,
              -1};
    if (kind == CHAT_QWEN38 && c.think && c.effort == REASON_CHAT_EFFORT_HIGH)
        return rs_error(REASON_ERR_TEMPLATE, "chat template %s: Unexpected reasoning effort high. "
                        "Supported types are xhigh (default), medium, and low.", name);
    if (kind == CHAT_HARMONY) {
        if (c.effort == REASON_CHAT_EFFORT_XHIGH)
            return rs_error(REASON_ERR_TEMPLATE,
                            "chat template %s: reasoning_effort xhigh; gpt-oss knows low, medium "
                            "or high", name);
        for (size_t i = 1; i < n_messages; i++)
            if (role_is_instructions(&messages[i]))
                return rs_error(REASON_ERR_TEMPLATE,
                                "chat template %s: a system or developer message must be the first "
                                "(messages[%zu] is %s)", name, i, messages[i].role);
        RS_TRY(harmony_date(params->current_date, &c.date));
    }
    if (kind == CHAT_QWEN35 || kind == CHAT_QWEN38) {
        /* what the templates refuse (raise_exception), in their words */
        for (size_t i = 1; i < n_messages; i++)
            if (role_is(&messages[i], "system"))
                return rs_error(REASON_ERR_TEMPLATE,
                                "chat template %s: System message must be at the beginning. "
                                "(messages[%zu])", name, i);
        if (qwen35_last_query(&c) < 0)
            return rs_error(REASON_ERR_TEMPLATE,
                            "chat template %s: No user query found in messages.", name);
    }
    /* A counting pass first, so that a buffer too small is left untouched. */
    writer w = {NULL, 0};
    render(&w, &c, kind);
    if (out_len) *out_len = w.len;
    if (!buf || capacity < w.len + 1)
        return rs_error(REASON_ERR_BUFFER,
                        "chat template %s: buffer of %zu bytes too small: %zu needed", name,
                        capacity, w.len + 1);
    w = (writer){buf, 0};
    render(&w, &c, kind);
    buf[w.len] = '\0';
    return REASON_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Detection                                                                                      */

reason_status chat_detect_variant(const char *src, int32_t *out_variant) {
    if (!src || !out_variant)
        return rs_error(REASON_ERR_INVALID_ARG, "reason_chat_detect: %s is NULL",
                        !src ? "template_source" : "out_kind");
    int32_t v = 0;
    if (strstr(src, "<|turn>") && strstr(src, "<turn|>")) {
        /* Gemma 4; the interleaved template lacks the model-turn continuation */
        v = strstr(src, "continue_same_model_turn") ? CHAT_GEMMA4 : CHAT_GEMMA4_INTERLEAVED;
    } else if (strstr(src, "<|channel|>") && strstr(src, "<|message|>") &&
               strstr(src, "<|start|>")) {
        v = CHAT_HARMONY;
    } else if (strstr(src, DS_ASSISTANT)) {
        v = strstr(src, DS_ASSISTANT "<think>") ? CHAT_DEEPSEEK_R1 : CHAT_DEEPSEEK_R1_V1;
    } else if (strstr(src, "<|start_header_id|>")) {
        v = strstr(src, "Cutting Knowledge Date") ? CHAT_LLAMA3 : CHAT_LLAMA3_0;
    } else if (strstr(src, IM_START)) {
        if (strstr(src, "enable_thinking") && strstr(src, "render_content(")) {
            /* Qwen3.5, Qwen3.8; other templates with preserve_thinking / reasoning_effort (3.6
             * style: thinking kept only when asked, content split at </think>) render
             * differently and are not known here */
            if (strstr(src, "reasoning_effort|default('xhigh')") &&
                strstr(src, "preserve_thinking is undefined or preserve_thinking is true"))
                v = CHAT_QWEN38;
            else if (!strstr(src, "preserve_thinking") && !strstr(src, "reasoning_effort"))
                v = CHAT_QWEN35;
        } else if (strstr(src, "enable_thinking")) {
            v = strstr(src, "SmolLM") ? 0 : CHAT_QWEN3; /* SmolLM3's thinking template differs */
        } else if (strstr(src, "SmolLM")) {
            v = CHAT_SMOLLM2;
        } else if (strstr(src, "You are Qwen, created by Alibaba Cloud.")) {
            v = CHAT_QWEN2_5;
        } else {
            v = CHAT_CHATML;
        }
    }
    if (!v)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "reason_chat_detect: the chat template is not one we know (ChatML, Qwen3, "
                        "Qwen3.5, Qwen3.8, DeepSeek-R1, Llama 3, SmolLM2, gpt-oss Harmony, "
                        "Gemma 4); "
                        "format the prompt "
                        "yourself and pass the raw text to reason_tokenize");
    *out_variant = v;
    return REASON_OK;
}

void reason_chat_params_default(reason_chat_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->template_kind = REASON_TEMPLATE_AUTO;
    params->add_generation_prompt = 1;
    params->enable_thinking = 1;
}

reason_status reason_chat_detect(const char *template_source, int32_t *out_kind) {
    if (!out_kind) return rs_error(REASON_ERR_INVALID_ARG, "reason_chat_detect: out_kind is NULL");
    int32_t v = 0;
    RS_TRY(chat_detect_variant(template_source, &v));
    *out_kind = chat_variant_family(v);
    return REASON_OK;
}

reason_status reason_chat_apply(const reason_model *model, const reason_chat_message *messages,
                                size_t n_messages, const reason_chat_params *params, char *buf,
                                size_t capacity, size_t *out_len) {
    reason_chat_params defaults;
    if (!params) {
        reason_chat_params_default(&defaults);
        params = &defaults;
    }
    int32_t kind = params->template_kind;
    if (kind == REASON_TEMPLATE_AUTO) {
        if (!model)
            return rs_error(REASON_ERR_INVALID_ARG,
                            "reason_chat_apply: model is NULL and template_kind is AUTO");
        const char *src = model_chat_template(model);
        if (!src)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "reason_chat_apply: the model has no tokenizer.chat_template; set "
                            "params->template_kind or pass raw text to reason_tokenize");
        RS_TRY(chat_detect_variant(src, &kind));
    } else if (kind < REASON_TEMPLATE_CHATML || kind > REASON_TEMPLATE_GEMMA4) {
        return rs_error(REASON_ERR_INVALID_ARG,
                        "reason_chat_apply: params->template_kind = %d is not a template kind",
                        (int)kind);
    }
    return chat_render(kind, messages, n_messages, params, buf, capacity, out_len);
}
