/*
 * The public API through the shared library, as an application sees it: version, defaults, the plan
 * before create, create with a caller buffer of exactly the planned size, two contexts that do not
 * interfere, backend info, the tensor helpers, the EDGEATTN_CPU_MASK / EDGEATTN_BACKEND environment,
 * and that only the API's symbols are exported.
 *
 * This file uses nothing but edgeattn.h (no internal headers): it links libedgeattn.so.
 */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgeattn/edgeattn.h"

/* ---------------------------------------------------------------- small helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static float *frand_array(size_t n)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

/* Dense BHSD F32 attention in double, causal bottom-right optional: a sanity check that results
 * are attention and not noise (the full comparison with the reference is test_parity's job). */
static double naive_err(const float *q, const float *k, const float *v, const float *out, int B, int Hq, int Hkv,
                        int Nq, int Nkv, int D, int causal)
{
    double err = 0.0, mx = 0.0;
    const int group = Hq / Hkv;
    double *s = malloc(sizeof(double) * (size_t)Nkv);
    assert_non_null(s);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++)
            for (int i = 0; i < Nq; i++) {
                const float *qr = q + (((size_t)b * Hq + h) * Nq + i) * D;
                const int hk = h / group;
                double m = -INFINITY, sum = 0.0;
                const int last = causal ? i + Nkv - Nq : Nkv - 1;
                for (int j = 0; j <= last && j < Nkv; j++) {
                    const float *kr = k + (((size_t)b * Hkv + hk) * Nkv + j) * D;
                    double dot = 0.0;
                    for (int d = 0; d < D; d++)
                        dot += (double)qr[d] * kr[d];
                    s[j] = dot / sqrt((double)D);
                    m = fmax(m, s[j]);
                }
                for (int j = 0; j <= last && j < Nkv; j++)
                    sum += exp(s[j] - m);
                for (int d = 0; d < D; d++) {
                    double o = 0.0;
                    for (int j = 0; j <= last && j < Nkv; j++)
                        o += exp(s[j] - m) / sum * v[(((size_t)b * Hkv + hk) * Nkv + j) * D + d];
                    const double got = out[(((size_t)b * Hq + h) * Nq + i) * D + d];
                    err = fmax(err, fabs(got - o));
                    mx = fmax(mx, fabs(o));
                }
            }
    free(s);
    return err / (mx > 0 ? mx : 1.0);
}

static edgeattn_context *create_ok(const edgeattn_config *cfg)
{
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_create(cfg, NULL, 0, &ctx, &msg);
    if (st != EDGEATTN_OK)
        fail_msg("create: %d (%s): %s", (int)st, edgeattn_status_string(st), msg.text);
    return ctx;
}

static void clear_env(void)
{
    unsetenv("EDGEATTN_BACKEND");
    unsetenv("EDGEATTN_CPU_MASK");
    unsetenv("EDGEATTN_CPU_TILES");
    unsetenv("EDGEATTN_TUNING_FILE");
}

/* ---------------------------------------------------------------- version and defaults */

static void test_version(void **state)
{
    (void)state;
    const char *v = edgeattn_version();
    assert_non_null(v);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", EDGEATTN_VERSION_MAJOR, EDGEATTN_VERSION_MINOR, EDGEATTN_VERSION_PATCH);
    assert_string_equal(v, want);
    assert_ptr_equal(edgeattn_version(), v); /* a constant */
}

static void test_config_default(void **state)
{
    (void)state;
    edgeattn_config c;
    memset(&c, 0xff, sizeof c);
    edgeattn_config_default(&c);
    assert_int_equal(c.struct_version, EDGEATTN_STRUCT_VERSION);
    assert_int_equal(c.flags, 0);
    assert_int_equal(c.max_batch, 1);
    assert_int_equal(c.max_q_len, 1024);
    assert_int_equal(c.max_kv_len, 1024);
    assert_int_equal(c.max_heads, 8);
    assert_int_equal(c.max_kv_heads, 8);
    assert_int_equal(c.max_head_dim, 128);
    assert_int_equal(c.kv_cache_dtype, EDGEATTN_F16);
    assert_int_equal(c.kv_cache_window, 0);
    assert_int_equal(c.num_threads, 0);
    assert_int_equal(c.backend, EDGEATTN_BACKEND_AUTO);
    assert_int_equal(c.cpu_disable_mask, 0);
    for (size_t i = 0; i < sizeof c.reserved; i++)
        assert_int_equal(c.reserved[i], 0);
    /* the defaults are a valid config */
    edgeattn_plan_info info;
    assert_int_equal(edgeattn_plan(&c, &info, NULL), EDGEATTN_OK);
}

static void test_params_default(void **state)
{
    (void)state;
    edgeattn_params p;
    memset(&p, 0xff, sizeof p);
    edgeattn_params_default(&p);
    assert_int_equal(p.struct_version, EDGEATTN_STRUCT_VERSION);
    assert_true(p.scale == 0.0f);
    assert_true(p.softcap == 0.0f);
    assert_int_equal(p.causal, 0);
    assert_int_equal(p.window_left, -1);
    assert_int_equal(p.window_right, -1);
    assert_int_equal(p.check_finite, 0);
    assert_null(p.kv_lens);
    assert_null(p.bias);
    assert_null(p.lse);
    for (size_t i = 0; i < sizeof p.reserved; i++)
        assert_int_equal(p.reserved[i], 0);
}

/* The public conversion helpers: exact values, round to nearest even at the halfway points, range
 * limits, NaN and Inf, and every FP16 / BF16 value through FP32 and back unchanged. */
