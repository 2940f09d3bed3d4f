/* reason-vote — ask a question as N parallel traces and vote on their answers (self-consistency,
 * optionally confidence-weighted, with early stopping and DeepConf pruning).
 *
 *   reason-vote [-m MODEL] [-n 8] [options] "question"
 *
 * Prints one line per trace, the consensus answer with its share and the tally, and the usage;
 * --json prints the same as one JSON object on stdout. */
#include "cli.h"
#include "reason.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PROG "reason-vote"

typedef struct options {
    const char *model;
    const char *question;
    reason_params p;
    int32_t n_threads;
    int32_t n_ctx; /* 0: sized from the budgets */
    int json;
    int show_text;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: " PROG " [-m MODEL] [-n 8] [options] \"question\"\n"
            "  -m, --model PATH        GGUF model (default: models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
            "  -n, --traces N          parallel traces (default 8)\n"
            "      --think-budget N    most thinking tokens per trace (default: unlimited or by effort)\n"
            "      --min-think N       replace an earlier end of thinking by \"Wait\" (default 0)\n"
            "      --effort LEVEL      low|medium|high: thinking budget preset\n"
            "      --answer-budget N   most answer tokens per trace (default 512)\n"
            "      --vote KIND         majority|logprob|group (default majority)\n"
            "      --early-stop        cancel unfinished traces once the vote is decided\n"
            "      --share F           early stop once the leader holds share F in (0,1] of all\n"
            "                          traces' weight (implies --early-stop)\n"
            "      --prune             DeepConf online pruning of low-confidence traces\n"
            "      --extract KIND      auto|boxed|number|line|regex:PATTERN (default auto)\n"
            "      --temp T            temperature (default 0.6)   --top-p P (0.95)   --top-k K (20)\n"
            "  -s, --seed N            seed; trace i uses seed + i (default 42)\n"
            "  -t, --threads N         CPU threads (default: all cores)\n"
            "  -c, --ctx N             KV slots shared by all traces (default: from the budgets)\n"
            "      --show-text         also print each trace's thinking and answer text\n"
            "      --json              print one JSON object instead of the human report\n");
}

static int parse_extract(const char *s, reason_params *p) {
    static const struct {
        const char *name;
        int32_t kind;
    } kinds[] = {{"auto", REASON_EXTRACT_AUTO},
                 {"boxed", REASON_EXTRACT_BOXED},
                 {"number", REASON_EXTRACT_LAST_NUMBER},
                 {"line", REASON_EXTRACT_FINAL_LINE}};
    if (strncmp(s, "regex:", 6) == 0 && s[6]) {
        p->extract = REASON_EXTRACT_REGEX;
        p->extract_regex = s + 6;
        return 0;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(s, kinds[i].name) == 0) {
            p->extract = kinds[i].kind;
            return 0;
        }
    return -1;
}

static int parse_named(const char *s, const char *const *names, int n, int32_t first,
                       int32_t *out) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = first + i;
            return 0;
        }
    return -1;
}

