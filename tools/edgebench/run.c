/*
 * Running one case: plan, create, random inputs, warm-up, timed calls, the check against the double
 * reference (core/reference.h), destroy. Every library error ends the case with its status and the
 * context's message.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "core/half.h"
#include "core/reference.h"

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: a small, good generator; the seed is printed so a run can be repeated */
uint64_t bench_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t dtype_size(edgeattn_dtype dt)
{
    return dt == EDGEATTN_F32 ? 4 : 2;
}

static void store_elem(void *p, edgeattn_dtype dt, size_t i, float x)
{
    if (dt == EDGEATTN_F32)
        ((float *)p)[i] = x;
    else if (dt == EDGEATTN_F16)
        ((uint16_t *)p)[i] = ea_f32_to_f16(x);
    else
        ((uint16_t *)p)[i] = ea_f32_to_bf16(x);
}

/* A uniform value in [-1, 1) (never exactly zero in practice: 53 random bits). */
static double uniform_pm1(uint64_t *rng)
{
    return (double)(bench_rng_next(rng) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

/* Fills n elements with uniform values in [-1, 1) stored in dt (never zeros). */
static void fill_random(void *p, edgeattn_dtype dt, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++)
        store_elem(p, dt, i, (float)uniform_pm1(rng));
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n sorted samples, linear between the closest ranks. */
static double quantile(const double *sorted, int n, double q)
{
    const double pos = q * (double)(n - 1);
    const int lo = (int)pos;
    const double frac = pos - (double)lo;
    return lo + 1 < n ? sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]) : sorted[n - 1];
}

/* Keys visible to query row i of batch row b (bottom-right causal alignment): the first
 * visible_keys ones (a block mask may drop some of them: masked_keys). */
static int64_t visible_keys(const bench_case *c, int64_t b, int64_t i)
{
    const int64_t n = bench_kv_len(c, b);
    if (!c->causal)
        return n;
    int64_t v = i + n - c->Nq + 1;
    return v < 0 ? 0 : v > n ? n : v;
}

/* The listed key blocks of query row i of (b, KV head h) in a block mask: *cols, returns the count. */
static int32_t mask_row(const edgeattn_block_mask *m, int64_t Nq, int64_t b, int64_t h, int64_t i,
                        const int32_t **cols)
{
    const int64_t nrb = (Nq + m->block_q - 1) / m->block_q;
    const int32_t *rp = m->row_ptr + ((b % m->batch) * m->heads + h % m->heads) * (nrb + 1) + i / m->block_q;
    *cols = m->col_idx + rp[0];
    return rp[1] - rp[0];
}

/* Keys query row i of (b, KV head h) computes: visible, and in a listed block (m NULL: all visible). */
static int64_t masked_keys(const bench_case *c, const edgeattn_block_mask *m, int64_t b, int64_t h, int64_t i)
{
    const int64_t vis = visible_keys(c, b, i);
    if (!m)
        return vis;
    const int32_t *cols;
    const int32_t n = mask_row(m, c->Nq, b, h, i, &cols);
    int64_t keys = 0;
    for (int32_t e = 0; e < n; e++) {
        const int64_t a = (int64_t)cols[e] * m->block_k, z = a + m->block_k < vis ? a + m->block_k : vis;
        keys += z > a ? z - a : 0;
    }
    return keys;
}

static double load_elem(const void *p, edgeattn_dtype dt, size_t i)
{
    return dt == EDGEATTN_F32 ? ((const float *)p)[i]
           : dt == EDGEATTN_F16 ? ea_f16_to_f32(((const uint16_t *)p)[i])
                                : ea_bf16_to_f32(((const uint16_t *)p)[i]);
}

/* Top-k decode inputs: in each (batch row, KV head), a quarter of the budget's blocks (spread at random
 * over the context) hold keys along the mean of the group's queries, scoring about 20 above the rest
 * after the scale; the other keys stay uniform noise. Host K before the device copies are made. */
static int plant_blocks(const bench_case *c, const void *qbuf, void *kbuf, edgeattn_dtype kin, uint64_t *rng)
{
    if (kin != EDGEATTN_F32 && kin != EDGEATTN_F16 && kin != EDGEATTN_BF16)
        return -1;
    const int64_t G = c->Hq / c->Hkv, D = c->D, bs = c->sblk, nblk = c->Nkv / bs;
    if (D > 512 || nblk < 1)
        return -1;
    int64_t nplant = c->topk / bs / 4;
    nplant = nplant < 1 ? 1 : nplant > nblk ? nblk : nplant;
    const double scale = 1.0 / sqrt((double)D);
    double mean[512];
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hkv; h++) {
            double n2 = 0.0;
            for (int64_t d = 0; d < D; d++) {
                mean[d] = 0.0;
                for (int64_t g = 0; g < G; g++)
                    mean[d] += load_elem(qbuf, c->q_dtype, (size_t)((((b * c->Hq) + h * G + g) * c->Nq) * D + d)) / (double)G;
                n2 += mean[d] * mean[d];
            }
            const double alpha = n2 > 0.0 ? 20.0 / (scale * n2) : 0.0;
            for (int64_t p = 0; p < nplant; p++) {
                const int64_t blk = (int64_t)(bench_rng_next(rng) % (uint64_t)nblk);
                for (int64_t j = blk * bs; j < (blk + 1) * bs; j++)
                    for (int64_t d = 0; d < D; d++)
                        store_elem(kbuf, kin, (size_t)(((b * c->Hkv + h) * c->Nkv + j) * D + d), (float)(alpha * mean[d]));
            }
        }
    return 0;
}

/* A random block mask for a prefill case: each row block of each (batch row, KV head) lists
 * density_pm per mille of the key blocks (at least one), chosen uniformly, sorted. */
typedef struct bench_mask {
    edgeattn_block_mask m;
    int32_t *row_ptr, *col_idx;
} bench_mask;

