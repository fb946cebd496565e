/* The x86 micro-kernels (one prototype each, through the contract's signature macros). Names state
 * op, dtype, ISA and tile like their files; the init files put them into struct ea_cpu_kernels. */
#ifndef EDGEATTN_X86_KERNELS_H
#define EDGEATTN_X86_KERNELS_H

#include "cpu_simd/ukernel.h"

/* AVX-512 F/BW/VL/DQ */
EA_QK_PACKED_FN(ea_qk_f32_avx512_m8n32);
EA_PV_PACKED_FN(ea_pv_f32_avx512_m8n32);
EA_SOFTMAX_FN(ea_softmax_f32_avx512_rr2_p6);
EA_PACK_KT_FN(ea_pack_kt_f32_avx512_16x16);
EA_PACK_KT_FN(ea_pack_kt_f16_avx512_16x16);
EA_PACK_KT_FN(ea_pack_kt_bf16_avx512_16x16);
EA_PACK_V_FN(ea_pack_v_f32_avx512);
EA_PACK_V_FN(ea_pack_v_f16_avx512);
EA_PACK_V_FN(ea_pack_v_bf16_avx512);
EA_QK_ROWS_FN(ea_qk_rows_f32_avx512_n16);
EA_QK_ROWS_FN(ea_qk_rows_f16_avx512_n16);
EA_QK_ROWS_FN(ea_qk_rows_bf16_avx512_n16);
EA_PV_ROWS_FN(ea_pv_rows_f32_avx512_m4n64);
EA_PV_ROWS_FN(ea_pv_rows_f16_avx512_m4n64);
EA_PV_ROWS_FN(ea_pv_rows_bf16_avx512_m4n64);

/* AVX2 + FMA + F16C */
EA_QK_PACKED_FN(ea_qk_f32_avx2_m4n24);
EA_PV_PACKED_FN(ea_pv_f32_avx2_m4n24);
EA_SOFTMAX_FN(ea_softmax_f32_avx2_rr2_p6);
EA_PACK_KT_FN(ea_pack_kt_f32_avx2_8x8);
EA_PACK_KT_FN(ea_pack_kt_f16_avx2_8x8);
EA_PACK_KT_FN(ea_pack_kt_bf16_avx2_8x8);
EA_PACK_V_FN(ea_pack_v_f32_avx2);
EA_PACK_V_FN(ea_pack_v_f16_avx2);
EA_PACK_V_FN(ea_pack_v_bf16_avx2);
EA_QK_ROWS_FN(ea_qk_rows_f32_avx2_n8);
EA_QK_ROWS_FN(ea_qk_rows_f16_avx2_n8);
EA_QK_ROWS_FN(ea_qk_rows_bf16_avx2_n8);
EA_PV_ROWS_FN(ea_pv_rows_f32_avx2_m4n16);
EA_PV_ROWS_FN(ea_pv_rows_f16_avx2_m4n16);
EA_PV_ROWS_FN(ea_pv_rows_bf16_avx2_m4n16);
EA_QK_ROWS_FN(ea_qk_rows_q8_avx2_n8); /* quantised rows (rows-q-avx2.c) */
EA_QK_ROWS_FN(ea_qk_rows_q4_avx2_n8);
EA_PV_ROWS_FN(ea_pv_rows_q8_avx2_m4n16);
EA_PV_ROWS_FN(ea_pv_rows_q4_avx2_m4n16);
EA_PACK_KT_FN(ea_pack_kt_q8_avx2_8x8);
EA_PACK_KT_FN(ea_pack_kt_q4_avx2_8x8);
EA_PACK_V_FN(ea_pack_v_q8_avx2);
EA_PACK_V_FN(ea_pack_v_q4_avx2);

#endif
