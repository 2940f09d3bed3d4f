/* model.c — loading a GGUF model: architecture, hyper-parameters and weights bound by name, each
 * checked against the shape and type the architecture needs before anything runs. */
#include "model.h"

#include "backend.h"
#include "hf_model.h"
#include "mapped_file.h"
#include "rope_scaling.h"
#include "tensor_types.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *name;
    int32_t arch;
} known_archs[] = {
    {"llama", ARCH_LLAMA},
    {"qwen2", ARCH_QWEN2},
    {"qwen3", ARCH_QWEN3},
    {"qwen35", ARCH_QWEN35},
    {"qwen35moe", ARCH_QWEN35MOE},
    {"gpt-oss", ARCH_GPTOSS},
    {"gemma4", ARCH_GEMMA4},
};

void reason_model_params_default(reason_model_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
}

const char *model_chat_template(const reason_model *model) {
    return model ? model->chat_template : NULL;
}

/* Reads "<arch>.<key>" as an int32 in [lo, hi]; absent keys take the default when has_default. */
static reason_status read_int(const gguf_file *f, const char *arch, const char *key, int64_t lo,
                              int64_t hi, bool has_default, int64_t def, int32_t *out) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int64_t v;
    if (!gguf_get_i64(f, full, &v)) {
        if (gguf_find_key(f, full) >= 0)
            return rs_error(REASON_ERR_FORMAT, "%s: metadata '%s' is not an integer",
                            gguf_path(f), full);
        if (!has_default)
            return rs_error(REASON_ERR_FORMAT, "%s: required metadata '%s' is missing",
                            gguf_path(f), full);
        v = def;
    }
    if (v < lo || v > hi)
        return rs_error(REASON_ERR_FORMAT, "%s: metadata '%s' = %lld is outside [%lld, %lld]",
                        gguf_path(f), full, (long long)v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return REASON_OK;
}

static reason_status read_float(const gguf_file *f, const char *arch, const char *key, float lo,
                                float hi, float def, float *out) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    float v = def;
    if (gguf_find_key(f, full) >= 0 && !gguf_get_f32(f, full, &v))
        return rs_error(REASON_ERR_FORMAT, "%s: metadata '%s' is not a number", gguf_path(f), full);
    if (!(v >= lo && v <= hi))
        return rs_error(REASON_ERR_FORMAT, "%s: metadata '%s' = %g is outside [%g, %g]",
                        gguf_path(f), full, (double)v, (double)lo, (double)hi);
    *out = v;
    return REASON_OK;
}

static reason_status read_qwen35_hparams(reason_model *m);

/* gpt-oss's metadata (llama.cpp's converter): the window of its sliding layers, which are the
 * even ones (the published pattern sliding, full, ...); the clamped SwiGLU's constants are not
 * in the file (gpt-oss's config: alpha 1.702, limit 7). */
static reason_status read_gptoss_hparams(reason_model *m) {
    model_hparams *hp = &m->hp;
    RS_TRY(read_int(m->file, m->arch_name, "attention.sliding_window", 1, 1 << 30, false, 0,
                    &hp->n_swa));
    hp->expert_act = EXPERT_SWIGLU_CLAMPED;
    hp->swiglu_alpha = 1.702f;
    hp->swiglu_limit = 7.0f;
    m->layer_swa = rs_calloc((size_t)hp->n_layer, 1, "sliding-window layers");
    if (!m->layer_swa) return REASON_ERR_NOMEM;
    for (int32_t il = 0; il < hp->n_layer; il += 2) m->layer_swa[il] = 1;
    return REASON_OK;
}

/* Per-layer integers: "<arch>.<key>" as one value for every layer or an array of n_layer. */
static reason_status read_layer_ints(const reason_model *m, const char *key, int64_t lo,
                                     int64_t hi, int32_t *out) {
    const gguf_file *f = m->file;
    const int32_t n = m->hp.n_layer;
    char full[128];
    snprintf(full, sizeof full, "%s.%s", m->arch_name, key);
    uint32_t type;
    uint64_t count;
    const void *data;
    if (gguf_get_arr(f, full, &type, &count, &data)) {
        if (count != (uint64_t)n || (type != GGUF_TYPE_UINT32 && type != GGUF_TYPE_INT32))
            return rs_error(REASON_ERR_FORMAT, "%s: metadata '%s' must be %d 32-bit integers",
                            gguf_path(f), full, n);
        for (int32_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, (const uint8_t *)data + 4 * i, 4);
            if (v < lo || v > hi || (type == GGUF_TYPE_UINT32 && v < 0))
                return rs_error(REASON_ERR_FORMAT, "%s: metadata '%s'[%d] = %d is outside "
                                "[%lld, %lld]", gguf_path(f), full, i, v, (long long)lo,
                                (long long)hi);
            out[i] = v;
        }
        return REASON_OK;
    }
    int32_t v;
    RS_TRY(read_int(f, m->arch_name, key, lo, hi, false, 0, &v));
    for (int32_t i = 0; i < n; i++) out[i] = v;
    return REASON_OK;
}

/* Gemma 4's metadata as llama.cpp's converter writes it (docs/gemma4.md): which layers slide
 * (attention.sliding_window_pattern), their head size (key_length_swa; key_length is the global
 * layers'), KV heads per layer, rotated dims and θ per kind, the KV-sharing tail, the per-layer
 * embedding width, soft-capping. The global layers' proportional RoPE comes as the model's
 * rope_freqs (1 for rotating pairs, 1e30 for the others), applied to them only after binding. */
