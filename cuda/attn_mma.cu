// Prefill flash attention on tensor cores (sm_80+): FP16/BF16 K/V, Q of any dtype (converted to the
// K/V type on load), FP32 softmax statistics and accumulation.
//
// CTA = NW warps, BM = 16*NW query rows of one (b, kv head) (row map in tile_common.cuh), keys in tiles
// of BN, STAGES-deep cp.async ring for K/V tiles in padded shared memory (row stride D+8 halves: 16-byte
// chunk index of row r shifts by r, so the 8 row addresses of an ldmatrix hit 8 distinct bank groups).
// Each warp owns 16 query rows: Q fragments in registers (QREG) or re-read by ldmatrix (D = 256),
// S = Q.K^T in registers, online softmax in the exp2 domain, P packed to 16 bits in registers as the A
// operand of P.V. Only tiles that some row of the CTA can see are visited; the mask is evaluated only
// on tiles that are not fully visible to every row.
#include "tile_common.cuh"
#include "tile_config.cuh"

template <int D_, int NW_, int BN_, int STAGES_, bool QREG_, int MT_, int MINB_, bool GEN_ = true, int PARTS_ = 1,
          bool LATE_ = false>
struct ea_prefill_cfg {
    static constexpr int D = D_, NW = NW_, BN = BN_, STAGES = STAGES_, MT = MT_, MINB = MINB_;
    static constexpr bool QREG = QREG_;
    static constexpr bool GEN = GEN_; // softcap / bias support compiled in
    static constexpr int PARTS = PARTS_; // softmax + P.V in slices of the key tile (overlap)
    static constexpr bool LATE = LATE_;  // K/V prefetch issued after the Q.K^T MMAs
    static constexpr int BM = 16 * MT * NW, NT = 32 * NW, LD = D + 8;
    static constexpr int SMEM = (BM * LD + 2 * STAGES * BN * LD) * 2;
};

