/*
 * Helpers shared by the cmocka suites: a seeded RNG, element access in any storage dtype, tensors
 * with padding and canaries, an attention case runner that compares a context against the double
 * reference (core/reference.c), and the list of CPU tiers this machine can run.
 *
 * Include after <stdarg.h>, <stddef.h>, <setjmp.h> and <cmocka.h> (cmocka's own rule); this header
 * includes them itself in that order.
 */
#ifndef EDGEATTN_TESTS_TEST_COMMON_H
#define EDGEATTN_TESTS_TEST_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "edgeattn/edgeattn.h"

/* ---------------------------------------------------------------- seed and RNG */

/* The suite's seed: EDGEATTN_TEST_SEED if set, else time and pid. Printed once on first use. */
uint64_t tc_seed(void);
/* EDGEATTN_TEST_LONG=1: heavier sweeps. */
bool tc_long(void);

typedef struct tc_rng {
    uint64_t s;
} tc_rng;

/* A stream derived from (seed, stream id): the same pair always gives the same numbers. */
void tc_rng_init(tc_rng *r, uint64_t seed, uint64_t stream);
uint64_t tc_next(tc_rng *r);
double tc_uniform(tc_rng *r, double lo, double hi);
int tc_randint(tc_rng *r, int lo, int hi); /* inclusive */
#define TC_PICK(r, arr) ((arr)[tc_randint((r), 0, (int)(sizeof(arr) / sizeof((arr)[0])) - 1)])

/* ---------------------------------------------------------------- dtypes and elements */

size_t tc_dtype_size(edgeattn_dtype dt);
const char *tc_dtype_name(edgeattn_dtype dt);
/* x rounded to dt's storage (the value a tensor of that dtype holds after storing x). */
float tc_round(edgeattn_dtype dt, float x);
/* Element i (in elements from base) as float / store float (rounding to nearest even). */
float tc_load(const void *base, edgeattn_dtype dt, size_t i);
void tc_store(void *base, edgeattn_dtype dt, size_t i, float x);
/* Offset in elements of [b,h,n,d] in a tensor. */
size_t tc_off(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d);
float tc_get(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d);
void tc_set(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d, float x);

/* ---------------------------------------------------------------- tensors with padding */

enum { TC_BHSD = 0, TC_BSHD = 1 };

/* A view into a larger allocation: `front` elements before the view, `row_pad` elements after each
 * row of D, `back` elements after the view. Everything outside the view holds a NaN canary. */
typedef struct tc_tensor {
    void *alloc;
    size_t alloc_elems;
    size_t front;
    unsigned char *in_view; /* [alloc_elems] 1 where the element belongs to the view */
    edgeattn_tensor t;
} tc_tensor;

void tc_tensor_alloc(tc_tensor *x, edgeattn_dtype dt, int64_t b, int64_t h, int64_t n, int64_t d, int layout,
                     int row_pad, int front, int back);
void tc_tensor_free(tc_tensor *x);
/* Every element of the allocation (view and outside) = the output canary. */
void tc_fill_canary(tc_tensor *x);
/* View elements uniform in [lo, hi] rounded to the dtype; outside the view a (different) NaN poison,
 * so a kernel that reads outside its view produces NaN. */
void tc_fill_random(tc_tensor *x, tc_rng *r, double lo, double hi);
/* Checks an output after a successful call: every view element written (not the canary) and
 * finite, every element outside the view still the canary. Returns false with a reason in why. */
bool tc_check_written(const tc_tensor *x, const char *name, char *why, size_t whylen);
/* True if no byte of the allocation changed since `snapshot` (a copy of alloc). */
bool tc_unchanged(const tc_tensor *x, const void *snapshot);
void *tc_snapshot(const tc_tensor *x); /* malloc'd copy; free() it */

/* ---------------------------------------------------------------- attention cases */

#define TC_MAX_B 8

enum { TC_BIAS_NONE = 0, TC_BIAS_FULL, TC_BIAS_BCAST_B, TC_BIAS_BCAST_H, TC_BIAS_BCAST_BH };
/* Special bias content (numerics): some rows entirely -inf, some entries -inf, some rows -1e30. */
enum { TC_BIAS_RANDOM = 0, TC_BIAS_NEGINF_ROWS = 1, TC_BIAS_NEGINF_SOME = 2, TC_BIAS_HUGE_NEG_ROWS = 3 };

typedef struct tc_attn_case {
    int B, Hq, Hkv, Nq, Nkv, D;
    edgeattn_dtype qdt, kvdt, odt;
    int qlayout, kvlayout, olayout; /* TC_BHSD / TC_BSHD */
    int pad;                        /* row padding (elements) and front/back padding of every view */
    int causal, wl, wr;             /* windows: -1 unlimited */
    int use_kv_lens;
    int32_t kv_lens[TC_MAX_B];
    int bias_mode, bias_content;
    float scale, softcap;
    int lse;
    double in_scale; /* Q, K, V uniform in [-in_scale, in_scale]; 0 means 1 */
} tc_attn_case;