static int bench_mask_make(const bench_case *c, uint64_t *rng, bench_mask *bm)
{
    const int64_t nrb = (c->Nq + c->block_q - 1) / c->block_q, ncb = (c->Nkv + 63) / 64, np = (int64_t)c->B * c->Hkv;
    int64_t per = (ncb * c->density_pm + 500) / 1000;
    per = per < 1 ? 1 : per > ncb ? ncb : per;
    bm->row_ptr = malloc(sizeof(int32_t) * (size_t)(np * (nrb + 1)));
    bm->col_idx = malloc(sizeof(int32_t) * (size_t)(np * nrb * per));
    int32_t *pool = malloc(sizeof(int32_t) * (size_t)ncb);
    if (!bm->row_ptr || !bm->col_idx || !pool) {
        free(pool);
        return -1;
    }
    int64_t nnz = 0;
    for (int64_t p = 0; p < np; p++)
        for (int64_t r = 0; r <= nrb; r++) {
            bm->row_ptr[p * (nrb + 1) + r] = (int32_t)nnz;
            if (r == nrb)
                break;
            for (int64_t k = 0; k < ncb; k++)
                pool[k] = (int32_t)k;
            for (int64_t k = 0; k < per; k++) { /* partial Fisher-Yates: per distinct blocks */
                const int64_t j = k + (int64_t)(bench_rng_next(rng) % (uint64_t)(ncb - k));
                const int32_t t = pool[k];
                pool[k] = pool[j];
                pool[j] = t;
            }
            for (int64_t k = 1; k < per; k++) /* sorted (insertion: per is small) */
                for (int64_t j = k; j > 0 && pool[j - 1] > pool[j]; j--) {
                    const int32_t t = pool[j];
                    pool[j] = pool[j - 1];
                    pool[j - 1] = t;
                }
            memcpy(bm->col_idx + nnz, pool, sizeof(int32_t) * (size_t)per);
            nnz += per;
        }
    free(pool);
    memset(&bm->m, 0, sizeof bm->m);
    bm->m.block_q = c->block_q;
    bm->m.block_k = 64;
    bm->m.batch = c->B;
    bm->m.heads = c->Hkv;
    bm->m.nnz = nnz;
    bm->m.row_ptr = bm->row_ptr;
    bm->m.col_idx = bm->col_idx;
    return 0;
}

/* Rows [first, first + n) of t (any memory kind). */
static edgeattn_tensor rows_of(const edgeattn_tensor *t, int64_t first, int64_t n)
{
    edgeattn_tensor v = *t;
    const size_t off = (size_t)(first * t->stride[2]) * dtype_size(t->dtype);
    if (t->memory == EDGEATTN_MEM_OPENCL)
        v.offset += off;
    else
        v.data = (char *)t->data + off;
    v.bytes -= off;
    v.shape[2] = n;
    return v;
}

/* A view of one row of t: element [b, h, n, 0..D) as a [1, 1, rows, D] tensor. */
static edgeattn_tensor row_view(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t rows)
{
    edgeattn_tensor v = *t;
    const size_t off = (size_t)(b * t->stride[0] + h * t->stride[1] + n * t->stride[2]) * dtype_size(t->dtype);
    v.data = (char *)t->data + off;
    v.bytes = t->bytes - off;
    v.shape[0] = v.shape[1] = 1;
    v.shape[2] = rows;
    return v;
}

/* --tune checks every candidate on the same inputs: the reference rows of a case are kept (o->cache_ref),
 * keyed by its name, seed and shape (the same name and seed fill the same values and sample the same
 * rows), up to REF_CACHE_BYTES in all. */
#define REF_CACHE 64
#define REF_CACHE_BYTES ((size_t)256 << 20)
static struct ref_entry {
    char name[40];
    uint64_t seed;
    int64_t rows, want, Dv, Nkv, D;
    int64_t *idx;  /* [want] the rows checked */
    double *vals;  /* [want][Dv] their reference */
} ref_cache[REF_CACHE];
static size_t ref_cache_bytes;

static struct ref_entry *ref_find(const bench_case *c, const bench_opts *o, int64_t rows, int64_t want, int64_t Dv)
{
    for (int i = 0; i < REF_CACHE; i++) {
        struct ref_entry *e = &ref_cache[i];
        if (e->vals && !strcmp(e->name, c->name) && e->seed == o->seed && e->rows == rows && e->want == want &&
            e->Dv == Dv && e->Nkv == c->Nkv && e->D == c->D)
            return e;
    }
    return NULL;
}

/* A new entry for the case (NULL when the cache is full). */
static struct ref_entry *ref_add(const bench_case *c, const bench_opts *o, int64_t rows, int64_t want, int64_t Dv)
{
    const size_t bytes = (size_t)want * (sizeof(int64_t) + sizeof(double) * (size_t)Dv);
    if (ref_cache_bytes + bytes > REF_CACHE_BYTES)
        return NULL;
    for (int i = 0; i < REF_CACHE; i++) {
        struct ref_entry *e = &ref_cache[i];
        if (e->vals)
            continue;
        e->idx = malloc(sizeof(int64_t) * (size_t)want);
        e->vals = malloc(sizeof(double) * (size_t)want * (size_t)Dv);
        if (!e->idx || !e->vals) {
            free(e->idx), free(e->vals);
            e->idx = NULL, e->vals = NULL;
            return NULL;
        }
        snprintf(e->name, sizeof e->name, "%s", c->name);
        e->seed = o->seed, e->rows = rows, e->want = 0, e->Dv = Dv, e->Nkv = c->Nkv, e->D = c->D;
        ref_cache_bytes += bytes;
        return e;
    }
    return NULL;
}

/* Max over the checked rows of max|out - ref| / max|ref| (absolute where ref is a zero row). Rows are
 * all of them when the reference fits in o->ref_budget multiply-adds, else an even random sample. */
