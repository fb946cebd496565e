/*
 * Parity: every backend the library can run here (each CPU tier via cpu_disable_mask, plus each tile
 * table override, plus CUDA / OpenCL where a forced create succeeds) against the double reference
 * ea_ref_attention on fresh random inputs.
 *
 * Metric: err = max_i |out_i - ref_i| / max_i |ref_i| over all elements of a case, with the
 * reference computed from the same (rounded) stored inputs. Tolerances by the lowest precision
 * among the stored tensors: F32 1e-5, F16 2e-3, BF16 1e-2 (cases with an explicit scale or inputs
 * larger than 1 may widen this to 4 * 2^-24 * max|score|, the FP32 rounding of the scores; see
 * test_numerics.c). LSE: |lse - ref| / max(1, |ref|) under
 * the same tolerance. Fully masked rows must be exact zeros with lse -inf.
 * Every output is canary-filled: each element of the view must be written, each element of the
 * buffer outside the view (front, back and row padding) must be left alone; inputs carry NaN poison
 * outside their views.
 *
 * A failure prints the case, the backend/tier/tiles and the seed; EDGEATTN_TEST_SEED=<seed> repeats
 * the run exactly. EDGEATTN_TEST_LONG=1 runs larger and more random cases.
 */
#include "test_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/reference.h"

/* ---------------------------------------------------------------- the contexts under test */

#define MAX_RUNNERS 24

typedef struct runner {
    char label[192];
    tc_tier tier;
    const char *tiles; /* EDGEATTN_CPU_TILES value or NULL */
    edgeattn_context *ctx;
} runner;

static runner g_run[MAX_RUNNERS];
static int g_nrun;
static tc_tier g_tiers[8];
static int g_ntiers;

/* Tile tables per tier: the tier's own, the smallest (every key tile and row block boundary shows
 * up at small sizes), and a middle one on the best tier (all tiers with EDGEATTN_TEST_LONG=1). */
static const char *const tile_variants[] = {NULL, "kb=16,rb=8", "kb=64,rb=16"};

static void base_config(edgeattn_config *cfg)
{
    edgeattn_config_default(cfg);
    cfg->max_batch = TC_MAX_B;
    cfg->max_q_len = 1100;
    cfg->max_kv_len = 1100;
    cfg->max_heads = 16;
    cfg->max_kv_heads = 16;
    cfg->max_head_dim = 256;
    cfg->num_threads = 2;
}

static char g_tier_errors[1024]; /* tiers that did not run what their mask asked for */

/* Creates a context for (tier, tiles); NULL with a note when a tile override is refused. A context
 * whose tier differs from the expected one is still tested (under its real name); the mismatch fails
 * test_tier_selection. */
static edgeattn_context *create_variant(const edgeattn_config *cfg, const tc_tier *tier, const char *tiles)
{
    if (!tiles) {
        edgeattn_config c = *cfg;
        c.cpu_disable_mask = tier->disable;
        c.backend = tier->backend;
        edgeattn_context *ctx = tc_create(&c);
        char why[256];
        if (!tc_tier_matches(ctx, tier, why, sizeof why) && !strstr(g_tier_errors, why)) {
            const size_t o = strlen(g_tier_errors);
            snprintf(g_tier_errors + o, sizeof g_tier_errors - o, "%s\n", why);
        }
        return ctx;
    }
    setenv("EDGEATTN_CPU_TILES", tiles, 1);
    edgeattn_config c = *cfg;
    c.cpu_disable_mask = tier->disable;
    c.backend = tier->backend;
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_create(&c, NULL, 0, &ctx, &msg);
    unsetenv("EDGEATTN_CPU_TILES");
    if (st != EDGEATTN_OK) {
        print_message("note: tier %s with EDGEATTN_CPU_TILES=%s refused (%s): tile variant skipped\n", tier->name,
                      tiles, msg.text);
        return NULL;
    }
    return ctx;
}

static void add_gpu(const edgeattn_config *cfg, edgeattn_backend be, const char *name)
{
    edgeattn_config c = *cfg;
    c.backend = be;
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_create(&c, NULL, 0, &ctx, &msg);
    if (st == EDGEATTN_ERR_BACKEND_UNAVAILABLE) {
        print_message("note: backend %s not available here (%s): skipped\n", name, msg.text);
        return;
    }
    if (st != EDGEATTN_OK)
        fail_msg("forced backend %s: create returned %d (%s): %s", name, (int)st, edgeattn_status_string(st), msg.text);
    edgeattn_backend_info info;
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    if (info.backend != be || strcmp(info.backend_name, name) != 0)
        fail_msg("forced backend %s silently became %s", name, info.backend_name);
    runner *r = &g_run[g_nrun++];
    snprintf(r->label, sizeof r->label, "%s (%s)", name, info.device);
    snprintf(r->tier.name, sizeof r->tier.name, "%s", name);
    r->tier.backend = be;
    r->ctx = ctx;
}

