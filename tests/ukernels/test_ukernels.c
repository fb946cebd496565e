/*
 * checkasm-style tests of the CPU micro-kernels (cpu_simd/ukernel.h): every entry of every SIMD tier
 * this machine can run is compared with the scalar tier on fresh random inputs, at sizes below, at,
 * above and between the tiles, with every output buffer pre-filled with a canary: elements a kernel
 * must write are compared (bit-exact for the packers, with a relative tolerance for the products
 * and the softmax), every other element (rows beyond mr, columns beyond nb/n/dim, leading-dimension
 * padding, statistics beyond mr) must still hold the canary. Unpacked K/V rows are allocated to the
 * exact byte with odd offsets and strides, so a sanitizer build catches any read outside the
 * contract's [0, n) x [0, dim).
 *
 * Each tier is run twice: its table from ea_cpu_kernels_init at head dims that are multiples of 16,
 * and its table from ea_cpu_kernels_init_dim8 (name "<tier>/dim8") at every multiple of 8, with
 * leading dimensions of q, o and v32 that are then odd multiples of 8 too, as the driver passes them.
 *
 * The file is two tables (tiers, tests) and their runners. `test_ukernels --bench [filter]` times each
 * kernel of each tier at the shapes the driver uses instead of testing.
 * EDGEATTN_TEST_SEED=<seed> repeats a run; EDGEATTN_TEST_LONG=1 sweeps every size combination.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/half.h"
#include "cpu_simd/ukernel.h"
#include "edgeattn/edgeattn.h"

/* ---------------------------------------------------------------- table 1: tiers */

static const struct tier_def {
    const char *name;  /* ea_cpu_kernels.tier after the init ladder */
    uint32_t needs;    /* EDGEATTN_CPU_* bits the ladder needs to reach this tier */
} tier_defs[] = {
    {"avx2", EDGEATTN_CPU_AVX2},
    {"avx512", EDGEATTN_CPU_AVX2 | EDGEATTN_CPU_AVX512},
    {"neon", EDGEATTN_CPU_NEON},
    {"neon-fp16", EDGEATTN_CPU_NEON | EDGEATTN_CPU_NEON_FP16},
};
#define NTIER_DEFS ((int)(sizeof tier_defs / sizeof tier_defs[0]))

/* ---------------------------------------------------------------- seed, RNG, buffers */

static uint64_t g_seed;
static bool g_long;

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_uniform(rng *r, double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next(r) >> 11) * 0x1.0p-53;
}
static int rng_int(rng *r, int lo, int hi) /* inclusive */
{
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}
static void rng_init(rng *r, uint64_t stream)
{
    r->s = g_seed ^ (stream * 0xD1B54A32D192ED03ull);
    rng_next(r);
}

#define CANARY_BITS 0x7FDEADBFu /* a quiet-NaN payload no kernel produces */

