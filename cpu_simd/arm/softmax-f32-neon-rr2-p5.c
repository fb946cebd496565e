/*
 * Online-softmax step on NEON (contract in cpu_simd/ukernel.h): per row, the new running max, p =
 * exp(s - max) written back over s, the FP32 row sum, alpha = exp(m_old - m_new). Statistics and
 * sums are FP32 on every tier.
 *
 * exp(x) for x <= 0, rr2-p5 (two-constant range reduction, degree-5 polynomial):
 *   n = round(x / ln2), r = x - n*ln2 with ln2 split in a hi part (exact in n*ln2_hi for |n| < 2^8)
 *   and a lo part, so r is accurate to ~1 ulp in [-ln2/2, ln2/2];
 *   e^r = 1 + r*(c1 + r*c2 + r^2*(c3 + r*c4) + ...) with minimax coefficients (those of Arm's
 *   optimized-routines expf), evaluated Estrin-style to shorten the FMA chain;
 *   2^n is applied as two normal powers 2^n1 * 2^n2 (n1 = floor(n/2), n2 = n - n1, both >= -75):
 *   (1 + poly) * 2^n1 is exact, the second product rounds once, so results that fall in the
 *   subnormal range (x in [-88, -87.34]) are right too, instead of the garbage a single exponent
 *   add would give.
 *   Measured against double exp over every 7th float in [-87.3, 0]: at most 1.95 ulp.
 * x < -88 (which includes -inf, masked keys) returns exactly +0: the contract flushes there, and
 * clamping x to -104 first keeps n in range for the integer conversions.
 */
#include <math.h>

#include "cpu_simd/arm/neon-common.h"

static EA_ALWAYS_INLINE float32x4_t exp_neg_f32(float32x4_t x)
{
    const float32x4_t lim = vdupq_n_f32(-88.0f);
    const uint32x4_t flush = vcltq_f32(x, lim); /* x < -88, or -inf */
    x = vmaxq_f32(x, vdupq_n_f32(-104.0f));
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 0x1.715476p+0f)); /* x * log2(e) */
    float32x4_t r = vfmaq_n_f32(x, n, -0x1.62e4p-1f);                  /* - n * ln2_hi */
    r = vfmaq_n_f32(r, n, -0x1.7f7d1cp-20f);                           /* - n * ln2_lo */
    const float32x4_t r2 = vmulq_f32(r, r);
    const float32x4_t p = vfmaq_f32(vdupq_n_f32(0x1.573e2ep-5f), vdupq_n_f32(0x1.0e4020p-7f), r);
    float32x4_t t = vfmaq_f32(vdupq_n_f32(0x1.fffdb6p-2f), vdupq_n_f32(0x1.555e66p-3f), r);
    t = vfmaq_f32(t, p, r2);
    const float32x4_t poly = vfmaq_f32(vmulq_n_f32(r, 0x1.ffffecp-1f), t, r2); /* e^r - 1 */
    const int32x4_t ni = vcvtq_s32_f32(n);                                     /* [-150, 0] */
    const int32x4_t n1 = vshrq_n_s32(ni, 1);                                   /* floor(n/2) */
    const int32x4_t n2 = vsubq_s32(ni, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    const float32x4_t y = vmulq_f32(vfmaq_f32(s1, poly, s1), s2);
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), flush));
}

EA_SOFTMAX_FN(ea_softmax_f32_neon_rr2_p5)
{
    for (int r = 0; r < mr; r++) {
        float *sr = s + r * lds;
        /* Row max: four independent vmax chains over 16 columns, one reduction at the end. */
        float32x4_t x0 = vdupq_n_f32(m[r]), x1 = x0, x2 = x0, x3 = x0;
        for (int j = 0; j < nb; j += 16) {
            x0 = vmaxq_f32(x0, vld1q_f32(sr + j));
            x1 = vmaxq_f32(x1, vld1q_f32(sr + j + 4));
            x2 = vmaxq_f32(x2, vld1q_f32(sr + j + 8));
            x3 = vmaxq_f32(x3, vld1q_f32(sr + j + 12));
        }
        const float mx = vmaxvq_f32(vmaxq_f32(vmaxq_f32(x0, x1), vmaxq_f32(x2, x3)));
        if (mx == -INFINITY) { /* nothing visible yet: p = 0, statistics unchanged */
            const float32x4_t z = vdupq_n_f32(0.0f);
            for (int j = 0; j < nb; j += 4)
                vst1q_f32(sr + j, z);
            alpha[r] = 1.0f;
            continue;
        }
        const float32x4_t vmx = vdupq_n_f32(mx);
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int j = 0; j < nb; j += 16) {
            const float32x4_t e0 = exp_neg_f32(vsubq_f32(vld1q_f32(sr + j), vmx));
            const float32x4_t e1 = exp_neg_f32(vsubq_f32(vld1q_f32(sr + j + 4), vmx));
            const float32x4_t e2 = exp_neg_f32(vsubq_f32(vld1q_f32(sr + j + 8), vmx));
            const float32x4_t e3 = exp_neg_f32(vsubq_f32(vld1q_f32(sr + j + 12), vmx));
            vst1q_f32(sr + j, e0);
            vst1q_f32(sr + j + 4, e1);
            vst1q_f32(sr + j + 8, e2);
            vst1q_f32(sr + j + 12, e3);
            a0 = vaddq_f32(a0, e0);
            a1 = vaddq_f32(a1, e1);
            a2 = vaddq_f32(a2, e2);
            a3 = vaddq_f32(a3, e3);
        }
        const float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
        const float a = m[r] == -INFINITY
                            ? 0.0f
                            : vgetq_lane_f32(exp_neg_f32(vdupq_n_f32(m[r] - mx)), 0);
        alpha[r] = a;
        l[r] = l[r] * a + sum;
        m[r] = mx;
    }
}
