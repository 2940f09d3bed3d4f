/* sampler.c — from logits to a token: penalties, temperature, top-k, top-p, min-p in a chosen
 * order, a seeded draw, and log-probabilities under the model's unmodified distribution.
 *
 * Candidates. The stages narrow a candidate list (logit, token id). It starts as the caller's
 * logits themselves (read in place, ids implicit: candidate i is token i) and moves into one of two
 * scratch pairs only when a stage has to change or drop something, so the default chain reads the
 * vocabulary a few times and writes only the top-k survivors. Temperature is applied lazily as a
 * divisor (`temp`): effective logits are logit / temp, exactly the float operation HF performs.
 *
 * Order. The default is HF transformers' order — penalties, temperature, top-k, top-p, min-p — so
 * the recommended settings published for Qwen3, DeepSeek-R1 and others (written for HF and vLLM,
 * which both scale by temperature before nucleus filtering) mean here what they mean there.
 *
 * Ties. Candidates are totally ordered by (effective logit descending, token id ascending); top-k,
 * top-p and greedy break ties towards the lower id, so results never depend on the algorithm.
 *
 * Cost per token (n = n_vocab): one pass for the NaN check and the maximum, one pass of exp for
 * the log-normaliser, one selection pass for top-k (a bounded heap: about n compares when k << n),
 * then work proportional to the survivors; top-p on the full vocabulary adds one or two passes
 * (weight buckets, see stage_top_p). Measured with tests/test_sampler.c (test_cost) at n 151936 on
 * the 2-core AMD EPYC dev machine, CPU time: default params 156 us, greedy 147 us, top-p 0.9 alone
 * 620 us. Nothing is allocated after reason_sampler_create.
 *
 * Exp. Weights use a polynomial exp (relative error 1.2e-7) with an SSE2 path and a scalar path
 * that perform the same IEEE operations in the same order, so a seed gives the same tokens on every
 * platform: contraction into FMAs is off (GCC's default in C11 mode; clang is told below).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define STAGE_COUNT 5
#define PENALTY_LAST_N_MAX (1 << 24)
#define COUNT_MARK 0x80000000u

struct reason_sampler {
    reason_sampler_params p;
    int32_t n_vocab;
    int32_t order[STAGE_COUNT];
    int32_t n_order;

    /* Two scratch candidate lists; a stage reads one (or the caller's logits) and writes the
     * other. The idle one also holds the draw's weights. */
    float *lg[2];    /* (n_vocab) */
    int32_t *id[2];  /* (n_vocab) */

    /* Penalty window. count[t] = occurrences of t in the window (bit 31 is a transient mark).
     * penalty_last_n > 0: ring holds the window, oldest at ring_head once full.
     * penalty_last_n == -1: distinct lists each token seen, in first-seen order. */
    uint32_t *count;     /* (n_vocab) */
    reason_token *ring;  /* (penalty_last_n) or NULL */
    int32_t ring_len;
    int32_t ring_head;
    reason_token *distinct; /* (n_vocab) or NULL */
    int32_t n_distinct;

    double *wmass;    /* (WKEY_COUNT) top-p: weight in each bucket */
    uint32_t *wcount; /* (WKEY_COUNT) top-p: candidates in each bucket */

    uint64_t rng[4];      /* xoshiro256** state */
    uint64_t rng_init[4]; /* the state right after seeding, for reset */
};

typedef struct cand {
    const float *logit; /* (n) */
    const int32_t *id;  /* (n) token ids; NULL: candidate i is token i */
    int32_t n;
    int32_t n_sorted;   /* the first n_sorted candidates are the best ones, best first */
    int32_t buf;        /* scratch pair holding logit/id, or -1 for the caller's logits */
    float temp;         /* effective logit = logit / temp */
    float raw_max;      /* the largest of the caller's logits (valid while buf is -1) */
} cand;