static int setup(void **state)
{
    (void)state;
    tc_clear_env();
    (void)tc_seed();
    edgeattn_config cfg;
    base_config(&cfg);
    g_ntiers = tc_cpu_tiers(g_tiers, 8);
    g_nrun = 0;
    for (int t = 0; t < g_ntiers; t++)
        for (size_t v = 0; v < sizeof tile_variants / sizeof tile_variants[0]; v++) {
            if (v == 2 && t != g_ntiers - 1 && !tc_long())
                continue;
            edgeattn_context *ctx = create_variant(&cfg, &g_tiers[t], tile_variants[v]);
            if (!ctx)
                continue;
            runner *r = &g_run[g_nrun++];
            r->tier = g_tiers[t];
            r->tiles = tile_variants[v];
            r->ctx = ctx;
            edgeattn_backend_info info;
            assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
            snprintf(r->label, sizeof r->label, "cpu tier %s (mask 0x%x, tiles %s)", info.tier,
                     (unsigned)g_tiers[t].disable, tile_variants[v] ? tile_variants[v] : "default");
        }
    /* the best tier with one thread (no split-KV) and with three (uneven work split) */
    static const int thread_variants[] = {1, 3};
    for (size_t v = 0; v < sizeof thread_variants / sizeof thread_variants[0] && g_ntiers > 0; v++) {
        edgeattn_config c = cfg;
        c.num_threads = thread_variants[v];
        runner *r = &g_run[g_nrun++];
        r->tier = g_tiers[g_ntiers - 1];
        r->ctx = create_variant(&c, &r->tier, NULL);
        snprintf(r->label, sizeof r->label, "cpu tier %s (mask 0x%x, tiles default, %d thread(s))", g_tiers[g_ntiers - 1].name,
                 (unsigned)g_tiers[g_ntiers - 1].disable, thread_variants[v]);
    }
    add_gpu(&cfg, EDGEATTN_BACKEND_CUDA, "cuda");
    add_gpu(&cfg, EDGEATTN_BACKEND_OPENCL, "opencl");
    print_message("parity over %d context(s):\n", g_nrun);
    for (int i = 0; i < g_nrun; i++)
        print_message("  %s\n", g_run[i].label);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < g_nrun; i++)
        edgeattn_destroy(g_run[i].ctx);
    g_nrun = 0;
    return 0;
}

/* Each CPU tier of this machine is selected by its disable mask (checked at setup). */
static void test_tier_selection(void **state)
{
    (void)state;
    if (g_tier_errors[0])
        fail_msg("tier selection:\n%s", g_tier_errors);
}

/* ---------------------------------------------------------------- running a list of cases */

static int64_t cost(const tc_attn_case *c)
{
    return (int64_t)c->B * c->Hq * c->Nq * c->Nkv * c->D;
}

/* Reference work per case (multiply-adds): keeps the suite to seconds natively and minutes under
 * qemu / sanitizers. */
static int64_t cost_cap(void)
{
    return tc_long() ? 64ll << 20 : 1ll << 20;
}

/* Shrinks batch, then heads (keeping the GQA ratio), then lengths until the case fits the cap. */
static void fit(tc_attn_case *c)
{
    while (cost(c) > cost_cap()) {
        if (c->B > 1)
            c->B--;
        else if (c->Hkv > 1 && c->Hkv % 2 == 0)
            c->Hkv /= 2, c->Hq /= 2;
        else if (c->Hq > c->Hkv)
            c->Hq = c->Hkv * ((c->Hq / c->Hkv + 1) / 2);
        else if (c->Nq >= c->Nkv && c->Nq > 1)
            c->Nq = (c->Nq + 1) / 2;
        else
            c->Nkv = (c->Nkv + 1) / 2;
    }
    for (int b = 0; b < c->B; b++)
        if (c->kv_lens[b] > c->Nkv)
            c->kv_lens[b] = c->Nkv;
}

static const int lengths[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257};
static const int odd_lengths[] = {3, 5, 23, 47, 77, 100, 191, 200, 311};
static const int head_dims[] = {32, 64, 80, 96, 128, 256};

static int pick_len(tc_rng *r)
{
    return tc_randint(r, 0, 3) == 0 ? TC_PICK(r, odd_lengths) : TC_PICK(r, lengths);
}

/* Random layout, padding and output dtype-neutral details. */
static void randomize_layout(tc_attn_case *c, tc_rng *r)
{
    c->qlayout = tc_randint(r, 0, 1);
    c->kvlayout = tc_randint(r, 0, 1);
    c->olayout = tc_randint(r, 0, 1);
    c->pad = tc_randint(r, 0, 2) == 0 ? 0 : tc_randint(r, 1, 9);
}

static void random_kv_lens(tc_attn_case *c, tc_rng *r)
{
    c->use_kv_lens = 1;
    for (int b = 0; b < c->B; b++)
        c->kv_lens[b] = tc_randint(r, 0, 7) == 0 ? c->Nkv : tc_randint(r, 1, c->Nkv);
    if (c->B > 1 && c->kv_lens[0] == c->kv_lens[1] && c->Nkv > 1)
        c->kv_lens[1] = c->kv_lens[0] > 1 ? c->kv_lens[0] - 1 : 2; /* make them differ */
}