static float canary(void)
{
    const uint32_t b = CANARY_BITS;
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static bool is_canary(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b == CANARY_BITS;
}
static uint32_t bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* Packed f32 buffer: 64-byte aligned, `rows` x `ld` floats, filled with the canary. */
static float *packed_alloc(int rows, ptrdiff_t ld)
{
    const size_t bytes = (size_t)rows * (size_t)ld * sizeof(float);
    float *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    assert_non_null(p);
    for (size_t i = 0; i < bytes / sizeof(float); i++)
        p[i] = canary();
    return p;
}

/* Q8 / Q4 rows (core/ea_core.h's layout) are bytes: their "elements" below are bytes, a row
 * row_len(dt, dim) of them. */
static bool dt_quant(edgeattn_dtype dt) { return dt == EDGEATTN_Q8 || dt == EDGEATTN_Q4; }
static size_t dt_size(edgeattn_dtype dt) { return dt == EDGEATTN_F32 ? 4 : dt_quant(dt) ? 1 : 2; }
static ptrdiff_t row_len(edgeattn_dtype dt, int dim)
{
    return dt == EDGEATTN_Q8 ? dim + 4 : dt == EDGEATTN_Q4 ? dim / 2 + 4 : dim;
}
static const char *dt_name(edgeattn_dtype dt)
{
    static const char *const names[] = {"f32", "f16", "bf16", "q8", "q4"};
    return names[dt];
}
/* Value (normalised, for Q8 / Q4) of element d of row j of rows ld units apart. */
static float row_load(const void *base, edgeattn_dtype dt, ptrdiff_t ld, int j, int d, int dim);
static float dt_load(const void *p, edgeattn_dtype dt, size_t i)
{
    if (dt == EDGEATTN_F32)
        return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return dt == EDGEATTN_F16 ? ea_f16_to_f32(h) : ea_bf16_to_f32(h);
}
static void dt_store(void *p, edgeattn_dtype dt, size_t i, float x)
{
    if (dt == EDGEATTN_F32)
        ((float *)p)[i] = x;
    else if (dt == EDGEATTN_F16)
        ((uint16_t *)p)[i] = ea_f32_to_f16(x);
    else
        ((uint16_t *)p)[i] = ea_f32_to_bf16(x);
}

/* Unpacked rows in dtype dt: `rows` rows of `dim` elements, `ld` apart, starting `front` elements
 * into an allocation that ends exactly after the last element (sanitizers flag any over-read). The
 * gaps hold random values that would poison a result if read. */
typedef struct rows_buf {
    void *alloc;
    void *base; /* element 0 of row 0 */
} rows_buf;

static float row_load(const void *base, edgeattn_dtype dt, ptrdiff_t ld, int j, int d, int dim)
{
    if (!dt_quant(dt))
        return dt_load(base, dt, (size_t)j * (size_t)ld + (size_t)d);
    const uint8_t *row = (const uint8_t *)base + (size_t)j * (size_t)ld;
    const int data = dt == EDGEATTN_Q8 ? dim : dim / 2;
    float s;
    memcpy(&s, row + data, sizeof s);
    if (dt == EDGEATTN_Q8)
        return s * (float)(int8_t)row[d];
    const uint8_t b = row[(d / 32) * 16 + (d & 15)];
    return s * ((float)((d & 16) ? b >> 4 : b & 15) - 7.5f);
}

static rows_buf rows_alloc(rng *r, edgeattn_dtype dt, int rows, int dim, ptrdiff_t ld, int front, double lo,
                           double hi, bool raw_bits)
{
    const size_t es = dt_size(dt), nel = (size_t)front + (size_t)(rows - 1) * (size_t)ld + (size_t)row_len(dt, dim);
    rows_buf b;
    b.alloc = malloc(nel * es);
    assert_non_null(b.alloc);
    b.base = (char *)b.alloc + (size_t)front * es;
    if (dt_quant(dt)) { /* random levels (Q8: -128 too, never written but read as it is) and scales */
        uint8_t *u = b.alloc;
        for (size_t i = 0; i < nel; i++)
            u[i] = (uint8_t)rng_next(r); /* the gaps: random bytes */
        const int data = dt == EDGEATTN_Q8 ? dim : dim / 2;
        for (int j = 0; j < rows; j++) {
            uint8_t *row = (uint8_t *)b.base + (size_t)j * (size_t)ld;
            const double mag = raw_bits ? ldexp(1.0, rng_int(r, -60, 60)) : 1.0; /* tiny to large rows */
            const float s = (float)(rng_uniform(r, lo < 0 ? 0.0 : lo, hi) * mag) / (dt == EDGEATTN_Q8 ? 127.0f : 7.5f);
            memcpy(row + data, &s, sizeof s);
        }
        return b;
    }
    for (size_t i = 0; i < nel; i++)
        dt_store(b.alloc, dt, i, 1.0e30f); /* poison in the gaps */
    for (int j = 0; j < rows; j++)
        for (int d = 0; d < dim; d++) {
            const size_t i = (size_t)j * (size_t)ld + (size_t)d;
            if (raw_bits && dt != EDGEATTN_F32) {
                /* any finite 16-bit pattern, denormals included (exponent field not all ones) */
                uint16_t h;
                do
                    h = (uint16_t)rng_next(r);
                while (dt == EDGEATTN_F16 ? (h & 0x7C00u) == 0x7C00u : (h & 0x7F80u) == 0x7F80u);
                ((uint16_t *)b.base)[i] = h;
            } else {
                dt_store(b.base, dt, i, (float)rng_uniform(r, lo, hi));
            }
        }
    return b;
}

/* ---------------------------------------------------------------- failure reports */

typedef struct ctx {
    const char *tier;
    const char *kernel;
    bool dim8;      /* a dim8 table: head dims every multiple of 8 */
    char what[160]; /* the case: sizes, strides, dtype */
    int failed;
} ctx;

#define MAX_REPORTS 8

static void report(ctx *c, const char *fmt, ...)
{
    if (c->failed++ >= MAX_REPORTS)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error("[%s %s] %s: %s (EDGEATTN_TEST_SEED=%llu)\n", c->tier, c->kernel, c->what, msg,
                (unsigned long long)g_seed);
}

/* Region [0, rows) x [0, cols) of a rows_alloc x ld buffer must be written (and close to ref within
 * tol[r*ld + c] when tol != NULL, else bit-exact); everything else must still hold the canary. */
static void check_region(ctx *c, const char *name, const float *got, const float *ref, const double *tol,
                         int rows_all, ptrdiff_t ld, int rows, int cols)
{
    for (int i = 0; i < rows_all; i++)
        for (ptrdiff_t j = 0; j < ld; j++) {
            const ptrdiff_t x = i * ld + j;
            const bool inside = i < rows && j < cols;
            if (!inside) {
                if (!is_canary(got[x]))
                    report(c, "%s[%d][%td] outside the output was written (%g)", name, i, j, (double)got[x]);
                continue;
            }
            if (is_canary(got[x])) {
                report(c, "%s[%d][%td] not written", name, i, j);
                continue;
            }
            if (!tol) {
                if (bits(got[x]) != bits(ref[x]))
                    report(c, "%s[%d][%td] = %.9g, scalar %.9g (must be identical)", name, i, j, (double)got[x],
                           (double)ref[x]);
            } else if (!(fabs((double)got[x] - (double)ref[x]) <= tol[x])) {
                report(c, "%s[%d][%td] = %.9g, scalar %.9g, |diff| %.3g > tol %.3g", name, i, j, (double)got[x],
                       (double)ref[x], fabs((double)got[x] - (double)ref[x]), tol[x]);
            }
        }
}

/* Tolerance of an FP32 sum of `terms` products whose absolute values add up to abs_sum: both sides
 * round each step, in different orders; random data keeps the error near sqrt(terms) * eps. */
static double sum_tol(double abs_sum, int terms)
{
    return 8.0 * sqrt((double)terms + 1.0) * 0x1.0p-24 * abs_sum + 1e-30;
}

/* ---------------------------------------------------------------- case lists */

static const int nb_list[] = {16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 240, 256, 272, 384, 496, 512};
static const int n_list[] = {1,  2,  3,  5,   7,   8,   9,   15,  16,  17,  31,  32,  33, 47,
                             63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 383, 500, 511, 512};
#define NNB ((int)(sizeof nb_list / sizeof nb_list[0]))
#define NN ((int)(sizeof n_list / sizeof n_list[0]))

/* The (mr, dim, size) cases of a kernel: every mr x dim pair with a size taken in turn from the list,
 * plus every size for a few common shapes; EDGEATTN_TEST_LONG=1 runs the full cross product. */
typedef void (*case_fn)(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref, rng *r, int mr, int dim,
                        int size, edgeattn_dtype dt);

static void sweep(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref, case_fn fn, const int *sizes,
                  int nsizes, bool per_dtype, uint64_t stream)
{
    rng r;
    rng_init(&r, stream);
    const int ndt = per_dtype ? EDGEATTN_DTYPE_COUNT_ : 1;
    int turn = 0;
    for (int dt = 0; dt < ndt; dt++) {
        const int step = c->dim8 ? 8 : 16;
        for (int mr = 1; mr <= EA_MR; mr++)
            for (int dim = step; dim <= 256; dim += step) {
                if (g_long) {
                    for (int i = 0; i < nsizes && !c->failed; i++)
                        fn(c, t, ref, &r, mr, dim, sizes[i], (edgeattn_dtype)dt);
                } else {
                    fn(c, t, ref, &r, mr, dim, sizes[turn++ % nsizes], (edgeattn_dtype)dt);
                }
                if (c->failed)
                    return;
            }
        static const int shapes[][2] = {{1, 64}, {4, 128}, {8, 64}, {8, 128}, {3, 80}, {8, 256}};
        static const int shapes8[][2] = {{1, 8}, {4, 24}, {8, 40}, {2, 120}, {8, 248}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int i = 0; i < nsizes && !c->failed; i++)
                fn(c, t, ref, &r, shapes[s][0], shapes[s][1], sizes[i], (edgeattn_dtype)dt);
        for (size_t s = 0; c->dim8 && s < sizeof shapes8 / sizeof shapes8[0]; s++)
            for (int i = 0; i < nsizes && !c->failed; i++)
                fn(c, t, ref, &r, shapes8[s][0], shapes8[s][1], sizes[i], (edgeattn_dtype)dt);
    }
}

static ptrdiff_t pad16(rng *r, int n) { return n + 16 * rng_int(r, 0, 2); }

/* ---------------------------------------------------------------- qk / pv (packed) */

static void case_qk(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref, rng *r, int mr, int dim, int nb,
                    edgeattn_dtype dt)
{
    (void)dt;
    const ptrdiff_t ldq = pad16(r, dim), ldkt = pad16(r, nb), lds = pad16(r, nb);
    snprintf(c->what, sizeof c->what, "mr=%d nb=%d dim=%d ldq=%td ldkt=%td lds=%td", mr, nb, dim, ldq, ldkt, lds);
    const double scale = rng_int(r, 0, 3) == 0 ? 100.0 : 1.0;
    float *q = packed_alloc(mr, ldq), *kt = packed_alloc(dim, ldkt);
    for (int i = 0; i < mr; i++)
        for (int d = 0; d < dim; d++)
            q[i * ldq + d] = (float)rng_uniform(r, -scale, scale);
    for (int d = 0; d < dim; d++)
        for (int j = 0; j < nb; j++)
            kt[d * ldkt + j] = (float)rng_uniform(r, -1.0, 1.0);
    const int rows_all = mr + 1;
    float *s = packed_alloc(rows_all, lds), *s_ref = packed_alloc(rows_all, lds);
    double *tol = calloc((size_t)rows_all * (size_t)lds, sizeof(double));
    t->qk(mr, nb, dim, q, ldq, kt, ldkt, s, lds);
    ref->qk(mr, nb, dim, q, ldq, kt, ldkt, s_ref, lds);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nb; j++) {
            double a = 0.0;
            for (int d = 0; d < dim; d++)
                a += fabs((double)q[i * ldq + d] * (double)kt[d * ldkt + j]);
            tol[i * lds + j] = sum_tol(a, dim);
        }
    check_region(c, "s", s, s_ref, tol, rows_all, lds, mr, nb);
    free(q), free(kt), free(s), free(s_ref), free(tol);
}

