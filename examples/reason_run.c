/* reason-run — ask a model a question; stream its thinking and its answer apart (reason_run).
 *
 *   reason-run [-m MODEL] [options] "question"
 *
 * The runtime renders the question with the model's chat template; models without thinking tokens
 * of their own are asked to think inside <think>…</think> (prompted thinking). Trace 0 streams:
 * its thinking dimmed on a terminal (tagged with --show-thinking, dropped with --hide-thinking),
 * its answer plain. With --n > 1 the traces run in parallel from one prefilled prompt, and each
 * trace's extracted answer and the vote are printed at the end. */
#include "cli.h"
#include "reason.h"

#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct options {
    const char *model;
    const char *question;
    reason_params p;
    int32_t n_threads;
    int32_t fast; /* REASON_PRECISION_FAST */
    int32_t n_ctx;
    int raw;       /* the question is the whole prompt: no template */
    int show_mode; /* 0 dim, 1 tagged, 2 hidden */
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: reason-run [-m MODEL] [options] \"question\"\n"
            "  -m, --model PATH      GGUF model (default: models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
            "  -n, --max-tokens N    answer tokens (default 512)\n"
            "      --think-budget N  most thinking tokens, then the thinking is closed (default:\n"
            "                        by --effort, else unlimited)\n"
            "      --min-think N     an earlier end of thinking becomes \"Wait\" (default 0)\n"
            "      --effort L        low|medium|high: 512|2048|8192 thinking tokens\n"
            "      --wrap-up TEXT    injected before the closing when the budget ends thinking\n"
            "      --n N             parallel traces from one prompt (default 1)\n"
            "      --vote KIND       majority|logprob|group (default majority)\n"
            "      --early-stop      cancel the other traces once the vote is decided\n"
            "  -s, --seed N          sampling seed; trace i uses seed + i (default 42)\n"
            "      --temp T          temperature, 0 = greedy (default 0.6)\n"
            "      --top-k K         (default 20)   --top-p P (default 0.95)   --min-p P (default 0)\n"
            "      --repeat-penalty R (default 1.0)\n"
            "      --system TEXT     system message\n"
            "      --raw             send the question as the raw prompt, no chat template\n"
            "      --no-think-prompt do not ask models without thinking tokens to think\n"
            "      --no-think        answer directly (Qwen3: enable_thinking=false)\n"
            "      --show-thinking   print thinking between [thinking] markers\n"
            "      --hide-thinking   print only the answer\n"
            "  -t, --threads N       CPU threads (default: all cores)\n"
            "      --fast            8-bit activations for integer-type weights (faster decoding)\n"
            "  -c, --ctx N           context size in tokens (default 4096)\n");
}

enum {
    O_TEMP = 256, O_TOP_K, O_TOP_P, O_MIN_P, O_REPEAT, O_SYSTEM, O_RAW, O_NO_THINK_PROMPT,
    O_SHOW, O_HIDE, O_BUDGET, O_MIN_THINK, O_EFFORT, O_TRACES, O_VOTE, O_WRAP, O_NO_THINK,
    O_EARLY,
    O_FAST
};

