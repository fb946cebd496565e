/*
 * The case driver of tools/oclgrind-check.sh: launches every kernel the OpenCL backend has, at small
 * odd shapes, on the first platform whose name contains "Oclgrind" (the simulator, registered through
 * its ICD by the script), and checks every result against the double reference (core/reference.c).
 *
 * Tensors live in cl_mem buffers of the driver's own context and queue (config.gpu_queue), one buffer
 * per tensor of exactly its size, so a read or write past a tensor leaves its buffer and the
 * simulator reports it. Host tensors are used once, for the staging path.
 *
 * Protocol on stdout (the script reads it; the simulator's instruction counter writes the kernels it
 * ran between these lines, its error reports go to stderr after the same markers):
 *   @@setup CONTEXT         a context is created (its programs built)
 *   @@case NAME KERNEL...   a case starts; KERNEL = name@headdim class (flash kernels) or name
 *   @@result NAME ok|FAIL WHY
 *   @@done N_FAILED
 * usage: oclgrind-check-cases CACHE_DIR [SUBSTRING,...]  (only the cases whose names contain one)
 * Exit status: 0 every case passed, 1 a case failed, 2 setup failed (no Oclgrind platform...).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define CL_TARGET_OPENCL_VERSION 120
/* The case tables' trailing fields (sinks, max_q, bmask) default to 0 where a row leaves them out. */
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <CL/cl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/half.h"
#include "core/reference.h"
#include "edgeattn/edgeattn.h"

static cl_context g_cl;
static cl_command_queue g_queue;
static const char *g_cache_dir;
static const char *g_filter;
static int g_failed, g_ran;
static uint64_t g_rng = 0x5eed0c1u;

static double rnd(void) /* splitmix64, uniform in [-1, 1) */
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

static size_t dsize(edgeattn_dtype dt)
{
    return dt == EDGEATTN_F32 ? 4 : 2;
}

static const char *dname(edgeattn_dtype dt)
{
    return dt == EDGEATTN_F32 ? "f32" : dt == EDGEATTN_F16 ? "f16" : "bf16";
}

static void store(void *p, edgeattn_dtype dt, size_t i, float x)
{
    if (dt == EDGEATTN_F32)
        ((float *)p)[i] = x;
    else if (dt == EDGEATTN_F16)
        ((uint16_t *)p)[i] = ea_f32_to_f16(x);
    else
        ((uint16_t *)p)[i] = ea_f32_to_bf16(x);
}

static float round_to(edgeattn_dtype dt, float x)
{
    return dt == EDGEATTN_F32 ? x : dt == EDGEATTN_F16 ? ea_f16_to_f32(ea_f32_to_f16(x)) : ea_bf16_to_f32(ea_f32_to_bf16(x));
}

/* ---------------------------------------------------------------- tensors */

/* A tensor on the host (h) and in its own cl_mem of exactly its bytes (t). */
typedef struct tens {
    void *host;
    cl_mem mem;
    edgeattn_tensor h, t;
} tens;

static void tens_free(tens *x)
{
    if (x->mem)
        clReleaseMemObject(x->mem);
    free(x->host);
    memset(x, 0, sizeof *x);
}

/* fill: 1 random values, 0 a NaN canary (outputs: every element must be written) */
static int tens_make(tens *x, edgeattn_dtype dt, int64_t b, int64_t h, int64_t n, int64_t d, int bshd, int fill)
{
    memset(x, 0, sizeof *x);
    x->h = bshd ? edgeattn_tensor_bshd(NULL, dt, b, h, n, d) : edgeattn_tensor_bhsd(NULL, dt, b, h, n, d);
    const size_t elems = x->h.bytes / dsize(dt);
    x->host = malloc(x->h.bytes);
    if (!x->host)
        return -1;
    for (size_t i = 0; i < elems; i++)
        store(x->host, dt, i, fill ? (float)rnd() : NAN);
    x->h.data = x->host;
    cl_int err;
    x->mem = clCreateBuffer(g_cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, x->h.bytes, x->host, &err);
    if (err != CL_SUCCESS)
        return -1;
    x->t = x->h;
    x->t.data = (void *)x->mem;
    x->t.memory = EDGEATTN_MEM_OPENCL;
    x->t.offset = 0;
    return 0;
}

static int tens_read(tens *x)
{
    return clEnqueueReadBuffer(g_queue, x->mem, CL_TRUE, 0, x->h.bytes, x->host, 0, NULL, NULL) == CL_SUCCESS ? 0 : -1;
}

/* ---------------------------------------------------------------- cases */

static char g_why[512], g_ctx_why[512]; /* the case's result; why the last create failed */

static int failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_why, sizeof g_why, fmt, ap);
    va_end(ap);
    return -1;
}

/* g_filter: comma-separated substrings of case names (NULL: every case) */
static int selected(const char *name)
{
    if (!g_filter)
        return 1;
    for (const char *p = g_filter; *p;) {
        const char *e = strchr(p, ',');
        const size_t n = e ? (size_t)(e - p) : strlen(p);
        for (const char *h = name; n && *h; h++)
            if (!strncmp(h, p, n))
                return 1;
        p += n + (e != NULL);
    }
    return 0;
}

static void case_begin(const char *name, const char *expect)
{
    g_why[0] = '\0';
    printf("@@case %s %s\n", name, expect);
    fflush(stdout);
    fprintf(stderr, "@@case %s\n", name);
    fflush(stderr);
}

static void case_end(const char *name, int rc)
{
    g_ran++;
    if (rc)
        g_failed++;
    fflush(stderr);
    printf("@@result %s %s %s\n", name, rc ? "FAIL" : "ok", g_why);
    fflush(stdout);
}

/* Worst row error of out against ref (max|out - ref| / max|ref| per row, absolute for a zero row),
 * and of lse (absolute, scaled by max(1, |ref|)); both must be within tol. */
static int compare(const tens *out, const tens *lse, const double *ref, const double *ref_lse, double tol)
{
    const int64_t B = out->h.shape[0], H = out->h.shape[1], N = out->h.shape[2], D = out->h.shape[3];
    double worst = 0.0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < N; i++) {
                const double *r = ref + ((b * H + h) * N + i) * D;
                double rmax = 0.0, dmax = 0.0;
                for (int64_t d = 0; d < D; d++) {
                    const double diff = fabs(ea_ref_load(&out->h, b, h, i, d) - r[d]);
                    if (!(diff <= dmax)) /* NaN: an element never written */
                        dmax = diff;
                    rmax = fabs(r[d]) > rmax ? fabs(r[d]) : rmax;
                }
                const double e = rmax > 0.0 ? dmax / rmax : dmax;
                if (!(e <= tol))
                    return failf("out[%lld,%lld,%lld]: error %.3g > %.3g", (long long)b, (long long)h, (long long)i,
                                 e, tol);
                worst = e > worst ? e : worst;
                if (lse) {
                    const double got = ea_ref_load(&lse->h, b, h, i, 0), want = ref_lse[(b * H + h) * N + i];
                    const bool ok = isinf(want) ? got == want : fabs(got - want) <= tol * fmax(1.0, fabs(want));
                    if (!ok)
                        return failf("lse[%lld,%lld,%lld] = %g, want %g", (long long)b, (long long)h, (long long)i, got,
                                     want);
                }
            }
    snprintf(g_why, sizeof g_why, "max rel err %.2g", worst);
    return 0;
}

