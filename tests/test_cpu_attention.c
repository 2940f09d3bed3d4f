/* test_cpu_attention.c — the CPU attention op (backend_ops.attention) against a naive
 * double-precision softmax(q·kᵀ·scale)·v computed here, over a paged pool with shuffled blocks.
 * Keys and values are rounded to the pool's type before they are stored, so the reference sees
 * exactly what the pool holds and the tolerance is the f32 arithmetic's, for every KV type.
 *
 * Each case runs four ways: the prompt path (cpu_attention_prefill.c: runs of >= 16 tokens of a
 * sequence as tiled matrix products; AVX-512 where the machine has it) on 1 and 2 threads, its
 * sgemm form (REASON_CPU_ATTN_PREFILL=generic) on 2 threads, and the per-token path (forced with
 * REASON_CPU_ATTN_PREFILL=0) on 2 threads. Cases: prompts of 17–300 tokens at depth 0 and
 * 1000+, several sequences in one batch, prompt runs mixed with decode tokens, interleaved
 * sequences (the per-token path only), windows smaller and larger than a tile, sinks, grouped
 * query heads g = 1, 2, 8, head_dim 64, 80, 128, 256, F32/F16/BF16/Q8 KV (Q8 with values the
 * 8-bit format holds exactly; its rounding is checked on its own against the definition), and
 * forked sequences sharing their first blocks (attended once for all of them). */
#include "test_util.h"

#include "backend_cpu.h"
#include "tensor_types.h"

#include <math.h>
#include <string.h>

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static float rnd(float lo, float hi) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 16) & 0xffffff) / (float)0x1000000;
}

/* A random value of element i of a K/V row, as the pool stores it. Q8 (an int8 per value, a scale
 * max|x| / 127 per 32 values): q / 128 with integer q in [-127, 127] and q = ±127 at the start of
 * each 32, so the scale is 2^-7 and every value is held exactly. */
static float kv_value(int32_t type, size_t i) {
    const float x = rnd(-1.0f, 1.0f);
    if (type == REASON_KV_F16) return rs_f16_to_f32(rs_f32_to_f16(x));
    if (type == REASON_KV_BF16) return rs_bf16_to_f32(rs_f32_to_bf16(x));
    if (type == REASON_KV_Q8) return i % 32 == 0 ? (x < 0 ? -127.0f : 127.0f) / 128.0f
                                                  : nearbyintf(x * 127.0f) / 128.0f;
    return x;
}

/* The 8-bit tiles' integer kernels: queries and softmax weights in 16 bits. */
#define Q8_WEIGHTS_REL 1e-4
#define Q8_WEIGHTS_ABS 1e-4

typedef struct attn_case {
    int32_t type, n_head, n_head_kv, hd, window, sinks, n_seq;
    int32_t len[4], n_new[4]; /* sequence s holds len[s] positions, the last n_new[s] are new */
    int32_t interleave;       /* new tokens of the sequences alternate (no runs) */
    int32_t prefill;          /* the prompt path is expected to take the batch */
    int32_t block_size;       /* 0: 16 (F16 keys are then stored in tiles of 16, cpu_kv.c) */
    int32_t shared[4]; /* sequence s holds sequence 0's first shared[s] positions in the same
                        * blocks (forked traces; a multiple of the block size) */
} attn_case;

static const char *type_name(int32_t t) {
    return t == REASON_KV_F32   ? "f32"
           : t == REASON_KV_F16 ? "f16"
           : t == REASON_KV_Q8  ? "q8"
                                : "bf16";
}

/* Runs the case on a fresh backend (env: REASON_CPU_ATTN_PREFILL for it, or NULL); returns
 * ||out - ref|| / ||ref||. */
