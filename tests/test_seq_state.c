/* test_seq_state.c — paged KV bookkeeping: block sharing by fork, copy-on-write of a shared
 * partly filled block, truncate, exhaustion that leaves everything intact, memory counters;
 * windowed KV (blocks behind the window released and reused, fork, checkpoints, truncate
 * allowed or refused, all-or-nothing when full, a randomised run against a shadow copy);
 * recurrent slots. */
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
    return seq_state_prepare(f->ss, seqs, pos, n, slots ? slots : local, tables, NULL, NULL);
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
    ck_assert_int_eq(seq_state_prepare(f.ss, seqs, pos, 2, slots, tables, NULL, NULL), REASON_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "batch token 1"));
    ck_assert_int_eq(seq_state_length(f.ss, 0), 5);
    seqs[1] = 7;
    pos[1] = 0;
    ck_assert_int_eq(seq_state_prepare(f.ss, seqs, pos, 2, slots, tables, NULL, NULL), REASON_ERR_INVALID_ARG);
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
    ck_assert_int_eq(seq_state_prepare(f->ss, &seq, &pos, 1, &slot, &table, NULL, NULL), REASON_OK);
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

/* --- windowed KV (kind b) ----------------------------------------------------------------- */

enum { W = 4, BS = 4 };

/* Attention layers: 0 sliding (window W, K/V width 8), 1 full (width 4), 2 sliding (window 2,
 * width 8): the windowed pool holds layers 0 and 2 and keeps W positions. F32, blocks of BS. */
static void setup_swa(fixture *f, int32_t n_slots, int32_t n_swa_slots, int32_t n_batch) {
    ck_assert_int_eq(backend_cpu_create(1, 64, &f->be), REASON_OK);
    static const int32_t window[3] = {W, 0, 2}, dim[3] = {8, 4, 8};
    seq_state_params p = {.n_layer = 3, .layer_kv_dim = dim, .layer_window = window,
                          .n_batch = n_batch, .n_swa_slots = n_swa_slots,
                          .kv_type = REASON_KV_F32, .n_slots = n_slots, .block_size = BS,
                          .n_seq_max = 4};
    ck_assert_msg(seq_state_create(f->be, &p, &f->ss) == REASON_OK, "%s", reason_last_error());
}

/* Places one batch of n[s] tokens for each sequence s < 4. */
static reason_status append_many(fixture *f, const int32_t n[4], int32_t *slots, int32_t *wslots) {
    int32_t seqs[64], pos[64], local[64], wlocal[64], k = 0;
    const int32_t *tables[64], *wtables[64];
    for (int32_t s = 0; s < 4; s++)
        for (int32_t i = 0; i < n[s]; i++) {
            seqs[k] = s;
            pos[k++] = seq_state_length(f->ss, s) + i;
        }
    return seq_state_prepare(f->ss, seqs, pos, k, slots ? slots : local, tables,
                             wslots ? wslots : wlocal, wtables);
}

static reason_status append_w(fixture *f, int32_t seq, int32_t n) {
    int32_t counts[4] = {0, 0, 0, 0};
    counts[seq] = n;
    return append_many(f, counts, NULL, NULL);
}

static seq_state_stats stats(fixture *f) {
    seq_state_stats s;
    seq_state_get_stats(f->ss, &s);
    return s;
}