/* ---------------------------------------------------------------------------------------------- */
/* Random numbers: xoshiro256** seeded through splitmix64, so every platform draws the same.      */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) {
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* ---------------------------------------------------------------------------------------------- */
/* exp(v) for v <= 0: Cody-Waite reduction to r in [-ln2/2, ln2/2], a degree-6 polynomial, times  */
/* 2^k; relative error about 1.2e-7; 0 below -87, where float exp underflows.                     */

#define EXP_LOG2E 1.44269504f
#define EXP_ROUND 12582912.0f /* 1.5 * 2^23: adding and subtracting rounds to an integer */
#define EXP_LN2_HI 0.693145751953125f
#define EXP_LN2_LO 1.42860682030941723212e-6f
#define EXP_C5 1.381461276e-03f
#define EXP_C4 8.368710056e-03f
#define EXP_C3 4.166838899e-02f
#define EXP_C2 1.666652113e-01f
#define EXP_C1 4.999999404e-01f
#define EXP_MIN (-87.0f)

static inline float exp_neg(float v) {
    float c = v < EXP_MIN ? EXP_MIN : v;
    float k = (c * EXP_LOG2E + EXP_ROUND) - EXP_ROUND;
    float r = c - k * EXP_LN2_HI;
    r = r - k * EXP_LN2_LO;
    float h = EXP_C5;
    h = h * r + EXP_C4;
    h = h * r + EXP_C3;
    h = h * r + EXP_C2;
    h = h * r + EXP_C1;
    float e = 1.0f + r + (r * r) * h;
    uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return v < EXP_MIN ? 0.0f : e * scale;
}

#if defined(__SSE2__)
static inline __m128 exp_neg4(__m128 v) {
    const __m128 lo = _mm_set1_ps(EXP_MIN);
    __m128 keep = _mm_cmpge_ps(v, lo);
    __m128 c = _mm_max_ps(v, lo);
    __m128 k = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(c, _mm_set1_ps(EXP_LOG2E)), _mm_set1_ps(EXP_ROUND)),
                          _mm_set1_ps(EXP_ROUND));
    __m128 r = _mm_sub_ps(c, _mm_mul_ps(k, _mm_set1_ps(EXP_LN2_HI)));
    r = _mm_sub_ps(r, _mm_mul_ps(k, _mm_set1_ps(EXP_LN2_LO)));
    __m128 h = _mm_set1_ps(EXP_C5);
    h = _mm_add_ps(_mm_mul_ps(h, r), _mm_set1_ps(EXP_C4));
    h = _mm_add_ps(_mm_mul_ps(h, r), _mm_set1_ps(EXP_C3));
    h = _mm_add_ps(_mm_mul_ps(h, r), _mm_set1_ps(EXP_C2));
    h = _mm_add_ps(_mm_mul_ps(h, r), _mm_set1_ps(EXP_C1));
    __m128 e = _mm_add_ps(_mm_add_ps(_mm_set1_ps(1.0f), r), _mm_mul_ps(_mm_mul_ps(r, r), h));
    __m128i bits = _mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(k), _mm_set1_epi32(127)), 23);
    return _mm_and_ps(_mm_mul_ps(e, _mm_castsi128_ps(bits)), keep);
}
#endif

/* Sum over i of exp(x[i] / div - sub), each term also stored in w[i] when w is not NULL. Terms
 * are added in four float lanes within blocks of 256, the blocks in double. */
static double exp_terms(const float *x, int32_t n, float div, float sub, float *w) {
    double total = 0.0;
    int32_t i = 0;
#if defined(__SSE2__)
    const __m128 vdiv = _mm_set1_ps(div), vsub = _mm_set1_ps(sub);
    const bool unit = div == 1.0f; /* x / 1 == x: skip the division */
    while (i + 4 <= n) {
        int32_t end = RS_MIN(n, i + 256);
        __m128 acc = _mm_setzero_ps();
        for (; i + 4 <= end; i += 4) {
            __m128 v = _mm_loadu_ps(x + i);
            if (!unit) v = _mm_div_ps(v, vdiv);
            __m128 t = exp_neg4(_mm_sub_ps(v, vsub));
            if (w) _mm_storeu_ps(w + i, t);
            acc = _mm_add_ps(acc, t);
        }
        float lanes[4];
        _mm_storeu_ps(lanes, acc);
        total += (double)lanes[0] + lanes[1] + lanes[2] + lanes[3];
    }
#else
    /* The same lanes and the same order of additions as the SSE2 path, so totals agree bitwise. */
    while (i + 4 <= n) {
        int32_t end = RS_MIN(n, i + 256);
        float lanes[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (; i + 4 <= end; i += 4) {
            for (int j = 0; j < 4; j++) {
                float t = exp_neg(x[i + j] / div - sub);
                if (w) w[i + j] = t;
                lanes[j] += t;
            }
        }
        total += (double)lanes[0] + lanes[1] + lanes[2] + lanes[3];
    }
#endif
    for (; i < n; i++) {
        float t = exp_neg(x[i] / div - sub);
        if (w) w[i] = t;
        total += t;
    }
    return total;
}

/* The maximum of x, or the index of the first NaN or +inf in *bad (else -1). */
static float scan_logits(const float *x, int32_t n, int32_t *bad) {
    float m = -INFINITY;
    int32_t i = 0;
    *bad = -1;
#if defined(__SSE2__)
    __m128 vm = _mm_set1_ps(-INFINITY), vbad = _mm_setzero_ps();
    const __m128 inf = _mm_set1_ps(INFINITY);
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_loadu_ps(x + i);
        vbad = _mm_or_ps(vbad, _mm_cmpnlt_ps(v, inf)); /* NaN or +inf */
        vm = _mm_max_ps(vm, v);
    }
    float lanes[4];
    _mm_storeu_ps(lanes, vm);
    for (int j = 0; j < 4; j++) m = lanes[j] > m ? lanes[j] : m;
    if (_mm_movemask_ps(vbad)) i = 0, m = -INFINITY; /* find the index below */
#endif
    for (; i < n; i++) {
        float v = x[i];
        if (!(v < INFINITY)) {
            *bad = i;
            return m;
        }
        if (v > m) m = v;
    }
    return m;
}

