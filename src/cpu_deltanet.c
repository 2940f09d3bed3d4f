/* cpu_deltanet.c — Gated DeltaNet on the CPU (docs/qwen35.md). Per token t of a sequence:
 *
 *   c = silu(causal_conv(window ++ qkv_t))          per channel, conv_kernel taps
 *   q, k = l2norm(q), l2norm(k) per key head;  q /= sqrt(d_k)
 *   beta = sigmoid(b_t);  g = a_neg * softplus(a_t + dt_bias)  (log of the decay, <= 0)
 *   per value head h (key head kh):  S = e^g S;  S += k ⊗ beta (v - Sᵀk);  o = Sᵀq
 *   y_h = rmsnorm(o) * norm_w * silu(z_h)
 *
 * Decode and short runs use this recurrence token by token (O(d_k d_v) per head and token, two
 * sweeps over S). A sequence with at least DN_CHUNK tokens in one call (prompt prefill) takes the
 * chunked form instead: the same numbers up to rounding, but as small matrix products. For a chunk
 * of n <= DN_CHUNK tokens with state S0 before it and Γ_i = g_0 + … + g_i:
 *
 *   the delta-rule values u_j = beta_j (v_j − (state just before j, decayed)ᵀ k_j) satisfy
 *     u_j + Σ_{i<j} beta_j e^{Γ_j−Γ_i} (k_j·k_i) u_i = beta_j (v_j − e^{Γ_j} S0ᵀ k_j)
 *   i.e. (I + L) U = R with L strictly lower triangular: one unit-triangular solve
 *   (the "UT transform"; |entries of (I+L)⁻¹| stay <= 1 because each step is a contraction, so
 *   the solve is as well conditioned as the recurrence itself);
 *   O = diag(e^Γ) Q S0 + (tril(Q Kᵀ) ⊙ e^{Γ_j−Γ_i}) U          (diagonal included)
 *   S = e^{Γ_last} S0 + (diag(e^{Γ_last−Γ}) K)ᵀ U.
 *
 * Per chunk and head that is ~3 n d² + 3.5 n² d multiply-adds instead of the recurrence's 2 n d²,
 * but in sgemm (OpenBLAS, or plain loops without it) rather than in two memory-bound sweeps of S
 * per token. Both leave the state where the next decode step continues from it. Measured on the
 * Qwen3.5-0.8B shape (16 heads of 128, one 512-token call, one thread, CPU time, 2026-11-27):
 * pass 2 41 ms as the recurrence, 19 ms in chunks (OpenBLAS 0.3.21's Haswell kernels); pass 1
 * 14 ms either way. Rounding differs from the recurrence by ~1e-6 relative (tests/test_deltanet.c).
 *
 * Threading, over the backend's pool, in two passes (see cpu_deltanet): the conv, norms and gates
 * over (token, channel block) into scratch, then the recurrence or the chunks over (sequence,
 * value-head group), each task running its heads through the sequence's tokens in order. The
 * scratch lives in the backend (grown on first use, kept); if it cannot be had the op falls back
 * to token_step (no scratch) or, for the chunk matrices, to the recurrence, so it never fails. */
#include "cpu_deltanet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"

#ifdef REASON_HAVE_BLAS
#include <cblas.h>
#endif

/* Tokens per chunk, and the fewest tokens of one sequence in a call that take the chunked form. */
#define DN_CHUNK 64

static float silu(float x) { return x / (1.0f + expf(-x)); }
static float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* out[i] = silu(conv of channels ch0 + i, i < n) over the window and the newest input u. */
static void conv_channels(const deltanet_params *p, int32_t conv_dim, const float *win,
                          const float *u, int32_t ch0, int32_t n, float *out) {
    const int32_t kw = p->conv_kernel;
    for (int32_t i = 0; i < n; i++) {
        const int32_t ch = ch0 + i;
        const float *w = p->conv_w + (size_t)ch * kw;
        float acc = w[kw - 1] * u[ch];
        for (int32_t j = 0; j < kw - 1; j++) acc += w[j] * win[(size_t)j * conv_dim + ch];
        out[i] = silu(acc);
    }
}

