/*
 * The OpenCL backend's own checks (exit 77, meson's "skipped", where no OpenCL device exists; on CI
 * PoCL's CPU device serves, on the device machine NVIDIA's OpenCL with EDGEATTN_OPENCL_DEVICE=nvidia):
 *   - cl_mem tensors in the context's device region (device_region) and in buffers this test creates
 *     itself on its own context and queue (config.gpu_queue), at offsets, vs the double reference,
 *     outputs canary-filled on the device (every view element written, nothing outside it);
 *   - the KV cache fed from cl_mem tensors, then decode (ring window included), head dims 64 and odd
 *     multiples of 8; random cases at head dims 8, 24, 40, 72, 136;
 *   - the KV-cache API: every layer in the device cache (several buffers too), seq_ids, ragged q_lens,
 *     RoPE (both styles, partial, scaled; the angle table in pieces), kv_fork and kv_read, broadcast
 *     K/V; attention with broadcast q/k/v/bias (host and cl_mem);
 *   - the program-binary cache: a second create loads every program from it, a corrupt entry is
 *     ignored (rebuilt), a foreign file is left alone;
 *   - the unfused path (CLBlast GEMMs) vs the reference, or UNSUPPORTED where CLBlast is absent;
 *   - EDGEATTN_OPENCL_DEVICE / _PATH / _TILES errors, and AUTO never taking a CPU device by itself;
 *   - no buffer, program or kernel created after create (the loader's counters) over many calls.
 * EDGEATTN_TEST_REQUIRE_OPENCL=1 turns "no device" into a failure (the device machine sets it);
 * EDGEATTN_TEST_FILTER=PATTERN runs only the cases whose names match (cmocka's * and ? wildcards).
 */
#include "test_common.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/reference.h"
#include "opencl/ocl_internal.h"

static ea_ocl_api g_api;
static bool g_have;
static cl_device_type g_type;

static void clear_ocl_env(void)
{
    unsetenv("EDGEATTN_OPENCL_PATH");
    unsetenv("EDGEATTN_OPENCL_TILES");
}

/* Is there any OpenCL device (or the one EDGEATTN_OPENCL_DEVICE names)? */
static int group_setup(void **state)
{
    (void)state;
    tc_clear_env();
    clear_ocl_env();
    (void)tc_seed();
    char why[96];
    if (!ea_ocl_load(&g_api, why, sizeof why)) {
        const char *req = getenv("EDGEATTN_TEST_REQUIRE_OPENCL");
        if (req && *req && strcmp(req, "0") != 0)
            fail_msg("EDGEATTN_TEST_REQUIRE_OPENCL is set, but: %s", why);
        print_message("note: %s: OpenCL tests skipped\n", why);
        return 0;
    }
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.backend = EDGEATTN_BACKEND_OPENCL;
    cfg.num_threads = 1;
    edgeattn_plan_info info;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_plan(&cfg, &info, &msg);
    if (st != EDGEATTN_OK) {
        const char *req = getenv("EDGEATTN_TEST_REQUIRE_OPENCL");
        if (req && *req && strcmp(req, "0") != 0)
            fail_msg("EDGEATTN_TEST_REQUIRE_OPENCL is set, but: %s", msg.text);
        print_message("note: no OpenCL device (%s): OpenCL tests skipped\n", msg.text);
        return 0;
    }
    g_have = true;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_backend_info bi;
    assert_int_equal(edgeattn_get_backend_info(ctx, &bi), EDGEATTN_OK);
    print_message("OpenCL device: %s, tier %s, %d compute units, %zu MiB\n", bi.device, bi.tier, bi.cores,
                  bi.device_memory >> 20);
    ea_ocl_debug dbg;
    assert_true(ea_ocl_debug_info(ctx, &dbg));
    for (int i = 0; i < dbg.nvar; i++)
        print_message("  head dim %d: prefill tiles %dx%dx%dx%dx%d, with F16 Q %dx%dx%dx%dx%d, decode tiles "
                      "%dx%dx%dx%dx%d (BMxTMxBNxTNxPM)\n",
                      dbg.dmax[i], dbg.pf[i].bm, dbg.pf[i].tm, dbg.pf[i].bn, dbg.pf[i].tn, dbg.pf[i].pm,
                      dbg.pfh[i].bm, dbg.pfh[i].tm, dbg.pfh[i].bn, dbg.pfh[i].tn, dbg.pfh[i].pm, dbg.dec[i].bm,
                      dbg.dec[i].tm, dbg.dec[i].bn, dbg.dec[i].tn, dbg.dec[i].pm);
    const ea_ocl_state *s = ctx->backend_state;
    g_type = s->type;
    edgeattn_destroy(ctx);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_api.lib)
        ea_ocl_unload(&g_api);
    return 0;
}

#define NEED_DEVICE()                                                                                            \
    do {                                                                                                         \
        if (!g_have)                                                                                             \
            skip();                                                                                              \
    } while (0)

static edgeattn_config ocl_config(void)
{
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.backend = EDGEATTN_BACKEND_OPENCL;
    cfg.num_threads = 1;
    cfg.max_batch = 3;
    cfg.max_q_len = 80;
    cfg.max_kv_len = 160;
    cfg.max_heads = 8;
    cfg.max_kv_heads = 4;
    cfg.max_head_dim = 128;
    return cfg;
}

/* ---------------------------------------------------------------- device copies of test tensors */

/* A tc_tensor mirrored in a cl_mem at byte offset off (the whole allocation, canaries included). */
typedef struct dev_tensor {
    cl_mem mem;
    size_t off; /* of the allocation */
    edgeattn_tensor t;
} dev_tensor;

static edgeattn_tensor flat(void *data, edgeattn_memory mem, size_t offset, edgeattn_dtype dt, size_t elems)
{
    edgeattn_tensor t = edgeattn_tensor_bhsd(data, dt, 1, 1, 1, (int64_t)elems);
    t.memory = mem;
    t.offset = offset;
    return t;
}

static void to_device(edgeattn_context *ctx, const tc_tensor *x, cl_mem mem, size_t off, dev_tensor *out)
{
    const size_t es = tc_dtype_size(x->t.dtype);
    edgeattn_tensor src = flat(x->alloc, EDGEATTN_MEM_HOST, 0, x->t.dtype, x->alloc_elems);
    edgeattn_tensor dst = flat((void *)mem, EDGEATTN_MEM_OPENCL, off, x->t.dtype, x->alloc_elems);
    if (edgeattn_copy(ctx, &dst, &src) != EDGEATTN_OK)
        fail_msg("copy to the device: %s", edgeattn_message_of(ctx));
    out->mem = mem;
    out->off = off;
    out->t = x->t;
    out->t.data = (void *)mem;
    out->t.memory = EDGEATTN_MEM_OPENCL;
    out->t.offset = off + x->front * es;
}

static void from_device(edgeattn_context *ctx, const dev_tensor *d, tc_tensor *x)
{
    edgeattn_tensor src = flat((void *)d->mem, EDGEATTN_MEM_OPENCL, d->off, x->t.dtype, x->alloc_elems);
    edgeattn_tensor dst = flat(x->alloc, EDGEATTN_MEM_HOST, 0, x->t.dtype, x->alloc_elems);
    if (edgeattn_copy(ctx, &dst, &src) != EDGEATTN_OK)
        fail_msg("copy from the device: %s", edgeattn_message_of(ctx));
}

static size_t next_off(size_t off, const tc_tensor *x)
{
    return (off + x->alloc_elems * tc_dtype_size(x->t.dtype) + 64 + 255) & ~(size_t)255;
}

/* Runs a prepared case with every tensor in device memory (mem, from byte offset base on). */
static tc_result run_device_case(edgeattn_context *ctx, tc_attn_data *d, cl_mem mem, size_t base, double tol)
{
    dev_tensor q, k, v, out, lse, bias;
    size_t off = base;
    to_device(ctx, &d->q, mem, off, &q);
    off = next_off(off, &d->q);
    to_device(ctx, &d->k, mem, off, &k);
    off = next_off(off, &d->k);
    to_device(ctx, &d->v, mem, off, &v);
    off = next_off(off, &d->v);
    tc_fill_canary(&d->out);
    to_device(ctx, &d->out, mem, off, &out);
    off = next_off(off, &d->out);
    edgeattn_params p = d->params;
    if (d->c.lse) {
        tc_fill_canary(&d->lse);
        to_device(ctx, &d->lse, mem, off, &lse);
        off = next_off(off, &d->lse);
        p.lse = &lse.t;
    } else {
        p.lse = NULL;
    }
    if (d->c.bias_mode != TC_BIAS_NONE) {
        to_device(ctx, &d->bias, mem, off, &bias);
        p.bias = &bias.t;
    }
    tc_result res;
    memset(&res, 0, sizeof res);
    res.status = edgeattn_attention(ctx, &q.t, &k.t, &v.t, &out.t, &p);
    if (res.status != EDGEATTN_OK) {
        snprintf(res.why, sizeof res.why, "edgeattn_attention returned %d: %s", (int)res.status,
                 edgeattn_message_of(ctx));
        return res;
    }
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    from_device(ctx, &out, &d->out);
    if (d->c.lse)
        from_device(ctx, &lse, &d->lse);
    const tc_attn_case *c = &d->c;
    tc_compare(&res, &d->out, c->lse ? &d->lse : NULL, d->ref, d->ref_lse, c->B, c->Hq, c->Nq, c->D, tol);
    return res;
}

static tc_attn_case random_case(tc_rng *r)
{
    static const int dims[] = {32, 64, 80, 128};
    static const int ratios[][2] = {{1, 1}, {2, 1}, {4, 2}, {8, 4}, {4, 1}};
    const int g = tc_randint(r, 0, 4);
    tc_attn_case c = tc_case(tc_randint(r, 1, 3), ratios[g][0], ratios[g][1], tc_randint(r, 1, 70),
                             tc_randint(r, 1, 150), TC_PICK(r, dims));
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    c.qdt = TC_PICK(r, dts);
    c.kvdt = TC_PICK(r, dts);
    c.odt = TC_PICK(r, dts);
    c.qlayout = tc_randint(r, 0, 1);
    c.kvlayout = tc_randint(r, 0, 1);
    c.olayout = tc_randint(r, 0, 1);
    c.pad = tc_randint(r, 0, 3);
    c.causal = tc_randint(r, 0, 1);
    if (tc_randint(r, 0, 2) == 0)
        c.wl = tc_randint(r, 0, 40);
    if (tc_randint(r, 0, 3) == 0)
        c.wr = tc_randint(r, 0, 40);
    if (c.B > 1 && tc_randint(r, 0, 1)) {
        c.use_kv_lens = 1;
        for (int b = 0; b < c.B; b++)
            c.kv_lens[b] = tc_randint(r, 0, c.Nkv);
    }
    if (tc_randint(r, 0, 2) == 0)
        c.bias_mode = tc_randint(r, 1, 4);
    if (tc_randint(r, 0, 3) == 0)
        c.softcap = 20.0f;
    c.lse = tc_randint(r, 0, 1);
    return c;
}

static void run_random_device_cases(edgeattn_context *ctx, cl_mem mem, size_t base, int n, uint64_t stream,
                                    const char *what)
{
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    int failures = 0;
    for (int i = 0; i < n; i++) {
        tc_attn_case c = random_case(&r);
        tc_attn_data d;
        tc_attn_prepare(&d, &c, tc_seed(), stream * 1000 + (uint64_t)i);
        const tc_result res = run_device_case(ctx, &d, mem, base, tc_tolerance(c.qdt, c.kvdt, c.odt));
        if (!res.ok) {
            char desc[512];
            tc_case_describe(&c, desc, sizeof desc);
            print_error("FAIL %s case %d: %s\n     %s\n     seed %llu\n", what, i, desc, res.why,
                        (unsigned long long)tc_seed());
            failures++;
        }
        tc_attn_free(&d);
    }
    if (failures)
        fail_msg("%s: %d failing case(s)", what, failures);
}

/* ---------------------------------------------------------------- tests */

static void test_device_region_tensors(void **state)
{
    (void)state;
    NEED_DEVICE();
    edgeattn_config cfg = ocl_config();
    cfg.device_user_bytes = 16u << 20;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_memory kind;
    void *data = NULL;
    size_t off = 0, bytes = 0;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &off, &bytes), EDGEATTN_OK);
    assert_int_equal(kind, EDGEATTN_MEM_OPENCL);
    assert_true(bytes >= cfg.device_user_bytes);
    run_random_device_cases(ctx, (cl_mem)data, off + 256, 24, 11, "device region");
    /* a misaligned offset is refused before anything runs */
    tc_attn_case c = tc_case(1, 2, 1, 5, 9, 32);
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 12);
    dev_tensor q, k, v, o;
    to_device(ctx, &d.q, (cl_mem)data, 0, &q);
    to_device(ctx, &d.k, (cl_mem)data, 1 << 20, &k);
    to_device(ctx, &d.v, (cl_mem)data, 2 << 20, &v);
    to_device(ctx, &d.out, (cl_mem)data, 3 << 20, &o);
    q.t.offset += 2; /* not a multiple of 4 bytes (F32) */
    q.t.bytes -= 8;
    assert_int_equal(edgeattn_attention(ctx, &q.t, &k.t, &v.t, &o.t, NULL), EDGEATTN_ERR_STRIDE);
    tc_attn_free(&d);
    edgeattn_destroy(ctx);
}

/* Buffers of the test's own OpenCL context, the context given to edgeattn through its queue. */
typedef struct own_cl {
    cl_context context;
    cl_command_queue queue;
    cl_mem buf;
} own_cl;

