/* test_deltanet.c — the Gated DeltaNet op (backend_ops.deltanet) against one transformers
 * Qwen3_5GatedDeltaNet layer (tests/data/deltanet/, tools/gen_qwen35_fixtures.py): the whole
 * prompt in one call, a prompt split into a shorter prompt and decode steps, two sequences
 * interleaved in one batch, and llama.cpp's tiled value-head order. */
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

int main(void) {
    Suite *s = suite_create("deltanet");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, test_prompt_then_decode_match_transformers);
    tcase_add_test(tc, test_interleaved_sequences);
    tcase_add_test(tc, test_tiled_value_heads);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