/* A case with defaults: F32 everywhere, BHSD, no masks, in_scale 1. */
tc_attn_case tc_case(int B, int Hq, int Hkv, int Nq, int Nkv, int D);
void tc_case_describe(const tc_attn_case *c, char *buf, size_t len);
/* Tolerance on the metric below for the lowest precision among the given dtypes:
 * F32 1e-5, F16 2e-3, BF16 1e-2. */
double tc_tolerance(edgeattn_dtype a, edgeattn_dtype b, edgeattn_dtype c);

/* Inputs and reference of one case. */
typedef struct tc_attn_data {
    tc_attn_case c;
    tc_tensor q, k, v, bias, out, lse;
    edgeattn_tensor bias_t, lse_t;
    edgeattn_params params;
    double *ref;     /* [B][Hq][Nq][D] */
    double *ref_lse; /* [B][Hq][Nq] */
    double ref_max;  /* max |ref| */
} tc_attn_data;

/* Builds random inputs from (seed, stream) and computes the reference. */
void tc_attn_prepare(tc_attn_data *d, const tc_attn_case *c, uint64_t seed, uint64_t stream);
void tc_attn_free(tc_attn_data *d);

/* Result of comparing one run with the reference.
 * err: max_i |out_i - ref_i| / max_i |ref_i| over the whole case (absolute when max|ref| == 0);
 * lse_err: max |lse - ref_lse| / max(1, |ref_lse|) over rows with a finite reference lse. */
typedef struct tc_result {
    edgeattn_status status;
    double err, lse_err;
    bool ok;
    char why[512];
} tc_result;

/* Canary-fills out (and lse), runs edgeattn_attention on ctx, checks canaries, exact zeros and
 * -inf lse for fully masked rows, finiteness, and err/lse_err <= tol. */
tc_result tc_attn_run(edgeattn_context *ctx, tc_attn_data *d, double tol);

/* max over b, h, i, j of |scale * q[b,h,i,:] . k[b,h/group,j,:]| (scale 0: 1/sqrt(D)), masks ignored. */
double tc_max_score(const edgeattn_tensor *q, const edgeattn_tensor *k, double scale);
/* FP32 tolerance for scores of size smax: each rounding on the way to a score s (q * scale, the dot
 * product, s - max) costs about |s| * 2^-24, and the softmax turns that into the same relative error
 * of the weights: max(1e-5, 4 * 2^-24 * smax). */
double tc_tolerance_f32_scores(double smax);

/* Compares an already written output/lse with a dense double reference (used by decode tests). */
void tc_compare(tc_result *res, const tc_tensor *out, const tc_tensor *lse, const double *ref,
                const double *ref_lse, int64_t B, int64_t H, int64_t N, int64_t D, double tol);

/* One edgeattn_decode on ctx (layer 0, every sequence) into canary-filled out (and lse, when not NULL:
 * p->lse points at it for the call and is restored), then tc_compare against ref/ref_lse; a failed
 * call gives res->ok false with its status and message in res->why. */
void tc_decode_compare(tc_result *res, edgeattn_context *ctx, const edgeattn_tensor *q, tc_tensor *out, tc_tensor *lse,
                       edgeattn_params *p, const double *ref, const double *ref_lse, int64_t B, int64_t H, int64_t N,
                       int64_t D, double tol);

/* ---------------------------------------------------------------- tiers and contexts */

typedef struct tc_tier {
    char name[32];     /* expected edgeattn_backend_info.tier (or the GPU backend's name) */
    uint32_t disable;  /* config.cpu_disable_mask */
    edgeattn_backend backend;
} tc_tier;

/* CPU tiers this machine (and this build) can run, lowest first: scalar, then avx2, avx512 or neon,
 * neon-fp16. Returns the count. */
int tc_cpu_tiers(tc_tier *tiers, int max);

/* Creates a context or fails the test with the library's message. EDGEATTN_TEST_BACKEND=cpu|cuda|opencl
 * turns a config's AUTO into that backend (how tests/opencl re-runs the shared suites). */
edgeattn_context *tc_create(const edgeattn_config *cfg);
/* Creates a context and checks that its backend info names tier->name. */
edgeattn_context *tc_create_tier(const edgeattn_config *cfg, const tc_tier *tier);
/* true if ctx runs tier (CPU: info.tier and cpu_features_used; GPU: backend name); else why. */
bool tc_tier_matches(edgeattn_context *ctx, const tc_tier *tier, char *why, size_t whylen);

/* Clears EDGEATTN_BACKEND / EDGEATTN_CPU_MASK / EDGEATTN_CPU_TILES so a suite controls them. */
void tc_clear_env(void);

#endif
