/*
 * Bad input: every failure mode of the API returns its own status and a non-empty message, writes
 * nothing the caller owns (outputs, LSE, inputs, KV-cache lengths and contents stay as they were)
 * and leaves the context usable (a valid attention and a valid decode succeed right after, with an
 * empty message).
 *
 * Every expectation goes through EXPECT / EXPECT_NOCTX / EXPECT_PLAN below, which check all of that.
 */
#include "test_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the fixture */

enum { B = 2, HQ = 4, HKV = 2, NQ = 5, NKV = 12, D = 64, MAX_Q = 16, MAX_KV = 32, NQ_DEC = 2 };

typedef struct fx {
    edgeattn_config cfg;
    edgeattn_context *ctx;
    tc_tensor q, k, v, out, lse, bias;       /* a valid attention call */
    tc_tensor qd, outd, lsed;                /* a valid decode call */
    tc_tensor ak, av;                        /* what was appended to the cache */
    int32_t kv_lens[B];
    edgeattn_params p;                       /* valid params (bias, lse, causal, kv_lens) */
    edgeattn_params pd;                      /* valid decode params (lse) */
    edgeattn_tensor bias_t, lse_t, lsed_t;
    void *snap[11];
    int64_t total[B];
    int32_t held[B];
    double dec_ref_first;                    /* first output element of the valid decode */
} fx;

static tc_tensor *buffers(fx *F, int i)
{
    tc_tensor *all[] = {&F->q, &F->k, &F->v, &F->out, &F->lse, &F->bias, &F->qd, &F->outd, &F->lsed, &F->ak, &F->av};
    return all[i];
}
#define NBUF 11

static void snapshot_all(fx *F)
{
    for (int i = 0; i < NBUF; i++) {
        free(F->snap[i]);
        F->snap[i] = tc_snapshot(buffers(F, i));
    }
    for (int b = 0; b < B; b++)
        assert_int_equal(edgeattn_kv_length(F->ctx, 0, b, &F->total[b], &F->held[b]), EDGEATTN_OK);
}

static void reset_outputs(fx *F)
{
    tc_fill_canary(&F->out);
    tc_fill_canary(&F->lse);
    tc_fill_canary(&F->outd);
    tc_fill_canary(&F->lsed);
    F->bias_t = F->bias.t;
    F->lse_t = F->lse.t;
    F->lsed_t = F->lsed.t;
    edgeattn_params_default(&F->p);
    F->p.causal = 1;
    F->p.kv_lens = F->kv_lens;
    F->p.bias = &F->bias_t;
    F->p.lse = &F->lse_t;
    edgeattn_params_default(&F->pd);
    F->pd.causal = 1;
    F->pd.lse = &F->lsed_t;
}

static int setup(void **state)
{
    fx *F = calloc(1, sizeof *F);
    assert_non_null(F);
    edgeattn_config_default(&F->cfg);
    F->cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    F->cfg.max_batch = B;
    F->cfg.max_q_len = MAX_Q;
    F->cfg.max_kv_len = MAX_KV;
    F->cfg.max_heads = HQ;
    F->cfg.max_kv_heads = HKV;
    F->cfg.max_head_dim = D;
    F->cfg.kv_cache_dtype = EDGEATTN_F16;
    F->cfg.num_threads = 2;
    F->ctx = tc_create(&F->cfg);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 77);
    tc_tensor_alloc(&F->q, EDGEATTN_F32, B, HQ, NQ, D, TC_BHSD, 3, 3, 3);
    tc_tensor_alloc(&F->k, EDGEATTN_F32, B, HKV, NKV, D, TC_BSHD, 2, 2, 2);
    tc_tensor_alloc(&F->v, EDGEATTN_F32, B, HKV, NKV, D, TC_BSHD, 2, 2, 2);
    tc_tensor_alloc(&F->out, EDGEATTN_F32, B, HQ, NQ, D, TC_BHSD, 3, 3, 3);
    tc_tensor_alloc(&F->lse, EDGEATTN_F32, B, HQ, NQ, 1, TC_BHSD, 1, 1, 1);
    tc_tensor_alloc(&F->bias, EDGEATTN_F32, 1, HQ, NQ, NKV, TC_BHSD, 1, 1, 1);
    tc_tensor_alloc(&F->qd, EDGEATTN_F16, B, HQ, NQ_DEC, D, TC_BSHD, 1, 1, 1);
    tc_tensor_alloc(&F->outd, EDGEATTN_F32, B, HQ, NQ_DEC, D, TC_BHSD, 2, 2, 2);
    tc_tensor_alloc(&F->lsed, EDGEATTN_F32, B, HQ, NQ_DEC, 1, TC_BHSD, 0, 1, 1);
    tc_tensor_alloc(&F->ak, EDGEATTN_F32, B, HKV, 10, D, TC_BHSD, 1, 1, 1);
    tc_tensor_alloc(&F->av, EDGEATTN_BF16, B, HKV, 10, D, TC_BSHD, 1, 1, 1);
    tc_fill_random(&F->q, &r, -1, 1);
    tc_fill_random(&F->k, &r, -1, 1);
    tc_fill_random(&F->v, &r, -1, 1);
    tc_fill_random(&F->bias, &r, -1, 1);
    tc_fill_random(&F->qd, &r, -1, 1);
    tc_fill_random(&F->ak, &r, -1, 1);
    tc_fill_random(&F->av, &r, -1, 1);
    F->kv_lens[0] = NKV;
    F->kv_lens[1] = 7;
    const int32_t n_new[B] = {10, 6};
    assert_int_equal(edgeattn_kv_append(F->ctx, 0, NULL, &F->ak.t, &F->av.t, n_new, 1), EDGEATTN_OK);
    reset_outputs(F);
    assert_int_equal(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_OK);
    F->dec_ref_first = tc_get(&F->outd.t, 0, 0, 0, 0);
    reset_outputs(F);
    snapshot_all(F);
    *state = F;
    return 0;
}

static int teardown(void **state)
{
    fx *F = *state;
    edgeattn_destroy(F->ctx);
    for (int i = 0; i < NBUF; i++) {
        tc_tensor_free(buffers(F, i));
        free(F->snap[i]);
    }
    free(F);
    return 0;
}

/* ---------------------------------------------------------------- the checks */

static const char *st_name(edgeattn_status s)
{
    return edgeattn_status_string(s);
}

/* Nothing the caller owns changed: every buffer byte-identical, cache lengths the same, and the
 * cache contents the same (a decode gives the same first element as before). */
static void check_untouched(fx *F, const char *expr, int line)
{
    static const char *const names[NBUF] = {"q", "k", "v", "out", "lse", "bias", "decode q", "decode out",
                                            "decode lse", "appended k", "appended v"};
    for (int i = 0; i < NBUF; i++)
        if (!tc_unchanged(buffers(F, i), F->snap[i]))
            fail_msg("line %d: %s failed but wrote into the caller's %s buffer", line, expr, names[i]);
    for (int b = 0; b < B; b++) {
        int64_t t;
        int32_t h;
        assert_int_equal(edgeattn_kv_length(F->ctx, 0, b, &t, &h), EDGEATTN_OK);
        if (t != F->total[b] || h != F->held[b])
            fail_msg("line %d: %s failed but changed KV sequence %d from (%lld, %d) to (%lld, %d)", line, expr, b,
                     (long long)F->total[b], (int)F->held[b], (long long)t, (int)h);
    }
}

/* The context still works: a valid attention and a valid decode succeed with an empty message. */
static void check_usable(fx *F, const char *expr, int line)
{
    reset_outputs(F); /* fresh valid params: tests mutate F->p / F->pd */
    edgeattn_status st = edgeattn_attention(F->ctx, &F->q.t, &F->k.t, &F->v.t, &F->out.t, &F->p);
    if (st != EDGEATTN_OK)
        fail_msg("line %d: after %s a valid attention returned %d (%s): %s", line, expr, (int)st, st_name(st),
                 edgeattn_message_of(F->ctx));
    if (edgeattn_message_of(F->ctx)[0] != '\0')
        fail_msg("line %d: after a successful call the message is \"%s\", expected \"\"", line,
                 edgeattn_message_of(F->ctx));
    char why[256];
    if (!tc_check_written(&F->out, "out", why, sizeof why))
        fail_msg("line %d: after %s: %s", line, expr, why);
    st = edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd);
    if (st != EDGEATTN_OK)
        fail_msg("line %d: after %s a valid decode returned %d (%s): %s", line, expr, (int)st, st_name(st),
                 edgeattn_message_of(F->ctx));
    if (tc_get(&F->outd.t, 0, 0, 0, 0) != F->dec_ref_first)
        fail_msg("line %d: after %s the decode result changed (the KV cache was modified)", line, expr);
    reset_outputs(F);
    snapshot_all(F);
}

/* Status, message and nothing written; the caller then restores what it changed and checks that
 * the context is usable (USABLE). */
static void expect_only(fx *F, edgeattn_status got, edgeattn_status want, const char *expr, int line)
{
    if (got != want)
        fail_msg("line %d: %s returned %d (%s), expected %d (%s); message \"%s\"", line, expr, (int)got,
                 st_name(got), (int)want, st_name(want), edgeattn_message_of(F->ctx));
    if (want != EDGEATTN_OK) {
        const char *m = edgeattn_message_of(F->ctx);
        if (!m || !m[0])
            fail_msg("line %d: %s returned %s with an empty message", line, expr, st_name(got));
        check_untouched(F, expr, line);
    } else {
        reset_outputs(F); /* a successful call wrote its outputs */
        snapshot_all(F);
    }
}

static void expect_status(fx *F, edgeattn_status got, edgeattn_status want, const char *expr, int line)
{
    expect_only(F, got, want, expr, line);
    check_usable(F, expr, line);
}

/* A call on the context: status, message, nothing written, still usable. */
#define EXPECT(call, want) expect_status(F, (call), (want), #call, __LINE__)
#define EXPECT_ONLY(call, want) expect_only(F, (call), (want), #call, __LINE__)
#define USABLE()                                                                                               \
    do {                                                                                                       \
        snapshot_all(F);                                                                                       \
        check_usable(F, "the call above", __LINE__);                                                           \
    } while (0)