static reason_status read_gemma4_hparams(reason_model *m) {
    const gguf_file *f = m->file;
    const char *a = m->arch_name;
    model_hparams *hp = &m->hp;
    const int32_t n = hp->n_layer, global_head_dim = hp->head_dim, global_rot = hp->rope_dim;
    int32_t local_head_dim, local_rot, n_shared;
    float local_theta;
    RS_TRY(read_int(f, a, "attention.key_length_swa", 2, 4096, false, 0, &local_head_dim));
    RS_TRY(read_int(f, a, "rope.dimension_count_swa", 2, local_head_dim, true, local_head_dim,
                    &local_rot));
    RS_TRY(read_float(f, a, "rope.freq_base_swa", 1.0f, 1e12f, 10000.0f, &local_theta));
    RS_TRY(read_int(f, a, "attention.sliding_window", 1, 1 << 30, false, 0, &hp->n_swa));
    RS_TRY(read_int(f, a, "attention.shared_kv_layers", 0, n - 1, true, 0, &n_shared));
    RS_TRY(read_int(f, a, "embedding_length_per_layer_input", 0, 1 << 16, true, 0, &hp->n_ple));
    RS_TRY(read_float(f, a, "final_logit_softcapping", 0.0f, 1e6f, 0.0f, &hp->logit_softcap));
    hp->ffn_act = EXPERT_GEGLU;
    hp->expert_act = EXPERT_GEGLU;
    hp->embd_scale = sqrtf((float)hp->n_embd);
    hp->attn_unscaled = true;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", a);
    uint32_t type;
    uint64_t count;
    const void *pattern;
    if (!gguf_get_arr(f, key, &type, &count, &pattern) || type != GGUF_TYPE_BOOL ||
        count != (uint64_t)n)
        return rs_error(REASON_ERR_FORMAT, "%s: metadata '%s' must be %d booleans", gguf_path(f),
                        key, n);
    int32_t *kv_heads = rs_calloc((size_t)n, sizeof *kv_heads, "KV heads per layer");
    m->layer_swa = rs_calloc((size_t)n, 1, "sliding-window layers");
    m->layer_cfg = rs_calloc((size_t)n, sizeof *m->layer_cfg, "layer geometry");
    reason_status st = REASON_ERR_NOMEM;
    if (!kv_heads || !m->layer_swa || !m->layer_cfg) goto done;
    if ((st = read_layer_ints(m, "attention.head_count_kv", 1, hp->n_head, kv_heads)) != REASON_OK)
        goto done;
    for (int32_t il = 0; il < n; il++) {
        const bool swa = ((const uint8_t *)pattern)[il] != 0;
        layer_config *lc = &m->layer_cfg[il];
        m->layer_swa[il] = swa;
        lc->head_dim = swa ? local_head_dim : global_head_dim;
        lc->n_head_kv = kv_heads[il];
        lc->rope_dim = swa ? local_rot : global_rot;
        lc->rope_theta = swa ? local_theta : hp->rope_theta;
        if (hp->n_head % lc->n_head_kv != 0) {
            st = rs_error(REASON_ERR_FORMAT, "%s: layer %d: %d heads are not a multiple of %d KV "
                          "heads", gguf_path(f), il, hp->n_head, lc->n_head_kv);
            goto done;
        }
        char v[96];
        snprintf(v, sizeof v, "blk.%d.attn_v.weight", il);
        lc->k_eq_v = !swa && !gguf_find_tensor(f, v); /* no V: the keys are the values */
    }
    hp->head_dim = local_head_dim;
    hp->n_head_kv = kv_heads[0];
    hp->rope_dim = local_rot;
    st = model_gemma4_kv_sources(m, n_shared);
done:
    free(kv_heads);
    return st;
}

/* YaRN from GGUF metadata: its divisors as the model's rope_freqs (owned). gpt-oss was trained
 * without truncating the ramp's ends (its config: truncate false); others as transformers'
 * default. */
static reason_status apply_yarn(reason_model *m) {
    const model_hparams *hp = &m->hp;
    if (hp->yarn_original_ctx == 0) return REASON_OK;
    void **owned = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *owned);
    if (!owned) return rs_error(REASON_ERR_NOMEM, "out of memory (rope frequencies)");
    m->owned = owned;
    const int32_t half = hp->rope_dim / 2;
    float *div = rs_aligned_alloc((size_t)half * sizeof(float), "rope frequencies");
    if (!div) return REASON_ERR_NOMEM;
    m->owned[m->n_owned++] = div;
    rope_yarn_divisors(hp->rope_dim, hp->rope_theta, hp->yarn_factor, hp->yarn_beta_fast,
                       hp->yarn_beta_slow, hp->yarn_original_ctx, m->arch != ARCH_GPTOSS, div);
    m->rope_freqs = (rs_tensor){.name = "rope_freqs (YaRN metadata)", .type = TENSOR_F32,
                                .ne = {half, 1}, .row_bytes = (size_t)half * sizeof(float),
                                .data = div};
    return REASON_OK;
}