static void case_pv(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref, rng *r, int mr, int dim, int nb,
                    edgeattn_dtype dt)
{
    (void)dt;
    const ptrdiff_t ldp = pad16(r, nb), ldv = pad16(r, dim), ldo = pad16(r, dim);
    snprintf(c->what, sizeof c->what, "mr=%d nb=%d dim=%d ldp=%td ldv=%td ldo=%td", mr, nb, dim, ldp, ldv, ldo);
    float *p = packed_alloc(mr, ldp), *v = packed_alloc(nb, ldv);
    const int rows_all = mr + 1;
    float *o = packed_alloc(rows_all, ldo), *o_ref = packed_alloc(rows_all, ldo);
    float alpha[EA_MR];
    for (int i = 0; i < mr; i++) {
        const int kind = rng_int(r, 0, 3); /* alpha 0, 1, or in between */
        alpha[i] = kind == 0 ? 0.0f : kind == 1 ? 1.0f : (float)rng_uniform(r, 0.0, 1.0);
        for (int j = 0; j < nb; j++)
            p[i * ldp + j] = (float)rng_uniform(r, 0.0, 1.0);
        for (int d = 0; d < dim; d++)
            o[i * ldo + d] = o_ref[i * ldo + d] = (float)rng_uniform(r, -10.0, 10.0);
    }
    for (int j = 0; j < nb; j++)
        for (int d = 0; d < dim; d++)
            v[j * ldv + d] = (float)rng_uniform(r, -1.0, 1.0);
    double *tol = calloc((size_t)rows_all * (size_t)ldo, sizeof(double));
    for (int i = 0; i < mr; i++)
        for (int d = 0; d < dim; d++) {
            double a = fabs((double)alpha[i] * (double)o[i * ldo + d]);
            for (int j = 0; j < nb; j++)
                a += fabs((double)p[i * ldp + j] * (double)v[j * ldv + d]);
            tol[i * ldo + d] = sum_tol(a, nb + 1);
        }
    t->pv(mr, nb, dim, p, ldp, v, ldv, alpha, o, ldo);
    ref->pv(mr, nb, dim, p, ldp, v, ldv, alpha, o_ref, ldo);
    check_region(c, "o", o, o_ref, tol, rows_all, ldo, mr, dim);
    free(p), free(v), free(o), free(o_ref), free(tol);
}

/* ---------------------------------------------------------------- softmax */

