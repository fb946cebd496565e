/*
 * The CUDA backend's own tests: device-memory tensors (the context's region and external device
 * pointers), host memory the device addresses in place (registered, managed), asynchronous calls and
 * synchronize, the device KV cache filled from device memory and decoded (layers, sequence ids,
 * ragged queries, RoPE, fork and read against a shadow of the cache), head dims that are odd
 * multiples of 8 (the SIMT kernel), broadcast inputs, long sequences (16K prefill, 128K decode),
 * canaries around every output, bad input specific to CUDA, no allocation or module load after
 * create, the ceilings and a caller's stream.
 *
 * Without a CUDA driver or device the program exits 77 (meson: skipped). EDGEATTN_TEST_REQUIRE_CUDA=1
 * (the device machine's script, the mock tests) makes that a failure instead. EDGEATTN_TEST_MOCK_CUDA=1:
 * running against tests/cuda/mock (CPU emulation): the long cases are skipped there.
 * EDGEATTN_TEST_FILTER=PATTERN runs only the cases whose names match (cmocka's * and ? wildcards).
 */
#include "test_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/reference.h"
#include "cuda/backend_cuda.h"
#include "cuda/cu_loader.h"

static bool g_have;     /* a CUDA context can be created here */
static bool g_mock;
static bool g_short; /* EDGEATTN_TEST_CUDA_SHORT=1: few cases, no long ones (compute-sanitizer runs) */
static ea_cu_driver g_drv; /* the test's own handle on the driver (external memory) */
static bool g_drv_ok;

static bool env_on(const char *name)
{
    const char *e = getenv(name);
    return e && strcmp(e, "1") == 0;
}

static void base_config(edgeattn_config *cfg)
{
    edgeattn_config_default(cfg);
    cfg->backend = EDGEATTN_BACKEND_CUDA;
    cfg->max_batch = 4;
    cfg->max_q_len = 300;
    cfg->max_kv_len = 700;
    cfg->max_heads = 8;
    cfg->max_kv_heads = 8;
    cfg->max_head_dim = 256;
    cfg->device_user_bytes = (uint64_t)64 << 20;
}

static edgeattn_context *create_cuda(const edgeattn_config *cfg)
{
    edgeattn_context *ctx = tc_create(cfg);
    edgeattn_backend_info info;
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    assert_string_equal(info.backend_name, "cuda");
    return ctx;
}

#define NEED_GPU()                                                                                               \
    do {                                                                                                         \
        if (!g_have) {                                                                                           \
            print_message("note: no CUDA device here: %s skipped\n", __func__);                                 \
            return;                                                                                              \
        }                                                                                                        \
    } while (0)

static int group_setup(void **state)
{
    (void)state;
    tc_clear_env();
    (void)tc_seed();
    g_mock = env_on("EDGEATTN_TEST_MOCK_CUDA");
    g_short = env_on("EDGEATTN_TEST_CUDA_SHORT");
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_create(&cfg, NULL, 0, &ctx, &msg);
    if (st == EDGEATTN_ERR_BACKEND_UNAVAILABLE) {
        if (env_on("EDGEATTN_TEST_REQUIRE_CUDA")) {
            print_error("EDGEATTN_TEST_REQUIRE_CUDA=1 but the CUDA backend is unavailable: %s\n", msg.text);
            return -1;
        }
        print_message("note: CUDA backend unavailable (%s): every case of this suite is skipped\n", msg.text);
        g_have = false;
        return 0;
    }
    if (st != EDGEATTN_OK) {
        print_error("forced CUDA create failed: %d (%s): %s\n", (int)st, edgeattn_status_string(st), msg.text);
        return -1;
    }
    edgeattn_backend_info info;
    edgeattn_get_backend_info(ctx, &info);
    print_message("CUDA: %s, tier %s, %d SMs, %zu MiB, sm_%d%s\n", info.device, info.tier, (int)info.cores,
                  info.device_memory >> 20, (int)info.compute_capability, g_mock ? " (mock driver)" : "");
    edgeattn_destroy(ctx);
    g_have = true;
    char why[256];
    g_drv_ok = ea_cu_driver_open(&g_drv, why, sizeof why);
    if (!g_drv_ok) {
        print_error("driver open for the test failed: %s\n", why);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_drv_ok)
        ea_cu_driver_close(&g_drv);
    return 0;
}

/* ---------------------------------------------------------------- device mirrors of host tensors */

/* A bump allocator over a device range. */
typedef struct dev_arena {
    uint64_t base;
    size_t size, used;
} dev_arena;

static uint64_t dev_take(dev_arena *a, size_t n)
{
    const size_t off = (a->used + 255) & ~(size_t)255;
    if (off > a->size || n > a->size - off)
        fail_msg("device arena of %zu bytes full (%zu used, %zu wanted)", a->size, off, n);
    a->used = off + n;
    return a->base + off;
}

static dev_arena region_of(edgeattn_context *ctx)
{
    edgeattn_memory mem;
    void *data;
    size_t off, bytes;
    assert_int_equal(edgeattn_device_region(ctx, &mem, &data, &off, &bytes), EDGEATTN_OK);
    assert_int_equal(mem, EDGEATTN_MEM_CUDA);
    assert_int_equal(off, 0);
    dev_arena a = {(uint64_t)(uintptr_t)data, bytes, 0};
    return a;
}

/* The whole allocation of x as one flat tensor (host, or at dev in device memory). */
static edgeattn_tensor flat(const tc_tensor *x, uint64_t dev)
{
    edgeattn_tensor t = edgeattn_tensor_bhsd(dev ? (void *)(uintptr_t)dev : x->alloc, x->t.dtype, 1, 1, 1,
                                             (int64_t)x->alloc_elems);
    t.memory = dev ? EDGEATTN_MEM_CUDA : EDGEATTN_MEM_HOST;
    return t;
}

/* A device copy of x's whole allocation (padding and canaries included); *dt is x's view in it. */
typedef struct mirror {
    const tc_tensor *x;
    uint64_t dev;
    edgeattn_tensor t;
} mirror;

static mirror mirror_to(edgeattn_context *ctx, uint64_t dev, const tc_tensor *x)
{
    mirror m;
    m.x = x;
    m.dev = dev;
    m.t = x->t;
    m.t.memory = EDGEATTN_MEM_CUDA;
    m.t.data = (void *)(uintptr_t)(dev + (uint64_t)((const char *)x->t.data - (const char *)x->alloc));
    edgeattn_tensor h = flat(x, 0), d = flat(x, dev);
    assert_int_equal(edgeattn_copy(ctx, &d, &h), EDGEATTN_OK);
    return m;
}

static mirror mirror_in(edgeattn_context *ctx, dev_arena *a, const tc_tensor *x)
{
    return mirror_to(ctx, dev_take(a, x->alloc_elems * tc_dtype_size(x->t.dtype)), x);
}

static void mirror_back(edgeattn_context *ctx, const mirror *m)
{
    edgeattn_tensor h = flat(m->x, 0), d = flat(m->x, m->dev);
    assert_int_equal(edgeattn_copy(ctx, &h, &d), EDGEATTN_OK);
}

/* Runs case d with every tensor in device memory from arena a (outputs canary-filled there). */
static tc_result run_device(edgeattn_context *ctx, dev_arena *a, tc_attn_data *d, double tol)
{
    tc_result res;
    memset(&res, 0, sizeof res);
    tc_fill_canary(&d->out);
    if (d->c.lse)
        tc_fill_canary(&d->lse);
    const size_t mark = a->used;
    mirror q = mirror_in(ctx, a, &d->q), k = mirror_in(ctx, a, &d->k), v = mirror_in(ctx, a, &d->v),
           o = mirror_in(ctx, a, &d->out);
    mirror l, b;
    edgeattn_params p = d->params;
    if (d->c.lse) {
        l = mirror_in(ctx, a, &d->lse);
        p.lse = &l.t;
    }
    if (d->params.bias) {
        b = mirror_in(ctx, a, &d->bias);
        p.bias = &b.t;
    }
    res.status = edgeattn_attention(ctx, &q.t, &k.t, &v.t, &o.t, &p);
    if (res.status != EDGEATTN_OK) {
        snprintf(res.why, sizeof res.why, "attention returned %d: %s", (int)res.status, edgeattn_message_of(ctx));
        a->used = mark;
        return res;
    }
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    mirror_back(ctx, &o);
    if (d->c.lse)
        mirror_back(ctx, &l);
    tc_compare(&res, &d->out, d->c.lse ? &d->lse : NULL, d->ref, d->ref_lse, d->c.B, d->c.Hq, d->c.Nq, d->c.D, tol);
    if (res.ok && (res.err > tol || res.lse_err > tol)) {
        res.ok = false;
        snprintf(res.why, sizeof res.why, "err %.3g lse_err %.3g > tol %.3g", res.err, res.lse_err, tol);
    }
    a->used = mark;
    return res;
}

static tc_attn_case random_case(tc_rng *r, int i)
{
    static const int dims[] = {16, 48, 64, 80, 96, 128, 256};
    static const edgeattn_dtype dts[] = {EDGEATTN_F16, EDGEATTN_BF16, EDGEATTN_F32};
    const int hkv = TC_PICK(r, ((int[]){1, 2, 4}));
    tc_attn_case c = tc_case(tc_randint(r, 1, 3), hkv * TC_PICK(r, ((int[]){1, 2, 4})) > 8 ? hkv : hkv * TC_PICK(r, ((int[]){1, 2})),
                             hkv, tc_randint(r, 1, 200), tc_randint(r, 1, 300), TC_PICK(r, dims));
    c.kvdt = TC_PICK(r, dts);
    c.qdt = tc_randint(r, 0, 2) ? c.kvdt : TC_PICK(r, dts);
    c.odt = TC_PICK(r, dts);
    c.qlayout = tc_randint(r, 0, 1);
    c.kvlayout = tc_randint(r, 0, 1);
    c.olayout = tc_randint(r, 0, 1);
    c.pad = TC_PICK(r, ((int[]){0, 0, 8, 3}));
    switch (i % 6) {
    case 1: c.causal = 1; break;
    case 2: c.wl = tc_randint(r, 0, 40), c.wr = tc_randint(r, -1, 10); break;
    case 3:
        c.use_kv_lens = 1;
        for (int b = 0; b < c.B; b++)
            c.kv_lens[b] = tc_randint(r, 0, c.Nkv);
        c.causal = tc_randint(r, 0, 1);
        break;
    case 4: c.bias_mode = tc_randint(r, TC_BIAS_FULL, TC_BIAS_BCAST_BH); break;
    case 5: c.softcap = 20.0f, c.scale = 0.2f; break;
    default: break;
    }
    c.lse = tc_randint(r, 0, 1);
    return c;
}

/* ---------------------------------------------------------------- cases */

static void test_info_and_region(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_plan_info pi;
    edgeattn_message msg;
    assert_int_equal(edgeattn_plan(&cfg, &pi, &msg), EDGEATTN_OK);
    assert_int_equal(pi.backend, EDGEATTN_BACKEND_CUDA);
    assert_true(pi.device_bytes >= cfg.device_user_bytes);
    edgeattn_context *ctx = create_cuda(&cfg);
    edgeattn_backend_info info;
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    assert_int_equal(info.backend, EDGEATTN_BACKEND_CUDA);
    assert_true(info.compute_capability >= 75);
    assert_true(info.cores > 0);
    assert_true(info.device_memory > 0);
    assert_int_equal(info.device_bytes, pi.device_bytes);
    assert_true(strncmp(info.tier, "sm_", 3) == 0);
    dev_arena a = region_of(ctx);
    assert_int_equal(a.size, cfg.device_user_bytes);
    assert_true(a.base % 256 == 0);
    edgeattn_destroy(ctx);
    /* no user bytes: no region */
    cfg.device_user_bytes = 0;
    ctx = create_cuda(&cfg);
    edgeattn_memory m;
    void *d;
    size_t o, n;
    assert_int_equal(edgeattn_device_region(ctx, &m, &d, &o, &n), EDGEATTN_ERR_UNSUPPORTED);
    edgeattn_destroy(ctx);
}

/* edgeattn_copy host -> device -> device -> host through views of any layout and padding: the data
 * arrives exactly, nothing outside the destination views is written. */
static void test_copy_strided(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_context *ctx = create_cuda(&cfg);
    dev_arena a = region_of(ctx);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 3010);
    for (int i = 0; i < 40; i++) {
        const edgeattn_dtype dt = TC_PICK(&r, ((edgeattn_dtype[]){EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16}));
        const int B = tc_randint(&r, 1, 3), H = tc_randint(&r, 1, 5), N = tc_randint(&r, 1, 70),
                  D = TC_PICK(&r, ((int[]){1, 16, 48, 128}));
        tc_tensor src, mid1, mid2, dst;
        tc_tensor_alloc(&src, dt, B, H, N, D, tc_randint(&r, 0, 1), tc_randint(&r, 0, 5), tc_randint(&r, 0, 3), 2);
        tc_tensor_alloc(&mid1, dt, B, H, N, D, tc_randint(&r, 0, 1), tc_randint(&r, 0, 5), tc_randint(&r, 0, 3), 2);
        tc_tensor_alloc(&mid2, dt, B, H, N, D, tc_randint(&r, 0, 1), tc_randint(&r, 0, 5), tc_randint(&r, 0, 3), 2);
        tc_tensor_alloc(&dst, dt, B, H, N, D, tc_randint(&r, 0, 1), tc_randint(&r, 0, 5), tc_randint(&r, 0, 3), 2);
        tc_fill_random(&src, &r, -3, 3);
        tc_fill_canary(&mid1);
        tc_fill_canary(&mid2);
        tc_fill_canary(&dst);
        const size_t mark = a.used;
        mirror m1 = mirror_in(ctx, &a, &mid1), m2 = mirror_in(ctx, &a, &mid2);
        assert_int_equal(edgeattn_copy(ctx, &m1.t, &src.t), EDGEATTN_OK);  /* host -> device */
        assert_int_equal(edgeattn_copy(ctx, &m2.t, &m1.t), EDGEATTN_OK);   /* device -> device */
        assert_int_equal(edgeattn_copy(ctx, &dst.t, &m2.t), EDGEATTN_OK);  /* device -> host */
        mirror_back(ctx, &m1);
        mirror_back(ctx, &m2);
        const tc_tensor *outs[3] = {&mid1, &mid2, &dst};
        for (int o = 0; o < 3; o++) {
            char why[256];
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++)
                    for (int n = 0; n < N; n++)
                        for (int d = 0; d < D; d++)
                            if (tc_get(&outs[o]->t, b, h, n, d) != tc_get(&src.t, b, h, n, d))
                                fail_msg("copy %d (case %d, %s [%d,%d,%d,%d]): element [%d,%d,%d,%d] differs", o, i,
                                         tc_dtype_name(dt), B, H, N, D, b, h, n, d);
            if (!tc_check_written(outs[o], "copy", why, sizeof why))
                fail_msg("copy %d (case %d): %s", o, i, why);
        }
        a.used = mark;
        tc_tensor_free(&src);
        tc_tensor_free(&mid1);
        tc_tensor_free(&mid2);
        tc_tensor_free(&dst);
    }
    edgeattn_destroy(ctx);
}