/* The expert counts and sizes (GGUF expert_* keys, as llama.cpp's converter writes them). */
static reason_status read_moe_hparams(reason_model *m) {
    const gguf_file *f = m->file;
    const char *a = m->arch_name;
    model_hparams *hp = &m->hp;
    RS_TRY(read_int(f, a, "expert_count", 1, 4096, false, 0, &hp->n_expert));
    RS_TRY(read_int(f, a, "expert_used_count", 1, hp->n_expert, false, 0, &hp->n_expert_used));
    RS_TRY(read_int(f, a, "expert_feed_forward_length", 1, 1 << 24, false, 0, &hp->n_ff_exp));
    RS_TRY(read_int(f, a, "expert_shared_feed_forward_length", 0, 1 << 24, true, 0,
                    &hp->n_ff_shexp));
    char key[128];
    snprintf(key, sizeof key, "%s.expert_weights_norm", a);
    bool norm = true; /* Qwen3.5's router always renormalises the selected weights */
    if (gguf_find_key(f, key) >= 0 && !gguf_get_bool(f, key, &norm))
        return rs_error(REASON_ERR_FORMAT, "%s: metadata '%s' is not a boolean", gguf_path(f), key);
    hp->expert_weights_norm = norm;
    return REASON_OK;
}

static reason_status read_hparams(reason_model *m) {
    const gguf_file *f = m->file;
    const char *a = m->arch_name;
    model_hparams *hp = &m->hp;
    const int32_t big = 1 << 24;
    RS_TRY(read_int(f, a, "block_count", 1, 4096, false, 0, &hp->n_layer));
    RS_TRY(read_int(f, a, "embedding_length", 1, big, false, 0, &hp->n_embd));
    /* a mixture-of-experts model may have no dense feed-forward length */
    const bool moe = m->arch == ARCH_QWEN35MOE || m->arch == ARCH_GPTOSS;
    RS_TRY(read_int(f, a, "feed_forward_length", 0, big, moe, 0, &hp->n_ff));
    const bool gemma4_moe = m->arch == ARCH_GEMMA4 && gguf_find_key(f, "gemma4.expert_count") >= 0;
    RS_TRY(read_int(f, a, "attention.head_count", 1, 4096, false, 0, &hp->n_head));
    if (m->arch == ARCH_GEMMA4) /* possibly one per layer: read_gemma4_hparams */
        hp->n_head_kv = hp->n_head;
    else
        RS_TRY(read_int(f, a, "attention.head_count_kv", 1, hp->n_head, true, hp->n_head,
                        &hp->n_head_kv));
    RS_TRY(read_int(f, a, "context_length", 1, 1 << 30, true, 4096, &hp->n_ctx_train));
    if (hp->n_head % hp->n_head_kv != 0)
        return rs_error(REASON_ERR_FORMAT, "%s: head_count %d is not a multiple of head_count_kv %d",
                        gguf_path(f), hp->n_head, hp->n_head_kv);
    int32_t default_head_dim = hp->n_embd / hp->n_head;
    RS_TRY(read_int(f, a, "attention.key_length", 1, 4096, true, default_head_dim, &hp->head_dim));
    int32_t value_dim = 0;
    RS_TRY(read_int(f, a, "attention.value_length", 1, 4096, true, hp->head_dim, &value_dim));
    if (value_dim != hp->head_dim)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: key_length %d != value_length %d is not supported",
                        gguf_path(f), hp->head_dim, value_dim);
    if (hp->head_dim % 2 != 0)
        return rs_error(REASON_ERR_FORMAT, "%s: head dimension %d is odd", gguf_path(f), hp->head_dim);
    RS_TRY(read_float(f, a, "attention.layer_norm_rms_epsilon", 0.0f, 1.0f, 1e-6f, &hp->rms_eps));
    RS_TRY(read_float(f, a, "rope.freq_base", 1.0f, 1e12f, 10000.0f, &hp->rope_theta));
    RS_TRY(read_int(f, a, "rope.dimension_count", 2, hp->head_dim, true, hp->head_dim, &hp->rope_dim));
    if (hp->rope_dim % 2 != 0)
        return rs_error(REASON_ERR_FORMAT, "%s: rope.dimension_count %d is odd", gguf_path(f),
                        hp->rope_dim);
    hp->rope_style = m->arch == ARCH_LLAMA ? ROPE_NORMAL : ROPE_NEOX;
    hp->rope_pos_scale = 1.0f;
    hp->rope_mscale = 1.0f;
    if (arch_is_qwen35(m->arch)) RS_TRY(read_qwen35_hparams(m));
    if (moe || gemma4_moe) RS_TRY(read_moe_hparams(m));
    if (m->arch == ARCH_GPTOSS) RS_TRY(read_gptoss_hparams(m));
    if (m->arch == ARCH_GEMMA4) RS_TRY(read_gemma4_hparams(m));
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    const char *scaling;
    size_t scaling_len;
    if (gguf_get_str(f, key, &scaling, &scaling_len) &&
        !(scaling_len == 4 && memcmp(scaling, "none", 4) == 0)) {
        if (scaling_len == 6 && memcmp(scaling, "linear", 6) == 0) {
            float factor = 1.0f;
            RS_TRY(read_float(f, a, "rope.scaling.factor", 1e-3f, 1e6f, 1.0f, &factor));
            hp->rope_pos_scale = 1.0f / factor;
        } else if (scaling_len == 4 && memcmp(scaling, "yarn", 4) == 0) {
            RS_TRY(read_float(f, a, "rope.scaling.factor", 1e-3f, 1e6f, 1.0f, &hp->yarn_factor));
            RS_TRY(read_int(f, a, "rope.scaling.original_context_length", 1, 1 << 30, false, 0,
                            &hp->yarn_original_ctx));
            RS_TRY(read_float(f, a, "rope.scaling.yarn_beta_fast", 1e-6f, 1e6f, 32.0f,
                              &hp->yarn_beta_fast));
            RS_TRY(read_float(f, a, "rope.scaling.yarn_beta_slow", 1e-6f, 1e6f, 1.0f,
                              &hp->yarn_beta_slow));
            hp->rope_mscale = (float)rope_yarn_attn_factor(hp->yarn_factor);
        } else {
            return rs_error(REASON_ERR_UNSUPPORTED, "%s: rope scaling '%.*s' is not supported",
                            gguf_path(f), (int)scaling_len, scaling);
        }
    }
    return REASON_OK;
}

