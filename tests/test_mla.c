/*
 * Latent attention (issue 14, MLA): separate Q·K and V head dims, and the latent KV cache.
 *
 * Every CPU tier against the double reference (core/reference.c): attention with D_v != D (prefill
 * shapes such as 192 / 128, the decode shape 576 / 512, odd multiples of 8, D_v > D), query heads per
 * KV head from 1 to 128 (the decode's MQA group becomes the rows of one tile), key counts around the
 * 16-key steps and the kb tiles, every dtype, causal or not; decode over a latent cache (contiguous,
 * paged, with sinks), its kv_read, fork and truncate; the plan's bytes; then the refusals, each with
 * nothing written.
 */
#include "test_common.h"

#include "../core/reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const edgeattn_dtype k_dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};

static edgeattn_config mla_config(int D, int Dv, int max_q, int max_kv)
{
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.max_batch = 2;
    c.max_q_len = max_q;
    c.max_kv_len = max_kv;
    c.max_heads = 128;
    c.max_kv_heads = 2;
    c.max_head_dim = D;
    c.max_head_dim_v = Dv;
    c.num_threads = 2;
    c.backend = EDGEATTN_BACKEND_CPU;
    return c;
}

/* The dense bound of the lowest precision involved; F32 allows for the scores' size (test_common.h). */
static double tolerance(edgeattn_dtype a, edgeattn_dtype b, edgeattn_dtype c, const edgeattn_tensor *q,
                        const edgeattn_tensor *k)
{
    const double tol = tc_tolerance(a, b, c);
    return tol < 1e-4 ? fmax(tol, tc_tolerance_f32_scores(tc_max_score(q, k, 0.0))) : tol;
}

/* ---------------------------------------------------------------- attention with D_v != D */