template <typename T, typename C>
__device__ __forceinline__ void ea_prefill_body(const ea_cu_attn_args &a, uint16_t *smem) {
#if EA_SM80
    constexpr int D = C::D, BN = C::BN, BM = C::BM, NT = C::NT, LD = C::LD, ST = C::STAGES, MT = C::MT;
    constexpr int KS = D / 16;  // k16 steps over D
    constexpr int NTL = BN / 8; // n8 tiles of S
    constexpr int DT = D / 8;   // n8 tiles of O
    constexpr int R = 2 * MT;   // rows per thread
    uint16_t *sQ = smem;
    uint16_t *sK = sQ + BM * LD;
    uint16_t *sV = sK + ST * BN * LD;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int hkv = blockIdx.y, b = blockIdx.z;

    // Row block: longest first. Flattened rows per head hs; tiles per head nib.
    const int hs = a.Nq >= BM ? (a.Nq + BM - 1) / BM * BM : a.Nq;
    int r0;
    if (a.Nq >= BM) {
        const int nib = hs / BM;
        const int hl = blockIdx.x % a.group;
        const int ib = nib - 1 - (int)blockIdx.x / a.group;
        r0 = hl * hs + ib * BM;
    } else {
        r0 = blockIdx.x * BM;
    }
    const ea_seqinfo sq = ea_get_seq(a, b);
    const ea_rowmap rm = ea_make_rowmap(a, r0, BM);
    const ea_score_xf xf = ea_make_xf(a);

    // rows of this thread: warp*16*MT + mt*16 + g (+8); index q = 2*mt + h
    // Few registers stay live through the loop: the rows' (head, index) are recomputed on masked tiles and
    // in the epilogue; tiles visible to every row of the CTA are those with jf_lo <= j0 <= jf_hi.
    int lo = 0, hi = 0;
    if (rm.i1 >= rm.i0) ea_key_range(a, rm.i0, rm.i1, sq.off, sq.kv_len, lo, hi);
    const int tb_lo = lo / BN;
    int ntiles = hi > lo ? (hi + BN - 1) / BN - tb_lo : 0;
    // Block-sparse mask (kernels with GEN only; kernel_abi.h ea_cu_bsr): the tiles of the key blocks listed
    // for the (at most two) row blocks of this CTA's rows, in order; `cur` walks them for the tile being
    // computed, `pre` for the tile being loaded. A tile is masked per row unless both row blocks list it.
    constexpr int TPB = 64 / BN; // tiles per key block
    static_assert(TPB >= 1 && TPB * BN == 64, "key tiles must divide the 64-key blocks");
    const bool bsr = C::GEN && a.bm.block_q != 0;
    ea_bsr_iter cur, pre;
    int qb0 = 0, all_bits = 1, kbhi = 0, cur_blk = 0, cur_bits = 0, pre_blk = 0, pre_sub = TPB;
    if (bsr) {
        ntiles = 0;
        if (rm.i1 >= rm.i0 && hi > lo) {
            qb0 = rm.i0 / a.bm.block_q;
            const int qb1 = rm.i1 / a.bm.block_q;
            all_bits = qb1 != qb0 ? 3 : 1;
            kbhi = (hi + 63) >> 6;
            cur.init(a, b, hkv, qb0, qb1, lo >> 6);
            pre = cur;
            ea_bsr_iter cnt = cur;
            int x, y;
            while (cnt.next(kbhi, x, y)) ntiles += TPB;
        }
    }
    auto pre_j0 = [&](int t) -> int { // first key of tile t (called for t = 0, 1, 2, ... in turn)
        if (!bsr) return (tb_lo + t) * BN;
        if (pre_sub == TPB) {
            int bits;
            pre.next(kbhi, pre_blk, bits);
            pre_sub = 0;
        }
        return pre_blk * 64 + (pre_sub++) * BN;
    };
    int jf_lo, jf_hi;
    {
        long long flo = -(1LL << 40), fhi = (long long)sq.kv_len - BN;
        const long long p0 = (long long)rm.i0 + sq.off, p1 = (long long)rm.i1 + sq.off;
        if (a.window_left >= 0) flo = p1 - a.window_left;
        if (a.causal && p0 - BN + 1 < fhi) fhi = p0 - BN + 1;
        if (a.window_right >= 0 && p0 + a.window_right - BN + 1 < fhi) fhi = p0 + a.window_right - BN + 1;
        jf_lo = flo < -(1LL << 30) ? -(1 << 30) : (int)flo;
        jf_hi = fhi < -(1LL << 30) ? -(1 << 30) - 1 : (int)fhi;
    }

    const bool q_async = ((a.q.ptr | (uint64_t)(a.q.sn * 2) | (uint64_t)(a.q.sh * 2) | (uint64_t)(a.q.sb * 2)) & 15) == 0;
    ea_load_q_tile<T, D, LD, BM, NT>(a, rm, sq.qpos0, b, hkv, sQ, q_async);
    ea_kv_loader<D, LD, BN, NT> ld;
    ld.init(a, b, hkv, tid);
#pragma unroll
    for (int s = 0; s < ST - 1; ++s) {
        if (s < ntiles) ld.load(a, sq, pre_j0(s), sq.kv_len, sK + s * BN * LD, sV + s * BN * LD);
        ea_cp_commit();
    }

    float o[MT][DT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < DT; ++n) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.f;
    float mrow[R], lrow[R];
#pragma unroll
    for (int q = 0; q < R; ++q) { mrow[q] = -INFINITY; lrow[q] = 0.f; }
    uint32_t qf[C::QREG ? MT : 1][C::QREG ? KS : 1][4];

    // per-lane ldmatrix offsets (in elements) within a tile
    const int q_ld_off = (warp * 16 * MT + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;
    const int k_ld_off = ((lane & 7) + (lane >> 4) * 8) * LD + ((lane >> 3) & 1) * 8;
    const int v_ld_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;


    for (int it = 0; it < ntiles; ++it) {
        ea_cp_wait<ST - 2>();
        __syncthreads();
        if (C::QREG && it == 0) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int k = 0; k < KS; ++k)
                    ea_ldsm_x4(qf[C::QREG ? mt : 0][C::QREG ? k : 0], ea_smem_addr(sQ + q_ld_off + mt * 16 * LD + k * 16));
        }
        // prefetch of tile it+ST-1 into the stage freed by tile it-1 (every warp is past it: barrier above);
        // LATE issues it after the Q.K^T MMAs so the tensor cores start first
        auto prefetch = [&]() {
            const int pf = it + ST - 1;
            if (pf < ntiles) {
                const int st = pf % ST;
                ld.load(a, sq, pre_j0(pf), sq.kv_len, sK + st * BN * LD, sV + st * BN * LD);
            }
            ea_cp_commit();
        };
        if (!C::LATE) prefetch();
        const int st = it % ST;
        const uint16_t *cK = sK + st * BN * LD;
        const uint16_t *cV = sV + st * BN * LD;
        int j0 = (tb_lo + it) * BN;
        if (bsr) {
            const int sub = it % TPB;
            if (sub == 0) cur.next(kbhi, cur_blk, cur_bits);
            j0 = cur_blk * 64 + sub * BN;
        }

        // S = Q K^T
        float s[MT][NTL][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int n = 0; n < NTL; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
        for (int k = 0; k < KS; ++k) {
            uint32_t qa[C::QREG ? 1 : MT][4];
            if (!C::QREG) {
#pragma unroll
                for (int mt = 0; mt < MT; ++mt)
                    ea_ldsm_x4(qa[C::QREG ? 0 : mt], ea_smem_addr(sQ + q_ld_off + mt * 16 * LD + k * 16));
            }
#pragma unroll
            for (int np = 0; np < NTL / 2; ++np) {
                uint32_t kb[4];
                ea_ldsm_x4(kb, ea_smem_addr(cK + k_ld_off + np * 16 * LD + k * 16));
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    const uint32_t *af = C::QREG ? qf[C::QREG ? mt : 0][C::QREG ? k : 0] : qa[C::QREG ? 0 : mt];
                    ea_mma_16816<T>(s[mt][2 * np], af, kb[0], kb[1]);
                    ea_mma_16816<T>(s[mt][2 * np + 1], af, kb[2], kb[3]);
                }
            }
        }

        if (C::LATE) prefetch();

        // scores -> log2 domain, mask on boundary tiles
        const bool full = j0 >= jf_lo && j0 <= jf_hi && (!bsr || cur_bits == all_bits);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            if (C::GEN && xf.generic) {
                const float *brow[2] = {nullptr, nullptr};
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    int hq, i;
                    if (a.bias.ptr && ea_row_of(a, rm, hkv, warp * 16 * MT + mt * 16 + g + 8 * h, hq, i))
                        brow[h] = (const float *)a.bias.ptr + b * a.bias.sb + hq * a.bias.sh + (int64_t)i * a.bias.sn;
                }
#pragma unroll
                for (int n = 0; n < NTL; ++n)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int j = j0 + n * 8 + 2 * t4 + (e & 1);
                        const float *br = (j < sq.kv_len) ? brow[e >> 1] : nullptr;
                        s[mt][n][e] = ea_xf_generic(a, xf, s[mt][n][e], br, j);
                    }
            }
            if (!full) {
                int jlo[2], jhi[2];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    int hq, i;
                    bool ok = ea_row_of(a, rm, hkv, warp * 16 * MT + mt * 16 + g + 8 * h, hq, i);
                    if (bsr && ok && !((cur_bits >> (i / a.bm.block_q - qb0)) & 1)) ok = false; // block not listed
                    ea_row_bounds(a, ok ? i : -1, sq.off, sq.kv_len, jlo[h], jhi[h]);
                }
