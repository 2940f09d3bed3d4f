/* test_qwen35_gguf.c — architecture qwen35 loaded from a GGUF file. The file is written here, at
 * test time, from the tiny Hugging Face fixture tests/data/hf/qwen35-tiny (no binary data is
 * committed for it), applying what llama.cpp's converter does to a Qwen3.5 checkpoint
 * (docs/qwen35.md, "GGUF"):
 *   - names: token_embd, output_norm, blk.N.{attn_norm, post_attention_norm (the pre-FFN norm),
 *     attn_q (query and gate rows still interleaved per head), attn_k, attn_v, attn_output,
 *     attn_q_norm, attn_k_norm, attn_qkv, attn_gate, ssm_beta, ssm_alpha, ssm_conv1d, ssm_dt.bias,
 *     ssm_a, ssm_norm, ssm_out, ffn_gate, ffn_up, ffn_down};
 *   - every "norm.weight" but the DeltaNet output norm stored as 1 + w, A_log as -exp(A_log),
 *     conv1d squeezed to (C, kernel), these and all vectors F32;
 *   - value heads reordered from grouped (by key head) to tiled order in the v rows of
 *     in_proj_qkv, in_proj_z, in_proj_a/b, A_log, dt_bias, the v channels of conv1d and the
 *     columns of out_proj;
 *   - metadata qwen35.* with the DeltaNet sizes under ssm.*, full_attention_interval,
 *     rope.dimension_count, and one multi-token-prediction layer counted in block_count
 *     (nextn_predict_layers = 1, its tensors absent: a text loader ignores it).
 * Matrices stay BF16 byte for byte; the +1 and -exp are computed in F32 (the converter computes
 * them in the checkpoint's dtype; F32 keeps the comparison with the float64 reference tight).
 * The tokenizer is a stand-in (token strings "t<id>", no merges): the test feeds token ids.
 *
 * Logits are checked against transformers' float64 logits of the same fixture (1e-4 relative
 * max-norm per row, KV cache in F32), whole sequence in one batch and token by token. */
#include "gguf_writer.h"
#include "model_fixture.h"
#include "test_util.h"

#include "model.h"
#include "reason.h"
#include "safetensors.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define TOL 1e-4

enum { N_K = 2, N_V = 4, D_K = 8, D_V = 8, N_EMBD = 16, N_HEAD = 2, HEAD_DIM = 16, KERNEL = 4 };

/* Which GGUF convert() writes: the dense fixture or the mixture-of-experts one (qwen35moe-tiny:
 * experts as 3-D tensors ffn_{gate,up,down}_exps, router ffn_gate_inp, shared expert *_shexp),
 * matrices BF16 as stored or widened to F32 (exact: covers F32 weights in a whole model). */
typedef struct variant {
    const char *fixture; /* tests/data/hf/<fixture> */
    const char *arch;
    int n_layer;
    bool moe, f32_matrices;
} variant;
static const variant dense = {"qwen35-tiny", "qwen35", 2, false, false};
static const variant dense_f32 = {"qwen35-tiny", "qwen35", 2, false, true};
static const variant moe = {"qwen35moe-tiny", "qwen35moe", 3, true, false};
enum { N_EXPERT = 8, N_EXPERT_USED = 3, FF_EXP = 8, FF_SHEXP = 12 }; /* qwen35moe-tiny */
static const variant *var = &dense;

/* "<arch>.<key>" of the variant (the same static buffer each call: use at once). */
static const char *akey(const char *key) {
    static char full[128];
    snprintf(full, sizeof full, "%s.%s", var->arch, key);
    return full;
}

static char gguf_path_buf[64];
static model_fixture fx;
static double worst_err;


/* ---- the converter's transformations ------------------------------------------------------ */

static const st_tensor *hf(const st_file *f, const char *name) {
    const st_tensor *t = st_find_tensor(f, name);
    ck_assert_msg(t != NULL, "fixture tensor %s", name);
    ck_assert_int_eq(t->dtype, ST_BF16);
    return t;
}

