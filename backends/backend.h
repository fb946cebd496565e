/*
 * The backend interface. A backend is one `static const ea_backend_ops` with designated
 * initialisers; the registry (backends/registry.c) lists them in priority order: CUDA, OpenCL, CPU.
 */
#ifndef EDGEATTN_BACKENDS_BACKEND_H
#define EDGEATTN_BACKENDS_BACKEND_H

#include "core/ea_core.h"

#define EA_BACKEND_API_VERSION 2

/* What a backend needs for a config, computed before any memory is obtained. */
typedef struct ea_backend_plan {
    size_t host_bytes;       /* the backend's part of the host block (state, scratch) */
    size_t scratch_per_thread;
    size_t device_bytes;
    int32_t threads;
    bool kv_on_device;       /* the backend keeps the KV cache itself (core plans only its lengths) */
    size_t kv_device_bytes;  /* part of device_bytes holding the KV cache (reported as kv_cache_bytes) */
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
    /* Serves params.block_mask (edgeattn_block_mask) / params.linformer in attention; false: core refuses
     * such calls. */
    bool block_mask, linformer;
    /* Fills backend, tier, device, cores, threads. Required. */
    void (*info)(const edgeattn_context *ctx, edgeattn_backend_info *info);

    /* ---- GPU backends (all optional; NULL where the backend has no device) */
    /* Bitmask of 1u << edgeattn_memory this backend accepts in tensors (0 means host only). */
    uint32_t memory_kinds;
    /* NaN/Inf scan of a validated device tensor: *finite = false if any NaN or +Inf (or -Inf unless
     * neg_inf_ok). Called by core for non-host tensors when check_finite is set. */
    edgeattn_status (*check_finite)(edgeattn_context *ctx, const edgeattn_tensor *t, bool neg_inf_ok, bool *finite);
    /* kv_on_device backends: writes the rows of a checked append. Core has validated everything and
     * updates total/held after success. For b < B, with s = seq_ids[b] and t = the lengths' index
     * ea_kv_idx(kv, layer, s): rows [skip_b, n_b) of k/v (b, h) go to ring slot (total[t] + r) mod cap
     * of (layer, s) (skip_b = max(0, n_b - cap)); keys rotated by ctx->rope (style NONE: not) at
     * position total[t] + r. n_new NULL: N for every b. */
    edgeattn_status (*kv_write)(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids, const edgeattn_tensor *k,
                                const edgeattn_tensor *v, const int32_t *n_new);
    /* Paged caches (ctx->kv.page > 0): kv_write, kv_read and decode find slot s of (layer, seq) in page
     * ea_kv_table(kv, layer, seq)[s >> page_shift] at row s & (page - 1) (ea_kv_row_elem gives the element
     * offset in the K or V pool of pages * page_elems elements); core maps every page a call writes before
     * it calls kv_write (each exclusive to that (layer, seq)), and never calls kv_copy: a fork shares pages.
     * kv_read's slots [slot, slot + n) then lie in one page. */
    /* kv_on_device, paged: copies page src to page dst (K and V, all page_elems elements of each). A
     * backend without it serves no paged config. */
    edgeattn_status (*kv_page_copy)(edgeattn_context *ctx, int32_t src, int32_t dst);
    /* kv_on_device: copies every slot of (layer, src) to (layer, dst) (K and V, all heads). */
    edgeattn_status (*kv_copy)(edgeattn_context *ctx, int32_t layer, int32_t src, int32_t dst);
    /* kv_on_device with block summaries (config.kv_summary_block): copies (layer, src)'s summaries to
     * (layer, dst) (a fork, both layouts; the backend keeps them beside the cache). Optional: a backend
     * without it copies them in kv_copy (and serves no paged cache with summaries). */
    edgeattn_status (*kv_summary_copy)(edgeattn_context *ctx, int32_t layer, int32_t src, int32_t dst);
    /* kv_on_device: slots [slot, slot + n) of (layer, seq) (no wrap) into rows [row0, row0 + n) of the
     * checked host tensors k, v [1, heads, N, dim], converted to their dtypes; returns when written. */
    edgeattn_status (*kv_read)(edgeattn_context *ctx, int32_t layer, int32_t seq, int32_t slot, int32_t n,
                               const edgeattn_tensor *k, const edgeattn_tensor *v, int64_t row0);
    edgeattn_status (*synchronize)(edgeattn_context *ctx);
    edgeattn_status (*device_region)(edgeattn_context *ctx, edgeattn_memory *memory, void **data, size_t *offset,
                                     size_t *bytes);
    /* Validated copy: same shape and dtype, memory kinds accepted by this backend. */
    edgeattn_status (*copy)(edgeattn_context *ctx, const edgeattn_tensor *dst, const edgeattn_tensor *src);
    edgeattn_status (*ceilings)(edgeattn_context *ctx, edgeattn_ceilings *out);
} ea_backend_ops;

extern const ea_backend_ops ea_backend_cpu;
#if defined(EDGEATTN_WITH_CUDA)
extern const ea_backend_ops ea_backend_cuda;   /* cuda/ */
#endif
#if defined(EDGEATTN_WITH_OPENCL)
extern const ea_backend_ops ea_backend_opencl; /* opencl/ */
#endif

/* The registry, in priority order; *count receives its length. */
const ea_backend_ops *const *ea_backend_registry(size_t *count);

/* Picks the backend for cfg (cfg->backend: AUTO or forced). */
edgeattn_status ea_backend_select(const edgeattn_config *cfg, const ea_backend_ops **out, char *msg);

#endif
