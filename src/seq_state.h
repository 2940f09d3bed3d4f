/* seq_state.h — the state of every sequence of a context (DESIGN.md §1).
 *
 * Per layer a sequence's state is one of three kinds: (a) paged KV for full attention, (b)
 * windowed KV for sliding-window layers, (c) a recurrent slot for linear-attention/SSM layers.
 * One interface — prepare a batch, fork, truncate, free — covers all three.
 *
 * Paged KV: a pool of fixed-size blocks of token slots shared by all sequences. Each sequence has
 * a block table (block index of positions [i*B, (i+1)*B)). Blocks are reference counted: fork
 * shares all of the parent's blocks; the first write into a shared block (only the last, partly
 * filled one can be written) copies that block alone.
 *
 * Windowed KV (kind b): the sliding-window attention layers (layer_window > 0) keep their K/V in
 * a second pool with the same block size and KV type, its own block tables (indexed like the
 * paged ones) and reference counts; fork and copy-on-write work as in the paged pool. A token at
 * position p of a layer with window w reads [p-w+1, p]; the pool keeps, per sequence, W = the
 * largest window of its layers. Every seq_state_prepare first releases, for every sequence of
 * length L, the blocks lying wholly before L-W+1 (no later token can read them; their table
 * entries become -1), so a sequence between batches holds at most its last W-1 positions plus
 * its last batch, and during a batch of n tokens at most W-1+n. The windowed pool is therefore
 * sized n_seq_max * (ceil(W/B) + 2) + ceil(n_batch/B) blocks (each sequence's span rounded out to
 * whole blocks on both ends, plus one batch), capped at the paged pool's blocks: windowed blocks
 * are a subset of the paged ones, shared the same way, so the windowed pool never fills first.
 * Truncate to n_keep needs the blocks covering [n_keep-W+1, n_keep) still held: back to the first
 * token of a sequence's last batch always works until the next prepare; further back the window
 * has moved on (REASON_ERR_UNSUPPORTED) and only a checkpoint (a forked sequence, which holds its
 * window's blocks) can go back. Each pool has one K/V width (kv_dim) shared by all its layers.
 *
 * Recurrent slots (kind c): when n_rec_layer > 0 every sequence also owns one slot of
 * n_rec_layer * (rec_conv + rec_ssm) f32 (per recurrent layer: its conv window, then its state
 * matrices), rewritten by every token. Slots are reference counted like blocks: fork shares the
 * parent's slot and the first write (seq_state_prepare) of either side copies it, so a fork costs
 * nothing until a trace decodes. A checkpoint shares a sequence's slot at its current length (again
 * free until the next write); truncate of a recurrent sequence is possible only to its length, to
 * 0 or to one of its checkpoints (REASON_ERR_UNSUPPORTED otherwise: the state cannot be rewound).
 * Fork copies the parent's checkpoints to the child. A new sequence's slot starts zeroed. */
#ifndef REASON_SEQ_STATE_H
#define REASON_SEQ_STATE_H

#include "backend.h"
#include "core.h"

typedef struct seq_state seq_state;

typedef struct seq_state_params {
    int32_t n_layer;    /* attention layers, full and sliding */
    int32_t kv_dim;     /* n_head_kv * head_dim of every attention layer (layer_kv_dim NULL) */
    const int32_t *layer_kv_dim; /* (n_layer) per attention layer, or NULL */
    const int32_t *layer_window; /* (n_layer) sliding window per attention layer, 0 full; NULL:
                                    all full (no windowed pool) */
    int32_t n_batch;    /* most tokens one prepare places: sizes the windowed pool (0: as large
                           as the paged pool) */
    int32_t n_swa_slots; /* windowed pool slots when > 0 (tests), instead of the sizing above */
    int32_t kv_type;    /* enum reason_kv_type */
    int32_t n_slots;    /* token slots in the pool (rounded up to whole blocks) */
    int32_t block_size; /* token slots per block */
    int32_t n_seq_max;
    int32_t n_rec_layer;     /* recurrent layers (0: none) */
    int32_t rec_conv;        /* floats of one layer's conv window */
    int32_t rec_ssm;         /* floats of one layer's state matrices */
    int32_t n_checkpoint_max; /* checkpoints held at once, over all sequences */
} seq_state_params;

RS_INTERNAL reason_status seq_state_create(backend *be, const seq_state_params *params,
                                           seq_state **out);
