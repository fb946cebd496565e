/*
 * llama_decode: a whole Llama-style decoder with edgeattn doing every layer's attention.
 *
 *   make -C examples llama_decode
 *   python3 tools/make-checkpoint.py model.bin          (random weights, nothing downloaded)
 *   ./examples/llama_decode model.bin --steps 256 --threads 2
 *
 * The checkpoint is the llama2.c format: seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; a negative vocab_size means the classifier has its own weights) followed by FP32
 * arrays: token embedding [vocab][dim], attention RMSNorm [layers][dim], wq [layers][dim][dim],
 * wk and wv [layers][kv_dim][dim], wo [layers][dim][dim], FFN RMSNorm [layers][dim], w1 and w3
 * [layers][hidden][dim], w2 [layers][dim][hidden], final RMSNorm [dim], two unused RoPE tables of
 * [seq_len][head_dim / 2] each, then the classifier [vocab][dim] when it is not the embedding.
 * Matrices are [out][in], row-major. The models llama2.c trains and exports load as they are.
 *
 * Generation is greedy from a BOS token. Each step runs, per layer: RMSNorm and the Q/K/V
 * projections (plain C loops here), attention, the output projection, and the SwiGLU feed-forward.
 * Attention is one edgeattn context created once for the whole model (config.num_layers layers of
 * KV cache): kv_append(layer) stores this token's K and V, rotated by RoPE (pairs (2p, 2p+1),
 * theta 10000, as llama2.c), and decode(layer) attends its one query to everything cached.
 *
 * --plain replaces the library by a plain C attention (llama2.c's loop: scores, softmax, weighted
 * sum of V, one head at a time, FP32, its own RoPE and KV cache), spread over the heads by a small
 * pthread pool when --threads > 1, so the two can be compared thread for thread. --logits writes
 * every step's logits; the tests run both ways and compare them.
 *
 * Options:
 *   --steps N         tokens to generate (default 256, at most seq_len)
 *   --threads T       threads for attention (edgeattn's workers, or the plain loop's pool); default 1
 *   --plain           plain C attention instead of edgeattn
 *   --cache f32|f16   edgeattn's KV-cache storage (default f32)
 *   --backend B       auto, cpu, cuda or opencl (default auto: a GPU when there is one)
 *   --app-pool        edgeattn runs its parallel work on this program's pool (config.parallel_for)
 *                     instead of starting its own threads
 *   --bos ID          the first token (default 1, llama2.c's BOS)
 *   --tokenizer FILE  a llama2.c tokenizer.bin: print text instead of token ids
 *   --logits FILE     per step: int32 position, int32 chosen token, vocab FP32 logits
 *   --quiet           print only the summary
 *
 * The matrix products are simple single-threaded loops: the point is the attention, whose share
 * of the time is printed at the end (clock_gettime around the attention of every layer), with the
 * median time of one layer's attention call (on a busy machine the sum also counts the time slices
 * other programs took, the median mostly does not). edgeattn's own workers are usually asleep by the
 * time the next layer's call comes, and the library runs a call too small to be worth waking them on
 * the calling thread; with --app-pool its work goes to this program's pool, which wakes its workers
 * for every call, as the plain loop's does.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define _FILE_OFFSET_BITS 64

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <edgeattn/edgeattn.h>

/* ------------------------------------------------------------------ model */

typedef struct model {
    int32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
    int32_t head_dim, kv_dim;
    float *data; /* the whole file after the header */
    const float *emb;       /* [vocab][dim] */
    const float *rms_att;   /* [layers][dim] */
    const float *wq;        /* [layers][dim][dim] */
    const float *wk, *wv;   /* [layers][kv_dim][dim] */
    const float *wo;        /* [layers][dim][dim] */
    const float *rms_ffn;   /* [layers][dim] */
    const float *w1, *w3;   /* [layers][hidden][dim] */
    const float *w2;        /* [layers][dim][hidden] */
    const float *rms_final; /* [dim] */
    const float *wcls;      /* [vocab][dim] */
} model;

