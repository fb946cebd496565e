/* Fused flash attention, instantiated once per tile shape: the host prepends
 *   #define FK_NAME <kernel name>, FK_BM (query rows per work-group), FK_TM (score rows per work-item),
 *   FK_BN (keys per tile), FK_TN (score columns per work-item), FK_PM (output rows per work-item)
 * and the program-wide EA_DMAX (largest head dim served); each kernel is its own program.
 *
 * The two products of a tile use different work-item layouts, each a register block fed by float4
 * loads from local memory:
 *   scores  S = Q K^T   work-item (qr, qc) owns rows qr + a*QR (a < TM) and keys qc + c*QC (c < TN);
 *                       per float4 of the head dim: TM + TN loads, 4*TM*TN multiply-adds.
 *   output  O += P V    work-item (pr, pc) owns rows pr*PM + a (a < PM) and float4 columns pc + e*PC
 *                       (e < PD4) of the head dim; per key: PM/4 + PD4 loads, 4*PM*PD4 multiply-adds.
 * The probabilities P go through local memory transposed (key-major), so PM consecutive rows of one key
 * are one float4. Scores are kept in log2 units (Q is pre-scaled by scale * log2(e) unless a softcap
 * needs natural units first), so the softmax uses exp2. Statistics are FP32: each score work-item keeps
 * the running max m of its rows and its part of the row sum l; the rescale factor of each row goes to
 * the output work-items through local memory, and the parts of l are summed once at the end.
 *
 * Rows of a block are the query heads of one KV head interleaved (row r: query r / group, head
 * r % group), so every query head of a GQA group shares each K/V tile. The key range a block can see
 * (causal, window, kv_len) is computed once: tiles outside it are never loaded. A work-group with
 * split index s of nsplit handles its share of those tiles and writes a partial result (normalised
 * output, row max, row sum) for the combine kernel; with nsplit == 1 it writes out and lse itself. */
#define FK_QC (FK_BN / FK_TN)        /* score work-items across the keys of a tile */
#define FK_QR (FK_BM / FK_TM)        /* ... and across the rows */
#define FK_NT (FK_QR * FK_QC)        /* work-items per work-group */
#define FK_PR (FK_BM / FK_PM)        /* output work-items across the rows */
#define FK_PC (FK_NT / FK_PR)        /* ... and across the float4 columns of the head dim */
#define FK_D4 (EA_DMAX / 4)
#define FK_PD4 (FK_D4 / FK_PC)       /* float4 output columns per work-item */
#define FK_DP4 (FK_D4 + 1)           /* row pitch of the Q and K/V tiles in float4: +1 shifts banks */
#define FK_PTP (FK_BM + 4)           /* row pitch of the transposed probability tile in floats */
#define FK_NLD ((FK_BN * FK_D4 + FK_NT - 1) / FK_NT) /* float4 of a K or V tile per work-item */
#ifdef FK_UNROLL_QK
#define FK_UQK FK_UNROLL_QK
#else
#define FK_UQK EA_UNROLL_QK
#endif
#ifdef FK_UNROLL_PV
#define FK_UPV FK_UNROLL_PV
#else
#define FK_UPV EA_UNROLL_PV
#endif
/* Register prefetch: the V tile is fetched while the scores are computed and the next K tile while
 * P.V is, so the loads' latency hides behind the arithmetic (few work-groups fit a compute unit: the
 * Q tile fills most of the local memory). Build options may set EA_PREFETCH (0/1), EA_UNROLL_QK and
 * EA_UNROLL_PV (unroll factors of the two inner loops) for tuning sweeps; the host sets them per kernel
 * as FK_PREFETCH, FK_UNROLL_QK and FK_UNROLL_PV (tile data). */
#if defined(FK_PREFETCH) /* the host's, per kernel */
#define FK_PF FK_PREFETCH
#elif defined(EA_PREFETCH)
#define FK_PF EA_PREFETCH
#else
#define FK_PF (FK_NLD <= 8)
#endif
#ifndef EA_STR /* program-wide, defined by the first instantiation */
#define EA_STR(x) #x
#define EA_PRAGMA(x) _Pragma(EA_STR(x))
#ifdef EA_NATIVE_EXP /* the device's fast exp2 (NVIDIA: ex2.approx, a few ulp) */
#define EA_EXP2 native_exp2
#else
#define EA_EXP2 exp2
#endif
#ifndef EA_UNROLL_QK
#define EA_UNROLL_QK 2
#endif
#ifndef EA_UNROLL_PV
#define EA_UNROLL_PV 2
#endif
#endif

