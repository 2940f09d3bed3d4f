/* seq_state.c — paged and windowed KV bookkeeping and recurrent slots; see seq_state.h. The K/V
 * bytes live in the backend's kv_pools; this file only decides which block holds which position. */
#include "seq_state.h"

#include <stdlib.h>
#include <string.h>

enum { POOL_PAGED, POOL_WINDOWED, N_POOLS };

/* One KV pool and the bookkeeping of its blocks. */
typedef struct block_pool {
    kv_pool kv;         /* kv.n_layer 0: no layer lives here (no memory allocated) */
    int32_t *refs;      /* (kv.n_blocks) table entries holding each block */
    int32_t *free_list; /* stack of free block indices */
    int32_t *drop;      /* (kv.n_blocks) scratch of prepare: references a release would drop */
    int32_t n_free;
    int32_t peak_used;
} block_pool;

typedef struct sequence {
    int32_t length;
    int32_t n_blocks; /* entries in use of both tables: blocks_for(length) */
    int32_t *table;   /* (max_blocks) paged block index per B positions */
    int32_t *wtable;  /* (max_blocks) windowed block index per B positions, -1 below w_first */
    int32_t w_first;  /* windowed entries below it were released (behind the window) */
    int32_t slot;     /* recurrent slot, -1: none yet */
} sequence;

typedef struct checkpoint {
    int32_t seq; /* owner, -1: entry unused */
    int32_t pos; /* the owner's length when saved */
    int32_t slot;
} checkpoint;

struct seq_state {
    backend *be;
    block_pool pools[N_POOLS];
    bool has_swa;         /* a windowed pool exists */
    int32_t window;       /* W: the largest window of the windowed pool's layers */
    int32_t n_kv_layer;
    int8_t *layer_pool;   /* (n_kv_layer) POOL_* of each attention layer */
    int32_t *layer_index; /* (n_kv_layer) its layer in that pool */
    int32_t n_seq;
    int32_t max_blocks;   /* blocks in the paged pool = most blocks one sequence can hold */
    sequence *seqs;       /* (n_seq) */
    int32_t *table_store; /* (n_seq, 2, max_blocks): paged then windowed table */
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

/* --- block pools ------------------------------------------------------------------------- */

static reason_status pool_init(block_pool *bp, int32_t n_blocks) {
    bp->kv.n_blocks = n_blocks;
    bp->refs = rs_calloc((size_t)n_blocks, sizeof(int32_t), "block reference counts");
    bp->free_list = rs_calloc((size_t)n_blocks, sizeof(int32_t), "free block list");
    bp->drop = rs_calloc((size_t)n_blocks, sizeof(int32_t), "block release scratch");
    if (!bp->refs || !bp->free_list || !bp->drop) return REASON_ERR_NOMEM;
    /* lowest block indices are handed out first */
    for (int32_t b = 0; b < n_blocks; b++) bp->free_list[b] = n_blocks - 1 - b;
    bp->n_free = n_blocks;
    return REASON_OK;
}

static void pool_free(backend *be, block_pool *bp) {
    if (bp->kv.k) be->ops->kv_free(be, &bp->kv);
    free(bp->refs);
    free(bp->free_list);
    free(bp->drop);
}

static int32_t take_block(block_pool *bp) {
    const int32_t b = bp->free_list[--bp->n_free];
    bp->refs[b] = 1;
    const int32_t used = bp->kv.n_blocks - bp->n_free;
    if (used > bp->peak_used) bp->peak_used = used;
    return b;
}

static void drop_block(block_pool *bp, int32_t b) {
    if (--bp->refs[b] == 0) bp->free_list[bp->n_free++] = b;
}

/* Replaces a shared block about to be written by a private copy of it. */
static int32_t copy_block(seq_state *ss, block_pool *bp, int32_t b) {
    const int32_t copy = take_block(bp);
    if (bp->kv.k) ss->be->ops->kv_copy_block(ss->be, &bp->kv, b, copy);
    drop_block(bp, b);
    return copy;
}

/* Windowed blocks of sq lying wholly before its window: [w_first, release_end). The next token,
 * at position length, reads from length - W + 1 on. */
static int32_t release_end(const seq_state *ss, const sequence *sq) {
    const int32_t start = sq->length - ss->window + 1;
    return start > 0 ? start / ss->pools[POOL_WINDOWED].kv.block_size : 0;
}

/* Assigns each attention layer to the paged or the windowed pool; each pool takes one K/V width. */
static reason_status map_layers(seq_state *ss, const seq_state_params *p) {
    int32_t dims[N_POOLS] = {0, 0};
    for (int32_t l = 0; l < p->n_layer; l++) {
        const int32_t w = p->layer_window ? p->layer_window[l] : 0;
        const int32_t dim = p->layer_kv_dim ? p->layer_kv_dim[l] : p->kv_dim;
        if (w < 0 || dim <= 0)
            return rs_error(REASON_ERR_INVALID_ARG,
                            "sequence state: attention layer %d has window %d and K/V width %d", l,
                            w, dim);
        const int32_t k = w > 0 ? POOL_WINDOWED : POOL_PAGED;
        if (dims[k] && dims[k] != dim)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "sequence state: attention layer %d has K/V width %d (n_head_kv * "
                            "head_dim) but the other %s layers have %d; the layers of one kind "
                            "(full or sliding-window) must share one width",
                            l, dim, k == POOL_WINDOWED ? "sliding-window" : "full-attention",
                            dims[k]);
        dims[k] = dim;
        ss->layer_pool[l] = (int8_t)k;
        ss->layer_index[l] = ss->pools[k].kv.n_layer++;
        ss->pools[k].kv.kv_dim = dim;
        if (w > ss->window) ss->window = w;
    }
    ss->has_swa = ss->pools[POOL_WINDOWED].kv.n_layer > 0;
    return REASON_OK;
}

