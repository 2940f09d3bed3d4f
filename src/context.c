/* context.c — a model bound to one backend, one sequence state and one set of buffers, all sized
 * at creation; reason_decode validates a batch, places it in the sequence state and runs it. */
#include "core.h"

#include "backend.h"
#include "backend_cuda.h"
#include "context.h"
#include "forward.h"
#include "model.h"
#include "seq_state.h"

#include <stdlib.h>
#include <string.h>

struct reason_context {
    const reason_model *model;
    reason_context_params params;
    backend *be;
    seq_state *ss;
    forward_scratch scratch;
    int32_t *slots;          /* (n_batch) */
    const int32_t **tables;  /* (n_batch) */
    int32_t *swa_slots;      /* (n_batch) in the windowed pool; NULL without sliding layers */
    const int32_t **swa_tables; /* (n_batch) */
    int32_t *out_rows;       /* (n_outputs_max) batch index of each logits row */
    int32_t *logit_row;      /* (n_batch) logits row of each batch token, -1 when none */
    int32_t n_batch_last;    /* tokens in the last successful decode */
    uint64_t tokens_evaluated;
};

const reason_model *context_model(const reason_context *ctx) { return ctx->model; }
const reason_context_params *context_params(const reason_context *ctx) { return &ctx->params; }

void reason_context_params_default(reason_context_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->n_ctx = 4096;
    p->n_seq_max = 64;
    p->n_batch = 512;
    p->n_threads = 0;
    p->kv_type = REASON_KV_F16;
    p->kv_block_size = 16;
    p->n_outputs_max = 64;
}

/* KV blocks for the attention layers only — full ones paged, sliding-window ones in the windowed
 * pool sized for n_batch (seq_state.h); a recurrent slot per sequence for the DeltaNet layers
 * (conv window of conv_kernel-1 inputs, then n_v_head d_k×d_v matrices). The public checkpoint is
 * a forked sequence, which shares the slot until either side writes, so no slots are set aside
 * for seq_state's own checkpoints. */
static reason_status make_seq_state(reason_context *ctx, const reason_context_params *p) {
    const model_hparams *hp = &ctx->model->hp;
    const int32_t conv_dim = 2 * hp->ssm_n_k_head * hp->ssm_d_k + hp->ssm_n_v_head * hp->ssm_d_v;
    const int32_t n_kv_layer = hp->n_attn_layer ? hp->n_attn_layer : hp->n_layer;
    int32_t *layer_window = rs_calloc((size_t)n_kv_layer, sizeof(int32_t), "layer windows");
    int32_t *layer_kv_dim = rs_calloc((size_t)n_kv_layer, sizeof(int32_t), "layer K/V widths");
    reason_status st = REASON_ERR_NOMEM;
    if (!layer_window || !layer_kv_dim) goto done;
    /* per K/V layer: its width (Gemma 4's sliding and global layers differ: they go to
     * different pools) and the window its readers need — a layer reading another's K/V
     * (kv_shared) may widen it; 0 (all positions) wins over any window */
    for (int32_t i = 0; i < n_kv_layer; i++) {
        layer_kv_dim[i] = hp->n_head_kv * hp->head_dim;
        layer_window[i] = -1;
    }
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const layer_weights *l = &ctx->model->layers[il];
        if (l->kind != LAYER_ATTENTION || l->kv_layer < 0 || l->kv_layer >= n_kv_layer) continue;
        int32_t *w = &layer_window[l->kv_layer];
        if (*w < 0 || (*w > 0 && (l->window == 0 || l->window > *w))) *w = l->window;
        if (!l->kv_shared) layer_kv_dim[l->kv_layer] = l->n_head_kv * l->head_dim;
    }
    for (int32_t i = 0; i < n_kv_layer; i++) layer_window[i] = RS_MAX(layer_window[i], 0);
    const seq_state_params sp = {
        .n_layer = n_kv_layer, .kv_dim = hp->n_head_kv * hp->head_dim,
        .layer_kv_dim = layer_kv_dim, .layer_window = layer_window, .n_batch = (int32_t)p->n_batch,
        .kv_type = p->kv_type, .n_slots = (int32_t)p->n_ctx, .block_size = p->kv_block_size,
        .n_seq_max = (int32_t)p->n_seq_max, .n_rec_layer = hp->n_rec_layer,
        .rec_conv = hp->n_rec_layer ? (hp->ssm_conv_kernel - 1) * conv_dim : 0,
        .rec_ssm = hp->n_rec_layer ? hp->ssm_n_v_head * hp->ssm_d_k * hp->ssm_d_v : 0,
        .n_checkpoint_max = 0};
    st = seq_state_create(ctx->be, &sp, &ctx->ss);