#pragma unroll
                for (int n = 0; n < NTL; ++n)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int h = e >> 1, j = j0 + n * 8 + 2 * t4 + (e & 1);
                        if (j < jlo[h] || j > jhi[h]) s[mt][n][e] = -INFINITY;
                    }
            }
        }

        // online softmax (2*MT rows per thread, a quad shares a row), then O += P V, in PARTS slices of the
        // key tile: the exp/sum of slice p+1 has no dependence on the P.V MMAs of slice p, so the warp issues
        // them while the tensor cores work. Raw scores times sl are log2-domain (sl = scale*log2(e); 1 when
        // the generic transform already ran): one FFMA per exp2. The running max is raised only when a row's
        // max grows by more than EA_RESCALE_SLACK (log2 units), so O is rescaled rarely (P <= 2^slack).
        const float sl = (C::GEN && xf.generic) ? 1.f : xf.scale_log2;
        constexpr int PARTS = C::PARTS, NTP = NTL / PARTS, KPP = BN / 16 / PARTS;
#pragma unroll
        for (int pt = 0; pt < PARTS; ++pt) {
            bool any_rescale = false;
            float alpha[R];
#pragma unroll
            for (int q = 0; q < R; ++q) {
                const int mt = q >> 1, h = q & 1;
                float mx = -INFINITY;
#pragma unroll
                for (int n = pt * NTP; n < (pt + 1) * NTP; ++n) mx = fmaxf(mx, fmaxf(s[mt][n][2 * h], s[mt][n][2 * h + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                mx *= sl;
                alpha[q] = 1.f;
                if (mx > mrow[q] + EA_RESCALE_SLACK) {
                    alpha[q] = ea_exp2(mrow[q] - mx);
                    mrow[q] = mx;
                    any_rescale = true;
                }
                const float mu = mrow[q] == -INFINITY ? 0.f : mrow[q];
                float sum = 0.f;
#pragma unroll
                for (int n = pt * NTP; n < (pt + 1) * NTP; ++n) {
                    s[mt][n][2 * h] = ea_exp2(fmaf(s[mt][n][2 * h], sl, -mu));
                    s[mt][n][2 * h + 1] = ea_exp2(fmaf(s[mt][n][2 * h + 1], sl, -mu));
                    sum += s[mt][n][2 * h] + s[mt][n][2 * h + 1];
                }
                lrow[q] = lrow[q] * alpha[q] + sum;
            }
            if (__any_sync(0xffffffffu, any_rescale)) {
#pragma unroll
                for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                    for (int n = 0; n < DT; ++n) {
                        o[mt][n][0] *= alpha[2 * mt];
                        o[mt][n][1] *= alpha[2 * mt];
                        o[mt][n][2] *= alpha[2 * mt + 1];
                        o[mt][n][3] *= alpha[2 * mt + 1];
                    }
            }
#pragma unroll
            for (int kp = pt * KPP; kp < (pt + 1) * KPP; ++kp) {
                uint32_t pa[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    pa[mt][0] = T::pack(s[mt][2 * kp][0], s[mt][2 * kp][1]);
                    pa[mt][1] = T::pack(s[mt][2 * kp][2], s[mt][2 * kp][3]);
                    pa[mt][2] = T::pack(s[mt][2 * kp + 1][0], s[mt][2 * kp + 1][1]);
                    pa[mt][3] = T::pack(s[mt][2 * kp + 1][2], s[mt][2 * kp + 1][3]);
                }
#pragma unroll
                for (int dp = 0; dp < D / 16; ++dp) {
                    uint32_t vb[4];
                    ea_ldsm_x4_t(vb, ea_smem_addr(cV + v_ld_off + kp * 16 * LD + dp * 16));
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        ea_mma_16816<T>(o[mt][2 * dp], pa[mt], vb[0], vb[1]);
                        ea_mma_16816<T>(o[mt][2 * dp + 1], pa[mt], vb[2], vb[3]);
                    }
                }
            }
        }
    }
    ea_cp_wait<0>();

    // epilogue (rows past this batch row's q_len: not written)
    const int qlen = ea_q_len(a, b);
#pragma unroll
    for (int q = 0; q < R; ++q) {
        const int mt = q >> 1, h = q & 1;
        float l = lrow[q];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        int hq, i;
        if (!ea_row_of(a, rm, hkv, warp * 16 * MT + mt * 16 + g + 8 * h, hq, i) || i >= qlen) continue;
        const float inv = l > 0.f ? 1.f / l : 0.f;
        const int64_t ob = b * a.out.sb + hq * a.out.sh + (int64_t)i * a.out.sn;
#pragma unroll
        for (int n = 0; n < DT; ++n)
            ea_store2((void *)a.out.ptr, ob + n * 8 + 2 * t4, a.out.dtype, o[mt][n][2 * h] * inv, o[mt][n][2 * h + 1] * inv);
        if (a.lse.ptr && t4 == 0) {
            const float mu = mrow[q] == -INFINITY ? 0.f : mrow[q];
            ((float *)a.lse.ptr)[b * a.lse.sb + hq * a.lse.sh + (int64_t)i * a.lse.sn] =
                l > 0.f ? (mu + __log2f(l)) * EA_LN2 : -INFINITY;
        }
    }
#endif
}