static void mla_attention_parity(void **state)
{
    (void)state;
    tc_clear_env();
    tc_tier tiers[8];
    const int ntier = tc_cpu_tiers(tiers, 8);
    static const int dims[][2] = {{192, 128}, {576, 512}, {64, 32}, {40, 24}, {32, 64}, {136, 128}, {576, 8}, {72, 72}};
    static const int hs[][2] = {{1, 1}, {4, 1}, {16, 1}, {128, 1}, {8, 2}, {2, 2}};
    static const int nqs[] = {1, 2, 7, 8, 9, 17, 64};
    static const int nkvs[] = {1, 15, 16, 17, 64, 255, 256, 257, 513};
    const int per_tier = tc_long() ? 80 : 18;
    double worst = 0.0;
    for (int ti = 0; ti < ntier; ti++) {
        edgeattn_config cfg = mla_config(576, 576, 64, 600);
        cfg.num_threads = 1 + ti % 2;
        edgeattn_context *ctx_tiles = tc_create_tier(&cfg, &tiers[ti]);
        /* and the smallest tiles (kb 16, rb 8): every key tile, panel and row-block boundary shows up */
        setenv("EDGEATTN_CPU_TILES", "kb=16,rb=8", 1);
        edgeattn_context *ctx_small = tc_create_tier(&cfg, &tiers[ti]);
        unsetenv("EDGEATTN_CPU_TILES");
        for (int n = 0; n < per_tier; n++) {
            edgeattn_context *ctx = n % 3 == 2 ? ctx_small : ctx_tiles;
            tc_rng r;
            tc_rng_init(&r, tc_seed(), (uint64_t)(300 + ti * 1000 + n));
            const int di = n < 8 ? n : tc_randint(&r, 0, 7), hi = tc_randint(&r, 0, 5);
            const int D = dims[di][0], Dv = dims[di][1], Hq = hs[hi][0], Hkv = hs[hi][1];
            const int B = tc_randint(&r, 1, 2);
            int Nq = TC_PICK(&r, nqs), Nkv = TC_PICK(&r, nkvs);
            /* the reference's cost: B Hq Nq Nkv (D + Dv) */
            while ((double)B * Hq * Nq * Nkv * (D + Dv) > 1.5e7 && Nq > 1)
                Nq = (Nq + 1) / 2;
            while ((double)B * Hq * Nq * Nkv * (D + Dv) > 1.5e7 && Nkv > 17)
                Nkv = Nkv / 2 + 1;
            const edgeattn_dtype qdt = TC_PICK(&r, k_dts), kvdt = TC_PICK(&r, k_dts), odt = TC_PICK(&r, k_dts);
            const int pad = tc_randint(&r, 0, 1) * 8;
            tc_tensor q, k, v, out, lse;
            tc_tensor_alloc(&q, qdt, B, Hq, Nq, D, tc_randint(&r, 0, 1), pad, pad, pad);
            tc_tensor_alloc(&k, kvdt, B, Hkv, Nkv, D, tc_randint(&r, 0, 1), pad, pad, pad);
            tc_tensor_alloc(&v, kvdt, B, Hkv, Nkv, Dv, tc_randint(&r, 0, 1), pad, pad, pad);
            tc_tensor_alloc(&out, odt, B, Hq, Nq, Dv, tc_randint(&r, 0, 1), pad, pad, pad);
            tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 0, 0, 0);
            tc_fill_random(&q, &r, -1.0, 1.0);
            tc_fill_random(&k, &r, -1.0, 1.0);
            tc_fill_random(&v, &r, -1.0, 1.0);
            tc_fill_canary(&out);
            tc_fill_canary(&lse);
            edgeattn_params p;
            edgeattn_params_default(&p);
            p.causal = tc_randint(&r, 0, 1);
            p.lse = &lse.t;
            double *ref = malloc(sizeof(double) * (size_t)B * Hq * Nq * Dv);
            double *ref_lse = malloc(sizeof(double) * (size_t)B * Hq * Nq);
            assert_non_null(ref);
            assert_non_null(ref_lse);
            assert_int_equal(ea_ref_attention(&q.t, &k.t, &v.t, &p, ref, ref_lse), EDGEATTN_OK);
            const edgeattn_status st = edgeattn_attention(ctx, &q.t, &k.t, &v.t, &out.t, &p);
            if (st != EDGEATTN_OK)
                fail_msg("%s%s: attention D %d Dv %d: %s", tiers[ti].name, ctx == ctx_small ? " (kb 16, rb 8)" : "",
                         D, Dv, edgeattn_message_of(ctx));
            tc_result res;
            const double tol = tolerance(qdt, kvdt, odt, &q.t, &k.t);
            tc_compare(&res, &out, &lse, ref, ref_lse, B, Hq, Nq, Dv, tol);
            if (!res.ok)
                fail_msg("%s%s: B %d Hq %d Hkv %d Nq %d Nkv %d D %d Dv %d q %s kv %s out %s causal %d: %s",
                         tiers[ti].name, ctx == ctx_small ? " (kb 16, rb 8)" : "", B, Hq, Hkv, Nq, Nkv, D, Dv, tc_dtype_name(qdt), tc_dtype_name(kvdt),
                         tc_dtype_name(odt), p.causal, res.why);
            worst = fmax(worst, res.err / tol);
            free(ref);
            free(ref_lse);
            tc_tensor_free(&q);
            tc_tensor_free(&k);
            tc_tensor_free(&v);
            tc_tensor_free(&out);
            tc_tensor_free(&lse);
        }
        edgeattn_destroy(ctx_tiles);
        edgeattn_destroy(ctx_small);
    }
    print_message("mla attention: %d tiers, worst error %.3f of its bound\n", ntier, worst);
}

/* ---------------------------------------------------------------- decode over a latent cache */

/* A view of rows [n0, n0 + n) of t (any layout). */
static edgeattn_tensor rows_view(const edgeattn_tensor *t, int64_t n0, int64_t n)
{
    edgeattn_tensor v = *t;
    const size_t off = (size_t)(n0 * t->stride[2]) * tc_dtype_size(t->dtype);
    v.data = (char *)t->data + off;
    v.bytes = t->bytes - off;
    v.shape[2] = n;
    return v;
}

