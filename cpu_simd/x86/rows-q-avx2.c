/*
 * Q·Kᵀ and P·V over quantised KV-cache rows (Q8, Q4: the layout is in core/ea_core.h), AVX2, for
 * decode and other small row counts. The row stride ld* counts bytes; K and V are read only inside
 * their rows (ea_kv_row_units bytes each).
 *
 * Q·Kᵀ runs in integers: each query row is rounded to int16 with its own scale (max |q| / 32767), and
 * each 16 levels of a key, widened to int16, meet it in vpmaddwd into int32 lanes (at most 16 x 2 x
 * 32767 x 128 per lane for a head dim of 256: no overflow); a key's eight lanes per row are reduced
 * by a transpose-add tree and scaled once by the key's and the row's scales. Q4 nibbles u enter as
 * they are, and 7.5 times the row's integer sum comes off each dot product (levels u - 7.5). int8 queries (vpmaddubsw) were tried: the channel
 * scales folded into q make a few of its values 10-20x the rest, and 8 bits left the small ones too
 * coarse (Q8 relative error 1.7e-2 on model-like keys); 16 bits cost the same instructions per value.
 *
 * P·V runs in floats: a chunk of up to 64 keys has P scaled by each key's scale first (one product
 * per row and key, not per column), then the levels are widened 8 at a time and multiplied into mr x
 * NV accumulators per column block (as pv-rows-avx2-m4n16.c); Q4's -7.5 comes off once per block as
 * 7.5 times the chunk's sum of scaled P.
 *
 * The packers (prefill over the cache, many query rows) widen 8 values of a row at a time into x̂,
 * transposed 8 x 8 in registers for Kᵀ (as pack-kt-avx2-8x8.c).
 */
#include "cpu_simd/x86/avx2-common.h"
#include "cpu_simd/x86/kernels-x86.h"
#include "cpu_simd/rows-q.h"

enum { Q8 = 0, Q4 = 1 };

EA_AINLINE int q_data(const int Q, int dim) { return Q == Q8 ? dim : dim / 2; }

/* ---------------------------------------------------------------- Q·Kᵀ */

/* Levels 32g .. 32g + 31 of a key as int16, in two vectors (Q4: the nibbles u; the caller takes
 * 7.5 sum(q) off, since q . (u - 7.5) = q . u - 7.5 sum(q)). */
EA_AINLINE void k_levels(const int Q, const uint8_t *row, int g, __m256i *lo, __m256i *hi)
{
    if (Q == Q8) {
        *lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(row + 32 * g)));
        *hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(row + 32 * g + 16)));
        return;
    }
    const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(row + 16 * g));
    const __m128i m = _mm_set1_epi8(15);
    *lo = _mm256_cvtepu8_epi16(_mm_and_si128(b, m));
    *hi = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(b, 4), m));
}

