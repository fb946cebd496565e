/*
 * Scalar C micro-kernels: the baseline tier, built everywhere, and the reference the SIMD tiers are
 * checked against (tests/ukernels). Plain loops; the compiler may auto-vectorise them.
 */
#include <math.h>
#include <string.h>

#include "core/ea_core.h"
#include "core/half.h"
#include "cpu_simd/ukernel.h"

static EA_QK_PACKED_FN(qk_f32_scalar)
{
    for (int r = 0; r < mr; r++) {
        float *sr = s + r * lds;
        for (int j = 0; j < nb; j++)
            sr[j] = 0.0f;
        for (int d = 0; d < dim; d++) {
            const float qd = q[r * ldq + d];
            const float *kd = kt + d * ldkt;
            for (int j = 0; j < nb; j++)
                sr[j] += qd * kd[j];
        }
    }
}

static EA_PV_PACKED_FN(pv_f32_scalar)
{
    for (int r = 0; r < mr; r++) {
        float *or_ = o + r * ldo;
        const float a = alpha[r];
        for (int d = 0; d < dim; d++)
            or_[d] *= a;
        for (int j = 0; j < nb; j++) {
            const float pj = p[r * ldp + j];
            const float *vj = v + j * ldv;
            for (int d = 0; d < dim; d++)
                or_[d] += pj * vj[d];
        }
    }
}

static EA_SOFTMAX_FN(softmax_f32_scalar)
{
    for (int r = 0; r < mr; r++) {
        float *sr = s + r * lds;
        float mx = m[r];
        for (int j = 0; j < nb; j++)
            mx = sr[j] > mx ? sr[j] : mx;
        if (mx == -INFINITY) {
            for (int j = 0; j < nb; j++)
                sr[j] = 0.0f;
            alpha[r] = 1.0f;
            continue;
        }
        float sum = 0.0f;
        for (int j = 0; j < nb; j++) {
            const float e = expf(sr[j] - mx); /* expf(-inf) == 0 */
            sr[j] = e;
            sum += e;
        }
        alpha[r] = m[r] == -INFINITY ? 0.0f : expf(m[r] - mx);
        l[r] = l[r] * alpha[r] + sum;
        m[r] = mx;
    }
}

/* Row loaders per storage dtype: row p (dim values) widened to floats. Quantised rows (Q8, Q4; the
 * layout is in core/ea_core.h) read as their normalised values x̂ (the driver folds in the sequence's
 * statistics); their ld* count bytes, the others' elements. */
static void row_f32(const void *p, int dim, float *x)
{
    memcpy(x, p, sizeof(float) * (size_t)dim);
}

static void row_f16(const void *p, int dim, float *x)
{
    for (int d = 0; d < dim; d++)
        x[d] = ea_f16_to_f32(((const uint16_t *)p)[d]);
}

static void row_bf16(const void *p, int dim, float *x)
{
    for (int d = 0; d < dim; d++)
        x[d] = ea_bf16_to_f32(((const uint16_t *)p)[d]);
}

/* Quantised rows: the cache's own dequantiser (core/quant.c), the one kv_read uses. */
static void row_q8(const void *p, int dim, float *x) { ea_q_row_load(EDGEATTN_Q8, p, dim, x); }
static void row_q4(const void *p, int dim, float *x) { ea_q_row_load(EDGEATTN_Q4, p, dim, x); }

/* One definition per dtype through a small macro: the loops are identical, only the row loader and the
 * unit of the row stride (UNIT bytes) differ. Each row is widened once and used by every query row. */