/* Runs every case on every context; reports every failure, then fails the test if any. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_cases(const char *group, tc_attn_case *cases, int n, uint64_t stream_base)
{
    const uint64_t seed = tc_seed();
    const double t0 = now_s();
    int failures = 0;
    double worst[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        tc_attn_case *c = &cases[i];
        fit(c);
        tc_attn_data d;
        tc_attn_prepare(&d, c, seed, stream_base + (uint64_t)i);
        double tol = tc_tolerance(c->qdt, c->kvdt, c->odt);
        if (c->in_scale > 1.0 || c->scale > 0.0f) /* larger scores than usual: see test_numerics.c */
            tol = fmax(tol, tc_tolerance_f32_scores(tc_max_score(&d.q.t, &d.k.t, c->scale)));
        for (int k = 0; k < g_nrun; k++) {
            const tc_result res = tc_attn_run(g_run[k].ctx, &d, tol);
            const int prec = tol > 5e-3 ? 2 : tol > 5e-5 ? 1 : 0;
            if (res.ok && res.err > worst[prec])
                worst[prec] = res.err;
            if (!res.ok) {
                char desc[512];
                tc_case_describe(c, desc, sizeof desc);
                print_error("FAIL %s case %d on %s\n     %s\n     %s\n     seed %llu (EDGEATTN_TEST_SEED=%llu)\n",
                            group, i, g_run[k].label, desc, res.why, (unsigned long long)seed,
                            (unsigned long long)seed);
                failures++;
            }
        }
        tc_attn_free(&d);
    }
    print_message("%s: %d case(s) x %d context(s), worst err f32 %.2e, f16 %.2e, bf16 %.2e (%.1f s)\n", group, n,
                  g_nrun, worst[0], worst[1], worst[2], now_s() - t0);
    if (failures)
        fail_msg("%s: %d failing run(s), see above", group, failures);
}

#define MAX_CASES 512

/* ---------------------------------------------------------------- attention groups */

static void test_head_dims(void **state)
{
    (void)state;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 1000);
    static tc_attn_case cases[MAX_CASES];
    int n = 0;
    for (size_t i = 0; i < sizeof head_dims / sizeof head_dims[0]; i++)
        for (int rep = 0; rep < 4; rep++) {
            static const int hq[] = {1, 2, 4, 4}, hk[] = {1, 1, 2, 1};
            tc_attn_case c = tc_case(tc_randint(&r, 1, 2), hq[rep], hk[rep], pick_len(&r), pick_len(&r), head_dims[i]);
            randomize_layout(&c, &r);
            c.causal = tc_randint(&r, 0, 1);
            cases[n++] = c;
        }
    run_cases("head_dims", cases, n, 1000 << 10);
}

static void test_lengths(void **state)
{
    (void)state;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 2000);
    static tc_attn_case cases[MAX_CASES];
    int n = 0;
    static const int dims[] = {32, 64, 128};
    const int nl = (int)(sizeof lengths / sizeof lengths[0]);
    for (int i = 0; i < nl + 4; i++) {
        const int L = i < nl ? lengths[i] : odd_lengths[i - nl];
        /* L query rows against a sampled key length */
        tc_attn_case a = tc_case(1, tc_randint(&r, 1, 2), 1, L, pick_len(&r), TC_PICK(&r, dims));
        randomize_layout(&a, &r);
        a.causal = tc_randint(&r, 0, 1);
        cases[n++] = a;
        /* few query rows (decode-like, the unpacked path) against L keys */
        tc_attn_case b = tc_case(1, 2, tc_randint(&r, 1, 2), tc_randint(&r, 1, 9), L, TC_PICK(&r, dims));
        randomize_layout(&b, &r);
        b.causal = tc_randint(&r, 0, 1);
        cases[n++] = b;
        /* square causal prefill */
        tc_attn_case s = tc_case(1, 1, 1, L, L, TC_PICK(&r, dims));
        s.causal = 1;
        randomize_layout(&s, &r);
        cases[n++] = s;
    }
    if (tc_long()) {
        static const int big[] = {511, 512, 513, 1023, 1024};
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
            tc_attn_case c = tc_case(1, 2, 1, big[i], big[i], 64);
            c.causal = (int)(i & 1);
            cases[n++] = c;
            tc_attn_case d = tc_case(1, 4, 1, 3, big[i], 128);
            cases[n++] = d;
        }
    }
    run_cases("lengths", cases, n, 2000 << 10);
}