/* A call with a NULL context: status and the constant message for NULL. */
#define EXPECT_NOCTX(call, want)                                                                               \
    do {                                                                                                       \
        const edgeattn_status st_ = (call);                                                                    \
        if (st_ != (want))                                                                                     \
            fail_msg("line %d: %s returned %d, expected %d", __LINE__, #call, (int)st_, (int)(want));          \
        if (!edgeattn_message_of(NULL) || !edgeattn_message_of(NULL)[0])                                       \
            fail_msg("edgeattn_message_of(NULL) is empty");                                                    \
        check_untouched(F, #call, __LINE__);                                                                   \
        check_usable(F, #call, __LINE__);                                                                      \
    } while (0)

/* plan and create with a config: both give `want` with a message; create leaves *ctx NULL. */
static void expect_config(const edgeattn_config *cfg, edgeattn_status want, const char *what, int line)
{
    edgeattn_plan_info info, before;
    memset(&info, 0xa5, sizeof info);
    before = info;
    edgeattn_message msg;
    memset(&msg, 0, sizeof msg);
    edgeattn_status st = edgeattn_plan(cfg, &info, &msg);
    if (st != want)
        fail_msg("line %d: plan with %s returned %d (%s), expected %d (%s): %s", line, what, (int)st, st_name(st),
                 (int)want, st_name(want), msg.text);
    if (want != EDGEATTN_OK) {
        if (!msg.text[0])
            fail_msg("line %d: plan with %s: empty message", line, what);
        if (memcmp(&info, &before, sizeof info) != 0)
            fail_msg("line %d: plan with %s failed but wrote *info", line, what);
    }
    memset(&msg, 0, sizeof msg);
    edgeattn_context *ctx = (edgeattn_context *)(uintptr_t)0x1;
    st = edgeattn_create(cfg, NULL, 0, &ctx, &msg);
    if (st != want)
        fail_msg("line %d: create with %s returned %d (%s), expected %d (%s): %s", line, what, (int)st, st_name(st),
                 (int)want, st_name(want), msg.text);
    if (want != EDGEATTN_OK) {
        if (!msg.text[0])
            fail_msg("line %d: create with %s: empty message", line, what);
        if (ctx != NULL)
            fail_msg("line %d: create with %s failed but *ctx is not NULL", line, what);
    } else {
        edgeattn_destroy(ctx);
    }
}
#define EXPECT_CONFIG(cfg, want, what) expect_config((cfg), (want), (what), __LINE__)

#define FX fx *F = *state
#define Q (F->q.t)
#define K (F->k.t)
#define V (F->v.t)
#define O (F->out.t)

/* ---------------------------------------------------------------- NULL pointers */

static void test_null_attention(void **state)
{
    FX;
    edgeattn_tensor q = Q, k = K, v = V, o = O;
    EXPECT_NOCTX(edgeattn_attention(NULL, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    EXPECT(edgeattn_attention(F->ctx, NULL, &k, &v, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    EXPECT(edgeattn_attention(F->ctx, &q, NULL, &v, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    EXPECT(edgeattn_attention(F->ctx, &q, &k, NULL, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, NULL, &F->p), EDGEATTN_ERR_NULL_ARG);
    q.data = NULL;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    q = Q, k.data = NULL;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    k = K, v.data = NULL;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    v = V, o.data = NULL;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    o = O;
    edgeattn_tensor bias = F->bias.t, lse = F->lse.t;
    bias.data = NULL;
    F->p.bias = &bias;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    lse.data = NULL;
    F->p.lse = &lse;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_NULL_ARG);
    /* NULL params means the defaults: valid */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, NULL), EDGEATTN_OK);
}

static void test_null_kv_and_decode(void **state)
{
    FX;
    edgeattn_tensor k = F->ak.t, v = F->av.t, q = F->qd.t, o = F->outd.t;
    EXPECT_NOCTX(edgeattn_kv_append(NULL, 0, NULL, &k, &v, NULL, 0), EDGEATTN_ERR_NULL_ARG);
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, NULL, &v, NULL, 0), EDGEATTN_ERR_NULL_ARG);
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &k, NULL, NULL, 0), EDGEATTN_ERR_NULL_ARG);
    k.data = NULL;
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &k, &v, NULL, 0), EDGEATTN_ERR_NULL_ARG);
    k = F->ak.t, v.data = NULL;
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &k, &v, NULL, 0), EDGEATTN_ERR_NULL_ARG);
    EXPECT_NOCTX(edgeattn_decode(NULL, 0, NULL, NULL, &q, &o, &F->pd), EDGEATTN_ERR_NULL_ARG);
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, NULL, &o, &F->pd), EDGEATTN_ERR_NULL_ARG);
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &q, NULL, &F->pd), EDGEATTN_ERR_NULL_ARG);
    q.data = NULL;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &q, &o, &F->pd), EDGEATTN_ERR_NULL_ARG);
    q = F->qd.t, o.data = NULL;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &q, &o, &F->pd), EDGEATTN_ERR_NULL_ARG);
    o = F->outd.t;
    edgeattn_tensor lse = F->lsed.t;
    lse.data = NULL;
    F->pd.lse = &lse;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &q, &o, &F->pd), EDGEATTN_ERR_NULL_ARG);
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &q, &o, NULL), EDGEATTN_OK); /* defaults */
    int64_t t;
    int32_t h;
    EXPECT_NOCTX(edgeattn_kv_reset(NULL, 0), EDGEATTN_ERR_NULL_ARG);
    EXPECT_NOCTX(edgeattn_kv_length(NULL, 0, 0, &t, &h), EDGEATTN_ERR_NULL_ARG);
    assert_int_equal(edgeattn_kv_length(F->ctx, 0, 0, NULL, NULL), EDGEATTN_OK); /* both optional */
    assert_int_equal(edgeattn_kv_length(F->ctx, 0, 1, &t, NULL), EDGEATTN_OK);
    assert_int_equal(t, F->total[1]);
    assert_int_equal(edgeattn_kv_length(F->ctx, 0, 1, NULL, &h), EDGEATTN_OK);
    assert_int_equal(h, F->held[1]);
    edgeattn_backend_info info;
    EXPECT_NOCTX(edgeattn_get_backend_info(NULL, &info), EDGEATTN_ERR_NULL_ARG);
    EXPECT_NOCTX(edgeattn_get_backend_info(F->ctx, NULL), EDGEATTN_ERR_NULL_ARG);
    /* no-ops that must not crash */
    edgeattn_destroy(NULL);
    edgeattn_config_default(NULL);
    edgeattn_params_default(NULL);
    assert_non_null(edgeattn_message_of(NULL));
    assert_true(edgeattn_message_of(NULL)[0] != '\0');
}

static void test_null_plan_create(void **state)
{
    (void)state;
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.num_threads = 1;
    edgeattn_plan_info info;
    edgeattn_message msg;
    memset(&msg, 0, sizeof msg);
    assert_int_equal(edgeattn_plan(NULL, &info, &msg), EDGEATTN_ERR_NULL_ARG);
    assert_true(msg.text[0] != '\0');
    memset(&msg, 0, sizeof msg);
    assert_int_equal(edgeattn_plan(&cfg, NULL, &msg), EDGEATTN_ERR_NULL_ARG);
    assert_true(msg.text[0] != '\0');
    assert_int_equal(edgeattn_plan(NULL, NULL, NULL), EDGEATTN_ERR_NULL_ARG); /* msg is optional */
    assert_int_equal(edgeattn_plan(&cfg, &info, NULL), EDGEATTN_OK);
    edgeattn_context *ctx = (edgeattn_context *)(uintptr_t)0x1;
    memset(&msg, 0, sizeof msg);
    assert_int_equal(edgeattn_create(NULL, NULL, 0, &ctx, &msg), EDGEATTN_ERR_NULL_ARG);
    assert_null(ctx);
    assert_true(msg.text[0] != '\0');
    memset(&msg, 0, sizeof msg);
    assert_int_equal(edgeattn_create(&cfg, NULL, 0, NULL, &msg), EDGEATTN_ERR_NULL_ARG);
    assert_true(msg.text[0] != '\0');
    assert_int_equal(edgeattn_create(&cfg, NULL, 0, NULL, NULL), EDGEATTN_ERR_NULL_ARG);
    assert_int_equal(edgeattn_create(&cfg, NULL, 0, &ctx, NULL), EDGEATTN_OK); /* msg is optional */
    assert_non_null(ctx);
    edgeattn_destroy(ctx);
}

/* ---------------------------------------------------------------- sizes and shapes */

static void test_zero_and_negative_sizes(void **state)
{
    FX;
    static const int64_t bad[] = {0, -1, -1000000};
    for (int i = 0; i < 4; i++)
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            edgeattn_tensor q = Q, k = K, v = V, o = O;
            q.shape[i] = bad[j];
            EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_INVALID_ARG);
            q = Q, k.shape[i] = bad[j];
            EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_INVALID_ARG);
            k = K, v.shape[i] = bad[j];
            EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_INVALID_ARG);
            v = V, o.shape[i] = bad[j];
            EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_INVALID_ARG);
            edgeattn_tensor ak = F->ak.t, av = F->av.t;
            ak.shape[i] = bad[j];
            av.shape[i] = bad[j];
            EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &av, NULL, 0), EDGEATTN_ERR_INVALID_ARG);
            edgeattn_tensor qd = F->qd.t, od = F->outd.t;
            qd.shape[i] = bad[j];
            EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &qd, &od, &F->pd), EDGEATTN_ERR_INVALID_ARG);
        }
}

