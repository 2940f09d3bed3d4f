/* test_sampler.c — the sampler against an independent numpy implementation
 * (tests/data/sampler/fixtures.json from tools/gen_sampler_fixtures.py): log-probabilities, the
 * candidate sets of temperature / top-k / top-p / min-p in several orders, the empirical
 * distribution of draws, penalties; plus greedy, seeding, reset, argument checks and cost. */
#include "core.h"
#include "test_util.h"

#include <jansson.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* Internal, in src/sampler.c: effective logits after the configured stages, -inf if dropped. */
RS_INTERNAL reason_status sampler_debug_transform(reason_sampler *s, const float *logits,
                                                  float *out);

/* Loaded by each test that needs it (Check runs every test in its own process). */
static json_t *root;

static json_t *fixtures(void) {
    if (!root) {
        char path[1024];
        test_data_path("sampler/fixtures.json", path, sizeof path);
        json_error_t err;
        root = json_load_file(path, 0, &err);
        ck_assert_msg(root != NULL, "%s:%d: %s", path, err.line, err.text);
    }
    return root;
}

static void fixtures_done(void) {
    json_decref(root);
    root = NULL;
}

/* A JSON array of numbers (null = -inf) as floats; *n gets the length. */
static float *floats(json_t *arr, int32_t *n) {
    size_t len = json_array_size(arr);
    float *v = malloc((len ? len : 1) * sizeof(float));
    for (size_t i = 0; i < len; i++) {
        json_t *x = json_array_get(arr, i);
        v[i] = json_is_null(x) ? -INFINITY : (float)json_number_value(x);
    }
    *n = (int32_t)len;
    return v;
}

static double number(json_t *obj, const char *key) {
    return json_number_value(json_object_get(obj, key));
}

static reason_sampler *make(const reason_sampler_params *p, int32_t n_vocab) {
    reason_sampler *s = NULL;
    reason_status st = reason_sampler_create(p, n_vocab, &s);
    ck_assert_msg(st == REASON_OK, "create: %s", reason_last_error());
    return s;
}

/* ---------------------------------------------------------------------------------------------- */

START_TEST(test_logprobs_fixture) {
    json_t *cases = json_object_get(fixtures(), "logprobs");
    ck_assert_uint_ge(json_array_size(cases), 5);
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        int32_t n, nlp;
        float *logits = floats(json_object_get(c, "logits"), &n);
        float *want = floats(json_object_get(c, "logprobs"), &nlp);
        float *copy = malloc((size_t)n * sizeof(float));
        memcpy(copy, logits, (size_t)n * sizeof(float));
        json_t *top = json_object_get(c, "top");

        reason_sampler_params p;
        reason_sampler_params_default(&p);
        p.n_logprobs = REASON_MAX_LOGPROBS;
        for (int pass = 0; pass < 2; pass++) {
            p.temperature = pass == 0 ? 0.0f : 1.0f; /* greedy, then sampled tokens */
            p.top_k = 0;
            p.top_p = 1.0f;
            reason_sampler *s = make(&p, n);
            for (int draw = 0; draw < (pass == 0 ? 1 : 50); draw++) {
                reason_token_choice out;
                ck_assert_int_eq(reason_sampler_sample(s, logits, &out), REASON_OK);
                ck_assert_int_ge(out.token, 0);
                ck_assert_int_lt(out.token, n);
                ck_assert_msg(isfinite(want[out.token]), "%s: drew a -inf token %d", name,
                              out.token);
                ck_assert_msg(fabsf(out.logprob - want[out.token]) < 2e-5f,
                              "%s: logprob of %d = %.7g, want %.7g", name, out.token,
                              (double)out.logprob, (double)want[out.token]);
                if (pass == 0)
                    ck_assert_int_eq(out.token, (int)json_integer_value(json_array_get(top, 0)));
                ck_assert_int_eq(out.n_top, (int)RS_MIN(n, REASON_MAX_LOGPROBS));
                for (int32_t k = 0; k < out.n_top; k++) {
                    int32_t t = (int32_t)json_integer_value(json_array_get(top, (size_t)k));
                    ck_assert_msg(out.top_tokens[k] == t, "%s: top[%d] = %d, want %d", name, k,
                                  out.top_tokens[k], t);
                    if (isfinite(want[t]))
                        ck_assert_msg(fabsf(out.top_logprobs[k] - want[t]) < 2e-5f,
                                      "%s: top logprob %d", name, k);
                    else
                        ck_assert(out.top_logprobs[k] == -INFINITY);
                }
            }
            reason_sampler_free(s);
        }
        ck_assert_mem_eq(copy, logits, (size_t)n * sizeof(float)); /* not modified */
        free(copy);
        free(want);
        free(logits);
    }
}
END_TEST

