/*
 * Internal core: status helpers, overflow-checked sizes, the bump arena, the context and the
 * validated call that core hands to a backend. Not installed.
 */
#ifndef EDGEATTN_CORE_EA_CORE_H
#define EDGEATTN_CORE_EA_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgeattn/edgeattn.h"

#define EA_MSG_LEN 256
/* Head dims: multiples of 8 up to EA_MAX_HEAD_DIM_CPU (Q·K and V; DeepSeek's MLA decode: 576 for Q·K, 512
 * for V) on the CPU backend; the GPU backends, quantised caches and RoPE (its tables) keep
 * EA_MAX_HEAD_DIM. */
#define EA_MAX_HEAD_DIM 256
#define EA_MAX_HEAD_DIM_CPU 576
#define EA_MAX_THREADS 256
#define EA_MAX_LAYERS 1024

#if defined(__GNUC__) || defined(__clang__)
#define EA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EA_PRINTF(a, b)
#endif

/* Writes a formatted message into msg (EA_MSG_LEN bytes, may be NULL) and returns st. */
edgeattn_status ea_fail(char *msg, edgeattn_status st, const char *fmt, ...) EA_PRINTF(3, 4);

size_t ea_dtype_size(edgeattn_dtype dt); /* a tensor element's bytes: 0 for Q8, Q4 and invalid dtypes */
const char *ea_dtype_name(edgeattn_dtype dt);

/* ---- quantised KV rows (core/quant.c)
 * A Q8 row of head dim D (a multiple of EA_Q_GROUP) is D int8 levels -127..127, then its F32 scale; a
 * Q4 row is D/2 bytes, then its F32 scale: byte 16g + i holds value 32g + i in its low nibble and
 * 32g + 16 + i in its high nibble, a nibble u standing for the level u - 7.5 (16 levels symmetric about
 * 0; 2u - 15 in odd integers at half the scale). Value d stands for the normalised x̂_d = scale * level_d;
 * the key (or value) it stores is x_d = c_d * x̂_d + m_d, with the per-channel offset m and scale c of
 * its (layer, sequence, KV head) (ea_kv_stats). One scale a row: once every channel is brought to one
 * range by c, blocks of 32 along D measured no more accurate (docs/QUANTISED-KV.md), and one scale
 * lets the kernels apply it once per key. The cache addresses rows in units: a float cache's unit is
 * one element (row = D units), a quantised cache's is one byte (row = ea_kv_row_units bytes). */
#define EA_Q_GROUP 32
static inline bool ea_dtype_quant(edgeattn_dtype dt) { return dt == EDGEATTN_Q8 || dt == EDGEATTN_Q4; }
/* Bytes of one storage unit of a KV cache of dtype dt (0: invalid). */
size_t ea_kv_unit_size(edgeattn_dtype dt);
/* Units of one (token, head) row of head dim dim. */
size_t ea_kv_row_units(edgeattn_dtype dt, size_t dim);
/* Largest scale a row may have (its largest |x̂| / qmax): far past any row of the range its sequence's
 * first append set, and small enough that the kernels' products stay finite. */
#define EA_Q_MAX_SCALE 1e30f
/* The per-channel statistics of a sequence's first append, from n rows: m = their mean, c_d = max
 * |x_d - m_d| over the rows, raised to EA_Q_C_FLOOR of the largest (1 when all are 0); below
 * EA_Q_MIN_ROWS rows m = 0 and c = 1 (no smoothing: a channel's range is not known from so few). */
#define EA_Q_MIN_ROWS 8
#define EA_Q_C_FLOOR (1.0f / 64.0f)
/* The scale (max |x̂| / qmax) row x would need with stats m, c (NaN when x holds a NaN). */
float ea_q_row_need(edgeattn_dtype dt, const float *x, const float *m, const float *c, int32_t dim);
/* Quantises x (dim values) with m, c into the row at dst (ea_kv_row_units(dt, dim) bytes). */
void ea_q_row_store(edgeattn_dtype dt, const float *x, const float *m, const float *c, int32_t dim, void *dst);
/* x̂ of the row at src (normalised: x = c x̂ + m). */
void ea_q_row_load(edgeattn_dtype dt, const void *src, int32_t dim, float *xhat);

