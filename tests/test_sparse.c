/*
 * Sparse attention (issue 13): attention sinks beside a ring cache (StreamingLLM).
 *
 * A cache with config.kv_cache_sinks S and kv_cache_window W keeps the first S tokens of each (layer,
 * sequence) and the last W. Streams of tens of thousands of tokens go through it in chunks of every
 * size (single tokens, chunks longer than the ring, chunks that straddle the sinks); decode (one
 * query and several, causal) is compared with the double reference over exactly the held keys, each
 * rotated by RoPE at its true position, on every CPU tier, cache dtype and layout (contiguous and
 * paged). Rows are a function of (position, head, channel), so the reference rebuilds the held keys
 * without keeping the stream. Also: plan bytes, kv_read and kv_truncate around the sinks, and the
 * refusals.
 */
#include "test_common.h"

#include "../core/reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HQ = 4, HKV = 2, D = 64, NQ = 4 };

/* Element (pos, h, d) of K (kv 0) or V (kv 1) of the stream `sid`: uniform in [-1, 1). */
static float stream_val(uint64_t sid, int kv, int64_t pos, int h, int d)
{
    uint64_t x = sid * 0x9E3779B97F4A7C15ull ^ ((uint64_t)pos << 20) ^ ((uint64_t)h << 12) ^ ((uint64_t)d << 2) ^
                 (uint64_t)kv;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static edgeattn_config sink_config(int32_t sinks, int32_t window, edgeattn_dtype dt, int32_t page)
{
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.flags = EDGEATTN_FLAG_KV_CACHE;
    c.max_batch = 2;
    c.max_q_len = 512;
    c.max_kv_len = 64;
    c.max_heads = HQ;
    c.max_kv_heads = HKV;
    c.max_head_dim = D;
    c.kv_cache_dtype = dt;
    c.kv_cache_window = window;
    c.kv_cache_sinks = sinks;
    c.kv_page_size = page;
    c.num_threads = 2;
    c.backend = EDGEATTN_BACKEND_CPU;
    return c;
}

/* Appends positions [total, total + n) of stream sid to sequence seq (K F32, V F16) of a cache with
 * S sinks and a ring of W. Rows the cache must not keep (past the sinks, overwritten by later rows of
 * the same append) hold 3000 instead: one kept by mistake spoils the next decode. */
static void append_stream(edgeattn_context *ctx, int32_t seq, uint64_t sid, int64_t total, int n, int S, int W)
{
    tc_tensor k, v;
    tc_tensor_alloc(&k, EDGEATTN_F32, 1, HKV, n, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F16, 1, HKV, n, D, TC_BSHD, 0, 0, 0);
    for (int h = 0; h < HKV; h++)
        for (int i = 0; i < n; i++) {
            const int64_t p = total + i;
            const bool kept = p < S || p >= total + n - W;
            for (int d = 0; d < D; d++) {
                tc_set(&k.t, 0, h, i, d, kept ? stream_val(sid, 0, p, h, d) : 3000.0f);
                tc_set(&v.t, 0, h, i, d, kept ? stream_val(sid, 1, p, h, d) : 3000.0f);
            }
        }
    const int32_t ids[1] = {seq};
    const edgeattn_status st = edgeattn_kv_append(ctx, 0, ids, &k.t, &v.t, NULL, 0);
    if (st != EDGEATTN_OK)
        fail_msg("kv_append of %d rows at %lld: %s", n, (long long)total, edgeattn_message_of(ctx));
    tc_tensor_free(&k);
    tc_tensor_free(&v);
}

/* The positions (layer 0, seq) should hold after `total` tokens with S sinks and a ring of W, none of
 * the ring's before lo (a truncate drops what the ring had evicted for good). */
static int expected_positions(int64_t total, int S, int W, int64_t lo, int64_t *pos)
{
    int n = 0;
    for (int64_t p = 0; p < total && p < S; p++)
        pos[n++] = p;
    int64_t a = total - W > S ? total - W : S;
    for (int64_t p = a > lo ? a : lo; p < total; p++)
        pos[n++] = p;
    return n;
}

/* Decode nq queries of sequence seq and compare with the reference over the held positions. */
static void check_decode(edgeattn_context *ctx, const edgeattn_config *cfg, int32_t seq, uint64_t sid, int64_t total,
                         int64_t lo, int nq, tc_rng *r, const char *what)
{
    const int S = cfg->kv_cache_sinks, W = cfg->kv_cache_window;
    int64_t *pos = malloc(sizeof(int64_t) * (size_t)(S + W));
    assert_non_null(pos);
    const int held = expected_positions(total, S, W, lo, pos);
    int64_t t_got = -1;
    int32_t h_got = -1;
    assert_int_equal(edgeattn_kv_length(ctx, 0, seq, &t_got, &h_got), EDGEATTN_OK);
    if (t_got != total || h_got != held)
        fail_msg("%s: kv_length (%lld, %d), expected (%lld, %d)", what, (long long)t_got, (int)h_got, (long long)total,
                 held);
    /* the reference's inputs: held keys as stored (rotated at their positions, rounded to the cache
     * dtype), queries rotated at theirs */
    tc_tensor rk, rv, rq, q, out, lse;
    tc_tensor_alloc(&rk, EDGEATTN_F32, 1, HKV, held, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&rv, EDGEATTN_F32, 1, HKV, held, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&rq, EDGEATTN_F32, 1, HQ, nq, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&q, EDGEATTN_F32, 1, HQ, nq, D, TC_BHSD, 1, 1, 1);
    tc_tensor_alloc(&out, EDGEATTN_F32, 1, HQ, nq, D, TC_BHSD, 1, 1, 1);
    tc_tensor_alloc(&lse, EDGEATTN_F32, 1, HQ, nq, 1, TC_BHSD, 0, 0, 0);
    tc_fill_random(&q, r, -2.0, 2.0);
    for (int h = 0; h < HKV; h++)
        for (int j = 0; j < held; j++) {
            double x[D];
            for (int d = 0; d < D; d++)
                x[d] = stream_val(sid, 0, pos[j], h, d);
            ea_ref_rope(&cfg->rope, D, pos[j], x);
            for (int d = 0; d < D; d++) {
                tc_set(&rk.t, 0, h, j, d, tc_round(cfg->kv_cache_dtype, (float)x[d]));
                tc_set(&rv.t, 0, h, j, d,
                       tc_round(cfg->kv_cache_dtype, tc_round(EDGEATTN_F16, stream_val(sid, 1, pos[j], h, d))));
            }
        }
    for (int h = 0; h < HQ; h++)
        for (int i = 0; i < nq; i++) {
            double x[D];
            for (int d = 0; d < D; d++)
                x[d] = tc_get(&q.t, 0, h, i, d);
            ea_ref_rope(&cfg->rope, D, total - nq + i, x);
            for (int d = 0; d < D; d++)
                tc_set(&rq.t, 0, h, i, d, (float)x[d]);
        }
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = 1;
    double *ref = malloc(sizeof(double) * HQ * (size_t)nq * D), *ref_lse = malloc(sizeof(double) * HQ * (size_t)nq);
    assert_non_null(ref);
    assert_non_null(ref_lse);
    assert_int_equal(ea_ref_attention(&rq.t, &rk.t, &rv.t, &p, ref, ref_lse), EDGEATTN_OK);
    /* the call sees batch row 0 as sequence seq */
    tc_fill_canary(&out);
    tc_fill_canary(&lse);
    edgeattn_tensor lt = lse.t;
    p.lse = &lt;
    const int32_t ids[1] = {seq};
    const edgeattn_status st = edgeattn_decode(ctx, 0, ids, NULL, &q.t, &out.t, &p);
    if (st != EDGEATTN_OK)
        fail_msg("%s: decode returned %d: %s", what, (int)st, edgeattn_message_of(ctx));
    tc_result res = {0};
    res.ok = true;
    /* quantised caches: the format's own error on these uniform rows (docs/QUANTISED-KV.md; Q4's 16 levels
     * over a few hundred held keys measured up to 0.18 of max|ref| on one seed in thousands of decodes, so
     * its bound here is 0.25) */
    const double tol = cfg->kv_cache_dtype == EDGEATTN_Q8   ? 1.5e-2
                       : cfg->kv_cache_dtype == EDGEATTN_Q4 ? 0.25
                                                            : tc_tolerance(cfg->kv_cache_dtype, EDGEATTN_F32, EDGEATTN_F32);
    tc_compare(&res, &out, &lse, ref, ref_lse, 1, HQ, nq, D, tol);
    if (!res.ok)
        fail_msg("%s (total %lld, held %d, nq %d): %s", what, (long long)total, held, nq, res.why);
    free(ref);
    free(ref_lse);
    free(pos);
    tc_tensor_free(&rk);
    tc_tensor_free(&rv);
    tc_tensor_free(&rq);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_tensor_free(&lse);
}

/* ---------------------------------------------------------------- backends */

/* Is a forced GPU backend able to take configs here (its runtime and a device present)? */
static bool gpu_present(edgeattn_backend be)
{
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.max_batch = 1;
    c.max_q_len = 8;
    c.max_kv_len = 8;
    c.max_heads = 1;
    c.max_kv_heads = 1;
    c.max_head_dim = 64;
    c.backend = be;
    edgeattn_plan_info info;
    edgeattn_message msg;
    return edgeattn_plan(&c, &info, &msg) == EDGEATTN_OK;
}

/* The CPU tiers, then CUDA when a GPU (or the mock driver) is present, then the OpenCL backend when a
 * device is present (PoCL in CI); OpenCL stays last (block_sparse_parity adds its variants after it). */
static int sparse_tiers(tc_tier *tiers, int max)
{
    int n = tc_cpu_tiers(tiers, max - 2);
    if (gpu_present(EDGEATTN_BACKEND_CUDA)) {
        memset(&tiers[n], 0, sizeof tiers[n]);
        snprintf(tiers[n].name, sizeof tiers[n].name, "cuda");
        tiers[n].backend = EDGEATTN_BACKEND_CUDA;
        n++;
    } else if (getenv("EDGEATTN_TEST_REQUIRE_CUDA") && atoi(getenv("EDGEATTN_TEST_REQUIRE_CUDA"))) {
        fail_msg("EDGEATTN_TEST_REQUIRE_CUDA is set but no CUDA device takes a config");
    }
    if (gpu_present(EDGEATTN_BACKEND_OPENCL)) {
        snprintf(tiers[n].name, sizeof tiers[n].name, "opencl");
        tiers[n].disable = 0;
        tiers[n].backend = EDGEATTN_BACKEND_OPENCL;
        n++;
    } else if (getenv("EDGEATTN_TEST_REQUIRE_OPENCL") && atoi(getenv("EDGEATTN_TEST_REQUIRE_OPENCL"))) {
        fail_msg("EDGEATTN_TEST_REQUIRE_OPENCL is set but no OpenCL device takes a config");
    }
    return n;
}

/* ---------------------------------------------------------------- streaming */

static void streaming_decode(void **state)
{
    (void)state;
    tc_clear_env();
    tc_tier tiers[8];
    const int ntier = sparse_tiers(tiers, 8);
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16, EDGEATTN_Q8, EDGEATTN_Q4};
    int cases = 0;
    for (int ti = 0; ti < ntier; ti++)
        for (int di = 0; di < 5; di++)
            for (int paged = 0; paged < 2; paged++) {
                const bool gpu = tiers[ti].backend != EDGEATTN_BACKEND_CPU;
                if (gpu && (dts[di] == EDGEATTN_Q8 || dts[di] == EDGEATTN_Q4)) /* quantised caches: the CPU backend's */
                    continue;
                /* a GPU device (PoCL in CI: each call a few kernel launches) streams fewer tokens */
                const int64_t target = gpu ? (tc_long() ? 30000 : 4000) : tc_long() ? 200000 : 30000;
                tc_rng r;
                tc_rng_init(&r, tc_seed(), (uint64_t)(ti * 100 + di * 10 + paged));
                const int S = tc_randint(&r, 1, 8), W = 16 * tc_randint(&r, 2, 12) + tc_randint(&r, 0, 1) * 7;
                edgeattn_config cfg = sink_config(S, W, dts[di], paged ? 16 : 0);
                cfg.rope.style = tc_randint(&r, 0, 1) ? EDGEATTN_ROPE_HALF : EDGEATTN_ROPE_INTERLEAVED;
                cfg.rope.theta = 10000.0f;
                cfg.num_threads = tc_randint(&r, 1, 2);
                edgeattn_context *ctx = tc_create_tier(&cfg, &tiers[ti]);
                char what[200];
                snprintf(what, sizeof what, "tier %.32s, cache %.16s, %s, sinks %d, window %d", tiers[ti].name,
                         tc_dtype_name(dts[di]), paged ? "pages of 16" : "contiguous", S, W);
                const uint64_t sid = tc_next(&r);
                int64_t total = 0;
                /* the first appends straddle the sinks; then chunks of every size, decoding as it goes */
                static const int first_chunks[] = {1, 2, 3, 5, 40, 1, 300};
                for (int c = 0; c < 7; c++) {
                    append_stream(ctx, 1, sid, total, first_chunks[c], S, W);
                    total += first_chunks[c];
                    check_decode(ctx, &cfg, 1, sid, total, 0, 1, &r, what);
                    cases++;
                }
                while (total < target) {
                    const int kind = tc_randint(&r, 0, 3);
                    const int n = kind == 0 ? 1 : kind == 1 ? tc_randint(&r, 2, W) : tc_randint(&r, W, 3 * W + 500);
                    append_stream(ctx, 1, sid, total, n, S, W);
                    total += n;
                    if (tc_randint(&r, 0, 7) == 0 || total >= target) {
                        check_decode(ctx, &cfg, 1, sid, total, 0, tc_randint(&r, 1, NQ), &r, what);
                        cases++;
                    }
                }
                edgeattn_destroy(ctx);
            }
    print_message("streaming: %d decodes over sinks + ring (%d tiers and backends)\n", cases, ntier);
}