/* Random cases with every tensor in the context's device region, outputs in canary-filled views. */
/* n random cases with every tensor in ctx's device region; case i uses stream seed salt + i. */
static void device_cases(edgeattn_context *ctx, uint64_t rng_stream, uint64_t salt, int n, const char *what)
{
    dev_arena a = region_of(ctx);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), rng_stream);
    for (int i = 0; i < n; i++) {
        tc_attn_case c = random_case(&r, i);
        tc_attn_data d;
        tc_attn_prepare(&d, &c, tc_seed(), salt + (uint64_t)i);
        double tol = tc_tolerance(c.qdt, c.kvdt, c.odt);
        if (c.qdt == EDGEATTN_F32 && c.kvdt == EDGEATTN_F32 && c.odt == EDGEATTN_F32)
            tol = fmax(tol, tc_tolerance_f32_scores(tc_max_score(&d.q.t, &d.k.t, c.scale)));
        tc_result res = run_device(ctx, &a, &d, tol);
        if (!res.ok) {
            char desc[512];
            tc_case_describe(&c, desc, sizeof desc);
            tc_attn_free(&d);
            edgeattn_destroy(ctx);
            fail_msg("%s, %s: %s (seed %llu)", what, desc, res.why, (unsigned long long)tc_seed());
        }
        tc_attn_free(&d);
    }
}

static void test_device_tensors(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_context *ctx = create_cuda(&cfg);
    device_cases(ctx, 3001, 4000, g_short ? 8 : tc_long() ? 120 : 36, "device tensors");
    edgeattn_destroy(ctx);
}

/* EDGEATTN_FLAG_DEVICE_TENSORS: the plan drops the staging areas, device tensors work as before, a
 * host tensor (which would need staging) is refused and nothing is written. */
static void test_device_tensors_only(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    cfg.flags |= EDGEATTN_FLAG_KV_CACHE;
    edgeattn_plan_info with, without;
    edgeattn_message msg;
    assert_int_equal(edgeattn_plan(&cfg, &with, &msg), EDGEATTN_OK);
    cfg.flags |= EDGEATTN_FLAG_DEVICE_TENSORS;
    assert_int_equal(edgeattn_plan(&cfg, &without, &msg), EDGEATTN_OK);
    /* q/out/k/v staging in F32 at the maxima is at least this much */
    const size_t staging = (size_t)4 * 4 * 8 * (2 * 300 + 2 * 700) * 256;
    if (without.device_bytes + staging > with.device_bytes)
        fail_msg("device bytes %zu with staging, %zu without: expected at least %zu less", with.device_bytes,
                 without.device_bytes, staging);
    edgeattn_context *ctx = create_cuda(&cfg);
    device_cases(ctx, 3101, 4100, g_short ? 3 : 8, "device tensors without staging");
    /* a case with host tensors: refused, the canary-filled output untouched */
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 3102);
    tc_attn_case c = random_case(&r, 0);
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 4200);
    tc_fill_canary(&d.out);
    const size_t ob = d.out.alloc_elems * tc_dtype_size(d.out.t.dtype);
    unsigned char *before = malloc(ob);
    assert_non_null(before);
    memcpy(before, d.out.alloc, ob);
    const edgeattn_status st = edgeattn_attention(ctx, &d.q.t, &d.k.t, &d.v.t, &d.out.t, &d.params);
    if (st != EDGEATTN_ERR_UNSUPPORTED)
        fail_msg("host tensors without staging: status %d (%s), expected UNSUPPORTED", (int)st,
                 edgeattn_message_of(ctx));
    assert_non_null(strstr(edgeattn_message_of(ctx), "EDGEATTN_FLAG_DEVICE_TENSORS"));
    assert_memory_equal(before, d.out.alloc, ob);
    free(before);
    /* kv_append from host memory: refused too, nothing appended */
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &d.k.t, &d.v.t, NULL, 0), EDGEATTN_ERR_UNSUPPORTED);
    int64_t total = -1;
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, &total, NULL), EDGEATTN_OK);
    assert_int_equal(total, 0);
    tc_attn_free(&d);
    edgeattn_destroy(ctx);
}

/* Host tensors (staged copies), the same random cases through tc_attn_run. */
static void test_host_tensors(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_context *ctx = create_cuda(&cfg);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 3002);
    const int n = g_short ? 6 : tc_long() ? 120 : 30;
    for (int i = 0; i < n; i++) {
        tc_attn_case c = random_case(&r, i);
        tc_attn_data d;
        tc_attn_prepare(&d, &c, tc_seed(), 5000 + (uint64_t)i);
        double tol = tc_tolerance(c.qdt, c.kvdt, c.odt);
        if (c.qdt == EDGEATTN_F32 && c.kvdt == EDGEATTN_F32 && c.odt == EDGEATTN_F32)
            tol = fmax(tol, tc_tolerance_f32_scores(tc_max_score(&d.q.t, &d.k.t, c.scale)));
        tc_result res = tc_attn_run(ctx, &d, tol);
        if (!res.ok) {
            char desc[512];
            tc_case_describe(&c, desc, sizeof desc);
            tc_attn_free(&d);
            edgeattn_destroy(ctx);
            fail_msg("host tensors, %s: %s (seed %llu)", desc, res.why, (unsigned long long)tc_seed());
        }
        tc_attn_free(&d);
    }
    edgeattn_destroy(ctx);
}

/* Moves every tensor of case d into one block of host memory the device can address (kind 0:
 * page-aligned malloc + cuMemHostRegister, 1: cuMemAllocHost, 2: cuMemAllocManaged), runs it as
 * EDGEATTN_MEM_HOST, checks the result and that nothing was staged (no copies but the sequence info). */
static void run_relocated(edgeattn_context *ctx, tc_attn_data *d, int kind, double tol)
{
    ea_cu_driver *dr = &g_drv;
    static const char *const kinds[3] = {"registered", "pinned (cuMemAllocHost)", "managed"};
    if ((kind == 0 && (!dr->MemHostRegister || !dr->MemHostUnregister)) ||
        (kind == 1 && (!dr->MemAllocHost_ || !dr->MemFreeHost_)) || (kind == 2 && !dr->MemAllocManaged_))
        return;
    tc_fill_canary(&d->out);
    if (d->c.lse)
        tc_fill_canary(&d->lse);
    tc_tensor *xs[6] = {&d->q, &d->k, &d->v, &d->out, d->c.lse ? &d->lse : NULL, d->params.bias ? &d->bias : NULL};
    size_t offs[6], total = 0;
    for (int j = 0; j < 6; j++) {
        offs[j] = total;
        if (xs[j])
            total = (total + xs[j]->alloc_elems * tc_dtype_size(xs[j]->t.dtype) + 255) & ~(size_t)255;
    }
    total = (total + 4095) & ~(size_t)4095;
    char *blk = NULL;
    if (kind == 0) {
        blk = aligned_alloc(4096, total);
        assert_non_null(blk);
        assert_int_equal(dr->MemHostRegister(blk, total, EA_CU_MEMHOSTREGISTER_PORTABLE), 0);
    } else if (kind == 1) {
        void *p = NULL;
        assert_int_equal(dr->MemAllocHost_(&p, total), 0);
        blk = p;
    } else {
        CUdeviceptr m = 0;
        assert_int_equal(dr->MemAllocManaged_(&m, total, EA_CU_MEM_ATTACH_GLOBAL), 0);
        blk = (char *)(uintptr_t)m;
    }
    edgeattn_tensor t[6];
    for (int j = 0; j < 6; j++) {
        if (!xs[j])
            continue;
        memcpy(blk + offs[j], xs[j]->alloc, xs[j]->alloc_elems * tc_dtype_size(xs[j]->t.dtype));
        t[j] = xs[j]->t;
        t[j].data = blk + offs[j] + ((char *)xs[j]->t.data - (char *)xs[j]->alloc);
    }
    edgeattn_params p = d->params;
    if (xs[4])
        p.lse = &t[4];
    if (xs[5])
        p.bias = &t[5];
    ea_cu_counters before, after;
    assert_true(ea_cuda_counters(ctx, &before));
    const edgeattn_status st = edgeattn_attention(ctx, &t[0], &t[1], &t[2], &t[3], &p);
    assert_true(ea_cuda_counters(ctx, &after));
    for (int j = 3; j <= 4; j++)
        if (xs[j])
            memcpy(xs[j]->alloc, blk + offs[j], xs[j]->alloc_elems * tc_dtype_size(xs[j]->t.dtype));
    if (kind == 0) {
        assert_int_equal(dr->MemHostUnregister(blk), 0);
        free(blk);
    } else if (kind == 1) {
        dr->MemFreeHost_(blk);
    } else {
        dr->MemFree_((CUdeviceptr)(uintptr_t)blk);
    }
    if (st != EDGEATTN_OK)
        fail_msg("%s host memory: attention returned %d: %s", kinds[kind], (int)st, edgeattn_message_of(ctx));
    tc_result res;
    memset(&res, 0, sizeof res);
    tc_compare(&res, &d->out, d->c.lse ? &d->lse : NULL, d->ref, d->ref_lse, d->c.B, d->c.Hq, d->c.Nq, d->c.D, tol);
    if (!res.ok || res.err > tol || res.lse_err > tol)
        fail_msg("%s host memory: %s err %.3g lse %.3g (seed %llu)", kinds[kind], res.why, res.err, res.lse_err,
                 (unsigned long long)tc_seed());
    /* at most the kv_lens upload (none when the device already holds the same lengths) */
    const uint64_t seq_copies = d->c.use_kv_lens ? (uint64_t)(d->c.B + 63) / 64 : 0;
    if (after.copies - before.copies > seq_copies)
        fail_msg("%s host memory was staged (%llu copies), not used in place", kinds[kind],
                 (unsigned long long)(after.copies - before.copies));
}

/* Device memory the test allocates itself (cuMemAlloc in the primary context), and host memory the
 * device addresses in place (cuMemHostRegister, managed). */
static void test_external_memory(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    cfg.device_user_bytes = 0;
    edgeattn_context *ctx = create_cuda(&cfg);
    int ord;
    CUcontext cctx;
    assert_true(ea_cuda_device_of(ctx, &ord, &cctx, NULL));
    ea_cu_driver *dr = &g_drv;
    CUdevice dev;
    assert_int_equal(dr->DeviceGet(&dev, ord), 0);
    CUcontext prim;
    assert_int_equal(dr->DevicePrimaryCtxRetain(&prim, dev), 0);
    assert_ptr_equal(prim, cctx); /* the application's cudart work shares this context */
    assert_int_equal(dr->CtxPushCurrent(prim), 0);
    CUdeviceptr mem = 0;
    const size_t bytes = (size_t)32 << 20;
    assert_int_equal(dr->MemAlloc_(&mem, bytes), 0);
    dev_arena a = {mem, bytes, 0};
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 3003);
    for (int i = 0; i < (g_short ? 4 : 12); i++) {
        tc_attn_case c = random_case(&r, i);
        tc_attn_data d;
        tc_attn_prepare(&d, &c, tc_seed(), 6000 + (uint64_t)i);
        const double tol = fmax(tc_tolerance(c.qdt, c.kvdt, c.odt),
                                tc_tolerance_f32_scores(tc_max_score(&d.q.t, &d.k.t, c.scale)));
        tc_result res = run_device(ctx, &a, &d, tol);
        if (!res.ok)
            fail_msg("external device memory, case %d: %s (seed %llu)", i, res.why, (unsigned long long)tc_seed());
        /* host memory the device addresses: registered, pinned, managed; used in place */
        run_relocated(ctx, &d, i % 3, tol);
        tc_attn_free(&d);
    }
    dr->MemFree_(mem);
    CUcontext prev;
    dr->CtxPopCurrent(&prev);
    dr->DevicePrimaryCtxRelease(dev);
    edgeattn_destroy(ctx);
}

/* Device-only calls return without synchronising; synchronize waits; results are right after it. */
static void test_async_and_synchronize(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_context *ctx = create_cuda(&cfg);
    dev_arena a = region_of(ctx);
    tc_attn_case c = tc_case(2, 8, 2, 128, 600, 128);
    c.qdt = c.kvdt = c.odt = EDGEATTN_F16;
    c.causal = 1;
    c.lse = 1;
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 7000);
    tc_fill_canary(&d.out);
    tc_fill_canary(&d.lse);
    mirror q = mirror_in(ctx, &a, &d.q), k = mirror_in(ctx, &a, &d.k), v = mirror_in(ctx, &a, &d.v),
           o = mirror_in(ctx, &a, &d.out), l = mirror_in(ctx, &a, &d.lse);
    edgeattn_params p = d.params;
    p.lse = &l.t;
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    ea_cu_counters before, after;
    assert_true(ea_cuda_counters(ctx, &before));
    const int reps = g_mock || g_short ? 3 : 50; /* the mock emulates each call on the CPU */
    for (int i = 0; i < reps; i++)
        assert_int_equal(edgeattn_attention(ctx, &q.t, &k.t, &v.t, &o.t, &p), EDGEATTN_OK);
    assert_true(ea_cuda_counters(ctx, &after));
    assert_int_equal(after.sync, before.sync);       /* queued, not waited for */
    assert_int_equal(after.mem_alloc, before.mem_alloc);
    assert_true(after.launches >= before.launches + (uint64_t)reps);
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    assert_true(ea_cuda_counters(ctx, &after));
    assert_int_equal(after.sync, before.sync + 1);
    mirror_back(ctx, &o);
    mirror_back(ctx, &l);
    tc_result res;
    memset(&res, 0, sizeof res);
    tc_compare(&res, &d.out, &d.lse, d.ref, d.ref_lse, c.B, c.Hq, c.Nq, c.D, 2e-3);
    if (!res.ok || res.err > 2e-3 || res.lse_err > 2e-3)
        fail_msg("after the queued calls: %s (err %.3g, lse %.3g)", res.why, res.err, res.lse_err);
    tc_attn_free(&d);
    edgeattn_destroy(ctx);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Informational (speed is never asserted): with a few milliseconds of device-only work queued, does
 * a call that uploads per-sequence lengths (a small pageable host-to-device copy) return at once, or
 * does the driver wait for the queue? Prints both times for the device run's log. */
