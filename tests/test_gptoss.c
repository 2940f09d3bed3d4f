/* test_gptoss.c — architecture gpt-oss loaded from the tiny Hugging Face directory
 * tests/data/hf/gptoss-tiny (tools/gen_gptoss_fixtures.py) against transformers' float64 logits:
 * q/k/v/o biases, sink logits, sliding-window layers (window 4 over 23 tokens: the window has
 * moved on long before the end) alternating with full attention, YaRN RoPE, a biased router over
 * 4 experts picking 2, clamped SwiGLU experts with biases stored (E, in, out) with gate and up
 * interleaved. The whole sequence in one batch, the prompt then one token at a time, and two
 * forked sequences decoding together. Then the same weights as a gpt-oss GGUF written here at
 * test time the way llama.cpp's converter lays it out (experts (E, out, in) with gate and up
 * apart, YaRN and the window as metadata, even layers sliding).
 *
 * Tolerance: 1e-4 relative max-norm per row, KV cache in F32. */
#include "gguf_writer.h"
#include "hf_fixture.h"
#include "test_util.h"

#include "model.h"
#include "reason.h"
#include "safetensors.h"

#include <string.h>

#define TOL 1e-4

static char tmp[32];
static model_fixture fx;
static fixture_check chk = {&fx, TOL, 0.0};

enum { N_EMBD = 32, N_LAYER = 3, N_HEAD = 4, N_HEAD_KV = 2, HEAD_DIM = 16, N_FF = 16,
       N_EXPERT = 4 };
static const char *load_path = tmp; /* the HF directory, or the GGUF written from it */
static char gguf_file_path[64];

/* Experts (E, in, out) with every step-th output column from j0 as GGUF's (E, out, in). */
static void copy_experts(gguf_out *g, const st_file *f, const char *hf_name, const char *name,
                         int64_t j0, int64_t step) {
    const st_tensor *t = st_find_tensor(f, hf_name);
    ck_assert_msg(t != NULL && t->dtype == ST_BF16 && t->n_dims == 3, "%s", hf_name);
    const int64_t ne = t->shape[0], ni = t->shape[1], nj = t->shape[2], no = (nj - j0 + step - 1) / step;
    uint16_t *d = malloc((size_t)(ne * ni * no) * 2);
    ck_assert_ptr_nonnull(d);
    const uint16_t *src = t->data;
    for (int64_t e = 0; e < ne; e++)
        for (int64_t o = 0; o < no; o++)
            for (int64_t i = 0; i < ni; i++)
                d[(e * no + o) * ni + i] = src[(e * ni + i) * nj + j0 + o * step];
    add_tensor3(g, name, T_BF16, ne, no, ni, d, (size_t)(ne * ni * no) * 2);
    free(d);
}