#define DEFINE_DTYPE_KERNELS(sfx, ROW, UNIT)                                                        \
    static EA_PACK_KT_FN(pack_kt_##sfx##_scalar)                                                    \
    {                                                                                               \
        float row[EA_CPU_MAX_DIM];                                                                             \
        for (int j = 0; j < nb_pad; j++) {                                                          \
            if (j < n)                                                                              \
                ROW((const char *)k + (size_t)j * (size_t)ldk * UNIT, dim, row);                    \
            for (int d = 0; d < dim; d++)                                                           \
                kt[d * ldkt + j] = j < n ? row[d] : 0.0f;                                           \
        }                                                                                           \
    }                                                                                               \
    static EA_PACK_V_FN(pack_v_##sfx##_scalar)                                                      \
    {                                                                                               \
        for (int j = 0; j < nb_pad; j++) {                                                          \
            float *row = v32 + j * ldo;                                                             \
            if (j < n)                                                                              \
                ROW((const char *)v + (size_t)j * (size_t)ldv * UNIT, dim, row);                    \
            else                                                                                    \
                for (int d = 0; d < dim; d++)                                                       \
                    row[d] = 0.0f;                                                                  \
        }                                                                                           \
    }                                                                                               \
    static EA_QK_ROWS_FN(qk_rows_##sfx##_scalar)                                                    \
    {                                                                                               \
        float row[EA_CPU_MAX_DIM];                                                                             \
        for (int j = 0; j < n; j++) {                                                               \
            ROW((const char *)k + (size_t)j * (size_t)ldk * UNIT, dim, row);                        \
            for (int r = 0; r < mr; r++) {                                                          \
                float acc = 0.0f;                                                                   \
                for (int d = 0; d < dim; d++)                                                       \
                    acc += q[r * ldq + d] * row[d];                                                 \
                s[r * lds + j] = acc;                                                               \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    static EA_PV_ROWS_FN(pv_rows_##sfx##_scalar)                                                    \
    {                                                                                               \
        float row[EA_CPU_MAX_DIM];                                                                             \
        for (int r = 0; r < mr; r++)                                                                \
            for (int d = 0; d < dim; d++)                                                           \
                o[r * ldo + d] *= alpha[r];                                                         \
        for (int j = 0; j < n; j++) {                                                               \
            ROW((const char *)v + (size_t)j * (size_t)ldv * UNIT, dim, row);                        \
            for (int r = 0; r < mr; r++) {                                                          \
                const float pj = p[r * ldp + j];                                                    \
                float *or_ = o + r * ldo;                                                           \
                for (int d = 0; d < dim; d++)                                                       \
                    or_[d] += pj * row[d];                                                          \
            }                                                                                       \
        }                                                                                           \
    }

DEFINE_DTYPE_KERNELS(f32, row_f32, 4u)
DEFINE_DTYPE_KERNELS(f16, row_f16, 2u)
DEFINE_DTYPE_KERNELS(bf16, row_bf16, 2u)
DEFINE_DTYPE_KERNELS(q8, row_q8, 1u)
DEFINE_DTYPE_KERNELS(q4, row_q4, 1u)

void ea_cpu_kernels_init_scalar(ea_cpu_kernels *k)
{
    k->tier = "scalar";
    k->qk = qk_f32_scalar;
    k->pv = pv_f32_scalar;
    k->softmax = softmax_f32_scalar;
    k->pack_kt[EDGEATTN_F32] = pack_kt_f32_scalar;
    k->pack_kt[EDGEATTN_F16] = pack_kt_f16_scalar;
    k->pack_kt[EDGEATTN_BF16] = pack_kt_bf16_scalar;
    k->pack_v[EDGEATTN_F32] = pack_v_f32_scalar;
    k->pack_v[EDGEATTN_F16] = pack_v_f16_scalar;
    k->pack_v[EDGEATTN_BF16] = pack_v_bf16_scalar;
    k->qk_rows[EDGEATTN_F32] = qk_rows_f32_scalar;
    k->qk_rows[EDGEATTN_F16] = qk_rows_f16_scalar;
    k->qk_rows[EDGEATTN_BF16] = qk_rows_bf16_scalar;
    k->pv_rows[EDGEATTN_F32] = pv_rows_f32_scalar;
    k->pv_rows[EDGEATTN_F16] = pv_rows_f16_scalar;
    k->pv_rows[EDGEATTN_BF16] = pv_rows_bf16_scalar;
    k->pack_kt[EDGEATTN_Q8] = pack_kt_q8_scalar;
    k->pack_kt[EDGEATTN_Q4] = pack_kt_q4_scalar;
    k->pack_v[EDGEATTN_Q8] = pack_v_q8_scalar;
    k->pack_v[EDGEATTN_Q4] = pack_v_q4_scalar;
    k->qk_rows[EDGEATTN_Q8] = qk_rows_q8_scalar;
    k->qk_rows[EDGEATTN_Q4] = qk_rows_q4_scalar;
    k->pv_rows[EDGEATTN_Q8] = pv_rows_q8_scalar;
    k->pv_rows[EDGEATTN_Q4] = pv_rows_q4_scalar;
}