static void params_from(json_t *c, reason_sampler_params *p) {
    json_t *jp = json_object_get(c, "params");
    reason_sampler_params_default(p);
    p->temperature = (float)number(jp, "temperature");
    p->top_k = (int32_t)json_integer_value(json_object_get(jp, "top_k"));
    p->top_p = (float)number(jp, "top_p");
    p->min_p = (float)number(jp, "min_p");
    json_t *order = json_object_get(c, "order");
    p->n_order = (int32_t)json_array_size(order);
    for (int32_t j = 0; j < p->n_order; j++)
        p->order[j] = (int32_t)json_integer_value(json_array_get(order, (size_t)j));
}

/* The surviving set is exactly numpy's, with the same effective logits. */
START_TEST(test_filter_sets) {
    json_t *cases = json_object_get(fixtures(), "filters");
    ck_assert_uint_ge(json_array_size(cases), 10);
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        int32_t n, ne;
        float *logits = floats(json_object_get(c, "logits"), &n);
        float *want = floats(json_object_get(c, "effective"), &ne);
        float *got = malloc((size_t)n * sizeof(float));
        reason_sampler_params p;
        params_from(c, &p);
        reason_sampler *s = make(&p, n);
        ck_assert_int_eq(sampler_debug_transform(s, logits, got), REASON_OK);
        for (int32_t i = 0; i < n; i++) {
            ck_assert_msg(isfinite(got[i]) == isfinite(want[i]),
                          "%s: token %d kept %d, numpy %d", name, i, isfinite(got[i]) != 0,
                          isfinite(want[i]) != 0);
            if (isfinite(want[i]))
                ck_assert_msg(fabsf(got[i] - want[i]) <= 1e-5f * fmaxf(1.0f, fabsf(want[i])),
                              "%s: token %d effective logit %.7g, want %.7g", name, i,
                              (double)got[i], (double)want[i]);
        }
        reason_sampler_free(s);
        free(got);
        free(want);
        free(logits);
    }
}
END_TEST

/* Draws fall inside the set and follow the renormalised probabilities: every token's count is
 * within 5 standard deviations (plus one) of N p, and the chi-square statistic is plausible.
 * 20000 draws per case (5000 for the large vocabularies). */
START_TEST(test_filter_frequencies) {
    json_t *cases = json_object_get(fixtures(), "filters");
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        int32_t n, np_;
        float *logits = floats(json_object_get(c, "logits"), &n);
        json_t *jprobs = json_object_get(c, "probs");
        float *probs = floats(jprobs, &np_);
        ck_assert_int_eq(n, np_);
        const int32_t N = n > 1000 ? 5000 : 20000;
        reason_sampler_params p;
        params_from(c, &p);
        p.seed = 1234 + ci;
        reason_sampler *s = make(&p, n);
        int32_t *count = calloc((size_t)n, sizeof(int32_t));
        for (int32_t d = 0; d < N; d++) {
            reason_token_choice out;
            ck_assert_int_eq(reason_sampler_sample(s, logits, &out), REASON_OK);
            ck_assert_msg(probs[out.token] > 0.0f, "%s: drew token %d outside the set", name,
                          out.token);
            count[out.token]++;
        }
        double chi2 = 0.0;
        int32_t dof = -1;
        for (int32_t i = 0; i < n; i++) {
            double pi = json_number_value(json_array_get(jprobs, (size_t)i));
            double mean = N * pi, sd = sqrt(N * pi * (1.0 - pi));
            ck_assert_msg(fabs(count[i] - mean) <= 5.0 * sd + 1.0,
                          "%s: token %d drawn %d times, expected %.1f +- %.1f", name, i, count[i],
                          mean, sd);
            if (pi > 0) {
                chi2 += (count[i] - mean) * (count[i] - mean) / mean;
                dof++;
            }
        }
        /* Loose: chi-square with dof degrees of freedom rarely exceeds dof + 6 sqrt(2 dof) + 10. */
        if (dof > 0)
            ck_assert_msg(chi2 <= dof + 6.0 * sqrt(2.0 * dof) + 10.0, "%s: chi2 %.1f with %d dof",
                          name, chi2, dof);
        free(count);
        reason_sampler_free(s);
        free(probs);
        free(logits);
    }
}
END_TEST