/* Blocks of the windowed pool (seq_state.h): each sequence's window and one batch, rounded out to
 * whole blocks, never more than the paged pool. */
static int32_t windowed_blocks(const seq_state *ss, const seq_state_params *p) {
    const int32_t bs = p->block_size;
    if (p->n_swa_slots > 0) return blocks_for(p->n_swa_slots, bs);
    if (p->n_batch <= 0) return ss->max_blocks;
    const int64_t need = (int64_t)ss->n_seq * (blocks_for(ss->window, bs) + 2) +
                         blocks_for(p->n_batch, bs);
    return need < ss->max_blocks ? (int32_t)need : ss->max_blocks;
}

reason_status seq_state_create(backend *be, const seq_state_params *p, seq_state **out) {
    RS_CHECK_ARG(be && p && out);
    *out = NULL;
    if (p->block_size <= 0 || p->n_slots <= 0 || p->n_seq_max <= 0 || p->n_layer <= 0 ||
        (!p->layer_kv_dim && p->kv_dim <= 0))
        return rs_error(REASON_ERR_INVALID_ARG,
                        "sequence state: block_size %d, n_slots %d, n_seq_max %d, n_layer %d, "
                        "kv_dim %d must be positive",
                        p->block_size, p->n_slots, p->n_seq_max, p->n_layer, p->kv_dim);
    seq_state *ss = rs_calloc(1, sizeof *ss, "sequence state");
    if (!ss) return REASON_ERR_NOMEM;
    ss->be = be;
    ss->n_seq = p->n_seq_max;
    ss->max_blocks = blocks_for(p->n_slots, p->block_size);
    ss->n_kv_layer = p->n_layer;
    for (int k = 0; k < N_POOLS; k++)
        ss->pools[k].kv = (kv_pool){.block_size = p->block_size, .type = p->kv_type};
    reason_status st = REASON_ERR_NOMEM;
    ss->layer_pool = rs_calloc((size_t)p->n_layer, sizeof *ss->layer_pool, "layer pools");
    ss->layer_index = rs_calloc((size_t)p->n_layer, sizeof *ss->layer_index, "layer pools");
    if (!ss->layer_pool || !ss->layer_index) goto fail;
    if ((st = map_layers(ss, p)) != REASON_OK) goto fail;
    st = REASON_ERR_NOMEM;
    ss->seqs = rs_calloc((size_t)ss->n_seq, sizeof *ss->seqs, "sequence table");
    ss->table_store = rs_calloc((size_t)ss->n_seq * 2 * (size_t)ss->max_blocks, sizeof(int32_t),
                                "block tables");
    ss->pending = rs_calloc((size_t)ss->n_seq, sizeof(int32_t), "batch scratch");
    if (!ss->seqs || !ss->table_store || !ss->pending) goto fail;
    for (int32_t s = 0; s < ss->n_seq; s++) {
        ss->seqs[s].table = ss->table_store + (size_t)s * 2 * ss->max_blocks;
        ss->seqs[s].wtable = ss->seqs[s].table + ss->max_blocks;
        ss->seqs[s].slot = -1;
    }
    if ((st = pool_init(&ss->pools[POOL_PAGED], ss->max_blocks)) != REASON_OK) goto fail;
    if (ss->has_swa &&
        (st = pool_init(&ss->pools[POOL_WINDOWED], windowed_blocks(ss, p))) != REASON_OK)
        goto fail;
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
    /* a pool without layers (every attention layer sliding) keeps its bookkeeping, which bounds
     * the positions of the context, but no memory */
    for (int k = 0; k < N_POOLS; k++)
        if (ss->pools[k].kv.n_layer > 0 &&
            (st = be->ops->kv_alloc(be, &ss->pools[k].kv)) != REASON_OK)
            goto fail;
    *out = ss;
    return REASON_OK;
fail:
    seq_state_free(ss);
    return st;
}

