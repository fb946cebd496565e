/* Config checks, environment overrides and the memory plan. Nothing here obtains memory. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "core/ea_core.h"
#include "core/plan.h"

EDGEATTN_API void edgeattn_config_default(edgeattn_config *config)
{
    if (!config)
        return;
    memset(config, 0, sizeof *config);
    config->struct_version = EDGEATTN_STRUCT_VERSION;
    config->max_batch = 1;
    config->max_q_len = 1024;
    config->max_kv_len = 1024;
    config->max_heads = 8;
    config->max_kv_heads = 8;
    config->max_head_dim = 128;
    config->kv_cache_dtype = EDGEATTN_F16;
    config->backend = EDGEATTN_BACKEND_AUTO;
    config->num_layers = 1;
}

EDGEATTN_API void edgeattn_params_default(edgeattn_params *params)
{
    if (!params)
        return;
    memset(params, 0, sizeof *params);
    params->struct_version = EDGEATTN_STRUCT_VERSION;
    params->window_left = -1;
    params->window_right = -1;
}

int32_t ea_resolve_threads(int32_t requested)
{
    if (requested > 0)
        return requested > EA_MAX_THREADS ? EA_MAX_THREADS : requested;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > EA_MAX_THREADS ? EA_MAX_THREADS : (int32_t)n;
}

edgeattn_status ea_check_config(const edgeattn_config *c, char *msg)
{
    if (c->struct_version != EDGEATTN_STRUCT_VERSION)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "config: struct_version %u != %u (fill it with edgeattn_config_default)",
                       (unsigned)c->struct_version, (unsigned)EDGEATTN_STRUCT_VERSION);
    for (size_t i = 0; i < sizeof c->reserved; i++)
        if (c->reserved[i])
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: reserved bytes must be zero");
    if (c->flags & ~(uint32_t)(EDGEATTN_FLAG_KV_CACHE | EDGEATTN_FLAG_DEVICE_TENSORS))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: unknown flags 0x%x", (unsigned)c->flags);
    const struct {
        const char *name;
        int32_t v;
    } maxima[] = {{"max_batch", c->max_batch},   {"max_q_len", c->max_q_len}, {"max_kv_len", c->max_kv_len},
                  {"max_heads", c->max_heads},   {"max_kv_heads", c->max_kv_heads},
                  {"max_head_dim", c->max_head_dim}};
    for (size_t i = 0; i < sizeof maxima / sizeof maxima[0]; i++)
        if (maxima[i].v <= 0)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: %s = %d must be > 0", maxima[i].name,
                           (int)maxima[i].v);
    if (c->max_heads % c->max_kv_heads != 0)
        return ea_fail(msg, EDGEATTN_ERR_GQA_RATIO, "config: max_heads %d not a multiple of max_kv_heads %d",
                       (int)c->max_heads, (int)c->max_kv_heads);
    if (c->max_head_dim % 8 != 0 || c->max_head_dim > EA_MAX_HEAD_DIM_CPU)
        return ea_fail(msg, EDGEATTN_ERR_HEAD_DIM, "config: max_head_dim %d not supported (multiples of 8 up to %d)",
                       (int)c->max_head_dim, EA_MAX_HEAD_DIM_CPU);
    if (c->max_head_dim_v < 0 || c->max_head_dim_v % 8 != 0 || c->max_head_dim_v > EA_MAX_HEAD_DIM_CPU)
        return ea_fail(msg, EDGEATTN_ERR_HEAD_DIM,
                       "config: max_head_dim_v %d not supported (0: the Q·K head dim; else multiples of 8 up to %d)",
                       (int)c->max_head_dim_v, EA_MAX_HEAD_DIM_CPU);
    if (c->kv_cache_latent != 0 && c->kv_cache_latent != 1)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: kv_cache_latent %d must be 0 or 1",
                       (int)c->kv_cache_latent);
    if (c->kv_cache_latent && !(c->flags & EDGEATTN_FLAG_KV_CACHE))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: kv_cache_latent set without EDGEATTN_FLAG_KV_CACHE");
    if (c->kv_cache_latent && c->max_head_dim_v > c->max_head_dim)
        return ea_fail(msg, EDGEATTN_ERR_HEAD_DIM,
                       "config: max_head_dim_v %d > max_head_dim %d: a latent cache's V is the first D_v values of its "
                       "latent vector", (int)c->max_head_dim_v, (int)c->max_head_dim);
    if ((c->flags & EDGEATTN_FLAG_KV_CACHE) && !c->kv_cache_latent && c->max_head_dim_v > 0 &&
        c->max_head_dim_v != c->max_head_dim)
        return ea_fail(msg, EDGEATTN_ERR_HEAD_DIM,
                       "config: max_head_dim_v %d != max_head_dim %d with a KV cache of separate K and V rows (one head "
                       "dim); a separate V head dim over a cache needs kv_cache_latent", (int)c->max_head_dim_v,
                       (int)c->max_head_dim);
    if (c->kv_cache_latent && (ea_dtype_quant(c->kv_cache_dtype) || c->kv_summary_block > 0 ||
                               c->rope.style != EDGEATTN_ROPE_NONE))
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                       "config: a latent KV cache (kv_cache_latent) is not served with %s: F32, F16 or BF16, no "
                       "block summaries, RoPE applied by the caller (MLA rotates the vector's last values, outside "
                       "V; config.rope the first)",
                       c->kv_summary_block > 0 ? "block summaries (kv_summary_block)"
                       : c->rope.style != EDGEATTN_ROPE_NONE ? "config.rope"
                                                               : "a quantised cache dtype");
    if (ea_kv_unit_size(c->kv_cache_dtype) == 0)
        return ea_fail(msg, EDGEATTN_ERR_DTYPE, "config: kv_cache_dtype %d not supported", (int)c->kv_cache_dtype);
    if ((c->flags & EDGEATTN_FLAG_KV_CACHE) && ea_dtype_quant(c->kv_cache_dtype) && c->max_head_dim > EA_MAX_HEAD_DIM)
        return ea_fail(msg, EDGEATTN_ERR_HEAD_DIM, "config: a %s KV cache takes max_head_dim up to %d, not %d",
                       ea_dtype_name(c->kv_cache_dtype), EA_MAX_HEAD_DIM, (int)c->max_head_dim);
    if (ea_dtype_quant(c->kv_cache_dtype) && c->max_head_dim % EA_Q_GROUP != 0)
        return ea_fail(msg, EDGEATTN_ERR_HEAD_DIM,
                       "config: a %s KV cache needs max_head_dim a multiple of %d (blocks of %d values), not %d",
                       ea_dtype_name(c->kv_cache_dtype), EA_Q_GROUP, EA_Q_GROUP, (int)c->max_head_dim);
    if (c->kv_cache_window < 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: kv_cache_window %d must be >= 0",
                       (int)c->kv_cache_window);
    if (c->kv_cache_window > 0 && !(c->flags & EDGEATTN_FLAG_KV_CACHE))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: kv_cache_window set without EDGEATTN_FLAG_KV_CACHE");
    if (c->kv_cache_sinks < 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: kv_cache_sinks %d must be >= 0", (int)c->kv_cache_sinks);
    if (c->kv_cache_sinks > 0 && c->kv_cache_window == 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "config: kv_cache_sinks %d needs kv_cache_window > 0 (sinks are kept beside a ring)",
                       (int)c->kv_cache_sinks);
    if (c->max_lowrank < 0 || c->max_lowrank > (1 << 20))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: max_lowrank %d outside [0, 2^20]", (int)c->max_lowrank);
    if (c->kv_summary_block != 0 && c->kv_summary_block != 16 && c->kv_summary_block != 32 &&
        c->kv_summary_block != 64 && c->kv_summary_block != 128)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: kv_summary_block %d: 0 (none), 16, 32, 64 or 128",
                       (int)c->kv_summary_block);
    if (c->kv_summary_block > 0 && (!(c->flags & EDGEATTN_FLAG_KV_CACHE) || c->kv_cache_window > 0 ||
                                    ea_dtype_quant(c->kv_cache_dtype)))
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "config: kv_summary_block needs a KV cache (EDGEATTN_FLAG_KV_CACHE) of a float dtype without a "
                       "window");
    if (c->kv_cache_sinks > INT32_MAX - c->kv_cache_window)
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "config: kv_cache_sinks %d + kv_cache_window %d overflows int32",
                       (int)c->kv_cache_sinks, (int)c->kv_cache_window);
    if (c->num_threads < 0 || c->num_threads > EA_MAX_THREADS)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: num_threads %d outside [0, %d]", (int)c->num_threads,
                       EA_MAX_THREADS);
    if (c->device_user_bytes > (uint64_t)SIZE_MAX)
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "config: device_user_bytes %llu exceeds size_t",
                       (unsigned long long)c->device_user_bytes);
    if ((unsigned)c->backend > EDGEATTN_BACKEND_OPENCL)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: backend %d unknown", (int)c->backend);
    if (c->num_layers <= 0 || c->num_layers > EA_MAX_LAYERS)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: num_layers %d outside [1, %d]", (int)c->num_layers,
                       EA_MAX_LAYERS);
    if (c->pad_ != 0 || c->rope.pad_ != 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: padding fields must be zero");
    if (c->kv_page_size != 0) {
        const int32_t p = c->kv_page_size;
        if (p < 16 || p > 1024 || (p & (p - 1)) != 0)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                           "config: kv_page_size %d must be a power of two from 16 to 1024 (0: contiguous cache)",
                           (int)p);
        if (!(c->flags & EDGEATTN_FLAG_KV_CACHE))
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: kv_page_size set without EDGEATTN_FLAG_KV_CACHE");
    }
    if (c->kv_pages < 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: kv_pages %d must be >= 0", (int)c->kv_pages);
    if (c->kv_pages > 0 && c->kv_page_size == 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: kv_pages set without kv_page_size (a paged cache)");
    if (c->flags & EDGEATTN_FLAG_KV_CACHE) {
        ea_kv_geom g;
        edgeattn_status st = ea_kv_geometry(c, &g, msg);
        if (st != EDGEATTN_OK)
            return st;
    }
    const edgeattn_rope *r = &c->rope;
    if ((unsigned)r->style > EDGEATTN_ROPE_INTERLEAVED)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: rope.style %d unknown", (int)r->style);
    if (r->style != EDGEATTN_ROPE_NONE) {
        if (!(c->flags & EDGEATTN_FLAG_KV_CACHE))
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                           "config: rope is applied by kv_append and decode: it needs EDGEATTN_FLAG_KV_CACHE");
        if (r->dim < 0 || r->dim % 2 != 0 || r->dim > c->max_head_dim)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                           "config: rope.dim %d must be even and <= max_head_dim %d (0: the whole head)",
                           (int)r->dim, (int)c->max_head_dim);
        if ((r->dim ? r->dim : c->max_head_dim) > EA_MAX_HEAD_DIM)
            return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                           "config: RoPE over %d values: at most %d (set rope.dim with a max_head_dim past %d)",
                           (int)(r->dim ? r->dim : c->max_head_dim), EA_MAX_HEAD_DIM, EA_MAX_HEAD_DIM);
        if (!(r->theta > 1.0f) || !isfinite(r->theta))
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: rope.theta %g must be finite and > 1",
                           (double)r->theta);
        if (!isfinite(r->linear_scale) || (r->linear_scale != 0.0f && r->linear_scale < 1.0f))
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: rope.linear_scale %g must be >= 1 (0: none)",
                           (double)r->linear_scale);
        if (!isfinite(r->ntk_alpha) || (r->ntk_alpha != 0.0f && r->ntk_alpha < 1.0f))
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: rope.ntk_alpha %g must be >= 1 (0: none)",
                           (double)r->ntk_alpha);
    } else if (r->dim != 0 || r->theta != 0.0f || r->linear_scale != 0.0f || r->ntk_alpha != 0.0f) {
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "config: rope fields set but rope.style is EDGEATTN_ROPE_NONE (set the style to use them)");
    }
    if (c->parallel_user && !c->parallel_for)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config: parallel_user set without parallel_for");
    edgeattn_status tst = ea_tuning_validate(c, msg);
    if (tst != EDGEATTN_OK)
        return tst;
    return EDGEATTN_OK;
}

edgeattn_status ea_kv_geometry(const edgeattn_config *cfg, ea_kv_geom *g, char *msg)
{
    memset(g, 0, sizeof *g);
    g->cap = cfg->kv_cache_window > 0 ? cfg->kv_cache_sinks + cfg->kv_cache_window : cfg->max_kv_len;
    size_t head; /* max_kv_heads * a row's units: < 2^31 * 2^9 */
    head = (size_t)cfg->max_kv_heads * ea_kv_row_units(cfg->kv_cache_dtype, (size_t)cfg->max_head_dim);
    if (cfg->kv_page_size <= 0) {
        size_t n;
        if (!ea_mul_ok((size_t)cfg->num_layers * (size_t)cfg->max_batch, head, &n) ||
            !ea_mul_ok(n, (size_t)g->cap, &g->pool_elems))
            return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "config: the KV cache's size overflows size_t");
        return EDGEATTN_OK;
    }
    g->page = cfg->kv_page_size;
    while ((1 << g->page_shift) < g->page)
        g->page_shift++;
    g->pages_per_seq = (int32_t)(((int64_t)g->cap + g->page - 1) / g->page);
    int64_t full; /* pages every (layer, sequence) at full length would use (saturated) */
    if (__builtin_mul_overflow((int64_t)cfg->num_layers * (int64_t)cfg->max_batch, (int64_t)g->pages_per_seq, &full))
        full = INT64_MAX;
    if (cfg->kv_pages > full)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "config: kv_pages %d exceeds the %lld pages every (layer, sequence) at full length would use",
                       (int)cfg->kv_pages, (long long)full);
    if (cfg->kv_pages == 0 && full > INT32_MAX)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "config: a full pool would need %lld pages (more than 2^31 - 1): set kv_pages", (long long)full);
    g->pages = cfg->kv_pages > 0 ? cfg->kv_pages : (int32_t)full;
    if (!ea_mul_ok(head, (size_t)g->page, &g->page_elems) || !ea_mul_ok(g->page_elems, (size_t)g->pages, &g->pool_elems) ||
        g->pool_elems > SIZE_MAX / 4)
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "config: the KV page pool's size overflows size_t");
    return EDGEATTN_OK;
}

