/* Quantised KV rows (Q8, Q4): sizes, and the scalar row quantiser / dequantiser that the cache writes
 * and reads with (the layout is in ea_core.h). */
#include <math.h>
#include <string.h>

#include "core/ea_core.h"

size_t ea_kv_unit_size(edgeattn_dtype dt)
{
    return ea_dtype_quant(dt) ? 1 : ea_dtype_size(dt);
}

size_t ea_kv_row_units(edgeattn_dtype dt, size_t dim)
{
    switch (dt) {
    case EDGEATTN_Q8: return dim + 4; /* D levels, an F32 scale */
    case EDGEATTN_Q4: return dim / 2 + 4;
    default: return dim;
    }
}

/* The largest level: Q8 -127..127; Q4 the 16 levels u - 7.5 (u = 0..15). */
static float qmax_of(edgeattn_dtype dt) { return dt == EDGEATTN_Q8 ? 127.0f : 7.5f; }

float ea_q_row_need(edgeattn_dtype dt, const float *x, const float *m, const float *c, int32_t dim)
{
    float mx = 0.0f;
    for (int32_t d = 0; d < dim; d++) {
        const float a = fabsf((x[d] - m[d]) / c[d]);
        mx = a > mx || a != a ? a : mx; /* a NaN sticks */
    }
    return mx / qmax_of(dt);
}

void ea_q_row_store(edgeattn_dtype dt, const float *x, const float *m, const float *c, int32_t dim, void *dst)
{
    const float qmax = qmax_of(dt), s = ea_q_row_need(dt, x, m, c, dim);
    const float inv = s > 0.0f ? 1.0f / s : 0.0f;
    uint8_t *data = dst;
    for (int32_t g = 0; g < dim / EA_Q_GROUP; g++) {
        int q[EA_Q_GROUP]; /* Q8: the level; Q4: u (level u - 7.5) */
        for (int32_t i = 0; i < EA_Q_GROUP; i++) {
            const int32_t d = g * EA_Q_GROUP + i;
            const float y = (x[d] - m[d]) / c[d] * inv;
            float r = dt == EDGEATTN_Q8 ? rintf(y) : rintf(y + 7.5f);
            const float lo = dt == EDGEATTN_Q8 ? -qmax : 0.0f, hi = dt == EDGEATTN_Q8 ? qmax : 15.0f;
            r = r > hi ? hi : r < lo ? lo : r; /* (rounding at the ends) */
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
    memcpy(data + (dt == EDGEATTN_Q8 ? dim : dim / 2), &s, sizeof s);
}

void ea_q_row_load(edgeattn_dtype dt, const void *src, int32_t dim, float *xhat)
{
    const uint8_t *data = src;
    float s;
    memcpy(&s, data + (dt == EDGEATTN_Q8 ? dim : dim / 2), sizeof s);
    for (int32_t d = 0; d < dim; d++) {
        float q;
        if (dt == EDGEATTN_Q8) {
            q = (float)(int8_t)data[d];
        } else {
            const uint8_t b = data[(d / 32) * 16 + (d & 15)];
            q = (float)((d & 16) ? b >> 4 : b & 15) - 7.5f;
        }
        xhat[d] = s * q;
    }
}