static float bf16_f32(uint16_t v) {
    const uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Grouped value head k * r + j (key head k) goes to tiled position j * N_K + k; units of `width`
 * elements of `elem` bytes, starting at `at` within each of `lines` lines of `stride` bytes. */
static void tile_v(uint8_t *dst, const uint8_t *src, size_t lines, size_t stride, size_t at,
                   size_t width, size_t elem) {
    const int r = N_V / N_K;
    memcpy(dst, src, lines * stride);
    for (size_t line = 0; line < lines; line++)
        for (int k = 0; k < N_K; k++)
            for (int j = 0; j < r; j++)
                memcpy(dst + line * stride + at + (size_t)(j * N_K + k) * width * elem,
                       src + line * stride + at + (size_t)(k * r + j) * width * elem,
                       width * elem);
}

/* BF16 data as a BF16 tensor, or widened to F32 (exactly) for the f32_matrices variant. */
static void add_bf16_or_f32(gguf_out *g, const char *name, int64_t n_mat, int64_t rows,
                            int64_t cols, const uint8_t *d) {
    const size_t n = (size_t)(n_mat * rows * cols);
    if (!var->f32_matrices) {
        add_tensor3(g, name, T_BF16, n_mat, rows, cols, d, n * 2);
        return;
    }
    float *w = malloc(n * 4);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < n; i++) w[i] = bf16_f32((uint16_t)(d[2 * i] | d[2 * i + 1] << 8));
    add_tensor3(g, name, T_F32, n_mat, rows, cols, w, n * 4);
    free(w);
}

/* A BF16 matrix as it is, or with its value heads tiled along rows (v_rows_at >= 0: rows from
 * there on, in blocks of `width` rows) or along columns (cols_width > 0). */
static void add_matrix(gguf_out *g, const st_file *f, const char *hf_name, const char *name,
                       int64_t v_rows_at, int64_t width, int64_t cols_width) {
    const st_tensor *t = hf(f, hf_name);
    ck_assert_int_eq(t->n_dims, 2);
    const int64_t rows = t->shape[0], cols = t->shape[1];
    uint8_t *d = malloc(t->nbytes);
    ck_assert_ptr_nonnull(d);
    if (v_rows_at >= 0) /* one line: the whole matrix, rows as units */
        tile_v(d, t->data, 1, t->nbytes, (size_t)(v_rows_at * cols * 2), (size_t)(width * cols), 2);
    else if (cols_width > 0)
        tile_v(d, t->data, (size_t)rows, (size_t)cols * 2, 0, (size_t)cols_width, 2);
    else
        memcpy(d, t->data, t->nbytes);
    add_bf16_or_f32(g, name, 1, rows, cols, d);
    free(d);
}

/* The matrices of every expert (per-expert HF tensors "<prefix>.E.<suffix>") as one 3-D tensor. */
static void add_experts(gguf_out *g, const st_file *f, const char *prefix, const char *suffix,
                        const char *name) {
    char h[160];
    snprintf(h, sizeof h, "%s.0.%s", prefix, suffix);
    const st_tensor *t0 = hf(f, h);
    const int64_t rows = t0->shape[0], cols = t0->shape[1];
    uint8_t *d = malloc(N_EXPERT * t0->nbytes);
    ck_assert_ptr_nonnull(d);
    for (int e = 0; e < N_EXPERT; e++) {
        snprintf(h, sizeof h, "%s.%d.%s", prefix, e, suffix);
        const st_tensor *t = hf(f, h);
        ck_assert_uint_eq(t->nbytes, t0->nbytes);
        memcpy(d + (size_t)e * t0->nbytes, t->data, t->nbytes);
    }
    add_bf16_or_f32(g, name, N_EXPERT, rows, cols, d);
    free(d);
}

enum { PLUS_ONE = 1, NEG_EXP = 2, TILE_HEADS = 4 };

/* A vector (or the squeezed conv1d, rows of KERNEL) as F32 with the converter's fix-ups. */
static void add_f32(gguf_out *g, const st_file *f, const char *hf_name, const char *name, int how) {
    const st_tensor *t = hf(f, hf_name);
    const int64_t n = st_numel(t);
    const bool conv = t->n_dims == 3;
    float *v = malloc((size_t)n * 4), *w = malloc((size_t)n * 4);
    ck_assert(v && w);
    const uint16_t *src = t->data;
    for (int64_t i = 0; i < n; i++) {
        v[i] = bf16_f32(src[i]);
        if (how & PLUS_ONE) v[i] += 1.0f;
        if (how & NEG_EXP) v[i] = -expf(v[i]);
    }
    if (conv) /* (C, 1, KERNEL) -> rows of KERNEL; the v channels after 2 * N_K * D_K tiled */
        tile_v((uint8_t *)w, (const uint8_t *)v, 1, (size_t)n * 4, 2 * N_K * D_K * KERNEL * 4,
               D_V * KERNEL, 4);
    else if (how & TILE_HEADS)
        tile_v((uint8_t *)w, (const uint8_t *)v, 1, (size_t)n * 4, 0, 1, 4);
    else
        memcpy(w, v, (size_t)n * 4);
    if (conv) add_tensor(g, name, T_F32, t->shape[0], t->shape[2], w, (size_t)n * 4);
    else add_tensor(g, name, T_F32, 1, n, w, (size_t)n * 4);
    free(v);
    free(w);
}