static double run_case(const attn_case *c, int32_t n_threads, const char *env, double *worst_abs,
                       bool *q8_tol) {
    const bool old_path = env && !strcmp(env, "0");
    if (env) setenv("REASON_CPU_ATTN_PREFILL", env, 1);
    backend *be = NULL;
    ck_assert_int_eq(backend_cpu_create(n_threads, 1 << 16, &be), REASON_OK);
    unsetenv("REASON_CPU_ATTN_PREFILL");
    const int32_t bs = c->block_size ? c->block_size : 16, kv_dim = c->n_head_kv * c->hd;
    const int32_t g = c->n_head / c->n_head_kv;
    int32_t n_blocks = 3, n_tok = 0, max_len = 0;
    for (int32_t s = 0; s < c->n_seq; s++) {
        n_blocks += (c->len[s] + bs - 1) / bs;
        n_tok += c->n_new[s];
        max_len = RS_MAX(max_len, c->len[s]);
    }
    kv_pool pool = {
        .n_layer = 2, .kv_dim = kv_dim, .block_size = bs, .n_blocks = n_blocks, .type = c->type};
    ck_assert_int_eq(be->ops->kv_alloc(be, &pool), REASON_OK);
    const bool tiles = bs % 16 == 0 && (c->type == REASON_KV_Q8 ? rs_cpu_has_vnni()
                                                                : c->type == REASON_KV_F16 &&
                                                                      tensor_isa_best() >=
                                                                          TENSOR_ISA_AVX512);
    ck_assert_int_eq(pool.k_tile, tiles ? 16 : 1);
    /* the 8-bit tiles' integer kernels (decode: the per-token path) round queries and softmax
     * weights to 16 bits per 32 values: ~1e-5 more error than f32 arithmetic */
    *q8_tol = cpu_kv_q8_tiled(&pool) && c->hd % 32 == 0 && !(c->prefill && !old_path);
    int32_t *perm = malloc((size_t)n_blocks * sizeof *perm);
    for (int32_t i = 0; i < n_blocks; i++) perm[i] = i;
    for (int32_t i = n_blocks - 1; i > 0; i--) {
        const int32_t j = (int32_t)(rnd(0.0f, 1.0f) * (float)(i + 1)) % (i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    const int32_t layer = 1;
    int32_t *tables[4];
    float *ks[4], *vs[4]; /* (len, kv_dim) as stored */
    int32_t *slots = malloc((size_t)max_len * sizeof *slots);
    for (int32_t s = 0, used = 0; s < c->n_seq; s++) {
        const int32_t nb = (c->len[s] + bs - 1) / bs, n_shared = s ? c->shared[s] / bs : 0;
        tables[s] = malloc((size_t)nb * sizeof **tables);
        for (int32_t b = 0; b < nb; b++) tables[s][b] = b < n_shared ? tables[0][b] : perm[used++];
        const size_t n = (size_t)c->len[s] * kv_dim;
        ks[s] = malloc(n * sizeof(float));
        vs[s] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            const bool copy = i < (size_t)n_shared * bs * kv_dim;
            ks[s][i] = copy ? ks[0][i] : kv_value(c->type, i % (size_t)kv_dim);
            vs[s][i] = copy ? vs[0][i] : kv_value(c->type, i % (size_t)kv_dim);
        }
        for (int32_t p = 0; p < c->len[s]; p++) slots[p] = tables[s][p / bs] * bs + p % bs;
        be->ops->kv_store(be, &pool, layer, ks[s], vs[s], slots, c->len[s]);
    }
    /* the batch: sequence after sequence, or round robin */
    int32_t *pos = malloc((size_t)n_tok * sizeof *pos), *seq = malloc((size_t)n_tok * sizeof *seq);
    int32_t *tok_slots = malloc((size_t)n_tok * sizeof *tok_slots);
    const int32_t **tok_tables = malloc((size_t)n_tok * sizeof *tok_tables);
    int32_t next[4] = {0};
    for (int32_t t = 0, s = 0; t < n_tok; t++) {
        if (c->interleave)
            while (next[s % c->n_seq] >= c->n_new[s % c->n_seq]) s++;
        else
            while (next[s] >= c->n_new[s]) s++;
        const int32_t sq = c->interleave ? s % c->n_seq : s;
        seq[t] = sq;
        pos[t] = c->len[sq] - c->n_new[sq] + next[sq]++;
        tok_tables[t] = tables[sq];
        tok_slots[t] = tables[sq][pos[t] / bs] * bs + pos[t] % bs;
        if (c->interleave) s++;
    }
    const size_t qn = (size_t)n_tok * c->n_head * c->hd;
    float *q = malloc(qn * sizeof *q), *out = malloc(qn * sizeof *out);
    float sinks[64];
    for (size_t i = 0; i < qn; i++) q[i] = rnd(-2.0f, 2.0f);
    for (int32_t h = 0; h < c->n_head; h++) sinks[h] = rnd(-1.0f, 3.0f);
    for (size_t i = 0; i < qn; i++) out[i] = NAN;
    const attn_batch batch = {.n_tok = n_tok, .pos = pos, .block_tables = tok_tables,
                              .slots = tok_slots, .seq_id = seq};
    const attn_params ap = {.n_head = c->n_head, .n_head_kv = c->n_head_kv, .head_dim = c->hd,
                            .scale = 1.0f / sqrtf((float)c->hd), .window = c->window,
                            .sinks = c->sinks ? sinks : NULL};
    be->ops->attention(be, &pool, layer, q, &batch, &ap, out);
    /* the path the case means to exercise was the one taken */
    ck_assert_int_eq(cpu(be)->attn_pf != NULL, c->prefill && !old_path);

    double num = 0.0, den = 0.0, *sc = malloc((size_t)max_len * sizeof *sc);
    *worst_abs = 0.0;
    for (int32_t t = 0; t < n_tok; t++) {
        const int32_t s = seq[t];
        const int32_t lo = c->window > 0 && pos[t] >= c->window ? pos[t] - c->window + 1 : 0;
        for (int32_t h = 0; h < c->n_head; h++) {
            const float *qh = q + ((size_t)t * c->n_head + h) * c->hd;
            const size_t koff = (size_t)(h / g) * c->hd;
            double mx = c->sinks ? sinks[h] : -INFINITY;
            for (int32_t p = lo; p <= pos[t]; p++) {
                const float *k = ks[s] + (size_t)p * kv_dim + koff;
                double d = 0.0;
                for (int32_t i = 0; i < c->hd; i++) d += (double)qh[i] * k[i];
                sc[p] = d * (double)ap.scale;
                mx = sc[p] > mx ? sc[p] : mx;
            }
            double sum = c->sinks ? exp(sinks[h] - mx) : 0.0;
            for (int32_t p = lo; p <= pos[t]; p++) sum += sc[p] = exp(sc[p] - mx);
            const float *o = out + ((size_t)t * c->n_head + h) * c->hd;
            for (int32_t i = 0; i < c->hd; i++) {
                double r = 0.0;
                for (int32_t p = lo; p <= pos[t]; p++)
                    r += sc[p] * vs[s][(size_t)p * kv_dim + koff + (size_t)i];
                r /= sum;
                const double e = isfinite(o[i]) ? o[i] - r : INFINITY;
                num += e * e;
                den += r * r;
                *worst_abs = fmax(*worst_abs, fabs(e));
            }
        }
    }
    free(sc);
    free(q), free(out), free(pos), free(seq), free(tok_slots), free(tok_tables), free(slots);
    for (int32_t s = 0; s < c->n_seq; s++) free(tables[s]), free(ks[s]), free(vs[s]);
    free(perm);
    be->ops->kv_free(be, &pool);
    be->ops->destroy(be);
    return sqrt(num / den);
}

static void check_cases(const attn_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const attn_case *c = &cases[i];
        static const char *const envs[] = {NULL, NULL, "generic", "0"};
        static const char *const names[] = {"auto", "auto", "generic", "per-token"};
        for (int way = 0; way < 4; way++) {
            const int32_t threads = way == 0 ? 1 : 2;
            double worst_abs;
            bool q8_tol;
            const double err = run_case(c, threads, envs[way], &worst_abs, &q8_tol);
            char what[160];
            int o = snprintf(what, sizeof what, "%s %d/%d hd%d w%d%s %s t%d:", type_name(c->type),
                             c->n_head, c->n_head_kv, c->hd, c->window, c->sinks ? " sinks" : "",
                             names[way], threads);
            for (int32_t s = 0; s < c->n_seq; s++)
                o += snprintf(what + o, sizeof what - (size_t)o, " %d+%d", c->len[s] - c->n_new[s],
                              c->n_new[s]);
            printf("%-72s rel %.2e abs %.2e%s\n", what, err, worst_abs,
                   q8_tol ? " (integer kernels)" : "");
            const double rel = q8_tol ? Q8_WEIGHTS_REL : 1e-5, abs = q8_tol ? Q8_WEIGHTS_ABS : 1e-4;
            ck_assert_msg(err <= rel && worst_abs <= abs, "%s: relative error %g, abs %g", what,
                          err, worst_abs);
        }
    }
}

