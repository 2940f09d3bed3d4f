/* test_deltanet.c — the Gated DeltaNet op (backend_ops.deltanet) against one transformers
 * Qwen3_5GatedDeltaNet layer (tests/data/deltanet/, tools/gen_qwen35_fixtures.py): the whole
 * prompt in one call, a prompt split into a shorter prompt and decode steps, two sequences
 * interleaved in one batch, and llama.cpp's tiled value-head order. Then the chunked form that
 * prompts take (a sequence with >= 64 tokens in one call) against the recurrence (the same op fed
 * one token per call) on random layers of several shapes: outputs, final states, conv windows and
 * the decode steps that continue from them. */
#include "test_util.h"

#include "backend.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

typedef struct layer_ref {
    int32_t n_embd, hk, dk, hv, dv, kw, n_tok, conv_dim, value_dim;
    float eps;
    float *blob;
    const float *qkv, *z, *b, *a, *conv_w, *a_log, *dt_bias, *norm_w, *out_proj, *y, *out,
        *conv_state, *ssm_state;
    float a_neg[64];
} layer_ref;

static const float *array(json_t *arrays, const float *blob, const char *name) {
    size_t i;
    json_t *e;
    json_array_foreach(arrays, i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "name")), name))
            return blob + json_integer_value(json_object_get(e, "offset"));
    }
    ck_abort_msg("array %s missing from layer.json", name);
    return NULL;
}

static int32_t geti(json_t *o, const char *k) {
    return (int32_t)json_integer_value(json_object_get(o, k));
}

static void load(layer_ref *r) {
    char path[1024];
    json_error_t err;
    json_t *root = json_load_file(test_data_path("deltanet/layer.json", path, sizeof path), 0, &err);
    ck_assert_msg(root != NULL, "%s: %s", path, err.text);
    r->n_embd = geti(root, "n_embd");
    r->hk = geti(root, "n_k_head");
    r->dk = geti(root, "d_k");
    r->hv = geti(root, "n_v_head");
    r->dv = geti(root, "d_v");
    r->kw = geti(root, "conv_kernel");
    r->n_tok = geti(root, "n_tok");
    r->conv_dim = geti(root, "conv_dim");
    r->value_dim = geti(root, "value_dim");
    r->eps = (float)json_real_value(json_object_get(root, "eps"));
    const size_t n = (size_t)geti(root, "n_floats");
    r->blob = malloc(n * sizeof(float));
    FILE *fp = fopen(test_data_path("deltanet/layer.f32", path, sizeof path), "rb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fread(r->blob, sizeof(float), n, fp), n);
    fclose(fp);
    json_t *arr = json_object_get(root, "arrays");
    r->qkv = array(arr, r->blob, "qkv");
    r->z = array(arr, r->blob, "z");
    r->b = array(arr, r->blob, "b");
    r->a = array(arr, r->blob, "a");
    r->conv_w = array(arr, r->blob, "conv_w");
    r->a_log = array(arr, r->blob, "A_log");
    r->dt_bias = array(arr, r->blob, "dt_bias");
    r->norm_w = array(arr, r->blob, "norm_w");
    r->out_proj = array(arr, r->blob, "out_proj");
    r->y = array(arr, r->blob, "y");
    r->out = array(arr, r->blob, "out");
    r->conv_state = array(arr, r->blob, "conv_state");
    r->ssm_state = array(arr, r->blob, "ssm_state");
    json_decref(root);
    ck_assert_int_le(r->hv, 64);
    for (int32_t h = 0; h < r->hv; h++) r->a_neg[h] = -expf(r->a_log[h]);
}

static deltanet_params params(const layer_ref *r) {
    return (deltanet_params){.n_k_head = r->hk, .d_k = r->dk, .n_v_head = r->hv, .d_v = r->dv,
                             .conv_kernel = r->kw, .eps = r->eps, .conv_w = r->conv_w,
                             .a_neg = r->a_neg, .dt_bias = r->dt_bias, .norm_w = r->norm_w};
}

/* max |x - ref| / max |ref| */
static double rel_err(const float *x, const float *ref, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)x[i] - ref[i]));
        m = fmax(m, fabs((double)ref[i]));
    }
    return d / (m > 0 ? m : 1);
}

typedef struct slot {
    float *conv, *ssm;
} slot;

