// Split-KV decode (flash-decoding) on tensor cores (sm_80+), FP16/BF16 cache, Q of any dtype.
//
// CTA = (row block of 16 packed rows, split) x kv head x batch. The packed rows are all query heads of the
// GQA group times the Nq query rows (hs = Nq), so one CTA reads each K/V byte of its key range once for
// the whole group. The split's keys are cut into chunks of KPW keys handed round-robin to the NW warps;
// each warp streams its chunks through its own WST-deep cp.async ring (no CTA barrier in the loop) and
// keeps its own (m, l, O); the warps merge through shared memory at the end. With num_splits > 1 the
// CTA writes O/l and the log-sum-exp of its part to the workspace; the last CTA of each row block to
// finish merges the parts (ea_decode_fused_merge; ea_attn_combine, a second launch, when a.ws_cnt is 0).
#include "tile_common.cuh"
#include "tile_config.cuh"

template <int D_, int NW_, int KPW_, int WST_>
struct ea_decode_cfg {
    static constexpr int D = D_, NW = NW_, KPW = KPW_, WST = WST_;
    static constexpr int NT = 32 * NW, LD = D + 8, BM = 16;
    static constexpr int STAGE_BYTES = WST * 2 * KPW * LD * 2; // per warp
    static constexpr int MERGE_BYTES = NW * (16 * (D + 4) + 32) * 4;
    static constexpr int SMEM = BM * LD * 2 + (NW * STAGE_BYTES > MERGE_BYTES ? NW * STAGE_BYTES : MERGE_BYTES);
};

