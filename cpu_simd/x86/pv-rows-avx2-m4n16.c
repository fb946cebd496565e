/*
 * O = alpha·O + P·V with V rows in their storage dtype (f32/f16/bf16) straight from the tensor or KV
 * cache, AVX2, for decode and other small row counts. The head dim is cut into column blocks of NV
 * vectors so that mr x NV accumulators stay in registers (4 rows x 16 columns for the usual GQA
 * decode, 2 x 32 and 8 x 8 at the ends; narrower blocks take the last columns, down to 8); each V row
 * segment is loaded and widened once per block and multiplied into every row; alpha·O is added when
 * the block is stored. V is read only inside [0, n) x [0, dim). The row and column loops are unrolled
 * by pragma: left to GCC 12, the narrower blocks kept their accumulators in a stack array as well,
 * stored every step.
 */
#include "cpu_simd/x86/avx2-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void pv_block(const int DT, const int MR, const int NV, int n, const float *restrict p,
                         ptrdiff_t ldp, const void *restrict v, ptrdiff_t ldv, int d0,
                         const float *restrict alpha, float *restrict o, ptrdiff_t ldo)
{
    __m256 acc[EA_MR][4];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 8") for (int c = 0; c < NV; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
        __m256 vv[4];
        _Pragma("GCC unroll 8") for (int c = 0; c < NV; c++)
            vv[c] = ea256_load(DT, v, (ptrdiff_t)j * ldv + d0 + 8 * c);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
            const __m256 b = _mm256_broadcast_ss(p + r * ldp + j);
            _Pragma("GCC unroll 8") for (int c = 0; c < NV; c++)
                acc[r][c] = _mm256_fmadd_ps(b, vv[c], acc[r][c]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        const __m256 a = _mm256_broadcast_ss(alpha + r);
        _Pragma("GCC unroll 8") for (int c = 0; c < NV; c++)
            _mm256_store_ps(o + r * ldo + d0 + 8 * c,
                            _mm256_fmadd_ps(a, _mm256_load_ps(o + r * ldo + d0 + 8 * c), acc[r][c]));
    }
}

EA_AINLINE void pv_rows(const int DT, const int MR, int n, int dim, const float *restrict p, ptrdiff_t ldp,
                        const void *restrict v, ptrdiff_t ldv, const float *restrict alpha,
                        float *restrict o, ptrdiff_t ldo)
{
    const int NV = MR <= 2 ? 4 : MR <= 4 ? 2 : 1;
    int d0 = 0;
    for (; d0 + 8 * NV <= dim; d0 += 8 * NV)
        pv_block(DT, MR, NV, n, p, ldp, v, ldv, d0, alpha, o, ldo);
    /* fewer than 8 * NV columns left, a multiple of 8 */
    if (NV > 2 && d0 + 16 <= dim) {
        pv_block(DT, MR, 2, n, p, ldp, v, ldv, d0, alpha, o, ldo);
        d0 += 16;
    }
    if (NV > 1 && d0 < dim)
        pv_block(DT, MR, 1, n, p, ldp, v, ldv, d0, alpha, o, ldo);
}

EA_AINLINE void pv_rows_mr(const int DT, int mr, int n, int dim, const float *restrict p, ptrdiff_t ldp,
                           const void *restrict v, ptrdiff_t ldv, const float *restrict alpha,
                           float *restrict o, ptrdiff_t ldo)
{
    switch (mr) {
    case 8: pv_rows(DT, 8, n, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 7: pv_rows(DT, 7, n, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 6: pv_rows(DT, 6, n, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 5: pv_rows(DT, 5, n, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 4: pv_rows(DT, 4, n, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 3: pv_rows(DT, 3, n, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 2: pv_rows(DT, 2, n, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    default: pv_rows(DT, 1, n, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    }
}

EA_PV_ROWS_FN(ea_pv_rows_f32_avx2_m4n16) { pv_rows_mr(EA_LD_F32, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }
EA_PV_ROWS_FN(ea_pv_rows_f16_avx2_m4n16) { pv_rows_mr(EA_LD_F16, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }
EA_PV_ROWS_FN(ea_pv_rows_bf16_avx2_m4n16) { pv_rows_mr(EA_LD_BF16, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }
