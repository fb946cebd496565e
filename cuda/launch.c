/*
 * Kernel table and launch planning for the CUDA backend (pure C11, no CUDA headers). The kernels live in
 * cuda/ *.cu (one fatbin, built from cuda/kernels_all.cu); their tile shapes come from cuda/tile_config.cuh,
 * which both sides include. Rules (see cuda/KERNELS-CUDA.md):
 *   - tensor-core kernels need cc >= 8.0, K and V both F16 or both BF16, D in {64, 80, 96, 128, 256},
 *     K/V base and strides 16-byte aligned, out base 8-byte aligned with even strides; Q may be any dtype;
 *   - few rows per KV head (group * Nq <= EA_DECODE_MAX_ROWS): split-KV decode kernel, which merges its
 *     splits itself (one launch; counters in the workspace); otherwise the prefill kernel; everything else
 *     (F32 or mixed dtypes, sm_75, misaligned tensors, and every other head dim: any multiple of 8 from 8
 *     to 256, such as 8, 24, 40, 72, 120) the SIMT kernel (split too when rows are few, then + combine);
 *   - a paged KV cache (args.pages.table set, decode): the _paged twins of the decode and SIMT kernels,
 *     the decode kernel for many rows too (unsplit row blocks; no paged prefill kernel).
 * Split workspace layout (base ws, 256-byte aligned pieces):
 *   ws + 0:                       uint32 counters[EA_SPLIT_COUNTERS] (16 KiB): zeroed ONCE by the host
 *                                 after allocation; every call leaves them zero again;
 *   ws_o  = ws + 16 KiB:          F32 [B*Hq*Nq][num_splits][D] partial outputs;
 *   ws_lse = ws_o + align256(..): F32 [B*Hq*Nq][num_splits][2] partial (row max in natural-log units,
 *            row sum); kept apart because m + log(l) loses l when m is huge (a -1e30 bias).
 */
#include "cuda/kernels.h"
#include "cuda/tile_config.cuh"

#define EA_DECODE_MAX_ROWS 64
#define EA_MAX_SPLITS EA_COMBINE_MAX_SPLITS
#define EA_MIN_SPLIT_KEYS 128
/* Arrival counters of the fused split merge at the start of the workspace. A split launch has at most
 * (SMs x CTAs/SM) / 2 (b, kv head, row block) groups, so 4096 covers any device up to 2048 SMs; a call
 * with more groups falls back to the combine launch. */
#define EA_SPLIT_COUNTERS 4096
#define EA_SPLIT_CNT_BYTES ((size_t)EA_SPLIT_COUNTERS * 4u)

enum {
    K_SIMT = 0,
    K_MMA_F16 = 1,   /* + d index (64, 80, 96, 128, 256) */
    K_MMA_BF16 = 6,
    K_DEC_F16 = 11,
    K_DEC_BF16 = 16,
    K_COMBINE = 21,
    K_KV_WRITE = 22,
    K_FINITE = 23,
    K_PEAK = 24,
    K_MMA_F16_PLAIN = 25, /* prefill without softcap/bias support compiled in */
    K_MMA_BF16_PLAIN = 30,
    K_MMA_S = 35,         /* D128 small shared memory: f16, bf16, f16 plain, bf16 plain */
    K_DEC_S = 39,         /* D128 small shared memory: f16, bf16 */
    K_DEC_PG_F16 = 41,    /* paged KV cache (args.pages.table set): decode + d index */
    K_DEC_PG_BF16 = 46,
    K_DEC_PG_S = 51,      /* paged, D128 small shared memory: f16, bf16 */
    K_SIMT_PG = 53,       /* paged SIMT */
    K_KV_SUMMARY = 54,    /* top-k: block summaries, block scores, the choice */
    K_TOPK_SCORE = 55,
    K_TOPK_SELECT = 56,
    K_PROJ_F16 = 57,      /* Linformer projections: f16 (tensor cores), SIMT */
    K_PROJ_SIMT = 58,
    K_PROJ_PIPE64 = 59,   /* pipelined f16 projections, 64 and 128 columns a CTA */
    K_PROJ_PIPE128 = 60,
    K_COUNT = 61
};