EA_AINLINE void qk_keys(const int Q, const int MR, const int KP, int dim, const int16_t *restrict qi,
                        const uint8_t *restrict k, ptrdiff_t ldk, __m256 *restrict buf, int jj)
{
    __m256i acc[EA_MR][2];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 2") for (int kp = 0; kp < KP; kp++)
            acc[r][kp] = _mm256_setzero_si256();
    for (int g = 0; g < dim / 32; g++) {
        __m256i kl[2], kh[2];
        _Pragma("GCC unroll 2") for (int kp = 0; kp < KP; kp++)
            k_levels(Q, k + kp * ldk, g, &kl[kp], &kh[kp]);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
            const __m256i ql = _mm256_load_si256((const __m256i *)(const void *)(qi + r * dim + 32 * g));
            const __m256i qh = _mm256_load_si256((const __m256i *)(const void *)(qi + r * dim + 32 * g + 16));
            _Pragma("GCC unroll 2") for (int kp = 0; kp < KP; kp++)
                acc[r][kp] = _mm256_add_epi32(acc[r][kp], _mm256_add_epi32(_mm256_madd_epi16(ql, kl[kp]),
                                                                           _mm256_madd_epi16(qh, kh[kp])));
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 2") for (int kp = 0; kp < KP; kp++)
            buf[r * 8 + jj + kp] = _mm256_cvtepi32_ps(acc[r][kp]);
}

EA_AINLINE void qk_rows(const int Q, const int MR, int n, int dim, const float *restrict q, ptrdiff_t ldq,
                        const uint8_t *restrict k, ptrdiff_t ldk, float *restrict s, ptrdiff_t lds)
{
    /* the query rows in int16, 32-byte aligned rows of dim */
    _Alignas(32) int16_t qi[EA_MR * 256];
    float qs[EA_MR], qsum[EA_MR]; /* qsum: 7.5 times the sum of the row's integers (Q4) */
    for (int r = 0; r < MR; r++) {
        __m256 mx = _mm256_setzero_ps();
        const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        for (int d = 0; d < dim; d += 8)
            mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_load_ps(q + r * ldq + d), absmask));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        const float top = _mm_cvtss_f32(m4);
        qs[r] = top / 32767.0f;
        const __m256 inv = _mm256_set1_ps(top > 0.0f ? 32767.0f / top : 0.0f);
        for (int d = 0; d < dim; d += 16) {
            /* round to nearest (|q| * inv <= 32767); the pack interleaves 128-bit lanes, the permute
             * puts them back */
            const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_load_ps(q + r * ldq + d), inv));
            const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_load_ps(q + r * ldq + d + 8), inv));
            _mm256_store_si256((__m256i *)(void *)(qi + r * dim + d),
                               _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8));
        }
        int32_t sum = 0;
        for (int d = 0; Q == Q4 && d < dim; d++)
            sum += qi[r * dim + d];
        qsum[r] = 7.5f * (float)sum; /* the sum exact (below 2^24), its product rounded once */
    }
    const int KP = MR <= 4 ? 2 : 1;
    const int data = q_data(Q, dim);
    __m256 buf[EA_MR * 8];
    for (int j0 = 0; j0 < n; j0 += 8) {
        const int nk = n - j0 < 8 ? n - j0 : 8;
        int jj = 0;
        for (; jj + KP <= nk; jj += KP)
            qk_keys(Q, MR, KP, dim, qi, k + (ptrdiff_t)(j0 + jj) * ldk, ldk, buf, jj);
        for (; jj < nk; jj++)
            qk_keys(Q, MR, 1, dim, qi, k + (ptrdiff_t)(j0 + jj) * ldk, ldk, buf, jj);
        float ks[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int z = 0; z < nk; z++)
            ks[z] = ea_q_row_scale(k + (ptrdiff_t)(j0 + z) * ldk, data);
        const __m256 ksv = _mm256_loadu_ps(ks);
        if (nk < 8) {
            for (int r = 0; r < MR; r++)
                for (int z = nk; z < 8; z++)
                    buf[r * 8 + z] = _mm256_setzero_ps();
            const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(nk), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            for (int r = 0; r < MR; r++)
                _mm256_maskstore_ps(s + r * lds + j0, live,
                                    _mm256_mul_ps(_mm256_sub_ps(ea256_reduce8(buf + r * 8), _mm256_set1_ps(qsum[r])),
                                              _mm256_mul_ps(ksv, _mm256_set1_ps(qs[r]))));
        } else {
            for (int r = 0; r < MR; r++)
                _mm256_store_ps(s + r * lds + j0,
                                _mm256_mul_ps(_mm256_sub_ps(ea256_reduce8(buf + r * 8), _mm256_set1_ps(qsum[r])),
                                              _mm256_mul_ps(ksv, _mm256_set1_ps(qs[r]))));
        }
    }
}

EA_AINLINE void qk_rows_mr(const int Q, int mr, int n, int dim, const float *restrict q, ptrdiff_t ldq,
                           const void *restrict k, ptrdiff_t ldk, float *restrict s, ptrdiff_t lds)
{
    const uint8_t *kb = k;
    switch (mr) {
    case 8: qk_rows(Q, 8, n, dim, q, ldq, kb, ldk, s, lds); break;
    case 7: qk_rows(Q, 7, n, dim, q, ldq, kb, ldk, s, lds); break;
    case 6: qk_rows(Q, 6, n, dim, q, ldq, kb, ldk, s, lds); break;
    case 5: qk_rows(Q, 5, n, dim, q, ldq, kb, ldk, s, lds); break;
    case 4: qk_rows(Q, 4, n, dim, q, ldq, kb, ldk, s, lds); break;
    case 3: qk_rows(Q, 3, n, dim, q, ldq, kb, ldk, s, lds); break;
    case 2: qk_rows(Q, 2, n, dim, q, ldq, kb, ldk, s, lds); break;
    default: qk_rows(Q, 1, n, dim, q, ldq, kb, ldk, s, lds); break;
    }
}