/* Row kinds: ordinary scores with some -inf, large magnitudes, all -inf, a single live entry. */
static void case_softmax(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref, rng *r, int mr, int dim,
                         int nb, edgeattn_dtype dt)
{
    (void)dt;
    (void)dim;
    const ptrdiff_t lds = pad16(r, nb);
    const int rows_all = mr + 1;
    float *s = packed_alloc(rows_all, lds), *s_ref = packed_alloc(rows_all, lds), *s_in = packed_alloc(rows_all, lds);
    float m[EA_MR + 1], l[EA_MR + 1], al[EA_MR + 1], m_ref[EA_MR + 1], l_ref[EA_MR + 1], al_ref[EA_MR + 1];
    char kinds[EA_MR + 1];
    for (int i = 0; i <= EA_MR; i++)
        m[i] = l[i] = al[i] = m_ref[i] = l_ref[i] = al_ref[i] = canary();
    for (int i = 0; i < mr; i++) {
        const int kind = rng_int(r, 0, 5);
        kinds[i] = "nLiIsb"[kind];
        const double mag = kind == 1 ? 1.0e4 : kind == 5 ? 90.0 : 10.0;
        const double pinf = kind == 0 ? 0.2 : kind == 4 ? 1.0 : 0.05;
        for (int j = 0; j < nb; j++) {
            float x = (float)rng_uniform(r, -mag, mag);
            if (kind == 2 || rng_uniform(r, 0.0, 1.0) < pinf)
                x = -INFINITY;
            s_in[i * lds + j] = x;
        }
        if (kind == 4) /* one live score */
            s_in[i * lds + rng_int(r, 0, nb - 1)] = (float)rng_uniform(r, -mag, mag);
        /* running statistics: fresh (-inf, 0), below, or above this tile's max */
        const int st = kind == 3 ? 0 : rng_int(r, 0, 2);
        if (st == 0) {
            m[i] = -INFINITY;
            l[i] = 0.0f;
        } else {
            m[i] = (float)rng_uniform(r, st == 1 ? -2.0 * mag : mag, st == 1 ? 0.0 : 2.0 * mag);
            l[i] = (float)rng_uniform(r, 0.5, 100.0);
        }
        m_ref[i] = m[i];
        l_ref[i] = l[i];
    }
    kinds[mr] = 0;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nb; j++)
            s[i * lds + j] = s_ref[i * lds + j] = s_in[i * lds + j];
    snprintf(c->what, sizeof c->what, "mr=%d nb=%d lds=%td rows=%s (n ordinary, L large, i all -inf, I fresh, s one "
             "live, b near the flush limit)", mr, nb, lds, kinds);
    t->softmax(mr, nb, s, lds, m, l, al);
    ref->softmax(mr, nb, s_ref, lds, m_ref, l_ref, al_ref);
    double *tol = calloc((size_t)rows_all * (size_t)lds, sizeof(double));
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nb; j++) {
            const float x = s[i * lds + j];
            tol[i * lds + j] = 8.0 * 0x1.0p-24 * fabs((double)s_ref[i * lds + j]) + 0x1.0p-126;
            if (s_in[i * lds + j] == -INFINITY && x != 0.0f && !is_canary(x))
                report(c, "p[%d][%d] = %g for a -inf score (must be exactly 0)", i, j, (double)x);
            if (x < 0.0f || x > 1.0f)
                report(c, "p[%d][%d] = %g outside [0, 1]", i, j, (double)x);
        }
    check_region(c, "p", s, s_ref, tol, rows_all, lds, mr, nb);
    for (int i = 0; i <= EA_MR; i++) {
        if (i >= mr) {
            if (!is_canary(m[i]) || !is_canary(l[i]) || !is_canary(al[i]))
                report(c, "statistics of row %d (beyond mr) were written", i);
            continue;
        }
        if (bits(m[i]) != bits(m_ref[i]))
            report(c, "m[%d] = %.9g, scalar %.9g (the max is exact)", i, (double)m[i], (double)m_ref[i]);
        if (!(fabs((double)al[i] - al_ref[i]) <= 8.0 * 0x1.0p-24 * fabs((double)al_ref[i]) + 0x1.0p-126))
            report(c, "alpha[%d] = %.9g, scalar %.9g", i, (double)al[i], (double)al_ref[i]);
        if (m_ref[i] == -INFINITY && (al[i] != 1.0f || l[i] != l_ref[i]))
            report(c, "fully masked row %d: alpha %g (must be 1), l %g (must stay %g)", i, (double)al[i],
                   (double)l[i], (double)l_ref[i]);
        if (!(fabs((double)l[i] - l_ref[i]) <= sum_tol(fabs((double)l_ref[i]), nb) + 1e-37))
            report(c, "l[%d] = %.9g, scalar %.9g", i, (double)l[i], (double)l_ref[i]);
    }
    free(s), free(s_ref), free(s_in), free(tol);
}

/* The exp inside the softmax, against double precision: with m = 0 and scores <= 0 the kernel
 * writes p = exp(s). Over [ln(FLT_MIN), 0] within 3 ulp; below it either the true (denormal) value
 * or 0, never more than FLT_MIN off; exactly 0 from -104 down (exp underflows even as a denormal)
 * and for -inf. */
static void check_exp(ctx *c, const ea_cpu_kernels *t)
{
    enum { NB = 512 };
    float *s = packed_alloc(1, NB), *x = packed_alloc(1, NB);
    rng r;
    rng_init(&r, 99);
    double worst = 0.0;
    float worst_x = 0.0f;
    for (int block = 0; block < 400; block++) {
        for (int j = 0; j < NB; j++) {
            float v;
            if (block == 0) { /* special values and the flush boundary */
                static const float sp[] = {-0.0f, 0.0f, -INFINITY, -1e-30f, -1e-7f, -0.3465736f, -0.3465737f,
                                           -0.6931472f, -87.3365f, -87.33655f, -87.34f, -87.5f, -88.0f,
                                           -88.7f, -100.0f, -103.9f, -104.0f, -110.0f, -1e4f, -1e30f,
                                           -3.4e38f};
                v = j < (int)(sizeof sp / sizeof sp[0]) ? sp[j] : -(float)j / 8.0f;
            } else if (block < 300) {
                v = (float)rng_uniform(&r, -88.0, 0.0);
            } else {
                v = -(float)ldexp(rng_uniform(&r, 1.0, 2.0), rng_int(&r, -40, 6));
            }
            x[j] = s[j] = v;
        }
        float m = 0.0f, l = 0.0f, a = 0.0f;
        t->softmax(1, NB, s, NB, &m, &l, &a);
        for (int j = 0; j < NB; j++) {
            const double e = exp((double)x[j]);
            const double got = s[j];
            if (x[j] == -INFINITY || x[j] <= -104.0f) {
                if (bits(s[j]) != 0)
                    report(c, "exp(%.9g) = %g, must be exactly +0", (double)x[j], got);
                continue;
            }
            if (e < 0x1.0p-126) {
                if (!(fabs(got - e) <= 0x1.0p-126))
                    report(c, "exp(%.9g) = %g, exact %g (below FLT_MIN: 0 or the denormal)", (double)x[j], got, e);
                continue;
            }
            const double ulp = ldexp(1.0, (int)floor(log2(e)) - 23);
            const double err = fabs(got - e) / ulp;
            if (err > worst) {
                worst = err;
                worst_x = x[j];
            }
            if (!(err <= 3.0))
                report(c, "exp(%.9g) = %.9g, exact %.9g: %.2f ulp", (double)x[j], got, e, err);
        }
    }
    if (getenv("EDGEATTN_TEST_VERBOSE"))
        print_message("[%s softmax] worst exp error %.2f ulp at %.9g\n", c->tier, worst, (double)worst_x);
    free(s), free(x);
}

/* ---------------------------------------------------------------- packers */

