/*
 * Q·Kᵀ and P·V over quantised KV-cache rows (Q8, Q4: the layout is in core/ea_core.h) on NEON, for
 * decode and other small row counts. The row stride ld* counts bytes; K and V are read only inside
 * their rows (ea_kv_row_units bytes each). The same scheme as cpu_simd/x86/rows-q-avx2.c:
 *
 * Q·Kᵀ in integers: each query row rounded to int16 with its own scale (max |q| / 32767), each key's
 * levels widened to int16 (Q4: 2u - 15, at half the scale) and multiplied in with SMLAL into int32
 * lanes (at most 64 x 32767 x 128 per lane for a head dim of 256: no overflow); one reduction per
 * (row, key), then the row's and the key's scales. Per 8 values a key costs one widening, shared by
 * the rows, and two SMLAL per row, where floats would cost five conversions and two FMLA.
 *
 * P·V in floats: P scaled by each key's scale per chunk of 64 keys, the levels widened and converted
 * per column block of NV x 4 (held in mr x NV accumulators), Q4's -7.5 taken off once per block.
 *
 * The packers (prefill over the cache) widen 8 values of a row at a time into x̂, transposed 4 x 4 in
 * registers for Kᵀ.
 */
#include "cpu_simd/arm/neon-common.h"
#include "cpu_simd/rows-q.h"

enum { Q8 = 0, Q4 = 1 };

/* ---------------------------------------------------------------- Q·Kᵀ */

/* Levels 32g .. 32g + 31 of a key as four int16x8 vectors (Q4: 2u - 15). */
static EA_ALWAYS_INLINE void k_levels(const int Q, const uint8_t *row, int g, int16x8_t *w)
{
    if (Q == Q8) {
        const int8x16_t a = vld1q_s8((const int8_t *)(row + 32 * g)), b = vld1q_s8((const int8_t *)(row + 32 * g + 16));
        w[0] = vmovl_s8(vget_low_s8(a));
        w[1] = vmovl_high_s8(a);
        w[2] = vmovl_s8(vget_low_s8(b));
        w[3] = vmovl_high_s8(b);
        return;
    }
    const uint8x16_t b = vld1q_u8(row + 16 * g);
    const uint8x16_t lo = vandq_u8(b, vdupq_n_u8(15)), hi = vshrq_n_u8(b, 4);
    const int8x16_t l = vsubq_s8(vreinterpretq_s8_u8(vaddq_u8(lo, lo)), vdupq_n_s8(15));
    const int8x16_t h = vsubq_s8(vreinterpretq_s8_u8(vaddq_u8(hi, hi)), vdupq_n_s8(15));
    w[0] = vmovl_s8(vget_low_s8(l));
    w[1] = vmovl_high_s8(l);
    w[2] = vmovl_s8(vget_low_s8(h));
    w[3] = vmovl_high_s8(h);
}

/* RB rows x KB keys (KB 4 or 1): s[r][k0 + kb] = qs[r] ks[kb] (qi[r] . levels of key k0 + kb). */
static EA_ALWAYS_INLINE void qk_tile(const int Q, const int RB, const int KB, int dim, const int16_t *restrict qi,
                                     const float *restrict qs, const uint8_t *restrict k, ptrdiff_t ldk,
                                     const float *restrict ks, float *restrict s, ptrdiff_t lds)
{
    int32x4_t c[4][4];
    _Pragma("GCC unroll 4") for (int r = 0; r < RB; r++)
        _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++)
            c[r][kb] = vdupq_n_s32(0);
    for (int g = 0; g < dim / 32; g++) {
        _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++) {
            int16x8_t w[4];
            k_levels(Q, k + kb * ldk, g, w);
            _Pragma("GCC unroll 4") for (int r = 0; r < RB; r++) {
                const int16_t *qr = qi + r * dim + 32 * g;
                _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
                    const int16x8_t qv = vld1q_s16(qr + 8 * i);
                    c[r][kb] = vmlal_s16(c[r][kb], vget_low_s16(qv), vget_low_s16(w[i]));
                    c[r][kb] = vmlal_high_s16(c[r][kb], qv, w[i]);
                }
            }
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < RB; r++) {
        if (KB == 4) {
            const int32x4_t t = vpaddq_s32(vpaddq_s32(c[r][0], c[r][1]), vpaddq_s32(c[r][2], c[r][3]));
            vst1q_f32(s + r * lds, vmulq_n_f32(vmulq_f32(vcvtq_f32_s32(t), vld1q_f32(ks)), qs[r]));
        } else {
            s[r * lds] = (float)vaddvq_s32(c[r][0]) * ks[0] * qs[r];
        }
    }
}