START_TEST(test_prompts_at_depth_zero) {
    static const attn_case cases[] = {
        {REASON_KV_F32, 4, 4, 64, 0, 0, 1, {17}, {17}, 0, 1, 0, {0}},          /* g 1, one tile + 1 */
        {REASON_KV_F16, 16, 8, 128, 0, 0, 1, {300}, {300}, 0, 1, 0, {0}},      /* g 2, Qwen3 heads */
        {REASON_KV_BF16, 9, 3, 64, 0, 1, 1, {130}, {130}, 0, 1, 0, {0}},       /* g 3, SmolLM2, sinks */
        {REASON_KV_F16, 8, 1, 256, 0, 0, 1, {70}, {70}, 0, 1, 0, {0}},         /* g 8, hd 256 */
        {REASON_KV_F32, 4, 2, 80, 0, 1, 1, {201}, {201}, 0, 1, 0, {0}},        /* odd head_dim */
        {REASON_KV_F16, 4, 2, 64, 0, 0, 1, {16}, {16}, 0, 1, 0, {0}},          /* the shortest run */
        {REASON_KV_F16, 4, 2, 64, 0, 0, 1, {15}, {15}, 0, 0, 0, {0}},          /* one short: per token */
        {REASON_KV_Q8, 16, 8, 128, 0, 0, 1, {130}, {130}, 0, 1, 0, {0}},       /* 8-bit KV */
    };
    check_cases(cases, sizeof cases / sizeof *cases);
}
END_TEST

