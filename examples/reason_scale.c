/* reason-scale — accuracy against compute: runs a problem set at every thinking budget × trace
 * count, majority-votes each problem, and scores the winner against the known integer answer.
 *
 *   reason-scale [-m MODEL] --problems FILE [--budgets 64,256] [--traces 1,8,16] [--limit N]
 *                [--out DIR]
 *
 * Writes DIR/scale.tsv (one row per configuration), DIR/runs.tsv (one row per problem run) and
 * DIR/scale.svg (accuracy against generated tokens per problem, log scale, one line per budget),
 * and prints the table as Markdown. Problems are JSON lines {"id", "question", "answer"} with an
 * integer answer (tools/gen_problems.py writes such a file). */
#include "cli.h"
#include "reason.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "reason-scale"

typedef struct problem {
    char *id;
    char *question;
    long long answer;
} problem;

typedef struct options {
    const char *model;
    const char *problems;
    const char *out_dir;
    int32_t *budgets, n_budgets;
    int32_t *traces, n_traces;
    int32_t limit; /* 0: all */
    int32_t answer_budget;
    int32_t n_threads;
    int32_t n_ctx; /* 0: sized from the largest configuration */
    int32_t extract;
    float temperature;
    uint64_t seed;
} options;

/* One budget × trace-count configuration over the whole problem set. */
typedef struct config_result {
    int32_t budget, traces, problems, correct;
    int64_t tokens;
    double seconds;
} config_result;

static void usage(FILE *f) {
    fprintf(f,
            "usage: " PROG " [-m MODEL] --problems FILE [options]\n"
            "  -m, --model PATH        GGUF model (default: models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
            "  -p, --problems FILE     JSON lines {\"id\", \"question\", \"answer\"} (integer answers)\n"
            "  -b, --budgets LIST      thinking budgets in tokens (default 64,256)\n"
            "  -n, --traces LIST       traces per problem, majority vote (default 1,8,16)\n"
            "  -l, --limit N           only the first N problems\n"
            "  -o, --out DIR           where scale.tsv, runs.tsv and scale.svg go (default scale-out)\n"
            "      --answer-budget N   most answer tokens per trace (default 128)\n"
            "      --extract KIND      number|auto (default number: the last number of the answer)\n"
            "      --temp T            temperature (default 0.6)\n"
            "  -s, --seed N            problem k, trace i samples with seed + 1024 k + i (default 42)\n"
            "  -t, --threads N         CPU threads (default: all cores)\n"
            "  -c, --ctx N             KV slots shared by all traces (default: from the budgets)\n");
}

