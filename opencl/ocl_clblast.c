#define _GNU_SOURCE /* RTLD_NODELETE */
#include "opencl/ocl_clblast.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ea_clblast_load(ea_clblast *b, char *why, size_t whylen)
{
    memset(b, 0, sizeof *b);
    /* EDGEATTN_CLBLAST_LIBRARY: another name or path (tests use a missing one) */
    const char *name = getenv("EDGEATTN_CLBLAST_LIBRARY");
    if (name && *name) {
        b->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    } else {
        name = "libclblast.so.1";
        b->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (!b->lib)
            b->lib = dlopen("libclblast.so", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    }
    if (!b->lib) {
        snprintf(why, whylen, "%.64s not found", name);
        return false;
    }
    *(void **)(&b->sgemm) = dlsym(b->lib, "CLBlastSgemmWithTempBuffer");
    *(void **)(&b->tmp_size) = dlsym(b->lib, "CLBlastSGemmTempBufferSize");
    if (!b->sgemm || !b->tmp_size) {
        snprintf(why, whylen, "libclblast.so.1 lacks CLBlastSgemmWithTempBuffer / CLBlastSGemmTempBufferSize");
        ea_clblast_unload(b);
        return false;
    }
    return true;
}

void ea_clblast_unload(ea_clblast *b)
{
    if (b->lib)
        dlclose(b->lib);
    memset(b, 0, sizeof *b);
}
