/*
 * The memory promise: after create, nothing allocates or creates threads.
 *
 * Linked with -Wl,--wrap=malloc,calloc,realloc,free,posix_memalign,aligned_alloc,pthread_create, so
 * every such call made by the library's objects (the static archive) and by this file goes through
 * the counters below before reaching the real function (under AddressSanitizer, its interceptor).
 * Calls made inside other shared libraries (libc itself, cmocka) are not seen: this measures the
 * library's own calls, which is the promise.
 *
 * Checked: plan obtains nothing; create obtains its memory once (one allocation, num_threads - 1
 * threads) or nothing at all with a caller buffer; thousands of attention, kv_append, decode,
 * kv_reset, kv_length and failing calls (bad arguments, requests beyond the plan, a full KV cache)
 * on every CPU tier then make zero calls; destroy frees only what create obtained. Results of the
 * counted calls are compared with the reference afterwards, so they really ran. With
 * config.parallel_for, create starts no thread and the work runs through the caller's pool; a
 * decode-only plan holds the cache and little else.
 */
#include "test_common.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reference.h"

/* ---------------------------------------------------------------- the wrappers */

enum { C_MALLOC, C_CALLOC, C_REALLOC, C_FREE, C_POSIX_MEMALIGN, C_ALIGNED_ALLOC, C_PTHREAD_CREATE, C_COUNT };
static const char *const counter_names[C_COUNT] = {"malloc", "calloc", "realloc", "free", "posix_memalign",
                                                   "aligned_alloc", "pthread_create"};
static atomic_int g_counting;
static atomic_long g_count[C_COUNT];

