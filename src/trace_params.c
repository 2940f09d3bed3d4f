/* trace_params.c — the reasoning runtime's parameters (defaults, validation, effort presets) and
 * its results with their accessors. */
#include "trace.h"

#include "vote.h"

#include <stdlib.h>
#include <string.h>

void reason_params_default(reason_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->n_traces = 1;
    p->thinking_mode = REASON_THINKING_AUTO;
    p->effort = REASON_EFFORT_DEFAULT;
    p->max_thinking_tokens = -1;
    p->min_thinking_tokens = 0;
    p->max_answer_tokens = 512;
    p->wrap_up = NULL;
    p->continuation = DEFAULT_CONTINUATION;
    reason_sampler_params_default(&p->sampling);
    p->extract = REASON_EXTRACT_AUTO;
    p->vote = REASON_VOTE_MAJORITY;
    p->early_stop_share = 0.0f;
    p->early_stop = 0;
    p->prune = 0;
    p->prune_warmup = 4;
    p->prune_keep_percent = 90.0f;
    p->confidence_window = 128;
    p->loop_ngram = 16;
    p->loop_repeats = 4;
    p->loop_action = REASON_LOOP_END;
    p->loop_nudge = DEFAULT_NUDGE;
}

reason_status trace_check_params(const reason_params *p, const reason_context_params *cp) {
    const char *fn = "reason_run";
    if (p->n_traces < 1 || (int64_t)p->n_traces + 1 > (int64_t)cp->n_seq_max)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "%s: n_traces = %d needs a context with n_seq_max >= n_traces + 1 (it has %u)",
                        fn, p->n_traces, cp->n_seq_max);
    if (p->n_traces > cp->n_outputs_max)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "%s: n_traces = %d needs a context with n_outputs_max >= n_traces (it has %d)",
                        fn, p->n_traces, cp->n_outputs_max);
    if (p->thinking_mode < REASON_THINKING_AUTO || p->thinking_mode > REASON_THINKING_OFF)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: unknown thinking_mode %d", fn, p->thinking_mode);
    if (p->effort < REASON_EFFORT_DEFAULT || p->effort > REASON_EFFORT_HIGH)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: unknown effort %d", fn, p->effort);
    if (p->max_thinking_tokens < -1 || p->min_thinking_tokens < 0 || p->max_answer_tokens < -1)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "%s: budgets max_thinking %d, min_thinking %d, max_answer %d (must be >= 0, "
                        "or -1 for the maxima)",
                        fn, p->max_thinking_tokens, p->min_thinking_tokens, p->max_answer_tokens);
    if (p->n_stop_strings < 0 || (p->n_stop_strings > 0 && !p->stop_strings))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: %d stop strings at %p", fn, p->n_stop_strings,
                        (const void *)p->stop_strings);
    for (int32_t i = 0; i < p->n_stop_strings; i++)
        if (!p->stop_strings[i] || !p->stop_strings[i][0])
            return rs_error(REASON_ERR_INVALID_ARG, "%s: stop string %d is NULL or empty", fn, i);
    if (p->extract < REASON_EXTRACT_AUTO || p->extract > REASON_EXTRACT_CALLBACK)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: unknown extract kind %d", fn, p->extract);
    if (p->extract == REASON_EXTRACT_REGEX && !p->extract_regex)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: REASON_EXTRACT_REGEX without extract_regex", fn);
    if (p->extract == REASON_EXTRACT_REGEX) RS_TRY(answer_regex_check(p->extract_regex));
    if (p->extract == REASON_EXTRACT_CALLBACK && (!p->callbacks || !p->callbacks->extract))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: REASON_EXTRACT_CALLBACK without callbacks->extract",
                        fn);
    if (p->vote < REASON_VOTE_MAJORITY || p->vote > REASON_VOTE_LOWEST_GROUP)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: unknown vote kind %d", fn, p->vote);
    if (!(p->early_stop_share >= 0.0f && p->early_stop_share <= 1.0f))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: early_stop_share %g outside [0, 1]", fn,
                        (double)p->early_stop_share);
    if (p->prune && p->prune_warmup < 1)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: prune_warmup %d < 1", fn, p->prune_warmup);
    if (!(p->prune_keep_percent >= 0.0f && p->prune_keep_percent <= 100.0f))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: prune_keep_percent %g outside [0, 100]", fn,
                        (double)p->prune_keep_percent);
    if (p->confidence_window < 1 || p->confidence_window > (1 << 24))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: confidence_window %d", fn, p->confidence_window);
    if (p->loop_ngram < 0 || p->loop_ngram > 4096 || (p->loop_ngram > 0 && p->loop_repeats < 2))
        return rs_error(REASON_ERR_INVALID_ARG, "%s: loop_ngram %d, loop_repeats %d (need 0..4096, >= 2)",
                        fn, p->loop_ngram, p->loop_repeats);
    if (p->loop_action != REASON_LOOP_END && p->loop_action != REASON_LOOP_NUDGE)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: unknown loop_action %d", fn, p->loop_action);
    return REASON_OK;
}