static bool own_cl_open(own_cl *o, size_t bytes)
{
    memset(o, 0, sizeof *o);
    cl_platform_id plats[8];
    cl_uint np = 0;
    if (g_api.clGetPlatformIDs(8, plats, &np) != CL_SUCCESS)
        return false;
    /* the device the library would take when forced: the same rule (env, GPU first) */
    edgeattn_config cfg = ocl_config();
    edgeattn_context *ctx = tc_create(&cfg);
    const ea_ocl_state *s = ctx->backend_state;
    cl_device_id dev = s->device;
    cl_platform_id plat = s->platform;
    edgeattn_destroy(ctx);
    cl_int err;
    const cl_context_properties props[3] = {CL_CONTEXT_PLATFORM, (cl_context_properties)plat, 0};
    o->context = g_api.clCreateContext(props, 1, &dev, NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return false;
    o->queue = g_api.clCreateCommandQueue(o->context, dev, 0, &err);
    if (err != CL_SUCCESS)
        return false;
    o->buf = g_api.clCreateBuffer(o->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    return err == CL_SUCCESS;
}

static void own_cl_close(own_cl *o)
{
    if (o->buf)
        g_api.clReleaseMemObject(o->buf);
    if (o->queue)
        g_api.clReleaseCommandQueue(o->queue);
    if (o->context)
        g_api.clReleaseContext(o->context);
}

static void test_own_buffers_and_queue(void **state)
{
    (void)state;
    NEED_DEVICE();
    own_cl o;
    assert_true(own_cl_open(&o, 16u << 20));
    edgeattn_config cfg = ocl_config();
    cfg.gpu_queue = o.queue;
    edgeattn_context *ctx = tc_create(&cfg);
    run_random_device_cases(ctx, o.buf, 4096 + 128, 16, 21, "own cl_mem + queue");
    /* the caller's own write into its buffer is seen by the library (same queue, in order) */
    float vals[16];
    for (int i = 0; i < 16; i++)
        vals[i] = (float)i;
    assert_int_equal(g_api.clEnqueueWriteBuffer(o.queue, o.buf, CL_TRUE, 64, sizeof vals, vals, 0, NULL, NULL),
                     CL_SUCCESS);
    float back[16] = {0};
    edgeattn_tensor src = flat((void *)o.buf, EDGEATTN_MEM_OPENCL, 64, EDGEATTN_F32, 16);
    edgeattn_tensor dst = flat(back, EDGEATTN_MEM_HOST, 0, EDGEATTN_F32, 16);
    assert_int_equal(edgeattn_copy(ctx, &dst, &src), EDGEATTN_OK);
    assert_memory_equal(vals, back, sizeof vals);
    edgeattn_destroy(ctx);
    own_cl_close(&o);
}

/* KV cache appended from cl_mem tensors (and host ones), decode with device q/out/lse; head dim D. */
static void decode_scenario(int window, edgeattn_dtype cache_dt, uint64_t stream, int D)
{
    enum { B = 2, HQ = 8, HKV = 2 };
    const int max_kv = 96;
    edgeattn_config cfg = ocl_config();
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_batch = B;
    cfg.max_kv_len = max_kv;
    cfg.max_q_len = 8;
    cfg.max_head_dim = D;
    cfg.kv_cache_dtype = cache_dt;
    cfg.kv_cache_window = window;
    cfg.device_user_bytes = 8u << 20;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_memory kind;
    void *data;
    size_t roff, rbytes;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &roff, &rbytes), EDGEATTN_OK);
    cl_mem mem = (cl_mem)data;
    const int cap = window > 0 ? window : max_kv;
    const int max_tokens = 400;
    float *shadow = calloc((size_t)2 * B * HKV * max_tokens * D, sizeof(float));
    assert_non_null(shadow);
#define SH(kv, b, h, p, d) shadow[((((size_t)(kv) * B + (b)) * HKV + (h)) * max_tokens + (p)) * D + (d)]
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    int64_t total[B] = {0, 0};
    for (int step = 0; step < 8; step++) {
        int32_t n_new[B];
        int N = 0;
        for (int b = 0; b < B; b++) {
            int n = step == 0 ? tc_randint(&r, 20, 60) : tc_randint(&r, 0, window > 0 && step % 3 == 0 ? 40 : 5);
            if (window == 0 && total[b] + n > cap)
                n = (int)(cap - total[b]);
            if (total[b] + n > max_tokens)
                n = 0;
            n_new[b] = n;
            N = n > N ? n : N;
        }
        if (N > 0) {
            tc_tensor k, v;
            const edgeattn_dtype in_dt = step % 2 ? EDGEATTN_F32 : cache_dt;
            tc_tensor_alloc(&k, in_dt, B, HKV, N, D, step & 1, 1, 2, 2);
            tc_tensor_alloc(&v, in_dt, B, HKV, N, D, 1 - (step & 1), 0, 1, 1);
            tc_fill_random(&k, &r, -1, 1);
            tc_fill_random(&v, &r, -1, 1);
            for (int b = 0; b < B; b++)
                for (int h = 0; h < HKV; h++)
                    for (int i = 0; i < n_new[b]; i++)
                        for (int d = 0; d < D; d++) {
                            SH(0, b, h, total[b] + i, d) = tc_round(cache_dt, tc_get(&k.t, b, h, i, d));
                            SH(1, b, h, total[b] + i, d) = tc_round(cache_dt, tc_get(&v.t, b, h, i, d));
                        }
            edgeattn_status st;
            if (step % 3 == 2) { /* host tensors */
                st = edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, n_new, 0);
            } else {
                dev_tensor dk, dv;
                to_device(ctx, &k, mem, roff, &dk);
                to_device(ctx, &v, mem, next_off(roff, &k), &dv);
                st = edgeattn_kv_append(ctx, 0, NULL, &dk.t, &dv.t, n_new, step & 1);
            }
            if (st != EDGEATTN_OK)
                fail_msg("kv_append step %d: %s", step, edgeattn_message_of(ctx));
            tc_tensor_free(&k);
            tc_tensor_free(&v);
            for (int b = 0; b < B; b++)
                total[b] += n_new[b];
        }
        int32_t held[B];
        int max_held = 0, min_held = 1 << 30;
        for (int b = 0; b < B; b++) {
            held[b] = (int32_t)(total[b] < cap ? total[b] : cap);
            max_held = held[b] > max_held ? held[b] : max_held;
            min_held = held[b] < min_held ? held[b] : min_held;
        }
        const int Nq = min_held < 3 ? min_held : 3;
        tc_tensor rk, rv, q, out, lse;
        tc_tensor_alloc(&rk, EDGEATTN_F32, B, HKV, max_held, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rv, EDGEATTN_F32, B, HKV, max_held, D, TC_BHSD, 0, 0, 0);
        memset(rk.alloc, 0, rk.alloc_elems * 4);
        memset(rv.alloc, 0, rv.alloc_elems * 4);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < HKV; h++)
                for (int j = 0; j < held[b]; j++)
                    for (int d = 0; d < D; d++) {
                        tc_set(&rk.t, b, h, j, d, SH(0, b, h, total[b] - held[b] + j, d));
                        tc_set(&rv.t, b, h, j, d, SH(1, b, h, total[b] - held[b] + j, d));
                    }
        tc_tensor_alloc(&q, EDGEATTN_F16, B, HQ, Nq, D, TC_BSHD, 1, 1, 1);
        tc_tensor_alloc(&out, EDGEATTN_F32, B, HQ, Nq, D, TC_BHSD, 2, 2, 2);
        tc_tensor_alloc(&lse, EDGEATTN_F32, B, HQ, Nq, 1, TC_BHSD, 1, 1, 1);
        tc_fill_random(&q, &r, -1, 1);
        tc_fill_canary(&out);
        tc_fill_canary(&lse);
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.causal = 1;
        if (step & 1)
            p.window_left = 30;
        edgeattn_params rp = p;
        rp.kv_lens = held;
        double *ref = malloc(sizeof(double) * B * HQ * Nq * D), *ref_lse = malloc(sizeof(double) * B * HQ * Nq);
        assert_int_equal(ea_ref_attention(&q.t, &rk.t, &rv.t, &rp, ref, ref_lse), EDGEATTN_OK);
        const size_t base = roff + (2u << 20);
        dev_tensor dq, dout, dlse;
        to_device(ctx, &q, mem, base, &dq);
        to_device(ctx, &out, mem, next_off(base, &q), &dout);
        to_device(ctx, &lse, mem, next_off(next_off(base, &q), &out), &dlse);
        p.lse = &dlse.t;
        if (edgeattn_decode(ctx, 0, NULL, NULL, &dq.t, &dout.t, &p) != EDGEATTN_OK)
            fail_msg("decode step %d: %s", step, edgeattn_message_of(ctx));
        from_device(ctx, &dout, &out);
        from_device(ctx, &dlse, &lse);
        tc_result res;
        tc_compare(&res, &out, &lse, ref, ref_lse, B, HQ, Nq, D, tc_tolerance(EDGEATTN_F16, cache_dt, EDGEATTN_F32));
        if (!res.ok)
            fail_msg("decode D=%d window=%d cache=%s step %d: %s (seed %llu)", D, window, tc_dtype_name(cache_dt),
                     step, res.why, (unsigned long long)tc_seed());
        /* the same decode with host tensors */
        tc_fill_canary(&out);
        tc_fill_canary(&lse);
        edgeattn_tensor lt = lse.t;
        p.lse = &lt;
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_OK);
        tc_compare(&res, &out, &lse, ref, ref_lse, B, HQ, Nq, D, tc_tolerance(EDGEATTN_F16, cache_dt, EDGEATTN_F32));
        if (!res.ok)
            fail_msg("decode (host) D=%d window=%d step %d: %s", D, window, step, res.why);
        free(ref);
        free(ref_lse);
        tc_tensor_free(&rk);
        tc_tensor_free(&rv);
        tc_tensor_free(&q);
        tc_tensor_free(&out);
        tc_tensor_free(&lse);
    }
#undef SH
    free(shadow);
    edgeattn_destroy(ctx);
}

static void test_kv_cache_device(void **state)
{
    (void)state;
    NEED_DEVICE();
    decode_scenario(0, EDGEATTN_F16, 31, 64);
    decode_scenario(0, EDGEATTN_F32, 32, 64);
    decode_scenario(24, EDGEATTN_BF16, 33, 64);
    /* head dims that are odd multiples of 8 */
    decode_scenario(0, EDGEATTN_F16, 34, 24);
    decode_scenario(16, EDGEATTN_F32, 35, 8);
    decode_scenario(0, EDGEATTN_BF16, 36, 40);
}

/* Head dims that are odd multiples of 8 (and 72, 136: past a variant's 64 or 128, served by the next):
 * random cases in the device region against the reference; each program pads the head dim to its
 * EA_DMAX and masks the float4 columns past D. */
static void test_head_dims_mult8(void **state)
{
    (void)state;
    NEED_DEVICE();
    edgeattn_config cfg = ocl_config();
    cfg.max_head_dim = 256;
    cfg.device_user_bytes = 16u << 20;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_memory kind;
    void *data = NULL;
    size_t off = 0, bytes = 0;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &off, &bytes), EDGEATTN_OK);
    static const int dims[] = {8, 24, 40, 72, 136};
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 37);
    int failures = 0;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (int i = 0; i < 4; i++) {
            tc_attn_case c = random_case(&r);
            c.D = dims[di];
            tc_attn_data d;
            tc_attn_prepare(&d, &c, tc_seed(), 37000 + 16 * (uint64_t)di + (uint64_t)i);
            const double tol = tc_tolerance(c.qdt, c.kvdt, c.odt);
            const tc_result res = i % 2 ? run_device_case(ctx, &d, (cl_mem)data, off + 256, tol) : tc_attn_run(ctx, &d, tol);
            if (!res.ok) {
                char desc[512];
                tc_case_describe(&c, desc, sizeof desc);
                print_error("FAIL head dim %d case %d (%s tensors): %s\n     %s\n     seed %llu\n", dims[di], i,
                            i % 2 ? "device" : "host", desc, res.why, (unsigned long long)tc_seed());
                failures++;
            }
            tc_attn_free(&d);
        }
    edgeattn_destroy(ctx);
    if (failures)
        fail_msg("head dims: %d failing case(s)", failures);
}

/* Host tensors through a small staging area: a long planned KV length leaves room for a few query
 * rows per unit only, so calls are cut into (sequence, KV heads, query rows) pieces. */
static void test_staging_in_pieces(void **state)
{
    (void)state;
    NEED_DEVICE();
    edgeattn_config cfg = ocl_config();
    cfg.max_kv_len = 65536;
    cfg.max_q_len = 64;
    edgeattn_context *ctx = tc_create(&cfg);
    const ea_ocl_state *s = ctx->backend_state;
    print_message("staging unit: %d query rows, K/V heads of %d rows\n", (int)s->lay.rows_cap, (int)s->lay.rows_kv);
    assert_true(s->lay.rows_cap < 128);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 91);
    for (int i = 0; i < 8; i++) {
        tc_attn_case c = tc_case(tc_randint(&r, 1, 3), 8, i % 2 ? 2 : 4, tc_randint(&r, 20, 64),
                                 tc_randint(&r, 1, 300), i % 3 ? 64 : 128);
        c.causal = i & 1;
        c.lse = 1;
        c.bias_mode = tc_randint(&r, 0, 4);
        c.qlayout = tc_randint(&r, 0, 1);
        c.kvlayout = tc_randint(&r, 0, 1);
        c.olayout = tc_randint(&r, 0, 1);
        c.pad = tc_randint(&r, 0, 2);
        c.qdt = i % 4 == 3 ? EDGEATTN_F16 : EDGEATTN_F32;
        tc_attn_data d;
        tc_attn_prepare(&d, &c, tc_seed(), 9100 + (uint64_t)i);
        const tc_result res = tc_attn_run(ctx, &d, tc_tolerance(c.qdt, c.kvdt, c.odt));
        if (!res.ok) {
            char desc[512];
            tc_case_describe(&c, desc, sizeof desc);
            fail_msg("pieces: %s: %s (seed %llu)", desc, res.why, (unsigned long long)tc_seed());
        }
        tc_attn_free(&d);
    }
    edgeattn_destroy(ctx);
}

