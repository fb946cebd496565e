/* The KV cache calls: append, lengths, reset, truncate, fork and read. Core owns the lengths of every
 * (layer, sequence); the rows live in the host block (CPU backend) or in the backend's device pool
 * (kv_on_device: core checks everything, then asks the backend to move the rows). */
#include <math.h>
#include <string.h>

#include "backends/backend.h"
#include "core/ea_core.h"

static edgeattn_status check_cache(edgeattn_context *ctx, const char *fn)
{
    if (!ctx->kv.enabled)
        return ea_fail(ctx->msg, EDGEATTN_ERR_UNSUPPORTED, "%s: no KV cache planned (set EDGEATTN_FLAG_KV_CACHE)", fn);
    return EDGEATTN_OK;
}

edgeattn_status ea_check_layer(edgeattn_context *ctx, const char *fn, int32_t layer)
{
    if (layer < 0 || layer >= ctx->kv.layers)
        return ea_fail(ctx->msg, EDGEATTN_ERR_LAYER, "%s: layer %d outside [0, %d) (config.num_layers)", fn, (int)layer,
                       (int)ctx->kv.layers);
    return EDGEATTN_OK;
}

static edgeattn_status check_seq(edgeattn_context *ctx, const char *fn, const char *what, int32_t seq)
{
    if (seq < 0 || seq >= ctx->kv.max_batch)
        return ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG, "%s: %s %d outside [0, %d) (config.max_batch)", fn, what,
                       (int)seq, (int)ctx->kv.max_batch);
    return EDGEATTN_OK;
}

edgeattn_status ea_take_seq_ids(edgeattn_context *ctx, const char *fn, const int32_t *seq_ids, int64_t B)
{
    int32_t *ids = ctx->ids;
    if (!seq_ids) {
        for (int32_t b = 0; b < (int32_t)B; b++)
            ids[b] = b;
        return EDGEATTN_OK;
    }
    memcpy(ids, seq_ids, sizeof(int32_t) * (size_t)B); /* read once: the copy is what counts */
    for (int64_t b = 0; b < B; b++)
        if (ids[b] < 0 || ids[b] >= ctx->kv.max_batch)
            return ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG, "%s: seq_ids[%lld] = %d outside [0, %d)", fn,
                           (long long)b, (int)ids[b], (int)ctx->kv.max_batch);
    /* distinct: mark each id (the marks are cleared on the way out) */
    edgeattn_status st = EDGEATTN_OK;
    int64_t b = 0;
    for (; b < B; b++) {
        if (ctx->mark[ids[b]]) {
            st = ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG, "%s: seq_ids[%lld] = %d appears twice", fn, (long long)b,
                         (int)ids[b]);
            break;
        }
        ctx->mark[ids[b]] = 1;
    }
    for (int64_t c = 0; c < b; c++)
        ctx->mark[ids[c]] = 0;
    return st;
}

/* Rows [0, n) of batch row b of t, every head: finite? (host scan or the backend's device scan) */
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

/* Row (layer, seq, head, slot) of the host cache's K or V (a paged cache: the slot's page mapped). */
static char *host_row(const ea_kv_cache *kv, void *base, int32_t layer, int32_t seq, int32_t h, int64_t slot)
{
    return (char *)base + ea_kv_row_elem(kv, layer, seq, h, slot) * kv->unit;
}

/* ---- the page pool (paged caches) */
static void page_unref(ea_kv_cache *kv, int32_t p)
{
    if (--kv->ref[p] == 0)
        kv->free_stack[kv->nfree++] = p;
}

static int32_t page_take(ea_kv_cache *kv)
{
    const int32_t p = kv->free_stack[--kv->nfree];
    kv->ref[p] = 1;
    return p;
}

/* Page-table entries of the slots of positions [p0, p0 + m) (m <= cap), each once: calls
 * fn(kv, t, page index, arg) and returns the sum of what fn returns. */
typedef int64_t (*page_fn)(ea_kv_cache *kv, int32_t *t, int32_t pi, void *arg);
static int64_t each_page(ea_kv_cache *kv, int32_t *t, int64_t p0, int64_t m, page_fn fn, void *arg)
{
    int64_t sum = 0;
    int32_t first = -1;
    for (int64_t r = 0; r < m;) {
        const int64_t slot = ea_kv_slot(kv, p0 + r);
        const int32_t pi = (int32_t)(slot >> kv->page_shift);
        if (pi != first || r == 0) /* m <= cap: only a wrap back into the first page repeats one */
            sum += fn(kv, t, pi, arg);
        if (r == 0)
            first = pi;
        const int64_t to_page = kv->page - (slot & (kv->page - 1)), to_end = kv->cap - slot;
        r += to_page < to_end ? to_page : to_end;
    }
    return sum;
}

static int64_t page_mark(ea_kv_cache *kv, int32_t *t, int32_t pi, void *arg);

/* each_page over the rows an append of n rows at position total keeps (ea_kv_kept): the sinks part
 * and the ring part, each page once. */