START_TEST(test_prompts_at_depth) {
    static const attn_case cases[] = {
        {REASON_KV_F16, 16, 8, 128, 0, 0, 1, {1300}, {100}, 0, 1, 0, {0}},
        {REASON_KV_BF16, 8, 1, 128, 0, 1, 1, {1100}, {64}, 0, 1, 0, {0}},      /* g 8, sinks */
        {REASON_KV_F32, 4, 4, 256, 0, 0, 1, {1030}, {33}, 0, 1, 0, {0}},       /* g 1, hd 256 */
        {REASON_KV_F32, 6, 3, 80, 0, 0, 1, {1200}, {17}, 0, 1, 0, {0}},        /* odd head_dim */
        {REASON_KV_Q8, 8, 2, 64, 0, 1, 1, {1100}, {40}, 0, 1, 0, {0}},         /* 8-bit KV, sinks */
        {REASON_KV_Q8, 14, 2, 64, 0, 0, 1, {1500}, {1}, 0, 0, 0, {0}},         /* 8-bit KV, decode */
    };
    check_cases(cases, sizeof cases / sizeof *cases);
}
END_TEST

START_TEST(test_several_sequences) {
    static const attn_case cases[] = {
        /* three prompt runs of different sequences, one at depth */
        {REASON_KV_F16, 8, 4, 64, 0, 0, 3, {1100, 40, 257}, {100, 40, 57}, 0, 1, 0, {0}},
        /* a prompt run and decode tokens of other sequences in one batch */
        {REASON_KV_BF16, 8, 2, 128, 0, 1, 4, {50, 1200, 3, 70}, {1, 64, 1, 20}, 0, 1, 0, {0}},
        /* interleaved sequences: no runs, the per-token path */
        {REASON_KV_F16, 8, 2, 64, 0, 0, 2, {60, 1030}, {20, 20}, 1, 0, 0, {0}},
    };
    check_cases(cases, sizeof cases / sizeof *cases);
}
END_TEST

START_TEST(test_windows_and_sinks) {
    static const attn_case cases[] = {
        {REASON_KV_F16, 8, 4, 64, 8, 0, 1, {1500}, {150}, 0, 1, 0, {0}},    /* window << tile */
        {REASON_KV_F32, 4, 2, 64, 4, 1, 1, {90}, {90}, 0, 1, 0, {0}},       /* tiny window, sinks */
        {REASON_KV_BF16, 8, 4, 64, 100, 1, 1, {1500}, {150}, 0, 1, 0, {0}}, /* about a tile */
        {REASON_KV_F16, 16, 2, 128, 1000, 0, 1, {1500}, {150}, 0, 1, 0, {0}}, /* window >> tile */
        {REASON_KV_F32, 4, 2, 80, 50, 0, 2, {333, 40}, {300, 40}, 0, 1, 0, {0}},
        {REASON_KV_F16, 8, 1, 256, 129, 1, 2, {600, 200}, {90, 200}, 0, 1, 0, {0}},
        {REASON_KV_Q8, 8, 2, 128, 100, 0, 2, {700, 300}, {2, 300}, 0, 1, 0, {0}},
    };
    check_cases(cases, sizeof cases / sizeof *cases);
}
END_TEST

