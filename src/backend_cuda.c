/* backend_cuda.c — the CUDA backend, host side: backend_ops over the extern "C" launchers of
 * kernels/ (kernels.h); no CUDA header is included here.
 * Checked on an H100 (2026-11-27): the fixtures decoded end to end match the CPU backend
 * (tests/test_backend_ops.c, "model" rows; docs/gpu-status.md).
 *
 * Memory. Weights: every tensor of the model uploaded once at creation into one device
 * allocation; ops receive the host pointers forward.c holds (rs_tensor.data, biases, norm
 * weights, rope divisors, sinks) and translate them through a table sorted by host address
 * (host span -> device span). Activations: backend->alloc returns device memory, except the
 * buffer forward.c names "logits", which the host reads after sync: it gets a pinned host buffer
 * mirrored by a device buffer; kernels write the device side, sync copies the written extent
 * back. KV pool: device memory, zeroed. Batch metadata (token ids, positions, slots, block
 * tables) are host arrays: each op copies its own into a device buffer per purpose, skipped
 * when the content equals the last copy (the layers of one forward pass share it).
 *
 * Ordering: everything runs on the legacy default stream, so copies into a metadata buffer
 * wait for the kernels that read its previous content; host sources of those copies are
 * consumed before cudaMemcpyAsync returns (pageable memory).
 *
 * Errors: ops cannot return a status; the first failing launch (or unsupported shape) is
 * recorded with the op's name and reported by sync as REASON_ERR_DEVICE; after an error, ops
 * queue nothing until sync has reported it. A fault inside a kernel surfaces at sync, named by
 * the last op queued (REASON_CUDA_SYNC=1 names the failing op exactly).
 *
 * Ops: all of backend_ops: the dense llama/qwen2/qwen3 ops, mul_sigmoid, geglu, scale, softcap,
 * Gated DeltaNet (qwen35), expert routing and experts (qwen35moe, gpt-oss, gemma4's experts).
 * Recurrent slots (seq_state's "recurrent state slots" allocation) are managed memory: seq_state
 * zeroes and copies them on the host between decode calls, the deltanet kernels update them in
 * place. The moe op reads the routing back to the host (one synchronisation per MoE layer) to
 * launch each used expert's products. Creation refuses only shapes and weight types the kernels
 * lack (check_model). */
#include "backend_cuda.h"

#ifndef REASON_HAVE_CUDA

reason_status backend_cuda_create(const reason_model *model, int32_t max_positions,
                                  backend **out) {
    (void)model;
    (void)max_positions;
    if (out) *out = NULL;
    return rs_error(REASON_ERR_UNSUPPORTED,
                    "REASON_BACKEND=cuda: libreason was built without CUDA (configure with "
                    "-DREASON_CUDA=ON on a machine with the CUDA toolkit)");
}

#else

#include "kernels.h"
#include "tensor_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Smallest run of consecutive tokens of one sequence for which the tensor-core prefill kernel
 * is chosen over split-KV decode attention. */
#define PREFILL_MIN_RUN 16

typedef struct weight_span {
    uintptr_t host;
    size_t bytes;
    uint8_t *dev;
} weight_span;

typedef struct mirror {
    float *host, *dev;
    size_t bytes;
    size_t dirty; /* bytes from the start written by kernels since the last sync */
} mirror;

enum { META_IDS, META_GATHER, META_POS, META_SLOTS, META_ATTN, META_DN, META_COUNT };

typedef struct dev_ints {
    int32_t *dev;
    int32_t *host; /* the content last copied to dev */
    size_t n, cap;
    bool valid;
} dev_ints;

typedef struct cuda_backend {
    backend base;
    uint8_t *weights; /* one device allocation */
    weight_span *spans;
    int32_t n_spans;
    mirror mirrors[4];
    dev_ints meta[META_COUNT];
    int32_t *attn_host; /* staging for attention metadata */
    size_t attn_host_cap;
    const int32_t **attn_tables; /* unique block tables of a batch */
    int32_t *attn_need, *attn_toff;
    size_t attn_u_cap;
    float *work; /* split-KV partial results */
    size_t work_cap;
    float *dn_work; /* deltanet: silu(conv) of a batch's q, k, v */
    size_t dn_work_cap;
    int32_t *dn_host; /* deltanet metadata staging: pointers, sequence starts, token order */
    size_t dn_host_cap;
    const float **dn_seen; /* deltanet: the distinct state pointers of a batch */
    size_t dn_seen_cap;
    int32_t *moe_host; /* moe: ids downloaded, then start (n_ids + 1) and order (n_pairs) */
    size_t moe_host_cap;
    int32_t n_sm;
    int32_t force_attn; /* 0 automatic, 1 decode, 2 prefill */
    bool sync_each;
    int err;           /* first error since the last sync, 0 when none */
    char err_op[96];
    const char *last_op;
} cuda_backend;

static cuda_backend *cuda(backend *be) { return (cuda_backend *)be; }

/* ---- errors ------------------------------------------------------------------------------ */

static void record(cuda_backend *cb, int rc, const char *op) {
    if (rc && !cb->err) {
        cb->err = rc;
        snprintf(cb->err_op, sizeof cb->err_op, "op '%s'", op);
    }
}

/* After an op's launches: the launch status, and with REASON_CUDA_SYNC the kernel's own. */
static void done(cuda_backend *cb, int rc, const char *op) {
    record(cb, rc, op);
    cb->last_op = op;
    if (cb->sync_each && !cb->err) record(cb, reason_cuda_sync(), op);
}

/* ---- pointers ---------------------------------------------------------------------------- */

/* The device address behind p: a weight's host pointer, the host side of a mirrored buffer
 * (write_bytes from p marked for the copy back at sync), or p itself (already device memory). */
