/*
 * Transposing pack of a K tile on NEON: kt[d][j] = (float)k[j][d] for j < n, d < dim, and
 * kt[d][j] = 0 for n <= j < nb_pad. One function per storage dtype (f32, f16, bf16).
 *
 * The tile is walked in 4 keys x 4 dims blocks: four row loads (contiguous in K, any alignment),
 * widened to f32 (ea_neon_ld4), transposed in registers with two rounds of TRN1/TRN2 (32-bit, then
 * 64-bit lanes), and stored as four aligned 16-byte pieces of kt rows d..d+3 (j is a multiple of 4,
 * kt is 64-byte aligned with ldkt a multiple of 16). Keys are the outer loop so each block reads
 * four K rows front to back, the pattern the prefetcher follows best. A last block of 1..3 keys
 * loads only the rows that exist and stores zeros for the others, which also starts the padding.
 */
#include "cpu_simd/arm/neon-common.h"

static EA_ALWAYS_INLINE void pack_kt_body(const int dt, int n, int nb_pad, int dim,
                                          const void *restrict k, ptrdiff_t ldk,
                                          float *restrict kt, ptrdiff_t ldkt)
{
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        for (int d = 0; d < dim; d += 4) {
            const float32x4_t r0 = ea_neon_ld4(dt, k, (j + 0) * ldk + d);
            const float32x4_t r1 = ea_neon_ld4(dt, k, (j + 1) * ldk + d);
            const float32x4_t r2 = ea_neon_ld4(dt, k, (j + 2) * ldk + d);
            const float32x4_t r3 = ea_neon_ld4(dt, k, (j + 3) * ldk + d);
            ea_neon_transpose4(r0, r1, r2, r3, kt + d * ldkt + j, ldkt);
        }
    }
    if (j < n) { /* 1..3 keys left: missing rows are zeros (padding) */
        const int left = n - j;
        const float32x4_t z = vdupq_n_f32(0.0f);
        for (int d = 0; d < dim; d += 4) {
            const float32x4_t r0 = ea_neon_ld4(dt, k, j * ldk + d);
            const float32x4_t r1 = left > 1 ? ea_neon_ld4(dt, k, (j + 1) * ldk + d) : z;
            const float32x4_t r2 = left > 2 ? ea_neon_ld4(dt, k, (j + 2) * ldk + d) : z;
            ea_neon_transpose4(r0, r1, r2, z, kt + d * ldkt + j, ldkt);
        }
        j += 4;
    }
    if (j < nb_pad) {
        const float32x4_t z = vdupq_n_f32(0.0f);
        for (int d = 0; d < dim; d++) {
            float *row = kt + d * ldkt;
            for (int jj = j; jj < nb_pad; jj += 4)
                vst1q_f32(row + jj, z);
        }
    }
}

EA_PACK_KT_FN(ea_pack_kt_f32_neon_4x4)
{
    pack_kt_body(EDGEATTN_F32, n, nb_pad, dim, k, ldk, kt, ldkt);
}

EA_PACK_KT_FN(ea_pack_kt_f16_neon_4x4)
{
    pack_kt_body(EDGEATTN_F16, n, nb_pad, dim, k, ldk, kt, ldkt);
}

EA_PACK_KT_FN(ea_pack_kt_bf16_neon_4x4)
{
    pack_kt_body(EDGEATTN_BF16, n, nb_pad, dim, k, ldk, kt, ldkt);
}