/* The same logits, the same parameters, stages in two orders: different sets, each as numpy says
 * (test_filter_sets checks each against numpy; here, that they differ). */
START_TEST(test_order_matters) {
    json_t *cases = json_object_get(fixtures(), "filters");
    static const char *pairs[][2] = {{"top_p0.7_t2_hf", "top_p0.7_t2_temp_last"},
                                     {"min_p0.2_t0.5_hf", "min_p0.2_t0.5_temp_last"}};
    for (int k = 0; k < 2; k++) {
        json_t *a = NULL, *b = NULL, *c;
        size_t ci;
        json_array_foreach(cases, ci, c) {
            const char *name = json_string_value(json_object_get(c, "name"));
            if (strcmp(name, pairs[k][0]) == 0) a = c;
            if (strcmp(name, pairs[k][1]) == 0) b = c;
        }
        ck_assert(a && b);
        ck_assert(json_equal(json_object_get(a, "logits"), json_object_get(b, "logits")));
        int32_t n;
        float *logits = floats(json_object_get(a, "logits"), &n);
        float *ga = malloc((size_t)n * sizeof(float)), *gb = malloc((size_t)n * sizeof(float));
        reason_sampler_params pa, pb;
        params_from(a, &pa);
        params_from(b, &pb);
        reason_sampler *sa = make(&pa, n), *sb = make(&pb, n);
        ck_assert_int_eq(sampler_debug_transform(sa, logits, ga), REASON_OK);
        ck_assert_int_eq(sampler_debug_transform(sb, logits, gb), REASON_OK);
        int differ = 0;
        for (int32_t i = 0; i < n; i++) differ += isfinite(ga[i]) != isfinite(gb[i]);
        ck_assert_int_gt(differ, 0);
        /* The default order is HF's: the same as the explicit HF order. */
        reason_sampler_params pd = pa;
        pd.n_order = 0;
        reason_sampler *sd = make(&pd, n);
        ck_assert_int_eq(sampler_debug_transform(sd, logits, gb), REASON_OK);
        for (int32_t i = 0; i < n; i++) ck_assert(isfinite(ga[i]) == isfinite(gb[i]));
        reason_sampler_free(sd);
        reason_sampler_free(sa);
        reason_sampler_free(sb);
        free(ga);
        free(gb);
        free(logits);
    }
}
END_TEST

