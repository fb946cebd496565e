#ifndef EDGEATTN_CPU_FEATURES_H
#define EDGEATTN_CPU_FEATURES_H
#include <stddef.h>
#include <stdint.h>
/* Detected EDGEATTN_CPU_* bits: cpuid + xgetbv on x86, getauxval(AT_HWCAP) on aarch64. */
uint32_t ea_cpu_detect(void);
/* CPU model string (best effort; "unknown cpu" otherwise) into buf. */
void ea_cpu_model(char *buf, size_t len);
#endif
