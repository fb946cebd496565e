/* Tensor descriptors and validation of attention / decode calls against the plan. Nothing here
 * writes caller memory; every failure returns its own status with a message naming the argument. */
#include <math.h>
#include <string.h>

#include "backends/backend.h"
#include "core/ea_core.h"


/* ok == false (a stride overflowed int64) leaves bytes at 0, which validation refuses. */
static edgeattn_tensor make_tensor(void *data, edgeattn_dtype dtype, const int64_t shape[4], const int64_t stride[4],
                                   bool ok)
{
    edgeattn_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    size_t n = 1, bytes = 0;
    for (int i = 0; i < 4; i++) {
        t.shape[i] = shape[i];
        t.stride[i] = stride[i];
        ok = ok && shape[i] >= 0 && ea_mul_ok(n, (size_t)(shape[i] < 0 ? 0 : shape[i]), &n);
    }
    if (ok && ea_mul_ok(n, ea_dtype_size(dtype), &bytes))
        t.bytes = bytes;
    return t;
}

EDGEATTN_API edgeattn_tensor edgeattn_tensor_bhsd(void *data, edgeattn_dtype dtype, int64_t b, int64_t h, int64_t n,
                                                  int64_t d)
{
    const int64_t shape[4] = {b, h, n, d};
    int64_t stride[4] = {0, 0, d, 1};
    bool ok = !__builtin_mul_overflow(n, d, &stride[1]) && !__builtin_mul_overflow(h, stride[1], &stride[0]);
    return make_tensor(data, dtype, shape, stride, ok);
}

EDGEATTN_API edgeattn_tensor edgeattn_tensor_bshd(void *data, edgeattn_dtype dtype, int64_t b, int64_t h, int64_t n,
                                                  int64_t d)
{
    const int64_t shape[4] = {b, h, n, d};
    int64_t stride[4] = {0, d, 0, 1};
    bool ok = !__builtin_mul_overflow(h, d, &stride[2]) && !__builtin_mul_overflow(n, stride[2], &stride[0]);
    return make_tensor(data, dtype, shape, stride, ok);
}

static bool ranges_overlap(const void *a, size_t na, const void *b, size_t nb)
{
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return pa < pb + nb && pb < pa + na;
}

bool ea_tensors_overlap(const edgeattn_tensor *a, size_t na, const edgeattn_tensor *b, size_t nb)
{
    if (a->memory != b->memory)
        return false; /* host and device address spaces are disjoint */
    if (a->memory == EDGEATTN_MEM_OPENCL) /* same cl_mem: compare offsets; different buffers never alias
                                             (sub-buffers of one parent are the caller's responsibility) */
        return a->data == b->data && a->offset < b->offset + nb && b->offset < a->offset + na;
    return ranges_overlap(a->data, na, b->data, nb);
}

edgeattn_status ea_check_memory(edgeattn_context *ctx, const char *name, const edgeattn_tensor *t)
{
    if (t->memory == EDGEATTN_MEM_HOST)
        return EDGEATTN_OK;
    if (!(ctx->backend->memory_kinds & (1u << t->memory)))
        return ea_fail(ctx->msg, EDGEATTN_ERR_UNSUPPORTED, "%s: %s memory, but this context runs on the %s backend",
                       name, t->memory == EDGEATTN_MEM_CUDA ? "CUDA" : "OpenCL", ctx->backend->name);
    return EDGEATTN_OK;
}

edgeattn_status ea_check_finite(edgeattn_context *ctx, const char *name, const edgeattn_tensor *t, bool neg_inf_ok)
{
    bool finite = true;
    if (t->memory == EDGEATTN_MEM_HOST) {
        finite = ea_tensor_finite(t, neg_inf_ok);
    } else {
        if (!ctx->backend->check_finite)
            return ea_fail(ctx->msg, EDGEATTN_ERR_INTERNAL, "%s: backend %s takes device memory but cannot scan it",
                           name, ctx->backend->name);
        edgeattn_status st = ctx->backend->check_finite(ctx, t, neg_inf_ok, &finite);
        if (st != EDGEATTN_OK)
            return st;
    }
    if (!finite)
        return ea_fail(ctx->msg, EDGEATTN_ERR_NONFINITE, "%s holds NaN or %s", name, neg_inf_ok ? "+Inf" : "Inf");
    return EDGEATTN_OK;
}

static edgeattn_status check_tensor(char *msg, const char *name, const edgeattn_tensor *t, unsigned allowed,
                                    size_t *extent, bool broadcast_ok);

edgeattn_status ea_check_tensor(char *msg, const char *name, const edgeattn_tensor *t, unsigned allowed, size_t *extent)
{
    return check_tensor(msg, name, t, allowed, extent, false);
}

