/* model_gemma4.c — binding a Gemma 4 layer (docs/gemma4.md): attention with q/k norms and a
 * gain-less v norm (K reused as V on global layers with attention_k_eq_v; no K/V weights at all on
 * the KV-sharing last layers), sandwich norms around attention and feed-forward, the GeGLU MLP,
 * optionally experts beside it (router with its own input norm and per-expert scales), the
 * per-layer-embedding gate/projection, and the layer's output scalar. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

reason_status model_bind_gemma4_layer(reason_model *m, int32_t il) {
    const model_hparams *hp = &m->hp;
    layer_weights *l = &m->layers[il];
    const int64_t d = hp->n_embd, q_dim = (int64_t)hp->n_head * l->head_dim,
                  kv_dim = (int64_t)l->n_head_kv * l->head_dim;
    char n[96];
#define BIND(field, suffix, cols, rows, req)                                                        \
    snprintf(n, sizeof n, "blk.%d." suffix, il);                                                   \
    RS_TRY(model_bind_tensor(m, &l->field, n, cols, rows, req))
    BIND(attn_norm, "attn_norm.weight", d, 1, true);
    BIND(wq, "attn_q.weight", d, q_dim, true);
    BIND(q_norm, "attn_q_norm.weight", l->head_dim, 1, true);
    if (!l->kv_shared) {
        BIND(wk, "attn_k.weight", d, kv_dim, true);
        BIND(wv, "attn_v.weight", d, kv_dim, !l->k_eq_v);
        BIND(k_norm, "attn_k_norm.weight", l->head_dim, 1, true);
        l->v_norm = true;
    }
    BIND(wo, "attn_output.weight", q_dim, d, true);
    BIND(post_attn_norm, "post_attention_norm.weight", d, 1, true);
    BIND(ffn_norm, "ffn_norm.weight", d, 1, true);
    BIND(w_gate, "ffn_gate.weight", d, hp->n_ff, true);
    BIND(w_up, "ffn_up.weight", d, hp->n_ff, true);
    BIND(w_down, "ffn_down.weight", hp->n_ff, d, true);
    BIND(post_ffn_norm, "post_ffw_norm.weight", d, 1, true);
    rs_tensor scalar;
    snprintf(n, sizeof n, "blk.%d.layer_output_scale.weight", il);
    RS_TRY(model_bind_tensor(m, &scalar, n, 1, 1, false));
    RS_TRY(model_require_f32(m, &scalar));
    l->layer_scalar = scalar.data ? *(const float *)scalar.data : 1.0f;
    if (hp->n_expert) {
        RS_TRY(model_bind_experts(m, il));
        BIND(post_ffn_norm_1, "post_ffw_norm_1.weight", d, 1, true);
        BIND(pre_ffn_norm_2, "pre_ffw_norm_2.weight", d, 1, true);
        BIND(post_ffn_norm_2, "post_ffw_norm_2.weight", d, 1, true);
        rs_tensor router_scale, expert_scale;
        snprintf(n, sizeof n, "blk.%d.ffn_gate_inp.scale", il);
        RS_TRY(model_bind_tensor(m, &router_scale, n, d, 1, true));
        snprintf(n, sizeof n, "blk.%d.ffn_down_exps.scale", il);
        RS_TRY(model_bind_tensor(m, &expert_scale, n, hp->n_expert, 1, true));
        RS_TRY(model_require_f32(m, &router_scale));
        RS_TRY(model_require_f32(m, &expert_scale));
        /* the router reads rmsnorm(x) * scale / sqrt(n_embd): one gain */
        float *g = model_own(m, rs_aligned_alloc((size_t)d * sizeof(float), "router norm"));
        if (!g) return REASON_ERR_NOMEM;
        for (int64_t i = 0; i < d; i++)
            g[i] = ((const float *)router_scale.data)[i] / sqrtf((float)d);
        l->ffn_router_norm = g;
        l->expert_scale = expert_scale.data;
    }
    if (hp->n_ple) {
        BIND(ple_gate, "inp_gate.weight", d, hp->n_ple, true);
        BIND(ple_proj, "proj.weight", hp->n_ple, d, true);
        BIND(ple_post_norm, "post_norm.weight", d, 1, true);
    }
#undef BIND
    const rs_tensor *vectors[] = {&l->attn_norm,      &l->q_norm,         &l->k_norm,
                                  &l->post_attn_norm, &l->ffn_norm,       &l->post_ffn_norm,
                                  &l->post_ffn_norm_1, &l->pre_ffn_norm_2, &l->post_ffn_norm_2,
                                  &l->ple_post_norm};
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++)
        RS_TRY(model_require_f32(m, vectors[i]));
    return REASON_OK;
}

reason_status model_gemma4_kv_sources(reason_model *m, int32_t n_shared) {
    const int32_t n = m->hp.n_layer;
    if (n_shared < 0 || n_shared >= n)
        return rs_error(REASON_ERR_FORMAT, "%s: %d KV-sharing layers of %d", model_path(m),
                        n_shared, n);
    for (int32_t il = 0; il < n; il++) m->layer_cfg[il].kv_source = -1;
    /* the last n_shared layers read the K/V of the last earlier layer of their type */
    for (int32_t il = n - n_shared; il < n; il++) {
        int32_t src = n - n_shared - 1;
        while (src >= 0 && m->layer_swa[src] != m->layer_swa[il]) src--;
        if (src < 0)
            return rs_error(REASON_ERR_FORMAT, "%s: layer %d shares K/V but no earlier layer has "
                            "its type", model_path(m), il);
        m->layer_cfg[il].kv_source = src;
    }
    return REASON_OK;
}
