/* libcuda.so.1 through dlopen: see cu_loader.h. */
#include "cuda/cu_loader.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static void why_set(char *why, size_t len, const char *fmt, const char *a, const char *b)
{
    if (why && len)
        snprintf(why, len, fmt, a, b);
}

/* dlsym into a function pointer without the object/function pointer cast warning. */
static bool sym(void *lib, const char *name, void *slot)
{
    void *p = dlsym(lib, name);
    memcpy(slot, &p, sizeof p);
    return p != NULL;
}

bool ea_cu_driver_open(ea_cu_driver *d, char *why, size_t whylen)
{
    memset(d, 0, sizeof *d);
#ifdef RTLD_NODELETE
    const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE;
#else
    const int flags = RTLD_NOW | RTLD_LOCAL;
#endif
    d->lib = dlopen("libcuda.so.1", flags);
    if (!d->lib) {
        const char *e = dlerror();
        why_set(why, whylen, "libcuda.so.1 not found (%s)%s", e ? e : "dlopen failed", "");
        return false;
    }
    struct {
        const char *name; /* versioned name as cuda.h maps it */
        const char *alt;  /* older name tried when the first is missing, or NULL */
        void *slot;
        bool required;
    } const t[] = {
        {"cuInit", NULL, &d->Init, true},
        {"cuDriverGetVersion", NULL, &d->DriverGetVersion, true},
        {"cuGetErrorName", NULL, &d->GetErrorName, true},
        {"cuGetErrorString", NULL, &d->GetErrorString, true},
        {"cuDeviceGetCount", NULL, &d->DeviceGetCount, true},
        {"cuDeviceGet", NULL, &d->DeviceGet, true},
        {"cuDeviceGetAttribute", NULL, &d->DeviceGetAttribute, true},
        {"cuDeviceGetName", NULL, &d->DeviceGetName, true},
        {"cuDeviceTotalMem_v2", NULL, &d->DeviceTotalMem, true},
        {"cuDevicePrimaryCtxRetain", NULL, &d->DevicePrimaryCtxRetain, true},
        {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease", &d->DevicePrimaryCtxRelease, true},
        {"cuCtxPushCurrent_v2", NULL, &d->CtxPushCurrent, true},
        {"cuCtxPopCurrent_v2", NULL, &d->CtxPopCurrent, true},
        {"cuCtxSynchronize", NULL, &d->CtxSynchronize_, true},
        {"cuMemAlloc_v2", NULL, &d->MemAlloc_, true},
        {"cuMemFree_v2", NULL, &d->MemFree_, true},
        {"cuMemGetInfo_v2", NULL, &d->MemGetInfo, true},
        {"cuMemcpyHtoDAsync_v2", NULL, &d->MemcpyHtoDAsync, true},
        {"cuMemcpyDtoHAsync_v2", NULL, &d->MemcpyDtoHAsync, true},
        {"cuMemcpyDtoDAsync_v2", NULL, &d->MemcpyDtoDAsync, true},
        {"cuMemcpy2DAsync_v2", NULL, &d->Memcpy2DAsync, true},
        {"cuMemsetD8Async", NULL, &d->MemsetD8Async, true},
        {"cuStreamCreate", NULL, &d->StreamCreate, true},
        {"cuStreamDestroy_v2", NULL, &d->StreamDestroy, true},
        {"cuStreamSynchronize", NULL, &d->StreamSynchronize_, true},
        {"cuStreamGetCtx", NULL, &d->StreamGetCtx, true},
        {"cuEventCreate", NULL, &d->EventCreate, true},
        {"cuEventDestroy_v2", NULL, &d->EventDestroy, true},
        {"cuEventRecord", NULL, &d->EventRecord, true},
        {"cuEventSynchronize", NULL, &d->EventSynchronize_, true},
        {"cuEventQuery", NULL, &d->EventQuery, true},
        /* _v2 since 12.8; older drivers (JetPack) only have the original, same signature */
        {"cuEventElapsedTime_v2", "cuEventElapsedTime", &d->EventElapsedTime, true},
        {"cuModuleLoadData", NULL, &d->ModuleLoadData_, true},
        {"cuModuleUnload", NULL, &d->ModuleUnload, true},
        {"cuModuleGetFunction", NULL, &d->ModuleGetFunction, true},
        {"cuFuncSetAttribute", NULL, &d->FuncSetAttribute, true},
        {"cuLaunchKernel", NULL, &d->LaunchKernel_, true},
        {"cuPointerGetAttribute", NULL, &d->PointerGetAttribute, true},
        {"cuPointerGetAttributes", NULL, &d->PointerGetAttributes, false},
        {"cuMemAllocManaged", NULL, &d->MemAllocManaged_, false},
        {"cuMemAllocHost_v2", NULL, &d->MemAllocHost_, false},
        {"cuMemFreeHost", NULL, &d->MemFreeHost_, false},
        {"cuMemHostRegister_v2", NULL, &d->MemHostRegister, false},
        {"cuMemHostUnregister", NULL, &d->MemHostUnregister, false},
        {"cuMemcpyHtoD_v2", NULL, &d->MemcpyHtoD, false},
        {"cuMemcpyDtoH_v2", NULL, &d->MemcpyDtoH, false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (sym(d->lib, t[i].name, t[i].slot))
            continue;
        if (t[i].alt && sym(d->lib, t[i].alt, t[i].slot))
            continue;
        if (t[i].required) {
            why_set(why, whylen, "libcuda.so.1 lacks %s%s (driver too old?)", t[i].name, "");
            ea_cu_driver_close(d);
            return false;
        }
    }
    CUresult r = d->Init(0);
    if (r != EA_CUDA_SUCCESS) {
        why_set(why, whylen, "cuInit failed: %s%s", ea_cu_error_name(d, r), "");
        ea_cu_driver_close(d);
        return false;
    }
    if (d->DriverGetVersion(&d->version) != EA_CUDA_SUCCESS)
        d->version = 0;
    return true;
}

void ea_cu_driver_close(ea_cu_driver *d)
{
    if (d->lib)
        dlclose(d->lib);
    memset(d, 0, sizeof *d);
}

const char *ea_cu_error_name(const ea_cu_driver *d, CUresult r)
{
    const char *s = NULL;
    if (d && d->GetErrorName && d->GetErrorName(r, &s) == EA_CUDA_SUCCESS && s)
        return s;
    return "CUDA_ERROR_UNKNOWN";
}

bool ea_cu_fatbin_runs_on(int cc)
{
    /* SASS for sm_XY runs on devices of the same major version and minor >= Y; PTX for compute_XY
     * is compiled by the driver for any device >= XY. */
    for (const int *a = ea_cuda_fatbin_sm; *a; a++)
        if (*a / 10 == cc / 10 && *a <= cc)
            return true;
    for (const int *a = ea_cuda_fatbin_ptx; *a; a++)
        if (*a <= cc)
            return true;
    return false;
}
