/*
 * The portable flash-attention driver of the CPU backend.
 *
 * Work is cut into items (sequence b, KV head, block of rb query rows, KV split). The rows of an
 * item are the query rows of all heads of one GQA group, query-major (row r = i * group + hh), so
 * every K/V tile an item loads serves the whole group. Per item:
 *   1. rows get their visible key interval [lo, hi] (causal bottom-right, window, KV length) and
 *      their query, pre-multiplied by the scale, packed to f32;
 *   2. for each key tile of kb keys inside the union of the intervals: pack Kᵀ and V to f32 once
 *      (packed path, many rows) or read them in place (rows path, decode and few rows); then for
 *      each micro-block of EA_MR rows that sees the tile: S = Q·Kᵀ, softcap, bias, mask, online
 *      softmax (running max m, sum l, FP32), O = alpha·O + P·V;
 *   3. out = O / l (zeros for a row that saw no key), lse = m + log l; or, when the KV length is
 *      split across threads, the partial (O, m, l) goes to a slot, and the split that finishes
 *      last in its group (an atomic arrival count) merges the group's slots by log-sum-exp.
 * A call estimated too small to share runs on the caller's thread, unsplit.
 * Nothing here allocates: scratch and partial slots were planned at create.
 */
#include <math.h>
#include <string.h>

#include "core/half.h"
#include "cpu_simd/attn_cpu.h"

/* Rows up to this take the rows path (K/V read in place): packing a tile costs more. */
#define EA_PACK_ROWS (2 * EA_MR)

void ea_cpu_fit_tiles(int32_t max_q_len, int32_t max_heads, ea_cpu_tiles *t, bool *can_pack)
{
    const int64_t rows = (int64_t)max_q_len * (int64_t)max_heads;
    const int64_t rb = (rows + EA_MR - 1) / EA_MR * EA_MR;
    if (rb < t->rb)
        t->rb = (int32_t)rb;
    *can_pack = rows > EA_PACK_ROWS;
}

bool ea_cpu_scratch_plan(int32_t max_dim, int32_t max_dim_v, const ea_cpu_tiles *t, bool can_pack,
                         int64_t summary_blocks, ea_cpu_scratch_layout *sl)
{
    ea_sizer sz = {0, false};
    const size_t rb = (size_t)t->rb, kb = (size_t)t->kb, d = (size_t)max_dim, dv = (size_t)max_dim_v;
    const size_t pk = can_pack ? 1 : 0;
    sl->q = ea_sizer_add(&sz, rb * d, sizeof(float), 64);     /* [rb][D] scaled queries */
    sl->o = ea_sizer_add(&sz, rb * dv, sizeof(float), 64);    /* [rb][Dv] unnormalised output */
    sl->m = ea_sizer_add(&sz, rb, sizeof(float), 64);         /* [rb] running max */
    sl->l = ea_sizer_add(&sz, rb, sizeof(float), 64);         /* [rb] running sum */
    sl->alpha = ea_sizer_add(&sz, EA_MR, sizeof(float), 64);  /* [EA_MR] rescale of one step */
    sl->lo = ea_sizer_add(&sz, rb, sizeof(int64_t), 64);      /* [rb] first visible key */
    sl->hi = ea_sizer_add(&sz, rb, sizeof(int64_t), 64);      /* [rb] last visible key */
    sl->s = ea_sizer_add(&sz, EA_MR * kb, sizeof(float), 64); /* [EA_MR][kb] scores / probabilities */
    sl->kt = ea_sizer_add(&sz, pk * d * kb, sizeof(float), 64);  /* [D][kb] packed Kᵀ (packed path) */
    sl->v32 = ea_sizer_add(&sz, pk * kb * dv, sizeof(float), 64); /* [kb][Dv] packed V (packed path) */
    sl->shift = ea_sizer_add(&sz, rb, sizeof(float), 64);     /* [rb] q·m_k (quantised caches) */
    sl->tk_score = ea_sizer_add(&sz, (size_t)summary_blocks, sizeof(float), 64);  /* top-k decode */
    sl->tk_idx = ea_sizer_add(&sz, (size_t)summary_blocks, sizeof(int32_t), 64);
    const size_t lq = (d + 15) & ~(size_t)15; /* rows of a multiple of 16 floats: the packed-q rule */
    sl->tk_qlo = ea_sizer_add(&sz, summary_blocks ? (size_t)EA_MR * lq : 0, sizeof(float), 64);
    sl->tk_qhi = ea_sizer_add(&sz, summary_blocks ? (size_t)EA_MR * lq : 0, sizeof(float), 64);
    sl->tk_s = ea_sizer_add(&sz, summary_blocks ? (size_t)EA_MR * kb : 0, sizeof(float), 64);
    sl->wide = can_pack && max_dim + max_dim_v > EA_CPU_WIDE;
    sl->ws = ea_sizer_add(&sz, sl->wide ? rb * kb : 0, sizeof(float), 64); /* [rb][kb] scores (wide path) */
    sl->wa = ea_sizer_add(&sz, sl->wide ? rb : 0, sizeof(float), 64);      /* [rb] rescales (wide path) */
    ea_sizer_add(&sz, 0, 1, 64);
    sl->bytes = sz.total;
    return !sz.overflow;
}

int64_t ea_cpu_part_items(int32_t threads, int32_t rb)
{
    /* decode plans (few rows per item, small slots) get more, for the decode path's key slices */
    return threads > 1 ? (rb <= 16 ? 16 : 4) * (int64_t)threads : 0;
}