static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_conversion_helpers(void **state)
{
    (void)state;
    const float src[] = {1.0f, -2.0f, 0.0f, 65504.0f, 65520.0f, 1e-8f, 0x1p-24f, 0x1p-25f, 0x1.8p-24f,
                         1.0f + 0x1p-11f, 1.0f + 0x3p-11f, INFINITY, -INFINITY, NAN, 3.14159265f};
    enum { N = sizeof src / sizeof src[0] };
    const uint16_t want_f16[N] = {0x3c00, 0xc000, 0x0000, 0x7bff, 0x7c00, 0x0000, 0x0001, 0x0000, 0x0002,
                                  0x3c00 /* tie to even */, 0x3c02 /* tie to even, up */, 0x7c00, 0xfc00, 0, 0x4248};
    uint16_t h[N + 1];
    h[N] = 0xdead; /* n is respected */
    edgeattn_f32_to_f16(src, h, N);
    assert_int_equal(h[N], 0xdead);
    for (int i = 0; i < N; i++) {
        if (isnan(src[i])) {
            assert_true((h[i] & 0x7c00) == 0x7c00 && (h[i] & 0x03ff) != 0);
            continue;
        }
        if (h[i] != want_f16[i])
            fail_msg("edgeattn_f32_to_f16(%a) = 0x%04x, expected 0x%04x", (double)src[i], h[i], want_f16[i]);
    }
    const float bsrc[] = {1.0f, bits_f32(0x3f808000u) /* tie: even stays */, bits_f32(0x3f818000u) /* tie: up */,
                          -0.5f, INFINITY, bits_f32(0x7f7fffffu) /* rounds to Inf */};
    const uint16_t want_bf16[] = {0x3f80, 0x3f80, 0x3f82, 0xbf00, 0x7f80, 0x7f80};
    uint16_t bh[6];
    edgeattn_f32_to_bf16(bsrc, bh, 6);
    for (int i = 0; i < 6; i++)
        if (bh[i] != want_bf16[i])
            fail_msg("edgeattn_f32_to_bf16(%a) = 0x%04x, expected 0x%04x", (double)bsrc[i], bh[i], want_bf16[i]);
    /* every 16-bit pattern: to FP32 and back is the identity (NaNs stay NaN) */
    static uint16_t all[65536], back[65536];
    static float wide[65536];
    for (uint32_t i = 0; i < 65536; i++)
        all[i] = (uint16_t)i;
    edgeattn_f16_to_f32(all, wide, 65536);
    edgeattn_f32_to_f16(wide, back, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        const bool nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        if (nan ? !isnan(wide[i]) : back[i] != all[i])
            fail_msg("f16 0x%04x -> %a -> 0x%04x", (unsigned)i, (double)wide[i], back[i]);
    }
    assert_true(wide[0x3c00] == 1.0f && wide[0x0001] == 0x1p-24f && wide[0xfbff] == -65504.0f);
    edgeattn_bf16_to_f32(all, wide, 65536);
    edgeattn_f32_to_bf16(wide, back, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        const bool nan = (i & 0x7f80) == 0x7f80 && (i & 0x7f);
        if (nan ? !isnan(wide[i]) : back[i] != all[i])
            fail_msg("bf16 0x%04x -> %a -> 0x%04x", (unsigned)i, (double)wide[i], back[i]);
    }
    /* NULL and n = 0 do nothing */
    edgeattn_f32_to_f16(NULL, h, 3);
    edgeattn_f16_to_f32(h, NULL, 3);
    edgeattn_f32_to_bf16(src, h, 0);
    assert_int_equal(h[N], 0xdead);
}

/* ---------------------------------------------------------------- plan and caller buffer */

static edgeattn_plan_info plan_ok(const edgeattn_config *cfg)
{
    edgeattn_plan_info info;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_plan(cfg, &info, &msg);
    if (st != EDGEATTN_OK)
        fail_msg("plan: %d: %s", (int)st, msg.text);
    return info;
}

static void test_plan_reports_bytes(void **state)
{
    (void)state;
    clear_env();
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.num_threads = 2;
    c.backend = EDGEATTN_BACKEND_CPU; /* (AUTO takes a GPU where there is one) */
    const edgeattn_plan_info p0 = plan_ok(&c);
    assert_int_equal(p0.backend, EDGEATTN_BACKEND_CPU);
    assert_true(p0.host_bytes > 0);
    assert_int_equal(p0.kv_cache_bytes, 0);
    assert_int_equal(p0.device_bytes, 0);
    assert_int_equal(p0.num_threads, 2);
    assert_true(p0.scratch_bytes_per_thread > 0);
    assert_true(p0.scratch_bytes_per_thread * 2 <= p0.host_bytes);
    /* the same config plans the same bytes */
    const edgeattn_plan_info p0b = plan_ok(&c);
    assert_int_equal(p0b.host_bytes, p0.host_bytes);

    /* a KV cache: at least K and V of max_batch x max_kv_heads x capacity x head_dim, in its dtype */
    c.flags = EDGEATTN_FLAG_KV_CACHE;
    c.max_batch = 3;
    c.max_kv_heads = 2;
    c.max_heads = 8;
    c.max_kv_len = 1000;
    c.max_head_dim = 96;
    c.kv_cache_dtype = EDGEATTN_F16;
    const edgeattn_plan_info p1 = plan_ok(&c);
    const size_t kv16 = 2 * (size_t)3 * 2 * 1000 * 96 * 2;
    assert_true(p1.kv_cache_bytes >= kv16);
    assert_true(p1.kv_cache_bytes < kv16 + 4096); /* and not wildly more */
    assert_true(p1.host_bytes >= p1.kv_cache_bytes + 2 * p1.scratch_bytes_per_thread);
    c.kv_cache_dtype = EDGEATTN_F32;
    const edgeattn_plan_info p2 = plan_ok(&c);
    assert_true(p2.kv_cache_bytes >= 2 * kv16);
    assert_true(p2.host_bytes > p1.host_bytes);
    c.kv_cache_dtype = EDGEATTN_BF16;
    assert_int_equal(plan_ok(&c).kv_cache_bytes, p1.kv_cache_bytes);
    /* a window: the ring holds W tokens, not max_kv_len */
    c.kv_cache_dtype = EDGEATTN_F16;
    c.kv_cache_window = 100;
    const edgeattn_plan_info p3 = plan_ok(&c);
    assert_true(p3.kv_cache_bytes >= 2 * (size_t)3 * 2 * 100 * 96 * 2);
    assert_true(p3.kv_cache_bytes < p1.kv_cache_bytes);
    /* num_threads 0: the online cores */
    c.num_threads = 0;
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(plan_ok(&c).num_threads, cores > 0 ? cores : 1);
    c.num_threads = 1;
    assert_int_equal(plan_ok(&c).num_threads, 1);
}

