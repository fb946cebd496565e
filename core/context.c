/* The context: create obtains (or adopts) one block and lays everything out in it; the calls
 * validate, then hand a normalised call to the backend. */
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "core/ea_core.h"
#include "core/plan.h"


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
        block = aligned_alloc(EDGEATTN_ALIGNMENT, rounded); /* the one allocation of the context */
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
        kv->cap = cfg.kv_cache_window > 0 ? cfg.kv_cache_window : cfg.max_kv_len;
        kv->max_batch = cfg.max_batch;
        kv->max_heads = cfg.max_kv_heads;
        kv->max_dim = cfg.max_head_dim;
        kv->k = base + lay.kv_k_off;
        kv->v = base + lay.kv_v_off;
        kv->total = (int64_t *)(void *)(base + lay.kv_total_off);
        kv->held = (int32_t *)(void *)(base + lay.kv_held_off);
        memset(kv->total, 0, sizeof(int64_t) * (size_t)cfg.max_batch);
        memset(kv->held, 0, sizeof(int32_t) * (size_t)cfg.max_batch);
    }
    ea_arena_init(&ctx->arena, base + lay.backend_off, lay.backend_bytes);
    st = be->init(ctx, &ctx->arena, m);
    if (st != EDGEATTN_OK) {
        if (owned)
            free(block);
        return st;
    }
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

