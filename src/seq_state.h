/* seq_state.h — the state of every sequence of a context (DESIGN.md §1).
 *
 * Per layer a sequence's state is one of three kinds: (a) paged KV for full attention, (b)
 * windowed KV for sliding-window layers, (c) a recurrent slot for linear-attention/SSM layers.
 * The models supported so far (llama, qwen2, qwen3) use only (a); the interface below — prepare a
 * batch, fork, truncate, free — is the one the other kinds plug into.
 *
 * Paged KV: a pool of fixed-size blocks of token slots shared by all sequences. Each sequence has
 * a block table (block index of positions [i*B, (i+1)*B)). Blocks are reference counted: fork
 * shares all of the parent's blocks; the first write into a shared block (only the last, partly
 * filled one can be written) copies that block alone.
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
    int32_t n_layer;
    int32_t kv_dim;     /* n_head_kv * head_dim */
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
RS_INTERNAL int32_t seq_state_n_seq(const seq_state *ss);
RS_INTERNAL int32_t seq_state_max_positions(const seq_state *ss);
RS_INTERNAL int32_t seq_state_length(const seq_state *ss, int32_t seq);

/* Places a batch: token i of sequence seq_id[i] at position pos[i], where each sequence's tokens
 * must continue its length in batch order. Allocates blocks (copying shared ones about to be
 * written), extends lengths, and returns each token's slot and its sequence's block table.
 * All or nothing: REASON_ERR_CONTEXT_FULL or a validation error leaves every sequence as it was. */
RS_INTERNAL reason_status seq_state_prepare(seq_state *ss, const int32_t *seq_id,
                                            const int32_t *pos, int32_t n_tok, int32_t *slots,
                                            const int32_t **tables);

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
    int64_t slots_total;
    int64_t slots_used; /* slots of blocks held by at least one sequence */
    int64_t slots_peak;
    int64_t bytes;     /* paged KV + recurrent slots */
    int64_t rec_slots_total; /* recurrent slots in the pool */
    int64_t rec_slots_used;  /* held by a sequence or a checkpoint */
    int64_t rec_bytes;       /* of the whole slot pool */
} seq_state_stats;
RS_INTERNAL void seq_state_get_stats(const seq_state *ss, seq_state_stats *out);
/* Reference count of the block holding position pos of seq (tests of sharing). */
RS_INTERNAL int32_t seq_state_block_refs(const seq_state *ss, int32_t seq, int32_t pos);
/* Holders (sequences and checkpoints) of seq's recurrent slot; 0 when it has none. */
RS_INTERNAL int32_t seq_state_slot_refs(const seq_state *ss, int32_t seq);

#endif
