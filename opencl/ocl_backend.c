/*
 * The OpenCL backend: device choice, the memory plan, program builds (with the optional on-disk
 * binary cache), the pools, and the ops table. The calls themselves are in ocl_run.c.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opencl/ocl_internal.h"

extern const char ea_ocl_src_common[];
extern const char ea_ocl_src_flash[];
extern const char ea_ocl_src_util[];
extern const unsigned long long ea_ocl_src_hash;

edgeattn_status ea_ocl_fail_cl(char *msg, cl_int err, const char *what)
{
    char buf[32];
    return ea_fail(msg, EDGEATTN_ERR_SYSTEM, "opencl: %s failed: %s", what, ea_ocl_error_name(err, buf, sizeof buf));
}

/* ---------------------------------------------------------------- device choice */

typedef struct ocl_pick {
    cl_platform_id platform;
    cl_device_id device;
    cl_device_type type;
} ocl_pick;

static bool ci_contains(const char *hay, const char *needle)
{
    const size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

/* Chooses the device: EDGEATTN_OPENCL_DEVICE ("P:D" or a case-insensitive substring of the platform,
 * device or vendor name) when set, whatever its type (naming a device is the explicit choice, so AUTO
 * takes it too: this is how the shared suites run on PoCL's CPU device); else the first GPU, then
 * accelerator, then (when !gpu_only, i.e. a forced backend) any device. */
static edgeattn_status ocl_choose(ea_ocl_api *api, bool gpu_only, ocl_pick *out, char *msg)
{
    cl_platform_id plats[16];
    cl_uint np = 0;
    if (api->clGetPlatformIDs(16, plats, &np) != CL_SUCCESS || np == 0)
        return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE, "opencl: no OpenCL platform on this machine");
    if (np > 16)
        np = 16;
    const char *env = getenv("EDGEATTN_OPENCL_DEVICE");
    unsigned want_p = 0, want_d = 0;
    int by_index = 0;
    if (env && *env) {
        char tail;
        if (sscanf(env, "%u:%u%c", &want_p, &want_d, &tail) == 2)
            by_index = 1;
        else if (strlen(env) > 96)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "EDGEATTN_OPENCL_DEVICE: longer than 96 characters");
    } else {
        env = NULL;
    }
    ocl_pick best = {0}, second = {0}, any = {0};
    bool have_best = false, have_second = false, have_any = false;
    char list[160] = "";
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id devs[32];
        cl_uint nd = 0;
        if (api->clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 32, devs, &nd) != CL_SUCCESS)
            nd = 0;
        if (nd > 32)
            nd = 32;
        char pname[128] = "";
        api->clGetPlatformInfo(plats[p], CL_PLATFORM_NAME, sizeof pname - 1, pname, NULL);
        for (cl_uint d = 0; d < nd; d++) {
            char dname[160] = "", vendor[96] = "";
            cl_device_type type = 0;
            api->clGetDeviceInfo(devs[d], CL_DEVICE_NAME, sizeof dname - 1, dname, NULL);
            api->clGetDeviceInfo(devs[d], CL_DEVICE_VENDOR, sizeof vendor - 1, vendor, NULL);
            api->clGetDeviceInfo(devs[d], CL_DEVICE_TYPE, sizeof type, &type, NULL);
            const size_t o = strlen(list);
            if (o + 8 < sizeof list)
                snprintf(list + o, sizeof list - o, "%s%u:%u %.40s", o ? ", " : "", (unsigned)p, (unsigned)d, dname);
            const ocl_pick cur = {plats[p], devs[d], type};
            if (env) {
                const bool match = by_index ? (p == want_p && d == want_d)
                                            : (ci_contains(pname, env) || ci_contains(dname, env) || ci_contains(vendor, env));
                if (match && !have_best) {
                    best = cur;
                    have_best = true;
                }
                continue;
            }
            if ((type & CL_DEVICE_TYPE_GPU) && !have_best) {
                best = cur;
                have_best = true;
            } else if ((type & CL_DEVICE_TYPE_ACCELERATOR) && !have_second) {
                second = cur;
                have_second = true;
            } else if (!have_any) {
                any = cur;
                have_any = true;
            }
        }
    }
    if (env) {
        if (!have_best)
            return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE,
                           "EDGEATTN_OPENCL_DEVICE=%s matches no OpenCL device (devices: %s)", env,
                           list[0] ? list : "none");
        *out = best; /* named explicitly: taken whatever its type, also by AUTO */
        return EDGEATTN_OK;
    }
    if (have_best)
        *out = best;
    else if (have_second)
        *out = second;
    else if (have_any && !gpu_only)
        *out = any;
    else
        return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE, "opencl: no %sOpenCL device on this machine",
                       gpu_only ? "GPU " : "");
    return EDGEATTN_OK;
}

static bool ocl_probe(void)
{
    ea_ocl_api api;
    if (!ea_ocl_load(&api, NULL, 0))
        return false;
    /* any device at all; the device rule of a config is supports_config's and plan's */
    cl_platform_id plats[16];
    cl_uint np = 0;
    bool any = false;
    if (api.clGetPlatformIDs(16, plats, &np) == CL_SUCCESS)
        for (cl_uint p = 0; p < np && p < 16 && !any; p++) {
            cl_uint nd = 0;
            any = api.clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) == CL_SUCCESS && nd > 0;
        }
    ea_ocl_unload(&api);
    return any;
}

/* AUTO takes OpenCL only for a GPU or accelerator (never a caller queue: the handle could be a CUDA
 * stream); a forced backend always claims the config, and plan reports a device problem. */
static bool ocl_supports(const edgeattn_config *cfg)
{
    if (cfg->backend != EDGEATTN_BACKEND_AUTO) /* (plan says why a forced one cannot) */
        return true;
    if (ea_dtype_quant(cfg->kv_cache_dtype) || ea_cfg_mla(cfg)) /* quantised KV caches, latent attention: the
                                                                   CPU backend's so far */
        return false;
    if ((cfg->flags & EDGEATTN_FLAG_KV_CACHE) && cfg->kv_summary_block > 0 && cfg->kv_page_size > 0)
        /* so are paged caches with block summaries */
        return false;
    if (cfg->gpu_queue)
        return false;
    ea_ocl_api api;
    if (!ea_ocl_load(&api, NULL, 0))
        return false;
    ocl_pick pick;
    char msg[EA_MSG_LEN];
    const bool ok = ocl_choose(&api, true, &pick, msg) == EDGEATTN_OK;
    ea_ocl_unload(&api);
    return ok;
}

/* ---------------------------------------------------------------- plan */

/* The device as backend info names it: the tuning file's key. */
static void ocl_ident(const char *device, const char *platform, const char *driver, char *buf, size_t len)
{
    snprintf(buf, len, "%.64s (%.24s, driver %.24s)", device, platform, driver);
}

static edgeattn_status ocl_path_env(const edgeattn_config *cfg, const char *ident, int *path, char *msg)
{
    char kb[128];
    const char *e = ea_knob(cfg, "opencl", ident, "EDGEATTN_OPENCL_PATH", kb, sizeof kb);
    *path = EA_OCL_PATH_FUSED;
    if (!e || !*e || !strcmp(e, "auto") || !strcmp(e, "fused"))
        return EDGEATTN_OK;
    if (!strcmp(e, "unfused")) {
        *path = EA_OCL_PATH_UNFUSED;
        return EDGEATTN_OK;
    }
    return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "EDGEATTN_OPENCL_PATH=%.32s: expected fused, unfused or auto", e);
}

static size_t round_up(size_t x, size_t a)
{
    return (x + a - 1) / a * a;
}

/* Upper bound of CLBlast's SGEMM temporary buffer (padded copies of A, B and C). */
static size_t blast_tmp_bound(size_t m, size_t n, size_t k)
{
    const size_t mp = round_up(m, 128) + 128, np = round_up(n, 128) + 128, kp = round_up(k, 128) + 128;
    return (mp * kp + kp * np + mp * np) * sizeof(float);
}

