/*
 * The CUDA driver API as edgeattn uses it: a minimal declaration of the types and constants (no
 * cuda.h needed, so an aarch64 cross build without CUDA headers compiles this), and a table of
 * function pointers filled from libcuda.so.1 with dlopen/dlsym (versioned names, as cuda.h maps
 * them). Nothing links against libcuda.
 *
 * Values are copied from CUDA 13.0's cuda.h (they are ABI and never change between releases).
 *
 * Each context owns one ea_cu_driver (inside its arena): the library keeps no global state. The
 * driver calls a test may want to count (allocations, frees, module loads, synchronisations) go
 * through the ea_cu_* wrappers below, which count them in the table.
 */
#ifndef EDGEATTN_CUDA_CU_LOADER_H
#define EDGEATTN_CUDA_CU_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- types (cuda.h) */
typedef int CUresult; /* enum cudaError_enum */
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUarray_st *CUarray;
typedef unsigned long long CUdeviceptr; /* CUdeviceptr_v2 */

/* CUresult values */
#define EA_CUDA_SUCCESS 0
#define EA_CUDA_ERROR_INVALID_VALUE 1
#define EA_CUDA_ERROR_OUT_OF_MEMORY 2
#define EA_CUDA_ERROR_NOT_INITIALIZED 3
#define EA_CUDA_ERROR_NO_DEVICE 100
#define EA_CUDA_ERROR_INVALID_DEVICE 101
#define EA_CUDA_ERROR_NO_BINARY_FOR_GPU 209
#define EA_CUDA_ERROR_NOT_FOUND 500
#define EA_CUDA_ERROR_NOT_READY 600
#define EA_CUDA_ERROR_NOT_SUPPORTED 801

/* CUdevice_attribute values */
#define EA_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT 16
#define EA_CU_DEVICE_ATTRIBUTE_INTEGRATED 18
#define EA_CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE 38
#define EA_CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING 41
#define EA_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define EA_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define EA_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR 81
#define EA_CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS 88
#define EA_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN 97

/* CUpointer_attribute values */
#define EA_CU_POINTER_ATTRIBUTE_CONTEXT 1
#define EA_CU_POINTER_ATTRIBUTE_MEMORY_TYPE 2
#define EA_CU_POINTER_ATTRIBUTE_DEVICE_POINTER 3
#define EA_CU_POINTER_ATTRIBUTE_IS_MANAGED 8
#define EA_CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL 9
#define EA_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR 11
#define EA_CU_POINTER_ATTRIBUTE_RANGE_SIZE 12

/* CUmemorytype values */
#define EA_CU_MEMORYTYPE_HOST 1
#define EA_CU_MEMORYTYPE_DEVICE 2
#define EA_CU_MEMORYTYPE_UNIFIED 4

/* CUfunction_attribute */
#define EA_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES 8

/* flags */
#define EA_CU_STREAM_NON_BLOCKING 0x1
#define EA_CU_EVENT_DEFAULT 0x0
#define EA_CU_EVENT_DISABLE_TIMING 0x2
#define EA_CU_MEM_ATTACH_GLOBAL 0x1
#define EA_CU_MEMHOSTREGISTER_PORTABLE 0x01
#define EA_CU_MEMHOSTALLOC_PORTABLE 0x01

/* CUDA_MEMCPY2D (CUDA_MEMCPY2D_v2): same layout as cuda.h (enums are int). */
typedef struct ea_CUDA_MEMCPY2D {
    size_t srcXInBytes, srcY;
    int srcMemoryType;
    const void *srcHost;
    CUdeviceptr srcDevice;
    CUarray srcArray;
    size_t srcPitch;
    size_t dstXInBytes, dstY;
    int dstMemoryType;
    void *dstHost;
    CUdeviceptr dstDevice;
    CUarray dstArray;
    size_t dstPitch;
    size_t WidthInBytes, Height;
} ea_CUDA_MEMCPY2D;

/* ---------------------------------------------------------------- the function table */
typedef struct ea_cu_counters {
    uint64_t mem_alloc;    /* cuMemAlloc / cuMemAllocManaged / cuMemAllocHost / cuMemHostAlloc calls */
    uint64_t mem_free;
    uint64_t module_load;  /* cuModuleLoadData */
    uint64_t sync;         /* cuStreamSynchronize / cuCtxSynchronize / cuEventSynchronize */
    uint64_t launches;     /* cuLaunchKernel */
    uint64_t copies;       /* cuMemcpy*Async / cuMemsetD8Async */
    uint64_t throttle;     /* waits for an upload slot still in flight (the queue is 16 uploads deep) */
} ea_cu_counters;