void ea_rope_resolve(const edgeattn_config *c, int32_t head_dim, ea_rope *r)
{
    memset(r, 0, sizeof *r);
    r->cs_pos = -1;
    const edgeattn_rope *in = &c->rope;
    if (in->style == EDGEATTN_ROPE_NONE)
        return;
    r->style = in->style;
    r->dim = in->dim > 0 ? in->dim : head_dim;
    r->pos_scale = in->linear_scale > 0.0f ? 1.0 / (double)in->linear_scale : 1.0;
    double base = (double)in->theta;
    if (in->ntk_alpha > 1.0f && r->dim > 2)
        base *= pow((double)in->ntk_alpha, (double)r->dim / (double)(r->dim - 2));
    for (int32_t p = 0; p < r->dim / 2; p++)
        r->inv_freq[p] = pow(base, -2.0 * (double)p / (double)r->dim);
}

void ea_rope_angles(const ea_rope *r, int64_t pos, float *cs)
{
    const double x = (double)pos * r->pos_scale;
    for (int32_t p = 0; p < r->dim / 2; p++) {
        const double a = x * r->inv_freq[p];
        cs[2 * p] = (float)cos(a);
        cs[2 * p + 1] = (float)sin(a);
    }
}

const float *ea_rope_cached(ea_rope *r, int64_t pos)
{
    if (r->cs_pos != pos) {
        ea_rope_angles(r, pos, r->cs);
        r->cs_pos = pos;
    }
    return r->cs;
}