typedef struct job {
    const ea_cpu_state *st;
    const ea_attn_call *c;
    int32_t rows;   /* query rows per (b, KV head): Nq * group */
    int32_t nrb;    /* row blocks per (b, KV head) */
    int32_t nsplit; /* KV splits */
    bool packed;    /* pack K/V tiles (many rows) or read them in place */
    bool wide;      /* packed tiles run as two blocked GEMMs (attn_cpu.h, EA_CPU_WIDE) */
} job;

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* Location of query row gr (0..rows) of (b, kvh): head h and query index i. */
static inline void row_coords(const ea_attn_call *c, int32_t kvh, int32_t gr, int32_t *h, int32_t *i)
{
    *i = gr / c->group;
    *h = kvh * c->group + gr % c->group;
}

static inline ptrdiff_t toff(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n)
{
    return (ptrdiff_t)(b * t->stride[0] + h * t->stride[1] + n * t->stride[2]);
}

static float *part_slot(const ea_cpu_state *st, int64_t item)
{
    return st->part + (size_t)item * (size_t)st->tiles.rb * (size_t)(st->max_dim_v + 2);
}

bool ea_cpu_part_park(const ea_cpu_state *st, int64_t item, int32_t nsplit, int32_t R, int32_t D, const float *o,
                      const float *m, const float *l)
{
    const size_t RB = (size_t)st->tiles.rb;
    float *slot = part_slot(st, item);
    memcpy(slot, o, sizeof(float) * (size_t)R * (size_t)D);
    memcpy(slot + RB * (size_t)D, m, sizeof(float) * (size_t)R);
    memcpy(slot + RB * (size_t)D + RB, l, sizeof(float) * (size_t)R);
    /* acq_rel: releases this slot, and the last arrival acquires every other split's */
    return atomic_fetch_add_explicit(&st->arrive[item / nsplit], 1, memory_order_acq_rel) == nsplit - 1;
}

void ea_cpu_part_merge(const ea_cpu_state *st, int64_t group, int32_t nsplit, int32_t R, int32_t D, float *o, float *m,
                       float *l)
{
    const size_t RB = (size_t)st->tiles.rb;
    for (int32_t r = 0; r < R; r++) {
        float mx = -INFINITY;
        for (int32_t sp = 0; sp < nsplit; sp++) {
            const float ms = part_slot(st, group * nsplit + sp)[RB * (size_t)D + (size_t)r];
            mx = ms > mx ? ms : mx;
        }
        float *orow = o + (size_t)r * (size_t)D;
        memset(orow, 0, sizeof(float) * (size_t)D);
        float sum = 0.0f;
        if (mx != -INFINITY)
            for (int32_t sp = 0; sp < nsplit; sp++) {
                const float *slot = part_slot(st, group * nsplit + sp);
                const float ms = slot[RB * (size_t)D + (size_t)r], ls = slot[RB * (size_t)D + RB + (size_t)r];
                if (ms == -INFINITY || ls == 0.0f)
                    continue;
                const float w = expf(ms - mx);
                sum += ls * w;
                const float *os = slot + (size_t)r * (size_t)D;
                for (int32_t d = 0; d < D; d++)
                    orow[d] += w * os[d];
            }
        m[r] = mx;
        l[r] = sum;
    }
}

void ea_cpu_store_row(const edgeattn_tensor *out, ptrdiff_t off, const float *o, float l, const float *qst,
                      int32_t max_dim, int32_t D)
{
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    if (qst && l > 0.0f) {
        const float *cv = qst + 3 * max_dim, *mv = qst + 2 * max_dim;
        for (int32_t d = 0; d < D; d++)
            ea_store_f32(out->data, out->dtype, off + d, cv[d] * (o[d] * inv) + mv[d]);
    } else if (out->dtype == EDGEATTN_F32) {
        float *dst = (float *)out->data + off;
        for (int32_t d = 0; d < D; d++)
            dst[d] = o[d] * inv;
    } else {
        for (int32_t d = 0; d < D; d++)
            ea_store_f32(out->data, out->dtype, off + d, o[d] * inv);
    }
}

/* Writes rows [0, R) of a finished block: out = o / l, lse = m + log l (+ the row's shift: quantised
 * caches without a softcap). */
static void write_rows(const ea_attn_call *c, int32_t b, int32_t kvh, int32_t r0, int32_t R, const float *o,
                       const float *m, const float *l, const float *shift)
{
    const int32_t D = c->Dv; /* rows of o and out: the V head dim */
    const int32_t nq = c->q_lens ? c->q_lens[b] : c->Nq;
    const float *qst = ea_cpu_qstats(c, b, kvh);
    for (int32_t r = 0; r < R; r++) {
        int32_t h, i;
        row_coords(c, kvh, r0 + r, &h, &i);
        if (i >= nq)
            continue; /* past this sequence's queries (ragged decode): not written */
        ea_cpu_store_row(c->out, toff(c->out, b, h, i), o + (size_t)r * (size_t)D, l[r], qst,
                         qst ? c->cache->max_dim : 0, D);
        if (c->lse)
            ((float *)c->lse->data)[toff(c->lse, b, h, i)] =
                l[r] > 0.0f ? m[r] + logf(l[r]) + (qst && c->softcap <= 0.0f ? shift[r] : 0.0f) : -INFINITY;
    }
}

static void merge_group(const job *J, int64_t t, int thread);

/* The key blocks a block mask lists for query blocks qb0..qb1 of (b, KV head), in increasing order:
 * a merge of their sorted lists, giving runs of consecutive key blocks [c0, c1] listed by the same
 * query blocks (bit qb - qb0 of *bits). An item's rows span at most rb <= 1024 queries, so at most
 * 17 query blocks of 64. */
#define EA_BM_SPAN 32
typedef struct bm_iter {
    int n;
    const int32_t *cur[EA_BM_SPAN], *end[EA_BM_SPAN];
    bool have;          /* a block read ahead */
    int32_t next_cb;
    uint32_t next_bits;
} bm_iter;