/* ---------------------------------------------------------------------------------------------- */
/* Selection: the best m of n candidates, best first, with a bounded min-heap (worst at the       */
/* root).                                                                                         */

static inline bool worse(float la, int32_t ia, float lb, int32_t ib) {
    return la < lb || (la == lb && ia > ib);
}

static void sift_down(float *hl, int32_t *hi, int32_t root, int32_t size) {
    float l = hl[root];
    int32_t t = hi[root];
    for (;;) {
        int32_t child = 2 * root + 1;
        if (child >= size) break;
        if (child + 1 < size && worse(hl[child + 1], hi[child + 1], hl[child], hi[child])) child++;
        if (!worse(hl[child], hi[child], l, t)) break;
        hl[root] = hl[child];
        hi[root] = hi[child];
        root = child;
    }
    hl[root] = l;
    hi[root] = t;
}

/* Turns a min-heap (worst at the root) of m entries into a best-first sorted array. */
static void heap_extract(float *hl, int32_t *hi, int32_t m) {
    for (int32_t end = m - 1; end > 0; end--) {
        float l = hl[0];
        int32_t t = hi[0];
        hl[0] = hl[end];
        hi[0] = hi[end];
        hl[end] = l;
        hi[end] = t;
        sift_down(hl, hi, 0, end);
    }
}

/* Sorts m candidates in place, best first. */
static void sort_best(float *l, int32_t *id, int32_t m) {
    for (int32_t i = m / 2 - 1; i >= 0; i--) sift_down(l, id, i, m);
    heap_extract(l, id, m);
}

/* Writes the best m (1 <= m <= n) of (lg, id) to (ol, oi), best first. About n compares when
 * m << n; n log m in the worst case. */
static void select_best(const float *lg, const int32_t *id, int32_t n, int32_t m, float *ol,
                        int32_t *oi) {
    for (int32_t i = 0; i < m; i++) {
        ol[i] = lg[i];
        oi[i] = id ? id[i] : i;
    }
    for (int32_t i = m / 2 - 1; i >= 0; i--) sift_down(ol, oi, i, m);
    float rl = ol[0];
    int32_t ri = oi[0];
    int32_t i = m;
    for (;;) {
#if defined(__SSE2__)
        /* Most candidates lose to the root: skip four at a time while none reaches it. */
        __m128 root = _mm_set1_ps(rl);
        while (i + 4 <= n && !_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(lg + i), root))) i += 4;
#endif
        if (i >= n) break;
        float v = lg[i];
        int32_t t = id ? id[i] : i;
        i++;
        if (v < rl || !worse(rl, ri, v, t)) continue;
        ol[0] = v;
        oi[0] = t;
        sift_down(ol, oi, 0, m);
        rl = ol[0];
        ri = oi[0];
    }
    heap_extract(ol, oi, m);
}

/* ---------------------------------------------------------------------------------------------- */
/* Stages                                                                                         */

static int32_t spare_buf(const cand *c) { return c->buf == 0 ? 1 : 0; }

static inline int32_t cand_token(const cand *c, int32_t i) { return c->id ? c->id[i] : i; }

/* Makes scratch pair b, holding n candidates, the current list. */
static void adopt(reason_sampler *s, cand *c, int32_t b, int32_t n, int32_t n_sorted) {
    c->logit = s->lg[b];
    c->id = s->id[b];
    c->buf = b;
    c->n = n;
    c->n_sorted = n_sorted;
}