edgeattn_status ea_check_input_tensor(char *msg, const char *name, const edgeattn_tensor *t, unsigned allowed,
                                      size_t *extent)
{
    return check_tensor(msg, name, t, allowed, extent, true);
}

static edgeattn_status check_tensor(char *msg, const char *name, const edgeattn_tensor *t, unsigned allowed,
                                    size_t *extent, bool broadcast_ok)
{
    if (!t)
        return ea_fail(msg, EDGEATTN_ERR_NULL_ARG, "%s: tensor pointer is NULL", name);
    if (!t->data)
        return ea_fail(msg, EDGEATTN_ERR_NULL_ARG, "%s: data is NULL", name);
    if ((unsigned)t->dtype >= EDGEATTN_DTYPE_COUNT_ || !(allowed & (1u << t->dtype)))
        return ea_fail(msg, EDGEATTN_ERR_DTYPE, "%s: dtype %d (%s) not supported here", name, (int)t->dtype,
                       ea_dtype_name(t->dtype));
    if ((unsigned)t->memory >= EDGEATTN_MEMORY_COUNT_)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "%s: memory kind %d unknown", name, (int)t->memory);
    if (t->offset != 0 && t->memory != EDGEATTN_MEM_OPENCL)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "%s: offset %zu set, but only OpenCL tensors take an offset",
                       name, t->offset);
    if (t->memory != EDGEATTN_MEM_OPENCL && (uintptr_t)t->data % ea_dtype_size(t->dtype) != 0)
        return ea_fail(msg, EDGEATTN_ERR_MISALIGNED, "%s: data %p is not aligned to its %zu-byte elements", name,
                       t->data, ea_dtype_size(t->dtype));
    for (int i = 0; i < 4; i++) {
        if (t->shape[i] <= 0)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "%s: shape[%d] = %lld must be > 0", name, i,
                           (long long)t->shape[i]);
        if (t->stride[i] < 0)
            return ea_fail(msg, EDGEATTN_ERR_STRIDE, "%s: stride[%d] = %lld is negative", name, i,
                           (long long)t->stride[i]);
    }
    if (t->stride[3] != 1 && t->shape[3] > 1)
        return ea_fail(msg, EDGEATTN_ERR_STRIDE, "%s: stride[3] = %lld, the last dim must be contiguous", name,
                       (long long)t->stride[3]);
    /* Extent: offset of the last element + 1, in elements, overflow-checked. */
    size_t last = 0;
    for (int i = 0; i < 4; i++) {
        size_t term;
        if (!ea_mul_ok((size_t)(t->shape[i] - 1), (size_t)t->stride[i], &term) || !ea_add_ok(last, term, &last))
            return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "%s: shape x stride overflows size_t", name);
    }
    size_t bytes;
    if (!ea_add_ok(last, 1, &bytes) || !ea_mul_ok(bytes, ea_dtype_size(t->dtype), &bytes))
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "%s: byte count overflows size_t", name);
    /* Element count must fit too (a view can be larger than its extent only if strides overlap). */
    size_t count = 1;
    for (int i = 0; i < 4; i++)
        if (!ea_mul_ok(count, (size_t)t->shape[i], &count))
            return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "%s: element count overflows size_t", name);
    /* No two elements may alias: order the non-trivial dims by stride; each stride must step over
     * the whole extent of the dims inside it. */
    int order[4], n = 0;
    for (int i = 0; i < 4; i++)
        if (t->shape[i] > 1 && !(broadcast_ok && i < 3 && t->stride[i] == 0)) /* a broadcast dim reads one row */
            order[n++] = i;
    for (int a = 1; a < n; a++) /* insertion sort by stride */
        for (int b = a; b > 0 && t->stride[order[b]] < t->stride[order[b - 1]]; b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    size_t inner = 1; /* elements spanned by the dims already placed */
    for (int a = 0; a < n; a++) {
        int i = order[a];
        if ((size_t)t->stride[i] < inner)
            return ea_fail(msg, EDGEATTN_ERR_STRIDE, "%s: stride[%d] = %lld makes elements overlap", name, i,
                           (long long)t->stride[i]);
        inner = (size_t)t->stride[i] * (size_t)(t->shape[i] - 1) + inner; /* bounded by last+1 above */
    }
    if (bytes > t->bytes)
        return ea_fail(msg, EDGEATTN_ERR_STRIDE, "%s: view needs %zu bytes but its buffer has %zu", name, bytes,
                       t->bytes);
    if (extent)
        *extent = bytes;
    return EDGEATTN_OK;
}

