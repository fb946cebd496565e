/* Kernels that do not depend on the head dim: split-KV combine, KV-cache append (RoPE on the keys) and
 * read-back conversion, NaN/Inf scan, the unfused path's gather / softmax / store, and the FP32 FMA
 * probe for edgebench's ceiling. */

/* Merges nsplit partial rows (normalised output, row max in log2 units, row sum) into out and lse. Global size:
 * (D/4, nb * nh * group * ni); row index as written by the fused kernel. */
__kernel void ea_combine(__global const float *wsb, __global uchar *ob, __global float *lseb, const ea_attn_p P)
{
    const int d4 = (int)get_global_id(0);
    const long row = (long)get_global_id(1);
    const int heads = P.nh * P.group;
    const int il = (int)(row % P.ni);
    const int hq = (int)((row / P.ni) % heads);
    const long bl = row / ((long)P.ni * heads);
    const long b = P.b0 + bl, h = (long)P.h0 * P.group + hq, i = P.i0 + il;
    if (i >= P.nq[bl]) /* past this sequence's queries (ragged decode): not written */
        return;
    const long ent0 = row * P.nsplit;
    /* split s left (m_s, l_s): max in log2 units and sum of its visible keys; weight l_s * 2^(m_s - M) */
    __global const float *ml = wsb + P.ws_lse_off + 2 * ent0;
    float mx = -INFINITY;
    for (int s = 0; s < P.nsplit; s++)
        if (ml[2 * s + 1] > 0.0f)
            mx = fmax(mx, ml[2 * s]);
    float4 acc = (float4)(0.0f);
    float wsum = 0.0f;
    if (mx != -INFINITY) {
        for (int s = 0; s < P.nsplit; s++) {
            const float l = ml[2 * s + 1];
            if (l > 0.0f) {
                const float w = l * exp2(ml[2 * s] - mx);
                wsum += w;
                acc = fma((float4)(w), vload4(0, wsb + P.ws_off + (ent0 + s) * P.D + 4 * d4), acc);
            }
        }
        acc /= wsum;
    }
    ea_st4(ob, P.o.off + b * P.o.sb + h * P.o.sh + i * P.o.sn + 4 * d4, P.o_dt, acc);
    if (d4 == 0 && P.has_lse)
        lseb[P.lse.off + b * P.lse.sb + h * P.lse.sh + i * P.lse.sn] = ea_lse(mx, wsum); /* wsum 0: -inf */
}

/* Rows to append, per sequence bl of the launch (source batch index b0 + bl): rows [r0, n) of the
 * source go to cache sequence dseq[bl], slot sbase + (slot0 + r) mod ring (a plain cache: sbase 0, ring
 * cap; a sinks cache writes its sinks rows with sbase 0 and its ring rows with sbase = sinks, ring = the
 * ring's width, in separate launches). wk / wv: K / V written here
 * (a host source of the cache dtype goes straight into the ring instead). With rope_style set, key row
 * r is rotated by the angles of table row tab0[bl] + r - r0 (rope_dim floats at rope_off of tab).
 * A paged cache (page_shift > 0): the slot's row lies in page tab[b0 + bl][slot >> page_shift] (int
 * entries, pt_pitch per batch row, at int offset pt_off of tab) as [heads][page][D]. */
typedef struct ea_rows_p {
    ea_view k, v;
    long kd_off, vd_off, rope_off;
    long pt_off, page_elems;
    int k_dt, v_dt, cache_dt, heads; /* K and V sources may differ in dtype */
    int cap, D, b0, h0;
    int nh, wk, wv, rope_style;
    int rope_dim, page_shift, pt_pitch, sbase;
    int ring, pad_;
    int r0[EA_SEQ_MAX];
    int n[EA_SEQ_MAX];
    int slot0[EA_SEQ_MAX];
    int dseq[EA_SEQ_MAX];
    int tab0[EA_SEQ_MAX];
} ea_rows_p;

/* Global size: (D/4, rows, nb * nh), row r = r0[bl] + global id 1; heads h0 .. h0+nh-1 of a cache with
 * `heads` heads per sequence. */
