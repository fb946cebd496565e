/* The CPU backend's state and its portable flash-attention driver. */
#ifndef EDGEATTN_CPU_ATTN_CPU_H
#define EDGEATTN_CPU_ATTN_CPU_H

#include "core/ea_core.h"
#include "cpu_simd/threadpool.h"
#include "cpu_simd/tune.h"
#include "cpu_simd/ukernel.h"

/* Per-thread scratch, offsets from the thread's slice (all 64-byte aligned). */
typedef struct ea_cpu_scratch_layout {
    size_t q, o, m, l, alpha, lo, hi, s, kt, v32, shift;
    size_t tk_score, tk_idx; /* top-k decode: [blocks] bounds and block indices (0 bytes without summaries) */
    size_t tk_qlo, tk_qhi;   /* top-k decode: [EA_MR][max_dim rounded up to 16] the split queries min(q, 0),
                                max(q, 0) */
    size_t tk_s;             /* top-k decode: [EA_MR][kb] the max(q, 0) . max part of a run's bounds */
    size_t ws, wa;           /* the wide path (ea_cpu_wide): [rb][kb] scores of every row of a tile, [rb] their
                                rescales (0 bytes when the config has no head dims that wide) */
    bool wide;               /* ws, wa planned */
    size_t bytes; /* one thread's slice */
} ea_cpu_scratch_layout;

typedef struct ea_cpu_state {
    ea_pool pool;
    ea_cpu_kernels k;       /* head dims that are multiples of 16 */
    ea_cpu_kernels k8;      /* the other multiples of 8 (ea_cpu_kernels_init_dim8) */
    ea_cpu_tiles tiles;     /* rb capped to what the config's calls can need (ea_cpu_fit_tiles) */
    bool can_pack;          /* a call can have more rows than the rows path takes: kt/v32 exist */
    int64_t inline_work;    /* calls of fewer multiply-adds run on the caller's thread ... */
    int64_t wake_work;      /* ... or of fewer than this while every worker sleeps */
    int32_t threads;
    int32_t max_dim;        /* Q·K head dim planned */
    int32_t max_dim_v;      /* V head dim planned (partials, o, v32) */
    uint32_t features, features_used;
    char model[128];
    ea_cpu_scratch_layout sl;
    char *scratch;          /* [threads][sl.bytes] */
    float *part;            /* split-KV partials: [part_items][tiles.rb][max_dim_v + 2] */
    float *lowrank;         /* Linformer: K' then V', each [max_batch][max_kv_heads][max_lowrank][max_dim] F32 */
    size_t lowrank_half;    /* floats of each */
    atomic_int *arrive;     /* [part_items] split-KV partials finished, per merge group */
    int64_t part_items;
    /* the decode path (decode_small.c), caller only */
    double dec_rate;        /* multiply-adds per microsecond of recent decode calls run by the caller alone */
    double dec_arm[3];      /* the same for calls that could be shared: [0] run alone, [1] shared with
                               workers awake, [2] shared waking them */
    uint32_t dec_probe[3];  /* candidates since the last probe (one run the other way), per shared arm */
    uint32_t dec_probe_every[3]; /* candidates between probes */
    uint32_t dec_rouse;     /* calls since sleeping workers were last woken for a small call */
    uint32_t dec_sample;    /* calls too small to share, counted to time one in EA_DEC_PROBE */
} ea_cpu_state;

/* A call runs on the caller's thread, unsplit, when its estimated multiply-adds (query rows x
 * visible keys x head dim, Q·Kᵀ only) are below EA_CPU_INLINE_WORK, or below EA_CPU_WAKE_WORK
 * while the workers are unlikely to help (ea_pool_helpful: all asleep, or recent jobs run by the
 * caller alone). Handing work to a spinning worker costs about a microsecond; waking a sleeping one
 * costs the caller a system call and brings the worker tens of microseconds later, after a small
 * call is over. Measured on a 2-core Zen 3 (AVX2, ~14k multiply-adds per
 * microsecond per thread in decode); EDGEATTN_CPU_INLINE="<awake>[,<asleep>]" overrides them. */
#define EA_CPU_INLINE_WORK 65536
#define EA_CPU_WAKE_WORK 1048576
/* The rate those thresholds assume (multiply-adds per microsecond of one thread). The decode path
 * scales a call's work by this rate over the rate it measures (decode_small.c): a decode over a
 * cache that the application's other work evicted streams it from DRAM several times slower, long
 * enough to be worth waking a worker for. */
#define EA_CPU_NOMINAL_RATE 14000.0

