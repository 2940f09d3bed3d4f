// attention.cu — the paged KV pool and attention over it (CPU twins: cpu_kv_store,
// cpu_kv_copy_block, cpu_attention in cpu_attention.c).
// Checked on an H100 (2026-11-27): tests/test_backend_ops.c, every case vs the CPU backend, passes.
//
// Math:   out[t, h] = Σ_p e^(s_p - M) v_p / (Σ_p e^(s_p - M) + (sinks ? e^(sinks[h] - M) : 0)),
//         s_p = scale · q[t, h] · k_p, over the positions p of token t's sequence in
//         [first, pos[t]], first = window > 0 && pos[t] >= window ? pos[t] - window + 1 : 0;
//         head h reads KV head h / (n_head / n_head_kv). Scores are kept in base 2 (q or s
//         multiplied by scale · log2 e, exp2f), sinks converted likewise.
// Layout: pool k, v (n_layer, n_blocks, block_size, kv_dim) in F16 (0), F32 (1) or BF16 (2);
//         position p of a token's sequence is slot tables[tab_off[t] + p / bs] * bs + p % bs.
//         q, out (n_tok, n_head, head_dim) f32.
//
// kv_store:   one thread per (token, element), converted to the pool type.
// kv_copy:    one cudaMemcpyAsync per layer for K and V (copy-on-write is rare).
// decode:     split-KV ("flash-decoding"). head_dim 64 / 128 / 256: attn_decode_lanes_kernel
//             (a lane per position, described there); other head dims: the kernel below.
//             Grid (n_tok · n_split, n_head_kv · head groups), 128 threads. A block takes one token, one KV head, up to G query heads of its
//             group and one split of the positions; warp w walks positions p0 + w, p0 + w + 4, …,
//             four per step: the warp reads four K and four V rows (lane l holds E elements of each:
//             l·E.. when head_dim = 32E with E in {2, 4}, else l, l + 32, …), warp-sums q·k per
//             head and updates an online softmax (m, l, acc) per head in registers. The 4 warps
//             merge through shared memory into one (m, l, acc[head_dim]) per head and split,
//             written to `work`; a second kernel (one block per (token, head)) merges the splits
//             and adds the sink. Memory bound: every K/V byte of the visible range is read once per
//             token.
// prefill:    flash attention on tensor cores (mma.sync m16n8k16, f16, or bf16 for a BF16
//             pool). Grid (n_tiles, n_head), 128 threads; a tile is up to 64 consecutive batch
//             tokens of one sequence, warp w owns rows 16w..16w+15. Q fragments stay in
//             registers; per 64-key tile the block copies K (row-major) and V (transposed) from
//             the paged pool into shared memory (positions gathered through the block table,
//             past the tile's last position zero-filled), S = Q·Kᵀ by mma, masked per row to
//             [first, pos], online softmax per row (a quad of lanes shares a row), P converted
//             in registers into the A operand of O += P·V. Key range of a tile: [min first, max
//             pos] of its rows; warps skip key tiles outside their own rows' range.
// Next:       decode: several positions in flight per warp, cp.async prefetch, one block per
//             (KV head, all G heads) with K/V in shared; prefill: K/V shared across the G heads
//             of a KV head, ldmatrix, double-buffered cp.async, 128-row tiles, then wgmma.
// Last measured: H100, 2026-11-27 (gpu_bench, f16 pool, 32/8 heads, hd 128): decode 1 sequence
//             at 8K / 32K 35 / 92 µs (32% / 49% of the copy bandwidth), 8 sequences 160 / 570
//             µs (56% / 63%) with the lane-per-position kernel at 17 splits, 128 / 456 µs (70% /
//             79%) at the 16 that reason_cuda_attention_splits now picks; the first version
//             (warp per position, 2 per step, 2 blocks per SM) took 54 / 178 and 285 / 1106 µs.
//             Prefill 4K causal 90 TFLOP/s at hd 128, 73 at hd 64.
#include "common.cuh"
#include "kernels.h"
#include "mma.cuh"

#include <math.h>

