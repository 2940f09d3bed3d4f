/* cpu_qgemm_kept.h — weight matrices kept unpacked for the narrow integer kernel.
 *
 * Parallel traces multiply every weight matrix by 2-15 tokens per step, and unpacking its panels
 * (nibble transposition, scale gathers) took a third of such a step (docs/performance.md). A
 * context's weights never change, so its CPU backend may keep each matrix's panels once unpacked
 * (qg_kept_format_of: the types where that pays, at 1.0-1.55x the file's bytes), within a budget
 * of half the memory available when the first one is kept. Matrices are known by data pointer,
 * type and shape: only weights that stay in place and unchanged while the backend lives may go
 * through a backend that keeps them (backend_cpu_keep_unpacked). */
#ifndef REASON_CPU_QGEMM_KEPT_H
#define REASON_CPU_QGEMM_KEPT_H

#include "core.h"
#include "model.h"

typedef struct qg_kept {
    const void *data; /* the matrix: its data, type and shape */
    uint32_t type;
    int64_t rows, cols;
    size_t row_bytes;
    uint8_t *panels; /* rows / 16 rounded up panels, qg_kept_panel_bytes apart */
    size_t bytes;
    bool ready; /* filled by a whole product; until then the product fills it */
} qg_kept;

typedef struct qg_kept_set {
    qg_kept *slots; /* open addressing by data pointer, n_slots a power of two */
    size_t n_slots, n_used;
    size_t bytes, budget; /* budget set when the first matrix is kept */
} qg_kept_set;

/* w's entry, made (not ready, bytes of memory reserved) when absent; NULL when it does not fit
 * in the budget or memory is short — then the caller unpacks per product as before. */
RS_INTERNAL qg_kept *qg_kept_get(qg_kept_set *set, const rs_tensor *w, size_t bytes);
RS_INTERNAL void qg_kept_free(qg_kept_set *set);

#endif