static int64_t each_append_page(ea_kv_cache *kv, int32_t *t, int64_t total, int64_t n, page_fn fn, void *arg)
{
    int64_t a1, b0;
    ea_kv_kept(kv, total, n, &a1, &b0);
    if (a1 == 0 || b0 == n)
        return a1 == 0 ? each_page(kv, t, total + b0, n - b0, fn, arg) : each_page(kv, t, total, a1, fn, arg);
    /* both parts (the first appends of a sinks cache): they may share a page */
    each_page(kv, t, total, a1, page_mark, NULL);
    each_page(kv, t, total + b0, n - b0, page_mark, NULL);
    int64_t sum = 0;
    for (int32_t pi = 0; pi < kv->pages_per_seq; pi++)
        if (kv->pmark[pi]) {
            kv->pmark[pi] = 0;
            sum += fn(kv, t, pi, arg);
        }
    return sum;
}

/* Pages an append must take for the entry: a new one, or a private copy of a shared one. */
static int64_t page_need(ea_kv_cache *kv, int32_t *t, int32_t pi, void *arg)
{
    (void)arg;
    return t[pi] < 0 || kv->ref[t[pi]] > 1;
}

/* Makes entry pi mapped and exclusive (a shared page is copied first). */
static int64_t page_own(ea_kv_cache *kv, int32_t *t, int32_t pi, void *arg)
{
    edgeattn_context *ctx = arg;
    if (t[pi] < 0) {
        t[pi] = page_take(kv);
        return 0;
    }
    if (kv->ref[t[pi]] == 1)
        return 0;
    const int32_t old = t[pi], p = page_take(kv);
    if (kv->on_device) {
        if (ctx->backend->kv_page_copy(ctx, old, p) != EDGEATTN_OK) {
            page_unref(kv, p); /* the entry keeps the shared page */
            return 1;
        }
    } else {
        const size_t bytes = kv->page_elems * kv->unit;
        const size_t off_old = (size_t)old * bytes, off_new = (size_t)p * bytes;
        memcpy((char *)kv->k + off_new, (const char *)kv->k + off_old, bytes);
        if (!kv->latent) /* a latent cache's V is its K storage */
            memcpy((char *)kv->v + off_new, (const char *)kv->v + off_old, bytes);
    }
    page_unref(kv, old);
    t[pi] = p;
    return 0;
}

static int64_t page_mark(ea_kv_cache *kv, int32_t *t, int32_t pi, void *arg)
{
    (void)t;
    (void)arg;
    kv->pmark[pi] = 1;
    return 0;
}

/* Gives back every page of (layer, seq) that holds none of its positions [total - held, total). */
static void pages_trim(ea_kv_cache *kv, int32_t layer, int32_t seq)
{
    const size_t at = ea_kv_idx(kv, layer, seq);
    int32_t *t = ea_kv_table(kv, layer, seq);
    const int64_t total = kv->total[at], rf = ea_kv_ring_first(kv, total, kv->held[at]);
    each_page(kv, t, 0, total < kv->sinks ? total : kv->sinks, page_mark, NULL);
    each_page(kv, t, rf, total - rf, page_mark, NULL);
    for (int32_t pi = 0; pi < kv->pages_per_seq; pi++) {
        if (t[pi] >= 0 && !kv->pmark[pi]) {
            page_unref(kv, t[pi]);
            t[pi] = -1;
        }
        kv->pmark[pi] = 0;
    }
}

/* Block summaries: the key row just stored at `slot` joins its block's per-channel min and max (the
 * block's first slot starts them afresh: writes go in position order, so by then the block's earlier
 * rows are gone; a later append after a truncate inside a block keeps the old rows' extremes, a
 * looser but still valid bound). */
static void summary_add(ea_kv_cache *kv, int32_t layer, int32_t seq, int32_t h, int64_t slot, const char *kd)
{
    float *mn = ea_kv_summary(kv, layer, seq, h, slot / kv->sblk), *mx = mn + kv->max_dim;
    const bool first = slot % kv->sblk == 0;
    for (int32_t d = 0; d < kv->dim; d++) {
        const float x = ea_load_f32(kd, kv->dtype, d);
        mn[d] = first || x < mn[d] ? x : mn[d];
        mx[d] = first || x > mx[d] ? x : mx[d];
    }
}