static void test_create_with_exact_caller_buffer(void **state)
{
    (void)state;
    clear_env();
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.flags = EDGEATTN_FLAG_KV_CACHE;
    c.max_batch = 2;
    c.max_kv_len = 256;
    c.max_q_len = 64;
    c.max_heads = 4;
    c.max_kv_heads = 2;
    c.max_head_dim = 64;
    c.num_threads = 2;
    const edgeattn_plan_info p = plan_ok(&c);
    /* guard zones around the block: the library must stay inside [buf, buf + host_bytes) */
    const size_t guard = 256, total = (guard + p.host_bytes + guard + 63) & ~(size_t)63;
    unsigned char *mem = aligned_alloc(64, total);
    assert_non_null(mem);
    memset(mem, 0xa5, total);
    unsigned char *buf = mem + guard;
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_create(&c, buf, p.host_bytes, &ctx, &msg);
    if (st != EDGEATTN_OK)
        fail_msg("create with a buffer of exactly plan.host_bytes = %zu: %d: %s", p.host_bytes, (int)st, msg.text);
    edgeattn_backend_info info;
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    assert_int_equal(info.host_bytes, p.host_bytes);
    /* use it: attention, append, decode (results checked against a naive attention) */
    const int B = 2, Hq = 4, Hkv = 2, N = 40, D = 64;
    float *q = frand_array((size_t)B * Hq * N * D), *k = frand_array((size_t)B * Hkv * N * D),
          *v = frand_array((size_t)B * Hkv * N * D), *o = calloc((size_t)B * Hq * N * D, sizeof(float));
    edgeattn_tensor tq = edgeattn_tensor_bhsd(q, EDGEATTN_F32, B, Hq, N, D);
    edgeattn_tensor tk = edgeattn_tensor_bhsd(k, EDGEATTN_F32, B, Hkv, N, D);
    edgeattn_tensor tv = edgeattn_tensor_bhsd(v, EDGEATTN_F32, B, Hkv, N, D);
    edgeattn_tensor to = edgeattn_tensor_bhsd(o, EDGEATTN_F32, B, Hq, N, D);
    edgeattn_params prm;
    edgeattn_params_default(&prm);
    prm.causal = 1;
    assert_int_equal(edgeattn_attention(ctx, &tq, &tk, &tv, &to, &prm), EDGEATTN_OK);
    const double e = naive_err(q, k, v, o, B, Hq, Hkv, N, N, D, 1);
    if (!(e < 1e-5))
        fail_msg("attention in a caller buffer: error %g vs a naive attention", e);
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &tk, &tv, NULL, 0), EDGEATTN_OK);
    edgeattn_tensor tq1 = edgeattn_tensor_bhsd(q, EDGEATTN_F32, B, Hq, 1, D);
    edgeattn_tensor to1 = edgeattn_tensor_bhsd(o, EDGEATTN_F32, B, Hq, 1, D);
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &tq1, &to1, NULL), EDGEATTN_OK);
    edgeattn_destroy(ctx);
    for (size_t i = 0; i < guard; i++)
        if (mem[i] != 0xa5)
            fail_msg("byte %zu before the caller buffer was written", guard - i);
    for (size_t i = guard + p.host_bytes; i < total; i++)
        if (mem[i] != 0xa5)
            fail_msg("byte %zu after the end of the caller buffer (host_bytes %zu) was written",
                     i - guard - p.host_bytes, p.host_bytes);
    free(mem); /* destroy must not have freed it: ASan would report a double free here */
    free(q);
    free(k);
    free(v);
    free(o);
}

/* ---------------------------------------------------------------- two contexts */

/* A fixed script of calls on one context; every output is appended to rec (floats). */
typedef struct script {
    edgeattn_config cfg;
    int B, Hq, Hkv, D, N;
    float *q, *k, *v;   /* [B][H][N][D] inputs */
    float *rec;          /* recorded outputs */
    size_t nrec, cap;
} script;

static void script_init(script *s, int B, int Hq, int Hkv, int D, int N, edgeattn_dtype cache, int window,
                        int threads, uint32_t mask)
{
    memset(s, 0, sizeof *s);
    edgeattn_config_default(&s->cfg);
    s->cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    s->cfg.max_batch = B;
    s->cfg.max_q_len = N;
    s->cfg.max_kv_len = 4 * N;
    s->cfg.max_heads = Hq;
    s->cfg.max_kv_heads = Hkv;
    s->cfg.max_head_dim = D;
    s->cfg.kv_cache_dtype = cache;
    s->cfg.kv_cache_window = window;
    s->cfg.num_threads = threads;
    s->cfg.cpu_disable_mask = mask;
    s->B = B, s->Hq = Hq, s->Hkv = Hkv, s->D = D, s->N = N;
    s->q = frand_array((size_t)B * Hq * N * D);
    s->k = frand_array((size_t)B * Hkv * N * D);
    s->v = frand_array((size_t)B * Hkv * N * D);
    s->cap = (size_t)16 * B * Hq * N * D;
    s->rec = malloc(s->cap * sizeof(float));
    assert_non_null(s->rec);
}

static void script_free(script *s)
{
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->rec);
}

/* Step `step` of the script on ctx: attention, append of a chunk, or decode. */
static void script_step(script *s, edgeattn_context *ctx, int step)
{
    const int B = s->B, Hq = s->Hq, Hkv = s->Hkv, D = s->D, N = s->N;
    const size_t n_out = (size_t)B * Hq * N * D;
    assert_true(s->nrec + n_out <= s->cap);
    float *o = s->rec + s->nrec;
    memset(o, 0, n_out * sizeof(float));
    edgeattn_params p;
    edgeattn_params_default(&p);
    switch (step % 3) {
    case 0: {
        edgeattn_tensor q = edgeattn_tensor_bhsd(s->q, EDGEATTN_F32, B, Hq, N, D);
        edgeattn_tensor k = edgeattn_tensor_bhsd(s->k, EDGEATTN_F32, B, Hkv, N, D);
        edgeattn_tensor v = edgeattn_tensor_bhsd(s->v, EDGEATTN_F32, B, Hkv, N, D);
        edgeattn_tensor to = edgeattn_tensor_bhsd(o, EDGEATTN_F32, B, Hq, N, D);
        p.causal = step & 1;
        assert_int_equal(edgeattn_attention(ctx, &q, &k, &v, &to, &p), EDGEATTN_OK);
        s->nrec += n_out;
        break;
    }
    case 1: {
        edgeattn_tensor k = edgeattn_tensor_bhsd(s->k, EDGEATTN_F32, B, Hkv, N, D);
        edgeattn_tensor v = edgeattn_tensor_bhsd(s->v, EDGEATTN_F32, B, Hkv, N, D);
        int32_t n_new[8];
        for (int b = 0; b < B; b++)
            n_new[b] = 1 + (step + b * 7) % N;
        const edgeattn_status st = edgeattn_kv_append(ctx, 0, NULL, &k, &v, n_new, 0);
        if (st == EDGEATTN_ERR_CAPACITY)
            assert_int_equal(edgeattn_kv_reset(ctx, -1), EDGEATTN_OK);
        else
            assert_int_equal(st, EDGEATTN_OK);
        break;
    }
    default: {
        int32_t held = 1 << 30;
        for (int b = 0; b < B; b++) {
            int32_t h;
            assert_int_equal(edgeattn_kv_length(ctx, 0, b, NULL, &h), EDGEATTN_OK);
            held = h < held ? h : held;
        }
        if (held < 1)
            break;
        const int nq = held < 3 ? held : 3;
        edgeattn_tensor q = edgeattn_tensor_bhsd(s->q, EDGEATTN_F32, B, Hq, nq, D);
        edgeattn_tensor to = edgeattn_tensor_bhsd(o, EDGEATTN_F32, B, Hq, nq, D);
        p.causal = 1;
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q, &to, &p), EDGEATTN_OK);
        s->nrec += (size_t)B * Hq * nq * D;
        break;
    }
    }
}

