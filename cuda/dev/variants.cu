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
