/*
 * The CPU micro-kernel contract (see docs/KERNELS.md for the long form).
 *
 * The portable driver (cpu_simd/attn_cpu.c) does tiling, masks, threads and the online-softmax
 * bookkeeping; it calls only the functions in struct ea_cpu_kernels. Every tier (scalar, AVX2,
 * AVX-512, NEON, NEON-FP16) fills the table through an init ladder run once at create, and every
 * entry of every tier is checked against the scalar version and the double reference by the tests.
 *
 * Common rules for all kernels:
 *  - `dim` (head dim: Q·K's for qk, qk_rows, pack_kt; V's for pv, pv_rows, pack_v) is a multiple of 16,
 *    16..EA_CPU_MAX_DIM (576), for the table of ea_cpu_kernels_init; a multiple of 8, 8..576, for the
 *    table of ea_cpu_kernels_init_dim8 (the driver uses it when either head dim % 16 == 8). Kernels over
 *    quantised rows (Q8, Q4) take up to 256.
 *    `mr` is 1..EA_MR. Leading dimensions (ld*) are in elements and >= the row length used.
 *  - Packed buffers (q, kt, v32, s, o) are float, 64-byte aligned at row 0, and their leading
 *    dimensions are multiples of 16, so full-width vector loads at any multiple-of-16 column are safe.
 *    Exception, for the dim8 table only: the leading dimensions of q, o and v32 (the head dim in the
 *    driver) may be odd multiples of 8, so those rows are only 32-byte aligned.
 *  - Unpacked K/V rows (the *_rows kernels and the packers) have no alignment guarantee; they are
 *    read only inside [0, n) x [0, dim).
 *  - Kernels never allocate, never touch memory outside the ranges stated, and keep statistics in
 *    FP32. Accumulation order may differ from the scalar version (tests allow for rounding).
 */
#ifndef EDGEATTN_CPU_UKERNEL_H
#define EDGEATTN_CPU_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "edgeattn/edgeattn.h"

#define EA_MR 8         /* rows per micro-block handed to a kernel */
#define EA_KB_MAX 512   /* most keys in one tile (nb) */
#define EA_CPU_MAX_DIM 576 /* largest head dim (Q·K or V) a kernel is handed */

/* s[r*lds + j] = sum_{d<dim} q[r*ldq + d] * kt[d*ldkt + j]        for r < mr, j < nb
 * nb is a multiple of 16, <= EA_KB_MAX. q, kt, s packed f32. */
#define EA_QK_PACKED_FN(name)                                                                       \
    void name(int mr, int nb, int dim, const float *restrict q, ptrdiff_t ldq,                      \
              const float *restrict kt, ptrdiff_t ldkt, float *restrict s, ptrdiff_t lds)
typedef EA_QK_PACKED_FN((*ea_qk_packed_fn));

/* o[r*ldo + d] = alpha[r] * o[r*ldo + d] + sum_{j<nb} p[r*ldp + j] * v[j*ldv + d]  for r < mr, d < dim
 * nb is a multiple of 16, <= EA_KB_MAX. p, v, o packed f32. */
#define EA_PV_PACKED_FN(name)                                                                       \
    void name(int mr, int nb, int dim, const float *restrict p, ptrdiff_t ldp,                      \
              const float *restrict v, ptrdiff_t ldv, const float *restrict alpha,                   \
              float *restrict o, ptrdiff_t ldo)
typedef EA_PV_PACKED_FN((*ea_pv_packed_fn));

/* Online-softmax step on a tile of scores s (mr rows, nb columns, nb a multiple of 16; masked
 * entries hold -INFINITY, finite or -inf values only). For each row r:
 *   mx = max(m[r], max_j s[r][j])
 *   if mx == -inf:  s[r][j] = 0 for all j; alpha[r] = 1; m[r], l[r] unchanged.
 *   else:           alpha[r] = (m[r] == -inf) ? 0 : exp(m[r] - mx);
 *                   s[r][j] = exp(s[r][j] - mx)      (exactly 0 where s[r][j] == -inf)
 *                   l[r] = l[r] * alpha[r] + sum_j s[r][j];  m[r] = mx.
 * exp must be accurate to a few ulp over [-88, 0] and flush to 0 below that (no NaN, no denormal
 * garbage). */
#define EA_SOFTMAX_FN(name)                                                                         \
    void name(int mr, int nb, float *restrict s, ptrdiff_t lds, float *restrict m,                  \
              float *restrict l, float *restrict alpha)