static double tolerance(edgeattn_dtype a, edgeattn_dtype b, edgeattn_dtype c)
{
    const bool bf = a == EDGEATTN_BF16 || b == EDGEATTN_BF16 || c == EDGEATTN_BF16;
    const bool f16 = a == EDGEATTN_F16 || b == EDGEATTN_F16 || c == EDGEATTN_F16;
    return bf ? 1.6e-2 : f16 ? 2e-3 : 1e-5;
}

/* ---------------------------------------------------------------- contexts */

typedef struct ctxdef {
    const char *name;
    const char *env[4][2]; /* variables set around create: class, local memory, tiles, options, path */
    int max_head_dim, kv_cache, window;
    edgeattn_dtype cache_dt;
    int page, pages; /* paged cache: config.kv_page_size, kv_pages (0: contiguous) */
    int sinks;       /* config.kv_cache_sinks (with a window) */
    int max_q;       /* config.max_q_len (0: 40) */
    int sblk;        /* config.kv_summary_block (top-k decode) */
    int lowrank;     /* config.max_lowrank (Linformer) */
} ctxdef;

/* The positions a cache of ctxdef c holds after `total` tokens, oldest first (the sinks, then the
 * ring); returns the count. */
static int held_positions(const ctxdef *c, int total, int *pos)
{
    const int cap = c->window > 0 ? c->sinks + c->window : 320;
    int n = 0;
    if (c->window == 0 || total <= cap) {
        for (int p = 0; p < total && p < cap; p++)
            pos[n++] = p;
        return n;
    }
    for (int p = 0; p < c->sinks; p++)
        pos[n++] = p;
    for (int p = total - c->window; p < total; p++)
        pos[n++] = p;
    return n;
}

static edgeattn_context *ctx_open(const ctxdef *c)
{
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.backend = EDGEATTN_BACKEND_OPENCL;
    cfg.gpu_queue = g_queue;
    cfg.kernel_cache_dir = g_cache_dir;
    cfg.max_batch = 2;
    cfg.max_q_len = c->max_q > 0 ? c->max_q : 40;
    cfg.max_kv_len = 320;
    cfg.max_heads = 4;
    cfg.max_kv_heads = 4;
    cfg.max_head_dim = c->max_head_dim;
    cfg.max_lowrank = c->lowrank;
    if (c->kv_cache) {
        cfg.flags = EDGEATTN_FLAG_KV_CACHE;
        cfg.kv_cache_dtype = c->cache_dt;
        cfg.kv_cache_window = c->window;
        cfg.kv_cache_sinks = c->sinks;
        cfg.kv_summary_block = c->sblk;
        cfg.kv_page_size = c->page;
        cfg.kv_pages = c->pages;
    }
    printf("@@setup %s\n", c->name); /* reports while the programs are built belong to no case */
    fflush(stdout);
    fprintf(stderr, "@@setup %s\n", c->name);
    fflush(stderr);
    for (int i = 0; i < 4 && c->env[i][0]; i++)
        setenv(c->env[i][0], c->env[i][1], 1);
    edgeattn_context *ctx = NULL;
    edgeattn_message msg;
    const edgeattn_status st = edgeattn_create(&cfg, NULL, 0, &ctx, &msg);
    for (int i = 0; i < 4 && c->env[i][0]; i++)
        unsetenv(c->env[i][0]);
    if (st != EDGEATTN_OK) {
        snprintf(g_ctx_why, sizeof g_ctx_why, "create (%s): %s", c->name, msg.text);
        return NULL;
    }
    return ctx;
}

/* ---------------------------------------------------------------- attention cases */

enum { BIAS_NONE, BIAS_FULL, BIAS_ONE, BIAS_PER_SEQ }; /* [B,Hq,..], [1,1,..], [B,1,..] */

typedef struct acase {
    const char *name, *expect;
    int B, Hq, Hkv, Nq, Nkv, D;
    edgeattn_dtype qdt, kvdt, odt;
    int bshd; /* bit 0 q, bit 1 k/v, bit 2 out */
    int causal, wl, wr;
    float softcap;
    int bias, lse, kv_lens, host, check_finite;
    int nan_in; /* 1..4: a NaN in q, k, v or bias; the call must refuse it (check_finite) */
    int bmask;  /* 64 or 128: a block mask of that many query rows per block (one pattern per batch row and KV
                   head; each row block lists a pseudo-random third of the key blocks, the second none) */
    int lowrank; /* Linformer: k rows; E [1, 1, k, Nkv] in the K/V dtype, F [B, Hkv, k, Nkv] in Q's */
} acase;

/* A block mask for case c into m (arrays rp, ci of at least B*Hkv*(nrb+1) and B*Hkv*nrb*nkb entries). */
static void make_mask(const acase *c, edgeattn_block_mask *m, int32_t *rp, int32_t *ci)
{
    const int nrb = (c->Nq + c->bmask - 1) / c->bmask, nkb = (c->Nkv + 63) / 64, np = c->B * c->Hkv;
    int32_t nnz = 0;
    for (int p = 0; p < np; p++)
        for (int r = 0; r <= nrb; r++) {
            rp[p * (nrb + 1) + r] = nnz;
            for (int kb = 0; r < nrb && r != 1 && kb < nkb; kb++)
                if (rnd() < -0.3 || kb == (p + r) % nkb)
                    ci[nnz++] = kb;
        }
    memset(m, 0, sizeof *m);
    m->block_q = c->bmask;
    m->block_k = 64;
    m->batch = c->B;
    m->heads = c->Hkv;
    m->nnz = nnz;
    m->row_ptr = rp;
    m->col_idx = ci;
}

