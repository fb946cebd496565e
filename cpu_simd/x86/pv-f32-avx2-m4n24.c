/*
 * O = alpha·O + P·V on packed operands, AVX2: register block of 4 rows x 24 head-dim columns (12 ymm
 * accumulators), one broadcast of p[r][j] per row and three loads of the packed V row j per step;
 * alpha·O is added when the block is stored. 8 rows are two passes of 4; the last columns (dim is a
 * multiple of 8) use 16-wide blocks, and an 8-wide one only when dim is 8 or 16 apart from 24s.
 * The row and column loops are unrolled by pragma: left to GCC 12, the 16- and 8-wide blocks kept their
 * accumulators in a stack array as well, stored every step (half speed on those blocks).
 */
#include "cpu_simd/x86/avx2-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void pv_block(const int MR, const int NV, int nb, const float *restrict p, ptrdiff_t ldp,
                         const float *restrict v, ptrdiff_t ldv, const float *restrict alpha,
                         float *restrict o, ptrdiff_t ldo)
{
    __m256 acc[4][3];
    _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int j = 0; j < nb; j++) {
        const float *vj = v + j * ldv;
        __m256 vv[3];
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
            vv[c] = _mm256_load_ps(vj + 8 * c);
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {
            const __m256 b = _mm256_broadcast_ss(p + r * ldp + j);
            _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
                acc[r][c] = _mm256_fmadd_ps(b, vv[c], acc[r][c]);
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {
        const __m256 a = _mm256_broadcast_ss(alpha + r);
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
            _mm256_store_ps(o + r * ldo + 8 * c,
                            _mm256_fmadd_ps(a, _mm256_load_ps(o + r * ldo + 8 * c), acc[r][c]));
    }
}

EA_AINLINE void pv_rows4(const int MR, int nb, int dim, const float *restrict p, ptrdiff_t ldp,
                         const float *restrict v, ptrdiff_t ldv, const float *restrict alpha,
                         float *restrict o, ptrdiff_t ldo)
{
    /* 24-wide blocks, then 16-wide; a last 8 columns after a 24-wide block go as 16 + 16 instead (a 4 x 8
     * block has 4 accumulators, half what keeps both FMA pipes busy: head dim 128 is 4 x 24 + 2 x 16) */
    const int n24 = dim % 24 == 8 && dim >= 32 ? dim / 24 - 1 : dim / 24;
    int d0 = 0;
    for (int i = 0; i < n24; i++, d0 += 24)
        pv_block(MR, 3, nb, p, ldp, v + d0, ldv, alpha, o + d0, ldo);
    for (; dim - d0 >= 16; d0 += 16)
        pv_block(MR, 2, nb, p, ldp, v + d0, ldv, alpha, o + d0, ldo);
    if (dim - d0 == 8)
        pv_block(MR, 1, nb, p, ldp, v + d0, ldv, alpha, o + d0, ldo);
}

static void pv_tail(int mr, int nb, int dim, const float *restrict p, ptrdiff_t ldp, const float *restrict v,
                    ptrdiff_t ldv, const float *restrict alpha, float *restrict o, ptrdiff_t ldo)
{
    switch (mr) {
    case 4: pv_rows4(4, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 3: pv_rows4(3, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 2: pv_rows4(2, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    default: pv_rows4(1, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    }
}

EA_PV_PACKED_FN(ea_pv_f32_avx2_m4n24)
{
    for (int r0 = 0; r0 < mr; r0 += 4)
        pv_tail(mr - r0 < 4 ? mr - r0 : 4, nb, dim, p + r0 * ldp, ldp, v, ldv, alpha + r0, o + r0 * ldo, ldo);
}