/* The plan holds S + W slots: the same bytes as a plain cache of S + W tokens. */
static void plan_bytes(void **state)
{
    (void)state;
    tc_clear_env();
    edgeattn_plan_info a, b;
    edgeattn_message msg;
    for (int paged = 0; paged < 2; paged++) {
        edgeattn_config c = sink_config(4, 4096, EDGEATTN_F16, paged ? 64 : 0);
        assert_int_equal(edgeattn_plan(&c, &a, &msg), EDGEATTN_OK);
        c.kv_cache_sinks = 0;
        c.kv_cache_window = 0;
        c.max_kv_len = 4100;
        assert_int_equal(edgeattn_plan(&c, &b, &msg), EDGEATTN_OK);
        assert_int_equal(a.kv_cache_bytes, b.kv_cache_bytes);
        if (!paged) /* K and V, 2 sequences, 2 heads, 4100 rows of 64 F16 */
            assert_true(a.kv_cache_bytes >= (size_t)2 * 2 * 2 * 4100 * 64 * 2);
    }
}

/* kv_read of the sinks and of the ring; a run across the evicted gap is refused; truncating into the
 * ring or the sinks, and into the gap (refused). */
static void read_and_truncate_on(edgeattn_backend be)
{
    enum { S = 3, W = 40 };
    edgeattn_config cfg = sink_config(S, W, EDGEATTN_F32, 0);
    cfg.backend = be;
    edgeattn_context *ctx = tc_create(&cfg);
    const uint64_t sid = 77;
    append_stream(ctx, 0, sid, 0, 100, S, W);
    append_stream(ctx, 0, sid, 100, 5, S, W);
    /* held: 0..2 and 65..104 */
    tc_tensor k, v;
    tc_tensor_alloc(&k, EDGEATTN_F32, 1, HKV, 3, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F32, 1, HKV, 3, D, TC_BHSD, 0, 0, 0);
    static const int64_t firsts[] = {0, 65, 102, 63};
    for (int i = 0; i < 4; i++) {
        tc_fill_canary(&k);
        tc_fill_canary(&v);
        void *sk = tc_snapshot(&k);
        const edgeattn_status st = edgeattn_kv_read(ctx, 0, 0, firsts[i], &k.t, &v.t);
        if (firsts[i] == 63) { /* 63, 64 are gone */
            assert_int_equal(st, EDGEATTN_ERR_INVALID_ARG);
            assert_non_null(strstr(edgeattn_message_of(ctx), "sinks"));
            assert_true(tc_unchanged(&k, sk));
        } else {
            assert_int_equal(st, EDGEATTN_OK);
            for (int h = 0; h < HKV; h++)
                for (int j = 0; j < 3; j++)
                    for (int d = 0; d < D; d++) {
                        assert_float_equal(tc_get(&k.t, 0, h, j, d), stream_val(sid, 0, firsts[i] + j, h, d), 0.0);
                        assert_float_equal(tc_get(&v.t, 0, h, j, d),
                                           tc_round(EDGEATTN_F16, stream_val(sid, 1, firsts[i] + j, h, d)), 0.0);
                    }
        }
        free(sk);
    }
    /* the gap cannot be a length; the ring and the sinks can */
    assert_int_equal(edgeattn_kv_truncate(ctx, 0, 30), EDGEATTN_ERR_INVALID_ARG);
    int64_t t;
    int32_t h;
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, &t, &h), EDGEATTN_OK);
    assert_true(t == 105 && h == S + W);
    assert_int_equal(edgeattn_kv_truncate(ctx, 0, 90), EDGEATTN_OK);
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, &t, &h), EDGEATTN_OK);
    assert_true(t == 90 && h == S + 25);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 3);
    check_decode(ctx, &cfg, 0, sid, 90, 65, 2, &r, "after truncating into the ring");
    assert_int_equal(edgeattn_kv_truncate(ctx, 0, 2), EDGEATTN_OK);
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, &t, &h), EDGEATTN_OK);
    assert_true(t == 2 && h == 2);
    append_stream(ctx, 0, sid, 2, 60, S, W); /* the stream goes on from position 2 */
    check_decode(ctx, &cfg, 0, sid, 62, 0, 3, &r, "after truncating into the sinks");
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    edgeattn_destroy(ctx);

    /* a paged cache: a ring that has wrapped, truncated below its capacity, holds slots up to the new
     * length, past the count it holds (OpenCL's decode uploaded the page tables of slots [0, held) only
     * and read a page it had not mapped: test_mix found it) */
    cfg = sink_config(S, W, EDGEATTN_F16, 16);
    cfg.backend = be;
    ctx = tc_create(&cfg);
    append_stream(ctx, 0, sid, 0, 60, S, W); /* held: 0..2 and 20..59 */
    append_stream(ctx, 1, sid + 1, 0, 60, S, W);
    assert_int_equal(edgeattn_kv_truncate(ctx, 0, 36), EDGEATTN_OK);
    check_decode(ctx, &cfg, 1, sid + 1, 60, 20, 1, &r, "paged, the other sequence"); /* its tables on the device */
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, &t, &h), EDGEATTN_OK);
    assert_true(t == 36 && h == S + 16); /* 0..2 and 20..35: slots up to 35, in the third page */
    for (int nq = 1; nq <= 4; nq += 3)
        check_decode(ctx, &cfg, 0, sid, 36, 20, nq, &r, "paged, after truncating a wrapped ring below its capacity");
    edgeattn_destroy(ctx);
}