static void test_queue_not_drained(void **state)
{
    (void)state;
    NEED_GPU();
    if (g_mock || g_short) {
        print_message("note: timing note skipped (%s)\n", g_mock ? "mock driver" : "EDGEATTN_TEST_CUDA_SHORT=1");
        return;
    }
    edgeattn_config cfg;
    base_config(&cfg);
    cfg.max_batch = 1;
    cfg.max_q_len = 2048;
    cfg.max_kv_len = 2048;
    cfg.max_head_dim = 128;
    edgeattn_context *ctx = create_cuda(&cfg);
    dev_arena a = region_of(ctx);
    tc_tensor q, k, v, o;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 7100);
    tc_tensor *xs[4] = {&q, &k, &v, &o};
    for (int i = 0; i < 4; i++) {
        tc_tensor_alloc(xs[i], EDGEATTN_F16, 1, 8, 2048, 128, TC_BHSD, 0, 0, 0);
        tc_fill_random(xs[i], &r, -1, 1);
    }
    mirror mq = mirror_in(ctx, &a, &q), mk = mirror_in(ctx, &a, &k), mv = mirror_in(ctx, &a, &v),
           mo = mirror_in(ctx, &a, &o);
    edgeattn_params p;
    edgeattn_params_default(&p);
    assert_int_equal(edgeattn_attention(ctx, &mq.t, &mk.t, &mv.t, &mo.t, &p), EDGEATTN_OK);
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    double t0 = now_ms();
    assert_int_equal(edgeattn_attention(ctx, &mq.t, &mk.t, &mv.t, &mo.t, &p), EDGEATTN_OK);
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    const double one = now_ms() - t0;
    const int reps = one > 0 ? (int)fmin(400.0, fmax(10.0, 5.0 / one)) : 10;
    t0 = now_ms();
    for (int i = 0; i < reps; i++)
        assert_int_equal(edgeattn_attention(ctx, &mq.t, &mk.t, &mv.t, &mo.t, &p), EDGEATTN_OK);
    const double t1 = now_ms();
    const int32_t lens[1] = {2000};
    p.kv_lens = lens;
    assert_int_equal(edgeattn_attention(ctx, &mq.t, &mk.t, &mv.t, &mo.t, &p), EDGEATTN_OK);
    const double t2 = now_ms();
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    const double t3 = now_ms();
    print_message("queue note: one call %.3f ms; %d queued in %.3f ms; a call with kv_lens (upload) returned after "
                  "%.3f ms; synchronize then waited %.3f ms (%s)\n",
                  one, reps, t1 - t0, t2 - t1, t3 - t2,
                  t3 - t2 > 0.5 * (t3 - t0) * 0.5 ? "the upload did not drain the queue"
                                                 : "the upload may have waited for the queue");
    for (int i = 0; i < 4; i++)
        tc_tensor_free(xs[i]);
    edgeattn_destroy(ctx);
}

/* Host reference of a decode: the last `held` keys of sequence b (logical rows of all_k/all_v). */
typedef struct kv_hist {
    int B, H, D, cap;
    size_t maxrows;
    edgeattn_dtype dt;
    float *k, *v; /* [B][H][maxrows][D] every token appended (F32 copies of the stored values) */
    int64_t total[TC_MAX_B];
} kv_hist;

/* KV cache filled from device memory (with a ring window), decoded from device q/out; and the same
 * cache read through host q/out. */
/* A CUDA context with a KV cache of dtype cdt for B sequences of max_kv tokens, Hq / Hkv heads of D. */
static edgeattn_context *kv_context(int B, int Hq, int Hkv, int D, edgeattn_dtype cdt, int window, int max_kv, int max_q)
{
    edgeattn_config cfg;
    base_config(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.kv_cache_dtype = cdt;
    cfg.kv_cache_window = window;
    cfg.max_batch = B;
    cfg.max_heads = Hq;
    cfg.max_kv_heads = Hkv;
    cfg.max_head_dim = D;
    cfg.max_kv_len = max_kv;
    cfg.max_q_len = max_q;
    return create_cuda(&cfg);
}

static void kv_decode_run(int B, int Hq, int Hkv, int D, edgeattn_dtype cdt, int window, int steps, int max_new,
                          int nq_max, uint64_t stream)
{
    edgeattn_context *ctx = kv_context(B, Hq, Hkv, D, cdt, window, window > 0 ? 64 : steps * max_new,
                                       nq_max > max_new ? nq_max : max_new);
    dev_arena a = region_of(ctx);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    kv_hist hist;
    memset(&hist, 0, sizeof hist);
    hist.maxrows = (size_t)steps * (size_t)max_new;
    hist.k = calloc((size_t)B * Hkv * hist.maxrows * D, sizeof(float));
    hist.v = calloc((size_t)B * Hkv * hist.maxrows * D, sizeof(float));
    assert_non_null(hist.k);
    assert_non_null(hist.v);
    for (int step = 0; step < steps; step++) {
        const int N = tc_randint(&r, 1, max_new);
        int32_t n_new[TC_MAX_B];
        for (int b = 0; b < B; b++)
            n_new[b] = step == 0 ? N : tc_randint(&r, 0, N);
        const edgeattn_dtype sdt = TC_PICK(&r, ((edgeattn_dtype[]){EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16}));
        tc_tensor k, v;
        tc_tensor_alloc(&k, sdt, B, Hkv, N, D, tc_randint(&r, 0, 1), tc_randint(&r, 0, 3), 2, 2);
        tc_tensor_alloc(&v, sdt, B, Hkv, N, D, tc_randint(&r, 0, 1), tc_randint(&r, 0, 3), 2, 2);
        tc_fill_random(&k, &r, -1, 1);
        tc_fill_random(&v, &r, -1, 1);
        const size_t mark = a.used;
        const bool on_dev = step % 3 != 2; /* every third append from host memory */
        mirror mk = mirror_in(ctx, &a, &k), mv = mirror_in(ctx, &a, &v);
        const edgeattn_status st = edgeattn_kv_append(ctx, 0, NULL, on_dev ? &mk.t : &k.t, on_dev ? &mv.t : &v.t, n_new,
                                                      step % 2);
        if (st != EDGEATTN_OK)
            fail_msg("kv_append step %d: %d %s", step, (int)st, edgeattn_message_of(ctx));
        for (int b = 0; b < B; b++)
            for (int h = 0; h < Hkv; h++)
                for (int i = 0; i < n_new[b]; i++)
                    for (int dd = 0; dd < D; dd++) {
                        const size_t o = (((size_t)b * Hkv + h) * hist.maxrows + (size_t)hist.total[b] + i) * D + dd;
                        hist.k[o] = tc_round(cdt, tc_get(&k.t, b, h, i, dd));
                        hist.v[o] = tc_round(cdt, tc_get(&v.t, b, h, i, dd));
                    }
        for (int b = 0; b < B; b++)
            hist.total[b] += n_new[b];
        a.used = mark;
        tc_tensor_free(&k);
        tc_tensor_free(&v);
        /* decode: Nq <= held of every sequence */
        int held_min = 1 << 30;
        for (int b = 0; b < B; b++) {
            int32_t held;
            int64_t total;
            assert_int_equal(edgeattn_kv_length(ctx, 0, b, &total, &held), EDGEATTN_OK);
            assert_int_equal(total, hist.total[b]);
            held_min = held < held_min ? held : held_min;
        }
        if (held_min < 1)
            continue;
        const int Nq = tc_randint(&r, 1, held_min < nq_max ? held_min : nq_max);
        tc_tensor q, out, lse;
        const edgeattn_dtype qdt = TC_PICK(&r, ((edgeattn_dtype[]){EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16}));
        tc_tensor_alloc(&q, qdt, B, Hq, Nq, D, tc_randint(&r, 0, 1), 1, 1, 1);
        tc_tensor_alloc(&out, qdt, B, Hq, Nq, D, tc_randint(&r, 0, 1), 2, 3, 1);
        tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 1, 1, 1);
        tc_fill_random(&q, &r, -1, 1);
        tc_fill_canary(&out);
        tc_fill_canary(&lse);
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.causal = Nq > 1 ? 1 : tc_randint(&r, 0, 1);
        if (tc_randint(&r, 0, 3) == 0)
            p.window_left = tc_randint(&r, 0, 20);
        /* reference over the held keys */
        double *ref = malloc(sizeof(double) * (size_t)B * Hq * Nq * D), *ref_lse = malloc(sizeof(double) * (size_t)B * Hq * Nq);
        assert_non_null(ref);
        assert_non_null(ref_lse);
        for (int b = 0; b < B; b++) {
            int32_t held;
            assert_int_equal(edgeattn_kv_length(ctx, 0, b, NULL, &held), EDGEATTN_OK);
            const size_t first = (size_t)(hist.total[b] - held);
            edgeattn_tensor kt = edgeattn_tensor_bhsd(hist.k + (size_t)b * Hkv * hist.maxrows * D, EDGEATTN_F32, 1, Hkv,
                                                      held, D);
            kt.stride[1] = (int64_t)hist.maxrows * D;
            kt.data = (float *)kt.data + first * D;
            kt.bytes = sizeof(float) * ((size_t)(Hkv - 1) * hist.maxrows * D + (size_t)held * D);
            edgeattn_tensor vt = kt;
            vt.data = hist.v + (size_t)b * Hkv * hist.maxrows * D + first * D;
            edgeattn_tensor qt = q.t;
            qt.shape[0] = 1;
            qt.data = (char *)q.t.data + (size_t)b * (size_t)q.t.stride[0] * tc_dtype_size(qdt);
            qt.bytes -= (size_t)b * (size_t)q.t.stride[0] * tc_dtype_size(qdt);
            assert_int_equal(ea_ref_attention(&qt, &kt, &vt, &p, ref + (size_t)b * Hq * Nq * D, ref_lse + (size_t)b * Hq * Nq),
                             EDGEATTN_OK);
        }
        const double tol = tc_tolerance(qdt, cdt, qdt);
        /* device q/out/lse */
        const size_t mark2 = a.used;
        mirror mq = mirror_in(ctx, &a, &q), mo = mirror_in(ctx, &a, &out), ml = mirror_in(ctx, &a, &lse);
        edgeattn_params pd = p;
        pd.lse = &ml.t;
        edgeattn_status s2 = edgeattn_decode(ctx, 0, NULL, NULL, &mq.t, &mo.t, &pd);
        if (s2 != EDGEATTN_OK)
            fail_msg("decode (device) step %d: %d %s", step, (int)s2, edgeattn_message_of(ctx));
        mirror_back(ctx, &mo);
        mirror_back(ctx, &ml);
        tc_result res;
        memset(&res, 0, sizeof res);
        tc_compare(&res, &out, &lse, ref, ref_lse, B, Hq, Nq, D, tol);
        if (!res.ok || res.err > tol || res.lse_err > tol)
            fail_msg("decode (device) step %d, B %d Hq %d Hkv %d D %d Nq %d window %d cache %s: %s err %.3g lse %.3g "
                     "(seed %llu)",
                     step, B, Hq, Hkv, D, Nq, window, tc_dtype_name(cdt), res.why, res.err, res.lse_err,
                     (unsigned long long)tc_seed());
        a.used = mark2;
        /* host q/out */
        tc_fill_canary(&out);
        tc_fill_canary(&lse);
        edgeattn_params ph = p;
        edgeattn_tensor lt = lse.t;
        ph.lse = &lt;
        s2 = edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &ph);
        if (s2 != EDGEATTN_OK)
            fail_msg("decode (host) step %d: %d %s", step, (int)s2, edgeattn_message_of(ctx));
        tc_compare(&res, &out, &lse, ref, ref_lse, B, Hq, Nq, D, tol);
        if (!res.ok || res.err > tol || res.lse_err > tol)
            fail_msg("decode (host) step %d: %s err %.3g (seed %llu)", step, res.why, res.err,
                     (unsigned long long)tc_seed());
        free(ref);
        free(ref_lse);
        tc_tensor_free(&q);
        tc_tensor_free(&out);
        tc_tensor_free(&lse);
    }
    free(hist.k);
    free(hist.v);
    edgeattn_destroy(ctx);
}

/* An F32 query over a 16-bit cache: the tensor-core decode takes it as two 16-bit halves (decode.cu q2),
 * F16 and BF16 caches, Nq 1 and 3 (one or two row blocks of 8 at GQA 4), one and several KV splits.
 * Held to the cache's bound at query scale 1 and 100 (the hi half alone is off by 2^-12 of each query
 * value: at scale 100 that is about 1% of the weights, which fails it), and finite with the right lse
 * where |q| passes F16's 65504. */
static void test_decode_f32_query(void **state)
{
    (void)state;
    /* both ways: the SIMT kernel (the default) and the tensor-core halves (EDGEATTN_CUDA_PREVIEW=f32q
     * until a GPU run has checked them) */
    const char *pv_env = getenv("EDGEATTN_CUDA_PREVIEW");
    char *pv_saved = pv_env ? strdup(pv_env) : NULL;
    for (int pv = 0; pv < 2; pv++) {
        if (pv)
            setenv("EDGEATTN_CUDA_PREVIEW", "f32q", 1);
        else
            unsetenv("EDGEATTN_CUDA_PREVIEW");
        const int B = 2, Hq = 8, Hkv = 2, D = 128;
        static const edgeattn_dtype cdts[] = {EDGEATTN_F16, EDGEATTN_BF16};
        static const int lens[] = {300, 5000};
        tc_rng r;
        tc_rng_init(&r, tc_seed(), 8101);
        for (int ci = 0; ci < 2; ci++)
            for (int li = 0; li < 2; li++) {
                const edgeattn_dtype cdt = cdts[ci];
                const int N = lens[li];
                edgeattn_context *ctx = kv_context(B, Hq, Hkv, D, cdt, 0, N, 3);
                tc_tensor k, v;
                tc_tensor_alloc(&k, cdt, B, Hkv, N, D, TC_BHSD, 0, 0, 0);
                tc_tensor_alloc(&v, cdt, B, Hkv, N, D, TC_BHSD, 0, 0, 0);
                tc_fill_random(&k, &r, -1, 1);
                tc_fill_random(&v, &r, -1, 1);
                assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, NULL, 0), EDGEATTN_OK);
                static const double scales[] = {1.0, 100.0, 2e5};
                for (int si = 0; si < 3; si++)
                    for (int Nq = 1; Nq <= 3; Nq += 2) {
                        tc_tensor q, out, lse;
                        tc_tensor_alloc(&q, EDGEATTN_F32, B, Hq, Nq, D, TC_BHSD, 0, 0, 0);
                        tc_tensor_alloc(&out, EDGEATTN_F32, B, Hq, Nq, D, TC_BHSD, 1, 1, 1);
                        tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 0, 1, 1);
                        tc_fill_random(&q, &r, -scales[si], scales[si]);
                        edgeattn_params p;
                        edgeattn_params_default(&p);
                        p.causal = Nq > 1;
                        double *ref = malloc(sizeof(double) * (size_t)B * Hq * Nq * D);
                        double *ref_lse = malloc(sizeof(double) * (size_t)B * Hq * Nq);
                        assert_non_null(ref);
                        assert_non_null(ref_lse);
                        for (int b = 0; b < B; b++) {
                            edgeattn_tensor qt = q.t, kt = k.t, vt = v.t;
                            qt.shape[0] = kt.shape[0] = vt.shape[0] = 1;
                            qt.data = (float *)q.t.data + (size_t)b * (size_t)q.t.stride[0];
                            kt.data = (char *)k.t.data + (size_t)b * (size_t)k.t.stride[0] * tc_dtype_size(cdt);
                            vt.data = (char *)v.t.data + (size_t)b * (size_t)v.t.stride[0] * tc_dtype_size(cdt);
                            qt.bytes = q.t.bytes / B;
                            kt.bytes = k.t.bytes / B;
                            vt.bytes = v.t.bytes / B;
                            assert_int_equal(ea_ref_attention(&qt, &kt, &vt, &p, ref + (size_t)b * Hq * Nq * D,
                                                              ref_lse + (size_t)b * Hq * Nq),
                                             EDGEATTN_OK);
                        }
                        /* the cache's bound (P·V runs in its 16-bit type); past F16's range the scores are ~1e4
                         * and the softmax nearly one key */
                        const double tol = tc_tolerance(EDGEATTN_F32, cdt, EDGEATTN_F32);
                        tc_result res;
                        memset(&res, 0, sizeof res);
                        tc_decode_compare(&res, ctx, &q.t, &out, &lse, &p, ref, ref_lse, B, Hq, Nq, D, si < 2 ? tol : 2e-2);
                        if (!res.ok)
                            fail_msg("F32 query (%s) over a %s cache, N %d, scale %g, Nq %d: %s err %.3g lse %.3g (tol %.3g, "
                                     "seed %llu)",
                                     pv ? "tensor cores" : "SIMT", tc_dtype_name(cdt), N, scales[si], Nq, res.why, res.err,
                                     res.lse_err, tol,
                                     (unsigned long long)tc_seed());
                        free(ref);
                        free(ref_lse);
                        tc_tensor_free(&q);
                        tc_tensor_free(&out);
                        tc_tensor_free(&lse);
                    }
                tc_tensor_free(&k);
                tc_tensor_free(&v);
                edgeattn_destroy(ctx);
            }
    }
    if (pv_saved)
        setenv("EDGEATTN_CUDA_PREVIEW", pv_saved, 1);
    else
        unsetenv("EDGEATTN_CUDA_PREVIEW");
    free(pv_saved);
}

