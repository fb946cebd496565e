// Top-k block decode (Quest): the cache's block summaries (ea_kv_summary, after each append), the
// blocks' upper bounds for the decode's queries (ea_topk_score) and the choice of the best ones in
// increasing order (ea_topk_select). The decode kernels then read only the chosen blocks through
// ea_cu_topk (kernel_abi.h). No host sort, no allocation: scores and choices live in the device pool.
#include "common.cuh"

// Element offset of slot `slot` (= position: a top-k cache has no ring) of head h, batch row b.
__device__ __forceinline__ int64_t ea_summ_row(const ea_cu_summary_args &a, int b, int seq, int h, int slot) {
    if (a.pages.table)
        return ea_page_base(a.pages, b, slot) + (((int64_t)h << a.pages.page_shift) + ea_page_row(a.pages, slot)) * a.D;
    return (((int64_t)seq * a.cache_heads + h) * a.cap + slot) * a.D;
}

// grid (blocks touched, H, B), block 128: threads over D, each walking the block's rows.
extern "C" __global__ void __launch_bounds__(128) ea_kv_summary(const ea_cu_summary_args a) {
    const int b = blockIdx.z, h = blockIdx.y;
    const ea_cu_kv_row row = ((const ea_cu_kv_row *)a.rows)[b];
    if (row.n <= 0) return;
    const long long end = row.pos0 + row.n + row.jump;
    const int bs = 1 << a.sm.shift;
    const long long blk = (row.pos0 >> a.sm.shift) + blockIdx.x;
    const long long r0 = blk << a.sm.shift;
    if (r0 >= end || blk >= a.sm.nblk) return;
    const int r1 = (int)(end < r0 + bs ? end : r0 + bs);
    float *mn = (float *)a.sm.summ + (((int64_t)row.seq * a.sm.heads_max + h) * a.sm.nblk + blk) * 2 * a.sm.dim_max;
    float *mx = mn + a.sm.dim_max;
    for (int d = threadIdx.x; d < a.D; d += blockDim.x) {
        float lo = 0.f, hi = 0.f;
        for (int r = (int)r0; r < r1; ++r) {
            const float x = ea_load((const void *)a.k, ea_summ_row(a, b, row.seq, h, r) + d, a.cache_dtype);
            const bool first = r == (int)r0;
            lo = first || x < lo ? x : lo; // (the CPU's rule: a NaN first value stays)
            hi = first || x > hi ? x : hi;
        }
        mn[d] = lo;
        mx[d] = hi;
    }
}

// grid (ceil(blocks / 8), Hkv, B), block 256, dynamic shared memory group * D floats (the rotated queries):
// a warp per block, lanes over D.
extern "C" __global__ void __launch_bounds__(256) ea_topk_score(const ea_cu_topk_args a) {
    extern __shared__ float ea_tk_q[];
    const int hkv = blockIdx.y, b = blockIdx.z, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const ea_cu_seq sq = ((const ea_cu_seq *)a.seq)[b];
    const long long total = sq.key_pos0 + sq.kv_len;
    const int nblk = (int)((total + (1 << a.sm.shift) - 1) >> a.sm.shift);
    if ((long long)blockIdx.x * 8 >= nblk) return;
    const int G = a.Hq / a.Hkv, D = a.D;
    for (int c = tid; c < G * D; c += 256) {
        const int g = c / D, d = c % D;
        ea_tk_q[c] = ea_load((const void *)a.q.ptr, b * a.q.sb + (int64_t)(hkv * G + g) * a.q.sh + d, a.q.dtype);
    }
    __syncthreads();
    if (a.rope.inv_freq) { // the query at its position, as the attention kernels rotate it
        const int half = a.rope.dim >> 1;
        for (int c = tid; c < G * half; c += 256) {
            const int g = c / half, p = c % half;
            float cs, sn;
            ea_rope_cs(a.rope, total - 1, p, cs, sn);
            int d0, d1;
            ea_rope_pair(a.rope, p, d0, d1);
            const float x0 = ea_tk_q[g * D + d0], x1 = ea_tk_q[g * D + d1];
            ea_tk_q[g * D + d0] = x0 * cs - x1 * sn;
            ea_tk_q[g * D + d1] = x0 * sn + x1 * cs;
        }
        __syncthreads();
    }
    const float *summ = (const float *)a.sm.summ + ((int64_t)sq.kv_b * a.sm.heads_max + hkv) * a.sm.nblk * 2 * a.sm.dim_max;
    float *score = (float *)a.score + ((int64_t)b * a.Hkv + hkv) * a.stride;
    for (int blk = blockIdx.x * 8 + warp; blk < nblk; blk += gridDim.x * 8) {
        const float *mn = summ + (int64_t)blk * 2 * a.sm.dim_max, *mx = mn + a.sm.dim_max;
        float best = -INFINITY;
        for (int g = 0; g < G; ++g) {
            float acc = 0.f;
            for (int d = lane; d < D; d += 32) {
                const float q = ea_tk_q[g * D + d];
                acc += fminf(q, 0.f) * __ldg(mn + d) + fmaxf(q, 0.f) * __ldg(mx + d);
            }
#pragma unroll
            for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
            best = acc > best || acc != acc ? acc : best;
        }
        if (lane == 0) score[blk] = (best != best || blk == 0 || blk == nblk - 1) ? INFINITY : best;
    }
}

