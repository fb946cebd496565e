/*
 * The OpenCL backend's calls: attention and decode (fused kernels or the unfused CLBlast path),
 * KV-cache appends, NaN/Inf scans, copies and the ceiling measurements.
 *
 * Device tensors (cl_mem) are used in place and the call returns once its work is queued. Host
 * tensors go through the staging area of the work pool in units of (sequence, KV heads, query rows)
 * sized by the plan: inputs with blocking writes (the caller may reuse them on return), outputs with
 * reads that the call waits for before returning. Nothing here creates a buffer, program or kernel.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "opencl/ocl_internal.h"

#define CL_TRY(s_, msg_, call_, what_)                                                                           \
    do {                                                                                                         \
        const cl_int e_ = (call_);                                                                               \
        if (e_ != CL_SUCCESS)                                                                                    \
            return ea_ocl_fail_cl((msg_), e_, (what_));                                                          \
    } while (0)

/* ---------------------------------------------------------------- transfers */

enum { X_WRITE, X_READ, X_COPY };

/* A box of n1 x n2 rows of row_bytes: row (a, b) at host/src + a*h1 + b*h2 and at dst/dev + a*d1 + b*d2
 * (bytes). One rectangular command where the pitches allow it, else one per slice, else one per row. */
static cl_int box_xfer(ea_ocl_state *s, int mode, bool blocking, char *host, cl_mem src_mem, size_t src_off,
                       size_t h1, size_t h2, cl_mem mem, size_t off, size_t d1, size_t d2, size_t row_bytes, size_t n1,
                       size_t n2)
{
    ea_ocl_api *a = &s->api;
    if (n1 == 0 || n2 == 0 || row_bytes == 0)
        return CL_SUCCESS;
    if (h1 < h2) { /* the dim with the larger source pitch is the slice */
        size_t t = h1;
        h1 = h2, h2 = t;
        t = d1, d1 = d2, d2 = t;
        t = n1, n1 = n2, n2 = t;
    }
    if (n2 == 1)
        h2 = d2 = row_bytes;
    if (n1 == 1)
        h1 = n2 * h2, d1 = n2 * d2;
    const cl_bool bl = blocking ? CL_TRUE : CL_FALSE;
    /* a copy within one buffer needs equal pitches on both sides (clEnqueueCopyBufferRect's rule) */
    const bool same = mode == X_COPY && src_mem == mem && (h1 != d1 || h2 != d2);
    const bool rows_ok = h2 >= row_bytes && d2 >= row_bytes && !same;
    const bool slab_ok = rows_ok && h1 >= n2 * h2 && h1 % h2 == 0 && d1 >= n2 * d2 && d1 % d2 == 0;
    const size_t zero[3] = {0, 0, 0};
    if (rows_ok) {
        const size_t slices = slab_ok ? 1 : n1;
        for (size_t i = 0; i < slices; i++) {
            const size_t region[3] = {row_bytes, n2, slab_ok ? n1 : 1};
            const size_t dorg[3] = {off + i * d1, 0, 0};
            const size_t hs = slab_ok ? h1 : 0, ds = slab_ok ? d1 : 0;
            cl_int err;
            if (mode == X_WRITE)
                err = a->clEnqueueWriteBufferRect(s->queue, mem, bl, dorg, zero, region, d2, ds, h2, hs, host + i * h1, 0,
                                                  NULL, NULL);
            else if (mode == X_READ)
                err = a->clEnqueueReadBufferRect(s->queue, mem, bl, dorg, zero, region, d2, ds, h2, hs, host + i * h1, 0,
                                                 NULL, NULL);
            else {
                const size_t sorg[3] = {src_off + i * h1, 0, 0};
                err = a->clEnqueueCopyBufferRect(s->queue, src_mem, mem, sorg, dorg, region, h2, hs, d2, ds, 0, NULL,
                                                 NULL);
            }
            if (err != CL_SUCCESS)
                return err;
        }
        return CL_SUCCESS;
    }
    for (size_t i = 0; i < n1; i++)
        for (size_t j = 0; j < n2; j++) {
            const size_t ho = i * h1 + j * h2, dof = off + i * d1 + j * d2;
            cl_int err;
            if (mode == X_WRITE)
                err = a->clEnqueueWriteBuffer(s->queue, mem, bl, dof, row_bytes, host + ho, 0, NULL, NULL);
            else if (mode == X_READ)
                err = a->clEnqueueReadBuffer(s->queue, mem, bl, dof, row_bytes, host + ho, 0, NULL, NULL);
            else
                err = a->clEnqueueCopyBuffer(s->queue, src_mem, mem, src_off + ho, dof, row_bytes, 0, NULL, NULL);
            if (err != CL_SUCCESS)
                return err;
        }
    return CL_SUCCESS;
}

/* Stages (or reads back) the slab b, heads [h_first, +nh), rows [i_first, +ni), row_elems elements of
 * a host tensor at byte offset off of the work pool, in the host's order of heads and rows, and
 * describes the staged copy with absolute indices (*v). A dim of extent 1 or stride 0 (a broadcast
 * input) is staged once, with stride 0 in the view: OpenCL reads a pitch of 0 as "tightly packed",
 * so such a dim never reaches a rectangular transfer. */
static cl_int slab_xfer(ea_ocl_state *s, int mode, const edgeattn_tensor *t, int64_t b, int64_t h_first, int64_t nh,
                        int64_t i_first, int64_t ni, int64_t row_elems, size_t off, ea_ocl_view *v)
{
    const size_t es = ea_dtype_size(t->dtype);
    const bool bcast_b = t->shape[0] == 1 || t->stride[0] == 0;
    const bool bcast_h = t->shape[1] == 1 || t->stride[1] == 0;
    const bool bcast_n = t->shape[2] == 1 || t->stride[2] == 0;
    if (bcast_h)
        h_first = 0, nh = 1;
    if (bcast_n)
        i_first = 0, ni = 1;
    const bool heads_outer = t->stride[1] >= t->stride[2];
    const int64_t dsh = heads_outer ? ni * row_elems : row_elems, dsn = heads_outer ? row_elems : nh * row_elems;
    v->sb = 0;
    v->sh = bcast_h ? 0 : dsh;
    v->sn = bcast_n ? 0 : dsn;
    v->off = (cl_long)(off / es) - h_first * v->sh - i_first * v->sn;
    char *host = (char *)t->data +
                 (size_t)((bcast_b ? 0 : b) * t->stride[0] + h_first * t->stride[1] + i_first * t->stride[2]) * es;
    return box_xfer(s, mode, mode == X_WRITE, host, NULL, 0, (size_t)t->stride[1] * es, (size_t)t->stride[2] * es,
                    s->work, off, (size_t)dsh * es, (size_t)dsn * es, (size_t)row_elems * es, (size_t)nh, (size_t)ni);
}

/* A cl_mem tensor in place: its handle and view (stride 0 where a dim has extent 1, which is how a
 * broadcast bias is read). */
static edgeattn_status dev_view(char *msg, const char *name, const edgeattn_tensor *t, cl_mem *mem, ea_ocl_view *v)
{
    const size_t es = ea_dtype_size(t->dtype);
    if (t->offset % es)
        return ea_fail(msg, EDGEATTN_ERR_STRIDE, "%s: offset %zu is not a multiple of the element size %zu", name,
                       t->offset, es);
    *mem = (cl_mem)t->data;
    v->off = (cl_long)(t->offset / es);
    v->sb = t->shape[0] > 1 ? t->stride[0] : 0;
    v->sh = t->shape[1] > 1 ? t->stride[1] : 0;
    v->sn = t->shape[2] > 1 ? t->stride[2] : 0;
    return EDGEATTN_OK;
}

static size_t align256(size_t x)
{
    return (x + 255) & ~(size_t)255;
}

/* The buffer holding layer `layer` of the K or V cache (bufs: s->kv_k or s->kv_v) and the layer's byte
 * offset in it (a paged cache: the pool, offset 0). */
static cl_mem kv_buf(const ea_ocl_state *s, cl_mem *bufs, int32_t layer, size_t *off)
{
    if (s->lay.paged) {
        *off = 0;
        return bufs[0];
    }
    *off = (size_t)(layer % s->kv_lpb) * s->lay.kv_layer_bytes;
    return bufs[layer / s->kv_lpb];
}

/* ---------------------------------------------------------------- page tables (paged caches)
 * A decode or an append uploads the page tables of its batch rows once: row b holds entries
 * [0, pitch) of the table of (layer, seq_ids[b]), at lay.ptab of the work pool, where the kernels read
 * them (int offset pt_off, pitch entries per batch row). Like the RoPE table, the upload does not
 * block: the host copy comes from a ring of EA_OCL_PTAB_SLOTS copies in the host block, refilled only
 * once its previous upload has completed; the in-order queue keeps the device copy from changing under
 * a kernel that still reads it. */

/* Page-table entries that slots [slot, slot + n) mod cap (n <= cap) reach: up to the last page touched. */
static int ptab_entries(const ea_kv_cache *kv, int64_t slot, int64_t n)
{
    if (n <= 0)
        return 0;
    if (slot + n > kv->cap) /* wraps: the ring's last page is touched */
        return kv->pages_per_seq;
    return (int)((slot + n - 1) >> kv->page_shift) + 1;
}

static edgeattn_status ptab_upload(ea_ocl_state *s, char *msg, const ea_kv_cache *kv, int32_t layer,
                                   const int32_t *seq_ids, int B, int pitch)
{
    ea_ocl_api *a = &s->api;
    const int slot = s->ptab_next;
    if ((size_t)B * (size_t)pitch * 4 > s->lay.ptab_bytes || pitch > kv->pages_per_seq)
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "opencl: %d page tables of %d entries exceed the planned space", B,
                       pitch);
    if (s->ptab_last >= 0 && s->ptab_last_b == B && s->ptab_last_pitch == pitch) {
        /* the device already holds these tables (the usual case: a table changes only when a sequence
         * takes or gives back a page): no upload, which on a discrete GPU costs a transfer's latency */
        const int32_t *last = s->ptab_host + (size_t)s->ptab_last * (s->lay.ptab_bytes / sizeof(int32_t));
        bool same = true;
        for (int b = 0; b < B && same; b++)
            same = memcmp(last + (size_t)b * (size_t)pitch, ea_kv_table(kv, layer, seq_ids[b]),
                          sizeof(int32_t) * (size_t)pitch) == 0;
        if (same)
            return EDGEATTN_OK;
    }
    if (s->ptab_ev[slot]) { /* this copy's last upload must be done before the copy changes */
        const cl_int err = a->clWaitForEvents(1, &s->ptab_ev[slot]);
        a->clReleaseEvent(s->ptab_ev[slot]);
        s->ptab_ev[slot] = NULL;
        if (err != CL_SUCCESS)
            return ea_ocl_fail_cl(msg, err, "clWaitForEvents (page tables)");
    }
    if (B == 0 || pitch == 0)
        return EDGEATTN_OK;
    int32_t *tab = s->ptab_host + (size_t)slot * (s->lay.ptab_bytes / sizeof(int32_t));
    for (int b = 0; b < B; b++)
        memcpy(tab + (size_t)b * (size_t)pitch, ea_kv_table(kv, layer, seq_ids[b]), sizeof(int32_t) * (size_t)pitch);
    s->ptab_next = (slot + 1) % EA_OCL_PTAB_SLOTS;
    s->ptab_last = -1; /* unknown until the write is queued */
    const cl_int err = a->clEnqueueWriteBuffer(s->queue, s->work, CL_FALSE, s->lay.ptab,
                                               sizeof(int32_t) * (size_t)B * (size_t)pitch, tab, 0, NULL,
                                               &s->ptab_ev[slot]);
    if (err != CL_SUCCESS) {
        s->ptab_ev[slot] = NULL;
        return ea_ocl_fail_cl(msg, err, "clEnqueueWriteBuffer (page tables)");
    }
    s->ptab_last = slot;
    s->ptab_last_b = B;
    s->ptab_last_pitch = pitch;
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- block masks
 * An attention call's block mask goes to the device as bitmaps: pattern p (a batch row's and KV head's,
 * or broadcast), query block r, word w: bit k set when key block 32w + k is listed in row block r. The
 * kernels test a tile's key blocks against the union of the query blocks its rows fall in (common.cl
 * ea_bm_*), so unlisted tiles are never loaded. Built on the host from the validated BSR arrays (O(nnz)
 * plus clearing the planned rows) into one of EA_OCL_BM_SLOTS host copies and uploaded without blocking,
 * as the page tables are. */