/* The fixture's weights as a qwen35 (or qwen35moe) GGUF at path. */
static void convert(const char *path) {
    char src[1024], rel[128];
    snprintf(rel, sizeof rel, "hf/%s/model.safetensors", var->fixture);
    st_file *f;
    ck_assert_msg(st_open(test_data_path(rel, src, sizeof src), &f) == REASON_OK, "%s",
                  reason_last_error());
    gguf_out g = {0};
    kv_str(&g, "general.architecture", var->arch);
    kv_str(&g, "general.name", "tiny Qwen3.5 fixture (converted at test time)");
    kv_u32(&g, akey("block_count"), (uint32_t)var->n_layer + 1); /* + 1 MTP layer */
    kv_u32(&g, akey("nextn_predict_layers"), 1);
    kv_u32(&g, akey("context_length"), 4096);
    kv_u32(&g, akey("embedding_length"), N_EMBD);
    if (!var->moe) kv_u32(&g, akey("feed_forward_length"), 16);
    kv_u32(&g, akey("attention.head_count"), N_HEAD);
    kv_u32(&g, akey("attention.head_count_kv"), 1);
    kv_u32(&g, akey("attention.key_length"), HEAD_DIM);
    kv_u32(&g, akey("attention.value_length"), HEAD_DIM);
    kv_f32(&g, akey("attention.layer_norm_rms_epsilon"), 1e-6f);
    kv_f32(&g, akey("rope.freq_base"), 1e7f);
    kv_u32(&g, akey("rope.dimension_count"), HEAD_DIM / 4); /* head_dim * partial_rotary_factor */
    kv_u32(&g, akey("ssm.conv_kernel"), KERNEL);
    kv_u32(&g, akey("ssm.state_size"), D_K);
    kv_u32(&g, akey("ssm.group_count"), N_K);
    kv_u32(&g, akey("ssm.time_step_rank"), N_V);
    kv_u32(&g, akey("ssm.inner_size"), N_V * D_V);
    kv_u32(&g, akey("full_attention_interval"), 2); /* linear, full(, linear) */
    if (var->moe) {
        kv_u32(&g, akey("expert_count"), N_EXPERT);
        kv_u32(&g, akey("expert_used_count"), N_EXPERT_USED);
        kv_u32(&g, akey("expert_feed_forward_length"), FF_EXP);
        kv_u32(&g, akey("expert_shared_feed_forward_length"), FF_SHEXP);
    }
    kv_standin_tokenizer(&g, fx.n_vocab);

    add_matrix(&g, f, "model.embed_tokens.weight", "token_embd.weight", -1, 0, 0);
    add_f32(&g, f, "model.norm.weight", "output_norm.weight", PLUS_ONE);
    for (int il = 0; il < var->n_layer; il++) {
        char h[128], n[64];
#define HF(s) (snprintf(h, sizeof h, "model.layers.%d." s, il), h)
#define GG(s) (snprintf(n, sizeof n, "blk.%d." s, il), n)
        add_f32(&g, f, HF("input_layernorm.weight"), GG("attn_norm.weight"), PLUS_ONE);
        add_f32(&g, f, HF("post_attention_layernorm.weight"), GG("post_attention_norm.weight"),
                PLUS_ONE);
        if (var->moe) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "model.layers.%d.mlp.experts", il);
            add_experts(&g, f, prefix, "gate_proj.weight", GG("ffn_gate_exps.weight"));
            add_experts(&g, f, prefix, "up_proj.weight", GG("ffn_up_exps.weight"));
            add_experts(&g, f, prefix, "down_proj.weight", GG("ffn_down_exps.weight"));
            add_matrix(&g, f, HF("mlp.gate.weight"), GG("ffn_gate_inp.weight"), -1, 0, 0);
            add_matrix(&g, f, HF("mlp.shared_expert.gate_proj.weight"), GG("ffn_gate_shexp.weight"),
                       -1, 0, 0);
            add_matrix(&g, f, HF("mlp.shared_expert.up_proj.weight"), GG("ffn_up_shexp.weight"),
                       -1, 0, 0);
            add_matrix(&g, f, HF("mlp.shared_expert.down_proj.weight"),
                       GG("ffn_down_shexp.weight"), -1, 0, 0);
            add_matrix(&g, f, HF("mlp.shared_expert_gate.weight"),
                       GG("ffn_gate_inp_shexp.weight"), -1, 0, 0);
        } else {
            add_matrix(&g, f, HF("mlp.gate_proj.weight"), GG("ffn_gate.weight"), -1, 0, 0);
            add_matrix(&g, f, HF("mlp.up_proj.weight"), GG("ffn_up.weight"), -1, 0, 0);
            add_matrix(&g, f, HF("mlp.down_proj.weight"), GG("ffn_down.weight"), -1, 0, 0);
        }
        if (il % 2 == 1) {
            add_matrix(&g, f, HF("self_attn.q_proj.weight"), GG("attn_q.weight"), -1, 0, 0);
            add_matrix(&g, f, HF("self_attn.k_proj.weight"), GG("attn_k.weight"), -1, 0, 0);
            add_matrix(&g, f, HF("self_attn.v_proj.weight"), GG("attn_v.weight"), -1, 0, 0);
            add_matrix(&g, f, HF("self_attn.o_proj.weight"), GG("attn_output.weight"), -1, 0, 0);
            add_f32(&g, f, HF("self_attn.q_norm.weight"), GG("attn_q_norm.weight"), PLUS_ONE);
            add_f32(&g, f, HF("self_attn.k_norm.weight"), GG("attn_k_norm.weight"), PLUS_ONE);
        } else {
            add_matrix(&g, f, HF("linear_attn.in_proj_qkv.weight"), GG("attn_qkv.weight"),
                       2 * N_K * D_K, D_V, 0);
            add_matrix(&g, f, HF("linear_attn.in_proj_z.weight"), GG("attn_gate.weight"), 0, D_V,
                       0);
            add_matrix(&g, f, HF("linear_attn.in_proj_b.weight"), GG("ssm_beta.weight"), 0, 1, 0);
            add_matrix(&g, f, HF("linear_attn.in_proj_a.weight"), GG("ssm_alpha.weight"), 0, 1, 0);
            add_matrix(&g, f, HF("linear_attn.out_proj.weight"), GG("ssm_out.weight"), -1, 0, D_V);
            add_f32(&g, f, HF("linear_attn.A_log"), GG("ssm_a"), NEG_EXP | TILE_HEADS);
            add_f32(&g, f, HF("linear_attn.dt_bias"), GG("ssm_dt.bias"), TILE_HEADS);
            add_f32(&g, f, HF("linear_attn.conv1d.weight"), GG("ssm_conv1d.weight"), 0);
            add_f32(&g, f, HF("linear_attn.norm.weight"), GG("ssm_norm.weight"), 0);
        }