static void test_masks(void **state)
{
    (void)state;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 3000);
    static tc_attn_case cases[MAX_CASES];
    int n = 0;
    const int reps = tc_long() ? 12 : 3;
    for (int opt = 0; opt < 12; opt++)
        for (int rep = 0; rep < reps; rep++) {
            tc_attn_case c = tc_case(tc_randint(&r, 1, 3), 2, tc_randint(&r, 1, 2), pick_len(&r), pick_len(&r),
                                     TC_PICK(&r, head_dims));
            randomize_layout(&c, &r);
            c.lse = tc_randint(&r, 0, 1);
            switch (opt) {
            case 0: /* causal, Nq < Nkv */
                c.causal = 1;
                if (c.Nq > c.Nkv) {
                    const int t = c.Nq;
                    c.Nq = c.Nkv, c.Nkv = t;
                }
                break;
            case 1: /* causal, Nq == Nkv */
                c.causal = 1;
                c.Nkv = c.Nq;
                break;
            case 2: /* causal, Nq > Nkv: the first rows see no key */
                c.causal = 1;
                c.Nq = c.Nkv + tc_randint(&r, 1, 20);
                break;
            case 3: c.wl = tc_randint(&r, 0, 40); break;
            case 4: c.wr = tc_randint(&r, 0, 40); break;
            case 5:
                c.wl = tc_randint(&r, 0, 70);
                c.wr = tc_randint(&r, 0, 70);
                break;
            case 6: /* causal + sliding window (the usual local attention) */
                c.causal = 1;
                c.wl = tc_randint(&r, 0, 64);
                break;
            case 7: /* causal + both windows (right is then moot) */
                c.causal = 1;
                c.wl = tc_randint(&r, 0, 20);
                c.wr = tc_randint(&r, 0, 20);
                break;
            case 8: /* kv_lens, batch > 1 with differing lengths */
                c.B = tc_randint(&r, 2, 4);
                random_kv_lens(&c, &r);
                break;
            case 9: /* kv_lens + causal */
                c.B = tc_randint(&r, 2, 4);
                c.causal = 1;
                random_kv_lens(&c, &r);
                break;
            case 10: /* kv_lens + window */
                c.B = tc_randint(&r, 2, 4);
                c.wl = tc_randint(&r, 0, 30);
                c.wr = tc_randint(&r, 0, 30);
                random_kv_lens(&c, &r);
                break;
            case 11: /* everything at once */
                c.B = tc_randint(&r, 2, 4);
                c.causal = 1;
                c.wl = tc_randint(&r, 0, 50);
                random_kv_lens(&c, &r);
                c.bias_mode = tc_randint(&r, 1, 4);
                c.softcap = 20.0f;
                c.lse = 1;
                break;
            }
            cases[n++] = c;
        }
    run_cases("masks", cases, n, 3000 << 10);
}

static void test_bias_softcap_lse_scale(void **state)
{
    (void)state;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 4000);
    static tc_attn_case cases[MAX_CASES];
    int n = 0;
    const int reps = tc_long() ? 10 : 2;
    for (int opt = 0; opt < 9; opt++)
        for (int rep = 0; rep < reps; rep++) {
            tc_attn_case c = tc_case(tc_randint(&r, 1, 3), 4, tc_randint(&r, 1, 2) * 2, pick_len(&r), pick_len(&r),
                                     TC_PICK(&r, head_dims));
            randomize_layout(&c, &r);
            c.causal = tc_randint(&r, 0, 1);
            switch (opt) {
            case 0: c.bias_mode = TC_BIAS_FULL; break;
            case 1: c.bias_mode = TC_BIAS_BCAST_B; break;
            case 2: c.bias_mode = TC_BIAS_BCAST_H; break;
            case 3: c.bias_mode = TC_BIAS_BCAST_BH; break;
            case 4: c.softcap = (float)tc_uniform(&r, 0.5, 8.0); break;
            case 5:
                c.softcap = 30.0f;
                c.in_scale = 3.0;
                c.bias_mode = tc_randint(&r, 1, 4);
                break;
            case 6: c.lse = 1; break;
            case 7: /* explicit scale */
                c.scale = (float)tc_uniform(&r, 0.01, 0.5);
                c.lse = 1;
                break;
            case 8:
                c.lse = 1;
                c.bias_mode = tc_randint(&r, 1, 4);
                c.softcap = 10.0f;
                c.B = 3;
                random_kv_lens(&c, &r);
                break;
            }
            cases[n++] = c;
        }
    run_cases("bias/softcap/lse/scale", cases, n, 4000 << 10);
}

static void test_gqa(void **state)
{
    (void)state;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 5000);
    static tc_attn_case cases[MAX_CASES];
    int n = 0;
    static const int ratios[][2] = {{1, 1}, {2, 2}, {4, 1}, {8, 2}, {8, 1}, {16, 2}, {6, 1}, {12, 4}, {16, 1}};
    static const int nq[] = {1, 2, 3, 9, 17, 65};
    for (size_t i = 0; i < sizeof ratios / sizeof ratios[0]; i++)
        for (int rep = 0; rep < 2; rep++) {
            tc_attn_case c = tc_case(tc_randint(&r, 1, 2), ratios[i][0], ratios[i][1], TC_PICK(&r, nq), pick_len(&r),
                                     TC_PICK(&r, head_dims));
            randomize_layout(&c, &r);
            c.causal = tc_randint(&r, 0, 1);
            c.lse = tc_randint(&r, 0, 1);
            if (rep == 1 && c.B > 1)
                random_kv_lens(&c, &r);
            cases[n++] = c;
        }
    run_cases("gqa", cases, n, 5000 << 10);
}