static void case_pack_kt(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref, rng *r, int mr, int dim,
                         int n, edgeattn_dtype dt)
{
    (void)mr;
    const int nb_pad = (n + 15) & ~15;
    if (dt_quant(dt) && dim % 32)
        return;
    const ptrdiff_t ldk = row_len(dt, dim) + rng_int(r, 0, 5), ldkt = pad16(r, nb_pad);
    const int front = rng_int(r, 0, 7);
    snprintf(c->what, sizeof c->what, "%s n=%d nb_pad=%d dim=%d ldk=%td (+%d) ldkt=%td", dt_name(dt), n, nb_pad, dim,
             ldk, front, ldkt);
    rows_buf k = rows_alloc(r, dt, n, dim, ldk, front, -2.0, 2.0, true);
    float *kt = packed_alloc(dim + 1, ldkt), *kt_ref = packed_alloc(dim + 1, ldkt);
    t->pack_kt[dt](n, nb_pad, dim, k.base, ldk, kt, ldkt);
    ref->pack_kt[dt](n, nb_pad, dim, k.base, ldk, kt_ref, ldkt);
    check_region(c, "kt", kt, kt_ref, NULL, dim + 1, ldkt, dim, nb_pad);
    free(k.alloc), free(kt), free(kt_ref);
}

static void case_pack_v(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref, rng *r, int mr, int dim,
                        int n, edgeattn_dtype dt)
{
    (void)mr;
    const int nb_pad = (n + 15) & ~15;
    if (dt_quant(dt) && dim % 32)
        return;
    const ptrdiff_t ldv = row_len(dt, dim) + rng_int(r, 0, 5), ldo = pad16(r, dim);
    const int front = rng_int(r, 0, 7);
    snprintf(c->what, sizeof c->what, "%s n=%d nb_pad=%d dim=%d ldv=%td (+%d) ldo=%td", dt_name(dt), n, nb_pad, dim,
             ldv, front, ldo);
    rows_buf v = rows_alloc(r, dt, n, dim, ldv, front, -2.0, 2.0, true);
    float *v32 = packed_alloc(nb_pad + 1, ldo), *v32_ref = packed_alloc(nb_pad + 1, ldo);
    t->pack_v[dt](n, nb_pad, dim, v.base, ldv, v32, ldo);
    ref->pack_v[dt](n, nb_pad, dim, v.base, ldv, v32_ref, ldo);
    check_region(c, "v32", v32, v32_ref, NULL, nb_pad + 1, ldo, nb_pad, dim);
    free(v.alloc), free(v32), free(v32_ref);
}

/* ---------------------------------------------------------------- qk_rows / pv_rows */

/* max |x[d]| (apart, and not inlined: GCC 12 for aarch64 fails vectorising it inside the loop below) */
static __attribute__((noinline)) double row_absmax(const float *x, int n)
{
    double m = 0.0;
    for (int d = 0; d < n; d++)
        if (fabs((double)x[d]) > m)
            m = fabs((double)x[d]);
    return m;
}

static void case_qk_rows(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref, rng *r, int mr, int dim,
                         int n, edgeattn_dtype dt)
{
    if (dt_quant(dt) && dim % 32)
        return;
    const ptrdiff_t ldq = pad16(r, dim), ldk = row_len(dt, dim) + rng_int(r, 0, 9), lds = pad16(r, (n + 15) & ~15);
    const int front = rng_int(r, 0, 7);
    snprintf(c->what, sizeof c->what, "%s mr=%d n=%d dim=%d ldq=%td ldk=%td (+%d) lds=%td", dt_name(dt), mr, n, dim,
             ldq, ldk, front, lds);
    float *q = packed_alloc(mr, ldq);
    /* With f16 K, half the cases use queries exactly representable in f16: that is when the
     * neon-fp16 tier takes its FMLAL path (f16 products into f32), which must be covered too. */
    const bool q_in_f16 = dt == EDGEATTN_F16 && rng_int(r, 0, 1);
    for (int i = 0; i < mr; i++)
        for (int d = 0; d < dim; d++) {
            const float x = (float)rng_uniform(r, -1.0, 1.0);
            q[i * ldq + d] = q_in_f16 ? ea_f16_to_f32(ea_f32_to_f16(x)) : x;
        }
    rows_buf k = rows_alloc(r, dt, n, dim, ldk, front, -1.0, 1.0, false);
    const int rows_all = mr + 1;
    float *s = packed_alloc(rows_all, lds), *s_ref = packed_alloc(rows_all, lds);
    double *tol = calloc((size_t)rows_all * (size_t)lds, sizeof(double));
    for (int i = 0; i < mr; i++) {
        /* quantised keys: a tier may round each query row to int16 (max |q| / 32767 a step), which
         * moves a score by up to half a step times sum |k| */
        const double qmax = row_absmax(q + i * ldq, dim);
        for (int j = 0; j < n; j++) {
            double a = 0.0, ka = 0.0;
            for (int d = 0; d < dim; d++) {
                a += fabs((double)q[i * ldq + d] * row_load(k.base, dt, ldk, j, d, dim));
                ka += fabs((double)row_load(k.base, dt, ldk, j, d, dim));
            }
            tol[i * lds + j] = sum_tol(a, dim) + (dt_quant(dt) ? 0.5 * 1.01 * qmax / 32767.0 * ka : 0.0);
        }
    }
    t->qk_rows[dt](mr, n, dim, q, ldq, k.base, ldk, s, lds);
    ref->qk_rows[dt](mr, n, dim, q, ldq, k.base, ldk, s_ref, lds);
    check_region(c, "s", s, s_ref, tol, rows_all, lds, mr, n);
    free(q), free(k.alloc), free(s), free(s_ref), free(tol);
}