static const int ea_dims[5] = {64, 80, 96, 128, 256};
static const int pf_nw[5] = {EA_PF_64_NW, EA_PF_80_NW, EA_PF_96_NW, EA_PF_128_NW, EA_PF_256_NW};
static const int pf_mt[5] = {EA_PF_64_MT, EA_PF_80_MT, EA_PF_96_MT, EA_PF_128_MT, EA_PF_256_MT};
static const int pf_bn[5] = {EA_PF_64_BN, EA_PF_80_BN, EA_PF_96_BN, EA_PF_128_BN, EA_PF_256_BN};
static const int pf_st[5] = {EA_PF_64_ST, EA_PF_80_ST, EA_PF_96_ST, EA_PF_128_ST, EA_PF_256_ST};
static const int dc_nw[5] = {EA_DC_64_NW, EA_DC_80_NW, EA_DC_96_NW, EA_DC_128_NW, EA_DC_256_NW};
static const int dc_wst[5] = {EA_DC_64_WST, EA_DC_80_WST, EA_DC_96_WST, EA_DC_128_WST, EA_DC_256_WST};

#define PF_SMEM(i) EA_PF_SMEM(ea_dims[i], pf_mt[i] * pf_nw[i], pf_bn[i], pf_st[i])
#define DC_SMEM(i) EA_DC_SMEM(ea_dims[i], dc_nw[i], dc_wst[i])
#define PF128S_SMEM EA_PF_SMEM(128, EA_PF_128S_MT * EA_PF_128S_NW, EA_PF_128S_BN, EA_PF_128S_ST)
#define DC128S_SMEM EA_DC_SMEM(128, EA_DC_128S_NW, EA_DC_128S_WST)