namespace {

constexpr float LOG2E = 1.4426950408889634f;
enum { KV_F16 = 0, KV_F32 = 1, KV_BF16 = 2 };

__device__ __forceinline__ int32_t first_visible(int32_t pos, int32_t window) {
    return window > 0 && pos >= window ? pos - window + 1 : 0;
}

// Element offset of position p's row of layer `layer` (before the KV head's offset).
__device__ __forceinline__ size_t kv_row(const int32_t *tab, int32_t p, int32_t bs,
                                         size_t layer_slots, int32_t kv_dim) {
    const int64_t slot = (int64_t)tab[p / bs] * bs + p % bs;
    return ((size_t)layer_slots + (size_t)slot) * (size_t)kv_dim;
}

template <int KT> __device__ __forceinline__ float kv_get(const void *base, size_t i) {
    if (KT == KV_F32)
        return ((const float *)base)[i];
    const uint16_t h = ((const uint16_t *)base)[i];
    return KT == KV_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// E elements of a K or V row for one lane. CONTIG: elements lane*E .. lane*E+E-1 (head_dim ==
// 32E, vector loads); else lane + 32i, guarded by hd.
template <int KT, int E, bool CONTIG>
__device__ __forceinline__ void kv_load(const void *base, size_t row, int lane, int hd, float *f) {
    if constexpr (CONTIG && KT == KV_F32 && E == 4) {
        const float4 v = *(const float4 *)((const float *)base + row + (size_t)lane * 4);
        f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
    } else if constexpr (CONTIG && KT == KV_F32 && E == 2) {
        const float2 v = *(const float2 *)((const float *)base + row + (size_t)lane * 2);
        f[0] = v.x, f[1] = v.y;
    } else if constexpr (CONTIG && KT != KV_F32 && E == 4) {
        const uint2 v = *(const uint2 *)((const uint16_t *)base + row + (size_t)lane * 4);
        const float2 a = KT == KV_BF16 ? bf16x2_to_f32(v.x) : f16x2_to_f32(v.x);
        const float2 b = KT == KV_BF16 ? bf16x2_to_f32(v.y) : f16x2_to_f32(v.y);
        f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
    } else if constexpr (CONTIG && KT != KV_F32 && E == 2) {
        const uint32_t v = *(const uint32_t *)((const uint16_t *)base + row + (size_t)lane * 2);
        const float2 a = KT == KV_BF16 ? bf16x2_to_f32(v) : f16x2_to_f32(v);
        f[0] = a.x, f[1] = a.y;
    } else if constexpr (CONTIG && KT == KV_F32 && E == 8) {
        const float4 v = *(const float4 *)((const float *)base + row + (size_t)lane * 8);
        const float4 w = *(const float4 *)((const float *)base + row + (size_t)lane * 8 + 4);
        f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w, f[4] = w.x, f[5] = w.y, f[6] = w.z,
        f[7] = w.w;
    } else if constexpr (CONTIG && KT != KV_F32 && E == 8) {
        const uint4 v = *(const uint4 *)((const uint16_t *)base + row + (size_t)lane * 8);
        const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 a = KT == KV_BF16 ? bf16x2_to_f32(u[i]) : f16x2_to_f32(u[i]);
            f[2 * i] = a.x, f[2 * i + 1] = a.y;
        }
    } else {
        static_assert(!CONTIG, "contiguous loads exist for E = 2, 4 and 8");
#pragma unroll
        for (int i = 0; i < E; i++) {
            const int d = lane + 32 * i;
            f[i] = d < hd ? kv_get<KT>(base, row + d) : 0.0f;
        }
    }
}

// ---- kv_store ------------------------------------------------------------------------------

template <int KT>
__global__ void kv_store_kernel(void *kp, void *vp, size_t layer_slots, int32_t kv_dim,
                                const float *k, const float *v, const int32_t *slots,
                                int32_t n_tok) {
    const int64_t n = (int64_t)n_tok * kv_dim;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int32_t t = (int32_t)(i / kv_dim), e = (int32_t)(i % kv_dim);
        const size_t dst = (layer_slots + (size_t)slots[t]) * kv_dim + e;
        if (KT == KV_F32) {
            ((float *)kp)[dst] = k[i];
            ((float *)vp)[dst] = v[i];
        } else if (KT == KV_BF16) {
            ((uint16_t *)kp)[dst] = f32_to_bf16(k[i]);
            ((uint16_t *)vp)[dst] = f32_to_bf16(v[i]);
        } else {
            ((uint16_t *)kp)[dst] = f32_to_f16(k[i]);
            ((uint16_t *)vp)[dst] = f32_to_f16(v[i]);
        }
    }
}

// ---- split-KV decode -----------------------------------------------------------------------

constexpr int DEC_WARPS = 4;
constexpr int DEC_POS = 4; // positions per warp and step (2: 20-33% of the copy bandwidth)

// The 4 warps' (m, l, acc) per head merged through shared memory into one record per head of
// this (token, split) in `work`: m (base 2), l, acc[hd]. Lane `lane` holds dims
// CONTIG ? lane*E.. : lane + 32i of acc; l is the warp's (already summed) total.
// What a split-KV decode block works on (grid: x = token · n_split + split, y = KV head · head
// groups): token t, split sp, KV head kvh, query heads h0 .. h0 + ng - 1 (at most G), positions
// [p0, p1) of the token's visible range, its block table tab.
struct decode_item {
    int32_t t, sp, kvh, h0, ng, p0, p1;
    const int32_t *tab;
};

template <int G>
__device__ __forceinline__ decode_item decode_item_of(const int32_t *pos, const int32_t *tab_off,
                                                      const int32_t *tables, int32_t n_head,
                                                      int32_t n_head_kv, int32_t window,
                                                      int32_t n_split) {
    decode_item it;
    it.sp = blockIdx.x % n_split, it.t = blockIdx.x / n_split;
    const int32_t g = n_head / n_head_kv, n_grp = (g + G - 1) / G;
    it.kvh = blockIdx.y / n_grp;
    const int32_t grp = blockIdx.y % n_grp;
    it.h0 = it.kvh * g + grp * G, it.ng = min(G, g - grp * G);
    const int32_t p_last = pos[it.t];
    const int32_t first = first_visible(p_last, window), n_pos = p_last + 1 - first;
    const int32_t len = (n_pos + n_split - 1) / n_split;
    it.p0 = first + min(n_pos, it.sp * len), it.p1 = first + min(n_pos, it.sp * len + len);
    it.tab = tables + tab_off[it.t];
    return it;
}