static void read_and_truncate(void **state)
{
    (void)state;
    tc_clear_env();
    read_and_truncate_on(EDGEATTN_BACKEND_CPU);
    if (gpu_present(EDGEATTN_BACKEND_CUDA))
        read_and_truncate_on(EDGEATTN_BACKEND_CUDA);
    if (gpu_present(EDGEATTN_BACKEND_OPENCL))
        read_and_truncate_on(EDGEATTN_BACKEND_OPENCL);
}

static void bad_input(void **state)
{
    (void)state;
    tc_clear_env();
    edgeattn_plan_info info;
    edgeattn_message msg;
    edgeattn_config c = sink_config(-1, 64, EDGEATTN_F16, 0);
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(msg.text, "kv_cache_sinks"));
    c = sink_config(4, 0, EDGEATTN_F16, 0);
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(msg.text, "kv_cache_window"));
    c = sink_config(INT32_MAX - 10, 64, EDGEATTN_F16, 0);
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_ERR_OVERFLOW);
    c = sink_config(4, 64, EDGEATTN_F16, 0);
    c.flags = 0;
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_ERR_INVALID_ARG);
    /* CUDA and OpenCL serve it where a device is (streaming_decode runs them); AUTO serves the cache */
    static const edgeattn_backend gpus[] = {EDGEATTN_BACKEND_CUDA, EDGEATTN_BACKEND_OPENCL};
    for (int g = 0; g < 2; g++) {
        c = sink_config(4, 64, EDGEATTN_F16, 0);
        c.backend = gpus[g];
        const edgeattn_status st = edgeattn_plan(&c, &info, &msg);
        assert_int_equal(st, gpu_present(gpus[g]) ? EDGEATTN_OK : EDGEATTN_ERR_BACKEND_UNAVAILABLE);
    }
    c = sink_config(4, 64, EDGEATTN_F16, 0);
    c.backend = EDGEATTN_BACKEND_AUTO;
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_OK);

    /* params windows over a sinks cache: refused, the output untouched */
    c.backend = EDGEATTN_BACKEND_CPU;
    edgeattn_context *ctx = tc_create(&c);
    append_stream(ctx, 0, 5, 0, 100, 4, 64);
    tc_tensor q, out;
    tc_tensor_alloc(&q, EDGEATTN_F32, 1, HQ, 1, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&out, EDGEATTN_F32, 1, HQ, 1, D, TC_BHSD, 0, 0, 0);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 9);
    tc_fill_random(&q, &r, -1, 1);
    tc_fill_canary(&out);
    void *so = tc_snapshot(&out);
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.window_left = 10;
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(edgeattn_message_of(ctx), "sinks"));
    p.window_left = -1;
    p.window_right = 0;
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_ERR_INVALID_ARG);
    assert_true(tc_unchanged(&out, so));
    p.window_right = -1;
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_OK);
    /* top-k without block summaries */
    tc_fill_canary(&out);
    free(so);
    so = tc_snapshot(&out);
    p.topk_tokens = 64;
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(edgeattn_message_of(ctx), "kv_summary_block"));
    assert_true(tc_unchanged(&out, so));
    edgeattn_destroy(ctx);

    /* block summaries: their sizes, never with a window or a quantised cache; CUDA takes them, OpenCL
     * takes a contiguous cache with them and refuses a paged one */
    static const int32_t bad_blocks[] = {-16, 8, 48, 256};
    for (int i = 0; i < 4; i++) {
        c = sink_config(0, 0, EDGEATTN_F16, 0);
        c.kv_summary_block = bad_blocks[i];
        assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_ERR_INVALID_ARG);
        assert_non_null(strstr(msg.text, "kv_summary_block"));
    }
    c = sink_config(4, 64, EDGEATTN_F16, 0);
    c.kv_summary_block = 32;
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_ERR_INVALID_ARG);
    c = sink_config(0, 0, EDGEATTN_Q8, 0);
    c.kv_summary_block = 32;
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_ERR_INVALID_ARG);
    for (int g = 0; g < 2; g++)
        for (int paged = 0; paged < 2; paged++) {
            c = sink_config(0, 0, EDGEATTN_F16, paged ? 16 : 0);
            c.kv_summary_block = 32;
            c.backend = gpus[g];
            const edgeattn_status st = edgeattn_plan(&c, &info, &msg);
            if (!gpu_present(gpus[g]))
                assert_int_equal(st, EDGEATTN_ERR_BACKEND_UNAVAILABLE);
            else if (gpus[g] == EDGEATTN_BACKEND_OPENCL)
                assert_int_equal(st, paged ? EDGEATTN_ERR_UNSUPPORTED : EDGEATTN_OK);
            else
                assert_int_equal(st, EDGEATTN_OK);
        }
    /* the summaries' bytes: 2 x max_head_dim floats per block, KV head, sequence and layer */
    c = sink_config(0, 0, EDGEATTN_F16, 0);
    edgeattn_plan_info plain;
    assert_int_equal(edgeattn_plan(&c, &plain, &msg), EDGEATTN_OK);
    c.kv_summary_block = 16;
    assert_int_equal(edgeattn_plan(&c, &info, &msg), EDGEATTN_OK);
    assert_true(info.kv_cache_bytes >= plain.kv_cache_bytes + (size_t)2 * HKV * (64 / 16) * 2 * D * 4);
    assert_true(info.kv_cache_bytes <= plain.kv_cache_bytes + (size_t)2 * HKV * (64 / 16) * 2 * D * 4 + 64);
    ctx = tc_create(&c);
    append_stream(ctx, 0, 5, 0, 60, 0, 64);
    p.topk_tokens = -1;
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_ERR_INVALID_ARG);
    p.topk_tokens = 32;
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_OK);
    tc_tensor q2, out2; /* two queries */
    tc_tensor_alloc(&q2, EDGEATTN_F32, 1, HQ, 2, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&out2, EDGEATTN_F32, 1, HQ, 2, D, TC_BHSD, 0, 0, 0);
    tc_fill_random(&q2, &r, -1, 1);
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q2.t, &out2.t, &p), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(edgeattn_message_of(ctx), "one query"));
    tc_tensor_free(&q2);
    tc_tensor_free(&out2);
    edgeattn_destroy(ctx);
    /* 16 query heads per KV head with a row tile of 8 (EDGEATTN_CPU_TILES): the group's queries do not fit
     * one tile, so top-k is refused, said so (never a dense answer) */
    c = sink_config(0, 0, EDGEATTN_F32, 0);
    c.kv_summary_block = 16;
    c.max_heads = 16;
    c.max_kv_heads = 1;
    setenv("EDGEATTN_CPU_TILES", "kb=64,rb=8", 1);
    ctx = tc_create(&c);
    unsetenv("EDGEATTN_CPU_TILES");
    {
        tc_tensor k1, v1, q16, o16;
        tc_tensor_alloc(&k1, EDGEATTN_F32, 1, 1, 40, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&v1, EDGEATTN_F32, 1, 1, 40, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&q16, EDGEATTN_F32, 1, 16, 1, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&o16, EDGEATTN_F32, 1, 16, 1, D, TC_BHSD, 0, 0, 0);
        tc_fill_random(&k1, &r, -1, 1);
        tc_fill_random(&v1, &r, -1, 1);
        tc_fill_random(&q16, &r, -1, 1);
        assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k1.t, &v1.t, NULL, 0), EDGEATTN_OK);
        p.topk_tokens = 16;
        assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q16.t, &o16.t, &p), EDGEATTN_ERR_UNSUPPORTED);
        assert_non_null(strstr(edgeattn_message_of(ctx), "topk_tokens"));
        tc_tensor_free(&k1);
        tc_tensor_free(&v1);
        tc_tensor_free(&q16);
        tc_tensor_free(&o16);
    }
    free(so);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    edgeattn_destroy(ctx);
}

