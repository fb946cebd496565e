/*
 * The byte format of the fuzz_api target, shared by the harness (which reads it) and the seed writer
 * (which writes it). Every field is a byte or a fixed group of bytes, and reading past the end of the
 * input gives zeros; a zero byte always means the sensible default (a valid call with dense, separate
 * tensors), so a short input is a valid run and each non-zero byte is one deliberate deviation.
 *
 * input    = header, [raw config], op*
 * header   = H_MODE, H_BATCH, H_QLEN, H_KVLEN, H_HEADS, H_DIM, H_KVDTYPE, H_WINDOW, H_SEED   (9 bytes)
 * raw      = RAW_FIELDS x u32 (only when MODE_RAW_CONFIG is set): every config field as given
 * op       = opcode (byte % OP_COUNT), then the op's record:
 *   OP_ATTENTION  dims(6) params(8) tensor(8) x 6: q k v out bias lse
 *   OP_KV_APPEND  dims(8) tensor(8) x 2: k v
 *   OP_DECODE     dims(6) params(8) tensor(8) x 3: q out lse
 *   OP_KV_RESET   1 byte (sequence)
 *   OP_KV_LENGTH  2 bytes (sequence, NULL-pointer bits)
 *   OP_REFILL     2 bytes (seed, fill kind)
 *   OP_SPECIAL    4 bytes (value, offset lo, offset hi, width)
 *   OP_COPY       dims(6) tensor(8) x 2: dst src
 *   OP_NULLS      1 byte (which NULL argument)
 */
#ifndef EDGEATTN_FUZZ_INPUT_H
#define EDGEATTN_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* ---- reader: past the end every byte is 0 */
typedef struct fz_reader {
    const uint8_t *p;
    size_t n, i;
} fz_reader;

static inline uint8_t fz_u8(fz_reader *r) { return r->i < r->n ? r->p[r->i++] : 0; }
static inline uint16_t fz_u16(fz_reader *r)
{
    uint16_t lo = fz_u8(r);
    return (uint16_t)(lo | (uint16_t)fz_u8(r) << 8);
}
static inline uint32_t fz_u32(fz_reader *r)
{
    uint32_t lo = fz_u16(r);
    return lo | (uint32_t)fz_u16(r) << 16;
}
static inline int fz_more(const fz_reader *r) { return r->i < r->n; }

/* ---- header */
enum {
    MODE_NO_KV_CACHE = 1u << 0,   /* plan no KV cache (kv_append / decode must then fail) */
    MODE_CALLER_BUFFER = 1u << 1, /* create into a caller block of exactly plan.host_bytes */
    MODE_TWO_THREADS = 1u << 2,   /* num_threads 2 (else 1) */
    MODE_RAW_CONFIG = 1u << 3,    /* config fields straight from the input (RAW_FIELDS u32 follow) */
    MODE_CREATE_PROBES = 1u << 4, /* also: create into a short / misaligned block, NULL arguments */
    MODE_CPU_MASK_SHIFT = 5,      /* 2 bits: 0 none, 1 no AVX-512, 2 no SIMD at all, 3 no AVX2 */
    MODE_WINDOW = 1u << 7,        /* KV cache is a ring of H_WINDOW tokens */
};
#define HEADER_BYTES 9
/* header byte -> config value (the seed writer stores value - 1 for each of these) */
#define LIM_BATCH 3
#define LIM_QLEN 16
#define LIM_KVLEN 48
#define LIM_KV_HEADS 4 /* H_HEADS: bits 0-1 kv heads - 1, bits 2-3 (group - 1) % 3 */
#define LIM_GROUP 3
#define LIM_DIM16 8    /* H_DIM: head dim = 16 * (1 + byte % 8) */

/* raw config: struct_version (xor EDGEATTN_STRUCT_VERSION), flags, max_batch, max_q_len, max_kv_len,
 * max_heads, max_kv_heads, max_head_dim, kv_cache_dtype, kv_cache_window, num_threads, backend,
 * cpu_disable_mask, device_user_bytes (low, high), reserved (byte 0: index, byte 1: value) */
#define RAW_FIELDS 16

/* ---- ops */
enum {
    OP_ATTENTION = 0,
    OP_KV_APPEND,
    OP_DECODE,
    OP_KV_RESET,
    OP_KV_LENGTH,
    OP_REFILL,
    OP_SPECIAL,
    OP_COPY,
    OP_NULLS,
    OP_COUNT
};
#define MAX_OPS 48

