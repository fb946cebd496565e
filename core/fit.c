/* Configs fitted to a memory budget (edgeattn_config_fit) and the board presets that feed it. The fit
 * asks edgeattn_plan itself, so what it promises is exactly what create will obtain. */
#include <stdio.h>
#include <string.h>

#include "core/ea_core.h"

EDGEATTN_API void edgeattn_fit_default(edgeattn_fit_request *r)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->struct_version = EDGEATTN_STRUCT_VERSION;
    r->max_context = 131072;
    r->min_context = 256;
    r->max_batch = 1;
    r->max_q_len = 512;
    r->kv_dtypes = (1u << EDGEATTN_F32) | (1u << EDGEATTN_F16);
    r->backend = EDGEATTN_BACKEND_AUTO;
}

/* Budgets are what is left for attention once the OS, the application and a typical model's weights
 * are resident; they are starting points to adjust, not measurements of any one board. */
static const struct {
    const char *name;
    uint64_t budget;
    edgeattn_backend backend;
    const char *what;
} presets[] = {
    {"phone", 1ull << 30, EDGEATTN_BACKEND_OPENCL,
     "a phone with 8 GB shared by the OS, the app and a 4-bit 3B model (about 2 GB): 1 GiB for attention"},
    {"orin-nano-8gb", 2ull << 30, EDGEATTN_BACKEND_CUDA,
     "Jetson Orin Nano 8 GB (CPU and GPU share it) with a 4-bit 8B model (about 4.5 GB) and the OS: 2 GiB"},
    {"agx-orin-64gb", 24ull << 30, EDGEATTN_BACKEND_CUDA,
     "Jetson AGX Orin 64 GB (shared) with an 8-bit 30B model (about 32 GB) and the OS: 24 GiB"},
    {"desktop-gpu-24gb", 6ull << 30, EDGEATTN_BACKEND_CUDA,
     "a 24 GB desktop GPU holding an FP16 8B model (about 16 GB) and its activations: 6 GiB"},
};

EDGEATTN_API edgeattn_status edgeattn_fit_preset(const char *name, int32_t index, const char **name_out,
                                                 uint64_t *budget_bytes, edgeattn_backend *backend,
                                                 const char **description)
{
    const int32_t n = (int32_t)(sizeof presets / sizeof presets[0]);
    int32_t at = -1;
    if (name) {
        for (int32_t i = 0; i < n; i++)
            if (!strcmp(name, presets[i].name))
                at = i;
    } else if (index >= 0 && index < n) {
        at = index;
    }
    if (at < 0)
        return EDGEATTN_ERR_INVALID_ARG;
    if (name_out)
        *name_out = presets[at].name;
    if (budget_bytes)
        *budget_bytes = presets[at].budget;
    if (backend)
        *backend = presets[at].backend;
    if (description)
        *description = presets[at].what;
    return EDGEATTN_OK;
}

static void fit_config(const edgeattn_fit_request *r, edgeattn_dtype dt, int32_t tokens, bool window,
                       edgeattn_config *c)
{
    edgeattn_config_default(c);
    c->flags = EDGEATTN_FLAG_KV_CACHE;
    c->num_layers = r->num_layers;
    c->max_heads = r->num_heads;
    c->max_kv_heads = r->num_kv_heads;
    c->max_head_dim = r->head_dim;
    c->max_batch = r->max_batch;
    c->max_q_len = r->max_q_len;
    c->max_kv_len = tokens;
    c->kv_cache_window = window ? tokens : 0;
    c->kv_cache_dtype = dt;
    c->backend = r->backend;
    c->num_threads = r->num_threads;
}

/* Plans tokens; *fits says whether it is within budget. Any status but OK is the config's own fault. */
static edgeattn_status try_plan(const edgeattn_fit_request *r, edgeattn_dtype dt, int32_t tokens, bool window,
                                uint64_t budget, bool *fits, edgeattn_plan_info *info, edgeattn_message *m)
{
    edgeattn_config c;
    fit_config(r, dt, tokens, window, &c);
    edgeattn_status st = edgeattn_plan(&c, info, m);
    if (st == EDGEATTN_ERR_OVERFLOW) { /* too big to count is too big to fit */
        *fits = false;
        return EDGEATTN_OK;
    }
    if (st != EDGEATTN_OK)
        return st;
    const uint64_t used = (uint64_t)info->host_bytes + (uint64_t)info->device_bytes;
    *fits = used >= info->host_bytes && used <= budget;
    return EDGEATTN_OK;
}

/* The most tokens in [1, max_context] that fit (0: not even one). */
static edgeattn_status longest(const edgeattn_fit_request *r, edgeattn_dtype dt, bool window, uint64_t budget,
                               int32_t *out, edgeattn_message *m)
{
    edgeattn_plan_info info;
    bool fits;
    edgeattn_status st;
    int32_t lo = 0, hi = r->max_context; /* lo fits (0 trivially), answer in [lo, hi] */
    if ((st = try_plan(r, dt, hi, window, budget, &fits, &info, m)) != EDGEATTN_OK)
        return st;
    if (fits) {
        *out = hi;
        return EDGEATTN_OK;
    }
    hi--;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo + 1) / 2;
        if ((st = try_plan(r, dt, mid, window, budget, &fits, &info, m)) != EDGEATTN_OK)
            return st;
        if (fits)
            lo = mid;
        else
            hi = mid - 1;
    }
    *out = lo;
    return EDGEATTN_OK;
}