static void bm_open(bm_iter *it, const edgeattn_block_mask *m, int64_t Nq, int32_t b, int32_t kvh, int64_t qb0,
                    int64_t qb1)
{
    const int64_t nrb = (Nq + m->block_q - 1) / m->block_q, pat = (b % m->batch) * m->heads + kvh % m->heads;
    const int32_t *rp = m->row_ptr + pat * (nrb + 1);
    it->n = (int)(qb1 - qb0 + 1);
    for (int q = 0; q < it->n; q++) {
        it->cur[q] = m->col_idx + rp[qb0 + q];
        it->end[q] = m->col_idx + rp[qb0 + q + 1];
    }
    it->have = false;
}

static bool bm_block(bm_iter *it, int32_t *cb, uint32_t *bits)
{
    int32_t best = INT32_MAX;
    for (int q = 0; q < it->n; q++)
        if (it->cur[q] < it->end[q] && *it->cur[q] < best)
            best = *it->cur[q];
    if (best == INT32_MAX)
        return false;
    *bits = 0;
    for (int q = 0; q < it->n; q++)
        if (it->cur[q] < it->end[q] && *it->cur[q] == best) {
            *bits |= 1u << q;
            it->cur[q]++;
        }
    *cb = best;
    return true;
}

static bool bm_run(bm_iter *it, int32_t *c0, int32_t *c1, uint32_t *bits)
{
    if (!it->have && !bm_block(it, &it->next_cb, &it->next_bits))
        return false;
    *c0 = *c1 = it->next_cb;
    *bits = it->next_bits;
    while ((it->have = bm_block(it, &it->next_cb, &it->next_bits)) && it->next_cb == *c1 + 1 && it->next_bits == *bits)
        (*c1)++;
    return true;
}


/* Softcap, bias and masks on the scores s (lds apart) of item rows mb .. mb + mr - 1 (rows r0 + mb .. of
 * (b, kvh)) for the tile of keys j0 .. j0 + nt - 1 (columns nt .. nbp - 1 are padding). */
static void fix_scores(const ea_attn_call *c, int32_t b, int32_t kvh, int32_t r0, int32_t mb, int32_t mr, float *s,
                       int32_t lds, int32_t nt, int32_t nbp, int64_t j0, const int64_t *lo, const int64_t *hi,
                       const float *shift, uint32_t bits, int32_t bq, int64_t qb0)
{
    const edgeattn_block_mask *bm = c->block_mask;
    const float cap = c->softcap, inv_cap = cap > 0.0f ? 1.0f / cap : 0.0f;
    for (int32_t rr = 0; rr < mr; rr++) {
        float *sr = s + (size_t)rr * (size_t)lds;
        if (cap > 0.0f) {
            const float sh = shift[mb + rr];
            for (int32_t jj = 0; jj < nt; jj++)
                sr[jj] = cap * tanhf((sr[jj] + sh) * inv_cap);
        }
        if (c->bias) {
            int32_t h, i;
            row_coords(c, kvh, r0 + mb + rr, &h, &i);
            const edgeattn_tensor *bt = c->bias;
            const float *br = (const float *)bt->data + toff(bt, bt->shape[0] == 1 ? 0 : b, bt->shape[1] == 1 ? 0 : h, i);
            for (int32_t jj = 0; jj < nt; jj++)
                sr[jj] += br[j0 + jj];
        }
        const bool kept = !bm || ((bits >> ((r0 + mb + rr) / c->group / bq - qb0)) & 1u);
        const int64_t rlo = kept ? lo[mb + rr] : 1, rhi = kept ? hi[mb + rr] : 0;
        for (int32_t jj = 0; jj < nbp; jj++) {
            const int64_t pos = j0 + jj;
            if (jj >= nt || pos < rlo || pos > rhi)
                sr[jj] = -INFINITY;
        }
    }
}

/* One packed tile on the wide path (attn_cpu.h): S = Q Kᵀ for all R rows into ws, blocked so that a panel
 * of Kᵀ (EA_WIDE_DC x EA_WIDE_JB) is reused from L1 by every 8 rows (partial sums over the head-dim chunks
 * gathered through tmp); then fix-ups and the online softmax of every row; then O = alpha O + P V, a panel
 * of V (EA_WIDE_KC keys x EA_WIDE_CB columns) reused the same way (alpha with the first key chunk). */
