/* model.h — a loaded model: architecture, hyper-parameters, weights bound by name (used in place
 * from the memory map), tokenizer and chat template. Immutable after load. */
#ifndef REASON_MODEL_H
#define REASON_MODEL_H

#include "core.h"
#include "gguf.h"

enum model_arch {
    ARCH_LLAMA,
    ARCH_QWEN2,
    ARCH_QWEN3,
    ARCH_QWEN35,
    ARCH_QWEN35MOE,
    ARCH_GPTOSS,
    ARCH_GEMMA4,
};

/* The token mixer of a layer: softmax attention over paged KV (every layer of llama/qwen2/qwen3;
 * qwen35's full_attention layers, gated) or Gated DeltaNet over a recurrent slot (qwen35's
 * linear_attention layers, docs/qwen35.md). */
enum layer_kind { LAYER_ATTENTION, LAYER_DELTANET };

/* How positions rotate pairs of dimensions: NORMAL pairs (2i, 2i+1) (GGUF llama, whose q/k rows
 * the converter permuted), NEOX pairs (i, i + rot_dim/2) (qwen2, qwen3: HF's rotate_half). */
enum rope_style { ROPE_NORMAL, ROPE_NEOX };

/* A weight matrix or vector inside the mapped file. Matrices are row-major with ne[0] columns
 * (the input dimension) and ne[1] rows (the output dimension), as GGUF stores them. */
typedef struct rs_tensor {
    const char *name;
    uint32_t type;    /* enum tensor_type */
    int64_t ne[2];    /* (cols, rows); a vector has rows == 1 */
    size_t row_bytes; /* bytes of one row of ne[0] elements */
    const void *data; /* NULL when the tensor is absent (optional weights) */
} rs_tensor;

typedef struct model_hparams {
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim; /* per head, for q, k and v */
    int32_t n_ff;
    float rms_eps;
    float rope_theta;
    int32_t rope_dim;   /* leading dimensions of each head that rotate */
    int32_t rope_style; /* enum rope_style */
    float rope_pos_scale; /* positions are multiplied by this (linear scaling: 1/factor) */
    float rope_mscale;    /* rotated dimensions are multiplied by this (YaRN's attention factor) */
    int32_t n_swa;        /* sliding window of the layers that have one (gpt-oss), 0: none */
    float yarn_factor, yarn_beta_fast, yarn_beta_slow; /* YaRN from GGUF metadata */
    int32_t yarn_original_ctx;                         /* 0: no YaRN */
    /* qwen35 */
    bool attn_gated;      /* attention output * sigmoid(gate), gate rows in wq_gate */
    int32_t n_attn_layer; /* layers of kind LAYER_ATTENTION (the KV pool's layers) */
    int32_t n_rec_layer;  /* layers of kind LAYER_DELTANET (recurrent slots) */
    int32_t ssm_n_k_head, ssm_d_k; /* DeltaNet query/key heads */
    int32_t ssm_n_v_head, ssm_d_v; /* DeltaNet value heads */
    int32_t ssm_conv_kernel;       /* causal conv width */
    bool ssm_v_head_tiled;         /* value head h reads key head h % n_k_head (GGUF: llama.cpp's
                                      converter reorders value heads), else h / (n_v / n_k) (HF) */
    /* mixture of experts (qwen35moe; 0 experts: a dense feed-forward) */
    int32_t n_expert, n_expert_used;
    int32_t n_ff_exp;      /* rows of one expert's gate and up */
    int32_t n_ff_shexp;    /* the shared expert's, 0 when there is none */
    bool expert_weights_norm; /* the selected experts' softmax weights renormalised to sum 1 */
    int32_t expert_act;       /* enum expert_act (backend.h) */
    float swiglu_alpha, swiglu_limit; /* EXPERT_SWIGLU_CLAMPED (gpt-oss) */
    /* gemma4 (0 / 1 / false for the others) */
    int32_t ffn_act;        /* enum expert_act of the dense feed-forward: SWIGLU or GEGLU */
    float embd_scale;       /* token embeddings are multiplied by this (gemma: sqrt(n_embd)) */
    float logit_softcap;    /* logits = cap * tanh(logits / cap) when > 0 */
    bool attn_unscaled;     /* q·k not divided by sqrt(head_dim) (q and k are normalised) */
    int32_t n_ple;          /* per-layer embedding width (hidden_size_per_layer_input), 0: none */
    int32_t q_dim_max, kv_dim_max; /* largest n_head*head_dim, n_head_kv*head_dim of any layer */
} model_hparams;