// s_acc: shared memory of DEC_WARPS * G * 32E floats, free for this use.
template <int G, int E, bool CONTIG>
__device__ __forceinline__ void decode_merge_store(const float (&acc)[G][E], const float (&m)[G],
                                                   const float (&l)[G], int32_t ng, int32_t hd,
                                                   float *__restrict__ work, int32_t t,
                                                   int32_t n_head, int32_t h0, int32_t n_split,
                                                   int32_t sp, float (*s_acc)[G][32 * E]) {
    __shared__ float s_m[DEC_WARPS][G], s_l[DEC_WARPS][G];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int j = 0; j < G; j++) {
#pragma unroll
        for (int i = 0; i < E; i++)
            s_acc[warp][j][CONTIG ? lane * E + i : lane + 32 * i] = acc[j][i];
        if (lane == 0) {
            s_m[warp][j] = m[j];
            s_l[warp][j] = l[j];
        }
    }
    __syncthreads();

    const int32_t stride = 2 + hd;
    for (int idx = threadIdx.x; idx < ng * (hd + 2); idx += DEC_WARPS * 32) {
        const int j = idx / (hd + 2), d = idx % (hd + 2) - 2;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++)
            M = fmaxf(M, s_m[w][j]);
        float r = 0.0f;
        if (M != -INFINITY) {
#pragma unroll
            for (int w = 0; w < DEC_WARPS; w++) {
                const float f = exp2f(s_m[w][j] - M); // 0 for an empty warp (m = -inf)
                r += f * (d < 0 ? s_l[w][j] : s_acc[w][j][d]);
            }
        }
        float *rec = work + (((size_t)t * n_head + h0 + j) * n_split + sp) * stride;
        if (d == -2)
            rec[0] = M;
        else if (d == -1)
            rec[1] = r;
        else
            rec[2 + d] = r;
    }
}

// work: per (token, head, split) a record of 2 + hd floats: m (base 2), l, acc[hd].
template <int KT, int E, bool CONTIG, int G>
__global__ void __launch_bounds__(DEC_WARPS * 32)
    attn_decode_kernel(const void *__restrict__ kpool, const void *__restrict__ vpool,
                       size_t layer_slots, int32_t kv_dim, int32_t bs, const float *__restrict__ q,
                       const int32_t *__restrict__ pos, const int32_t *__restrict__ tab_off,
                       const int32_t *__restrict__ tables, int32_t n_head, int32_t n_head_kv,
                       int32_t hd, float scale_log2, int32_t window, int32_t n_split,
                       float *__restrict__ work) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const decode_item it = decode_item_of<G>(pos, tab_off, tables, n_head, n_head_kv, window,
                                             n_split);
    const int32_t t = it.t, sp = it.sp, h0 = it.h0, ng = it.ng, p0 = it.p0, p1 = it.p1;
    const int32_t *tab = it.tab;
    const size_t head_off = (size_t)it.kvh * hd;

    float qr[G][E], acc[G][E], m[G], l[G];
#pragma unroll
    for (int j = 0; j < G; j++) {
        const float *qh = q + ((size_t)t * n_head + h0 + (j < ng ? j : 0)) * hd;
#pragma unroll
        for (int i = 0; i < E; i++) {
            const int d = CONTIG ? lane * E + i : lane + 32 * i;
            qr[j][i] = (j < ng && d < hd) ? qh[d] * scale_log2 : 0.0f;
            acc[j][i] = 0.0f;
        }
        m[j] = -INFINITY;
        l[j] = 0.0f;
    }

    // DEC_POS positions per step (p, p + DEC_WARPS, ...): all their rows' loads in flight
    for (int32_t p = p0 + warp; p < p1; p += DEC_POS * DEC_WARPS) {
        float kr[DEC_POS][E], vr[DEC_POS][E];
#pragma unroll
        for (int u = 0; u < DEC_POS; u++) {
            const int32_t pu = p + u * DEC_WARPS;
            if (pu < p1) {
                const size_t row = kv_row(tab, pu, bs, layer_slots, kv_dim) + head_off;
                kv_load<KT, E, CONTIG>(kpool, row, lane, hd, kr[u]);
                kv_load<KT, E, CONTIG>(vpool, row, lane, hd, vr[u]);
            } else {
#pragma unroll
                for (int i = 0; i < E; i++)
                    kr[u][i] = vr[u][i] = 0.0f;
            }
        }
#pragma unroll
        for (int j = 0; j < G; j++) {
            if (j >= ng)
                break;
            float sc[DEC_POS];
#pragma unroll
            for (int u = 0; u < DEC_POS; u++) {
                sc[u] = 0.0f;
#pragma unroll
                for (int i = 0; i < E; i++)
                    sc[u] += qr[j][i] * kr[u][i];
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
#pragma unroll
                for (int u = 0; u < DEC_POS; u++)
                    sc[u] += __shfl_xor_sync(0xffffffffu, sc[u], o);
            float mn = m[j];
#pragma unroll
            for (int u = 0; u < DEC_POS; u++) {
                if (p + u * DEC_WARPS >= p1)
                    sc[u] = -INFINITY;
                mn = fmaxf(mn, sc[u]);
            }
            const float corr = exp2f(m[j] - mn); // position p is visible: mn is finite
            float wsum = 0.0f;
#pragma unroll
            for (int u = 0; u < DEC_POS; u++) {
                sc[u] = exp2f(sc[u] - mn);
                wsum += sc[u];
            }
            l[j] = l[j] * corr + wsum;
#pragma unroll
            for (int i = 0; i < E; i++) {
                float a = acc[j][i] * corr;
#pragma unroll
                for (int u = 0; u < DEC_POS; u++)
                    a += sc[u] * vr[u][i];
                acc[j][i] = a;
            }
            m[j] = mn;
        }
    }

    __shared__ float s_acc[DEC_WARPS][G][32 * E];
    decode_merge_store<G, E, CONTIG>(acc, m, l, ng, hd, work, t, n_head, h0, n_split, sp, s_acc);
}

