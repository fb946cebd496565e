/*
 * Numerics on every CPU tier: inputs scaled by 100 and by 0.01, large and saturating softcaps, fully
 * masked rows (KV length 0, a window that excludes every key, causal rows before the first key, a
 * bias of -inf), huge negative biases, and no NaN/Inf anywhere in the outputs.
 *
 * Metric as in test_parity: max|out - ref| / max|ref| per case against the double reference on the
 * same stored inputs; fully masked rows must be exactly 0 with lse -inf. Tolerances: F16 2e-3, BF16
 * 1e-2; F32 1e-5 while the scores are of order 1; whichever is larger of these and the score bound
 * below. Inputs scaled by 100 (or a large scale) make the
 * scores large: an FP32 score s carries a rounding error of about |s| * 2^-24 (rounding q * scale
 * alone does that), which the softmax turns into a relative weight error of the same size. So the F32
 * tolerance of a case is max(1e-5, 4 * 2^-24 * max|s|) (a few roundings on the way to a score),
 * max|s| measured on the case's inputs (x100, D = 64: about 1e4, tolerance about 2.4e-3; order-1
 * inputs keep 1e-5).
 */
#include "test_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reference.h"

#define MAX_CTX 8

static edgeattn_context *g_ctx[MAX_CTX];
static tc_tier g_tiers[MAX_CTX];
static int g_n;

static int setup(void **state)
{
    (void)state;
    tc_clear_env();
    (void)tc_seed();
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.max_batch = TC_MAX_B;
    cfg.max_q_len = 300;
    cfg.max_kv_len = 600;
    cfg.max_heads = 16;
    cfg.max_kv_heads = 16;
    cfg.max_head_dim = 256;
    cfg.num_threads = 2;
    g_n = tc_cpu_tiers(g_tiers, MAX_CTX);
    for (int i = 0; i < g_n; i++) {
        edgeattn_config c = cfg;
        c.cpu_disable_mask = g_tiers[i].disable;
        g_ctx[i] = tc_create(&c); /* tier names are checked by test_parity */
        edgeattn_backend_info info;
        assert_int_equal(edgeattn_get_backend_info(g_ctx[i], &info), EDGEATTN_OK);
        snprintf(g_tiers[i].name, sizeof g_tiers[i].name, "%s", info.tier);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < g_n; i++)
        edgeattn_destroy(g_ctx[i]);
    g_n = 0;
    return 0;
}

/* Tolerance for a case: the precision table, widened by the size of the largest score (the FP32
 * arithmetic error on large scores hits F16/BF16 storage too: their rounding is in the reference). */
static double tol_for(const tc_attn_data *d)
{
    const tc_attn_case *c = &d->c;
    return fmax(tc_tolerance(c->qdt, c->kvdt, c->odt), tc_tolerance_f32_scores(tc_max_score(&d->q.t, &d->k.t, c->scale)));
}

static void run_cases(const char *group, tc_attn_case *cases, int n, uint64_t stream_base)
{
    const uint64_t seed = tc_seed();
    int failures = 0;
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        tc_attn_data d;
        tc_attn_prepare(&d, &cases[i], seed, stream_base + (uint64_t)i);
        const double tol = tol_for(&d);
        for (int k = 0; k < g_n; k++) {
            const tc_result res = tc_attn_run(g_ctx[k], &d, tol);
            if (res.ok && res.err / tol > worst)
                worst = res.err / tol;
            if (!res.ok) {
                char desc[512];
                tc_case_describe(&cases[i], desc, sizeof desc);
                print_error("FAIL %s case %d on tier %s\n     %s\n     %s\n     seed %llu (EDGEATTN_TEST_SEED=%llu)\n",
                            group, i, g_tiers[k].name, desc, res.why, (unsigned long long)seed,
                            (unsigned long long)seed);
                failures++;
            }
        }
        tc_attn_free(&d);
    }
    print_message("%s: %d case(s) x %d tier(s), worst err/tolerance %.3f\n", group, n, g_n, worst);
    if (failures)
        fail_msg("%s: %d failing run(s), see above", group, failures);
}