/* edgeattn_copy between strided views: host BHSD with padding -> device BSHD view at an offset ->
 * device BHSD view in another buffer -> host BSHD; every element lands where it should and nothing
 * outside the views is written. */
static void test_copy_strided(void **state)
{
    (void)state;
    NEED_DEVICE();
    edgeattn_config cfg = ocl_config();
    cfg.device_user_bytes = 4u << 20;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_memory kind;
    void *data;
    size_t roff, rbytes;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &roff, &rbytes), EDGEATTN_OK);
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 95);
    for (int k = 0; k < 6; k++) {
        const edgeattn_dtype dt = dts[k % 3];
        const int B = 2, H = 3, N = 1 + k * 5, D = 16 * (1 + k % 2);
        tc_tensor a, b, z;
        tc_tensor_alloc(&a, dt, B, H, N, D, TC_BHSD, k % 3, 2, 3);
        tc_tensor_alloc(&b, dt, B, H, N, D, TC_BSHD, (k + 1) % 3, 1, 2);
        tc_tensor_alloc(&z, dt, B, H, N, D, TC_BHSD, 2, 4, 4);
        tc_fill_random(&a, &r, -1, 1);
        tc_fill_canary(&b);
        tc_fill_canary(&z);
        dev_tensor db, dz;
        to_device(ctx, &b, (cl_mem)data, roff + 512, &db);            /* canaries on the device */
        to_device(ctx, &z, (cl_mem)data, roff + (2u << 20) + 1024, &dz);
        assert_int_equal(edgeattn_copy(ctx, &db.t, &a.t), EDGEATTN_OK);  /* host -> device, BHSD -> BSHD */
        if (edgeattn_copy(ctx, &dz.t, &db.t) != EDGEATTN_OK) /* device -> device, BSHD -> BHSD */
            fail_msg("device copy case %d: %s", k, edgeattn_message_of(ctx));
        tc_tensor back;
        tc_tensor_alloc(&back, dt, B, H, N, D, TC_BSHD, 1, 3, 1);
        tc_fill_canary(&back);
        assert_int_equal(edgeattn_copy(ctx, &back.t, &dz.t), EDGEATTN_OK); /* device -> host */
        from_device(ctx, &dz, &z);
        char why[256];
        if (!tc_check_written(&z, "device copy", why, sizeof why) || !tc_check_written(&back, "host copy", why, sizeof why))
            fail_msg("copy case %d (%s): %s", k, tc_dtype_name(dt), why);
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < H; h++)
                for (int n = 0; n < N; n++)
                    for (int d = 0; d < D; d++) {
                        const float x = tc_get(&a.t, bb, h, n, d);
                        if (tc_get(&z.t, bb, h, n, d) != x || tc_get(&back.t, bb, h, n, d) != x)
                            fail_msg("copy case %d: element [%d,%d,%d,%d] differs", k, bb, h, n, d);
                    }
        tc_tensor_free(&a);
        tc_tensor_free(&b);
        tc_tensor_free(&z);
        tc_tensor_free(&back);
    }
    edgeattn_destroy(ctx);
}

/* ---------------------------------------------------------------- program-binary cache */

static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (!strncmp(e->d_name, prefix, strlen(prefix)))
            n++;
    closedir(d);
    return n;
}

static void corrupt_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "edgeattn-ocl-", 13) != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r+b");
        assert_non_null(f);
        fseek(f, 200, SEEK_SET);
        fputs("garbage garbage garbage", f);
        fclose(f);
    }
    closedir(d);
}

static void one_check(edgeattn_context *ctx, uint64_t stream)
{
    tc_attn_case c = tc_case(2, 4, 2, 17, 33, 64);
    c.causal = 1;
    c.lse = 1;
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), stream);
    const tc_result res = tc_attn_run(ctx, &d, tc_tolerance(c.qdt, c.kvdt, c.odt));
    if (!res.ok)
        fail_msg("%s", res.why);
    tc_attn_free(&d);
}

static void test_binary_cache(void **state)
{
    (void)state;
    NEED_DEVICE();
    char dir[] = "/tmp/edgeattn-ocl-cache-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char foreign[1100];
    snprintf(foreign, sizeof foreign, "%s/edgeattn-ocl-0000000000000000.bin", dir);
    FILE *f = fopen(foreign, "wb");
    assert_non_null(f);
    fputs("not a program binary", f);
    fclose(f);
    edgeattn_config cfg = ocl_config();
    cfg.kernel_cache_dir = dir;
    ea_ocl_debug d1, d2, d3;
    edgeattn_context *ctx = tc_create(&cfg);
    assert_true(ea_ocl_debug_info(ctx, &d1));
    one_check(ctx, 41);
    edgeattn_destroy(ctx);
    assert_true(d1.programs_built > 0);
    assert_int_equal(d1.programs_from_cache, 0);
    assert_int_equal(d1.programs_cache_saved, d1.programs_built);
    assert_int_equal(count_entries(dir, "edgeattn-ocl-"), d1.programs_built + 1);
    assert_int_equal(count_entries(dir, "edgeattn-ocl-") - 1, d1.programs_built); /* no temporaries left */
    /* second create: everything from the cache */
    ctx = tc_create(&cfg);
    assert_true(ea_ocl_debug_info(ctx, &d2));
    one_check(ctx, 42);
    edgeattn_destroy(ctx);
    assert_int_equal(d2.programs_built, 0);
    assert_int_equal(d2.programs_from_cache, d1.programs_built);
    /* corrupt entries: ignored, rebuilt and rewritten */
    corrupt_entries(dir);
    ctx = tc_create(&cfg);
    assert_true(ea_ocl_debug_info(ctx, &d3));
    one_check(ctx, 43);
    edgeattn_destroy(ctx);
    assert_int_equal(d3.programs_from_cache, 0);
    assert_int_equal(d3.programs_built, d1.programs_built);
    /* a cache folder that does not exist: create still works */
    edgeattn_config c2 = cfg;
    c2.kernel_cache_dir = "/nonexistent/edgeattn/cache";
    ctx = tc_create(&c2);
    edgeattn_destroy(ctx);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---------------------------------------------------------------- the unfused path */

static void test_unfused_path(void **state)
{
    (void)state;
    NEED_DEVICE();
    setenv("EDGEATTN_OPENCL_PATH", "unfused", 1);
    edgeattn_config cfg = ocl_config();
    cfg.max_kv_len = 64;
    cfg.max_q_len = 24;
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.kv_cache_dtype = EDGEATTN_F16;
    edgeattn_context *ctx = tc_create(&cfg);
    unsetenv("EDGEATTN_OPENCL_PATH");
    ea_ocl_debug dbg;
    assert_true(ea_ocl_debug_info(ctx, &dbg));
    assert_int_equal(dbg.path, EA_OCL_PATH_UNFUSED);
    const ea_ocl_state *s = ctx->backend_state;
    tc_attn_case c = tc_case(2, 4, 2, 13, 40, 64);
    c.causal = 1;
    c.lse = 1;
    c.bias_mode = TC_BIAS_BCAST_B;
    c.softcap = 10.0f;
    c.use_kv_lens = 1;
    c.kv_lens[0] = 40;
    c.kv_lens[1] = 0; /* fully masked sequence */
    c.qdt = EDGEATTN_F16;
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 51);
    const tc_result res = tc_attn_run(ctx, &d, tc_tolerance(c.qdt, c.kvdt, c.odt));
    if (!s->blast_ok) {
        assert_int_equal(res.status, EDGEATTN_ERR_UNSUPPORTED);
        print_message("note: CLBlast not present (%s): the unfused path reports UNSUPPORTED\n", s->blast_why);
    } else if (!res.ok) {
        fail_msg("unfused: %s", res.why);
    }
    tc_attn_free(&d);
    if (s->blast_ok) { /* decode over the cache through the GEMMs */
        tc_tensor k, v, q, out;
        tc_rng r;
        tc_rng_init(&r, tc_seed(), 52);
        tc_tensor_alloc(&k, EDGEATTN_F32, 1, 2, 30, 64, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&v, EDGEATTN_F32, 1, 2, 30, 64, TC_BHSD, 0, 0, 0);
        tc_fill_random(&k, &r, -1, 1);
        tc_fill_random(&v, &r, -1, 1);
        assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, NULL, 0), EDGEATTN_OK);
        tc_tensor_alloc(&q, EDGEATTN_F32, 1, 8, 2, 64, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&out, EDGEATTN_F32, 1, 8, 2, 64, TC_BHSD, 1, 1, 1);
        tc_fill_random(&q, &r, -1, 1);
        tc_fill_canary(&out);
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.causal = 1;
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_OK);
        /* reference: K/V rounded to the F16 cache */
        for (size_t i = 0; i < k.alloc_elems; i++) {
            ((float *)k.alloc)[i] = tc_round(EDGEATTN_F16, ((float *)k.alloc)[i]);
            ((float *)v.alloc)[i] = tc_round(EDGEATTN_F16, ((float *)v.alloc)[i]);
        }
        double ref[8 * 2 * 64], ref_lse[16];
        assert_int_equal(ea_ref_attention(&q.t, &k.t, &v.t, &p, ref, ref_lse), EDGEATTN_OK);
        tc_result r2;
        tc_compare(&r2, &out, NULL, ref, ref_lse, 1, 8, 2, 64, 2e-3);
        if (!r2.ok)
            fail_msg("unfused decode: %s", r2.why);
        tc_tensor_free(&k);
        tc_tensor_free(&v);
        tc_tensor_free(&q);
        tc_tensor_free(&out);
    }
    edgeattn_destroy(ctx);

    /* without CLBlast: the unfused path says UNSUPPORTED, a fused context still works */
    setenv("EDGEATTN_CLBLAST_LIBRARY", "libclblast-not-installed.so.1", 1);
    setenv("EDGEATTN_OPENCL_PATH", "unfused", 1);
    edgeattn_config small = ocl_config();
    ctx = tc_create(&small);
    unsetenv("EDGEATTN_OPENCL_PATH");
    tc_attn_case c2 = tc_case(1, 2, 1, 5, 9, 32);
    tc_attn_data d2;
    tc_attn_prepare(&d2, &c2, tc_seed(), 53);
    const tc_result r3 = tc_attn_run(ctx, &d2, 1e-5);
    assert_int_equal(r3.status, EDGEATTN_ERR_UNSUPPORTED);
    assert_non_null(strstr(edgeattn_message_of(ctx), "CLBlast"));
    edgeattn_destroy(ctx);
    ctx = tc_create(&small);
    const tc_result r4 = tc_attn_run(ctx, &d2, 1e-5);
    unsetenv("EDGEATTN_CLBLAST_LIBRARY");
    if (!r4.ok)
        fail_msg("fused without CLBlast: %s", r4.why);
    tc_attn_free(&d2);
    edgeattn_destroy(ctx);
}

/* ---------------------------------------------------------------- environment */

static edgeattn_status plan_status(const edgeattn_config *cfg, edgeattn_backend *chosen, char *text)
{
    edgeattn_plan_info info;
    edgeattn_message msg;
    memset(&msg, 0, sizeof msg);
    const edgeattn_status st = edgeattn_plan(cfg, &info, &msg);
    if (chosen)
        *chosen = info.backend;
    if (text)
        snprintf(text, 256, "%s", msg.text);
    return st;
}