__kernel void ea_kv_write(__global const uchar *ks, __global const uchar *vs, __global uchar *kd, __global uchar *vd,
                          __global const float *tab, const ea_rows_p P)
{
    const int d4 = (int)get_global_id(0), rr = (int)get_global_id(1), bh = (int)get_global_id(2);
    const int bl = bh / P.nh, h = P.h0 + bh % P.nh;
    const int r = P.r0[bl] + rr;
    if (r >= P.n[bl])
        return;
    const long b = P.b0 + bl, seq = P.dseq[bl];
    const long slot = P.sbase + (P.slot0[bl] + (long)r) % P.ring;
    const long dst = (P.page_shift ? ea_page_row(tab, P.pt_off + (long)(P.b0 + bl) * P.pt_pitch, (int)slot, P.page_shift,
                                                 P.page_elems, (long)P.D << P.page_shift, P.D, h)
                                   : ((seq * P.heads + h) * P.cap + slot) * P.D) +
                     4 * d4;
    if (P.wk) {
        const long row = P.k.off + b * P.k.sb + h * P.k.sh + r * P.k.sn;
        float4 x = ea_ld4(ks, row + 4 * d4, P.k_dt);
        if (P.rope_style)
            x = ea_rope4(x, ks, row, P.k_dt, 4 * d4, P.rope_style, P.rope_dim,
                         tab + P.rope_off + (long)(P.tab0[bl] + rr) * P.rope_dim);
        ea_st4(kd, P.kd_off + dst, P.cache_dt, x);
    }
    if (P.wv)
        ea_st4(vd, P.vd_off + dst, P.cache_dt, ea_ld4(vs, P.v.off + b * P.v.sb + h * P.v.sh + r * P.v.sn + 4 * d4, P.v_dt));
}

/* Rows of a view converted to another dtype (kv_read): element (h, n, d) of S in s_dt to T in t_dt.
 * Global size (D/4, N, H). */
__kernel void ea_convert(__global const uchar *src, __global uchar *dst, const ea_view S, const ea_view T, int s_dt,
                         int t_dt)
{
    const long d4 = get_global_id(0), n = get_global_id(1), h = get_global_id(2);
    ea_st4(dst, T.off + h * T.sh + n * T.sn + 4 * d4, t_dt, ea_ld4(src, S.off + h * S.sh + n * S.sn + 4 * d4, s_dt));
}

/* Sets *flag when an element is NaN or +Inf (or -Inf unless neg_inf_ok). Global size: (H*N, B). */
__kernel void ea_finite(__global const uchar *t, const ea_view V, int dt, int H, int N, int D, int neg_inf_ok,
                        __global uint *flag, long flag_off)
{
    const long hn = (long)get_global_id(0), b = (long)get_global_id(1);
    if (hn >= (long)H * N)
        return;
    const long base = V.off + b * V.sb + (hn / N) * V.sh + (hn % N) * V.sn;
    bool bad = false;
    for (int d = 0; d < D; d++) {
        const float x = ea_ld1(t, base + d, dt);
        bad = bad || isnan(x) || (isinf(x) && !(neg_inf_ok && x < 0.0f));
    }
    if (bad)
        flag[flag_off] = 1u;
}

/* ---- unfused path: F32 staging of one (sequence, KV head) and a block of query rows */

/* Q rows of the group, head-major (row g * ni + il), rotated (RoPE, rows below nq) and scaled:
 * dst[row * D + d]; the RoPE table lives in the same buffer as dst. Global (D/4, group*ni). */
__kernel void ea_gather_q(__global const uchar *qb, __global float *dst, long dst_off, const ea_attn_p P, int bl, int hl)
{
    const int d4 = (int)get_global_id(0), row = (int)get_global_id(1);
    const long g = row / P.ni, il = row % P.ni;
    const long b = P.b0 + bl, h = (long)(P.h0 + hl) * P.group + g, i = P.i0 + il;
    const long at = P.q.off + b * P.q.sb + h * P.q.sh + i * P.q.sn;
    float4 x = ea_ld4(qb, at + 4 * d4, P.q_dt);
    if (P.rope_style && i < P.nq[bl])
        x = ea_rope4(x, qb, at, P.q_dt, 4 * d4, P.rope_style, P.rope_dim,
                     dst + P.rope_off + (long)(P.tab0[bl] + (int)il) * P.rope_dim);
    vstore4(x * P.scale, 0, dst + dst_off + (long)row * P.D + 4 * d4);
}