static edgeattn_status ocl_layout(const edgeattn_config *cfg, const char *ident, ea_ocl_layout *L, char *msg)
{
    memset(L, 0, sizeof *L);
    edgeattn_status st = ocl_path_env(cfg, ident, &L->path, msg);
    if (st != EDGEATTN_OK)
        return st;
    const size_t D = (size_t)cfg->max_head_dim;
    /* slots per (layer, sequence): sinks + window (ea_kv_geometry's cap), or max_kv_len */
    const int32_t cap = cfg->kv_cache_window > 0 ? cfg->kv_cache_sinks + cfg->kv_cache_window : cfg->max_kv_len;
    const int32_t group_max = cfg->max_heads; /* Hq / Hkv is at most max_heads */
    L->dmax = cfg->max_head_dim;
    L->rows_kv = cfg->max_kv_len > cap ? cfg->max_kv_len : cap;
    const size_t per_row = D * 4 * 2 + 4 + (size_t)cfg->max_kv_len * 4;
    size_t rows_all = (size_t)cfg->max_batch * (size_t)cfg->max_heads * (size_t)cfg->max_q_len;
    size_t rows = ((size_t)16 << 20) / per_row;
    if (rows > rows_all)
        rows = rows_all;
    if (rows < (size_t)group_max)
        rows = (size_t)group_max;
    L->rows_cap = (int32_t)(rows > (1u << 30) ? (1u << 30) : rows);
    ea_sizer sz = {0, false};
    L->st_kv_bytes = (size_t)L->rows_kv * D * 4;
    L->st_k = ea_sizer_add(&sz, L->st_kv_bytes, 1, 256);
    L->st_v = ea_sizer_add(&sz, L->st_kv_bytes, 1, 256);
    L->st_rows_bytes = (size_t)L->rows_cap * per_row + 4 * 256;
    L->st_rows = ea_sizer_add(&sz, L->st_rows_bytes, 1, 256);
    L->ws = ea_sizer_add(&sz, (size_t)EA_OCL_WS_ENTRIES * D, 4, 256);
    L->ws_lse = ea_sizer_add(&sz, 2 * (size_t)EA_OCL_WS_ENTRIES, 4, 256); /* (max, sum) per entry */
    L->flag = ea_sizer_add(&sz, 16, 4, 256);
    ea_kv_geom g;
    memset(&g, 0, sizeof g);
    if ((cfg->flags & EDGEATTN_FLAG_KV_CACHE) && (st = ea_kv_geometry(cfg, &g, msg)) != EDGEATTN_OK)
        return st;
    if (g.page > 0) {
        /* paged: the page tables of one call's sequences, uploaded once per decode / append */
        L->paged = true;
        L->page = g.page;
        L->page_shift = g.page_shift;
        L->pages_per_seq = g.pages_per_seq;
        L->pages = g.pages;
        L->page_elems = g.page_elems;
        size_t ent;
        if (!ea_mul_ok((size_t)cfg->max_batch, (size_t)g.pages_per_seq, &ent) || !ea_mul_ok(ent, 4, &L->ptab_bytes))
            sz.overflow = true;
        L->ptab = ea_sizer_add(&sz, L->ptab_bytes, 1, 256);
    }
    {
        /* block masks (params.block_mask, attention): each call's patterns as bitmaps of listed key
         * blocks, one row of bm_words per query block of 64 (blocks of 128 rows fill fewer) */
        const size_t kbl = ((size_t)cfg->max_kv_len + 63) / 64, qbl = ((size_t)cfg->max_q_len + 63) / 64;
        size_t n;
        L->bm_words = (int32_t)((kbl + 31) / 32);
        if (!ea_mul_ok((size_t)cfg->max_batch * (size_t)cfg->max_kv_heads, qbl, &n) ||
            !ea_mul_ok(n, (size_t)L->bm_words * 4, &L->bm_bytes))
            sz.overflow = true;
        L->bm = ea_sizer_add(&sz, L->bm_bytes, 1, 256);
    }
    if ((cfg->flags & EDGEATTN_FLAG_KV_CACHE) && cfg->kv_summary_block > 0) {
        /* top-k decode: the summaries in their own device buffer (counted as KV cache), the scores and the
         * selections of a call in the work pool */
        size_t n = 0;
        L->sblk = cfg->kv_summary_block;
        L->nsblk = (cap + L->sblk - 1) / L->sblk;
        L->tk_words = (L->nsblk + 31) / 32;
        const size_t seqh = (size_t)cfg->max_batch * (size_t)cfg->max_kv_heads;
        if (!ea_mul_ok(seqh * (size_t)cfg->num_layers, (size_t)L->nsblk * 2 * D * 4, &L->summ_bytes) ||
            !ea_mul_ok(seqh, (size_t)L->nsblk * 4, &n))
            sz.overflow = true;
        L->tk_sc = ea_sizer_add(&sz, n, 1, 256);
        L->tk_bm = ea_sizer_add(&sz, seqh * (size_t)L->tk_words, 4, 256);
    }
    if (cfg->rope.style != EDGEATTN_ROPE_NONE) {
        /* RoPE angles, cos and sin of each pair in FP32 computed on the host in double (devices without
         * cl_khr_fp64 exist), for rope_rows positions per upload: a decode's queries or an append's keys
         * (larger calls go in pieces) */
        size_t pos = (size_t)cfg->max_batch * (size_t)cfg->max_q_len;
        pos = pos < 64 ? 64 : pos > 1024 ? 1024 : pos;
        L->rope_rows = (int32_t)pos;
        L->rope_dim = cfg->rope.dim > 0 ? cfg->rope.dim : cfg->max_head_dim;
        L->rope_bytes = pos * (size_t)L->rope_dim * 4;
        L->rope = ea_sizer_add(&sz, L->rope_bytes, 1, 256);
    }
    if (cfg->max_lowrank > 0) {
        /* Linformer: the projected K' and V' in F32, and one host E and F staged at a time */
        size_t n;
        if (!ea_mul_ok((size_t)cfg->max_batch * (size_t)cfg->max_kv_heads, (size_t)cfg->max_lowrank, &n) ||
            !ea_mul_ok(n, D * 4, &L->lr_kv_bytes) ||
            !ea_mul_ok((size_t)cfg->max_lowrank, (size_t)cfg->max_kv_len * 4, &L->lr_ef_bytes))
            sz.overflow = true;
        L->lr_k = ea_sizer_add(&sz, L->lr_kv_bytes, 1, 256);
        L->lr_v = ea_sizer_add(&sz, L->lr_kv_bytes, 1, 256);
        L->lr_e = ea_sizer_add(&sz, L->lr_ef_bytes, 1, 256);
        L->lr_f = ea_sizer_add(&sz, L->lr_ef_bytes, 1, 256);
    }
    if (L->path == EA_OCL_PATH_UNFUSED) {
        size_t ur = ((size_t)64 << 20) / ((size_t)L->rows_kv * 4);
        const size_t ur_max = (size_t)group_max * (size_t)cfg->max_q_len;
        if (ur > ur_max)
            ur = ur_max;
        if (ur < (size_t)group_max)
            ur = (size_t)group_max;
        L->uf_rows = (int32_t)ur;
        L->uf_q = ea_sizer_add(&sz, ur * D, 4, 256);
        L->uf_o = ea_sizer_add(&sz, ur * D, 4, 256);
        L->uf_l = ea_sizer_add(&sz, ur, 4, 256);
        L->uf_k = ea_sizer_add(&sz, (size_t)L->rows_kv * D, 4, 256);
        L->uf_v = ea_sizer_add(&sz, (size_t)L->rows_kv * D, 4, 256);
        L->uf_s = ea_sizer_add(&sz, ur * (size_t)L->rows_kv, 4, 256);
        const size_t t1 = blast_tmp_bound(ur, (size_t)L->rows_kv, D), t2 = blast_tmp_bound(ur, D, (size_t)L->rows_kv);
        L->blast_tmp_bytes = t1 > t2 ? t1 : t2;
        L->blast_tmp = ea_sizer_add(&sz, L->blast_tmp_bytes, 1, 4096);
    }
    L->work_bytes = sz.total;
    if (L->paged) {
        /* one pool of pages for K and one for V ([heads][page][dim] each page), whatever the layers */
        size_t n;
        L->kv_layers = 1;
        if (!ea_mul_ok(g.pool_elems, ea_dtype_size(cfg->kv_cache_dtype), &n) || n > SIZE_MAX - 256)
            sz.overflow = true;
        else
            L->kv_layer_bytes = L->kv_bytes_each = round_up(n, 256);
    } else if (cfg->flags & EDGEATTN_FLAG_KV_CACHE) {
        /* per layer [max_batch][heads][cap][dim] in the cache dtype, layers 256-byte aligned */
        size_t n;
        L->kv_layers = cfg->num_layers;
        if (!ea_mul_ok((size_t)cfg->max_batch * (size_t)cfg->max_kv_heads, (size_t)cap, &n) || !ea_mul_ok(n, D, &n) ||
            !ea_mul_ok(n, ea_dtype_size(cfg->kv_cache_dtype), &n) || n > SIZE_MAX - 256)
            sz.overflow = true;
        else if (L->kv_layer_bytes = round_up(n, 256),
                 !ea_mul_ok(L->kv_layer_bytes, (size_t)cfg->num_layers, &L->kv_bytes_each))
            sz.overflow = true;
    }
    L->user_bytes = (size_t)cfg->device_user_bytes;
    size_t total = 0;
    if (sz.overflow || !ea_add_ok(L->work_bytes, L->user_bytes, &total) || !ea_add_ok(total, L->kv_bytes_each, &total) ||
        !ea_add_ok(total, L->kv_bytes_each, &total) || !ea_add_ok(total, L->summ_bytes, &total))
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "opencl: device plan overflows size_t");
    L->device_total = total;
    return EDGEATTN_OK;
}

