/* The CPU backend: always present; SIMD tier chosen once at create by the init ladder. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "cpu_simd/attn_cpu.h"
#include "cpu_simd/cpu_features.h"

static bool cpu_probe(void)
{
    return true;
}

typedef struct cpu_plan {
    uint32_t features, used;
    ea_cpu_tiles tiles;
    int32_t threads;
    ea_cpu_scratch_layout sl;
    size_t state_off, tid_off, scratch_off, part_off, total;
    int64_t part_items;
} cpu_plan;

static edgeattn_status plan_cpu(const edgeattn_config *cfg, cpu_plan *p, char *msg)
{
    p->features = ea_cpu_detect();
    p->used = p->features & ~cfg->cpu_disable_mask;
    if (ea_cpu_tiles_for(p->used, &p->tiles) != 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "EDGEATTN_CPU_TILES: expected \"kb=K,rb=R\" with K a multiple of 16 in [16, %d] and R a "
                       "multiple of %d",
                       EA_KB_MAX, EA_MR);
    p->threads = ea_resolve_threads(cfg->num_threads);
    if (!ea_cpu_scratch_plan(cfg->max_head_dim, &p->tiles, &p->sl))
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "cpu: scratch size overflows");
    p->part_items = ea_cpu_part_items(p->threads);
    ea_sizer sz = {0, false};
    p->state_off = ea_sizer_add(&sz, 1, sizeof(ea_cpu_state), 64);
    p->tid_off = ea_sizer_add(&sz, 1, ea_pool_tid_bytes(p->threads), 64);
    p->scratch_off = ea_sizer_add(&sz, (size_t)p->threads, p->sl.bytes, 64);
    p->part_off = ea_sizer_add(&sz, (size_t)p->part_items * (size_t)p->tiles.rb,
                               sizeof(float) * ((size_t)cfg->max_head_dim + 2), 64);
    if (sz.overflow)
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "cpu: plan overflows");
    p->total = sz.total;
    return EDGEATTN_OK;
}

static edgeattn_status cpu_plan_fn(const edgeattn_config *cfg, ea_backend_plan *out, char *msg)
{
    cpu_plan p;
    edgeattn_status st = plan_cpu(cfg, &p, msg);
    if (st != EDGEATTN_OK)
        return st;
    out->host_bytes = p.total;
    out->scratch_per_thread = p.sl.bytes;
    out->device_bytes = 0;
    out->threads = p.threads;
    out->kv_on_device = false;
    return EDGEATTN_OK;
}

static edgeattn_status cpu_init(edgeattn_context *ctx, ea_arena *arena, char *msg)
{
    cpu_plan p;
    edgeattn_status st = plan_cpu(&ctx->cfg, &p, msg);
    if (st != EDGEATTN_OK)
        return st;
    char *base = ea_arena_alloc(arena, 1, p.total, 64);
    if (!base)
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "cpu: arena smaller than the plan");
    ea_cpu_state *s = (ea_cpu_state *)(void *)(base + p.state_off);
    s->tiles = p.tiles;
    s->threads = p.threads;
    s->max_dim = ctx->cfg.max_head_dim;
    s->features = p.features;
    s->features_used = p.used;
    s->sl = p.sl;
    s->scratch = base + p.scratch_off;
    s->part = (float *)(void *)(base + p.part_off);
    s->part_items = p.part_items;
    ea_cpu_model(s->model, sizeof s->model);
    ea_cpu_kernels_init(&s->k, p.used);
    st = ea_pool_start(&s->pool, p.threads, (pthread_t *)(void *)(base + p.tid_off));
    if (st != EDGEATTN_OK)
        return ea_fail(msg, st, "cpu: could not start %d worker threads", (int)p.threads - 1);
    ctx->backend_state = s;
    return EDGEATTN_OK;
}

static void cpu_fini(edgeattn_context *ctx)
{
    ea_cpu_state *s = ctx->backend_state;
    if (s)
        ea_pool_stop(&s->pool);
}

static edgeattn_status cpu_attention(edgeattn_context *ctx, const ea_attn_call *call)
{
    return ea_cpu_run(ctx->backend_state, call);
}

static void cpu_info(const edgeattn_context *ctx, edgeattn_backend_info *info)
{
    const ea_cpu_state *s = ctx->backend_state;
    info->backend = EDGEATTN_BACKEND_CPU;
    snprintf(info->backend_name, sizeof info->backend_name, "cpu");
    snprintf(info->tier, sizeof info->tier, "%s", s->k.tier);
    snprintf(info->device, sizeof info->device, "%s", s->model);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info->cores = n > 0 ? (int32_t)n : 1;
    info->threads = s->threads;
    info->cpu_features = s->features;
    info->cpu_features_used = s->features_used;
}

const ea_backend_ops ea_backend_cpu = {
    .api_version = EA_BACKEND_API_VERSION,
    .id = EDGEATTN_BACKEND_CPU,
    .name = "cpu",
    .probe = cpu_probe,
    .plan = cpu_plan_fn,
    .init = cpu_init,
    .fini = cpu_fini,
    .supports_config = NULL,
    .attention = cpu_attention,
    .decode = cpu_attention,
    .info = cpu_info,
};