static void test_two_contexts_do_not_interfere(void **state)
{
    (void)state;
    clear_env();
    const uint32_t all = edgeattn_cpu_features();
    script a1, b1, a2, b2;
    /* A: small heads, f16 ring cache, 2 threads, scalar tier. B: f32 cache, 1 thread, best tier. */
    rng_state = 12345;
    script_init(&a1, 2, 4, 2, 64, 24, EDGEATTN_F16, 20, 2, all);
    script_init(&b1, 1, 8, 8, 128, 33, EDGEATTN_F32, 0, 1, 0);
    rng_state = 12345;
    script_init(&a2, 2, 4, 2, 64, 24, EDGEATTN_F16, 20, 2, all);
    script_init(&b2, 1, 8, 8, 128, 33, EDGEATTN_F32, 0, 1, 0);
    const int steps = 30;
    /* separately, one after the other */
    edgeattn_context *ca = create_ok(&a1.cfg);
    for (int i = 0; i < steps; i++)
        script_step(&a1, ca, i);
    edgeattn_destroy(ca);
    edgeattn_context *cb = create_ok(&b1.cfg);
    for (int i = 0; i < steps; i++)
        script_step(&b1, cb, i);
    edgeattn_destroy(cb);
    /* both alive, calls interleaved */
    ca = create_ok(&a2.cfg);
    cb = create_ok(&b2.cfg);
    for (int i = 0; i < steps; i++) {
        script_step(&a2, ca, i);
        script_step(&b2, cb, i);
    }
    assert_int_equal(a1.nrec, a2.nrec);
    assert_int_equal(b1.nrec, b2.nrec);
    assert_true(a1.nrec > 0 && b1.nrec > 0);
    if (memcmp(a1.rec, a2.rec, a1.nrec * sizeof(float)) != 0)
        fail_msg("context A gave different results when another context was used in between");
    if (memcmp(b1.rec, b2.rec, b1.nrec * sizeof(float)) != 0)
        fail_msg("context B gave different results when another context was used in between");
    /* the first recorded output is attention: check it is attention */
    const double e = naive_err(a1.q, a1.k, a1.v, a1.rec, 2, 4, 2, 24, 24, 64, 0);
    if (!(e < 1e-5))
        fail_msg("context A's attention: error %g vs a naive attention", e);
    /* messages are per context */
    edgeattn_tensor bad = edgeattn_tensor_bhsd(a2.q, EDGEATTN_F32, 1, 1, 1, 68);
    assert_int_equal(edgeattn_attention(ca, &bad, &bad, &bad, &bad, NULL), EDGEATTN_ERR_HEAD_DIM);
    char msg_a[256];
    snprintf(msg_a, sizeof msg_a, "%s", edgeattn_message_of(ca));
    assert_true(msg_a[0] != '\0');
    script_step(&b2, cb, 0);
    assert_string_equal(edgeattn_message_of(cb), "");
    assert_string_equal(edgeattn_message_of(ca), msg_a);
    /* and the KV caches are separate */
    int64_t ta, tb;
    assert_int_equal(edgeattn_kv_length(ca, 0, 0, &ta, NULL), EDGEATTN_OK);
    assert_int_equal(edgeattn_kv_reset(cb, -1), EDGEATTN_OK);
    int64_t ta2;
    assert_int_equal(edgeattn_kv_length(ca, 0, 0, &ta2, NULL), EDGEATTN_OK);
    assert_int_equal(ta, ta2);
    assert_int_equal(edgeattn_kv_length(cb, 0, 0, &tb, NULL), EDGEATTN_OK);
    assert_int_equal(tb, 0);
    edgeattn_destroy(ca);
    edgeattn_destroy(cb);
    script_free(&a1);
    script_free(&b1);
    script_free(&a2);
    script_free(&b2);
}

/* ---------------------------------------------------------------- backend info, env */

static const char *expected_best_tier(uint32_t used)
{
#if defined(__x86_64__) || defined(__i386__)
    return (used & EDGEATTN_CPU_AVX2) ? ((used & EDGEATTN_CPU_AVX512) ? "avx512" : "avx2") : "scalar";
#elif defined(__aarch64__)
    return (used & EDGEATTN_CPU_NEON) ? ((used & EDGEATTN_CPU_NEON_FP16) ? "neon-fp16" : "neon") : "scalar";
#else
    (void)used;
    return "scalar";
#endif
}

static void test_backend_info(void **state)
{
    (void)state;
    clear_env();
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.num_threads = 2;
    c.backend = EDGEATTN_BACKEND_CPU; /* (AUTO takes a GPU where there is one) */
    edgeattn_context *ctx = create_ok(&c);
    edgeattn_backend_info info;
    memset(&info, 0xff, sizeof info);
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    assert_int_equal(info.backend, EDGEATTN_BACKEND_CPU);
    assert_string_equal(info.backend_name, "cpu");
    assert_non_null(memchr(info.tier, '\0', sizeof info.tier));
    assert_non_null(memchr(info.device, '\0', sizeof info.device));
    assert_true(info.device[0] != '\0');
    static const char *const tiers[] = {"scalar", "avx2", "avx512", "neon", "neon-fp16"};
    bool known = false;
    for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++)
        known = known || strcmp(info.tier, tiers[i]) == 0;
    if (!known)
        fail_msg("unknown tier \"%s\"", info.tier);
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(info.cores, cores > 0 ? cores : 1);
    assert_int_equal(info.threads, 2);
    assert_int_equal(info.cpu_features, edgeattn_cpu_features());
    assert_int_equal(info.cpu_features_used, edgeattn_cpu_features());
    edgeattn_plan_info p = plan_ok(&c);
    assert_int_equal(info.host_bytes, p.host_bytes);
    assert_int_equal(info.device_bytes, 0);
    assert_int_equal(info.device_memory, 0);
#if TC_EXPECT_SIMD
    if (strcmp(info.tier, expected_best_tier(info.cpu_features_used)) != 0)
        fail_msg("features 0x%x: tier \"%s\", expected \"%s\"", (unsigned)info.cpu_features_used, info.tier,
                 expected_best_tier(info.cpu_features_used));
#else
    (void)expected_best_tier;
#endif
    edgeattn_destroy(ctx);
}

