/* test_forward.c — the forward pass against Hugging Face transformers' logits for tiny
 * random-weight models of every architecture and weight type (tests/data/models).
 *
 * Tolerances (relative max-norm of each row of logits):
 *  - KV cache in F32: 1e-4. The reference ran transformers in float32 on exactly the weights the
 *    file holds (dequantized), so only the order of float32 sums differs.
 *  - KV cache in F16 (the default): 1e-2. Keys and values are rounded to 11 significant bits
 *    (relative error 2^-11 ≈ 4.9e-4 each) before attention; over two layers the logits' relative
 *    error stays well under 1e-2 for these models, while a wrong position, head or rope shows up
 *    as errors of order 1. */
#include "model_fixture.h"
#include "test_util.h"

#include "reason.h"

static const char *const fixtures[] = {
    "qwen3-F16", "qwen3-BF16", "qwen3-Q8_0", "qwen3-Q4_K", "llama-F16",
    "llama-Q8_0", "llama-Q4_K", "qwen2-F16", "qwen2-Q8_0", "qwen2-Q4_K", "llama3rope-F16",
};
#define N_FIXTURES ((int)(sizeof fixtures / sizeof fixtures[0]))

typedef struct harness {
    model_fixture f;
    reason_model *model;
    reason_context *ctx;
} harness;

/* weights: enum reason_weights; block_size: KV slots per block (F16 keys are stored in tiles of
 * 16 slots when it is a multiple of 16, row by row otherwise). */
static void setup_with(harness *h, int i, int32_t kv_type, int32_t n_seq, int32_t weights,
                       int32_t block_size) {
    ck_assert_msg(model_fixture_load(fixtures[i], &h->f) == 0, "fixture %s unreadable", fixtures[i]);
    reason_model_params mp;
    reason_model_params_default(&mp);
    mp.weights = weights;
    ck_assert_msg(reason_model_load(h->f.gguf, &mp, &h->model) == REASON_OK, "%s: %s", fixtures[i],
                  reason_last_error());
    reason_model_info info;
    ck_assert_int_eq(reason_model_get_info(h->model, &info), REASON_OK);
    ck_assert_int_eq(info.n_vocab, h->f.n_vocab);
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = 256;
    p.n_batch = 128;
    p.n_outputs_max = 128;
    p.n_seq_max = (uint32_t)n_seq;
    p.kv_type = kv_type;
    p.kv_block_size = block_size;
    p.n_threads = 2;
    ck_assert_msg(reason_context_create(h->model, &p, &h->ctx) == REASON_OK, "%s", reason_last_error());
}

/* Small blocks: many block boundaries inside the test sequences. */
static void setup(harness *h, int i, int32_t kv_type, int32_t n_seq) {
    setup_with(h, i, kv_type, n_seq, REASON_WEIGHTS_AUTO, 4);
}

static void teardown(harness *h) {
    reason_context_free(h->ctx);
    reason_model_free(h->model);
    model_fixture_free(&h->f);
}

static void check_row(const harness *h, int fixture, const float *logits, int32_t row, double tol) {
    const float *ref = h->f.logits + (size_t)row * h->f.n_vocab;
    const double err = rel_max_err(logits, ref, h->f.n_vocab);
    ck_assert_msg(err <= tol, "%s: logits after token %d differ by %.3g (relative max-norm) > %.1g",
                  fixtures[fixture], row, err, tol);
    /* the greedy choice must agree wherever the reference's top two are clearly apart */
    const int32_t best = argmax(ref, h->f.n_vocab);
    float second = -INFINITY, max_abs = 0;
    for (int32_t v = 0; v < h->f.n_vocab; v++) {
        if (v != best && ref[v] > second) second = ref[v];
        max_abs = fmaxf(max_abs, fabsf(ref[v]));
    }
    if (ref[best] - second > 4 * tol * max_abs)
        ck_assert_int_eq(argmax(logits, h->f.n_vocab), best);
}

/* Decodes tokens [from, to) of the fixture into seq, one batch, logits for every token. */
static void decode_range(harness *h, int32_t seq, int32_t from, int32_t to) {
    int32_t pos[256], seqs[256];
    int8_t want[256];
    for (int32_t i = from; i < to; i++) {
        pos[i - from] = i;
        seqs[i - from] = seq;
        want[i - from] = 1;
    }
    const reason_batch b = {to - from, h->f.tokens + from, pos, seqs, want};
    ck_assert_msg(reason_decode(h->ctx, &b) == REASON_OK, "%s", reason_last_error());
}

START_TEST(test_whole_sequence_one_batch) {
    harness h;
    setup(&h, _i, REASON_KV_F32, 1);
    decode_range(&h, 0, 0, h.f.n_tokens);
    for (int32_t r = 0; r < h.f.n_tokens; r++) {
        const float *logits;
        ck_assert_int_eq(reason_get_logits(h.ctx, r, &logits), REASON_OK);
        check_row(&h, _i, logits, r, 1e-4);
    }
    teardown(&h);
}
END_TEST