void seq_state_free(seq_state *ss) {
    if (!ss) return;
    for (int k = N_POOLS - 1; k >= 0; k--) pool_free(ss->be, &ss->pools[k]);
    free(ss->layer_pool);
    free(ss->layer_index);
    free(ss->seqs);
    free(ss->table_store);
    free(ss->pending);
    if (ss->slot_data) ss->be->ops->release(ss->be, ss->slot_data);
    free(ss->slot_refs);
    free(ss->ckpts);
    free(ss);
}

kv_pool *seq_state_pool(seq_state *ss) { return &ss->pools[POOL_PAGED].kv; }

kv_pool *seq_state_layer_pool(seq_state *ss, int32_t kv_layer, int32_t *pool_layer,
                              bool *windowed) {
    const bool known = kv_layer >= 0 && kv_layer < ss->n_kv_layer;
    const int k = known ? ss->layer_pool[kv_layer] : POOL_PAGED;
    *pool_layer = known ? ss->layer_index[kv_layer] : kv_layer;
    *windowed = k == POOL_WINDOWED;
    return &ss->pools[k].kv;
}
bool seq_state_has_windowed(const seq_state *ss) { return ss->has_swa; }
int32_t seq_state_n_seq(const seq_state *ss) { return ss->n_seq; }
int32_t seq_state_max_positions(const seq_state *ss) {
    return ss->max_blocks * ss->pools[POOL_PAGED].kv.block_size;
}
int32_t seq_state_length(const seq_state *ss, int32_t seq) { return ss->seqs[seq].length; }

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

/* --- placing a batch --------------------------------------------------------------------- */

/* Blocks of one pool a sequence needs to grow by n positions: new blocks, plus a private copy of
 * its last block when that block is shared and partly filled (it is about to be written). The
 * last block is never behind the window, so both tables have it. */
static int32_t blocks_needed(const block_pool *bp, const sequence *s, const int32_t *table,
                             int32_t n) {
    const int32_t bs = bp->kv.block_size;
    int32_t need = blocks_for(s->length + n, bs) - s->n_blocks;
    if (n > 0 && s->length % bs != 0 && bp->refs[table[s->n_blocks - 1]] > 1) need++;
    return need;
}

/* Windowed blocks the releases behind every sequence's window would free: each block counted
 * once, when the releases drop all of its references. */
static int32_t windowed_freed(seq_state *ss) {
    block_pool *bp = &ss->pools[POOL_WINDOWED];
    for (int32_t s = 0; s < ss->n_seq; s++) {
        const sequence *sq = &ss->seqs[s];
        for (int32_t i = sq->w_first, end = release_end(ss, sq); i < end; i++)
            bp->drop[sq->wtable[i]]++;
    }
    int32_t freed = 0;
    for (int32_t s = 0; s < ss->n_seq; s++) {
        const sequence *sq = &ss->seqs[s];
        for (int32_t i = sq->w_first, end = release_end(ss, sq); i < end; i++) {
            const int32_t b = sq->wtable[i];
            if (bp->drop[b]) freed += bp->drop[b] == bp->refs[b];
            bp->drop[b] = 0;
        }
    }
    return freed;
}