/* Decode (one or a few tokens per sequence: the per-token path) over tiled F16 keys and the 8-bit
 * tiles: positions split across threads, windows that start inside a tile, head sizes that are
 * not a multiple of 16, more query heads per KV head than one scoring pass takes (8), and pools
 * whose block size is not a multiple of 16 (row-major keys, the generic path). */
START_TEST(test_decode) {
    static const attn_case cases[] = {
        {REASON_KV_F16, 14, 2, 64, 0, 0, 1, {1500}, {1}, 0, 0, 0, {0}},     /* Qwen2.5-0.5B heads */
        {REASON_KV_F16, 8, 2, 80, 0, 0, 1, {700}, {3}, 0, 0, 0, {0}},       /* hd 80 */
        {REASON_KV_F16, 9, 3, 64, 100, 1, 1, {1501}, {2}, 0, 0, 0, {0}},    /* window, sinks */
        {REASON_KV_F16, 12, 1, 64, 0, 0, 2, {600, 37}, {1, 1}, 0, 0, 0, {0}}, /* g 12 */
        {REASON_KV_F16, 16, 8, 128, 0, 0, 1, {1000}, {1}, 0, 0, 8, {0}},    /* block size 8 */
        {REASON_KV_F16, 16, 8, 128, 0, 0, 1, {300}, {40}, 0, 1, 24, {0}},   /* prompt, blocks of 24 */
        {REASON_KV_F16, 14, 2, 64, 0, 0, 1, {1203}, {1}, 0, 0, 32, {0}},    /* 2 tiles per block */
        {REASON_KV_F16, 14, 2, 64, 0, 0, 1, {1203}, {30}, 0, 1, 32, {0}},   /* prompt, the same */
        /* the 8-bit tiles' integer kernels: query heads per pass (g 1, 2, 7, 8, 12), head sizes
         * of one to eight 32s, windows and sinks; hd 80 (the tiles read as rows) and blocks of
         * 8 (no tiles: rows) */
        {REASON_KV_Q8, 4, 4, 128, 0, 0, 1, {1000}, {1}, 0, 0, 0, {0}},     /* g 1 */
        {REASON_KV_Q8, 12, 1, 64, 0, 0, 2, {600, 37}, {1, 1}, 0, 0, 0, {0}}, /* g 12 */
        {REASON_KV_Q8, 8, 1, 256, 0, 0, 1, {900}, {2}, 0, 0, 0, {0}},      /* g 8, hd 256 */
        {REASON_KV_Q8, 9, 3, 64, 100, 1, 1, {1501}, {2}, 0, 0, 0, {0}},    /* window, sinks */
        {REASON_KV_Q8, 8, 2, 80, 0, 0, 1, {700}, {3}, 0, 0, 0, {0}},       /* hd 80 */
        {REASON_KV_Q8, 16, 8, 128, 0, 0, 1, {1000}, {1}, 0, 0, 8, {0}},    /* block size 8 */
    };
    check_cases(cases, sizeof cases / sizeof *cases);
}
END_TEST

/* Forked traces decoding together: sequences that hold sequence 0's first blocks (the same
 * block ids) — all of them, some with shorter shared prefixes, one that shares nothing, several
 * tokens of one sequence, a token whose own part after the shared prefix is empty — on F16
 * tiles, BF16 with sinks, the 8-bit pool with 32-position blocks and F32. */
START_TEST(test_shared_prefix) {
    static const attn_case cases[] = {
        {REASON_KV_F16, 14, 2, 64, 0, 0, 4, {1300, 1290, 1310, 1301}, {1, 1, 1, 1}, 0, 0, 0,
         {0, 1024, 1024, 1024}},
        {REASON_KV_BF16, 8, 2, 128, 0, 1, 4, {900, 700, 820, 600}, {1, 1, 1, 1}, 0, 0, 0,
         {0, 512, 640, 0}},
        {REASON_KV_Q8, 8, 2, 64, 0, 0, 3, {700, 650, 640}, {2, 3, 1}, 0, 0, 32, {0, 320, 320}},
        {REASON_KV_F32, 4, 2, 64, 0, 0, 2, {800, 512}, {1, 1}, 0, 0, 0, {0, 512}},
        {REASON_KV_F16, 16, 8, 128, 0, 0, 3, {2100, 2050, 2300}, {1, 1, 1}, 0, 0, 0,
         {0, 2048, 2048}},
    };
    check_cases(cases, sizeof cases / sizeof *cases);
}
END_TEST

