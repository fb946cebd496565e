/*
 * Quantised KV caches (Q8, Q4): plan bytes, decode accuracy against the double reference on the
 * unquantised inputs (uniform noise and keys shaped like a real model's: a large per-channel offset
 * and a few channels 10-20x the rest), every CPU tier and tile shape, windows, pages, forks, kv_read,
 * and the bad inputs of the format.
 *
 * Bounds (docs/QUANTISED-KV.md has the measured figures, worst of 4,600 cases): Q8 max relative
 * error <= 1e-2 and every row's cosine >= 0.9999 (head dim 32, the fewest values to average over:
 * 1.5e-2 and 0.9998). Q4 cosine >= 0.994 on uniform inputs (head dim 32: 0.99), >= 0.995 on
 * model-like ones over 512 keys or more; model-like keys over fewer keys give peaked weights that
 * 16 levels move more (measured down to 0.969): 0.95 there.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reference.h"
#include "test_common.h"


static const char *qname(edgeattn_dtype dt) { return dt == EDGEATTN_Q8 ? "q8" : "q4"; }

static size_t row_bytes(edgeattn_dtype dt, size_t D) { return dt == EDGEATTN_Q8 ? D + 4 : D / 2 + 4; }

static void base_config(edgeattn_config *c, edgeattn_dtype dt)
{
    edgeattn_config_default(c);
    c->flags = EDGEATTN_FLAG_KV_CACHE;
    c->kv_cache_dtype = dt;
    c->max_batch = 2;
    c->max_q_len = 16;
    c->max_kv_len = 1200;
    c->max_heads = 8;
    c->max_kv_heads = 2;
    c->max_head_dim = 256;
    c->num_threads = 2;
    c->backend = EDGEATTN_BACKEND_CPU;
}

static edgeattn_context *create_on(const edgeattn_config *cfg, const tc_tier *tier, const char *tiles)
{
    edgeattn_config c = *cfg;
    c.cpu_disable_mask = tier->disable;
    if (tiles)
        setenv("EDGEATTN_CPU_TILES", tiles, 1);
    edgeattn_context *ctx = tc_create_tier(&c, tier);
    if (tiles)
        unsetenv("EDGEATTN_CPU_TILES");
    return ctx;
}

/* ---------------------------------------------------------------- inputs */

/* K/V [B, Hkv, N, D] F32: uniform noise, or (model) keys with a per-channel offset in [-4, 4] and four
 * channels scaled by 10..20 (values: uniform with a smaller offset). */
static void fill_kv(tc_tensor *k, tc_tensor *v, tc_rng *r, bool model)
{
    /* a model's channel shape is a property of its (layer, head): the same for every call */
    tc_rng shape;
    const edgeattn_tensor *t = &k->t;
    const int64_t B = t->shape[0], H = t->shape[1], N = t->shape[2], D = t->shape[3];
    tc_fill_random(k, r, -1.0, 1.0);
    tc_fill_random(v, r, -1.0, 1.0);
    if (!model)
        return;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            tc_rng_init(&shape, tc_seed(), 4242u + (uint64_t)(b * H + h));
            r = &shape;
            double koff[256], kmul[256], voff[256];
            for (int64_t d = 0; d < D; d++) {
                koff[d] = tc_uniform(r, -4.0, 4.0);
                kmul[d] = 1.0;
                voff[d] = tc_uniform(r, -0.5, 0.5);
            }
            for (int i = 0; i < 4; i++)
                kmul[tc_randint(r, 0, (int)D - 1)] = tc_uniform(r, 10.0, 20.0);
            for (int64_t n = 0; n < N; n++)
                for (int64_t d = 0; d < D; d++) {
                    tc_set(t, b, h, n, d, (float)((tc_get(t, b, h, n, d) + koff[d]) * kmul[d]));
                    tc_set(&v->t, b, h, n, d, (float)(tc_get(&v->t, b, h, n, d) + voff[d]));
                }
        }
}