static const ea_cu_kernel_desc ea_table[K_COUNT] = {
    {"ea_attn_simt", EA_SIMT_SMEM(256), 75},
    {"ea_attn_mma_f16_d64", EA_PF_SMEM(64, EA_PF_64_MT * EA_PF_64_NW, EA_PF_64_BN, EA_PF_64_ST), 80},
    {"ea_attn_mma_f16_d80", EA_PF_SMEM(80, EA_PF_80_MT * EA_PF_80_NW, EA_PF_80_BN, EA_PF_80_ST), 80},
    {"ea_attn_mma_f16_d96", EA_PF_SMEM(96, EA_PF_96_MT * EA_PF_96_NW, EA_PF_96_BN, EA_PF_96_ST), 80},
    {"ea_attn_mma_f16_d128", EA_PF_SMEM(128, EA_PF_128_MT * EA_PF_128_NW, EA_PF_128_BN, EA_PF_128_ST), 80},
    {"ea_attn_mma_f16_d256", EA_PF_SMEM(256, EA_PF_256_MT * EA_PF_256_NW, EA_PF_256_BN, EA_PF_256_ST), 80},
    {"ea_attn_mma_bf16_d64", EA_PF_SMEM(64, EA_PF_64_MT * EA_PF_64_NW, EA_PF_64_BN, EA_PF_64_ST), 80},
    {"ea_attn_mma_bf16_d80", EA_PF_SMEM(80, EA_PF_80_MT * EA_PF_80_NW, EA_PF_80_BN, EA_PF_80_ST), 80},
    {"ea_attn_mma_bf16_d96", EA_PF_SMEM(96, EA_PF_96_MT * EA_PF_96_NW, EA_PF_96_BN, EA_PF_96_ST), 80},
    {"ea_attn_mma_bf16_d128", EA_PF_SMEM(128, EA_PF_128_MT * EA_PF_128_NW, EA_PF_128_BN, EA_PF_128_ST), 80},
    {"ea_attn_mma_bf16_d256", EA_PF_SMEM(256, EA_PF_256_MT * EA_PF_256_NW, EA_PF_256_BN, EA_PF_256_ST), 80},
    {"ea_decode_mma_f16_d64", EA_DC_SMEM(64, EA_DC_64_NW, EA_DC_64_WST), 80},
    {"ea_decode_mma_f16_d80", EA_DC_SMEM(80, EA_DC_80_NW, EA_DC_80_WST), 80},
    {"ea_decode_mma_f16_d96", EA_DC_SMEM(96, EA_DC_96_NW, EA_DC_96_WST), 80},
    {"ea_decode_mma_f16_d128", EA_DC_SMEM(128, EA_DC_128_NW, EA_DC_128_WST), 80},
    {"ea_decode_mma_f16_d256", EA_DC_SMEM(256, EA_DC_256_NW, EA_DC_256_WST), 80},
    {"ea_decode_mma_bf16_d64", EA_DC_SMEM(64, EA_DC_64_NW, EA_DC_64_WST), 80},
    {"ea_decode_mma_bf16_d80", EA_DC_SMEM(80, EA_DC_80_NW, EA_DC_80_WST), 80},
    {"ea_decode_mma_bf16_d96", EA_DC_SMEM(96, EA_DC_96_NW, EA_DC_96_WST), 80},
    {"ea_decode_mma_bf16_d128", EA_DC_SMEM(128, EA_DC_128_NW, EA_DC_128_WST), 80},
    {"ea_decode_mma_bf16_d256", EA_DC_SMEM(256, EA_DC_256_NW, EA_DC_256_WST), 80},
    {"ea_attn_combine", 0, 75},
    {"ea_kv_write", 0, 75},
    {"ea_finite", 0, 75},
    {"ea_peak_mma", 0, 80},
    {"ea_attn_mma_f16_d64_plain", EA_PF_SMEM(64, EA_PF_64_MT * EA_PF_64_NW, EA_PF_64_BN, EA_PF_64_ST), 80},
    {"ea_attn_mma_f16_d80_plain", EA_PF_SMEM(80, EA_PF_80_MT * EA_PF_80_NW, EA_PF_80_BN, EA_PF_80_ST), 80},
    {"ea_attn_mma_f16_d96_plain", EA_PF_SMEM(96, EA_PF_96_MT * EA_PF_96_NW, EA_PF_96_BN, EA_PF_96_ST), 80},
    {"ea_attn_mma_f16_d128_plain", EA_PF_SMEM(128, EA_PF_128_MT * EA_PF_128_NW, EA_PF_128_BN, EA_PF_128_ST), 80},
    {"ea_attn_mma_f16_d256_plain", EA_PF_SMEM(256, EA_PF_256_MT * EA_PF_256_NW, EA_PF_256_BN, EA_PF_256_ST), 80},
    {"ea_attn_mma_bf16_d64_plain", EA_PF_SMEM(64, EA_PF_64_MT * EA_PF_64_NW, EA_PF_64_BN, EA_PF_64_ST), 80},
    {"ea_attn_mma_bf16_d80_plain", EA_PF_SMEM(80, EA_PF_80_MT * EA_PF_80_NW, EA_PF_80_BN, EA_PF_80_ST), 80},
    {"ea_attn_mma_bf16_d96_plain", EA_PF_SMEM(96, EA_PF_96_MT * EA_PF_96_NW, EA_PF_96_BN, EA_PF_96_ST), 80},
    {"ea_attn_mma_bf16_d128_plain", EA_PF_SMEM(128, EA_PF_128_MT * EA_PF_128_NW, EA_PF_128_BN, EA_PF_128_ST), 80},
    {"ea_attn_mma_bf16_d256_plain", EA_PF_SMEM(256, EA_PF_256_MT * EA_PF_256_NW, EA_PF_256_BN, EA_PF_256_ST), 80},
    {"ea_attn_mma_f16_d128_s", PF128S_SMEM, 80},
    {"ea_attn_mma_bf16_d128_s", PF128S_SMEM, 80},
    {"ea_attn_mma_f16_d128_s_plain", PF128S_SMEM, 80},
    {"ea_attn_mma_bf16_d128_s_plain", PF128S_SMEM, 80},
    {"ea_decode_mma_f16_d128_s", DC128S_SMEM, 80},
    {"ea_decode_mma_bf16_d128_s", DC128S_SMEM, 80},
    {"ea_decode_mma_f16_d64_paged", EA_DC_SMEM(64, EA_DC_64_NW, EA_DC_64_WST), 80},
    {"ea_decode_mma_f16_d80_paged", EA_DC_SMEM(80, EA_DC_80_NW, EA_DC_80_WST), 80},
    {"ea_decode_mma_f16_d96_paged", EA_DC_SMEM(96, EA_DC_96_NW, EA_DC_96_WST), 80},
    {"ea_decode_mma_f16_d128_paged", EA_DC_SMEM(128, EA_DC_128_NW, EA_DC_128_WST), 80},
    {"ea_decode_mma_f16_d256_paged", EA_DC_SMEM(256, EA_DC_256_NW, EA_DC_256_WST), 80},
    {"ea_decode_mma_bf16_d64_paged", EA_DC_SMEM(64, EA_DC_64_NW, EA_DC_64_WST), 80},
    {"ea_decode_mma_bf16_d80_paged", EA_DC_SMEM(80, EA_DC_80_NW, EA_DC_80_WST), 80},
    {"ea_decode_mma_bf16_d96_paged", EA_DC_SMEM(96, EA_DC_96_NW, EA_DC_96_WST), 80},
    {"ea_decode_mma_bf16_d128_paged", EA_DC_SMEM(128, EA_DC_128_NW, EA_DC_128_WST), 80},
    {"ea_decode_mma_bf16_d256_paged", EA_DC_SMEM(256, EA_DC_256_NW, EA_DC_256_WST), 80},
    {"ea_decode_mma_f16_d128_s_paged", DC128S_SMEM, 80},
    {"ea_decode_mma_bf16_d128_s_paged", DC128S_SMEM, 80},
    {"ea_attn_simt_paged", EA_SIMT_SMEM(256), 75},
    {"ea_kv_summary", 0, 75},
    {"ea_topk_score", 0, 75},
    {"ea_topk_select", 0, 75},
    {"ea_proj_mma_f16", 0, 80},
    {"ea_proj_simt", 0, 75},
    {"ea_proj_pipe_f16_n64", EA_PJP_SMEM(64), 80},
    {"ea_proj_pipe_f16_n128", EA_PJP_SMEM(128), 80},
};

