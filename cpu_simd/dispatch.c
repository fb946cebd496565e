/* The init ladders: run once at create. Each tier overwrites what it implements and the ladder stops
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

void ea_cpu_kernels_init_dim8(ea_cpu_kernels *k, uint32_t flags)
{
    ea_cpu_kernels_init(k, flags);
#if defined(EA_HAVE_X86_SIMD)
    /* The AVX-512 kernels load and store whole 16-float rows of q, o and v32 (64-byte aligned only
     * when the head dim is a multiple of 16) and step the head dim by 16: the AVX2 kernels take
     * their place, except the two that never step along the head dim's rows in vectors (qk reads q
     * one element at a time; softmax has no head dim). */
    if ((flags & EDGEATTN_CPU_AVX2) && (flags & EDGEATTN_CPU_AVX512)) {
        const ea_cpu_kernels wide = *k;
        ea_cpu_kernels_init_avx2(k);
        k->tier = wide.tier;
        k->qk = wide.qk;
        k->softmax = wide.softmax;
    }
#endif
}