#ifdef FK_QH
#define FK_QP (EA_DMAX + 8) /* row pitch of the F16 Q tile in halves: +8 shifts banks, keeps 8-byte alignment */
#define FK_QLOAD(A, D4) vloada_half4(0, (__local const half *)(qp + (A) * (FK_QR * FK_QP) + 4 * (D4)))
#else
#define FK_QLOAD(A, D4) qp[(A) * (FK_QR * FK_DP4) + (D4)]
#endif

/* Scores of this work-item over head-dim float4 columns [0, BOUND). */
#define FK_QK(BOUND)                                                                                              \
    EA_PRAGMA(unroll FK_UQK) for (int d4 = 0; d4 < (BOUND); d4++)                                                \
    {                                                                                                             \
        float4 qv[FK_TM], kv[FK_TN];                                                                              \
        _Pragma("unroll") for (int a = 0; a < FK_TM; a++) qv[a] = FK_QLOAD(a, d4);                                \
        _Pragma("unroll") for (int c = 0; c < FK_TN; c++) kv[c] = kp[c * (FK_QC * FK_DP4) + d4];                 \
        _Pragma("unroll") for (int a = 0; a < FK_TM; a++)                                                         \
        {                                                                                                         \
            _Pragma("unroll") for (int c = 0; c < FK_TN; c++)                                                     \
            {                                                                                                     \
                s[a][c] = fma(qv[a].x, kv[c].x, s[a][c]);                                                         \
                s[a][c] = fma(qv[a].y, kv[c].y, s[a][c]);                                                         \
                s[a][c] = fma(qv[a].z, kv[c].z, s[a][c]);                                                         \
                s[a][c] = fma(qv[a].w, kv[c].w, s[a][c]);                                                         \
            }                                                                                                     \
        }                                                                                                         \
    }

/* ACC = OP(ACC, x) over the QC partials of row ROW in Pm (float4 loads when QC allows) */
#define FK_ADD(a, b) ((a) + (b))
#if FK_QC % 4 == 0
#define FK_ROW_REDUCE(ACC, OP, ROW)                                                                               \
    _Pragma("unroll") for (int c = 0; c < FK_QC; c += 4)                                                          \
    {                                                                                                             \
        const float4 x = vload4(0, Pm + (ROW) * FK_QC + c);                                                       \
        ACC = OP(OP(ACC, x.x), OP(x.y, OP(x.z, x.w)));                                                            \
    }
#else
#define FK_ROW_REDUCE(ACC, OP, ROW) _Pragma("unroll") for (int c = 0; c < FK_QC; c++) ACC = OP(ACC, Pm[(ROW) * FK_QC + c]);
#endif

#ifdef EA_PAGED
/* A paged program (built for configs with config.kv_page_size) reads every key row through Pg: the row
 * index of each key of tiles t and t + 1 (Pg[t & 1]), filled a tile ahead by FK_ROWS, -1 past the
 * visible range. The element offset of key c's row is then VIEW.off + kvb*VIEW.sb + hkv*VIEW.sh +
 * Pg[c]*VIEW.sn for either layout, so the fetch does one local load and one multiply-add per float4
 * and no ring or page arithmetic: a paged launch (page_shift > 0; the host sets sb 0 and sn the unit
 * of a pool row index, common.cl) stores the pool row of the slot's page entry, a contiguous one
 * (prefill of a paged context's caller tensors) the ring slot. */
#define FK_NPG ((FK_BN + FK_NT - 1) / FK_NT) /* keys of a tile whose row a work-item finds */
/* RV = the row index of key c of tile T (j = jlo + T*BN + c; -1 past jhi) */
#define FK_ROW_OF(RV, T, C)                                                                                       \
    {                                                                                                             \
        const int j_ = jlo + (T) * FK_BN + (C);                                                                   \
        RV = -1;                                                                                                  \
        if (j_ <= jhi) {                                                                                          \
            const int slot_ = ea_slot(j_, slot0, P.sinks, P.ring_cap);                                            \
            RV = paged ? ea_pool_row(ptab, slot_, P.page_shift, P.page_units, P.row_units) : slot_;                \
        }                                                                                                         \
    }
