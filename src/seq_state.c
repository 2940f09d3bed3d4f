/* seq_state.c — paged KV bookkeeping; see seq_state.h. The K/V bytes live in the backend's
 * kv_pool; this file only decides which block holds which position. */
#include "seq_state.h"

#include <stdlib.h>
#include <string.h>

typedef struct sequence {
    int32_t length;
    int32_t n_blocks;
    int32_t *table; /* (max_blocks) block index per B positions */
    int32_t slot;   /* recurrent slot, -1: none yet */
} sequence;

typedef struct checkpoint {
    int32_t seq; /* owner, -1: entry unused */
    int32_t pos; /* the owner's length when saved */
    int32_t slot;
} checkpoint;

struct seq_state {
    backend *be;
    kv_pool pool;
    int32_t n_seq;
    int32_t max_blocks;   /* blocks in the pool = most blocks one sequence can hold */
    sequence *seqs;       /* (n_seq) */
    int32_t *table_store; /* (n_seq, max_blocks) */
    int32_t *refs;        /* (max_blocks) sequences holding each block */
    int32_t *free_list;   /* stack of free block indices */
    int32_t n_free;
    int32_t peak_used;
    int32_t *pending;     /* (n_seq) scratch: tokens of each sequence in the batch being placed */
    /* recurrent slots: n_seq + n_ckpt of them, enough for every sequence to hold a private one
     * while every checkpoint holds another, so placing a batch never runs out */
    int32_t n_rec_layer, rec_conv, rec_ssm;
    size_t slot_floats;   /* n_rec_layer * (rec_conv + rec_ssm) */
    int32_t n_slots_rec;
    float *slot_data;     /* (n_slots_rec, slot_floats) */
    int32_t *slot_refs;   /* (n_slots_rec) */
    int32_t n_ckpt;
    checkpoint *ckpts;    /* (n_ckpt) */
};

static int32_t blocks_for(int32_t positions, int32_t block_size) {
    return (positions + block_size - 1) / block_size;
}

reason_status seq_state_create(backend *be, const seq_state_params *p, seq_state **out) {
    RS_CHECK_ARG(be && p && out);
    *out = NULL;
    if (p->block_size <= 0 || p->n_slots <= 0 || p->n_seq_max <= 0 || p->n_layer <= 0 ||
        p->kv_dim <= 0)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "sequence state: block_size %d, n_slots %d, n_seq_max %d must be positive",
                        p->block_size, p->n_slots, p->n_seq_max);
    seq_state *ss = rs_calloc(1, sizeof *ss, "sequence state");
    if (!ss) return REASON_ERR_NOMEM;
    ss->be = be;
    ss->n_seq = p->n_seq_max;
    ss->max_blocks = blocks_for(p->n_slots, p->block_size);
    ss->pool = (kv_pool){.n_layer = p->n_layer, .kv_dim = p->kv_dim, .block_size = p->block_size,
                         .n_blocks = ss->max_blocks, .type = p->kv_type};
    reason_status st = REASON_ERR_NOMEM;
    ss->seqs = rs_calloc((size_t)ss->n_seq, sizeof *ss->seqs, "sequence table");
    ss->table_store = rs_calloc((size_t)ss->n_seq * (size_t)ss->max_blocks, sizeof(int32_t),
                                "block tables");
    ss->refs = rs_calloc((size_t)ss->max_blocks, sizeof(int32_t), "block reference counts");
    ss->free_list = rs_calloc((size_t)ss->max_blocks, sizeof(int32_t), "free block list");
    ss->pending = rs_calloc((size_t)ss->n_seq, sizeof(int32_t), "batch scratch");
    if (!ss->seqs || !ss->table_store || !ss->refs || !ss->free_list || !ss->pending) goto fail;
    for (int32_t s = 0; s < ss->n_seq; s++)
        ss->seqs[s].table = ss->table_store + (size_t)s * ss->max_blocks;
    /* lowest block indices are handed out first */
    for (int32_t b = 0; b < ss->max_blocks; b++) ss->free_list[b] = ss->max_blocks - 1 - b;
    ss->n_free = ss->max_blocks;
    for (int32_t s = 0; s < ss->n_seq; s++) ss->seqs[s].slot = -1;
    if (p->n_rec_layer > 0) {
        if (p->rec_conv < 0 || p->rec_ssm <= 0 || p->n_checkpoint_max < 0) {
            st = rs_error(REASON_ERR_INVALID_ARG, "sequence state: recurrent slot of %d + %d floats, "
                          "%d checkpoints", p->rec_conv, p->rec_ssm, p->n_checkpoint_max);
            goto fail;
        }
        ss->n_rec_layer = p->n_rec_layer;
        ss->rec_conv = p->rec_conv;
        ss->rec_ssm = p->rec_ssm;
        ss->slot_floats = (size_t)p->n_rec_layer * ((size_t)p->rec_conv + (size_t)p->rec_ssm);
        ss->n_slots_rec = ss->n_seq + p->n_checkpoint_max;
        ss->n_ckpt = p->n_checkpoint_max;
        ss->slot_data = be->ops->alloc(be, (size_t)ss->n_slots_rec * ss->slot_floats * sizeof(float),
                                       "recurrent state slots");
        ss->slot_refs = rs_calloc((size_t)ss->n_slots_rec, sizeof(int32_t), "slot reference counts");
        ss->ckpts = rs_calloc((size_t)(ss->n_ckpt ? ss->n_ckpt : 1), sizeof(checkpoint), "checkpoints");
        if (!ss->slot_data || !ss->slot_refs || !ss->ckpts) goto fail;
        for (int32_t c = 0; c < ss->n_ckpt; c++) ss->ckpts[c].seq = -1;
    }
    if ((st = be->ops->kv_alloc(be, &ss->pool)) != REASON_OK) goto fail;
    *out = ss;
    return REASON_OK;
