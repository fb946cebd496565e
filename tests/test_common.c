/* Shared helpers of the cmocka suites (see test_common.h). */
#include "test_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/half.h"
#include "core/reference.h"

#ifndef TC_EXPECT_SIMD
#define TC_EXPECT_SIMD 1
#endif

/* ---------------------------------------------------------------- seed and RNG */

uint64_t tc_seed(void)
{
    static bool have = false;
    static uint64_t seed;
    if (!have) {
        const char *env = getenv("EDGEATTN_TEST_SEED");
        if (env && *env) {
            seed = strtoull(env, NULL, 0);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
            seed &= 0xffffffffffffull; /* short enough to type back */
        }
        have = true;
        print_message("seed %llu (EDGEATTN_TEST_SEED=%llu repeats this run)\n", (unsigned long long)seed,
                      (unsigned long long)seed);
    }
    return seed;
}

bool tc_long(void)
{
    const char *env = getenv("EDGEATTN_TEST_LONG");
    return env && *env && strcmp(env, "0") != 0;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tc_rng_init(tc_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
    r->s = splitmix(&x);
}

uint64_t tc_next(tc_rng *r)
{
    return splitmix(&r->s);
}

double tc_uniform(tc_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(tc_next(r) >> 11) * 0x1p-53);
}