START_TEST(test_window_layers_and_stats) {
    fixture f;
    setup_swa(&f, 256, 0, 8);
    int32_t pl;
    bool windowed;
    kv_pool *p0 = seq_state_layer_pool(f.ss, 0, &pl, &windowed);
    ck_assert(windowed && pl == 0 && p0->kv_dim == 8 && p0->n_layer == 2);
    kv_pool *p1 = seq_state_layer_pool(f.ss, 1, &pl, &windowed);
    ck_assert(!windowed && pl == 0 && p1->kv_dim == 4 && p1->n_layer == 1);
    ck_assert_ptr_eq(p1, seq_state_pool(f.ss));
    ck_assert_ptr_eq(seq_state_layer_pool(f.ss, 2, &pl, &windowed), p0);
    ck_assert(windowed && pl == 1);
    ck_assert(seq_state_has_windowed(f.ss));
    /* sized for 4 sequences of window W plus a batch of 8: 4 * (1 + 2) + 2 blocks */
    seq_state_stats st = stats(&f);
    ck_assert_int_eq(st.slots_total, 256);
    ck_assert_int_eq(st.swa_slots_total, 14 * BS);
    ck_assert_int_eq(st.swa_bytes, 2 * 2 * 14 * BS * 8 * 4);
    ck_assert_int_eq(st.bytes, 2 * 1 * 256 * 4 * 4 + st.swa_bytes);
    teardown(&f);

    /* a K/V width that differs within one kind of layer is refused; no windows, no second pool */
    ck_assert_int_eq(backend_cpu_create(1, 64, &f.be), REASON_OK);
    const int32_t window[3] = {W, 0, 2}, dim[3] = {8, 4, 6};
    seq_state_params p = {.n_layer = 3, .layer_kv_dim = dim, .layer_window = window,
                          .kv_type = REASON_KV_F32, .n_slots = 64, .block_size = BS,
                          .n_seq_max = 2};
    f.ss = NULL;
    ck_assert_int_eq(seq_state_create(f.be, &p, &f.ss), REASON_ERR_UNSUPPORTED);
    ck_assert_ptr_null(f.ss);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "K/V width 6"));
    p.layer_window = NULL;
    ck_assert_int_eq(seq_state_create(f.be, &p, &f.ss), REASON_ERR_UNSUPPORTED); /* 8, 4, 6 */
    const int32_t same[3] = {4, 4, 4};
    p.layer_kv_dim = same;
    ck_assert_int_eq(seq_state_create(f.be, &p, &f.ss), REASON_OK);
    ck_assert(!seq_state_has_windowed(f.ss));
    ck_assert_int_eq(seq_state_layer_pool(f.ss, 2, &pl, &windowed)->n_layer, 3);
    ck_assert(!windowed && pl == 2);
    ck_assert_int_eq(stats(&f).swa_slots_total, 0);
    teardown(&f);
}
END_TEST

/* Token by token, a sequence holds the blocks covering its last W positions, never more than
 * W + BS slots; a long batch holds all of its positions until the next prepare. */
START_TEST(test_window_releases_blocks) {
    fixture f;
    setup_swa(&f, 256, 0, 32);
    for (int32_t t = 0; t < 23; t++) {
        ck_assert_int_eq(append_w(&f, 0, 1), REASON_OK);
        const int32_t len = t + 1;
        ck_assert_int_le(stats(&f).swa_slots_used, W + BS);
        ck_assert_int_eq(stats(&f).slots_used, (len + BS - 1) / BS * BS); /* full layers keep all */
        /* the window of the token just placed (position t) is held */
        for (int32_t p = t - W + 1 > 0 ? t - W + 1 : 0; p <= t; p++)
            ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, p), 1);
    }
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 0), 0);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 15), 0);
    ck_assert_int_eq(seq_state_table(f.ss, 0, true)[0], -1);
    ck_assert_int_ge(seq_state_table(f.ss, 0, false)[0], 0);
    ck_assert_int_eq(seq_state_block_refs(f.ss, 0, 0), 1);
    /* a batch of 20 at 23 holds its first token's window and all 20 slots while it runs:
     * [20, 43) in blocks 5..10 */
    ck_assert_int_eq(append_w(&f, 0, 20), REASON_OK);
    ck_assert_int_eq(stats(&f).swa_slots_used, 44 - 20);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 20), 1);
    /* the next prepare (of any sequence) releases what position 43 cannot see: 40..42 stay */
    ck_assert_int_eq(append_w(&f, 1, 1), REASON_OK);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 39), 0);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 40), 1);
    ck_assert_int_eq(stats(&f).swa_slots_used, BS + BS);
    teardown(&f);
}
END_TEST

/* A windowed pool of 4 blocks serves two sequences of 40 positions each: released blocks are
 * reused, by the other sequence too. */