static void test_layouts_dtypes(void **state)
{
    (void)state;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 6000);
    static tc_attn_case cases[MAX_CASES];
    int n = 0;
    static const edgeattn_dtype combos[][3] = {
        {EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32},   {EDGEATTN_F16, EDGEATTN_F16, EDGEATTN_F16},
        {EDGEATTN_BF16, EDGEATTN_BF16, EDGEATTN_BF16}, {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_F32},
        {EDGEATTN_F32, EDGEATTN_BF16, EDGEATTN_F32},  {EDGEATTN_F16, EDGEATTN_F16, EDGEATTN_F32},
        {EDGEATTN_BF16, EDGEATTN_BF16, EDGEATTN_F32}, {EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F16},
        {EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_BF16},  {EDGEATTN_F16, EDGEATTN_BF16, EDGEATTN_F16},
        {EDGEATTN_BF16, EDGEATTN_F16, EDGEATTN_F32},
    };
    const int reps = tc_long() ? 8 : 2;
    for (size_t i = 0; i < sizeof combos / sizeof combos[0]; i++)
        for (int rep = 0; rep < 2 * reps; rep++) {
            tc_attn_case c = tc_case(tc_randint(&r, 1, 2), 4, tc_randint(&r, 1, 2) * 2, pick_len(&r), pick_len(&r),
                                     TC_PICK(&r, head_dims));
            c.qdt = combos[i][0];
            c.kvdt = combos[i][1];
            c.odt = combos[i][2];
            /* the four layout corners, then random ones */
            c.qlayout = c.olayout = rep & 1;
            c.kvlayout = (rep >> 1) & 1;
            c.pad = rep >= 2 ? tc_randint(&r, 1, 5) : 0;
            c.causal = tc_randint(&r, 0, 1);
            c.lse = tc_randint(&r, 0, 1);
            cases[n++] = c;
        }
    run_cases("layouts/dtypes", cases, n, 6000 << 10);
}

/* Everything sampled at random: the combinations the tables above do not name. */
static void test_random_combinations(void **state)
{
    (void)state;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 7000);
    static tc_attn_case cases[MAX_CASES];
    const int n = tc_long() ? 400 : 40;
    static const int ratios[][2] = {{1, 1}, {2, 1}, {4, 1}, {4, 4}, {8, 1}, {8, 2}, {8, 8}};
    static const edgeattn_dtype dts[] = {EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};
    for (int i = 0; i < n; i++) {
        const int g = tc_randint(&r, 0, (int)(sizeof ratios / sizeof ratios[0]) - 1);
        tc_attn_case c = tc_case(tc_randint(&r, 1, 4), ratios[g][0], ratios[g][1], pick_len(&r), pick_len(&r),
                                 TC_PICK(&r, head_dims));
        randomize_layout(&c, &r);
        c.qdt = TC_PICK(&r, dts);
        c.kvdt = TC_PICK(&r, dts);
        c.odt = TC_PICK(&r, dts);
        c.causal = tc_randint(&r, 0, 1);
        if (tc_randint(&r, 0, 2) == 0)
            c.wl = tc_randint(&r, 0, 100);
        if (tc_randint(&r, 0, 3) == 0)
            c.wr = tc_randint(&r, 0, 100);
        if (c.B > 1 && tc_randint(&r, 0, 1))
            random_kv_lens(&c, &r);
        if (tc_randint(&r, 0, 2) == 0)
            c.bias_mode = tc_randint(&r, 1, 4);
        if (tc_randint(&r, 0, 3) == 0)
            c.softcap = (float)tc_uniform(&r, 1.0, 50.0);
        if (tc_randint(&r, 0, 4) == 0)
            c.scale = (float)tc_uniform(&r, 0.02, 0.3);
        c.lse = tc_randint(&r, 0, 1);
        cases[i] = c;
    }
    run_cases("random", cases, n, 7000 << 10);
}

/* ---------------------------------------------------------------- decode over the KV cache */

typedef struct dec_case {
    int B, Hq, Hkv, D;
    edgeattn_dtype cache_dt, in_dt, qdt, odt;
    int window;  /* kv_cache_window (0: none) */
    int max_kv;  /* max_kv_len */
    int prefill; /* longest first chunk */
    int steps;
} dec_case;

static void describe_dec(const dec_case *c, char *buf, size_t len)
{
    snprintf(buf, len, "decode B=%d Hq=%d Hkv=%d D=%d cache=%s appended=%s q=%s out=%s window=%d max_kv=%d", c->B,
             c->Hq, c->Hkv, c->D, tc_dtype_name(c->cache_dt), tc_dtype_name(c->in_dt), tc_dtype_name(c->qdt),
             tc_dtype_name(c->odt), c->window, c->max_kv);
}