/* ---------------------------------------------------------------- block-sparse masks */

/* A random BSR pattern set: each row block lists each key block with probability `density`, and
 * sometimes nothing at all (a row block whose rows then see no key) or everything. */
typedef struct rand_mask {
    edgeattn_block_mask m;
    int32_t *row_ptr, *col_idx;
} rand_mask;

static void rand_mask_make(rand_mask *rm, tc_rng *r, int bq, int batch, int heads, int Nq, int Nkv, double density)
{
    const int nrb = (Nq + bq - 1) / bq, ncb = (Nkv + 63) / 64, np = batch * heads;
    rm->row_ptr = malloc(sizeof(int32_t) * (size_t)(np * (nrb + 1)));
    rm->col_idx = malloc(sizeof(int32_t) * (size_t)(np * nrb * ncb + 1));
    assert_non_null(rm->row_ptr);
    assert_non_null(rm->col_idx);
    int32_t nnz = 0;
    for (int p = 0; p < np; p++)
        for (int rb = 0; rb <= nrb; rb++) {
            rm->row_ptr[p * (nrb + 1) + rb] = nnz;
            if (rb == nrb)
                break;
            const int kind = tc_randint(r, 0, 9); /* 0: empty row block, 1: every key block */
            for (int cb = 0; cb < ncb && kind != 0; cb++)
                if (kind == 1 || tc_uniform(r, 0.0, 1.0) < density)
                    rm->col_idx[nnz++] = cb;
        }
    memset(&rm->m, 0, sizeof rm->m);
    rm->m.block_q = bq;
    rm->m.block_k = 64;
    rm->m.batch = batch;
    rm->m.heads = heads;
    rm->m.nnz = nnz;
    rm->m.row_ptr = rm->row_ptr;
    rm->m.col_idx = rm->col_idx;
}