/* -1: usage error (already described on stderr when it is about a value). */
static int parse_options(int argc, char **argv, options *o) {
    enum { O_THINK = 256, O_MIN_THINK, O_EFFORT, O_ANSWER, O_VOTE, O_EARLY, O_SHARE, O_PRUNE,
           O_EXTRACT, O_TEMP, O_TOP_P, O_TOP_K, O_TEXT, O_JSON };
    static const struct option longs[] = {
        {"model", required_argument, 0, 'm'},      {"traces", required_argument, 0, 'n'},
        {"think-budget", required_argument, 0, O_THINK},
        {"min-think", required_argument, 0, O_MIN_THINK},
        {"effort", required_argument, 0, O_EFFORT}, {"answer-budget", required_argument, 0, O_ANSWER},
        {"vote", required_argument, 0, O_VOTE},    {"early-stop", no_argument, 0, O_EARLY},
        {"share", required_argument, 0, O_SHARE},  {"prune", no_argument, 0, O_PRUNE},
        {"extract", required_argument, 0, O_EXTRACT},
        {"temp", required_argument, 0, O_TEMP},    {"top-p", required_argument, 0, O_TOP_P},
        {"top-k", required_argument, 0, O_TOP_K},  {"seed", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'},    {"ctx", required_argument, 0, 'c'},
        {"show-text", no_argument, 0, O_TEXT},     {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    static const char *const efforts[] = {"low", "medium", "high"};
    static const char *const votes[] = {"majority", "logprob", "group"};
    memset(o, 0, sizeof *o);
    reason_params_default(&o->p);
    o->p.n_traces = 8;
    o->p.sampling.seed = 42;
    reason_params *p = &o->p;
    int c, bad = 0;
    const char *what = NULL;
    while (!bad && (c = getopt_long(argc, argv, "m:n:s:t:c:h", longs, NULL)) != -1) {
        const char *arg = optarg;
        switch (c) {
        case 'm': o->model = arg; break;
        case 'n': bad = cli_parse_int(arg, 1, 1024, &p->n_traces), what = "-n"; break;
        case O_THINK: bad = cli_parse_int(arg, 0, INT32_MAX, &p->max_thinking_tokens), what = "--think-budget"; break;
        case O_MIN_THINK: bad = cli_parse_int(arg, 0, INT32_MAX, &p->min_thinking_tokens), what = "--min-think"; break;
        case O_EFFORT: bad = parse_named(arg, efforts, 3, REASON_EFFORT_LOW, &p->effort), what = "--effort"; break;
        case O_ANSWER: bad = cli_parse_int(arg, 0, INT32_MAX, &p->max_answer_tokens), what = "--answer-budget"; break;
        case O_VOTE: bad = parse_named(arg, votes, 3, REASON_VOTE_MAJORITY, &p->vote), what = "--vote"; break;
        case O_EARLY: p->early_stop = 1; break;
        case O_SHARE:
            bad = cli_parse_float(arg, 1e-6, 1.0, &p->early_stop_share), what = "--share";
            p->early_stop = 1;
            break;
        case O_PRUNE: p->prune = 1; break;
        case O_EXTRACT: bad = parse_extract(arg, p), what = "--extract"; break;
        case O_TEMP: bad = cli_parse_float(arg, 0.0, 100.0, &p->sampling.temperature), what = "--temp"; break;
        case O_TOP_P: bad = cli_parse_float(arg, 1e-6, 1.0, &p->sampling.top_p), what = "--top-p"; break;
        case O_TOP_K: bad = cli_parse_int(arg, 0, INT32_MAX, &p->sampling.top_k), what = "--top-k"; break;
        case 's': {
            char *end;
            p->sampling.seed = strtoull(arg, &end, 10);
            bad = !*arg || *end || *arg == '-', what = "--seed";
            break;
        }
        case 't': bad = cli_parse_int(arg, 0, 4096, &o->n_threads), what = "-t"; break;
        case 'c': bad = cli_parse_int(arg, 16, INT32_MAX, &o->n_ctx), what = "-c"; break;
        case O_TEXT: o->show_text = 1; break;
        case O_JSON: o->json = 1; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (bad) {
        fprintf(stderr, PROG ": bad value for %s: '%s'\n", what, optarg);
        return -1;
    }
    if (optind != argc - 1 || !argv[optind][0]) return -1;
    o->question = argv[optind];
    return 0;
}

/* KV slots for the whole run: the prompt once (shared by every trace) plus each trace's thinking
 * and answer, with room for injected text. An unlimited budget is guessed at 2048 tokens: a trace
 * that outgrows the pool ends as context_full rather than failing the run. */
static uint32_t context_size(const options *o) {
    if (o->n_ctx > 0) return (uint32_t)o->n_ctx;
    int64_t think = o->p.max_thinking_tokens;
    if (think < 0) {
        static const int64_t by_effort[] = {2048, 512, 2048, 8192};
        think = by_effort[o->p.effort >= 0 && o->p.effort <= 3 ? o->p.effort : 0];
    }
    if (think < o->p.min_thinking_tokens) think = o->p.min_thinking_tokens;
    int64_t n = 512 + (int64_t)o->p.n_traces * (think + o->p.max_answer_tokens + 64);
    if (n < 4096) n = 4096;
    if (n > (1 << 20)) n = 1 << 20;
    return (uint32_t)n;
}

static const char *finish_name(int32_t f) {
    static const char *const names[] = {"none",      "end",    "length",    "stop_string",
                                        "loop",      "pruned", "cancelled", "context_full"};
    return f >= 0 && f < (int32_t)(sizeof names / sizeof names[0]) ? names[f] : "unknown";
}

/* Live token count on a terminal while the traces run. */
typedef struct progress {
    double t0, last;
    int64_t tokens[2]; /* per phase */
} progress;

static int32_t on_token(void *user, int32_t trace, int32_t phase, const reason_token_choice *c) {
    (void)trace;
    (void)c;
    progress *pr = user;
    pr->tokens[phase == REASON_PHASE_ANSWER]++;
    const double t = cli_now();
    if (t - pr->last >= 0.1) {
        pr->last = t;
        const int64_t all = pr->tokens[0] + pr->tokens[1];
        cli_status(0, PROG ": %lld tokens (thinking %lld, answer %lld), %.1f tokens/s",
                   (long long)all, (long long)pr->tokens[0], (long long)pr->tokens[1],
                   all / (t - pr->t0 > 1e-9 ? t - pr->t0 : 1e-9));
    }
    return REASON_ACTION_CONTINUE;
}

/* Prints s in a field of width columns: control characters as spaces, clipped (whole UTF-8
 * characters only) with "..." when longer; width < 0: all of s, unpadded. */
static void print_clipped(const char *s, int width) {
    const size_t len = strlen(s);
    size_t n = len;
    if (width >= 0 && (int)len > width) {
        n = (size_t)width - 3;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    int cols = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char ch = (unsigned char)s[i];
        putchar(ch < 0x20 || ch == 0x7f ? ' ' : ch);
        cols += (ch & 0xC0) != 0x80;
    }
    if (n < len) cols += printf("...");
    for (; cols < width; cols++) putchar(' ');
}

static void print_human(const options *o, const reason_result *res) {
    const int32_t n = reason_result_n_traces(res);
    int32_t no_answer = 0;
    printf("question: %s\n", o->question);
    if (o->show_text) {
        for (int32_t i = 0; i < n; i++) {
            reason_trace_info t;
            if (reason_result_trace(res, i, &t) != REASON_OK) continue;
            printf("--- trace %d thinking ---\n%s\n--- trace %d answer ---\n%s\n", i, t.thinking, i,
                   t.answer);
        }
    }
    printf("trace  finish        thinking  answer  extracted                 mean-logprob  group-conf\n");
    for (int32_t i = 0; i < n; i++) {
        reason_trace_info t;
        if (reason_result_trace(res, i, &t) != REASON_OK) continue;
        no_answer += !t.extracted[0];
        printf("%5d  %-12s  %8d  %6d  ", i, finish_name(t.finish_reason), t.thinking_tokens,
               t.answer_tokens);
        print_clipped(t.extracted[0] ? t.extracted : "-", 24);
        printf("  %12.3f  %10.3f\n", t.mean_logprob, t.lowest_group_confidence);
    }
    const char *winner = "";
    float share = 0;
    reason_result_vote(res, &winner, &share);
    const int32_t n_answers = reason_result_n_answers(res);
    int32_t winner_count = 0;
    for (int32_t i = 0; i < n_answers; i++) {
        const char *answer;
        int32_t count;
        float weight;
        if (reason_result_answer(res, i, &answer, &count, &weight) == REASON_OK &&
            strcmp(answer, winner) == 0)
            winner_count = count;
    }
    if (winner[0]) {
        printf("consensus: ");
        print_clipped(winner, -1);
        printf(" (share %.1f%%, %d of %d traces)\n", 100.0 * share, winner_count, n);
    }
    else
        printf("consensus: none (no trace gave an answer)\n");
    printf("tally:");
    for (int32_t i = 0; i < n_answers; i++) {
        const char *answer;
        int32_t count;
        float weight;
        if (reason_result_answer(res, i, &answer, &count, &weight) != REASON_OK) continue;
        printf("%s \"", i ? ";" : "");
        print_clipped(answer, -1);
        printf("\" %d vote%s", count, count == 1 ? "" : "s");
        if (o->p.vote != REASON_VOTE_MAJORITY) printf(" (weight %.3f)", weight);
    }
    if (no_answer) printf("%s %d without an answer", n_answers ? ";" : "", no_answer);
    printf("\n");
    reason_usage u;
    if (reason_result_usage(res, &u) == REASON_OK)
        printf("usage: prompt %d tokens | generated %d (thinking %d, answer %d) | KV peak %lld "
               "tokens | %.2f s | %.1f tokens/s\n",
               u.prompt_tokens, u.generated_tokens, u.thinking_tokens, u.answer_tokens,
               (long long)u.kv_peak_tokens, u.seconds,
               u.seconds > 0 ? u.generated_tokens / u.seconds : 0.0);
}

/* jansson refuses invalid UTF-8 and non-finite reals: those become null rather than vanish. */
static json_t *jstr(const char *s) {
    json_t *j = s ? json_string(s) : NULL;
    return j ? j : json_null();
}

static json_t *jreal(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static int print_json(const options *o, const reason_result *res) {
    json_t *root = json_object(), *traces = json_array(), *vote = json_object(),
           *counts = json_object(), *weights = json_object(), *usage = json_object();
    int rc = -1;
    if (!root || !traces || !vote || !counts || !weights || !usage) goto done;
    json_object_set_new(root, "question", jstr(o->question));
    const int32_t n = reason_result_n_traces(res);
    for (int32_t i = 0; i < n; i++) {
        reason_trace_info t;
        if (reason_result_trace(res, i, &t) != REASON_OK) goto done;
        json_t *jt = json_object();
        json_object_set_new(jt, "index", json_integer(i));
        json_object_set_new(jt, "thinking_tokens", json_integer(t.thinking_tokens));
        json_object_set_new(jt, "answer_tokens", json_integer(t.answer_tokens));
        json_object_set_new(jt, "finish_reason", json_string(finish_name(t.finish_reason)));
        json_object_set_new(jt, "answer", jstr(t.extracted));
        json_object_set_new(jt, "confidence", jreal(t.mean_logprob));
        json_object_set_new(jt, "group_confidence", jreal(t.lowest_group_confidence));
        if (o->show_text) {
            json_object_set_new(jt, "thinking_text", jstr(t.thinking));
            json_object_set_new(jt, "answer_text", jstr(t.answer));
        }
        json_array_append_new(traces, jt);
    }
    const char *winner = "";
    float share = 0;
    if (reason_result_vote(res, &winner, &share) != REASON_OK) goto done;
    json_object_set_new(vote, "winner", jstr(winner));
    json_object_set_new(vote, "share", jreal(share));
    const int32_t n_answers = reason_result_n_answers(res);
    for (int32_t i = 0; i < n_answers; i++) {
        const char *answer;
        int32_t count;
        float weight;
        if (reason_result_answer(res, i, &answer, &count, &weight) != REASON_OK) goto done;
        json_object_set_new(counts, answer, json_integer(count));
        json_object_set_new(weights, answer, jreal(weight));
    }
    json_object_set(vote, "counts", counts);
    json_object_set(vote, "weights", weights);
    reason_usage u;
    if (reason_result_usage(res, &u) != REASON_OK) goto done;
    json_object_set_new(usage, "prompt_tokens", json_integer(u.prompt_tokens));
    json_object_set_new(usage, "generated_tokens", json_integer(u.generated_tokens));
    json_object_set_new(usage, "thinking_tokens", json_integer(u.thinking_tokens));
    json_object_set_new(usage, "answer_tokens", json_integer(u.answer_tokens));
    json_object_set_new(usage, "kv_peak_tokens", json_integer(u.kv_peak_tokens));
    json_object_set_new(usage, "seconds", jreal(u.seconds));
    json_object_set(root, "traces", traces);
    json_object_set(root, "vote", vote);
    json_object_set(root, "usage", usage);
    if (json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0) goto done;
    putchar('\n');
    rc = 0;
done:
    json_decref(usage);
    json_decref(weights);
    json_decref(counts);
    json_decref(vote);
    json_decref(traces);
    json_decref(root);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    if (parse_options(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    if (!o.model) o.model = cli_default_model();
    if (!o.model) {
        fprintf(stderr, PROG ": no model given and the default is missing: run tools/fetch-model\n");
        return 1;
    }
    int rc = 1;
    reason_model *model = NULL;
    reason_context *ctx = NULL;
    reason_result *res = NULL;
    if (reason_model_load(o.model, NULL, &model) != REASON_OK) {
        rc = cli_fail(PROG, o.model);
        goto done;
    }
    reason_context_params cp;
    reason_context_params_default(&cp);
    cp.n_ctx = context_size(&o);
    cp.n_seq_max = (uint32_t)o.p.n_traces + 1; /* the prompt's sequence, then one per trace */
    cp.n_outputs_max = o.p.n_traces;           /* one logits row per trace per step */
    cp.n_threads = o.n_threads;
    if (reason_context_create(model, &cp, &ctx) != REASON_OK) {
        rc = cli_fail(PROG, "creating the context");
        goto done;
    }
    progress pr = {.t0 = cli_now()};
    const reason_callbacks cb = {.user = &pr, .on_token = cli_stderr_is_tty() ? on_token : NULL};
    o.p.callbacks = &cb;
    const reason_status st = reason_run(ctx, o.question, &o.p, &res);
    cli_status_done(0);
    if (st != REASON_OK) {
        rc = cli_fail(PROG, "running the traces");
        goto done;
    }
    if (o.json) {
        if (print_json(&o, res) != 0) {
            fprintf(stderr, PROG ": writing the JSON report failed\n");
            goto done;
        }
    } else {
        print_human(&o, res);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    reason_result_free(res);
    reason_context_free(ctx);
    reason_model_free(model);
    return rc;
}