static void test_kv_cache_device(void **state)
{
    (void)state;
    NEED_GPU();
    kv_decode_run(2, 8, 2, 128, EDGEATTN_F16, 0, 8, 40, 8, 8001);
    kv_decode_run(3, 4, 4, 64, EDGEATTN_BF16, 0, 6, 30, 4, 8002);
    if (g_short)
        return;
    kv_decode_run(2, 8, 1, 80, EDGEATTN_F32, 0, 5, 20, 3, 8003);
    kv_decode_run(2, 4, 2, 128, EDGEATTN_F16, 64, 10, 50, 6, 8004); /* ring: 64 slots, appends up to 50 */
    kv_decode_run(1, 2, 1, 256, EDGEATTN_BF16, 64, 6, 100, 2, 8005); /* appends longer than the ring */
}

/* ---------------------------------------------------------------- the cache as a model uses it
 * Layers, sequence ids, ragged decode, RoPE, fork and read on the device cache. A shadow keeps, per
 * (layer, sequence, head), the raw rows (before RoPE, as the caller passed them) in ring slots exactly
 * as the cache does, and the token counts; the reference for a decode takes the held rows of each
 * batch row's sequence, rotates keys and queries in double (ea_ref_rope) and rounds the keys and
 * values to the cache dtype, then runs ea_ref_attention. */

enum { MD_L = 3, MD_B = 4 };

typedef struct model {
    edgeattn_context *ctx;
    dev_arena a;
    int L, B, H, D, cap, window;
    edgeattn_dtype cdt;
    edgeattn_rope rope;
    int64_t total[MD_L][MD_B];
    float *raw[2]; /* K, V: [L][B][H][cap][D] */
    tc_rng r;
    bool even_pad; /* md_decode: q/out row padding 0 or 2 and out at the start of its allocation (device
                      outputs the tensor-core kernels take), else padding 0..2 and out one element in */
} model;

static float *md_row(const model *m, int kv, int l, int s, int h, int64_t slot)
{
    return m->raw[kv] + ((((size_t)l * MD_B + (size_t)s) * (size_t)m->H + (size_t)h) * (size_t)m->cap + (size_t)slot) *
                            (size_t)m->D;
}

static int md_held(const model *m, int l, int s)
{
    return (int)(m->total[l][s] < m->cap ? m->total[l][s] : m->cap);
}

/* What the cache holds for position pos of (l, s, h): K rotated in double, both rounded to the cache dtype. */
static void md_stored(const model *m, int kv, int l, int s, int h, int64_t pos, float *out)
{
    const float *x = md_row(m, kv, l, s, h, pos % m->cap);
    double t[256];
    for (int d = 0; d < m->D; d++)
        t[d] = x[d];
    if (kv == 0)
        ea_ref_rope(&m->rope, m->D, pos, t);
    for (int d = 0; d < m->D; d++)
        out[d] = tc_round(m->cdt, (float)t[d]);
}

/* A paged cache for md_open_paged: tokens per page, pool pages (0: full), max_kv_len, max_q_len. */
typedef struct md_paging {
    int page, pages, kv_len, q_len;
} md_paging;

static void md_config_ex(edgeattn_config *cfg, int L, int B, int Hq, int H, int D, edgeattn_dtype cdt, int window,
                         const edgeattn_rope *rope, const md_paging *pg)
{
    base_config(cfg);
    cfg->flags = EDGEATTN_FLAG_KV_CACHE;
    cfg->num_layers = L;
    cfg->max_batch = B;
    cfg->max_heads = Hq;
    cfg->max_kv_heads = H;
    cfg->max_head_dim = D;
    cfg->kv_cache_dtype = cdt;
    cfg->kv_cache_window = window;
    cfg->max_kv_len = window > 0 ? 64 : 160;
    cfg->max_q_len = 16;
    cfg->device_user_bytes = (uint64_t)16 << 20;
    if (rope)
        cfg->rope = *rope;
    if (pg) {
        cfg->kv_page_size = pg->page;
        cfg->kv_pages = pg->pages;
        cfg->max_kv_len = pg->kv_len;
        cfg->max_q_len = pg->q_len;
    }
}

static void md_config(edgeattn_config *cfg, int L, int B, int Hq, int H, int D, edgeattn_dtype cdt, int window,
                      const edgeattn_rope *rope)
{
    md_config_ex(cfg, L, B, Hq, H, D, cdt, window, rope, NULL);
}

static void md_open_ex(model *m, int L, int B, int Hq, int H, int D, edgeattn_dtype cdt, int window,
                       const edgeattn_rope *rope, uint64_t stream, const md_paging *pg)
{
    memset(m, 0, sizeof *m);
    edgeattn_config cfg;
    md_config_ex(&cfg, L, B, Hq, H, D, cdt, window, rope, pg);
    m->ctx = create_cuda(&cfg);
    m->a = region_of(m->ctx);
    m->L = L, m->B = B, m->H = H, m->D = D, m->cdt = cdt, m->window = window;
    m->cap = window > 0 ? window : cfg.max_kv_len;
    if (rope)
        m->rope = *rope;
    for (int i = 0; i < 2; i++) {
        m->raw[i] = calloc((size_t)MD_L * MD_B * (size_t)H * (size_t)m->cap * (size_t)D, sizeof(float));
        assert_non_null(m->raw[i]);
    }
    tc_rng_init(&m->r, tc_seed(), stream);
}

static void md_open(model *m, int L, int B, int Hq, int H, int D, edgeattn_dtype cdt, int window,
                    const edgeattn_rope *rope, uint64_t stream)
{
    md_open_ex(m, L, B, Hq, H, D, cdt, window, rope, stream, NULL);
}

static void md_close(model *m)
{
    free(m->raw[0]);
    free(m->raw[1]);
    edgeattn_destroy(m->ctx);
}

/* Broadcast bits of an append's k/v: stride 0 over B, H or N. */
enum { MD_BC_B = 1, MD_BC_H = 2, MD_BC_N = 4 };

/* Appends to layer l: batch row b (of B) goes to ids[b] (NULL: b), n_new[b] rows (NULL: N) of k/v in
 * dtype sdt, from device memory (on_dev) or host memory, broadcast over the dims of bc. */
static void md_append(model *m, int l, int B, const int32_t *ids, int N, const int32_t *n_new, edgeattn_dtype sdt,
                      bool on_dev, unsigned bc)
{
    tc_tensor k, v;
    const int Na = bc & MD_BC_N ? 1 : N; /* one row in memory when it broadcasts over N */
    tc_tensor_alloc(&k, sdt, B, m->H, Na, m->D, tc_randint(&m->r, 0, 1), tc_randint(&m->r, 0, 3), 1, 1);
    tc_tensor_alloc(&v, sdt, B, m->H, Na, m->D, tc_randint(&m->r, 0, 1), tc_randint(&m->r, 0, 3), 1, 1);
    tc_fill_random(&k, &m->r, -1, 1);
    tc_fill_random(&v, &m->r, -1, 1);
    for (int i = 0; i < 3; i++)
        if (bc & (1u << i))
            k.t.stride[i] = v.t.stride[i] = 0;
    k.t.shape[2] = v.t.shape[2] = N;
    const size_t mark = m->a.used;
    mirror mk, mv;
    if (on_dev) {
        mk = mirror_in(m->ctx, &m->a, &k);
        mv = mirror_in(m->ctx, &m->a, &v);
    }
    const edgeattn_status st = edgeattn_kv_append(m->ctx, l, ids, on_dev ? &mk.t : &k.t, on_dev ? &mv.t : &v.t,
                                                  n_new, tc_randint(&m->r, 0, 1));
    if (st != EDGEATTN_OK)
        fail_msg("kv_append layer %d B %d N %d %s %s bcast %u: %d %s", l, B, N, tc_dtype_name(sdt),
                 on_dev ? "device" : "host", bc, (int)st, edgeattn_message_of(m->ctx));
    for (int b = 0; b < B; b++) {
        const int s = ids ? ids[b] : b, n = n_new ? n_new[b] : N;
        for (int r = n > m->cap ? n - m->cap : 0; r < n; r++)
            for (int h = 0; h < m->H; h++) {
                float *dst = md_row(m, 0, l, s, h, (m->total[l][s] + r) % m->cap);
                float *dsv = md_row(m, 1, l, s, h, (m->total[l][s] + r) % m->cap);
                for (int d = 0; d < m->D; d++) {
                    dst[d] = tc_get(&k.t, b, h, r, d);
                    dsv[d] = tc_get(&v.t, b, h, r, d);
                }
            }
        m->total[l][s] += n;
    }
    m->a.used = mark;
    tc_tensor_free(&k);
    tc_tensor_free(&v);
}

/* Decode of layer l: batch row b -> ids[b] (NULL: b) with q_lens[b] queries (NULL: Nq for all), q and
 * out in qdt / odt, device or host memory, lse; every written row against the reference, every row past
 * q_lens[b] (out and lse) unchanged. */
static void md_decode(model *m, int l, int B, const int32_t *ids, int Nq, const int32_t *q_lens, int Hq,
                      edgeattn_dtype qdt, edgeattn_dtype odt, bool on_dev, const edgeattn_params *params,
                      const char *what)
{
    const int D = m->D;
    tc_tensor q, out, lse;
    const int pad = m->even_pad ? 2 * tc_randint(&m->r, 0, 1) : tc_randint(&m->r, 0, 2);
    tc_tensor_alloc(&q, qdt, B, Hq, Nq, D, tc_randint(&m->r, 0, 1), pad, 1, 1);
    tc_tensor_alloc(&out, odt, B, Hq, Nq, D, tc_randint(&m->r, 0, 1), pad, m->even_pad ? 0 : 1, 1);
    tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 1, 1, 1);
    tc_fill_random(&q, &m->r, -1, 1);
    tc_fill_canary(&out);
    tc_fill_canary(&lse);
    void *out0 = tc_snapshot(&out), *lse0 = tc_snapshot(&lse);
    edgeattn_params p = *params;
    const size_t mark = m->a.used;
    edgeattn_tensor lt = lse.t;
    mirror mq, mo, ml;
    if (on_dev) {
        mq = mirror_in(m->ctx, &m->a, &q);
        mo = mirror_in(m->ctx, &m->a, &out);
        ml = mirror_in(m->ctx, &m->a, &lse);
        p.lse = &ml.t;
    } else {
        p.lse = &lt;
    }
    const edgeattn_status st = edgeattn_decode(m->ctx, l, ids, q_lens, on_dev ? &mq.t : &q.t, on_dev ? &mo.t : &out.t, &p);
    if (st != EDGEATTN_OK)
        fail_msg("%s: decode layer %d: %d %s", what, l, (int)st, edgeattn_message_of(m->ctx));
    if (on_dev) {
        assert_int_equal(edgeattn_synchronize(m->ctx), EDGEATTN_OK);
        mirror_back(m->ctx, &mo);
        mirror_back(m->ctx, &ml);
    }
    m->a.used = mark;
    const double tol = tc_tolerance(qdt, m->cdt, odt);
    const size_t oes = tc_dtype_size(odt);
    for (int b = 0; b < B; b++) {
        const int s = ids ? ids[b] : b, nq = q_lens ? q_lens[b] : Nq, held = md_held(m, l, s);
        const int64_t total = m->total[l][s];
        tc_tensor rk, rv, rq;
        tc_tensor_alloc(&rk, EDGEATTN_F32, 1, m->H, held, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rv, EDGEATTN_F32, 1, m->H, held, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rq, EDGEATTN_F32, 1, Hq, nq, D, TC_BHSD, 0, 0, 0);
        float row[256];
        for (int h = 0; h < m->H; h++)
            for (int j = 0; j < held; j++) {
                md_stored(m, 0, l, s, h, total - held + j, row);
                for (int d = 0; d < D; d++)
                    tc_set(&rk.t, 0, h, j, d, row[d]);
                md_stored(m, 1, l, s, h, total - held + j, row);
                for (int d = 0; d < D; d++)
                    tc_set(&rv.t, 0, h, j, d, row[d]);
            }
        for (int h = 0; h < Hq; h++)
            for (int i = 0; i < nq; i++) {
                double x[256];
                for (int d = 0; d < D; d++)
                    x[d] = tc_get(&q.t, b, h, i, d);
                ea_ref_rope(&m->rope, D, total - nq + i, x);
                for (int d = 0; d < D; d++)
                    tc_set(&rq.t, 0, h, i, d, (float)x[d]);
            }
        double *ref = malloc(sizeof(double) * (size_t)Hq * nq * D), *ref_lse = malloc(sizeof(double) * (size_t)Hq * nq);
        assert_non_null(ref);
        assert_non_null(ref_lse);
        edgeattn_params rp = *params;
        rp.lse = NULL;
        assert_int_equal(ea_ref_attention(&rq.t, &rk.t, &rv.t, &rp, ref, ref_lse), EDGEATTN_OK);
        double mx = 0;
        for (size_t e = 0; e < (size_t)Hq * nq * D; e++)
            mx = fmax(mx, fabs(ref[e]));
        for (int h = 0; h < Hq; h++)
            for (int i = 0; i < Nq; i++) {
                if (i >= nq) { /* not this row's query: untouched */
                    const size_t o = tc_off(&out.t, b, h, i, 0), base = (size_t)((char *)out.t.data - (char *)out.alloc) / oes;
                    if (memcmp((char *)out.t.data + o * oes, (char *)out0 + (base + o) * oes, (size_t)D * oes))
                        fail_msg("%s: out[%d,%d,%d] past q_lens[%d] = %d was written", what, b, h, i, b, nq);
                    const size_t lo = tc_off(&lse.t, b, h, i, 0), lbase = (size_t)((char *)lse.t.data - (char *)lse.alloc) / 4;
                    if (memcmp((char *)lse.t.data + lo * 4, (char *)lse0 + (lbase + lo) * 4, 4))
                        fail_msg("%s: lse[%d,%d,%d] past q_lens[%d] = %d was written", what, b, h, i, b, nq);
                    continue;
                }
                const double wl = ref_lse[(size_t)h * nq + i], gl = tc_get(&lse.t, b, h, i, 0);
                if (!(fabs(gl - wl) <= fmax(tol, 1e-5) * (1.0 + fabs(wl))))
                    fail_msg("%s: lse[%d,%d,%d] = %.9g, reference %.9g (seq %d, layer %d, seed %llu)", what, b, h, i, gl,
                             wl, s, l, (unsigned long long)tc_seed());
                for (int d = 0; d < D; d++) {
                    const double got = tc_get(&out.t, b, h, i, d), want = ref[((size_t)h * nq + i) * D + d];
                    const double e = fabs(got - want) / (mx > 0 ? mx : 1.0);
                    if (!(e <= tol))
                        fail_msg("%s: out[%d,%d,%d,%d] = %.7g, reference %.7g (err %.3g > %.3g; seq %d, layer %d, "
                                 "q_len %d, seed %llu)",
                                 what, b, h, i, d, got, want, e, tol, s, l, nq, (unsigned long long)tc_seed());
                }
            }
        free(ref);
        free(ref_lse);
        tc_tensor_free(&rk);
        tc_tensor_free(&rv);
        tc_tensor_free(&rq);
    }
    /* nothing outside the views either (every view element written where every row is the call's) */
    char why[256];
    if (!q_lens && (!tc_check_written(&out, "out", why, sizeof why) || !tc_check_written(&lse, "lse", why, sizeof why)))
        fail_msg("%s: %s", what, why);
    const tc_tensor *xs[2] = {&out, &lse};
    const void *snaps[2] = {out0, lse0};
    for (int x = 0; x < 2; x++) {
        const size_t es = tc_dtype_size(xs[x]->t.dtype);
        for (size_t e = 0; e < xs[x]->alloc_elems; e++)
            if (!xs[x]->in_view[e] && memcmp((const char *)xs[x]->alloc + e * es, (const char *)snaps[x] + e * es, es))
                fail_msg("%s: %s element %zu outside the view was written", what, x ? "lse" : "out", e);
    }
    free(out0);
    free(lse0);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_tensor_free(&lse);
}