/* qwen35's own metadata as llama.cpp's converter writes it (docs/qwen35.md, "GGUF"): the DeltaNet
 * sizes under ssm.*, the layer pattern from full_attention_interval, the rotated dimensions, and
 * the multi-token-prediction layers counted in block_count (dropped: not used for text). */
static reason_status read_qwen35_hparams(reason_model *m) {
    const gguf_file *f = m->file;
    const char *a = m->arch_name;
    model_hparams *hp = &m->hp;
    int32_t nextn = 0, interval = 0, inner = 0;
    RS_TRY(read_int(f, a, "nextn_predict_layers", 0, hp->n_layer - 1, true, 0, &nextn));
    hp->n_layer -= nextn;
    RS_TRY(read_int(f, a, "ssm.conv_kernel", 1, 64, false, 0, &hp->ssm_conv_kernel));
    RS_TRY(read_int(f, a, "ssm.state_size", 1, DELTANET_MAX_HEAD_DIM, false, 0, &hp->ssm_d_k));
    RS_TRY(read_int(f, a, "ssm.group_count", 1, 4096, false, 0, &hp->ssm_n_k_head));
    RS_TRY(read_int(f, a, "ssm.time_step_rank", 1, 4096, false, 0, &hp->ssm_n_v_head));
    RS_TRY(read_int(f, a, "ssm.inner_size", 1, 1 << 24, false, 0, &inner));
    RS_TRY(read_int(f, a, "full_attention_interval", 1, 4096, true, 4, &interval));
    if (hp->ssm_n_v_head % hp->ssm_n_k_head != 0)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: ssm.time_step_rank %d (value heads) is not a multiple of "
                        "ssm.group_count %d (key heads)", gguf_path(f), hp->ssm_n_v_head,
                        hp->ssm_n_k_head);
    if (inner % hp->ssm_n_v_head != 0 || inner / hp->ssm_n_v_head > DELTANET_MAX_HEAD_DIM)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: ssm.inner_size %d is not value heads (%d) x a head size of at most %d",
                        gguf_path(f), inner, hp->ssm_n_v_head, DELTANET_MAX_HEAD_DIM);
    hp->ssm_d_v = inner / hp->ssm_n_v_head;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.dimension_count", a);
    if (gguf_find_key(f, key) < 0) /* the default (head_dim) would rotate every dimension */
        return rs_error(REASON_ERR_FORMAT, "%s: required metadata '%s' is missing", gguf_path(f),
                        key);
    hp->attn_gated = true;
    hp->ssm_v_head_tiled = true; /* the converter's value-head reordering */
    m->layer_kinds = rs_calloc((size_t)hp->n_layer, 1, "layer kinds");
    if (!m->layer_kinds) return REASON_ERR_NOMEM;
    for (int32_t il = 0; il < hp->n_layer; il++)
        m->layer_kinds[il] = (il + 1) % interval == 0 ? LAYER_ATTENTION : LAYER_DELTANET;
    return REASON_OK;
}

/* The file (or directory) weights come from, and a tensor by its GGUF name, for either format. */
void *model_own(reason_model *m, void *p) {
    if (!p) return NULL;
    void **owned = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *owned);
    if (!owned) {
        free(p);
        rs_error(REASON_ERR_NOMEM, "out of memory (model buffers)");
        return NULL;
    }
    m->owned = owned;
    m->owned[m->n_owned++] = p;
    return p;
}

const char *model_path(const reason_model *m) {
    return m->file ? gguf_path(m->file) : hf_weights_path(m->hf);
}

const gguf_tensor *model_find_tensor(const reason_model *m, const char *name) {
    return m->file ? gguf_find_tensor(m->file, name) : hf_find_tensor(m->hf, name);
}

reason_status model_bind_tensor(reason_model *m, rs_tensor *t, const char *name, int64_t cols,
                                int64_t rows, bool required) {
    memset(t, 0, sizeof *t);
    const gguf_tensor *g = model_find_tensor(m, name);
    if (!g) {
        if (!required) return REASON_OK;
        char shown[160];
        if (m->file) snprintf(shown, sizeof shown, "%s", name);
        else hf_tensor_name(name, shown, sizeof shown);
        return rs_error(REASON_ERR_FORMAT, "%s: required tensor '%s' is missing", model_path(m),
                        shown);
    }
    int64_t g_rows = 1;
    for (int d = 1; d < g->n_dims; d++) g_rows *= g->ne[d];
    if (g->ne[0] != cols || g_rows != rows || g->n_dims > 2)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: tensor '%s' has shape [%lld, %lld] (%d dims), expected [%lld, %lld]",
                        model_path(m), g->name, (long long)g->ne[0], (long long)g_rows,
                        g->n_dims, (long long)cols, (long long)rows);
    const tensor_type_info *ti = tensor_type_get(g->type);
    if (!ti || !ti->supported)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s (%u), not supported",
                        model_path(m), g->name, ti ? ti->name : "unknown", g->type);
    t->name = g->name;
    t->type = g->type;
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->row_bytes = tensor_row_bytes(g->type, cols);
    t->data = g->data;
    m->n_params += (uint64_t)(cols * rows);
    m->weight_bytes += g->nbytes;
    return REASON_OK;
}

