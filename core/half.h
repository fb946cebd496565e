/* Scalar FP16 / BF16 conversions (portable C; round to nearest even, NaN and Inf preserved). */
#ifndef EDGEATTN_CORE_HALF_H
#define EDGEATTN_CORE_HALF_H

#include <stdint.h>

float ea_f16_to_f32(uint16_t h);
uint16_t ea_f32_to_f16(float f);
float ea_bf16_to_f32(uint16_t h);
uint16_t ea_f32_to_bf16(float f);

#endif
