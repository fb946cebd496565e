/* The context: create obtains (or adopts) one block and lays everything out in it; the calls
 * validate, then hand a normalised call to the backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "backends/backend.h"
#include "core/ea_core.h"
#include "core/plan.h"

/* A block obtained by create of at least this size starts at a multiple of it and, on Linux, is
 * marked for transparent huge pages before anything touches it (THP in "madvise" mode, the default
 * of many distributions, gives them only to marked memory). A decode streams the KV cache from DRAM
 * when the model's weights evicted it since the last call, and with 4 KiB pages each page of the
 * cache costs a TLB walk, which under a hypervisor's nested paging is long: on a 2-core Zen 3 VM a
 * decode over 1800 FP32 tokens (8/2 heads of 64) took 230 us with them, 178 with huge pages. Only
 * advice: where THP is off the block is the same memory with 4 KiB pages. A caller's own buffer is
 * left as it is (madvise it before create for the same effect). */
#define EA_HUGE_BYTES ((size_t)2 << 20)

static void *obtain_block(size_t bytes)
{
    if (bytes < EA_HUGE_BYTES)
        return aligned_alloc(EDGEATTN_ALIGNMENT, bytes);
    void *p = NULL;
    if (posix_memalign(&p, EA_HUGE_BYTES, bytes) != 0)
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}


EDGEATTN_API edgeattn_status edgeattn_create(const edgeattn_config *config, void *buffer, size_t buffer_bytes,
                                             edgeattn_context **out, edgeattn_message *msg)
{
    char *m = msg ? msg->text : NULL;
    if (m)
        m[0] = '\0';
    if (!out)
        return ea_fail(m, EDGEATTN_ERR_NULL_ARG, "create: ctx (output pointer) is NULL");
    *out = NULL;
    if (!config)
        return ea_fail(m, EDGEATTN_ERR_NULL_ARG, "create: config is NULL");
    edgeattn_config cfg;
    edgeattn_status st = ea_resolve_config(config, &cfg, m);
    if (st != EDGEATTN_OK)
        return st;
    const ea_backend_ops *be;
    ea_layout lay;
    edgeattn_plan_info info;
    st = ea_plan_layout(&cfg, &be, &lay, &info, m);
    if (st != EDGEATTN_OK)
        return st;

    void *block = buffer;
    bool owned = false;
    if (buffer) {
        if (buffer_bytes < lay.total)
            return ea_fail(m, EDGEATTN_ERR_BUFFER_TOO_SMALL, "create: buffer of %zu bytes, the plan needs %zu",
                           buffer_bytes, lay.total);
        if ((uintptr_t)buffer % EDGEATTN_ALIGNMENT != 0)
            return ea_fail(m, EDGEATTN_ERR_MISALIGNED, "create: buffer %p not aligned to %d bytes", buffer,
                           EDGEATTN_ALIGNMENT);
    } else {
        if (buffer_bytes != 0)
            return ea_fail(m, EDGEATTN_ERR_INVALID_ARG, "create: buffer is NULL but buffer_bytes = %zu", buffer_bytes);
        size_t rounded;
        if (!ea_add_ok(lay.total, EDGEATTN_ALIGNMENT - 1, &rounded))
            return ea_fail(m, EDGEATTN_ERR_OVERFLOW, "create: plan size overflows");
        rounded &= ~(size_t)(EDGEATTN_ALIGNMENT - 1);
        block = obtain_block(rounded); /* the one allocation of the context */
        if (!block)
            return ea_fail(m, EDGEATTN_ERR_OUT_OF_MEMORY, "create: could not obtain %zu bytes", rounded);
        owned = true;
    }

    char *base = block;
    edgeattn_context *ctx = (edgeattn_context *)(void *)(base + lay.ctx_off);
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->backend = be;
    ctx->mem = block;
    ctx->mem_bytes = lay.total;
    ctx->mem_owned = owned;
    ctx->plan = info;
    if (cfg.flags & EDGEATTN_FLAG_KV_CACHE) {
        ea_kv_cache *kv = &ctx->kv;
        kv->enabled = true;
        kv->dtype = cfg.kv_cache_dtype;
        kv->window = cfg.kv_cache_window;
        kv->sinks = cfg.kv_cache_window > 0 ? cfg.kv_cache_sinks : 0;
        kv->cap = cfg.kv_cache_window > 0 ? kv->sinks + cfg.kv_cache_window : cfg.max_kv_len;
        kv->layers = cfg.num_layers;
        kv->max_batch = cfg.max_batch;
        kv->max_heads = cfg.max_kv_heads;
        kv->max_dim = cfg.max_head_dim;
        kv->unit = ea_kv_unit_size(cfg.kv_cache_dtype);
        kv->layer_elems = (size_t)cfg.max_batch * (size_t)cfg.max_kv_heads * (size_t)kv->cap *
                          ea_kv_row_units(cfg.kv_cache_dtype, (size_t)cfg.max_head_dim);
        kv->on_device = lay.kv_on_device;
        kv->k = lay.kv_on_device ? NULL : base + lay.kv_k_off;
        kv->v = lay.kv_on_device ? NULL : base + lay.kv_v_off; /* latent: the K storage itself */
        kv->latent = cfg.kv_cache_latent != 0;
        kv->total = (int64_t *)(void *)(base + lay.kv_total_off);
        kv->held = (int32_t *)(void *)(base + lay.kv_held_off);
        const size_t seqs = (size_t)cfg.num_layers * (size_t)cfg.max_batch;
        memset(kv->total, 0, sizeof(int64_t) * seqs);
        memset(kv->held, 0, sizeof(int32_t) * seqs);
        if (ea_dtype_quant(kv->dtype)) /* set by each (layer, sequence)'s first append */
            kv->stats = (float *)(void *)(base + lay.kv_stats_off);
        if (cfg.kv_summary_block > 0) { /* each block's summary is set by the write of its first slot */
            kv->sblk = cfg.kv_summary_block;
            kv->nsblk = (kv->cap + kv->sblk - 1) / kv->sblk;
            kv->summ = (float *)(void *)(base + lay.kv_summ_off);
        }
        ea_kv_geom g;
        (void)ea_kv_geometry(&cfg, &g, NULL); /* checked by the plan */
        if (g.page > 0) {
            kv->page = g.page;
            kv->page_shift = g.page_shift;
            kv->pages = g.pages;
            kv->pages_per_seq = g.pages_per_seq;
            kv->page_elems = g.page_elems;
            kv->table = (int32_t *)(void *)(base + lay.kv_table_off);
            kv->ref = (int32_t *)(void *)(base + lay.kv_ref_off);
            kv->free_stack = (int32_t *)(void *)(base + lay.kv_free_off);
            kv->pmark = (uint8_t *)(base + lay.kv_pmark_off);
            memset(kv->table, 0xff, sizeof(int32_t) * seqs * (size_t)g.pages_per_seq); /* -1: unmapped */
            memset(kv->ref, 0, sizeof(int32_t) * (size_t)g.pages);
            memset(kv->pmark, 0, (size_t)g.pages_per_seq);
            for (int32_t i = 0; i < g.pages; i++) /* page 0 on top: a fresh pool hands pages out in order */
                kv->free_stack[i] = g.pages - 1 - i;
            kv->nfree = g.pages;
        }
    }
    ctx->lens = (int32_t *)(void *)(base + lay.lens_off);
    ctx->ids = (int32_t *)(void *)(base + lay.ids_off);
    ctx->qlens = (int32_t *)(void *)(base + lay.qlens_off);
    ctx->mark = (uint8_t *)(base + lay.mark_off);
    memset(ctx->mark, 0, (size_t)cfg.max_batch);
    ea_arena_init(&ctx->arena, base + lay.backend_off, lay.backend_bytes);
    st = be->init(ctx, &ctx->arena, m);
    if (st != EDGEATTN_OK) {
        if (owned)
            free(block);
        return st;
    }
    edgeattn_backend_info who;
    memset(&who, 0, sizeof who);
    be->info(ctx, &who);
    ea_tuning_note(&ctx->cfg, who.backend_name, who.device, ctx->tuning_note, sizeof ctx->tuning_note);
    ctx->cfg.tuning_file = NULL; /* the caller's string need only live during create */
    *out = ctx;
    return EDGEATTN_OK;
}