/* Norm weights, biases and frequency tables are read as floats directly on every backend. */
reason_status model_require_f32(const reason_model *m, const rs_tensor *t) {
    if (t->data && t->type != 0 /* F32 */)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: tensor '%s' must be F32, file has %s",
                        model_path(m), t->name, tensor_type_get(t->type)->name);
    return REASON_OK;
}

static reason_status bind_layer(reason_model *m, int32_t il) {
    const model_hparams *hp = &m->hp;
    layer_weights *l = &m->layers[il];
    int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    bool qwen2 = m->arch == ARCH_QWEN2, qwen3 = m->arch == ARCH_QWEN3,
         gptoss = m->arch == ARCH_GPTOSS;
    char n[96];
#define BIND(field, suffix, cols, rows, req)                                                        \
    snprintf(n, sizeof n, "blk.%d." suffix, il);                                                   \
    RS_TRY(model_bind_tensor(m, &l->field, n, cols, rows, req))
    BIND(attn_norm, "attn_norm.weight", hp->n_embd, 1, true);
    BIND(wq, "attn_q.weight", hp->n_embd, q_dim, true);
    BIND(wk, "attn_k.weight", hp->n_embd, kv_dim, true);
    BIND(wv, "attn_v.weight", hp->n_embd, kv_dim, true);
    BIND(bq, "attn_q.bias", q_dim, 1, qwen2 || gptoss);
    BIND(bk, "attn_k.bias", kv_dim, 1, qwen2 || gptoss);
    BIND(bv, "attn_v.bias", kv_dim, 1, qwen2 || gptoss);
    BIND(q_norm, "attn_q_norm.weight", hp->head_dim, 1, qwen3);
    BIND(k_norm, "attn_k_norm.weight", hp->head_dim, 1, qwen3);
    BIND(wo, "attn_output.weight", q_dim, hp->n_embd, true);
    BIND(bo, "attn_output.bias", hp->n_embd, 1, false);
    BIND(attn_sinks, "attn_sinks.weight", hp->n_head, 1, gptoss);
    if (gptoss && m->file) { /* llama.cpp names gpt-oss's pre-FFN norm post_attention_norm */
        BIND(ffn_norm, "post_attention_norm.weight", hp->n_embd, 1, true);
    } else {
        BIND(ffn_norm, "ffn_norm.weight", hp->n_embd, 1, true);
    }
    if (hp->n_expert) {
        RS_TRY(model_bind_experts(m, il));
    } else {
        BIND(w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff, true);
        BIND(w_up, "ffn_up.weight", hp->n_embd, hp->n_ff, true);
        BIND(w_down, "ffn_down.weight", hp->n_ff, hp->n_embd, true);
    }
#undef BIND
    const rs_tensor *vectors[] = {&l->attn_norm, &l->bq, &l->bk,         &l->bv,
                                  &l->q_norm,    &l->k_norm, &l->ffn_norm, &l->bo,
                                  &l->attn_sinks};
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++)
        RS_TRY(model_require_f32(m, vectors[i]));
    return REASON_OK;
}

/* A GGUF qwen35 attn_q holds, per head, head_dim query rows then head_dim gate rows; the forward
 * pass wants them as two matrices, so they are copied apart into buffers the model owns. */
static reason_status bind_split_q(reason_model *m, layer_weights *l, const char *name) {
    const model_hparams *hp = &m->hp;
    const int64_t d = hp->head_dim, q_dim = (int64_t)hp->n_head * d;
    rs_tensor both;
    RS_TRY(model_bind_tensor(m, &both, name, hp->n_embd, 2 * q_dim, true));
    void **owned = realloc(m->owned, (size_t)(m->n_owned + 2) * sizeof *owned);
    if (!owned) return rs_error(REASON_ERR_NOMEM, "out of memory (attn_q halves)");
    m->owned = owned;
    const size_t half = (size_t)q_dim * both.row_bytes, head = (size_t)d * both.row_bytes;
    uint8_t *query = rs_malloc(half, "attn_q query rows");
    uint8_t *gate = rs_malloc(half, "attn_q gate rows");
    if (query) m->owned[m->n_owned++] = query;
    if (gate) m->owned[m->n_owned++] = gate;
    if (!query || !gate) return REASON_ERR_NOMEM;
    const uint8_t *src = both.data;
    for (int64_t h = 0; h < hp->n_head; h++) {
        memcpy(query + (size_t)h * head, src + (size_t)(2 * h) * head, head);
        memcpy(gate + (size_t)h * head, src + (size_t)(2 * h + 1) * head, head);
    }
    l->wq = both;
    l->wq.ne[1] = q_dim;
    l->wq.data = query;
    l->wq_gate = l->wq;
    l->wq_gate.data = gate;
    return REASON_OK;
}