typedef struct layer_weights {
    int32_t kind;                     /* enum layer_kind */
    int32_t kv_layer;                 /* LAYER_ATTENTION: its layer in the KV pool */
    int32_t rec_layer;                /* LAYER_DELTANET: its layer in the recurrent slot */
    rs_tensor attn_norm;              /* (n_embd) */
    rs_tensor wq, wk, wv;             /* (n_embd) -> (n_head*head_dim), (n_head_kv*head_dim) */
    rs_tensor bq, bk, bv;             /* optional biases (qwen2) */
    rs_tensor q_norm, k_norm;         /* optional per-head RMSNorm weights (head_dim) (qwen3) */
    rs_tensor wo;                     /* (n_head*head_dim) -> (n_embd) */
    rs_tensor bo;                     /* optional output bias (gpt-oss) */
    rs_tensor attn_sinks;             /* optional (n_head) sink logits (gpt-oss) */
    int32_t window;                   /* sliding window of this attention layer, 0: full */
    /* this layer's attention geometry (hparams' for uniform models; gemma4's global layers
     * differ from its local ones) */
    int32_t head_dim, n_head_kv;
    int32_t rope_dim;                 /* rotated pairs are (i, i + rope_dim/2) */
    float rope_theta;
    const float *rope_div;            /* (rope_dim/2) frequency divisors, or NULL */
    bool kv_shared;                   /* reads the K/V another layer stored (gemma4's last
                                         layers): no K/V weights, kv_layer is the source's */
    bool k_eq_v;                      /* V = v_norm(x·Wk) (gemma4 global layers) */
    bool v_norm;                      /* V = rmsnorm(V) without gain (gemma4) */
    /* gemma4's sandwich norms, parallel experts and per-layer embedding (absent: data NULL) */
    rs_tensor post_attn_norm;         /* (n_embd) on the attention output */
    rs_tensor post_ffn_norm;          /* (n_embd) on the feed-forward output */
    rs_tensor post_ffn_norm_1;        /* (n_embd) on the dense MLP output when experts run too */
    rs_tensor pre_ffn_norm_2;         /* (n_embd) input norm of the experts */
    rs_tensor post_ffn_norm_2;        /* (n_embd) on the experts' output */
    float layer_scalar;               /* the layer's output is multiplied by this (1: none) */
    rs_tensor ple_gate;               /* (n_embd) -> (n_ple) */
    rs_tensor ple_proj;               /* (n_ple) -> (n_embd) */
    rs_tensor ple_post_norm;          /* (n_embd) */
    const float *expert_scale;        /* (n_expert) per-expert weight factors, or NULL */
    rs_tensor wq_gate;                /* gated attention (qwen35): (n_embd) -> (n_head*head_dim) */
    /* Gated DeltaNet (qwen35 linear_attention layers; norms F32, ssm_a = -exp(A_log)) */
    rs_tensor ssm_qkv;                /* (n_embd) -> (conv_dim) */
    rs_tensor ssm_z;                  /* (n_embd) -> (n_v_head*d_v) output gate */
    rs_tensor ssm_beta, ssm_alpha;    /* (n_embd) -> (n_v_head) */
    rs_tensor ssm_conv1d;             /* (conv_kernel) x conv_dim rows, F32 */
    rs_tensor ssm_dt, ssm_a;          /* (n_v_head) F32 */
    rs_tensor ssm_norm;               /* (d_v) F32 */
    rs_tensor ssm_out;                /* (n_v_head*d_v) -> (n_embd) */
    rs_tensor ffn_norm;               /* (n_embd) */
    rs_tensor w_gate, w_up;           /* (n_embd) -> (n_ff) */
    rs_tensor w_down;                 /* (n_ff) -> (n_embd) */
    /* mixture of experts: the router, then per expert one view of each matrix (wherever the
     * file keeps it: a 3-D tensor, one tensor per expert, or gate and up fused) */
    rs_tensor ffn_router;             /* (n_embd) -> (n_expert) */
    rs_tensor ffn_router_b;           /* optional (n_expert) router bias (gpt-oss) */
    const float *ffn_router_norm;     /* (n_embd) gain of an RMSNorm on the router's input
                                         (gemma4: scale * n_embd^-0.5, owned), or NULL */
    const float *exp_gate_b, *exp_up_b, *exp_down_b; /* optional (n_expert, rows) biases */
    rs_tensor *exp_gate, *exp_up;     /* (n_expert [+1]) views (n_embd) -> (n_ff_exp) */
    rs_tensor *exp_down;              /* (n_expert [+1]) views (n_ff_exp) -> (n_embd); view
                                         n_expert is the shared expert (n_ff_shexp rows) */
    rs_tensor shexp_router;           /* (n_embd) -> (1): the shared expert's sigmoid gate */
} layer_weights;

/* qwen35 and its mixture-of-experts variant share everything but the feed-forward. */
static inline bool arch_is_qwen35(int32_t arch) {
    return arch == ARCH_QWEN35 || arch == ARCH_QWEN35MOE;
}