/* max |out - ref| / max |ref| and the smallest cosine of a row, over [B, H, Nq, D] (rows i < nq). */
static void metrics(const edgeattn_tensor *out, const double *ref, int64_t B, int64_t H, int64_t Nq, int64_t D,
                    double *rel, double *cosmin)
{
    double err = 0.0, mx = 0.0;
    *cosmin = 1.0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Nq; i++) {
                double dot = 0.0, na = 0.0, nb = 0.0;
                for (int64_t d = 0; d < D; d++) {
                    const double x = tc_get(out, b, h, i, d), y = ref[((b * H + h) * Nq + i) * D + d];
                    err = fmax(err, fabs(x - y));
                    mx = fmax(mx, fabs(y));
                    dot += x * y;
                    na += x * x;
                    nb += y * y;
                }
                const double cs = na > 0.0 && nb > 0.0 ? dot / sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
                *cosmin = fmin(*cosmin, cs);
            }
    *rel = mx > 0.0 ? err / mx : err;
}

/* ---------------------------------------------------------------- plan */

static void plan_bytes(void **state)
{
    (void)state;
    static const edgeattn_dtype dts[2] = {EDGEATTN_Q8, EDGEATTN_Q4};
    static const int dims[4] = {32, 64, 128, 256};
    for (int p = 0; p < 2; p++)
        for (int di = 0; di < 4; di++)
            for (int qi = 0; qi < 2; qi++) {
                edgeattn_config c;
                base_config(&c, EDGEATTN_F16);
                c.num_layers = 3;
                c.max_kv_len = 256;
                c.max_head_dim = dims[di];
                c.kv_page_size = p ? 64 : 0;
                edgeattn_plan_info f16, q;
                assert_int_equal(edgeattn_plan(&c, &f16, NULL), EDGEATTN_OK);
                c.kv_cache_dtype = dts[qi];
                assert_int_equal(edgeattn_plan(&c, &q, NULL), EDGEATTN_OK);
                /* every size here is a multiple of 64 bytes: no alignment padding differs */
                const size_t rows = (size_t)c.num_layers * (size_t)c.max_batch * (size_t)c.max_kv_heads * 256u;
                const size_t D = (size_t)dims[di];
                const size_t stats = (size_t)c.num_layers * (size_t)c.max_batch * (size_t)c.max_kv_heads * 4u * D * 4u;
                const size_t want = f16.kv_cache_bytes - 2u * rows * D * 2u + 2u * rows * row_bytes(dts[qi], D) + stats;
                if (q.kv_cache_bytes != want)
                    fail_msg("%s D %d paged %d: kv_cache_bytes %zu, want %zu (f16 %zu)", qname(dts[qi]), dims[di], p,
                             q.kv_cache_bytes, want, f16.kv_cache_bytes);
                assert_true(q.host_bytes < f16.host_bytes);
            }
}

/* ---------------------------------------------------------------- decode accuracy */

typedef struct acc_case {
    edgeattn_dtype dt;
    bool model;
    int B, Hkv, group, N, D, Nq, extra; /* extra: tokens appended one at a time after the prompt */
    bool lse, softcap;
} acc_case;

/* Runs one case on ctx (reset first) against the double reference; fails the test past the bounds.
 * Returns the cosine. */