/* Host cache: rows [skip, n) of batch row b go to (layer, seq) at positions total + r, keys rotated. */
static void host_write(edgeattn_context *ctx, int32_t layer, int32_t seq, const edgeattn_tensor *k,
                       const edgeattn_tensor *v, int64_t b, int64_t n, int64_t total)
{
    ea_kv_cache *kv = &ctx->kv;
    const int32_t H = kv->heads, D = kv->dim;
    const size_t es = ea_dtype_size(kv->dtype), kes = ea_dtype_size(k->dtype), ves = v ? ea_dtype_size(v->dtype) : 0;
    const bool rope = ctx->rope.style != EDGEATTN_ROPE_NONE;
    const float *cs = NULL;
    float row[EA_MAX_HEAD_DIM_CPU];
    int64_t a1, b0; /* rows kept: [0, a1) (sinks) and [b0, n) (later rows of a ring overwrite earlier ones) */
    ea_kv_kept(kv, total, n, &a1, &b0);
    for (int64_t r = a1 > 0 ? 0 : b0; r < n; r = r + 1 == a1 ? b0 : r + 1) {
        const int64_t pos = total + r, slot = ea_kv_slot(kv, pos);
        if (rope)
            cs = ea_rope_cached(&ctx->rope, pos);
        for (int32_t h = 0; h < H; h++) {
            char *kd = host_row(kv, kv->k, layer, seq, h, slot);
            const ptrdiff_t ko = (ptrdiff_t)(b * k->stride[0] + h * k->stride[1] + r * k->stride[2]);
            if (k->dtype == kv->dtype && !rope) {
                memcpy(kd, (const char *)k->data + (size_t)ko * kes, (size_t)D * es);
            } else {
                for (int32_t d = 0; d < D; d++)
                    row[d] = ea_load_f32(k->data, k->dtype, ko + d);
                if (rope)
                    ea_rope_apply(&ctx->rope, cs, row);
                for (int32_t d = 0; d < D; d++)
                    ea_store_f32(kd, kv->dtype, d, row[d]);
            }
            if (kv->summ)
                summary_add(kv, layer, seq, h, slot, kd);
            if (!v) /* a latent cache: the row just written is also V */
                continue;
            char *vd = host_row(kv, kv->v, layer, seq, h, slot);
            const ptrdiff_t vo = (ptrdiff_t)(b * v->stride[0] + h * v->stride[1] + r * v->stride[2]);
            if (v->dtype == kv->dtype) {
                memcpy(vd, (const char *)v->data + (size_t)vo * ves, (size_t)D * es);
            } else {
                for (int32_t d = 0; d < D; d++)
                    ea_store_f32(vd, kv->dtype, d, ea_load_f32(v->data, v->dtype, vo + d));
            }
        }
    }
}

/* Row r of batch row b, head h of k (key: rotated at position pos when RoPE is on) or v, as floats. */
static void load_row(edgeattn_context *ctx, const edgeattn_tensor *t, bool key, int64_t b, int32_t h, int64_t r,
                     int64_t pos, float *row)
{
    const ptrdiff_t o = (ptrdiff_t)(b * t->stride[0] + h * t->stride[1] + r * t->stride[2]);
    for (int32_t d = 0; d < ctx->kv.dim; d++)
        row[d] = ea_load_f32(t->data, t->dtype, o + d);
    if (key && ctx->rope.style != EDGEATTN_ROPE_NONE)
        ea_rope_apply(&ctx->rope, ea_rope_cached(&ctx->rope, pos), row);
}

/* Quantised cache, the first append into (layer, seq): the per-channel offset and scale of every KV
 * head's keys and values from rows [skip, n) of batch row b (see EA_Q_MIN_ROWS). */
static void quant_stats(edgeattn_context *ctx, int32_t layer, int32_t seq, const edgeattn_tensor *k,
                        const edgeattn_tensor *v, int64_t b, int64_t skip, int64_t n, int64_t total)
{
    ea_kv_cache *kv = &ctx->kv;
    const int32_t D = kv->dim, MD = kv->max_dim;
    float row[EA_MAX_HEAD_DIM_CPU];
    const bool centre = n - skip >= EA_Q_MIN_ROWS;
    for (int32_t h = 0; h < kv->heads; h++) {
        float *st = ea_kv_stats(kv, layer, seq, h);
        for (int32_t i = 0; i < 4; i++)
            for (int32_t d = 0; d < MD; d++)
                st[i * MD + d] = 0.0f;
    }
    for (int pass = centre ? 0 : 1; pass < 2; pass++) /* 0: the means, 1: the spread about them */
        for (int64_t r = skip; r < n; r++)
            for (int32_t h = 0; h < kv->heads; h++) {
                float *st = ea_kv_stats(kv, layer, seq, h);
                for (int32_t t = 0; t < 2; t++) {
                    float *m = st + 2 * t * MD, *c = m + MD;
                    load_row(ctx, t == 0 ? k : v, t == 0, b, h, r, total + r, row);
                    for (int32_t d = 0; d < D; d++) {
                        if (pass == 0) {
                            m[d] += row[d];
                        } else {
                            const float a = fabsf(row[d] - m[d]);
                            c[d] = a > c[d] ? a : c[d];
                        }
                    }
                }
                if (pass == 0 && r == n - 1)
                    for (int32_t d = 0; d < D; d++) {
                        st[d] /= (float)(n - skip);
                        st[2 * MD + d] /= (float)(n - skip);
                    }
            }
    for (int32_t h = 0; h < kv->heads; h++) {
        float *st = ea_kv_stats(kv, layer, seq, h);
        for (int32_t t = 0; t < 2 && !centre; t++) /* too few rows to tell a channel's range: no smoothing */
            for (int32_t d = 0; d < D; d++)
                st[(2 * t + 1) * MD + d] = 1.0f;
        for (int32_t t = 0; t < 2 && centre; t++) {
            float *c = st + (2 * t + 1) * MD, top = 0.0f;
            for (int32_t d = 0; d < D; d++)
                top = c[d] > top ? c[d] : top;
            const float floor = top > 0.0f && isfinite(top) ? top * EA_Q_C_FLOOR : 1.0f;
            for (int32_t d = 0; d < D; d++)
                c[d] = c[d] > floor && isfinite(c[d]) ? c[d] : floor;
        }
    }
}

