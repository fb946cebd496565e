/*
 * The CUDA backend: host C on the driver API (libcuda.so.1 through dlopen, cuda/cu_loader.h), kernels
 * from the embedded fatbin (the .cu files of cuda/), launch shapes from cuda/launch.c (cuda/kernels.h).
 *
 * create: the primary context of the device (EDGEATTN_CUDA_DEVICE, default 0) is retained, ONE
 * cuMemAlloc gives the whole device pool, one non-blocking stream is created (or config.gpu_queue is
 * used), the module is loaded and every kernel looked up. Pool layout (every piece 256-byte aligned):
 *   KV cache K, V   pool_elems of ea_kv_geometry each, in kv_cache_dtype (when the KV cache is planned):
 *                   contiguous [num_layers] x [max_batch][kv heads][cap][dim] (each layer planned for
 *                   max_kv_heads x max_head_dim, used densely with the cache's heads and dim); paged
 *                   (config.kv_page_size) [pages] x [heads][page][dim], page p at p * page_elems
 *   staging         q, out [max_batch, max_heads, max_q_len, max_head_dim] F32; k, v [max_batch,
 *                   max_kv_heads, max_kv_len, max_head_dim] F32; lse [max_batch, max_heads, max_q_len]
 *                   F32; bias F32 up to EA_CUDA_BIAS_STAGE_MAX bytes
 *   seq             ea_cu_seq [max_batch]; kv_write rows ea_cu_kv_row [max_batch]
 *   page tables     paged cache: int32 [max_batch][pages_per_seq] twice, the page tables of one decode
 *                   call's sequences and of one append's (seq_ids order), uploaded per call
 *   RoPE            the inverse frequencies, double [EA_MAX_HEAD_DIM / 2] (config.rope set: 1 KiB)
 *   split-KV workspace (ea_cu_split_workspace_bytes), NaN flag, and the caller's region
 *   (config.device_user_bytes, edgeattn_device_region).
 * RoPE is applied by the kernels (ea_kv_write to keys, the attention kernels to decode queries) from that
 * table, angles in double (cuda/kernel_abi.h): no per-call table, nothing more to upload per call.
 *
 * Calls: tensors in device memory (EDGEATTN_MEM_CUDA) are used in place and the call returns without
 * waiting. Host tensors the device can address (managed, cuMemHostRegister / cudaHostAlloc memory; on
 * Jetson-class integrated GPUs with pageable memory access any host memory) are used in place too;
 * other host tensors are copied through the staging areas. A call that involves any host tensor
 * synchronises the stream before it returns. Nothing on the hot path allocates, loads a module or
 * synchronises otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "core/ea_core.h"
#include "cuda/backend_cuda.h"
#include "cuda/cu_loader.h"
#include "cuda/kernels.h"

#define CU_ALIGN 256
#define CU_MAX_KERNELS 64
#define CU_MAX_PITCH ((size_t)2147483647) /* CU_DEVICE_ATTRIBUTE_MAX_PITCH on every GPU so far */
#define CU_CHUNK 64                       /* per-sequence parameters are uploaded in chunks of this many */
#define CU_UP_SLOTS 16                    /* pinned upload slots for per-call parameters */
#define CU_UP_SLOT_BYTES ((size_t)CU_CHUNK * sizeof(ea_cu_seq)) /* the largest upload (one chunk) */
#define CU_READ_BOUNCE ((size_t)64 << 10) /* kv_read: host bytes for cache rows converted on the host */
#define CU_TAB_SLOTS 8                    /* pinned upload slots for page tables (one call's each) */
#define CU_TAB_PINNED_MAX ((size_t)64 << 20) /* larger page-table slots: pageable copies instead */
_Static_assert(sizeof(ea_cu_kv_row) <= sizeof(ea_cu_seq), "kv_write rows fit an upload slot");
_Static_assert((EA_MAX_HEAD_DIM / 2) * sizeof(double) <= CU_UP_SLOT_BYTES, "the RoPE table fits an upload slot");

/* ---------------------------------------------------------------- plan */

typedef struct cu_layout {
    size_t kv_k, kv_v, kv_bytes; /* each of K and V: kv_bytes (every layer) */
    size_t kv_layer;             /* bytes of one layer of K (or V) */
    size_t q_stage, q_bytes;
    size_t out_stage, out_bytes;
    size_t k_stage, v_stage, kvs_bytes;
    size_t lse_stage, lse_bytes;
    size_t bias_stage, bias_bytes;
    bool no_staging; /* EDGEATTN_FLAG_DEVICE_TENSORS: the staging areas above are empty */
    size_t seq, rows;
    size_t tab, wtab, tab_bytes; /* paged cache: the page tables of a decode and of an append (tab_bytes each) */
    size_t rope;
    size_t mask_rp, mask_ci, mask_rp_bytes, mask_ci_bytes; /* a block-sparse mask's arrays (attention) */
    size_t summ, tk_score, tk_sel; /* top-k: block summaries of every (layer, sequence, KV head); a decode's
                                      block scores and choices per (batch row, KV head) */
    int32_t nsblk;                 /* summary blocks per (layer, sequence, KV head) */
    size_t lr_k, lr_v, lr_bytes;   /* Linformer: the projected K' and V' (F32-sized), each */
    size_t e_stage, f_stage, ef_bytes; /* Linformer: host E, F (each up to EA_CUDA_BIAS_STAGE_MAX) */
    size_t ws, ws_bytes;
    size_t flag;
    size_t user, user_bytes;
    size_t total;
} cu_layout;

/* Device facts needed by the plan and the calls. */
typedef struct cu_devinfo {
    int ordinal;
    CUdevice dev;
    ea_cu_device di;
    int cc;
    int integrated, pageable;
    size_t total_mem;
    char name[128];
} cu_devinfo;

typedef struct cu_state {
    ea_cu_driver drv;
    cu_devinfo dv;
    CUcontext ctx;
    bool ctx_retained;
    CUstream stream;
    bool own_stream;
    CUmodule mod;
    CUfunction fn[CU_MAX_KERNELS];
    size_t nfn;
    CUdeviceptr pool;
    cu_layout L;
    int32_t kv_cap;
    /* allocations of external device pointers already checked (start, size), so that a caller's
     * tensors cost no driver query after the first call; round-robin */
    CUdeviceptr seen_start[8];
    size_t seen_size[8];
    unsigned seen_next;
    /* Per-call parameters (sequence info, append rows) go up from pinned slots, each reused only
     * after the copy that read it has run (its event): a copy from pageable memory may make the
     * driver wait for the stream. NULL: cuMemAllocHost refused, pageable copies instead. */
    char *up_host;
    CUevent up_ev[CU_UP_SLOTS];
    bool up_used[CU_UP_SLOTS];
    unsigned up_next;
    /* what the pool's per-sequence parameters hold: entries [0, seq_valid) equal seq_shadow */
    ea_cu_seq *seq_shadow;
    int32_t seq_valid;
    /* what the pool's RoPE table holds (rope_dim / 2 entries; rope_dim 0: nothing yet) */
    int32_t rope_dim;
    double rope_shadow[EA_MAX_HEAD_DIM / 2];
    char *bounce; /* CU_READ_BOUNCE host bytes (kv_read conversions) */
    /* Paged cache: a call's page tables are built in tab_build (host), a decode's compared with what the
     * device's decode table holds (tab_shadow: tab_rows x tab_stride entries; tab_rows 0: unknown) and
     * sent only when they differ, from pinned slots like the per-call parameters (tab_host, CU_TAB_SLOTS
     * of L.tab_bytes; NULL: pageable copies from tab_build). */
    int32_t *tab_build, *tab_shadow;
    int32_t tab_rows, tab_stride;
    char *tab_host;
    CUevent tab_ev[CU_TAB_SLOTS];
    bool tab_used[CU_TAB_SLOTS];
    unsigned tab_next;
} cu_state;

/* count = a*b*c*d elements of elem bytes, overflow remembered in the sizer */
static size_t add4(ea_sizer *sz, int64_t a, int64_t b, int64_t c, int64_t d, size_t elem)
{
    size_t n = 1;
    const int64_t f[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        if (f[i] < 0 || !ea_mul_ok(n, (size_t)f[i], &n))
            sz->overflow = true;
    return ea_sizer_add(sz, sz->overflow ? 0 : n, elem, CU_ALIGN);
}

/* Bytes of one call's page tables, int32 [max_batch][pages_per_seq] (paged cache; else 0). */
static size_t cu_tab_bytes(const edgeattn_config *cfg)
{
    ea_kv_geom g;
    size_t n = 0;
    if (!(cfg->flags & EDGEATTN_FLAG_KV_CACHE) || ea_kv_geometry(cfg, &g, NULL) != EDGEATTN_OK || g.page == 0 ||
        !ea_mul_ok((size_t)cfg->max_batch, (size_t)g.pages_per_seq * sizeof(int32_t), &n))
        return 0;
    return n;
}

static edgeattn_status cu_layout_for(const edgeattn_config *cfg, const cu_devinfo *dv, cu_layout *L, char *msg)
{
    memset(L, 0, sizeof *L);
    ea_sizer sz = {0, false};
    const int64_t B = cfg->max_batch, Hq = cfg->max_heads, Hkv = cfg->max_kv_heads, Nq = cfg->max_q_len,
                  Nkv = cfg->max_kv_len, D = cfg->max_head_dim;
    /* EDGEATTN_FLAG_DEVICE_TENSORS: no staging areas (size 0; a call that would stage is refused) */
    const int64_t st = (cfg->flags & EDGEATTN_FLAG_DEVICE_TENSORS) ? 0 : 1;
    L->no_staging = st == 0;
    size_t tab_entries = 0; /* paged cache: entries of one call's page tables */
    if (cfg->flags & EDGEATTN_FLAG_KV_CACHE) {
        ea_kv_geom g;
        edgeattn_status gs = ea_kv_geometry(cfg, &g, msg);
        if (gs != EDGEATTN_OK)
            return gs;
        const size_t es = ea_dtype_size(cfg->kv_cache_dtype);
        L->kv_k = ea_sizer_add(&sz, g.pool_elems, es, CU_ALIGN);
        L->kv_v = ea_sizer_add(&sz, g.pool_elems, es, CU_ALIGN);
        L->kv_bytes = L->kv_v - L->kv_k;
        if (g.page == 0) {
            ea_sizer one = {0, false};
            add4(&one, B, Hkv, g.cap, D, es);
            L->kv_layer = one.total;
        } else if (!ea_mul_ok((size_t)B, (size_t)g.pages_per_seq, &tab_entries)) {
            sz.overflow = true;
        }
    }
    L->q_stage = add4(&sz, B * st, Hq, Nq, D, 4);
    L->out_stage = add4(&sz, B * st, Hq, Nq, D, 4);
    L->q_bytes = L->out_bytes = L->out_stage - L->q_stage;
    /* k, v: attention inputs, and the kept rows of a kv_append (at most the ring's capacity) */
    const int64_t kv_rows = cfg->kv_cache_window > Nkv ? cfg->kv_cache_window : Nkv;
    L->k_stage = add4(&sz, B * st, Hkv, kv_rows, D, 4);
    L->v_stage = add4(&sz, B * st, Hkv, kv_rows, D, 4);
    L->kvs_bytes = L->v_stage - L->k_stage;
    L->lse_stage = add4(&sz, B * st, Hq, Nq, 1, 4);
    L->lse_bytes = sz.total - L->lse_stage;
    /* bias: [B, Hq, Nq, Nkv] F32 can be huge; staged up to EA_CUDA_BIAS_STAGE_MAX */
    size_t bias = 0;
    bool ok = ea_mul_ok((size_t)B, (size_t)Hq, &bias) && ea_mul_ok(bias, (size_t)Nq, &bias) &&
              ea_mul_ok(bias, (size_t)Nkv, &bias) && ea_mul_ok(bias, 4, &bias);
    if (!ok || bias > EA_CUDA_BIAS_STAGE_MAX)
        bias = EA_CUDA_BIAS_STAGE_MAX;
    if (!st)
        bias = 0;
    L->bias_stage = ea_sizer_add(&sz, bias, 1, CU_ALIGN);
    L->bias_bytes = bias;
    L->seq = ea_sizer_add(&sz, (size_t)B, sizeof(ea_cu_seq), CU_ALIGN);
    L->rows = ea_sizer_add(&sz, (size_t)B, sizeof(ea_cu_kv_row), CU_ALIGN);
    if (tab_entries > 0) {
        L->tab = ea_sizer_add(&sz, tab_entries, sizeof(int32_t), CU_ALIGN);
        L->wtab = ea_sizer_add(&sz, tab_entries, sizeof(int32_t), CU_ALIGN);
        L->tab_bytes = tab_entries * sizeof(int32_t);
    }
    if (cfg->rope.style != EDGEATTN_ROPE_NONE)
        L->rope = ea_sizer_add(&sz, EA_MAX_HEAD_DIM / 2, sizeof(double), CU_ALIGN);
    /* a block-sparse mask of 64-row blocks listing every key block of every pattern: row pointers and
     * column indices (a mask whose patterns leave gaps in col_idx may need more: refused at the call) */
    {
        const size_t nrb = (size_t)((Nq + 63) / 64), nkb = (size_t)((Nkv + 63) / 64);
        size_t pats = 0, rp = 0, ci = 0;
        if (!ea_mul_ok((size_t)B, (size_t)Hkv, &pats) || !ea_mul_ok(pats, nrb + 1, &rp) || !ea_mul_ok(pats, nrb, &ci) ||
            !ea_mul_ok(ci, nkb, &ci) || !ea_mul_ok(rp, 4, &L->mask_rp_bytes) || !ea_mul_ok(ci, 4, &L->mask_ci_bytes))
            sz.overflow = true;
        L->mask_rp = ea_sizer_add(&sz, L->mask_rp_bytes, 1, CU_ALIGN);
        L->mask_ci = ea_sizer_add(&sz, L->mask_ci_bytes, 1, CU_ALIGN);
    }
    if (cfg->max_lowrank > 0) { /* Linformer: K' and V' [B, Hkv, k, D], staging for a shared E and F [k, Nkv] */
        const int64_t kr = cfg->max_lowrank;
        L->lr_k = add4(&sz, B, Hkv, kr, D, 4);
        L->lr_v = add4(&sz, B, Hkv, kr, D, 4);
        L->lr_bytes = L->lr_v - L->lr_k;
        size_t ef = 0; /* [B, Hkv, k, Nkv] F32, staged up to EA_CUDA_BIAS_STAGE_MAX as the bias is */
        if (!ea_mul_ok((size_t)B, (size_t)Hkv, &ef) || !ea_mul_ok(ef, (size_t)kr, &ef) || !ea_mul_ok(ef, (size_t)Nkv, &ef) ||
            !ea_mul_ok(ef, 4, &ef) || ef > EA_CUDA_BIAS_STAGE_MAX)
            ef = EA_CUDA_BIAS_STAGE_MAX;
        L->ef_bytes = st ? ef : 0;
        L->e_stage = ea_sizer_add(&sz, L->ef_bytes, 1, CU_ALIGN);
        L->f_stage = ea_sizer_add(&sz, L->ef_bytes, 1, CU_ALIGN);
    }
    if ((cfg->flags & EDGEATTN_FLAG_KV_CACHE) && cfg->kv_summary_block > 0) { /* (no window: cap = max_kv_len) */
        L->nsblk = (int32_t)((Nkv + cfg->kv_summary_block - 1) / cfg->kv_summary_block);
        size_t rows = 0, n = 0;
        if (!ea_mul_ok((size_t)B, (size_t)Hkv, &rows) || !ea_mul_ok(rows, (size_t)L->nsblk, &rows) ||
            !ea_mul_ok(rows, (size_t)cfg->num_layers, &n) || !ea_mul_ok(n, 2u * (size_t)D, &n))
            sz.overflow = true;
        L->summ = ea_sizer_add(&sz, n, sizeof(float), CU_ALIGN);
        L->tk_score = ea_sizer_add(&sz, rows, sizeof(float), CU_ALIGN);
        L->tk_sel = ea_sizer_add(&sz, rows, sizeof(int32_t), CU_ALIGN);
    }
    /* launch.c sizes the workspace in int64 (at most rows x 128 splits x D x 4 bytes): a config whose
     * B x Hq x Nq x D x 4 x 256 overflows int64 is refused before it gets there */
    size_t ws_bound = 0;
    if (!ea_mul_ok((size_t)B, (size_t)Hq, &ws_bound) || !ea_mul_ok(ws_bound, (size_t)Nq, &ws_bound) ||
        !ea_mul_ok(ws_bound, (size_t)D * 4 * 256, &ws_bound) || ws_bound > (size_t)INT64_MAX)
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "cuda: the device pool for this config exceeds size_t");
    L->ws_bytes = ea_cu_split_workspace_bytes(cfg->max_batch, cfg->max_heads, cfg->max_q_len, cfg->max_head_dim,
                                              dv->di.sm_count);
    L->ws = ea_sizer_add(&sz, L->ws_bytes, 1, CU_ALIGN);
    L->flag = ea_sizer_add(&sz, 1, CU_ALIGN, CU_ALIGN);
    if (cfg->device_user_bytes > (uint64_t)SIZE_MAX)
        sz.overflow = true;
    L->user_bytes = (size_t)cfg->device_user_bytes;
    L->user = ea_sizer_add(&sz, L->user_bytes, 1, CU_ALIGN);
    if (sz.overflow)
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "cuda: the device pool for this config exceeds size_t");
    L->total = (sz.total + CU_ALIGN - 1) & ~(size_t)(CU_ALIGN - 1);
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- device selection */