static slot slot_new(const layer_ref *r) {
    return (slot){calloc((size_t)(r->kw - 1) * r->conv_dim, sizeof(float)),
                  calloc((size_t)r->hv * r->dk * r->dv, sizeof(float))};
}

/* Tokens [t0, t0 + n) of the reference sequence into slot s, outputs at y + t0 rows. */
static void run(backend *be, const layer_ref *r, const deltanet_params *p, slot s, int32_t t0,
                int32_t n, float *y) {
    float *conv[64], *ssm[64];
    for (int32_t i = 0; i < n; i++) conv[i] = s.conv, ssm[i] = s.ssm;
    be->ops->deltanet(be, p, r->qkv + (size_t)t0 * r->conv_dim, r->z + (size_t)t0 * r->value_dim,
                      r->b + (size_t)t0 * r->hv, r->a + (size_t)t0 * r->hv, conv, ssm,
                      y + (size_t)t0 * r->value_dim, n);
}

START_TEST(test_prompt_then_decode_match_transformers) {
    layer_ref r;
    load(&r);
    backend *be;
    ck_assert_int_eq(backend_cpu_create(1, 64, &be), REASON_OK);
    const deltanet_params p = params(&r);
    const size_t ny = (size_t)r.n_tok * r.value_dim;
    float *y = calloc(ny, sizeof(float));
    /* split = n_tok: the whole prompt in one call; otherwise a prompt then decode steps */
    const int32_t splits[] = {r.n_tok, 5, 1};
    for (size_t si = 0; si < 3; si++) {
        slot s = slot_new(&r);
        memset(y, 0, ny * sizeof(float));
        run(be, &r, &p, s, 0, splits[si], y);
        for (int32_t t = splits[si]; t < r.n_tok; t++) run(be, &r, &p, s, t, 1, y);
        const double ey = rel_err(y, r.y, ny);
        const double ec = rel_err(s.conv, r.conv_state, (size_t)(r.kw - 1) * r.conv_dim);
        const double es = rel_err(s.ssm, r.ssm_state, (size_t)r.hv * r.dk * r.dv);
        printf("deltanet split %d: rel err y %.2g, conv state %.2g, ssm state %.2g\n", splits[si],
               ey, ec, es);
        ck_assert_msg(ey < 1e-5 && ec < 1e-6 && es < 1e-5,
                      "split %d: y err %.3g, conv state %.3g, ssm state %.3g", splits[si], ey, ec,
                      es);
        if (si == 0) { /* through out_proj, the layer's output */
            double d = 0, m = 0;
            for (int32_t t = 0; t < r.n_tok; t++)
                for (int32_t o = 0; o < r.n_embd; o++) {
                    double acc = 0;
                    for (int32_t c = 0; c < r.value_dim; c++)
                        acc += (double)r.out_proj[(size_t)o * r.value_dim + c] *
                               y[(size_t)t * r.value_dim + c];
                    const float ref = r.out[(size_t)t * r.n_embd + o];
                    d = fmax(d, fabs(acc - ref));
                    m = fmax(m, fabs(ref));
                }
            ck_assert_msg(d / m < 1e-5, "layer output err %.3g", d / m);
        }
        free(s.conv);
        free(s.ssm);
    }
    free(y);
    be->ops->destroy(be);
    free(r.blob);
}
END_TEST

