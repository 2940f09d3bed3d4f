/* test_context.c — the public context API on a tiny model: argument checks, bad batches, a full
 * KV cache that leaves every sequence usable, logits bookkeeping, memory counters of shared
 * prompts (and none of a windowed pool for a model without sliding-window layers). */
#include "model_fixture.h"
#include "tensor_types.h"
#include "test_util.h"

#include "reason.h"

#include <math.h>
#include <string.h>

static reason_model *model;

static void load_model(void) {
    char path[1024];
    test_data_path("models/llama-Q8_0.gguf", path, sizeof path);
    ck_assert_msg(reason_model_load(path, NULL, &model) == REASON_OK, "%s", reason_last_error());
}

static void free_model(void) {
    reason_model_free(model);
    model = NULL;
}

static reason_context *make_ctx(uint32_t n_ctx, uint32_t n_seq) {
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = n_ctx;
    p.n_seq_max = n_seq;
    p.n_batch = 64;
    p.n_outputs_max = 8;
    p.n_threads = 1;
    reason_context *ctx = NULL;
    ck_assert_msg(reason_context_create(model, &p, &ctx) == REASON_OK, "%s", reason_last_error());
    return ctx;
}

static reason_status feed(reason_context *ctx, int32_t seq, int32_t n) {
    int32_t len;
    ck_assert_int_eq(reason_seq_length(ctx, seq, &len), REASON_OK);
    int32_t toks[64], pos[64], seqs[64];
    for (int32_t i = 0; i < n; i++) {
        toks[i] = 10 + i;
        pos[i] = len + i;
        seqs[i] = seq;
    }
    const reason_batch b = {n, toks, pos, seqs, NULL};
    return reason_decode(ctx, &b);
}

START_TEST(test_null_arguments) {
    reason_context *ctx = NULL;
    ck_assert_int_eq(reason_context_create(NULL, NULL, &ctx), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_context_create(model, NULL, NULL), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_decode(NULL, NULL), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_model_get_info(NULL, NULL), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_get_logits(NULL, 0, NULL), REASON_ERR_INVALID_ARG);
    reason_context_free(NULL);
    reason_model_free(NULL);
    ck_assert_ptr_nonnull(reason_last_error());
    ck_assert_str_eq(reason_status_name(REASON_ERR_CONTEXT_FULL), "REASON_ERR_CONTEXT_FULL");
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_outputs_max = 0;
    ck_assert_int_eq(reason_context_create(model, &p, &ctx), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(ctx);
}
END_TEST

/* A KV cache far larger than any machine's memory: refused with REASON_ERR_NOMEM, no crash. */
START_TEST(test_out_of_memory) {
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = 1u << 26;
    p.n_seq_max = 65536;
    p.n_batch = 1u << 20;
    p.n_outputs_max = 1 << 20;
    reason_context *ctx = NULL;
    ck_assert_int_eq(reason_context_create(model, &p, &ctx), REASON_ERR_NOMEM);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "out of memory"));
}
END_TEST

START_TEST(test_bad_batches) {
    reason_context *ctx = make_ctx(64, 2);
    int32_t tok = 1 << 30, pos = 0, seq = 0;
    reason_batch b = {1, &tok, &pos, &seq, NULL};
    ck_assert_int_eq(reason_decode(ctx, &b), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "batch token 0"));
    tok = 5;
    pos = 3; /* sequence is empty: position must be 0 */
    ck_assert_int_eq(reason_decode(ctx, &b), REASON_ERR_INVALID_ARG);
    pos = 0;
    seq = 2;
    ck_assert_int_eq(reason_decode(ctx, &b), REASON_ERR_INVALID_ARG);
    seq = 0;
    b.n_tokens = 0;
    ck_assert_int_eq(reason_decode(ctx, &b), REASON_ERR_INVALID_ARG);
    b.n_tokens = 1;
    ck_assert_int_eq(reason_decode(ctx, &b), REASON_OK);
    const float *logits;
    ck_assert_int_eq(reason_get_logits(ctx, 0, &logits), REASON_OK);
    ck_assert_int_eq(reason_get_logits(ctx, 1, &logits), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_seq_truncate(ctx, 0, 5), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_seq_fork(ctx, 0, 0), REASON_ERR_INVALID_ARG);
    reason_context_free(ctx);
}
END_TEST