int tc_randint(tc_rng *r, int lo, int hi)
{
    return lo + (int)(tc_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---------------------------------------------------------------- dtypes and elements */

size_t tc_dtype_size(edgeattn_dtype dt)
{
    switch (dt) {
    case EDGEATTN_F32: return 4;
    case EDGEATTN_F16:
    case EDGEATTN_BF16: return 2;
    default: return 0;
    }
}

const char *tc_dtype_name(edgeattn_dtype dt)
{
    switch (dt) {
    case EDGEATTN_F32: return "f32";
    case EDGEATTN_F16: return "f16";
    case EDGEATTN_BF16: return "bf16";
    default: return "?";
    }
}

float tc_round(edgeattn_dtype dt, float x)
{
    switch (dt) {
    case EDGEATTN_F16: return ea_f16_to_f32(ea_f32_to_f16(x));
    case EDGEATTN_BF16: return ea_bf16_to_f32(ea_f32_to_bf16(x));
    default: return x;
    }
}

float tc_load(const void *base, edgeattn_dtype dt, size_t i)
{
    if (dt == EDGEATTN_F32) {
        float f;
        memcpy(&f, (const char *)base + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const char *)base + 2 * i, 2);
    return dt == EDGEATTN_F16 ? ea_f16_to_f32(h) : ea_bf16_to_f32(h);
}

void tc_store(void *base, edgeattn_dtype dt, size_t i, float x)
{
    if (dt == EDGEATTN_F32) {
        memcpy((char *)base + 4 * i, &x, 4);
        return;
    }
    uint16_t h = dt == EDGEATTN_F16 ? ea_f32_to_f16(x) : ea_f32_to_bf16(x);
    memcpy((char *)base + 2 * i, &h, 2);
}

size_t tc_off(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d)
{
    return (size_t)(b * t->stride[0] + h * t->stride[1] + n * t->stride[2] + d * t->stride[3]);
}

float tc_get(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d)
{
    return tc_load(t->data, t->dtype, tc_off(t, b, h, n, d));
}

void tc_set(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d, float x)
{
    tc_store(t->data, t->dtype, tc_off(t, b, h, n, d), x);
}

/* ---------------------------------------------------------------- tensors with padding */

static const uint32_t CANARY32 = 0x7fc5a5a5u; /* quiet NaN with a payload */
static const uint16_t CANARY16 = 0x7e5au;     /* f16 NaN */
static const uint16_t CANARYBF = 0x7fdau;     /* bf16 NaN */
static const uint32_t POISON32 = 0x7fc0beefu;
static const uint16_t POISON16 = 0x7e01u;
static const uint16_t POISONBF = 0x7fc1u;

static void put_bits(void *base, edgeattn_dtype dt, size_t i, uint32_t b32, uint16_t b16, uint16_t bbf)
{
    if (dt == EDGEATTN_F32)
        memcpy((char *)base + 4 * i, &b32, 4);
    else
        memcpy((char *)base + 2 * i, dt == EDGEATTN_F16 ? &b16 : &bbf, 2);
}

static bool is_canary(const void *base, edgeattn_dtype dt, size_t i)
{
    if (dt == EDGEATTN_F32) {
        uint32_t u;
        memcpy(&u, (const char *)base + 4 * i, 4);
        return u == CANARY32;
    }
    uint16_t h;
    memcpy(&h, (const char *)base + 2 * i, 2);
    return h == (dt == EDGEATTN_F16 ? CANARY16 : CANARYBF);
}

void tc_tensor_alloc(tc_tensor *x, edgeattn_dtype dt, int64_t b, int64_t h, int64_t n, int64_t d, int layout,
                     int row_pad, int front, int back)
{
    memset(x, 0, sizeof *x);
    int64_t s[4];
    s[3] = 1;
    if (layout == TC_BSHD) {
        s[1] = d + row_pad;
        s[2] = h * s[1];
        s[0] = n * s[2];
    } else {
        s[2] = d + row_pad;
        s[1] = n * s[2];
        s[0] = h * s[1];
    }
    const size_t body = (size_t)(b * s[0]);
    x->alloc_elems = (size_t)front + body + (size_t)back;
    const size_t es = tc_dtype_size(dt);
    x->alloc = malloc(x->alloc_elems * es + 64);
    x->in_view = calloc(x->alloc_elems, 1);
    assert_non_null(x->alloc);
    assert_non_null(x->in_view);
    x->front = (size_t)front;
    x->t.data = (char *)x->alloc + (size_t)front * es;
    x->t.bytes = (body + (size_t)back) * es;
    x->t.dtype = dt;
    x->t.memory = EDGEATTN_MEM_HOST;
    x->t.offset = 0;
    x->t.shape[0] = b;
    x->t.shape[1] = h;
    x->t.shape[2] = n;
    x->t.shape[3] = d;
    for (int i = 0; i < 4; i++)
        x->t.stride[i] = s[i];
    for (int64_t ib = 0; ib < b; ib++)
        for (int64_t ih = 0; ih < h; ih++)
            for (int64_t in = 0; in < n; in++)
                for (int64_t id = 0; id < d; id++)
                    x->in_view[x->front + tc_off(&x->t, ib, ih, in, id)] = 1;
}

void tc_tensor_free(tc_tensor *x)
{
    free(x->alloc);
    free(x->in_view);
    memset(x, 0, sizeof *x);
}

void tc_fill_canary(tc_tensor *x)
{
    for (size_t i = 0; i < x->alloc_elems; i++)
        put_bits(x->alloc, x->t.dtype, i, CANARY32, CANARY16, CANARYBF);
}

void tc_fill_random(tc_tensor *x, tc_rng *r, double lo, double hi)
{
    for (size_t i = 0; i < x->alloc_elems; i++) {
        if (x->in_view[i])
            tc_store(x->alloc, x->t.dtype, i, (float)tc_uniform(r, lo, hi));
        else
            put_bits(x->alloc, x->t.dtype, i, POISON32, POISON16, POISONBF);
    }
}

bool tc_check_written(const tc_tensor *x, const char *name, char *why, size_t whylen)
{
    const edgeattn_tensor *t = &x->t;
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t h = 0; h < t->shape[1]; h++)
            for (int64_t n = 0; n < t->shape[2]; n++)
                for (int64_t d = 0; d < t->shape[3]; d++) {
                    const size_t off = tc_off(t, b, h, n, d);
                    if (is_canary(t->data, t->dtype, off)) {
                        snprintf(why, whylen, "%s[%lld,%lld,%lld,%lld] was not written", name, (long long)b,
                                 (long long)h, (long long)n, (long long)d);
                        return false;
                    }
                    const float v = tc_load(t->data, t->dtype, off);
                    if (isnan(v) || (isinf(v) && !(t->shape[3] == 1 && v < 0))) { /* lse may be -inf */
                        snprintf(why, whylen, "%s[%lld,%lld,%lld,%lld] = %g is not finite", name, (long long)b,
                                 (long long)h, (long long)n, (long long)d, (double)v);
                        return false;
                    }
                }
    for (size_t i = 0; i < x->alloc_elems; i++)
        if (!x->in_view[i] && !is_canary(x->alloc, t->dtype, i)) {
            snprintf(why, whylen, "%s: element %lld of the buffer (outside the view, view starts at %zu) was written",
                     name, (long long)i, x->front);
            return false;
        }
    return true;
}

void *tc_snapshot(const tc_tensor *x)
{
    const size_t n = x->alloc_elems * tc_dtype_size(x->t.dtype);
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, x->alloc, n);
    return p;
}