const ea_cu_kernel_desc *ea_cu_kernel_table(size_t *count) {
    if (count) *count = K_COUNT;
    return ea_table;
}

static int dim_index(int32_t d) {
    for (int i = 0; i < 5; ++i)
        if (ea_dims[i] == d) return i;
    return -1;
}

static size_t align256(size_t x) { return (x + 255u) & ~(size_t)255u; }

static int aligned_16b(const ea_cu_tensor *t) {
    /* 16-bit elements: base and every stride a multiple of 16 bytes */
    return ((t->ptr | (uint64_t)(t->sn * 2) | (uint64_t)(t->sh * 2) | (uint64_t)(t->sb * 2)) & 15u) == 0;
}

static int out_pairs_ok(const ea_cu_tensor *t) {
    /* the tile kernels store two adjacent elements at even column offsets */
    return (t->ptr & 7u) == 0 && (t->sn & 1) == 0 && (t->sh & 1) == 0 && (t->sb & 1) == 0;
}

static void set_launch(ea_cu_launch *l, int kernel, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t threads,
                       uint32_t smem, int32_t kind) {
    l->kernel = kernel;
    l->grid[0] = gx; l->grid[1] = gy; l->grid[2] = gz;
    l->block[0] = threads; l->block[1] = 1; l->block[2] = 1;
    l->smem = smem;
    l->args_kind = kind;
}

static size_t split_ws_need(int64_t rows, int32_t s, int32_t d) {
    return EA_SPLIT_CNT_BYTES + align256((size_t)rows * (size_t)s * (size_t)d * 4u) + align256((size_t)rows * (size_t)s * 8u);
}

/* Split count: enough CTAs for one full wave of the device (every CTA the same length, no tail), splits
 * at least EA_MIN_SPLIT_KEYS keys long, at most EA_MAX_SPLITS, and within the workspace. */