fail:
    seq_state_free(ss);
    return st;
}

void seq_state_free(seq_state *ss) {
    if (!ss) return;
    if (ss->pool.k) ss->be->ops->kv_free(ss->be, &ss->pool);
    free(ss->seqs);
    free(ss->table_store);
    free(ss->refs);
    free(ss->free_list);
    free(ss->pending);
    if (ss->slot_data) ss->be->ops->release(ss->be, ss->slot_data);
    free(ss->slot_refs);
    free(ss->ckpts);
    free(ss);
}

kv_pool *seq_state_pool(seq_state *ss) { return &ss->pool; }

/* Every attention layer in the paged pool for now: sliding-window layers are masked by the
 * attention op (attn_params.window) but keep all their blocks. */
kv_pool *seq_state_layer_pool(seq_state *ss, int32_t kv_layer, int32_t *pool_layer,
                              bool *windowed) {
    *pool_layer = kv_layer;
    *windowed = false;
    return &ss->pool;
}
int32_t seq_state_n_seq(const seq_state *ss) { return ss->n_seq; }
int32_t seq_state_max_positions(const seq_state *ss) {
    return ss->max_blocks * ss->pool.block_size;
}
int32_t seq_state_length(const seq_state *ss, int32_t seq) { return ss->seqs[seq].length; }

static int32_t take_block(seq_state *ss) {
    const int32_t b = ss->free_list[--ss->n_free];
    ss->refs[b] = 1;
    const int32_t used = ss->max_blocks - ss->n_free;
    if (used > ss->peak_used) ss->peak_used = used;
    return b;
}

static void drop_block(seq_state *ss, int32_t b) {
    if (--ss->refs[b] == 0) ss->free_list[ss->n_free++] = b;
}

/* --- recurrent slots --------------------------------------------------------------------- */

static float *slot_ptr(const seq_state *ss, int32_t slot) {
    return ss->slot_data + (size_t)slot * ss->slot_floats;
}

