/* The CPU backend: always present; SIMD tier chosen once at create by the init ladder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "cpu_simd/attn_cpu.h"
#include "cpu_simd/cpu_features.h"
#include "cpu_simd/decode_small.h"

static bool cpu_probe(void)
{
    return true;
}

typedef struct cpu_plan {
    uint32_t features, used;
    ea_cpu_tiles tiles;
    bool can_pack;
    int32_t threads;
    int64_t inline_work, wake_work, spin_ns;
    ea_cpu_scratch_layout sl;
    size_t state_off, tid_off, scratch_off, part_off, arrive_off, lowrank_off, lowrank_half, total;
    int64_t part_items;
} cpu_plan;

/* A non-negative integer environment variable no larger than max; def when unset, -1 when bad. */
static int64_t env_int(const char *v, int64_t def, int64_t max)
{
    if (!v || !*v)
        return def;
    char *end = NULL;
    errno = 0;
    const long long x = strtoll(v, &end, 10);
    if (errno || !end || *end || x < 0 || x > max)
        return -1;
    return (int64_t)x;
}

/* EDGEATTN_CPU_INLINE="A" or "A,S": the inline thresholds (multiply-adds) with workers awake and
 * asleep; "A" alone sets both (0: every call is shared). Returns false when malformed. */
static bool env_inline(const char *v, int64_t *awake, int64_t *asleep)
{
    *awake = EA_CPU_INLINE_WORK;
    *asleep = EA_CPU_WAKE_WORK;
    if (!v || !*v)
        return true;
    char *end = NULL;
    errno = 0;
    const long long a = strtoll(v, &end, 10);
    if (errno || end == v || a < 0 || (*end && *end != ','))
        return false;
    long long z = a;
    if (*end == ',') {
        const char *s = end + 1;
        z = strtoll(s, &end, 10);
        if (errno || end == s || *end || z < 0)
            return false;
    }
    *awake = a;
    *asleep = z;
    return true;
}

/* Workers spin this long after a job before they sleep (EDGEATTN_CPU_SPIN_US overrides). */
#define EA_CPU_SPIN_US 100