static int parse_options(int argc, char **argv, options *o) {
    enum { O_ANSWER = 256, O_EXTRACT, O_TEMP };
    static const struct option longs[] = {
        {"model", required_argument, 0, 'm'},   {"problems", required_argument, 0, 'p'},
        {"budgets", required_argument, 0, 'b'}, {"traces", required_argument, 0, 'n'},
        {"limit", required_argument, 0, 'l'},   {"out", required_argument, 0, 'o'},
        {"answer-budget", required_argument, 0, O_ANSWER},
        {"extract", required_argument, 0, O_EXTRACT},
        {"temp", required_argument, 0, O_TEMP}, {"seed", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'}, {"ctx", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *budgets = "64,256", *traces = "1,8,16";
    o->out_dir = "scale-out";
    o->answer_budget = 128;
    o->extract = REASON_EXTRACT_LAST_NUMBER;
    o->temperature = 0.6f;
    o->seed = 42;
    int c, bad = 0;
    const char *what = NULL;
    while (!bad && (c = getopt_long(argc, argv, "m:p:b:n:l:o:s:t:c:h", longs, NULL)) != -1) {
        const char *arg = optarg;
        switch (c) {
        case 'm': o->model = arg; break;
        case 'p': o->problems = arg; break;
        case 'b': budgets = arg; break;
        case 'n': traces = arg; break;
        case 'l': bad = cli_parse_int(arg, 1, INT32_MAX, &o->limit), what = "--limit"; break;
        case 'o': o->out_dir = arg; break;
        case O_ANSWER: bad = cli_parse_int(arg, 1, INT32_MAX, &o->answer_budget), what = "--answer-budget"; break;
        case O_EXTRACT:
            if (strcmp(arg, "number") == 0) o->extract = REASON_EXTRACT_LAST_NUMBER;
            else if (strcmp(arg, "auto") == 0) o->extract = REASON_EXTRACT_AUTO;
            else bad = 1, what = "--extract";
            break;
        case O_TEMP: bad = cli_parse_float(arg, 0.0, 100.0, &o->temperature), what = "--temp"; break;
        case 's': {
            char *end;
            o->seed = strtoull(arg, &end, 10);
            bad = !*arg || *end || *arg == '-', what = "--seed";
            break;
        }
        case 't': bad = cli_parse_int(arg, 0, 4096, &o->n_threads), what = "-t"; break;
        case 'c': bad = cli_parse_int(arg, 16, INT32_MAX, &o->n_ctx), what = "-c"; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (bad) {
        fprintf(stderr, PROG ": bad value for %s: '%s'\n", what, optarg);
        return -1;
    }
    if (optind != argc || !o->problems || !o->out_dir[0]) return -1;
    o->n_budgets = cli_parse_int_list(budgets, 0, 1 << 20, &o->budgets);
    if (o->n_budgets < 0) {
        fprintf(stderr, PROG ": bad --budgets list '%s' (comma-separated tokens, >= 0)\n", budgets);
        return -1;
    }
    o->n_traces = cli_parse_int_list(traces, 1, 1024, &o->traces);
    if (o->n_traces < 0) {
        fprintf(stderr, PROG ": bad --traces list '%s' (comma-separated counts, 1..1024)\n", traces);
        return -1;
    }
    return 0;
}

/* ---- answers --------------------------------------------------------------------------------- */

/* An answer as an integer: separators (',', spaces, '_'), a leading '$' and a trailing '.' are
 * ignored; "12.0" counts as 12, "12.5" and words as no integer. 0 on success. */
static int answer_to_int(const char *s, long long *out) {
    char buf[64];
    size_t n = 0;
    while (*s == ' ' || *s == '$') s++;
    for (; *s; s++) {
        if (*s == ',' || *s == ' ' || *s == '_') continue;
        if (n + 1 >= sizeof buf) return -1;
        buf[n++] = *s;
    }
    while (n > 0 && buf[n - 1] == '.') n--;
    buf[n] = '\0';
    if (n == 0) return -1;
    char *end;
    errno = 0;
    const double v = strtod(buf, &end);
    if (errno || *end || !isfinite(v) || fabs(v) > 9e15 || v != floor(v)) return -1;
    *out = (long long)v;
    return 0;
}

/* ---- problems -------------------------------------------------------------------------------- */

static void free_problems(problem *ps, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        free(ps[i].id);
        free(ps[i].question);
    }
    free(ps);
}

/* Reads JSON lines; blank lines are skipped. Errors name the file, line and column. */
static int load_problems(const char *path, int32_t limit, problem **out, int32_t *out_n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return -1;
    }
    problem *ps = NULL;
    int32_t n = 0, cap = 0, line_no = 0;
    char *line = NULL;
    size_t line_cap = 0;
    int rc = -1;
    while ((!limit || n < limit) && getline(&line, &line_cap, f) != -1) {
        line_no++;
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        if (!j) {
            fprintf(stderr, PROG ": %s:%d:%d: %s\n", path, line_no, err.column, err.text);
            goto done;
        }
        const json_t *q = json_object_get(j, "question"), *a = json_object_get(j, "answer"),
                     *id = json_object_get(j, "id");
        long long answer = 0;
        int ok = json_is_string(q);
        if (json_is_integer(a)) {
            answer = json_integer_value(a);
        } else if (json_is_real(a)) {
            const double v = json_real_value(a);
            ok = ok && v == floor(v) && fabs(v) <= 9e15;
            answer = ok ? (long long)v : 0;
        } else {
            ok = ok && json_is_string(a) && answer_to_int(json_string_value(a), &answer) == 0;
        }
        if (!ok) {
            fprintf(stderr, PROG ": %s:%d: needs a string \"question\" and an integer \"answer\"\n",
                    path, line_no);
            json_decref(j);
            goto done;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            problem *bigger = realloc(ps, sizeof *ps * (size_t)cap);
            if (!bigger) {
                json_decref(j);
                fprintf(stderr, PROG ": out of memory\n");
                goto done;
            }
            ps = bigger;
        }
        char id_buf[32];
        if (json_is_integer(id)) snprintf(id_buf, sizeof id_buf, "%lld", (long long)json_integer_value(id));
        else if (!json_is_string(id)) snprintf(id_buf, sizeof id_buf, "line-%d", line_no);
        ps[n].id = strdup(json_is_string(id) ? json_string_value(id) : id_buf);
        ps[n].question = strdup(json_string_value(q));
        ps[n].answer = answer;
        n++;
        json_decref(j);
        if (!ps[n - 1].id || !ps[n - 1].question) {
            fprintf(stderr, PROG ": out of memory\n");
            goto done;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        goto done;
    }
    if (n == 0) {
        fprintf(stderr, PROG ": %s: no problems\n", path);
        goto done;
    }
    rc = 0;
done:
    free(line);
    fclose(f);
    if (rc == 0) {
        *out = ps;
        *out_n = n;
    } else {
        free_problems(ps, n);
    }
    return rc;
}

/* ---- progress -------------------------------------------------------------------------------- */

typedef struct progress {
    int32_t budget, traces, k, n, correct;
    int64_t tokens; /* generated in this configuration so far, live */
    double t0, last;
} progress;

static void progress_draw(const progress *pr, int final, const char *detail) {
    const double secs = cli_now() - pr->t0;
    const double acc = pr->k ? 100.0 * pr->correct / pr->k : 0.0;
    const double tps = secs > 1e-9 ? pr->tokens / secs : 0.0;
    if (cli_stderr_is_tty()) {
        char bar[21];
        const int fill = pr->n ? (int)(20LL * pr->k / pr->n) : 0;
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = '\0';
        cli_status(final, "budget %d x %d traces [%s] %d/%d acc %.1f%% %.0f tok/s", pr->budget,
                   pr->traces, bar, pr->k, pr->n, acc, tps);
    } else {
        cli_status(final, "budget %d x %d traces: %d/%d %s | acc %.1f%% | %.0f tok/s", pr->budget,
                   pr->traces, pr->k, pr->n, detail ? detail : "", acc, tps);
    }
}

static int32_t on_token(void *user, int32_t trace, int32_t phase, const reason_token_choice *c) {
    (void)trace;
    (void)phase;
    (void)c;
    progress *pr = user;
    pr->tokens++;
    const double t = cli_now();
    if (t - pr->last >= 0.1) {
        pr->last = t;
        progress_draw(pr, 0, NULL);
    }
    return REASON_ACTION_CONTINUE;
}

/* ---- outputs --------------------------------------------------------------------------------- */

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Free text in a TSV cell: tabs and line breaks become spaces. */
static void tsv_field(FILE *f, const char *s) {
    for (; *s; s++) fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

static double tokens_per_problem(const config_result *r) {
    return r->problems ? (double)r->tokens / r->problems : 0.0;
}

/* "500", "2k", "1.5M": tick labels. */
static void short_number(double v, char *buf, size_t cap) {
    if (v >= 1e6) snprintf(buf, cap, "%gM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, cap, "%gk", v / 1e3);
    else snprintf(buf, cap, "%g", v);
}

/* Accuracy (0–100 %) against generated tokens per problem on a log axis; one polyline per budget
 * through its trace counts, each point labelled "n=traces". */
static int write_svg(const char *path, const char *subtitle, const options *o,
                     const config_result *rs, int32_t n_rs) {
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                         "#9467bd", "#8c564b", "#e377c2", "#17becf"};
    const int W = 800, H = 510, L = 80, R = W - 190, T = 70, B = H - 70;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return -1;
    }
    double lo_v = INFINITY, hi_v = 0;
    for (int32_t i = 0; i < n_rs; i++) {
        const double v = fmax(tokens_per_problem(&rs[i]), 1.0);
        lo_v = fmin(lo_v, v);
        hi_v = fmax(hi_v, v);
    }
    if (!(lo_v <= hi_v)) lo_v = hi_v = 1;
    int lo = (int)floor(log10(lo_v)), hi = (int)ceil(log10(hi_v));
    if (hi <= lo) hi = lo + 1;
    const int decades = hi - lo;
#define XPOS(v) (L + (R - L) * (log10(fmax((v), 1.0)) - lo) / decades)
#define YPOS(pct) (B - (B - T) * (pct) / 100.0)

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
               "font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"26\" text-anchor=\"middle\" font-size=\"17\" "
               "font-weight=\"bold\">Accuracy vs. tokens spent</text>\n"
               "<text x=\"%d\" y=\"45\" text-anchor=\"middle\" font-size=\"12\" fill=\"#444\">",
            W / 2, W / 2);
    xml_text(f, subtitle);
    fputs("</text>\n", f);

    /* grid and ticks: y every 10 %, x at each decade with minor lines at 2..9 (labelled at 2 and 5
     * when the axis spans at most two decades) */
    fputs("<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n", f);
    for (int p = 0; p <= 100; p += 10)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", L, YPOS(p), R, YPOS(p));
    for (int d = lo; d <= hi; d++)
        for (int m = 1; m <= 9 && (d < hi || m == 1); m++) {
            const double x = XPOS(m * pow(10, d));
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"%s/>\n", x, T, x, B,
                    m == 1 ? " stroke=\"#c8c8c8\"" : "");
        }
    fputs("</g>\n", f);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n",
            L, T, R - L, B - T);
    fputs("<g text-anchor=\"end\">\n", f);
    for (int p = 0; p <= 100; p += 10) {
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>", L - 5,
                YPOS(p), L, YPOS(p));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\">%d%%</text>\n", L - 8, YPOS(p) + 4, p);
    }
    fputs("</g>\n<g text-anchor=\"middle\">\n", f);
    for (int d = lo; d <= hi; d++)
        for (int m = 1; m <= 9 && (d < hi || m == 1); m++) {
            const int major = m == 1, labelled = major || (decades <= 2 && (m == 2 || m == 5));
            const double v = m * pow(10, d), x = XPOS(v);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>", x, B, x,
                    B + (major ? 6 : 3));
            if (labelled) {
                char label[32];
                short_number(v, label, sizeof label);
                fprintf(f, "<text x=\"%.1f\" y=\"%d\"%s>%s</text>", x, B + 20,
                        major ? "" : " fill=\"#666\"", label);
            }
            fputc('\n', f);
        }
    fputs("</g>\n", f);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">generated tokens per problem, all "
               "traces (log scale)</text>\n",
            (L + R) / 2, B + 45);
    fprintf(f, "<text transform=\"translate(%d,%d) rotate(-90)\" text-anchor=\"middle\">accuracy "
               "(majority vote)</text>\n",
            L - 50, (T + B) / 2);

    /* one series per budget, points in the order of --traces; labels above the points for even
     * series and below for odd ones, so that neighbouring lines' labels collide less */
    for (int32_t b = 0; b < o->n_budgets; b++) {
        const char *color = colors[b % (int)(sizeof colors / sizeof colors[0])];
        fprintf(f, "<g>\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
        for (int32_t i = 0; i < n_rs; i++)
            if (rs[i].budget == o->budgets[b])
                fprintf(f, "%.1f,%.1f ", XPOS(tokens_per_problem(&rs[i])),
                        YPOS(100.0 * rs[i].correct / rs[i].problems));
        fputs("\"/>\n", f);
        for (int32_t i = 0; i < n_rs; i++) {
            if (rs[i].budget != o->budgets[b]) continue;
            const double x = XPOS(tokens_per_problem(&rs[i])),
                         y = YPOS(100.0 * rs[i].correct / rs[i].problems);
            const double ly = b % 2 && y + 17 < B - 2 ? y + 17 : y - 7;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\" stroke=\"white\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"%s\" stroke=\"white\" "
                       "stroke-width=\"3\" paint-order=\"stroke\">n=%d</text>\n",
                    x, y, color, x + 7, ly, color, rs[i].traces);
        }
        fputs("</g>\n", f);
    }

    /* legend, right of the plot */
    const int lx = R + 20;
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">thinking budget</text>\n", lx, T + 10);
    for (int32_t b = 0; b < o->n_budgets; b++) {
        const char *color = colors[b % (int)(sizeof colors / sizeof colors[0])];
        const int y = T + 32 + 22 * b;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>"
                   "<circle cx=\"%d\" cy=\"%d\" r=\"4.5\" fill=\"%s\"/>"
                   "<text x=\"%d\" y=\"%d\">%d tokens</text>\n",
                lx, y, lx + 28, y, color, lx + 14, y, color, lx + 36, y + 4, o->budgets[b]);
    }
    const int ny = T + 32 + 22 * o->n_budgets + 12;
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">n = traces per problem</text>\n"
               "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">answer budget %d tokens</text>\n"
               "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">temperature %g</text>\n",
            lx, ny, lx, ny + 16, o->answer_budget, lx, ny + 32, o->temperature);
    fputs("</svg>\n", f);
