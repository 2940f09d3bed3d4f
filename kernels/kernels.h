/* kernels.h — extern "C" launchers of the CUDA kernels, called by backend_cuda.c and the tests.
 * C callers need no CUDA header: streams travel as void * (a cudaStream_t; NULL is the default
 * stream), every array argument is device memory. Launchers return 0 when the work was queued,
 * a cudaError_t value when the launch failed, or REASON_CUDA_UNSUPPORTED for a type or shape
 * the kernel lacks; faults inside kernels surface at reason_cuda_sync. Nothing here prints or
 * exits. */
#ifndef REASON_KERNELS_H
#define REASON_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REASON_CUDA_UNSUPPORTED (-1)

/* --- device.cu: discovery and the little memory management the tests and the backend need --- */
/* Number of CUDA devices visible, or 0 when the driver or a device is missing. */
int reason_cuda_device_count(void);
void *reason_cuda_malloc(size_t bytes); /* NULL on failure */
/* Managed (unified) memory: one address valid on the host and the device; NULL on failure.
 * Freed with reason_cuda_free. */
void *reason_cuda_malloc_managed(size_t bytes);
void reason_cuda_free(void *p);
int reason_cuda_upload(void *dst, const void *src, size_t bytes);   /* host -> device */
int reason_cuda_download(void *dst, const void *src, size_t bytes); /* device -> host */
int reason_cuda_sync(void);                                         /* the whole device */
int reason_cuda_memset(void *dst, int value, size_t bytes);
/* Pinned (page-locked) host memory, readable by the host and writable by copies; NULL on failure. */
void *reason_cuda_host_alloc(size_t bytes);
void reason_cuda_host_free(void *p);
/* Stream-ordered copies on the default stream (host source may be pageable: it is consumed before
 * the call returns). */
int reason_cuda_upload_async(void *dst, const void *src, size_t bytes, void *stream);
int reason_cuda_download_async(void *dst, const void *src, size_t bytes, void *stream);
int reason_cuda_stream_sync(void *stream);
/* Clears and returns the last launch/runtime error (0 when none). */
int reason_cuda_last_error(void);
/* Multiprocessor count of the current device (0 when unknown). */
int reason_cuda_sm_count(void);
const char *reason_cuda_error_string(int err);

/* --- elementwise.cu (flat f32 vectors; n any size) --- */
int reason_cuda_add(float *x, const float *y, int64_t n, void *stream);           /* x += y */
int reason_cuda_swiglu(const float *gate, const float *up, float *out, int64_t n, /* silu*up */
                       void *stream);
int reason_cuda_mul_sigmoid(float *x, const float *gate, int64_t n, void *stream);
int reason_cuda_geglu(const float *gate, const float *up, float *out, int64_t n, /* gelu_tanh*up */
                      void *stream);
int reason_cuda_scale(float *x, float s, int64_t n, void *stream);     /* x *= s */
int reason_cuda_softcap(float *x, float cap, int64_t n, void *stream); /* cap*tanh(x/cap) */

/* --- deltanet.cu: Gated DeltaNet (src/backend.h deltanet, CPU twin src/cpu_deltanet.c) --- */
/* Sequences of a batch: sequence s owns tokens tok[seq_start[s] .. seq_start[s+1]) (batch
 * indices in position order), its conv window conv[s] (conv_kernel-1, conv_dim) and state
 * ssm[s] (n_v_head, d_k, d_v), all device memory. */
typedef struct reason_cuda_dn {
    int32_t n_k_head, d_k, n_v_head, d_v, conv_kernel, v_head_tiled;
    float eps;
    const float *conv_w, *a_neg, *dt_bias, *norm_w;
} reason_cuda_dn;
/* conv_out must hold n_tok * conv_dim floats (scratch). d_k, d_v <= 256, conv_kernel <= 8. */
int reason_cuda_deltanet(const reason_cuda_dn *p, const float *qkv, const float *z, const float *b,
                         const float *a, float *const *conv, float *const *ssm,
                         const int32_t *seq_start, const int32_t *tok, int32_t n_seq,
                         int32_t n_tok, float *conv_out, float *y, void *stream);

/* --- moe.cu: expert routing and the pieces of the experts' feed-forward --- */
/* Per token: top n_used of logits (n_tok, n_expert) (ties: lower id), softmax weights,
 * renormalised when norm; shared != NULL adds slot n_used = expert n_expert, weight
 * sigmoid(shared[t]). n_expert <= 1024. */