static void release_windows(seq_state *ss) {
    block_pool *bp = &ss->pools[POOL_WINDOWED];
    for (int32_t s = 0; s < ss->n_seq; s++) {
        sequence *sq = &ss->seqs[s];
        const int32_t end = release_end(ss, sq);
        for (; sq->w_first < end; sq->w_first++) {
            drop_block(bp, sq->wtable[sq->w_first]);
            sq->wtable[sq->w_first] = -1;
        }
    }
}

/* Grows sq's table in one pool to cover n more positions, copying a shared last block first. */
static void grow(seq_state *ss, block_pool *bp, const sequence *sq, int32_t *table, int32_t n) {
    const int32_t bs = bp->kv.block_size;
    if (sq->length % bs != 0 && bp->refs[table[sq->n_blocks - 1]] > 1)
        table[sq->n_blocks - 1] = copy_block(ss, bp, table[sq->n_blocks - 1]);
    for (int32_t b = sq->n_blocks, target = blocks_for(sq->length + n, bs); b < target; b++)
        table[b] = take_block(bp);
}

reason_status seq_state_prepare(seq_state *ss, const int32_t *seq_id, const int32_t *pos,
                                int32_t n_tok, int32_t *slots, const int32_t **tables,
                                int32_t *swa_slots, const int32_t **swa_tables) {
    block_pool *paged = &ss->pools[POOL_PAGED], *win = &ss->pools[POOL_WINDOWED];
    const int32_t bs = paged->kv.block_size;
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
    int64_t need = 0, need_w = 0;
    for (int32_t s = 0; s < ss->n_seq; s++) {
        if (!ss->pending[s]) continue;
        const sequence *sq = &ss->seqs[s];
        if ((int64_t)sq->length + ss->pending[s] > seq_state_max_positions(ss))
            return rs_error(REASON_ERR_CONTEXT_FULL,
                            "sequence %d would reach %d positions, more than the context's %d",
                            s, sq->length + ss->pending[s], seq_state_max_positions(ss));
        need += blocks_needed(paged, sq, sq->table, ss->pending[s]);
        if (ss->has_swa) need_w += blocks_needed(win, sq, sq->wtable, ss->pending[s]);
    }
    if (need > paged->n_free)
        return rs_error(REASON_ERR_CONTEXT_FULL,
                        "KV cache full: the batch needs %lld more blocks of %d tokens but %d are "
                        "free; free or truncate sequences and retry",
                        (long long)need, bs, paged->n_free);
    if (ss->has_swa && need_w > (int64_t)win->n_free + windowed_freed(ss))
        return rs_error(REASON_ERR_CONTEXT_FULL,
                        "sliding-window KV cache full: the batch needs %lld more blocks of %d "
                        "tokens but %d of %d are free after releasing those behind the windows; "
                        "free sequences or send a smaller batch",
                        (long long)need_w, bs, win->n_free, win->kv.n_blocks);

    /* From here on nothing can fail. */
    if (ss->has_swa) release_windows(ss);
    for (int32_t s = 0; s < ss->n_seq; s++) {
        sequence *sq = &ss->seqs[s];
        if (!ss->pending[s]) continue;
        grow(ss, paged, sq, sq->table, ss->pending[s]);
        if (ss->has_swa) grow(ss, win, sq, sq->wtable, ss->pending[s]);
        if (ss->n_rec_layer) own_slot(ss, sq);
        sq->n_blocks = blocks_for(sq->length + ss->pending[s], bs);
    }
    for (int32_t i = 0; i < n_tok; i++) {
        const sequence *sq = &ss->seqs[seq_id[i]];
        slots[i] = sq->table[pos[i] / bs] * bs + pos[i] % bs;
        tables[i] = sq->table;
        if (ss->has_swa) {
            swa_slots[i] = sq->wtable[pos[i] / bs] * bs + pos[i] % bs;
            swa_tables[i] = sq->wtable;
        }
    }
    for (int32_t s = 0; s < ss->n_seq; s++) ss->seqs[s].length += ss->pending[s];
    return REASON_OK;
}

/* --- truncate and fork ------------------------------------------------------------------- */