/* A qwen35 layer: gated full attention (query and gate rows split by the loader) or Gated
 * DeltaNet; the feed-forward and both norms as every architecture. */
static reason_status bind_qwen35_layer(reason_model *m, int32_t il) {
    const model_hparams *hp = &m->hp;
    layer_weights *l = &m->layers[il];
    const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim,
                  kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t key_dim = (int64_t)hp->ssm_n_k_head * hp->ssm_d_k,
                  value_dim = (int64_t)hp->ssm_n_v_head * hp->ssm_d_v;
    const int64_t conv_dim = 2 * key_dim + value_dim;
    char n[96];
#define BIND(field, suffix, cols, rows)                                                             \
    snprintf(n, sizeof n, "blk.%d." suffix, il);                                                   \
    RS_TRY(model_bind_tensor(m, &l->field, n, cols, rows, true))
    BIND(attn_norm, "attn_norm.weight", hp->n_embd, 1);
    if (l->kind == LAYER_ATTENTION && m->file) {
        snprintf(n, sizeof n, "blk.%d.attn_q.weight", il);
        RS_TRY(bind_split_q(m, l, n));
    } else if (l->kind == LAYER_ATTENTION) {
        BIND(wq, "attn_q.weight", hp->n_embd, q_dim);
        BIND(wq_gate, "attn_q_gate.weight", hp->n_embd, q_dim);
    }
    if (l->kind == LAYER_ATTENTION) {
        BIND(wk, "attn_k.weight", hp->n_embd, kv_dim);
        BIND(wv, "attn_v.weight", hp->n_embd, kv_dim);
        BIND(q_norm, "attn_q_norm.weight", hp->head_dim, 1);
        BIND(k_norm, "attn_k_norm.weight", hp->head_dim, 1);
        BIND(wo, "attn_output.weight", q_dim, hp->n_embd);
    } else {
        BIND(ssm_qkv, "attn_qkv.weight", hp->n_embd, conv_dim);
        BIND(ssm_z, "attn_gate.weight", hp->n_embd, value_dim);
        BIND(ssm_beta, "ssm_beta.weight", hp->n_embd, hp->ssm_n_v_head);
        BIND(ssm_alpha, "ssm_alpha.weight", hp->n_embd, hp->ssm_n_v_head);
        BIND(ssm_conv1d, "ssm_conv1d.weight", hp->ssm_conv_kernel, conv_dim);
        BIND(ssm_dt, "ssm_dt.bias", hp->ssm_n_v_head, 1);
        BIND(ssm_a, "ssm_a", hp->ssm_n_v_head, 1);
        BIND(ssm_norm, "ssm_norm.weight", hp->ssm_d_v, 1);
        BIND(ssm_out, "ssm_out.weight", value_dim, hp->n_embd);
    }
    if (m->file) { /* llama.cpp names qwen35's pre-FFN norm post_attention_norm */
        BIND(ffn_norm, "post_attention_norm.weight", hp->n_embd, 1);
    } else {
        BIND(ffn_norm, "ffn_norm.weight", hp->n_embd, 1);
    }
    if (hp->n_expert) {
        RS_TRY(model_bind_experts(m, il));
    } else {
        BIND(w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff);
        BIND(w_up, "ffn_up.weight", hp->n_embd, hp->n_ff);
        BIND(w_down, "ffn_down.weight", hp->n_ff, hp->n_embd);
    }
#undef BIND
    const rs_tensor *vectors[] = {&l->attn_norm, &l->q_norm, &l->k_norm, &l->ffn_norm,
                                  &l->ssm_conv1d, &l->ssm_dt, &l->ssm_a, &l->ssm_norm};
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++)
        RS_TRY(model_require_f32(m, vectors[i]));
    return REASON_OK;
}

