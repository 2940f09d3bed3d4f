// deltanet.cu — the Gated DeltaNet op (src/backend.h deltanet; CPU twin src/cpu_deltanet.c,
// docs/qwen35.md), as the per-token recurrence only (no chunked form on the GPU yet).
//
// Math, per sequence and token t (in position order), channel c of conv_dim, value head h
// (key head kh = v_head_tiled ? h % n_k_head : h / (n_v_head / n_k_head)):
//   c_t = silu(Σ_j conv_w[c][j] · (window ++ qkv_t)[j])      causal depthwise conv, kw taps
//   q, k = l2norm(q) / sqrt(d_k), l2norm(k)                  (eps 1e-6 inside the sqrt)
//   beta = sigmoid(b_t[h]);  decay = exp(a_neg[h] · softplus(a_t[h] + dt_bias[h]))
//   S = decay S;  v' = beta (v − Sᵀ k);  S += k ⊗ v';  o = Sᵀ q
//   y_t[h] = rmsnorm(o) · norm_w · silu(z_t[h])
// Two kernels on one stream:
//   dn_conv  — one thread per (channel, sequence): runs the sequence's tokens through the conv
//              with the window in registers, writes silu(conv) of every token into conv_out
//              (n_tok, conv_dim) and the slid window back to the sequence's slot.
//   dn_recur — one block of 512 threads per (value head, sequence); the state stays in
//              registers for the whole call: column j of S (columns of the delta rule are
//              independent; only the gated RMSNorm couples them, a block reduction) is held by
//              P adjacent lanes, each with rows part + P m, their sums over rows P-lane shuffles;
//              q and k of the token in shared memory, normalised lazily (their l2 norms are
//              block reductions applied as factors). S is read once and written once per call,
//              whatever the number of tokens. ptxas (sm_90): 96 registers, no spill at
//              d_k = d_v = 128 (P = 4, 32 rows per thread); d_k = 256 spills (rare shape).
// Shapes: d_k, d_v <= 256, conv_kernel <= 8.
// Last measured: H100, 2026-11-27 (gpu_bench, 16x128/32x128 heads): decode 1 sequence 25 µs, 8
//             sequences 40 µs (28% of the copy bandwidth); a 512-token prompt 5.1 ms (token by
//             token: the chunked form is the next step).
#include "common.cuh"
#include "kernels.h"