static void l2norm(float *x, int32_t n, float scale) {
    float ss = 0.0f;
    for (int32_t i = 0; i < n; i++) ss += x[i] * x[i];
    const float inv = scale / sqrtf(ss + 1e-6f);
    for (int32_t i = 0; i < n; i++) x[i] *= inv;
}

/* yh = rmsnorm(o) * norm_w * silu(zh), over d_v. */
static void gated_norm(const deltanet_params *p, const float *o, const float *zh, float *yh) {
    const int32_t dv = p->d_v;
    float ss = 0.0f;
    for (int32_t j = 0; j < dv; j++) ss += o[j] * o[j];
    const float inv = 1.0f / sqrtf(ss / (float)dv + p->eps);
    for (int32_t j = 0; j < dv; j++) yh[j] = o[j] * inv * p->norm_w[j] * silu(zh[j]);
}

/* The loops over j are independent lanes (no reduction reordered, no contraction added), so
 * vectorizing them keeps the results bit for bit; GCC's -O2 cost model would leave them scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#define DN_VECTORIZE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define DN_VECTORIZE
#endif

/* One value head through one token: Sh (d_k, d_v) is decayed and updated by the delta rule with
 * k, vin, beta; yh = rmsnorm(Shᵀ q) * norm_w * silu(zh). */
DN_VECTORIZE
static void delta_head_step(const deltanet_params *p, float *Sh, const float *q, const float *k,
                            const float *vin, float beta, float decay, const float *zh, float *yh) {
    const int32_t dk = p->d_k, dv = p->d_v;
    float v[DELTANET_MAX_HEAD_DIM], o[DELTANET_MAX_HEAD_DIM];
    /* v ← beta (v − (decay S)ᵀ k), decaying S on the way */
    for (int32_t j = 0; j < dv; j++) o[j] = 0.0f;
    for (int32_t i = 0; i < dk; i++) {
        float *row = Sh + (size_t)i * dv;
        for (int32_t j = 0; j < dv; j++) {
            row[j] *= decay;
            o[j] += row[j] * k[i];
        }
    }
    for (int32_t j = 0; j < dv; j++) v[j] = beta * (vin[j] - o[j]);
    /* S += k ⊗ v;  o = Sᵀ q */
    for (int32_t j = 0; j < dv; j++) o[j] = 0.0f;
    for (int32_t i = 0; i < dk; i++) {
        float *row = Sh + (size_t)i * dv;
        const float ki = k[i], qi = q[i];
        for (int32_t j = 0; j < dv; j++) {
            row[j] += ki * v[j];
            o[j] += row[j] * qi;
        }
    }
    gated_norm(p, o, zh, yh);
}

static void token_step(const deltanet_params *p, const float *qkv, const float *z, const float *b,
                       const float *a, float *win, float *S, float *y) {
    const int32_t dk = p->d_k, dv = p->d_v, hk = p->n_k_head, hv = p->n_v_head;
    const int32_t key_dim = hk * dk, conv_dim = 2 * key_dim + hv * dv, r = hv / hk;
    float q[DELTANET_MAX_HEAD_DIM], k[DELTANET_MAX_HEAD_DIM], v[DELTANET_MAX_HEAD_DIM];
    int32_t have_kh = -1;
    for (int32_t h = 0; h < hv; h++) {
        const int32_t kh = p->v_head_tiled ? h % hk : h / r;
        if (kh != have_kh) {
            conv_channels(p, conv_dim, win, qkv, kh * dk, dk, q);
            conv_channels(p, conv_dim, win, qkv, key_dim + kh * dk, dk, k);
            l2norm(q, dk, 1.0f / sqrtf((float)dk));
            l2norm(k, dk, 1.0f);
            have_kh = kh;
        }
        conv_channels(p, conv_dim, win, qkv, 2 * key_dim + h * dv, dv, v);
        const float beta = 1.0f / (1.0f + expf(-b[h]));
        const float decay = expf(p->a_neg[h] * softplus(a[h] + p->dt_bias[h]));
        delta_head_step(p, S + (size_t)h * dk * dv, q, k, v, beta, decay, z + (size_t)h * dv,
                        y + (size_t)h * dv);
    }
    /* the window slides by one input */
    const int32_t kw = p->conv_kernel;
    if (kw > 1) {
        memmove(win, win + conv_dim, (size_t)(kw - 2) * conv_dim * sizeof(float));
        memcpy(win + (size_t)(kw - 2) * conv_dim, qkv, (size_t)conv_dim * sizeof(float));
    }
}

