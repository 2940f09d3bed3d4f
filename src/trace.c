/* trace.c — the reasoning runtime (DESIGN.md §2): one prompt prefilled once, n traces forked from
 * it and decoded together, each walking THINKING → ANSWER → DONE under budgets, callbacks, a loop
 * guard and DeepConf pruning; finished traces vote.
 *
 * Per step: every live trace whose input is all in the KV samples one token from its logits and
 * processes it (phase tracking, text, budgets); the tokens to feed (the sampled one, or injected
 * text such as the end of thinking) go to the trace's queue; then ONE reason_decode evaluates the
 * queues of all traces (up to n_batch tokens) and asks for the logits after each trace's last one.
 *
 * A trace's tokens. toks holds every token after the prompt, in KV order: toks[0..n_fed) are in
 * the KV at positions n_prompt + i, toks[n_fed..n) wait to be fed. Counting (documented in
 * reason.h at reason_params): a token counts in the phase it was produced in; injected tokens count
 * like sampled ones; tokens taken back (prompted-mode backtracking) stop counting.
 *
 * The thinking's delimiters come from the model's template family (think_syntax, trace_syntax.c):
 * <think> tags, or channel headers (Harmony's; Gemma 4's thought channel, after whose close the
 * answer follows at once). The model is reached through a trace_engine (a reason_context here;
 * tests script a fake one). */
#include "trace.h"

#include "chat_template.h"
#include "model.h"
#include "vote.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROMPTED_SYSTEM                                                                            \
    "You are a careful assistant. Before answering, think step by step inside <think> and "       \
    "</think>. After </think>, give the final answer."
#define CONFIDENCE_TOP_K 5 /* alternatives behind DeepConf's token confidence */
#define AWAIT_MAX_BYTES 16 /* text mode: bytes after which a missing <think> means an answer */
#define HEADER_MAX_TOKENS 32 /* a message header longer than this is no header: the budget may
                                end the thinking inside it */

enum { PHASE_AWAIT = 3 }; /* internal: the model has not yet shown whether it thinks */

typedef struct token_list {
    reason_token *v;
    int32_t n;
    int32_t cap;
} token_list;

