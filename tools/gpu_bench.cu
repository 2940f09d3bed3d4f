// gpu_bench.cu — the kernel timing table of tools/gpu-check.sh: for each op and shape, the
// median over repeats (CUDA events) of one launch, its bandwidth (bytes the op must move / time),
// that as a percentage of a measured device-to-device copy (read + write bytes / time), and for
// the GEMV the same product through cuBLAS (F32: cublasSgemm; F16/BF16: cublasGemmEx with f16/
// bf16 inputs and f32 output; quantized types are compared with cuBLAS F16 of the same shape,
// the dense format they replace). GEMV weights are filled with the byte 0x11 (a small normal
// number in every type). Then (issue "CUDA backend I"): the tensor-core GEMM (TFLOP/s, % of
// cuBLAS bf16 GEMM of the same shape), split-KV decode attention at 8K and 32K context (GB/s of
// K and V, % of copy), causal prefill attention of a 4K prompt (TFLOP/s), log_softmax and top-k
// over a 151936-entry vocabulary; these inputs are random (never zeros: METHOD.md). Prints a
// markdown table; exit 1 on any error.
#include "kernels.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <vector>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define CB(x)                                                                                      \
    do {                                                                                           \
        cublasStatus_t s_ = (x);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "%s:%d: %s: cublas status %d\n", __FILE__, __LINE__, #x, (int)s_);     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static const int WARMUP = 3, REPEAT = 25;

// Median microseconds of one call of f (which must return 0).
template <class F> static double time_us(F f) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < WARMUP; i++)
        if (f()) {
            fprintf(stderr, "launch failed\n");
            exit(1);
        }
    std::vector<float> ms(REPEAT);
    for (int i = 0; i < REPEAT; i++) {
        CK(cudaEventRecord(a));
        f();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        CK(cudaEventElapsedTime(&ms[i], a, b));
    }
    CK(cudaGetLastError());
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    std::sort(ms.begin(), ms.end());
    return 1000.0 * ms[REPEAT / 2];
}

static double copy_gbs;

static void row(const char *op, const char *shape, double us, double bytes, double ref_us) {
    const double gbs = bytes / (us * 1e3);
    printf("| %s | %s | %.2f | %.0f | %.0f%% |", op, shape, us, gbs, 100.0 * gbs / copy_gbs);
    if (ref_us > 0)
        printf(" %.2f | %.0f%% |\n", ref_us, 100.0 * ref_us / us);
    else
        printf(" | |\n");
}

static void *dmalloc(size_t n) {
    void *p;
    CK(cudaMalloc(&p, n));
    CK(cudaMemset(p, 0x11, n));
    return p;
}

// Random-ish device data (never zeros: see METHOD.md): f32 uniform in [lo, hi) by a hash.
__global__ void fill_f32_kernel(float *p, size_t n, float lo, float hi, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 2654435761u ^ seed;
        x ^= x >> 15, x *= 2246822519u, x ^= x >> 13, x *= 3266489917u, x ^= x >> 16;
        p[i] = lo + (hi - lo) * (float)(x & 0xffffff) / 16777216.0f;
    }
}
// 16-bit values (f16 or bf16 bit patterns) of small random numbers in [-1, 1).
__global__ void fill_u16_kernel(uint16_t *p, size_t n, int bf16, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 2654435761u ^ seed;
        x ^= x >> 15, x *= 2246822519u, x ^= x >> 13, x *= 3266489917u, x ^= x >> 16;
        const float f = -1.0f + 2.0f * (float)(x & 0xffffff) / 16777216.0f;
        p[i] = bf16 ? (uint16_t)(__float_as_uint(f) >> 16) : __half_as_ushort(__float2half_rn(f));
    }
}
// Q8_0 blocks: f16 scale 0.01, random int8.
__global__ void fill_q8_kernel(uint8_t *p, size_t n_blocks, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n_blocks;
         i += (size_t)gridDim.x * blockDim.x) {
        uint8_t *b = p + 34 * i;
        const uint16_t d = __half_as_ushort(__float2half_rn(0.01f));
        b[0] = (uint8_t)d, b[1] = (uint8_t)(d >> 8);
        for (int k = 0; k < 32; k++) {
            uint32_t x = (uint32_t)(32 * i + k) * 2654435761u ^ seed;
            x ^= x >> 15, x *= 2246822519u, x ^= x >> 13;
            b[2 + k] = (uint8_t)x;
        }
    }
}
static void fill_f32(float *p, size_t n, float lo, float hi) {
    fill_f32_kernel<<<1024, 256>>>(p, n, lo, hi, 12345u);
    CK(cudaGetLastError());
}
static void fill_u16(void *p, size_t n, int bf16) {
    fill_u16_kernel<<<1024, 256>>>((uint16_t *)p, n, bf16, 777u);
    CK(cudaGetLastError());
}