bool ea_tensor_finite(const edgeattn_tensor *t, bool neg_inf_ok)
{
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t h = 0; h < t->shape[1]; h++)
            for (int64_t n = 0; n < t->shape[2]; n++) {
                ptrdiff_t base = (ptrdiff_t)(b * t->stride[0] + h * t->stride[1] + n * t->stride[2]);
                for (int64_t d = 0; d < t->shape[3]; d++) {
                    float x = ea_load_f32(t->data, t->dtype, base + (ptrdiff_t)d);
                    if (isnan(x) || (isinf(x) && !(neg_inf_ok && x < 0)))
                        return false;
                }
            }
    return true;
}

static bool reserved_zero(const uint8_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r[i])
            return false;
    return true;
}

/* Checks shared by attention and decode: params and the query/output pair. */
static edgeattn_status check_params(char *msg, const edgeattn_params *p)
{
    if (p->struct_version != EDGEATTN_STRUCT_VERSION)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "params: struct_version %u is not %d; fill the struct with edgeattn_params_default() "
                       "first (or pass NULL for the defaults): a zero-initialised params is refused",
                       (unsigned)p->struct_version, EDGEATTN_STRUCT_VERSION);
    if (!reserved_zero(p->reserved, sizeof p->reserved))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "params: reserved bytes must be zero");
    if (!isfinite(p->scale) || p->scale < 0.0f)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "params: scale %g must be finite and >= 0 (0 = 1/sqrt(D))",
                       (double)p->scale);
    if (!isfinite(p->softcap) || p->softcap < 0.0f || (p->softcap > 0.0f && !isfinite(1.0f / p->softcap)))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "params: softcap %g must be finite and >= 0 (0: none), and not so small that 1/softcap overflows",
                       (double)p->softcap);
    if (p->causal != 0 && p->causal != 1)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "params: causal must be 0 or 1, got %d", (int)p->causal);
    if (p->check_finite != 0 && p->check_finite != 1)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "params: check_finite must be 0 or 1, got %d",
                       (int)p->check_finite);
    if (p->pad_ != 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "params: pad_ must be zero");
    if (p->linformer && !reserved_zero(p->linformer->reserved, sizeof p->linformer->reserved))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "params: linformer reserved bytes must be zero");
    if (p->window_left < -1 || p->window_right < -1)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "params: window (%d, %d): each side must be >= 0, or -1 for unlimited", (int)p->window_left,
                       (int)p->window_right);
    return EDGEATTN_OK;
}

edgeattn_status ea_check_head_dim(char *msg, const char *name, int64_t d)
{
    if (d % 8 != 0 || d < 8 || d > EA_MAX_HEAD_DIM_CPU)
        return ea_fail(msg, EDGEATTN_ERR_HEAD_DIM, "%s: head_dim %lld not supported (multiples of 8 from 8 to %d)",
                       name, (long long)d, EA_MAX_HEAD_DIM_CPU);
    return EDGEATTN_OK;
}

static edgeattn_status check_plan_dim(char *msg, const char *what, int64_t got, int32_t max)
{
    if (got > max)
        return ea_fail(msg, EDGEATTN_ERR_CAPACITY, "%s %lld exceeds the planned maximum %d", what, (long long)got,
                       (int)max);
    return EDGEATTN_OK;
}

#define TRY(x)                                                                                                   \
    do {                                                                                                         \
        edgeattn_status st_ = (x);                                                                               \
        if (st_ != EDGEATTN_OK)                                                                                  \
            return st_;                                                                                          \
    } while (0)

