/*
 * Shared inline pieces of the AVX-512 tier (F/BW/VL/DQ only: no AVX512-FP16, no AVX512-BF16, so the
 * tier runs on Skylake-X, Ice Lake, Sapphire Rapids and Zen 4 alike): loads that widen f16/bf16 to
 * f32, the vector exp of the softmax, the 16-way horizontal reduction tree of qk_rows and the 16x16
 * transpose of pack_kt. Included only by files compiled with the tier's flags.
 */
#ifndef EDGEATTN_X86_AVX512_COMMON_H
#define EDGEATTN_X86_AVX512_COMMON_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "cpu_simd/ukernel.h"

#define EA_AINLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------- loads: 16 elements -> f32 */

/* Element dtype codes for the templates below (compile-time constants after inlining). */
enum { EA_LD_F32 = 0, EA_LD_F16 = 1, EA_LD_BF16 = 2 };

/* 16 consecutive elements starting at element i of p (no alignment), widened to f32. */
EA_AINLINE __m512 ea512_load(const int dt, const void *p, ptrdiff_t i)
{
    if (dt == EA_LD_F32)
        return _mm512_loadu_ps((const float *)p + i);
    const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)((const uint16_t *)p + i));
    if (dt == EA_LD_F16)
        return _mm512_cvtph_ps(h); /* exact: every f16 is an f32 */
    /* bf16 is the top half of an f32: zero-extend to 32 bits and shift into place (exact). */
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* ---------------------------------------------------------------- exp */

/*
 * exp(x) for x <= 0, finite or -inf ("rr2-p6"):
 *   n = round(x * log2(e)), r = x - n*ln2 in [-ln2/2, ln2/2], exp(x) = 2^n * p(r).
 * Range reduction in two steps (Cody-Waite): ln2_hi is ln2 rounded to float; with FMA the product
 * n*ln2_hi is exact inside the fused operation and x - n*ln2_hi is exactly representable (|n| <= 127,
 * the result is below 0.35 and its last bit is at or above 2^-24), so only ln2_lo's correction is
 * rounded. p is a degree-6 polynomial with p(0) = 1 exactly (so exp(0) == 1 and an unchanged running
 * max gives alpha == 1), fitted by Remez exchange to minimise the relative error over the interval:
 * 2.6e-9 in exact arithmetic, so the float result is within ~2 ulp. vscalefps multiplies by 2^n
 * without building the exponent by hand. Lanes below ln(FLT_MIN) = -87.3365 (and -inf) are zeroed by
 * the write masks: no denormals, no NaN (the masked lanes' r is forced to 0 so nothing overflows).
 */
#define EA_EXP_LO (-87.3365447f)   /* ln(2^-126): below it the result is flushed to exactly 0 */
#define EA_LOG2E 0x1.715476p+0f
#define EA_LN2_HI 0x1.62e430p-1f
#define EA_LN2_LO (-0x1.05c610p-29f)
#define EA_EXP_C2 0x1.000002p-1f
#define EA_EXP_C3 0x1.5553c2p-3f
#define EA_EXP_C4 0x1.55515ep-5f
#define EA_EXP_C5 0x1.12903ep-7f
#define EA_EXP_C6 0x1.709b64p-10f

EA_AINLINE __m512 ea512_exp(__m512 x)
{
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EA_EXP_LO), _CMP_GE_OQ);
    /* round(x*log2e) by adding and subtracting 1.5*2^23 (one FMA and one subtraction: cheaper than
     * vrndscaleps, which is two uops on Intel) */
    const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(EA_LOG2E), _mm512_set1_ps(0x1.8p23f));
    const __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(0x1.8p23f));
    __m512 r = _mm512_maskz_fnmadd_ps(live, n, _mm512_set1_ps(EA_LN2_HI), x);
    r = _mm512_maskz_fnmadd_ps(live, n, _mm512_set1_ps(EA_LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(EA_EXP_C6), r, _mm512_set1_ps(EA_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EA_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EA_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EA_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(live, p, n);
}

/* ---------------------------------------------------------------- 16-way reduction */

/*
 * out[j] = sum of the 16 lanes of a[j], j < 16, in one vector: a transpose-add tree of 15 steps
 * (two shuffles and one add each) instead of 16 separate horizontal sums.
 *   level 1 (unpack lo/hi):     pairs (2i, 2i+1) -> each 128-bit lane holds 2+2 partials of 2 keys
 *   level 2 (shuffle_ps):       -> each 128-bit lane holds one partial of 4 keys
 *   levels 3-4 (shuffle_f32x4): -> 128-bit lanes regrouped so lane L of the result holds keys 4L..4L+3
 */
EA_AINLINE __m512 ea512_add_pair_l1(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
}
EA_AINLINE __m512 ea512_add_pair_l2(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE));
}
EA_AINLINE __m512 ea512_add_pair_l3(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
}
EA_AINLINE __m512 ea512_reduce16(const __m512 *a)
{
    __m512 b[8], c[4], d[2];
    for (int i = 0; i < 8; i++)
        b[i] = ea512_add_pair_l1(a[2 * i], a[2 * i + 1]);
    for (int i = 0; i < 4; i++)
        c[i] = ea512_add_pair_l2(b[2 * i], b[2 * i + 1]);
    for (int i = 0; i < 2; i++)
        d[i] = ea512_add_pair_l3(c[2 * i], c[2 * i + 1]);
    return ea512_add_pair_l3(d[0], d[1]);
}

/* ---------------------------------------------------------------- 16x16 transpose */

/* In place: r[i] lane j <-> r[j] lane i. 64 shuffles: unpack, shuffle_ps, two shuffle_f32x4 rounds. */
EA_AINLINE void ea512_transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i+c]: rows 4i..4i+3, column 4L+c in 128-bit lane L */
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    /* w[c]: lanes (rows 0-3, 4-7, 8-11, 12-15) regrouped in two rounds of 128-bit shuffles */
    for (int c = 0; c < 4; c++) {
        const __m512 w0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);  /* cols c, 8+c of rows 0-7 */
        const __m512 w1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);  /* cols 4+c, 12+c */
        const __m512 x0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        const __m512 x1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(w0, x0, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(w0, x0, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(w1, x1, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(w1, x1, 0xDD);
    }
}

#endif