static void *dptr(cuda_backend *cb, const void *p, size_t write_bytes) {
    if (!p) return NULL;
    const uintptr_t a = (uintptr_t)p;
    for (int i = 0; i < 4; i++) {
        mirror *m = &cb->mirrors[i];
        if (m->host && a >= (uintptr_t)m->host && a < (uintptr_t)m->host + m->bytes) {
            const size_t off = a - (uintptr_t)m->host;
            if (write_bytes) m->dirty = RS_MAX(m->dirty, RS_MIN(m->bytes, off + write_bytes));
            return (uint8_t *)m->dev + off;
        }
    }
    int32_t lo = 0, hi = cb->n_spans - 1;
    while (lo <= hi) { /* the last span starting at or below a */
        const int32_t mid = lo + (hi - lo) / 2;
        if (cb->spans[mid].host <= a)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    if (hi >= 0 && a < cb->spans[hi].host + cb->spans[hi].bytes)
        return cb->spans[hi].dev + (a - cb->spans[hi].host);
    return (void *)p;
}

/* A device copy of host ints for one purpose; NULL (error recorded) on failure. */
static const int32_t *upload_ints(cuda_backend *cb, int which, const int32_t *host, size_t n,
                                  const char *op) {
    dev_ints *d = &cb->meta[which];
    static const int32_t zero = 0;
    if (n == 0) n = 1, host = &zero;
    if (d->valid && d->n == n && !memcmp(d->host, host, n * sizeof *host)) return d->dev;
    d->valid = false;
    if (n > d->cap) {
        const size_t cap = RS_MAX(n, 2 * d->cap);
        reason_cuda_free(d->dev); /* implicitly waits for kernels still reading it */
        free(d->host);
        d->dev = reason_cuda_malloc(cap * sizeof *host);
        d->host = malloc(cap * sizeof *host);
        if (!d->dev || !d->host) {
            reason_cuda_free(d->dev);
            free(d->host);
            d->dev = NULL, d->host = NULL, d->cap = 0;
            record(cb, 2 /* cudaErrorMemoryAllocation */, op);
            return NULL;
        }
        d->cap = cap;
    }
    memcpy(d->host, host, n * sizeof *host);
    d->n = n;
    const int rc = reason_cuda_upload_async(d->dev, d->host, n * sizeof *host, NULL);
    record(cb, rc, op);
    if (rc) return NULL;
    d->valid = true;
    return d->dev;
}

/* ---- buffers ------------------------------------------------------------------------------ */

static void *cuda_alloc(backend *be, size_t bytes, const char *what) {
    cuda_backend *cb = cuda(be);
    if (what && !strcmp(what, "logits")) { /* read by the host after sync (reason_get_logits) */
        for (int i = 0; i < 4; i++) {
            mirror *m = &cb->mirrors[i];
            if (m->host) continue;
            m->host = reason_cuda_host_alloc(bytes);
            m->dev = m->host ? reason_cuda_malloc(bytes) : NULL;
            if (!m->dev) {
                reason_cuda_host_free(m->host);
                memset(m, 0, sizeof *m);
                break;
            }
            m->bytes = bytes;
            m->dirty = 0;
            return m->host;
        }
        rs_error(REASON_ERR_NOMEM, "CUDA backend: cannot allocate %zu bytes (pinned host and "
                                   "device) for %s", bytes, what);
        return NULL;
    }
    /* the recurrent slots: seq_state zeroes and copies them with memset/memcpy on the host
     * (a fork, a checkpoint, a fresh sequence) between decode calls, and the deltanet kernels
     * read and rewrite them in place: managed memory is valid on both sides */
    const bool managed = what && !strcmp(what, "recurrent state slots");
    void *p = managed ? reason_cuda_malloc_managed(bytes) : reason_cuda_malloc(bytes);
    if (!p)
        rs_error(REASON_ERR_NOMEM, "CUDA backend: cannot allocate %zu bytes of %s memory for %s",
                 bytes, managed ? "managed" : "device", what ? what : "a buffer");
    return p;
}

static void cuda_release(backend *be, void *ptr) {
    cuda_backend *cb = cuda(be);
    if (!ptr) return;
    for (int i = 0; i < 4; i++) {
        mirror *m = &cb->mirrors[i];
        if (m->host == ptr) {
            reason_cuda_free(m->dev);
            reason_cuda_host_free(m->host);
            memset(m, 0, sizeof *m);
            return;
        }
    }
    reason_cuda_free(ptr);
}

/* ---- row-wise ops --------------------------------------------------------------------------- */

/* Launchers take at most this many rows per call (a grid dimension). */
#define ROWS_PER_CALL 65535

static void cuda_get_rows(backend *be, const rs_tensor *table, const int32_t *ids, int32_t n,
                          float *out) {
    cuda_backend *cb = cuda(be);
    if (cb->err || n <= 0) return;
    const int32_t *d_ids = upload_ints(cb, META_IDS, ids, (size_t)n, "get_rows");
    if (!d_ids) return;
    const int64_t cols = table->ne[0];
    float *o = dptr(cb, out, (size_t)n * cols * sizeof(float));
    const void *t = dptr(cb, table->data, 0);
    int rc = 0;
    for (int32_t i = 0; i < n && !rc; i += ROWS_PER_CALL)
        rc = reason_cuda_get_rows((int32_t)table->type, t, cols, table->row_bytes, d_ids + i,
                                  RS_MIN(ROWS_PER_CALL, n - i), o + (size_t)i * cols, NULL);
    done(cb, rc, "get_rows");
}

static void cuda_rmsnorm(backend *be, const float *x, const float *w, float *y, int32_t n_rows,
                         int32_t dim, float eps) {
    cuda_backend *cb = cuda(be);
    if (cb->err) return;
    done(cb,
         reason_cuda_rmsnorm(dptr(cb, x, 0), dptr(cb, w, 0),
                             dptr(cb, y, (size_t)n_rows * dim * sizeof(float)), n_rows, dim, eps,
                             NULL),
         "rmsnorm");
}

static void cuda_matmul(backend *be, const rs_tensor *w, const float *bias, const float *x,
                        float *y, int32_t n_tok) {
    cuda_backend *cb = cuda(be);
    if (cb->err) return;
    const int64_t rows = w->ne[1];
    done(cb,
         reason_cuda_matmul((int32_t)w->type, dptr(cb, w->data, 0), w->ne[0], rows, w->row_bytes,
                            dptr(cb, bias, 0), dptr(cb, x, 0),
                            dptr(cb, y, (size_t)n_tok * rows * sizeof(float)), n_tok, NULL),
         "matmul");
}

static void cuda_matmul_group(backend *be, const matmul_item *items, int32_t n, const float *x,
                              int32_t n_tok) {
    for (int32_t i = 0; i < n; i++) cuda_matmul(be, items[i].w, items[i].bias, x, items[i].y, n_tok);
}

static void cuda_rope(backend *be, float *x, int32_t n_tok, int32_t n_head, const int32_t *pos,
                      const rope_params *rp) {
    cuda_backend *cb = cuda(be);
    if (cb->err || n_tok <= 0) return;
    const int32_t *d_pos = upload_ints(cb, META_POS, pos, (size_t)n_tok, "rope");
    if (!d_pos) return;
    done(cb,
         reason_cuda_rope(dptr(cb, x, (size_t)n_tok * n_head * rp->head_dim * sizeof(float)), n_tok,
                          n_head, d_pos, rp->head_dim, rp->rot_dim, rp->style == ROPE_NEOX,
                          rp->theta, rp->pos_scale, rp->mscale, dptr(cb, rp->freq_div, 0), NULL),
         "rope");
}

static void cuda_swiglu(backend *be, const float *gate, const float *up, float *y, int64_t n) {
    cuda_backend *cb = cuda(be);
    if (cb->err) return;
    done(cb,
         reason_cuda_swiglu(dptr(cb, gate, 0), dptr(cb, up, 0),
                            dptr(cb, y, (size_t)n * sizeof(float)), n, NULL),
         "swiglu");
}

static void cuda_gather_rows(backend *be, const float *src, const int32_t *idx, int32_t n,
                             int32_t dim, float *dst) {
    cuda_backend *cb = cuda(be);
    if (cb->err || n <= 0) return;
    const int32_t *d_idx = upload_ints(cb, META_GATHER, idx, (size_t)n, "gather_rows");
    if (!d_idx) return;
    const float *s = dptr(cb, src, 0);
    float *d = dptr(cb, dst, (size_t)n * dim * sizeof(float));
    int rc = 0;
    for (int32_t i = 0; i < n && !rc; i += ROWS_PER_CALL)
        rc = reason_cuda_gather_rows(s, d_idx + i, RS_MIN(ROWS_PER_CALL, n - i), dim,
                                     d + (size_t)i * dim, NULL);
    done(cb, rc, "gather_rows");
}

static void cuda_add(backend *be, float *x, const float *y, int64_t n) {
    cuda_backend *cb = cuda(be);
    if (cb->err) return;
    done(cb, reason_cuda_add(dptr(cb, x, (size_t)n * sizeof(float)), dptr(cb, y, 0), n, NULL),
         "add");
}

static void cuda_mul_sigmoid(backend *be, float *x, const float *gate, int64_t n) {
    cuda_backend *cb = cuda(be);
    if (cb->err) return;
    done(cb,
         reason_cuda_mul_sigmoid(dptr(cb, x, (size_t)n * sizeof(float)), dptr(cb, gate, 0), n,
                                 NULL),
         "mul_sigmoid");
}

/* ---- KV pool and attention ------------------------------------------------------------------ */

static reason_status cuda_kv_alloc(backend *be, kv_pool *pool) {
    (void)be;
    size_t n = 0;
    if (pool->type == REASON_KV_Q8)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: the 8-bit KV cache (REASON_KV_Q8) is CPU-only for now");
    pool->elem_bytes = pool->type == REASON_KV_F32 ? 4 : 2;
    pool->slot_bytes = (size_t)pool->kv_dim * pool->elem_bytes;
    pool->k_tile = 1; /* row-major K, like V */
    if (!rs_mul_size((size_t)pool->n_layer * (size_t)pool->n_blocks, (size_t)pool->block_size,
                     &n) ||
        !rs_mul_size(n, (size_t)pool->kv_dim * pool->elem_bytes, &n))
        return rs_error(REASON_ERR_NOMEM, "KV pool size overflows");
    pool->k = reason_cuda_malloc(n);
    pool->v = pool->k ? reason_cuda_malloc(n) : NULL;
    if (!pool->k || !pool->v) {
        reason_cuda_free(pool->k);
        pool->k = pool->v = NULL;
        return rs_error(REASON_ERR_NOMEM,
                        "CUDA backend: cannot allocate the KV pool (2 x %zu MiB of device memory)",
                        n >> 20);
    }
    const int rc = reason_cuda_memset(pool->k, 0, n) ? 1 : reason_cuda_memset(pool->v, 0, n);
    if (rc) {
        reason_cuda_free(pool->k);
        reason_cuda_free(pool->v);
        pool->k = pool->v = NULL;
        return rs_error(REASON_ERR_DEVICE, "CUDA backend: clearing the KV pool failed");
    }
    return REASON_OK;
}

static void cuda_kv_free(backend *be, kv_pool *pool) {
    (void)be;
    reason_cuda_free(pool->k);
    reason_cuda_free(pool->v);
    pool->k = pool->v = NULL;
}

static reason_cuda_kv kv_of(const kv_pool *pool) {
    const reason_cuda_kv kv = {.k = pool->k, .v = pool->v, .type = pool->type,
                               .n_layer = pool->n_layer, .n_blocks = pool->n_blocks,
                               .block_size = pool->block_size, .kv_dim = pool->kv_dim};
    return kv;
}

static void cuda_kv_store(backend *be, kv_pool *pool, int32_t layer, const float *k,
                          const float *v, const int32_t *slots, int32_t n_tok) {
    cuda_backend *cb = cuda(be);
    if (cb->err || n_tok <= 0) return;
    const int32_t *d_slots = upload_ints(cb, META_SLOTS, slots, (size_t)n_tok, "kv_store");
    if (!d_slots) return;
    const reason_cuda_kv kv = kv_of(pool);
    done(cb, reason_cuda_kv_store(&kv, layer, dptr(cb, k, 0), dptr(cb, v, 0), d_slots, n_tok, NULL),
         "kv_store");
}

static void cuda_kv_copy_block(backend *be, kv_pool *pool, int32_t src, int32_t dst) {
    cuda_backend *cb = cuda(be);
    if (cb->err) return;
    const reason_cuda_kv kv = kv_of(pool);
    done(cb, reason_cuda_kv_copy_block(&kv, src, dst, NULL), "kv_copy_block");
}

static bool grow_ints(int32_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    const size_t c = RS_MAX(need, 2 * *cap);
    int32_t *q = realloc(*p, c * sizeof *q);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

/* The attention metadata of a batch as one int32 array: pos (n_tok), tab_off (n_tok), tiles
 * (n_tiles, 2), then each distinct block table once (tokens of one sequence share its table
 * pointer), as long as its furthest token needs. Also the longest run of consecutive tokens of
 * one sequence and the longest visible range. 0 on allocation failure. */
typedef struct attn_meta {
    size_t n_ints;
    int32_t n_tiles, max_run, longest;
    size_t off_tiles, off_tables;
} attn_meta;

static int build_attn_meta(cuda_backend *cb, const attn_batch *b, int32_t bs, int32_t window,
                           attn_meta *am) {
    const int32_t n = b->n_tok;
    if ((size_t)n > cb->attn_u_cap) {
        const size_t c = RS_MAX((size_t)n, 2 * cb->attn_u_cap);
        const int32_t **t = realloc(cb->attn_tables, c * sizeof *t);
        if (!t) return 0;
        cb->attn_tables = t;
        int32_t *need = realloc(cb->attn_need, c * sizeof *need);
        if (!need) return 0;
        cb->attn_need = need;
        int32_t *toff = realloc(cb->attn_toff, c * sizeof *toff);
        if (!toff) return 0;
        cb->attn_toff = toff;
        cb->attn_u_cap = c;
    }
    /* distinct tables and how many entries each needs; tiles: runs of one table, <= 64 rows */
    int32_t n_u = 0, last = -1, n_tiles = 0, run = 0;
    am->max_run = 0;
    am->longest = 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t *t = b->block_tables[i];
        int32_t u = last >= 0 && cb->attn_tables[last] == t ? last : -1;
        for (int32_t j = 0; u < 0 && j < n_u; j++)
            if (cb->attn_tables[j] == t) u = j;
        if (u < 0) {
            u = n_u++;
            cb->attn_tables[u] = t;
            cb->attn_need[u] = 0;
        }
        cb->attn_need[u] = RS_MAX(cb->attn_need[u], b->pos[i] / bs + 1);
        const bool same = i > 0 && b->block_tables[i - 1] == t;
        run = same ? run + 1 : 1;
        am->max_run = RS_MAX(am->max_run, run);
        if (!same || (run - 1) % REASON_CUDA_PREFILL_ROWS == 0) n_tiles++;
        last = u;
        const int32_t first = window > 0 && b->pos[i] >= window ? b->pos[i] - window + 1 : 0;
        am->longest = RS_MAX(am->longest, b->pos[i] + 1 - first);
    }
    size_t n_tab = 0;
    for (int32_t j = 0; j < n_u; j++) n_tab += (size_t)cb->attn_need[j];
    am->n_tiles = n_tiles;
    am->off_tiles = 2 * (size_t)n;
    am->off_tables = am->off_tiles + 2 * (size_t)n_tiles;
    am->n_ints = am->off_tables + n_tab;
    if (!grow_ints(&cb->attn_host, &cb->attn_host_cap, am->n_ints)) return 0;
    int32_t *h = cb->attn_host;
    size_t o = am->off_tables;
    for (int32_t j = 0; j < n_u; j++) {
        cb->attn_toff[j] = (int32_t)(o - am->off_tables);
        memcpy(h + o, cb->attn_tables[j], (size_t)cb->attn_need[j] * sizeof *h);
        o += (size_t)cb->attn_need[j];
    }
    int32_t *tiles = h + am->off_tiles;
    last = -1;
    run = 0;
    int32_t k = -1;
    for (int32_t i = 0; i < n; i++) {
        const int32_t *t = b->block_tables[i];
        int32_t u = last >= 0 && cb->attn_tables[last] == t ? last : -1;
        for (int32_t j = 0; u < 0 && j < n_u; j++)
            if (cb->attn_tables[j] == t) u = j;
        last = u;
        h[i] = b->pos[i];
        h[n + i] = cb->attn_toff[u];
        const bool same = i > 0 && b->block_tables[i - 1] == t;
        run = same ? run + 1 : 1;
        if (!same || (run - 1) % REASON_CUDA_PREFILL_ROWS == 0) {
            k++;
            tiles[2 * k] = i;
            tiles[2 * k + 1] = 0;
        }
        tiles[2 * k + 1]++;
    }
    return 1;
}

static void cuda_attention(backend *be, const kv_pool *pool, int32_t layer, const float *q,
                           const attn_batch *batch, const attn_params *ap, float *out) {
    cuda_backend *cb = cuda(be);
    if (cb->err || batch->n_tok <= 0) return;
    attn_meta am;
    if (!build_attn_meta(cb, batch, pool->block_size, ap->window, &am)) {
        record(cb, 2 /* cudaErrorMemoryAllocation */, "attention (host metadata)");
        return;
    }
    const int32_t *d = upload_ints(cb, META_ATTN, cb->attn_host, am.n_ints, "attention");
    if (!d) return;
    const int32_t n = batch->n_tok;
    const reason_cuda_kv kv = kv_of(pool);
    const reason_cuda_attn a = {.n_head = ap->n_head, .n_head_kv = ap->n_head_kv,
                                .head_dim = ap->head_dim, .window = ap->window,
                                .scale = ap->scale, .sinks = dptr(cb, ap->sinks, 0)};
    const reason_cuda_batch db = {.n_tok = n, .pos = d, .tab_off = d + n,
                                  .tables = d + am.off_tables};
    const float *dq = dptr(cb, q, 0);
    float *dout = dptr(cb, out, (size_t)n * ap->n_head * ap->head_dim * sizeof(float));
    const bool prefill = cb->force_attn == 2 ||
                         (cb->force_attn == 0 && am.max_run >= PREFILL_MIN_RUN);
    int rc = REASON_CUDA_UNSUPPORTED;
    if (prefill && reason_cuda_attention_prefill_supported(ap->head_dim))
        rc = reason_cuda_attention_prefill(&kv, layer, dq, &db, &a, d + am.off_tiles, am.n_tiles,
                                           dout, NULL);
    if (rc == REASON_CUDA_UNSUPPORTED) {
        const int32_t n_split = reason_cuda_attention_splits(cb->n_sm, n, ap->n_head,
                                                             ap->n_head_kv, am.longest);
        const size_t need =
            reason_cuda_attention_work(n, ap->n_head, ap->head_dim, n_split);
        if (need > cb->work_cap) {
            reason_cuda_free(cb->work); /* implicitly waits for kernels still using it */
            cb->work_cap = 0;
            cb->work = reason_cuda_malloc(need * sizeof(float));
            if (!cb->work) {
                record(cb, 2 /* cudaErrorMemoryAllocation */, "attention (split buffer)");
                return;
            }
            cb->work_cap = need;
        }
        rc = reason_cuda_attention_decode(&kv, layer, dq, &db, &a, n_split, cb->work,
                                          dout, NULL);
    }
    done(cb, rc, "attention");
}

static void cuda_geglu(backend *be, const float *gate, const float *up, float *y, int64_t n) {
    cuda_backend *cb = cuda(be);
    if (cb->err) return;
    done(cb,
         reason_cuda_geglu(dptr(cb, gate, 0), dptr(cb, up, 0),
                           dptr(cb, y, (size_t)n * sizeof(float)), n, NULL),
         "geglu");
}

static void cuda_scale(backend *be, float *x, float s, int64_t n) {
    cuda_backend *cb = cuda(be);
    if (cb->err) return;
    done(cb, reason_cuda_scale(dptr(cb, x, (size_t)n * sizeof(float)), s, n, NULL), "scale");
}

static void cuda_softcap(backend *be, float *x, float cap, int64_t n) {
    cuda_backend *cb = cuda(be);
    if (cb->err) return;
    done(cb, reason_cuda_softcap(dptr(cb, x, (size_t)n * sizeof(float)), cap, n, NULL),
         "softcap");
}

/* A device float buffer of at least n floats kept in *buf (grown, never shrunk); NULL (error
 * recorded) on failure. */
static float *grow_dev(cuda_backend *cb, float **buf, size_t *cap, size_t n, const char *op) {
    if (n <= *cap) return *buf;
    reason_cuda_free(*buf); /* implicitly waits for kernels still using it */
    *cap = 0;
    *buf = reason_cuda_malloc(n * sizeof(float));
    if (!*buf) {
        record(cb, 2 /* cudaErrorMemoryAllocation */, op);
        return NULL;
    }
    *cap = n;
    return *buf;
}

/* ---- Gated DeltaNet ------------------------------------------------------------------------ */

/* The batch's tokens grouped by sequence (tokens of one sequence share their state pointer and
 * come in position order): one int32 array uploaded at once — the conv and state pointers of
 * each sequence (n_seq pairs of 64-bit addresses, first so that they stay 8-byte aligned),
 * seq_start (n_seq + 1), then the batch indices of the tokens, sequence by sequence. */
static void cuda_deltanet(backend *be, const deltanet_params *p, const float *qkv, const float *z,
                          const float *b, const float *a, float *const *conv, float *const *ssm,
                          float *y, int32_t n_tok) {
    cuda_backend *cb = cuda(be);
    if (cb->err || n_tok <= 0) return;
    const size_t n = (size_t)n_tok;
    if (n > cb->dn_seen_cap) {
        const float **q = realloc(cb->dn_seen, n * sizeof *q);
        if (!q) {
            record(cb, 2 /* cudaErrorMemoryAllocation */, "deltanet (host metadata)");
            return;
        }
        cb->dn_seen = q;
        cb->dn_seen_cap = n;
    }
    /* distinct sequences in order of first appearance */
    int32_t n_seq = 0, last = -1;
    for (int32_t i = 0; i < n_tok; i++) {
        int32_t u = last >= 0 && cb->dn_seen[last] == ssm[i] ? last : -1;
        for (int32_t j = 0; u < 0 && j < n_seq; j++)
            if (cb->dn_seen[j] == ssm[i]) u = j;
        if (u < 0) cb->dn_seen[u = n_seq++] = ssm[i];
        last = u;
    }
    const size_t n_ints = 4 * (size_t)n_seq + (size_t)n_seq + 1 + n;
    if (!grow_ints(&cb->dn_host, &cb->dn_host_cap, n_ints)) {
        record(cb, 2 /* cudaErrorMemoryAllocation */, "deltanet (host metadata)");
        return;
    }
    int32_t *h = cb->dn_host, *start = h + 4 * (size_t)n_seq, *tok = start + n_seq + 1;
    for (int32_t s = 0; s < n_seq; s++) {
        const float *sp = cb->dn_seen[s];
        const float *cp = NULL;
        for (int32_t i = 0; i < n_tok; i++)
            if (ssm[i] == sp) {
                cp = conv[i];
                break;
            }
        const uint64_t cv = (uint64_t)(uintptr_t)dptr(cb, cp, 0),
                       sv = (uint64_t)(uintptr_t)dptr(cb, sp, 0);
        memcpy(h + 2 * (size_t)s, &cv, sizeof cv);
        memcpy(h + 2 * (size_t)n_seq + 2 * (size_t)s, &sv, sizeof sv);
    }
    int32_t k = 0; /* each sequence's tokens in batch order (their position order) */
    for (int32_t s = 0; s < n_seq; s++) {
        start[s] = k;
        for (int32_t i = 0; i < n_tok; i++)
            if (ssm[i] == cb->dn_seen[s]) tok[k++] = i;
    }
    start[n_seq] = k;
    const int32_t *d = upload_ints(cb, META_DN, h, n_ints, "deltanet");
    if (!d) return;
    const int32_t conv_dim = 2 * p->n_k_head * p->d_k + p->n_v_head * p->d_v;
    float *cw = grow_dev(cb, &cb->dn_work, &cb->dn_work_cap, n * (size_t)conv_dim, "deltanet");
    if (!cw) return;
    const reason_cuda_dn dp = {.n_k_head = p->n_k_head, .d_k = p->d_k, .n_v_head = p->n_v_head,
                               .d_v = p->d_v, .conv_kernel = p->conv_kernel,
                               .v_head_tiled = p->v_head_tiled, .eps = p->eps,
                               .conv_w = dptr(cb, p->conv_w, 0), .a_neg = dptr(cb, p->a_neg, 0),
                               .dt_bias = dptr(cb, p->dt_bias, 0),
                               .norm_w = dptr(cb, p->norm_w, 0)};
    float *const *dconv = (float *const *)(const void *)d;
    float *const *dssm = (float *const *)(const void *)(d + 2 * (size_t)n_seq);
    done(cb,
         reason_cuda_deltanet(&dp, dptr(cb, qkv, 0), dptr(cb, z, 0), dptr(cb, b, 0),
                              dptr(cb, a, 0), dconv, dssm, d + 4 * (size_t)n_seq,
                              d + 5 * (size_t)n_seq + 1, n_seq, n_tok, cw,
                              dptr(cb, y, n * p->n_v_head * p->d_v * sizeof(float)), NULL),
         "deltanet");
}

/* ---- mixture of experts ---------------------------------------------------------------------- */

static void cuda_moe_route(backend *be, const float *logits, const float *shared, int32_t n_tok,
                           int32_t n_expert, int32_t n_used, int32_t norm, int32_t *ids,
                           float *weights) {
    cuda_backend *cb = cuda(be);
    if (cb->err || n_tok <= 0) return;
    const size_t n_slot = (size_t)n_used + (shared != NULL);
    done(cb,
         reason_cuda_moe_route(dptr(cb, logits, 0), dptr(cb, shared, 0), n_tok, n_expert, n_used,
                               norm, dptr(cb, ids, n_tok * n_slot * sizeof *ids),
                               dptr(cb, weights, n_tok * n_slot * sizeof *weights), NULL),
         "moe_route");
}

/* The routing (device) is copied to the host — one synchronisation per MoE layer — and sorted
 * by expert there as cpu_moe does; each used expert then runs as a small dense feed-forward
 * over its gathered tokens with the matmul kernels on its views, and is scatter-added into out
 * in expert order (the CPU twin's order of the sums). */
static void cuda_moe(backend *be, const moe_params *p, const float *x, const int32_t *ids,
                     const float *weights, float *out, int32_t n_tok, void *work) {
    cuda_backend *cb = cuda(be);
    if (cb->err || n_tok <= 0) return;
    const int32_t n_slot = p->n_slot, n_pairs = n_tok * n_slot;
    const int32_t n_views = p->n_expert + 1; /* ids are < n_expert + 1 (routing + shared) */
    if (!grow_ints(&cb->moe_host, &cb->moe_host_cap, 2 * (size_t)n_pairs + n_views + 1)) {
        record(cb, 2 /* cudaErrorMemoryAllocation */, "moe (host metadata)");
        return;
    }
    int32_t *hid = cb->moe_host, *start = hid + n_pairs, *order = start + n_views + 1;
    int rc = reason_cuda_download(hid, dptr(cb, ids, 0), (size_t)n_pairs * sizeof *hid);
    if (rc) {
        record(cb, rc, "moe (reading the routing)");
        return;
    }
    int32_t n_ids = 0, rows_max = 0;
    for (int32_t i = 0; i < n_pairs; i++) {
        if (hid[i] < 0 || hid[i] >= n_views) {
            record(cb, REASON_CUDA_UNSUPPORTED, "moe (expert id out of range)");
            return;
        }
        n_ids = RS_MAX(n_ids, hid[i] + 1);
        rows_max = RS_MAX(rows_max, (int32_t)p->gate[hid[i]].ne[1]);
    }
    const int64_t n_embd = p->gate[hid[0]].ne[0];
    memset(start, 0, ((size_t)n_ids + 1) * sizeof *start);
    for (int32_t i = 0; i < n_pairs; i++) start[hid[i] + 1]++;
    for (int32_t e = 0; e < n_ids; e++) start[e + 1] += start[e];
    for (int32_t i = 0; i < n_pairs; i++) order[start[hid[i]]++] = i;
    for (int32_t e = n_ids; e > 0; e--) start[e] = start[e - 1];
    start[0] = 0;

    float *xe = work, *g = xe + (size_t)n_tok * n_embd, *u = g + (size_t)n_tok * rows_max,
          *ye = u + (size_t)n_tok * rows_max;
    int32_t *d_order = (int32_t *)(ye + (size_t)n_tok * n_embd);
    rc = reason_cuda_upload_async(d_order, order, (size_t)n_pairs * sizeof *order, NULL);
    const float *dx = dptr(cb, x, 0), *dw = dptr(cb, weights, 0);
    float *dout = dptr(cb, out, (size_t)n_tok * n_embd * sizeof(float));
    if (!rc) rc = reason_cuda_memset(dout, 0, (size_t)n_tok * n_embd * sizeof(float));
    for (int32_t e = 0; e < n_ids && !rc; e++) {
        const int32_t n = start[e + 1] - start[e];
        if (n == 0) continue;
        const int32_t *pairs = d_order + start[e];
        const int64_t rows = p->gate[e].ne[1];
        const bool routed = e < p->n_expert; /* biases belong to the routed experts */
        const rs_tensor *wg = &p->gate[e], *wu = &p->up[e], *wd = &p->down[e];
        rc = reason_cuda_moe_gather(dx, pairs, n, n_slot, (int32_t)n_embd, xe, NULL);
        if (!rc)
            rc = reason_cuda_matmul((int32_t)wg->type, dptr(cb, wg->data, 0), wg->ne[0], rows,
                                    wg->row_bytes,
                                    routed && p->gate_bias
                                        ? dptr(cb, p->gate_bias + (size_t)e * rows, 0)
                                        : NULL,
                                    xe, g, n, NULL);
        if (!rc)
            rc = reason_cuda_matmul((int32_t)wu->type, dptr(cb, wu->data, 0), wu->ne[0], rows,
                                    wu->row_bytes,
                                    routed && p->up_bias
                                        ? dptr(cb, p->up_bias + (size_t)e * rows, 0)
                                        : NULL,
                                    xe, u, n, NULL);
        if (!rc)
            rc = reason_cuda_moe_act(g, u, (int64_t)n * rows, p->act, p->limit, p->alpha, NULL);
        if (!rc)
            rc = reason_cuda_matmul((int32_t)wd->type, dptr(cb, wd->data, 0), wd->ne[0],
                                    wd->ne[1], wd->row_bytes,
                                    routed && p->down_bias
                                        ? dptr(cb, p->down_bias + (size_t)e * n_embd, 0)
                                        : NULL,
                                    g, ye, n, NULL);
        /* expert_scale: host-readable model memory (the twin reads it the same way) */
        const float es = routed && p->expert_scale ? p->expert_scale[e] : 1.0f;
        if (!rc)
            rc = reason_cuda_moe_scatter(ye, pairs, dw, es, n, n_slot, (int32_t)n_embd, dout,
                                         NULL);
    }
    done(cb, rc, "moe");
}

/* ---- sync and lifetime ---------------------------------------------------------------------- */

static reason_status cuda_sync(backend *be) {
    cuda_backend *cb = cuda(be);
    for (int i = 0; i < 4 && !cb->err; i++) {
        mirror *m = &cb->mirrors[i];
        if (!m->host || !m->dirty) continue;
        record(cb, reason_cuda_download_async(m->host, m->dev, m->dirty, NULL),
               "sync (copying logits to the host)");
        m->dirty = 0;
    }
    const int rc = reason_cuda_sync();
    if (rc && !cb->err) {
        cb->err = rc;
        snprintf(cb->err_op, sizeof cb->err_op, "a kernel queued at or before op '%s'",
                 cb->last_op ? cb->last_op : "(none)");
    }
    if (!cb->err) return REASON_OK;
    const reason_status st =
        rs_error(REASON_ERR_DEVICE, "CUDA backend: %s failed: %s%s", cb->err_op,
                 reason_cuda_error_string(cb->err),
                 cb->sync_each ? "" : " (REASON_CUDA_SYNC=1 names the failing op)");
    cb->err = 0;
    return st;
}

static void cuda_destroy(backend *be) {
    if (!be) return;
    cuda_backend *cb = cuda(be);
    reason_cuda_sync();
    for (int i = 0; i < 4; i++) {
        reason_cuda_free(cb->mirrors[i].dev);
        reason_cuda_host_free(cb->mirrors[i].host);
    }
    for (int i = 0; i < META_COUNT; i++) {
        reason_cuda_free(cb->meta[i].dev);
        free(cb->meta[i].host);
    }
    reason_cuda_free(cb->work);
    reason_cuda_free(cb->dn_work);
    free(cb->dn_host);
    free(cb->dn_seen);
    free(cb->moe_host);
    reason_cuda_free(cb->weights);
    free(cb->spans);
    free(cb->attn_host);
    free(cb->attn_tables);
    free(cb->attn_need);
    free(cb->attn_toff);
    free(cb);
}

static const backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .get_rows = cuda_get_rows,
    .rmsnorm = cuda_rmsnorm,
    .matmul = cuda_matmul,
    .matmul_group = cuda_matmul_group,
    .rope = cuda_rope,
    .swiglu = cuda_swiglu,
    .geglu = cuda_geglu,
    .scale = cuda_scale,
    .softcap = cuda_softcap,
    .gather_rows = cuda_gather_rows,
    .add = cuda_add,
    .kv_alloc = cuda_kv_alloc,
    .kv_free = cuda_kv_free,
    .kv_store = cuda_kv_store,
    .kv_copy_block = cuda_kv_copy_block,
    .attention = cuda_attention,
    .sync = cuda_sync,
    .deltanet = cuda_deltanet,
    .mul_sigmoid = cuda_mul_sigmoid,
    .moe_route = cuda_moe_route,
    .moe = cuda_moe,
};