static EA_ALWAYS_INLINE void qk_keys(const int Q, const int KB, int mr, int dim, const int16_t *restrict qi,
                                     const float *restrict qs, const uint8_t *restrict k, ptrdiff_t ldk,
                                     const float *restrict ks, float *restrict s, ptrdiff_t lds)
{
    int r = 0;
    for (; r + 4 <= mr; r += 4)
        qk_tile(Q, 4, KB, dim, qi + r * dim, qs + r, k, ldk, ks, s + r * lds, lds);
    switch (mr - r) {
    case 3: qk_tile(Q, 3, KB, dim, qi + r * dim, qs + r, k, ldk, ks, s + r * lds, lds); break;
    case 2: qk_tile(Q, 2, KB, dim, qi + r * dim, qs + r, k, ldk, ks, s + r * lds, lds); break;
    case 1: qk_tile(Q, 1, KB, dim, qi + r * dim, qs + r, k, ldk, ks, s + r * lds, lds); break;
    default: break;
    }
}

static EA_ALWAYS_INLINE void qk_rows_q(const int Q, int mr, int n, int dim, const float *restrict q, ptrdiff_t ldq,
                                       const uint8_t *restrict k, ptrdiff_t ldk, float *restrict s, ptrdiff_t lds)
{
    int16_t qi[EA_MR * 256];
    float qs[EA_MR];
    for (int r = 0; r < mr; r++) {
        float32x4_t mx = vdupq_n_f32(0.0f);
        for (int d = 0; d < dim; d += 4)
            mx = vmaxq_f32(mx, vabsq_f32(vld1q_f32(q + r * ldq + d)));
        const float top = vmaxvq_f32(mx);
        qs[r] = top / 32767.0f;
        const float inv = top > 0.0f ? 32767.0f / top : 0.0f;
        for (int d = 0; d < dim; d += 8) { /* round to nearest, |q| * inv <= 32767 */
            const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(q + r * ldq + d), inv));
            const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(q + r * ldq + d + 4), inv));
            vst1q_s16(qi + r * dim + d, vcombine_s16(vqmovn_s32(a), vqmovn_s32(b)));
        }
    }
    const int data = Q == Q8 ? dim : dim / 2;
    const float half = Q == Q4 ? 0.5f : 1.0f; /* Q4's integers 2u - 15 are twice the levels */
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        float ks[4];
        for (int z = 0; z < 4; z++)
            ks[z] = ea_q_row_scale(k + (ptrdiff_t)(j + z) * ldk, data) * half;
        qk_keys(Q, 4, mr, dim, qi, qs, k + (ptrdiff_t)j * ldk, ldk, ks, s + j, lds);
    }
    for (; j < n; j++) {
        const float ks = ea_q_row_scale(k + (ptrdiff_t)j * ldk, data) * half;
        qk_keys(Q, 1, mr, dim, qi, qs, k + (ptrdiff_t)j * ldk, ldk, &ks, s + j, lds);
    }
}

EA_QK_ROWS_FN(ea_qk_rows_q8_neon_4x4) { qk_rows_q(Q8, mr, n, dim, q, ldq, k, ldk, s, lds); }
EA_QK_ROWS_FN(ea_qk_rows_q4_neon_4x4) { qk_rows_q(Q4, mr, n, dim, q, ldq, k, ldk, s, lds); }

/* ---------------------------------------------------------------- P·V */

