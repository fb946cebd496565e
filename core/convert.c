/* The public FP16 / BF16 conversion helpers: loops over the scalar conversions of core/half.h, the
 * same ones the library uses when it stores the KV cache, so an application's converted data rounds
 * exactly as the library's own would. */
#include "core/ea_core.h"
#include "core/half.h"

EDGEATTN_API void edgeattn_f32_to_f16(const float *src, uint16_t *dst, size_t n)
{
    if (!src || !dst)
        return;
    for (size_t i = 0; i < n; i++)
        dst[i] = ea_f32_to_f16(src[i]);
}

EDGEATTN_API void edgeattn_f16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    if (!src || !dst)
        return;
    for (size_t i = 0; i < n; i++)
        dst[i] = ea_f16_to_f32(src[i]);
}

EDGEATTN_API void edgeattn_f32_to_bf16(const float *src, uint16_t *dst, size_t n)
{
    if (!src || !dst)
        return;
    for (size_t i = 0; i < n; i++)
        dst[i] = ea_f32_to_bf16(src[i]);
}

EDGEATTN_API void edgeattn_bf16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    if (!src || !dst)
        return;
    for (size_t i = 0; i < n; i++)
        dst[i] = ea_bf16_to_f32(src[i]);
}
