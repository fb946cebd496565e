/*
 * A stand-in libcuda.so.1 for machines without a GPU: "device memory" is host memory, copies are
 * memcpy, and each kernel of the fatbin is emulated on the CPU from its contract (cuda/kernel_abi.h),
 * by name. It tests the CUDA backend's host side here (staging, strides, sequence info, the ring
 * cache, device pointers, counters) with the shared suites and tests/cuda/test_cuda.c; the real
 * kernels run only on the device machine. Loaded through LD_LIBRARY_PATH by the *_mockcuda tests.
 * Single-threaded, synchronous: every "async" call has finished when it returns.
 */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_loader.h"
#include "cuda/kernel_abi.h"

#define API __attribute__((visibility("default")))

/* ---------------------------------------------------------------- allocations */
typedef struct range {
    uintptr_t p;
    size_t n;
    int kind; /* 1 device, 2 registered host, 3 managed, 4 pinned host */
} range;
#define MAX_RANGES 4096
static range g_r[MAX_RANGES];
static int g_nr;
static int g_ctx_obj, g_stream_obj[64], g_nstream, g_event_obj[64], g_nevent, g_mod_obj;
static const char *g_fn_names[128];
static int g_fn_smem[128]; /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES as set by the host */
static int g_nfn;

static const range *find(uintptr_t p)
{
    for (int i = 0; i < g_nr; i++)
        if (p >= g_r[i].p && p < g_r[i].p + (g_r[i].n ? g_r[i].n : 1))
            return &g_r[i];
    return NULL;
}
static void add(uintptr_t p, size_t n, int kind)
{
    if (g_nr < MAX_RANGES)
        g_r[g_nr++] = (range){p, n, kind};
}
static void del(uintptr_t p)
{
    for (int i = 0; i < g_nr; i++)
        if (g_r[i].p == p) {
            g_r[i] = g_r[--g_nr];
            return;
        }
}

API CUresult cuInit(unsigned f) { (void)f; return 0; }
API CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }
API CUresult cuGetErrorName(CUresult e, const char **s)
{
    *s = e == 0 ? "CUDA_SUCCESS" : e == 1 ? "CUDA_ERROR_INVALID_VALUE" : e == 2 ? "CUDA_ERROR_OUT_OF_MEMORY"
                                                                                 : "CUDA_ERROR_MOCK";
    return 0;
}
API CUresult cuGetErrorString(CUresult e, const char **s) { return cuGetErrorName(e, s); }
API CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
API CUresult cuDeviceGet(CUdevice *d, int o) { *d = o; return o == 0 ? 0 : EA_CUDA_ERROR_INVALID_DEVICE; }
API CUresult cuDeviceGetAttribute(int *v, int a, CUdevice d)
{
    (void)d;
    switch (a) {
    case EA_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
    case EA_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
    case EA_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 132; break;
    case EA_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *v = 232448; break;
    case EA_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: *v = 233472; break;
    case EA_CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: *v = 50 << 20; break;
    default: *v = 0; break;
    }
    return 0;
}
API CUresult cuDeviceGetName(char *n, int len, CUdevice d)
{
    (void)d;
    strncpy(n, "edgeattn mock GPU (CPU emulation)", (size_t)len);
    return 0;
}
API CUresult cuDeviceTotalMem_v2(size_t *b, CUdevice d) { (void)d; *b = (size_t)80 << 30; return 0; }
API CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) { (void)d; *c = (CUcontext)(void *)&g_ctx_obj; return 0; }
API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) { (void)d; return 0; }
API CUresult cuCtxPushCurrent_v2(CUcontext c) { (void)c; return 0; }
API CUresult cuCtxPopCurrent_v2(CUcontext *c) { *c = (CUcontext)(void *)&g_ctx_obj; return 0; }
API CUresult cuCtxSynchronize(void) { return 0; }
API CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n)
{
    void *m = aligned_alloc(256, (n + 255) & ~(size_t)255);
    if (!m)
        return EA_CUDA_ERROR_OUT_OF_MEMORY;
    memset(m, 0xA5, n); /* device memory starts as garbage */
    add((uintptr_t)m, n, 1);
    *p = (CUdeviceptr)(uintptr_t)m;
    return 0;
}
API CUresult cuMemFree_v2(CUdeviceptr p)
{
    del((uintptr_t)p);
    free((void *)(uintptr_t)p);
    return 0;
}
API CUresult cuMemGetInfo_v2(size_t *f, size_t *t) { *f = (size_t)256 << 20; *t = (size_t)80 << 30; return 0; }
API CUresult cuMemAllocManaged(CUdeviceptr *p, size_t n, unsigned f)
{
    (void)f;
    CUresult r = cuMemAlloc_v2(p, n);
    if (r == 0)
        g_r[g_nr - 1].kind = 3;
    return r;
}
API CUresult cuMemAllocHost_v2(void **p, size_t n)
{
    CUdeviceptr d;
    CUresult r = cuMemAlloc_v2(&d, n);
    if (r == 0) {
        g_r[g_nr - 1].kind = 4;
        *p = (void *)(uintptr_t)d;
    }
    return r;
}
API CUresult cuMemFreeHost(void *p) { return cuMemFree_v2((CUdeviceptr)(uintptr_t)p); }
API CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned f) { (void)f; add((uintptr_t)p, n, 2); return 0; }
API CUresult cuMemHostUnregister(void *p) { del((uintptr_t)p); return 0; }