static double run_case(edgeattn_context *ctx, const acc_case *a, uint64_t stream, const char *label)
{
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    const int Nt = a->N + a->extra, Hq = a->Hkv * a->group;
    tc_tensor k, v, q, out, lse;
    tc_tensor_alloc(&k, EDGEATTN_F32, a->B, a->Hkv, Nt, a->D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F32, a->B, a->Hkv, Nt, a->D, TC_BHSD, 0, 0, 0);
    fill_kv(&k, &v, &r, a->model);
    tc_tensor_alloc(&q, EDGEATTN_F32, a->B, Hq, a->Nq, a->D, TC_BHSD, 1, 1, 1);
    tc_tensor_alloc(&out, EDGEATTN_F32, a->B, Hq, a->Nq, a->D, TC_BHSD, 1, 1, 1);
    tc_tensor_alloc(&lse, EDGEATTN_F32, a->B, Hq, a->Nq, 1, TC_BHSD, 1, 1, 1);
    tc_fill_random(&q, &r, -1.0, 1.0);

    assert_int_equal(edgeattn_kv_reset(ctx, -1), EDGEATTN_OK);
    edgeattn_tensor kp = k.t, vp = v.t; /* the prompt: the first N rows */
    kp.shape[2] = vp.shape[2] = a->N;
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &kp, &vp, NULL, 1), EDGEATTN_OK);
    for (int e = 0; e < a->extra; e++) { /* then one token at a time, with the prompt's statistics */
        edgeattn_tensor k1 = k.t, v1 = v.t;
        k1.data = (float *)k.t.data + (size_t)(a->N + e) * (size_t)a->D;
        v1.data = (float *)v.t.data + (size_t)(a->N + e) * (size_t)a->D;
        k1.shape[2] = v1.shape[2] = 1;
        k1.bytes = k.t.bytes - (size_t)(a->N + e) * (size_t)a->D * 4u;
        v1.bytes = v.t.bytes - (size_t)(a->N + e) * (size_t)a->D * 4u;
        assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k1, &v1, NULL, 0), EDGEATTN_OK);
    }
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = 1;
    if (a->softcap)
        p.softcap = 8.0f;
    const size_t nref = (size_t)a->B * (size_t)Hq * (size_t)a->Nq;
    double *ref = malloc(sizeof(double) * nref * (size_t)a->D), *ref_lse = malloc(sizeof(double) * nref);
    assert_non_null(ref);
    assert_non_null(ref_lse);
    assert_int_equal(ea_ref_attention(&q.t, &k.t, &v.t, &p, ref, ref_lse), EDGEATTN_OK);
    tc_fill_canary(&out);
    tc_fill_canary(&lse);
    if (a->lse)
        p.lse = &lse.t;
    const edgeattn_status st = edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p);
    if (st != EDGEATTN_OK)
        fail_msg("%s: decode status %d: %s", label, (int)st, edgeattn_message_of(ctx));
    char why[512];
    if (!tc_check_written(&out, "out", why, sizeof why) || (a->lse && !tc_check_written(&lse, "lse", why, sizeof why)))
        fail_msg("%s: %s", label, why);
    double rel, cs;
    metrics(&out.t, ref, a->B, Hq, a->Nq, a->D, &rel, &cs);
    const bool small = a->D < 64;
    /* (Q4, uniform, D < 64: 2 of 91 random seeds gave 0.9892 and 0.9897 at D32, the rest >= 0.9908; the
     * first of them failed CI's aarch64 stage with EDGEATTN_TEST_SEED=48059620596061, every tier alike) */
    const double cos_min = a->dt == EDGEATTN_Q8      ? (small ? 0.9998 : 0.9999)
                           : !a->model               ? (small ? 0.985 : 0.994)
                           : small || a->N < 512     ? 0.95
                                                     : 0.995;
    const double rel_max = a->dt == EDGEATTN_Q8 ? (small ? 1.5e-2 : 1e-2) : INFINITY;
    if (getenv("EDGEATTN_TEST_QUANT_CASES")) /* one line a case: the sweep behind docs/QUANTISED-KV.md */
        print_message("case %s %s N%d+%d D%d G%d Nq%d cos %.6f rel %.4f\n", qname(a->dt),
                      a->model ? "model" : "uniform", a->N, a->extra, a->D, a->group, a->Nq, cs, rel);
    if (!(cs >= cos_min) || !(rel <= rel_max))
        fail_msg("%s %s %s B%d Hkv%d G%d N%d+%d D%d Nq%d%s: cosine %.6f (>= %.4f), rel %.3g (<= %.3g)", label,
                 qname(a->dt), a->model ? "model" : "uniform", a->B, a->Hkv, a->group, a->N, a->extra, a->D, a->Nq,
                 a->softcap ? " softcap" : "", cs, cos_min, rel, rel_max);
    if (a->lse) { /* the shift the kernels leave out comes back in lse: its error is a score's error,
                     a fraction of the largest score (relative to max(1, |lse|), as the float suites) */
        const double smax = tc_max_score(&q.t, &k.t, 0.0), frac = a->dt == EDGEATTN_Q8 ? 4e-3 : 6e-2;
        /* a prompt of fewer than 8 rows sets no smoothing: a score then moves by up to half a level
         * step (max |k| / qmax / 2) times scale sum |q| */
        double kmax = 0.0, qsum = 0.0;
        for (int64_t bb = 0; bb < a->B; bb++)
            for (int64_t hh = 0; hh < a->Hkv; hh++)
                for (int64_t n = 0; n < Nt; n++)
                    for (int64_t d = 0; d < a->D; d++)
                        kmax = fmax(kmax, fabs(tc_get(&k.t, bb, hh, n, d)));
        for (int64_t bb = 0; bb < a->B; bb++)
            for (int64_t hh = 0; hh < Hq; hh++)
                for (int64_t i = 0; i < a->Nq; i++) {
                    double sq = 0.0;
                    for (int64_t d = 0; d < a->D; d++)
                        sq += fabs(tc_get(&q.t, bb, hh, i, d));
                    qsum = fmax(qsum, sq);
                }
        const double raw_step = 1.1 * kmax / (a->dt == EDGEATTN_Q8 ? 127.0 : 7.5) / 2.0 * qsum / sqrt((double)a->D);
        double worst = 0.0, lim = 0.0;
        for (size_t i = 0; i < nref; i++) {
            const int64_t b = (int64_t)(i / ((size_t)Hq * (size_t)a->Nq)), h = (int64_t)(i / (size_t)a->Nq % (size_t)Hq);
            const double got = tc_get(&lse.t, b, h, (int64_t)(i % (size_t)a->Nq), 0);
            const double e = fabs(got - ref_lse[i]) / fmax(1.0, fabs(ref_lse[i]));
            if (e > worst) {
                worst = e;
                lim = (a->N < 8 ? raw_step : frac * fmax(1.0, smax)) / fmax(1.0, fabs(ref_lse[i]));
            }
        }
        if (!(worst <= lim))
            fail_msg("%s %s: lse error %.3g > %.3g (largest score %.3g)", label, qname(a->dt), worst, lim, smax);
    }
    free(ref);
    free(ref_lse);
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_tensor_free(&lse);
    return cs;
}