// Fused split merge (num_splits > 1 and a.ws_cnt set): every CTA of a (b, kv head, row block) writes its
// partial (O normalised by its l, natural-log lse) to the workspace, fences, and counts itself in on the
// row block's uint32 counter with atomicInc(cnt, S - 1), which wraps to 0 on the last arrival: the counter
// is 0 again after every call (the host zeroes the counter area once at create). The CTA that arrives last
// reads every partial of its rows (L2 loads, __ldcg) and merges them by log-sum-exp into out/lse with the
// numerics of ea_attn_combine (fully masked rows: zeros, lse = -inf). sm: the CTA's free merge area (at
// least 16 * EA_COMBINE_MAX_SPLITS + 4 * NT floats, 16-byte aligned).
template <int D, int NT>
__device__ __forceinline__ void ea_decode_fused_merge(const ea_cu_attn_args &a, const ea_rowmap &rm, float *sm,
                                                      int b, int hkv, int nrb, int rb, int rows) {
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int S = a.num_splits;
    __threadfence(); // this thread's partial writes are visible device-wide before the CTA counts in
    __syncthreads(); // also: every thread is done with the merge area
    unsigned old = 0;
    if (tid == 0) old = atomicInc((unsigned *)a.ws_cnt + ((int64_t)b * a.Hkv + hkv) * nrb + rb, (unsigned)(S - 1));
    if (!__syncthreads_or(tid == 0 && old == (unsigned)(S - 1))) return;
    __threadfence();

    // valid rows of the block (the same in every warp)
    int hq_l, i_l;
    const int qlen = ea_q_len(a, b); // rows past it (ragged decode): merged nowhere, not written
    const unsigned vmask = __ballot_sync(0xffffffffu, lane < rows && ea_row_of(a, rm, hkv, lane, hq_l, i_l) && i_l < qlen);
    const int nv = __popc(vmask);
    float *sw = sm;                                          // [16][S] merge weights
    float4 *spart = (float4 *)(sm + 16 * EA_COMBINE_MAX_SPLITS); // [NT] partial sums of split groups
    constexpr int NWARP = NT / 32;
    for (int v = warp; v < nv; v += NWARP) {
        unsigned m = vmask;
        for (int k = 0; k < v; ++k) m &= m - 1;
        int hq, i;
        ea_row_of(a, rm, hkv, __ffs(m) - 1, hq, i);
        const int64_t row = ((int64_t)b * a.Hq + hq) * a.Nq + i;
        const float2 *ls = (const float2 *)a.ws_lse + row * S; // (m, l) per split
        float x[EA_COMBINE_MAX_SPLITS / 32], xl[EA_COMBINE_MAX_SPLITS / 32];
        float mx = -INFINITY;
#pragma unroll
        for (int u = 0; u < EA_COMBINE_MAX_SPLITS / 32; ++u) {
            const int s = lane + 32 * u;
            const float2 ml = s < S ? __ldcg(ls + s) : make_float2(-INFINITY, 0.f);
            x[u] = ml.y > 0.f ? ml.x : -INFINITY;
            xl[u] = ml.y;
            mx = fmaxf(mx, x[u]);
        }
#pragma unroll
        for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        const float mu = mx == -INFINITY ? 0.f : mx;
        float tot = 0.f;
#pragma unroll
        for (int u = 0; u < EA_COMBINE_MAX_SPLITS / 32; ++u) {
            x[u] = lane + 32 * u < S && xl[u] > 0.f ? xl[u] * __expf(x[u] - mu) : 0.f;
            tot += x[u];
        }
#pragma unroll
        for (int o = 16; o; o >>= 1) tot += __shfl_xor_sync(0xffffffffu, tot, o);
        const float inv = tot > 0.f ? 1.f / tot : 0.f;
#pragma unroll
        for (int u = 0; u < EA_COMBINE_MAX_SPLITS / 32; ++u)
            if (lane + 32 * u < S) sw[v * S + lane + 32 * u] = x[u] * inv;
        if (a.lse.ptr && lane == 0)
            ((float *)a.lse.ptr)[b * a.lse.sb + hq * a.lse.sh + (int64_t)i * a.lse.sn] =
                tot > 0.f ? mu + __logf(tot) : -INFINITY;
    }
    __syncthreads();

    // O: items (valid row, float4 column); with few items the splits are cut into G groups of threads
    constexpr int NC = D / 4;
    const int items = nv * NC;
    if (items == 0) return;
    int G = items >= NT ? 1 : NT / items;
    if (G > S) G = S;
    const int it0 = G > 1 ? tid % items : tid;
    const int sg = G > 1 ? tid / items : 0;
    for (int it = it0; it < items && sg < G; it += (G > 1 ? items : NT)) {
        const int v = it / NC, c = it % NC;
        unsigned m = vmask;
        for (int k = 0; k < v; ++k) m &= m - 1;
        int hq, i;
        ea_row_of(a, rm, hkv, __ffs(m) - 1, hq, i);
        const int64_t row = ((int64_t)b * a.Hq + hq) * a.Nq + i;
        const float *wo = (const float *)a.ws_o + row * S * D + c * 4;
        const float *w = sw + v * S;
        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
        int s = sg;
        for (; s + 7 * G < S; s += 8 * G) {
            float4 x[8];
#pragma unroll
            for (int u = 0; u < 8; ++u) x[u] = __ldcg((const float4 *)(wo + (int64_t)(s + u * G) * D));
#pragma unroll
            for (int u = 0; u < 8; ++u) {
                const float wt = w[s + u * G];
                acc.x += wt * x[u].x; acc.y += wt * x[u].y; acc.z += wt * x[u].z; acc.w += wt * x[u].w;
            }
        }
        for (; s < S; s += G) {
            const float4 x = __ldcg((const float4 *)(wo + (int64_t)s * D));
            const float wt = w[s];
            acc.x += wt * x.x; acc.y += wt * x.y; acc.z += wt * x.z; acc.w += wt * x.w;
        }
        if (G > 1) {
            spart[sg * items + it] = acc;
        } else {
            const int64_t ob = b * a.out.sb + hq * a.out.sh + (int64_t)i * a.out.sn + c * 4;
            ea_store2((void *)a.out.ptr, ob, a.out.dtype, acc.x, acc.y);
            ea_store2((void *)a.out.ptr, ob + 2, a.out.dtype, acc.z, acc.w);
        }
    }
    if (G == 1) return;
    __syncthreads();
    if (tid >= items) return;
    float4 acc = spart[tid];
    for (int g2 = 1; g2 < G; ++g2) {
        const float4 x = spart[g2 * items + tid];
        acc.x += x.x; acc.y += x.y; acc.z += x.z; acc.w += x.w;
    }
    const int v = tid / NC, c = tid % NC;
    unsigned m = vmask;
    for (int k = 0; k < v; ++k) m &= m - 1;
    int hq, i;
    ea_row_of(a, rm, hkv, __ffs(m) - 1, hq, i);
    const int64_t ob = b * a.out.sb + hq * a.out.sh + (int64_t)i * a.out.sn + c * 4;
    ea_store2((void *)a.out.ptr, ob, a.out.dtype, acc.x, acc.y);
    ea_store2((void *)a.out.ptr, ob + 2, a.out.dtype, acc.z, acc.w);
}

