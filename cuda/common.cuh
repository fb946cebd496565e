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
    int off;         // kv_len - Nq: query i sits at logical key position i + off
};

__device__ __forceinline__ ea_seqinfo ea_get_seq(const ea_cu_attn_args &a, int b) {
    ea_seqinfo s;
    if (a.seq) {
        const ea_cu_seq *sq = (const ea_cu_seq *)a.seq + b;
        s.kv_len = sq->kv_len;
        s.slot0 = sq->slot0;
    } else {
        s.kv_len = a.Nkv;
        s.slot0 = 0;
    }
    if (s.kv_len > a.Nkv) s.kv_len = a.Nkv;
    if (s.kv_len < 0) s.kv_len = 0;
    s.off = s.kv_len - a.Nq;
    return s;
}

// Storage row of logical key j.
__device__ __forceinline__ int ea_slot(const ea_cu_attn_args &a, const ea_seqinfo &s, int j) {
    if (a.ring_cap > 0) {
        int r = s.slot0 + j;
        r %= a.ring_cap;
        return r;
    }
    return j;
}

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