START_TEST(test_window_reuses_blocks) {
    fixture f;
    setup_swa(&f, 128, 4 * BS, 0);
    const int32_t both[4] = {1, 1, 0, 0};
    int32_t wslots[2];
    bool seen[4] = {false, false, false, false};
    for (int32_t t = 0; t < 40; t++) {
        ck_assert_msg(append_many(&f, both, NULL, wslots) == REASON_OK, "%s", reason_last_error());
        for (int i = 0; i < 2; i++) {
            ck_assert_int_lt(wslots[i], 4 * BS);
            seen[wslots[i] / BS] = true;
        }
    }
    ck_assert(seen[0] && seen[1] && seen[2] && seen[3]);
    ck_assert_int_eq(seq_state_length(f.ss, 1), 40);
    ck_assert_int_eq(stats(&f).slots_used, 80);
    ck_assert_int_le(stats(&f).swa_slots_peak, 4 * BS);
    teardown(&f);
}
END_TEST

/* The windowed pool's layer-0 K row (8 floats) of position p of seq. */
static const float *swa_row(fixture *f, int32_t seq, int32_t p) {
    int32_t pl;
    bool windowed;
    const kv_pool *pool = seq_state_layer_pool(f->ss, 0, &pl, &windowed);
    const int32_t b = seq_state_table(f->ss, seq, true)[p / BS];
    ck_assert_int_ge(b, 0);
    return (const float *)pool->k + ((size_t)b * BS + (size_t)(p % BS)) * 8;
}

/* Writes value v + position into every K float of the windowed layer 0 at wslots. */
static void write_swa(fixture *f, const int32_t *wslots, int32_t n, int32_t first_pos, float v) {
    int32_t pl;
    bool windowed;
    kv_pool *pool = seq_state_layer_pool(f->ss, 0, &pl, &windowed);
    float k[64 * 8];
    for (int32_t i = 0; i < n * 8; i++) k[i] = v + (float)(first_pos + i / 8);
    f->be->ops->kv_store(f->be, pool, 0, k, k, wslots, n);
}

START_TEST(test_window_fork_copies_on_write) {
    fixture f;
    setup_swa(&f, 64, 0, 16);
    int32_t wslots[8];
    const int32_t six[4] = {6, 0, 0, 0};
    ck_assert_int_eq(append_many(&f, six, NULL, wslots), REASON_OK);
    write_swa(&f, wslots, 6, 0, 100.0f);
    ck_assert_int_eq(seq_state_fork(f.ss, 0, 1), REASON_OK);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 1, 0), 2);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 1, 5), 2);
    ck_assert_int_eq(stats(&f).swa_slots_used, 8);
    const int32_t child[4] = {0, 1, 0, 0};
    ck_assert_int_eq(append_many(&f, child, NULL, wslots), REASON_OK);
    /* the partly filled shared block was copied for the child; block 0, behind the child's
     * window at 6 (it reads 3..6), is still shared: no prepare has released it */
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 1, 5), 1);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 5), 1);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 1, 0), 2);
    ck_assert_int_eq(stats(&f).swa_slots_used, 12);
    ck_assert_float_eq(swa_row(&f, 1, 4)[0], 104.0f);
    ck_assert_float_eq(swa_row(&f, 1, 5)[7], 105.0f);
    write_swa(&f, wslots, 1, 6, 200.0f);
    ck_assert_float_eq(swa_row(&f, 1, 6)[0], 206.0f);
    ck_assert_int_ne(seq_state_table(f.ss, 0, true)[1], seq_state_table(f.ss, 1, true)[1]);
    ck_assert_float_eq(swa_row(&f, 0, 5)[0], 105.0f);
    /* the next prepare releases block 0 from the child (at 7 it reads 4..7) but not from the
     * parent (at 6 it reads 3..6); the one after from the parent too */
    ck_assert_int_eq(append_w(&f, 0, 2), REASON_OK); /* parent 6 -> 8 */
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 0), 1);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 1, 0), 0);
    ck_assert_int_eq(append_w(&f, 0, 1), REASON_OK);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 0), 0);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 1, 0), 0);
    teardown(&f);
}
END_TEST

