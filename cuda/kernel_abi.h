/*
 * The contract between the CUDA host code (the cuda/ C files, plain C11, driver API through dlopen) and the
 * kernels (the cuda/ .cu files, compiled by nvcc into the embedded fatbin). Every kernel is `extern "C"` so the
 * host finds it by name with cuModuleGetFunction, and takes exactly one argument: one of the structs
 * below, by value. Plain C types only; device addresses are uint64_t (CUdeviceptr).
 *
 * Positions (both attention and decode use one rule, so one kernel can serve both):
 *   batch row b has kv_len_b visible keys and q_len_b queries (rows i >= q_len_b of the call's Nq are
 *   neither computed nor written, out and lse alike); logical key j in [0, kv_len_b) sits at absolute
 *   position key_pos0_b + j and is stored in row slot(j) of K/V batch index kv_b_b; query i in
 *   [0, q_len_b) sits at absolute position qpos(i) = key_pos0_b + kv_len_b - q_len_b + i (bottom right).
 *   key j is visible to query i iff (!causal || pos(j) <= qpos(i))
 *                                 && (window_left  < 0 || pos(j) >= qpos(i) - window_left)
 *                                 && (window_right < 0 || pos(j) <= qpos(i) + window_right).
 *   attention: key_pos0 = 0, slot(j) = j, kv_len_b = kv_lens[b] or Nkv, q_len_b = Nq, kv_b_b = b.
 *   decode (ring cache of ring_cap slots, the first ring_sinks of them sinks): slot(j) = j for
 *   j < ring_sinks, else ring_sinks + (slot0_b + j - ring_sinks) mod (ring_cap - ring_sinks), where slot0_b
 *   is the ring offset of the first ring key held (ring_sinks 0: slot(j) = (slot0_b + j) mod ring_cap,
 *   slot0_b = key_pos0_b mod ring_cap); kv_len_b = tokens held, kv_b_b = the cache sequence of row b.
 *   A sinks cache that has evicted tokens numbers its held keys consecutively (masks count held keys);
 *   key_pos0_b is then the evicted count, so qpos(i) is still the query's true position for RoPE.
 * Where a slot is stored: contiguous K/V (pages.table 0), row slot of batch index kv_b, head h at element
 * kv_b*sb + h*sh + slot*sn of the tensor; a paged cache (ea_cu_pages, ABI 3) at element
 * table[b*table_stride + (slot >> page_shift)] * page_elems + h*sh + (slot & (P-1))*sn, P = 1 << page_shift,
 * the table row taken by the call's batch row b (kv_b and sb unused).
 * A block-sparse mask (ea_cu_bsr) masks every key outside the listed blocks of query i's row block.
 * Scores: s = scale * q.k; if softcap > 0: s = softcap * tanh(s / softcap); then s += bias (if any);
 * masked keys do not take part. A row with no visible key writes zeros and lse = -INFINITY.
 * lse is the natural-log sum of exp(s) over the visible keys.
 * RoPE (ea_cu_rope, inv_freq != 0): the pair p < dim/2 of a head's first dim values, (p, p + dim/2)
 * for style 1 or (2p, 2p + 1) for style 2, is rotated by the angle a = (pos * pos_scale) * inv_freq[p]
 * (double): x0' = x0 c - x1 s, x1' = x0 s + x1 c in FP32 with c, s = cos a, sin a rounded to FP32. The
 * attention kernels rotate each query at qpos(i) (the score scale applies to the rotated query),
 * ea_kv_write each key it stores at its position. The kernels reduce a modulo 2 pi in double and evaluate cos/sin in FP32 (a few FP32 ulps
 * from the correctly rounded values; double cos/sin would cost 1/64-rate FP64 on most parts).
 */
#ifndef EDGEATTN_CUDA_KERNEL_ABI_H
#define EDGEATTN_CUDA_KERNEL_ABI_H

#include <stdint.h>

#define EA_CU_ABI_VERSION 4

/* Element types (values equal edgeattn_dtype). */
#define EA_CU_F32 0
#define EA_CU_F16 1
#define EA_CU_BF16 2

/* A paged KV cache (ABI 3): pages of page_elems elements from the K (and V) base address, each holding
 * [heads][P][dim] of P consecutive slots of one (layer, sequence). table: device int32 [B][table_stride],
 * row b the page numbers of the call's batch row b (entry i: the page of slots [i*P, (i+1)*P)); every
 * entry a kernel reads is a page of the pool (entries of slots no key or row of the call touches may be
 * anything, e.g. -1). table 0: the contiguous layout, no page lookups. */