/* EDGEATTN_CUDA_DEVICE: -1 malformed, else the ordinal (default 0). */
static int env_ordinal(void)
{
    const char *e = getenv("EDGEATTN_CUDA_DEVICE");
    if (!e || !*e)
        return 0;
    int v = 0;
    for (const char *p = e; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static edgeattn_status cu_fail(const ea_cu_driver *d, char *msg, CUresult r, const char *what)
{
    const edgeattn_status st = r == EA_CUDA_ERROR_OUT_OF_MEMORY ? EDGEATTN_ERR_OUT_OF_MEMORY : EDGEATTN_ERR_SYSTEM;
    return ea_fail(msg, st, "cuda: %s failed: %s", what, ea_cu_error_name(d, r));
}

#define CU_TRY(d, msg, call, what)                                                                               \
    do {                                                                                                         \
        const CUresult r_ = (call);                                                                              \
        if (r_ != EA_CUDA_SUCCESS)                                                                               \
            return cu_fail((d), (msg), r_, (what));                                                              \
    } while (0)

/* Reads what the plan and the kernels need about the chosen device (driver open). */
static edgeattn_status cu_query_device(ea_cu_driver *d, cu_devinfo *dv, char *msg)
{
    memset(dv, 0, sizeof *dv);
    int count = 0;
    CU_TRY(d, msg, d->DeviceGetCount(&count), "cuDeviceGetCount");
    const int ord = env_ordinal();
    if (ord < 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "cuda: EDGEATTN_CUDA_DEVICE=\"%s\" is not a device ordinal",
                       getenv("EDGEATTN_CUDA_DEVICE"));
    if (ord >= count)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "cuda: EDGEATTN_CUDA_DEVICE=%d, but this machine has %d device(s)",
                       ord, count);
    dv->ordinal = ord;
    CU_TRY(d, msg, d->DeviceGet(&dv->dev, ord), "cuDeviceGet");
    struct {
        int attr;
        int *out;
    } const a[] = {
        {EA_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &dv->di.cc_major},
        {EA_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &dv->di.cc_minor},
        {EA_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &dv->di.sm_count},
        {EA_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, &dv->di.smem_per_block_optin},
        {EA_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, &dv->di.smem_per_sm},
        {EA_CU_DEVICE_ATTRIBUTE_INTEGRATED, &dv->integrated},
        {EA_CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS, &dv->pageable},
    };
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
        CU_TRY(d, msg, d->DeviceGetAttribute(a[i].out, a[i].attr, dv->dev), "cuDeviceGetAttribute");
    int l2 = 0;
    CU_TRY(d, msg, d->DeviceGetAttribute(&l2, EA_CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, dv->dev), "cuDeviceGetAttribute");
    dv->di.l2_bytes = l2;
    dv->cc = dv->di.cc_major * 10 + dv->di.cc_minor;
    CU_TRY(d, msg, d->DeviceGetName(dv->name, (int)sizeof dv->name, dv->dev), "cuDeviceGetName");
    dv->name[sizeof dv->name - 1] = '\0';
    CU_TRY(d, msg, d->DeviceTotalMem(&dv->total_mem, dv->dev), "cuDeviceTotalMem");
    if (dv->cc < 75 || !ea_cu_fatbin_runs_on(dv->cc))
        return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE,
                       "cuda: %s (sm_%d) is not covered by this build's kernels (sm_75 and newer; see -Dnvcc_archs)",
                       dv->name, dv->cc);
    return EDGEATTN_OK;
}

static bool cuda_probe(void)
{
    ea_cu_driver d;
    if (!ea_cu_driver_open(&d, NULL, 0))
        return false;
    bool ok = false;
    int count = 0;
    if (d.DeviceGetCount(&count) == EA_CUDA_SUCCESS && count > 0) {
        const int ord = env_ordinal();
        if (ord < 0 || ord >= count) {
            ok = true; /* a driver and devices: plan reports the bad EDGEATTN_CUDA_DEVICE */
        } else {
            cu_devinfo dv;
            char m[EA_MSG_LEN];
            ok = cu_query_device(&d, &dv, m) == EDGEATTN_OK;
        }
    }
    ea_cu_driver_close(&d);
    return ok;
}

/* The device as backend info names it (and a tuning file's key): its name and the driver's CUDA version. */
static void cu_ident(const cu_devinfo *dv, int driver_version, char *buf, size_t len)
{
    snprintf(buf, len, "%.100s (driver %d.%d)", dv->name, driver_version / 1000, driver_version % 1000 / 10);
}

/* The knobs (environment, else a tuning file made on this device): EDGEATTN_CUDA_SPLITS="keys=K,waves=W"
 * (split-KV decode: at least K keys per split, 64..65536; splits fill W waves of the device, 1..8) and
 * EDGEATTN_CUDA_DECODE=auto|small|simt (the decode kernel: the built-in choice, D128's
 * small-shared-memory twin, or the SIMT kernel). EDGEATTN_CUDA_PREVIEW (environment only) turns on
 * paths that are built and checked by the mock driver but have not yet run on a GPU: "f32q" (an F32
 * query on the tensor-core decode kernels), "proj" (the pipelined Linformer projection), or "all". */

static edgeattn_status cu_knobs(const edgeattn_config *cfg, cu_devinfo *dv, int driver_version, char *msg)
{
    char buf[128], id[128];
    cu_ident(dv, driver_version, id, sizeof id);
    const char *v = ea_knob(cfg, "cuda", id, "EDGEATTN_CUDA_SPLITS", buf, sizeof buf);
    dv->di.split_min_keys = dv->di.split_waves = dv->di.decode_kernel = 0;
    if (v && *v) {
        int keys = 0, waves = 0, used = 0;
        if (sscanf(v, "keys=%d,waves=%d%n", &keys, &waves, &used) != 2 || v[used] || keys < 64 || keys > 65536 ||
            waves < 1 || waves > 8)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                           "EDGEATTN_CUDA_SPLITS=%.48s: expected keys=K,waves=W (K 64..65536, W 1..8)", v);
        dv->di.split_min_keys = keys;
        dv->di.split_waves = waves;
    }
    dv->di.preview = 0;
    const char *pv = getenv("EDGEATTN_CUDA_PREVIEW");
    if (pv && *pv) {
        char list[64];
        snprintf(list, sizeof list, "%s", pv);
        char *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (!strcmp(tok, "f32q"))
                dv->di.preview |= 1;
            else if (!strcmp(tok, "proj"))
                dv->di.preview |= 2;
            else if (!strcmp(tok, "all"))
                dv->di.preview |= 3;
            else if (strcmp(tok, "none") != 0)
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                               "EDGEATTN_CUDA_PREVIEW=%.48s: expected a comma list of f32q, proj, all or none", pv);
        }
    }
    v = ea_knob(cfg, "cuda", id, "EDGEATTN_CUDA_DECODE", buf, sizeof buf);
    if (v && *v) {
        if (!strcmp(v, "small"))
            dv->di.decode_kernel = 1;
        else if (!strcmp(v, "simt"))
            dv->di.decode_kernel = 2;
        else if (strcmp(v, "auto") != 0)
            return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "EDGEATTN_CUDA_DECODE=%.32s: expected auto, small or simt", v);
    }
    return EDGEATTN_OK;
}

/* Quantised KV caches (Q8, Q4) are the CPU backend's so far: AUTO passes this backend by (forced, plan
 * says why not). */
static bool cuda_supports(const edgeattn_config *cfg)
{
    return cfg->backend != EDGEATTN_BACKEND_AUTO || (!ea_dtype_quant(cfg->kv_cache_dtype) && !ea_cfg_mla(cfg));
}

static edgeattn_status cuda_plan(const edgeattn_config *cfg, ea_backend_plan *out, char *msg)
{
    if ((cfg->flags & EDGEATTN_FLAG_KV_CACHE) && ea_dtype_quant(cfg->kv_cache_dtype))
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                       "cuda: a %s KV cache is not served by this backend yet (the CPU backend serves it)",
                       ea_dtype_name(cfg->kv_cache_dtype));
    if (ea_cfg_mla(cfg)) /* latent attention: the CPU backend's so far */
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED, "cuda: head dims past %d, max_head_dim_v and kv_cache_latent are "
                       "not served by this backend yet (the CPU backend serves them)", EA_MAX_HEAD_DIM);
    ea_cu_driver d;
    char why[EA_MSG_LEN];
    if (!ea_cu_driver_open(&d, why, sizeof why))
        return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE, "cuda: %s", why);
    cu_devinfo dv;
    edgeattn_status st = cu_query_device(&d, &dv, msg);
    if (st == EDGEATTN_OK)
        st = cu_knobs(cfg, &dv, d.version, msg);
    ea_cu_driver_close(&d);
    if (st != EDGEATTN_OK)
        return st;
    cu_layout L;
    if ((st = cu_layout_for(cfg, &dv, &L, msg)) != EDGEATTN_OK)
        return st;
    /* the state, and a shadow of the per-sequence parameters last uploaded (identical ones are not sent
     * again: a decode step then queues no copy before its kernel) */
    size_t shadow = 0, host = 0;
    if (!ea_mul_ok((size_t)cfg->max_batch, sizeof(ea_cu_seq), &shadow) ||
        !ea_add_ok(shadow, sizeof(cu_state) + 192 + CU_READ_BOUNCE, &host) ||
        !ea_add_ok(host, L.tab_bytes ? 2 * (L.tab_bytes + 64) : 0, &out->host_bytes) || L.tab_bytes > SIZE_MAX / 4)
        return ea_fail(msg, EDGEATTN_ERR_OVERFLOW, "cuda: the host part of the plan exceeds size_t");
    out->scratch_per_thread = 0;
    out->device_bytes = L.total;
    out->threads = 1;
    out->kv_on_device = (cfg->flags & EDGEATTN_FLAG_KV_CACHE) != 0;
    out->kv_device_bytes = 2 * L.kv_bytes;
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- create / destroy */

static void cu_teardown(cu_state *s)
{
    ea_cu_driver *d = &s->drv;
    if (!d->lib)
        return;
    if (s->ctx_retained) {
        CUcontext prev;
        d->CtxPushCurrent(s->ctx);
        if (s->stream)
            ea_cu_stream_sync(d, s->stream); /* finish what is queued before the memory goes */
        if (s->own_stream && s->stream)
            d->StreamDestroy(s->stream);
        if (s->mod)
            d->ModuleUnload(s->mod);
        if (s->pool)
            ea_cu_mem_free(d, s->pool);
        for (int i = 0; i < CU_UP_SLOTS; i++)
            if (s->up_ev[i])
                d->EventDestroy(s->up_ev[i]);
        if (s->up_host && d->MemFreeHost_) {
            d->count.mem_free++;
            d->MemFreeHost_(s->up_host);
        }
        s->up_host = NULL;
        for (int i = 0; i < CU_TAB_SLOTS; i++)
            if (s->tab_ev[i])
                d->EventDestroy(s->tab_ev[i]);
        if (s->tab_host && d->MemFreeHost_) {
            d->count.mem_free++;
            d->MemFreeHost_(s->tab_host);
        }
        s->tab_host = NULL;
        d->CtxPopCurrent(&prev);
        d->DevicePrimaryCtxRelease(s->dv.dev);
    }
    s->stream = NULL;
    s->mod = NULL;
    s->pool = 0;
    s->ctx_retained = false;
    ea_cu_driver_close(d);
}