static void test_environment(void **state)
{
    (void)state;
    NEED_DEVICE();
    edgeattn_config cfg = ocl_config();
    char text[256];
    const char *saved = getenv("EDGEATTN_OPENCL_DEVICE");
    char keep[128] = "";
    if (saved)
        snprintf(keep, sizeof keep, "%s", saved);
    setenv("EDGEATTN_OPENCL_DEVICE", "99:0", 1);
    assert_int_equal(plan_status(&cfg, NULL, text), EDGEATTN_ERR_BACKEND_UNAVAILABLE);
    assert_non_null(strstr(text, "EDGEATTN_OPENCL_DEVICE"));
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    assert_int_equal(edgeattn_create(&cfg, NULL, 0, &ctx, &msg), EDGEATTN_ERR_BACKEND_UNAVAILABLE);
    assert_null(ctx);
    setenv("EDGEATTN_OPENCL_DEVICE", "no-such-device-anywhere", 1);
    assert_int_equal(plan_status(&cfg, NULL, NULL), EDGEATTN_ERR_BACKEND_UNAVAILABLE);
    /* AUTO with a device named that does not exist: the CPU backend */
    edgeattn_config autoc = cfg;
    autoc.backend = EDGEATTN_BACKEND_AUTO;
    edgeattn_backend chosen;
    assert_int_equal(plan_status(&autoc, &chosen, NULL), EDGEATTN_OK);
    assert_int_not_equal(chosen, EDGEATTN_BACKEND_OPENCL);
    setenv("EDGEATTN_OPENCL_DEVICE", "0:0", 1);
    assert_int_equal(plan_status(&cfg, NULL, NULL), EDGEATTN_OK);
    /* AUTO with a device named explicitly takes it (CUDA, first in the registry, wins where present) */
    edgeattn_config cudac = autoc;
    cudac.backend = EDGEATTN_BACKEND_CUDA;
    edgeattn_plan_info cuda_info;
    const bool have_cuda = edgeattn_plan(&cudac, &cuda_info, NULL) == EDGEATTN_OK;
    assert_int_equal(plan_status(&autoc, &chosen, NULL), EDGEATTN_OK);
    assert_int_equal(chosen, have_cuda ? EDGEATTN_BACKEND_CUDA : EDGEATTN_BACKEND_OPENCL);
    unsetenv("EDGEATTN_OPENCL_DEVICE");
    /* AUTO without a name: OpenCL only for a GPU or accelerator */
    assert_int_equal(plan_status(&autoc, &chosen, NULL), EDGEATTN_OK);
    if (g_type & CL_DEVICE_TYPE_CPU)
        assert_int_not_equal(chosen, EDGEATTN_BACKEND_OPENCL);
    if (keep[0])
        setenv("EDGEATTN_OPENCL_DEVICE", keep, 1);

    setenv("EDGEATTN_OPENCL_PATH", "fastest", 1);
    assert_int_equal(plan_status(&cfg, NULL, text), EDGEATTN_ERR_INVALID_ARG);
    unsetenv("EDGEATTN_OPENCL_PATH");
    static const char *const bad_tiles[] = {"pf=0x1x16", "pf=16x3x16", "pf=32x16x16", "dec=8x1x6", "pf=16x2", "xx=1x1x4",
                                            "pf=16x2x16;dec=8x1x16", "pf=16x2x16x3", "pf=16x2x16x16",
                                            "pf=32x4x32x4x3", "pf=32x4x32x4x16", "dec=8x1x64x4x8",
                                            "udec=3x4", "udec=16", "upf=64x4", "upfh=8x0", "udec=16x4x2",
                                            "pdec=2", "ppf=-1", "rdec=16", "rpfh=256", "rpf=x"};
    for (size_t i = 0; i < sizeof bad_tiles / sizeof bad_tiles[0]; i++) {
        setenv("EDGEATTN_OPENCL_TILES", bad_tiles[i], 1);
        ctx = NULL;
        if (edgeattn_create(&cfg, NULL, 0, &ctx, &msg) != EDGEATTN_ERR_INVALID_ARG)
            fail_msg("EDGEATTN_OPENCL_TILES=%s: create did not refuse it (%s)", bad_tiles[i], msg.text);
    }
    /* a valid override, used for sweeps: results still right */
    setenv("EDGEATTN_OPENCL_TILES", "udec=16x4,pdec=1,rdec=96,pf=16x2x16x8,dec=4x1x8,upf=4x2,ppf=0", 1);
    ctx = tc_create(&cfg);
    unsetenv("EDGEATTN_OPENCL_TILES");
    ea_ocl_debug dbg;
    assert_true(ea_ocl_debug_info(ctx, &dbg));
    assert_int_equal(dbg.pf[0].bm, 16);
    assert_int_equal(dbg.pf[0].tn, 8);
    assert_int_equal(dbg.dec[0].bn, 8);
    assert_int_equal(dbg.dec[0].uqk, 16); /* a tile part keeps an unroll given before it */
    assert_int_equal(dbg.dec[0].upv, 4);
    assert_int_equal(dbg.pf[0].uqk, 4);
    assert_int_equal(dbg.pf[0].upv, 2);
    assert_int_equal(dbg.dec[0].pf, 2); /* on */
    assert_int_equal(dbg.dec[0].regs, 96);
    assert_int_equal(dbg.pf[0].pf, 1); /* off */
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 61);
    for (int i = 0; i < 12; i++) {
        tc_attn_case c = random_case(&r);
        tc_attn_data d;
        tc_attn_prepare(&d, &c, tc_seed(), 6100 + (uint64_t)i);
        const tc_result res = tc_attn_run(ctx, &d, tc_tolerance(c.qdt, c.kvdt, c.odt));
        if (!res.ok) {
            char desc[512];
            tc_case_describe(&c, desc, sizeof desc);
            fail_msg("tiles override: %s: %s", desc, res.why);
        }
        tc_attn_free(&d);
    }
    edgeattn_backend_info bi;
    assert_int_equal(edgeattn_get_backend_info(ctx, &bi), EDGEATTN_OK);
    assert_string_equal(bi.backend_name, "opencl");
    assert_true(bi.device_memory > 0);
    edgeattn_ceilings ce;
    assert_int_equal(edgeattn_measure_ceilings(ctx, &ce), EDGEATTN_OK);
    print_message("ceilings: copy %.1f GB/s, %s %.3f TFLOP/s\n", ce.copy_gbps, ce.compute_what, ce.compute_tflops);
    assert_true(ce.copy_gbps > 0 && ce.compute_tflops > 0);
    edgeattn_destroy(ctx);
}

/* ---------------------------------------------------------------- no creation after create */

static void test_no_creation_after_create(void **state)
{
    (void)state;
    NEED_DEVICE();
    edgeattn_config cfg = ocl_config();
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_kv_len = 128;
    cfg.max_head_dim = 64;
    cfg.device_user_bytes = 8u << 20;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_memory kind;
    void *data;
    size_t roff, rbytes;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &roff, &rbytes), EDGEATTN_OK);
    cl_mem mem = (cl_mem)data;
    tc_attn_case c = tc_case(2, 4, 2, 9, 40, 64);
    c.causal = 1;
    c.lse = 1;
    c.bias_mode = TC_BIAS_FULL;
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 71);
    tc_tensor k, v, q, out;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 72);
    tc_tensor_alloc(&k, EDGEATTN_F32, 2, 2, 3, 64, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F32, 2, 2, 3, 64, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&q, EDGEATTN_F32, 2, 4, 1, 64, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&out, EDGEATTN_F32, 2, 4, 1, 64, TC_BHSD, 0, 0, 0);
    tc_fill_random(&k, &r, -1, 1);
    tc_fill_random(&v, &r, -1, 1);
    tc_fill_random(&q, &r, -1, 1);
    dev_tensor dk, dq, dout;
    to_device(ctx, &k, mem, roff, &dk);
    to_device(ctx, &q, mem, roff + (1u << 20), &dq);
    to_device(ctx, &out, mem, roff + (2u << 20), &dout);
    ea_ocl_debug before, after;
    assert_true(ea_ocl_debug_info(ctx, &before));
    for (int it = 0; it < 40; it++) {
        const tc_result res = tc_attn_run(ctx, &d, tc_tolerance(c.qdt, c.kvdt, c.odt));
        if (!res.ok)
            fail_msg("%s", res.why);
        if (it % 8 == 0)
            assert_int_equal(edgeattn_kv_reset(ctx, -1), EDGEATTN_OK);
        assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &dk.t, &v.t, NULL, it & 1), EDGEATTN_OK);
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.check_finite = 1;
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &dq.t, &dout.t, &p), EDGEATTN_OK);
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_OK);
        assert_int_equal(edgeattn_copy(ctx, &dout.t, &q.t), EDGEATTN_OK);
        assert_int_equal(edgeattn_copy(ctx, &out.t, &dq.t), EDGEATTN_OK);
        /* failing calls too */
        edgeattn_tensor bad = dq.t;
        bad.offset += 1;
        assert_int_not_equal(edgeattn_decode(ctx, 0, NULL, NULL, &bad, &dout.t, &p), EDGEATTN_OK);
    }
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    assert_true(ea_ocl_debug_info(ctx, &after));
    static const char *const names[EA_OCL_N_COUNT] = {"clCreateBuffer", "clCreateSubBuffer",
                                                      "clCreateProgramWith*", "clCreateKernel"};
    for (int i = 0; i < EA_OCL_N_COUNT; i++)
        if (after.counts[i] != before.counts[i])
            fail_msg("%s called %ld time(s) after create", names[i], after.counts[i] - before.counts[i]);
    print_message("after create: %ld buffers, %ld programs, %ld kernels were created at create, none since\n",
                  before.counts[EA_OCL_N_BUFFER], before.counts[EA_OCL_N_PROGRAM], before.counts[EA_OCL_N_KERNEL]);
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_attn_free(&d);
    edgeattn_destroy(ctx);
}

/* ---------------------------------------------------------------- the KV-cache API on the device
 * Every layer in the device cache (spread over several buffers), seq_ids (permutations and subsets),
 * ragged decode q_lens, RoPE (both styles, partial rope.dim, scalings), kv_fork (kv_copy) and kv_read,
 * K/V broadcast over B, H or N, host and cl_mem tensors mixed; every decode against the double
 * reference over a shadow of what was appended (keys rotated in double here). */

enum { KS_L = 3, KS_B = 4, KS_H = 2, KS_D = 64, KS_HQ = 8, KS_T = 420 };

typedef struct kvs {
    edgeattn_dtype dt;
    edgeattn_rope rope;
    int layers, cap, window, max_q;
    bool split; /* decodes made for the split-KV path: device tensors, every sequence, ragged, group 1 */
    ea_rope core; /* core's resolved RoPE: the FP32 rotation of the CPU backend, for kv_read's F32 check */
    int64_t total[KS_L][KS_B];
    int held[KS_L][KS_B];
    float *tok; /* [2][KS_L][KS_B][KS_H][KS_T][KS_D]: the rows appended, as given (K before RoPE) */
    cl_mem mem; /* the device region: cl_mem tensors go there */
    size_t roff;
} kvs;

#define KT(s, kv, l, b, h, p, d)                                                                                  \
    (s)->tok[(((((size_t)(kv) * KS_L + (size_t)(l)) * KS_B + (size_t)(b)) * KS_H + (size_t)(h)) * KS_T +          \
              (size_t)(p)) * KS_D + (size_t)(d)]

/* What the cache holds for position p of (l, b, h): K rotated in double, both rounded to the cache dtype. */
static void kvs_stored(const kvs *s, int kv, int l, int b, int h, int64_t p, float *row)
{
    double x[KS_D];
    for (int d = 0; d < KS_D; d++)
        x[d] = KT(s, kv, l, b, h, p, d);
    if (kv == 0)
        ea_ref_rope(&s->rope, KS_D, p, x);
    for (int d = 0; d < KS_D; d++)
        row[d] = tc_round(s->dt, (float)x[d]);
}