/* The fixture's weights as a gpt-oss GGUF at gguf_file_path. */
static void write_gptoss_gguf(void) {
    char src[1024];
    snprintf(src, sizeof src, "%s/model.safetensors", tmp);
    st_file *f;
    ck_assert_msg(st_open(src, &f) == REASON_OK, "%s", reason_last_error());
    gguf_out g = {0};
    kv_str(&g, "general.architecture", "gpt-oss");
    kv_u32(&g, "gpt-oss.block_count", N_LAYER);
    kv_u32(&g, "gpt-oss.context_length", 131072);
    kv_u32(&g, "gpt-oss.embedding_length", N_EMBD);
    kv_u32(&g, "gpt-oss.feed_forward_length", N_FF);
    kv_u32(&g, "gpt-oss.attention.head_count", N_HEAD);
    kv_u32(&g, "gpt-oss.attention.head_count_kv", N_HEAD_KV);
    kv_u32(&g, "gpt-oss.attention.key_length", HEAD_DIM);
    kv_u32(&g, "gpt-oss.attention.value_length", HEAD_DIM);
    kv_f32(&g, "gpt-oss.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_u32(&g, "gpt-oss.attention.sliding_window", 4);
    kv_f32(&g, "gpt-oss.rope.freq_base", 150000.0f);
    kv_str(&g, "gpt-oss.rope.scaling.type", "yarn");
    kv_f32(&g, "gpt-oss.rope.scaling.factor", 32.0f);
    kv_u32(&g, "gpt-oss.rope.scaling.original_context_length", 4096);
    kv_u32(&g, "gpt-oss.expert_count", N_EXPERT);
    kv_u32(&g, "gpt-oss.expert_used_count", 2);
    kv_u32(&g, "gpt-oss.expert_feed_forward_length", N_FF);
    kv_standin_tokenizer(&g, fx.n_vocab);
    gw_copy_bf16(&g, f, "model.embed_tokens.weight", "token_embd.weight");
    gw_copy_bf16(&g, f, "lm_head.weight", "output.weight");
    gw_copy_f32(&g, f, "model.norm.weight", "output_norm.weight", 0, 1);
    for (int il = 0; il < N_LAYER; il++) {
        char h[128], n[64];
#define HF(s) (snprintf(h, sizeof h, "model.layers.%d." s, il), h)
#define GG(s) (snprintf(n, sizeof n, "blk.%d." s, il), n)
        gw_copy_f32(&g, f, HF("input_layernorm.weight"), GG("attn_norm.weight"), 0, 1);
        gw_copy_f32(&g, f, HF("post_attention_layernorm.weight"), GG("post_attention_norm.weight"), 0, 1);
        static const char *const proj[4][2] = {{"q_proj", "attn_q"}, {"k_proj", "attn_k"},
                                               {"v_proj", "attn_v"}, {"o_proj", "attn_output"}};
        for (int p = 0; p < 4; p++) {
            char hw[128], gw[64];
            snprintf(hw, sizeof hw, "model.layers.%d.self_attn.%s.weight", il, proj[p][0]);
            snprintf(gw, sizeof gw, "blk.%d.%s.weight", il, proj[p][1]);
            gw_copy_bf16(&g, f, hw, gw);
            snprintf(hw, sizeof hw, "model.layers.%d.self_attn.%s.bias", il, proj[p][0]);
            snprintf(gw, sizeof gw, "blk.%d.%s.bias", il, proj[p][1]);
            gw_copy_f32(&g, f, hw, gw, 0, 1);
        }
        gw_copy_f32(&g, f, HF("self_attn.sinks"), GG("attn_sinks.weight"), 0, 1);
        gw_copy_bf16(&g, f, HF("mlp.router.weight"), GG("ffn_gate_inp.weight"));
        gw_copy_f32(&g, f, HF("mlp.router.bias"), GG("ffn_gate_inp.bias"), 0, 1);
        copy_experts(&g, f, HF("mlp.experts.gate_up_proj"), GG("ffn_gate_exps.weight"), 0, 2);
        copy_experts(&g, f, HF("mlp.experts.gate_up_proj"), GG("ffn_up_exps.weight"), 1, 2);
        copy_experts(&g, f, HF("mlp.experts.down_proj"), GG("ffn_down_exps.weight"), 0, 1);
        gw_copy_f32(&g, f, HF("mlp.experts.gate_up_proj_bias"), GG("ffn_gate_exps.bias"), 0, 2);
        gw_copy_f32(&g, f, HF("mlp.experts.gate_up_proj_bias"), GG("ffn_up_exps.bias"), 1, 2);
        gw_copy_f32(&g, f, HF("mlp.experts.down_proj_bias"), GG("ffn_down_exps.bias"), 0, 1);
#undef HF
#undef GG
    }
    st_close(f);
    snprintf(gguf_file_path, sizeof gguf_file_path, "%s/model.gguf", tmp);
    write_gguf(&g, gguf_file_path);
}

static const char *fixture = "gptoss-tiny";

static void setup_named(const char *name) {
    fixture = name;
    hf_fixture_setup(fixture, tmp, &fx);
    load_path = tmp;
}

static void setup(void) { setup_named("gptoss-tiny"); }

static void setup_gguf(void) {
    setup();
    write_gptoss_gguf();
    load_path = gguf_file_path;
}

static void teardown(void) { fixture_teardown(&chk, &fx, tmp, "gpt-oss"); }

static reason_model *load(void) { return fixture_load_model(load_path); }

static reason_context *make_context(const reason_model *model, int32_t n_seq) {
    return fixture_context(model, n_seq, 96);
}

static void expect_row(reason_context *ctx, int32_t i, int32_t row, const char *label) {
    fixture_expect_row(&chk, ctx, i, row, label);
}

static void decode_range(reason_context *ctx, int32_t seq, int32_t from, int32_t to,
                         const char *label) {
    fixture_decode(&chk, ctx, seq, from, to, true, label);
}

/* The released checkpoints' MXFP4 experts (*_blocks / *_scales), repacked at load: logits against
 * transformers' own dequantization of the same file. */
static void setup_mxfp4(void) { setup_named("gptoss-mxfp4-tiny"); }

START_TEST(test_mxfp4_experts) {
    reason_model *model = load();
    const layer_weights *l = &model->layers[1];
    ck_assert_int_eq(l->exp_gate[0].type, 39); /* MXFP4 */
    ck_assert_int_eq(l->exp_up[3].type, 39);
    ck_assert_int_eq(l->exp_down[3].type, 39);
    ck_assert_int_eq(l->exp_down[3].ne[0], 32);
    fixture_check_token_by_token(&chk, model, 96);
    reason_model_free(model);
}
END_TEST

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
    /* a token reads 2 of the 4 experts: 2 x 3 layers x (gate + up + down, 16x32 BF16 each) less */
    ck_assert_int_eq(info.n_expert, 4);
    ck_assert_int_eq(info.n_expert_used, 2);
    /* and one row of the (untied) embedding table */
    ck_assert_uint_eq(info.weight_bytes - info.active_weight_bytes,
                      2 * 3 * 3 * 16 * 32 * 2 + (uint64_t)info.n_vocab * 32 * 2);
    /* YaRN: 0.1 ln 32 + 1 on cos/sin; the fastest frequency unscaled, the slowest / 32 */
    ck_assert_float_eq_tol(model->hp.rope_mscale, 0.1f * logf(32.0f) + 1.0f, 1e-6f);
    ck_assert_float_eq_tol(((const float *)model->rope_freqs.data)[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(((const float *)model->rope_freqs.data)[7], 32.0f, 1e-3f);
    reason_model_free(model);
}
END_TEST

START_TEST(test_one_batch) {
    reason_model *model = load();
    fixture_check_one_batch(&chk, model, 96);
    reason_model_free(model);
}
END_TEST

START_TEST(test_token_by_token) {
    reason_model *model = load();
    fixture_check_token_by_token(&chk, model, 96);
    reason_model_free(model);
}
END_TEST

/* The prompt, forked twice; the children decode the greedy tokens together, one batch a step. */
START_TEST(test_forked_traces) {
    reason_model *model = load();
    fixture_check_forked(&chk, model, 96);
    reason_model_free(model);
}
END_TEST

/* A context whose sliding-window pool is sized for n_batch (seq_state.h). */
static reason_context *make_small_batch_context(const reason_model *model, int32_t n_seq,
                                                uint32_t n_batch) {
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = 96;
    p.n_batch = n_batch;
    p.n_outputs_max = (int32_t)n_batch;
    p.n_seq_max = (uint32_t)n_seq;
    p.kv_type = REASON_KV_F32;
    p.kv_block_size = 4;
    p.n_threads = 2;
    reason_context *ctx;
    ck_assert_msg(reason_context_create(model, &p, &ctx) == REASON_OK, "%s", reason_last_error());
    return ctx;
}

static reason_context_stats get_stats(const reason_context *ctx) {
    reason_context_stats st;
    ck_assert_int_eq(reason_context_get_stats(ctx, &st), REASON_OK);
    return st;
}

/* Three sequences decode the fixture in lockstep (batches of 3 tokens). The sliding layers'
 * pool has 3 * (1 + 2) + 1 = 10 blocks of 4 — 40 slots for 3 * 23 positions: it works only
 * because the blocks behind the window (4) are released and reused. */
START_TEST(test_window_blocks_released) {
    reason_model *model = load();
    reason_context *ctx = make_small_batch_context(model, 3, 4);
    reason_context_stats st = get_stats(ctx);
    ck_assert_uint_eq(st.swa_slots_total, 40);
    ck_assert_uint_lt(st.swa_slots_total, 3 * (uint64_t)fx.n_tokens);
    ck_assert_uint_eq(st.kv_slots_total, 96);
    /* 2 sliding layers, 1 full, K/V width 2 * 16, F32 */
    ck_assert_uint_eq(st.swa_bytes, 2 * 2 * 40 * 32 * 4);
    ck_assert_uint_eq(st.kv_bytes, 2 * 1 * 96 * 32 * 4);
    for (int32_t t = 0; t < fx.n_tokens; t++) {
        const int32_t tok[3] = {fx.tokens[t], fx.tokens[t], fx.tokens[t]}, pos[3] = {t, t, t},
                      sid[3] = {0, 1, 2};
        const int8_t want[3] = {1, 1, 1};
        const reason_batch b = {3, tok, pos, sid, want};
        ck_assert_msg(reason_decode(ctx, &b) == REASON_OK, "token %d: %s", t, reason_last_error());
        for (int32_t i = 0; i < 3; i++) expect_row(ctx, i, t, "lockstep");
        st = get_stats(ctx);
        /* each sequence: the blocks of its window (4) and its token, at most 4 + 4 slots */
        ck_assert_uint_le(st.swa_slots_used, 3 * (4 + 4));
    }
    ck_assert_uint_eq(st.kv_slots_used, 3 * 24);
    ck_assert_uint_le(st.swa_slots_peak, st.swa_slots_total);
    printf("gpt-oss-tiny, 3 x %d positions: windowed slots in use %llu (peak %llu of %llu), "
           "paged %llu\n", fx.n_tokens, (unsigned long long)st.swa_slots_used,
           (unsigned long long)st.swa_slots_peak, (unsigned long long)st.swa_slots_total,
           (unsigned long long)st.kv_slots_used);
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

/* A checkpoint at the end of the prompt; the sequence decodes on until the window has long moved
 * on, so truncating back is refused; restoring the checkpoint and decoding again reproduces the
 * reference logits. */
START_TEST(test_window_checkpoint_restore) {
    reason_model *model = load();
    reason_context *ctx = make_context(model, 2);
    decode_range(ctx, 0, 0, fx.n_prompt, "prompt");
    ck_assert_int_eq(reason_seq_checkpoint(ctx, 0, 1), REASON_OK);
    for (int32_t t = fx.n_prompt; t < fx.n_tokens; t++) decode_range(ctx, 0, t, t + 1, "step");
    ck_assert_int_eq(reason_seq_truncate(ctx, 0, fx.n_prompt), REASON_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "window has moved on"));
    int32_t len;
    ck_assert_int_eq(reason_seq_length(ctx, 0, &len), REASON_OK);
    ck_assert_int_eq(len, fx.n_tokens);
    /* one token back is always possible: its window is still held */
    ck_assert_int_eq(reason_seq_truncate(ctx, 0, fx.n_tokens - 1), REASON_OK);
    decode_range(ctx, 0, fx.n_tokens - 1, fx.n_tokens, "after truncate");
    ck_assert_int_eq(reason_seq_restore(ctx, 1, 0), REASON_OK);
    ck_assert_int_eq(reason_seq_length(ctx, 0, &len), REASON_OK);
    ck_assert_int_eq(len, fx.n_prompt);
    for (int32_t t = fx.n_prompt; t < fx.n_tokens; t++) decode_range(ctx, 0, t, t + 1, "restored");
    /* the checkpoint is intact: restore it again, decode the rest in one batch */
    ck_assert_int_eq(reason_seq_restore(ctx, 1, 0), REASON_OK);
    decode_range(ctx, 0, fx.n_prompt, fx.n_tokens, "restored again");
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

START_TEST(test_runtime_budget_and_vote) {
    reason_model *model = load();
    fixture_check_runtime(model);
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
    tcase_add_test(tc, test_runtime_budget_and_vote);
    tcase_add_test(tc, test_window_blocks_released);
    tcase_add_test(tc, test_window_checkpoint_restore);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("mxfp4");
    tcase_add_checked_fixture(tm, setup_mxfp4, teardown);
    tcase_add_test(tm, test_mxfp4_experts);
    suite_add_tcase(s, tm);
    TCase *tg = tcase_create("gguf");
    tcase_add_checked_fixture(tg, setup_gguf, teardown);
    tcase_add_test(tg, test_info);
    tcase_add_test(tg, test_one_batch);
    tcase_add_test(tg, test_token_by_token);
    tcase_add_test(tg, test_forked_traces);
    tcase_add_test(tg, test_window_blocks_released);
    tcase_add_test(tg, test_window_checkpoint_restore);
    suite_add_tcase(s, tg);
    return run_suite(s);
}