/* kv_read of positions [first, first + N) of (l, s) into host k/v of kdt/vdt, against the model. */
static void md_read(model *m, int l, int s, int64_t first, int N, edgeattn_dtype kdt, edgeattn_dtype vdt, const char *what)
{
    tc_tensor k, v;
    tc_tensor_alloc(&k, kdt, 1, m->H, N, m->D, tc_randint(&m->r, 0, 1), tc_randint(&m->r, 0, 2), 1, 1);
    tc_tensor_alloc(&v, vdt, 1, m->H, N, m->D, tc_randint(&m->r, 0, 1), tc_randint(&m->r, 0, 2), 1, 1);
    tc_fill_canary(&k);
    tc_fill_canary(&v);
    const edgeattn_status st = edgeattn_kv_read(m->ctx, l, s, first, &k.t, &v.t);
    if (st != EDGEATTN_OK)
        fail_msg("%s: kv_read layer %d seq %d first %lld N %d: %d %s", what, l, s, (long long)first, N, (int)st,
                 edgeattn_message_of(m->ctx));
    char why[256];
    if (!tc_check_written(&k, "k", why, sizeof why) || !tc_check_written(&v, "v", why, sizeof why))
        fail_msg("%s: kv_read: %s", what, why);
    /* the cache's rounding, then the destination's; RoPE in FP32 on the device (a few ulps) */
    const bool rot = m->rope.style != EDGEATTN_ROPE_NONE;
    float row[256];
    for (int kv = 0; kv < 2; kv++) {
        const edgeattn_dtype dt = kv ? vdt : kdt;
        for (int h = 0; h < m->H; h++)
            for (int i = 0; i < N; i++) {
                md_stored(m, kv, l, s, h, first + i, row);
                for (int d = 0; d < m->D; d++) {
                    const double want = tc_round(dt, row[d]), got = tc_get(kv ? &v.t : &k.t, 0, h, i, d);
                    const double ulp = (dt == EDGEATTN_BF16 || m->cdt == EDGEATTN_BF16) ? 8e-3
                                       : (dt == EDGEATTN_F16 || m->cdt == EDGEATTN_F16)   ? 1e-3
                                                                                           : 1e-6;
                    const double tol = kv == 0 && rot ? ulp * fabs(want) + 1e-6 : 0.0;
                    if (!(fabs(got - want) <= tol))
                        fail_msg("%s: kv_read layer %d seq %d %s[h %d, pos %lld, %d] = %.9g, expected %.9g", what, l, s,
                                 kv ? "v" : "k", h, (long long)(first + i), d, got, want);
                }
            }
    }
    tc_tensor_free(&k);
    tc_tensor_free(&v);
}

static void md_fork(model *m, int src, int dst)
{
    const edgeattn_status st = edgeattn_kv_fork(m->ctx, src, dst);
    if (st != EDGEATTN_OK)
        fail_msg("kv_fork(%d, %d): %d %s", src, dst, (int)st, edgeattn_message_of(m->ctx));
    for (int l = 0; l < m->L; l++) {
        for (int kv = 0; kv < 2; kv++)
            memcpy(md_row(m, kv, l, dst, 0, 0), md_row(m, kv, l, src, 0, 0),
                   sizeof(float) * (size_t)m->H * (size_t)m->cap * (size_t)m->D);
        m->total[l][dst] = m->total[l][src];
    }
}

static void md_check_lengths(model *m)
{
    for (int l = 0; l < m->L; l++)
        for (int s = 0; s < m->B; s++) {
            int64_t t = -1;
            int32_t h = -1;
            assert_int_equal(edgeattn_kv_length(m->ctx, l, s, &t, &h), EDGEATTN_OK);
            if (t != m->total[l][s] || h != md_held(m, l, s))
                fail_msg("kv_length(layer %d, seq %d) = (%lld, %d), expected (%lld, %d)", l, s, (long long)t, (int)h,
                         (long long)m->total[l][s], md_held(m, l, s));
        }
}

static edgeattn_params md_params(int causal, int window_left)
{
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = causal;
    p.window_left = window_left;
    return p;
}

/* num_layers: the plan grows by one cache per layer; two layers with different contents (and lengths)
 * are appended and decoded apart, from device and host memory. */
static void test_kv_layers(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config c1, c2;
    md_config(&c1, 1, 4, 8, 2, 64, EDGEATTN_F16, 0, NULL);
    md_config(&c2, 2, 4, 8, 2, 64, EDGEATTN_F16, 0, NULL);
    edgeattn_plan_info p1, p2;
    edgeattn_message msg;
    assert_int_equal(edgeattn_plan(&c1, &p1, &msg), EDGEATTN_OK);
    assert_int_equal(edgeattn_plan(&c2, &p2, &msg), EDGEATTN_OK);
    const size_t one = (size_t)2 * 4 * 2 * 160 * 64 * 2; /* K and V of one layer */
    if (p1.kv_cache_bytes < one || p2.kv_cache_bytes != 2 * p1.kv_cache_bytes ||
        p2.device_bytes - p1.device_bytes != p1.kv_cache_bytes)
        fail_msg("plan: kv_cache_bytes %zu / %zu, device_bytes %zu / %zu for 1 / 2 layers", p1.kv_cache_bytes,
                 p2.kv_cache_bytes, p1.device_bytes, p2.device_bytes);
    model m;
    md_open(&m, 2, 4, 8, 2, 64, EDGEATTN_F16, 0, NULL, 8100);
    const edgeattn_params causal = md_params(1, -1), plain = md_params(0, -1);
    md_append(&m, 0, 4, NULL, 30, NULL, EDGEATTN_F16, true, 0);
    md_append(&m, 1, 4, NULL, 21, NULL, EDGEATTN_F32, false, 0);
    md_append(&m, 1, 4, NULL, 9, (const int32_t[]){9, 0, 4, 2}, EDGEATTN_BF16, true, 0);
    md_check_lengths(&m);
    for (int l = 0; l < 2; l++) {
        md_decode(&m, l, 4, NULL, 1, NULL, 8, EDGEATTN_F16, EDGEATTN_F16, true, &plain, "layers (device)");
        md_decode(&m, l, 4, NULL, 2, NULL, 8, EDGEATTN_F32, EDGEATTN_F32, false, &causal, "layers (host)");
    }
    /* layer 0 again after layer 1 moved on: each layer keeps its own rows */
    md_append(&m, 0, 2, NULL, 5, NULL, EDGEATTN_F16, false, 0);
    md_decode(&m, 0, 2, NULL, 3, NULL, 4, EDGEATTN_F16, EDGEATTN_BF16, true, &causal, "layers, after more appends");
    md_decode(&m, 1, 3, NULL, 1, NULL, 8, EDGEATTN_BF16, EDGEATTN_F32, true, &plain, "layers, after more appends");
    md_check_lengths(&m);
    md_close(&m);
}

/* seq_ids: appends and decodes name their sequences, in a permuted order and as subsets. */
static void test_kv_seq_ids(void **state)
{
    (void)state;
    NEED_GPU();
    model m;
    md_open(&m, 2, 4, 4, 2, 128, EDGEATTN_BF16, 0, NULL, 8200);
    const edgeattn_params causal = md_params(1, -1), plain = md_params(0, -1);
    const int32_t perm[4] = {2, 0, 3, 1}, perm2[4] = {1, 3, 0, 2}, sub[2] = {3, 1}, sub1[1] = {2};
    md_append(&m, 0, 4, perm, 17, NULL, EDGEATTN_BF16, true, 0);
    md_append(&m, 0, 2, sub, 6, (const int32_t[]){6, 2}, EDGEATTN_F32, false, 0);
    md_append(&m, 0, 1, sub1, 11, NULL, EDGEATTN_F16, true, 0);
    md_append(&m, 1, 4, perm2, 8, (const int32_t[]){8, 5, 7, 6}, EDGEATTN_BF16, false, 0);
    md_check_lengths(&m);
    md_decode(&m, 0, 4, perm2, 1, NULL, 4, EDGEATTN_BF16, EDGEATTN_BF16, true, &plain, "seq_ids permutation (device)");
    md_decode(&m, 0, 4, perm, 2, NULL, 4, EDGEATTN_F32, EDGEATTN_F16, false, &causal, "seq_ids permutation (host)");
    md_decode(&m, 0, 2, sub, 1, NULL, 4, EDGEATTN_BF16, EDGEATTN_F32, true, &plain, "seq_ids subset (device)");
    md_decode(&m, 0, 1, sub1, 3, NULL, 2, EDGEATTN_F16, EDGEATTN_F16, false, &causal, "seq_ids subset (host)");
    md_decode(&m, 1, 2, (const int32_t[]){0, 3}, 4, NULL, 4, EDGEATTN_BF16, EDGEATTN_BF16, true, &causal,
              "seq_ids subset, layer 1");
    md_close(&m);
}

/* Ragged decode: batch row b has q_lens[b] queries at the last positions of its sequence; the rows
 * past them (out and lse) are not written, through device and staged host outputs. Many query rows
 * per KV head (GQA 8, 10 rows) take the prefill kernel on a GPU, few the split decode kernel, F32
 * queries the SIMT kernel. */
static void test_decode_ragged(void **state)
{
    (void)state;
    NEED_GPU();
    static const edgeattn_dtype cdts[] = {EDGEATTN_F16, EDGEATTN_F32};
    for (int ci = 0; ci < 2; ci++) {
        model m;
        md_open(&m, 1, 4, 8, 1, 64, cdts[ci], 0, NULL, 8300 + (uint64_t)ci);
        const edgeattn_dtype cdt = cdts[ci];
        md_append(&m, 0, 4, NULL, 40, (const int32_t[]){40, 12, 25, 33}, cdt, true, 0);
        const edgeattn_params causal = md_params(1, -1), win = md_params(1, 5);
        const int32_t ql[4] = {3, 1, 2, 3}, ql10[4] = {10, 4, 1, 7};
        md_decode(&m, 0, 4, NULL, 3, ql, 8, cdt, cdt, true, &causal, "ragged (device)");
        md_decode(&m, 0, 4, NULL, 3, ql, 8, cdt, cdt, false, &causal, "ragged (host)");
        md_decode(&m, 0, 4, NULL, 10, ql10, 8, cdt, EDGEATTN_F32, true, &causal, "ragged, 80 rows per KV head (device)");
        md_decode(&m, 0, 4, NULL, 10, ql10, 8, cdt, cdt, false, &win, "ragged, window (host)");
        md_decode(&m, 0, 3, (const int32_t[]){2, 3, 0}, 4, (const int32_t[]){1, 4, 2}, 8, EDGEATTN_F32, cdt, true,
                  &causal, "ragged with seq_ids, F32 q (device)");
        md_close(&m);
    }
}

/* RoPE: both styles, the whole head or its first values, NTK and linear scaling; keys rotated by the
 * append (kv_read shows them), queries by the decode; a cache at positions past 100,000 (a window,
 * one append broadcast over N moves the positions along). */
static void test_rope(void **state)
{
    (void)state;
    NEED_GPU();
    static const struct {
        edgeattn_rope_style style;
        int dim, D;
        float theta, lin, ntk;
        edgeattn_dtype cdt;
        int window;
    } cases[] = {
        {EDGEATTN_ROPE_HALF, 0, 64, 10000.0f, 0.0f, 0.0f, EDGEATTN_F32, 0},
        {EDGEATTN_ROPE_INTERLEAVED, 0, 128, 500000.0f, 0.0f, 0.0f, EDGEATTN_F16, 0},
        {EDGEATTN_ROPE_HALF, 16, 64, 10000.0f, 4.0f, 0.0f, EDGEATTN_BF16, 0},
        {EDGEATTN_ROPE_INTERLEAVED, 32, 80, 10000.0f, 0.0f, 8.0f, EDGEATTN_F32, 48},
        {EDGEATTN_ROPE_HALF, 0, 128, 500000.0f, 2.0f, 4.0f, EDGEATTN_F16, 48},
    };
    const int n = g_short ? 2 : (int)(sizeof cases / sizeof cases[0]);
    for (int ci = 0; ci < n; ci++) {
        edgeattn_rope rope;
        memset(&rope, 0, sizeof rope);
        rope.style = cases[ci].style;
        rope.dim = cases[ci].dim;
        rope.theta = cases[ci].theta;
        rope.linear_scale = cases[ci].lin;
        rope.ntk_alpha = cases[ci].ntk;
        const edgeattn_dtype cdt = cases[ci].cdt;
        char what[96];
        snprintf(what, sizeof what, "rope case %d (style %d, dim %d, D %d, %s)", ci, (int)rope.style, rope.dim,
                 cases[ci].D, tc_dtype_name(cdt));
        model m;
        md_open(&m, 2, 3, 4, 2, cases[ci].D, cdt, cases[ci].window, &rope, 8400 + (uint64_t)ci);
        const edgeattn_params causal = md_params(1, -1), plain = md_params(0, -1);
        if (cases[ci].window > 0) /* positions past 100,000: one row broadcast over N, then distinct rows */
            md_append(&m, 0, 3, NULL, 123457, NULL, EDGEATTN_F16, ci % 2 == 0, MD_BC_N);
        md_append(&m, 0, 3, (const int32_t[]){1, 2, 0}, 14, (const int32_t[]){14, 9, 11}, EDGEATTN_F32, true, 0);
        md_append(&m, 0, 3, NULL, 5, NULL, cdt, false, 0);
        md_append(&m, 1, 2, (const int32_t[]){2, 0}, 12, NULL, EDGEATTN_BF16, ci % 2 == 1, 0);
        md_check_lengths(&m);
        md_decode(&m, 0, 3, NULL, 1, NULL, 4, cdt, cdt, true, &plain, what);
        md_decode(&m, 0, 3, (const int32_t[]){2, 0, 1}, 4, (const int32_t[]){4, 1, 3}, 4, cdt == EDGEATTN_F32 ? cdt : EDGEATTN_F16,
                  EDGEATTN_F32, false, &causal, what);
        md_decode(&m, 1, 2, (const int32_t[]){0, 2}, 3, NULL, 2, EDGEATTN_F32, cdt, true, &causal, what);
        md_read(&m, 0, 1, m.total[0][1] - md_held(&m, 0, 1), md_held(&m, 0, 1), EDGEATTN_F32, EDGEATTN_F32, what);
        md_read(&m, 1, 2, m.total[1][2] - 5, 5, cdt, EDGEATTN_BF16, what);
        md_close(&m);
    }
}