static edgeattn_status bm_upload(ea_ocl_state *s, char *msg, const ea_attn_call *c, ea_ocl_attn_p *P)
{
    ea_ocl_api *a = &s->api;
    const edgeattn_block_mask *m = c->block_mask;
    const int nrb = (int)((c->Nq + m->block_q - 1) / m->block_q), nkb = (c->Nkv + 63) / 64;
    const int words = (nkb + 31) / 32, np = (int)(m->batch * m->heads);
    const size_t need = (size_t)np * (size_t)nrb * (size_t)words * 4;
    if (need > s->lay.bm_bytes || m->block_k != 64)
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "opencl: a block mask of %d patterns x %d row blocks exceeds the plan",
                       np, nrb);
    const int slot = s->bm_next;
    if (s->bm_ev[slot]) { /* this copy's last upload must be done before the copy changes */
        const cl_int err = a->clWaitForEvents(1, &s->bm_ev[slot]);
        a->clReleaseEvent(s->bm_ev[slot]);
        s->bm_ev[slot] = NULL;
        if (err != CL_SUCCESS)
            return ea_ocl_fail_cl(msg, err, "clWaitForEvents (block mask)");
    }
    uint32_t *bits = s->bm_host + (size_t)slot * (s->lay.bm_bytes / sizeof(uint32_t));
    memset(bits, 0, need);
    for (int p = 0; p < np; p++)
        for (int r = 0; r < nrb; r++) {
            const int32_t *rp = m->row_ptr + (size_t)p * (size_t)(nrb + 1) + (size_t)r;
            uint32_t *row = bits + ((size_t)p * (size_t)nrb + (size_t)r) * (size_t)words;
            for (int32_t e = rp[0]; e < rp[1]; e++) {
                const int32_t kb = m->col_idx[e];
                row[kb >> 5] |= 1u << (kb & 31);
            }
        }
    s->bm_next = (slot + 1) % EA_OCL_BM_SLOTS;
    const cl_int err = a->clEnqueueWriteBuffer(s->queue, s->work, CL_FALSE, s->lay.bm, need, bits, 0, NULL,
                                               &s->bm_ev[slot]);
    if (err != CL_SUCCESS) {
        s->bm_ev[slot] = NULL;
        return ea_ocl_fail_cl(msg, err, "clEnqueueWriteBuffer (block mask)");
    }
    P->bm_bq = (cl_int)m->block_q;
    P->bm_words = words;
    P->bm_shift = 6; /* 64 keys per mask block */
    P->bm_off = (cl_long)(s->lay.bm / 4);
    P->bm_sh = m->heads > 1 ? (cl_long)nrb * words : 0;
    P->bm_sb = m->batch > 1 ? (cl_long)m->heads * nrb * words : 0;
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- RoPE angle tables
 * cos and sin of every rotated pair of the positions a launch needs, computed on the host in double
 * by core's ea_rope_angles (so the device rotates by exactly the FP32 values the CPU backend uses,
 * with or without cl_khr_fp64) and uploaded into the planned table of the work pool. The upload does
 * not block: the host copy comes from a ring of EA_OCL_ROPE_SLOTS copies in the host block, and a copy
 * is refilled only after the event of its previous upload has completed. In-order queues keep the
 * device table from changing under a kernel that still reads it. */

/* Fills the table for nb runs: run bl holds cnt[bl] positions pos0[bl] + r at rows tab0[bl] + r; then
 * uploads rows [0, rows). */
static edgeattn_status rope_upload(ea_ocl_state *s, char *msg, const ea_rope *rope, int nb, const int64_t *pos0,
                                   const cl_int *tab0, const int *cnt, size_t rows)
{
    ea_ocl_api *a = &s->api;
    const int slot = s->rope_next;
    const size_t rd = (size_t)rope->dim;
    if (rows > (size_t)s->lay.rope_rows || rd > (size_t)s->lay.rope_dim)
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "opencl: %zu RoPE positions of %zu values exceed the planned table",
                       rows, rd);
    if (s->rope_ev[slot]) { /* this copy's last upload must be done before the copy changes */
        const cl_int err = a->clWaitForEvents(1, &s->rope_ev[slot]);
        a->clReleaseEvent(s->rope_ev[slot]);
        s->rope_ev[slot] = NULL;
        if (err != CL_SUCCESS)
            return ea_ocl_fail_cl(msg, err, "clWaitForEvents (RoPE table)");
    }
    if (rows == 0)
        return EDGEATTN_OK;
    float *tab = s->rope_host + (size_t)slot * (s->lay.rope_bytes / sizeof(float));
    for (int bl = 0; bl < nb; bl++)
        for (int r = 0; r < cnt[bl]; r++)
            ea_rope_angles(rope, pos0[bl] + r, tab + ((size_t)tab0[bl] + (size_t)r) * rd);
    s->rope_next = (slot + 1) % EA_OCL_ROPE_SLOTS;
    const cl_int err = a->clEnqueueWriteBuffer(s->queue, s->work, CL_FALSE, s->lay.rope, rows * rd * sizeof(float), tab,
                                               0, NULL, &s->rope_ev[slot]);
    if (err != CL_SUCCESS) {
        s->rope_ev[slot] = NULL;
        return ea_ocl_fail_cl(msg, err, "clEnqueueWriteBuffer (RoPE table)");
    }
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- attention */

typedef struct mems {
    cl_mem q, k, v, o, bias, lse;
} mems;

static edgeattn_status set_arg(ea_ocl_state *s, char *msg, cl_kernel k, cl_uint i, size_t n, const void *p)
{
    const cl_int err = s->api.clSetKernelArg(k, i, n, p);
    return err == CL_SUCCESS ? EDGEATTN_OK : ea_ocl_fail_cl(msg, err, "clSetKernelArg");
}

#define TRY(x)                                                                                                   \
    do {                                                                                                         \
        const edgeattn_status st_ = (x);                                                                         \
        if (st_ != EDGEATTN_OK)                                                                                  \
            return st_;                                                                                          \
    } while (0)