static int run_attention(edgeattn_context *ctx, const acase *c)
{
    tens q, k, v, o, bias, lse, pe, pf;
    memset(&bias, 0, sizeof bias);
    memset(&lse, 0, sizeof lse);
    memset(&pe, 0, sizeof pe);
    memset(&pf, 0, sizeof pf);
    int rc = -1;
    double *ref = NULL, *ref_lse = NULL;
    if (tens_make(&q, c->qdt, c->B, c->Hq, c->Nq, c->D, c->bshd & 1, 1) ||
        tens_make(&k, c->kvdt, c->B, c->Hkv, c->Nkv, c->D, c->bshd & 2, 1) ||
        tens_make(&v, c->kvdt, c->B, c->Hkv, c->Nkv, c->D, c->bshd & 2, 1) ||
        tens_make(&o, c->odt, c->B, c->Hq, c->Nq, c->D, c->bshd & 4, 0)) {
        failf("tensor setup failed");
        goto done;
    }
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = c->causal;
    p.window_left = c->wl;
    p.window_right = c->wr;
    p.softcap = c->softcap;
    p.check_finite = c->check_finite;
    int32_t lens[2] = {c->Nkv - 5, 0}; /* the second sequence sees no key: zeros, lse -inf */
    if (c->kv_lens)
        p.kv_lens = lens;
    edgeattn_block_mask bm;
    static int32_t bm_rp[2 * 4 * 8], bm_ci[2 * 4 * 8 * 8]; /* B <= 2, Hkv <= 4, Nq <= 448, Nkv <= 512 */
    if (c->bmask) {
        make_mask(c, &bm, bm_rp, bm_ci);
        p.block_mask = &bm;
    }
    if (c->bias) {
        const int64_t bb = c->bias == BIAS_ONE ? 1 : c->B, bh = c->bias == BIAS_FULL ? c->Hq : 1;
        if (tens_make(&bias, EDGEATTN_F32, bb, bh, c->Nq, c->Nkv, 0, 1)) {
            failf("bias setup failed");
            goto done;
        }
    }
    if (c->lse && tens_make(&lse, EDGEATTN_F32, c->B, c->Hq, c->Nq, 1, 0, 0)) {
        failf("lse setup failed");
        goto done;
    }
    edgeattn_linformer lf, lf_h;
    if (c->lowrank) {
        if (tens_make(&pe, c->kvdt, 1, 1, c->lowrank, c->Nkv, 0, 1) ||
            tens_make(&pf, c->qdt, c->B, c->Hkv, c->lowrank, c->Nkv, 0, 1)) {
            failf("projection setup failed");
            goto done;
        }
        memset(&lf, 0, sizeof lf);
        memset(&lf_h, 0, sizeof lf_h);
        lf.e = &pe.t;
        lf.f = &pf.t;
        lf_h.e = &pe.h;
        lf_h.f = &pf.h;
        p.linformer = &lf_h; /* (the reference's) */
    }
    if (c->nan_in) {
        tens *t = c->nan_in == 1 ? &q : c->nan_in == 2 ? &k : c->nan_in == 3 ? &v : &bias;
        const size_t at = (size_t)t->h.stride[2] * (size_t)(t->h.shape[2] / 2) + 3; /* a row in the middle */
        store(t->host, t->h.dtype, at, NAN);
        const size_t es = dsize(t->h.dtype);
        if (clEnqueueWriteBuffer(g_queue, t->mem, CL_TRUE, at * es, es, (char *)t->host + at * es, 0, NULL, NULL)) {
            failf("NaN write failed");
            goto done;
        }
    }
    edgeattn_params pd = p;
    if (c->lowrank && !c->host)
        pd.linformer = &lf;
    pd.bias = c->bias ? (c->host ? &bias.h : &bias.t) : NULL;
    pd.lse = c->lse ? (c->host ? &lse.h : &lse.t) : NULL;
    const edgeattn_status st = c->host ? edgeattn_attention(ctx, &q.h, &k.h, &v.h, &o.h, &pd)
                                       : edgeattn_attention(ctx, &q.t, &k.t, &v.t, &o.t, &pd);
    if (c->nan_in) {
        if (st != EDGEATTN_ERR_NONFINITE) {
            failf("a NaN in tensor %d gave status %d, not EDGEATTN_ERR_NONFINITE", c->nan_in, (int)st);
            goto done;
        }
        snprintf(g_why, sizeof g_why, "refused");
        rc = 0;
        goto done;
    }
    if (st != EDGEATTN_OK) {
        failf("edgeattn_attention: %s", edgeattn_message_of(ctx));
        goto done;
    }
    if (edgeattn_synchronize(ctx) != EDGEATTN_OK) {
        failf("synchronize: %s", edgeattn_message_of(ctx));
        goto done;
    }
    if (!c->host && (tens_read(&o) || (c->lse && tens_read(&lse)))) {
        failf("read back failed");
        goto done;
    }
    const size_t rows = (size_t)c->B * (size_t)c->Hq * (size_t)c->Nq;
    ref = malloc(sizeof(double) * rows * (size_t)c->D);
    ref_lse = malloc(sizeof(double) * rows);
    if (!ref || !ref_lse) {
        failf("out of memory");
        goto done;
    }
    p.bias = c->bias ? &bias.h : NULL;
    if (ea_ref_attention(&q.h, &k.h, &v.h, &p, ref, ref_lse) != EDGEATTN_OK) {
        failf("reference failed");
        goto done;
    }
    rc = compare(&o, c->lse ? &lse : NULL, ref, ref_lse, tolerance(c->qdt, c->kvdt, c->odt));
done:
    free(ref);
    free(ref_lse);
    tens_free(&q);
    tens_free(&k);
    tens_free(&v);
    tens_free(&o);
    tens_free(&bias);
    tens_free(&lse);
    tens_free(&pe);
    tens_free(&pf);
    return rc;
}

/* ---------------------------------------------------------------- KV cache and decode */

#define MAXTOK 200
#define DEC_HKV 1
#define DEC_HQ 3
#define DEC_D 64

typedef struct step {
    int append;                 /* 1: kv_append, 0: decode, 2: kv_read of sequence 0's held tokens into host
                                   tensors of dtype dt (another dtype than the cache's: ea_convert), 3:
                                   kv_fork of sequence 0 into 1 (a paged cache shares the pages) */
    int n[2];                   /* append: rows per sequence (N = the larger) */
    edgeattn_dtype dt;          /* append: source dtype; decode: q dtype */
    int host, bshd;             /* append: host source; layout */
    int nq, causal, wl, lse;    /* decode */
    float softcap;
    edgeattn_dtype odt;         /* decode: out dtype */
    const char *expect;
    int topk;                   /* decode: params.topk_tokens (top-k over the cache's block summaries) */
    int unchecked;              /* decode: no reference (a selection of fewer blocks than the cache holds:
                                   tests/test_sparse.c checks its result; here the accesses) */
} step;

typedef struct kvstate {
    float k[2][DEC_HKV][MAXTOK][DEC_D], v[2][DEC_HKV][MAXTOK][DEC_D]; /* every token, cache-rounded */
    int total[2];
} kvstate;

static int run_append(edgeattn_context *ctx, kvstate *s, const ctxdef *cd, const step *st)
{
    const int N = st->n[0] > st->n[1] ? st->n[0] : st->n[1];
    tens k, v;
    int rc = -1;
    if (tens_make(&k, st->dt, 2, DEC_HKV, N, DEC_D, st->bshd, 1) ||
        tens_make(&v, st->dt, 2, DEC_HKV, N, DEC_D, !st->bshd, 1)) {
        failf("tensor setup failed");
        goto done;
    }
    for (int b = 0; b < 2; b++)
        for (int h = 0; h < DEC_HKV; h++)
            for (int i = 0; i < st->n[b]; i++)
                for (int d = 0; d < DEC_D; d++) {
                    if (s->total[b] + i >= MAXTOK) {
                        failf("scenario longer than %d tokens", MAXTOK);
                        goto done;
                    }
                    s->k[b][h][s->total[b] + i][d] = round_to(cd->cache_dt, (float)ea_ref_load(&k.h, b, h, i, d));
                    s->v[b][h][s->total[b] + i][d] = round_to(cd->cache_dt, (float)ea_ref_load(&v.h, b, h, i, d));
                }
    const int32_t n_new[2] = {st->n[0], st->n[1]};
    const edgeattn_status r = st->host ? edgeattn_kv_append(ctx, 0, NULL, &k.h, &v.h, n_new, 1)
                                       : edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, n_new, 1);
    if (r != EDGEATTN_OK) {
        failf("kv_append: %s", edgeattn_message_of(ctx));
        goto done;
    }
    if (edgeattn_synchronize(ctx) != EDGEATTN_OK) {
        failf("synchronize: %s", edgeattn_message_of(ctx));
        goto done;
    }
    s->total[0] += st->n[0];
    s->total[1] += st->n[1];
    snprintf(g_why, sizeof g_why, "appended (%d, %d)", st->n[0], st->n[1]);
    rc = 0;
done:
    tens_free(&k);
    tens_free(&v);
    return rc;
}