static void case_pv_rows(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref, rng *r, int mr, int dim,
                         int n, edgeattn_dtype dt)
{
    if (dt_quant(dt) && dim % 32)
        return;
    const ptrdiff_t ldp = pad16(r, (n + 15) & ~15), ldv = row_len(dt, dim) + rng_int(r, 0, 9), ldo = pad16(r, dim);
    const int front = rng_int(r, 0, 7);
    snprintf(c->what, sizeof c->what, "%s mr=%d n=%d dim=%d ldp=%td ldv=%td (+%d) ldo=%td", dt_name(dt), mr, n, dim,
             ldp, ldv, front, ldo);
    float *p = packed_alloc(mr, ldp);
    rows_buf v = rows_alloc(r, dt, n, dim, ldv, front, -1.0, 1.0, false);
    const int rows_all = mr + 1;
    float *o = packed_alloc(rows_all, ldo), *o_ref = packed_alloc(rows_all, ldo);
    float alpha[EA_MR];
    for (int i = 0; i < mr; i++) {
        const int kind = rng_int(r, 0, 3);
        alpha[i] = kind == 0 ? 0.0f : kind == 1 ? 1.0f : (float)rng_uniform(r, 0.0, 1.0);
        for (int j = 0; j < n; j++)
            p[i * ldp + j] = (float)rng_uniform(r, 0.0, 1.0);
        for (int d = 0; d < dim; d++)
            o[i * ldo + d] = o_ref[i * ldo + d] = (float)rng_uniform(r, -10.0, 10.0);
    }
    double *tol = calloc((size_t)rows_all * (size_t)ldo, sizeof(double));
    for (int i = 0; i < mr; i++)
        for (int d = 0; d < dim; d++) {
            double a = fabs((double)alpha[i] * (double)o[i * ldo + d]);
            /* Q4: a tier may sum P s u and subtract 7.5 P s after (u = level + 7.5): terms up to
             * |P s| (|level| + 7.5) */
            for (int j = 0; j < n; j++) {
                double x = fabs(row_load(v.base, dt, ldv, j, d, dim));
                if (dt == EDGEATTN_Q4) {
                    float sc;
                    memcpy(&sc, (const char *)v.base + (size_t)j * (size_t)ldv + (size_t)dim / 2, sizeof sc);
                    x += 7.5 * fabs((double)sc);
                }
                a += fabs((double)p[i * ldp + j]) * x;
            }
            tol[i * ldo + d] = sum_tol(a, n + 1);
        }
    t->pv_rows[dt](mr, n, dim, p, ldp, v.base, ldv, alpha, o, ldo);
    ref->pv_rows[dt](mr, n, dim, p, ldp, v.base, ldv, alpha, o_ref, ldo);
    check_region(c, "o", o, o_ref, tol, rows_all, ldo, mr, dim);
    free(p), free(v.alloc), free(o), free(o_ref), free(tol);
}

/* ---------------------------------------------------------------- table 2: tests */

static void run_softmax(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref)
{
    check_exp(c, t);
    if (!c->failed)
        sweep(c, t, ref, case_softmax, nb_list, NNB, false, 3);
}
static void run_qk(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref)
{
    sweep(c, t, ref, case_qk, nb_list, NNB, false, 1);
}
static void run_pv(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref)
{
    sweep(c, t, ref, case_pv, nb_list, NNB, false, 2);
}
static void run_pack_kt(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref)
{
    sweep(c, t, ref, case_pack_kt, n_list, NN, true, 4);
}
static void run_pack_v(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref)
{
    sweep(c, t, ref, case_pack_v, n_list, NN, true, 5);
}
static void run_qk_rows(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref)
{
    sweep(c, t, ref, case_qk_rows, n_list, NN, true, 6);
}
static void run_pv_rows(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref)
{
    sweep(c, t, ref, case_pv_rows, n_list, NN, true, 7);
}

/* Every entry of the table is set (an init that forgets one would leave the scalar entry, which
 * the other tests could not tell apart from a deliberate choice). */
static void run_table(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref)
{
    (void)ref;
    snprintf(c->what, sizeof c->what, "kernel table");
    if (!t->qk || !t->pv || !t->softmax)
        report(c, "qk, pv or softmax is NULL");
    for (int dt = 0; dt < EDGEATTN_DTYPE_COUNT_; dt++)
        if (!t->pack_kt[dt] || !t->pack_v[dt] || !t->qk_rows[dt] || !t->pv_rows[dt])
            report(c, "an entry for %s is NULL", dt_name((edgeattn_dtype)dt));
}

static const struct test_def {
    const char *name;
    void (*run)(ctx *c, const ea_cpu_kernels *t, const ea_cpu_kernels *ref);
} test_defs[] = {
    {"table", run_table},
    {"qk", run_qk},
    {"pv", run_pv},
    {"softmax", run_softmax},
    {"pack_kt", run_pack_kt},
    {"pack_v", run_pack_v},
    {"qk_rows", run_qk_rows},
    {"pv_rows", run_pv_rows},
};
#define NTEST_DEFS ((int)(sizeof test_defs / sizeof test_defs[0]))

/* ---------------------------------------------------------------- runners */

typedef struct tier {
    const char *name;  /* the tier, as the table's name must say */
    const char *label; /* name, or "<name>/dim8" */
    bool dim8;         /* the table of ea_cpu_kernels_init_dim8 */
    ea_cpu_kernels k;
} tier;

/* The tiers this machine and build can run (scalar excluded: it is the reference), each with its
 * table for multiples of 16 and its table for multiples of 8. */
static int available_tiers(tier *out)
{
    static char labels[NTIER_DEFS][32];
    const uint32_t have = edgeattn_cpu_features();
    int n = 0;
    for (int i = 0; i < NTIER_DEFS; i++) {
        if ((have & tier_defs[i].needs) != tier_defs[i].needs)
            continue;
        out[n] = (tier){tier_defs[i].name, tier_defs[i].name, false, {0}};
        ea_cpu_kernels_init(&out[n].k, have & tier_defs[i].needs);
        n++;
        snprintf(labels[i], sizeof labels[i], "%s/dim8", tier_defs[i].name);
        out[n] = (tier){tier_defs[i].name, labels[i], true, {0}};
        ea_cpu_kernels_init_dim8(&out[n].k, have & tier_defs[i].needs);
        n++;
    }
    return n;
}

typedef struct unit {
    const tier *t;
    const struct test_def *test;
} unit;

static ea_cpu_kernels g_scalar;

static void run_unit(void **state)
{
    const unit *u = *state;
    if (strcmp(u->t->k.tier, u->t->name) != 0) {
        if (strcmp(u->t->k.tier, "scalar") == 0) {
            print_message("tier %s not built (simd=false): skipped\n", u->t->name);
            skip();
        }
        fail_msg("the init ladder for %s gave tier \"%s\"", u->t->name, u->t->k.tier);
    }
    ctx c = {.tier = u->t->label, .kernel = u->test->name, .dim8 = u->t->dim8, .what = "", .failed = 0};
    u->test->run(&c, &u->t->k, &g_scalar);
    if (c.failed)
        fail_msg("%s %s: %d mismatches (EDGEATTN_TEST_SEED=%llu)", c.tier, c.kernel, c.failed,
                 (unsigned long long)g_seed);
}