/* Keys 0..kv_len-1 in logical order (ring resolved, pages looked up): dst[j * D + d]; the page tables
 * live in the same buffer as dst. Global (D/4, kv_len). */
__kernel void ea_gather_kv(__global const uchar *src, __global float *dst, long dst_off, const ea_view V,
                           const ea_attn_p P, int bl, int hl)
{
    const int d4 = (int)get_global_id(0), j = (int)get_global_id(1);
    const long b = P.kv_b[bl], hkv = P.h0 + hl;
    const long slot = ea_slot(j, P.slot0[bl], P.sinks, P.ring_cap);
    const long row = P.page_shift ? V.off + hkv * V.sh +
                                        (long)ea_pool_row((__global const int *)dst + P.pt_off + (long)(P.b0 + bl) * P.pt_pitch,
                                                          (int)slot, P.page_shift, P.page_units, P.row_units) * V.sn
                                  : V.off + b * V.sb + hkv * V.sh + slot * V.sn;
    vstore4(ea_ld4(src, row + 4 * d4, P.kv_dt), 0, dst + dst_off + (long)j * P.D + 4 * d4);
}

/* Scores S[row][0..kv_len) (row = g * ni + il, pitch ld) -> softcap, bias, mask, softmax in place;
 * lse[row]. One work-group of EA_SM_WG work-items per row. */
