/*
 * The NEON tier: Advanced SIMD is part of every ARMv8-A core, so this is the aarch64 baseline and
 * replaces every scalar entry. FP32 arithmetic throughout; f16/bf16 storage is widened on load.
 */
#include "cpu_simd/arm/neon-common.h"

void ea_cpu_kernels_init_neon(ea_cpu_kernels *k)
{
    k->tier = "neon";
    k->qk = ea_qk_f32_neon_8x8;
    k->pv = ea_pv_f32_neon_8x8;
    k->softmax = ea_softmax_f32_neon_rr2_p5;
    k->pack_kt[EDGEATTN_F32] = ea_pack_kt_f32_neon_4x4;
    k->pack_kt[EDGEATTN_F16] = ea_pack_kt_f16_neon_4x4;
    k->pack_kt[EDGEATTN_BF16] = ea_pack_kt_bf16_neon_4x4;
    k->pack_v[EDGEATTN_F32] = ea_pack_v_f32_neon;
    k->pack_v[EDGEATTN_F16] = ea_pack_v_f16_neon;
    k->pack_v[EDGEATTN_BF16] = ea_pack_v_bf16_neon;
    k->qk_rows[EDGEATTN_F32] = ea_qk_rows_f32_neon_4x4;
    k->qk_rows[EDGEATTN_F16] = ea_qk_rows_f16_neon_4x4;
    k->qk_rows[EDGEATTN_BF16] = ea_qk_rows_bf16_neon_4x4;
    k->pv_rows[EDGEATTN_F32] = ea_pv_rows_f32_neon_8x8;
    k->pv_rows[EDGEATTN_F16] = ea_pv_rows_f16_neon_8x8;
    k->pv_rows[EDGEATTN_BF16] = ea_pv_rows_bf16_neon_8x8;
    k->pack_kt[EDGEATTN_Q8] = ea_pack_kt_q8_neon_4x4;
    k->pack_kt[EDGEATTN_Q4] = ea_pack_kt_q4_neon_4x4;
    k->pack_v[EDGEATTN_Q8] = ea_pack_v_q8_neon;
    k->pack_v[EDGEATTN_Q4] = ea_pack_v_q4_neon;
    k->qk_rows[EDGEATTN_Q8] = ea_qk_rows_q8_neon_4x4;
    k->qk_rows[EDGEATTN_Q4] = ea_qk_rows_q4_neon_4x4;
    k->pv_rows[EDGEATTN_Q8] = ea_pv_rows_q8_neon_4x16;
    k->pv_rows[EDGEATTN_Q4] = ea_pv_rows_q4_neon_4x16;
}
