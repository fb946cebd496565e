/* Runs a fused OpenCL kernel that NVIDIA's OpenCL compiled to PTX (opencl/dev/cache2ptx.py pulls it out
 * of the program-binary cache) through the CUDA driver API, so Nsight Compute can profile it: ncu does
 * not see OpenCL launches. Development tool for the device machine, not built by Meson:
 *
 *   gcc -O2 -I. -Iinclude -I/usr/local/cuda/include opencl/dev/ptxrun.c -o /tmp/ptxrun -L/usr/local/cuda/lib64/stubs -lcuda
 *   /tmp/ptxrun FILE.ptx KERNEL BM NT [N H D]       (prefill, B 1, KV heads = H, f16 storage)
 *   ncu --set full /tmp/ptxrun ...
 *
 * Replace %envreg0..2 in the PTX by 0 first (NVIDIA OpenCL adds them to %ctaid; profile.sh does).
 * BM and NT are the kernel's rows per work-group and work-items (its tiles: BM, (BM/TM)*(BN/TN)).
 * The parameter block is opencl/ocl_internal.h's mirror of ea_attn_p. Prints the median of 10 launches. */
#include <cuda.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl/ocl_internal.h" /* ea_ocl_attn_p: the kernel's parameter block */

#define CK(x)                                                                                                    \
    do {                                                                                                         \
        CUresult r_ = (x);                                                                                       \
        if (r_ != CUDA_SUCCESS) {                                                                                \
            const char *s_ = NULL;                                                                               \
            cuGetErrorString(r_, &s_);                                                                           \
            fprintf(stderr, "%s: %s\n", #x, s_ ? s_ : "?");                                                      \
            exit(1);                                                                                             \
        }                                                                                                        \
    } while (0)

static uint16_t f2h(float f)
{
    /* values in [-1, 1): normal halves or zero, round to nearest */
    if (f == 0.0f)
        return 0;
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint32_t sign = (u >> 16) & 0x8000u;
    int e = (int)((u >> 23) & 0xff) - 127 + 15;
    if (e <= 0)
        return (uint16_t)sign;
    const uint32_t m = (u & 0x7fffffu) + 0x1000u;
    return (uint16_t)(sign | (((uint32_t)e << 10) + (m >> 13)));
}

static int cmp(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s FILE.ptx KERNEL BM NT [N H D]\n", argv[0]);
        return 2;
    }
    const int bm = atoi(argv[3]), nt = atoi(argv[4]);
    const int n = argc > 5 ? atoi(argv[5]) : 4096, h = argc > 6 ? atoi(argv[6]) : 32, d = argc > 7 ? atoi(argv[7]) : 128;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *ptx = calloc(1, (size_t)len + 1);
    if (!ptx || fread(ptx, 1, (size_t)len, f) != (size_t)len)
        return 1;
    fclose(f);

    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction fn;
    CK(cuInit(0));
    CK(cuDeviceGet(&dev, 0));
    CK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CK(cuCtxSetCurrent(ctx));
    char log[8192] = "";
    /* PTXRUN_MAXREG=N: the register cap of -cl-nv-maxrregcount=N (a PTX without .reqntid) */
    const char *mr = getenv("PTXRUN_MAXREG");
    CUjit_option opt[3] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, CU_JIT_MAX_REGISTERS};
    void *optv[3] = {log, (void *)(uintptr_t)sizeof log, (void *)(uintptr_t)(mr ? atoi(mr) : 0)};
    if (cuModuleLoadDataEx(&mod, ptx, mr ? 3 : 2, opt, optv) != CUDA_SUCCESS) {
        fprintf(stderr, "module load failed: %s\n", log);
        return 1;
    }
    CK(cuModuleGetFunction(&fn, mod, argv[2]));

    const size_t elems = (size_t)h * n * d;
    uint16_t *host = malloc(elems * 2);
    CUdeviceptr q, k, v, o, dummy;
    CUdeviceptr *bufs[3] = {&q, &k, &v};
    srand(1);
    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < elems; j++)
            host[j] = f2h((float)rand() / (float)RAND_MAX * 2.0f - 1.0f);
        CK(cuMemAlloc(bufs[i], elems * 2));
        CK(cuMemcpyHtoD(*bufs[i], host, elems * 2));
    }
    CK(cuMemAlloc(&o, elems * 2));
    CK(cuMemAlloc(&dummy, 1 << 20));

    ea_ocl_attn_p P;
    memset(&P, 0, sizeof P);
    const ea_ocl_view vw = {0, (cl_long)h * n * d, (cl_long)n * d, d};
    P.q = P.k = P.v = P.o = vw;
    P.q_dt = P.kv_dt = P.o_dt = 1;
    P.nsplit = 1;
    P.nh = h;
    P.group = 1;
    P.ni = n;
    P.nq_total = n;
    P.D = d;
    P.wl = P.wr = -1;
    P.scale = 1.0f / sqrtf((float)d);
    P.kv_len[0] = n;
    void *args[8] = {&q, &k, &v, &o, &dummy, &dummy, &dummy, &P};
    const unsigned gx = (unsigned)((n + bm - 1) / bm);

    CUevent e0, e1;
    CK(cuEventCreate(&e0, 0));
    CK(cuEventCreate(&e1, 0));
    float ms[10];
    for (int r = -2; r < 10; r++) {
        CK(cuEventRecord(e0, 0));
        CK(cuLaunchKernel(fn, gx, (unsigned)h, 1, (unsigned)nt, 1, 1, 0, 0, args, NULL));
        CK(cuEventRecord(e1, 0));
        CK(cuEventSynchronize(e1));
        if (r >= 0)
            CK(cuEventElapsedTime(&ms[r], e0, e1));
    }
    qsort(ms, 10, sizeof ms[0], cmp);
    CK(cuMemcpyDtoH(host, o, 2 * (size_t)d));
    const double flop = 4.0 * h * (double)n * n * d;
    printf("%s %s BM %d NT %d: N %d H %d D %d: %.3f ms, %.1f TFLOP/s (o[0] bits %04x)\n", argv[1], argv[2], bm, nt, n,
           h, d, ms[5], flop / (ms[5] * 1e-3) / 1e12, host[0]);
    return 0;
}