/* ---- small dense products for the chunked form (row-major) ---- */

/* C (m, n) = op(A) op(B) + beta C, op(A) (m, kk), op(B) (kk, n); ta/tb: A/B stored transposed.
 * beta 0 overwrites C. */
DN_VECTORIZE
static void gemm(bool ta, bool tb, int32_t m, int32_t n, int32_t kk, const float *A, int32_t lda,
                 const float *B, int32_t ldb, float beta, float *C, int32_t ldc) {
#ifdef REASON_HAVE_BLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                kk, 1.0f, A, lda, B, ldb, beta, C, ldc);
#else
    for (int32_t i = 0; i < m; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f)
            for (int32_t j = 0; j < n; j++) c[j] = 0.0f;
        else
            for (int32_t j = 0; j < n; j++) c[j] *= beta;
        if (tb) { /* dot products of rows */
            for (int32_t j = 0; j < n; j++) {
                const float *b = B + (size_t)j * ldb;
                float acc = 0.0f;
                for (int32_t l = 0; l < kk; l++)
                    acc += (ta ? A[(size_t)l * lda + i] : A[(size_t)i * lda + l]) * b[l];
                c[j] += acc;
            }
        } else { /* rows of B scaled into c: independent lanes over j */
            for (int32_t l = 0; l < kk; l++) {
                const float a = ta ? A[(size_t)l * lda + i] : A[(size_t)i * lda + l];
                const float *b = B + (size_t)l * ldb;
                for (int32_t j = 0; j < n; j++) c[j] += a * b[j];
            }
        }
    }
#endif
}

/* Solves (I + L) X = B in place of B (m, n): L (m, m) strictly lower (diagonal and upper part of
 * the storage are not read). */
DN_VECTORIZE
static void solve_unit_lower(int32_t m, int32_t n, const float *L, int32_t ldl, float *B,
                             int32_t ldb) {
#ifdef REASON_HAVE_BLAS
    cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, m, n, 1.0f, L, ldl,
                B, ldb);
#else
    for (int32_t j = 1; j < m; j++) {
        float *x = B + (size_t)j * ldb;
        for (int32_t i = 0; i < j; i++) {
            const float l = L[(size_t)j * ldl + i];
            const float *xi = B + (size_t)i * ldb;
            for (int32_t c = 0; c < n; c++) x[c] -= l * xi[c];
        }
    }
#endif
}

/* ---- threaded path ----
 * Pass 1, over (token, channel block): the causal conv + SiLU of every channel, the L2 norm of
 * the q and k heads, and the gates of every value head, into scratch; the windows are only read.
 * Pass 2, over (sequence, value heads): for each head, the recurrence (or the chunks) over the
 * sequence's tokens in order and the gated norm; the first task of a sequence also slides its
 * window. On the recurrent path every value is computed by the same operations in the same order
 * as token_step, so the results match it bit for bit. */
typedef struct dn_job {
    const deltanet_params *p;
    const float *qkv, *z, *b, *a;
    float *const *conv;
    float *const *ssm;
    float *y;
    int32_t n_tok, conv_dim, key_dim, value_dim, n_block;
    float *c;                /* (n_tok, conv_dim) conv + SiLU (+ L2 norm for q, k) */
    float *beta, *g;         /* (n_tok, n_v_head) gate and log-decay */
    const int32_t *prev;     /* previous token of the same sequence, or -1 */
    const int32_t *next;     /* next token of the same sequence, or -1 */
    const int32_t *seq_first, *seq_last, *seq_len;
    int32_t n_unit, n_task1; /* pass 1: n_tok * n_block units in n_task1 ranges */
    int32_t head_chunk, n_chunk; /* pass 2: value heads per task, tasks per sequence */
    float *work;             /* (n_threads, work_floats) chunk matrices, or NULL: recurrence only */
    size_t work_floats;
} dn_job;