static void bump(int which)
{
    if (atomic_load(&g_counting))
        atomic_fetch_add(&g_count[which], 1);
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

void *__wrap_malloc(size_t n)
{
    bump(C_MALLOC);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t s)
{
    bump(C_CALLOC);
    return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n)
{
    bump(C_REALLOC);
    return __real_realloc(p, n);
}
void __wrap_free(void *p)
{
    bump(C_FREE);
    __real_free(p);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    bump(C_POSIX_MEMALIGN);
    return __real_posix_memalign(p, a, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n)
{
    bump(C_ALIGNED_ALLOC);
    return __real_aligned_alloc(a, n);
}
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    bump(C_PTHREAD_CREATE);
    return __real_pthread_create(t, attr, fn, arg);
}

static void start_counting(void)
{
    for (int i = 0; i < C_COUNT; i++)
        atomic_store(&g_count[i], 0);
    atomic_store(&g_counting, 1);
}

/* Stops counting; fills counts[] and returns the number of allocator calls (all but threads). */
static long stop_counting(long counts[C_COUNT])
{
    atomic_store(&g_counting, 0);
    long allocs = 0;
    for (int i = 0; i < C_COUNT; i++) {
        counts[i] = atomic_load(&g_count[i]);
        if (i != C_PTHREAD_CREATE)
            allocs += counts[i];
    }
    return allocs;
}

static void describe_counts(const long counts[C_COUNT], char *buf, size_t len)
{
    int o = 0;
    for (int i = 0; i < C_COUNT && o < (int)len; i++)
        o += snprintf(buf + o, len - (size_t)o, "%s%s %ld", i ? ", " : "", counter_names[i], counts[i]);
}

static void expect_none(const char *what)
{
    long counts[C_COUNT];
    const long allocs = stop_counting(counts);
    if (allocs != 0 || counts[C_PTHREAD_CREATE] != 0) {
        char buf[256];
        describe_counts(counts, buf, sizeof buf);
        fail_msg("%s: the library allocated or created threads: %s", what, buf);
    }
}

/* ---------------------------------------------------------------- the workload */

enum { B = 2, HQ = 4, HKV = 2, D = 64, MAX_Q = 24, MAX_KV = 320, W = 40 };

typedef struct workload {
    tc_attn_data small, big, masked, half;   /* attention cases, reference computed before counting */
    tc_tensor ak, av, qd, outd, lsed;        /* decode */
    tc_tensor bad_q, bad_k, bad_o;           /* head dim 68 */
} workload;

static void make_workload(workload *w)
{
    const uint64_t seed = tc_seed();
    tc_attn_case c = tc_case(B, HQ, HKV, 9, 61, D); /* rows path for some row blocks */
    c.causal = 1;
    c.lse = 1;
    tc_attn_prepare(&w->small, &c, seed, 1);
    tc_attn_case g = tc_case(1, HQ, 1, MAX_Q, MAX_KV, D); /* packed path, several key tiles */
    g.bias_mode = TC_BIAS_BCAST_B;
    g.softcap = 20.0f;
    g.kvlayout = TC_BSHD;
    tc_attn_prepare(&w->big, &g, seed, 2);
    tc_attn_case m = tc_case(B, HQ, HKV, 17, 100, D);
    m.use_kv_lens = 1;
    m.kv_lens[0] = 0; /* a fully masked sequence */
    m.kv_lens[1] = 77;
    m.wl = 5;
    m.wr = 3;
    m.lse = 1;
    tc_attn_prepare(&w->masked, &m, seed, 3);
    tc_attn_case h = tc_case(1, HQ, HKV, 3, 290, D); /* few rows, long KV: the split-KV path */
    h.qdt = EDGEATTN_F16;
    h.kvdt = EDGEATTN_BF16;
    h.odt = EDGEATTN_F16;
    h.lse = 1;
    tc_attn_prepare(&w->half, &h, seed, 4);
    tc_rng r;
    tc_rng_init(&r, seed, 5);
    tc_tensor_alloc(&w->ak, EDGEATTN_F32, B, HKV, 3, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&w->av, EDGEATTN_F16, B, HKV, 3, D, TC_BSHD, 0, 0, 0);
    tc_tensor_alloc(&w->qd, EDGEATTN_F32, B, HQ, 2, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&w->outd, EDGEATTN_F32, B, HQ, 2, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&w->lsed, EDGEATTN_F32, B, HQ, 2, 1, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&w->bad_q, EDGEATTN_F32, 1, 1, 1, 68, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&w->bad_k, EDGEATTN_F32, 1, 1, 5, 68, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&w->bad_o, EDGEATTN_F32, 1, 1, 1, 68, TC_BHSD, 0, 0, 0);
    tc_fill_random(&w->bad_k, &r, -1, 1);
    tc_fill_canary(&w->bad_o);
    tc_fill_random(&w->ak, &r, -1, 1);
    tc_fill_random(&w->av, &r, -1, 1);
    tc_fill_random(&w->qd, &r, -1, 1);
    tc_fill_random(&w->bad_q, &r, -1, 1);
}

static void free_workload(workload *w)
{
    tc_attn_free(&w->small);
    tc_attn_free(&w->big);
    tc_attn_free(&w->masked);
    tc_attn_free(&w->half);
    tc_tensor_free(&w->ak);
    tc_tensor_free(&w->av);
    tc_tensor_free(&w->qd);
    tc_tensor_free(&w->outd);
    tc_tensor_free(&w->lsed);
    tc_tensor_free(&w->bad_q);
    tc_tensor_free(&w->bad_k);
    tc_tensor_free(&w->bad_o);
}

static int iterations(void)
{
    return tc_long() ? 20000 : 300;
}

/* The counted loop. Returns the number of calls made. Statuses are collected, not asserted, while
 * counting (cmocka's failure path is not part of the promise); they are checked afterwards. */
typedef struct tally {
    long calls, unexpected;
    char first_bad[160];
} tally;

static void note(tally *t, edgeattn_status got, edgeattn_status want, const char *what, int i)
{
    t->calls++;
    if (got != want) {
        if (!t->unexpected)
            snprintf(t->first_bad, sizeof t->first_bad, "iteration %d: %s returned %d, expected %d", i, what, (int)got,
                     (int)want);
        t->unexpected++;
    }
}

static void run_workload(edgeattn_context *ctx, workload *w, bool ring, tally *t)
{
    tc_attn_data *cases[4] = {&w->small, &w->big, &w->masked, &w->half};
    const int n = iterations();
    for (int i = 0; i < n; i++) {
        /* attention, one of four cases */
        tc_attn_data *d = cases[i % 4];
        d->params.lse = d->c.lse ? &d->lse_t : NULL;
        note(t, edgeattn_attention(ctx, &d->q.t, &d->k.t, &d->v.t, &d->out.t, &d->params), EDGEATTN_OK, "attention",
             i);
        /* append one or three tokens per sequence, then decode over the cache */
        const int32_t n_new[B] = {1 + (i % 3 == 0 ? 2 : 0), 1};
        edgeattn_status want = EDGEATTN_OK;
        int64_t total0 = 0;
        int32_t held0 = 0;
        note(t, edgeattn_kv_length(ctx, 0, 0, &total0, &held0), EDGEATTN_OK, "kv_length", i);
        if (!ring && held0 + n_new[0] > MAX_KV)
            want = EDGEATTN_ERR_CAPACITY; /* full: refused, nothing appended */
        note(t, edgeattn_kv_append(ctx, 0, NULL, &w->ak.t, &w->av.t, n_new, i & 1), want, "kv_append", i);
        if (want != EDGEATTN_OK)
            note(t, edgeattn_kv_reset(ctx, -1), EDGEATTN_OK, "kv_reset", i);
        if (ring && i % 5 == 2) /* paged: sequence 1 shares 0's pages; the next append copies the shared ones */
            note(t, edgeattn_kv_fork(ctx, 0, 1), EDGEATTN_OK, "kv_fork", i);
        int32_t held1 = 0;
        note(t, edgeattn_kv_length(ctx, 0, 1, NULL, &held1), EDGEATTN_OK, "kv_length", i);
        if (held1 >= 2) {
            edgeattn_params p;
            edgeattn_params_default(&p);
            p.causal = 1;
            p.window_left = (i % 5 == 0) ? 7 : -1;
            edgeattn_tensor lse = w->lsed.t;
            p.lse = (i & 1) ? &lse : NULL;
            note(t, edgeattn_decode(ctx, 0, NULL, NULL, &w->qd.t, &w->outd.t, &p), EDGEATTN_OK, "decode", i);
        }
        /* failing calls every few iterations */
        if (i % 7 == 0) {
            note(t, edgeattn_attention(ctx, &w->bad_q.t, &w->bad_k.t, &w->bad_k.t, &w->bad_o.t, NULL),
                 EDGEATTN_ERR_HEAD_DIM, "attention (bad head dim)", i);
            note(t, edgeattn_attention(ctx, NULL, &w->small.k.t, &w->small.v.t, &w->small.out.t, NULL),
                 EDGEATTN_ERR_NULL_ARG, "attention (NULL q)", i);
            /* one query row more than the plan (views inside the big case's buffers) */
            edgeattn_tensor q = edgeattn_tensor_bhsd(w->big.q.t.data, EDGEATTN_F32, 1, 1, MAX_Q + 1, D);
            q.bytes = w->big.q.t.bytes;
            edgeattn_tensor o = edgeattn_tensor_bhsd(w->big.out.t.data, EDGEATTN_F32, 1, 1, MAX_Q + 1, D);
            o.bytes = w->big.out.t.bytes;
            note(t, edgeattn_attention(ctx, &q, &w->big.k.t, &w->big.v.t, &o, NULL), EDGEATTN_ERR_CAPACITY,
                 "attention (beyond the plan)", i);
            edgeattn_params p;
            edgeattn_params_default(&p);
            p.window_left = -3;
            note(t, edgeattn_decode(ctx, 0, NULL, NULL, &w->qd.t, &w->outd.t, &p), EDGEATTN_ERR_INVALID_ARG, "decode (bad window)", i);
            const int32_t too_many[B] = {4, 0};
            note(t, edgeattn_kv_append(ctx, 0, NULL, &w->ak.t, &w->av.t, too_many, 0), EDGEATTN_ERR_INVALID_ARG,
                 "kv_append (n_new > N)", i);
            edgeattn_backend_info info;
            note(t, edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK, "get_backend_info", i);
            (void)edgeattn_message_of(ctx);
            (void)edgeattn_status_string(EDGEATTN_ERR_CAPACITY);
        }
    }
}

/* After the counted loop: the counted calls computed the right thing. */
static void check_results(edgeattn_context *ctx, workload *w, const char *label)
{
    tc_attn_data *cases[4] = {&w->small, &w->big, &w->masked, &w->half};
    for (int i = 0; i < 4; i++) {
        tc_attn_data *d = cases[i];
        tc_result res;
        memset(&res, 0, sizeof res);
        tc_compare(&res, &d->out, d->c.lse ? &d->lse : NULL, d->ref, d->ref_lse, d->c.B, d->c.Hq, d->c.Nq, d->c.D,
                   tc_tolerance(d->c.qdt, d->c.kvdt, d->c.odt));
        if (!res.ok) {
            char desc[512];
            tc_case_describe(&d->c, desc, sizeof desc);
            fail_msg("%s: output of the counted attention calls is wrong: %s\n     %s\n     seed %llu", label, res.why,
                     desc, (unsigned long long)tc_seed());
        }
    }
    (void)ctx;
}

static void prepare_outputs(workload *w)
{
    tc_attn_data *cases[4] = {&w->small, &w->big, &w->masked, &w->half};
    for (int i = 0; i < 4; i++) {
        tc_fill_canary(&cases[i]->out);
        if (cases[i]->c.lse) {
            tc_fill_canary(&cases[i]->lse);
            cases[i]->lse_t = cases[i]->lse.t;
        }
    }
}

/* variant 0: a linear F16 cache; 1: a paged ring in BF16; 2: the paged ring quantised (Q8) */
static void base_config(edgeattn_config *cfg, int variant)
{
    const bool ring = variant != 0;
    edgeattn_config_default(cfg);
    cfg->flags = EDGEATTN_FLAG_KV_CACHE;
    cfg->max_batch = B;
    cfg->max_q_len = MAX_Q;
    cfg->max_kv_len = MAX_KV;
    cfg->max_heads = HQ;
    cfg->max_kv_heads = HKV;
    cfg->max_head_dim = D;
    cfg->kv_cache_dtype = variant == 2 ? EDGEATTN_Q8 : ring ? EDGEATTN_BF16 : EDGEATTN_F16;
    cfg->kv_cache_window = ring ? W : 0;
    cfg->kv_page_size = ring ? 16 : 0; /* the ring in a paged cache: pages mapped and shared in place */
    cfg->num_threads = 2;
}

/* One context per CPU tier, memory obtained by create: create allocates once and starts the pool;
 * the loop allocates nothing; destroy frees once. */
static void test_calls_allocate_nothing(void **state)
{
    (void)state;
    tc_tier tiers[8];
    const int nt = tc_cpu_tiers(tiers, 8);
    workload w;
    make_workload(&w);
    for (int ti = 0; ti < nt; ti++)
        for (int variant = 0; variant < 3; variant++) {
            const bool ring = variant != 0;
            if (ring && ti != nt - 1 && !tc_long())
                continue; /* the ring caches on the best tier (every tier with EDGEATTN_TEST_LONG=1) */
            edgeattn_config cfg;
            base_config(&cfg, variant);
            cfg.cpu_disable_mask = tiers[ti].disable;
            char label[96];
            snprintf(label, sizeof label, "tier %.32s, %s cache", tiers[ti].name,
                     variant == 2 ? "q8 paged ring" : ring ? "paged ring" : "linear");

            edgeattn_plan_info info;
            start_counting();
            const edgeattn_status pst = edgeattn_plan(&cfg, &info, NULL);
            expect_none("edgeattn_plan");
            assert_int_equal(pst, EDGEATTN_OK);

            edgeattn_context *ctx = NULL;
            edgeattn_message msg;
            start_counting();
            const edgeattn_status st = edgeattn_create(&cfg, NULL, 0, &ctx, &msg);
            long counts[C_COUNT];
            const long allocs = stop_counting(counts);
            if (st != EDGEATTN_OK)
                fail_msg("%s: create returned %d: %s", label, (int)st, msg.text);
            /* workers: the plan's thread count minus the caller (GPU backends plan 1: none) */
            if (allocs != 1 || counts[C_PTHREAD_CREATE] != info.num_threads - 1) {
                char buf[256];
                describe_counts(counts, buf, sizeof buf);
                fail_msg("%s: create should obtain its memory once and start %d thread(s): %s", label,
                         (int)info.num_threads - 1, buf);
            }

            prepare_outputs(&w);
            tally t;
            memset(&t, 0, sizeof t);
            start_counting();
            run_workload(ctx, &w, ring, &t);
            char what[160];
            snprintf(what, sizeof what, "%s: %ld calls after create", label, t.calls);
            expect_none(what);
            if (t.unexpected)
                fail_msg("%s: %ld unexpected status(es), first: %s", label, t.unexpected, t.first_bad);
            check_results(ctx, &w, label);
            print_message("%s: %ld calls, no allocation, no thread\n", label, t.calls);

            start_counting();
            edgeattn_destroy(ctx);
            const long frees = stop_counting(counts);
            if (counts[C_FREE] != 1 || frees != 1 || counts[C_PTHREAD_CREATE] != 0) {
                char buf[256];
                describe_counts(counts, buf, sizeof buf);
                fail_msg("%s: destroy should free the one block: %s", label, buf);
            }
        }
    free_workload(&w);
}

/* A caller-supplied buffer: create obtains no memory at all, the calls none, destroy frees nothing.
 * Here every call is shared with the workers however small (EDGEATTN_CPU_INLINE=0), so the pool's
 * hand-off and the split-KV merge run too (the test above keeps the default thresholds). */
static void test_caller_buffer_context(void **state)
{
    (void)state;
    setenv("EDGEATTN_CPU_INLINE", "0", 1);
    workload w;
    make_workload(&w);
    for (int ring = 0; ring < 2; ring++) {
        edgeattn_config cfg;
        base_config(&cfg, ring ? 2 : 0); /* the ring quantised: its hand-off and merges too */
        edgeattn_plan_info info;
        assert_int_equal(edgeattn_plan(&cfg, &info, NULL), EDGEATTN_OK);
        const size_t bytes = (info.host_bytes + EDGEATTN_ALIGNMENT - 1) & ~(size_t)(EDGEATTN_ALIGNMENT - 1);
        void *buf = aligned_alloc(EDGEATTN_ALIGNMENT, bytes);
        assert_non_null(buf);
        edgeattn_context *ctx = NULL;
        edgeattn_message msg;
        start_counting();
        const edgeattn_status st = edgeattn_create(&cfg, buf, info.host_bytes, &ctx, &msg);
        long counts[C_COUNT];
        const long allocs = stop_counting(counts);
        if (st != EDGEATTN_OK)
            fail_msg("create with a caller buffer of %zu bytes returned %d: %s", info.host_bytes, (int)st, msg.text);
        if (allocs != 0 || counts[C_PTHREAD_CREATE] != info.num_threads - 1) {
            char buf2[256];
            describe_counts(counts, buf2, sizeof buf2);
            fail_msg("create with a caller buffer should obtain nothing and start %d thread(s): %s",
                     (int)info.num_threads - 1, buf2);
        }
        prepare_outputs(&w);
        tally t;
        memset(&t, 0, sizeof t);
        start_counting();
        run_workload(ctx, &w, ring, &t);
        char what[160];
        snprintf(what, sizeof what, "caller buffer, %s cache: %ld calls after create", ring ? "ring" : "linear",
                 t.calls);
        expect_none(what);
        if (t.unexpected)
            fail_msg("caller buffer: %ld unexpected status(es), first: %s", t.unexpected, t.first_bad);
        check_results(ctx, &w, "caller buffer");
        start_counting();
        edgeattn_destroy(ctx);
        expect_none("destroy of a caller-buffer context (the buffer is the caller's)");
        free(buf);
    }
    free_workload(&w);
    unsetenv("EDGEATTN_CPU_INLINE");
}

/* ---------------------------------------------------------------- a caller-supplied pool */

/* The caller's own pool as an engine would have one: a helper thread (worker 1) and the calling
 * thread (worker 0) take tasks from an atomic counter. worker_shift moves the indices out of range,
 * to see the library notice a pool that breaks the contract. */
typedef struct test_pool {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long gen, done_gen;
    bool stop;
    edgeattn_task_fn fn;
    void *arg;
    int32_t n;
    int32_t worker_shift;
    atomic_int next;
    atomic_long calls, tasks, bad_n_workers;
    atomic_long by_worker[2];
} test_pool;

static void pool_drain(test_pool *tp, int w)
{
    for (;;) {
        const int t = atomic_fetch_add(&tp->next, 1);
        if (t >= tp->n)
            return;
        tp->fn(tp->arg, t, w + tp->worker_shift);
        atomic_fetch_add(&tp->tasks, 1);
        atomic_fetch_add(&tp->by_worker[w], 1);
    }
}

static void *pool_helper(void *arg)
{
    test_pool *tp = arg;
    pthread_mutex_lock(&tp->mu);
    for (;;) {
        while (tp->gen == tp->done_gen && !tp->stop)
            pthread_cond_wait(&tp->cv, &tp->mu);
        if (tp->stop)
            break;
        pthread_mutex_unlock(&tp->mu);
        pool_drain(tp, 1);
        pthread_mutex_lock(&tp->mu);
        tp->done_gen = tp->gen;
        pthread_cond_broadcast(&tp->cv);
    }
    pthread_mutex_unlock(&tp->mu);
    return NULL;
}

static void pool_parallel_for(void *user, edgeattn_task_fn fn, void *arg, int32_t n_tasks, int32_t n_workers)
{
    test_pool *tp = user;
    atomic_fetch_add(&tp->calls, 1);
    if (n_workers != 2)
        atomic_fetch_add(&tp->bad_n_workers, 1);
    pthread_mutex_lock(&tp->mu);
    tp->fn = fn;
    tp->arg = arg;
    tp->n = n_tasks;
    atomic_store(&tp->next, 0);
    tp->gen++;
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    pool_drain(tp, 0);
    pthread_mutex_lock(&tp->mu);
    while (tp->done_gen != tp->gen)
        pthread_cond_wait(&tp->cv, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
}

static void pool_start(test_pool *tp)
{
    memset(tp, 0, sizeof *tp);
    assert_int_equal(pthread_mutex_init(&tp->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&tp->cv, NULL), 0);
    assert_int_equal(pthread_create(&tp->th, NULL, pool_helper, tp), 0);
}

static void pool_stop(test_pool *tp)
{
    pthread_mutex_lock(&tp->mu);
    tp->stop = true;
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    pthread_join(tp->th, NULL);
    pthread_cond_destroy(&tp->cv);
    pthread_mutex_destroy(&tp->mu);
}

/* config.parallel_for: create starts no thread, every call's parallel work goes through the
 * caller's pool (both of its workers run tasks, the split-KV merge included), nothing allocates,
 * and the results are right. EDGEATTN_CPU_INLINE=0 makes every call shared, however small. */
static void test_caller_parallel_for(void **state)
{
    (void)state;
    setenv("EDGEATTN_CPU_INLINE", "0", 1);
    test_pool tp;
    pool_start(&tp);
    workload w;
    make_workload(&w);
    edgeattn_config cfg;
    base_config(&cfg, 0);
    cfg.parallel_for = pool_parallel_for;
    cfg.parallel_user = &tp;
    cfg.backend = EDGEATTN_BACKEND_CPU; /* the caller's pool serves the CPU backend (GPU runs re-use this suite) */
    edgeattn_plan_info info;
    assert_int_equal(edgeattn_plan(&cfg, &info, NULL), EDGEATTN_OK);
    assert_int_equal(info.num_threads, 2);
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    start_counting();
    const edgeattn_status st = edgeattn_create(&cfg, NULL, 0, &ctx, &msg);
    long counts[C_COUNT];
    const long allocs = stop_counting(counts);
    if (st != EDGEATTN_OK)
        fail_msg("create with parallel_for returned %d: %s", (int)st, msg.text);
    if (allocs != 1 || counts[C_PTHREAD_CREATE] != 0) {
        char buf[256];
        describe_counts(counts, buf, sizeof buf);
        fail_msg("create with parallel_for should obtain its memory once and start no thread: %s", buf);
    }
    prepare_outputs(&w);
    tally t;
    memset(&t, 0, sizeof t);
    start_counting();
    run_workload(ctx, &w, false, &t);
    char what[160];
    snprintf(what, sizeof what, "parallel_for: %ld calls after create", t.calls);
    expect_none(what);
    if (t.unexpected)
        fail_msg("parallel_for: %ld unexpected status(es), first: %s", t.unexpected, t.first_bad);
    check_results(ctx, &w, "parallel_for");
    const long calls = atomic_load(&tp.calls), tasks = atomic_load(&tp.tasks);
    print_message("parallel_for: %ld calls of the pool, %ld tasks (worker 0: %ld, worker 1: %ld)\n", calls, tasks,
                  atomic_load(&tp.by_worker[0]), atomic_load(&tp.by_worker[1]));
    assert_true(calls >= iterations()); /* one per attention call at least */
    assert_int_equal(atomic_load(&tp.bad_n_workers), 0);
    assert_true(atomic_load(&tp.by_worker[0]) > 0 && atomic_load(&tp.by_worker[1]) > 0);

    /* a pool that hands out worker indices past n_workers: refused, not run on foreign scratch */
    tp.worker_shift = 2;
    tc_attn_data *d = &w.half;
    d->params.lse = &d->lse_t;
    assert_int_equal(edgeattn_attention(ctx, &d->q.t, &d->k.t, &d->v.t, &d->out.t, &d->params),
                     EDGEATTN_ERR_INTERNAL);
    assert_non_null(strstr(edgeattn_message_of(ctx), "parallel_for"));
    tp.worker_shift = 0;
    assert_int_equal(edgeattn_attention(ctx, &d->q.t, &d->k.t, &d->v.t, &d->out.t, &d->params), EDGEATTN_OK);
    edgeattn_destroy(ctx);
    pool_stop(&tp);
    free_workload(&w);
    unsetenv("EDGEATTN_CPU_INLINE");
}

/* A whole model in one context (8 layers, GQA 8/2, D 64, F32 cache, decode only): the plan is the
 * cache and little more, because per-thread scratch is sized for the rows a decode can have, not
 * for prefill tiles. */
static void test_decode_only_plan(void **state)
{
    (void)state;
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.num_layers = 8;
    cfg.max_batch = 1;
    cfg.max_q_len = 1;
    cfg.max_kv_len = 1024;
    cfg.max_heads = 8;
    cfg.max_kv_heads = 2;
    cfg.max_head_dim = 64;
    cfg.kv_cache_dtype = EDGEATTN_F32;
    cfg.num_threads = 2;
    edgeattn_plan_info dec, pre;
    assert_int_equal(edgeattn_plan(&cfg, &dec, NULL), EDGEATTN_OK);
    cfg.max_q_len = 1024;
    assert_int_equal(edgeattn_plan(&cfg, &pre, NULL), EDGEATTN_OK);
    print_message("8 layers, 8/2 heads, D 64, F32, 1024 tokens: cache %zu bytes; max_q_len 1: plan %zu (%.3fx), "
                  "scratch %zu per thread; max_q_len 1024: plan %zu, scratch %zu per thread\n",
                  dec.kv_cache_bytes, dec.host_bytes, (double)dec.host_bytes / (double)dec.kv_cache_bytes,
                  dec.scratch_bytes_per_thread, pre.host_bytes, pre.scratch_bytes_per_thread);
    assert_true(dec.kv_cache_bytes >= (size_t)8 * 2 * 1024 * 64 * 4 * 2); /* K and V, plus lengths */
    assert_true((double)dec.host_bytes <= 1.1 * (double)dec.kv_cache_bytes);
    /* no packed K/V tiles and no 128-row query tiles for one query row of 8 heads */
    assert_true(dec.scratch_bytes_per_thread * 8 <= pre.scratch_bytes_per_thread);
    assert_true(dec.scratch_bytes_per_thread <= 16 * 1024);
}

/* The sparse paths (docs/SPARSE.md): appends and decodes through a cache with attention sinks, top-k
 * decodes over block summaries (selection in the planned scratch) and block-sparse attention, on 1
 * and 2 threads, make no allocator or thread call; each result is checked for being written. */
static void test_sparse_paths(void **state)
{
    (void)state;
    enum { SD = 64, SHQ = 8, SHKV = 2, SN = 600 };
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 31);
    tc_tensor k, v, q, out, qa, ka, va, oa;
    tc_tensor_alloc(&k, EDGEATTN_F16, 1, SHKV, SN, SD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F16, 1, SHKV, SN, SD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&q, EDGEATTN_F32, 1, SHQ, 1, SD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&out, EDGEATTN_F32, 1, SHQ, 1, SD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&qa, EDGEATTN_F32, 1, SHQ, 200, SD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&ka, EDGEATTN_F32, 1, SHKV, 300, SD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&va, EDGEATTN_F32, 1, SHKV, 300, SD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&oa, EDGEATTN_F32, 1, SHQ, 200, SD, TC_BHSD, 0, 0, 0);
    tc_fill_random(&k, &r, -1, 1);
    tc_fill_random(&v, &r, -1, 1);
    tc_fill_random(&q, &r, -1, 1);
    tc_fill_random(&qa, &r, -1, 1);
    tc_fill_random(&ka, &r, -1, 1);
    tc_fill_random(&va, &r, -1, 1);
    int32_t rp[5] = {0, 2, 2, 5, 6}; /* row blocks of 64: keys blocks {0, 3}, {}, {1, 2, 4}, {0} */
    int32_t ci[6] = {0, 3, 1, 2, 4, 0};
    const edgeattn_block_mask bm = {64, 64, 1, 1, 6, rp, ci};
    tc_tensor le, lfp, ol; /* Linformer: 40 projected rows of the 300 keys */
    tc_tensor_alloc(&le, EDGEATTN_F16, 1, 1, 40, 300, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&lfp, EDGEATTN_F32, 1, SHKV, 40, 300, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&ol, EDGEATTN_F32, 1, SHQ, 200, SD, TC_BHSD, 0, 0, 0);
    tc_fill_random(&le, &r, -0.1, 0.1);
    tc_fill_random(&lfp, &r, -0.1, 0.1);
    edgeattn_linformer lf;
    memset(&lf, 0, sizeof lf);
    lf.e = &le.t;
    lf.f = &lfp.t;
    for (int threads = 1; threads <= 2; threads++)
        for (int mode = 0; mode < 2; mode++) { /* 0: sinks + ring; 1: block summaries */
            edgeattn_config cfg;
            edgeattn_config_default(&cfg);
            cfg.flags = EDGEATTN_FLAG_KV_CACHE;
            cfg.max_batch = 1;
            cfg.max_q_len = 200;
            cfg.max_kv_len = mode ? 2 * SN : 300;
            cfg.max_heads = SHQ;
            cfg.max_kv_heads = SHKV;
            cfg.max_head_dim = SD;
            cfg.kv_cache_window = mode ? 0 : 128;
            cfg.kv_cache_sinks = mode ? 0 : 4;
            cfg.kv_summary_block = mode ? 32 : 0;
            cfg.max_lowrank = 40;
            /* the CPU backend serves every path; under tests/opencl (EDGEATTN_TEST_BACKEND=opencl) the
             * sinks + ring, top-k and block-sparse calls run on OpenCL (Linformer is the CPU's so far) */
            const char *tb = getenv("EDGEATTN_TEST_BACKEND");
            const bool ocl = tb && !strcmp(tb, "opencl");
            cfg.backend = ocl ? EDGEATTN_BACKEND_OPENCL : EDGEATTN_BACKEND_CPU;
            cfg.num_threads = threads;
            edgeattn_context *ctx = tc_create(&cfg);
            edgeattn_params p, pa;
            edgeattn_params_default(&p);
            edgeattn_params_default(&pa);
            p.topk_tokens = mode ? 128 : 0;
            pa.block_mask = &bm;
            pa.causal = 1;
            edgeattn_params pl;
            edgeattn_params_default(&pl);
            pl.linformer = &lf;
            tc_fill_canary(&ol);
            tc_fill_canary(&out);
            tc_fill_canary(&oa);
            start_counting();
            for (int i = 0; i < 2; i++)
                assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, NULL, 0), EDGEATTN_OK);
            for (int i = 0; i < 20; i++)
                assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_OK);
            for (int i = 0; i < 5; i++)
                assert_int_equal(edgeattn_attention(ctx, &qa.t, &ka.t, &va.t, &oa.t, &pa), EDGEATTN_OK);
            for (int i = 0; i < 3 && !ocl; i++)
                assert_int_equal(edgeattn_attention(ctx, &qa.t, &ka.t, &va.t, &ol.t, &pl), EDGEATTN_OK);
            char what[96];
            snprintf(what, sizeof what, "%s, %d thread(s)",
                     mode ? "top-k decode, block-sparse and Linformer attention"
                          : ocl ? "opencl: sinks + ring or top-k, and block-sparse" : "sinks + ring, block-sparse and Linformer",
                     threads);
            expect_none(what);
            char why[256];
            assert_true(tc_check_written(&out, "out", why, sizeof why));
            assert_true(tc_check_written(&oa, "oa", why, sizeof why));
            assert_true(ocl || tc_check_written(&ol, "ol", why, sizeof why));
            edgeattn_destroy(ctx);
        }
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_tensor_free(&qa);
    tc_tensor_free(&ka);
    tc_tensor_free(&va);
    tc_tensor_free(&oa);
    tc_tensor_free(&le);
    tc_tensor_free(&lfp);
    tc_tensor_free(&ol);
}