/* Two sequences in one batch, tokens interleaved A0 B0 A1 B1 …: each reads only its own slot. */
START_TEST(test_interleaved_sequences) {
    layer_ref r;
    load(&r);
    backend *be;
    ck_assert_int_eq(backend_cpu_create(1, 64, &be), REASON_OK);
    const deltanet_params p = params(&r);
    const int32_t n = r.n_tok, n2 = 2 * n;
    slot s[2] = {slot_new(&r), slot_new(&r)};
    float *qkv = malloc((size_t)n2 * r.conv_dim * sizeof(float));
    float *z = malloc((size_t)n2 * r.value_dim * sizeof(float));
    float *b = malloc((size_t)n2 * r.hv * sizeof(float)), *a = malloc((size_t)n2 * r.hv * sizeof(float));
    float *y = malloc((size_t)n2 * r.value_dim * sizeof(float));
    float *conv[128], *ssm[128];
    for (int32_t i = 0; i < n2; i++) {
        const int32_t t = i / 2;
        memcpy(qkv + (size_t)i * r.conv_dim, r.qkv + (size_t)t * r.conv_dim, r.conv_dim * sizeof(float));
        memcpy(z + (size_t)i * r.value_dim, r.z + (size_t)t * r.value_dim, r.value_dim * sizeof(float));
        memcpy(b + (size_t)i * r.hv, r.b + (size_t)t * r.hv, r.hv * sizeof(float));
        memcpy(a + (size_t)i * r.hv, r.a + (size_t)t * r.hv, r.hv * sizeof(float));
        conv[i] = s[i % 2].conv;
        ssm[i] = s[i % 2].ssm;
    }
    be->ops->deltanet(be, &p, qkv, z, b, a, conv, ssm, y, n2);
    for (int32_t i = 0; i < n2; i++) {
        const double e = rel_err(y + (size_t)i * r.value_dim, r.y + (size_t)(i / 2) * r.value_dim,
                                 r.value_dim);
        ck_assert_msg(e < 1e-5, "token %d err %.3g", i, e);
    }
    for (int k = 0; k < 2; k++) {
        ck_assert(rel_err(s[k].ssm, r.ssm_state, (size_t)r.hv * r.dk * r.dv) < 1e-5);
        free(s[k].conv);
        free(s[k].ssm);
    }
    free(qkv), free(z), free(b), free(a), free(y);
    be->ops->destroy(be);
    free(r.blob);
}
END_TEST

/* llama.cpp's GGUF reorders value heads from grouped (h = kh*r + j) to tiled (h' = j*hk + kh);
 * with v_head_tiled the op reads that order and gives the same heads, reordered. */
START_TEST(test_tiled_value_heads) {
    layer_ref r;
    load(&r);
    backend *be;
    ck_assert_int_eq(backend_cpu_create(1, 64, &be), REASON_OK);
    const int32_t n = r.n_tok, rr = r.hv / r.hk, vd = r.dv, key2 = 2 * r.hk * r.dk;
    int32_t tiled_of[64];
    for (int32_t h = 0; h < r.hv; h++) tiled_of[h] = (h % rr) * r.hk + h / rr;
    float *qkv = malloc((size_t)n * r.conv_dim * sizeof(float));
    float *z = malloc((size_t)n * r.value_dim * sizeof(float));
    float *b = malloc((size_t)n * r.hv * sizeof(float)), *a = malloc((size_t)n * r.hv * sizeof(float));
    float *conv_w = malloc((size_t)r.conv_dim * r.kw * sizeof(float));
    float a_neg[64], dt_bias[64];
    memcpy(qkv, r.qkv, (size_t)n * r.conv_dim * sizeof(float));
    memcpy(conv_w, r.conv_w, (size_t)r.conv_dim * r.kw * sizeof(float));
    for (int32_t h = 0; h < r.hv; h++) {
        const int32_t th = tiled_of[h];
        a_neg[th] = r.a_neg[h];
        dt_bias[th] = r.dt_bias[h];
        memcpy(conv_w + (size_t)(key2 + th * vd) * r.kw, r.conv_w + (size_t)(key2 + h * vd) * r.kw,
               (size_t)vd * r.kw * sizeof(float));
        for (int32_t t = 0; t < n; t++) {
            memcpy(qkv + (size_t)t * r.conv_dim + key2 + th * vd,
                   r.qkv + (size_t)t * r.conv_dim + key2 + h * vd, vd * sizeof(float));
            memcpy(z + (size_t)t * r.value_dim + th * vd, r.z + (size_t)t * r.value_dim + h * vd,
                   vd * sizeof(float));
            b[t * r.hv + th] = r.b[t * r.hv + h];
            a[t * r.hv + th] = r.a[t * r.hv + h];
        }
    }
    deltanet_params p = params(&r);
    p.v_head_tiled = 1;
    p.conv_w = conv_w;
    p.a_neg = a_neg;
    p.dt_bias = dt_bias;
    slot s = slot_new(&r);
    float *y = malloc((size_t)n * r.value_dim * sizeof(float));
    float *conv[64], *ssm[64];
    for (int32_t i = 0; i < n; i++) conv[i] = s.conv, ssm[i] = s.ssm;
    be->ops->deltanet(be, &p, qkv, z, b, a, conv, ssm, y, n);
    for (int32_t t = 0; t < n; t++)
        for (int32_t h = 0; h < r.hv; h++) {
            const double e = rel_err(y + (size_t)t * r.value_dim + tiled_of[h] * vd,
                                     r.y + (size_t)t * r.value_dim + h * vd, vd);
            ck_assert_msg(e < 1e-4, "token %d head %d err %.3g", t, h, e);
        }
    free(s.conv), free(s.ssm), free(qkv), free(z), free(b), free(a), free(conv_w), free(y);
    be->ops->destroy(be);
    free(r.blob);
}
END_TEST