/* A checkpoint (a forked spare sequence) keeps the window's blocks; after the window moved on
 * truncate is refused and the checkpoint restores the sequence. */
START_TEST(test_window_checkpoint_restore) {
    fixture f;
    setup_swa(&f, 64, 0, 16);
    int32_t wslots[16];
    const int32_t prompt[4] = {11, 0, 0, 0};
    ck_assert_int_eq(append_many(&f, prompt, NULL, wslots), REASON_OK);
    write_swa(&f, wslots, 11, 0, 100.0f);
    ck_assert_int_eq(seq_state_fork(f.ss, 0, 3), REASON_OK); /* checkpoint at 11 */
    const int32_t one[4] = {1, 0, 0, 0};
    for (int32_t t = 11; t < 23; t++) {
        ck_assert_int_eq(append_many(&f, one, NULL, wslots), REASON_OK);
        write_swa(&f, wslots, 1, t, 500.0f);
    }
    const int64_t used_before = stats(&f).swa_slots_used;
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 11), REASON_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "window has moved on"));
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "checkpoint"));
    ck_assert_int_eq(seq_state_length(f.ss, 0), 23);
    ck_assert_int_eq(stats(&f).swa_slots_used, used_before);
    /* the checkpoint holds positions 8..10 (released below 8 = 11 - W + 1 rounded down) */
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 3, 4), 0);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 3, 8), 1);
    /* restore = free + fork */
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 0), REASON_OK);
    ck_assert_int_eq(seq_state_fork(f.ss, 3, 0), REASON_OK);
    ck_assert_int_eq(seq_state_length(f.ss, 0), 11);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 10), 2);
    for (int32_t p = 8; p < 11; p++) ck_assert_float_eq(swa_row(&f, 0, p)[3], 100.0f + p);
    /* decoding on copies the shared partly filled block; the checkpoint keeps its data */
    ck_assert_int_eq(append_many(&f, one, NULL, wslots), REASON_OK);
    write_swa(&f, wslots, 1, 11, 900.0f);
    ck_assert_float_eq(swa_row(&f, 0, 11)[0], 911.0f);
    ck_assert_float_eq(swa_row(&f, 0, 10)[0], 110.0f);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 3, 10), 1);
    ck_assert_int_eq(seq_state_length(f.ss, 3), 11);
    teardown(&f);
}
END_TEST

START_TEST(test_window_truncate) {
    fixture f;
    setup_swa(&f, 64, 0, 16);
    ck_assert_int_eq(append_w(&f, 0, 10), REASON_OK);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 7), REASON_OK); /* nothing released yet */
    ck_assert_int_eq(append_w(&f, 0, 1), REASON_OK);             /* releases block 0: 0..3 */
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 3), 0);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 7), REASON_OK); /* 7 reads 4..6: held */
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 6), REASON_ERR_UNSUPPORTED); /* reads 3..5 */
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "window has moved on"));
    ck_assert_int_eq(seq_state_length(f.ss, 0), 7);
    /* back to the first token of the last batch always works */
    ck_assert_int_eq(append_w(&f, 0, 9), REASON_OK); /* 7 -> 16; released below 4 */
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 7), REASON_OK);
    ck_assert_int_eq(stats(&f).swa_slots_used, 4); /* block 1 (4..7) */
    ck_assert_int_eq(stats(&f).slots_used, 8);
    /* to its length and to 0 always */
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 7), REASON_OK);
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 0), REASON_OK);
    ck_assert_int_eq(stats(&f).swa_slots_used, 0);
    ck_assert_int_eq(stats(&f).slots_used, 0);
    ck_assert_int_eq(append_w(&f, 0, 2), REASON_OK);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 0), 1);
    teardown(&f);
}
END_TEST

/* A full windowed (or paged) pool refuses the whole batch and changes nothing, releases
 * included; a block shared by a sequence that still needs it is not counted as freed. */
