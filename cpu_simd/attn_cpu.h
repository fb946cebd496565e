/* The CPU backend's state and its portable flash-attention driver. */
#ifndef EDGEATTN_CPU_ATTN_CPU_H
#define EDGEATTN_CPU_ATTN_CPU_H

#include "core/ea_core.h"
#include "cpu_simd/threadpool.h"
#include "cpu_simd/tune.h"
#include "cpu_simd/ukernel.h"

/* Per-thread scratch, offsets from the thread's slice (all 64-byte aligned). */
typedef struct ea_cpu_scratch_layout {
    size_t q, o, m, l, alpha, lo, hi, s, kt, v32;
    size_t bytes; /* one thread's slice */
} ea_cpu_scratch_layout;

typedef struct ea_cpu_state {
    ea_cpu_kernels k;
    ea_cpu_tiles tiles;
    ea_pool pool;
    int32_t threads;
    int32_t max_dim;
    uint32_t features, features_used;
    char model[128];
    ea_cpu_scratch_layout sl;
    char *scratch;          /* [threads][sl.bytes] */
    float *part;            /* split-KV partials: [part_items][tiles.rb][max_dim + 2] */
    int64_t part_items;
} ea_cpu_state;

/* Scratch layout for a config and tiles; false on overflow. */
bool ea_cpu_scratch_plan(int32_t max_dim, const ea_cpu_tiles *t, ea_cpu_scratch_layout *sl);
/* Partial-result slots reserved for split-KV (a multiple of the thread count). */
int64_t ea_cpu_part_items(int32_t threads);

edgeattn_status ea_cpu_run(ea_cpu_state *st, const ea_attn_call *call);

#endif