static edgeattn_status run_unfused(ea_ocl_state *s, char *msg, const ea_ocl_attn_p *P, const mems *m, int nb)
{
    ea_ocl_api *a = &s->api;
    const ea_ocl_layout *L = &s->lay;
    const int group = P->group, D = P->D;
    const int nic = L->uf_rows / group > 0 ? L->uf_rows / group : 1;
    for (cl_int bl = 0; bl < nb; bl++)
        for (cl_int hl = 0; hl < P->nh; hl++) {
            const int kv_len = P->kv_len[bl];
            /* queries of this sequence in the launch (ragged decode: rows past nq are left alone) */
            const int ni_b = P->nq[bl] - P->i0 < P->ni ? P->nq[bl] - P->i0 : P->ni;
            if (ni_b <= 0)
                continue;
            const cl_long kf = (cl_long)(L->uf_k / 4), vf = (cl_long)(L->uf_v / 4);
            if (kv_len > 0) {
                const size_t g[2] = {(size_t)D / 4, (size_t)kv_len};
                cl_kernel k = s->k[EA_K_GATHER_KV];
                const cl_mem src[2] = {m->k, m->v};
                const ea_ocl_view *views[2] = {&P->k, &P->v};
                const cl_long dst[2] = {kf, vf};
                for (int t = 0; t < 2; t++) {
                    TRY(set_arg(s, msg, k, 0, sizeof(cl_mem), &src[t]));
                    TRY(set_arg(s, msg, k, 1, sizeof(cl_mem), &s->work));
                    TRY(set_arg(s, msg, k, 2, sizeof(cl_long), &dst[t]));
                    TRY(set_arg(s, msg, k, 3, sizeof(ea_ocl_view), views[t]));
                    TRY(set_arg(s, msg, k, 4, sizeof *P, P));
                    TRY(set_arg(s, msg, k, 5, sizeof(cl_int), &bl));
                    TRY(set_arg(s, msg, k, 6, sizeof(cl_int), &hl));
                    CL_TRY(s, msg, a->clEnqueueNDRangeKernel(s->queue, k, 2, NULL, g, NULL, 0, NULL, NULL),
                           "clEnqueueNDRangeKernel(ea_gather_kv)");
                }
            }
            for (int ic = 0; ic < ni_b; ic += nic) {
                ea_ocl_attn_p P2 = *P;
                P2.i0 = P->i0 + ic;
                P2.ni = ni_b - ic < nic ? ni_b - ic : nic;
                P2.tab0[bl] = P->tab0[bl] + ic; /* RoPE rows follow the queries */
                const size_t rows = (size_t)group * (size_t)P2.ni;
                const cl_long qf = (cl_long)(L->uf_q / 4), sf = (cl_long)(L->uf_s / 4), of = (cl_long)(L->uf_o / 4),
                              lf = (cl_long)(L->uf_l / 4), ld = kv_len;
                if (kv_len > 0) {
                    cl_kernel k = s->k[EA_K_GATHER_Q];
                    const size_t g[2] = {(size_t)D / 4, rows};
                    TRY(set_arg(s, msg, k, 0, sizeof(cl_mem), &m->q));
                    TRY(set_arg(s, msg, k, 1, sizeof(cl_mem), &s->work));
                    TRY(set_arg(s, msg, k, 2, sizeof(cl_long), &qf));
                    TRY(set_arg(s, msg, k, 3, sizeof P2, &P2));
                    TRY(set_arg(s, msg, k, 4, sizeof(cl_int), &bl));
                    TRY(set_arg(s, msg, k, 5, sizeof(cl_int), &hl));
                    CL_TRY(s, msg, a->clEnqueueNDRangeKernel(s->queue, k, 2, NULL, g, NULL, 0, NULL, NULL),
                           "clEnqueueNDRangeKernel(ea_gather_q)");
                    size_t need1 = 0, need2 = 0;
                    int bs = s->blast.tmp_size(EA_BLAST_ROW_MAJOR, EA_BLAST_NO_TRANS, EA_BLAST_TRANS, rows,
                                               (size_t)kv_len, (size_t)D, (size_t)qf, (size_t)D, (size_t)kf, (size_t)D,
                                               (size_t)sf, (size_t)ld, &s->queue, &need1);
                    if (bs == 0)
                        bs = s->blast.tmp_size(EA_BLAST_ROW_MAJOR, EA_BLAST_NO_TRANS, EA_BLAST_NO_TRANS, rows, (size_t)D,
                                               (size_t)kv_len, (size_t)sf, (size_t)ld, (size_t)vf, (size_t)D,
                                               (size_t)of, (size_t)D, &s->queue, &need2);
                    if (bs != 0)
                        return ea_fail(msg, EDGEATTN_ERR_SYSTEM, "opencl: CLBlastSGemmTempBufferSize returned %d", bs);
                    if (need1 > L->blast_tmp_bytes || need2 > L->blast_tmp_bytes)
                        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                                       "opencl unfused: CLBlast asks for %zu temporary bytes, %zu planned",
                                       need1 > need2 ? need1 : need2, L->blast_tmp_bytes);
                    bs = s->blast.sgemm(EA_BLAST_ROW_MAJOR, EA_BLAST_NO_TRANS, EA_BLAST_TRANS, rows, (size_t)kv_len,
                                        (size_t)D, 1.0f, s->work, (size_t)qf, (size_t)D, s->work, (size_t)kf, (size_t)D,
                                        0.0f, s->work, (size_t)sf, (size_t)ld, &s->queue, NULL, s->blast_tmp);
                    if (bs != 0)
                        return ea_fail(msg, EDGEATTN_ERR_SYSTEM, "opencl unfused: CLBlastSgemm (Q K^T) returned %d", bs);
                    k = s->k[EA_K_SOFTMAX];
                    const size_t gs = rows * 64, ls = 64;
                    TRY(set_arg(s, msg, k, 0, sizeof(cl_mem), &s->work));
                    TRY(set_arg(s, msg, k, 1, sizeof(cl_long), &sf));
                    TRY(set_arg(s, msg, k, 2, sizeof(cl_long), &ld));
                    TRY(set_arg(s, msg, k, 3, sizeof(cl_mem), &m->bias));
                    TRY(set_arg(s, msg, k, 4, sizeof(cl_mem), &s->work));
                    TRY(set_arg(s, msg, k, 5, sizeof(cl_long), &lf));
                    TRY(set_arg(s, msg, k, 6, sizeof P2, &P2));
                    TRY(set_arg(s, msg, k, 7, sizeof(cl_int), &bl));
                    TRY(set_arg(s, msg, k, 8, sizeof(cl_int), &hl));
                    CL_TRY(s, msg, a->clEnqueueNDRangeKernel(s->queue, k, 1, NULL, &gs, &ls, 0, NULL, NULL),
                           "clEnqueueNDRangeKernel(ea_softmax)");
                    bs = s->blast.sgemm(EA_BLAST_ROW_MAJOR, EA_BLAST_NO_TRANS, EA_BLAST_NO_TRANS, rows, (size_t)D,
                                        (size_t)kv_len, 1.0f, s->work, (size_t)sf, (size_t)ld, s->work, (size_t)vf,
                                        (size_t)D, 0.0f, s->work, (size_t)of, (size_t)D, &s->queue, NULL, s->blast_tmp);
                    if (bs != 0)
                        return ea_fail(msg, EDGEATTN_ERR_SYSTEM, "opencl unfused: CLBlastSgemm (P V) returned %d", bs);
                }
                cl_kernel k = s->k[EA_K_STORE];
                const cl_int empty = kv_len == 0;
                const size_t g[2] = {(size_t)D / 4, rows};
                TRY(set_arg(s, msg, k, 0, sizeof(cl_mem), &s->work));
                TRY(set_arg(s, msg, k, 1, sizeof(cl_long), &of));
                TRY(set_arg(s, msg, k, 2, sizeof(cl_mem), &s->work));
                TRY(set_arg(s, msg, k, 3, sizeof(cl_long), &lf));
                TRY(set_arg(s, msg, k, 4, sizeof(cl_mem), &m->o));
                TRY(set_arg(s, msg, k, 5, sizeof(cl_mem), &m->lse));
                TRY(set_arg(s, msg, k, 6, sizeof P2, &P2));
                TRY(set_arg(s, msg, k, 7, sizeof(cl_int), &bl));
                TRY(set_arg(s, msg, k, 8, sizeof(cl_int), &hl));
                TRY(set_arg(s, msg, k, 9, sizeof(cl_int), &empty));
                CL_TRY(s, msg, a->clEnqueueNDRangeKernel(s->queue, k, 2, NULL, g, NULL, 0, NULL, NULL),
                       "clEnqueueNDRangeKernel(ea_store_rows)");
            }
        }
    return EDGEATTN_OK;
}

/* Top-k decode (config.kv_summary_block, params.topk_tokens; one query per sequence): scores every block
 * of each (sequence, KV head) of the launch from the cache's summaries (ea_topk_score), selects the
 * ceil(topk_tokens / block) best (at least 2; the first and newest always) as bits of a per-(sequence, KV
 * head) mask in the work pool (ea_topk_select), and points the launch's block mask at it (one query block;
 * mask blocks of the summary's size), so the decode visits only the selected blocks' tiles. */
static edgeattn_status topk_select(ea_ocl_state *s, char *msg, const ea_attn_call *c, ea_ocl_attn_p *P, const mems *m,
                                   int nb)
{
    const ea_ocl_layout *L = &s->lay;
    const ea_kv_cache *kv = c->cache;
    int shift = 0;
    while ((1 << shift) < L->sblk)
        shift++;
    P->bm_bq = 1 << 30; /* every query in query block 0 */
    P->bm_words = L->tk_words;
    P->bm_shift = shift;
    P->bm_off = (cl_long)(L->tk_bm / 4);
    P->bm_sh = L->tk_words;
    P->bm_sb = (cl_long)kv->max_heads * L->tk_words;
    int kvmax = 0;
    for (int bl = 0; bl < nb; bl++)
        kvmax = P->kv_len[bl] > kvmax ? P->kv_len[bl] : kvmax;
    const cl_long s_off = (cl_long)c->layer * s->max_batch * kv->max_heads * L->nsblk * 2 * kv->max_dim;
    const cl_long sc_off = (cl_long)(L->tk_sc / 4);
    const cl_int sblk = L->sblk, nsblk = L->nsblk, mheads = kv->max_heads, mdim = kv->max_dim;
    int64_t keep = ((int64_t)c->topk_tokens + L->sblk - 1) / L->sblk;
    const cl_int keep_i = (cl_int)(keep < 2 ? 2 : keep > nsblk ? nsblk : keep);
    const int nblk = (kvmax + L->sblk - 1) / L->sblk;
    if (nblk > 0) {
        cl_kernel k = s->k[EA_K_TK_SCORE];
        TRY(set_arg(s, msg, k, 0, sizeof(cl_mem), &m->q));
        TRY(set_arg(s, msg, k, 1, sizeof(cl_mem), &s->summ));
        TRY(set_arg(s, msg, k, 2, sizeof(cl_mem), &s->work));
        TRY(set_arg(s, msg, k, 3, sizeof *P, P));
        TRY(set_arg(s, msg, k, 4, sizeof s_off, &s_off));
        TRY(set_arg(s, msg, k, 5, sizeof sblk, &sblk));
        TRY(set_arg(s, msg, k, 6, sizeof nsblk, &nsblk));
        TRY(set_arg(s, msg, k, 7, sizeof mheads, &mheads));
        TRY(set_arg(s, msg, k, 8, sizeof mdim, &mdim));
        TRY(set_arg(s, msg, k, 9, sizeof sc_off, &sc_off));
        const size_t g[3] = {(size_t)(nblk + 63) / 64 * 64, (size_t)P->nh, (size_t)nb};
        CL_TRY(s, msg, s->api.clEnqueueNDRangeKernel(s->queue, k, 3, NULL, g, NULL, 0, NULL, NULL),
               "clEnqueueNDRangeKernel(ea_topk_score)");
    }
    cl_kernel k = s->k[EA_K_TK_SELECT];
    TRY(set_arg(s, msg, k, 0, sizeof(cl_mem), &s->work));
    TRY(set_arg(s, msg, k, 1, sizeof *P, P));
    TRY(set_arg(s, msg, k, 2, sizeof sblk, &sblk));
    TRY(set_arg(s, msg, k, 3, sizeof nsblk, &nsblk));
    TRY(set_arg(s, msg, k, 4, sizeof mheads, &mheads));
    TRY(set_arg(s, msg, k, 5, sizeof sc_off, &sc_off));
    TRY(set_arg(s, msg, k, 6, sizeof keep_i, &keep_i));
    const size_t g[3] = {256, (size_t)P->nh, (size_t)nb}, l[3] = {256, 1, 1};
    CL_TRY(s, msg, s->api.clEnqueueNDRangeKernel(s->queue, k, 3, NULL, g, l, 0, NULL, NULL),
           "clEnqueueNDRangeKernel(ea_topk_select)");
    return EDGEATTN_OK;
}

