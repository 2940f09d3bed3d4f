/* test_trace.c — the reasoning runtime on tiny random models: exact budgets, forced early ends of
 * thinking (min_thinking), parallel traces from one prompt (greedy identity, seeds, shared KV),
 * voting with early stop, pruning, the loop guard, stop strings, a full KV cache, prompted
 * thinking, and the text matcher / UTF-8 assembler / loop detector underneath; gpt-oss's Harmony
 * channels through a scripted fake model with the real o200k_harmony vocabulary, and Gemma 4's
 * thought channel through the same fake with Gemma's vocabulary (Gemma 4's tags added).
 *
 * Random weights give near-uniform distributions, so behaviour is forced where it must be exact:
 * min = max thinking budgets, callbacks that end thinking, and a negative frequency penalty over a
 * prompt full of one token, which makes greedy decoding emit that token again and again. */
#include "test_util.h"

#include "reason.h"
#include "trace.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static reason_model *qwen;  /* <think>/</think> tokens: model mode */
static reason_model *llama; /* none: prompted mode */

static void load_models(void) {
    char path[1024];
    ck_assert_msg(reason_model_load(test_data_path("models/qwen3-Q8_0.gguf", path, sizeof path),
                                    NULL, &qwen) == REASON_OK,
                  "%s", reason_last_error());
    ck_assert_msg(reason_model_load(test_data_path("models/llama-Q8_0.gguf", path, sizeof path),
                                    NULL, &llama) == REASON_OK,
                  "%s", reason_last_error());
}

static void free_models(void) {
    reason_model_free(qwen);
    reason_model_free(llama);
}

static reason_context *make_ctx(reason_model *m, uint32_t n_ctx, uint32_t n_seq) {
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = n_ctx;
    p.n_seq_max = n_seq;
    p.n_batch = 128;
    p.n_outputs_max = 16;
    p.n_threads = 1;
    reason_context *ctx = NULL;
    ck_assert_msg(reason_context_create(m, &p, &ctx) == REASON_OK, "%s", reason_last_error());
    return ctx;
}

static int32_t n_tokens(reason_model *m, const char *text) {
    const reason_tokenizer *tok;
    reason_model_tokenizer(m, &tok);
    size_t n = 0;
    reason_tokenize(tok, text, strlen(text), REASON_TOKENIZE_PARSE_SPECIAL, NULL, 0, &n);
    return (int32_t)n;
}

static reason_result *run_ok(reason_context *ctx, const char *prompt, const reason_params *p) {
    reason_result *res = NULL;
    reason_status st = reason_run_prompt(ctx, prompt, p, &res);
    ck_assert_msg(st == REASON_OK, "%s", reason_last_error());
    return res;
}

static reason_trace_info trace_info(const reason_result *res, int32_t i) {
    reason_trace_info info;
    ck_assert_int_eq(reason_result_trace(res, i, &info), REASON_OK);
    return info;
}

static void check_all_freed(reason_context *ctx, int32_t n) {
    for (int32_t s = 0; s < n; s++) {
        int32_t len = -1;
        ck_assert_int_eq(reason_seq_length(ctx, s, &len), REASON_OK);
        ck_assert_int_eq(len, 0);
    }
}

#define QWEN_THINKING_PROMPT                                                                       \
    "<|im_start|>user\nWhat is 17 * 23?<|im_end|>\n<|im_start|>assistant\n<think>\n"
#define WRAP_UP "Considering the limited time, I have to give the solution now."

/* A prompt where one text appears `times` times, to be boosted by a negative frequency penalty. */
static char *repeated_prompt(const char *item, int times, const char *tail) {
    size_t n = strlen(item) * (size_t)times + strlen(tail) + 256;
    char *s = malloc(n);
    strcpy(s, "<|im_start|>user\n");
    for (int i = 0; i < times; i++) strcat(s, item);
    strcat(s, "<|im_end|>\n<|im_start|>assistant\n");
    strcat(s, tail);
    return s;
}

static void force_repeats(reason_params *p) {
    p->sampling.temperature = 0.0f;
    p->sampling.frequency_penalty = -10.0f;
    p->sampling.penalty_last_n = -1;
}

/* ---- argument checks ------------------------------------------------------------------------- */

START_TEST(test_arguments) {
    reason_context *ctx = make_ctx(qwen, 256, 3);
    reason_result *res = (reason_result *)1;
    reason_params p;
    reason_params_default(&p);
    ck_assert_int_eq(p.n_traces, 1);
    ck_assert_int_eq(p.max_answer_tokens, 512);
    ck_assert_int_eq(reason_run(NULL, "q", NULL, &res), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(res);
    ck_assert_int_eq(reason_run(ctx, NULL, NULL, &res), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_run(ctx, "q", NULL, NULL), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_run_prompt(ctx, NULL, NULL, &res), REASON_ERR_INVALID_ARG);
    p.n_traces = 0;
    ck_assert_int_eq(reason_run(ctx, "q", &p, &res), REASON_ERR_INVALID_ARG);
    p.n_traces = 3; /* needs 4 sequences */
    ck_assert_int_eq(reason_run(ctx, "q", &p, &res), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "n_seq_max"));
    p.n_traces = 1;
    p.n_stop_strings = 1;
    ck_assert_int_eq(reason_run(ctx, "q", &p, &res), REASON_ERR_INVALID_ARG);
    p.n_stop_strings = 0;
    p.extract = REASON_EXTRACT_CALLBACK;
    ck_assert_int_eq(reason_run(ctx, "q", &p, &res), REASON_ERR_INVALID_ARG);
    p.extract = 99;
    ck_assert_int_eq(reason_run(ctx, "q", &p, &res), REASON_ERR_INVALID_ARG);
    reason_params_default(&p);
    p.max_thinking_tokens = -5;
    ck_assert_int_eq(reason_run(ctx, "q", &p, &res), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(res);
    check_all_freed(ctx, 3);
    reason_context_free(ctx);

    /* n_outputs_max < n_traces */
    reason_context_params cp;
    reason_context_params_default(&cp);
    cp.n_ctx = 256;
    cp.n_seq_max = 8;
    cp.n_outputs_max = 2;
    cp.n_threads = 1;
    ck_assert_int_eq(reason_context_create(qwen, &cp, &ctx), REASON_OK);
    reason_params_default(&p);
    p.n_traces = 4;
    ck_assert_int_eq(reason_run(ctx, "q", &p, &res), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "n_outputs_max"));
    reason_context_free(ctx);

    /* accessors */
    reason_result_free(NULL);
    reason_trace_info info;
    const char *a;
    ck_assert_int_eq(reason_result_n_traces(NULL), 0);
    ck_assert_int_eq(reason_result_n_answers(NULL), 0);
    ck_assert_int_eq(reason_result_trace(NULL, 0, &info), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_result_vote(NULL, &a, NULL), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_result_answer(NULL, 0, &a, NULL, NULL), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_result_usage(NULL, NULL), REASON_ERR_INVALID_ARG);
}
END_TEST

/* ---- budgets --------------------------------------------------------------------------------- */

/* min = max: the model cannot end early; the budget ends it with wrap-up + closing, exactly. */
START_TEST(test_budget_exact) {
    reason_context *ctx = make_ctx(qwen, 1024, 4);
    reason_params p;
    reason_params_default(&p);
    p.n_traces = 3;
    p.max_thinking_tokens = 24;
    p.min_thinking_tokens = 24;
    p.max_answer_tokens = 8;
    p.wrap_up = WRAP_UP;
    p.sampling.seed = 11;
    reason_result *res = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    const int32_t n_close = n_tokens(qwen, "\n</think>\n\n"), n_wrap = n_tokens(qwen, WRAP_UP);
    ck_assert_int_eq(n_close, 3);
    ck_assert_int_eq(reason_result_n_traces(res), 3);
    reason_usage u;
    ck_assert_int_eq(reason_result_usage(res, &u), REASON_OK);
    int32_t think = 0, answer = 0;
    for (int32_t i = 0; i < 3; i++) {
        reason_trace_info t = trace_info(res, i);
        ck_assert_int_eq(t.thinking_tokens, 24 + n_wrap + n_close);
        const size_t tl = strlen(t.thinking), wl = strlen(WRAP_UP);
        ck_assert_uint_ge(tl, wl);
        ck_assert_str_eq(t.thinking + tl - wl, WRAP_UP);
        ck_assert_ptr_null(strstr(t.thinking, "</think>"));
        if (t.finish_reason == REASON_FINISH_LENGTH) ck_assert_int_eq(t.answer_tokens, 8);
        else ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
        ck_assert_int_le(t.answer_tokens, 8);
        ck_assert(t.mean_logprob < 0.0f);
        ck_assert(t.lowest_group_confidence > 0.0f);
        think += t.thinking_tokens;
        answer += t.answer_tokens;
    }
    ck_assert_int_eq(u.thinking_tokens, think);
    ck_assert_int_eq(u.answer_tokens, answer);
    ck_assert_int_eq(u.generated_tokens, think + answer);
    ck_assert_int_eq(u.prompt_tokens, n_tokens(qwen, QWEN_THINKING_PROMPT));
    ck_assert(u.seconds > 0.0);
    reason_result_free(res);
    check_all_freed(ctx, 4);

    /* max_thinking 0: the closing at once; max_answer 0: LENGTH at once */
    p.n_traces = 1;
    p.max_thinking_tokens = 0;
    p.min_thinking_tokens = 0;
    p.max_answer_tokens = 5;
    res = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    reason_trace_info t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, n_wrap + n_close);
    ck_assert_str_eq(t.thinking, WRAP_UP);
    ck_assert_int_le(t.answer_tokens, 5);
    reason_result_free(res);
    p.max_answer_tokens = 0;
    res = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    t = trace_info(res, 0);
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_LENGTH);
    ck_assert_int_eq(t.answer_tokens, 0);
    reason_result_free(res);
    reason_context_free(ctx);
}
END_TEST

/* The prompt is full of </think>; a negative frequency penalty makes greedy decoding try to close
 * the thinking at every step. Each early close becomes the continuation until min is reached. */