#define EA_PREFILL_KERNEL(NAME, T, CFG)                                                                          \
    extern "C" __global__ void __launch_bounds__(CFG::NT, CFG::MINB) NAME(const ea_cu_attn_args a) {                     \
        extern __shared__ __align__(16) uint16_t ea_smem_pf[];                                                    \
        ea_prefill_body<T, CFG>(a, ea_smem_pf);                                                                  \
    }

typedef ea_prefill_cfg<64, EA_PF_64_NW, EA_PF_64_BN, EA_PF_64_ST, EA_PF_64_QREG != 0, EA_PF_64_MT, EA_PF_64_MINB, true, 1, EA_PF_64_LATE != 0> ea_pf_d64;
typedef ea_prefill_cfg<80, EA_PF_80_NW, EA_PF_80_BN, EA_PF_80_ST, EA_PF_80_QREG != 0, EA_PF_80_MT, EA_PF_80_MINB, true, 1, EA_PF_80_LATE != 0> ea_pf_d80;
typedef ea_prefill_cfg<96, EA_PF_96_NW, EA_PF_96_BN, EA_PF_96_ST, EA_PF_96_QREG != 0, EA_PF_96_MT, EA_PF_96_MINB, true, 1, EA_PF_96_LATE != 0> ea_pf_d96;
typedef ea_prefill_cfg<128, EA_PF_128_NW, EA_PF_128_BN, EA_PF_128_ST, EA_PF_128_QREG != 0, EA_PF_128_MT, EA_PF_128_MINB, true, 1, EA_PF_128_LATE != 0> ea_pf_d128;
typedef ea_prefill_cfg<256, EA_PF_256_NW, EA_PF_256_BN, EA_PF_256_ST, EA_PF_256_QREG != 0, EA_PF_256_MT, EA_PF_256_MINB, true, 1, EA_PF_256_LATE != 0> ea_pf_d256;
static_assert(ea_pf_d64::SMEM == EA_PF_SMEM(64, EA_PF_64_MT * EA_PF_64_NW, EA_PF_64_BN, EA_PF_64_ST), "smem");
static_assert(ea_pf_d80::SMEM == EA_PF_SMEM(80, EA_PF_80_MT * EA_PF_80_NW, EA_PF_80_BN, EA_PF_80_ST), "smem");
static_assert(ea_pf_d96::SMEM == EA_PF_SMEM(96, EA_PF_96_MT * EA_PF_96_NW, EA_PF_96_BN, EA_PF_96_ST), "smem");
static_assert(ea_pf_d128::SMEM == EA_PF_SMEM(128, EA_PF_128_MT * EA_PF_128_NW, EA_PF_128_BN, EA_PF_128_ST), "smem");
static_assert(ea_pf_d256::SMEM == EA_PF_SMEM(256, EA_PF_256_MT * EA_PF_256_NW, EA_PF_256_BN, EA_PF_256_ST), "smem");

