/*
 * S = Q·Kᵀ on packed operands, AVX2: register block of 4 rows x 24 keys (12 ymm accumulators, three
 * Kᵀ loads and one broadcast live: all 16 registers), one broadcast of q[r][d] per row per step, no
 * horizontal reductions. 8 rows are two passes of 4 over the same (L1/L2-resident) Kᵀ columns; the
 * last 8 or 16 keys (nb is a multiple of 16) use 4 x 8 or 4 x 16 blocks.
 * The row and column loops are unrolled by pragma: left to GCC 12, the 16- and 8-wide blocks kept their
 * accumulators in a stack array as well, stored every step (half speed on those blocks).
 */
#include "cpu_simd/x86/avx2-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void qk_block(const int MR, const int NV, int dim, const float *restrict q, ptrdiff_t ldq,
                         const float *restrict kt, ptrdiff_t ldkt, float *restrict s, ptrdiff_t lds)
{
    __m256 acc[4][3];
    _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int d = 0; d < dim; d++) {
        const float *kd = kt + d * ldkt;
        __m256 kv[3];
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
            kv[c] = _mm256_load_ps(kd + 8 * c);
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {
            const __m256 b = _mm256_broadcast_ss(q + r * ldq + d);
            _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
                acc[r][c] = _mm256_fmadd_ps(b, kv[c], acc[r][c]);
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
            _mm256_store_ps(s + r * lds + 8 * c, acc[r][c]);
}

EA_AINLINE void qk_rows4(const int MR, int nb, int dim, const float *restrict q, ptrdiff_t ldq,
                         const float *restrict kt, ptrdiff_t ldkt, float *restrict s, ptrdiff_t lds)
{
    /* 24-key blocks, then 16; a last 8 keys after a 24-key block go as 16 + 16 instead (a 4 x 8 block has
     * half the accumulators both FMA pipes need: 128 keys are 4 x 24 + 2 x 16) */
    const int n24 = nb % 24 == 8 && nb >= 32 ? nb / 24 - 1 : nb / 24;
    int j0 = 0;
    for (int i = 0; i < n24; i++, j0 += 24)
        qk_block(MR, 3, dim, q, ldq, kt + j0, ldkt, s + j0, lds);
    for (; nb - j0 >= 16; j0 += 16)
        qk_block(MR, 2, dim, q, ldq, kt + j0, ldkt, s + j0, lds);
    if (nb - j0 == 8)
        qk_block(MR, 1, dim, q, ldq, kt + j0, ldkt, s + j0, lds);
}

static void qk_tail(int mr, int nb, int dim, const float *restrict q, ptrdiff_t ldq, const float *restrict kt,
                    ptrdiff_t ldkt, float *restrict s, ptrdiff_t lds)
{
    switch (mr) {
    case 4: qk_rows4(4, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 3: qk_rows4(3, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 2: qk_rows4(2, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    default: qk_rows4(1, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    }
}

EA_QK_PACKED_FN(ea_qk_f32_avx2_m4n24)
{
    for (int r0 = 0; r0 < mr; r0 += 4)
        qk_tail(mr - r0 < 4 ? mr - r0 : 4, nb, dim, q + r0 * ldq, ldq, kt, ldkt, s + r0 * lds, lds);
}