/* A view of batch row b of t. */
static edgeattn_tensor batch_view(const edgeattn_tensor *t, int64_t b)
{
    edgeattn_tensor v = *t;
    const size_t off = (size_t)(b * t->stride[0]) * tc_dtype_size(t->dtype);
    v.data = (char *)t->data + off;
    v.bytes = t->bytes - off;
    v.shape[0] = 1;
    return v;
}

/* Decodes q over (layer 0, seq_ids) into a canary-filled out and compares with the latent reference
 * over lat (the cached vectors, [B, Hkv, N, D]). */
static void decode_check(edgeattn_context *ctx, const char *what, const int32_t *seq_ids, const edgeattn_tensor *q,
                         const edgeattn_tensor *lat, int Dv, edgeattn_dtype odt, edgeattn_dtype cdt)
{
    const int64_t B = q->shape[0], Hq = q->shape[1], Nq = q->shape[2];
    tc_tensor out, lse;
    tc_tensor_alloc(&out, odt, B, Hq, Nq, Dv, TC_BSHD, 8, 8, 8);
    tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 0, 0, 0);
    tc_fill_canary(&out);
    tc_fill_canary(&lse);
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = Nq > 1;
    p.lse = &lse.t;
    double *ref = malloc(sizeof(double) * (size_t)(B * Hq * Nq * Dv)), *ref_lse = malloc(sizeof(double) * (size_t)(B * Hq * Nq));
    assert_non_null(ref);
    assert_non_null(ref_lse);
    assert_int_equal(ea_ref_latent_attention(q, lat, Dv, &p, ref, ref_lse), EDGEATTN_OK);
    const edgeattn_status st = edgeattn_decode(ctx, 0, seq_ids, NULL, q, &out.t, &p);
    if (st != EDGEATTN_OK)
        fail_msg("%s: decode: %s", what, edgeattn_message_of(ctx));
    tc_result res;
    tc_compare(&res, &out, &lse, ref, ref_lse, B, Hq, Nq, Dv, tolerance(q->dtype, cdt, odt, q, lat));
    if (!res.ok)
        fail_msg("%s: %s", what, res.why);
    free(ref);
    free(ref_lse);
    tc_tensor_free(&out);
    tc_tensor_free(&lse);
}