static int load_model(const char *path, model *m)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "llama_decode: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int32_t h[7];
    if (fread(h, sizeof h, 1, f) != 1) {
        fprintf(stderr, "llama_decode: %s: shorter than the 28-byte header\n", path);
        fclose(f);
        return 1;
    }
    const int shared = h[5] > 0;
    m->dim = h[0];
    m->hidden = h[1];
    m->layers = h[2];
    m->heads = h[3];
    m->kv_heads = h[4];
    m->vocab = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    m->seq_len = h[6];
    if (m->dim <= 0 || m->hidden <= 0 || m->layers <= 0 || m->heads <= 0 || m->kv_heads <= 0 || m->vocab <= 0 ||
        m->seq_len <= 0 || m->dim % m->heads != 0 || m->heads % m->kv_heads != 0 || (m->dim / m->heads) % 2 != 0) {
        fprintf(stderr,
                "llama_decode: %s: not a llama2.c checkpoint (dim %d, hidden %d, layers %d, heads %d, kv heads %d, "
                "vocab %d, seq_len %d)\n",
                path, (int)h[0], (int)h[1], (int)h[2], (int)h[3], (int)h[4], (int)h[5], (int)h[6]);
        fclose(f);
        return 1;
    }
    m->head_dim = m->dim / m->heads;
    m->kv_dim = m->kv_heads * m->head_dim;

    /* float counts in 64 bits: a 7B model has more than 2^31 weights */
    const uint64_t dim = (uint64_t)m->dim, hid = (uint64_t)m->hidden, L = (uint64_t)m->layers;
    const uint64_t kvd = (uint64_t)m->kv_dim, voc = (uint64_t)m->vocab;
    const uint64_t rope_tables = (uint64_t)m->seq_len * (uint64_t)m->head_dim; /* two of seq_len x hd/2 */
    const uint64_t n = voc * dim + L * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * hid * dim) + dim +
                       rope_tables + (shared ? 0 : voc * dim);
    if (fseeko(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "llama_decode: %s: cannot seek: %s\n", path, strerror(errno));
        fclose(f);
        return 1;
    }
    const off_t size = ftello(f);
    if (size < 0 || (uint64_t)size != sizeof h + n * sizeof(float)) {
        fprintf(stderr, "llama_decode: %s: %lld bytes, the header's dimensions need %llu\n", path, (long long)size,
                (unsigned long long)(sizeof h + n * sizeof(float)));
        fclose(f);
        return 1;
    }
    if (n > SIZE_MAX / sizeof(float) || !(m->data = malloc((size_t)n * sizeof(float)))) {
        fprintf(stderr, "llama_decode: %s: no memory for %llu weights\n", path, (unsigned long long)n);
        fclose(f);
        return 1;
    }
    if (fseeko(f, (off_t)sizeof h, SEEK_SET) != 0 || fread(m->data, sizeof(float), (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "llama_decode: %s: read failed\n", path);
        fclose(f);
        free(m->data);
        m->data = NULL;
        return 1;
    }
    fclose(f);

    const float *p = m->data;
    m->emb = p;
    p += voc * dim;
    m->rms_att = p;
    p += L * dim;
    m->wq = p;
    p += L * dim * dim;
    m->wk = p;
    p += L * kvd * dim;
    m->wv = p;
    p += L * kvd * dim;
    m->wo = p;
    p += L * dim * dim;
    m->rms_ffn = p;
    p += L * dim;
    m->w1 = p;
    p += L * hid * dim;
    m->w2 = p;
    p += L * dim * hid;
    m->w3 = p;
    p += L * hid * dim;
    m->rms_final = p;
    p += dim;
    p += rope_tables; /* precomputed RoPE tables of older exports: RoPE is computed instead */
    m->wcls = shared ? m->emb : p;
    return 0;
}

/* ------------------------------------------------------------------ plain C building blocks */

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) { return seconds(CLOCK_MONOTONIC); }
/* CPU time of every thread of the process, read once per run (a system call: not around each
 * attention call). Far below threads x wall time, it says the machine was busy or the threads idle. */
static double cpu_now(void) { return seconds(CLOCK_PROCESS_CPUTIME_ID); }

static void rmsnorm(float *out, const float *x, const float *w, int n)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    const float inv = 1.0f / sqrtf(ss / (float)n + 1e-5f);
    for (int i = 0; i < n; i++)
        out[i] = w[i] * (inv * x[i]);
}

/* out[r] = W[r] . x for the rows of W [rows][n] */
static void matmul(float *out, const float *x, const float *w, int n, int rows)
{
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (size_t)r * (size_t)n;
        float s = 0.0f;
        for (int i = 0; i < n; i++)
            s += wr[i] * x[i];
        out[r] = s;
    }
}

/* ------------------------------------------------------------------ a small thread pool
 * Persistent workers that wait for a new job, spinning a few rounds and then sleeping on a condition
 * variable. The caller takes tasks too (one at a time, from an atomic counter). A worker must join a
 * job while it is open; once the caller has run out of tasks it closes the job and waits only for the
 * workers that joined, never for one that has not been scheduled yet (on a busy machine that wait
 * would cost a time slice per call). Used by the plain attention over heads, and by edgeattn itself
 * with --app-pool. */

