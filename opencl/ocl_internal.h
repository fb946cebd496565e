/* The OpenCL backend's state and the pieces shared by its host files (not installed). */
#ifndef EDGEATTN_OPENCL_OCL_INTERNAL_H
#define EDGEATTN_OPENCL_OCL_INTERNAL_H

#include "backends/backend.h"
#include "core/ea_core.h"
#include "opencl/ocl_clblast.h"
#include "opencl/ocl_loader.h"

#define EA_OCL_SEQ_MAX 16 /* = EA_SEQ_MAX in common.cl: sequences per launch */
#define EA_OCL_NVAR 3     /* head-dim variants: 64, 128, 256 */
#define EA_OCL_WS_ENTRIES 4096 /* split-KV partial rows (row x split) the workspace holds */
#define EA_OCL_ROPE_SLOTS 4    /* host copies of the RoPE angle table in flight (non-blocking uploads) */
#define EA_OCL_PTAB_SLOTS 4    /* host copies of a call's KV page tables in flight (non-blocking uploads) */
#define EA_OCL_BM_SLOTS 4      /* host copies of a call's block-mask bitmap in flight (non-blocking uploads) */

/* Mirrors of the structs in common.cl / util.cl (passed by value as kernel arguments). */
typedef struct ea_ocl_view {
    cl_long off, sb, sh, sn;
} ea_ocl_view;

typedef struct ea_ocl_attn_p {
    ea_ocl_view q, k, v, o, bias, lse;
    cl_long ws_off, ws_lse_off, rope_off;
    cl_long pt_off;             /* paged cache: the call's page tables (int offset in the work pool) */
    cl_int page_units, row_units; /* paged: a pool row index is page * page_units + in-page slot * row_units */
    cl_int q_dt, kv_dt, o_dt, has_bias;
    cl_int has_lse, nsplit, b0, h0;
    cl_int nh, group, i0, ni;
    cl_int D, ring_cap, causal, wl;
    cl_int wr, rope_style, rope_dim, page_shift; /* page_shift 0: K/V through the views (no pages) */
    cl_int pt_pitch;            /* page-table entries per batch row of the call */
    cl_int kv_vec;              /* every element offset of a K/V row a multiple of 4 (flash.cl's EA_BATCH_LOADS) */
    cl_int sinks;               /* a sinks cache's S: held keys j < S in slots j, the ring after (common.cl ea_slot) */
    cl_int bm_bq;               /* block mask: query rows per block (0: no mask) */
    cl_long bm_off, bm_sb, bm_sh; /* block mask bitmap: uint offset in the work pool, pattern strides (uints) */
    cl_int bm_words, bm_shift;  /* uints per query block's row of the bitmap; log2 of the keys of a mask block */
    cl_float scale, softcap;
    cl_int kv_len[EA_OCL_SEQ_MAX];
    cl_int slot0[EA_OCL_SEQ_MAX];
    cl_int nq[EA_OCL_SEQ_MAX];   /* queries of the sequence: rows i >= nq are not written */
    cl_int kv_b[EA_OCL_SEQ_MAX]; /* K/V batch index (decode: the cache sequence, seq_ids[b]) */
    cl_int tab0[EA_OCL_SEQ_MAX]; /* RoPE table row of query i0 */
} ea_ocl_attn_p;

typedef struct ea_ocl_rows_p {
    ea_ocl_view k, v;
    cl_long kd_off, vd_off, rope_off;
    cl_long pt_off, page_elems; /* paged cache (page_shift > 0): page tables as in ea_ocl_attn_p, page size */
    cl_int k_dt, v_dt, cache_dt, heads; /* source dtypes of K and V (each its own), the cache's */
    cl_int cap, D, b0, h0;
    cl_int nh, wk, wv, rope_style;
    cl_int rope_dim, page_shift, pt_pitch, sbase; /* slot of row r: sbase + (slot0 + r) mod ring */
    cl_int ring, pad_;
    cl_int r0[EA_OCL_SEQ_MAX];
    cl_int n[EA_OCL_SEQ_MAX];
    cl_int slot0[EA_OCL_SEQ_MAX];
    cl_int dseq[EA_OCL_SEQ_MAX]; /* cache sequence (seq_ids[b]) */
    cl_int tab0[EA_OCL_SEQ_MAX]; /* RoPE table row of row r0 */
} ea_ocl_rows_p;

