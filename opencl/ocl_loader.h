/*
 * libOpenCL.so.1 through dlopen: a table of the entry points edgeattn uses, typed from the
 * headers (no link dependency), with counters on every call that creates a buffer, program or
 * kernel so tests can prove the hot path creates none. One table per context (no global state).
 */
#ifndef EDGEATTN_OPENCL_OCL_LOADER_H
#define EDGEATTN_OPENCL_OCL_LOADER_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#ifndef CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#endif
#include <CL/cl.h>
#include <stdbool.h>

#define EA_OCL_FUNCS(X)                                                                                           \
    X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo) X(clCreateContext)               \
    X(clRetainContext) X(clReleaseContext) X(clCreateCommandQueue) X(clRetainCommandQueue)                         \
    X(clReleaseCommandQueue) X(clGetCommandQueueInfo) X(clCreateBuffer) X(clCreateSubBuffer)                       \
    X(clReleaseMemObject) X(clGetMemObjectInfo) X(clCreateProgramWithSource) X(clCreateProgramWithBinary)         \
    X(clBuildProgram) X(clGetProgramBuildInfo) X(clGetProgramInfo) X(clReleaseProgram) X(clCreateKernel)          \
    X(clReleaseKernel) X(clSetKernelArg) X(clGetKernelWorkGroupInfo) X(clEnqueueNDRangeKernel)                    \
    X(clEnqueueReadBuffer) X(clEnqueueWriteBuffer) X(clEnqueueReadBufferRect) X(clEnqueueWriteBufferRect)         \
    X(clEnqueueCopyBuffer) X(clEnqueueCopyBufferRect) X(clEnqueueFillBuffer) X(clFinish) X(clFlush)               \
    X(clWaitForEvents) X(clGetEventProfilingInfo) X(clReleaseEvent)

/* What the counters count (after create they must stay put). */
enum { EA_OCL_N_BUFFER, EA_OCL_N_SUBBUFFER, EA_OCL_N_PROGRAM, EA_OCL_N_KERNEL, EA_OCL_N_COUNT };

typedef struct ea_ocl_api {
    void *lib;
#define EA_OCL_PTR(name) __typeof__(&name) name;
    EA_OCL_FUNCS(EA_OCL_PTR)
#undef EA_OCL_PTR
    long counts[EA_OCL_N_COUNT];
} ea_ocl_api;

/* Opens libOpenCL.so.1 (RTLD_NODELETE: the ICD loader and its drivers stay loaded, which drivers
 * such as PoCL need) and resolves every entry point. false with a reason in why (may be NULL). */
bool ea_ocl_load(ea_ocl_api *api, char *why, size_t whylen);
void ea_ocl_unload(ea_ocl_api *api);

/* Counted creators. */
cl_mem ea_ocl_create_buffer(ea_ocl_api *api, cl_context c, cl_mem_flags f, size_t n, void *host, cl_int *err);
cl_program ea_ocl_create_program_src(ea_ocl_api *api, cl_context c, cl_uint count, const char **src,
                                     const size_t *len, cl_int *err);
cl_program ea_ocl_create_program_bin(ea_ocl_api *api, cl_context c, cl_device_id dev, size_t len,
                                     const unsigned char *bin, cl_int *status, cl_int *err);
cl_kernel ea_ocl_create_kernel(ea_ocl_api *api, cl_program p, const char *name, cl_int *err);

/* "CL_OUT_OF_RESOURCES" and the like; "CL error <n>" for codes it does not know (static buffer
 * avoided: the caller passes buf). */
const char *ea_ocl_error_name(cl_int err, char *buf, size_t len);

#endif
