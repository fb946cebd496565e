/*
 * Shared inline pieces of the AVX2 tier (AVX2 + FMA + F16C): loads that widen f16/bf16 to f32, the
 * vector exp of the softmax, the 8-way horizontal reduction tree of qk_rows and the 8x8 transpose of
 * pack_kt. Included only by files compiled with the tier's flags. Same numerics as the AVX-512 tier
 * (avx512-common.h), without vscalefps or write masks.
 */
#ifndef EDGEATTN_X86_AVX2_COMMON_H
#define EDGEATTN_X86_AVX2_COMMON_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "cpu_simd/ukernel.h"

#define EA_AINLINE static inline __attribute__((always_inline))

enum { EA_LD_F32 = 0, EA_LD_F16 = 1, EA_LD_BF16 = 2 };

/* 8 consecutive elements starting at element i of p (no alignment), widened to f32 (exact). */
EA_AINLINE __m256 ea256_load(const int dt, const void *p, ptrdiff_t i)
{
    if (dt == EA_LD_F32)
        return _mm256_loadu_ps((const float *)p + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)p + i));
    if (dt == EA_LD_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/*
 * exp(x) for x <= 0, finite or -inf ("rr2-p6"), as in avx512-common.h: n = round(x*log2(e)),
 * r = x - n*ln2 (two-step Cody-Waite with FMA), exp(x) = 2^n * p(r), p the degree-6 Remez polynomial
 * with p(0) = 1. Without vscalefps, n is rounded and 2^n built in one go: adding 1.5*2^23 + 127
 * leaves round(x*log2e) + 127 in the low mantissa bits, and a 23-bit left shift moves it into the
 * exponent field (valid for n + 127 in [1, 254], i.e. every live lane). Lanes below
 * ln(2^-126) = -87.3365 and -inf are cleared by the final AND (their intermediate values, NaN
 * included, never reach the output).
 */
#define EA_EXP_LO (-87.3365447f)
#define EA_LOG2E 0x1.715476p+0f
#define EA_EXP_MAGIC 0x1.8000FEp23f /* 1.5 * 2^23 + 127 */
#define EA_LN2_HI 0x1.62e430p-1f
#define EA_LN2_LO (-0x1.05c610p-29f)
#define EA_EXP_C2 0x1.000002p-1f
#define EA_EXP_C3 0x1.5553c2p-3f
#define EA_EXP_C4 0x1.55515ep-5f
#define EA_EXP_C5 0x1.12903ep-7f
#define EA_EXP_C6 0x1.709b64p-10f

EA_AINLINE __m256 ea256_exp(__m256 x)
{
    const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(EA_EXP_LO), _CMP_GE_OQ);
    const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(EA_LOG2E), _mm256_set1_ps(EA_EXP_MAGIC));
    const __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(EA_EXP_MAGIC));
    const __m256 two_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EA_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EA_LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(EA_EXP_C6), r, _mm256_set1_ps(EA_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EA_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EA_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EA_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    return _mm256_and_ps(_mm256_mul_ps(p, two_n), live);
}

/* Horizontal sum of the 8 lanes of each a[j] (j < 8) into lane j of one vector: a transpose-add tree
 * of 7 steps (two shuffles and one add each). */
EA_AINLINE __m256 ea256_add_pair_l1(__m256 a, __m256 b)
{
    return _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
}
EA_AINLINE __m256 ea256_add_pair_l2(__m256 a, __m256 b)
{
    return _mm256_add_ps(_mm256_shuffle_ps(a, b, 0x44), _mm256_shuffle_ps(a, b, 0xEE));
}
EA_AINLINE __m256 ea256_reduce8(const __m256 *a)
{
    const __m256 b0 = ea256_add_pair_l1(a[0], a[1]), b1 = ea256_add_pair_l1(a[2], a[3]);
    const __m256 b2 = ea256_add_pair_l1(a[4], a[5]), b3 = ea256_add_pair_l1(a[6], a[7]);
    const __m256 c0 = ea256_add_pair_l2(b0, b1), c1 = ea256_add_pair_l2(b2, b3); /* keys 0-3, 4-7 per lane */
    return _mm256_add_ps(_mm256_permute2f128_ps(c0, c1, 0x20), _mm256_permute2f128_ps(c0, c1, 0x31));
}

/* In place: r[i] lane j <-> r[j] lane i. 24 shuffles. */
EA_AINLINE void ea256_transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) { /* u[4i+c]: rows 4i..4i+3, column 4L+c in 128-bit lane L */
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

#endif
