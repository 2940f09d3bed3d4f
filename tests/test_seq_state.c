/* test_seq_state.c — paged KV bookkeeping: block sharing by fork, copy-on-write of a shared
 * partly filled block, truncate, exhaustion that leaves everything intact, memory counters. */
#include "test_util.h"

#include "backend.h"
#include "seq_state.h"

#include <string.h>

typedef struct fixture {
    backend *be;
    seq_state *ss;
} fixture;

/* 1 layer, kv_dim 4, F32 KV, blocks of 4 slots, 8 blocks, 4 sequences. */
static void setup(fixture *f, int32_t n_slots) {
    ck_assert_int_eq(backend_cpu_create(1, 64, &f->be), REASON_OK);
    seq_state_params p = {.n_layer = 1, .kv_dim = 4, .kv_type = REASON_KV_F32, .n_slots = n_slots,
                          .block_size = 4, .n_seq_max = 4};
    ck_assert_int_eq(seq_state_create(f->be, &p, &f->ss), REASON_OK);
}

static void teardown(fixture *f) {
    seq_state_free(f->ss);
    f->be->ops->destroy(f->be);
}

/* Appends n positions to seq; returns the status. */
static reason_status append(fixture *f, int32_t seq, int32_t n, int32_t *slots) {
    int32_t seqs[64], pos[64], local[64];
    const int32_t *tables[64];
    const int32_t len = seq_state_length(f->ss, seq);
    for (int32_t i = 0; i < n; i++) {
        seqs[i] = seq;
        pos[i] = len + i;
    }
    return seq_state_prepare(f->ss, seqs, pos, n, slots ? slots : local, tables);
}

static int64_t used(fixture *f) {
    seq_state_stats s;
    seq_state_get_stats(f->ss, &s);
    return s.slots_used;
}

START_TEST(test_fork_shares_and_copies_on_write) {
    fixture f;
    setup(&f, 32);
    int32_t slots[8];
    ck_assert_int_eq(append(&f, 0, 6, slots), REASON_OK);
    ck_assert_int_eq(used(&f), 8); /* two blocks */
    /* write recognisable K rows at the 6 slots */
    kv_pool *pool = seq_state_pool(f.ss);
    float k[6 * 4], v[6 * 4];
    for (int i = 0; i < 24; i++) k[i] = v[i] = (float)i;
    f.be->ops->kv_store(f.be, pool, 0, k, v, slots, 6);

    ck_assert_int_eq(seq_state_fork(f.ss, 0, 1), REASON_OK);
    ck_assert_int_eq(seq_state_length(f.ss, 1), 6);
    ck_assert_int_eq(seq_state_block_refs(f.ss, 1, 0), 2);
    ck_assert_int_eq(seq_state_block_refs(f.ss, 1, 5), 2);
    ck_assert_int_eq(used(&f), 8); /* nothing copied */

    int32_t child_slot;
    ck_assert_int_eq(append(&f, 1, 1, &child_slot), REASON_OK);
    /* the partly filled shared block was copied for the child, the full one is still shared */
    ck_assert_int_eq(seq_state_block_refs(f.ss, 1, 0), 2);
    ck_assert_int_eq(seq_state_block_refs(f.ss, 1, 5), 1);
    ck_assert_int_eq(seq_state_block_refs(f.ss, 0, 5), 1);
    ck_assert_int_eq(used(&f), 12);
    ck_assert_int_ne(child_slot / 4, slots[5] / 4);
    /* the copy carries positions 4 and 5 */
    const float *kd = pool->k;
    for (int i = 0; i < 4; i++) {
        ck_assert_float_eq(kd[(size_t)(child_slot - 2) * 4 + i], k[4 * 4 + i]);
        ck_assert_float_eq(kd[(size_t)(child_slot - 1) * 4 + i], k[5 * 4 + i]);
    }
    /* and the parent's block is untouched by the child's write */
    float k7[4] = {-1, -2, -3, -4};
    f.be->ops->kv_store(f.be, pool, 0, k7, k7, &child_slot, 1);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(kd[(size_t)slots[5] * 4 + i], k[5 * 4 + i]);
    teardown(&f);
}
END_TEST