/* ---------------------------------------------------------------- bench mode */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: immune to time-sharing */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best time per call of fn over 7 rounds of calls lasting >= 20 ms each. */
#define TIME_CALLS(best, stmt)                                                                      \
    do {                                                                                            \
        long reps_ = 1;                                                                             \
        for (;;) {                                                                                  \
            const double t0_ = now_s();                                                             \
            for (long i_ = 0; i_ < reps_; i_++) {                                                   \
                stmt;                                                                               \
            }                                                                                       \
            if (now_s() - t0_ > 0.02)                                                               \
                break;                                                                              \
            reps_ *= 2;                                                                             \
        }                                                                                           \
        best = 1e30;                                                                                \
        for (int round_ = 0; round_ < 7; round_++) {                                                \
            const double t0_ = now_s();                                                             \
            for (long i_ = 0; i_ < reps_; i_++) {                                                   \
                stmt;                                                                               \
            }                                                                                       \
            const double dt_ = (now_s() - t0_) / (double)reps_;                                     \
            best = dt_ < best ? dt_ : best;                                                         \
        }                                                                                           \
    } while (0)

/* The driver's prefill step on one key tile: pack Kᵀ and V from f16 once, then for each micro-block
 * of 8 of the work item's rb rows qk, softmax, pv (no masks). kh: kb rows of dim f16; kt, v32 room
 * for dim x kb and kb x dim floats. */
static void tile_step(const ea_cpu_kernels *k, int D, int kb, int rb, const void *kh, float *kt, float *v32,
                      const float *qb, float *s, float *ob, float *mb, float *lb, float *al)
{
    k->pack_kt[EDGEATTN_F16](kb, kb, D, kh, D, kt, kb);
    k->pack_v[EDGEATTN_F16](kb, kb, D, kh, D, v32, D);
    for (int m0 = 0; m0 < rb; m0 += EA_MR) {
        k->qk(EA_MR, kb, D, qb + m0 * D, D, kt, kb, s, kb);
        k->softmax(EA_MR, kb, s, kb, mb + m0, lb + m0, al);
        k->pv(EA_MR, kb, D, s, kb, v32, D, al, ob + m0 * D, D);
    }
}

static void bench_tile(const char *name, const ea_cpu_kernels *k, int D, int kb, int rb, const void *kh, float *kt,
                       float *v32, rng *r)
{
    float *qb = packed_alloc(rb, D), *ob = packed_alloc(rb, D), *s = packed_alloc(EA_MR, kb);
    float *mb = malloc(sizeof(float) * (size_t)rb), *lb = malloc(sizeof(float) * (size_t)rb), al[EA_MR];
    for (int i = 0; i < rb * D; i++)
        qb[i] = (float)rng_uniform(r, -1, 1), ob[i] = 0.0f;
    for (int i = 0; i < rb; i++)
        mb[i] = -INFINITY, lb[i] = 0.0f;
    double t;
    TIME_CALLS(t, tile_step(k, D, kb, rb, kh, kt, v32, qb, s, ob, mb, lb, al));
    printf("%-8s tile      f16 kb=%-3d rb=%-3d dim=%-3d %8.1f ns  %6.1f GFLOP/s (pack + rb/8 x (qk, softmax, pv))\n",
           name, kb, rb, D, t * 1e9, 4.0 * rb * kb * D / t * 1e-9);
    free(qb), free(ob), free(s), free(mb), free(lb);
}

