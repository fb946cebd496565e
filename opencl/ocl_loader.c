#define _GNU_SOURCE /* RTLD_NODELETE */
#include "opencl/ocl_loader.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

bool ea_ocl_load(ea_ocl_api *api, char *why, size_t whylen)
{
    memset(api, 0, sizeof *api);
    api->lib = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!api->lib)
        api->lib = dlopen("libOpenCL.so", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!api->lib) {
        if (why)
            snprintf(why, whylen, "libOpenCL.so.1 not found");
        return false;
    }
#define EA_OCL_SYM(name)                                                                                         \
    *(void **)(&api->name) = dlsym(api->lib, #name);                                                             \
    if (!api->name) {                                                                                            \
        if (why)                                                                                                 \
            snprintf(why, whylen, "libOpenCL.so.1 lacks %s", #name);                                             \
        ea_ocl_unload(api);                                                                                      \
        return false;                                                                                            \
    }
    EA_OCL_FUNCS(EA_OCL_SYM)
#undef EA_OCL_SYM
    return true;
}

void ea_ocl_unload(ea_ocl_api *api)
{
    if (api->lib)
        dlclose(api->lib);
    memset(api, 0, sizeof *api);
}

cl_mem ea_ocl_create_buffer(ea_ocl_api *api, cl_context c, cl_mem_flags f, size_t n, void *host, cl_int *err)
{
    api->counts[EA_OCL_N_BUFFER]++;
    return api->clCreateBuffer(c, f, n, host, err);
}

cl_program ea_ocl_create_program_src(ea_ocl_api *api, cl_context c, cl_uint count, const char **src,
                                     const size_t *len, cl_int *err)
{
    api->counts[EA_OCL_N_PROGRAM]++;
    return api->clCreateProgramWithSource(c, count, src, len, err);
}

cl_program ea_ocl_create_program_bin(ea_ocl_api *api, cl_context c, cl_device_id dev, size_t len,
                                     const unsigned char *bin, cl_int *status, cl_int *err)
{
    api->counts[EA_OCL_N_PROGRAM]++;
    return api->clCreateProgramWithBinary(c, 1, &dev, &len, &bin, status, err);
}

cl_kernel ea_ocl_create_kernel(ea_ocl_api *api, cl_program p, const char *name, cl_int *err)
{
    api->counts[EA_OCL_N_KERNEL]++;
    return api->clCreateKernel(p, name, err);
}

const char *ea_ocl_error_name(cl_int err, char *buf, size_t len)
{
    switch (err) {
#define E(x)                                                                                                     \
    case x: return #x;
    E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE)
    E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
    E(CL_PROFILING_INFO_NOT_AVAILABLE) E(CL_MEM_COPY_OVERLAP) E(CL_IMAGE_FORMAT_MISMATCH)
    E(CL_IMAGE_FORMAT_NOT_SUPPORTED) E(CL_BUILD_PROGRAM_FAILURE) E(CL_MAP_FAILURE)
    E(CL_MISALIGNED_SUB_BUFFER_OFFSET) E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    E(CL_COMPILE_PROGRAM_FAILURE) E(CL_LINKER_NOT_AVAILABLE) E(CL_LINK_PROGRAM_FAILURE)
    E(CL_DEVICE_PARTITION_FAILED) E(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) E(CL_INVALID_VALUE)
    E(CL_INVALID_DEVICE_TYPE) E(CL_INVALID_PLATFORM) E(CL_INVALID_DEVICE) E(CL_INVALID_CONTEXT)
    E(CL_INVALID_QUEUE_PROPERTIES) E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_HOST_PTR) E(CL_INVALID_MEM_OBJECT)
    E(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) E(CL_INVALID_IMAGE_SIZE) E(CL_INVALID_SAMPLER) E(CL_INVALID_BINARY)
    E(CL_INVALID_BUILD_OPTIONS) E(CL_INVALID_PROGRAM) E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME)
    E(CL_INVALID_KERNEL_DEFINITION) E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE)
    E(CL_INVALID_ARG_SIZE) E(CL_INVALID_KERNEL_ARGS) E(CL_INVALID_WORK_DIMENSION) E(CL_INVALID_WORK_GROUP_SIZE)
    E(CL_INVALID_WORK_ITEM_SIZE) E(CL_INVALID_GLOBAL_OFFSET) E(CL_INVALID_EVENT_WAIT_LIST) E(CL_INVALID_EVENT)
    E(CL_INVALID_OPERATION) E(CL_INVALID_GL_OBJECT) E(CL_INVALID_BUFFER_SIZE) E(CL_INVALID_MIP_LEVEL)
    E(CL_INVALID_GLOBAL_WORK_SIZE) E(CL_INVALID_PROPERTY) E(CL_INVALID_IMAGE_DESCRIPTOR)
    E(CL_INVALID_COMPILER_OPTIONS) E(CL_INVALID_LINKER_OPTIONS) E(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef E
    default: snprintf(buf, len, "CL error %d", (int)err); return buf;
    }
}
