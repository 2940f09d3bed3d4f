/* cpu_deltanet.c — Gated DeltaNet on the CPU, one token at a time (docs/qwen35.md):
 *
 *   c = silu(causal_conv(window ++ qkv_t))          per channel, conv_kernel taps
 *   q, k = l2norm(q), l2norm(k) per key head;  q /= sqrt(d_k)
 *   beta = sigmoid(b_t);  g = a_neg * softplus(a_t + dt_bias)
 *   per value head h (key head kh):  S = exp(g) S;  S += k ⊗ beta (v - Sᵀk);  o = Sᵀq
 *   y_h = rmsnorm(o) * norm_w * silu(z_h)
 *
 * The prompt path is the same recurrence, token by token: O(d_k d_v) per head and token like the
 * chunked form, without its matrix products (an optimisation for later). The state stays in f32.
 * Threaded over the backend's pool in two passes (see cpu_deltanet): the conv, norms and gates over
 * (token, channel block), then the recurrence over (sequence, value heads), each task running its
 * heads through the sequence's tokens in order. token_step, the serial form, is the fallback when
 * the scratch cannot be allocated. */
#include "cpu_deltanet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"

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

/* The loops over j are independent lanes (no reduction reordered, no contraction added), so
 * vectorizing them keeps the results bit for bit; GCC's -O2 cost model would leave them scalar. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#endif
/* One value head through one token: Sh (d_k, d_v) is decayed and updated by the delta rule with
 * k, vin, beta; yh = rmsnorm(Shᵀ q) * norm_w * silu(zh). */
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
    float ss = 0.0f;
    for (int32_t j = 0; j < dv; j++) ss += o[j] * o[j];
    const float inv = 1.0f / sqrtf(ss / (float)dv + p->eps);
    for (int32_t j = 0; j < dv; j++) yh[j] = o[j] * inv * p->norm_w[j] * silu(zh[j]);
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

/* ---- threaded path ----
 * Pass 1, over (token, channel block): the causal conv + SiLU of every channel, the L2 norm of
 * the q and k heads, and the gates of every value head, into scratch; the windows are only read.
 * Pass 2, over (sequence, value heads): for each head, the recurrence over the sequence's tokens
 * in order and the gated norm; the first task of a sequence also slides its window. Every value
 * is computed by the same operations in the same order as token_step, so the results match it
 * bit for bit. */
typedef struct dn_job {
    const deltanet_params *p;
    const float *qkv, *z, *b, *a;
    float *const *conv;
    float *const *ssm;
    float *y;
    int32_t n_tok, conv_dim, key_dim, value_dim, n_block;
    float *c;                /* (n_tok, conv_dim) conv + SiLU (+ L2 norm for q, k) */
    float *beta, *decay;     /* (n_tok, n_v_head) */
    const int32_t *prev;     /* previous token of the same sequence, or -1 */
    const int32_t *next;     /* next token of the same sequence, or -1 */
    const int32_t *seq_first, *seq_last;
    int32_t n_unit, n_task1; /* pass 1: n_tok * n_block units in n_task1 ranges */
    int32_t head_chunk, n_chunk; /* pass 2: value heads per task, tasks per sequence */
} dn_job;

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
            J->decay[th] = expf(p->a_neg[h] * softplus(J->a[th] + p->dt_bias[h]));
        }
    }
}

static void pass2_task(void *arg, int32_t task, int32_t thread) {
    (void)thread;
    const dn_job *J = arg;
    const deltanet_params *p = J->p;
    const int32_t dk = p->d_k, dv = p->d_v, hk = p->n_k_head, hv = p->n_v_head, r = hv / hk;
    const int32_t cd = J->conv_dim, vd = J->value_dim;
    const int32_t seq = task / J->n_chunk, chunk = task % J->n_chunk;
    const int32_t h0 = chunk * J->head_chunk;
    const int32_t h1 = h0 + J->head_chunk < hv ? h0 + J->head_chunk : hv;
    const int32_t first = J->seq_first[seq];
    float *S = J->ssm[first];
    for (int32_t h = h0; h < h1; h++) {
        const int32_t kh = p->v_head_tiled ? h % hk : h / r;
        float *Sh = S + (size_t)h * dk * dv; /* (d_k, d_v) */
        for (int32_t t = first; t >= 0; t = J->next[t]) {
            const float *ct = J->c + (size_t)t * cd;
            const float *q = ct + (size_t)kh * dk, *k = ct + J->key_dim + (size_t)kh * dk;
            const float *vin = ct + 2 * J->key_dim + (size_t)h * dv;
            const float beta = J->beta[(size_t)t * hv + h], decay = J->decay[(size_t)t * hv + h];
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

void cpu_deltanet(backend *be, const deltanet_params *p, const float *qkv, const float *z,
                  const float *b, const float *a, float *const *conv, float *const *ssm, float *y,
                  int32_t n_tok) {
    const int32_t hk = p->n_k_head, hv = p->n_v_head, value_dim = hv * p->d_v;
    const int32_t key_dim = hk * p->d_k, conv_dim = 2 * key_dim + value_dim;
    if (n_tok <= 0) return;
    /* scratch: c, beta, decay (floats); prev, next, seq_first, seq_last (ints) */
    const size_t n_f = (size_t)n_tok * conv_dim + 2 * (size_t)n_tok * hv;
    /* (conv_kernel <= 16: pass 1 keeps the tap rows in a fixed array) */
    const size_t bytes = n_f * sizeof(float) + 4 * (size_t)n_tok * sizeof(int32_t);
    void *mem = p->conv_kernel <= 16 ? malloc(bytes) : NULL;
    if (!mem) { /* no scratch: the serial path, token by token */
        for (int32_t t = 0; t < n_tok; t++)
            token_step(p, qkv + (size_t)t * conv_dim, z + (size_t)t * value_dim,
                       b + (size_t)t * hv, a + (size_t)t * hv, conv[t], ssm[t],
                       y + (size_t)t * value_dim);
        return;
    }
    float *c = mem;
    int32_t *prev = (int32_t *)(c + n_f), *next = prev + n_tok, *seq_first = next + n_tok,
            *seq_last = seq_first + n_tok;
    /* group the tokens by sequence (its state pointer), keeping their order */
    int32_t n_seq = 0, hint = 0;
    for (int32_t t = 0; t < n_tok; t++) {
        int32_t s = -1;
        if (n_seq > 0 && ssm[seq_first[hint]] == ssm[t]) s = hint;
        for (int32_t i = 0; s < 0 && i < n_seq; i++)
            if (ssm[seq_first[i]] == ssm[t]) s = i;
        next[t] = -1;
        if (s < 0) {
            s = n_seq++;
            seq_first[s] = t;
            prev[t] = -1;
        } else {
            prev[t] = seq_last[s];
            next[seq_last[s]] = t;
        }
        seq_last[s] = t;
        hint = s;
    }
    thread_pool *pool = cpu(be)->pool;
    const int32_t n_threads = thread_pool_size(pool);
    dn_job J = {.p = p, .qkv = qkv, .z = z, .b = b, .a = a, .conv = conv, .ssm = ssm, .y = y,
                .n_tok = n_tok, .conv_dim = conv_dim, .key_dim = key_dim, .value_dim = value_dim,
                .n_block = 2 * hk + hv, .c = c, .beta = c + (size_t)n_tok * conv_dim,
                .decay = c + (size_t)n_tok * conv_dim + (size_t)n_tok * hv, .prev = prev,
                .next = next, .seq_first = seq_first, .seq_last = seq_last};
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
    free(mem);
}
