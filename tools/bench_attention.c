/* bench_attention.c — decode attention alone: one new token of one trace attending to DEPTH
 * cached positions in every layer of a KV pool too big for the caches (Qwen2.5-0.5B's geometry
 * by default: 24 layers, 14 query heads, 2 KV heads of 64), as GB/s of K/V streamed and cycles'
 * worth of nanoseconds per (position, query head). Median of 15 passes over all layers.
 *
 *   cmake --build build && gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc \
 *       tools/bench_attention.c build/libreason_static.a -lopenblas -lpthread -lm \
 *       -o /tmp/bench_attention
 *   /tmp/bench_attention [depth 16384] [threads 2] [kv f16|q8|bf16|f32] [n_head n_head_kv hd]
 */
#include "backend_cpu.h"
#include "bench_clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const int32_t depth = argc > 1 ? atoi(argv[1]) : 16384, threads = argc > 2 ? atoi(argv[2]) : 2;
    const char *kv = argc > 3 ? argv[3] : "f16";
    const int32_t n_head = argc > 6 ? atoi(argv[4]) : 14, n_head_kv = argc > 6 ? atoi(argv[5]) : 2,
                  hd = argc > 6 ? atoi(argv[6]) : 64, n_layer = 24, bs = 16;
    const int32_t type = !strcmp(kv, "q8")     ? REASON_KV_Q8
                         : !strcmp(kv, "bf16") ? REASON_KV_BF16
                         : !strcmp(kv, "f32")  ? REASON_KV_F32
                                               : REASON_KV_F16;
    backend *be = NULL;
    if (backend_cpu_create(threads, 1 << 16, &be) != REASON_OK) return 1;
    const int32_t kv_dim = n_head_kv * hd, n_pos = depth + 1, nb = (n_pos + bs - 1) / bs;
    kv_pool pool = {.n_layer = n_layer, .kv_dim = kv_dim, .block_size = bs, .n_blocks = nb,
                    .type = type};
    if (be->ops->kv_alloc(be, &pool) != REASON_OK) return 1;
    int32_t *table = malloc((size_t)nb * sizeof *table), *slots = malloc(bs * sizeof *slots);
    for (int32_t b = 0; b < nb; b++) table[b] = b;
    float *k = malloc((size_t)bs * kv_dim * sizeof *k);
    float *v = malloc((size_t)bs * kv_dim * sizeof *v);
    uint64_t s = 88172645463325252ull;
    for (int32_t layer = 0; layer < n_layer; layer++)
        for (int32_t b = 0; b < nb; b++) {
            for (int32_t i = 0; i < bs * kv_dim; i++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                k[i] = (float)(s % 2001) / 1000.0f - 1.0f;
                v[i] = (float)((s >> 20) % 2001) / 1000.0f - 1.0f;
            }
            for (int32_t i = 0; i < bs; i++) slots[i] = table[b] * bs + i;
            be->ops->kv_store(be, &pool, layer, k, v, slots, bs);
        }
    const size_t qn = (size_t)n_head * hd;
    float *q = malloc(qn * sizeof *q), *out = malloc(qn * sizeof *out);
    for (size_t i = 0; i < qn; i++) q[i] = (float)(i % 17) / 8.0f - 1.0f;
    const int32_t pos = depth, slot = table[depth / bs] * bs + depth % bs, seq = 0;
    const int32_t *tables[1] = {table};
    const attn_batch batch = {.n_tok = 1, .pos = &pos, .block_tables = tables, .slots = &slot,
                              .seq_id = &seq};
    const attn_params ap = {.n_head = n_head, .n_head_kv = n_head_kv, .head_dim = hd,
                            .scale = 1.0f / sqrtf((float)hd)};
    double t[15];
    for (int r = 0; r < 15; r++) {
        const double t0 = bench_now();
        for (int32_t layer = 0; layer < n_layer; layer++)
            be->ops->attention(be, &pool, layer, q, &batch, &ap, out);
        t[r] = bench_now() - t0;
    }
    qsort(t, 15, sizeof *t, bench_cmp_double);
    const double bytes = (double)n_layer * n_pos * pool.slot_bytes * 2;
    printf("depth %d, %d threads, kv %s, %d/%d heads of %d: %.3f ms for %d layers, %.1f GB/s of "
           "K/V, %.2f ns per (position, query head)  [checksum %.4f]\n",
           depth, threads, kv, n_head, n_head_kv, hd, t[7] * 1e3, n_layer, bytes / t[7] / 1e9,
           t[7] * 1e9 * threads / ((double)n_layer * n_pos * n_head), (double)out[0]);
    be->ops->kv_free(be, &pool);
    be->ops->destroy(be);
    return 0;
}