/* Index of the best candidate (highest logit, then lowest id). */
static int32_t cand_best(const cand *c) {
    if (c->n_sorted > 0) return 0;
    if (c->buf < 0) {
        for (int32_t i = 0; i < c->n; i++)
            if (c->logit[i] == c->raw_max) return i;
    }
    int32_t best = 0;
    for (int32_t i = 1; i < c->n; i++)
        if (worse(c->logit[best], cand_token(c, best), c->logit[i], cand_token(c, i))) best = i;
    return best;
}

static bool penalties_active(const reason_sampler *s) {
    return s->p.repeat_penalty != 1.0f || s->p.presence_penalty != 0.0f ||
           s->p.frequency_penalty != 0.0f;
}

static inline float penalize(const reason_sampler *s, float logit, float temp, uint32_t cnt) {
    float e = logit / temp;
    float r = s->p.repeat_penalty;
    e = e < 0.0f ? e * r : e / r; /* CTRL / HF: push every seen token towards less likely */
    e -= (float)cnt * s->p.frequency_penalty; /* OpenAI: count * frequency + presence */
    e -= s->p.presence_penalty;
    return e * temp;
}

static void stage_penalties(reason_sampler *s, cand *c) {
    if (!penalties_active(s)) return;
    if (s->ring_len == 0 && s->n_distinct == 0) return;
    if (c->buf < 0) {
        memcpy(s->lg[0], c->logit, (size_t)c->n * sizeof(float));
        c->logit = s->lg[0];
        c->buf = 0;
    }
    float *lg = s->lg[c->buf];
    if (!c->id) {
        /* Full vocabulary in id order: visit each distinct token of the window once. */
        if (s->ring) {
            for (int32_t j = 0; j < s->ring_len; j++) {
                reason_token t = s->ring[j];
                if (s->count[t] & COUNT_MARK) continue;
                lg[t] = penalize(s, lg[t], c->temp, s->count[t]);
                s->count[t] |= COUNT_MARK;
            }
            for (int32_t j = 0; j < s->ring_len; j++) s->count[s->ring[j]] &= ~COUNT_MARK;
        } else {
            for (int32_t j = 0; j < s->n_distinct; j++) {
                reason_token t = s->distinct[j];
                lg[t] = penalize(s, lg[t], c->temp, s->count[t]);
            }
        }
    } else {
        for (int32_t i = 0; i < c->n; i++) {
            uint32_t cnt = s->count[c->id[i]];
            if (cnt) lg[i] = penalize(s, lg[i], c->temp, cnt);
        }
    }
    c->n_sorted = 0;
}

static void stage_temperature(const reason_sampler *s, cand *c) {
    if (s->p.temperature > 0.0f) c->temp *= s->p.temperature;
}

static void stage_top_k(reason_sampler *s, cand *c) {
    int32_t k = s->p.top_k;
    if (k <= 0 || k >= c->n) return;
    if (c->n_sorted >= k) {
        c->n = c->n_sorted = k;
        return;
    }
    int32_t b = spare_buf(c);
    select_best(c->logit, c->id, c->n, k, s->lg[b], s->id[b]);
    adopt(s, c, b, k, k);
}

/* Weight buckets for top-p: the bits of a weight w in (0, 1] shifted right by 18 keep the
 * exponent and 5 mantissa bits, so keys grow with w and each spans a factor 2^(1/32). */
#define WKEY_SHIFT 18
#define WKEY_COUNT ((0x3f800000u >> WKEY_SHIFT) + 1) /* key of 1.0f, plus one */
#define TOP_P_SMALL 64       /* lists this short are simply sorted */
#define TOP_P_HEAP_MAX 1024  /* nuclei up to this size are selected with the heap */

static inline uint32_t wkey(float w) {
    uint32_t bits;
    memcpy(&bits, &w, sizeof bits);
    uint32_t k = bits >> WKEY_SHIFT;
    return k < WKEY_COUNT ? k : WKEY_COUNT - 1;
}

/* Walks a best-first list, keeping candidates until their weight reaches target; at least one,
 * and none of zero weight. */
static int32_t nucleus_walk(const float *l, int32_t m, float temp, float emax, double acc,
                            double target) {
    int32_t keep = 0;
    for (int32_t i = 0; i < m; i++) {
        float w = exp_neg(l[i] / temp - emax);
        if (w > 0.0f) keep = i + 1;
        acc += w;
        if (acc >= target) break;
    }
    return keep > 0 ? keep : 1;
}