/* Quantised cache, a sequence that holds statistics already: can every row of this append be stored
 * (its scale within EA_Q_MAX_SCALE)? Else a message naming the first row that cannot. */
static edgeattn_status quant_range(edgeattn_context *ctx, int32_t layer, int32_t seq, const edgeattn_tensor *k,
                                   const edgeattn_tensor *v, int64_t b, int64_t skip, int64_t n, int64_t total)
{
    ea_kv_cache *kv = &ctx->kv;
    float row[EA_MAX_HEAD_DIM_CPU];
    for (int64_t r = skip; r < n; r++)
        for (int32_t h = 0; h < kv->heads; h++) {
            const float *st = ea_kv_stats(kv, layer, seq, h);
            for (int32_t t = 0; t < 2; t++) {
                load_row(ctx, t == 0 ? k : v, t == 0, b, h, r, total + r, row);
                const float need = ea_q_row_need(kv->dtype, row, st + 2 * t * kv->max_dim,
                                                 st + (2 * t + 1) * kv->max_dim, kv->dim);
                if (need > EA_Q_MAX_SCALE) /* (a NaN passes: check_finite is the caller's guard) */
                    return ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG,
                                   "kv_append: %s row %lld of batch row %lld, head %d is %.3g times the range of "
                                   "layer %d sequence %d's first append, beyond what a %s cache stores (reset the "
                                   "sequence, or use a float cache)", t == 0 ? "k" : "v", (long long)r, (long long)b,
                                   (int)h, (double)need * (kv->dtype == EDGEATTN_Q8 ? 127.0 : 7.5), (int)layer,
                                   (int)seq, ea_dtype_name(kv->dtype));
            }
        }
    return EDGEATTN_OK;
}

/* Quantised host cache: rows [skip, n) of batch row b go to (layer, seq) at positions total + r. */
static void host_write_quant(edgeattn_context *ctx, int32_t layer, int32_t seq, const edgeattn_tensor *k,
                             const edgeattn_tensor *v, int64_t b, int64_t n, int64_t total)
{
    ea_kv_cache *kv = &ctx->kv;
    int64_t a1, b0;
    ea_kv_kept(kv, total, n, &a1, &b0);
    if (total == 0 && n > 0) /* the statistics from the rows kept (a sinks cache: from every row) */
        quant_stats(ctx, layer, seq, k, v, b, a1 > 0 ? 0 : b0, n, total);
    float row[EA_MAX_HEAD_DIM_CPU];
    for (int64_t r = a1 > 0 ? 0 : b0; r < n; r = r + 1 == a1 ? b0 : r + 1) {
        const int64_t pos = total + r, slot = ea_kv_slot(kv, pos);
        for (int32_t h = 0; h < kv->heads; h++) {
            const float *st = ea_kv_stats(kv, layer, seq, h);
            for (int32_t t = 0; t < 2; t++) {
                load_row(ctx, t == 0 ? k : v, t == 0, b, h, r, pos, row);
                ea_q_row_store(kv->dtype, row, st + 2 * t * kv->max_dim, st + (2 * t + 1) * kv->max_dim, kv->dim,
                               host_row(kv, t == 0 ? kv->k : kv->v, layer, seq, h, slot));
            }
        }
    }
}

/* After a sequence emptied: when every (layer, sequence) is empty, the cache's shape is free again. */
static void release_shape_if_empty(ea_kv_cache *kv)
{
    const size_t n = (size_t)kv->layers * (size_t)kv->max_batch;
    for (size_t i = 0; i < n; i++)
        if (kv->total[i] != 0)
            return;
    kv->heads = kv->dim = kv->row = 0;
}

