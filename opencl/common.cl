/* Shared by every program: element access in any storage dtype (FP32 math), the per-call parameter
 * structs passed by value (their layout is mirrored by opencl/ocl_internal.h: keep them in step). */
#define EA_F32 0
#define EA_F16 1
#define EA_BF16 2
#define EA_SEQ_MAX 16
#define EA_LOG2E 1.4426950408889634f
#define EA_LN2 0.6931471805599453f
#define EA_ROPE_HALF 1 /* = EDGEATTN_ROPE_HALF; EDGEATTN_ROPE_INTERLEAVED otherwise */

/* A strided view: element (b, h, n, d) is at off + b*sb + h*sh + n*sn + d (elements, may broadcast
 * with a stride of 0). */
typedef struct ea_view {
    long off, sb, sh, sn;
} ea_view;

/* One attention launch (fused kernels, combine). Query rows of the launch: b in [b0, b0 + nb),
 * KV heads [h0, h0 + nh), query index i in [i0, i0 + ni). Row r of a KV head's block:
 * i = i0 + r / group, query head = hkv * group + r % group. Sequence bl of the launch has nq[bl]
 * queries (rows i >= nq[bl] are neither computed nor written: ragged decode) and reads K/V at batch
 * index kv_b[bl] (decode: its cache sequence). Key j of sequence b is visible to query i iff
 * j < kv_len[b] and the causal / window rules hold on d = j - (kv_len - nq + i). With rope_style set,
 * query i of sequence bl is rotated by the angles of table row tab0[bl] + i - i0 (rope_dim floats:
 * cos, sin of each pair) at float offset rope_off of the workspace buffer.
 * Paged KV cache (page_shift > 0, decode): K/V slot s of sequence bl lives in page
 * pg = tab[b0 + bl][s >> page_shift] (tab: pt_pitch int entries per batch row at int offset pt_off of
 * the workspace buffer), at element k.off + h * k.sh + row * k.sn with the pool row index
 * row = pg * page_units + (s & (page - 1)) * row_units (ea_pool_row): k.sn is then the unit of a row
 * index (the gcd of a page's elements and a row's, so a pool row index fits an int; k.sb 0; the same
 * page of the V pool holds V). */
typedef struct ea_attn_p {
    ea_view q, k, v, o, bias, lse;
    long ws_off, ws_lse_off, rope_off;
    long pt_off;
    int page_units, row_units;
    int q_dt, kv_dt, o_dt, has_bias;
    int has_lse, nsplit, b0, h0;
    int nh, group, i0, ni;
    int D, ring_cap, causal, wl;
    int wr, rope_style, rope_dim, page_shift;
    int pt_pitch, kv_vec; /* kv_vec: every K/V row element offset a multiple of 4 (EA_BATCH_LOADS) */
    int sinks, bm_bq;     /* sinks: a sinks cache's S (ea_slot); bm_bq: block mask rows per query block (0: none) */
    long bm_off, bm_sb, bm_sh; /* block mask bitmap (ea_bm_*): uint offset in the workspace, pattern strides */
    int bm_words, bm_shift; /* uints per query block's row; log2 of the keys per mask block (64, or top-k's) */
    float scale, softcap;
    int kv_len[EA_SEQ_MAX];
    int slot0[EA_SEQ_MAX];
    int nq[EA_SEQ_MAX];
    int kv_b[EA_SEQ_MAX];
    int tab0[EA_SEQ_MAX];
} ea_attn_p;

float ea_ld1(__global const uchar *p, long i, int dt)
{
    if (dt == EA_F32)
        return ((__global const float *)p)[i];
    if (dt == EA_F16)
        return vload_half(0, (__global const half *)(p + 2 * i)); /* byte arithmetic: no half pointer math */
    return as_float(((uint)((__global const ushort *)p)[i]) << 16);
}

float4 ea_ld4(__global const uchar *p, long i, int dt)
{
    if (dt == EA_F32)
        return vload4(0, (__global const float *)p + i);
    if (dt == EA_F16)
        return vload_half4(0, (__global const half *)(p + 2 * i));
    const uint4 u = convert_uint4(vload4(0, (__global const ushort *)p + i)) << (uint4)16;
    return as_float4(u);
}

/* Four F16 (dt EA_F16) or BF16 values from their bits (element 0 in the low half of r.x). */
float4 ea_bits4(uint2 r, int dt)
{
    if (dt == EA_F16) {
        const uint2 t = r;
        return vload_half4(0, (const __private half *)&t);
    }
    return as_float4((uint4)(r.x << 16, r.x & 0xffff0000u, r.y << 16, r.y & 0xffff0000u));
}