/* Keeps the smallest set of best candidates whose probability reaches top_p (at least one).
 * Small or sorted lists are walked best first. Large ones (the full vocabulary) are bucketed by
 * weight in one pass, which gives the total, the bucket where the cumulative mass from the top
 * crosses the target, and how many candidates lie at or above it: few (a peaked distribution)
 * are selected with the heap; many are gathered in a second pass, only the boundary bucket being
 * sorted. */
static void stage_top_p(reason_sampler *s, cand *c) {
    float p = s->p.top_p;
    if (p >= 1.0f || c->n <= 1) return;
    int32_t best = cand_best(c);
    float emax = c->logit[best] / c->temp;
    int32_t b = spare_buf(c);
    if (c->n_sorted == c->n || c->n <= TOP_P_SMALL) {
        double target = (double)p * exp_terms(c->logit, c->n, c->temp, emax, NULL);
        if (c->n_sorted < c->n) {
            select_best(c->logit, c->id, c->n, c->n, s->lg[b], s->id[b]);
            adopt(s, c, b, c->n, c->n);
        }
        c->n = c->n_sorted = nucleus_walk(c->logit, c->n, c->temp, emax, 0.0, target);
        return;
    }

    double *mass = s->wmass;
    uint32_t *count = s->wcount;
    memset(mass, 0, WKEY_COUNT * sizeof(double));
    memset(count, 0, WKEY_COUNT * sizeof(uint32_t));
    float w[256];
    double z = 0.0;
    for (int32_t i0 = 0; i0 < c->n; i0 += 256) {
        int32_t len = RS_MIN(256, c->n - i0);
        z += exp_terms(c->logit + i0, len, c->temp, emax, w);
        for (int32_t j = 0; j < len; j++) {
            uint32_t k = wkey(w[j]);
            mass[k] += w[j];
            count[k]++;
        }
    }
    double target = (double)p * z, above = 0.0;
    uint32_t kb = 1;
    int64_t n_above = 0;
    for (uint32_t k = WKEY_COUNT - 1; k >= 1; k--) {
        if (count[k] == 0) continue;
        kb = k;
        if (above + mass[k] >= target) break;
        above += mass[k];
        n_above += count[k];
    }
    int32_t m = (int32_t)(n_above + count[kb]); /* the candidates at or above the boundary */
    if (m <= c->n_sorted) {
        c->n = c->n_sorted = nucleus_walk(c->logit, m, c->temp, emax, 0.0, target);
        return;
    }
    if (m <= TOP_P_HEAP_MAX) {
        select_best(c->logit, c->id, c->n, m, s->lg[b], s->id[b]);
        int32_t keep = nucleus_walk(s->lg[b], m, c->temp, emax, 0.0, target);
        adopt(s, c, b, keep, keep);
        return;
    }
    /* Those above the boundary bucket go to the front, its own to the back. */
    float *ol = s->lg[b];
    int32_t *oi = s->id[b];
    int32_t front = 0, back = c->n;
    for (int32_t i0 = 0; i0 < c->n; i0 += 256) {
        int32_t len = RS_MIN(256, c->n - i0);
        exp_terms(c->logit + i0, len, c->temp, emax, w);
        for (int32_t j = 0; j < len; j++) {
            uint32_t k = wkey(w[j]);
            if (k < kb) continue;
            int32_t at = k > kb ? front++ : --back;
            ol[at] = c->logit[i0 + j];
            oi[at] = cand_token(c, i0 + j);
        }
    }
    int32_t t = c->n - back;
    memmove(ol + front, ol + back, (size_t)t * sizeof(float));
    memmove(oi + front, oi + back, (size_t)t * sizeof(int32_t));
    sort_best(ol + front, oi + front, t);
    int32_t keep = nucleus_walk(ol + front, t, c->temp, emax, above, target);
    adopt(s, c, b, front + keep, front == 0 ? keep : 0);
}

