/* reason-bench — prompt processing (ppN) and generation (tgN) speed of a model, median of
 * several runs, in tokens/s and in GB/s of memory streamed per generated token (weights plus the
 * keys and values attention reads), against a memory-bandwidth figure.
 *
 *   reason-bench [-m MODEL] [-p 512] [-n 128] [-r 3] [-t THREADS] [--depth N] [--parallel K]
 *                [--bw GBPS] [--json] [--fast] [--kv f16|f32|bf16|q8]
 *                [--weights auto|mapped|copied] [--unpacked kept|per-step]
 *
 * --depth N     generation starts with N tokens already in the cache (decode at depth N), and
 *               a prompt of P tokens is also timed after N cached ones ("ppP @ depth N": one
 *               batch of positions N .. N+P-1, attention over the cache as well as the prompt)
 * --parallel K  K sequences forked from one prompt of N (depth) tokens decode together, one token
 *               each per batch, each with its logits; tokens/s is the aggregate of all K
 * --bw GBPS     the machine's memory bandwidth, for "% of bandwidth"; without it a quick probe
 *               (a read of 512 MiB on THREADS threads, best of 3) measures it
 *
 * Bytes per generation step = weight bytes + KV bytes per cached position (full-attention
 * layers only) times the positions read — the prompt the K forks share once (the CPU attention
 * reads its blocks once per step for all of them), each trace's own positions once per trace —
 * + K * 2 * the recurrent slot
 * (hybrid models such as qwen35: every DeltaNet layer reads and rewrites its d_k x d_v state per
 * value head and its conv window, F32, once per token). The KV bytes per position and the
 * recurrent slot size come from reason_context_get_stats (kv_bytes / kv_slots_total, rec_bytes /
 * rec_slots_total), so they follow the context's own layout (KV type, which layers hold KV). */
#include "cli.h"
#include "reason.h"

#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Decodes tokens[0..n) into sequence 0 from position 0, in batches of at most n_batch. */
static int prefill(reason_context *ctx, const reason_token *tokens, int32_t start, int32_t n,
                   int32_t n_batch, int32_t *pos_buf, int32_t *seq_buf) {
    for (int32_t i0 = 0; i0 < n; i0 += n_batch) {
        const int32_t nb = n - i0 < n_batch ? n - i0 : n_batch;
        for (int32_t i = 0; i < nb; i++) pos_buf[i] = start + i0 + i, seq_buf[i] = 0;
        const reason_batch b = {nb, tokens + i0, pos_buf, seq_buf, NULL};
        if (reason_decode(ctx, &b) != REASON_OK) return -1;
    }
    return 0;
}

/* Generation: n steps from position depth, each a batch of one token for each of k sequences,
 * with the logits of every one of them (each trace samples its next token). */
static int generate(reason_context *ctx, const reason_token *tokens, int32_t depth, int32_t n,
                    int32_t k, int32_t *pos_buf, int32_t *seq_buf, reason_token *tok_buf,
                    int8_t *want_buf) {
    for (int32_t i = 0; i < n; i++) {
        for (int32_t s = 0; s < k; s++) {
            pos_buf[s] = depth + i;
            seq_buf[s] = s;
            tok_buf[s] = tokens[(i + 7 * s) % n];
            want_buf[s] = 1;
        }
        const reason_batch b = {k, tok_buf, pos_buf, seq_buf, want_buf};
        if (reason_decode(ctx, &b) != REASON_OK) return -1;
    }
    return 0;
}

/* The whole string a number within [min, max]: 0, else -1. */
static int opt_int(const char *s, long min, long max, int32_t *out) {
    char *end;
    const long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > max) return -1;
    *out = (int32_t)v;
    return 0;
}

static int opt_float(const char *s, double min, double max, float *out) {
    char *end;
    const double v = strtod(s, &end);
    if (end == s || *end || !(v >= min && v <= max)) return -1;
    *out = (float)v;
    return 0;
}

typedef struct probe_arg {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} probe_arg;

