/* Runs a shared suite (argv[1]) on the OpenCL backend, or exits 77 (meson: skipped) when this
 * machine has no OpenCL device. Sets EDGEATTN_TEST_BACKEND=opencl (tc_create forces OpenCL for AUTO
 * configs) and EDGEATTN_OPENCL_DEVICE (the caller's value, else the device a forced backend would
 * take), which AUTO honours too (noalloc creates its contexts itself). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "opencl/ocl_loader.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ocl_suite_runner SUITE [ARGS...]\n");
        return 2;
    }
    ea_ocl_api api;
    char why[96];
    cl_uint total = 0;
    char pick[32] = "";
    if (ea_ocl_load(&api, why, sizeof why)) {
        cl_platform_id plats[16];
        cl_uint np = 0;
        if (api.clGetPlatformIDs(16, plats, &np) == CL_SUCCESS)
            for (cl_uint p = 0; p < np && p < 16; p++) {
                cl_device_id devs[32];
                cl_uint nd = 0;
                if (api.clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 32, devs, &nd) != CL_SUCCESS)
                    continue;
                for (cl_uint d = 0; d < nd && d < 32; d++) {
                    cl_device_type t = 0;
                    api.clGetDeviceInfo(devs[d], CL_DEVICE_TYPE, sizeof t, &t, NULL);
                    if (!pick[0] || ((t & CL_DEVICE_TYPE_GPU) && pick[0] != 'g'))
                        snprintf(pick, sizeof pick, "%s%u:%u", (t & CL_DEVICE_TYPE_GPU) ? "g" : "a", (unsigned)p,
                                 (unsigned)d);
                }
                total += nd;
            }
        ea_ocl_unload(&api);
    }
    if (total == 0) {
        printf("no OpenCL device here: %s skipped\n", argv[1]);
        return 77;
    }
    setenv("EDGEATTN_TEST_BACKEND", "opencl", 1); /* tc_create: AUTO configs run on OpenCL (even with CUDA built) */
    const char *env = getenv("EDGEATTN_OPENCL_DEVICE");
    if (!env || !*env)
        setenv("EDGEATTN_OPENCL_DEVICE", pick + 1, 1);
    printf("%s on OpenCL device EDGEATTN_OPENCL_DEVICE=%s\n", argv[1], getenv("EDGEATTN_OPENCL_DEVICE"));
    fflush(stdout);
    execv(argv[1], argv + 1);
    perror("execv");
    return 1;
}