START_TEST(test_penalties_fixture) {
    json_t *cases = json_object_get(fixtures(), "penalties");
    ck_assert_uint_ge(json_array_size(cases), 5);
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        int32_t n, nw;
        float *logits = floats(json_object_get(c, "logits"), &n);
        float *want = floats(json_object_get(c, "expected"), &nw);
        float *got = malloc((size_t)n * sizeof(float));
        json_t *jp = json_object_get(c, "params");
        reason_sampler_params p;
        reason_sampler_params_default(&p);
        p.temperature = 1.0f;
        p.repeat_penalty = (float)number(jp, "repeat_penalty");
        p.presence_penalty = (float)number(jp, "presence_penalty");
        p.frequency_penalty = (float)number(jp, "frequency_penalty");
        p.penalty_last_n = (int32_t)json_integer_value(json_object_get(jp, "penalty_last_n"));
        p.n_order = 1;
        p.order[0] = REASON_STAGE_PENALTIES;
        reason_sampler *s = make(&p, n);
        json_t *history = json_object_get(c, "history");
        for (int round = 0; round < 2; round++) {
            /* The second round after a reset proves that reset clears the history. */
            size_t hi;
            json_t *t;
            json_array_foreach(history, hi, t) {
                ck_assert_int_eq(reason_sampler_accept(s, (reason_token)json_integer_value(t)),
                                 REASON_OK);
            }
            ck_assert_int_eq(sampler_debug_transform(s, logits, got), REASON_OK);
            for (int32_t i = 0; i < n; i++)
                ck_assert_msg(fabsf(got[i] - want[i]) <= 1e-6f * fmaxf(1.0f, fabsf(want[i])),
                              "%s: token %d: %.9g, want %.9g", name, i, (double)got[i],
                              (double)want[i]);
            reason_sampler_reset(s);
            ck_assert_int_eq(sampler_debug_transform(s, logits, got), REASON_OK);
            ck_assert_mem_eq(got, logits, (size_t)n * sizeof(float));
        }
        reason_sampler_free(s);
        free(got);
        free(want);
        free(logits);
    }
}
END_TEST

/* Penalties also apply after truncation (candidates no longer in id order). */
START_TEST(test_penalties_after_top_k) {
    float logits[8] = {5, 4, 3, 2, 1, 0, -1, -2};
    reason_sampler_params p;
    reason_sampler_params_default(&p);
    p.top_k = 3;
    p.repeat_penalty = 2.0f;
    p.n_order = 2;
    p.order[0] = REASON_STAGE_TOP_K;
    p.order[1] = REASON_STAGE_PENALTIES;
    reason_sampler *s = make(&p, 8);
    ck_assert_int_eq(reason_sampler_accept(s, 0), REASON_OK);
    ck_assert_int_eq(reason_sampler_accept(s, 7), REASON_OK);
    float got[8];
    ck_assert_int_eq(sampler_debug_transform(s, logits, got), REASON_OK);
    ck_assert(got[0] == 2.5f && got[1] == 4.0f && got[2] == 3.0f);
    for (int i = 3; i < 8; i++) ck_assert(got[i] == -INFINITY);
    /* Greedy after the penalty picks token 1. */
    p.temperature = 0.0f;
    reason_sampler *g = make(&p, 8);
    ck_assert_int_eq(reason_sampler_accept(g, 0), REASON_OK);
    reason_token_choice out;
    ck_assert_int_eq(reason_sampler_sample(g, logits, &out), REASON_OK);
    ck_assert_int_eq(out.token, 1);
    reason_sampler_free(g);
    reason_sampler_free(s);
}
END_TEST

/* ---------------------------------------------------------------------------------------------- */

static void random_logits(float *x, int32_t n, uint32_t seed) {
    uint64_t st = seed * 2654435761u + 1;
    for (int32_t i = 0; i < n; i++) {
        /* Sum of uniforms: roughly normal, spread like real logits. */
        double u = 0;
        for (int k = 0; k < 4; k++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            u += (double)(st >> 11) * 0x1.0p-53;
        }
        x[i] = (float)((u - 2.0) * 6.0);
    }
}