reason_status model_bind_weights(reason_model *m) {
    model_hparams *hp = &m->hp;
    const gguf_tensor *emb = model_find_tensor(m, "token_embd.weight");
    if (!emb)
        return rs_error(REASON_ERR_FORMAT, "%s: required tensor '%s' is missing", model_path(m),
                        m->file ? "token_embd.weight" : "model.embed_tokens.weight");
    if (emb->n_dims != 2 || emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
        return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s' has %d dims, vocabulary %lld",
                        model_path(m), emb->name, emb->n_dims, (long long)emb->ne[1]);
    hp->n_vocab = (int32_t)emb->ne[1];
    RS_TRY(model_bind_tensor(m, &m->tok_embd, "token_embd.weight", hp->n_embd, hp->n_vocab, true));
    RS_TRY(model_bind_tensor(m, &m->output_norm, "output_norm.weight", hp->n_embd, 1, true));
    RS_TRY(model_require_f32(m, &m->output_norm));
    RS_TRY(model_bind_tensor(m, &m->output, "output.weight", hp->n_embd, hp->n_vocab, false));
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */
    else m->gather_bytes += (uint64_t)m->tok_embd.row_bytes * (uint64_t)hp->n_vocab;
    int32_t freqs_rot = hp->rope_dim; /* gemma4: the global layers' (proportional RoPE) */
    for (int32_t il = 0; m->layer_cfg && m->layer_swa && il < hp->n_layer; il++)
        if (!m->layer_swa[il]) freqs_rot = m->layer_cfg[il].rope_dim;
    RS_TRY(model_bind_tensor(m, &m->rope_freqs, "rope_freqs.weight", freqs_rot / 2, 1, false));
    RS_TRY(model_require_f32(m, &m->rope_freqs));
    m->layers = rs_calloc((size_t)hp->n_layer, sizeof *m->layers, "layer table");
    if (!m->layers) return REASON_ERR_NOMEM;
    hp->q_dim_max = hp->kv_dim_max = 0;
    if (hp->n_ple) { /* gemma4 per-layer embeddings */
        const int64_t w = (int64_t)hp->n_layer * hp->n_ple;
        RS_TRY(model_bind_tensor(m, &m->ple_embd, "per_layer_token_embd.weight", w, hp->n_vocab,
                                 true));
        m->gather_bytes += (uint64_t)m->ple_embd.row_bytes * (uint64_t)hp->n_vocab;
        RS_TRY(model_bind_tensor(m, &m->ple_model_proj, "per_layer_model_proj.weight", hp->n_embd,
                                 w, true));
        RS_TRY(model_bind_tensor(m, &m->ple_proj_norm, "per_layer_proj_norm.weight", hp->n_ple, 1,
                                 true));
        RS_TRY(model_require_f32(m, &m->ple_proj_norm));
    }
    hp->n_attn_layer = hp->n_rec_layer = 0;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        layer_weights *l = &m->layers[il];
        l->kind = m->layer_kinds ? m->layer_kinds[il] : LAYER_ATTENTION;
        l->kv_layer = l->kind == LAYER_ATTENTION ? hp->n_attn_layer++ : -1;
        l->rec_layer = l->kind == LAYER_DELTANET ? hp->n_rec_layer++ : -1;
        l->window = m->layer_swa && m->layer_swa[il] ? hp->n_swa : 0;
        const layer_config *lc = m->layer_cfg ? &m->layer_cfg[il] : NULL;
        l->head_dim = lc ? lc->head_dim : hp->head_dim;
        l->n_head_kv = lc ? lc->n_head_kv : hp->n_head_kv;
        l->rope_dim = lc ? lc->rope_dim : hp->rope_dim;
        l->rope_theta = lc ? lc->rope_theta : hp->rope_theta;
        l->rope_div = lc ? lc->rope_div : NULL;
        l->k_eq_v = lc && lc->k_eq_v;
        l->layer_scalar = 1.0f;
        if (lc && lc->kv_source >= 0) { /* reads the K/V of an earlier layer of its kind */
            if (lc->kv_source >= il || m->layers[lc->kv_source].kv_layer < 0)
                return rs_error(REASON_ERR_FORMAT, "%s: layer %d shares the K/V of layer %d, "
                                "which is not an earlier attention layer", model_path(m), il,
                                lc->kv_source);
            hp->n_attn_layer--; /* no K/V of its own */
            l->kv_layer = m->layers[lc->kv_source].kv_layer;
            l->kv_shared = true;
        }
        if (m->arch == ARCH_GEMMA4) RS_TRY(model_bind_gemma4_layer(m, il));
        else RS_TRY(arch_is_qwen35(m->arch) ? bind_qwen35_layer(m, il) : bind_layer(m, il));
        hp->q_dim_max = RS_MAX(hp->q_dim_max, hp->n_head * l->head_dim);
        hp->kv_dim_max = RS_MAX(hp->kv_dim_max, l->n_head_kv * l->head_dim);
    }
    if (hp->n_attn_layer == 0)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: a model without full-attention layers is not "
                        "supported", model_path(m));
    return REASON_OK;
}

static void copy_meta_string(const gguf_file *f, const char *key, char *dst, size_t cap) {
    const char *s;
    size_t len;
    dst[0] = '\0';
    if (gguf_get_str(f, key, &s, &len)) {
        len = RS_MIN(len, cap - 1);
        memcpy(dst, s, len);
        dst[len] = '\0';
    }
}

static reason_status load_model(const char *path, reason_model **out_model);

reason_status reason_model_load(const char *path, const reason_model_params *params,
                                reason_model **out_model) {
    RS_CHECK_ARG(path != NULL);
    RS_CHECK_ARG(out_model != NULL);
    *out_model = NULL;
    const int32_t weights = params ? params->weights : REASON_WEIGHTS_AUTO;
    if (weights < REASON_WEIGHTS_AUTO || weights > REASON_WEIGHTS_COPIED)
        return rs_error(REASON_ERR_INVALID_ARG, "model params: weights %d is not a reason_weights",
                        weights);
    const int32_t old = mapped_file_set_weights(weights);
    const reason_status st = load_model(path, out_model);
    mapped_file_set_weights(old);
    return st;
}