static void row_flops(const char *op, const char *shape, double us, double flops, double ref_us) {
    printf("| %s | %s | %.2f | %.1f TFLOP/s | |", op, shape, us, flops / (us * 1e6));
    if (ref_us > 0)
        printf(" %.2f | %.0f%% |\n", ref_us, 100.0 * ref_us / us);
    else
        printf(" | |\n");
}

// Prefill GEMM (tensor cores) vs cuBLAS bf16 (bf16 in, f32 out, f32 accumulate) of one shape.
static void bench_gemm(cublasHandle_t h) {
    struct {
        int64_t m, k, n; // tokens, cols, rows
    } shapes[] = {{512, 1536, 8960}, {512, 8960, 1536}, {4096, 4096, 4096}};
    for (auto &sh : shapes) {
        const int64_t M = sh.m, K = sh.k, N = sh.n;
        float *x, *y;
        void *w16, *wq, *x16;
        CK(cudaMalloc(&x, M * K * 4));
        CK(cudaMalloc(&y, M * N * 4));
        CK(cudaMalloc(&w16, N * K * 2));
        CK(cudaMalloc(&x16, M * K * 2));
        CK(cudaMalloc(&wq, N * (K / 32) * 34));
        fill_f32(x, M * K, -1.0f, 1.0f);
        fill_u16(x16, M * K, 1);
        fill_q8_kernel<<<1024, 256>>>((uint8_t *)wq, N * (K / 32), 99u);
        CK(cudaGetLastError());
        const float one = 1.0f, zero = 0.0f;
        const double flops = 2.0 * M * N * K;
        fill_u16(w16, N * K, 1);
        const double ref = time_us([&] {
            return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, w16,
                                CUDA_R_16BF, (int)K, x16, CUDA_R_16BF, (int)K, &zero, y,
                                CUDA_R_32F, (int)N, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS
                       ? 0
                       : 1;
        });
        char shape[64];
        snprintf(shape, sizeof shape, "%lldx%lldx%lld (tok x cols x rows)", (long long)M,
                 (long long)K, (long long)N);
        row_flops("cuBLAS bf16 GEMM (reference)", shape, ref, flops, 0);
        struct {
            int32_t type;
            const char *name;
            void *w;
            size_t row_bytes;
        } ts[] = {{30, "BF16", w16, (size_t)K * 2}, {1, "F16", w16, (size_t)K * 2},
                  {8, "Q8_0", wq, (size_t)(K / 32) * 34}};
        for (auto &t : ts) {
            if (t.type == 1)
                fill_u16(w16, N * K, 0);
            const double us = time_us([&] {
                return reason_cuda_gemm(t.type, t.w, K, N, t.row_bytes, NULL, x, y, (int32_t)M,
                                        NULL);
            });
            char op[64];
            snprintf(op, sizeof op, "gemm %s (mma.sync)", t.name);
            row_flops(op, shape, us, flops, ref);
        }
        CK(cudaFree(wq));
        CK(cudaFree(x16));
        CK(cudaFree(w16));
        CK(cudaFree(y));
        CK(cudaFree(x));
    }
}