/* The backend's host block: the state, the cl_mem handles of the KV-cache buffers (one per layer at
 * most), the host copies of the RoPE table and of a call's page tables; ocl_init takes them from the
 * arena in this order. */
static size_t ocl_host_bytes(const edgeattn_config *cfg, const ea_ocl_layout *L)
{
    ea_sizer sz = {0, false};
    ea_sizer_add(&sz, 1, sizeof(ea_ocl_state), 64);
    ea_sizer_add(&sz, 2 * (size_t)cfg->num_layers, sizeof(cl_mem), 64);
    if (L->rope_bytes)
        ea_sizer_add(&sz, EA_OCL_ROPE_SLOTS, L->rope_bytes, 64);
    if (L->ptab_bytes)
        ea_sizer_add(&sz, EA_OCL_PTAB_SLOTS, L->ptab_bytes, 64);
    ea_sizer_add(&sz, EA_OCL_BM_SLOTS, L->bm_bytes, 64);
    return sz.total;
}

static edgeattn_status ocl_plan(const edgeattn_config *cfg, ea_backend_plan *out, char *msg)
{
    if ((cfg->flags & EDGEATTN_FLAG_KV_CACHE) && ea_dtype_quant(cfg->kv_cache_dtype))
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                       "opencl: a %s KV cache is not served by this backend yet (the CPU backend serves it)",
                       ea_dtype_name(cfg->kv_cache_dtype));
    if ((cfg->flags & EDGEATTN_FLAG_KV_CACHE) && cfg->kv_summary_block > 0 && cfg->kv_page_size > 0)
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                       "opencl: a paged KV cache with block summaries (config.kv_summary_block with kv_page_size) is "
                       "not served by this backend yet (contiguous caches are; the CPU backend serves both)");
    if (ea_cfg_mla(cfg))
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "opencl: head dims past %d, max_head_dim_v and kv_cache_latent "
                       "are not served by this backend yet (the CPU backend serves them)", EA_MAX_HEAD_DIM);
    ea_ocl_layout L;
    edgeattn_status st;
    char ident[160] = "";
    if (!cfg->gpu_queue) { /* a forced backend must have its device (EDGEATTN_OPENCL_DEVICE included) */
        ea_ocl_api api;
        char why[96];
        if (!ea_ocl_load(&api, why, sizeof why))
            return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE, "opencl: %s", why);
        ocl_pick pick;
        st = ocl_choose(&api, cfg->backend == EDGEATTN_BACKEND_AUTO, &pick, msg);
        if (st == EDGEATTN_OK) {
            char dn[128] = "", pn[64] = "", dr[64] = "";
            api.clGetDeviceInfo(pick.device, CL_DEVICE_NAME, sizeof dn - 1, dn, NULL);
            api.clGetDeviceInfo(pick.device, CL_DRIVER_VERSION, sizeof dr - 1, dr, NULL);
            api.clGetPlatformInfo(pick.platform, CL_PLATFORM_NAME, sizeof pn - 1, pn, NULL);
            ocl_ident(dn, pn, dr, ident, sizeof ident);
        }
        ea_ocl_unload(&api);
        if (st != EDGEATTN_OK)
            return st;
    }
    st = ocl_layout(cfg, ident, &L, msg);
    if (st != EDGEATTN_OK)
        return st;
    out->host_bytes = ocl_host_bytes(cfg, &L);
    out->scratch_per_thread = 0;
    out->device_bytes = L.device_total;
    out->threads = 1;
    out->kv_on_device = (cfg->flags & EDGEATTN_FLAG_KV_CACHE) != 0;
    out->kv_device_bytes = 2 * L.kv_bytes_each + L.summ_bytes; /* (the summaries belong to the cache) */
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- tiles */

static size_t tiles_local_bytes(const ea_ocl_tiles *t, int dmax)
{
    const size_t dp4 = (size_t)dmax / 4 + 1, bm = (size_t)t->bm, bn = (size_t)t->bn;
    const size_t q = t->qh ? 2 * bm * ((size_t)dmax + 8) : 16 * bm * dp4;
    return q + 16 * bn * dp4 + 4 * bn * (bm + 4) + 4 * bm * (bn / (size_t)t->tn) + 4 * bm;
}

/* Output work-items across the head dim (PC in flash.cl); 0 if PM does not split the block evenly. */
static int tiles_pc(const ea_ocl_tiles *t, int dmax)
{
    if ((t->pm != 1 && t->pm != 2 && t->pm != 4 && t->pm != 8) || t->bm < 1 || t->tm < 1 || t->tn < 1)
        return 0;
    if (t->bm % t->pm)
        return 0;
    const int nt = ea_ocl_tiles_threads(t), pr = t->bm / t->pm;
    if (nt % pr)
        return 0;
    const int pc = nt / pr;
    return (dmax / 4) % pc == 0 ? pc : 0;
}

static bool tiles_valid(const ea_ocl_tiles *t, int dmax)
{
    if (t->tm < 1 || t->tm > 8 || t->bm < t->tm || t->bm % t->tm || t->bm > 256 || t->bn < 4 || t->bn % 4 ||
        t->bn > 128 || (t->tn != 1 && t->tn != 2 && t->tn != 4 && t->tn != 8) || t->bn % t->tn)
        return false;
    return tiles_pc(t, dmax) > 0;
}

static bool tiles_fit(const ea_ocl_state *s, const ea_ocl_tiles *t, int dmax)
{
    const size_t pages = s->lay.paged ? 8 * (size_t)t->bn : 0; /* flash.cl's Pg: two tiles of page numbers (int) */
    return tiles_valid(t, dmax) && tiles_local_bytes(t, dmax) + pages + 256 <= s->local_mem &&
           (size_t)ea_ocl_tiles_threads(t) <= s->max_wg;
}

/* Accumulators per work-item (floats): the larger of the score block (TM x TN) and the output block
 * (PM rows x DMAX / PC dims). */
static int tiles_acc(const ea_ocl_tiles *t, int dmax)
{
    const int pc = tiles_pc(t, dmax), so = t->tm * t->tn;
    const int out = pc ? t->pm * dmax / pc : 1 << 20;
    return so > out ? so : out;
}

/* The output rows per work-item for BM x TM x BN x TN: the valid PM whose output block is closest to
 * square (PM rows by 4*PD4 dims, fewest local loads per multiply-add), preferring at most 64
 * accumulators; 0 if none is valid. */
static int tiles_pick_pm(const ea_ocl_tiles *t0, int dmax)
{
    int best = 0, best_cost = 1 << 30;
    for (int pm = 8; pm >= 1; pm /= 2) {
        ea_ocl_tiles t = *t0;
        t.pm = pm;
        const int pc = tiles_pc(&t, dmax);
        if (!pc)
            continue;
        const int cols = dmax / pc, acc = pm * cols;
        const int cost = (acc > 64 ? 1000 : 0) + (pm > cols ? pm - cols : cols - pm);
        if (cost < best_cost)
            best = pm, best_cost = cost;
    }
    return best;
}

/* The per-class table (head dim 128), shrunk until the tile fits local memory and work-group size;
 * on GPUs also until the accumulators stay within 128 registers (else they spill). PM 0: picked. */