START_TEST(test_min_thinking) {
    reason_context *ctx = make_ctx(qwen, 1024, 2);
    char *prompt = repeated_prompt("</think>", 30, "<think>\n");
    reason_params p;
    reason_params_default(&p);
    force_repeats(&p);
    p.min_thinking_tokens = 20;
    p.max_thinking_tokens = 100;
    p.max_answer_tokens = 4;
    p.continuation = "\nWait";
    p.loop_ngram = 0;
    reason_result *res = run_ok(ctx, prompt, &p);
    reason_trace_info t = trace_info(res, 0);
    const int32_t n_cont = n_tokens(qwen, "\nWait");
    const int32_t k = (20 + n_cont - 1) / n_cont; /* continuations until min */
    ck_assert_int_eq(t.thinking_tokens, k * n_cont + 1); /* + the model's own </think> */
    ck_assert_int_ge(t.thinking_tokens, 20);
    int wait = 0;
    for (const char *s = t.thinking; (s = strstr(s, "\nWait")) != NULL; s++) wait++;
    ck_assert_int_eq(wait, k);
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_LENGTH);
    ck_assert_int_eq(t.answer_tokens, 4);
    reason_result_free(res);

    /* a continuation longer than the budget left is cut: thinking still ends at max + closing */
    p.min_thinking_tokens = 7;
    p.max_thinking_tokens = 7;
    p.continuation = "\nWait, wait, wait, let me think again";
    res = run_ok(ctx, prompt, &p);
    t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 7 + n_tokens(qwen, "\n</think>\n\n"));
    ck_assert_ptr_nonnull(strstr(t.thinking, "\nWait"));
    reason_result_free(res);
    free(prompt);
    reason_context_free(ctx);
}
END_TEST

typedef struct script {
    int32_t end_thinking_at[8]; /* end trace i's thinking after this many thinking tokens */
    int32_t stop_at_answer[8];  /* stop trace i after this many answer tokens (0: never) */
    int32_t seen[8][3];
    char answers[8][16]; /* scripted answer per trace for the extractor */
    char text[8][4096];  /* answer text streamed per trace */
    size_t text_len[8];
    int32_t text_calls;
    int32_t bad_phase;
} script;

static int32_t script_token(void *user, int32_t trace, int32_t phase,
                            const reason_token_choice *c) {
    script *s = user;
    if (phase < 0 || phase > 1 || c->n_top != 0) s->bad_phase = 1;
    s->seen[trace][phase]++;
    if (phase == REASON_PHASE_THINKING && s->end_thinking_at[trace] &&
        s->seen[trace][0] == s->end_thinking_at[trace])
        return REASON_ACTION_END_THINKING;
    if (phase == REASON_PHASE_ANSWER && s->stop_at_answer[trace] &&
        s->seen[trace][1] == s->stop_at_answer[trace])
        return REASON_ACTION_STOP;
    return REASON_ACTION_CONTINUE;
}

static int32_t script_text(void *user, int32_t trace, int32_t phase, const char *text, size_t len) {
    script *s = user;
    s->text_calls++;
    if (phase == REASON_PHASE_ANSWER && s->text_len[trace] + len < sizeof s->text[trace]) {
        memcpy(s->text[trace] + s->text_len[trace], text, len);
        s->text_len[trace] += len;
    }
    return REASON_ACTION_CONTINUE;
}

/* Finds the trace by its streamed answer text and returns its scripted answer. */
static size_t script_extract(void *user, const char *text, size_t len, char *out, size_t cap) {
    script *s = user;
    for (int32_t i = 0; i < 8; i++) {
        if (s->text_len[i] == len && memcmp(s->text[i], text, len) == 0 && s->answers[i][0]) {
            snprintf(out, cap, "%s", s->answers[i]);
            return strlen(out);
        }
    }
    return 0;
}

START_TEST(test_callbacks) {
    reason_context *ctx = make_ctx(qwen, 1024, 3);
    script s;
    memset(&s, 0, sizeof s);
    s.end_thinking_at[0] = 5;
    s.end_thinking_at[1] = 3;
    s.stop_at_answer[1] = 2;
    reason_callbacks cb = {.user = &s, .on_text = script_text, .on_token = script_token};
    reason_params p;
    reason_params_default(&p);
    p.n_traces = 2;
    p.max_thinking_tokens = 50;
    p.min_thinking_tokens = 50; /* a callback overrides min */
    p.max_answer_tokens = 6;
    p.wrap_up = WRAP_UP;
    p.callbacks = &cb;
    reason_result *res = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    const int32_t n_close = n_tokens(qwen, "\n</think>\n\n");
    reason_trace_info t0 = trace_info(res, 0), t1 = trace_info(res, 1);
    ck_assert_int_eq(t0.thinking_tokens, 5 + n_close);
    ck_assert_ptr_null(strstr(t0.thinking, WRAP_UP)); /* the wrap-up is the budget's */
    ck_assert_int_eq(t1.thinking_tokens, 3 + n_close);
    ck_assert_int_eq(t1.finish_reason, REASON_FINISH_CANCELLED);
    ck_assert_int_eq(t1.answer_tokens, 2);
    ck_assert_str_eq(t1.extracted, "");
    ck_assert_int_eq(s.bad_phase, 0);
    ck_assert_int_gt(s.text_calls, 0);
    ck_assert_str_eq(s.text[0], t0.answer); /* streamed text == result text */
    reason_result_free(res);
    check_all_freed(ctx, 3);
    reason_context_free(ctx);
}
END_TEST

/* ---- parallel traces ------------------------------------------------------------------------- */

static void check_same_trace(const reason_trace_info *a, const reason_trace_info *b) {
    ck_assert_str_eq(a->thinking, b->thinking);
    ck_assert_str_eq(a->answer, b->answer);
    ck_assert_int_eq(a->thinking_tokens, b->thinking_tokens);
    ck_assert_int_eq(a->answer_tokens, b->answer_tokens);
    ck_assert_int_eq(a->finish_reason, b->finish_reason);
}

START_TEST(test_greedy_traces_identical) {
    reason_context *ctx = make_ctx(qwen, 1024, 4);
    reason_params p;
    reason_params_default(&p);
    p.sampling.temperature = 0.0f;
    p.max_thinking_tokens = 16;
    p.max_answer_tokens = 8;
    p.loop_ngram = 0;
    reason_result *one = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    p.n_traces = 3;
    reason_result *three = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    const reason_trace_info a = trace_info(one, 0);
    for (int32_t i = 0; i < 3; i++) {
        const reason_trace_info b = trace_info(three, i);
        check_same_trace(&a, &b);
    }
    reason_result_free(one);
    reason_result_free(three);
    reason_context_free(ctx);
}
END_TEST

START_TEST(test_seed_repeatable) {
    reason_context *ctx = make_ctx(qwen, 1024, 4);
    reason_params p;
    reason_params_default(&p);
    p.n_traces = 3;
    p.sampling.temperature = 1.0f;
    p.sampling.seed = 1234;
    p.max_thinking_tokens = 20;
    p.max_answer_tokens = 10;
    reason_result *a = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    reason_result *b = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    for (int32_t i = 0; i < 3; i++) {
        const reason_trace_info x = trace_info(a, i), y = trace_info(b, i);
        check_same_trace(&x, &y);
    }
    /* different seeds per trace: the traces differ */
    ck_assert_str_ne(trace_info(a, 0).thinking, trace_info(a, 1).thinking);
    reason_result_free(a);
    reason_result_free(b);
    reason_context_free(ctx);
}
END_TEST

/* n traces share the prompt's KV blocks: the peak is about prompt + Σ trace tokens. */
START_TEST(test_kv_shared_prompt) {
    reason_context *ctx = make_ctx(qwen, 4096, 5);
    char *prompt = repeated_prompt("What is the sum of the first hundred primes? ", 30, "<think>\n");
    reason_params p;
    reason_params_default(&p);
    p.n_traces = 4;
    p.max_thinking_tokens = 24;
    p.max_answer_tokens = 8;
    reason_result *res = run_ok(ctx, prompt, &p);
    reason_usage u;
    reason_result_usage(res, &u);
    ck_assert_int_gt(u.prompt_tokens, 300);
    const int64_t block = 16;
    const int64_t shared = u.prompt_tokens + u.generated_tokens;
    ck_assert_int_le(u.kv_peak_tokens, shared + 5 * block);
    ck_assert_int_ge(u.kv_peak_tokens, u.prompt_tokens);
    ck_assert_int_lt(u.kv_peak_tokens, 4 * (int64_t)u.prompt_tokens / 2);
    reason_result_free(res);
    free(prompt);
    reason_context_free(ctx);
}
END_TEST

/* ---- voting ---------------------------------------------------------------------------------- */

START_TEST(test_vote_early_stop) {
    reason_context *ctx = make_ctx(qwen, 2048, 6);
    script s;
    memset(&s, 0, sizeof s);
    for (int32_t i = 0; i < 5; i++) {
        s.end_thinking_at[i] = 2 + 4 * i; /* trace i finishes before trace i + 1 */
        snprintf(s.answers[i], sizeof s.answers[i], "%s", i == 1 ? "8" : "7");
    }
    reason_callbacks cb = {.user = &s, .on_text = script_text, .on_token = script_token,
                           .extract = script_extract};
    reason_params p;
    reason_params_default(&p);
    p.n_traces = 5;
    p.max_thinking_tokens = 100;
    p.max_answer_tokens = 3;
    p.extract = REASON_EXTRACT_CALLBACK;
    p.callbacks = &cb;
    p.early_stop = 1;
    p.loop_ngram = 0;
    reason_result *res = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    /* after traces 0, 1, 2 voted 7, 8, 7 and then 3 voted 7: 3 > 1 + 1 remaining */
    int32_t cancelled = 0, voted = 0;
    for (int32_t i = 0; i < 5; i++) {
        const reason_trace_info t = trace_info(res, i);
        if (t.finish_reason == REASON_FINISH_CANCELLED) {
            cancelled++;
            ck_assert_str_eq(t.extracted, "");
            ck_assert_int_ge(i, 3);
        } else {
            voted++;
            ck_assert_str_eq(t.extracted, s.answers[i]);
        }
    }
    ck_assert_int_ge(cancelled, 1);
    ck_assert_int_eq(trace_info(res, 4).finish_reason, REASON_FINISH_CANCELLED);
    const char *winner;
    float share;
    ck_assert_int_eq(reason_result_vote(res, &winner, &share), REASON_OK);
    ck_assert_str_eq(winner, "7");
    ck_assert_float_eq_tol(share, (float)(voted - 1) / (float)voted, 1e-6f);
    ck_assert_int_eq(reason_result_n_answers(res), 2);
    const char *a;
    int32_t count;
    float weight;
    ck_assert_int_eq(reason_result_answer(res, 0, &a, &count, &weight), REASON_OK);
    ck_assert_str_eq(a, "7");
    ck_assert_int_eq(count, voted - 1);
    ck_assert_float_eq_tol(weight, (float)(voted - 1), 1e-6f);
    ck_assert_int_eq(reason_result_answer(res, 1, &a, &count, &weight), REASON_OK);
    ck_assert_str_eq(a, "8");
    ck_assert_int_eq(reason_result_answer(res, 2, &a, &count, &weight), REASON_ERR_INVALID_ARG);
    reason_trace_info info;
    ck_assert_int_eq(reason_result_trace(res, 5, &info), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_result_trace(res, -1, &info), REASON_ERR_INVALID_ARG);
    reason_result_free(res);
    check_all_freed(ctx, 6);

    /* without early stop every trace votes */
    memset(s.seen, 0, sizeof s.seen);
    memset(s.text_len, 0, sizeof s.text_len);
    memset(s.text, 0, sizeof s.text);
    p.early_stop = 0;
    res = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    for (int32_t i = 0; i < 5; i++)
        ck_assert_int_ne(trace_info(res, i).finish_reason, REASON_FINISH_CANCELLED);
    reason_result_answer(res, 0, &a, &count, &weight);
    ck_assert_int_eq(count, 4);
    reason_result_free(res);
    reason_context_free(ctx);
}
END_TEST