done:
    free(layer_kv_dim);
    free(layer_window);
    return st;
}

reason_status reason_context_create(const reason_model *model, const reason_context_params *params,
                                    reason_context **out_ctx) {
    RS_CHECK_ARG(model != NULL);
    RS_CHECK_ARG(out_ctx != NULL);
    *out_ctx = NULL;
    reason_context_params p;
    if (params)
        p = *params;
    else
        reason_context_params_default(&p);
    if (p.n_ctx < 1 || p.n_ctx > (1u << 26) || p.n_seq_max < 1 || p.n_seq_max > 65536 ||
        p.n_batch < 1 || p.n_batch > (1u << 20) || p.kv_block_size < 1 || p.kv_block_size > 4096 ||
        p.n_outputs_max < 1 || (uint32_t)p.n_outputs_max > p.n_batch)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "context params: n_ctx %u, n_seq_max %u, n_batch %u, kv_block_size %d, "
                        "n_outputs_max %d (must be in 1..n_batch) out of range",
                        p.n_ctx, p.n_seq_max, p.n_batch, p.kv_block_size, p.n_outputs_max);
    if (p.kv_type != REASON_KV_F16 && p.kv_type != REASON_KV_F32 && p.kv_type != REASON_KV_BF16 &&
        p.kv_type != REASON_KV_Q8)
        return rs_error(REASON_ERR_INVALID_ARG, "context params: unknown kv_type %d", p.kv_type);
    if (p.precision != REASON_PRECISION_EXACT && p.precision != REASON_PRECISION_FAST)
        return rs_error(REASON_ERR_INVALID_ARG, "context params: unknown precision %d",
                        p.precision);
    if (p.unpacked_weights != REASON_UNPACKED_KEPT && p.unpacked_weights != REASON_UNPACKED_PER_STEP)
        return rs_error(REASON_ERR_INVALID_ARG, "context params: unknown unpacked_weights %d",
                        p.unpacked_weights);
    const model_hparams *hp = &model->hp;
    if (hp->head_dim > 1024)
        return rs_error(REASON_ERR_UNSUPPORTED, "head dimension %d > 1024 is not supported",
                        hp->head_dim);

    reason_context *ctx = rs_calloc(1, sizeof *ctx, "context");
    if (!ctx) return REASON_ERR_NOMEM;
    ctx->model = model;
    ctx->params = p;
    /* whole blocks: the pool holds at least n_ctx slots */
    const int32_t max_positions =
        (int32_t)(((int64_t)p.n_ctx + p.kv_block_size - 1) / p.kv_block_size * p.kv_block_size);
    /* REASON_BACKEND=cuda opts into the CUDA backend; its failure is the caller's error, never
     * a silent fall back to the CPU */
    const char *backend_name = getenv("REASON_BACKEND");
    reason_status st;
    if (backend_name && !strcmp(backend_name, "cuda"))
        st = backend_cuda_create(model, max_positions, &ctx->be);
    else if (!backend_name || !*backend_name || !strcmp(backend_name, "cpu")) {
        st = backend_cpu_create(p.n_threads, max_positions, &ctx->be);
        if (st == REASON_OK) {
            backend_cpu_set_fast_matmul(ctx->be, p.precision == REASON_PRECISION_FAST);
            /* the model's weights stay in place, unchanged, while the context lives */
            backend_cpu_keep_unpacked(ctx->be, p.unpacked_weights == REASON_UNPACKED_KEPT);
        }
    } else {
        st = rs_error(REASON_ERR_INVALID_ARG, "REASON_BACKEND=%s: expected cpu or cuda",
                      backend_name);
    }
    if (st != REASON_OK) goto fail;
    if ((st = make_seq_state(ctx, &p)) != REASON_OK) goto fail;
    if ((st = forward_scratch_alloc(ctx->be, model, (int32_t)p.n_batch, p.n_outputs_max,
                                    &ctx->scratch)) != REASON_OK)
        goto fail;
    st = REASON_ERR_NOMEM;
    ctx->slots = rs_calloc(p.n_batch, sizeof *ctx->slots, "batch slots");
    ctx->tables = rs_calloc(p.n_batch, sizeof *ctx->tables, "batch block tables");
    ctx->out_rows = rs_calloc((size_t)p.n_outputs_max, sizeof *ctx->out_rows, "output rows");
    ctx->logit_row = rs_calloc(p.n_batch, sizeof *ctx->logit_row, "logit rows");
    if (!ctx->slots || !ctx->tables || !ctx->out_rows || !ctx->logit_row) goto fail;
    if (seq_state_has_windowed(ctx->ss)) {
        ctx->swa_slots = rs_calloc(p.n_batch, sizeof *ctx->swa_slots, "windowed batch slots");
        ctx->swa_tables = rs_calloc(p.n_batch, sizeof *ctx->swa_tables, "windowed block tables");
        if (!ctx->swa_slots || !ctx->swa_tables) goto fail;
    }
    *out_ctx = ctx;
    return REASON_OK;
