/*
 * A long random mix of calls on one context, as an application makes them: prefill attention of
 * varying shapes, dtypes, layouts and masks; KV-cache appends with K and V each in its own dtype and
 * layout, to some or all sequences; decodes of 1..8 query rows; resets of one or all sequences;
 * length queries. Every result is checked: attention and decode against the double reference with
 * canary-filled outputs, the cache's lengths against a shadow kept here.
 *
 * Suites that make one kind of call per context miss state carried from one call to the next (a
 * cache written in one dtype and read in another, a plan sized by one shape and used by another);
 * this one exists for those.
 *
 * Runs on every CPU tier this machine has, or, where AUTO picks a GPU backend, on that backend alone
 * (CUDA on a GPU machine or under the mock driver; OpenCL through tests/opencl's runner).
 * EDGEATTN_TEST_SEED repeats a run; EDGEATTN_TEST_LONG=1 makes it longer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reference.h"
#include "test_common.h"

enum { MAX_B = 3, MAX_HQ = 4, MAX_HKV = 2, MAX_D = 128, MAX_Q = 40, MAX_KV = 150, SHADOW_TOKENS = 320 };

static const edgeattn_dtype k_dtypes[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};

/* The cache as the application believes it to be: every token appended to each sequence, as the
 * cache dtype holds it ([kv][b][h][token][d]), and the counts. */
typedef struct shadow {
    edgeattn_dtype dt;
    int cap, window;
    int heads, dim; /* 0: fixed by the next append */
    int64_t total[MAX_B];
    float *tok;
} shadow;

#define SH(s, kv, b, h, p, d)                                                                                       \
    (s)->tok[(((((size_t)(kv) * MAX_B + (size_t)(b)) * MAX_HKV + (size_t)(h)) * SHADOW_TOKENS + (size_t)(p)) *     \
              MAX_D) + (size_t)(d)]

static int held_of(const shadow *s, int b)
{
    return (int)(s->total[b] < s->cap ? s->total[b] : s->cap);
}

typedef struct runner {
    char label[96];
    tc_tier tier;
    bool gpu; /* AUTO picked a GPU backend */
} runner;

static int g_nrun;
static runner g_run[9];

static int setup(void **state)
{
    (void)state;
    tc_clear_env();
    /* The backend AUTO picks, when it is not the CPU: then the mix runs there alone (the CPU tiers
     * have their own run of this program, where AUTO picks the CPU). */
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.max_batch = 1;
    cfg.max_q_len = 16;
    cfg.max_kv_len = 16;
    cfg.max_head_dim = 64;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_backend_info info;
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    if (info.backend != EDGEATTN_BACKEND_CPU) {
        runner *r = &g_run[g_nrun++];
        memset(r, 0, sizeof *r);
        r->gpu = true;
        r->tier.backend = info.backend;
        snprintf(r->label, sizeof r->label, "%s (%.60s)", info.backend_name, info.device);
    }
    edgeattn_destroy(ctx);
    if (g_nrun == 0) {
        tc_tier tiers[8];
        const int n = tc_cpu_tiers(tiers, 8);
        for (int i = 0; i < n && i < 8; i++) {
            g_run[g_nrun].tier = tiers[i];
            snprintf(g_run[g_nrun].label, sizeof g_run[0].label, "cpu tier %.32s", tiers[i].name);
            g_nrun++;
        }
    }
    return 0;
}

static edgeattn_context *create_runner(const runner *r, const edgeattn_config *cfg)
{
    if (r->gpu)
        return tc_create(cfg); /* AUTO: the GPU backend found above */
    return tc_create_tier(cfg, &r->tier);
}

/* ---------------------------------------------------------------- one call of each kind */