bool tc_unchanged(const tc_tensor *x, const void *snapshot)
{
    return memcmp(x->alloc, snapshot, x->alloc_elems * tc_dtype_size(x->t.dtype)) == 0;
}

/* ---------------------------------------------------------------- attention cases */

tc_attn_case tc_case(int B, int Hq, int Hkv, int Nq, int Nkv, int D)
{
    tc_attn_case c;
    memset(&c, 0, sizeof c);
    c.B = B;
    c.Hq = Hq;
    c.Hkv = Hkv;
    c.Nq = Nq;
    c.Nkv = Nkv;
    c.D = D;
    c.qdt = c.kvdt = c.odt = EDGEATTN_F32;
    c.qlayout = c.kvlayout = c.olayout = TC_BHSD;
    c.wl = c.wr = -1;
    c.in_scale = 1.0;
    return c;
}

void tc_case_describe(const tc_attn_case *c, char *buf, size_t len)
{
    static const char *const lay[2] = {"bhsd", "bshd"};
    static const char *const bias[5] = {"none", "full", "bcast-b", "bcast-h", "bcast-bh"};
    char lens[128] = "all";
    if (c->use_kv_lens) {
        int p = snprintf(lens, sizeof lens, "[");
        for (int b = 0; b < c->B && p < (int)sizeof lens - 12; b++)
            p += snprintf(lens + p, sizeof lens - (size_t)p, "%s%d", b ? "," : "", (int)c->kv_lens[b]);
        snprintf(lens + p, sizeof lens - (size_t)p, "]");
    }
    snprintf(buf, len,
             "B=%d Hq=%d Hkv=%d Nq=%d Nkv=%d D=%d q/kv/out=%s/%s/%s layout q/kv/out=%s/%s/%s pad=%d causal=%d "
             "window=(%d,%d) kv_lens=%s bias=%s/%d scale=%g softcap=%g lse=%d in_scale=%g",
             c->B, c->Hq, c->Hkv, c->Nq, c->Nkv, c->D, tc_dtype_name(c->qdt), tc_dtype_name(c->kvdt),
             tc_dtype_name(c->odt), lay[c->qlayout & 1], lay[c->kvlayout & 1], lay[c->olayout & 1], c->pad, c->causal,
             c->wl, c->wr, lens, bias[c->bias_mode % 5], c->bias_content, (double)c->scale, (double)c->softcap,
             c->lse, c->in_scale);
}

static int precision_rank(edgeattn_dtype dt)
{
    return dt == EDGEATTN_BF16 ? 2 : dt == EDGEATTN_F16 ? 1 : 0;
}

double tc_tolerance(edgeattn_dtype a, edgeattn_dtype b, edgeattn_dtype c)
{
    int r = precision_rank(a);
    if (precision_rank(b) > r)
        r = precision_rank(b);
    if (precision_rank(c) > r)
        r = precision_rank(c);
    return r == 2 ? 1e-2 : r == 1 ? 2e-3 : 1e-5;
}