static int32_t choose_splits(const ea_cu_device *dev, int64_t base_ctas, int32_t ctas_per_sm, int32_t nkv,
                             int64_t rows, int32_t d, size_t ws_bytes) {
    const int64_t waves = dev->split_waves > 0 ? dev->split_waves : 1;
    const int64_t min_keys = dev->split_min_keys > 0 ? dev->split_min_keys : EA_MIN_SPLIT_KEYS;
    int64_t slots = (int64_t)(dev->sm_count > 0 ? dev->sm_count : 1) * ctas_per_sm * waves;
    int64_t s = base_ctas >= slots ? 1 : slots / base_ctas;
    int64_t by_len = (nkv + min_keys - 1) / min_keys;
    if (s > by_len) s = by_len;
    if (s > EA_MAX_SPLITS) s = EA_MAX_SPLITS;
    while (s > 1 && split_ws_need(rows, (int32_t)s, d) > ws_bytes) s /= 2;
    return s < 1 ? 1 : (int32_t)s;
}

static int ctas_per_sm(const ea_cu_device *dev, uint32_t smem, uint32_t threads, uint32_t regs_per_thread) {
    int64_t by_smem = dev->smem_per_sm > 0 ? (int64_t)dev->smem_per_sm / ((int64_t)smem + 1024) : 1;
    int64_t by_regs = 65536 / ((int64_t)threads * regs_per_thread);
    int64_t n = by_smem < by_regs ? by_smem : by_regs;
    if (n < 1) n = 1;
    if (n > 4) n = 4;
    return (int)n;
}

