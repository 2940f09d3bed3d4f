/* test_gptoss.c — architecture gpt-oss loaded from the tiny Hugging Face directory
 * tests/data/hf/gptoss-tiny (tools/gen_gptoss_fixtures.py) against transformers' float64 logits:
 * q/k/v/o biases, sink logits, sliding-window layers (window 4 over 23 tokens: the window has
 * moved on long before the end) alternating with full attention, YaRN RoPE, a biased router over
 * 4 experts picking 2, clamped SwiGLU experts with biases stored (E, in, out) with gate and up
 * interleaved. The whole sequence in one batch, the prompt then one token at a time, and two
 * forked sequences decoding together.
 *
 * Tolerance: 1e-4 relative max-norm per row, KV cache in F32. */
#include "hf_fixture.h"
#include "test_util.h"

#include "model.h"
#include "reason.h"

#include <string.h>

#define TOL 1e-4

static char tmp[32];
static model_fixture fx;
static double worst_err;

static void setup(void) { hf_fixture_setup("gptoss-tiny", tmp, &fx); }

static void teardown(void) {
    if (worst_err > 0) printf("gpt-oss: worst relative max-norm error %.3g\n", worst_err);
    worst_err = 0;
    hf_fixture_remove(tmp);
    model_fixture_free(&fx);
}

static reason_model *load(void) {
    reason_model *model;
    ck_assert_msg(reason_model_load(tmp, NULL, &model) == REASON_OK, "%s", reason_last_error());
    return model;
}

static reason_context *make_context(const reason_model *model, int32_t n_seq) {
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = 96;
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

static void expect_row(reason_context *ctx, int32_t i, int32_t row, const char *label) {
    const float *logits;
    ck_assert_msg(reason_get_logits(ctx, i, &logits) == REASON_OK, "%s", reason_last_error());
    const double err = rel_max_err(logits, fx.logits + (size_t)row * fx.n_vocab, fx.n_vocab);
    if (err > worst_err) worst_err = err;
    ck_assert_msg(err <= TOL, "%s: logits after token %d differ by %.3g > %.1g", label, row, err,
                  TOL);
}

static void decode_range(reason_context *ctx, int32_t seq, int32_t from, int32_t to,
                         const char *label) {
    int32_t pos[512], sid[512];
    int8_t want[512];
    for (int32_t i = from; i < to; i++) {
        pos[i - from] = i;
        sid[i - from] = seq;
        want[i - from] = 1;
    }
    const reason_batch b = {to - from, fx.tokens + from, pos, sid, want};
    ck_assert_msg(reason_decode(ctx, &b) == REASON_OK, "%s: %s", label, reason_last_error());
    for (int32_t r = from; r < to; r++) expect_row(ctx, r - from, r, label);
}

START_TEST(test_info) {
    reason_model *model = load();
    reason_model_info info;
    ck_assert_int_eq(reason_model_get_info(model, &info), REASON_OK);
    ck_assert_str_eq(info.architecture, "gpt-oss");
    ck_assert_int_eq(model->hp.n_expert, 4);
    ck_assert_int_eq(model->hp.n_expert_used, 2);
    ck_assert_int_eq(model->hp.n_ff_exp, 16);
    ck_assert_int_eq(model->layers[0].window, 4);
    ck_assert_int_eq(model->layers[1].window, 0);
    ck_assert_int_eq(model->layers[2].window, 4);
    ck_assert_ptr_nonnull(model->layers[1].attn_sinks.data);
    ck_assert_ptr_nonnull(model->layers[1].exp_down_b);
    /* YaRN: 0.1 ln 32 + 1 on cos/sin; the fastest frequency unscaled, the slowest / 32 */
    ck_assert_float_eq_tol(model->hp.rope_mscale, 0.1f * logf(32.0f) + 1.0f, 1e-6f);
    ck_assert_float_eq_tol(((const float *)model->rope_freqs.data)[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(((const float *)model->rope_freqs.data)[7], 32.0f, 1e-3f);
    reason_model_free(model);
}
END_TEST

START_TEST(test_one_batch) {
    reason_model *model = load();
    reason_context *ctx = make_context(model, 1);
    decode_range(ctx, 0, 0, fx.n_tokens, "one batch");
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

START_TEST(test_token_by_token) {
    reason_model *model = load();
    reason_context *ctx = make_context(model, 1);
    decode_range(ctx, 0, 0, fx.n_prompt, "prompt");
    for (int32_t t = fx.n_prompt; t < fx.n_tokens; t++) decode_range(ctx, 0, t, t + 1, "step");
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

/* The prompt, forked twice; the children decode the greedy tokens together, one batch a step. */
START_TEST(test_forked_traces) {
    reason_model *model = load();
    reason_context *ctx = make_context(model, 3);
    decode_range(ctx, 0, 0, fx.n_prompt, "prompt");
    ck_assert_int_eq(reason_seq_fork(ctx, 0, 1), REASON_OK);
    ck_assert_int_eq(reason_seq_fork(ctx, 0, 2), REASON_OK);
    for (int32_t t = fx.n_prompt; t < fx.n_tokens; t++) {
        const int32_t tok[2] = {fx.tokens[t], fx.tokens[t]}, pos[2] = {t, t}, sid[2] = {2, 1};
        const int8_t want[2] = {1, 1};
        const reason_batch b = {2, tok, pos, sid, want};
        ck_assert_msg(reason_decode(ctx, &b) == REASON_OK, "%s", reason_last_error());
        expect_row(ctx, 0, t, "fork 2");
        expect_row(ctx, 1, t, "fork 1");
    }
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gptoss");
    TCase *tc = tcase_create("hf");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_one_batch);
    tcase_add_test(tc, test_token_by_token);
    tcase_add_test(tc, test_forked_traces);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