/* One launch: sequences [b0, b0+nb), KV heads [h0, h0+nh), queries [i0, i0+ni). */
static edgeattn_status run_launch(ea_ocl_state *s, char *msg, const ea_attn_call *c, const ea_ocl_attn_p *base,
                                  const mems *m, int b0, int nb, int h0, int nh, int i0, int ni)
{
    ea_ocl_api *a = &s->api;
    ea_ocl_attn_p P = *base;
    P.b0 = b0, P.h0 = h0, P.nh = nh, P.i0 = i0, P.ni = ni;
    int kvmax = 0;
    int64_t pos0[EA_OCL_SEQ_MAX];
    int cnt[EA_OCL_SEQ_MAX];
    for (int bl = 0; bl < nb; bl++) {
        const int b = b0 + bl;
        if (c->decode) { /* batch row b reads cache sequence seq_ids[b] of the call's layer */
            const int32_t seq = c->seq_ids[b];
            const size_t at = ea_kv_idx(c->cache, c->layer, seq);
            const int64_t total = c->cache->total[at];
            const int32_t held = c->cache->held[at];
            const ea_kv_cache *kv = c->cache;
            P.kv_len[bl] = held;
            if (kv->sinks > 0) { /* held keys: the sinks, then the ring from its oldest key (flash.cl ea_slot) */
                const int64_t rf = ea_kv_ring_first(kv, total, held), w = kv->cap - kv->sinks;
                P.slot0[bl] = total > kv->sinks ? (cl_int)((rf - kv->sinks) % w) : 0;
            } else {
                P.slot0[bl] = (cl_int)((total - held) % kv->cap);
            }
            P.kv_b[bl] = seq;
            P.nq[bl] = c->q_lens ? c->q_lens[b] : c->Nq;
            pos0[bl] = total - P.nq[bl] + i0; /* query i sits at total - nq + i */
        } else {
            P.kv_len[bl] = c->kv_lens ? c->kv_lens[b] : c->Nkv;
            P.slot0[bl] = 0;
            P.kv_b[bl] = b;
            P.nq[bl] = c->Nq;
            pos0[bl] = 0;
        }
        P.tab0[bl] = bl * ni;
        cnt[bl] = P.nq[bl] - i0 < ni ? P.nq[bl] - i0 : ni;
        cnt[bl] = cnt[bl] < 0 ? 0 : cnt[bl];
        kvmax = P.kv_len[bl] > kvmax ? P.kv_len[bl] : kvmax;
    }
    if (c->decode && c->rope) { /* queries rotated at their positions */
        P.rope_style = c->rope->style;
        P.rope_dim = c->rope->dim;
        P.rope_off = (cl_long)(s->lay.rope / sizeof(float));
        TRY(rope_upload(s, msg, c->rope, nb, pos0, P.tab0, cnt, (size_t)nb * (size_t)ni));
    }
    if (c->decode && c->topk_tokens > 0) /* the blocks to read become the launch's mask */
        TRY(topk_select(s, msg, c, &P, m, nb));
    if (s->lay.path == EA_OCL_PATH_UNFUSED)
        return run_unfused(s, msg, &P, m, nb);

    const ea_ocl_variant *v = &s->var[0];
    for (int i = 0; i < s->nvar && v->dmax < c->D; i++)
        v = &s->var[i];
    const int R = c->group * ni;
    const bool dec = R <= (v->dec.rows > v->dec.bm ? v->dec.rows : v->dec.bm); /* (several row blocks past bm) */
    /* Q kept as F16 bits in local memory; not with RoPE (the rotated queries are not F16 values) */
    const bool qh = !dec && P.q_dt == EDGEATTN_F16 && !P.rope_style;
    const ea_ocl_tiles *t = dec ? &v->dec : qh ? &v->pfh : &v->pf;
    cl_kernel k = dec ? v->k_dec : qh ? v->k_pfh : v->k_pf;
    const int nt = ea_ocl_tiles_threads(t);
    const int nrb = (R + t->bm - 1) / t->bm;
    const long nwg = (long)nrb * nh * nb;
    /* enough work-groups in flight: decode-like launches (few rows, memory-bound) want more */
    const long target = (dec ? 8l : 2l) * (long)s->cus;
    P.nsplit = 1;
    if (nwg < target && kvmax >= 4 * t->bn) {
        long ns = (target + nwg - 1) / nwg;
        const long by_len = kvmax / (2 * t->bn);
        const long rows_total = (long)nb * nh * c->group * ni;
        ns = ns < by_len ? ns : by_len;
        ns = ns < 64 ? ns : 64;
        ns = ns < EA_OCL_WS_ENTRIES / rows_total ? ns : EA_OCL_WS_ENTRIES / rows_total;
        if (ns >= 2)
            P.nsplit = (cl_int)ns;
    }
    P.ws_off = (cl_long)(s->lay.ws / 4);
    P.ws_lse_off = (cl_long)(s->lay.ws_lse / 4);
    /* rows that 16-byte (F32) or 8-byte (F16, BF16) loads can read whole (EA_BATCH_LOADS) */
    P.kv_vec = (P.k.off | P.k.sb | P.k.sh | P.k.sn | P.v.off | P.v.sb | P.v.sh | P.v.sn) % 4 == 0;
    const cl_mem args[7] = {m->q, m->k, m->v, m->o, m->bias, m->lse, s->work};
    for (cl_uint i = 0; i < 7; i++)
        TRY(set_arg(s, msg, k, i, sizeof(cl_mem), &args[i]));
    TRY(set_arg(s, msg, k, 7, sizeof P, &P));
    const size_t g[3] = {(size_t)nrb * (size_t)nt, (size_t)nh * (size_t)P.nsplit, (size_t)nb};
    const size_t l[3] = {(size_t)nt, 1, 1};
    CL_TRY(s, msg, a->clEnqueueNDRangeKernel(s->queue, k, 3, NULL, g, l, 0, NULL, NULL),
           "clEnqueueNDRangeKernel(flash attention)");
    if (P.nsplit > 1) {
        cl_kernel kc = s->k[EA_K_COMBINE];
        TRY(set_arg(s, msg, kc, 0, sizeof(cl_mem), &s->work));
        TRY(set_arg(s, msg, kc, 1, sizeof(cl_mem), &m->o));
        TRY(set_arg(s, msg, kc, 2, sizeof(cl_mem), &m->lse));
        TRY(set_arg(s, msg, kc, 3, sizeof P, &P));
        const size_t gc[2] = {(size_t)c->D / 4, (size_t)nb * (size_t)nh * (size_t)c->group * (size_t)ni};
        CL_TRY(s, msg, a->clEnqueueNDRangeKernel(s->queue, kc, 2, NULL, gc, NULL, 0, NULL, NULL),
               "clEnqueueNDRangeKernel(ea_combine)");
    }
    return EDGEATTN_OK;
}

static int32_t clamp_window(int32_t w, int64_t lim)
{
    return (w >= 0 && (int64_t)w > lim) ? -1 : w;
}

/* Linformer (call->linformer, validated by core): K' = E K and V' = F V into the planned F32 workspace,
 * one (sequence, KV head) at a time (host K, V, E and F staged through the work pool, a broadcast E or F
 * once), then the attention over the k projected rows as a call on device K/V. */
static edgeattn_status lr_attention(edgeattn_context *ctx, const ea_attn_call *c)
{
    ea_ocl_state *s = ctx->backend_state;
    char *msg = ctx->msg;
    const ea_ocl_layout *L = &s->lay;
    const ea_ocl_api *a = &s->api;
    const edgeattn_linformer *lf = c->linformer;
    const int kr = (int)lf->e->shape[2], N = c->Nkv, D = c->D;
    if (!L->lr_kv_bytes || (size_t)c->B * (size_t)c->Hkv * (size_t)kr * (size_t)D * 4 > L->lr_kv_bytes)
        return ea_fail(msg, EDGEATTN_ERR_INTERNAL, "linformer: projected rows exceed the planned workspace");
    cl_kernel kp = s->k[EA_K_LR_PROJ];
    for (int which = 0; which < 2; which++) {
        const edgeattn_tensor *P = which ? lf->f : lf->e, *X = which ? c->v : c->k;
        const size_t st_p = which ? L->lr_f : L->lr_e, st_x = which ? L->st_v : L->st_k;
        const size_t out0 = which ? L->lr_v : L->lr_k;
        const bool p_host = P->memory == EDGEATTN_MEM_HOST, x_host = X->memory == EDGEATTN_MEM_HOST;
        cl_mem pm = s->work, xm = s->work;
        ea_ocl_view pv, xv;
        memset(&pv, 0, sizeof pv);
        memset(&xv, 0, sizeof xv);
        if (!p_host)
            TRY(dev_view(msg, which ? "linformer: f" : "linformer: e", P, &pm, &pv));
        if (!x_host)
            TRY(dev_view(msg, which ? "v" : "k", X, &xm, &xv));
        const cl_int p_dt = P->dtype, x_dt = X->dtype, kk = kr, nn = N, dd = D; /* (the per-head args below) */
        TRY(set_arg(s, msg, kp, 0, sizeof(cl_mem), &pm));
        TRY(set_arg(s, msg, kp, 2, sizeof p_dt, &p_dt));
        TRY(set_arg(s, msg, kp, 3, sizeof(cl_mem), &xm));
        TRY(set_arg(s, msg, kp, 5, sizeof x_dt, &x_dt));
        TRY(set_arg(s, msg, kp, 6, sizeof(cl_mem), &s->work));
        TRY(set_arg(s, msg, kp, 8, sizeof kk, &kk));
        TRY(set_arg(s, msg, kp, 9, sizeof nn, &nn));
        TRY(set_arg(s, msg, kp, 10, sizeof dd, &dd));
        int staged_b = -1, staged_h = -1; /* the (b, h) of P in the staging area (broadcast dims: 0) */
        for (int b = 0; b < c->B; b++)
            for (int h = 0; h < c->Hkv; h++) {
                ea_ocl_view pw = pv, xw = xv;
                if (p_host) {
                    const int kb = P->shape[0] > 1 ? b : 0, kh = P->shape[1] > 1 ? h : 0;
                    if (kb != staged_b || kh != staged_h) {
                        const cl_int err = slab_xfer(s, X_WRITE, P, kb, kh, 1, 0, kr, N, st_p, &pv);
                        if (err != CL_SUCCESS)
                            return ea_ocl_fail_cl(msg, err, "linformer: staging e/f (clEnqueueWriteBufferRect)");
                        staged_b = kb, staged_h = kh;
                    }
                    pw = pv;
                    pw.off += (cl_long)kh * pv.sh;
                } else {
                    pw.off += (cl_long)b * pv.sb + (cl_long)h * pv.sh;
                }
                if (x_host) {
                    const cl_int err = slab_xfer(s, X_WRITE, X, b, h, 1, 0, N, D, st_x, &xw);
                    if (err != CL_SUCCESS)
                        return ea_ocl_fail_cl(msg, err, "linformer: staging k/v (clEnqueueWriteBufferRect)");
                    xw.off += (cl_long)h * xw.sh;
                } else {
                    xw.off += (cl_long)b * xv.sb + (cl_long)h * xv.sh;
                }
                const cl_long o_off = (cl_long)(out0 / 4) + ((cl_long)b * c->Hkv + h) * kr * D;
                TRY(set_arg(s, msg, kp, 1, sizeof pw, &pw));
                TRY(set_arg(s, msg, kp, 4, sizeof xw, &xw));
                TRY(set_arg(s, msg, kp, 7, sizeof o_off, &o_off));
                /* (util.cl: 16 x 16 work-items, 64 x 64 outputs a work-group) */
                const size_t g[2] = {(size_t)(D + 63) / 64 * 16, (size_t)(kr + 63) / 64 * 16}, l[2] = {16, 16};
                CL_TRY(s, msg, a->clEnqueueNDRangeKernel(s->queue, kp, 2, NULL, g, l, 0, NULL, NULL),
                       "clEnqueueNDRangeKernel(ea_lr_proj)");
            }
    }
    /* the attention over K' and V' (device views of the work pool) */
    edgeattn_tensor kt = edgeattn_tensor_bhsd(s->work, EDGEATTN_F32, c->B, c->Hkv, kr, D), vt = kt;
    kt.memory = vt.memory = EDGEATTN_MEM_OPENCL;
    kt.offset = L->lr_k;
    vt.offset = L->lr_v;
    ea_attn_call c2 = *c;
    c2.k = &kt;
    c2.v = &vt;
    c2.Nkv = kr;
    c2.kv_dtype = EDGEATTN_F32;
    c2.linformer = NULL;
    return ea_ocl_attention(ctx, &c2);
}