/* The prompt in one batch, then token by token, with F16 keys and values. */
static void prompt_then_one_token_at_a_time(int i, int32_t weights, int32_t block_size) {
    harness h;
    setup_with(&h, i, REASON_KV_F16, 1, weights, block_size);
    decode_range(&h, 0, 0, h.f.n_prompt);
    for (int32_t r = h.f.n_prompt; r < h.f.n_tokens; r++) {
        const float *logits;
        ck_assert_int_eq(reason_get_logits(h.ctx, r == h.f.n_prompt ? h.f.n_prompt - 1 : 0, &logits),
                         REASON_OK);
        check_row(&h, i, logits, r - 1, 1e-2);
        decode_range(&h, 0, r, r + 1);
    }
    teardown(&h);
}

/* With copied weights (REASON_WEIGHTS_COPIED; these small files are otherwise mapped) and
 * 16-slot blocks, so that decode reads F16 keys from tiles. */
START_TEST(test_copied_weights_tiled_keys) {
    prompt_then_one_token_at_a_time(_i, REASON_WEIGHTS_COPIED, 16);
}
END_TEST

START_TEST(test_prompt_then_one_token_at_a_time_f16_kv) {
    prompt_then_one_token_at_a_time(_i, REASON_WEIGHTS_AUTO, 4);
}
END_TEST

START_TEST(test_chunked_prompt) {
    harness h;
    setup(&h, _i, REASON_KV_F32, 1);
    for (int32_t from = 0; from < h.f.n_tokens; from += 5) {
        const int32_t to = from + 5 < h.f.n_tokens ? from + 5 : h.f.n_tokens;
        decode_range(&h, 0, from, to);
        for (int32_t r = from; r < to; r++) {
            const float *logits;
            ck_assert_int_eq(reason_get_logits(h.ctx, r - from, &logits), REASON_OK);
            check_row(&h, _i, logits, r, 1e-4);
        }
    }
    teardown(&h);
}
END_TEST

/* Three sequences forked from one prompt, decoded together one token each per batch, one of them
 * truncated and re-decoded: every sequence must still see exactly its own history. */
START_TEST(test_forked_sequences_decode_together) {
    harness h;
    setup(&h, _i, REASON_KV_F32, 4);
    const int32_t P = h.f.n_prompt - 1; /* odd split so the shared last block is partly filled */
    decode_range(&h, 0, 0, P);
    ck_assert_int_eq(reason_seq_fork(h.ctx, 0, 1), REASON_OK);
    ck_assert_int_eq(reason_seq_fork(h.ctx, 0, 2), REASON_OK);
    for (int32_t r = P; r < h.f.n_tokens; r++) {
        int32_t pos[3] = {r, r, r}, seqs[3] = {0, 1, 2};
        int8_t want[3] = {1, 1, 1};
        const int32_t toks[3] = {h.f.tokens[r], h.f.tokens[r], h.f.tokens[r]};
        const reason_batch b = {3, toks, pos, seqs, want};
        ck_assert_msg(reason_decode(h.ctx, &b) == REASON_OK, "%s", reason_last_error());
        for (int32_t s = 0; s < 3; s++) {
            const float *logits;
            ck_assert_int_eq(reason_get_logits(h.ctx, s, &logits), REASON_OK);
            check_row(&h, _i, logits, r, 1e-4);
        }
        if (r == P + 6) {
            /* rewind sequence 2 by 4 tokens and replay them alone */
            ck_assert_int_eq(reason_seq_truncate(h.ctx, 2, r - 3), REASON_OK);
            decode_range(&h, 2, r - 3, r + 1);
            const float *logits;
            ck_assert_int_eq(reason_get_logits(h.ctx, 3, &logits), REASON_OK);
            check_row(&h, _i, logits, r, 1e-4);
        }
    }
    teardown(&h);
}
END_TEST

/* A checkpoint at the end of the prompt, a detour, and a restore: the greedy continuation after
 * the restore matches the reference as if the detour never happened. */
START_TEST(test_checkpoint_restore) {
    harness h;
    setup(&h, _i, REASON_KV_F32, 4);
    decode_range(&h, 0, 0, h.f.n_prompt);
    ck_assert_int_eq(reason_seq_checkpoint(h.ctx, 0, 3), REASON_OK);
    decode_range(&h, 0, h.f.n_prompt, h.f.n_tokens); /* detour: the greedy tail, then back */
    ck_assert_int_eq(reason_seq_restore(h.ctx, 3, 0), REASON_OK);
    int32_t len;
    ck_assert_int_eq(reason_seq_length(h.ctx, 0, &len), REASON_OK);
    ck_assert_int_eq(len, h.f.n_prompt);
    decode_range(&h, 0, h.f.n_prompt, h.f.n_tokens);
    for (int32_t r = h.f.n_prompt; r < h.f.n_tokens; r++) {
        const float *logits;
        ck_assert_int_eq(reason_get_logits(h.ctx, r - h.f.n_prompt, &logits), REASON_OK);
        check_row(&h, _i, logits, r, 1e-4);
    }
    ck_assert_int_eq(reason_seq_restore(h.ctx, 3, 3), REASON_ERR_INVALID_ARG);
    teardown(&h);
}
END_TEST

int main(void) {
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("transformers reference");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_whole_sequence_one_batch, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_prompt_then_one_token_at_a_time_f16_kv, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_copied_weights_tiled_keys, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_chunked_prompt, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_forked_sequences_decode_together, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_checkpoint_restore, 0, N_FIXTURES);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