void tc_attn_prepare(tc_attn_data *d, const tc_attn_case *c, uint64_t seed, uint64_t stream)
{
    memset(d, 0, sizeof *d);
    d->c = *c;
    assert_true(c->B <= TC_MAX_B);
    tc_rng r;
    tc_rng_init(&r, seed, stream);
    const int pad = c->pad;
    const double s = c->in_scale > 0 ? c->in_scale : 1.0;
    tc_tensor_alloc(&d->q, c->qdt, c->B, c->Hq, c->Nq, c->D, c->qlayout, pad, pad, pad);
    tc_tensor_alloc(&d->k, c->kvdt, c->B, c->Hkv, c->Nkv, c->D, c->kvlayout, pad, pad, pad);
    tc_tensor_alloc(&d->v, c->kvdt, c->B, c->Hkv, c->Nkv, c->D, c->kvlayout, pad + (pad ? 1 : 0), pad, pad);
    tc_tensor_alloc(&d->out, c->odt, c->B, c->Hq, c->Nq, c->D, c->olayout, pad, pad, pad);
    tc_fill_random(&d->q, &r, -s, s);
    tc_fill_random(&d->k, &r, -s, s);
    tc_fill_random(&d->v, &r, -s, s);
    tc_fill_canary(&d->out);
    edgeattn_params_default(&d->params);
    d->params.causal = c->causal;
    d->params.window_left = c->wl;
    d->params.window_right = c->wr;
    d->params.scale = c->scale;
    d->params.softcap = c->softcap;
    if (c->use_kv_lens)
        d->params.kv_lens = d->c.kv_lens;
    if (c->bias_mode != TC_BIAS_NONE) {
        const int bb = (c->bias_mode == TC_BIAS_BCAST_B || c->bias_mode == TC_BIAS_BCAST_BH) ? 1 : c->B;
        const int bh = (c->bias_mode == TC_BIAS_BCAST_H || c->bias_mode == TC_BIAS_BCAST_BH) ? 1 : c->Hq;
        tc_tensor_alloc(&d->bias, EDGEATTN_F32, bb, bh, c->Nq, c->Nkv, TC_BHSD, pad, pad, pad);
        tc_fill_random(&d->bias, &r, -2.0, 2.0);
        const edgeattn_tensor *t = &d->bias.t;
        for (int b = 0; b < bb; b++)
            for (int h = 0; h < bh; h++)
                for (int i = 0; i < c->Nq; i++) {
                    const int roll = tc_randint(&r, 0, 3);
                    for (int j = 0; j < c->Nkv; j++) {
                        if (c->bias_content == TC_BIAS_NEGINF_ROWS && roll == 0)
                            tc_set(t, b, h, i, j, -INFINITY);
                        else if (c->bias_content == TC_BIAS_NEGINF_SOME && tc_randint(&r, 0, 2) == 0)
                            tc_set(t, b, h, i, j, -INFINITY);
                        else if (c->bias_content == TC_BIAS_HUGE_NEG_ROWS && roll == 0)
                            tc_set(t, b, h, i, j, -1e30f);
                    }
                }
        d->bias_t = d->bias.t;
        d->params.bias = &d->bias_t;
    }
    if (c->lse) {
        tc_tensor_alloc(&d->lse, EDGEATTN_F32, c->B, c->Hq, c->Nq, 1, TC_BHSD, pad ? 1 : 0, pad, pad);
        tc_fill_canary(&d->lse);
        d->lse_t = d->lse.t;
    }
    const size_t rows = (size_t)c->B * (size_t)c->Hq * (size_t)c->Nq;
    d->ref = malloc(sizeof(double) * rows * (size_t)c->D);
    d->ref_lse = malloc(sizeof(double) * rows);
    assert_non_null(d->ref);
    assert_non_null(d->ref_lse);
    assert_int_equal(ea_ref_attention(&d->q.t, &d->k.t, &d->v.t, &d->params, d->ref, d->ref_lse), EDGEATTN_OK);
    d->ref_max = 0.0;
    for (size_t i = 0; i < rows * (size_t)c->D; i++)
        d->ref_max = fmax(d->ref_max, fabs(d->ref[i]));
}