// Lane-per-position split-KV decode (head_dim = 32E: 64, 128, 256). A warp takes tiles of 32
// positions, lane l the position base + l: it computes its scores for the G heads alone (q in
// shared memory as [dim][head], read as broadcasts; no shuffles), the warp takes one max per
// head and tile, and the probabilities and row offsets go through shared memory for the P·V
// part, where lane l holds dims lE.. of every head's accumulator. Against the warp-per-position
// kernel (5 shuffles and 3 exponentials per head and position) it issues ~45 instead of ~110
// warp instructions per position. Parking each lane's V row in shared memory during the score
// pass (to wait for memory once per tile) measured slower: 677 against 570 µs (8 × 32K, H100).
template <int KT, int E, int G>
__global__ void __launch_bounds__(DEC_WARPS * 32)
    attn_decode_lanes_kernel(const void *__restrict__ kpool, const void *__restrict__ vpool,
                             size_t layer_slots, int32_t kv_dim, int32_t bs,
                             const float *__restrict__ q, const int32_t *__restrict__ pos,
                             const int32_t *__restrict__ tab_off,
                             const int32_t *__restrict__ tables, int32_t n_head,
                             int32_t n_head_kv, float scale_log2, int32_t window, int32_t n_split,
                             float *__restrict__ work) {
    constexpr int HD = 32 * E;
    static_assert(G % 4 == 0, "heads are read from shared memory four at a time");
    __shared__ __align__(16) float s_q[HD][G];
    __shared__ __align__(16) float s_p[DEC_WARPS][32][G];
    __shared__ size_t s_row[DEC_WARPS][32];
    __shared__ float s_acc[DEC_WARPS][G][HD];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const decode_item it = decode_item_of<G>(pos, tab_off, tables, n_head, n_head_kv, window,
                                             n_split);
    const int32_t t = it.t, sp = it.sp, h0 = it.h0, ng = it.ng, p0 = it.p0, p1 = it.p1;
    const int32_t *tab = it.tab;
    const size_t head_off = (size_t)it.kvh * HD;

    for (int idx = threadIdx.x; idx < HD * G; idx += DEC_WARPS * 32) {
        const int d = idx / G, j = idx % G;
        s_q[d][j] = j < ng ? q[((size_t)t * n_head + h0 + j) * HD + d] * scale_log2 : 0.0f;
    }
    __syncthreads();

    float acc[G][E], m[G], l[G]; // l: this lane's share of the sum, added up at the end
#pragma unroll
    for (int j = 0; j < G; j++) {
#pragma unroll
        for (int e = 0; e < E; e++)
            acc[j][e] = 0.0f;
        m[j] = -INFINITY;
        l[j] = 0.0f;
    }

    for (int32_t base = p0 + 32 * warp; base < p1; base += 32 * DEC_WARPS) {
        const int32_t p = base + lane;
        const bool valid = p < p1;
        const size_t row = valid ? kv_row(tab, p, bs, layer_slots, kv_dim) + head_off : 0;
        float sc[G];
#pragma unroll
        for (int j = 0; j < G; j++)
            sc[j] = 0.0f;
        if (valid) {
#pragma unroll 4
            for (int d = 0; d < HD; d += 8) {
                float k[8];
                kv_load<KT, 8, true>(kpool, row + d, 0, 8, k);
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int j = 0; j < G; j += 4) {
                        const float4 qv = *(const float4 *)&s_q[d + i][j];
                        sc[j] += k[i] * qv.x;
                        sc[j + 1] += k[i] * qv.y;
                        sc[j + 2] += k[i] * qv.z;
                        sc[j + 3] += k[i] * qv.w;
                    }
            }
        }
#pragma unroll
        for (int j = 0; j < G; j++) {
            const float v = valid ? sc[j] : -INFINITY;
            float mx = v;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float mn = fmaxf(m[j], mx); // lane 0's position is visible: finite
            const float corr = exp2f(m[j] - mn);
            const float pj = exp2f(v - mn);
            l[j] = l[j] * corr + pj;
#pragma unroll
            for (int e = 0; e < E; e++)
                acc[j][e] *= corr;
            m[j] = mn;
            s_p[warp][lane][j] = pj;
        }
        s_row[warp][lane] = row;
        __syncwarp();
        const int n = min(32, p1 - base);
#pragma unroll 4
        for (int u = 0; u < n; u++) {
            float v[E];
            kv_load<KT, E, true>(vpool, s_row[warp][u], lane, HD, v);
#pragma unroll
            for (int j = 0; j < G; j += 4) {
                const float4 pv = *(const float4 *)&s_p[warp][u][j];
#pragma unroll
                for (int e = 0; e < E; e++) {
                    acc[j][e] += pv.x * v[e];
                    acc[j + 1][e] += pv.y * v[e];
                    acc[j + 2][e] += pv.z * v[e];
                    acc[j + 3][e] += pv.w * v[e];
                }
            }
        }
        __syncwarp(); // the next tile rewrites s_p and s_row
    }
#pragma unroll
    for (int j = 0; j < G; j++)
        l[j] = warp_sum(l[j]);
    decode_merge_store<G, E, true>(acc, m, l, ng, HD, work, t, n_head, h0, n_split, sp, s_acc);
}

// out[t, h] from the splits' (m, l, acc); one block of 128 threads per (token, head).
__global__ void attn_merge_kernel(const float *__restrict__ work, int32_t n_head, int32_t hd,
                                  int32_t n_split, const float *__restrict__ sinks,
                                  float *__restrict__ out) {
    const int32_t th = blockIdx.x, h = th % n_head;
    const int32_t stride = 2 + hd;
    const float *rec = work + (size_t)th * n_split * stride;
    float M = -INFINITY;
    for (int32_t s = 0; s < n_split; s++)
        if (rec[(size_t)s * stride + 1] > 0.0f)
            M = fmaxf(M, rec[(size_t)s * stride]);
    float L = 0.0f;
    for (int32_t s = 0; s < n_split; s++) {
        const float *r = rec + (size_t)s * stride;
        if (r[1] > 0.0f)
            L += exp2f(r[0] - M) * r[1];
    }
    if (sinks)
        L += exp2f(sinks[h] * LOG2E - M);
    const float inv = 1.0f / L;
    for (int32_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.0f;
        for (int32_t s = 0; s < n_split; s++) {
            const float *r = rec + (size_t)s * stride;
            if (r[1] > 0.0f)
                o += exp2f(r[0] - M) * r[2 + d];
        }
        out[(size_t)th * hd + d] = o * inv;
    }
}