edgeattn_status ea_ocl_attention(edgeattn_context *ctx, const ea_attn_call *c)
{
    if (c->linformer)
        return lr_attention(ctx, c);
    ea_ocl_state *s = ctx->backend_state;
    char *msg = ctx->msg;
    if (s->lay.path == EA_OCL_PATH_UNFUSED && !s->blast_ok)
        return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                       "opencl: EDGEATTN_OPENCL_PATH=unfused needs CLBlast (%s); the fused path works without it",
                       s->blast_why);
    ea_ocl_attn_p P;
    memset(&P, 0, sizeof P);
    P.q_dt = c->q->dtype;
    P.kv_dt = c->kv_dtype;
    P.o_dt = c->out->dtype;
    P.has_bias = c->bias != NULL;
    P.has_lse = c->lse != NULL;
    P.group = c->group;
    P.D = c->D;
    P.ring_cap = c->decode ? c->cache->cap - c->cache->sinks : 0; /* the ring's width (no window: cap) */
    P.sinks = c->decode ? c->cache->sinks : 0;
    P.causal = c->causal;
    const int64_t lim = (int64_t)c->Nkv + c->Nq + 1;
    P.wl = clamp_window(c->window_left, lim);
    P.wr = clamp_window(c->window_right, lim);
    P.scale = c->scale;
    P.softcap = c->softcap;
    if (c->block_mask)
        TRY(bm_upload(s, msg, c, &P));
    mems m = {NULL, NULL, NULL, NULL, s->work, s->work};
    const bool q_host = c->q->memory == EDGEATTN_MEM_HOST, o_host = c->out->memory == EDGEATTN_MEM_HOST;
    const bool b_host = c->bias && c->bias->memory == EDGEATTN_MEM_HOST;
    const bool l_host = c->lse && c->lse->memory == EDGEATTN_MEM_HOST;
    bool k_host = false, v_host = false;
    if (!q_host)
        TRY(dev_view(msg, "q", c->q, &m.q, &P.q));
    if (!o_host)
        TRY(dev_view(msg, "out", c->out, &m.o, &P.o));
    if (c->bias && !b_host)
        TRY(dev_view(msg, "bias", c->bias, &m.bias, &P.bias));
    if (c->lse && !l_host)
        TRY(dev_view(msg, "lse", c->lse, &m.lse, &P.lse));
    if (c->decode && c->cache->page > 0) { /* paged: rows through the page tables of the call's rows */
        const ea_kv_cache *kv = c->cache;
        size_t loff;
        m.k = kv_buf(s, s->kv_k, c->layer, &loff);
        m.v = kv_buf(s, s->kv_v, c->layer, &loff);
        P.k.off = P.v.off = 0;
        P.k.sb = P.v.sb = 0;
        /* row indices in units of the gcd of a page's and a row's elements (the row itself when the
         * head dim is the planned one): every pool row index fits an int */
        size_t unit = (size_t)kv->dim, rest = kv->page_elems;
        while (rest) {
            const size_t r = unit % rest;
            unit = rest;
            rest = r;
        }
        if (kv->page_elems / unit > (size_t)INT32_MAX / (size_t)kv->pages)
            return ea_fail(msg, EDGEATTN_ERR_UNSUPPORTED,
                           "opencl: a paged pool of %d pages of %zu elements has more rows of head dim %d than an int "
                           "indexes: set fewer config.kv_pages",
                           (int)kv->pages, kv->page_elems, (int)kv->dim);
        P.k.sh = P.v.sh = (cl_long)kv->page * kv->dim;
        P.k.sn = P.v.sn = (cl_long)unit;
        P.page_units = (cl_int)(kv->page_elems / unit);
        P.row_units = (cl_int)((size_t)kv->dim / unit);
        int pitch = 1;
        for (int b = 0; b < c->B; b++) {
            const size_t at = ea_kv_idx(kv, c->layer, c->seq_ids[b]);
            const int n = ea_kv_table_reach(kv, kv->total[at]);
            pitch = n > pitch ? n : pitch;
        }
        TRY(ptab_upload(s, msg, kv, c->layer, c->seq_ids, c->B, pitch));
        P.pt_off = (cl_long)(s->lay.ptab / 4);
        P.page_shift = kv->page_shift;
        P.pt_pitch = pitch;
    } else if (c->decode) { /* the call's layer of the cache; batch index = cache sequence (P.kv_b) */
        const ea_kv_cache *kv = c->cache;
        size_t loff;
        m.k = kv_buf(s, s->kv_k, c->layer, &loff);
        m.v = kv_buf(s, s->kv_v, c->layer, &loff);
        P.k.off = P.v.off = (cl_long)(loff / ea_dtype_size(kv->dtype));
        P.k.sb = P.v.sb = (cl_long)kv->heads * kv->cap * kv->dim;
        P.k.sh = P.v.sh = (cl_long)kv->cap * kv->dim;
        P.k.sn = P.v.sn = kv->dim;
    } else {
        k_host = c->k->memory == EDGEATTN_MEM_HOST;
        v_host = c->v->memory == EDGEATTN_MEM_HOST;
        if (!k_host)
            TRY(dev_view(msg, "k", c->k, &m.k, &P.k));
        if (!v_host)
            TRY(dev_view(msg, "v", c->v, &m.v, &P.v));
    }
    if (!(q_host || o_host || b_host || l_host || k_host || v_host)) {
        for (int b0 = 0; b0 < c->B; b0 += EA_OCL_SEQ_MAX) {
            const int nb = c->B - b0 < EA_OCL_SEQ_MAX ? c->B - b0 : EA_OCL_SEQ_MAX;
            int nq_max = c->Nq; /* ragged decode: no launch for rows no sequence has */
            if (c->q_lens) {
                nq_max = 1;
                for (int bl = 0; bl < nb; bl++)
                    nq_max = c->q_lens[b0 + bl] > nq_max ? c->q_lens[b0 + bl] : nq_max;
            }
            int step = nq_max; /* with RoPE, the positions of a launch fit the angle table */
            if (c->decode && c->rope && step * nb > s->lay.rope_rows)
                step = s->lay.rope_rows / nb > 0 ? s->lay.rope_rows / nb : 1;
            for (int i0 = 0; i0 < nq_max; i0 += step)
                TRY(run_launch(s, msg, c, &P, &m, b0, nb, 0, c->Hkv, i0, nq_max - i0 < step ? nq_max - i0 : step));
        }
        return EDGEATTN_OK;
    }

    /* host tensors: units of (sequence, KV heads, query rows) through the staging area */
    const ea_ocl_layout *L = &s->lay;
    const size_t es_kv = ea_dtype_size(c->kv_dtype), es_q = ea_dtype_size(c->q->dtype),
                 es_o = ea_dtype_size(c->out->dtype);
    const int group = c->group, D = c->D;
    if (k_host)
        m.k = s->work;
    if (v_host)
        m.v = s->work;
    if (q_host)
        m.q = s->work;
    if (o_host)
        m.o = s->work;
    if (b_host)
        m.bias = s->work;
    if (l_host)
        m.lse = s->work;
    for (int b = 0; b < c->B; b++) {
        const int kv_len = c->decode ? c->cache->held[ea_kv_idx(c->cache, c->layer, c->seq_ids[b])]
                                     : (c->kv_lens ? c->kv_lens[b] : c->Nkv);
        const int nq_b = c->decode && c->q_lens ? c->q_lens[b] : c->Nq; /* rows past it: not computed nor read */
        int nh = c->Hkv;
        if ((k_host || v_host) && kv_len > 0) {
            const size_t per = (size_t)kv_len * (size_t)D * es_kv;
            const size_t fit = L->st_kv_bytes / per;
            nh = fit < (size_t)nh ? (int)fit : nh;
        }
        if (nh * group > L->rows_cap)
            nh = L->rows_cap / group;
        if (nh < 1)
            nh = 1;
        for (int h0 = 0; h0 < c->Hkv; h0 += nh) {
            const int nhc = c->Hkv - h0 < nh ? c->Hkv - h0 : nh;
            cl_int err = CL_SUCCESS;
            if (k_host)
                err = slab_xfer(s, X_WRITE, c->k, b, h0, nhc, 0, kv_len, D, L->st_k, &P.k);
            if (err == CL_SUCCESS && v_host)
                err = slab_xfer(s, X_WRITE, c->v, b, h0, nhc, 0, kv_len, D, L->st_v, &P.v);
            if (err != CL_SUCCESS)
                return ea_ocl_fail_cl(msg, err, "staging k/v (clEnqueueWriteBufferRect)");
            int ni = L->rows_cap / (nhc * group);
            ni = ni < 1 ? 1 : ni > nq_b ? nq_b : ni;
            if (c->decode && c->rope && ni > L->rope_rows)
                ni = L->rope_rows;
            for (int i0 = 0; i0 < nq_b; i0 += ni) {
                const int nic = nq_b - i0 < ni ? nq_b - i0 : ni;
                const size_t rows = (size_t)nhc * (size_t)group * (size_t)nic;
                size_t off = L->st_rows;
                const size_t q_off = off;
                off = align256(off + rows * (size_t)D * es_q);
                const size_t o_off = off;
                off = align256(off + rows * (size_t)D * es_o);
                const size_t l_off = off;
                off = align256(off + rows * 4);
                const size_t b_off = off;
                const int hq0 = h0 * group, nhq = nhc * group;
                if (q_host && err == CL_SUCCESS)
                    err = slab_xfer(s, X_WRITE, c->q, b, hq0, nhq, i0, nic, D, q_off, &P.q);
                if (b_host && kv_len > 0 && err == CL_SUCCESS)
                    err = slab_xfer(s, X_WRITE, c->bias, b, hq0, nhq, i0, nic, kv_len, b_off, &P.bias);
                if (err != CL_SUCCESS)
                    return ea_ocl_fail_cl(msg, err, "staging q/bias (clEnqueueWriteBufferRect)");
                if (o_host) { /* where the kernel writes: the staged layout of the same slab */
                    const bool ho = c->out->stride[1] >= c->out->stride[2];
                    P.o.sb = 0;
                    P.o.sh = ho ? (cl_long)nic * D : D;
                    P.o.sn = ho ? D : (cl_long)nhq * D;
                    P.o.off = (cl_long)(o_off / es_o) - hq0 * P.o.sh - (cl_long)i0 * P.o.sn;
                }
                if (l_host) {
                    const bool ho = c->lse->stride[1] >= c->lse->stride[2];
                    P.lse.sb = 0;
                    P.lse.sh = ho ? nic : 1;
                    P.lse.sn = ho ? 1 : nhq;
                    P.lse.off = (cl_long)(l_off / 4) - hq0 * P.lse.sh - (cl_long)i0 * P.lse.sn;
                }
                TRY(run_launch(s, msg, c, &P, &m, b, 1, h0, nhc, i0, nic));
                ea_ocl_view dummy;
                if (o_host)
                    err = slab_xfer(s, X_READ, c->out, b, hq0, nhq, i0, nic, D, o_off, &dummy);
                if (l_host && err == CL_SUCCESS)
                    err = slab_xfer(s, X_READ, c->lse, b, hq0, nhq, i0, nic, 1, l_off, &dummy);
                if (err != CL_SUCCESS)
                    return ea_ocl_fail_cl(msg, err, "reading out/lse (clEnqueueReadBufferRect)");
            }
        }
    }
    CL_TRY(s, msg, s->api.clFinish(s->queue), "clFinish");
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- KV cache */

