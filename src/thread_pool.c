/* thread_pool.c — see thread_pool.h.
 *
 * One 64-bit word publishes a job and hands out its tasks: (job number : 24 | n_tasks : 20 |
 * next task : 20). A thread claims task t of job j by a compare-and-swap of (j, n, t) to
 * (j, n, t + 1), so a worker that wakes late, or is descheduled between reading the word and
 * claiming, can never run a task of a job that has moved on: its swap fails. The caller counts
 * finished tasks, not workers, so it never waits for a worker that has not started (decode on a
 * busy machine: the caller simply does all the tasks itself). fn and arg are read only after a
 * successful claim, when the job cannot end before that task does. */
#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* A worker waiting for the next job spins (cheapest wake-up) for SPIN_LIMIT rounds, then yields
 * its core for YIELD_LIMIT rounds (so an oversubscribed machine still makes progress), then
 * sleeps on the condition variable. */
#define SPIN_LIMIT 4000
#define YIELD_LIMIT 1000

#define TASK_BITS 20
#define TASK_MASK ((1ull << TASK_BITS) - 1)
#define MAX_TASKS ((int32_t)TASK_MASK)

static inline uint64_t pack(uint64_t job, uint64_t n, uint64_t next) {
    return (job & 0xffffffull) << (2 * TASK_BITS) | n << TASK_BITS | next;
}
static inline uint32_t word_job(uint64_t w) { return (uint32_t)(w >> (2 * TASK_BITS)); }
static inline uint32_t word_n(uint64_t w) { return (uint32_t)((w >> TASK_BITS) & TASK_MASK); }
static inline uint32_t word_next(uint64_t w) { return (uint32_t)(w & TASK_MASK); }

struct thread_pool {
    /* each hot atomic on its own cache line: workers poll `claim` while tasks bump `done` */
    alignas(64) _Atomic uint64_t claim;
    alignas(64) atomic_int done;
    alignas(64) atomic_int n_sleeping;
    atomic_bool stop;
    pool_task_fn fn;
    void *arg;
    uint32_t job;
    int32_t n_threads; /* including the caller's */
    pthread_t *workers;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

typedef struct worker_arg {
    thread_pool *pool;
    int32_t index;
} worker_arg;

int32_t rs_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return (int32_t)RS_MAX(1, CPU_COUNT(&set));
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}

/* Claims and runs tasks of the job in w until none is left or the job has changed. */
static void work(thread_pool *pool, uint64_t w, int32_t thread) {
    const uint32_t job = word_job(w);
    while (word_job(w) == job && word_next(w) < word_n(w)) {
        if (!atomic_compare_exchange_weak_explicit(&pool->claim, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* w now holds the current word */
        pool->fn(pool->arg, (int32_t)word_next(w), thread);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
        w = atomic_load_explicit(&pool->claim, memory_order_acquire);
    }
}

static void *worker_main(void *p) {
    worker_arg *wa = p;
    thread_pool *pool = wa->pool;
    int32_t index = wa->index;
    free(wa);
    /* Workers start before the first job is posted, at job 0; reading the word here instead
     * could miss a job posted before this thread got to run. */
    uint32_t seen = 0;
    for (;;) {
        int spins = 0;
        uint64_t w;
        while (word_job(w = atomic_load_explicit(&pool->claim, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&pool->stop, memory_order_relaxed)) {
            if (++spins < SPIN_LIMIT) {
                cpu_relax();
                continue;
            }
            if (spins < SPIN_LIMIT + YIELD_LIMIT) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (word_job(atomic_load(&pool->claim)) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mutex);
            spins = 0;
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = word_job(w);
        work(pool, w, index);
    }
}

reason_status thread_pool_create(int32_t n_threads, thread_pool **out) {
    RS_CHECK_ARG(out != NULL);
    *out = NULL;
    if (n_threads <= 0) n_threads = rs_cpu_count();
    if (n_threads > 512) n_threads = 512;
    thread_pool *pool = rs_aligned_alloc(sizeof *pool, "thread pool");
    if (!pool) return REASON_ERR_NOMEM;
    memset(pool, 0, sizeof *pool);
    atomic_init(&pool->claim, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->n_sleeping, 0);
    atomic_init(&pool->stop, false);
    pool->n_threads = 1;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->workers = rs_calloc((size_t)n_threads, sizeof *pool->workers, "thread pool workers");
    if (!pool->workers) {
        thread_pool_free(pool);
        return REASON_ERR_NOMEM;
    }
    for (int32_t i = 1; i < n_threads; i++) {
        worker_arg *wa = rs_malloc(sizeof *wa, "worker argument");
        if (!wa) {
            thread_pool_free(pool);
            return REASON_ERR_NOMEM;
        }
        wa->pool = pool;
        wa->index = i;
        if (pthread_create(&pool->workers[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            thread_pool_free(pool);
            return rs_error(REASON_ERR_NOMEM, "could not start worker thread %d of %d", i,
                            n_threads);
        }
        pool->n_threads = i + 1;
    }
    *out = pool;
    return REASON_OK;
}

void thread_pool_free(thread_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int32_t i = 1; i < pool->n_threads; i++) pthread_join(pool->workers[i - 1], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->workers);
    free(pool);
}

int32_t thread_pool_size(const thread_pool *pool) { return pool ? pool->n_threads : 1; }

/* Tasks [0, n) as one job; n <= MAX_TASKS. */
static void run_job(thread_pool *pool, pool_task_fn fn, void *arg, int32_t n) {
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    pool->job = (pool->job + 1) & 0xffffffu;
    if (pool->job == 0) pool->job = 1; /* 0 is the workers' initial "seen" */
    /* seq_cst: ordered before the n_sleeping read */
    atomic_store(&pool->claim, pack(pool->job, (uint64_t)n, 0));
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    work(pool, atomic_load_explicit(&pool->claim, memory_order_acquire), 0);
    for (int spins = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < n; spins++) {
        if (spins < SPIN_LIMIT)
            cpu_relax();
        else
            sched_yield(); /* a worker holding a task may be waiting for this core */
    }
}

typedef struct chunk_arg {
    pool_task_fn fn;
    void *arg;
    int32_t first;
} chunk_arg;

static void chunk_task(void *p, int32_t task, int32_t thread) {
    const chunk_arg *c = p;
    c->fn(c->arg, c->first + task, thread);
}

void thread_pool_run(thread_pool *pool, pool_task_fn fn, void *arg, int32_t n_tasks) {
    if (n_tasks <= 0) return;
    if (!pool || pool->n_threads == 1 || n_tasks == 1) {
        for (int32_t t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    if (n_tasks <= MAX_TASKS) {
        run_job(pool, fn, arg, n_tasks);
        return;
    }
    for (int32_t first = 0; first < n_tasks; first += MAX_TASKS) {
        chunk_arg c = {fn, arg, first};
        run_job(pool, chunk_task, &c, RS_MIN(MAX_TASKS, n_tasks - first));
    }
}