static void tiles_default(const ea_ocl_state *s, int dmax, ea_ocl_tiles *pf, ea_ocl_tiles *pfh, ea_ocl_tiles *dec)
{
    /* {BM, TM, BN, TN, PM}: prefill, prefill with F16 Q (Q as F16 in local memory leaves room for longer
     * K/V tiles), then decode (few rows: the query heads of a GQA group) */
    static const ea_ocl_tiles table[][3] = {
        [EA_OCL_CLASS_OTHER] = {{16, 2, 32, 4, 0, 0}, {16, 2, 32, 4, 0, 1}, {8, 1, 32, 4, 0, 0}},
        /* NVIDIA (H200 sweeps): the score loop unrolled 8 (prefill) or 16 (decode), P.V 4 (prefill N4096
         * 11.2 ms vs 11.6 at 2/2, decode N32768 0.198 ms vs 0.37); 128 registers, so that 4 work-groups of
         * 128 share a multiprocessor (22.2 TFLOP/s against 19.8 at the compiler's 252); no register
         * prefetch (it costs more in spills than it hides there) */
        [EA_OCL_CLASS_NVIDIA] = {{64, 4, 16, 2, 8, 0, 8, 4, 1, 128},
                                 {64, 2, 32, 4, 4, 1, 8, 4, 1, 128},
                                 {8, 1, 64, 4, 0, 0, 16, 4, 1, 128}},
        [EA_OCL_CLASS_MALI] = {{16, 2, 16, 4, 0, 0}, {16, 2, 16, 4, 0, 1}, {4, 1, 32, 4, 0, 0}},
        [EA_OCL_CLASS_ADRENO] = {{32, 4, 16, 4, 0, 0}, {32, 4, 16, 4, 0, 1}, {8, 1, 32, 4, 0, 0}},
        [EA_OCL_CLASS_CPU] = {{32, 8, 32, 4, 0, 0}, {32, 8, 32, 4, 0, 1}, {8, 1, 32, 4, 0, 0}},
    };
    ea_ocl_tiles *t[3] = {pf, pfh, dec};
    const bool gpu = s->dev_class != EA_OCL_CLASS_CPU;
    for (int k = 0; k < 3; k++) {
        ea_ocl_tiles *x = t[k];
        *x = table[s->dev_class][k];
        if (!tiles_pc(x, dmax))
            x->pm = tiles_pick_pm(x, dmax);
        while (!tiles_fit(s, x, dmax) || (gpu && tiles_acc(x, dmax) > 128)) {
            if (x->bn > 16)
                x->bn /= 2;
            else if (x->bm > 16 && (x->bm / 2) % x->tm == 0)
                x->bm /= 2;
            else if (x->tn > 1)
                x->tn /= 2;
            else if (x->tm > 1)
                x->tm /= 2;
            else if (x->bn > 4)
                x->bn /= 2;
            else if (x->bm > 1)
                x->bm /= 2;
            else
                break;
            if (x->tn > x->bn)
                x->tn = x->bn;
            x->pm = tiles_pick_pm(x, dmax);
        }
    }
}

/* EDGEATTN_OPENCL_TILES: comma-separated parts, any of them left out, each naming a kernel (pf prefill,
 * pfh prefill with F16 Q, dec decode) and what it sets:
 *   pf=BMxTMxBN[xTN[xPM]]  the tile (TN 4, PM picked when left out); keeps the kernel's other settings
 *   upf=QKxPV              unroll factors of the score and P.V loops, powers of two 1..32
 *   ppf=0|1                register prefetch off or on
 *   rpf=N                  NVIDIA's register cap, 0 (none) or 32..255
 *   dmr=ROWS               decode only: the query rows (group x Nq) up to which the decode kernel takes a
 *                          call, in row blocks of its BM (default BM: past it the prefill kernel runs) */
static edgeattn_status tiles_env(const ea_ocl_state *s, int dmax, ea_ocl_tiles *pf, ea_ocl_tiles *pfh,
                                 ea_ocl_tiles *dec, char *msg)
{
    char kb[256];
    const char *e = ea_knob(s->cfg, "opencl", s->ident, "EDGEATTN_OPENCL_TILES", kb, sizeof kb);
    if (!e || !*e)
        return EDGEATTN_OK;
    enum { SHAPE, UNROLL, PREFETCH, REGS, ROWS };
    static const struct {
        const char *prefix;
        int what, kernel; /* kernel: 0 pf, 1 pfh, 2 dec */
    } parts[] = {{"pf=", SHAPE, 0},     {"pfh=", SHAPE, 1},     {"dec=", SHAPE, 2},     {"upf=", UNROLL, 0},
                 {"upfh=", UNROLL, 1},  {"udec=", UNROLL, 2},   {"ppf=", PREFETCH, 0},  {"ppfh=", PREFETCH, 1},
                 {"pdec=", PREFETCH, 2}, {"rpf=", REGS, 0},      {"rpfh=", REGS, 1},     {"rdec=", REGS, 2},
                 {"dmr=", ROWS, 2}};
    ea_ocl_tiles *const kern[3] = {pf, pfh, dec};
    const char *p = e;
    while (*p) {
        int k = -1;
        for (size_t i = 0; i < sizeof parts / sizeof parts[0] && k < 0; i++)
            if (!strncmp(p, parts[i].prefix, strlen(parts[i].prefix)))
                k = (int)i;
        if (k < 0)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                           "EDGEATTN_OPENCL_TILES=%.64s: expected parts pf=BMxTMxBN[xTN[xPM]], upf=QKxPV, ppf=0|1 or "
                           "rpf=N, for pf, pfh or dec, or dmr=ROWS",
                           e);
        p += strlen(parts[k].prefix);
        ea_ocl_tiles *dst = kern[parts[k].kernel];
        int used = 0, used2 = 0, x = -1, y = -1;
        if (parts[k].what == SHAPE) {
            ea_ocl_tiles t = *dst; /* keeps the kernel's unrolls, prefetch and register cap */
            t.tn = 4;
            t.pm = 0;
            if (sscanf(p, "%dx%dx%d%n", &t.bm, &t.tm, &t.bn, &used) != 3)
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                               "EDGEATTN_OPENCL_TILES=%.64s: a tile part is BMxTMxBN[xTN[xPM]]", e);
            if (p[used] == 'x' && sscanf(p + used, "x%d%n", &t.tn, &used2) == 1) {
                used += used2;
                if (p[used] == 'x' && sscanf(p + used, "x%d%n", &t.pm, &used2) == 1)
                    used += used2;
            }
            if (!t.pm && t.tn > 0 && t.tm > 0)
                t.pm = tiles_pick_pm(&t, dmax);
            if (!tiles_fit(s, &t, dmax))
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                               "EDGEATTN_OPENCL_TILES: %dx%dx%dx%dx%d invalid for head dim %d (TM 1..8 dividing BM, BN a "
                               "multiple of 4, TN 1/2/4/8 dividing BN, PM 1/2/4/8 dividing BM with the work-items "
                               "splitting rows and %d float4 columns evenly, %zu bytes of local memory and %zu "
                               "work-items at most)",
                               t.bm, t.tm, t.bn, t.tn, t.pm, dmax, dmax / 4, (size_t)s->local_mem, s->max_wg);
            *dst = t;
        } else if (parts[k].what == ROWS) {
            if (sscanf(p, "%d%n", &x, &used) != 1 || x < 1 || x > 256)
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                               "EDGEATTN_OPENCL_TILES=%.64s: dmr= is the query rows (group x Nq) up to which the decode "
                               "kernel takes a call, 1 to 256",
                               e);
            dst->rows = x;
        } else if (parts[k].what == UNROLL) {
            if (sscanf(p, "%dx%d%n", &x, &y, &used) != 2 || x < 1 || x > 32 || (x & (x - 1)) || y < 1 || y > 32 ||
                (y & (y - 1)))
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                               "EDGEATTN_OPENCL_TILES=%.64s: an unroll part is QKxPV, each a power of two from 1 to 32",
                               e);
            dst->uqk = x;
            dst->upv = y;
        } else {
            const bool pre = parts[k].what == PREFETCH;
            if (sscanf(p, "%d%n", &x, &used) != 1 || (pre && x != 0 && x != 1) || (!pre && x != 0 && (x < 32 || x > 255)))
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                               "EDGEATTN_OPENCL_TILES=%.64s: a prefetch part (ppf=, ppfh=, pdec=) is 0 or 1, a register "
                               "cap (rpf=, rpfh=, rdec=) 0 (none) or 32 to 255",
                               e);
            if (pre)
                dst->pf = x + 1;
            else
                dst->regs = x;
        }
        p += used;
        if (*p == ',')
            p++;
        else if (*p)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "EDGEATTN_OPENCL_TILES=%.64s: unexpected '%c'", e, *p);
    }
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- programs and the binary cache */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define EA_CACHE_MAGIC "EAOCLBIN"