static void test_shape_mismatch(void **state)
{
    FX;
    for (int i = 0; i < 4; i++) {
        /* out differs from q in one dim (smaller, so it stays inside its buffer) */
        edgeattn_tensor q = Q, k = K, v = V, o = O;
        o.shape[i] = i == 3 ? 48 : o.shape[i] - 1; /* 48: a supported head dim, still different */
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
    }
    edgeattn_tensor q = Q, k = K, v = V, o = O;
    v.shape[2] = NKV - 1; /* v length != k length */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
    v = V, v.shape[1] = 1; /* v heads != k heads */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
    v = V, v.shape[3] = 48; /* v head dim != k head dim */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
    v = V, k.shape[0] = v.shape[0] = 1; /* k/v batch != q batch */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
    k = K, v = V;
    k.shape[3] = v.shape[3] = 32; /* k/v head dim 32 != q head dim 64 (both supported) */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
    /* the message names what is wrong */
    edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p);
    if (!strstr(edgeattn_message_of(F->ctx), "head_dim") && !strstr(edgeattn_message_of(F->ctx), "head dim"))
        fail_msg("head dim mismatch: message \"%s\" does not say head_dim", edgeattn_message_of(F->ctx));
    check_usable(F, "message check", __LINE__);
    k = K, v = V;
    /* bias: wrong key length, wrong heads (neither 1 nor Hq), wrong rows */
    static const int64_t bias_bad[][4] = {{1, HQ, NQ, NKV - 1}, {1, HQ - 1, NQ, NKV}, {1, HQ, NQ - 1, NKV}, {1, 2, NQ, NKV}};
    for (size_t i = 0; i < sizeof bias_bad / sizeof bias_bad[0]; i++) {
        edgeattn_tensor bias = F->bias.t;
        for (int j = 0; j < 4; j++)
            bias.shape[j] = bias_bad[i][j];
        F->p.bias = &bias;
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
    }
    {
        /* bias batch 3: neither 1 nor B (its own buffer) */
        tc_tensor b3;
        tc_tensor_alloc(&b3, EDGEATTN_F32, 3, HQ, NQ, NKV, TC_BHSD, 0, 0, 0);
        tc_rng r;
        tc_rng_init(&r, 3, 3);
        tc_fill_random(&b3, &r, -1, 1);
        F->p.bias = &b3.t;
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
        tc_tensor_free(&b3);
    }
    /* lse: [B, Hq, Nq, 1] only */
    static const int64_t lse_bad[][4] = {{B, HQ, NQ - 1, 1}, {B, HQ - 1, NQ, 1}, {1, HQ, NQ, 1}};
    for (size_t i = 0; i < sizeof lse_bad / sizeof lse_bad[0]; i++) {
        edgeattn_tensor lse = F->lse.t;
        for (int j = 0; j < 4; j++)
            lse.shape[j] = lse_bad[i][j];
        F->p.lse = &lse;
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
    }
    {
        /* lse with a last dim of 2 (its own buffer, so the view fits) */
        tc_tensor l2;
        tc_tensor_alloc(&l2, EDGEATTN_F32, B, HQ, NQ, 2, TC_BHSD, 0, 0, 0);
        tc_fill_canary(&l2);
        void *snap = tc_snapshot(&l2);
        F->p.lse = &l2.t;
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_SHAPE_MISMATCH);
        assert_true(tc_unchanged(&l2, snap));
        free(snap);
        tc_tensor_free(&l2);
    }
    /* decode: out differs from q; q head dim differs from the cache's */
    edgeattn_tensor qd = F->qd.t, od = F->outd.t;
    od.shape[2] = 1;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &qd, &od, &F->pd), EDGEATTN_ERR_SHAPE_MISMATCH);
    od = F->outd.t;
    qd.shape[3] = od.shape[3] = 32;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &qd, &od, &F->pd), EDGEATTN_ERR_SHAPE_MISMATCH);
    /* kv_append: k and v shapes differ; heads or head dim differ from what the cache holds */
    edgeattn_tensor ak = F->ak.t, av = F->av.t;
    av.shape[2] = 9;
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &av, NULL, 0), EDGEATTN_ERR_SHAPE_MISMATCH);
    av = F->av.t;
    ak.shape[1] = av.shape[1] = 1;
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &av, NULL, 0), EDGEATTN_ERR_SHAPE_MISMATCH);
    ak = F->ak.t, av = F->av.t;
    ak.shape[3] = av.shape[3] = 32;
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &av, NULL, 0), EDGEATTN_ERR_SHAPE_MISMATCH);
}

static void test_gqa_ratio(void **state)
{
    FX;
    edgeattn_tensor q = Q, k = K, v = V, o = O;
    q.shape[1] = o.shape[1] = 3; /* 3 query heads over 2 KV heads */
    edgeattn_tensor lse = F->lse.t;
    lse.shape[1] = 3;
    F->p.lse = &lse;
    edgeattn_tensor bias = F->bias.t;
    bias.shape[1] = 3;
    F->p.bias = &bias;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_GQA_RATIO);
    q = Q, o = O;
    q.shape[1] = o.shape[1] = 1; /* fewer query heads than KV heads */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, NULL), EDGEATTN_ERR_GQA_RATIO);
    edgeattn_tensor qd = F->qd.t, od = F->outd.t;
    qd.shape[1] = od.shape[1] = 3; /* decode: 3 query heads over the cache's 2 */
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &qd, &od, NULL), EDGEATTN_ERR_GQA_RATIO);
}

static void test_head_dim(void **state)
{
    FX;
    static const int64_t bad[] = {68, 4, 12, 17, 584, 1024};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tc_tensor q, k, v, o, qd, od;
        const int64_t d = bad[i];
        tc_rng r;
        tc_rng_init(&r, 5, i);
        tc_tensor_alloc(&q, EDGEATTN_F32, 1, 2, 3, d, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&k, EDGEATTN_F32, 1, 2, 4, d, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&v, EDGEATTN_F32, 1, 2, 4, d, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&o, EDGEATTN_F32, 1, 2, 3, d, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&qd, EDGEATTN_F32, 1, 2, 1, d, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&od, EDGEATTN_F32, 1, 2, 1, d, TC_BHSD, 0, 0, 0);
        tc_fill_random(&q, &r, -1, 1);
        tc_fill_random(&k, &r, -1, 1);
        tc_fill_random(&v, &r, -1, 1);
        tc_fill_random(&qd, &r, -1, 1);
        tc_fill_canary(&o);
        tc_fill_canary(&od);
        void *so = tc_snapshot(&o), *sod = tc_snapshot(&od);
        /* 584 and 1024 are also beyond this context's max_head_dim 64: the head dim error comes first */
        EXPECT(edgeattn_attention(F->ctx, &q.t, &k.t, &v.t, &o.t, NULL), EDGEATTN_ERR_HEAD_DIM);
        EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &k.t, &v.t, NULL, 0), EDGEATTN_ERR_HEAD_DIM);
        EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &qd.t, &od.t, NULL), EDGEATTN_ERR_HEAD_DIM);
        assert_true(tc_unchanged(&o, so));
        assert_true(tc_unchanged(&od, sod));
        free(so);
        free(sod);
        tc_tensor_free(&q);
        tc_tensor_free(&k);
        tc_tensor_free(&v);
        tc_tensor_free(&o);
        tc_tensor_free(&qd);
        tc_tensor_free(&od);
    }
}

static void test_dtype(void **state)
{
    FX;
    static const int bad[] = {3, 99, -1, 0x7fffffff};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const edgeattn_dtype dt = (edgeattn_dtype)bad[i];
        edgeattn_tensor q = Q, k = K, v = V, o = O;
        q.dtype = dt;
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_DTYPE);
        q = Q, k.dtype = dt, v.dtype = dt;
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_DTYPE);
        k = K, v = V, o.dtype = dt;
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_DTYPE);
        edgeattn_tensor ak = F->ak.t, av = F->av.t;
        ak.dtype = dt;
        EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &av, NULL, 0), EDGEATTN_ERR_DTYPE);
        edgeattn_tensor qd = F->qd.t, od = F->outd.t;
        od.dtype = dt;
        EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &qd, &od, &F->pd), EDGEATTN_ERR_DTYPE);
    }
    edgeattn_tensor q = Q, k = K, v = V, o = O;
    /* K and V must share a dtype (v viewed as f16 over its own buffer: half the bytes per element) */
    v.dtype = EDGEATTN_F16;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_DTYPE);
    v = V;
    /* LSE and bias are F32 only */
    edgeattn_tensor lse = F->lse.t, bias = F->bias.t;
    lse.dtype = EDGEATTN_F16;
    F->p.lse = &lse;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_DTYPE);
    bias.dtype = EDGEATTN_BF16;
    F->p.bias = &bias;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_DTYPE);
    edgeattn_tensor lsed = F->lsed.t;
    lsed.dtype = EDGEATTN_BF16;
    F->pd.lse = &lsed;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_ERR_DTYPE);
}

/* ---------------------------------------------------------------- strides and views */

static void test_stride_overlap(void **state)
{
    FX;
    edgeattn_tensor q = Q, k = K, v = V, o = O;
    q.stride[1] = Q.stride[2]; /* head h+1 starts at row 1 of head h */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    q = Q, o.stride[2] = 32; /* rows of 64 elements every 32 */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    o = O, k.stride[2] = 32; /* rows of 64 keys every 32: partly overlapping rows (a stride of 0, a
                              * broadcast, is allowed on inputs: test_broadcast_inputs) */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    k = K, o.stride[1] = 0; /* an output may not broadcast */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    o = O;
    k = K, v.stride[0] = v.stride[1]; /* batch 1 on top of head 1 */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    v = V;
    edgeattn_tensor lse = F->lse.t;
    lse.stride[2] = 0;
    F->p.lse = &lse;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    edgeattn_tensor od = F->outd.t;
    od.stride[1] = 1; /* heads one element apart */
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &od, &F->pd), EDGEATTN_ERR_STRIDE);
    edgeattn_tensor ak = F->ak.t;
    ak.stride[2] = 16;
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &F->av.t, NULL, 0), EDGEATTN_ERR_STRIDE);
}

static void test_stride_negative(void **state)
{
    FX;
    for (int i = 0; i < 3; i++) {
        edgeattn_tensor q = Q, k = K, v = V, o = O;
        q.stride[i] = -Q.stride[i];
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
        q = Q, o.stride[i] = -O.stride[i];
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
        o = O, v.stride[i] = -1;
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
        edgeattn_tensor ak = F->ak.t;
        ak.stride[i] = -F->ak.t.stride[i];
        EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &F->av.t, NULL, 0), EDGEATTN_ERR_STRIDE);
    }
}

static void test_stride_last_dim(void **state)
{
    FX;
    static const int64_t bad[] = {2, 0, -1, 64};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        edgeattn_tensor q = Q, k = K, v = V, o = O;
        q.stride[3] = bad[i];
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
        q = Q, k.stride[3] = bad[i];
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
        k = K, o.stride[3] = bad[i];
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
        edgeattn_tensor av = F->av.t;
        av.stride[3] = bad[i];
        EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &F->ak.t, &av, NULL, 0), EDGEATTN_ERR_STRIDE);
        edgeattn_tensor qd = F->qd.t;
        qd.stride[3] = bad[i];
        EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &qd, &F->outd.t, &F->pd), EDGEATTN_ERR_STRIDE);
    }
}

/* The view needs one element more than `bytes` allows. */
static size_t extent_bytes(const edgeattn_tensor *t)
{
    size_t last = 0;
    for (int i = 0; i < 4; i++)
        last += (size_t)((t->shape[i] - 1) * t->stride[i]);
    return (last + 1) * tc_dtype_size(t->dtype);
}

static void test_view_outside_bytes(void **state)
{
    FX;
    const size_t es = 4;
    edgeattn_tensor q = Q, k = K, v = V, o = O;
    q.bytes = extent_bytes(&Q) - es;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    q.bytes = 0;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    q = Q, k.bytes = extent_bytes(&K) - 1;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    k = K, v.bytes = extent_bytes(&V) - es;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    v = V, o.bytes = extent_bytes(&O) - es;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    o = O;
    /* exactly the extent is fine */
    o.bytes = extent_bytes(&O);
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_OK);
    o = O;
    edgeattn_tensor bias = F->bias.t;
    bias.bytes = extent_bytes(&bias) - es;
    F->p.bias = &bias;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    edgeattn_tensor lse = F->lse.t;
    lse.bytes = extent_bytes(&lse) - es;
    F->p.lse = &lse;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    edgeattn_tensor ak = F->ak.t;
    ak.bytes = extent_bytes(&ak) - es;
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &F->av.t, NULL, 0), EDGEATTN_ERR_STRIDE);
    edgeattn_tensor od = F->outd.t;
    od.bytes = extent_bytes(&od) - es;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &od, &F->pd), EDGEATTN_ERR_STRIDE);
    /* a view whose strides step past its buffer (shape fits, stride does not) */
    q = Q;
    q.stride[0] = Q.stride[0] * 4;
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
}

