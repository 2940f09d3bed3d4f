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
 * Single-threaded: the work per token is n_v_head * d_k * d_v multiply-adds (2 M for Qwen3.5-9B),
 * small beside the projections. */
#include "cpu_deltanet.h"

#include <math.h>
#include <string.h>

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

static void token_step(const deltanet_params *p, const float *qkv, const float *z, const float *b,
                       const float *a, float *win, float *S, float *y) {
    const int32_t dk = p->d_k, dv = p->d_v, hk = p->n_k_head, hv = p->n_v_head;
    const int32_t key_dim = hk * dk, conv_dim = 2 * key_dim + hv * dv, r = hv / hk;
    float q[DELTANET_MAX_HEAD_DIM], k[DELTANET_MAX_HEAD_DIM], v[DELTANET_MAX_HEAD_DIM];
    float o[DELTANET_MAX_HEAD_DIM];
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
        float *Sh = S + (size_t)h * dk * dv; /* (d_k, d_v) */
        /* v ← beta (v − (decay S)ᵀ k), decaying S on the way */
        for (int32_t j = 0; j < dv; j++) o[j] = 0.0f;
        for (int32_t i = 0; i < dk; i++) {
            float *row = Sh + (size_t)i * dv;
            for (int32_t j = 0; j < dv; j++) {
                row[j] *= decay;
                o[j] += row[j] * k[i];
            }
        }
        for (int32_t j = 0; j < dv; j++) v[j] = beta * (v[j] - o[j]);
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
        const float *zh = z + (size_t)h * dv;
        float *yh = y + (size_t)h * dv;
        for (int32_t j = 0; j < dv; j++) yh[j] = o[j] * inv * p->norm_w[j] * silu(zh[j]);
    }
    /* the window slides by one input */
    const int32_t kw = p->conv_kernel;
    if (kw > 1) {
        memmove(win, win + conv_dim, (size_t)(kw - 2) * conv_dim * sizeof(float));
        memcpy(win + (size_t)(kw - 2) * conv_dim, qkv, (size_t)conv_dim * sizeof(float));
    }
}

void cpu_deltanet(backend *be, const deltanet_params *p, const float *qkv, const float *z,
                  const float *b, const float *a, float *const *conv, float *const *ssm, float *y,
                  int32_t n_tok) {
    (void)be;
    const int32_t hv = p->n_v_head, value_dim = hv * p->d_v;
    const int32_t conv_dim = 2 * p->n_k_head * p->d_k + value_dim;
    for (int32_t t = 0; t < n_tok; t++)
        token_step(p, qkv + (size_t)t * conv_dim, z + (size_t)t * value_dim, b + (size_t)t * hv,
                   a + (size_t)t * hv, conv[t], ssm[t], y + (size_t)t * value_dim);
}