static void rand_mask_free(rand_mask *rm)
{
    free(rm->row_ptr);
    free(rm->col_idx);
}

/* Random shapes around the 64-key blocks and the CPU tiles, with causal, windows, kv_lens, bias,
 * GQA and broadcast patterns, against the reference with the mask, on every tier. */
static void block_sparse_parity(void **state)
{
    (void)state;
    tc_clear_env();
    tc_tier tiers[9];
    int ntier = sparse_tiers(tiers, 8);
    int ocl0 = ntier; /* OpenCL: its own tiles, NVIDIA's table's, and the unfused path */
    if (ntier > 0 && tiers[ntier - 1].backend == EDGEATTN_BACKEND_OPENCL) {
        ocl0 = ntier - 1;
        tiers[ntier] = tiers[ntier - 1];
        tiers[ntier + 1] = tiers[ntier - 1];
        ntier += 2;
    }
    static const int lens[] = {1, 37, 63, 64, 65, 127, 128, 129, 200, 257, 300};
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    const int per_tier = tc_long() ? 120 : 40;
    int ran = 0;
    for (int ti = 0; ti < ntier; ti++) {
        const bool nv_tiles = ti == ocl0 + 1, unfused = ti == ocl0 + 2;
        edgeattn_config cfg;
        edgeattn_config_default(&cfg);
        cfg.max_batch = 3;
        cfg.max_q_len = 300;
        cfg.max_kv_len = 300;
        cfg.max_heads = 8;
        cfg.max_kv_heads = 8;
        cfg.max_head_dim = 128;
        cfg.num_threads = 2;
        cfg.backend = EDGEATTN_BACKEND_CPU;
        if (nv_tiles) { /* PoCL runs the tiles a GPU would pick (64-row prefill tiles, 64-key decode tiles) */
            setenv("EDGEATTN_OPENCL_CLASS", "nvidia", 1);
            setenv("EDGEATTN_OPENCL_LOCAL_MEM", "49152", 1);
        }
        if (unfused) /* CLBlast's GEMMs, the mask in the softmax kernel */
            setenv("EDGEATTN_OPENCL_PATH", "unfused", 1);
        edgeattn_context *ctx = tc_create_tier(&cfg, &tiers[ti]);
        unsetenv("EDGEATTN_OPENCL_CLASS");
        unsetenv("EDGEATTN_OPENCL_LOCAL_MEM");
        unsetenv("EDGEATTN_OPENCL_PATH");
        for (int n = 0; n < (unfused ? 8 : per_tier); n++) {
            tc_rng r;
            tc_rng_init(&r, tc_seed(), (uint64_t)(1000 + ti * 1000 + n));
            static const int hs[][2] = {{1, 1}, {4, 1}, {4, 2}, {8, 2}, {2, 2}};
            const int hi = tc_randint(&r, 0, 4), Nq = TC_PICK(&r, lens), Nkv = TC_PICK(&r, lens);
            static const int dims[] = {32, 64, 72, 128};
            tc_attn_case c = tc_case(tc_randint(&r, 1, 3), hs[hi][0], hs[hi][1], Nq, Nkv, TC_PICK(&r, dims));
            c.qdt = c.kvdt = TC_PICK(&r, dts);
            c.odt = TC_PICK(&r, dts);
            c.causal = tc_randint(&r, 0, 2) == 0;
            if (tc_randint(&r, 0, 4) == 0)
                c.wl = tc_randint(&r, 0, 150);
            if (tc_randint(&r, 0, 3) == 0) {
                c.use_kv_lens = 1;
                for (int b = 0; b < c.B; b++)
                    c.kv_lens[b] = tc_randint(&r, 0, Nkv);
            }
            if (tc_randint(&r, 0, 4) == 0)
                c.bias_mode = TC_BIAS_BCAST_H;
            c.lse = tc_randint(&r, 0, 1);
            c.pad = tc_randint(&r, 0, 1);
            tc_attn_data d;
            tc_attn_prepare(&d, &c, tc_seed(), (uint64_t)(5000 + ti * 1000 + n));
            rand_mask rm;
            const int bq = tc_randint(&r, 0, 1) ? 64 : 128;
            rand_mask_make(&rm, &r, bq, tc_randint(&r, 0, 1) ? c.B : 1, tc_randint(&r, 0, 1) ? c.Hkv : 1, Nq, Nkv,
                           tc_uniform(&r, 0.05, 0.6));
            d.params.block_mask = &rm.m;
            assert_int_equal(ea_ref_attention(&d.q.t, &d.k.t, &d.v.t, &d.params, d.ref, d.ref_lse), EDGEATTN_OK);
            const tc_result res = tc_attn_run(ctx, &d, tc_tolerance(c.qdt, c.kvdt, c.odt));
            if (!res.ok) {
                char desc[256];
                tc_case_describe(&c, desc, sizeof desc);
                fail_msg("tier %s%s, %s, mask %dx64 of %d x %d patterns, nnz %lld: %s", tiers[ti].name,
                         nv_tiles ? " (NVIDIA tiles)" : unfused ? " (unfused)" : "", desc, bq,
                         (int)rm.m.batch, (int)rm.m.heads, (long long)rm.m.nnz, res.why);
            }
            rand_mask_free(&rm);
            tc_attn_free(&d);
            ran++;
        }
        edgeattn_destroy(ctx);
    }
    print_message("block-sparse: %d cases against the reference\n", ran);
}

