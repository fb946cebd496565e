/*
 * Transposing pack of a K tile to f32, AVX-512: kt[d][j] = k[j][d]. Blocks of 16 keys x 16 dims are
 * loaded row by row (f16 widened by vcvtph2ps, bf16 by a 16-bit shift, both exact), transposed in
 * registers (avx512-common.h) and stored as 16 aligned kt rows. Keys n..nb_pad-1 are zero columns;
 * K is read only inside [0, n) x [0, dim).
 */
#include "cpu_simd/x86/avx512-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void pack_kt(const int DT, int n, int nb_pad, int dim, const void *restrict k, ptrdiff_t ldk,
                        float *restrict kt, ptrdiff_t ldkt)
{
    for (int j0 = 0; j0 < nb_pad; j0 += 16) {
        const int rows = n - j0 < 16 ? (n - j0 > 0 ? n - j0 : 0) : 16;
        for (int d0 = 0; d0 < dim; d0 += 16) {
            __m512 t[16];
            if (rows == 16) {
                for (int i = 0; i < 16; i++)
                    t[i] = ea512_load(DT, k, (ptrdiff_t)(j0 + i) * ldk + d0);
            } else {
                for (int i = 0; i < 16; i++)
                    t[i] = i < rows ? ea512_load(DT, k, (ptrdiff_t)(j0 + i) * ldk + d0) : _mm512_setzero_ps();
            }
            if (rows > 0)
                ea512_transpose16(t);
            for (int i = 0; i < 16; i++)
                _mm512_store_ps(kt + (ptrdiff_t)(d0 + i) * ldkt + j0, t[i]);
        }
    }
}

EA_PACK_KT_FN(ea_pack_kt_f32_avx512_16x16) { pack_kt(EA_LD_F32, n, nb_pad, dim, k, ldk, kt, ldkt); }
EA_PACK_KT_FN(ea_pack_kt_f16_avx512_16x16) { pack_kt(EA_LD_F16, n, nb_pad, dim, k, ldk, kt, ldkt); }
EA_PACK_KT_FN(ea_pack_kt_bf16_avx512_16x16) { pack_kt(EA_LD_BF16, n, nb_pad, dim, k, ldk, kt, ldkt); }
