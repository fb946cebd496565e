// SIMT fallback (any compute capability >= 7.5): any dtype of Q, K, V, out; any head dim multiple of
// 8 up to 256 (ea_attn_combine's float4 columns need a multiple of 4); every option; FP32 math
// throughout. The documented slow path (FP32 inputs, sm_75, head dims without a tensor-core kernel such
// as 8, 24, 40, 72, 120, misaligned tensors). Same grid and row map as the split-KV decode kernel, so it also
// serves decode with splits (partials to the workspace, merged by ea_attn_combine).
//
// CTA = 128 threads, 16 packed rows x tiles of 16 keys staged as FP32 in shared memory. Thread
// (r = tid / 8, u = tid % 8) scores keys 2u, 2u+1 of row r and owns output columns u + 8c.
#include "tile_common.cuh"

#define EA_SIMT_BM 16
#define EA_SIMT_BN 16
#define EA_SIMT_MAXC 32 // 256 / 8 output columns per thread

template <bool PAGED>
__device__ __forceinline__ void ea_simt_body(const ea_cu_attn_args &a, float *ea_smem_simt) {
    const int D = a.D, LDF = D + 1;
    float *sQ = ea_smem_simt;                  // [16][D+1]
    float *sK = sQ + EA_SIMT_BM * LDF;         // [16][D+1]
    float *sV = sK + EA_SIMT_BN * LDF;         // [16][D+1]
    float *sP = sV + EA_SIMT_BN * LDF;         // [16][17]

    const int tid = threadIdx.x, r = tid >> 3, u = tid & 7;
    const int hkv = blockIdx.y, b = blockIdx.z;
    const int hs = a.Nq >= EA_SIMT_BM ? (a.Nq + EA_SIMT_BM - 1) / EA_SIMT_BM * EA_SIMT_BM : a.Nq;
    const int nrb = (a.group * hs + EA_SIMT_BM - 1) / EA_SIMT_BM;
    const int rb = blockIdx.x % nrb, split = blockIdx.x / nrb;
    const ea_seqinfo sq = ea_get_seq(a, b);
    const ea_rowmap rm = ea_make_rowmap(a, rb * EA_SIMT_BM, EA_SIMT_BM);
    const ea_score_xf xf = ea_make_xf(a);

    int hq, i;
    const bool ok = ea_row_of(a, rm, hkv, r, hq, i) && i < sq.q_len; // rows past q_len: not written
    const float *brow = nullptr;
    if (a.bias.ptr && ok) brow = (const float *)a.bias.ptr + b * a.bias.sb + hq * a.bias.sh + (int64_t)i * a.bias.sn;

    // Q tile (RoPE: the first rope.dim columns of valid rows rotated in FP32)
    const int rdim = a.rope.inv_freq ? a.rope.dim : 0;
    for (int c = tid; c < EA_SIMT_BM * D; c += 128) {
        const int rr = c / D, d = c % D;
        int hq2, i2;
        const bool ok2 = ea_row_of(a, rm, hkv, rr, hq2, i2);
        if (ok2 && d < rdim) continue;
        sQ[rr * LDF + d] = ok2 ? ea_load((const void *)a.q.ptr, b * a.q.sb + hq2 * a.q.sh + (int64_t)i2 * a.q.sn + d, a.q.dtype) : 0.f;
    }
    if (rdim)
        ea_rope_q_rows<128>(a, rm, sq.qpos0, b, hkv, EA_SIMT_BM, [&](int rr, int d, float x) { sQ[rr * LDF + d] = x; });

    int lo = 0, hi = 0;
    if (rm.i1 >= rm.i0) ea_key_range(a, rm.i0, rm.i1, sq.off, sq.kv_len, lo, hi);
    const int s0 = a.num_splits > 1 ? split * a.split_len : 0;
    const int s1 = a.num_splits > 1 ? s0 + a.split_len : sq.kv_len;
    const int klo = lo > s0 ? lo : s0, khi = hi < s1 ? hi : s1;

    float o[EA_SIMT_MAXC];
#pragma unroll
    for (int c = 0; c < EA_SIMT_MAXC; ++c) o[c] = 0.f;
    float m = -INFINITY, l = 0.f;
    // (PAGED: the page table row is batch row b's, kv_b unused)
    const int64_t kb = (PAGED ? 0 : sq.kv_b * a.k.sb) + hkv * a.k.sh, vb = (PAGED ? 0 : sq.kv_b * a.v.sb) + hkv * a.v.sh;

    for (int j0 = klo - (klo - s0) % EA_SIMT_BN; j0 < khi; j0 += EA_SIMT_BN) {
        __syncthreads();
        for (int c = tid; c < EA_SIMT_BN * D; c += 128) {
            const int rr = c / D, d = c % D, j = j0 + rr;
            float kx = 0.f, vx = 0.f;
            if (j < khi && j >= klo) {
                if constexpr (PAGED) {
                    const int slot = ea_slot_bh(a, sq, b, hkv, j);
                    const int64_t pb = ea_page_base(a.pages, b, slot), row = ea_page_row(a.pages, slot);
                    kx = ea_load((const void *)a.k.ptr, pb + kb + row * a.k.sn + d, a.k.dtype);
                    vx = ea_load((const void *)a.v.ptr, pb + vb + row * a.v.sn + d, a.v.dtype);
                } else {
                    const int64_t slot = ea_slot_bh(a, sq, b, hkv, j);
                    kx = ea_load((const void *)a.k.ptr, kb + slot * a.k.sn + d, a.k.dtype);
                    vx = ea_load((const void *)a.v.ptr, vb + slot * a.v.sn + d, a.v.dtype);
                }
            }
            sK[rr * LDF + d] = kx;
            sV[rr * LDF + d] = vx;
        }
        __syncthreads();
        float t[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int c = 2 * u + e, j = j0 + c;
            float acc = 0.f;
            for (int d = 0; d < D; ++d) acc = fmaf(sQ[r * LDF + d], sK[c * LDF + d], acc);
            const bool vis = ok && j >= klo && j < khi && ea_visible(a, i, j, sq.off) &&
                             (!a.bm.block_q || ea_bsr_keeps(a, b, hkv, i, j));
            t[e] = vis ? (xf.generic ? ea_xf_generic(a, xf, acc, brow, j) : acc * xf.scale_log2) : -INFINITY;
        }
        float mx = fmaxf(m, fmaxf(t[0], t[1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
        const float mu = mx == -INFINITY ? 0.f : mx;
        const float alpha = exp2f(m - mu);
        m = mx;
        const float p0 = exp2f(t[0] - mu), p1 = exp2f(t[1] - mu);
        float ps = p0 + p1;
        ps += __shfl_xor_sync(0xffffffffu, ps, 1);
        ps += __shfl_xor_sync(0xffffffffu, ps, 2);
        ps += __shfl_xor_sync(0xffffffffu, ps, 4);
        l = l * alpha + ps;
        sP[r * 17 + 2 * u] = p0;
        sP[r * 17 + 2 * u + 1] = p1;
        __syncwarp();
#pragma unroll
        for (int c = 0; c < EA_SIMT_MAXC; ++c) {
            const int d = u + 8 * c;
            if (d < D) {
                float acc = o[c] * alpha;
#pragma unroll
                for (int k = 0; k < EA_SIMT_BN; ++k) acc = fmaf(sP[r * 17 + k], sV[k * LDF + d], acc);
                o[c] = acc;
            }
        }
        __syncwarp();
    }

    if (!ok) return;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const float mu = m == -INFINITY ? 0.f : m;
    const float lse = l > 0.f ? (mu + log2f(l)) * EA_LN2 : -INFINITY;
    if (a.num_splits <= 1) {
        const int64_t ob = b * a.out.sb + hq * a.out.sh + (int64_t)i * a.out.sn;
#pragma unroll
        for (int c = 0; c < EA_SIMT_MAXC; ++c)
            if (u + 8 * c < D) ea_store((void *)a.out.ptr, ob + u + 8 * c, a.out.dtype, o[c] * inv);
        if (a.lse.ptr && u == 0) ((float *)a.lse.ptr)[b * a.lse.sb + hq * a.lse.sh + (int64_t)i * a.lse.sn] = lse;
    } else {
        const int64_t row = ((int64_t)b * a.Hq + hq) * a.Nq + i;
        float *wo = (float *)a.ws_o + (row * a.num_splits + split) * D;
#pragma unroll
        for (int c = 0; c < EA_SIMT_MAXC; ++c)
            if (u + 8 * c < D) wo[u + 8 * c] = o[c] * inv;
        if (u == 0) { // (max in natural-log units, sum) apart: m + log(l) would lose l under a -1e30 bias
            ((float *)a.ws_lse)[2 * (row * a.num_splits + split)] = l > 0.f ? mu * EA_LN2 : -INFINITY;
            ((float *)a.ws_lse)[2 * (row * a.num_splits + split) + 1] = l;
        }
    }
}

extern "C" __global__ void __launch_bounds__(128) ea_attn_simt(const ea_cu_attn_args a) {
    extern __shared__ __align__(16) float ea_smem_simt[];
    ea_simt_body<false>(a, ea_smem_simt);
}

// Paged KV cache (a.pages.table set): one page-table read per key row element it loads.
extern "C" __global__ void __launch_bounds__(128) ea_attn_simt_paged(const ea_cu_attn_args a) {
    extern __shared__ __align__(16) float ea_smem_simt[];
    ea_simt_body<true>(a, ea_smem_simt);
}
