/* backend.h — the compute interface forward.c is written against: one struct of function
 * pointers per backend (cpu, later cuda). forward.c never branches on the backend. Every op of a
 * device backend has a CPU twin with the same contract; the CPU backend is the reference in tests.
 *
 * Activations are f32 row-major: a buffer "(n_tok, dim)" holds n_tok rows of dim floats. Buffers
 * passed to ops come from backend->alloc (host memory on the CPU backend). */
#ifndef REASON_BACKEND_H
#define REASON_BACKEND_H

#include "core.h"
#include "model.h"

/* The KV pool: K and V of every layer for n_blocks blocks of block_size token slots.
 * Layout of k and v: (n_layer, n_blocks, block_size, kv_dim) in `type` (enum reason_kv_type);
 * REASON_KV_Q8 keeps int8 values there and their scales in k_scale / v_scale (cpu_kv.c). With
 * k_tile > 1 the CPU pool stores K in tiles of k_tile slots, each tile (kv_dim, k_tile) —
 * position-minor, so that decode scores k_tile positions per vector; for REASON_KV_Q8, tiles of
 * K, V and the scales made for integer dot products (cpu_kv.c). */
typedef struct kv_pool {
    int32_t n_layer;
    int32_t kv_dim;
    int32_t block_size;
    int32_t n_blocks;
    int32_t type;
    size_t elem_bytes; /* bytes per value in k and v */
    size_t slot_bytes; /* bytes per (layer, slot) of K (or of V), scales included */
    int32_t k_tile;    /* slots per K tile: 1 = row-major K like V (set by kv_alloc) */
    void *k;
    void *v;
    float *k_scale, *v_scale; /* REASON_KV_Q8 only */
} kv_pool;

/* Which cached positions each token of a batch attends to: token i sees positions
 * [0, pos[i]] of its sequence, whose slots are found through block_table[i]
 * (slot of position p = block_table[i][p / block_size] * block_size + p % block_size). */
typedef struct attn_batch {
    int32_t n_tok;
    const int32_t *pos;                 /* (n_tok) */
    const int32_t *const *block_tables; /* (n_tok) pointers to the token's sequence block table */
    const int32_t *slots;               /* (n_tok) slot where token i's own K/V is stored */
    const int32_t *seq_id;              /* (n_tok) sequence of token i (its recurrent slot) */
    /* the same in the windowed pool (sliding-window layers), NULL when there is none */
    const int32_t *const *swa_block_tables;
    const int32_t *swa_slots;
} attn_batch;

/* One attention layer's geometry. Token i of a batch attends to positions
 * [max(0, pos[i] - window + 1), pos[i]] of its sequence (window 0: all of [0, pos[i]]); with sinks,
 * head h's softmax denominator gains e^(sinks[h]) (gpt-oss's learned per-head sink logit, which
 * lets a head attend to "nothing"). */
typedef struct attn_params {
    int32_t n_head, n_head_kv; /* grouped-query: head h reads KV head h / (n_head / n_head_kv) */
    int32_t head_dim;
    float scale;               /* applied to q·k */
    int32_t window;            /* sliding window in positions, 0 for full attention */
    const float *sinks;        /* (n_head) sink logits, or NULL */
} attn_params;

typedef struct rope_params {
    int32_t head_dim;
    int32_t rot_dim;       /* leading dims of each head that rotate */
    int32_t style;         /* enum rope_style */
    float theta;           /* base */
    float pos_scale;       /* position multiplier (linear scaling) */
    float mscale;          /* multiplies the rotated pairs (YaRN attention factor); 0 means 1 */
    const float *freq_div; /* optional (rot_dim/2) divisors of each frequency, or NULL */
} rope_params;

/* The Gated DeltaNet token mixer's small weights and shapes (docs/qwen35.md). conv_dim =
 * 2 * n_k_head * d_k + n_v_head * d_v: the channels of q, k, v, in that order. */
typedef struct deltanet_params {
    int32_t n_k_head, d_k;  /* query/key heads (each d_k) */
    int32_t n_v_head, d_v;  /* value heads (each d_v); a multiple of n_k_head */
    int32_t conv_kernel;    /* causal depthwise conv width (4) */
    int32_t v_head_tiled;   /* value head h reads key head: 0 h / (n_v_head / n_k_head) (HF
                               checkpoints), 1 h % n_k_head (llama.cpp's reordered GGUF) */
    float eps;              /* gated RMSNorm epsilon */
    const float *conv_w;    /* (conv_dim, conv_kernel), tap conv_kernel-1 on the newest input */
    const float *a_neg;     /* (n_v_head) -exp(A_log) */
    const float *dt_bias;   /* (n_v_head) */
    const float *norm_w;    /* (d_v) output RMSNorm gain, shared by the value heads */
} deltanet_params;