fail:
    reason_context_free(ctx);
    return st;
}

void reason_context_free(reason_context *ctx) {
    if (!ctx) return;
    if (ctx->be) {
        forward_scratch_free(ctx->be, &ctx->scratch);
        seq_state_free(ctx->ss);
        ctx->be->ops->destroy(ctx->be);
    }
    free(ctx->slots);
    free(ctx->tables);
    free(ctx->swa_slots);
    free(ctx->swa_tables);
    free(ctx->out_rows);
    free(ctx->logit_row);
    free(ctx);
}

reason_status reason_decode(reason_context *ctx, const reason_batch *batch) {
    RS_CHECK_ARG(ctx != NULL);
    RS_CHECK_ARG(batch != NULL);
    RS_CHECK_ARG(batch->tokens != NULL && batch->pos != NULL && batch->seq_id != NULL);
    const int32_t n = batch->n_tokens;
    if (n < 1 || (uint32_t)n > ctx->params.n_batch)
        return rs_error(REASON_ERR_INVALID_ARG, "batch of %d tokens: must be 1..n_batch (%u)", n,
                        ctx->params.n_batch);
    const int32_t n_vocab = ctx->model->hp.n_vocab;
    int32_t n_out = 0;
    for (int32_t i = 0; i < n; i++) {
        if (batch->tokens[i] < 0 || batch->tokens[i] >= n_vocab)
            return rs_error(REASON_ERR_INVALID_ARG, "batch token %d: id %d outside the vocabulary [0, %d)",
                            i, batch->tokens[i], n_vocab);
        const bool want = batch->want_logits ? batch->want_logits[i] != 0 : i == n - 1;
        if (want && n_out == ctx->params.n_outputs_max)
            return rs_error(REASON_ERR_INVALID_ARG,
                            "batch asks for logits of more than n_outputs_max (%d) tokens",
                            ctx->params.n_outputs_max);
        ctx->logit_row[i] = want ? n_out : -1;
        if (want) ctx->out_rows[n_out++] = i;
    }
    ctx->n_batch_last = 0;
    RS_TRY(seq_state_prepare(ctx->ss, batch->seq_id, batch->pos, n, ctx->slots, ctx->tables,
                             ctx->swa_slots, ctx->swa_tables));
    const attn_batch ab = {.n_tok = n, .pos = batch->pos, .block_tables = ctx->tables,
                           .slots = ctx->slots, .seq_id = batch->seq_id,
                           .swa_block_tables = ctx->swa_tables, .swa_slots = ctx->swa_slots};
    reason_status st = forward(ctx->model, ctx->be, ctx->ss, &ctx->scratch, batch->tokens, &ab,
                               ctx->out_rows, n_out);
    if (st != REASON_OK) {
        /* the batch's positions hold garbage: drop them so the sequences stay consistent */
        for (int32_t i = n - 1; i >= 0; i--)
            if (seq_state_length(ctx->ss, batch->seq_id[i]) > batch->pos[i])
                seq_state_truncate(ctx->ss, batch->seq_id[i], batch->pos[i]);
        return st;
    }
    ctx->n_batch_last = n;
    ctx->tokens_evaluated += (uint64_t)n;
    return REASON_OK;
}

