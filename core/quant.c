/* Quantised KV rows (Q8, Q4): sizes, the per-channel statistics of a sequence, and the scalar row
 * quantiser / dequantiser that the cache writes and reads with (the layout is in ea_core.h). */
#include <math.h>

#include "core/ea_core.h"
#include "core/half.h"

size_t ea_kv_unit_size(edgeattn_dtype dt)
{
    return ea_dtype_quant(dt) ? 1 : ea_dtype_size(dt);
}

size_t ea_kv_row_units(edgeattn_dtype dt, size_t dim)
{
    switch (dt) {
    case EDGEATTN_Q8: return dim + dim / 16; /* D bytes, D/32 F16 scales */
    case EDGEATTN_Q4: return dim / 2 + dim / 16;
    default: return dim;
    }
}

/* The largest level: Q8 stores -127..127; Q4 the 16 levels u - 7.5 (u = 0..15), symmetric about 0. */
static float qmax_of(edgeattn_dtype dt) { return dt == EDGEATTN_Q8 ? 127.0f : 7.5f; }

/* Block g's largest |x̂| of x with m, c. */
static float block_max(const float *x, const float *m, const float *c, int32_t g)
{
    float mx = 0.0f;
    for (int32_t i = g * EA_Q_GROUP; i < (g + 1) * EA_Q_GROUP; i++) {
        const float a = fabsf((x[i] - m[i]) / c[i]);
        mx = a > mx || a != a ? a : mx; /* a NaN sticks */
    }
    return mx;
}

float ea_q_row_need(edgeattn_dtype dt, const float *x, const float *m, const float *c, int32_t dim)
{
    float need = 0.0f;
    for (int32_t g = 0; g < dim / EA_Q_GROUP; g++) {
        const float s = block_max(x, m, c, g) / (float)qmax_of(dt);
        need = s > need || s != s ? s : need;
    }
    return need;
}

void ea_q_row_store(edgeattn_dtype dt, const float *x, const float *m, const float *c, int32_t dim, void *dst)
{
    const float qmax = qmax_of(dt);
    uint8_t *data = dst;
    uint16_t sc[EA_MAX_HEAD_DIM / EA_Q_GROUP];
    for (int32_t g = 0; g < dim / EA_Q_GROUP; g++) {
        const uint16_t s16 = ea_f32_to_f16(block_max(x, m, c, g) / qmax);
        const float s = ea_f16_to_f32(s16), inv = s > 0.0f ? 1.0f / s : 0.0f;
        sc[g] = s16;
        int q[EA_Q_GROUP]; /* Q8: the level; Q4: u (level u - 7.5) */
        for (int32_t i = 0; i < EA_Q_GROUP; i++) {
            const int32_t d = g * EA_Q_GROUP + i;
            const float y = (x[d] - m[d]) / c[d] * inv;
            /* the F16 scale may round down: clip to the levels */
            float r = dt == EDGEATTN_Q8 ? rintf(y) : rintf(y + 7.5f);
            const float lo = dt == EDGEATTN_Q8 ? -127.0f : 0.0f, hi = dt == EDGEATTN_Q8 ? 127.0f : 15.0f;
            r = r > hi ? hi : r < lo ? lo : r;
            q[i] = r == r ? (int)r : dt == EDGEATTN_Q8 ? 0 : 8;
        }
        if (dt == EDGEATTN_Q8) {
            for (int32_t i = 0; i < EA_Q_GROUP; i++)
                data[g * EA_Q_GROUP + i] = (uint8_t)(int8_t)q[i];
        } else {
            for (int32_t i = 0; i < EA_Q_GROUP / 2; i++)
                data[g * (EA_Q_GROUP / 2) + i] = (uint8_t)(q[i] | (q[i + 16] << 4));
        }
    }
    /* the scales follow the data (2-byte aligned: the data is a multiple of 16 bytes) */
    unsigned char *sp = data + (dt == EDGEATTN_Q8 ? dim : dim / 2);
    memcpy(sp, sc, sizeof(uint16_t) * (size_t)(dim / EA_Q_GROUP));
}

void ea_q_row_load(edgeattn_dtype dt, const void *src, int32_t dim, float *xhat)
{
    const uint8_t *data = src;
    const unsigned char *sp = data + (dt == EDGEATTN_Q8 ? dim : dim / 2);
    for (int32_t g = 0; g < dim / EA_Q_GROUP; g++) {
        uint16_t s16;
        memcpy(&s16, sp + 2 * g, 2);
        const float s = ea_f16_to_f32(s16);
        for (int32_t i = 0; i < EA_Q_GROUP; i++) {
            float q;
            if (dt == EDGEATTN_Q8) {
                q = (float)(int8_t)data[g * EA_Q_GROUP + i];
            } else {
                const uint8_t b = data[g * (EA_Q_GROUP / 2) + (i & 15)];
                q = (float)(i < 16 ? (b & 15) : (b >> 4)) - 7.5f;
            }
            xhat[g * EA_Q_GROUP + i] = s * q;
        }
    }
}