static int parse_options(int argc, char **argv, options *o) {
    static const struct option longs[] = {
        {"model", required_argument, 0, 'm'},     {"max-tokens", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},      {"temp", required_argument, 0, O_TEMP},
        {"top-k", required_argument, 0, O_TOP_K}, {"top-p", required_argument, 0, O_TOP_P},
        {"min-p", required_argument, 0, O_MIN_P}, {"repeat-penalty", required_argument, 0, O_REPEAT},
        {"system", required_argument, 0, O_SYSTEM}, {"raw", no_argument, 0, O_RAW},
        {"no-think-prompt", no_argument, 0, O_NO_THINK_PROMPT},
        {"no-think", no_argument, 0, O_NO_THINK},
        {"show-thinking", no_argument, 0, O_SHOW}, {"hide-thinking", no_argument, 0, O_HIDE},
        {"think-budget", required_argument, 0, O_BUDGET},
        {"min-think", required_argument, 0, O_MIN_THINK},
        {"effort", required_argument, 0, O_EFFORT}, {"n", required_argument, 0, O_TRACES},
        {"vote", required_argument, 0, O_VOTE},   {"wrap-up", required_argument, 0, O_WRAP},
        {"early-stop", no_argument, 0, O_EARLY},  {"fast", no_argument, 0, O_FAST},
        {"threads", required_argument, 0, 't'},   {"ctx", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    reason_params_default(&o->p);
    o->p.sampling.seed = 42;
    o->n_ctx = 4096;
    int c, bad = 0;
    int32_t v;
    while (!bad && (c = getopt_long(argc, argv, "m:n:s:t:c:h", longs, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'n': bad = cli_parse_int(optarg, 0, INT32_MAX, &o->p.max_answer_tokens); break;
        case 's':
            bad = cli_parse_int(optarg, 0, INT32_MAX, &v);
            o->p.sampling.seed = (uint64_t)v;
            break;
        case O_TEMP: bad = cli_parse_float(optarg, 0.0, 100.0, &o->p.sampling.temperature); break;
        case O_TOP_K: bad = cli_parse_int(optarg, 0, INT32_MAX, &o->p.sampling.top_k); break;
        case O_TOP_P: bad = cli_parse_float(optarg, 1e-6, 1.0, &o->p.sampling.top_p); break;
        case O_MIN_P: bad = cli_parse_float(optarg, 0.0, 1.0, &o->p.sampling.min_p); break;
        case O_REPEAT: bad = cli_parse_float(optarg, 1e-3, 100.0, &o->p.sampling.repeat_penalty); break;
        case O_SYSTEM: o->p.system = optarg; break;
        case O_RAW: o->raw = 1; break;
        case O_NO_THINK_PROMPT: o->p.thinking_mode = REASON_THINKING_MODEL; break;
        case O_NO_THINK: o->p.thinking_mode = REASON_THINKING_OFF; break;
        case O_SHOW: o->show_mode = 1; break;
        case O_HIDE: o->show_mode = 2; break;
        case O_BUDGET: bad = cli_parse_int(optarg, 0, INT32_MAX, &o->p.max_thinking_tokens); break;
        case O_MIN_THINK: bad = cli_parse_int(optarg, 0, INT32_MAX, &o->p.min_thinking_tokens); break;
        case O_EFFORT:
            if (!strcmp(optarg, "low")) o->p.effort = REASON_EFFORT_LOW;
            else if (!strcmp(optarg, "medium")) o->p.effort = REASON_EFFORT_MEDIUM;
            else if (!strcmp(optarg, "high")) o->p.effort = REASON_EFFORT_HIGH;
            else bad = 1;
            break;
        case O_TRACES: bad = cli_parse_int(optarg, 1, 1024, &o->p.n_traces); break;
        case O_VOTE:
            if (!strcmp(optarg, "majority")) o->p.vote = REASON_VOTE_MAJORITY;
            else if (!strcmp(optarg, "logprob")) o->p.vote = REASON_VOTE_MEAN_LOGPROB;
            else if (!strcmp(optarg, "group")) o->p.vote = REASON_VOTE_LOWEST_GROUP;
            else bad = 1;
            break;
        case O_WRAP: o->p.wrap_up = optarg; break;
        case O_EARLY: o->p.early_stop = 1; break;
        case O_FAST: o->fast = 1; break;
        case 't': bad = cli_parse_int(optarg, 0, 4096, &o->n_threads); break;
        case 'c': bad = cli_parse_int(optarg, 16, 1 << 26, &o->n_ctx); break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (bad || optind != argc - 1) return -1;
    o->question = argv[optind];
    return 0;
}

/* Trace 0's text as it streams: thinking dimmed (or tagged, or hidden), the answer plain. */
typedef struct printer {
    int mode;
    int phase; /* of the last text printed; -1 before any */
} printer;

static int32_t on_text(void *user, int32_t trace, int32_t phase, const char *text, size_t len) {
    printer *pr = user;
    if (trace != 0) return REASON_ACTION_CONTINUE;
    if (phase != pr->phase) {
        if (pr->phase == REASON_PHASE_THINKING) {
            if (pr->mode == 0) fputs("\033[0m", stdout);
            if (pr->mode == 1) fputs("\n[/thinking]\n", stdout);
        }
        if (phase == REASON_PHASE_THINKING) {
            if (pr->mode == 0) fputs("\033[2m", stdout);
            if (pr->mode == 1) fputs("[thinking]\n", stdout);
        }
        pr->phase = phase;
    }
    if (phase != REASON_PHASE_THINKING || pr->mode != 2) fwrite(text, 1, len, stdout);
    fflush(stdout);
    return REASON_ACTION_CONTINUE;
}

static const char *finish_name(int32_t f) {
    static const char *const names[] = {"running", "end", "length", "stop string", "loop",
                                        "pruned", "cancelled", "context full"};
    return f >= 0 && f < 8 ? names[f] : "?";
}

int main(int argc, char **argv) {
    options o;
    if (parse_options(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    if (!o.model) o.model = cli_default_model();
    if (!o.model) {
        fprintf(stderr, "reason-run: no model given and the default is missing: run tools/fetch-model\n");
        return 1;
    }
    int rc = 1;
    reason_model *model = NULL;
    reason_context *ctx = NULL;
    reason_result *res = NULL;
    if (reason_model_load(o.model, NULL, &model) != REASON_OK) {
        rc = cli_fail("reason-run", "loading the model");
        goto done;
    }
    reason_context_params cp;
    reason_context_params_default(&cp);
    cp.n_ctx = (uint32_t)o.n_ctx;
    cp.n_seq_max = (uint32_t)o.p.n_traces + 1;
    cp.n_outputs_max = o.p.n_traces;
    cp.n_batch = cp.n_batch < (uint32_t)o.p.n_traces ? (uint32_t)o.p.n_traces : cp.n_batch;
    cp.n_threads = o.n_threads;
    cp.precision = o.fast ? REASON_PRECISION_FAST : REASON_PRECISION_EXACT;
    if (reason_context_create(model, &cp, &ctx) != REASON_OK) {
        rc = cli_fail("reason-run", "creating the context");
        goto done;
    }
    printer pr = {.mode = o.show_mode == 0 && !isatty(STDOUT_FILENO) ? 1 : o.show_mode, .phase = -1};
    reason_callbacks cb = {.user = &pr, .on_text = on_text};
    o.p.callbacks = &cb;
    const reason_status st = o.raw ? reason_run_prompt(ctx, o.question, &o.p, &res)
                                   : reason_run(ctx, o.question, &o.p, &res);
    if (pr.phase == REASON_PHASE_THINKING && pr.mode == 0) fputs("\033[0m", stdout);
    printf("\n");
    if (st != REASON_OK) {
        rc = cli_fail("reason-run", "running");
        goto done;
    }
    const int32_t n = reason_result_n_traces(res);
    if (n > 1) {
        printf("\n");
        for (int32_t i = 0; i < n; i++) {
            reason_trace_info t;
            reason_result_trace(res, i, &t);
            printf("trace %2d: %-12s thinking %5d  answer %5d  mean logprob %6.3f  answer: %s\n", i,
                   finish_name(t.finish_reason), t.thinking_tokens, t.answer_tokens,
                   (double)t.mean_logprob, t.extracted[0] ? t.extracted : "(none)");
        }
        const char *winner;
        float share;
        reason_result_vote(res, &winner, &share);
        printf("vote: %s (share %.2f)", winner[0] ? winner : "(no answer)", (double)share);
        for (int32_t i = 0; i < reason_result_n_answers(res); i++) {
            const char *a;
            int32_t count;
            float weight;
            reason_result_answer(res, i, &a, &count, &weight);
            printf("%s %s ×%d (%.2f)", i ? "," : " |", a, count, (double)weight);
        }
        printf("\n");
    }
    reason_usage u;
    reason_result_usage(res, &u);
    fflush(stdout);
    fprintf(stderr,
            "[prompt %d tokens | generated %d tokens (thinking %d, answer %d) in %.2f s, %.1f "
            "tokens/s | KV peak %lld tokens]\n",
            u.prompt_tokens, u.generated_tokens, u.thinking_tokens, u.answer_tokens, u.seconds,
            u.seconds > 0 ? u.generated_tokens / u.seconds : 0.0, (long long)u.kv_peak_tokens);
    rc = 0;
done:
    reason_result_free(res);
    reason_context_free(ctx);
    reason_model_free(model);
    return rc;
}