static void *probe_read(void *a) {
    probe_arg *pa = a;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= pa->n; i += 4) {
        s0 += pa->p[i];
        s1 += pa->p[i + 1];
        s2 += pa->p[i + 2];
        s3 += pa->p[i + 3];
    }
    pa->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* GB/s of a plain read of 512 MiB split over n_threads threads, best of 3 (tools/membw.c is the
 * fuller measurement). 0 when memory or threads are short. */
static double probe_bandwidth(int n_threads) {
    const size_t bytes = (size_t)512 << 20, n = bytes / 8;
    uint64_t *buf = malloc(bytes);
    if (!buf || n_threads < 1 || n_threads > 256) {
        free(buf);
        return 0.0;
    }
    for (size_t i = 0; i < n; i++) buf[i] = i;
    pthread_t th[256];
    probe_arg pa[256];
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        const double t0 = cli_now();
        int started = 0;
        for (int t = 0; t < n_threads; t++) {
            pa[t] = (probe_arg){buf + n / n_threads * t, n / n_threads, 0};
            if (t > 0 && pthread_create(&th[t], NULL, probe_read, &pa[t]) != 0) break;
            started = t + 1;
        }
        probe_read(&pa[0]);
        for (int t = 1; t < started; t++) pthread_join(th[t], NULL);
        const double dt = cli_now() - t0;
        if (started == n_threads && dt < best) best = dt;
    }
    volatile uint64_t sink = pa[0].sum;
    (void)sink;
    free(buf);
    return best < 1e30 ? (double)bytes / best / 1e9 : 0.0;
}