/* Can a host source go to the cache with rectangular writes? Not with a stride of 0 over heads or rows
 * (a broadcast input): OpenCL takes a pitch of 0 for "tightly packed". */
static bool direct_ok(const edgeattn_tensor *t)
{
    return (t->shape[1] == 1 || t->stride[1] != 0) && (t->shape[2] == 1 || t->stride[2] != 0);
}

static edgeattn_status launch_kv_write(ea_ocl_state *s, char *msg, cl_mem ks, cl_mem vs, cl_mem kd, cl_mem vd,
                                       const ea_ocl_rows_p *P, size_t rows, size_t nbh)
{
    if (rows == 0 || nbh == 0)
        return EDGEATTN_OK;
    cl_kernel kw = s->k[EA_K_KV_WRITE];
    const cl_mem args[5] = {ks, vs, kd, vd, s->work};
    for (cl_uint i = 0; i < 5; i++)
        TRY(set_arg(s, msg, kw, i, sizeof(cl_mem), &args[i]));
    TRY(set_arg(s, msg, kw, 5, sizeof *P, P));
    const size_t g[3] = {(size_t)P->D / 4, rows, nbh};
    CL_TRY(s, msg, s->api.clEnqueueNDRangeKernel(s->queue, kw, 3, NULL, g, NULL, 0, NULL, NULL),
           "clEnqueueNDRangeKernel(ea_kv_write)");
    return EDGEATTN_OK;
}

/* The rows of an append that part `part` writes (ea_kv_kept): part 0 the sinks rows [0, a1) at slots
 * total + r, part 1 the ring rows [b0, n) at slots sbase + (slot0 + r) mod ring. A cache without sinks
 * has only part 1 (slot (total + r) mod cap, the last cap rows). */
typedef struct kv_part {
    int ra, rb;      /* rows [ra, rb) of the source */
    int sbase, ring; /* slot of row r: sbase + (slot0 + r) mod ring */
    int slot0;
} kv_part;

static kv_part kv_part_of(const ea_kv_cache *kv, int64_t total, int n, int part)
{
    int64_t a1, b0;
    ea_kv_kept(kv, total, n, &a1, &b0);
    kv_part q;
    if (part == 0) {
        q.ra = 0, q.rb = (int)a1;
        q.sbase = 0, q.ring = kv->cap, q.slot0 = (int)(a1 > 0 ? total : 0); /* total + a1 <= sinks: no wrap */
    } else {
        const int64_t w = kv->cap - kv->sinks;
        q.ra = (int)b0, q.rb = n;
        q.sbase = kv->sinks, q.ring = (int)w;
        q.slot0 = (int)(((total - kv->sinks) % w + w) % w); /* rows r >= b0 have total + r >= sinks */
    }
    return q;
}

static edgeattn_status kv_write_rows(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids, const edgeattn_tensor *k,
                                     const edgeattn_tensor *v, const int32_t *n_new)
{
    ea_ocl_state *s = ctx->backend_state;
    char *msg = ctx->msg;
    const ea_kv_cache *kv = &ctx->kv;
    const int B = (int)k->shape[0], H = (int)k->shape[1], N = (int)k->shape[2], D = (int)k->shape[3];
    const int cap = kv->cap;
    const size_t ces = ea_dtype_size(kv->dtype);
    const size_t head_bytes = (size_t)cap * (size_t)D * ces;
    const ea_rope *rope = ctx->rope.style != EDGEATTN_ROPE_NONE ? &ctx->rope : NULL;
    const int part_first = kv->sinks > 0 ? 0 : 1; /* a cache without sinks has no sinks rows */
    size_t loff;
    const cl_mem kdst = kv_buf(s, s->kv_k, layer, &loff), vdst = kv_buf(s, s->kv_v, layer, &loff);
    ea_ocl_rows_p P;
    memset(&P, 0, sizeof P);
    P.k_dt = k->dtype;
    P.v_dt = v->dtype;
    P.cache_dt = kv->dtype;
    P.heads = kv->heads;
    P.cap = cap;
    P.D = D;
    P.kd_off = P.vd_off = (cl_long)(loff / ces);
    const bool paged = kv->page > 0;
    if (paged) { /* the page tables of the call's rows (core has mapped every page this call writes) */
        int pitch = 1;
        for (int b = 0; b < B; b++) {
            const int n = n_new ? n_new[b] : N;
            const int64_t total = kv->total[ea_kv_idx(kv, layer, seq_ids[b])];
            for (int part = part_first; part < 2; part++) {
                const kv_part q = kv_part_of(kv, total, n, part);
                const int e = ptab_entries(kv, q.sbase + (q.slot0 + q.ra) % q.ring, q.rb - q.ra);
                pitch = e > pitch ? e : pitch;
            }
        }
        TRY(ptab_upload(s, msg, kv, layer, seq_ids, B, pitch));
        P.pt_off = (cl_long)(s->lay.ptab / 4);
        P.page_elems = (cl_long)kv->page_elems;
        P.page_shift = kv->page_shift;
        P.pt_pitch = pitch;
    }
    if (rope) {
        P.rope_style = rope->style;
        P.rope_dim = rope->dim;
        P.rope_off = (cl_long)(s->lay.rope / sizeof(float));
    }
    const bool k_host = k->memory == EDGEATTN_MEM_HOST, v_host = v->memory == EDGEATTN_MEM_HOST;
    /* a host source of the cache dtype goes straight into the ring (keys only without RoPE; a paged
     * cache always through the kernel, which finds the pages) */
    const bool k_direct = k_host && k->dtype == kv->dtype && !rope && !paged && direct_ok(k);
    const bool v_direct = v_host && v->dtype == kv->dtype && !paged && direct_ok(v);
    P.wk = !k_direct;
    P.wv = !v_direct;
    cl_mem km = s->work, vm = s->work;
    if (!k_host)
        TRY(dev_view(msg, "k", k, &km, &P.k));
    if (!v_host)
        TRY(dev_view(msg, "v", v, &vm, &P.v));
    const edgeattn_tensor *src[2] = {k, v};
    const bool direct[2] = {k_direct, v_direct};
    const cl_mem dst[2] = {kdst, vdst};
    for (int b = 0; b < B && (k_direct || v_direct); b++) {
        const int n = n_new ? n_new[b] : N;
        const int32_t seq = seq_ids[b];
        const int64_t total = kv->total[ea_kv_idx(kv, layer, seq)];
        for (int part = part_first; part < 2; part++) {
            const kv_part q = kv_part_of(kv, total, n, part);
            for (int t = 0; t < 2; t++) {
                if (!direct[t])
                    continue;
                const size_t ses = ea_dtype_size(src[t]->dtype);
                int r = q.ra;
                while (r < q.rb) { /* runs of consecutive slots (up to the ring's end) */
                    const int rs = (q.slot0 + r) % q.ring, slot = q.sbase + rs;
                    const int len = q.rb - r < q.ring - rs ? q.rb - r : q.ring - rs;
                    char *hp = (char *)src[t]->data + (size_t)(b * src[t]->stride[0] + (int64_t)r * src[t]->stride[2]) * ses;
                    const size_t doff = loff + ((size_t)seq * (size_t)kv->heads * (size_t)cap + (size_t)slot) * (size_t)D * ces;
                    const cl_int err = box_xfer(s, X_WRITE, true, hp, NULL, 0, (size_t)src[t]->stride[1] * ses,
                                                (size_t)src[t]->stride[2] * ses, dst[t], doff, head_bytes, (size_t)D * ces,
                                                (size_t)D * ces, (size_t)H, (size_t)len);
                    if (err != CL_SUCCESS)
                        return ea_ocl_fail_cl(msg, err, "kv_append: clEnqueueWriteBufferRect");
                    r += len;
                }
            }
        }
    }
    if (!P.wk && !P.wv)
        return EDGEATTN_OK;
    int64_t pos0[EA_OCL_SEQ_MAX];
    int cnt[EA_OCL_SEQ_MAX];
    if (!(P.wk && k_host) && !(P.wv && v_host)) {
        /* device sources: launches of up to EA_OCL_SEQ_MAX sequences (each part of a sinks cache its own);
         * with RoPE, pieces of rows whose positions fit the angle table */
        for (int part = part_first; part < 2; part++)
            for (int b0 = 0; b0 < B; b0 += EA_OCL_SEQ_MAX) {
                const int nb = B - b0 < EA_OCL_SEQ_MAX ? B - b0 : EA_OCL_SEQ_MAX;
                int chunk = N;
                if (rope && chunk * nb > s->lay.rope_rows)
                    chunk = s->lay.rope_rows / nb > 0 ? s->lay.rope_rows / nb : 1;
                P.b0 = b0, P.h0 = 0, P.nh = H;
                for (int off = 0;; off += chunk) {
                    int rows = 0; /* the launch's longest run (a ring keeps only the last rows of N) */
                    for (int bl = 0; bl < nb; bl++) {
                        const int b = b0 + bl, n = n_new ? n_new[b] : N;
                        const int32_t seq = seq_ids[b];
                        const int64_t total = kv->total[ea_kv_idx(kv, layer, seq)];
                        const kv_part q = kv_part_of(kv, total, n, part);
                        const int ra = q.ra + off < q.rb ? q.ra + off : q.rb;
                        const int rb = ra + chunk < q.rb ? ra + chunk : q.rb;
                        P.sbase = q.sbase, P.ring = q.ring; /* the same for every sequence of a part */
                        P.r0[bl] = ra;
                        P.n[bl] = rb;
                        P.dseq[bl] = seq;
                        P.slot0[bl] = q.slot0;
                        P.tab0[bl] = bl * chunk;
                        pos0[bl] = total + ra;
                        cnt[bl] = rb - ra;
                        rows = rb - ra > rows ? rb - ra : rows;
                    }
                    if (rows == 0)
                        break;
                    if (rope)
                        TRY(rope_upload(s, msg, rope, nb, pos0, P.tab0, cnt, (size_t)nb * (size_t)chunk));
                    TRY(launch_kv_write(s, msg, km, vm, kdst, vdst, &P, (size_t)rows, (size_t)nb * (size_t)H));
                }
            }
        return EDGEATTN_OK;
    }
    /* host sources for the kernel: per sequence and part, pieces of rows (the angle table) and of heads
     * (the staging area), staged with rectangular writes and converted (and rotated) on the device */
    for (int b = 0; b < B; b++)
        for (int part = part_first; part < 2; part++) {
            const int n = n_new ? n_new[b] : N;
            const int32_t seq = seq_ids[b];
            const int64_t total = kv->total[ea_kv_idx(kv, layer, seq)];
            const kv_part q = kv_part_of(kv, total, n, part);
            if (q.rb - q.ra <= 0)
                continue;
            int chunk = q.rb - q.ra;
            if (rope && chunk > s->lay.rope_rows)
                chunk = s->lay.rope_rows;
            for (int ra = q.ra; ra < q.rb; ra += chunk) {
                const int rb = q.rb - ra < chunk ? q.rb : ra + chunk;
                P.b0 = b;
                P.r0[0] = ra;
                P.n[0] = rb;
                P.dseq[0] = seq;
                P.slot0[0] = q.slot0;
                P.sbase = q.sbase, P.ring = q.ring;
                P.tab0[0] = 0;
                if (rope) {
                    pos0[0] = total + ra;
                    cnt[0] = rb - ra;
                    TRY(rope_upload(s, msg, rope, 1, pos0, P.tab0, cnt, (size_t)(rb - ra)));
                }
                const size_t per_head = (size_t)(rb - ra) * (size_t)D * 4;
                int nh = (int)(s->lay.st_kv_bytes / per_head);
                nh = nh < 1 ? 1 : nh > H ? H : nh;
                for (int h0 = 0; h0 < H; h0 += nh) {
                    const int nhc = H - h0 < nh ? H - h0 : nh;
                    cl_mem km2 = km, vm2 = vm;
                    ea_ocl_rows_p P2 = P;
                    cl_int err = CL_SUCCESS;
                    if (P.wk && k_host) {
                        err = slab_xfer(s, X_WRITE, k, b, h0, nhc, ra, rb - ra, D, s->lay.st_k, &P2.k);
                        km2 = s->work;
                    }
                    if (err == CL_SUCCESS && P.wv && v_host) {
                        err = slab_xfer(s, X_WRITE, v, b, h0, nhc, ra, rb - ra, D, s->lay.st_v, &P2.v);
                        vm2 = s->work;
                    }
                    if (err != CL_SUCCESS)
                        return ea_ocl_fail_cl(msg, err, "kv_append: staging (clEnqueueWriteBufferRect)");
                    P2.h0 = h0, P2.nh = nhc;
                    TRY(launch_kv_write(s, msg, km2, vm2, kdst, vdst, &P2, (size_t)(rb - ra), (size_t)nhc));
                }
            }
        }
    return EDGEATTN_OK;
}