/* Q and out (and the optional lse), common to both calls. */
static edgeattn_status check_q_out(edgeattn_context *ctx, const edgeattn_tensor *q, edgeattn_tensor *out,
                                   const edgeattn_params *p, size_t *q_ext, size_t *o_ext, size_t *l_ext)
{
    char *msg = ctx->msg;
    TRY(ea_check_input_tensor(msg, "q", q, EA_DTYPES_FLOAT, q_ext));
    TRY(ea_check_tensor(msg, "out", out, EA_DTYPES_FLOAT, o_ext));
    TRY(ea_check_memory(ctx, "q", q));
    TRY(ea_check_memory(ctx, "out", out));
    for (int i = 0; i < 3; i++)
        if (out->shape[i] != q->shape[i])
            return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "out: shape[%d] = %lld != q shape[%d] = %lld", i,
                           (long long)out->shape[i], i, (long long)q->shape[i]);
    TRY(ea_check_head_dim(msg, "q", q->shape[3]));
    const edgeattn_config *c = &ctx->cfg;
    /* out's last dim is the V head dim: Q·K's unless config.max_head_dim_v is set */
    if (c->max_head_dim_v == 0 && out->shape[3] != q->shape[3])
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH,
                       "out: head_dim %lld != q head_dim %lld (a separate V head dim needs config.max_head_dim_v)",
                       (long long)out->shape[3], (long long)q->shape[3]);
    TRY(ea_check_head_dim(msg, "out", out->shape[3]));
    TRY(check_plan_dim(msg, "batch", q->shape[0], c->max_batch));
    TRY(check_plan_dim(msg, "query heads", q->shape[1], c->max_heads));
    TRY(check_plan_dim(msg, "query length", q->shape[2], c->max_q_len));
    TRY(check_plan_dim(msg, "head_dim", q->shape[3], c->max_head_dim));
    TRY(check_plan_dim(msg, "V head_dim (out)", out->shape[3], ea_cfg_dim_v(c)));
    if (ea_tensors_overlap(out, *o_ext, q, *q_ext))
        return ea_fail(msg, EDGEATTN_ERR_STRIDE, "out overlaps q");
    *l_ext = 0;
    if (p->lse) {
        TRY(ea_check_tensor(msg, "lse", p->lse, EA_DTYPES_F32, l_ext));
        TRY(ea_check_memory(ctx, "lse", p->lse));
        if (p->lse->shape[0] != q->shape[0] || p->lse->shape[1] != q->shape[1] || p->lse->shape[2] != q->shape[2] ||
            p->lse->shape[3] != 1)
            return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "lse: shape must be [B, Hq, Nq, 1] = [%lld, %lld, %lld, 1]",
                           (long long)q->shape[0], (long long)q->shape[1], (long long)q->shape[2]);
        if (ea_tensors_overlap(p->lse, *l_ext, out, *o_ext) || ea_tensors_overlap(p->lse, *l_ext, q, *q_ext))
            return ea_fail(msg, EDGEATTN_ERR_STRIDE, "lse overlaps q or out");
    }
    return EDGEATTN_OK;
}

static void fill_common(ea_attn_call *call, const edgeattn_tensor *q, edgeattn_tensor *out, const edgeattn_params *p)
{
    call->B = (int32_t)q->shape[0];
    call->Hq = (int32_t)q->shape[1];
    call->Nq = (int32_t)q->shape[2];
    call->D = (int32_t)q->shape[3];
    call->Dv = (int32_t)out->shape[3];
    call->q = q;
    call->out = out;
    call->scale = p->scale > 0.0f ? p->scale : 1.0f / sqrtf((float)call->D);
    call->softcap = p->softcap;
    call->causal = p->causal != 0;
    call->window_left = p->window_left;
    call->window_right = p->window_right;
    call->lse = p->lse;
}

/* Linformer projections against the call's shapes and options. */
static edgeattn_status check_linformer(edgeattn_context *ctx, const edgeattn_params *p, int64_t B, int64_t Hkv,
                                       int64_t Nkv, const edgeattn_tensor *out, size_t o_ext, size_t l_ext)
{
    char *msg = ctx->msg;
    const edgeattn_linformer *lf = p->linformer;
    if (!ctx->backend->linformer)
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "linformer: not served by the %s backend yet (the CPU backend "
                       "serves it)", ctx->backend->name);
    if (!lf->e || !lf->f)
        return ea_fail(msg, EDGEATTN_ERR_NULL_ARG, "linformer: e or f is NULL");
    if (p->causal || p->window_left >= 0 || p->window_right >= 0 || p->kv_lens || p->bias || p->block_mask)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "linformer: not with causal, windows, kv_lens, bias or a block mask (projected keys have no "
                       "position)");
    const edgeattn_tensor *t[2] = {lf->e, lf->f};
    static const char *const name[2] = {"linformer: e", "linformer: f"};
    for (int i = 0; i < 2; i++) {
        size_t ext;
        TRY(ea_check_input_tensor(msg, name[i], t[i], EA_DTYPES_FLOAT, &ext));
        TRY(ea_check_memory(ctx, name[i], t[i]));
        if ((t[i]->shape[0] != 1 && t[i]->shape[0] != B) || (t[i]->shape[1] != 1 && t[i]->shape[1] != Hkv) ||
            t[i]->shape[3] != Nkv || t[i]->shape[2] < 1)
            return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH,
                           "%s: shape [%lld, %lld, %lld, %lld] must be [1 or %lld, 1 or %lld, k >= 1, Nkv = %lld]", name[i],
                           (long long)t[i]->shape[0], (long long)t[i]->shape[1], (long long)t[i]->shape[2],
                           (long long)t[i]->shape[3], (long long)B, (long long)Hkv, (long long)Nkv);
        if (ea_tensors_overlap(out, o_ext, t[i], ext) || (p->lse && ea_tensors_overlap(p->lse, l_ext, t[i], ext)))
            return ea_fail(msg, EDGEATTN_ERR_STRIDE, "%s overlaps out or lse", name[i]);
        if (p->check_finite)
            TRY(ea_check_finite(ctx, name[i], t[i], false));
    }
    if (lf->f->shape[2] != lf->e->shape[2])
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "linformer: f has %lld rows, e %lld (one k for both)",
                       (long long)lf->f->shape[2], (long long)lf->e->shape[2]);
    if (lf->e->shape[2] > ctx->cfg.max_lowrank)
        return ea_fail(msg, EDGEATTN_ERR_CAPACITY, "linformer: k = %lld exceeds config.max_lowrank %d",
                       (long long)lf->e->shape[2], (int)ctx->cfg.max_lowrank);
    return EDGEATTN_OK;
}