static int check_reference(const bench_case *c, const bench_opts *o, const edgeattn_tensor *q,
                           const edgeattn_tensor *k, const edgeattn_tensor *v, const edgeattn_tensor *outs, int nout,
                           const edgeattn_block_mask *mask, int64_t *checked, int64_t *total, uint64_t *rng,
                           double *worst_of, double *min_cos)
{
    const edgeattn_tensor *out = &outs[0];
    for (int x = 0; x < nout; x++) {
        worst_of[x] = 0.0;
        min_cos[x] = 1.0;
    }
    const int64_t rows = (int64_t)c->B * c->Hq * c->Nq, group = c->Hq / c->Hkv;
    double pairs = 0.0;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t i = 0; i < c->Nq; i++)
            pairs += (double)masked_keys(c, mask, b, 0, i);
    const int64_t Dv = out->shape[3]; /* V and out head dim */
    const double per_row = (double)(c->D + Dv) * (pairs / ((double)c->Nq * (double)c->B) + 1.0);
    int64_t want = rows;
    if ((double)rows * per_row > o->ref_budget) {
        want = (int64_t)(o->ref_budget / per_row);
        if (want < 16)
            want = 16;
        if (want > rows)
            want = rows;
    }
    double *ref = malloc(sizeof(double) * (size_t)Dv); /* [Dv] one reference row */
    if (!ref)
        return -1;
    /* a kept reference of the same case (rows checked in the same order), or a new entry to fill */
    const struct ref_entry *hit = o->cache_ref ? ref_find(c, o, rows, want, Dv) : NULL;
    struct ref_entry *fill = o->cache_ref && !hit ? ref_add(c, o, rows, want, Dv) : NULL;
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = c->causal;
    const int64_t stride = rows / want;
    for (int64_t s = 0; s < want; s++) {
        int64_t r = s * rows / want;
        if (want < rows)
            r += (int64_t)(bench_rng_next(rng) % (uint64_t)(stride > 0 ? stride : 1));
        if (s == want - 1)
            r = rows - 1; /* always the last row: the one that sees every key */
        const int64_t i = r % c->Nq, h = (r / c->Nq) % c->Hq, b = r / ((int64_t)c->Nq * c->Hq);
        /* one query row against the keys it may see: it then sits at position nvis - 1, as in the call */
        const int64_t nvis = visible_keys(c, b, i);
        double ref_max = 0.0, diff_max = 0.0;
        if (hit && hit->idx[s] == r) {
            memcpy(ref, hit->vals + (size_t)s * (size_t)Dv, sizeof(double) * (size_t)Dv);
        } else if (nvis > 0) {
            const edgeattn_tensor qr = row_view(q, b, h, i, 1), kr = row_view(k, b, h / group, 0, nvis),
                                  vr = row_view(v, b, h / group, 0, nvis);
            edgeattn_block_mask m1; /* the row's own list, as the mask of a one-row call */
            int32_t rp1[2] = {0, 0};
            if (mask) {
                m1 = *mask;
                m1.batch = m1.heads = 1;
                rp1[1] = mask_row(mask, c->Nq, b, h / group, i, &m1.col_idx);
                m1.nnz = rp1[1];
                m1.row_ptr = rp1;
                p.block_mask = &m1;
            }
            if (ea_ref_attention(&qr, &kr, &vr, &p, ref, NULL) != EDGEATTN_OK) {
                free(ref);
                return -1;
            }
        } else {
            memset(ref, 0, sizeof(double) * (size_t)Dv);
        }
        if (fill) {
            fill->idx[s] = r;
            memcpy(fill->vals + (size_t)s * (size_t)Dv, ref, sizeof(double) * (size_t)Dv);
            fill->want = s + 1; /* complete (found by ref_find) once every row is in */
        }
        for (int x = 0; x < nout; x++) { /* every output against the same reference row */
            double dot = 0.0, ng = 0.0, nr = 0.0;
            diff_max = ref_max = 0.0;
            for (int64_t d = 0; d < Dv; d++) {
                const double got = ea_ref_load(&outs[x], b, h, i, d), diff = fabs(got - ref[d]);
                if (!(diff <= diff_max)) /* NaN (an unwritten canary) propagates */
                    diff_max = diff;
                if (fabs(ref[d]) > ref_max)
                    ref_max = fabs(ref[d]);
                dot += got * ref[d];
                ng += got * got;
                nr += ref[d] * ref[d];
            }
            const double cs = ng > 0.0 && nr > 0.0 ? dot / sqrt(ng * nr) : ng == nr ? 1.0 : 0.0;
            if (!(cs >= min_cos[x]))
                min_cos[x] = cs;
            const double e = ref_max > 0.0 ? diff_max / ref_max : diff_max;
            if (!(e <= worst_of[x]))
                worst_of[x] = e;
        }
    }
    free(ref);
    *checked = want;
    *total = rows;
    return 0;
}

#define FAIL(...)                                                                                                \
    do {                                                                                                         \
        snprintf(err, err_len, __VA_ARGS__);                                                                     \
        goto done;                                                                                               \
    } while (0)
#define TRY_LIB(call, what)                                                                                      \
    do {                                                                                                         \
        const edgeattn_status st_ = (call);                                                                      \
        if (st_ != EDGEATTN_OK)                                                                                  \
            FAIL("%s: %s failed: %s (status %d): %s", c->name, what, edgeattn_status_string(st_), (int)st_,     \
                 edgeattn_message_of(ctx));                                                                      \
    } while (0)

/* Places a dense BHSD tensor in the device region at *cursor (256-byte aligned pieces). */
static edgeattn_tensor region_tensor(edgeattn_memory mem, void *base, size_t base_off, size_t *cursor,
                                     edgeattn_dtype dt, int64_t b, int64_t h, int64_t n, int64_t d)
{
    edgeattn_tensor t = edgeattn_tensor_bhsd(base, dt, b, h, n, d);
    if (mem == EDGEATTN_MEM_OPENCL)
        t.offset = base_off + *cursor;
    else
        t.data = (char *)base + *cursor;
    t.memory = mem;
    *cursor += (t.bytes + 255) & ~(size_t)255;
    return t;
}

