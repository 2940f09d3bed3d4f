/* test_gemma4.c — architecture gemma4 loaded from the tiny Hugging Face directories
 * tests/data/hf/gemma4-tiny and gemma4moe-tiny (tools/gen_gemma4_fixtures.py) against
 * transformers' float64 logits: local layers (sliding window 4, head_dim 16) and global layers
 * (head_dim 32, one KV head, K reused as V, proportional RoPE), q/k/v norms, sandwich norms,
 * GeGLU, the last two layers reading earlier layers' K/V, per-layer embeddings, layer scalars,
 * logit soft-capping; the MoE variant adds experts beside the MLP. The whole sequence in one batch,
 * the prompt then one token at a time, and two forked sequences decoding together. Then the same
 * weights as a gemma4 GGUF written here at test time as llama.cpp's converter lays it out
 * (sliding_window_pattern, KV heads per layer, key_length(_swa), rope_freqs of 1 and 1e30 for the
 * global layers' proportional RoPE, shared_kv_layers, Gemma 4's tensor names).
 *
 * Tolerance: 1e-4 relative max-norm per row, KV cache in F32. */
#include "gguf_writer.h"
#include "hf_fixture.h"
#include "test_util.h"

#include "model.h"
#include "reason.h"

#include <string.h>

#define TOL 1e-4

static char tmp[32];
static const char *fixture = "gemma4-tiny";
static model_fixture fx;
static fixture_check chk = {&fx, TOL, 0.0};

static const char *load_path = tmp; /* the HF directory, or the GGUF written from it */
static char gguf_file_path[64];

enum { N_LAYER = 6, HIDDEN = 32, FFN = 24, HEADS = 4, HD_LOCAL = 16, HD_GLOBAL = 32 };
static const bool swa[N_LAYER] = {1, 1, 0, 1, 1, 0};

static void kv_u32_array(gguf_out *g, const char *key, const uint32_t *v, int n) {
    put_str(&g->kv, key);
    put_u32(&g->kv, GGUF_ARR);
    put_u32(&g->kv, GGUF_U32);
    put_u64(&g->kv, (uint64_t)n);
    for (int i = 0; i < n; i++) put_u32(&g->kv, v[i]);
    g->n_kv++;
}

static void kv_bool_array(gguf_out *g, const char *key, const bool *v, int n) {
    put_str(&g->kv, key);
    put_u32(&g->kv, GGUF_ARR);
    put_u32(&g->kv, GGUF_BOOL);
    put_u64(&g->kv, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        const uint8_t b = v[i];
        put(&g->kv, &b, 1);
    }
    g->n_kv++;
}

