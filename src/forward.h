/* forward.h — the transformer forward pass, written once for every architecture and backend. */
#ifndef REASON_FORWARD_H
#define REASON_FORWARD_H

#include "backend.h"
#include "model.h"
#include "seq_state.h"

/* Activation buffers for up to n_batch tokens, allocated once per context on the backend. */
typedef struct forward_scratch {
    int32_t n_batch;
    int32_t n_outputs_max;
    float *x;      /* (n_batch, n_embd) residual stream */
    float *xn;     /* (n_batch, n_embd) normalised input of a block */
    float *q;      /* (n_batch, n_head * head_dim) */
    float *k;      /* (n_batch, kv_dim) */
    float *v;      /* (n_batch, kv_dim) */
    float *attn;   /* (n_batch, n_head * head_dim) attention output */
    float *gate;   /* (n_batch, n_ff) */
    float *up;     /* (n_batch, n_ff) */
    float *out;    /* (n_batch, n_embd) block output before the residual add */
    float *hidden; /* (n_outputs_max, n_embd) final hidden states of the rows that want logits */
    float *logits; /* (n_outputs_max, n_vocab) */
    /* qwen35 (NULL for other architectures) */
    float *q_gate;    /* (n_batch, n_head * head_dim) attention output gate */
    float *ssm_qkv;   /* (n_batch, conv_dim) DeltaNet projections */
    float *ssm_z;     /* (n_batch, n_v_head * d_v) */
    float *ssm_beta;  /* (n_batch, n_v_head) */
    float *ssm_alpha; /* (n_batch, n_v_head) */
    float *ssm_y;     /* (n_batch, n_v_head * d_v) DeltaNet output */
    /* mixture of experts (NULL for dense models) */
    float *router;        /* (n_batch, n_expert) router logits */
    float *shexp_logit;   /* (n_batch) the shared expert's gate logit */
    int32_t *moe_ids;     /* (n_batch, n_slot) selected experts */
    float *moe_weights;   /* (n_batch, n_slot) their weights */
    void *moe_work;       /* the moe op's scratch for n_batch tokens */
    /* gemma4 (NULL for the others) */
    float *xn2;       /* (n_batch, n_embd) the experts' normalised input beside the MLP */
    float *out2;      /* (n_batch, n_embd) the experts' output beside the MLP */
    float *ple;       /* (n_batch, n_layer * n_ple) per-layer inputs */
    float *ple_tmp;   /* (n_batch, n_layer * n_ple) their token-embedding part */
    float *ple_in;    /* (n_batch, n_ple) this layer's slice of ple */
    float *ple_gate;  /* (n_batch, n_ple) */
    int32_t *ple_rows; /* (n_batch) host: rows of ple (as rows of n_ple) of this layer */
    float **rec_conv; /* (n_batch) host: each token's recurrent conv window of the layer */
    float **rec_ssm;  /* (n_batch) host: each token's recurrent state of the layer */
} forward_scratch;

RS_INTERNAL reason_status forward_scratch_alloc(backend *be, const reason_model *model,
                                                int32_t n_batch, int32_t n_outputs_max,
                                                forward_scratch *s);
RS_INTERNAL void forward_scratch_free(backend *be, forward_scratch *s);

/* Runs n tokens placed by seq_state_prepare (batch) through the model; writes the logits of the
 * tokens listed in out_rows (n_out batch indices, ascending) to s->logits. */
RS_INTERNAL reason_status forward(const reason_model *model, backend *be, seq_state *ss,
                                  forward_scratch *s, const int32_t *tokens,
                                  const attn_batch *batch, const int32_t *out_rows, int32_t n_out);

#endif