START_TEST(test_window_full_is_all_or_nothing) {
    fixture f;
    setup_swa(&f, 40, 3 * BS, 0); /* 10 paged blocks, 3 windowed */
    ck_assert_int_eq(append_w(&f, 0, 8), REASON_OK);
    ck_assert_int_eq(seq_state_fork(f.ss, 0, 1), REASON_OK);
    ck_assert_int_eq(seq_state_truncate(f.ss, 1, 5), REASON_OK); /* still reads 2..4 */
    /* seq 0 at 8 drops its reference to block 0 but seq 1 keeps it: 1 block free, 2 needed */
    const int32_t two[4] = {1, 0, 1, 0};
    const seq_state_stats before = stats(&f);
    ck_assert_int_eq(append_many(&f, two, NULL, NULL), REASON_ERR_CONTEXT_FULL);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "sliding-window KV cache full"));
    const seq_state_stats after = stats(&f);
    ck_assert_int_eq(after.swa_slots_used, before.swa_slots_used);
    ck_assert_int_eq(after.slots_used, before.slots_used);
    ck_assert_int_eq(seq_state_length(f.ss, 0), 8);
    ck_assert_int_eq(seq_state_length(f.ss, 2), 0);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 0), 2); /* not released */
    ck_assert_int_eq(seq_state_truncate(f.ss, 0, 5), REASON_OK); /* so this still works */
    ck_assert_int_eq(append_w(&f, 0, 3), REASON_OK);
    /* once seq 1 lets go, the same batch fits: seq 1 moves to 8 then both release block 0 */
    ck_assert_int_eq(append_w(&f, 1, 3), REASON_OK); /* 5 -> 8; shared block 1 copied */
    ck_assert_int_eq(append_many(&f, two, NULL, NULL), REASON_ERR_CONTEXT_FULL);
    ck_assert_int_eq(seq_state_truncate(f.ss, 1, 0), REASON_OK);
    ck_assert_int_eq(append_many(&f, two, NULL, NULL), REASON_OK);
    ck_assert_int_eq(seq_state_swa_block_refs(f.ss, 0, 0), 0);
    ck_assert_int_eq(seq_state_length(f.ss, 2), 1);
    /* the paged pool full (10 blocks: 3 + 1 held, 7 asked): windowed state untouched */
    ck_assert_int_eq(append_w(&f, 2, 2), REASON_OK); /* seq 2: 1 -> 3 */
    const seq_state_stats held = stats(&f);
    ck_assert_int_eq(append_w(&f, 3, 28), REASON_ERR_CONTEXT_FULL);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "KV cache full"));
    ck_assert_int_eq(stats(&f).swa_slots_used, held.swa_slots_used);
    ck_assert_int_eq(stats(&f).slots_used, held.slots_used);
    teardown(&f);
}
END_TEST

/* Random batches, forks, truncates and frees over 4 sequences with the windowed pool sized from
 * n_batch: it never fills before the paged pool, and every position a sequence's next token can
 * read holds what was written there (a shadow copy, per sequence). */