/* Two warm-up traces finish at once; the threshold is the best of their lowest group
 * confidences (keep 0%), which long-running traces dip below. */
START_TEST(test_prune) {
    reason_context *ctx = make_ctx(qwen, 4096, 7);
    script s;
    memset(&s, 0, sizeof s);
    s.end_thinking_at[0] = 1;
    s.end_thinking_at[1] = 1;
    reason_callbacks cb = {.user = &s, .on_token = script_token};
    reason_params p;
    reason_params_default(&p);
    p.n_traces = 6;
    p.sampling.temperature = 1.0f;
    p.max_thinking_tokens = 150;
    p.max_answer_tokens = 2;
    p.callbacks = &cb;
    p.prune = 1;
    p.prune_warmup = 2;
    p.prune_keep_percent = 0.0f;
    p.confidence_window = 4;
    p.loop_ngram = 0;
    reason_result *res = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    int32_t pruned = 0;
    for (int32_t i = 0; i < 6; i++) {
        const reason_trace_info t = trace_info(res, i);
        if (i < 2) ck_assert_int_ne(t.finish_reason, REASON_FINISH_PRUNED);
        if (t.finish_reason != REASON_FINISH_PRUNED) continue;
        pruned++;
        ck_assert_str_eq(t.extracted, "");
        ck_assert_int_lt(t.thinking_tokens, 150);
    }
    ck_assert_int_ge(pruned, 1);
    reason_result_free(res);
    check_all_freed(ctx, 7);
    reason_context_free(ctx);
}
END_TEST

/* ---- loop guard and stop strings ------------------------------------------------------------- */

START_TEST(test_loop_detector) {
    loop_detector d;
    ck_assert_int_eq(loop_detector_init(&d, 4, 4), REASON_OK);
    /* a 3-cycle needs max(4 * 3, 2 * 4) = 12 tokens */
    int32_t found = 0, at = -1;
    for (int32_t i = 0; i < 20 && !found; i++) {
        found = loop_detector_add(&d, 100 + i % 3);
        at = i;
    }
    ck_assert_int_eq(found, 3);
    ck_assert_int_eq(at, 11);
    /* one repeated token needs 2 * 4 = 8 */
    loop_detector_reset(&d);
    for (int32_t i = 0; i < 7; i++) ck_assert_int_eq(loop_detector_add(&d, 5), 0);
    ck_assert_int_eq(loop_detector_add(&d, 5), 1);
    /* no loop in a varied stream */
    loop_detector_reset(&d);
    for (int32_t i = 0; i < 200; i++) ck_assert_int_eq(loop_detector_add(&d, (i * 7919) % 101), 0);
    loop_detector_free(&d);
}
END_TEST

#define SEVENS "77777777777777777777777777777777777777777777"
#define QWEN_ANSWER_TAIL "<think>\n\n</think>\n\n"

START_TEST(test_loop_guard) {
    reason_context *ctx = make_ctx(qwen, 1024, 2);
    char *prompt = repeated_prompt(SEVENS, 1, QWEN_ANSWER_TAIL);
    reason_params p;
    reason_params_default(&p);
    force_repeats(&p);
    p.max_answer_tokens = 100;
    p.loop_ngram = 4;
    p.loop_repeats = 4;
    reason_result *res = run_ok(ctx, prompt, &p);
    reason_trace_info t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 0);
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_LOOP);
    ck_assert_int_eq(t.answer_tokens, 8);
    ck_assert_str_eq(t.answer, "77777777");
    ck_assert_str_eq(t.extracted, "77777777");
    reason_result_free(res);

    p.loop_action = REASON_LOOP_NUDGE;
    p.loop_nudge = "\nLet me try a different approach.\n";
    res = run_ok(ctx, prompt, &p);
    t = trace_info(res, 0);
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_LOOP);
    ck_assert_ptr_nonnull(strstr(t.answer, "77777777\nLet me try a different approach.\n7"));
    ck_assert_int_eq(t.answer_tokens, 8 + n_tokens(qwen, p.loop_nudge) + 8);
    reason_result_free(res);
    free(prompt);
    reason_context_free(ctx);
}
END_TEST

START_TEST(test_stop_strings) {
    reason_context *ctx = make_ctx(qwen, 1024, 2);
    char *prompt = repeated_prompt(SEVENS, 1, QWEN_ANSWER_TAIL);
    reason_params p;
    reason_params_default(&p);
    force_repeats(&p);
    p.max_answer_tokens = 100;
    const char *stops[] = {"x", "777"};
    p.stop_strings = stops;
    p.n_stop_strings = 2;
    reason_result *res = run_ok(ctx, prompt, &p);
    reason_trace_info t = trace_info(res, 0);
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_STOP_STRING);
    ck_assert_int_eq(t.answer_tokens, 3);
    ck_assert_str_eq(t.answer, "");
    reason_result_free(res);
    free(prompt);
    reason_context_free(ctx);
}
END_TEST

/* ---- context full ---------------------------------------------------------------------------- */

START_TEST(test_context_full) {
    reason_context *ctx = make_ctx(qwen, 160, 4);
    reason_params p;
    reason_params_default(&p);
    p.n_traces = 3;
    p.sampling.seed = 5;
    p.max_thinking_tokens = 0;
    p.max_answer_tokens = 1000;
    p.loop_ngram = 0;
    reason_result *res = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    int32_t full = 0, longest = 0, first_full = -1;
    for (int32_t i = 0; i < 3; i++) {
        const reason_trace_info t = trace_info(res, i);
        if (t.finish_reason == REASON_FINISH_CONTEXT_FULL) {
            full++;
            if (first_full < 0 || t.answer_tokens < first_full) first_full = t.answer_tokens;
        }
        longest = t.answer_tokens > longest ? t.answer_tokens : longest;
    }
    ck_assert_int_ge(full, 1);
    /* the others went on after the first one gave way */
    ck_assert_int_gt(longest, first_full);
    reason_result_free(res);
    check_all_freed(ctx, 4);
    reason_context_free(ctx);
}
END_TEST

/* ---- modes ----------------------------------------------------------------------------------- */

START_TEST(test_prompted_mode) {
    reason_context *ctx = make_ctx(llama, 1024, 3);
    reason_params p;
    reason_params_default(&p);
    p.n_traces = 2;
    p.max_thinking_tokens = 10;
    p.max_answer_tokens = 5;
    p.wrap_up = "Time is up.";
    reason_result *res = NULL;
    ck_assert_msg(reason_run(ctx, "What is 2 + 3?", &p, &res) == REASON_OK, "%s", reason_last_error());
    const int32_t n_close = n_tokens(llama, "\n</think>\n\n");
    for (int32_t i = 0; i < 2; i++) {
        const reason_trace_info t = trace_info(res, i);
        ck_assert_int_eq(t.thinking_tokens, 10 + n_tokens(llama, "Time is up.") + n_close);
        ck_assert_ptr_nonnull(strstr(t.thinking, "Time is up."));
        ck_assert_ptr_null(strstr(t.thinking, "<think>"));
        ck_assert_int_le(t.answer_tokens, 5);
    }
    reason_usage u;
    reason_result_usage(res, &u);
    ck_assert_int_gt(u.prompt_tokens, 20); /* the prompted-thinking system message is there */
    reason_result_free(res);
    check_all_freed(ctx, 3);
    reason_context_free(ctx);
}
END_TEST

START_TEST(test_model_mode_no_think) {
    reason_context *ctx = make_ctx(qwen, 1024, 2);
    reason_params p;
    reason_params_default(&p);
    p.max_answer_tokens = 6;
    /* off: Qwen3's template pre-closes an empty think block */
    p.thinking_mode = REASON_THINKING_OFF;
    reason_result *res = NULL;
    ck_assert_msg(reason_run(ctx, "Hi", &p, &res) == REASON_OK, "%s", reason_last_error());
    reason_trace_info t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 0);
    ck_assert_int_le(t.answer_tokens, 6);
    reason_result_free(res);
    /* auto: the model opens no <think> (random weights), so it answers at once */
    p.thinking_mode = REASON_THINKING_AUTO;
    p.sampling.temperature = 0.0f;
    ck_assert_msg(reason_run(ctx, "Hi", &p, &res) == REASON_OK, "%s", reason_last_error());
    t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 0);
    ck_assert_str_eq(t.thinking, "");
    reason_result_free(res);
    /* effort low with budget -1 maps to 512 thinking tokens; min = 512 shows it */
    p.effort = REASON_EFFORT_LOW;
    p.min_thinking_tokens = 100000;
    p.max_answer_tokens = 0;
    res = run_ok(ctx, QWEN_THINKING_PROMPT, &p);
    ck_assert_int_eq(trace_info(res, 0).thinking_tokens, 512 + 3);
    reason_result_free(res);
    reason_context_free(ctx);
}
END_TEST

/* ---- text pieces ----------------------------------------------------------------------------- */

