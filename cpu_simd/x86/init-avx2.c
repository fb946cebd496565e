/* The AVX2 rung of the init ladder (cpu_simd/dispatch.c): called only when cpuid and xgetbv say
 * the CPU has AVX2, FMA and F16C and the OS saves the YMM state. Overwrites every entry. */
#include "cpu_simd/x86/kernels-x86.h"

void ea_cpu_kernels_init_avx2(ea_cpu_kernels *k)
{
    k->tier = "avx2";
    k->qk = ea_qk_f32_avx2_m4n24;
    k->pv = ea_pv_f32_avx2_m4n24;
    k->softmax = ea_softmax_f32_avx2_rr2_p6;
    k->pack_kt[EDGEATTN_F32] = ea_pack_kt_f32_avx2_8x8;
    k->pack_kt[EDGEATTN_F16] = ea_pack_kt_f16_avx2_8x8;
    k->pack_kt[EDGEATTN_BF16] = ea_pack_kt_bf16_avx2_8x8;
    k->pack_v[EDGEATTN_F32] = ea_pack_v_f32_avx2;
    k->pack_v[EDGEATTN_F16] = ea_pack_v_f16_avx2;
    k->pack_v[EDGEATTN_BF16] = ea_pack_v_bf16_avx2;
    k->qk_rows[EDGEATTN_F32] = ea_qk_rows_f32_avx2_n8;
    k->qk_rows[EDGEATTN_F16] = ea_qk_rows_f16_avx2_n8;
    k->qk_rows[EDGEATTN_BF16] = ea_qk_rows_bf16_avx2_n8;
    k->pv_rows[EDGEATTN_F32] = ea_pv_rows_f32_avx2_m4n16;
    k->pv_rows[EDGEATTN_F16] = ea_pv_rows_f16_avx2_m4n16;
    k->pv_rows[EDGEATTN_BF16] = ea_pv_rows_bf16_avx2_m4n16;
    k->pack_kt[EDGEATTN_Q8] = ea_pack_kt_q8_avx2_8x8;
    k->pack_kt[EDGEATTN_Q4] = ea_pack_kt_q4_avx2_8x8;
    k->pack_v[EDGEATTN_Q8] = ea_pack_v_q8_avx2;
    k->pack_v[EDGEATTN_Q4] = ea_pack_v_q4_avx2;
    k->qk_rows[EDGEATTN_Q8] = ea_qk_rows_q8_avx2_n8;
    k->qk_rows[EDGEATTN_Q4] = ea_qk_rows_q4_avx2_n8;
    k->pv_rows[EDGEATTN_Q8] = ea_pv_rows_q8_avx2_m4n16;
    k->pv_rows[EDGEATTN_Q4] = ea_pv_rows_q4_avx2_m4n16;
}