static void wide_tile(const ea_cpu_kernels *K, const ea_attn_call *c, int32_t b, int32_t kvh, int32_t r0, int32_t R,
                      int32_t KB, int32_t nt, int32_t nbp, int64_t j0, const float *q32, const float *kt,
                      const float *v32, float *ws, float *wa, float *tmp, float *o, float *m, float *l,
                      const int64_t *lo, const int64_t *hi, const float *shift, uint32_t bits, int32_t bq, int64_t qb0,
                      bool full)
{
    static const float ones[EA_MR] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    const int32_t D = c->D, Dv = c->Dv, JB = KB < EA_WIDE_JB ? KB : EA_WIDE_JB;
    for (int32_t d0 = 0; d0 < D; d0 += EA_WIDE_DC) {
        const int32_t dc = (int32_t)imin(EA_WIDE_DC, D - d0);
        for (int32_t jb0 = 0; jb0 < nbp; jb0 += JB) {
            const int32_t jb = (int32_t)imin(JB, nbp - jb0);
            for (int32_t mb = 0; mb < R; mb += EA_MR) {
                const int32_t mr = (int32_t)imin(EA_MR, R - mb);
                float *dst = ws + (size_t)mb * (size_t)KB + (size_t)jb0;
                const float *qb = q32 + (size_t)mb * (size_t)D + (size_t)d0, *kb = kt + (size_t)d0 * (size_t)KB + jb0;
                if (d0 == 0) {
                    K->qk(mr, jb, dc, qb, D, kb, KB, dst, KB);
                    continue;
                }
                K->qk(mr, jb, dc, qb, D, kb, KB, tmp, JB);
                for (int32_t rr = 0; rr < mr; rr++)
                    for (int32_t jj = 0; jj < jb; jj++)
                        dst[(size_t)rr * (size_t)KB + (size_t)jj] += tmp[(size_t)rr * (size_t)JB + (size_t)jj];
            }
        }
    }
    for (int32_t mb = 0; mb < R; mb += EA_MR) {
        const int32_t mr = (int32_t)imin(EA_MR, R - mb);
        float *sb = ws + (size_t)mb * (size_t)KB;
        if (c->softcap > 0.0f || c->bias || !full)
            fix_scores(c, b, kvh, r0, mb, mr, sb, KB, nt, nbp, j0, lo, hi, shift, bits, bq, qb0);
        K->softmax(mr, nbp, sb, KB, m + mb, l + mb, wa + mb);
    }
    for (int32_t k0 = 0; k0 < nbp; k0 += EA_WIDE_KC) {
        const int32_t kc = (int32_t)imin(EA_WIDE_KC, nbp - k0);
        for (int32_t c0 = 0; c0 < Dv; c0 += EA_WIDE_CB) {
            const int32_t cb = (int32_t)imin(EA_WIDE_CB, Dv - c0);
            for (int32_t mb = 0; mb < R; mb += EA_MR) {
                const int32_t mr = (int32_t)imin(EA_MR, R - mb);
                K->pv(mr, kc, cb, ws + (size_t)mb * (size_t)KB + (size_t)k0, KB, v32 + (size_t)k0 * (size_t)Dv + c0, Dv,
                      k0 == 0 ? wa + mb : ones, o + (size_t)mb * (size_t)Dv + c0, Dv);
            }
        }
    }
}