START_TEST(test_greedy) {
    const int32_t n = 1000;
    float *x = malloc(n * sizeof(float));
    random_logits(x, n, 7);
    int32_t arg = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[arg]) arg = i;
    reason_sampler_params p;
    reason_sampler_params_default(&p);
    p.temperature = 0.0f;
    for (uint64_t seed = 0; seed < 5; seed++) {
        p.seed = seed;
        reason_sampler *s = make(&p, n);
        for (int k = 0; k < 3; k++) {
            reason_token_choice out;
            ck_assert_int_eq(reason_sampler_sample(s, x, &out), REASON_OK);
            ck_assert_int_eq(out.token, arg);
        }
        reason_sampler_free(s);
    }
    /* Ties go to the lowest id, also with truncation stages on and a negative temperature. */
    float ties[6] = {-INFINITY, 2.0f, 7.0f, 1.0f, 7.0f, 7.0f};
    p.temperature = -1.0f;
    p.top_k = 2;
    p.top_p = 0.5f;
    p.min_p = 0.5f;
    reason_sampler *s = make(&p, 6);
    reason_token_choice out;
    ck_assert_int_eq(reason_sampler_sample(s, ties, &out), REASON_OK);
    ck_assert_int_eq(out.token, 2);
    reason_sampler_free(s);
    /* top-k among ties keeps the lower ids. */
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    s = make(&p, 6);
    float got[6];
    ck_assert_int_eq(sampler_debug_transform(s, ties, got), REASON_OK);
    ck_assert(isfinite(got[2]) && isfinite(got[4]) && !isfinite(got[5]) && !isfinite(got[1]));
    reason_sampler_free(s);
    free(x);
}
END_TEST

static void draw_sequence(uint64_t seed, const float *x, int32_t n, reason_token *seq, int len) {
    reason_sampler_params p;
    reason_sampler_params_default(&p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.seed = seed;
    reason_sampler *s = make(&p, n);
    for (int i = 0; i < len; i++) {
        reason_token_choice out;
        ck_assert_int_eq(reason_sampler_sample(s, x, &out), REASON_OK);
        seq[i] = out.token;
    }
    reason_sampler_free(s);
}

START_TEST(test_seed) {
    const int32_t n = 500;
    float x[500];
    random_logits(x, n, 3);
    for (int32_t i = 0; i < n; i++) x[i] *= 0.2f; /* flat enough for varied draws */
    reason_token a[200], b[200], c[200];
    draw_sequence(42, x, n, a, 200);
    draw_sequence(42, x, n, b, 200);
    draw_sequence(43, x, n, c, 200);
    ck_assert_mem_eq(a, b, sizeof a);
    int differ = 0;
    for (int i = 0; i < 200; i++) differ += a[i] != c[i];
    ck_assert_int_gt(differ, 100);

    /* Reset restores the initial random state (and accept does not consume randomness). */
    reason_sampler_params p;
    reason_sampler_params_default(&p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.seed = 42;
    reason_sampler *s = make(&p, n);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 200; i++) {
            reason_token_choice out;
            ck_assert_int_eq(reason_sampler_sample(s, x, &out), REASON_OK);
            ck_assert_int_eq(out.token, a[i]);
            ck_assert_int_eq(reason_sampler_accept(s, out.token), REASON_OK);
        }
        reason_sampler_reset(s);
    }
    reason_sampler_free(s);
}
END_TEST

/* Draws do not depend on the platform: the first tokens of seed 0 on a fixed vector are pinned
 * (xoshiro256** seeded by splitmix64; the exp used for weights is the same on every path). */
START_TEST(test_seed_pinned) {
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)(i % 5) * 0.5f - (float)i * 0.1f;
    reason_token seq[12];
    draw_sequence(0, x, 16, seq, 12);
    /* Recorded from this implementation; a change here means every seeded run changes (a new
     * generator, seeding or weight function) and must be deliberate. */
    static const reason_token want[12] = {7, 9, 2, 4, 9, 15, 4, 6, 12, 13, 2, 1};
    for (int i = 0; i < 12; i++)
        ck_assert_msg(seq[i] == want[i], "draw %d: %d, recorded %d", i, seq[i], want[i]);
}
END_TEST