static void test_cpu_mask_env(void **state)
{
    (void)state;
    clear_env();
    const uint32_t f = edgeattn_cpu_features();
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.num_threads = 1;
    c.backend = EDGEATTN_BACKEND_CPU; /* the mask is about the CPU backend's tiers */
    char val[32];
    /* every feature off through the environment: the scalar tier */
    snprintf(val, sizeof val, "0x%x", (unsigned)(f | 0xffff0000u));
    setenv("EDGEATTN_CPU_MASK", val, 1);
    edgeattn_context *ctx = create_ok(&c);
    edgeattn_backend_info info;
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    assert_string_equal(info.tier, "scalar");
    assert_int_equal(info.cpu_features_used, 0);
    assert_int_equal(info.cpu_features, f);
    edgeattn_destroy(ctx);
    /* decimal works too; 0 disables nothing */
    setenv("EDGEATTN_CPU_MASK", "0", 1);
    ctx = create_ok(&c);
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    assert_int_equal(info.cpu_features_used, f);
    edgeattn_destroy(ctx);
    /* the environment adds to the config's mask */
    if (f) {
        const uint32_t low = f & (~f + 1u); /* lowest feature bit */
        snprintf(val, sizeof val, "%u", (unsigned)low);
        setenv("EDGEATTN_CPU_MASK", val, 1);
        c.cpu_disable_mask = f & ~low;
        ctx = create_ok(&c);
        assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
        assert_int_equal(info.cpu_features_used, 0);
        assert_string_equal(info.tier, "scalar");
        edgeattn_destroy(ctx);
        c.cpu_disable_mask = 0;
#if TC_EXPECT_SIMD
        /* only the lowest tier's bit off: the ladder stops there, whatever is above it */
        ctx = create_ok(&c);
        assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
        assert_int_equal(info.cpu_features_used, f & ~low);
        assert_string_equal(info.tier, "scalar");
        edgeattn_destroy(ctx);
#endif
    }
    unsetenv("EDGEATTN_CPU_MASK");
    /* EDGEATTN_BACKEND=cpu forces the CPU backend (over AUTO, which takes a GPU where there is one) */
    c.backend = EDGEATTN_BACKEND_AUTO;
    setenv("EDGEATTN_BACKEND", "cpu", 1);
    ctx = create_ok(&c);
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    assert_int_equal(info.backend, EDGEATTN_BACKEND_CPU);
    edgeattn_destroy(ctx);
    clear_env();
}

/* ---------------------------------------------------------------- tensors, messages, KV lengths */

static void test_tensor_helpers(void **state)
{
    (void)state;
    char buf[16];
    edgeattn_tensor t = edgeattn_tensor_bhsd(buf, EDGEATTN_F16, 2, 3, 5, 64);
    assert_ptr_equal(t.data, buf);
    assert_int_equal(t.dtype, EDGEATTN_F16);
    assert_int_equal(t.memory, EDGEATTN_MEM_HOST);
    assert_int_equal(t.offset, 0);
    const int64_t shape[4] = {2, 3, 5, 64}, bhsd[4] = {3 * 5 * 64, 5 * 64, 64, 1}, bshd[4] = {5 * 3 * 64, 64, 3 * 64, 1};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(t.shape[i], shape[i]);
        assert_int_equal(t.stride[i], bhsd[i]);
    }
    assert_int_equal(t.bytes, 2 * 3 * 5 * 64 * 2);
    t = edgeattn_tensor_bshd(buf, EDGEATTN_F32, 2, 3, 5, 64);
    assert_int_equal(t.dtype, EDGEATTN_F32);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(t.shape[i], shape[i]);
        assert_int_equal(t.stride[i], bshd[i]);
    }
    assert_int_equal(t.bytes, 2 * 3 * 5 * 64 * 4);
    t = edgeattn_tensor_bhsd(buf, EDGEATTN_BF16, 1, 1, 1, 16);
    assert_int_equal(t.bytes, 32);
    /* sizes that overflow size_t: bytes 0 */
    t = edgeattn_tensor_bhsd(buf, EDGEATTN_F32, (int64_t)1 << 40, (int64_t)1 << 20, 16, 64);
    assert_int_equal(t.bytes, 0);
    t = edgeattn_tensor_bshd(buf, EDGEATTN_F32, (int64_t)1 << 40, 16, (int64_t)1 << 20, 64);
    assert_int_equal(t.bytes, 0);
    /* a negative size: bytes 0, and validation refuses it */
    t = edgeattn_tensor_bhsd(buf, EDGEATTN_F32, 1, -1, 1, 16);
    assert_int_equal(t.bytes, 0);
    /* an invalid dtype: bytes 0 */
    t = edgeattn_tensor_bhsd(buf, (edgeattn_dtype)7, 1, 1, 1, 16);
    assert_int_equal(t.bytes, 0);
}

/* Shapes whose strides themselves do not fit in int64: the helpers must still say bytes 0. */
static void test_tensor_helpers_huge_strides(void **state)
{
    (void)state;
    char buf[16];
    const int64_t big = (int64_t)1 << 32;
    edgeattn_tensor t = edgeattn_tensor_bhsd(buf, EDGEATTN_F32, 1, big, big, 64); /* h*n*d = 2^70 */
    assert_int_equal(t.bytes, 0);
    t = edgeattn_tensor_bshd(buf, EDGEATTN_F32, 1, big, big, 64);
    assert_int_equal(t.bytes, 0);
}

static void test_messages(void **state)
{
    (void)state;
    clear_env();
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.num_threads = 1;
    edgeattn_context *ctx = create_ok(&c);
    assert_string_equal(edgeattn_message_of(ctx), "");
    float *q = frand_array(4 * 128), *k = frand_array(4 * 96), *o = calloc(4 * 128, sizeof(float));
    edgeattn_tensor tq = edgeattn_tensor_bhsd(q, EDGEATTN_F32, 1, 1, 4, 128);
    edgeattn_tensor tk = edgeattn_tensor_bhsd(k, EDGEATTN_F32, 1, 1, 4, 96);
    edgeattn_tensor to = edgeattn_tensor_bhsd(o, EDGEATTN_F32, 1, 1, 4, 128);
    assert_int_equal(edgeattn_attention(ctx, &tq, &tk, &tk, &to, NULL), EDGEATTN_ERR_SHAPE_MISMATCH);
    const char *m = edgeattn_message_of(ctx);
    /* says what was wrong: both head dims and which tensor */
    if (!strstr(m, "96") || !strstr(m, "128") || !strstr(m, "k"))
        fail_msg("message \"%s\" does not name k and the head dims 96 and 128", m);
    /* a success clears it */
    tk = edgeattn_tensor_bhsd(k, EDGEATTN_F32, 1, 1, 3, 128);
    assert_int_equal(edgeattn_attention(ctx, &tq, &tk, &tk, &to, NULL), EDGEATTN_OK);
    assert_string_equal(edgeattn_message_of(ctx), "");
    /* plan/create messages go to the caller's struct */
    edgeattn_message msg;
    memset(&msg, 'x', sizeof msg);
    c.max_head_dim = 68;
    edgeattn_plan_info info;
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_ERR_HEAD_DIM);
    assert_non_null(memchr(msg.text, '\0', sizeof msg.text));
    assert_non_null(strstr(msg.text, "68"));
    c.max_head_dim = 64;
    memset(&msg, 'x', sizeof msg);
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_OK);
    assert_string_equal(msg.text, ""); /* cleared on success */
    edgeattn_destroy(ctx);
    free(q);
    free(k);
    free(o);
}

