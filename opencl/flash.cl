/* Fused flash attention, instantiated once per tile shape: the host prepends
 *   #define FK_NAME <kernel name>, FK_BM (query rows per work-group), FK_TM (rows per work-item),
 *   FK_BN (keys per tile, a multiple of 4), FK_TN (key columns per work-item), and the program-wide
 * EA_DMAX (largest head dim served) and #undefs them afterwards. Work-item (rt, ct) of the
 * NT = (BM/TM) * (BN/TN) work-items owns rows rt*TM .. rt*TM+TM-1 of the block, key columns
 * ct + b*CT (b < TN) of each tile for the scores, and
 * dims 4*(ct + e*CT) .. +3 (e < DMAX/4/CT) of the output. Q, the K or V tile and the probabilities
 * go through local memory; statistics are FP32, the online softmax rescales per tile.
 *
 * Rows of a block are the query heads of one KV head interleaved (row r: query r / group, head
 * r % group), so every query head of a GQA group shares each K/V tile. The key range a block can see
 * (causal, window, kv_len) is computed once: tiles outside it are never loaded. A work-group with
 * split index s of nsplit handles its share of those tiles and writes a partial result (normalised
 * output and log-sum-exp) for the combine kernel; with nsplit == 1 it writes out and lse itself. */
#define FK_CT (FK_BN / FK_TN)
#define FK_RT (FK_BM / FK_TM)
#define FK_NT (FK_RT * FK_CT)
#define FK_DP4 (EA_DMAX / 4 + 1)   /* row pitch of Q/K/V tiles in float4: +1 shifts banks */
#define FK_BNP (FK_BN + 4)         /* row pitch of the probability tile in floats */
#define FK_DV4 (EA_DMAX / 4 / FK_CT)
#define FK_NLD ((FK_BN * (EA_DMAX / 4) + FK_NT - 1) / FK_NT) /* float4 loads per work-item per tile */
#ifdef EA_NO_PREFETCH /* the default; EDGEATTN_OPENCL_PREFETCH=1 turns the prefetch on */
#define FK_PREFETCH 0
#else
#define FK_PREFETCH (FK_NLD <= 16) /* K/V tiles read into registers while the previous phase computes */
#endif

/* This work-item's share of the K or V tile starting at key jb, into registers. */
#define FK_LOAD_REGS(REG, BUF, VIEW, JB)                                                                         \
    for (int u = 0; u < FK_NLD; u++) {                                                                           \
        const int e = tid + u * FK_NT;                                                                           \
        const int c = e / (EA_DMAX / 4), d4 = e % (EA_DMAX / 4), j = (JB) + c;                                   \
        REG[u] = (float4)(0.0f);                                                                                 \
        if (e < FK_BN * (EA_DMAX / 4) && j <= jhi && d4 < D4) {                                                  \
            int slot = slot0 + j;                                                                                \
            if (P.ring_cap > 0 && slot >= P.ring_cap)                                                            \
                slot -= P.ring_cap;                                                                              \
            REG[u] = ea_ld4(BUF, VIEW.off + b * VIEW.sb + (long)hkv * VIEW.sh + (long)slot * VIEW.sn + 4 * d4,   \
                            P.kv_dt);                                                                            \
        }                                                                                                        \
    }
#define FK_STORE_REGS(REG)                                                                                       \
    for (int u = 0; u < FK_NLD; u++) {                                                                           \
        const int e = tid + u * FK_NT;                                                                           \
        if (e < FK_BN * (EA_DMAX / 4))                                                                           \
            KVs[(e / (EA_DMAX / 4)) * FK_DP4 + e % (EA_DMAX / 4)] = REG[u];                                      \
    }