/* Latent attention (MLA): k-only appends to a latent cache (contiguous and paged), decode of a 128-head
 * group over it (D 576, D_v 512: the wide path, split across threads), kv_read of the latent rows and
 * their V, fork and truncate, and a prefill with D 192 / D_v 128. */
static void test_mla_paths(void **state)
{
    (void)state;
    enum { MD = 576, MDV = 512, MHQ = 128, MN = 700 };
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 41);
    tc_tensor lat, q, out, rk, rv, qp, kp, vp, op;
    tc_tensor_alloc(&lat, EDGEATTN_F16, 1, 1, MN, MD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&q, EDGEATTN_BF16, 1, MHQ, 1, MD, TC_BSHD, 0, 0, 0);
    tc_tensor_alloc(&out, EDGEATTN_F32, 1, MHQ, 1, MDV, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&rk, EDGEATTN_F32, 1, 1, 16, MD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&rv, EDGEATTN_F16, 1, 1, 16, MDV, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&qp, EDGEATTN_F32, 1, 8, 100, 192, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&kp, EDGEATTN_F16, 1, 2, 130, 192, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&vp, EDGEATTN_F16, 1, 2, 130, 128, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&op, EDGEATTN_F16, 1, 8, 100, 128, TC_BHSD, 0, 0, 0);
    tc_fill_random(&lat, &r, -1, 1);
    tc_fill_random(&q, &r, -1, 1);
    tc_fill_random(&qp, &r, -1, 1);
    tc_fill_random(&kp, &r, -1, 1);
    tc_fill_random(&vp, &r, -1, 1);
    for (int threads = 1; threads <= 2; threads++)
        for (int paged = 0; paged < 2; paged++) {
            edgeattn_config cfg;
            edgeattn_config_default(&cfg);
            cfg.flags = EDGEATTN_FLAG_KV_CACHE;
            cfg.max_batch = 2;
            cfg.max_q_len = 100;
            cfg.max_kv_len = 2 * MN;
            cfg.max_heads = MHQ;
            cfg.max_kv_heads = 2;
            cfg.max_head_dim = MD;
            cfg.max_head_dim_v = MDV;
            cfg.kv_cache_latent = 1;
            cfg.kv_page_size = paged ? 64 : 0;
            cfg.backend = EDGEATTN_BACKEND_CPU;
            cfg.num_threads = threads;
            edgeattn_context *ctx = tc_create(&cfg);
            edgeattn_params pp;
            edgeattn_params_default(&pp);
            pp.causal = 1;
            tc_fill_canary(&out);
            tc_fill_canary(&op);
            start_counting();
            for (int i = 0; i < 2; i++)
                assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &lat.t, NULL, NULL, 0), EDGEATTN_OK);
            for (int i = 0; i < 5; i++)
                assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, NULL), EDGEATTN_OK);
            assert_int_equal(edgeattn_kv_read(ctx, 0, 0, 100, &rk.t, &rv.t), EDGEATTN_OK);
            assert_int_equal(edgeattn_kv_fork(ctx, 0, 1), EDGEATTN_OK);
            assert_int_equal(edgeattn_kv_truncate(ctx, 1, 300), EDGEATTN_OK);
            const int32_t ids[1] = {1};
            assert_int_equal(edgeattn_kv_append(ctx, 0, ids, &lat.t, NULL, NULL, 0), EDGEATTN_OK);
            assert_int_equal(edgeattn_decode(ctx, 0, ids, NULL, &q.t, &out.t, NULL), EDGEATTN_OK);
            for (int i = 0; i < 3; i++)
                assert_int_equal(edgeattn_attention(ctx, &qp.t, &kp.t, &vp.t, &op.t, &pp), EDGEATTN_OK);
            char what[96];
            snprintf(what, sizeof what, "latent cache (%s), MLA decode and prefill, %d thread(s)",
                     paged ? "paged" : "contiguous", threads);
            expect_none(what);
            char why[256];
            assert_true(tc_check_written(&out, "out", why, sizeof why));
            assert_true(tc_check_written(&op, "op", why, sizeof why));
            edgeattn_destroy(ctx);
        }
    tc_tensor_free(&lat);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_tensor_free(&rk);
    tc_tensor_free(&rv);
    tc_tensor_free(&qp);
    tc_tensor_free(&kp);
    tc_tensor_free(&vp);
    tc_tensor_free(&op);
}