/* The wide path: head dims past the former limit (D + D_v > EA_CPU_WIDE, e.g. MLA's 576 + 512) on the
 * packed path. A tile's Kᵀ [D][kb] and V [kb][D_v] no longer fit a core's L1 (nor, at kb 256, its L2),
 * and the row-block-outer order streamed a whole Kᵀ and V per 8 rows, at a quarter of the FMA peak. It
 * runs each tile as two GEMMs in BLIS order instead: S [R][kb] = Q Kᵀ over chunks of EA_WIDE_DC head-dim
 * values and panels of EA_WIDE_JB keys (24 KiB of Kᵀ, reused from L1 by every 8 rows), then the
 * softmax of all R rows, then O += P V over EA_WIDE_KC keys x EA_WIDE_CB columns (24 KiB of V, reused
 * the same way). The same micro-kernels, every tier. */
#define EA_CPU_WIDE 512
#define EA_WIDE_DC 128
#define EA_WIDE_JB 48
#define EA_WIDE_KC 64
#define EA_WIDE_CB 96

/* Caps tiles->rb to the rows one work item of this config can have (max_q_len x max_heads: a call
 * may use a single KV head, making the GQA group all of its query heads), rounded up to EA_MR, and
 * says whether any call can take the packed path (which needs the kt/v32 tiles). */
void ea_cpu_fit_tiles(int32_t max_q_len, int32_t max_heads, ea_cpu_tiles *t, bool *can_pack);
/* Scratch layout for a config and tiles; false on overflow. */
bool ea_cpu_scratch_plan(int32_t max_dim, int32_t max_dim_v, const ea_cpu_tiles *t, bool can_pack,
                         int64_t summary_blocks, ea_cpu_scratch_layout *sl);
/* Partial-result slots reserved for split-KV (a multiple of the thread count), for tiles of rb rows. */
int64_t ea_cpu_part_items(int32_t threads, int32_t rb);

edgeattn_status ea_cpu_run(ea_cpu_state *st, const ea_attn_call *call);
/* Top-k decode (call->topk_tokens): the blocks of (b, kvh) to attend to, for the R query rows q32
 * ([R][D], scaled and rotated), into *sel in increasing order (the thread's scratch); their count, or
 * 0 when the budget covers every block. */
int32_t ea_cpu_topk(const ea_attn_call *c, const ea_cpu_state *st, char *scr, int32_t b, int32_t kvh, const float *q32,
                    int32_t R, int64_t total, const int32_t **sel);
/* The next run of consecutive selected blocks [*c0, *c1] of a top-k selection (sel[0, n), increasing),
 * from sel[*i]; false when none is left. */
static inline bool ea_sel_run(const int32_t *sel, int32_t n, int32_t *i, int32_t *c0, int32_t *c1)
{
    if (*i >= n)
        return false;
    *c0 = *c1 = sel[(*i)++];
    while (*i < n && sel[*i] == *c1 + 1) {
        (*c1)++;
        (*i)++;
    }
    return true;
}

/* Linformer (call->linformer): K' = E K and V' = F V into st->lowrank, then attention over them. */
edgeattn_status ea_cpu_linformer(ea_cpu_state *st, const ea_attn_call *call);

/* Quantised caches. The kernels see the normalised rows x̂ (x = c x̂ + m per channel, the statistics of
 * the (layer, sequence, KV head), core/ea_core.h); the driver folds the statistics in around them:
 * a query row q (scaled, rotated) becomes q ⊙ c_k and the scores q·x̂ lack shift = q·m_k, the same
 * for every key of the row (so the softmax is unchanged; the shift goes into lse, or into the scores
 * before a softcap); the output row is c_v ⊙ (o / l) + m_v. */
/* The statistics of (b, kvh) of a decode call over a quantised cache, else NULL. */
static inline const float *ea_cpu_qstats(const ea_attn_call *c, int32_t b, int32_t kvh)
{
    return c->decode && c->cache->stats ? ea_kv_stats(c->cache, c->layer, c->seq_ids[b], kvh) : NULL;
}
/* q ⊙= c_k; returns q·m_k (of q before the product). */
static inline float ea_cpu_q_fold(const float *qst, int32_t max_dim, float *q, int32_t D)
{
    float shift = 0.0f;
    for (int32_t d = 0; d < D; d++) {
        shift += q[d] * qst[d];
        q[d] *= qst[max_dim + d];
    }
    return shift;
}
/* Writes one finished row: out[off + d] = o[d] / l, or c_v ⊙ (o / l) + m_v with statistics qst; zeros
 * when l is 0 (the row saw no key). */
void ea_cpu_store_row(const edgeattn_tensor *out, ptrdiff_t off, const float *o, float l, const float *qst,
                      int32_t max_dim, int32_t D);

/* Split-KV partials (the tile path and the one-row decode path share them). Slot `item` holds R rows
 * of a split's result: [RB][D] o (unnormalised sums; D the call's V head dim), then [RB] m, [RB] l.
 * ea_cpu_part_park copies o, m, l in and returns true for the last of the nsplit splits of its merge
 * group (item / nsplit) to arrive, which then calls ea_cpu_part_merge to combine the group's slots by
 * log-sum-exp into o, m, l (rows that saw no key: o zero, m -inf, l 0). */
bool ea_cpu_part_park(const ea_cpu_state *st, int64_t item, int32_t nsplit, int32_t R, int32_t D, const float *o,
                      const float *m, const float *l);
