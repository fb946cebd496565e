/*
 * Shared pieces of the aarch64 tiers: element loaders that widen f32/f16/bf16 storage to FP32 lanes,
 * and the NEON kernels one tier borrows from another. Internal to cpu_simd/arm (hidden symbols).
 *
 * Widening needs no FP16 arithmetic: f16 -> f32 is FCVTL (vcvt_f32_f16), part of base ARMv8 NEON,
 * and bf16 -> f32 is a 16-bit left shift into the high half of each 32-bit lane (vshll_n_u16).
 * Both are exact. No bf16 vector types are used, so gcc 12's bf16-constant miscompile (docs/BUILDING.md,
 * trap 4) cannot arise here.
 */
#ifndef EDGEATTN_CPU_ARM_NEON_COMMON_H
#define EDGEATTN_CPU_ARM_NEON_COMMON_H

#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#include "cpu_simd/ukernel.h"

#define EA_ALWAYS_INLINE inline __attribute__((always_inline))

/* Four consecutive elements p[i..i+3] of storage dtype dt, widened to f32. dt is a constant at every
 * call site, so the switch folds away after inlining. */
static EA_ALWAYS_INLINE float32x4_t ea_neon_ld4(int dt, const void *p, ptrdiff_t i)
{
    if (dt == EDGEATTN_F16)
        return vcvt_f32_f16(vld1_f16((const float16_t *)p + i));
    if (dt == EDGEATTN_BF16)
        return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)p + i), 16));
    return vld1q_f32((const float *)p + i);
}

/* Eight consecutive elements p[i..i+7] widened to two f32 vectors (one 128-bit load for f16/bf16). */
static EA_ALWAYS_INLINE void ea_neon_ld8(int dt, const void *p, ptrdiff_t i, float32x4_t *lo,
                                         float32x4_t *hi)
{
    if (dt == EDGEATTN_F16) {
        const float16x8_t h = vld1q_f16((const float16_t *)p + i);
        *lo = vcvt_f32_f16(vget_low_f16(h));
        *hi = vcvt_high_f32_f16(h);
    } else if (dt == EDGEATTN_BF16) {
        const uint16x8_t h = vld1q_u16((const uint16_t *)p + i);
        *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
    } else {
        *lo = vld1q_f32((const float *)p + i);
        *hi = vld1q_f32((const float *)p + i + 4);
    }
}

/* One element, widened (tails only). */
static EA_ALWAYS_INLINE float ea_neon_ld1(int dt, const void *p, ptrdiff_t i)
{
    if (dt == EDGEATTN_F16)
        return (float)((const __fp16 *)p)[i];
    if (dt == EDGEATTN_BF16) {
        const uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    return ((const float *)p)[i];
}

/* 4x4 transpose: in rows r0..r3 (keys), out columns c0..c3 (dims), stored at dst, dst + ld, ... (the
 * transposing packers). */
static EA_ALWAYS_INLINE void ea_neon_transpose4(float32x4_t r0, float32x4_t r1, float32x4_t r2,
                                               float32x4_t r3, float *restrict dst, ptrdiff_t ld)
{
    const float32x4_t t0 = vtrn1q_f32(r0, r1); /* r0[0] r1[0] r0[2] r1[2] */
    const float32x4_t t1 = vtrn2q_f32(r0, r1); /* r0[1] r1[1] r0[3] r1[3] */
    const float32x4_t t2 = vtrn1q_f32(r2, r3);
    const float32x4_t t3 = vtrn2q_f32(r2, r3);
    const float64x2_t u0 = vreinterpretq_f64_f32(t0), u1 = vreinterpretq_f64_f32(t1);
    const float64x2_t u2 = vreinterpretq_f64_f32(t2), u3 = vreinterpretq_f64_f32(t3);
    vst1q_f32(dst + 0 * ld, vreinterpretq_f32_f64(vtrn1q_f64(u0, u2))); /* r0[0] r1[0] r2[0] r3[0] */
    vst1q_f32(dst + 1 * ld, vreinterpretq_f32_f64(vtrn1q_f64(u1, u3)));
    vst1q_f32(dst + 2 * ld, vreinterpretq_f32_f64(vtrn2q_f64(u0, u2)));
    vst1q_f32(dst + 3 * ld, vreinterpretq_f32_f64(vtrn2q_f64(u1, u3)));
}

/* The NEON tier's kernels, one file each (named op-dtype-isa-tile); init-neon.c puts them in the
 * table and the NEON-FP16 tier reuses them where it has nothing better. */
EA_QK_PACKED_FN(ea_qk_f32_neon_8x8);
EA_PV_PACKED_FN(ea_pv_f32_neon_8x8);
EA_SOFTMAX_FN(ea_softmax_f32_neon_rr2_p5);
EA_PACK_KT_FN(ea_pack_kt_f32_neon_4x4);
EA_PACK_KT_FN(ea_pack_kt_f16_neon_4x4);
EA_PACK_KT_FN(ea_pack_kt_bf16_neon_4x4);
EA_PACK_V_FN(ea_pack_v_f32_neon);
EA_PACK_V_FN(ea_pack_v_f16_neon);
EA_PACK_V_FN(ea_pack_v_bf16_neon);
EA_QK_ROWS_FN(ea_qk_rows_f32_neon_4x4);
EA_QK_ROWS_FN(ea_qk_rows_f16_neon_4x4);
EA_QK_ROWS_FN(ea_qk_rows_bf16_neon_4x4);
EA_QK_ROWS_FN(ea_qk_rows_q8_neon_4x4); /* quantised rows (rows-q-neon.c) */
EA_QK_ROWS_FN(ea_qk_rows_q4_neon_4x4);
EA_PV_ROWS_FN(ea_pv_rows_q8_neon_4x16);
EA_PV_ROWS_FN(ea_pv_rows_q4_neon_4x16);
EA_PACK_KT_FN(ea_pack_kt_q8_neon_4x4);
EA_PACK_KT_FN(ea_pack_kt_q4_neon_4x4);
EA_PACK_V_FN(ea_pack_v_q8_neon);
EA_PACK_V_FN(ea_pack_v_q4_neon);
EA_PV_ROWS_FN(ea_pv_rows_f32_neon_8x8);
EA_PV_ROWS_FN(ea_pv_rows_f16_neon_8x8);
EA_PV_ROWS_FN(ea_pv_rows_bf16_neon_8x8);

/* The NEON-FP16 tier's kernels (built with +fp16+fp16fml). */
EA_QK_ROWS_FN(ea_qk_rows_f16_neonfp16_fmlal_4x4);

#endif /* EDGEATTN_CPU_ARM_NEON_COMMON_H */