/* A free slot exists whenever the caller keeps the invariant described at slot_data. */
static int32_t take_slot(seq_state *ss) {
    for (int32_t i = 0; i < ss->n_slots_rec; i++)
        if (ss->slot_refs[i] == 0) {
            ss->slot_refs[i] = 1;
            return i;
        }
    return -1;
}

static void drop_slot(seq_state *ss, int32_t slot) {
    if (slot >= 0) ss->slot_refs[slot]--;
}

/* Gives seq a private slot before it is written: zeroed when new, copied when shared. */
static void own_slot(seq_state *ss, sequence *sq) {
    if (sq->slot >= 0 && ss->slot_refs[sq->slot] == 1) return;
    const int32_t fresh = take_slot(ss);
    if (sq->slot < 0) {
        memset(slot_ptr(ss, fresh), 0, ss->slot_floats * sizeof(float));
    } else {
        memcpy(slot_ptr(ss, fresh), slot_ptr(ss, sq->slot), ss->slot_floats * sizeof(float));
        drop_slot(ss, sq->slot);
    }
    sq->slot = fresh;
}

/* Releases seq's checkpoints saved after position keep. */
static void drop_checkpoints_after(seq_state *ss, int32_t seq, int32_t keep) {
    for (int32_t c = 0; c < ss->n_ckpt; c++)
        if (ss->ckpts[c].seq == seq && ss->ckpts[c].pos > keep) {
            drop_slot(ss, ss->ckpts[c].slot);
            ss->ckpts[c].seq = -1;
        }
}

void seq_state_recurrent(seq_state *ss, int32_t seq, int32_t rec_layer, float **conv,
                         float **ssm) {
    const int32_t slot = ss->seqs[seq].slot;
    if (slot < 0 || rec_layer < 0 || rec_layer >= ss->n_rec_layer) {
        *conv = *ssm = NULL;
        return;
    }
    float *base = slot_ptr(ss, slot) + (size_t)rec_layer * ((size_t)ss->rec_conv + ss->rec_ssm);
    *conv = base;
    *ssm = base + ss->rec_conv;
}

reason_status seq_state_checkpoint(seq_state *ss, int32_t seq) {
    if (seq < 0 || seq >= ss->n_seq)
        return rs_error(REASON_ERR_INVALID_ARG, "sequence id %d outside [0, %d)", seq, ss->n_seq);
    if (ss->n_rec_layer == 0) return REASON_OK;
    sequence *sq = &ss->seqs[seq];
    for (int32_t c = 0; c < ss->n_ckpt; c++)
        if (ss->ckpts[c].seq == seq && ss->ckpts[c].pos == sq->length) return REASON_OK;
    for (int32_t c = 0; c < ss->n_ckpt; c++)
        if (ss->ckpts[c].seq < 0) {
            if (sq->slot < 0) own_slot(ss, sq); /* an empty sequence: its zero state */
            ss->ckpts[c] = (checkpoint){.seq = seq, .pos = sq->length, .slot = sq->slot};
            ss->slot_refs[sq->slot]++;
            return REASON_OK;
        }
    return rs_error(REASON_ERR_CONTEXT_FULL,
                    "checkpoint of sequence %d: all %d checkpoints are held; truncate or free "
                    "sequences first", seq, ss->n_ckpt);
}

int32_t seq_state_slot_refs(const seq_state *ss, int32_t seq) {
    const int32_t slot = ss->seqs[seq].slot;
    return slot < 0 ? 0 : ss->slot_refs[slot];
}

/* Blocks a sequence needs to grow by n positions: new blocks, plus a private copy of its last
 * block when that block is shared and partly filled (it is about to be written). */
static int32_t blocks_needed(const seq_state *ss, const sequence *s, int32_t n) {
    const int32_t bs = ss->pool.block_size;
    int32_t need = blocks_for(s->length + n, bs) - s->n_blocks;
    if (n > 0 && s->length % bs != 0 && ss->refs[s->table[s->n_blocks - 1]] > 1) need++;
    return need;
}

