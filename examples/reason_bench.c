/* reason-bench — prompt processing (ppN) and generation (tgN) speed of a model, median of
 * several runs, in tokens/s and in GB/s of weights streamed per generated token.
 *
 *   reason-bench [-m MODEL] [-p 512] [-n 128] [-r 3] [-t THREADS] [--json] */
#include "cli.h"
#include "reason.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Decodes tokens[0..n) into sequence 0 from position 0, in one batch (pp) or one at a time. */
static int run(reason_context *ctx, const reason_token *tokens, int32_t n, int one_by_one,
               int32_t *pos_buf, int32_t *seq_buf, double *seconds) {
    if (reason_seq_free(ctx, 0) != REASON_OK) return -1;
    const double t0 = cli_now();
    if (one_by_one) {
        for (int32_t i = 0; i < n; i++) {
            pos_buf[0] = i;
            const reason_batch b = {1, tokens + i, pos_buf, seq_buf, NULL};
            if (reason_decode(ctx, &b) != REASON_OK) return -1;
        }
    } else {
        for (int32_t i = 0; i < n; i++) pos_buf[i] = i;
        const reason_batch b = {n, tokens, pos_buf, seq_buf, NULL};
        if (reason_decode(ctx, &b) != REASON_OK) return -1;
    }
    *seconds = cli_now() - t0;
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL;
    int32_t n_prompt = 512, n_gen = 128, reps = 3, n_threads = 0, json = 0;
    static const struct option longs[] = {{"model", required_argument, 0, 'm'},
                                          {"prompt", required_argument, 0, 'p'},
                                          {"gen", required_argument, 0, 'n'},
                                          {"reps", required_argument, 0, 'r'},
                                          {"threads", required_argument, 0, 't'},
                                          {"json", no_argument, 0, 'j'},
                                          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "m:p:n:r:t:", longs, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': n_prompt = atoi(optarg); break;
        case 'n': n_gen = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 't': n_threads = atoi(optarg); break;
        case 'j': json = 1; break;
        default:
            fprintf(stderr, "usage: reason-bench [-m MODEL] [-p 512] [-n 128] [-r 3] [-t N] [--json]\n");
            return 2;
        }
    }
    if (n_prompt < 1 || n_gen < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "reason-bench: -p, -n must be >= 1 and -r in 1..100\n");
        return 2;
    }
    if (!model_path) model_path = cli_default_model();
    if (!model_path) {
        fprintf(stderr, "reason-bench: no model given and the default is missing: run tools/fetch-model\n");
        return 1;
    }
    reason_model *model = NULL;
    reason_context *ctx = NULL;
    if (reason_model_load(model_path, NULL, &model) != REASON_OK) return cli_fail("reason-bench", model_path);
    reason_model_info info;
    reason_model_get_info(model, &info);
    reason_context_params cp;
    reason_context_params_default(&cp);
    const int32_t longest = n_prompt > n_gen ? n_prompt : n_gen;
    cp.n_ctx = (uint32_t)longest;
    cp.n_batch = (uint32_t)longest;
    cp.n_seq_max = 1;
    cp.n_outputs_max = 1;
    cp.n_threads = n_threads;
    if (reason_context_create(model, &cp, &ctx) != REASON_OK) {
        reason_model_free(model);
        return cli_fail("reason-bench", "context");
    }
    reason_token *tokens = malloc(sizeof *tokens * (size_t)longest);
    int32_t *pos = malloc(sizeof *pos * (size_t)longest);
    int32_t *seq = calloc((size_t)longest, sizeof *seq);
    double *pp = malloc(sizeof(double) * (size_t)reps), *tg = malloc(sizeof(double) * (size_t)reps);
    int rc = 1;
    if (!tokens || !pos || !seq || !pp || !tg) goto done;
    uint64_t state = 0x9e3779b97f4a7c15ull; /* fixed pseudo-random tokens: same work every run */
    for (int32_t i = 0; i < longest; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (reason_token)((state >> 33) % (uint64_t)info.n_vocab);
    }
    double secs;
    if (run(ctx, tokens, 8, 1, pos, seq, &secs) != 0) goto fail; /* warm-up: page in weights */
    for (int32_t r = 0; r < reps; r++) {
        if (run(ctx, tokens, n_prompt, 0, pos, seq, &secs) != 0) goto fail;
        pp[r] = n_prompt / secs;
        if (run(ctx, tokens, n_gen, 1, pos, seq, &secs) != 0) goto fail;
        tg[r] = n_gen / secs;
    }
    const double pp_med = median(pp, reps), tg_med = median(tg, reps);
    const double gbs = tg_med * (double)info.weight_bytes / 1e9;
    if (json) {
        printf("{\"model\":\"%s\",\"weight_bytes\":%llu,\"threads\":%d,\"reps\":%d,"
               "\"pp\":{\"tokens\":%d,\"tokens_per_s\":%.2f},"
               "\"tg\":{\"tokens\":%d,\"tokens_per_s\":%.2f,\"weight_gb_per_s\":%.2f}}\n",
               info.name, (unsigned long long)info.weight_bytes, n_threads, reps, n_prompt, pp_med,
               n_gen, tg_med, gbs);
    } else {
        printf("model: %s (%s, %.1f MB of weights)\n", info.name, info.architecture,
               info.weight_bytes / 1e6);
        printf("| test  | tokens/s (median of %d) | weights GB/s |\n|-------|---------|------|\n", reps);
        printf("| pp%-3d | %8.2f | |\n", n_prompt, pp_med);
        printf("| tg%-3d | %8.2f | %.2f |\n", n_gen, tg_med, gbs);
    }
    rc = 0;
    goto done;
fail:
    rc = cli_fail("reason-bench", "decode");
done:
    free(tokens);
    free(pos);
    free(seq);
    free(pp);
    free(tg);
    reason_context_free(ctx);
    reason_model_free(model);
    return rc;
}