static int32_t feed_str(text_matcher *m, const char *s, int32_t tok, byte_buf *out, size_t *at) {
    for (size_t i = 0; s[i]; i++) {
        const int32_t p = matcher_feed(m, s[i], tok, i == 0, out);
        if (p != -1) {
            *at = i;
            return p;
        }
    }
    return -1;
}

START_TEST(test_matcher) {
    static const char *const pats[] = {"</think>", "b", "abc"};
    text_matcher m;
    byte_buf out = {0};
    size_t at = 0;
    ck_assert_int_eq(matcher_init(&m, pats, 1), REASON_OK);
    /* a tag split over tokens, with text before it in the first */
    ck_assert_int_eq(feed_str(&m, "x </", 0, &out, &at), -1);
    ck_assert_str_eq(out.data, "x ");
    ck_assert_int_eq(feed_str(&m, "thi", 1, &out, &at), -1);
    ck_assert_int_eq(feed_str(&m, "nk>rest", 2, &out, &at), 0);
    ck_assert_int_eq(at, 2);
    ck_assert_int_eq(m.match_tok, 0);
    ck_assert_int_eq(m.match_tok_first, 0);
    ck_assert_str_eq(out.data, "x ");
    /* a near miss is released whole; "<</think>" still matches */
    out.len = 0;
    ck_assert_int_eq(feed_str(&m, "</thin!<</think>", 3, &out, &at), 0);
    ck_assert_str_eq(out.data, "</thin!<");
    ck_assert_int_eq(m.match_tok_first, 0);
    out.len = 0;
    ck_assert_int_eq(feed_str(&m, "</t", 4, &out, &at), -1);
    ck_assert_int_eq(matcher_flush(&m, &out), REASON_OK);
    ck_assert_str_eq(out.data, "</t");
    matcher_free(&m);
    /* the earliest-ending match wins, even inside a longer candidate */
    ck_assert_int_eq(matcher_init(&m, pats + 1, 2), REASON_OK);
    out.len = 0;
    ck_assert_int_eq(feed_str(&m, "xab", 0, &out, &at), 0);
    ck_assert_str_eq(out.data, "xa");
    matcher_free(&m);
    byte_buf_free(&out);
}
END_TEST

START_TEST(test_utf8_stream) {
    utf8_stream u = {0};
    byte_buf out = {0};
    /* "é" = C3 A9 split across pushes, "€" = E2 82 AC */
    ck_assert_int_eq(utf8_stream_push(&u, "a\xC3", 2, false, &out), REASON_OK);
    ck_assert_str_eq(out.data, "a");
    ck_assert_int_eq(utf8_stream_push(&u, "\xA9\xE2\x82", 3, false, &out), REASON_OK);
    ck_assert_str_eq(out.data, "a\xC3\xA9");
    ck_assert_int_eq(utf8_stream_push(&u, "\xAC", 1, false, &out), REASON_OK);
    ck_assert_str_eq(out.data, "a\xC3\xA9\xE2\x82\xAC");
    /* invalid byte → U+FFFD; a truncated tail at the end → U+FFFD */
    out.len = 0;
    ck_assert_int_eq(utf8_stream_push(&u, "\xFFz\xE2", 3, false, &out), REASON_OK);
    ck_assert_str_eq(out.data, "\xEF\xBF\xBDz");
    ck_assert_int_eq(utf8_stream_push(&u, "", 0, true, &out), REASON_OK);
    ck_assert_str_eq(out.data, "\xEF\xBF\xBDz\xEF\xBF\xBD");
    utf8_stream_free(&u);
    byte_buf_free(&out);
}
END_TEST

/* ---- Harmony (gpt-oss) through a scripted model ----------------------------------------------- */

/* A fake engine with a real vocabulary (o200k_harmony; Gemma's) whose model follows a script:
 * after what a sequence holds it puts (nearly) all probability on the script's next token. Tokens
 * the runtime injects leave the script; the model then goes on after the longest suffix of what it
 * holds that the script contains (a special token alone suffices), else where it was: it says
 * again what it wanted to say, like a model whose early <|end|> was replaced by "Wait". */
#define FAKE_SEQS 8
#define FAKE_ROWS 8

typedef struct fake_seq {
    reason_token *v; /* tokens after the prompt (sequence 0: the prompt) */
    int32_t n, cap;
    int32_t cursor; /* the script's next token */
} fake_seq;

typedef struct fake_model {
    trace_engine e;
    reason_token end; /* what the model says once the script is spent */
    reason_token script[512];
    int32_t n_script;
    fake_seq seqs[FAKE_SEQS];
    reason_token prompt[4096]; /* what sequence 0 held when it was forked */
    int32_t n_prompt;
    float *logits; /* (FAKE_ROWS, n_vocab) */
    int32_t n_rows;
    int32_t row_of[512]; /* batch token -> its logits row, -1: none */
} fake_model;

static reason_tokenizer *gptoss;

static void load_gptoss(void) {
    char path[1024];
    if (reason_tokenizer_load(shared_data_path("tokenizers/gptoss", path, sizeof path), &gptoss) !=
        REASON_OK) {
        fprintf(stderr, "harmony tests: no gptoss tokenizer (%s), skipped\n", reason_last_error());
        gptoss = NULL;
    }
}

static void free_gptoss(void) { reason_tokenizer_free(gptoss); }

static int32_t tokenize_with(const reason_tokenizer *tok, const char *text, reason_token *out,
                             size_t cap) {
    size_t n = 0;
    ck_assert_int_eq(reason_tokenize(tok, text, strlen(text), REASON_TOKENIZE_PARSE_SPECIAL, out,
                                     cap, &n),
                     REASON_OK);
    return (int32_t)n;
}

static int32_t tokenize_into(const char *text, reason_token *out, size_t cap) {
    return tokenize_with(gptoss, text, out, cap);
}

static int32_t hm_tokens(const char *text) {
    reason_token t[1024];
    return tokenize_into(text, t, 1024);
}

static void fake_push(fake_seq *q, reason_token t) {
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 256;
        q->v = realloc(q->v, (size_t)q->cap * sizeof *q->v);
        ck_assert_ptr_nonnull(q->v);
    }
    q->v[q->n++] = t;
}

static void fake_follow(const fake_model *f, fake_seq *q, reason_token t) {
    if (q->cursor < f->n_script && f->script[q->cursor] == t) {
        q->cursor++;
        return;
    }
    int32_t best_len = 0, best_end = -1;
    for (int32_t j = 0; j < f->n_script; j++) {
        int32_t l = 0;
        while (l <= j && l < q->n && f->script[j - l] == q->v[q->n - 1 - l]) l++;
        if (l == 0) continue;
        const bool better =
            l > best_len || (l == best_len && best_end < q->cursor && j >= q->cursor);
        if (better) best_len = l, best_end = j;
    }
    if (best_len >= 2 || (best_len == 1 && reason_token_is_control(f->e.tok, t)))
        q->cursor = best_end + 1;
}

static reason_status fake_decode(void *self, const reason_batch *b) {
    fake_model *f = self;
    f->n_rows = 0;
    ck_assert_int_le(b->n_tokens, 512);
    for (int32_t i = 0; i < b->n_tokens; i++) {
        f->row_of[i] = -1;
        fake_seq *q = &f->seqs[b->seq_id[i]];
        ck_assert_int_eq(b->pos[i], (b->seq_id[i] ? f->n_prompt : 0) + q->n);
        fake_push(q, b->tokens[i]);
        if (b->seq_id[i]) fake_follow(f, q, b->tokens[i]);
        const bool want = b->want_logits ? b->want_logits[i] != 0 : i == b->n_tokens - 1;
        if (!want) continue;
        ck_assert_int_lt(f->n_rows, FAKE_ROWS);
        f->row_of[i] = f->n_rows;
        float *row = f->logits + (size_t)f->n_rows++ * (size_t)f->e.n_vocab;
        memset(row, 0, (size_t)f->e.n_vocab * sizeof *row);
        const reason_token next = q->cursor < f->n_script /* sequence 0: the script's start */
                                      ? f->script[q->cursor]
                                      : f->end;
        row[next] = 30.0f;
    }
    return REASON_OK;
}

static reason_status fake_logits(void *self, int32_t i, const float **out) {
    fake_model *f = self;
    ck_assert(i >= 0 && i < 512 && f->row_of[i] >= 0);
    *out = f->logits + (size_t)f->row_of[i] * (size_t)f->e.n_vocab;
    return REASON_OK;
}

static reason_status fake_seq_length(void *self, int32_t seq, int32_t *len) {
    fake_model *f = self;
    *len = f->seqs[seq].n + (seq && f->seqs[seq].n ? f->n_prompt : 0);
    return REASON_OK;
}

static reason_status fake_seq_truncate(void *self, int32_t seq, int32_t n_keep) {
    (void)self, (void)seq, (void)n_keep;
    ck_abort_msg("channel traces (Harmony, Gemma 4) never take tokens back");
    return REASON_ERR_INTERNAL;
}

static reason_status fake_seq_fork(void *self, int32_t parent, int32_t child) {
    fake_model *f = self;
    ck_assert_int_eq(parent, 0); /* the prompt, forked into the traces */
    ck_assert_int_le(f->seqs[0].n, 4096);
    memcpy(f->prompt, f->seqs[0].v, (size_t)f->seqs[0].n * sizeof *f->prompt);
    f->n_prompt = f->seqs[0].n;
    f->seqs[child].n = 0;
    f->seqs[child].cursor = 0;
    return REASON_OK;
}

static reason_status fake_seq_free(void *self, int32_t seq) {
    fake_model *f = self;
    if (seq >= 0 && seq < FAKE_SEQS) f->seqs[seq].n = 0, f->seqs[seq].cursor = 0;
    return REASON_OK;
}

static reason_status fake_kv_used(void *self, int64_t *slots) {
    fake_model *f = self;
    *slots = 0;
    for (int32_t s = 0; s < FAKE_SEQS; s++) *slots += f->seqs[s].n;
    return REASON_OK;
}

#define HARMONY_TEMPLATE                                                                           \
    "{{- \"<|start|>system<|message|>\" }}{%- if add_generation_prompt -%}<|start|>assistant"      \
    "{%- endif -%}{{ \"<|channel|>final<|message|>\" }}"

/* A fake model of a vocabulary and chat template that will write script (text, tags and all),
 * then end (the token of end_text). */