/* n distinct sequence ids in random order (ids[] gets them; NULL returned for 0..n-1 one time in three). */
static const int32_t *kvs_ids(tc_rng *r, int n, const int32_t *from, int nfrom, int32_t *ids)
{
    int32_t all[KS_B];
    memcpy(all, from, sizeof(int32_t) * (size_t)nfrom);
    for (int i = nfrom - 1; i > 0; i--) {
        const int j = tc_randint(r, 0, i);
        const int32_t t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    memcpy(ids, all, sizeof(int32_t) * (size_t)n);
    bool identity = true;
    for (int b = 0; b < n; b++)
        identity = identity && ids[b] == b;
    if (nfrom == KS_B && tc_randint(r, 0, 2) == 0) {
        for (int b = 0; b < n; b++)
            ids[b] = b;
        identity = true;
    }
    return identity && tc_randint(r, 0, 1) ? NULL : ids;
}

/* A random stride-0 dim (B, H or N; -1: none) for a read-only input. */
static void kvs_bcast(tc_rng *r, edgeattn_tensor *t)
{
    const int dim = tc_randint(r, -3, 2);
    if (dim >= 0 && t->shape[dim] > 1)
        t->stride[dim] = 0;
}

/* A tensor of the test on the device (in the region, from *off on) or as it is. */
static edgeattn_tensor kvs_place(edgeattn_context *ctx, kvs *s, tc_tensor *x, bool device, size_t *off, dev_tensor *dt)
{
    if (!device)
        return x->t;
    to_device(ctx, x, s->mem, *off, dt);
    *off = next_off(*off, x);
    return dt->t;
}

static void kvs_reset_seq(edgeattn_context *ctx, kvs *s, int seq)
{
    assert_int_equal(edgeattn_kv_reset(ctx, seq), EDGEATTN_OK);
    for (int l = 0; l < KS_L; l++)
        s->total[l][seq] = s->held[l][seq] = 0;
}

/* Appends to layer l: random sequences, n_new, dtypes, layouts, broadcasts, host or device. */
static void kvs_append(edgeattn_context *ctx, kvs *s, tc_rng *r, int l, bool big)
{
    static const int32_t every[KS_B] = {0, 1, 2, 3};
    int32_t ids[KS_B];
    const int B = tc_randint(r, 1, KS_B);
    const int32_t *idp = kvs_ids(r, B, every, KS_B, ids);
    const int N = big ? tc_randint(r, 70, 110) : tc_randint(r, 1, 6);
    const bool all = tc_randint(r, 0, 3) == 0;
    int32_t n_new[KS_B];
    for (int b = 0; b < B; b++) {
        n_new[b] = all ? N : tc_randint(r, 0, N);
        const int q = ids[b];
        if ((s->window == 0 && s->total[l][q] + n_new[b] > s->cap) || s->total[l][q] + n_new[b] > KS_T)
            kvs_reset_seq(ctx, s, q);
    }
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    tc_tensor k, v;
    tc_tensor_alloc(&k, TC_PICK(r, dts), B, KS_H, N, KS_D, tc_randint(r, 0, 1), tc_randint(r, 0, 2), 1, 1);
    tc_tensor_alloc(&v, TC_PICK(r, dts), B, KS_H, N, KS_D, tc_randint(r, 0, 1), 0, 0, 2);
    if (tc_randint(r, 0, 2) == 0) /* often the cache's own dtype: the direct host path */
        k.t.dtype = s->dt, tc_tensor_free(&k),
        tc_tensor_alloc(&k, s->dt, B, KS_H, N, KS_D, tc_randint(r, 0, 1), tc_randint(r, 0, 2), 1, 1);
    if (tc_randint(r, 0, 2) == 0)
        tc_tensor_free(&v), tc_tensor_alloc(&v, s->dt, B, KS_H, N, KS_D, tc_randint(r, 0, 1), 0, 0, 2);
    tc_fill_random(&k, r, -1, 1);
    tc_fill_random(&v, r, -1, 1);
    if (tc_randint(r, 0, 2) == 0)
        kvs_bcast(r, &k.t);
    if (tc_randint(r, 0, 2) == 0)
        kvs_bcast(r, &v.t);
    size_t off = s->roff;
    dev_tensor dk, dv;
    const edgeattn_tensor kt = kvs_place(ctx, s, &k, tc_randint(r, 0, 1), &off, &dk);
    const edgeattn_tensor vt = kvs_place(ctx, s, &v, tc_randint(r, 0, 1), &off, &dv);
    const edgeattn_status st = edgeattn_kv_append(ctx, l, idp, &kt, &vt, all ? NULL : n_new, tc_randint(r, 0, 1));
    if (st != EDGEATTN_OK)
        fail_msg("kv_append layer %d B %d N %d (k %s %s, v %s %s): %s (seed %llu)", l, B, N, tc_dtype_name(kt.dtype),
                 kt.memory ? "device" : "host", tc_dtype_name(vt.dtype), vt.memory ? "device" : "host",
                 edgeattn_message_of(ctx), (unsigned long long)tc_seed());
    for (int b = 0; b < B; b++) {
        const int q = ids[b];
        for (int h = 0; h < KS_H; h++)
            for (int i = 0; i < n_new[b]; i++)
                for (int d = 0; d < KS_D; d++) {
                    KT(s, 0, l, q, h, s->total[l][q] + i, d) = tc_get(&k.t, b, h, i, d);
                    KT(s, 1, l, q, h, s->total[l][q] + i, d) = tc_get(&v.t, b, h, i, d);
                }
        s->total[l][q] += n_new[b];
        s->held[l][q] = s->total[l][q] < s->cap ? (int)s->total[l][q] : s->cap;
    }
    tc_tensor_free(&k);
    tc_tensor_free(&v);
}

/* Elements of x's allocation outside rows i < nq[b] of the view are as in snap (byte for byte). */
static bool kvs_untouched_past(const tc_tensor *x, const void *snap, const int32_t *nq, char *why, size_t len)
{
    const size_t es = tc_dtype_size(x->t.dtype);
    unsigned char *mine = calloc(x->alloc_elems, 1);
    assert_non_null(mine);
    for (int64_t b = 0; b < x->t.shape[0]; b++)
        for (int64_t h = 0; h < x->t.shape[1]; h++)
            for (int64_t i = 0; i < nq[b]; i++)
                for (int64_t d = 0; d < x->t.shape[3]; d++)
                    mine[x->front + tc_off(&x->t, b, h, i, d)] = 1;
    bool ok = true;
    for (size_t e = 0; e < x->alloc_elems && ok; e++)
        if (!mine[e] && memcmp((const char *)x->alloc + e * es, (const char *)snap + e * es, es) != 0) {
            snprintf(why, len, "element %zu of the buffer (outside the rows of the sequences' queries) was written", e);
            ok = false;
        }
    free(mine);
    return ok;
}

/* Decode of layer l over random sequences that hold tokens, ragged q_lens, host or device tensors. */
static void kvs_decode(edgeattn_context *ctx, kvs *s, tc_rng *r, int l)
{
    int32_t have[KS_B];
    int nh = 0;
    for (int b = 0; b < KS_B; b++)
        if (s->held[l][b] > 0)
            have[nh++] = b;
    if (nh == 0)
        return;
    int32_t ids[KS_B];
    const int B = s->split ? nh : tc_randint(r, 1, nh);
    const int32_t *idp = kvs_ids(r, B, have, nh, ids);
    if (!idp)
        for (int b = 0; b < B; b++)
            if (ids[b] != b || s->held[l][b] == 0)
                idp = ids; /* the identity only where it is valid */
    const bool ragged = s->split || tc_randint(r, 0, 1);
    int32_t qlens[KS_B];
    int Nq = 1;
    for (int b = 0; b < B; b++) {
        const int h = s->held[l][ids[b]], m = h < s->max_q ? h : s->max_q;
        qlens[b] = tc_randint(r, 1, m);
        Nq = qlens[b] > Nq ? qlens[b] : Nq;
    }
    if (!ragged) {
        for (int b = 0; b < B; b++)
            Nq = qlens[b] < Nq ? qlens[b] : Nq;
        for (int b = 0; b < B; b++)
            qlens[b] = Nq;
    } else if (tc_randint(r, 0, 2) == 0 && Nq < s->max_q) {
        Nq++; /* no sequence has the last row */
    }
    static const int groups[] = {1, 2, 4};
    const int Hq = s->split ? KS_H : KS_H * TC_PICK(r, groups);
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    const edgeattn_dtype qdt = TC_PICK(r, dts), odt = TC_PICK(r, dts);
    tc_tensor q, out, lse;
    tc_tensor_alloc(&q, qdt, B, Hq, Nq, KS_D, tc_randint(r, 0, 1), tc_randint(r, 0, 2), 1, 1);
    tc_tensor_alloc(&out, odt, B, Hq, Nq, KS_D, tc_randint(r, 0, 1), tc_randint(r, 0, 2), 2, 2);
    tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 1, 1, 1);
    tc_fill_random(&q, r, -1, 1);
    if (tc_randint(r, 0, 3) == 0)
        kvs_bcast(r, &q.t);
    tc_fill_canary(&out);
    tc_fill_canary(&lse);
    void *out_snap = tc_snapshot(&out), *lse_snap = tc_snapshot(&lse);
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = Nq > 1 ? 1 : tc_randint(r, 0, 1);
    if (tc_randint(r, 0, 3) == 0)
        p.window_left = tc_randint(r, 0, 30);
    if (tc_randint(r, 0, 4) == 0)
        p.softcap = 15.0f;
    const bool want_lse = tc_randint(r, 0, 1);
    const bool dev_q = s->split || tc_randint(r, 0, 1), dev_o = s->split || tc_randint(r, 0, 1);
    size_t off = s->roff;
    dev_tensor dq, dout, dlse;
    const edgeattn_tensor qt = kvs_place(ctx, s, &q, dev_q, &off, &dq);
    edgeattn_tensor ot = kvs_place(ctx, s, &out, dev_o, &off, &dout);
    edgeattn_tensor lt = kvs_place(ctx, s, &lse, dev_o, &off, &dlse);
    p.lse = want_lse ? &lt : NULL;
    const edgeattn_status st = edgeattn_decode(ctx, l, idp, ragged ? qlens : NULL, &qt, &ot, &p);
    char why[512] = "";
    if (st != EDGEATTN_OK)
        snprintf(why, sizeof why, "returned %d: %s", (int)st, edgeattn_message_of(ctx));
    if (!why[0] && dev_o) {
        from_device(ctx, &dout, &out);
        from_device(ctx, &dlse, &lse);
    }
    if (!why[0] && kvs_untouched_past(&out, out_snap, qlens, why, sizeof why))
        kvs_untouched_past(&lse, lse_snap, want_lse ? qlens : (const int32_t[KS_B]){0, 0, 0, 0}, why, sizeof why);
    const double tol = tc_tolerance(qdt, s->dt, odt);
    for (int b = 0; b < B && !why[0]; b++) {
        const int seq = ids[b], held = s->held[l][seq], nq = qlens[b];
        const int64_t total = s->total[l][seq];
        tc_tensor rk, rv, rq;
        tc_tensor_alloc(&rk, EDGEATTN_F32, 1, KS_H, held, KS_D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rv, EDGEATTN_F32, 1, KS_H, held, KS_D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rq, EDGEATTN_F32, 1, Hq, nq, KS_D, TC_BHSD, 0, 0, 0);
        float row[KS_D];
        for (int h = 0; h < KS_H; h++)
            for (int j = 0; j < held; j++) {
                kvs_stored(s, 0, l, seq, h, total - held + j, row);
                for (int d = 0; d < KS_D; d++)
                    tc_set(&rk.t, 0, h, j, d, row[d]);
                kvs_stored(s, 1, l, seq, h, total - held + j, row);
                for (int d = 0; d < KS_D; d++)
                    tc_set(&rv.t, 0, h, j, d, row[d]);
            }
        for (int h = 0; h < Hq; h++)
            for (int i = 0; i < nq; i++) {
                double x[KS_D];
                for (int d = 0; d < KS_D; d++)
                    x[d] = tc_get(&q.t, b, h, i, d);
                ea_ref_rope(&s->rope, KS_D, total - nq + i, x); /* the query at its position, in double */
                for (int d = 0; d < KS_D; d++)
                    tc_set(&rq.t, 0, h, i, d, (float)x[d]);
            }
        double *ref = malloc(sizeof(double) * (size_t)Hq * nq * KS_D), *ref_lse = malloc(sizeof(double) * (size_t)Hq * nq);
        assert_non_null(ref);
        assert_non_null(ref_lse);
        edgeattn_params rp = p;
        rp.lse = NULL;
        assert_int_equal(ea_ref_attention(&rq.t, &rk.t, &rv.t, &rp, ref, ref_lse), EDGEATTN_OK);
        double mx = 0.0, err = 0.0;
        for (size_t e = 0; e < (size_t)Hq * nq * KS_D; e++)
            mx = fabs(ref[e]) > mx ? fabs(ref[e]) : mx;
        for (int h = 0; h < Hq && !why[0]; h++)
            for (int i = 0; i < nq && !why[0]; i++) {
                for (int d = 0; d < KS_D; d++) {
                    const double got = tc_get(&out.t, b, h, i, d), want = ref[((size_t)h * nq + i) * KS_D + d];
                    const double e = fabs(got - want) / (mx > 0 ? mx : 1.0);
                    err = e <= err ? err : isnan(e) ? INFINITY : e;
                }
                if (want_lse) {
                    const double got = tc_get(&lse.t, b, h, i, 0), want = ref_lse[(size_t)h * nq + i];
                    if (!(fabs(got - want) <= 1e-3 * (1.0 + fabs(want))))
                        snprintf(why, sizeof why, "lse [%d,%d,%d] = %g, reference %g", b, h, i, got, want);
                }
            }
        if (!why[0] && !(err <= tol))
            snprintf(why, sizeof why, "batch row %d (sequence %d, %d queries, %d held of %lld): max|out-ref|/max|ref| = "
                     "%.3g > %.3g", b, seq, nq, held, (long long)total, err, tol);
        free(ref);
        free(ref_lse);
        tc_tensor_free(&rk);
        tc_tensor_free(&rv);
        tc_tensor_free(&rq);
    }
    if (why[0])
        fail_msg("decode layer %d B %d Hq %d Nq %d ragged %d (q %s %s, out %s %s) causal %d window_left %d softcap %g: "
                 "%s (seed %llu)", l, B, Hq, Nq, (int)ragged, tc_dtype_name(qdt), dev_q ? "device" : "host",
                 tc_dtype_name(odt), dev_o ? "device" : "host", p.causal, p.window_left, (double)p.softcap, why,
                 (unsigned long long)tc_seed());
    free(out_snap);
    free(lse_snap);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_tensor_free(&lse);
}

/* kv_read of a random run of held positions of (l, seq) (-1: a random one), into host tensors of random
 * dtypes and layouts. */