static void attn_task(void *arg, int64_t t, int thread)
{
    const job *J = arg;
    const ea_cpu_state *st = J->st;
    const ea_attn_call *c = J->c;
    const ea_cpu_kernels *K = (c->D | c->Dv) % 16 ? &st->k8 : &st->k;
    const int64_t item = t;
    const int32_t split = (int32_t)(t % J->nsplit);
    t /= J->nsplit;
    const int32_t rbi = (int32_t)(t % J->nrb);
    t /= J->nrb;
    const int32_t kvh = (int32_t)(t % c->Hkv), b = (int32_t)(t / c->Hkv);
    const int32_t RB = st->tiles.rb, KB = st->tiles.kb, D = c->D, Dv = c->Dv; /* Q·K and V head dims */
    const int32_t r0 = rbi * RB, R = (int32_t)imin(RB, J->rows - r0);
    const edgeattn_dtype kdt = c->kv_dtype;
    const size_t kes = ea_kv_unit_size(kdt);
    const float *qst = ea_cpu_qstats(c, b, kvh);

    char *scr = st->scratch + (size_t)thread * st->sl.bytes;
    float *shift = (float *)(void *)(scr + st->sl.shift); /* [R] */
    float *q32 = (float *)(void *)(scr + st->sl.q);   /* [R][D] */
    float *o = (float *)(void *)(scr + st->sl.o);     /* [R][Dv] */
    float *m = (float *)(void *)(scr + st->sl.m);     /* [R] */
    float *l = (float *)(void *)(scr + st->sl.l);     /* [R] */
    float *alpha = (float *)(void *)(scr + st->sl.alpha);
    int64_t *lo = (int64_t *)(void *)(scr + st->sl.lo);
    int64_t *hi = (int64_t *)(void *)(scr + st->sl.hi);
    float *s = (float *)(void *)(scr + st->sl.s);     /* [EA_MR][KB] */
    float *kt = (float *)(void *)(scr + st->sl.kt);   /* [D][KB] */
    float *v32 = (float *)(void *)(scr + st->sl.v32); /* [KB][Dv] */

    ea_kv_seg segs[EA_KV_SEGS];
    int64_t total, gap; /* gap: a sinks cache's evicted tokens (true position = qpos + gap) */
    const int nseg = ea_call_kv_segments(c, b, kvh, segs, &total, &gap);
    const int64_t first = nseg ? segs[0].pos0 : total;

    /* 1. rows: visible intervals, scaled (and rotated) queries, fresh statistics */
    int64_t ulo = INT64_MAX, uhi = INT64_MIN;
    const size_t qes = ea_dtype_size(c->q->dtype);
    const int32_t nq = c->q_lens ? c->q_lens[b] : c->Nq;
    float cs[EA_MAX_HEAD_DIM];
    int32_t cs_i = -1; /* the query index cs holds the angles of (rows are query-major) */
    for (int32_t r = 0; r < R; r++) {
        int32_t h, i;
        row_coords(c, kvh, r0 + r, &h, &i);
        const int64_t qpos = i + total - nq;
        int64_t a = first, z = total - 1;
        if (i >= nq) /* past this sequence's queries (ragged decode): sees nothing, not written */
            a = 1, z = 0;
        if (c->causal)
            z = imin(z, qpos);
        if (c->window_left >= 0)
            a = imax(a, qpos - c->window_left);
        if (c->window_right >= 0)
            z = imin(z, qpos + c->window_right);
        lo[r] = a;
        hi[r] = z;
        if (a <= z) {
            ulo = imin(ulo, a);
            uhi = imax(uhi, z);
        }
        const ptrdiff_t qo = toff(c->q, b, h, i);
        float *qr = q32 + (size_t)r * (size_t)D;
        if (c->q->dtype == EDGEATTN_F32) {
            const float *src = (const float *)c->q->data + qo;
            for (int32_t d = 0; d < D; d++)
                qr[d] = src[d] * c->scale;
        } else {
            const char *src = (const char *)c->q->data + (size_t)qo * qes;
            for (int32_t d = 0; d < D; d++)
                qr[d] = ea_load_f32(src, c->q->dtype, d) * c->scale;
        }
        if (c->rope && i < nq) {
            if (cs_i != i) {
                ea_rope_angles(c->rope, qpos + gap, cs);
                cs_i = i;
            }
            ea_rope_apply(c->rope, cs, qr);
        }
        shift[r] = qst ? ea_cpu_q_fold(qst, c->cache->max_dim, qr, D) : 0.0f;
        m[r] = -INFINITY;
        l[r] = 0.0f;
        memset(o + (size_t)r * (size_t)Dv, 0, sizeof(float) * (size_t)Dv);
    }
    if (J->nsplit > 1) { /* this item's share of the KV positions */
        const int64_t len = total - first;
        ulo = imax(ulo, first + len * split / J->nsplit);
        uhi = imin(uhi, first + len * (split + 1) / J->nsplit - 1);
    }

    /* 2. key tiles: over the key blocks a block mask lists for the item's query blocks (runs of them),
     * or over everything visible */
    const edgeattn_block_mask *bm = c->block_mask;
    bm_iter bmi = {.n = 0, .have = false, .next_cb = 0, .next_bits = 0};
    int64_t qb0 = 0;
    int32_t bq = 1;
    if (bm) {
        bq = bm->block_q;
        qb0 = (r0 / c->group) / bq;
        bm_open(&bmi, bm, c->Nq, b, kvh, qb0, ((r0 + R - 1) / c->group) / bq);
    }
    /* top-k decode (one query per sequence: the item's rows are the whole group): the selected blocks' runs */
    const int32_t *tsel = NULL;
    const int32_t tn = c->topk_tokens > 0 ? ea_cpu_topk(c, st, scr, b, kvh, q32, R, total, &tsel) : 0;
    const int64_t rblk = bm ? bm->block_k : tn ? c->cache->sblk : 1; /* keys per block of the runs */
    int32_t cb0 = 0, cb1 = 0, ti = 0;
    uint32_t bits = ~0u;
    for (bool brun = bm ? bm_run(&bmi, &cb0, &cb1, &bits) : tn ? ea_sel_run(tsel, tn, &ti, &cb0, &cb1) : true; brun;
         brun = bm ? bm_run(&bmi, &cb0, &cb1, &bits) : tn ? ea_sel_run(tsel, tn, &ti, &cb0, &cb1) : false)
    for (int sg = 0; sg < nseg; sg++) {
        const ea_kv_seg *seg = &segs[sg];
        int64_t a = imax(seg->pos0, ulo), z = imin(seg->pos0 + seg->n - 1, uhi);
        if (bm || tn) {
            a = imax(a, (int64_t)cb0 * rblk);
            z = imin(z, ((int64_t)cb1 + 1) * rblk - 1);
        }
        int32_t nt = 0;
        for (int64_t j0 = a; j0 <= z; j0 += nt) {
            /* The tile's keys in pieces of rows contiguous in storage (a paged cache: one per page). The
             * packed path takes one piece (the packers fill whole 16-column blocks); the rows path
             * gathers up to KB keys from as many pieces as start at a multiple of 16 columns, so small
             * pages do not shorten its tiles (a tile that starts inside a page ends with that page). */
            ea_kv_pieces pc = {.count = 0, .rows = 0};
            const int32_t want = (int32_t)imin(KB, z - j0 + 1);
            for (bool more = true; more;) {
                const char *k, *v;
                const int32_t n = ea_kv_seg_rows(seg, j0 + pc.rows, kes, &k, &v);
                more = ea_pieces_add(&pc, k, v, (int32_t)imin(n, want - pc.rows), want) && !J->packed;
            }
            nt = pc.rows;
            if (!J->packed && j0 + nt <= z) { /* the next tile's first keys, prefetched while this one is scored */
                const char *k1, *v1;
                const int32_t n1 = ea_kv_seg_rows(seg, j0 + nt, kes, &k1, &v1);
                pc.next_k = k1;
                pc.next_n = (int32_t)imin(n1, imin(KB, z - (j0 + nt) + 1));
            }
            const char *kp = pc.k[0], *vp = pc.v[0];
            const int32_t nbp = (nt + 15) & ~15;
            const int64_t j1 = j0 + nt - 1;
            if (J->packed) {
                K->pack_kt[kdt](nt, nbp, D, kp, seg->ldk, kt, KB);
                K->pack_v[kdt](nt, nbp, Dv, vp, seg->ldv, v32, Dv);
            }
            if (J->wide) {
                bool any = false, full = nt == nbp;
                for (int32_t rr = 0; rr < R; rr++) {
                    const bool kept = !bm || ((bits >> ((r0 + rr) / c->group / bq - qb0)) & 1u);
                    if (kept && lo[rr] <= j1 && hi[rr] >= j0 && lo[rr] <= hi[rr])
                        any = true;
                    if (!kept || !(lo[rr] <= j0 && hi[rr] >= j1))
                        full = false;
                }
                if (any)
                    wide_tile(K, c, b, kvh, r0, R, KB, nt, nbp, j0, q32, kt, v32,
                              (float *)(void *)(scr + st->sl.ws), (float *)(void *)(scr + st->sl.wa), s, o, m, l, lo,
                              hi, shift, bits, bq, qb0, full);
                continue;
            }
            for (int32_t mb = 0; mb < R; mb += EA_MR) {
                const int32_t mr = (int32_t)imin(EA_MR, R - mb);
                bool any = false, full = nt == nbp;
                for (int32_t rr = mb; rr < mb + mr; rr++) {
                    const bool kept = !bm || ((bits >> ((r0 + rr) / c->group / bq - qb0)) & 1u); /* by the block mask */
                    if (kept && lo[rr] <= j1 && hi[rr] >= j0 && lo[rr] <= hi[rr])
                        any = true;
                    if (!kept || !(lo[rr] <= j0 && hi[rr] >= j1))
                        full = false;
                }
                if (!any)
                    continue;
                const float *qb = q32 + (size_t)mb * (size_t)D;
                if (J->packed)
                    K->qk(mr, nbp, D, qb, D, kt, KB, s, KB);
                else
                    ea_qk_pieces(K, kdt, mr, D, qb, D, &pc, seg->ldk, seg->ldv, s, KB);
                if (c->softcap > 0.0f || c->bias || !full)
                    fix_scores(c, b, kvh, r0, mb, mr, s, KB, nt, nbp, j0, lo, hi, shift, bits, bq, qb0);
                K->softmax(mr, nbp, s, KB, m + mb, l + mb, alpha);
                float *ob = o + (size_t)mb * (size_t)Dv;
                if (J->packed)
                    K->pv(mr, nbp, Dv, s, KB, v32, Dv, alpha, ob, Dv);
                else
                    ea_pv_pieces(K, kdt, mr, Dv, s, KB, &pc, seg->ldv, alpha, ob, Dv);
            }
        }
    }

    /* 3. finish, or park the partial; the group's last split merges */
    if (J->nsplit == 1) {
        write_rows(c, b, kvh, r0, R, o, m, l, shift);
        return;
    }
    if (ea_cpu_part_park(st, item, J->nsplit, R, Dv, o, m, l))
        merge_group(J, item / J->nsplit, thread);
}

