/* Shared by the quantised-row kernels of every tier (cpu_simd/x86/rows-q-avx2.c,
 * cpu_simd/arm/rows-q-neon.c): the row scale and P scaled by it. The layout is in core/ea_core.h. */
#ifndef EDGEATTN_CPU_ROWS_Q_H
#define EDGEATTN_CPU_ROWS_Q_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu_simd/ukernel.h"

#define EA_Q_PV_CHUNK 64 /* keys whose P is scaled at once */

/* The F32 scale of a row whose levels take `data` bytes. */
static inline float ea_q_row_scale(const uint8_t *row, int data)
{
    float s;
    memcpy(&s, row + data, sizeof s);
    return s;
}

/* pt[r][j] = p[r][j0 + j] * (scale of V row j0 + j) for r < mr, j < nc (pt rows EA_Q_PV_CHUNK apart), and
 * psum[r] = the sum of row r: P·V over the levels then needs no product per value. */
static inline void ea_q_scale_p(int mr, int nc, const float *restrict p, ptrdiff_t ldp, int j0,
                                const uint8_t *restrict v, ptrdiff_t ldv, int data, float *restrict pt,
                                float *restrict psum)
{
    float ks[EA_Q_PV_CHUNK];
    for (int j = 0; j < nc; j++)
        ks[j] = ea_q_row_scale(v + (ptrdiff_t)(j0 + j) * ldv, data);
    for (int r = 0; r < mr; r++) {
        float sum = 0.0f;
        for (int j = 0; j < nc; j++) {
            pt[r * EA_Q_PV_CHUNK + j] = p[r * ldp + j0 + j] * ks[j];
            sum += pt[r * EA_Q_PV_CHUNK + j];
        }
        psum[r] = sum;
    }
}

#endif