typedef struct ea_ocl_tiles {
    int bm, tm, bn, tn; /* rows per work-group; score rows and key columns per work-item; keys per tile */
    int pm;             /* output rows per work-item (flash.cl: FK_PM) */
    int qh;             /* the F16-Q prefill kernel (FK_QH: Q as F16 bits in local memory) */
    int uqk, upv;       /* unroll factors of the score and P.V loops (FK_UNROLL_QK/PV); 0: the program's */
    int pf;             /* register prefetch: 0 the kernel's rule, 1 off, 2 on */
    int regs;           /* NVIDIA: register cap (-cl-nv-maxrregcount, the work-group size left open); 0 none */
    int rows;           /* decode tiles: the query rows (group x Nq) up to which the decode kernel takes a call,
                           in row blocks of bm (EDGEATTN_OPENCL_TILES dmr=); 0: bm. Past it, the prefill kernel */
} ea_ocl_tiles;

/* Work-items per work-group of a tile: (BM/TM) x (BN/TN). */
static inline int ea_ocl_tiles_threads(const ea_ocl_tiles *t)
{
    return (t->bm / t->tm) * (t->bn / t->tn);
}

typedef struct ea_ocl_variant {
    int dmax;
    ea_ocl_tiles pf, pfh, dec; /* prefill, prefill with F16 Q, decode */
    cl_program prog[3]; /* one program per kernel: a tile change rebuilds only its own */
    cl_kernel k_pf, k_pfh, k_dec;
} ea_ocl_variant;

enum { EA_K_COMBINE, EA_K_KV_WRITE, EA_K_CONVERT, EA_K_FINITE, EA_K_GATHER_Q, EA_K_GATHER_KV, EA_K_SOFTMAX,
       EA_K_STORE, EA_K_PEAK, EA_K_SUMM, EA_K_TK_SCORE, EA_K_TK_SELECT, EA_K_LR_PROJ, EA_K_COUNT };

enum { EA_OCL_PATH_FUSED = 0, EA_OCL_PATH_UNFUSED = 1 };

/* Device classes of the tile table. */
enum { EA_OCL_CLASS_OTHER, EA_OCL_CLASS_NVIDIA, EA_OCL_CLASS_MALI, EA_OCL_CLASS_ADRENO, EA_OCL_CLASS_CPU };

/* Where everything lives in the work pool (bytes), computed from the config alone. */
typedef struct ea_ocl_layout {
    int path;
    int dmax;             /* max_head_dim */
    int32_t rows_kv;      /* key rows a staged K/V head holds */
    int32_t rows_cap;     /* query rows (x heads) a staging unit holds */
    int32_t uf_rows;      /* unfused: query rows per GEMM */
    size_t st_k, st_v, st_kv_bytes; /* staging of one K / V head (any dtype) */
    size_t st_rows, st_rows_bytes;  /* staging of q, out, lse, bias rows */
    size_t ws, ws_lse;              /* split-KV partials */
    size_t flag;
    size_t uf_q, uf_k, uf_v, uf_s, uf_o, uf_l; /* unfused F32 scratch */
    size_t blast_tmp, blast_tmp_bytes; /* a sub-buffer (CLBlast takes a whole cl_mem), 4 KiB aligned */
    size_t rope, rope_bytes;        /* RoPE angle table (cos, sin in FP32 from double), 0 without RoPE */
    int32_t rope_rows, rope_dim;    /* positions the table holds, floats per position */
    size_t work_bytes;
    size_t kv_layer_bytes;          /* KV cache: one layer of K (or V), 256-byte aligned (paged: the pool) */
    int32_t kv_layers;              /* layers of the contiguous layout (paged: 1, the pool) */
    size_t kv_bytes_each;           /* every layer of K (or V): kv_layers * kv_layer_bytes */
    bool paged;                     /* config.kv_page_size: K and V pools of pages, one buffer each */
    int32_t page, page_shift, pages_per_seq, pages;
    size_t page_elems;
    size_t ptab, ptab_bytes;        /* paged: the page tables of one call, [max_batch][pages_per_seq] int32 */
    size_t bm, bm_bytes;            /* a call's block mask as bitmaps: [max_batch * max_kv_heads patterns]
                                       [ceil(max_q_len / 64) query blocks][bm_words] uint32, bit kb: key block
                                       kb listed */
    int32_t bm_words;               /* uint32 per query block: ceil(ceil(max_kv_len / 64) / 32) */
    int32_t sblk, nsblk;            /* top-k (config.kv_summary_block): keys per summary block, blocks per
                                       (layer, sequence, KV head) */
    size_t summ_bytes;              /* device buffer of block summaries: [layers][max_batch][max_kv_heads][nsblk]
                                       [2][max_head_dim] F32 (min, max of K) */
    int32_t tk_words;               /* uint32 per selection row: ceil(nsblk / 32) */
    size_t tk_sc, tk_bm;            /* work pool: scores [max_batch][max_kv_heads][nsblk] F32, selections
                                       [max_batch][max_kv_heads][tk_words] uint32 (the decode's mask) */
    size_t lr_k, lr_v, lr_kv_bytes;  /* Linformer (config.max_lowrank): K' and V' F32 [max_batch][max_kv_heads]
                                        [max_lowrank][max_head_dim] each */
    size_t lr_e, lr_f, lr_ef_bytes;  /* staging of one host E and F [max_lowrank][max_kv_len] (any dtype) */
    size_t user_bytes;
    size_t device_total;
} ea_ocl_layout;

