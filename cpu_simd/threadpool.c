#include "cpu_simd/threadpool.h"

#include <stddef.h>

static void drain(ea_pool *p, int thread)
{
    for (;;) {
        const int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks)
            return;
        p->fn(p->arg, t, thread);
    }
}

/* Each worker's index is recovered from its position in tid[]: no per-thread heap argument. */
static void *worker_main(void *argp)
{
    ea_pool *p = ((void **)argp)[0];
    const int index = (int)(intptr_t)((void **)argp)[1];
    pthread_mutex_lock(&p->mu);
    uint64_t seen = p->generation;
    p->started++;
    pthread_cond_broadcast(&p->done);
    for (;;) {
        while (p->generation == seen && !p->stop)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

size_t ea_pool_tid_bytes(int threads)
{
    /* a pthread_t and a two-pointer start argument per worker */
    return (size_t)(threads > 1 ? threads - 1 : 0) * (sizeof(pthread_t) + 2 * sizeof(void *));
}

edgeattn_status ea_pool_start(ea_pool *p, int threads, pthread_t *tid_mem)
{
    p->threads = threads;
    p->started = 0;
    p->tid = tid_mem;
    p->generation = 0;
    p->busy = 0;
    p->stop = false;
    p->n_tasks = 0;
    atomic_init(&p->next, 0);
    if (pthread_mutex_init(&p->mu, NULL))
        return EDGEATTN_ERR_SYSTEM;
    if (pthread_cond_init(&p->wake, NULL) || pthread_cond_init(&p->done, NULL)) {
        pthread_mutex_destroy(&p->mu);
        return EDGEATTN_ERR_SYSTEM;
    }
    void **args = (void **)(void *)(tid_mem + (threads > 1 ? threads - 1 : 0));
    int launched = 0;
    for (int i = 1; i < threads; i++) {
        args[2 * (i - 1)] = p;
        args[2 * (i - 1) + 1] = (void *)(intptr_t)i;
        if (pthread_create(&p->tid[i - 1], NULL, worker_main, &args[2 * (i - 1)]) != 0)
            break;
        launched++;
    }
    if (launched != threads - 1) {
        p->threads = launched + 1;
        ea_pool_stop(p);
        return EDGEATTN_ERR_SYSTEM;
    }
    /* wait until every worker has read its generation, so a first job cannot be missed */
    pthread_mutex_lock(&p->mu);
    while (p->started < launched)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return EDGEATTN_OK;
}

void ea_pool_run(ea_pool *p, ea_task_fn fn, void *arg, int64_t n_tasks)
{
    if (n_tasks <= 0)
        return;
    if (p->threads <= 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->busy = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void ea_pool_stop(ea_pool *p)
{
    const int workers = p->threads - 1;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < workers; i++)
        pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
}