template <int KT, int E, bool CONTIG, int G>
void launch_decode(const reason_cuda_kv *kv, int32_t layer, const float *q,
                   const reason_cuda_batch *b, const reason_cuda_attn *ap, int32_t n_split,
                   float *work, cudaStream_t s) {
    const int32_t g = ap->n_head / ap->n_head_kv, n_grp = (g + G - 1) / G;
    dim3 grid((unsigned)((int64_t)b->n_tok * n_split), (unsigned)(ap->n_head_kv * n_grp));
    const size_t layer_slots = (size_t)layer * kv->n_blocks * kv->block_size;
    attn_decode_kernel<KT, E, CONTIG, G><<<grid, DEC_WARPS * 32, 0, s>>>(
        kv->k, kv->v, layer_slots, kv->kv_dim, kv->block_size, q, b->pos, b->tab_off, b->tables,
        ap->n_head, ap->n_head_kv, ap->head_dim, ap->scale * LOG2E, ap->window, n_split, work);
}

template <int KT, int E, bool CONTIG>
void launch_decode_g(const reason_cuda_kv *kv, int32_t layer, const float *q,
                     const reason_cuda_batch *b, const reason_cuda_attn *ap, int32_t n_split,
                     float *work, cudaStream_t s) {
    if (ap->n_head / ap->n_head_kv <= 4)
        launch_decode<KT, E, CONTIG, 4>(kv, layer, q, b, ap, n_split, work, s);
    else
        launch_decode<KT, E, CONTIG, 8>(kv, layer, q, b, ap, n_split, work, s);
}

template <int KT, int E, int G>
void launch_decode_lanes(const reason_cuda_kv *kv, int32_t layer, const float *q,
                         const reason_cuda_batch *b, const reason_cuda_attn *ap, int32_t n_split,
                         float *work, cudaStream_t s) {
    const int32_t g = ap->n_head / ap->n_head_kv, n_grp = (g + G - 1) / G;
    dim3 grid((unsigned)((int64_t)b->n_tok * n_split), (unsigned)(ap->n_head_kv * n_grp));
    const size_t layer_slots = (size_t)layer * kv->n_blocks * kv->block_size;
    attn_decode_lanes_kernel<KT, E, G><<<grid, DEC_WARPS * 32, 0, s>>>(
        kv->k, kv->v, layer_slots, kv->kv_dim, kv->block_size, q, b->pos, b->tab_off, b->tables,
        ap->n_head, ap->n_head_kv, ap->scale * LOG2E, ap->window, n_split, work);
}

template <int KT, int E>
void launch_decode_lanes_g(const reason_cuda_kv *kv, int32_t layer, const float *q,
                           const reason_cuda_batch *b, const reason_cuda_attn *ap,
                           int32_t n_split, float *work, cudaStream_t s) {
    if (ap->n_head / ap->n_head_kv <= 4)
        launch_decode_lanes<KT, E, 4>(kv, layer, q, b, ap, n_split, work, s);
    else
        launch_decode_lanes<KT, E, 8>(kv, layer, q, b, ap, n_split, work, s);
}

template <int KT>
void launch_decode_kt(const reason_cuda_kv *kv, int32_t layer, const float *q,
                      const reason_cuda_batch *b, const reason_cuda_attn *ap, int32_t n_split,
                      float *work, cudaStream_t s) {
    const int32_t hd = ap->head_dim;
    if (hd == 64)
        launch_decode_lanes_g<KT, 2>(kv, layer, q, b, ap, n_split, work, s);
    else if (hd == 128)
        launch_decode_lanes_g<KT, 4>(kv, layer, q, b, ap, n_split, work, s);
    else if (hd == 256)
        launch_decode_lanes_g<KT, 8>(kv, layer, q, b, ap, n_split, work, s);
    else if (hd <= 128)
        launch_decode_g<KT, 4, false>(kv, layer, q, b, ap, n_split, work, s);
    else
        launch_decode_g<KT, 8, false>(kv, layer, q, b, ap, n_split, work, s);
}

// ---- prefill flash attention (mma.sync) -----------------------------------------------------

constexpr int PF_ROWS = REASON_CUDA_PREFILL_ROWS, PF_KEYS = 64;

// 8 consecutive K/V elements of the pool as 8 16-bit values of the mma type, low element first.
template <int KT, bool BF> __device__ __forceinline__ uint4 load8(const void *base, size_t i) {
    if constexpr (KT == KV_F32) {
        const float4 a = *(const float4 *)((const float *)base + i);
        const float4 b = *(const float4 *)((const float *)base + i + 4);
        return make_uint4(pack2<BF>(a.x, a.y), pack2<BF>(a.z, a.w), pack2<BF>(b.x, b.y),
                          pack2<BF>(b.z, b.w));
    } else {
        return *(const uint4 *)((const uint16_t *)base + i);
    }
}