/* dims of OP_ATTENTION / OP_COPY (6 bytes): batch, heads (lo nibble KV heads - 1, hi nibble group - 1),
 * q length - 1, kv length - 1, head dim / 16 - 1 (>= 0xF0: an unsupported dim), dtypes (2 bits each:
 * q, k/v, out; 0 F32, 1 F16, 2 BF16, 3 F32) */
#define DIMS_BYTES 6
#define DIM_WEIRD 0xF0
/* dims of OP_KV_APPEND (8 bytes): batch, kv heads - 1 (0: the cache's heads once set), rows - 1,
 * head dim / 16 - 1 (0: the cache's dim once set), dtypes (k, v), n_new (bit 0: an array, bits 1-7
 * its base value; 0x7F: weird entries), check_finite (0, 1, >= 2 odd values), n_new placement */
#define KV_DIMS_BYTES 8

/* params (8 bytes) */
enum {
    P_CAUSAL = 1u << 0,
    P_CHECK_FINITE = 1u << 1,
    P_LSE = 1u << 2,
    P_BIAS = 1u << 3,
    P_KV_LENS = 1u << 4,
    P_NULL = 1u << 5,   /* pass params = NULL */
    P_ZEROED = 1u << 6, /* a zero-initialised struct instead of edgeattn_params_default() */
    P_WEIRD = 1u << 7,  /* byte 7 corrupts one field */
};
/* byte 1 / 2: window left / right (0: -1, 255: -2, else value - 1); byte 3 / 4: scale / softcap
 * (index into the special float table, 0 = 0); byte 5: kv_lens base value (>= 0xF0: weird);
 * byte 6: bits 0-2 kv_lens placement (PLACE_*), bit 4: bias batch 1, bit 5: bias heads 1;
 * byte 7: weird field (with P_WEIRD) */
#define PARAMS_BYTES 8
enum { KVL_BUMP = 0, KVL_PRIVATE, KVL_IN_OUT, KVL_IN_LSE, KVL_IN_Q, KVL_IN_BIAS, KVL_COUNT };

/* tensor descriptor (8 bytes)
 *  0: bits 0-1 dtype (0: the role's, 1 F32, 2 F16, 3 BF16); bits 2-3 layout (TL_*);
 *     bit 4 invalid dtype; bit 5 non-host memory kind; bit 6 OpenCL-style offset set; bit 7 mutate a dim
 *  1: mutation: bits 0-1 dim, bits 2-4 kind (MUT_*); for TL_PADDED the padding (elements)
 *  2, 3: TL_CUSTOM: a stride choice (STR_*) per nibble for dims 0,1 (byte 2) and 2,3 (byte 3)
 *  4: bits 0-2 placement (PL_*), bits 3-7 a nudge of that many elements (PL_BUMP) or a slot (aliases)
 *  5, 6: u16 placement argument (offset in elements / delta)
 *  7: bits 0-2 bytes (BY_*)
 */
#define TENSOR_BYTES 8
enum { TL_BHSD = 0, TL_BSHD, TL_PADDED, TL_CUSTOM };
enum { MUT_ZERO = 0, MUT_NEG, MUT_PLUS1, MUT_HUGE, MUT_INT32, MUT_DOUBLE, MUT_MINUS1, MUT_2POW40 };
enum { STR_DENSE = 0, STR_ZERO, STR_ONE, STR_DENSE_P1, STR_DENSE_X2, STR_I64MAX, STR_NEG1, STR_2POW62,
       STR_DENSE_M1, STR_ARG, STR_2POW32, STR_HALF };
enum { PL_BUMP = 0, PL_PRIVATE, PL_ALIAS, PL_INSIDE, PL_OFFSET, PL_NULL, PL_END, PL_BUMP2 };
enum { BY_EXACT = 0, BY_SHORT1, BY_REMAINING, BY_PLUS_ELEM, BY_ZERO, BY_HALF, BY_EXACT2, BY_EXACT3 };

/* special floats (scale, softcap, OP_SPECIAL values) */
#define SPECIAL_COUNT 16

/* OP_REFILL kinds */
enum { FILL_TAME = 0, FILL_RAW, FILL_SPRINKLE, FILL_COUNT };

/* OP_NULLS: which call gets which NULL */
#define NULLS_COUNT 14

#endif
