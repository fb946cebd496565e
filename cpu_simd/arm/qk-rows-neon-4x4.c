/*
 * Unpacked QK on NEON for decode and small row groups: s[r][j] = sum_d q[r][d] * K[j][d] for
 * r < mr <= 8, j < n (any n <= EA_KB_MAX), K read in its storage dtype (f32, f16, bf16) straight from
 * the tensor or the KV cache and widened to f32 in registers (exact); accumulation is FP32.
 *
 * Decode is bound by the bytes of K, so the kernel reads each K row from memory once for all mr
 * rows (the GQA group): keys are the outer loop in blocks of 4, and the row blocks of that key
 * block run while its 4 rows (at most 4 x 256 x 4 bytes) are in L1.
 * Register blocking: 4 rows x 4 keys = 16 accumulators of 4 partial sums along d; per step of 8
 * along d, 4 K loads (one 128-bit load of 8 f16/bf16, or two of f32) widened to 8 vectors, 2 q
 * vectors per row, 32 FMLA. With 1 or 2 rows, the low and high halves of each 8-step go to separate
 * accumulators so that 8 or 16 independent FMA chains still cover the FMA latency.
 * Dot products need one horizontal reduction each; it is done once per (row, 4 keys) at the end with
 * two pairwise adds, vpaddq(vpaddq(c0, c1), vpaddq(c2, c3)) = {sum c0, sum c1, sum c2, sum c3}, which
 * is also the vector stored to s[r][j..j+3]. The last n % 4 keys take a 1-key path (vaddvq).
 */
#include "cpu_simd/arm/neon-common.h"

/* RB rows x KB keys starting at row q/s and key k; KB is 4 or 1, RB 1..4 (constants). */
static EA_ALWAYS_INLINE void qk_tile(const int dt, const int RB, const int KB, int dim,
                                     const float *restrict q, ptrdiff_t ldq,
                                     const void *restrict k, ptrdiff_t k0, ptrdiff_t ldk,
                                     float *restrict s, ptrdiff_t lds)
{
    const int SPLIT = RB * KB <= 8; /* separate accumulators for the high half of each 8-step */
    float32x4_t c[4][4][2];
    _Pragma("GCC unroll 4") for (int r = 0; r < RB; r++)
        _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++)
        {
            c[r][kb][0] = vdupq_n_f32(0.0f);
            c[r][kb][1] = vdupq_n_f32(0.0f);
        }
    for (int d = 0; d < dim; d += 8) {
        float32x4_t klo[4], khi[4];
        _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++)
            ea_neon_ld8(dt, k, (k0 + kb) * ldk + d, &klo[kb], &khi[kb]);
        _Pragma("GCC unroll 4") for (int r = 0; r < RB; r++)
        {
            const float32x4_t qlo = vld1q_f32(q + r * ldq + d);
            const float32x4_t qhi = vld1q_f32(q + r * ldq + d + 4);
            _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++)
            {
                c[r][kb][0] = vfmaq_f32(c[r][kb][0], qlo, klo[kb]);
                c[r][kb][SPLIT] = vfmaq_f32(c[r][kb][SPLIT], qhi, khi[kb]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < RB; r++)
    {
        float32x4_t t[4];
        _Pragma("GCC unroll 4") for (int kb = 0; kb < KB; kb++)
            t[kb] = SPLIT ? vaddq_f32(c[r][kb][0], c[r][kb][1]) : c[r][kb][0];
        if (KB == 4)
            vst1q_f32(s + r * lds + k0, vpaddq_f32(vpaddq_f32(t[0], t[1]), vpaddq_f32(t[2], t[3])));
        else
            s[r * lds + k0] = vaddvq_f32(t[0]);
    }
}

/* All mr rows for the KB keys at k0: row blocks of 4, then the remaining 1..3 rows. */
static EA_ALWAYS_INLINE void qk_keys(const int dt, const int KB, int mr, int dim,
                                     const float *restrict q, ptrdiff_t ldq,
                                     const void *restrict k, ptrdiff_t k0, ptrdiff_t ldk,
                                     float *restrict s, ptrdiff_t lds)
{
    int r = 0;
    for (; r + 4 <= mr; r += 4)
        qk_tile(dt, 4, KB, dim, q + r * ldq, ldq, k, k0, ldk, s + r * lds, lds);
    switch (mr - r) {
    case 3: qk_tile(dt, 3, KB, dim, q + r * ldq, ldq, k, k0, ldk, s + r * lds, lds); break;
    case 2: qk_tile(dt, 2, KB, dim, q + r * ldq, ldq, k, k0, ldk, s + r * lds, lds); break;
    case 1: qk_tile(dt, 1, KB, dim, q + r * ldq, ldq, k, k0, ldk, s + r * lds, lds); break;
    default: break;
    }
}

static EA_ALWAYS_INLINE void qk_rows_body(const int dt, int mr, int n, int dim,
                                          const float *restrict q, ptrdiff_t ldq,
                                          const void *restrict k, ptrdiff_t ldk,
                                          float *restrict s, ptrdiff_t lds)
{
    int j = 0;
    for (; j + 4 <= n; j += 4)
        qk_keys(dt, 4, mr, dim, q, ldq, k, j, ldk, s, lds);
    for (; j < n; j++)
        qk_keys(dt, 1, mr, dim, q, ldq, k, j, ldk, s, lds);
}

EA_QK_ROWS_FN(ea_qk_rows_f32_neon_4x4)
{
    qk_rows_body(EDGEATTN_F32, mr, n, dim, q, ldq, k, ldk, s, lds);
}

EA_QK_ROWS_FN(ea_qk_rows_f16_neon_4x4)
{
    qk_rows_body(EDGEATTN_F16, mr, n, dim, q, ldq, k, ldk, s, lds);
}

EA_QK_ROWS_FN(ea_qk_rows_bf16_neon_4x4)
{
    qk_rows_body(EDGEATTN_BF16, mr, n, dim, q, ldq, k, ldk, s, lds);
}