static void decode_accuracy(void **state)
{
    (void)state;
    tc_tier tiers[8];
    const int nt = tc_cpu_tiers(tiers, 8);
    static const int lens[] = {1, 8, 15, 16, 17, 31, 33, 64, 255, 257, 511, 513, 1100};
    static const int dims[] = {32, 64, 96, 128, 256};
    static const int nqs[] = {1, 1, 3, 8, 16};
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 900);
    uint64_t stream = 1000;
    double worst[2][2] = {{1, 1}, {1, 1}};
    for (int t = 0; t < nt; t++)
        for (int tl = 0; tl < 2; tl++) {
            const char *tiles = tl ? "kb=16,rb=8" : NULL;
            for (int qi = 0; qi < 2; qi++) {
                const edgeattn_dtype dt = qi ? EDGEATTN_Q4 : EDGEATTN_Q8;
                edgeattn_config c;
                base_config(&c, dt);
                edgeattn_context *ctx = create_on(&c, &tiers[t], tiles);
                if (!ctx)
                    continue;
                char label[400];
                snprintf(label, sizeof label, "tier %s tiles %s", tiers[t].name, tiles ? tiles : "default");
                const int ncase = tc_long() ? 24 : 8;
                for (int i = 0; i < ncase; i++) {
                    acc_case a = {.dt = dt, .model = i % 2 == 1};
                    a.B = tc_randint(&r, 1, 2);
                    a.Hkv = tc_randint(&r, 1, 2);
                    a.group = TC_PICK(&r, ((const int[]){1, 2, 4}));
                    a.N = TC_PICK(&r, lens);
                    a.D = TC_PICK(&r, dims);
                    a.extra = tc_randint(&r, 0, 3) == 0 ? tc_randint(&r, 1, 20) : 0;
                    a.Nq = TC_PICK(&r, nqs);
                    /* the accuracy bounds hold for contexts the statistics were measured on */
                    if (a.N < 64 && a.extra > 0)
                        a.extra = 0;
                    /* the reference's multiply-adds capped (seconds natively, minutes under qemu) */
                    const int64_t cap = tc_long() ? 16ll << 20 : 1ll << 20;
                    while ((int64_t)a.B * a.Hkv * a.group * a.Nq * (a.N + a.extra) * a.D > cap && a.Nq > 1)
                        a.Nq /= 2;
                    while ((int64_t)a.B * a.Hkv * a.group * a.Nq * (a.N + a.extra) * a.D > cap && a.B > 1)
                        a.B--;
                    while ((int64_t)a.B * a.Hkv * a.group * a.Nq * (a.N + a.extra) * a.D > cap && a.N > 64)
                        a.N /= 2;
                    if (a.Nq > a.N + a.extra)
                        a.Nq = a.N + a.extra;
                    a.lse = tc_randint(&r, 0, 1);
                    a.softcap = tc_randint(&r, 0, 4) == 0;
                    const double cs = run_case(ctx, &a, stream++, label);
                    worst[qi][a.model] = fmin(worst[qi][a.model], cs);
                }
                edgeattn_destroy(ctx);
            }
        }
    print_message("worst cosine: q8 uniform %.6f model %.6f; q4 uniform %.6f model %.6f\n", worst[0][0], worst[0][1],
                  worst[1][0], worst[1][1]);
}