static fake_model *fake_new_with(const reason_tokenizer *tok, const char *chat_template,
                                 const char *end_text, const char *script) {
    fake_model *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    f->n_script = tokenize_with(tok, script, f->script, 512);
    f->end = reason_tokenizer_find(tok, end_text);
    ck_assert_int_ge(f->end, 0);
    f->e = (trace_engine){.self = f,
                          .tok = tok,
                          .chat_template = chat_template,
                          .n_vocab = reason_tokenizer_n_vocab(tok),
                          .decode = fake_decode,
                          .logits = fake_logits,
                          .seq_length = fake_seq_length,
                          .seq_truncate = fake_seq_truncate,
                          .seq_fork = fake_seq_fork,
                          .seq_free = fake_seq_free,
                          .kv_used = fake_kv_used};
    reason_context_params_default(&f->e.cp);
    f->e.cp.n_seq_max = FAKE_SEQS;
    f->e.cp.n_outputs_max = FAKE_ROWS - 1;
    f->logits = malloc((size_t)FAKE_ROWS * (size_t)f->e.n_vocab * sizeof *f->logits);
    ck_assert_ptr_nonnull(f->logits);
    return f;
}

/* A fake model for gpt-oss that will write script (Harmony text, tags and all). */
static fake_model *fake_new(const char *script) {
    return fake_new_with(gptoss, HARMONY_TEMPLATE, "<|return|>", script);
}

static void fake_free(fake_model *f) {
    for (int32_t s = 0; s < FAKE_SEQS; s++) {
        ck_assert_int_eq(f->seqs[s].n, 0); /* the runtime emptied every sequence */
        free(f->seqs[s].v);
    }
    free(f->logits);
    free(f);
}

/* The prompt the fake model was given, as text with its tags. */
static char *fake_prompt_text(const fake_model *f) {
    size_t len = 0;
    reason_detokenize(f->e.tok, f->prompt, (size_t)f->n_prompt, 1, NULL, 0, &len);
    char *s = malloc(len + 1);
    ck_assert_int_eq(
        reason_detokenize(f->e.tok, f->prompt, (size_t)f->n_prompt, 1, s, len + 1, &len),
        REASON_OK);
    return s;
}

static reason_result *hm_run(fake_model *f, const char *question, const char *raw,
                             const reason_params *p) {
    reason_result *res = NULL;
    const reason_status st = trace_run(&f->e, question, raw, p, &res);
    ck_assert_msg(st == REASON_OK, "%s", reason_last_error());
    return res;
}

static void hm_params(reason_params *p) {
    reason_params_default(p);
    p->sampling.temperature = 0.0f;
    p->loop_ngram = 0;
}

/* Nothing of the Harmony markup reaches the texts. */
static void assert_no_markup(const char *text) {
    static const char *const marks[] = {"<|", "|>", "analysis", "final", "assistant", "channel"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        ck_assert_msg(strstr(text, marks[i]) == NULL, "'%s' in '%s'", marks[i], text);
}

#define HM_THINK "Let me add 2 and 2. That makes 4."
#define HM_ANSWER "The answer is 4."
#define HM_REOPEN "<|start|>assistant<|channel|>final<|message|>"
#define HM_SCRIPT                                                                                  \
    "<|channel|>analysis<|message|>" HM_THINK "<|end|>" HM_REOPEN HM_ANSWER "<|return|>"

START_TEST(test_harmony_split) {
    if (!gptoss) return;
    fake_model *f = fake_new(HM_SCRIPT);
    reason_params p;
    hm_params(&p);
    reason_result *res = hm_run(f, "What is 2+2?", NULL, &p);
    reason_trace_info t = trace_info(res, 0);
    ck_assert_str_eq(t.thinking, HM_THINK);
    ck_assert_str_eq(t.answer, HM_ANSWER);
    ck_assert_str_eq(t.extracted, "4");
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
    /* the analysis header, text, close and the final header count as thinking */
    ck_assert_int_eq(t.thinking_tokens,
                     hm_tokens("<|channel|>analysis<|message|>" HM_THINK "<|end|>" HM_REOPEN));
    ck_assert_int_eq(hm_tokens("<|end|>" HM_REOPEN), 6);
    ck_assert_int_eq(t.answer_tokens, hm_tokens(HM_ANSWER "<|return|>"));
    /* the prompt: gpt-oss's system block (effort medium), the question, the assistant header */
    char *prompt = fake_prompt_text(f);
    ck_assert_ptr_nonnull(strstr(prompt, "\n\nReasoning: medium\n\n"));
    const char *tail = "<|start|>user<|message|>What is 2+2?<|end|><|start|>assistant";
    ck_assert_str_eq(prompt + strlen(prompt) - strlen(tail), tail);
    free(prompt);
    reason_result_free(res);

    /* effort presets set the Reasoning line (and, with max -1, the budget) */
    static const struct {
        int32_t effort;
        const char *line;
    } efforts[] = {{REASON_EFFORT_LOW, "\n\nReasoning: low\n\n"},
                   {REASON_EFFORT_MEDIUM, "\n\nReasoning: medium\n\n"},
                   {REASON_EFFORT_HIGH, "\n\nReasoning: high\n\n"}};
    for (size_t i = 0; i < sizeof efforts / sizeof efforts[0]; i++) {
        p.effort = efforts[i].effort;
        p.system = "Be brief.";
        res = hm_run(f, "What is 2+2?", NULL, &p);
        prompt = fake_prompt_text(f);
        ck_assert_msg(strstr(prompt, efforts[i].line) != NULL, "%s", prompt);
        ck_assert_ptr_nonnull(strstr(prompt, "<|start|>developer<|message|># Instructions\n\n"
                                             "Be brief.<|end|>"));
        ck_assert_str_eq(trace_info(res, 0).answer, HM_ANSWER);
        free(prompt);
        reason_result_free(res);
    }
    /* prompted thinking does not apply to channels */
    p.thinking_mode = REASON_THINKING_PROMPTED;
    ck_assert_int_eq(trace_run(&f->e, "q", NULL, &p, &res), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(res);
    fake_free(f);
}
END_TEST

/* The budget ends the analysis channel: wrap-up, then "<|end|>" and the final channel's header,
 * exactly; the model answers after it. Two traces, one batch. */
START_TEST(test_harmony_budget) {
    if (!gptoss) return;
    fake_model *f = fake_new(HM_SCRIPT);
    reason_params p;
    hm_params(&p);
    p.n_traces = 2;
    p.max_thinking_tokens = 7;
    p.wrap_up = WRAP_UP;
    reason_result *res = hm_run(f, "What is 2+2?", NULL, &p);
    reason_token think[64];
    const int32_t n_think = tokenize_into(HM_THINK, think, 64);
    ck_assert_int_gt(n_think, 4);
    char cut[256];
    size_t len = 0;
    ck_assert_int_eq(reason_detokenize(gptoss, think, 4, 0, cut, sizeof cut, &len), REASON_OK);
    snprintf(cut + len, sizeof cut - len, "%s", WRAP_UP);
    for (int32_t i = 0; i < 2; i++) {
        const reason_trace_info t = trace_info(res, i);
        /* 3 header tokens + 4 of text = 7, then the wrap-up and the 6 closing tokens */
        ck_assert_int_eq(t.thinking_tokens, 7 + hm_tokens(WRAP_UP) + 6);
        ck_assert_str_eq(t.thinking, cut);
        ck_assert_str_eq(t.answer, HM_ANSWER);
        ck_assert_int_eq(t.answer_tokens, hm_tokens(HM_ANSWER "<|return|>"));
        ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
        assert_no_markup(t.thinking);
        assert_no_markup(t.answer);
    }
    reason_result_free(res);

    /* budget 0: the prompt opens the final channel itself; no thinking at all */
    p.n_traces = 1;
    p.max_thinking_tokens = 0;
    fake_model *g = fake_new(HM_ANSWER "<|return|>");
    res = hm_run(g, "What is 2+2?", NULL, &p);
    reason_trace_info t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 0);
    ck_assert_str_eq(t.thinking, "");
    ck_assert_str_eq(t.answer, HM_ANSWER);
    char *prompt = fake_prompt_text(g);
    const char *tail = "<|start|>assistant<|channel|>final<|message|>";
    ck_assert_str_eq(prompt + strlen(prompt) - strlen(tail), tail);
    free(prompt);
    reason_result_free(res);
    /* thinking off: the same */
    p.max_thinking_tokens = -1;
    p.thinking_mode = REASON_THINKING_OFF;
    res = hm_run(g, "What is 2+2?", NULL, &p);
    ck_assert_int_eq(trace_info(res, 0).thinking_tokens, 0);
    ck_assert_str_eq(trace_info(res, 0).answer, HM_ANSWER);
    reason_result_free(res);
    fake_free(g);
    fake_free(f);
}
END_TEST

/* min_thinking: each early "<|end|>" of the analysis becomes the continuation, until min. */
START_TEST(test_harmony_min_thinking) {
    if (!gptoss) return;
    fake_model *f = fake_new("<|channel|>analysis<|message|>Quick.<|end|>" HM_REOPEN "4<|return|>");
    reason_params p;
    hm_params(&p);
    p.min_thinking_tokens = 12;
    p.max_thinking_tokens = 100;
    p.continuation = "\nWait";
    reason_result *res = hm_run(f, "What is 2+2?", NULL, &p);
    const reason_trace_info t = trace_info(res, 0);
    const int32_t before = hm_tokens("<|channel|>analysis<|message|>Quick.");
    const int32_t n_cont = hm_tokens("\nWait");
    const int32_t k = (12 - before + n_cont - 1) / n_cont; /* continuations until min */
    ck_assert_int_gt(k, 1);
    char want[256] = "Quick.";
    for (int32_t i = 0; i < k; i++) strcat(want, "\nWait");
    ck_assert_str_eq(t.thinking, want);
    /* + the model's own <|end|> and the final header it writes */
    ck_assert_int_eq(t.thinking_tokens, before + k * n_cont + 6);
    ck_assert_str_eq(t.answer, "4");
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
    reason_result_free(res);

    /* an end of generation inside the analysis ends only the thinking (closing injected) */
    fake_model *g = fake_new("<|channel|>analysis<|message|>Hmm.<|return|>");
    p.min_thinking_tokens = 0;
    res = hm_run(g, "q", NULL, &p);
    const reason_trace_info u = trace_info(res, 0);
    ck_assert_str_eq(u.thinking, "Hmm.");
    ck_assert_int_eq(u.thinking_tokens, hm_tokens("<|channel|>analysis<|message|>Hmm.") + 6);
    ck_assert_int_eq(u.finish_reason, REASON_FINISH_END);
    reason_result_free(res);
    fake_free(g);
    fake_free(f);
}
END_TEST

/* A model that goes straight to the final channel has no thinking; <|end|> and <|call|> end the
 * answer as <|return|> does; commentary is thinking; a raw prompt may start inside a message. */
START_TEST(test_harmony_straight_to_final) {
    if (!gptoss) return;
    reason_params p;
    hm_params(&p);
    static const char *const ends[] = {"<|return|>", "<|end|>", "<|call|>"};
    for (size_t i = 0; i < 3; i++) {
        char script[256];
        snprintf(script, sizeof script, "<|channel|>final<|message|>Just 4.%s", ends[i]);
        fake_model *f = fake_new(script);
        reason_result *res = hm_run(f, "What is 2+2?", NULL, &p);
        const reason_trace_info t = trace_info(res, 0);
        ck_assert_int_eq(t.thinking_tokens, 0);
        ck_assert_str_eq(t.thinking, "");
        ck_assert_str_eq(t.answer, "Just 4.");
        ck_assert_int_eq(t.answer_tokens, hm_tokens(script));
        ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
        reason_result_free(res);
        fake_free(f);
    }
    fake_model *f = fake_new("<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant"
                             "<|channel|>analysis<|message|>Sure.<|end|>" HM_REOPEN
                             "Yes.<|return|>");
    reason_result *res = hm_run(f, "q", NULL, &p);
    ck_assert_str_eq(trace_info(res, 0).thinking, "Checking.Sure.");
    ck_assert_str_eq(trace_info(res, 0).answer, "Yes.");
    reason_result_free(res);
    fake_free(f);
    /* raw prompts: inside the analysis (thinking at once), inside the final message (answer) */
    f = fake_new("More.<|end|>" HM_REOPEN "Done.<|return|>");
    res = hm_run(f, NULL, "<|start|>user<|message|>q<|end|><|start|>assistant<|channel|>analysis"
                          "<|message|>",
                 &p);
    ck_assert_str_eq(trace_info(res, 0).thinking, "More.");
    ck_assert_str_eq(trace_info(res, 0).answer, "Done.");
    reason_result_free(res);
    fake_free(f);
    f = fake_new("Done.<|return|>");
    res = hm_run(f, NULL, "<|start|>user<|message|>q<|end|>" HM_REOPEN, &p);
    ck_assert_int_eq(trace_info(res, 0).thinking_tokens, 0);
    ck_assert_str_eq(trace_info(res, 0).answer, "Done.");
    reason_result_free(res);
    fake_free(f);
}
END_TEST

typedef struct hm_stream {
    char text[2][512];
    size_t len[2];
    int32_t tokens[2];
    int32_t bad;
    int32_t end_thinking_at; /* END_THINKING after this many thinking tokens (0: never) */
} hm_stream;

static int32_t hm_on_text(void *user, int32_t trace, int32_t phase, const char *text, size_t len) {
    hm_stream *s = user;
    if (trace != 0 || phase < 0 || phase > 1 || s->len[phase] + len >= sizeof s->text[0]) {
        s->bad = 1;
        return REASON_ACTION_CONTINUE;
    }
    memcpy(s->text[phase] + s->len[phase], text, len);
    s->len[phase] += len;
    return REASON_ACTION_CONTINUE;
}

static int32_t hm_on_token(void *user, int32_t trace, int32_t phase, const reason_token_choice *c) {
    hm_stream *s = user;
    (void)c;
    if (trace != 0 || phase < 0 || phase > 1) s->bad = 1;
    else s->tokens[phase]++;
    if (phase == REASON_PHASE_THINKING && s->end_thinking_at && s->tokens[0] == s->end_thinking_at)
        return REASON_ACTION_END_THINKING;
    return REASON_ACTION_CONTINUE;
}

/* One streamed run of f: thinking and answer arrive apart (no header or tag text), equal to the
 * results, and every sampled token is reported in its phase (a header's, before its channel is
 * known, as thinking). Leaves s, cb and p set up for the caller's next run. */
static void expect_stream_split(fake_model *f, hm_stream *s, reason_callbacks *cb, reason_params *p,
                                const char *think, const char *answer) {
    memset(s, 0, sizeof *s);
    *cb = (reason_callbacks){.user = s, .on_text = hm_on_text, .on_token = hm_on_token};
    hm_params(p);
    p->callbacks = cb;
    reason_result *res = hm_run(f, "What is 2+2?", NULL, p);
    const reason_trace_info t = trace_info(res, 0);
    ck_assert_int_eq(s->bad, 0);
    ck_assert_str_eq(s->text[0], think);
    ck_assert_str_eq(s->text[1], answer);
    ck_assert_str_eq(s->text[0], t.thinking);
    ck_assert_str_eq(s->text[1], t.answer);
    ck_assert_int_eq(s->tokens[0], t.thinking_tokens);
    ck_assert_int_eq(s->tokens[1], t.answer_tokens);
    reason_result_free(res);
}

/* Streaming: thinking and answer arrive apart, tagged with their phases, and equal the results;
 * no header token's text is streamed. A callback ending the thinking injects the closing. */
START_TEST(test_harmony_streaming) {
    if (!gptoss) return;
    fake_model *f = fake_new(HM_SCRIPT);
    hm_stream s;
    reason_callbacks cb;
    reason_params p;
    expect_stream_split(f, &s, &cb, &p, HM_THINK, HM_ANSWER);
    reason_result *res;
    reason_trace_info t;

    memset(&s, 0, sizeof s);
    s.end_thinking_at = 5;
    p.wrap_up = WRAP_UP; /* the budget's, not the callback's */
    res = hm_run(f, "What is 2+2?", NULL, &p);
    t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 5 + 6);
    ck_assert_str_eq(t.thinking, s.text[0]);
    ck_assert_ptr_null(strstr(t.thinking, WRAP_UP));
    ck_assert_str_eq(t.answer, HM_ANSWER);
    ck_assert_str_eq(s.text[1], HM_ANSWER);
    reason_result_free(res);

    /* asked inside the header: the thinking ends once the header opens the analysis */
    memset(&s, 0, sizeof s);
    s.end_thinking_at = 1;
    res = hm_run(f, "What is 2+2?", NULL, &p);
    t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 3 + 6);
    ck_assert_str_eq(t.thinking, "");
    ck_assert_str_eq(t.answer, HM_ANSWER);
    reason_result_free(res);
    /* a model that answers at once: the request made in the header changes nothing */
    fake_model *g = fake_new("<|channel|>final<|message|>Just 4.<|return|>");
    memset(&s, 0, sizeof s);
    s.end_thinking_at = 1;
    res = hm_run(g, "What is 2+2?", NULL, &p);
    t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 0);
    ck_assert_str_eq(t.answer, "Just 4.");
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
    reason_result_free(res);
    fake_free(g);
    fake_free(f);
}
END_TEST