// Attention over an f16 paged pool (block 16, identity block table): split-KV decode at long
// contexts (GB/s of K and V read once) and causal prefill of a 4K prompt (TFLOP/s).
static void bench_attention() {
    const int32_t bs = 16, n_head = 32, n_head_kv = 8, hd = 128, kv_dim = n_head_kv * hd;
    int sms = 132;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    for (int32_t ctx : {8192, 32768}) {
        for (int32_t n_seq : {1, 8}) {
            const int32_t n_blocks = n_seq * ctx / bs;
            void *k, *v;
            CK(cudaMalloc(&k, (size_t)n_blocks * bs * kv_dim * 2));
            CK(cudaMalloc(&v, (size_t)n_blocks * bs * kv_dim * 2));
            fill_u16(k, (size_t)n_blocks * bs * kv_dim, 0);
            fill_u16(v, (size_t)n_blocks * bs * kv_dim, 0);
            std::vector<int32_t> meta(2 * n_seq + n_blocks);
            for (int32_t s = 0; s < n_seq; s++) {
                meta[s] = ctx - 1;                // pos
                meta[n_seq + s] = s * (ctx / bs); // tab_off
            }
            for (int32_t i = 0; i < n_blocks; i++)
                meta[2 * n_seq + i] = i;
            int32_t *dmeta;
            CK(cudaMalloc(&dmeta, meta.size() * 4));
            CK(cudaMemcpy(dmeta, meta.data(), meta.size() * 4, cudaMemcpyHostToDevice));
            float *q, *out;
            CK(cudaMalloc(&q, (size_t)n_seq * n_head * hd * 4));
            CK(cudaMalloc(&out, (size_t)n_seq * n_head * hd * 4));
            fill_f32(q, (size_t)n_seq * n_head * hd, -1.0f, 1.0f);
            // the backend's split choice
            const int32_t n_split =
                reason_cuda_attention_splits(sms, n_seq, n_head, n_head_kv, ctx);
            float *work;
            CK(cudaMalloc(&work, reason_cuda_attention_work(n_seq, n_head, hd, (int32_t)n_split) * 4));
            reason_cuda_kv kv = {k, v, 0, 1, n_blocks, bs, kv_dim};
            reason_cuda_attn ap = {n_head, n_head_kv, hd, 0, 0.0884f, NULL};
            reason_cuda_batch b = {n_seq, dmeta, dmeta + n_seq, dmeta + 2 * n_seq};
            const double us = time_us([&] {
                return reason_cuda_attention_decode(&kv, 0, q, &b, &ap, (int32_t)n_split, work,
                                                    out, NULL);
            });
            char shape[96];
            snprintf(shape, sizeof shape, "%d seq x %dK ctx, 32/8 heads hd128 f16, %lld splits",
                     n_seq, ctx / 1024, (long long)n_split);
            row("attention decode (split-KV)", shape, us, 2.0 * n_seq * ctx * kv_dim * 2, 0);
            CK(cudaFree(work));
            CK(cudaFree(out));
            CK(cudaFree(q));
            CK(cudaFree(dmeta));
            CK(cudaFree(v));
            CK(cudaFree(k));
        }
    }
    for (int32_t hdp : {128, 64}) {
        const int32_t n = 4096, nh = hdp == 128 ? 32 : 16, nkv = 8, kvd = nkv * hdp;
        const int32_t n_blocks = n / bs, n_tiles = n / REASON_CUDA_PREFILL_ROWS;
        void *k, *v;
        CK(cudaMalloc(&k, (size_t)n * kvd * 2));
        CK(cudaMalloc(&v, (size_t)n * kvd * 2));
        fill_u16(k, (size_t)n * kvd, 0);
        fill_u16(v, (size_t)n * kvd, 0);
        std::vector<int32_t> meta(2 * n + 2 * n_tiles + n_blocks);
        for (int32_t i = 0; i < n; i++)
            meta[i] = i, meta[n + i] = 0;
        for (int32_t t = 0; t < n_tiles; t++)
            meta[2 * n + 2 * t] = t * REASON_CUDA_PREFILL_ROWS,
                          meta[2 * n + 2 * t + 1] = REASON_CUDA_PREFILL_ROWS;
        for (int32_t i = 0; i < n_blocks; i++)
            meta[2 * n + 2 * n_tiles + i] = i;
        int32_t *dmeta;
        CK(cudaMalloc(&dmeta, meta.size() * 4));
        CK(cudaMemcpy(dmeta, meta.data(), meta.size() * 4, cudaMemcpyHostToDevice));
        float *q, *out;
        CK(cudaMalloc(&q, (size_t)n * nh * hdp * 4));
        CK(cudaMalloc(&out, (size_t)n * nh * hdp * 4));
        fill_f32(q, (size_t)n * nh * hdp, -1.0f, 1.0f);
        reason_cuda_kv kv = {k, v, 0, 1, n_blocks, bs, kvd};
        reason_cuda_attn ap = {nh, nkv, hdp, 0, 1.0f / sqrtf((float)hdp), NULL};
        reason_cuda_batch b = {n, dmeta, dmeta + n, dmeta + 2 * n + 2 * n_tiles};
        const double us = time_us([&] {
            return reason_cuda_attention_prefill(&kv, 0, q, &b, &ap, dmeta + 2 * n, n_tiles, out,
                                                 NULL);
        });
        // causal: row i sees i + 1 keys; 2 products (QK, PV) of 2 flops per multiply-add
        const double flops = 4.0 * nh * hdp * ((double)n * (n + 1) / 2);
        char shape[96];
        snprintf(shape, sizeof shape, "4K causal, %d/%d heads hd%d f16", nh, nkv, hdp);
        row_flops("attention prefill (mma.sync)", shape, us, flops, 0);
        CK(cudaFree(out));
        CK(cudaFree(q));
        CK(cudaFree(dmeta));
        CK(cudaFree(v));
        CK(cudaFree(k));
    }
}