static void mla_decode_latent(void **state)
{
    (void)state;
    tc_clear_env();
    tc_tier tiers[8];
    const int ntier = tc_cpu_tiers(tiers, 8);
    static const int dims[][2] = {{576, 512}, {192, 128}, {64, 32}, {72, 64}, {40, 40}, {136, 0}};
    static const int hqs[] = {1, 8, 9, 16, 128};
    static const int pages[] = {0, 16, 64};
    const int per_tier = tc_long() ? 30 : 8;
    for (int ti = 0; ti < ntier; ti++)
        for (int n = 0; n < per_tier; n++) {
            tc_rng r;
            tc_rng_init(&r, tc_seed(), (uint64_t)(5000 + ti * 1000 + n));
            const int di = n < 6 ? n : tc_randint(&r, 0, 5);
            const int D = dims[di][0], Dv = dims[di][1] ? dims[di][1] : D, cfg_dv = dims[di][1];
            const int G = TC_PICK(&r, hqs);
            int Hkv = tc_randint(&r, 1, 2);
            if (G * Hkv > 128)
                Hkv = 1;
            const int Hq = G * Hkv;
            const int B = 2, Nq = tc_randint(&r, 0, 2) ? 1 : tc_randint(&r, 2, 4);
            const edgeattn_dtype cdt = TC_PICK(&r, k_dts), qdt = TC_PICK(&r, k_dts), odt = TC_PICK(&r, k_dts);
            int N = tc_randint(&r, 1, 3) == 1 ? tc_randint(&r, 4, 40) : tc_randint(&r, 200, 600);
            while ((double)B * Hq * Nq * N * (D + Dv) > 2e7 && N > 40)
                N /= 2;
            edgeattn_config cfg = mla_config(D, cfg_dv, 4, 600);
            cfg.flags = EDGEATTN_FLAG_KV_CACHE;
            cfg.kv_cache_latent = 1;
            cfg.kv_cache_dtype = cdt;
            cfg.kv_page_size = TC_PICK(&r, pages);
            cfg.max_heads = Hq;
            cfg.max_kv_heads = Hkv;
            cfg.num_threads = 1 + (n + ti) % 2;
            char what[200];
            snprintf(what, sizeof what, "%.32s: D %d Dv %d Hq %d Hkv %d Nq %d N %d cache %s page %d q %s out %s",
                     tiers[ti].name, D, Dv, Hq, Hkv, Nq, N, tc_dtype_name(cdt), (int)cfg.kv_page_size,
                     tc_dtype_name(qdt), tc_dtype_name(odt));
            edgeattn_context *ctx = tc_create_tier(&cfg, &tiers[ti]);
            /* the latent vectors, in the cache's dtype (stored exactly) */
            tc_tensor lat, q;
            tc_tensor_alloc(&lat, cdt, B, Hkv, N, D, tc_randint(&r, 0, 1), tc_randint(&r, 0, 1) * 8, 0, 0);
            tc_tensor_alloc(&q, qdt, B, Hq, Nq, D, tc_randint(&r, 0, 1), 0, 0, 0);
            tc_fill_random(&lat, &r, -1.0, 1.0);
            tc_fill_random(&q, &r, -1.0, 1.0);
            /* appended in two pieces, k only */
            const int n1 = tc_randint(&r, 1, N);
            edgeattn_tensor a1 = rows_view(&lat.t, 0, n1), a2 = rows_view(&lat.t, n1, N - n1);
            if (edgeattn_kv_append(ctx, 0, NULL, &a1, NULL, NULL, 1) != EDGEATTN_OK ||
                (N > n1 && edgeattn_kv_append(ctx, 0, NULL, &a2, NULL, NULL, 0) != EDGEATTN_OK))
                fail_msg("%s: append: %s", what, edgeattn_message_of(ctx));
            decode_check(ctx, what, NULL, &q.t, &lat.t, Dv, odt, cdt);

            /* kv_read: the latent vectors as k, their first Dv values as v (and v NULL) */
            tc_tensor rk, rv;
            tc_tensor_alloc(&rk, EDGEATTN_F32, 1, Hkv, N, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&rv, EDGEATTN_F32, 1, Hkv, N, Dv, TC_BSHD, 0, 0, 0);
            assert_int_equal(edgeattn_kv_read(ctx, 0, 1, 0, &rk.t, &rv.t), EDGEATTN_OK);
            for (int h = 0; h < Hkv; h++)
                for (int j = 0; j < N; j++)
                    for (int d = 0; d < D; d++) {
                        const float want = tc_get(&lat.t, 1, h, j, d);
                        if (tc_get(&rk.t, 0, h, j, d) != want || (d < Dv && tc_get(&rv.t, 0, h, j, d) != want))
                            fail_msg("%s: kv_read [%d, %d, %d] differs", what, h, j, d);
                    }
            assert_int_equal(edgeattn_kv_read(ctx, 0, 0, 0, &rk.t, NULL), EDGEATTN_OK);
            tc_tensor_free(&rk);
            tc_tensor_free(&rv);

            /* fork sequence 0 into 1, truncate 1 to n1 tokens: it decodes over the first n1 vectors of 0 */
            if (Nq <= n1) {
                assert_int_equal(edgeattn_kv_fork(ctx, 0, 1), EDGEATTN_OK);
                assert_int_equal(edgeattn_kv_truncate(ctx, 1, n1), EDGEATTN_OK);
                const int32_t ids[1] = {1};
                edgeattn_tensor q0 = batch_view(&q.t, 0), l0 = batch_view(&lat.t, 0);
                l0.shape[2] = n1;
                decode_check(ctx, what, ids, &q0, &l0, Dv, odt, cdt);
                if (cfg.kv_page_size > 0) { /* the shared pages were copied on write, sequence 0 intact */
                    const int32_t id0[1] = {0};
                    l0.shape[2] = N;
                    edgeattn_tensor extra = batch_view(&lat.t, 1);
                    extra = rows_view(&extra, 0, 1); /* one more token into 1 (a shared page) */
                    assert_int_equal(edgeattn_kv_append(ctx, 0, ids, &extra, NULL, NULL, 0), EDGEATTN_OK);
                    decode_check(ctx, what, id0, &q0, &l0, Dv, odt, cdt);
                }
            }
            tc_tensor_free(&lat);
            tc_tensor_free(&q);
            edgeattn_destroy(ctx);
        }
}

