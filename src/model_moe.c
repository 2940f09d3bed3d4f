/* model_moe.c — binding a layer's mixture of experts: the router, one view per expert of its gate,
 * up and down matrices, and the optional shared expert with its sigmoid gate.
 *
 * Files keep experts in three layouts, all bound to the same per-expert views (rs_tensor pointing
 * at that expert's rows, used in place from the mapping):
 *   - GGUF: one 3-D tensor per matrix, blk.N.ffn_{gate,up,down}_exps.weight, ne = (cols, rows,
 *     n_expert);
 *   - Hugging Face checkpoints as saved: one tensor per expert, mlp.experts.E.{gate,up,down}_proj
 *     (the loader names them blk.N.ffn_{gate,up,down}_exps.E.weight);
 *   - transformers 5's fused parameters: mlp.experts.gate_up_proj (n_expert, 2 n_ff, n_embd) —
 *     gate rows first, then up rows — and mlp.experts.down_proj (n_expert, n_embd, n_ff)
 *     (named blk.N.ffn_gate_up_exps.weight and blk.N.ffn_down_exps.weight).
 * The shared expert is stored as expert n_expert of the views: the forward pass routes every
 * token to it with weight sigmoid(x · shexp_router), so one op computes routed and shared. */
#include "model.h"

#include "tensor_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Views of a 3-D tensor's experts, rows [row0, row0 + rows) of each expert's (stride) rows. */
static reason_status bind_3d(reason_model *m, const gguf_tensor *g, rs_tensor *views,
                             int64_t cols, int64_t rows, int64_t stride, int64_t row0) {
    const int32_t n_expert = m->hp.n_expert;
    if (g->n_dims != 3 || g->ne[0] != cols || g->ne[1] != stride || g->ne[2] != n_expert)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: tensor '%s' has shape [%lld, %lld, %lld] (%d dims), expected "
                        "[%lld, %lld, %d]",
                        model_path(m), g->name, (long long)g->ne[0], (long long)g->ne[1],
                        (long long)g->ne[2], g->n_dims, (long long)cols, (long long)stride,
                        n_expert);
    const tensor_type_info *ti = tensor_type_get(g->type);
    if (!ti || !ti->supported)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s (%u), not supported",
                        model_path(m), g->name, ti ? ti->name : "unknown", g->type);
    const size_t row_bytes = tensor_row_bytes(g->type, cols);
    for (int32_t e = 0; e < n_expert; e++)
        views[e] = (rs_tensor){.name = g->name,
                               .type = g->type,
                               .ne = {cols, rows},
                               .row_bytes = row_bytes,
                               .data = (const uint8_t *)g->data +
                                       ((size_t)e * stride + row0) * row_bytes};
    m->n_params += (uint64_t)(cols * rows * n_expert);
    m->weight_bytes += (uint64_t)(rows * n_expert) * row_bytes;
    return REASON_OK;
}

/* One matrix (base: "ffn_gate", "ffn_up" or "ffn_down") of every expert of layer il. */
static reason_status bind_expert_matrix(reason_model *m, int32_t il, const char *base,
                                        rs_tensor *views, int64_t cols, int64_t rows) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s_exps.weight", il, base);
    const gguf_tensor *g = model_find_tensor(m, name);
    if (g) return bind_3d(m, g, views, cols, rows, rows, 0);
    const bool gate = strcmp(base, "ffn_gate") == 0, up = strcmp(base, "ffn_up") == 0;
    if (gate || up) {
        char fused[96];
        snprintf(fused, sizeof fused, "blk.%d.ffn_gate_up_exps.weight", il);
        if ((g = model_find_tensor(m, fused)) != NULL)
            return bind_3d(m, g, views, cols, rows, 2 * rows, up ? rows : 0);
    }
    char one[96];
    snprintf(one, sizeof one, "blk.%d.%s_exps.0.weight", il, base);
    if (!model_find_tensor(m, one))
        return rs_error(REASON_ERR_FORMAT, "%s: layer %d: expert tensor '%s' is missing",
                        model_path(m), il, name);
    for (int32_t e = 0; e < m->hp.n_expert; e++) {
        snprintf(one, sizeof one, "blk.%d.%s_exps.%d.weight", il, base, e);
        RS_TRY(model_bind_tensor(m, &views[e], one, cols, rows, true));
    }
    return REASON_OK;
}