typedef struct ea_cu_pages {
    uint64_t table;       /* const int32_t * (device) or 0 */
    int64_t page_elems;   /* elements from one page to the next (a multiple of 8) */
    int32_t page_shift;   /* log2(P), P = slots per page (>= 16) */
    int32_t table_stride; /* entries per batch row of table */
} ea_cu_pages;

/* A block-sparse mask (ABI 4; edgeattn_block_mask with its arrays in device memory): row block r (query
 * rows [r*block_q, (r+1)*block_q)) of pattern p = (b % batch)*heads + (hkv % heads) keeps the key blocks
 * (keys [c*64, (c+1)*64)) col_idx[row_ptr[p*(nrb+1) + r] .. row_ptr[p*(nrb+1) + r + 1] - 1], strictly
 * increasing; every other score is masked. block_q 0: no mask. The prefill kernels visit only the listed
 * blocks (the planner sends a masked call to the tensor-core prefill kernel with softcap/bias compiled
 * in, or to the SIMT kernel). */
typedef struct ea_cu_bsr {
    uint64_t row_ptr;     /* const int32_t * (device) */
    uint64_t col_idx;     /* const int32_t * (device) */
    int32_t block_q;      /* 64 or 128; 0: none */
    int32_t nrb;          /* row blocks per pattern: ceil(Nq / block_q) */
    int32_t batch, heads; /* patterns: 1 or B, 1 or Hkv */
} ea_cu_bsr;

/* Top-k decode (ABI 4): logical key j of batch row b, KV head h is key j & (2^shift - 1) of block
 * sel[(b*Hkv + h)*stride + (j >> shift)] of the cache (slot = block * 2^shift + that), the blocks
 * ea_topk_select chose, in increasing order; sel 0: none. (A top-k cache has no ring: slot = position.) */
typedef struct ea_cu_topk {
    uint64_t sel;     /* const int32_t * (device) or 0 */
    int32_t shift;    /* log2 of the summary block */
    int32_t stride;   /* entries per (b, KV head) row of sel */
} ea_cu_topk;

/* Per batch row position info (device array of B entries; NULL seq pointer: kv_len = Nkv, key_pos0 = 0,
 * slot0 = 0, kv_b = b, q_len = Nq for every row). */
typedef struct ea_cu_seq {
    int64_t key_pos0; /* absolute position of logical key 0 */
    int32_t kv_len;   /* visible keys (0 allowed: the rows of that sequence are fully masked) */
    int32_t slot0;    /* storage row of logical key 0 (decode ring); 0 for attention */
    int32_t kv_b;     /* batch index of this row's keys/values in K/V (decode: its cache sequence; unused
                         with pages: the page table row is the batch row's) */
    int32_t q_len;    /* queries of this row, 1..Nq: rows i >= q_len are not computed or written */
} ea_cu_seq;

/* RoPE applied by a kernel (see the header comment); inv_freq 0: none. */
typedef struct ea_cu_rope {
    uint64_t inv_freq; /* const double [dim / 2] in device memory, or 0 */
    double pos_scale;  /* 1 / linear_scale */
    int32_t style;     /* 1: pairs (p, p + dim/2); 2: pairs (2p, 2p + 1) */
    int32_t dim;       /* rotated values per head (even, <= D) */
} ea_cu_rope;

/* A strided 4-D tensor [B, H, N, D] in device memory; strides in elements, stride over D is 1. A
 * stride of 0 broadcasts (inputs only: q, k, v, bias over B, H or N). */
typedef struct ea_cu_tensor {
    uint64_t ptr;        /* 0: absent */
    int64_t sb, sh, sn;  /* element strides of B, H, N */
    int32_t dtype;       /* EA_CU_* */
    int32_t pad_;
} ea_cu_tensor;

/* Attention over [B, Hq, Nq, D] queries and [B, Hkv, Nkv-rows, D] keys/values: the prefill kernels
 * (tensor-core flash attention and the SIMT fallback) take this. The grid is the kernel's own choice
 * (see cuda/launch rules in cuda/README.md); block and shared-memory sizes come from the host table
 * in cuda/kernels.h, which is the single place that pairs each kernel with its launch shape. */