EA_PREFILL_KERNEL(ea_attn_mma_f16_d64, ea_f16_t, ea_pf_d64)
EA_PREFILL_KERNEL(ea_attn_mma_f16_d80, ea_f16_t, ea_pf_d80)
EA_PREFILL_KERNEL(ea_attn_mma_f16_d96, ea_f16_t, ea_pf_d96)
EA_PREFILL_KERNEL(ea_attn_mma_f16_d128, ea_f16_t, ea_pf_d128)
EA_PREFILL_KERNEL(ea_attn_mma_f16_d256, ea_f16_t, ea_pf_d256)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d64, ea_bf16_t, ea_pf_d64)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d80, ea_bf16_t, ea_pf_d80)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d96, ea_bf16_t, ea_pf_d96)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d128, ea_bf16_t, ea_pf_d128)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d256, ea_bf16_t, ea_pf_d256)

// Plain variants (no softcap, no bias compiled in: fewer live registers in the main loop); the planner picks
// them when neither option is set.
typedef ea_prefill_cfg<64, EA_PF_64_NW, EA_PF_64_BN, EA_PF_64_ST, EA_PF_64_QREG != 0, EA_PF_64_MT, EA_PF_64_MINB, false, 1, EA_PF_64_LATE != 0> ea_pf_d64_plain;
typedef ea_prefill_cfg<80, EA_PF_80_NW, EA_PF_80_BN, EA_PF_80_ST, EA_PF_80_QREG != 0, EA_PF_80_MT, EA_PF_80_MINB, false, 1, EA_PF_80_LATE != 0> ea_pf_d80_plain;
typedef ea_prefill_cfg<96, EA_PF_96_NW, EA_PF_96_BN, EA_PF_96_ST, EA_PF_96_QREG != 0, EA_PF_96_MT, EA_PF_96_MINB, false, 1, EA_PF_96_LATE != 0> ea_pf_d96_plain;
typedef ea_prefill_cfg<128, EA_PF_128_NW, EA_PF_128_BN, EA_PF_128_ST, EA_PF_128_QREG != 0, EA_PF_128_MT, EA_PF_128_MINB, false, 1, EA_PF_128_LATE != 0> ea_pf_d128_plain;
typedef ea_prefill_cfg<256, EA_PF_256_NW, EA_PF_256_BN, EA_PF_256_ST, EA_PF_256_QREG != 0, EA_PF_256_MT, EA_PF_256_MINB, false, 1, EA_PF_256_LATE != 0> ea_pf_d256_plain;
EA_PREFILL_KERNEL(ea_attn_mma_f16_d64_plain, ea_f16_t, ea_pf_d64_plain)
EA_PREFILL_KERNEL(ea_attn_mma_f16_d80_plain, ea_f16_t, ea_pf_d80_plain)
EA_PREFILL_KERNEL(ea_attn_mma_f16_d96_plain, ea_f16_t, ea_pf_d96_plain)
EA_PREFILL_KERNEL(ea_attn_mma_f16_d128_plain, ea_f16_t, ea_pf_d128_plain)
EA_PREFILL_KERNEL(ea_attn_mma_f16_d256_plain, ea_f16_t, ea_pf_d256_plain)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d64_plain, ea_bf16_t, ea_pf_d64_plain)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d80_plain, ea_bf16_t, ea_pf_d80_plain)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d96_plain, ea_bf16_t, ea_pf_d96_plain)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d128_plain, ea_bf16_t, ea_pf_d128_plain)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d256_plain, ea_bf16_t, ea_pf_d256_plain)