/* ---- chunked form against the recurrence, random layers ---- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

/* uniform in [lo, hi) (splitmix64) */
static float urand(float lo, float hi) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((double)(z >> 40) / (double)(1u << 24));
}

static float *urand_array(size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++) x[i] = urand(lo, hi);
    return x;
}

typedef struct rnd_case {
    int32_t hk, dk, hv, dv, kw, tiled;
    int32_t n_seq, len[5];
    int32_t interleave; /* 0: each sequence's tokens in one block; 1: round robin */
    int32_t prefix;     /* tokens each sequence has seen before (one call, the same for both
                           slots: a non-zero starting state and window) */
    int32_t n_threads;
} rnd_case;

/* One token stream: the projections of n tokens. */
typedef struct tokens {
    float *qkv, *z, *b, *a;
} tokens;

static tokens tokens_new(const deltanet_params *p, int32_t n) {
    const size_t cd = 2 * (size_t)p->n_k_head * p->d_k + (size_t)p->n_v_head * p->d_v;
    const size_t vd = (size_t)p->n_v_head * p->d_v;
    tokens t; /* in statement order: the draws must not depend on initializer order */
    t.qkv = urand_array((size_t)n * cd, -2.0f, 2.0f);
    t.z = urand_array((size_t)n * vd, -2.0f, 2.0f);
    t.b = urand_array((size_t)n * p->n_v_head, -3.0f, 3.0f);
    t.a = urand_array((size_t)n * p->n_v_head, -3.0f, 3.0f);
    return t;
}

static void tokens_free(tokens *t) { free(t->qkv), free(t->z), free(t->b), free(t->a); }

/* Worst relative errors of one case: outputs of the call, states after it, decode outputs. */
typedef struct errs {
    double y, ssm, y_dec;
} errs;