typedef struct ea_cu_attn_args {
    ea_cu_tensor q, k, v, out;
    ea_cu_tensor bias;   /* F32 [B|1, Hq|1, Nq, Nkv] (sb/sh may be 0), ptr 0 = none; indexed by logical key j */
    ea_cu_tensor lse;    /* F32 [B, Hq, Nq, 1], ptr 0 = none */
    uint64_t seq;        /* const ea_cu_seq * (device) or 0 */
    int32_t B, Hq, Hkv, Nq, Nkv, D; /* Nkv: upper bound of kv_len over sequences */
    int32_t group;       /* Hq / Hkv */
    int32_t ring_cap;    /* > 0: slots wrap modulo ring_cap (decode); 0: slot(j) = j */
    int32_t ring_sinks;  /* ring_cap > 0: slots [0, ring_sinks) hold sinks, the ring is the rest (ABI 4) */
    int32_t pad0_;
    float scale;         /* already resolved (never 0) */
    float softcap;       /* 0: none */
    int32_t causal;
    int32_t window_left, window_right; /* -1: unlimited */
    /* split-KV (decode): the key range of each sequence is cut into num_splits pieces of split_len
     * keys; partial results go to ws_o [B, Hq, Nq, num_splits, D] (F32) and ws_lse [B, Hq, Nq, num_splits, 2]
     * (F32 row max in natural-log units and row sum), then the combine kernel merges them into out/lse. */
    int32_t num_splits;
    int32_t split_len;
    uint64_t ws_o, ws_lse;
    /* fused merge (decode kernels, num_splits > 1): uint32 arrival counters, one per (b, kv head, row
     * block of 16 packed rows) at index (b*Hkv + hkv)*row_blocks + rb, zero before the call and zero again
     * after it (the last CTA of a row block merges the partials into out/lse and wraps its counter to 0;
     * no combine launch). 0: the combine kernel merges (second launch). Set by ea_cu_plan_attention. */
    uint64_t ws_cnt;
    ea_cu_rope rope;     /* queries rotated at their positions (decode: needs seq); inv_freq 0: none */
    ea_cu_pages pages;   /* paged K/V (decode, ring_cap > 0: slot0 < ring_cap, kv_len <= ring_cap; K and V
                            with the same sh and sn); table 0: contiguous */
    ea_cu_bsr bm;        /* block-sparse mask (attention); block_q 0: none */
    ea_cu_topk topk;     /* top-k decode: the chosen blocks (kv_len counts their keys); sel 0: none */
} ea_cu_attn_args;

/* Block summaries of a cache (config.kv_summary_block, no ring): per (layer, sequence, KV head, block of
 * 2^shift slots), the per-channel min and max of the stored keys, at summ + (((seq*cache_heads_max + h) *
 * nblk + blk) * 2 + {0 min, 1 max}) * dim_max floats (summ: the call's layer). */
typedef struct ea_cu_summ {
    uint64_t summ;       /* float * (device) */
    int32_t shift, nblk; /* block of 2^shift slots; blocks per (sequence, head) */
    int32_t heads_max, dim_max;
} ea_cu_summ;

/* ea_kv_summary (after an append): for b < B, h < H, every block the rows of rows[b] touch (positions
 * [pos0, pos0 + n + jump)) gets the min and max over its stored rows below that end, read from k (the
 * layer's K, or the pool's with pages; slot = position), D values a row. grid (blocks, H, B). */
typedef struct ea_cu_summary_args {
    uint64_t k;          /* const cache_dtype * */
    uint64_t rows;       /* const ea_cu_kv_row * (the append's) */
    int32_t B, H, D, cache_heads, cap, cache_dtype;
    ea_cu_summ sm;
    ea_cu_pages pages;
} ea_cu_summary_args;

/* ea_topk_score, then ea_topk_select (one CTA per (b, KV head)): block blk < nblk_b = ceil(total_b / 2^shift)
 * of sequence seq[b].kv_b scores max over the group's query heads of sum_d max(q_d * min_d, q_d * max_d)
 * (q rotated at position total_b - 1; the score scale is positive and left out); a NaN score counts as
 * +inf, and the first and the newest block as +inf; the keep_b = min(keep, nblk_b) best blocks go to
 * sel[(b*Hkv + h)*stride ...] in increasing order (ties: lower blocks first). score: float scratch of
 * B*Hkv*stride. total_b = seq[b].key_pos0 + seq[b].kv_len (the call's sequence info for the decode). */
