/* backend_cuda.c — the CUDA backend, host side: backend_ops over the extern "C" launchers of
 * kernels/ (kernels.h); no CUDA header is included here.
 * UNVERIFIED ON A GPU: written and compiled without a device (docs/gpu-status.md).
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
 * Ops: every op dense llama/qwen2/qwen3 need, plus mul_sigmoid; deltanet (and the MoE ops) stay
 * NULL and creation refuses models that would need them. */
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
/* Split-KV: at least this many positions per split, and at most this many splits. */
#define SPLIT_MIN_POS 128
#define SPLIT_MAX 128

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

enum { META_IDS, META_GATHER, META_POS, META_SLOTS, META_ATTN, META_COUNT };

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
    void *p = reason_cuda_malloc(bytes);
    if (!p)
        rs_error(REASON_ERR_NOMEM, "CUDA backend: cannot allocate %zu bytes of device memory for %s",
                 bytes, what ? what : "a buffer");
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
    pool->elem_bytes = pool->type == REASON_KV_F32 ? 4 : 2;
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
        /* split-KV: enough blocks to fill the device twice, splits of >= SPLIT_MIN_POS */
        const int32_t g = ap->n_head / RS_MAX(1, ap->n_head_kv);
        const int64_t pairs = (int64_t)n * ap->n_head_kv * (g <= 4 ? 1 : (g + 7) / 8);
        int64_t n_split = (2 * (int64_t)cb->n_sm + pairs - 1) / pairs;
        n_split = RS_MIN(n_split, (am.longest + SPLIT_MIN_POS - 1) / SPLIT_MIN_POS);
        n_split = RS_MAX(1, RS_MIN(SPLIT_MAX, n_split));
        const size_t need =
            reason_cuda_attention_work(n, ap->n_head, ap->head_dim, (int32_t)n_split);
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
        rc = reason_cuda_attention_decode(&kv, layer, dq, &db, &a, (int32_t)n_split, cb->work,
                                          dout, NULL);
    }
    done(cb, rc, "attention");
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
    .gather_rows = cuda_gather_rows,
    .add = cuda_add,
    .kv_alloc = cuda_kv_alloc,
    .kv_free = cuda_kv_free,
    .kv_store = cuda_kv_store,
    .kv_copy_block = cuda_kv_copy_block,
    .attention = cuda_attention,
    .sync = cuda_sync,
    .deltanet = NULL, /* Gated DeltaNet: not on CUDA yet (creation refuses such models) */
    .mul_sigmoid = cuda_mul_sigmoid,
};

/* ---- weights -------------------------------------------------------------------------------- */

static const char *type_name(uint32_t type) {
    const tensor_type_info *ti = tensor_type_get(type);
    return ti ? ti->name : "unknown";
}

/* Why the CUDA backend cannot run the model, or REASON_OK. */
static reason_status check_model(const reason_model *m) {
    const model_hparams *hp = &m->hp;
    if (hp->n_rec_layer > 0)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: model '%s' (%s) has %d Gated DeltaNet layers; the deltanet "
                        "op is not implemented on CUDA yet (use the CPU backend)",
                        m->name, m->arch_name, hp->n_rec_layer);
    if (hp->n_expert > 0)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: model '%s' (%s) is a mixture of experts; the MoE ops are "
                        "not implemented on CUDA yet (use the CPU backend)",
                        m->name, m->arch_name);
    if (m->ple_embd.data)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: model '%s' (%s) has per-layer embeddings; not implemented "
                        "on CUDA yet (use the CPU backend)",
                        m->name, m->arch_name);
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const layer_weights *l = &m->layers[il];
        if (l->kv_shared || l->k_eq_v || l->v_norm || l->post_attn_norm.data ||
            l->post_ffn_norm.data || l->ple_gate.data || l->expert_scale ||
            (l->layer_scalar != 0.0f && l->layer_scalar != 1.0f) ||
            (l->head_dim && l->head_dim != hp->head_dim) ||
            (l->n_head_kv && l->n_head_kv != hp->n_head_kv))
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "CUDA backend: layer %d of model '%s' (%s) needs ops the CUDA backend "
                            "lacks (shared KV, sandwich norms, per-layer geometry or scale); use "
                            "the CPU backend",
                            il, m->name, m->arch_name);
    }
    if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv || hp->head_dim > 256)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: %d heads, %d KV heads of dimension %d: attention needs "
                        "n_head a multiple of n_head_kv and head_dim <= 256",
                        hp->n_head, hp->n_head_kv, hp->head_dim);
    if (!reason_cuda_matmul_supported((int32_t)m->tok_embd.type))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "CUDA backend: embedding '%s' of type %s has no CUDA kernel",
                        m->tok_embd.name, type_name(m->tok_embd.type));
    for (int32_t il = 0; il <= hp->n_layer; il++) {
        const layer_weights *l = il < hp->n_layer ? &m->layers[il] : NULL;
        const rs_tensor *mats[] = {l ? &l->wq : &m->output, l ? &l->wk : NULL, l ? &l->wv : NULL,
                                   l ? &l->wo : NULL,       l ? &l->wq_gate : NULL,
                                   l ? &l->w_gate : NULL,   l ? &l->w_up : NULL,
                                   l ? &l->w_down : NULL};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++)
            if (mats[i] && mats[i]->data && !reason_cuda_matmul_supported((int32_t)mats[i]->type))
                return rs_error(REASON_ERR_UNSUPPORTED,
                                "CUDA backend: weight '%s' of type %s has no CUDA kernel",
                                mats[i]->name, type_name(mats[i]->type));
        const rs_tensor *vecs[] = {l ? &l->attn_norm : &m->output_norm,
                                   l ? &l->ffn_norm : &m->rope_freqs,
                                   l ? &l->bq : NULL,
                                   l ? &l->bk : NULL,
                                   l ? &l->bv : NULL,
                                   l ? &l->bo : NULL,
                                   l ? &l->attn_sinks : NULL,
                                   l ? &l->q_norm : NULL,
                                   l ? &l->k_norm : NULL};
        for (size_t i = 0; i < sizeof vecs / sizeof *vecs; i++)
            if (vecs[i] && vecs[i]->data && vecs[i]->type != TENSOR_F32)
                return rs_error(REASON_ERR_UNSUPPORTED,
                                "CUDA backend: vector '%s' is %s, expected F32", vecs[i]->name,
                                type_name(vecs[i]->type));
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

/* Every tensor of the model into one device allocation; spans sorted by host address, ranges
 * that overlap (views of one buffer) merged. */
static reason_status upload_weights(cuda_backend *cb, const reason_model *m) {
    const int32_t per_layer = 17, cap = 4 + per_layer * m->hp.n_layer;
    weight_span *s = rs_calloc((size_t)cap, sizeof *s, "CUDA weight table");
    if (!s) return REASON_ERR_NOMEM;
    int32_t n = 0;
    add_span(s, &n, &m->tok_embd);
    add_span(s, &n, &m->output_norm);
    add_span(s, &n, &m->output);
    add_span(s, &n, &m->rope_freqs);
    for (int32_t il = 0; il < m->hp.n_layer; il++) {
        const layer_weights *l = &m->layers[il];
        const rs_tensor *all[] = {&l->attn_norm, &l->wq,       &l->wk,     &l->wv,
                                  &l->bq,        &l->bk,       &l->bv,     &l->q_norm,
                                  &l->k_norm,    &l->wo,       &l->bo,     &l->attn_sinks,
                                  &l->wq_gate,   &l->ffn_norm, &l->w_gate, &l->w_up,
                                  &l->w_down};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) add_span(s, &n, all[i]);
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