/* A failed create (bad config, buffer too small) obtains nothing, or gives back what it obtained. */
static void test_failed_create_leaves_nothing(void **state)
{
    (void)state;
    edgeattn_config cfg;
    base_config(&cfg, 0);
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    cfg.max_head_dim = 68;
    start_counting();
    assert_int_equal(edgeattn_create(&cfg, NULL, 0, &ctx, &msg), EDGEATTN_ERR_HEAD_DIM);
    expect_none("create with a bad config");
    base_config(&cfg, 0);
    edgeattn_plan_info info;
    assert_int_equal(edgeattn_plan(&cfg, &info, NULL), EDGEATTN_OK);
    static _Alignas(64) unsigned char small[256];
    start_counting();
    assert_int_equal(edgeattn_create(&cfg, small, sizeof small, &ctx, &msg), EDGEATTN_ERR_BUFFER_TOO_SMALL);
    expect_none("create with a buffer too small");
    assert_null(ctx);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines reach CI logs as they happen */
    tc_clear_env();
    (void)tc_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_allocate_nothing),
        cmocka_unit_test(test_caller_buffer_context),
        cmocka_unit_test(test_failed_create_leaves_nothing),
        cmocka_unit_test(test_caller_parallel_for),
        cmocka_unit_test(test_decode_only_plan),
        cmocka_unit_test(test_sparse_paths),
        cmocka_unit_test(test_mla_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