reason_status seq_state_prepare(seq_state *ss, const int32_t *seq_id, const int32_t *pos,
                                int32_t n_tok, int32_t *slots, const int32_t **tables) {
    const int32_t bs = ss->pool.block_size;
    memset(ss->pending, 0, (size_t)ss->n_seq * sizeof *ss->pending);
    for (int32_t i = 0; i < n_tok; i++) {
        const int32_t s = seq_id[i];
        if (s < 0 || s >= ss->n_seq)
            return rs_error(REASON_ERR_INVALID_ARG, "batch token %d: sequence id %d outside [0, %d)",
                            i, s, ss->n_seq);
        const int32_t expected = ss->seqs[s].length + ss->pending[s];
        if (pos[i] != expected)
            return rs_error(REASON_ERR_INVALID_ARG,
                            "batch token %d: position %d of sequence %d, expected %d (positions "
                            "must continue the sequence in order)",
                            i, pos[i], s, expected);
        ss->pending[s]++;
    }
    int64_t need = 0;
    for (int32_t s = 0; s < ss->n_seq; s++) {
        if (!ss->pending[s]) continue;
        if ((int64_t)ss->seqs[s].length + ss->pending[s] > seq_state_max_positions(ss))
            return rs_error(REASON_ERR_CONTEXT_FULL,
                            "sequence %d would reach %d positions, more than the context's %d",
                            s, ss->seqs[s].length + ss->pending[s], seq_state_max_positions(ss));
        need += blocks_needed(ss, &ss->seqs[s], ss->pending[s]);
    }
    if (need > ss->n_free)
        return rs_error(REASON_ERR_CONTEXT_FULL,
                        "KV cache full: the batch needs %lld more blocks of %d tokens but %d are "
                        "free; free or truncate sequences and retry",
                        (long long)need, bs, ss->n_free);

    /* From here on nothing can fail. */
    for (int32_t s = 0; s < ss->n_seq; s++) {
        sequence *sq = &ss->seqs[s];
        if (!ss->pending[s]) continue;
        if (sq->length % bs != 0) {
            const int32_t last = sq->table[sq->n_blocks - 1];
            if (ss->refs[last] > 1) {
                const int32_t copy = take_block(ss);
                ss->be->ops->kv_copy_block(ss->be, &ss->pool, last, copy);
                drop_block(ss, last);
                sq->table[sq->n_blocks - 1] = copy;
            }
        }
        if (ss->n_rec_layer) own_slot(ss, sq);
        const int32_t target = blocks_for(sq->length + ss->pending[s], bs);
        while (sq->n_blocks < target) sq->table[sq->n_blocks++] = take_block(ss);
    }
    for (int32_t i = 0; i < n_tok; i++) {
        sequence *sq = &ss->seqs[seq_id[i]];
        slots[i] = sq->table[pos[i] / bs] * bs + pos[i] % bs;
        tables[i] = sq->table;
    }
    for (int32_t s = 0; s < ss->n_seq; s++) ss->seqs[s].length += ss->pending[s];
    return REASON_OK;
}

reason_status seq_state_truncate(seq_state *ss, int32_t seq, int32_t n_keep) {
    if (seq < 0 || seq >= ss->n_seq)
        return rs_error(REASON_ERR_INVALID_ARG, "sequence id %d outside [0, %d)", seq, ss->n_seq);
    sequence *sq = &ss->seqs[seq];
    if (n_keep < 0 || n_keep > sq->length)
        return rs_error(REASON_ERR_INVALID_ARG, "truncate sequence %d to %d: it has %d positions",
                        seq, n_keep, sq->length);
    if (ss->n_rec_layer && n_keep != sq->length) {
        int32_t restore = -1;
        for (int32_t c = 0; c < ss->n_ckpt && n_keep > 0; c++)
            if (ss->ckpts[c].seq == seq && ss->ckpts[c].pos == n_keep) restore = ss->ckpts[c].slot;
        if (n_keep > 0 && restore < 0)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "truncate sequence %d to %d: its recurrent layers can only go back to "
                            "0 or to a checkpoint (take one with a checkpoint at that position)",
                            seq, n_keep);
        drop_checkpoints_after(ss, seq, n_keep);
        drop_slot(ss, sq->slot);
        sq->slot = restore;
        if (restore >= 0) ss->slot_refs[restore]++;
    }
    const int32_t keep_blocks = blocks_for(n_keep, ss->pool.block_size);
    while (sq->n_blocks > keep_blocks) drop_block(ss, sq->table[--sq->n_blocks]);
    sq->length = n_keep;
    return REASON_OK;
}