/* A block mask against the call's shapes: sizes, row pointers, sorted in-range columns, and no overlap
 * with the outputs (the kernels read it while they write them). */
static edgeattn_status check_block_mask(edgeattn_context *ctx, const edgeattn_block_mask *m, int64_t B, int64_t Hkv,
                                        int64_t Nq, int64_t Nkv, const edgeattn_tensor *out, size_t o_ext,
                                        const edgeattn_tensor *lse, size_t l_ext)
{
    char *msg = ctx->msg;
    if (!ctx->backend->block_mask)
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "block_mask: not served by the %s backend yet (the CPU backend "
                       "serves it)", ctx->backend->name);
    if ((m->block_q != 64 && m->block_q != 128) || m->block_k != 64)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "block_mask: blocks %d x %d; supported: 64 x 64 and 128 x 64 "
                       "(query rows x keys)", (int)m->block_q, (int)m->block_k);
    if ((m->batch != 1 && m->batch != B) || (m->heads != 1 && m->heads != Hkv))
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "block_mask: %d x %d patterns; must be (1 or B = %lld) x (1 "
                       "or Hkv = %lld)", (int)m->batch, (int)m->heads, (long long)B, (long long)Hkv);
    if (!m->row_ptr || (!m->col_idx && m->nnz > 0))
        return ea_fail(msg, EDGEATTN_ERR_NULL_ARG, "block_mask: row_ptr or col_idx is NULL");
    if (m->nnz < 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "block_mask: nnz %lld < 0", (long long)m->nnz);
    const int64_t nrb = (Nq + m->block_q - 1) / m->block_q, ncb = (Nkv + m->block_k - 1) / m->block_k;
    const int64_t nrp = (int64_t)m->batch * m->heads * (nrb + 1);
    if (out->memory == EDGEATTN_MEM_HOST &&
        (ranges_overlap(m->row_ptr, sizeof(int32_t) * (size_t)nrp, out->data, o_ext) ||
         (m->nnz > 0 && ranges_overlap(m->col_idx, sizeof(int32_t) * (size_t)m->nnz, out->data, o_ext))))
        return ea_fail(msg, EDGEATTN_ERR_STRIDE, "block_mask: row_ptr or col_idx overlaps out");
    if (lse && (ranges_overlap(m->row_ptr, sizeof(int32_t) * (size_t)nrp, lse->data, l_ext) ||
                (m->nnz > 0 && ranges_overlap(m->col_idx, sizeof(int32_t) * (size_t)m->nnz, lse->data, l_ext))))
        return ea_fail(msg, EDGEATTN_ERR_STRIDE, "block_mask: row_ptr or col_idx overlaps lse");
    for (int64_t pat = 0; pat < (int64_t)m->batch * m->heads; pat++) {
        const int32_t *rp = m->row_ptr + pat * (nrb + 1);
        for (int64_t r = 0; r < nrb; r++) {
            if (rp[r] < 0 || rp[r + 1] < rp[r] || rp[r + 1] > m->nnz)
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                               "block_mask: pattern %lld row block %lld: row_ptr %d..%d must be non-decreasing "
                               "inside [0, nnz = %lld]", (long long)pat, (long long)r, (int)rp[r], (int)rp[r + 1],
                               (long long)m->nnz);
            for (int32_t e = rp[r]; e < rp[r + 1]; e++) {
                const int32_t cb = m->col_idx[e];
                if (cb < 0 || cb >= ncb)
                    return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                                   "block_mask: pattern %lld row block %lld lists key block %d; Nkv %lld has %lld",
                                   (long long)pat, (long long)r, (int)cb, (long long)Nkv, (long long)ncb);
                if (e > rp[r] && cb <= m->col_idx[e - 1])
                    return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                                   "block_mask: pattern %lld row block %lld: key blocks %d then %d (must be strictly "
                                   "increasing: sorted, no repeats)", (long long)pat, (long long)r,
                                   (int)m->col_idx[e - 1], (int)cb);
            }
        }
    }
    return EDGEATTN_OK;
}

