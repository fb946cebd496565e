/* Internal hooks of the CUDA backend for tests (tests/cuda link the static library). Not installed. */
#ifndef EDGEATTN_CUDA_BACKEND_CUDA_H
#define EDGEATTN_CUDA_BACKEND_CUDA_H

#include <stdbool.h>

#include "cuda/cu_loader.h"
#include "edgeattn/edgeattn.h"

/* Driver-call counters of a context on the CUDA backend (allocations, module loads, syncs, ...);
 * false if ctx does not run on CUDA. */
bool ea_cuda_counters(const edgeattn_context *ctx, ea_cu_counters *out);

/* The CUDA device ordinal and primary context a CUDA context runs on; false if not CUDA. */
bool ea_cuda_device_of(const edgeattn_context *ctx, int *ordinal, CUcontext *cu_ctx, CUstream *stream);

/* Largest host bias (bytes) the plan stages for a config; a host bias beyond it is refused with
 * EDGEATTN_ERR_CAPACITY (pass it in device memory). */
#define EA_CUDA_BIAS_STAGE_MAX ((size_t)64 << 20)

#endif