/* ---- weights -------------------------------------------------------------------------------- */

static const char *type_name(uint32_t type) {
    const tensor_type_info *ti = tensor_type_get(type);
    return ti ? ti->name : "unknown";
}

static reason_status check_matrix(const rs_tensor *t) {
    if (t && t->data && !reason_cuda_matmul_supported((int32_t)t->type))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: weight '%s' of type %s has no CUDA kernel", t->name,
                        type_name(t->type));
    return REASON_OK;
}

static reason_status check_vector(const rs_tensor *t) {
    if (t && t->data && t->type != TENSOR_F32)
        return rs_error(REASON_ERR_UNSUPPORTED, "CUDA backend: vector '%s' is %s, expected F32",
                        t->name, type_name(t->type));
    return REASON_OK;
}

/* Why the CUDA backend cannot run the model, or REASON_OK: shapes its kernels lack (attention
 * head_dim > 256, DeltaNet heads > 256 or conv > 8, more than 1024 experts or 32 per token)
 * and weight types without a CUDA kernel (e.g. gpt-oss's MXFP4 experts). */
static reason_status check_model(const reason_model *m) {
    const model_hparams *hp = &m->hp;
    if (hp->n_rec_layer > 0 &&
        (hp->ssm_d_k <= 0 || hp->ssm_d_k > DELTANET_MAX_HEAD_DIM || hp->ssm_d_v <= 0 ||
         hp->ssm_d_v > DELTANET_MAX_HEAD_DIM || hp->ssm_n_k_head <= 0 ||
         hp->ssm_n_v_head % hp->ssm_n_k_head || hp->ssm_conv_kernel < 1 ||
         hp->ssm_conv_kernel > 8))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: model '%s' (%s): Gated DeltaNet with %d key heads of %d, "
                        "%d value heads of %d, conv %d: the CUDA kernel needs head sizes <= %d "
                        "and conv_kernel <= 8",
                        m->name, m->arch_name, hp->ssm_n_k_head, hp->ssm_d_k, hp->ssm_n_v_head,
                        hp->ssm_d_v, hp->ssm_conv_kernel, DELTANET_MAX_HEAD_DIM);
    if (hp->n_expert > 0 && (hp->n_expert > 1024 || hp->n_expert_used > 32))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: model '%s' (%s): %d experts, %d per token: the CUDA "
                        "routing kernel takes at most 1024 and 32",
                        m->name, m->arch_name, hp->n_expert, hp->n_expert_used);
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const layer_weights *l = &m->layers[il];
        if (l->kind != LAYER_ATTENTION) continue;
        const int32_t hd = l->head_dim ? l->head_dim : hp->head_dim;
        const int32_t nkv = l->n_head_kv ? l->n_head_kv : hp->n_head_kv;
        if (nkv <= 0 || hp->n_head % nkv || hd <= 0 || hd > 256)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "CUDA backend: layer %d: %d heads, %d KV heads of dimension %d: "
                            "attention needs n_head a multiple of n_head_kv and head_dim <= 256",
                            il, hp->n_head, nkv, hd);
    }
    if (!reason_cuda_matmul_supported((int32_t)m->tok_embd.type))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: embedding '%s' of type %s has no CUDA kernel",
                        m->tok_embd.name, type_name(m->tok_embd.type));
    RS_TRY(check_matrix(&m->output));
    RS_TRY(check_matrix(&m->ple_embd));
    RS_TRY(check_matrix(&m->ple_model_proj));
    RS_TRY(check_vector(&m->output_norm));
    RS_TRY(check_vector(&m->rope_freqs));
    RS_TRY(check_vector(&m->ple_proj_norm));
    const int32_t n_views = hp->n_expert ? hp->n_expert + (hp->n_ff_shexp > 0) : 0;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const layer_weights *l = &m->layers[il];
        const rs_tensor *mats[] = {&l->wq,       &l->wk,        &l->wv,        &l->wo,
                                   &l->wq_gate,  &l->w_gate,    &l->w_up,      &l->w_down,
                                   &l->ple_gate, &l->ple_proj,  &l->ssm_qkv,   &l->ssm_z,
                                   &l->ssm_beta, &l->ssm_alpha, &l->ssm_out,   &l->ffn_router,
                                   &l->shexp_router};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) RS_TRY(check_matrix(mats[i]));
        for (int32_t e = 0; l->exp_gate && e < n_views; e++) {
            RS_TRY(check_matrix(&l->exp_gate[e]));
            RS_TRY(check_matrix(&l->exp_up[e]));
            RS_TRY(check_matrix(&l->exp_down[e]));
        }
        const rs_tensor *vecs[] = {&l->attn_norm,      &l->ffn_norm,        &l->bq,
                                   &l->bk,             &l->bv,              &l->bo,
                                   &l->attn_sinks,     &l->q_norm,          &l->k_norm,
                                   &l->post_attn_norm, &l->post_ffn_norm,   &l->post_ffn_norm_1,
                                   &l->pre_ffn_norm_2, &l->post_ffn_norm_2, &l->ple_post_norm,
                                   &l->ssm_conv1d,     &l->ssm_dt,          &l->ssm_a,
                                   &l->ssm_norm,       &l->ffn_router_b};
        for (size_t i = 0; i < sizeof vecs / sizeof *vecs; i++) RS_TRY(check_vector(vecs[i]));
    }
    return REASON_OK;
}

