/*
 * S = Q·Kᵀ on packed operands, AVX-512: register block of 8 rows x 32 keys (16 zmm accumulators),
 * one broadcast of q[r][d] per row and two loads of the packed Kᵀ row d per step, no horizontal
 * reductions. A last 16-key column block (nb is a multiple of 16) uses 8 accumulators.
 */
#include "cpu_simd/x86/avx512-common.h"
#include "cpu_simd/x86/kernels-x86.h"

/* MR rows x 16*NV keys at column j0. */
EA_AINLINE void qk_block(const int MR, const int NV, int dim, const float *restrict q, ptrdiff_t ldq,
                         const float *restrict kt, ptrdiff_t ldkt, float *restrict s, ptrdiff_t lds)
{
    __m512 acc[EA_MR][2];
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NV; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int d = 0; d < dim; d++) {
        const float *kd = kt + d * ldkt;
        __m512 kv[2];
        for (int c = 0; c < NV; c++)
            kv[c] = _mm512_load_ps(kd + 16 * c);
        for (int r = 0; r < MR; r++) {
            const __m512 b = _mm512_set1_ps(q[r * ldq + d]);
            for (int c = 0; c < NV; c++)
                acc[r][c] = _mm512_fmadd_ps(b, kv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NV; c++)
            _mm512_store_ps(s + r * lds + 16 * c, acc[r][c]);
}

EA_AINLINE void qk_mr(const int MR, int nb, int dim, const float *restrict q, ptrdiff_t ldq,
                      const float *restrict kt, ptrdiff_t ldkt, float *restrict s, ptrdiff_t lds)
{
    int j0 = 0;
    for (; j0 + 32 <= nb; j0 += 32)
        qk_block(MR, 2, dim, q, ldq, kt + j0, ldkt, s + j0, lds);
    if (j0 < nb)
        qk_block(MR, 1, dim, q, ldq, kt + j0, ldkt, s + j0, lds);
}

EA_QK_PACKED_FN(ea_qk_f32_avx512_m8n32)
{
    switch (mr) {
    case 8: qk_mr(8, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 7: qk_mr(7, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 6: qk_mr(6, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 5: qk_mr(5, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 4: qk_mr(4, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 3: qk_mr(3, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    case 2: qk_mr(2, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    default: qk_mr(1, nb, dim, q, ldq, kt, ldkt, s, lds); break;
    }
}
