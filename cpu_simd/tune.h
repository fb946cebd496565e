/*
 * Tile sizes of the CPU backend, one row per tier. kb: keys per tile (multiple of 16, <= EA_KB_MAX);
 * rb: query rows (of all heads of a GQA group) per work item (multiple of EA_MR). The environment
 * variable EDGEATTN_CPU_TILES="kb=256,rb=64" overrides them for tuning sweeps; the plan reads the
 * same values, so the scratch it reserves always fits.
 */
#ifndef EDGEATTN_CPU_TUNE_H
#define EDGEATTN_CPU_TUNE_H

#include <stdint.h>

typedef struct ea_cpu_tiles {
    int32_t kb;
    int32_t rb;
} ea_cpu_tiles;

/* Tiles for a feature set (after the disable mask), with the override env ("kb=K,rb=R": the
 * EDGEATTN_CPU_TILES knob, NULL for none) applied. Returns 0, or -1 when it is malformed. */
int ea_cpu_tiles_for(uint32_t features, const char *env, ea_cpu_tiles *out);

#endif