// Candidate fused merge (dev variant only, cuda/dev/variants.cu; not yet measured): the CTA counts in with
// one fence by thread 0 after the barrier (cooperative-groups grid-sync pattern), and each thread of the
// last CTA issues the lse and O loads of up to 32 splits at once, merging by an online max over chunks:
// one round of L2 loads for S <= 32 * G instead of lse round + barrier + ceil(S / 8 / G) rounds.
template <int D, int NT>
__device__ __forceinline__ void ea_decode_fused_merge2(const ea_cu_attn_args &a, const ea_rowmap &rm, float *sm,
                                                       int b, int hkv, int nrb, int rb, int rows) {
    const int tid = threadIdx.x, lane = tid & 31;
    const int S = a.num_splits;
    __syncthreads(); // every thread's partial writes are done (and the merge area is free)
    unsigned old = 0;
    if (tid == 0) {
        __threadfence(); // cumulative over the CTA's writes ordered before it by the barrier
        old = atomicInc((unsigned *)a.ws_cnt + ((int64_t)b * a.Hkv + hkv) * nrb + rb, (unsigned)(S - 1));
        __threadfence();
    }
    if (!__syncthreads_or(tid == 0 && old == (unsigned)(S - 1))) return;

    int hq_l, i_l;
    const int qlen = ea_q_len(a, b); // rows past it: merged nowhere, not written
    const unsigned vmask = __ballot_sync(0xffffffffu, lane < rows && ea_row_of(a, rm, hkv, lane, hq_l, i_l) && i_l < qlen);
    const int nv = __popc(vmask);
    constexpr int NC = D / 4, CH = 32;
    const int items = nv * NC;
    if (items == 0) return;
    int G = items >= NT ? 1 : NT / items;
    if (G > S) G = S;
    const int it0 = G > 1 ? tid % items : tid;
    const int sg = G > 1 ? tid / items : 0;
    float4 *spart = (float4 *)sm;     // [NT] O sums of the split groups
    float *sml = sm + 4 * NT;         // [NT][2] (m, l) of the split groups
    for (int it = it0; it < items && sg < G; it += (G > 1 ? items : NT)) {
        const int v = it / NC, c = it % NC;
        unsigned m = vmask;
        for (int k = 0; k < v; ++k) m &= m - 1;
        int hq, i;
        ea_row_of(a, rm, hkv, __ffs(m) - 1, hq, i);
        const int64_t row = ((int64_t)b * a.Hq + hq) * a.Nq + i;
        const float2 *ls = (const float2 *)a.ws_lse + row * S; // (m, l) per split
        const float *wo = (const float *)a.ws_o + row * S * D + c * 4;
        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
        float mrun = -INFINITY, l = 0.f;
        for (int s0 = sg; s0 < S; s0 += CH * G) {
            float x[CH], xl[CH];
            float4 o[CH];
#pragma unroll
            for (int u = 0; u < CH; ++u) {
                const int s = s0 + u * G;
                x[u] = -INFINITY;
                xl[u] = 0.f;
                o[u] = make_float4(0.f, 0.f, 0.f, 0.f);
                if (s < S) {
                    const float2 ml = __ldcg(ls + s);
                    x[u] = ml.y > 0.f ? ml.x : -INFINITY;
                    xl[u] = ml.y;
                    o[u] = __ldcg((const float4 *)(wo + (int64_t)s * D));
                }
            }
            float cm = mrun;
#pragma unroll
            for (int u = 0; u < CH; ++u) cm = fmaxf(cm, x[u]);
            const float mu = cm == -INFINITY ? 0.f : cm;
            const float sc = __expf(mrun - mu);
            acc.x *= sc; acc.y *= sc; acc.z *= sc; acc.w *= sc;
            l *= sc;
#pragma unroll
            for (int u = 0; u < CH; ++u) {
                const float e = xl[u] > 0.f ? xl[u] * __expf(x[u] - mu) : 0.f;
                l += e;
                acc.x += e * o[u].x; acc.y += e * o[u].y; acc.z += e * o[u].z; acc.w += e * o[u].w;
            }
            mrun = cm;
        }
        if (G > 1) {
            spart[sg * items + it] = acc;
            sml[2 * (sg * items + it)] = mrun;
            sml[2 * (sg * items + it) + 1] = l;
            continue;
        }
        const float inv = l > 0.f ? 1.f / l : 0.f;
        const int64_t ob = b * a.out.sb + hq * a.out.sh + (int64_t)i * a.out.sn + c * 4;
        ea_store2((void *)a.out.ptr, ob, a.out.dtype, acc.x * inv, acc.y * inv);
        ea_store2((void *)a.out.ptr, ob + 2, a.out.dtype, acc.z * inv, acc.w * inv);
        if (a.lse.ptr && c == 0)
            ((float *)a.lse.ptr)[b * a.lse.sb + hq * a.lse.sh + (int64_t)i * a.lse.sn] =
                l > 0.f ? mrun + __logf(l) : -INFINITY;
    }
    if (G == 1) return;
    __syncthreads();
    if (tid >= items) return;
    float mx = -INFINITY;
    for (int g2 = 0; g2 < G; ++g2) mx = fmaxf(mx, sml[2 * (g2 * items + tid)]);
    const float mu = mx == -INFINITY ? 0.f : mx;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    float l = 0.f;
    for (int g2 = 0; g2 < G; ++g2) {
        const float w = __expf(sml[2 * (g2 * items + tid)] - mu);
        const float4 x = spart[g2 * items + tid];
        l += w * sml[2 * (g2 * items + tid) + 1];
        acc.x += w * x.x; acc.y += w * x.y; acc.z += w * x.z; acc.w += w * x.w;
    }
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int v = tid / NC, c = tid % NC;
    unsigned m = vmask;
    for (int k = 0; k < v; ++k) m &= m - 1;
    int hq, i;
    ea_row_of(a, rm, hkv, __ffs(m) - 1, hq, i);
    const int64_t ob = b * a.out.sb + hq * a.out.sh + (int64_t)i * a.out.sn + c * 4;
    ea_store2((void *)a.out.ptr, ob, a.out.dtype, acc.x * inv, acc.y * inv);
    ea_store2((void *)a.out.ptr, ob + 2, a.out.dtype, acc.z * inv, acc.w * inv);
    if (a.lse.ptr && c == 0)
        ((float *)a.lse.ptr)[b * a.lse.sb + hq * a.lse.sh + (int64_t)i * a.lse.sn] = l > 0.f ? mu + __logf(l) : -INFINITY;
}