START_TEST(test_full_cache_keeps_sequences) {
    reason_context *ctx = make_ctx(64, 3); /* 4 blocks of 16 */
    ck_assert_int_eq(feed(ctx, 0, 40), REASON_OK);
    ck_assert_int_eq(feed(ctx, 1, 10), REASON_OK);
    ck_assert_int_eq(feed(ctx, 2, 20), REASON_ERR_CONTEXT_FULL);
    int32_t len;
    reason_seq_length(ctx, 0, &len);
    ck_assert_int_eq(len, 40);
    reason_seq_length(ctx, 1, &len);
    ck_assert_int_eq(len, 10);
    reason_seq_length(ctx, 2, &len);
    ck_assert_int_eq(len, 0);
    /* the caller frees a sequence and goes on */
    ck_assert_int_eq(reason_seq_free(ctx, 1), REASON_OK);
    ck_assert_int_eq(feed(ctx, 2, 16), REASON_OK);
    ck_assert_int_eq(feed(ctx, 0, 1), REASON_OK);
    reason_context_free(ctx);
}
END_TEST

START_TEST(test_forks_share_prompt_memory) {
    reason_context *ctx = make_ctx(1024, 9);
    const int32_t P = 48, N = 8, G = 5;
    ck_assert_int_eq(feed(ctx, 0, P), REASON_OK);
    for (int32_t s = 1; s <= N; s++) ck_assert_int_eq(reason_seq_fork(ctx, 0, s), REASON_OK);
    for (int32_t g = 0; g < G; g++)
        for (int32_t s = 1; s <= N; s++) ck_assert_int_eq(feed(ctx, s, 1), REASON_OK);
    reason_context_stats st;
    ck_assert_int_eq(reason_context_get_stats(ctx, &st), REASON_OK);
    /* prompt once + one private block per trace (blocks of 16 hold the G = 5 new tokens) */
    ck_assert_uint_eq(st.kv_slots_used, (uint64_t)P + (uint64_t)N * 16);
    ck_assert_uint_lt(st.kv_slots_used, (uint64_t)N * (P + G));
    ck_assert_uint_eq(st.tokens_evaluated, (uint64_t)P + (uint64_t)N * G);
    reason_context_free(ctx);
}
END_TEST

/* A model without sliding-window layers has no windowed pool: its counters stay 0. */
/* REASON_PRECISION_FAST: 8-bit activations against Q8_0 weights, checked against transformers'
 * logits of the fixture (within 5e-2: the activation rounding, docs/performance.md) and seen to
 * differ from the exact path; an unknown precision is refused. */
