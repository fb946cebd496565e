/*
 * The loops that measure this machine's ceilings, one version per ISA, chosen at run time.
 *
 * FMA peak: NACC independent chains acc = acc * m + c, each a fused multiply-add, held in registers.
 * With NACC >= (FMA latency) x (FMA pipes) chains the pipes never wait, so the loop runs at the
 * core's FMA throughput. m = 1 - 2^-20 and c = 2^-20 make every chain converge to 1.0: no overflow,
 * no denormals (which would slow some cores down), whatever the iteration count.
 *
 * Streaming read: a sum over a buffer with several vector accumulators, so the adds never limit the
 * loads; the buffer is much larger than the last-level cache, so the figure is memory bandwidth.
 *
 * The x86 versions carry target attributes, so this file is compiled with the baseline flags and a
 * CPU without AVX-512 never executes an AVX-512 instruction (bench_best_isa asks the library, which
 * checks cpuid and xgetbv).
 */
#include "bench.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define BENCH_NEON 1
#endif

#define CHAIN_M (1.0f - 1.0f / 1048576.0f)
#define CHAIN_C (1.0f / 1048576.0f)

/* A list macro for sixteen (or twelve) named accumulators: explicit registers even at -O1. */
#define LIST12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define LIST16(X) LIST12(X) X(12) X(13) X(14) X(15)
#define LIST8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* ---------------------------------------------------------------- generic C */
#define G_ACCS 8
static float fma_generic(uint64_t iters)
{
    float a[G_ACCS];
    for (int j = 0; j < G_ACCS; j++)
        a[j] = 0.5f + 0.01f * (float)j;
    for (uint64_t i = 0; i < iters; i++)
        for (int j = 0; j < G_ACCS; j++)
            a[j] = a[j] * CHAIN_M + CHAIN_C;
    float s = 0.0f;
    for (int j = 0; j < G_ACCS; j++)
        s += a[j];
    return s;
}