#undef HF
#undef GG
    }
    st_close(f);
    write_gguf(&g, path);
}

/* ---- the tests ----------------------------------------------------------------------------- */

static void setup(void) {
    memset(&fx, 0, sizeof fx);
    char path[1024], rel[128];
    json_error_t err;
    snprintf(rel, sizeof rel, "hf/%s.json", var->fixture);
    json_t *root = json_load_file(test_data_path(rel, path, sizeof path), 0, &err);
    ck_assert_msg(root != NULL, "%s: %s", path, err.text);
    fx.n_prompt = json_ids(json_object_get(root, "prompt_ids"), fx.tokens, 512);
    fx.n_tokens = fx.n_prompt + json_ids(json_object_get(root, "greedy_ids"),
                                         fx.tokens + fx.n_prompt, 512 - fx.n_prompt);
    fx.n_vocab = (int32_t)json_integer_value(json_object_get(root, "n_vocab"));
    json_decref(root);
    snprintf(rel, sizeof rel, "hf/%s.logits.f32", var->fixture);
    FILE *fp = fopen(test_data_path(rel, path, sizeof path), "rb");
    ck_assert_ptr_nonnull(fp);
    const size_t n = (size_t)fx.n_tokens * (size_t)fx.n_vocab;
    fx.logits = malloc(n * sizeof(float));
    ck_assert_uint_eq(fread(fx.logits, sizeof(float), n, fp), n);
    fclose(fp);

    snprintf(gguf_path_buf, sizeof gguf_path_buf, "/tmp/reason-q35gguf-XXXXXX");
    const int fd = mkstemp(gguf_path_buf);
    ck_assert_int_ge(fd, 0);
    close(fd);
    convert(gguf_path_buf);
}

