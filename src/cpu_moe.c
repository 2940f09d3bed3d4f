/* cpu_moe.c — mixture of experts on the CPU: routing (top-k of the router's softmax) and the
 * experts' feed-forward.
 *
 * The (token, slot) pairs of a batch are sorted by expert (a counting sort); each expert that
 * has tokens then runs as a small dense feed-forward over just its tokens, gathered into one
 * block: gate and up as one matmul_group, the activation, down, and a weighted scatter-add into
 * the output. So a decode step reads only the selected experts' weights (the point of MoE on a
 * memory-bound machine), and a prompt reads each used expert once for all of its tokens (the
 * sgemm path of cpu_matmul.c). */
#include "cpu_moe.h"

#include "backend_cpu.h"
#include "cpu_gate.h"

#include <math.h>
#include <string.h>

void cpu_moe_route(backend *be, const float *logits, const float *shared, int32_t n_tok,
                   int32_t n_expert, int32_t n_used, int32_t norm, int32_t *ids, float *weights) {
    (void)be;
    const int32_t n_slot = n_used + (shared != NULL);
    for (int32_t t = 0; t < n_tok; t++) {
        const float *l = logits + (size_t)t * n_expert;
        int32_t *id = ids + (size_t)t * n_slot;
        float *w = weights + (size_t)t * n_slot;
        float mx = l[0];
        for (int32_t e = 1; e < n_expert; e++) mx = l[e] > mx ? l[e] : mx;
        double total = 0.0;
        for (int32_t e = 0; e < n_expert; e++) total += exp((double)l[e] - mx);
        /* selection in descending order: the next pick is the best expert that ranks after the
         * previous pick (lower logit, or the same logit and a higher id) */
        double picked = 0.0;
        for (int32_t j = 0; j < n_used; j++) {
            int32_t best = -1;
            for (int32_t e = 0; e < n_expert; e++) {
                if (j > 0) {
                    const float prev = l[id[j - 1]];
                    if (l[e] > prev || (l[e] == prev && e <= id[j - 1])) continue;
                }
                if (best < 0 || l[e] > l[best]) best = e;
            }
            id[j] = best;
            const double p = exp((double)l[best] - mx) / total;
            w[j] = (float)p;
            picked += p;
        }
        if (norm)
            for (int32_t j = 0; j < n_used; j++) w[j] = (float)(w[j] / picked);
        if (shared) {
            id[n_used] = n_expert;
            w[n_used] = 1.0f / (1.0f + expf(-shared[t]));
        }
    }
}


/* g (n) = act(g, u) in place. */
static void activate(const moe_params *p, float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        switch (p->act) {
        case EXPERT_SWIGLU_CLAMPED: {
            const float gc = g[i] < p->limit ? g[i] : p->limit;
            const float uc = u[i] < -p->limit ? -p->limit : u[i] > p->limit ? p->limit : u[i];
            g[i] = gc / (1.0f + expf(-p->alpha * gc)) * (uc + 1.0f);
            break;
        }
        case EXPERT_GEGLU:
            g[i] = gelu_tanh(g[i]) * u[i];
            break;
        default:
            g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        }
    }
}

void cpu_moe(backend *be, const moe_params *p, const float *x, const int32_t *ids,
             const float *weights, float *out, int32_t n_tok, void *work) {
    const int32_t n_slot = p->n_slot, n_pairs = n_tok * n_slot;
    int32_t n_ids = 0, rows_max = 0;
    for (int32_t i = 0; i < n_pairs; i++) n_ids = RS_MAX(n_ids, ids[i] + 1);
    for (int32_t i = 0; i < n_pairs; i++) rows_max = RS_MAX(rows_max, (int32_t)p->gate[ids[i]].ne[1]);
    const int64_t n_embd = p->gate[ids[0]].ne[0];
    float *xe = work, *g = xe + (size_t)n_tok * n_embd, *u = g + (size_t)n_tok * rows_max,
          *ye = u + (size_t)n_tok * rows_max;
    int32_t *order = (int32_t *)(ye + (size_t)n_tok * n_embd), *start = order + n_pairs;

    /* counting sort of the pairs by expert: start[e] .. start[e + 1] in order */
    memset(start, 0, ((size_t)n_ids + 1) * sizeof *start);
    for (int32_t i = 0; i < n_pairs; i++) start[ids[i] + 1]++;
    for (int32_t e = 0; e < n_ids; e++) start[e + 1] += start[e];
    for (int32_t i = 0; i < n_pairs; i++) order[start[ids[i]]++] = i;
    for (int32_t e = n_ids; e > 0; e--) start[e] = start[e - 1];
    start[0] = 0;

    memset(out, 0, (size_t)n_tok * n_embd * sizeof *out);
    for (int32_t e = 0; e < n_ids; e++) {
        const int32_t n = start[e + 1] - start[e];
        if (n == 0) continue;
        const int32_t *pairs = order + start[e];
        for (int32_t i = 0; i < n; i++)
            memcpy(xe + (size_t)i * n_embd, x + (size_t)(pairs[i] / n_slot) * n_embd,
                   (size_t)n_embd * sizeof *xe);
        const int64_t rows = p->gate[e].ne[1];
        const bool routed = e < p->n_expert; /* biases belong to the routed experts */
        const matmul_item gate_up[] = {
            {&p->gate[e], routed && p->gate_bias ? p->gate_bias + (size_t)e * rows : NULL, g},
            {&p->up[e], routed && p->up_bias ? p->up_bias + (size_t)e * rows : NULL, u}};
        cpu_matmul_group(be, gate_up, 2, xe, n);
        activate(p, g, u, (int64_t)n * rows);
        cpu_matmul(be, &p->down[e],
                   routed && p->down_bias ? p->down_bias + (size_t)e * n_embd : NULL, g, ye, n);
        const float es = routed && p->expert_scale ? p->expert_scale[e] : 1.0f;
        for (int32_t i = 0; i < n; i++) {
            const float w = weights[pairs[i]] * es;
            float *o = out + (size_t)(pairs[i] / n_slot) * n_embd;
            const float *y = ye + (size_t)i * n_embd;
            for (int64_t c = 0; c < n_embd; c++) o[c] += w * y[c];
        }
    }
}