/* Prefill attention of a random case on ctx (any shape within the plan). 1 on failure. */
static int op_attention(edgeattn_context *ctx, tc_rng *r, const char *who, int op)
{
    const int B = tc_randint(r, 1, MAX_B), Hkv = tc_randint(r, 1, MAX_HKV);
    const int Hq = Hkv * tc_randint(r, 1, MAX_HQ / Hkv);
    static const int dims[] = {16, 32, 48, 64, 80, 96, 128};
    const int D = TC_PICK(r, dims);
    static const int lens[] = {1, 2, 7, 15, 16, 17, 31, 33, 40};
    const int Nq = TC_PICK(r, lens);
    const int Nkv = tc_randint(r, 0, 2) ? tc_randint(r, 1, MAX_KV) : Nq;
    tc_attn_case c = tc_case(B, Hq, Hkv, Nq, Nkv, D);
    c.qdt = TC_PICK(r, k_dtypes);
    c.kvdt = TC_PICK(r, k_dtypes);
    c.odt = TC_PICK(r, k_dtypes);
    c.qlayout = tc_randint(r, 0, 1);
    c.kvlayout = tc_randint(r, 0, 1);
    c.olayout = tc_randint(r, 0, 1);
    c.pad = tc_randint(r, 0, 3);
    c.causal = tc_randint(r, 0, 1);
    c.wl = tc_randint(r, 0, 3) ? -1 : tc_randint(r, 0, 20);
    c.wr = tc_randint(r, 0, 3) ? -1 : tc_randint(r, 0, 20);
    c.use_kv_lens = tc_randint(r, 0, 2) == 0;
    for (int b = 0; b < B; b++)
        c.kv_lens[b] = tc_randint(r, 0, Nkv);
    c.bias_mode = tc_randint(r, 0, 3) ? TC_BIAS_NONE : tc_randint(r, TC_BIAS_FULL, TC_BIAS_BCAST_BH);
    c.softcap = tc_randint(r, 0, 4) ? 0.0f : 20.0f;
    c.scale = tc_randint(r, 0, 4) ? 0.0f : 0.3f;
    c.lse = tc_randint(r, 0, 1);
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), tc_next(r));
    const tc_result res = tc_attn_run(ctx, &d, tc_tolerance(c.qdt, c.kvdt, c.odt));
    int fail = 0;
    if (!res.ok) {
        char desc[320];
        tc_case_describe(&c, desc, sizeof desc);
        print_error("FAIL %s op %d attention %s\n     %s\n", who, op, desc, res.why);
        fail = 1;
    }
    tc_attn_free(&d);
    return fail;
}

/* Appends 0..n tokens to sequences 0..B-1 with K and V in random (independent) dtypes and layouts;
 * mirrors them into the shadow. Sequences that would overflow a cache without a window are reset
 * first (also in the shadow). 1 on failure. */
static int op_append(edgeattn_context *ctx, shadow *s, tc_rng *r, const char *who, int op)
{
    if (s->heads == 0) { /* the first append after a full reset fixes the cache's heads and dim */
        static const int dims[] = {16, 48, 64, 128};
        s->heads = tc_randint(r, 1, MAX_HKV);
        s->dim = TC_PICK(r, dims);
    }
    const int B = tc_randint(r, 1, MAX_B);
    const bool big = tc_randint(r, 0, 5) == 0; /* a prompt-sized chunk (with a window: past the ring) */
    const int N = big ? tc_randint(r, 9, s->window > 0 ? s->window + 9 : 60) : tc_randint(r, 1, 8);
    const bool all = tc_randint(r, 0, 3) == 0; /* n_new NULL: N rows to every sequence */
    int32_t n_new[MAX_B];
    for (int b = 0; b < B; b++) {
        n_new[b] = all ? N : tc_randint(r, 0, N);
        const bool ring_full = s->window == 0 && s->total[b] + n_new[b] > s->cap;
        if (ring_full || s->total[b] + n_new[b] > SHADOW_TOKENS) {
            if (edgeattn_kv_reset(ctx, b) != EDGEATTN_OK) {
                print_error("FAIL %s op %d: kv_reset(%d): %s\n", who, op, b, edgeattn_message_of(ctx));
                return 1;
            }
            s->total[b] = 0;
        }
    }
    const edgeattn_dtype kdt = TC_PICK(r, k_dtypes), vdt = TC_PICK(r, k_dtypes);
    const int pad = tc_randint(r, 0, 2);
    tc_tensor k, v;
    tc_tensor_alloc(&k, kdt, B, s->heads, N, s->dim, tc_randint(r, 0, 1), pad, pad, pad);
    tc_tensor_alloc(&v, vdt, B, s->heads, N, s->dim, tc_randint(r, 0, 1), 0, 0, pad);
    tc_fill_random(&k, r, -1.0, 1.0);
    tc_fill_random(&v, r, -1.0, 1.0);
    const edgeattn_status st = edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, all ? NULL : n_new, tc_randint(r, 0, 1));
    int fail = 0;
    if (st != EDGEATTN_OK) {
        print_error("FAIL %s op %d: kv_append B=%d N=%d k=%s v=%s returned %d: %s\n", who, op, B, N,
                    tc_dtype_name(kdt), tc_dtype_name(vdt), (int)st, edgeattn_message_of(ctx));
        fail = 1;
    } else {
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < s->heads; h++)
                for (int i = 0; i < n_new[b]; i++)
                    for (int d = 0; d < s->dim; d++) {
                        SH(s, 0, b, h, s->total[b] + i, d) = tc_round(s->dt, tc_get(&k.t, b, h, i, d));
                        SH(s, 1, b, h, s->total[b] + i, d) = tc_round(s->dt, tc_get(&v.t, b, h, i, d));
                    }
            s->total[b] += n_new[b];
        }
    }
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    return fail;
}