static int span_cmp(const void *a, const void *b) {
    const weight_span *x = a, *y = b;
    return x->host < y->host ? -1 : x->host > y->host;
}

static void add_span(weight_span *s, int32_t *n, const rs_tensor *t) {
    if (!t || !t->data) return;
    s[*n].host = (uintptr_t)t->data;
    s[*n].bytes = t->row_bytes * (size_t)RS_MAX(1, t->ne[1]);
    s[*n].dev = NULL;
    (*n)++;
}

/* A weight that is a plain float array (loader-owned rope divisors, router norm, biases). */
static void add_floats(weight_span *s, int32_t *n, const float *p, size_t count) {
    if (!p || !count) return;
    s[*n].host = (uintptr_t)p;
    s[*n].bytes = count * sizeof(float);
    s[*n].dev = NULL;
    (*n)++;
}

/* Every weight the forward pass hands an op (tensors, expert views — interior pointers of 3-D
 * tensors, each its own span —, biases, owned float arrays) into one device allocation; spans
 * sorted by host address, ranges that overlap (views of one buffer) merged. */
static reason_status upload_weights(cuda_backend *cb, const reason_model *m) {
    const model_hparams *hp = &m->hp;
    const int32_t n_views = hp->n_expert ? hp->n_expert + 1 : 0;
    const int32_t per_layer = 48 + 3 * n_views, cap = 8 + per_layer * hp->n_layer;
    weight_span *s = rs_calloc((size_t)cap, sizeof *s, "CUDA weight table");
    if (!s) return REASON_ERR_NOMEM;
    int32_t n = 0;
    add_span(s, &n, &m->tok_embd);
    add_span(s, &n, &m->output_norm);
    add_span(s, &n, &m->output);
    add_span(s, &n, &m->rope_freqs);
    add_span(s, &n, &m->ple_embd);
    add_span(s, &n, &m->ple_model_proj);
    add_span(s, &n, &m->ple_proj_norm);
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const layer_weights *l = &m->layers[il];
        const rs_tensor *all[] = {
            &l->attn_norm,      &l->wq,              &l->wk,           &l->wv,
            &l->bq,             &l->bk,              &l->bv,           &l->q_norm,
            &l->k_norm,         &l->wo,              &l->bo,           &l->attn_sinks,
            &l->wq_gate,        &l->ffn_norm,        &l->w_gate,       &l->w_up,
            &l->w_down,         &l->post_attn_norm,  &l->post_ffn_norm, &l->post_ffn_norm_1,
            &l->pre_ffn_norm_2, &l->post_ffn_norm_2, &l->ple_gate,     &l->ple_proj,
            &l->ple_post_norm,  &l->ssm_qkv,         &l->ssm_z,        &l->ssm_beta,
            &l->ssm_alpha,      &l->ssm_conv1d,      &l->ssm_dt,       &l->ssm_a,
            &l->ssm_norm,       &l->ssm_out,         &l->ffn_router,   &l->ffn_router_b,
            &l->shexp_router};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) add_span(s, &n, all[i]);
        add_floats(s, &n, l->rope_div, (size_t)RS_MAX(0, l->rope_dim / 2));
        add_floats(s, &n, l->ffn_router_norm, (size_t)hp->n_embd);
        add_floats(s, &n, l->expert_scale, (size_t)hp->n_expert);
        add_floats(s, &n, l->exp_gate_b, (size_t)hp->n_expert * hp->n_ff_exp);
        add_floats(s, &n, l->exp_up_b, (size_t)hp->n_expert * hp->n_ff_exp);
        add_floats(s, &n, l->exp_down_b, (size_t)hp->n_expert * hp->n_embd);
        for (int32_t e = 0; l->exp_gate && e < n_views; e++) {
            if (e == hp->n_expert && !hp->n_ff_shexp) break;
            add_span(s, &n, &l->exp_gate[e]);
            add_span(s, &n, &l->exp_up[e]);
            add_span(s, &n, &l->exp_down[e]);
        }
    }
    qsort(s, (size_t)n, sizeof *s, span_cmp);
    int32_t k = 0; /* merge overlapping and identical ranges */
    for (int32_t i = 0; i < n; i++) {
        if (k > 0 && s[i].host < s[k - 1].host + s[k - 1].bytes) {
            const uintptr_t end = RS_MAX(s[k - 1].host + s[k - 1].bytes, s[i].host + s[i].bytes);
            s[k - 1].bytes = end - s[k - 1].host;
        } else {
            s[k++] = s[i];
        }
    }
    n = k;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total = (total + 255) / 256 * 256 + s[i].bytes;
    cb->spans = s;
    cb->n_spans = n;
    cb->weights = reason_cuda_malloc(total);
    if (!cb->weights)
        return rs_error(REASON_ERR_NOMEM,
                        "CUDA backend: cannot allocate %zu MiB of device memory for the weights",
                        total >> 20);
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        off = (off + 255) / 256 * 256;
        s[i].dev = cb->weights + off;
        const int rc = reason_cuda_upload(s[i].dev, (const void *)s[i].host, s[i].bytes);
        if (rc)
            return rs_error(REASON_ERR_DEVICE, "CUDA backend: uploading the weights failed: %s",
                            reason_cuda_error_string(rc));
        off += s[i].bytes;
    }
    return REASON_OK;
}