/* Top-k caches: the block summaries of the rows an append stored (after they are stored, in queue order).
 * Such caches have no window, so the rows are [0, n) at slots total + r. */
static edgeattn_status kv_summaries(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids, int B, int N, int H,
                                    int D, const int32_t *n_new)
{
    ea_ocl_state *s = ctx->backend_state;
    char *msg = ctx->msg;
    const ea_kv_cache *kv = &ctx->kv;
    const ea_ocl_layout *L = &s->lay;
    size_t loff;
    const cl_mem kdst = kv_buf(s, s->kv_k, layer, &loff);
    ea_ocl_rows_p P;
    memset(&P, 0, sizeof P);
    P.cache_dt = kv->dtype;
    P.heads = kv->heads;
    P.cap = kv->cap;
    P.D = D;
    P.kd_off = (cl_long)(loff / ea_dtype_size(kv->dtype));
    P.ring = kv->cap;
    P.nh = H;
    const cl_long s_off = (cl_long)layer * s->max_batch * kv->max_heads * L->nsblk * 2 * kv->max_dim;
    const cl_int sblk = L->sblk, nsblk = L->nsblk, mheads = kv->max_heads, mdim = kv->max_dim;
    cl_kernel k = s->k[EA_K_SUMM];
    for (int b0 = 0; b0 < B; b0 += EA_OCL_SEQ_MAX) {
        const int nb = B - b0 < EA_OCL_SEQ_MAX ? B - b0 : EA_OCL_SEQ_MAX;
        for (int bl = 0; bl < nb; bl++) {
            const int32_t seq = seq_ids[b0 + bl];
            P.r0[bl] = 0;
            P.n[bl] = n_new ? n_new[b0 + bl] : N;
            P.dseq[bl] = seq;
            P.slot0[bl] = (cl_int)(kv->total[ea_kv_idx(kv, layer, seq)] % kv->cap);
        }
        TRY(set_arg(s, msg, k, 0, sizeof(cl_mem), &kdst));
        TRY(set_arg(s, msg, k, 1, sizeof(cl_mem), &s->summ));
        TRY(set_arg(s, msg, k, 2, sizeof P, &P));
        TRY(set_arg(s, msg, k, 3, sizeof s_off, &s_off));
        TRY(set_arg(s, msg, k, 4, sizeof sblk, &sblk));
        TRY(set_arg(s, msg, k, 5, sizeof nsblk, &nsblk));
        TRY(set_arg(s, msg, k, 6, sizeof mheads, &mheads));
        TRY(set_arg(s, msg, k, 7, sizeof mdim, &mdim));
        const size_t g[3] = {(size_t)D, (size_t)H, (size_t)nb};
        CL_TRY(s, msg, s->api.clEnqueueNDRangeKernel(s->queue, k, 3, NULL, g, NULL, 0, NULL, NULL),
               "clEnqueueNDRangeKernel(ea_kv_summ)");
    }
    return EDGEATTN_OK;
}

edgeattn_status ea_ocl_kv_write(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids, const edgeattn_tensor *k,
                                const edgeattn_tensor *v, const int32_t *n_new)
{
    TRY(kv_write_rows(ctx, layer, seq_ids, k, v, n_new));
    const ea_ocl_state *s = ctx->backend_state;
    if (s->summ)
        TRY(kv_summaries(ctx, layer, seq_ids, (int)k->shape[0], (int)k->shape[2], (int)k->shape[1], (int)k->shape[3],
                         n_new));
    return EDGEATTN_OK;
}

edgeattn_status ea_ocl_kv_copy(edgeattn_context *ctx, int32_t layer, int32_t src, int32_t dst)
{
    ea_ocl_state *s = ctx->backend_state;
    const ea_kv_cache *kv = &ctx->kv;
    /* a sequence's rows of one layer are one block: [heads][cap][dim] */
    const size_t per = (size_t)kv->heads * (size_t)kv->cap * (size_t)kv->dim * ea_dtype_size(kv->dtype);
    for (int t = 0; t < 2; t++) {
        size_t loff;
        const cl_mem buf = kv_buf(s, t ? s->kv_v : s->kv_k, layer, &loff);
        CL_TRY(s, ctx->msg,
               s->api.clEnqueueCopyBuffer(s->queue, buf, buf, loff + (size_t)src * per, loff + (size_t)dst * per, per, 0,
                                          NULL, NULL),
               "kv_fork: clEnqueueCopyBuffer");
    }
    if (s->summ) { /* the block summaries belong to the rows: [max_heads][nsblk][2][max_dim] per sequence */
        const size_t per_s = (size_t)kv->max_heads * (size_t)s->lay.nsblk * 2 * (size_t)kv->max_dim * sizeof(float);
        const size_t l0 = (size_t)layer * (size_t)s->max_batch * per_s;
        CL_TRY(s, ctx->msg,
               s->api.clEnqueueCopyBuffer(s->queue, s->summ, s->summ, l0 + (size_t)src * per_s, l0 + (size_t)dst * per_s,
                                          per_s, 0, NULL, NULL),
               "kv_fork: clEnqueueCopyBuffer (block summaries)");
    }
    return EDGEATTN_OK;
}

edgeattn_status ea_ocl_kv_page_copy(edgeattn_context *ctx, int32_t src, int32_t dst)
{
    ea_ocl_state *s = ctx->backend_state;
    const size_t bytes = ctx->kv.page_elems * ea_dtype_size(ctx->kv.dtype);
    for (int t = 0; t < 2; t++) {
        const cl_mem buf = t ? s->kv_v[0] : s->kv_k[0];
        CL_TRY(s, ctx->msg,
               s->api.clEnqueueCopyBuffer(s->queue, buf, buf, (size_t)src * bytes, (size_t)dst * bytes, bytes, 0, NULL,
                                          NULL),
               "kv_append: copying a shared KV page (clEnqueueCopyBuffer)");
    }
    return EDGEATTN_OK;
}

