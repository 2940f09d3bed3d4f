/* vote.c — trace confidence (DeepConf), the vote tally with its early-stop rule, and the pruning
 * threshold. Answer extraction and normalisation are in answer.c. */
#include "vote.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------- */
/* Confidence */

/* Log-probabilities are clamped to [-100, 0] (NaN as -100) so that running sums stay finite. */
static double clamp_logprob(float x) {
    if (isnan(x) || x < -100.0f) return -100.0;
    return x > 0.0f ? 0.0 : (double)x;
}

float token_confidence(const reason_token_choice *choice) {
    if (!choice) return 0.0f;
    const int32_t k = RS_MIN(choice->n_top, REASON_MAX_LOGPROBS);
    if (k <= 0) return (float)-clamp_logprob(choice->logprob);
    double sum = 0.0;
    for (int32_t i = 0; i < k; i++) sum += clamp_logprob(choice->top_logprobs[i]);
    return (float)(-sum / k);
}

reason_status confidence_init(confidence_tracker *t, int32_t window) {
    RS_CHECK_ARG(t != NULL);
    memset(t, 0, sizeof *t);
    RS_CHECK_ARG(window >= 1);
    t->ring = rs_calloc((size_t)window, sizeof *t->ring, "confidence window");
    if (!t->ring) return REASON_ERR_NOMEM;
    t->window = window;
    t->lowest_group = INFINITY;
    return REASON_OK;
}

void confidence_add(confidence_tracker *t, float logprob, float token_conf) {
    if (!t || !t->ring) return;
    float c = token_conf;
    if (isnan(c)) c = 0.0f;
    c = c < 0.0f ? 0.0f : (c > 100.0f ? 100.0f : c);
    if (t->n == INT32_MAX) t->n = t->window + t->n % t->window; /* same slot, still >= window */
    const int32_t slot = t->n % t->window;
    if (t->n >= t->window) t->ring_sum -= t->ring[slot];
    t->ring[slot] = c;
    t->ring_sum += c;
    t->logprob_sum += clamp_logprob(logprob);
    t->n++;
    if (t->n < t->window) {
        t->lowest_group = (float)(t->ring_sum / t->n);
    } else {
        const float g = (float)(t->ring_sum / t->window);
        if (t->n == t->window || g < t->lowest_group) t->lowest_group = g;
    }
}

float confidence_mean_logprob(const confidence_tracker *t) {
    return t && t->n > 0 ? (float)(t->logprob_sum / t->n) : 0.0f;
}

float confidence_current_group(const confidence_tracker *t) {
    if (!t || t->n <= 0) return INFINITY;
    return (float)(t->ring_sum / RS_MIN(t->n, t->window));
}

float confidence_lowest_group(const confidence_tracker *t) {
    return t && t->n > 0 ? t->lowest_group : INFINITY;
}

void confidence_free(confidence_tracker *t) {
    if (!t) return;
    free(t->ring);
    memset(t, 0, sizeof *t);
}

#define VOTE_MIN_WEIGHT 1e-6

