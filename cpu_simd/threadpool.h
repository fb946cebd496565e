/*
 * A fixed pool of worker threads, started at create. ea_pool_run hands out task indices
 * 0..n_tasks-1 through an atomic counter to the workers and the calling thread; it allocates
 * nothing and takes only the pool's own mutex for the hand-off.
 */
#ifndef EDGEATTN_CPU_THREADPOOL_H
#define EDGEATTN_CPU_THREADPOOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "edgeattn/edgeattn.h"

/* task: index of the task, thread: 0..threads-1 (0 is the caller), for per-thread scratch. */
typedef void (*ea_task_fn)(void *arg, int64_t task, int thread);

typedef struct ea_pool {
    int threads;                /* including the caller */
    int started;                /* workers started */
    pthread_t *tid;             /* [threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    uint64_t generation;        /* bumped per job */
    int busy;                   /* workers still in the current job */
    bool stop;
    ea_task_fn fn;
    void *arg;
    int64_t n_tasks;
    atomic_llong next;
} ea_pool;

/* Bytes for the tid array of a pool of `threads`. */
size_t ea_pool_tid_bytes(int threads);
/* Starts threads-1 workers; tid_mem from the arena. */
edgeattn_status ea_pool_start(ea_pool *p, int threads, pthread_t *tid_mem);
void ea_pool_run(ea_pool *p, ea_task_fn fn, void *arg, int64_t n_tasks);
void ea_pool_stop(ea_pool *p);

#endif