static int run_read(edgeattn_context *ctx, kvstate *s, const ctxdef *cd, const step *st)
{
    int pos[MAXTOK];
    int held = held_positions(cd, s->total[0], pos), first = pos[0];
    if (held > 0 && pos[held - 1] - pos[0] + 1 != held) { /* sinks + ring with a gap: read the ring's run */
        first = s->total[0] - cd->window;
        held = cd->window;
    }
    tens k, v;
    int rc = -1;
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    if (held < 1 || tens_make(&k, st->dt, 1, DEC_HKV, held, DEC_D, st->bshd, 0) ||
        tens_make(&v, st->dt, 1, DEC_HKV, held, DEC_D, !st->bshd, 0)) {
        failf("tensor setup failed (held %d)", held);
        goto done;
    }
    if (edgeattn_kv_read(ctx, 0, 0, first, &k.h, &v.h) != EDGEATTN_OK) {
        failf("kv_read: %s", edgeattn_message_of(ctx));
        goto done;
    }
    for (int h = 0; h < DEC_HKV; h++)
        for (int j = 0; j < held; j++)
            for (int d = 0; d < DEC_D; d++) {
                const double gk = ea_ref_load(&k.h, 0, h, j, d), gv = ea_ref_load(&v.h, 0, h, j, d);
                const double wk = round_to(st->dt, s->k[0][h][first + j][d]), wv = round_to(st->dt, s->v[0][h][first + j][d]);
                if (gk != wk || gv != wv) {
                    failf("kv_read [%d, pos %d, %d]: %g/%g, expected %g/%g", h, first + j, d, gk, gv, wk, wv);
                    goto done;
                }
            }
    snprintf(g_why, sizeof g_why, "read %d tokens as %s", held, dname(st->dt));
    rc = 0;
done:
    tens_free(&k);
    tens_free(&v);
    return rc;
}

static int run_fork(edgeattn_context *ctx, kvstate *s)
{
    if (edgeattn_kv_fork(ctx, 0, 1) != EDGEATTN_OK)
        return failf("kv_fork: %s", edgeattn_message_of(ctx));
    memcpy(s->k[1], s->k[0], sizeof s->k[0]);
    memcpy(s->v[1], s->v[0], sizeof s->v[0]);
    s->total[1] = s->total[0];
    int32_t fr = 0, tot = 0;
    edgeattn_kv_pages(ctx, &fr, &tot);
    snprintf(g_why, sizeof g_why, "forked (%d of %d pages free)", (int)fr, (int)tot);
    return 0;
}

static int run_decode(edgeattn_context *ctx, kvstate *s, const ctxdef *cd, const step *st)
{
    int32_t held[2];
    int hmax = 0, pos[2][MAXTOK];
    for (int b = 0; b < 2; b++) {
        held[b] = held_positions(cd, s->total[b], pos[b]);
        hmax = held[b] > hmax ? held[b] : hmax;
    }
    tens q, o, lse, rk, rv;
    memset(&lse, 0, sizeof lse);
    memset(&rk, 0, sizeof rk);
    memset(&rv, 0, sizeof rv);
    double *ref = NULL, *ref_lse = NULL;
    int rc = -1;
    if (tens_make(&q, st->dt, 2, DEC_HQ, st->nq, DEC_D, 0, 1) ||
        tens_make(&o, st->odt, 2, DEC_HQ, st->nq, DEC_D, 1, 0) ||
        (st->lse && tens_make(&lse, EDGEATTN_F32, 2, DEC_HQ, st->nq, 1, 0, 0)) ||
        tens_make(&rk, EDGEATTN_F32, 2, DEC_HKV, hmax, DEC_D, 0, 1) ||
        tens_make(&rv, EDGEATTN_F32, 2, DEC_HKV, hmax, DEC_D, 0, 1)) {
        failf("tensor setup failed");
        goto done;
    }
    /* the reference's K/V: the tokens the cache holds, oldest first */
    for (int b = 0; b < 2; b++)
        for (int h = 0; h < DEC_HKV; h++)
            for (int j = 0; j < held[b]; j++)
                for (int d = 0; d < DEC_D; d++) {
                    const size_t at = (size_t)(b * rk.h.stride[0] + h * rk.h.stride[1] + j * rk.h.stride[2] + d);
                    ((float *)rk.host)[at] = s->k[b][h][pos[b][j]][d];
                    ((float *)rv.host)[at] = s->v[b][h][pos[b][j]][d];
                }
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = st->causal;
    p.window_left = st->wl;
    p.softcap = st->softcap;
    p.check_finite = 1;
    p.lse = st->lse ? &lse.t : NULL;
    p.topk_tokens = st->topk;
    if (edgeattn_decode(ctx, 0, NULL, NULL, &q.t, &o.t, &p) != EDGEATTN_OK) {
        failf("decode: %s", edgeattn_message_of(ctx));
        goto done;
    }
    if (edgeattn_synchronize(ctx) != EDGEATTN_OK || tens_read(&o) || (st->lse && tens_read(&lse))) {
        failf("synchronize / read back: %s", edgeattn_message_of(ctx));
        goto done;
    }
    if (st->unchecked) {
        snprintf(g_why, sizeof g_why, "top-k %d: ran (result checked by test_sparse)", st->topk);
        rc = 0;
        goto done;
    }
    p.topk_tokens = 0;
    ref = malloc(sizeof(double) * 2 * DEC_HQ * (size_t)st->nq * DEC_D);
    ref_lse = malloc(sizeof(double) * 2 * DEC_HQ * (size_t)st->nq);
    p.lse = NULL;
    p.check_finite = 0;
    p.kv_lens = held;
    if (!ref || !ref_lse || ea_ref_attention(&q.h, &rk.h, &rv.h, &p, ref, ref_lse) != EDGEATTN_OK) {
        failf("reference failed");
        goto done;
    }
    rc = compare(&o, st->lse ? &lse : NULL, ref, ref_lse, tolerance(st->dt, cd->cache_dt, st->odt));
done:
    free(ref);
    free(ref_lse);
    tens_free(&q);
    tens_free(&o);
    tens_free(&lse);
    tens_free(&rk);
    tens_free(&rv);
    return rc;
}

/* ---------------------------------------------------------------- the case list */

#define F32 EDGEATTN_F32
#define F16 EDGEATTN_F16
#define BF16 EDGEATTN_BF16

/* Every head-dim class (programs for 64, 128, 256: D 48, 80 and 208 leave part of the class unused;
 * D 8, 24 and 40, odd multiples of 8, leave most of the 64 class unused and end inside a work-item's
 * float4 columns) and every kernel of each (prefill, prefill with F16 Q, decode tile), every storage
 * dtype in each slot, masks, softcap, bias shapes, lse, kv_lens, split-KV with the combine, host
 * tensors. */
