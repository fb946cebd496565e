// Development-only tile variants (not in the library's fatbin): the module of kernels_all.cu plus extra
// prefill configurations, built into the harness's cubin so one device call can time several shapes.
#include "../kernels_all.cu"

#define EA_DEV_PF(NAME, T, D, NW, BN, ST, QREG, MT, MINB, ...)                                                      \
    typedef ea_prefill_cfg<D, NW, BN, ST, QREG, MT, MINB, ##__VA_ARGS__> NAME##_cfg;                                          \
    EA_PREFILL_KERNEL(NAME, T, NAME##_cfg)

EA_DEV_PF(ea_dev_pf_d128_early, ea_f16_t, 128, 4, 64, 2, false, 2, 2, false, 1, false)
EA_DEV_PF(ea_dev_pf_d64_late, ea_f16_t, 64, 4, 64, 2, true, 2, 2, false, 1, true)
EA_DEV_PF(ea_dev_pf_d128_mt2_bn32_st3, ea_f16_t, 128, 4, 32, 3, false, 2, 2, false)
EA_DEV_PF(ea_dev_pf_d64_bn128, ea_f16_t, 64, 4, 128, 2, false, 2, 2, false, 1, false)

// Candidate fused split merge (ea_decode_fused_merge2), timed and checked by the harness's dec mode.
#define EA_DEV_DC(NAME, T, CFG)                                                                                    \
    extern "C" __global__ void __launch_bounds__(CFG::NT) NAME(const ea_cu_attn_args a) {                        \
        extern __shared__ __align__(16) uint16_t ea_smem_dc[];                                                    \
        ea_decode_body<T, CFG, 2>(a, ea_smem_dc);                                                                \
    }
EA_DEV_DC(ea_dev_dc_f16_d128_m2, ea_f16_t, ea_dc_d128)
EA_DEV_DC(ea_dev_dc_bf16_d128_m2, ea_bf16_t, ea_dc_d128)