typedef struct cache_header {
    char magic[8];
    uint32_t version, key_len;
    uint64_t bin_len, bin_hash;
} cache_header;

/* Reads a cache entry; returns a malloc'd binary whose key matches, else NULL. */
static unsigned char *cache_read(const char *path, const char *key, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    cache_header h;
    unsigned char *bin = NULL;
    char *k = NULL;
    const size_t klen = strlen(key);
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, EA_CACHE_MAGIC, 8) != 0 || h.version != 1 ||
        h.key_len != klen || h.bin_len == 0 || h.bin_len > ((uint64_t)1 << 30))
        goto fail;
    k = malloc(klen + 1);
    bin = malloc((size_t)h.bin_len);
    if (!k || !bin || fread(k, 1, klen, f) != klen || memcmp(k, key, klen) != 0 ||
        fread(bin, 1, (size_t)h.bin_len, f) != (size_t)h.bin_len ||
        fnv1a(0xcbf29ce484222325ull, bin, (size_t)h.bin_len) != h.bin_hash)
        goto fail;
    free(k);
    fclose(f);
    *len = (size_t)h.bin_len;
    return bin;
fail:
    free(k);
    free(bin);
    fclose(f);
    return NULL;
}

/* Writes an entry atomically (temporary file in the same folder, then rename). */
static bool cache_write(const char *path, const char *key, const unsigned char *bin, size_t len)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return false;
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return false;
    cache_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, EA_CACHE_MAGIC, 8);
    h.version = 1;
    h.key_len = (uint32_t)strlen(key);
    h.bin_len = len;
    h.bin_hash = fnv1a(0xcbf29ce484222325ull, bin, len);
    bool ok = fwrite(&h, sizeof h, 1, f) == 1 && fwrite(key, 1, h.key_len, f) == h.key_len &&
              fwrite(bin, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) == 0)
        return true;
    remove(tmp);
    return false;
}

/* Builds (or loads from the cache) a program from nsrc strings with options. */
static edgeattn_status build_program(ea_ocl_state *s, const char *cache_dir, const char **src, int nsrc,
                                     const char *opts, const char *what, cl_program *out, char *msg)
{
    char key[1024];
    uint64_t hsrc = 0xcbf29ce484222325ull;
    for (int i = 0; i < nsrc; i++)
        hsrc = fnv1a(hsrc, src[i], strlen(src[i]));
    snprintf(key, sizeof key, "%s|%s|%s|%s|%016llx|%016llx|%s", s->platform_name, s->device_name, s->driver,
             s->version, (unsigned long long)ea_ocl_src_hash, (unsigned long long)hsrc, opts);
    char path[4096] = "";
    cl_int err = CL_SUCCESS;
    cl_program prog = NULL;
    if (cache_dir && *cache_dir) {
        const uint64_t hk = fnv1a(0xcbf29ce484222325ull, key, strlen(key));
        snprintf(path, sizeof path, "%s/edgeattn-ocl-%016llx.bin", cache_dir, (unsigned long long)hk);
        size_t len = 0;
        unsigned char *bin = cache_read(path, key, &len);
        if (bin) {
            cl_int bst = CL_SUCCESS;
            prog = ea_ocl_create_program_bin(&s->api, s->context, s->device, len, bin, &bst, &err);
            free(bin);
            if (prog && (err != CL_SUCCESS || bst != CL_SUCCESS ||
                         s->api.clBuildProgram(prog, 1, &s->device, opts, NULL, NULL) != CL_SUCCESS)) {
                s->api.clReleaseProgram(prog);
                prog = NULL;
            }
            if (prog) {
                s->programs_from_cache++;
                *out = prog;
                return EDGEATTN_OK;
            }
        }
    }
    size_t lens[8];
    for (int i = 0; i < nsrc; i++)
        lens[i] = strlen(src[i]);
    prog = ea_ocl_create_program_src(&s->api, s->context, (cl_uint)nsrc, src, lens, &err);
    if (!prog || err != CL_SUCCESS)
        return ea_ocl_fail_cl(msg, err, "clCreateProgramWithSource");
    err = s->api.clBuildProgram(prog, 1, &s->device, opts, NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[2048] = "";
        s->api.clGetProgramBuildInfo(prog, s->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        s->api.clReleaseProgram(prog);
        for (char *p = log; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        char buf[32];
        const char *l = log;
        while (*l == ' ')
            l++;
        return ea_fail(msg, EDGEATTN_ERR_SYSTEM, "opencl: building the %s program failed (%s): %.160s", what,
                       ea_ocl_error_name(err, buf, sizeof buf), l);
    }
    s->programs_built++;
    if (path[0]) { /* best effort: a cache that cannot be written only costs the next start a build */
        size_t len = 0;
        if (s->api.clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) == CL_SUCCESS && len > 0) {
            unsigned char *bin = malloc(len);
            if (bin && s->api.clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS &&
                cache_write(path, key, bin, len))
                s->programs_cache_saved++;
            free(bin);
        }
    }
    *out = prog;
    return EDGEATTN_OK;
}

static edgeattn_status build_variant(ea_ocl_state *s, const char *cache_dir, ea_ocl_variant *v, char *msg)
{
    static const char *const kname[3] = {"ea_flash_pf", "ea_flash_pfh", "ea_flash_dec"};
    static const char *const kwhat[3] = {"prefill", "F16-Q prefill", "decode"};
    const ea_ocl_tiles *t[3] = {&v->pf, &v->pfh, &v->dec};
    cl_kernel *kk[3] = {&v->k_pf, &v->k_pfh, &v->k_dec};
    char kb[256];
    const char *extra = ea_knob(s->cfg, "opencl", s->ident, "EDGEATTN_OPENCL_OPTIONS", kb, sizeof kb);
    const bool sweep = extra && *extra; /* a tuning sweep's options, added to every kernel's */
    /* EDGEATTN_OPENCL_OPTIONS: build options for tuning sweeps (e.g. -DEA_QK_CONST or -DEA_NATIVE_EXP),
     * added to every kernel's; part of the binary-cache key like every option */
    if (extra && strlen(extra) > 256)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "EDGEATTN_OPENCL_OPTIONS: %zu characters, 256 at most",
                       strlen(extra));
    /* one program per kernel (each its own binary-cache entry): a tuning candidate that changes one
     * kernel's tiles rebuilds that kernel only. A paged cache's programs read K/V rows through page
     * tables (decode); contiguous configs build the kernels without that code. */
    for (int i = 0; i < 3; i++) {
        char opts[384], regs[64] = "";
        if (t[i]->regs > 0 && s->nv_options) /* a required work-group size would override the cap */
            snprintf(regs, sizeof regs, " -DEA_NO_REQD_WG -cl-nv-maxrregcount=%d", t[i]->regs);
        /* NVIDIA's decode: every K/V load of a share issued before any conversion (flash.cl EA_BATCH_LOADS;
         * H100, B4 ragged Hq32/kv8 D128 F16: contiguous 0.2285 -> 0.1280 ms, pages of 16 0.2678 -> 0.1338) */
        const bool batch = i == 2 && s->dev_class == EA_OCL_CLASS_NVIDIA && t[i]->pf != 2;
        snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DEA_DMAX=%d%s%s%s%s%s", v->dmax, s->lay.paged ? " -DEA_PAGED" : "",
                 batch ? " -DEA_BATCH_LOADS" : "", regs, sweep ? " " : "", sweep ? extra : "");
        char pro[384], unroll[128] = "";
        if (t[i]->uqk)
            snprintf(unroll, sizeof unroll, "#define FK_UNROLL_QK %d\n#define FK_UNROLL_PV %d\n", t[i]->uqk, t[i]->upv);
        if (t[i]->pf)
            snprintf(unroll + strlen(unroll), sizeof unroll - strlen(unroll), "#define FK_PREFETCH %d\n", t[i]->pf - 1);
        snprintf(pro, sizeof pro,
                 "\n#define FK_NAME %s\n#define FK_BM %d\n#define FK_TM %d\n#define FK_BN %d\n#define FK_TN %d\n"
                 "#define FK_PM %d\n%s%s",
                 kname[i], t[i]->bm, t[i]->tm, t[i]->bn, t[i]->tn, t[i]->pm, t[i]->qh ? "#define FK_QH 1\n" : "",
                 unroll);
        const char *src[3] = {ea_ocl_src_common, pro, ea_ocl_src_flash};
        char what[48];
        snprintf(what, sizeof what, "flash %s (head dim %d)", kwhat[i], v->dmax);
        edgeattn_status st = build_program(s, cache_dir, src, 3, opts, what, &v->prog[i], msg);
        if (st != EDGEATTN_OK)
            return st;
        cl_int err;
        *kk[i] = ea_ocl_create_kernel(&s->api, v->prog[i], kname[i], &err);
        if (err != CL_SUCCESS) {
            *kk[i] = NULL;
            return ea_ocl_fail_cl(msg, err, kname[i]);
        }
        /* the compiled kernel may allow fewer work-items than the device (registers) */
        size_t wg = 0;
        if (s->api.clGetKernelWorkGroupInfo(*kk[i], s->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL) ==
                CL_SUCCESS &&
            wg < (size_t)ea_ocl_tiles_threads(t[i]))
            return ea_fail(msg, EDGEATTN_ERR_SYSTEM,
                           "opencl: kernel %s (head dim %d, tiles %dx%dx%dx%dx%d) allows %zu work-items, needs %d: set "
                           "smaller tiles with EDGEATTN_OPENCL_TILES",
                           kname[i], v->dmax, t[i]->bm, t[i]->tm, t[i]->bn, t[i]->tn, t[i]->pm, wg, ea_ocl_tiles_threads(t[i]));
    }
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- init / fini */