void tc_attn_free(tc_attn_data *d)
{
    tc_tensor_free(&d->q);
    tc_tensor_free(&d->k);
    tc_tensor_free(&d->v);
    tc_tensor_free(&d->out);
    if (d->bias.alloc)
        tc_tensor_free(&d->bias);
    if (d->lse.alloc)
        tc_tensor_free(&d->lse);
    free(d->ref);
    free(d->ref_lse);
    memset(d, 0, sizeof *d);
}

double tc_max_score(const edgeattn_tensor *q, const edgeattn_tensor *k, double scale)
{
    const int64_t B = q->shape[0], Hq = q->shape[1], Nq = q->shape[2], D = q->shape[3];
    const int64_t Hkv = k->shape[1], Nkv = k->shape[2], group = Hq / Hkv;
    if (scale <= 0.0)
        scale = 1.0 / sqrt((double)D);
    double mx = 0.0;
    double *qr = malloc(sizeof(double) * (size_t)D);
    assert_non_null(qr);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < Nq; i++) {
                for (int64_t d = 0; d < D; d++)
                    qr[d] = tc_get(q, b, h, i, d);
                for (int64_t j = 0; j < Nkv; j++) {
                    double s = 0.0;
                    for (int64_t d = 0; d < D; d++)
                        s += qr[d] * tc_get(k, b, h / group, j, d);
                    mx = fmax(mx, fabs(s * scale));
                }
            }
    free(qr);
    return mx;
}

double tc_tolerance_f32_scores(double smax)
{
    return fmax(1e-5, 4.0 * 0x1p-24 * smax);
}

void tc_compare(tc_result *res, const tc_tensor *out, const tc_tensor *lse, const double *ref,
                const double *ref_lse, int64_t B, int64_t H, int64_t N, int64_t D, double tol)
{
    double ref_max = 0.0;
    for (size_t i = 0; i < (size_t)(B * H * N * D); i++)
        ref_max = fmax(ref_max, fabs(ref[i]));
    const double norm = ref_max > 0.0 ? ref_max : 1.0;
    res->err = 0.0;
    res->lse_err = 0.0;
    res->ok = true;
    res->why[0] = '\0';
    if (!tc_check_written(out, "out", res->why, sizeof res->why) ||
        (lse && !tc_check_written(lse, "lse", res->why, sizeof res->why))) {
        res->ok = false;
        return;
    }
    int64_t worst[4] = {0, 0, 0, 0};
    double worst_got = 0, worst_want = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t n = 0; n < N; n++) {
                const size_t row = (size_t)((b * H + h) * N + n);
                const bool masked = ref_lse[row] == -INFINITY;
                for (int64_t d = 0; d < D; d++) {
                    const double got = tc_get(&out->t, b, h, n, d), want = ref[row * (size_t)D + (size_t)d];
                    if (masked && got != 0.0) {
                        snprintf(res->why, sizeof res->why,
                                 "out[%lld,%lld,%lld,%lld] = %g but the row is fully masked (must be exactly 0)",
                                 (long long)b, (long long)h, (long long)n, (long long)d, got);
                        res->ok = false;
                        return;
                    }
                    const double e = fabs(got - want) / norm;
                    if (e > res->err) {
                        res->err = e;
                        worst[0] = b, worst[1] = h, worst[2] = n, worst[3] = d;
                        worst_got = got, worst_want = want;
                    }
                }
                if (lse) {
                    const double got = tc_get(&lse->t, b, h, n, 0), want = ref_lse[row];
                    if (masked) {
                        if (!(isinf(got) && got < 0)) {
                            snprintf(res->why, sizeof res->why,
                                     "lse[%lld,%lld,%lld] = %g but the row is fully masked (must be -inf)",
                                     (long long)b, (long long)h, (long long)n, got);
                            res->ok = false;
                            return;
                        }
                    } else {
                        const double e = fabs(got - want) / fmax(1.0, fabs(want));
                        if (!(e <= res->lse_err))
                            res->lse_err = isnan(e) ? INFINITY : e;
                        if (!(e <= tol)) {
                            snprintf(res->why, sizeof res->why, "lse[%lld,%lld,%lld] = %.9g, reference %.9g (err %.3g > %.3g)",
                                     (long long)b, (long long)h, (long long)n, got, want, e, tol);
                            res->ok = false;
                            return;
                        }
                    }
                }
            }
    if (!(res->err <= tol)) {
        snprintf(res->why, sizeof res->why,
                 "max|out-ref|/max|ref| = %.3g > %.3g (worst at [%lld,%lld,%lld,%lld]: %.9g vs %.9g, max|ref| %.3g)",
                 res->err, tol, (long long)worst[0], (long long)worst[1], (long long)worst[2], (long long)worst[3],
                 worst_got, worst_want, ref_max);
        res->ok = false;
    }
}