/* ---------------------------------------------------------------- cache operations */

/* Decodes layer 0 of every sequence of a and b with the same queries; returns the smallest cosine. */
static double compare_ctx(edgeattn_context *a, edgeattn_context *b, int B, int Hq, int D, tc_rng *r)
{
    tc_tensor q, oa, ob;
    tc_tensor_alloc(&q, EDGEATTN_F32, B, Hq, 1, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&oa, EDGEATTN_F32, B, Hq, 1, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&ob, EDGEATTN_F32, B, Hq, 1, D, TC_BHSD, 0, 0, 0);
    tc_fill_random(&q, r, -1.0, 1.0);
    tc_fill_canary(&oa);
    tc_fill_canary(&ob);
    assert_int_equal(edgeattn_decode(a, 0, NULL, NULL, &q.t, &oa.t, NULL), EDGEATTN_OK);
    assert_int_equal(edgeattn_decode(b, 0, NULL, NULL, &q.t, &ob.t, NULL), EDGEATTN_OK);
    double *ref = malloc(sizeof(double) * (size_t)B * (size_t)Hq * (size_t)D);
    assert_non_null(ref);
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < Hq; h++)
            for (int d = 0; d < D; d++)
                ref[((size_t)bb * (size_t)Hq + (size_t)h) * (size_t)D + (size_t)d] = tc_get(&ob.t, bb, h, 0, d);
    double rel, cs;
    metrics(&oa.t, ref, B, Hq, 1, D, &rel, &cs);
    free(ref);
    tc_tensor_free(&q);
    tc_tensor_free(&oa);
    tc_tensor_free(&ob);
    return cs;
}

/* Appends n random tokens of head dim D (Hkv heads) to seq of both contexts. */
static void append_both(edgeattn_context *a, edgeattn_context *b, int32_t seq, int n, int Hkv, int D, tc_rng *r,
                        bool model)
{
    tc_tensor k, v;
    tc_tensor_alloc(&k, EDGEATTN_F16, 1, Hkv, n, D, TC_BSHD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F16, 1, Hkv, n, D, TC_BSHD, 0, 0, 0);
    fill_kv(&k, &v, r, model);
    assert_int_equal(edgeattn_kv_append(a, 0, &seq, &k.t, &v.t, NULL, 0), EDGEATTN_OK);
    assert_int_equal(edgeattn_kv_append(b, 0, &seq, &k.t, &v.t, NULL, 0), EDGEATTN_OK);
    tc_tensor_free(&k);
    tc_tensor_free(&v);
}

/* Windows, pages, forks, truncation and RoPE: a Q8 context against an F32 one fed the same calls.
 * The model-like keys' offset is a constant vector before RoPE; rotated, it turns with the position
 * and the smoothing no longer takes it out (measured: cosine 0.9996-0.9998), so the RoPE variant
 * runs on uniform inputs. */
