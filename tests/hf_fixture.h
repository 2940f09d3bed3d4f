/* hf_fixture.h — the tiny Hugging Face fixtures of tests/data/hf (<name>/ with config.json and
 * model.safetensors, <name>.json, <name>.logits.f32 — tools/gen_qwen35_fixtures.py,
 * tools/gen_gptoss_fixtures.py): copied into a temporary directory with
 * tests/data/models/qwen3-tokenizer.json as tokenizer.json (the fixtures carry none: tests/data
 * is near its size cap; token ids are what is compared), and their token ids and reference
 * logits read into a model_fixture. */
#ifndef REASON_HF_FIXTURE_H
#define REASON_HF_FIXTURE_H

#include "model_fixture.h"
#include "reason.h"

#include <dirent.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

static inline void hf_fixture_copy(const char *src, const char *dir, const char *dst_name) {
    char dst[512];
    snprintf(dst, sizeof dst, "%s/%s", dir, dst_name);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    ck_assert_msg(in != NULL, "%s", src);
    ck_assert_ptr_nonnull(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* dir (a buffer of at least 32 bytes) becomes a fresh directory holding the fixture `name`. */
static inline void hf_fixture_setup(const char *name, char *dir, model_fixture *fx) {
    snprintf(dir, 32, "/tmp/reason-hf-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char src[1024], rel[160];
    snprintf(rel, sizeof rel, "hf/%s/config.json", name);
    hf_fixture_copy(test_data_path(rel, src, sizeof src), dir, "config.json");
    snprintf(rel, sizeof rel, "hf/%s/model.safetensors", name);
    hf_fixture_copy(test_data_path(rel, src, sizeof src), dir, "model.safetensors");
    hf_fixture_copy(test_data_path("models/qwen3-tokenizer.json", src, sizeof src), dir,
                    "tokenizer.json");
    memset(fx, 0, sizeof *fx);
    json_error_t err;
    snprintf(rel, sizeof rel, "hf/%s.json", name);
    json_t *root = json_load_file(test_data_path(rel, src, sizeof src), 0, &err);
    ck_assert_msg(root != NULL, "%s: %s", src, err.text);
    fx->n_prompt = json_ids(json_object_get(root, "prompt_ids"), fx->tokens, 512);
    fx->n_tokens = fx->n_prompt + json_ids(json_object_get(root, "greedy_ids"),
                                           fx->tokens + fx->n_prompt, 512 - fx->n_prompt);
    fx->n_vocab = (int32_t)json_integer_value(json_object_get(root, "n_vocab"));
    ck_assert_int_eq(json_integer_value(json_object_get(root, "n_rows")), fx->n_tokens);
    json_decref(root);
    snprintf(rel, sizeof rel, "hf/%s.logits.f32", name);
    FILE *fp = fopen(test_data_path(rel, src, sizeof src), "rb");
    ck_assert_ptr_nonnull(fp);
    const size_t n = (size_t)fx->n_tokens * (size_t)fx->n_vocab;
    fx->logits = malloc(n * sizeof(float));
    ck_assert_uint_eq(fread(fx->logits, sizeof(float), n, fp), n);
    fclose(fp);
}

/* ---- decoding a fixture and checking its logits -------------------------------------------- */

/* The reference of one test run, its tolerance (relative max-norm per row) and the worst error
 * seen so far. */
typedef struct fixture_check {
    const model_fixture *fx;
    double tol;
    double worst;
} fixture_check;

static inline reason_model *fixture_load_model(const char *path) {
    reason_model *model;
    ck_assert_msg(reason_model_load(path, NULL, &model) == REASON_OK, "%s", reason_last_error());
    return model;
}

/* A context for the tiny fixtures: F32 KV in blocks of 4, 2 threads. */
static inline reason_context *fixture_context(const reason_model *model, int32_t n_seq,
                                              uint32_t n_ctx) {
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = n_ctx;
    p.n_batch = 64;
    p.n_outputs_max = 64;
    p.n_seq_max = (uint32_t)n_seq;
    p.kv_type = REASON_KV_F32;
    p.kv_block_size = 4;
    p.n_threads = 2;
    reason_context *ctx;
    ck_assert_msg(reason_context_create(model, &p, &ctx) == REASON_OK, "%s", reason_last_error());
    return ctx;
}

/* Batch token i's logits against the reference row after token `row`. */
static inline void fixture_expect_row(fixture_check *c, reason_context *ctx, int32_t i,
                                      int32_t row, const char *label) {
    const float *logits;
    ck_assert_msg(reason_get_logits(ctx, i, &logits) == REASON_OK, "%s", reason_last_error());
    const double err =
        rel_max_err(logits, c->fx->logits + (size_t)row * c->fx->n_vocab, c->fx->n_vocab);
    if (err > c->worst) c->worst = err;
    ck_assert_msg(err <= c->tol, "%s: logits after token %d differ by %.3g > %.1g", label, row,
                  err, c->tol);
}

/* Decodes the fixture's tokens [from, to) into seq at positions from..to-1, every row checked
 * when check. */
static inline void fixture_decode(fixture_check *c, reason_context *ctx, int32_t seq,
                                  int32_t from, int32_t to, bool check, const char *label) {
    int32_t pos[512], sid[512];
    int8_t want[512];
    for (int32_t i = from; i < to; i++) {
        pos[i - from] = i;
        sid[i - from] = seq;
        want[i - from] = 1;
    }
    const reason_batch b = {to - from, c->fx->tokens + from, pos, sid, want};
    ck_assert_msg(reason_decode(ctx, &b) == REASON_OK, "%s: %s", label, reason_last_error());
    for (int32_t r = from; r < to && check; r++) fixture_expect_row(c, ctx, r - from, r, label);
}

/* The checks every architecture's fixture gets: the whole sequence in one batch; the prompt, then
 * one token at a time; the prompt forked twice and the children decoding the greedy tokens
 * together, one batch a step, in the other order than they were forked. */
static inline void fixture_check_one_batch(fixture_check *c, const reason_model *model,
                                           uint32_t n_ctx) {
    reason_context *ctx = fixture_context(model, 1, n_ctx);
    fixture_decode(c, ctx, 0, 0, c->fx->n_tokens, true, "one batch");
    reason_context_free(ctx);
}

static inline void fixture_check_token_by_token(fixture_check *c, const reason_model *model,
                                                uint32_t n_ctx) {
    reason_context *ctx = fixture_context(model, 1, n_ctx);
    fixture_decode(c, ctx, 0, 0, c->fx->n_prompt, true, "prompt");
    for (int32_t t = c->fx->n_prompt; t < c->fx->n_tokens; t++)
        fixture_decode(c, ctx, 0, t, t + 1, true, "step");
    reason_context_free(ctx);
}

static inline void fixture_check_forked(fixture_check *c, const reason_model *model,
                                        uint32_t n_ctx) {
    reason_context *ctx = fixture_context(model, 3, n_ctx);
    fixture_decode(c, ctx, 0, 0, c->fx->n_prompt, true, "prompt");
    ck_assert_int_eq(reason_seq_fork(ctx, 0, 1), REASON_OK);
    ck_assert_int_eq(reason_seq_fork(ctx, 0, 2), REASON_OK);
    for (int32_t t = c->fx->n_prompt; t < c->fx->n_tokens; t++) {
        const int32_t tok[2] = {c->fx->tokens[t], c->fx->tokens[t]}, pos[2] = {t, t},
                      sid[2] = {2, 1};
        const int8_t want[2] = {1, 1};
        const reason_batch b = {2, tok, pos, sid, want};
        ck_assert_msg(reason_decode(ctx, &b) == REASON_OK, "%s", reason_last_error());
        fixture_expect_row(c, ctx, 0, t, "fork 2");
        fixture_expect_row(c, ctx, 1, t, "fork 1");
    }
    reason_context_free(ctx);
}

/* The reasoning runtime on a fixture model: three traces forked from one prompt, an exact
 * thinking budget (min = max) closed by the injected "</think>", and a vote over the answers (a
 * constant extractor: the plumbing, not the random model's text, is under test). The fixtures'
 * tokenizer has <think> tokens, so the runtime runs in model mode on every architecture. */
static inline size_t fixture_extract_constant(void *user, const char *text, size_t len,
                                              char *out, size_t cap) {
    (void)user, (void)text, (void)len;
    return (size_t)snprintf(out, cap, "42");
}

static inline void fixture_check_runtime(const reason_model *model) {
    reason_context *ctx = fixture_context(model, 6, 256);
    const reason_tokenizer *tok;
    ck_assert_int_eq(reason_model_tokenizer(model, &tok), REASON_OK);
    size_t n_close = 0;
    static const char close[] = "\n</think>\n\n";
    ck_assert_int_eq(reason_tokenize(tok, close, strlen(close), REASON_TOKENIZE_PARSE_SPECIAL,
                                     NULL, 0, &n_close),
                     REASON_ERR_BUFFER);
    reason_callbacks cb = {.extract = fixture_extract_constant};
    reason_params p;
    reason_params_default(&p);
    p.n_traces = 3;
    p.max_thinking_tokens = p.min_thinking_tokens = 12;
    p.max_answer_tokens = 6;
    p.sampling.seed = 5;
    p.extract = REASON_EXTRACT_CALLBACK;
    p.callbacks = &cb;
    p.loop_ngram = 0;
    reason_result *res = NULL;
    ck_assert_msg(reason_run_prompt(ctx,
                                    "<|im_start|>user\n17 * 23?<|im_end|>\n<|im_start|>assistant\n"
                                    "<think>\n",
                                    &p, &res) == REASON_OK,
                  "%s", reason_last_error());
    ck_assert_int_eq(reason_result_n_traces(res), 3);
    for (int32_t i = 0; i < 3; i++) {
        reason_trace_info t;
        ck_assert_int_eq(reason_result_trace(res, i, &t), REASON_OK);
        ck_assert_int_eq(t.thinking_tokens, 12 + (int32_t)n_close);
        ck_assert_int_le(t.answer_tokens, 6);
    }
    const char *winner;
    float share;
    ck_assert_int_eq(reason_result_vote(res, &winner, &share), REASON_OK);
    ck_assert_str_eq(winner, "42");
    ck_assert_float_eq_tol(share, 1.0f, 1e-6f);
    reason_result_free(res);
    reason_context_free(ctx);
}

static inline void hf_fixture_remove(const char *dir);

/* End of a fixture test: reports the worst error seen (label), resets it, removes the copy. */
static inline void fixture_teardown(fixture_check *c, model_fixture *fx, const char *dir,
                                    const char *label) {
    if (c->worst > 0) printf("%s: worst relative max-norm error %.3g\n", label, c->worst);
    c->worst = 0;
    hf_fixture_remove(dir);
    model_fixture_free(fx);
}

/* Removes the directory and what is in it. */
static inline void hf_fixture_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

#endif
