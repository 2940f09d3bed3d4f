/* forward.c — the decoder-only transformer, read top to bottom:
 *
 *   x = embed(tokens)
 *   for each layer:
 *       h = rmsnorm(x) · attn_norm
 *       attention layer:
 *         q, k, v = h·Wq (+bq), h·Wk (+bk), h·Wv (+bv)      per head: rmsnorm(q), rmsnorm(k) (qwen3)
 *         q, k = rope(q, pos), rope(k, pos);  store k, v in the sequence's KV blocks
 *         o = softmax(q·Kᵀ/√d) V                            causal, grouped-query
 *         o *= sigmoid(h·Wq_gate)                           gated (qwen35)
 *         x += o · Wo
 *       Gated DeltaNet layer (qwen35 linear_attention, docs/qwen35.md):
 *         x += deltanet(h·Wqkv, h·Wz, h·Wbeta, h·Walpha; the sequence's recurrent slot) · Wout
 *       h = rmsnorm(x) · ffn_norm
 *       x += (silu(h·Wgate) * (h·Wup)) · Wdown             dense, or
 *       x += Σ_selected w_e · expert_e(h)                   mixture of experts (qwen35moe)
 *   logits = rmsnorm(x) · output_norm · Woutᵀ               only for the rows that want them
 *
 * Architectures differ by the optional weights (biases, q/k norms, output gate), the rope style and
 * the kind of each layer; the backend does all arithmetic. */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Expert ids per token: the routed ones plus the shared expert. */
static int32_t moe_slots(const model_hparams *hp) {
    return hp->n_expert ? hp->n_expert_used + (hp->n_ff_shexp > 0) : 0;
}

reason_status forward_scratch_alloc(backend *be, const reason_model *m, int32_t n_batch,
                                    int32_t n_outputs_max, forward_scratch *s) {
    memset(s, 0, sizeof *s);
    const model_hparams *hp = &m->hp;
    const size_t nb = (size_t)n_batch;
    const size_t q_dim = (size_t)hp->q_dim_max, kv_dim = (size_t)hp->kv_dim_max;
    const bool parallel_experts = hp->n_expert && hp->n_ff; /* gemma4: MLP and experts */
    const size_t ple_all = (size_t)hp->n_layer * hp->n_ple;
    const size_t key_dim = (size_t)hp->ssm_n_k_head * hp->ssm_d_k,
                 value_dim = (size_t)hp->ssm_n_v_head * hp->ssm_d_v;
    s->n_batch = n_batch;
    s->n_outputs_max = n_outputs_max;
    if (hp->n_ple && !(s->ple_rows = rs_calloc(nb, sizeof *s->ple_rows, "per-layer rows"))) {
        forward_scratch_free(be, s);
        return REASON_ERR_NOMEM;
    }
    if (hp->n_rec_layer) {
        s->rec_conv = rs_calloc(nb, sizeof *s->rec_conv, "recurrent conv pointers");
        s->rec_ssm = rs_calloc(nb, sizeof *s->rec_ssm, "recurrent state pointers");
        if (!s->rec_conv || !s->rec_ssm) {
            forward_scratch_free(be, s);
            return REASON_ERR_NOMEM;
        }
    }
    struct {
        float **dst;
        size_t n;
        const char *what;
    } bufs[] = {
        {&s->x, nb * hp->n_embd, "residual stream"},
        {&s->xn, nb * hp->n_embd, "normalised activations"},
        {&s->q, nb * q_dim, "queries"},
        {&s->k, nb * kv_dim, "keys"},
        {&s->v, nb * kv_dim, "values"},
        {&s->attn, nb * q_dim, "attention output"},
        {&s->gate, nb * hp->n_ff, "feed-forward gate"},
        {&s->up, nb * hp->n_ff, "feed-forward up"},
        {&s->out, nb * hp->n_embd, "block output"},
        {&s->hidden, (size_t)n_outputs_max * hp->n_embd, "output hidden states"},
        {&s->logits, (size_t)n_outputs_max * hp->n_vocab, "logits"},
        /* qwen35 only (size 0 otherwise: not allocated) */
        {&s->q_gate, hp->attn_gated ? nb * q_dim : 0, "attention output gate"},
        {&s->ssm_qkv, hp->n_rec_layer ? nb * (2 * key_dim + value_dim) : 0, "DeltaNet q, k, v"},
        {&s->ssm_z, hp->n_rec_layer ? nb * value_dim : 0, "DeltaNet output gate"},
        {&s->ssm_beta, hp->n_rec_layer ? nb * hp->ssm_n_v_head : 0, "DeltaNet beta"},
        {&s->ssm_alpha, hp->n_rec_layer ? nb * hp->ssm_n_v_head : 0, "DeltaNet alpha"},
        {&s->ssm_y, hp->n_rec_layer ? nb * value_dim : 0, "DeltaNet output"},
        /* mixture of experts only */
        {&s->router, nb * hp->n_expert, "router logits"},
        {&s->shexp_logit, hp->n_ff_shexp ? nb : 0, "shared expert gate"},
        {&s->moe_weights, nb * moe_slots(hp), "expert weights"},
        /* gemma4 only */
        {&s->xn2, parallel_experts ? nb * hp->n_embd : 0, "expert inputs"},
        {&s->out2, parallel_experts ? nb * hp->n_embd : 0, "expert outputs"},
        {&s->ple, nb * ple_all, "per-layer inputs"},
        {&s->ple_tmp, nb * ple_all, "per-layer token embeddings"},
        {&s->ple_in, nb * hp->n_ple, "a layer's per-layer input"},
        {&s->ple_gate, nb * hp->n_ple, "per-layer input gate"},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (bufs[i].n == 0) continue;
        *bufs[i].dst = be->ops->alloc(be, bufs[i].n * sizeof(float), bufs[i].what);
        if (!*bufs[i].dst) {
            forward_scratch_free(be, s);
            return REASON_ERR_NOMEM;
        }
    }
    if (hp->n_expert) {
        const int32_t rows_max = RS_MAX(hp->n_ff_exp, hp->n_ff_shexp);
        s->moe_ids = be->ops->alloc(be, nb * moe_slots(hp) * sizeof(int32_t), "expert ids");
        s->moe_work = be->ops->alloc(
            be, moe_work_bytes(n_batch, hp->n_embd, rows_max, moe_slots(hp), hp->n_expert + 1),
            "expert scratch");
        if (!s->moe_ids || !s->moe_work) {
            forward_scratch_free(be, s);
            return REASON_ERR_NOMEM;
        }
    }
    return REASON_OK;
}