START_TEST(test_exhaustion_leaves_state_intact) {
    fixture f;
    setup(&f, 32); /* 8 blocks */
    ck_assert_int_eq(append(&f, 0, 20, NULL), REASON_OK); /* 5 blocks */
    ck_assert_int_eq(append(&f, 1, 8, NULL), REASON_OK);  /* 2 blocks */
    const int64_t before = used(&f);
    ck_assert_int_eq(append(&f, 2, 8, NULL), REASON_ERR_CONTEXT_FULL);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "KV cache full"));
    ck_assert_int_eq(seq_state_length(f.ss, 0), 20);
    ck_assert_int_eq(seq_state_length(f.ss, 1), 8);
    ck_assert_int_eq(seq_state_length(f.ss, 2), 0);
    ck_assert_int_eq(used(&f), before);
    /* free one, and the same request goes through */
    ck_assert_int_eq(seq_state_truncate(f.ss, 1, 0), REASON_OK);
    ck_assert_int_eq(append(&f, 2, 8, NULL), REASON_OK);
    ck_assert_int_eq(seq_state_length(f.ss, 2), 8);
    teardown(&f);
}
END_TEST

START_TEST(test_shared_prompt_memory) {
    fixture f;
    setup(&f, 256);
    const int32_t P = 40, N = 3, G = 12;
    ck_assert_int_eq(append(&f, 0, P, NULL), REASON_OK);
    for (int32_t s = 1; s <= N; s++) ck_assert_int_eq(seq_state_fork(f.ss, 0, s), REASON_OK);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 0), REASON_OK); /* parent no longer needed */
    for (int32_t g = 0; g < G; g++)
        for (int32_t s = 1; s <= N; s++) ck_assert_int_eq(append(&f, s, 1, NULL), REASON_OK);
    /* P + N*G slots rounded to blocks, not N*(P+G) */
    ck_assert_int_eq(used(&f), P + N * G);
    seq_state_stats st;
    seq_state_get_stats(f.ss, &st);
    ck_assert_int_le(st.slots_peak, P + N * G);
    teardown(&f);
}
END_TEST

START_TEST(test_truncate_and_bad_positions) {
    fixture f;
    setup(&f, 32);
    ck_assert_int_eq(append(&f, 0, 10, NULL), REASON_OK);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 5), REASON_OK);
    ck_assert_int_eq(seq_state_length(f.ss, 0), 5);
    ck_assert_int_eq(used(&f), 8);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 6), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(seq_state_truncate(f.ss, 9, 0), REASON_ERR_INVALID_ARG);
    int32_t seqs[2] = {0, 0}, pos[2] = {5, 7}, slots[2];
    const int32_t *tables[2];
    ck_assert_int_eq(seq_state_prepare(f.ss, seqs, pos, 2, slots, tables), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "batch token 1"));
    ck_assert_int_eq(seq_state_length(f.ss, 0), 5);
    seqs[1] = 7;
    pos[1] = 0;
    ck_assert_int_eq(seq_state_prepare(f.ss, seqs, pos, 2, slots, tables), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(seq_state_fork(f.ss, 0, 0), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(seq_state_fork(f.ss, 1, 0), REASON_ERR_INVALID_ARG); /* child not empty */
    teardown(&f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("seq_state");
    TCase *tc = tcase_create("paged");
    tcase_add_test(tc, test_fork_shares_and_copies_on_write);
    tcase_add_test(tc, test_exhaustion_leaves_state_intact);
    tcase_add_test(tc, test_shared_prompt_memory);
    tcase_add_test(tc, test_truncate_and_bad_positions);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