static edgeattn_status cu_init_device(cu_state *s, const edgeattn_config *cfg, char *msg)
{
    ea_cu_driver *d = &s->drv;
    edgeattn_status st = cu_query_device(d, &s->dv, msg);
    if (st != EDGEATTN_OK || (st = cu_knobs(cfg, &s->dv, d->version, msg)) != EDGEATTN_OK)
        return st;
    if ((st = cu_layout_for(cfg, &s->dv, &s->L, msg)) != EDGEATTN_OK)
        return st;
    CU_TRY(d, msg, d->DevicePrimaryCtxRetain(&s->ctx, s->dv.dev), "cuDevicePrimaryCtxRetain");
    s->ctx_retained = true;
    CU_TRY(d, msg, d->CtxPushCurrent(s->ctx), "cuCtxPushCurrent");
    st = EDGEATTN_OK;
    CUresult r;
    if ((r = ea_cu_mem_alloc(d, &s->pool, s->L.total)) != EA_CUDA_SUCCESS) {
        size_t fr = 0, to = 0;
        d->MemGetInfo(&fr, &to);
        st = ea_fail(msg, r == EA_CUDA_ERROR_OUT_OF_MEMORY ? EDGEATTN_ERR_OUT_OF_MEMORY : EDGEATTN_ERR_SYSTEM,
                     "cuda: cuMemAlloc of the %zu-byte device pool failed: %s (%zu of %zu bytes free on %s)",
                     s->L.total, ea_cu_error_name(d, r), fr, to, s->dv.name);
        s->pool = 0;
        goto out;
    }
    if (cfg->gpu_queue) {
        s->stream = (CUstream)cfg->gpu_queue;
        CUcontext sc = NULL;
        if ((r = d->StreamGetCtx(s->stream, &sc)) != EA_CUDA_SUCCESS) {
            st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "cuda: config.gpu_queue is not a usable CUstream (%s)",
                         ea_cu_error_name(d, r));
            s->stream = NULL;
            goto out;
        }
        if (sc != s->ctx) {
            st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                         "cuda: config.gpu_queue belongs to another context than device %d's primary context",
                         s->dv.ordinal);
            s->stream = NULL;
            goto out;
        }
        s->own_stream = false;
    } else {
        if ((r = d->StreamCreate(&s->stream, EA_CU_STREAM_NON_BLOCKING)) != EA_CUDA_SUCCESS) {
            st = cu_fail(d, msg, r, "cuStreamCreate");
            s->stream = NULL;
            goto out;
        }
        s->own_stream = true;
    }
    if ((r = ea_cu_module_load(d, &s->mod, ea_cuda_fatbin)) != EA_CUDA_SUCCESS) {
        st = ea_fail(msg, r == EA_CUDA_ERROR_NO_BINARY_FOR_GPU ? EDGEATTN_ERR_BACKEND_UNAVAILABLE : EDGEATTN_ERR_SYSTEM,
                     "cuda: cuModuleLoadData of the embedded kernels failed on %s (sm_%d): %s", s->dv.name, s->dv.cc,
                     ea_cu_error_name(d, r));
        s->mod = NULL;
        goto out;
    }
    size_t n = 0;
    const ea_cu_kernel_desc *tab = ea_cu_kernel_table(&n);
    if (n > CU_MAX_KERNELS) {
        st = ea_fail(msg, EDGEATTN_ERR_INTERNAL, "cuda: %zu kernels, the backend holds %d", n, CU_MAX_KERNELS);
        goto out;
    }
    s->nfn = n;
    for (size_t i = 0; i < n; i++) {
        s->fn[i] = NULL;
        if (tab[i].min_cc > s->dv.cc)
            continue;
        if ((r = d->ModuleGetFunction(&s->fn[i], s->mod, tab[i].name)) != EA_CUDA_SUCCESS) {
            st = ea_fail(msg, EDGEATTN_ERR_SYSTEM, "cuda: kernel %s not in the embedded fatbin: %s", tab[i].name,
                         ea_cu_error_name(d, r));
            goto out;
        }
        if (tab[i].max_smem > 48u * 1024u) {
            if ((int64_t)tab[i].max_smem > s->dv.di.smem_per_block_optin) {
                s->fn[i] = NULL; /* launch.c does not pick it on this device */
                continue;
            }
            if ((r = d->FuncSetAttribute(s->fn[i], EA_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                         (int)tab[i].max_smem)) != EA_CUDA_SUCCESS) {
                st = ea_fail(msg, EDGEATTN_ERR_SYSTEM, "cuda: %s: %u bytes of shared memory refused: %s", tab[i].name,
                             tab[i].max_smem, ea_cu_error_name(d, r));
                goto out;
            }
        }
    }
    /* The fused split-KV decode counts arriving CTAs in counters at the start of the workspace; the
     * last CTA of each group resets its counter, so they need zeroing once, here. */
    const size_t cnt_bytes = ea_cu_split_counters_bytes(cfg->max_batch, cfg->max_heads, cfg->max_q_len,
                                                        cfg->max_head_dim, s->dv.di.sm_count);
    if (cnt_bytes) {
        const size_t cnt_off = ea_cu_split_counters_offset(cfg->max_batch, cfg->max_heads, cfg->max_q_len,
                                                           cfg->max_head_dim, s->dv.di.sm_count);
        if ((r = d->MemsetD8Async(s->pool + s->L.ws + cnt_off, 0, cnt_bytes, s->stream)) != EA_CUDA_SUCCESS ||
            (r = ea_cu_stream_sync(d, s->stream)) != EA_CUDA_SUCCESS) {
            st = cu_fail(d, msg, r, "zeroing the split-KV counters");
            goto out;
        }
    }
    /* pinned upload slots (optional: without them, pageable copies) */
    void *up = NULL;
    if (d->MemAllocHost_ && d->MemFreeHost_) {
        d->count.mem_alloc++;
        if (d->MemAllocHost_(&up, CU_UP_SLOTS * CU_UP_SLOT_BYTES) != EA_CUDA_SUCCESS)
            up = NULL;
    }
    if (up) {
        s->up_host = up;
        for (int i = 0; i < CU_UP_SLOTS; i++)
            if ((r = d->EventCreate(&s->up_ev[i], EA_CU_EVENT_DISABLE_TIMING)) != EA_CUDA_SUCCESS) {
                s->up_ev[i] = NULL;
                st = cu_fail(d, msg, r, "cuEventCreate");
                goto out;
            }
    }
    /* pinned page-table slots (paged cache; optional as above, and not for huge tables) */
    void *tp = NULL;
    if (s->L.tab_bytes && s->L.tab_bytes <= CU_TAB_PINNED_MAX / CU_TAB_SLOTS && d->MemAllocHost_ && d->MemFreeHost_) {
        d->count.mem_alloc++;
        if (d->MemAllocHost_(&tp, CU_TAB_SLOTS * s->L.tab_bytes) != EA_CUDA_SUCCESS)
            tp = NULL;
    }
    if (tp) {
        s->tab_host = tp;
        for (int i = 0; i < CU_TAB_SLOTS; i++)
            if ((r = d->EventCreate(&s->tab_ev[i], EA_CU_EVENT_DISABLE_TIMING)) != EA_CUDA_SUCCESS) {
                s->tab_ev[i] = NULL;
                st = cu_fail(d, msg, r, "cuEventCreate");
                goto out;
            }
    }
out:;
    CUcontext prev;
    d->CtxPopCurrent(&prev);
    return st;
}

static edgeattn_status cuda_init(edgeattn_context *ctx, ea_arena *arena, char *msg)
{
    cu_state *s = ea_arena_alloc(arena, 1, sizeof(cu_state), 64);
    ea_cu_seq *shadow = ea_arena_alloc(arena, (size_t)ctx->cfg.max_batch, sizeof(ea_cu_seq), 64);
    char *bounce = ea_arena_alloc(arena, 1, CU_READ_BOUNCE, 64);
    if (!s || !shadow || !bounce)
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "cuda: arena smaller than the plan");
    const size_t tab_bytes = cu_tab_bytes(&ctx->cfg);
    if (tab_bytes) {
        s->tab_build = ea_arena_alloc(arena, tab_bytes, 1, 64);
        s->tab_shadow = ea_arena_alloc(arena, tab_bytes, 1, 64);
        if (!s->tab_build || !s->tab_shadow)
            return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "cuda: arena smaller than the plan");
    }
    s->seq_shadow = shadow;
    s->seq_valid = 0;
    s->rope_dim = 0;
    s->bounce = bounce;
    char why[EA_MSG_LEN];
    if (!ea_cu_driver_open(&s->drv, why, sizeof why))
        return ea_fail(msg, EDGEATTN_ERR_BACKEND_UNAVAILABLE, "cuda: %s", why);
    edgeattn_status st = cu_init_device(s, &ctx->cfg, msg);
    if (st != EDGEATTN_OK) {
        cu_teardown(s);
        return st;
    }
    s->kv_cap = ctx->kv.enabled ? ctx->kv.cap : 0;
    ctx->backend_state = s;
    return EDGEATTN_OK;
}

static void cuda_fini(edgeattn_context *ctx)
{
    cu_state *s = ctx->backend_state;
    if (s)
        cu_teardown(s);
    ctx->backend_state = NULL;
}

/* ---------------------------------------------------------------- calls: helpers */

typedef struct cu_call {
    cu_state *s;
    char *msg;
    bool host;     /* a host tensor is involved: synchronise before returning */
    bool pushed;
} cu_call;

static edgeattn_status call_begin(cu_call *c, edgeattn_context *ctx)
{
    c->s = ctx->backend_state;
    c->msg = ctx->msg;
    c->host = false;
    c->pushed = false;
    CU_TRY(&c->s->drv, c->msg, c->s->drv.CtxPushCurrent(c->s->ctx), "cuCtxPushCurrent");
    c->pushed = true;
    return EDGEATTN_OK;
}

/* Synchronises when host memory was involved (and st is OK so far), pops the context. */
static edgeattn_status call_end(cu_call *c, edgeattn_status st)
{
    ea_cu_driver *d = &c->s->drv;
    if (c->host) {
        const CUresult r = ea_cu_stream_sync(d, c->s->stream);
        if (r != EA_CUDA_SUCCESS && st == EDGEATTN_OK)
            st = cu_fail(d, c->msg, r, "cuStreamSynchronize");
    }
    if (c->pushed) {
        CUcontext prev;
        d->CtxPopCurrent(&prev);
    }
    return st;
}

/* Bytes spanned by a validated view (inputs may broadcast: a stride of 0 over B, H or N). */
static size_t view_extent(const edgeattn_tensor *t)
{
    size_t ext = 0;
    if (ea_check_input_tensor(NULL, "t", t, EA_DTYPES_FLOAT, &ext) != EDGEATTN_OK)
        return 0;
    return ext;
}

/* Is [p, p + n) inside the pool? */
static bool in_pool(const cu_state *s, uint64_t p, size_t n)
{
    return p >= s->pool && n <= s->L.total && p - s->pool <= s->L.total - n;
}

/* A device tensor: element-aligned, of this device, inside its allocation where the driver can tell
 * (a pointer of another device or no CUDA memory at all is refused; what the driver cannot tell, e.g.
 * for memory it does not track, is let through). */
static edgeattn_status check_device_ptr(cu_state *s, const char *name, uint64_t p, size_t extent, size_t es,
                                        char *msg)
{
    if (p % es != 0)
        return ea_fail(msg, EDGEATTN_ERR_MISALIGNED, "%s: device address 0x%llx is not aligned to its %zu-byte elements",
                       name, (unsigned long long)p, es);
    if (in_pool(s, p, extent))
        return EDGEATTN_OK;
    for (int i = 0; i < 8; i++)
        if (s->seen_size[i] && p >= s->seen_start[i] && p - s->seen_start[i] <= s->seen_size[i] &&
            extent <= s->seen_size[i] - (p - s->seen_start[i]))
            return EDGEATTN_OK;
    ea_cu_driver *d = &s->drv;
    int ord = -1;
    CUdeviceptr start = 0;
    size_t size = 0;
    CUresult r;
    bool have_range = false;
    if (d->PointerGetAttributes) { /* an unknown address reads as memory type 0, not as an API error */
        unsigned mt = 0;
        int attr[4] = {EA_CU_POINTER_ATTRIBUTE_MEMORY_TYPE, EA_CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                       EA_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, EA_CU_POINTER_ATTRIBUTE_RANGE_SIZE};
        void *data[4] = {&mt, &ord, &start, &size};
        r = d->PointerGetAttributes(4, attr, data, p);
        if (r == EA_CUDA_SUCCESS && mt == 0)
            r = EA_CUDA_ERROR_INVALID_VALUE;
        have_range = r == EA_CUDA_SUCCESS;
    } else {
        r = d->PointerGetAttribute(&ord, EA_CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p);
        have_range = d->PointerGetAttribute(&start, EA_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p) == EA_CUDA_SUCCESS &&
                     d->PointerGetAttribute(&size, EA_CU_POINTER_ATTRIBUTE_RANGE_SIZE, p) == EA_CUDA_SUCCESS;
    }
    if (r == EA_CUDA_ERROR_INVALID_VALUE)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "%s: 0x%llx is not CUDA device memory (EDGEATTN_MEM_CUDA)", name,
                       (unsigned long long)p);
    if (r == EA_CUDA_SUCCESS && ord != s->dv.ordinal)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "%s: memory of CUDA device %d, this context runs on device %d",
                       name, ord, s->dv.ordinal);
    if (have_range && size > 0 && p >= start) {
        if (p - start > size || extent > size - (p - start))
            return ea_fail(msg, EDGEATTN_ERR_STRIDE,
                           "%s: the view needs %zu bytes from 0x%llx, its allocation ends %zu bytes after it", name,
                           extent, (unsigned long long)p, (size_t)(start + size - p));
        if (r == EA_CUDA_SUCCESS) { /* remember it (an allocation freed and reused is the caller's business) */
            s->seen_start[s->seen_next % 8] = start;
            s->seen_size[s->seen_next % 8] = size;
            s->seen_next++;
        }
    }
    return EDGEATTN_OK;
}

