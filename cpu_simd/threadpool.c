/*
 * Memory ordering. Every access to state, sleepers, caller_waiting and stop is sequentially
 * consistent, which the two sleep hand-shakes need (each side writes its own flag, then reads the
 * other's; with a single total order at least one of them sees the other):
 *   - a worker about to sleep increments sleepers, then reads state; the caller publishes a job
 *     in state, then reads sleepers and, if any, broadcasts wake under the mutex. The worker holds
 *     the mutex from its check of state until cond_wait releases it, so the broadcast cannot fall
 *     between the two.
 *   - the caller about to sleep sets caller_waiting, then reads the workers-inside count; the last
 *     worker to leave decrements the count, then reads caller_waiting and, if set, signals done
 *     under the mutex.
 * The job's fields (fn, arg, n_tasks, next) are written before the store that opens the job; a
 * worker reads them only after its compare-and-swap joined that job (synchronising with the
 * store), and the caller rewrites them only after the close, which needs zero workers inside; the
 * leaving decrement releases what the worker's tasks wrote to the caller's acquiring close.
 */
#include "cpu_simd/threadpool.h"

#include <sched.h>
#include <stddef.h>
#include <time.h>

#define EA_POOL_CLOSED ((uint64_t)1 << 31)
#define EA_POOL_INSIDE ((uint64_t)EA_POOL_CLOSED - 1)

static inline uint32_t gen_of(uint64_t s) { return (uint32_t)(s >> 32); }

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins while busy(p, x) holds, for at most p->spin_ns; true when it stopped holding in time.
 * Every 64 pauses (a few microseconds) it checks the clock and yields the core: on a machine with
 * more runnable threads than cores, the thread this one waits for (the caller, or a worker inside
 * a task) may need it; on an idle one sched_yield returns at once. */
static bool spin_while(ea_pool *p, bool (*busy)(ea_pool *, uint64_t), uint64_t x)
{
    int64_t end = -1;
    for (uint32_t i = 1;; i++) {
        if (!busy(p, x))
            return true;
        if ((i & 63) == 0) {
            const int64_t t = now_ns();
            if (end < 0)
                end = t + p->spin_ns;
            else if (t >= end)
                return false;
            sched_yield();
        }
        cpu_relax();
    }
}

/* Runs tasks until none is left; returns how many this thread ran. */
static int64_t drain(ea_pool *p, int thread)
{
    for (int64_t ran = 0;; ran++) {
        const int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks)
            return ran;
        p->fn(p->arg, t, thread);
    }
}

static bool no_job_since(ea_pool *p, uint64_t seen)
{
    return gen_of(atomic_load(&p->state)) == (uint32_t)seen && !atomic_load(&p->stop);
}

static bool workers_inside(ea_pool *p, uint64_t unused)
{
    (void)unused;
    return (atomic_load(&p->state) & EA_POOL_INSIDE) != 0;
}

/* Waits until a job newer than `seen` is published (or stop); returns the state then. */
static uint64_t wait_job(ea_pool *p, uint32_t seen)
{
    if (p->spin_ns <= 0 || !spin_while(p, no_job_since, seen)) {
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->sleepers, 1);
        while (no_job_since(p, seen))
            pthread_cond_wait(&p->wake, &p->mu);
        atomic_fetch_sub(&p->sleepers, 1);
        pthread_mutex_unlock(&p->mu);
    }
    return atomic_load(&p->state);
}