static void cache_ops(void **state)
{
    (void)state;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 77);
    const int Hkv = 2, Hq = 4, D = 64;
    for (int variant = 0; variant < 3; variant++) {
        edgeattn_config c;
        base_config(&c, EDGEATTN_Q8);
        c.max_head_dim = D;
        c.max_heads = Hq;
        c.kv_cache_window = variant == 0 ? 96 : 0;
        c.kv_page_size = variant == 1 ? 16 : 0;
        if (variant == 2) {
            c.rope.style = EDGEATTN_ROPE_HALF;
            c.rope.theta = 10000.0f;
        }
        const bool model = variant != 2;
        edgeattn_context *q8 = tc_create(&c);
        c.kv_cache_dtype = EDGEATTN_F32;
        edgeattn_context *f32 = tc_create(&c);
        append_both(q8, f32, 0, 80, Hkv, D, &r, model);
        for (int i = 0; i < 5; i++)
            append_both(q8, f32, 0, tc_randint(&r, 1, 40), Hkv, D, &r, model);
        assert_int_equal(edgeattn_kv_fork(q8, 0, 1), EDGEATTN_OK);
        assert_int_equal(edgeattn_kv_fork(f32, 0, 1), EDGEATTN_OK);
        append_both(q8, f32, 1, 7, Hkv, D, &r, model);
        append_both(q8, f32, 0, 3, Hkv, D, &r, model);
        double cs = compare_ctx(q8, f32, 2, Hq, D, &r);
        if (!(cs >= 0.9999))
            fail_msg("variant %d (window/pages/rope): cosine %.6f after fork", variant, cs);
        if (variant != 0) { /* truncate back into the prompt, then grow again */
            assert_int_equal(edgeattn_kv_truncate(q8, 1, 50), EDGEATTN_OK);
            assert_int_equal(edgeattn_kv_truncate(f32, 1, 50), EDGEATTN_OK);
            append_both(q8, f32, 1, 9, Hkv, D, &r, model);
            cs = compare_ctx(q8, f32, 2, Hq, D, &r);
            if (!(cs >= 0.9999))
                fail_msg("variant %d: cosine %.6f after truncate", variant, cs);
        }
        /* a reset sequence takes new statistics from its next append */
        assert_int_equal(edgeattn_kv_reset(q8, 1), EDGEATTN_OK);
        assert_int_equal(edgeattn_kv_reset(f32, 1), EDGEATTN_OK);
        append_both(q8, f32, 1, 70, Hkv, D, &r, model);
        cs = compare_ctx(q8, f32, 2, Hq, D, &r);
        if (!(cs >= 0.9999))
            fail_msg("variant %d: cosine %.6f after reset", variant, cs);
        /* kv_read gives the stored values back within the format's rounding */
        int64_t total;
        int32_t held;
        assert_int_equal(edgeattn_kv_length(q8, 0, 0, &total, &held), EDGEATTN_OK);
        tc_tensor ka, va, kb, vb;
        tc_tensor_alloc(&ka, EDGEATTN_F32, 1, Hkv, held, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&va, EDGEATTN_F32, 1, Hkv, held, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&kb, EDGEATTN_F32, 1, Hkv, held, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&vb, EDGEATTN_F32, 1, Hkv, held, D, TC_BHSD, 0, 0, 0);
        assert_int_equal(edgeattn_kv_read(q8, 0, 0, total - held, &ka.t, &va.t), EDGEATTN_OK);
        assert_int_equal(edgeattn_kv_read(f32, 0, 0, total - held, &kb.t, &vb.t), EDGEATTN_OK);
        for (int t = 0; t < 2; t++) {
            const edgeattn_tensor *x = t ? &va.t : &ka.t, *y = t ? &vb.t : &kb.t;
            double err = 0.0, mx = 0.0;
            for (int h = 0; h < Hkv; h++)
                for (int n = 0; n < held; n++)
                    for (int d = 0; d < D; d++) {
                        err = fmax(err, fabs((double)tc_get(x, 0, h, n, d) - tc_get(y, 0, h, n, d)));
                        mx = fmax(mx, fabs((double)tc_get(y, 0, h, n, d)));
                    }
            if (!(err <= 1e-2 * mx))
                fail_msg("variant %d: kv_read %s max error %.3g of max %.3g", variant, t ? "v" : "k", err, mx);
        }
        tc_tensor_free(&ka);
        tc_tensor_free(&va);
        tc_tensor_free(&kb);
        tc_tensor_free(&vb);
        edgeattn_destroy(q8);
        edgeattn_destroy(f32);
    }
}

/* ---------------------------------------------------------------- bad input */