/* Head dims that are odd multiples of 8 (8: llama2.c's smallest model; 24, 40): no tensor-core kernel
 * has them, the SIMT kernel serves every call (split-KV decode merged by ea_attn_combine). Random
 * attention cases with device and with host tensors against the reference, then a device cache per
 * dim (RoPE, a ring, a cache long enough to split): appends from device and host memory, decodes,
 * kv_read. With the mock libcuda a launch of a tile kernel for these dims fails. */
static void test_head_dims_mult8(void **state)
{
    (void)state;
    NEED_GPU();
    static const int dims[] = {8, 24, 40};
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_context *ctx = create_cuda(&cfg);
    dev_arena a = region_of(ctx);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 8700);
    const int n = g_short ? 2 : tc_long() ? 24 : 8;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (int i = 0; i < n; i++) {
            tc_attn_case c = random_case(&r, i);
            c.D = dims[di];
            tc_attn_data d;
            tc_attn_prepare(&d, &c, tc_seed(), 8800 + 64 * (uint64_t)di + (uint64_t)i);
            double tol = tc_tolerance(c.qdt, c.kvdt, c.odt);
            if (c.qdt == EDGEATTN_F32 && c.kvdt == EDGEATTN_F32 && c.odt == EDGEATTN_F32)
                tol = fmax(tol, tc_tolerance_f32_scores(tc_max_score(&d.q.t, &d.k.t, c.scale)));
            const tc_result res = i % 2 ? run_device(ctx, &a, &d, tol) : tc_attn_run(ctx, &d, tol);
            if (!res.ok) {
                char desc[512];
                tc_case_describe(&c, desc, sizeof desc);
                tc_attn_free(&d);
                edgeattn_destroy(ctx);
                fail_msg("head dim %d, %s tensors, %s: %s (seed %llu)", dims[di], i % 2 ? "device" : "host", desc,
                         res.why, (unsigned long long)tc_seed());
            }
            tc_attn_free(&d);
        }
    edgeattn_destroy(ctx);

    static const edgeattn_dtype cdts[] = {EDGEATTN_F16, EDGEATTN_BF16, EDGEATTN_F32};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        edgeattn_rope rope;
        memset(&rope, 0, sizeof rope);
        rope.style = di == 1 ? EDGEATTN_ROPE_HALF : EDGEATTN_ROPE_INTERLEAVED;
        rope.theta = 10000.0f;
        const edgeattn_dtype cdt = cdts[di];
        const int window = di == 1 ? 48 : 0;
        char what[96];
        snprintf(what, sizeof what, "head dim %d, %s cache, window %d", dims[di], tc_dtype_name(cdt), window);
        model m;
        md_open(&m, 1, 3, 8, 2, dims[di], cdt, window, di == 2 ? NULL : &rope, 8900 + (uint64_t)di);
        const edgeattn_params causal = md_params(1, -1), plain = md_params(0, -1);
        md_append(&m, 0, 3, NULL, 40, (const int32_t[]){40, 17, 29}, EDGEATTN_F32, true, 0);
        md_decode(&m, 0, 3, NULL, 1, NULL, 8, cdt, cdt, true, &plain, what);
        md_append(&m, 0, 3, NULL, 100, (const int32_t[]){100, 3, 60}, cdt, false, 0); /* 140 keys: 2 splits */
        md_decode(&m, 0, 3, NULL, 1, NULL, 8, cdt, cdt, false, &plain, what);
        md_decode(&m, 0, 3, (const int32_t[]){2, 0, 1}, 3, (const int32_t[]){3, 1, 2}, 8, EDGEATTN_F32, cdt, true,
                  &causal, what);
        md_check_lengths(&m);
        md_read(&m, 0, 0, m.total[0][0] - md_held(&m, 0, 0), md_held(&m, 0, 0), cdt, EDGEATTN_F32, what);
        md_close(&m);
    }
}

/* kv_fork copies every layer of a sequence (then both continue apart); kv_read returns held rows in
 * any dtype and layout, across the ring's wrap. */
static void test_kv_fork_read(void **state)
{
    (void)state;
    NEED_GPU();
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    for (int ci = 0; ci < 3; ci++) {
        const edgeattn_dtype cdt = dts[ci];
        const int window = ci == 1 ? 0 : 40;
        model m;
        md_open(&m, 2, 4, 4, 2, 48, cdt, window, NULL, 8500 + (uint64_t)ci);
        md_append(&m, 0, 2, NULL, 30, NULL, cdt, true, 0);
        md_append(&m, 1, 2, NULL, 25, (const int32_t[]){25, 13}, EDGEATTN_F32, false, 0);
        md_append(&m, 0, 1, (const int32_t[]){0}, 27, NULL, EDGEATTN_F16, true, 0); /* window: wraps */
        md_fork(&m, 0, 3);
        md_fork(&m, 1, 2);
        md_check_lengths(&m);
        const edgeattn_params causal = md_params(1, -1);
        md_decode(&m, 0, 2, (const int32_t[]){3, 0}, 2, NULL, 4, EDGEATTN_F32, EDGEATTN_F32, true, &causal, "fork, layer 0");
        md_decode(&m, 1, 2, (const int32_t[]){2, 3}, 1, NULL, 2, cdt, EDGEATTN_F16, false, &causal, "fork, layer 1");
        /* they continue apart */
        md_append(&m, 0, 2, (const int32_t[]){3, 0}, 4, (const int32_t[]){4, 2}, EDGEATTN_BF16, true, 0);
        md_decode(&m, 0, 2, (const int32_t[]){0, 3}, 2, NULL, 4, EDGEATTN_F16, EDGEATTN_F32, true, &causal, "after the fork");
        for (int r = 0; r < 4; r++) {
            const int l = r % 2, s = r == 0 ? 3 : r == 1 ? 2 : r == 2 ? 0 : 1, held = md_held(&m, l, s);
            if (held == 0)
                continue;
            const int N = r == 0 ? held : tc_randint(&m.r, 1, held);
            const int64_t first = m.total[l][s] - held + tc_randint(&m.r, 0, held - N);
            md_read(&m, l, s, first, N, TC_PICK(&m.r, dts), TC_PICK(&m.r, dts), "fork/read");
        }
        md_close(&m);
    }
}

/* The paged cache (config.kv_page_size 16 and 64): appends of one sequence at a time (so the pool hands
 * its pages out interleaved between sequences and layers) to ragged lengths, decodes over all of them
 * (split decode kernel, many query rows per KV head, F32 queries on the SIMT kernel, ragged q_lens),
 * a fork sharing a prefix then both sequences appending (the shared last page copied on write), a ring
 * window whose cap is no multiple of the page (tiles crossing pages and the ring's end), kv_read
 * across pages, no copy for a repeated decode (page tables unchanged), and every page back in the pool
 * after kv_reset. Against the shadow and the reference. */
static void paged_run(int page, int D, edgeattn_dtype cdt, int window, uint64_t stream)
{
    const int L = 2, B = 4, Hq = 8, H = 2;
    const md_paging pg = {page, 0, window > 0 ? 64 : 700, 24};
    model m;
    md_open_ex(&m, L, B, Hq, H, D, cdt, window, NULL, stream, &pg);
    m.even_pad = true;
    char what[128];
    snprintf(what, sizeof what, "paged cache (page %d, D %d, %s, window %d)", page, D, tc_dtype_name(cdt), window);
    const edgeattn_params causal = md_params(1, -1), plain = md_params(0, -1), win = md_params(1, 37);
    /* ragged targets: seq 3 stays empty until the fork */
    const int target[MD_B] = {window > 0 ? 260 : 610, 37, window > 0 ? 150 : 290, 0};
    const bool shortrun = g_short;
    for (int round = 0; round < 40; round++) {
        bool any = false;
        for (int i = 0; i < 3; i++) {
            const int s = (round + i) % 3;
            for (int l = 0; l < L; l++) {
                const int left = target[s] - (int)m.total[l][s];
                if (left <= 0)
                    continue;
                any = true;
                int n = tc_randint(&m.r, 1, 40);
                n = n < left ? n : left;
                md_append(&m, l, 1, (const int32_t[]){s}, n, NULL, TC_PICK(&m.r, ((edgeattn_dtype[]){cdt, EDGEATTN_F32})),
                          tc_randint(&m.r, 0, 2) != 0, 0);
            }
        }
        if (!any)
            break;
        if (round == 3) /* mid-way: a decode over the sequences as they stand */
            md_decode(&m, 1, 3, (const int32_t[]){2, 0, 1}, 1, NULL, Hq, cdt, cdt, true, &causal, what);
    }
    md_check_lengths(&m);
    int32_t fr = -1, tot = -1;
    assert_int_equal(edgeattn_kv_pages(m.ctx, &fr, &tot), EDGEATTN_OK);
    if (tot <= 0 || fr < 0 || fr >= tot)
        fail_msg("%s: kv_pages free %d of %d", what, (int)fr, (int)tot);
    const int32_t ids3[3] = {0, 1, 2};
    md_decode(&m, 0, 3, ids3, 1, NULL, Hq, cdt, cdt, true, &plain, what);
    md_decode(&m, 1, 3, (const int32_t[]){1, 2, 0}, 4, (const int32_t[]){4, 1, 3}, Hq, cdt, EDGEATTN_F32, false, &causal,
              what);
    md_decode(&m, 0, 3, ids3, 3, NULL, Hq, EDGEATTN_F32, cdt, true, &win, what); /* SIMT */
    if (!shortrun) /* 4 x 17 rows per KV head: the decode kernel's row blocks, unsplit */
        md_decode(&m, 1, 3, (const int32_t[]){2, 1, 0}, 17, (const int32_t[]){17, 9, 12}, Hq, cdt, cdt, true, &causal,
                  what);
    { /* the same decode twice: the second finds its sequence info and page tables on the device already */
        const size_t mark = m.a.used;
        tc_tensor q, out;
        tc_tensor_alloc(&q, cdt, 3, Hq, 1, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&out, cdt, 3, Hq, 1, D, TC_BHSD, 0, 0, 0);
        tc_fill_random(&q, &m.r, -1, 1);
        mirror mq = mirror_in(m.ctx, &m.a, &q), mo = mirror_in(m.ctx, &m.a, &out);
        ea_cu_counters c0, c1;
        assert_int_equal(edgeattn_decode(m.ctx, 1, ids3, NULL, &mq.t, &mo.t, &plain), EDGEATTN_OK);
        assert_true(ea_cuda_counters(m.ctx, &c0));
        assert_int_equal(edgeattn_decode(m.ctx, 1, ids3, NULL, &mq.t, &mo.t, &plain), EDGEATTN_OK);
        assert_true(ea_cuda_counters(m.ctx, &c1));
        if (c1.copies != c0.copies)
            fail_msg("%s: a repeated decode queued %llu copies", what, (unsigned long long)(c1.copies - c0.copies));
        assert_int_equal(edgeattn_synchronize(m.ctx), EDGEATTN_OK);
        m.a.used = mark;
        tc_tensor_free(&q);
        tc_tensor_free(&out);
    }
    /* fork: seq 3 shares seq 0's pages (every layer), then both append apart */
    md_fork(&m, 0, 3);
    md_check_lengths(&m);
    md_decode(&m, 0, 2, (const int32_t[]){3, 0}, 2, NULL, Hq, cdt, cdt, true, &causal, what);
    for (int step = 0; step < (shortrun ? 2 : 4); step++) {
        const int n0 = tc_randint(&m.r, 1, 20), n3 = tc_randint(&m.r, 1, 20);
        for (int l = 0; l < L; l++)
            md_append(&m, l, 2, (const int32_t[]){3, 0}, n0 > n3 ? n0 : n3, (const int32_t[]){n3, n0}, cdt,
                      step % 2 == 0, 0);
        md_decode(&m, step % 2, 4, (const int32_t[]){3, 1, 0, 2}, 1, NULL, Hq, cdt, cdt, true, &plain, what);
    }
    md_check_lengths(&m);
    md_decode(&m, 1, 2, (const int32_t[]){0, 3}, 5, (const int32_t[]){5, 2}, Hq, cdt, cdt, false, &causal, what);
    for (int r = 0; r < (shortrun ? 2 : 6); r++) {
        const int l = r % L, s = r % MD_B, held = md_held(&m, l, s);
        if (held == 0)
            continue;
        const int N = r == 0 ? held : tc_randint(&m.r, 1, held < 90 ? held : 90);
        const int64_t first = m.total[l][s] - held + tc_randint(&m.r, 0, held - N);
        md_read(&m, l, s, first, N, TC_PICK(&m.r, ((edgeattn_dtype[]){cdt, EDGEATTN_F32})), cdt, what);
    }
    assert_int_equal(edgeattn_kv_reset(m.ctx, -1), EDGEATTN_OK);
    assert_int_equal(edgeattn_kv_pages(m.ctx, &fr, &tot), EDGEATTN_OK);
    if (fr != tot)
        fail_msg("%s: after kv_reset %d of %d pages free", what, (int)fr, (int)tot);
    md_close(&m);
}

static void test_kv_paged(void **state)
{
    (void)state;
    NEED_GPU();
    paged_run(16, 128, EDGEATTN_F16, 0, 8600);
    paged_run(64, 64, EDGEATTN_BF16, 0, 8601);
    if (g_short)
        return;
    paged_run(16, 80, EDGEATTN_F16, 100, 8602);  /* ring of 100 slots: 7 pages, the last of 4 slots */
    paged_run(64, 128, EDGEATTN_BF16, 90, 8603); /* 2 pages, the last of 26 slots */
    paged_run(32, 96, EDGEATTN_F32, 0, 8604);    /* F32 cache: the SIMT kernel throughout */
}

/* Read-only inputs broadcast (stride 0 over B, H or N): q, k, v and bias of attention, from device
 * memory and from host memory (staged in one piece or row by row); k/v of kv_append (model tests above
 * and here every dim). */