/* Merges the nsplit partials of one (b, KV head, row block) by log-sum-exp. */
static void merge_group(const job *J, int64_t t, int thread)
{
    const ea_cpu_state *st = J->st;
    const ea_attn_call *c = J->c;
    const int32_t RB = st->tiles.rb, D = c->Dv, ns = J->nsplit;
    const int32_t rbi = (int32_t)(t % J->nrb);
    const int32_t kvh = (int32_t)((t / J->nrb) % c->Hkv), b = (int32_t)(t / J->nrb / c->Hkv);
    const int32_t r0 = rbi * RB, R = (int32_t)imin(RB, J->rows - r0);
    char *scr = st->scratch + (size_t)thread * st->sl.bytes;
    float *o = (float *)(void *)(scr + st->sl.o);
    float *m = (float *)(void *)(scr + st->sl.m);
    float *l = (float *)(void *)(scr + st->sl.l);
    ea_cpu_part_merge(st, t, ns, R, D, o, m, l);
    /* this thread ran one of the group's splits: its scratch holds the rows' shifts */
    write_rows(c, b, kvh, r0, R, o, m, l, (const float *)(const void *)(scr + st->sl.shift));
}

/* Multiply-adds of Q·Kᵀ the call will do, roughly: query rows x visible keys x head dim (in double:
 * the product of the plan's maxima can pass 2^63). */
static double work_estimate(const ea_attn_call *c)
{
    double work = 0.0;
    for (int32_t b = 0; b < c->B; b++) {
        const int64_t keys = c->decode ? c->cache->held[ea_kv_idx(c->cache, c->layer, c->seq_ids[b])]
                                       : (c->kv_lens ? c->kv_lens[b] : c->Nkv);
        const int64_t nq = c->q_lens ? c->q_lens[b] : c->Nq;
        int64_t vis = keys; /* per query row */
        if (c->causal && nq > 1)
            vis = imax(1, keys - (nq - 1) / 2);
        if (c->window_left >= 0) {
            const int64_t right = c->causal ? 0 : (c->window_right >= 0 ? c->window_right : keys);
            vis = imin(vis, (int64_t)c->window_left + 1 + right); /* window_left may be INT32_MAX */
        }
        work += (double)nq * (double)vis;
    }
    return work * (double)c->Hq * (double)c->D;
}

edgeattn_status ea_cpu_run(ea_cpu_state *st, const ea_attn_call *c)
{
    job J;
    J.st = st;
    J.c = c;
    J.rows = c->Nq * c->group;
    J.nrb = (J.rows + st->tiles.rb - 1) / st->tiles.rb;
    J.packed = J.rows > EA_PACK_ROWS && st->can_pack; /* the rows path for few rows: packing costs more */
    J.wide = J.packed && st->sl.wide && c->D + c->Dv > EA_CPU_WIDE && (c->D | c->Dv) % 16 == 0;
    J.nsplit = 1;
    const int64_t base = (int64_t)c->B * c->Hkv * J.nrb;
    if (st->threads <= 1 ||
        work_estimate(c) < (double)(ea_pool_helpful(&st->pool) ? st->inline_work : st->wake_work)) {
        ea_pool_run_inline(attn_task, &J, base);
        return EDGEATTN_OK;
    }
    if (base < 2 * (int64_t)st->threads && c->topk_tokens <= 0) { /* too few items: split the KV length
                                                                     (not top-k: each split would select) */
        int64_t longest = 0; /* keys of the longest sequence */
        for (int32_t b = 0; b < c->B; b++) {
            const int64_t n = c->decode ? c->cache->held[ea_kv_idx(c->cache, c->layer, c->seq_ids[b])]
                                        : (c->kv_lens ? c->kv_lens[b] : c->Nkv);
            longest = imax(longest, n);
        }
        /* two tasks per thread: a worker that joins late holds the caller up by one task at most,
         * and each split costs a partial write and its share of the merge (more splits measured
         * slower when workers are busy elsewhere) */
        int64_t ns = (2 * (int64_t)st->threads + base - 1) / base;
        ns = imin(ns, st->part_items / base); /* fits the planned slots */
        if (J.wide) /* compute-bound tiles: four tasks per thread, so a thread the OS holds back costs less */
            ns = imax(ns, (4 * (int64_t)st->threads + base - 1) / base);
        ns = imin(ns, st->part_items / base);
        ns = imin(ns, (longest + 255) / 256); /* at least ~256 keys per split */
        J.nsplit = ns >= 2 ? (int32_t)ns : 1;
    }
    if (J.nsplit > 1)
        for (int64_t g = 0; g < base; g++)
            atomic_store_explicit(&st->arrive[g], 0, memory_order_relaxed); /* published by the hand-off */
    return ea_pool_run(&st->pool, attn_task, &J, base * J.nsplit);
}

