/* PLACEHOLDER until the avx2 kernels land: keeps scalar entries. */
#include "cpu_simd/ukernel.h"
void ea_cpu_kernels_init_avx2(ea_cpu_kernels *k) { (void)k; }