template <int HD, int KT>
__global__ void __launch_bounds__(128)
    attn_prefill_kernel(const void *__restrict__ kpool, const void *__restrict__ vpool,
                        size_t layer_slots, int32_t kv_dim, int32_t bs, const float *__restrict__ q,
                        const int32_t *__restrict__ pos, const int32_t *__restrict__ tab_off,
                        const int32_t *__restrict__ tables, const int32_t *__restrict__ tiles,
                        int32_t n_head, int32_t n_head_kv, float scale_log2, int32_t window,
                        const float *__restrict__ sinks, float *__restrict__ out) {
    constexpr bool BF = KT == KV_BF16;
    constexpr int LDK = HD + 8, LDV = PF_KEYS + 8; // padded rows, in halves
    constexpr int KS = HD / 16, ND = HD / 8;
    __shared__ __align__(16) uint16_t sk[PF_KEYS * LDK];
    __shared__ __align__(16) uint16_t svt[HD * LDV];
    __shared__ int32_t s_pos[PF_ROWS], s_first[PF_ROWS];
    __shared__ int32_t s_lo, s_hi;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, c = lane & 3;
    const int32_t t0 = tiles[2 * blockIdx.x], nr = tiles[2 * blockIdx.x + 1];
    const int32_t h = blockIdx.y, kvh = h / (n_head / n_head_kv);
    const int32_t *tab = tables + tab_off[t0];
    const size_t head_off = (size_t)kvh * HD;

    if (tid == 0) {
        s_lo = INT32_MAX;
        s_hi = -1;
    }
    __syncthreads();
    if (tid < PF_ROWS) {
        int32_t p = -1, f = INT32_MAX;
        if (tid < nr) {
            p = pos[t0 + tid];
            f = first_visible(p, window);
            atomicMin(&s_lo, f);
            atomicMax(&s_hi, p);
        }
        s_pos[tid] = p;
        s_first[tid] = f;
    }
    __syncthreads();
    const int32_t key_lo = s_lo, key_hi = s_hi;

    // this thread's two rows (g and g + 8 of the warp's 16) and the warp's key range
    const int r0 = 16 * warp + g, r1 = r0 + 8;
    const int32_t pos0 = s_pos[r0], pos1 = s_pos[r1];
    const int32_t first0 = s_first[r0], first1 = s_first[r1];
    int32_t w_hi = s_pos[16 * warp + (lane & 15)], w_lo = s_first[16 * warp + (lane & 15)];
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) {
        w_hi = max(w_hi, __shfl_xor_sync(0xffffffffu, w_hi, o));
        w_lo = min(w_lo, __shfl_xor_sync(0xffffffffu, w_lo, o));
    }

    // Q fragments (A operand, row-major 16 × HD): rows r0/r1, columns 16ks + 2c (+1, +8, +9)
    uint32_t qa[KS][4];
    {
        const float *q0 = q + ((size_t)(t0 + r0) * n_head + h) * HD;
        const float *q1 = q + ((size_t)(t0 + r1) * n_head + h) * HD;
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            const int d = 16 * ks + 2 * c;
            float2 a = make_float2(0.f, 0.f), b = a, e = a, f = a;
            if (r0 < nr) {
                a = *(const float2 *)(q0 + d);
                e = *(const float2 *)(q0 + d + 8);
            }
            if (r1 < nr) {
                b = *(const float2 *)(q1 + d);
                f = *(const float2 *)(q1 + d + 8);
            }
            qa[ks][0] = pack2<BF>(a.x, a.y);
            qa[ks][1] = pack2<BF>(b.x, b.y);
            qa[ks][2] = pack2<BF>(e.x, e.y);
            qa[ks][3] = pack2<BF>(f.x, f.y);
        }
    }

    float o[ND][4];
#pragma unroll
    for (int i = 0; i < ND; i++)
        o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    for (int32_t kt = key_lo; kt <= key_hi; kt += PF_KEYS) {
        __syncthreads(); // every warp is done with the previous tile
        // K row-major, V transposed; chunk i = (key i % 64, 8 elements (i / 64) * 8 ..)
        for (int i = tid; i < PF_KEYS * (HD / 8); i += 128) {
            const int key = i % PF_KEYS, c8 = i / PF_KEYS;
            const int32_t p = kt + key;
            uint4 kk = make_uint4(0u, 0u, 0u, 0u), vv = kk;
            if (p <= key_hi) {
                const size_t row = kv_row(tab, p, bs, layer_slots, kv_dim) + head_off + 8 * c8;
                kk = load8<KT, BF>(kpool, row);
                vv = load8<KT, BF>(vpool, row);
            }
            *(uint4 *)&sk[key * LDK + 8 * c8] = kk;
            const uint32_t vw[4] = {vv.x, vv.y, vv.z, vv.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                svt[(8 * c8 + 2 * j) * LDV + key] = (uint16_t)(vw[j] & 0xffffu);
                svt[(8 * c8 + 2 * j + 1) * LDV + key] = (uint16_t)(vw[j] >> 16);
            }
        }
        __syncthreads();
        if (kt > w_hi || kt + PF_KEYS - 1 < w_lo)
            continue; // no row of this warp sees a key of this tile

        float s[8][4];
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
            s[ni][0] = s[ni][1] = s[ni][2] = s[ni][3] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
#pragma unroll
            for (int ni = 0; ni < 8; ni++) {
                const uint16_t *bp = sk + (8 * ni + g) * LDK + 16 * ks + 2 * c;
                mma16816<BF>(s[ni], qa[ks], *(const uint32_t *)bp, *(const uint32_t *)(bp + 8));
            }
        }
        // scale, mask, row maxima (a row's 64 scores live in the 4 lanes of a quad)
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int ni = 0; ni < 8; ni++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int32_t p = kt + 8 * ni + 2 * c + e;
                s[ni][e] = (p >= first0 && p <= pos0) ? s[ni][e] * scale_log2 : -INFINITY;
                s[ni][2 + e] = (p >= first1 && p <= pos1) ? s[ni][2 + e] * scale_log2 : -INFINITY;
                mx0 = fmaxf(mx0, s[ni][e]);
                mx1 = fmaxf(mx1, s[ni][2 + e]);
            }
        }