/* Levels d0 .. d0 + 4 NV - 1 of a V row as floats (NV 2 or 4: inside one block of 32; Q4: u). */
static EA_ALWAYS_INLINE void v_levels(const int Q, const int NV, const uint8_t *row, int d0, float32x4_t *vv)
{
    int16x8_t w[2];
    if (Q == Q8) {
        const int8x8_t a = vld1_s8((const int8_t *)(row + d0));
        w[0] = vmovl_s8(a);
        if (NV == 4)
            w[1] = vmovl_s8(vld1_s8((const int8_t *)(row + d0 + 8)));
    } else {
        /* bytes 16g + (d0 & 15) .. + 4 NV - 1: low nibbles for d0 & 16 == 0, else high */
        const uint8_t *p = row + (d0 >> 5) * 16 + (d0 & 15);
        uint8x8_t a = vld1_u8(p);
        a = (d0 & 16) ? vshr_n_u8(a, 4) : vand_u8(a, vdup_n_u8(15));
        w[0] = vreinterpretq_s16_u16(vmovl_u8(a));
        if (NV == 4) {
            uint8x8_t b = vld1_u8(p + 8);
            b = (d0 & 16) ? vshr_n_u8(b, 4) : vand_u8(b, vdup_n_u8(15));
            w[1] = vreinterpretq_s16_u16(vmovl_u8(b));
        }
    }
    _Pragma("GCC unroll 2") for (int h = 0; h < NV / 2; h++) {
        vv[2 * h] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w[h])));
        vv[2 * h + 1] = vcvtq_f32_s32(vmovl_high_s16(w[h]));
    }
}

static EA_ALWAYS_INLINE void pv_block(const int Q, const int MR, const int NV, int n, const float *restrict pt,
                                      const float *restrict psum, const uint8_t *restrict v, ptrdiff_t ldv, int d0,
                                      const float *restrict alpha, float *restrict o, ptrdiff_t ldo)
{
    float32x4_t acc[EA_MR][4];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
            acc[r][c] = vdupq_n_f32(0.0f);
    for (int j = 0; j < n; j++) {
        float32x4_t vv[4];
        v_levels(Q, NV, v + (ptrdiff_t)j * ldv, d0, vv);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
            const float b = pt[r * EA_Q_PV_CHUNK + j];
            _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)
                acc[r][c] = vfmaq_n_f32(acc[r][c], vv[c], b);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        const float off = Q == Q4 ? -7.5f * psum[r] : 0.0f;
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) {
            float *dst = o + r * ldo + d0 + 4 * c;
            vst1q_f32(dst, vfmaq_n_f32(vaddq_f32(acc[r][c], vdupq_n_f32(off)), vld1q_f32(dst), alpha[r]));
        }
    }
}

static EA_ALWAYS_INLINE void pv_rows_q(const int Q, const int MR, int n, int dim, const float *restrict p,
                                       ptrdiff_t ldp, const uint8_t *restrict v, ptrdiff_t ldv,
                                       const float *restrict alpha, float *restrict o, ptrdiff_t ldo)
{
    static const float ones[EA_MR] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    const int NV = MR <= 4 ? 4 : 2; /* 4 NV divides 32: a block never straddles two */
    const int data = Q == Q8 ? dim : dim / 2;
    float pt[EA_MR * EA_Q_PV_CHUNK], psum[EA_MR];
    for (int j0 = 0; j0 < n; j0 += EA_Q_PV_CHUNK) {
        const int nc = n - j0 < EA_Q_PV_CHUNK ? n - j0 : EA_Q_PV_CHUNK;
        ea_q_scale_p(MR, nc, p, ldp, j0, v, ldv, data, pt, psum);
        for (int d0 = 0; d0 < dim; d0 += 4 * NV) /* alpha with the first chunk only */
            pv_block(Q, MR, NV, nc, pt, psum, v + (ptrdiff_t)j0 * ldv, ldv, d0, j0 == 0 ? alpha : ones, o, ldo);
    }
}