static void test_broadcast_inputs(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_context *ctx = create_cuda(&cfg);
    dev_arena a = region_of(ctx);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 8600);
    const int n = g_short ? 6 : 24;
    for (int i = 0; i < n; i++) {
        const int B = tc_randint(&r, 1, 3), Hkv = tc_randint(&r, 1, 2), Hq = Hkv * tc_randint(&r, 1, 3),
                  Nq = tc_randint(&r, 1, 40), Nkv = tc_randint(&r, 1, 70), D = TC_PICK(&r, ((int[]){16, 64, 128}));
        const edgeattn_dtype dt = TC_PICK(&r, ((edgeattn_dtype[]){EDGEATTN_F16, EDGEATTN_BF16, EDGEATTN_F32}));
        const int pad = TC_PICK(&r, ((int[]){0, 3})); /* 3: strides not 16-byte multiples, staged row by row */
        tc_tensor q, k, v, out, bias;
        tc_tensor_alloc(&q, dt, B, Hq, Nq, D, tc_randint(&r, 0, 1), pad, 1, 1);
        tc_tensor_alloc(&k, dt, B, Hkv, Nkv, D, tc_randint(&r, 0, 1), pad, 1, 1);
        tc_tensor_alloc(&v, dt, B, Hkv, Nkv, D, tc_randint(&r, 0, 1), pad, 1, 1);
        tc_tensor_alloc(&out, dt, B, Hq, Nq, D, tc_randint(&r, 0, 1), 0, 1, 1);
        tc_tensor_alloc(&bias, EDGEATTN_F32, B, Hq, Nq, Nkv, TC_BHSD, pad, 1, 1);
        tc_fill_random(&q, &r, -1, 1);
        tc_fill_random(&k, &r, -1, 1);
        tc_fill_random(&v, &r, -1, 1);
        tc_fill_random(&bias, &r, -1, 1);
        const unsigned bq = (unsigned)tc_randint(&r, 0, 7), bk = (unsigned)tc_randint(&r, 0, 7),
                       bv = (unsigned)tc_randint(&r, 0, 7), bb = (unsigned)tc_randint(&r, 0, 7);
        for (int d = 0; d < 3; d++) {
            if (bq & (1u << d))
                q.t.stride[d] = 0;
            if (bk & (1u << d))
                k.t.stride[d] = 0;
            if (bv & (1u << d))
                v.t.stride[d] = 0;
            if (bb & (1u << d))
                bias.t.stride[d] = 0;
        }
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.causal = tc_randint(&r, 0, 1);
        const bool use_bias = tc_randint(&r, 0, 1);
        if (use_bias)
            p.bias = &bias.t;
        double *ref = malloc(sizeof(double) * (size_t)B * Hq * Nq * D), *ref_lse = malloc(sizeof(double) * (size_t)B * Hq * Nq);
        assert_non_null(ref);
        assert_non_null(ref_lse);
        assert_int_equal(ea_ref_attention(&q.t, &k.t, &v.t, &p, ref, ref_lse), EDGEATTN_OK);
        const double tol = dt == EDGEATTN_F32 ? fmax(tc_tolerance(dt, dt, dt),
                                                      tc_tolerance_f32_scores(tc_max_score(&q.t, &k.t, 0.0) + 2.0))
                                               : tc_tolerance(dt, dt, dt);
        for (int dev = 0; dev < 2; dev++) {
            tc_fill_canary(&out);
            const size_t mark = a.used;
            edgeattn_params pp = p;
            edgeattn_status st;
            mirror mo;
            if (dev) {
                mirror mq = mirror_in(ctx, &a, &q), mk = mirror_in(ctx, &a, &k), mv = mirror_in(ctx, &a, &v),
                       mb = mirror_in(ctx, &a, &bias);
                mo = mirror_in(ctx, &a, &out);
                if (use_bias)
                    pp.bias = &mb.t;
                st = edgeattn_attention(ctx, &mq.t, &mk.t, &mv.t, &mo.t, &pp);
                if (st == EDGEATTN_OK)
                    mirror_back(ctx, &mo);
            } else {
                st = edgeattn_attention(ctx, &q.t, &k.t, &v.t, &out.t, &pp);
            }
            a.used = mark;
            if (st != EDGEATTN_OK)
                fail_msg("broadcast case %d (%s): %d %s", i, dev ? "device" : "host", (int)st, edgeattn_message_of(ctx));
            tc_result res;
            memset(&res, 0, sizeof res);
            tc_compare(&res, &out, NULL, ref, ref_lse, B, Hq, Nq, D, tol);
            if (!res.ok || res.err > tol)
                fail_msg("broadcast case %d (%s, %s, B %d Hq %d Hkv %d Nq %d Nkv %d D %d, stride-0 bits q %u k %u v %u "
                         "bias %u%s, pad %d): %s err %.3g (seed %llu)",
                         i, dev ? "device" : "host", tc_dtype_name(dt), B, Hq, Hkv, Nq, Nkv, D, bq, bk, bv, bb,
                         use_bias ? "" : " unused", pad, res.why, res.err, (unsigned long long)tc_seed());
        }
        free(ref);
        free(ref_lse);
        tc_tensor_free(&q);
        tc_tensor_free(&k);
        tc_tensor_free(&v);
        tc_tensor_free(&out);
        tc_tensor_free(&bias);
    }
    edgeattn_destroy(ctx);
    /* kv_append broadcast over every combination of B, H and N, device and host sources */
    model m;
    md_open(&m, 1, 3, 4, 2, 64, EDGEATTN_F16, 0, NULL, 8601);
    for (unsigned bc = 1; bc < 8; bc++)
        md_append(&m, 0, 3, (const int32_t[]){2, 0, 1}, 5, (const int32_t[]){5, 3, 4}, bc & 1 ? EDGEATTN_F32 : EDGEATTN_BF16,
                  bc % 2 == 0, bc);
    md_check_lengths(&m);
    const edgeattn_params causal = md_params(1, -1);
    md_decode(&m, 0, 3, NULL, 2, NULL, 4, EDGEATTN_F16, EDGEATTN_F16, true, &causal, "broadcast appends");
    md_close(&m);
}

/* 16K prefill: rows blocks of the output compared with the reference (bottom-right causal makes a
 * block of rows [r0, r0+R) the last rows of a call over keys [0, r0+R)). */
static void test_long_prefill(void **state)
{
    (void)state;
    NEED_GPU();
    if (g_mock || g_short) {
        print_message("note: 16K prefill skipped (%s)\n", g_mock ? "mock driver" : "EDGEATTN_TEST_CUDA_SHORT=1");
        return;
    }
    const int N = 16384, H = 4, D = 128, R = 32;
    edgeattn_config cfg;
    base_config(&cfg);
    cfg.max_batch = 1;
    cfg.max_heads = H;
    cfg.max_kv_heads = H;
    cfg.max_q_len = N;
    cfg.max_kv_len = N;
    cfg.max_head_dim = D;
    cfg.device_user_bytes = 0;
    edgeattn_context *ctx = create_cuda(&cfg);
    for (int causal = 0; causal <= 1; causal++) {
        tc_attn_case c = tc_case(1, H, H, N, N, D);
        c.qdt = c.kvdt = c.odt = EDGEATTN_F16;
        tc_rng r;
        tc_rng_init(&r, tc_seed(), 9000 + (uint64_t)causal);
        tc_tensor q, k, v, out;
        tc_tensor_alloc(&q, EDGEATTN_F16, 1, H, N, D, TC_BSHD, 0, 0, 0);
        tc_tensor_alloc(&k, EDGEATTN_F16, 1, H, N, D, TC_BSHD, 0, 0, 0);
        tc_tensor_alloc(&v, EDGEATTN_F16, 1, H, N, D, TC_BSHD, 0, 0, 0);
        tc_tensor_alloc(&out, EDGEATTN_F16, 1, H, N, D, TC_BSHD, 0, 0, 0);
        tc_fill_random(&q, &r, -2, 2);
        tc_fill_random(&k, &r, -2, 2);
        tc_fill_random(&v, &r, -1, 1);
        tc_fill_canary(&out);
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.causal = causal;
        assert_int_equal(edgeattn_attention(ctx, &q.t, &k.t, &v.t, &out.t, &p), EDGEATTN_OK);
        const int r0s[] = {0, 1000, 8191, N - R};
        double worst = 0;
        for (size_t bi = 0; bi < sizeof r0s / sizeof r0s[0]; bi++) {
            const int r0 = r0s[bi], nk = causal ? r0 + R : N;
            edgeattn_tensor qt = q.t, kt = k.t, vt = v.t;
            qt.data = (char *)q.t.data + (size_t)r0 * (size_t)q.t.stride[2] * 2;
            qt.shape[2] = R;
            kt.shape[2] = vt.shape[2] = nk;
            double *ref = malloc(sizeof(double) * H * R * D), *rl = malloc(sizeof(double) * H * R);
            assert_int_equal(ea_ref_attention(&qt, &kt, &vt, &p, ref, rl), EDGEATTN_OK);
            double m = 0;
            for (int i = 0; i < H * R * D; i++)
                m = fmax(m, fabs(ref[i]));
            for (int h = 0; h < H; h++)
                for (int i = 0; i < R; i++)
                    for (int dd = 0; dd < D; dd++)
                        worst = fmax(worst, fabs(tc_get(&out.t, 0, h, r0 + i, dd) - ref[((size_t)h * R + i) * D + dd]) /
                                                (m > 0 ? m : 1));
            free(ref);
            free(rl);
        }
        char why[256];
        if (!tc_check_written(&out, "out", why, sizeof why))
            fail_msg("16K prefill: %s", why);
        print_message("16K prefill F16 H%d D%d %s: max rel err %.3g over the sampled rows\n", H, D,
                      causal ? "causal" : "full", worst);
        if (worst > 2e-3)
            fail_msg("16K prefill (%s): err %.3g > 2e-3 (seed %llu)", causal ? "causal" : "full", worst,
                     (unsigned long long)tc_seed());
        tc_tensor_free(&q);
        tc_tensor_free(&k);
        tc_tensor_free(&v);
        tc_tensor_free(&out);
    }
    edgeattn_destroy(ctx);
}

/* 128K decode: Hq 32, Hkv 8, D 128, F16 cache filled from device memory in chunks. */
static void test_long_decode(void **state)
{
    (void)state;
    NEED_GPU();
    if (g_mock || g_short) {
        print_message("note: 128K decode skipped (%s)\n", g_mock ? "mock driver" : "EDGEATTN_TEST_CUDA_SHORT=1");
        return;
    }
    const int N = 131072, Hq = 32, Hkv = 8, D = 128, CH = 16384;
    edgeattn_config cfg;
    base_config(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.kv_cache_dtype = EDGEATTN_F16;
    cfg.max_batch = 1;
    cfg.max_heads = Hq;
    cfg.max_kv_heads = Hkv;
    cfg.max_q_len = 16;
    cfg.max_kv_len = N;
    cfg.max_head_dim = D;
    cfg.device_user_bytes = (uint64_t)CH * Hkv * D * 2 * 2 + ((uint64_t)1 << 20);
    edgeattn_context *ctx = create_cuda(&cfg);
    dev_arena a = region_of(ctx);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 9100);
    tc_tensor k, v; /* whole history on the host, BHSD */
    tc_tensor_alloc(&k, EDGEATTN_F16, 1, Hkv, N, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F16, 1, Hkv, N, D, TC_BHSD, 0, 0, 0);
    tc_fill_random(&k, &r, -2, 2);
    tc_fill_random(&v, &r, -1, 1);
    const uint64_t dk = dev_take(&a, (size_t)CH * Hkv * D * 2), dv = dev_take(&a, (size_t)CH * Hkv * D * 2);
    for (int c0 = 0; c0 < N; c0 += CH) {
        edgeattn_tensor hk = k.t, hv = v.t;
        hk.data = (char *)k.t.data + (size_t)c0 * D * 2;
        hv.data = (char *)v.t.data + (size_t)c0 * D * 2;
        hk.shape[2] = hv.shape[2] = CH;
        edgeattn_tensor ek = edgeattn_tensor_bhsd((void *)(uintptr_t)dk, EDGEATTN_F16, 1, Hkv, CH, D),
                        ev = edgeattn_tensor_bhsd((void *)(uintptr_t)dv, EDGEATTN_F16, 1, Hkv, CH, D);
        ek.memory = ev.memory = EDGEATTN_MEM_CUDA;
        assert_int_equal(edgeattn_copy(ctx, &ek, &hk), EDGEATTN_OK);
        assert_int_equal(edgeattn_copy(ctx, &ev, &hv), EDGEATTN_OK);
        assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &ek, &ev, NULL, 0), EDGEATTN_OK);
    }
    int32_t held;
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, NULL, &held), EDGEATTN_OK);
    assert_int_equal(held, N);
    for (int nq = 1; nq <= 4; nq *= 4) {
        tc_tensor q, out;
        tc_tensor_alloc(&q, EDGEATTN_F16, 1, Hq, nq, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&out, EDGEATTN_F16, 1, Hq, nq, D, TC_BHSD, 0, 1, 1);
        tc_fill_random(&q, &r, -2, 2);
        tc_fill_canary(&out);
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.causal = 1;
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_OK);
        double *ref = malloc(sizeof(double) * Hq * nq * D), *rl = malloc(sizeof(double) * Hq * nq);
        assert_int_equal(ea_ref_attention(&q.t, &k.t, &v.t, &p, ref, rl), EDGEATTN_OK);
        tc_result res;
        memset(&res, 0, sizeof res);
        tc_compare(&res, &out, NULL, ref, rl, 1, Hq, nq, D, 2e-3);
        print_message("128K decode F16 Hq%d Hkv%d D%d Nq %d: max rel err %.3g\n", Hq, Hkv, D, nq, res.err);
        if (!res.ok || res.err > 2e-3)
            fail_msg("128K decode Nq %d: %s err %.3g (seed %llu)", nq, res.why, res.err, (unsigned long long)tc_seed());
        free(ref);
        free(rl);
        tc_tensor_free(&q);
        tc_tensor_free(&out);
    }
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    edgeattn_destroy(ctx);
}

/* Failed calls specific to CUDA: the status, and no output written. */
static void test_bad_input_cuda(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    cfg.max_batch = 1;
    cfg.max_heads = 1;
    cfg.max_kv_heads = 1;
    cfg.max_q_len = 4096;
    cfg.max_kv_len = 8192;
    cfg.max_head_dim = 16; /* a full host bias 4096 x 8192 F32 = 128 MiB > the staging bound */
    edgeattn_context *ctx = create_cuda(&cfg);
    dev_arena a = region_of(ctx);
    tc_attn_case c = tc_case(1, 1, 1, 64, 128, 16);
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 9200);
    mirror q = mirror_in(ctx, &a, &d.q), k = mirror_in(ctx, &a, &d.k), v = mirror_in(ctx, &a, &d.v),
           o = mirror_in(ctx, &a, &d.out);
    void *snap = tc_snapshot(&d.out);