void forward_scratch_free(backend *be, forward_scratch *s) {
    float **all[] = {&s->x,      &s->xn,      &s->q,         &s->k,         &s->v,
                     &s->attn,   &s->gate,    &s->up,        &s->out,       &s->hidden,
                     &s->logits, &s->q_gate,  &s->ssm_qkv,   &s->ssm_z,     &s->ssm_beta,
                     &s->ssm_alpha, &s->ssm_y,  &s->router,  &s->shexp_logit,
                     &s->moe_weights, &s->xn2, &s->out2, &s->ple, &s->ple_tmp,
                     &s->ple_in, &s->ple_gate};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (*all[i]) be->ops->release(be, *all[i]);
        *all[i] = NULL;
    }
    if (s->moe_ids) be->ops->release(be, s->moe_ids);
    if (s->moe_work) be->ops->release(be, s->moe_work);
    s->moe_ids = NULL;
    s->moe_work = NULL;
    free(s->rec_conv);
    free(s->rec_ssm);
    free(s->ple_rows);
    s->rec_conv = s->rec_ssm = NULL;
    s->ple_rows = NULL;
}

static const float *vec(const rs_tensor *t) { return t->data ? (const float *)t->data : NULL; }

static void attention_block(const reason_model *m, backend *be, seq_state *ss, forward_scratch *s,
                            int32_t il, const attn_batch *batch) {
    const model_hparams *hp = &m->hp;
    const layer_weights *l = &m->layers[il];
    const backend_ops *op = be->ops;
    const int32_t n = batch->n_tok, hd = l->head_dim, n_kv = l->n_head_kv;
    const rope_params rp = {.head_dim = hd, .rot_dim = l->rope_dim,
                            .style = hp->rope_style, .theta = l->rope_theta,
                            .pos_scale = hp->rope_pos_scale, .mscale = hp->rope_mscale,
                            .freq_div = l->rope_div ? l->rope_div : vec(&m->rope_freqs)};

    op->rmsnorm(be, s->x, vec(&l->attn_norm), s->xn, n, hp->n_embd, hp->rms_eps);
    /* a layer that shares another's K/V computes only its queries; with k_eq_v the keys'
     * projection is the values' too (before the keys' norm and rotation) */
    const matmul_item qkv[] = {{&l->wq, vec(&l->bq), s->q},
                               {&l->wq_gate, NULL, s->q_gate}, /* gated attention (qwen35) */
                               {&l->wk, vec(&l->bk), s->k},
                               {l->k_eq_v ? &l->wk : &l->wv, vec(&l->bv), s->v}};
    if (l->kv_shared) {
        op->matmul_group(be, qkv, l->wq_gate.data ? 2 : 1, s->xn, n);
    } else if (l->wq_gate.data) {
        op->matmul_group(be, qkv, 4, s->xn, n);
    } else {
        const matmul_item plain[] = {qkv[0], qkv[2], qkv[3]};
        op->matmul_group(be, plain, 3, s->xn, n);
    }
    if (l->q_norm.data)
        op->rmsnorm(be, s->q, vec(&l->q_norm), s->q, n * hp->n_head, hd, hp->rms_eps);
    op->rope(be, s->q, n, hp->n_head, batch->pos, &rp);

    /* the layer's K/V live in the paged pool or, for a sliding-window layer, in the windowed
     * pool (blocks behind the window released), addressed by that pool's tables */
    int32_t pool_layer;
    bool windowed;
    kv_pool *pool = seq_state_layer_pool(ss, l->kv_layer, &pool_layer, &windowed);
    attn_batch lb = *batch;
    if (windowed) {
        lb.block_tables = batch->swa_block_tables;
        lb.slots = batch->swa_slots;
    }
    if (!l->kv_shared) {
        if (l->k_norm.data)
            op->rmsnorm(be, s->k, vec(&l->k_norm), s->k, n * n_kv, hd, hp->rms_eps);
        if (l->v_norm) op->rmsnorm(be, s->v, NULL, s->v, n * n_kv, hd, hp->rms_eps);
        op->rope(be, s->k, n, n_kv, batch->pos, &rp);
        op->kv_store(be, pool, pool_layer, s->k, s->v, lb.slots, n);
    }
    const attn_params ap = {.n_head = hp->n_head, .n_head_kv = n_kv, .head_dim = hd,
                            .scale = hp->attn_unscaled ? 1.0f : 1.0f / sqrtf((float)hd),
                            .window = l->window, .sinks = vec(&l->attn_sinks)};
    op->attention(be, pool, pool_layer, s->q, &lb, &ap, s->attn);
    if (l->wq_gate.data)
        op->mul_sigmoid(be, s->attn, s->q_gate, (int64_t)n * hp->n_head * hd);
    op->matmul(be, &l->wo, vec(&l->bo), s->attn, s->out, n);
    if (l->post_attn_norm.data)
        op->rmsnorm(be, s->out, vec(&l->post_attn_norm), s->out, n, hp->n_embd, hp->rms_eps);
    op->add(be, s->x, s->out, (int64_t)n * hp->n_embd);
}