EDGEATTN_API edgeattn_status edgeattn_get_backend_info(const edgeattn_context *ctx, edgeattn_backend_info *info)
{
    if (!ctx || !info)
        return EDGEATTN_ERR_NULL_ARG;
    memset(info, 0, sizeof *info);
    ctx->backend->info(ctx, info);
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

EDGEATTN_API edgeattn_status edgeattn_decode(edgeattn_context *ctx, const edgeattn_tensor *q, edgeattn_tensor *out,
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
    edgeattn_status st = ea_validate_decode(ctx, q, out, params, &call);
    if (st != EDGEATTN_OK)
        return st;
    return ctx->backend->decode(ctx, &call);
}

/* ---------------------------------------------------------------- KV cache */

static bool rows_finite(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n0, int64_t n1)
{
    edgeattn_tensor view = *t;
    view.data = (char *)t->data + (size_t)(b * t->stride[0] + h * t->stride[1] + n0 * t->stride[2]) *
                                      ea_dtype_size(t->dtype);
    view.shape[0] = view.shape[1] = 1;
    view.shape[2] = n1 - n0;
    return n1 <= n0 || ea_tensor_finite(&view, false);
}

EDGEATTN_API edgeattn_status edgeattn_kv_append(edgeattn_context *ctx, const edgeattn_tensor *k,
                                                const edgeattn_tensor *v, const int32_t *n_new, int32_t check_finite)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    char *msg = ctx->msg;
    msg[0] = '\0';
    ea_kv_cache *kv = &ctx->kv;
    if (!kv->enabled)
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "kv_append: no KV cache planned (set EDGEATTN_FLAG_KV_CACHE)");
    edgeattn_status st;
    if ((st = ea_check_tensor(msg, "k", k, EA_DTYPES_FLOAT, NULL)) != EDGEATTN_OK ||
        (st = ea_check_tensor(msg, "v", v, EA_DTYPES_FLOAT, NULL)) != EDGEATTN_OK)
        return st;
    for (int i = 0; i < 4; i++)
        if (k->shape[i] != v->shape[i])
            return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "v: shape[%d] = %lld != k shape[%d] = %lld", i,
                           (long long)v->shape[i], i, (long long)k->shape[i]);
    if (check_finite != 0 && check_finite != 1)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "kv_append: check_finite must be 0 or 1");
    const int64_t B = k->shape[0], H = k->shape[1], N = k->shape[2], D = k->shape[3];
    if ((st = ea_check_head_dim(msg, "k", D)) != EDGEATTN_OK)
        return st;
    if (B > kv->max_batch)
        return ea_fail(msg, EDGEATTN_ERR_CAPACITY, "kv_append: batch %lld exceeds the planned %d", (long long)B,
                       (int)kv->max_batch);
    if (H > kv->max_heads)
        return ea_fail(msg, EDGEATTN_ERR_CAPACITY, "kv_append: KV heads %lld exceed the planned %d", (long long)H,
                       (int)kv->max_heads);
    if (D > kv->max_dim)
        return ea_fail(msg, EDGEATTN_ERR_CAPACITY, "kv_append: head_dim %lld exceeds the planned %d", (long long)D,
                       (int)kv->max_dim);
    if (kv->heads != 0 && (H != kv->heads || D != kv->dim))
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH,
                       "kv_append: [heads %lld, head_dim %lld] != the cache's [%d, %d] (reset it to change)",
                       (long long)H, (long long)D, (int)kv->heads, (int)kv->dim);
    for (int64_t b = 0; b < B; b++) {
        const int64_t n = n_new ? n_new[b] : N;
        if (n < 0 || n > N)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "n_new[%lld] = %lld outside [0, %lld]", (long long)b,
                           (long long)n, (long long)N);
        if (kv->window == 0 && kv->held[b] + n > kv->cap)
            return ea_fail(msg, EDGEATTN_ERR_CAPACITY,
                           "kv_append: sequence %lld would hold %lld tokens, the cache has room for %d", (long long)b,
                           (long long)(kv->held[b] + n), (int)kv->cap);
        if (check_finite)
            for (int64_t h = 0; h < H; h++)
                if (!rows_finite(k, b, h, 0, n) || !rows_finite(v, b, h, 0, n))
                    return ea_fail(msg, EDGEATTN_ERR_NONFINITE, "kv_append: k or v of sequence %lld holds NaN or Inf",
                                   (long long)b);
    }
    /* Everything checked: now write. */
    kv->heads = (int32_t)H;
    kv->dim = (int32_t)D;
    const size_t es = ea_dtype_size(kv->dtype), kes = ea_dtype_size(k->dtype);
    for (int64_t b = 0; b < B; b++) {
        const int64_t n = n_new ? n_new[b] : N;
        const int64_t skip = n > kv->cap ? n - kv->cap : 0; /* ring: older rows would be overwritten */
        for (int64_t h = 0; h < H; h++) {
            const size_t head = ((size_t)b * (size_t)H + (size_t)h) * (size_t)kv->cap;
            for (int64_t r = skip; r < n; r++) {
                const int64_t pos = kv->total[b] + r;
                const size_t slot = (size_t)(pos % kv->cap);
                char *kd = (char *)kv->k + (head + slot) * (size_t)D * es;
                char *vd = (char *)kv->v + (head + slot) * (size_t)D * es;
                const ptrdiff_t ko = (ptrdiff_t)(b * k->stride[0] + h * k->stride[1] + r * k->stride[2]);
                const ptrdiff_t vo = (ptrdiff_t)(b * v->stride[0] + h * v->stride[1] + r * v->stride[2]);
                if (k->dtype == kv->dtype && v->dtype == kv->dtype) {
                    memcpy(kd, (const char *)k->data + (size_t)ko * kes, (size_t)D * es);
                    memcpy(vd, (const char *)v->data + (size_t)vo * kes, (size_t)D * es);
                } else {
                    for (int64_t d = 0; d < D; d++) {
                        ea_store_f32(kd, kv->dtype, d, ea_load_f32(k->data, k->dtype, ko + d));
                        ea_store_f32(vd, kv->dtype, d, ea_load_f32(v->data, v->dtype, vo + d));
                    }
                }
            }
        }
        kv->total[b] += n;
        kv->held[b] = kv->total[b] < kv->cap ? (int32_t)kv->total[b] : kv->cap;
    }
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_kv_reset(edgeattn_context *ctx, int32_t seq)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    ea_kv_cache *kv = &ctx->kv;
    if (!kv->enabled)
        return ea_fail(ctx->msg, EDGEATTN_ERR_UNSUPPORTED, "kv_reset: no KV cache planned");
    if (seq < -1 || seq >= kv->max_batch)
        return ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG, "kv_reset: seq %d outside [-1, %d)", (int)seq,
                       (int)kv->max_batch);
    bool empty = true;
    for (int32_t b = 0; b < kv->max_batch; b++) {
        if (seq == -1 || seq == b)
            kv->total[b] = kv->held[b] = 0;
        empty = empty && kv->total[b] == 0;
    }
    if (empty)
        kv->heads = kv->dim = 0;
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_kv_length(const edgeattn_context *ctx, int32_t seq, int64_t *total,
                                                int32_t *held)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    const ea_kv_cache *kv = &ctx->kv;
    if (!kv->enabled)
        return EDGEATTN_ERR_UNSUPPORTED;
    if (seq < 0 || seq >= kv->max_batch)
        return EDGEATTN_ERR_INVALID_ARG;
    if (total)
        *total = kv->total[seq];
    if (held)
        *held = kv->held[seq];
    return EDGEATTN_OK;
}