EA_QK_ROWS_FN(ea_qk_rows_q8_avx2_n8) { qk_rows_mr(Q8, mr, n, dim, q, ldq, k, ldk, s, lds); }
EA_QK_ROWS_FN(ea_qk_rows_q4_avx2_n8) { qk_rows_mr(Q4, mr, n, dim, q, ldq, k, ldk, s, lds); }

/* ---------------------------------------------------------------- P·V */

/* Levels d0 .. d0 + 8 NV - 1 of a V row as floats (d0 a multiple of 8 NV, NV <= 2: inside one block
 * of 32; Q4: the nibbles u, its -7.5 applied by the caller). */
EA_AINLINE void v_levels(const int Q, const int NV, const uint8_t *row, int d0, __m256 *vv)
{
    if (Q == Q8) {
        _Pragma("GCC unroll 2") for (int c = 0; c < NV; c++)
            vv[c] = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(row + d0 + 8 * c))));
        return;
    }
    __m128i b = NV == 2 ? _mm_loadu_si128((const __m128i *)(const void *)(row + (d0 >> 5) * 16))
                        : _mm_loadl_epi64((const __m128i *)(const void *)(row + (d0 >> 5) * 16 + (d0 & 8)));
    if (d0 & 16)
        b = _mm_srli_epi16(b, 4);
    b = _mm_and_si128(b, _mm_set1_epi8(15));
    vv[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
    if (NV == 2)
        vv[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)));
}

EA_AINLINE void pv_block(const int Q, const int MR, const int NV, int n, const float *restrict pt,
                         const float *restrict psum, const uint8_t *restrict v, ptrdiff_t ldv, int d0,
                         const float *restrict alpha, float *restrict o, ptrdiff_t ldo)
{
    __m256 acc[EA_MR][2];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 2") for (int c = 0; c < NV; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
        __m256 vv[2];
        v_levels(Q, NV, v + (ptrdiff_t)j * ldv, d0, vv);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
            const __m256 b = _mm256_broadcast_ss(pt + r * EA_Q_PV_CHUNK + j);
            _Pragma("GCC unroll 2") for (int c = 0; c < NV; c++)
                acc[r][c] = _mm256_fmadd_ps(b, vv[c], acc[r][c]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        const __m256 a = _mm256_broadcast_ss(alpha + r);
        const __m256 off = _mm256_set1_ps(Q == Q4 ? -7.5f * psum[r] : 0.0f);
        _Pragma("GCC unroll 2") for (int c = 0; c < NV; c++) {
            float *dst = o + r * ldo + d0 + 8 * c;
            _mm256_store_ps(dst, _mm256_fmadd_ps(a, _mm256_load_ps(dst), _mm256_add_ps(acc[r][c], off)));
        }
    }
}

EA_AINLINE void pv_rows(const int Q, const int MR, int n, int dim, const float *restrict p, ptrdiff_t ldp,
                        const uint8_t *restrict v, ptrdiff_t ldv, const float *restrict alpha, float *restrict o,
                        ptrdiff_t ldo)
{
    static const float ones[EA_MR] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    const int NV = MR <= 4 ? 2 : 1; /* 8 NV divides 32: a block never straddles two */
    const int data = q_data(Q, dim);
    _Alignas(32) float pt[EA_MR * EA_Q_PV_CHUNK]; /* P times each key's scale */
    float psum[EA_MR];
    for (int j0 = 0; j0 < n; j0 += EA_Q_PV_CHUNK) {
        const int nc = n - j0 < EA_Q_PV_CHUNK ? n - j0 : EA_Q_PV_CHUNK;
        ea_q_scale_p(MR, nc, p, ldp, j0, v, ldv, data, pt, psum);
        for (int d0 = 0; d0 < dim; d0 += 8 * NV) /* alpha with the first chunk only */
            pv_block(Q, MR, NV, nc, pt, psum, v + (ptrdiff_t)j0 * ldv, ldv, d0, j0 == 0 ? alpha : ones, o, ldo);
    }
}