/* Outputs that alias inputs or each other. */
static void test_aliasing(void **state)
{
    FX;
    edgeattn_tensor q = Q, k = K, v = V;
    edgeattn_tensor o = Q; /* out on top of q */
    EXPECT(edgeattn_attention(F->ctx, &q, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    /* out on top of k: a view of k's buffer with out's shape */
    o = O;
    o.data = K.data;
    o.bytes = K.bytes;
    o.shape[2] = 1;
    o.stride[0] = K.stride[0];
    o.stride[1] = 64;
    o.stride[2] = 64;
    edgeattn_tensor q1 = Q;
    q1.shape[2] = 1;
    edgeattn_tensor lse1 = F->lse.t;
    lse1.shape[2] = 1;
    F->p.lse = &lse1;
    edgeattn_tensor bias1 = F->bias.t;
    bias1.shape[2] = 1;
    F->p.bias = &bias1;
    EXPECT(edgeattn_attention(F->ctx, &q1, &k, &v, &o, &F->p), EDGEATTN_ERR_STRIDE);
    /* lse on top of out */
    edgeattn_tensor lse = F->lse.t;
    lse.data = O.data;
    lse.bytes = O.bytes;
    F->p.lse = &lse;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_STRIDE);
    /* decode out on top of decode q */
    edgeattn_tensor od = F->qd.t;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &od, NULL), EDGEATTN_ERR_STRIDE);
    /* lse on top of the bias: the lse values would land in the caller's bias */
    reset_outputs(F);
    edgeattn_tensor lb = F->lse.t;
    lb.data = F->bias.t.data;
    lb.bytes = F->bias.t.bytes;
    F->p.lse = &lb;
    assert_int_equal(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_STRIDE);
    assert_non_null(strstr(edgeattn_message_of(F->ctx), "lse overlaps bias"));
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_STRIDE);
    F->p.lse = &lb;
    /* lse on top of k, and on top of q */
    lb.data = K.data;
    lb.bytes = K.bytes;
    F->p.lse = &lb;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_STRIDE);
    lb.data = Q.data;
    lb.bytes = Q.bytes;
    F->p.lse = &lb;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_STRIDE);
}

/* kv_lens (a caller array) inside an output: the call is valid, the lengths are read once before
 * anything is written, and the result is the one the same lengths give from a separate array. */
static void test_kv_lens_inside_output(void **state)
{
    FX;
    const int32_t lens[B] = {9, 4};
    /* the expected result, with kv_lens in its own array */
    tc_tensor want;
    tc_tensor_alloc(&want, EDGEATTN_F32, B, HQ, NQ, D, TC_BHSD, 0, 0, 0);
    tc_fill_canary(&want);
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = 1;
    p.kv_lens = lens;
    assert_int_equal(edgeattn_attention(F->ctx, &Q, &K, &V, &want.t, &p), EDGEATTN_OK);
    for (int where = 0; where < 3; where++) {
        reset_outputs(F);
        /* 0: the first elements of out's view; 1: the last elements of out's view; 2: inside lse */
        int32_t *in;
        if (where == 2) {
            in = (int32_t *)F->lse.t.data;
            p.lse = &F->lse_t;
        } else {
            const size_t last = tc_off(&F->out.t, B - 1, HQ - 1, NQ - 1, D - B);
            in = where == 0 ? (int32_t *)F->out.t.data : (int32_t *)F->out.t.data + last;
            p.lse = NULL;
        }
        memcpy(in, lens, sizeof lens);
        p.kv_lens = in;
        const edgeattn_status st = edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &p);
        if (st != EDGEATTN_OK)
            fail_msg("kv_lens inside %s: returned %d: %s", where == 2 ? "lse" : "out", (int)st,
                     edgeattn_message_of(F->ctx));
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < HQ; h++)
                for (int64_t i = 0; i < NQ; i++)
                    for (int64_t d = 0; d < D; d++) {
                        const float got = tc_get(&F->out.t, b, h, i, d), ref = tc_get(&want.t, b, h, i, d);
                        if (!(fabsf(got - ref) <= 1e-6f * (1.0f + fabsf(ref))))
                            fail_msg("kv_lens inside %s (case %d): out[%lld,%lld,%lld,%lld] = %g, expected %g",
                                     where == 2 ? "lse" : "out", where, (long long)b, (long long)h, (long long)i,
                                     (long long)d, (double)got, (double)ref);
                    }
    }
    tc_tensor_free(&want);
    USABLE();
}

/* A zero-initialised params struct (or one from an older header) is refused, naming the function
 * that fills it; it is never read as "window 0 on both sides". */
static void test_params_zero_initialised(void **state)
{
    FX;
    edgeattn_params z;
    memset(&z, 0, sizeof z);
    z.causal = 1;
    assert_int_equal(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &z), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(edgeattn_message_of(F->ctx), "edgeattn_params_default"));
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &z), EDGEATTN_ERR_INVALID_ARG);
    assert_int_equal(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &z), EDGEATTN_ERR_INVALID_ARG);
    assert_non_null(strstr(edgeattn_message_of(F->ctx), "edgeattn_params_default"));
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &z), EDGEATTN_ERR_INVALID_ARG);
    edgeattn_params old = F->p;
    old.struct_version = EDGEATTN_STRUCT_VERSION - 1;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &old), EDGEATTN_ERR_INVALID_ARG);
    old.struct_version = EDGEATTN_STRUCT_VERSION + 1;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &old), EDGEATTN_ERR_INVALID_ARG);
    /* and a zero-initialised config, for both plan and create */
    edgeattn_config zc;
    memset(&zc, 0, sizeof zc);
    EXPECT_CONFIG(&zc, EDGEATTN_ERR_INVALID_ARG, "a zero-initialised config");
}

/* Every failing call writes its own message: after a failure of one call, a failure of another
 * never leaves the first one's message behind. */
static void test_message_is_each_calls_own(void **state)
{
    FX;
    char stale[256];
    edgeattn_tensor none = Q;
    none.data = NULL;
#define FAIL_FIRST()                                                                                                do {                                                                                                               assert_int_equal(edgeattn_attention(F->ctx, &none, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_NULL_ARG);         snprintf(stale, sizeof stale, "%s", edgeattn_message_of(F->ctx));                                              assert_true(stale[0] != '\0');                                                                              } while (0)
#define OWN(call, want, word)                                                                                       do {                                                                                                               FAIL_FIRST();                                                                                                  const edgeattn_status st_ = (call);                                                                            const char *m_ = edgeattn_message_of(F->ctx);                                                                  if (st_ != (want) || !m_[0] || strcmp(m_, stale) == 0 || !strstr(m_, (word)))                                      fail_msg("line %d: %s returned %d with message \"%s\" (expected %d, its own message naming %s)",                        __LINE__, #call, (int)st_, m_, (int)(want), (word));                                          } while (0)
    int64_t t;
    int32_t h;
    OWN(edgeattn_kv_length(F->ctx, 0, B, &t, &h), EDGEATTN_ERR_INVALID_ARG, "kv_length");
    OWN(edgeattn_kv_length(F->ctx, 0, -1, &t, &h), EDGEATTN_ERR_INVALID_ARG, "kv_length");
    OWN(edgeattn_kv_reset(F->ctx, B), EDGEATTN_ERR_INVALID_ARG, "kv_reset");
    OWN(edgeattn_get_backend_info(F->ctx, NULL), EDGEATTN_ERR_NULL_ARG, "info");
    OWN(edgeattn_kv_append(F->ctx, 0, NULL, NULL, &F->av.t, NULL, 0), EDGEATTN_ERR_NULL_ARG, "k");
    OWN(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, NULL, &F->pd), EDGEATTN_ERR_NULL_ARG, "out");
    edgeattn_memory mem;
    void *data;
    size_t off;
    OWN(edgeattn_device_region(F->ctx, &mem, &data, &off, NULL), EDGEATTN_ERR_NULL_ARG, "device_region");
    OWN(edgeattn_copy(F->ctx, NULL, &F->q.t), EDGEATTN_ERR_NULL_ARG, "copy");
    OWN(edgeattn_measure_ceilings(F->ctx, NULL), EDGEATTN_ERR_NULL_ARG, "ceilings");
    /* and a success clears it */
    FAIL_FIRST();
    assert_int_equal(edgeattn_kv_length(F->ctx, 0, 0, &t, &h), EDGEATTN_OK);
    assert_string_equal(edgeattn_message_of(F->ctx), "");
    FAIL_FIRST();
    edgeattn_backend_info info;
    assert_int_equal(edgeattn_get_backend_info(F->ctx, &info), EDGEATTN_OK);
    assert_string_equal(edgeattn_message_of(F->ctx), "");
#undef OWN
#undef FAIL_FIRST
    USABLE();
}

/* ---------------------------------------------------------------- beyond the plan, overflow */