static void stage_min_p(reason_sampler *s, cand *c) {
    float min_p = s->p.min_p;
    if (min_p <= 0.0f || c->n <= 1) return;
    int32_t best = cand_best(c);
    float emax = c->logit[best] / c->temp;
    float floor_ = logf(min_p); /* p_i >= min_p * p_max  <=>  e_i - e_max >= log(min_p) */
    int32_t b = spare_buf(c);
    float *ol = s->lg[b];
    int32_t *oi = s->id[b];
    int32_t n = 0, n_sorted = 0;
    for (int32_t i = 0; i < c->n; i++) {
        if (c->logit[i] / c->temp - emax >= floor_) {
            ol[n] = c->logit[i];
            oi[n] = cand_token(c, i);
            n++;
            if (i < c->n_sorted) n_sorted++;
        }
    }
    if (n == 0) { /* only when effective logits overflowed (absurdly small temperature) */
        ol[0] = c->logit[best];
        oi[0] = cand_token(c, best);
        n = n_sorted = 1;
    }
    adopt(s, c, b, n, n_sorted);
}

static bool is_truncation(int32_t stage) {
    return stage == REASON_STAGE_TOP_K || stage == REASON_STAGE_TOP_P ||
           stage == REASON_STAGE_MIN_P;
}

/* Runs the configured stages on logits (already checked). */
static void run_stages(reason_sampler *s, const float *logits, float raw_max, cand *c) {
    *c = (cand){.logit = logits, .id = NULL, .n = s->n_vocab, .n_sorted = 0, .buf = -1,
                .temp = 1.0f, .raw_max = raw_max};
    bool greedy = !(s->p.temperature > 0.0f);
    for (int32_t j = 0; j < s->n_order; j++) {
        int32_t stage = s->order[j];
        if (greedy && is_truncation(stage)) {
            /* Truncation never drops the best candidate, so greedy may skip it unless penalties
             * still follow and could promote a candidate it would have dropped. */
            bool penalties_follow = false;
            for (int32_t k = j + 1; k < s->n_order; k++)
                if (s->order[k] == REASON_STAGE_PENALTIES) penalties_follow = true;
            if (!penalties_follow || !penalties_active(s)) continue;
        }
        switch (stage) {
        case REASON_STAGE_PENALTIES: stage_penalties(s, c); break;
        case REASON_STAGE_TEMPERATURE: stage_temperature(s, c); break;
        case REASON_STAGE_TOP_K: stage_top_k(s, c); break;
        case REASON_STAGE_TOP_P: stage_top_p(s, c); break;
        case REASON_STAGE_MIN_P: stage_min_p(s, c); break;
        default: break; /* rejected at creation */
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Public interface                                                                               */

void reason_sampler_params_default(reason_sampler_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->temperature = 0.6f;
    params->top_k = 20;
    params->top_p = 0.95f;
    params->min_p = 0.0f;
    params->repeat_penalty = 1.0f;
    params->presence_penalty = 0.0f;
    params->frequency_penalty = 0.0f;
    params->penalty_last_n = 64;
    params->seed = 0;
    params->n_logprobs = 0;
    params->n_order = 0;
}

static const int32_t default_order[STAGE_COUNT] = {
    REASON_STAGE_PENALTIES, REASON_STAGE_TEMPERATURE, REASON_STAGE_TOP_K, REASON_STAGE_TOP_P,
    REASON_STAGE_MIN_P,
};

static reason_status check_params(const reason_sampler_params *p) {
    const char *fn = "reason_sampler_create";
    if (!isfinite(p->temperature))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: temperature must be finite (<= 0: greedy)",
                        fn);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: top_p = %g is outside (0, 1] (1: off)", fn,
                        (double)p->top_p);
    if (!(p->min_p <= 1.0f) || isnan(p->min_p))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: min_p = %g must be <= 1 (<= 0: off)", fn,
                        (double)p->min_p);
    if (!(isfinite(p->repeat_penalty) && p->repeat_penalty > 0.0f))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: repeat_penalty = %g must be > 0 (1: off)", fn,
                        (double)p->repeat_penalty);
    if (!isfinite(p->presence_penalty))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: presence_penalty must be finite", fn);
    if (!isfinite(p->frequency_penalty))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: frequency_penalty must be finite", fn);
    if (p->penalty_last_n < -1 || p->penalty_last_n > PENALTY_LAST_N_MAX)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "%s: penalty_last_n = %d must be -1 (all) or in [0, %d]", fn,
                        (int)p->penalty_last_n, PENALTY_LAST_N_MAX);
    if (p->n_logprobs < 0 || p->n_logprobs > REASON_MAX_LOGPROBS)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: n_logprobs = %d is outside [0, %d]", fn,
                        (int)p->n_logprobs, REASON_MAX_LOGPROBS);
    if (p->n_order < 0 || p->n_order > STAGE_COUNT)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: n_order = %d is outside [0, %d]", fn,
                        (int)p->n_order, STAGE_COUNT);
    for (int32_t j = 0; j < p->n_order; j++) {
        int32_t stage = p->order[j];
        if (stage < 0 || stage >= STAGE_COUNT)
            return rs_error(REASON_ERR_INVALID_ARG,
                            "%s: order[%d] = %d is not a reason_sampler_stage", fn, (int)j,
                            (int)stage);
        for (int32_t k = 0; k < j; k++)
            if (p->order[k] == stage)
                return rs_error(REASON_ERR_INVALID_ARG,
                                "%s: order[%d] = %d repeats order[%d]", fn, (int)j, (int)stage,
                                (int)k);
    }
    return REASON_OK;
}