/* A host pointer the device can read and write in place: its device address, or 0. */
static uint64_t host_direct(cu_state *s, const void *h, size_t extent)
{
    ea_cu_driver *d = &s->drv;
    const CUdeviceptr p = (CUdeviceptr)(uintptr_t)h;
    CUdeviceptr dp = 0;
    if (d->PointerGetAttributes) { /* no API error for plain host memory */
        int attr[3] = {EA_CU_POINTER_ATTRIBUTE_DEVICE_POINTER, EA_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
                       EA_CU_POINTER_ATTRIBUTE_RANGE_SIZE};
        CUdeviceptr start = 0;
        size_t size = 0;
        void *data[3] = {&dp, &start, &size};
        if (d->PointerGetAttributes(3, attr, data, p) == EA_CUDA_SUCCESS && dp) {
            if (size > 0 && (p < start || p - start > size || extent > size - (p - start)))
                return 0; /* the view runs past the registered range: stage it */
            return dp;
        }
    } else if (d->PointerGetAttribute(&dp, EA_CU_POINTER_ATTRIBUTE_DEVICE_POINTER, p) == EA_CUDA_SUCCESS && dp) {
        CUdeviceptr start = 0;
        size_t size = 0;
        if (d->PointerGetAttribute(&start, EA_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p) == EA_CUDA_SUCCESS &&
            d->PointerGetAttribute(&size, EA_CU_POINTER_ATTRIBUTE_RANGE_SIZE, p) == EA_CUDA_SUCCESS && size > 0 &&
            (p < start || p - start > size || extent > size - (p - start)))
            return 0; /* the view runs past the registered range: stage it */
        return dp;
    }
    if (s->dv.integrated && s->dv.pageable)
        return p; /* Jetson: the GPU reads pageable host memory through the host page tables */
    return 0;
}

/* One row space of a copy: rows [b, h, n] of row_bytes each at base + (b*st0 + h*st1 + n*st2)*es. */
typedef struct cu_side {
    bool host;
    char *hp;       /* host base */
    CUdeviceptr dp; /* device base */
    int64_t st[3];  /* element strides */
} cu_side;

static edgeattn_status copy_1d(cu_state *s, const cu_side *src, size_t so, const cu_side *dst, size_t dof, size_t n,
                               char *msg)
{
    ea_cu_driver *d = &s->drv;
    d->count.copies++;
    CUresult r;
    const char *what;
    if (src->host && dst->host) {
        memmove(dst->hp + dof, src->hp + so, n);
        return EDGEATTN_OK;
    } else if (src->host) {
        r = d->MemcpyHtoDAsync(dst->dp + dof, src->hp + so, n, s->stream);
        what = "cuMemcpyHtoDAsync";
    } else if (dst->host) {
        r = d->MemcpyDtoHAsync(dst->hp + dof, src->dp + so, n, s->stream);
        what = "cuMemcpyDtoHAsync";
    } else {
        r = d->MemcpyDtoDAsync(dst->dp + dof, src->dp + so, n, s->stream);
        what = "cuMemcpyDtoDAsync";
    }
    if (r != EA_CUDA_SUCCESS)
        return cu_fail(d, msg, r, what);
    return EDGEATTN_OK;
}

static edgeattn_status copy_2d(cu_state *s, const cu_side *src, size_t so, size_t spitch, const cu_side *dst,
                               size_t dof, size_t dpitch, size_t width, size_t height, char *msg)
{
    if (height == 1 || (spitch == width && dpitch == width))
        return copy_1d(s, src, so, dst, dof, width * height, msg);
    /* row by row: pitches a 2-D copy refuses or reads differently (below the width, e.g. 0 for a
     * broadcast source: cuMemcpy2D takes pitch 0 as invalid), beyond the device's limit, host to host */
    if (spitch < width || dpitch < width || spitch > CU_MAX_PITCH || dpitch > CU_MAX_PITCH || (src->host && dst->host)) {
        for (size_t i = 0; i < height; i++) {
            edgeattn_status st = copy_1d(s, src, so + i * spitch, dst, dof + i * dpitch, width, msg);
            if (st != EDGEATTN_OK)
                return st;
        }
        return EDGEATTN_OK;
    }
    ea_cu_driver *d = &s->drv;
    ea_CUDA_MEMCPY2D p;
    memset(&p, 0, sizeof p);
    if (src->host) {
        p.srcMemoryType = EA_CU_MEMORYTYPE_HOST;
        p.srcHost = src->hp + so;
    } else {
        p.srcMemoryType = EA_CU_MEMORYTYPE_DEVICE;
        p.srcDevice = src->dp + so;
    }
    p.srcPitch = spitch;
    if (dst->host) {
        p.dstMemoryType = EA_CU_MEMORYTYPE_HOST;
        p.dstHost = dst->hp + dof;
    } else {
        p.dstMemoryType = EA_CU_MEMORYTYPE_DEVICE;
        p.dstDevice = dst->dp + dof;
    }
    p.dstPitch = dpitch;
    p.WidthInBytes = width;
    p.Height = height;
    d->count.copies++;
    const CUresult r = d->Memcpy2DAsync(&p, s->stream);
    if (r == EA_CUDA_ERROR_INVALID_VALUE && !src->host && !dst->host) {
        /* device-to-device 2-D copies may insist on cuMemAllocPitch pitches: row by row instead */
        for (size_t i = 0; i < height; i++) {
            edgeattn_status st = copy_1d(s, src, so + i * spitch, dst, dof + i * dpitch, width, msg);
            if (st != EDGEATTN_OK)
                return st;
        }
        return EDGEATTN_OK;
    }
    if (r != EA_CUDA_SUCCESS)
        return cu_fail(d, msg, r, "cuMemcpy2DAsync");
    return EDGEATTN_OK;
}

/* Copies rows [shape0, shape1, shape2] of row_bytes between two row spaces with any strides: the
 * dims are ordered by the source's strides, dims that step uniformly in both spaces are merged into
 * one 2-D copy, the others are looped over. */
static edgeattn_status copy_rows(cu_state *s, const int64_t shape[3], size_t es, size_t row_bytes, const cu_side *src,
                                 const cu_side *dst, char *msg)
{
    int dims[3], n = 0;
    for (int i = 0; i < 3; i++)
        if (shape[i] > 1)
            dims[n++] = i;
    for (int a = 1; a < n; a++) /* outermost (largest source stride) first */
        for (int b = a; b > 0 && src->st[dims[b]] > src->st[dims[b - 1]]; b--) {
            const int t = dims[b];
            dims[b] = dims[b - 1];
            dims[b - 1] = t;
        }
    size_t height = 1, sp = row_bytes, dp = row_bytes;
    int inner = n; /* dims[inner..n) form the 2-D copy */
    if (n > 0) {
        const int last = dims[n - 1];
        sp = (size_t)src->st[last] * es;
        dp = (size_t)dst->st[last] * es;
        height = (size_t)shape[last];
        inner = n - 1;
        while (inner > 0) {
            const int o = dims[inner - 1];
            if ((size_t)src->st[o] * es != sp * height || (size_t)dst->st[o] * es != dp * height)
                break;
            height *= (size_t)shape[o];
            inner--;
        }
    }
    /* loop over dims[0..inner) (at most two) */
    const int64_t n0 = inner > 0 ? shape[dims[0]] : 1, n1 = inner > 1 ? shape[dims[1]] : 1;
    for (int64_t i = 0; i < n0; i++)
        for (int64_t j = 0; j < n1; j++) {
            size_t so = 0, dof = 0;
            if (inner > 0) {
                so += (size_t)(i * src->st[dims[0]]) * es;
                dof += (size_t)(i * dst->st[dims[0]]) * es;
            }
            if (inner > 1) {
                so += (size_t)(j * src->st[dims[1]]) * es;
                dof += (size_t)(j * dst->st[dims[1]]) * es;
            }
            edgeattn_status st = copy_2d(s, src, so, sp, dst, dof, dp, row_bytes, height, msg);
            if (st != EDGEATTN_OK)
                return st;
        }
    return EDGEATTN_OK;
}

/* Shape [B, H, N] of the distinct rows of an input: 1 where it broadcasts (stride 0). */
static void rows_shape(const edgeattn_tensor *t, int64_t shape[3])
{
    for (int i = 0; i < 3; i++)
        shape[i] = t->stride[i] == 0 ? 1 : t->shape[i];
}

/* Dense strides for t's distinct rows in t's own dim order (outermost = largest stride); a dim that
 * broadcasts (stride 0) keeps stride 0, so a staged copy holds each distinct row once. */
static void dense_like(const edgeattn_tensor *t, int64_t st[3])
{
    int dims[3] = {0, 1, 2};
    for (int a = 1; a < 3; a++)
        for (int b = a; b > 0 && t->stride[dims[b]] > t->stride[dims[b - 1]]; b--) {
            const int x = dims[b];
            dims[b] = dims[b - 1];
            dims[b - 1] = x;
        }
    int64_t shape[3];
    rows_shape(t, shape);
    int64_t step = t->shape[3];
    for (int a = 2; a >= 0; a--) {
        st[dims[a]] = t->stride[dims[a]] == 0 ? 0 : step;
        step *= shape[dims[a]];
    }
}

/* A tensor argument of a call: where the kernel finds it, and how it gets there. */
typedef struct cu_arg {
    const edgeattn_tensor *t; /* NULL: absent */
    ea_cu_tensor d;
    bool staged;    /* host tensor copied through the pool */
    bool whole;     /* staged by one copy of its extent (strides kept) */
    size_t extent;
    CUdeviceptr stage;
} cu_arg;

/* Decides where t lives for the kernels (no copy yet). Staged tensors go to [stage, stage + cap). */
static edgeattn_status arg_prepare(cu_call *c, cu_arg *a, const char *name, const edgeattn_tensor *t, size_t stage_off,
                                   size_t cap, bool output)
{
    cu_state *s = c->s;
    memset(a, 0, sizeof *a);
    a->t = t;
    if (!t)
        return EDGEATTN_OK;
    const size_t es = ea_dtype_size(t->dtype);
    a->extent = view_extent(t);
    a->d.dtype = (int32_t)t->dtype;
    a->d.sb = t->stride[0];
    a->d.sh = t->stride[1];
    a->d.sn = t->stride[2];
    if (t->memory == EDGEATTN_MEM_CUDA) {
        const uint64_t p = (uint64_t)(uintptr_t)t->data;
        edgeattn_status st = check_device_ptr(s, name, p, a->extent, es, c->msg);
        if (st != EDGEATTN_OK)
            return st;
        a->d.ptr = p;
        return EDGEATTN_OK;
    }
    c->host = true;
    const uint64_t direct = host_direct(s, t->data, a->extent);
    if (direct && direct % es == 0) {
        a->d.ptr = direct;
        return EDGEATTN_OK;
    }
    if (s->L.no_staging)
        return ea_fail(c->msg, EDGEATTN_ERR_UNSUPPORTED,
                       "%s: host memory the GPU cannot address, and the context was created with "
                       "EDGEATTN_FLAG_DEVICE_TENSORS (no staging): pass device, pinned or managed memory", name);
    a->staged = true;
    a->stage = s->pool + stage_off;
    a->d.ptr = a->stage;
    bool aligned = true;
    for (int i = 0; i < 3; i++)
        if (t->shape[i] > 1 && ((size_t)t->stride[i] * es) % 16 != 0)
            aligned = false;
    if (!output && aligned && a->extent <= cap) {
        a->whole = true; /* one copy, the view's strides as they are */
        return EDGEATTN_OK;
    }
    int64_t rs[3];
    rows_shape(t, rs);
    size_t dense = (size_t)t->shape[3]; /* validated: the element count fits */
    for (int i = 0; i < 3; i++)
        dense *= (size_t)rs[i];
    if (dense > cap / es)
        return ea_fail(c->msg, EDGEATTN_ERR_CAPACITY,
                       "%s: a host tensor of %zu bytes exceeds the %zu-byte staging area of this context; pass it in "
                       "device memory (EDGEATTN_MEM_CUDA, e.g. inside edgeattn_device_region)",
                       name, dense * es, cap);
    int64_t st[3];
    dense_like(t, st);
    a->d.sb = st[0];
    a->d.sh = st[1];
    a->d.sn = st[2];
    return EDGEATTN_OK;
}

static cu_side side_host(const edgeattn_tensor *t)
{
    cu_side x;
    memset(&x, 0, sizeof x);
    x.host = true;
    x.hp = t->data;
    for (int i = 0; i < 3; i++)
        x.st[i] = t->stride[i];
    return x;
}

static cu_side side_dev(CUdeviceptr p, const ea_cu_tensor *d)
{
    cu_side x;
    memset(&x, 0, sizeof x);
    x.dp = p;
    x.st[0] = d->sb;
    x.st[1] = d->sh;
    x.st[2] = d->sn;
    return x;
}

/* Host -> staging for a staged input. */
static edgeattn_status arg_upload(cu_call *c, const cu_arg *a)
{
    if (!a->t || !a->staged)
        return EDGEATTN_OK;
    const edgeattn_tensor *t = a->t;
    const size_t es = ea_dtype_size(t->dtype);
    const cu_side src = side_host(t), dst = side_dev(a->stage, &a->d);
    if (a->whole)
        return copy_1d(c->s, &src, 0, &dst, 0, a->extent, c->msg);
    int64_t rs[3]; /* each distinct row once: the staged view broadcasts where t does */
    rows_shape(t, rs);
    return copy_rows(c->s, rs, es, (size_t)t->shape[3] * es, &src, &dst, c->msg);
}

/* Staging -> host for a staged output; q_lens (ragged decode, or NULL): only rows i < q_lens[b] of batch
 * row b, the others are not the call's to write. */