static void bad_input(void **state)
{
    (void)state;
    edgeattn_config c;
    edgeattn_plan_info info;
    edgeattn_message msg;
    base_config(&c, EDGEATTN_Q4);
    c.max_head_dim = 80; /* not a multiple of 32 */
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_ERR_HEAD_DIM);
    assert_non_null(strstr(msg.text, "multiple of 32"));
    c.max_head_dim = 64;
    c.backend = EDGEATTN_BACKEND_CUDA; /* a GPU backend refuses clearly (or is absent here) */
    const edgeattn_status gst = edgeattn_plan(&c, &info, &msg);
    assert_true(gst == EDGEATTN_ERR_UNSUPPORTED || gst == EDGEATTN_ERR_BACKEND_UNAVAILABLE);
    c.backend = EDGEATTN_BACKEND_CPU;
    c.max_q_len = 4;
    edgeattn_context *ctx = tc_create(&c);

    tc_rng r;
    tc_rng_init(&r, tc_seed(), 5);
    /* a head dim the blocks do not divide */
    tc_tensor k, v;
    tc_tensor_alloc(&k, EDGEATTN_F32, 1, 2, 20, 40, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F32, 1, 2, 20, 40, TC_BHSD, 0, 0, 0);
    tc_fill_random(&k, &r, -1, 1);
    tc_fill_random(&v, &r, -1, 1);
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, NULL, 0), EDGEATTN_ERR_HEAD_DIM);
    tc_tensor_free(&k);
    tc_tensor_free(&v);

    /* Q8/Q4 are not tensor dtypes */
    tc_tensor_alloc(&k, EDGEATTN_F32, 1, 2, 20, 64, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F32, 1, 2, 20, 64, TC_BHSD, 0, 0, 0);
    tc_fill_random(&k, &r, -1, 1);
    tc_fill_random(&v, &r, -1, 1);
    edgeattn_tensor bad = k.t;
    bad.dtype = EDGEATTN_Q8;
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &bad, &v.t, NULL, 0), EDGEATTN_ERR_DTYPE);

    /* a row far outside the range of the sequence's first append is refused, the cache untouched */
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, NULL, 0), EDGEATTN_OK);
    tc_tensor q, o1, o2;
    tc_tensor_alloc(&q, EDGEATTN_F32, 1, 8, 1, 64, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&o1, EDGEATTN_F32, 1, 8, 1, 64, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&o2, EDGEATTN_F32, 1, 8, 1, 64, TC_BHSD, 0, 0, 0);
    tc_fill_random(&q, &r, -1, 1);
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &o1.t, NULL), EDGEATTN_OK);
    edgeattn_tensor k1 = k.t, v1 = v.t;
    k1.shape[2] = v1.shape[2] = 1;
    tc_set(&k1, 0, 1, 0, 7, 3e38f);
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k1, &v1, NULL, 0), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(edgeattn_message_of(ctx), "range"));
    int64_t total;
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, &total, NULL), EDGEATTN_OK);
    assert_int_equal(total, 20);
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &o2.t, NULL), EDGEATTN_OK);
    assert_memory_equal(o1.alloc, o2.alloc, o1.alloc_elems * 4);
    tc_tensor_free(&q);
    tc_tensor_free(&o1);
    tc_tensor_free(&o2);
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    edgeattn_destroy(ctx);

    /* config_fit falls to the 8-bit cache when F16 does not hold the context */
    edgeattn_fit_request fr;
    edgeattn_fit_default(&fr);
    fr.num_layers = 4;
    fr.num_heads = 8;
    fr.num_kv_heads = 2;
    fr.head_dim = 128;
    fr.max_context = 4096;
    fr.min_context = 1;
    fr.kv_dtypes = (1u << EDGEATTN_F16) | (1u << EDGEATTN_Q8);
    fr.backend = EDGEATTN_BACKEND_CPU;
    fr.num_threads = 2; /* (per-thread scratch counts in the budget: the same on every machine) */
    edgeattn_config fc;
    const uint64_t f16_bytes = 4ull * 2 * 2 * 4096 * 128 * 2; /* K and V of every layer in F16 */
    assert_int_equal(edgeattn_config_fit(&fr, f16_bytes * 7 / 10, &fc, NULL, &msg), EDGEATTN_OK);
    assert_int_equal(fc.kv_cache_dtype, EDGEATTN_Q8);
    assert_int_equal(fc.max_kv_len, 4096);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    tc_clear_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plan_bytes),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(cache_ops),
        cmocka_unit_test(decode_accuracy),
    };
    return cmocka_run_group_tests_name("quant", tests, NULL, NULL);
}