/* A latent ring with sinks: decode sees the sinks and the last W vectors. */
static void mla_latent_sinks(void **state)
{
    (void)state;
    tc_clear_env();
    tc_tier tiers[8];
    const int ntier = tc_cpu_tiers(tiers, 8);
    for (int ti = 0; ti < ntier; ti++) {
        const int D = 576, Dv = 512, W = 64, S = 4, N = 200, Hq = 16;
        edgeattn_config cfg = mla_config(D, Dv, 1, 600);
        cfg.flags = EDGEATTN_FLAG_KV_CACHE;
        cfg.kv_cache_latent = 1;
        cfg.kv_cache_window = W;
        cfg.kv_cache_sinks = S;
        cfg.max_batch = 1;
        cfg.max_kv_heads = 1;
        cfg.max_heads = Hq;
        edgeattn_context *ctx = tc_create_tier(&cfg, &tiers[ti]);
        tc_rng r;
        tc_rng_init(&r, tc_seed(), (uint64_t)(9000 + ti));
        tc_tensor lat, held, q;
        tc_tensor_alloc(&lat, EDGEATTN_F16, 1, 1, N, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&held, EDGEATTN_F16, 1, 1, S + W, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&q, EDGEATTN_F32, 1, Hq, 1, D, TC_BHSD, 0, 0, 0);
        tc_fill_random(&lat, &r, -1.0, 1.0);
        tc_fill_random(&q, &r, -1.0, 1.0);
        for (int j = 0; j < S + W; j++)
            for (int d = 0; d < D; d++)
                tc_set(&held.t, 0, 0, j, d, tc_get(&lat.t, 0, 0, j < S ? j : N - W + (j - S), d));
        for (int j0 = 0; j0 < N; j0 += 37) {
            edgeattn_tensor a = rows_view(&lat.t, j0, N - j0 < 37 ? N - j0 : 37);
            assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &a, NULL, NULL, 0), EDGEATTN_OK);
        }
        char what[64];
        snprintf(what, sizeof what, "%.32s: latent sinks", tiers[ti].name);
        decode_check(ctx, what, NULL, &q.t, &held.t, Dv, EDGEATTN_F32, EDGEATTN_F16);
        tc_tensor_free(&lat);
        tc_tensor_free(&held);
        tc_tensor_free(&q);
        edgeattn_destroy(ctx);
    }
}

/* ---------------------------------------------------------------- the plan */