typedef void (*task_fn)(void *arg, int32_t task, int32_t worker);

typedef struct pool pool;
typedef struct worker_arg {
    pool *p;
    int32_t index;
} worker_arg;

/* the job word: generation in the high 32 bits, the open flag, the number of workers that joined */
#define JOB_OPEN (UINT64_C(1) << 31)
#define JOB_JOINED (JOB_OPEN - 1)
#define JOB_GEN(w) ((uint32_t)((w) >> 32))

struct pool {
    int32_t threads; /* the caller counts as worker 0 */
    pthread_t *tid;
    worker_arg *args;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    int sleepers;       /* workers waiting on wake; under mu */
    int caller_waiting; /* under mu */
    _Atomic uint64_t job;
    atomic_int next, finished, stop;
    task_fn fn;
    void *arg;
    int32_t n_tasks;
};

#ifndef POOL_SPIN
#define POOL_SPIN 256
#endif

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

static void pool_drain(pool *p, int32_t worker)
{
    for (;;) {
        const int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks)
            return;
        p->fn(p->arg, t, worker);
    }
}

static void *pool_worker(void *argp)
{
    const worker_arg *a = argp;
    pool *p = a->p;
    uint32_t seen = 0;
    for (;;) {
        uint64_t w;
        int spins = 0;
        while (JOB_GEN(w = atomic_load_explicit(&p->job, memory_order_acquire)) == seen) {
            if (++spins < POOL_SPIN) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu); /* a new job is published under mu: no lost wake-up */
            p->sleepers++;
            while (JOB_GEN(atomic_load_explicit(&p->job, memory_order_acquire)) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        seen = JOB_GEN(w);
        if (atomic_load_explicit(&p->stop, memory_order_relaxed))
            return NULL;
        /* join while the job is open: fails if the caller closed it (or started another) meanwhile */
        int joined = 0;
        while ((w & JOB_OPEN) && JOB_GEN(w) == seen)
            if (atomic_compare_exchange_weak_explicit(&p->job, &w, w + 1, memory_order_acq_rel,
                                                      memory_order_acquire)) {
                joined = 1;
                break;
            }
        if (!joined)
            continue;
        pool_drain(p, a->index);
        atomic_fetch_add_explicit(&p->finished, 1, memory_order_release);
        pthread_mutex_lock(&p->mu); /* the caller checks finished under mu before it sleeps */
        if (p->caller_waiting)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

static int pool_start(pool *p, int32_t threads)
{
    memset(p, 0, sizeof *p);
    p->threads = threads;
    atomic_init(&p->job, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->finished, 0);
    atomic_init(&p->stop, 0);
    if (threads <= 1)
        return 0;
    p->tid = calloc((size_t)threads, sizeof *p->tid);
    p->args = calloc((size_t)threads, sizeof *p->args);
    if (!p->tid || !p->args || pthread_mutex_init(&p->mu, NULL) != 0) {
        p->threads = 1; /* nothing to stop */
        return 1;
    }
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        p->threads = 1;
        return 1;
    }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        p->threads = 1;
        return 1;
    }
    for (int32_t i = 1; i < threads; i++) {
        p->args[i].p = p;
        p->args[i].index = i;
        if (pthread_create(&p->tid[i], NULL, pool_worker, &p->args[i]) != 0) {
            p->threads = i; /* stop the ones that started */
            return 1;
        }
    }
    return 0;
}

/* Publishes a new generation of the job word (open or not) and wakes the sleeping workers. */
static void pool_publish(pool *p, uint64_t open)
{
    pthread_mutex_lock(&p->mu);
    const uint64_t gen = JOB_GEN(atomic_load_explicit(&p->job, memory_order_relaxed)) + 1u;
    atomic_store_explicit(&p->job, (gen << 32) | open, memory_order_release);
    if (p->sleepers > 0)
        pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

static void pool_run(pool *p, task_fn fn, void *arg, int32_t n_tasks)
{
    if (p->threads <= 1 || n_tasks <= 1) {
        for (int32_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->finished, 0, memory_order_relaxed);
    pool_publish(p, JOB_OPEN);
    pool_drain(p, 0);
    /* no task left: close the job; only the workers that joined can still be running tasks */
    const int joined = (int)(atomic_fetch_and_explicit(&p->job, ~JOB_OPEN, memory_order_acq_rel) & JOB_JOINED);
    for (int spins = 0; spins < POOL_SPIN; spins++) {
        if (atomic_load_explicit(&p->finished, memory_order_acquire) == joined)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    p->caller_waiting = 1;
    while (atomic_load_explicit(&p->finished, memory_order_acquire) < joined)
        pthread_cond_wait(&p->done, &p->mu);
    p->caller_waiting = 0;
    pthread_mutex_unlock(&p->mu);
}

static void pool_stop(pool *p)
{
    if (p->threads > 1) {
        atomic_store_explicit(&p->stop, 1, memory_order_relaxed);
        pool_publish(p, 0); /* a closed job of a new generation: every worker wakes and sees stop */
        for (int32_t i = 1; i < p->threads; i++)
            pthread_join(p->tid[i], NULL);
        pthread_cond_destroy(&p->wake);
        pthread_cond_destroy(&p->done);
        pthread_mutex_destroy(&p->mu);
    }
    free(p->tid);
    free(p->args);
}

/* config.parallel_for for --app-pool: edgeattn's tasks on this pool (n_workers == its threads) */
static void app_parallel_for(void *user, edgeattn_task_fn fn, void *arg, int32_t n_tasks, int32_t n_workers)
{
    (void)n_workers;
    pool_run(user, fn, arg, n_tasks);
}

/* ------------------------------------------------------------------ the decoder state */

typedef struct decoder {
    const model *m;
    int32_t steps;
    /* activations of the current token */
    float *x, *xb, *xb2; /* [dim] */
    float *q;            /* [heads][head_dim] */
    float *k, *v;        /* [kv_heads][head_dim] */
    float *att_out;      /* [heads][head_dim] */
    float *hb, *hb2;     /* [hidden] */
    float *logits;       /* [vocab] */
    /* edgeattn */
    edgeattn_context *ctx;
    edgeattn_tensor tq, tk, tv, tout; /* views of q, k, v, att_out for one token */
    /* plain attention */
    int plain;
    float *key_cache, *value_cache; /* [layers][steps][kv_dim], rotated keys */
    float *scores;                  /* [heads][steps] */
    double *inv_freq;               /* [head_dim / 2] */
    float *rope_cs;                 /* [head_dim / 2][2] cos, sin at rope_pos */
    int32_t rope_pos;
    pool pool;
    /* timing */
    double attn_seconds;
    float *call_us; /* [steps][layers] each attention call's time, for the medians */
} decoder;

/* One plain attention head (a pool task): llama2.c's loop over the cached positions 0..pos. */
typedef struct plain_job {
    decoder *d;
    int32_t layer, pos;
} plain_job;

static void plain_head(void *arg, int32_t h, int32_t worker)
{
    (void)worker;
    const plain_job *J = arg;
    const decoder *d = J->d;
    const model *m = d->m;
    const int32_t hd = m->head_dim, kvh = h / (m->heads / m->kv_heads);
    const size_t row = (size_t)m->kv_dim;
    const float *kc = d->key_cache + (size_t)J->layer * (size_t)d->steps * row + (size_t)kvh * (size_t)hd;
    const float *vc = d->value_cache + (size_t)J->layer * (size_t)d->steps * row + (size_t)kvh * (size_t)hd;
    const float *q = d->q + (size_t)h * (size_t)hd;
    float *att = d->scores + (size_t)h * (size_t)d->steps;
    const float inv_sqrt = 1.0f / sqrtf((float)hd);
    float mx = -INFINITY;
    for (int32_t t = 0; t <= J->pos; t++) {
        const float *k = kc + (size_t)t * row;
        float s = 0.0f;
        for (int32_t i = 0; i < hd; i++)
            s += q[i] * k[i];
        att[t] = s * inv_sqrt;
        mx = att[t] > mx ? att[t] : mx;
    }
    float sum = 0.0f;
    for (int32_t t = 0; t <= J->pos; t++) {
        att[t] = expf(att[t] - mx);
        sum += att[t];
    }
    float *out = d->att_out + (size_t)h * (size_t)hd;
    memset(out, 0, sizeof(float) * (size_t)hd);
    for (int32_t t = 0; t <= J->pos; t++) {
        const float *v = vc + (size_t)t * row;
        const float a = att[t] / sum;
        for (int32_t i = 0; i < hd; i++)
            out[i] += a * v[i];
    }
}

/* Pairs (2p, 2p+1) of every head of x [n_heads][head_dim] rotated by pos * theta^(-2p/head_dim). */
static void plain_rope(decoder *d, float *x, int32_t n_heads, int32_t pos)
{
    const int32_t hd = d->m->head_dim;
    if (d->rope_pos != pos) { /* angles in double, rounded to FP32 sin/cos */
        for (int32_t p = 0; p < hd / 2; p++) {
            const double a = (double)pos * d->inv_freq[p];
            d->rope_cs[2 * p] = (float)cos(a);
            d->rope_cs[2 * p + 1] = (float)sin(a);
        }
        d->rope_pos = pos;
    }
    for (int32_t h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * (size_t)hd;
        for (int32_t p = 0; p < hd / 2; p++) {
            const float c = d->rope_cs[2 * p], s = d->rope_cs[2 * p + 1], a = xh[2 * p], b = xh[2 * p + 1];
            xh[2 * p] = a * c - b * s;
            xh[2 * p + 1] = a * s + b * c;
        }
    }
}

/* Attention of layer l for the token at pos: q, k, v in, att_out out. 0 on success. */
static int attention(decoder *d, int32_t l, int32_t pos)
{
    const model *m = d->m;
    if (d->plain) {
        plain_rope(d, d->q, m->heads, pos);
        plain_rope(d, d->k, m->kv_heads, pos);
        const size_t off = ((size_t)l * (size_t)d->steps + (size_t)pos) * (size_t)m->kv_dim;
        memcpy(d->key_cache + off, d->k, sizeof(float) * (size_t)m->kv_dim);
        memcpy(d->value_cache + off, d->v, sizeof(float) * (size_t)m->kv_dim);
        plain_job J = {d, l, pos};
        pool_run(&d->pool, plain_head, &J, m->heads);
        return 0;
    }
    edgeattn_status st = edgeattn_kv_append(d->ctx, l, NULL, &d->tk, &d->tv, NULL, 0);
    if (st == EDGEATTN_OK)
        st = edgeattn_decode(d->ctx, l, NULL, NULL, &d->tq, &d->tout, NULL);
    if (st != EDGEATTN_OK) {
        fprintf(stderr, "llama_decode: layer %d, position %d: %s: %s\n", (int)l, (int)pos, edgeattn_status_string(st),
                edgeattn_message_of(d->ctx));
        return 1;
    }
    return 0;
}

/* The logits after token `token` at position pos. 0 on success. */
static int forward(decoder *d, int32_t token, int32_t pos)
{
    const model *m = d->m;
    const int32_t dim = m->dim, hid = m->hidden, kvd = m->kv_dim;
    memcpy(d->x, m->emb + (size_t)token * (size_t)dim, sizeof(float) * (size_t)dim);
    for (int32_t l = 0; l < m->layers; l++) {
        const size_t L = (size_t)l;
        rmsnorm(d->xb, d->x, m->rms_att + L * (size_t)dim, dim);
        matmul(d->q, d->xb, m->wq + L * (size_t)dim * (size_t)dim, dim, dim);
        matmul(d->k, d->xb, m->wk + L * (size_t)kvd * (size_t)dim, dim, kvd);
        matmul(d->v, d->xb, m->wv + L * (size_t)kvd * (size_t)dim, dim, kvd);

        const double t0 = now();
        if (attention(d, l, pos))
            return 1;
        const double dt = now() - t0;
        d->attn_seconds += dt;
        d->call_us[(size_t)pos * (size_t)m->layers + (size_t)l] = (float)(1e6 * dt);

        matmul(d->xb2, d->att_out, m->wo + L * (size_t)dim * (size_t)dim, dim, dim);
        for (int32_t i = 0; i < dim; i++)
            d->x[i] += d->xb2[i];

        /* SwiGLU feed-forward: w2 (silu(w1 x) * (w3 x)) */
        rmsnorm(d->xb, d->x, m->rms_ffn + L * (size_t)dim, dim);
        matmul(d->hb, d->xb, m->w1 + L * (size_t)hid * (size_t)dim, dim, hid);
        matmul(d->hb2, d->xb, m->w3 + L * (size_t)hid * (size_t)dim, dim, hid);
        for (int32_t i = 0; i < hid; i++)
            d->hb[i] = d->hb[i] / (1.0f + expf(-d->hb[i])) * d->hb2[i];
        matmul(d->xb, d->hb, m->w2 + L * (size_t)dim * (size_t)hid, hid, dim);
        for (int32_t i = 0; i < dim; i++)
            d->x[i] += d->xb[i];
    }
    rmsnorm(d->x, d->x, m->rms_final, dim);
    matmul(d->logits, d->x, m->wcls, dim, m->vocab);
    return 0;
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v in place). */
static double median_us(float *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_float);
    return n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2 - 1] + (double)v[n / 2]);
}

/* ------------------------------------------------------------------ optional tokenizer */

typedef struct tokenizer {
    char **piece; /* [vocab], NUL-terminated */
    int32_t n;
} tokenizer;

static int load_tokenizer(const char *path, int32_t vocab, tokenizer *t)
{
    t->n = 0;
    t->piece = calloc((size_t)vocab, sizeof *t->piece);
    FILE *f = fopen(path, "rb");
    int32_t max_len;
    if (!t->piece || !f || fread(&max_len, sizeof max_len, 1, f) != 1) {
        fprintf(stderr, "llama_decode: %s: cannot read the tokenizer\n", path);
        if (f)
            fclose(f);
        return 1;
    }
    for (int32_t i = 0; i < vocab; i++) {
        float score;
        int32_t len;
        if (fread(&score, sizeof score, 1, f) != 1 || fread(&len, sizeof len, 1, f) != 1 || len < 0 ||
            len > 1 << 16 || !(t->piece[i] = malloc((size_t)len + 1)) ||
            fread(t->piece[i], 1, (size_t)len, f) != (size_t)len) {
            fprintf(stderr, "llama_decode: %s: token %d unreadable (fewer pieces than the vocabulary?)\n", path,
                    (int)i);
            fclose(f);
            return 1;
        }
        t->piece[i][len] = '\0';
        t->n = i + 1;
    }
    fclose(f);
    return 0;
}

static void print_token(const tokenizer *t, int32_t prev, int32_t token, int32_t bos)
{
    if (!t->piece) {
        printf("%d ", (int)token);
        return;
    }
    const char *p = t->piece[token];
    if (prev == bos && p[0] == ' ')
        p++; /* the tokenizer's leading space after BOS */
    unsigned byte;
    if (sscanf(p, "<0x%02X>", &byte) == 1) {
        if (byte >= 32 || byte == '\n' || byte == '\t')
            putchar((int)byte);
        return;
    }
    fputs(p, stdout);
}

static void free_tokenizer(tokenizer *t)
{
    for (int32_t i = 0; i < t->n; i++)
        free(t->piece[i]);
    free(t->piece);
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr, "usage: llama_decode CHECKPOINT [--steps N] [--threads T] [--plain] [--cache f32|f16]\n"
                    "                    [--backend auto|cpu|cuda|opencl] [--app-pool] [--bos ID]\n"
                    "                    [--tokenizer FILE] [--logits FILE] [--quiet]\n");
}

