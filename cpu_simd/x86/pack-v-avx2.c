/*
 * Pack of a V tile to f32, AVX2: v32[j][d] = v[j][d] widened (exact), rows n..nb_pad-1 zero. V is read
 * only inside [0, n) x [0, dim). Steps of 16 columns, and one of 8 when dim is an odd multiple of 8.
 */
#include "cpu_simd/x86/avx2-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void pack_v(const int DT, int n, int nb_pad, int dim, const void *restrict v, ptrdiff_t ldv,
                       float *restrict v32, ptrdiff_t ldo)
{
    int j = 0;
    for (; j < n; j++) {
        float *row = v32 + (ptrdiff_t)j * ldo;
        int d = 0;
        for (; d + 16 <= dim; d += 16) {
            const __m256 a = ea256_load(DT, v, (ptrdiff_t)j * ldv + d);
            const __m256 b = ea256_load(DT, v, (ptrdiff_t)j * ldv + d + 8);
            _mm256_store_ps(row + d, a);
            _mm256_store_ps(row + d + 8, b);
        }
        if (d < dim) /* dim an odd multiple of 8 */
            _mm256_store_ps(row + d, ea256_load(DT, v, (ptrdiff_t)j * ldv + d));
    }
    for (; j < nb_pad; j++)
        for (int d = 0; d < dim; d += 8)
            _mm256_store_ps(v32 + (ptrdiff_t)j * ldo + d, _mm256_setzero_ps());
}

EA_PACK_V_FN(ea_pack_v_f32_avx2) { pack_v(EA_LD_F32, n, nb_pad, dim, v, ldv, v32, ldo); }
EA_PACK_V_FN(ea_pack_v_f16_avx2) { pack_v(EA_LD_F16, n, nb_pad, dim, v, ldv, v32, ldo); }
EA_PACK_V_FN(ea_pack_v_bf16_avx2) { pack_v(EA_LD_BF16, n, nb_pad, dim, v, ldv, v32, ldo); }
