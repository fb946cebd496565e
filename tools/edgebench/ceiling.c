/*
 * The machine's ceilings, measured in the same run as the cases and with the same thread count:
 * FMA peak (GFLOP/s) and streaming read bandwidth (GB/s). All threads start together at a barrier;
 * the time runs from the barrier to the last thread's end; the best of a few trials is kept.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_THREADS 256

typedef struct worker {
    pthread_barrier_t *start;
    bench_isa isa;
    int stream;          /* 0: FMA chains; 1: streaming sum */
    uint64_t iters;      /* FMA */
    const float *p;      /* stream: this thread's slice */
    size_t n;
    volatile float sink; /* keeps the result alive */
} worker;

static void work(worker *w)
{
    w->sink = w->stream ? bench_sum_stream(w->isa, w->p, w->n) : bench_fma_chains(w->isa, w->iters);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    work(w);
    return NULL;
}

/* Runs w[0..threads) at once (w[0] on the calling thread); returns the seconds taken, or -1.
 * A thread that cannot be started ends the program (edgebench only). */
static double run_together(worker *w, int threads)
{
    pthread_t tid[MAX_THREADS];
    pthread_barrier_t start;
    if (pthread_barrier_init(&start, NULL, (unsigned)threads) != 0)
        return -1.0;
    for (int t = 0; t < threads; t++)
        w[t].start = &start;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[t], NULL, worker_main, &w[t]) != 0) {
            /* the threads already started wait at the barrier for ever: nothing to recover */
            fprintf(stderr, "edgebench: cannot start thread %d of %d for the ceiling measurement\n", t, threads);
            exit(1);
        }
    pthread_barrier_wait(&start);
    const double t0 = bench_now_s();
    work(&w[0]);
    for (int t = 1; t < threads; t++)
        pthread_join(tid[t], NULL);
    const double t1 = bench_now_s();
    pthread_barrier_destroy(&start);
    return t1 - t0;
}

static double fma_peak(bench_isa isa, int threads, double seconds, int trials)
{
    worker w[MAX_THREADS];
    memset(w, 0, sizeof w);
    /* calibrate the iteration count on one thread */
    uint64_t iters = 1u << 14;
    double t = 0.0;
    for (;;) {
        const double t0 = bench_now_s();
        volatile float s = bench_fma_chains(isa, iters);
        (void)s;
        t = bench_now_s() - t0;
        if (t > 0.01 || iters > (1ull << 40))
            break;
        iters *= 4;
    }
    iters = (uint64_t)((double)iters * seconds / t) + 1;
    double best = 0.0;
    for (int k = 0; k < trials; k++) {
        for (int i = 0; i < threads; i++) {
            w[i].isa = isa;
            w[i].stream = 0;
            w[i].iters = iters;
        }
        const double secs = run_together(w, threads);
        if (secs <= 0.0)
            return 0.0;
        const double gflops = bench_fma_flops_per_iter(isa) * (double)iters * threads / secs * 1e-9;
        if (gflops > best)
            best = gflops;
    }
    return best;
}

int bench_measure_ceiling(int threads, uint32_t cpu_features, size_t read_bytes, double seconds_per_trial,
                          int trials, bench_ceiling *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    out->threads = threads;
    const bench_isa isa = bench_best_isa(cpu_features);
    snprintf(out->fma_isa, sizeof out->fma_isa, "%s", bench_isa_name(isa));
    out->fma_gflops = fma_peak(isa, threads, seconds_per_trial, trials);
    if (isa == BENCH_ISA_AVX512)
        out->fma_gflops_avx2 = fma_peak(BENCH_ISA_AVX2, threads, seconds_per_trial, trials);

    /* streaming read: each thread sums one slice; slices are multiples of 1024 floats */
    const size_t quantum = 1024 * sizeof(float) * (size_t)threads;
    read_bytes = read_bytes / quantum * quantum;
    if (read_bytes == 0)
        read_bytes = quantum;
    float *buf = aligned_alloc(64, read_bytes); /* [read_bytes / 4] */
    if (!buf) {
        snprintf(err, err_len, "cannot obtain %zu MiB for the bandwidth buffer (use --bw-mib)", read_bytes >> 20);
        return -1;
    }
    const size_t n = read_bytes / sizeof(float), slice = n / (size_t)threads;
    /* fill it (also maps every page before the timed passes) */
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)(i & 1023) * (1.0f / 1024.0f);
    worker w[MAX_THREADS];
    memset(w, 0, sizeof w);
    double best = 0.0;
    for (int k = 0; k < trials + 1; k++) { /* one extra: the first pass warms the TLB */
        for (int i = 0; i < threads; i++) {
            w[i].isa = isa;
            w[i].stream = 1;
            w[i].p = buf + (size_t)i * slice;
            w[i].n = slice;
        }
        const double secs = run_together(w, threads);
        if (secs > 0.0 && k > 0) {
            const double gbs = (double)(slice * (size_t)threads * sizeof(float)) / secs * 1e-9;
            if (gbs > best)
                best = gbs;
        }
    }
    free(buf);
    out->read_gbs = best;
    out->read_bytes = read_bytes;
    return 0;
}