/* The fixture's weights as a gemma4 GGUF at gguf_file_path. */
static void write_gemma4_gguf(void) {
    const bool moe = strstr(fixture, "moe") != NULL;
    char src[1024];
    snprintf(src, sizeof src, "%s/model.safetensors", tmp);
    st_file *f;
    ck_assert_msg(st_open(src, &f) == REASON_OK, "%s", reason_last_error());
    gguf_out g = {0};
    kv_str(&g, "general.architecture", "gemma4");
    kv_u32(&g, "gemma4.block_count", N_LAYER);
    kv_u32(&g, "gemma4.context_length", 131072);
    kv_u32(&g, "gemma4.embedding_length", HIDDEN);
    kv_u32(&g, "gemma4.feed_forward_length", FFN);
    kv_u32(&g, "gemma4.attention.head_count", HEADS);
    const uint32_t kv_heads[N_LAYER] = {2, 2, 1, 2, 2, 1};
    kv_u32_array(&g, "gemma4.attention.head_count_kv", kv_heads, N_LAYER);
    kv_u32(&g, "gemma4.attention.key_length", HD_GLOBAL);
    kv_u32(&g, "gemma4.attention.value_length", HD_GLOBAL);
    kv_u32(&g, "gemma4.attention.key_length_swa", HD_LOCAL);
    kv_u32(&g, "gemma4.attention.value_length_swa", HD_LOCAL);
    kv_f32(&g, "gemma4.attention.layer_norm_rms_epsilon", 1e-6f);
    kv_f32(&g, "gemma4.rope.freq_base", 1e6f);
    kv_f32(&g, "gemma4.rope.freq_base_swa", 1e4f);
    kv_u32(&g, "gemma4.rope.dimension_count", HD_GLOBAL);
    kv_u32(&g, "gemma4.rope.dimension_count_swa", HD_LOCAL);
    kv_u32(&g, "gemma4.attention.sliding_window", 4);
    kv_bool_array(&g, "gemma4.attention.sliding_window_pattern", swa, N_LAYER);
    kv_u32(&g, "gemma4.attention.shared_kv_layers", 2);
    kv_u32(&g, "gemma4.embedding_length_per_layer_input", 8);
    kv_f32(&g, "gemma4.final_logit_softcapping", 30.0f);
    if (moe) {
        kv_u32(&g, "gemma4.expert_count", 4);
        kv_u32(&g, "gemma4.expert_used_count", 2);
        kv_u32(&g, "gemma4.expert_feed_forward_length", 8);
    }
    kv_standin_tokenizer(&g, fx.n_vocab);
    gw_copy_bf16(&g, f, "model.embed_tokens.weight", "token_embd.weight");
    gw_copy_f32(&g, f, "model.norm.weight", "output_norm.weight", 0, 1);
    gw_copy_bf16(&g, f, "model.embed_tokens_per_layer.weight", "per_layer_token_embd.weight");
    gw_copy_bf16(&g, f, "model.per_layer_model_projection.weight", "per_layer_model_proj.weight");
    gw_copy_f32(&g, f, "model.per_layer_projection_norm.weight", "per_layer_proj_norm.weight", 0, 1);
    float freqs[HD_GLOBAL / 2]; /* a quarter of the pairs rotate */
    for (int i = 0; i < HD_GLOBAL / 2; i++) freqs[i] = i < HD_GLOBAL / 8 ? 1.0f : 1e30f;
    add_tensor(&g, "rope_freqs.weight", T_F32, 1, HD_GLOBAL / 2, freqs, sizeof freqs);
    static const char *const mats[][2] = {
        {"self_attn.q_proj.weight", "attn_q.weight"}, {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"}, {"self_attn.o_proj.weight", "attn_output.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"}, {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"}, {"per_layer_input_gate.weight", "inp_gate.weight"},
        {"per_layer_projection.weight", "proj.weight"}, {"router.proj.weight", "ffn_gate_inp.weight"}};
    static const char *const vecs[][2] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"},
        {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"post_attention_layernorm.weight", "post_attention_norm.weight"},
        {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
        {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
        {"post_feedforward_layernorm_1.weight", "post_ffw_norm_1.weight"},
        {"pre_feedforward_layernorm_2.weight", "pre_ffw_norm_2.weight"},
        {"post_feedforward_layernorm_2.weight", "post_ffw_norm_2.weight"},
        {"post_per_layer_input_norm.weight", "post_norm.weight"},
        {"layer_scalar", "layer_output_scale.weight"},
        {"router.scale", "ffn_gate_inp.scale"},
        {"router.per_expert_scale", "ffn_down_exps.scale"}};
    for (int il = 0; il < N_LAYER; il++) {
        char h[128], n[64];
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            snprintf(h, sizeof h, "model.layers.%d.%s", il, mats[i][0]);
            snprintf(n, sizeof n, "blk.%d.%s", il, mats[i][1]);
            if (st_find_tensor(f, h)) gw_copy_bf16(&g, f, h, n); /* absent: K as V, shared K/V */
        }
        for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
            snprintf(h, sizeof h, "model.layers.%d.%s", il, vecs[i][0]);
            snprintf(n, sizeof n, "blk.%d.%s", il, vecs[i][1]);
            if (st_find_tensor(f, h)) gw_copy_f32(&g, f, h, n, 0, 1);
        }
        if (moe) { /* the experts stay fused (E, 2F, d) as transformers keeps them */
            snprintf(h, sizeof h, "model.layers.%d.experts.gate_up_proj", il);
            const st_tensor *t = st_find_tensor(f, h);
            ck_assert_ptr_nonnull(t);
            snprintf(n, sizeof n, "blk.%d.ffn_gate_up_exps.weight", il);
            add_tensor3(&g, n, T_BF16, t->shape[0], t->shape[1], t->shape[2], t->data, t->nbytes);
            snprintf(h, sizeof h, "model.layers.%d.experts.down_proj", il);
            t = st_find_tensor(f, h);
            ck_assert_ptr_nonnull(t);
            snprintf(n, sizeof n, "blk.%d.ffn_down_exps.weight", il);
            add_tensor3(&g, n, T_BF16, t->shape[0], t->shape[1], t->shape[2], t->data, t->nbytes);
        }
    }
    st_close(f);
    snprintf(gguf_file_path, sizeof gguf_file_path, "%s/model.gguf", tmp);
    write_gguf(&g, gguf_file_path);
}

static void setup(void) {
    hf_fixture_setup(fixture, tmp, &fx);
    load_path = tmp;
}
static void setup_dense(void) { fixture = "gemma4-tiny", setup(); }
static void setup_moe(void) { fixture = "gemma4moe-tiny", setup(); }
static void setup_dense_gguf(void) { setup_dense(), write_gemma4_gguf(), load_path = gguf_file_path; }
static void setup_moe_gguf(void) { setup_moe(), write_gemma4_gguf(), load_path = gguf_file_path; }

static void teardown(void) { fixture_teardown(&chk, &fx, tmp, fixture); }

static reason_model *load(void) { return fixture_load_model(load_path); }

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
    ck_assert(l[2].rope_div[4] >= 1e30f); /* +inf (HF) or the converter's 1e30 (GGUF) */
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

START_TEST(test_forked_traces) {
    reason_model *model = load();
    fixture_check_forked(&chk, model, 96);
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
    Suite *s = suite_create("gemma4");
    TCase *tc = tcase_create("dense");
    tcase_add_checked_fixture(tc, setup_dense, teardown);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_one_batch);
    tcase_add_test(tc, test_token_by_token);
    tcase_add_test(tc, test_forked_traces);
    tcase_add_test(tc, test_runtime_budget_and_vote);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("moe");
    tcase_add_checked_fixture(tm, setup_moe, teardown);
    tcase_add_test(tm, test_info);
    tcase_add_test(tm, test_one_batch);
    tcase_add_test(tm, test_token_by_token);
    tcase_add_test(tm, test_forked_traces);
    tcase_add_test(tm, test_runtime_budget_and_vote);
    suite_add_tcase(s, tm);
    void (*const gguf_setups[2])(void) = {setup_dense_gguf, setup_moe_gguf};
    for (int i = 0; i < 2; i++) {
        TCase *tg = tcase_create(i ? "moe_gguf" : "dense_gguf");
        tcase_add_checked_fixture(tg, gguf_setups[i], teardown);
        tcase_add_test(tg, test_info);
        tcase_add_test(tg, test_one_batch);
        tcase_add_test(tg, test_token_by_token);
        tcase_add_test(tg, test_forked_traces);
        suite_add_tcase(s, tg);
    }
    return run_suite(s);
}