edgeattn_status ea_ocl_kv_read(edgeattn_context *ctx, int32_t layer, int32_t seq, int32_t slot, int32_t n,
                               const edgeattn_tensor *k, const edgeattn_tensor *v, int64_t row0)
{
    ea_ocl_state *s = ctx->backend_state;
    char *msg = ctx->msg;
    const ea_kv_cache *kv = &ctx->kv;
    const int H = kv->heads, D = kv->dim, cap = kv->cap;
    const size_t ces = ea_dtype_size(kv->dtype);
    const edgeattn_tensor *out[2] = {k, v};
    for (int t = 0; t < 2; t++) {
        const edgeattn_tensor *x = out[t];
        const size_t es = ea_dtype_size(x->dtype);
        size_t loff;
        const cl_mem buf = kv_buf(s, t ? s->kv_v : s->kv_k, layer, &loff);
        /* row of head 0 at slot (a paged cache: [slot, slot + n) inside one page) and the head pitch */
        const size_t elem0 = kv->page > 0 ? ea_kv_row_elem(kv, layer, seq, 0, slot)
                                          : loff / ces + ((size_t)seq * (size_t)H * (size_t)cap + (size_t)slot) * (size_t)D;
        const size_t hpitch = (size_t)(kv->page > 0 ? kv->page : cap) * (size_t)D;
        char *host = (char *)x->data + (size_t)(row0 * x->stride[2]) * es;
        const size_t hp1 = (size_t)x->stride[1] * es, hp2 = (size_t)x->stride[2] * es;
        if (x->dtype == kv->dtype) { /* as stored: rectangular reads straight from the ring */
            const cl_int err = box_xfer(s, X_READ, true, host, NULL, 0, hp1, hp2, buf, elem0 * ces, hpitch * ces,
                                        (size_t)D * ces, (size_t)D * ces, (size_t)H, (size_t)n);
            if (err != CL_SUCCESS)
                return ea_ocl_fail_cl(msg, err, "kv_read: clEnqueueReadBufferRect");
            continue;
        }
        /* converted on the device into the staging area (heads at a time), then read */
        const size_t per_head = (size_t)n * (size_t)D * es;
        int nh = (int)(s->lay.st_kv_bytes / per_head);
        nh = nh < 1 ? 1 : nh > H ? H : nh;
        const size_t st = t ? s->lay.st_v : s->lay.st_k;
        for (int h0 = 0; h0 < H; h0 += nh) {
            const int nhc = H - h0 < nh ? H - h0 : nh;
            const ea_ocl_view sv = {(cl_long)(elem0 + (size_t)h0 * hpitch), 0, (cl_long)hpitch, D};
            const ea_ocl_view tv = {(cl_long)(st / es), 0, (cl_long)n * D, D};
            const cl_int sdt = kv->dtype, tdt = x->dtype;
            cl_kernel kc = s->k[EA_K_CONVERT];
            TRY(set_arg(s, msg, kc, 0, sizeof(cl_mem), &buf));
            TRY(set_arg(s, msg, kc, 1, sizeof(cl_mem), &s->work));
            TRY(set_arg(s, msg, kc, 2, sizeof sv, &sv));
            TRY(set_arg(s, msg, kc, 3, sizeof tv, &tv));
            TRY(set_arg(s, msg, kc, 4, sizeof sdt, &sdt));
            TRY(set_arg(s, msg, kc, 5, sizeof tdt, &tdt));
            const size_t g[3] = {(size_t)D / 4, (size_t)n, (size_t)nhc};
            CL_TRY(s, msg, s->api.clEnqueueNDRangeKernel(s->queue, kc, 3, NULL, g, NULL, 0, NULL, NULL),
                   "clEnqueueNDRangeKernel(ea_convert)");
            const cl_int err = box_xfer(s, X_READ, true, host + (size_t)h0 * hp1, NULL, 0, hp1, hp2, s->work, st,
                                        per_head, (size_t)D * es, (size_t)D * es, (size_t)nhc, (size_t)n);
            if (err != CL_SUCCESS)
                return ea_ocl_fail_cl(msg, err, "kv_read: clEnqueueReadBufferRect");
        }
    }
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- NaN/Inf scan */

edgeattn_status ea_ocl_check_finite(edgeattn_context *ctx, const edgeattn_tensor *t, bool neg_inf_ok, bool *finite)
{
    ea_ocl_state *s = ctx->backend_state;
    char *msg = ctx->msg;
    ea_ocl_api *a = &s->api;
    cl_mem mem;
    ea_ocl_view v;
    TRY(dev_view(msg, "tensor", t, &mem, &v));
    const cl_uint zero = 0;
    CL_TRY(s, msg, a->clEnqueueFillBuffer(s->queue, s->work, &zero, sizeof zero, s->lay.flag, sizeof zero, 0, NULL, NULL),
           "clEnqueueFillBuffer");
    cl_kernel k = s->k[EA_K_FINITE];
    const cl_int dt = t->dtype, H = (cl_int)t->shape[1], N = (cl_int)t->shape[2], D = (cl_int)t->shape[3];
    const cl_int nio = neg_inf_ok;
    const cl_mem flag_mem = s->work;
    TRY(set_arg(s, msg, k, 0, sizeof(cl_mem), &mem));
    TRY(set_arg(s, msg, k, 1, sizeof v, &v));
    TRY(set_arg(s, msg, k, 2, sizeof dt, &dt));
    TRY(set_arg(s, msg, k, 3, sizeof H, &H));
    TRY(set_arg(s, msg, k, 4, sizeof N, &N));
    TRY(set_arg(s, msg, k, 5, sizeof D, &D));
    TRY(set_arg(s, msg, k, 6, sizeof nio, &nio));
    const cl_long flag_off = (cl_long)(s->lay.flag / 4);
    TRY(set_arg(s, msg, k, 7, sizeof(cl_mem), &flag_mem));
    TRY(set_arg(s, msg, k, 8, sizeof flag_off, &flag_off));
    const size_t hn = (size_t)H * (size_t)N;
    const size_t g[2] = {(hn + 63) / 64 * 64, (size_t)t->shape[0]};
    CL_TRY(s, msg, a->clEnqueueNDRangeKernel(s->queue, k, 2, NULL, g, NULL, 0, NULL, NULL),
           "clEnqueueNDRangeKernel(ea_finite)");
    cl_uint flag = 0;
    CL_TRY(s, msg, a->clEnqueueReadBuffer(s->queue, s->work, CL_TRUE, s->lay.flag, sizeof flag, &flag, 0, NULL, NULL),
           "clEnqueueReadBuffer(flag)");
    *finite = flag == 0;
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- copy */

edgeattn_status ea_ocl_copy(edgeattn_context *ctx, const edgeattn_tensor *dst, const edgeattn_tensor *src)
{
    ea_ocl_state *s = ctx->backend_state;
    char *msg = ctx->msg;
    const size_t es = ea_dtype_size(src->dtype), row = (size_t)src->shape[3] * es;
    const bool sh = src->memory == EDGEATTN_MEM_HOST, dh = dst->memory == EDGEATTN_MEM_HOST;
    cl_mem sm = NULL, dm = NULL;
    ea_ocl_view sv, dv;
    if (!sh)
        TRY(dev_view(msg, "copy: src", src, &sm, &sv));
    if (!dh)
        TRY(dev_view(msg, "copy: dst", dst, &dm, &dv));
    for (int64_t b = 0; b < src->shape[0]; b++) {
        const size_t so = (size_t)(b * src->stride[0]) * es, dof = (size_t)(b * dst->stride[0]) * es;
        const size_t sp1 = (size_t)src->stride[1] * es, sp2 = (size_t)src->stride[2] * es;
        const size_t dp1 = (size_t)dst->stride[1] * es, dp2 = (size_t)dst->stride[2] * es;
        const size_t n1 = (size_t)src->shape[1], n2 = (size_t)src->shape[2];
        cl_int err = CL_SUCCESS;
        if (sh && dh) {
            for (size_t i = 0; i < n1; i++)
                for (size_t j = 0; j < n2; j++)
                    memmove((char *)dst->data + dof + i * dp1 + j * dp2, (const char *)src->data + so + i * sp1 + j * sp2,
                            row);
        } else if (sh) {
            err = box_xfer(s, X_WRITE, true, (char *)src->data + so, NULL, 0, sp1, sp2, dm, dst->offset + dof, dp1, dp2,
                           row, n1, n2);
        } else if (dh) {
            err = box_xfer(s, X_READ, false, (char *)dst->data + dof, NULL, 0, dp1, dp2, sm, src->offset + so, sp1, sp2,
                           row, n1, n2);
        } else {
            err = box_xfer(s, X_COPY, false, NULL, sm, src->offset + so, sp1, sp2, dm, dst->offset + dof, dp1, dp2, row,
                           n1, n2);
        }
        if (err != CL_SUCCESS)
            return ea_ocl_fail_cl(msg, err, "copy");
    }
    if (dh && !sh)
        CL_TRY(s, msg, s->api.clFinish(s->queue), "clFinish");
    return EDGEATTN_OK;
}

/* ---------------------------------------------------------------- ceilings */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds the event ran (profiling), or -1. */
static double event_seconds(ea_ocl_api *a, cl_event e)
{
    cl_ulong t0 = 0, t1 = 0;
    if (a->clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) != CL_SUCCESS ||
        a->clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) != CL_SUCCESS || t1 <= t0)
        return -1.0;
    return 1e-9 * (double)(t1 - t0);
}

/* Waits for the command just enqueued (err: its enqueue status) and gives its duration: from its
 * profiling event e when there is one, else host time since t0. Releases e. Returns the status. */
static cl_int finish_timed(ea_ocl_api *a, cl_command_queue q, cl_int err, cl_event e, double t0, double *t)
{
    if (err == CL_SUCCESS)
        err = a->clFinish(q);
    *t = now_s() - t0;
    if (e) {
        const double te = event_seconds(a, e);
        if (te > 0)
            *t = te;
        a->clReleaseEvent(e);
    }
    return err;
}

edgeattn_status ea_ocl_ceilings(edgeattn_context *ctx, edgeattn_ceilings *out)
{
    ea_ocl_state *s = ctx->backend_state;
    char *msg = ctx->msg;
    ea_ocl_api *a = &s->api;
    cl_int err;
    CL_TRY(s, msg, a->clFinish(s->queue), "clFinish");
    /* a temporary profiling queue on the same device; wall clock if the driver refuses one */
    cl_command_queue q = a->clCreateCommandQueue(s->context, s->device, CL_QUEUE_PROFILING_ENABLE, &err);
    const bool prof = q && err == CL_SUCCESS;
    if (!prof)
        q = s->queue;
    size_t bytes = (size_t)256 << 20;
    if (bytes > s->max_alloc / 2)
        bytes = (size_t)(s->max_alloc / 2);
    if (bytes > s->global_mem / 8)
        bytes = (size_t)(s->global_mem / 8);
    bytes &= ~(size_t)4095;
    cl_mem bufs[2] = {NULL, NULL};
    edgeattn_status st = EDGEATTN_OK;
    for (int i = 0; i < 2 && st == EDGEATTN_OK; i++) {
        bufs[i] = ea_ocl_create_buffer(a, s->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
        if (!bufs[i] || err != CL_SUCCESS) {
            bufs[i] = NULL;
            st = ea_fail(msg, EDGEATTN_ERR_OUT_OF_MEMORY, "measure_ceilings: could not obtain %zu bytes", bytes);
        }
    }
    double best_copy = 0.0, best_fma = 0.0;
    if (st == EDGEATTN_OK) {
        const cl_uchar zero = 0;
        err = a->clEnqueueFillBuffer(q, bufs[0], &zero, 1, 0, bytes, 0, NULL, NULL);
        if (err == CL_SUCCESS)
            err = a->clEnqueueCopyBuffer(q, bufs[0], bufs[1], 0, 0, bytes, 0, NULL, NULL); /* warm-up */
        if (err == CL_SUCCESS)
            err = a->clFinish(q);
        for (int rep = 0; rep < 5 && err == CL_SUCCESS; rep++) {
            cl_event e = NULL;
            const double t0 = now_s();
            err = a->clEnqueueCopyBuffer(q, bufs[rep & 1], bufs[1 - (rep & 1)], 0, 0, bytes, 0, NULL, prof ? &e : NULL);
            double t;
            err = finish_timed(a, q, err, e, t0, &t);
            if (err == CL_SUCCESS && t > 0 && 2.0 * (double)bytes / t > best_copy)
                best_copy = 2.0 * (double)bytes / t;
        }
        /* FMA: grow the iteration count until a launch takes ~50 ms */
        cl_kernel k = s->k[EA_K_PEAK];
        const size_t wg = s->max_wg >= 256 ? 256 : s->max_wg;
        const size_t global = (size_t)s->cus * wg * (s->type & CL_DEVICE_TYPE_CPU ? 1 : 16);
        int iters = 256;
        const cl_float seed = 1.0f;
        for (int rep = 0; rep < 12 && err == CL_SUCCESS; rep++) {
            if ((err = a->clSetKernelArg(k, 0, sizeof(cl_mem), &bufs[0])) != CL_SUCCESS ||
                (err = a->clSetKernelArg(k, 1, sizeof iters, &iters)) != CL_SUCCESS ||
                (err = a->clSetKernelArg(k, 2, sizeof seed, &seed)) != CL_SUCCESS)
                break;
            cl_event e = NULL;
            const double t0 = now_s();
            err = a->clEnqueueNDRangeKernel(q, k, 1, NULL, &global, &wg, 0, NULL, prof ? &e : NULL);
            double t;
            err = finish_timed(a, q, err, e, t0, &t);
            if (err != CL_SUCCESS || t <= 0)
                break;
            const double flops = 64.0 * (double)iters * (double)global / t;
            if (t > 0.02 && flops > best_fma)
                best_fma = flops;
            if (t < 0.05 && iters < (1 << 24))
                iters *= t < 0.005 ? 8 : 2;
            else if (rep >= 6)
                break;
        }
        if (err != CL_SUCCESS)
            st = ea_ocl_fail_cl(msg, err, "measure_ceilings");
    }
    for (int i = 0; i < 2; i++)
        if (bufs[i])
            a->clReleaseMemObject(bufs[i]);
    if (prof)
        a->clReleaseCommandQueue(q);
    if (st != EDGEATTN_OK)
        return st;
    out->copy_gbps = best_copy / 1e9;
    out->compute_tflops = best_fma / 1e12;
    snprintf(out->compute_what, sizeof out->compute_what, "FP32 FMA (OpenCL, %u CUs)", (unsigned)s->cus);
    return EDGEATTN_OK;
}
