/* thread_pool.h — a fixed set of worker threads owned by a context. One job at a time: the
 * caller's thread takes part, tasks are claimed one at a time (compare-and-swap on one word that
 * also names the job, so a late worker can never run a task of a finished job), and the call
 * returns when all tasks are done — it never waits for a worker that has not started, so a
 * descheduled worker on a busy machine costs nothing. Callers make tasks contiguous chunks of
 * work (a range of rows), a few per thread. Workers spin briefly between jobs (decode issues
 * hundreds of small jobs per token) and then sleep, so an idle context costs no CPU. */
#ifndef REASON_THREAD_POOL_H
#define REASON_THREAD_POOL_H

#include "core.h"

typedef struct thread_pool thread_pool;

/* task in [0, n_tasks); thread in [0, n_threads) identifies the thread (for scratch buffers). */
typedef void (*pool_task_fn)(void *arg, int32_t task, int32_t thread);

RS_INTERNAL reason_status thread_pool_create(int32_t n_threads, thread_pool **out);
RS_INTERNAL void thread_pool_free(thread_pool *pool);
RS_INTERNAL int32_t thread_pool_size(const thread_pool *pool);
RS_INTERNAL void thread_pool_run(thread_pool *pool, pool_task_fn fn, void *arg, int32_t n_tasks);

/* Cores available to this process. */
RS_INTERNAL int32_t rs_cpu_count(void);

#endif