edgeattn_status ea_validate_attention(edgeattn_context *ctx, const edgeattn_tensor *q, const edgeattn_tensor *k,
                                      const edgeattn_tensor *v, edgeattn_tensor *out, const edgeattn_params *p,
                                      ea_attn_call *call)
{
    char *msg = ctx->msg;
    size_t q_ext = 0, k_ext = 0, v_ext = 0, o_ext = 0, l_ext = 0;
    TRY(check_params(msg, p));
    TRY(check_q_out(ctx, q, out, p, &q_ext, &o_ext, &l_ext));
    TRY(ea_check_input_tensor(msg, "k", k, EA_DTYPES_FLOAT, &k_ext));
    TRY(ea_check_input_tensor(msg, "v", v, EA_DTYPES_FLOAT, &v_ext));
    TRY(ea_check_memory(ctx, "k", k));
    TRY(ea_check_memory(ctx, "v", v));
    if (k->dtype != v->dtype)
        return ea_fail(msg, EDGEATTN_ERR_DTYPE, "v: dtype %s != k dtype %s", ea_dtype_name(v->dtype),
                       ea_dtype_name(k->dtype));
    static const char *const dim_name[4] = {"batch", "heads", "length", "head_dim"};
    /* D_v may differ from D only with config.max_head_dim_v */
    for (int i = 0; i < (ctx->cfg.max_head_dim_v ? 3 : 4); i++)
        if (v->shape[i] != k->shape[i])
            return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "v: %s %lld != k %s %lld", dim_name[i],
                           (long long)v->shape[i], dim_name[i], (long long)k->shape[i]);
    if (k->shape[0] != q->shape[0])
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "k: batch %lld != q batch %lld", (long long)k->shape[0],
                       (long long)q->shape[0]);
    if (k->shape[3] != q->shape[3])
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "k: head_dim %lld != q head_dim %lld",
                       (long long)k->shape[3], (long long)q->shape[3]);
    if (v->shape[3] != out->shape[3])
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "v: head_dim %lld != out head_dim %lld (both are D_v)",
                       (long long)v->shape[3], (long long)out->shape[3]);
    if (p->linformer && v->shape[3] != k->shape[3])
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "linformer: v head_dim %lld != k head_dim %lld (not served)",
                       (long long)v->shape[3], (long long)k->shape[3]);
    if (q->shape[1] % k->shape[1] != 0)
        return ea_fail(msg, EDGEATTN_ERR_GQA_RATIO, "q heads %lld not a multiple of k heads %lld",
                       (long long)q->shape[1], (long long)k->shape[1]);
    TRY(check_plan_dim(msg, "KV heads", k->shape[1], ctx->cfg.max_kv_heads));
    TRY(check_plan_dim(msg, "KV length", k->shape[2], ctx->cfg.max_kv_len));
    if (ea_tensors_overlap(out, o_ext, k, k_ext) || ea_tensors_overlap(out, o_ext, v, v_ext))
        return ea_fail(msg, EDGEATTN_ERR_STRIDE, "out overlaps k or v");
    if (p->lse) {
        if (ea_tensors_overlap(p->lse, l_ext, k, k_ext) || ea_tensors_overlap(p->lse, l_ext, v, v_ext))
            return ea_fail(msg, EDGEATTN_ERR_STRIDE, "lse overlaps k or v");
    }
    const int64_t B = q->shape[0], Nkv = k->shape[2];
    if (p->kv_lens) {
        /* Read once: the backends see only this copy (the caller's array may lie inside an output). */
        memcpy(ctx->lens, p->kv_lens, sizeof(int32_t) * (size_t)B);
        for (int64_t b = 0; b < B; b++)
            if (ctx->lens[b] < 0 || ctx->lens[b] > Nkv)
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "kv_lens[%lld] = %d outside [0, %lld]", (long long)b,
                               (int)ctx->lens[b], (long long)Nkv);
    }
    if (p->bias) {
        const edgeattn_tensor *bt = p->bias;
        size_t b_ext;
        TRY(ea_check_input_tensor(msg, "bias", bt, EA_DTYPES_F32, &b_ext));
        TRY(ea_check_memory(ctx, "bias", bt));
        if ((bt->shape[0] != 1 && bt->shape[0] != B) || (bt->shape[1] != 1 && bt->shape[1] != q->shape[1]) ||
            bt->shape[2] != q->shape[2] || bt->shape[3] != Nkv)
            return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH,
                           "bias: shape [%lld, %lld, %lld, %lld] must be [1 or %lld, 1 or %lld, %lld, %lld]",
                           (long long)bt->shape[0], (long long)bt->shape[1], (long long)bt->shape[2],
                           (long long)bt->shape[3], (long long)B, (long long)q->shape[1], (long long)q->shape[2],
                           (long long)Nkv);
        if (ea_tensors_overlap(out, o_ext, bt, b_ext))
            return ea_fail(msg, EDGEATTN_ERR_STRIDE, "out overlaps bias");
        if (p->lse && ea_tensors_overlap(p->lse, l_ext, bt, b_ext))
            return ea_fail(msg, EDGEATTN_ERR_STRIDE, "lse overlaps bias");
    }
    if (p->block_mask)
        TRY(check_block_mask(ctx, p->block_mask, B, k->shape[1], q->shape[2], Nkv, out, o_ext, p->lse, l_ext));
    if (p->linformer)
        TRY(check_linformer(ctx, p, B, k->shape[1], Nkv, out, o_ext, l_ext));
    if (p->check_finite) {
        TRY(ea_check_finite(ctx, "q", q, false));
        TRY(ea_check_finite(ctx, "k", k, false));
        TRY(ea_check_finite(ctx, "v", v, false));
        if (p->bias)
            TRY(ea_check_finite(ctx, "bias", p->bias, true));
    }
    memset(call, 0, sizeof *call);
    fill_common(call, q, out, p);
    call->decode = false;
    call->Hkv = (int32_t)k->shape[1];
    call->Nkv = (int32_t)Nkv;
    call->group = call->Hq / call->Hkv;
    call->k = k;
    call->v = v;
    call->kv_dtype = k->dtype;
    call->kv_lens = p->kv_lens ? ctx->lens : NULL;
    call->bias = p->bias;
    call->block_mask = p->block_mask;
    call->linformer = p->linformer;
    return EDGEATTN_OK;
}