/* The 8-bit pool's rounding against its definition, with values it cannot hold exactly: per 32
 * values of a row d = max|x| / 127, each value stored as d · round(x / d), so within d / 2 of
 * x; loading returns exactly that; a copied block (copy-on-write forks) keeps values and scales;
 * an odd K/V width is refused. */
START_TEST(test_q8_pool) {
    backend *be = NULL;
    ck_assert_int_eq(backend_cpu_create(2, 1024, &be), REASON_OK);
    const int32_t kv_dim = 192, bs = 16, n = 40;
    kv_pool pool = {.n_layer = 2, .kv_dim = kv_dim, .block_size = bs, .n_blocks = 6,
                    .type = REASON_KV_Q8};
    ck_assert_int_eq(be->ops->kv_alloc(be, &pool), REASON_OK);
    ck_assert_uint_eq(pool.slot_bytes, (size_t)kv_dim + kv_dim / 32 * 4);
    float *k = malloc(sizeof(float) * n * kv_dim), *v = malloc(sizeof(float) * n * kv_dim);
    float row[192];
    int32_t slots[40];
    for (int32_t i = 0; i < n * kv_dim; i++) {
        k[i] = rnd(-3.0f, 3.0f) * (i % 7 == 0 ? 10.0f : 1.0f);
        v[i] = i % 97 == 0 ? 0.0f : rnd(-1e-3f, 1e-3f);
    }
    for (int32_t t = 0; t < 32; t++) v[3 * kv_dim + t] = 0.0f; /* an all-zero block: scale 0 */
    for (int32_t t = 0; t < n; t++) slots[t] = t;
    be->ops->kv_store(be, &pool, 1, k, v, slots, n);
    be->ops->kv_copy_block(be, &pool, 1, 5); /* positions 16..31 into block 5 */
    for (int32_t t = 0; t < n; t++)
        for (int32_t which = 0; which < 2; which++) {
            const float *x = (which ? v : k) + (size_t)t * kv_dim;
            cpu_kv_load_row(&pool, which, cpu_kv_at(&pool, which, 1, t, 0), row, kv_dim);
            float copy[192];
            if (t >= bs && t < 2 * bs) {
                cpu_kv_load_row(&pool, which, cpu_kv_at(&pool, which, 1, 5 * bs + t - bs, 0), copy,
                                kv_dim);
                ck_assert_mem_eq(copy, row, sizeof row);
            }
            for (int32_t b = 0; b < kv_dim / 32; b++) {
                double amax = 0.0;
                for (int32_t j = 0; j < 32; j++) amax = fmax(amax, fabs(x[32 * b + j]));
                const double d = amax / 127.0;
                for (int32_t j = 0; j < 32; j++) {
                    const int32_t i = 32 * b + j;
                    ck_assert_msg(fabs(row[i] - x[i]) <= d / 2 * (1 + 1e-5) + 1e-30,
                                  "%s position %d value %d: %.9g stored as %.9g (scale %.3g)",
                                  which ? "V" : "K", t, i, x[i], row[i], d);
                    const double q = row[i] / d; /* an integer in [-127, 127] times the scale */
                    ck_assert_msg(d == 0.0 || (fabs(q - nearbyint(q)) < 1e-3 && fabs(q) <= 127.5),
                                  "value %d of position %d is not on the 8-bit grid: %.6f", i, t,
                                  q);
                }
            }
        }
    free(k), free(v);
    be->ops->kv_free(be, &pool);
    kv_pool odd = {.n_layer = 1, .kv_dim = 80, .block_size = bs, .n_blocks = 2,
                   .type = REASON_KV_Q8};
    ck_assert_int_eq(be->ops->kv_alloc(be, &odd), REASON_ERR_UNSUPPORTED);
    ck_assert_ptr_null(odd.k);
    be->ops->destroy(be);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cpu_attention");
    TCase *tc = tcase_create("cpu");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_prompts_at_depth_zero);
    tcase_add_test(tc, test_prompts_at_depth);
    tcase_add_test(tc, test_several_sequences);
    tcase_add_test(tc, test_windows_and_sinks);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_shared_prefix);
    tcase_add_test(tc, test_q8_pool);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