static errs run_case(const rnd_case *rc) {
    const int32_t hk = rc->hk, hv = rc->hv, dk = rc->dk, dv = rc->dv, kw = rc->kw;
    const int32_t cd = 2 * hk * dk + hv * dv, vd = hv * dv, n_dec = 3;
    const size_t n_ssm = (size_t)hv * dk * dv, n_conv = (size_t)(kw - 1) * cd;
    float *conv_w = urand_array((size_t)cd * kw, -0.7f, 0.7f);
    float *a_neg = urand_array(hv, logf(1e-3f), logf(2.0f));
    for (int32_t h = 0; h < hv; h++) a_neg[h] = -expf(a_neg[h]); /* decays e^g from ~1 to e^-8 */
    float *dt_bias = urand_array(hv, -1.0f, 1.0f), *norm_w = urand_array(dv, 0.5f, 1.5f);
    const deltanet_params p = {.n_k_head = hk, .d_k = dk, .n_v_head = hv, .d_v = dv,
                               .conv_kernel = kw, .v_head_tiled = rc->tiled, .eps = 1e-6f,
                               .conv_w = conv_w, .a_neg = a_neg, .dt_bias = dt_bias,
                               .norm_w = norm_w};
    backend *be;
    ck_assert_int_eq(backend_cpu_create(rc->n_threads, 64, &be), REASON_OK);
    /* per sequence: slot 0 takes the batched call, slot 1 the reference token by token */
    float *conv[5][2], *ssm[5][2];
    int32_t n_tok = 0, max_len = rc->prefix + n_dec;
    for (int32_t s = 0; s < rc->n_seq; s++) {
        n_tok += rc->len[s];
        max_len = RS_MAX(max_len, rc->len[s]);
        for (int k = 0; k < 2; k++) {
            conv[s][k] = calloc(n_conv + 1, sizeof(float));
            ssm[s][k] = calloc(n_ssm, sizeof(float));
        }
    }
    float **cp = malloc((size_t)(n_tok + max_len) * sizeof(float *));
    float **sp = malloc((size_t)(n_tok + max_len) * sizeof(float *));
    int32_t *seq_of = malloc((size_t)n_tok * sizeof(int32_t));
    float *y = malloc((size_t)(n_tok + max_len) * vd * sizeof(float));
    float *y_ref = malloc((size_t)vd * sizeof(float));
    /* the prefix: the same tokens into both slots of every sequence */
    for (int32_t s = 0; s < rc->n_seq && rc->prefix > 0; s++) {
        tokens pre = tokens_new(&p, rc->prefix);
        for (int k = 0; k < 2; k++) {
            for (int32_t i = 0; i < rc->prefix; i++) cp[i] = conv[s][k], sp[i] = ssm[s][k];
            be->ops->deltanet(be, &p, pre.qkv, pre.z, pre.b, pre.a, cp, sp, y, rc->prefix);
        }
        tokens_free(&pre);
    }
    /* the batch: sequence of each token, in blocks or round robin */
    int32_t left[5];
    memcpy(left, rc->len, sizeof left);
    for (int32_t t = 0, s = 0; t < n_tok;) {
        if (rc->interleave) {
            while (left[s] == 0) s = (s + 1) % rc->n_seq;
            seq_of[t++] = s;
            left[s]--;
            s = (s + 1) % rc->n_seq;
        } else {
            for (; left[s] > 0; left[s]--) seq_of[t++] = s;
            s++;
        }
    }
    tokens in = tokens_new(&p, n_tok);
    for (int32_t t = 0; t < n_tok; t++) cp[t] = conv[seq_of[t]][0], sp[t] = ssm[seq_of[t]][0];
    be->ops->deltanet(be, &p, in.qkv, in.z, in.b, in.a, cp, sp, y, n_tok);
    errs e = {0, 0, 0};
    for (int32_t t = 0; t < n_tok; t++) {
        const int32_t s = seq_of[t];
        be->ops->deltanet(be, &p, in.qkv + (size_t)t * cd, in.z + (size_t)t * vd,
                          in.b + (size_t)t * hv, in.a + (size_t)t * hv, &conv[s][1], &ssm[s][1],
                          y_ref, 1);
        e.y = fmax(e.y, rel_err(y + (size_t)t * vd, y_ref, vd));
    }
    for (int32_t s = 0; s < rc->n_seq; s++) {
        e.ssm = fmax(e.ssm, rel_err(ssm[s][0], ssm[s][1], n_ssm));
        /* the window holds copies of inputs: exact */
        ck_assert_msg(!memcmp(conv[s][0], conv[s][1], n_conv * sizeof(float)),
                      "conv window of sequence %d differs", s);
    }
    /* decode continues from both states: n_dec steps of all sequences per call */
    tokens dec = tokens_new(&p, n_dec * rc->n_seq);
    for (int32_t i = 0; i < n_dec; i++) {
        const size_t t0 = (size_t)i * rc->n_seq;
        for (int k = 0; k < 2; k++) {
            for (int32_t s = 0; s < rc->n_seq; s++) cp[s] = conv[s][k], sp[s] = ssm[s][k];
            be->ops->deltanet(be, &p, dec.qkv + t0 * cd, dec.z + t0 * vd, dec.b + t0 * hv,
                              dec.a + t0 * hv, cp, sp, y + (size_t)k * rc->n_seq * vd, rc->n_seq);
        }
        e.y_dec = fmax(e.y_dec, rel_err(y, y + (size_t)rc->n_seq * vd, (size_t)rc->n_seq * vd));
    }
    tokens_free(&dec);
    tokens_free(&in);
    for (int32_t s = 0; s < rc->n_seq; s++)
        for (int k = 0; k < 2; k++) free(conv[s][k]), free(ssm[s][k]);
    free(cp), free(sp), free(seq_of), free(y), free(y_ref);
    free(conv_w), free(a_neg), free(dt_bias), free(norm_w);
    be->ops->destroy(be);
    return e;
}

/* Tolerance: float32 rounding, both forms (eps 6e-8 per operation), summed over d_k-term dot
 * products and a chunk's 64 tokens, grows like sqrt(64 * 128) * 6e-8 ~ 5e-6 relative to the
 * largest value; the measured worst case is printed below (≈ 1e-6). A slip in the algebra (a
 * missing decay, a wrong triangle) shows up as errors of order 1e-2 to 1. */