static void setup_dense(void) { var = &dense, setup(); }
static void setup_dense_f32(void) { var = &dense_f32, setup(); }
static void setup_moe(void) { var = &moe, setup(); }

static void teardown(void) {
    if (worst_err > 0)
        printf("%s gguf%s: worst relative max-norm error %.3g\n", var->arch,
               var->f32_matrices ? " (F32 matrices)" : "", worst_err);
    worst_err = 0;
    unlink(gguf_path_buf);
    model_fixture_free(&fx);
}

static reason_model *load(void) {
    reason_model *model;
    ck_assert_msg(reason_model_load(gguf_path_buf, NULL, &model) == REASON_OK, "%s",
                  reason_last_error());
    return model;
}

static reason_context *make_context(const reason_model *model) {
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = 64;
    p.n_batch = 64;
    p.n_outputs_max = 64;
    p.n_seq_max = 1;
    p.kv_type = REASON_KV_F32;
    p.kv_block_size = 4;
    p.n_threads = 2;
    reason_context *ctx;
    ck_assert_msg(reason_context_create(model, &p, &ctx) == REASON_OK, "%s", reason_last_error());
    return ctx;
}

static void decode_range(reason_context *ctx, int32_t from, int32_t to, const char *label) {
    int32_t pos[512], sid[512];
    int8_t want[512];
    for (int32_t i = from; i < to; i++) {
        pos[i - from] = i;
        sid[i - from] = 0;
        want[i - from] = 1;
    }
    const reason_batch b = {to - from, fx.tokens + from, pos, sid, want};
    ck_assert_msg(reason_decode(ctx, &b) == REASON_OK, "%s: %s", label, reason_last_error());
    for (int32_t r = from; r < to; r++) {
        const float *logits;
        ck_assert_msg(reason_get_logits(ctx, r - from, &logits) == REASON_OK, "%s",
                      reason_last_error());
        const double err = rel_max_err(logits, fx.logits + (size_t)r * fx.n_vocab, fx.n_vocab);
        if (err > worst_err) worst_err = err;
        ck_assert_msg(err <= TOL, "%s: logits after token %d differ by %.3g > %.1g", label, r, err,
                      TOL);
    }
}

START_TEST(test_info) {
    reason_model *model = load();
    reason_model_info info;
    ck_assert_int_eq(reason_model_get_info(model, &info), REASON_OK);
    ck_assert_str_eq(info.architecture, "qwen35");
    ck_assert_int_eq(info.n_vocab, fx.n_vocab);
    ck_assert_int_eq(info.n_layer, 2); /* block_count 3 less the MTP layer */
    ck_assert_int_eq(model->layers[0].kind, LAYER_DELTANET);
    ck_assert_int_eq(model->layers[1].kind, LAYER_ATTENTION);
    ck_assert_int_eq(model->hp.rope_dim, 4);
    ck_assert_int_eq(model->hp.ssm_n_k_head, N_K);
    ck_assert_int_eq(model->hp.ssm_n_v_head, N_V);
    ck_assert_int_eq(model->hp.ssm_d_k, D_K);
    ck_assert_int_eq(model->hp.ssm_d_v, D_V);
    ck_assert(model->hp.ssm_v_head_tiled);
    ck_assert(model->hp.attn_gated);
    ck_assert_int_eq(model->layers[1].wq.ne[1], N_HEAD * HEAD_DIM);
    ck_assert_int_eq(model->layers[1].wq_gate.ne[1], N_HEAD * HEAD_DIM);
    reason_model_free(model);
}
END_TEST