__kernel __attribute__((reqd_work_group_size(FK_NT, 1, 1))) void FK_NAME(
    __global const uchar *qb, __global const uchar *kb, __global const uchar *vb, __global uchar *ob,
    __global const float *biasb, __global float *lseb, __global float *wsb, const ea_attn_p P)
{
    __local float4 Qs[FK_BM * FK_DP4];
    __local float4 KVs[FK_BN * FK_DP4];
    __local float Ps[FK_BM * FK_BNP];
    __local float Pm[FK_BM * FK_CT];

    const int tid = (int)get_local_id(0);
    const int rt = tid / FK_CT, ct = tid % FK_CT;
    const int r0 = (int)get_group_id(0) * FK_BM;
    const int hs = (int)get_group_id(1);
    const int split = hs % P.nsplit, hl = hs / P.nsplit;
    const int bl = (int)get_group_id(2);
    const long b = P.b0 + bl;
    const int hkv = P.h0 + hl;
    const int group = P.group, R = group * P.ni;
    const int kv_len = P.kv_len[bl], slot0 = P.slot0[bl];
    const int D4 = P.D / 4;
    const int qo0 = kv_len - P.nq_total + P.i0; /* qo of local query 0 */

    /* Q block, pre-scaled; zero beyond the rows and the head dim */
    for (int e = tid; e < FK_BM * (EA_DMAX / 4); e += FK_NT) {
        const int r = e / (EA_DMAX / 4), d4 = e % (EA_DMAX / 4), rr = r0 + r;
        float4 x = (float4)(0.0f);
        if (rr < R && d4 < D4) {
            const long h = (long)hkv * group + rr % group, i = P.i0 + rr / group;
            x = ea_ld4(qb, P.q.off + b * P.q.sb + h * P.q.sh + i * P.q.sn + 4 * d4, P.q_dt) * P.scale;
        }
        Qs[r * FK_DP4 + d4] = x;
    }

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
    const int t_begin = split * tps, t_end = min(ntile, t_begin + tps);

    float m[FK_TM], l[FK_TM];
    float4 o[FK_TM][FK_DV4];
    for (int a = 0; a < FK_TM; a++) {
        m[a] = -INFINITY;
        l[a] = 0.0f;
        for (int e = 0; e < FK_DV4; e++)
            o[a][e] = (float4)(0.0f);
    }

#if FK_PREFETCH
    float4 kreg[FK_NLD], vreg[FK_NLD];
    if (t_begin < t_end) {
        FK_LOAD_REGS(kreg, kb, P.k, jlo + t_begin * FK_BN)
    }
#endif
    for (int t = t_begin; t < t_end; t++) {
        const int j0 = jlo + t * FK_BN;
        barrier(CLK_LOCAL_MEM_FENCE);
#if FK_PREFETCH
        FK_STORE_REGS(kreg)
#else
        for (int e = tid; e < FK_BN * (EA_DMAX / 4); e += FK_NT) {
            const int c = e / (EA_DMAX / 4), d4 = e % (EA_DMAX / 4), j = j0 + c;
            float4 x = (float4)(0.0f);
            if (j <= jhi && d4 < D4) {
                int slot = slot0 + j;
                if (P.ring_cap > 0 && slot >= P.ring_cap)
                    slot -= P.ring_cap;
                x = ea_ld4(kb, P.k.off + b * P.k.sb + (long)hkv * P.k.sh + (long)slot * P.k.sn + 4 * d4, P.kv_dt);
            }
            KVs[c * FK_DP4 + d4] = x;
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);
#if FK_PREFETCH
        FK_LOAD_REGS(vreg, vb, P.v, j0)
#endif

        float s[FK_TM][FK_TN];
        for (int a = 0; a < FK_TM; a++)
            for (int c = 0; c < FK_TN; c++)
                s[a][c] = 0.0f;
        for (int d4 = 0; d4 < D4; d4++) {
            float4 kk[FK_TN];
            for (int c = 0; c < FK_TN; c++)
                kk[c] = KVs[(ct + c * FK_CT) * FK_DP4 + d4];
            for (int a = 0; a < FK_TM; a++) {
                const float4 qq = Qs[(rt * FK_TM + a) * FK_DP4 + d4];
                for (int c = 0; c < FK_TN; c++)
                    s[a][c] = fma(qq.x, kk[c].x, fma(qq.y, kk[c].y, fma(qq.z, kk[c].z, fma(qq.w, kk[c].w, s[a][c]))));
            }
        }
        const bool full = rows_full && j0 >= jlo_all && j0 + FK_BN - 1 <= jhi_all;
        for (int a = 0; a < FK_TM; a++) {
            const int rr = r0 + rt * FK_TM + a;
            const int qo = qo0 + rr / group;
            const long h = (long)hkv * group + rr % group;
            float pm = -INFINITY;
            for (int c = 0; c < FK_TN; c++) {
                const int j = j0 + ct + c * FK_CT;
                float x = s[a][c];
                if (P.softcap > 0.0f)
                    x = P.softcap * tanh(x / P.softcap);
                const bool vis = full || (rr < R && j <= jhi && ea_visible(j, qo, P.causal, P.wl, P.wr));
                if (vis && P.has_bias)
                    x += biasb[P.bias.off + b * P.bias.sb + h * P.bias.sh + (long)(P.i0 + rr / group) * P.bias.sn + j];
                x = vis ? x : -INFINITY;
                s[a][c] = x;
                pm = fmax(pm, x);
            }
            Pm[(rt * FK_TM + a) * FK_CT + ct] = pm;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* V tile (K is no longer read), new row maxima, probabilities of this work-item's scores */
#if FK_PREFETCH
        FK_STORE_REGS(vreg)
#else
        for (int e = tid; e < FK_BN * (EA_DMAX / 4); e += FK_NT) {
            const int c = e / (EA_DMAX / 4), d4 = e % (EA_DMAX / 4), j = j0 + c;
            float4 x = (float4)(0.0f);
            if (j <= jhi && d4 < D4) {
                int slot = slot0 + j;
                if (P.ring_cap > 0 && slot >= P.ring_cap)
                    slot -= P.ring_cap;
                x = ea_ld4(vb, P.v.off + b * P.v.sb + (long)hkv * P.v.sh + (long)slot * P.v.sn + 4 * d4, P.kv_dt);
            }
            KVs[c * FK_DP4 + d4] = x;
        }
#endif
        float alpha[FK_TM];
        for (int a = 0; a < FK_TM; a++) {
            float mx = m[a];
            for (int c = 0; c < FK_CT; c++)
                mx = fmax(mx, Pm[(rt * FK_TM + a) * FK_CT + c]);
            const float mu = mx == -INFINITY ? 0.0f : mx;
            alpha[a] = exp(m[a] - mu);
            m[a] = mx;
            for (int c = 0; c < FK_TN; c++)
                Ps[(rt * FK_TM + a) * FK_BNP + ct + c * FK_CT] = exp(s[a][c] - mu);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#if FK_PREFETCH
        if (t + 1 < t_end) { /* the next K tile travels while this one's P.V is computed */
            FK_LOAD_REGS(kreg, kb, P.k, j0 + FK_BN)
        }
#endif

        for (int a = 0; a < FK_TM; a++) {
            l[a] *= alpha[a];
            for (int e = 0; e < FK_DV4; e++)
                o[a][e] *= alpha[a];
        }
        for (int c = 0; c < FK_BN; c += 4) {
            float4 pv[FK_TM];
            for (int a = 0; a < FK_TM; a++) {
                pv[a] = vload4(0, Ps + (rt * FK_TM + a) * FK_BNP + c);
                l[a] += (pv[a].x + pv[a].y) + (pv[a].z + pv[a].w);
            }
            for (int e = 0; e < FK_DV4; e++) {
                const int dv = ct + e * FK_CT;
                const float4 v0 = KVs[(c + 0) * FK_DP4 + dv], v1 = KVs[(c + 1) * FK_DP4 + dv];
                const float4 v2 = KVs[(c + 2) * FK_DP4 + dv], v3 = KVs[(c + 3) * FK_DP4 + dv];
                for (int a = 0; a < FK_TM; a++)
                    o[a][e] = fma((float4)(pv[a].w), v3,
                                  fma((float4)(pv[a].z), v2, fma((float4)(pv[a].y), v1, fma((float4)(pv[a].x), v0, o[a][e]))));
            }
        }
    }

    for (int a = 0; a < FK_TM; a++) {
        const int rr = r0 + rt * FK_TM + a;
        if (rr >= R)
            continue;
        const long h = (long)hkv * group + rr % group, i = P.i0 + rr / group;
        const float inv = l[a] > 0.0f ? 1.0f / l[a] : 0.0f;
        const float lse = l[a] > 0.0f ? m[a] + log(l[a]) : -INFINITY;
        if (P.nsplit == 1) {
            const long base = P.o.off + b * P.o.sb + h * P.o.sh + i * P.o.sn;
            for (int e = 0; e < FK_DV4; e++) {
                const int d = 4 * (ct + e * FK_CT);
                if (d < P.D)
                    ea_st4(ob, base + d, P.o_dt, o[a][e] * inv);
            }
            if (ct == 0 && P.has_lse)
                lseb[P.lse.off + b * P.lse.sb + h * P.lse.sh + i * P.lse.sn] = lse;
        } else {
            /* partial row (bl, head within the launch, query within the launch), split s */
            const long row = ((long)bl * P.nh * group + (long)hl * group + rr % group) * P.ni + rr / group;
            const long ent = row * P.nsplit + split;
            for (int e = 0; e < FK_DV4; e++) {
                const int d = 4 * (ct + e * FK_CT);
                if (d < P.D)
                    vstore4(o[a][e] * inv, 0, wsb + P.ws_off + ent * P.D + d);
            }
            if (ct == 0)
                wsb[P.ws_lse_off + ent] = lse;
        }
    }
}

#undef FK_CT
#undef FK_RT
#undef FK_NT
#undef FK_DP4
#undef FK_BNP
#undef FK_DV4
#undef FK_NLD
#undef FK_PREFETCH
#undef FK_LOAD_REGS
#undef FK_STORE_REGS