// D128 for parts with at most 99 KB of shared memory per block (sm_86, sm_89): keys in tiles of 32.
typedef ea_prefill_cfg<128, EA_PF_128S_NW, EA_PF_128S_BN, EA_PF_128S_ST, EA_PF_128S_QREG != 0, EA_PF_128S_MT, EA_PF_128S_MINB> ea_pf_d128s;
typedef ea_prefill_cfg<128, EA_PF_128S_NW, EA_PF_128S_BN, EA_PF_128S_ST, EA_PF_128S_QREG != 0, EA_PF_128S_MT, EA_PF_128S_MINB, false> ea_pf_d128s_plain;
static_assert(ea_pf_d128s::SMEM == EA_PF_SMEM(128, EA_PF_128S_MT * EA_PF_128S_NW, EA_PF_128S_BN, EA_PF_128S_ST), "smem");
EA_PREFILL_KERNEL(ea_attn_mma_f16_d128_s, ea_f16_t, ea_pf_d128s)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d128_s, ea_bf16_t, ea_pf_d128s)
EA_PREFILL_KERNEL(ea_attn_mma_f16_d128_s_plain, ea_f16_t, ea_pf_d128s_plain)
EA_PREFILL_KERNEL(ea_attn_mma_bf16_d128_s_plain, ea_bf16_t, ea_pf_d128s_plain)