/* Gated DeltaNet: each token reads and rewrites its sequence's recurrent slot for this layer. */
static void deltanet_block(const reason_model *m, backend *be, seq_state *ss, forward_scratch *s,
                           int32_t il, const attn_batch *batch) {
    const model_hparams *hp = &m->hp;
    const layer_weights *l = &m->layers[il];
    const backend_ops *op = be->ops;
    const int32_t n = batch->n_tok;
    const deltanet_params dp = {.n_k_head = hp->ssm_n_k_head, .d_k = hp->ssm_d_k,
                                .n_v_head = hp->ssm_n_v_head, .d_v = hp->ssm_d_v,
                                .conv_kernel = hp->ssm_conv_kernel,
                                .v_head_tiled = hp->ssm_v_head_tiled,
                                .eps = hp->rms_eps, .conv_w = vec(&l->ssm_conv1d),
                                .a_neg = vec(&l->ssm_a), .dt_bias = vec(&l->ssm_dt),
                                .norm_w = vec(&l->ssm_norm)};
    for (int32_t i = 0; i < n; i++)
        seq_state_recurrent(ss, batch->seq_id[i], l->rec_layer, &s->rec_conv[i], &s->rec_ssm[i]);

    op->rmsnorm(be, s->x, vec(&l->attn_norm), s->xn, n, hp->n_embd, hp->rms_eps);
    const matmul_item in_proj[] = {{&l->ssm_qkv, NULL, s->ssm_qkv},
                                   {&l->ssm_z, NULL, s->ssm_z},
                                   {&l->ssm_beta, NULL, s->ssm_beta},
                                   {&l->ssm_alpha, NULL, s->ssm_alpha}};
    op->matmul_group(be, in_proj, 4, s->xn, n);
    op->deltanet(be, &dp, s->ssm_qkv, s->ssm_z, s->ssm_beta, s->ssm_alpha, s->rec_conv,
                 s->rec_ssm, s->ssm_y, n);
    op->matmul(be, &l->ssm_out, NULL, s->ssm_y, s->out, n);
    op->add(be, s->x, s->out, (int64_t)n * hp->n_embd);
}