/* Decode of 1..8 query rows over sequences 0..B-1, against the reference over the held tokens. */
static int op_decode(edgeattn_context *ctx, const shadow *s, tc_rng *r, const char *who, int op)
{
    if (s->heads == 0)
        return 0;
    int B = tc_randint(r, 1, MAX_B), min_held = SHADOW_TOKENS, max_held = 0;
    for (int b = 0; b < B; b++) {
        const int h = held_of(s, b);
        if (h == 0) { /* decode covers 0..B-1, every one non-empty */
            B = b;
            break;
        }
        min_held = h < min_held ? h : min_held;
        max_held = h > max_held ? h : max_held;
    }
    if (B == 0)
        return 0;
    const int Nq = tc_randint(r, 1, min_held < 8 ? min_held : 8);
    const int Hq = s->heads * tc_randint(r, 1, MAX_HQ / s->heads), D = s->dim;
    const edgeattn_dtype qdt = TC_PICK(r, k_dtypes), odt = TC_PICK(r, k_dtypes);
    tc_tensor rk, rv, q, out, lse;
    tc_tensor_alloc(&rk, EDGEATTN_F32, B, s->heads, max_held, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&rv, EDGEATTN_F32, B, s->heads, max_held, D, TC_BHSD, 0, 0, 0);
    memset(rk.alloc, 0, rk.alloc_elems * sizeof(float));
    memset(rv.alloc, 0, rv.alloc_elems * sizeof(float));
    int32_t held[MAX_B];
    for (int b = 0; b < B; b++) {
        held[b] = held_of(s, b);
        for (int h = 0; h < s->heads; h++)
            for (int j = 0; j < held[b]; j++)
                for (int d = 0; d < D; d++) {
                    const int64_t p = s->total[b] - held[b] + j;
                    tc_set(&rk.t, b, h, j, d, SH(s, 0, b, h, p, d));
                    tc_set(&rv.t, b, h, j, d, SH(s, 1, b, h, p, d));
                }
    }
    const int pad = tc_randint(r, 0, 2);
    tc_tensor_alloc(&q, qdt, B, Hq, Nq, D, tc_randint(r, 0, 1), pad, pad, pad);
    tc_tensor_alloc(&out, odt, B, Hq, Nq, D, tc_randint(r, 0, 1), pad, pad, pad);
    tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 1, 1, 1);
    tc_fill_random(&q, r, -1.0, 1.0);
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = Nq > 1 ? 1 : tc_randint(r, 0, 1);
    if (tc_randint(r, 0, 3) == 0)
        p.window_left = tc_randint(r, 0, 30);
    if (tc_randint(r, 0, 4) == 0)
        p.softcap = 15.0f;
    const bool want_lse = tc_randint(r, 0, 1);
    edgeattn_params rp = p;
    rp.kv_lens = held;
    const size_t rows = (size_t)B * (size_t)Hq * (size_t)Nq;
    double *ref = malloc(sizeof(double) * rows * (size_t)D), *ref_lse = malloc(sizeof(double) * rows);
    assert_non_null(ref);
    assert_non_null(ref_lse);
    assert_int_equal(ea_ref_attention(&q.t, &rk.t, &rv.t, &rp, ref, ref_lse), EDGEATTN_OK);
    tc_fill_canary(&out);
    tc_fill_canary(&lse);
    edgeattn_tensor lt = lse.t;
    p.lse = want_lse ? &lt : NULL;
    const edgeattn_status st = edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &out.t, &p);
    tc_result res;
    memset(&res, 0, sizeof res);
    if (st != EDGEATTN_OK)
        snprintf(res.why, sizeof res.why, "edgeattn_decode returned %d (%s): %s", (int)st,
                 edgeattn_status_string(st), edgeattn_message_of(ctx));
    else
        tc_compare(&res, &out, want_lse ? &lse : NULL, ref, ref_lse, B, Hq, Nq, D, tc_tolerance(qdt, s->dt, odt));
    int fail = 0;
    if (st != EDGEATTN_OK || !res.ok) {
        print_error("FAIL %s op %d decode B=%d Hq=%d Hkv=%d D=%d Nq=%d q=%s out=%s cache=%s causal=%d "
                    "window_left=%d lse=%d held[0]=%d\n     %s\n",
                    who, op, B, Hq, s->heads, D, Nq, tc_dtype_name(qdt), tc_dtype_name(odt), tc_dtype_name(s->dt),
                    p.causal, p.window_left, (int)want_lse, held[0], res.why);
        fail = 1;
    }
    free(ref);
    free(ref_lse);
    tc_tensor_free(&rk);
    tc_tensor_free(&rv);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_tensor_free(&lse);
    return fail;
}