static const acase k_main[] = {
    {"pf64-bias-causal", "ea_flash_pf@64 ea_finite", 2, 3, 1, 37, 67, 64, F32, F16, BF16, 0, 1, -1, -1, 0, BIAS_FULL,
     1, 0, 0, 1, 0},
    {"pfh64-window-softcap", "ea_flash_pfh@64 ea_finite", 1, 4, 2, 29, 53, 48, F16, BF16, F32, 5, 0, 9, 3, 20.0f,
     BIAS_ONE, 1, 0, 0, 1, 0},
    {"pf128-kvlens", "ea_flash_pf@128", 2, 2, 2, 19, 41, 80, BF16, F32, F16, 2, 0, -1, -1, 0, BIAS_PER_SEQ, 1, 1, 0, 0,
     0},
    {"pfh128-split", "ea_flash_pfh@128 ea_combine", 1, 3, 1, 9, 131, 128, F16, F16, F16, 0, 1, -1, -1, 0, BIAS_NONE, 1,
     0, 0, 0, 0},
    {"pf256-causal", "ea_flash_pf@256", 1, 2, 1, 13, 27, 208, F32, BF16, F16, 0, 1, -1, -1, 0, BIAS_NONE, 0, 0, 0, 0,
     0},
    {"pfh256", "ea_flash_pfh@256", 1, 1, 1, 11, 21, 256, F16, F32, BF16, 4, 0, 4, -1, 0, BIAS_NONE, 1, 0, 0, 0, 0},
    {"dec256", "ea_flash_dec@256", 1, 4, 1, 2, 37, 256, BF16, F16, F32, 0, 1, -1, -1, 0, BIAS_FULL, 1, 0, 0, 0, 0},
    {"dec128-split", "ea_flash_dec@128 ea_combine", 1, 2, 2, 3, 150, 112, F32, BF16, BF16, 0, 0, 40, -1, 0,
     BIAS_NONE, 1, 0, 0, 0, 0},
    {"pf64-host-staged", "ea_flash_pf@64", 2, 2, 1, 21, 33, 64, F32, F32, F32, 3, 0, -1, 6, 0, BIAS_PER_SEQ, 1, 0, 1, 0,
     0},
    {"pf64-d24-causal", "ea_flash_pf@64", 2, 2, 1, 19, 35, 24, F32, F16, F32, 0, 1, -1, -1, 0, BIAS_NONE, 1, 0, 0, 0,
     0},
    {"pfh64-d8-window", "ea_flash_pfh@64", 1, 4, 2, 17, 29, 8, F16, BF16, BF16, 5, 0, 6, 2, 0, BIAS_ONE, 1, 0, 0, 0, 0},
    {"dec64-d40-split", "ea_flash_dec@64 ea_combine", 1, 2, 1, 2, 150, 40, BF16, F16, F32, 0, 1, -1, -1, 0, BIAS_NONE,
     1, 0, 0, 0, 0},
    {"nan-in-k-refused", "ea_finite", 1, 2, 1, 6, 10, 32, F32, BF16, F32, 0, 0, -1, -1, 0, BIAS_NONE, 0, 0, 0, 1, 2},
    {"nan-in-bias-refused", "ea_finite", 1, 2, 1, 6, 10, 32, F16, F16, F32, 0, 0, -1, -1, 0, BIAS_FULL, 0, 0, 0, 1, 4},
};

/* Block masks (64 and 128 query rows per block): prefill tiles whose rows span two query blocks (the
 * union of their lists, a per-row check), with causal, windows, kv_lens, bias; the decode tile with
 * split-KV; tiles skipped by the mask are never fetched. */
static const acase k_bmask[] = {
    {"pf64-bmask64-causal", "ea_flash_pf@64", 2, 3, 1, 130, 200, 64, F32, F16, F32, 0, 1, -1, -1, 0, BIAS_NONE, 1, 1,
     0, 0, 0, 64},
    {"pfh64-bmask128-window", "ea_flash_pfh@64", 1, 4, 2, 150, 260, 48, F16, BF16, F32, 5, 0, 70, -1, 0, BIAS_ONE, 1,
     0, 0, 0, 0, 128},
    {"pf64-bmask64-host", "ea_flash_pf@64", 1, 2, 2, 70, 131, 64, BF16, F32, F16, 0, 0, -1, -1, 0, BIAS_FULL, 1, 0, 1,
     0, 0, 64},
    {"dec64-bmask64-split", "ea_flash_dec@64 ea_combine", 1, 4, 1, 2, 300, 64, F32, F16, F32, 0, 0, -1, -1, 0,
     BIAS_NONE, 1, 0, 0, 0, 0, 64},
};

/* Linformer: the projections (device and host E/F, K, V; a broadcast E and a per-head F; k 70: two
 * work-groups of 64 projected rows, the second partly outside), then the attention over the k rows. */
static const acase k_lowrank[] = {
    {"lr-device", "ea_lr_proj ea_flash_pf@64", 2, 4, 2, 21, 45, 64, F32, F16, F32, 0, 0, -1, -1, 0, BIAS_NONE, 1, 0, 0,
     0, 0, 0, 70},
    {"lr-host-bf16", "ea_lr_proj ea_flash_pfh@64", 1, 2, 1, 17, 70, 40, F16, BF16, F32, 0, 0, -1, -1, 0, BIAS_NONE, 1,
     0, 1, 0, 0, 0, 20},
};

/* Another class's tile table (what that GPU would build), at head dim 64: the three kernels, one
 * with split-KV and the combine. */
static const acase k_class[] = {
    {"pf", "ea_flash_pf@64", 1, 4, 2, 23, 45, 64, F32, F16, F32, 0, 1, -1, -1, 0, BIAS_NONE, 1, 0, 0, 0, 0},
    {"pfh", "ea_flash_pfh@64", 2, 2, 1, 17, 29, 48, F16, BF16, F32, 0, 0, 7, -1, 0, BIAS_ONE, 1, 0, 0, 0, 0},
    {"dec-split", "ea_flash_dec@64 ea_combine", 1, 3, 3, 1, 301, 64, F32, F16, F16, 0, 0, -1, -1, 0, BIAS_NONE, 1, 0,
     0, 0, 0},
};

/* The unfused path: gathers, CLBlast's SGEMM, softmax, store (kv_lens 0: the empty store) */
static const acase k_unfused[] = {
    {"unfused", "ea_gather_q ea_gather_kv ea_softmax ea_store_rows", 2, 2, 1, 7, 19, 48, F16, F32, BF16, 0, 1, -1, -1,
     20.0f, BIAS_FULL, 1, 1, 0, 0, 0},
};

/* Decode scenarios: appends from device and host sources in every dtype (a host source of the cache
 * dtype is written without a kernel), ring wrap-around, decode with and without split-KV. */
