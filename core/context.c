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
        kv->on_device = lay.kv_on_device;
        kv->k = lay.kv_on_device ? NULL : base + lay.kv_k_off;
        kv->v = lay.kv_on_device ? NULL : base + lay.kv_v_off;
        kv->total = (int64_t *)(void *)(base + lay.kv_total_off);
        kv->held = (int32_t *)(void *)(base + lay.kv_held_off);
        memset(kv->total, 0, sizeof(int64_t) * (size_t)cfg.max_batch);
        memset(kv->held, 0, sizeof(int32_t) * (size_t)cfg.max_batch);
    }
    ctx->lens = (int32_t *)(void *)(base + lay.lens_off);
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

EDGEATTN_API edgeattn_status edgeattn_get_backend_info(edgeattn_context *ctx, edgeattn_backend_info *info)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    if (!info)
        return ea_fail(ctx->msg, EDGEATTN_ERR_NULL_ARG, "get_backend_info: info is NULL");
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

/* Rows [0, n) of sequence b of k and v, every head: finite? (host scan or the backend's device scan) */
static edgeattn_status rows_finite(edgeattn_context *ctx, const edgeattn_tensor *t, const char *name, int64_t b,
                                   int64_t n)
{
    if (n <= 0)
        return EDGEATTN_OK;
    edgeattn_tensor view = *t;
    const size_t off = (size_t)(b * t->stride[0]) * ea_dtype_size(t->dtype);
    if (t->memory == EDGEATTN_MEM_OPENCL)
        view.offset += off;
    else
        view.data = (char *)t->data + off;
    view.bytes -= off;
    view.shape[0] = 1;
    view.shape[2] = n;
    return ea_check_finite(ctx, name, &view, false);
}

EDGEATTN_API edgeattn_status edgeattn_kv_append(edgeattn_context *ctx, const edgeattn_tensor *k,
                                                const edgeattn_tensor *v, const int32_t *n_new_arg, int32_t check_finite)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    char *msg = ctx->msg;
    msg[0] = '\0';
    ea_kv_cache *kv = &ctx->kv;
    if (!kv->enabled)
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "kv_append: no KV cache planned (set EDGEATTN_FLAG_KV_CACHE)");
    edgeattn_status st;
    size_t k_ext, v_ext;
    if ((st = ea_check_tensor(msg, "k", k, EA_DTYPES_FLOAT, &k_ext)) != EDGEATTN_OK ||
        (st = ea_check_tensor(msg, "v", v, EA_DTYPES_FLOAT, &v_ext)) != EDGEATTN_OK ||
        (st = ea_check_memory(ctx, "k", k)) != EDGEATTN_OK || (st = ea_check_memory(ctx, "v", v)) != EDGEATTN_OK)
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
    /* n_new is read once, here: everything below (and the backend) uses the copy */
    const int32_t *n_new = NULL;
    if (n_new_arg) {
        memcpy(ctx->lens, n_new_arg, sizeof(int32_t) * (size_t)B);
        n_new = ctx->lens;
    }
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
        if (check_finite && ((st = rows_finite(ctx, k, "kv_append: k", b, n)) != EDGEATTN_OK ||
                             (st = rows_finite(ctx, v, "kv_append: v", b, n)) != EDGEATTN_OK))
            return st;
    }
    /* Everything checked: now write. */
    const int32_t old_heads = kv->heads, old_dim = kv->dim;
    kv->heads = (int32_t)H;
    kv->dim = (int32_t)D;
    if (kv->on_device) {
        st = ctx->backend->kv_write(ctx, k, v, n_new);
        if (st != EDGEATTN_OK) { /* the device refused: lengths unchanged, nothing counted as written */
            kv->heads = old_heads;
            kv->dim = old_dim;
            return st;
        }
        for (int64_t b = 0; b < B; b++) {
            kv->total[b] += n_new ? n_new[b] : N;
            kv->held[b] = kv->total[b] < kv->cap ? (int32_t)kv->total[b] : kv->cap;
        }
        return EDGEATTN_OK;
    }
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

EDGEATTN_API edgeattn_status edgeattn_kv_length(edgeattn_context *ctx, int32_t seq, int64_t *total,
                                                int32_t *held)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    const ea_kv_cache *kv = &ctx->kv;
    if (!kv->enabled)
        return ea_fail(ctx->msg, EDGEATTN_ERR_UNSUPPORTED, "kv_length: no KV cache planned (set EDGEATTN_FLAG_KV_CACHE)");
    if (seq < 0 || seq >= kv->max_batch)
        return ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG, "kv_length: seq %d outside [0, %d)", (int)seq,
                       (int)kv->max_batch);
    if (total)
        *total = kv->total[seq];
    if (held)
        *held = kv->held[seq];
    return EDGEATTN_OK;
}