static reason_status load_model(const char *path, reason_model **out_model) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return hf_model_load(path, out_model);
    reason_model *m = rs_calloc(1, sizeof *m, "model");
    if (!m) return REASON_ERR_NOMEM;
    reason_status st = gguf_open(path, &m->file);
    if (st != REASON_OK) goto fail;

    const char *arch;
    size_t arch_len;
    if (!gguf_get_str(m->file, "general.architecture", &arch, &arch_len)) {
        st = rs_error(REASON_ERR_FORMAT, "%s: metadata 'general.architecture' is missing", path);
        goto fail;
    }
    m->arch = -1;
    for (size_t i = 0; i < sizeof known_archs / sizeof known_archs[0]; i++)
        if (strlen(known_archs[i].name) == arch_len &&
            memcmp(known_archs[i].name, arch, arch_len) == 0)
            m->arch = known_archs[i].arch;
    if (m->arch < 0) {
        st = rs_error(REASON_ERR_UNSUPPORTED,
                      "%s: architecture '%.*s' is not supported (supported: llama, qwen2, qwen3, "
                      "qwen35, qwen35moe, gpt-oss, gemma4)",
                      path, (int)RS_MIN(arch_len, 64), arch);
        goto fail;
    }
    copy_meta_string(m->file, "general.architecture", m->arch_name, sizeof m->arch_name);
    copy_meta_string(m->file, "general.name", m->name, sizeof m->name);

    if ((st = read_hparams(m)) != REASON_OK) goto fail;
    if ((st = model_bind_weights(m)) != REASON_OK) goto fail;
    if (m->rope_freqs.data == NULL && (st = apply_yarn(m)) != REASON_OK) goto fail;
    if (m->arch == ARCH_GEMMA4 && m->rope_freqs.data) {
        /* the proportional RoPE's divisors belong to the global layers only */
        for (int32_t il = 0; il < m->hp.n_layer; il++)
            if (!m->layer_swa[il]) m->layers[il].rope_div = m->rope_freqs.data;
        memset(&m->rope_freqs, 0, sizeof m->rope_freqs);
    }
    if ((st = tokenizer_from_gguf(m->file, &m->tokenizer)) != REASON_OK) {
        st = rs_error_prefix(st, "%s: tokenizer", path);
        goto fail;
    }
    if (reason_tokenizer_n_vocab(m->tokenizer) > m->hp.n_vocab) {
        st = rs_error(REASON_ERR_FORMAT, "%s: tokenizer has %d tokens but the model only %d rows",
                      path, reason_tokenizer_n_vocab(m->tokenizer), m->hp.n_vocab);
        goto fail;
    }
    const char *tmpl;
    size_t tmpl_len;
    if (gguf_get_str(m->file, "tokenizer.chat_template", &tmpl, &tmpl_len)) {
        m->chat_template = rs_malloc(tmpl_len + 1, "chat template");
        if (!m->chat_template) {
            st = REASON_ERR_NOMEM;
            goto fail;
        }
        memcpy(m->chat_template, tmpl, tmpl_len);
        m->chat_template[tmpl_len] = '\0';
    }
    *out_model = m;
    return REASON_OK;
fail:
    reason_model_free(m);
    return st;
}

void reason_model_free(reason_model *model) {
    if (!model) return;
    reason_tokenizer_free(model->tokenizer);
    free(model->chat_template);
    free(model->layers);
    free(model->layer_kinds);
    free(model->layer_swa);
    free(model->layer_cfg);
    for (int32_t i = 0; i < model->n_owned; i++) free(model->owned[i]);
    free(model->owned);
    gguf_close(model->file);
    hf_weights_free(model->hf);
    free(model);
}

reason_status reason_model_get_info(const reason_model *model, reason_model_info *out) {
    RS_CHECK_ARG(model != NULL);
    RS_CHECK_ARG(out != NULL);
    memset(out, 0, sizeof *out);
    snprintf(out->architecture, sizeof out->architecture, "%s", model->arch_name);
    snprintf(out->name, sizeof out->name, "%s", model->name);
    const model_hparams *hp = &model->hp;
    out->n_vocab = hp->n_vocab;
    out->n_ctx_train = hp->n_ctx_train;
    out->n_embd = hp->n_embd;
    out->n_layer = hp->n_layer;
    out->n_head = hp->n_head;
    out->n_head_kv = hp->n_head_kv;
    out->head_dim = hp->head_dim;
    out->n_ff = hp->n_ff;
    out->n_params = model->n_params;
    out->weight_bytes = model->weight_bytes;
    out->active_weight_bytes =
        model->weight_bytes - model->expert_bytes_unused - model->gather_bytes;
    out->n_expert = hp->n_expert;
    out->n_expert_used = hp->n_expert_used;
    return REASON_OK;
}

reason_status reason_model_meta_string(const reason_model *model, const char *key, char *buf,
                                       size_t capacity, size_t *out_len) {
    RS_CHECK_ARG(model != NULL);
    RS_CHECK_ARG(key != NULL);
    const char *s;
    size_t len;
    if (!model->file) { /* a Hugging Face directory: what its files say, under the GGUF keys */
        s = strcmp(key, "general.architecture") == 0     ? model->arch_name
            : strcmp(key, "general.name") == 0           ? model->name
            : strcmp(key, "tokenizer.chat_template") == 0 ? model->chat_template
                                                          : NULL;
        if (!s) return rs_error(REASON_ERR_INVALID_ARG, "metadata '%s' is absent or not a string", key);
        return rs_copy_out(s, strlen(s), buf, capacity, out_len);
    }
    if (!gguf_get_str(model->file, key, &s, &len))
        return rs_error(REASON_ERR_INVALID_ARG, "metadata '%s' is absent or not a string", key);
    return rs_copy_out(s, len, buf, capacity, out_len);
}

reason_status reason_model_tokenizer(const reason_model *model,
                                     const reason_tokenizer **out_tokenizer) {
    RS_CHECK_ARG(model != NULL);
    RS_CHECK_ARG(out_tokenizer != NULL);
    *out_tokenizer = model->tokenizer;
    return REASON_OK;
}