static edgeattn_status arg_download(cu_call *c, const cu_arg *a, const int32_t *q_lens)
{
    if (!a->t || !a->staged)
        return EDGEATTN_OK;
    const edgeattn_tensor *t = a->t;
    const size_t es = ea_dtype_size(t->dtype);
    const cu_side src = side_dev(a->stage, &a->d), dst = side_host(t);
    if (!q_lens)
        return copy_rows(c->s, t->shape, es, (size_t)t->shape[3] * es, &src, &dst, c->msg);
    for (int64_t b = 0; b < t->shape[0]; b++) {
        const int64_t shape[3] = {1, t->shape[1], q_lens[b]};
        cu_side sb = src, db = dst;
        sb.dp += (size_t)(b * a->d.sb) * es;
        db.hp += (size_t)(b * t->stride[0]) * es;
        edgeattn_status st = copy_rows(c->s, shape, es, (size_t)t->shape[3] * es, &sb, &db, c->msg);
        if (st != EDGEATTN_OK)
            return st;
    }
    return EDGEATTN_OK;
}

/* Uploads n bytes of per-sequence parameters from host memory to pool offset off (stream-ordered). */
static edgeattn_status upload_small(cu_call *c, size_t off, const void *src, size_t n)
{
    cu_state *s = c->s;
    ea_cu_driver *d = &s->drv;
    d->count.copies++;
    if (!s->up_host || n > CU_UP_SLOT_BYTES) {
        CU_TRY(d, c->msg, d->MemcpyHtoDAsync(s->pool + off, src, n, s->stream), "cuMemcpyHtoDAsync");
        return EDGEATTN_OK;
    }
    const unsigned i = s->up_next++ % CU_UP_SLOTS;
    if (s->up_used[i]) {
        CUresult r = d->EventQuery(s->up_ev[i]);
        if (r == EA_CUDA_ERROR_NOT_READY) { /* 16 uploads queued ahead of the GPU: wait for the oldest */
            d->count.throttle++;
            r = d->EventSynchronize_(s->up_ev[i]);
        }
        if (r != EA_CUDA_SUCCESS)
            return cu_fail(d, c->msg, r, "cuEventQuery (upload slot)");
    }
    char *slot = s->up_host + (size_t)i * CU_UP_SLOT_BYTES;
    memcpy(slot, src, n);
    CU_TRY(d, c->msg, d->MemcpyHtoDAsync(s->pool + off, slot, n, s->stream), "cuMemcpyHtoDAsync");
    CU_TRY(d, c->msg, d->EventRecord(s->up_ev[i], s->stream), "cuEventRecord");
    s->up_used[i] = true;
    return EDGEATTN_OK;
}

/* Uploads n bytes of page tables from host memory to pool offset off (stream-ordered; src may change
 * once this returns): through the pinned table slots, each reused once the copy that read it has run. */
static edgeattn_status upload_table(cu_call *c, size_t off, const void *src, size_t n)
{
    cu_state *s = c->s;
    ea_cu_driver *d = &s->drv;
    d->count.copies++;
    if (!s->tab_host) {
        CU_TRY(d, c->msg, d->MemcpyHtoDAsync(s->pool + off, src, n, s->stream), "cuMemcpyHtoDAsync");
        return EDGEATTN_OK;
    }
    const unsigned i = s->tab_next++ % CU_TAB_SLOTS;
    if (s->tab_used[i]) {
        CUresult r = d->EventQuery(s->tab_ev[i]);
        if (r == EA_CUDA_ERROR_NOT_READY) { /* CU_TAB_SLOTS tables queued ahead of the GPU: wait for the oldest */
            d->count.throttle++;
            r = d->EventSynchronize_(s->tab_ev[i]);
        }
        if (r != EA_CUDA_SUCCESS)
            return cu_fail(d, c->msg, r, "cuEventQuery (page-table slot)");
    }
    char *slot = s->tab_host + (size_t)i * s->L.tab_bytes;
    memcpy(slot, src, n);
    CU_TRY(d, c->msg, d->MemcpyHtoDAsync(s->pool + off, slot, n, s->stream), "cuMemcpyHtoDAsync");
    CU_TRY(d, c->msg, d->EventRecord(s->tab_ev[i], s->stream), "cuEventRecord");
    s->tab_used[i] = true;
    return EDGEATTN_OK;
}

/* Paged cache: the page tables of (layer, ids[b]) for b < B into tab_build, `stride` entries a row (the
 * first entries of each sequence's table): every entry a slot of the call may be in (ea_kv_table_reach).
 * n_new / N: the rows an append adds (NULL and 0 for a decode). Returns stride. */
static int32_t build_tables(cu_state *s, const ea_kv_cache *kv, int32_t layer, const int32_t *ids, int32_t B,
                            const int32_t *n_new, int32_t N)
{
    int32_t stride = 1;
    for (int32_t b = 0; b < B; b++) {
        const int32_t need = ea_kv_table_reach(kv, kv->total[ea_kv_idx(kv, layer, ids[b])] + (n_new ? n_new[b] : N));
        stride = need > stride ? need : stride;
    }
    for (int32_t b = 0; b < B; b++)
        memcpy(s->tab_build + (size_t)b * (size_t)stride, ea_kv_table(kv, layer, ids[b]), sizeof(int32_t) * (size_t)stride);
    return stride;
}

/* The paged description of the pool's K/V for the kernels (table at pool offset off, stride entries a row). */
static ea_cu_pages pages_args(const cu_state *s, const ea_kv_cache *kv, size_t off, int32_t stride)
{
    ea_cu_pages p;
    memset(&p, 0, sizeof p);
    p.table = s->pool + off;
    p.page_elems = (int64_t)kv->page_elems;
    p.page_shift = kv->page_shift;
    p.table_stride = stride;
    return p;
}

static edgeattn_status run_launches(cu_call *c, const ea_cu_launch *l, int n, void *args)
{
    cu_state *s = c->s;
    for (int i = 0; i < n; i++) {
        if (l[i].kernel < 0 || (size_t)l[i].kernel >= s->nfn || !s->fn[l[i].kernel])
            return ea_fail(c->msg, EDGEATTN_ERR_UNSUPPORTED, "cuda: kernel %d is not available on %s (sm_%d)",
                           (int)l[i].kernel, s->dv.name, s->dv.cc);
    }
    for (int i = 0; i < n; i++) {
        const CUresult r = ea_cu_launch_kernel(&s->drv, s->fn[l[i].kernel], l[i].grid, l[i].block, l[i].smem, s->stream, args);
        if (r != EA_CUDA_SUCCESS) {
            size_t cnt = 0;
            const ea_cu_kernel_desc *tab = ea_cu_kernel_table(&cnt);
            return ea_fail(c->msg, EDGEATTN_ERR_SYSTEM, "cuda: launch of %s failed: %s", tab[l[i].kernel].name,
                           ea_cu_error_name(&s->drv, r));
        }
    }
    return EDGEATTN_OK;
}

/* The RoPE of the context (ctx->rope, resolved by core at the first append into an empty cache) as the
 * kernels take it; the pool's table is uploaded when it differs from what was sent last (once per
 * cache shape). style NONE: *out is all zero (no rotation). */