/* Top-k decode (call->topk_tokens, a cache with block summaries): the blocks of (b, kvh) worth
 * attending to. A block's bound on q . k for query row g is sum_d max(q_d min_d, q_d max_d) =
 * min(q, 0) . min + max(q, 0) . max: two dot products with the block's summary rows, so the tier's
 * own F32 rows kernel scores a run of KB blocks at a time. A block scores the largest bound over the
 * R query rows of its KV head (EA_MR at a time); the first and the newest block always pass. The
 * `keep` best (partial selection, no sort of the whole context) go to *sel in increasing order.
 * Returns their count, or 0 when the budget covers every block (then every key is read). */
int32_t ea_cpu_topk(const ea_attn_call *c, const ea_cpu_state *st, char *scr, int32_t b, int32_t kvh, const float *q32,
                    int32_t R, int64_t total, const int32_t **sel)
{
    const ea_kv_cache *kv = c->cache;
    const int32_t bs = kv->sblk, D = c->D, seq = c->seq_ids[b], MD = kv->max_dim, KB = st->tiles.kb;
    const int32_t LQ = (MD + 15) & ~15; /* the split queries' row stride (attn_cpu.c plans it) */
    const ea_cpu_kernels *K = D % 16 ? &st->k8 : &st->k;
    const int64_t nblk = (total + bs - 1) / bs;
    int64_t keep = ((int64_t)c->topk_tokens + bs - 1) / bs;
    keep = keep < 2 ? 2 : keep;
    if (keep >= nblk)
        return 0;
    float *sc = (float *)(void *)(scr + st->sl.tk_score);
    int32_t *idx = (int32_t *)(void *)(scr + st->sl.tk_idx);
    float *qlo = (float *)(void *)(scr + st->sl.tk_qlo), *qhi = (float *)(void *)(scr + st->sl.tk_qhi);
    float *s = (float *)(void *)(scr + st->sl.s), *s2 = (float *)(void *)(scr + st->sl.tk_s); /* [G][KB] */
    const float *summ = ea_kv_summary(kv, c->layer, seq, kvh, 0);
    for (int32_t mb = 0; mb < R; mb += EA_MR) { /* the query rows, EA_MR at a time: each block keeps its best */
        const int32_t G = (int32_t)imin(EA_MR, R - mb);
        for (int32_t g = 0; g < G; g++)
            for (int32_t d = 0; d < D; d++) {
                const float x = q32[(size_t)(mb + g) * (size_t)D + (size_t)d];
                qlo[(size_t)g * (size_t)LQ + (size_t)d] = x < 0.0f ? x : 0.0f;
                qhi[(size_t)g * (size_t)LQ + (size_t)d] = x > 0.0f ? x : 0.0f;
            }
        for (int64_t k0 = 0; k0 < nblk; k0 += KB) {
            const int32_t n = (int32_t)imin(KB, nblk - k0);
            const float *mn = summ + (size_t)k0 * 2u * (size_t)MD;
            K->qk_rows[EDGEATTN_F32](G, n, D, qlo, LQ, mn, 2 * MD, s, KB);
            K->qk_rows[EDGEATTN_F32](G, n, D, qhi, LQ, mn + MD, 2 * MD, s2, KB);
            for (int32_t j = 0; j < n; j++) {
                float best = mb ? sc[k0 + j] : -INFINITY;
                for (int32_t g = 0; g < G; g++) {
                    const float v = s[(size_t)g * (size_t)KB + (size_t)j] + s2[(size_t)g * (size_t)KB + (size_t)j];
                    best = v > best || v != v ? v : best; /* (a NaN bound stays NaN: the block is kept below) */
                }
                sc[k0 + j] = best;
                idx[k0 + j] = (int32_t)(k0 + j);
            }
        }
    }
    for (int64_t k = 0; k < nblk; k++)
        sc[k] = sc[k] == sc[k] ? sc[k] : INFINITY; /* a NaN bound: keep the block, never lose it */
    sc[0] = sc[nblk - 1] = INFINITY;
    /* quickselect: idx[0, keep) become the keep highest scores */
    int64_t lo = 0, hi = nblk - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        const float pivot = sc[idx[mid]];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (sc[idx[i]] > pivot)
                i++;
            while (sc[idx[j]] < pivot)
                j--;
            if (i <= j) {
                const int32_t t = idx[i];
                idx[i++] = idx[j];
                idx[j--] = t;
            }
        }
        if (keep - 1 <= j)
            hi = j;
        else if (keep - 1 >= i)
            lo = i;
        else
            break;
    }
    for (int64_t i = 1; i < keep; i++) /* increasing block order (keep is the budget's blocks: small) */
        for (int64_t j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
            const int32_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    *sel = idx;
    return (int32_t)keep;
}