static const step k_dec_f16[] = {
    {1, {67, 45}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write ea_finite"},
    {0, {0, 0}, F16, 0, 0, 1, 0, -1, 1, 0, F32, "ea_flash_dec@64 ea_finite"},
    {1, {70, 33}, BF16, 0, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write ea_finite"},
    {1, {5, 0}, F16, 1, 0, 0, 0, 0, 0, 0, F32, ""},
    {1, {3, 7}, F32, 1, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F32, 0, 0, 1, 0, -1, 1, 15.0f, BF16, "ea_flash_dec@64 ea_combine ea_finite"},
    {0, {0, 0}, BF16, 0, 0, 2, 1, 50, 1, 0, F16, "ea_flash_dec@64 ea_combine ea_finite"},
    {0, {0, 0}, F16, 0, 0, 5, 1, -1, 1, 0, F32, "ea_flash_pfh@64 ea_finite"}, /* 15 rows: the prefill tile */
    {2, {0, 0}, F32, 0, 1, 0, 0, 0, 0, 0, F32, "ea_convert"}, /* the F16 cache read back as F32 */
};
static const step k_dec_f32_ring[] = {
    {1, {30, 19}, F16, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write ea_finite"},
    {0, {0, 0}, F32, 0, 0, 2, 1, -1, 1, 0, F32, "ea_flash_dec@64 ea_finite"},
    {1, {9, 13}, BF16, 0, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write ea_finite"},
    {0, {0, 0}, F16, 0, 0, 1, 0, 10, 1, 0, F16, "ea_flash_dec@64 ea_finite"},
};
static const step k_dec_bf16_ring[] = {
    {1, {67, 3}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write ea_finite"},
    {1, {3, 61}, BF16, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write ea_finite"},
    {1, {2, 2}, F16, 1, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F16, 0, 0, 2, 1, -1, 1, 0, F32, "ea_flash_dec@64 ea_finite"},
    {2, {0, 0}, F16, 0, 0, 0, 0, 0, 0, 0, F32, "ea_convert"}, /* the BF16 ring read back as F16 */
};

/* Sinks (3) beside a ring (29): appends straddling the sinks, longer than the ring, from device and host
 * sources (a host source of the cache dtype straight into both parts), decode on the decode and the
 * prefill tile (the held keys: the sinks, then the ring from its oldest slot), kv_read of the ring. */
static const step k_sinks[] = {
    {1, {2, 1}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F32, 0, 0, 1, 0, -1, 1, 0, F32, "ea_flash_dec@64 ea_finite"},
    {1, {40, 70}, F16, 0, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F16, 0, 0, 2, 1, -1, 1, 0, F32, "ea_flash_dec@64 ea_finite"},
    {1, {5, 1}, F16, 1, 0, 0, 0, 0, 0, 0, F32, ""},
    {1, {33, 9}, BF16, 1, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F32, 0, 0, 1, 0, -1, 1, 0, BF16, "ea_flash_dec@64 ea_finite"},
    {0, {0, 0}, F16, 0, 0, 5, 1, -1, 1, 0, F32, "ea_flash_pfh@64 ea_finite"},
    {2, {0, 0}, F32, 0, 0, 0, 0, 0, 0, 0, F32, ""},
};
static const step k_sinks_unfused[] = {
    {1, {2, 1}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {1, {40, 70}, F16, 0, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F32, 0, 0, 2, 1, -1, 1, 0, F32, "ea_gather_q ea_gather_kv ea_softmax ea_store_rows ea_finite"},
};

/* Top-k decode over block summaries of 16 keys: appends from device and host sources (the summaries
 * folded after the rows are stored, blocks continued across appends), a fork (the summaries copied),
 * then a budget that covers every block (dense: checked) and one of 3 blocks (the scores, the rank
 * selection and a decode over the selected tiles; its result is test_sparse's to check). */
static const step k_topk[] = {
    {1, {37, 21}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write ea_kv_summ"},
    {1, {20, 30}, F16, 1, 1, 0, 0, 0, 0, 0, F32, "ea_kv_summ"},
    {0, {0, 0}, F32, 0, 0, 1, 0, -1, 1, 0, F32, "ea_topk_score ea_topk_select ea_flash_dec@64", 400, 0},
    {3, {0, 0}, F32, 0, 0, 0, 0, 0, 0, 0, F32, ""},
    {1, {9, 14}, BF16, 0, 1, 0, 0, 0, 0, 0, F32, "ea_kv_summ"},
    {0, {0, 0}, F16, 0, 0, 1, 0, -1, 1, 0, F32, "ea_topk_score ea_topk_select ea_flash_dec@64", 48, 1},
    {0, {0, 0}, F32, 0, 0, 1, 0, 20, 0, 0, BF16, "ea_topk_select ea_flash_dec@64", 40, 1},
};

/* Paged caches: two sequences appended in one call take their pages in turn (interleaved in the pool),
 * a fork shares sequence 0's pages with sequence 1, then both append (the part-full shared page copied
 * with clEnqueueCopyBuffer), decode on the decode tile (page 16 below its 32 keys) with and without
 * split-KV, on the prefill tile, and kv_read through the pages. */
static const step k_paged16[] = {
    {1, {37, 21}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {1, {20, 30}, BF16, 1, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F16, 0, 0, 1, 0, -1, 1, 0, F32, "ea_flash_dec@64 ea_finite"},
    {3, {0, 0}, F32, 0, 0, 0, 0, 0, 0, 0, F32, ""},
    {1, {9, 14}, F16, 0, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {1, {70, 3}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F32, 0, 0, 1, 0, -1, 1, 0, BF16, "ea_flash_dec@64 ea_combine ea_finite"},
    {0, {0, 0}, F16, 0, 0, 5, 1, 40, 1, 0, F32, "ea_flash_pfh@64 ea_finite"},
    {2, {0, 0}, F32, 0, 1, 0, 0, 0, 0, 0, F32, "ea_convert"},
};
/* NVIDIA's tiles (64 keys a decode tile, no register prefetch), page 64, a ring of 100 slots whose
 * second page is part used: writes and reads wrap inside it. */
static const step k_paged64_ring[] = {
    {1, {67, 45}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {1, {50, 40}, BF16, 1, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F32, 0, 0, 2, 1, -1, 1, 0, F16, "ea_flash_dec@64 ea_finite"},
    {3, {0, 0}, F32, 0, 0, 0, 0, 0, 0, 0, F32, ""},
    {1, {30, 11}, F16, 0, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, BF16, 0, 0, 1, 0, 30, 1, 12.0f, F32, "ea_flash_dec@64 ea_finite"},
    {0, {0, 0}, F32, 0, 0, 4, 1, -1, 1, 0, F32, "ea_flash_pf@64 ea_finite"},
    {2, {0, 0}, BF16, 0, 0, 0, 0, 0, 0, 0, F32, "ea_convert"},
};
/* Odd tiles (6 work-items fill a page list of 8 keys), every sweep option */
static const step k_paged_sweep[] = {
    {1, {37, 21}, F16, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {1, {20, 30}, F32, 0, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F32, 0, 0, 1, 0, -1, 1, 0, F32, "ea_flash_dec@64 ea_finite"},
    {3, {0, 0}, F32, 0, 0, 0, 0, 0, 0, 0, F32, ""},
    {1, {4, 13}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F16, 0, 0, 3, 1, -1, 1, 0, F16, "ea_flash_pfh@64 ea_finite"},
    {0, {0, 0}, F32, 0, 0, 2, 1, -1, 1, 0, F32, "ea_flash_pf@64 ea_finite"},
};
/* The unfused path's gather through the pages */
static const step k_paged_unfused[] = {
    {1, {37, 21}, F32, 0, 0, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {3, {0, 0}, F32, 0, 0, 0, 0, 0, 0, 0, F32, ""},
    {1, {20, 30}, F16, 0, 1, 0, 0, 0, 0, 0, F32, "ea_kv_write"},
    {0, {0, 0}, F32, 0, 0, 2, 1, -1, 1, 0, F32, "ea_gather_q ea_gather_kv ea_softmax ea_store_rows ea_finite"},
};

static void run_attention_cases(const ctxdef *cd, const acase *cases, int n)
{
    edgeattn_context *ctx = NULL;
    bool opened = false;
    for (int i = 0; i < n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s/%s", cd->name, cases[i].name);
        if (!selected(name))
            continue;
        if (!opened) {
            opened = true;
            ctx = ctx_open(cd);
        }
        case_begin(name, cases[i].expect);
        const int rc = ctx ? run_attention(ctx, &cases[i]) : failf("%s", g_ctx_why);
        case_end(name, rc);
    }
    edgeattn_destroy(ctx);
}

static void step_name(char *name, size_t len, const ctxdef *cd, const step *st, int i)
{
    if (st->append == 3)
        snprintf(name, len, "%s/%d-fork", cd->name, i);
    else if (st->append == 2)
        snprintf(name, len, "%s/%d-read-%s", cd->name, i, dname(st->dt));
    else if (st->append)
        snprintf(name, len, "%s/%d-append-%s%s", cd->name, i, dname(st->dt), st->host ? "-host" : "");
    else
        snprintf(name, len, "%s/%d-decode-nq%d-q%s", cd->name, i, st->nq, dname(st->dt));
}

/* The steps build on each other: all of them run when one is selected. */
static void run_decode_scenario(const ctxdef *cd, const step *steps, int n)
{
    char name[128];
    int any = 0;
    for (int i = 0; i < n && !any; i++) {
        step_name(name, sizeof name, cd, &steps[i], i);
        any = selected(name);
    }
    if (!any)
        return;
    kvstate *s = calloc(1, sizeof *s);
    edgeattn_context *ctx = ctx_open(cd);
    for (int i = 0; i < n; i++) {
        const step *st = &steps[i];
        step_name(name, sizeof name, cd, st, i);
        case_begin(name, st->expect);
        int rc = -1;
        if (!s)
            failf("out of memory");
        else if (!ctx)
            failf("%s", g_ctx_why);
        else
            rc = st->append == 3   ? run_fork(ctx, s)
                 : st->append == 2 ? run_read(ctx, s, cd, st)
                 : st->append ? run_append(ctx, s, cd, st)
                              : run_decode(ctx, s, cd, st);
        case_end(name, rc);
        if (rc)
            break; /* the cache no longer matches the shadow copy */
    }
    edgeattn_destroy(ctx);
    free(s);
}

static void run_ceilings(const ctxdef *cd)
{
    const char *name = "cpu/ceilings";
    if (!selected(name))
        return;
    edgeattn_context *ctx = ctx_open(cd);
    case_begin(name, "ea_fma_peak");
    int rc = -1;
    edgeattn_ceilings c;
    if (!ctx) {
        failf("%s", g_ctx_why);
    } else {
        rc = edgeattn_measure_ceilings(ctx, &c) == EDGEATTN_OK ? 0 : failf("%s", edgeattn_message_of(ctx));
        if (!rc)
            snprintf(g_why, sizeof g_why, "%s", c.compute_what);
    }
    case_end(name, rc);
    edgeattn_destroy(ctx);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s CACHE_DIR [SUBSTRING,...]\n", argv[0]);
        return 2;
    }
    g_cache_dir = argv[1];
    g_filter = argc > 2 ? argv[2] : NULL;
    cl_platform_id plats[8], plat = NULL;
    cl_uint np = 0;
    if (clGetPlatformIDs(8, plats, &np) != CL_SUCCESS)
        np = 0;
    for (cl_uint i = 0; i < np && i < 8; i++) {
        char pname[128] = "";
        clGetPlatformInfo(plats[i], CL_PLATFORM_NAME, sizeof pname - 1, pname, NULL);
        if (strstr(pname, "Oclgrind"))
            plat = plats[i];
    }
    cl_device_id dev;
    cl_int err = CL_DEVICE_NOT_FOUND;
    if (!plat || clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 1, &dev, NULL) != CL_SUCCESS) {
        fprintf(stderr, "oclgrind-check: no Oclgrind platform (is OCL_ICD_VENDORS set to its ICD?)\n");
        return 2;
    }
    const cl_context_properties props[3] = {CL_CONTEXT_PLATFORM, (cl_context_properties)plat, 0};
    g_cl = clCreateContext(props, 1, &dev, NULL, NULL, &err);
    if (err == CL_SUCCESS)
        g_queue = clCreateCommandQueue(g_cl, dev, 0, &err);
    if (err != CL_SUCCESS) {
        fprintf(stderr, "oclgrind-check: context/queue: error %d\n", (int)err);
        return 2;
    }

    /* the simulator's device counts as a CPU: PoCL's tile table */
    const ctxdef cpu = {"cpu", {{NULL, NULL}}, 256, 0, 0, F16, 0, 0};
    run_attention_cases(&cpu, k_main, (int)(sizeof k_main / sizeof k_main[0]));
    run_ceilings(&cpu);
    const ctxdef lowrank = {"lowrank", {{NULL, NULL}}, 64, 0, 0, F16, 0, 0, 0, 0, 0, 80};
    run_attention_cases(&lowrank, k_lowrank, (int)(sizeof k_lowrank / sizeof k_lowrank[0]));
    const ctxdef classes[] = {
        {"nvidia", {{"EDGEATTN_OPENCL_CLASS", "nvidia"}, {"EDGEATTN_OPENCL_LOCAL_MEM", "49152"}}, 64, 0, 0, F16, 0, 0},
        {"mali", {{"EDGEATTN_OPENCL_CLASS", "mali"}, {"EDGEATTN_OPENCL_LOCAL_MEM", "32768"}}, 64, 0, 0, F16, 0, 0},
        {"adreno", {{"EDGEATTN_OPENCL_CLASS", "adreno"}, {"EDGEATTN_OPENCL_LOCAL_MEM", "32768"}}, 64, 0, 0, F16, 0, 0},
        {"other", {{"EDGEATTN_OPENCL_CLASS", "other"}, {"EDGEATTN_OPENCL_LOCAL_MEM", "32768"}}, 64, 0, 0, F16, 0, 0},
        /* odd tiles: odd row counts (no lane pairs), 2 or 3 score columns (the scalar row reduce), a tile
         * that the work-items do not split evenly, and every sweep option */
        {"sweep",
         {{"EDGEATTN_OPENCL_TILES", "pf=24x8x8x4x8,pfh=20x4x8x2x4,dec=3x1x8x4x1"},
          {"EDGEATTN_OPENCL_OPTIONS",
           "-DEA_PREFETCH=1 -DEA_QK_CONST -DEA_NATIVE_EXP -DEA_NO_REQD_WG -DEA_UNROLL_QK=3 -DEA_UNROLL_PV=1"}},
         64, 0, 0, F16, 0, 0},
        /* the batched fetch (-DEA_BATCH_LOADS, without the register prefetch) on the same odd tiles */
        {"batch",
         {{"EDGEATTN_OPENCL_TILES", "pf=24x8x8x4x8,pfh=20x4x8x2x4,dec=3x1x8x4x1"},
          {"EDGEATTN_OPENCL_OPTIONS", "-DEA_BATCH_LOADS -DEA_PREFETCH=0"}},
         64, 0, 0, F16, 0, 0},
    };
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        run_attention_cases(&classes[i], k_class, (int)(sizeof k_class / sizeof k_class[0]));
    const ctxdef unfused = {"unfused", {{"EDGEATTN_OPENCL_PATH", "unfused"}}, 64, 0, 0, F16, 0, 0};
    run_attention_cases(&unfused, k_unfused, 1);
    const ctxdef bm_def = {"bmask", {{NULL, NULL}}, 64, 0, 0, F16, 0, 0, 0, 160};
    const ctxdef bm_nv = {"bmask-nvidia", {{"EDGEATTN_OPENCL_CLASS", "nvidia"}, {"EDGEATTN_OPENCL_LOCAL_MEM", "49152"}},
                          64, 0, 0, F16, 0, 0, 0, 160};
    const ctxdef bm_paged = {"bmask-paged16", {{NULL, NULL}}, 64, 1, 0, F16, 16, 0, 0, 160}; /* attention through Pg */
    const ctxdef bm_sweep = {"bmask-sweep",
                             {{"EDGEATTN_OPENCL_TILES", "pf=24x8x8x4x8,pfh=20x4x8x2x4,dec=3x1x8x4x1"},
                              {"EDGEATTN_OPENCL_OPTIONS", "-DEA_PREFETCH=1 -DEA_QK_CONST -DEA_UNROLL_QK=3 -DEA_UNROLL_PV=1"}},
                             64, 1, 0, BF16, 16, 12, 0, 160};
    const int nbm = (int)(sizeof k_bmask / sizeof k_bmask[0]);
    run_attention_cases(&bm_def, k_bmask, nbm);
    run_attention_cases(&bm_nv, k_bmask, nbm);
    run_attention_cases(&bm_paged, k_bmask, nbm);
    run_attention_cases(&bm_sweep, k_bmask, 2);
    /* (the unfused path's mask is checked by tests/test_sparse.c: here a second CLBlast context aborted
     * in Oclgrind's instruction counter, "double free or corruption", and passed without the counter) */
    const ctxdef dec_f16 = {"kv-f16", {{NULL, NULL}}, 64, 1, 0, F16, 0, 0};
    const ctxdef dec_f32 = {"kv-f32-ring24", {{NULL, NULL}}, 64, 1, 24, F32, 0, 0};
    const ctxdef dec_bf16 = {"kv-bf16-ring50", {{NULL, NULL}}, 64, 1, 50, BF16, 0, 0};
    run_decode_scenario(&dec_f16, k_dec_f16, (int)(sizeof k_dec_f16 / sizeof k_dec_f16[0]));
    run_decode_scenario(&dec_f32, k_dec_f32_ring, (int)(sizeof k_dec_f32_ring / sizeof k_dec_f32_ring[0]));
    run_decode_scenario(&dec_bf16, k_dec_bf16_ring, (int)(sizeof k_dec_bf16_ring / sizeof k_dec_bf16_ring[0]));
    const ctxdef dec_f32_batch = {"kv-f32-ring24-batch", {{"EDGEATTN_OPENCL_OPTIONS", "-DEA_BATCH_LOADS -DEA_PREFETCH=0"}},
                                  64, 1, 24, F32, 0, 0};
    run_decode_scenario(&dec_f32_batch, k_dec_f32_ring, (int)(sizeof k_dec_f32_ring / sizeof k_dec_f32_ring[0]));
    const ctxdef paged16 = {"kv-paged16-f16", {{NULL, NULL}}, 64, 1, 0, F16, 16, 0};
    const ctxdef paged64 = {"kv-paged64-f32-ring100",
                            {{"EDGEATTN_OPENCL_CLASS", "nvidia"}, {"EDGEATTN_OPENCL_LOCAL_MEM", "49152"}},
                            64, 1, 100, F32, 64, 0};
    const ctxdef paged_sweep = {"kv-paged16-sweep",
                                {{"EDGEATTN_OPENCL_TILES", "pf=24x8x8x4x8,pfh=20x4x8x2x4,dec=3x1x8x4x1"},
                                 {"EDGEATTN_OPENCL_OPTIONS", "-DEA_PREFETCH=1 -DEA_QK_CONST -DEA_UNROLL_QK=3 -DEA_UNROLL_PV=1"}},
                                64, 1, 0, BF16, 16, 12};
    const ctxdef paged_unfused = {"kv-paged32-unfused", {{"EDGEATTN_OPENCL_PATH", "unfused"}}, 64, 1, 0, F16, 32, 0};
    run_decode_scenario(&paged16, k_paged16, (int)(sizeof k_paged16 / sizeof k_paged16[0]));
    run_decode_scenario(&paged64, k_paged64_ring, (int)(sizeof k_paged64_ring / sizeof k_paged64_ring[0]));
    run_decode_scenario(&paged_sweep, k_paged_sweep, (int)(sizeof k_paged_sweep / sizeof k_paged_sweep[0]));
    run_decode_scenario(&paged_unfused, k_paged_unfused, (int)(sizeof k_paged_unfused / sizeof k_paged_unfused[0]));
    const ctxdef paged64_batch = {"kv-paged64-f32-ring100-batch",
                                  {{"EDGEATTN_OPENCL_CLASS", "nvidia"},
                                   {"EDGEATTN_OPENCL_LOCAL_MEM", "49152"},
                                   {"EDGEATTN_OPENCL_OPTIONS", "-DEA_BATCH_LOADS"}},
                                  64, 1, 100, F32, 64, 0};
    const ctxdef paged_batch = {"kv-paged16-batch",
                                {{"EDGEATTN_OPENCL_TILES", "pf=24x8x8x4x8,pfh=20x4x8x2x4,dec=3x1x8x4x1"},
                                 {"EDGEATTN_OPENCL_OPTIONS", "-DEA_BATCH_LOADS -DEA_PREFETCH=0"}},
                                64, 1, 0, BF16, 16, 12};
    const ctxdef sinks = {"kv-f16-sinks3-ring29", {{NULL, NULL}}, 64, 1, 29, F16, 0, 0, 3};
    const ctxdef sinks_paged = {"kv-paged16-f32-sinks3-ring29", {{NULL, NULL}}, 64, 1, 29, F32, 16, 0, 3};
    const ctxdef sinks_unfused = {"kv-sinks3-ring29-unfused", {{"EDGEATTN_OPENCL_PATH", "unfused"}}, 64, 1, 29, F16, 0,
                                  0, 3};
    run_decode_scenario(&sinks, k_sinks, (int)(sizeof k_sinks / sizeof k_sinks[0]));
    const ctxdef topk = {"kv-f16-topk16", {{NULL, NULL}}, 64, 1, 0, F16, 0, 0, 0, 0, 16};
    const ctxdef topk_nv = {"kv-f32-topk16-nvidia",
                            {{"EDGEATTN_OPENCL_CLASS", "nvidia"}, {"EDGEATTN_OPENCL_LOCAL_MEM", "49152"}},
                            64, 1, 0, F32, 0, 0, 0, 0, 16};
    run_decode_scenario(&topk, k_topk, (int)(sizeof k_topk / sizeof k_topk[0]));
    run_decode_scenario(&topk_nv, k_topk, (int)(sizeof k_topk / sizeof k_topk[0]));
    run_decode_scenario(&sinks_paged, k_sinks, (int)(sizeof k_sinks / sizeof k_sinks[0]));
    run_decode_scenario(&sinks_unfused, k_sinks_unfused, 3);
    run_decode_scenario(&paged64_batch, k_paged64_ring, (int)(sizeof k_paged64_ring / sizeof k_paged64_ring[0]));
    run_decode_scenario(&paged_batch, k_paged_sweep, (int)(sizeof k_paged_sweep / sizeof k_paged_sweep[0]));

    printf("@@done %d\n", g_failed);
    fprintf(stderr, "@@done\n"); /* what follows (exit) belongs to no case */
    fflush(stderr);
    clReleaseCommandQueue(g_queue);
    clReleaseContext(g_cl);
    if (!g_ran) {
        fprintf(stderr, "oclgrind-check: no case matches '%s'\n", g_filter ? g_filter : "");
        fflush(NULL);
        _exit(2);
    }
    /* Every object of ours is released and every report is out. _exit skips the process teardown, where
     * Oclgrind's instruction counter (whose counts came out with each launch) sometimes corrupts its
     * own heap ("corrupted double-linked list" from glibc, seen with one simulator thread too). */
    fflush(NULL);
    _exit(g_failed ? 1 : 0);
}