EDGEATTN_API edgeattn_status edgeattn_kv_append(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids,
                                                const edgeattn_tensor *k, const edgeattn_tensor *v,
                                                const int32_t *n_new_arg, int32_t check_finite)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    char *msg = ctx->msg;
    msg[0] = '\0';
    ea_kv_cache *kv = &ctx->kv;
    edgeattn_status st;
    if ((st = check_cache(ctx, "kv_append")) != EDGEATTN_OK || (st = ea_check_layer(ctx, "kv_append", layer)) != EDGEATTN_OK)
        return st;
    size_t k_ext, v_ext;
    if (kv->latent && v)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "kv_append: v must be NULL for a latent cache (config.kv_cache_latent): k holds the latent "
                       "vectors, and V is their first D_v values");
    if ((st = ea_check_input_tensor(msg, "k", k, EA_DTYPES_FLOAT, &k_ext)) != EDGEATTN_OK ||
        (!kv->latent && (st = ea_check_input_tensor(msg, "v", v, EA_DTYPES_FLOAT, &v_ext)) != EDGEATTN_OK) ||
        (st = ea_check_memory(ctx, "k", k)) != EDGEATTN_OK ||
        (!kv->latent && (st = ea_check_memory(ctx, "v", v)) != EDGEATTN_OK))
        return st;
    for (int i = 0; i < 4 && v; i++)
        if (k->shape[i] != v->shape[i])
            return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "v: shape[%d] = %lld != k shape[%d] = %lld", i,
                           (long long)v->shape[i], i, (long long)k->shape[i]);
    if (check_finite != 0 && check_finite != 1)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "kv_append: check_finite must be 0 or 1");
    const int64_t B = k->shape[0], H = k->shape[1], N = k->shape[2], D = k->shape[3];
    if ((st = ea_check_head_dim(msg, "k", D)) != EDGEATTN_OK)
        return st;
    if (ea_dtype_quant(kv->dtype) && D % EA_Q_GROUP != 0)
        return ea_fail(msg, EDGEATTN_ERR_HEAD_DIM, "kv_append: head_dim %lld: a %s cache needs a multiple of %d",
                       (long long)D, ea_dtype_name(kv->dtype), EA_Q_GROUP);
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
    if (ctx->cfg.rope.style != EDGEATTN_ROPE_NONE && ctx->cfg.rope.dim > D)
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "kv_append: config.rope.dim %d exceeds head_dim %lld",
                       (int)ctx->cfg.rope.dim, (long long)D);
    if ((st = ea_take_seq_ids(ctx, "kv_append", seq_ids, B)) != EDGEATTN_OK)
        return st;
    /* n_new is read once, here: everything below (and the backend) uses the copy */
    const int32_t *n_new = NULL;
    if (n_new_arg) {
        memcpy(ctx->lens, n_new_arg, sizeof(int32_t) * (size_t)B);
        n_new = ctx->lens;
    }
    for (int64_t b = 0; b < B; b++) {
        const int64_t n = n_new ? n_new[b] : N;
        const size_t at = ea_kv_idx(kv, layer, ctx->ids[b]);
        if (n < 0 || n > N)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "n_new[%lld] = %lld outside [0, %lld]", (long long)b,
                           (long long)n, (long long)N);
        if (kv->window == 0 && kv->held[at] + n > kv->cap)
            return ea_fail(msg, EDGEATTN_ERR_CAPACITY,
                           "kv_append: layer %d sequence %d would hold %lld tokens, the cache has room for %d",
                           (int)layer, (int)ctx->ids[b], (long long)(kv->held[at] + n), (int)kv->cap);
        if (check_finite && ((st = rows_finite(ctx, k, "kv_append: k", b, n)) != EDGEATTN_OK ||
                             (v && (st = rows_finite(ctx, v, "kv_append: v", b, n)) != EDGEATTN_OK)))
            return st;
    }
    if (ea_dtype_quant(kv->dtype) && !kv->on_device) /* rows beyond a sequence's range: refused before any write */
        for (int64_t b = 0; b < B; b++) {
            const size_t at = ea_kv_idx(kv, layer, ctx->ids[b]);
            const int64_t n = n_new ? n_new[b] : N;
            int64_t a1, b0;
            ea_kv_kept(kv, kv->total[at], n, &a1, &b0);
            if (kv->total[at] > 0 &&
                ((st = quant_range(ctx, layer, ctx->ids[b], k, v, b, 0, a1, kv->total[at])) != EDGEATTN_OK ||
                 (st = quant_range(ctx, layer, ctx->ids[b], k, v, b, b0, n, kv->total[at])) != EDGEATTN_OK))
                return st;
        }
    if (kv->page > 0) { /* the pool must serve every page this call writes into */
        int64_t need = 0;
        for (int64_t b = 0; b < B; b++) {
            const size_t at = ea_kv_idx(kv, layer, ctx->ids[b]);
            const int64_t n = n_new ? n_new[b] : N;
            need += each_append_page(kv, ea_kv_table(kv, layer, ctx->ids[b]), kv->total[at], n, page_need, NULL);
        }
        if (need > kv->nfree)
            return ea_fail(msg, EDGEATTN_ERR_CAPACITY,
                           "kv_append: the KV page pool is full: this append needs %lld new pages, %d of %d are free "
                           "(config.kv_pages; kv_reset or kv_truncate give pages back)",
                           (long long)need, (int)kv->nfree, (int)kv->pages);
    }
    /* Everything checked: now write. */
    if (kv->page > 0) {
        for (int64_t b = 0; b < B; b++) {
            const size_t at = ea_kv_idx(kv, layer, ctx->ids[b]);
            const int64_t n = n_new ? n_new[b] : N;
            if (each_append_page(kv, ea_kv_table(kv, layer, ctx->ids[b]), kv->total[at], n, page_own, ctx) != 0)
                return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "kv_append: the device could not copy a shared KV page");
        }
    }
    const int32_t old_heads = kv->heads, old_dim = kv->dim;
    if (kv->heads == 0) {
        kv->heads = (int32_t)H;
        kv->dim = (int32_t)D;
        kv->row = (int32_t)ea_kv_row_units(kv->dtype, (size_t)D);
        ea_rope_resolve(&ctx->cfg, kv->dim, &ctx->rope);
    }
    if (kv->on_device) {
        st = ctx->backend->kv_write(ctx, layer, ctx->ids, k, v, n_new);
        if (st != EDGEATTN_OK) { /* the device refused: lengths unchanged, nothing counted as written */
            kv->heads = old_heads;
            kv->dim = old_dim;
            kv->row = (int32_t)ea_kv_row_units(kv->dtype, (size_t)old_dim);
            return st;
        }
    } else {
        for (int64_t b = 0; b < B; b++)
            (ea_dtype_quant(kv->dtype) ? host_write_quant : host_write)(
                ctx, layer, ctx->ids[b], k, v, b, n_new ? n_new[b] : N, kv->total[ea_kv_idx(kv, layer, ctx->ids[b])]);
    }
    int64_t added = 0;
    for (int64_t b = 0; b < B; b++) {
        const size_t at = ea_kv_idx(kv, layer, ctx->ids[b]);
        const int64_t n = n_new ? n_new[b] : N;
        kv->total[at] += n;
        kv->held[at] = kv->held[at] + n < kv->cap ? (int32_t)(kv->held[at] + n) : kv->cap;
        added += n;
    }
    if (added == 0)
        release_shape_if_empty(kv); /* nothing appended: an empty cache keeps its shape free */
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_kv_length(edgeattn_context *ctx, int32_t layer, int32_t seq, int64_t *total,
                                                int32_t *held)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    edgeattn_status st;
    if ((st = check_cache(ctx, "kv_length")) != EDGEATTN_OK || (st = ea_check_layer(ctx, "kv_length", layer)) != EDGEATTN_OK ||
        (st = check_seq(ctx, "kv_length", "seq", seq)) != EDGEATTN_OK)
        return st;
    const size_t at = ea_kv_idx(&ctx->kv, layer, seq);
    if (total)
        *total = ctx->kv.total[at];
    if (held)
        *held = ctx->kv.held[at];
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_kv_reset(edgeattn_context *ctx, int32_t seq)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    ea_kv_cache *kv = &ctx->kv;
    edgeattn_status st;
    if ((st = check_cache(ctx, "kv_reset")) != EDGEATTN_OK)
        return st;
    if (seq < -1 || seq >= kv->max_batch)
        return ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG, "kv_reset: seq %d outside [-1, %d)", (int)seq,
                       (int)kv->max_batch);
    for (int32_t l = 0; l < kv->layers; l++)
        for (int32_t b = 0; b < kv->max_batch; b++)
            if (seq == -1 || seq == b) {
                kv->total[ea_kv_idx(kv, l, b)] = kv->held[ea_kv_idx(kv, l, b)] = 0;
                if (kv->page > 0)
                    pages_trim(kv, l, b);
            }
    release_shape_if_empty(kv);
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_kv_truncate(edgeattn_context *ctx, int32_t seq, int64_t length)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    ea_kv_cache *kv = &ctx->kv;
    edgeattn_status st;
    if ((st = check_cache(ctx, "kv_truncate")) != EDGEATTN_OK || (st = check_seq(ctx, "kv_truncate", "seq", seq)) != EDGEATTN_OK)
        return st;
    if (length < 0)
        return ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG, "kv_truncate: length %lld must be >= 0", (long long)length);
    for (int32_t l = 0; l < kv->layers; l++) { /* check every layer before changing any */
        const size_t at = ea_kv_idx(kv, l, seq);
        const int64_t total = kv->total[at], rf = ea_kv_ring_first(kv, total, kv->held[at]);
        if (length < total && length < rf && !(kv->sinks > 0 && length <= (total < kv->sinks ? total : kv->sinks)))
            return ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG,
                           "kv_truncate: layer %d of sequence %d holds positions %lld..%lld (window %d, sinks %d): the "
                           "tokens from %d to %lld are gone, so it cannot end at %lld",
                           (int)l, (int)seq, (long long)rf, (long long)(total - 1), (int)kv->window, (int)kv->sinks,
                           (int)kv->sinks, (long long)(rf - 1), (long long)length);
    }
    for (int32_t l = 0; l < kv->layers; l++) {
        const size_t at = ea_kv_idx(kv, l, seq);
        if (length < kv->total[at]) {
            const int64_t rf = ea_kv_ring_first(kv, kv->total[at], kv->held[at]);
            /* the ring keeps [rf, length), or (length inside the sinks) only the first `length` remain */
            kv->held[at] = length >= rf ? kv->held[at] - (int32_t)(kv->total[at] - length) : (int32_t)length;
            kv->total[at] = length;
            if (kv->page > 0)
                pages_trim(kv, l, seq);
        }
    }
    release_shape_if_empty(kv);
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_kv_fork(edgeattn_context *ctx, int32_t src, int32_t dst)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    ea_kv_cache *kv = &ctx->kv;
    edgeattn_status st;
    if ((st = check_cache(ctx, "kv_fork")) != EDGEATTN_OK || (st = check_seq(ctx, "kv_fork", "src", src)) != EDGEATTN_OK ||
        (st = check_seq(ctx, "kv_fork", "dst", dst)) != EDGEATTN_OK)
        return st;
    if (src == dst)
        return ea_fail(ctx->msg, EDGEATTN_ERR_INVALID_ARG, "kv_fork: src and dst are both sequence %d", (int)src);
    /* a device cache's block summaries, where the backend copies them apart from the rows (CUDA; OpenCL's
     * kv_copy takes them along); first: nothing is shared yet if this fails */
    for (int32_t l = 0; l < kv->layers && kv->on_device && kv->sblk > 0 && ctx->backend->kv_summary_copy; l++)
        if (kv->held[ea_kv_idx(kv, l, src)] > 0 && (st = ctx->backend->kv_summary_copy(ctx, l, src, dst)) != EDGEATTN_OK)
            return st;
    if (kv->page > 0) { /* share src's pages: dst gives its own back, then maps src's */
        for (int32_t l = 0; l < kv->layers; l++) {
            int32_t *ts = ea_kv_table(kv, l, src), *td = ea_kv_table(kv, l, dst);
            for (int32_t pi = 0; pi < kv->pages_per_seq; pi++) {
                if (ts[pi] >= 0)
                    kv->ref[ts[pi]]++;
                if (td[pi] >= 0)
                    page_unref(kv, td[pi]);
                td[pi] = ts[pi];
            }
        }
    }
    for (int32_t l = 0; l < kv->layers && kv->page == 0; l++) {
        if (kv->held[ea_kv_idx(kv, l, src)] > 0) {
            if (kv->on_device) {
                if ((st = ctx->backend->kv_copy(ctx, l, src, dst)) != EDGEATTN_OK)
                    return st; /* layers before l are copied but dst's lengths are untouched yet */
            } else {
                const size_t bytes = (size_t)kv->cap * (size_t)kv->row * kv->unit;
                for (int32_t h = 0; h < kv->heads; h++) {
                    memcpy(host_row(kv, kv->k, l, dst, h, 0), host_row(kv, kv->k, l, src, h, 0), bytes);
                    if (!kv->latent) /* a latent cache's V is its K storage */
                        memcpy(host_row(kv, kv->v, l, dst, h, 0), host_row(kv, kv->v, l, src, h, 0), bytes);
                }
            }
        }
    }
    for (int32_t l = 0; l < kv->layers; l++) {
        const size_t s = ea_kv_idx(kv, l, src), d = ea_kv_idx(kv, l, dst);
        kv->total[d] = kv->total[s];
        kv->held[d] = kv->held[s];
        if (kv->stats) /* the rows mean nothing without their sequence's statistics */
            memcpy(ea_kv_stats(kv, l, dst, 0), ea_kv_stats(kv, l, src, 0),
                   sizeof(float) * 4u * (size_t)kv->max_dim * (size_t)kv->max_heads);
        if (kv->summ) /* the block summaries belong to the rows */
            memcpy(ea_kv_summary(kv, l, dst, 0, 0), ea_kv_summary(kv, l, src, 0, 0),
                   sizeof(float) * 2u * (size_t)kv->max_dim * (size_t)kv->nsblk * (size_t)kv->max_heads);
    }
    release_shape_if_empty(kv);
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_kv_read(edgeattn_context *ctx, int32_t layer, int32_t seq, int64_t first,
                                              edgeattn_tensor *k, edgeattn_tensor *v)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    char *msg = ctx->msg;
    msg[0] = '\0';
    ea_kv_cache *kv = &ctx->kv;
    edgeattn_status st;
    if ((st = check_cache(ctx, "kv_read")) != EDGEATTN_OK || (st = ea_check_layer(ctx, "kv_read", layer)) != EDGEATTN_OK ||
        (st = check_seq(ctx, "kv_read", "seq", seq)) != EDGEATTN_OK)
        return st;
    size_t k_ext, v_ext = 0;
    /* a latent cache: v may be NULL (the latent vectors are all there is), or receives their first D_v values */
    if ((st = ea_check_tensor(msg, "kv_read: k", k, EA_DTYPES_FLOAT, &k_ext)) != EDGEATTN_OK ||
        ((v || !kv->latent) && (st = ea_check_tensor(msg, "kv_read: v", v, EA_DTYPES_FLOAT, &v_ext)) != EDGEATTN_OK))
        return st;
    if (k->memory != EDGEATTN_MEM_HOST || (v && v->memory != EDGEATTN_MEM_HOST))
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "kv_read: k and v must be host memory");
    if (v && ea_tensors_overlap(k, k_ext, v, v_ext))
        return ea_fail(msg, EDGEATTN_ERR_STRIDE, "kv_read: k overlaps v");
    const size_t at = ea_kv_idx(kv, layer, seq);
    const int64_t total = kv->total[at], held = kv->held[at];
    for (int i = 0; i < 3 + !kv->latent && v; i++)
        if (k->shape[i] != v->shape[i])
            return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "kv_read: v shape[%d] = %lld != k shape[%d] = %lld", i,
                           (long long)v->shape[i], i, (long long)k->shape[i]);
    if (v && kv->latent && v->shape[3] > k->shape[3])
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH,
                       "kv_read: v head_dim %lld > the latent head_dim %lld (V is the first D_v values of each vector)",
                       (long long)v->shape[3], (long long)k->shape[3]);
    const int64_t dv = v ? v->shape[3] : 0; /* values of each row v receives */
    const int64_t N = k->shape[2];
    if (kv->heads == 0 || held == 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "kv_read: layer %d sequence %d is empty", (int)layer, (int)seq);
    if (k->shape[0] != 1 || k->shape[1] != kv->heads || k->shape[3] != kv->dim)
        return ea_fail(msg, EDGEATTN_ERR_SHAPE_MISMATCH, "kv_read: k shape must be [1, %d, N, %d] (the cache's heads and "
                       "head dim)", (int)kv->heads, (int)kv->dim);
    const int64_t rf = ea_kv_ring_first(kv, total, (int32_t)held), sh = total < kv->sinks ? total : kv->sinks;
    if (first < 0 || first + N > total || (rf > sh && first < rf && first + N > sh)) {
        if (sh > 0 && rf > sh)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                           "kv_read: positions %lld..%lld, but layer %d sequence %d holds 0..%lld (sinks) and %lld..%lld",
                           (long long)first, (long long)(first + N - 1), (int)layer, (int)seq, (long long)(sh - 1),
                           (long long)rf, (long long)(total - 1));
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "kv_read: positions %lld..%lld, but layer %d sequence %d holds %lld..%lld", (long long)first,
                       (long long)(first + N - 1), (int)layer, (int)seq, (long long)(rf > sh ? rf : 0),
                       (long long)(total - 1));
    }
    /* runs of ring slots, each inside one page of a paged cache */
    int64_t r = 0;
    while (r < N) {
        const int64_t pos = first + r, slot = ea_kv_slot(kv, pos);
        int64_t run = ea_kv_rows_left(kv, slot); /* inside one page, and inside the sinks */
        if (pos < kv->sinks && run > kv->sinks - pos)
            run = kv->sinks - pos;
        const int64_t len = N - r < run ? N - r : run;
        if (kv->on_device) {
            if ((st = ctx->backend->kv_read(ctx, layer, seq, (int32_t)slot, (int32_t)len, k, v, r)) != EDGEATTN_OK)
                return st;
        } else {
            for (int32_t h = 0; h < kv->heads && ea_dtype_quant(kv->dtype); h++) {
                const float *sts = ea_kv_stats(kv, layer, seq, h);
                const int32_t MD = kv->max_dim;
                float xk[EA_MAX_HEAD_DIM_CPU], xv[EA_MAX_HEAD_DIM_CPU];
                for (int64_t i = 0; i < len; i++) {
                    ea_q_row_load(kv->dtype, host_row(kv, kv->k, layer, seq, h, slot + i), kv->dim, xk);
                    ea_q_row_load(kv->dtype, host_row(kv, kv->v, layer, seq, h, slot + i), kv->dim, xv);
                    const ptrdiff_t ko = (ptrdiff_t)(h * k->stride[1] + (r + i) * k->stride[2]);
                    const ptrdiff_t vo = (ptrdiff_t)(h * v->stride[1] + (r + i) * v->stride[2]);
                    for (int32_t d = 0; d < kv->dim; d++) {
                        ea_store_f32(k->data, k->dtype, ko + d, sts[MD + d] * xk[d] + sts[d]);
                        ea_store_f32(v->data, v->dtype, vo + d, sts[3 * MD + d] * xv[d] + sts[2 * MD + d]);
                    }
                }
            }
            for (int32_t h = 0; h < kv->heads && !ea_dtype_quant(kv->dtype); h++)
                for (int64_t i = 0; i < len; i++) {
                    const char *ks = host_row(kv, kv->k, layer, seq, h, slot + i);
                    const char *vs = host_row(kv, kv->v, layer, seq, h, slot + i);
                    const ptrdiff_t ko = (ptrdiff_t)(h * k->stride[1] + (r + i) * k->stride[2]);
                    for (int32_t d = 0; d < kv->dim; d++)
                        ea_store_f32(k->data, k->dtype, ko + d, ea_load_f32(ks, kv->dtype, d));
                    if (!v)
                        continue;
                    const ptrdiff_t vo = (ptrdiff_t)(h * v->stride[1] + (r + i) * v->stride[2]);
                    for (int64_t d = 0; d < dv; d++)
                        ea_store_f32(v->data, v->dtype, vo + d, ea_load_f32(vs, kv->dtype, d));
                }
        }
        r += len;
    }
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_kv_pages(edgeattn_context *ctx, int32_t *free_pages, int32_t *total_pages)
{
    if (!ctx)
        return EDGEATTN_ERR_NULL_ARG;
    ctx->msg[0] = '\0';
    edgeattn_status st;
    if ((st = check_cache(ctx, "kv_pages")) != EDGEATTN_OK)
        return st;
    if (free_pages)
        *free_pages = ctx->kv.page > 0 ? ctx->kv.nfree : 0;
    if (total_pages)
        *total_pages = ctx->kv.page > 0 ? ctx->kv.pages : 0;
    return EDGEATTN_OK;
}