/* ---- Gemma 4 through a scripted model ------------------------------------------------------ */

/* Gemma's vocabulary (Gemma 3's tokenizer.json in the shared data, 262144 tokens) with Gemma 4's
 * control tokens, which it lacks, in place of five of its own: the turn tags take the places of
 * <start_of_turn>/<end_of_turn> and three unused tokens become <|think|>, <|channel>, <channel|>
 * (marked special). The file is rewritten into a temporary folder and loaded from there, so the
 * text path (pre-tokenizer, BPE, added-token splitting, detokenizing) is the real one. */
static reason_tokenizer *gemma4;

static char *replace_all(char *text, const char *from, const char *to, int32_t *n_done) {
    const size_t nf = strlen(from), nt = strlen(to);
    size_t count = 0;
    for (const char *p = text; (p = strstr(p, from)) != NULL; p += nf) count++;
    char *out = malloc(strlen(text) + count * nt + 1);
    ck_assert_ptr_nonnull(out);
    char *w = out;
    for (const char *p = text;;) {
        const char *hit = strstr(p, from);
        const size_t keep = hit ? (size_t)(hit - p) : strlen(p);
        memcpy(w, p, keep);
        w += keep;
        if (!hit) break;
        memcpy(w, to, nt);
        w += nt;
        p = hit + nf;
    }
    *w = '\0';
    free(text);
    *n_done = (int32_t)count;
    return out;
}