static void kvs_read_at(edgeattn_context *ctx, const kvs *s, tc_rng *r, int l, int seq)
{
    if (l < 0)
        l = tc_randint(r, 0, s->layers - 1);
    if (seq < 0)
        seq = tc_randint(r, 0, KS_B - 1);
    const int held = s->held[l][seq];
    if (held == 0)
        return;
    const int N = tc_randint(r, 1, held);
    const int64_t first = s->total[l][seq] - held + tc_randint(r, 0, held - N);
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    const edgeattn_dtype kdt = tc_randint(r, 0, 1) ? s->dt : TC_PICK(r, dts), vdt = TC_PICK(r, dts);
    tc_tensor k, v;
    tc_tensor_alloc(&k, kdt, 1, KS_H, N, KS_D, tc_randint(r, 0, 1), 1, 1, 1);
    tc_tensor_alloc(&v, vdt, 1, KS_H, N, KS_D, tc_randint(r, 0, 1), 0, 0, 2);
    tc_fill_canary(&k);
    tc_fill_canary(&v);
    char why[256] = "";
    const edgeattn_status st = edgeattn_kv_read(ctx, l, seq, first, &k.t, &v.t);
    if (st != EDGEATTN_OK)
        snprintf(why, sizeof why, "returned %d: %s", (int)st, edgeattn_message_of(ctx));
    else if (tc_check_written(&k, "k", why, sizeof why) && tc_check_written(&v, "v", why, sizeof why)) {
        float row[KS_D];
        for (int kv = 0; kv < 2 && !why[0]; kv++) {
            const edgeattn_dtype dt = kv ? vdt : kdt;
            for (int h = 0; h < KS_H && !why[0]; h++)
                for (int i = 0; i < N && !why[0]; i++) {
                    kvs_stored(s, kv, l, seq, h, first + i, row);
                    for (int d = 0; d < KS_D; d++) {
                        /* the stored value converted to the destination dtype; the device rotates in FP32,
                         * so a rotated key may sit one rounding of the cache dtype away */
                        const double want = tc_round(dt, row[d]), got = tc_get(kv ? &v.t : &k.t, 0, h, i, d);
                        const double ulp = s->dt == EDGEATTN_BF16 || dt == EDGEATTN_BF16   ? 8e-3
                                           : s->dt == EDGEATTN_F16 || dt == EDGEATTN_F16 ? 1e-3
                                                                                         : 1e-6;
                        const double tol = (kv == 0 && s->rope.style != EDGEATTN_ROPE_NONE) || dt != s->dt ? ulp : 0.0;
                        if (!(fabs(got - want) <= tol * fabs(want) + (tol > 0 ? 1e-6 : 0.0))) {
                            snprintf(why, sizeof why, "%s[%d, pos %lld, %d] = %.9g, expected %.9g", kv ? "v" : "k", h,
                                     (long long)(first + i), d, got, want);
                            break;
                        }
                    }
                    if (kv == 0 && dt == EDGEATTN_F32 && s->dt == EDGEATTN_F32 && s->core.style != EDGEATTN_ROPE_NONE) {
                        /* F32 throughout: the key core's ea_rope_angles / ea_rope_apply give, to FP32 rounding
                         * (a product contracted into an FMA differs by an ulp of the pair's magnitude) */
                        float cs[KS_D], x[KS_D];
                        for (int d = 0; d < KS_D; d++)
                            x[d] = KT(s, 0, l, seq, h, first + i, d);
                        ea_rope_angles(&s->core, first + i, cs);
                        ea_rope_apply(&s->core, cs, x);
                        for (int d = 0; d < s->core.dim && !why[0]; d++) {
                            const int pd = s->core.style == EDGEATTN_ROPE_HALF
                                               ? (d < s->core.dim / 2 ? d + s->core.dim / 2 : d - s->core.dim / 2)
                                               : d ^ 1;
                            const double mag = fabs(KT(s, 0, l, seq, h, first + i, d)) +
                                               fabs(KT(s, 0, l, seq, h, first + i, pd));
                            const double got = tc_get(&k.t, 0, h, i, d);
                            if (!(fabs(got - x[d]) <= 2.5e-7 * mag))
                                snprintf(why, sizeof why, "k[%d, pos %lld, %d] = %.9g, core's FP32 rotation %.9g", h,
                                         (long long)(first + i), d, got, (double)x[d]);
                        }
                    }
                }
        }
    }
    if (why[0])
        fail_msg("kv_read layer %d seq %d first %lld N %d (k %s, v %s, cache %s): %s (seed %llu)", l, seq,
                 (long long)first, N, tc_dtype_name(kdt), tc_dtype_name(vdt), tc_dtype_name(s->dt), why,
                 (unsigned long long)tc_seed());
    tc_tensor_free(&k);
    tc_tensor_free(&v);
}

static void kvs_read(edgeattn_context *ctx, const kvs *s, tc_rng *r)
{
    kvs_read_at(ctx, s, r, -1, -1);
}

typedef struct kvs_run {
    const char *what;
    edgeattn_rope rope;
    edgeattn_dtype dt;
    int window, layers, lpb; /* lpb: EDGEATTN_OPENCL_KV_LAYERS_PER_BUFFER (0: unset) */
    bool unfused;
    int max_kv; /* 0: 160 */
    int page;   /* config.kv_page_size (0: contiguous), a full pool */
} kvs_run;

static void kvs_scenario(const kvs_run *run, uint64_t stream, int steps)
{
    kvs s;
    memset(&s, 0, sizeof s);
    s.dt = run->dt;
    s.rope = run->rope;
    s.layers = run->layers;
    s.window = run->window;
    s.max_q = 6;
    const int max_kv = run->max_kv ? run->max_kv : 160;
    s.cap = run->window > 0 ? run->window : max_kv;
    s.split = max_kv > 160;
    s.tok = calloc((size_t)2 * KS_L * KS_B * KS_H * KS_T * KS_D, sizeof(float));
    assert_non_null(s.tok);
    edgeattn_config cfg = ocl_config();
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_batch = KS_B;
    cfg.max_q_len = 8;
    cfg.max_kv_len = max_kv;
    cfg.max_heads = KS_HQ;
    cfg.max_kv_heads = KS_H;
    cfg.max_head_dim = KS_D;
    cfg.kv_cache_dtype = run->dt;
    cfg.kv_cache_window = run->window;
    cfg.num_layers = run->layers;
    cfg.rope = run->rope;
    cfg.device_user_bytes = 8u << 20;
    cfg.kv_page_size = run->page;
    char lpb[16];
    snprintf(lpb, sizeof lpb, "%d", run->lpb);
    if (run->lpb)
        setenv("EDGEATTN_OPENCL_KV_LAYERS_PER_BUFFER", lpb, 1);
    if (run->unfused)
        setenv("EDGEATTN_OPENCL_PATH", "unfused", 1);
    ea_rope_resolve(&cfg, KS_D, &s.core);
    edgeattn_context *ctx = tc_create(&cfg);
    unsetenv("EDGEATTN_OPENCL_KV_LAYERS_PER_BUFFER");
    unsetenv("EDGEATTN_OPENCL_PATH");
    const ea_ocl_state *st = ctx->backend_state;
    if (run->unfused && !st->blast_ok) {
        print_message("note: %s skipped: CLBlast not present (%s)\n", run->what, st->blast_why);
        edgeattn_destroy(ctx);
        free(s.tok);
        return;
    }
    if (run->lpb)
        assert_int_equal(st->kv_nbuf, (run->layers + run->lpb - 1) / run->lpb);
    /* the plan grows with the layers */
    edgeattn_plan_info one, all;
    edgeattn_config c1 = cfg;
    c1.num_layers = 1;
    assert_int_equal(edgeattn_plan(&c1, &one, NULL), EDGEATTN_OK);
    assert_int_equal(edgeattn_plan(&cfg, &all, NULL), EDGEATTN_OK);
    assert_true(all.kv_cache_bytes == (size_t)run->layers * one.kv_cache_bytes);
    assert_true(all.device_bytes == one.device_bytes + (size_t)(run->layers - 1) * one.kv_cache_bytes);
    edgeattn_memory kind;
    void *data;
    size_t rbytes;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &s.roff, &rbytes), EDGEATTN_OK);
    s.mem = (cl_mem)data;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    for (int step = 0; step < steps; step++) {
        for (int l = 0; l < run->layers; l++) /* an engine's step: append, then decode, layer by layer */
            kvs_append(ctx, &s, &r, l, step == 0 || tc_randint(&r, 0, max_kv > 160 ? 1 : 9) == 0);
        for (int l = 0; l < run->layers; l++)
            for (int n = 0; n < (s.split ? 3 : 1); n++)
                kvs_decode(ctx, &s, &r, l);
        const int what = tc_randint(&r, 0, 5);
        if (what == 0) { /* kv_fork (kv_copy on the device), then the copy is decoded like the source */
            const int src = tc_randint(&r, 0, KS_B - 1);
            int dst = tc_randint(&r, 0, KS_B - 2);
            dst += dst >= src;
            assert_int_equal(edgeattn_kv_fork(ctx, src, dst), EDGEATTN_OK);
            for (int l = 0; l < KS_L; l++) {
                s.total[l][dst] = s.total[l][src];
                s.held[l][dst] = s.held[l][src];
                for (int kv = 0; kv < 2; kv++)
                    memcpy(&KT(&s, kv, l, dst, 0, 0, 0), &KT(&s, kv, l, src, 0, 0, 0),
                           sizeof(float) * KS_H * KS_T * KS_D);
            }
        } else if (what == 1) {
            kvs_reset_seq(ctx, &s, tc_randint(&r, 0, KS_B - 1));
        }
        kvs_read(ctx, &s, &r);
        kvs_read(ctx, &s, &r);
    }
    if (run->page > 0) { /* every page back once every sequence is empty */
        int32_t fr = -1, tot = -2;
        assert_int_equal(edgeattn_kv_reset(ctx, -1), EDGEATTN_OK);
        assert_int_equal(edgeattn_kv_pages(ctx, &fr, &tot), EDGEATTN_OK);
        assert_int_equal(fr, tot);
        memset(s.total, 0, sizeof s.total);
        memset(s.held, 0, sizeof s.held);
    }
    for (int l = 0; l < run->layers; l++)
        for (int b = 0; b < KS_B; b++) {
            int64_t total;
            int32_t held;
            assert_int_equal(edgeattn_kv_length(ctx, l, b, &total, &held), EDGEATTN_OK);
            assert_int_equal(total, s.total[l][b]);
            assert_int_equal(held, s.held[l][b]);
        }
    print_message("kv api: %s: %d steps of %d layer(s)\n", run->what, steps, run->layers);
    edgeattn_destroy(ctx);
    free(s.tok);
}

static void test_kv_layers_ids_rope(void **state)
{
    (void)state;
    NEED_DEVICE();
    const kvs_run runs[] = {
        {"rope half, F32 cache, 3 layers in 3 buffers", {EDGEATTN_ROPE_HALF, 0, 10000.0f, 0.0f, 0.0f, 0},
         EDGEATTN_F32, 0, 3, 1, false, 0, 0},
        {"rope interleaved dim 16, F16 ring of 40, 2 layers", {EDGEATTN_ROPE_INTERLEAVED, 16, 500000.0f, 0.0f, 0.0f, 0},
         EDGEATTN_F16, 40, 2, 0, false, 0, 0},
        {"rope half dim 32 scaled, BF16 cache, 3 layers in 2 buffers",
         {EDGEATTN_ROPE_HALF, 32, 10000.0f, 4.0f, 8.0f, 0}, EDGEATTN_BF16, 0, 3, 2, false, 0, 0},
        {"no rope, F16 ring of 24, 2 layers", {EDGEATTN_ROPE_NONE, 0, 0.0f, 0.0f, 0.0f, 0}, EDGEATTN_F16, 24, 2, 0,
         false, 0, 0},
        {"unfused path, rope interleaved, F32 ring of 50, 2 layers",
         {EDGEATTN_ROPE_INTERLEAVED, 0, 10000.0f, 0.0f, 0.0f, 0}, EDGEATTN_F32, 50, 2, 0, true, 0, 0},
        /* few rows over up to 400 keys: the split-KV path and its combine, ragged rows included */
        {"split-KV over 400 keys, rope half, F16 cache, 1 layer", {EDGEATTN_ROPE_HALF, 0, 10000.0f, 0.0f, 0.0f, 0},
         EDGEATTN_F16, 0, 1, 0, false, 400, 0},
        /* paged caches: forks share pages (copied on the device when written), kv_read page by page */
        {"paged 16, rope half, F16 cache, 3 layers", {EDGEATTN_ROPE_HALF, 0, 10000.0f, 0.0f, 0.0f, 0}, EDGEATTN_F16, 0,
         3, 0, false, 0, 16},
        {"paged 64, rope interleaved, F32 ring of 100 (a part page at the ring's end), 2 layers",
         {EDGEATTN_ROPE_INTERLEAVED, 0, 10000.0f, 0.0f, 0.0f, 0}, EDGEATTN_F32, 100, 2, 0, false, 0, 64},
        {"paged 16, no rope, BF16 ring of 40, 2 layers", {EDGEATTN_ROPE_NONE, 0, 0.0f, 0.0f, 0.0f, 0}, EDGEATTN_BF16,
         40, 2, 0, false, 0, 16},
        {"paged 32, split-KV over 400 keys, F16 cache, 1 layer", {EDGEATTN_ROPE_HALF, 0, 10000.0f, 0.0f, 0.0f, 0},
         EDGEATTN_F16, 0, 1, 0, false, 400, 32},
        {"paged 16, unfused path, F32 cache, 2 layers", {EDGEATTN_ROPE_NONE, 0, 0.0f, 0.0f, 0.0f, 0}, EDGEATTN_F32, 0,
         2, 0, true, 0, 16},
    };
    for (int i = 0; i < (int)(sizeof runs / sizeof runs[0]); i++)
        kvs_scenario(&runs[i], 1300 + (uint64_t)i, tc_long() ? 16 : 6);
}

/* ---------------------------------------------------------------- paged KV cache
 * Ragged sequences appended in turns, so the pool hands pages out interleaved over sequences and
 * layers; page sizes 16 (fewer keys than a decode tile: several pages per tile) and 64; a fork whose
 * shared prefix ends inside a page, then both sequences appending (the shared page copied on the
 * device, the full ones still shared); decode (split-KV included) and kv_read against the reference
 * after every step; every page back after kv_reset. */

