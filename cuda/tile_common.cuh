// Pieces shared by the tensor-core tile kernels (prefill and split-KV decode): the row map of a CTA,
// Q/K/V tile loads into padded shared memory, score transform and masking, online softmax.
#ifndef EDGEATTN_CUDA_TILE_COMMON_CUH
#define EDGEATTN_CUDA_TILE_COMMON_CUH

#include "mma.cuh"

// Rows of one CTA. The row space of one (b, kv head) is the group's query heads times Nq, laid out
// head-major with a per-head stride hs: hs = Nq packs heads back to back (few query rows: decode,
// GQA groups share one tile); hs = Nq rounded up to the tile (many rows: prefill, no tile straddles
// two heads, so causal skipping stays exact).
//
// Ragged decode (q_len < Nq for a batch row): rows i >= q_len are computed like the others (their
// queries exist in memory, their results are finite) and only their stores to out/lse are skipped
// (ea_q_len at the store): no register stays live through the main loop for it.
struct ea_rowmap {
    int hs;          // rows per head in the flattened space
    int r0;          // first flattened row of this CTA
    int i0, i1;      // smallest and largest query index any valid row of this CTA has (i1 < i0: none)
};

__device__ __forceinline__ ea_rowmap ea_make_rowmap(const ea_cu_attn_args &a, int r0, int bm) {
    ea_rowmap m;
    m.hs = a.Nq >= bm ? (a.Nq + bm - 1) / bm * bm : a.Nq;
    m.r0 = r0;
    int rlast = r0 + bm - 1;
    int hmax = a.group * m.hs - 1;
    if (rlast > hmax) rlast = hmax;
    int h0 = r0 / m.hs, h1 = rlast / m.hs;
    if (h0 == h1) {
        m.i0 = r0 % m.hs;
        m.i1 = rlast % m.hs;
        if (m.i1 > a.Nq - 1) m.i1 = a.Nq - 1;
    } else {
        m.i0 = 0;
        m.i1 = a.Nq - 1;
    }
    return m;
}

// Flattened row -> (query head, query index); valid = false for padding rows.
__device__ __forceinline__ bool ea_row_of(const ea_cu_attn_args &a, const ea_rowmap &m, int hkv, int rr, int &hq,
                                          int &i) {
    int r = m.r0 + rr;
    int hl = r / m.hs;
    i = r - hl * m.hs;
    hq = hkv * a.group + hl;
    return hl < a.group && i < a.Nq;
}

// RoPE on the queries of a CTA's tile: for each (query index i of the tile, pair p) the angle is
// computed once (at qpos0 + i) and applied to every row of the tile with that index (the query heads
// of the GQA group), reading Q in FP32. store(rr, d, x) writes element d of tile row rr. The other
// columns (>= rope.dim) and the padding rows are the caller's.
template <int NT, typename Store>
__device__ __forceinline__ void ea_rope_q_rows(const ea_cu_attn_args &a, const ea_rowmap &m, long long qpos0, int b,
                                               int hkv, int bm, Store store) {
    if (m.i1 < m.i0) return;
    const int half = a.rope.dim >> 1, ni = m.i1 - m.i0 + 1;
    for (int it = threadIdx.x; it < ni * half; it += NT) {
        const int di = it / half, p = it - di * half, i = m.i0 + di;
        float c, s;
        ea_rope_cs(a.rope, qpos0 + i, p, c, s);
        int d0, d1;
        ea_rope_pair(a.rope, p, d0, d1);
        // tile rows with query index i: flattened r = hl * hs + i in [r0, r0 + bm)
        for (int hl = m.r0 > i ? (m.r0 - i + m.hs - 1) / m.hs : 0; hl < a.group; ++hl) {
            const int rr = hl * m.hs + i - m.r0;
            if (rr >= bm) break;
            const int64_t qo = b * a.q.sb + (int64_t)(hkv * a.group + hl) * a.q.sh + (int64_t)i * a.q.sn;
            const float x0 = ea_load((const void *)a.q.ptr, qo + d0, a.q.dtype);
            const float x1 = ea_load((const void *)a.q.ptr, qo + d1, a.q.dtype);
            store(rr, d0, x0 * c - x1 * s);
            store(rr, d1, x0 * s + x1 * c);
        }
    }
}