/* Malformed masks: each refused with its own message, the output untouched. */
static void block_sparse_bad_on(edgeattn_backend be)
{
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.max_batch = 2;
    cfg.max_q_len = 200;
    cfg.max_kv_len = 200;
    cfg.max_heads = 4;
    cfg.max_kv_heads = 2;
    cfg.max_head_dim = 64;
    cfg.backend = be;
    edgeattn_context *ctx = tc_create(&cfg);
    tc_attn_case c = tc_case(2, 4, 2, 130, 200, 64); /* 3 row blocks of 64, 4 key blocks */
    c.lse = 1;
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 77);
    int32_t rp[2 * 2 * 4];
    int32_t ci[64];
    for (int p = 0; p < 4; p++)
        for (int r = 0; r < 4; r++)
            rp[p * 4 + r] = 3 * p + r; /* one key block per row block */
    for (int e = 0; e < 16; e++)
        ci[e] = e % 4;
    edgeattn_block_mask m = {64, 64, 2, 2, 12, rp, ci};
    d.params.block_mask = &m;
    tc_fill_canary(&d.out);
    edgeattn_tensor lt = d.lse.t;
    d.params.lse = &lt;
    assert_int_equal(edgeattn_attention(ctx, &d.q.t, &d.k.t, &d.v.t, &d.out.t, &d.params), EDGEATTN_OK);
    void *snap = tc_snapshot(&d.out);
    struct {
        const char *what, *says;
        edgeattn_status want;
    } cases[] = {
        {"block_q 32", "64 x 64", EDGEATTN_ERR_INVALID_ARG},     {"block_k 128", "64 x 64", EDGEATTN_ERR_INVALID_ARG},
        {"3 batch patterns", "patterns", EDGEATTN_ERR_SHAPE_MISMATCH},
        {"a column past Nkv", "Nkv", EDGEATTN_ERR_INVALID_ARG}, {"a repeat", "increasing", EDGEATTN_ERR_INVALID_ARG},
        {"unsorted", "increasing", EDGEATTN_ERR_INVALID_ARG},   {"row_ptr past nnz", "row_ptr", EDGEATTN_ERR_INVALID_ARG},
        {"row_ptr decreasing", "row_ptr", EDGEATTN_ERR_INVALID_ARG}, {"NULL col_idx", "NULL", EDGEATTN_ERR_NULL_ARG},
        {"col_idx inside out", "overlaps out", EDGEATTN_ERR_STRIDE},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        edgeattn_block_mask b = m;
        int32_t rp2[16], ci2[64];
        memcpy(rp2, rp, sizeof rp2);
        memcpy(ci2, ci, sizeof ci2);
        b.row_ptr = rp2;
        b.col_idx = ci2;
        switch (i) {
        case 0: b.block_q = 32; break;
        case 1: b.block_k = 128; break;
        case 2: b.batch = 3; break;
        case 3: ci2[5] = 4; break;
        case 4: rp2[1] = 0; rp2[2] = 2; ci2[0] = ci2[1] = 1; break; /* row block 1 lists 1, 1 */
        case 5: rp2[1] = 0; rp2[2] = 2; ci2[0] = 2; ci2[1] = 1; break;
        case 6: rp2[15] = 13; break;
        case 7: rp2[2] = 0; break;
        case 8: b.col_idx = NULL; break;
        case 9: b.col_idx = (const int32_t *)d.out.t.data; break;
        }
        d.params.block_mask = &b;
        const edgeattn_status st = edgeattn_attention(ctx, &d.q.t, &d.k.t, &d.v.t, &d.out.t, &d.params);
        if (st != cases[i].want || !strstr(edgeattn_message_of(ctx), cases[i].says) || !tc_unchanged(&d.out, snap))
            fail_msg("%s: status %d (want %d), message '%s' (want '%s'), output %s", cases[i].what, (int)st,
                     (int)cases[i].want, edgeattn_message_of(ctx), cases[i].says,
                     tc_unchanged(&d.out, snap) ? "untouched" : "written");
    }
    /* decode: not an option there */
    free(snap);
    tc_attn_free(&d);
    edgeattn_destroy(ctx);
    edgeattn_config kc = sink_config(0, 0, EDGEATTN_F16, 0);
    kc.backend = be;
    ctx = tc_create(&kc);
    append_stream(ctx, 0, 3, 0, 20, 0, 64);
    tc_tensor q, out;
    tc_tensor_alloc(&q, EDGEATTN_F32, 1, HQ, 1, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&out, EDGEATTN_F32, 1, HQ, 1, D, TC_BHSD, 0, 0, 0);
    tc_rng r;
    tc_rng_init(&r, 1, 1);
    tc_fill_random(&q, &r, -1, 1);
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.block_mask = &m;
    assert_int_equal(edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(edgeattn_message_of(ctx), "block_mask"));
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    edgeattn_destroy(ctx);
}