/* kv_length of every sequence against the shadow. */
static int op_lengths(edgeattn_context *ctx, const shadow *s, const char *who, int op)
{
    for (int b = 0; b < MAX_B; b++) {
        int64_t t = -1;
        int32_t h = -1;
        const edgeattn_status st = edgeattn_kv_length(ctx, 0, b, &t, &h);
        if (st != EDGEATTN_OK || t != s->total[b] || h != held_of(s, b)) {
            print_error("FAIL %s op %d: kv_length(%d) = %d (%lld, %d), expected (%lld, %d)\n", who, op, b, (int)st,
                        (long long)t, (int)h, (long long)s->total[b], held_of(s, b));
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- sessions */

/* One context, `ops` random calls. Returns the failures. */
static int run_session(const runner *run, uint64_t stream, int ops)
{
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    shadow s;
    memset(&s, 0, sizeof s);
    s.dt = TC_PICK(&r, k_dtypes);
    s.window = tc_randint(&r, 0, 1) ? 0 : tc_randint(&r, 20, 70);
    s.cap = s.window > 0 ? s.window : MAX_KV;
    s.tok = malloc(sizeof(float) * 2 * MAX_B * MAX_HKV * SHADOW_TOKENS * MAX_D);
    assert_non_null(s.tok);

    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_batch = MAX_B;
    cfg.max_q_len = MAX_Q;
    cfg.max_kv_len = MAX_KV;
    cfg.max_heads = MAX_HQ;
    cfg.max_kv_heads = MAX_HKV;
    cfg.max_head_dim = MAX_D;
    cfg.kv_cache_dtype = s.dt;
    cfg.kv_cache_window = s.window;
    cfg.num_threads = tc_randint(&r, 1, 2);
    edgeattn_context *ctx = create_runner(run, &cfg);
    char who[192];
    snprintf(who, sizeof who, "%s [cache %s, window %d, %d thread(s), seed %llu stream %llu]", run->label,
             tc_dtype_name(s.dt), s.window, cfg.num_threads, (unsigned long long)tc_seed(),
             (unsigned long long)stream);

    int fails = 0;
    for (int op = 0; op < ops && fails < 5; op++) {
        const int kind = tc_randint(&r, 0, 99), fails_before = fails;
        if (kind < 25)
            fails += op_attention(ctx, &r, who, op);
        else if (kind < 55)
            fails += op_append(ctx, &s, &r, who, op);
        else if (kind < 88)
            fails += op_decode(ctx, &s, &r, who, op);
        else if (kind < 93) {
            const int seq = tc_randint(&r, -1, MAX_B - 1);
            if (edgeattn_kv_reset(ctx, seq) != EDGEATTN_OK) {
                print_error("FAIL %s op %d: kv_reset(%d): %s\n", who, op, seq, edgeattn_message_of(ctx));
                fails++;
            }
            bool empty = true;
            for (int b = 0; b < MAX_B; b++) {
                if (seq == -1 || seq == b)
                    s.total[b] = 0;
                empty = empty && s.total[b] == 0;
            }
            if (empty)
                s.heads = s.dim = 0;
        } else {
            fails += op_lengths(ctx, &s, who, op);
        }
        if (fails == fails_before && strcmp(edgeattn_message_of(ctx), "") != 0) { /* a success leaves no message behind */
            print_error("FAIL %s op %d: message after a successful call: %s\n", who, op, edgeattn_message_of(ctx));
            fails++;
        }
    }
    fails += op_lengths(ctx, &s, who, ops);
    edgeattn_destroy(ctx);
    free(s.tok);
    return fails;
}

static void test_mix(void **state)
{
    (void)state;
    const int sessions = tc_long() ? 8 : 3, ops = tc_long() ? 400 : 150;
    int fails = 0;
    for (int i = 0; i < g_nrun; i++) {
        for (int k = 0; k < sessions; k++)
            fails += run_session(&g_run[i], (uint64_t)(i * 100 + k), ops);
        print_message("mix: %s: %d sessions of %d calls\n", g_run[i].label, sessions, ops);
    }
    if (fails)
        fail_msg("%d failing call(s) in the mix, see above (EDGEATTN_TEST_SEED=%llu repeats it)", fails,
                 (unsigned long long)tc_seed());
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mix)};
    return cmocka_run_group_tests(tests, setup, NULL);
}