// Loads BM query rows (D columns, any input dtype) into sQ[BM][LD] as T; invalid rows are zeros.
// Same dtype with 16-byte rows: cp.async (caller commits); otherwise converting loads. With RoPE the
// rotated columns are computed in FP32 (ea_rope_q_rows) and rounded to T once.
template <typename T, int D, int LD, int BM, int NT>
__device__ __forceinline__ void ea_load_q_tile(const ea_cu_attn_args &a, const ea_rowmap &m, long long qpos0, int b,
                                               int hkv, uint16_t *sQ, bool async_ok) {
    const int tid = threadIdx.x;
    constexpr int CPR = D / 8; // 16-byte chunks per row
    const int rdim = a.rope.inv_freq ? a.rope.dim : 0;
    if (a.q.dtype == T::dtype && async_ok && rdim == 0) {
        for (int c = tid; c < BM * CPR; c += NT) {
            int rr = c / CPR, cc = c % CPR;
            int hq, i;
            bool ok = ea_row_of(a, m, hkv, rr, hq, i);
            const uint16_t *src = (const uint16_t *)a.q.ptr;
            if (ok) src += b * a.q.sb + hq * a.q.sh + (int64_t)i * a.q.sn + cc * 8;
            ea_cp_async16(ea_smem_addr(sQ + rr * LD + cc * 8), ok ? (const void *)src : (const void *)a.q.ptr,
                          ok ? 16 : 0);
        }
    } else {
        for (int c = tid; c < BM * D; c += NT) {
            int rr = c / D, d = c % D;
            int hq, i;
            bool ok = ea_row_of(a, m, hkv, rr, hq, i);
            if (ok && d < rdim) continue; // rotated below
            float v = 0.f;
            if (ok) v = ea_load((const void *)a.q.ptr, b * a.q.sb + hq * a.q.sh + (int64_t)i * a.q.sn + d, a.q.dtype);
            sQ[rr * LD + d] = T::from_f(v);
        }
        if (rdim)
            ea_rope_q_rows<NT>(a, m, qpos0, b, hkv, BM,
                               [&](int rr, int d, float x) { sQ[rr * LD + d] = T::from_f(x); });
    }
}

// The decode tile of an F32 Q (decode.cu, q2): rows 0..7 of the block (rowmap m of 8 rows) as Q's
// rounding to T (hi), rows 8..15 as the rounding of Q - hi (lo); RoPE rotates in FP32 first. A block
// whose largest |q| would pass 2^14 (F16's range is 65504) is stored times a power of two 2^-e that
// brings it under; returns 2^e, which the scores are multiplied by (exact). Every thread calls it.
template <typename T, int D, int LD, int NT>
__device__ __forceinline__ float ea_load_q_split(const ea_cu_attn_args &a, const ea_rowmap &m, long long qpos0,
                                                 int b, int hkv, uint16_t *sQ) {
    __shared__ unsigned ea_q_absmax; // |q| as float bits (non-negative floats order as integers)
    const int rdim = a.rope.inv_freq ? a.rope.dim : 0;
    if (threadIdx.x == 0) ea_q_absmax = 0u;
    __syncthreads();
    float mx = 0.f;
    for (int c = threadIdx.x; c < 8 * D; c += NT) {
        const int rr = c / D, d = c % D;
        int hq, i;
        if (ea_row_of(a, m, hkv, rr, hq, i))
            mx = fmaxf(mx, fabsf(((const float *)a.q.ptr)[b * a.q.sb + hq * a.q.sh + (int64_t)i * a.q.sn + d]));
    }
    atomicMax(&ea_q_absmax, __float_as_uint(mx));
    __syncthreads();
    const float top = __uint_as_float(ea_q_absmax) * (rdim ? 1.5f : 1.f); // (a rotation moves a pair's norm)
    int e = 0;
    if (T::dtype == EA_CU_F16 && top > 16384.f) e = (int)ceilf(__log2f(top * (1.f / 16384.f))) + 1;
    const float down = ldexpf(1.f, -e);
    auto put = [&](int rr, int d, float x) {
        x *= down;
        const uint16_t h = T::from_f(x);
        sQ[rr * LD + d] = h;
        sQ[(rr + 8) * LD + d] = T::from_f(x - T::to_f(h));
    };
    for (int c = threadIdx.x; c < 8 * D; c += NT) {
        const int rr = c / D, d = c % D;
        int hq, i;
        const bool ok = ea_row_of(a, m, hkv, rr, hq, i);
        if (ok && d < rdim) continue; // rotated below
        put(rr, d, ok ? ((const float *)a.q.ptr)[b * a.q.sb + hq * a.q.sh + (int64_t)i * a.q.sn + d] : 0.f);
    }
    if (rdim) ea_rope_q_rows<NT>(a, m, qpos0, b, hkv, 8, put);
    return ldexpf(1.f, e);
}

