/* Scalar FP16 / BF16 conversions (portable C; round to nearest even, NaN and Inf preserved).
 * Inline: the scalar tier and the validation scans call them per element. */
#ifndef EDGEATTN_CORE_HALF_H
#define EDGEATTN_CORE_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t ea_f32_bits_(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float ea_bits_f32_(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float ea_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* Inf / NaN */
        return ea_bits_f32_(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return ea_bits_f32_(sign);
        /* subnormal: value = man * 2^-24, exact in float */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return ea_bits_f32_(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t ea_f32_to_f16(float f)
{
    uint32_t u = ea_f32_bits_(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) /* Inf or NaN (keep NaN quiet and non-zero) */
        return (uint16_t)(sign | 0x7c00u | (au > 0x7f800000u ? 0x200u | ((au >> 13) & 0x3ffu) : 0u));
    if (au >= 0x477ff000u) /* rounds to >= 65520: overflow to Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (au < 0x38800000u) { /* below 2^-14: subnormal or zero in f16 */
        /* value / 2^-24 rounded to nearest even; float arithmetic is exact enough here */
        float v = ea_bits_f32_(au) * 0x1p24f;
        uint32_t m = (uint32_t)v;
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1u)))
            m++;
        return (uint16_t)(sign | m);
    }
    /* normal: rebias exponent, round mantissa to nearest even */
    uint32_t r = au - 0x38000000u; /* exponent 127 -> 15 */
    uint32_t lsb = (r >> 13) & 1u;
    r += 0xfffu + lsb;
    return (uint16_t)(sign | (r >> 13));
}

static inline float ea_bf16_to_f32(uint16_t h)
{
    return ea_bits_f32_((uint32_t)h << 16);
}

static inline uint16_t ea_f32_to_bf16(float f)
{
    uint32_t u = ea_f32_bits_(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
        return (uint16_t)((u >> 16) | 0x40u);
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}

#endif