static const edgeattn_dtype dtype_sets[][3] = {
    {EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32},
    {EDGEATTN_F16, EDGEATTN_F16, EDGEATTN_F16},
    {EDGEATTN_BF16, EDGEATTN_BF16, EDGEATTN_BF16},
    {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_F32},
};
#define N_DTYPE_SETS ((int)(sizeof dtype_sets / sizeof dtype_sets[0]))

static void set_dtypes(tc_attn_case *c, int set)
{
    c->qdt = dtype_sets[set][0];
    c->kvdt = dtype_sets[set][1];
    c->odt = dtype_sets[set][2];
}

/* Shapes that cover the packed path (many rows) and the rows path (few rows), causal or not. */
static const int shapes[][6] = {
    /* B, Hq, Hkv, Nq, Nkv, D */
    {1, 2, 1, 65, 129, 64},
    {2, 4, 4, 1, 300, 128},
    {1, 8, 2, 17, 33, 32},
    {1, 1, 1, 200, 200, 96},
    {2, 2, 1, 3, 257, 256},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static tc_attn_case shape_case(int s)
{
    return tc_case(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], shapes[s][5]);
}

static void scaled(double in_scale, const char *group, uint64_t stream)
{
    static tc_attn_case cases[64];
    int n = 0;
    for (int set = 0; set < N_DTYPE_SETS; set++)
        for (int s = 0; s < N_SHAPES; s++) {
            tc_attn_case c = shape_case(s);
            set_dtypes(&c, set);
            c.in_scale = in_scale;
            c.causal = s & 1;
            c.lse = 1;
            c.pad = s % 3;
            cases[n++] = c;
        }
    run_cases(group, cases, n, stream);
}

static void test_inputs_times_100(void **state)
{
    (void)state;
    scaled(100.0, "inputs x100", 100 << 10);
}

static void test_inputs_times_0_01(void **state)
{
    (void)state;
    scaled(0.01, "inputs x0.01", 101 << 10);
}

/* Softcap far above the scores (the identity), at the scores' size, and far below them (saturated). */
static void test_softcap(void **state)
{
    (void)state;
    static tc_attn_case cases[64];
    int n = 0;
    static const float caps[] = {1e20f, 1e4f, 50.0f, 5.0f, 0.5f};
    static const double scales[] = {1.0, 1.0, 100.0, 10.0, 1.0};
    for (int i = 0; i < 5; i++)
        for (int s = 0; s < N_SHAPES; s += 2) {
            tc_attn_case c = shape_case(s);
            c.softcap = caps[i];
            c.in_scale = scales[i];
            c.lse = 1;
            c.causal = i & 1;
            set_dtypes(&c, (i + s) % N_DTYPE_SETS);
            cases[n++] = c;
        }
    run_cases("softcap", cases, n, 102 << 10);
}