template <typename T, typename C, int MERGE = 1, bool PAGED = false>
__device__ __forceinline__ void ea_decode_body(const ea_cu_attn_args &a, uint16_t *smem) {
#if EA_SM80
    constexpr int D = C::D, NW = C::NW, KPW = C::KPW, WST = C::WST, NT = C::NT, LD = C::LD;
    constexpr int KS = D / 16, DT = D / 8;
    static_assert(KPW == 16, "one k16 step of P per chunk");
    static_assert(C::SMEM - 16 * LD * 2 >= (16 * EA_COMBINE_MAX_SPLITS + 4 * NT) * 4, "fused merge area");
    uint16_t *sQ = smem;
    uint16_t *sW = sQ + 16 * LD; // per-warp rings, later the merge area

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int hkv = blockIdx.y, b = blockIdx.z;
    // An F32 Q (q2) keeps its precision on the tensor cores: each query row r of a block of 8 sits in
    // tile row r as Q's 16-bit rounding (hi) and in tile row r + 8 as the rounding of what that left (lo),
    // so one MMA scores both, and the two halves are added before the softmax (22 bits of Q for F16, 16
    // for BF16). Decode reads K/V, not Q: blocks of 8 rows cost no more than blocks of 16 while group x Nq
    // fits, and the host counts them the same way (launch.c).
    const bool q2 = a.q.dtype == EA_CU_F32;
    const int RB = q2 ? 8 : 16; // query rows per block
    const int hs = a.Nq >= RB ? (a.Nq + RB - 1) / RB * RB : a.Nq;
    const int nrb = (a.group * hs + RB - 1) / RB;
    const int rb = blockIdx.x % nrb, split = blockIdx.x / nrb;

    const ea_seqinfo sq = ea_get_seq(a, b);
    const ea_rowmap rm = ea_make_rowmap(a, rb * RB, RB); // Nq < RB or hs rounding: see ea_make_rowmap
    const ea_score_xf xf = ea_make_xf(a);

    int hq_r[2], i_r[2];
    bool ok_r[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) ok_r[h] = !(q2 && h) && ea_row_of(a, rm, hkv, g + 8 * h, hq_r[h], i_r[h]);

    int lo = 0, hi = 0;
    if (rm.i1 >= rm.i0) ea_key_range(a, rm.i0, rm.i1, sq.off, sq.kv_len, lo, hi);
    const int s0 = split * a.split_len;
    const int s1 = s0 + a.split_len;
    const int klo = lo > s0 ? lo : s0, khi = hi < s1 ? hi : s1;
    const int c_lo = khi > klo ? (klo - s0) / KPW : 0;
    const int c_hi = khi > klo ? (khi - s0 + KPW - 1) / KPW : 0;
    // chunks of this warp: c_lo + warp + NW*k
    const int nc = c_hi - c_lo > warp ? (c_hi - c_lo - warp + NW - 1) / NW : 0;

    const bool q_async = ((a.q.ptr | (uint64_t)(a.q.sn * 2) | (uint64_t)(a.q.sh * 2) | (uint64_t)(a.q.sb * 2)) & 15) == 0;
    float qback = 1.f; // q2: what the scores are multiplied by (Q stored scaled down, ea_load_q_split)
    if (q2)
        qback = ea_load_q_split<T, D, LD, NT>(a, rm, sq.qpos0, b, hkv, sQ);
    else
        ea_load_q_tile<T, D, LD, 16, NT>(a, rm, sq.qpos0, b, hkv, sQ, q_async);
    ea_cp_commit();

    uint16_t *wK = sW + warp * (C::STAGE_BYTES / 2);
    uint16_t *wV = wK + WST * KPW * LD;
    const int jend = khi; // keys at or past the split's end (or the visible range) are zero-filled
    ea_kv_loader<D, LD, KPW, 32, PAGED> ld;
    ld.init(a, b, hkv, lane);
#pragma unroll
    for (int s = 0; s < WST - 1; ++s) {
        if (s < nc) ld.load(a, sq, s0 + (c_lo + warp + NW * s) * KPW, jend, wK + s * KPW * LD, wV + s * KPW * LD);
        ea_cp_commit();
    }

    float o[DT][4];
#pragma unroll
    for (int n = 0; n < DT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
    uint32_t qf[KS][4];

    const int q_ld_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;
    const int k_ld_off = ((lane & 7) + (lane >> 4) * 8) * LD + ((lane >> 3) & 1) * 8;
    const int v_ld_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;

    const float *brow[2] = {nullptr, nullptr};
    if (a.bias.ptr) {
#pragma unroll
        for (int h = 0; h < 2; ++h)
            if (ok_r[h]) brow[h] = (const float *)a.bias.ptr + b * a.bias.sb + hq_r[h] * a.bias.sh + (int64_t)i_r[h] * a.bias.sn;
    }

    // Q: all warps wait for the Q group (the oldest), then read their fragments
    ea_cp_wait<WST - 1>();
    __syncthreads();
#pragma unroll
    for (int k = 0; k < KS; ++k) ea_ldsm_x4(qf[k], ea_smem_addr(sQ + q_ld_off + k * 16));

    for (int it = 0; it < nc; ++it) {
        ea_cp_wait<WST - 2>();
        __syncwarp();
        {
            const int pf = it + WST - 1;
            if (pf < nc) {
                const int st = pf % WST;
                ld.load(a, sq, s0 + (c_lo + warp + NW * pf) * KPW, jend, wK + st * KPW * LD, wV + st * KPW * LD);
            }
            ea_cp_commit();
        }
        const int st = it % WST;
        const uint16_t *cK = wK + st * KPW * LD;
        const uint16_t *cV = wV + st * KPW * LD;
        const int j0 = s0 + (c_lo + warp + NW * it) * KPW;

        float s[2][4];
#pragma unroll
        for (int n = 0; n < 2; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
        for (int k = 0; k < KS; ++k) {
            uint32_t kb[4];
            ea_ldsm_x4(kb, ea_smem_addr(cK + k_ld_off + k * 16));
            ea_mma_16816<T>(s[0], qf[k], kb[0], kb[1]);
            ea_mma_16816<T>(s[1], qf[k], kb[2], kb[3]);
        }
        if (q2) { // row g's score is its hi row's plus its lo row's; row g + 8 holds no query
#pragma unroll
            for (int n = 0; n < 2; ++n) {
                s[n][0] = (s[n][0] + s[n][2]) * qback;
                s[n][1] = (s[n][1] + s[n][3]) * qback;
                s[n][2] = s[n][3] = -INFINITY;
            }
        }
        const bool full = j0 + KPW <= jend && ea_tile_full(a, rm.i0, rm.i1, j0, j0 + KPW, sq.off);
        if (xf.generic) {
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int h = e >> 1, j = j0 + n * 8 + 2 * t4 + (e & 1);
                    const float *br = (j < jend) ? brow[h] : nullptr;
                    s[n][e] = ea_xf_generic(a, xf, s[n][e], br, j);
                }
        }
        if (!full) {
            int jlo[2], jhi[2];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                ea_row_bounds(a, ok_r[h] ? i_r[h] : -1, sq.off, sq.kv_len, jlo[h], jhi[h]);
                if (jhi[h] > jend - 1) jhi[h] = jend - 1;
            }
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int h = e >> 1, j = j0 + n * 8 + 2 * t4 + (e & 1);
                    if (j < jlo[h] || j > jhi[h]) s[n][e] = -INFINITY;
                }
        }
        // softmax as in the prefill tile: FFMA-folded scale, running max raised only past the slack
        const float sl = xf.generic ? 1.f : xf.scale_log2;
        float alpha[2];
        bool any_rescale = false;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float mx = fmaxf(fmaxf(s[0][2 * h], s[0][2 * h + 1]), fmaxf(s[1][2 * h], s[1][2 * h + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            mx *= sl;
            alpha[h] = 1.f;
            if (mx > mrow[h] + EA_RESCALE_SLACK) {
                alpha[h] = ea_exp2(mrow[h] - mx);
                mrow[h] = mx;
                any_rescale = true;
            }
            const float mu = mrow[h] == -INFINITY ? 0.f : mrow[h];
            float sum = 0.f;
#pragma unroll
            for (int n = 0; n < 2; ++n) {
                s[n][2 * h] = ea_exp2(fmaf(s[n][2 * h], sl, -mu));
                s[n][2 * h + 1] = ea_exp2(fmaf(s[n][2 * h + 1], sl, -mu));
                sum += s[n][2 * h] + s[n][2 * h + 1];
            }
            lrow[h] = lrow[h] * alpha[h] + sum;
        }
        if (__any_sync(0xffffffffu, any_rescale)) {
#pragma unroll
            for (int n = 0; n < DT; ++n) {
                o[n][0] *= alpha[0];
                o[n][1] *= alpha[0];
                o[n][2] *= alpha[1];
                o[n][3] *= alpha[1];
            }
        }
        uint32_t pa[4];
        pa[0] = T::pack(s[0][0], s[0][1]);
        pa[1] = T::pack(s[0][2], s[0][3]);
        pa[2] = T::pack(s[1][0], s[1][1]);
        pa[3] = T::pack(s[1][2], s[1][3]);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
            uint32_t vb[4];
            ea_ldsm_x4_t(vb, ea_smem_addr(cV + v_ld_off + dp * 16));
            ea_mma_16816<T>(o[2 * dp], pa, vb[0], vb[1]);
            ea_mma_16816<T>(o[2 * dp + 1], pa, vb[2], vb[3]);
        }
    }
    ea_cp_wait<0>();
    __syncthreads(); // rings are free: reuse as the merge area

    // merge the NW warps: per warp O[16][D+4], m[16], l[16]
    float *mO = (float *)sW;
    float *mM = mO + NW * 16 * (D + 4);
    float *mL = mM + NW * 16;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float l = lrow[h];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int r = g + 8 * h;
        float *dst = mO + (warp * 16 + r) * (D + 4);
#pragma unroll
        for (int n = 0; n < DT; ++n) *(float2 *)(dst + n * 8 + 2 * t4) = make_float2(o[n][2 * h], o[n][2 * h + 1]);
        if (t4 == 0) {
            mM[warp * 16 + r] = mrow[h];
            mL[warp * 16 + r] = l;
        }
    }
    __syncthreads();
    // each thread: one row r, a run of D columns; NT threads over 16 rows
    constexpr int TPR = NT / 16; // threads per row
    const int r = tid / TPR, sub = tid % TPR;
    int hq, i;
    const bool ok = r < RB && ea_row_of(a, rm, hkv, r, hq, i);
    if (ok) {
        float mx = -INFINITY;
#pragma unroll
        for (int w = 0; w < NW; ++w) mx = fmaxf(mx, mM[w * 16 + r]);
        const float mu = mx == -INFINITY ? 0.f : mx;
        float wgt[NW], l = 0.f;
#pragma unroll
        for (int w = 0; w < NW; ++w) {
            wgt[w] = ea_exp2(mM[w * 16 + r] - mu);
            l += wgt[w] * mL[w * 16 + r];
        }
        const float inv = l > 0.f ? 1.f / l : 0.f;
        const float lse2 = l > 0.f ? mu + __log2f(l) : -INFINITY; // log2 domain
        if (a.num_splits <= 1) {
            if (i >= ea_q_len(a, b)) return; // past this batch row's queries: not written (nothing follows)
            const int64_t ob = b * a.out.sb + hq * a.out.sh + (int64_t)i * a.out.sn;
            for (int d = sub * 2; d < D; d += TPR * 2) {
                float v0 = 0.f, v1 = 0.f;
#pragma unroll
                for (int w = 0; w < NW; ++w) {
                    v0 += wgt[w] * mO[(w * 16 + r) * (D + 4) + d];
                    v1 += wgt[w] * mO[(w * 16 + r) * (D + 4) + d + 1];
                }
                ea_store2((void *)a.out.ptr, ob + d, a.out.dtype, v0 * inv, v1 * inv);
            }
            if (a.lse.ptr && sub == 0)
                ((float *)a.lse.ptr)[b * a.lse.sb + hq * a.lse.sh + (int64_t)i * a.lse.sn] = lse2 * EA_LN2;
        } else {
            const int64_t row = ((int64_t)b * a.Hq + hq) * a.Nq + i;
            float *wo = (float *)a.ws_o + (row * a.num_splits + split) * D;
            for (int d = sub * 4; d < D; d += TPR * 4) {
                float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
                for (int w = 0; w < NW; ++w) {
                    const float4 x = *(const float4 *)(mO + (w * 16 + r) * (D + 4) + d);
                    v.x += wgt[w] * x.x;
                    v.y += wgt[w] * x.y;
                    v.z += wgt[w] * x.z;
                    v.w += wgt[w] * x.w;
                }
                v.x *= inv; v.y *= inv; v.z *= inv; v.w *= inv;
                *(float4 *)(wo + d) = v;
            }
            if (sub == 0) { // (max in natural-log units, sum) apart: m + log(l) would lose l under a -1e30 bias
                ((float *)a.ws_lse)[2 * (row * a.num_splits + split)] = l > 0.f ? mu * EA_LN2 : -INFINITY;
                ((float *)a.ws_lse)[2 * (row * a.num_splits + split) + 1] = l;
            }
        }
    }
    if (a.num_splits <= 1 || !a.ws_cnt) return; // unsplit, or ea_attn_combine merges (second launch)
    if (MERGE == 2)
        ea_decode_fused_merge2<D, NT>(a, rm, (float *)sW, b, hkv, nrb, rb, RB);
    else
        ea_decode_fused_merge<D, NT>(a, rm, (float *)sW, b, hkv, nrb, rb, RB);