START_TEST(test_one_batch) {
    reason_model *model = load();
    reason_context *ctx = make_context(model);
    decode_range(ctx, 0, fx.n_tokens, "one batch");
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

START_TEST(test_token_by_token) {
    reason_model *model = load();
    reason_context *ctx = make_context(model);
    decode_range(ctx, 0, fx.n_prompt, "prompt");
    for (int32_t t = fx.n_prompt; t < fx.n_tokens; t++) decode_range(ctx, t, t + 1, "step");
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

/* Metadata the architecture needs, one key left out at a time: a clear error naming it. */
START_TEST(test_missing_metadata) {
    static const char *keys[] = {"qwen35.ssm.conv_kernel", "qwen35.ssm.state_size",
                                 "qwen35.ssm.group_count", "qwen35.ssm.time_step_rank",
                                 "qwen35.ssm.inner_size", "qwen35.rope.dimension_count"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        gguf_omit_key = keys[i];
        convert(gguf_path_buf);
        gguf_omit_key = NULL;
        reason_model *model = NULL;
        ck_assert_int_eq(reason_model_load(gguf_path_buf, NULL, &model), REASON_ERR_FORMAT);
        ck_assert_ptr_null(model);
        ck_assert_msg(strstr(reason_last_error(), keys[i]) != NULL, "%s", reason_last_error());
    }
}
END_TEST

/* qwen35moe: the experts bound as views of the 3-D tensors, the shared expert as view n_expert. */
START_TEST(test_moe_info) {
    reason_model *model = load();
    reason_model_info info;
    ck_assert_int_eq(reason_model_get_info(model, &info), REASON_OK);
    ck_assert_str_eq(info.architecture, "qwen35moe");
    ck_assert_int_eq(info.n_layer, 3);
    ck_assert_int_eq(model->hp.n_expert, N_EXPERT);
    ck_assert_int_eq(model->hp.n_expert_used, N_EXPERT_USED);
    ck_assert_int_eq(model->hp.n_ff_exp, FF_EXP);
    ck_assert_int_eq(model->hp.n_ff_shexp, FF_SHEXP);
    ck_assert(model->hp.expert_weights_norm);
    const layer_weights *l = &model->layers[2];
    ck_assert_int_eq(l->exp_gate[N_EXPERT - 1].ne[1], FF_EXP);
    ck_assert_int_eq(l->exp_down[N_EXPERT - 1].ne[1], N_EMBD);
    ck_assert_int_eq(l->exp_gate[N_EXPERT].ne[1], FF_SHEXP);
    ck_assert_int_eq((int)((const uint8_t *)l->exp_up[1].data - (const uint8_t *)l->exp_up[0].data),
                     FF_EXP * N_EMBD * 2);
    reason_model_free(model);
}
END_TEST

/* A qwen35moe GGUF without its expert counts: a clear error naming the key. */
START_TEST(test_moe_missing_metadata) {
    static const char *keys[] = {"qwen35moe.expert_count", "qwen35moe.expert_used_count",
                                 "qwen35moe.expert_feed_forward_length"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        gguf_omit_key = keys[i];
        convert(gguf_path_buf);
        gguf_omit_key = NULL;
        reason_model *model = NULL;
        ck_assert_int_eq(reason_model_load(gguf_path_buf, NULL, &model), REASON_ERR_FORMAT);
        ck_assert_ptr_null(model);
        ck_assert_msg(strstr(reason_last_error(), keys[i]) != NULL, "%s", reason_last_error());
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("qwen35_gguf");
    TCase *tc = tcase_create("qwen35_gguf");
    tcase_add_checked_fixture(tc, setup_dense, teardown);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_one_batch);
    tcase_add_test(tc, test_token_by_token);
    tcase_add_test(tc, test_missing_metadata);
    suite_add_tcase(s, tc);
    TCase *tf = tcase_create("f32_matrices");
    tcase_add_checked_fixture(tf, setup_dense_f32, teardown);
    tcase_add_test(tf, test_one_batch);
    tcase_add_test(tf, test_token_by_token);
    suite_add_tcase(s, tf);
    TCase *tm = tcase_create("qwen35moe");
    tcase_add_checked_fixture(tm, setup_moe, teardown);
    tcase_add_test(tm, test_moe_info);
    tcase_add_test(tm, test_one_batch);
    tcase_add_test(tm, test_token_by_token);
    tcase_add_test(tm, test_moe_missing_metadata);
    suite_add_tcase(s, tm);
    return run_suite(s);
}
