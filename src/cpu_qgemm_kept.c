/* cpu_qgemm_kept.c — the set of weight matrices kept unpacked (see cpu_qgemm_kept.h). */
#include "cpu_qgemm_kept.h"

#include "mapped_file.h"

#include <stdlib.h>
#include <sys/mman.h>

static size_t slot_of(const void *data, size_t n_slots) {
    return (size_t)(((uint64_t)(uintptr_t)data >> 6) * 0x9e3779b97f4a7c15ull >> 20) &
           (n_slots - 1);
}

static bool same_matrix(const qg_kept *k, const rs_tensor *w) {
    return k->data == w->data && k->type == w->type && k->rows == w->ne[1] &&
           k->cols == w->ne[0] && k->row_bytes == w->row_bytes;
}

/* The slot holding w, or the empty one where it would go. */
static qg_kept *probe(qg_kept *slots, size_t n_slots, const rs_tensor *w) {
    for (size_t i = slot_of(w->data, n_slots);; i = (i + 1) & (n_slots - 1))
        if (!slots[i].data || same_matrix(&slots[i], w)) return &slots[i];
}

/* Twice the slots, or false (the set unchanged) when memory is short. */
static bool grow(qg_kept_set *set) {
    const size_t n = set->n_slots ? 2 * set->n_slots : 64;
    qg_kept *slots = calloc(n, sizeof *slots); /* no error message: the caller goes on without */
    if (!slots) return false;
    for (size_t i = 0; i < set->n_slots; i++)
        if (set->slots[i].data) {
            const qg_kept *k = &set->slots[i];
            const rs_tensor w = {.data = k->data, .type = k->type, .ne = {k->cols, k->rows},
                                 .row_bytes = k->row_bytes};
            *probe(slots, n, &w) = *k;
        }
    free(set->slots);
    set->slots = slots;
    set->n_slots = n;
    return true;
}

qg_kept *qg_kept_get(qg_kept_set *set, const rs_tensor *w, size_t bytes) {
    if (set->n_slots) {
        qg_kept *k = probe(set->slots, set->n_slots, w);
        if (k->data) return k;
    }
    if (!set->budget) set->budget = RS_MAX(memory_available() / 2, 1);
    if (bytes > set->budget - set->bytes) return NULL;
    if (2 * (set->n_used + 1) > set->n_slots && !grow(set)) return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint, as for the weights themselves */
#endif
    qg_kept *k = probe(set->slots, set->n_slots, w);
    *k = (qg_kept){.data = w->data, .type = w->type, .rows = w->ne[1], .cols = w->ne[0],
                   .row_bytes = w->row_bytes, .panels = p, .bytes = bytes};
    set->n_used++;
    set->bytes += bytes;
    return k;
}

void qg_kept_free(qg_kept_set *set) {
    for (size_t i = 0; i < set->n_slots; i++)
        if (set->slots[i].data) munmap(set->slots[i].panels, set->slots[i].bytes);
    free(set->slots);
    *set = (qg_kept_set){0};
}