#pragma unroll
        for (int off = 1; off <= 2; off <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
        }
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        const float b0 = mn0 == -INFINITY ? 0.0f : mn0, b1 = mn1 == -INFINITY ? 0.0f : mn1;
        const float corr0 = exp2f(m0 - b0), corr1 = exp2f(m1 - b1);
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int ni = 0; ni < 8; ni++) {
            s[ni][0] = exp2f(s[ni][0] - b0);
            s[ni][1] = exp2f(s[ni][1] - b0);
            s[ni][2] = exp2f(s[ni][2] - b1);
            s[ni][3] = exp2f(s[ni][3] - b1);
            sum0 += s[ni][0] + s[ni][1];
            sum1 += s[ni][2] + s[ni][3];
        }
#pragma unroll
        for (int off = 1; off <= 2; off <<= 1) {
            sum0 += __shfl_xor_sync(0xffffffffu, sum0, off);
            sum1 += __shfl_xor_sync(0xffffffffu, sum1, off);
        }
        l0 = l0 * corr0 + sum0;
        l1 = l1 * corr1 + sum1;
        m0 = mn0;
        m1 = mn1;
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            o[nd][0] *= corr0;
            o[nd][1] *= corr0;
            o[nd][2] *= corr1;
            o[nd][3] *= corr1;
        }
        // O += P · V: the S accumulators of key tiles 2j, 2j+1 are the A fragment of k-step j
#pragma unroll
        for (int j = 0; j < PF_KEYS / 16; j++) {
            const uint32_t pa[4] = {pack2<BF>(s[2 * j][0], s[2 * j][1]),
                                    pack2<BF>(s[2 * j][2], s[2 * j][3]),
                                    pack2<BF>(s[2 * j + 1][0], s[2 * j + 1][1]),
                                    pack2<BF>(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
            for (int nd = 0; nd < ND; nd++) {
                const uint16_t *bp = svt + (8 * nd + g) * LDV + 16 * j + 2 * c;
                mma16816<BF>(o[nd], pa, *(const uint32_t *)bp, *(const uint32_t *)(bp + 8));
            }
        }
    }

    if (sinks) {
        const float sk2 = sinks[h] * LOG2E;
        if (m0 != -INFINITY)
            l0 += exp2f(sk2 - m0);
        if (m1 != -INFINITY)
            l1 += exp2f(sk2 - m1);
    }
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int nd = 0; nd < ND; nd++) {
        const int d = 8 * nd + 2 * c;
        if (r0 < nr)
            *(float2 *)(out + ((size_t)(t0 + r0) * n_head + h) * HD + d) =
                make_float2(o[nd][0] * inv0, o[nd][1] * inv0);
        if (r1 < nr)
            *(float2 *)(out + ((size_t)(t0 + r1) * n_head + h) * HD + d) =
                make_float2(o[nd][2] * inv1, o[nd][3] * inv1);
    }
}

template <int HD, int KT>
void launch_prefill(const reason_cuda_kv *kv, int32_t layer, const float *q,
                    const reason_cuda_batch *b, const reason_cuda_attn *ap, const int32_t *tiles,
                    int32_t n_tiles, float *out, cudaStream_t s) {
    const size_t layer_slots = (size_t)layer * kv->n_blocks * kv->block_size;
    dim3 grid((unsigned)n_tiles, (unsigned)ap->n_head);
    attn_prefill_kernel<HD, KT><<<grid, 128, 0, s>>>(
        kv->k, kv->v, layer_slots, kv->kv_dim, kv->block_size, q, b->pos, b->tab_off, b->tables,
        tiles, ap->n_head, ap->n_head_kv, ap->scale * LOG2E, ap->window, ap->sinks, out);
}

template <int HD>
void launch_prefill_hd(const reason_cuda_kv *kv, int32_t layer, const float *q,
                       const reason_cuda_batch *b, const reason_cuda_attn *ap, const int32_t *tiles,
                       int32_t n_tiles, float *out, cudaStream_t s) {
    if (kv->type == KV_F32)
        launch_prefill<HD, KV_F32>(kv, layer, q, b, ap, tiles, n_tiles, out, s);
    else if (kv->type == KV_BF16)
        launch_prefill<HD, KV_BF16>(kv, layer, q, b, ap, tiles, n_tiles, out, s);
    else
        launch_prefill<HD, KV_F16>(kv, layer, q, b, ap, tiles, n_tiles, out, s);
}

bool kv_type_ok(int32_t t) { return t == KV_F16 || t == KV_F32 || t == KV_BF16; }

bool attn_args_ok(const reason_cuda_kv *kv, const reason_cuda_attn *ap) {
    return kv_type_ok(kv->type) && ap->n_head > 0 && ap->n_head_kv > 0 &&
           ap->n_head % ap->n_head_kv == 0 && ap->head_dim > 0 &&
           (int64_t)ap->n_head_kv * ap->head_dim == kv->kv_dim;
}

} // namespace

extern "C" int reason_cuda_kv_store(const reason_cuda_kv *kv, int32_t layer, const float *k,
                                    const float *v, const int32_t *slots, int32_t n_tok,
                                    void *stream) {
    if (n_tok <= 0)
        return 0;
    if (!kv_type_ok(kv->type))
        return REASON_CUDA_UNSUPPORTED;
    const size_t layer_slots = (size_t)layer * kv->n_blocks * kv->block_size;
    const unsigned blocks = rs_blocks((int64_t)n_tok * kv->kv_dim, 256);
    cudaStream_t s = rs_stream(stream);
    if (kv->type == KV_F32)
        kv_store_kernel<KV_F32>
            <<<blocks, 256, 0, s>>>(kv->k, kv->v, layer_slots, kv->kv_dim, k, v, slots, n_tok);
    else if (kv->type == KV_BF16)
        kv_store_kernel<KV_BF16>
            <<<blocks, 256, 0, s>>>(kv->k, kv->v, layer_slots, kv->kv_dim, k, v, slots, n_tok);
    else
        kv_store_kernel<KV_F16>
            <<<blocks, 256, 0, s>>>(kv->k, kv->v, layer_slots, kv->kv_dim, k, v, slots, n_tok);
    RS_CUDA_LAUNCHED();
    return 0;
}