static void test_beyond_plan(void **state)
{
    FX;
    /* one input buffer and one output buffer big enough for every oversized view below */
    const int64_t elems = 4 * (int64_t)(B + 1) * (HQ * 2) * (MAX_KV + 1) * 128;
    tc_tensor in, outb;
    tc_tensor_alloc(&in, EDGEATTN_F32, 1, 1, 1, elems, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&outb, EDGEATTN_F32, 1, 1, 1, elems, TC_BHSD, 0, 0, 0);
    tc_rng r;
    tc_rng_init(&r, 9, 9);
    tc_fill_random(&in, &r, -1, 1);
    tc_fill_canary(&outb);
    void *osnap = tc_snapshot(&outb);
    void *ip = in.t.data, *op = outb.t.data;
    const struct {
        int64_t b, hq, hkv, nq, nkv, d;
    } cases[] = {
        {B + 1, HQ, HKV, NQ, NKV, D},     /* batch */
        {B, HQ * 2, HKV, NQ, NKV, D},     /* query heads */
        {B, HQ, HKV * 2, NQ, NKV, D},     /* KV heads */
        {B, HQ, HKV, MAX_Q + 1, NKV, D},  /* query length */
        {B, HQ, HKV, NQ, MAX_KV + 1, D},  /* KV length */
        {B, HQ, HKV, NQ, NKV, 128},       /* head dim (supported, beyond the plan's 64) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        edgeattn_tensor q = edgeattn_tensor_bhsd(ip, EDGEATTN_F32, cases[i].b, cases[i].hq, cases[i].nq, cases[i].d);
        edgeattn_tensor k = edgeattn_tensor_bhsd(ip, EDGEATTN_F32, cases[i].b, cases[i].hkv, cases[i].nkv, cases[i].d);
        edgeattn_tensor o = edgeattn_tensor_bhsd(op, EDGEATTN_F32, cases[i].b, cases[i].hq, cases[i].nq, cases[i].d);
        assert_true(q.bytes <= in.t.bytes && k.bytes <= in.t.bytes && o.bytes <= outb.t.bytes);
        EXPECT(edgeattn_attention(F->ctx, &q, &k, &k, &o, NULL), EDGEATTN_ERR_CAPACITY);
        assert_true(tc_unchanged(&outb, osnap));
    }
    /* the KV cache: more sequences, KV heads or head dim than planned */
    const int64_t kv_bad[][3] = {{B + 1, HKV, D}, {B, HKV * 2, D}, {B, HKV, 128}};
    for (size_t i = 0; i < 3; i++) {
        edgeattn_tensor k = edgeattn_tensor_bhsd(ip, EDGEATTN_F32, kv_bad[i][0], kv_bad[i][1], 3, kv_bad[i][2]);
        EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &k, &k, NULL, 0), EDGEATTN_ERR_CAPACITY);
    }
    /* decode: more sequences, query heads, head dim or query rows than planned */
    const int64_t dec_bad[][4] = {{B + 1, HQ, 1, D}, {B, HQ * 2, 1, D}, {B, HQ, 1, 128}, {1, HQ, MAX_Q + 1, D}};
    for (size_t i = 0; i < 4; i++) {
        edgeattn_tensor q = edgeattn_tensor_bhsd(ip, EDGEATTN_F32, dec_bad[i][0], dec_bad[i][1], dec_bad[i][2],
                                                 dec_bad[i][3]);
        edgeattn_tensor o = edgeattn_tensor_bhsd(op, EDGEATTN_F32, dec_bad[i][0], dec_bad[i][1], dec_bad[i][2],
                                                 dec_bad[i][3]);
        EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &q, &o, NULL), EDGEATTN_ERR_CAPACITY);
        assert_true(tc_unchanged(&outb, osnap));
    }
    free(osnap);
    tc_tensor_free(&in);
    tc_tensor_free(&outb);
}

static void test_overflow(void **state)
{
    FX;
    /* shapes whose element or byte counts do not fit in size_t */
    const int64_t huge = (int64_t)1 << 40;
    edgeattn_tensor q = edgeattn_tensor_bhsd(Q.data, EDGEATTN_F32, huge, huge, 16, 64);
    assert_int_equal(q.bytes, 0); /* the helper says so */
    EXPECT(edgeattn_attention(F->ctx, &q, &K, &V, &F->out.t, NULL), EDGEATTN_ERR_OVERFLOW);
    edgeattn_tensor k = edgeattn_tensor_bshd(K.data, EDGEATTN_F32, huge, huge, 16, 64);
    assert_int_equal(k.bytes, 0);
    EXPECT(edgeattn_attention(F->ctx, &Q, &k, &k, &F->out.t, NULL), EDGEATTN_ERR_OVERFLOW);
    /* a stride that overflows when multiplied by its extent */
    q = Q;
    q.stride[0] = INT64_MAX / 2;
    q.bytes = SIZE_MAX;
    EXPECT(edgeattn_attention(F->ctx, &q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_OVERFLOW);
    edgeattn_tensor o = O;
    o.shape[2] = INT64_MAX / 8;
    o.bytes = SIZE_MAX;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &o, &F->p), EDGEATTN_ERR_OVERFLOW);
    edgeattn_tensor ak = F->ak.t, av = F->av.t;
    ak.shape[2] = av.shape[2] = INT64_MAX / 4;
    ak.bytes = av.bytes = SIZE_MAX;
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &av, NULL, 0), EDGEATTN_ERR_OVERFLOW);
    edgeattn_tensor qd = F->qd.t;
    qd.stride[1] = INT64_MAX;
    qd.bytes = SIZE_MAX;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &qd, &F->outd.t, &F->pd), EDGEATTN_ERR_OVERFLOW);
    /* a plan that does not fit in size_t */
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_batch = INT32_MAX;
    cfg.max_kv_len = INT32_MAX;
    cfg.max_heads = INT32_MAX;
    cfg.max_kv_heads = INT32_MAX;
    cfg.max_head_dim = 256;
    cfg.num_threads = 1;
    EXPECT_CONFIG(&cfg, EDGEATTN_ERR_OVERFLOW, "a KV cache of 2^31 x 2^31 x 2^31 x 256");
}

/* ---------------------------------------------------------------- options that make no sense */

static void test_window_invalid(void **state)
{
    FX;
    static const int32_t bad[] = {-2, -100, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        F->p.window_left = bad[i];
        EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
        F->p.window_right = bad[i];
        EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
        F->pd.window_left = bad[i];
        EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_ERR_INVALID_ARG);
        F->pd.window_right = bad[i];
        EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    }
}

static void test_kv_lens_invalid(void **state)
{
    FX;
    static const int32_t bad[][B] = {{-1, 3}, {NKV, -5}, {NKV + 1, 3}, {4, INT32_MAX}, {INT32_MIN, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        F->p.kv_lens = bad[i];
        EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
    }
    /* kv_lens and bias have no meaning for decode (the cache knows its lengths) */
    const int32_t ok[B] = {1, 1};
    F->pd.kv_lens = ok;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    F->pd.bias = &F->bias_t;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_ERR_INVALID_ARG);
}

static void test_params_invalid(void **state)
{
    FX;
    static const float bad_f[] = {-1.0f, -1e-30f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_f / sizeof bad_f[0]; i++) {
        F->p.scale = bad_f[i];
        EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
        F->p.softcap = bad_f[i];
        EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
        F->pd.scale = bad_f[i];
        EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_ERR_INVALID_ARG);
        F->pd.softcap = bad_f[i];
        EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    }
    /* a softcap so small that 1/softcap overflows (found by the fuzzer: NaN scores) */
    F->p.softcap = 1e-39f;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
    /* tensor data not aligned to its elements (found by the fuzzer: misaligned float loads) */
    {
        edgeattn_tensor qm = Q, km = F->ak.t;
        qm.data = (char *)Q.data + 2;
        qm.bytes -= 4;
        EXPECT(edgeattn_attention(F->ctx, &qm, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_MISALIGNED);
        km.data = (char *)km.data + 1;
        km.bytes -= 4;
        EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &km, &F->av.t, NULL, 0), EDGEATTN_ERR_MISALIGNED);
    }
    F->p.causal = 2;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
    F->p.causal = -1;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
    F->p.check_finite = 7;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
    F->p.reserved[sizeof F->p.reserved - 1] = 1;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
    F->pd.reserved[0] = 1;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    F->pd.causal = 3;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    /* the tensor's memory kind and offset */
    edgeattn_tensor q = Q, o = O, ak = F->ak.t;
    q.memory = (edgeattn_memory)7;
    EXPECT(edgeattn_attention(F->ctx, &q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_INVALID_ARG);
    o.memory = (edgeattn_memory)-1;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &o, &F->p), EDGEATTN_ERR_INVALID_ARG);
    o = O;
    o.offset = 64; /* only OpenCL tensors take an offset */
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &o, &F->p), EDGEATTN_ERR_INVALID_ARG);
    ak.memory = EDGEATTN_MEMORY_COUNT_;
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &F->av.t, NULL, 0), EDGEATTN_ERR_INVALID_ARG);
    /* device memory of a backend this context does not run on */
    edgeattn_backend_info info;
    assert_int_equal(edgeattn_get_backend_info(F->ctx, &info), EDGEATTN_OK);
    const edgeattn_memory foreign[2] = {EDGEATTN_MEM_CUDA, EDGEATTN_MEM_OPENCL};
    const edgeattn_backend owner[2] = {EDGEATTN_BACKEND_CUDA, EDGEATTN_BACKEND_OPENCL};
    for (int i = 0; i < 2; i++) {
        if (info.backend == owner[i])
            continue;
        q = Q;
        q.memory = foreign[i];
        EXPECT(edgeattn_attention(F->ctx, &q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_UNSUPPORTED);
        ak = F->ak.t;
        ak.memory = foreign[i];
        EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &ak, &F->av.t, NULL, 0), EDGEATTN_ERR_UNSUPPORTED);
        edgeattn_tensor od = F->outd.t;
        od.memory = foreign[i];
        EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &od, &F->pd), EDGEATTN_ERR_UNSUPPORTED);
    }
}

/* Puts x at [b,h,n,d] of t, runs the call, expects `want`, restores, checks the context works. */
#define WITH_VALUE(t, b, h, n, d, x, call, want)                                                               \
    do {                                                                                                       \
        const float keep_ = tc_get((t), (b), (h), (n), (d));                                                   \
        tc_set((t), (b), (h), (n), (d), (x));                                                                  \
        snapshot_all(F);                                                                                       \
        EXPECT_ONLY(call, want);                                                                               \
        tc_set((t), (b), (h), (n), (d), keep_);                                                                \
        USABLE();                                                                                              \
    } while (0)

static void test_check_finite(void **state)
{
    FX;
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    tc_tensor *ins[] = {&F->q, &F->k, &F->v};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            const edgeattn_tensor *x = &ins[t]->t;
            F->p.check_finite = 1;
            WITH_VALUE(x, 1, 1, x->shape[2] - 1, 63, bad[i],
                       edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_ERR_NONFINITE);
            F->p.check_finite = 1;
            WITH_VALUE(x, 0, 0, 0, 0, bad[i], edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p),
                       EDGEATTN_ERR_NONFINITE);
        }
    /* bias: NaN and +inf are refused, -inf is a mask and allowed */
    const edgeattn_tensor *bt = &F->bias.t;
    F->p.check_finite = 1;
    WITH_VALUE(bt, 0, 2, 3, 4, NAN, edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p),
               EDGEATTN_ERR_NONFINITE);
    F->p.check_finite = 1;
    WITH_VALUE(bt, 0, 2, 3, 4, INFINITY, edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p),
               EDGEATTN_ERR_NONFINITE);
    F->p.check_finite = 1;
    WITH_VALUE(bt, 0, 2, 3, 4, -INFINITY, edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_OK);
    /* the NaN poison outside every view is not looked at: a valid call with the check passes */
    F->p.check_finite = 1;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_OK);
    /* decode: a NaN in q */
    F->pd.check_finite = 1;
    WITH_VALUE(&F->qd.t, 1, 3, 1, 0, NAN, edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd),
               EDGEATTN_ERR_NONFINITE);
    /* kv_append: an Inf in sequence 1's v or a NaN in sequence 0's k: nothing is appended anywhere */
    WITH_VALUE(&F->av.t, 1, 0, 2, 5, INFINITY,
               edgeattn_kv_append(F->ctx, 0, NULL, &F->ak.t, &F->av.t, ((const int32_t[]){1, 3}), 1), EDGEATTN_ERR_NONFINITE);
    WITH_VALUE(&F->ak.t, 0, 1, 0, 0, NAN, edgeattn_kv_append(F->ctx, 0, NULL, &F->ak.t, &F->av.t, NULL, 1),
               EDGEATTN_ERR_NONFINITE);
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &F->ak.t, &F->av.t, NULL, 2), EDGEATTN_ERR_INVALID_ARG);
}

