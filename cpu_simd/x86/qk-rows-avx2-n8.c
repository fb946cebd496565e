/*
 * S = Q·Kᵀ with K rows in their storage dtype (f32/f16/bf16) straight from the tensor or KV cache,
 * AVX2, for decode and other small row counts (mr <= 8). Keys go in blocks of 8: KP keys at a time
 * (KP*mr <= 8 accumulators), each K row loaded and widened once per 8 dims and multiplied into every
 * query row; the 8-lane partial sums of each (row, key) are parked in a stack buffer, then a
 * transpose-add tree (ea256_reduce8) gives 8 dot products per row in one vector.
 * K is read only inside [0, n) x [0, dim); s is written only in [0, mr) x [0, n).
 */
#include "cpu_simd/x86/avx2-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void qk_keys(const int DT, const int MR, const int KP, int dim, const float *restrict q,
                        ptrdiff_t ldq, const void *restrict k, ptrdiff_t kofs, ptrdiff_t ldk,
                        __m256 *restrict buf, int jj)
{
    __m256 acc[EA_MR][4];
    for (int r = 0; r < MR; r++)
        for (int kp = 0; kp < KP; kp++)
            acc[r][kp] = _mm256_setzero_ps();
    for (int d = 0; d < dim; d += 8) {
        __m256 kv[4];
        for (int kp = 0; kp < KP; kp++)
            kv[kp] = ea256_load(DT, k, kofs + kp * ldk + d);
        for (int r = 0; r < MR; r++) {
            const __m256 qv = _mm256_load_ps(q + r * ldq + d);
            for (int kp = 0; kp < KP; kp++)
                acc[r][kp] = _mm256_fmadd_ps(qv, kv[kp], acc[r][kp]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int kp = 0; kp < KP; kp++)
            buf[r * 8 + jj + kp] = acc[r][kp];
}

EA_AINLINE void qk_rows(const int DT, const int MR, int n, int dim, const float *restrict q, ptrdiff_t ldq,
                        const void *restrict k, ptrdiff_t ldk, float *restrict s, ptrdiff_t lds)
{
    const int KP = MR <= 2 ? 4 : MR <= 4 ? 2 : 1;
    __m256 buf[EA_MR * 8];
    for (int j0 = 0; j0 < n; j0 += 8) {
        const int nk = n - j0 < 8 ? n - j0 : 8;
        int jj = 0;
        for (; jj + KP <= nk; jj += KP)
            qk_keys(DT, MR, KP, dim, q, ldq, k, (ptrdiff_t)(j0 + jj) * ldk, ldk, buf, jj);
        for (; jj < nk; jj++)
            qk_keys(DT, MR, 1, dim, q, ldq, k, (ptrdiff_t)(j0 + jj) * ldk, ldk, buf, jj);
        if (nk < 8) {
            for (int r = 0; r < MR; r++)
                for (int z = nk; z < 8; z++)
                    buf[r * 8 + z] = _mm256_setzero_ps();
            /* lanes < nk on: compare the lane index with nk */
            const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(nk), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            for (int r = 0; r < MR; r++)
                _mm256_maskstore_ps(s + r * lds + j0, live, ea256_reduce8(buf + r * 8));
        } else {
            for (int r = 0; r < MR; r++)
                _mm256_store_ps(s + r * lds + j0, ea256_reduce8(buf + r * 8));
        }
    }
}

EA_AINLINE void qk_rows_mr(const int DT, int mr, int n, int dim, const float *restrict q, ptrdiff_t ldq,
                           const void *restrict k, ptrdiff_t ldk, float *restrict s, ptrdiff_t lds)
{
    switch (mr) {
    case 8: qk_rows(DT, 8, n, dim, q, ldq, k, ldk, s, lds); break;
    case 7: qk_rows(DT, 7, n, dim, q, ldq, k, ldk, s, lds); break;
    case 6: qk_rows(DT, 6, n, dim, q, ldq, k, ldk, s, lds); break;
    case 5: qk_rows(DT, 5, n, dim, q, ldq, k, ldk, s, lds); break;
    case 4: qk_rows(DT, 4, n, dim, q, ldq, k, ldk, s, lds); break;
    case 3: qk_rows(DT, 3, n, dim, q, ldq, k, ldk, s, lds); break;
    case 2: qk_rows(DT, 2, n, dim, q, ldq, k, ldk, s, lds); break;
    default: qk_rows(DT, 1, n, dim, q, ldq, k, ldk, s, lds); break;
    }
}

EA_QK_ROWS_FN(ea_qk_rows_f32_avx2_n8) { qk_rows_mr(EA_LD_F32, mr, n, dim, q, ldq, k, ldk, s, lds); }
EA_QK_ROWS_FN(ea_qk_rows_f16_avx2_n8) { qk_rows_mr(EA_LD_F16, mr, n, dim, q, ldq, k, ldk, s, lds); }
EA_QK_ROWS_FN(ea_qk_rows_bf16_avx2_n8) { qk_rows_mr(EA_LD_BF16, mr, n, dim, q, ldq, k, ldk, s, lds); }