START_TEST(test_fast_precision) {
    model_fixture fx;
    ck_assert_int_eq(model_fixture_load("llama-Q8_0", &fx), 0);
    const float *logits;
    double err[2];
    float first[2];
    for (int fast = 0; fast < 2; fast++) {
        reason_context_params p;
        reason_context_params_default(&p);
        p.kv_type = REASON_KV_F32;
        p.n_threads = 1;
        p.precision = fast ? REASON_PRECISION_FAST : REASON_PRECISION_EXACT;
        reason_context *ctx = NULL;
        ck_assert_msg(reason_context_create(model, &p, &ctx) == REASON_OK, "%s",
                      reason_last_error());
        err[fast] = 0.0;
        for (int32_t t = 0; t < fx.n_tokens; t++) { /* one token at a time: the decode path */
            const int32_t pos = t, seq = 0;
            const reason_batch b = {1, &fx.tokens[t], &pos, &seq, NULL};
            ck_assert_int_eq(reason_decode(ctx, &b), REASON_OK);
            ck_assert_int_eq(reason_get_logits(ctx, 0, &logits), REASON_OK);
            const double e = rel_max_err(logits, fx.logits + (size_t)t * fx.n_vocab, fx.n_vocab);
            if (e > err[fast]) err[fast] = e;
            if (t == 0) first[fast] = logits[0];
        }
        reason_context_free(ctx);
    }
    /* the whole sequence as one batch (2 threads): the prompt path, the integer GEMM when fast */
    double err_batch = 0.0;
    {
        reason_context_params p;
        reason_context_params_default(&p);
        p.kv_type = REASON_KV_F32;
        p.n_threads = 2;
        p.precision = REASON_PRECISION_FAST;
        reason_context *ctx = NULL;
        ck_assert_int_eq(reason_context_create(model, &p, &ctx), REASON_OK);
        const int32_t n = fx.n_tokens;
        int32_t *pos = malloc((size_t)n * sizeof *pos), *seq = calloc((size_t)n, sizeof *seq);
        int8_t *want = malloc((size_t)n);
        for (int32_t t = 0; t < n; t++) pos[t] = t, want[t] = 1;
        const reason_batch b = {n, fx.tokens, pos, seq, want};
        ck_assert_int_eq(reason_decode(ctx, &b), REASON_OK);
        for (int32_t t = 0; t < n; t++) {
            ck_assert_int_eq(reason_get_logits(ctx, t, &logits), REASON_OK);
            const double e = rel_max_err(logits, fx.logits + (size_t)t * fx.n_vocab, fx.n_vocab);
            if (e > err_batch) err_batch = e;
        }
        free(pos), free(seq), free(want);
        reason_context_free(ctx);
    }
    /* batches of 5 tokens (2 threads): the narrow integer kernel, its weights unpacked at every
     * step or kept (filled by the first batch, read by the later ones) */
    double err_few[2] = {0.0, 0.0};
    for (int kept = 0; kept < 2; kept++) {
        reason_context_params p;
        reason_context_params_default(&p);
        p.kv_type = REASON_KV_F32;
        p.n_threads = 2;
        p.precision = REASON_PRECISION_FAST;
        p.unpacked_weights = kept ? REASON_UNPACKED_KEPT : REASON_UNPACKED_PER_STEP;
        reason_context *ctx = NULL;
        ck_assert_int_eq(reason_context_create(model, &p, &ctx), REASON_OK);
        for (int32_t t0 = 0; t0 < fx.n_tokens; t0 += 5) {
            const int32_t n = fx.n_tokens - t0 < 5 ? fx.n_tokens - t0 : 5;
            int32_t pos[5], seq[5] = {0};
            int8_t want[5];
            for (int32_t i = 0; i < n; i++) pos[i] = t0 + i, want[i] = 1;
            const reason_batch b = {n, fx.tokens + t0, pos, seq, want};
            ck_assert_int_eq(reason_decode(ctx, &b), REASON_OK);
            for (int32_t i = 0; i < n; i++) {
                ck_assert_int_eq(reason_get_logits(ctx, i, &logits), REASON_OK);
                const double e = rel_max_err(logits, fx.logits + (size_t)(t0 + i) * fx.n_vocab,
                                             fx.n_vocab);
                if (e > err_few[kept]) err_few[kept] = e;
            }
        }
        reason_context_stats cs;
        ck_assert_int_eq(reason_context_get_stats(ctx, &cs), REASON_OK);
        /* the fixture's Q8_0 matrices kept (at their own size) where the integer kernel runs */
        ck_assert_msg((cs.unpacked_weight_bytes > 0) == (kept && rs_cpu_has_vnni()),
                      "%llu bytes kept unpacked", (unsigned long long)cs.unpacked_weight_bytes);
        reason_context_free(ctx);
    }
    fprintf(stderr,
            "fast precision vs transformers: token by token %.3g, one batch %.3g, batches of 5 "
            "%.3g (weights kept unpacked %.3g)\n",
            err[1], err_batch, err_few[0], err_few[1]);
    ck_assert_msg(err_few[0] <= 5e-2 && err_few[1] <= 5e-2, "fast, batches of 5: %.3g / %.3g",
                  err_few[0], err_few[1]);
    ck_assert_msg(err[0] <= 1e-4, "exact: %.3g", err[0]);
    ck_assert_msg(err[1] <= 5e-2, "fast: %.3g", err[1]);
    ck_assert_msg(fx.n_tokens >= 16, "the fixture is too short for the integer GEMM");
    ck_assert_msg(err_batch <= 5e-2, "fast, one batch: %.3g", err_batch);
    ck_assert(first[0] != first[1]); /* the integer path really ran */
    model_fixture_free(&fx);
    reason_context_params p;
    reason_context_params_default(&p);
    p.precision = 7;
    reason_context *ctx = NULL;
    ck_assert_int_eq(reason_context_create(model, &p, &ctx), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "precision"));
    reason_context_params_default(&p);
    p.unpacked_weights = 2;
    ck_assert_int_eq(reason_context_create(model, &p, &ctx), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "unpacked_weights"));
}
END_TEST

/* REASON_KV_Q8: the 8-bit KV cache against transformers' logits of the fixture, token by token
 * and as one prompt batch (both attention paths), within the rounding of K and V to 8 bits per
 * 32 values (~0.4% per value); it holds 1.125 bytes per value (stats), and F16 stays closer. */