/* One decode scenario: the same appends on a context per tier, a decode after each, every decode
 * compared with the reference over the tokens the cache holds (rounded to the cache dtype). */
static int run_decode_case(const dec_case *dc, uint64_t stream)
{
    const uint64_t seed = tc_seed();
    char desc[256];
    describe_dec(dc, desc, sizeof desc);
    tc_rng r;
    tc_rng_init(&r, seed, stream);
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_batch = dc->B;
    cfg.max_q_len = 8;
    cfg.max_kv_len = dc->max_kv;
    cfg.max_heads = dc->Hq;
    cfg.max_kv_heads = dc->Hkv;
    cfg.max_head_dim = dc->D;
    cfg.kv_cache_dtype = dc->cache_dt;
    cfg.kv_cache_window = dc->window;
    cfg.num_threads = 2;
    const int cap = dc->window > 0 ? dc->window : dc->max_kv;

    edgeattn_context *ctx[3 * 8 + MAX_RUNNERS]; /* 3 variants of up to 8 CPU tiers, then the GPU runners */
    char label[3 * 8 + MAX_RUNNERS][192];
    int nctx = 0;
    for (int t = 0; t < g_ntiers; t++)
        for (int v = 0; v < 3; v++) {
            /* v 2: every call shared with the workers (EDGEATTN_CPU_INLINE=0), so the decode path's
             * key slices and their merge run whatever the measured rates say */
            const char *tiles = v == 1 ? "kb=16,rb=8" : NULL;
            if (v == 2)
                setenv("EDGEATTN_CPU_INLINE", "0", 1);
            edgeattn_context *c = create_variant(&cfg, &g_tiers[t], tiles);
            if (v == 2)
                unsetenv("EDGEATTN_CPU_INLINE");
            if (!c)
                continue;
            snprintf(label[nctx], sizeof label[nctx], "cpu tier %.32s (tiles %s%s)", g_tiers[t].name,
                     tiles ? tiles : "default", v == 2 ? ", every call shared" : "");
            ctx[nctx++] = c;
        }
    for (int i = 0; i < g_nrun; i++)
        if (g_run[i].tier.backend != EDGEATTN_BACKEND_CPU) {
            edgeattn_config c = cfg;
            c.backend = g_run[i].tier.backend;
            ctx[nctx] = tc_create(&c);
            snprintf(label[nctx++], sizeof label[0], "%.180s", g_run[i].label);
        }

    /* shadow of every appended token, rounded to the cache dtype: [B][Hkv][tokens][D] */
    const int max_tokens = dc->window > 0 ? 2 * dc->prefill + dc->steps * (dc->window + 10) + 16 : dc->max_kv;
    float *shadow = malloc(sizeof(float) * 2 * (size_t)dc->B * (size_t)dc->Hkv * (size_t)max_tokens * (size_t)dc->D);
    assert_non_null(shadow);
#define SH(kv, b, h, p, d)                                                                                          \
    shadow[((((size_t)(kv) * (size_t)dc->B + (size_t)(b)) * (size_t)dc->Hkv + (size_t)(h)) * (size_t)max_tokens +    \
            (size_t)(p)) * (size_t)dc->D + (size_t)(d)]
    int64_t total[TC_MAX_B] = {0};
    int failures = 0;

    for (int step = 0; step < dc->steps; step++) {
        /* a reset of one sequence halfway through */
        if (step == dc->steps / 2 && dc->B > 1) {
            const int s = tc_randint(&r, 0, dc->B - 1);
            for (int k = 0; k < nctx; k++)
                assert_int_equal(edgeattn_kv_reset(ctx[k], s), EDGEATTN_OK);
            total[s] = 0;
        }
        int32_t n_new[TC_MAX_B];
        int N = 0;
        for (int b = 0; b < dc->B; b++) {
            int n;
            if (total[b] == 0)
                n = tc_randint(&r, dc->prefill / 2 > 8 ? dc->prefill / 2 : 8, dc->prefill); /* (re)fill */
            else if (dc->window > 0 && tc_randint(&r, 0, 5) == 0)
                n = dc->window + tc_randint(&r, 1, 9); /* more than the ring holds in one call */
            else
                n = tc_randint(&r, 0, 4);
            if (dc->window == 0 && total[b] + n > cap)
                n = (int)(cap - total[b]);
            if (total[b] + n > max_tokens)
                n = 0;
            n_new[b] = n;
            N = n > N ? n : N;
        }
        const int Nt = N + tc_randint(&r, 0, 2); /* rows past n_new[b] must not be appended */
        if (Nt > 0) {
            tc_tensor k, v;
            const int lay = tc_randint(&r, 0, 1), pad = tc_randint(&r, 0, 3);
            tc_tensor_alloc(&k, dc->in_dt, dc->B, dc->Hkv, Nt, dc->D, lay, pad, pad, pad);
            tc_tensor_alloc(&v, dc->in_dt, dc->B, dc->Hkv, Nt, dc->D, 1 - lay, pad, 0, pad);
            tc_fill_random(&k, &r, -1.0, 1.0);
            tc_fill_random(&v, &r, -1.0, 1.0);
            for (int b = 0; b < dc->B; b++)
                for (int h = 0; h < dc->Hkv; h++)
                    for (int i = 0; i < n_new[b]; i++)
                        for (int d = 0; d < dc->D; d++) {
                            SH(0, b, h, total[b] + i, d) = tc_round(dc->cache_dt, tc_get(&k.t, b, h, i, d));
                            SH(1, b, h, total[b] + i, d) = tc_round(dc->cache_dt, tc_get(&v.t, b, h, i, d));
                        }
            for (int c = 0; c < nctx; c++) {
                const edgeattn_status st = edgeattn_kv_append(ctx[c], 0, NULL, &k.t, &v.t, n_new, tc_randint(&r, 0, 1));
                if (st != EDGEATTN_OK)
                    fail_msg("%s on %s step %d: kv_append returned %d: %s (seed %llu)", desc, label[c], step, (int)st,
                             edgeattn_message_of(ctx[c]), (unsigned long long)seed);
            }
            tc_tensor_free(&k);
            tc_tensor_free(&v);
            for (int b = 0; b < dc->B; b++)
                total[b] += n_new[b];
        }
        int32_t held[TC_MAX_B];
        int min_held = 1 << 30, max_held = 0;
        for (int b = 0; b < dc->B; b++) {
            held[b] = (int32_t)(total[b] < cap ? total[b] : cap);
            min_held = held[b] < min_held ? held[b] : min_held;
            max_held = held[b] > max_held ? held[b] : max_held;
            for (int c = 0; c < nctx; c++) {
                int64_t t = -1;
                int32_t hd = -1;
                assert_int_equal(edgeattn_kv_length(ctx[c], 0, b, &t, &hd), EDGEATTN_OK);
                if (t != total[b] || hd != held[b])
                    fail_msg("%s on %s step %d: kv_length(%d) = (%lld, %d), expected (%lld, %d)", desc, label[c],
                             step, b, (long long)t, (int)hd, (long long)total[b], (int)held[b]);
            }
        }
        if (min_held < 1)
            continue;
        static const int nqs[] = {1, 1, 2, 3, 5, 8};
        int Nq = TC_PICK(&r, nqs);
        if (Nq > min_held)
            Nq = min_held;

        /* reference inputs: the held tokens, oldest first, kv_lens = held */
        tc_tensor rk, rv;
        tc_tensor_alloc(&rk, EDGEATTN_F32, dc->B, dc->Hkv, max_held, dc->D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rv, EDGEATTN_F32, dc->B, dc->Hkv, max_held, dc->D, TC_BHSD, 0, 0, 0);
        memset(rk.alloc, 0, rk.alloc_elems * 4);
        memset(rv.alloc, 0, rv.alloc_elems * 4);
        for (int b = 0; b < dc->B; b++)
            for (int h = 0; h < dc->Hkv; h++)
                for (int j = 0; j < held[b]; j++)
                    for (int d = 0; d < dc->D; d++) {
                        const int64_t p = total[b] - held[b] + j;
                        tc_set(&rk.t, b, h, j, d, SH(0, b, h, p, d));
                        tc_set(&rv.t, b, h, j, d, SH(1, b, h, p, d));
                    }
        tc_tensor q, out, lse;
        const int pad = tc_randint(&r, 0, 2);
        tc_tensor_alloc(&q, dc->qdt, dc->B, dc->Hq, Nq, dc->D, tc_randint(&r, 0, 1), pad, pad, pad);
        tc_tensor_alloc(&out, dc->odt, dc->B, dc->Hq, Nq, dc->D, tc_randint(&r, 0, 1), pad, pad, pad);
        tc_tensor_alloc(&lse, EDGEATTN_F32, dc->B, dc->Hq, Nq, 1, TC_BHSD, 1, 1, 1);
        tc_fill_random(&q, &r, -1.0, 1.0);
        edgeattn_params p;
        edgeattn_params_default(&p);
        p.causal = Nq > 1 ? 1 : tc_randint(&r, 0, 1);
        if (tc_randint(&r, 0, 3) == 0)
            p.window_left = tc_randint(&r, 0, 40);
        if (tc_randint(&r, 0, 4) == 0)
            p.softcap = 15.0f;
        if (tc_randint(&r, 0, 4) == 0)
            p.scale = 0.2f;
        const bool want_lse = tc_randint(&r, 0, 1);
        edgeattn_params rp = p;
        rp.kv_lens = held;
        double *ref = malloc(sizeof(double) * (size_t)dc->B * (size_t)dc->Hq * (size_t)Nq * (size_t)dc->D);
        double *ref_lse = malloc(sizeof(double) * (size_t)dc->B * (size_t)dc->Hq * (size_t)Nq);
        assert_non_null(ref);
        assert_non_null(ref_lse);
        assert_int_equal(ea_ref_attention(&q.t, &rk.t, &rv.t, &rp, ref, ref_lse), EDGEATTN_OK);
        const double tol = tc_tolerance(dc->qdt, dc->cache_dt, dc->odt);
        for (int c = 0; c < nctx; c++) {
            tc_result res;
            tc_decode_compare(&res, ctx[c], &q.t, &out, want_lse ? &lse : NULL, &p, ref, ref_lse, dc->B, dc->Hq, Nq,
                              dc->D, tol);
            if (!res.ok) {
                char held_s[96];
                int o = 0;
                for (int b = 0; b < dc->B; b++)
                    o += snprintf(held_s + o, sizeof held_s - (size_t)o, "%s%lld/%d", b ? "," : "",
                                  (long long)total[b], (int)held[b]);
                print_error("FAIL %s on %s\n     step %d Nq=%d causal=%d window_left=%d softcap=%g scale=%g lse=%d "
                            "total/held=[%s]\n     %s\n     seed %llu (EDGEATTN_TEST_SEED=%llu)\n",
                            desc, label[c], step, Nq, p.causal, p.window_left, (double)p.softcap, (double)p.scale,
                            (int)want_lse, held_s, res.why, (unsigned long long)seed, (unsigned long long)seed);
                failures++;
            }
        }
        free(ref);
        free(ref_lse);
        tc_tensor_free(&q);
        tc_tensor_free(&out);
        tc_tensor_free(&lse);
        tc_tensor_free(&rk);
        tc_tensor_free(&rv);
    }
#undef SH
    free(shadow);
    for (int c = 0; c < nctx; c++)
        edgeattn_destroy(ctx[c]);
    return failures;
}