/* Keys c = tid + i*NT of tile T: their rows into RW[i] (registers), then into Pg (FK_ROWS_PUT) */
#define FK_ROWS_GET(RW, T)                                                                                        \
    _Pragma("unroll") for (int i_ = 0; i_ < FK_NPG; i_++)                                                         \
    {                                                                                                             \
        RW[i_] = -1;                                                                                              \
        if (FK_BN % FK_NT == 0 || tid + i_ * FK_NT < FK_BN)                                                       \
            FK_ROW_OF(RW[i_], T, tid + i_ * FK_NT)                                                                \
    }
#define FK_ROWS_PUT(RW, T, PAR)                                                                                   \
    _Pragma("unroll") for (int i_ = 0; i_ < FK_NPG; i_++)                                                         \
    {                                                                                                             \
        if (FK_BN % FK_NT == 0 || tid + i_ * FK_NT < FK_BN)                                                       \
            Pg[(PAR) * FK_BN + tid + i_ * FK_NT] = RW[i_];                                                        \
    }
#define FK_ROWS(T, PAR)                                                                                           \
    {                                                                                                             \
        int rw_[FK_NPG];                                                                                          \
        FK_ROWS_GET(rw_, T)                                                                                       \
        FK_ROWS_PUT(rw_, T, PAR)                                                                                  \
    }
/* This work-item's share of the K or V tile T (keys jlo + T*BN ...) into REG[FK_NLD] as FP32; zero past
 * the visible range and the head dim. Element e = tid + u*NT of the tile is key e / D4, float4 column
 * e % D4. */
#define FK_FETCH(REG, BUF, VIEW, T, PAR)                                                                          \
    _Pragma("unroll") for (int u = 0; u < FK_NLD; u++)                                                            \
    {                                                                                                             \
        const int e = tid + u * FK_NT;                                                                            \
        const int c = e / FK_D4, d4 = e % FK_D4;                                                                  \
        REG[u] = (float4)(0.0f);                                                                                  \
        if (((FK_BN * FK_D4) % FK_NT == 0 || e < FK_BN * FK_D4) && d4 < D4) {                                     \
            const int row = Pg[(PAR) * FK_BN + c];                                                                \
            if (row >= 0)                                                                                         \
                REG[u] = ea_ld4(BUF, VIEW.off + kvb * VIEW.sb + (long)hkv * VIEW.sh + (long)row * VIEW.sn + 4 * d4, \
                                P.kv_dt);                                                                         \
        }                                                                                                         \
    }
#else
/* This work-item's share of the K or V tile T (keys jlo + T*BN ...) into REG[FK_NLD] as FP32; zero past
 * the visible range and the head dim. Element e = tid + u*NT of the tile is key e / D4, float4 column
 * e % D4 (ring slot `slot`). */
#define FK_FETCH(REG, BUF, VIEW, T, PAR)                                                                          \
    _Pragma("unroll") for (int u = 0; u < FK_NLD; u++)                                                            \
    {                                                                                                             \
        const int e = tid + u * FK_NT;                                                                            \
        const int c = e / FK_D4, d4 = e % FK_D4, j = jlo + (T) * FK_BN + c;                                       \
        REG[u] = (float4)(0.0f);                                                                                  \
        if (((FK_BN * FK_D4) % FK_NT == 0 || e < FK_BN * FK_D4) && j <= jhi && d4 < D4) {                         \
            const int slot = ea_slot(j, slot0, P.sinks, P.ring_cap);                                              \
            REG[u] = ea_ld4(BUF, VIEW.off + kvb * VIEW.sb + (long)hkv * VIEW.sh + (long)slot * VIEW.sn + 4 * d4,    \
                            P.kv_dt);                                                                             \
        }                                                                                                         \
    }
#endif
#if defined(EA_BATCH_LOADS) && !FK_PF
/* Build option (sweeps; not the default yet): the fetch issues every load of a work-item's share before
 * it converts any, whole rows of 4 values at once (one 8-byte load for F16/BF16, 16 bytes for F32)
 * when the launch's rows allow (P.kv_vec), the dtype branch outside the loop. The default fetch above
 * converts each float4 as it loads it (a runtime dtype branch per float4 holding four 2-byte loads),
 * so a work-item waits for its float4 one after the other. Not with the register prefetch, whose
 * loads must stay in flight past the fetch. */