static size_t round256(size_t x)
{
    return (x + 255) & ~(size_t)255;
}

/* Linformer's reference projections K' = E K and V' = F V (double, stored F32) cost seconds at N 8192;
 * --tune runs a case once per candidate with the same inputs, so the last few are kept, keyed by the
 * case's inputs (name, seed and shape: the same name and seed fill the same values). */
#define PROJ_CACHE 4
static struct proj_entry {
    char name[40];
    uint64_t seed;
    int64_t B, Hkv, N, D, k;
    edgeattn_dtype dt;
    float *kp, *vp;
} proj_cache[PROJ_CACHE];
static int proj_next;

static void proj_compute(const bench_case *c, edgeattn_dtype kin, const void *ebuf, const void *fbuf,
                         const void *kbuf, const void *vbuf, float *kpbuf, float *vpbuf, double *acc)
{
    const int64_t kr = c->lowrank, N = c->Nkv, D = c->D;
    for (int64_t bh = 0; bh < (int64_t)c->B * c->Hkv; bh++)
        for (int64_t r0 = 0; r0 < kr; r0++) {
            for (int64_t d = 0; d < 2 * D; d++)
                acc[d] = 0.0;
            for (int64_t j = 0; j < N; j++) {
                const double e = load_elem(ebuf, kin, (size_t)(r0 * N + j)), f = load_elem(fbuf, kin, (size_t)(r0 * N + j));
                for (int64_t d = 0; d < D; d++) {
                    acc[d] += e * load_elem(kbuf, kin, (size_t)((bh * N + j) * D + d));
                    acc[D + d] += f * load_elem(vbuf, kin, (size_t)((bh * N + j) * D + d));
                }
            }
            for (int64_t d = 0; d < D; d++) {
                kpbuf[(bh * kr + r0) * D + d] = (float)acc[d];
                vpbuf[(bh * kr + r0) * D + d] = (float)acc[D + d];
            }
        }
}

/* The projections of case c's inputs, from the cache or computed into it; NULL when out of memory.
 * The pointers stay valid until PROJ_CACHE other cases have been projected. */
static const struct proj_entry *proj_get(const bench_case *c, const bench_opts *o, edgeattn_dtype kin,
                                         const void *ebuf, const void *fbuf, const void *kbuf, const void *vbuf)
{
    for (int i = 0; i < PROJ_CACHE; i++) {
        const struct proj_entry *e = &proj_cache[i];
        if (e->kp && !strcmp(e->name, c->name) && e->seed == o->seed && e->B == c->B && e->Hkv == c->Hkv &&
            e->N == c->Nkv && e->D == c->D && e->k == c->lowrank && e->dt == kin)
            return e;
    }
    const size_t n = (size_t)c->B * (size_t)c->Hkv * (size_t)c->lowrank * (size_t)c->D;
    float *kp = malloc(sizeof(float) * n), *vp = malloc(sizeof(float) * n);
    double *acc = malloc(sizeof(double) * 2 * (size_t)c->D);
    if (!kp || !vp || !acc) {
        free(kp), free(vp), free(acc);
        return NULL;
    }
    proj_compute(c, kin, ebuf, fbuf, kbuf, vbuf, kp, vp, acc);
    free(acc);
    struct proj_entry *e = &proj_cache[proj_next];
    proj_next = (proj_next + 1) % PROJ_CACHE;
    free(e->kp), free(e->vp);
    snprintf(e->name, sizeof e->name, "%s", c->name);
    e->seed = o->seed;
    e->B = c->B, e->Hkv = c->Hkv, e->N = c->Nkv, e->D = c->D, e->k = c->lowrank, e->dt = kin;
    e->kp = kp, e->vp = vp;
    return e;
}

/* The work of one call of case c (FLOP, or bytes of K/V read for a decode) and its rate and share of
 * the ceiling from r->median_ms. */
static void rate_of(const bench_case *c, const bench_ceiling *ceil, int cpu, int on_gpu, const edgeattn_block_mask *mask,
                    bench_result *r)
{
    const int32_t Dv = bench_dv(c);
    if (c->kind == BENCH_PREFILL) {
        double pairs = 0.0;
        for (int64_t b = 0; b < (c->density_pm ? c->B : 1); b++) /* (dense: every batch row alike) */
            for (int64_t h = 0; h < (c->density_pm ? c->Hkv : 1); h++)
                for (int64_t i = 0; i < c->Nq; i++)
                    pairs += (double)masked_keys(c, c->density_pm ? mask : NULL, b, h, i);
        if (c->density_pm)
            pairs /= (double)c->B * c->Hkv;
        r->work = 2.0 * c->B * c->Hq * (c->D + Dv) * pairs;   /* QK^T and PV, 2 FLOP per multiply-add */
        if (c->lowrank) /* Linformer: attention over k rows, and the projections E K and F V */
            r->work = 4.0 * c->B * c->Hq * c->D * (double)c->Nq * c->lowrank +
                      4.0 * c->B * c->Hkv * (double)c->lowrank * c->Nkv * c->D;
        r->rate = r->work / (r->median_ms * 1e-3) * 1e-9;      /* GFLOP/s */
        if (ceil && ceil->fma_gflops > 0.0 && cpu)
            r->pct_ceiling = 100.0 * r->rate / ceil->fma_gflops;
        else if (ceil && ceil->gpu_compute_gflops > 0.0 && on_gpu)
            r->pct_ceiling = 100.0 * r->rate / ceil->gpu_compute_gflops;
    } else if (c->latent) { /* MLA decode: compute-bound (the latent rows are read once per group of heads) */
        double pairs = 0.0; /* (query row, key) pairs of one head over the batch */
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t i = 0; i < c->Nq; i++)
                pairs += (double)(bench_kv_len(c, b) - (c->Nq - 1 - i));
        r->work = 2.0 * c->Hq * (c->D + Dv) * pairs;
        r->rate = r->work / (r->median_ms * 1e-3) * 1e-9; /* GFLOP/s */
        if (ceil && ceil->fma_gflops > 0.0 && cpu)
            r->pct_ceiling = 100.0 * r->rate / ceil->fma_gflops;
    } else {
        double held = 0.0; /* tokens cached over the batch */
        for (int64_t b = 0; b < c->B; b++)
            held += (double)bench_kv_len(c, b);
        r->work = 2.0 * held * c->Hkv * bench_kv_row_bytes(c); /* K and V, each read once */
        if (c->topk) { /* top-k: the selected blocks' K and V, and every block's summary (min, max F32) */
            const double blocks = (double)((c->Nkv + c->sblk - 1) / c->sblk),
                         keep = fmax(2.0, (double)((c->topk + c->sblk - 1) / c->sblk));
            const double keys = fmin((double)c->Nkv, keep * c->sblk);
            r->work = c->B * c->Hkv * (2.0 * keys * bench_kv_row_bytes(c) + blocks * 2.0 * c->D * 4.0);
        }
        r->rate = r->work / (r->median_ms * 1e-3) * 1e-9;      /* GB/s */
        if (ceil && ceil->read_gbs > 0.0 && cpu)
            r->pct_ceiling = 100.0 * r->rate / ceil->read_gbs;
        else if (ceil && ceil->gpu_copy_gbs > 0.0 && on_gpu)
            r->pct_ceiling = 100.0 * r->rate / ceil->gpu_copy_gbs;
    }
}