/* ---------------------------------------------------------------- Linformer */

typedef struct lr_job {
    const ea_cpu_state *st;
    const ea_attn_call *c;
    int32_t k, chunks; /* projected rows, and blocks of EA_MR of them */
} lr_job;

/* Task t = ((b * Hkv + h) * 2 + which) * chunks + chunk: rows chunk * EA_MR .. of K' = E K (which 0)
 * or V' = F V (which 1) of (b, h), as o = P X over key tiles of kb, P the projection's rows in F32
 * (the tier's P.V rows kernel, X in its own dtype). */
static void lr_task(void *arg, int64_t t, int thread)
{
    const lr_job *J = arg;
    const ea_cpu_state *st = J->st;
    const ea_attn_call *c = J->c;
    const int32_t chunk = (int32_t)(t % J->chunks);
    t /= J->chunks;
    const int which = (int)(t % 2);
    t /= 2;
    const int32_t h = (int32_t)(t % c->Hkv), b = (int32_t)(t / c->Hkv);
    const int32_t D = c->D, KB = st->tiles.kb, r0 = chunk * EA_MR, mr = (int32_t)imin(EA_MR, J->k - r0);
    const ea_cpu_kernels *K = D % 16 ? &st->k8 : &st->k;
    const edgeattn_tensor *P = which ? c->linformer->f : c->linformer->e, *X = which ? c->v : c->k;
    const int64_t pb = P->shape[0] == 1 ? 0 : b, ph = P->shape[1] == 1 ? 0 : h;
    float *dst = st->lowrank + (size_t)which * st->lowrank_half +
                 (((size_t)b * (size_t)c->Hkv + (size_t)h) * (size_t)J->k + (size_t)r0) * (size_t)D;
    float *p32 = (float *)(void *)(st->scratch + (size_t)thread * st->sl.bytes + st->sl.s); /* [EA_MR][KB] */
    static const float ones[EA_MR] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    memset(dst, 0, sizeof(float) * (size_t)mr * (size_t)D);
    const size_t xes = ea_dtype_size(X->dtype);
    for (int64_t j0 = 0; j0 < c->Nkv; j0 += KB) {
        const int32_t n = (int32_t)imin(KB, c->Nkv - j0);
        /* the projection's rows to packed F32: the tier's V packer (a widening copy) over column blocks of
         * up to 256 (its head-dim contract), the last columns (n % 16) by hand */
        const ptrdiff_t pbase = (ptrdiff_t)(pb * P->stride[0] + ph * P->stride[1] + r0 * P->stride[2] + j0);
        const size_t pes = ea_dtype_size(P->dtype);
        const int32_t n16 = n & ~15;
        for (int32_t c0 = 0; c0 < n16; c0 += 256)
            st->k.pack_v[P->dtype](mr, mr, (int)imin(256, n16 - c0), (const char *)P->data + (size_t)(pbase + c0) * pes,
                                   P->stride[2], p32 + c0, KB);
        for (int32_t r = 0; r < mr && n16 < n; r++) {
            const ptrdiff_t po = pbase + r * P->stride[2] + n16;
            float *pr = p32 + (size_t)r * (size_t)KB + n16;
            const int32_t nr = n - n16;
            if (P->dtype == EDGEATTN_F32) {
                memcpy(pr, (const float *)P->data + po, sizeof(float) * (size_t)nr);
            } else if (P->dtype == EDGEATTN_F16) {
                const uint16_t *src = (const uint16_t *)P->data + po;
                for (int32_t j = 0; j < nr; j++)
                    pr[j] = ea_f16_to_f32(src[j]);
            } else {
                const uint16_t *src = (const uint16_t *)P->data + po;
                for (int32_t j = 0; j < nr; j++)
                    pr[j] = ea_bf16_to_f32(src[j]);
            }
        }
        const char *xr = (const char *)X->data + (size_t)(b * X->stride[0] + h * X->stride[1] + j0 * X->stride[2]) * xes;
        K->pv_rows[X->dtype](mr, n, D, p32, KB, xr, X->stride[2], ones, dst, D);
    }
}

edgeattn_status ea_cpu_linformer(ea_cpu_state *st, const ea_attn_call *c)
{
    lr_job J;
    J.st = st;
    J.c = c;
    J.k = (int32_t)c->linformer->e->shape[2];
    J.chunks = (J.k + EA_MR - 1) / EA_MR;
    const int64_t tasks = (int64_t)c->B * c->Hkv * 2 * J.chunks;
    edgeattn_status rc = EDGEATTN_OK;
    if (st->threads <= 1)
        ea_pool_run_inline(lr_task, &J, tasks);
    else
        rc = ea_pool_run(&st->pool, lr_task, &J, tasks);
    if (rc != EDGEATTN_OK)
        return rc;
    /* attention over the k projected rows: F32 K', V' [B, Hkv, k, D] */
    const size_t rows = (size_t)c->B * (size_t)c->Hkv * (size_t)J.k;
    edgeattn_tensor kt = {.data = st->lowrank, .bytes = rows * (size_t)c->D * sizeof(float), .dtype = EDGEATTN_F32,
                          .memory = EDGEATTN_MEM_HOST, .offset = 0,
                          .shape = {c->B, c->Hkv, J.k, c->D},
                          .stride = {(int64_t)c->Hkv * J.k * c->D, (int64_t)J.k * c->D, c->D, 1}};
    edgeattn_tensor vt = kt;
    vt.data = st->lowrank + st->lowrank_half;
    ea_attn_call c2 = *c;
    c2.k = &kt;
    c2.v = &vt;
    c2.Nkv = J.k;
    c2.kv_dtype = EDGEATTN_F32;
    c2.linformer = NULL;
    return ea_cpu_run(st, &c2);
}