static void mla_plan_bytes(void **state)
{
    (void)state;
    tc_clear_env();
    /* the decode shape: one latent vector of 576 values a token, F16, 32768 tokens */
    edgeattn_config c = mla_config(576, 512, 1, 32768);
    c.max_batch = 1;
    c.max_kv_heads = 1;
    c.flags = EDGEATTN_FLAG_KV_CACHE;
    c.kv_cache_latent = 1;
    edgeattn_plan_info lat, sep;
    edgeattn_message msg;
    assert_int_equal(edgeattn_plan(&c, &lat, &msg), EDGEATTN_OK);
    c.kv_cache_latent = 0;
    c.max_head_dim_v = 0; /* a cache of separate K and V rows keeps one head dim */
    assert_int_equal(edgeattn_plan(&c, &sep, &msg), EDGEATTN_OK);
    const size_t rows = (size_t)32768 * 576 * 2; /* bytes of one row per token */
    assert_true(lat.kv_cache_bytes >= rows && lat.kv_cache_bytes < rows + 4096);
    assert_int_equal(sep.kv_cache_bytes - lat.kv_cache_bytes, rows); /* V costs nothing */
    print_message("kv_cache_bytes, 32768 tokens of 576 F16: latent %zu, separate K and V %zu\n", lat.kv_cache_bytes,
                  sep.kv_cache_bytes);
    /* paged and layers: the same saving */
    c.kv_cache_latent = 1;
    c.max_head_dim_v = 512;
    c.kv_page_size = 64;
    c.num_layers = 3;
    assert_int_equal(edgeattn_plan(&c, &lat, &msg), EDGEATTN_OK);
    c.kv_cache_latent = 0;
    c.max_head_dim_v = 0;
    assert_int_equal(edgeattn_plan(&c, &sep, &msg), EDGEATTN_OK);
    assert_int_equal(sep.kv_cache_bytes - lat.kv_cache_bytes, 3 * rows);
    /* scratch is planned for both dims: D_v 512 over D 576 needs less than D_v 576 */
    edgeattn_config a = mla_config(576, 512, 1, 4096), b2 = mla_config(576, 576, 1, 4096);
    assert_int_equal(edgeattn_plan(&a, &lat, &msg), EDGEATTN_OK);
    assert_int_equal(edgeattn_plan(&b2, &sep, &msg), EDGEATTN_OK);
    assert_true(lat.scratch_bytes_per_thread < sep.scratch_bytes_per_thread);
    assert_true(lat.host_bytes < sep.host_bytes);
}

/* ---------------------------------------------------------------- refusals */

static void expect_plan(edgeattn_config c, edgeattn_status want, const char *needle)
{
    edgeattn_plan_info info;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_plan(&c, &info, &msg);
    if (st != want || (needle && !strstr(msg.text, needle)))
        fail_msg("plan: %d (%s), wanted %d with \"%s\"", (int)st, msg.text, (int)want, needle ? needle : "");
}