#undef FK_FETCH
/* RV[u]: the row of element u of this work-item's share of tile T (e = tid + u*NT: key e / D4, float4
 * column e % D4; paged programs: from Pg, read for every element before any is used), -1 when it is
 * not read; FK_VAT: the element offset of element U on row ROW */
#ifdef EA_PAGED
#define FK_ROWV(RV, T, PAR)                                                                                       \
    _Pragma("unroll") for (int u = 0; u < FK_NLD; u++)                                                            \
    {                                                                                                             \
        const int e_ = tid + u * FK_NT, c_ = e_ / FK_D4, d4_ = e_ % FK_D4;                                        \
        const int pg_ = Pg[(PAR) * FK_BN + min(c_, FK_BN - 1)];                                                   \
        RV[u] = ((FK_BN * FK_D4) % FK_NT == 0 || e_ < FK_BN * FK_D4) && d4_ < D4 ? pg_ : -1;                      \
    }
#else
#define FK_ROWV(RV, T, PAR)                                                                                       \
    _Pragma("unroll") for (int u = 0; u < FK_NLD; u++)                                                            \
    {                                                                                                             \
        const int e_ = tid + u * FK_NT, c_ = e_ / FK_D4, d4_ = e_ % FK_D4, j_ = jlo + (T) * FK_BN + c_;           \
        const int slot_ = ea_slot(j_, slot0, P.sinks, P.ring_cap);                                                \
        RV[u] = ((FK_BN * FK_D4) % FK_NT == 0 || e_ < FK_BN * FK_D4) && j_ <= jhi && d4_ < D4 ? slot_ : -1;       \
    }
#endif
#define FK_VAT(VIEW, U, ROW)                                                                                      \
    (VIEW.off + kvb * VIEW.sb + (long)hkv * VIEW.sh + (long)(ROW) * VIEW.sn + 4 * ((tid + (U) * FK_NT) % FK_D4))
#define FK_FETCH(REG, BUF, VIEW, T, PAR)                                                                          \
    {                                                                                                             \
        int rv_[FK_NLD];                                                                                          \
        FK_ROWV(rv_, T, PAR)                                                                                      \
        if (P.kv_vec && P.kv_dt == EA_F32) {                                                                      \
            _Pragma("unroll") for (int u = 0; u < FK_NLD; u++) REG[u] =                                           \
                rv_[u] >= 0 ? ((__global const float4 *)BUF)[FK_VAT(VIEW, u, rv_[u]) >> 2] : (float4)(0.0f);    \
        } else if (P.kv_vec) {                                                                                    \
            uint2 raw_[FK_NLD];                                                                                   \
            _Pragma("unroll") for (int u = 0; u < FK_NLD; u++) raw_[u] =                                          \
                rv_[u] >= 0 ? ((__global const uint2 *)BUF)[FK_VAT(VIEW, u, rv_[u]) >> 2] : (uint2)(0);          \
            if (P.kv_dt == EA_F16) {                                                                              \
                _Pragma("unroll") for (int u = 0; u < FK_NLD; u++) REG[u] = ea_bits4(raw_[u], EA_F16);            \
            } else {                                                                                              \
                _Pragma("unroll") for (int u = 0; u < FK_NLD; u++) REG[u] = ea_bits4(raw_[u], EA_BF16);           \
            }                                                                                                     \
        } else {                                                                                                  \
            _Pragma("unroll") for (int u = 0; u < FK_NLD; u++) REG[u] =                                           \
                rv_[u] >= 0 ? ea_ld4(BUF, FK_VAT(VIEW, u, rv_[u]), P.kv_dt) : (float4)(0.0f);                     \
        }                                                                                                         \
    }
#endif
#define FK_STORE(REG)                                                                                             \
    _Pragma("unroll") for (int u = 0; u < FK_NLD; u++)                                                            \
    {                                                                                                             \
        const int e = tid + u * FK_NT;                                                                            \
        if ((FK_BN * FK_D4) % FK_NT == 0 || e < FK_BN * FK_D4)                                                    \
            KVs[(e / FK_D4) * FK_DP4 + e % FK_D4] = REG[u];                                                       \
    }