reason_status seq_state_fork(seq_state *ss, int32_t parent, int32_t child) {
    if (parent < 0 || parent >= ss->n_seq || child < 0 || child >= ss->n_seq)
        return rs_error(REASON_ERR_INVALID_ARG, "fork %d -> %d: sequence ids must be in [0, %d)",
                        parent, child, ss->n_seq);
    if (parent == child)
        return rs_error(REASON_ERR_INVALID_ARG, "fork: parent and child are both %d", parent);
    sequence *p = &ss->seqs[parent], *c = &ss->seqs[child];
    if (c->length != 0)
        return rs_error(REASON_ERR_INVALID_ARG, "fork %d -> %d: child holds %d positions; free it first",
                        parent, child, c->length);
    if (ss->n_rec_layer) {
        int32_t free_ck = 0, parent_ck = 0;
        for (int32_t k = 0; k < ss->n_ckpt; k++) {
            free_ck += ss->ckpts[k].seq < 0;
            parent_ck += ss->ckpts[k].seq == parent;
        }
        if (parent_ck > free_ck)
            return rs_error(REASON_ERR_CONTEXT_FULL,
                            "fork %d -> %d: the parent's %d checkpoints do not fit (%d free)",
                            parent, child, parent_ck, free_ck);
        drop_slot(ss, c->slot); /* an empty child may hold a slot (checkpointed at 0) */
        c->slot = p->slot;
        if (p->slot >= 0) ss->slot_refs[p->slot]++;
        for (int32_t k = 0, f = 0; k < ss->n_ckpt; k++) {
            if (ss->ckpts[k].seq != parent) continue;
            while (ss->ckpts[f].seq >= 0) f++;
            ss->ckpts[f] = (checkpoint){.seq = child, .pos = ss->ckpts[k].pos, .slot = ss->ckpts[k].slot};
            ss->slot_refs[ss->ckpts[k].slot]++;
        }
    }
    for (int32_t b = 0; b < p->n_blocks; b++) {
        c->table[b] = p->table[b];
        ss->refs[p->table[b]]++;
    }
    c->n_blocks = p->n_blocks;
    c->length = p->length;
    return REASON_OK;
}

void seq_state_get_stats(const seq_state *ss, seq_state_stats *out) {
    const int64_t bs = ss->pool.block_size;
    out->slots_total = (int64_t)ss->max_blocks * bs;
    out->slots_used = (int64_t)(ss->max_blocks - ss->n_free) * bs;
    out->slots_peak = (int64_t)ss->peak_used * bs;
    out->bytes = 2 * (int64_t)ss->pool.n_layer * out->slots_total * ss->pool.kv_dim *
                 (int64_t)ss->pool.elem_bytes;
    out->rec_slots_total = ss->n_slots_rec;
    out->rec_slots_used = 0;
    for (int32_t i = 0; i < ss->n_slots_rec; i++) out->rec_slots_used += ss->slot_refs[i] > 0;
    out->rec_bytes = (int64_t)ss->n_slots_rec * (int64_t)ss->slot_floats * (int64_t)sizeof(float);
    out->bytes += out->rec_bytes;
}

int32_t seq_state_block_refs(const seq_state *ss, int32_t seq, int32_t pos) {
    const sequence *sq = &ss->seqs[seq];
    if (pos < 0 || pos >= sq->length) return 0;
    return ss->refs[sq->table[pos / ss->pool.block_size]];
}