#undef XPOS
#undef YPOS
    if (fclose(f) != 0) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_tsv(const char *path, const config_result *rs, int32_t n_rs) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "budget\ttraces\tproblems\tcorrect\taccuracy\ttokens\tseconds\n");
    for (int32_t i = 0; i < n_rs; i++)
        fprintf(f, "%d\t%d\t%d\t%d\t%.4f\t%lld\t%.2f\n", rs[i].budget, rs[i].traces,
                rs[i].problems, rs[i].correct, (double)rs[i].correct / rs[i].problems,
                (long long)rs[i].tokens, rs[i].seconds);
    if (fclose(f) != 0) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void print_markdown(const config_result *rs, int32_t n_rs) {
    printf("| thinking budget | traces | problems | correct | accuracy | tokens | tokens/problem "
           "| seconds | tokens/s |\n"
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int32_t i = 0; i < n_rs; i++)
        printf("| %d | %d | %d | %d | %.1f%% | %lld | %.0f | %.1f | %.1f |\n", rs[i].budget,
               rs[i].traces, rs[i].problems, rs[i].correct, 100.0 * rs[i].correct / rs[i].problems,
               (long long)rs[i].tokens, tokens_per_problem(&rs[i]), rs[i].seconds,
               rs[i].seconds > 0 ? rs[i].tokens / rs[i].seconds : 0.0);
}