EDGEATTN_API void edgeattn_destroy(edgeattn_context *ctx)
{
    if (!ctx)
        return;
    ctx->backend->fini(ctx);
    if (ctx->mem_owned)
        free(ctx->mem); /* ctx lives inside this block: nothing touches it afterwards */
}

EDGEATTN_API const char *edgeattn_message_of(const edgeattn_context *ctx)
{
    return ctx ? ctx->msg : "context is NULL";
}

EDGEATTN_API edgeattn_status edgeattn_get_backend_info(edgeattn_context *ctx, edgeattn_backend_info *info)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    if (!info)
        return ea_fail(ctx->msg, EDGEATTN_ERR_NULL_ARG, "get_backend_info: info is NULL");
    memset(info, 0, sizeof *info);
    ctx->backend->info(ctx, info);
    snprintf(info->tuning, sizeof info->tuning, "%s", ctx->tuning_note);
    info->host_bytes = ctx->plan.host_bytes;
    info->device_bytes = ctx->plan.device_bytes;
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_attention(edgeattn_context *ctx, const edgeattn_tensor *q,
                                                const edgeattn_tensor *k, const edgeattn_tensor *v,
                                                edgeattn_tensor *out, const edgeattn_params *params)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    edgeattn_params defaults;
    if (!params) {
        edgeattn_params_default(&defaults);
        params = &defaults;
    }
    ea_attn_call call;
    edgeattn_status st = ea_validate_attention(ctx, q, k, v, out, params, &call);
    if (st != EDGEATTN_OK)
        return st;
    return ctx->backend->attention(ctx, &call);
}