static edgeattn_status rope_args(cu_call *c, const ea_rope *r, ea_cu_rope *out)
{
    cu_state *s = c->s;
    memset(out, 0, sizeof *out);
    if (!r || r->style == EDGEATTN_ROPE_NONE || r->dim <= 0)
        return EDGEATTN_OK;
    const size_t n = (size_t)(r->dim / 2) * sizeof(double);
    if (s->rope_dim != r->dim || memcmp(s->rope_shadow, r->inv_freq, n) != 0) {
        s->rope_dim = 0;
        edgeattn_status st = upload_small(c, s->L.rope, r->inv_freq, n);
        if (st != EDGEATTN_OK)
            return st;
        memcpy(s->rope_shadow, r->inv_freq, n);
        s->rope_dim = r->dim;
    }
    out->inv_freq = s->pool + s->L.rope;
    out->pos_scale = r->pos_scale;
    out->style = r->style;
    out->dim = r->dim;
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- attention and decode */

/* Linformer (call->linformer, validated by core): E and F placed for the kernels (host ones staged, up to
 * 64 MiB each as the bias; larger ones must be device memory), and the projection's
 * arguments: K' and V' [B, Hkv, k, D] in the pool, in K's 16-bit type for the tensor cores, else F32. */
static edgeattn_status lr_prepare(cu_call *c, const ea_attn_call *call, const cu_arg *k, const cu_arg *v,
                                  ea_cu_proj_args *pa, cu_arg *e, cu_arg *f)
{
    cu_state *s = c->s;
    const cu_layout *L = &s->L;
    const edgeattn_linformer *lf = call->linformer;
    edgeattn_status st;
    if ((st = arg_prepare(c, e, "linformer: e", lf->e, L->e_stage, L->ef_bytes, false)) != EDGEATTN_OK ||
        (st = arg_prepare(c, f, "linformer: f", lf->f, L->f_stage, L->ef_bytes, false)) != EDGEATTN_OK)
        return st;
    memset(pa, 0, sizeof *pa);
    pa->e = e->d;
    pa->f = f->d;
    if (lf->e->shape[0] == 1)
        pa->e.sb = 0;
    if (lf->e->shape[1] == 1)
        pa->e.sh = 0;
    if (lf->f->shape[0] == 1)
        pa->f.sb = 0;
    if (lf->f->shape[1] == 1)
        pa->f.sh = 0;
    pa->k = k->d;
    pa->v = v->d;
    pa->B = call->B;
    pa->Hkv = call->Hkv;
    pa->rows = (int32_t)lf->e->shape[2];
    pa->N = call->Nkv;
    pa->D = call->D;
    const int cc = s->dv.di.cc_major * 10 + s->dv.di.cc_minor;
    /* F16 K/V: K' and V' in F16 for the tensor cores (one rounding, 2^-11 relative); BF16's 2^-8 would
     * take the result past the BF16 bound, so BF16 (and F32) K/V give F32 K' and V' */
    const bool t16 = cc >= 80 && k->d.dtype == EDGEATTN_F16 && v->d.dtype == k->d.dtype;
    const int32_t odt = t16 ? k->d.dtype : EDGEATTN_F32;
    const size_t es = ea_dtype_size((edgeattn_dtype)odt);
    if ((size_t)pa->B * (size_t)pa->Hkv * (size_t)pa->rows * (size_t)pa->D * es > L->lr_bytes)
        return ea_fail(c->msg, EDGEATTN_ERR_INTERNAL, "linformer: projected rows exceed the planned workspace");
    ea_cu_tensor o;
    memset(&o, 0, sizeof o);
    o.dtype = odt;
    o.sn = pa->D;
    o.sh = (int64_t)pa->rows * pa->D;
    o.sb = (int64_t)pa->Hkv * o.sh;
    pa->ko = pa->vo = o;
    pa->ko.ptr = s->pool + L->lr_k;
    pa->vo.ptr = s->pool + L->lr_v;
    return EDGEATTN_OK;
}

/* Top-k decode: the keys a sequence of `total` tokens reads (kernel_abi.h ea_cu_topk): the chosen blocks,
 * the newest (partial) one last; every key when the budget covers every block. */
static int32_t topk_len(const ea_kv_cache *kv, int32_t topk_tokens, int64_t total)
{
    const int64_t bs = kv->sblk, nblk = (total + bs - 1) / bs;
    int64_t keep = ((int64_t)topk_tokens + bs - 1) / bs;
    keep = keep < 2 ? 2 : keep;
    if (keep >= nblk)
        return (int32_t)total;
    return (int32_t)((keep - 1) * bs + (total - (nblk - 1) * bs));
}

/* The block summaries of a layer for the kernels (kernel_abi.h ea_cu_summ). */
static ea_cu_summ summ_args(const cu_state *s, const ea_kv_cache *kv, int32_t layer)
{
    ea_cu_summ m;
    memset(&m, 0, sizeof m);
    const size_t per_layer = (size_t)kv->max_batch * (size_t)kv->max_heads * (size_t)s->L.nsblk * 2u * (size_t)kv->max_dim;
    m.summ = s->pool + s->L.summ + (size_t)layer * per_layer * sizeof(float);
    m.shift = 0;
    while ((1 << m.shift) < kv->sblk)
        m.shift++;
    m.nblk = s->L.nsblk;
    m.heads_max = kv->max_heads;
    m.dim_max = kv->max_dim;
    return m;
}

static edgeattn_status attn_body(cu_call *c, edgeattn_context *ctx, const ea_attn_call *call)
{
    cu_state *s = c->s;
    const cu_layout *L = &s->L;
    edgeattn_status st;
    cu_arg q, k, v, out, bias, lse, e, f;
    ea_cu_proj_args pa;
    memset(&e, 0, sizeof e);
    memset(&f, 0, sizeof f);
    memset(&pa, 0, sizeof pa);
    if ((st = arg_prepare(c, &q, "q", call->q, L->q_stage, L->q_bytes, false)) != EDGEATTN_OK ||
        (st = arg_prepare(c, &out, "out", call->out, L->out_stage, L->out_bytes, true)) != EDGEATTN_OK ||
        (st = arg_prepare(c, &lse, "lse", call->lse, L->lse_stage, L->lse_bytes, true)) != EDGEATTN_OK)
        return st;
    ea_cu_attn_args a;
    memset(&a, 0, sizeof a);
    const ea_kv_cache *kv = call->cache;
    int32_t tab_stride = 0; /* paged decode: entries per row of the call's page tables */
    if (!call->decode) {
        if ((st = arg_prepare(c, &k, "k", call->k, L->k_stage, L->kvs_bytes, false)) != EDGEATTN_OK ||
            (st = arg_prepare(c, &v, "v", call->v, L->v_stage, L->kvs_bytes, false)) != EDGEATTN_OK ||
            (st = arg_prepare(c, &bias, "bias", call->bias, L->bias_stage, L->bias_bytes, false)) != EDGEATTN_OK)
            return st;
        a.k = k.d;
        a.v = v.d;
        if (call->linformer && (st = lr_prepare(c, call, &k, &v, &pa, &e, &f)) != EDGEATTN_OK)
            return st;
        if (call->bias) {
            a.bias = bias.d;
            if (call->bias->shape[0] == 1)
                a.bias.sb = 0;
            if (call->bias->shape[1] == 1)
                a.bias.sh = 0;
        }
        a.Nkv = call->Nkv;
        a.ring_cap = 0;
        if (call->linformer) { /* attention over the k projected rows */
            a.k = pa.ko;
            a.v = pa.vo;
            a.Nkv = pa.rows;
        }
    } else {
        memset(&k, 0, sizeof k);
        memset(&v, 0, sizeof v);
        memset(&bias, 0, sizeof bias);
        /* the call's layer; batch row b reads cache sequence seq_ids[b] (ea_cu_seq.kv_b); a paged cache:
         * the pool's pages through the page tables of the call's sequences, row b = seq_ids[b]'s */
        const int64_t dim = kv->dim, cap = kv->cap;
        if (kv->page > 0) {
            tab_stride = build_tables(s, kv, call->layer, call->seq_ids, call->B, NULL, 0);
            a.pages = pages_args(s, kv, L->tab, tab_stride);
            a.k.ptr = s->pool + L->kv_k;
            a.v.ptr = s->pool + L->kv_v;
            a.k.sb = a.v.sb = 0;
            a.k.sh = a.v.sh = (int64_t)kv->page * dim;
        } else {
            const size_t lay = (size_t)call->layer * L->kv_layer;
            a.k.ptr = s->pool + L->kv_k + lay;
            a.v.ptr = s->pool + L->kv_v + lay;
            a.k.sb = a.v.sb = (int64_t)kv->heads * cap * dim;
            a.k.sh = a.v.sh = cap * dim;
        }
        a.k.sn = a.v.sn = dim;
        a.k.dtype = a.v.dtype = (int32_t)kv->dtype;
        int32_t nmax = 0;
        for (int32_t b = 0; b < call->B; b++) {
            const size_t at = ea_kv_idx(kv, call->layer, call->seq_ids[b]);
            const int32_t held = call->topk_tokens > 0 ? topk_len(kv, call->topk_tokens, kv->total[at]) : kv->held[at];
            nmax = held > nmax ? held : nmax;
        }
        a.Nkv = nmax;
        if (call->topk_tokens > 0) {
            if (call->window_left >= 0 || call->window_right >= 0)
                return ea_fail(c->msg, EDGEATTN_ERR_UNSUPPORTED,
                               "decode: topk_tokens with a params window is not served by the cuda backend");
            if ((size_t)call->group * (size_t)call->D * sizeof(float) > 48u * 1024u)
                return ea_fail(c->msg, EDGEATTN_ERR_UNSUPPORTED,
                               "decode: topk_tokens with %d query heads per KV head at head dim %d: the cuda backend "
                               "scores at most 48 KiB of queries per KV head", (int)call->group, (int)call->D);
            a.topk.sel = s->pool + L->tk_sel;
            a.topk.shift = summ_args(s, kv, call->layer).shift;
            a.topk.stride = L->nsblk;
        }
        a.ring_cap = kv->cap;
        a.ring_sinks = kv->sinks;
    }
    a.q = q.d;
    a.out = out.d;
    if (call->lse) {
        a.lse = lse.d;
    }
    a.B = call->B;
    a.Hq = call->Hq;
    a.Hkv = call->Hkv;
    a.Nq = call->Nq;
    a.D = call->D;
    a.group = call->group;
    a.scale = call->scale;
    a.softcap = call->softcap;
    a.causal = call->causal ? 1 : 0;
    a.window_left = call->window_left;
    a.window_right = call->window_right;
    const edgeattn_block_mask *bm = call->block_mask;
    size_t rp_bytes = 0, ci_bytes = 0;
    if (bm) { /* validated by core: row pointers index col_idx[0, their largest) */
        const int32_t nrb = (int32_t)((call->Nq + bm->block_q - 1) / bm->block_q);
        const size_t nrp = (size_t)bm->batch * (size_t)bm->heads * (size_t)(nrb + 1);
        int32_t used = 0;
        for (size_t i = 0; i < nrp; i++)
            used = bm->row_ptr[i] > used ? bm->row_ptr[i] : used;
        rp_bytes = nrp * sizeof(int32_t);
        ci_bytes = (size_t)used * sizeof(int32_t);
        if (rp_bytes > L->mask_rp_bytes || ci_bytes > L->mask_ci_bytes)
            return ea_fail(c->msg, EDGEATTN_ERR_CAPACITY,
                           "block_mask: %zu row pointers and %d column indices exceed the device area planned for "
                           "every block of max_batch x max_kv_heads patterns (%zu and %zu)",
                           nrp, (int)used, L->mask_rp_bytes / 4, L->mask_ci_bytes / 4);
        a.bm.row_ptr = s->pool + L->mask_rp;
        a.bm.col_idx = s->pool + L->mask_ci;
        a.bm.block_q = bm->block_q;
        a.bm.nrb = nrb;
        a.bm.batch = bm->batch;
        a.bm.heads = bm->heads;
    }
    const bool need_seq = call->decode || call->kv_lens;
    a.seq = need_seq ? s->pool + L->seq : 0;
    ea_cu_launch l[2];
    const int nl = ea_cu_plan_attention(&s->dv.di, &a, s->pool + L->ws, L->ws_bytes, l);
    if (nl <= 0)
        return ea_fail(c->msg, EDGEATTN_ERR_UNSUPPORTED,
                       "cuda: no kernel serves this call on %s (sm_%d): D %d, q %s, k/v %s, out %s", s->dv.name,
                       s->dv.cc, (int)call->D, ea_dtype_name(call->q->dtype), ea_dtype_name(call->kv_dtype),
                       ea_dtype_name(call->out->dtype));
    /* Everything decided: now copy and launch. */
    if ((st = arg_upload(c, &q)) != EDGEATTN_OK || (st = arg_upload(c, &k)) != EDGEATTN_OK ||
        (st = arg_upload(c, &v)) != EDGEATTN_OK || (st = arg_upload(c, &bias)) != EDGEATTN_OK ||
        (st = arg_upload(c, &e)) != EDGEATTN_OK || (st = arg_upload(c, &f)) != EDGEATTN_OK)
        return st;
    if (call->linformer) { /* K' = E K, V' = F V first */
        ea_cu_launch pl;
        if (!ea_cu_plan_proj(&s->dv.di, &pa, &pl))
            return ea_fail(c->msg, EDGEATTN_ERR_UNSUPPORTED, "linformer: no projection kernel serves this call");
        if ((st = run_launches(c, &pl, 1, &pa)) != EDGEATTN_OK)
            return st;
    }
    if (call->decode && (st = rope_args(c, call->rope, &a.rope)) != EDGEATTN_OK)
        return st;
    if (bm && ((st = upload_small(c, L->mask_rp, bm->row_ptr, rp_bytes)) != EDGEATTN_OK ||
               (ci_bytes > 0 && (st = upload_small(c, L->mask_ci, bm->col_idx, ci_bytes)) != EDGEATTN_OK)))
        return st;
    if (tab_stride > 0) { /* the page tables, unless the device holds these already */
        const size_t nb = (size_t)call->B * (size_t)tab_stride * sizeof(int32_t);
        if (s->tab_rows < call->B || s->tab_stride != tab_stride || memcmp(s->tab_build, s->tab_shadow, nb) != 0) {
            s->tab_rows = 0;
            if ((st = upload_table(c, L->tab, s->tab_build, nb)) != EDGEATTN_OK)
                return st;
            int32_t *t = s->tab_shadow;
            s->tab_shadow = s->tab_build;
            s->tab_build = t;
            s->tab_rows = call->B;
            s->tab_stride = tab_stride;
        }
    }
    if (need_seq) {
        ea_cu_seq buf[CU_CHUNK];
        for (int32_t b0 = 0; b0 < call->B; b0 += CU_CHUNK) {
            const int32_t n = call->B - b0 < CU_CHUNK ? call->B - b0 : CU_CHUNK;
            for (int32_t i = 0; i < n; i++) {
                const int32_t b = b0 + i;
                memset(&buf[i], 0, sizeof buf[i]);
                if (call->decode) {
                    const size_t at = ea_kv_idx(kv, call->layer, call->seq_ids[b]);
                    /* key_pos0: the first held position, or with sinks the evicted count (held keys are
                     * numbered consecutively; the queries' RoPE positions stay true); slot0: the ring
                     * offset of the first ring key held (kernel_abi.h) */
                    const int64_t total = kv->total[at],
                                  held = call->topk_tokens > 0 ? topk_len(kv, call->topk_tokens, total) : kv->held[at],
                                  first = total - held;
                    buf[i].key_pos0 = first;
                    buf[i].kv_len = (int32_t)held;
                    if (call->topk_tokens > 0) /* the chosen blocks' keys (ea_cu_topk), counted from 0 */
                        buf[i].slot0 = 0;
                    else if (kv->sinks > 0)
                        buf[i].slot0 = total > kv->sinks ? (int32_t)((ea_kv_ring_first(kv, total, (int32_t)held) -
                                                                      kv->sinks) % (kv->cap - kv->sinks))
                                                         : 0;
                    else
                        buf[i].slot0 = (int32_t)(first % kv->cap);
                    buf[i].kv_b = call->seq_ids[b];
                    buf[i].q_len = call->q_lens ? call->q_lens[b] : call->Nq;
                } else {
                    buf[i].kv_len = call->kv_lens[b];
                    buf[i].kv_b = b;
                    buf[i].q_len = call->Nq;
                }
            }
            const size_t nb = (size_t)n * sizeof(ea_cu_seq);
            if (b0 + n <= s->seq_valid && memcmp(buf, s->seq_shadow + b0, nb) == 0)
                continue; /* the device already holds these */
            if ((st = upload_small(c, L->seq + (size_t)b0 * sizeof(ea_cu_seq), buf, nb)) != EDGEATTN_OK) {
                s->seq_valid = 0;
                return st;
            }
            memcpy(s->seq_shadow + b0, buf, nb);
            if (b0 + n > s->seq_valid)
                s->seq_valid = b0 + n;
        }
    }
    if (call->topk_tokens > 0) { /* score the blocks and choose, then the decode reads the chosen ones */
        ea_cu_topk_args ta;
        memset(&ta, 0, sizeof ta);
        ta.q = a.q;
        ta.seq = a.seq;
        ta.score = s->pool + L->tk_score;
        ta.sel = a.topk.sel;
        ta.B = a.B;
        ta.Hq = a.Hq;
        ta.Hkv = a.Hkv;
        ta.D = a.D;
        ta.keep = (int32_t)(((int64_t)call->topk_tokens + kv->sblk - 1) / kv->sblk);
        ta.keep = ta.keep < 2 ? 2 : ta.keep;
        ta.stride = L->nsblk;
        ta.rope = a.rope;
        ta.sm = summ_args(s, kv, call->layer);
        int32_t mb = 0;
        for (int32_t b = 0; b < call->B; b++) {
            const int64_t t = kv->total[ea_kv_idx(kv, call->layer, call->seq_ids[b])];
            const int32_t nb = (int32_t)((t + kv->sblk - 1) / kv->sblk);
            mb = nb > mb ? nb : mb;
        }
        ea_cu_launch tl[2];
        ea_cu_plan_topk(&s->dv.di, &ta, mb, tl);
        if ((st = run_launches(c, tl, 2, &ta)) != EDGEATTN_OK)
            return st;
    }
    if ((st = run_launches(c, l, nl, &a)) != EDGEATTN_OK)
        return st;
    (void)ctx;
    if ((st = arg_download(c, &out, call->q_lens)) != EDGEATTN_OK ||
        (st = arg_download(c, &lse, call->q_lens)) != EDGEATTN_OK)
        return st;
    return EDGEATTN_OK;
}

static edgeattn_status cuda_attention(edgeattn_context *ctx, const ea_attn_call *call)
{
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    st = attn_body(&c, ctx, call);
    return call_end(&c, st);
}

/* ---------------------------------------------------------------- KV cache */

/* One source of an append: where the kernel could read it in place (0: it must be staged). */
static edgeattn_status kv_source(cu_call *c, const char *name, const edgeattn_tensor *t, uint64_t *direct)
{
    const size_t es = ea_dtype_size(t->dtype), ext = view_extent(t);
    if (t->memory == EDGEATTN_MEM_CUDA) {
        *direct = (uint64_t)(uintptr_t)t->data;
        return check_device_ptr(c->s, name, *direct, ext, es, c->msg);
    }
    c->host = true;
    *direct = host_direct(c->s, t->data, ext);
    if (*direct % es != 0)
        *direct = 0;
    return EDGEATTN_OK;
}

/* The rows of batch row b of an append that the cache keeps (ea_kv_kept): [0, *a1) and [*b0, n); returns
 * their count. */
static int32_t kv_kept_rows(const ea_kv_cache *kv, int32_t layer, int32_t seq, int32_t n, int32_t *a1, int32_t *b0)
{
    int64_t x, y;
    ea_kv_kept(kv, kv->total[ea_kv_idx(kv, layer, seq)], n, &x, &y);
    *a1 = (int32_t)x;
    *b0 = (int32_t)y;
    return (int32_t)(x + n - y);
}

/* kv_write: for b < B, the rows of k/v batch row b the cache keeps (kv_kept_rows: a ring keeps only the
 * last rows it has slots for, a sinks cache its sinks too) go to layer `layer`, sequence ids[b], at the
 * slots of their positions total + r (ea_kv_slot), keys rotated at those positions. Sources the kernel can
 * read in place are used as they are; others are staged (the kept rows of each batch row, each distinct
 * row once where the source broadcasts). */
static edgeattn_status kv_body(cu_call *c, edgeattn_context *ctx, int32_t layer, const int32_t *ids,
                               const edgeattn_tensor *k, const edgeattn_tensor *v, const int32_t *n_new)
{
    cu_state *s = c->s;
    const cu_layout *L = &s->L;
    const ea_kv_cache *kv = &ctx->kv;
    const int32_t B = (int32_t)k->shape[0], H = (int32_t)k->shape[1], N = (int32_t)k->shape[2],
                  D = (int32_t)k->shape[3], cap = kv->cap;
    edgeattn_status st;
    int32_t rmax = 0, a1, b0; /* the most rows a sequence keeps */
    for (int32_t b = 0; b < B; b++) {
        const int32_t keep = kv_kept_rows(kv, layer, ids[b], n_new ? n_new[b] : N, &a1, &b0);
        rmax = keep > rmax ? keep : rmax;
    }
    if (rmax == 0)
        return EDGEATTN_OK;
    const edgeattn_tensor *t[2] = {k, v};
    uint64_t direct[2];
    if ((st = kv_source(c, "kv_append: k", k, &direct[0])) != EDGEATTN_OK ||
        (st = kv_source(c, "kv_append: v", v, &direct[1])) != EDGEATTN_OK)
        return st;
    /* Both in place, or both staged (the kernel takes one row range per sequence for both): the kept
     * rows of each sequence, [B][H][rmax][D] in the source dtype (H or the rows 1 where the source
     * broadcasts over them, the staged view then broadcasting too). */
    const bool staged = !direct[0] || !direct[1];
    if (staged && L->no_staging)
        return ea_fail(c->msg, EDGEATTN_ERR_UNSUPPORTED,
                       "kv_append: host k/v the GPU cannot address, and the context was created with "
                       "EDGEATTN_FLAG_DEVICE_TENSORS (no staging): pass device, pinned or managed memory");
    ea_cu_tensor d[2];
    const size_t stage[2] = {L->k_stage, L->v_stage};
    for (int i = 0; i < 2; i++) {
        memset(&d[i], 0, sizeof d[i]);
        d[i].dtype = (int32_t)t[i]->dtype;
        if (!staged) {
            d[i].ptr = direct[i];
            d[i].sb = t[i]->stride[0];
            d[i].sh = t[i]->stride[1];
            d[i].sn = t[i]->stride[2];
            continue;
        }
        const size_t es = ea_dtype_size(t[i]->dtype);
        const int64_t hs = t[i]->stride[1] == 0 ? 1 : H, rs = t[i]->stride[2] == 0 ? 1 : rmax;
        if ((size_t)B * (size_t)hs * (size_t)rs * (size_t)D > L->kvs_bytes / es)
            return ea_fail(c->msg, EDGEATTN_ERR_CAPACITY, "kv_append: %d x %d x %d rows exceed the staging area", (int)B,
                           (int)H, (int)rmax);
        d[i].ptr = s->pool + stage[i];
        d[i].sn = t[i]->stride[2] == 0 ? 0 : D;
        d[i].sh = t[i]->stride[1] == 0 ? 0 : rs * D;
        d[i].sb = hs * rs * D;
    }
    const size_t lay = kv->page > 0 ? 0 : (size_t)layer * L->kv_layer; /* paged: the pool's pages */
    ea_cu_kv_write_args a;
    memset(&a, 0, sizeof a);
    a.k_src = d[0];
    a.v_src = d[1];
    a.k_dst = s->pool + L->kv_k + lay;
    a.v_dst = s->pool + L->kv_v + lay;
    int32_t tab_stride = 0;
    if (kv->page > 0) { /* the page tables of the append's sequences (core mapped every page it writes) */
        tab_stride = build_tables(s, kv, layer, ids, B, n_new, N);
        a.pages = pages_args(s, kv, L->wtab, tab_stride);
    }
    a.rows = s->pool + L->rows;
    a.B = B;
    a.H = H;
    a.D = D;
    a.N = staged ? rmax : N;
    a.cache_heads = kv->heads; /* core set it for this append */
    a.ring_cap = cap;
    a.sinks = kv->sinks;
    a.staged = staged ? 1 : 0;
    a.cache_dtype = (int32_t)kv->dtype;
    ea_cu_launch l;
    ea_cu_plan_kv_write(&s->dv.di, &a, &l);
    if (l.kernel < 0 || (size_t)l.kernel >= s->nfn || !s->fn[l.kernel])
        return ea_fail(c->msg, EDGEATTN_ERR_UNSUPPORTED, "kv_append: the kv_write kernel is not available");
    if (staged) { /* copies: the kept rows of each sequence, from host or device memory */
        for (int i = 0; i < 2; i++) {
            const size_t es = ea_dtype_size(t[i]->dtype);
            for (int32_t b = 0; b < B; b++) {
                const int32_t n = n_new ? n_new[b] : N;
                (void)kv_kept_rows(kv, layer, ids[b], n, &a1, &b0);
                for (int part = 0; part < 2; part++) { /* [0, a1) to staged rows [0, a1), [b0, n) after them */
                    const int32_t r0 = part ? b0 : 0, r1 = part ? n : a1, at = part ? a1 : 0;
                    if (r1 - r0 <= 0 || (part && t[i]->stride[2] == 0 && a1 > 0))
                        continue; /* (a row broadcast over N: staged once) */
                    const int64_t shape[3] = {1, t[i]->stride[1] == 0 ? 1 : H, t[i]->stride[2] == 0 ? 1 : r1 - r0};
                    const size_t off = (size_t)(b * t[i]->stride[0] + r0 * t[i]->stride[2]) * es;
                    cu_side src;
                    if (t[i]->memory == EDGEATTN_MEM_CUDA) {
                        memset(&src, 0, sizeof src);
                        src.dp = (uint64_t)(uintptr_t)t[i]->data + off;
                        for (int j = 0; j < 3; j++)
                            src.st[j] = t[i]->stride[j];
                    } else {
                        src = side_host(t[i]);
                        src.hp += off;
                    }
                    const cu_side dst =
                        side_dev(d[i].ptr + ((size_t)b * (size_t)d[i].sb + (size_t)at * (size_t)d[i].sn) * es, &d[i]);
                    if ((st = copy_rows(s, shape, es, (size_t)D * es, &src, &dst, c->msg)) != EDGEATTN_OK)
                        return st;
                }
            }
        }
    }
    ea_cu_kv_row rows[CU_CHUNK];
    for (int32_t c0 = 0; c0 < B; c0 += CU_CHUNK) {
        const int32_t cnt = B - c0 < CU_CHUNK ? B - c0 : CU_CHUNK;
        for (int32_t i = 0; i < cnt; i++) {
            const int32_t b = c0 + i;
            memset(&rows[i], 0, sizeof rows[i]);
            rows[i].n = kv_kept_rows(kv, layer, ids[b], n_new ? n_new[b] : N, &a1, &b0);
            rows[i].pos0 = kv->total[ea_kv_idx(kv, layer, ids[b])];
            rows[i].at = a1;
            rows[i].jump = b0 - a1;
            rows[i].seq = ids[b];
        }
        if ((st = upload_small(c, L->rows + (size_t)c0 * sizeof(ea_cu_kv_row), rows, (size_t)cnt * sizeof(ea_cu_kv_row))) !=
            EDGEATTN_OK)
            return st;
    }
    if ((st = rope_args(c, &ctx->rope, &a.rope)) != EDGEATTN_OK)
        return st;
    if (tab_stride > 0 &&
        (st = upload_table(c, L->wtab, s->tab_build, (size_t)B * (size_t)tab_stride * sizeof(int32_t))) != EDGEATTN_OK)
        return st;
    if ((st = run_launches(c, &l, 1, &a)) != EDGEATTN_OK || kv->sblk <= 0)
        return st;
    /* block summaries: every block the rows touched, recomputed from the stored rows */
    ea_cu_summary_args sa;
    memset(&sa, 0, sizeof sa);
    sa.k = a.k_dst;
    sa.rows = a.rows;
    sa.B = B;
    sa.H = H;
    sa.D = D;
    sa.cache_heads = kv->heads;
    sa.cap = cap;
    sa.cache_dtype = (int32_t)kv->dtype;
    sa.sm = summ_args(s, kv, layer);
    sa.pages = a.pages;
    int32_t blocks = 0;
    for (int32_t b = 0; b < B; b++) {
        const int64_t p0 = kv->total[ea_kv_idx(kv, layer, ids[b])], n = n_new ? n_new[b] : N;
        const int32_t nb = n > 0 ? (int32_t)(((p0 + n - 1) / kv->sblk) - p0 / kv->sblk + 1) : 0;
        blocks = nb > blocks ? nb : blocks;
    }
    ea_cu_launch sl;
    ea_cu_plan_summary(&s->dv.di, &sa, blocks, &sl);
    return run_launches(c, &sl, 1, &sa);
}

static edgeattn_status cuda_kv_write(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids,
                                     const edgeattn_tensor *k, const edgeattn_tensor *v, const int32_t *n_new)
{
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    st = kv_body(&c, ctx, layer, seq_ids, k, v, n_new);
    return call_end(&c, st);
}

/* Bytes of one (layer, sequence) of K (or V) and its device address. */
static size_t kv_seq_bytes(const edgeattn_context *ctx)
{
    const ea_kv_cache *kv = &ctx->kv;
    return (size_t)kv->heads * (size_t)kv->cap * (size_t)kv->dim * ea_dtype_size(kv->dtype);
}

static CUdeviceptr kv_seq_base(const cu_state *s, const edgeattn_context *ctx, bool value, int32_t layer, int32_t seq)
{
    return s->pool + (value ? s->L.kv_v : s->L.kv_k) + (size_t)layer * s->L.kv_layer + (size_t)seq * kv_seq_bytes(ctx);
}

/* kv_fork: every slot of (layer, src) to (layer, dst), K and V: two queued device copies (contiguous
 * cache; a paged one shares pages instead). */
static edgeattn_status cuda_kv_copy(edgeattn_context *ctx, int32_t layer, int32_t src, int32_t dst)
{
    if (ctx->kv.page > 0)
        return ea_fail(ctx->msg, EDGEATTN_ERR_INTERNAL, "cuda: kv_copy on a paged cache");
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    const size_t bytes = kv_seq_bytes(ctx);
    cu_side sd, dd;
    memset(&sd, 0, sizeof sd);
    memset(&dd, 0, sizeof dd);
    for (int i = 0; i < 2 && st == EDGEATTN_OK; i++) {
        sd.dp = kv_seq_base(c.s, ctx, i == 1, layer, src);
        dd.dp = kv_seq_base(c.s, ctx, i == 1, layer, dst);
        st = copy_1d(c.s, &sd, 0, &dd, 0, bytes, c.msg);
    }
    return call_end(&c, st);
}

/* kv_summary_copy (a fork of a cache with block summaries): (layer, src)'s summaries to (layer, dst). */
static edgeattn_status cuda_kv_summary_copy(edgeattn_context *ctx, int32_t layer, int32_t src, int32_t dst)
{
    const ea_kv_cache *kv = &ctx->kv;
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    const ea_cu_summ m = summ_args(c.s, kv, layer);
    const size_t seq_bytes = (size_t)kv->max_heads * (size_t)m.nblk * 2u * (size_t)kv->max_dim * sizeof(float);
    cu_side sd, dd;
    memset(&sd, 0, sizeof sd);
    memset(&dd, 0, sizeof dd);
    sd.dp = m.summ + (size_t)src * seq_bytes;
    dd.dp = m.summ + (size_t)dst * seq_bytes;
    st = copy_1d(c.s, &sd, 0, &dd, 0, seq_bytes, c.msg);
    return call_end(&c, st);
}

/* kv_page_copy (paged cache, copy on write after a fork): page src to page dst, all page_elems elements
 * of K and of V: two queued device copies. */
static edgeattn_status cuda_kv_page_copy(edgeattn_context *ctx, int32_t src, int32_t dst)
{
    const ea_kv_cache *kv = &ctx->kv;
    if (kv->page <= 0 || src < 0 || dst < 0 || src >= kv->pages || dst >= kv->pages)
        return ea_fail(ctx->msg, EDGEATTN_ERR_INTERNAL, "cuda: kv_page_copy of page %d to %d (pool of %d)", (int)src,
                       (int)dst, (int)kv->pages);
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    const size_t bytes = kv->page_elems * ea_dtype_size(kv->dtype);
    cu_side sd, dd;
    memset(&sd, 0, sizeof sd);
    memset(&dd, 0, sizeof dd);
    for (int i = 0; i < 2 && st == EDGEATTN_OK; i++) {
        const CUdeviceptr base = c.s->pool + (i ? c.s->L.kv_v : c.s->L.kv_k);
        sd.dp = base + (size_t)src * bytes;
        dd.dp = base + (size_t)dst * bytes;
        st = copy_1d(c.s, &sd, 0, &dd, 0, bytes, c.msg);
    }
    return call_end(&c, st);
}

/* kv_read: slots [slot, slot + n) of (layer, seq), every head, into rows [row0, row0 + n) of the host
 * tensors k and v [1, heads, N, dim] (a paged cache: the slots lie in one page). The cache's dtype:
 * copied straight into the views; another dtype: through the host bounce buffer in pieces, converted as
 * core converts (ea_load_f32 / ea_store_f32). Returns when the tensors hold the rows. */
static edgeattn_status kv_read_body(cu_call *c, const edgeattn_context *ctx, int32_t layer, int32_t seq, int32_t slot,
                                    int32_t n, const edgeattn_tensor *k, const edgeattn_tensor *v, int64_t row0)
{
    cu_state *s = c->s;
    ea_cu_driver *d = &s->drv;
    const ea_kv_cache *kv = &ctx->kv;
    const size_t es = ea_dtype_size(kv->dtype), row = (size_t)kv->dim * es;
    c->host = true; /* call_end waits for the copies */
    edgeattn_status st;
    /* rows of one head are consecutive (inside a page, or in the sequence's [heads][cap][dim] block) */
    const int64_t hstride = (int64_t)(kv->page > 0 ? kv->page : kv->cap) * kv->dim;
    for (int i = 0; i < 2; i++) {
        const edgeattn_tensor *t = i ? v : k;
        const CUdeviceptr base = s->pool + (i ? s->L.kv_v : s->L.kv_k) + ea_kv_row_elem(kv, layer, seq, 0, slot) * es;
        if (t->dtype == kv->dtype) {
            cu_side src, dst = side_host(t);
            memset(&src, 0, sizeof src);
            src.dp = base;
            src.st[1] = hstride;
            src.st[2] = kv->dim;
            dst.hp += (size_t)(row0 * t->stride[2]) * es;
            const int64_t shape[3] = {1, kv->heads, n};
            if ((st = copy_rows(s, shape, es, row, &src, &dst, c->msg)) != EDGEATTN_OK)
                return st;
            continue;
        }
        const int32_t per = (int32_t)(CU_READ_BOUNCE / row); /* >= 64: dim <= 256, 4-byte elements */
        for (int32_t h = 0; h < kv->heads; h++)
            for (int32_t r0 = 0; r0 < n; r0 += per) {
                const int32_t cnt = n - r0 < per ? n - r0 : per;
                d->count.copies++;
                CU_TRY(d, c->msg,
                       d->MemcpyDtoHAsync(s->bounce, base + (size_t)h * (size_t)hstride * es + (size_t)r0 * row,
                                          (size_t)cnt * row, s->stream),
                       "cuMemcpyDtoHAsync");
                CU_TRY(d, c->msg, ea_cu_stream_sync(d, s->stream), "cuStreamSynchronize");
                for (int32_t r = 0; r < cnt; r++) {
                    const ptrdiff_t o = (ptrdiff_t)(h * t->stride[1] + (row0 + r0 + r) * t->stride[2]);
                    for (int32_t e = 0; e < kv->dim; e++)
                        ea_store_f32(t->data, t->dtype, o + e,
                                     ea_load_f32(s->bounce, kv->dtype, (ptrdiff_t)r * kv->dim + e));
                }
            }
    }
    return EDGEATTN_OK;
}

static edgeattn_status cuda_kv_read(edgeattn_context *ctx, int32_t layer, int32_t seq, int32_t slot, int32_t n,
                                    const edgeattn_tensor *k, const edgeattn_tensor *v, int64_t row0)
{
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    st = kv_read_body(&c, ctx, layer, seq, slot, n, k, v, row0);
    return call_end(&c, st);
}

/* ---------------------------------------------------------------- check_finite */

static edgeattn_status finite_body(cu_call *c, const edgeattn_tensor *t, bool neg_inf_ok, bool *finite)
{
    cu_state *s = c->s;
    ea_cu_driver *d = &s->drv;
    cu_arg a;
    edgeattn_status st = arg_prepare(c, &a, "check_finite", t, 0, 0, false);
    if (st != EDGEATTN_OK)
        return st;
    if (a.staged) /* core scans host tensors itself; never here */
        return ea_fail(c->msg, EDGEATTN_ERR_INTERNAL, "cuda: check_finite of a host tensor");
    ea_cu_finite_args f;
    memset(&f, 0, sizeof f);
    f.t = a.d;
    f.B = t->shape[0];
    f.H = t->shape[1];
    f.N = t->shape[2];
    f.D = t->shape[3];
    f.flag = s->pool + s->L.flag;
    f.neg_inf_ok = neg_inf_ok ? 1 : 0;
    ea_cu_launch l;
    ea_cu_plan_finite(&s->dv.di, &f, &l);
    d->count.copies++;
    CU_TRY(d, c->msg, d->MemsetD8Async(f.flag, 0, sizeof(uint32_t), s->stream), "cuMemsetD8Async");
    if ((st = run_launches(c, &l, 1, &f)) != EDGEATTN_OK)
        return st;
    uint32_t flag = 0;
    d->count.copies++;
    CU_TRY(d, c->msg, d->MemcpyDtoHAsync(&flag, f.flag, sizeof flag, s->stream), "cuMemcpyDtoHAsync");
    CU_TRY(d, c->msg, ea_cu_stream_sync(d, s->stream), "cuStreamSynchronize");
    *finite = flag == 0;
    return EDGEATTN_OK;
}

static edgeattn_status cuda_check_finite(edgeattn_context *ctx, const edgeattn_tensor *t, bool neg_inf_ok,
                                         bool *finite)
{
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    st = finite_body(&c, t, neg_inf_ok, finite);
    c.host = false; /* synchronised already */
    return call_end(&c, st);
}

/* ---------------------------------------------------------------- synchronize, region, copy */

static edgeattn_status cuda_synchronize(edgeattn_context *ctx)
{
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    c.host = true; /* call_end synchronises and reports the driver's error */
    return call_end(&c, EDGEATTN_OK);
}

static edgeattn_status cuda_device_region(edgeattn_context *ctx, edgeattn_memory *memory, void **data, size_t *offset,
                                          size_t *bytes)
{
    cu_state *s = ctx->backend_state;
    if (s->L.user_bytes == 0)
        return ea_fail(ctx->msg, EDGEATTN_ERR_UNSUPPORTED, "device_region: config.device_user_bytes was 0");
    *memory = EDGEATTN_MEM_CUDA;
    *data = (void *)(uintptr_t)(s->pool + s->L.user);
    *offset = 0;
    *bytes = s->L.user_bytes;
    return EDGEATTN_OK;
}

static edgeattn_status copy_body(cu_call *c, const edgeattn_tensor *dst, const edgeattn_tensor *src)
{
    cu_state *s = c->s;
    const size_t es = ea_dtype_size(src->dtype), row = (size_t)src->shape[3] * es;
    cu_side sd, dd;
    const edgeattn_tensor *t[2] = {src, dst};
    cu_side *side[2] = {&sd, &dd};
    for (int i = 0; i < 2; i++) {
        if (t[i]->memory == EDGEATTN_MEM_CUDA) {
            const uint64_t p = (uint64_t)(uintptr_t)t[i]->data;
            edgeattn_status st =
                check_device_ptr(s, i == 0 ? "copy: src" : "copy: dst", p, view_extent(t[i]), es, c->msg);
            if (st != EDGEATTN_OK)
                return st;
            memset(side[i], 0, sizeof *side[i]);
            side[i]->dp = p;
            for (int j = 0; j < 3; j++)
                side[i]->st[j] = t[i]->stride[j];
        } else {
            *side[i] = side_host(t[i]);
            c->host = true;
        }
    }
    if (sd.host && dd.host)
        c->host = false; /* plain memmove, nothing queued */
    return copy_rows(s, src->shape, es, row, &sd, &dd, c->msg);
}

static edgeattn_status cuda_copy(edgeattn_context *ctx, const edgeattn_tensor *dst, const edgeattn_tensor *src)
{
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    st = copy_body(&c, dst, src);
    return call_end(&c, st);
}

/* ---------------------------------------------------------------- ceilings */

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

#define CEIL_REPS 7

/* Times fn-like work between two events: ms of each repetition; median returned. */
/* One warm-up, then CEIL_REPS timed runs between events e0 and e1 of either a kernel launch (l, args)
 * or, with l NULL, a device copy of bytes from src to dst; *med receives the median in ms. */
static edgeattn_status time_median(cu_call *c, CUevent e0, CUevent e1, const ea_cu_launch *l, void *args,
                                   CUdeviceptr dst, CUdeviceptr src, size_t bytes, float *med)
{
    ea_cu_driver *d = &c->s->drv;
    CUstream q = c->s->stream;
    float ms[CEIL_REPS];
    for (int i = -1; i < CEIL_REPS; i++) {
        CUresult r = d->EventRecord(e0, q);
        edgeattn_status st = EDGEATTN_OK;
        if (r == EA_CUDA_SUCCESS) {
            if (l)
                st = run_launches(c, l, 1, args);
            else
                r = d->MemcpyDtoDAsync(dst, src, bytes, q);
        }
        if (st != EDGEATTN_OK)
            return st;
        if (r != EA_CUDA_SUCCESS || (r = d->EventRecord(e1, q)) != EA_CUDA_SUCCESS ||
            (r = ea_cu_event_sync(d, e1)) != EA_CUDA_SUCCESS)
            return cu_fail(d, c->msg, r, l ? "tensor-core measurement" : "copy bandwidth measurement");
        if (i >= 0 && (r = d->EventElapsedTime(&ms[i], e0, e1)) != EA_CUDA_SUCCESS)
            return cu_fail(d, c->msg, r, "cuEventElapsedTime");
    }
    qsort(ms, CEIL_REPS, sizeof ms[0], cmp_float);
    *med = ms[CEIL_REPS / 2];
    return EDGEATTN_OK;
}

static edgeattn_status ceil_body(cu_call *c, edgeattn_ceilings *out)
{
    cu_state *s = c->s;
    ea_cu_driver *d = &s->drv;
    edgeattn_status st = EDGEATTN_OK;
    size_t fr = 0, to = 0;
    CU_TRY(d, c->msg, d->MemGetInfo(&fr, &to), "cuMemGetInfo");
    size_t bytes = (size_t)1 << 30;
    while (bytes > ((size_t)16 << 20) && 2 * bytes > fr / 2)
        bytes /= 2;
    if (2 * bytes > fr)
        return ea_fail(c->msg, EDGEATTN_ERR_OUT_OF_MEMORY, "measure_ceilings: %zu bytes free on the device, need %zu",
                       fr, 2 * bytes);
    CUdeviceptr a = 0, b = 0;
    CUevent e0 = NULL, e1 = NULL;
    CUresult r;
    float med = 0.0f;
    if ((r = ea_cu_mem_alloc(d, &a, bytes)) != EA_CUDA_SUCCESS || (r = ea_cu_mem_alloc(d, &b, bytes)) != EA_CUDA_SUCCESS) {
        st = cu_fail(d, c->msg, r, "cuMemAlloc (measure_ceilings)");
        goto done;
    }
    if ((r = d->EventCreate(&e0, EA_CU_EVENT_DEFAULT)) != EA_CUDA_SUCCESS ||
        (r = d->EventCreate(&e1, EA_CU_EVENT_DEFAULT)) != EA_CUDA_SUCCESS) {
        st = cu_fail(d, c->msg, r, "cuEventCreate");
        goto done;
    }
    if ((r = d->MemsetD8Async(a, 1, bytes, s->stream)) != EA_CUDA_SUCCESS) {
        st = cu_fail(d, c->msg, r, "cuMemsetD8Async");
        goto done;
    }
    /* copy bandwidth */
    if ((st = time_median(c, e0, e1, NULL, NULL, b, a, bytes, &med)) != EDGEATTN_OK)
        goto done;
    out->copy_gbps = med > 0 ? 2.0 * (double)bytes / (med * 1e-3) / 1e9 : 0.0;
    /* tensor-core throughput */
    size_t nk = 0;
    const ea_cu_kernel_desc *tab = ea_cu_kernel_table(&nk);
    ea_cu_launch l;
    int64_t flops = 0;
    int32_t iters = 1024;
    ea_cu_plan_peak(&s->dv.di, &l, &flops, iters);
    if (l.kernel < 0 || (size_t)l.kernel >= s->nfn || !s->fn[l.kernel]) {
        out->compute_tflops = 0.0;
        snprintf(out->compute_what, sizeof out->compute_what, "n/a: %s needs sm_%d",
                 l.kernel >= 0 && (size_t)l.kernel < nk ? tab[l.kernel].name : "peak kernel",
                 l.kernel >= 0 && (size_t)l.kernel < nk ? (int)tab[l.kernel].min_cc : 80);
        goto done;
    }
    ea_cu_peak_args pa;
    memset(&pa, 0, sizeof pa);
    pa.sink = b;
    for (int round = 0; round < 2; round++) {
        pa.iters = iters;
        ea_cu_plan_peak(&s->dv.di, &l, &flops, iters);
        if ((st = time_median(c, e0, e1, &l, &pa, 0, 0, 0, &med)) != EDGEATTN_OK)
            goto done;
        if (round == 0 && med < 20.0f) { /* aim for about 20 ms per launch */
            double scale = med > 0.01f ? 20.0 / med : 2000.0;
            double it = (double)iters * scale;
            iters = it > (double)(1 << 24) ? (1 << 24) : (int32_t)it;
            continue;
        }
        out->compute_tflops = med > 0 ? (double)flops / (med * 1e-3) / 1e12 : 0.0;
        snprintf(out->compute_what, sizeof out->compute_what, "FP16 mma.sync m16n8k16, FP32 accumulate");
        break;
    }
done:
    if (e0)
        d->EventDestroy(e0);
    if (e1)
        d->EventDestroy(e1);
    if (a || b)
        ea_cu_stream_sync(d, s->stream);
    if (a)
        ea_cu_mem_free(d, a);
    if (b)
        ea_cu_mem_free(d, b);
    return st;
}

static edgeattn_status cuda_ceilings(edgeattn_context *ctx, edgeattn_ceilings *out)
{
    cu_call c;
    edgeattn_status st = call_begin(&c, ctx);
    if (st != EDGEATTN_OK)
        return st;
    st = ceil_body(&c, out);
    return call_end(&c, st);
}

/* ---------------------------------------------------------------- info */

static void cuda_info(const edgeattn_context *ctx, edgeattn_backend_info *info)
{
    const cu_state *s = ctx->backend_state;
    info->backend = EDGEATTN_BACKEND_CUDA;
    snprintf(info->backend_name, sizeof info->backend_name, "cuda");
    snprintf(info->tier, sizeof info->tier, "sm_%d %s", s->dv.cc, s->dv.cc >= 80 ? "mma" : "simt");
    cu_ident(&s->dv, s->drv.version, info->device, sizeof info->device);
    info->compute_capability = s->dv.cc;
    info->cores = s->dv.di.sm_count;
    info->threads = 1;
    info->device_memory = s->dv.total_mem;
}

bool ea_cuda_counters(const edgeattn_context *ctx, ea_cu_counters *out)
{
    if (!ctx || ctx->backend != &ea_backend_cuda || !ctx->backend_state)
        return false;
    const cu_state *s = ctx->backend_state;
    *out = s->drv.count;
    return true;
}

bool ea_cuda_device_of(const edgeattn_context *ctx, int *ordinal, CUcontext *cu_ctx, CUstream *stream)
{
    if (!ctx || ctx->backend != &ea_backend_cuda || !ctx->backend_state)
        return false;
    const cu_state *s = ctx->backend_state;
    if (ordinal)
        *ordinal = s->dv.ordinal;
    if (cu_ctx)
        *cu_ctx = s->ctx;
    if (stream)
        *stream = s->stream;
    return true;
}

const ea_backend_ops ea_backend_cuda = {
    .api_version = EA_BACKEND_API_VERSION,
    .id = EDGEATTN_BACKEND_CUDA,
    .name = "cuda",
    .probe = cuda_probe,
    .plan = cuda_plan,
    .init = cuda_init,
    .fini = cuda_fini,
    .supports_config = cuda_supports,
    .attention = cuda_attention,
    .decode = cuda_attention,
    .info = cuda_info,
    .memory_kinds = 1u << EDGEATTN_MEM_CUDA,
    .check_finite = cuda_check_finite,
    .block_mask = true,
    .linformer = true,
    .kv_write = cuda_kv_write,
    .kv_page_copy = cuda_kv_page_copy,
    .kv_copy = cuda_kv_copy,
    .kv_summary_copy = cuda_kv_summary_copy,
    .kv_read = cuda_kv_read,
    .synchronize = cuda_synchronize,
    .device_region = cuda_device_region,
    .copy = cuda_copy,
    .ceilings = cuda_ceilings,
};