#define EA_SM_WG 64
__kernel __attribute__((reqd_work_group_size(EA_SM_WG, 1, 1))) void ea_softmax(
    __global float *S, long s_off, long ld, __global const float *biasb, __global float *lse_tmp, long lse_off,
    const ea_attn_p P, int bl, int hl)
{
    __local float red[EA_SM_WG];
    const int tid = (int)get_local_id(0), row = (int)get_group_id(0);
    const int g = row / P.ni, il = row % P.ni;
    const long b = P.b0 + bl, h = (long)(P.h0 + hl) * P.group + g, i = P.i0 + il;
    const int kv_len = P.kv_len[bl];
    const int qo = kv_len - P.nq[bl] + (int)i;
    __global float *s = S + s_off + (long)row * ld;
    /* a block mask's bitmap row of this query's block (the work pool holds it beside S) */
    __global const uint *bmp = (__global const uint *)S + P.bm_off + b * P.bm_sb + (long)(P.h0 + hl) * P.bm_sh;
    const int qb = P.bm_bq > 0 ? (int)(i / P.bm_bq) : 0;
    float mx = -INFINITY;
    for (int j = tid; j < kv_len; j += EA_SM_WG) {
        float x = s[j];
        if (P.softcap > 0.0f)
            x = P.softcap * tanh(x / P.softcap);
        const bool vis = ea_visible(j, qo, P.causal, P.wl, P.wr) && (P.bm_bq == 0 || ea_bm_bit(bmp, P.bm_words, P.bm_shift, qb, j));
        if (vis && P.has_bias)
            x += biasb[P.bias.off + b * P.bias.sb + h * P.bias.sh + i * P.bias.sn + j];
        x = vis ? x : -INFINITY;
        s[j] = x;
        mx = fmax(mx, x);
    }
    red[tid] = mx;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = EA_SM_WG / 2; w > 0; w /= 2) {
        if (tid < w)
            red[tid] = fmax(red[tid], red[tid + w]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    mx = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    const float mu = mx == -INFINITY ? 0.0f : mx;
    float sum = 0.0f;
    for (int j = tid; j < kv_len; j += EA_SM_WG) {
        const float p = exp(s[j] - mu);
        s[j] = p;
        sum += p;
    }
    red[tid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = EA_SM_WG / 2; w > 0; w /= 2) {
        if (tid < w)
            red[tid] += red[tid + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    sum = red[0];
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int j = tid; j < kv_len; j += EA_SM_WG)
        s[j] *= inv;
    if (tid == 0)
        lse_tmp[lse_off + row] = sum > 0.0f ? mu + log(sum) : -INFINITY;
}

/* O rows (row = g * ni + il, pitch D) -> out and lse. Global (D/4, group*ni). empty: kv_len 0. */
__kernel void ea_store_rows(__global const float *Of, long of_off, __global const float *lse_tmp, long lse_off,
                            __global uchar *ob, __global float *lseb, const ea_attn_p P, int bl, int hl, int empty)
{
    const int d4 = (int)get_global_id(0), row = (int)get_global_id(1);
    const long g = row / P.ni, il = row % P.ni;
    const long b = P.b0 + bl, h = (long)(P.h0 + hl) * P.group + g, i = P.i0 + il;
    if (i >= P.nq[bl]) /* past this sequence's queries (ragged decode): not written */
        return;
    const float4 x = empty ? (float4)(0.0f) : vload4(0, Of + of_off + (long)row * P.D + 4 * d4);
    ea_st4(ob, P.o.off + b * P.o.sb + h * P.o.sh + i * P.o.sn + 4 * d4, P.o_dt, x);
    if (d4 == 0 && P.has_lse)
        lseb[P.lse.off + b * P.lse.sb + h * P.lse.sh + i * P.lse.sn] = empty ? -INFINITY : lse_tmp[lse_off + row];
}

/* FP32 FMA throughput: four independent 8-wide chains per work-item (explicit vectors for CPU
 * drivers, 32 independent scalars for GPUs), registers only. 64 * iters FLOP per work-item. */
__kernel void ea_fma_peak(__global float *sink, int iters, float seed)
{
    const float gid = (float)get_global_id(0);
    const float8 mb = (float8)(0.999999f - seed * 1e-12f), ad = (float8)(seed * 1e-7f);
    const float8 base = (float8)(0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f) + gid;
    float8 a0 = base, a1 = base + 8.0f, a2 = base + 16.0f, a3 = base + 24.0f;
    for (int it = 0; it < iters; it++) {
        a0 = fma(a0, mb, ad);
        a1 = fma(a1, mb, ad);
        a2 = fma(a2, mb, ad);
        a3 = fma(a3, mb, ad);
    }
    const float8 r8 = (a0 + a1) + (a2 + a3);
    const float r = ((r8.s0 + r8.s1) + (r8.s2 + r8.s3)) + ((r8.s4 + r8.s5) + (r8.s6 + r8.s7));
    if (r == 1234.5678f)
        sink[get_global_id(0)] = r;
}

/* ---- top-k decode (config.kv_summary_block): block summaries, scores, selection */

/* Folds the key rows an append just stored (rows [r0, n) of sequence bl at slots slot0 + r of a cache
 * without a window) into the summaries of their blocks: per channel the min and max over the block's
 * rows, the block's first slot starting them afresh (core/kvcache.c's rule, on the values as stored).
 * summ: [layers][max_batch][mheads][nsblk][2][mdim] floats, s_off the layer's first. Global size (D, nh,
 * nb): one work-item per channel, head and sequence, walking its rows in order. */
__kernel void ea_kv_summ(__global const uchar *kd, __global float *summ, const ea_rows_p P, long s_off, int sblk,
                         int nsblk, int mheads, int mdim)
{
    const int d = (int)get_global_id(0), h = P.h0 + (int)get_global_id(1), bl = (int)get_global_id(2);
    const int r0 = P.r0[bl], r1 = P.n[bl];
    if (d >= P.D || r0 >= r1)
        return;
    const long seq = P.dseq[bl];
    __global float *sb = summ + s_off + (seq * mheads + h) * (long)nsblk * 2 * mdim;
    const long row0 = P.kd_off + (seq * P.heads + h) * (long)P.cap * P.D + d;
    long blk = -1;
    float mn = 0.0f, mx = 0.0f;
    for (int r = r0; r < r1; r++) {
        const long slot = P.sbase + (P.slot0[bl] + (long)r) % P.ring;
        const long bk = slot / sblk;
        const bool first = slot % sblk == 0;
        if (bk != blk) {
            if (blk >= 0) {
                sb[blk * 2 * mdim + d] = mn;
                sb[blk * 2 * mdim + mdim + d] = mx;
            }
            blk = bk;
            if (!first) {
                mn = sb[bk * 2 * mdim + d];
                mx = sb[bk * 2 * mdim + mdim + d];
            }
        }
        const float x = ea_ld1(kd, row0 + slot * P.D, P.cache_dt);
        mn = first || x < mn ? x : mn;
        mx = first || x > mx ? x : mx;
    }
    if (blk >= 0) {
        sb[blk * 2 * mdim + d] = mn;
        sb[blk * 2 * mdim + mdim + d] = mx;
    }
}

/* Score of block k of (sequence bl, KV head h0 + hl): the largest over the group's query heads of
 * sum_d max(q_d min_d, q_d max_d) = sum_d min(q_d, 0) min_d + sum_d max(q_d, 0) max_d (the two sums
 * apart, as the CPU's selection), the query rotated at its position; a NaN bound and the first and
 * newest blocks score +inf (always kept). One query per sequence (i0). sc: [max_batch][mheads][nsblk]
 * at float offset sc_off of ws. Global size (blocks, nh, nb). */
__kernel void ea_topk_score(__global const uchar *qb, __global const float *summ, __global float *ws, const ea_attn_p P,
                            long s_off, int sblk, int nsblk, int mheads, int mdim, long sc_off)
{
    const int k = (int)get_global_id(0), hl = (int)get_global_id(1), bl = (int)get_global_id(2);
    const int nblk = (P.kv_len[bl] + sblk - 1) / sblk;
    if (k >= nblk || P.nq[bl] <= P.i0)
        return;
    const long b = P.b0 + bl, seq = P.kv_b[bl], hkv = P.h0 + hl;
    __global const float *sm = summ + s_off + ((seq * mheads + hkv) * (long)nsblk + k) * 2 * mdim;
    float best = -INFINITY;
    for (int g = 0; g < P.group; g++) {
        const long at = P.q.off + b * P.q.sb + (hkv * P.group + g) * P.q.sh + (long)P.i0 * P.q.sn;
        float lo = 0.0f, hi = 0.0f;
        for (int d4 = 0; d4 < P.D / 4; d4++) {
            float4 x = ea_ld4(qb, at + 4 * d4, P.q_dt);
            if (P.rope_style)
                x = ea_rope4(x, qb, at, P.q_dt, 4 * d4, P.rope_style, P.rope_dim, ws + P.rope_off + (long)P.tab0[bl] * P.rope_dim);
            const float4 mn = vload4(0, sm + 4 * d4), mx = vload4(0, sm + mdim + 4 * d4);
            const float4 ql = fmin(x, (float4)(0.0f)), qh = fmax(x, (float4)(0.0f));
            lo = fma(ql.x, mn.x, lo);
            lo = fma(ql.y, mn.y, lo);
            lo = fma(ql.z, mn.z, lo);
            lo = fma(ql.w, mn.w, lo);
            hi = fma(qh.x, mx.x, hi);
            hi = fma(qh.y, mx.y, hi);
            hi = fma(qh.z, mx.z, hi);
            hi = fma(qh.w, mx.w, hi);
        }
        const float v = lo + hi;
        best = v > best || v != v ? v : best;
    }
    if (best != best || k == 0 || k == nblk - 1)
        best = INFINITY;
    ws[sc_off + (b * mheads + hkv) * nsblk + k] = best;
}

/* The selection of (sequence bl, KV head h0 + hl): the keep highest-scoring blocks (ties to the lower
 * block), every block when keep >= their count, as bits of the decode's mask (ea_attn_p bm_*: the
 * pattern of batch row b0 + bl and KV head, one row). A block's rank is counted against every other
 * score, so no sort and no scratch beyond the scores. Global size (EA_TK_WG, nh, nb), work-groups of
 * EA_TK_WG. */
#define EA_TK_WG 256
__kernel __attribute__((reqd_work_group_size(EA_TK_WG, 1, 1))) void ea_topk_select(
    __global float *ws, const ea_attn_p P, int sblk, int nsblk, int mheads, long sc_off, int keep)
{
    const int lid = (int)get_local_id(0), hl = (int)get_global_id(1), bl = (int)get_global_id(2);
    const long b = P.b0 + bl, hkv = P.h0 + hl;
    const int nblk = (P.kv_len[bl] + sblk - 1) / sblk;
    __global uint *bits = (__global uint *)ws + P.bm_off + b * P.bm_sb + hkv * P.bm_sh;
    __global const float *sc = ws + sc_off + (b * mheads + hkv) * nsblk;
    for (int w = lid; w < P.bm_words; w += EA_TK_WG)
        bits[w] = 0u;
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (P.nq[bl] <= P.i0)
        return;
    for (int k = lid; k < nblk; k += EA_TK_WG) {
        bool sel = keep >= nblk;
        if (!sel) {
            const float s = sc[k];
            int rank = 0;
            for (int j = 0; j < nblk && rank < keep; j++) {
                const float x = sc[j];
                rank += x > s || (x == s && j < k);
            }
            sel = rank < keep;
        }
        if (sel)
            atomic_or(&bits[k >> 5], 1u << (k & 31));
    }
}

/* ---- Linformer: K' = E K, V' = F V */

/* One (sequence, KV head): o[r][d] = sum_j P[r][j] X[j][d], P = E or F ([k][N] through view PV: row r at
 * PV.off + r * PV.sn, j contiguous), X = K or V ([N][D] through XV: row j at XV.off + j * XV.sn), o F32
 * rows of D at o_off. A work-group of EA_LR_T x EA_LR_T work-items computes a block of EA_LR_B x EA_LR_B
 * outputs, each work-item EA_LR_R x EA_LR_R of them (rows ty + T i, columns tx + T j: neighbours in
 * local memory), the keys in steps of EA_LR_T through local memory, FP32 sums.
 * Global (ceil(D / B) T, ceil(k / B) T). */
#define EA_LR_T 16
#define EA_LR_R 4
#define EA_LR_B (EA_LR_T * EA_LR_R)
__kernel __attribute__((reqd_work_group_size(EA_LR_T, EA_LR_T, 1))) void ea_lr_proj(
    __global const uchar *pb, const ea_view PV, int p_dt, __global const uchar *xb, const ea_view XV, int x_dt,
    __global float *ob, long o_off, int k, int N, int D)
{
    __local float sp[EA_LR_B][EA_LR_T + 1], sx[EA_LR_T][EA_LR_B + 1];
    const int tx = (int)get_local_id(0), ty = (int)get_local_id(1);
    const int r0 = (int)get_group_id(1) * EA_LR_B, d0 = (int)get_group_id(0) * EA_LR_B;
    float acc[EA_LR_R][EA_LR_R];
    for (int i = 0; i < EA_LR_R; i++)
        for (int j = 0; j < EA_LR_R; j++)
            acc[i][j] = 0.0f;
    for (int j0 = 0; j0 < N; j0 += EA_LR_T) {
        for (int i = 0; i < EA_LR_R; i++) { /* P rows r0 + ty + T i, key j0 + tx; X key j0 + ty, column d0 + tx + T i */
            const int pr = r0 + ty + EA_LR_T * i, pj = j0 + tx, xj = j0 + ty, xd = d0 + tx + EA_LR_T * i;
            sp[ty + EA_LR_T * i][tx] = pr < k && pj < N ? ea_ld1(pb, PV.off + (long)pr * PV.sn + pj, p_dt) : 0.0f;
            sx[ty][tx + EA_LR_T * i] = xj < N && xd < D ? ea_ld1(xb, XV.off + (long)xj * XV.sn + xd, x_dt) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int t = 0; t < EA_LR_T; t++) {
            float pa[EA_LR_R], xa[EA_LR_R];
            for (int i = 0; i < EA_LR_R; i++) {
                pa[i] = sp[ty + EA_LR_T * i][t];
                xa[i] = sx[t][tx + EA_LR_T * i];
            }
            for (int i = 0; i < EA_LR_R; i++)
                for (int j = 0; j < EA_LR_R; j++)
                    acc[i][j] = fma(pa[i], xa[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < EA_LR_R; i++)
        for (int j = 0; j < EA_LR_R; j++) {
            const int r = r0 + ty + EA_LR_T * i, d = d0 + tx + EA_LR_T * j;
            if (r < k && d < D)
                ob[o_off + (long)r * D + d] = acc[i][j];
        }
}