RS_INTERNAL void seq_state_free(seq_state *ss);

RS_INTERNAL kv_pool *seq_state_pool(seq_state *ss);
/* The pool holding attention layer kv_layer's K/V (0-based among the model's attention layers)
 * and its layer index in that pool; *windowed tells whether it is the windowed pool, addressed
 * by the batch's swa_block_tables / swa_slots. */
RS_INTERNAL kv_pool *seq_state_layer_pool(seq_state *ss, int32_t kv_layer, int32_t *pool_layer,
                                          bool *windowed);
/* Whether there is a windowed pool (then prepare fills swa_slots and swa_tables). */
RS_INTERNAL bool seq_state_has_windowed(const seq_state *ss);
RS_INTERNAL int32_t seq_state_n_seq(const seq_state *ss);
RS_INTERNAL int32_t seq_state_max_positions(const seq_state *ss);
RS_INTERNAL int32_t seq_state_length(const seq_state *ss, int32_t seq);

/* Places a batch: token i of sequence seq_id[i] at position pos[i], where each sequence's tokens
 * must continue its length in batch order. Releases windowed blocks behind every sequence's
 * window, allocates blocks (copying shared ones about to be written), extends lengths, and
 * returns each token's slot and its sequence's block table, in the paged pool (slots, tables) and
 * in the windowed pool (swa_slots, swa_tables: written only when there is one; NULL otherwise).
 * All or nothing: REASON_ERR_CONTEXT_FULL or a validation error leaves every sequence as it was. */
RS_INTERNAL reason_status seq_state_prepare(seq_state *ss, const int32_t *seq_id,
                                            const int32_t *pos, int32_t n_tok, int32_t *slots,
                                            const int32_t **tables, int32_t *swa_slots,
                                            const int32_t **swa_tables);

/* The recurrent state of layer rec_layer (0-based among recurrent layers) of seq: conv window
 * (rec_conv floats) and state (rec_ssm floats). Valid for writing after seq_state_prepare placed
 * tokens of seq, until the next fork, checkpoint, truncate or prepare; NULL when seq has no slot. */
RS_INTERNAL void seq_state_recurrent(seq_state *ss, int32_t seq, int32_t rec_layer, float **conv,
                                     float **ssm);
/* Saves seq's recurrent state at its current length (REASON_ERR_CONTEXT_FULL when
 * n_checkpoint_max checkpoints are held; a no-op without recurrent layers). */
RS_INTERNAL reason_status seq_state_checkpoint(seq_state *ss, int32_t seq);

RS_INTERNAL reason_status seq_state_truncate(seq_state *ss, int32_t seq, int32_t n_keep);
RS_INTERNAL reason_status seq_state_fork(seq_state *ss, int32_t parent, int32_t child);

typedef struct seq_state_stats {
    int64_t slots_total; /* paged pool */
    int64_t slots_used; /* slots of blocks held by at least one sequence */
    int64_t slots_peak;
    int64_t bytes;     /* paged KV + windowed KV + recurrent slots */
    int64_t swa_slots_total; /* windowed pool (0: none) */
    int64_t swa_slots_used;
    int64_t swa_slots_peak;
    int64_t swa_bytes;
    int64_t rec_slots_total; /* recurrent slots in the pool */
    int64_t rec_slots_used;  /* held by a sequence or a checkpoint */
    int64_t rec_bytes;       /* of the whole slot pool */
} seq_state_stats;
RS_INTERNAL void seq_state_get_stats(const seq_state *ss, seq_state_stats *out);
/* Reference count of the block holding position pos of seq (tests of sharing). */
RS_INTERNAL int32_t seq_state_block_refs(const seq_state *ss, int32_t seq, int32_t pos);
/* seq's block table in the paged or the windowed pool (tests). */
RS_INTERNAL const int32_t *seq_state_table(const seq_state *ss, int32_t seq, bool windowed);
/* The same in the windowed pool; 0 when that block was released (or there is no windowed pool). */
RS_INTERNAL int32_t seq_state_swa_block_refs(const seq_state *ss, int32_t seq, int32_t pos);
/* Holders (sequences and checkpoints) of seq's recurrent slot; 0 when it has none. */
RS_INTERNAL int32_t seq_state_slot_refs(const seq_state *ss, int32_t seq);

#endif