typedef struct ea_ocl_state {
    ea_ocl_api api;
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cl_device_type type;
    char device_name[128], vendor[64], platform_name[64], driver[64], version[64];
    /* knobs (ea_knob): the config, and the device as backend info names it ("" on a caller's queue:
     * a tuning file's knobs then do not apply, as the plan could not check its key) */
    const edgeattn_config *cfg;
    char ident[160];
    cl_uint cus;
    size_t max_wg, max_param;
    cl_ulong local_mem, global_mem, max_alloc;
    bool fp16;
    bool nv_options; /* cl_nv_compiler_options: -cl-nv-maxrregcount is understood */
    cl_uint vec_float, vec_half;
    int dev_class;
    ea_ocl_layout lay;
    ea_ocl_variant var[EA_OCL_NVAR];
    int nvar;
    cl_program util_prog;
    cl_kernel k[EA_K_COUNT];
    cl_mem *kv_k, *kv_v;  /* [kv_nbuf] each (host block): kv_lpb layers per buffer (a device's largest
                             buffer may hold fewer than all of them) */
    int kv_nbuf, kv_lpb;
    cl_mem user, work, blast_tmp;
    cl_mem summ;          /* top-k block summaries (lay.summ_bytes), or NULL */
    float *rope_host;     /* [EA_OCL_ROPE_SLOTS] tables of lay.rope_bytes (host block) */
    cl_event rope_ev[EA_OCL_ROPE_SLOTS]; /* the upload of each slot still in flight, or NULL */
    int rope_next;
    int32_t *ptab_host;   /* paged: [EA_OCL_PTAB_SLOTS] copies of lay.ptab_bytes (host block) */
    cl_event ptab_ev[EA_OCL_PTAB_SLOTS];
    int ptab_next;
    int ptab_last;        /* host copy of what the device's page-table area holds (-1: nothing yet) */
    int ptab_last_b, ptab_last_pitch;
    uint32_t *bm_host;    /* [EA_OCL_BM_SLOTS] copies of lay.bm_bytes (host block) */
    cl_event bm_ev[EA_OCL_BM_SLOTS];
    int bm_next;
    ea_clblast blast;
    bool blast_ok;
    char blast_why[96];
    int programs_from_cache, programs_built, programs_cache_saved;
    int max_batch;
} ea_ocl_state;

/* ---- ocl_backend.c */
edgeattn_status ea_ocl_fail_cl(char *msg, cl_int err, const char *what);

/* ---- ocl_run.c: the calls */
edgeattn_status ea_ocl_attention(edgeattn_context *ctx, const ea_attn_call *call);
edgeattn_status ea_ocl_kv_write(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids, const edgeattn_tensor *k,
                                const edgeattn_tensor *v, const int32_t *n_new);
edgeattn_status ea_ocl_kv_copy(edgeattn_context *ctx, int32_t layer, int32_t src, int32_t dst);
edgeattn_status ea_ocl_kv_page_copy(edgeattn_context *ctx, int32_t src, int32_t dst);
edgeattn_status ea_ocl_kv_read(edgeattn_context *ctx, int32_t layer, int32_t seq, int32_t slot, int32_t n,
                               const edgeattn_tensor *k, const edgeattn_tensor *v, int64_t row0);
edgeattn_status ea_ocl_check_finite(edgeattn_context *ctx, const edgeattn_tensor *t, bool neg_inf_ok, bool *finite);
edgeattn_status ea_ocl_copy(edgeattn_context *ctx, const edgeattn_tensor *dst, const edgeattn_tensor *src);
edgeattn_status ea_ocl_ceilings(edgeattn_context *ctx, edgeattn_ceilings *out);

/* ---- for tests (tests/opencl): loader counters, program cache statistics, the device in use */
typedef struct ea_ocl_debug {
    long counts[EA_OCL_N_COUNT];
    int programs_from_cache, programs_built, programs_cache_saved;
    int path;
    ea_ocl_tiles pf[EA_OCL_NVAR], pfh[EA_OCL_NVAR], dec[EA_OCL_NVAR];
    int dmax[EA_OCL_NVAR], nvar;
} ea_ocl_debug;
/* false if ctx does not run on the OpenCL backend. */
bool ea_ocl_debug_info(const edgeattn_context *ctx, ea_ocl_debug *out);

#endif