typedef struct ea_cu_topk_args {
    ea_cu_tensor q;      /* [B, Hq, 1, D] */
    uint64_t seq;        /* const ea_cu_seq * (the decode's: key_pos0 + kv_len = total) */
    uint64_t score, sel;
    int32_t B, Hq, Hkv, D, keep, stride;
    ea_cu_rope rope;
    ea_cu_summ sm;
} ea_cu_topk_args;

/* One batch row of a KV-cache append (ABI 4): kept rows r in [0, n), each at absolute position
 * pos0 + r + (r >= at ? jump : 0) and read from source row r (a staged source: it holds only the kept
 * rows) or from that position less pos0 (in place). The rows a cache drops (past a sinks cache's sinks,
 * or overwritten by later rows of the same append) are jumped over: a plain append has at 0 and jump =
 * the rows skipped. */
typedef struct ea_cu_kv_row {
    int64_t pos0;   /* absolute position of source row 0 */
    int32_t n;      /* kept rows */
    int32_t at;     /* kept rows from here on follow the jump */
    int32_t jump;   /* rows skipped at `at` */
    int32_t seq;    /* cache sequence (batch index in the layer) the rows go to */
} ea_cu_kv_row;

/* Appends rows to one layer of the KV cache: for b < B, h < H, kept row r in [0, n_b) (ea_cu_kv_row: its
 * source row and position p) goes to slot s of k_dst/v_dst, s = p for p < sinks, else
 * sinks + (p - sinks) mod (ring_cap - sinks), converted to cache_dtype; keys rotated by rope at p.
 * Contiguous (pages.table 0): cache row (seq_b*cache_heads + h)*ring_cap + s (rows of D elements, from
 * the layer's K and V). Paged: element table[b*table_stride + (s >> page_shift)] * page_elems + (h*P + (s & (P-1)))*D from the pool's K and V
 * (seq_b unused). rows: device ea_cu_kv_row [B]. Sources may broadcast (stride 0 over B, H or N). */
typedef struct ea_cu_kv_write_args {
    ea_cu_tensor k_src, v_src;
    uint64_t k_dst, v_dst; /* the layer's K and V (paged: the pool's) */
    uint64_t rows;       /* const ea_cu_kv_row * (device) */
    int32_t B, H, N, D;
    int32_t cache_heads, ring_cap, cache_dtype, sinks;
    int32_t staged;      /* sources hold only the kept rows of each batch row (ea_cu_kv_row) */
    int32_t pad_;
    ea_cu_rope rope;     /* keys only; inv_freq 0: none */
    ea_cu_pages pages;   /* paged cache; table 0: contiguous */
} ea_cu_kv_write_args;

/* Linformer projections (ABI 4): for b < B, h < Hkv, r < rows, d < D:
 *   ko[b, h, r, d] = sum_j e[b', h', r, j] * k[b, h, j, d] and vo likewise from f and v, j < N,
 * with b', h' = 0 where e / f broadcast (sb / sh 0). e, f any float dtype; k, v F16 for the
 * tensor-core kernels (ko, vo then in the same type), any dtype for the SIMT one (ko, vo F32).
 * grid z = (b*Hkv + h)*2 + {0: K, 1: V}. */
typedef struct ea_cu_proj_args {
    ea_cu_tensor e, f, k, v, ko, vo;
    int32_t B, Hkv, rows, N, D, pad_;
} ea_cu_proj_args;

/* NaN/Inf scan of a strided [B, H, N, D] tensor: sets *flag (device uint32) to 1 if any element is
 * NaN or +Inf, or -Inf when neg_inf_ok is 0. */
typedef struct ea_cu_finite_args {
    ea_cu_tensor t;
    int64_t B, H, N, D;
    uint64_t flag;
    int32_t neg_inf_ok, pad_;
} ea_cu_finite_args;

/* Tensor-core throughput probe for edgebench's ceiling: each warp runs iters dependent-chain-free
 * m16n8k16 FP16 MMAs (FP32 accumulate) on register data and writes one value per warp to sink. */
typedef struct ea_cu_peak_args {
    uint64_t sink;
    int32_t iters, pad_;
} ea_cu_peak_args;

#endif