// K/V batch index of batch row b (ea_cu_seq.kv_b: decode reads cache sequence seq_ids[b]), loaded where
// a tile load needs it: an L1 hit per tile instead of a register through the main loop (a loaded value
// is not uniform to the compiler the way blockIdx is: holding it cost up to 20 registers and more
// spills in the prefill kernels). The volatile load keeps the compiler from hoisting it. Attention
// (no ring) has kv_b = b by the contract: no load there.
__device__ __forceinline__ int ea_kv_b_now(const ea_cu_attn_args &a, int b) {
    if (!a.seq || a.ring_cap == 0) return b;
    int v;
    asm volatile("ld.global.nc.b32 %0, [%1];" : "=r"(v) : "l"(&((const ea_cu_seq *)a.seq)[b].kv_b));
    return v;
}

// Loads keys [j0, j0 + ROWS) of K and V (storage rows via the ring slot map) into sK/sV[ROWS][LD];
// keys at or past jend are zero-filled (V must be finite there: P = 0 times garbage could be NaN).
// NTH threads (thread index tid) share the work. Interior tiles of a plain (non-ring) cache take the fast
// path: per-thread base pointers fixed at start, one 64-bit offset per tile, constant strides.
// PAGED (the paged decode kernels, a.pages.table set): load_paged. A full tile whose slots lie inside one
// page (and do not wrap the ring) reads the page table once and then loads like the fast path; other
// tiles read one table entry per row they load. The contiguous kernels compile none of it.
template <int D, int LD, int ROWS, int NTH, bool PAGED = false>
struct ea_kv_loader {
    static constexpr int CPR = D / 8; // 16-byte chunks per row
    static constexpr bool FAST = (NTH % CPR) == 0 && ((ROWS * CPR) % NTH) == 0;
    static constexpr int RSTEP = FAST ? NTH / CPR : 1;
    int b, hkv, tid; // b: the batch row (blockIdx.z); nothing else stays live across the main loop: bases are
                     // recomputed per tile

    __device__ __forceinline__ void init(const ea_cu_attn_args &a, int b_, int hkv_, int tid_) {
        (void)a;
        b = b_;
        hkv = hkv_;
        tid = tid_;
    }

    __device__ __forceinline__ void load_paged(const ea_cu_attn_args &a, const ea_seqinfo &s, int j0, int jend,
                                               uint16_t *sK, uint16_t *sV) const {
        const ea_cu_pages &p = a.pages;
        const uint16_t *kh = (const uint16_t *)a.k.ptr + hkv * a.k.sh;
        const uint16_t *vh = (const uint16_t *)a.v.ptr + hkv * a.v.sh;
        const int cap = a.ring_cap, sinks = a.ring_sinks; // cap > 0 with pages (kernel_abi.h)
        const int sl0 = ea_ring_slot(cap, sinks, s.slot0, j0); // slot of key j0
        const int r0 = ea_page_row(p, sl0);
        // one run of slots: the tile inside the sinks or inside the ring, not wrapping, inside one page
        if (!a.topk.sel && j0 + ROWS <= jend && (j0 >= sinks || j0 + ROWS <= sinks) && r0 + ROWS <= (1 << p.page_shift) &&
            sl0 + ROWS <= cap) {
            const int64_t pb = ea_page_base(p, b, sl0) + (int64_t)r0 * a.k.sn; // K and V share page and strides
            if constexpr (FAST) {
                const int r = tid / CPR, c = tid % CPR;
                const uint16_t *kq = kh + pb + (int64_t)r * a.k.sn + c * 8;
                const uint16_t *vq = vh + pb + (int64_t)r * a.v.sn + c * 8;
                const int soff = r * LD + c * 8;
                const uint32_t ks = ea_smem_addr(sK + soff), vs = ea_smem_addr(sV + soff);
#pragma unroll
                for (int k = 0; k < ROWS * CPR / NTH; ++k) {
                    ea_cp_async16(ks + k * RSTEP * LD * 2, kq + (int64_t)k * RSTEP * a.k.sn, 16);
                    ea_cp_async16(vs + k * RSTEP * LD * 2, vq + (int64_t)k * RSTEP * a.v.sn, 16);
                }
            } else {
#pragma unroll 1
                for (int c = tid; c < ROWS * CPR; c += NTH) {
                    const int rr = c / CPR, cc = c % CPR;
                    const int64_t o = pb + (int64_t)rr * a.k.sn + cc * 8;
                    ea_cp_async16(ea_smem_addr(sK + rr * LD + cc * 8), kh + o, 16);
                    ea_cp_async16(ea_smem_addr(sV + rr * LD + cc * 8), vh + o, 16);
                }
            }
            return;
        }
#pragma unroll 1
        for (int c = tid; c < ROWS * CPR; c += NTH) {
            const int rr = c / CPR, cc = c % CPR;
            const bool ok = j0 + rr < jend;
            int64_t o = 0;
            if (ok) {
                const int slot = a.topk.sel ? ea_slot_bh(a, s, b, hkv, j0 + rr) : ea_ring_slot(cap, sinks, s.slot0, j0 + rr);
                o = ea_page_base(p, b, slot) + (int64_t)ea_page_row(p, slot) * a.k.sn;
            }
            ea_cp_async16(ea_smem_addr(sK + rr * LD + cc * 8), kh + o + cc * 8, ok ? 16 : 0);
            ea_cp_async16(ea_smem_addr(sV + rr * LD + cc * 8), vh + o + cc * 8, ok ? 16 : 0);
        }
    }