/* The optional biases (gpt-oss): router (n_expert), experts' gate/up (n_ff_exp per expert)
 * and down (n_embd per expert), all F32. */
static reason_status bind_biases(reason_model *m, int32_t il, layer_weights *l) {
    const model_hparams *hp = &m->hp;
    rs_tensor b[3];
    static const char *const names[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    const int64_t cols[3] = {hp->n_ff_exp, hp->n_ff_exp, hp->n_embd};
    const float **dst[3] = {&l->exp_gate_b, &l->exp_up_b, &l->exp_down_b};
    char n[96];
    snprintf(n, sizeof n, "blk.%d.ffn_gate_inp.bias", il);
    RS_TRY(model_bind_tensor(m, &l->ffn_router_b, n, hp->n_expert, 1, false));
    const rs_tensor *all[4] = {&l->ffn_router_b, &b[0], &b[1], &b[2]};
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "blk.%d.%s.bias", il, names[i]);
        RS_TRY(model_bind_tensor(m, &b[i], n, cols[i], hp->n_expert, false));
        *dst[i] = b[i].data;
    }
    for (int i = 0; i < 4; i++)
        if (all[i]->data && all[i]->type != TENSOR_F32)
            return rs_error(REASON_ERR_UNSUPPORTED, "%s: tensor '%s' must be F32, file has %s",
                            model_path(m), all[i]->name, tensor_type_get(all[i]->type)->name);
    return REASON_OK;
}

reason_status model_bind_experts(reason_model *m, int32_t il) {
    const model_hparams *hp = &m->hp;
    layer_weights *l = &m->layers[il];
    const int64_t d = hp->n_embd, f = hp->n_ff_exp, fs = hp->n_ff_shexp;
    char n[96];
    snprintf(n, sizeof n, "blk.%d.ffn_gate_inp.weight", il);
    RS_TRY(model_bind_tensor(m, &l->ffn_router, n, d, hp->n_expert, true));

    void **owned = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *owned);
    if (!owned) return rs_error(REASON_ERR_NOMEM, "out of memory (expert views)");
    m->owned = owned;
    const size_t n_views = (size_t)hp->n_expert + (fs > 0); /* + the shared expert */
    rs_tensor *views = rs_calloc(3 * n_views, sizeof *views, "expert views");
    if (!views) return REASON_ERR_NOMEM;
    m->owned[m->n_owned++] = views;
    l->exp_gate = views;
    l->exp_up = views + n_views;
    l->exp_down = views + 2 * n_views;
    RS_TRY(bind_expert_matrix(m, il, "ffn_gate", l->exp_gate, d, f));
    RS_TRY(bind_expert_matrix(m, il, "ffn_up", l->exp_up, d, f));
    RS_TRY(bind_expert_matrix(m, il, "ffn_down", l->exp_down, f, d));
    RS_TRY(bind_biases(m, il, l));
    const uint64_t one_expert = (uint64_t)(l->exp_gate[0].row_bytes + l->exp_up[0].row_bytes) * f +
                                (uint64_t)l->exp_down[0].row_bytes * d;
    m->expert_bytes_unused += one_expert * (uint64_t)(hp->n_expert - hp->n_expert_used);
    if (fs == 0) return REASON_OK;
    const int32_t sh = hp->n_expert;
#define BIND_SHARED(dst, suffix, cols, rows)                                                        \
    snprintf(n, sizeof n, "blk.%d." suffix, il);                                                   \
    RS_TRY(model_bind_tensor(m, dst, n, cols, rows, true))
    BIND_SHARED(&l->exp_gate[sh], "ffn_gate_shexp.weight", d, fs);
    BIND_SHARED(&l->exp_up[sh], "ffn_up_shexp.weight", d, fs);
    BIND_SHARED(&l->exp_down[sh], "ffn_down_shexp.weight", fs, d);
    BIND_SHARED(&l->shexp_router, "ffn_gate_inp_shexp.weight", d, 1);
#undef BIND_SHARED
    return REASON_OK;
}