int reason_cuda_moe_route(const float *logits, const float *shared, int32_t n_tok,
                          int32_t n_expert, int32_t n_used, int32_t norm, int32_t *ids,
                          float *weights, void *stream);
/* xe (n, dim) = rows pairs[i] / n_slot of x. */
int reason_cuda_moe_gather(const float *x, const int32_t *pairs, int32_t n, int32_t n_slot,
                           int32_t dim, float *xe, void *stream);
/* g (n, rows) = act(g, u): act 0 swiglu, 1 clamped swiglu (limit, alpha), 2 geglu. */
int reason_cuda_moe_act(float *g, const float *u, int64_t n, int32_t act, float limit,
                        float alpha, void *stream);
/* out[pairs[i] / n_slot] += weights[pairs[i]] * scale * ye[i] for i < n (rows of dim); pairs
 * of one call name distinct tokens. */
int reason_cuda_moe_scatter(const float *ye, const int32_t *pairs, const float *weights,
                            float scale, int32_t n, int32_t n_slot, int32_t dim, float *out,
                            void *stream);

/* --- norm_rope.cu --- */
/* y (n_rows, dim) = x / rms(x) * w (w NULL: no scale); y may equal x. */
int reason_cuda_rmsnorm(const float *x, const float *w, float *y, int32_t n_rows, int32_t dim,
                        float eps, void *stream);
/* x (n_tok, n_head, head_dim) rotated in place; pos (n_tok); freq_div (rot_dim/2) or NULL;
 * neox: 0 pairs (2i, 2i+1), 1 pairs (i, i + rot_dim/2); mscale multiplies the rotated pairs
 * (YaRN attention factor; 0 means 1). */
int reason_cuda_rope(float *x, int32_t n_tok, int32_t n_head, const int32_t *pos, int32_t head_dim,
                     int32_t rot_dim, int32_t neox, float theta, float pos_scale, float mscale,
                     const float *freq_div, void *stream);

/* --- matmul.cu --- */
/* y (n_tok, rows) = x (n_tok, cols) · Wᵀ (+ bias (rows) when not NULL); W rows row_bytes apart
 * in `type` (GGML numbering, enum tensor_type). */
int reason_cuda_matmul(int32_t type, const void *w, int64_t cols, int64_t rows, size_t row_bytes,
                       const float *bias, const float *x, float *y, int32_t n_tok, void *stream);
/* Nonzero when reason_cuda_matmul has a kernel for type. */
int reason_cuda_matmul_supported(int32_t type);

/* --- matmul_gemm.cu: the tensor-core GEMM reason_cuda_matmul uses above REASON_CUDA_GEMV_MAX_TOK
 * tokens; same contract as reason_cuda_matmul, for F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K weights
 * with cols a multiple of 32 (256 for the K-quants) and x 16-byte aligned; anything else answers
 * REASON_CUDA_UNSUPPORTED (the caller then uses the GEMV). Products in f16 (x rounded to f16,
 * weights converted) with f32 accumulation. */
#define REASON_CUDA_GEMV_MAX_TOK 8
int reason_cuda_gemm(int32_t type, const void *w, int64_t cols, int64_t rows, size_t row_bytes,
                     const float *bias, const float *x, float *y, int32_t n_tok, void *stream);
/* Nonzero when reason_cuda_gemm takes this type and shape (x alignment aside). */
int reason_cuda_gemm_supported(int32_t type, int64_t cols);

/* --- embed.cu --- */
/* out (n, cols) = rows ids[0..n) of table (rows row_bytes apart in `type`), dequantized to f32.
 * Types: those of reason_cuda_matmul. */
int reason_cuda_get_rows(int32_t type, const void *table, int64_t cols, size_t row_bytes,
                         const int32_t *ids, int32_t n, float *out, void *stream);
/* dst (n, dim) = rows idx[0..n) of src (rows of dim floats). */
int reason_cuda_gather_rows(const float *src, const int32_t *idx, int32_t n, int32_t dim,
                            float *dst, void *stream);

/* --- attention.cu: the paged KV pool (src/backend.h kv_pool) and attention over it --- */
/* The pool: k and v (n_layer, n_blocks, block_size, kv_dim) in `type` (enum reason_kv_type:
 * 0 F16, 1 F32, 2 BF16). */