    __device__ __forceinline__ void load(const ea_cu_attn_args &a, const ea_seqinfo &s, int j0, int jend,
                                         uint16_t *sK, uint16_t *sV) const {
        if constexpr (PAGED) {
            load_paged(a, s, j0, jend, sK, sV);
            return;
        }
        const int kvb = ea_kv_b_now(a, b);
        const uint16_t *kb = (const uint16_t *)a.k.ptr + kvb * a.k.sb + hkv * a.k.sh;
        const uint16_t *vb = (const uint16_t *)a.v.ptr + kvb * a.v.sb + hkv * a.v.sh;
        if constexpr (FAST) {
            if (a.ring_cap == 0 && j0 + ROWS <= jend) {
                const int r = tid / CPR, c = tid % CPR;
                const uint16_t *kq = kb + (int64_t)(j0 + r) * a.k.sn + c * 8;
                const uint16_t *vq = vb + (int64_t)(j0 + r) * a.v.sn + c * 8;
                const int soff = r * LD + c * 8;
                const uint32_t ks = ea_smem_addr(sK + soff), vs = ea_smem_addr(sV + soff);
#pragma unroll
                for (int k = 0; k < ROWS * CPR / NTH; ++k) {
                    ea_cp_async16(ks + k * RSTEP * LD * 2, kq + (int64_t)k * RSTEP * a.k.sn, 16);
                    ea_cp_async16(vs + k * RSTEP * LD * 2, vq + (int64_t)k * RSTEP * a.v.sn, 16);
                }
                return;
            }
        }
        for (int c = tid; c < ROWS * CPR; c += NTH) {
            const int rr = c / CPR, cc = c % CPR;
            const int j = j0 + rr;
            const bool ok = j < jend;
            const int slot = ok ? ea_slot_bh(a, s, b, hkv, j) : 0;
            ea_cp_async16(ea_smem_addr(sK + rr * LD + cc * 8), kb + (int64_t)slot * a.k.sn + cc * 8, ok ? 16 : 0);
            ea_cp_async16(ea_smem_addr(sV + rr * LD + cc * 8), vb + (int64_t)slot * a.v.sn + cc * 8, ok ? 16 : 0);
        }
    }
};

// ---------------------------------------------------------------- block-sparse masks (kernel_abi.h ea_cu_bsr)
// The key blocks listed for at most two query row blocks (a CTA's rows: BM <= 128 rows, block_q >= 64),
// merged in increasing order; bit 0 of `bits`: listed for the first row block, bit 1: for the second.
struct ea_bsr_iter {
    const int *c0, *c1;
    int n0, n1, p0, p1;