#endif
}

#define EA_DECODE_KERNEL(NAME, T, CFG)                                                                           \
    extern "C" __global__ void __launch_bounds__(CFG::NT) NAME(const ea_cu_attn_args a) {                        \
        extern __shared__ __align__(16) uint16_t ea_smem_dc[];                                                    \
        ea_decode_body<T, CFG>(a, ea_smem_dc);                                                                   \
    }
// Paged KV cache (a.pages.table set): the same kernel with the page-table tile loader.
#define EA_DECODE_KERNEL_PAGED(NAME, T, CFG)                                                                     \
    extern "C" __global__ void __launch_bounds__(CFG::NT) NAME(const ea_cu_attn_args a) {                        \
        extern __shared__ __align__(16) uint16_t ea_smem_dc[];                                                    \
        ea_decode_body<T, CFG, 1, true>(a, ea_smem_dc);                                                          \
    }

typedef ea_decode_cfg<64, EA_DC_64_NW, EA_DC_KPW, EA_DC_64_WST> ea_dc_d64;
typedef ea_decode_cfg<80, EA_DC_80_NW, EA_DC_KPW, EA_DC_80_WST> ea_dc_d80;
typedef ea_decode_cfg<96, EA_DC_96_NW, EA_DC_KPW, EA_DC_96_WST> ea_dc_d96;
typedef ea_decode_cfg<128, EA_DC_128_NW, EA_DC_KPW, EA_DC_128_WST> ea_dc_d128;
typedef ea_decode_cfg<256, EA_DC_256_NW, EA_DC_KPW, EA_DC_256_WST> ea_dc_d256;
static_assert(ea_dc_d64::SMEM == EA_DC_SMEM(64, EA_DC_64_NW, EA_DC_64_WST), "smem");
static_assert(ea_dc_d80::SMEM == EA_DC_SMEM(80, EA_DC_80_NW, EA_DC_80_WST), "smem");
static_assert(ea_dc_d96::SMEM == EA_DC_SMEM(96, EA_DC_96_NW, EA_DC_96_WST), "smem");
static_assert(ea_dc_d128::SMEM == EA_DC_SMEM(128, EA_DC_128_NW, EA_DC_128_WST), "smem");
static_assert(ea_dc_d256::SMEM == EA_DC_SMEM(256, EA_DC_256_NW, EA_DC_256_WST), "smem");

