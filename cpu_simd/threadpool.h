/*
 * The CPU backend's parallel-for: a fixed pool of worker threads started at create, or the caller's
 * own pool (config.parallel_for), in which case no thread is started.
 *
 * ea_pool_run hands out task indices 0..n_tasks-1 through an atomic counter to the calling thread
 * and whichever workers join. It allocates nothing, and the caller never waits for a worker that
 * has not started on the job: a job is open to workers until the caller has run out of tasks and
 * closes it, so a worker that wakes late finds it closed and goes back to waiting. Workers spin
 * (with a pause instruction) for a bounded time after a job before they sleep on a condition
 * variable, so back-to-back calls find them awake.
 *
 * The job's state is one 64-bit word: generation (high 32 bits), a closed bit, and the number of
 * workers inside the job. Joining is a compare-and-swap on it, so a worker can join only the job it
 * saw and only while it is open; the caller closes it with a compare-and-swap when no worker is
 * inside, after which it may reuse the job's fields.
 */
#ifndef EDGEATTN_CPU_THREADPOOL_H
#define EDGEATTN_CPU_THREADPOOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "edgeattn/edgeattn.h"

#define EA_POOL_IDLE_JOBS 4

/* task: index of the task, thread: 0..threads-1 (0 is the caller), for per-thread scratch. */
typedef void (*ea_task_fn)(void *arg, int64_t task, int thread);

typedef struct ea_pool {
    _Alignas(64) _Atomic uint64_t state; /* generation << 32 | EA_POOL_CLOSED | workers inside */
    _Alignas(64) atomic_llong next;      /* next task index of the open job */
    _Alignas(64) int threads;            /* including the caller */
    int launched;                        /* workers started */
    pthread_t *tid;                      /* [threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_int sleepers;                 /* workers asleep (or about to be) on wake */
    atomic_int caller_waiting;           /* the caller asleep (or about to be) on done */
    atomic_bool stop;
    int64_t spin_ns;                     /* how long a waiting thread spins before it sleeps */
    int32_t idle_jobs;                   /* consecutive jobs the caller ran alone (caller only) */
    uint32_t asks;                       /* ea_pool_helpful calls while idle (caller only) */
    /* the job, written by the caller while it is closed */
    ea_task_fn fn;
    void *arg;
    int64_t n_tasks;
    /* the caller's pool (config.parallel_for), or NULL */
    edgeattn_parallel_for_fn pfor;
    void *pfor_user;
    int64_t chunk;                       /* tasks per callback task (more than INT32_MAX tasks) */
    atomic_int bad_worker;               /* a worker index outside [0, threads) was seen */
    atomic_llong ran;                    /* tasks the callback ran */
} ea_pool;

/* Bytes for the tid array (and the start arguments) of a pool of `threads`; 0 with a caller pool. */
size_t ea_pool_tid_bytes(int threads, bool caller_pool);
/* Starts threads-1 workers (tid_mem from the arena), or none when pfor is set: then tasks run
 * through pfor(user, ...) with worker indices from it. spin_ns: see ea_pool.spin_ns. */
edgeattn_status ea_pool_start(ea_pool *p, int threads, pthread_t *tid_mem, int64_t spin_ns,
                              edgeattn_parallel_for_fn pfor, void *user);
/* Runs fn for every task. With one thread it runs them in order on the caller. Returns OK, or
 * INTERNAL when a caller pool broke its contract (a worker index out of range, tasks not run). */
edgeattn_status ea_pool_run(ea_pool *p, ea_task_fn fn, void *arg, int64_t n_tasks);
/* Are the workers likely to help with a job now? No when all of them sleep, or when the last
 * EA_POOL_IDLE_JOBS jobs were all run by the caller alone (on a machine with more runnable threads
 * than cores a spinning worker seldom gets a core in time), except for one probe every 32 asks. A
 * caller pool counts as helpful. Call it only from the thread that runs the pool's jobs. */
bool ea_pool_helpful(ea_pool *p);
/* Runs fn for every task on the calling thread (thread index 0). */
void ea_pool_run_inline(ea_task_fn fn, void *arg, int64_t n_tasks);
void ea_pool_stop(ea_pool *p);

#endif
