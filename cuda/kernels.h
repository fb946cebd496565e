/*
 * Which kernel runs a call and with what launch shape: pure C (no driver calls), implemented in
 * cuda/launch.c beside the kernels it describes, used by the host backend (cuda/backend_cuda.c).
 * The host loads every kernel listed by ea_cu_kernel_table() at create (raising the dynamic
 * shared-memory limit where a kernel needs more than 48 KiB), then per call asks ea_cu_plan_*() for
 * the launches and runs them in order on its stream.
 */
#ifndef EDGEATTN_CUDA_KERNELS_H
#define EDGEATTN_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "cuda/kernel_abi.h"

/* What the host read from the device at create. */
typedef struct ea_cu_device {
    int32_t cc_major, cc_minor;
    int32_t sm_count;
    int32_t smem_per_block_optin; /* CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
    int32_t smem_per_sm;
    int64_t l2_bytes;
    /* knobs (EDGEATTN_CUDA_SPLITS, EDGEATTN_CUDA_DECODE; 0: the built-in rule) */
    int32_t split_min_keys;  /* keys per split at least (default 128) */
    int32_t split_waves;     /* splits fill this many waves of the device (default 1) */
    int32_t decode_kernel;   /* 0 auto, 1 the tensor-core decode kernel's small-shared-memory D128 twin, 2 SIMT */
    int32_t preview;         /* EDGEATTN_CUDA_PREVIEW: paths built but not yet run on a GPU, off by default;
                                bit 0 an F32 Q on the decode kernels (decode.cu q2), bit 1 the pipelined
                                Linformer projection (proj.cu ea_proj_pipe_f16_*) */
} ea_cu_device;

/* One kernel of the module. */
typedef struct ea_cu_kernel_desc {
    const char *name;       /* extern "C" name in the fatbin */
    uint32_t max_smem;      /* largest dynamic shared memory it is ever launched with */
    int32_t min_cc;         /* lowest compute capability (major*10+minor) it exists for (75 or 80) */
} ea_cu_kernel_desc;

/* Every kernel; index = kernel id used in ea_cu_launch. */
const ea_cu_kernel_desc *ea_cu_kernel_table(size_t *count);

typedef struct ea_cu_launch {
    int32_t kernel;         /* index into ea_cu_kernel_table() */
    uint32_t grid[3], block[3];
    uint32_t smem;          /* dynamic shared bytes */
    int32_t args_kind;      /* 0: ea_cu_attn_args, 1: ea_cu_kv_write_args, 2: ea_cu_finite_args, 3: ea_cu_peak_args,
                               4: ea_cu_summary_args, 5: ea_cu_topk_args, 6: ea_cu_proj_args */
} ea_cu_launch;

/* Bytes of F32 split-KV workspace (ws_o + ws_lse, each 256-byte aligned) the plan must reserve so that
 * any decode/attention call within these maxima can run its split path. */
size_t ea_cu_split_workspace_bytes(int32_t max_batch, int32_t max_heads, int32_t max_q_len, int32_t max_head_dim,
                                   int32_t sm_count_hint);

/* The counter area of that workspace: bytes [offset, offset + bytes) from its base must be zero before the
 * first call (the host zeroes them once at create); the fused split-KV decode leaves them zero after
 * every call. Same arguments as ea_cu_split_workspace_bytes; bytes is 0 when that is 0. */
size_t ea_cu_split_counters_offset(int32_t max_batch, int32_t max_heads, int32_t max_q_len, int32_t max_head_dim,
                                   int32_t sm_count_hint);
size_t ea_cu_split_counters_bytes(int32_t max_batch, int32_t max_heads, int32_t max_q_len, int32_t max_head_dim,
                                  int32_t sm_count_hint);

/* Chooses the kernels for an attention or decode call. args is complete except num_splits, split_len,
 * ws_o, ws_lse, which this fills (ws: base of the planned workspace, ws_bytes its size). Writes 1 or 2
 * launches (split + combine) into out and returns their count; 0 if no kernel serves the call (the
 * host then reports EDGEATTN_ERR_UNSUPPORTED): D not a multiple of 8 in [8, 256], Hq % Hkv != 0, empty
 * shapes, cc < 7.5. Head dims without a tensor-core kernel (all but 64, 80, 96, 128, 256) take the SIMT
 * kernel. */
int ea_cu_plan_attention(const ea_cu_device *dev, ea_cu_attn_args *args, uint64_t ws, size_t ws_bytes,
                         ea_cu_launch out[2]);
void ea_cu_plan_kv_write(const ea_cu_device *dev, const ea_cu_kv_write_args *args, ea_cu_launch *out);
/* Top-k decode: the summary launch after an append (blocks: the most summary blocks a batch row's rows
 * touch), and the score + select launches before the decode (max_blocks: the most blocks a sequence has). */
void ea_cu_plan_summary(const ea_cu_device *dev, const ea_cu_summary_args *args, int32_t blocks, ea_cu_launch *out);
void ea_cu_plan_topk(const ea_cu_device *dev, const ea_cu_topk_args *args, int32_t max_blocks, ea_cu_launch out[2]);
/* Linformer: the projection launch (tensor cores where K, V and the outputs are F16 on sm_80+, else
 * SIMT with F32 outputs); 0 if none serves it. */
int ea_cu_plan_proj(const ea_cu_device *dev, const ea_cu_proj_args *args, ea_cu_launch *out);
void ea_cu_plan_finite(const ea_cu_device *dev, const ea_cu_finite_args *args, ea_cu_launch *out);
void ea_cu_plan_peak(const ea_cu_device *dev, ea_cu_launch *out, int64_t *flops_per_launch, int32_t iters);

#endif