static double round_up(double x) /* (run_case's `ceil` is the bench_ceiling) */
{
    return ceil(x);
}

static void result_init(bench_result *r)
{
    memset(r, 0, sizeof *r);
    r->pct_ceiling = -1.0;
    r->max_rel_err = -1.0;
    r->min_cos = -2.0;
    r->batched = 1;
}

/* The samples' statistics into r (sorts times). */
static void result_times(bench_result *r, double *times, int n)
{
    qsort(times, (size_t)n, sizeof(double), cmp_double);
    r->median_ms = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
    r->min_ms = times[0];
    r->p10_ms = quantile(times, n, 0.10);
    r->p90_ms = quantile(times, n, 0.90);
    r->samples = n;
}

/* One case on one context, or (alt) on two side by side: the second created with alt->set(arg, 1) in
 * force, both fed the same inputs and caches, their calls timed alternately (the order swapped every
 * sample), both outputs checked against the same reference rows. */
static int run_case(const bench_case *c, const bench_opts *o, const bench_ceiling *ceil, const bench_alt *alt,
                    bench_result *r, bench_result *r_alt, char *err, size_t err_len)
{
    int rc = -1;
    const int nctx = alt ? 2 : 1;
    const int lead = alt && alt->first ? 1 : 0; /* the context created, filled and timed first */
    edgeattn_context *ctxs[2] = {NULL, NULL};
    edgeattn_context *ctx = NULL; /* the one in use (TRY_LIB's message) */
    bench_result *res[2] = {r, r_alt};
    void *qbuf = NULL, *kbuf = NULL, *vbuf = NULL, *obuf[2] = {NULL, NULL};
    double *times[2] = {NULL, NULL};
    char *saved_path = NULL;
    int path_set = 0;
    bench_mask mask = {.row_ptr = NULL, .col_idx = NULL};
    void *ebuf = NULL, *fbuf = NULL;
    edgeattn_tensor et, ft;
    edgeattn_linformer lf;
    memset(&lf, 0, sizeof lf);
    for (int x = 0; x < nctx; x++)
        result_init(res[x]);
    const edgeattn_dtype kin = bench_kv_input_dtype(c); /* K/V as the caller holds them */

    const int32_t Dv = bench_dv(c); /* V and out head dim */
    const size_t nq = (size_t)c->B * (size_t)c->Hq * (size_t)c->Nq * (size_t)c->D;
    const size_t no = (size_t)c->B * (size_t)c->Hq * (size_t)c->Nq * (size_t)Dv;
    const size_t nkv = (size_t)c->B * (size_t)c->Hkv * (size_t)c->Nkv * (size_t)c->D;
    const size_t nv = c->latent ? 1 : (size_t)c->B * (size_t)c->Hkv * (size_t)c->Nkv * (size_t)Dv;
    int reps = o->reps > 0 ? o->reps : 1;
    const int reps_cap = o->rep_seconds > 0.0 && o->reps_max > reps ? o->reps_max : reps; /* samples at most */
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.max_batch = c->B;
    cfg.max_q_len = c->Nq;
    cfg.max_kv_len = c->Nkv;
    cfg.max_heads = c->Hq;
    cfg.max_kv_heads = c->Hkv;
    cfg.max_head_dim = c->D;
    cfg.max_head_dim_v = c->Dv;
    cfg.kernel_cache_dir = o->kernel_cache;
    cfg.num_threads = o->threads;
    cfg.backend = o->backend;
    cfg.cpu_disable_mask = o->cpu_disable_mask;
    if (c->kind == BENCH_DECODE) {
        cfg.flags |= EDGEATTN_FLAG_KV_CACHE;
        cfg.kv_cache_dtype = c->kv_dtype;
        cfg.kv_page_size = c->page;
        cfg.kv_summary_block = c->sblk;
        cfg.kv_cache_latent = c->latent;
        if (c->sinks) { /* Nkv slots: the sinks and a ring of the rest */
            cfg.kv_cache_sinks = c->sinks;
            cfg.kv_cache_window = c->Nkv - c->sinks;
        }
    }
    cfg.max_lowrank = c->lowrank;
    if (c->opencl_path) { /* read by the OpenCL backend at create */
        const char *old = getenv("EDGEATTN_OPENCL_PATH");
        saved_path = old ? strdup(old) : NULL;
        setenv("EDGEATTN_OPENCL_PATH", c->opencl_path == 1 ? "fused" : "unfused", 1);
        path_set = 1;
    }
    edgeattn_plan_info plan;
    edgeattn_message msg = {{0}};
    edgeattn_status st = edgeattn_plan(&cfg, &plan, &msg);
    if (st != EDGEATTN_OK)
        FAIL("%s: edgeattn_plan failed: %s (status %d): %s", c->name, edgeattn_status_string(st), (int)st, msg.text);
    /* GPU backends: inputs and outputs live in the device pool's caller region unless --host-tensors */
    const int on_gpu = plan.backend == EDGEATTN_BACKEND_CUDA || plan.backend == EDGEATTN_BACKEND_OPENCL;
    const int dev = on_gpu && !o->host_tensors;
    if (dev) {
        cfg.device_user_bytes = round256(nq * dtype_size(c->q_dtype)) + round256(nkv * dtype_size(kin)) +
                                round256(nv * dtype_size(kin)) + round256(no * dtype_size(c->out_dtype));
        st = edgeattn_plan(&cfg, &plan, &msg);
        if (st != EDGEATTN_OK)
            FAIL("%s: edgeattn_plan failed: %s (status %d): %s", c->name, edgeattn_status_string(st), (int)st,
                 msg.text);
    }
    edgeattn_backend_info info;
    for (int j = 0; j < nctx; j++) {
        const int x = (j + lead) % nctx;
        res[x]->plan_host_bytes = plan.host_bytes;
        res[x]->plan_kv_bytes = plan.kv_cache_bytes;
        res[x]->plan_device_bytes = plan.device_bytes;
        if (x == 1)
            alt->set(alt->arg, 1);
        st = edgeattn_create(&cfg, NULL, 0, &ctxs[x], &msg);
        if (x == 1)
            alt->set(alt->arg, 0);
        if (st != EDGEATTN_OK)
            FAIL("%s: edgeattn_create%s failed: %s (status %d): %s", c->name, x ? " (the second context)" : "",
                 edgeattn_status_string(st), (int)st, msg.text);
        ctx = ctxs[x];
        TRY_LIB(edgeattn_get_backend_info(ctx, &info), "edgeattn_get_backend_info");
        snprintf(res[x]->tier, sizeof res[x]->tier, "%s", info.tier);
    }

    qbuf = malloc(nq * dtype_size(c->q_dtype));     /* [B][Hq][Nq][D] */
    kbuf = malloc(nkv * dtype_size(kin));   /* [B][Hkv][Nkv][D] */
    vbuf = malloc(nv * dtype_size(kin));    /* [B][Hkv][Nkv][Dv] (latent: unused, V is a view of K) */
    for (int x = 0; x < nctx; x++) {
        obuf[x] = malloc(no * dtype_size(c->out_dtype)); /* [B][Hq][Nq][Dv] */
        times[x] = malloc(sizeof(double) * (size_t)reps_cap);
        if (!obuf[x] || !times[x])
            FAIL("%s: out of memory for the inputs", c->name);
    }
    if (!qbuf || !kbuf || !vbuf)
        FAIL("%s: out of memory for the inputs", c->name);
    uint64_t rng = o->seed; /* mixed with the case name (FNV-1a): each case its own inputs, repeatable */
    for (const char *s = c->name; *s; s++)
        rng = (rng ^ (unsigned char)*s) * 0x100000001b3ull;
    fill_random(qbuf, c->q_dtype, nq, &rng);
    fill_random(kbuf, kin, nkv, &rng);
    fill_random(vbuf, kin, nv, &rng);
    edgeattn_tensor q = edgeattn_tensor_bhsd(qbuf, c->q_dtype, c->B, c->Hq, c->Nq, c->D);
    edgeattn_tensor k = edgeattn_tensor_bhsd(kbuf, kin, c->B, c->Hkv, c->Nkv, c->D);
    edgeattn_tensor v = edgeattn_tensor_bhsd(vbuf, kin, c->B, c->Hkv, c->Nkv, Dv);
    if (c->latent) { /* V: the first Dv values of each latent vector (what the reference reads) */
        v = k;
        v.shape[3] = Dv;
    }
    edgeattn_tensor out[2];
    for (int x = 0; x < nctx; x++) {
        memset(obuf[x], 0xff, no * dtype_size(c->out_dtype)); /* NaN canary: an unwritten element shows as error */
        out[x] = edgeattn_tensor_bhsd(obuf[x], c->out_dtype, c->B, c->Hq, c->Nq, Dv);
    }
    /* the tensors the timed calls use: the host ones, or copies in device memory (one set per context) */
    edgeattn_tensor qx[2] = {q, q}, kx[2] = {k, k}, vx[2] = {v, v}, ox[2] = {out[0], out[nctx - 1]};
    if (dev)
        for (int x = 0; x < nctx; x++) {
            ctx = ctxs[x];
            edgeattn_memory mem;
            void *base = NULL;
            size_t base_off = 0, region = 0, cursor = 0;
            TRY_LIB(edgeattn_device_region(ctx, &mem, &base, &base_off, &region), "edgeattn_device_region");
            qx[x] = region_tensor(mem, base, base_off, &cursor, c->q_dtype, c->B, c->Hq, c->Nq, c->D);
            kx[x] = region_tensor(mem, base, base_off, &cursor, kin, c->B, c->Hkv, c->Nkv, c->D);
            vx[x] = region_tensor(mem, base, base_off, &cursor, kin, c->B, c->Hkv, c->Nkv, Dv);
            ox[x] = region_tensor(mem, base, base_off, &cursor, c->out_dtype, c->B, c->Hq, c->Nq, Dv);
            if (cursor > region)
                FAIL("%s: device region of %zu bytes, the tensors need %zu", c->name, region, cursor);
            TRY_LIB(edgeattn_copy(ctx, &qx[x], &q), "edgeattn_copy (q)");
            TRY_LIB(edgeattn_copy(ctx, &vx[x], &v), "edgeattn_copy (v)");
            TRY_LIB(edgeattn_copy(ctx, &ox[x], &out[x]), "edgeattn_copy (out canary)");
        }
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = c->causal;
    p.topk_tokens = c->topk;
    if (c->lowrank) { /* Linformer: E, F [1, 1, k, Nkv] uniform in +-2/sqrt(Nkv) (projected rows of size ~1) */
        const size_t ne = (size_t)c->lowrank * (size_t)c->Nkv;
        ebuf = malloc(ne * dtype_size(kin));
        fbuf = malloc(ne * dtype_size(kin));
        if (!ebuf || !fbuf)
            FAIL("%s: out of memory for the projections", c->name);
        const double amp = 2.0 / sqrt((double)c->Nkv);
        for (size_t i = 0; i < ne; i++) {
            store_elem(ebuf, kin, i, (float)(amp * uniform_pm1(&rng)));
            store_elem(fbuf, kin, i, (float)(amp * uniform_pm1(&rng)));
        }
        et = edgeattn_tensor_bhsd(ebuf, kin, 1, 1, c->lowrank, c->Nkv);
        ft = edgeattn_tensor_bhsd(fbuf, kin, 1, 1, c->lowrank, c->Nkv);
        lf.e = &et;
        lf.f = &ft;
        p.linformer = &lf;
    }
    if (c->topk && plant_blocks(c, qbuf, kbuf, kin, &rng))
        FAIL("%s: top-k inputs: NKV below one block, or a head dim past 512", c->name);
    if (dev) /* K after the planted keys (top-k) */
        for (int x = 0; x < nctx; x++) {
            ctx = ctxs[x];
            TRY_LIB(edgeattn_copy(ctx, &kx[x], &k), "edgeattn_copy (k)");
        }
    if (c->density_pm) {
        if (bench_mask_make(c, &rng, &mask))
            FAIL("%s: out of memory for the block mask", c->name);
        p.block_mask = &mask.m;
    }

    for (int j = 0; j < nctx && c->kind == BENCH_DECODE; j++) { /* each context's cache, the same rows */
        const int x = (j + lead) % nctx;
        ctx = ctxs[x];
        if (c->sinks) {
            /* `stream` tokens through the cache, position p being row p % Nkv of K/V, Nkv rows per append */
            for (int64_t at = 0; at < c->stream; at += c->Nkv) {
                const int64_t n = c->stream - at < c->Nkv ? c->stream - at : c->Nkv;
                const edgeattn_tensor kc = rows_of(&kx[x], 0, n), vc = rows_of(&vx[x], 0, n);
                TRY_LIB(edgeattn_kv_append(ctx, 0, NULL, &kc, c->latent ? NULL : &vc, NULL, 0), "edgeattn_kv_append");
            }
        } else if (!c->ragged && !c->page) {
            TRY_LIB(edgeattn_kv_append(ctx, 0, NULL, &kx[x], c->latent ? NULL : &vx[x], NULL, 0), "edgeattn_kv_append");
        } else { /* 256 tokens to every sequence that has more, round-robin */
            int32_t n_new[64];
            if (c->B > 64)
                FAIL("%s: ragged or paged decode cases take at most 64 sequences", c->name);
            for (int64_t at = 0; at < c->Nkv; at += 256) {
                const int64_t n = c->Nkv - at < 256 ? c->Nkv - at : 256;
                for (int32_t b = 0; b < c->B; b++) {
                    const int64_t left = bench_kv_len(c, b) - at;
                    n_new[b] = (int32_t)(left < 0 ? 0 : left < n ? left : n);
                }
                const edgeattn_tensor kc = rows_of(&kx[x], at, n), vc = rows_of(&vx[x], at, n);
                TRY_LIB(edgeattn_kv_append(ctx, 0, NULL, &kc, c->latent ? NULL : &vc, n_new, 0), "edgeattn_kv_append");
            }
        }
    }
    if (c->kind == BENCH_DECODE && c->sinks) {
        /* K/V rows 0.. are made the held ones in order (the sinks, then the ring), which is what the
         * reference check reads */
        const int64_t T = c->stream, W = c->Nkv - c->sinks, held = T < c->Nkv ? T : c->Nkv;
        const size_t es = dtype_size(kin), row = (size_t)c->D * es;
        char *tmp = malloc(nkv * es);
        if (!tmp)
            FAIL("%s: out of memory for the inputs", c->name);
        for (int t = 0; t < (c->latent ? 1 : 2); t++) {
            char *buf = t ? vbuf : kbuf;
            for (int64_t bh = 0; bh < (int64_t)c->B * c->Hkv; bh++)
                for (int64_t j = 0; j < held; j++) {
                    const int64_t pos = j < c->sinks ? j : (T - W > c->sinks ? T - W : c->sinks) + (j - c->sinks);
                    memcpy(tmp + ((size_t)bh * (size_t)c->Nkv + (size_t)j) * row,
                           buf + ((size_t)bh * (size_t)c->Nkv + (size_t)(pos % c->Nkv)) * row, row);
                }
            memcpy(buf, tmp, nkv * es);
        }
        free(tmp);
    }
#define ONE_CALL(x)                                                                                              \
    do {                                                                                                         \
        ctx = ctxs[x];                                                                                           \
        if (c->kind == BENCH_PREFILL)                                                                            \
            TRY_LIB(edgeattn_attention(ctx, &qx[x], &kx[x], &vx[x], &ox[x], &p), "edgeattn_attention");          \
        else                                                                                                     \
            TRY_LIB(edgeattn_decode(ctx, 0, NULL, NULL, &qx[x], &ox[x], &p), "edgeattn_decode");                 \
    } while (0)
    if (!on_gpu) {
        double tw[2] = {0.0, 0.0}; /* each context's last warm-up call */
        for (int i = 0; i < o->warmup; i++)
            for (int j = 0; j < nctx; j++) {
                const int x = (i + j + lead) % nctx;
                const double t0 = bench_now_s();
                ONE_CALL(x);
                tw[x] = bench_now_s() - t0;
            }
        if (reps_cap > reps && tw[0] > 0.0)
            reps = (int)fmin((double)reps_cap, fmax((double)reps, round_up(o->rep_seconds / tw[0])));
        /* calls of twice the sampling time or more: the warm-up call (a cold start costs them little)
         * is the one sample */
        const int warm_sample = reps_cap > reps && reps == 1 && tw[0] >= 2.0 * o->rep_seconds;
        if (warm_sample)
            for (int x = 0; x < nctx; x++)
                times[x][0] = tw[x] * 1e3;
        /* Side by side, the samples come in blocks of calls on one context, the contexts taking turns
         * (who leads alternates). A context's workers spin a while after its call (EDGEATTN_CPU_SPIN_US)
         * on a core the other context's call wants, so calls alternating one by one would each pay for
         * the other's spin; instead a block of short calls starts with an untimed one that absorbs it. */
        const int blocks = warm_sample ? 0 : nctx > 1 ? (reps < 3 ? reps : 3) : 1;
        const int settle = nctx > 1 && tw[0] < 0.02;
        for (int blk = 0; blk < blocks; blk++)
            for (int j = 0; j < nctx; j++) {
                const int x = (blk + j + lead) % nctx;
                if (settle)
                    ONE_CALL(x);
                for (int i = reps * blk / blocks; i < reps * (blk + 1) / blocks; i++) {
                    const double t0 = bench_now_s();
                    ONE_CALL(x);
                    times[x][i] = (bench_now_s() - t0) * 1e3;
                }
            }
    } else {
        /* A GPU call returns once queued: each sample queues `batch` calls back to back and waits for
         * them, so launch latency overlaps as in an application's pipeline; batch is chosen so that a
         * sample lasts about 2 ms. */
        double t1 = 0.0;
        for (int i = 0; i < o->warmup + 1; i++)
            for (int x = 0; x < nctx; x++) {
                const double t0 = bench_now_s();
                ONE_CALL(x);
                TRY_LIB(edgeattn_synchronize(ctx), "edgeattn_synchronize");
                if (x == 0)
                    t1 = bench_now_s() - t0;
            }
        int batch = t1 >= 2e-3 ? 1 : (int)(2e-3 / (t1 > 1e-6 ? t1 : 1e-6)) + 1;
        if (batch > 200)
            batch = 200;
        if (reps_cap > reps && t1 > 0.0)
            reps = (int)fmin((double)reps_cap, fmax((double)reps, round_up(o->rep_seconds / (t1 * batch))));
        for (int i = 0; i < reps; i++)
            for (int j = 0; j < nctx; j++) {
                const int x = (i + j + lead) % nctx;
                const double t0 = bench_now_s();
                for (int b = 0; b < batch; b++)
                    ONE_CALL(x);
                TRY_LIB(edgeattn_synchronize(ctx), "edgeattn_synchronize");
                times[x][i] = (bench_now_s() - t0) * 1e3 / batch;
            }
        for (int x = 0; x < nctx; x++) {
            res[x]->batched = batch;
            if (dev) {
                ctx = ctxs[x];
                TRY_LIB(edgeattn_copy(ctx, &out[x], &ox[x]), "edgeattn_copy (out)");
            }
        }
    }
#undef ONE_CALL
    for (int x = 0; x < nctx; x++) {
        result_times(res[x], times[x], reps);
        rate_of(c, ceil, info.backend == EDGEATTN_BACKEND_CPU, on_gpu, c->density_pm ? &mask.m : NULL, res[x]);
    }
    if (o->check_ref) {
        double worst[2], mcos[2];
        int64_t checked = 0, total = 0;
        int crc;
        if (c->lowrank) {
            /* Linformer: the rows' reference over K' = E K and V' = F V */
            const struct proj_entry *pe = proj_get(c, o, kin, ebuf, fbuf, kbuf, vbuf);
            if (!pe)
                FAIL("%s: out of memory for the reference projections", c->name);
            bench_case cr = *c;
            cr.Nkv = c->lowrank;
            cr.lowrank = 0;
            const edgeattn_tensor kp = edgeattn_tensor_bhsd(pe->kp, EDGEATTN_F32, c->B, c->Hkv, c->lowrank, c->D),
                                  vp = edgeattn_tensor_bhsd(pe->vp, EDGEATTN_F32, c->B, c->Hkv, c->lowrank, c->D);
            crc = check_reference(&cr, o, &q, &kp, &vp, out, nctx, NULL, &checked, &total, &rng, worst, mcos);
        } else {
            crc = check_reference(c, o, &q, &k, &v, out, nctx, c->density_pm ? &mask.m : NULL, &checked, &total,
                                  &rng, worst, mcos);
        }
        for (int x = 0; x < nctx; x++) {
            res[x]->max_rel_err = crc ? NAN : worst[x];
            res[x]->min_cos = crc ? NAN : mcos[x];
            res[x]->rows_checked = checked;
            res[x]->rows_total = total;
        }
    }
    rc = 0;
done:
    for (int x = 0; x < nctx; x++)
        edgeattn_destroy(ctxs[x]);
    if (path_set) {
        if (saved_path)
            setenv("EDGEATTN_OPENCL_PATH", saved_path, 1);
        else
            unsetenv("EDGEATTN_OPENCL_PATH");
    }
    free(saved_path);
    free(qbuf);
    free(kbuf);
    free(vbuf);
    for (int x = 0; x < 2; x++) {
        free(obuf[x]);
        free(times[x]);
    }
    free(mask.row_ptr);
    free(mask.col_idx);
    free(ebuf);
    free(fbuf);
    return rc;
}

int bench_run_case(const bench_case *c, const bench_opts *o, const bench_ceiling *ceil, bench_result *r, char *err,
                   size_t err_len)
{
    return run_case(c, o, ceil, NULL, r, NULL, err, err_len);
}

int bench_run_pair(const bench_case *c, const bench_opts *o, const bench_alt *alt, bench_result *r,
                   bench_result *r_alt, char *err, size_t err_len)
{
    return run_case(c, o, NULL, alt, r, r_alt, err, err_len);
}