/* *out = the index of s among the n names (an enum's value); 1 when it is none of them. */
static int opt_name(const char *s, const char *const *names, int32_t n, int32_t *out) {
    for (int32_t i = 0; i < n; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    return 1;
}

int main(int argc, char **argv) {
    const char *model_path = NULL;
    int32_t n_prompt = 512, n_gen = 128, reps = 3, n_threads = 0, json = 0, depth = 0, par = 1;
    int32_t fast = 0, kv_type = REASON_KV_F16, weights = REASON_WEIGHTS_AUTO;
    int32_t unpacked = REASON_UNPACKED_KEPT;
    float bw = 0.0f;
    static const struct option longs[] = {
        {"model", required_argument, 0, 'm'},    {"prompt", required_argument, 0, 'p'},
        {"gen", required_argument, 0, 'n'},      {"reps", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'},  {"depth", required_argument, 0, 'd'},
        {"parallel", required_argument, 0, 'k'}, {"bw", required_argument, 0, 'b'},
        {"json", no_argument, 0, 'j'},           {"fast", no_argument, 0, 'f'},
        {"kv", required_argument, 0, 'v'},       {"weights", required_argument, 0, 'w'},
        {"unpacked", required_argument, 0, 'u'}, {0, 0, 0, 0}};
    static const char *const kv_names[] = {"f16", "f32", "bf16", "q8"}; /* enum reason_kv_type */
    static const char *const weight_names[] = {"auto", "mapped", "copied"}; /* reason_weights */
    static const char *const unpacked_names[] = {"kept", "per-step"}; /* reason_unpacked_weights */
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "m:p:n:r:t:", longs, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': bad |= opt_int(optarg, 1, 1 << 20, &n_prompt); break;
        case 'n': bad |= opt_int(optarg, 1, 1 << 20, &n_gen); break;
        case 'r': bad |= opt_int(optarg, 1, 100, &reps); break;
        case 't': bad |= opt_int(optarg, 0, 256, &n_threads); break;
        case 'd': bad |= opt_int(optarg, 0, 1 << 24, &depth); break;
        case 'k': bad |= opt_int(optarg, 1, 4096, &par); break;
        case 'b': bad |= opt_float(optarg, 0.0, 1e6, &bw); break;
        case 'j': json = 1; break;
        case 'f': fast = 1; break;
        case 'v': bad |= opt_name(optarg, kv_names, 4, &kv_type); break;
        case 'w': bad |= opt_name(optarg, weight_names, 3, &weights); break;
        case 'u': bad |= opt_name(optarg, unpacked_names, 2, &unpacked); break;
        default: bad = 1; break;
        }
    }
    if (bad) {
        fprintf(stderr,
                "usage: reason-bench [-m MODEL] [-p 512] [-n 128] [-r 3] [-t N] [--depth N]\n"
                "                    [--parallel K] [--bw GBPS] [--json] [--fast] [--kv TYPE]\n"
                "                    [--weights auto|mapped|copied] [--unpacked kept|per-step]\n"
                "  --fast: REASON_PRECISION_FAST (8-bit activations for integer-type weights)\n"
                "  --kv: the KV cache type, f16 (default), f32, bf16 or q8 (8-bit)\n"
                "  --weights: weights in the file's map or copied in 2 MiB pages (auto)\n"
                "  --unpacked: parallel steps keep the weights unpacked (kept) or unpack them\n"
                "              at every step (per-step)\n");
        return 2;
    }
    if (!model_path) model_path = cli_default_model();
    if (!model_path) {
        fprintf(stderr,
                "reason-bench: no model given and the default is missing: run tools/fetch-model\n");
        return 1;
    }
    reason_model *model = NULL;
    reason_context *ctx = NULL;
    reason_model_params mp;
    reason_model_params_default(&mp);
    mp.weights = weights;
    if (reason_model_load(model_path, &mp, &model) != REASON_OK)
        return cli_fail("reason-bench", model_path);
    reason_model_info info;
    reason_model_get_info(model, &info);
    reason_context_params cp;
    reason_context_params_default(&cp);
    const int32_t gen_prefix = depth > 0 ? depth : (par > 1 ? 1 : 0); /* K forks need a parent */
    int32_t longest = n_prompt > gen_prefix + n_gen ? n_prompt : gen_prefix + n_gen;
    if (depth > 0 && depth + n_prompt > longest) longest = depth + n_prompt; /* ppP @ depth N */
    /* the depth prefill goes in batches of up to 512 (or the prompt's size, if larger) */
    int32_t n_batch = n_prompt > par ? n_prompt : par;
    if (gen_prefix > n_batch) n_batch = gen_prefix < 512 ? gen_prefix : 512;
    cp.n_ctx = (uint32_t)(longest + (int64_t)(par - 1) * (n_gen + 16) + 16);
    cp.n_batch = (uint32_t)n_batch;
    cp.n_seq_max = (uint32_t)par;
    cp.n_outputs_max = par;
    cp.n_threads = n_threads;
    cp.precision = fast ? REASON_PRECISION_FAST : REASON_PRECISION_EXACT;
    cp.kv_type = kv_type;
    cp.unpacked_weights = unpacked;
    if (reason_context_create(model, &cp, &ctx) != REASON_OK) {
        reason_model_free(model);
        return cli_fail("reason-bench", "context");
    }
    /* KV bytes per cached position (full-attention layers only) and recurrent slot per sequence */
    reason_context_stats cs;
    reason_context_get_stats(ctx, &cs);
    const double kv_slot_bytes = cs.kv_slots_total ? (double)cs.kv_bytes / cs.kv_slots_total : 0.0;
    const double rec_seq_bytes = cs.rec_slots_total ? (double)cs.rec_bytes / cs.rec_slots_total
                                                    : 0.0;
    const int32_t n_tok = longest > n_batch ? longest : n_batch;
    reason_token *tokens = malloc(sizeof *tokens * (size_t)n_tok);
    reason_token *tok_buf = malloc(sizeof *tok_buf * (size_t)n_batch);
    int8_t *want = malloc((size_t)n_batch);
    int32_t *pos = malloc(sizeof *pos * (size_t)n_batch);
    int32_t *seq = calloc((size_t)n_batch, sizeof *seq);
    double *pp = malloc(sizeof(double) * (size_t)reps), *tg = malloc(sizeof(double) * (size_t)reps);
    double *ppd = malloc(sizeof(double) * (size_t)reps); /* ppP @ depth N */
    int rc = 1;
    if (!tokens || !tok_buf || !want || !pos || !seq || !pp || !tg || !ppd) goto done;
    uint64_t state = 0x9e3779b97f4a7c15ull; /* fixed pseudo-random tokens: same work every run */
    for (int32_t i = 0; i < n_tok; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (reason_token)((state >> 33) % (uint64_t)info.n_vocab);
    }
    if (reason_seq_free(ctx, 0) != REASON_OK || prefill(ctx, tokens, 0, 8, n_batch, pos, seq) != 0)
        goto fail; /* warm-up: page in weights */
    for (int32_t r = 0; r < reps; r++) {
        for (int32_t s = 0; s < par; s++)
            if (reason_seq_free(ctx, s) != REASON_OK) goto fail;
        double t0 = cli_now();
        if (prefill(ctx, tokens, 0, n_prompt, n_batch, pos, seq) != 0) goto fail;
        pp[r] = n_prompt / (cli_now() - t0);
        if (reason_seq_free(ctx, 0) != REASON_OK) goto fail;
        if (gen_prefix > 0 && prefill(ctx, tokens, 0, gen_prefix, n_batch, pos, seq) != 0)
            goto fail;
        if (depth > 0) { /* the prompt after the cached depth, one batch, then back to depth */
            t0 = cli_now();
            if (prefill(ctx, tokens, depth, n_prompt, n_batch, pos, seq) != 0) goto fail;
            ppd[r] = n_prompt / (cli_now() - t0);
            if (reason_seq_truncate(ctx, 0, depth) != REASON_OK &&
                (reason_seq_free(ctx, 0) != REASON_OK ||
                 prefill(ctx, tokens, 0, depth, n_batch, pos, seq) != 0))
                goto fail; /* hybrid models without a checkpoint: prefill the depth again */
        }
        for (int32_t s = 1; s < par; s++)
            if (reason_seq_fork(ctx, 0, s) != REASON_OK) goto fail;
        t0 = cli_now();
        if (generate(ctx, tokens, gen_prefix, n_gen, par, pos, seq, tok_buf, want) != 0) goto fail;
        tg[r] = (double)n_gen * par / (cli_now() - t0);
    }
    /* state held after the last run: K traces forked from one prefix, n_gen tokens each */
    reason_context_get_stats(ctx, &cs);
    const double held_kv = (double)cs.kv_slots_used * kv_slot_bytes;
    const double held_rec = (double)cs.rec_slots_used * rec_seq_bytes; /* forks share a slot */
    const double pp_med = median(pp, reps), tg_med = median(tg, reps);
    const double ppd_med = depth > 0 ? median(ppd, reps) : 0.0;
    /* sliding-window layers read at most their window: what each trace still holds of the
     * windowed pool after the run bounds it */
    const double swa_slot_bytes = cs.swa_slots_total ? (double)cs.swa_bytes / cs.swa_slots_total
                                                     : 0.0;
    const double avg_pos = gen_prefix + (n_gen + 1) / 2.0;
    const double swa_held = (double)cs.swa_slots_used / par;
    const double shared_pos = par > 1 ? gen_prefix : 0.0; /* the forks' common prompt */
    const double kv_step = kv_slot_bytes * (shared_pos + par * (avg_pos - shared_pos)) +
                           par * swa_slot_bytes * (swa_held < avg_pos ? swa_held : avg_pos);
    const double rec_step = par * 2.0 * rec_seq_bytes; /* read + write */
    /* a mixture of experts reads only the selected experts' weights per token (for parallel
     * traces the union of their experts: active bytes are then a lower bound) */
    const double weights_step = (double)info.active_weight_bytes;
    const double step_bytes = weights_step + kv_step + rec_step;
    const double steps_per_s = tg_med / par;
    const double gbs = steps_per_s * step_bytes / 1e9;
    const int probed = bw <= 0.0f;
    const int threads_used = n_threads > 0 ? n_threads : 0;
    if (probed) {
        int pt = threads_used;
        if (pt == 0) pt = (int)sysconf(_SC_NPROCESSORS_ONLN); /* the context's "all cores" */
        bw = (float)probe_bandwidth(pt);
    }
    const double pct = bw > 0 ? 100.0 * gbs / bw : 0.0;
    if (json) {
        printf("{\"model\":\"%s\",\"weight_bytes\":%llu,\"active_weight_bytes\":%llu,"
               "\"threads\":%d,\"reps\":%d,"
               "\"pp\":{\"tokens\":%d,\"tokens_per_s\":%.2f},"
               "\"pp_depth\":{\"tokens\":%d,\"depth\":%d,\"tokens_per_s\":%.2f},"
               "\"tg\":{\"tokens\":%d,\"depth\":%d,\"parallel\":%d,\"tokens_per_s\":%.2f,"
               "\"bytes_per_step\":%.0f,\"kv_bytes_per_step\":%.0f,"
               "\"recurrent_bytes_per_step\":%.0f,\"gb_per_s\":%.2f,"
               "\"weight_gb_per_s\":%.2f},"
               "\"state\":{\"kv_bytes_per_position\":%.0f,\"recurrent_bytes_per_seq\":%.0f,"
               "\"kv_slots_used\":%llu,\"kv_bytes_held\":%.0f,\"recurrent_bytes_held\":%.0f,"
               "\"bytes_per_trace\":%.0f,\"unpacked_weight_bytes\":%llu},"
               "\"bandwidth\":{\"gb_per_s\":%.2f,\"probed\":%s,\"percent\":%.1f}}\n",
               info.name, (unsigned long long)info.weight_bytes,
               (unsigned long long)info.active_weight_bytes, n_threads, reps, n_prompt, pp_med,
               n_prompt, depth, ppd_med,
               n_gen, gen_prefix, par, tg_med, step_bytes, kv_step, rec_step, gbs,
               steps_per_s * weights_step / 1e9, kv_slot_bytes, rec_seq_bytes,
               (unsigned long long)cs.kv_slots_used, held_kv, held_rec,
               (held_kv + held_rec) / par, (unsigned long long)cs.unpacked_weight_bytes, bw,
               probed ? "true" : "false", pct);
    } else {
        printf("model: %s (%s, %.1f MB of weights", info.name, info.architecture,
               info.weight_bytes / 1e6);
        if (info.n_expert)
            printf("; %d of %d experts per token: %.1f MB read per token", info.n_expert_used,
                   info.n_expert, info.active_weight_bytes / 1e6);
        printf("), %d threads\n", n_threads);
        printf("| test | tokens/s (median of %d) | MB per step (weights + KV + recurrent) | GB/s "
               "| %% of %.1f "
               "GB/s%s |\n",
               reps, bw, probed ? " (probed)" : "");
        printf("|------|------|------|------|------|\n");
        printf("| pp%d | %.2f | | | |\n", n_prompt, pp_med);
        if (depth > 0) printf("| pp%d @ depth %d | %.2f | | | |\n", n_prompt, depth, ppd_med);
        printf("| tg%d", n_gen);
        if (gen_prefix) printf(" @ depth %d", gen_prefix);
        if (par > 1) printf(" x %d parallel", par);
        printf(" | %.2f | %.1f + %.1f + %.1f | %.2f | %.0f%% |\n", tg_med,
               weights_step / 1e6, kv_step / 1e6, rec_step / 1e6, gbs, pct);
        printf("state: %.0f KV bytes per position, %.2f MB recurrent slot per sequence; held after "
               "the last run: %.1f MB KV (%llu positions) + %.1f MB recurrent = %.1f MB per "
               "trace\n",
               kv_slot_bytes, rec_seq_bytes / 1e6, held_kv / 1e6,
               (unsigned long long)cs.kv_slots_used, held_rec / 1e6,
               (held_kv + held_rec) / par / 1e6);
        if (cs.unpacked_weight_bytes)
            printf("weights kept unpacked for the parallel steps: %.1f MB\n",
                   cs.unpacked_weight_bytes / 1e6);
    }
    rc = 0;
    goto done;
fail:
    rc = cli_fail("reason-bench", "decode");
done:
    free(tokens);
    free(tok_buf);
    free(want);
    free(pos);
    free(seq);
    free(pp);
    free(ppd);
    free(tg);
    reason_context_free(ctx);
    reason_model_free(model);
    return rc;
}