reason_status reason_get_logits(reason_context *ctx, int32_t i, const float **out_logits) {
    RS_CHECK_ARG(ctx != NULL);
    RS_CHECK_ARG(out_logits != NULL);
    *out_logits = NULL;
    if (i < 0 || i >= ctx->n_batch_last)
        return rs_error(REASON_ERR_INVALID_ARG, "logits of batch token %d: the last batch had %d tokens",
                        i, ctx->n_batch_last);
    if (ctx->logit_row[i] < 0)
        return rs_error(REASON_ERR_INVALID_ARG, "batch token %d did not ask for logits", i);
    *out_logits = ctx->scratch.logits + (size_t)ctx->logit_row[i] * ctx->model->hp.n_vocab;
    return REASON_OK;
}

static reason_status check_seq(const reason_context *ctx, int32_t seq) {
    if (seq < 0 || seq >= seq_state_n_seq(ctx->ss))
        return rs_error(REASON_ERR_INVALID_ARG, "sequence id %d outside [0, %d)", seq,
                        seq_state_n_seq(ctx->ss));
    return REASON_OK;
}

reason_status reason_seq_length(const reason_context *ctx, int32_t seq, int32_t *out_len) {
    RS_CHECK_ARG(ctx != NULL);
    RS_CHECK_ARG(out_len != NULL);
    RS_TRY(check_seq(ctx, seq));
    *out_len = seq_state_length(ctx->ss, seq);
    return REASON_OK;
}

reason_status reason_seq_truncate(reason_context *ctx, int32_t seq, int32_t n_keep) {
    RS_CHECK_ARG(ctx != NULL);
    RS_TRY(check_seq(ctx, seq));
    return seq_state_truncate(ctx->ss, seq, n_keep);
}

reason_status reason_seq_free(reason_context *ctx, int32_t seq) {
    RS_CHECK_ARG(ctx != NULL);
    RS_TRY(check_seq(ctx, seq));
    return seq_state_truncate(ctx->ss, seq, 0);
}

reason_status reason_seq_fork(reason_context *ctx, int32_t parent, int32_t child) {
    RS_CHECK_ARG(ctx != NULL);
    return seq_state_fork(ctx->ss, parent, child);
}

reason_status reason_seq_checkpoint(reason_context *ctx, int32_t seq, int32_t checkpoint) {
    RS_CHECK_ARG(ctx != NULL);
    return seq_state_fork(ctx->ss, seq, checkpoint);
}

reason_status reason_seq_restore(reason_context *ctx, int32_t checkpoint, int32_t seq) {
    RS_CHECK_ARG(ctx != NULL);
    RS_TRY(check_seq(ctx, checkpoint));
    RS_TRY(check_seq(ctx, seq));
    if (checkpoint == seq)
        return rs_error(REASON_ERR_INVALID_ARG, "restore: checkpoint and sequence are both %d", seq);
    /* all or nothing: fork cannot fail once both ids are valid and distinct and seq is empty */
    RS_TRY(seq_state_truncate(ctx->ss, seq, 0));
    return seq_state_fork(ctx->ss, checkpoint, seq);
}

reason_status reason_context_get_stats(const reason_context *ctx, reason_context_stats *out) {
    RS_CHECK_ARG(ctx != NULL);
    RS_CHECK_ARG(out != NULL);
    seq_state_stats s;
    seq_state_get_stats(ctx->ss, &s);
    memset(out, 0, sizeof *out);
    out->kv_slots_total = (uint64_t)s.slots_total;
    out->kv_slots_used = (uint64_t)s.slots_used;
    out->kv_slots_peak = (uint64_t)s.slots_peak;
    out->kv_bytes = (uint64_t)(s.bytes - s.swa_bytes - s.rec_bytes);
    out->rec_slots_total = (uint64_t)s.rec_slots_total;
    out->rec_slots_used = (uint64_t)s.rec_slots_used;
    out->rec_bytes = (uint64_t)s.rec_bytes;
    out->swa_slots_total = (uint64_t)s.swa_slots_total;
    out->swa_slots_used = (uint64_t)s.swa_slots_used;
    out->swa_slots_peak = (uint64_t)s.swa_slots_peak;
    out->swa_bytes = (uint64_t)s.swa_bytes;
    out->tokens_evaluated = ctx->tokens_evaluated;
    out->unpacked_weight_bytes = backend_cpu_kept_bytes(ctx->be);
    return REASON_OK;
}