/* The routed experts (and a shared one) of input xn, into out: route by the router's logits
 * (of rmsnorm(x)·router_norm when the layer has that norm, else of xn), then the moe op. */
static void experts(const reason_model *m, backend *be, forward_scratch *s, int32_t il,
                    const float *xn, float *out, int32_t n) {
    const model_hparams *hp = &m->hp;
    const layer_weights *l = &m->layers[il];
    const backend_ops *op = be->ops;
    const bool shared = hp->n_ff_shexp > 0;
    const float *route_in = xn;
    if (l->ffn_router_norm) { /* gemma4: the router reads the residual under its own norm */
        op->rmsnorm(be, s->x, l->ffn_router_norm, s->xn, n, hp->n_embd, hp->rms_eps);
        route_in = s->xn;
    }
    const matmul_item routers[] = {{&l->ffn_router, vec(&l->ffn_router_b), s->router},
                                   {&l->shexp_router, NULL, s->shexp_logit}};
    op->matmul_group(be, routers, shared ? 2 : 1, route_in, n);
    op->moe_route(be, s->router, shared ? s->shexp_logit : NULL, n, hp->n_expert,
                  hp->n_expert_used, hp->expert_weights_norm, s->moe_ids, s->moe_weights);
    const moe_params mp = {.n_expert = hp->n_expert, .n_slot = moe_slots(hp),
                           .act = hp->expert_act, .gate = l->exp_gate, .up = l->exp_up,
                           .down = l->exp_down, .gate_bias = l->exp_gate_b,
                           .up_bias = l->exp_up_b, .down_bias = l->exp_down_b,
                           .expert_scale = l->expert_scale, .limit = hp->swiglu_limit,
                           .alpha = hp->swiglu_alpha};
    op->moe(be, &mp, xn, s->moe_ids, s->moe_weights, out, n, s->moe_work);
}

/* x += the feed-forward: a dense MLP (SwiGLU or GeGLU), experts instead of it (qwen35moe,
 * gpt-oss: the router picks n_expert_used per token, plus a shared expert gated by
 * sigmoid(h·w_shexp)), or both side by side, each under its own norms (gemma4). */
static void feed_forward_block(const reason_model *m, backend *be, forward_scratch *s, int32_t il,
                               int32_t n) {
    const model_hparams *hp = &m->hp;
    const layer_weights *l = &m->layers[il];
    const backend_ops *op = be->ops;
    const int64_t ne = (int64_t)n * hp->n_embd;
    op->rmsnorm(be, s->x, vec(&l->ffn_norm), s->xn, n, hp->n_embd, hp->rms_eps);
    if (!l->w_gate.data) {
        experts(m, be, s, il, s->xn, s->out, n);
    } else {
        const matmul_item gate_up[] = {{&l->w_gate, NULL, s->gate}, {&l->w_up, NULL, s->up}};
        op->matmul_group(be, gate_up, 2, s->xn, n);
        if (hp->ffn_act == EXPERT_GEGLU)
            op->geglu(be, s->gate, s->up, s->gate, (int64_t)n * hp->n_ff);
        else
            op->swiglu(be, s->gate, s->up, s->gate, (int64_t)n * hp->n_ff);
        op->matmul(be, &l->w_down, NULL, s->gate, s->out, n);
        if (l->exp_gate) { /* gemma4's experts beside the MLP, on the residual */
            op->rmsnorm(be, s->out, vec(&l->post_ffn_norm_1), s->out, n, hp->n_embd, hp->rms_eps);
            op->rmsnorm(be, s->x, vec(&l->pre_ffn_norm_2), s->xn2, n, hp->n_embd, hp->rms_eps);
            experts(m, be, s, il, s->xn2, s->out2, n);
            op->rmsnorm(be, s->out2, vec(&l->post_ffn_norm_2), s->out2, n, hp->n_embd,
                        hp->rms_eps);
            op->add(be, s->out, s->out2, ne);
        }
    }
    if (l->post_ffn_norm.data)
        op->rmsnorm(be, s->out, vec(&l->post_ffn_norm), s->out, n, hp->n_embd, hp->rms_eps);
    op->add(be, s->x, s->out, ne);
}

