/* Status strings, messages, version, dtype helpers. */
#include <stdio.h>

#include "core/ea_core.h"
#include "core/half.h"

#define EA_STR2(x) #x
#define EA_STR(x) EA_STR2(x)

EDGEATTN_API const char *edgeattn_version(void)
{
    return EA_STR(EDGEATTN_VERSION_MAJOR) "." EA_STR(EDGEATTN_VERSION_MINOR) "." EA_STR(EDGEATTN_VERSION_PATCH);
}

EDGEATTN_API const char *edgeattn_status_string(edgeattn_status status)
{
    switch (status) {
    case EDGEATTN_OK: return "ok";
    case EDGEATTN_ERR_NULL_ARG: return "a required pointer is NULL";
    case EDGEATTN_ERR_INVALID_ARG: return "invalid argument";
    case EDGEATTN_ERR_SHAPE_MISMATCH: return "tensor shapes do not match";
    case EDGEATTN_ERR_GQA_RATIO: return "query heads are not a multiple of KV heads";
    case EDGEATTN_ERR_HEAD_DIM: return "unsupported head dim";
    case EDGEATTN_ERR_DTYPE: return "unsupported dtype";
    case EDGEATTN_ERR_STRIDE: return "invalid strides or view outside its buffer";
    case EDGEATTN_ERR_CAPACITY: return "request exceeds the planned capacity";
    case EDGEATTN_ERR_OVERFLOW: return "size computation overflows";
    case EDGEATTN_ERR_BUFFER_TOO_SMALL: return "caller buffer too small for the plan";
    case EDGEATTN_ERR_MISALIGNED: return "caller buffer misaligned";
    case EDGEATTN_ERR_BACKEND_UNAVAILABLE: return "backend unavailable";
    case EDGEATTN_ERR_OUT_OF_MEMORY: return "out of memory at create";
    case EDGEATTN_ERR_NONFINITE: return "NaN or Inf in an input";
    case EDGEATTN_ERR_UNSUPPORTED: return "unsupported request";
    case EDGEATTN_ERR_SYSTEM: return "system resource error";
    case EDGEATTN_ERR_INTERNAL: return "internal error";
    case EDGEATTN_ERR_LAYER: return "layer index out of range";
    }
    return "unknown status";
}

edgeattn_status ea_fail(char *msg, edgeattn_status st, const char *fmt, ...)
{
    if (msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, EA_MSG_LEN, fmt, ap);
        va_end(ap);
    }
    return st;
}

size_t ea_dtype_size(edgeattn_dtype dt)
{
    switch (dt) {
    case EDGEATTN_F32: return 4;
    case EDGEATTN_F16:
    case EDGEATTN_BF16: return 2;
    default: return 0;
    }
}

const char *ea_dtype_name(edgeattn_dtype dt)
{
    switch (dt) {
    case EDGEATTN_F32: return "f32";
    case EDGEATTN_F16: return "f16";
    case EDGEATTN_BF16: return "bf16";
    case EDGEATTN_Q8: return "q8";
    case EDGEATTN_Q4: return "q4";
    default: return "invalid";
    }
}

float ea_load_f32(const void *base, edgeattn_dtype dt, ptrdiff_t i)
{
    switch (dt) {
    case EDGEATTN_F16: return ea_f16_to_f32(((const uint16_t *)base)[i]);
    case EDGEATTN_BF16: return ea_bf16_to_f32(((const uint16_t *)base)[i]);
    default: return ((const float *)base)[i];
    }
}

void ea_store_f32(void *base, edgeattn_dtype dt, ptrdiff_t i, float x)
{
    switch (dt) {
    case EDGEATTN_F16: ((uint16_t *)base)[i] = ea_f32_to_f16(x); break;
    case EDGEATTN_BF16: ((uint16_t *)base)[i] = ea_f32_to_bf16(x); break;
    default: ((float *)base)[i] = x; break;
    }
}
