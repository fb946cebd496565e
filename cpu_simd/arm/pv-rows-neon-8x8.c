/*
 * Unpacked PV on NEON for decode and small row groups:
 *   o[r][d] = alpha[r] * o[r][d] + sum_{j<n} p[r][j] * V[j][d],  r < mr <= 8, d < dim, any n,
 * V read in its storage dtype (f32, f16, bf16) straight from the tensor or KV cache, widened to f32
 * in registers (exact); accumulation is FP32.
 *
 * Register blocking: a tile of RB rows x (4*DB) columns of o stays in 16 accumulators while the
 * keys stream by: 8 rows x 8 columns, or 4 (or fewer) rows x 16 columns (x 8 for the last columns of
 * a head dim that is an odd multiple of 8). Per step of 4 keys, one
 * vector p[r][j..j+3] per row whose lanes are the broadcast operands of FMLA-by-element against
 * the widened V row pieces; no horizontal reductions. With 1 or 2 rows, even and odd keys go to
 * separate accumulators so there are enough independent FMA chains.
 * Cache blocking: a column tile reads a narrow strip of every V row, so the keys are taken in
 * chunks of about 16 KB of V; the first column tile of a chunk brings its lines into L1 and the
 * others (and the other row blocks) find them there. V is read from memory once per call.
 */
#include "cpu_simd/arm/neon-common.h"

#define PVR_STEP(L)                                                                                 \
    do {                                                                                            \
        _Pragma("GCC unroll 4") for (int db = 0; db < DB; db += 2)                                  \
        {                                                                                           \
            float32x4_t b0, b1;                                                                     \
            ea_neon_ld8(dt, v, (j + (L)) * ldv + d0 + 4 * db, &b0, &b1);                            \
            _Pragma("GCC unroll 8") for (int r = 0; r < RB; r++)                                    \
            {                                                                                       \
                c[r][db][(L) & SPLIT] = vfmaq_laneq_f32(c[r][db][(L) & SPLIT], b0, a[r], L);        \
                c[r][db + 1][(L) & SPLIT] =                                                         \
                    vfmaq_laneq_f32(c[r][db + 1][(L) & SPLIT], b1, a[r], L);                        \
            }                                                                                       \
        }                                                                                           \
    } while (0)

/* Keys [j0, j1) for RB rows x 4*DB columns from d0 (RB, DB constants) starting at p/o; the first
 * chunk applies alpha. */
static EA_ALWAYS_INLINE void pv_cols(const int dt, const int RB, const int DB, int j0, int j1, int d0,
                                     const float *restrict p, ptrdiff_t ldp,
                                     const void *restrict v, ptrdiff_t ldv,
                                     const float *restrict alpha, float *restrict o, ptrdiff_t ldo)
{
    const int SPLIT = RB <= 2;
    float32x4_t c[8][4][2];
    _Pragma("GCC unroll 8") for (int r = 0; r < RB; r++)
    {
        const float a = j0 == 0 ? alpha[r] : 1.0f;
        _Pragma("GCC unroll 4") for (int db = 0; db < DB; db++)
        {
            const float32x4_t x = vld1q_f32(o + r * ldo + d0 + 4 * db);
            c[r][db][0] = j0 == 0 ? vmulq_n_f32(x, a) : x;
            c[r][db][1] = vdupq_n_f32(0.0f);
        }
    }
    int j = j0;
    for (; j + 4 <= j1; j += 4) {
        float32x4_t a[8];
        _Pragma("GCC unroll 8") for (int r = 0; r < RB; r++)
            a[r] = vld1q_f32(p + r * ldp + j);
        PVR_STEP(0);
        PVR_STEP(1);
        PVR_STEP(2);
        PVR_STEP(3);
    }
    for (; j < j1; j++) { /* last n % 4 keys */
        _Pragma("GCC unroll 4") for (int db = 0; db < DB; db++)
        {
            const float32x4_t b = ea_neon_ld4(dt, v, j * ldv + d0 + 4 * db);
            _Pragma("GCC unroll 8") for (int r = 0; r < RB; r++)
                c[r][db][0] = vfmaq_n_f32(c[r][db][0], b, p[r * ldp + j]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < RB; r++)
        _Pragma("GCC unroll 4") for (int db = 0; db < DB; db++)
            vst1q_f32(o + r * ldo + d0 + 4 * db,
                      SPLIT ? vaddq_f32(c[r][db][0], c[r][db][1]) : c[r][db][0]);
}

/* Keys [j0, j1) for RB rows (constant) starting at p/o, every column. */
static EA_ALWAYS_INLINE void pv_chunk(const int dt, const int RB, int j0, int j1, int dim,
                                      const float *restrict p, ptrdiff_t ldp,
                                      const void *restrict v, ptrdiff_t ldv,
                                      const float *restrict alpha, float *restrict o,
                                      ptrdiff_t ldo)
{
    const int DB = RB > 4 ? 2 : 4; /* vectors of 4 columns per row: 8x8 or RBx16 */
    int d0 = 0;
    for (; d0 + 4 * DB <= dim; d0 += 4 * DB)
        pv_cols(dt, RB, DB, j0, j1, d0, p, ldp, v, ldv, alpha, o, ldo);
    if (d0 < dim) /* DB == 4 and 8 columns left: dim an odd multiple of 8 */
        pv_cols(dt, RB, 2, j0, j1, d0, p, ldp, v, ldv, alpha, o, ldo);
}

static EA_ALWAYS_INLINE void pv_rows_body(const int dt, int mr, int n, int dim,
                                          const float *restrict p, ptrdiff_t ldp,
                                          const void *restrict v, ptrdiff_t ldv,
                                          const float *restrict alpha, float *restrict o,
                                          ptrdiff_t ldo)
{
    const int esize = dt == EDGEATTN_F32 ? 4 : 2;
    int jc = (16384 / (dim * esize)) & ~3;
    if (jc < 4)
        jc = 4;
    for (int j0 = 0; j0 < n; j0 += jc) {
        const int j1 = j0 + jc < n ? j0 + jc : n;
        if (mr == 8) {
            pv_chunk(dt, 8, j0, j1, dim, p, ldp, v, ldv, alpha, o, ldo);
            continue;
        }
        int r = 0;
        for (; r + 4 <= mr; r += 4)
            pv_chunk(dt, 4, j0, j1, dim, p + r * ldp, ldp, v, ldv, alpha + r, o + r * ldo, ldo);
        switch (mr - r) {
        case 3: pv_chunk(dt, 3, j0, j1, dim, p + r * ldp, ldp, v, ldv, alpha + r, o + r * ldo, ldo); break;
        case 2: pv_chunk(dt, 2, j0, j1, dim, p + r * ldp, ldp, v, ldv, alpha + r, o + r * ldo, ldo); break;
        case 1: pv_chunk(dt, 1, j0, j1, dim, p + r * ldp, ldp, v, ldv, alpha + r, o + r * ldo, ldo); break;
        default: break;
        }
    }
}

EA_PV_ROWS_FN(ea_pv_rows_f32_neon_8x8)
{
    pv_rows_body(EDGEATTN_F32, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo);
}

EA_PV_ROWS_FN(ea_pv_rows_f16_neon_8x8)
{
    pv_rows_body(EDGEATTN_F16, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo);
}

EA_PV_ROWS_FN(ea_pv_rows_bf16_neon_8x8)
{
    pv_rows_body(EDGEATTN_BF16, mr, n, dim, p, ldp, v, ldv, alpha, o, ldo);
}