/* ---- main ------------------------------------------------------------------------------------ */

static char *join_path(const char *dir, const char *name) {
    const size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int main(int argc, char **argv) {
    options o = {0};
    if (parse_options(argc, argv, &o) != 0) {
        usage(stderr);
        free(o.budgets);
        free(o.traces);
        return 2;
    }
    if (!o.model) o.model = cli_default_model();
    int rc = 1;
    problem *ps = NULL;
    int32_t n_ps = 0;
    reason_model *model = NULL;
    reason_context *ctx = NULL;
    reason_result *res = NULL;
    config_result *rs = NULL;
    int32_t n_rs = 0;
    char *tsv_path = NULL, *svg_path = NULL, *runs_path = NULL;
    FILE *runs = NULL;
    if (!o.model) {
        fprintf(stderr, PROG ": no model given and the default is missing: run tools/fetch-model\n");
        goto done;
    }
    if (load_problems(o.problems, o.limit, &ps, &n_ps) != 0) goto done;
    if (mkdir(o.out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, PROG ": %s: %s\n", o.out_dir, strerror(errno));
        goto done;
    }
    tsv_path = join_path(o.out_dir, "scale.tsv");
    svg_path = join_path(o.out_dir, "scale.svg");
    runs_path = join_path(o.out_dir, "runs.tsv");
    rs = calloc((size_t)o.n_budgets * (size_t)o.n_traces, sizeof *rs);
    if (!tsv_path || !svg_path || !runs_path || !rs) {
        fprintf(stderr, PROG ": out of memory\n");
        goto done;
    }
    if (!(runs = fopen(runs_path, "w"))) {
        fprintf(stderr, PROG ": %s: %s\n", runs_path, strerror(errno));
        goto done;
    }
    fprintf(runs, "budget\ttraces\tid\texpected\twinner\tshare\tcorrect\ttokens\tseconds\n");

    if (reason_model_load(o.model, NULL, &model) != REASON_OK) {
        rc = cli_fail(PROG, o.model);
        goto done;
    }
    reason_model_info info;
    reason_model_get_info(model, &info);
    int32_t max_traces = 1;
    int64_t slots = 0;
    for (int32_t b = 0; b < o.n_budgets; b++)
        for (int32_t t = 0; t < o.n_traces; t++) {
            /* each trace: its budget, the answer, injected text; the prompt is shared */
            const int64_t need = (int64_t)o.traces[t] * (o.budgets[b] + o.answer_budget + 64);
            if (need > slots) slots = need;
            if (o.traces[t] > max_traces) max_traces = o.traces[t];
        }
    reason_context_params cp;
    reason_context_params_default(&cp);
    cp.n_ctx = o.n_ctx ? (uint32_t)o.n_ctx : (uint32_t)(slots + 1024 > (1 << 22) ? 1 << 22 : slots + 1024);
    cp.n_seq_max = (uint32_t)max_traces + 1;
    cp.n_outputs_max = max_traces;
    cp.n_threads = o.n_threads;
    if (reason_context_create(model, &cp, &ctx) != REASON_OK) {
        rc = cli_fail(PROG, "creating the context");
        goto done;
    }

    progress pr = {0};
    const reason_callbacks cb = {.user = &pr, .on_token = on_token};
    reason_params p;
    reason_params_default(&p);
    p.max_answer_tokens = o.answer_budget;
    p.extract = o.extract;
    p.vote = REASON_VOTE_MAJORITY;
    p.sampling.temperature = o.temperature;
    p.callbacks = &cb;
    fprintf(stderr, PROG ": %s, %d problems from %s, %d configurations\n", info.name, n_ps,
            o.problems, o.n_budgets * o.n_traces);
    for (int32_t b = 0; b < o.n_budgets; b++) {
        for (int32_t t = 0; t < o.n_traces; t++) {
            config_result *r = &rs[n_rs++];
            *r = (config_result){.budget = o.budgets[b], .traces = o.traces[t], .problems = n_ps};
            pr = (progress){.budget = r->budget, .traces = r->traces, .n = n_ps, .t0 = cli_now()};
            p.max_thinking_tokens = r->budget;
            p.n_traces = r->traces;
            progress_draw(&pr, 0, NULL);
            for (int32_t k = 0; k < n_ps; k++) {
                p.sampling.seed = o.seed + 1024ull * (uint64_t)k;
                const double t0 = cli_now();
                if (reason_run(ctx, ps[k].question, &p, &res) != REASON_OK) {
                    cli_status_done(1);
                    rc = cli_fail(PROG, ps[k].id);
                    goto done;
                }
                const char *winner = "";
                float share = 0;
                reason_usage u;
                reason_result_vote(res, &winner, &share);
                if (reason_result_usage(res, &u) != REASON_OK) {
                    cli_status_done(1);
                    rc = cli_fail(PROG, "usage");
                    goto done;
                }
                long long got;
                const int correct = answer_to_int(winner, &got) == 0 && got == ps[k].answer;
                r->correct += correct;
                r->tokens += u.generated_tokens;
                pr.k = k + 1;
                pr.correct = r->correct;
                pr.tokens = r->tokens; /* the exact count, in case the callback missed injections */
                fprintf(runs, "%d\t%d\t", r->budget, r->traces);
                tsv_field(runs, ps[k].id);
                fprintf(runs, "\t%lld\t", ps[k].answer);
                tsv_field(runs, winner[0] ? winner : "-");
                fprintf(runs, "\t%.3f\t%d\t%d\t%.2f\n", share, correct, u.generated_tokens,
                        cli_now() - t0);
                char detail[160];
                snprintf(detail, sizeof detail, "%s expected %lld got %.24s %s", ps[k].id,
                         ps[k].answer, winner[0] ? winner : "-", correct ? "ok" : "wrong");
                /* on a terminal the line is redrawn; in a log, one line per problem */
                progress_draw(&pr, !cli_stderr_is_tty() || k + 1 == n_ps, detail);
                reason_result_free(res);
                res = NULL;
            }
            r->seconds = cli_now() - pr.t0;
            cli_status_done(1);
        }
    }
    char title[256];
    const char *base = strrchr(o.problems, '/');
    snprintf(title, sizeof title, "%s, %d problems from %s, majority vote", info.name, n_ps,
             base ? base + 1 : o.problems);
    if (fclose(runs) != 0) {
        runs = NULL;
        fprintf(stderr, PROG ": %s: %s\n", runs_path, strerror(errno));
        goto done;
    }
    runs = NULL;
    if (write_tsv(tsv_path, rs, n_rs) != 0 || write_svg(svg_path, title, &o, rs, n_rs) != 0)
        goto done;
    print_markdown(rs, n_rs);
    fprintf(stderr, PROG ": wrote %s, %s and %s\n", tsv_path, runs_path, svg_path);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    if (runs) fclose(runs);
    reason_result_free(res);
    reason_context_free(ctx);
    reason_model_free(model);
    free(rs);
    free(tsv_path);
    free(svg_path);
    free(runs_path);
    free_problems(ps, n_ps);
    free(o.budgets);
    free(o.traces);
    return rc;
}