/* gemma4's per-layer inputs of the batch (s->ple, (n, n_layer, n_ple)): the token's row of the
 * per-layer embedding · sqrt(n_ple), plus rmsnorm(embedding · W / sqrt(n_embd)) per layer, the
 * sum / sqrt(2). */
static void per_layer_inputs(const reason_model *m, backend *be, forward_scratch *s,
                             const int32_t *tokens, int32_t n) {
    const model_hparams *hp = &m->hp;
    const backend_ops *op = be->ops;
    const int64_t all = (int64_t)n * hp->n_layer * hp->n_ple;
    op->get_rows(be, &m->ple_embd, tokens, n, s->ple_tmp);
    op->scale(be, s->ple_tmp, sqrtf((float)hp->n_ple), all);
    op->matmul(be, &m->ple_model_proj, NULL, s->x, s->ple, n);
    op->scale(be, s->ple, 1.0f / sqrtf((float)hp->n_embd), all);
    op->rmsnorm(be, s->ple, vec(&m->ple_proj_norm), s->ple, n * hp->n_layer, hp->n_ple,
                hp->rms_eps);
    op->add(be, s->ple, s->ple_tmp, all);
    op->scale(be, s->ple, 1.0f / sqrtf(2.0f), all);
}

/* x += rmsnorm(proj(gelu(x·W_gate) * the layer's per-layer input)) (gemma4). */
static void per_layer_block(const reason_model *m, backend *be, forward_scratch *s, int32_t il,
                            int32_t n) {
    const model_hparams *hp = &m->hp;
    const layer_weights *l = &m->layers[il];
    const backend_ops *op = be->ops;
    for (int32_t t = 0; t < n; t++) s->ple_rows[t] = t * hp->n_layer + il;
    op->gather_rows(be, s->ple, s->ple_rows, n, hp->n_ple, s->ple_in);
    op->matmul(be, &l->ple_gate, NULL, s->x, s->ple_gate, n);
    op->geglu(be, s->ple_gate, s->ple_in, s->ple_gate, (int64_t)n * hp->n_ple);
    op->matmul(be, &l->ple_proj, NULL, s->ple_gate, s->out, n);
    op->rmsnorm(be, s->out, vec(&l->ple_post_norm), s->out, n, hp->n_embd, hp->rms_eps);
    op->add(be, s->x, s->out, (int64_t)n * hp->n_embd);
}

reason_status forward(const reason_model *m, backend *be, seq_state *ss, forward_scratch *s,
                      const int32_t *tokens, const attn_batch *batch, const int32_t *out_rows,
                      int32_t n_out) {
    const model_hparams *hp = &m->hp;
    const backend_ops *op = be->ops;
    const int32_t n = batch->n_tok;

    op->get_rows(be, &m->tok_embd, tokens, n, s->x);
    if (hp->embd_scale != 0.0f) op->scale(be, s->x, hp->embd_scale, (int64_t)n * hp->n_embd);
    if (hp->n_ple) per_layer_inputs(m, be, s, tokens, n);
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const layer_weights *l = &m->layers[il];
        if (l->kind == LAYER_DELTANET)
            deltanet_block(m, be, ss, s, il, batch);
        else
            attention_block(m, be, ss, s, il, batch);
        feed_forward_block(m, be, s, il, n);
        if (hp->n_ple) per_layer_block(m, be, s, il, n);
        if (l->layer_scalar != 1.0f)
            op->scale(be, s->x, l->layer_scalar, (int64_t)n * hp->n_embd);
    }
    if (n_out > 0) {
        op->gather_rows(be, s->x, out_rows, n_out, hp->n_embd, s->hidden);
        op->rmsnorm(be, s->hidden, vec(&m->output_norm), s->hidden, n_out, hp->n_embd, hp->rms_eps);
        op->matmul(be, &m->output, NULL, s->hidden, s->logits, n_out);
        if (hp->logit_softcap > 0.0f)
            op->softcap(be, s->logits, hp->logit_softcap, (int64_t)n_out * hp->n_vocab);
    }
    return op->sync(be);
}