static void info_str(ea_ocl_state *s, cl_device_info what, char *buf, size_t len)
{
    buf[0] = '\0';
    if (s->api.clGetDeviceInfo(s->device, what, len - 1, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[len - 1] = '\0';
}

static void ocl_release(ea_ocl_state *s)
{
    ea_ocl_api *a = &s->api;
    if (!a->lib)
        return;
    if (s->queue)
        a->clFinish(s->queue);
    for (int i = 0; i < EA_OCL_NVAR; i++) {
        if (s->var[i].k_pf)
            a->clReleaseKernel(s->var[i].k_pf);
        if (s->var[i].k_pfh)
            a->clReleaseKernel(s->var[i].k_pfh);
        if (s->var[i].k_dec)
            a->clReleaseKernel(s->var[i].k_dec);
        for (int k = 0; k < 3; k++)
            if (s->var[i].prog[k])
                a->clReleaseProgram(s->var[i].prog[k]);
    }
    for (int i = 0; i < EA_K_COUNT; i++)
        if (s->k[i])
            a->clReleaseKernel(s->k[i]);
    if (s->util_prog)
        a->clReleaseProgram(s->util_prog);
    for (int i = 0; i < EA_OCL_ROPE_SLOTS; i++)
        if (s->rope_ev[i])
            a->clReleaseEvent(s->rope_ev[i]);
    for (int i = 0; i < EA_OCL_PTAB_SLOTS; i++)
        if (s->ptab_ev[i])
            a->clReleaseEvent(s->ptab_ev[i]);
    for (int i = 0; i < EA_OCL_BM_SLOTS; i++)
        if (s->bm_ev[i])
            a->clReleaseEvent(s->bm_ev[i]);
    for (int i = 0; i < s->kv_nbuf; i++) {
        if (s->kv_k[i])
            a->clReleaseMemObject(s->kv_k[i]);
        if (s->kv_v[i])
            a->clReleaseMemObject(s->kv_v[i]);
    }
    cl_mem mems[4] = {s->blast_tmp, s->user, s->work, s->summ};
    for (int i = 0; i < 4; i++)
        if (mems[i])
            a->clReleaseMemObject(mems[i]);
    if (s->queue)
        a->clReleaseCommandQueue(s->queue);
    if (s->context)
        a->clReleaseContext(s->context);
    if (s->blast.lib)
        ea_clblast_unload(&s->blast);
    ea_ocl_unload(a);
}

static edgeattn_status make_buffer(ea_ocl_state *s, size_t bytes, const char *what, cl_mem *out, char *msg)
{
    if (bytes == 0)
        return EDGEATTN_OK;
    if (bytes > s->max_alloc)
        return ea_fail(msg, EDGEATTN_ERR_OUT_OF_MEMORY,
                       "opencl: the %s needs %zu bytes, more than the device's largest buffer (%llu bytes)", what, bytes,
                       (unsigned long long)s->max_alloc);
    cl_int err;
    *out = ea_ocl_create_buffer(&s->api, s->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (!*out || err != CL_SUCCESS) {
        *out = NULL;
        char buf[32];
        return ea_fail(msg, EDGEATTN_ERR_OUT_OF_MEMORY, "opencl: could not obtain %zu bytes for the %s (%s)", bytes,
                       what, ea_ocl_error_name(err, buf, sizeof buf));
    }
    /* touch it now, so a lazily allocating driver fails here and not in the first call */
    const cl_uchar zero = 0;
    err = s->api.clEnqueueFillBuffer(s->queue, *out, &zero, 1, 0, bytes, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return ea_ocl_fail_cl(msg, err, "clEnqueueFillBuffer");
    return EDGEATTN_OK;
}

static edgeattn_status ocl_init_state(edgeattn_context *ctx, ea_ocl_state *s, char *msg)
{
    const edgeattn_config *cfg = &ctx->cfg;
    char why[96];
    edgeattn_status st;
    if (!ea_ocl_load(&s->api, why, sizeof why))
        return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE, "opencl: %s", why);
    ea_ocl_api *a = &s->api;
    cl_int err;
    if (cfg->gpu_queue) {
        cl_command_queue q = (cl_command_queue)cfg->gpu_queue;
        cl_command_queue_properties props = 0;
        if ((err = a->clGetCommandQueueInfo(q, CL_QUEUE_CONTEXT, sizeof s->context, &s->context, NULL)) != CL_SUCCESS ||
            (err = a->clGetCommandQueueInfo(q, CL_QUEUE_DEVICE, sizeof s->device, &s->device, NULL)) != CL_SUCCESS ||
            (err = a->clGetCommandQueueInfo(q, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL)) != CL_SUCCESS) {
            s->context = NULL;
            return ea_ocl_fail_cl(msg, err, "config.gpu_queue: clGetCommandQueueInfo");
        }
        if (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) {
            s->context = NULL;
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "config.gpu_queue: the queue must be in-order");
        }
        a->clRetainContext(s->context);
        a->clRetainCommandQueue(q);
        s->queue = q;
        a->clGetDeviceInfo(s->device, CL_DEVICE_PLATFORM, sizeof s->platform, &s->platform, NULL);
    } else {
        ocl_pick pick;
        st = ocl_choose(a, cfg->backend == EDGEATTN_BACKEND_AUTO, &pick, msg);
        if (st != EDGEATTN_OK)
            return st;
        s->platform = pick.platform;
        s->device = pick.device;
        const cl_context_properties props[3] = {CL_CONTEXT_PLATFORM, (cl_context_properties)pick.platform, 0};
        s->context = a->clCreateContext(props, 1, &s->device, NULL, NULL, &err);
        if (!s->context || err != CL_SUCCESS) {
            s->context = NULL;
            return ea_ocl_fail_cl(msg, err, "clCreateContext");
        }
        s->queue = a->clCreateCommandQueue(s->context, s->device, 0, &err);
        if (!s->queue || err != CL_SUCCESS) {
            s->queue = NULL;
            return ea_ocl_fail_cl(msg, err, "clCreateCommandQueue");
        }
    }
    /* device limits */
    info_str(s, CL_DEVICE_NAME, s->device_name, sizeof s->device_name);
    info_str(s, CL_DEVICE_VENDOR, s->vendor, sizeof s->vendor);
    info_str(s, CL_DRIVER_VERSION, s->driver, sizeof s->driver);
    info_str(s, CL_DEVICE_VERSION, s->version, sizeof s->version);
    s->platform_name[0] = '\0';
    a->clGetPlatformInfo(s->platform, CL_PLATFORM_NAME, sizeof s->platform_name - 1, s->platform_name, NULL);
    s->platform_name[sizeof s->platform_name - 1] = '\0';
    s->cfg = &ctx->cfg;
    if (!ctx->cfg.gpu_queue)
        ocl_ident(s->device_name, s->platform_name, s->driver, s->ident, sizeof s->ident);
    if ((st = ocl_layout(cfg, s->ident, &s->lay, msg)) != EDGEATTN_OK) /* as the plan laid it out */
        return st;
    char ext[4096] = "";
    a->clGetDeviceInfo(s->device, CL_DEVICE_EXTENSIONS, sizeof ext - 1, ext, NULL);
    s->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
    s->nv_options = strstr(ext, "cl_nv_compiler_options") != NULL;
    a->clGetDeviceInfo(s->device, CL_DEVICE_TYPE, sizeof s->type, &s->type, NULL);
    a->clGetDeviceInfo(s->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof s->cus, &s->cus, NULL);
    a->clGetDeviceInfo(s->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof s->max_wg, &s->max_wg, NULL);
    a->clGetDeviceInfo(s->device, CL_DEVICE_MAX_PARAMETER_SIZE, sizeof s->max_param, &s->max_param, NULL);
    a->clGetDeviceInfo(s->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof s->local_mem, &s->local_mem, NULL);
    a->clGetDeviceInfo(s->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof s->global_mem, &s->global_mem, NULL);
    a->clGetDeviceInfo(s->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof s->max_alloc, &s->max_alloc, NULL);
    a->clGetDeviceInfo(s->device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof s->vec_float, &s->vec_float, NULL);
    a->clGetDeviceInfo(s->device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_HALF, sizeof s->vec_half, &s->vec_half, NULL);
    if (s->cus < 1)
        s->cus = 1;
    if (s->max_param < sizeof(ea_ocl_attn_p) + 8 * sizeof(cl_mem))
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "opencl: the device takes %zu bytes of kernel arguments, %zu needed",
                       s->max_param, sizeof(ea_ocl_attn_p) + 8 * sizeof(cl_mem));
    char lname[256];
    snprintf(lname, sizeof lname, "%s %s %s", s->vendor, s->device_name, s->platform_name);
    for (char *p = lname; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (s->type & CL_DEVICE_TYPE_CPU)
        s->dev_class = EA_OCL_CLASS_CPU;
    else if (strstr(lname, "nvidia"))
        s->dev_class = EA_OCL_CLASS_NVIDIA;
    else if (strstr(lname, "mali"))
        s->dev_class = EA_OCL_CLASS_MALI;
    else if (strstr(lname, "adreno") || strstr(lname, "qualcomm"))
        s->dev_class = EA_OCL_CLASS_ADRENO;
    else
        s->dev_class = EA_OCL_CLASS_OTHER;
    /* EDGEATTN_OPENCL_LOCAL_MEM: pretend the device has at most this many bytes of local memory
     * (with EDGEATTN_OPENCL_CLASS, PoCL then picks the tiles a GPU would) */
    const char *lm = getenv("EDGEATTN_OPENCL_LOCAL_MEM");
    if (lm && *lm) {
        char *end = NULL;
        const unsigned long long v = strtoull(lm, &end, 0);
        if (!end || *end || v < 1024)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "EDGEATTN_OPENCL_LOCAL_MEM=%.32s: expected bytes (>= 1024)", lm);
        if (v < s->local_mem)
            s->local_mem = v;
    }
    /* EDGEATTN_OPENCL_CLASS: take another class's tile table (tests run every table on PoCL) */
    const char *cls = getenv("EDGEATTN_OPENCL_CLASS");
    if (cls && *cls) {
        static const char *const names[] = {"other", "nvidia", "mali", "adreno", "cpu"};
        int found = -1;
        for (int i = 0; i < 5; i++)
            if (!strcmp(cls, names[i]))
                found = i;
        if (found < 0)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                           "EDGEATTN_OPENCL_CLASS=%.32s: expected other, nvidia, mali, adreno or cpu", cls);
        s->dev_class = found;
    }

    /* programs: the head-dim variants up to the planned one, and the utility program */
    static const int dims[EA_OCL_NVAR] = {64, 128, 256};
    s->nvar = 0;
    for (int i = 0; i < EA_OCL_NVAR; i++) {
        if (i > 0 && dims[i - 1] >= cfg->max_head_dim)
            break;
        ea_ocl_variant *v = &s->var[s->nvar++];
        v->dmax = dims[i];
        tiles_default(s, v->dmax, &v->pf, &v->pfh, &v->dec);
        if ((st = tiles_env(s, v->dmax, &v->pf, &v->pfh, &v->dec, msg)) != EDGEATTN_OK)
            return st;
        if (!tiles_fit(s, &v->pf, v->dmax) || !tiles_fit(s, &v->pfh, v->dmax) || !tiles_fit(s, &v->dec, v->dmax))
            return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                           "opencl: no tile for head dim %d fits %llu bytes of local memory", v->dmax,
                           (unsigned long long)s->local_mem);
        if ((st = build_variant(s, cfg->kernel_cache_dir, v, msg)) != EDGEATTN_OK)
            return st;
    }
    const char *usrc[2] = {ea_ocl_src_common, ea_ocl_src_util};
    if ((st = build_program(s, cfg->kernel_cache_dir, usrc, 2, "-cl-std=CL1.2", "utility", &s->util_prog, msg)) !=
        EDGEATTN_OK)
        return st;
    static const char *const knames[EA_K_COUNT] = {"ea_combine",   "ea_kv_write", "ea_convert",    "ea_finite",
                                                   "ea_gather_q",  "ea_gather_kv", "ea_softmax",  "ea_store_rows",
                                                   "ea_fma_peak",  "ea_kv_summ",  "ea_topk_score", "ea_topk_select",
                                                   "ea_lr_proj"};
    for (int i = 0; i < EA_K_COUNT; i++) {
        s->k[i] = ea_ocl_create_kernel(a, s->util_prog, knames[i], &err);
        if (err != CL_SUCCESS) {
            s->k[i] = NULL;
            return ea_ocl_fail_cl(msg, err, knames[i]);
        }
    }

    /* pools */
    if ((st = make_buffer(s, s->lay.summ_bytes, "KV block summaries", &s->summ, msg)) != EDGEATTN_OK ||
        (st = make_buffer(s, s->lay.work_bytes, "work pool (staging, split-KV workspace)", &s->work, msg)) != EDGEATTN_OK ||
        (st = make_buffer(s, s->lay.user_bytes, "user region", &s->user, msg)) != EDGEATTN_OK)
        return st;
    if (s->lay.paged) {
        /* the page pools: one buffer of K pages and one of V pages */
        const size_t pb = s->lay.kv_bytes_each;
        if (pb > s->max_alloc)
            return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                           "opencl: the KV page pool (%d pages of %zu bytes) needs %zu bytes for K and as many for V, "
                           "more than the device's largest buffer (%llu bytes): set fewer config.kv_pages",
                           (int)s->lay.pages,
                           s->lay.page_elems * ea_dtype_size(cfg->kv_cache_dtype), pb, (unsigned long long)s->max_alloc);
        s->kv_nbuf = 1;
        s->kv_lpb = 1;
        if ((st = make_buffer(s, pb, "KV page pool (K)", &s->kv_k[0], msg)) != EDGEATTN_OK ||
            (st = make_buffer(s, pb, "KV page pool (V)", &s->kv_v[0], msg)) != EDGEATTN_OK)
            return st;
    } else if (s->lay.kv_layers > 0) {
        /* as many whole layers per buffer as the device's largest buffer takes, spread evenly */
        const size_t lb = s->lay.kv_layer_bytes;
        if (lb > s->max_alloc)
            return ea_fail(msg, EDGEATTN_ERR_OUT_OF_MEMORY,
                           "opencl: one layer of the KV cache needs %zu bytes, more than the device's largest buffer "
                           "(%llu bytes)", lb, (unsigned long long)s->max_alloc);
        const int layers = s->lay.kv_layers;
        size_t fit = (size_t)(s->max_alloc / lb);
        /* EDGEATTN_OPENCL_KV_LAYERS_PER_BUFFER: at most this many (tests spread the layers over several
         * buffers, as a device with a small largest buffer does) */
        const char *lpe = getenv("EDGEATTN_OPENCL_KV_LAYERS_PER_BUFFER");
        if (lpe && *lpe) {
            char *end = NULL;
            const unsigned long v = strtoul(lpe, &end, 10);
            if (!end || *end || v < 1)
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                               "EDGEATTN_OPENCL_KV_LAYERS_PER_BUFFER=%.32s: expected a count (>= 1)", lpe);
            fit = v < fit ? (size_t)v : fit;
        }
        const int lpb = fit < (size_t)layers ? (int)fit : layers;
        s->kv_nbuf = (layers + lpb - 1) / lpb;
        s->kv_lpb = (layers + s->kv_nbuf - 1) / s->kv_nbuf;
        for (int i = 0; i < s->kv_nbuf; i++) {
            const int nl = layers - i * s->kv_lpb < s->kv_lpb ? layers - i * s->kv_lpb : s->kv_lpb;
            if ((st = make_buffer(s, lb * (size_t)nl, "KV cache (K)", &s->kv_k[i], msg)) != EDGEATTN_OK ||
                (st = make_buffer(s, lb * (size_t)nl, "KV cache (V)", &s->kv_v[i], msg)) != EDGEATTN_OK)
                return st;
        }
    }
    if (s->lay.path == EA_OCL_PATH_UNFUSED) {
        /* CLBlast's temporary buffer: a sub-buffer carved from the work pool */
        cl_uint align_bits = 0;
        a->clGetDeviceInfo(s->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL);
        if (align_bits / 8 > 4096 || (align_bits >= 8 && s->lay.blast_tmp % (align_bits / 8) != 0))
            return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "opencl: sub-buffer alignment of %u bits not supported",
                           (unsigned)align_bits);
        const cl_buffer_region region = {s->lay.blast_tmp, s->lay.blast_tmp_bytes};
        s->api.counts[EA_OCL_N_SUBBUFFER]++;
        s->blast_tmp = a->clCreateSubBuffer(s->work, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
        if (!s->blast_tmp || err != CL_SUCCESS) {
            s->blast_tmp = NULL;
            return ea_ocl_fail_cl(msg, err, "clCreateSubBuffer (CLBlast temporary buffer)");
        }
        s->blast_ok = ea_clblast_load(&s->blast, s->blast_why, sizeof s->blast_why);
    }
    if ((err = a->clFinish(s->queue)) != CL_SUCCESS)
        return ea_ocl_fail_cl(msg, err, "clFinish");
    s->max_batch = cfg->max_batch;
    return EDGEATTN_OK;
}