EA_AINLINE void pv_rows_mr(const int Q, int mr, int n, int dim, const float *restrict p, ptrdiff_t ldp,
                           const void *restrict v, ptrdiff_t ldv, const float *restrict alpha, float *restrict o,
                           ptrdiff_t ldo)
{
    const uint8_t *vb = v;
    switch (mr) {
    case 8: pv_rows(Q, 8, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 7: pv_rows(Q, 7, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 6: pv_rows(Q, 6, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 5: pv_rows(Q, 5, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 4: pv_rows(Q, 4, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 3: pv_rows(Q, 3, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    case 2: pv_rows(Q, 2, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    default: pv_rows(Q, 1, n, dim, p, ldp, vb, ldv, alpha, o, ldo); break;
    }
}

EA_PV_ROWS_FN(ea_pv_rows_q8_avx2_m4n16) { pv_rows_mr(Q8, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }
EA_PV_ROWS_FN(ea_pv_rows_q4_avx2_m4n16) { pv_rows_mr(Q4, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo); }

/* ---------------------------------------------------------------- packers (prefill over the cache) */

/* x̂ of values d .. d + 7 of a row (d a multiple of 8), s its scale broadcast. */
EA_AINLINE __m256 q_load8(const int Q, const uint8_t *row, int d, __m256 s)
{
    if (Q == Q8)
        return _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(row + d)))), s);
    __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)(row + (d >> 5) * 16 + (d & 8)));
    if (d & 16)
        b = _mm_srli_epi16(b, 4);
    b = _mm_and_si128(b, _mm_set1_epi8(15));
    const __m256 u = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
    return _mm256_mul_ps(_mm256_sub_ps(u, _mm256_set1_ps(7.5f)), s);
}

/* kt[d][j] = x̂ of key j, value d: 8 keys x 8 values widened, transposed in registers, stored. */
EA_AINLINE void pack_kt_q(const int Q, int n, int nb_pad, int dim, const uint8_t *restrict k, ptrdiff_t ldk,
                          float *restrict kt, ptrdiff_t ldkt)
{
    const int data = q_data(Q, dim);
    for (int j0 = 0; j0 < nb_pad; j0 += 8) {
        const int rows = n - j0 < 8 ? (n - j0 > 0 ? n - j0 : 0) : 8;
        __m256 sc[8];
        for (int i = 0; i < 8; i++)
            sc[i] = _mm256_set1_ps(i < rows ? ea_q_row_scale(k + (ptrdiff_t)(j0 + i) * ldk, data) : 0.0f);
        for (int d0 = 0; d0 < dim; d0 += 8) {
            __m256 t[8];
            for (int i = 0; i < 8; i++)
                t[i] = i < rows ? q_load8(Q, k + (ptrdiff_t)(j0 + i) * ldk, d0, sc[i]) : _mm256_setzero_ps();
            if (rows > 0)
                ea256_transpose8(t);
            for (int i = 0; i < 8; i++)
                _mm256_store_ps(kt + (ptrdiff_t)(d0 + i) * ldkt + j0, t[i]);
        }
    }
}

/* v32[j][d] = x̂ of row j, value d; rows n..nb_pad-1 zero. */
EA_AINLINE void pack_v_q(const int Q, int n, int nb_pad, int dim, const uint8_t *restrict v, ptrdiff_t ldv,
                         float *restrict v32, ptrdiff_t ldo)
{
    const int data = q_data(Q, dim);
    int j = 0;
    for (; j < n; j++) {
        const uint8_t *row = v + (ptrdiff_t)j * ldv;
        const __m256 s = _mm256_set1_ps(ea_q_row_scale(row, data));
        for (int d = 0; d < dim; d += 8)
            _mm256_store_ps(v32 + (ptrdiff_t)j * ldo + d, q_load8(Q, row, d, s));
    }
    for (; j < nb_pad; j++)
        for (int d = 0; d < dim; d += 8)
            _mm256_store_ps(v32 + (ptrdiff_t)j * ldo + d, _mm256_setzero_ps());
}

EA_PACK_KT_FN(ea_pack_kt_q8_avx2_8x8) { pack_kt_q(Q8, n, nb_pad, dim, k, ldk, kt, ldkt); }
EA_PACK_KT_FN(ea_pack_kt_q4_avx2_8x8) { pack_kt_q(Q4, n, nb_pad, dim, k, ldk, kt, ldkt); }
EA_PACK_V_FN(ea_pack_v_q8_avx2) { pack_v_q(Q8, n, nb_pad, dim, v, ldv, v32, ldo); }
EA_PACK_V_FN(ea_pack_v_q4_avx2) { pack_v_q(Q4, n, nb_pad, dim, v, ldv, v32, ldo); }