static void bench_tier(const char *name, const ea_cpu_kernels *k, const char *filter)
{
    rng r;
    rng_init(&r, 1234);
    enum { KB = 256 };
    static const int dims[] = {64, 128};
    float *q = packed_alloc(EA_MR, 256), *kt = packed_alloc(256, 2 * KB), *s = packed_alloc(EA_MR, KB);
    float *v32 = packed_alloc(2 * KB, 256), *o = packed_alloc(EA_MR, 256);
    float m[EA_MR], l[EA_MR], al[EA_MR];
    for (int i = 0; i < EA_MR * 256; i++)
        q[i] = o[i] = (float)rng_uniform(&r, -1, 1);
    for (int i = 0; i < 256 * 2 * KB; i++)
        kt[i] = v32[i] = (float)rng_uniform(&r, -1, 1);
    for (int i = 0; i < EA_MR; i++)
        al[i] = 0.5f;
    rows_buf kh = rows_alloc(&r, EDGEATTN_F16, 2 * KB, 256, 256, 0, -1, 1, false);
    rows_buf kf = rows_alloc(&r, EDGEATTN_F32, KB, 256, 256, 0, -1, 1, false);
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int D = dims[di];
        double t;
        const double flop8 = 2.0 * EA_MR * KB * D;
        if (!filter || strstr("qk", filter)) {
            TIME_CALLS(t, k->qk(EA_MR, KB, D, q, D, kt, KB, s, KB));
            printf("%-8s qk        mr=8 nb=%d dim=%-3d %8.1f ns  %6.1f GFLOP/s\n", name, KB, D, t * 1e9, flop8 / t * 1e-9);
        }
        if (!filter || strstr("pv", filter)) {
            TIME_CALLS(t, k->pv(EA_MR, KB, D, s, KB, v32, D, al, o, D));
            printf("%-8s pv        mr=8 nb=%d dim=%-3d %8.1f ns  %6.1f GFLOP/s\n", name, KB, D, t * 1e9, flop8 / t * 1e-9);
        }
        if (!filter || strstr("softmax", filter)) {
            /* scores re-filled each call (the kernel overwrites them): the copy is timed apart */
            double tc;
            TIME_CALLS(tc, memcpy(s, kt, sizeof(float) * EA_MR * KB));
            TIME_CALLS(t, (memcpy(s, kt, sizeof(float) * EA_MR * KB),
                           (void)(m[0] = m[1] = m[2] = m[3] = m[4] = m[5] = m[6] = m[7] = -INFINITY),
                           k->softmax(EA_MR, KB, s, KB, m, l, al)));
            t -= tc;
            printf("%-8s softmax   mr=8 nb=%d         %8.1f ns  %6.2f ns/score (per row of %d keys: %.0f ns)\n", name,
                   KB, t * 1e9, t * 1e9 / (EA_MR * KB), KB, t * 1e9 / EA_MR);
            for (int i = 0; i < EA_MR; i++)
                al[i] = 0.5f;
        }
        if (!filter || strstr("pack_kt", filter)) {
            TIME_CALLS(t, k->pack_kt[EDGEATTN_F16](KB, KB, D, kh.base, D, kt, KB));
            printf("%-8s pack_kt   f16 n=%d dim=%-3d   %8.1f ns  %6.2f ns/element\n", name, KB, D, t * 1e9,
                   t * 1e9 / (KB * D));
            TIME_CALLS(t, k->pack_kt[EDGEATTN_F32](KB, KB, D, kf.base, D, kt, KB));
            printf("%-8s pack_kt   f32 n=%d dim=%-3d   %8.1f ns  %6.2f ns/element\n", name, KB, D, t * 1e9,
                   t * 1e9 / (KB * D));
        }
        if (!filter || strstr("pack_v", filter)) {
            TIME_CALLS(t, k->pack_v[EDGEATTN_F16](KB, KB, D, kh.base, D, v32, D));
            printf("%-8s pack_v    f16 n=%d dim=%-3d   %8.1f ns  %6.2f ns/element\n", name, KB, D, t * 1e9,
                   t * 1e9 / (KB * D));
        }
        for (int mr = 1; mr <= EA_MR; mr *= 2) {
            const double flop = 2.0 * mr * KB * D;
            if (!filter || strstr("qk_rows", filter)) {
                TIME_CALLS(t, k->qk_rows[EDGEATTN_F16](mr, KB, D, q, D, kh.base, D, s, KB));
                printf("%-8s qk_rows   f16 mr=%d n=%d dim=%-3d %8.1f ns  %6.1f GFLOP/s  %5.1f GB/s of K\n", name, mr,
                       KB, D, t * 1e9, flop / t * 1e-9, 2.0 * KB * D / t * 1e-9);
                TIME_CALLS(t, k->qk_rows[EDGEATTN_F32](mr, KB, D, q, D, kf.base, D, s, KB));
                printf("%-8s qk_rows   f32 mr=%d n=%d dim=%-3d %8.1f ns  %6.1f GFLOP/s  %5.1f GB/s of K\n", name, mr,
                       KB, D, t * 1e9, flop / t * 1e-9, 4.0 * KB * D / t * 1e-9);
            }
            if (!filter || strstr("pv_rows", filter)) {
                TIME_CALLS(t, k->pv_rows[EDGEATTN_F16](mr, KB, D, s, KB, kh.base, D, al, o, D));
                printf("%-8s pv_rows   f16 mr=%d n=%d dim=%-3d %8.1f ns  %6.1f GFLOP/s  %5.1f GB/s of V\n", name, mr,
                       KB, D, t * 1e9, flop / t * 1e-9, 2.0 * KB * D / t * 1e-9);
                TIME_CALLS(t, k->pv_rows[EDGEATTN_F32](mr, KB, D, s, KB, kf.base, D, al, o, D));
                printf("%-8s pv_rows   f32 mr=%d n=%d dim=%-3d %8.1f ns  %6.1f GFLOP/s  %5.1f GB/s of V\n", name, mr,
                       KB, D, t * 1e9, flop / t * 1e-9, 4.0 * KB * D / t * 1e-9);
            }
        }
    }
    if (!filter || strstr("tile", filter))
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (int kb = 128; kb <= 512; kb *= 2)
                for (int rb = 64; rb <= 256; rb *= 2)
                    bench_tile(name, k, dims[di], kb, rb, kh.base, kt, v32, &r);
    free(q), free(kt), free(s), free(v32), free(o), free(kh.alloc), free(kf.alloc);
}

static int bench(const char *filter, tier *tiers, int ntiers)
{
    printf("single thread, best of 7; packed kernels on L1/L2-resident tiles (kb=%d), rows kernels on "
           "one tile of K/V rows\n", 256);
    bench_tier("scalar", &g_scalar, filter);
    for (int i = 0; i < ntiers; i++)
        if (!tiers[i].dim8 && strcmp(tiers[i].k.tier, tiers[i].name) == 0)
            bench_tier(tiers[i].name, &tiers[i].k, filter);
    return 0;
}

int main(int argc, char **argv)
{
    const char *env = getenv("EDGEATTN_TEST_SEED");
    g_seed = env && *env ? strtoull(env, NULL, 0)
                         : ((uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)getpid() << 16);
    const char *lg = getenv("EDGEATTN_TEST_LONG");
    g_long = lg && *lg && strcmp(lg, "0") != 0;
    ea_cpu_kernels_init_scalar(&g_scalar);

    static tier tiers[2 * NTIER_DEFS];
    const int ntiers = available_tiers(tiers);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench(argc > 2 ? argv[2] : NULL, tiers, ntiers);

    printf("ukernels: seed %llu (EDGEATTN_TEST_SEED to repeat), tiers:", (unsigned long long)g_seed);
    for (int i = 0; i < ntiers; i++)
        printf(" %s", tiers[i].label);
    printf("%s\n", ntiers ? "" : " none beyond scalar");

    static unit units[2 * NTIER_DEFS * NTEST_DEFS + 1];
    static char names[2 * NTIER_DEFS * NTEST_DEFS + 1][48];
    static struct CMUnitTest tests[2 * NTIER_DEFS * NTEST_DEFS + 1];
    static tier scalar = {"scalar", "scalar", false, {0}};
    scalar.k = g_scalar;
    int n = 0;
    /* the scalar table itself, so that a machine without SIMD tiers still runs (and passes) one test */
    units[n] = (unit){&scalar, &test_defs[0]};
    snprintf(names[n], sizeof names[n], "scalar/table");
    tests[n] = (struct CMUnitTest){names[n], run_unit, NULL, NULL, &units[n]};
    n++;
    for (int i = 0; i < ntiers; i++)
        for (int j = 0; j < NTEST_DEFS; j++) {
            units[n] = (unit){&tiers[i], &test_defs[j]};
            snprintf(names[n], sizeof names[n], "%s/%s", tiers[i].label, test_defs[j].name);
            tests[n] = (struct CMUnitTest){names[n], run_unit, NULL, NULL, &units[n]};
            n++;
        }
    return _cmocka_run_group_tests("ukernels", tests, (size_t)n, NULL, NULL);
}
