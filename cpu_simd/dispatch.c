/* The init ladder: run once at create. Each tier overwrites what it implements and the ladder stops
 * at the first feature the (masked) flags lack. */
#include "cpu_simd/ukernel.h"

void ea_cpu_kernels_init(ea_cpu_kernels *k, uint32_t flags)
{
    ea_cpu_kernels_init_scalar(k);
#if defined(EA_HAVE_X86_SIMD)
    if (!(flags & EDGEATTN_CPU_AVX2))
        return;
    ea_cpu_kernels_init_avx2(k);
    if (!(flags & EDGEATTN_CPU_AVX512))
        return;
    ea_cpu_kernels_init_avx512(k);
#elif defined(EA_HAVE_ARM_SIMD)
    if (!(flags & EDGEATTN_CPU_NEON))
        return;
    ea_cpu_kernels_init_neon(k);
    if (!(flags & EDGEATTN_CPU_NEON_FP16))
        return;
    ea_cpu_kernels_init_neon_fp16(k);
#else
    (void)flags;
#endif
}
