/* trace_syntax.c — the thinking delimiters of each template family (interfaces in trace.h). The
 * runtime is written against this table: adding a family with tags or channel headers is a row. */
#include "trace.h"

#include <string.h>

static const think_syntax think_tags = {
    .name = "<think> tags",
    .open = "<think>",
    .close = "</think>",
    .inject_close = "\n</think>\n\n",
    .prompted_open = "<think>\n",
    .off_suffix = "</think>\n\n",
};

/* gpt-oss. The injected end of thinking closes the analysis message and opens the final one, as
 * the model itself does; commentary (tool preambles and calls) is thinking too. */
static const think_syntax harmony = {
    .name = "Harmony channels",
    .open = "<|channel|>analysis<|message|>",
    .close = "<|end|>",
    .inject_close = "<|end|><|start|>assistant<|channel|>final<|message|>",
    .prompted_open = NULL,
    .off_suffix = "<|channel|>final<|message|>",
    .header_start = "<|start|>",
    .channel_tag = "<|channel|>",
    .header_end = "<|message|>",
    .answer_ends = {"<|return|>", "<|call|>"},
    .channels = {{"analysis", REASON_PHASE_THINKING},
                 {"commentary", REASON_PHASE_THINKING},
                 {"final", REASON_PHASE_ANSWER}},
    .effort_switch = 1,
};

/* Gemma 4. The thought channel is the only message: "<|channel>thought\n" is its header (the
 * newline, plain text, ends it), "<channel|>" closes it and the answer follows with no header,
 * ended by "<turn|>" (or a new "<|turn>"). The template pre-closes an empty channel when thinking
 * is off; a budget injects the close alone, as the model writes it. */
static const think_syntax gemma4 = {
    .name = "Gemma 4 channels",
    .open = "<|channel>thought\n",
    .close = "<channel|>",
    .inject_close = "<channel|>",
    .prompted_open = NULL,
    .off_suffix = "<|channel>thought\n<channel|>",
    .header_start = "<|channel>",
    .channel_tag = "<|channel>",
    .header_end = "\n",
    .answer_ends = {"<turn|>", "<|turn>"},
    .channels = {{"thought", REASON_PHASE_THINKING}},
    .answer_follows_close = 1,
};

static const struct {
    int32_t family;
    const think_syntax *syntax;
} families[] = {
    {REASON_TEMPLATE_HARMONY, &harmony},
    {REASON_TEMPLATE_GEMMA4, &gemma4},
};

const think_syntax *syntax_for_family(int32_t family) {
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (families[i].family == family) return families[i].syntax;
    return &think_tags;
}

/* The last occurrence of needle in s[0..n), or NULL. */
static const char *last_in(const char *s, size_t n, const char *needle) {
    const size_t k = strlen(needle);
    if (k > n) return NULL;
    for (size_t i = n - k + 1; i-- > 0;)
        if (memcmp(s + i, needle, k) == 0) return s + i;
    return NULL;
}

int32_t syntax_channel_phase(const think_syntax *syn, const char *header, size_t len) {
    const char *at = last_in(header, len, syn->channel_tag);
    if (!at) return REASON_PHASE_ANSWER;
    at += strlen(syn->channel_tag);
    size_t n = 0;
    while (at + n < header + len && at[n] != ' ' && at[n] != '<') n++;
    for (size_t i = 0; i < sizeof syn->channels / sizeof syn->channels[0]; i++) {
        const char *name = syn->channels[i].name;
        if (name && strlen(name) == n && memcmp(name, at, n) == 0) return syn->channels[i].phase;
    }
    return REASON_PHASE_ANSWER;
}

/* Offset just past the last needle in s[0..n), or 0 when absent. */
static size_t after_last(const char *s, size_t n, const char *needle) {
    const char *at = last_in(s, n, needle);
    return at ? (size_t)(at - s) + strlen(needle) : 0;
}

/* syntax_prompt_state where the channel is the only message (Gemma 4): a channel opened after the
 * last close and the last turn boundary is still open, its header up to the first header_end;
 * a close after the last turn boundary leaves the model in the answer. */
static void channel_prompt_state(const think_syntax *syn, const char *prompt, int32_t *phase,
                                 int32_t *in_header) {
    const size_t n = strlen(prompt);
    const size_t open = after_last(prompt, n, syn->channel_tag);
    const size_t closed = after_last(prompt, n, syn->close);
    size_t turn = 0;
    for (size_t i = 0; i < sizeof syn->answer_ends / sizeof syn->answer_ends[0]; i++)
        if (syn->answer_ends[i]) turn = RS_MAX(turn, after_last(prompt, n, syn->answer_ends[i]));
    *in_header = 0;
    *phase = -1;
    if (open > closed && open > turn) {
        const char *end = strstr(prompt + open, syn->header_end);
        if (!end) {
            *in_header = 1;
            return;
        }
        const char *h = prompt + open - strlen(syn->channel_tag);
        *phase = syntax_channel_phase(syn, h, (size_t)(end - h));
    } else if (closed > turn) {
        *phase = REASON_PHASE_ANSWER;
    }
}

void syntax_prompt_state(const think_syntax *syn, const char *prompt, int32_t *phase,
                         int32_t *in_header) {
    if (syn->answer_follows_close) {
        channel_prompt_state(syn, prompt, phase, in_header);
        return;
    }
    const size_t n = strlen(prompt);
    const size_t hdr = RS_MAX(after_last(prompt, n, syn->header_start),
                              after_last(prompt, n, syn->channel_tag));
    const size_t body = after_last(prompt, n, syn->header_end);
    size_t ended = after_last(prompt, n, syn->close);
    for (size_t i = 0; i < sizeof syn->answer_ends / sizeof syn->answer_ends[0]; i++)
        if (syn->answer_ends[i]) ended = RS_MAX(ended, after_last(prompt, n, syn->answer_ends[i]));
    *in_header = hdr > body && hdr > ended;
    *phase = -1;
    if (*in_header || body == 0 || body <= ended) return;
    /* inside a message: its header runs from the last header start before the body */
    const size_t start = after_last(prompt, body, syn->header_start);
    const char *h = prompt + start;
    const size_t len = body - strlen(syn->header_end) - start;
    if (last_in(h, len, syn->channel_tag)) *phase = syntax_channel_phase(syn, h, len);
}
