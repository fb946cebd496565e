/*
 * Packed QK on NEON: s[r][j] = sum_d q[r][d] * kt[d][j], r < mr <= 8, j < nb (nb a multiple of 16).
 *
 * Register blocking: a tile of 8 rows x 8 keys lives in 16 accumulators (8 rows x 2 vectors of 4
 * f32) for the whole d loop, and is stored once. Per step of 4 along d the kernel loads one vector
 * of q per row (q[r][d..d+3], 8 registers) and uses its four lanes in turn as the broadcast operand
 * of FMLA-by-element (vfmaq_laneq_f32), against two vectors of the packed K^T row kt[d+i][j..j+7]:
 *   16 accumulators + 8 q + 2..8 kt in flight = 26..32 of the 32 vector registers,
 *   16 FMLA per 2 kt loads (+ 8 q loads per 4 steps): 0.25 loads per FMA.
 * An 8 x 16 tile would need 32 accumulators alone, which leaves nothing for the operands; 4 x 16
 * fits (16 + 4 + 4) but costs 0.31 loads per FMA. Hence 8 x 8. Every store is a full-width aligned
 * vector store (lds is a multiple of 16, nb a multiple of 16) and there is no horizontal reduction.
 *
 * The kt panel of one column block (dim x 8 floats, at most 8 KB) is walked top to bottom with
 * stride ldkt; it stays in L1 across the row blocks, and the hardware prefetcher follows the stride.
 */
#include "cpu_simd/arm/neon-common.h"

/* One FMLA step along d: lane L of each row's q vector times kt row (d + L). */
#define QK_STEP(L)                                                                                  \
    do {                                                                                            \
        const float32x4_t b0 = vld1q_f32(b + (L) * ldkt);                                           \
        const float32x4_t b1 = vld1q_f32(b + (L) * ldkt + 4);                                       \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                        \
        {                                                                                           \
            c[r][0] = vfmaq_laneq_f32(c[r][0], b0, a[r], L);                                        \
            c[r][1] = vfmaq_laneq_f32(c[r][1], b1, a[r], L);                                        \
        }                                                                                           \
    } while (0)

/* All column blocks for a row block of exactly MR rows (MR is a constant at each call site). */
static EA_ALWAYS_INLINE void qk_rows_of(const int MR, int nb, int dim, const float *restrict q,
                                        ptrdiff_t ldq, const float *restrict kt, ptrdiff_t ldkt,
                                        float *restrict s, ptrdiff_t lds)
{
    for (int j0 = 0; j0 < nb; j0 += 8) {
        float32x4_t c[8][2];
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        {
            c[r][0] = vdupq_n_f32(0.0f);
            c[r][1] = vdupq_n_f32(0.0f);
        }
        for (int d = 0; d < dim; d += 4) {
            float32x4_t a[8];
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                a[r] = vld1q_f32(q + r * ldq + d);
            const float *b = kt + d * ldkt + j0;
            QK_STEP(0);
            QK_STEP(1);
            QK_STEP(2);
            QK_STEP(3);
        }
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        {
            vst1q_f32(s + r * lds + j0, c[r][0]);
            vst1q_f32(s + r * lds + j0 + 4, c[r][1]);
        }
    }
}

EA_QK_PACKED_FN(ea_qk_f32_neon_8x8)
{
    /* One specialised body per row count, so the accumulators of a short block stay in registers
     * and no kt panel is read twice. */
    switch (mr) {
    case 8: qk_rows_of(8, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 7: qk_rows_of(7, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 6: qk_rows_of(6, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 5: qk_rows_of(5, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 4: qk_rows_of(4, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 3: qk_rows_of(3, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 2: qk_rows_of(2, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    default: qk_rows_of(1, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    }
}