static void bench_sampling() {
    const int32_t n_vocab = 151936;
    for (int32_t rows : {1, 64}) {
        float *x, *lp;
        int32_t *idx;
        float *val;
        CK(cudaMalloc(&x, (size_t)rows * n_vocab * 4));
        CK(cudaMalloc(&lp, (size_t)rows * n_vocab * 4));
        CK(cudaMalloc(&idx, (size_t)rows * 40 * 4));
        CK(cudaMalloc(&val, (size_t)rows * 40 * 4));
        fill_f32(x, (size_t)rows * n_vocab, -10.0f, 10.0f);
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%d", rows, n_vocab);
        row("log_softmax", shape,
            time_us([&] { return reason_cuda_log_softmax(x, rows, n_vocab, 1.0f, lp, NULL, NULL); }),
            3.0 * rows * n_vocab * 4, 0);
        snprintf(shape, sizeof shape, "%dx%d k=40", rows, n_vocab);
        row("top_k", shape,
            time_us([&] { return reason_cuda_top_k(x, rows, n_vocab, 40, idx, val, NULL); }),
            4.0 * rows * n_vocab, 0);
        // on the logits themselves (negative entries never count): timing only
        snprintf(shape, sizeof shape, "%dx%d p=0.9", rows, n_vocab);
        row("top_p", shape, time_us([&] {
                return reason_cuda_top_p(x, rows, n_vocab, 0.9f, val, idx, NULL);
            }),
            32.0 * rows * n_vocab * 4, 0);
        CK(cudaFree(val));
        CK(cudaFree(idx));
        CK(cudaFree(lp));
        CK(cudaFree(x));
    }
}

// Gated DeltaNet at a Qwen3.5-35B-A3B linear-attention layer (16 key heads, 32 value heads of
// 128, conv 4): decode steps of 1 and 8 sequences, and a 512-token prompt in one sequence.
// Bytes: the recurrent states read and written once per call (the floor of the recurrence).
static void bench_deltanet() {
    const int32_t hk = 16, dk = 128, hv = 32, dv = 128, kw = 4;
    const int32_t conv_dim = 2 * hk * dk + hv * dv;
    const size_t st = (size_t)hv * dk * dv, win = (size_t)(kw - 1) * conv_dim;
    struct {
        int32_t n_seq, per_seq;
    } cases[] = {{1, 1}, {8, 1}, {1, 512}};
    float *w = (float *)dmalloc((size_t)conv_dim * kw * 4), *an = (float *)dmalloc(hv * 4),
          *dtb = (float *)dmalloc(hv * 4), *nw = (float *)dmalloc(dv * 4);
    fill_f32(w, (size_t)conv_dim * kw, -0.5f, 0.5f);
    fill_f32(an, hv, -1.0f, -0.1f);
    fill_f32(dtb, hv, -1.0f, 1.0f);
    fill_f32(nw, dv, 0.5f, 1.5f);
    const reason_cuda_dn p = {hk, dk, hv, dv, kw, 0, 1e-6f, w, an, dtb, nw};
    for (auto &c : cases) {
        const int32_t n_tok = c.n_seq * c.per_seq;
        float *qkv = (float *)dmalloc((size_t)n_tok * conv_dim * 4),
              *z = (float *)dmalloc((size_t)n_tok * hv * dv * 4),
              *ab = (float *)dmalloc((size_t)n_tok * hv * 4 * 2),
              *y = (float *)dmalloc((size_t)n_tok * hv * dv * 4),
              *co = (float *)dmalloc((size_t)n_tok * conv_dim * 4),
              *state = (float *)dmalloc((st + win) * c.n_seq * 4);
        fill_f32(qkv, (size_t)n_tok * conv_dim, -1.0f, 1.0f);
        fill_f32(z, (size_t)n_tok * hv * dv, -1.0f, 1.0f);
        fill_f32(ab, (size_t)n_tok * hv * 2, -1.0f, 1.0f);
        fill_f32(state, (st + win) * c.n_seq, -0.01f, 0.01f);
        std::vector<float *> ptrs(2 * (size_t)c.n_seq);
        std::vector<int32_t> meta((size_t)c.n_seq + 1 + n_tok);
        for (int32_t s = 0; s < c.n_seq; s++) {
            ptrs[s] = state + (st + win) * s;
            ptrs[c.n_seq + s] = ptrs[s] + win;
            meta[s] = s * c.per_seq;
        }
        meta[c.n_seq] = n_tok;
        for (int32_t t = 0; t < n_tok; t++) // sequence-major token order
            meta[c.n_seq + 1 + t] = t;
        float **dptrs;
        int32_t *dmeta;
        CK(cudaMalloc(&dptrs, ptrs.size() * sizeof(float *)));
        CK(cudaMalloc(&dmeta, meta.size() * 4));
        CK(cudaMemcpy(dptrs, ptrs.data(), ptrs.size() * sizeof(float *), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dmeta, meta.data(), meta.size() * 4, cudaMemcpyHostToDevice));
        char shape[96];
        snprintf(shape, sizeof shape, "16x128/32x128, %d seq x %d tok", c.n_seq, c.per_seq);
        row("deltanet (recurrence)", shape, time_us([&] {
                return reason_cuda_deltanet(&p, qkv, z, ab, ab + (size_t)n_tok * hv, dptrs,
                                            dptrs + c.n_seq, dmeta, dmeta + c.n_seq + 1,
                                            c.n_seq, n_tok, co, y, NULL);
            }),
            2.0 * 4.0 * st * c.n_seq, 0);
        CK(cudaFree(dmeta));
        CK(cudaFree(dptrs));
        for (float *q : {qkv, z, ab, y, co, state})
            CK(cudaFree(q));
    }
    for (float *q : {w, an, dtb, nw})
        CK(cudaFree(q));
}