void ea_cpu_part_merge(const ea_cpu_state *st, int64_t group, int32_t nsplit, int32_t R, int32_t D, float *o, float *m,
                       float *l);

/* A tile's keys gathered from pieces of rows contiguous in storage (a paged cache: one piece per page).
 * A piece after the first starts at a multiple of 16 columns of the score tile, where the kernels'
 * vector stores need it; the scores and P.V then run piece by piece, o rescaled once per tile. */
#define EA_MAX_PIECES (EA_KB_MAX / 16 + 1)
typedef struct ea_kv_pieces {
    const char *k[EA_MAX_PIECES], *v[EA_MAX_PIECES];
    int32_t n[EA_MAX_PIECES];
    int32_t count, rows; /* pieces, and keys over all of them */
    const char *next_k;  /* the next tile's first keys (next_n rows, ld as the last piece's), prefetched
                            while this tile is scored; NULL: none */
    int32_t next_n;
} ea_kv_pieces;

/* Adds n rows at k, v; returns whether another piece may follow to reach `want` keys. */
static inline bool ea_pieces_add(ea_kv_pieces *p, const char *k, const char *v, int32_t n, int32_t want)
{
    p->k[p->count] = k;
    p->v[p->count] = v;
    p->n[p->count++] = n;
    p->rows += n;
    return p->rows < want && p->rows % 16 == 0 && p->count < EA_MAX_PIECES;
}

/* Prefetches n rows of `bytes` each, ld elements of size es apart (one run of a page), into the cache. */
static inline void ea_prefetch_rows(const char *x, int32_t n, ptrdiff_t ld, size_t es, size_t bytes)
{
#if defined(__GNUC__) || defined(__clang__)
    for (int32_t r = 0; r < n; r++, x += (size_t)ld * es)
        for (size_t b = 0; b < bytes; b += 64)
            __builtin_prefetch(x + b, 0, 3);
#else
    (void)x, (void)n, (void)ld, (void)es, (void)bytes;
#endif
}

/* s[r][off + j] = q[r] . K row j of each piece (off: the piece's first column). Pieces from pages are
 * short runs (a page of 16 F16 rows of head dim 128 is 4 KiB, the span a hardware prefetcher follows):
 * while one piece is scored, the next piece's keys and this piece's values are prefetched, so each run
 * does not start with a cold miss (the CPU's paged decode over pages of 16: 1.75x the contiguous time
 * without it, 1.56x with it). */
static inline void ea_qk_pieces(const ea_cpu_kernels *K, edgeattn_dtype dt, int mr, int dim, const float *q,
                                ptrdiff_t ldq, const ea_kv_pieces *p, ptrdiff_t ldk, ptrdiff_t ldv, float *s,
                                ptrdiff_t lds)
{
    if (p->count == 1 && !p->next_k) {
        K->qk_rows[dt](mr, p->n[0], dim, q, ldq, p->k[0], ldk, s, lds);
        return;
    }
    /* 16 keys at a time (the score tile's vector alignment), each step prefetching its share */
    const size_t es = ea_kv_unit_size(dt), row = ea_kv_row_units(dt, (size_t)dim) * es;
    for (int32_t i = 0, off = 0; i < p->count; off += p->n[i++]) {
        const int32_t n = p->n[i], n1 = i + 1 < p->count ? p->n[i + 1] : p->next_k ? p->next_n : 0;
        const char *k1 = i + 1 < p->count ? p->k[i + 1] : p->next_k;
        for (int32_t r0 = 0; r0 < n; r0 += 16) {
            const int32_t nr = n - r0 < 16 ? n - r0 : 16;
            const int32_t a = (int32_t)((int64_t)r0 * n1 / n), b = (int32_t)((int64_t)(r0 + nr) * n1 / n);
            ea_prefetch_rows(p->v[i] + (size_t)r0 * (size_t)ldv * es, nr, ldv, es, row);
            if (b > a)
                ea_prefetch_rows(k1 + (size_t)a * (size_t)ldk * es, b - a, ldk, es, row);
            K->qk_rows[dt](mr, nr, dim, q, ldq, p->k[i] + (size_t)r0 * (size_t)ldk * es, ldk, s + off + r0, lds);
        }
    }
}

/* o = alpha o + P V over the pieces (alpha applied with the first piece only). */
static inline void ea_pv_pieces(const ea_cpu_kernels *K, edgeattn_dtype dt, int mr, int dim, const float *s,
                                ptrdiff_t lds, const ea_kv_pieces *p, ptrdiff_t ldv, const float *alpha, float *o,
                                ptrdiff_t ldo)
{
    static const float ones[EA_MR] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    for (int32_t i = 0, off = 0; i < p->count; off += p->n[i++])
        K->pv_rows[dt](mr, p->n[i], dim, s + off, lds, p->v[i], ldv, i == 0 ? alpha : ones, o, ldo);
}

#endif