static void block_sparse_bad(void **state)
{
    (void)state;
    tc_clear_env();
    block_sparse_bad_on(EDGEATTN_BACKEND_CPU);
    if (gpu_present(EDGEATTN_BACKEND_CUDA))
        block_sparse_bad_on(EDGEATTN_BACKEND_CUDA);
    if (gpu_present(EDGEATTN_BACKEND_OPENCL))
        block_sparse_bad_on(EDGEATTN_BACKEND_OPENCL);
}

/* ---------------------------------------------------------------- top-k decode */

/* A cache of N keys in which `nplant` blocks hold keys close to the queries' direction (their scores
 * `lift` above the rest); one decode with topk_tokens and one dense, both against the reference.
 *   exact: the budget is the planted blocks plus the first and the newest: the selection is forced,
 *          and the output must equal the reference over exactly those keys (the dtype's bound);
 *   dense: the output must be within 1e-3 of dense attention, and exp(lse_topk - lse_dense) is the
 *          share of the softmax mass the selection kept (its recall). */
static void topk_case(const tc_tier *tier, edgeattn_dtype dt, int bs, int N, int nplant, double lift, bool exact,
                      int G, uint64_t stream, double *worst_err, double *worst_mass)
{
    enum { HK = 2, DD = 64 };
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_batch = 2;
    cfg.max_q_len = 1;
    cfg.max_kv_len = N + 64;
    cfg.max_heads = G * HK;
    cfg.max_kv_heads = HK;
    cfg.max_head_dim = DD;
    cfg.kv_cache_dtype = dt;
    cfg.kv_summary_block = bs;
    cfg.kv_page_size = tc_randint(&r, 0, 1) ? 32 : 0;
    if (tier && tier->backend == EDGEATTN_BACKEND_OPENCL) /* (OpenCL: contiguous caches with summaries only) */
        cfg.kv_page_size = 0;
    cfg.num_threads = tc_randint(&r, 1, 2);
    edgeattn_context *ctx = tier ? tc_create_tier(&cfg, tier) : tc_create(&cfg);
    const int nblk = (N + bs - 1) / bs;
    /* the query direction of each KV head (the group's queries are near it) */
    double dir[HK][DD];
    for (int h = 0; h < HK; h++) {
        double n2 = 0.0;
        for (int d = 0; d < DD; d++) {
            dir[h][d] = tc_uniform(&r, -1.0, 1.0);
            n2 += dir[h][d] * dir[h][d];
        }
        for (int d = 0; d < DD; d++)
            dir[h][d] /= sqrt(n2);
    }
    /* planted blocks: distinct, not the first or the newest */
    int *plant = malloc(sizeof(int) * (size_t)nblk);
    assert_non_null(plant);
    memset(plant, 0, sizeof(int) * (size_t)nblk);
    for (int i = 0; i < nplant;) {
        const int k = tc_randint(&r, 1, nblk - 2);
        if (!plant[k]) {
            plant[k] = 1;
            i++;
        }
    }
    tc_tensor k, v, q, out, lse, out2, lse2;
    tc_tensor_alloc(&k, EDGEATTN_F32, 1, HK, N, DD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F32, 1, HK, N, DD, TC_BHSD, 0, 0, 0);
    tc_fill_random(&v, &r, -1.0, 1.0);
    const double qnorm = 8.0; /* |q| * scale * |k_planted| - the rest's scores: about `lift` */
    for (int h = 0; h < HK; h++)
        for (int j = 0; j < N; j++) {
            const bool p = plant[j / bs];
            for (int d = 0; d < DD; d++) {
                const double noise = tc_uniform(&r, -0.5, 0.5);
                const double x = p ? lift * sqrt((double)DD) / qnorm * dir[h][d] + 0.3 * noise : noise;
                tc_set(&k.t, 0, h, j, d, tc_round(dt, (float)x));
            }
            for (int d = 0; d < DD; d++)
                tc_set(&v.t, 0, h, j, d, tc_round(dt, tc_get(&v.t, 0, h, j, d)));
        }
    const int32_t ids[1] = {1};
    for (int at = 0; at < N;) { /* in chunks, so summaries are built across appends */
        const int n = at + 700 < N ? tc_randint(&r, 1, 700) : N - at;
        edgeattn_tensor kc = k.t, vc = v.t;
        kc.data = (float *)k.t.data + (size_t)at * DD;
        vc.data = (float *)v.t.data + (size_t)at * DD;
        kc.shape[2] = vc.shape[2] = n;
        kc.bytes -= (size_t)at * DD * 4;
        vc.bytes -= (size_t)at * DD * 4;
        assert_int_equal(edgeattn_kv_append(ctx, 0, ids, &kc, &vc, NULL, 0), EDGEATTN_OK);
        at += n;
    }
    /* q in the cache's dtype (a 16-bit q takes the GPUs' tensor-core decode, an F32 one their SIMT path) */
    tc_tensor_alloc(&q, dt, 1, G * HK, 1, DD, TC_BHSD, 0, 0, 0);
    for (int h = 0; h < G * HK; h++)
        for (int d = 0; d < DD; d++)
            tc_set(&q.t, 0, h, 0, d, (float)(qnorm * dir[h / G][d] + tc_uniform(&r, -0.3, 0.3)));
    tc_tensor_alloc(&out, EDGEATTN_F32, 1, G * HK, 1, DD, TC_BHSD, 1, 1, 1);
    tc_tensor_alloc(&out2, EDGEATTN_F32, 1, G * HK, 1, DD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&lse, EDGEATTN_F32, 1, G * HK, 1, 1, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&lse2, EDGEATTN_F32, 1, G * HK, 1, 1, TC_BHSD, 0, 0, 0);
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.topk_tokens = (exact ? nplant + 2 : nplant + 2 + tc_randint(&r, 0, 4)) * bs - tc_randint(&r, 0, bs - 1);
    /* the reference: over the forced selection (exact), or over every key */
    tc_tensor rk, rv;
    int sel_n = 0;
    for (int j = 0; j < N; j++)
        sel_n += !exact || plant[j / bs] || j / bs == 0 || j / bs == nblk - 1;
    tc_tensor_alloc(&rk, EDGEATTN_F32, 1, HK, sel_n, DD, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&rv, EDGEATTN_F32, 1, HK, sel_n, DD, TC_BHSD, 0, 0, 0);
    for (int h = 0; h < HK; h++)
        for (int j = 0, o = 0; j < N; j++)
            if (!exact || plant[j / bs] || j / bs == 0 || j / bs == nblk - 1) {
                for (int d = 0; d < DD; d++) {
                    tc_set(&rk.t, 0, h, o, d, tc_get(&k.t, 0, h, j, d));
                    tc_set(&rv.t, 0, h, o, d, tc_get(&v.t, 0, h, j, d));
                }
                o++;
            }
    double *ref = malloc(sizeof(double) * G * HK * DD), *ref_lse = malloc(sizeof(double) * G * HK);
    assert_non_null(ref);
    assert_non_null(ref_lse);
    edgeattn_params rp;
    edgeattn_params_default(&rp);
    assert_int_equal(ea_ref_attention(&q.t, &rk.t, &rv.t, &rp, ref, ref_lse), EDGEATTN_OK);
    tc_fill_canary(&out);
    edgeattn_tensor lt = lse.t;
    p.lse = &lt;
    edgeattn_status st = edgeattn_decode(ctx, 0, ids, NULL, &q.t, &out.t, &p);
    if (st != EDGEATTN_OK)
        fail_msg("top-k decode: %s", edgeattn_message_of(ctx));
    tc_result res;
    /* against dense attention: 1e-3, except with a BF16 q, which on a GPU takes the tensor cores: their P
     * rounded to BF16 (2^-8) alone measured 1.6e-3, so there the dense BF16 bound applies */
    const double tol_q = tc_tolerance(dt, EDGEATTN_F32, EDGEATTN_F32);
    tc_compare(&res, &out, &lse, ref, ref_lse, 1, G * HK, 1, DD, exact ? tol_q : dt == EDGEATTN_BF16 ? tol_q : 1e-3);
    if (!res.ok && (exact || !strstr(res.why, "lse")))
        fail_msg("top-k decode (%s %s, block %d, N %d, %d planted, budget %d, %s): %s", tier ? tier->name : "auto",
                 tc_dtype_name(dt), bs, N, nplant, (int)p.topk_tokens, exact ? "forced selection" : "against dense",
                 res.why);
    *worst_err = res.err > *worst_err ? res.err : *worst_err;
    /* the dense decode, for the mass the selection kept */
    edgeattn_tensor lt2 = lse2.t;
    p.lse = &lt2;
    p.topk_tokens = 0;
    assert_int_equal(edgeattn_decode(ctx, 0, ids, NULL, &q.t, &out2.t, &p), EDGEATTN_OK);
    for (int h = 0; h < G * HK && !exact; h++) {
        const double mass = exp((double)tc_get(&lse.t, 0, h, 0, 0) - (double)tc_get(&lse2.t, 0, h, 0, 0));
        *worst_mass = mass < *worst_mass ? mass : *worst_mass;
    }
    free(ref);
    free(ref_lse);
    free(plant);
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_tensor_free(&out2);
    tc_tensor_free(&lse);
    tc_tensor_free(&lse2);
    tc_tensor_free(&rk);
    tc_tensor_free(&rv);
    edgeattn_destroy(ctx);
}