/* ---- overflow-checked size arithmetic: return false on overflow */
static inline bool ea_mul_ok(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool ea_add_ok(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

/* A size planner: adds aligned pieces, remembering overflow. */
typedef struct ea_sizer {
    size_t total;
    bool overflow;
} ea_sizer;
/* Adds count*elem bytes aligned to align (a power of two); returns the piece's offset. */
size_t ea_sizer_add(ea_sizer *sz, size_t count, size_t elem, size_t align);

/* ---- the bump arena over one block */
typedef struct ea_arena {
    char *base;
    size_t size;
    size_t used;
} ea_arena;
void ea_arena_init(ea_arena *a, void *base, size_t size);
/* count*elem bytes aligned to align, zeroed; NULL when the arena is full or the size overflows. */
void *ea_arena_alloc(ea_arena *a, size_t count, size_t elem, size_t align);

/* ---- RoPE, resolved at create */
typedef struct ea_rope {
    int32_t style;      /* EDGEATTN_ROPE_* (NONE: off) */
    int32_t dim;        /* rotated values per head (even) */
    double pos_scale;   /* 1 / linear_scale */
    double inv_freq[EA_MAX_HEAD_DIM / 2]; /* base^(-2p/dim) */
    int64_t cs_pos;     /* the position cs holds the angles of (ea_rope_cached), -1: none */
    float cs[EA_MAX_HEAD_DIM];
} ea_rope;
/* cos/sin of the angles of position pos: cs[2p] = cos, cs[2p+1] = sin, p < dim/2. */
void ea_rope_angles(const ea_rope *r, int64_t pos, float *cs);
/* The angles of position pos, as ea_rope_angles, kept for the next call at the same position (the
 * layers of one token all rotate at the same position). Written by the thread that owns the context;
 * a backend's workers may read r->cs where r->cs_pos is their position. */
const float *ea_rope_cached(ea_rope *r, int64_t pos);
/* Rotates x (dim values of one head, stride 1) in place by the angles cs. */
void ea_rope_apply(const ea_rope *r, const float *cs, float *x);

/* ---- KV cache geometry, from a config (core and the backends' plans agree through this) */
typedef struct ea_kv_geom {
    int32_t cap;           /* slots per (layer, sequence): window or max_kv_len */
    int32_t page;          /* tokens per page; 0: contiguous layout */
    int32_t page_shift;    /* log2(page) */
    int32_t pages;         /* pages in the pool (paged) */
    int32_t pages_per_seq; /* ceil(cap / page): page-table entries of one (layer, sequence) */
    size_t page_elems;     /* elements of one page of K (or V): max_kv_heads * page * max_head_dim */
    size_t pool_elems;     /* elements of all of K (or V): contiguous layers * max_batch * max_kv_heads * cap *
                              max_head_dim; paged pages * page_elems */
} ea_kv_geom;
/* Fills g for a config with EDGEATTN_FLAG_KV_CACHE; EDGEATTN_ERR_OVERFLOW / INVALID_ARG with a message. */
edgeattn_status ea_kv_geometry(const edgeattn_config *cfg, ea_kv_geom *g, char *msg);

/* ---- KV cache (host memory, inside the arena) */
typedef struct ea_kv_cache {
    bool enabled;
    edgeattn_dtype dtype;
    int32_t cap;        /* slots per (sequence, head): sinks + window, or max_kv_len */
    int32_t window;     /* 0: no ring */
    int32_t sinks;      /* ring caches: the first `sinks` positions stay in slots 0..sinks-1 for good; the
                           ring of the last `window` positions takes slots sinks..cap-1 */
    int32_t layers, max_batch, max_heads, max_dim;
    int32_t heads, dim; /* fixed by the first append into an empty cache (0: empty) */
    size_t layer_elems; /* contiguous: elements of one layer's K (or V): max_batch * max_heads * cap * max_dim */
    void *k, *v;        /* contiguous: [layers] x [max_batch][heads][cap][dim] in dtype (planned for max_heads,
                           max_dim), layer l at l * layer_elems. paged: [pages] x [heads][page][dim], page p at
                           p * page_elems. */
    int64_t *total;     /* [layers][max_batch] tokens appended so far */
    int32_t *held;      /* [layers][max_batch] tokens in the cache (min(total, cap)) */
    bool on_device;     /* storage belongs to the backend (k, v NULL here); core keeps the lengths (and the
                           page tables) */
    /* paged layout (page > 0): slot s of (layer, seq) lives in page table[idx][s >> page_shift] at row
     * s & (page - 1); every page a (layer, seq) holds rows in is mapped (others -1); ref counts the
     * (layer, sequence) tables sharing a page (0: on the free stack). */
    int32_t page, page_shift, pages, pages_per_seq;
    size_t page_elems;
    int32_t *table;     /* [layers][max_batch][pages_per_seq] */
    int32_t *ref;       /* [pages] */
    int32_t *free_stack;/* [pages]: free_stack[0 .. nfree) are free */
    int32_t nfree;
    uint8_t *pmark;     /* [pages_per_seq] zero between calls (page sets of one call) */
    /* storage units (ea_kv_unit_size bytes): row = units of one (token, head) row (dim for float
     * caches); layer_elems, page_elems and ea_kv_row_elem count units */
    int32_t row;
    size_t unit;
    /* quantised caches: [layers][max_batch][max_heads] blocks of 4 x max_dim floats (ea_kv_stats),
     * set by the first append into an empty (layer, sequence); NULL for float caches */
    float *stats;
    /* block summaries (config.kv_summary_block): [layers][max_batch][max_heads][nsblk] blocks of 2 x
     * max_dim floats (min, max of K over the block's slots), NULL when none */
    int32_t sblk, nsblk;
    float *summ;
    /* latent cache (config.kv_cache_latent): one row per (token, head), v == k (V is the first D_v values
     * of each row); append writes k only */
    bool latent;
} ea_kv_cache;

/* The V head dim a config plans: max_head_dim_v, or max_head_dim when it is 0. */
static inline int32_t ea_cfg_dim_v(const edgeattn_config *c)
{
    return c->max_head_dim_v > 0 ? c->max_head_dim_v : c->max_head_dim;
}
/* Does a config ask for latent attention's extras (a head dim past EA_MAX_HEAD_DIM, a separate V head
 * dim, a latent cache)? The GPU backends refuse those so far. */
static inline bool ea_cfg_mla(const edgeattn_config *c)
{
    return c->max_head_dim > EA_MAX_HEAD_DIM || c->max_head_dim_v > 0 || c->kv_cache_latent != 0;
}



static inline size_t ea_kv_idx(const ea_kv_cache *kv, int32_t layer, int32_t seq)
{
    return (size_t)layer * (size_t)kv->max_batch + (size_t)seq;
}

/* The slot of position pos (a ring cache: sinks first, then pos's place in the ring; else pos). */
static inline int64_t ea_kv_slot(const ea_kv_cache *kv, int64_t pos)
{
    if (pos < kv->sinks)
        return pos;
    return kv->sinks + (pos - kv->sinks) % (kv->cap - kv->sinks);
}

/* The first position of the ring part a (layer, seq) holding `total` tokens, `held` of them, keeps:
 * the held positions are [0, min(total, sinks)) and [ea_kv_ring_first, total). */
static inline int64_t ea_kv_ring_first(const ea_kv_cache *kv, int64_t total, int32_t held)
{
    const int64_t s = total < kv->sinks ? total : kv->sinks;
    return total - (held - s);
}

/* Rows of an append of n rows at position total that stay in the cache: [*a0, *a1) (the sinks part)
 * and [*b0, n) (the rows the ring keeps: later rows of the same append overwrite earlier ones). */
static inline void ea_kv_kept(const ea_kv_cache *kv, int64_t total, int64_t n, int64_t *a1, int64_t *b0)
{
    int64_t s = kv->sinks - total; /* rows that land in sinks */
    s = s < 0 ? 0 : s > n ? n : s;
    const int64_t ring = kv->cap - kv->sinks, skip = n - ring;
    *a1 = s;
    *b0 = skip > s ? skip : s;
}

/* The summary (min[max_dim], max[max_dim]) of block blk of (layer, seq, KV head h). */
static inline float *ea_kv_summary(const ea_kv_cache *kv, int32_t layer, int32_t seq, int32_t h, int64_t blk)
{
    return kv->summ + ((ea_kv_idx(kv, layer, seq) * (size_t)kv->max_heads + (size_t)h) * (size_t)kv->nsblk +
                       (size_t)blk) * 2u * (size_t)kv->max_dim;
}

/* The statistics of (layer, seq, KV head h): m_k, c_k, m_v, c_v, each max_dim floats. */
static inline float *ea_kv_stats(const ea_kv_cache *kv, int32_t layer, int32_t seq, int32_t h)
{
    return kv->stats + ((ea_kv_idx(kv, layer, seq) * (size_t)kv->max_heads + (size_t)h) * 4u) * (size_t)kv->max_dim;
}

/* The page table of (layer, seq) (paged caches only). */
static inline int32_t *ea_kv_table(const ea_kv_cache *kv, int32_t layer, int32_t seq)
{
    return kv->table + ea_kv_idx(kv, layer, seq) * (size_t)kv->pages_per_seq;
}

/* Unit offset (in the K or V storage; elements of a float cache) of row `slot` of head h of (layer, seq); paged caches need
 * the slot's page mapped. Rows of one head are contiguous up to the end of the slot's page
 * (ea_kv_rows_left) or of the cache (contiguous layout). */
static inline size_t ea_kv_row_elem(const ea_kv_cache *kv, int32_t layer, int32_t seq, int32_t h, int64_t slot)
{
    if (kv->page > 0) {
        const int32_t p = ea_kv_table(kv, layer, seq)[slot >> kv->page_shift];
        return (size_t)p * kv->page_elems +
               ((size_t)h * (size_t)kv->page + (size_t)(slot & (kv->page - 1))) * (size_t)kv->row;
    }
    return (size_t)layer * kv->layer_elems +
           (((size_t)seq * (size_t)kv->heads + (size_t)h) * (size_t)kv->cap + (size_t)slot) * (size_t)kv->row;
}

/* Page-table entries a call may touch on a (layer, sequence) whose positions end at `end` (the tokens
 * it holds, plus an append's rows): position p sits at slot p until the ring first wraps, so every held
 * slot lies below end (a kv_truncate of a ring that had wrapped included: its held rows sit up to the
 * new length, past the count it holds); once end reaches cap, any slot. */
static inline int32_t ea_kv_table_reach(const ea_kv_cache *kv, int64_t end)
{
    return end >= kv->cap ? kv->pages_per_seq : (int32_t)((end + kv->page - 1) >> kv->page_shift);
}

/* Rows from slot on that are contiguous in storage (to the end of the page or of the cache's slots). */
static inline int64_t ea_kv_rows_left(const ea_kv_cache *kv, int64_t slot)
{
    const int64_t to_end = kv->cap - slot;
    if (kv->page > 0) {
        const int64_t to_page = kv->page - (slot & (kv->page - 1));
        return to_page < to_end ? to_page : to_end;
    }
    return to_end;
}

/* One run of keys for a (sequence, KV head): keys at absolute positions pos0 .. pos0 + n - 1.
 * Attention and contiguous caches: rows k[0..n), v[0..n) with row strides ldk, ldv (elements).
 * Paged caches: the rows are cut at page boundaries; ea_kv_seg_rows finds them. */
typedef struct ea_kv_seg {
    const char *k, *v;
    ptrdiff_t ldk, ldv;
    int64_t pos0;
    int32_t n;
    /* paged (cache != NULL): key pos0 + i is slot slot0 + i of (layer, seq), head h */
    const ea_kv_cache *cache;
    int32_t layer, seq, h, slot0;
} ea_kv_seg;

/* Rows of seg from key position pos (inside it) that are contiguous in storage: sets *k, *v to the
 * row of pos and returns the count (>= 1, to the end of the segment or of pos's page). es: the
 * storage's unit size (ea_kv_unit_size). */
static inline int32_t ea_kv_seg_rows(const ea_kv_seg *seg, int64_t pos, size_t es, const char **k, const char **v)
{
    const int64_t i = pos - seg->pos0, left = seg->n - i;
    if (!seg->cache) {
        *k = seg->k + (size_t)i * (size_t)seg->ldk * es;
        *v = seg->v + (size_t)i * (size_t)seg->ldv * es;
        return (int32_t)left;
    }
    const ea_kv_cache *kv = seg->cache;
    const int64_t slot = seg->slot0 + i;
    const size_t e = ea_kv_row_elem(kv, seg->layer, seg->seq, seg->h, slot);
    *k = (const char *)kv->k + e * es;
    *v = (const char *)kv->v + e * es;
    const int64_t run = ea_kv_rows_left(kv, slot);
    return (int32_t)(run < left ? run : left);
}

/* A validated, normalised call handed to a backend (attention or decode). */
typedef struct ea_attn_call {
    bool decode;
    int32_t layer;                     /* decode: the cache layer */
    const int32_t *seq_ids;            /* decode: [B] cache sequence of batch row b (never NULL) */
    const int32_t *q_lens;             /* decode: [B] query rows of batch row b, or NULL: Nq for all */
    const ea_rope *rope;               /* decode: RoPE for the queries, or NULL */
    int32_t B, Hq, Hkv, Nq, Nkv, D, group; /* group = Hq / Hkv; D: the Q·K head dim */
    int32_t Dv;                        /* the V (and out) head dim: D unless config.max_head_dim_v */
    const edgeattn_tensor *q, *k, *v;      /* k, v NULL for decode */
    edgeattn_tensor *out;
    edgeattn_dtype kv_dtype;
    float scale, softcap;
    bool causal;
    int32_t window_left, window_right; /* -1: unlimited */
    const int32_t *kv_lens;            /* attention: [B] or NULL */
    const edgeattn_tensor *bias;       /* F32 or NULL */
    const edgeattn_block_mask *block_mask; /* attention: validated, or NULL */
    const edgeattn_linformer *linformer;   /* attention: validated (E, F shapes and dtypes), or NULL */
    int32_t topk_tokens;               /* decode: > 0: top-k blocks (cache summaries) */
    edgeattn_tensor *lse;              /* F32 or NULL */
    const ea_kv_cache *cache;          /* decode */
} ea_attn_call;

/* Key segments (at most EA_KV_SEGS: a cache's sinks, then its ring in up to two runs) of batch row b,
 * KV head h; returns their count. Also *total = the position one past the last key (kv length for
 * attention, tokens appended for decode). Positions are consecutive over the keys held: a
 * sinks cache that has evicted tokens tells ring positions less *gap (the evicted count), so masks
 * count held keys; a query's true position (RoPE) is its position here plus *gap. */
#define EA_KV_SEGS 3
int ea_call_kv_segments(const ea_attn_call *c, int32_t b, int32_t h, ea_kv_seg segs[EA_KV_SEGS], int64_t *total,
                        int64_t *gap);

struct ea_backend_ops;

struct edgeattn_context {
    edgeattn_config cfg;
    const struct ea_backend_ops *backend;
    void *backend_state;
    void *mem;          /* the whole block (caller's or obtained) */
    size_t mem_bytes;
    bool mem_owned;
    ea_arena arena;
    edgeattn_plan_info plan;
    ea_kv_cache kv;
    ea_rope rope;
    /* [max_batch] each: a call's caller arrays, copied at validation so that nothing later reads the
     * caller's memory (it may alias an output) */
    int32_t *lens;  /* kv_lens (attention) or n_new (kv_append) */
    int32_t *ids;   /* seq_ids (identity when the caller passed NULL) */
    int32_t *qlens; /* q_lens (decode) */
    uint8_t *mark;  /* [max_batch] zero between calls: finds repeated seq ids */
    char tuning_note[32]; /* backend info's `tuning` */
    char msg[EA_MSG_LEN];
};

/* ---- validation (core/tensor.c) */
#define EA_DTYPES_FLOAT ((1u << EDGEATTN_F32) | (1u << EDGEATTN_F16) | (1u << EDGEATTN_BF16))
#define EA_DTYPES_F32 (1u << EDGEATTN_F32)
/* Head dims the kernels take (Q·K and V): multiples of 8 from 8 to EA_MAX_HEAD_DIM_CPU. */
edgeattn_status ea_check_head_dim(char *msg, const char *name, int64_t d);
/* Checks one tensor: non-NULL, dtype in allowed (bitmask of 1u<<dtype), shape > 0, stride[3] == 1,
 * strides >= 0 and non-overlapping, view inside bytes; *extent = bytes spanned from data. */
edgeattn_status ea_check_tensor(char *msg, const char *name, const edgeattn_tensor *t, unsigned allowed,
                                size_t *extent);
/* The same for a tensor that is only read: a stride of 0 over B, H or N (broadcast) is allowed. */
edgeattn_status ea_check_input_tensor(char *msg, const char *name, const edgeattn_tensor *t, unsigned allowed,
                                      size_t *extent);
/* KV-cache call helpers (core/kvcache.c): the layer in range; seq_ids (NULL: 0..B-1) copied into
 * ctx->ids, in range and distinct. */
edgeattn_status ea_check_layer(edgeattn_context *ctx, const char *fn, int32_t layer);
edgeattn_status ea_take_seq_ids(edgeattn_context *ctx, const char *fn, const int32_t *seq_ids, int64_t B);
/* Do two checked views (extents na, nb bytes) share bytes? Memory-kind aware. */
bool ea_tensors_overlap(const edgeattn_tensor *a, size_t na, const edgeattn_tensor *b, size_t nb);
/* Is t's memory kind one the context's backend takes? */
edgeattn_status ea_check_memory(edgeattn_context *ctx, const char *name, const edgeattn_tensor *t);
/* check_finite for any memory kind (host scan, or the backend's device scan); EDGEATTN_ERR_NONFINITE
 * with a message naming the tensor. */
edgeattn_status ea_check_finite(edgeattn_context *ctx, const char *name, const edgeattn_tensor *t, bool neg_inf_ok);
/* NaN/Inf scan of a valid tensor; neg_inf_ok lets -INFINITY through (bias). true if all finite. */
bool ea_tensor_finite(const edgeattn_tensor *t, bool neg_inf_ok);

/* Full validation of an attention or decode call into *call. */
edgeattn_status ea_validate_attention(edgeattn_context *ctx, const edgeattn_tensor *q, const edgeattn_tensor *k,
                                      const edgeattn_tensor *v, edgeattn_tensor *out, const edgeattn_params *p,
                                      ea_attn_call *call);
edgeattn_status ea_validate_decode(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids, const int32_t *q_lens,
                                   const edgeattn_tensor *q, edgeattn_tensor *out, const edgeattn_params *p,
                                   ea_attn_call *call);

/* ---- plan (core/plan.c) */
edgeattn_status ea_check_config(const edgeattn_config *cfg, char *msg);
/* Resolves EDGEATTN_BACKEND / EDGEATTN_CPU_MASK into a copy of the config. */
edgeattn_status ea_resolve_config(const edgeattn_config *in, edgeattn_config *out, char *msg);
int32_t ea_resolve_threads(int32_t requested);
/* RoPE tables for head dim head_dim (rope.dim 0 means all of it). */
void ea_rope_resolve(const edgeattn_config *c, int32_t head_dim, ea_rope *r);

/* ---- the tuning file (core/tuning.c) */
/* The file to read (config.tuning_file or EDGEATTN_TUNING_FILE), or NULL. */
const char *ea_tuning_path(const edgeattn_config *cfg);
/* Parses the whole file: OK when there is none or it is well formed; else INVALID_ARG with a message. */
edgeattn_status ea_tuning_validate(const edgeattn_config *cfg, char *msg);
/* A backend's knob: the environment variable `name` if set, else the tuning file's value when the file's
 * key is (this library, backend, device), else NULL. buf (len bytes) holds the file's value. */
const char *ea_knob(const edgeattn_config *cfg, const char *backend, const char *device, const char *name, char *buf,
                    size_t len);
/* What the file did for (backend, device): "none", "applied" or "ignored: ...". */
void ea_tuning_note(const edgeattn_config *cfg, const char *backend, const char *device, char *note, size_t len);

/* Element load/store in any storage dtype. */
float ea_load_f32(const void *base, edgeattn_dtype dt, ptrdiff_t i);
void ea_store_f32(void *base, edgeattn_dtype dt, ptrdiff_t i, float x);

#endif
