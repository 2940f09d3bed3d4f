/* test_gemma4.c — architecture gemma4 loaded from the tiny Hugging Face directories
 * tests/data/hf/gemma4-tiny and gemma4moe-tiny (tools/gen_gemma4_fixtures.py) against
 * transformers' float64 logits: local layers (sliding window 4, head_dim 16) and global layers
 * (head_dim 32, one KV head, K reused as V, proportional RoPE), q/k/v norms, sandwich norms,
 * GeGLU, the last two layers reading earlier layers' K/V, per-layer embeddings, layer scalars,
 * logit soft-capping; the MoE variant adds experts beside the MLP. The whole sequence in one batch,
 * the prompt then one token at a time, and two forked sequences decoding together.
 *
 * Tolerance: 1e-4 relative max-norm per row, KV cache in F32. */
#include "hf_fixture.h"
#include "test_util.h"

#include "model.h"
#include "reason.h"

#include <string.h>

#define TOL 1e-4

static char tmp[32];
static const char *fixture = "gemma4-tiny";
static model_fixture fx;
static double worst_err;

static void setup(void) { hf_fixture_setup(fixture, tmp, &fx); }
static void setup_dense(void) { fixture = "gemma4-tiny", setup(); }
static void setup_moe(void) { fixture = "gemma4moe-tiny", setup(); }

static void teardown(void) {
    if (worst_err > 0) printf("%s: worst relative max-norm error %.3g\n", fixture, worst_err);
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
    ck_assert_str_eq(info.architecture, "gemma4");
    const layer_weights *l = model->layers;
    ck_assert_int_eq(l[0].head_dim, 16);
    ck_assert_int_eq(l[0].window, 4);
    ck_assert_int_eq(l[2].head_dim, 32);
    ck_assert_int_eq(l[2].n_head_kv, 1);
    ck_assert_int_eq(l[2].window, 0);
    ck_assert(l[2].k_eq_v && !l[0].k_eq_v);
    ck_assert(l[4].kv_shared && l[5].kv_shared && !l[3].kv_shared);
    ck_assert_int_eq(l[4].kv_layer, l[3].kv_layer);
    ck_assert_int_eq(l[5].kv_layer, l[2].kv_layer);
    ck_assert_int_eq(model->hp.n_attn_layer, 4); /* the sharing layers hold no K/V */
    ck_assert_int_eq(model->hp.n_ple, 8);
    ck_assert_float_eq_tol(model->hp.logit_softcap, 30.0f, 1e-6f);
    /* proportional RoPE: 4 of the 16 frequency pairs of a global head rotate */
    ck_assert_float_eq(l[2].rope_div[3], 1.0f);
    ck_assert(isinf(l[2].rope_div[4]));
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
    Suite *s = suite_create("gemma4");
    TCase *tc = tcase_create("dense");
    tcase_add_checked_fixture(tc, setup_dense, teardown);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_one_batch);
    tcase_add_test(tc, test_token_by_token);
    tcase_add_test(tc, test_forked_traces);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("moe");
    tcase_add_checked_fixture(tm, setup_moe, teardown);
    tcase_add_test(tm, test_info);
    tcase_add_test(tm, test_one_batch);
    tcase_add_test(tm, test_token_by_token);
    tcase_add_test(tm, test_forked_traces);
    suite_add_tcase(s, tm);
    return run_suite(s);
}