/* Head dimensions the DeltaNet op accepts (d_k, d_v); Qwen3.5 uses 128. */
#define DELTANET_MAX_HEAD_DIM 256

/* The activation between an expert's gate/up products and its down product. */
enum expert_act {
    EXPERT_SWIGLU,         /* silu(g) * u */
    EXPERT_SWIGLU_CLAMPED, /* gpt-oss: g' = min(g, limit), u' = clamp(u, ±limit),
                              g' * sigmoid(alpha * g') * (u' + 1) */
    EXPERT_GEGLU,          /* gelu_tanh(g) * u */
};

/* A layer's experts for the moe op: per expert id e, views gate[e], up[e] (n_embd) -> (rows_e)
 * and down[e] (rows_e) -> (n_embd); ids n_expert.. are experts every token uses (a shared
 * expert), with the routing op's weight. Biases (gpt-oss) are (n_expert, rows) or NULL and
 * apply to the routed experts. */
typedef struct moe_params {
    int32_t n_expert; /* routed experts (ids 0 .. n_expert-1) */
    int32_t n_slot;   /* expert ids per token in the routing: routed + shared */
    int32_t act;    /* enum expert_act */
    const rs_tensor *gate, *up, *down;
    const float *gate_bias, *up_bias, *down_bias;
    const float *expert_scale; /* (n_expert) factors on the routed experts' weights, or NULL */
    float limit, alpha; /* EXPERT_SWIGLU_CLAMPED */
} moe_params;

/* Scratch the moe op needs for n_tok tokens: the tokens of one expert gathered (n_embd), its gate
 * and up products (rows_max, the most rows of any expert), its down product (n_embd), and the
 * (token, slot) pairs sorted by expert with each expert's start (n_ids ids). */
static inline size_t moe_work_bytes(int32_t n_tok, int32_t n_embd, int32_t rows_max,
                                    int32_t n_slot, int32_t n_ids) {
    return sizeof(float) * (size_t)n_tok * (2 * (size_t)n_embd + 2 * (size_t)rows_max) +
           sizeof(int32_t) * ((size_t)n_tok * n_slot + (size_t)n_ids + 1);
}

typedef struct backend backend;

/* One product of a group that shares its input: y (n_tok, w.rows) = x · wᵀ (+ bias). */
typedef struct matmul_item {
    const rs_tensor *w;
    const float *bias; /* (w.rows) or NULL */
    float *y;
} matmul_item;

