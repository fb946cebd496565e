/*
 * Transposing pack of a K tile to f32, AVX2: kt[d][j] = k[j][d]. Blocks of 8 keys x 8 dims are loaded
 * row by row (f16 widened by vcvtph2ps, bf16 by a 16-bit shift, both exact), transposed in registers
 * (avx2-common.h) and stored as 8 aligned kt row segments. Keys n..nb_pad-1 are zero columns; K is
 * read only inside [0, n) x [0, dim).
 */
#include "cpu_simd/x86/avx2-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void pack_kt(const int DT, int n, int nb_pad, int dim, const void *restrict k, ptrdiff_t ldk,
                        float *restrict kt, ptrdiff_t ldkt)
{
    for (int j0 = 0; j0 < nb_pad; j0 += 8) {
        const int rows = n - j0 < 8 ? (n - j0 > 0 ? n - j0 : 0) : 8;
        for (int d0 = 0; d0 < dim; d0 += 8) {
            __m256 t[8];
            if (rows == 8) {
                for (int i = 0; i < 8; i++)
                    t[i] = ea256_load(DT, k, (ptrdiff_t)(j0 + i) * ldk + d0);
            } else {
                for (int i = 0; i < 8; i++)
                    t[i] = i < rows ? ea256_load(DT, k, (ptrdiff_t)(j0 + i) * ldk + d0) : _mm256_setzero_ps();
            }
            if (rows > 0)
                ea256_transpose8(t);
            for (int i = 0; i < 8; i++)
                _mm256_store_ps(kt + (ptrdiff_t)(d0 + i) * ldkt + j0, t[i]);
        }
    }
}

EA_PACK_KT_FN(ea_pack_kt_f32_avx2_8x8) { pack_kt(EA_LD_F32, n, nb_pad, dim, k, ldk, kt, ldkt); }
EA_PACK_KT_FN(ea_pack_kt_f16_avx2_8x8) { pack_kt(EA_LD_F16, n, nb_pad, dim, k, ldk, kt, ldkt); }
EA_PACK_KT_FN(ea_pack_kt_bf16_avx2_8x8) { pack_kt(EA_LD_BF16, n, nb_pad, dim, k, ldk, kt, ldkt); }