static int parse_int(const char *s, long lo, long hi, int32_t *out)
{
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 1;
    *out = (int32_t)v;
    return 0;
}

static void *zalloc(size_t n, size_t size, int *failed)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        *failed = 1;
    return p;
}

int main(int argc, char **argv)
{
    const char *ckpt = NULL, *tok_path = NULL, *logits_path = NULL;
    int32_t steps = 256, threads = 1, bos = 1;
    int plain = 0, quiet = 0, app_pool = 0;
    edgeattn_dtype cache = EDGEATTN_F32;
    edgeattn_backend backend = EDGEATTN_BACKEND_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--plain"))
            plain = 1;
        else if (!strcmp(a, "--quiet"))
            quiet = 1;
        else if (!strcmp(a, "--app-pool"))
            app_pool = 1;
        else if (a[0] == '-' && a[1] == '-' && !val)
            bad = 1;
        else if (!strcmp(a, "--steps"))
            bad = parse_int(argv[++i], 1, INT32_MAX, &steps);
        else if (!strcmp(a, "--threads"))
            bad = parse_int(argv[++i], 1, 1024, &threads);
        else if (!strcmp(a, "--bos"))
            bad = parse_int(argv[++i], 0, INT32_MAX, &bos);
        else if (!strcmp(a, "--tokenizer"))
            tok_path = argv[++i];
        else if (!strcmp(a, "--logits"))
            logits_path = argv[++i];
        else if (!strcmp(a, "--cache")) {
            i++;
            if (!strcmp(val, "f32"))
                cache = EDGEATTN_F32;
            else if (!strcmp(val, "f16"))
                cache = EDGEATTN_F16;
            else
                bad = 1;
        } else if (!strcmp(a, "--backend")) {
            i++;
            if (!strcmp(val, "auto"))
                backend = EDGEATTN_BACKEND_AUTO;
            else if (!strcmp(val, "cpu"))
                backend = EDGEATTN_BACKEND_CPU;
            else if (!strcmp(val, "cuda"))
                backend = EDGEATTN_BACKEND_CUDA;
            else if (!strcmp(val, "opencl"))
                backend = EDGEATTN_BACKEND_OPENCL;
            else
                bad = 1;
        } else if (a[0] != '-' && !ckpt)
            ckpt = a;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "llama_decode: bad argument near '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (!ckpt) {
        usage();
        return 2;
    }
    if (plain && (cache != EDGEATTN_F32 || app_pool || backend != EDGEATTN_BACKEND_AUTO)) {
        fprintf(stderr, "llama_decode: --cache, --backend and --app-pool are edgeattn's: not with --plain\n");
        return 2;
    }

    model m;
    if (load_model(ckpt, &m))
        return 1;
    if (steps > m.seq_len)
        steps = m.seq_len;
    if (bos >= m.vocab) {
        fprintf(stderr, "llama_decode: --bos %d is outside the vocabulary of %d\n", (int)bos, (int)m.vocab);
        free(m.data);
        return 2;
    }
    tokenizer tok = {NULL, 0};
    if (tok_path && load_tokenizer(tok_path, m.vocab, &tok)) {
        free_tokenizer(&tok);
        free(m.data);
        return 1;
    }

    int rc = 1, oom = 0;
    decoder d;
    memset(&d, 0, sizeof d);
    d.m = &m;
    d.steps = steps;
    d.plain = plain;
    d.rope_pos = -1;
    d.x = zalloc((size_t)m.dim, sizeof(float), &oom);
    d.xb = zalloc((size_t)m.dim, sizeof(float), &oom);
    d.xb2 = zalloc((size_t)m.dim, sizeof(float), &oom);
    d.q = zalloc((size_t)m.dim, sizeof(float), &oom);
    d.att_out = zalloc((size_t)m.dim, sizeof(float), &oom);
    d.k = zalloc((size_t)m.kv_dim, sizeof(float), &oom);
    d.v = zalloc((size_t)m.kv_dim, sizeof(float), &oom);
    d.hb = zalloc((size_t)m.hidden, sizeof(float), &oom);
    d.hb2 = zalloc((size_t)m.hidden, sizeof(float), &oom);
    d.logits = zalloc((size_t)m.vocab, sizeof(float), &oom);
    d.call_us = zalloc((size_t)steps * (size_t)m.layers, sizeof(float), &oom);
    if (plain) {
        const size_t cache_floats = (size_t)m.layers * (size_t)steps * (size_t)m.kv_dim;
        d.key_cache = zalloc(cache_floats, sizeof(float), &oom);
        d.value_cache = zalloc(cache_floats, sizeof(float), &oom);
        d.scores = zalloc((size_t)m.heads * (size_t)steps, sizeof(float), &oom);
        d.inv_freq = zalloc((size_t)m.head_dim / 2, sizeof(double), &oom);
        d.rope_cs = zalloc((size_t)m.head_dim, sizeof(float), &oom);
        if (!oom)
            for (int32_t p = 0; p < m.head_dim / 2; p++)
                d.inv_freq[p] = pow(10000.0, -2.0 * (double)p / (double)m.head_dim);
    }
    FILE *lf = NULL;
    if (oom) {
        fprintf(stderr, "llama_decode: out of memory\n");
        goto done;
    }
    if ((plain || app_pool) && pool_start(&d.pool, threads)) {
        fprintf(stderr, "llama_decode: cannot start %d threads\n", (int)threads);
        goto done;
    }

    const char *what = "plain C loop";
    if (!plain) {
        /* one context for the whole model, created once: every layer's KV cache, RoPE, threads */
        edgeattn_config cfg;
        edgeattn_config_default(&cfg);
        cfg.flags = EDGEATTN_FLAG_KV_CACHE;
        cfg.num_layers = m.layers;
        cfg.max_batch = 1;
        cfg.max_q_len = 1;
        cfg.max_kv_len = steps;
        cfg.max_heads = m.heads;
        cfg.max_kv_heads = m.kv_heads;
        cfg.max_head_dim = m.head_dim;
        cfg.kv_cache_dtype = cache;
        cfg.num_threads = threads;
        cfg.backend = backend;
        cfg.rope.style = EDGEATTN_ROPE_INTERLEAVED;
        cfg.rope.theta = 10000.0f;
        if (app_pool) {
            cfg.parallel_for = app_parallel_for;
            cfg.parallel_user = &d.pool;
        }
        edgeattn_message msg;
        edgeattn_plan_info plan;
        edgeattn_status st = edgeattn_plan(&cfg, &plan, &msg);
        if (st == EDGEATTN_OK)
            st = edgeattn_create(&cfg, NULL, 0, &d.ctx, &msg);
        if (st != EDGEATTN_OK) {
            fprintf(stderr, "llama_decode: edgeattn_create: %s: %s\n", edgeattn_status_string(st), msg.text);
            goto done;
        }
        /* the views of one token's q, k, v and output, described once: [1, heads, 1, head_dim] */
        d.tq = edgeattn_tensor_bhsd(d.q, EDGEATTN_F32, 1, m.heads, 1, m.head_dim);
        d.tout = edgeattn_tensor_bhsd(d.att_out, EDGEATTN_F32, 1, m.heads, 1, m.head_dim);
        d.tk = edgeattn_tensor_bhsd(d.k, EDGEATTN_F32, 1, m.kv_heads, 1, m.head_dim);
        d.tv = edgeattn_tensor_bhsd(d.v, EDGEATTN_F32, 1, m.kv_heads, 1, m.head_dim);
        edgeattn_backend_info info;
        if (edgeattn_get_backend_info(d.ctx, &info) == EDGEATTN_OK && !quiet)
            printf("edgeattn %s: backend %s, tier %s, %d thread%s%s; %zu bytes planned, %zu of them the %s KV cache\n",
                   edgeattn_version(), info.backend_name, info.tier, (int)info.threads, info.threads > 1 ? "s" : "",
                   app_pool ? " (the application's pool)" : "", plan.host_bytes + plan.device_bytes,
                   plan.kv_cache_bytes, cache == EDGEATTN_F16 ? "FP16" : "FP32");
        what = "edgeattn";
    }
    if (!quiet)
        printf("model: dim %d, hidden %d, %d layers, %d/%d heads of %d, vocab %d, seq_len %d; %d steps\n",
               (int)m.dim, (int)m.hidden, (int)m.layers, (int)m.heads, (int)m.kv_heads, (int)m.head_dim,
               (int)m.vocab, (int)m.seq_len, (int)steps);
    if (logits_path && !(lf = fopen(logits_path, "wb"))) {
        fprintf(stderr, "llama_decode: %s: %s\n", logits_path, strerror(errno));
        goto done;
    }

    int32_t token = bos;
    const double t_start = now(), cpu_start = cpu_now();
    for (int32_t pos = 0; pos < steps; pos++) {
        if (forward(&d, token, pos))
            goto done;
        int32_t next = 0; /* greedy: the first largest logit */
        for (int32_t i = 1; i < m.vocab; i++)
            if (d.logits[i] > d.logits[next])
                next = i;
        if (lf) {
            const int32_t rec[2] = {pos, next};
            if (fwrite(rec, sizeof rec, 1, lf) != 1 || fwrite(d.logits, sizeof(float), (size_t)m.vocab, lf) !=
                                                            (size_t)m.vocab) {
                fprintf(stderr, "llama_decode: %s: write failed\n", logits_path);
                goto done;
            }
        }
        if (!quiet)
            print_token(&tok, token, next, bos);
        token = next;
    }
    const double total = now() - t_start, cpu_total = cpu_now() - cpu_start;
    if (!quiet)
        printf("\n");
    printf("%d tokens in %.3f s: %.2f tokens/s\n", (int)steps, total, (double)steps / total);
    printf("attention (%s, %d thread%s): %.3f s, %.1f%% of the time, %.1f us per token per layer\n", what,
           (int)threads, threads > 1 ? "s" : "", d.attn_seconds, 100.0 * d.attn_seconds / total,
           1e6 * d.attn_seconds / ((double)steps * (double)m.layers));
    /* medians: on a busy machine the sum above also counts the time slices other programs took
     * during some calls, the median call mostly does not */
    const int32_t tail = steps < 64 ? steps : 64;
    const double tail_us =
        median_us(d.call_us + (size_t)(steps - tail) * (size_t)m.layers, (size_t)tail * (size_t)m.layers);
    const double all_us = median_us(d.call_us, (size_t)steps * (size_t)m.layers); /* (sorts: after the tail) */
    printf("attention per layer call: median %.1f us over the run, %.1f us over the last %d positions\n", all_us,
           tail_us, (int)tail);
    printf("CPU time of the process: %.3f s in %.3f s\n", cpu_total, total);
    rc = 0;

done:
    if (lf && fclose(lf) != 0 && rc == 0) {
        fprintf(stderr, "llama_decode: %s: write failed\n", logits_path);
        rc = 1;
    }
    edgeattn_destroy(d.ctx);
    if (plain || app_pool)
        pool_stop(&d.pool);
    free(d.x);
    free(d.xb);
    free(d.xb2);
    free(d.q);
    free(d.att_out);
    free(d.k);
    free(d.v);
    free(d.hb);
    free(d.hb2);
    free(d.logits);
    free(d.call_us);
    free(d.key_cache);
    free(d.value_cache);
    free(d.scores);
    free(d.inv_freq);
    free(d.rope_cs);
    free_tokenizer(&tok);
    free(m.data);
    return rc;
}