edgeattn_status ea_validate_decode(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids, const int32_t *q_lens,
                                   const edgeattn_tensor *q, edgeattn_tensor *out, const edgeattn_params *p,
                                   ea_attn_call *call)
{
    char *msg = ctx->msg;
    const ea_kv_cache *kv = &ctx->kv;
    size_t q_ext = 0, o_ext = 0, l_ext = 0;
    if (!kv->enabled)
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "decode: no KV cache planned (set EDGEATTN_FLAG_KV_CACHE)");
    TRY(ea_check_layer(ctx, "decode", layer));
    TRY(check_params(msg, p));
    if (p->kv_lens)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "decode: kv_lens must be NULL (the cache knows its lengths)");
    if (p->bias)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "decode: bias is not supported over the KV cache");
    if (p->block_mask || p->linformer)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "decode: %s is an edgeattn_attention option",
                       p->block_mask ? "block_mask" : "linformer");
    if (p->topk_tokens < 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "decode: topk_tokens %d must be >= 0 (0: every key)",
                       (int)p->topk_tokens);
    if (p->topk_tokens > 0 && !kv->summ)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "decode: topk_tokens needs block summaries in the cache (config.kv_summary_block)");
    if (kv->sinks > 0 && (p->window_left >= 0 || p->window_right >= 0))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "decode: window_left/right over a cache with sinks (config.kv_cache_sinks): its sinks and ring "
                       "are the window");
    TRY(check_q_out(ctx, q, out, p, &q_ext, &o_ext, &l_ext));
    if (p->topk_tokens > 0 && q->shape[2] != 1)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "decode: topk_tokens takes one query per sequence (Nq %lld)",
                       (long long)q->shape[2]);
    if (kv->heads == 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "decode: the KV cache is empty");
    if (q->shape[3] != kv->dim)
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "q: head_dim %lld != KV cache head_dim %d",
                       (long long)q->shape[3], (int)kv->dim);
    if (kv->latent ? out->shape[3] > kv->dim : out->shape[3] != kv->dim)
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH,
                       kv->latent ? "out: head_dim %lld > the latent cache's head_dim %d (V is the first D_v values)"
                                  : "out: head_dim %lld != KV cache head_dim %d",
                       (long long)out->shape[3], (int)kv->dim);
    if (q->shape[1] % kv->heads != 0)
        return ea_fail(msg, EDGEATTN_ERR_GQA_RATIO, "q heads %lld not a multiple of KV cache heads %d",
                       (long long)q->shape[1], (int)kv->heads);
    const int64_t B = q->shape[0], Nq = q->shape[2];
    TRY(ea_take_seq_ids(ctx, "decode", seq_ids, B));
    if (q_lens)
        memcpy(ctx->qlens, q_lens, sizeof(int32_t) * (size_t)B); /* read once */
    for (int64_t b = 0; b < B; b++) {
        const int64_t nq = q_lens ? ctx->qlens[b] : Nq;
        const int32_t held = kv->held[ea_kv_idx(kv, layer, ctx->ids[b])];
        if (q_lens && (nq < 1 || nq > Nq))
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "decode: q_lens[%lld] = %lld outside [1, Nq = %lld]",
                           (long long)b, (long long)nq, (long long)Nq);
        if (held < nq)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                           "decode: layer %d sequence %d holds %d tokens, fewer than its %lld queries", (int)layer,
                           (int)ctx->ids[b], (int)held, (long long)nq);
    }
    if (p->check_finite)
        TRY(ea_check_finite(ctx, "q", q, false));
    memset(call, 0, sizeof *call);
    fill_common(call, q, out, p);
    call->decode = true;
    call->layer = layer;
    call->seq_ids = ctx->ids;
    call->q_lens = q_lens ? ctx->qlens : NULL;
    call->rope = ctx->rope.style != EDGEATTN_ROPE_NONE ? &ctx->rope : NULL;
    call->Hkv = kv->heads;
    call->Nkv = kv->cap;
    call->group = call->Hq / call->Hkv;
    call->kv_dtype = kv->dtype;
    call->cache = kv;
    call->topk_tokens = p->topk_tokens;
    return EDGEATTN_OK;
}

