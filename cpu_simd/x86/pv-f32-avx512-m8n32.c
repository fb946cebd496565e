/*
 * O = alpha·O + P·V on packed operands, AVX-512: register block of 8 rows x 32 head-dim columns
 * (16 zmm accumulators; alpha·O is added when they are stored), one broadcast of p[r][j] per row and
 * two loads of the packed V row j per step. A last 16-column block (dim is a multiple of 16) uses 8.
 */
#include "cpu_simd/x86/avx512-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void pv_block(const int MR, const int NV, int nb, const float *restrict p, ptrdiff_t ldp,
                         const float *restrict v, ptrdiff_t ldv, const float *restrict alpha,
                         float *restrict o, ptrdiff_t ldo)
{
    __m512 acc[EA_MR][2];
    /* P·V is summed from zero and alpha·O added at the end: the same work, and gcc 12 -O3 keeps
     * the V vectors in registers this way (with O·alpha as the initial value it spills one). */
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NV; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int j = 0; j < nb; j++) {
        const float *vj = v + j * ldv;
        const __m512 v0 = _mm512_load_ps(vj), v1 = NV > 1 ? _mm512_load_ps(vj + 16) : v0;
        for (int r = 0; r < MR; r++) {
            const __m512 b = _mm512_set1_ps(p[r * ldp + j]);
            acc[r][0] = _mm512_fmadd_ps(b, v0, acc[r][0]);
            if (NV > 1)
                acc[r][1] = _mm512_fmadd_ps(b, v1, acc[r][1]);
        }
    }
    for (int r = 0; r < MR; r++) {
        const __m512 a = _mm512_set1_ps(alpha[r]);
        for (int c = 0; c < NV; c++)
            _mm512_store_ps(o + r * ldo + 16 * c, _mm512_fmadd_ps(a, _mm512_load_ps(o + r * ldo + 16 * c), acc[r][c]));
    }
}

EA_AINLINE void pv_mr(const int MR, int nb, int dim, const float *restrict p, ptrdiff_t ldp,
                      const float *restrict v, ptrdiff_t ldv, const float *restrict alpha,
                      float *restrict o, ptrdiff_t ldo)
{
    int d0 = 0;
    for (; d0 + 32 <= dim; d0 += 32)
        pv_block(MR, 2, nb, p, ldp, v + d0, ldv, alpha, o + d0, ldo);
    if (d0 < dim)
        pv_block(MR, 1, nb, p, ldp, v + d0, ldv, alpha, o + d0, ldo);
}

EA_PV_PACKED_FN(ea_pv_f32_avx512_m8n32)
{
    switch (mr) {
    case 8: pv_mr(8, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 7: pv_mr(7, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 6: pv_mr(6, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 5: pv_mr(5, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 4: pv_mr(4, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 3: pv_mr(3, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    case 2: pv_mr(2, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    default: pv_mr(1, nb, dim, p, ldp, v, ldv, alpha, o, ldo); break;
    }
}