// One decode token through a Qwen3.5-35B-A3B MoE layer (2048 wide, 256 experts of 512 rows,
// 8 used + a shared expert of 512, Q8_0) as backend_cuda.c's moe op runs it: routing, the ids
// copied back to the host (a synchronisation), then per used expert gather, gate and up GEMV,
// activation, down GEMV and scatter-add. Bytes: the 9 experts' weights.
static void bench_moe() {
    const int32_t n_embd = 2048, n_expert = 256, n_used = 8, rows = 512, n_slot = n_used + 1;
    const size_t rb_in = (size_t)n_embd / 32 * 34, rb_dn = (size_t)rows / 32 * 34;
    const size_t eb = rb_in * rows * 2 + rb_dn * n_embd; // one expert
    uint8_t *wts = (uint8_t *)dmalloc(eb * (n_expert + 1));
    fill_q8_kernel<<<1024, 256>>>(wts, eb * (n_expert + 1) / 34, 99u);
    CK(cudaGetLastError());
    float *logits = (float *)dmalloc(n_expert * 4), *sh = (float *)dmalloc(4),
          *wgt = (float *)dmalloc(n_slot * 4), *x = (float *)dmalloc(n_embd * 4),
          *out = (float *)dmalloc(n_embd * 4), *xe = (float *)dmalloc(n_embd * 4),
          *g = (float *)dmalloc(rows * 4), *u = (float *)dmalloc(rows * 4),
          *ye = (float *)dmalloc(n_embd * 4);
    int32_t *ids = (int32_t *)dmalloc(n_slot * 4), *pairs = (int32_t *)dmalloc(n_slot * 4);
    fill_f32(logits, n_expert, -2.0f, 2.0f);
    fill_f32(x, n_embd, -1.0f, 1.0f);
    std::vector<int32_t> order(n_slot);
    for (int32_t i = 0; i < n_slot; i++)
        order[i] = i;
    CK(cudaMemcpy(pairs, order.data(), n_slot * 4, cudaMemcpyHostToDevice));
    row("moe decode (route, sync, 9 experts)", "2048, 256x512 Q8_0, 8+1 used", time_us([&] {
            int rc = reason_cuda_moe_route(logits, sh, 1, n_expert, n_used, 1, ids, wgt, NULL);
            int32_t hid[16];
            if (!rc)
                rc = (int)cudaMemcpy(hid, ids, n_slot * 4, cudaMemcpyDeviceToHost);
            if (!rc)
                rc = (int)cudaMemsetAsync(out, 0, n_embd * 4);
            for (int32_t j = 0; j < n_slot && !rc; j++) {
                const uint8_t *e = wts + eb * (size_t)hid[j];
                rc = reason_cuda_moe_gather(x, pairs + j, 1, n_slot, n_embd, xe, NULL);
                if (!rc)
                    rc = reason_cuda_matmul(8, e, n_embd, rows, rb_in, NULL, xe, g, 1, NULL);
                if (!rc)
                    rc = reason_cuda_matmul(8, e + rb_in * rows, n_embd, rows, rb_in, NULL, xe,
                                            u, 1, NULL);
                if (!rc)
                    rc = reason_cuda_moe_act(g, u, rows, 0, 0.0f, 0.0f, NULL);
                if (!rc)
                    rc = reason_cuda_matmul(8, e + 2 * rb_in * rows, rows, n_embd, rb_dn, NULL,
                                            g, ye, 1, NULL);
                if (!rc)
                    rc = reason_cuda_moe_scatter(ye, pairs + j, wgt, 1.0f, 1, n_slot, n_embd,
                                                 out, NULL);
            }
            return rc;
        }),
        (double)eb * n_slot, 0);
    for (void *q : {(void *)wts, (void *)logits, (void *)sh, (void *)wgt, (void *)x, (void *)out,
                    (void *)xe, (void *)g, (void *)u, (void *)ye, (void *)ids, (void *)pairs})
        CK(cudaFree(q));
}