int ea_cu_plan_attention(const ea_cu_device *dev, ea_cu_attn_args *a, uint64_t ws, size_t ws_bytes,
                         ea_cu_launch out[2]) {
    if (!dev || !a || !out) return 0;
    if (a->B <= 0 || a->Hq <= 0 || a->Hkv <= 0 || a->Nq <= 0 || a->Nkv < 0) return 0;
    if (a->D < 8 || a->D > 256 || (a->D & 7)) return 0; /* D not in ea_dims (e.g. 8, 24, 72): SIMT below */
    if (a->Hq % a->Hkv) return 0;
    a->group = a->Hq / a->Hkv;
    const int cc = dev->cc_major * 10 + dev->cc_minor;
    if (cc < 75) return 0;
    const int di = dim_index(a->D);
    const int kv16 = (a->k.dtype == EA_CU_F16 || a->k.dtype == EA_CU_BF16) && a->k.dtype == a->v.dtype;
    /* Q shares K's 16-bit type, or is F32: an F32 Q rounded to F16/BF16 for the tensor cores would lose
     * ~11 bits of every score, which large logits turn into visible error, so the decode kernels take it
     * as two 16-bit halves (decode.cu q2) and the prefill ones leave it to the SIMT path (mixed 16-bit
     * types too). */
    /* a paged cache (ring only) takes the paged decode kernels, page starts 16-byte aligned too */
    const int paged = a->pages.table != 0;
    if (paged && (a->ring_cap <= 0 || a->pages.page_shift < 4 || a->pages.page_shift > 30 || a->pages.page_elems <= 0 ||
                  a->pages.table_stride <= 0))
        return 0;
    const int q16 = a->q.dtype == a->k.dtype, q32 = a->q.dtype == EA_CU_F32 && (dev->preview & 1);
    const int mma_ok = cc >= 80 && di >= 0 && kv16 && (q16 || q32) && aligned_16b(&a->k) &&
                       aligned_16b(&a->v) && out_pairs_ok(&a->out) && (!paged || ((a->pages.page_elems * 2) & 15) == 0);
    const int64_t rows_kv = (int64_t)a->group * a->Nq; /* rows per (b, kv head) */
    const int64_t rows_total = (int64_t)a->B * a->Hq * a->Nq;
    const int bf = a->k.dtype == EA_CU_BF16;

    a->num_splits = 1;
    a->split_len = a->Nkv > 0 ? a->Nkv : 1;
    a->ws_o = 0;
    a->ws_lse = 0;
    a->ws_cnt = 0;

    /* (paged: no prefill variant; many rows go to the decode kernel's row blocks, unsplit) */
    /* a block-sparse mask: the prefill kernels with softcap/bias compiled in walk its listed blocks, for any
     * row count; the SIMT kernel checks it per key; the decode kernels do not know it */
    const int bsr = a->bm.block_q != 0;
    if (bsr && (a->bm.block_q < 64 || !a->bm.row_ptr || !a->bm.col_idx || a->bm.batch <= 0 || a->bm.heads <= 0 ||
                a->bm.nrb != (a->Nq + a->bm.block_q - 1) / a->bm.block_q))
        return 0;
    if (mma_ok && q16 && (rows_kv > EA_DECODE_MAX_ROWS || bsr) && !paged) {
        const int plain = a->softcap <= 0.f && a->bias.ptr == 0 && !bsr;
        int kernel = -1, bm = 0, threads = 0;
        uint32_t smem = 0;
        if ((int64_t)PF_SMEM(di) <= dev->smem_per_block_optin) {
            kernel = (plain ? (bf ? K_MMA_BF16_PLAIN : K_MMA_F16_PLAIN) : (bf ? K_MMA_BF16 : K_MMA_F16)) + di;
            bm = 16 * pf_mt[di] * pf_nw[di];
            threads = 32 * pf_nw[di];
            smem = (uint32_t)PF_SMEM(di);
        } else if (a->D == 128 && (int64_t)PF128S_SMEM <= dev->smem_per_block_optin) {
            kernel = K_MMA_S + (plain ? 2 : 0) + bf;
            bm = 16 * EA_PF_128S_MT * EA_PF_128S_NW;
            threads = 32 * EA_PF_128S_NW;
            smem = (uint32_t)PF128S_SMEM;
        }
        if (kernel >= 0) {
            const int64_t gx = a->Nq >= bm ? (int64_t)((a->Nq + bm - 1) / bm) * a->group : (rows_kv + bm - 1) / bm;
            set_launch(&out[0], kernel, (uint32_t)gx, (uint32_t)a->Hkv, (uint32_t)a->B, (uint32_t)threads, smem, 0);
            return 1;
        }
    }

    /* split-KV paths: decode kernel (mma_ok) or SIMT */
    int kernel, threads;
    uint32_t smem;
    int cps;
    const int dec_ok = mma_ok && dev->decode_kernel != 2 && !bsr && (q16 || rows_kv <= EA_DECODE_MAX_ROWS); /* knob 2: SIMT */
    const int dec_full = dec_ok && !(dev->decode_kernel == 1 && a->D == 128); /* knob 1: D128's small twin */
    if (dec_full && (int64_t)DC_SMEM(di) <= dev->smem_per_block_optin) {
        kernel = (paged ? (bf ? K_DEC_PG_BF16 : K_DEC_PG_F16) : (bf ? K_DEC_BF16 : K_DEC_F16)) + di;
        threads = 32 * dc_nw[di];
        smem = (uint32_t)DC_SMEM(di);
        cps = ctas_per_sm(dev, smem, (uint32_t)threads, a->D >= 256 ? 255u : 168u);
    } else if (dec_ok && a->D == 128 && (int64_t)DC128S_SMEM <= dev->smem_per_block_optin) {
        kernel = (paged ? K_DEC_PG_S : K_DEC_S) + bf;
        threads = 32 * EA_DC_128S_NW;
        smem = (uint32_t)DC128S_SMEM;
        cps = ctas_per_sm(dev, smem, (uint32_t)threads, 168u);
    } else {
        kernel = paged ? K_SIMT_PG : K_SIMT;
        threads = 128;
        smem = (uint32_t)EA_SIMT_SMEM(a->D);
        if ((int64_t)smem > dev->smem_per_block_optin && smem > 48u * 1024u) return 0;
        cps = ctas_per_sm(dev, smem, 128u, 128u);
    }
    /* query rows per block: 16, or 8 for an F32 Q on the decode kernels (their hi and lo halves fill 16) */
    const int64_t rbk = q32 && kernel != K_SIMT && kernel != K_SIMT_PG ? 8 : 16;
    const int64_t hs = a->Nq >= rbk ? (int64_t)(a->Nq + rbk - 1) / rbk * rbk : a->Nq;
    const int64_t nrb = ((int64_t)a->group * hs + rbk - 1) / rbk;
    int32_t s = 1;
    if (rows_kv <= EA_DECODE_MAX_ROWS && ws && a->Nkv > 0)
        s = choose_splits(dev, (int64_t)a->B * a->Hkv * nrb, cps, a->Nkv, rows_total, a->D, ws_bytes);
    if (s > 1) {
        int32_t len = (a->Nkv + s - 1) / s;
        len = (len + 63) / 64 * 64;
        s = (a->Nkv + len - 1) / len;
        if (s > 1) {
            a->num_splits = s;
            a->split_len = len;
            a->ws_o = ws + EA_SPLIT_CNT_BYTES;
            a->ws_lse = a->ws_o + align256((size_t)rows_total * (size_t)s * (size_t)a->D * 4u);
        }
    }
    if (nrb * a->num_splits > 0x7fffffff || a->Hkv > 65535 || a->B > 65535) return 0;
    set_launch(&out[0], kernel, (uint32_t)(nrb * a->num_splits), (uint32_t)a->Hkv, (uint32_t)a->B, (uint32_t)threads,
               smem, 0);
    if (a->num_splits <= 1) return 1;
    if (kernel != K_SIMT && kernel != K_SIMT_PG && (int64_t)a->B * a->Hkv * nrb <= EA_SPLIT_COUNTERS) {
        a->ws_cnt = ws; /* the decode kernel merges its splits (last CTA of each row block) */
        return 1;
    }
    if (rows_total > 0x7fffffff) return 0;
    set_launch(&out[1], K_COMBINE, (uint32_t)rows_total, 1, 1, 128, 0, 0);
    return 2;
}