static void test_kv_lengths(void **state)
{
    (void)state;
    clear_env();
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.flags = EDGEATTN_FLAG_KV_CACHE;
    c.max_batch = 3;
    c.max_heads = 2;
    c.max_kv_heads = 2;
    c.max_head_dim = 32;
    c.kv_cache_window = 10;
    c.num_threads = 1;
    edgeattn_context *ctx = create_ok(&c);
    for (int b = 0; b < 3; b++) {
        int64_t t = -1;
        int32_t h = -1;
        assert_int_equal(edgeattn_kv_length(ctx, 0, b, &t, &h), EDGEATTN_OK);
        assert_int_equal(t, 0);
        assert_int_equal(h, 0);
    }
    float *k = frand_array(3 * 2 * 7 * 32);
    edgeattn_tensor tk = edgeattn_tensor_bshd(k, EDGEATTN_F32, 3, 2, 7, 32);
    const int32_t n1[3] = {7, 3, 0};
    int64_t want_total[3] = {0, 0, 0};
    for (int round = 0; round < 4; round++) {
        assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &tk, &tk, n1, 0), EDGEATTN_OK);
        for (int b = 0; b < 3; b++) {
            want_total[b] += n1[b];
            int64_t t;
            int32_t h;
            assert_int_equal(edgeattn_kv_length(ctx, 0, b, &t, &h), EDGEATTN_OK);
            assert_int_equal(t, want_total[b]);
            assert_int_equal(h, want_total[b] < 10 ? want_total[b] : 10);
        }
    }
    /* batch smaller than max_batch: only the first sequences */
    edgeattn_tensor t1 = edgeattn_tensor_bshd(k, EDGEATTN_F32, 1, 2, 7, 32);
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &t1, &t1, NULL, 0), EDGEATTN_OK);
    want_total[0] += 7;
    int64_t t;
    int32_t h;
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, &t, &h), EDGEATTN_OK);
    assert_int_equal(t, want_total[0]);
    assert_int_equal(edgeattn_kv_length(ctx, 0, 1, &t, &h), EDGEATTN_OK);
    assert_int_equal(t, want_total[1]);
    /* reset one, then all */
    assert_int_equal(edgeattn_kv_reset(ctx, 1), EDGEATTN_OK);
    assert_int_equal(edgeattn_kv_length(ctx, 0, 1, &t, &h), EDGEATTN_OK);
    assert_int_equal(t, 0);
    assert_int_equal(h, 0);
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, &t, &h), EDGEATTN_OK);
    assert_int_equal(t, want_total[0]);
    assert_int_equal(edgeattn_kv_reset(ctx, -1), EDGEATTN_OK);
    for (int b = 0; b < 3; b++) {
        assert_int_equal(edgeattn_kv_length(ctx, 0, b, &t, &h), EDGEATTN_OK);
        assert_int_equal(t, 0);
        assert_int_equal(h, 0);
    }
    /* after a full reset the cache takes another head dim */
    edgeattn_tensor t16 = edgeattn_tensor_bhsd(k, EDGEATTN_F32, 1, 1, 7, 16);
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &t16, &t16, NULL, 0), EDGEATTN_OK);
    edgeattn_destroy(ctx);
    free(k);
}

/* ---------------------------------------------------------------- exported symbols */

/* The GPU-memory calls on a CPU context: host copies work through any strides, the device-only
 * calls say they are unsupported, synchronize is a no-op. */
static void test_cpu_device_calls(void **state)
{
    (void)state;
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.backend = EDGEATTN_BACKEND_CPU;
    cfg.device_user_bytes = 1 << 20;
    edgeattn_context *ctx = create_ok(&cfg);
    assert_int_equal(edgeattn_synchronize(ctx), EDGEATTN_OK);
    assert_int_equal(edgeattn_synchronize(NULL), EDGEATTN_ERR_NULL_ARG);
    edgeattn_memory mem;
    void *data = NULL;
    size_t off = 0, bytes = 0;
    assert_int_equal(edgeattn_device_region(ctx, &mem, &data, &off, &bytes), EDGEATTN_ERR_UNSUPPORTED);
    assert_true(strlen(edgeattn_message_of(ctx)) > 0);
    assert_int_equal(edgeattn_device_region(ctx, NULL, &data, &off, &bytes), EDGEATTN_ERR_NULL_ARG);
    edgeattn_ceilings ceil;
    assert_int_equal(edgeattn_measure_ceilings(ctx, &ceil), EDGEATTN_ERR_UNSUPPORTED);
    /* copy: BHSD -> BSHD and back gives the same values; a mismatch writes nothing */
    enum { B = 2, H = 3, N = 5, D = 16 };
    float *src = frand_array(B * H * N * D), *mid = frand_array(B * H * N * D), *back = frand_array(B * H * N * D);
    edgeattn_tensor ts = edgeattn_tensor_bhsd(src, EDGEATTN_F32, B, H, N, D);
    edgeattn_tensor tm = edgeattn_tensor_bshd(mid, EDGEATTN_F32, B, H, N, D);
    edgeattn_tensor tb = edgeattn_tensor_bhsd(back, EDGEATTN_F32, B, H, N, D);
    assert_int_equal(edgeattn_copy(ctx, &tm, &ts), EDGEATTN_OK);
    assert_int_equal(edgeattn_copy(ctx, &tb, &tm), EDGEATTN_OK);
    assert_memory_equal(src, back, sizeof(float) * B * H * N * D);
    for (int b = 0; b < B; b++) /* mid really is BSHD */
        for (int h = 0; h < H; h++)
            for (int n = 0; n < N; n++)
                assert_true(mid[((b * N + n) * H + h) * D + 3] == src[((b * H + h) * N + n) * D + 3]);
    float keep = back[0];
    edgeattn_tensor wrong = edgeattn_tensor_bhsd(back, EDGEATTN_F16, B, H, N, D);
    assert_int_equal(edgeattn_copy(ctx, &wrong, &ts), EDGEATTN_ERR_DTYPE);
    wrong = edgeattn_tensor_bhsd(back, EDGEATTN_F32, B, H, N - 1, D);
    assert_int_equal(edgeattn_copy(ctx, &wrong, &ts), EDGEATTN_ERR_SHAPE_MISMATCH);
    wrong = edgeattn_tensor_bhsd(back, EDGEATTN_F32, B, H, N, D);
    wrong.memory = EDGEATTN_MEM_CUDA;
    assert_int_equal(edgeattn_copy(ctx, &wrong, &ts), EDGEATTN_ERR_UNSUPPORTED);
    assert_int_equal(edgeattn_copy(ctx, &ts, &ts), EDGEATTN_ERR_STRIDE);
    assert_int_equal(edgeattn_copy(ctx, NULL, &ts), EDGEATTN_ERR_NULL_ARG);
    assert_true(back[0] == keep);
    free(src);
    free(mid);
    free(back);
    edgeattn_destroy(ctx);
}