/* Resolves effort and defaults into r->p. */
void trace_resolve_budgets(reason_params *p) {
    if (p->max_thinking_tokens < 0) {
        switch (p->effort) {
        case REASON_EFFORT_LOW: p->max_thinking_tokens = EFFORT_LOW_TOKENS; break;
        case REASON_EFFORT_MEDIUM: p->max_thinking_tokens = EFFORT_MEDIUM_TOKENS; break;
        case REASON_EFFORT_HIGH: p->max_thinking_tokens = EFFORT_HIGH_TOKENS; break;
        default: p->max_thinking_tokens = BUDGET_UNLIMITED; break;
        }
    }
    if (p->max_answer_tokens < 0) p->max_answer_tokens = BUDGET_UNLIMITED;
    p->min_thinking_tokens = RS_MIN(p->min_thinking_tokens, p->max_thinking_tokens);
}

/* ---- results --------------------------------------------------------------------------------- */

void reason_result_free(reason_result *res) {
    if (!res) return;
    for (int32_t i = 0; res->texts && i < 3 * res->n_traces; i++) free(res->texts[i]);
    for (int32_t i = 0; res->answers && i < res->n_answers; i++) free(res->answers[i]);
    free(res->texts);
    free(res->info);
    free(res->answers);
    free(res->counts);
    free(res->weights);
    free(res->winner);
    free(res);
}

int32_t reason_result_n_traces(const reason_result *res) { return res ? res->n_traces : 0; }

reason_status reason_result_trace(const reason_result *res, int32_t i, reason_trace_info *out) {
    RS_CHECK_ARG(res != NULL);
    RS_CHECK_ARG(out != NULL);
    if (i < 0 || i >= res->n_traces)
        return rs_error(REASON_ERR_INVALID_ARG, "reason_result_trace: trace %d outside [0, %d)", i,
                        res->n_traces);
    *out = res->info[i];
    return REASON_OK;
}

reason_status reason_result_vote(const reason_result *res, const char **out_answer,
                                 float *out_share) {
    RS_CHECK_ARG(res != NULL);
    if (out_answer) *out_answer = res->winner;
    if (out_share) *out_share = res->share;
    return REASON_OK;
}

int32_t reason_result_n_answers(const reason_result *res) { return res ? res->n_answers : 0; }

reason_status reason_result_answer(const reason_result *res, int32_t i, const char **out_answer,
                                   int32_t *out_count, float *out_weight) {
    RS_CHECK_ARG(res != NULL);
    if (i < 0 || i >= res->n_answers)
        return rs_error(REASON_ERR_INVALID_ARG, "reason_result_answer: answer %d outside [0, %d)", i,
                        res->n_answers);
    if (out_answer) *out_answer = res->answers[i];
    if (out_count) *out_count = res->counts[i];
    if (out_weight) *out_weight = res->weights[i];
    return REASON_OK;
}

reason_status reason_result_usage(const reason_result *res, reason_usage *out) {
    RS_CHECK_ARG(res != NULL);
    RS_CHECK_ARG(out != NULL);
    *out = res->usage;
    return REASON_OK;
}