/* Rows that see no key at all: exact zeros, lse -inf, nothing else disturbed. */
static void test_fully_masked_rows(void **state)
{
    (void)state;
    static tc_attn_case cases[64];
    int n = 0;
    for (int set = 0; set < N_DTYPE_SETS; set++) {
        /* a sequence with KV length 0 between two normal ones */
        tc_attn_case a = tc_case(3, 4, 2, 9, 40, 64);
        a.use_kv_lens = 1;
        a.kv_lens[0] = 40, a.kv_lens[1] = 0, a.kv_lens[2] = 5;
        a.lse = 1;
        a.causal = set & 1;
        set_dtypes(&a, set);
        cases[n++] = a;
        /* every sequence empty: the whole output is zeros */
        tc_attn_case e = tc_case(2, 2, 1, 17, 33, 32);
        e.use_kv_lens = 1;
        e.kv_lens[0] = e.kv_lens[1] = 0;
        e.lse = 1;
        set_dtypes(&e, set);
        cases[n++] = e;
        /* a window that excludes every key for the first rows (query positions before the keys) */
        tc_attn_case w = tc_case(1, 2, 2, 48, 16, 64);
        w.wl = 0, w.wr = 5;
        w.lse = 1;
        set_dtypes(&w, set);
        cases[n++] = w;
        /* a short KV length and a narrow window: rows whose position is before key 0 see nothing */
        tc_attn_case w2 = tc_case(1, 2, 1, 20, 70, 32);
        w2.use_kv_lens = 1;
        w2.kv_lens[0] = 10;
        w2.wl = 2, w2.wr = 0; /* with Nq > kv_len the early rows sit before key 0 */
        w2.lse = 1;
        set_dtypes(&w2, set);
        cases[n++] = w2;
        /* causal with more queries than keys: rows before the first key see nothing */
        tc_attn_case c = tc_case(2, 8, 1, 70, 9, 128);
        c.causal = 1;
        c.lse = 1;
        set_dtypes(&c, set);
        cases[n++] = c;
        /* bias -inf over whole rows / over some entries / -1e30 over whole rows (finite: uniform) */
        for (int content = TC_BIAS_NEGINF_ROWS; content <= TC_BIAS_HUGE_NEG_ROWS; content++) {
            tc_attn_case b = tc_case(2, 4, 2, 19, 67, 64);
            b.bias_mode = content == TC_BIAS_NEGINF_SOME ? TC_BIAS_FULL : TC_BIAS_BCAST_B;
            b.bias_content = content;
            b.lse = 1;
            b.causal = content == TC_BIAS_NEGINF_SOME;
            b.pad = 2;
            set_dtypes(&b, set);
            cases[n++] = b;
        }
        /* -1e30 over whole rows with a long KV: many KV tiles and splits, and the rows must stay uniform
         * (merging splits by m + log l alone loses l when m is -1e30) */
        for (int nq = 1; nq <= 3; nq += 2) {
            tc_attn_case h = tc_case(2, 4, 2, nq, 590 - 15 * nq, nq == 1 ? 128 : 64); /* plan: KV 600 */
            h.bias_mode = TC_BIAS_BCAST_B;
            h.bias_content = TC_BIAS_HUGE_NEG_ROWS;
            h.lse = 1;
            set_dtypes(&h, set);
            cases[n++] = h;
        }
        /* -inf bias over whole rows on the rows path (one query row per head) */
        tc_attn_case r = tc_case(3, 4, 4, 1, 100, 64);
        r.bias_mode = TC_BIAS_FULL;
        r.bias_content = TC_BIAS_NEGINF_ROWS;
        r.lse = 1;
        set_dtypes(&r, set);
        cases[n++] = r;
    }
    run_cases("fully masked rows", cases, n, 103 << 10);
}

/* Scores far apart (one key dominates) and scores all equal (uniform weights). */
static void test_one_hot_and_uniform(void **state)
{
    (void)state;
    static tc_attn_case cases[16];
    int n = 0;
    for (int set = 0; set < N_DTYPE_SETS; set++) {
        tc_attn_case c = tc_case(1, 2, 1, 33, 129, 64);
        c.scale = 50.0f; /* scores of order 100: near one-hot */
        c.lse = 1;
        set_dtypes(&c, set);
        cases[n++] = c;
        tc_attn_case u = tc_case(1, 2, 1, 33, 129, 64);
        u.scale = 1e-6f; /* scores ~ 0: the mean of V */
        u.lse = 1;
        set_dtypes(&u, set);
        cases[n++] = u;
    }
    run_cases("one-hot/uniform", cases, n, 104 << 10);
}