#define BAD(qq, kk, vv, oo, pp, want)                                                                            \
    do {                                                                                                         \
        const edgeattn_status s_ = edgeattn_attention(ctx, (qq), (kk), (vv), (oo), (pp));                       \
        if (s_ != (want))                                                                                        \
            fail_msg("line %d: status %d (%s), wanted %d: %s", __LINE__, (int)s_, edgeattn_status_string(s_),    \
                     (int)(want), edgeattn_message_of(ctx));                                                     \
        assert_true(edgeattn_message_of(ctx)[0] != '\0');                                                       \
        mirror_back(ctx, &o);                                                                                    \
        assert_true(tc_unchanged(&d.out, snap));                                                                 \
    } while (0)
    /* a device address not aligned to its elements */
    edgeattn_tensor t = q.t;
    t.data = (char *)t.data + 2; /* (bytes kept: the view claims 2 bytes past its end, which the
                                      alignment check must catch first) */
    BAD(&t, &k.t, &v.t, &o.t, &d.params, EDGEATTN_ERR_MISALIGNED);
    /* a host pointer labelled as device memory (where the GPU cannot read pageable memory: with
     * HMM/ATS it can, and the driver may then accept it) */
    int pageable = 0;
    if (g_drv_ok)
        g_drv.DeviceGetAttribute(&pageable, EA_CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS, 0);
    if (!pageable) {
        t = q.t;
        t.data = d.q.t.data;
        BAD(&t, &k.t, &v.t, &o.t, &d.params, EDGEATTN_ERR_INVALID_ARG);
    }
    /* OpenCL memory on a CUDA context */
    t = q.t;
    t.memory = EDGEATTN_MEM_OPENCL;
    BAD(&t, &k.t, &v.t, &o.t, &d.params, EDGEATTN_ERR_UNSUPPORTED);
    /* a view that runs past the end of its allocation (bytes claims more than there is) */
    if (g_drv_ok) {
        int ord;
        CUcontext cc;
        assert_true(ea_cuda_device_of(ctx, &ord, &cc, NULL));
        assert_int_equal(g_drv.CtxPushCurrent(cc), 0);
        CUdeviceptr small = 0;
        assert_int_equal(g_drv.MemAlloc_(&small, 1024), 0);
        t = q.t;
        t.data = (void *)(uintptr_t)small;
        t.bytes = (size_t)1 << 20;
        BAD(&t, &k.t, &v.t, &o.t, &d.params, EDGEATTN_ERR_STRIDE);
        g_drv.MemFree_(small);
        CUcontext prev;
        g_drv.CtxPopCurrent(&prev);
    }
    /* a host bias larger than the staging area: refused (a device bias is the way) */
    tc_attn_free(&d);
    free(snap);
    a.used = 0;
    {
        tc_attn_case cb = tc_case(1, 1, 1, 4096, 8192, 16);
        tc_tensor bq, bk, bv, bo, bias;
        tc_rng r;
        tc_rng_init(&r, tc_seed(), 9201);
        tc_tensor_alloc(&bq, EDGEATTN_F16, 1, 1, cb.Nq, 16, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&bk, EDGEATTN_F16, 1, 1, cb.Nkv, 16, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&bv, EDGEATTN_F16, 1, 1, cb.Nkv, 16, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&bo, EDGEATTN_F16, 1, 1, cb.Nq, 16, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&bias, EDGEATTN_F32, 1, 1, cb.Nq, cb.Nkv, TC_BHSD, 0, 0, 0);
        tc_fill_random(&bq, &r, -1, 1);
        tc_fill_random(&bk, &r, -1, 1);
        tc_fill_random(&bv, &r, -1, 1);
        memset(bias.alloc, 0, bias.alloc_elems * 4);
        tc_fill_canary(&bo);
        void *s2 = tc_snapshot(&bo);
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.bias = &bias.t;
        const edgeattn_status st = edgeattn_attention(ctx, &bq.t, &bk.t, &bv.t, &bo.t, &p);
        if (st != EDGEATTN_ERR_CAPACITY)
            fail_msg("host bias of 128 MiB: status %d, wanted CAPACITY: %s", (int)st, edgeattn_message_of(ctx));
        assert_true(tc_unchanged(&bo, s2));
        free(s2);
        tc_tensor_free(&bq);
        tc_tensor_free(&bk);
        tc_tensor_free(&bv);
        tc_tensor_free(&bo);
        tc_tensor_free(&bias);
    }
    /* the context still works */
    tc_attn_case c2 = tc_case(1, 1, 1, 20, 30, 16);
    tc_attn_data d2;
    tc_attn_prepare(&d2, &c2, tc_seed(), 9202);
    tc_result res = tc_attn_run(ctx, &d2, 1e-5);
    if (!res.ok)
        fail_msg("after the refused calls: %s", res.why);
    tc_attn_free(&d2);
    edgeattn_destroy(ctx);
#undef BAD
}

/* After create: attention, decode, kv_append and copy (device and host tensors) allocate nothing and
 * load nothing; device-only calls do not synchronise. */
static void test_no_alloc_after_create(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_kv_len = 512;
    edgeattn_context *ctx = create_cuda(&cfg);
    dev_arena a = region_of(ctx);
    tc_attn_case c = tc_case(2, 8, 4, 16, 64, 128);
    c.qdt = c.kvdt = c.odt = EDGEATTN_F16;
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 9300);
    mirror q = mirror_in(ctx, &a, &d.q), k = mirror_in(ctx, &a, &d.k), v = mirror_in(ctx, &a, &d.v),
           o = mirror_in(ctx, &a, &d.out);
    tc_tensor qd;
    tc_tensor_alloc(&qd, EDGEATTN_F16, 2, 8, 1, 128, TC_BHSD, 0, 0, 0);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 9301);
    tc_fill_random(&qd, &r, -1, 1);
    mirror mqd = mirror_in(ctx, &a, &qd);
    tc_tensor od;
    tc_tensor_alloc(&od, EDGEATTN_F16, 2, 8, 1, 128, TC_BHSD, 0, 0, 0);
    mirror mod = mirror_in(ctx, &a, &od);
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    ea_cu_counters c0, c1;
    assert_true(ea_cuda_counters(ctx, &c0));
    for (int i = 0; i < 6; i++) { /* 6 x 64 rows fill the 512-row cache to 384 */
        assert_int_equal(edgeattn_attention(ctx, &q.t, &k.t, &v.t, &o.t, &d.params), EDGEATTN_OK);
        assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, NULL, 0), EDGEATTN_OK);
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &mqd.t, &mod.t, NULL), EDGEATTN_OK);
        edgeattn_tensor src = o.t;
        src.shape[2] = 1;
        assert_int_equal(edgeattn_copy(ctx, &mod.t, &src), EDGEATTN_OK);
    }
    assert_true(ea_cuda_counters(ctx, &c1));
    assert_int_equal(c1.mem_alloc, c0.mem_alloc);
    assert_int_equal(c1.mem_free, c0.mem_free);
    assert_int_equal(c1.module_load, c0.module_load);
    assert_int_equal(c1.sync, c0.sync);
    /* host tensors: staged, synchronised, still no allocation */
    assert_int_equal(edgeattn_kv_reset(ctx, -1), EDGEATTN_OK);
    for (int i = 0; i < 4; i++) {
        tc_result res = tc_attn_run(ctx, &d, 2e-3);
        if (!res.ok)
            fail_msg("host run %d: %s", i, res.why);
        assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &d.k.t, &d.v.t, NULL, 1), EDGEATTN_OK);
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &qd.t, &od.t, NULL), EDGEATTN_OK);
    }
    assert_true(ea_cuda_counters(ctx, &c1));
    assert_int_equal(c1.mem_alloc, c0.mem_alloc);
    assert_int_equal(c1.module_load, c0.module_load);
    tc_tensor_free(&qd);
    tc_tensor_free(&od);
    tc_attn_free(&d);
    edgeattn_destroy(ctx);
}

static void test_ceilings(void **state)
{
    (void)state;
    NEED_GPU();
    if (g_short) {
        print_message("note: ceilings skipped (EDGEATTN_TEST_CUDA_SHORT=1)\n");
        return;
    }
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_context *ctx = create_cuda(&cfg);
    ea_cu_counters c0, c1;
    assert_true(ea_cuda_counters(ctx, &c0));
    edgeattn_ceilings ce;
    const edgeattn_status st = edgeattn_measure_ceilings(ctx, &ce);
    if (st != EDGEATTN_OK)
        fail_msg("measure_ceilings: %d %s", (int)st, edgeattn_message_of(ctx));
    assert_true(ea_cuda_counters(ctx, &c1));
    assert_int_equal(c1.mem_alloc - c0.mem_alloc, c1.mem_free - c0.mem_free); /* temporaries freed */
    print_message("ceilings: copy %.1f GB/s, compute %.1f TFLOP/s (%s)\n", ce.copy_gbps, ce.compute_tflops,
                  ce.compute_what);
    assert_true(ce.copy_gbps > 0);
    assert_true(ce.compute_what[0] != '\0');
    edgeattn_destroy(ctx);
}

/* EDGEATTN_CUDA_DEVICE: a malformed or absent ordinal is an error of plan and create (not a silent
 * fall-back), 0 works. */
static void test_device_env(void **state)
{
    (void)state;
    NEED_GPU();
    edgeattn_config cfg;
    base_config(&cfg);
    static const char *const bad[] = {"4096", "abc", "-1", "1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("EDGEATTN_CUDA_DEVICE", bad[i], 1);
        edgeattn_plan_info pi;
        edgeattn_message msg;
        memset(&msg, 0, sizeof msg);
        const edgeattn_status st = edgeattn_plan(&cfg, &pi, &msg);
        edgeattn_context *ctx = NULL;
        const edgeattn_status st2 = edgeattn_create(&cfg, NULL, 0, &ctx, &msg);
        unsetenv("EDGEATTN_CUDA_DEVICE");
        if (st != EDGEATTN_ERR_INVALID_ARG || st2 != EDGEATTN_ERR_INVALID_ARG || ctx || !strstr(msg.text, "EDGEATTN_CUDA_DEVICE"))
            fail_msg("EDGEATTN_CUDA_DEVICE=%s: plan %d, create %d (%s)", bad[i], (int)st, (int)st2, msg.text);
    }
    /* EDGEATTN_CUDA_PREVIEW: a list of f32q, proj, all, none; anything else refused by name */
    const char *pv_env = getenv("EDGEATTN_CUDA_PREVIEW");
    char *pv_saved = pv_env ? strdup(pv_env) : NULL;
    setenv("EDGEATTN_CUDA_PREVIEW", "f32q,bogus", 1);
    {
        edgeattn_context *bad_ctx = NULL;
        edgeattn_message msg;
        memset(&msg, 0, sizeof msg);
        assert_int_equal(edgeattn_create(&cfg, NULL, 0, &bad_ctx, &msg), EDGEATTN_ERR_INVALID_ARG);
        assert_null(bad_ctx);
        assert_non_null(strstr(msg.text, "EDGEATTN_CUDA_PREVIEW"));
    }
    setenv("EDGEATTN_CUDA_PREVIEW", "proj,f32q", 1);
    edgeattn_destroy(create_cuda(&cfg));
    if (pv_saved)
        setenv("EDGEATTN_CUDA_PREVIEW", pv_saved, 1);
    else
        unsetenv("EDGEATTN_CUDA_PREVIEW");
    free(pv_saved);
    setenv("EDGEATTN_CUDA_DEVICE", "0", 1);
    edgeattn_context *ctx = create_cuda(&cfg);
    unsetenv("EDGEATTN_CUDA_DEVICE");
    int ord = -1;
    assert_true(ea_cuda_device_of(ctx, &ord, NULL, NULL));
    assert_int_equal(ord, 0);
    edgeattn_destroy(ctx);
}

/* config.gpu_queue: the caller's stream is used. */
static void test_user_stream(void **state)
{
    (void)state;
    NEED_GPU();
    ea_cu_driver *dr = &g_drv;
    CUdevice dev;
    assert_int_equal(dr->DeviceGet(&dev, 0), 0);
    CUcontext prim;
    assert_int_equal(dr->DevicePrimaryCtxRetain(&prim, dev), 0);
    assert_int_equal(dr->CtxPushCurrent(prim), 0);
    CUstream s = NULL;
    assert_int_equal(dr->StreamCreate(&s, EA_CU_STREAM_NON_BLOCKING), 0);
    edgeattn_config cfg;
    base_config(&cfg);
    cfg.gpu_queue = s;
    edgeattn_context *ctx = create_cuda(&cfg);
    CUstream used;
    assert_true(ea_cuda_device_of(ctx, NULL, NULL, &used));
    assert_ptr_equal(used, s);
    tc_attn_case c = tc_case(1, 4, 4, 40, 50, 64);
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 9400);
    tc_result res = tc_attn_run(ctx, &d, 1e-5);
    if (!res.ok)
        fail_msg("on the caller's stream: %s", res.why);
    tc_attn_free(&d);
    edgeattn_destroy(ctx);
    assert_int_equal(dr->StreamDestroy(s), 0); /* still ours: destroy did not touch it */
    CUcontext prev;
    dr->CtxPopCurrent(&prev);
    dr->DevicePrimaryCtxRelease(dev);
}

/* Can this suite run here? No CUDA backend (no driver or no device) and none required: the whole
 * suite is skipped, exit 77, which meson counts as skipped rather than passed. */
static bool cuda_unavailable(char *why, size_t n)
{
    if (env_on("EDGEATTN_TEST_REQUIRE_CUDA"))
        return false; /* group_setup turns a missing backend into a failure */
    tc_clear_env();
    edgeattn_config cfg;
    base_config(&cfg);
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_create(&cfg, NULL, 0, &ctx, &msg);
    if (st == EDGEATTN_OK)
        edgeattn_destroy(ctx);
    snprintf(why, n, "%s", msg.text);
    return st == EDGEATTN_ERR_BACKEND_UNAVAILABLE;
}

int main(void)
{
    char why[sizeof(((edgeattn_message *)0)->text)];
    if (cuda_unavailable(why, sizeof why)) {
        printf("no CUDA device here (%s): the cuda suite is skipped (exit 77; EDGEATTN_TEST_REQUIRE_CUDA=1 "
               "makes this a failure)\n", why);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_and_region),
        cmocka_unit_test(test_copy_strided),
        cmocka_unit_test(test_device_tensors),
        cmocka_unit_test(test_device_tensors_only),
        cmocka_unit_test(test_host_tensors),
        cmocka_unit_test(test_external_memory),
        cmocka_unit_test(test_async_and_synchronize),
        cmocka_unit_test(test_queue_not_drained),
        cmocka_unit_test(test_kv_cache_device),
        cmocka_unit_test(test_decode_f32_query),
        cmocka_unit_test(test_kv_layers),
        cmocka_unit_test(test_kv_seq_ids),
        cmocka_unit_test(test_decode_ragged),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_head_dims_mult8),
        cmocka_unit_test(test_kv_fork_read),
        cmocka_unit_test(test_kv_paged),
        cmocka_unit_test(test_broadcast_inputs),
        cmocka_unit_test(test_bad_input_cuda),
        cmocka_unit_test(test_no_alloc_after_create),
        cmocka_unit_test(test_ceilings),
        cmocka_unit_test(test_user_stream),
        cmocka_unit_test(test_device_env),
        cmocka_unit_test(test_long_prefill),
        cmocka_unit_test(test_long_decode),
    };
    const char *filter = getenv("EDGEATTN_TEST_FILTER"); /* e.g. "test_rope" or "test_kv_*" */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("cuda", tests, group_setup, group_teardown);
}