/* Floats of one thread's chunk matrices (see chunk_step), each part a multiple of 16 floats. */
static size_t chunk_work_floats(const deltanet_params *p) {
    const size_t C = DN_CHUNK;
    return C * (2 * (size_t)p->d_k + 3 * (size_t)p->d_v + 2 * C + 4);
}

/* One chunk of n tokens (tok, in order) through value head h: S (d_k, d_v) advances over the
 * chunk and the outputs go to y (docs at the top). w: this thread's chunk matrices. */
static void chunk_step(const dn_job *J, int32_t h, const int32_t *tok, int32_t n, float *S,
                       float *w) {
    const deltanet_params *p = J->p;
    const int32_t dk = p->d_k, dv = p->d_v, hk = p->n_k_head, hv = p->n_v_head, r = hv / hk;
    const int32_t kh = p->v_head_tiled ? h % hk : h / r, cd = J->conv_dim, C = DN_CHUNK;
    float *X = w;                           /* (2n, d_k) Q rows then K rows */
    float *K = X + (size_t)n * dk;          /* (n, d_k) */
    float *U = w + (size_t)2 * C * dk;      /* (n, d_v) V, then R, then U */
    float *P = U + (size_t)C * dv;          /* (2n, d_v) X S0: Q S0 (later O) rows then K S0 */
    float *G = P + (size_t)2 * C * dv;      /* (2n, n) X Kᵀ: Q Kᵀ (later M) rows then K Kᵀ (L) */
    float *gam = G + (size_t)2 * C * C;     /* (n) Γ */
    float *eg = gam + C, *ieg = eg + C;     /* (n) e^Γ, e^-Γ */
    float *bt = ieg + C;                    /* (n) beta */
    double acc = 0.0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t t = tok[i];
        const float *ct = J->c + (size_t)t * cd;
        memcpy(X + (size_t)i * dk, ct + (size_t)kh * dk, (size_t)dk * sizeof(float));
        memcpy(K + (size_t)i * dk, ct + J->key_dim + (size_t)kh * dk, (size_t)dk * sizeof(float));
        memcpy(U + (size_t)i * dv, ct + 2 * (size_t)J->key_dim + (size_t)h * dv,
               (size_t)dv * sizeof(float));
        acc += J->g[(size_t)t * hv + h];
        gam[i] = (float)acc;
        eg[i] = expf(gam[i]);
        bt[i] = J->beta[(size_t)t * hv + h];
    }
    /* e^{Γ_j−Γ_i} = e^{Γ_j} e^{−Γ_i} (saves n² expf) while e^{−Γ_i} <= e^{-Γ_last} stays finite */
    const bool split_exp = gam[n - 1] > -60.0f;
    if (split_exp)
        for (int32_t i = 0; i < n; i++) ieg[i] = expf(-gam[i]);
    gemm(false, false, 2 * n, dv, dk, X, dk, S, dv, 0.0f, P, dv);
    gemm(false, true, 2 * n, n, dk, X, dk, K, dk, 0.0f, G, n);
    float *QS = P, *KS = P + (size_t)n * dv, *M = G, *L = G + (size_t)n * n;
    for (int32_t j = 0; j < n; j++) {
        float *u = U + (size_t)j * dv, *o = QS + (size_t)j * dv;
        const float *ks = KS + (size_t)j * dv;
        for (int32_t c = 0; c < dv; c++) u[c] = bt[j] * (u[c] - eg[j] * ks[c]);
        for (int32_t c = 0; c < dv; c++) o[c] *= eg[j];
        float *m = M + (size_t)j * n, *l = L + (size_t)j * n;
        for (int32_t i = 0; i <= j; i++) {
            const float f = split_exp ? eg[j] * ieg[i] : expf(gam[j] - gam[i]);
            m[i] *= f;
            l[i] *= bt[j] * f;
        }
        for (int32_t i = j + 1; i < n; i++) m[i] = 0.0f;
    }
    solve_unit_lower(n, dv, L, n, U, dv);
    gemm(false, false, n, dv, n, M, n, U, dv, 1.0f, QS, dv);
    for (int32_t j = 0; j < n; j++) {
        const float f = split_exp ? eg[n - 1] * ieg[j] : expf(gam[n - 1] - gam[j]);
        float *kj = K + (size_t)j * dk;
        for (int32_t c = 0; c < dk; c++) kj[c] *= f;
    }
    gemm(true, false, dk, dv, n, K, dk, U, dv, eg[n - 1], S, dv);
    for (int32_t j = 0; j < n; j++) {
        const size_t off = (size_t)tok[j] * J->value_dim + (size_t)h * dv;
        gated_norm(p, QS + (size_t)j * dv, J->z + off, J->y + off);
    }
}
/* rows[j], j < kw-1: the input that conv tap j reads for token t (oldest first). */
static void conv_rows(const dn_job *J, int32_t t, const float **rows) {
    const int32_t kw = J->p->conv_kernel, cd = J->conv_dim;
    const float *win = J->conv[t];
    int32_t s = J->prev[t], back = 0; /* back: batch tokens of this sequence found so far */
    for (int32_t m = 1; m <= kw - 1; m++) { /* m steps back <-> tap j = kw-1-m */
        const int32_t j = kw - 1 - m;
        if (s >= 0) {
            rows[j] = J->qkv + (size_t)s * cd;
            s = J->prev[s];
            back++;
        } else {
            rows[j] = win + (size_t)(kw - 1 - (m - back)) * cd;
        }
    }
}