int ea_call_kv_segments(const ea_attn_call *c, int32_t b, int32_t h, ea_kv_seg segs[EA_KV_SEGS], int64_t *total,
                        int64_t *gap)
{
    const size_t es = ea_kv_unit_size(c->kv_dtype);
    *gap = 0;
    if (!c->decode) {
        const edgeattn_tensor *k = c->k, *v = c->v;
        int32_t n = c->kv_lens ? c->kv_lens[b] : c->Nkv;
        *total = n;
        segs[0].k = (const char *)k->data + (size_t)(b * k->stride[0] + h * k->stride[1]) * es;
        segs[0].v = (const char *)v->data + (size_t)(b * v->stride[0] + h * v->stride[1]) * es;
        segs[0].ldk = (ptrdiff_t)k->stride[2];
        segs[0].ldv = (ptrdiff_t)v->stride[2];
        segs[0].pos0 = 0;
        segs[0].n = n;
        segs[0].cache = NULL;
        return n > 0 ? 1 : 0;
    }
    const ea_kv_cache *kv = c->cache;
    const int32_t seq = c->seq_ids[b];
    const size_t at = ea_kv_idx(kv, c->layer, seq);
    const int64_t t = kv->total[at];
    const int32_t held = kv->held[at];
    /* held positions: the sinks [0, sh) at slots 0.., and the ring [rf, t) at slots ea_kv_slot (no
     * window: all of [0, t) at slots pos). Positions past the sinks are told to the kernels less the
     * evicted gap rf - sh, so the keys they see are consecutive. */
    const int64_t sh = t < kv->sinks ? t : kv->sinks, rf = ea_kv_ring_first(kv, t, held);
    *gap = rf - sh;
    *total = t - *gap;
    int nseg = 0;
    for (int part = 0; part < 3; part++) {
        int64_t p0, n; /* true positions [p0, p0 + n), slots consecutive */
        if (part == 0) {
            p0 = 0;
            n = sh;
        } else {
            const int64_t slot = ea_kv_slot(kv, rf), to_end = kv->cap - slot;
            p0 = part == 1 ? rf : rf + to_end;
            n = part == 1 ? (t - rf < to_end ? t - rf : to_end) : t - p0;
        }
        if (n <= 0)
            continue;
        ea_kv_seg *sg = &segs[nseg++];
        const int32_t s0 = (int32_t)ea_kv_slot(kv, p0);
        sg->pos0 = p0 >= sh ? p0 - *gap : p0;
        sg->n = (int32_t)n;
        sg->ldk = sg->ldv = kv->row;
        sg->layer = c->layer;
        sg->seq = seq;
        sg->h = h;
        sg->slot0 = s0;
        if (kv->page > 0) { /* rows found page by page (ea_kv_seg_rows) */
            sg->cache = kv;
            sg->k = sg->v = NULL;
        } else {
            const size_t e = ea_kv_row_elem(kv, c->layer, seq, h, s0);
            sg->cache = NULL;
            sg->k = (const char *)kv->k + e * es;
            sg->v = (const char *)kv->v + e * es;
        }
    }
    return nseg;
}