static edgeattn_status ocl_init(edgeattn_context *ctx, ea_arena *arena, char *msg)
{
    ea_ocl_state *s = ea_arena_alloc(arena, 1, sizeof(ea_ocl_state), 64);
    if (!s)
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "opencl: arena smaller than the plan");
    memset(s, 0, sizeof *s);
    const edgeattn_config *cfg = &ctx->cfg;
    cl_mem *handles = ea_arena_alloc(arena, 2 * (size_t)cfg->num_layers, sizeof(cl_mem), 64);
    if (!handles)
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "opencl: arena smaller than the plan");
    s->kv_k = handles;
    s->kv_v = handles + cfg->num_layers;
    edgeattn_status st = ocl_init_state(ctx, s, msg);
    if (st == EDGEATTN_OK && s->lay.rope_bytes &&
        !(s->rope_host = ea_arena_alloc(arena, EA_OCL_ROPE_SLOTS, s->lay.rope_bytes, 64)))
        st = ea_fail(msg, EDGEATTN_ERR_INTERNAL, "opencl: arena smaller than the plan");
    if (st == EDGEATTN_OK && s->lay.ptab_bytes &&
        !(s->ptab_host = ea_arena_alloc(arena, EA_OCL_PTAB_SLOTS, s->lay.ptab_bytes, 64)))
        st = ea_fail(msg, EDGEATTN_ERR_INTERNAL, "opencl: arena smaller than the plan");
    if (st == EDGEATTN_OK && !(s->bm_host = ea_arena_alloc(arena, EA_OCL_BM_SLOTS, s->lay.bm_bytes, 64)))
        st = ea_fail(msg, EDGEATTN_ERR_INTERNAL, "opencl: arena smaller than the plan");
    s->ptab_last = -1;
    if (st != EDGEATTN_OK) {
        ocl_release(s);
        return st;
    }
    ctx->backend_state = s;
    return EDGEATTN_OK;
}