static void topk_decode(void **state)
{
    (void)state;
    tc_clear_env();
    tc_tier tiers[8];
    const int ntier = sparse_tiers(tiers, 8);
    static const int bss[] = {16, 32, 64, 128};
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    double err_exact = 0.0, err_dense = 0.0, mass = 1.0, unused = 1.0;
    int n = 0;
    for (int ti = 0; ti < ntier; ti++)
        for (int i = 0; i < (tc_long() ? 24 : 8); i++, n++) {
            tc_rng r;
            tc_rng_init(&r, tc_seed(), (uint64_t)(9000 + n));
            const int bs = TC_PICK(&r, bss), N = tc_randint(&r, 8 * bs, 3000);
            const edgeattn_dtype dt = TC_PICK(&r, dts);
            const int nplant = tc_randint(&r, 1, 6 < (N / bs - 2) ? 6 : N / bs - 2);
            /* 4 query heads per KV head (the decode kernel), or 16 (the general driver) */
            const int G = i % 3 == 2 ? 16 : 4;
            topk_case(&tiers[ti], dt, bs, N, nplant, 8.0, true, G, (uint64_t)(9100 + n), &err_exact, &unused);
            topk_case(&tiers[ti], dt, bs, N, nplant, 14.0, false, G, (uint64_t)(9200 + n), &err_dense, &mass);
        }
    print_message("top-k: %d forced selections (worst error %.2g), %d against dense attention (worst error %.2g, "
                  "least softmax mass kept %.6f)\n", n, err_exact, n, err_dense, mass);
}

int main(void)
{
    printf("seed %llu (EDGEATTN_TEST_SEED=%llu repeats this run)\n", (unsigned long long)tc_seed(),
           (unsigned long long)tc_seed());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plan_bytes),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(read_and_truncate),
        cmocka_unit_test(streaming_decode),
        cmocka_unit_test(block_sparse_parity),
        cmocka_unit_test(block_sparse_bad),
        cmocka_unit_test(topk_decode),
    };
    const char *filter = getenv("EDGEATTN_TEST_FILTER"); /* e.g. "block_sparse_*" */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