static void pass1_task(void *arg, int32_t task, int32_t thread) {
    (void)thread;
    const dn_job *J = arg;
    const deltanet_params *p = J->p;
    const int32_t dk = p->d_k, dv = p->d_v, hk = p->n_k_head, hv = p->n_v_head;
    const int32_t kw = p->conv_kernel, cd = J->conv_dim;
    const int64_t u0 = (int64_t)J->n_unit * task / J->n_task1;
    const int64_t u1 = (int64_t)J->n_unit * (task + 1) / J->n_task1;
    const float *rows[16];
    int32_t have_t = -1;
    for (int64_t u = u0; u < u1; u++) {
        const int32_t t = (int32_t)(u / J->n_block), blk = (int32_t)(u % J->n_block);
        if (t != have_t) {
            conv_rows(J, t, rows);
            have_t = t;
        }
        const float *in = J->qkv + (size_t)t * cd;
        float *ct = J->c + (size_t)t * cd;
        int32_t ch0, n;
        if (blk < 2 * hk) {
            ch0 = blk * dk;
            n = dk;
        } else {
            ch0 = 2 * J->key_dim + (blk - 2 * hk) * dv;
            n = dv;
        }
        for (int32_t i = 0; i < n; i++) {
            const int32_t ch = ch0 + i;
            const float *w = p->conv_w + (size_t)ch * kw;
            float acc = w[kw - 1] * in[ch];
            for (int32_t j = 0; j < kw - 1; j++) acc += w[j] * rows[j][ch];
            ct[ch] = silu(acc);
        }
        if (blk < hk)
            l2norm(ct + ch0, dk, 1.0f / sqrtf((float)dk));
        else if (blk < 2 * hk)
            l2norm(ct + ch0, dk, 1.0f);
        else {
            const int32_t h = blk - 2 * hk;
            const size_t th = (size_t)t * hv + h;
            J->beta[th] = 1.0f / (1.0f + expf(-J->b[th]));
            J->g[th] = p->a_neg[h] * softplus(J->a[th] + p->dt_bias[h]);
        }
    }
}

/* Value head h of the sequence starting at token first through all its tokens, chunk by chunk. */
static void head_chunked(const dn_job *J, int32_t h, int32_t first, float *Sh, float *w) {
    int32_t tok[DN_CHUNK];
    for (int32_t t = first; t >= 0;) {
        int32_t n = 0;
        for (; t >= 0 && n < DN_CHUNK; t = J->next[t]) tok[n++] = t;
        chunk_step(J, h, tok, n, Sh, w);
    }
}