static EA_ALWAYS_INLINE void pv_rows_mr(const int Q, int mr, int n, int dim, const float *restrict p, ptrdiff_t ldp,
                                        const void *restrict v, ptrdiff_t ldv, const float *restrict alpha,
                                        float *restrict o, ptrdiff_t ldo)
{
    const uint8_t *vb = v;
    switch (mr) {
    case 8: pv_rows_q(Q, 8, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 7: pv_rows_q(Q, 7, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 6: pv_rows_q(Q, 6, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 5: pv_rows_q(Q, 5, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 4: pv_rows_q(Q, 4, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 3: pv_rows_q(Q, 3, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 2: pv_rows_q(Q, 2, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    default: pv_rows_q(Q, 1, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    }
}

EA_PV_ROWS_FN(ea_pv_rows_q8_neon_4x16) { pv_rows_mr(Q8, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }
EA_PV_ROWS_FN(ea_pv_rows_q4_neon_4x16) { pv_rows_mr(Q4, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }

/* ---------------------------------------------------------------- packers (prefill over the cache) */

/* x̂ of values d .. d + 7 of a row (d a multiple of 8), s its scale. */
static EA_ALWAYS_INLINE void q_load8(const int Q, const uint8_t *row, int d, float s, float32x4_t *lo,
                                     float32x4_t *hi)
{
    int16x8_t w;
    float off = 0.0f;
    if (Q == Q8) {
        w = vmovl_s8(vld1_s8((const int8_t *)(row + d)));
    } else {
        uint8x8_t b = vld1_u8(row + (d >> 5) * 16 + (d & 8));
        b = (d & 16) ? vshr_n_u8(b, 4) : vand_u8(b, vdup_n_u8(15));
        w = vreinterpretq_s16_u16(vmovl_u8(b));
        off = -7.5f;
    }
    *lo = vmulq_n_f32(vaddq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), vdupq_n_f32(off)), s);
    *hi = vmulq_n_f32(vaddq_f32(vcvtq_f32_s32(vmovl_high_s16(w)), vdupq_n_f32(off)), s);
}

/* kt[d][j] = x̂ of key j, value d: 4 keys x 8 values, transposed in registers (as pack-kt-neon-4x4.c). */
static EA_ALWAYS_INLINE void pack_kt_q(const int Q, int n, int nb_pad, int dim, const uint8_t *restrict k,
                                       ptrdiff_t ldk, float *restrict kt, ptrdiff_t ldkt)
{
    const int data = Q == Q8 ? dim : dim / 2;
    const float32x4_t z = vdupq_n_f32(0.0f);
    for (int j = 0; j < nb_pad; j += 4) {
        const int rows = n - j < 4 ? (n - j > 0 ? n - j : 0) : 4;
        float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int i = 0; i < rows; i++)
            s[i] = ea_q_row_scale(k + (ptrdiff_t)(j + i) * ldk, data);
        for (int d = 0; d < dim; d += 8) {
            float32x4_t lo[4], hi[4];
            for (int i = 0; i < 4; i++) {
                if (i < rows) {
                    q_load8(Q, k + (ptrdiff_t)(j + i) * ldk, d, s[i], &lo[i], &hi[i]);
                } else {
                    lo[i] = z;
                    hi[i] = z;
                }
            }
            ea_neon_transpose4(lo[0], lo[1], lo[2], lo[3], kt + d * ldkt + j, ldkt);
            ea_neon_transpose4(hi[0], hi[1], hi[2], hi[3], kt + (d + 4) * ldkt + j, ldkt);
        }
    }
}

/* v32[j][d] = x̂ of row j, value d; rows n..nb_pad-1 zero. */
static EA_ALWAYS_INLINE void pack_v_q(const int Q, int n, int nb_pad, int dim, const uint8_t *restrict v,
                                      ptrdiff_t ldv, float *restrict v32, ptrdiff_t ldo)
{
    const int data = Q == Q8 ? dim : dim / 2;
    for (int j = 0; j < nb_pad; j++) {
        float *row = v32 + (ptrdiff_t)j * ldo;
        const float s = j < n ? ea_q_row_scale(v + (ptrdiff_t)j * ldv, data) : 0.0f;
        for (int d = 0; d < dim; d += 8) {
            float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
            if (j < n)
                q_load8(Q, v + (ptrdiff_t)j * ldv, d, s, &lo, &hi);
            vst1q_f32(row + d, lo);
            vst1q_f32(row + d + 4, hi);
        }
    }
}

EA_PACK_KT_FN(ea_pack_kt_q8_neon_4x4) { pack_kt_q(Q8, n, nb_pad, dim, k, ldk, kt, ldkt); }
EA_PACK_KT_FN(ea_pack_kt_q4_neon_4x4) { pack_kt_q(Q4, n, nb_pad, dim, k, ldk, kt, ldkt); }
EA_PACK_V_FN(ea_pack_v_q8_neon) { pack_v_q(Q8, n, nb_pad, dim, v, ldv, v32, ldo); }
EA_PACK_V_FN(ea_pack_v_q4_neon) { pack_v_q(Q4, n, nb_pad, dim, v, ldv, v32, ldo); }