size_t ea_cu_split_workspace_bytes(int32_t max_batch, int32_t max_heads, int32_t max_q_len, int32_t max_head_dim,
                                   int32_t sm_count_hint) {
    if (max_batch <= 0 || max_heads <= 0 || max_q_len <= 0 || max_head_dim <= 0) return 0;
    const int64_t nq = max_q_len < EA_DECODE_MAX_ROWS ? max_q_len : EA_DECODE_MAX_ROWS;
    const int64_t rows = (int64_t)max_batch * max_heads * nq;
    const int64_t sm = sm_count_hint > 16 ? sm_count_hint : 16;
    int64_t entries = rows * EA_MAX_SPLITS;
    const int64_t cap = 256 * sm + 2 * rows;
    if (entries > cap) entries = cap;
    return EA_SPLIT_CNT_BYTES + align256((size_t)entries * (size_t)max_head_dim * 4u) + align256((size_t)entries * 8u) +
           256u;
}

size_t ea_cu_split_counters_offset(int32_t max_batch, int32_t max_heads, int32_t max_q_len, int32_t max_head_dim,
                                   int32_t sm_count_hint) {
    (void)max_batch; (void)max_heads; (void)max_q_len; (void)max_head_dim; (void)sm_count_hint;
    return 0;
}

size_t ea_cu_split_counters_bytes(int32_t max_batch, int32_t max_heads, int32_t max_q_len, int32_t max_head_dim,
                                  int32_t sm_count_hint) {
    return ea_cu_split_workspace_bytes(max_batch, max_heads, max_q_len, max_head_dim, sm_count_hint) ? EA_SPLIT_CNT_BYTES
                                                                                                      : 0;
}

void ea_cu_plan_kv_write(const ea_cu_device *dev, const ea_cu_kv_write_args *a, ea_cu_launch *out) {
    (void)dev;
    set_launch(out, K_KV_WRITE, (uint32_t)((a->N + 3) / 4), (uint32_t)a->H, (uint32_t)a->B, 128, 0, 1);
}

void ea_cu_plan_summary(const ea_cu_device *dev, const ea_cu_summary_args *a, int32_t blocks, ea_cu_launch *out) {
    (void)dev;
    set_launch(out, K_KV_SUMMARY, (uint32_t)(blocks > 0 ? blocks : 1), (uint32_t)a->H, (uint32_t)a->B, 128, 0, 4);
}