/* ---------------------------------------------------------------- config, buffer, backend */

static void test_config_invalid(void **state)
{
    (void)state;
    edgeattn_config base;
    edgeattn_config_default(&base);
    base.num_threads = 1;
    base.flags = EDGEATTN_FLAG_KV_CACHE;
    EXPECT_CONFIG(&base, EDGEATTN_OK, "the defaults");
    int32_t *maxima[6];
    edgeattn_config c = base;
    maxima[0] = &c.max_batch, maxima[1] = &c.max_q_len, maxima[2] = &c.max_kv_len;
    maxima[3] = &c.max_heads, maxima[4] = &c.max_kv_heads, maxima[5] = &c.max_head_dim;
    static const int32_t bad[] = {0, -1, INT32_MIN};
    for (int i = 0; i < 6; i++)
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            c = base;
            *maxima[i] = bad[j];
            char what[64];
            snprintf(what, sizeof what, "maximum #%d = %d", i, (int)bad[j]);
            EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, what);
        }
    c = base, c.max_heads = 8, c.max_kv_heads = 3;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_GQA_RATIO, "8 heads over 3 KV heads");
    c = base, c.max_heads = 2, c.max_kv_heads = 4;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_GQA_RATIO, "2 heads over 4 KV heads");
    static const int32_t bad_dims[] = {68, 4, 12, 584, 592, 1024, 100};
    for (size_t j = 0; j < sizeof bad_dims / sizeof bad_dims[0]; j++) {
        c = base, c.max_head_dim = bad_dims[j];
        EXPECT_CONFIG(&c, EDGEATTN_ERR_HEAD_DIM, "an unsupported max_head_dim");
    }
    c = base, c.reserved[0] = 1;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "reserved[0] set");
    c = base, c.reserved[sizeof c.reserved - 1] = 0x80;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "the last reserved byte set");
    c = base, c.struct_version = 0;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "struct_version 0");
    c = base, c.struct_version = EDGEATTN_STRUCT_VERSION + 1;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "a future struct_version");
    c = base, c.kv_cache_dtype = EDGEATTN_DTYPE_COUNT_;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_DTYPE, "kv_cache_dtype past the last");
    c = base, c.kv_cache_dtype = (edgeattn_dtype)-1;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_DTYPE, "kv_cache_dtype -1");
    c = base, c.kv_cache_window = -1;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "kv_cache_window -1");
    c = base, c.flags = 0, c.kv_cache_window = 16;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "a window without a KV cache");
    c = base, c.flags = 0x80;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "unknown flags");
    c = base, c.num_threads = -1;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "num_threads -1");
    c = base, c.backend = (edgeattn_backend)9;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "backend 9");
    c = base, c.backend = (edgeattn_backend)-1;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "backend -1");
    static const int32_t bad_layers[] = {0, -1, 1025, INT32_MIN};
    for (size_t j = 0; j < sizeof bad_layers / sizeof bad_layers[0]; j++) {
        c = base, c.num_layers = bad_layers[j];
        EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "num_layers out of range");
    }
    c = base, c.pad_ = 1;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "the config's padding set");
    /* RoPE */
    edgeattn_rope good = {EDGEATTN_ROPE_HALF, 0, 10000.0f, 0.0f, 0.0f, 0};
    c = base, c.rope = good;
    EXPECT_CONFIG(&c, EDGEATTN_OK, "a valid rope");
    c = base, c.rope = good, c.flags = 0;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "rope without a KV cache");
    c = base, c.rope = good, c.rope.style = (edgeattn_rope_style)3;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "rope style 3");
    static const int32_t bad_rdim[] = {-2, 3, 130, 256};
    for (size_t j = 0; j < sizeof bad_rdim / sizeof bad_rdim[0]; j++) {
        c = base, c.rope = good, c.rope.dim = bad_rdim[j];
        EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "rope.dim odd, negative or beyond max_head_dim");
    }
    static const float bad_theta[] = {0.0f, 1.0f, -5.0f, NAN, INFINITY};
    for (size_t j = 0; j < sizeof bad_theta / sizeof bad_theta[0]; j++) {
        c = base, c.rope = good, c.rope.theta = bad_theta[j];
        EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "rope.theta not > 1");
    }
    static const float bad_scale[] = {0.5f, -1.0f, NAN, INFINITY};
    for (size_t j = 0; j < sizeof bad_scale / sizeof bad_scale[0]; j++) {
        c = base, c.rope = good, c.rope.linear_scale = bad_scale[j];
        EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "rope.linear_scale below 1");
        c = base, c.rope = good, c.rope.ntk_alpha = bad_scale[j];
        EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "rope.ntk_alpha below 1");
    }
    c = base, c.rope.theta = 10000.0f; /* style NONE with fields set: a forgotten style */
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "rope fields without a style");
    c = base, c.parallel_user = &c;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "parallel_user without parallel_for");
    /* paged KV cache */
    c = base, c.kv_page_size = 16;
    EXPECT_CONFIG(&c, EDGEATTN_OK, "a paged cache");
    static const int32_t bad_page[] = {8, 24, 2048, -16, 1, INT32_MAX, INT32_MIN};
    for (size_t j = 0; j < sizeof bad_page / sizeof bad_page[0]; j++) {
        c = base, c.kv_page_size = bad_page[j];
        EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "kv_page_size not a power of two in [16, 1024]");
    }
    c = base, c.kv_page_size = 16, c.flags = 0;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "pages without a KV cache");
    c = base, c.kv_pages = 4;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "kv_pages without kv_page_size");
    c = base, c.kv_page_size = 16, c.kv_pages = -1;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "kv_pages -1");
    c = base, c.kv_page_size = 16, c.kv_pages = INT32_MAX;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "more pages than every sequence can use");
    c = base, c.kv_page_size = 16, c.max_batch = INT32_MAX, c.num_layers = 1024, c.max_kv_len = INT32_MAX;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_INVALID_ARG, "a full pool beyond 2^31 pages");
    c = base, c.kv_page_size = 16, c.max_batch = INT32_MAX, c.num_layers = 1024, c.max_kv_len = INT32_MAX,
    c.kv_pages = INT32_MAX - 1;
    EXPECT_CONFIG(&c, EDGEATTN_ERR_OVERFLOW, "a pool whose bytes overflow");
}