// Float -> unsigned key in the same order (NaN never reaches here: scores map it to +inf).
__device__ __forceinline__ uint32_t ea_fkey(float f) {
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Exclusive prefix sum over the 256 threads' values; *total gets the sum. Uses sh[8 + 1].
__device__ __forceinline__ int ea_scan256(int v, int *sh, int *total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int x = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) sh[warp] = x;
    __syncthreads();
    if (threadIdx.x == 0) {
        int run = 0;
        for (int w = 0; w < 8; ++w) {
            const int t = sh[w];
            sh[w] = run;
            run += t;
        }
        sh[8] = run;
    }
    __syncthreads();
    const int r = sh[warp] + x - v;
    *total = sh[8];
    __syncthreads();
    return r;
}

// grid (Hkv, B), block 256: a radix select of the keep-th largest score (four passes of 8 bits), then the
// chosen blocks written in increasing order (scores above the threshold, and ties from the lowest block up).
extern "C" __global__ void __launch_bounds__(256) ea_topk_select(const ea_cu_topk_args a) {
    __shared__ int hist[256];
    __shared__ int sh[9];
    __shared__ uint32_t s_pick[2];
    const int hkv = blockIdx.x, b = blockIdx.y, tid = threadIdx.x;
    const ea_cu_seq sq = ((const ea_cu_seq *)a.seq)[b];
    const long long total = sq.key_pos0 + sq.kv_len;
    const int nblk = (int)((total + (1 << a.sm.shift) - 1) >> a.sm.shift);
    const float *score = (const float *)a.score + ((int64_t)b * a.Hkv + hkv) * a.stride;
    int *sel = (int *)a.sel + ((int64_t)b * a.Hkv + hkv) * a.stride;
    const int keep = a.keep < nblk ? a.keep : nblk;
    if (keep >= nblk) { // every block, in order
        for (int i = tid; i < nblk; i += 256) sel[i] = i;
        return;
    }
    uint32_t prefix = 0, mask = 0;
    int k = keep; // rank of the threshold among the scores that match prefix (1: the largest)
    for (int shift = 24; shift >= 0; shift -= 8) {
        hist[tid] = 0;
        __syncthreads();
        for (int i = tid; i < nblk; i += 256) {
            const uint32_t key = ea_fkey(score[i]);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1);
        }
        __syncthreads();
        { // thread t looks at bin 255 - t: the scores in bins above it, by one scan; the bin where the rank
          // k falls is the one whose count above is < k and reaches k with its own
            const int bin = 255 - tid, cnt = hist[bin];
            int all;
            const int above = ea_scan256(cnt, sh, &all);
            if (above < k && above + cnt >= k) {
                s_pick[0] = (uint32_t)bin;
                s_pick[1] = (uint32_t)(k - above);
            }
        }
        __syncthreads();
        prefix |= s_pick[0] << shift;
        mask |= 255u << shift;
        k = (int)s_pick[1];
        __syncthreads();
    }
    // prefix: the threshold's key; k: how many scores equal to it are taken (the lowest blocks first)
    int ties_before = 0, out = 0;
    for (int base = 0; base < nblk; base += 256) {
        const int i = base + tid;
        const uint32_t key = i < nblk ? ea_fkey(score[i]) : 0u;
        const int tie = i < nblk && key == prefix, above = i < nblk && key > prefix;
        int ntie, nsel;
        const int tie_rank = ties_before + ea_scan256(tie, sh, &ntie);
        const int take = above || (tie && tie_rank < k);
        const int pos = out + ea_scan256(take, sh, &nsel);
        if (take) sel[pos] = i;
        ties_before += ntie;
        out += nsel;
    }
}
