/* thread_pool.c — see thread_pool.h. */
#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
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
#define SPIN_LIMIT 2000
#define YIELD_LIMIT 2000

struct thread_pool {
    int32_t n_threads; /* including the caller's */
    pthread_t *workers;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    atomic_uint generation; /* bumped for each job */
    atomic_int next_task;
    atomic_int n_active; /* workers still inside the current job */
    atomic_int n_sleeping;
    atomic_bool stop;
    pool_task_fn fn;
    void *arg;
    int32_t n_tasks;
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

static void work(thread_pool *pool, int32_t thread) {
    for (;;) {
        int task = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (task >= pool->n_tasks) break;
        pool->fn(pool->arg, task, thread);
    }
}

static void *worker_main(void *p) {
    worker_arg *wa = p;
    thread_pool *pool = wa->pool;
    int32_t index = wa->index;
    free(wa);
    /* Workers start before the first job is posted, at generation 0; reading the counter here
     * instead could miss a job posted before this thread got to run. */
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen &&
               !atomic_load(&pool->stop)) {
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
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = atomic_load(&pool->generation);
        work(pool, index);
        atomic_fetch_sub_explicit(&pool->n_active, 1, memory_order_release);
    }
}

reason_status thread_pool_create(int32_t n_threads, thread_pool **out) {
    RS_CHECK_ARG(out != NULL);
    *out = NULL;
    if (n_threads <= 0) n_threads = rs_cpu_count();
    if (n_threads > 512) n_threads = 512;
    thread_pool *pool = rs_calloc(1, sizeof *pool, "thread pool");
    if (!pool) return REASON_ERR_NOMEM;
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
            return rs_error(REASON_ERR_NOMEM, "could not start worker thread %d of %d", i, n_threads);
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

void thread_pool_run(thread_pool *pool, pool_task_fn fn, void *arg, int32_t n_tasks) {
    if (n_tasks <= 0) return;
    if (!pool || pool->n_threads == 1 || n_tasks == 1) {
        for (int32_t t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    pool->n_tasks = n_tasks;
    atomic_store(&pool->next_task, 0);
    atomic_store(&pool->n_active, pool->n_threads - 1);
    atomic_fetch_add(&pool->generation, 1); /* seq_cst: ordered before the n_sleeping read */
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    work(pool, 0);
    for (int spins = 0; atomic_load_explicit(&pool->n_active, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_LIMIT)
            cpu_relax();
        else
            sched_yield(); /* a worker may be waiting for this core */
    }
}
