/* CPU feature detection. On x86 the CPU must report a feature (cpuid) and the OS must save the
 * registers it uses (xgetbv: XMM|YMM for AVX2, plus opmask|ZMM_Hi256|Hi16_ZMM for AVX-512). */
#include <stdio.h>
#include <string.h>

#include "cpu_simd/cpu_features.h"
#include "edgeattn/edgeattn.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void)
{
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

uint32_t ea_cpu_detect(void)
{
    unsigned a, b, c, d;
    uint32_t flags = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return 0;
    const uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) /* XMM and YMM state */
        return 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    if (avx2 && fma && f16c)
        flags |= EDGEATTN_CPU_AVX2;
    const int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    if ((flags & EDGEATTN_CPU_AVX2) && avx512f && avx512dq && avx512bw && avx512vl && (xcr0 & 0xe0) == 0xe0)
        flags |= EDGEATTN_CPU_AVX512;
    return flags;
}

void ea_cpu_model(char *buf, size_t len)
{
    unsigned regs[12];
    if (__get_cpuid_max(0x80000000u, NULL) < 0x80000004u) {
        snprintf(buf, len, "x86 cpu");
        return;
    }
    for (unsigned i = 0; i < 3; i++)
        __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    char name[49];
    memcpy(name, regs, 48);
    name[48] = '\0';
    const char *p = name;
    while (*p == ' ')
        p++;
    snprintf(buf, len, "%s", p);
}

#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_FPHP
#define HWCAP_FPHP (1 << 9)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1 << 10)
#endif
#ifndef HWCAP_ASIMDFHM
#define HWCAP_ASIMDFHM (1 << 23)
#endif

uint32_t ea_cpu_detect(void)
{
    const unsigned long hw = getauxval(AT_HWCAP);
    uint32_t flags = 0;
    if (hw & HWCAP_ASIMD)
        flags |= EDGEATTN_CPU_NEON;
    /* the FP16 tier uses FMLAL (FP16 products, exact, into FP32): it needs FEAT_FHM as well */
    if ((flags & EDGEATTN_CPU_NEON) && (hw & HWCAP_ASIMDHP) && (hw & HWCAP_FPHP) && (hw & HWCAP_ASIMDFHM))
        flags |= EDGEATTN_CPU_NEON_FP16;
    return flags;
}

void ea_cpu_model(char *buf, size_t len)
{
    /* aarch64 has no model string instruction; /proc/cpuinfo names the implementer/part only. */
    FILE *f = fopen("/proc/cpuinfo", "r");
    unsigned impl = 0, part = 0;
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "CPU implementer : %x", &impl) == 1)
                continue;
            if (sscanf(line, "CPU part : %x", &part) == 1)
                break;
        }
        fclose(f);
    }
    snprintf(buf, len, "aarch64 (implementer 0x%02x, part 0x%03x)", impl, part);
}

#else
uint32_t ea_cpu_detect(void) { return 0; }
void ea_cpu_model(char *buf, size_t len) { snprintf(buf, len, "generic cpu"); }
#endif

EDGEATTN_API uint32_t edgeattn_cpu_features(void)
{
    return ea_cpu_detect();
}