static void mla_refusals(void **state)
{
    (void)state;
    tc_clear_env();
    edgeattn_config c = mla_config(576, 512, 4, 64);
    /* config */
    c.max_head_dim = 584;
    expect_plan(c, EDGEATTN_ERR_HEAD_DIM, "max_head_dim");
    c.max_head_dim = 576;
    c.max_head_dim_v = 12;
    expect_plan(c, EDGEATTN_ERR_HEAD_DIM, "max_head_dim_v");
    c.max_head_dim_v = 584;
    expect_plan(c, EDGEATTN_ERR_HEAD_DIM, "max_head_dim_v");
    c.max_head_dim_v = -8;
    expect_plan(c, EDGEATTN_ERR_HEAD_DIM, "max_head_dim_v");
    c.max_head_dim_v = 512;
    c.kv_cache_latent = 1;
    expect_plan(c, EDGEATTN_ERR_INVALID_ARG, "kv_cache_latent");
    c.flags = EDGEATTN_FLAG_KV_CACHE;
    c.kv_cache_latent = 2;
    expect_plan(c, EDGEATTN_ERR_INVALID_ARG, "kv_cache_latent");
    c.kv_cache_latent = 1;
    c.kv_cache_dtype = EDGEATTN_Q8;
    expect_plan(c, EDGEATTN_ERR_UNSUPPORTED, "latent");
    c.kv_cache_latent = 0;
    c.max_head_dim_v = 0;
    expect_plan(c, EDGEATTN_ERR_HEAD_DIM, "q8"); /* 576 is past the quantised kernels */
    c.kv_cache_latent = 1;
    c.max_head_dim = 128;
    c.max_head_dim_v = 64;
    c.kv_cache_dtype = EDGEATTN_F16;
    c.kv_summary_block = 32;
    expect_plan(c, EDGEATTN_ERR_UNSUPPORTED, "block summaries");
    c.kv_summary_block = 0;
    c.rope.style = EDGEATTN_ROPE_HALF;
    c.rope.theta = 10000.0f;
    expect_plan(c, EDGEATTN_ERR_UNSUPPORTED, "config.rope");
    memset(&c.rope, 0, sizeof c.rope);
    c.max_head_dim_v = 256;
    expect_plan(c, EDGEATTN_ERR_HEAD_DIM, "latent");
    c.kv_cache_latent = 0;
    c.max_head_dim_v = 64;
    expect_plan(c, EDGEATTN_ERR_HEAD_DIM, "kv_cache_latent");
    /* RoPE tables stop at 256 values: a wider head rotates a part of it (rope.dim) */
    c.max_head_dim_v = 0;
    c.max_head_dim = 320;
    c.rope.style = EDGEATTN_ROPE_INTERLEAVED;
    c.rope.theta = 10000.0f;
    expect_plan(c, EDGEATTN_ERR_UNSUPPORTED, "RoPE");
    c.rope.dim = 64;
    expect_plan(c, EDGEATTN_OK, NULL);
    memset(&c.rope, 0, sizeof c.rope);
    /* GPU backends refuse latent attention (when built: else they are unavailable) */
    for (int be = EDGEATTN_BACKEND_CUDA; be <= EDGEATTN_BACKEND_OPENCL; be++) {
        edgeattn_config g = mla_config(192, 128, 4, 64);
        g.backend = (edgeattn_backend)be;
        edgeattn_plan_info info;
        edgeattn_message msg;
        const edgeattn_status st = edgeattn_plan(&g, &info, &msg);
        assert_true(st == EDGEATTN_ERR_UNSUPPORTED || st == EDGEATTN_ERR_BACKEND_UNAVAILABLE);
        g.backend = EDGEATTN_BACKEND_AUTO; /* AUTO passes them by */
        assert_int_equal(edgeattn_plan(&g, &info, &msg), EDGEATTN_OK);
        assert_int_equal(info.backend, EDGEATTN_BACKEND_CPU);
        g = mla_config(320, 0, 4, 64); /* a head dim past 256 alone */
        g.backend = (edgeattn_backend)be;
        const edgeattn_status st2 = edgeattn_plan(&g, &info, &msg);
        assert_true(st2 == EDGEATTN_ERR_UNSUPPORTED || st2 == EDGEATTN_ERR_BACKEND_UNAVAILABLE);
    }

    /* calls: attention */
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 77);
    edgeattn_config a = mla_config(192, 128, 4, 64);
    edgeattn_context *ctx = tc_create(&a);
    tc_tensor q, k, v, out, v_bad, out_big, q_bad;
    tc_tensor_alloc(&q, EDGEATTN_F32, 1, 4, 4, 192, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&q_bad, EDGEATTN_F32, 1, 4, 4, 100, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&k, EDGEATTN_F16, 1, 2, 16, 192, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F16, 1, 2, 16, 128, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v_bad, EDGEATTN_F16, 1, 2, 16, 136, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&out, EDGEATTN_F32, 1, 4, 4, 128, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&out_big, EDGEATTN_F32, 1, 4, 4, 136, TC_BHSD, 0, 0, 0);
    tc_fill_random(&q, &r, -1, 1);
    tc_fill_random(&q_bad, &r, -1, 1);
    tc_fill_random(&k, &r, -1, 1);
    tc_fill_random(&v, &r, -1, 1);
    tc_fill_random(&v_bad, &r, -1, 1);
    tc_fill_canary(&out);
    tc_fill_canary(&out_big);
    void *snap = tc_snapshot(&out), *snap_big = tc_snapshot(&out_big);
    assert_int_equal(edgeattn_attention(ctx, &q.t, &k.t, &v_bad.t, &out.t, NULL), EDGEATTN_ERR_SHAPE_MISMATCH);
    assert_non_null(strstr(edgeattn_message_of(ctx), "v: head_dim"));
    assert_int_equal(edgeattn_attention(ctx, &q.t, &k.t, &v_bad.t, &out_big.t, NULL), EDGEATTN_ERR_CAPACITY);
    assert_int_equal(edgeattn_attention(ctx, &q_bad.t, &k.t, &v.t, &out.t, NULL), EDGEATTN_ERR_HEAD_DIM);
    assert_true(tc_unchanged(&out, snap));
    assert_true(tc_unchanged(&out_big, snap_big));
    assert_int_equal(edgeattn_attention(ctx, &q.t, &k.t, &v.t, &out.t, NULL), EDGEATTN_OK);
    edgeattn_destroy(ctx);
    /* without max_head_dim_v, D_v must be D (today's rule) */
    edgeattn_config a0 = mla_config(192, 0, 4, 64);
    ctx = tc_create(&a0);
    tc_fill_canary(&out);
    assert_int_equal(edgeattn_attention(ctx, &q.t, &k.t, &v.t, &out.t, NULL), EDGEATTN_ERR_SHAPE_MISMATCH);
    assert_non_null(strstr(edgeattn_message_of(ctx), "max_head_dim_v"));
    assert_true(tc_unchanged(&out, snap));
    edgeattn_destroy(ctx);

    /* calls: the latent cache */
    edgeattn_config lc = mla_config(192, 128, 4, 64);
    lc.flags = EDGEATTN_FLAG_KV_CACHE;
    lc.kv_cache_latent = 1;
    ctx = tc_create(&lc);
    int64_t total = -1;
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, &k.t, NULL, 0), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(edgeattn_message_of(ctx), "v must be NULL"));
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, &total, NULL), EDGEATTN_OK);
    assert_int_equal(total, 0);
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, NULL, NULL, 0), EDGEATTN_OK);
    edgeattn_tensor q1 = q.t;
    q1.shape[2] = 1;
    edgeattn_tensor o1 = out_big.t;
    o1.shape[2] = 1;
    o1.shape[3] = 200; /* past the latent dim and the plan */
    o1.stride[1] = 200;
    o1.stride[0] = 800;
    tc_fill_canary(&out_big);
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q1, &o1, NULL), EDGEATTN_ERR_CAPACITY);
    o1.shape[3] = 136; /* inside the plan's 128? no: past it */
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q1, &o1, NULL), EDGEATTN_ERR_CAPACITY);
    assert_true(tc_unchanged(&out_big, snap_big));
    edgeattn_tensor o2 = out.t;
    o2.shape[2] = 1;
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q1, &o2, NULL), EDGEATTN_OK);
    tc_tensor rk, rv;
    tc_tensor_alloc(&rk, EDGEATTN_F32, 1, 2, 16, 192, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&rv, EDGEATTN_F32, 1, 2, 16, 200, TC_BHSD, 0, 0, 0);
    assert_int_equal(edgeattn_kv_read(ctx, 0, 0, 0, &rk.t, &rv.t), EDGEATTN_ERR_SHAPE_MISMATCH);
    edgeattn_destroy(ctx);
    /* a latent cache with D_v == D (max_head_dim_v 0): out must be the latent dim... or less */
    edgeattn_config l0 = mla_config(192, 0, 4, 64);
    l0.flags = EDGEATTN_FLAG_KV_CACHE;
    l0.kv_cache_latent = 1;
    ctx = tc_create(&l0);
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, NULL, NULL, 0), EDGEATTN_OK);
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q1, &o2, NULL), EDGEATTN_ERR_SHAPE_MISMATCH);
    edgeattn_destroy(ctx);
    /* a cache of separate rows: v is required */
    edgeattn_config sc = mla_config(192, 0, 4, 64);
    sc.flags = EDGEATTN_FLAG_KV_CACHE;
    ctx = tc_create(&sc);
    assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, NULL, NULL, 0), EDGEATTN_ERR_NULL_ARG);
    edgeattn_destroy(ctx);

    free(snap);
    free(snap_big);
    tc_tensor_free(&q);
    tc_tensor_free(&q_bad);
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    tc_tensor_free(&v_bad);
    tc_tensor_free(&out);
    tc_tensor_free(&out_big);
    tc_tensor_free(&rk);
    tc_tensor_free(&rv);
}

int main(void)
{
    printf("seed %llu (EDGEATTN_TEST_SEED=%llu repeats this run)\n", (unsigned long long)tc_seed(),
           (unsigned long long)tc_seed());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mla_plan_bytes),
        cmocka_unit_test(mla_refusals),
        cmocka_unit_test(mla_attention_parity),
        cmocka_unit_test(mla_decode_latent),
        cmocka_unit_test(mla_latent_sinks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
