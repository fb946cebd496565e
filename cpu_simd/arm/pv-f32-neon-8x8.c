/*
 * Packed PV on NEON: o[r][d] = alpha[r] * o[r][d] + sum_j p[r][j] * v[j][d], r < mr <= 8, d < dim,
 * j < nb (nb a multiple of 16, dim a multiple of 8).
 *
 * The same 8 x 8 register blocking as packed QK (qk-f32-neon-8x8.c), with the roles of the operands
 * taken by p (mr x nb, row-major) and v (nb x dim, row-major): a tile of 8 rows x 8 columns of o is
 * loaded once, scaled by alpha, kept in 16 accumulators over the whole key loop and stored once.
 * Per step of 4 keys: one vector p[r][j..j+3] per row (8 registers) whose lanes are the broadcast
 * operands of FMLA-by-element against two vectors of each v row v[j+i][d0..d0+7]. 0.25 loads per
 * FMA, no horizontal reductions, full-width stores (ldo is a multiple of 8).
 */
#include "cpu_simd/arm/neon-common.h"

#define PV_STEP(L)                                                                                  \
    do {                                                                                            \
        const float32x4_t b0 = vld1q_f32(b + (L) * ldv);                                            \
        const float32x4_t b1 = vld1q_f32(b + (L) * ldv + 4);                                        \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                        \
        {                                                                                           \
            c[r][0] = vfmaq_laneq_f32(c[r][0], b0, a[r], L);                                        \
            c[r][1] = vfmaq_laneq_f32(c[r][1], b1, a[r], L);                                        \
        }                                                                                           \
    } while (0)

static EA_ALWAYS_INLINE void pv_rows_of(const int MR, int nb, int dim, const float *restrict p,
                                        ptrdiff_t ldp, const float *restrict v, ptrdiff_t ldv,
                                        const float *restrict alpha, float *restrict o,
                                        ptrdiff_t ldo)
{
    for (int d0 = 0; d0 < dim; d0 += 8) {
        float32x4_t c[8][2];
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        {
            c[r][0] = vmulq_n_f32(vld1q_f32(o + r * ldo + d0), alpha[r]);
            c[r][1] = vmulq_n_f32(vld1q_f32(o + r * ldo + d0 + 4), alpha[r]);
        }
        for (int j = 0; j < nb; j += 4) {
            float32x4_t a[8];
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                a[r] = vld1q_f32(p + r * ldp + j);
            const float *b = v + j * ldv + d0;
            PV_STEP(0);
            PV_STEP(1);
            PV_STEP(2);
            PV_STEP(3);
        }
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        {
            vst1q_f32(o + r * ldo + d0, c[r][0]);
            vst1q_f32(o + r * ldo + d0 + 4, c[r][1]);
        }
    }
}

EA_PV_PACKED_FN(ea_pv_f32_neon_8x8)
{
    switch (mr) {
    case 8: pv_rows_of(8, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 7: pv_rows_of(7, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 6: pv_rows_of(6, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 5: pv_rows_of(5, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 4: pv_rows_of(4, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 3: pv_rows_of(3, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 2: pv_rows_of(2, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    default: pv_rows_of(1, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    }
}