#ifdef EA_NO_REQD_WG /* lets NVIDIA's -cl-nv-maxrregcount take effect (a required size overrides it) */
__kernel void FK_NAME(
#else
__kernel __attribute__((reqd_work_group_size(FK_NT, 1, 1))) void FK_NAME(
#endif
    __global const uchar *qb, __global const uchar *kb, __global const uchar *vb, __global uchar *ob,
    __global const float *biasb, __global float *lseb, __global float *wsb, const ea_attn_p P)
{
#ifdef FK_QH /* F16 Q kept as F16 bits in local memory (half the bytes; scaled after Q K^T) */
    __local ushort Qs[FK_BM * FK_QP];
#else
    __local float4 Qs[FK_BM * FK_DP4];
#endif
    __local float4 KVs[FK_BN * FK_DP4];
    __local float Pt[FK_BN * FK_PTP];
    __local float Pm[FK_BM * FK_QC]; /* partial row maxima; at the end, the parts of the row sums */
    __local float As[FK_BM];         /* per-row rescale factor of the tile; at the end, the row maxima */
#ifdef EA_PAGED
    __local int Pg[2 * FK_BN]; /* row indices of the keys of the tile visited now (Pg[par]) and the next */
#endif

    const int tid = (int)get_local_id(0);
#if FK_QR % 2 == 0 && FK_PR % 2 == 0 && !defined(EA_NO_PAIRS)
    /* Lane bit 0 picks the row and lane bit 1 the column of a work-item pair, so every local load of the
     * inner loops is the same for lanes n and n^1 (K, V) or n and n^2 (Q, P): NVIDIA serves such loads
     * at twice the bandwidth (LDS.128 in 2 wavefronts instead of 4). */
    const int qr = ((tid >> 1) / FK_QC) * 2 + (tid & 1), qc = (tid >> 1) % FK_QC;
    const int pr = ((tid >> 1) / FK_PC) * 2 + (tid & 1), pc = (tid >> 1) % FK_PC;
#else
    const int qr = tid / FK_QC, qc = tid % FK_QC;
    const int pr = tid / FK_PC, pc = tid % FK_PC;
#endif
    const int r0 = (int)get_group_id(0) * FK_BM;
    const int hs = (int)get_group_id(1);
    const int split = hs % P.nsplit, hl = hs / P.nsplit;
    const int bl = (int)get_group_id(2);
    const long b = P.b0 + bl;
    const int hkv = P.h0 + hl;
    const long kvb = P.kv_b[bl]; /* K/V batch index (decode: the cache sequence) */
    const int nq = P.nq[bl];
    const int group = P.group, R = group * clamp(nq - P.i0, 0, P.ni); /* rows past nq: none */
    const int kv_len = P.kv_len[bl], slot0 = P.slot0[bl];
    const int D4 = P.D / 4;
    const int qo0 = kv_len - nq + P.i0; /* qo of local query 0 */
    /* log2 units from the start, unless the softcap needs natural units (then after it) */
    const float qscale = P.softcap > 0.0f ? P.scale : P.scale * EA_LOG2E;

    /* keys any row of this block can see: [jlo, jhi] */
    const int rlast = min(r0 + FK_BM, R) - 1;
    int jlo = 0, jhi = kv_len - 1;
    if (P.wl >= 0)
        jlo = max(jlo, qo0 + r0 / group - P.wl);
    if (P.causal)
        jhi = min(jhi, qo0 + rlast / group);
    if (P.wr >= 0)
        jhi = min(jhi, qo0 + rlast / group + P.wr);
    const int ntile = (r0 < R && jhi >= jlo) ? (jhi - jlo + FK_BN) / FK_BN : 0;
    /* keys every row of the block sees: tiles inside [jlo_all, jhi_all] need no per-element mask */
    const bool rows_full = r0 + FK_BM <= R;
    int jlo_all = 0, jhi_all = kv_len - 1;
    if (P.wl >= 0)
        jlo_all = max(jlo_all, qo0 + rlast / group - P.wl);
    if (P.causal)
        jhi_all = min(jhi_all, qo0 + r0 / group);
    if (P.wr >= 0)
        jhi_all = min(jhi_all, qo0 + r0 / group + P.wr);
    const int tps = (ntile + P.nsplit - 1) / P.nsplit;
    const int t_end = min(ntile, split * tps + tps);
    /* a block mask (bm_bq > 0): only tiles whose key blocks the query blocks of this block's rows list are
     * visited (FK_NEXT); never loaded or scored otherwise */
    const bool bmask = P.bm_bq > 0;
    __global const uint *bmp = (__global const uint *)wsb + P.bm_off + b * P.bm_sb + (long)hkv * P.bm_sh;
    const int qb0 = bmask ? (P.i0 + r0 / group) / P.bm_bq : 0, qb1 = bmask ? (P.i0 + max(rlast, r0) / group) / P.bm_bq : 0;
#define FK_NEXT(T) (bmask ? ea_bm_next(bmp, P.bm_words, P.bm_shift, qb0, qb1, (T), t_end, jlo, jhi, FK_BN) : (T))
    const int t_begin = FK_NEXT(min(split * tps, t_end));
#ifdef EA_PAGED
    const bool paged = P.page_shift > 0; /* uniform: a launch over a paged cache */
    __global const int *ptab = (__global const int *)wsb + P.pt_off + (long)(P.b0 + bl) * P.pt_pitch;
    /* the first tile's rows: the page-table reads travel with the Q block's loads below */
    int rw0[FK_NPG];
    if (t_begin < t_end) {
        FK_ROWS_GET(rw0, t_begin)
    }
#endif

    /* Q block, pre-scaled (F16 bits as they are); zero beyond the rows and the head dim */
    for (int e = tid; e < FK_BM * FK_D4; e += FK_NT) {
        const int r = e / FK_D4, d4 = e % FK_D4, rr = r0 + r;
        const long h = (long)hkv * group + rr % group, i = P.i0 + rr / group;
        const long at = P.q.off + b * P.q.sb + h * P.q.sh + i * P.q.sn + 4 * d4;
#ifdef FK_QH /* never launched with RoPE (rotated values are not F16 any more): the host picks FK_PF then */
        ushort4 x = (ushort4)(0);
        if (rr < R && d4 < D4)
            x = vload4(0, (__global const ushort *)qb + at);
        vstore4(x, 0, Qs + r * FK_QP + 4 * d4);
#else
        float4 x = (float4)(0.0f);
        if (rr < R && d4 < D4) {
            x = ea_ld4(qb, at, P.q_dt);
            if (P.rope_style) /* rotated at its position (angles from the host's table) */
                x = ea_rope4(x, qb, at - 4 * d4, P.q_dt, 4 * d4, P.rope_style, P.rope_dim,
                             wsb + P.rope_off + (long)(P.tab0[bl] + (int)i - P.i0) * P.rope_dim);
            x *= qscale;
        }
        Qs[r * FK_DP4 + d4] = x;
#endif
    }

#ifdef EA_PAGED
    if (t_begin < t_end) { /* read after the barrier at the top of the first tile */
        FK_ROWS_PUT(rw0, t_begin, 0)
    }
#if FK_PF
    barrier(CLK_LOCAL_MEM_FENCE); /* ... or by the prefetch below */
#endif
#endif

    float m[FK_TM], l[FK_TM];
    float4 o[FK_PM][FK_PD4];
    _Pragma("unroll") for (int a = 0; a < FK_TM; a++)
    {
        m[a] = -INFINITY;
        l[a] = 0.0f;
    }
    _Pragma("unroll") for (int a = 0; a < FK_PM; a++)
    {
        _Pragma("unroll") for (int e = 0; e < FK_PD4; e++) o[a][e] = (float4)(0.0f);
    }
#ifdef FK_QH
    __local const ushort *qp = Qs + qr * FK_QP;
#else
    __local const float4 *qp = Qs + qr * FK_DP4;
#endif
    __local const float4 *kp = KVs + qc * FK_DP4;
    float4 kreg[FK_NLD], vreg[FK_NLD];
#if FK_PF
    if (t_begin < t_end) {
        FK_FETCH(kreg, kb, P.k, t_begin, 0)
    }
#endif

    /* par: which half of Pg holds this tile's rows (the tiles visited alternate; a block mask skips some) */
    for (int t = t_begin, par = 0; t < t_end; par ^= 1) {
        const int j0 = jlo + t * FK_BN, tn = FK_NEXT(t + 1); /* this tile and the next visited */
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous tile's P.V is done with KVs and Pt */
#if FK_PF
        FK_STORE(kreg)
        FK_FETCH(vreg, vb, P.v, t, par) /* in flight while the scores are computed */
#else
        FK_FETCH(kreg, kb, P.k, t, par)
#endif
#ifdef EA_PAGED
        /* the next tile's rows (its readers come after the next barrier; the other half of Pg) */
        if (tn < t_end) {
            FK_ROWS(tn, par ^ 1)
        }
#endif
#if !FK_PF
        FK_STORE(kreg)
#endif
        barrier(CLK_LOCAL_MEM_FENCE);

        float s[FK_TM][FK_TN];
        _Pragma("unroll") for (int a = 0; a < FK_TM; a++)
        {
            _Pragma("unroll") for (int c = 0; c < FK_TN; c++) s[a][c] = 0.0f;
        }
#ifdef EA_QK_CONST /* one loop over the padded head dim (Q is zero past D): fewer registers */
        FK_QK(FK_D4)
#else
        if (D4 == FK_D4) {
            FK_QK(FK_D4)
        } else {
            FK_QK(D4)
        }
#endif

        /* softcap, bias and masks; partial row maxima. A tile the block mask keeps whole for every row
         * (one key block that each query block of the rows lists) needs no per-element mask check */
        bool bm_all = true;
        if (bmask)
            (void)ea_bm_tile(bmp, P.bm_words, P.bm_shift, qb0, qb1, j0, min(j0 + FK_BN - 1, jhi), &bm_all);
        const bool full = rows_full && bm_all && j0 >= jlo_all && j0 + FK_BN - 1 <= jhi_all;
        _Pragma("unroll") for (int a = 0; a < FK_TM; a++)
        {
            const int row = qr + a * FK_QR, rr = r0 + row;
            const int qo = qo0 + rr / group;
            const long h = (long)hkv * group + rr % group;
            float pm = -INFINITY;
            _Pragma("unroll") for (int c = 0; c < FK_TN; c++)
            {
                const int j = j0 + qc + c * FK_QC;
                float x = s[a][c];
#ifdef FK_QH
                x *= qscale;
#endif
                if (P.softcap > 0.0f)
                    x = P.softcap * tanh(x / P.softcap) * EA_LOG2E;
                const bool vis = full || (rr < R && j <= jhi && ea_visible(j, qo, P.causal, P.wl, P.wr) &&
                                          (bm_all || ea_bm_bit(bmp, P.bm_words, P.bm_shift, (P.i0 + rr / group) / P.bm_bq, j)));
                if (vis && P.has_bias)
                    x = fma(biasb[P.bias.off + b * P.bias.sb + h * P.bias.sh + (long)(P.i0 + rr / group) * P.bias.sn +
                                  j],
                            EA_LOG2E, x);
                x = vis ? x : -INFINITY;
                s[a][c] = x;
                pm = fmax(pm, x);
            }
            Pm[row * FK_QC + qc] = pm;
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* maxima visible; K no longer read */

        /* V tile; new row maxima, probabilities (transposed into Pt), rescale factors */
#if !FK_PF
        FK_FETCH(vreg, vb, P.v, t, par)
#endif
        FK_STORE(vreg)
        _Pragma("unroll") for (int a = 0; a < FK_TM; a++)
        {
            const int row = qr + a * FK_QR;
            float mx = m[a];
            FK_ROW_REDUCE(mx, fmax, row)
            const float mu = mx == -INFINITY ? 0.0f : mx;
            const float alpha = EA_EXP2(m[a] - mu);
            m[a] = mx;
            float ls = 0.0f;
            _Pragma("unroll") for (int c = 0; c < FK_TN; c++)
            {
                const float p = EA_EXP2(s[a][c] - mu);
                ls += p;
                Pt[(qc + c * FK_QC) * FK_PTP + row] = p;
            }
            l[a] = fma(l[a], alpha, ls);
            if (qc == 0)
                As[row] = alpha;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#if FK_PF
        if (tn < t_end) { /* the next K tile travels while P.V is computed */
            FK_FETCH(kreg, kb, P.k, tn, par ^ 1)
        }
#endif

        /* O = O * alpha + P V */
        {
            float al[FK_PM];
            _Pragma("unroll") for (int a = 0; a < FK_PM; a++) al[a] = As[pr * FK_PM + a];
            bool keep = true; /* the row maxima did not move: nothing to rescale (common after a few tiles) */
            _Pragma("unroll") for (int a = 0; a < FK_PM; a++) keep = keep && al[a] == 1.0f;
            if (!keep) {
                _Pragma("unroll") for (int a = 0; a < FK_PM; a++)
                {
                    _Pragma("unroll") for (int e = 0; e < FK_PD4; e++) o[a][e] *= al[a];
                }
            }
        }
        __local const float *pp = Pt + pr * FK_PM;
        __local const float4 *vp = KVs + pc;
        EA_PRAGMA(unroll FK_UPV) for (int c = 0; c < FK_BN; c++)
        {
            float pa[FK_PM];
#if FK_PM % 4 == 0
            _Pragma("unroll") for (int a = 0; a < FK_PM; a += 4)
            {
                const float4 x = vload4(0, pp + c * FK_PTP + a);
                pa[a] = x.x;
                pa[a + 1] = x.y;
                pa[a + 2] = x.z;
                pa[a + 3] = x.w;
            }
#else
            _Pragma("unroll") for (int a = 0; a < FK_PM; a++) pa[a] = pp[c * FK_PTP + a];
#endif
            float4 vv[FK_PD4];
            _Pragma("unroll") for (int e = 0; e < FK_PD4; e++) vv[e] = vp[c * FK_DP4 + e * FK_PC];
            _Pragma("unroll") for (int a = 0; a < FK_PM; a++)
            {
                _Pragma("unroll") for (int e = 0; e < FK_PD4; e++) o[a][e] = fma((float4)(pa[a]), vv[e], o[a][e]);
            }
        }
        t = tn;
    }

    /* row sums (the parts of the score work-items) and maxima to the output work-items */
    barrier(CLK_LOCAL_MEM_FENCE);
    _Pragma("unroll") for (int a = 0; a < FK_TM; a++)
    {
        const int row = qr + a * FK_QR;
        Pm[row * FK_QC + qc] = l[a];
        if (qc == 0)
            As[row] = m[a];
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    _Pragma("unroll") for (int a = 0; a < FK_PM; a++)
    {
        const int row = pr * FK_PM + a, rr = r0 + row;
        if (rr >= R)
            continue;
        float lsum = 0.0f;
        FK_ROW_REDUCE(lsum, FK_ADD, row)
        const long h = (long)hkv * group + rr % group, i = P.i0 + rr / group;
        const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
        if (P.nsplit == 1) {
            const long base = P.o.off + b * P.o.sb + h * P.o.sh + i * P.o.sn;
            _Pragma("unroll") for (int e = 0; e < FK_PD4; e++)
            {
                const int d = 4 * (pc + e * FK_PC);
                if (d < P.D)
                    ea_st4(ob, base + d, P.o_dt, o[a][e] * inv);
            }
            if (pc == 0 && P.has_lse)
                lseb[P.lse.off + b * P.lse.sb + h * P.lse.sh + i * P.lse.sn] = ea_lse(As[row], lsum);
        } else {
            /* partial row (bl, head within the launch, query within the launch), split s: the normalised
             * output, the row max (log2 units) and the row sum */
            const long prow = ((long)bl * P.nh * group + (long)hl * group + rr % group) * P.ni + rr / group;
            const long ent = prow * P.nsplit + split;
            _Pragma("unroll") for (int e = 0; e < FK_PD4; e++)
            {
                const int d = 4 * (pc + e * FK_PC);
                if (d < P.D)
                    vstore4(o[a][e] * inv, 0, wsb + P.ws_off + ent * P.D + d);
            }
            if (pc == 0) { /* max and sum apart: with a huge max, m + log(l) would lose l */
                wsb[P.ws_lse_off + 2 * ent] = As[row];
                wsb[P.ws_lse_off + 2 * ent + 1] = lsum;
            }
        }
    }
}

#undef FK_QC
#undef FK_QR
#undef FK_NT
#undef FK_PR
#undef FK_PC
#undef FK_D4
#undef FK_PD4
#undef FK_DP4
#undef FK_PTP
#undef FK_NLD
#undef FK_UQK
#undef FK_UPV
#undef FK_ADD
#undef FK_ROW_REDUCE
#undef FK_PF
#undef FK_QK
#undef FK_QP
#undef FK_QLOAD
#undef FK_FETCH
#undef FK_STORE
#undef FK_NPG
#undef FK_ROWV
#undef FK_VAT
#undef FK_ROW_OF
#undef FK_ROWS_GET
#undef FK_ROWS_PUT
#undef FK_ROWS
#undef FK_NEXT
