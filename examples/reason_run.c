/* reason-run — ask a model a question; stream its thinking and its answer apart.
 *
 *   reason-run [-m MODEL] [options] "question"
 *
 * The prompt goes through the model's chat template. Models without thinking tokens of their own
 * are asked to think inside <think>…</think> first (prompted thinking); the thinking is shown
 * dimmed on a terminal, or tagged with --show-thinking, or dropped with --hide-thinking. */
#include "cli.h"
#include "reason.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THINK_PROMPT                                                                               \
    "You are a careful assistant. First think step by step inside <think> and </think>, then "    \
    "give the final answer after </think>."

typedef struct options {
    const char *model;
    const char *question;
    const char *system;
    reason_sampler_params sampling;
    int32_t max_tokens;
    int32_t n_threads;
    int32_t n_ctx;
    int raw;          /* the question is the whole prompt: no template */
    int show_mode;    /* 0 auto (dim on a terminal), 1 tagged, 2 hidden */
    int think_prompt; /* ask models without thinking tokens to think */
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: reason-run [-m MODEL] [options] \"question\"\n"
            "  -m, --model PATH      GGUF model (default: models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
            "  -n, --max-tokens N    tokens to generate (default 512)\n"
            "  -s, --seed N          sampling seed (default 42)\n"
            "      --temp T          temperature, 0 = greedy (default 0.6)\n"
            "      --top-k K         (default 20)   --top-p P (default 0.95)   --min-p P (default 0)\n"
            "      --repeat-penalty R (default 1.0)\n"
            "      --system TEXT     system message\n"
            "      --raw             send the question as the raw prompt, no chat template\n"
            "      --no-think-prompt do not ask the model to think in <think> tags\n"
            "      --show-thinking   print thinking between [thinking] markers\n"
            "      --hide-thinking   print only the answer\n"
            "  -t, --threads N       CPU threads (default: all cores)\n"
            "  -c, --ctx N           context size in tokens (default 4096)\n");
}