typedef struct reason_cuda_kv {
    void *k, *v;
    int32_t type, n_layer, n_blocks, block_size, kv_dim;
} reason_cuda_kv;
/* One attention layer's geometry (src/backend.h attn_params); sinks (n_head) device or NULL. */
typedef struct reason_cuda_attn {
    int32_t n_head, n_head_kv, head_dim, window;
    float scale;
    const float *sinks;
} reason_cuda_attn;
/* Where a batch's tokens look: token i is at position pos[i], its sequence's block table starts
 * at tables + tab_off[i] (slot of position p: tables[tab_off[i] + p / block_size] * block_size
 * + p % block_size). All device memory. */
typedef struct reason_cuda_batch {
    int32_t n_tok;
    const int32_t *pos, *tab_off, *tables;
} reason_cuda_batch;

/* Stores k, v (n_tok, kv_dim) f32 of layer at slots[i] (device), converted to the pool type. */
int reason_cuda_kv_store(const reason_cuda_kv *kv, int32_t layer, const float *k, const float *v,
                         const int32_t *slots, int32_t n_tok, void *stream);
/* Copies every layer's K and V of block src into block dst. */
int reason_cuda_kv_copy_block(const reason_cuda_kv *kv, int32_t src, int32_t dst, void *stream);
/* Split-KV ("flash-decoding") attention: out (n_tok, n_head*head_dim) f32 from q (same shape),
 * each token's visible positions cut into n_split pieces; work must hold
 * reason_cuda_attention_work(n_tok, n_head, head_dim, n_split) floats. Any head_dim <= 256. */
int reason_cuda_attention_decode(const reason_cuda_kv *kv, int32_t layer, const float *q,
                                 const reason_cuda_batch *b, const reason_cuda_attn *ap,
                                 int32_t n_split, float *work, float *out, void *stream);
size_t reason_cuda_attention_work(int32_t n_tok, int32_t n_head, int32_t head_dim,
                                  int32_t n_split);
/* The split count for n_tok tokens whose longest visible range is `longest` positions on a
 * device of n_sm multiprocessors: at most one wave of 8 blocks per multiprocessor (the lane
 * kernel's residency at head_dim 128; memory latency needs many blocks, a partial second wave
 * costs a whole one), splits of >= 128 positions, <= 128. */
int32_t reason_cuda_attention_splits(int32_t n_sm, int32_t n_tok, int32_t n_head,
                                     int32_t n_head_kv, int32_t longest);
/* Causal prefill flash attention on tensor cores: tiles (n_tiles, 2) device int32 pairs (first
 * token, count <= REASON_CUDA_PREFILL_ROWS) of consecutive batch tokens that share one block
 * table; every token in exactly one tile. head_dim 64, 96 or 128, else REASON_CUDA_UNSUPPORTED. */
#define REASON_CUDA_PREFILL_ROWS 64
int reason_cuda_attention_prefill(const reason_cuda_kv *kv, int32_t layer, const float *q,
                                  const reason_cuda_batch *b, const reason_cuda_attn *ap,
                                  const int32_t *tiles, int32_t n_tiles, float *out, void *stream);
int reason_cuda_attention_prefill_supported(int32_t head_dim);

/* --- sample.cu: on-device helpers of sampling --- */
/* logp (n_rows, n) = log_softmax(x / temperature); probs (same shape, or NULL) = its exp. */
int reason_cuda_log_softmax(const float *x, int32_t n_rows, int32_t n, float temperature,
                            float *logp, float *probs, void *stream);
/* The k (<= 1024) largest values of each row of x (n_rows, n), descending, ties by lower index:
 * idx, val (n_rows, k). k > n: the rest of each output row is (-1, -inf). */
int reason_cuda_top_k(const float *x, int32_t n_rows, int32_t n, int32_t k, int32_t *idx,
                      float *val, void *stream);
/* Nucleus cut of each row of probs (n_rows, n), p in (0, 1]: thresh = the largest T with
 * Σ_{x >= T} x >= p, count = how many x >= T (ties at T all counted). */
int reason_cuda_top_p(const float *probs, int32_t n_rows, int32_t n, float p, float *thresh,
                      int32_t *count, void *stream);

#ifdef __cplusplus
}
#endif

#endif