void tc_decode_compare(tc_result *res, edgeattn_context *ctx, const edgeattn_tensor *q, tc_tensor *out, tc_tensor *lse,
                       edgeattn_params *p, const double *ref, const double *ref_lse, int64_t B, int64_t H, int64_t N,
                       int64_t D, double tol)
{
    memset(res, 0, sizeof *res);
    tc_fill_canary(out);
    edgeattn_tensor lt;
    edgeattn_tensor *keep = p->lse;
    if (lse) {
        tc_fill_canary(lse);
        lt = lse->t;
        p->lse = &lt;
    } else {
        p->lse = NULL;
    }
    const edgeattn_status st = edgeattn_decode(ctx, 0, NULL, NULL, q, &out->t, p);
    p->lse = keep;
    res->status = st;
    if (st != EDGEATTN_OK)
        snprintf(res->why, sizeof res->why, "edgeattn_decode returned %d (%s): %s", (int)st, edgeattn_status_string(st),
                 edgeattn_message_of(ctx));
    else
        tc_compare(res, out, lse, ref, ref_lse, B, H, N, D, tol);
}

tc_result tc_attn_run(edgeattn_context *ctx, tc_attn_data *d, double tol)
{
    tc_result res;
    memset(&res, 0, sizeof res);
    tc_fill_canary(&d->out);
    if (d->c.lse) {
        tc_fill_canary(&d->lse);
        d->lse_t = d->lse.t;
        d->params.lse = &d->lse_t;
    } else {
        d->params.lse = NULL;
    }
    if (d->c.bias_mode != TC_BIAS_NONE)
        d->bias_t = d->bias.t;
    res.status = edgeattn_attention(ctx, &d->q.t, &d->k.t, &d->v.t, &d->out.t, &d->params);
    if (res.status != EDGEATTN_OK) {
        snprintf(res.why, sizeof res.why, "edgeattn_attention returned %d (%s): %s", (int)res.status,
                 edgeattn_status_string(res.status), edgeattn_message_of(ctx));
        res.ok = false;
        return res;
    }
    const tc_attn_case *c = &d->c;
    tc_compare(&res, &d->out, c->lse ? &d->lse : NULL, d->ref, d->ref_lse, c->B, c->Hq, c->Nq, c->D, tol);
    return res;
}

/* ---------------------------------------------------------------- tiers and contexts */

static void add_tier(tc_tier *tiers, int max, int *n, const char *name, uint32_t disable)
{
    if (*n >= max)
        return;
    snprintf(tiers[*n].name, sizeof tiers[*n].name, "%s", name);
    tiers[*n].disable = disable;
    tiers[*n].backend = EDGEATTN_BACKEND_CPU;
    (*n)++;
}

