/*
 * Pack of a V tile on NEON: v32[j][d] = (float)v[j][d] for j < n, rows n..nb_pad-1 zero. One function
 * per storage dtype. A straight widening copy, 16 elements per step: one or two 128-bit loads,
 * FCVTL/FCVTL2 (f16) or SHLL/SHLL2 (bf16), four 16-byte stores; a last step of 8 when dim is an odd
 * multiple of 8.
 */
#include "cpu_simd/arm/neon-common.h"

static EA_ALWAYS_INLINE void pack_v_body(const int dt, int n, int nb_pad, int dim,
                                         const void *restrict v, ptrdiff_t ldv,
                                         float *restrict v32, ptrdiff_t ldo)
{
    for (int j = 0; j < n; j++) {
        float *dst = v32 + j * ldo;
        const ptrdiff_t base = j * ldv;
        int d = 0;
        for (; d + 16 <= dim; d += 16) {
            float32x4_t a0, a1, a2, a3;
            ea_neon_ld8(dt, v, base + d, &a0, &a1);
            ea_neon_ld8(dt, v, base + d + 8, &a2, &a3);
            vst1q_f32(dst + d, a0);
            vst1q_f32(dst + d + 4, a1);
            vst1q_f32(dst + d + 8, a2);
            vst1q_f32(dst + d + 12, a3);
        }
        if (d < dim) { /* dim an odd multiple of 8 */
            float32x4_t a0, a1;
            ea_neon_ld8(dt, v, base + d, &a0, &a1);
            vst1q_f32(dst + d, a0);
            vst1q_f32(dst + d + 4, a1);
        }
    }
    const float32x4_t z = vdupq_n_f32(0.0f);
    for (int j = n; j < nb_pad; j++)
        for (int d = 0; d < dim; d += 4)
            vst1q_f32(v32 + j * ldo + d, z);
}

EA_PACK_V_FN(ea_pack_v_f32_neon)
{
    pack_v_body(EDGEATTN_F32, n, nb_pad, dim, v, ldv, v32, ldo);
}

EA_PACK_V_FN(ea_pack_v_f16_neon)
{
    pack_v_body(EDGEATTN_F16, n, nb_pad, dim, v, ldv, v32, ldo);
}

EA_PACK_V_FN(ea_pack_v_bf16_neon)
{
    pack_v_body(EDGEATTN_BF16, n, nb_pad, dim, v, ldv, v32, ldo);
}