EA_DECODE_KERNEL(ea_decode_mma_f16_d64, ea_f16_t, ea_dc_d64)
EA_DECODE_KERNEL(ea_decode_mma_f16_d80, ea_f16_t, ea_dc_d80)
EA_DECODE_KERNEL(ea_decode_mma_f16_d96, ea_f16_t, ea_dc_d96)
EA_DECODE_KERNEL(ea_decode_mma_f16_d128, ea_f16_t, ea_dc_d128)
EA_DECODE_KERNEL(ea_decode_mma_f16_d256, ea_f16_t, ea_dc_d256)
EA_DECODE_KERNEL(ea_decode_mma_bf16_d64, ea_bf16_t, ea_dc_d64)
EA_DECODE_KERNEL(ea_decode_mma_bf16_d80, ea_bf16_t, ea_dc_d80)
EA_DECODE_KERNEL(ea_decode_mma_bf16_d96, ea_bf16_t, ea_dc_d96)
EA_DECODE_KERNEL(ea_decode_mma_bf16_d128, ea_bf16_t, ea_dc_d128)
EA_DECODE_KERNEL(ea_decode_mma_bf16_d256, ea_bf16_t, ea_dc_d256)

// D128 for parts with at most 99 KB of shared memory per block (sm_86, sm_89): two stages per warp.
typedef ea_decode_cfg<128, EA_DC_128S_NW, EA_DC_KPW, EA_DC_128S_WST> ea_dc_d128s;
static_assert(ea_dc_d128s::SMEM == EA_DC_SMEM(128, EA_DC_128S_NW, EA_DC_128S_WST), "smem");
EA_DECODE_KERNEL(ea_decode_mma_f16_d128_s, ea_f16_t, ea_dc_d128s)
EA_DECODE_KERNEL(ea_decode_mma_bf16_d128_s, ea_bf16_t, ea_dc_d128s)