/* Appends n[i] rows to sequence ids[i] (i < B) of layer l: host or device tensors, random dtypes. */
static void kvp_append(edgeattn_context *ctx, kvs *s, tc_rng *r, int l, int B, const int32_t *ids, const int32_t *n)
{
    int N = 1;
    for (int b = 0; b < B; b++)
        N = n[b] > N ? n[b] : N;
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    tc_tensor k, v;
    tc_tensor_alloc(&k, tc_randint(r, 0, 1) ? s->dt : TC_PICK(r, dts), B, KS_H, N, KS_D, tc_randint(r, 0, 1), 1, 1, 1);
    tc_tensor_alloc(&v, tc_randint(r, 0, 1) ? s->dt : TC_PICK(r, dts), B, KS_H, N, KS_D, tc_randint(r, 0, 1), 0, 0, 2);
    tc_fill_random(&k, r, -1, 1);
    tc_fill_random(&v, r, -1, 1);
    size_t off = s->roff;
    dev_tensor dk, dv;
    const edgeattn_tensor kt = kvs_place(ctx, s, &k, tc_randint(r, 0, 1), &off, &dk);
    const edgeattn_tensor vt = kvs_place(ctx, s, &v, tc_randint(r, 0, 1), &off, &dv);
    const edgeattn_status st = edgeattn_kv_append(ctx, l, ids, &kt, &vt, n, tc_randint(r, 0, 1));
    if (st != EDGEATTN_OK)
        fail_msg("paged kv_append layer %d B %d N %d: %s (seed %llu)", l, B, N, edgeattn_message_of(ctx),
                 (unsigned long long)tc_seed());
    for (int b = 0; b < B; b++) {
        const int q = ids[b];
        assert_true(s->total[l][q] + n[b] <= KS_T);
        for (int h = 0; h < KS_H; h++)
            for (int i = 0; i < n[b]; i++)
                for (int d = 0; d < KS_D; d++) {
                    KT(s, 0, l, q, h, s->total[l][q] + i, d) = tc_get(&k.t, b, h, i, d);
                    KT(s, 1, l, q, h, s->total[l][q] + i, d) = tc_get(&v.t, b, h, i, d);
                }
        s->total[l][q] += n[b];
        s->held[l][q] = s->total[l][q] < s->cap ? (int)s->total[l][q] : s->cap;
    }
    tc_tensor_free(&k);
    tc_tensor_free(&v);
}

/* Decodes (random subsets, ragged, split-KV where long) and reads of every layer and sequence. */
static void kvp_check(edgeattn_context *ctx, kvs *s, tc_rng *r)
{
    for (int l = 0; l < s->layers; l++) {
        for (int n = 0; n < 3; n++)
            kvs_decode(ctx, s, r, l);
        for (int q = 0; q < KS_B; q++)
            kvs_read_at(ctx, s, r, l, q);
    }
}

static int kvp_free(edgeattn_context *ctx)
{
    int32_t fr = -1;
    assert_int_equal(edgeattn_kv_pages(ctx, &fr, NULL), EDGEATTN_OK);
    return fr;
}

typedef struct kvp_run {
    const char *what;
    int page, pages; /* config.kv_page_size, kv_pages (0: full) */
    edgeattn_dtype dt;
    edgeattn_rope rope;
    const char *cls; /* EDGEATTN_OPENCL_CLASS (NULL: the device's own tiles) */
} kvp_run;

static void kvp_scenario(const kvp_run *run, uint64_t stream)
{
    kvs s;
    memset(&s, 0, sizeof s);
    s.dt = run->dt;
    s.rope = run->rope;
    s.layers = 2;
    s.max_q = 4;
    s.cap = 300;
    s.tok = calloc((size_t)2 * KS_L * KS_B * KS_H * KS_T * KS_D, sizeof(float));
    assert_non_null(s.tok);
    edgeattn_config cfg = ocl_config();
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_batch = KS_B;
    cfg.max_q_len = 8;
    cfg.max_kv_len = s.cap;
    cfg.max_heads = KS_HQ;
    cfg.max_kv_heads = KS_H;
    cfg.max_head_dim = KS_D;
    cfg.kv_cache_dtype = run->dt;
    cfg.num_layers = s.layers;
    cfg.rope = run->rope;
    cfg.device_user_bytes = 8u << 20;
    cfg.kv_page_size = run->page;
    cfg.kv_pages = run->pages;
    if (run->cls) {
        setenv("EDGEATTN_OPENCL_CLASS", run->cls, 1);
        setenv("EDGEATTN_OPENCL_LOCAL_MEM", "49152", 1);
    }
    edgeattn_context *ctx = tc_create(&cfg);
    unsetenv("EDGEATTN_OPENCL_CLASS");
    unsetenv("EDGEATTN_OPENCL_LOCAL_MEM");
    edgeattn_backend_info bi;
    assert_int_equal(edgeattn_get_backend_info(ctx, &bi), EDGEATTN_OK);
    assert_int_equal(bi.backend, EDGEATTN_BACKEND_OPENCL);
    /* the plan: one pool of pages for K and one for V */
    edgeattn_plan_info info;
    assert_int_equal(edgeattn_plan(&cfg, &info, NULL), EDGEATTN_OK);
    const int32_t pool = run->pages ? run->pages : s.layers * KS_B * ((s.cap + run->page - 1) / run->page);
    const size_t page_bytes = (size_t)KS_H * (size_t)run->page * KS_D * tc_dtype_size(run->dt);
    assert_true(info.kv_cache_bytes >= 2 * (size_t)pool * page_bytes &&
                info.kv_cache_bytes < 2 * (size_t)pool * page_bytes + 512);
    edgeattn_memory kind;
    void *data;
    size_t rbytes;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &s.roff, &rbytes), EDGEATTN_OK);
    s.mem = (cl_mem)data;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    const ea_kv_cache *kv = &ctx->kv;

    /* ragged sequences in turns: every call maps pages for its rows in batch order, layer by layer */
    static const int32_t rounds[4][KS_B] = {{5, 17, 1, 9}, {11, 40, 0, 23}, {3, 33, 2, 16}, {21, 60, 4, 42}};
    int32_t ids[KS_B] = {0, 1, 2, 3};
    for (int rd = 0; rd < 4; rd++) {
        int32_t n[KS_B];
        for (int i = KS_B - 1; i > 0; i--) { /* a random batch order */
            const int j = tc_randint(&r, 0, i);
            const int32_t t = ids[i];
            ids[i] = ids[j];
            ids[j] = t;
        }
        for (int b = 0; b < KS_B; b++)
            n[b] = rounds[rd][ids[b]];
        for (int l = 0; l < s.layers; l++)
            kvp_append(ctx, &s, &r, l, KS_B, ids, n);
        kvp_check(ctx, &s, &r);
    }
    /* the pages of a sequence are not one run of the pool (handed out between the others') */
    bool interleaved = false;
    for (int l = 0; l < s.layers; l++)
        for (int q = 0; q < KS_B; q++) {
            const int32_t *t = ea_kv_table(kv, l, q);
            for (int pi = 0; pi + 1 < kv->pages_per_seq && t[pi + 1] >= 0; pi++)
                interleaved = interleaved || t[pi + 1] != t[pi] + 1;
        }
    assert_true(interleaved);

    /* fork: sequence 0 (40 tokens: its last page part full) into 2; 2's own pages go back */
    const int src = 0, dst = 2;
    int held_dst = 0;
    for (int l = 0; l < s.layers; l++)
        for (int pi = 0; pi < kv->pages_per_seq; pi++)
            held_dst += ea_kv_table(kv, l, dst)[pi] >= 0;
    const int free0 = kvp_free(ctx);
    assert_int_equal(edgeattn_kv_fork(ctx, src, dst), EDGEATTN_OK);
    assert_int_equal(kvp_free(ctx), free0 + held_dst);
    for (int l = 0; l < s.layers; l++) {
        assert_memory_equal(ea_kv_table(kv, l, src), ea_kv_table(kv, l, dst), sizeof(int32_t) * kv->pages_per_seq);
        s.total[l][dst] = s.total[l][src];
        s.held[l][dst] = s.held[l][src];
        for (int c = 0; c < 2; c++)
            memcpy(&KT(&s, c, l, dst, 0, 0, 0), &KT(&s, c, l, src, 0, 0, 0), sizeof(float) * KS_H * KS_T * KS_D);
    }
    kvp_check(ctx, &s, &r);
    /* both append different rows: the part-full page is copied for the first writer, full pages stay shared */
    const int64_t shared = s.total[0][src];
    for (int l = 0; l < s.layers; l++) {
        const int32_t two[2] = {tc_randint(&r, 0, 1) ? src : dst, 0}, n2[2] = {9, 5};
        const int32_t ids2[2] = {two[0], two[0] == src ? dst : src};
        kvp_append(ctx, &s, &r, l, 2, ids2, n2);
        const int32_t *ts = ea_kv_table(kv, l, src), *td = ea_kv_table(kv, l, dst);
        for (int pi = 0; pi < (int)(shared / run->page); pi++)
            assert_int_equal(ts[pi], td[pi]);
        if (shared % run->page)
            assert_int_not_equal(ts[shared / run->page], td[shared / run->page]);
    }
    kvp_check(ctx, &s, &r);
    /* a long append into the fork (many pages in one call), more turns on every sequence */
    for (int l = 0; l < s.layers; l++) {
        const int32_t one[1] = {dst}, n1[1] = {111};
        kvp_append(ctx, &s, &r, l, 1, one, n1);
        const int32_t n4[KS_B] = {7, 1, 3, 19};
        kvp_append(ctx, &s, &r, l, KS_B, (const int32_t[KS_B]){3, 2, 1, 0}, n4);
    }
    kvp_check(ctx, &s, &r);
    print_message("paged: %s: %d of %d pages free before the reset\n", run->what, kvp_free(ctx), pool);
    assert_int_equal(edgeattn_kv_reset(ctx, -1), EDGEATTN_OK);
    assert_int_equal(kvp_free(ctx), pool);
    edgeattn_destroy(ctx);
    free(s.tok);
}

static void test_kv_paged(void **state)
{
    (void)state;
    NEED_DEVICE();
    const kvp_run runs[] = {
        {"page 16, F16 cache, rope half", 16, 0, EDGEATTN_F16, {EDGEATTN_ROPE_HALF, 0, 10000.0f, 0.0f, 0.0f, 0}, NULL},
        {"page 64, BF16 cache, a short pool of 24 pages", 64, 24, EDGEATTN_BF16,
         {EDGEATTN_ROPE_NONE, 0, 0.0f, 0.0f, 0.0f, 0}, NULL},
        {"page 16, F32 cache, rope interleaved, NVIDIA's tiles (64 keys a decode tile)", 16, 0, EDGEATTN_F32,
         {EDGEATTN_ROPE_INTERLEAVED, 0, 10000.0f, 0.0f, 0.0f, 0}, "nvidia"},
        {"page 64, F16 cache, NVIDIA's tiles", 64, 0, EDGEATTN_F16, {EDGEATTN_ROPE_NONE, 0, 0.0f, 0.0f, 0.0f, 0},
         "nvidia"},
    };
    for (int i = 0; i < (int)(sizeof runs / sizeof runs[0]); i++)
        kvp_scenario(&runs[i], 1350 + (uint64_t)i);
}

/* One case of test_rope_table_pieces: B sequences get n0[b] rows (host or device), then N rows (the
 * other), HQ x NQ queries each are decoded (device and host tensors) against the reference. */
static void rope_pieces_case(int B, int HQ, int NQ, int N, bool first_host, uint64_t stream)
{
    enum { H = 1, D = 16, MAXB = 16 };
    edgeattn_config cfg = ocl_config();
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_batch = B;
    cfg.max_q_len = NQ;
    cfg.max_kv_len = 2 * N;
    cfg.max_heads = HQ;
    cfg.max_kv_heads = H;
    cfg.max_head_dim = D;
    cfg.kv_cache_dtype = EDGEATTN_F32;
    cfg.rope.style = EDGEATTN_ROPE_HALF;
    cfg.rope.theta = 10000.0f;
    cfg.device_user_bytes = 4u << 20;
    edgeattn_context *ctx = tc_create(&cfg);
    const ea_ocl_state *st = ctx->backend_state;
    edgeattn_memory kind;
    void *data;
    size_t roff, rbytes;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &roff, &rbytes), EDGEATTN_OK);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    tc_tensor k[2], v[2];
    int32_t n0[MAXB], tot[MAXB];
    for (int b = 0; b < B; b++) {
        n0[b] = N - (b % 4) * 7; /* the sequences' positions differ */
        tot[b] = n0[b] + N;
    }
    for (int c = 0; c < 2; c++) {
        const bool host = c == 0 ? first_host : !first_host;
        tc_tensor_alloc(&k[c], host ? EDGEATTN_F16 : EDGEATTN_F32, B, H, N, D, TC_BHSD, 0, 0, 0); /* F16: staged */
        tc_tensor_alloc(&v[c], EDGEATTN_F32, B, H, N, D, TC_BSHD, 0, 0, 0);
        tc_fill_random(&k[c], &r, -1, 1);
        tc_fill_random(&v[c], &r, -1, 1);
        dev_tensor dk, dv;
        edgeattn_tensor kt = k[c].t, vt = v[c].t;
        if (!host) {
            to_device(ctx, &k[c], (cl_mem)data, roff, &dk);
            to_device(ctx, &v[c], (cl_mem)data, next_off(roff, &k[c]), &dv);
            kt = dk.t;
            vt = dv.t;
        }
        assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &kt, &vt, c == 0 ? n0 : NULL, 0), EDGEATTN_OK);
    }
    tc_tensor q, out;
    tc_tensor_alloc(&q, EDGEATTN_F32, B, HQ, NQ, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&out, EDGEATTN_F32, B, HQ, NQ, D, TC_BSHD, 1, 1, 1);
    tc_fill_random(&q, &r, -1, 1);
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = 1;
    /* reference: keys at 0 .. tot-1 and queries at tot - NQ + i rotated in double */
    double *ref = malloc(sizeof(double) * B * HQ * NQ * D), *ref_lse = malloc(sizeof(double) * B * HQ * NQ);
    assert_non_null(ref);
    assert_non_null(ref_lse);
    for (int b = 0; b < B; b++) {
        tc_tensor rk, rv, rq;
        tc_tensor_alloc(&rk, EDGEATTN_F32, 1, H, tot[b], D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rv, EDGEATTN_F32, 1, H, tot[b], D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rq, EDGEATTN_F32, 1, HQ, NQ, D, TC_BHSD, 0, 0, 0);
        double x[D];
        for (int j = 0; j < tot[b]; j++) {
            const int c = j < n0[b] ? 0 : 1, row = c ? j - n0[b] : j;
            for (int d = 0; d < D; d++) {
                x[d] = tc_get(&k[c].t, b, 0, row, d);
                tc_set(&rv.t, 0, 0, j, d, tc_get(&v[c].t, b, 0, row, d));
            }
            ea_ref_rope(&cfg.rope, D, j, x);
            for (int d = 0; d < D; d++)
                tc_set(&rk.t, 0, 0, j, d, (float)x[d]);
        }
        for (int h = 0; h < HQ; h++)
            for (int i = 0; i < NQ; i++) {
                for (int d = 0; d < D; d++)
                    x[d] = tc_get(&q.t, b, h, i, d);
                ea_ref_rope(&cfg.rope, D, tot[b] - NQ + i, x);
                for (int d = 0; d < D; d++)
                    tc_set(&rq.t, 0, h, i, d, (float)x[d]);
            }
        assert_int_equal(ea_ref_attention(&rq.t, &rk.t, &rv.t, &p, ref + (size_t)b * HQ * NQ * D,
                                          ref_lse + (size_t)b * HQ * NQ),
                         EDGEATTN_OK);
        tc_tensor_free(&rk);
        tc_tensor_free(&rv);
        tc_tensor_free(&rq);
    }
    for (int dev = 0; dev < 2; dev++) {
        tc_fill_canary(&out);
        dev_tensor dq, dout;
        edgeattn_tensor qt = q.t, ot = out.t;
        if (dev) {
            to_device(ctx, &q, (cl_mem)data, roff, &dq);
            to_device(ctx, &out, (cl_mem)data, next_off(roff, &q), &dout);
            qt = dq.t;
            ot = dout.t;
        }
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &qt, &ot, &p), EDGEATTN_OK);
        if (dev)
            from_device(ctx, &dout, &out);
        tc_result res;
        tc_compare(&res, &out, NULL, ref, ref_lse, B, HQ, NQ, D, tc_tolerance(EDGEATTN_F16, EDGEATTN_F32, EDGEATTN_F32));
        if (!res.ok)
            fail_msg("rope table in pieces (B %d NQ %d N %d, table of %d positions, decode with %s tensors): %s (seed %llu)",
                     B, NQ, N, (int)st->lay.rope_rows, dev ? "device" : "host", res.why, (unsigned long long)tc_seed());
    }
    free(ref);
    free(ref_lse);
    for (int c = 0; c < 2; c++) {
        tc_tensor_free(&k[c]);
        tc_tensor_free(&v[c]);
    }
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    edgeattn_destroy(ctx);
}