static CUresult check_dev(CUdeviceptr p, size_t n)
{
    const range *r = find((uintptr_t)p);
    if (!r || (uintptr_t)p + n > r->p + r->n)
        return EA_CUDA_ERROR_INVALID_VALUE; /* a real GPU would fault: make it an error here */
    return 0;
}
API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *s, size_t n, CUstream st)
{
    (void)st;
    if (check_dev(d, n))
        return EA_CUDA_ERROR_INVALID_VALUE;
    memcpy((void *)(uintptr_t)d, s, n);
    return 0;
}
API CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr s, size_t n, CUstream st)
{
    (void)st;
    if (check_dev(s, n))
        return EA_CUDA_ERROR_INVALID_VALUE;
    memcpy(d, (const void *)(uintptr_t)s, n);
    return 0;
}
API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, CUstream st)
{
    (void)st;
    if (check_dev(s, n) || check_dev(d, n))
        return EA_CUDA_ERROR_INVALID_VALUE;
    memmove((void *)(uintptr_t)d, (const void *)(uintptr_t)s, n);
    return 0;
}
API CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { return cuMemcpyHtoDAsync_v2(d, s, n, NULL); }
API CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { return cuMemcpyDtoHAsync_v2(d, s, n, NULL); }
API CUresult cuMemcpy2DAsync_v2(const ea_CUDA_MEMCPY2D *p, CUstream st)
{
    (void)st;
    if (p->WidthInBytes > p->srcPitch || p->WidthInBytes > p->dstPitch)
        return EA_CUDA_ERROR_INVALID_VALUE;
    for (size_t y = 0; y < p->Height; y++) {
        const char *s = p->srcMemoryType == EA_CU_MEMORYTYPE_HOST ? (const char *)p->srcHost
                                                                  : (const char *)(uintptr_t)p->srcDevice;
        char *d = p->dstMemoryType == EA_CU_MEMORYTYPE_HOST ? (char *)p->dstHost : (char *)(uintptr_t)p->dstDevice;
        s += p->srcXInBytes + y * p->srcPitch;
        d += p->dstXInBytes + y * p->dstPitch;
        if (p->srcMemoryType == EA_CU_MEMORYTYPE_DEVICE && check_dev((uintptr_t)s, p->WidthInBytes))
            return EA_CUDA_ERROR_INVALID_VALUE;
        if (p->dstMemoryType == EA_CU_MEMORYTYPE_DEVICE && check_dev((uintptr_t)d, p->WidthInBytes))
            return EA_CUDA_ERROR_INVALID_VALUE;
        memmove(d, s, p->WidthInBytes);
    }
    return 0;
}
API CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream st)
{
    (void)st;
    if (check_dev(d, n))
        return EA_CUDA_ERROR_INVALID_VALUE;
    memset((void *)(uintptr_t)d, v, n);
    return 0;
}
API CUresult cuStreamCreate(CUstream *s, unsigned f)
{
    (void)f;
    *s = (CUstream)(void *)&g_stream_obj[g_nstream++ % 64];
    return 0;
}
API CUresult cuStreamDestroy_v2(CUstream s) { (void)s; return 0; }
API CUresult cuStreamSynchronize(CUstream s) { (void)s; return 0; }
API CUresult cuStreamGetCtx(CUstream s, CUcontext *c) { (void)s; *c = (CUcontext)(void *)&g_ctx_obj; return 0; }
API CUresult cuEventCreate(CUevent *e, unsigned f) { (void)f; *e = (CUevent)(void *)&g_event_obj[g_nevent++ % 64]; return 0; }
API CUresult cuEventDestroy_v2(CUevent e) { (void)e; return 0; }
API CUresult cuEventRecord(CUevent e, CUstream s) { (void)e; (void)s; return 0; }
API CUresult cuEventSynchronize(CUevent e) { (void)e; return 0; }
API CUresult cuEventQuery(CUevent e) { (void)e; return 0; }
API CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) { (void)a; (void)b; *ms = 1.0f; return 0; }
API CUresult cuModuleLoadData(CUmodule *m, const void *img) { (void)img; *m = (CUmodule)(void *)&g_mod_obj; return 0; }
API CUresult cuModuleUnload(CUmodule m) { (void)m; return 0; }
API CUresult cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name)
{
    (void)m;
    for (int i = 0; i < g_nfn; i++)
        if (strcmp(g_fn_names[i], name) == 0) {
            *f = (CUfunction)(void *)&g_fn_names[i];
            return 0;
        }
    if (g_nfn >= 128)
        return EA_CUDA_ERROR_NOT_FOUND;
    g_fn_names[g_nfn] = name; /* the host's table is static: the pointer stays valid */
    *f = (CUfunction)(void *)&g_fn_names[g_nfn++];
    return 0;
}
API CUresult cuFuncSetAttribute(CUfunction f, int a, int v)
{
    const int i = (int)((const char *const *)(const void *)f - g_fn_names);
    if (a == EA_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) {
        if (v > 232448)
            return EA_CUDA_ERROR_INVALID_VALUE;
        g_fn_smem[i] = v;
    }
    return 0;
}
API CUresult cuPointerGetAttribute(void *data, int attr, CUdeviceptr p)
{
    const range *r = find((uintptr_t)p);
    if (!r)
        return EA_CUDA_ERROR_INVALID_VALUE;
    switch (attr) {
    case EA_CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *(int *)data = 0; return 0;
    case EA_CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *(CUdeviceptr *)data = p; return 0;
    case EA_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: *(CUdeviceptr *)data = r->p; return 0;
    case EA_CU_POINTER_ATTRIBUTE_RANGE_SIZE: *(size_t *)data = r->n; return 0;
    case EA_CU_POINTER_ATTRIBUTE_CONTEXT: *(CUcontext *)data = (CUcontext)(void *)&g_ctx_obj; return 0;
    case EA_CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
        *(unsigned *)data = r->kind == 2 || r->kind == 4 ? EA_CU_MEMORYTYPE_HOST : EA_CU_MEMORYTYPE_DEVICE;
        return 0;
    default: return EA_CUDA_ERROR_INVALID_VALUE;
    }
}