static void run_decode_cases(const char *group, const dec_case *cases, int n, uint64_t stream_base)
{
    const double t0 = now_s();
    int failures = 0;
    for (int i = 0; i < n; i++)
        failures += run_decode_case(&cases[i], stream_base + (uint64_t)i);
    print_message("%s: %d scenario(s) (%.1f s)\n", group, n, now_s() - t0);
    if (failures)
        fail_msg("%s: %d failing decode(s), see above", group, failures);
}

static void test_decode(void **state)
{
    (void)state;
    const int steps = tc_long() ? 40 : 10;
    const dec_case cases[] = {
        {1, 4, 1, 64, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32, 0, 300, 100, steps},
        {3, 8, 2, 128, EDGEATTN_F16, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32, 0, 200, 90, steps},
        {2, 4, 4, 80, EDGEATTN_BF16, EDGEATTN_BF16, EDGEATTN_F32, EDGEATTN_F32, 0, 150, 60, steps},
        {2, 8, 1, 96, EDGEATTN_F16, EDGEATTN_F16, EDGEATTN_F16, EDGEATTN_F16, 0, 120, 70, steps},
        {2, 2, 1, 32, EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16, EDGEATTN_F32, 0, 64, 40, steps},
        {1, 2, 1, 256, EDGEATTN_BF16, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_BF16, 0, 100, 60, steps},
        /* long KV, one row block: the split-KV path with its log-sum-exp merge */
        {1, 8, 2, 128, EDGEATTN_F16, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32, 0, 1100, 1000, 3},
        {2, 4, 1, 64, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32, 0, 1100, 700, 3},
    };
    run_decode_cases("decode", cases, (int)(sizeof cases / sizeof cases[0]), 8000 << 10);
}