static void pass2_task(void *arg, int32_t task, int32_t thread) {
    const dn_job *J = arg;
    const deltanet_params *p = J->p;
    const int32_t dk = p->d_k, dv = p->d_v, hk = p->n_k_head, hv = p->n_v_head, r = hv / hk;
    const int32_t cd = J->conv_dim, vd = J->value_dim;
    const int32_t seq = task / J->n_chunk, chunk = task % J->n_chunk;
    const int32_t h0 = chunk * J->head_chunk;
    const int32_t h1 = h0 + J->head_chunk < hv ? h0 + J->head_chunk : hv;
    const int32_t first = J->seq_first[seq];
    const bool chunked = J->work && J->seq_len[seq] >= DN_CHUNK;
    float *S = J->ssm[first];
    for (int32_t h = h0; h < h1; h++) {
        const int32_t kh = p->v_head_tiled ? h % hk : h / r;
        float *Sh = S + (size_t)h * dk * dv; /* (d_k, d_v) */
        if (chunked) {
            head_chunked(J, h, first, Sh, J->work + (size_t)thread * J->work_floats);
            continue;
        }
        for (int32_t t = first; t >= 0; t = J->next[t]) {
            const float *ct = J->c + (size_t)t * cd;
            const float *q = ct + (size_t)kh * dk, *k = ct + J->key_dim + (size_t)kh * dk;
            const float *vin = ct + 2 * J->key_dim + (size_t)h * dv;
            const float beta = J->beta[(size_t)t * hv + h];
            const float decay = expf(J->g[(size_t)t * hv + h]);
            delta_head_step(p, Sh, q, k, vin, beta, decay, J->z + (size_t)t * vd + (size_t)h * dv,
                            J->y + (size_t)t * vd + (size_t)h * dv);
        }
    }
    /* the window slides by the sequence's tokens (pass 1, its only reader, is done) */
    const int32_t kw = p->conv_kernel;
    if (chunk == 0 && kw > 1) {
        const int32_t last = J->seq_last[seq];
        float *win = J->conv[last];
        int32_t n_new = 0;
        for (int32_t t = last; t >= 0 && n_new < kw - 1; t = J->prev[t]) n_new++;
        /* new row j = old row j + n_new (ascending j: the source is not yet overwritten) */
        const size_t row_bytes = (size_t)cd * sizeof(float);
        for (int32_t j = 0; j + n_new < kw - 1; j++)
            memcpy(win + (size_t)j * cd, win + (size_t)(j + n_new) * cd, row_bytes);
        int32_t t = last;
        for (int32_t j = kw - 2; j >= kw - 1 - n_new; j--) {
            memcpy(win + (size_t)j * cd, J->qkv + (size_t)t * cd, row_bytes);
            t = J->prev[t];
        }
    }
}

/* buf, or a fresh block, holding at least need bytes; NULL (cap 0, buf released) on failure.
 * Grown only, never shrunk: decode after a prompt reuses the prompt's scratch. */
static void *grow(void *buf, size_t *cap, size_t need, const char *what) {
    if (need <= *cap) return buf;
    free(buf);
    buf = rs_aligned_alloc(need, what);
    *cap = buf ? need : 0;
    return buf;
}