/* Decode over a cache filled with inputs scaled by 100 and 0.01, in every cache dtype. */
static void test_decode_scaled(void **state)
{
    (void)state;
    const uint64_t seed = tc_seed();
    static const edgeattn_dtype cache_dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    static const double in_scales[] = {100.0, 0.01};
    int failures = 0;
    for (int ci = 0; ci < 3; ci++)
        for (int si = 0; si < 2; si++) {
            const int B = 2, Hq = 8, Hkv = 2, D = 128, N = 300, Nq = 2;
            edgeattn_config cfg;
            edgeattn_config_default(&cfg);
            cfg.flags = EDGEATTN_FLAG_KV_CACHE;
            cfg.max_batch = B;
            cfg.max_q_len = 4;
            cfg.max_kv_len = N;
            cfg.max_heads = Hq;
            cfg.max_kv_heads = Hkv;
            cfg.max_head_dim = D;
            cfg.kv_cache_dtype = cache_dts[ci];
            cfg.num_threads = 2;
            tc_rng r;
            tc_rng_init(&r, seed, 105000 + (uint64_t)(ci * 2 + si));
            const double s = in_scales[si];
            tc_tensor k, v, q, out, lse, rk, rv;
            tc_tensor_alloc(&k, EDGEATTN_F32, B, Hkv, N, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&v, EDGEATTN_F32, B, Hkv, N, D, TC_BSHD, 0, 0, 0);
            tc_tensor_alloc(&rk, EDGEATTN_F32, B, Hkv, N, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&rv, EDGEATTN_F32, B, Hkv, N, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&q, EDGEATTN_F32, B, Hq, Nq, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&out, EDGEATTN_F32, B, Hq, Nq, D, TC_BHSD, 3, 3, 3);
            tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 0, 0, 0);
            tc_fill_random(&k, &r, -s, s);
            tc_fill_random(&v, &r, -s, s);
            tc_fill_random(&q, &r, -s, s);
            for (int b = 0; b < B; b++)
                for (int h = 0; h < Hkv; h++)
                    for (int j = 0; j < N; j++)
                        for (int d = 0; d < D; d++) {
                            tc_set(&rk.t, b, h, j, d, tc_round(cache_dts[ci], tc_get(&k.t, b, h, j, d)));
                            tc_set(&rv.t, b, h, j, d, tc_round(cache_dts[ci], tc_get(&v.t, b, h, j, d)));
                        }
            const int32_t n_new[2] = {N, N - 77};
            edgeattn_params p;
            edgeattn_params_default(&p);
            p.causal = 1;
            edgeattn_params rp = p;
            rp.kv_lens = n_new;
            double *ref = malloc(sizeof(double) * (size_t)(B * Hq * Nq * D));
            double *ref_lse = malloc(sizeof(double) * (size_t)(B * Hq * Nq));
            assert_non_null(ref);
            assert_non_null(ref_lse);
            assert_int_equal(ea_ref_attention(&q.t, &rk.t, &rv.t, &rp, ref, ref_lse), EDGEATTN_OK);
            const double tol = fmax(tc_tolerance(cache_dts[ci], EDGEATTN_F32, EDGEATTN_F32),
                                    tc_tolerance_f32_scores(tc_max_score(&q.t, &rk.t, 0.0)));
            for (int t = 0; t < g_n; t++) {
                edgeattn_config c = cfg;
                c.cpu_disable_mask = g_tiers[t].disable;
                edgeattn_context *ctx = tc_create(&c);
                assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, n_new, 1), EDGEATTN_OK);
                tc_result res;
                tc_decode_compare(&res, ctx, &q.t, &out, &lse, &p, ref, ref_lse, B, Hq, Nq, D, tol);
                if (!res.ok) {
                    print_error("FAIL decode cache=%s inputs x%g B=%d Hq=%d Hkv=%d D=%d held={%d,%d} Nq=%d causal on "
                                "tier %s\n     %s\n     seed %llu\n",
                                tc_dtype_name(cache_dts[ci]), s, B, Hq, Hkv, D, (int)n_new[0], (int)n_new[1], Nq,
                                g_tiers[t].name, res.why, (unsigned long long)seed);
                    failures++;
                }
                edgeattn_destroy(ctx);
            }
            free(ref);
            free(ref_lse);
            tc_tensor_free(&k);
            tc_tensor_free(&v);
            tc_tensor_free(&rk);
            tc_tensor_free(&rv);
            tc_tensor_free(&q);
            tc_tensor_free(&out);
            tc_tensor_free(&lse);
        }
    if (failures)
        fail_msg("decode scaled: %d failing run(s), see above", failures);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines reach CI logs as they happen */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inputs_times_100),
        cmocka_unit_test(test_inputs_times_0_01),
        cmocka_unit_test(test_softcap),
        cmocka_unit_test(test_fully_masked_rows),
        cmocka_unit_test(test_one_hot_and_uniform),
        cmocka_unit_test(test_decode_scaled),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
