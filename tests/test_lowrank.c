/*
 * Low-rank attention (issue 14): Linformer projections.
 *
 * out = softmax(scale Q (E K)^T) (F V) with E, F [1 or B, 1 or Hkv, k, Nkv]: every CPU tier against the
 * double reference (core/reference.c projects in double), at key counts and projected row counts
 * around the kernels' blocks (8 rows, 16-key steps, kb tiles), every dtype of Q/K/V/out and of the
 * projections, broadcast and per-head projections, GQA; then the refusals.
 */
#include "test_common.h"

#include "../core/reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static edgeattn_config lr_config(int max_k)
{
    edgeattn_config c;
    edgeattn_config_default(&c);
    c.max_batch = 2;
    c.max_q_len = 300;
    c.max_kv_len = 700;
    c.max_heads = 8;
    c.max_kv_heads = 4;
    c.max_head_dim = 128;
    c.max_lowrank = max_k;
    c.num_threads = 2;
    c.backend = EDGEATTN_BACKEND_CPU;
    return c;
}

static void linformer_parity(void **state)
{
    (void)state;
    tc_clear_env();
    tc_tier tiers[8];
    int ntier = tc_cpu_tiers(tiers, 6); /* (room for the two GPU backends) */
    /* CUDA where a GPU (or the mock driver) is present, OpenCL where a device is (PoCL in CI): both serve it */
    static const edgeattn_backend gpus[2] = {EDGEATTN_BACKEND_CUDA, EDGEATTN_BACKEND_OPENCL};
    for (int gi = 0; gi < 2; gi++) {
        edgeattn_config cg = lr_config(200);
        cg.backend = gpus[gi];
        edgeattn_plan_info info;
        edgeattn_message msg;
        const edgeattn_status st = edgeattn_plan(&cg, &info, &msg);
        if (st != EDGEATTN_ERR_BACKEND_UNAVAILABLE) {
            if (st != EDGEATTN_OK)
                fail_msg("%s: plan of a Linformer config: %s", gi ? "opencl" : "cuda", msg.text);
            memset(&tiers[ntier], 0, sizeof tiers[ntier]);
            snprintf(tiers[ntier].name, sizeof tiers[ntier].name, "%s", gi ? "opencl" : "cuda");
            tiers[ntier++].backend = gpus[gi];
        }
    }
    static const int lens[] = {1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 300, 513, 700};
    static const int ks[] = {1, 7, 8, 9, 16, 31, 64, 65, 200};
    static const int dims[] = {32, 64, 72, 128};
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    static const int hs[][2] = {{1, 1}, {4, 1}, {4, 2}, {8, 4}, {2, 2}};
    const int per_tier = tc_long() ? 120 : 24;
    double worst = 0.0;
    int ran = 0;
    for (int ti = 0; ti < ntier; ti++) {
        edgeattn_config cfg = lr_config(200);
        cfg.num_threads = 1 + ti % 2;
        edgeattn_context *ctx = tc_create_tier(&cfg, &tiers[ti]);
        for (int n = 0; n < per_tier; n++, ran++) {
            tc_rng r;
            tc_rng_init(&r, tc_seed(), (uint64_t)(100 + ti * 1000 + n));
            const int hi = tc_randint(&r, 0, 4);
            const int nq = TC_PICK(&r, lens);
            tc_attn_case c = tc_case(tc_randint(&r, 1, 2), hs[hi][0], hs[hi][1], nq < 300 ? nq : 300, TC_PICK(&r, lens),
                                     TC_PICK(&r, dims));
            c.qdt = TC_PICK(&r, dts);
            c.kvdt = TC_PICK(&r, dts);
            c.odt = TC_PICK(&r, dts);
            c.lse = tc_randint(&r, 0, 1);
            c.pad = tc_randint(&r, 0, 1);
            if (tc_randint(&r, 0, 4) == 0)
                c.softcap = 20.0f;
            tc_attn_data d;
            tc_attn_prepare(&d, &c, tc_seed(), (uint64_t)(200 + ti * 1000 + n));
            /* projections: [1 or B, 1 or Hkv, k, Nkv], entries of size 1/sqrt(Nkv) (a mean-like projection) */
            const int kp = TC_PICK(&r, ks), k = c.Nkv > 300 && kp > 64 ? 64 : kp; /* (the reference's cost) */
            const int pb = tc_randint(&r, 0, 1) ? c.B : 1, ph = tc_randint(&r, 0, 1) ? c.Hkv : 1;
            tc_tensor e, f;
            tc_tensor_alloc(&e, TC_PICK(&r, dts), pb, ph, k, c.Nkv, tc_randint(&r, 0, 1), tc_randint(&r, 0, 1), 1, 1);
            tc_tensor_alloc(&f, TC_PICK(&r, dts), pb, ph, k, c.Nkv, TC_BHSD, 0, 0, 0);
            const double amp = 2.0 / sqrt((double)c.Nkv);
            tc_fill_random(&e, &r, -amp, amp);
            tc_fill_random(&f, &r, -amp, amp);
            edgeattn_linformer lf;
            memset(&lf, 0, sizeof lf);
            lf.e = &e.t;
            lf.f = &f.t;
            d.params.linformer = &lf;
            assert_int_equal(ea_ref_attention(&d.q.t, &d.k.t, &d.v.t, &d.params, d.ref, d.ref_lse), EDGEATTN_OK);
            /* (E and F enter exactly as given: the bound is the inputs' and output's) */
            const tc_result res = tc_attn_run(ctx, &d, tc_tolerance(c.qdt, c.kvdt, c.odt));
            if (!res.ok) {
                char desc[256];
                tc_case_describe(&c, desc, sizeof desc);
                fail_msg("tier %s, %s, k %d, projections %dx%d %s/%s: %s", tiers[ti].name, desc, k, pb, ph,
                         tc_dtype_name(e.t.dtype), tc_dtype_name(f.t.dtype), res.why);
            }
            worst = res.err > worst ? res.err : worst;
            tc_tensor_free(&e);
            tc_tensor_free(&f);
            tc_attn_free(&d);
        }
        edgeattn_destroy(ctx);
    }
    print_message("linformer: %d cases against the double reference, worst relative error %.2g\n", ran, worst);
}