void cpu_deltanet(backend *be, const deltanet_params *p, const float *qkv, const float *z,
                  const float *b, const float *a, float *const *conv, float *const *ssm, float *y,
                  int32_t n_tok) {
    cpu_backend *cb = cpu(be);
    const int32_t hk = p->n_k_head, hv = p->n_v_head, value_dim = hv * p->d_v;
    const int32_t key_dim = hk * p->d_k, conv_dim = 2 * key_dim + value_dim;
    if (n_tok <= 0) return;
    /* scratch: c, beta, g (floats); prev, next, seq_first, seq_last, seq_len (ints) */
    const size_t n_f = (size_t)n_tok * conv_dim + 2 * (size_t)n_tok * hv;
    const size_t bytes = n_f * sizeof(float) + 5 * (size_t)n_tok * sizeof(int32_t);
    /* (conv_kernel <= 16: pass 1 keeps the tap rows in a fixed array) */
    if (p->conv_kernel <= 16)
        cb->dn_tok = grow(cb->dn_tok, &cb->dn_tok_cap, bytes, "DeltaNet scratch");
    if (p->conv_kernel > 16 || !cb->dn_tok) {
        for (int32_t t = 0; t < n_tok; t++) /* no scratch: the serial path, token by token */
            token_step(p, qkv + (size_t)t * conv_dim, z + (size_t)t * value_dim,
                       b + (size_t)t * hv, a + (size_t)t * hv, conv[t], ssm[t],
                       y + (size_t)t * value_dim);
        return;
    }
    float *c = cb->dn_tok;
    int32_t *prev = (int32_t *)(c + n_f), *next = prev + n_tok, *seq_first = next + n_tok,
            *seq_last = seq_first + n_tok, *seq_len = seq_last + n_tok;
    /* group the tokens by sequence (its state pointer), keeping their order */
    int32_t n_seq = 0, hint = 0, longest = 0;
    for (int32_t t = 0; t < n_tok; t++) {
        int32_t s = -1;
        if (n_seq > 0 && ssm[seq_first[hint]] == ssm[t]) s = hint;
        for (int32_t i = 0; s < 0 && i < n_seq; i++)
            if (ssm[seq_first[i]] == ssm[t]) s = i;
        next[t] = -1;
        if (s < 0) {
            s = n_seq++;
            seq_first[s] = t;
            seq_len[s] = 0;
            prev[t] = -1;
        } else {
            prev[t] = seq_last[s];
            next[seq_last[s]] = t;
        }
        seq_last[s] = t;
        seq_len[s]++;
        longest = RS_MAX(longest, seq_len[s]);
        hint = s;
    }
    thread_pool *pool = cb->pool;
    const int32_t n_threads = thread_pool_size(pool);
    dn_job J = {.p = p, .qkv = qkv, .z = z, .b = b, .a = a, .conv = conv, .ssm = ssm, .y = y,
                .n_tok = n_tok, .conv_dim = conv_dim, .key_dim = key_dim, .value_dim = value_dim,
                .n_block = 2 * hk + hv, .c = c, .beta = c + (size_t)n_tok * conv_dim,
                .g = c + (size_t)n_tok * conv_dim + (size_t)n_tok * hv, .prev = prev,
                .next = next, .seq_first = seq_first, .seq_last = seq_last, .seq_len = seq_len};
    /* chunk matrices only for a prompt; without them the recurrence does the same work */
    if (longest >= DN_CHUNK) {
        const size_t wf = chunk_work_floats(p);
        cb->dn_work = grow(cb->dn_work, &cb->dn_work_cap, (size_t)n_threads * wf * sizeof(float),
                           "DeltaNet chunk scratch");
        J.work = cb->dn_work;
        J.work_floats = wf;
    }
    J.n_unit = n_tok * J.n_block;
    J.n_task1 = J.n_unit < 4 * n_threads ? J.n_unit : 4 * n_threads;
    thread_pool_run(pool, pass1_task, &J, J.n_task1);
    /* pass 2: a few tasks per thread; value heads grouped when there are many sequences */
    const int64_t want = 4 * (int64_t)n_threads;
    int32_t hc = (int32_t)(((int64_t)n_seq * hv + want - 1) / want);
    hc = hc < 1 ? 1 : hc > hv ? hv : hc;
    J.head_chunk = hc;
    J.n_chunk = (hv + hc - 1) / hc;
    thread_pool_run(pool, pass2_task, &J, n_seq * J.n_chunk);
}

void cpu_deltanet_free(cpu_backend *cb) {
    free(cb->dn_tok);
    free(cb->dn_work);
    cb->dn_tok = NULL;
    cb->dn_work = NULL;
    cb->dn_tok_cap = cb->dn_work_cap = 0;
}