static void test_exports(void **state)
{
    (void)state;
    static const char *const api[] = {"edgeattn_version",        "edgeattn_status_string", "edgeattn_config_default",
                                      "edgeattn_params_default",  "edgeattn_tensor_bhsd",   "edgeattn_tensor_bshd",
                                      "edgeattn_cpu_features",    "edgeattn_plan",          "edgeattn_create",
                                      "edgeattn_destroy",         "edgeattn_message_of",    "edgeattn_get_backend_info",
                                      "edgeattn_attention",       "edgeattn_kv_append",     "edgeattn_kv_reset",
                                      "edgeattn_kv_length",       "edgeattn_decode",        "edgeattn_synchronize",
                                      "edgeattn_device_region",   "edgeattn_copy",          "edgeattn_measure_ceilings",
                                      "edgeattn_kv_pages",        "edgeattn_config_fit",    "edgeattn_fit_default",
                                      "edgeattn_fit_preset"};
    for (size_t i = 0; i < sizeof api / sizeof api[0]; i++)
        if (!dlsym(RTLD_DEFAULT, api[i]))
            fail_msg("%s is not exported", api[i]);
    /* internal functions stay hidden */
    static const char *const internal[] = {"ea_ref_attention", "ea_fail",        "ea_check_tensor", "ea_cpu_detect",
                                           "ea_f32_to_f16",    "ea_backend_cpu", "ea_plan_layout",  "ea_cpu_run"};
    for (size_t i = 0; i < sizeof internal / sizeof internal[0]; i++)
        if (dlsym(RTLD_DEFAULT, internal[i]))
            fail_msg("internal symbol %s is exported by the shared library", internal[i]);
}

/* Configs fitted to a budget: within it, close to it, the most precise dtype that serves the whole
 * context, a window when allowed, and refusals that write nothing. Plans only (no 2 GiB create). */
static void test_config_fit(void **state)
{
    (void)state;
    edgeattn_fit_request r;
    edgeattn_fit_default(&r);
    r.num_layers = 32, r.num_heads = 32, r.num_kv_heads = 8, r.head_dim = 128; /* an 8B-class model */
    r.backend = EDGEATTN_BACKEND_CPU;
    r.num_threads = 2;
    edgeattn_config c;
    edgeattn_plan_info info;
    edgeattn_message msg;
    const uint64_t budget = 2ull << 30;
    assert_int_equal(edgeattn_config_fit(&r, budget, &c, &info, &msg), EDGEATTN_OK);
    const uint64_t used = (uint64_t)info.host_bytes + info.device_bytes;
    print_message("fit 8B-class, 2 GiB: %s\n", msg.text);
    assert_true(used <= budget);
    assert_true((double)used >= 0.95 * (double)budget);
    assert_int_equal(c.kv_cache_dtype, EDGEATTN_F16); /* F32 holds half the tokens; neither the whole context */
    assert_int_equal(c.kv_cache_window, 0);
    assert_true(c.max_kv_len > 15000 && c.max_kv_len < 16384); /* 128 KiB a token in F16, less the scratch */
    edgeattn_config one_more = c; /* one token more would not fit */
    one_more.max_kv_len++;
    edgeattn_plan_info more;
    assert_int_equal(edgeattn_plan(&one_more, &more, NULL), EDGEATTN_OK);
    assert_true((uint64_t)more.host_bytes + more.device_bytes > budget);
    /* a window when allowed: generation goes on past the window */
    r.allow_window = 1;
    assert_int_equal(edgeattn_config_fit(&r, budget, &c, NULL, &msg), EDGEATTN_OK);
    assert_int_equal(c.kv_cache_window, c.max_kv_len);
    assert_non_null(strstr(msg.text, "window"));
    r.allow_window = 0;
    /* a small model: F32 serves the whole context, so F32 it is */
    r.num_layers = 2, r.num_heads = 4, r.num_kv_heads = 2, r.head_dim = 64, r.max_context = 4096;
    assert_int_equal(edgeattn_config_fit(&r, 64ull << 20, &c, &info, &msg), EDGEATTN_OK);
    assert_int_equal(c.kv_cache_dtype, EDGEATTN_F32);
    assert_int_equal(c.max_kv_len, 4096);
    /* refusals: nothing written */
    edgeattn_config before;
    memset(&before, 0x5a, sizeof before);
    c = before;
    assert_int_equal(edgeattn_config_fit(&r, 1 << 16, &c, NULL, &msg), EDGEATTN_ERR_CAPACITY);
    assert_non_null(strstr(msg.text, "min_context"));
    assert_memory_equal(&c, &before, sizeof c);
    edgeattn_fit_request bad = r;
    bad.kv_dtypes = 0;
    assert_int_equal(edgeattn_config_fit(&bad, budget, &c, NULL, &msg), EDGEATTN_ERR_INVALID_ARG);
    bad = r, bad.head_dim = 0;
    assert_int_equal(edgeattn_config_fit(&bad, budget, &c, NULL, &msg), EDGEATTN_ERR_INVALID_ARG);
    bad = r, bad.num_heads = 6, bad.num_kv_heads = 4;
    assert_int_equal(edgeattn_config_fit(&bad, budget, &c, NULL, &msg), EDGEATTN_ERR_GQA_RATIO);
    bad = r, bad.struct_version = 0;
    assert_int_equal(edgeattn_config_fit(&bad, budget, &c, NULL, &msg), EDGEATTN_ERR_INVALID_ARG);
    bad = r, bad.reserved[3] = 1;
    assert_int_equal(edgeattn_config_fit(&bad, budget, &c, NULL, &msg), EDGEATTN_ERR_INVALID_ARG);
    bad = r, bad.min_context = bad.max_context + 1;
    assert_int_equal(edgeattn_config_fit(&bad, budget, &c, NULL, &msg), EDGEATTN_ERR_INVALID_ARG);
    assert_memory_equal(&c, &before, sizeof c);
    assert_int_equal(edgeattn_config_fit(NULL, budget, &c, NULL, &msg), EDGEATTN_ERR_NULL_ARG);
    assert_int_equal(edgeattn_config_fit(&r, budget, NULL, NULL, &msg), EDGEATTN_ERR_NULL_ARG);
    /* presets: every one enumerates and is found by name */
    int n = 0;
    const char *name, *what;
    uint64_t bytes;
    edgeattn_backend be;
    while (edgeattn_fit_preset(NULL, n, &name, &bytes, &be, &what) == EDGEATTN_OK) {
        uint64_t again = 0;
        assert_int_equal(edgeattn_fit_preset(name, -1, NULL, &again, NULL, NULL), EDGEATTN_OK);
        assert_true(again == bytes && bytes > 0 && what[0]);
        n++;
    }
    assert_true(n >= 4);
    assert_int_equal(edgeattn_fit_preset("no-such-board", -1, NULL, NULL, NULL, NULL), EDGEATTN_ERR_INVALID_ARG);
}