typedef struct backend_ops {
    const char *name;
    void (*destroy)(backend *be);
    void *(*alloc)(backend *be, size_t bytes, const char *what); /* NULL + error on failure */
    void (*release)(backend *be, void *ptr);

    /* out (n, n_embd) = rows ids[0..n) of the embedding table. */
    void (*get_rows)(backend *be, const rs_tensor *table, const int32_t *ids, int32_t n, float *out);
    /* y (n_rows, dim) = x / rms(x) * w (w NULL: no scale). y may equal x. */
    void (*rmsnorm)(backend *be, const float *x, const float *w, float *y, int32_t n_rows,
                    int32_t dim, float eps);
    /* y (n_tok, w.rows) = x (n_tok, w.cols) · wᵀ, then + bias (w.rows) when bias is not NULL. */
    void (*matmul)(backend *be, const rs_tensor *w, const float *bias, const float *x, float *y,
                   int32_t n_tok);
    /* The n products of items, all of the same input x (n_tok, cols), as one unit of work (q, k
     * and v; gate and up): one hand-off to the threads instead of n on the decode path. */
    void (*matmul_group)(backend *be, const matmul_item *items, int32_t n, const float *x,
                         int32_t n_tok);
    /* Rotates x (n_tok, n_head, head_dim) in place by position. */
    void (*rope)(backend *be, float *x, int32_t n_tok, int32_t n_head, const int32_t *pos,
                 const rope_params *rp);
    /* y (n) = silu(gate) * up. */
    void (*swiglu)(backend *be, const float *gate, const float *up, float *y, int64_t n);
    /* y (n) = gelu_tanh(gate) * up (gemma's feed-forward and per-layer input gate). */
    void (*geglu)(backend *be, const float *gate, const float *up, float *y, int64_t n);
    /* x (n) *= s. */
    void (*scale)(backend *be, float *x, float s, int64_t n);
    /* x (n) = cap * tanh(x / cap) (final logit soft-capping). */
    void (*softcap)(backend *be, float *x, float cap, int64_t n);
    /* dst (n, dim) = rows idx[0..n) of src (rows of dim floats). */
    void (*gather_rows)(backend *be, const float *src, const int32_t *idx, int32_t n, int32_t dim,
                        float *dst);
    /* x (n) += y. */
    void (*add)(backend *be, float *x, const float *y, int64_t n);

    /* KV pool: memory (zeroed) on the backend, converted from f32 on store. */
    reason_status (*kv_alloc)(backend *be, kv_pool *pool);
    void (*kv_free)(backend *be, kv_pool *pool);
    /* Stores k, v (n_tok, kv_dim) of layer at slots[i]. */
    void (*kv_store)(backend *be, kv_pool *pool, int32_t layer, const float *k, const float *v,
                     const int32_t *slots, int32_t n_tok);
    /* Copies every layer's K/V of block src into block dst (copy-on-write of shared blocks). */
    void (*kv_copy_block)(backend *be, kv_pool *pool, int32_t src, int32_t dst);
    /* out (n_tok, n_head*head_dim) = softmax(q·Kᵀ·scale) V over each token's visible positions
     * (attn_params: window, grouped-query heads, sinks). */
    void (*attention)(backend *be, const kv_pool *pool, int32_t layer, const float *q,
                      const attn_batch *batch, const attn_params *ap, float *out);

    /* Waits for queued work; asynchronous device errors surface here. */
    reason_status (*sync)(backend *be);

    /* Gated DeltaNet core (docs/qwen35.md): y (n_tok, n_v_head*d_v), the input of out_proj, from
     * the projections qkv (n_tok, conv_dim), z (n_tok, n_v_head*d_v), b and a (n_tok, n_v_head).
     * Token i reads and rewrites its sequence's recurrent slot: conv[i] (conv_kernel-1, conv_dim)
     * the last inputs, oldest first, and ssm[i] (n_v_head, d_k, d_v). Tokens of one sequence share
     * the pointers and come in position order; a prompt is the same call as one decode step. */
    void (*deltanet)(backend *be, const deltanet_params *p, const float *qkv, const float *z,
                     const float *b, const float *a, float *const *conv, float *const *ssm,
                     float *y, int32_t n_tok);
    /* x (n) *= sigmoid(gate) (the output gate of qwen35's full attention). */
    void (*mul_sigmoid)(backend *be, float *x, const float *gate, int64_t n);

    /* Expert routing. Per token t: the n_used experts with the largest logits (n_tok, n_expert)
     * (equal logits: the lower id first), weights p_e = softmax(logits)_e, renormalised over the
     * selected when norm (then equal to a softmax over the selected logits). With shared (n_tok)
     * not NULL, slot n_used routes to expert n_expert with weight sigmoid(shared[t]).
     * ids, weights: (n_tok, n_used + (shared != NULL)). */
    void (*moe_route)(backend *be, const float *logits, const float *shared, int32_t n_tok,
                      int32_t n_expert, int32_t n_used, int32_t norm, int32_t *ids,
                      float *weights);
    /* out (n_tok, n_embd) = Σ_slots weights[t][j] · down_e(act(gate_e·x_t, up_e·x_t)),
     * e = ids[t][j]: only the selected experts' weights are read. work: moe_work_bytes(...)
     * bytes from alloc, sized once per context for the largest batch. */
    void (*moe)(backend *be, const moe_params *p, const float *x, const int32_t *ids,
                const float *weights, float *out, int32_t n_tok, void *work);
} backend_ops;

struct backend {
    const backend_ops *ops;
};

/* REASON_PRECISION_FAST on the CPU backend: decode products with integer-type weights quantize
 * their activations to 8 bits (REASON_CPU_MATMUL=q8 in the environment forces it on). */
RS_INTERNAL void backend_cpu_set_fast_matmul(backend *be, bool on);
/* Lets the integer kernel keep weight matrices unpacked between products (cpu_qgemm_kept.h):
 * only for weights that stay in place and unchanged while the backend lives. Off by default. */
RS_INTERNAL void backend_cpu_keep_unpacked(backend *be, bool on);
/* Bytes of the weights a CPU backend keeps unpacked; 0 for other backends. */
RS_INTERNAL uint64_t backend_cpu_kept_bytes(const backend *be);
/* The CPU backend: a thread pool of n_threads (0: all cores); max_positions bounds a sequence's
 * length (sizes the attention scratch). */
RS_INTERNAL reason_status backend_cpu_create(int32_t n_threads, int32_t max_positions,
                                             backend **out);

#endif