typedef struct ea_cu_driver {
    void *lib;
    int version; /* cuDriverGetVersion */
    /* required */
    CUresult (*Init)(unsigned int flags);
    CUresult (*DriverGetVersion)(int *v);
    CUresult (*GetErrorName)(CUresult e, const char **s);
    CUresult (*GetErrorString)(CUresult e, const char **s);
    CUresult (*DeviceGetCount)(int *n);
    CUresult (*DeviceGet)(CUdevice *d, int ordinal);
    CUresult (*DeviceGetAttribute)(int *v, int attrib, CUdevice d);
    CUresult (*DeviceGetName)(char *name, int len, CUdevice d);
    CUresult (*DeviceTotalMem)(size_t *bytes, CUdevice d);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *c, CUdevice d);
    CUresult (*DevicePrimaryCtxRelease)(CUdevice d);
    CUresult (*CtxPushCurrent)(CUcontext c);
    CUresult (*CtxPopCurrent)(CUcontext *c);
    CUresult (*CtxSynchronize_)(void);
    CUresult (*MemAlloc_)(CUdeviceptr *p, size_t bytes);
    CUresult (*MemFree_)(CUdeviceptr p);
    CUresult (*MemGetInfo)(size_t *free_b, size_t *total_b);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t n, CUstream s);
    CUresult (*MemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t n, CUstream s);
    CUresult (*MemcpyDtoDAsync)(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s);
    CUresult (*Memcpy2DAsync)(const ea_CUDA_MEMCPY2D *p, CUstream s);
    CUresult (*MemsetD8Async)(CUdeviceptr dst, unsigned char v, size_t n, CUstream s);
    CUresult (*StreamCreate)(CUstream *s, unsigned int flags);
    CUresult (*StreamDestroy)(CUstream s);
    CUresult (*StreamSynchronize_)(CUstream s);
    CUresult (*StreamGetCtx)(CUstream s, CUcontext *c);
    CUresult (*EventCreate)(CUevent *e, unsigned int flags);
    CUresult (*EventDestroy)(CUevent e);
    CUresult (*EventRecord)(CUevent e, CUstream s);
    CUresult (*EventSynchronize_)(CUevent e);
    CUresult (*EventQuery)(CUevent e);
    CUresult (*EventElapsedTime)(float *ms, CUevent a, CUevent b);
    CUresult (*ModuleLoadData_)(CUmodule *m, const void *image);
    CUresult (*ModuleUnload)(CUmodule m);
    CUresult (*ModuleGetFunction)(CUfunction *f, CUmodule m, const char *name);
    CUresult (*FuncSetAttribute)(CUfunction f, int attrib, int value);
    CUresult (*LaunchKernel_)(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                              unsigned bz, unsigned smem, CUstream s, void **params, void **extra);
    CUresult (*PointerGetAttribute)(void *data, int attrib, CUdeviceptr p);
    /* optional: unlike the singular call, an address the driver does not know is not an error (the
     * attributes read as 0), so probing host memory raises no API errors (compute-sanitizer) */
    CUresult (*PointerGetAttributes)(unsigned n, int *attribs, void **data, CUdeviceptr p);
    /* optional (NULL when the driver lacks them; only tests use them) */
    CUresult (*MemAllocManaged_)(CUdeviceptr *p, size_t bytes, unsigned int flags);
    CUresult (*MemAllocHost_)(void **p, size_t bytes);
    CUresult (*MemFreeHost_)(void *p);
    CUresult (*MemHostRegister)(void *p, size_t bytes, unsigned int flags);
    CUresult (*MemHostUnregister)(void *p);
    CUresult (*MemcpyHtoD)(CUdeviceptr dst, const void *src, size_t n);
    CUresult (*MemcpyDtoH)(void *dst, CUdeviceptr src, size_t n);
    ea_cu_counters count;
} ea_cu_driver;

/* Opens libcuda.so.1 (RTLD_NODELETE: a later close never unloads the driver), resolves every
 * required symbol and runs cuInit(0). false with a reason in why (why may be NULL). */
bool ea_cu_driver_open(ea_cu_driver *d, char *why, size_t whylen);
/* Drops the handle (the library itself stays loaded). */
void ea_cu_driver_close(ea_cu_driver *d);
/* "CUDA_ERROR_OUT_OF_MEMORY" etc.; never NULL. */
const char *ea_cu_error_name(const ea_cu_driver *d, CUresult r);

/* Counted calls. */
static inline CUresult ea_cu_mem_alloc(ea_cu_driver *d, CUdeviceptr *p, size_t n)
{
    d->count.mem_alloc++;
    return d->MemAlloc_(p, n);
}
static inline CUresult ea_cu_mem_free(ea_cu_driver *d, CUdeviceptr p)
{
    d->count.mem_free++;
    return d->MemFree_(p);
}
static inline CUresult ea_cu_module_load(ea_cu_driver *d, CUmodule *m, const void *image)
{
    d->count.module_load++;
    return d->ModuleLoadData_(m, image);
}
static inline CUresult ea_cu_stream_sync(ea_cu_driver *d, CUstream s)
{
    d->count.sync++;
    return d->StreamSynchronize_(s);
}
static inline CUresult ea_cu_event_sync(ea_cu_driver *d, CUevent e)
{
    d->count.sync++;
    return d->EventSynchronize_(e);
}
static inline CUresult ea_cu_launch_kernel(ea_cu_driver *d, CUfunction f, const uint32_t grid[3], const uint32_t block[3],
                                    uint32_t smem, CUstream s, void *args)
{
    d->count.launches++;
    void *params[1] = {args};
    return d->LaunchKernel_(f, grid[0], grid[1], grid[2], block[0], block[1], block[2], smem, s, params, NULL);
}

/* The embedded fatbin (generated by cuda/embed_fatbin.py at build time). */
extern const unsigned char ea_cuda_fatbin[];
extern const size_t ea_cuda_fatbin_size;
/* SASS architectures (major*10+minor), then PTX virtual architectures, each list ending in 0. */
extern const int ea_cuda_fatbin_sm[];
extern const int ea_cuda_fatbin_ptx[];
/* Can the embedded fatbin run on a device of compute capability cc (major*10+minor)? */
bool ea_cu_fatbin_runs_on(int cc);

#endif