static void ocl_fini(edgeattn_context *ctx)
{
    ea_ocl_state *s = ctx->backend_state;
    if (s)
        ocl_release(s);
    ctx->backend_state = NULL;
}

static void ocl_info(const edgeattn_context *ctx, edgeattn_backend_info *info)
{
    const ea_ocl_state *s = ctx->backend_state;
    info->backend = EDGEATTN_BACKEND_OPENCL;
    snprintf(info->backend_name, sizeof info->backend_name, "opencl");
    const char *kind = (s->type & CL_DEVICE_TYPE_GPU) ? "gpu" : (s->type & CL_DEVICE_TYPE_CPU) ? "cpu" : "acc";
    const bool pocl = strstr(s->platform_name, "Portable") != NULL || strstr(s->platform_name, "pocl") != NULL;
    snprintf(info->tier, sizeof info->tier, "%s-%s f32%s", pocl ? "pocl" : "opencl", kind,
             s->lay.path == EA_OCL_PATH_UNFUSED ? " unfused" : "");
    ocl_ident(s->device_name, s->platform_name, s->driver, info->device, sizeof info->device);
    info->cores = (int32_t)s->cus;
    info->threads = 1;
    info->device_memory = (size_t)s->global_mem;
}

static edgeattn_status ocl_synchronize(edgeattn_context *ctx)
{
    ea_ocl_state *s = ctx->backend_state;
    const cl_int err = s->api.clFinish(s->queue);
    return err == CL_SUCCESS ? EDGEATTN_OK : ea_ocl_fail_cl(ctx->msg, err, "clFinish");
}

static edgeattn_status ocl_device_region(edgeattn_context *ctx, edgeattn_memory *memory, void **data, size_t *offset,
                                         size_t *bytes)
{
    ea_ocl_state *s = ctx->backend_state;
    *memory = EDGEATTN_MEM_OPENCL;
    *data = (void *)s->user;
    *offset = 0;
    *bytes = s->lay.user_bytes;
    return EDGEATTN_OK;
}

bool ea_ocl_debug_info(const edgeattn_context *ctx, ea_ocl_debug *out)
{
    memset(out, 0, sizeof *out);
    if (!ctx || ctx->backend->id != EDGEATTN_BACKEND_OPENCL || !ctx->backend_state)
        return false;
    const ea_ocl_state *s = ctx->backend_state;
    memcpy(out->counts, s->api.counts, sizeof out->counts);
    out->programs_from_cache = s->programs_from_cache;
    out->programs_built = s->programs_built;
    out->programs_cache_saved = s->programs_cache_saved;
    out->path = s->lay.path;
    out->nvar = s->nvar;
    for (int i = 0; i < s->nvar; i++) {
        out->pf[i] = s->var[i].pf;
        out->pfh[i] = s->var[i].pfh;
        out->dec[i] = s->var[i].dec;
        out->dmax[i] = s->var[i].dmax;
    }
    return true;
}

const ea_backend_ops ea_backend_opencl = {
    .api_version = EA_BACKEND_API_VERSION,
    .id = EDGEATTN_BACKEND_OPENCL,
    .name = "opencl",
    .probe = ocl_probe,
    .plan = ocl_plan,
    .init = ocl_init,
    .fini = ocl_fini,
    .supports_config = ocl_supports,
    .block_mask = true,
    .linformer = true,
    .attention = ea_ocl_attention,
    .decode = ea_ocl_attention,
    .info = ocl_info,
    .memory_kinds = (1u << EDGEATTN_MEM_HOST) | (1u << EDGEATTN_MEM_OPENCL),
    .check_finite = ea_ocl_check_finite,
    .kv_write = ea_ocl_kv_write,
    .kv_copy = ea_ocl_kv_copy,
    .kv_page_copy = ea_ocl_kv_page_copy,
    .kv_read = ea_ocl_kv_read,
    .synchronize = ocl_synchronize,
    .device_region = ocl_device_region,
    .copy = ea_ocl_copy,
    .ceilings = ea_ocl_ceilings,
};