EDGEATTN_API edgeattn_status edgeattn_decode(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids,
                                             const int32_t *q_lens, const edgeattn_tensor *q, edgeattn_tensor *out,
                                             const edgeattn_params *params)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    edgeattn_params defaults;
    if (!params) {
        edgeattn_params_default(&defaults);
        params = &defaults;
    }
    ea_attn_call call;
    edgeattn_status st = ea_validate_decode(ctx, layer, seq_ids, q_lens, q, out, params, &call);
    if (st != EDGEATTN_OK)
        return st;
    return ctx->backend->decode(ctx, &call);
}

/* ---------------------------------------------------------------- GPU memory and ordering */

EDGEATTN_API edgeattn_status edgeattn_synchronize(edgeattn_context *ctx)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    return ctx->backend->synchronize ? ctx->backend->synchronize(ctx) : EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_device_region(edgeattn_context *ctx, edgeattn_memory *memory, void **data,
                                                    size_t *offset, size_t *bytes)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    if (!memory || !data || !offset || !bytes)
        return ea_fail(ctx->msg, EDGEATTN_ERR_NULL_ARG, "device_region: an output pointer is NULL");
    if (!ctx->backend->device_region)
        return ea_fail(ctx->msg, EDGEATTN_ERR_UNSUPPORTED, "device_region: the %s backend has no device memory",
                       ctx->backend->name);
    if (ctx->cfg.device_user_bytes == 0)
        return ea_fail(ctx->msg, EDGEATTN_ERR_UNSUPPORTED, "device_region: config.device_user_bytes was 0");
    return ctx->backend->device_region(ctx, memory, data, offset, bytes);
}

/* Host-to-host copy of two checked views of one shape and dtype. */
static void copy_host(const edgeattn_tensor *dst, const edgeattn_tensor *src)
{
    const size_t es = ea_dtype_size(src->dtype), row = (size_t)src->shape[3] * es;
    for (int64_t b = 0; b < src->shape[0]; b++)
        for (int64_t h = 0; h < src->shape[1]; h++)
            for (int64_t n = 0; n < src->shape[2]; n++) {
                const size_t so = (size_t)(b * src->stride[0] + h * src->stride[1] + n * src->stride[2]) * es;
                const size_t d0 = (size_t)(b * dst->stride[0] + h * dst->stride[1] + n * dst->stride[2]) * es;
                memmove((char *)dst->data + d0, (const char *)src->data + so, row);
            }
}

EDGEATTN_API edgeattn_status edgeattn_copy(edgeattn_context *ctx, edgeattn_tensor *dst, const edgeattn_tensor *src)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    char *msg = ctx->msg;
    msg[0] = '\0';
    edgeattn_status st;
    size_t d_ext, s_ext;
    const unsigned any = EA_DTYPES_FLOAT;
    if ((st = ea_check_tensor(msg, "copy: src", src, any, &s_ext)) != EDGEATTN_OK ||
        (st = ea_check_tensor(msg, "copy: dst", dst, any, &d_ext)) != EDGEATTN_OK ||
        (st = ea_check_memory(ctx, "copy: src", src)) != EDGEATTN_OK ||
        (st = ea_check_memory(ctx, "copy: dst", dst)) != EDGEATTN_OK)
        return st;
    if (dst->dtype != src->dtype)
        return ea_fail(msg, EDGEATTN_ERR_DTYPE, "copy: dst dtype %s != src dtype %s", ea_dtype_name(dst->dtype),
                       ea_dtype_name(src->dtype));
    for (int i = 0; i < 4; i++)
        if (dst->shape[i] != src->shape[i])
            return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "copy: dst shape[%d] = %lld != src shape[%d] = %lld", i,
                           (long long)dst->shape[i], i, (long long)src->shape[i]);
    if (ea_tensors_overlap(dst, d_ext, src, s_ext))
        return ea_fail(msg, EDGEATTN_ERR_STRIDE, "copy: dst overlaps src");
    if (dst->memory == EDGEATTN_MEM_HOST && src->memory == EDGEATTN_MEM_HOST && !ctx->backend->copy) {
        copy_host(dst, src);
        return EDGEATTN_OK;
    }
    if (!ctx->backend->copy)
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "copy: backend %s takes device memory but cannot copy it",
                       ctx->backend->name);
    return ctx->backend->copy(ctx, dst, src);
}

EDGEATTN_API edgeattn_status edgeattn_measure_ceilings(edgeattn_context *ctx, edgeattn_ceilings *ceilings)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    if (!ceilings)
        return ea_fail(ctx->msg, EDGEATTN_ERR_NULL_ARG, "measure_ceilings: ceilings is NULL");
    if (!ctx->backend->ceilings)
        return ea_fail(ctx->msg, EDGEATTN_ERR_UNSUPPORTED,
                       "measure_ceilings: the %s backend has none (edgebench measures CPU ceilings itself)",
                       ctx->backend->name);
    edgeattn_ceilings tmp;
    memset(&tmp, 0, sizeof tmp);
    edgeattn_status st = ctx->backend->ceilings(ctx, &tmp);
    if (st == EDGEATTN_OK)
        *ceilings = tmp;
    return st;
}