namespace {

constexpr int DN_MAX_KW = 8;

__device__ __forceinline__ float softplus_f(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

__global__ void dn_conv(const float *__restrict__ qkv, const float *__restrict__ conv_w,
                        float *const *conv, const int32_t *seq_start, const int32_t *tok,
                        int32_t conv_dim, int32_t kw, float *__restrict__ conv_out) {
    const int32_t ch = blockIdx.x * blockDim.x + threadIdx.x, s = blockIdx.y;
    if (ch >= conv_dim)
        return;
    float *win = conv[s];
    float w[DN_MAX_KW], h[DN_MAX_KW];
#pragma unroll
    for (int j = 0; j < DN_MAX_KW; j++) {
        w[j] = j < kw ? conv_w[(size_t)ch * kw + j] : 0.0f;
        h[j] = j < kw - 1 ? win[(size_t)j * conv_dim + ch] : 0.0f;
    }
    for (int32_t i = seq_start[s]; i < seq_start[s + 1]; i++) {
        const int32_t t = tok[i];
        const float u = qkv[(size_t)t * conv_dim + ch];
        float acc = 0.0f;
#pragma unroll
        for (int j = 0; j < DN_MAX_KW; j++)
            if (j == kw - 1)
                acc = w[j] * u;
#pragma unroll
        for (int j = 0; j < DN_MAX_KW - 1; j++)
            if (j < kw - 1)
                acc += w[j] * h[j];
        conv_out[(size_t)t * conv_dim + ch] = silu(acc);
#pragma unroll
        for (int j = 0; j < DN_MAX_KW - 1; j++)
            if (j < kw - 2)
                h[j] = h[j + 1];
            else if (j == kw - 2)
                h[j] = u;
    }
#pragma unroll
    for (int j = 0; j < DN_MAX_KW - 1; j++)
        if (j < kw - 1)
            win[(size_t)j * conv_dim + ch] = h[j];
}

// Thread t of DN_THREADS: column j = t / P of S, rows i = part + P m (part = t % P, m < PER);
// the P threads of a column are adjacent lanes of one warp, so its sums over rows are P-lane
// shuffles. P = DN_THREADS / (d_v rounded up to a power of two, at least 16), PER >= d_k / P:
// at Qwen3.5's 128 x 128, P = 4 and 32 state floats per thread.
constexpr int DN_THREADS = 512;

template <int PER>
__global__ __launch_bounds__(DN_THREADS) void dn_recur(reason_cuda_dn p, int P,
                                                       const float *__restrict__ conv_out,
                                                       const float *__restrict__ z,
                                                       const float *__restrict__ b,
                                                       const float *__restrict__ a,
                                                       float *const *ssm, const int32_t *seq_start,
                                                       const int32_t *tok, float *__restrict__ y) {
    __shared__ float qs[256], ks[256], red[32];
    const int32_t h = blockIdx.x, s = blockIdx.y, tid = threadIdx.x;
    const int32_t j = tid / P, part = tid % P;
    const int32_t dk = p.d_k, dv = p.d_v, hk = p.n_k_head, hv = p.n_v_head;
    const int32_t key_dim = hk * dk, conv_dim = 2 * key_dim + hv * dv;
    const int32_t kh = p.v_head_tiled ? h % hk : h / (hv / hk);
    float *S = ssm[s] + (size_t)h * dk * dv;
    const bool col = j < dv;
    float st[PER];
#pragma unroll
    for (int m = 0; m < PER; m++) {
        const int32_t i = part + P * m;
        st[m] = col && i < dk ? S[(size_t)i * dv + j] : 0.0f;
    }
    const float qscale = 1.0f / sqrtf((float)dk);
    const float an = p.a_neg[h], dtb = p.dt_bias[h], nw = col ? p.norm_w[j] : 0.0f;
    for (int32_t n = seq_start[s]; n < seq_start[s + 1]; n++) {
        const int32_t t = tok[n];
        const float *c = conv_out + (size_t)t * conv_dim;
        float sq = 0.0f, sk = 0.0f;
        for (int32_t i = tid; i < dk; i += blockDim.x) {
            const float qv = c[kh * dk + i], kv = c[key_dim + kh * dk + i];
            qs[i] = qv, ks[i] = kv;
            sq += qv * qv, sk += kv * kv;
        }
        const float ssq = block_sum(sq, red); // barriers: qs/ks written before they are read
        const float ssk = block_sum(sk, red);
        const float fq = qscale / sqrtf(ssq + 1e-6f), fk = 1.0f / sqrtf(ssk + 1e-6f);
        const float beta = sigmoid(b[(size_t)t * hv + h]);
        const float decay = expf(an * softplus_f(a[(size_t)t * hv + h] + dtb));
        // o = (decay S)ᵀ k over this thread's rows, then over the column's P lanes
        float o = 0.0f;
#pragma unroll
        for (int m = 0; m < PER; m++) {
            const int32_t i = part + P * m;
            if (i < dk) {
                st[m] *= decay;
                o += st[m] * ks[i];
            }
        }
        for (int off = P >> 1; off > 0; off >>= 1)
            o += __shfl_xor_sync(0xffffffffu, o, off);
        const float vin = col ? c[2 * key_dim + h * dv + j] : 0.0f;
        const float vv = beta * (vin - o * fk);
        float o2 = 0.0f;
#pragma unroll
        for (int m = 0; m < PER; m++) {
            const int32_t i = part + P * m;
            if (i < dk) {
                st[m] += ks[i] * fk * vv;
                o2 += st[m] * qs[i];
            }
        }
        for (int off = P >> 1; off > 0; off >>= 1)
            o2 += __shfl_xor_sync(0xffffffffu, o2, off);
        o2 *= fq;
        // block_sum begins with a barrier: every thread is done with qs/ks of this token
        const float ss = block_sum(col && part == 0 ? o2 * o2 : 0.0f, red);
        if (col && part == 0) {
            const float inv = 1.0f / sqrtf(ss / (float)dv + p.eps);
            const size_t oi = (size_t)t * hv * dv + (size_t)h * dv + j;
            y[oi] = o2 * inv * nw * silu(z[oi]);
        }
    }
    if (col) {
#pragma unroll
        for (int m = 0; m < PER; m++) {
            const int32_t i = part + P * m;
            if (i < dk)
                S[(size_t)i * dv + j] = st[m];
        }
    }
}

template <int PER>
void launch_recur(const reason_cuda_dn *p, int P, const float *conv_out, const float *z,
                  const float *b, const float *a, float *const *ssm, const int32_t *seq_start,
                  const int32_t *tok, int32_t n_seq, float *y, cudaStream_t st) {
    dn_recur<PER><<<dim3((unsigned)p->n_v_head, (unsigned)n_seq), DN_THREADS, 0, st>>>(
        *p, P, conv_out, z, b, a, ssm, seq_start, tok, y);
}

} // namespace

extern "C" int reason_cuda_deltanet(const reason_cuda_dn *p, const float *qkv, const float *z,
                                    const float *b, const float *a, float *const *conv,
                                    float *const *ssm, const int32_t *seq_start,
                                    const int32_t *tok, int32_t n_seq, int32_t n_tok,
                                    float *conv_out, float *y, void *stream) {
    if (n_seq <= 0 || n_tok <= 0)
        return 0;
    if (p->d_k <= 0 || p->d_v <= 0 || p->d_k > 256 || p->d_v > 256 || p->n_k_head <= 0 ||
        p->n_v_head % p->n_k_head || p->conv_kernel < 1 || p->conv_kernel > DN_MAX_KW ||
        n_seq > 65535 || p->n_v_head > 65535)
        return REASON_CUDA_UNSUPPORTED;
    cudaStream_t st = rs_stream(stream);
    const int32_t conv_dim = 2 * p->n_k_head * p->d_k + p->n_v_head * p->d_v;
    const int threads = 128;
    dn_conv<<<dim3((unsigned)((conv_dim + threads - 1) / threads), (unsigned)n_seq), threads, 0,
              st>>>(qkv, p->conv_w, conv, seq_start, tok, conv_dim, p->conv_kernel, conv_out);
    RS_CUDA_LAUNCHED();
    int dv_pad = 16;
    while (dv_pad < p->d_v)
        dv_pad *= 2;
    const int P = DN_THREADS / dv_pad, per = (p->d_k + P - 1) / P;
    if (per <= 8)
        launch_recur<8>(p, P, conv_out, z, b, a, ssm, seq_start, tok, n_seq, y, st);
    else if (per <= 16)
        launch_recur<16>(p, P, conv_out, z, b, a, ssm, seq_start, tok, n_seq, y, st);
    else if (per <= 32)
        launch_recur<32>(p, P, conv_out, z, b, a, ssm, seq_start, tok, n_seq, y, st);
    else if (per <= 64)
        launch_recur<64>(p, P, conv_out, z, b, a, ssm, seq_start, tok, n_seq, y, st);
    else
        launch_recur<128>(p, P, conv_out, z, b, a, ssm, seq_start, tok, n_seq, y, st);
    RS_CUDA_LAUNCHED();
    return 0;
}