EA_DECODE_KERNEL_PAGED(ea_decode_mma_f16_d64_paged, ea_f16_t, ea_dc_d64)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_f16_d80_paged, ea_f16_t, ea_dc_d80)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_f16_d96_paged, ea_f16_t, ea_dc_d96)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_f16_d128_paged, ea_f16_t, ea_dc_d128)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_f16_d256_paged, ea_f16_t, ea_dc_d256)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_bf16_d64_paged, ea_bf16_t, ea_dc_d64)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_bf16_d80_paged, ea_bf16_t, ea_dc_d80)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_bf16_d96_paged, ea_bf16_t, ea_dc_d96)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_bf16_d128_paged, ea_bf16_t, ea_dc_d128)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_bf16_d256_paged, ea_bf16_t, ea_dc_d256)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_f16_d128_s_paged, ea_f16_t, ea_dc_d128s)
EA_DECODE_KERNEL_PAGED(ea_decode_mma_bf16_d128_s_paged, ea_bf16_t, ea_dc_d128s)

// Merges num_splits partials per row by log-sum-exp. One CTA (128 threads) per output row (b, hq, i):
// the split weights go to shared memory once, then thread (split group, float4 column) sums its splits
// with independent loads in flight, and the groups are added through shared memory.
extern "C" __global__ void __launch_bounds__(128) ea_attn_combine(const ea_cu_attn_args a) {
    __shared__ float sw[EA_COMBINE_MAX_SPLITS];
    __shared__ float sred[8];
    __shared__ __align__(16) float spart[128 * 4];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t row = blockIdx.x;
    const int S = a.num_splits, D = a.D;
    const int i = (int)(row % a.Nq);
    const int hq = (int)((row / a.Nq) % a.Hq);
    const int b = (int)(row / ((int64_t)a.Nq * a.Hq));
    if (a.seq && i >= ((const ea_cu_seq *)a.seq)[b].q_len) return; // past this row's queries: never written
    const float2 *ls = (const float2 *)a.ws_lse + row * S; // (m, l) per split
    const float2 ml = tid < S ? ls[tid] : make_float2(-INFINITY, 0.f);
    const float x = ml.y > 0.f ? ml.x : -INFINITY;
    float mx = x;
#pragma unroll
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (lane == 0) sred[warp] = mx;
    __syncthreads();
    mx = fmaxf(fmaxf(sred[0], sred[1]), fmaxf(sred[2], sred[3]));
    const float mu = mx == -INFINITY ? 0.f : mx;
    const float e = tid < S && ml.y > 0.f ? ml.y * __expf(x - mu) : 0.f;
    float tot = e;
#pragma unroll
    for (int o = 16; o; o >>= 1) tot += __shfl_xor_sync(0xffffffffu, tot, o);
    if (lane == 0) sred[4 + warp] = tot;
    __syncthreads();
    tot = sred[4] + sred[5] + sred[6] + sred[7];
    const float inv = tot > 0.f ? 1.f / tot : 0.f;
    if (tid < S) sw[tid] = e * inv;
    __syncthreads();
    const int NC = D / 4, G = 128 / NC;
    const int c = tid % NC, sg = tid / NC;
    const float *wo = (const float *)a.ws_o + row * S * D + c * 4;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    if (sg < G) {
        int s = sg;
        for (; s + 3 * G < S; s += 4 * G) {
            float4 v[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) v[u] = *(const float4 *)(wo + (int64_t)(s + u * G) * D);
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const float w = sw[s + u * G];
                acc.x += w * v[u].x; acc.y += w * v[u].y; acc.z += w * v[u].z; acc.w += w * v[u].w;
            }
        }
        for (; s < S; s += G) {
            const float4 v = *(const float4 *)(wo + (int64_t)s * D);
            const float w = sw[s];
            acc.x += w * v.x; acc.y += w * v.y; acc.z += w * v.z; acc.w += w * v.w;
        }
        *(float4 *)(spart + (sg * NC + c) * 4) = acc;
    }
    __syncthreads();
    if (tid >= NC) return;
    acc = *(const float4 *)(spart + c * 4);
    for (int g2 = 1; g2 < G; ++g2) {
        const float4 v = *(const float4 *)(spart + (g2 * NC + c) * 4);
        acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
    }
    const int64_t ob = b * a.out.sb + hq * a.out.sh + (int64_t)i * a.out.sn + c * 4;
    ea_store2((void *)a.out.ptr, ob, a.out.dtype, acc.x, acc.y);
    ea_store2((void *)a.out.ptr, ob + 2, a.out.dtype, acc.z, acc.w);
    if (a.lse.ptr && tid == 0)
        ((float *)a.lse.ptr)[b * a.lse.sb + hq * a.lse.sh + (int64_t)i * a.lse.sn] =
            tot > 0.f ? mu + __logf(tot) : -INFINITY;
}