reason_status reason_sampler_create(const reason_sampler_params *params, int32_t n_vocab,
                                    reason_sampler **out) {
    if (!out) return rs_error(REASON_ERR_INVALID_ARG, "reason_sampler_create: out is NULL");
    *out = NULL;
    if (n_vocab <= 0)
        return rs_error(REASON_ERR_INVALID_ARG, "reason_sampler_create: n_vocab = %d must be > 0",
                        (int)n_vocab);
    reason_sampler_params defaults;
    if (!params) {
        reason_sampler_params_default(&defaults);
        params = &defaults;
    }
    RS_TRY(check_params(params));

    reason_sampler *s = rs_calloc(1, sizeof *s, "sampler");
    if (!s) return REASON_ERR_NOMEM;
    s->p = *params;
    s->n_vocab = n_vocab;
    if (params->n_order > 0) {
        s->n_order = params->n_order;
        memcpy(s->order, params->order, (size_t)params->n_order * sizeof(int32_t));
    } else {
        s->n_order = STAGE_COUNT;
        memcpy(s->order, default_order, sizeof default_order);
    }
    size_t nv = (size_t)n_vocab;
    for (int b = 0; b < 2; b++) {
        s->lg[b] = rs_malloc(nv * sizeof(float), "sampler candidate logits");
        s->id[b] = rs_malloc(nv * sizeof(int32_t), "sampler candidate ids");
        if (!s->lg[b] || !s->id[b]) goto nomem;
    }
    s->count = rs_calloc(nv, sizeof(uint32_t), "sampler penalty counts");
    s->wmass = rs_malloc(WKEY_COUNT * sizeof(double), "sampler top-p buckets");
    s->wcount = rs_malloc(WKEY_COUNT * sizeof(uint32_t), "sampler top-p buckets");
    if (!s->count || !s->wmass || !s->wcount) goto nomem;
    if (params->penalty_last_n > 0) {
        s->ring = rs_malloc((size_t)params->penalty_last_n * sizeof(reason_token),
                            "sampler penalty window");
        if (!s->ring) goto nomem;
    } else if (params->penalty_last_n < 0) {
        s->distinct = rs_malloc(nv * sizeof(reason_token), "sampler penalty history");
        if (!s->distinct) goto nomem;
    }

    uint64_t x = params->seed;
    for (int i = 0; i < 4; i++) s->rng_init[i] = splitmix64(&x);
    memcpy(s->rng, s->rng_init, sizeof s->rng);
    *out = s;
    return REASON_OK;

nomem:
    reason_sampler_free(s);
    return REASON_ERR_NOMEM;
}

void reason_sampler_free(reason_sampler *s) {
    if (!s) return;
    free(s->distinct);
    free(s->ring);
    free(s->wcount);
    free(s->wmass);
    free(s->count);
    for (int b = 1; b >= 0; b--) {
        free(s->id[b]);
        free(s->lg[b]);
    }
    free(s);
}

void reason_sampler_reset(reason_sampler *s) {
    if (!s) return;
    for (int32_t j = 0; j < s->ring_len; j++) s->count[s->ring[j]] = 0;
    for (int32_t j = 0; j < s->n_distinct; j++) s->count[s->distinct[j]] = 0;
    s->ring_len = s->ring_head = s->n_distinct = 0;
    memcpy(s->rng, s->rng_init, sizeof s->rng);
}

reason_status reason_sampler_accept(reason_sampler *s, reason_token token) {
    if (!s) return rs_error(REASON_ERR_INVALID_ARG, "reason_sampler_accept: sampler is NULL");
    if (token < 0 || token >= s->n_vocab)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "reason_sampler_accept: token %d is outside the vocabulary [0, %d)",
                        (int)token, (int)s->n_vocab);
    int32_t last_n = s->p.penalty_last_n;
    if (last_n > 0) {
        if (s->ring_len == last_n) {
            s->count[s->ring[s->ring_head]]--;
            s->ring[s->ring_head] = token;
            s->ring_head = (s->ring_head + 1) % last_n;
        } else {
            s->ring[s->ring_len++] = token;
        }
        s->count[token]++;
    } else if (last_n < 0) {
        if (s->count[token] == 0) s->distinct[s->n_distinct++] = token;
        if (s->count[token] < COUNT_MARK - 1) s->count[token]++;
    }
    return REASON_OK;
}