ushort ea_f2bf(float x)
{
    uint u = as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (ushort)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

void ea_st1(__global uchar *p, long i, int dt, float x)
{
    if (dt == EA_F32)
        ((__global float *)p)[i] = x;
    else if (dt == EA_F16)
        vstore_half_rte(x, 0, (__global half *)(p + 2 * i));
    else
        ((__global ushort *)p)[i] = ea_f2bf(x);
}

void ea_st4(__global uchar *p, long i, int dt, float4 x)
{
    if (dt == EA_F32) {
        vstore4(x, 0, (__global float *)p + i);
    } else if (dt == EA_F16) {
        vstore_half4_rte(x, 0, (__global half *)(p + 2 * i));
    } else {
        const ushort4 u = (ushort4)(ea_f2bf(x.x), ea_f2bf(x.y), ea_f2bf(x.z), ea_f2bf(x.w));
        vstore4(u, 0, (__global ushort *)p + i);
    }
}

/* Pool row index of slot `slot` (ea_attn_p): tab holds the page numbers of the slots of a sequence. */
int ea_pool_row(__global const int *tab, int slot, int shift, int page_units, int row_units)
{
    return tab[slot >> shift] * page_units + (slot & ((1 << shift) - 1)) * row_units;
}

/* Element offset of slot `slot`, KV head h, in a paged cache (see ea_attn_p / ea_rows_p): row
 * `tab_row` of the call's page tables (ints at the workspace buffer's int offset tab_row). */
long ea_page_row(__global const float *ws, long tab_row, int slot, int shift, long page_elems, long sh, long sn, long h)
{
    const int pg = ((__global const int *)ws)[tab_row + (slot >> shift)];
    return (long)pg * page_elems + h * sh + (long)(slot & ((1 << shift) - 1)) * sn;
}

/* Slot of held key j (0-based over the keys a sequence holds) of a ring cache: a sinks cache keeps
 * keys j < sinks in slots 0..sinks-1 and the ring of the rest in slots sinks.., starting at ring offset
 * slot0 (the slot of its oldest key, less sinks) and wrapping at ring (its width: cap - sinks). Without
 * sinks this is slot0 + j mod ring; ring 0 (caller tensors): j. */
int ea_slot(int j, int slot0, int sinks, int ring)
{
    if (j < sinks)
        return j;
    int s = slot0 + (j - sinks);
    if (ring > 0 && s >= ring)
        s -= ring;
    return sinks + s;
}

/* Block masks (ea_attn_p bm_*): bm points at a pattern's bitmaps, one row of `words` uints per query
 * block; bit kb of row qb: key block kb (keys kb << shift ..: 64 keys for params.block_mask, a summary
 * block for top-k decode) listed in query block qb. */
bool ea_bm_bit(__global const uint *bm, int words, int shift, int qb, int j)
{
    const int kb = j >> shift;
    return (bm[(long)qb * words + (kb >> 5)] >> (kb & 31)) & 1u;
}

/* Is a key block of keys [j0, j1] listed by any of query blocks [qb0, qb1]? *all: listed by all of them
 * for every key (the mask then masks nothing in the tile). */
bool ea_bm_tile(__global const uint *bm, int words, int shift, int qb0, int qb1, int j0, int j1, bool *all)
{
    bool any = false, every = true;
    for (int kb = j0 >> shift; kb <= (j1 >> shift); kb++)
        for (int qb = qb0; qb <= qb1; qb++) {
            const bool on = (bm[(long)qb * words + (kb >> 5)] >> (kb & 31)) & 1u;
            any = any || on;
            every = every && on;
        }
    *all = every;
    return any;
}

/* The first tile t' >= t (tiles of bn keys from jlo, up to jhi) that the block mask lists for query
 * blocks [qb0, qb1], or t_end. */
int ea_bm_next(__global const uint *bm, int words, int shift, int qb0, int qb1, int t, int t_end, int jlo, int jhi,
               int bn)
{
    bool all;
    for (; t < t_end; t++) {
        const int j0 = jlo + t * bn;
        if (ea_bm_tile(bm, words, shift, qb0, qb1, j0, min(j0 + bn - 1, jhi), &all))
            return t;
    }
    return t_end;
}

/* Is key j visible to the query whose bottom-right offset is qo = kv_len - nq + i? */
bool ea_visible(int j, int qo, int causal, int wl, int wr)
{
    return (!causal || j <= qo) && (wl < 0 || j >= qo - wl) && (wr < 0 || j <= qo + wr);
}

/* Natural-log log-sum-exp of a row from its max m (log2 units) and sum l; -inf for a row that saw no key. */
float ea_lse(float m, float l)
{
    return l > 0.0f ? (m + log2(l)) * EA_LN2 : -INFINITY;
}

/* RoPE of the float4 x = elements d0 .. d0+3 of a row (row: index of its element 0 in p, dtype dt), by
 * the angles cs (cs[2p] = cos, cs[2p+1] = sin of pair p, computed on the host in double). HALF pairs
 * are (p, p + rdim/2), the partner read from the row; INTERLEAVED pairs (2p, 2p+1) lie in x itself. Only
 * the first rdim values rotate. The products are those of core's ea_rope_apply: a*c - b*s, a*s + b*c. */
float4 ea_rope4(float4 x, __global const uchar *p, long row, int dt, int d0, int style, int rdim,
                __global const float *cs)
{
    if (d0 >= rdim)
        return x;
    float v[4] = {x.x, x.y, x.z, x.w}, r[4];
    const int hd = rdim / 2;
    for (int c = 0; c < 4; c++) {
        const int d = d0 + c;
        r[c] = v[c];
        if (d >= rdim)
            continue;
        bool first;
        int pr;
        float o;
        if (style == EA_ROPE_HALF) {
            first = d < hd;
            pr = first ? d : d - hd;
            o = ea_ld1(p, row + (first ? d + hd : d - hd), dt);
        } else {
            first = (d & 1) == 0;
            pr = d >> 1;
            o = v[c ^ 1];
        }
        const float cz = cs[2 * pr], sn = cs[2 * pr + 1];
        r[c] = first ? v[c] * cz - o * sn : o * sn + v[c] * cz;
    }
    return (float4)(r[0], r[1], r[2], r[3]);
}