START_TEST(test_bad_params) {
    reason_sampler *s = (reason_sampler *)(uintptr_t)1;
    reason_sampler_params p;
#define EXPECT_BAD(field_setting, fragment)                                                        \
    do {                                                                                           \
        reason_sampler_params_default(&p);                                                         \
        field_setting;                                                                             \
        s = (reason_sampler *)(uintptr_t)1;                                                        \
        ck_assert_int_eq(reason_sampler_create(&p, 100, &s), REASON_ERR_INVALID_ARG);              \
        ck_assert_ptr_null(s);                                                                     \
        ck_assert_msg(strstr(reason_last_error(), fragment) != NULL, "message '%s' lacks '%s'",    \
                      reason_last_error(), fragment);                                              \
    } while (0)
    EXPECT_BAD(p.temperature = NAN, "temperature");
    EXPECT_BAD(p.temperature = INFINITY, "temperature");
    EXPECT_BAD(p.top_p = 0.0f, "top_p");
    EXPECT_BAD(p.top_p = 1.5f, "top_p");
    EXPECT_BAD(p.top_p = NAN, "top_p");
    EXPECT_BAD(p.min_p = NAN, "min_p");
    EXPECT_BAD(p.min_p = 1.01f, "min_p");
    EXPECT_BAD(p.repeat_penalty = 0.0f, "repeat_penalty");
    EXPECT_BAD(p.repeat_penalty = NAN, "repeat_penalty");
    EXPECT_BAD(p.presence_penalty = INFINITY, "presence_penalty");
    EXPECT_BAD(p.frequency_penalty = NAN, "frequency_penalty");
    EXPECT_BAD(p.penalty_last_n = -2, "penalty_last_n");
    EXPECT_BAD(p.n_logprobs = -1, "n_logprobs");
    EXPECT_BAD(p.n_logprobs = 21, "n_logprobs");
    EXPECT_BAD(p.n_order = 6, "n_order");
    EXPECT_BAD(p.n_order = -1, "n_order");
    EXPECT_BAD((p.n_order = 2, p.order[0] = 1, p.order[1] = 5), "order[1]");
    EXPECT_BAD((p.n_order = 1, p.order[0] = -1), "order[0]");
    EXPECT_BAD((p.n_order = 3, p.order[0] = 1, p.order[1] = 2, p.order[2] = 1), "order[2]");
#undef EXPECT_BAD
    reason_sampler_params_default(&p);
    ck_assert_int_eq(reason_sampler_create(&p, 0, &s), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "n_vocab"));
    ck_assert_int_eq(reason_sampler_create(&p, -5, &s), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_sampler_create(&p, 10, NULL), REASON_ERR_INVALID_ARG);

    /* Accepted edge values. */
    p.top_p = 1.0f;
    p.min_p = -1.0f;
    p.temperature = -3.0f;
    p.penalty_last_n = -1;
    p.n_logprobs = 20;
    s = make(&p, 10);
    reason_sampler_free(s);
    s = make(NULL, 10); /* NULL params: the defaults */

    /* Logits and tokens. */
    float x[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    reason_token_choice out;
    x[7] = NAN;
    ck_assert_int_eq(reason_sampler_sample(s, x, &out), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "logits[7]"));
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "NaN"));
    x[7] = INFINITY;
    ck_assert_int_eq(reason_sampler_sample(s, x, &out), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "logits[7]"));
    for (int i = 0; i < 10; i++) x[i] = -INFINITY;
    ck_assert_int_eq(reason_sampler_sample(s, x, &out), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "-inf"));
    x[9] = 0.0f; /* one finite logit: always chosen, logprob 0 */
    ck_assert_int_eq(reason_sampler_sample(s, x, &out), REASON_OK);
    ck_assert_int_eq(out.token, 9);
    ck_assert(out.logprob == 0.0f);
    ck_assert_int_eq(reason_sampler_sample(s, NULL, &out), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_sampler_sample(s, x, NULL), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_sampler_sample(NULL, x, &out), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_sampler_accept(s, 10), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_sampler_accept(s, -1), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_sampler_accept(NULL, 0), REASON_ERR_INVALID_ARG);
    reason_sampler_free(s);
    reason_sampler_free(NULL);
    reason_sampler_reset(NULL);
    reason_sampler_params_default(NULL);
}
END_TEST