static reason_status check_logits(const reason_sampler *s, const float *logits, float *out_max) {
    int32_t bad;
    float m = scan_logits(logits, s->n_vocab, &bad);
    if (bad >= 0)
        return rs_error(REASON_ERR_INVALID_ARG, "reason_sampler_sample: logits[%d] is %s",
                        (int)bad, isnan(logits[bad]) ? "NaN" : "+inf");
    if (m == -INFINITY)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "reason_sampler_sample: all %d logits are -inf", (int)s->n_vocab);
    *out_max = m;
    return REASON_OK;
}

reason_status reason_sampler_sample(reason_sampler *s, const float *logits,
                                    reason_token_choice *out) {
    if (!s || !logits || !out)
        return rs_error(REASON_ERR_INVALID_ARG, "reason_sampler_sample: %s is NULL",
                        !s ? "sampler" : !logits ? "logits" : "out");
    float raw_max;
    RS_TRY(check_logits(s, logits, &raw_max));

    cand c;
    run_stages(s, logits, raw_max, &c);

    int32_t pick;
    if (!(s->p.temperature > 0.0f) || c.n == 1) {
        pick = cand_best(&c);
    } else {
        /* The idle scratch pair holds the weights; the candidates stay where they are. */
        float *w = s->lg[spare_buf(&c)];
        float emax = c.logit[cand_best(&c)] / c.temp;
        double z = exp_terms(c.logit, c.n, c.temp, emax, w);
        double u = rng_uniform(s->rng) * z, acc = 0.0;
        /* The walk adds in another order than exp_terms: if rounding leaves u beyond the walk's
         * total, the last candidate of positive weight is taken. */
        pick = -1;
        for (int32_t i = 0; i < c.n; i++) {
            if (w[i] <= 0.0f) continue;
            acc += w[i];
            pick = i;
            if (acc > u) break;
        }
        if (pick < 0) pick = cand_best(&c);
    }

    /* Log-probabilities under the raw logits: x_t - max - log(sum exp(x - max)). */
    double log_z = log(exp_terms(logits, s->n_vocab, 1.0f, raw_max, NULL));
    reason_token tok = cand_token(&c, pick);
    memset(out, 0, sizeof *out);
    out->token = tok;
    out->logprob = (float)((double)(logits[tok] - raw_max) - log_z);
    if (s->p.n_logprobs > 0) {
        int32_t m = RS_MIN(s->p.n_logprobs, s->n_vocab);
        int32_t b = spare_buf(&c);
        /* The spare pair is free again: the weights were consumed above. */
        select_best(logits, NULL, s->n_vocab, m, s->lg[b], s->id[b]);
        for (int32_t i = 0; i < m; i++) {
            out->top_tokens[i] = s->id[b][i];
            out->top_logprobs[i] = (float)((double)(s->lg[b][i] - raw_max) - log_z);
        }
        out->n_top = m;
    }
    return REASON_OK;
}

/* For tests: the effective logits (logit / temperature) of the candidates that survive the
 * configured stages, -inf for the others. Does not draw or touch the random state. */
RS_INTERNAL reason_status sampler_debug_transform(reason_sampler *s, const float *logits,
                                                  float *out);
reason_status sampler_debug_transform(reason_sampler *s, const float *logits, float *out) {
    if (!s || !logits || !out)
        return rs_error(REASON_ERR_INVALID_ARG, "sampler_debug_transform: NULL argument");
    float raw_max;
    RS_TRY(check_logits(s, logits, &raw_max));
    cand c;
    run_stages(s, logits, raw_max, &c);
    if (c.buf < 0 && c.n == s->n_vocab) {
        for (int32_t i = 0; i < s->n_vocab; i++) out[i] = logits[i] / c.temp;
        return REASON_OK;
    }
    for (int32_t i = 0; i < s->n_vocab; i++) out[i] = -INFINITY;
    for (int32_t i = 0; i < c.n; i++) out[cand_token(&c, i)] = c.logit[i] / c.temp;
    return REASON_OK;
}
