/*
 * O = alpha·O + P·V with V rows in their storage dtype (f32/f16/bf16) straight from the tensor or KV
 * cache, AVX-512, for decode and other small row counts. The head dim is cut into column blocks of
 * NV vectors so that mr x NV accumulators stay in registers (4 rows x 64 columns for the usual GQA
 * decode; 8 x 32 and 2 x 128 at the ends); each V row segment is loaded and widened once per block
 * and multiplied into every row. V is read only inside [0, n) x [0, dim).
 */
#include "cpu_simd/x86/avx512-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void pv_block(const int DT, const int MR, const int NV, int n, const float *restrict p,
                         ptrdiff_t ldp, const void *restrict v, ptrdiff_t ldv, int d0,
                         const float *restrict alpha, float *restrict o, ptrdiff_t ldo)
{
    __m512 acc[EA_MR][8];
    /* P·V is summed from zero and alpha·O added at the end: the same work, and gcc 12 -O3 keeps
     * the V vectors in registers this way (with O·alpha as the initial value it spills one). */
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NV; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int j = 0; j < n; j++) {
        __m512 vv[8];
        for (int c = 0; c < NV; c++)
            vv[c] = ea512_load(DT, v, (ptrdiff_t)j * ldv + d0 + 16 * c);
        for (int r = 0; r < MR; r++) {
            const __m512 b = _mm512_set1_ps(p[r * ldp + j]);
            for (int c = 0; c < NV; c++)
                acc[r][c] = _mm512_fmadd_ps(b, vv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < MR; r++) {
        const __m512 a = _mm512_set1_ps(alpha[r]);
        for (int c = 0; c < NV; c++)
            _mm512_store_ps(o + r * ldo + d0 + 16 * c, _mm512_fmadd_ps(a, _mm512_load_ps(o + r * ldo + d0 + 16 * c), acc[r][c]));
    }
}

EA_AINLINE void pv_rows(const int DT, const int MR, int n, int dim, const float *restrict p, ptrdiff_t ldp,
                        const void *restrict v, ptrdiff_t ldv, const float *restrict alpha,
                        float *restrict o, ptrdiff_t ldo)
{
    const int NV = MR <= 2 ? 8 : MR <= 4 ? 4 : 2;
    int d0 = 0;
    for (; d0 + 16 * NV <= dim; d0 += 16 * NV)
        pv_block(DT, MR, NV, n, p, ldp, v, ldv, d0, alpha, o, ldo);
    if (NV > 4 && d0 + 64 <= dim) {
        pv_block(DT, MR, 4, n, p, ldp, v, ldv, d0, alpha, o, ldo);
        d0 += 64;
    }
    if (NV > 2 && d0 + 32 <= dim) {
        pv_block(DT, MR, 2, n, p, ldp, v, ldv, d0, alpha, o, ldo);
        d0 += 32;
    }
    if (d0 < dim)
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

EA_PV_ROWS_FN(ea_pv_rows_f32_avx512_m4n64) { pv_rows_mr(EA_LD_F32, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }
EA_PV_ROWS_FN(ea_pv_rows_f16_avx512_m4n64) { pv_rows_mr(EA_LD_F16, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }
EA_PV_ROWS_FN(ea_pv_rows_bf16_avx512_m4n64) { pv_rows_mr(EA_LD_BF16, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }
