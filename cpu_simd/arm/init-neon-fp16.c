/*
 * The NEON-FP16 tier: NEON plus FP16 arithmetic where the result is exact, statistics FP32.
 *
 * What it changes: qk_rows for f16 K uses FMLAL/FMLAL2 (fp16 x fp16 products added to FP32
 * accumulators, products exact) when the call's q is exactly representable in fp16; see
 * qk-rows-f16-neonfp16-fmlal-4x4.c. Everything else stays NEON, deliberately:
 *  - softmax statistics, row sums and O accumulators are never FP16 (the contract);
 *  - pv_rows would need p in fp16: probabilities round to 11 bits and those below 6e-5 (a flat
 *    softmax over more than ~16k keys) become subnormal or zero, so P.V stays FP32 with V widened;
 *  - the packed kernels work on f32 packs, where FP16 has nothing exact to offer;
 *  - FP16 FMLA (.8h) with FP16 accumulators would be twice as fast but loses precision in every
 *    long sum, which is what the contract forbids.
 *
 * FMLAL needs FEAT_FHM (HWCAP_ASIMDFHM, bit 23 of AT_HWCAP, "asimdfhm" in /proc/cpuinfo), an
 * optional part of ARMv8.2-A that FP16-capable cores such as Cortex-A76, Neoverse-N1, Cortex-X1 and
 * Orin's Cortex-A78AE lack (gcc's -mcpu tables; Neoverse-V1, Cortex-A710 and later have it). cpu_features.c requires it for EDGEATTN_CPU_NEON_FP16; this
 * initialiser checks the bit once more (one getauxval at create), so a caller that runs the tier's
 * initialiser directly on such a core keeps the NEON kernels (tier "neon") instead of faulting.
 */
#include <sys/auxv.h>

#include "cpu_simd/arm/neon-common.h"

#ifndef HWCAP_ASIMDFHM
#define HWCAP_ASIMDFHM (1UL << 23)
#endif

void ea_cpu_kernels_init_neon_fp16(ea_cpu_kernels *k)
{
#if defined(EA_HAVE_FP16FML)
    if (!(getauxval(AT_HWCAP) & HWCAP_ASIMDFHM))
        return;
    k->tier = "neon-fp16";
    k->qk_rows[EDGEATTN_F16] = ea_qk_rows_f16_neonfp16_fmlal_4x4;
#else
    (void)k; /* compiler without +fp16fml: the NEON kernels stay */
#endif
}