/* Writes a tuning file; returns its path (static buffer). */
static const char *write_tuning(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/edgeattn-tuning-%d.txt", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void plan_with(const char *file, edgeattn_plan_info *info, edgeattn_status want, char *note)
{
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.backend = EDGEATTN_BACKEND_CPU;
    c.num_threads = 1;
    c.tuning_file = file;
    edgeattn_message msg = {{0}};
    assert_int_equal(edgeattn_plan(&c, info, &msg), want);
    edgeattn_context *ctx = NULL;
    const edgeattn_status st = edgeattn_create(&c, NULL, 0, &ctx, &msg);
    if (st != want)
        fail_msg("create with tuning file returned %d, expected %d: %s", (int)st, (int)want, msg.text);
    if (want != EDGEATTN_OK) {
        assert_true(msg.text[0] != '\0');
        assert_null(ctx);
        return;
    }
    edgeattn_backend_info bi;
    assert_int_equal(edgeattn_get_backend_info(ctx, &bi), EDGEATTN_OK);
    snprintf(note, 32, "%s", bi.tuning);
    edgeattn_destroy(ctx);
}

/* A tuning file for this CPU changes the tiles (and so the plan); one for another device, backend or
 * library version is ignored and says so; a malformed one is refused with a message. */
static void test_tuning_file(void **state)
{
    (void)state;
    clear_env();
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.backend = EDGEATTN_BACKEND_CPU;
    c.num_threads = 1;
    edgeattn_context *ctx = NULL;
    assert_int_equal(edgeattn_create(&c, NULL, 0, &ctx, NULL), EDGEATTN_OK);
    edgeattn_backend_info bi;
    assert_int_equal(edgeattn_get_backend_info(ctx, &bi), EDGEATTN_OK);
    assert_string_equal(bi.tuning, "none");
    edgeattn_destroy(ctx);
    edgeattn_plan_info base, got;
    char note[32];
    plan_with(NULL, &base, EDGEATTN_OK, note);
    char text[1024];
    snprintf(text, sizeof text,
             "# made by hand\nedgeattn-tuning 1\nlibrary %s\nbackend cpu\ndevice %s\ndriver -\n\n"
             "set EDGEATTN_CPU_TILES kb=32,rb=16\n",
             edgeattn_version(), bi.device);
    plan_with(write_tuning(text), &got, EDGEATTN_OK, note);
    assert_string_equal(note, "applied");
    assert_true(got.scratch_bytes_per_thread < base.scratch_bytes_per_thread); /* smaller tiles, smaller scratch */
    setenv("EDGEATTN_TUNING_FILE", write_tuning(text), 1); /* the environment names it as well */
    plan_with(NULL, &got, EDGEATTN_OK, note);
    assert_string_equal(note, "applied");
    setenv("EDGEATTN_CPU_TILES", "kb=256,rb=128", 1); /* and a variable the user set wins over the file */
    plan_with(NULL, &got, EDGEATTN_OK, note);
    assert_true(got.scratch_bytes_per_thread >= base.scratch_bytes_per_thread);
    clear_env();
    /* someone else's file: ignored, with the reason */
    const struct {
        const char *lib, *backend, *device, *note;
    } foreign[] = {{"0.0.1", "cpu", bi.device, "ignored: library"},
                   {edgeattn_version(), "cpu", "Some Other CPU", "ignored: device"}};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        snprintf(text, sizeof text, "edgeattn-tuning 1\nlibrary %s\nbackend %s\ndevice %s\nset EDGEATTN_CPU_TILES kb=32,rb=16\n",
                 foreign[i].lib, foreign[i].backend, foreign[i].device);
        plan_with(write_tuning(text), &got, EDGEATTN_OK, note);
        assert_string_equal(note, foreign[i].note);
        assert_int_equal(got.scratch_bytes_per_thread, base.scratch_bytes_per_thread);
    }
    snprintf(text, sizeof text, "edgeattn-tuning 1\nlibrary %s\nbackend opencl\ndevice X\nset EDGEATTN_OPENCL_PATH fused\n",
             edgeattn_version());
    plan_with(write_tuning(text), &got, EDGEATTN_OK, note);
    assert_string_equal(note, "ignored: backend");
    /* malformed: refused */
    static const char *const bad[] = {
        "",
        "library 0.1.0\n",
        "edgeattn-tuning 2\nlibrary 0.1.0\nbackend cpu\ndevice x\n",
        "edgeattn-tuning 1\nlibrary 0.1.0\nbackend cpu\n",
        "edgeattn-tuning 1\nset EDGEATTN_CPU_TILES kb=32,rb=16\n",
        "edgeattn-tuning 1\nlibrary 0.1.0\nbackend cpu\ndevice x\nfrobnicate 3\n",
        "edgeattn-tuning 1\nlibrary 0.1.0\nbackend cpu\ndevice x\nset EDGEATTN_BACKEND cuda\n",
        "edgeattn-tuning 1\nlibrary 0.1.0\nbackend cpu\ndevice x\nset EDGEATTN_OPENCL_PATH fused\n",
        "edgeattn-tuning 1\nlibrary 0.1.0\nbackend cpu\ndevice x\nset EDGEATTN_CPU_TILES\n",
        "edgeattn-tuning 1\nlibrary 0.1.0\nlibrary 0.1.0\nbackend cpu\ndevice x\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        plan_with(write_tuning(bad[i]), &got, EDGEATTN_ERR_INVALID_ARG, note);
    char longline[700];
    memset(longline, 'x', sizeof longline - 2);
    longline[sizeof longline - 2] = '\n';
    longline[sizeof longline - 1] = '\0';
    plan_with(write_tuning(longline), &got, EDGEATTN_ERR_INVALID_ARG, note);
    /* this CPU's file with a malformed value: the knob's own parser refuses it */
    snprintf(text, sizeof text, "edgeattn-tuning 1\nlibrary %s\nbackend cpu\ndevice %s\nset EDGEATTN_CPU_TILES kb=33\n",
             edgeattn_version(), bi.device);
    plan_with(write_tuning(text), &got, EDGEATTN_ERR_INVALID_ARG, note);
    plan_with("/nonexistent/edgeattn-tuning.txt", &got, EDGEATTN_ERR_INVALID_ARG, note);
    unlink(write_tuning(""));
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines reach CI logs as they happen */
    clear_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_config_default),
        cmocka_unit_test(test_params_default),
        cmocka_unit_test(test_conversion_helpers),
        cmocka_unit_test(test_plan_reports_bytes),
        cmocka_unit_test(test_create_with_exact_caller_buffer),
        cmocka_unit_test(test_two_contexts_do_not_interfere),
        cmocka_unit_test(test_backend_info),
        cmocka_unit_test(test_cpu_mask_env),
        cmocka_unit_test(test_tensor_helpers),
        cmocka_unit_test(test_tensor_helpers_huge_strides),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_kv_lengths),
        cmocka_unit_test(test_cpu_device_calls),
        cmocka_unit_test(test_exports),
        cmocka_unit_test(test_config_fit),
        cmocka_unit_test(test_tuning_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