/* Many positions with RoPE: the angle table is uploaded in pieces. 16 sequences x 80 queries (1280
 * positions for a table of 1024) and appends of 16 x 100 rows from the device; then 2 sequences of
 * 4 queries (a table of 64 positions) and appends of 150 rows from host tensors (staged). */
static void test_rope_table_pieces(void **state)
{
    (void)state;
    NEED_DEVICE();
    rope_pieces_case(16, 2, 80, 100, true, 1400);
    rope_pieces_case(2, 2, 4, 150, false, 1401);
}

/* Attention with q, k, v and bias broadcast (stride 0 over B, H or N), host tensors (staged without a
 * 0 pitch reaching OpenCL) and cl_mem tensors, against the reference. */
static void test_broadcast_inputs(void **state)
{
    (void)state;
    NEED_DEVICE();
    edgeattn_config cfg = ocl_config();
    cfg.device_user_bytes = 16u << 20;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_memory kind;
    void *data;
    size_t roff, rbytes;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &roff, &rbytes), EDGEATTN_OK);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 1500);
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    for (int it = 0; it < 16; it++) {
        const int B = tc_randint(&r, 1, 3), Hkv = tc_randint(&r, 1, 2), Hq = Hkv * tc_randint(&r, 1, 4);
        const int Nq = tc_randint(&r, 1, 40), Nkv = tc_randint(&r, 1, 150), D = it % 2 ? 64 : 32;
        const edgeattn_dtype qdt = TC_PICK(&r, dts), kvdt = TC_PICK(&r, dts), odt = TC_PICK(&r, dts);
        tc_tensor q, k, v, bias, out, lse;
        tc_tensor_alloc(&q, qdt, B, Hq, Nq, D, tc_randint(&r, 0, 1), tc_randint(&r, 0, 2), 1, 1);
        tc_tensor_alloc(&k, kvdt, B, Hkv, Nkv, D, tc_randint(&r, 0, 1), tc_randint(&r, 0, 2), 1, 1);
        tc_tensor_alloc(&v, kvdt, B, Hkv, Nkv, D, tc_randint(&r, 0, 1), 0, 0, 1);
        tc_tensor_alloc(&bias, EDGEATTN_F32, B, Hq, Nq, Nkv, TC_BHSD, tc_randint(&r, 0, 2), 0, 0);
        tc_tensor_alloc(&out, odt, B, Hq, Nq, D, tc_randint(&r, 0, 1), 1, 1, 1);
        tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 0, 1, 1);
        tc_fill_random(&q, &r, -1, 1);
        tc_fill_random(&k, &r, -1, 1);
        tc_fill_random(&v, &r, -1, 1);
        tc_fill_random(&bias, &r, -1, 1);
        /* each input broadcast over one dim (or none), at least one of them over something */
        tc_tensor *in[4] = {&q, &k, &v, &bias};
        for (int t = 0; t < 4; t++)
            kvs_bcast(&r, &in[t]->t);
        const int forced = tc_randint(&r, 0, 3), fdim = tc_randint(&r, 0, 2);
        if (in[forced]->t.shape[fdim] > 1)
            in[forced]->t.stride[fdim] = 0;
        const bool use_bias = tc_randint(&r, 0, 1);
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.causal = tc_randint(&r, 0, 1);
        if (tc_randint(&r, 0, 2) == 0)
            p.window_left = tc_randint(&r, 0, 30);
        p.bias = use_bias ? &bias.t : NULL;
        double *ref = malloc(sizeof(double) * B * Hq * Nq * D), *ref_lse = malloc(sizeof(double) * B * Hq * Nq);
        assert_non_null(ref);
        assert_non_null(ref_lse);
        assert_int_equal(ea_ref_attention(&q.t, &k.t, &v.t, &p, ref, ref_lse), EDGEATTN_OK);
        const double tol = tc_tolerance(qdt, kvdt, odt);
        char desc[160];
        snprintf(desc, sizeof desc, "B %d Hq %d Hkv %d Nq %d Nkv %d D %d q %s kv %s out %s strides q %lld/%lld/%lld "
                 "k %lld/%lld/%lld v %lld/%lld/%lld bias %s", B, Hq, Hkv, Nq, Nkv, D, tc_dtype_name(qdt),
                 tc_dtype_name(kvdt), tc_dtype_name(odt), (long long)q.t.stride[0], (long long)q.t.stride[1],
                 (long long)q.t.stride[2], (long long)k.t.stride[0], (long long)k.t.stride[1], (long long)k.t.stride[2],
                 (long long)v.t.stride[0], (long long)v.t.stride[1], (long long)v.t.stride[2], use_bias ? "on" : "off");
        for (int dev = 0; dev < 2; dev++) {
            tc_fill_canary(&out);
            tc_fill_canary(&lse);
            edgeattn_tensor qt = q.t, kt = k.t, vt = v.t, bt = bias.t, ot = out.t, lt = lse.t;
            dev_tensor dq, dk, dv, db, dout, dlse;
            if (dev) {
                size_t off = roff;
                to_device(ctx, &q, (cl_mem)data, off, &dq);
                off = next_off(off, &q);
                to_device(ctx, &k, (cl_mem)data, off, &dk);
                off = next_off(off, &k);
                to_device(ctx, &v, (cl_mem)data, off, &dv);
                off = next_off(off, &v);
                to_device(ctx, &bias, (cl_mem)data, off, &db);
                off = next_off(off, &bias);
                to_device(ctx, &out, (cl_mem)data, off, &dout);
                off = next_off(off, &out);
                to_device(ctx, &lse, (cl_mem)data, off, &dlse);
                qt = dq.t, kt = dk.t, vt = dv.t, bt = db.t, ot = dout.t, lt = dlse.t;
            }
            edgeattn_params pp = p;
            pp.bias = use_bias ? &bt : NULL;
            pp.lse = &lt;
            const edgeattn_status st = edgeattn_attention(ctx, &qt, &kt, &vt, &ot, &pp);
            if (st != EDGEATTN_OK)
                fail_msg("broadcast %s (%s): returned %d: %s", desc, dev ? "device" : "host", (int)st,
                         edgeattn_message_of(ctx));
            if (dev) {
                from_device(ctx, &dout, &out);
                from_device(ctx, &dlse, &lse);
            }
            tc_result res;
            tc_compare(&res, &out, &lse, ref, ref_lse, B, Hq, Nq, D, tol);
            if (!res.ok)
                fail_msg("broadcast %s (%s tensors): %s (seed %llu)", desc, dev ? "device" : "host", res.why,
                         (unsigned long long)tc_seed());
        }
        free(ref);
        free(ref_lse);
        for (int t = 0; t < 4; t++)
            tc_tensor_free(in[t]);
        tc_tensor_free(&out);
        tc_tensor_free(&lse);
    }
    edgeattn_destroy(ctx);
}

/* NaN in a device tensor with check_finite: refused, outputs untouched. */
static void test_check_finite_device(void **state)
{
    (void)state;
    NEED_DEVICE();
    edgeattn_config cfg = ocl_config();
    cfg.device_user_bytes = 8u << 20;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_memory kind;
    void *data;
    size_t roff, rbytes;
    assert_int_equal(edgeattn_device_region(ctx, &kind, &data, &roff, &rbytes), EDGEATTN_OK);
    tc_attn_case c = tc_case(1, 2, 1, 6, 10, 32);
    c.bias_mode = TC_BIAS_FULL;
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 81);
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int t = 0; t < 4; t++)
        for (size_t i = 0; i < 3; i++) {
            tc_tensor *x = t == 0 ? &d.q : t == 1 ? &d.k : t == 2 ? &d.v : &d.bias;
            const float keep = tc_get(&x->t, 0, 0, 3, 5);
            tc_set(&x->t, 0, 0, 3, 5, bad[i]);
            dev_tensor q, k, v, o, b;
            to_device(ctx, &d.q, (cl_mem)data, roff, &q);
            to_device(ctx, &d.k, (cl_mem)data, roff + (1u << 20), &k);
            to_device(ctx, &d.v, (cl_mem)data, roff + (2u << 20), &v);
            tc_fill_canary(&d.out);
            to_device(ctx, &d.out, (cl_mem)data, roff + (3u << 20), &o);
            to_device(ctx, &d.bias, (cl_mem)data, roff + (4u << 20), &b);
            edgeattn_params p = d.params;
            p.bias = &b.t;
            p.check_finite = 1;
            const edgeattn_status want = (t == 3 && bad[i] < 0) ? EDGEATTN_OK : EDGEATTN_ERR_NONFINITE;
            const edgeattn_status st = edgeattn_attention(ctx, &q.t, &k.t, &v.t, &o.t, &p);
            if (st != want)
                fail_msg("tensor %d value %g: status %d, expected %d (%s)", t, (double)bad[i], (int)st, (int)want,
                         edgeattn_message_of(ctx));
            if (want != EDGEATTN_OK) {
                void *snap = tc_snapshot(&d.out);
                from_device(ctx, &o, &d.out);
                assert_true(tc_unchanged(&d.out, snap));
                free(snap);
            }
            tc_set(&x->t, 0, 0, 3, 5, keep);
        }
    tc_attn_free(&d);
    edgeattn_destroy(ctx);
}

/* Can this suite run here? No OpenCL library or device, and none required: the whole suite is
 * skipped, exit 77, which meson counts as skipped rather than passed. */
static bool opencl_unavailable(char *why, size_t n)
{
    const char *req = getenv("EDGEATTN_TEST_REQUIRE_OPENCL");
    if (req && *req && strcmp(req, "0") != 0)
        return false; /* group_setup turns a missing device into a failure */
    tc_clear_env();
    clear_ocl_env();
    ea_ocl_api api;
    if (!ea_ocl_load(&api, why, n))
        return true;
    ea_ocl_unload(&api);
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.backend = EDGEATTN_BACKEND_OPENCL;
    cfg.num_threads = 1;
    edgeattn_plan_info info;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_plan(&cfg, &info, &msg);
    snprintf(why, n, "%s", msg.text);
    return st == EDGEATTN_ERR_BACKEND_UNAVAILABLE;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[sizeof(((edgeattn_message *)0)->text)];
    if (opencl_unavailable(why, sizeof why)) {
        printf("no OpenCL device here (%s): the opencl suite is skipped (exit 77; EDGEATTN_TEST_REQUIRE_OPENCL=1 "
               "makes this a failure)\n", why);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_region_tensors),
        cmocka_unit_test(test_own_buffers_and_queue),
        cmocka_unit_test(test_kv_cache_device),
        cmocka_unit_test(test_head_dims_mult8),
        cmocka_unit_test(test_kv_layers_ids_rope),
        cmocka_unit_test(test_kv_paged),
        cmocka_unit_test(test_rope_table_pieces),
        cmocka_unit_test(test_broadcast_inputs),
        cmocka_unit_test(test_staging_in_pieces),
        cmocka_unit_test(test_copy_strided),
        cmocka_unit_test(test_binary_cache),
        cmocka_unit_test(test_unfused_path),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_no_creation_after_create),
        cmocka_unit_test(test_check_finite_device),
    };
    const char *filter = getenv("EDGEATTN_TEST_FILTER"); /* e.g. "test_kv_*" */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