/* Each worker's index is recovered from its start argument (two pointers in the arena). */
static void *worker_main(void *argp)
{
    ea_pool *p = ((void **)argp)[0];
    const int index = (int)(intptr_t)((void **)argp)[1];
    uint32_t seen = 0; /* the pool starts at generation 0, closed */
    for (;;) {
        uint64_t s = wait_job(p, seen);
        if (atomic_load(&p->stop))
            break;
        seen = gen_of(s);
        bool joined = false;
        while (!(s & EA_POOL_CLOSED) && gen_of(s) == seen)
            if (atomic_compare_exchange_weak(&p->state, &s, s + 1)) {
                joined = true;
                break;
            }
        if (!joined)
            continue; /* closed before this worker got there: the caller did the work */
        drain(p, index);
        const uint64_t before = atomic_fetch_sub(&p->state, 1);
        if ((before & EA_POOL_INSIDE) == 1 && atomic_load(&p->caller_waiting)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

size_t ea_pool_tid_bytes(int threads, bool caller_pool)
{
    /* a pthread_t and a two-pointer start argument per worker */
    return caller_pool ? 0 : (size_t)(threads > 1 ? threads - 1 : 0) * (sizeof(pthread_t) + 2 * sizeof(void *));
}

edgeattn_status ea_pool_start(ea_pool *p, int threads, pthread_t *tid_mem, int64_t spin_ns,
                              edgeattn_parallel_for_fn pfor, void *user)
{
    p->threads = threads;
    p->launched = 0;
    p->tid = tid_mem;
    p->spin_ns = spin_ns;
    p->idle_jobs = 0;
    p->asks = 0;
    p->fn = NULL;
    p->arg = NULL;
    p->n_tasks = 0;
    p->pfor = pfor;
    p->pfor_user = user;
    p->chunk = 1;
    atomic_init(&p->state, EA_POOL_CLOSED);
    atomic_init(&p->next, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_waiting, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->bad_worker, 0);
    atomic_init(&p->ran, 0);
    if (pfor)
        return EDGEATTN_OK; /* the caller's pool: nothing to start */
    if (pthread_mutex_init(&p->mu, NULL))
        return EDGEATTN_ERR_SYSTEM;
    if (pthread_cond_init(&p->wake, NULL)) {
        pthread_mutex_destroy(&p->mu);
        return EDGEATTN_ERR_SYSTEM;
    }
    if (pthread_cond_init(&p->done, NULL)) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        return EDGEATTN_ERR_SYSTEM;
    }
    void **args = (void **)(void *)(tid_mem + (threads > 1 ? threads - 1 : 0));
    for (int i = 1; i < threads; i++) {
        args[2 * (i - 1)] = p;
        args[2 * (i - 1) + 1] = (void *)(intptr_t)i;
        if (pthread_create(&p->tid[i - 1], NULL, worker_main, &args[2 * (i - 1)]) != 0)
            break;
        p->launched++;
    }
    if (p->launched != threads - 1) {
        ea_pool_stop(p);
        return EDGEATTN_ERR_SYSTEM;
    }
    return EDGEATTN_OK;
}

bool ea_pool_helpful(ea_pool *p)
{
    if (p->pfor)
        return true;
    if (atomic_load_explicit(&p->sleepers, memory_order_relaxed) >= p->launched)
        return false;
    if (p->idle_jobs < EA_POOL_IDLE_JOBS)
        return true;
    return (++p->asks & 31) == 0;
}

void ea_pool_run_inline(ea_task_fn fn, void *arg, int64_t n_tasks)
{
    for (int64_t t = 0; t < n_tasks; t++)
        fn(arg, t, 0);
}

/* One task of the caller's pool: `chunk` of ours. */
static void caller_pool_task(void *arg, int32_t task, int32_t worker)
{
    ea_pool *p = arg;
    if (worker < 0 || worker >= p->threads) {
        atomic_store_explicit(&p->bad_worker, 1, memory_order_relaxed);
        return;
    }
    const int64_t t0 = (int64_t)task * p->chunk;
    int64_t t1 = t0 + p->chunk;
    if (t1 > p->n_tasks)
        t1 = p->n_tasks;
    for (int64_t t = t0; t < t1; t++)
        p->fn(p->arg, t, worker);
    atomic_fetch_add_explicit(&p->ran, t1 > t0 ? t1 - t0 : 0, memory_order_relaxed);
}

edgeattn_status ea_pool_run(ea_pool *p, ea_task_fn fn, void *arg, int64_t n_tasks)
{
    if (n_tasks <= 0)
        return EDGEATTN_OK;
    if (p->threads <= 1 || n_tasks == 1) {
        ea_pool_run_inline(fn, arg, n_tasks);
        return EDGEATTN_OK;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    if (p->pfor) {
        p->chunk = (n_tasks + INT32_MAX - 1) / INT32_MAX;
        atomic_store_explicit(&p->bad_worker, 0, memory_order_relaxed);
        atomic_store_explicit(&p->ran, 0, memory_order_relaxed);
        p->pfor(p->pfor_user, caller_pool_task, p, (int32_t)((n_tasks + p->chunk - 1) / p->chunk), p->threads);
        /* the callback returned after all its tasks did: their writes are visible here */
        if (atomic_load_explicit(&p->bad_worker, memory_order_relaxed) ||
            atomic_load_explicit(&p->ran, memory_order_relaxed) != n_tasks)
            return EDGEATTN_ERR_INTERNAL;
        return EDGEATTN_OK;
    }
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    /* open the next generation (only this thread changes the generation or the closed bit) */
    const uint32_t g = gen_of(atomic_load(&p->state)) + 1;
    atomic_store(&p->state, (uint64_t)g << 32);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    const int64_t mine = drain(p, 0);
    if (mine < n_tasks)
        p->idle_jobs = 0;
    else if (p->idle_jobs < INT32_MAX)
        p->idle_jobs++;
    /* every task is taken: close the job once no worker is inside */
    uint64_t s = atomic_load(&p->state);
    for (;;) {
        if ((s & EA_POOL_INSIDE) == 0) {
            if (atomic_compare_exchange_weak(&p->state, &s, s | EA_POOL_CLOSED))
                break;
            continue;
        }
        if (p->spin_ns <= 0 || !spin_while(p, workers_inside, 0)) {
            pthread_mutex_lock(&p->mu);
            atomic_store(&p->caller_waiting, 1);
            while (workers_inside(p, 0))
                pthread_cond_wait(&p->done, &p->mu);
            atomic_store(&p->caller_waiting, 0);
            pthread_mutex_unlock(&p->mu);
        }
        s = atomic_load(&p->state);
    }
    return EDGEATTN_OK;
}

void ea_pool_stop(ea_pool *p)
{
    if (p->pfor)
        return;
    atomic_store(&p->stop, true);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->launched; i++)
        pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
}