double vote_weight(int32_t vote_kind, const confidence_tracker *t) {
    switch (vote_kind) {
    case REASON_VOTE_MEAN_LOGPROB: return exp((double)confidence_mean_logprob(t));
    case REASON_VOTE_LOWEST_GROUP: {
        const double g = confidence_lowest_group(t);
        return isfinite(g) && g > VOTE_MIN_WEIGHT ? g : VOTE_MIN_WEIGHT;
    }
    default: return 1.0;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Tally */

typedef struct vote_entry {
    char *answer;
    int32_t count;
    int32_t first_seen; /* order of first vote */
    double weight;
} vote_entry;

struct vote_tally {
    vote_entry *entries; /* (n), kept in result order */
    int32_t n, cap;
    double total_weight;
};

reason_status vote_tally_create(vote_tally **out) {
    RS_CHECK_ARG(out != NULL);
    *out = rs_calloc(1, sizeof **out, "vote tally");
    return *out ? REASON_OK : REASON_ERR_NOMEM;
}

void vote_tally_free(vote_tally *tally) {
    if (!tally) return;
    for (int32_t i = 0; i < tally->n; i++) free(tally->entries[i].answer);
    free(tally->entries);
    free(tally);
}

/* a comes before b */
static bool entry_before(const vote_entry *a, const vote_entry *b) {
    if (a->weight != b->weight) return a->weight > b->weight;
    if (a->count != b->count) return a->count > b->count;
    return a->first_seen < b->first_seen;
}

reason_status vote_tally_add(vote_tally *tally, const char *answer, double weight) {
    RS_CHECK_ARG(tally != NULL);
    if (!(weight >= 0.0) || !isfinite(weight))
        return rs_error(REASON_ERR_INVALID_ARG, "vote weight %g is not a finite number >= 0",
                        weight);
    if (!answer || !answer[0]) return REASON_OK;
    int32_t i = 0;
    while (i < tally->n && strcmp(tally->entries[i].answer, answer) != 0) i++;
    if (i == tally->n) {
        if (tally->n == INT32_MAX) return rs_error(REASON_ERR_INVALID_ARG, "too many answers");
        if (tally->n == tally->cap) {
            int32_t cap = tally->cap > INT32_MAX / 2 ? INT32_MAX : tally->cap * 2;
            if (cap == 0) cap = 8;
            vote_entry *p = realloc(tally->entries, (size_t)cap * sizeof *p);
            if (!p) return rs_error(REASON_ERR_NOMEM, "out of memory growing the vote tally");
            tally->entries = p;
            tally->cap = cap;
        }
        char *copy = strdup(answer);
        if (!copy) return rs_error(REASON_ERR_NOMEM, "out of memory copying an answer");
        tally->entries[i] = (vote_entry){.answer = copy, .first_seen = tally->n};
        tally->n++;
    }
    vote_entry *e = &tally->entries[i];
    if (e->count < INT32_MAX) e->count++;
    e->weight += weight;
    tally->total_weight += weight;
    /* weights and counts only grow, so the entry can only move up */
    while (i > 0 && entry_before(&tally->entries[i], &tally->entries[i - 1])) {
        vote_entry tmp = tally->entries[i - 1];
        tally->entries[i - 1] = tally->entries[i];
        tally->entries[i] = tmp;
        i--;
    }
    return REASON_OK;
}

bool vote_tally_decided(const vote_tally *tally, int32_t n_remaining, double max_weight,
                        float share) {
    if (n_remaining <= 0) return true;
    if (!tally || tally->n == 0) return false;
    if (!(max_weight >= 0.0)) max_weight = 0.0;
    const double leader = tally->entries[0].weight;
    const double runner_up = tally->n > 1 ? tally->entries[1].weight : 0.0;
    const double still = (double)n_remaining * max_weight;
    if (leader > runner_up + still) return true;
    if (share > 0.0f && leader > 0.0 && leader >= (double)share * (tally->total_weight + still))
        return true;
    return false;
}

int32_t vote_tally_n_answers(const vote_tally *tally) { return tally ? tally->n : 0; }

const char *vote_tally_answer(const vote_tally *tally, int32_t i, int32_t *count, double *weight) {
    if (!tally || i < 0 || i >= tally->n) {
        if (count) *count = 0;
        if (weight) *weight = 0.0;
        return NULL;
    }
    if (count) *count = tally->entries[i].count;
    if (weight) *weight = tally->entries[i].weight;
    return tally->entries[i].answer;
}

double vote_tally_total_weight(const vote_tally *tally) {
    return tally ? tally->total_weight : 0.0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Pruning threshold */

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

float prune_threshold(const float *warmup_lowest_groups, int32_t n, float keep_percent) {
    if (!warmup_lowest_groups || n <= 0 || isnan(keep_percent)) return -INFINITY;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return -INFINITY; /* prune nothing rather than fail a run */
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (!isnan(warmup_lowest_groups[i])) v[m++] = warmup_lowest_groups[i];
    float result = -INFINITY;
    if (m > 0) {
        qsort(v, (size_t)m, sizeof *v, cmp_float);
        double p = 100.0 - (double)keep_percent;
        p = p < 0.0 ? 0.0 : (p > 100.0 ? 100.0 : p);
        const double pos = p / 100.0 * (double)(m - 1);
        const int32_t k = (int32_t)floor(pos);
        const double f = pos - k;
        const double lo = v[k], hi = v[RS_MIN(k + 1, m - 1)];
        if (f == 0.0 || lo == hi) result = (float)lo;
        else if (isinf(lo)) result = -INFINITY; /* -inf + inf * f would be NaN */
        else result = (float)(lo + (hi - lo) * f);
    }
    free(v);
    return result;
}