reason_status backend_cuda_create(const reason_model *model, int32_t max_positions,
                                  backend **out) {
    RS_CHECK_ARG(out != NULL && max_positions > 0);
    *out = NULL;
    if (reason_cuda_device_count() <= 0)
        return rs_error(REASON_ERR_DEVICE,
                        "REASON_BACKEND=cuda: no usable CUDA device (no GPU, no driver, or "
                        "CUDA_VISIBLE_DEVICES hides them)");
    if (model) RS_TRY(check_model(model));
    cuda_backend *cb = rs_calloc(1, sizeof *cb, "CUDA backend");
    if (!cb) return REASON_ERR_NOMEM;
    cb->base.ops = &cuda_ops;
    cb->n_sm = reason_cuda_sm_count();
    if (cb->n_sm <= 0) cb->n_sm = 132;
    const char *e = getenv("REASON_CUDA_SYNC");
    cb->sync_each = e && *e && strcmp(e, "0");
    e = getenv("REASON_CUDA_ATTN");
    cb->force_attn = e && !strcmp(e, "decode") ? 1 : e && !strcmp(e, "prefill") ? 2 : 0;
    reason_status st = REASON_OK;
    if (model && (st = upload_weights(cb, model)) != REASON_OK) goto fail;
    const int rc = reason_cuda_sync();
    if (rc) {
        st = rs_error(REASON_ERR_DEVICE, "CUDA backend: device initialisation failed: %s",
                      reason_cuda_error_string(rc));
        goto fail;
    }
    *out = &cb->base;
    return REASON_OK;
fail:
    cuda_destroy(&cb->base);
    return st;
}

#endif