/* As the driver documents it: an unknown address is not an error, its attributes read as 0. */
API CUresult cuPointerGetAttributes(unsigned n, int *attrs, void **data, CUdeviceptr p)
{
    for (unsigned i = 0; i < n; i++)
        if (cuPointerGetAttribute(data[i], attrs[i], p) != 0) {
            if (attrs[i] == EA_CU_POINTER_ATTRIBUTE_RANGE_SIZE)
                *(size_t *)data[i] = 0;
            else if (attrs[i] == EA_CU_POINTER_ATTRIBUTE_DEVICE_POINTER ||
                     attrs[i] == EA_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR)
                *(CUdeviceptr *)data[i] = 0;
            else
                *(unsigned *)data[i] = 0;
        }
    return 0;
}

/* ---------------------------------------------------------------- kernels on the CPU */
static int g_bad_access; /* a kernel read outside any allocation */
static float ld(const ea_cu_tensor *t, int64_t i)
{
    const void *b = (const void *)(uintptr_t)t->ptr;
    if (t->dtype == EA_CU_F32)
        return ((const float *)b)[i];
    uint16_t h = ((const uint16_t *)b)[i];
    if (t->dtype == EA_CU_BF16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    __extension__ _Float16 f16;
    memcpy(&f16, &h, 2);
    return (float)f16;
}
static void st(uint64_t ptr, int dtype, int64_t i, float x)
{
    void *b = (void *)(uintptr_t)ptr;
    if (dtype == EA_CU_F32) {
        ((float *)b)[i] = x;
    } else if (dtype == EA_CU_F16) {
        __extension__ _Float16 h = (_Float16)x;
        memcpy((uint16_t *)b + i, &h, 2);
    } else {
        uint32_t u;
        memcpy(&u, &x, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            u = (u | 0x400000u);
        else
            u += 0x7fffu + ((u >> 16) & 1u);
        ((uint16_t *)b)[i] = (uint16_t)(u >> 16);
    }
}
static int64_t off(const ea_cu_tensor *t, int64_t b, int64_t h, int64_t n) { return b * t->sb + h * t->sh + n * t->sn; }

/* RoPE as the contract defines it (kernel_abi.h): the angle in double, cos/sin rounded to FP32, the
 * pair rotated in FP32. x holds D values of one head (FP32), rotated in place. */
static void rope_row(const ea_cu_rope *r, int64_t pos, float *x)
{
    if (!r->inv_freq)
        return;
    const double *f = (const double *)(uintptr_t)r->inv_freq;
    const range *g = find((uintptr_t)r->inv_freq);
    if (!g || r->inv_freq + (size_t)(r->dim / 2) * sizeof(double) > g->p + g->n || r->dim % 2 != 0 ||
        (r->style != 1 && r->style != 2))
        g_bad_access = 1;
    const int half = r->dim / 2;
    for (int p = 0; p < half && !g_bad_access; p++) {
        const double a = ((double)pos * r->pos_scale) * f[p];
        const float c = (float)cos(a), s = (float)sin(a);
        const int i0 = r->style == 1 ? p : 2 * p, i1 = r->style == 1 ? p + half : 2 * p + 1;
        const float x0 = x[i0], x1 = x[i1];
        x[i0] = x0 * c - x1 * s;
        x[i1] = x0 * s + x1 * c;
    }
}

static void touch(const ea_cu_tensor *t, int64_t i, int es)
{
    if (!find((uintptr_t)t->ptr + (uintptr_t)(i * es)))
        g_bad_access = 1;
}

/* Whether an attention kernel takes a call (cuda/KERNELS-CUDA.md): a tensor-core kernel
 * (ea_{attn,decode}_mma_<f16|bf16>_d<N>...) exists for one head dim and one K/V type; the SIMT kernel
 * takes any multiple of 8 up to 256 and any dtypes. A real GPU would compute garbage or fault
 * outside that; here the launch fails, with a line on stderr, so the host's kernel choice
 * (cuda/launch.c) is checked by every mock suite. */
static int kernel_takes(const char *name, const ea_cu_attn_args *a)
{
    if (strncmp(name, "ea_attn_simt", 12) == 0) /* and its _paged twin */
        return a->D >= 8 && a->D <= 256 && a->D % 8 == 0;
    const char *p = strstr(name, "_mma_");
    if (!p)
        return 0;
    p += 5;
    const int bf = strncmp(p, "bf16_", 5) == 0;
    if (!bf && strncmp(p, "f16_", 4) != 0)
        return 0;
    int d = 0;
    if (sscanf(p + (bf ? 5 : 4), "d%d", &d) != 1)
        return 0;
    const int dt = bf ? EA_CU_BF16 : EA_CU_F16;
    /* Q of the kernel's type; the decode kernels also take an F32 Q (split in two halves) */
    const int q_ok = a->q.dtype == dt || (a->q.dtype == EA_CU_F32 && strncmp(name, "ea_decode_", 10) == 0);
    return a->D == d && a->k.dtype == dt && a->v.dtype == dt && q_ok;
}

/* Element offset of storage slot `row` of K/V batch index kb (contiguous) or of the call's batch row b
 * (paged: through the page table, whose entry must be a page, not -1), head h. */
static int64_t kv_off(const ea_cu_attn_args *a, const ea_cu_tensor *t, int b, int kb, int h, int64_t row)
{
    const ea_cu_pages *p = &a->pages;
    if (!p->table)
        return off(t, kb, h, row);
    const int64_t P = (int64_t)1 << p->page_shift;
    const int32_t *tab = (const int32_t *)(uintptr_t)p->table;
    const int64_t e = (int64_t)b * p->table_stride + (row >> p->page_shift);
    const ea_cu_tensor te = {p->table, 0, 0, 0, EA_CU_F32, 0};
    touch(&te, e, 4);
    if (g_bad_access || row < 0 || row >= a->ring_cap || (row >> p->page_shift) >= p->table_stride || tab[e] < 0) {
        g_bad_access = 1;
        return 0;
    }
    return (int64_t)tab[e] * p->page_elems + (int64_t)h * t->sh + (row & (P - 1)) * t->sn;
}

/* Storage row of logical key j of batch row b, KV head hk (kernel_abi.h: a top-k decode's chosen blocks;
 * the ring, its first ring_sinks slots sinks). */
static int64_t ring_row(const ea_cu_attn_args *a, int b, int hk, int slot0, int j)
{
    if (a->topk.sel) {
        const ea_cu_tensor t = {a->topk.sel, 0, 0, 0, EA_CU_F32, 0};
        const int64_t e = ((int64_t)b * a->Hkv + hk) * a->topk.stride + (j >> a->topk.shift);
        touch(&t, e, 4);
        if (g_bad_access || (j >> a->topk.shift) >= a->topk.stride)
            return g_bad_access = 1, 0;
        const int32_t blk = ((const int32_t *)(uintptr_t)a->topk.sel)[e];
        return ((int64_t)blk << a->topk.shift) + (j & ((1 << a->topk.shift) - 1));
    }
    if (a->ring_cap <= 0)
        return j;
    if (j < a->ring_sinks)
        return j;
    return a->ring_sinks + ((int64_t)slot0 + j - a->ring_sinks) % (a->ring_cap - a->ring_sinks);
}

/* kernel_abi.h ea_cu_bsr: does query i's row block list key j's block? (reads checked like the kernels') */
static bool bsr_keeps(const ea_cu_attn_args *a, int b, int hk, int i, int j)
{
    const ea_cu_bsr *m = &a->bm;
    if (m->block_q != 64 && m->block_q != 128) {
        g_bad_access = 1;
        return false;
    }
    const int64_t e = ((int64_t)((b % m->batch) * m->heads + hk % m->heads)) * (m->nrb + 1) + i / m->block_q;
    const ea_cu_tensor rp = {m->row_ptr, 0, 0, 0, EA_CU_F32, 0}, ci = {m->col_idx, 0, 0, 0, EA_CU_F32, 0};
    touch(&rp, e + 1, 4);
    if (g_bad_access || i / m->block_q >= m->nrb)
        return g_bad_access = 1, false;
    const int32_t *r = (const int32_t *)(uintptr_t)m->row_ptr, *c = (const int32_t *)(uintptr_t)m->col_idx;
    for (int32_t k = r[e]; k < r[e + 1]; k++) {
        touch(&ci, k, 4);
        if (g_bad_access)
            return false;
        if (c[k] == j / 64)
            return true;
    }
    return false;
}

static void k_attention(const ea_cu_attn_args *a)
{
    if (a->num_splits > 1) { /* the split workspace must lie in device memory */
        const size_t rows = (size_t)a->B * (size_t)a->Hq * (size_t)a->Nq;
        ea_cu_tensor wo = {a->ws_o, 0, 0, 0, EA_CU_F32, 0}, wl = {a->ws_lse, 0, 0, 0, EA_CU_F32, 0};
        touch(&wo, (int64_t)(rows * (size_t)a->num_splits * (size_t)a->D) - 1, 4);
        touch(&wl, (int64_t)(rows * (size_t)a->num_splits) - 1, 4);
        const range *r = find((uintptr_t)a->ws_o);
        if (!r || a->ws_lse + rows * (size_t)a->num_splits * 4 > r->p + r->n)
            g_bad_access = 1;
    }
    const int D = a->D;
    double *s = malloc(sizeof(double) * (size_t)(a->Nkv > 0 ? a->Nkv : 1));
    float *qr = malloc(sizeof(float) * (size_t)D);
    const ea_cu_seq *seq = (const ea_cu_seq *)(uintptr_t)a->seq;
    for (int b = 0; b < a->B; b++) {
        const int64_t pos0 = seq ? seq[b].key_pos0 : 0;
        const int kvl = seq ? seq[b].kv_len : a->Nkv;
        const int slot0 = seq ? seq[b].slot0 : 0;
        const int kb = seq ? seq[b].kv_b : b;
        const int qlen = seq ? seq[b].q_len : a->Nq;
        if (kvl < 0 || kvl > a->Nkv || qlen < 0 || qlen > a->Nq || kb < 0)
            g_bad_access = 1;
        if (a->ring_sinks < 0 || (a->ring_sinks > 0 && a->ring_sinks >= a->ring_cap))
            g_bad_access = 1;
        if (a->pages.table && (a->ring_cap <= 0 || slot0 < 0 || slot0 >= a->ring_cap || kvl > a->ring_cap ||
                               a->pages.page_shift < 4 || a->k.sh != a->v.sh || a->k.sn != a->v.sn))
            g_bad_access = 1; /* kernel_abi.h: what a paged call promises */
        if (a->rope.inv_freq && !seq)
            g_bad_access = 1; /* query positions come from the sequence info */
        for (int h = 0; h < a->Hq; h++) {
            const int hk = h / a->group;
            for (int i = 0; i < qlen && !g_bad_access; i++) { /* rows i >= q_len: not computed, not written */
                const int64_t qpos = pos0 + kvl - qlen + i;
                for (int d = 0; d < D; d++)
                    qr[d] = ld(&a->q, off(&a->q, b, h, i) + d);
                rope_row(&a->rope, qpos, qr);
                double m = -INFINITY;
                for (int j = 0; j < kvl; j++) {
                    const int64_t pos = pos0 + j;
                    const bool vis = (!a->causal || pos <= qpos) && (a->window_left < 0 || pos >= qpos - a->window_left) &&
                                     (a->window_right < 0 || pos <= qpos + a->window_right) &&
                                     (!a->bm.block_q || bsr_keeps(a, b, hk, i, j));
                    if (!vis) {
                        s[j] = -INFINITY;
                        continue;
                    }
                    const int64_t row = ring_row(a, b, hk, slot0, j);
                    const int64_t ko = kv_off(a, &a->k, b, kb, hk, row);
                    double dot = 0;
                    for (int d = 0; d < D && !g_bad_access; d++) {
                        touch(&a->k, ko + d, a->k.dtype == EA_CU_F32 ? 4 : 2);
                        dot += (double)qr[d] * (double)ld(&a->k, ko + d);
                    }
                    double x = (double)a->scale * dot;
                    if (a->softcap > 0)
                        x = a->softcap * tanh(x / a->softcap);
                    if (a->bias.ptr)
                        x += ld(&a->bias, off(&a->bias, b, h, i) + j);
                    s[j] = x;
                    if (x > m)
                        m = x;
                }
                double sum = 0;
                if (m != -INFINITY)
                    for (int j = 0; j < kvl; j++)
                        sum += s[j] == -INFINITY ? 0 : exp(s[j] - m);
                for (int d = 0; d < D; d++) {
                    double acc = 0;
                    if (sum > 0)
                        for (int j = 0; j < kvl; j++) {
                            if (s[j] == -INFINITY)
                                continue;
                            const int64_t row = ring_row(a, b, hk, slot0, j);
                            const int64_t vo = kv_off(a, &a->v, b, kb, hk, row);
                            touch(&a->v, vo + d, a->v.dtype == EA_CU_F32 ? 4 : 2);
                            if (g_bad_access)
                                break;
                            acc += exp(s[j] - m) / sum * (double)ld(&a->v, vo + d);
                        }
                    st(a->out.ptr, a->out.dtype, off(&a->out, b, h, i) + d, (float)acc);
                }
                if (a->lse.ptr)
                    st(a->lse.ptr, EA_CU_F32, off(&a->lse, b, h, i), sum > 0 ? (float)(m + log(sum)) : -INFINITY);
            }
        }
    }
    free(qr);
    free(s);
}

static void k_kv_write(const ea_cu_kv_write_args *a)
{
    const ea_cu_kv_row *rows = (const ea_cu_kv_row *)(uintptr_t)a->rows;
    float *kr = malloc(sizeof(float) * (size_t)a->D);
    for (int b = 0; b < a->B; b++) {
        const ea_cu_kv_row *w = &rows[b];
        if (w->n < 0 || w->at < 0 || w->at > w->n || w->jump < 0 || w->seq < 0 || w->pos0 < 0 || a->sinks < 0 ||
            (a->sinks > 0 && a->sinks >= a->ring_cap) || (a->staged && w->n > a->N) ||
            (!a->staged && w->n + w->jump > a->N))
            g_bad_access = 1;
        for (int h = 0; h < a->H && !g_bad_access; h++)
            for (int kr_i = 0; kr_i < w->n; kr_i++) {
                const int jr = kr_i + (kr_i >= w->at ? w->jump : 0); /* kernel_abi.h: kept row -> row */
                const int r = a->staged ? kr_i : jr;
                const int64_t pos = w->pos0 + jr;
                const int64_t slot =
                    pos < a->sinks ? pos : a->sinks + (pos - a->sinks) % (a->ring_cap - a->sinks);
                int64_t drow = (((int64_t)w->seq * a->cache_heads + h) * a->ring_cap + slot) * a->D;
                if (a->pages.table) { /* paged: the page of the call's batch row b (mapped: core did) */
                    const ea_cu_pages *p = &a->pages;
                    const int64_t e = (int64_t)b * p->table_stride + (slot >> p->page_shift);
                    const ea_cu_tensor te = {p->table, 0, 0, 0, EA_CU_F32, 0};
                    touch(&te, e, 4);
                    const int32_t pg = g_bad_access ? -1 : ((const int32_t *)(uintptr_t)p->table)[e];
                    if (pg < 0 || (slot >> p->page_shift) >= p->table_stride || p->page_shift < 4 ||
                        (((int64_t)h + 1) << p->page_shift) * a->D > p->page_elems) {
                        g_bad_access = 1;
                        break;
                    }
                    drow = (int64_t)pg * p->page_elems + (((int64_t)h << p->page_shift) + (slot & ((1 << p->page_shift) - 1))) * a->D;
                }
                ea_cu_tensor kd = {a->k_dst, 0, 0, 0, a->cache_dtype, 0}, vd = {a->v_dst, 0, 0, 0, a->cache_dtype, 0};
                touch(&kd, drow + a->D - 1, a->cache_dtype == EA_CU_F32 ? 4 : 2);
                touch(&vd, drow + a->D - 1, a->cache_dtype == EA_CU_F32 ? 4 : 2);
                touch(&a->k_src, off(&a->k_src, b, h, r) + a->D - 1, a->k_src.dtype == EA_CU_F32 ? 4 : 2);
                touch(&a->v_src, off(&a->v_src, b, h, r) + a->D - 1, a->v_src.dtype == EA_CU_F32 ? 4 : 2);
                if (g_bad_access)
                    break;
                for (int d = 0; d < a->D; d++)
                    kr[d] = ld(&a->k_src, off(&a->k_src, b, h, r) + d);
                rope_row(&a->rope, pos, kr);
                for (int d = 0; d < a->D; d++) {
                    st(a->k_dst, a->cache_dtype, drow + d, kr[d]);
                    st(a->v_dst, a->cache_dtype, drow + d, ld(&a->v_src, off(&a->v_src, b, h, r) + d));
                }
            }
    }
    free(kr);
}

/* kernel_abi.h ea_kv_summary: the min and max of each block the append's rows touched. */
static void k_kv_summary(const ea_cu_summary_args *a)
{
    const ea_cu_kv_row *rows = (const ea_cu_kv_row *)(uintptr_t)a->rows;
    const int bs = 1 << a->sm.shift;
    const ea_cu_tensor kt = {a->k, 0, 0, 0, a->cache_dtype, 0};
    for (int b = 0; b < a->B && !g_bad_access; b++) {
        const ea_cu_kv_row *w = &rows[b];
        const int64_t end = w->pos0 + w->n + w->jump;
        if (w->n <= 0)
            continue;
        for (int64_t blk = w->pos0 / bs; blk * bs < end && !g_bad_access; blk++) {
            if (blk >= a->sm.nblk || end > a->cap)
                { g_bad_access = 1; return; }
            for (int h = 0; h < a->H; h++) {
                float *mn = (float *)(uintptr_t)a->sm.summ +
                            (((int64_t)w->seq * a->sm.heads_max + h) * a->sm.nblk + blk) * 2 * a->sm.dim_max;
                const ea_cu_tensor st_ = {(uint64_t)(uintptr_t)mn, 0, 0, 0, EA_CU_F32, 0};
                touch(&st_, a->sm.dim_max + a->D - 1, 4);
                for (int64_t r = blk * bs; r < end && r < (blk + 1) * bs && !g_bad_access; r++) {
                    int64_t row = (((int64_t)w->seq * a->cache_heads + h) * a->cap + r) * a->D;
                    if (a->pages.table) {
                        const ea_cu_pages *p = &a->pages;
                        const int32_t pg = ((const int32_t *)(uintptr_t)p->table)[(int64_t)b * p->table_stride + (r >> p->page_shift)];
                        row = (int64_t)pg * p->page_elems + (((int64_t)h << p->page_shift) + (r & ((1 << p->page_shift) - 1))) * a->D;
                    }
                    touch(&kt, row + a->D - 1, a->cache_dtype == EA_CU_F32 ? 4 : 2);
                    for (int d = 0; d < a->D && !g_bad_access; d++) {
                        const float x = ld(&kt, row + d);
                        const bool first = r == blk * bs;
                        mn[d] = first || x < mn[d] ? x : mn[d];
                        mn[a->sm.dim_max + d] = first || x > mn[a->sm.dim_max + d] ? x : mn[a->sm.dim_max + d];
                    }
                }
            }
        }
    }
}

/* kernel_abi.h ea_topk_score + ea_topk_select (one call: the CPU's rule, a stable order on ties). */
static void k_topk(const ea_cu_topk_args *a, bool select)
{
    const ea_cu_seq *seq = (const ea_cu_seq *)(uintptr_t)a->seq;
    const int G = a->Hq / a->Hkv, D = a->D, bs = 1 << a->sm.shift;
    float *q = malloc(sizeof(float) * (size_t)D);
    for (int b = 0; b < a->B; b++) {
        const int64_t total = seq[b].key_pos0 + seq[b].kv_len;
        const int nblk = (int)((total + bs - 1) / bs);
        if (nblk > a->stride || nblk > a->sm.nblk)
            g_bad_access = 1;
        for (int hk = 0; hk < a->Hkv && !g_bad_access; hk++) {
            float *sc = (float *)(uintptr_t)a->score + ((int64_t)b * a->Hkv + hk) * a->stride;
            int32_t *sel = (int32_t *)(uintptr_t)a->sel + ((int64_t)b * a->Hkv + hk) * a->stride;
            if (!select) {
                const float *summ = (const float *)(uintptr_t)a->sm.summ +
                                    ((int64_t)seq[b].kv_b * a->sm.heads_max + hk) * a->sm.nblk * 2 * a->sm.dim_max;
                for (int blk = 0; blk < nblk; blk++) {
                    float best = -INFINITY;
                    for (int g = 0; g < G; g++) {
                        for (int d = 0; d < D; d++)
                            q[d] = ld(&a->q, off(&a->q, b, hk * G + g, 0) + d);
                        rope_row(&a->rope, total - 1, q);
                        float acc = 0.f;
                        const float *mn = summ + (int64_t)blk * 2 * a->sm.dim_max;
                        for (int d = 0; d < D; d++)
                            acc += fminf(q[d], 0.f) * mn[d] + fmaxf(q[d], 0.f) * mn[a->sm.dim_max + d];
                        best = acc > best || acc != acc ? acc : best;
                    }
                    sc[blk] = (best != best || blk == 0 || blk == nblk - 1) ? INFINITY : best;
                }
                continue;
            }
            const int keep = a->keep < nblk ? a->keep : nblk;
            int n = 0;
            for (int i = 0; i < nblk; i++) { /* i is kept if fewer than keep blocks beat it (ties: lower first) */
                int better = 0;
                for (int j = 0; j < nblk; j++)
                    better += sc[j] > sc[i] || (sc[j] == sc[i] && j < i);
                if (better < keep)
                    sel[n++] = i;
            }
        }
    }
    free(q);
}

/* kernel_abi.h ea_cu_proj_args: K' = E K, V' = F V (FP32 sums, rounded once to the output dtype). */
static void k_proj(const ea_cu_proj_args *a)
{
    for (int b = 0; b < a->B && !g_bad_access; b++)
        for (int h = 0; h < a->Hkv; h++)
            for (int w = 0; w < 2; w++) {
                const ea_cu_tensor *P = w ? &a->f : &a->e, *X = w ? &a->v : &a->k, *O = w ? &a->vo : &a->ko;
                for (int r = 0; r < a->rows && !g_bad_access; r++)
                    for (int d = 0; d < a->D && !g_bad_access; d++) {
                        float acc = 0.f;
                        for (int j = 0; j < a->N && !g_bad_access; j++) {
                            const int64_t pi = off(P, b, h, r) + j, xi = off(X, b, h, j) + d;
                            touch(P, pi, P->dtype == EA_CU_F32 ? 4 : 2);
                            touch(X, xi, X->dtype == EA_CU_F32 ? 4 : 2);
                            if (!g_bad_access)
                                acc += ld(P, pi) * ld(X, xi);
                        }
                        touch(O, off(O, b, h, r) + d, O->dtype == EA_CU_F32 ? 4 : 2);
                        if (!g_bad_access)
                            st(O->ptr, O->dtype, off(O, b, h, r) + d, acc);
                    }
            }
}

static void k_finite(const ea_cu_finite_args *a)
{
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < a->H; h++)
            for (int64_t n = 0; n < a->N; n++)
                for (int64_t d = 0; d < a->D; d++) {
                    const float x = ld(&a->t, off(&a->t, b, h, n) + d);
                    if (isnan(x) || (isinf(x) && !(a->neg_inf_ok && x < 0)))
                        *(uint32_t *)(uintptr_t)a->flag = 1;
                }
}

API CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                            unsigned bz, unsigned smem, CUstream s, void **params, void **extra)
{
    (void)s;
    (void)extra;
    (void)smem;
    if (!gx || !gy || !gz || !bx || !by || !bz || bx * by * bz > 1024 || gy > 65535 || gz > 65535)
        return EA_CUDA_ERROR_INVALID_VALUE;
    const char *name = *(const char *const *)(const void *)f;
    const int fi = (int)((const char *const *)(const void *)f - g_fn_names);
    if (getenv("EDGEATTN_MOCK_CUDA_TRACE"))
        fprintf(stderr, "mock launch %s grid %u,%u,%u block %u smem %u\n", name, gx, gy, gz, bx, smem);
    if (smem > 48u * 1024u && (int)smem > g_fn_smem[fi])
        return EA_CUDA_ERROR_INVALID_VALUE; /* as the driver: above 48 KiB only after cuFuncSetAttribute */
    if (strcmp(name, "ea_attn_combine") == 0 || strcmp(name, "ea_peak_mma") == 0)
        return 0;
    if (strcmp(name, "ea_kv_write") == 0)
        k_kv_write(params[0]);
    else if (strncmp(name, "ea_proj_", 8) == 0)
        k_proj(params[0]);
    else if (strcmp(name, "ea_kv_summary") == 0)
        k_kv_summary(params[0]);
    else if (strcmp(name, "ea_topk_score") == 0 || strcmp(name, "ea_topk_select") == 0)
        k_topk(params[0], name[8] == 's' && name[9] == 'e');
    else if (strcmp(name, "ea_finite") == 0)
        k_finite(params[0]);
    else if (strncmp(name, "ea_attn_", 8) == 0 || strncmp(name, "ea_decode_", 10) == 0) {
        const ea_cu_attn_args *a = params[0];
        if (!kernel_takes(name, a)) {
            fprintf(stderr, "mock libcuda: %s launched with D %d, K %d / V %d (dtype codes): not its contract\n",
                    name, (int)a->D, (int)a->k.dtype, (int)a->v.dtype);
            return 700; /* CUDA_ERROR_ILLEGAL_ADDRESS, as a kernel running off its tiles could give */
        }
        if ((strstr(name, "_paged") != NULL) != (a->pages.table != 0))
            return EA_CUDA_ERROR_INVALID_VALUE; /* a paged kernel for a contiguous cache, or the other way */
        k_attention(a);
    }
    else
        return EA_CUDA_ERROR_NOT_FOUND;
    return g_bad_access ? 700 /* CUDA_ERROR_ILLEGAL_ADDRESS */ : 0;
}