static void test_decode_ring_window(void **state)
{
    (void)state;
    const int steps = tc_long() ? 60 : 16;
    const dec_case cases[] = {
        {2, 8, 1, 64, EDGEATTN_F16, EDGEATTN_F16, EDGEATTN_F32, EDGEATTN_F32, 48, 1024, 100, steps},
        {3, 2, 2, 32, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32, 32, 1024, 80, steps},
        {1, 2, 1, 256, EDGEATTN_BF16, EDGEATTN_F32, EDGEATTN_BF16, EDGEATTN_F32, 20, 64, 50, steps},
        {2, 4, 2, 128, EDGEATTN_F32, EDGEATTN_BF16, EDGEATTN_F16, EDGEATTN_F16, 7, 1024, 30, steps},
        /* a ring longer than one split */
        {1, 8, 2, 64, EDGEATTN_F16, EDGEATTN_F32, EDGEATTN_F32, EDGEATTN_F32, 600, 1024, 900, 4},
    };
    run_decode_cases("decode ring window", cases, (int)(sizeof cases / sizeof cases[0]), 9000 << 10);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines reach CI logs as they happen */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tier_selection),
        cmocka_unit_test(test_head_dims),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_bias_softcap_lse_scale),
        cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_layouts_dtypes),
        cmocka_unit_test(test_random_combinations),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_decode_ring_window),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
