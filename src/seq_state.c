/* seq_state.c — paged KV bookkeeping; see seq_state.h. The K/V bytes live in the backend's
 * kv_pool; this file only decides which block holds which position. */
#include "seq_state.h"

#include <stdlib.h>
#include <string.h>

typedef struct sequence {
    int32_t length;
    int32_t n_blocks;
    int32_t *table; /* (max_blocks) block index per B positions */
} sequence;

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
    free(ss);
}

kv_pool *seq_state_pool(seq_state *ss) { return &ss->pool; }
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
}

int32_t seq_state_block_refs(const seq_state *ss, int32_t seq, int32_t pos) {
    const sequence *sq = &ss->seqs[seq];
    if (pos < 0 || pos >= sq->length) return 0;
    return ss->refs[sq->table[pos / ss->pool.block_size]];
}