static float sum_generic(const float *p, size_t n)
{
    float a[8] = {0};
    for (size_t i = 0; i < n; i += 8)
        for (int j = 0; j < 8; j++)
            a[j] += p[i + (size_t)j];
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

#ifdef BENCH_X86
/* ---------------------------------------------------------------- AVX2 + FMA: 12 chains of 8 */
__attribute__((target("avx2,fma"))) static float fma_avx2(uint64_t iters)
{
    const __m256 m = _mm256_set1_ps(CHAIN_M), c = _mm256_set1_ps(CHAIN_C);
#define DECL(j) __m256 a##j = _mm256_set1_ps(0.5f + 0.01f * (float)(j));
#define STEP(j) a##j = _mm256_fmadd_ps(a##j, m, c);
#define FOLD(j) s = _mm256_add_ps(s, a##j);
    LIST12(DECL)
    for (uint64_t i = 0; i < iters; i++) {
        LIST12(STEP)
    }
    __m256 s = _mm256_setzero_ps();
    LIST12(FOLD)
#undef DECL
#undef STEP
#undef FOLD
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

__attribute__((target("avx2"))) static float sum_avx2(const float *p, size_t n)
{
#define DECL(j) __m256 a##j = _mm256_setzero_ps();
#define STEP(j) a##j = _mm256_add_ps(a##j, _mm256_load_ps(p + i + 8 * (j)));
#define FOLD(j) s = _mm256_add_ps(s, a##j);
    LIST8(DECL)
    for (size_t i = 0; i < n; i += 64) {
        LIST8(STEP)
    }
    __m256 s = _mm256_setzero_ps();
    LIST8(FOLD)
#undef DECL
#undef STEP
#undef FOLD
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

/* ---------------------------------------------------------------- AVX-512: 16 chains of 16 */
__attribute__((target("avx512f"))) static float fma_avx512(uint64_t iters)
{
    const __m512 m = _mm512_set1_ps(CHAIN_M), c = _mm512_set1_ps(CHAIN_C);
#define DECL(j) __m512 a##j = _mm512_set1_ps(0.5f + 0.01f * (float)(j));
#define STEP(j) a##j = _mm512_fmadd_ps(a##j, m, c);
#define FOLD(j) s = _mm512_add_ps(s, a##j);
    LIST16(DECL)
    for (uint64_t i = 0; i < iters; i++) {
        LIST16(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    LIST16(FOLD)
#undef DECL
#undef STEP
#undef FOLD
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f"))) static float sum_avx512(const float *p, size_t n)
{
#define DECL(j) __m512 a##j = _mm512_setzero_ps();
#define STEP(j) a##j = _mm512_add_ps(a##j, _mm512_load_ps(p + i + 16 * (j)));
#define FOLD(j) s = _mm512_add_ps(s, a##j);
    LIST8(DECL)
    for (size_t i = 0; i < n; i += 128) {
        LIST8(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    LIST8(FOLD)
#undef DECL
#undef STEP
#undef FOLD
    return _mm512_reduce_add_ps(s);
}
#endif /* BENCH_X86 */

#ifdef BENCH_NEON
/* ---------------------------------------------------------------- NEON: 16 chains of 4 (32 registers) */
static float fma_neon(uint64_t iters)
{
    const float32x4_t m = vdupq_n_f32(CHAIN_M), c = vdupq_n_f32(CHAIN_C);
#define DECL(j) float32x4_t a##j = vdupq_n_f32(0.5f + 0.01f * (float)(j));
#define STEP(j) a##j = vfmaq_f32(c, a##j, m);
#define FOLD(j) s = vaddq_f32(s, a##j);
    LIST16(DECL)
    for (uint64_t i = 0; i < iters; i++) {
        LIST16(STEP)
    }
    float32x4_t s = vdupq_n_f32(0.0f);
    LIST16(FOLD)
#undef DECL
#undef STEP
#undef FOLD
    return vaddvq_f32(s);
}

static float sum_neon(const float *p, size_t n)
{
#define DECL(j) float32x4_t a##j = vdupq_n_f32(0.0f);
#define STEP(j) a##j = vaddq_f32(a##j, vld1q_f32(p + i + 4 * (j)));
#define FOLD(j) s = vaddq_f32(s, a##j);
    LIST8(DECL)
    for (size_t i = 0; i < n; i += 32) {
        LIST8(STEP)
    }
    float32x4_t s = vdupq_n_f32(0.0f);
    LIST8(FOLD)
#undef DECL
#undef STEP
#undef FOLD
    return vaddvq_f32(s);
}
#endif /* BENCH_NEON */

bench_isa bench_best_isa(uint32_t cpu_features)
{
#ifdef BENCH_X86
    if (cpu_features & EDGEATTN_CPU_AVX512)
        return BENCH_ISA_AVX512;
    if (cpu_features & EDGEATTN_CPU_AVX2)
        return BENCH_ISA_AVX2;
#endif
#ifdef BENCH_NEON
    (void)cpu_features;
    return BENCH_ISA_NEON; /* Advanced SIMD is part of every aarch64 core */
#endif
    (void)cpu_features;
    return BENCH_ISA_GENERIC;
}

const char *bench_isa_name(bench_isa isa)
{
    switch (isa) {
    case BENCH_ISA_AVX2: return "avx2";
    case BENCH_ISA_AVX512: return "avx512";
    case BENCH_ISA_NEON: return "neon";
    default: return "c";
    }
}

double bench_fma_flops_per_iter(bench_isa isa)
{
    switch (isa) {
    case BENCH_ISA_AVX2: return 12.0 * 8 * 2;
    case BENCH_ISA_AVX512: return 16.0 * 16 * 2;
    case BENCH_ISA_NEON: return 16.0 * 4 * 2;
    default: return G_ACCS * 2.0;
    }
}

float bench_fma_chains(bench_isa isa, uint64_t iters)
{
    switch (isa) {
#ifdef BENCH_X86
    case BENCH_ISA_AVX2: return fma_avx2(iters);
    case BENCH_ISA_AVX512: return fma_avx512(iters);
#endif
#ifdef BENCH_NEON
    case BENCH_ISA_NEON: return fma_neon(iters);
#endif
    default: return fma_generic(iters);
    }
}

float bench_sum_stream(bench_isa isa, const float *p, size_t n)
{
    switch (isa) {
#ifdef BENCH_X86
    case BENCH_ISA_AVX2: return sum_avx2(p, n);
    case BENCH_ISA_AVX512: return sum_avx512(p, n);
#endif
#ifdef BENCH_NEON
    case BENCH_ISA_NEON: return sum_neon(p, n);
#endif
    default: return sum_generic(p, n);
    }
}
