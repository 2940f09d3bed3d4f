/* test_real_model.c — the default real model (SmolLM2-135M-Instruct Q4_1, fetched by
 * tools/fetch-model) against transformers loading the same GGUF (dequantized to float32), from
 * tests/data/smollm2/ref.json:
 *  - the first 32 greedy tokens of the reference prompt are identical;
 *  - under teacher forcing over prompt + those tokens, our top-1 agrees with transformers' at
 *    >= 98% of positions, and where both agree the top logit is within 1% of its value (the
 *    activations are f32 in both, the KV cache f16 here).
 * Skips (exit 77) when the model has not been fetched. */
#include "model_fixture.h"
#include "test_util.h"

#include "reason.h"

#include <unistd.h>

static char model_path[1024];
static json_t *ref;

static int32_t ids(const char *key, int32_t *out, int32_t cap) {
    return json_ids(json_object_get(ref, key), out, cap);
}

START_TEST(test_greedy_32_tokens) {
    int32_t prompt[256], greedy[64];
    const int32_t n_prompt = ids("prompt_ids", prompt, 256), n_greedy = ids("greedy_ids", greedy, 64);
    ck_assert_int_eq(n_greedy, 32);
    reason_model *model;
    ck_assert_msg(reason_model_load(model_path, NULL, &model) == REASON_OK, "%s", reason_last_error());
    reason_context *ctx;
    ck_assert_int_eq(reason_context_create(model, NULL, &ctx), REASON_OK);
    int32_t pos[256], seq[256] = {0};
    for (int32_t i = 0; i < n_prompt; i++) pos[i] = i;
    reason_batch b = {n_prompt, prompt, pos, seq, NULL};
    ck_assert_int_eq(reason_decode(ctx, &b), REASON_OK);
    int32_t last = n_prompt - 1, p = n_prompt;
    reason_model_info info;
    reason_model_get_info(model, &info);
    for (int32_t g = 0; g < n_greedy; g++) {
        const float *logits;
        ck_assert_int_eq(reason_get_logits(ctx, last, &logits), REASON_OK);
        int32_t tok = argmax(logits, info.n_vocab);
        ck_assert_msg(tok == greedy[g], "greedy token %d: got %d, transformers %d", g, tok, greedy[g]);
        pos[0] = p++;
        b = (reason_batch){1, &tok, pos, seq, NULL};
        ck_assert_int_eq(reason_decode(ctx, &b), REASON_OK);
        last = 0;
    }
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

START_TEST(test_teacher_forcing_top1) {
    int32_t toks[256];
    const int32_t n_prompt = ids("prompt_ids", toks, 256);
    const int32_t n = n_prompt + ids("greedy_ids", toks + n_prompt, 256 - n_prompt);
    json_t *tf = json_object_get(ref, "teacher_forcing");
    int32_t top1[256];
    ck_assert_int_eq(json_ids(json_object_get(tf, "top1"), top1, 256), n);
    json_t *top5_logits = json_object_get(tf, "top5_logits");

    reason_model *model;
    ck_assert_int_eq(reason_model_load(model_path, NULL, &model), REASON_OK);
    reason_context_params cp;
    reason_context_params_default(&cp);
    cp.n_outputs_max = 128;
    cp.n_batch = 128;
    reason_context *ctx;
    ck_assert_int_eq(reason_context_create(model, &cp, &ctx), REASON_OK);
    int32_t pos[256], seq[256] = {0};
    int8_t want[256];
    for (int32_t i = 0; i < n; i++) {
        pos[i] = i;
        want[i] = 1;
    }
    const reason_batch b = {n, toks, pos, seq, want};
    ck_assert_int_eq(reason_decode(ctx, &b), REASON_OK);
    reason_model_info info;
    reason_model_get_info(model, &info);
    int32_t agree = 0;
    for (int32_t i = 0; i < n; i++) {
        const float *logits;
        ck_assert_int_eq(reason_get_logits(ctx, i, &logits), REASON_OK);
        const int32_t best = argmax(logits, info.n_vocab);
        if (best == top1[i]) {
            agree++;
            const double want_logit = json_real_value(json_array_get(json_array_get(top5_logits, (size_t)i), 0));
            ck_assert_msg(fabs(logits[best] - want_logit) <= 0.01 * fabs(want_logit) + 1e-3,
                          "position %d: top logit %f, transformers %f", i, logits[best], want_logit);
        }
    }
    ck_assert_msg(agree * 100 >= 98 * n, "top-1 agreement %d of %d", agree, n);
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

int main(void) {
    const char *dir = getenv("REASON_MODELS");
    snprintf(model_path, sizeof model_path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir ? dir : "models");
    if (access(model_path, R_OK) != 0) {
        printf("SKIP: %s not present (run tools/fetch-model)\n", model_path);
        return 77;
    }
    char path[1024];
    json_error_t err;
    ref = json_load_file(test_data_path("smollm2/ref.json", path, sizeof path), 0, &err);
    if (!ref) {
        printf("cannot read %s: %s\n", path, err.text);
        return 1;
    }
    Suite *s = suite_create("real_model");
    TCase *tc = tcase_create("smollm2");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_greedy_32_tokens);
    tcase_add_test(tc, test_teacher_forcing_top1);
    suite_add_tcase(s, tc);
    const int rc = run_suite(s);
    json_decref(ref);
    return rc;
}