void ea_rope_apply(const ea_rope *r, const float *cs, float *x)
{
    const int32_t half = r->dim / 2;
    for (int32_t p = 0; p < half; p++) {
        const int32_t i0 = r->style == EDGEATTN_ROPE_HALF ? p : 2 * p;
        const int32_t i1 = r->style == EDGEATTN_ROPE_HALF ? p + half : 2 * p + 1;
        const float c = cs[2 * p], s = cs[2 * p + 1], a = x[i0], b = x[i1];
        x[i0] = a * c - b * s;
        x[i1] = a * s + b * c;
    }
}

edgeattn_status ea_resolve_config(const edgeattn_config *in, edgeattn_config *out, char *msg)
{
    *out = *in;
    const char *be = getenv("EDGEATTN_BACKEND");
    if (be && *be) {
        if (!strcmp(be, "auto"))
            out->backend = EDGEATTN_BACKEND_AUTO;
        else if (!strcmp(be, "cpu"))
            out->backend = EDGEATTN_BACKEND_CPU;
        else if (!strcmp(be, "cuda"))
            out->backend = EDGEATTN_BACKEND_CUDA;
        else if (!strcmp(be, "opencl"))
            out->backend = EDGEATTN_BACKEND_OPENCL;
        else
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "EDGEATTN_BACKEND=%.32s: expected auto, cpu, cuda or opencl",
                           be);
    }
    const char *mask = getenv("EDGEATTN_CPU_MASK");
    if (mask && *mask) {
        char *end = NULL;
        errno = 0;
        unsigned long long m = strtoull(mask, &end, 0);
        if (errno || !end || *end || m > 0xffffffffull || mask[0] == '-')
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                           "EDGEATTN_CPU_MASK=%.32s: expected a number (bits of CPU features to disable)", mask);
        out->cpu_disable_mask |= (uint32_t)m;
    }
    return EDGEATTN_OK;
}

