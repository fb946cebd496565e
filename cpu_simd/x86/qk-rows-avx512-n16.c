/*
 * S = Q·Kᵀ with K rows in their storage dtype (f32/f16/bf16) straight from the tensor or KV cache,
 * AVX-512, for decode and other small row counts (mr <= 8). Keys go in blocks of 16:
 *  1. for KP keys at a time (KP*mr <= 16 accumulators), each K row is loaded and widened once per
 *     16 dims and multiplied into every query row; the 16-lane partial sums of each (row, key) are
 *     parked in a small stack buffer (mr x 16 vectors, in L1);
 *  2. per row, a transpose-add tree (ea512_reduce16) turns the 16 key vectors into one vector of 16
 *     dot products: 45 shuffle/add operations per 16 keys instead of 16 full horizontal sums.
 * K is read only inside [0, n) x [0, dim); s is written only in [0, mr) x [0, n).
 */
#include "cpu_simd/x86/avx512-common.h"
#include "cpu_simd/x86/kernels-x86.h"

/* Partial sums of keys jb..jb+KP-1 (element offset of key jb: kofs) for MR rows into buf[r*16 + jj]. */
EA_AINLINE void qk_keys(const int DT, const int MR, const int KP, int dim, const float *restrict q,
                        ptrdiff_t ldq, const void *restrict k, ptrdiff_t kofs, ptrdiff_t ldk,
                        __m512 *restrict buf, int jj)
{
    __m512 acc[EA_MR][8];
    for (int r = 0; r < MR; r++)
        for (int kp = 0; kp < KP; kp++)
            acc[r][kp] = _mm512_setzero_ps();
    for (int d = 0; d < dim; d += 16) {
        __m512 kv[8];
        for (int kp = 0; kp < KP; kp++)
            kv[kp] = ea512_load(DT, k, kofs + kp * ldk + d);
        for (int r = 0; r < MR; r++) {
            const __m512 qv = _mm512_load_ps(q + r * ldq + d);
            for (int kp = 0; kp < KP; kp++)
                acc[r][kp] = _mm512_fmadd_ps(qv, kv[kp], acc[r][kp]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int kp = 0; kp < KP; kp++)
            buf[r * 16 + jj + kp] = acc[r][kp];
}

EA_AINLINE void qk_rows(const int DT, const int MR, int n, int dim, const float *restrict q, ptrdiff_t ldq,
                        const void *restrict k, ptrdiff_t ldk, float *restrict s, ptrdiff_t lds)
{
    const int KP = MR <= 2 ? 8 : MR <= 4 ? 4 : 2;
    __m512 buf[EA_MR * 16];
    for (int j0 = 0; j0 < n; j0 += 16) {
        const int nk = n - j0 < 16 ? n - j0 : 16;
        int jj = 0;
        for (; jj + KP <= nk; jj += KP)
            qk_keys(DT, MR, KP, dim, q, ldq, k, (ptrdiff_t)(j0 + jj) * ldk, ldk, buf, jj);
        for (; jj < nk; jj++)
            qk_keys(DT, MR, 1, dim, q, ldq, k, (ptrdiff_t)(j0 + jj) * ldk, ldk, buf, jj);
        if (nk < 16) {
            for (int r = 0; r < MR; r++)
                for (int z = nk; z < 16; z++)
                    buf[r * 16 + z] = _mm512_setzero_ps();
            const __mmask16 live = (__mmask16)((1u << nk) - 1u);
            for (int r = 0; r < MR; r++)
                _mm512_mask_store_ps(s + r * lds + j0, live, ea512_reduce16(buf + r * 16));
        } else {
            for (int r = 0; r < MR; r++)
                _mm512_store_ps(s + r * lds + j0, ea512_reduce16(buf + r * 16));
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

EA_QK_ROWS_FN(ea_qk_rows_f32_avx512_n16) { qk_rows_mr(EA_LD_F32, mr, n, dim, q, ldq, k, ldk, s, lds); }
EA_QK_ROWS_FN(ea_qk_rows_f16_avx512_n16) { qk_rows_mr(EA_LD_F16, mr, n, dim, q, ldq, k, ldk, s, lds); }
EA_QK_ROWS_FN(ea_qk_rows_bf16_avx512_n16) { qk_rows_mr(EA_LD_BF16, mr, n, dim, q, ldq, k, ldk, s, lds); }