static void load_gemma4(void) {
    char path[1024];
    shared_data_path("tokenizers/gemma3/tokenizer.json", path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "gemma4 tests: no Gemma tokenizer (%s), skipped\n", path);
        return;
    }
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    fclose(f);
    static const char *const unused[][2] = {
        {"<unused92>", "<|think|>"}, {"<unused94>", "<|channel>"}, {"<unused95>", "<channel|>"}};
    int32_t n;
    for (size_t i = 0; i < 3; i++) { /* the added token, made special; then its vocabulary entry */
        char from[256], to[256];
        static const char *const entry =
            "\"content\": \"%s\",\n      \"single_word\": false,\n      \"lstrip\": false,\n"
            "      \"rstrip\": false,\n      \"normalized\": false,\n      \"special\": %s";
        snprintf(from, sizeof from, entry, unused[i][0], "false");
        snprintf(to, sizeof to, entry, unused[i][1], "true");
        text = replace_all(text, from, to, &n);
        ck_assert_int_eq(n, 1);
        snprintf(from, sizeof from, "\"%s\"", unused[i][0]);
        snprintf(to, sizeof to, "\"%s\"", unused[i][1]);
        text = replace_all(text, from, to, &n);
        ck_assert_int_eq(n, 1);
    }
    text = replace_all(text, "\"<start_of_turn>\"", "\"<|turn>\"", &n);
    ck_assert_int_eq(n, 2);
    text = replace_all(text, "\"<end_of_turn>\"", "\"<turn|>\"", &n);
    ck_assert_int_eq(n, 2);
    char dir[] = "/tmp/reason_gemma4_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char file[64];
    snprintf(file, sizeof file, "%s/tokenizer.json", dir);
    f = fopen(file, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
    free(text);
    const reason_status st = reason_tokenizer_load(file, &gemma4);
    remove(file);
    rmdir(dir);
    ck_assert_msg(st == REASON_OK, "%s", reason_last_error());
    static const char *const tags[] = {"<|turn>", "<turn|>", "<|think|>", "<|channel>",
                                       "<channel|>"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(reason_token_is_control(gemma4, reason_tokenizer_find(gemma4, tags[i])),
                      "%s", tags[i]);
    /* the end of a model turn also ends plain generation */
    ck_assert_int_eq(reason_token_is_end(gemma4, reason_tokenizer_find(gemma4, "<turn|>")), 1);
    ck_assert_int_eq(reason_token_is_end(gemma4, reason_tokenizer_find(gemma4, "<|turn>")), 0);
}

static void free_gemma4(void) { reason_tokenizer_free(gemma4); }

/* Only detection reads it: the fragments that mark Gemma 4's template. */
#define GEMMA4_TEMPLATE                                                                            \
    "{{- bos_token -}}{{- '<|turn>' + role + '\n' -}}{{- '<turn|>\n' -}}"                        \
    "{%- set continue_same_model_turn = false -%}"

static fake_model *g4_new(const char *script) {
    return fake_new_with(gemma4, GEMMA4_TEMPLATE, "<turn|>", script);
}

static int32_t g4_tokens(const char *text) {
    reason_token t[1024];
    return tokenize_with(gemma4, text, t, 1024);
}

/* Nothing of the Gemma 4 markup reaches the texts. */
static void g4_no_markup(const char *text) {
    static const char *const marks[] = {"<|", "|>", "thought", "channel", "turn"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        ck_assert_msg(strstr(text, marks[i]) == NULL, "'%s' in '%s'", marks[i], text);
}

static void g4_assert_tail(const fake_model *f, const char *tail) {
    char *prompt = fake_prompt_text(f);
    const size_t n = strlen(prompt), k = strlen(tail);
    ck_assert_msg(n >= k && strcmp(prompt + n - k, tail) == 0, "prompt: %s", prompt);
    free(prompt);
}

#define G4_OPEN "<|channel>thought\n"
#define G4_THINK "Let me add 2 and 2. That makes 4."
#define G4_ANSWER "The answer is 4."
#define G4_SCRIPT G4_OPEN G4_THINK "<channel|>" G4_ANSWER "<turn|>"

/* The thought channel is the thinking, what follows its close the answer, up to <turn|>. */
START_TEST(test_gemma4_split) {
    if (!gemma4) return;
    ck_assert_int_eq(g4_tokens(G4_OPEN), 3); /* <|channel>, thought, \n */
    fake_model *f = g4_new(G4_SCRIPT);
    reason_params p;
    hm_params(&p);
    reason_result *res = hm_run(f, "What is 2+2?", NULL, &p);
    reason_trace_info t = trace_info(res, 0);
    ck_assert_str_eq(t.thinking, G4_THINK);
    ck_assert_str_eq(t.answer, G4_ANSWER);
    ck_assert_str_eq(t.extracted, "4");
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
    /* the channel's header, text and close count as thinking */
    ck_assert_int_eq(t.thinking_tokens, g4_tokens(G4_OPEN G4_THINK "<channel|>"));
    ck_assert_int_eq(t.answer_tokens, g4_tokens(G4_ANSWER "<turn|>"));
    /* the prompt: thinking switched on atop the system turn, then the generation prompt */
    char *prompt = fake_prompt_text(f);
    ck_assert_ptr_nonnull(strstr(prompt, "<|turn>system\n<|think|>\n<turn|>\n"));
    free(prompt);
    g4_assert_tail(f, "<|turn>user\nWhat is 2+2?<turn|>\n<|turn>model\n");
    /* one BOS: the template writes it, the tokenizer adds none to a templated prompt */
    const reason_token bos = reason_tokenizer_find(gemma4, "<bos>");
    ck_assert_int_ge(bos, 0);
    ck_assert_int_eq(f->prompt[0], bos);
    ck_assert_int_ne(f->prompt[1], bos);
    reason_result_free(res);

    p.system = " Be brief. ";
    res = hm_run(f, "What is 2+2?", NULL, &p);
    g4_assert_tail(f, "<|turn>system\n<|think|>\nBe brief.<turn|>\n<|turn>user\nWhat is 2+2?"
                      "<turn|>\n<|turn>model\n");
    ck_assert_str_eq(trace_info(res, 0).answer, G4_ANSWER);
    reason_result_free(res);
    /* the header may end in more than one newline: the whitespace is no text */
    fake_model *g = g4_new("<|channel>thought\n\nHmm.<channel|>4<turn|>");
    res = hm_run(g, "q", NULL, &p);
    ck_assert_str_eq(trace_info(res, 0).thinking, "Hmm.");
    ck_assert_str_eq(trace_info(res, 0).answer, "4");
    reason_result_free(res);
    fake_free(g);
    /* prompted thinking does not apply to channels */
    p.thinking_mode = REASON_THINKING_PROMPTED;
    ck_assert_int_eq(trace_run(&f->e, "q", NULL, &p, &res), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(res);
    fake_free(f);
}
END_TEST

/* The budget ends the thought channel: wrap-up, then "<channel|>" alone; the model answers after
 * it. Two traces, one batch. Budget 0 and thinking off: the template's empty channel. */
START_TEST(test_gemma4_budget) {
    if (!gemma4) return;
    fake_model *f = g4_new(G4_SCRIPT);
    reason_params p;
    hm_params(&p);
    p.n_traces = 2;
    p.max_thinking_tokens = 7;
    p.wrap_up = WRAP_UP;
    reason_result *res = hm_run(f, "What is 2+2?", NULL, &p);
    reason_token think[64];
    const int32_t n_think = tokenize_with(gemma4, G4_THINK, think, 64);
    ck_assert_int_gt(n_think, 4);
    char cut[256];
    size_t len = 0;
    ck_assert_int_eq(reason_detokenize(gemma4, think, 4, 0, cut, sizeof cut, &len), REASON_OK);
    snprintf(cut + len, sizeof cut - len, "%s", WRAP_UP);
    ck_assert_int_eq(g4_tokens("<channel|>"), 1);
    for (int32_t i = 0; i < 2; i++) {
        const reason_trace_info t = trace_info(res, i);
        /* 3 header tokens + 4 of text = 7, then the wrap-up and the close */
        ck_assert_int_eq(t.thinking_tokens, 7 + g4_tokens(WRAP_UP) + 1);
        ck_assert_str_eq(t.thinking, cut);
        ck_assert_str_eq(t.answer, G4_ANSWER);
        ck_assert_int_eq(t.answer_tokens, g4_tokens(G4_ANSWER "<turn|>"));
        ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
        g4_no_markup(t.thinking);
        g4_no_markup(t.answer);
    }
    reason_result_free(res);

    /* budget 0: thinking off in the template (no <|think|>, an empty channel pre-closed) */
    p.n_traces = 1;
    p.max_thinking_tokens = 0;
    fake_model *g = g4_new(G4_ANSWER "<turn|>");
    res = hm_run(g, "What is 2+2?", NULL, &p);
    reason_trace_info t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 0);
    ck_assert_str_eq(t.thinking, "");
    ck_assert_str_eq(t.answer, G4_ANSWER);
    ck_assert_int_eq(t.answer_tokens, g4_tokens(G4_ANSWER "<turn|>"));
    char *prompt = fake_prompt_text(g);
    ck_assert_ptr_null(strstr(prompt, "<|think|>"));
    free(prompt);
    g4_assert_tail(g, "<|turn>user\nWhat is 2+2?<turn|>\n<|turn>model\n<|channel>thought\n"
                      "<channel|>");
    reason_result_free(res);
    /* thinking off: the same */
    p.max_thinking_tokens = -1;
    p.thinking_mode = REASON_THINKING_OFF;
    res = hm_run(g, "What is 2+2?", NULL, &p);
    ck_assert_int_eq(trace_info(res, 0).thinking_tokens, 0);
    ck_assert_str_eq(trace_info(res, 0).answer, G4_ANSWER);
    g4_assert_tail(g, "<|turn>model\n<|channel>thought\n<channel|>");
    reason_result_free(res);
    fake_free(g);
    fake_free(f);
}
END_TEST

/* min_thinking: each early "<channel|>" becomes the continuation, until min. An end of turn inside
 * the channel ends only the thinking. */
START_TEST(test_gemma4_min_thinking) {
    if (!gemma4) return;
    fake_model *f = g4_new(G4_OPEN "Quick.<channel|>4<turn|>");
    reason_params p;
    hm_params(&p);
    p.min_thinking_tokens = 12;
    p.max_thinking_tokens = 100;
    p.continuation = "\nWait";
    reason_result *res = hm_run(f, "What is 2+2?", NULL, &p);
    const reason_trace_info t = trace_info(res, 0);
    const int32_t before = g4_tokens(G4_OPEN "Quick.");
    const int32_t n_cont = g4_tokens("\nWait");
    const int32_t k = (12 - before + n_cont - 1) / n_cont; /* continuations until min */
    ck_assert_int_gt(k, 1);
    char want[256] = "Quick.";
    for (int32_t i = 0; i < k; i++) strcat(want, "\nWait");
    ck_assert_str_eq(t.thinking, want);
    ck_assert_int_eq(t.thinking_tokens, before + k * n_cont + 1); /* + its own close */
    ck_assert_str_eq(t.answer, "4");
    ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
    reason_result_free(res);

    fake_model *g = g4_new(G4_OPEN "Hmm.<turn|>");
    p.min_thinking_tokens = 0;
    res = hm_run(g, "q", NULL, &p);
    const reason_trace_info u = trace_info(res, 0);
    ck_assert_str_eq(u.thinking, "Hmm.");
    ck_assert_int_eq(u.thinking_tokens, g4_tokens(G4_OPEN "Hmm.") + 1);
    ck_assert_str_eq(u.answer, "");
    ck_assert_int_eq(u.finish_reason, REASON_FINISH_END);
    reason_result_free(res);
    fake_free(g);
    fake_free(f);
}
END_TEST

/* A model that answers at once has no thinking; an empty channel is no thinking text; a channel
 * opened after the answer ends it; raw prompts may start inside the channel or after it. */
START_TEST(test_gemma4_straight_answer) {
    if (!gemma4) return;
    reason_params p;
    hm_params(&p);
    static const char *const ends[] = {"<turn|>", "<|turn>", "<eos>"};
    for (size_t i = 0; i < 3; i++) {
        char script[256];
        snprintf(script, sizeof script, "Just 4.%s", ends[i]);
        fake_model *f = g4_new(script);
        reason_result *res = hm_run(f, "What is 2+2?", NULL, &p);
        const reason_trace_info t = trace_info(res, 0);
        ck_assert_int_eq(t.thinking_tokens, 0);
        ck_assert_str_eq(t.thinking, "");
        ck_assert_str_eq(t.answer, "Just 4.");
        ck_assert_int_eq(t.answer_tokens, g4_tokens(script));
        ck_assert_int_eq(t.finish_reason, REASON_FINISH_END);
        reason_result_free(res);
        fake_free(f);
    }
    fake_model *f = g4_new(G4_OPEN "<channel|>Yes.<|channel>thought\n<channel|><turn|>");
    reason_result *res = hm_run(f, "q", NULL, &p);
    ck_assert_str_eq(trace_info(res, 0).thinking, "");
    ck_assert_int_eq(trace_info(res, 0).thinking_tokens, 4);
    ck_assert_str_eq(trace_info(res, 0).answer, "Yes.");
    ck_assert_int_eq(trace_info(res, 0).answer_tokens, g4_tokens("Yes.<|channel>"));
    reason_result_free(res);
    fake_free(f);
    /* a channel closed in its header is empty thinking too */
    f = g4_new("<|channel>thought<channel|>Yes.<turn|>");
    res = hm_run(f, "q", NULL, &p);
    ck_assert_str_eq(trace_info(res, 0).thinking, "");
    ck_assert_int_eq(trace_info(res, 0).thinking_tokens, 3);
    ck_assert_str_eq(trace_info(res, 0).answer, "Yes.");
    ck_assert_int_eq(trace_info(res, 0).finish_reason, REASON_FINISH_END);
    reason_result_free(res);
    fake_free(f);
    f = g4_new("More.<channel|>Done.<turn|>");
    res = hm_run(f, NULL, "<|turn>user\nq<turn|>\n<|turn>model\n" G4_OPEN, &p);
    ck_assert_str_eq(trace_info(res, 0).thinking, "More.");
    ck_assert_str_eq(trace_info(res, 0).answer, "Done.");
    reason_result_free(res);
    fake_free(f);
    f = g4_new("Done.<turn|>");
    res = hm_run(f, NULL, "<|turn>user\nq<turn|>\n<|turn>model\n" G4_OPEN "<channel|>", &p);
    ck_assert_int_eq(trace_info(res, 0).thinking_tokens, 0);
    ck_assert_str_eq(trace_info(res, 0).answer, "Done.");
    reason_result_free(res);
    fake_free(f);
}
END_TEST

/* Streaming: thinking and answer arrive apart, in their phases, equal to the results; no tag is
 * streamed. A callback ending the thinking injects the close (without the wrap-up); asked inside
 * the channel's header, it applies once the header is done. */
START_TEST(test_gemma4_streaming) {
    if (!gemma4) return;
    fake_model *f = g4_new(G4_SCRIPT);
    hm_stream s;
    reason_callbacks cb;
    reason_params p;
    expect_stream_split(f, &s, &cb, &p, G4_THINK, G4_ANSWER);
    reason_result *res;
    reason_trace_info t;

    memset(&s, 0, sizeof s);
    s.end_thinking_at = 5;
    p.wrap_up = WRAP_UP; /* the budget's, not the callback's */
    res = hm_run(f, "What is 2+2?", NULL, &p);
    t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 5 + 1);
    ck_assert_str_eq(t.thinking, s.text[0]);
    ck_assert_uint_gt(strlen(t.thinking), 0);
    ck_assert_ptr_null(strstr(t.thinking, WRAP_UP));
    ck_assert_str_eq(t.answer, G4_ANSWER);
    ck_assert_str_eq(s.text[1], G4_ANSWER);
    reason_result_free(res);

    memset(&s, 0, sizeof s);
    s.end_thinking_at = 1;
    res = hm_run(f, "What is 2+2?", NULL, &p);
    t = trace_info(res, 0);
    ck_assert_int_eq(t.thinking_tokens, 3 + 1);
    ck_assert_str_eq(t.thinking, "");
    ck_assert_str_eq(t.answer, G4_ANSWER);
    reason_result_free(res);
    fake_free(f);
}
END_TEST

/* The delimiter table and the prompt scan underneath. */
START_TEST(test_syntax_table) {
    const think_syntax *tags = syntax_for_family(REASON_TEMPLATE_QWEN3);
    ck_assert_str_eq(tags->close, "</think>");
    ck_assert_ptr_null(tags->header_end);
    ck_assert_ptr_eq(syntax_for_family(0), tags);
    const think_syntax *hm = syntax_for_family(REASON_TEMPLATE_HARMONY);
    ck_assert_str_eq(hm->inject_close, "<|end|><|start|>assistant<|channel|>final<|message|>");
    ck_assert_int_eq(syntax_channel_phase(hm, "assistant<|channel|>analysis", 28),
                     REASON_PHASE_THINKING);
    const char *h = "assistant to=functions.f<|channel|>commentary json";
    ck_assert_int_eq(syntax_channel_phase(hm, h, strlen(h)), REASON_PHASE_THINKING);
    ck_assert_int_eq(syntax_channel_phase(hm, "assistant<|channel|>final", 25),
                     REASON_PHASE_ANSWER);
    ck_assert_int_eq(syntax_channel_phase(hm, "assistant", 9), REASON_PHASE_ANSWER);
    int32_t phase, in_header;
    syntax_prompt_state(hm, "<|start|>user<|message|>hi<|end|><|start|>assistant", &phase,
                        &in_header);
    ck_assert_int_eq(in_header, 1);
    syntax_prompt_state(hm, "<|start|>assistant<|channel|>analysis<|message|>x", &phase,
                        &in_header);
    ck_assert_int_eq(in_header, 0);
    ck_assert_int_eq(phase, REASON_PHASE_THINKING);
    syntax_prompt_state(hm, "<|start|>assistant<|channel|>final<|message|>", &phase, &in_header);
    ck_assert_int_eq(phase, REASON_PHASE_ANSWER);
    syntax_prompt_state(hm, "<|start|>user<|message|>hi", &phase, &in_header);
    ck_assert_int_eq(phase, -1);
    ck_assert_int_eq(in_header, 0);
    syntax_prompt_state(hm, "<|start|>user<|message|>hi<|end|>", &phase, &in_header);
    ck_assert_int_eq(phase, -1);
    ck_assert_int_eq(in_header, 0);

    /* Gemma 4: the thought channel, the answer after its close */
    const think_syntax *g4 = syntax_for_family(REASON_TEMPLATE_GEMMA4);
    ck_assert_str_eq(g4->inject_close, "<channel|>");
    ck_assert_int_eq(g4->answer_follows_close, 1);
    ck_assert_int_eq(hm->answer_follows_close, 0);
    ck_assert_int_eq(syntax_channel_phase(g4, "<|channel>thought", 17), REASON_PHASE_THINKING);
    ck_assert_int_eq(syntax_channel_phase(g4, "<|channel>other", 15), REASON_PHASE_ANSWER);
    static const struct {
        const char *prompt;
        int32_t phase, in_header;
    } g4_prompts[] = {
        {"<bos><|turn>user\nhi<turn|>\n<|turn>model\n", -1, 0},
        {"<|turn>user\nhi<turn|>\n<|turn>model\n<|channel>thought\n<channel|>", 1, 0},
        {"<|turn>model\n<|channel>thought\n<channel|>The answer\nis", 1, 0},
        {"<|turn>model\n<|channel>thought\nstep 1\nstep 2", 0, 0},
        {"<|turn>model\n<|channel>thought\n", 0, 0},
        {"<|turn>model\n<|channel>thought", -1, 1},
        {"<|turn>model\n<|channel>thought\nx<channel|>y<turn|>\n<|turn>user\nq<turn|>\n", -1, 0},
        {"<|turn>user\nhi", -1, 0},
    };
    for (size_t i = 0; i < sizeof g4_prompts / sizeof g4_prompts[0]; i++) {
        syntax_prompt_state(g4, g4_prompts[i].prompt, &phase, &in_header);
        ck_assert_msg(phase == g4_prompts[i].phase && in_header == g4_prompts[i].in_header,
                      "%s: phase %d, in_header %d", g4_prompts[i].prompt, phase, in_header);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("trace");
    TCase *units = tcase_create("units");
    tcase_add_test(units, test_matcher);
    tcase_add_test(units, test_utf8_stream);
    tcase_add_test(units, test_loop_detector);
    tcase_add_test(units, test_syntax_table);
    suite_add_tcase(s, units);
    TCase *hm = tcase_create("harmony");
    tcase_set_timeout(hm, 120);
    tcase_add_unchecked_fixture(hm, load_gptoss, free_gptoss);
    tcase_add_test(hm, test_harmony_split);
    tcase_add_test(hm, test_harmony_budget);
    tcase_add_test(hm, test_harmony_min_thinking);
    tcase_add_test(hm, test_harmony_straight_to_final);
    tcase_add_test(hm, test_harmony_streaming);
    suite_add_tcase(s, hm);
    TCase *g4 = tcase_create("gemma4");
    tcase_set_timeout(g4, 120);
    tcase_add_unchecked_fixture(g4, load_gemma4, free_gemma4);
    tcase_add_test(g4, test_gemma4_split);
    tcase_add_test(g4, test_gemma4_budget);
    tcase_add_test(g4, test_gemma4_min_thinking);
    tcase_add_test(g4, test_gemma4_straight_answer);
    tcase_add_test(g4, test_gemma4_streaming);
    suite_add_tcase(s, g4);
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, load_models, free_models);
    tcase_add_test(tc, test_arguments);
    tcase_add_test(tc, test_budget_exact);
    tcase_add_test(tc, test_min_thinking);
    tcase_add_test(tc, test_callbacks);
    tcase_add_test(tc, test_greedy_traces_identical);
    tcase_add_test(tc, test_seed_repeatable);
    tcase_add_test(tc, test_kv_shared_prompt);
    tcase_add_test(tc, test_vote_early_stop);
    tcase_add_test(tc, test_prune);
    tcase_add_test(tc, test_loop_guard);
    tcase_add_test(tc, test_stop_strings);
    tcase_add_test(tc, test_context_full);
    tcase_add_test(tc, test_prompted_mode);
    tcase_add_test(tc, test_model_mode_no_think);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