/* Per-layer attention geometry a loader read from the file for models whose layers differ
 * (gemma4); NULL in reason_model for the others (every layer takes the hparams'). */
typedef struct layer_config {
    int32_t head_dim, n_head_kv;
    int32_t rope_dim;
    float rope_theta;
    const float *rope_div; /* (rope_dim/2) frequency divisors (owned by the model), or NULL */
    int32_t kv_source;     /* the layer whose K/V this one reads (gemma4 KV sharing), or -1 */
    bool k_eq_v;           /* V = v_norm(x·Wk) */
} layer_config;

struct hf_weights;

struct reason_model {
    gguf_file *file;        /* a GGUF model; NULL for a Hugging Face directory */
    struct hf_weights *hf;  /* a Hugging Face directory (hf_model.h); NULL for GGUF */
    int32_t arch; /* enum model_arch */
    char arch_name[32];
    char name[128];
    model_hparams hp;
    rs_tensor tok_embd;    /* (n_embd) x n_vocab rows */
    rs_tensor output_norm; /* (n_embd) */
    rs_tensor output;      /* (n_embd) -> (n_vocab); equals tok_embd when tied */
    rs_tensor rope_freqs;  /* optional (rope_dim/2) divisors of each frequency (Llama 3.1+) */
    /* gemma4 per-layer embeddings (n_ple > 0) */
    rs_tensor ple_embd;        /* (n_layer * n_ple) x n_vocab rows */
    rs_tensor ple_model_proj;  /* (n_embd) -> (n_layer * n_ple) */
    rs_tensor ple_proj_norm;   /* (n_ple) */
    layer_weights *layers; /* n_layer */
    uint8_t *layer_kinds;  /* (n_layer) enum layer_kind set by the loader, or NULL: all attention */
    uint8_t *layer_swa;    /* (n_layer) 1: a sliding-window layer (window hp.n_swa), or NULL */
    layer_config *layer_cfg; /* (n_layer) or NULL */
    reason_tokenizer *tokenizer;
    char *chat_template;   /* NUL-terminated copy, or NULL */
    uint64_t n_params;
    uint64_t weight_bytes;
    uint64_t expert_bytes_unused; /* of weight_bytes: the experts a token does not read (all but
                                     n_expert_used per layer) */
    uint64_t gather_bytes;        /* of weight_bytes: tables a token reads one row of (the
                                     embedding when the output matrix is another tensor, gemma4's
                                     per-layer embedding) */
    void **owned;          /* (n_owned) buffers the loader made from the file (qwen35 GGUF: the
                              query and gate halves of attn_q; expert view tables), freed with
                              the model */
    int32_t n_owned;
};

/* Binds and checks every weight against the architecture and hparams (n_vocab is taken from the
 * embedding's rows), looking tensors up by GGUF name in m->file or, for a Hugging Face directory,
 * through m->hf. Used by both loaders. */
RS_INTERNAL reason_status model_bind_weights(reason_model *m);

/* The file or directory the weights come from (for messages). */
RS_INTERNAL const char *model_path(const reason_model *m);
/* A tensor by its GGUF name in either format, or NULL. */
RS_INTERNAL const gguf_tensor *model_find_tensor(const reason_model *m, const char *name);
/* Binds a 2-D tensor by name, checking its shape (cols, rows) and that its type can be computed;
 * an absent tensor is an error only when required (t is then zeroed). */
RS_INTERNAL reason_status model_bind_tensor(reason_model *m, rs_tensor *t, const char *name,
                                            int64_t cols, int64_t rows, bool required);
/* REASON_ERR_UNSUPPORTED unless t is absent or F32 (norms, biases: read as floats). */
RS_INTERNAL reason_status model_require_f32(const reason_model *m, const rs_tensor *t);
/* Binds a gemma4 layer (model_gemma4.c). */
RS_INTERNAL reason_status model_bind_gemma4_layer(reason_model *m, int32_t il);
/* Sets layer_cfg[].kv_source: the last n_shared layers read the K/V of the last earlier
 * non-sharing layer of their type (layer_swa). */
RS_INTERNAL reason_status model_gemma4_kv_sources(reason_model *m, int32_t n_shared);
/* Registers a buffer the model frees with itself; NULL (and p freed) when out of memory. */
RS_INTERNAL void *model_own(reason_model *m, void *p);

/* Binds layer il's mixture of experts (model_moe.c). */
RS_INTERNAL reason_status model_bind_experts(reason_model *m, int32_t il);

/* The chat template source (tokenizer.chat_template), or NULL when the model has none. */
RS_INTERNAL const char *model_chat_template(const reason_model *model);

#endif