/* The penalty window slides: tokens older than penalty_last_n stop counting. */
START_TEST(test_penalty_window) {
    float x[4] = {1.0f, 1.0f, 1.0f, 1.0f}, got[4];
    reason_sampler_params p;
    reason_sampler_params_default(&p);
    p.temperature = 1.0f;
    p.presence_penalty = 1.0f;
    p.frequency_penalty = 0.5f;
    p.penalty_last_n = 3;
    p.n_order = 1;
    p.order[0] = REASON_STAGE_PENALTIES;
    reason_sampler *s = make(&p, 4);
    const reason_token hist[] = {0, 0, 1, 2, 2};
    for (int i = 0; i < 5; i++) ck_assert_int_eq(reason_sampler_accept(s, hist[i]), REASON_OK);
    /* window {1, 2, 2}: token 0 free again */
    ck_assert_int_eq(sampler_debug_transform(s, x, got), REASON_OK);
    ck_assert(got[0] == 1.0f);
    ck_assert(got[1] == 1.0f - 0.5f - 1.0f);
    ck_assert(got[2] == 1.0f - 1.0f - 1.0f);
    ck_assert(got[3] == 1.0f);
    reason_sampler_free(s);
}
END_TEST

/* CPU time of this thread: other processes on a busy machine do not inflate it. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Cost per token at Qwen's vocabulary size; prints the measurement. The bound is loose so that
 * sanitizer builds pass; the target (well under 1 ms, default params) is checked in Release. */
START_TEST(test_cost) {
    const int32_t n = 151936;
    float *x = malloc((size_t)n * sizeof(float));
    random_logits(x, n, 11);
    static const struct {
        const char *name;
        float temperature;
        int32_t top_k;
        float top_p, min_p, repeat;
        int32_t n_logprobs;
    } configs[] = {
        {"default (T 0.6, top-k 20, top-p 0.95)", 0.6f, 20, 0.95f, 0.0f, 1.0f, 0},
        {"default + repeat 1.1 + 5 logprobs", 0.6f, 20, 0.95f, 0.0f, 1.1f, 5},
        {"greedy", 0.0f, 20, 0.95f, 0.0f, 1.0f, 0},
        {"top-p 0.9 only (T 1)", 1.0f, 0, 0.9f, 0.0f, 1.0f, 0},
        {"min-p 0.05 only (T 1)", 1.0f, 0, 1.0f, 0.05f, 1.0f, 0},
        {"temperature only (T 1)", 1.0f, 0, 1.0f, 0.0f, 1.0f, 0},
    };
    for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
        reason_sampler_params p;
        reason_sampler_params_default(&p);
        p.temperature = configs[k].temperature;
        p.top_k = configs[k].top_k;
        p.top_p = configs[k].top_p;
        p.min_p = configs[k].min_p;
        p.repeat_penalty = configs[k].repeat;
        p.n_logprobs = configs[k].n_logprobs;
        reason_sampler *s = make(&p, n);
        reason_token_choice out;
        for (int i = 0; i < 64; i++) ck_assert_int_eq(reason_sampler_accept(s, i * 37), REASON_OK);
        ck_assert_int_eq(reason_sampler_sample(s, x, &out), REASON_OK); /* warm up */
        const int iters = 200;
        double t0 = now_s();
        for (int i = 0; i < iters; i++) {
            x[i] += 0.01f; /* vary the input a little */
            ck_assert_int_eq(reason_sampler_sample(s, x, &out), REASON_OK);
        }
        double per = (now_s() - t0) / iters;
        fprintf(stderr, "sampler cost, n_vocab %d, %-40s %8.1f us/token (CPU time)\n", n,
                configs[k].name, per * 1e6);
        ck_assert_msg(per < 0.05, "%s: %.3f ms per token", configs[k].name, per * 1e3);
        reason_sampler_free(s);
    }
    free(x);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, NULL, fixtures_done);
    tcase_add_test(tc, test_logprobs_fixture);
    tcase_add_test(tc, test_filter_sets);
    tcase_add_test(tc, test_filter_frequencies);
    tcase_add_test(tc, test_order_matters);
    tcase_add_test(tc, test_penalties_fixture);
    tcase_add_test(tc, test_penalties_after_top_k);
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_seed);
    tcase_add_test(tc, test_seed_pinned);
    tcase_add_test(tc, test_bad_params);
    tcase_add_test(tc, test_penalty_window);
    tcase_add_test(tc, test_cost);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