extern "C" int reason_cuda_kv_copy_block(const reason_cuda_kv *kv, int32_t src, int32_t dst,
                                         void *stream) {
    if (!kv_type_ok(kv->type))
        return REASON_CUDA_UNSUPPORTED;
    const size_t eb = kv->type == KV_F32 ? 4 : 2;
    const size_t block = (size_t)kv->block_size * kv->kv_dim * eb;
    const size_t layer = (size_t)kv->n_blocks * block;
    for (int32_t l = 0; l < kv->n_layer; l++) {
        const size_t so = l * layer + (size_t)src * block, d = l * layer + (size_t)dst * block;
        RS_CUDA_TRY(cudaMemcpyAsync((uint8_t *)kv->k + d, (const uint8_t *)kv->k + so, block,
                                    cudaMemcpyDeviceToDevice, rs_stream(stream)));
        RS_CUDA_TRY(cudaMemcpyAsync((uint8_t *)kv->v + d, (const uint8_t *)kv->v + so, block,
                                    cudaMemcpyDeviceToDevice, rs_stream(stream)));
    }
    return 0;
}

extern "C" size_t reason_cuda_attention_work(int32_t n_tok, int32_t n_head, int32_t head_dim,
                                             int32_t n_split) {
    return (size_t)n_tok * n_head * n_split * (size_t)(head_dim + 2);
}

extern "C" int32_t reason_cuda_attention_splits(int32_t n_sm, int32_t n_tok, int32_t n_head,
                                                int32_t n_head_kv, int32_t longest) {
    constexpr int64_t BLOCKS_PER_SM = 8, MIN_POS = 128, MAX_SPLIT = 128;
    const int32_t g = n_head / (n_head_kv > 0 ? n_head_kv : 1);
    // blocks per split: one per (token, KV head, group of <= 4 or 8 query heads)
    const int64_t pairs = (int64_t)(n_tok > 0 ? n_tok : 1) * (n_head_kv > 0 ? n_head_kv : 1) *
                          (g <= 4 ? 1 : (g + 7) / 8);
    // rounded down: a launch a few blocks past one wave pays a whole second wave (H100, 8
    // sequences x 32K: 16 splits 456 µs, 17 splits 579 µs; 33 splits, two full waves, 471)
    int64_t n = BLOCKS_PER_SM * n_sm / pairs;
    n = n < (longest + MIN_POS - 1) / MIN_POS ? n : (longest + MIN_POS - 1) / MIN_POS;
    return (int32_t)(n < 1 ? 1 : n > MAX_SPLIT ? MAX_SPLIT : n);
}

extern "C" int reason_cuda_attention_decode(const reason_cuda_kv *kv, int32_t layer, const float *q,
                                            const reason_cuda_batch *b, const reason_cuda_attn *ap,
                                            int32_t n_split, float *work, float *out,
                                            void *stream) {
    if (b->n_tok <= 0)
        return 0;
    if (!attn_args_ok(kv, ap) || ap->head_dim > 256 || n_split < 1 ||
        (int64_t)b->n_tok * n_split > INT32_MAX || ap->n_head > 65535)
        return REASON_CUDA_UNSUPPORTED;
    cudaStream_t s = rs_stream(stream);
    if (kv->type == KV_F32)
        launch_decode_kt<KV_F32>(kv, layer, q, b, ap, n_split, work, s);
    else if (kv->type == KV_BF16)
        launch_decode_kt<KV_BF16>(kv, layer, q, b, ap, n_split, work, s);
    else
        launch_decode_kt<KV_F16>(kv, layer, q, b, ap, n_split, work, s);
    RS_CUDA_LAUNCHED();
    attn_merge_kernel<<<(unsigned)((int64_t)b->n_tok * ap->n_head), 128, 0, s>>>(
        work, ap->n_head, ap->head_dim, n_split, ap->sinks, out);
    RS_CUDA_LAUNCHED();
    return 0;
}

extern "C" int reason_cuda_attention_prefill_supported(int32_t head_dim) {
    return head_dim == 64 || head_dim == 96 || head_dim == 128;
}

extern "C" int reason_cuda_attention_prefill(const reason_cuda_kv *kv, int32_t layer,
                                             const float *q, const reason_cuda_batch *b,
                                             const reason_cuda_attn *ap, const int32_t *tiles,
                                             int32_t n_tiles, float *out, void *stream) {
    if (n_tiles <= 0)
        return 0;
    if (!attn_args_ok(kv, ap) || !reason_cuda_attention_prefill_supported(ap->head_dim) ||
        ap->n_head > 65535)
        return REASON_CUDA_UNSUPPORTED;
    cudaStream_t s = rs_stream(stream);
    if (ap->head_dim == 64)
        launch_prefill_hd<64>(kv, layer, q, b, ap, tiles, n_tiles, out, s);
    else if (ap->head_dim == 96)
        launch_prefill_hd<96>(kv, layer, q, b, ap, tiles, n_tiles, out, s);
    else
        launch_prefill_hd<128>(kv, layer, q, b, ap, tiles, n_tiles, out, s);
    RS_CUDA_LAUNCHED();
    return 0;
}