static int parse_options(int argc, char **argv, options *o) {
    static const struct option longs[] = {
        {"model", required_argument, 0, 'm'},     {"max-tokens", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},      {"temp", required_argument, 0, 1},
        {"top-k", required_argument, 0, 2},       {"top-p", required_argument, 0, 3},
        {"min-p", required_argument, 0, 4},       {"repeat-penalty", required_argument, 0, 5},
        {"system", required_argument, 0, 6},      {"raw", no_argument, 0, 7},
        {"no-think-prompt", no_argument, 0, 8},   {"show-thinking", no_argument, 0, 9},
        {"hide-thinking", no_argument, 0, 10},    {"threads", required_argument, 0, 't'},
        {"ctx", required_argument, 0, 'c'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    reason_sampler_params_default(&o->sampling);
    o->sampling.seed = 42;
    o->max_tokens = 512;
    o->n_ctx = 4096;
    o->think_prompt = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:n:s:t:c:h", longs, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'n': o->max_tokens = atoi(optarg); break;
        case 's': o->sampling.seed = strtoull(optarg, NULL, 10); break;
        case 1: o->sampling.temperature = strtof(optarg, NULL); break;
        case 2: o->sampling.top_k = atoi(optarg); break;
        case 3: o->sampling.top_p = strtof(optarg, NULL); break;
        case 4: o->sampling.min_p = strtof(optarg, NULL); break;
        case 5: o->sampling.repeat_penalty = strtof(optarg, NULL); break;
        case 6: o->system = optarg; break;
        case 7: o->raw = 1; break;
        case 8: o->think_prompt = 0; break;
        case 9: o->show_mode = 1; break;
        case 10: o->show_mode = 2; break;
        case 't': o->n_threads = atoi(optarg); break;
        case 'c': o->n_ctx = atoi(optarg); break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (optind != argc - 1 || o->max_tokens < 1 || o->n_ctx < 16) return -1;
    o->question = argv[optind];
    return 0;
}

/* Splits streamed text into thinking and answer at the <think> / </think> tags, which may arrive
 * split across tokens: text that could still become a tag is held back. */
typedef struct phase_printer {
    int thinking;
    int mode; /* 0 dim, 1 tagged, 2 hidden */
    char held[16];
    size_t n_held;
} phase_printer;

static void emit(phase_printer *pp, const char *s, size_t n) {
    if (!n) return;
    if (pp->thinking && pp->mode == 2) return;
    fwrite(s, 1, n, stdout);
}

static void set_thinking(phase_printer *pp, int thinking) {
    if (pp->thinking == thinking) return;
    pp->thinking = thinking;
    if (pp->mode == 0) fputs(thinking ? "\033[2m" : "\033[0m", stdout);
    if (pp->mode == 1) fputs(thinking ? "[thinking]\n" : "\n[/thinking]\n", stdout);
}

static void phase_push(phase_printer *pp, const char *text, size_t n) {
    static const char *const tags[] = {"<think>", "</think>"};
    for (size_t i = 0; i < n; i++) {
        pp->held[pp->n_held++] = text[i];
        int prefix = 0;
        for (int t = 0; t < 2; t++) {
            const size_t len = strlen(tags[t]);
            if (pp->n_held <= len && memcmp(pp->held, tags[t], pp->n_held) == 0) {
                prefix = 1;
                if (pp->n_held == len) {
                    set_thinking(pp, t == 0);
                    pp->n_held = 0;
                }
            }
        }
        if (!prefix && pp->n_held) {
            /* not a tag: emit the first held byte, keep trying from the next one */
            emit(pp, pp->held, 1);
            memmove(pp->held, pp->held + 1, --pp->n_held);
            while (pp->n_held && pp->held[0] != '<') {
                emit(pp, pp->held, 1);
                memmove(pp->held, pp->held + 1, --pp->n_held);
            }
        }
    }
    fflush(stdout);
}

static int build_prompt(const reason_model *model, const options *o, char **out) {
    if (o->raw) {
        *out = strdup(o->question);
        return *out ? 0 : 1;
    }
    const reason_tokenizer *tok;
    reason_model_tokenizer(model, &tok);
    const int own_thinking = reason_tokenizer_special(tok, REASON_SPECIAL_THINK_END) >= 0;
    reason_chat_message msgs[2];
    size_t n = 0;
    const char *system = o->system;
    if (!system && o->think_prompt && !own_thinking) system = THINK_PROMPT;
    if (system) msgs[n++] = (reason_chat_message){"system", system};
    msgs[n++] = (reason_chat_message){"user", o->question};
    reason_chat_params cp;
    reason_chat_params_default(&cp);
    size_t len = 0;
    reason_status st = reason_chat_apply(model, msgs, n, &cp, NULL, 0, &len);
    if (st != REASON_ERR_BUFFER && st != REASON_OK) return cli_fail("reason-run", "chat template");
    *out = malloc(len + 1);
    if (!*out || reason_chat_apply(model, msgs, n, &cp, *out, len + 1, &len) != REASON_OK)
        return cli_fail("reason-run", "chat template");
    return 0;
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
    reason_sampler *sampler = NULL;
    reason_detokenizer *detok = NULL;
    char *prompt = NULL;
    reason_token *tokens = NULL;

    if (reason_model_load(o.model, NULL, &model) != REASON_OK) {
        rc = cli_fail("reason-run", "loading the model");
        goto done;
    }
    const reason_tokenizer *tok;
    reason_model_tokenizer(model, &tok);
    if (build_prompt(model, &o, &prompt) != 0) goto done;

    size_t n_prompt = 0, plen = strlen(prompt);
    const int32_t flags = REASON_TOKENIZE_ADD_SPECIAL | REASON_TOKENIZE_PARSE_SPECIAL;
    reason_tokenize(tok, prompt, plen, flags, NULL, 0, &n_prompt);
    tokens = malloc((n_prompt + 1) * sizeof *tokens);
    if (!tokens || reason_tokenize(tok, prompt, plen, flags, tokens, n_prompt + 1, &n_prompt) != REASON_OK) {
        rc = cli_fail("reason-run", "tokenizing the prompt");
        goto done;
    }
    reason_context_params cp;
    reason_context_params_default(&cp);
    cp.n_ctx = (uint32_t)o.n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = o.n_threads;
    cp.n_outputs_max = 1;
    if ((int64_t)n_prompt + o.max_tokens > o.n_ctx) {
        fprintf(stderr, "reason-run: prompt (%zu tokens) + max tokens (%d) exceed the context (%d)\n",
                n_prompt, o.max_tokens, o.n_ctx);
        goto done;
    }
    if (reason_context_create(model, &cp, &ctx) != REASON_OK) {
        rc = cli_fail("reason-run", "creating the context");
        goto done;
    }
    reason_model_info info;
    reason_model_get_info(model, &info);
    if (reason_sampler_create(&o.sampling, info.n_vocab, &sampler) != REASON_OK ||
        reason_detokenizer_create(tok, &detok) != REASON_OK) {
        rc = cli_fail("reason-run", "sampler");
        goto done;
    }

    phase_printer pp = {.mode = o.show_mode == 0 && !isatty(STDOUT_FILENO) ? 1 : o.show_mode};
    /* templates that pre-insert <think> (DeepSeek-R1) start the reply inside the thinking */
    const char *tail = strstr(prompt, "<think>");
    if (tail && !strstr(tail, "</think>")) set_thinking(&pp, 1);

    const double t0 = cli_now();
    const int32_t n_batch = (int32_t)cp.n_batch;
    int32_t pos = 0, last_index = 0; /* batch index of the token whose logits come next */
    int32_t *positions = malloc(sizeof(int32_t) * (size_t)n_batch);
    int32_t *seqs = calloc((size_t)n_batch, sizeof(int32_t));
    if (!positions || !seqs) goto done_free;
    for (size_t i = 0; i < n_prompt; i += (size_t)n_batch) {
        const int32_t n = (int32_t)((n_prompt - i) < (size_t)n_batch ? n_prompt - i : (size_t)n_batch);
        for (int32_t j = 0; j < n; j++) positions[j] = pos + j;
        const reason_batch b = {n, tokens + i, positions, seqs, NULL};
        if (reason_decode(ctx, &b) != REASON_OK) {
            rc = cli_fail("reason-run", "prompt processing");
            goto done_free;
        }
        pos += n;
        last_index = n - 1;
        for (size_t j = i; j < i + (size_t)n; j++) reason_sampler_accept(sampler, tokens[j]);
    }
    const double t1 = cli_now();
    int32_t n_gen = 0;
    char text[256];
    size_t text_len;
    for (; n_gen < o.max_tokens; n_gen++) {
        const float *logits;
        reason_token_choice choice;
        if (reason_get_logits(ctx, last_index, &logits) != REASON_OK ||
            reason_sampler_sample(sampler, logits, &choice) != REASON_OK) {
            rc = cli_fail("reason-run", "sampling");
            goto done_free;
        }
        reason_sampler_accept(sampler, choice.token);
        if (reason_token_is_end(tok, choice.token)) break;
        if (reason_detokenizer_push(detok, choice.token, text, sizeof text, &text_len) == REASON_OK)
            phase_push(&pp, text, text_len);
        positions[0] = pos++;
        const reason_batch b = {1, &choice.token, positions, seqs, NULL};
        if (reason_decode(ctx, &b) != REASON_OK) {
            rc = cli_fail("reason-run", "decoding");
            goto done_free;
        }
        last_index = 0;
    }
    if (reason_detokenizer_flush(detok, text, sizeof text, &text_len) == REASON_OK)
        phase_push(&pp, text, text_len);
    if (pp.n_held) emit(&pp, pp.held, pp.n_held);
    set_thinking(&pp, 0);
    const double t2 = cli_now();
    printf("\n");
    fprintf(stderr, "\n[prompt %zu tokens, %.1f tokens/s | generated %d tokens, %.1f tokens/s]\n",
            n_prompt, (double)n_prompt / (t1 - t0), n_gen, n_gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    rc = 0;
done_free:
    free(positions);
    free(seqs);
done:
    free(tokens);
    free(prompt);
    reason_detokenizer_free(detok);
    reason_sampler_free(sampler);
    reason_context_free(ctx);
    reason_model_free(model);
    return rc;
}
