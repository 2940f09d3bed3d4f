/* membw.c — STREAM-like memory bandwidth: read (sum of an array) and triad (a = b + s * c), on
 * 1 thread and on N threads, best of several passes over arrays far larger than the L3 cache.
 * Decode is a read of every weight once per token, so "read" on the decode thread count is the
 * roofline reason-bench compares against (--bw).
 *
 *   gcc -O2 -march=native -std=c11 -D_GNU_SOURCE tools/membw.c -lpthread -o /tmp/membw
 *   /tmp/membw [threads (default: all cores)] [MiB per array (default 256)]
 *
 * Bytes counted: read 8 per element; triad 24 per element (two reads and one write; the write's
 * read-for-ownership is not counted, as in STREAM). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PASSES 5

typedef struct part {
    double *a, *b, *c;
    size_t n;
    int op; /* 0 read, 1 triad */
    double sum;
    pthread_barrier_t *bar;
} part;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void kernel(part *p) {
    if (p->op == 0) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 4 <= p->n; i += 4) {
            s0 += p->b[i];
            s1 += p->b[i + 1];
            s2 += p->b[i + 2];
            s3 += p->b[i + 3];
        }
        p->sum += s0 + s1 + s2 + s3;
    } else {
        for (size_t i = 0; i < p->n; i++) p->a[i] = p->b[i] + 3.0 * p->c[i];
    }
}

static void *worker(void *arg) {
    part *p = arg;
    for (int r = 0; r < PASSES; r++) {
        pthread_barrier_wait(p->bar);
        kernel(p);
        pthread_barrier_wait(p->bar);
    }
    return NULL;
}

/* Best GB/s of PASSES passes with t threads, each on its own contiguous slice. */
static double run(double *a, double *b, double *c, size_t n, int t, int op) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)t);
    part parts[256];
    pthread_t th[256];
    for (int i = 0; i < t; i++)
        parts[i] = (part){a + n / t * i, b + n / t * i, c + n / t * i, n / t, op, 0.0, &bar};
    for (int i = 1; i < t; i++) pthread_create(&th[i], NULL, worker, &parts[i]);
    double best = 1e30;
    for (int r = 0; r < PASSES; r++) {
        pthread_barrier_wait(&bar);
        const double t0 = now();
        kernel(&parts[0]);
        pthread_barrier_wait(&bar);
        const double dt = now() - t0;
        if (dt < best) best = dt;
    }
    for (int i = 1; i < t; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    double sink = 0;
    for (int i = 0; i < t; i++) sink += parts[i].sum;
    if (sink == 1234.5) puts(""); /* keeps the reads alive */
    const size_t elems = n / t * t;
    return (double)elems * (op == 0 ? 8 : 24) / best / 1e9;
}

int main(int argc, char **argv) {
    int t = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    const size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 256;
    if (t < 1 || t > 256 || mib < 1) {
        fprintf(stderr, "usage: membw [threads 1..256] [MiB per array]\n");
        return 2;
    }
    const size_t n = (mib << 20) / sizeof(double);
    double *a = aligned_alloc(64, n * 8), *b = aligned_alloc(64, n * 8),
           *c = aligned_alloc(64, n * 8);
    if (!a || !b || !c) {
        fprintf(stderr, "membw: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = (double)i, c[i] = 1.0; /* touch every page */
    printf("arrays of %zu MiB, best of %d passes\n| threads | read GB/s | triad GB/s "
           "|\n|---|---|---|\n",
           mib, PASSES);
    printf("| 1 | %.1f | %.1f |\n", run(a, b, c, n, 1, 0), run(a, b, c, n, 1, 1));
    if (t > 1) printf("| %d | %.1f | %.1f |\n", t, run(a, b, c, n, t, 0), run(a, b, c, n, t, 1));
    free(a);
    free(b);
    free(c);
    return 0;
}