#define CHUNK_TOL 2e-5

static void check_case(const rnd_case *rc, const char *what) {
    const errs e = run_case(rc);
    printf("deltanet chunked vs recurrent, %s (hk %d dk %d hv %d dv %d kw %d tiled %d, prefix %d, "
           "threads %d): y %.2g, ssm %.2g, decode y %.2g\n",
           what, rc->hk, rc->dk, rc->hv, rc->dv, rc->kw, rc->tiled, rc->prefix, rc->n_threads, e.y,
           e.ssm, e.y_dec);
    ck_assert_msg(e.y < CHUNK_TOL && e.ssm < CHUNK_TOL && e.y_dec < CHUNK_TOL,
                  "%s: y %.3g, ssm %.3g, decode y %.3g", what, e.y, e.ssm, e.y_dec);
}

/* One sequence of n_tok in {1, 63, 64, 65, 200, 517} (chunk boundaries, a tail of one token),
 * Qwen3.5's head dims with grouped and tiled value heads, from a zero and a non-zero state. */
START_TEST(test_chunked_single_sequence) {
    const int32_t lens[] = {1, 63, 64, 65, 200, 517};
    char what[64];
    for (int32_t tiled = 0; tiled < 2; tiled++)
        for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
            const rnd_case rc = {.hk = 2, .dk = 128, .hv = 4, .dv = 128, .kw = 4, .tiled = tiled,
                                 .n_seq = 1, .len = {lens[i]}, .prefix = i % 2 ? 0 : 7,
                                 .n_threads = i < 3 ? 1 : 2};
            snprintf(what, sizeof what, "n_tok %d", lens[i]);
            check_case(&rc, what);
        }
}
END_TEST

/* Several sequences of different lengths in one call (some chunked, some not), in blocks and
 * interleaved token by token; a prefix of 70 tokens (itself a chunked call). */
START_TEST(test_chunked_many_sequences) {
    const rnd_case cases[] = {
        {2, 128, 4, 128, 4, 0, 5, {200, 1, 64, 65, 130}, 0, 0, 2},
        {2, 128, 4, 128, 4, 1, 5, {200, 1, 64, 65, 130}, 1, 0, 2},
        {2, 128, 4, 128, 4, 1, 3, {70, 128, 5}, 1, 70, 2},
        {1, 128, 1, 128, 4, 0, 2, {300, 90}, 0, 3, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[64];
        snprintf(what, sizeof what, "%d sequences, case %zu", cases[i].n_seq, i);
        check_case(&cases[i], what);
    }
}
END_TEST

/* Small and odd head dims (any the op accepts, up to DELTANET_MAX_HEAD_DIM), kernels 2 to 4;
 * d_k = 1 makes every key ±1 (the strongest coupling inside a chunk). Not d_v = 1: the output
 * norm y = o / sqrt(o² + eps) is then ~sign(o) and amplifies any rounding of o near 0 by up to
 * 1/sqrt(eps) = 1000 (measured 3e-5), a property of the norm, not of the chunked form. */
START_TEST(test_chunked_odd_shapes) {
    const rnd_case cases[] = {
        {3, 5, 6, 7, 3, 0, 1, {517}, 0, 0, 2},
        {3, 5, 6, 7, 3, 1, 3, {65, 3, 128}, 1, 4, 2},
        {1, 17, 3, 33, 4, 0, 2, {200, 63}, 0, 9, 2},
        {1, 17, 3, 33, 2, 1, 1, {129}, 0, 0, 1},
        {2, 1, 4, 3, 4, 0, 1, {100}, 0, 0, 1},
        {1, 256, 2, 256, 4, 0, 1, {130}, 0, 2, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[64];
        snprintf(what, sizeof what, "odd shape %zu", i);
        check_case(&cases[i], what);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("deltanet");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, test_prompt_then_decode_match_transformers);
    tcase_add_test(tc, test_interleaved_sequences);
    tcase_add_test(tc, test_tiled_value_heads);
    tcase_add_test(tc, test_chunked_single_sequence);
    tcase_add_test(tc, test_chunked_many_sequences);
    tcase_add_test(tc, test_chunked_odd_shapes);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