    __device__ __forceinline__ void init(const ea_cu_attn_args &a, int b, int hkv, int qb0, int qb1, int kblo) {
        const int p = (b % a.bm.batch) * a.bm.heads + hkv % a.bm.heads;
        const int *rp = (const int *)a.bm.row_ptr + (int64_t)p * (a.bm.nrb + 1);
        const int *ci = (const int *)a.bm.col_idx;
        const int s0 = __ldg(rp + qb0), s1 = __ldg(rp + qb1);
        c0 = ci + s0;
        n0 = __ldg(rp + qb0 + 1) - s0;
        c1 = ci + s1;
        n1 = qb1 != qb0 ? __ldg(rp + qb1 + 1) - s1 : 0;
        p0 = lower(c0, n0, kblo);
        p1 = lower(c1, n1, kblo);
    }
    // first index of list c (n sorted entries) whose block is >= x
    static __device__ __forceinline__ int lower(const int *c, int n, int x) {
        int lo = 0, hi = n;
        while (lo < hi) {
            const int mid = (lo + hi) >> 1;
            if (__ldg(c + mid) < x) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }
    // the next listed block below kbhi (and which lists hold it); false at the end
    __device__ __forceinline__ bool next(int kbhi, int &blk, int &bits) {
        const int x0 = p0 < n0 ? __ldg(c0 + p0) : 0x7fffffff, x1 = p1 < n1 ? __ldg(c1 + p1) : 0x7fffffff;
        blk = x0 < x1 ? x0 : x1;
        if (blk >= kbhi) return false;
        bits = (x0 == blk ? 1 : 0) | (x1 == blk ? 2 : 0);
        p0 += x0 == blk;
        p1 += x1 == blk;
        return true;
    }
};

// Does query i's row block list key j's block (batch row b, KV head hkv)? (SIMT kernels: a search per key)
__device__ __forceinline__ bool ea_bsr_keeps(const ea_cu_attn_args &a, int b, int hkv, int i, int j) {
    const int p = (b % a.bm.batch) * a.bm.heads + hkv % a.bm.heads, r = i / a.bm.block_q;
    const int *rp = (const int *)a.bm.row_ptr + (int64_t)p * (a.bm.nrb + 1) + r;
    const int s = __ldg(rp), n = __ldg(rp + 1) - s;
    const int *c = (const int *)a.bm.col_idx + s;
    const int k = ea_bsr_iter::lower(c, n, j >> 6);
    return k < n && __ldg(c + k) == (j >> 6);
}

// Visible keys of query i form one interval [jlo, jhi] (logical keys, clamped to [0, kv_len)); i < 0
// (padding row): empty.
__device__ __forceinline__ void ea_row_bounds(const ea_cu_attn_args &a, int i, int off, int kv_len, int &jlo,
                                              int &jhi) {
    if (i < 0) { jlo = 1; jhi = 0; return; }
    const long long p = (long long)i + off;
    long long lo = 0, hi = (long long)kv_len - 1;
    if (a.causal && p < hi) hi = p;
    if (a.window_right >= 0 && p + a.window_right < hi) hi = p + a.window_right;
    if (a.window_left >= 0 && p - a.window_left > lo) lo = p - a.window_left;
    if (hi < lo) { jlo = 1; jhi = 0; return; }
    jlo = (int)lo; jhi = (int)hi;
}

// Score transform to the log2 domain: t = (softcap * tanh(scale*acc/softcap) + bias) * log2(e), or
// acc * scale * log2(e) in the common case (no softcap, no bias).
struct ea_score_xf {
    float scale_log2, scale, softcap, inv_softcap;
    bool generic;
};

__device__ __forceinline__ ea_score_xf ea_make_xf(const ea_cu_attn_args &a) {
    ea_score_xf x;
    x.scale = a.scale;
    x.scale_log2 = a.scale * EA_LOG2E;
    x.softcap = a.softcap;
    x.inv_softcap = a.softcap > 0.f ? 1.f / a.softcap : 0.f;
    x.generic = a.softcap > 0.f || a.bias.ptr != 0;
    return x;
}

// tanh for softcap: the accurate tanhf. The short form 1 - 2/(exp(2x)+1) loses every digit near 0, and
// softcap multiplies the result back up, so a large cap would turn small scores into 0.
__device__ __forceinline__ float ea_tanh(float x) { return tanhf(x); }

__device__ __forceinline__ float ea_xf_generic(const ea_cu_attn_args &a, const ea_score_xf &x, float acc,
                                               const float *brow, int j) {
    float s = acc * x.scale;
    if (x.softcap > 0.f) s = x.softcap * ea_tanh(s * x.inv_softcap);
    if (brow) s += __ldg(brow + j);
    return s * EA_LOG2E;
}

#endif