int main() {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));

    const size_t copy_bytes = (size_t)1 << 30;
    void *src = dmalloc(copy_bytes), *dst = dmalloc(copy_bytes);
    const double copy_us = time_us(
        [&] { return (int)cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice); });
    copy_gbs = 2.0 * copy_bytes / (copy_us * 1e3);
    CK(cudaFree(dst));
    CK(cudaFree(src));
    printf("device: %s; device-to-device copy of 1 GiB: %.0f GB/s (read + write)\n\n", prop.name,
           copy_gbs);
    printf("| op | shape | time (us, median of %d) | GB/s | %% of copy | cuBLAS (us) | %% of "
           "cuBLAS |\n",
           REPEAT);
    printf("|----|-------|------|------|-----------|-------------|-------------|\n");

    cublasHandle_t h;
    CB(cublasCreate(&h));

    // GEMV: (rows, cols) of typical 1.5B–8B decoder matrices and an lm_head.
    struct {
        int64_t rows, cols;
    } shapes[] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {151936, 1536}};
    struct {
        int32_t type;
        const char *name;
        int elem_bits;
        int block;
        int block_bytes;
    } types[] = {{0, "F32", 32, 1, 4},      {1, "F16", 16, 1, 2},     {30, "BF16", 16, 1, 2},
                 {8, "Q8_0", 0, 32, 34},    {2, "Q4_0", 0, 32, 18},   {3, "Q4_1", 0, 32, 20},
                 {12, "Q4_K", 0, 256, 144}, {14, "Q6_K", 0, 256, 210}};
    const int ntoks[] = {1, 4, 8};
    for (auto &sh : shapes) {
        const int64_t rows = sh.rows, cols = sh.cols;
        float *x = (float *)dmalloc((size_t)8 * cols * 4),
              *y = (float *)dmalloc((size_t)8 * rows * 4);
        void *x16 = dmalloc((size_t)8 * cols * 2);
        void *w16 = dmalloc((size_t)rows * cols * 2);
        for (auto &ty : types) {
            const size_t row_bytes = (size_t)(cols / ty.block) * ty.block_bytes;
            const size_t wbytes = row_bytes * rows;
            void *w = ty.type == 0 ? dmalloc(wbytes)
                                   : (ty.type == 1 || ty.type == 30 ? w16 : dmalloc(wbytes));
            for (int nt : ntoks) {
                double us = time_us([&] {
                    return reason_cuda_matmul(ty.type, w, cols, rows, row_bytes, NULL, x, y, nt,
                                              NULL);
                });
                const float one = 1.0f, zero = 0.0f;
                double ref = time_us([&] {
                    cublasStatus_t s;
                    if (ty.type == 0)
                        s = cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, nt, (int)cols, &one,
                                        (const float *)w, (int)cols, x, (int)cols, &zero, y,
                                        (int)rows);
                    else {
                        const cudaDataType dt = ty.type == 30 ? CUDA_R_16BF : CUDA_R_16F;
                        s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, nt, (int)cols,
                                         &one, w16, dt, (int)cols, x16, dt, (int)cols, &zero, y,
                                         CUDA_R_32F, (int)rows, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT);
                    }
                    return s == CUBLAS_STATUS_SUCCESS ? 0 : 1;
                });
                char op[64], shape[64];
                snprintf(op, sizeof op, "matmul %s%s", ty.name,
                         ty.block > 1 ? " (cuBLAS: F16)" : "");
                snprintf(shape, sizeof shape, "%lldx%lld ntok=%d", (long long)rows, (long long)cols,
                         nt);
                row(op, shape, us, (double)wbytes + 4.0 * nt * (cols + rows), ref);
            }
            if (w != w16)
                CK(cudaFree(w));
        }
        CK(cudaFree(w16));
        CK(cudaFree(x16));
        CK(cudaFree(y));
        CK(cudaFree(x));
    }

    const int64_t big = (int64_t)1 << 24;
    float *a = (float *)dmalloc(big * 4), *b = (float *)dmalloc(big * 4),
          *c = (float *)dmalloc(big * 4);
    CK(cudaMemset(a, 0, big * 4));
    CK(cudaMemset(b, 0, big * 4));
    for (int64_t n : {(int64_t)4096, (int64_t)14336 * 8, big}) {
        char shape[64];
        snprintf(shape, sizeof shape, "n=%lld", (long long)n);
        row("add", shape, time_us([&] { return reason_cuda_add(a, b, n, NULL); }), 12.0 * n, 0);
        row("swiglu", shape, time_us([&] { return reason_cuda_swiglu(a, b, c, n, NULL); }),
            12.0 * n, 0);
        row("mul_sigmoid", shape, time_us([&] { return reason_cuda_mul_sigmoid(a, b, n, NULL); }),
            12.0 * n, 0);
    }
    struct {
        int32_t rows, dim;
    } norms[] = {{1, 4096}, {64, 4096}, {1024, 4096}, {32, 128}, {4096, 128}};
    for (auto &nm : norms) {
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%d", nm.rows, nm.dim);
        row("rmsnorm", shape,
            time_us([&] { return reason_cuda_rmsnorm(a, b, c, nm.rows, nm.dim, 1e-6f, NULL); }),
            8.0 * nm.rows * nm.dim + 4.0 * nm.dim, 0);
    }
    int32_t *pos;
    CK(cudaMalloc(&pos, 4096 * 4));
    CK(cudaMemset(pos, 0, 4096 * 4));
    struct {
        int32_t n_tok, n_head, head_dim, neox;
    } ropes[] = {{1, 32, 128, 0}, {1, 32, 128, 1}, {512, 32, 128, 1}};
    for (auto &r : ropes) {
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%dx%d %s", r.n_tok, r.n_head, r.head_dim,
                 r.neox ? "neox" : "normal");
        row("rope", shape, time_us([&] {
                return reason_cuda_rope(a, r.n_tok, r.n_head, pos, r.head_dim, r.head_dim, r.neox,
                                        1e6f, 1.0f, 1.0f, NULL, NULL);
            }),
            8.0 * r.n_tok * r.n_head * r.head_dim, 0);
    }
    CK(cudaFree(pos));
    CK(cudaFree(c));
    CK(cudaFree(b));
    CK(cudaFree(a));

    bench_gemm(h);
    bench_attention();
    bench_sampling();
    bench_deltanet();
    bench_moe();
    CB(cublasDestroy(h));
    CK(cudaDeviceSynchronize());
    return 0;
}