/* Each refusal with its status and message; the output untouched. */
static void linformer_bad(void **state)
{
    (void)state;
    tc_clear_env();
    edgeattn_config cfg = lr_config(16);
    edgeattn_context *ctx = tc_create(&cfg);
    tc_attn_case c = tc_case(2, 4, 2, 40, 100, 64);
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), 5);
    tc_tensor e, f, e_big, e_bad;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 6);
    tc_tensor_alloc(&e, EDGEATTN_F32, 1, 1, 16, 100, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&f, EDGEATTN_F32, 1, 1, 16, 100, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&e_big, EDGEATTN_F32, 1, 1, 17, 100, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&e_bad, EDGEATTN_F32, 1, 3, 16, 100, TC_BHSD, 0, 0, 0);
    tc_fill_random(&e, &r, -0.1, 0.1);
    tc_fill_random(&f, &r, -0.1, 0.1);
    tc_fill_random(&e_big, &r, -0.1, 0.1);
    tc_fill_random(&e_bad, &r, -0.1, 0.1);
    edgeattn_linformer lf;
    memset(&lf, 0, sizeof lf);
    lf.e = &e.t;
    lf.f = &f.t;
    d.params.linformer = &lf;
    tc_fill_canary(&d.out);
    const edgeattn_status ok = edgeattn_attention(ctx, &d.q.t, &d.k.t, &d.v.t, &d.out.t, &d.params);
    assert_int_equal(ok, EDGEATTN_OK);
    void *snap = tc_snapshot(&d.out);
    const int32_t lens[2] = {50, 60};
    edgeattn_tensor f_short = f.t;
    f_short.shape[2] = 8;
    edgeattn_tensor e_in_out = e.t; /* e's view placed inside out */
    e_in_out.data = d.out.t.data;
    e_in_out.bytes = d.out.t.bytes;
    e_in_out.shape[2] = 1; /* 100 F32 values at the start of out */
    e_in_out.stride[0] = e_in_out.stride[1] = e_in_out.stride[2] = 100;
    e_in_out.dtype = d.out.t.dtype;
    struct {
        const char *what, *says;
        edgeattn_status want;
    } cases[] = {
        {"e NULL", "NULL", EDGEATTN_ERR_NULL_ARG},
        {"causal", "causal", EDGEATTN_ERR_INVALID_ARG},
        {"a window", "windows", EDGEATTN_ERR_INVALID_ARG},
        {"kv_lens", "kv_lens", EDGEATTN_ERR_INVALID_ARG},
        {"k past max_lowrank", "max_lowrank", EDGEATTN_ERR_CAPACITY},
        {"3 heads of projections over 2 KV heads", "shape", EDGEATTN_ERR_SHAPE_MISMATCH},
        {"f of another k", "one k", EDGEATTN_ERR_SHAPE_MISMATCH},
        {"reserved bytes", "reserved", EDGEATTN_ERR_INVALID_ARG},
        {"e inside out", "overlaps", EDGEATTN_ERR_STRIDE},
        {"e of 8 keys over 100", "shape", EDGEATTN_ERR_SHAPE_MISMATCH},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        edgeattn_linformer l2 = lf;
        edgeattn_params p = d.params;
        p.linformer = &l2;
        edgeattn_tensor e_short = e.t;
        switch (i) {
        case 0: l2.e = NULL; break;
        case 1: p.causal = 1; break;
        case 2: p.window_left = 5; break;
        case 3: p.kv_lens = lens; break;
        case 4: l2.e = l2.f = &e_big.t; break;
        case 5: l2.e = &e_bad.t; break;
        case 6: l2.f = &f_short; break;
        case 7: l2.reserved[3] = 1; break;
        case 8: l2.e = &e_in_out; break;
        case 9: e_short.shape[3] = 8; l2.e = &e_short; break;
        }
        const edgeattn_status st = edgeattn_attention(ctx, &d.q.t, &d.k.t, &d.v.t, &d.out.t, &p);
        if (st != cases[i].want || !strstr(edgeattn_message_of(ctx), cases[i].says) || !tc_unchanged(&d.out, snap))
            fail_msg("%s: status %d (want %d), message '%s' (want '%s'), output %s", cases[i].what, (int)st,
                     (int)cases[i].want, edgeattn_message_of(ctx), cases[i].says,
                     tc_unchanged(&d.out, snap) ? "untouched" : "written");
    }
    free(snap);
    edgeattn_destroy(ctx);
    /* no max_lowrank planned: a Linformer call is beyond the plan */
    edgeattn_config c0 = lr_config(0);
    ctx = tc_create(&c0);
    assert_int_equal(edgeattn_attention(ctx, &d.q.t, &d.k.t, &d.v.t, &d.out.t, &d.params), EDGEATTN_ERR_CAPACITY);
    edgeattn_destroy(ctx);
    /* config: max_lowrank < 0 */
    edgeattn_plan_info info;
    edgeattn_message msg;
    c0.max_lowrank = -1;
    assert_int_equal(edgeattn_plan(&c0, &info, &msg), EDGEATTN_ERR_INVALID_ARG);
    tc_tensor_free(&e);
    tc_tensor_free(&f);
    tc_tensor_free(&e_big);
    tc_tensor_free(&e_bad);
    tc_attn_free(&d);
}

int main(void)
{
    printf("seed %llu (EDGEATTN_TEST_SEED=%llu repeats this run)\n", (unsigned long long)tc_seed(),
           (unsigned long long)tc_seed());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linformer_bad),
        cmocka_unit_test(linformer_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