typedef EA_SOFTMAX_FN((*ea_softmax_fn));

/* Transposing pack of K rows: kt[d*ldkt + j] = (float)k[j*ldk + d] for j < n, d < dim;
 * kt[d*ldkt + j] = 0 for n <= j < nb_pad. k is f32, f16 or bf16 (one function per dtype).
 * 1 <= n <= nb_pad <= EA_KB_MAX, nb_pad a multiple of 16. */
#define EA_PACK_KT_FN(name)                                                                         \
    void name(int n, int nb_pad, int dim, const void *restrict k, ptrdiff_t ldk,                    \
              float *restrict kt, ptrdiff_t ldkt)
typedef EA_PACK_KT_FN((*ea_pack_kt_fn));

/* Pack of V rows: v32[j*ldo + d] = (float)v[j*ldv + d] for j < n, d < dim; rows n..nb_pad-1 = 0. */
#define EA_PACK_V_FN(name)                                                                          \
    void name(int n, int nb_pad, int dim, const void *restrict v, ptrdiff_t ldv,                    \
              float *restrict v32, ptrdiff_t ldo)
typedef EA_PACK_V_FN((*ea_pack_v_fn));

/* Unpacked QK for decode / few query rows: s[r*lds + j] = sum_d q[r*ldq + d] * K[j*ldk + d]
 * for r < mr, j < n (1 <= n <= EA_KB_MAX, any n), K in its own dtype (one function per dtype).
 * q and s are packed f32. */
#define EA_QK_ROWS_FN(name)                                                                         \
    void name(int mr, int n, int dim, const float *restrict q, ptrdiff_t ldq,                       \
              const void *restrict k, ptrdiff_t ldk, float *restrict s, ptrdiff_t lds)
typedef EA_QK_ROWS_FN((*ea_qk_rows_fn));

/* Unpacked PV: o[r*ldo + d] = alpha[r]*o[r*ldo + d] + sum_{j<n} p[r*ldp + j] * V[j*ldv + d]
 * for r < mr, d < dim, any 1 <= n <= EA_KB_MAX, V in its own dtype. */
#define EA_PV_ROWS_FN(name)                                                                         \
    void name(int mr, int n, int dim, const float *restrict p, ptrdiff_t ldp,                       \
              const void *restrict v, ptrdiff_t ldv, const float *restrict alpha,                    \
              float *restrict o, ptrdiff_t ldo)
typedef EA_PV_ROWS_FN((*ea_pv_rows_fn));

typedef struct ea_cpu_kernels {
    const char *tier; /* "scalar", "avx2", "avx512", "neon", "neon-fp16" */
    ea_qk_packed_fn qk;
    ea_pv_packed_fn pv;
    ea_softmax_fn softmax;
    /* per storage dtype (F32, F16, BF16, and the normalised rows x̂ of Q8, Q4: core/ea_core.h) */
    ea_pack_kt_fn pack_kt[EDGEATTN_DTYPE_COUNT_];
    ea_pack_v_fn pack_v[EDGEATTN_DTYPE_COUNT_];
    ea_qk_rows_fn qk_rows[EDGEATTN_DTYPE_COUNT_];
    ea_pv_rows_fn pv_rows[EDGEATTN_DTYPE_COUNT_];
} ea_cpu_kernels;

/* The init ladder (cpu_simd/dispatch.c): scalar first, then each tier the flags allow overwrites
 * the entries it implements. flags = detected features & ~disable mask. */
void ea_cpu_kernels_init(ea_cpu_kernels *k, uint32_t flags);
/* The same ladder for head dims that are any multiple of 8 (see the rules above): equal to
 * ea_cpu_kernels_init's table on tiers whose kernels step the head dim by 8 or less (scalar, AVX2,
 * NEON); on AVX-512 the AVX2 entries replace those that step it by 16. Same tier name. */
void ea_cpu_kernels_init_dim8(ea_cpu_kernels *k, uint32_t flags);

/* Per-tier initialisers; each overwrites only the entries it provides. */
void ea_cpu_kernels_init_scalar(ea_cpu_kernels *k);
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
void ea_cpu_kernels_init_avx2(ea_cpu_kernels *k);
void ea_cpu_kernels_init_avx512(ea_cpu_kernels *k);
#endif
#if defined(__aarch64__)
void ea_cpu_kernels_init_neon(ea_cpu_kernels *k);
void ea_cpu_kernels_init_neon_fp16(ea_cpu_kernels *k);
#endif

#endif /* EDGEATTN_CPU_UKERNEL_H */