reason_status seq_state_truncate(seq_state *ss, int32_t seq, int32_t n_keep) {
    if (seq < 0 || seq >= ss->n_seq)
        return rs_error(REASON_ERR_INVALID_ARG, "sequence id %d outside [0, %d)", seq, ss->n_seq);
    sequence *sq = &ss->seqs[seq];
    if (n_keep < 0 || n_keep > sq->length)
        return rs_error(REASON_ERR_INVALID_ARG, "truncate sequence %d to %d: it has %d positions",
                        seq, n_keep, sq->length);
    const int32_t bs = ss->pools[POOL_PAGED].kv.block_size;
    /* the next token, at n_keep, reads the sliding layers' [n_keep-W+1, n_keep) */
    if (ss->has_swa && n_keep > 0 && n_keep < sq->length) {
        const int32_t from = n_keep - ss->window + 1 > 0 ? n_keep - ss->window + 1 : 0;
        if (sq->w_first > from / bs)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "truncate sequence %d to %d: the sliding-window layers (window %d) "
                            "need positions %d..%d, but the window has moved on (positions before "
                            "%d are released); restore a checkpoint taken at that position "
                            "instead (reason_seq_checkpoint / reason_seq_restore)",
                            seq, n_keep, ss->window, from, n_keep - 1, sq->w_first * bs);
    }
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
    const int32_t keep_blocks = blocks_for(n_keep, bs);
    for (; sq->n_blocks > keep_blocks; sq->n_blocks--) {
        const int32_t i = sq->n_blocks - 1;
        drop_block(&ss->pools[POOL_PAGED], sq->table[i]);
        if (ss->has_swa && i >= sq->w_first) drop_block(&ss->pools[POOL_WINDOWED], sq->wtable[i]);
    }
    if (n_keep == 0) sq->w_first = 0;
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
        ss->pools[POOL_PAGED].refs[p->table[b]]++;
        if (!ss->has_swa) continue;
        c->wtable[b] = p->wtable[b];
        if (b >= p->w_first) ss->pools[POOL_WINDOWED].refs[p->wtable[b]]++;
    }
    c->n_blocks = p->n_blocks;
    c->w_first = p->w_first;
    c->length = p->length;
    return REASON_OK;
}

/* --- statistics -------------------------------------------------------------------------- */

static void pool_stats(const block_pool *bp, int64_t *total, int64_t *used, int64_t *peak,
                       int64_t *bytes) {
    const int64_t bs = bp->kv.block_size;
    *total = (int64_t)bp->kv.n_blocks * bs;
    *used = (int64_t)(bp->kv.n_blocks - bp->n_free) * bs;
    *peak = (int64_t)bp->peak_used * bs;
    *bytes = 2 * (int64_t)bp->kv.n_layer * *total * (int64_t)bp->kv.slot_bytes;
}

void seq_state_get_stats(const seq_state *ss, seq_state_stats *out) {
    memset(out, 0, sizeof *out);
    pool_stats(&ss->pools[POOL_PAGED], &out->slots_total, &out->slots_used, &out->slots_peak,
               &out->bytes);
    if (ss->has_swa)
        pool_stats(&ss->pools[POOL_WINDOWED], &out->swa_slots_total, &out->swa_slots_used,
                   &out->swa_slots_peak, &out->swa_bytes);
    out->rec_slots_total = ss->n_slots_rec;
    for (int32_t i = 0; i < ss->n_slots_rec; i++) out->rec_slots_used += ss->slot_refs[i] > 0;
    out->rec_bytes = (int64_t)ss->n_slots_rec * (int64_t)ss->slot_floats * (int64_t)sizeof(float);
    out->bytes += out->swa_bytes + out->rec_bytes;
}

int32_t seq_state_block_refs(const seq_state *ss, int32_t seq, int32_t pos) {
    const sequence *sq = &ss->seqs[seq];
    if (pos < 0 || pos >= sq->length) return 0;
    return ss->pools[POOL_PAGED].refs[sq->table[pos / ss->pools[POOL_PAGED].kv.block_size]];
}

int32_t seq_state_swa_block_refs(const seq_state *ss, int32_t seq, int32_t pos) {
    const sequence *sq = &ss->seqs[seq];
    if (!ss->has_swa || pos < 0 || pos >= sq->length) return 0;
    const int32_t b = sq->wtable[pos / ss->pools[POOL_WINDOWED].kv.block_size];
    return b < 0 ? 0 : ss->pools[POOL_WINDOWED].refs[b];
}

const int32_t *seq_state_table(const seq_state *ss, int32_t seq, bool windowed) {
    return windowed ? ss->seqs[seq].wtable : ss->seqs[seq].table;
}
