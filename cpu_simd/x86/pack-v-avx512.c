/*
 * Pack of a V tile to f32, AVX-512: v32[j][d] = v[j][d] widened (f16 by vcvtph2ps, bf16 by a shift,
 * both exact), rows n..nb_pad-1 zero. V is read only inside [0, n) x [0, dim).
 */
#include "cpu_simd/x86/avx512-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_AINLINE void pack_v(const int DT, int n, int nb_pad, int dim, const void *restrict v, ptrdiff_t ldv,
                       float *restrict v32, ptrdiff_t ldo)
{
    int j = 0;
    for (; j < n; j++) {
        float *row = v32 + (ptrdiff_t)j * ldo;
        int d = 0;
        for (; d + 64 <= dim; d += 64) {
            const __m512 a = ea512_load(DT, v, (ptrdiff_t)j * ldv + d);
            const __m512 b = ea512_load(DT, v, (ptrdiff_t)j * ldv + d + 16);
            const __m512 c = ea512_load(DT, v, (ptrdiff_t)j * ldv + d + 32);
            const __m512 e = ea512_load(DT, v, (ptrdiff_t)j * ldv + d + 48);
            _mm512_store_ps(row + d, a);
            _mm512_store_ps(row + d + 16, b);
            _mm512_store_ps(row + d + 32, c);
            _mm512_store_ps(row + d + 48, e);
        }
        for (; d < dim; d += 16)
            _mm512_store_ps(row + d, ea512_load(DT, v, (ptrdiff_t)j * ldv + d));
    }
    for (; j < nb_pad; j++)
        for (int d = 0; d < dim; d += 16)
            _mm512_store_ps(v32 + (ptrdiff_t)j * ldo + d, _mm512_setzero_ps());
}

EA_PACK_V_FN(ea_pack_v_f32_avx512) { pack_v(EA_LD_F32, n, nb_pad, dim, v, ldv, v32, ldo); }
EA_PACK_V_FN(ea_pack_v_f16_avx512) { pack_v(EA_LD_F16, n, nb_pad, dim, v, ldv, v32, ldo); }
EA_PACK_V_FN(ea_pack_v_bf16_avx512) { pack_v(EA_LD_BF16, n, nb_pad, dim, v, ldv, v32, ldo); }