/* The KV-cache calls' own arguments: layer, sequence ids, query counts, truncate, fork, read. */
static void test_kv_call_arguments(void **state)
{
    FX;
    edgeattn_tensor k = F->ak.t, v = F->av.t, q = F->qd.t, o = F->outd.t;
    int64_t t;
    int32_t h;
    /* layers: the fixture has one */
    static const int32_t bad_layer[] = {1, -1, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_layer / sizeof bad_layer[0]; i++) {
        EXPECT(edgeattn_kv_append(F->ctx, bad_layer[i], NULL, &k, &v, NULL, 0), EDGEATTN_ERR_LAYER);
        EXPECT(edgeattn_decode(F->ctx, bad_layer[i], NULL, NULL, &q, &o, &F->pd), EDGEATTN_ERR_LAYER);
        EXPECT(edgeattn_kv_length(F->ctx, bad_layer[i], 0, &t, &h), EDGEATTN_ERR_LAYER);
        tc_tensor rk, rv;
        tc_tensor_alloc(&rk, EDGEATTN_F32, 1, HKV, 2, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rv, EDGEATTN_F32, 1, HKV, 2, D, TC_BHSD, 0, 0, 0);
        EXPECT(edgeattn_kv_read(F->ctx, bad_layer[i], 0, 0, &rk.t, &rv.t), EDGEATTN_ERR_LAYER);
        tc_tensor_free(&rk);
        tc_tensor_free(&rv);
    }
    /* sequence ids: out of range, repeated */
    const int32_t ids_out[B] = {0, B}, ids_neg[B] = {-1, 0}, ids_rep[B] = {1, 1};
    EXPECT(edgeattn_kv_append(F->ctx, 0, ids_out, &k, &v, NULL, 0), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_append(F->ctx, 0, ids_neg, &k, &v, NULL, 0), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_append(F->ctx, 0, ids_rep, &k, &v, NULL, 0), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_decode(F->ctx, 0, ids_out, NULL, &q, &o, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_decode(F->ctx, 0, ids_rep, NULL, &q, &o, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    /* the ids swapped: valid */
    const int32_t ids_swap[B] = {1, 0};
    EXPECT(edgeattn_decode(F->ctx, 0, ids_swap, NULL, &q, &o, &F->pd), EDGEATTN_OK);
    /* q_lens: 0, negative, beyond Nq */
    const int32_t ql_zero[B] = {0, 1}, ql_neg[B] = {1, -3}, ql_big[B] = {NQ_DEC + 1, 1};
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, ql_zero, &q, &o, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, ql_neg, &q, &o, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, ql_big, &q, &o, &F->pd), EDGEATTN_ERR_INVALID_ARG);
    /* kv_length / truncate / fork: sequences out of range */
    EXPECT(edgeattn_kv_length(F->ctx, 0, B, &t, &h), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_length(F->ctx, 0, -1, &t, &h), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_truncate(F->ctx, B, 0), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_truncate(F->ctx, 0, -1), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_fork(F->ctx, 0, 0), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_fork(F->ctx, 0, B), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_fork(F->ctx, -1, 1), EDGEATTN_ERR_INVALID_ARG);
    EXPECT_NOCTX(edgeattn_kv_truncate(NULL, 0, 0), EDGEATTN_ERR_NULL_ARG);
    EXPECT_NOCTX(edgeattn_kv_fork(NULL, 0, 1), EDGEATTN_ERR_NULL_ARG);
    /* kv_read: positions not held, wrong shapes, NULLs, device memory, outputs overlapping */
    tc_tensor rk, rv;
    tc_tensor_alloc(&rk, EDGEATTN_F32, 1, HKV, 4, D, TC_BHSD, 1, 1, 1);
    tc_tensor_alloc(&rv, EDGEATTN_F16, 1, HKV, 4, D, TC_BSHD, 1, 1, 1);
    tc_fill_canary(&rk);
    tc_fill_canary(&rv);
    void *sk = tc_snapshot(&rk), *sv = tc_snapshot(&rv);
    const edgeattn_status bad_reads[] = {
        edgeattn_kv_read(F->ctx, 0, 1, F->total[1] - 3, &rk.t, &rv.t),  /* runs past the end */
        edgeattn_kv_read(F->ctx, 0, 0, -1, &rk.t, &rv.t),                /* before the start */
        edgeattn_kv_read(F->ctx, 0, B, 0, &rk.t, &rv.t),                 /* sequence out of range */
        edgeattn_kv_read(F->ctx, 0, 0, 0, NULL, &rv.t),
        edgeattn_kv_read(F->ctx, 0, 0, 0, &rk.t, NULL),
        edgeattn_kv_read(F->ctx, 0, 0, 0, &rk.t, &rk.t),                 /* k and v the same buffer */
    };
    const edgeattn_status want_reads[] = {EDGEATTN_ERR_INVALID_ARG, EDGEATTN_ERR_INVALID_ARG, EDGEATTN_ERR_INVALID_ARG,
                                          EDGEATTN_ERR_NULL_ARG,    EDGEATTN_ERR_NULL_ARG,    EDGEATTN_ERR_STRIDE};
    for (size_t i = 0; i < sizeof bad_reads / sizeof bad_reads[0]; i++)
        if (bad_reads[i] != want_reads[i])
            fail_msg("bad kv_read #%zu returned %d, expected %d", i, (int)bad_reads[i], (int)want_reads[i]);
    edgeattn_tensor wrong = rk.t;
    wrong.shape[1] = HKV - 1; /* fewer heads than the cache holds */
    edgeattn_tensor wrongv = rv.t;
    wrongv.shape[1] = HKV - 1;
    assert_int_equal(edgeattn_kv_read(F->ctx, 0, 0, 0, &wrong, &wrongv), EDGEATTN_ERR_SHAPE_MISMATCH);
    wrong = rk.t;
    wrong.memory = EDGEATTN_MEM_CUDA;
    assert_true(edgeattn_kv_read(F->ctx, 0, 0, 0, &wrong, &rv.t) != EDGEATTN_OK);
    if (!tc_unchanged(&rk, sk) || !tc_unchanged(&rv, sv))
        fail_msg("a failed kv_read wrote into its outputs");
    /* and a valid read of what the fixture appended: K rows as F32 (the cache is F16) */
    assert_int_equal(edgeattn_kv_read(F->ctx, 0, 0, 2, &rk.t, &rv.t), EDGEATTN_OK);
    for (int hh = 0; hh < HKV; hh++)
        for (int i = 0; i < 4; i++)
            for (int d = 0; d < D; d++) {
                const float want_k = tc_round(EDGEATTN_F16, tc_get(&F->ak.t, 0, hh, 2 + i, d));
                const float want_v = tc_round(EDGEATTN_F16, tc_get(&F->av.t, 0, hh, 2 + i, d));
                if (tc_get(&rk.t, 0, hh, i, d) != want_k || tc_get(&rv.t, 0, hh, i, d) != want_v)
                    fail_msg("kv_read [%d, %d, %d]: %g/%g, expected %g/%g", hh, i, d, (double)tc_get(&rk.t, 0, hh, i, d),
                             (double)tc_get(&rv.t, 0, hh, i, d), (double)want_k, (double)want_v);
            }
    free(sk);
    free(sv);
    tc_tensor_free(&rk);
    tc_tensor_free(&rv);
    USABLE();
}

/* Read-only inputs may broadcast (stride 0): the result equals the one from materialised copies. */
static void test_broadcast_inputs(void **state)
{
    FX;
    /* k and v: batch row 0 for every batch row */
    edgeattn_tensor kb = K, vb = V;
    kb.stride[0] = 0;
    vb.stride[0] = 0;
    tc_tensor k0, v0, want;
    tc_tensor_alloc(&k0, EDGEATTN_F32, B, HKV, NKV, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v0, EDGEATTN_F32, B, HKV, NKV, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&want, EDGEATTN_F32, B, HQ, NQ, D, TC_BHSD, 0, 0, 0);
    for (int b = 0; b < B; b++)
        for (int hh = 0; hh < HKV; hh++)
            for (int j = 0; j < NKV; j++)
                for (int d = 0; d < D; d++) {
                    tc_set(&k0.t, b, hh, j, d, tc_get(&K, 0, hh, j, d));
                    tc_set(&v0.t, b, hh, j, d, tc_get(&V, 0, hh, j, d));
                }
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = 1;
    assert_int_equal(edgeattn_attention(F->ctx, &Q, &k0.t, &v0.t, &want.t, &p), EDGEATTN_OK);
    reset_outputs(F);
    const edgeattn_status st = edgeattn_attention(F->ctx, &Q, &kb, &vb, &F->out.t, &p);
    if (st != EDGEATTN_OK)
        fail_msg("broadcast k/v refused: %d: %s", (int)st, edgeattn_message_of(F->ctx));
    for (int b = 0; b < B; b++)
        for (int hh = 0; hh < HQ; hh++)
            for (int i = 0; i < NQ; i++)
                for (int d = 0; d < D; d++) {
                    const float got = tc_get(&F->out.t, b, hh, i, d), ref = tc_get(&want.t, b, hh, i, d);
                    if (!(fabsf(got - ref) <= 1e-6f * (1.0f + fabsf(ref))))
                        fail_msg("broadcast k/v: out[%d,%d,%d,%d] = %g, expected %g", b, hh, i, d, (double)got,
                                 (double)ref);
                }
    /* an output may not broadcast */
    reset_outputs(F);
    snapshot_all(F);
    edgeattn_tensor ob = F->out.t;
    ob.stride[0] = 0;
    EXPECT(edgeattn_attention(F->ctx, &Q, &K, &V, &ob, &p), EDGEATTN_ERR_STRIDE);
    tc_tensor_free(&k0);
    tc_tensor_free(&v0);
    tc_tensor_free(&want);
    USABLE();
}

static void test_caller_buffer(void **state)
{
    (void)state;
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_kv_len = 64;
    cfg.max_q_len = 16;
    cfg.num_threads = 2;
    edgeattn_plan_info info;
    assert_int_equal(edgeattn_plan(&cfg, &info, NULL), EDGEATTN_OK);
    const size_t n = info.host_bytes;
    unsigned char *mem = aligned_alloc(EDGEATTN_ALIGNMENT, ((n + 2 * EDGEATTN_ALIGNMENT) + 63) & ~(size_t)63);
    assert_non_null(mem);
    memset(mem, 0x5a, n + 2 * EDGEATTN_ALIGNMENT);
    edgeattn_context *ctx = (edgeattn_context *)(uintptr_t)0x1;
    edgeattn_message msg;
    struct {
        void *buf;
        size_t bytes;
        edgeattn_status want;
    } cases[] = {
        {mem, n - 1, EDGEATTN_ERR_BUFFER_TOO_SMALL},
        {mem, n / 2, EDGEATTN_ERR_BUFFER_TOO_SMALL},
        {mem, 1, EDGEATTN_ERR_BUFFER_TOO_SMALL},
        {mem, 0, EDGEATTN_ERR_BUFFER_TOO_SMALL},
        {mem + 1, n + EDGEATTN_ALIGNMENT, EDGEATTN_ERR_MISALIGNED},
        {mem + 8, n + EDGEATTN_ALIGNMENT, EDGEATTN_ERR_MISALIGNED},
        {mem + 32, n + EDGEATTN_ALIGNMENT, EDGEATTN_ERR_MISALIGNED},
        {NULL, n, EDGEATTN_ERR_INVALID_ARG}, /* no buffer but a size */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&msg, 0, sizeof msg);
        ctx = (edgeattn_context *)(uintptr_t)0x1;
        const edgeattn_status st = edgeattn_create(&cfg, cases[i].buf, cases[i].bytes, &ctx, &msg);
        if (st != cases[i].want)
            fail_msg("caller buffer case %zu: create returned %d (%s), expected %d: %s", i, (int)st, st_name(st),
                     (int)cases[i].want, msg.text);
        assert_true(msg.text[0] != '\0');
        assert_null(ctx);
        for (size_t j = 0; j < n + 2 * EDGEATTN_ALIGNMENT; j++)
            if (mem[j] != 0x5a)
                fail_msg("caller buffer case %zu: create failed but wrote byte %zu of the buffer", i, j);
    }
    /* exactly the planned size, aligned: works */
    assert_int_equal(edgeattn_create(&cfg, mem, n, &ctx, &msg), EDGEATTN_OK);
    edgeattn_destroy(ctx);
    free(mem);
}

/* A forced backend this build or machine lacks is an error (never a silent fallback to the CPU). */
static void expect_forced(const edgeattn_config *cfg, edgeattn_backend be, const char *name, int line)
{
    edgeattn_plan_info info;
    edgeattn_message msg;
    memset(&msg, 0, sizeof msg);
    const edgeattn_status st = edgeattn_plan(cfg, &info, &msg);
    if (st == EDGEATTN_OK) {
        /* present in this build and on this machine: then it must really be that backend */
        if (info.backend != be)
            fail_msg("line %d: forced %s, the plan chose backend %d", line, name, (int)info.backend);
        edgeattn_context *ctx = tc_create(cfg);
        edgeattn_backend_info bi;
        assert_int_equal(edgeattn_get_backend_info(ctx, &bi), EDGEATTN_OK);
        if (bi.backend != be || strcmp(bi.backend_name, name) != 0)
            fail_msg("line %d: forced %s, the context runs %s", line, name, bi.backend_name);
        edgeattn_destroy(ctx);
        print_message("note: backend %s is available here; its unavailability is not tested\n", name);
        return;
    }
    expect_config(cfg, EDGEATTN_ERR_BACKEND_UNAVAILABLE, name, line);
}