int tc_cpu_tiers(tc_tier *tiers, int max)
{
    const uint32_t f = edgeattn_cpu_features();
    int n = 0;
    add_tier(tiers, max, &n, "scalar", f);
#if TC_EXPECT_SIMD && (defined(__x86_64__) || defined(__i386__))
    if (f & EDGEATTN_CPU_AVX2)
        add_tier(tiers, max, &n, "avx2", f & ~(uint32_t)EDGEATTN_CPU_AVX2);
    if ((f & EDGEATTN_CPU_AVX2) && (f & EDGEATTN_CPU_AVX512))
        add_tier(tiers, max, &n, "avx512", 0);
#elif TC_EXPECT_SIMD && defined(__aarch64__)
    if (f & EDGEATTN_CPU_NEON)
        add_tier(tiers, max, &n, "neon", f & ~(uint32_t)EDGEATTN_CPU_NEON);
    if ((f & EDGEATTN_CPU_NEON) && (f & EDGEATTN_CPU_NEON_FP16))
        add_tier(tiers, max, &n, "neon-fp16", 0);
#endif
    return n;
}

edgeattn_context *tc_create(const edgeattn_config *cfg)
{
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    memset(&msg, 0, sizeof msg);
    edgeattn_config c = *cfg;
    /* EDGEATTN_TEST_BACKEND=cpu|cuda|opencl: configs that say AUTO run on that backend (the suites
     * clear EDGEATTN_BACKEND, and AUTO prefers CUDA where both GPU backends are built) */
    const char *tb = getenv("EDGEATTN_TEST_BACKEND");
    if (tb && c.backend == EDGEATTN_BACKEND_AUTO) {
        if (!strcmp(tb, "cpu"))
            c.backend = EDGEATTN_BACKEND_CPU;
        else if (!strcmp(tb, "cuda"))
            c.backend = EDGEATTN_BACKEND_CUDA;
        else if (!strcmp(tb, "opencl"))
            c.backend = EDGEATTN_BACKEND_OPENCL;
    }
    const edgeattn_status st = edgeattn_create(&c, NULL, 0, &ctx, &msg);
    if (st != EDGEATTN_OK || !ctx)
        fail_msg("edgeattn_create: status %d (%s): %s", (int)st, edgeattn_status_string(st), msg.text);
    return ctx;
}

bool tc_tier_matches(edgeattn_context *ctx, const tc_tier *tier, char *why, size_t whylen)
{
    edgeattn_backend_info info;
    if (edgeattn_get_backend_info(ctx, &info) != EDGEATTN_OK) {
        snprintf(why, whylen, "edgeattn_get_backend_info failed");
        return false;
    }
    if (tier->backend == EDGEATTN_BACKEND_CPU) {
        if (strcmp(info.tier, tier->name) != 0) {
            snprintf(why, whylen, "cpu_disable_mask 0x%x: expected tier \"%s\", the context runs \"%s\"",
                     (unsigned)tier->disable, tier->name, info.tier);
            return false;
        }
        if (info.cpu_features_used != (edgeattn_cpu_features() & ~tier->disable)) {
            snprintf(why, whylen, "cpu_disable_mask 0x%x: cpu_features_used 0x%x, expected 0x%x",
                     (unsigned)tier->disable, (unsigned)info.cpu_features_used,
                     (unsigned)(edgeattn_cpu_features() & ~tier->disable));
            return false;
        }
    } else if (strcmp(info.backend_name, tier->name) != 0) {
        snprintf(why, whylen, "forced backend %d: expected \"%s\", the context runs \"%s\"", (int)tier->backend,
                 tier->name, info.backend_name);
        return false;
    }
    return true;
}

edgeattn_context *tc_create_tier(const edgeattn_config *cfg, const tc_tier *tier)
{
    edgeattn_config c = *cfg;
    c.cpu_disable_mask = tier->disable;
    c.backend = tier->backend;
    edgeattn_context *ctx = tc_create(&c);
    char why[256];
    if (!tc_tier_matches(ctx, tier, why, sizeof why)) {
        edgeattn_destroy(ctx);
        fail_msg("%s", why);
    }
    return ctx;
}

static void clear_one(const char *name)
{
    const char *val = getenv(name);
    if (val) {
        print_message("note: ignoring %s=%s (this suite sets it itself)\n", name, val);
        unsetenv(name);
    }
}

void tc_clear_env(void)
{
    clear_one("EDGEATTN_BACKEND");
    clear_one("EDGEATTN_CPU_MASK");
    clear_one("EDGEATTN_CPU_TILES");
}
