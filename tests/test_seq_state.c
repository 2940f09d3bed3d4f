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

/* --- recurrent slots (kind c) -------------------------------------------------------------- */

/* 2 recurrent layers of 3 + 5 floats, 4 sequences, 2 checkpoints. */
static void setup_rec(fixture *f) {
    ck_assert_int_eq(backend_cpu_create(1, 64, &f->be), REASON_OK);
    seq_state_params p = {.n_layer = 1, .kv_dim = 4, .kv_type = REASON_KV_F32, .n_slots = 32,
                          .block_size = 4, .n_seq_max = 4, .n_rec_layer = 2, .rec_conv = 3,
                          .rec_ssm = 5, .n_checkpoint_max = 2};
    ck_assert_int_eq(seq_state_create(f->be, &p, &f->ss), REASON_OK);
}

/* Appends one token to seq and adds v to every float of its slot (a stand-in for a layer). */
static void step(fixture *f, int32_t seq, float v) {
    int32_t slot;
    const int32_t *table;
    const int32_t pos = seq_state_length(f->ss, seq);
    ck_assert_int_eq(seq_state_prepare(f->ss, &seq, &pos, 1, &slot, &table), REASON_OK);
    for (int32_t l = 0; l < 2; l++) {
        float *conv, *ssm;
        seq_state_recurrent(f->ss, seq, l, &conv, &ssm);
        ck_assert_ptr_nonnull(conv);
        ck_assert_ptr_eq(ssm, conv + 3);
        for (int i = 0; i < 8; i++) conv[i] += v;
    }
}

static float first(fixture *f, int32_t seq, int32_t layer) {
    float *conv, *ssm;
    seq_state_recurrent(f->ss, seq, layer, &conv, &ssm);
    ck_assert_ptr_nonnull(conv);
    return ssm[4];
}

START_TEST(test_recurrent_fork_is_lazy) {
    fixture f;
    setup_rec(&f);
    float *conv, *ssm;
    seq_state_recurrent(f.ss, 0, 0, &conv, &ssm);
    ck_assert_ptr_null(conv); /* no slot before the first token */
    step(&f, 0, 1.0f);
    step(&f, 0, 1.0f);
    ck_assert_float_eq(first(&f, 0, 1), 2.0f);
    ck_assert_int_eq(seq_state_fork(f.ss, 0, 1), REASON_OK);
    ck_assert_int_eq(seq_state_fork(f.ss, 0, 2), REASON_OK);
    ck_assert_int_eq(seq_state_slot_refs(f.ss, 1), 3); /* shared, nothing copied yet */
    seq_state_stats st;
    seq_state_get_stats(f.ss, &st);
    ck_assert_int_eq(st.rec_slots_used, 1);
    ck_assert_int_eq(st.rec_slots_total, 6);
    ck_assert_int_eq(st.rec_bytes, 6 * 2 * 8 * 4);
    step(&f, 1, 10.0f); /* the child's first write copies */
    ck_assert_int_eq(seq_state_slot_refs(f.ss, 1), 1);
    ck_assert_int_eq(seq_state_slot_refs(f.ss, 0), 2);
    ck_assert_float_eq(first(&f, 1, 0), 12.0f);
    ck_assert_float_eq(first(&f, 0, 0), 2.0f);
    ck_assert_float_eq(first(&f, 2, 1), 2.0f);
    step(&f, 0, 100.0f); /* the parent's write copies too; child 2 keeps the fork-time state */
    ck_assert_float_eq(first(&f, 0, 0), 102.0f);
    ck_assert_float_eq(first(&f, 2, 0), 2.0f);
    ck_assert_int_eq(seq_state_slot_refs(f.ss, 2), 1);
    seq_state_get_stats(f.ss, &st);
    ck_assert_int_eq(st.rec_slots_used, 3);
    ck_assert_int_eq(st.bytes, st.rec_bytes + 2 * 32 * 4 * 4);
    /* freeing (truncate to 0) releases the slot; a new sequence starts from zero */
    ck_assert_int_eq(seq_state_truncate(f.ss, 1, 0), REASON_OK);
    ck_assert_int_eq(seq_state_slot_refs(f.ss, 1), 0);
    step(&f, 1, 5.0f);
    ck_assert_float_eq(first(&f, 1, 0), 5.0f);
    teardown(&f);
}
END_TEST

START_TEST(test_recurrent_truncate_needs_checkpoint) {
    fixture f;
    setup_rec(&f);
    step(&f, 0, 1.0f);
    step(&f, 0, 1.0f);
    ck_assert_int_eq(seq_state_checkpoint(f.ss, 0), REASON_OK); /* at 2: "end of prompt" */
    ck_assert_int_eq(seq_state_slot_refs(f.ss, 0), 2);
    step(&f, 0, 1.0f);
    ck_assert_int_eq(seq_state_slot_refs(f.ss, 0), 1);
    step(&f, 0, 1.0f);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 3), REASON_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "checkpoint"));
    ck_assert_int_eq(seq_state_length(f.ss, 0), 4);
    ck_assert_float_eq(first(&f, 0, 0), 4.0f);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 4), REASON_OK); /* to its length: no-op */
    /* a fork inherits the checkpoint: both can go back to the prompt */
    ck_assert_int_eq(seq_state_fork(f.ss, 0, 1), REASON_OK);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 2), REASON_OK);
    ck_assert_int_eq(seq_state_length(f.ss, 0), 2);
    ck_assert_float_eq(first(&f, 0, 1), 2.0f);
    step(&f, 0, 7.0f); /* writes a copy; the checkpoint stays intact */
    ck_assert_float_eq(first(&f, 0, 1), 9.0f);
    ck_assert_int_eq(seq_state_truncate(f.ss, 1, 2), REASON_OK);
    ck_assert_float_eq(first(&f, 1, 0), 2.0f);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 2), REASON_OK);
    ck_assert_float_eq(first(&f, 0, 0), 2.0f);
    /* two checkpoints held (seq 0 and its fork's copy): a third is refused */
    step(&f, 2, 1.0f);
    ck_assert_int_eq(seq_state_checkpoint(f.ss, 2), REASON_ERR_CONTEXT_FULL);
    ck_assert_int_eq(seq_state_fork(f.ss, 0, 3), REASON_ERR_CONTEXT_FULL);
    /* truncating below a checkpoint drops it */
    ck_assert_int_eq(seq_state_truncate(f.ss, 1, 0), REASON_OK);
    ck_assert_int_eq(seq_state_checkpoint(f.ss, 2), REASON_OK);
    seq_state_stats st;
    seq_state_get_stats(f.ss, &st);
    ck_assert_int_le(st.rec_slots_used, st.rec_slots_total);
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
    TCase *rec = tcase_create("recurrent");
    tcase_add_test(rec, test_recurrent_fork_is_lazy);
    tcase_add_test(rec, test_recurrent_truncate_needs_checkpoint);
    suite_add_tcase(s, rec);
    return run_suite(s);
}