void ea_cu_plan_topk(const ea_cu_device *dev, const ea_cu_topk_args *a, int32_t max_blocks, ea_cu_launch out[2]) {
    int64_t gx = ((int64_t)max_blocks + 7) / 8;
    const int64_t cap = (int64_t)(dev && dev->sm_count > 0 ? dev->sm_count : 16) * 4;
    if (gx > cap) gx = cap; /* (the score kernel strides over the rest) */
    if (gx < 1) gx = 1;
    set_launch(&out[0], K_TOPK_SCORE, (uint32_t)gx, (uint32_t)a->Hkv, (uint32_t)a->B, 256,
               (uint32_t)((size_t)(a->Hq / a->Hkv) * (size_t)a->D * sizeof(float)), 5);
    set_launch(&out[1], K_TOPK_SELECT, (uint32_t)a->Hkv, (uint32_t)a->B, 1, 256, 0, 5);
}

/* The pipelined projection of nc columns a CTA: F16 E, F, K and V in 16-byte pieces, N a multiple of 8
 * (pieces of keys), and the device's shared memory for its stages. */
static int proj_pipe_ok(const ea_cu_device *dev, const ea_cu_proj_args *a, int nc) {
    return dev && (dev->preview & 2) && a->e.dtype == EA_CU_F16 && a->f.dtype == EA_CU_F16 && a->N % 8 == 0 &&
           aligned_16b(&a->e) && aligned_16b(&a->f) && aligned_16b(&a->k) && aligned_16b(&a->v) &&
           dev->smem_per_block_optin >= (int64_t)EA_PJP_SMEM(nc);
}

int ea_cu_plan_proj(const ea_cu_device *dev, const ea_cu_proj_args *a, ea_cu_launch *out) {
    const int cc = dev ? dev->cc_major * 10 + dev->cc_minor : 0;
    const int z = a->B * a->Hkv * 2;
    if (a->B <= 0 || a->Hkv <= 0 || a->rows <= 0 || a->N <= 0 || a->D <= 0 || (a->D & 7) || z > 65535) return 0;
    const int t16 = a->k.dtype == EA_CU_F16 && a->v.dtype == EA_CU_F16 && a->ko.dtype == EA_CU_F16 &&
                    a->vo.dtype == EA_CU_F16;
    const int nc = a->D % 128 == 0 ? 128 : 64; /* (the pipelined kernel's columns a CTA) */
    if (cc >= 80 && t16 && proj_pipe_ok(dev, a, nc)) {
        set_launch(out, nc == 128 ? K_PROJ_PIPE128 : K_PROJ_PIPE64, (uint32_t)((a->rows + 127) / 128),
                   (uint32_t)((a->D + nc - 1) / nc), (uint32_t)z, (uint32_t)(2 * nc), (uint32_t)EA_PJP_SMEM(nc), 6);
        return 1;
    }
    if (cc >= 80 && t16) {
        set_launch(out, K_PROJ_F16, (uint32_t)((a->rows + 63) / 64),
                   (uint32_t)((a->D + 63) / 64), (uint32_t)z, 128, 0, 6);
        return 1;
    }
    if (a->ko.dtype != EA_CU_F32 || a->vo.dtype != EA_CU_F32) return 0;
    set_launch(out, K_PROJ_SIMT, (uint32_t)(((int64_t)a->rows * a->D + 127) / 128), 1, (uint32_t)z, 128, 0, 6);
    return 1;
}

void ea_cu_plan_finite(const ea_cu_device *dev, const ea_cu_finite_args *a, ea_cu_launch *out) {
    int64_t total = a->B * a->H * a->N * a->D;
    int64_t blocks = (total + 255) / 256;
    int64_t cap = (int64_t)(dev && dev->sm_count > 0 ? dev->sm_count : 16) * 8;
    if (blocks > cap) blocks = cap;
    if (blocks < 1) blocks = 1;
    set_launch(out, K_FINITE, (uint32_t)blocks, 1, 1, 256, 0, 2);
}

void ea_cu_plan_peak(const ea_cu_device *dev, ea_cu_launch *out, int64_t *flops_per_launch, int32_t iters) {
    const int64_t blocks = (int64_t)(dev && dev->sm_count > 0 ? dev->sm_count : 1) * 8;
    set_launch(out, K_PEAK, (uint32_t)blocks, 1, 1, 256, 0, 3);
    if (flops_per_launch) *flops_per_launch = blocks * 8 * (int64_t)iters * 8 * 4096;
}
