/*
 * Unpacked QK with f16 K on NEON-FP16 (built with -march=armv8.2-a+fp16+fp16fml; run only where
 * getauxval(AT_HWCAP) has HWCAP_ASIMDFHM): s[r][j] = sum_d q[r][d] * K[j][d], FP32 accumulation.
 *
 * What is done in FP16, and why it is exact: FMLAL / FMLAL2 (vfmlalq_low_f16 / vfmlalq_high_f16)
 * multiply fp16 x fp16 and add the product to an FP32 accumulator without rounding the product.
 * A product of two fp16 values (11-bit significands) has at most 22 significant bits and an
 * exponent well inside FP32's range, so every product is exactly the FP32 product the NEON tier
 * forms after widening both operands; the sums are FP32 as everywhere else. Only the order of
 * additions differs (the contract allows that). Gain: K is used as loaded (no FCVTL), and one
 * instruction covers 4 products of half-width data: half the instructions of the widening path
 * at mr = 1, where decode is closest to being compute-bound.
 *
 * The catch: q is f32 (already multiplied by the softmax scale). Rounding it to fp16 would lose
 * ~3 decimal digits in every score, a logit error that exp() amplifies (with |q|,|k| ~ 100 the
 * scores are ~1e4 and the error is whole units). So q is converted to fp16 once per call, with a
 * round-trip check; only if every q value of the call is exactly representable (Q stored as f16
 * and a power-of-two scale such as 1/8 for head dim 64, or a driver that scales after QK) does the
 * FMLAL path run. Otherwise the call goes to the NEON widening kernel. Either way the result is
 * what FP32 arithmetic on the stored values gives.
 *
 * Blocking is that of qk-rows-neon-4x4.c: keys outer in blocks of 4 (each K row read from memory
 * once for the whole row group), 4 rows x 4 keys = 16 FP32 accumulators, per 8 along d four 128-bit
 * K loads and one fp16 q vector per row, 32 FMLAL/FMLAL2; one pairwise-add reduction per
 * (row, 4 keys) at the end. With 1 or 2 rows the FMLAL and FMLAL2 halves use separate accumulators.
 */
#include "cpu_simd/arm/neon-common.h"

#if defined(EA_HAVE_FP16FML)

static EA_ALWAYS_INLINE void qk_tile_fmlal(const int RB, const int KB, int dim,
                                           const float16_t *restrict qh, ptrdiff_t ldqh,
                                           const float16_t *restrict k, ptrdiff_t k0,
                                           ptrdiff_t ldk, float *restrict s, ptrdiff_t lds)
{
    const int SPLIT = RB * KB <= 8;
    float32x4_t c[4][4][2];
    _Pragma("GCC unroll 4") for (int r = 0; r < RB; r++)
        _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++)
        {
            c[r][kb][0] = vdupq_n_f32(0.0f);
            c[r][kb][1] = vdupq_n_f32(0.0f);
        }
    for (int d = 0; d < dim; d += 8) {
        float16x8_t kv[4];
        _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++)
            kv[kb] = vld1q_f16(k + (k0 + kb) * ldk + d);
        _Pragma("GCC unroll 4") for (int r = 0; r < RB; r++)
        {
            const float16x8_t qv = vld1q_f16(qh + r * ldqh + d);
            _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++)
            {
                c[r][kb][0] = vfmlalq_low_f16(c[r][kb][0], qv, kv[kb]);
                c[r][kb][SPLIT] = vfmlalq_high_f16(c[r][kb][SPLIT], qv, kv[kb]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < RB; r++)
    {
        float32x4_t t[4];
        _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++)
            t[kb] = SPLIT ? vaddq_f32(c[r][kb][0], c[r][kb][1]) : c[r][kb][0];
        if (KB == 4)
            vst1q_f32(s + r * lds + k0, vpaddq_f32(vpaddq_f32(t[0], t[1]), vpaddq_f32(t[2], t[3])));
        else
            s[r * lds + k0] = vaddvq_f32(t[0]);
    }
}

static EA_ALWAYS_INLINE void qk_keys_fmlal(const int KB, int mr, int dim,
                                           const float16_t *restrict qh, ptrdiff_t ldqh,
                                           const float16_t *restrict k, ptrdiff_t k0, ptrdiff_t ldk,
                                           float *restrict s, ptrdiff_t lds)
{
    int r = 0;
    for (; r + 4 <= mr; r += 4)
        qk_tile_fmlal(4, KB, dim, qh + r * ldqh, ldqh, k, k0, ldk, s + r * lds, lds);
    switch (mr - r) {
    case 3: qk_tile_fmlal(3, KB, dim, qh + r * ldqh, ldqh, k, k0, ldk, s + r * lds, lds); break;
    case 2: qk_tile_fmlal(2, KB, dim, qh + r * ldqh, ldqh, k, k0, ldk, s + r * lds, lds); break;
    case 1: qk_tile_fmlal(1, KB, dim, qh + r * ldqh, ldqh, k, k0, ldk, s + r * lds, lds); break;
    default: break;
    }
}

EA_QK_ROWS_FN(ea_qk_rows_f16_neonfp16_fmlal_4x4)
{
    /* q rounded to fp16 on the stack (EA_MR x EA_CPU_MAX_DIM x 2 = 9 KB), with an exactness check. */
    enum { QH_LD = EA_CPU_MAX_DIM };
    _Alignas(16) float16_t qh[EA_MR * QH_LD];
    uint32x4_t inexact = vdupq_n_u32(0);
    for (int r = 0; r < mr; r++)
        for (int d = 0; d < dim; d += 8) {
            const float32x4_t x0 = vld1q_f32(q + r * ldq + d);
            const float32x4_t x1 = vld1q_f32(q + r * ldq + d + 4);
            const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(x0), x1);
            /* NaN fails the compare too, and goes the exact way. */
            inexact = vorrq_u32(inexact, vmvnq_u32(vceqq_f32(vcvt_f32_f16(vget_low_f16(h)), x0)));
            inexact = vorrq_u32(inexact, vmvnq_u32(vceqq_f32(vcvt_high_f32_f16(h), x1)));
            vst1q_f16(qh + r * QH_LD + d, h);
        }
    if (vmaxvq_u32(inexact) != 0) {
        ea_qk_rows_f16_neon_4x4(mr, n, dim, q, ldq, k, ldk, s, lds);
        return;
    }
    const float16_t *kh = (const float16_t *)k;
    int j = 0;
    for (; j + 4 <= n; j += 4)
        qk_keys_fmlal(4, mr, dim, qh, QH_LD, kh, j, ldk, s, lds);
    for (; j < n; j++)
        qk_keys_fmlal(1, mr, dim, qh, QH_LD, kh, j, ldk, s, lds);
}

#endif /* EA_HAVE_FP16FML */