static reason_status tokens_push(token_list *l, reason_token t) {
    if (l->n == l->cap) {
        const int32_t cap = l->cap ? l->cap * 2 : 256;
        reason_token *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return rs_error(REASON_ERR_NOMEM, "out of memory: %d tokens of a trace", cap);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = t;
    return REASON_OK;
}

typedef struct trace {
    int32_t index;
    int32_t seq;
    int32_t phase;  /* enum reason_phase or PHASE_AWAIT */
    int32_t finish; /* enum reason_finish */
    reason_sampler *sampler;
    confidence_tracker conf;
    loop_detector loop;
    int32_t nudged;
    token_list toks;
    int32_t n_fed;
    int32_t n_taking;  /* tokens of the queue in the batch being built */
    int32_t logit_row; /* batch row of the logits to sample from, -1 when none */
    int32_t thinking_tokens, answer_tokens, await_tokens;
    int32_t action; /* what the callbacks said about the current token */
    int32_t took_back; /* the current token was taken back */
    int32_t in_header;     /* header families: inside a message header (its tokens are no text) */
    int32_t header_tokens; /* tokens of the current header */
    int32_t end_asked;     /* a callback ended the thinking inside a header: done after it */
    byte_buf header;       /* its text, control tags written out, to find the channel */
    text_matcher think_m; /* text mode, THINKING: "</think>" */
    text_matcher stop_m;  /* ANSWER: stop strings */
    utf8_stream utf8;
    byte_buf text[2]; /* thinking, answer */
    byte_buf scratch; /* bytes a matcher released, on their way into text */
    byte_buf await_bytes;
    char *extracted;
} trace;

typedef struct run {
    const trace_engine *e;
    const reason_tokenizer *tok;
    const think_syntax *syn;
    const reason_callbacks *cb;
    reason_params p;
    int32_t user_logprobs;
    int32_t n_batch;
    int32_t n_prompt;
    int32_t text_mode;
    reason_token think_begin, think_end;
    /* header families: the tags as tokens (answer_end: -1 where the vocabulary lacks one) */
    reason_token tk_start, tk_channel, tk_message, tk_close, tk_answer_end[2];
    token_list inj_close, inj_wrap, inj_cont, inj_nudge;
    token_list inj_reopen; /* inj_close without close: the model already wrote it */
    trace *traces;
    int32_t n_traces;
    int32_t n_live;
    reason_token *b_tok; /* (n_batch) the batch being built */
    int32_t *b_pos, *b_seq;
    int8_t *b_want;
    vote_tally *tally;
    int32_t n_votes;
    float *warmup; /* (prune_warmup) lowest group confidences of the first voting traces */
    int32_t n_warmup;
    int32_t prune_ready;
    float prune_thr;
    float max_lowest_seen;
    int64_t kv_peak;
    byte_buf tokbytes;
} run;

/* ---- text ------------------------------------------------------------------------------------ */

static void merge_action(trace *tr, int32_t action) {
    if (action == REASON_ACTION_STOP || (action == REASON_ACTION_END_THINKING &&
                                         tr->action == REASON_ACTION_CONTINUE))
        tr->action = action;
}

/* Appends bytes to the text of phase ph (valid UTF-8 only) and streams the new piece. */
static reason_status emit_text(run *r, trace *tr, int32_t ph, const char *bytes, size_t n,
                               bool final) {
    byte_buf *t = &tr->text[ph];
    const size_t old = t->len;
    RS_TRY(utf8_stream_push(&tr->utf8, bytes, n, final, t));
    if (t->len > old && r->cb && r->cb->on_text)
        merge_action(tr, r->cb->on_text(r->cb->user, tr->index, ph, t->data + old, t->len - old));
    return REASON_OK;
}

/* Moves what the matchers released (scratch) into the text of phase ph. */
static reason_status emit_scratch(run *r, trace *tr, int32_t ph, bool final) {
    reason_status st = REASON_OK;
    if (tr->scratch.len || final) st = emit_text(r, tr, ph, tr->scratch.data, tr->scratch.len, final);
    tr->scratch.len = 0;
    return st;
}

/* Releases what the current phase's matcher holds into its text. */
static reason_status flush_phase(run *r, trace *tr, bool final) {
    if (tr->phase == REASON_PHASE_THINKING) {
        RS_TRY(matcher_flush(&tr->think_m, &tr->scratch));
        return emit_scratch(r, tr, REASON_PHASE_THINKING, final);
    }
    if (tr->phase == REASON_PHASE_ANSWER) {
        RS_TRY(matcher_flush(&tr->stop_m, &tr->scratch));
        return emit_scratch(r, tr, REASON_PHASE_ANSWER, final);
    }
    return REASON_OK;
}

/* ---- trace lifecycle ------------------------------------------------------------------------- */

static bool finish_votes(int32_t finish) {
    return finish == REASON_FINISH_END || finish == REASON_FINISH_LENGTH ||
           finish == REASON_FINISH_STOP_STRING || finish == REASON_FINISH_LOOP;
}

static reason_status finish_trace(run *r, trace *tr, int32_t finish);

static reason_status check_early_stop(run *r) {
    if (!r->p.early_stop || r->n_live == 0 || r->n_votes == 0) return REASON_OK;
    double max_weight = 1.0;
    if (r->p.vote == REASON_VOTE_LOWEST_GROUP) {
        /* a trace's lowest group can still fall but, once it has a full window, never rise; before
         * that, the best lowest group of the finished traces stands in for it */
        max_weight = r->max_lowest_seen;
        for (int32_t i = 0; i < r->n_traces; i++) {
            const trace *t = &r->traces[i];
            if (t->phase == REASON_PHASE_DONE || t->conf.n < t->conf.window) continue;
            max_weight = RS_MAX(max_weight, (double)confidence_lowest_group(&t->conf));
        }
    }
    if (!vote_tally_decided(r->tally, r->n_live, max_weight, r->p.early_stop_share))
        return REASON_OK;
    for (int32_t i = 0; i < r->n_traces; i++)
        if (r->traces[i].phase != REASON_PHASE_DONE)
            RS_TRY(finish_trace(r, &r->traces[i], REASON_FINISH_CANCELLED));
    return REASON_OK;
}

/* Replays what a text-mode trace wrote before showing whether it thinks, as answer text. */
static reason_status await_to_answer(run *r, trace *tr);

static reason_status finish_trace(run *r, trace *tr, int32_t finish) {
    if (tr->phase == REASON_PHASE_DONE) return REASON_OK;
    if (tr->phase == PHASE_AWAIT) {
        RS_TRY(await_to_answer(r, tr));
        if (tr->phase == REASON_PHASE_DONE) return REASON_OK;
    }
    RS_TRY(flush_phase(r, tr, true));
    tr->phase = REASON_PHASE_DONE;
    tr->finish = finish;
    tr->toks.n = tr->n_fed; /* nothing more is fed */
    tr->logit_row = -1;
    r->n_live--;
    /* the memory returns to the pool at once */
    RS_TRY(r->e->seq_free(r->e->self, tr->seq));
    if (!finish_votes(finish)) return REASON_OK;

    const byte_buf *answer = &tr->text[REASON_PHASE_ANSWER];
    RS_TRY(answer_extract(r->p.extract, r->p.extract_regex, r->cb, answer->data ? answer->data : "",
                          answer->len, &tr->extracted));
    RS_TRY(vote_tally_add(r->tally, tr->extracted, vote_weight(r->p.vote, &tr->conf)));
    r->n_votes++;
    const float lowest = confidence_lowest_group(&tr->conf);
    if (tr->conf.n > 0 && (r->n_votes == 1 || lowest > r->max_lowest_seen))
        r->max_lowest_seen = lowest;
    if (r->p.prune && !r->prune_ready && tr->conf.n > 0) {
        r->warmup[r->n_warmup++] = lowest;
        if (r->n_warmup == r->p.prune_warmup) {
            r->prune_thr = prune_threshold(r->warmup, r->n_warmup, r->p.prune_keep_percent);
            r->prune_ready = 1;
        }
    }
    return check_early_stop(r);
}

/* Queues tokens for the KV and records them (they count in the current phase). */
static reason_status keep_token(run *r, trace *tr, reason_token t) {
    RS_TRY(tokens_push(&tr->toks, t));
    return reason_sampler_accept(tr->sampler, t);
}

static void count_token(trace *tr, int32_t n) {
    if (tr->phase == REASON_PHASE_THINKING) tr->thinking_tokens += n;
    else if (tr->phase == REASON_PHASE_ANSWER) tr->answer_tokens += n;
    else tr->await_tokens += n;
}

static reason_status token_bytes(run *r, reason_token t, const char **out, size_t *len);

/* Injects the first n tokens of l; with_text: their text joins the phase's text (delimiters do
 * not). They count in the current phase like sampled ones. */
static reason_status inject(run *r, trace *tr, const token_list *l, int32_t n, bool with_text) {
    RS_TRY(flush_phase(r, tr, false));
    n = RS_MIN(n, l->n);
    for (int32_t i = 0; i < n; i++) {
        RS_TRY(keep_token(r, tr, l->v[i]));
        if (!with_text || (tr->phase != REASON_PHASE_THINKING && tr->phase != REASON_PHASE_ANSWER))
            continue;
        const char *bytes;
        size_t len;
        RS_TRY(token_bytes(r, l->v[i], &bytes, &len));
        RS_TRY(emit_text(r, tr, tr->phase, bytes, len, false));
    }
    count_token(tr, n);
    loop_detector_reset(&tr->loop);
    return REASON_OK;
}

static reason_status to_answer(run *r, trace *tr) {
    RS_TRY(flush_phase(r, tr, true));
    tr->phase = REASON_PHASE_ANSWER;
    matcher_reset(&tr->stop_m);
    if (tr->answer_tokens >= r->p.max_answer_tokens)
        return finish_trace(r, tr, REASON_FINISH_LENGTH);
    return REASON_OK;
}

/* Ends the thinking by injecting its closing (with the wrap-up when the budget ends it). Between
 * two messages the model has closed its own already: only the answer's header follows. */
static reason_status end_thinking(run *r, trace *tr, bool budget) {
    /* where the answer follows the close, a header is the thinking channel's own: still open */
    const bool closed = tr->in_header != 0 && !r->syn->answer_follows_close;
    if (budget && !closed && r->inj_wrap.n)
        RS_TRY(inject(r, tr, &r->inj_wrap, r->inj_wrap.n, true));
    const token_list *l = closed ? &r->inj_reopen : &r->inj_close;
    RS_TRY(inject(r, tr, l, l->n, false));
    tr->in_header = 0;
    return to_answer(r, tr);
}

/* The model tried to end its thinking before min_thinking_tokens: continue it instead (cut to
 * the budget left; min <= max, so at least one token fits). */
static reason_status extend_thinking(run *r, trace *tr) {
    matcher_reset(&tr->think_m);
    const int64_t room = (int64_t)r->p.max_thinking_tokens - tr->thinking_tokens;
    return inject(r, tr, &r->inj_cont, (int32_t)RS_MIN(room, (int64_t)r->inj_cont.n), true);
}

static reason_status await_to_answer(run *r, trace *tr) {
    tr->phase = REASON_PHASE_ANSWER;
    tr->answer_tokens += tr->await_tokens;
    tr->await_tokens = 0;
    for (size_t i = 0; i < tr->await_bytes.len; i++) {
        const int32_t p =
            matcher_feed(&tr->stop_m, tr->await_bytes.data[i], tr->toks.n - 1, 0, &tr->scratch);
        if (p == -2) return REASON_ERR_NOMEM;
        if (p >= 0) {
            tr->await_bytes.len = 0;
            RS_TRY(emit_scratch(r, tr, REASON_PHASE_ANSWER, false));
            return finish_trace(r, tr, REASON_FINISH_STOP_STRING);
        }
    }
    tr->await_bytes.len = 0;
    return emit_scratch(r, tr, REASON_PHASE_ANSWER, false);
}

static void await_to_thinking(trace *tr) {
    tr->phase = REASON_PHASE_THINKING;
    tr->thinking_tokens += tr->await_tokens;
    tr->await_tokens = 0;
    tr->await_bytes.len = 0;
    matcher_reset(&tr->think_m);
}

/* Takes back the tokens that spelled an early "</think>" (prompted-mode backtracking): from the
 * token that brought the tag's first byte, unless that token also carries text before the tag. */
static reason_status take_back_tag(run *r, trace *tr) {
    const int32_t keep = tr->think_m.match_tok_first ? tr->think_m.match_tok : tr->think_m.match_tok + 1;
    if (keep >= tr->toks.n) return REASON_OK;
    if (keep < tr->n_fed) {
        RS_TRY(r->e->seq_truncate(r->e->self, tr->seq, r->n_prompt + keep));
        tr->n_fed = keep;
    }
    tr->thinking_tokens -= tr->toks.n - keep;
    tr->toks.n = keep;
    tr->took_back = 1;
    return REASON_OK;
}

/* Text mode and stop strings: runs the bytes of token tok_index through the phase's matcher. */
static reason_status feed_bytes(run *r, trace *tr, const char *bytes, size_t n, int32_t tok_index) {
    for (size_t i = 0; i < n && tr->phase != REASON_PHASE_DONE; i++) {
        const char b = bytes[i];
        const int32_t first = i == 0;
        if (tr->phase == PHASE_AWAIT) {
            RS_TRY(byte_buf_append(&tr->await_bytes, &b, 1));
            size_t s = 0;
            while (s < tr->await_bytes.len && strchr(" \t\r\n", tr->await_bytes.data[s])) s++;
            const size_t rest = tr->await_bytes.len - s;
            const size_t tag = strlen(r->syn->open);
            if (rest <= tag && memcmp(tr->await_bytes.data + s, r->syn->open, rest) == 0 &&
                tr->await_bytes.len <= AWAIT_MAX_BYTES) {
                if (rest == tag) await_to_thinking(tr);
                continue;
            }
            RS_TRY(await_to_answer(r, tr));
            continue;
        }
        if (tr->phase == REASON_PHASE_THINKING) {
            if (!r->text_mode) {
                RS_TRY(byte_buf_append(&tr->scratch, &b, 1));
                continue;
            }
            const int32_t p = matcher_feed(&tr->think_m, b, tok_index, first, &tr->scratch);
            if (p == -2) return REASON_ERR_NOMEM;
            if (p < 0) continue;
            RS_TRY(emit_scratch(r, tr, REASON_PHASE_THINKING, false));
            /* the model closed its thinking: this token is one of the thinking's */
            if (tr->thinking_tokens - 1 < r->p.min_thinking_tokens) {
                RS_TRY(take_back_tag(r, tr));
                return extend_thinking(r, tr);
            }
            RS_TRY(to_answer(r, tr));
            continue;
        }
        const int32_t p = matcher_feed(&tr->stop_m, b, tok_index, first, &tr->scratch);
        if (p == -2) return REASON_ERR_NOMEM;
        if (p >= 0) {
            RS_TRY(emit_scratch(r, tr, REASON_PHASE_ANSWER, false));
            return finish_trace(r, tr, REASON_FINISH_STOP_STRING);
        }
    }
    if (tr->phase == REASON_PHASE_THINKING || tr->phase == REASON_PHASE_ANSWER)
        return emit_scratch(r, tr, tr->phase, false);
    return REASON_OK;
}

/* The bytes of a token; none for ids the tokenizer lacks (padding rows of the output matrix). */
static reason_status token_bytes(run *r, reason_token t, const char **out, size_t *len) {
    *out = "";
    *len = 0;
    if (t < 0 || t >= reason_tokenizer_n_vocab(r->tok)) return REASON_OK;
    if (reason_token_is_control(r->tok, t)) return REASON_OK; /* padding, control: not text */
    r->tokbytes.len = 0;
    RS_TRY(byte_buf_append(&r->tokbytes, NULL, 0));
    reason_status st = reason_token_to_bytes(r->tok, t, r->tokbytes.data, r->tokbytes.cap, len);
    if (st == REASON_ERR_BUFFER) {
        r->tokbytes.len = *len; /* grows the buffer to len + 1 */
        RS_TRY(byte_buf_append(&r->tokbytes, NULL, 0));
        r->tokbytes.len = 0;
        st = reason_token_to_bytes(r->tok, t, r->tokbytes.data, r->tokbytes.cap, len);
    }
    if (st != REASON_OK) return st;
    *out = r->tokbytes.data;
    return REASON_OK;
}

/* Budgets, callback verdicts and pruning, after each token (and before the first). */
static reason_status settle(run *r, trace *tr) {
    if (tr->phase == REASON_PHASE_DONE) return REASON_OK;
    const int32_t action = tr->action;
    tr->action = REASON_ACTION_CONTINUE;
    if (action == REASON_ACTION_STOP) return finish_trace(r, tr, REASON_FINISH_CANCELLED);
    if (action == REASON_ACTION_END_THINKING) {
        if (tr->in_header) tr->end_asked = 1; /* a header is not cut: its channel may be final */
        else if (tr->phase == PHASE_AWAIT) RS_TRY(await_to_answer(r, tr));
        else if (tr->phase == REASON_PHASE_THINKING) RS_TRY(end_thinking(r, tr, false));
        if (tr->phase == REASON_PHASE_DONE) return REASON_OK;
    }
    if (tr->end_asked && !tr->in_header) {
        tr->end_asked = 0;
        if (tr->phase == REASON_PHASE_THINKING) RS_TRY(end_thinking(r, tr, false));
    }
    /* inside a header the model is already leaving its message; the budget waits for the body */
    if (tr->phase == REASON_PHASE_THINKING && tr->thinking_tokens >= r->p.max_thinking_tokens &&
        (!tr->in_header || tr->header_tokens > HEADER_MAX_TOKENS))
        RS_TRY(end_thinking(r, tr, true));
    if (tr->phase == REASON_PHASE_ANSWER && tr->answer_tokens >= r->p.max_answer_tokens)
        return finish_trace(r, tr, REASON_FINISH_LENGTH);
    if (tr->phase != REASON_PHASE_DONE && r->prune_ready && tr->conf.n >= tr->conf.window &&
        confidence_current_group(&tr->conf) < r->prune_thr)
        return finish_trace(r, tr, REASON_FINISH_PRUNED);
    return REASON_OK;
}

static reason_status on_loop(run *r, trace *tr) {
    if (r->p.loop_action != REASON_LOOP_NUDGE || tr->nudged)
        return finish_trace(r, tr, REASON_FINISH_LOOP);
    tr->nudged = 1;
    /* cut to the budget left; settle() then ends the phase if it is spent */
    int64_t room = r->inj_nudge.n;
    if (tr->phase == REASON_PHASE_THINKING)
        room = (int64_t)r->p.max_thinking_tokens - tr->thinking_tokens;
    else if (tr->phase == REASON_PHASE_ANSWER)
        room = (int64_t)r->p.max_answer_tokens - tr->answer_tokens;
    return inject(r, tr, &r->inj_nudge, (int32_t)RS_MIN(room, (int64_t)r->inj_nudge.n), true);
}

/* ---- header families (Harmony, Gemma 4) --------------------------------------------------- */

static bool ends_answer(const run *r, reason_token t) {
    return t == r->tk_close || t == r->tk_answer_end[0] || t == r->tk_answer_end[1] ||
           reason_token_is_end(r->tok, t);
}

/* Whether t ends a header: the header_end tag or, where that is plain text (Gemma 4's newline),
 * any token whose text begins with it ("\n\n": the whitespace after a channel's name is no
 * text). */
static bool ends_header(run *r, reason_token t) {
    if (t == r->tk_message) return true;
    if (reason_token_is_control(r->tok, r->tk_message)) return false;
    const char *bytes;
    size_t n;
    const size_t k = strlen(r->syn->header_end);
    return token_bytes(r, t, &bytes, &n) == REASON_OK && n >= k &&
           memcmp(bytes, r->syn->header_end, k) == 0;
}

/* A message header begins (the model's own, or after its close). */
static void open_header(trace *tr) {
    tr->in_header = 1;
    tr->header_tokens = 0;
    tr->header.len = 0;
}

/* A token inside a header: kept and counted, never text; its text (tags written out) goes to the
 * header, whose channel decides the phase once the body begins. From AWAIT the header's tokens
 * count in the phase it opens (callbacks see them as thinking until then); after a thinking
 * message they count as thinking, like the injected end of thinking. Reports the token in
 * *phase. */
static reason_status take_header_token(run *r, trace *tr, reason_token t, int32_t *phase) {
    count_token(tr, 1);
    RS_TRY(keep_token(r, tr, t));
    tr->header_tokens++;
    if (ends_header(r, t)) {
        const int32_t from = tr->phase; /* the phase the token counts in */
        const int32_t to = syntax_channel_phase(r->syn, tr->header.data ? tr->header.data : "",
                                                tr->header.len);
        tr->in_header = 0;
        if (tr->phase == PHASE_AWAIT && to == REASON_PHASE_THINKING) {
            await_to_thinking(tr);
        } else if (tr->phase == PHASE_AWAIT) {
            tr->await_bytes.len = 0; /* header text is no answer text */
            RS_TRY(await_to_answer(r, tr));
        } else if (tr->phase == REASON_PHASE_THINKING && to == REASON_PHASE_ANSWER) {
            RS_TRY(to_answer(r, tr));
        }
        *phase = from == PHASE_AWAIT ? tr->phase : from;
        return REASON_OK;
    }
    if (t == r->tk_start) tr->header.len = 0; /* a new header: only its own channel counts */
    const char *bytes = t == r->tk_channel ? r->syn->channel_tag : " ";
    size_t n = strlen(bytes);
    if (t != r->tk_channel && !reason_token_is_control(r->tok, t))
        RS_TRY(token_bytes(r, t, &bytes, &n));
    return byte_buf_append(&tr->header, bytes, n);
}

/* One sampled token of a header family: headers pick the phase, the close of a thinking message
 * ends it (or becomes the continuation before min_thinking_tokens), the close or end of the
 * answer message ends the trace. *kept: the token went into the trace. */
static reason_status take_header_family(run *r, trace *tr, reason_token t, int32_t *phase,
                                        bool *kept) {
    const bool opens = t == r->tk_start || t == r->tk_channel;
    if (tr->in_header && t == r->tk_close && r->syn->answer_follows_close) {
        /* the channel closes inside its header ("<|channel>thought<channel|>"): an empty
         * thinking message, closed below like any other */
        tr->in_header = 0;
        if (tr->phase == PHASE_AWAIT) await_to_thinking(tr);
        *phase = tr->phase;
    }
    if (tr->in_header && !(ends_answer(r, t) && tr->phase == REASON_PHASE_THINKING)) {
        if (ends_answer(r, t)) { /* no message after all: the generation ends */
            count_token(tr, 1);
            if (tr->phase == PHASE_AWAIT) *phase = REASON_PHASE_ANSWER;
            return finish_trace(r, tr, REASON_FINISH_END);
        }
        *kept = true;
        if (tr->phase == PHASE_AWAIT) *phase = REASON_PHASE_THINKING; /* usually analysis */
        return take_header_token(r, tr, t, phase);
    }
    if (tr->phase == REASON_PHASE_THINKING && (ends_answer(r, t) || opens)) {
        /* the model ends its thinking message: its close is kept, anything else (an end of
         * generation, a header without the close) becomes the injected end of thinking */
        RS_TRY(flush_phase(r, tr, false));
        if (tr->thinking_tokens < r->p.min_thinking_tokens) return extend_thinking(r, tr);
        if (t != r->tk_close) return end_thinking(r, tr, false);
        count_token(tr, 1);
        RS_TRY(keep_token(r, tr, t));
        *kept = true;
        if (r->syn->answer_follows_close) return to_answer(r, tr);
        open_header(tr);
        return REASON_OK;
    }
    if (ends_answer(r, t) || (opens && tr->phase == REASON_PHASE_ANSWER)) {
        if (tr->phase == PHASE_AWAIT) {
            RS_TRY(await_to_answer(r, tr));
            *phase = REASON_PHASE_ANSWER;
        }
        count_token(tr, 1);
        return finish_trace(r, tr, REASON_FINISH_END);
    }
    if (opens) { /* between messages: a header */
        open_header(tr);
        *kept = true;
        *phase = REASON_PHASE_THINKING;
        return take_header_token(r, tr, t, phase);
    }
    if (tr->phase == PHASE_AWAIT) { /* text without a header: the answer */
        tr->phase = *phase = REASON_PHASE_ANSWER;
        matcher_reset(&tr->stop_m);
    }
    count_token(tr, 1);
    RS_TRY(keep_token(r, tr, t));
    const char *bytes;
    size_t n;
    RS_TRY(token_bytes(r, t, &bytes, &n));
    RS_TRY(feed_bytes(r, tr, bytes, n, tr->toks.n - 1));
    *kept = tr->phase != REASON_PHASE_DONE;
    return REASON_OK;
}

/* One sampled token through the trace's state machine. */
static reason_status take_sampled(run *r, trace *tr, const reason_token_choice *choice) {
    const reason_token t = choice->token;
    confidence_add(&tr->conf, choice->logprob, token_confidence(choice));
    tr->action = REASON_ACTION_CONTINUE;
    tr->took_back = 0;
    int32_t phase = tr->phase; /* the phase the token is reported in */
    bool kept = false;

    if (r->syn->header_end) {
        RS_TRY(take_header_family(r, tr, t, &phase, &kept));
    } else if (reason_token_is_end(r->tok, t)) {
        /* an end of generation inside the thinking ends only the thinking: the model still owes
         * an answer (small instruct models in prompted mode often stop without "</think>") */
        if (tr->phase == REASON_PHASE_THINKING) {
            RS_TRY(flush_phase(r, tr, false));
            if (tr->thinking_tokens < r->p.min_thinking_tokens) RS_TRY(extend_thinking(r, tr));
            else RS_TRY(end_thinking(r, tr, false));
        } else {
            if (tr->phase == PHASE_AWAIT) {
                RS_TRY(await_to_answer(r, tr));
                phase = REASON_PHASE_ANSWER;
            }
            count_token(tr, 1);
            RS_TRY(finish_trace(r, tr, REASON_FINISH_END));
        }
    } else if (!r->text_mode && tr->phase == PHASE_AWAIT && t == r->think_begin) {
        tr->phase = phase = REASON_PHASE_THINKING;
        count_token(tr, 1);
        RS_TRY(keep_token(r, tr, t));
        kept = true;
    } else if (!r->text_mode && tr->phase == REASON_PHASE_THINKING && t == r->think_end) {
        if (tr->thinking_tokens < r->p.min_thinking_tokens) {
            RS_TRY(extend_thinking(r, tr));
        } else {
            count_token(tr, 1);
            RS_TRY(keep_token(r, tr, t));
            kept = true;
            RS_TRY(to_answer(r, tr));
        }
    } else {
        if (!r->text_mode && tr->phase == PHASE_AWAIT) {
            tr->phase = phase = REASON_PHASE_ANSWER;
            matcher_reset(&tr->stop_m);
        }
        count_token(tr, 1);
        RS_TRY(keep_token(r, tr, t));
        const int32_t index = tr->toks.n - 1;
        const char *bytes;
        size_t n;
        RS_TRY(token_bytes(r, t, &bytes, &n));
        RS_TRY(feed_bytes(r, tr, bytes, n, index));
        kept = !tr->took_back && tr->phase != REASON_PHASE_DONE;
        if (phase == PHASE_AWAIT)
            phase = tr->phase == REASON_PHASE_THINKING ? REASON_PHASE_THINKING : REASON_PHASE_ANSWER;
    }

    if (r->cb && r->cb->on_token) {
        reason_token_choice c = *choice;
        c.n_top = RS_MIN(c.n_top, r->user_logprobs);
        merge_action(tr, r->cb->on_token(r->cb->user, tr->index, phase, &c));
    }
    if (kept && loop_detector_add(&tr->loop, t) > 0) RS_TRY(on_loop(r, tr));
    return settle(r, tr);
}

/* ---- the decode loop ------------------------------------------------------------------------- */

static int32_t build_batch(run *r) {
    int32_t n = 0;
    for (int32_t i = 0; i < r->n_traces; i++) {
        trace *tr = &r->traces[i];
        tr->n_taking = 0;
        if (tr->phase == REASON_PHASE_DONE) continue;
        const int32_t queued = tr->toks.n - tr->n_fed;
        const int32_t take = RS_MIN(queued, r->n_batch - n);
        for (int32_t k = 0; k < take; k++) {
            r->b_tok[n] = tr->toks.v[tr->n_fed + k];
            r->b_pos[n] = r->n_prompt + tr->n_fed + k;
            r->b_seq[n] = tr->seq;
            r->b_want[n] = (int8_t)(k == queued - 1);
            n++;
        }
        tr->n_taking = take;
    }
    return n;
}

static reason_status decode_step(run *r) {
    for (;;) {
        const int32_t n = build_batch(r);
        if (n == 0)
            return r->n_live ? rs_error(REASON_ERR_INTERNAL, "reason_run: live traces with nothing to decode")
                             : REASON_OK;
        const reason_batch b = {n, r->b_tok, r->b_pos, r->b_seq, r->b_want};
        const reason_status st = r->e->decode(r->e->self, &b);
        if (st == REASON_ERR_CONTEXT_FULL) {
            /* the longest trace in the batch gives way; the others go on */
            trace *longest = NULL;
            for (int32_t i = 0; i < r->n_traces; i++) {
                trace *tr = &r->traces[i];
                if (tr->n_taking && (!longest || tr->n_fed + tr->n_taking >
                                                     longest->n_fed + longest->n_taking))
                    longest = tr;
            }
            RS_TRY(finish_trace(r, longest, REASON_FINISH_CONTEXT_FULL));
            continue;
        }
        if (st != REASON_OK) return st;
        int32_t row = 0;
        for (int32_t i = 0; i < r->n_traces; i++) {
            trace *tr = &r->traces[i];
            row += tr->n_taking;
            if (!tr->n_taking) continue;
            tr->n_fed += tr->n_taking;
            tr->logit_row = tr->n_fed == tr->toks.n ? row - 1 : -1;
        }
        int64_t used;
        RS_TRY(r->e->kv_used(r->e->self, &used));
        r->kv_peak = RS_MAX(r->kv_peak, used);
        return REASON_OK;
    }
}

static reason_status sample_all(run *r) {
    for (int32_t i = 0; i < r->n_traces; i++) {
        trace *tr = &r->traces[i];
        if (tr->phase == REASON_PHASE_DONE || tr->logit_row < 0) continue;
        const float *logits;
        RS_TRY(r->e->logits(r->e->self, tr->logit_row, &logits));
        tr->logit_row = -1;
        reason_token_choice choice;
        RS_TRY(reason_sampler_sample(tr->sampler, logits, &choice));
        RS_TRY(take_sampled(r, tr, &choice));
    }
    return REASON_OK;
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static reason_status tokenize_alloc(const reason_tokenizer *tok, const char *text, int32_t flags,
                                    token_list *out) {
    const size_t len = strlen(text);
    size_t n = 0;
    reason_status st = reason_tokenize(tok, text, len, flags, NULL, 0, &n);
    if (st != REASON_OK && st != REASON_ERR_BUFFER) return st;
    if (n > INT32_MAX / 2) return rs_error(REASON_ERR_INVALID_ARG, "reason_run: text of %zu tokens", n);
    free(out->v);
    out->v = rs_malloc((n ? n : 1) * sizeof *out->v, "tokens");
    if (!out->v) return REASON_ERR_NOMEM;
    out->cap = (int32_t)(n ? n : 1);
    RS_TRY(reason_tokenize(tok, text, len, flags, out->v, n, &n));
    out->n = (int32_t)n;
    return REASON_OK;
}

/* The phase a trace starts in, from the end of a raw prompt. */
static int32_t phase_of_prompt(const char *prompt, int32_t mode) {
    if (mode == REASON_THINKING_OFF) return REASON_PHASE_ANSWER;
    const char *open = NULL, *close = NULL;
    for (const char *s = prompt; (s = strstr(s, "<think>")) != NULL; s++) open = s;
    for (const char *s = prompt; (s = strstr(s, "</think>")) != NULL; s++) close = s;
    if (open && (!close || close < open)) return REASON_PHASE_THINKING;
    if (close) {
        const char *s = close + strlen("</think>");
        while (*s && strchr(" \t\r\n", *s)) s++;
        if (!*s) return REASON_PHASE_ANSWER;
    }
    return PHASE_AWAIT;
}

static void free_run(run *r) {
    for (int32_t i = 0; r->traces && i < r->n_traces; i++) {
        trace *tr = &r->traces[i];
        reason_sampler_free(tr->sampler);
        confidence_free(&tr->conf);
        loop_detector_free(&tr->loop);
        free(tr->toks.v);
        matcher_free(&tr->think_m);
        matcher_free(&tr->stop_m);
        utf8_stream_free(&tr->utf8);
        byte_buf_free(&tr->text[0]);
        byte_buf_free(&tr->text[1]);
        byte_buf_free(&tr->scratch);
        byte_buf_free(&tr->await_bytes);
        byte_buf_free(&tr->header);
        free(tr->extracted);
    }
    free(r->traces);
    free(r->inj_close.v);
    free(r->inj_wrap.v);
    free(r->inj_cont.v);
    free(r->inj_nudge.v);
    free(r->inj_reopen.v);
    free(r->b_tok);
    free(r->b_pos);
    free(r->b_seq);
    free(r->b_want);
    free(r->warmup);
    vote_tally_free(r->tally);
    byte_buf_free(&r->tokbytes);
}

static char *dup_text(const byte_buf *b) {
    char *s = rs_malloc(b->len + 1, "result text");
    if (!s) return NULL;
    if (b->len) memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    return s;
}

static reason_status make_result(run *r, double seconds, reason_result **out) {
    reason_result *res = rs_calloc(1, sizeof *res, "result");
    if (!res) return REASON_ERR_NOMEM;
    res->n_traces = r->n_traces;
    res->info = rs_calloc((size_t)r->n_traces, sizeof *res->info, "result");
    res->texts = rs_calloc((size_t)r->n_traces * 3, sizeof *res->texts, "result");
    const int32_t n_answers = vote_tally_n_answers(r->tally);
    res->answers = rs_calloc((size_t)n_answers + 1, sizeof *res->answers, "result");
    res->counts = rs_calloc((size_t)n_answers + 1, sizeof *res->counts, "result");
    res->weights = rs_calloc((size_t)n_answers + 1, sizeof *res->weights, "result");
    if (!res->info || !res->texts || !res->answers || !res->counts || !res->weights) goto nomem;
    reason_usage *u = &res->usage;
    u->prompt_tokens = r->n_prompt;
    for (int32_t i = 0; i < r->n_traces; i++) {
        const trace *tr = &r->traces[i];
        reason_trace_info *info = &res->info[i];
        char **t = res->texts + 3 * i;
        if (!(t[0] = dup_text(&tr->text[0])) || !(t[1] = dup_text(&tr->text[1]))) goto nomem;
        const byte_buf ex = {.data = tr->extracted, .len = tr->extracted ? strlen(tr->extracted) : 0};
        if (!(t[2] = dup_text(&ex))) goto nomem;
        info->finish_reason = tr->finish;
        info->thinking_tokens = tr->thinking_tokens;
        info->answer_tokens = tr->answer_tokens;
        info->mean_logprob = confidence_mean_logprob(&tr->conf);
        info->lowest_group_confidence = tr->conf.n ? confidence_lowest_group(&tr->conf) : 0.0f;
        info->thinking = t[0];
        info->answer = t[1];
        info->extracted = t[2];
        u->thinking_tokens += tr->thinking_tokens;
        u->answer_tokens += tr->answer_tokens;
    }
    u->generated_tokens = u->thinking_tokens + u->answer_tokens;
    u->kv_peak_tokens = r->kv_peak;
    u->seconds = seconds;
    const double total = vote_tally_total_weight(r->tally);
    for (int32_t i = 0; i < n_answers; i++) {
        int32_t count;
        double weight;
        const char *a = vote_tally_answer(r->tally, i, &count, &weight);
        const byte_buf b = {.data = (char *)a, .len = a ? strlen(a) : 0};
        if (!(res->answers[i] = dup_text(&b))) goto nomem;
        res->counts[i] = count;
        res->weights[i] = (float)weight;
        res->n_answers++;
    }
    const byte_buf w = {.data = n_answers ? res->answers[0] : NULL,
                        .len = n_answers ? strlen(res->answers[0]) : 0};
    if (!(res->winner = dup_text(&w))) goto nomem;
    res->share = n_answers && total > 0 ? (float)(res->weights[0] / total) : 0.0f;
    *out = res;
    return REASON_OK;
nomem:
    reason_result_free(res);
    return REASON_ERR_NOMEM;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs a tokenized prompt; start_phase: where traces begin; in_header: inside a message header. */
static reason_status run_tokens(run *r, const token_list *prompt, int32_t start_phase,
                                int32_t in_header, reason_result **out) {
    const double t0 = now_seconds();
    const trace_engine *e = r->e;
    const reason_params *p = &r->p;
    reason_status st = REASON_OK;
    r->n_prompt = prompt->n;

    if (prompt->n < 1) return rs_error(REASON_ERR_INVALID_ARG, "reason_run: the prompt is empty");
    for (int32_t s = 0; s <= r->n_traces; s++) {
        int32_t len;
        RS_TRY(e->seq_length(e->self, s, &len));
        if (len)
            return rs_error(REASON_ERR_INVALID_ARG,
                            "reason_run: sequence %d is in use (%d tokens); traces need sequences "
                            "0..%d empty",
                            s, len, r->n_traces);
    }
    r->b_tok = rs_malloc((size_t)r->n_batch * sizeof *r->b_tok, "batch");
    r->b_pos = rs_malloc((size_t)r->n_batch * sizeof *r->b_pos, "batch");
    r->b_seq = rs_malloc((size_t)r->n_batch * sizeof *r->b_seq, "batch");
    r->b_want = rs_malloc((size_t)r->n_batch * sizeof *r->b_want, "batch");
    r->warmup = rs_calloc((size_t)RS_MAX(p->prune_warmup, 1), sizeof *r->warmup, "warm-up");
    r->traces = rs_calloc((size_t)r->n_traces, sizeof *r->traces, "traces");
    if (!r->b_tok || !r->b_pos || !r->b_seq || !r->b_want || !r->warmup || !r->traces)
        return REASON_ERR_NOMEM;
    RS_TRY(vote_tally_create(&r->tally));

    reason_sampler_params sp = p->sampling;
    r->user_logprobs = sp.n_logprobs;
    sp.n_logprobs = RS_MAX(sp.n_logprobs, CONFIDENCE_TOP_K);
    const int32_t n_vocab = e->n_vocab; /* logits per row */
    for (int32_t i = 0; i < r->n_traces; i++) {
        trace *tr = &r->traces[i];
        tr->index = i;
        tr->seq = i + 1;
        tr->phase = start_phase;
        tr->in_header = in_header;
        tr->logit_row = -1;
        sp.seed = p->sampling.seed + (uint64_t)i;
        RS_TRY(reason_sampler_create(&sp, n_vocab, &tr->sampler));
        RS_TRY(confidence_init(&tr->conf, p->confidence_window));
        RS_TRY(loop_detector_init(&tr->loop, p->loop_ngram, p->loop_repeats));
        RS_TRY(matcher_init(&tr->think_m, &r->syn->close, 1));
        RS_TRY(matcher_init(&tr->stop_m, p->stop_strings, p->n_stop_strings));
        for (int32_t k = 0; k < prompt->n; k++) RS_TRY(reason_sampler_accept(tr->sampler, prompt->v[k]));
    }

    /* prefill once into sequence 0 */
    int32_t last_row = 0;
    for (int32_t i = 0; i < prompt->n; i += r->n_batch) {
        const int32_t n = RS_MIN(r->n_batch, prompt->n - i);
        for (int32_t k = 0; k < n; k++) {
            r->b_pos[k] = i + k;
            r->b_seq[k] = 0;
        }
        const reason_batch b = {n, prompt->v + i, r->b_pos, r->b_seq, NULL};
        if ((st = e->decode(e->self, &b)) != REASON_OK)
            return rs_error_prefix(st, "reason_run: prompt of %d tokens", prompt->n);
        last_row = n - 1;
    }
    for (int32_t i = 0; i < r->n_traces; i++) RS_TRY(e->seq_fork(e->self, 0, r->traces[i].seq));
    RS_TRY(e->seq_free(e->self, 0));
    RS_TRY(e->kv_used(e->self, &r->kv_peak));

    r->n_live = r->n_traces;
    for (int32_t i = 0; i < r->n_traces; i++) {
        trace *tr = &r->traces[i];
        if (tr->phase == REASON_PHASE_DONE) continue;
        tr->logit_row = last_row;
        RS_TRY(settle(r, tr));
        if (tr->toks.n > tr->n_fed) tr->logit_row = -1;
    }
    while (r->n_live > 0) {
        RS_TRY(sample_all(r));
        if (r->n_live == 0) break;
        RS_TRY(decode_step(r));
    }
    return make_result(r, now_seconds() - t0, out);
}

/* The tokens of a header family's tags; the tags the runtime needs must be single tokens. */
static reason_status find_tags(run *r) {
    const think_syntax *syn = r->syn;
    const char *need[] = {syn->header_start, syn->channel_tag, syn->header_end, syn->close};
    reason_token *out[] = {&r->tk_start, &r->tk_channel, &r->tk_message, &r->tk_close};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if ((*out[i] = reason_tokenizer_find(r->tok, need[i])) < 0)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "reason_run: the chat template uses %s but the vocabulary has no "
                            "token %s",
                            syn->name, need[i]);
    for (size_t i = 0; i < 2; i++)
        r->tk_answer_end[i] = syn->answer_ends[i] ? reason_tokenizer_find(r->tok, syn->answer_ends[i])
                                                  : -1;
    return REASON_OK;
}

/* The effort preset as the template's own switch (reason_chat_effort). */
static int32_t chat_effort(int32_t effort) {
    switch (effort) {
    case REASON_EFFORT_LOW: return REASON_CHAT_EFFORT_LOW;
    case REASON_EFFORT_MEDIUM: return REASON_CHAT_EFFORT_MEDIUM;
    case REASON_EFFORT_HIGH: return REASON_CHAT_EFFORT_HIGH;
    default: return REASON_CHAT_EFFORT_DEFAULT;
    }
}

reason_status trace_run(const trace_engine *e, const char *question, const char *raw_prompt,
                        const reason_params *params, reason_result **out_result) {
    RS_CHECK_ARG(out_result != NULL);
    *out_result = NULL;
    RS_CHECK_ARG(e != NULL);
    RS_CHECK_ARG(question != NULL || raw_prompt != NULL);
    run r;
    memset(&r, 0, sizeof r);
    r.e = e;
    if (params) r.p = *params;
    else reason_params_default(&r.p);
    const reason_context_params *cp = &e->cp;
    RS_TRY(trace_check_params(&r.p, cp));
    trace_resolve_budgets(&r.p);
    r.cb = r.p.callbacks;
    r.n_traces = r.p.n_traces;
    r.n_batch = (int32_t)cp->n_batch;
    r.tok = e->tok;
    /* the delimiters follow the template family; a raw prompt for a model whose template we do
     * not know uses the <think> tags */
    int32_t variant = 0;
    const char *src = e->chat_template;
    if (question) {
        if (!src)
            return rs_error(REASON_ERR_UNSUPPORTED, "reason_run: the model has no chat template; "
                                                    "render the prompt and use reason_run_prompt");
        RS_TRY(chat_detect_variant(src, &variant));
    } else if (!src || chat_detect_variant(src, &variant) != REASON_OK) {
        variant = 0;
    }
    r.syn = syntax_for_family(chat_variant_family(variant));
    const bool headers = r.syn->header_end != NULL;
    r.think_begin = reason_tokenizer_special(r.tok, REASON_SPECIAL_THINK_BEGIN);
    r.think_end = reason_tokenizer_special(r.tok, REASON_SPECIAL_THINK_END);
    if (headers) RS_TRY(find_tags(&r));
    const bool has_tags = headers || (r.think_begin >= 0 && r.think_end >= 0);
    int32_t mode = r.p.thinking_mode;
    if (mode == REASON_THINKING_AUTO) mode = has_tags ? REASON_THINKING_MODEL : REASON_THINKING_PROMPTED;
    if (mode == REASON_THINKING_PROMPTED && !r.syn->prompted_open)
        return rs_error(REASON_ERR_INVALID_ARG, "reason_run: the model thinks in %s; prompted "
                                                "thinking does not apply", r.syn->name);
    r.text_mode = !headers && (mode == REASON_THINKING_PROMPTED || !has_tags);
    const char *wrap_text = r.p.wrap_up && r.p.wrap_up[0] ? r.p.wrap_up : NULL;
    const char *cont_text =
        r.p.continuation && r.p.continuation[0] ? r.p.continuation : DEFAULT_CONTINUATION;
    const char *nudge_text = r.p.loop_nudge && r.p.loop_nudge[0] ? r.p.loop_nudge : DEFAULT_NUDGE;
    const bool thinking_on = mode != REASON_THINKING_OFF && r.p.max_thinking_tokens != 0;

    reason_status st;
    char *prompt = NULL;
    token_list prompt_tokens = {0};
    int32_t start_phase, in_header = 0;
    if (raw_prompt) {
        start_phase = headers ? PHASE_AWAIT : phase_of_prompt(raw_prompt, mode);
    } else {
        reason_chat_params chat;
        reason_chat_params_default(&chat);
        /* the model's own switch: Qwen3 renders a pre-closed think block when thinking is off */
        chat.enable_thinking = thinking_on;
        if (r.syn->effort_switch) chat.reasoning_effort = chat_effort(r.p.effort);
        reason_chat_message msgs[2];
        size_t n_msgs = 0;
        char *system = NULL;
        if (mode == REASON_THINKING_PROMPTED) {
            const char *user = r.p.system ? r.p.system : "";
            const size_t n = strlen(user) + strlen(PROMPTED_SYSTEM) + 3;
            if (!(system = rs_malloc(n, "system prompt"))) return REASON_ERR_NOMEM;
            snprintf(system, n, "%s%s%s", user, user[0] ? "\n\n" : "", PROMPTED_SYSTEM);
            msgs[n_msgs++] = (reason_chat_message){"system", system};
        } else if (r.p.system) {
            msgs[n_msgs++] = (reason_chat_message){"system", r.p.system};
        }
        msgs[n_msgs++] = (reason_chat_message){"user", question};
        size_t len = 0;
        st = chat_render(variant, msgs, n_msgs, &chat, NULL, 0, &len);
        /* room for what may be appended: an opening, or the end of thinking (off) */
        const size_t extra = strlen(r.syn->inject_close) + strlen(r.syn->off_suffix) +
                             (r.syn->prompted_open ? strlen(r.syn->prompted_open) : 0) + 1;
        if ((st == REASON_OK || st == REASON_ERR_BUFFER) &&
            (prompt = rs_malloc(len + extra, "prompt")) != NULL)
            st = chat_render(variant, msgs, n_msgs, &chat, prompt, len + 1, &len);
        else if (st == REASON_OK || st == REASON_ERR_BUFFER)
            st = REASON_ERR_NOMEM;
        free(system);
        if (st != REASON_OK) {
            free(prompt);
            return st;
        }
        const int32_t end = chat_prompt_end(variant, &chat);
        if (headers) {
            start_phase = PHASE_AWAIT;
        } else if (mode == REASON_THINKING_OFF) {
            if (end == CHAT_END_IN_THINKING) strcat(prompt, r.syn->off_suffix);
            start_phase = REASON_PHASE_ANSWER;
        } else if (end == CHAT_END_IN_THINKING) {
            start_phase = REASON_PHASE_THINKING;
        } else if (end == CHAT_END_THINKING_CLOSED) {
            start_phase = REASON_PHASE_ANSWER;
        } else if (mode == REASON_THINKING_PROMPTED) {
            /* opened for the model, as R1's template does: small instruct models follow better */
            strcat(prompt, r.syn->prompted_open);
            start_phase = REASON_PHASE_THINKING;
        } else {
            start_phase = PHASE_AWAIT;
        }
    }
    if (headers) {
        /* where the prompt leaves the model: in its header (the usual "<|start|>assistant"),
         * in a message, or between messages; thinking off (or a zero budget) goes straight to
         * the answer's channel, as a pre-closed think block does */
        int32_t ph;
        syntax_prompt_state(r.syn, prompt ? prompt : raw_prompt, &ph, &in_header);
        start_phase = ph < 0 ? PHASE_AWAIT : ph;
        if (prompt && !thinking_on) {
            if (in_header) strcat(prompt, r.syn->off_suffix);
            else if (ph == REASON_PHASE_THINKING) strcat(prompt, r.syn->inject_close);
            if (in_header || ph == REASON_PHASE_THINKING) start_phase = REASON_PHASE_ANSWER;
            in_header = 0;
        } else if (mode == REASON_THINKING_OFF) {
            start_phase = REASON_PHASE_ANSWER; /* a raw prompt as it is, as for the tags */
        }
    }
    const int32_t flags = REASON_TOKENIZE_PARSE_SPECIAL;
    /* a rendered chat template writes the BOS it wants itself (Llama 3, DeepSeek-R1, Gemma):
     * only a raw prompt gets the tokenizer's special tokens, as apply_chat_template does */
    st = tokenize_alloc(r.tok, prompt ? prompt : raw_prompt,
                        prompt ? flags : flags | REASON_TOKENIZE_ADD_SPECIAL, &prompt_tokens);
    free(prompt);
    if (st == REASON_OK) st = tokenize_alloc(r.tok, r.syn->inject_close, flags, &r.inj_close);
    if (st == REASON_OK && headers)
        st = tokenize_alloc(r.tok, r.syn->inject_close + strlen(r.syn->close), flags,
                            &r.inj_reopen);
    if (st == REASON_OK) st = tokenize_alloc(r.tok, cont_text, flags, &r.inj_cont);
    if (st == REASON_OK) st = tokenize_alloc(r.tok, nudge_text, flags, &r.inj_nudge);
    if (st == REASON_OK && wrap_text) st = tokenize_alloc(r.tok, wrap_text, flags, &r.inj_wrap);
    if (st == REASON_OK) st = run_tokens(&r, &prompt_tokens, start_phase, in_header, out_result);
    if (st != REASON_OK) {
        /* leave the context as it was found: every sequence this run used is emptied */
        for (int32_t s = 0; s <= r.n_traces; s++) e->seq_free(e->self, s);
    }
    free(prompt_tokens.v);
    free_run(&r);
    return st;
}

/* ---- the engine of a reason_context --------------------------------------------------------- */

static reason_status ctx_decode(void *self, const reason_batch *b) {
    return reason_decode(self, b);
}
static reason_status ctx_logits(void *self, int32_t i, const float **out) {
    return reason_get_logits(self, i, out);
}
static reason_status ctx_seq_length(void *self, int32_t seq, int32_t *len) {
    return reason_seq_length(self, seq, len);
}
static reason_status ctx_seq_truncate(void *self, int32_t seq, int32_t n_keep) {
    return reason_seq_truncate(self, seq, n_keep);
}
static reason_status ctx_seq_fork(void *self, int32_t parent, int32_t child) {
    return reason_seq_fork(self, parent, child);
}
static reason_status ctx_seq_free(void *self, int32_t seq) { return reason_seq_free(self, seq); }
static reason_status ctx_kv_used(void *self, int64_t *slots) {
    reason_context_stats s;
    RS_TRY(reason_context_get_stats(self, &s));
    *slots = (int64_t)s.kv_slots_used;
    return REASON_OK;
}

static reason_status start_run(reason_context *ctx, const char *question, const char *raw_prompt,
                               const reason_params *params, reason_result **out_result) {
    RS_CHECK_ARG(out_result != NULL);
    *out_result = NULL;
    RS_CHECK_ARG(ctx != NULL);
    const reason_model *model = context_model(ctx);
    trace_engine e = {.self = ctx,
                      .chat_template = model_chat_template(model),
                      .n_vocab = model->hp.n_vocab,
                      .cp = *context_params(ctx),
                      .decode = ctx_decode,
                      .logits = ctx_logits,
                      .seq_length = ctx_seq_length,
                      .seq_truncate = ctx_seq_truncate,
                      .seq_fork = ctx_seq_fork,
                      .seq_free = ctx_seq_free,
                      .kv_used = ctx_kv_used};
    RS_TRY(reason_model_tokenizer(model, &e.tok));
    return trace_run(&e, question, raw_prompt, params, out_result);
}

reason_status reason_run(reason_context *ctx, const char *question, const reason_params *params,
                         reason_result **out_result) {
    RS_CHECK_ARG(question != NULL);
    return start_run(ctx, question, NULL, params, out_result);
}

reason_status reason_run_prompt(reason_context *ctx, const char *prompt, const reason_params *params,
                                reason_result **out_result) {
    RS_CHECK_ARG(prompt != NULL);
    return start_run(ctx, NULL, prompt, params, out_result);
}
