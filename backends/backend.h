/*
 * The backend interface. A backend is one `static const ea_backend_ops` with designated
 * initialisers; the registry (backends/registry.c) lists them in priority order: CUDA, OpenCL, CPU.
 */
#ifndef EDGEATTN_BACKENDS_BACKEND_H
#define EDGEATTN_BACKENDS_BACKEND_H

#include "core/ea_core.h"

#define EA_BACKEND_API_VERSION 1

/* What a backend needs for a config, computed before any memory is obtained. */
typedef struct ea_backend_plan {
    size_t host_bytes;       /* the backend's part of the host block (state, scratch) */
    size_t scratch_per_thread;
    size_t device_bytes;
    int32_t threads;
    bool kv_on_device;       /* the backend keeps the KV cache itself (core then plans none) */
} ea_backend_plan;

typedef struct ea_backend_ops {
    uint32_t api_version;    /* EA_BACKEND_API_VERSION */
    edgeattn_backend id;
    const char *name;
    /* Is the runtime present on this machine? Cheap, allocates nothing lasting. Required. */
    bool (*probe)(void);
    /* Memory plan for a (validated, resolved) config. Required. */
    edgeattn_status (*plan)(const edgeattn_config *cfg, ea_backend_plan *out, char *msg);
    /* Takes its planned bytes from the arena, starts threads / loads runtimes. Required. */
    edgeattn_status (*init)(edgeattn_context *ctx, ea_arena *arena, char *msg);
    /* Undoes init (never frees arena memory). Required. */
    void (*fini)(edgeattn_context *ctx);
    /* Can this backend serve the config at all? Optional (NULL: yes). The same pick logic that the
     * kernels use, so claiming and running cannot disagree. */
    bool (*supports_config)(const edgeattn_config *cfg);
    /* Validated calls. Required. */
    edgeattn_status (*attention)(edgeattn_context *ctx, const ea_attn_call *call);
    edgeattn_status (*decode)(edgeattn_context *ctx, const ea_attn_call *call);
    /* Fills backend, tier, device, cores, threads. Required. */
    void (*info)(const edgeattn_context *ctx, edgeattn_backend_info *info);
} ea_backend_ops;

extern const ea_backend_ops ea_backend_cpu;
#if defined(EDGEATTN_WITH_CUDA)
extern const ea_backend_ops ea_backend_cuda;   /* cuda/ (its own issue) */
#endif
#if defined(EDGEATTN_WITH_OPENCL)
extern const ea_backend_ops ea_backend_opencl; /* opencl/ (its own issue) */
#endif

/* The registry, in priority order; *count receives its length. */
const ea_backend_ops *const *ea_backend_registry(size_t *count);

/* Picks the backend for cfg (cfg->backend: AUTO or forced). */
edgeattn_status ea_backend_select(const edgeattn_config *cfg, const ea_backend_ops **out, char *msg);

#endif