START_TEST(test_window_random_against_shadow) {
    fixture f;
    enum { N_BATCH = 9, MAXP = 96 };
    setup_swa(&f, MAXP, 0, N_BATCH);
    static float shadow[4][MAXP];
    uint32_t rng = 12345;
#define RAND(n) ((int32_t)(((rng = rng * 1103515245u + 12345u) >> 16) % (uint32_t)(n)))
    float next_value = 1.0f;
    int32_t n_ok = 0, n_full = 0;
    for (int32_t step = 0; step < 3000; step++) {
        const int32_t op = RAND(10);
        const int32_t s = RAND(4);
        const int32_t len = seq_state_length(f.ss, s);
        if (op < 6) {
            int32_t counts[4] = {0, 0, 0, 0}, left = 1 + RAND(N_BATCH);
            for (int32_t k = 0; k < 4 && left > 0; k++) {
                const int32_t c = k == 3 ? left : RAND(left + 1);
                counts[k] = c;
                left -= c;
            }
            int32_t slots[N_BATCH], wslots[N_BATCH];
            const reason_status st = append_many(&f, counts, slots, wslots);
            if (st == REASON_ERR_CONTEXT_FULL) {
                ck_assert_ptr_null(strstr(reason_last_error(), "sliding-window"));
                n_full++;
                /* make room */
                ck_assert_int_eq(seq_state_truncate(f.ss, RAND(4), 0), REASON_OK);
                continue;
            }
            ck_assert_msg(st == REASON_OK, "%s", reason_last_error());
            n_ok++;
            int32_t i = 0;
            for (int32_t k = 0; k < 4; k++)
                for (int32_t j = 0; j < counts[k]; j++, i++) {
                    const int32_t p = seq_state_length(f.ss, k) - counts[k] + j;
                    shadow[k][p] = next_value;
                    float row[8];
                    for (int d = 0; d < 8; d++) row[d] = next_value;
                    int32_t pl;
                    bool windowed;
                    kv_pool *wp = seq_state_layer_pool(f.ss, 0, &pl, &windowed);
                    f.be->ops->kv_store(f.be, wp, 0, row, row, &wslots[i], 1);
                    f.be->ops->kv_store(f.be, seq_state_pool(f.ss), 0, row, row, &slots[i], 1);
                    next_value += 1.0f;
                }
        } else if (op < 7) {
            const int32_t c = RAND(4);
            if (c != s && seq_state_length(f.ss, c) == 0) {
                ck_assert_int_eq(seq_state_fork(f.ss, s, c), REASON_OK);
                memcpy(shadow[c], shadow[s], sizeof shadow[s]);
            }
        } else if (op < 9) {
            const int32_t keep = len ? len - RAND(RS_MIN(len, 6) + 1) : 0;
            const reason_status st = seq_state_truncate(f.ss, s, keep);
            ck_assert(st == REASON_OK || st == REASON_ERR_UNSUPPORTED);
        } else {
            ck_assert_int_eq(seq_state_truncate(f.ss, s, 0), REASON_OK);
        }
        /* every sequence: what its next token reads is intact, in both pools */
        for (int32_t k = 0; k < 4; k++) {
            const int32_t L = seq_state_length(f.ss, k);
            const int32_t *pt = seq_state_table(f.ss, k, false);
            for (int32_t p = L - W + 1 > 0 ? L - W + 1 : 0; p < L; p++) {
                ck_assert_float_eq(swa_row(&f, k, p)[5], shadow[k][p]);
                const float *pk = (const float *)seq_state_pool(f.ss)->k;
                ck_assert_float_eq(pk[((size_t)pt[p / BS] * BS + p % BS) * 4 + 1], shadow[k][p]);
            }
            for (int32_t p = 0; p < L; p++) ck_assert_int_gt(seq_state_block_refs(f.ss, k, p), 0);
        }
        const seq_state_stats st = stats(&f);
        ck_assert_int_le(st.swa_slots_used, st.slots_used);
    }
#undef RAND
    ck_assert_int_gt(n_ok, 500);
    ck_assert_int_gt(n_full, 0);
    const seq_state_stats st = stats(&f);
    ck_assert_int_lt(st.swa_slots_total, st.slots_total);
    ck_assert_int_le(st.swa_slots_peak, st.swa_slots_total);
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
    TCase *win = tcase_create("windowed");
    tcase_add_test(win, test_window_layers_and_stats);
    tcase_add_test(win, test_window_releases_blocks);
    tcase_add_test(win, test_window_reuses_blocks);
    tcase_add_test(win, test_window_fork_copies_on_write);
    tcase_add_test(win, test_window_checkpoint_restore);
    tcase_add_test(win, test_window_truncate);
    tcase_add_test(win, test_window_full_is_all_or_nothing);
    tcase_add_test(win, test_window_random_against_shadow);
    suite_add_tcase(s, win);
    TCase *rec = tcase_create("recurrent");
    tcase_add_test(rec, test_recurrent_fork_is_lazy);
    tcase_add_test(rec, test_recurrent_truncate_needs_checkpoint);
    suite_add_tcase(s, rec);
    return run_suite(s);
}