static void test_backend_unavailable(void **state)
{
    (void)state;
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.num_threads = 1;
    edgeattn_config c = cfg;
    c.backend = EDGEATTN_BACKEND_CUDA;
    expect_forced(&c, EDGEATTN_BACKEND_CUDA, "cuda", __LINE__);
    c.backend = EDGEATTN_BACKEND_OPENCL;
    expect_forced(&c, EDGEATTN_BACKEND_OPENCL, "opencl", __LINE__);
    /* the same through the environment */
    setenv("EDGEATTN_BACKEND", "cuda", 1);
    expect_forced(&cfg, EDGEATTN_BACKEND_CUDA, "cuda", __LINE__);
    setenv("EDGEATTN_BACKEND", "opencl", 1);
    expect_forced(&cfg, EDGEATTN_BACKEND_OPENCL, "opencl", __LINE__);
    setenv("EDGEATTN_BACKEND", "cpu", 1);
    EXPECT_CONFIG(&cfg, EDGEATTN_OK, "EDGEATTN_BACKEND=cpu");
    setenv("EDGEATTN_BACKEND", "auto", 1);
    EXPECT_CONFIG(&cfg, EDGEATTN_OK, "EDGEATTN_BACKEND=auto");
    static const char *const malformed[] = {"gpu", "CPU", "cpu ", "cuda1", "0", "cpu,cuda"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        setenv("EDGEATTN_BACKEND", malformed[i], 1);
        char what[64];
        snprintf(what, sizeof what, "EDGEATTN_BACKEND=\"%s\"", malformed[i]);
        EXPECT_CONFIG(&cfg, EDGEATTN_ERR_INVALID_ARG, what);
    }
    unsetenv("EDGEATTN_BACKEND");
    static const char *const bad_masks[] = {"abc", "-1", "0x100000000", "1x", "3 ", "0xg"};
    for (size_t i = 0; i < sizeof bad_masks / sizeof bad_masks[0]; i++) {
        setenv("EDGEATTN_CPU_MASK", bad_masks[i], 1);
        char what[64];
        snprintf(what, sizeof what, "EDGEATTN_CPU_MASK=\"%s\"", bad_masks[i]);
        EXPECT_CONFIG(&cfg, EDGEATTN_ERR_INVALID_ARG, what);
    }
    setenv("EDGEATTN_CPU_MASK", "0xffffffff", 1);
    EXPECT_CONFIG(&cfg, EDGEATTN_OK, "EDGEATTN_CPU_MASK=0xffffffff");
    unsetenv("EDGEATTN_CPU_MASK");
}

/* ---------------------------------------------------------------- the KV cache */

static void test_kv_overflow_no_window(void **state)
{
    FX;
    /* sequence 0 holds 10 of 32, sequence 1 holds 6: 10 more for seq 0 fits, 27 more for seq 1 does not */
    tc_tensor k, v;
    tc_tensor_alloc(&k, EDGEATTN_F32, B, HKV, 30, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F32, B, HKV, 30, D, TC_BHSD, 0, 0, 0);
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 31);
    tc_fill_random(&k, &r, -1, 1);
    tc_fill_random(&v, &r, -1, 1);
    const int32_t n1[B] = {10, MAX_KV - 6 + 1};
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &k.t, &v.t, n1, 0), EDGEATTN_ERR_CAPACITY);
    const int32_t n2[B] = {MAX_KV - 10 + 1, 0};
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &k.t, &v.t, n2, 0), EDGEATTN_ERR_CAPACITY);
    /* without n_new: 30 rows each overflow both */
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &k.t, &v.t, NULL, 1), EDGEATTN_ERR_CAPACITY);
    /* filling exactly to capacity works; one more token does not */
    const int32_t n3[B] = {MAX_KV - 10, MAX_KV - 6};
    assert_int_equal(edgeattn_kv_append(F->ctx, 0, NULL, &k.t, &v.t, n3, 0), EDGEATTN_OK);
    for (int b = 0; b < B; b++) {
        int64_t t;
        int32_t h;
        assert_int_equal(edgeattn_kv_length(F->ctx, 0, b, &t, &h), EDGEATTN_OK);
        assert_int_equal(t, MAX_KV);
        assert_int_equal(h, MAX_KV);
    }
    F->dec_ref_first = NAN; /* the cache changed on purpose: recompute the decode check value */
    assert_int_equal(edgeattn_decode(F->ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, &F->pd), EDGEATTN_OK);
    F->dec_ref_first = tc_get(&F->outd.t, 0, 0, 0, 0);
    reset_outputs(F);
    snapshot_all(F);
    const int32_t n4[B] = {0, 1};
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &k.t, &v.t, n4, 0), EDGEATTN_ERR_CAPACITY);
    tc_tensor_free(&k);
    tc_tensor_free(&v);
}

static void test_kv_append_invalid(void **state)
{
    FX;
    static const int32_t bad[][B] = {{-1, 0}, {0, 11}, {INT32_MIN, 1}, {1, INT32_MAX}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &F->ak.t, &F->av.t, bad[i], 0), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_append(F->ctx, 0, NULL, &F->ak.t, &F->av.t, NULL, -1), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_reset(F->ctx, B), EDGEATTN_ERR_INVALID_ARG);
    EXPECT(edgeattn_kv_reset(F->ctx, -2), EDGEATTN_ERR_INVALID_ARG);
    int64_t t = 12345;
    int32_t h = 678;
    assert_int_equal(edgeattn_kv_length(F->ctx, 0, B, &t, &h), EDGEATTN_ERR_INVALID_ARG);
    assert_int_equal(edgeattn_kv_length(F->ctx, 0, -1, &t, &h), EDGEATTN_ERR_INVALID_ARG);
    assert_int_equal(t, 12345);
    assert_int_equal(h, 678);
}

static void test_decode_nq_beyond_held(void **state)
{
    FX;
    /* sequence 1 holds 6 tokens: 7 query rows are too many */
    tc_tensor q, o;
    tc_tensor_alloc(&q, EDGEATTN_F32, B, HQ, 7, D, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&o, EDGEATTN_F32, B, HQ, 7, D, TC_BHSD, 0, 0, 0);
    tc_rng r;
    tc_rng_init(&r, 1, 2);
    tc_fill_random(&q, &r, -1, 1);
    tc_fill_canary(&o);
    void *so = tc_snapshot(&o);
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &q.t, &o.t, NULL), EDGEATTN_ERR_INVALID_ARG);
    assert_true(tc_unchanged(&o, so));
    /* only sequence 0 (10 tokens): 7 rows are fine */
    edgeattn_tensor q1 = q.t, o1 = o.t;
    q1.shape[0] = o1.shape[0] = 1;
    EXPECT(edgeattn_decode(F->ctx, 0, NULL, NULL, &q1, &o1, NULL), EDGEATTN_OK);
    /* an empty sequence: nothing held at all */
    assert_int_equal(edgeattn_kv_reset(F->ctx, 1), EDGEATTN_OK);
    F->dec_ref_first = NAN;
    snapshot_all(F);
    edgeattn_tensor q2 = F->qd.t;
    tc_fill_canary(&o);
    edgeattn_tensor o2 = o.t;
    o2.shape[2] = NQ_DEC;
    void *so2 = tc_snapshot(&o);
    const edgeattn_status st = edgeattn_decode(F->ctx, 0, NULL, NULL, &q2, &o2, NULL);
    assert_int_equal(st, EDGEATTN_ERR_INVALID_ARG);
    assert_true(edgeattn_message_of(F->ctx)[0] != '\0');
    assert_true(tc_unchanged(&o, so2));
    free(so);
    free(so2);
    tc_tensor_free(&q);
    tc_tensor_free(&o);
}

static void test_no_kv_cache(void **state)
{
    FX;
    edgeattn_config cfg = F->cfg;
    cfg.flags = 0;
    edgeattn_context *ctx = tc_create(&cfg);
    tc_fill_canary(&F->outd);
    void *so = tc_snapshot(&F->outd);
    edgeattn_status st = edgeattn_decode(ctx, 0, NULL, NULL, &F->qd.t, &F->outd.t, NULL);
    assert_int_equal(st, EDGEATTN_ERR_UNSUPPORTED);
    assert_true(edgeattn_message_of(ctx)[0] != '\0');
    assert_true(tc_unchanged(&F->outd, so));
    st = edgeattn_kv_append(ctx, 0, NULL, &F->ak.t, &F->av.t, NULL, 0);
    assert_int_equal(st, EDGEATTN_ERR_UNSUPPORTED);
    assert_true(edgeattn_message_of(ctx)[0] != '\0');
    assert_int_equal(edgeattn_kv_reset(ctx, 0), EDGEATTN_ERR_UNSUPPORTED);
    assert_true(edgeattn_message_of(ctx)[0] != '\0');
    assert_int_equal(edgeattn_kv_length(ctx, 0, 0, NULL, NULL), EDGEATTN_ERR_UNSUPPORTED);
    /* the context still runs attention */
    assert_int_equal(edgeattn_attention(ctx, &Q, &K, &V, &F->out.t, &F->p), EDGEATTN_OK);
    assert_string_equal(edgeattn_message_of(ctx), "");
    free(so);
    edgeattn_destroy(ctx);
    reset_outputs(F);
    snapshot_all(F);
}

/* ---------------------------------------------------------------- status strings */

static void test_status_strings(void **state)
{
    (void)state;
    const int last = EDGEATTN_ERR_LAYER;
    for (int i = 0; i <= last; i++) {
        const char *s = edgeattn_status_string((edgeattn_status)i);
        assert_non_null(s);
        assert_true(s[0] != '\0');
        assert_string_not_equal(s, "unknown status");
        for (int j = 0; j < i; j++)
            if (strcmp(s, edgeattn_status_string((edgeattn_status)j)) == 0)
                fail_msg("status %d and %d share the string \"%s\"", i, j, s);
    }
    static const int outside[] = {last + 1, -1, 1000, INT32_MIN};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        const char *s = edgeattn_status_string((edgeattn_status)outside[i]);
        assert_non_null(s);
        assert_string_equal(s, "unknown status");
    }
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines reach CI logs as they happen */
    tc_clear_env();
    const struct CMUnitTest tests[] = {
        T(test_null_attention),
        T(test_null_kv_and_decode),
        cmocka_unit_test(test_null_plan_create),
        T(test_zero_and_negative_sizes),
        T(test_shape_mismatch),
        T(test_gqa_ratio),
        T(test_head_dim),
        T(test_dtype),
        T(test_stride_overlap),
        T(test_stride_negative),
        T(test_stride_last_dim),
        T(test_view_outside_bytes),
        T(test_aliasing),
        T(test_kv_lens_inside_output),
        T(test_params_zero_initialised),
        T(test_message_is_each_calls_own),
        T(test_kv_call_arguments),
        T(test_broadcast_inputs),
        T(test_beyond_plan),
        T(test_overflow),
        T(test_window_invalid),
        T(test_kv_lens_invalid),
        T(test_params_invalid),
        T(test_check_finite),
        cmocka_unit_test(test_config_invalid),
        cmocka_unit_test(test_caller_buffer),
        cmocka_unit_test(test_backend_unavailable),
        T(test_kv_overflow_no_window),
        T(test_kv_append_invalid),
        T(test_decode_nq_beyond_held),
        T(test_no_kv_cache),
        cmocka_unit_test(test_status_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