EDGEATTN_API edgeattn_status edgeattn_config_fit(const edgeattn_fit_request *r, uint64_t budget,
                                                 edgeattn_config *config, edgeattn_plan_info *plan,
                                                 edgeattn_message *msg)
{
    char *m = msg ? msg->text : NULL;
    if (m)
        m[0] = '\0';
    if (!r || !config)
        return ea_fail(m, EDGEATTN_ERR_NULL_ARG, "config_fit: %s is NULL", !r ? "request" : "config");
    if (r->struct_version != EDGEATTN_STRUCT_VERSION)
        return ea_fail(m, EDGEATTN_ERR_INVALID_ARG,
                       "config_fit: request.struct_version %u != %u (fill it with edgeattn_fit_default)",
                       (unsigned)r->struct_version, (unsigned)EDGEATTN_STRUCT_VERSION);
    for (size_t i = 0; i < sizeof r->reserved; i++)
        if (r->reserved[i])
            return ea_fail(m, EDGEATTN_ERR_INVALID_ARG, "config_fit: request.reserved bytes must be zero");
    const struct {
        const char *name;
        int32_t v;
    } sizes[] = {{"num_layers", r->num_layers}, {"num_heads", r->num_heads},   {"num_kv_heads", r->num_kv_heads},
                 {"head_dim", r->head_dim},     {"max_context", r->max_context}, {"min_context", r->min_context},
                 {"max_batch", r->max_batch},   {"max_q_len", r->max_q_len}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v <= 0)
            return ea_fail(m, EDGEATTN_ERR_INVALID_ARG, "config_fit: request.%s = %d must be > 0 (the model's sizes "
                           "have no default)", sizes[i].name, (int)sizes[i].v);
    if (r->min_context > r->max_context)
        return ea_fail(m, EDGEATTN_ERR_INVALID_ARG, "config_fit: min_context %d exceeds max_context %d",
                       (int)r->min_context, (int)r->max_context);
    const uint32_t all = (1u << EDGEATTN_F32) | (1u << EDGEATTN_F16) | (1u << EDGEATTN_BF16) | (1u << EDGEATTN_Q8) |
                         (1u << EDGEATTN_Q4);
    if (r->kv_dtypes == 0 || (r->kv_dtypes & ~all))
        return ea_fail(m, EDGEATTN_ERR_INVALID_ARG,
                       "config_fit: kv_dtypes 0x%x must name some of F32, F16, BF16, Q8, Q4 (bits 1 << dtype)",
                       (unsigned)r->kv_dtypes);
    if (r->allow_window != 0 && r->allow_window != 1)
        return ea_fail(m, EDGEATTN_ERR_INVALID_ARG, "config_fit: allow_window must be 0 or 1");

    /* most precise first: it wins when it plans the whole context */
    static const edgeattn_dtype order[5] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16, EDGEATTN_Q8, EDGEATTN_Q4};
    edgeattn_message pm;
    int32_t best_n = -1, got[5] = {-1, -1, -1, -1, -1};
    edgeattn_dtype best_dt = EDGEATTN_F32;
    for (int i = 0; i < 5; i++) {
        if (!(r->kv_dtypes & (1u << order[i])))
            continue;
        const edgeattn_status st = longest(r, order[i], false, budget, &got[i], &pm);
        if (st != EDGEATTN_OK)
            return ea_fail(m, st, "config_fit: %s", pm.text);
        if (got[i] > best_n) {
            best_n = got[i];
            best_dt = order[i];
        }
        if (got[i] == r->max_context)
            break;
    }
    bool window = false;
    if (best_n < r->max_context && r->allow_window) { /* the same dtype as a ring (its plan may differ a little) */
        int32_t w;
        const edgeattn_status st = longest(r, best_dt, true, budget, &w, &pm);
        if (st != EDGEATTN_OK)
            return ea_fail(m, st, "config_fit: %s", pm.text);
        best_n = w;
        window = true;
    }
    if (best_n < r->min_context)
        return ea_fail(m, EDGEATTN_ERR_CAPACITY,
                       "config_fit: %llu bytes hold %d tokens of this model's KV cache at most (%s), fewer than "
                       "min_context %d", (unsigned long long)budget, best_n < 0 ? 0 : (int)best_n,
                       ea_dtype_name(best_dt), (int)r->min_context);
    edgeattn_config c;
    edgeattn_plan_info info;
    fit_config(r, best_dt, best_n, window, &c);
    const edgeattn_status st = edgeattn_plan(&c, &info, &pm);
    if (st != EDGEATTN_OK)
        return ea_fail(m, st, "config_fit: %s", pm.text);
    *config = c;
    if (plan)
        *plan = info;
    if (m) {
        const double mib = 1.0 / (1024.0 * 1024.0);
        const double used = (double)info.host_bytes + (double)info.device_bytes;
        char why[96] = "the whole context";
        if (best_n < r->max_context)
            snprintf(why, sizeof why, "max_context %d does not fit%s", (int)r->max_context,
                     window ? ": a window of the last tokens" : "");
        snprintf(m, EA_MSG_LEN,
                 "%s cache, %s %d tokens x %d sequence(s), %d layers (%s); plan %.1f of %.1f MiB (host %.1f, "
                 "device %.1f, KV cache %.1f)",
                 ea_dtype_name(best_dt), window ? "window" : "max_kv_len", (int)best_n, (int)r->max_batch,
                 (int)r->num_layers, why, used * mib, (double)budget * mib, (double)info.host_bytes * mib,
                 (double)info.device_bytes * mib, (double)info.kv_cache_bytes * mib);
    }
    return EDGEATTN_OK;
}
