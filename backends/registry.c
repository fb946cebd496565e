#include "backends/backend.h"

/* Priority order: CUDA, OpenCL, CPU (the GPU backends only where the build enabled them). */
static const ea_backend_ops *const registry[] = {
#if defined(EDGEATTN_WITH_CUDA)
    &ea_backend_cuda,
#endif
#if defined(EDGEATTN_WITH_OPENCL)
    &ea_backend_opencl,
#endif
    &ea_backend_cpu,
};

const ea_backend_ops *const *ea_backend_registry(size_t *count)
{
    *count = sizeof registry / sizeof registry[0];
    return registry;
}

static const char *backend_name(edgeattn_backend b)
{
    switch (b) {
    case EDGEATTN_BACKEND_AUTO: return "auto";
    case EDGEATTN_BACKEND_CPU: return "cpu";
    case EDGEATTN_BACKEND_CUDA: return "cuda";
    case EDGEATTN_BACKEND_OPENCL: return "opencl";
    }
    return "?";
}

edgeattn_status ea_backend_select(const edgeattn_config *cfg, const ea_backend_ops **out, char *msg)
{
    size_t n;
    const ea_backend_ops *const *reg = ea_backend_registry(&n);
    for (size_t i = 0; i < n; i++) {
        const ea_backend_ops *b = reg[i];
        if (b->api_version != EA_BACKEND_API_VERSION)
            continue;
        if (cfg->backend != EDGEATTN_BACKEND_AUTO && cfg->backend != b->id)
            continue;
        if (!b->probe()) {
            if (cfg->backend != EDGEATTN_BACKEND_AUTO)
                return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE,
                               "backend %s forced but its runtime is not present on this machine", b->name);
            continue;
        }
        if ((b->supports_config && !b->supports_config(cfg)) ||
            (cfg->kv_page_size > 0 && b->kv_write && !b->kv_page_copy)) { /* no paged cache on this device */
            if (cfg->backend != EDGEATTN_BACKEND_AUTO)
                return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE,
                               "backend %s forced but it does not support this config", b->name);
            continue;
        }
        *out = b;
        return EDGEATTN_OK;
    }
    if (cfg->backend != EDGEATTN_BACKEND_AUTO)
        return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE, "backend %s forced but not built into this library",
                       backend_name(cfg->backend));
    return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "no backend accepted the config");
}
