// Shared device helpers for the edgeattn CUDA kernels: element conversion, the position/mask rule of
// cuda/kernel_abi.h, the flattened row space (GQA group x query rows) and split-KV bookkeeping.
#ifndef EDGEATTN_CUDA_COMMON_CUH
#define EDGEATTN_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>

extern "C" {
#include "kernel_abi.h"
}

#define EA_LOG2E 1.4426950408889634f
#define EA_LN2 0.6931471805599453f

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define EA_SM80 1
#else
#define EA_SM80 0
#endif

// ---------------------------------------------------------------- element loads/stores (any dtype)
__device__ __forceinline__ float ea_bf16_to_f(uint16_t b) { return __uint_as_float(((uint32_t)b) << 16); }
__device__ __forceinline__ uint16_t ea_f_to_bf16(float f) {
    // round to nearest even; NaN stays NaN
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
__device__ __forceinline__ float ea_h_to_f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t ea_f_to_h(float f) { return __half_as_ushort(__float2half_rn(f)); }

__device__ __forceinline__ float ea_load(const void *base, int64_t idx, int dtype) {
    if (dtype == EA_CU_F32) return __ldg((const float *)base + idx);
    uint16_t v = __ldg((const unsigned short *)base + idx);
    return dtype == EA_CU_F16 ? ea_h_to_f(v) : ea_bf16_to_f(v);
}
__device__ __forceinline__ void ea_store(void *base, int64_t idx, int dtype, float v) {
    if (dtype == EA_CU_F32) ((float *)base)[idx] = v;
    else if (dtype == EA_CU_F16) ((uint16_t *)base)[idx] = ea_f_to_h(v);
    else ((uint16_t *)base)[idx] = ea_f_to_bf16(v);
}
// Two adjacent elements; one wide store when the address allows it (a caller's view may start at any
// element, so alignment is checked on the address, not assumed from idx).
__device__ __forceinline__ void ea_store2(void *base, int64_t idx, int dtype, float a, float b) {
    if (dtype == EA_CU_F32) {
        float *p = (float *)base + idx;
        if (((uintptr_t)p & 7u) == 0) *(float2 *)p = make_float2(a, b);
        else { p[0] = a; p[1] = b; }
    } else {
        uint16_t lo = dtype == EA_CU_F16 ? ea_f_to_h(a) : ea_f_to_bf16(a);
        uint16_t hi = dtype == EA_CU_F16 ? ea_f_to_h(b) : ea_f_to_bf16(b);
        uint16_t *p = (uint16_t *)base + idx;
        if (((uintptr_t)p & 3u) == 0) *(uint32_t *)p = (uint32_t)lo | ((uint32_t)hi << 16);
        else { p[0] = lo; p[1] = hi; }
    }
}
__device__ __forceinline__ int ea_dtype_size(int dtype) { return dtype == EA_CU_F32 ? 4 : 2; }

// ---------------------------------------------------------------- sequences and masks
struct ea_seqinfo {
    int kv_len;      // visible keys
    int slot0;       // ring slot of logical key 0
    int off;         // kv_len - q_len: query i sits at logical key position i + off
    int kv_b;        // batch index of this row's K/V (decode: the cache sequence)
    int q_len;       // queries of this batch row (rows i >= q_len: not computed, not written)
    long long qpos0; // absolute position of query 0 (RoPE)
};

__device__ __forceinline__ ea_seqinfo ea_get_seq(const ea_cu_attn_args &a, int b) {
    ea_seqinfo s;
    long long pos0 = 0;
    if (a.seq) {
        const ea_cu_seq *sq = (const ea_cu_seq *)a.seq + b;
        s.kv_len = sq->kv_len;
        s.slot0 = sq->slot0;
        s.kv_b = sq->kv_b;
        s.q_len = sq->q_len;
        pos0 = sq->key_pos0;
    } else {
        s.kv_len = a.Nkv;
        s.slot0 = 0;
        s.kv_b = b;
        s.q_len = a.Nq;
    }
    if (s.kv_len > a.Nkv) s.kv_len = a.Nkv;
    if (s.kv_len < 0) s.kv_len = 0;
    if (s.q_len > a.Nq) s.q_len = a.Nq;
    if (s.q_len < 0) s.q_len = 0;
    s.off = s.kv_len - s.q_len;
    s.qpos0 = pos0 + s.off;
    return s;
}

// Queries of batch row b (rows i >= it are not written), read where a store needs it: the volatile load
// stays there (hoisted to the kernel's start, it would hold a register through the main loop).
__device__ __forceinline__ int ea_q_len(const ea_cu_attn_args &a, int b) {
    if (!a.seq) return a.Nq;
    int q;
    asm volatile("ld.global.nc.b32 %0, [%1];" : "=r"(q) : "l"(&((const ea_cu_seq *)a.seq)[b].q_len));
    return q < a.Nq ? q : a.Nq;
}

// ---------------------------------------------------------------- RoPE (kernel_abi.h)
// cos and sin (FP32) of the angle of pair p at absolute position pos: the angle (pos * pos_scale) *
// inv_freq[p] in double exactly as the host computes it, reduced to [-pi, pi] in double (2 pi in two
// parts: the remainder is exact to about 1e-16 for any position), then sincosf on the FP32 remainder.
// Five FP64 operations per angle instead of a double cos/sin, which runs at 1/64 rate on most parts.
__device__ __forceinline__ void ea_rope_cs(const ea_cu_rope &r, long long pos, int p, float &c, float &s) {
    const double x = (double)pos * r.pos_scale;
    const double ang = x * __ldg((const double *)r.inv_freq + p);
    const double k = rint(ang * 0.15915494309189535); // 1 / (2 pi)
    double red = fma(-k, 6.283185307179586, ang);     // 2 pi, high part
    red = fma(-k, 2.4492935982947064e-16, red);       // 2 pi, low part
    sincosf((float)red, &s, &c);
}

// Element indices of pair p of a head: (p, p + dim/2) or (2p, 2p + 1).
__device__ __forceinline__ void ea_rope_pair(const ea_cu_rope &r, int p, int &d0, int &d1) {
    const int half = r.dim >> 1;
    d0 = r.style == 1 ? p : 2 * p;
    d1 = r.style == 1 ? p + half : 2 * p + 1;
}

// Storage row of logical key j of a ring of cap slots whose first `sinks` hold sinks (kernel_abi.h).
__device__ __forceinline__ int ea_ring_slot(int cap, int sinks, int slot0, int j) {
    if (j < sinks) return j;
    return sinks + (int)(((unsigned)slot0 + (unsigned)(j - sinks)) % (unsigned)(cap - sinks)); // both < 2^31
}

// Storage row of logical key j.
__device__ __forceinline__ int ea_slot(const ea_cu_attn_args &a, const ea_seqinfo &s, int j) {
    if (a.ring_cap > 0) return ea_ring_slot(a.ring_cap, a.ring_sinks, s.slot0, j);
    return j;
}

// Storage row of logical key j of batch row b, KV head hkv: through a top-k decode's chosen blocks, else ea_slot.
__device__ __forceinline__ int ea_slot_bh(const ea_cu_attn_args &a, const ea_seqinfo &s, int b, int hkv, int j) {
    if (a.topk.sel) {
        const int blk = __ldg((const int *)a.topk.sel + ((int64_t)b * a.Hkv + hkv) * a.topk.stride + (j >> a.topk.shift));
        return (blk << a.topk.shift) + (j & ((1 << a.topk.shift) - 1));
    }
    return ea_slot(a, s, j);
}

// Paged K/V (a.pages.table != 0): element offset of the page holding storage slot `slot` of batch row b
// (one read of the call's page table, through the read-only path), plus the slot's row inside the page.
__device__ __forceinline__ int64_t ea_page_base(const ea_cu_pages &p, int b, int slot) {
    const int pg = __ldg((const int *)p.table + (int64_t)b * p.table_stride + (slot >> p.page_shift));
    return (int64_t)pg * p.page_elems;
}
__device__ __forceinline__ int ea_page_row(const ea_cu_pages &p, int slot) { return slot & ((1 << p.page_shift) - 1); }

// Key j (logical, < kv_len) visible to query i? Positions cancel key_pos0: pos(j)-qpos(i) = j-i-off.
__device__ __forceinline__ bool ea_visible(const ea_cu_attn_args &a, int i, int j, int off) {
    int d = j - i - off; // pos(j) - qpos(i)
    if (a.causal && d > 0) return false;
    if (a.window_left >= 0 && d < -a.window_left) return false;
    if (a.window_right >= 0 && d > a.window_right) return false;
    return true;
}

// Range [lo, hi) of logical keys any query in [i0, i1] may see (clamped to [0, kv_len)).
__device__ __forceinline__ void ea_key_range(const ea_cu_attn_args &a, int i0, int i1, int off, int kv_len,
                                             int &lo, int &hi) {
    long long l = 0, h = kv_len;
    if (a.window_left >= 0) { long long t = (long long)i0 + off - a.window_left; if (t > l) l = t; }
    if (a.causal) { long long t = (long long)i1 + off + 1; if (t < h) h = t; }
    if (a.window_right >= 0) { long long t = (long long)i1 + off + a.window_right + 1; if (t < h) h = t; }
    if (h < l) h = l;
    lo = (int)l; hi = (int)h;
}

// Is every key in [j0, j1) visible to every query in [i0, i1] (j1 <= kv_len assumed checked apart)?
__device__ __forceinline__ bool ea_tile_full(const ea_cu_attn_args &a, int i0, int i1, int j0, int j1, int off) {
    // max over the tile of d = j - i - off is (j1-1) - i0 - off; min is j0 - i1 - off
    long long dmax = (long long)(j1 - 1) - i0 - off, dmin = (long long)j0 - i1 - off;
    if (a.causal && dmax > 0) return false;
    if (a.window_left >= 0 && dmin < -(long long)a.window_left) return false;
    if (a.window_right >= 0 && dmax > a.window_right) return false;
    return true;
}

// Flattened row space of one (b, kv head): row r in [0, group*Nq) is query head hkv*group + r / Nq,
// query index r % Nq. Prefill with group 1 reduces to rows of one head.
struct ea_row {
    int hq, i;
};

#endif