static edgeattn_status plan_cpu(const edgeattn_config *cfg, cpu_plan *p, char *msg)
{
    p->features = ea_cpu_detect();
    p->used = p->features & ~cfg->cpu_disable_mask;
    /* knobs: the environment, else a tuning file made on this CPU (core/tuning.c) */
    char model[128], tiles[128], inl[128], spin[128];
    ea_cpu_model(model, sizeof model);
    if (ea_cpu_tiles_for(p->used, ea_knob(cfg, "cpu", model, "EDGEATTN_CPU_TILES", tiles, sizeof tiles), &p->tiles) != 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "EDGEATTN_CPU_TILES: expected \"kb=K,rb=R\" with K a multiple of 16 in [16, %d] and R a "
                       "multiple of %d",
                       EA_KB_MAX, EA_MR);
    if (!env_inline(ea_knob(cfg, "cpu", model, "EDGEATTN_CPU_INLINE", inl, sizeof inl), &p->inline_work, &p->wake_work))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "EDGEATTN_CPU_INLINE: expected \"A\" or \"A,S\": the multiply-adds under which a call runs on "
                       "the caller's thread while workers are awake (A) and asleep (S), integers >= 0");
    p->spin_ns = env_int(ea_knob(cfg, "cpu", model, "EDGEATTN_CPU_SPIN_US", spin, sizeof spin), EA_CPU_SPIN_US, 1000000);
    if (p->spin_ns < 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "EDGEATTN_CPU_SPIN_US: expected the microseconds idle workers spin before sleeping (0 to "
                       "1000000)");
    p->spin_ns *= 1000;
    ea_cpu_fit_tiles(cfg->max_q_len, cfg->max_heads, &p->tiles, &p->can_pack);
    p->threads = ea_resolve_threads(cfg->num_threads);
    const int64_t summary_blocks = (cfg->flags & EDGEATTN_FLAG_KV_CACHE) && cfg->kv_summary_block > 0
                                       ? ((int64_t)cfg->max_kv_len + cfg->kv_summary_block - 1) / cfg->kv_summary_block
                                       : 0;
    if (!ea_cpu_scratch_plan(cfg->max_head_dim, ea_cfg_dim_v(cfg), &p->tiles, p->can_pack, summary_blocks, &p->sl))
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "cpu: scratch size overflows");
    p->part_items = ea_cpu_part_items(p->threads, p->tiles.rb);
    ea_sizer sz = {0, false};
    p->state_off = ea_sizer_add(&sz, 1, sizeof(ea_cpu_state), 64);
    p->tid_off = ea_sizer_add(&sz, 1, ea_pool_tid_bytes(p->threads, cfg->parallel_for != NULL), 64);
    p->scratch_off = ea_sizer_add(&sz, (size_t)p->threads, p->sl.bytes, 64);
    p->part_off = ea_sizer_add(&sz, (size_t)p->part_items * (size_t)p->tiles.rb,
                               sizeof(float) * ((size_t)ea_cfg_dim_v(cfg) + 2), 64); /* o, m, l of rb rows */
    p->arrive_off = ea_sizer_add(&sz, (size_t)p->part_items, sizeof(atomic_int), 64);
    /* Linformer: K' and V' of every (batch row, KV head), max_lowrank rows of max_head_dim F32 */
    size_t half = 0;
    if (!ea_mul_ok((size_t)cfg->max_batch * (size_t)cfg->max_kv_heads, (size_t)cfg->max_lowrank, &half) ||
        !ea_mul_ok(half, (size_t)cfg->max_head_dim, &half))
        sz.overflow = true;
    p->lowrank_half = (half + 15) & ~(size_t)15;
    p->lowrank_off = ea_sizer_add(&sz, 2 * p->lowrank_half, sizeof(float), 64);
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
    s->can_pack = p.can_pack;
    s->inline_work = p.inline_work;
    s->wake_work = p.wake_work;
    s->threads = p.threads;
    s->max_dim = ctx->cfg.max_head_dim;
    s->max_dim_v = ea_cfg_dim_v(&ctx->cfg);
    s->features = p.features;
    s->features_used = p.used;
    s->sl = p.sl;
    s->scratch = base + p.scratch_off;
    s->part = (float *)(void *)(base + p.part_off);
    s->arrive = (atomic_int *)(void *)(base + p.arrive_off);
    s->lowrank = (float *)(void *)(base + p.lowrank_off);
    s->lowrank_half = p.lowrank_half;
    for (int64_t i = 0; i < p.part_items; i++)
        atomic_init(&s->arrive[i], 0);
    s->part_items = p.part_items;
    ea_cpu_decode_small_init(s);
    ea_cpu_model(s->model, sizeof s->model);
    ea_cpu_kernels_init(&s->k, p.used);
    ea_cpu_kernels_init_dim8(&s->k8, p.used);
    st = ea_pool_start(&s->pool, p.threads, (pthread_t *)(void *)(base + p.tid_off), p.spin_ns,
                       ctx->cfg.parallel_for, ctx->cfg.parallel_user);
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
    ea_cpu_state *s = ctx->backend_state;
    edgeattn_status st;
    if (call->topk_tokens > 0 && call->group > s->tiles.rb) /* one row block must hold the group's queries */
        return ea_fail(ctx->msg, EDGEATTN_ERR_UNSUPPORTED,
                       "cpu: topk_tokens with %d query heads per KV head: this tier's row tile holds %d (rb)",
                       (int)call->group, (int)s->tiles.rb);
    if (call->linformer) {
        st = ea_cpu_linformer(s, call);
    } else if (ea_cpu_decode_small_fits(s, call)) {
        if (call->rope) { /* the angles of the first sequence's query, shared by every item */
            const ea_kv_cache *kv = call->cache;
            ea_rope_cached(&ctx->rope, kv->total[ea_kv_idx(kv, call->layer, call->seq_ids[0])] - 1);
        }
        st = ea_cpu_decode_small(s, call);
    } else {
        st = ea_cpu_run(s, call);
    }
    if (st != EDGEATTN_OK)
        return ea_fail(ctx->msg, st,
                       "cpu: config.parallel_for broke its contract (a worker index outside [0, num_threads) or "
                       "tasks not run): the outputs are incomplete");
    return st;
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
    .block_mask = true,
    .linformer = true,
    .info = cpu_info,
};