edgeattn_status ea_plan_layout(const edgeattn_config *cfg, const ea_backend_ops **backend, ea_layout *lay,
                               edgeattn_plan_info *info, char *msg)
{
    edgeattn_status st = ea_check_config(cfg, msg);
    if (st != EDGEATTN_OK)
        return st;
    st = ea_backend_select(cfg, backend, msg);
    if (st != EDGEATTN_OK)
        return st;
    ea_backend_plan bp;
    memset(&bp, 0, sizeof bp);
    st = (*backend)->plan(cfg, &bp, msg);
    if (st != EDGEATTN_OK)
        return st;

    if (bp.kv_on_device && (!(*backend)->kv_write || !(*backend)->kv_copy || !(*backend)->kv_read))
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "backend %s keeps the KV cache but lacks kv_write, kv_copy or kv_read",
                       (*backend)->name);
    ea_sizer sz = {0, false};
    memset(lay, 0, sizeof *lay);
    lay->ctx_off = ea_sizer_add(&sz, 1, sizeof(struct edgeattn_context), EDGEATTN_ALIGNMENT);
    size_t kv_bytes = 0;
    if (cfg->flags & EDGEATTN_FLAG_KV_CACHE) {
        size_t before = sz.total;
        ea_kv_geom g;
        if ((st = ea_kv_geometry(cfg, &g, msg)) != EDGEATTN_OK)
            return st;
        if (!bp.kv_on_device) {
            lay->kv_k_off = ea_sizer_add(&sz, g.pool_elems, ea_kv_unit_size(cfg->kv_cache_dtype), EDGEATTN_ALIGNMENT);
            /* a latent cache's V is its K rows: no bytes */
            lay->kv_v_off = cfg->kv_cache_latent ? lay->kv_k_off
                                                 : ea_sizer_add(&sz, g.pool_elems, ea_kv_unit_size(cfg->kv_cache_dtype),
                                                                EDGEATTN_ALIGNMENT);
        }
        const size_t seqs = (size_t)cfg->num_layers * (size_t)cfg->max_batch; /* <= 2^10 * 2^31: no overflow */
        if (ea_dtype_quant(cfg->kv_cache_dtype)) { /* each (layer, sequence, KV head): m_k, c_k, m_v, c_v */
            size_t n;
            if (!ea_mul_ok(seqs, (size_t)cfg->max_kv_heads * 4u * (size_t)cfg->max_head_dim, &n))
                sz.overflow = true;
            lay->kv_stats_off = ea_sizer_add(&sz, n, sizeof(float), 64);
        }
        if (cfg->kv_summary_block > 0) { /* each (layer, sequence, KV head, block): min and max of K */
            size_t n;
            const size_t blocks = ((size_t)g.cap + (size_t)cfg->kv_summary_block - 1) / (size_t)cfg->kv_summary_block;
            if (!ea_mul_ok(seqs * (size_t)cfg->max_kv_heads, blocks, &n) ||
                !ea_mul_ok(n, 2u * (size_t)cfg->max_head_dim, &n))
                sz.overflow = true;
            lay->kv_summ_off = ea_sizer_add(&sz, n, sizeof(float), 64);
        }
        lay->kv_total_off = ea_sizer_add(&sz, seqs, sizeof(int64_t), 64);
        lay->kv_held_off = ea_sizer_add(&sz, seqs, sizeof(int32_t), 64);
        if (g.page > 0) {
            size_t entries;
            if (!ea_mul_ok(seqs, (size_t)g.pages_per_seq, &entries))
                sz.overflow = true;
            lay->kv_table_off = ea_sizer_add(&sz, entries, sizeof(int32_t), 64);
            lay->kv_ref_off = ea_sizer_add(&sz, (size_t)g.pages, sizeof(int32_t), 64);
            lay->kv_free_off = ea_sizer_add(&sz, (size_t)g.pages, sizeof(int32_t), 64);
            lay->kv_pmark_off = ea_sizer_add(&sz, (size_t)g.pages_per_seq, 1, 64);
        }
        kv_bytes = bp.kv_on_device ? bp.kv_device_bytes : sz.total - before;
    }
    lay->kv_on_device = bp.kv_on_device;
    lay->lens_off = ea_sizer_add(&sz, (size_t)cfg->max_batch, sizeof(int32_t), 64);
    lay->ids_off = ea_sizer_add(&sz, (size_t)cfg->max_batch, sizeof(int32_t), 64);
    lay->qlens_off = ea_sizer_add(&sz, (size_t)cfg->max_batch, sizeof(int32_t), 64);
    lay->mark_off = ea_sizer_add(&sz, (size_t)cfg->max_batch, 1, 64);
    lay->backend_off = ea_sizer_add(&sz, 1, bp.host_bytes, EDGEATTN_ALIGNMENT);
    lay->backend_bytes = bp.host_bytes;
    if (sz.overflow)
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "the plan for this config exceeds size_t");
    lay->total = sz.total;
    memset(info, 0, sizeof *info);
    info->backend = (*backend)->id;
    info->host_bytes = sz.total;
    info->kv_cache_bytes = kv_bytes;
    info->scratch_bytes_per_thread = bp.scratch_per_thread;
    info->device_bytes = bp.device_bytes;
    info->num_threads = bp.threads;
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_plan(const edgeattn_config *config, edgeattn_plan_info *info,
                                           edgeattn_message *msg)
{
    char *m = msg ? msg->text : NULL;
    if (m)
        m[0] = '\0';
    if (!config || !info)
        return ea_fail(m, EDGEATTN_ERR_NULL_ARG, "plan: %s is NULL", !config ? "config" : "info");
    edgeattn_config cfg;
    edgeattn_status st = ea_resolve_config(config, &cfg, m);
    if (st != EDGEATTN_OK)
        return st;
    const ea_backend_ops *be;
    ea_layout lay;
    edgeattn_plan_info tmp;
    st = ea_plan_layout(&cfg, &be, &lay, &tmp, m);
    if (st == EDGEATTN_OK)
        *info = tmp;
    return st;
}