START_TEST(test_q8_kv) {
    model_fixture fx;
    ck_assert_int_eq(model_fixture_load("llama-Q8_0", &fx), 0);
    double err[2] = {0, 0}, err_batch = 0;
    const int32_t n = fx.n_tokens;
    int32_t *pos = malloc((size_t)n * sizeof *pos), *seq = calloc((size_t)n, sizeof *seq);
    int8_t *want = malloc((size_t)n);
    for (int32_t t = 0; t < n; t++) pos[t] = t, want[t] = 1;
    const float *logits;
    for (int q8 = 0; q8 < 2; q8++) {
        reason_context_params p;
        reason_context_params_default(&p);
        p.kv_type = q8 ? REASON_KV_Q8 : REASON_KV_F16;
        p.n_threads = 2;
        reason_context *ctx = NULL;
        ck_assert_msg(reason_context_create(model, &p, &ctx) == REASON_OK, "%s",
                      reason_last_error());
        for (int32_t t = 0; t < n; t++) { /* the decode path */
            const reason_batch b = {1, &fx.tokens[t], &pos[t], &seq[t], NULL};
            ck_assert_int_eq(reason_decode(ctx, &b), REASON_OK);
            ck_assert_int_eq(reason_get_logits(ctx, 0, &logits), REASON_OK);
            err[q8] = fmax(err[q8], rel_max_err(logits, fx.logits + (size_t)t * fx.n_vocab,
                                                fx.n_vocab));
        }
        if (q8) {
            reason_context_stats st;
            ck_assert_int_eq(reason_context_get_stats(ctx, &st), REASON_OK);
            ck_assert_uint_gt(st.kv_slots_total, 0);
            const double per_slot = (double)st.kv_bytes / (double)st.kv_slots_total;
            reason_context_params pf;
            reason_context_params_default(&pf);
            reason_context *f16 = NULL;
            ck_assert_int_eq(reason_context_create(model, &pf, &f16), REASON_OK);
            reason_context_stats sf;
            ck_assert_int_eq(reason_context_get_stats(f16, &sf), REASON_OK);
            const double ratio = per_slot / ((double)sf.kv_bytes / (double)sf.kv_slots_total);
            ck_assert_msg(fabs(ratio - 1.125 / 2) < 1e-9, "q8 / f16 bytes per slot %.4f", ratio);
            reason_context_free(f16);
            ck_assert_int_eq(reason_seq_free(ctx, 0), REASON_OK); /* the prompt path */
            const reason_batch b = {n, fx.tokens, pos, seq, want};
            ck_assert_int_eq(reason_decode(ctx, &b), REASON_OK);
            for (int32_t t = 0; t < n; t++) {
                ck_assert_int_eq(reason_get_logits(ctx, t, &logits), REASON_OK);
                err_batch = fmax(err_batch, rel_max_err(logits, fx.logits + (size_t)t * fx.n_vocab,
                                                        fx.n_vocab));
            }
        }
        reason_context_free(ctx);
    }
    fprintf(stderr, "KV vs transformers: f16 %.3g, q8 token by token %.3g, one batch %.3g\n",
            err[0], err[1], err_batch);
    ck_assert_msg(err[1] <= 5e-2 && err_batch <= 5e-2, "q8 KV: %.3g / %.3g", err[1], err_batch);
    ck_assert_msg(err[0] < err[1], "f16 KV (%.3g) should be closer than q8 (%.3g)", err[0],
                  err[1]);
    free(pos), free(seq), free(want);
    model_fixture_free(&fx);
}
END_TEST

START_TEST(test_no_windowed_pool) {
    reason_context *ctx = make_ctx(256, 2);
    ck_assert_int_eq(feed(ctx, 0, 40), REASON_OK);
    reason_context_stats st;
    ck_assert_int_eq(reason_context_get_stats(ctx, &st), REASON_OK);
    ck_assert_uint_eq(st.swa_slots_total, 0);
    ck_assert_uint_eq(st.swa_slots_used, 0);
    ck_assert_uint_eq(st.swa_slots_peak, 0);
    ck_assert_uint_eq(st.swa_bytes, 0);
    ck_assert_uint_eq(st.kv_slots_used, 48);
    ck_assert_uint_gt(st.kv_bytes, 0);
    /* any truncate works: every position is kept */
    ck_assert_int_eq(reason_seq_truncate(ctx, 0, 3), REASON_OK);
    reason_context_free(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("context");
    TCase *tc = tcase_create("api");
    tcase_add_unchecked_fixture(tc, load_model, free_model);
    tcase_add_test(tc, test_null_arguments);
    tcase_add_test(tc, test_out_of_memory);
    tcase_add_test(tc, test_bad_batches);
    tcase_add_test(tc, test_full_cache_keeps_sequences);
    tcase_add_test(tc, test_forks_share_prompt_memory);
    tcase_add_test(tc, test_no_windowed_pool);
    tcase_add_test(tc, test_fast_precision);
    tcase_add_test(tc, test_q8_kv);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
