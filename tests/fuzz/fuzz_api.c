/*
 * libFuzzer target for the public API: bytes -> a config (small maxima, CPU backend, 1-2 threads),
 * plan and create, then a sequence of attention / kv_append / decode / kv_reset / kv_length / copy
 * calls on tensors carved from one arena (views overlap, alias, have odd strides, dtypes, shapes and
 * byte counts) or from private blocks of exactly their declared size. fuzz_input.h is the byte format.
 *
 * Invariants checked on every call (a violation traps, so libFuzzer saves the input):
 *   - the status is one of the enum, never INTERNAL, and hot calls never report memory or threads;
 *   - a failed call leaves a non-empty message and every caller byte (and the cache lengths)
 *     unchanged; a successful one leaves an empty message;
 *   - a successful attention / decode wrote only bytes of the out and lse elements, its accepted
 *     views lie inside their bytes and outputs do not share bytes with inputs;
 *   - outputs are finite when the inputs are finite and no score can overflow, and match the double
 *     reference (core/reference.c) when the inputs are small (decode: against the harness's own copy
 *     of the KV cache, fuzz_kv_model.c);
 *   - cases that must be refused (invalid params, capacity, empty cache, ...) are refused;
 *   - kv_length agrees with the model after every op; copy copies exactly.
 *
 * `fuzz_api --make-seeds=DIR` writes the seed corpus (fuzz_seeds.c) and exits. Environment:
 * FUZZ_API_TRACE=1 prints every call, FUZZ_API_STRICT=1 turns on the cases of the open finding
 * (README.md); FUZZ_API_MISALIGNED=0 keeps every view aligned to its elements.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "fuzz_check.h"
#include "fuzz_input.h"
#include "fuzz_kv_model.h"

int fz_make_seeds(const char *dir); /* fuzz_seeds.c */

/* ---------------------------------------------------------------- state */

static fz_mem g_mem;                /* r[0]: the arena, kept across inputs */
static bool g_params_versioned;     /* edgeattn_params_default() writes a non-zero first field */
static bool g_trace;                /* FUZZ_API_TRACE=1: one line per call on stderr */
static bool g_strict;               /* FUZZ_API_STRICT=1: also check scores that overflow FP32 before softcap */
static bool g_misaligned;           /* FUZZ_API_MISALIGNED=1: views may start off their element alignment */

/* One line per call when tracing (reproducing a finding, checking what a seed reaches). */
static void trace(const char *what, edgeattn_status st, const edgeattn_context *ctx, const char *extra)
{
    if (g_trace)
        fprintf(stderr, "fuzz_api: %-10s %-28s %s%s%s\n", what, edgeattn_status_string(st),
                st != EDGEATTN_OK && ctx ? edgeattn_message_of(ctx) : "", extra[0] ? " " : "", extra);
}

typedef struct slot {
    void *data;
    int region;
} slot;

typedef struct run {
    fz_reader in;
    edgeattn_config cfg;
    edgeattn_context *ctx;
    fz_kv_model kv;
    uint64_t rng;
    size_t bump;    /* next free arena byte for PL_BUMP in the current op */
    slot slots[8];  /* tensors placed so far in the current op (aliasing targets) */
    int nslots;
} run;

static const float k_special[SPECIAL_COUNT] = {
    0.0f, 0.125f, 0.5f, 1.0f, 2.0f, 8.0f, 1e-30f, 1e30f, -1.0f, -0.0f, NAN, INFINITY, -INFINITY,
    1.4e-45f /* smallest subnormal */, FLT_MAX, 0.01f};

static int32_t lim(int32_t max, int32_t cap) { return max < cap ? max : cap; }
static int32_t imax(int32_t a, int32_t b) { return a > b ? a : b; }

static edgeattn_dtype role_dtype(unsigned bits)
{
    static const edgeattn_dtype t[4] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16, EDGEATTN_F32};
    return t[bits & 3];
}

static void trace_tensor(const char *name, const edgeattn_tensor *t)
{
    if (!g_trace || !t)
        return;
    const int ri = fz_mem_find(&g_mem, t->data);
    fprintf(stderr, "fuzz_api:   %-5s %s+%zu bytes %zu dtype %d mem %d off %zu shape [%lld,%lld,%lld,%lld] stride [%lld,%lld,%lld,%lld]\n",
            name, ri < 0 ? "?" : ri == 0 ? "arena" : "private", ri < 0 ? (size_t)(uintptr_t)t->data : (size_t)((uint8_t *)t->data - g_mem.r[ri].buf),
            t->bytes, (int)t->dtype, (int)t->memory, t->offset, (long long)t->shape[0], (long long)t->shape[1],
            (long long)t->shape[2], (long long)t->shape[3], (long long)t->stride[0], (long long)t->stride[1],
            (long long)t->stride[2], (long long)t->stride[3]);
}

static void trace_params(const edgeattn_params *p)
{
    if (!g_trace)
        return;
    if (!p) {
        fprintf(stderr, "fuzz_api:   params NULL\n");
        return;
    }
    fprintf(stderr, "fuzz_api:   params scale %g softcap %g causal %d window %d,%d check %d kv_lens %s bias %s lse %s\n",
            (double)p->scale, (double)p->softcap, (int)p->causal, (int)p->window_left, (int)p->window_right,
            (int)p->check_finite, p->kv_lens ? "yes" : "no", p->bias ? "yes" : "no", p->lse ? "yes" : "no");
    if (p->kv_lens) {
        const int ri = fz_mem_find(&g_mem, p->kv_lens);
        fprintf(stderr, "fuzz_api:   kv_lens at %s+%zu\n", ri < 0 ? "?" : ri == 0 ? "arena" : "private",
                ri < 0 ? (size_t)0 : (size_t)((const uint8_t *)p->kv_lens - g_mem.r[ri].buf));
    }
    trace_tensor("bias", p->bias);
    trace_tensor("lse", p->lse);
}

/* ---------------------------------------------------------------- statuses and messages */

static void expect_status_sane(edgeattn_status st, const char *what, bool hot)
{
    FZ_CHECK(strcmp(edgeattn_status_string(st), "unknown status") != 0, "%s returned %d, not a status", what, (int)st);
    FZ_CHECK(st != EDGEATTN_ERR_INTERNAL, "%s returned EDGEATTN_ERR_INTERNAL", what);
    if (hot)
        FZ_CHECK(st != EDGEATTN_ERR_OUT_OF_MEMORY && st != EDGEATTN_ERR_SYSTEM && st != EDGEATTN_ERR_BUFFER_TOO_SMALL &&
                     st != EDGEATTN_ERR_BACKEND_UNAVAILABLE,
                 "%s (a hot call) returned %s", what, edgeattn_status_string(st));
}

static void expect_message(const char *msg, bool failed, const char *what, edgeattn_status st)
{
    FZ_CHECK(msg != NULL, "%s: message is NULL", what);
    const size_t len = strnlen(msg, 256);
    FZ_CHECK(len < 256, "%s: message not terminated within 256 bytes", what);
    if (failed)
        FZ_CHECK(len > 0, "%s failed (%s) with an empty message", what, edgeattn_status_string(st));
    else
        FZ_CHECK(len == 0, "%s succeeded but the message is \"%s\"", what, msg);
}

/* Cache lengths of the library against the model. */
static void expect_lengths(run *R, const char *what)
{
    if (!R->kv.on)
        return;
    const int32_t n = lim(R->kv.max_batch, 16);
    for (int32_t b = 0; b < n; b++) {
        int64_t total = -7;
        int32_t held = -7;
        edgeattn_status st = edgeattn_kv_length(R->ctx, 0, b, &total, &held);
        FZ_CHECK(st == EDGEATTN_OK, "after %s: kv_length(%d) returned %s", what, (int)b, edgeattn_status_string(st));
        FZ_CHECK(total == R->kv.total[b] && held == R->kv.held[b],
                 "after %s: sequence %d holds (total %lld, held %d), expected (%lld, %d)", what, (int)b,
                 (long long)total, (int)held, (long long)R->kv.total[b], (int)R->kv.held[b]);
    }
}

/* The common tail of a failed call on a context. */
static void after_failure(run *R, edgeattn_status st, const char *what)
{
    expect_message(edgeattn_message_of(R->ctx), true, what, st);
    fz_mem_expect_unchanged(&g_mem, 0, what);
    expect_lengths(R, what);
}

/* ---------------------------------------------------------------- arena contents */

static void fill_arena(run *R, uint8_t seed, unsigned kind)
{
    fz_region *a = &g_mem.r[0];
    uint64_t rng = 0x5eed0000u + seed;
    switch (kind % FILL_COUNT) {
    case FILL_RAW:
        for (size_t i = 0; i + 8 <= a->n; i += 8) {
            const uint64_t r = fz_rand(&rng);
            memcpy(a->buf + i, &r, 8);
        }
        break;
    case FILL_SPRINKLE:
        fz_fill_tame(a->buf, a->n, &rng);
        for (size_t i = 0; i < a->n / 128; i++) {
            const uint64_t r = fz_rand(&rng);
            const size_t off = (size_t)(r % (a->n / 4)) * 4;
            const float x = k_special[(r >> 32) % SPECIAL_COUNT];
            if ((r >> 40) & 1) {
                memcpy(a->buf + off, &x, 4);
            } else {
                const uint16_t h = (r >> 41) & 1 ? ea_f32_to_f16(x) : ea_f32_to_bf16(x);
                memcpy(a->buf + off + 2 * ((r >> 42) & 1), &h, 2);
            }
        }
        break;
    default: fz_fill_tame(a->buf, a->n, &rng); break;
    }
    (void)R;
}

static void op_special(run *R)
{
    const uint8_t vi = fz_u8(&R->in);
    const uint16_t off16 = fz_u16(&R->in);
    const uint8_t width = fz_u8(&R->in);
    fz_region *a = &g_mem.r[0];
    const float x = k_special[vi % SPECIAL_COUNT];
    const size_t off = ((size_t)off16 * 2) % (a->n - 4);
    switch (width % 3) {
    case 0: {
        const size_t o4 = off & ~(size_t)3;
        memcpy(a->buf + o4, &x, 4);
        break;
    }
    case 1: {
        const uint16_t h = ea_f32_to_f16(x);
        memcpy(a->buf + off, &h, 2);
        break;
    }
    default: {
        const uint16_t h = ea_f32_to_bf16(x);
        memcpy(a->buf + off, &h, 2);
        break;
    }
    }
}

/* ---------------------------------------------------------------- tensors from descriptors */

static int64_t sat_mul(int64_t a, int64_t b)
{
    int64_t r;
    if (a < 0)
        a = 0;
    if (b < 0)
        b = 0;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

static int64_t mutate(int64_t v, unsigned kind)
{
    switch (kind & 7) {
    case MUT_ZERO: return 0;
    case MUT_NEG: return -v - 1;
    case MUT_PLUS1: return v + 1;
    case MUT_HUGE: return INT64_MAX;
    case MUT_INT32: return (int64_t)INT32_MAX + 1;
    case MUT_DOUBLE: return 2 * v;
    case MUT_MINUS1: return v - 1;
    default: return (int64_t)1 << 40;
    }
}

static int64_t stride_choice(unsigned c, int64_t dense, uint16_t arg)
{
    switch (c & 15) {
    case STR_ZERO: return 0;
    case STR_ONE: return 1;
    case STR_DENSE_P1: return sat_add(dense, 1);
    case STR_DENSE_X2: return sat_mul(dense, 2);
    case STR_I64MAX: return INT64_MAX;
    case STR_NEG1: return -1;
    case STR_2POW62: return (int64_t)1 << 62;
    case STR_DENSE_M1: return dense - 1;
    case STR_ARG: return arg;
    case STR_2POW32: return (int64_t)1 << 32;
    case STR_HALF: return dense / 2;
    default: return dense;
    }
}

/* Tame contents for a private block. */
static void fill_private(run *R, int ri) { fz_fill_tame(g_mem.r[ri].buf, g_mem.r[ri].n, &R->rng); }

static size_t bytes_choice(unsigned mode, size_t extent, size_t es, size_t remaining)
{
    size_t want;
    switch (mode & 7) {
    case BY_SHORT1: want = extent ? extent - 1 : 0; break;
    case BY_REMAINING: want = remaining; break;
    case BY_PLUS_ELEM: want = extent > SIZE_MAX - es ? SIZE_MAX : extent + es; break;
    case BY_ZERO: want = 0; break;
    case BY_HALF: want = extent / 2; break;
    default: want = extent; break;
    }
    return want < remaining ? want : remaining;
}

/* Builds a tensor from the 8 descriptor bytes td, for a call that wants shape `hint` in dtype `role`.
 * Returns the region of its data (-1: NULL or outside). Never claims more bytes than the block
 * holds from data on: a library that stays inside `bytes` stays inside caller memory. */
static int build_tensor(run *R, const uint8_t td[TENSOR_BYTES], const int64_t hint[4], edgeattn_dtype role,
                        edgeattn_tensor *t)
{
    memset(t, 0, sizeof *t);
    const unsigned sel = td[0] & 3;
    edgeattn_dtype dt = sel ? (edgeattn_dtype)(sel - 1) : role;
    if (td[0] & 0x10) {
        static const int weird[4] = {EDGEATTN_DTYPE_COUNT_, -1, EDGEATTN_Q8, 100}; /* Q8: a cache dtype only */
        dt = (edgeattn_dtype)weird[sel];
    }
    t->dtype = dt;
    size_t es = fz_dtype_size(dt);
    if (!es)
        es = 4;
    for (int i = 0; i < 4; i++)
        t->shape[i] = hint[i];
    if (td[0] & 0x80)
        t->shape[td[1] & 3] = mutate(t->shape[td[1] & 3], td[1] >> 2);
    const int64_t B = t->shape[0], H = t->shape[1], N = t->shape[2], D = t->shape[3];
    int64_t dense[4];
    dense[3] = 1;
    dense[2] = D;
    dense[1] = sat_mul(N, D);
    dense[0] = sat_mul(H, dense[1]);
    const uint16_t arg = (uint16_t)(td[5] | td[6] << 8);
    switch ((td[0] >> 2) & 3) {
    case TL_BSHD:
        t->stride[3] = 1;
        t->stride[1] = D;
        t->stride[2] = sat_mul(H, D);
        t->stride[0] = sat_mul(N, t->stride[2]);
        break;
    case TL_PADDED: {
        const int64_t pad = 1 + td[2] % 64, hpad = td[3] % 64;
        t->stride[3] = 1;
        t->stride[2] = sat_add(D, pad);
        t->stride[1] = sat_add(sat_mul(N, t->stride[2]), hpad);
        t->stride[0] = sat_add(sat_mul(H, t->stride[1]), hpad);
        break;
    }
    case TL_CUSTOM:
        t->stride[0] = stride_choice(td[2] & 15, dense[0], arg);
        t->stride[1] = stride_choice(td[2] >> 4, dense[1], arg);
        t->stride[2] = stride_choice(td[3] & 15, dense[2], arg);
        t->stride[3] = stride_choice(td[3] >> 4, dense[3], arg);
        break;
    default:
        memcpy(t->stride, dense, sizeof dense);
        break;
    }
    (void)B;
    if (td[0] & 0x20) {
        static const int kinds[4] = {EDGEATTN_MEM_CUDA, EDGEATTN_MEM_OPENCL, EDGEATTN_MEMORY_COUNT_, -1};
        t->memory = (edgeattn_memory)kinds[td[1] & 3];
    }
    if (td[0] & 0x40)
        t->offset = 1 + td[5];

    const size_t extent = fz_extent(t);
    const unsigned by = td[7] & 7;
    fz_region *arena = &g_mem.r[0];
    int ri = 0;
    size_t off = 0;
    bool bumped = false;
    switch (td[4] & 7) {
    case PL_PRIVATE: {
        const size_t ext = extent && extent <= (1u << 20) ? extent : 64;
        const size_t n = bytes_choice(by == BY_REMAINING ? BY_EXACT : by, ext, es, SIZE_MAX);
        ri = fz_mem_private(&g_mem, n);
        if (ri < 0) {
            ri = 0;
            off = arena->n;
            break;
        }
        fill_private(R, ri);
        t->data = g_mem.r[ri].buf;
        t->bytes = n;
        R->slots[R->nslots++ & 7] = (slot){t->data, ri};
        return ri;
    }
    case PL_ALIAS:
    case PL_INSIDE:
        if (R->nslots > 0 && R->slots[(td[4] >> 3) % (R->nslots < 8 ? R->nslots : 8)].data) {
            const slot *s = &R->slots[(td[4] >> 3) % (R->nslots < 8 ? R->nslots : 8)];
            ri = s->region;
            off = (size_t)((uint8_t *)s->data - g_mem.r[ri].buf);
            if ((td[4] & 7) == PL_INSIDE)
                off += (size_t)(arg % 512) * es;
            if (off > g_mem.r[ri].n)
                off = g_mem.r[ri].n;
            if (!g_misaligned) /* an F32 view over an F16 one can start 2 bytes off: see README.md */
                off -= off % es;
            break;
        }
        /* fall through: nothing to alias yet */
    case PL_BUMP:
    case PL_BUMP2:
        ri = 0;
        off = ((R->bump + 63) & ~(size_t)63) + (size_t)(td[4] >> 3) * es;
        if (off > arena->n)
            off = arena->n;
        bumped = true;
        break;
    case PL_OFFSET: off = ((size_t)arg * es) % arena->n; break;
    case PL_NULL:
        t->data = NULL;
        t->bytes = extent;
        return -1;
    default: /* PL_END */ {
        const size_t back = (size_t)(arg % 64) * es;
        off = back < arena->n ? arena->n - back : 0;
        break;
    }
    }
    fz_region *r = &g_mem.r[ri];
    t->data = r->buf + off;
    t->bytes = bytes_choice(by, extent, es, r->n - off);
    if (bumped) {
        const size_t end = off + (extent < r->n - off ? extent : r->n - off);
        if (end > R->bump)
            R->bump = end;
    }
    R->slots[R->nslots++ & 7] = (slot){t->data, ri};
    return ri;
}

/* Head dim from a dims byte: multiples of 16 up to the plan (<= 128), or a weird value: 8 and 24 (odd
 * multiples of 8, valid where the plan allows them), or one that is unsupported or beyond the plan. */
static int64_t head_dim(run *R, uint8_t b)
{
    if (b >= DIM_WEIRD) {
        const int64_t w[8] = {8, 0, 17, 264, (int64_t)R->cfg.max_head_dim + 16, 272, 1, 24};
        return w[b & 7];
    }
    const int32_t n16 = imax(1, lim(R->cfg.max_head_dim, 128) / 16);
    return 16 * (1 + b % n16);
}

/* An int32 array of n entries placed as `where` says (KVL_*), 4-aligned, inside caller memory; NULL if
 * there is no room. */
static int32_t *place_ints(run *R, unsigned where, int32_t n, const edgeattn_tensor *out, const edgeattn_tensor *lse,
                           const edgeattn_tensor *q, const edgeattn_tensor *bias)
{
    const size_t bytes = sizeof(int32_t) * (size_t)n;
    const edgeattn_tensor *target = NULL;
    switch (where % KVL_COUNT) {
    case KVL_PRIVATE: {
        const int ri = fz_mem_private(&g_mem, bytes);
        if (ri >= 0)
            return (int32_t *)(void *)g_mem.r[ri].buf;
        break;
    }
    case KVL_IN_OUT: target = out; break;
    case KVL_IN_LSE: target = lse; break;
    case KVL_IN_Q: target = q; break;
    case KVL_IN_BIAS: target = bias; break;
    default: break;
    }
    if (target && target->data) {
        const int ri = fz_mem_find(&g_mem, target->data);
        if (ri >= 0) {
            size_t off = (size_t)((uint8_t *)target->data - g_mem.r[ri].buf) & ~(size_t)3;
            if (off + bytes <= g_mem.r[ri].n)
                return (int32_t *)(void *)(g_mem.r[ri].buf + off);
        }
    }
    size_t off = (R->bump + 3) & ~(size_t)3;
    if (off + bytes > g_mem.r[0].n)
        return NULL;
    R->bump = off + bytes;
    return (int32_t *)(void *)(g_mem.r[0].buf + off);
}

static void begin_op(run *R)
{
    fz_mem_release(&g_mem);
    R->bump = 0;
    R->nslots = 0;
    memset(R->slots, 0, sizeof R->slots);
}

/* ---------------------------------------------------------------- params */

typedef struct call_params {
    edgeattn_params p;
    const edgeattn_params *arg; /* what the call gets (NULL or &p) */
    bool must_fail;             /* an invalid field */
    bool zeroed;
} call_params;

static void build_params(run *R, const uint8_t pb[PARAMS_BYTES], call_params *cp)
{
    (void)R;
    memset(cp, 0, sizeof *cp);
    edgeattn_params *p = &cp->p;
    cp->zeroed = (pb[0] & P_ZEROED) != 0;
    if (cp->zeroed)
        memset(p, 0, sizeof *p);
    else
        edgeattn_params_default(p);
    cp->arg = (pb[0] & P_NULL) ? NULL : p;
    p->causal = (pb[0] & P_CAUSAL) ? 1 : 0;
    p->check_finite = (pb[0] & P_CHECK_FINITE) ? 1 : 0;
    if (pb[1])
        p->window_left = pb[1] == 255 ? -2 : pb[1] - 1;
    if (pb[2])
        p->window_right = pb[2] == 255 ? -2 : pb[2] - 1;
    p->scale = k_special[pb[3] % SPECIAL_COUNT];
    p->softcap = k_special[pb[4] % SPECIAL_COUNT];
    if (pb[0] & P_WEIRD) {
        const uint8_t w = pb[7];
        switch (w % 8) {
        case 0: p->reserved[(w >> 3) % sizeof p->reserved] = (uint8_t)(1 | w); break;
        case 1: p->causal = (w >> 3) & 1 ? 2 : -1; break;
        case 2: p->check_finite = (w >> 3) & 1 ? 2 : INT32_MIN; break;
        case 3: p->window_left = INT32_MIN; break;
        case 4: p->window_right = -3; break;
        case 5: p->window_left = INT32_MAX; break;  /* valid: unlimited in effect */
        case 6: p->window_right = INT32_MAX; break; /* valid */
        default: p->scale = -0.0f; break;           /* valid: the default scale */
        }
    }
    const bool bad_float = !isfinite(p->scale) || p->scale < 0.0f || !isfinite(p->softcap) || p->softcap < 0.0f;
    const bool bad_other = !(p->causal == 0 || p->causal == 1) || !(p->check_finite == 0 || p->check_finite == 1) ||
                           p->window_left < -1 || p->window_right < -1;
    bool reserved = false;
    for (size_t i = 0; i < sizeof p->reserved; i++)
        reserved = reserved || p->reserved[i];
    cp->must_fail = cp->arg && (bad_float || bad_other || reserved);
    if (cp->arg && cp->zeroed && g_params_versioned) /* struct_version 0 */
        cp->must_fail = true;
}

/* ---------------------------------------------------------------- ops */

static void op_attention(run *R)
{
    uint8_t d[DIMS_BYTES], pb[PARAMS_BYTES], td[6][TENSOR_BYTES];
    for (int i = 0; i < DIMS_BYTES; i++)
        d[i] = fz_u8(&R->in);
    for (int i = 0; i < PARAMS_BYTES; i++)
        pb[i] = fz_u8(&R->in);
    for (int j = 0; j < 6; j++)
        for (int i = 0; i < TENSOR_BYTES; i++)
            td[j][i] = fz_u8(&R->in);
    begin_op(R);
    const edgeattn_config *c = &R->cfg;
    const int64_t B = 1 + d[0] % lim(c->max_batch, 4);
    const int64_t Hkv = 1 + (d[1] & 15) % lim(c->max_kv_heads, 4);
    const int64_t Hq = Hkv * (1 + (d[1] >> 4) % imax(1, lim(c->max_heads / (int32_t)Hkv, 4)));
    const int64_t Nq = 1 + d[2] % lim(c->max_q_len, LIM_QLEN);
    const int64_t Nkv = 1 + d[3] % lim(c->max_kv_len, LIM_KVLEN);
    const int64_t D = head_dim(R, d[4]);
    call_params cp;
    build_params(R, pb, &cp);
    edgeattn_params *p = &cp.p;

    edgeattn_tensor q, k, v, out, bias, lse;
    const int64_t hq[4] = {B, Hq, Nq, D}, hk[4] = {B, Hkv, Nkv, D};
    const int64_t hb[4] = {pb[6] & 0x10 ? 1 : B, pb[6] & 0x20 ? 1 : Hq, Nq, Nkv}, hl[4] = {B, Hq, Nq, 1};
    build_tensor(R, td[0], hq, role_dtype(d[5]), &q);
    build_tensor(R, td[1], hk, role_dtype(d[5] >> 2), &k);
    build_tensor(R, td[2], hk, role_dtype(d[5] >> 2), &v);
    build_tensor(R, td[3], hq, role_dtype(d[5] >> 4), &out);
    build_tensor(R, td[4], hb, EDGEATTN_F32, &bias);
    build_tensor(R, td[5], hl, EDGEATTN_F32, &lse);
    p->bias = (pb[0] & P_BIAS) ? &bias : NULL;
    p->lse = (pb[0] & P_LSE) ? &lse : NULL;
    int32_t *kv_lens = NULL;
    if (pb[0] & P_KV_LENS) {
        /* max_batch entries: a mutated q batch up to the plan reads that many */
        const int32_t nl = R->cfg.max_batch;
        kv_lens = place_ints(R, pb[6] & 7, nl, &out, p->lse, &q, p->bias);
        if (kv_lens)
            for (int64_t b = 0; b < nl; b++) {
                int32_t x;
                if (pb[5] >= 0xF0) {
                    const int32_t w[4] = {-1, (int32_t)Nkv + 1, INT32_MIN, INT32_MAX};
                    x = w[(pb[5] + b) & 3];
                } else {
                    x = (int32_t)((pb[5] + 5 * b) % (Nkv + 1));
                }
                memcpy(&kv_lens[b], &x, sizeof x);
            }
        p->kv_lens = kv_lens;
    }
    trace_tensor("q", &q); /* before the call: a crash inside it still shows its arguments */
    trace_tensor("k", &k);
    trace_tensor("v", &v);
    trace_tensor("out", &out);
    trace_params(cp.arg);
    fz_mem_snapshot(&g_mem);
    const edgeattn_status st = edgeattn_attention(R->ctx, &q, &k, &v, &out, cp.arg);
    expect_status_sane(st, "attention", true);
    trace("attention", st, R->ctx, "");
    if (cp.must_fail)
        FZ_CHECK(st != EDGEATTN_OK, "attention accepted invalid params (scale %g softcap %g causal %d check %d window %d,%d)",
                 (double)p->scale, (double)p->softcap, (int)p->causal, (int)p->check_finite, (int)p->window_left,
                 (int)p->window_right);
    if (st != EDGEATTN_OK) {
        after_failure(R, st, "attention");
        return;
    }
    expect_message(edgeattn_message_of(R->ctx), false, "attention", st);
    const edgeattn_params *ap = cp.arg ? cp.arg : NULL;
    fz_mark_view(&g_mem, &q, FZ_MARK_Q, "attention q", true);
    fz_mark_view(&g_mem, &k, FZ_MARK_K, "attention k", true);
    fz_mark_view(&g_mem, &v, FZ_MARK_V, "attention v", true);
    fz_mark_view(&g_mem, &out, FZ_MARK_OUT, "attention out", false);
    if (ap && ap->bias)
        fz_mark_view(&g_mem, ap->bias, FZ_MARK_BIAS, "attention bias", true);
    if (ap && ap->lse)
        fz_mark_view(&g_mem, ap->lse, FZ_MARK_LSE, "attention lse", false);
    if (ap && ap->kv_lens)
        fz_mark_bytes(&g_mem, ap->kv_lens, 4 * (size_t)q.shape[0], FZ_MARK_INTS);
    /* kv_lens may alias anything, outputs included (read once at validation): not an input here */
    const unsigned inputs = FZ_MARK_Q | FZ_MARK_K | FZ_MARK_V | FZ_MARK_BIAS;
    fz_expect_disjoint(&g_mem, FZ_MARK_OUT, inputs | FZ_MARK_LSE, "attention accepted out sharing bytes with an input or lse");
    fz_expect_disjoint(&g_mem, FZ_MARK_LSE, inputs, "attention accepted lse sharing bytes with an input");
    fz_mem_expect_unchanged(&g_mem, FZ_MARK_OUT | FZ_MARK_LSE, "attention");
    expect_lengths(R, "attention");

    /* values: inputs as they were before the call */
    edgeattn_params rp;
    if (ap)
        rp = *ap;
    else
        edgeattn_params_default(&rp);
    const edgeattn_tensor qs = fz_tensor_in_snapshot(&g_mem, &q), ks = fz_tensor_in_snapshot(&g_mem, &k),
                          vs = fz_tensor_in_snapshot(&g_mem, &v);
    edgeattn_tensor bs;
    if (rp.bias) {
        bs = fz_tensor_in_snapshot(&g_mem, rp.bias);
        rp.bias = &bs;
    }
    rp.kv_lens = fz_mem_in_snapshot(&g_mem, rp.kv_lens);
    rp.lse = NULL;
    if (fz_check_outputs("attention", &qs, &ks, &vs, &rp, &out, ap ? ap->lse : NULL, EDGEATTN_F32, g_strict))
        trace("attention", EDGEATTN_OK, NULL, "(checked against the reference)");
}

static void op_kv_append(run *R)
{
    uint8_t d[KV_DIMS_BYTES], td[2][TENSOR_BYTES];
    for (int i = 0; i < KV_DIMS_BYTES; i++)
        d[i] = fz_u8(&R->in);
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < TENSOR_BYTES; i++)
            td[j][i] = fz_u8(&R->in);
    begin_op(R);
    const edgeattn_config *c = &R->cfg;
    fz_kv_model *m = &R->kv;
    const int64_t B = 1 + d[0] % lim(c->max_batch, 4);
    const int64_t H = (d[1] == 0 && m->heads) ? m->heads : 1 + d[1] % lim(c->max_kv_heads, 4);
    const int64_t N = 1 + d[2] % LIM_KVLEN;
    const int64_t D = (d[3] == 0 && m->dim) ? m->dim : head_dim(R, d[3]);
    const int64_t hint[4] = {B, H, N, D};
    edgeattn_tensor k, v;
    build_tensor(R, td[0], hint, role_dtype(d[4]), &k);
    build_tensor(R, td[1], hint, role_dtype(d[4] >> 2), &v);
    int32_t *n_new = NULL;
    if (d[5] & 1) {
        static const unsigned where[4] = {KVL_BUMP, KVL_PRIVATE, KVL_IN_Q, KVL_IN_BIAS};
        /* KVL_IN_Q / KVL_IN_BIAS stand for "inside k" / "inside v" here */
        /* max_batch entries: a mutated k batch up to the plan reads that many */
        const int32_t nn = R->cfg.max_batch;
        n_new = place_ints(R, where[d[7] & 3], nn, NULL, NULL, &k, &v);
        if (n_new)
            for (int64_t b = 0; b < nn; b++) {
                const unsigned base = d[5] >> 1;
                int32_t x;
                if (base == 0x7F) {
                    const int32_t w[4] = {-1, (int32_t)N + 1, INT32_MIN, INT32_MAX};
                    x = w[b & 3];
                } else {
                    x = (int32_t)((base + 3 * b) % (N + 1));
                }
                memcpy(&n_new[b], &x, sizeof x);
            }
    }
    int32_t check = d[6] < 2 ? d[6] : (d[6] & 1 ? 2 : -1);

    /* refusals the model can predict from the arguments it built */
    bool must_fail = !m->on || (check != 0 && check != 1);
    const int64_t kB = k.shape[0], kH = k.shape[1], kN = k.shape[2], kD = k.shape[3];
    if (m->on) {
        if (kB > m->max_batch)
            must_fail = true;
        if (m->heads && kB > 0 && kH > 0 && kN > 0 && kD > 0 && (kH != m->heads || kD != m->dim))
            must_fail = true;
        if (m->window == 0 && kB > 0 && kN > 0)
            for (int64_t b = 0; b < kB && b < m->max_batch; b++) {
                const int64_t n = n_new ? n_new[b] : kN;
                if (n >= 0 && n <= kN && n > (int64_t)m->cap - m->held[b])
                    must_fail = true;
            }
    }

    trace_tensor("k", &k);
    trace_tensor("v", &v);
    if (g_trace)
        fprintf(stderr, "fuzz_api:   n_new %s check_finite %d\n", n_new ? "yes" : "no", (int)check);
    fz_mem_snapshot(&g_mem);
    const edgeattn_status st = edgeattn_kv_append(R->ctx, 0, NULL, &k, &v, n_new, check);
    expect_status_sane(st, "kv_append", true);
    trace("kv_append", st, R->ctx, "");
    if (must_fail)
        FZ_CHECK(st != EDGEATTN_OK, "kv_append succeeded where it must fail (cache %d, check %d, heads %d/%lld, dim %d/%lld)",
                 (int)m->on, (int)check, (int)m->heads, (long long)kH, (int)m->dim, (long long)kD);
    if (st != EDGEATTN_OK) {
        after_failure(R, st, "kv_append");
        return;
    }
    expect_message(edgeattn_message_of(R->ctx), false, "kv_append", st);
    fz_mem_expect_unchanged(&g_mem, 0, "kv_append");
    const edgeattn_tensor ks = fz_tensor_in_snapshot(&g_mem, &k), vs = fz_tensor_in_snapshot(&g_mem, &v);
    fz_kv_append(m, &ks, &vs, fz_mem_in_snapshot(&g_mem, n_new));
    expect_lengths(R, "kv_append");
}

/* A quantised cache: the decode reference takes the rows the cache holds (edgeattn_kv_read, dequantised)
 * in place of the model's unrounded ones, so the kernels are held to FP32 accuracy over what they read.
 * How far a stored row may be from the appended one depends on the prompt's smoothing (a later token
 * with a channel far beyond the prompt's range loses precision in its other channels,
 * docs/QUANTISED-KV.md); tests/test_quant.c measures that, not this oracle. (Rows appended with a NaN
 * or Inf read back as such; the oracle then checks nothing.) */
static void read_back_quantised(run *R, const fz_kv_model *m, int32_t B, int32_t mh, float *kd, float *vd)
{
    for (int32_t b = 0; b < B; b++) {
        const int64_t t = m->total[b], sh = t < m->sinks ? t : m->sinks, rf = t - (m->held[b] - sh);
        for (int part = 0; part < 2; part++) {
            const int64_t first = part == 0 ? 0 : rf, n = part == 0 ? sh : m->held[b] - sh, j0 = part == 0 ? 0 : sh;
            if (n <= 0)
                continue;
            const size_t off = (((size_t)b * (size_t)m->heads) * (size_t)mh + (size_t)j0) * (size_t)m->dim;
            edgeattn_tensor kr = edgeattn_tensor_bhsd(kd + off, EDGEATTN_F32, 1, m->heads, n, m->dim);
            edgeattn_tensor vr = edgeattn_tensor_bhsd(vd + off, EDGEATTN_F32, 1, m->heads, n, m->dim);
            kr.stride[1] = vr.stride[1] = (int64_t)mh * m->dim; /* rows j0.. of each head's [mh][dim] block */
            kr.bytes = vr.bytes = sizeof(float) * ((size_t)(m->heads - 1) * (size_t)mh * (size_t)m->dim +
                                                   (size_t)n * (size_t)m->dim);
            const edgeattn_status st = edgeattn_kv_read(R->ctx, 0, b, first, &kr, &vr);
            FZ_CHECK(st == EDGEATTN_OK, "kv_read of held rows %lld..%lld of sequence %d failed after a decode: %s",
                     (long long)first, (long long)(first + n - 1), (int)b, edgeattn_message_of(R->ctx));
        }
    }
}

static void op_decode(run *R)
{
    uint8_t d[DIMS_BYTES], pb[PARAMS_BYTES], td[3][TENSOR_BYTES];
    for (int i = 0; i < DIMS_BYTES; i++)
        d[i] = fz_u8(&R->in);
    for (int i = 0; i < PARAMS_BYTES; i++)
        pb[i] = fz_u8(&R->in);
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < TENSOR_BYTES; i++)
            td[j][i] = fz_u8(&R->in);
    begin_op(R);
    const edgeattn_config *c = &R->cfg;
    fz_kv_model *m = &R->kv;
    const int64_t B = 1 + d[0] % lim(c->max_batch, 4);
    int64_t Hq;
    if (m->heads && !(d[1] & 0x80))
        Hq = (int64_t)m->heads * (1 + (d[1] & 0x7f) % imax(1, lim(c->max_heads / m->heads, 4)));
    else
        Hq = 1 + d[1] % lim(c->max_heads, 8);
    int32_t min_held = INT32_MAX;
    if (m->on)
        for (int64_t b = 0; b < B && b < m->max_batch; b++)
            if (m->held[b] < min_held)
                min_held = m->held[b];
    const int64_t Nq = 1 + d[2] % imax(1, lim(lim(min_held, c->max_q_len), LIM_QLEN));
    const int64_t D = (d[3] == 0 && m->dim) ? m->dim : head_dim(R, d[3]);
    call_params cp;
    build_params(R, pb, &cp);
    edgeattn_params *p = &cp.p;
    edgeattn_tensor q, out, lse;
    const int64_t hq[4] = {B, Hq, Nq, D}, hl[4] = {B, Hq, Nq, 1};
    build_tensor(R, td[0], hq, role_dtype(d[4]), &q);
    build_tensor(R, td[1], hq, role_dtype(d[4] >> 2), &out);
    build_tensor(R, td[2], hl, EDGEATTN_F32, &lse);
    p->lse = (pb[0] & P_LSE) ? &lse : NULL;
    /* decode takes neither kv_lens nor bias: any non-NULL one must be refused */
    static const int32_t some_lens[4] = {1, 1, 1, 1};
    p->kv_lens = (pb[0] & P_KV_LENS) ? some_lens : NULL;
    p->bias = (pb[0] & P_BIAS) ? &q : NULL;

    bool must_fail = cp.must_fail || !m->on || (cp.arg && (p->kv_lens || p->bias));
    if (m->on && m->sinks > 0 && cp.arg && (p->window_left >= 0 || p->window_right >= 0))
        must_fail = true; /* params windows over a cache with sinks are refused */
    if (m->on) {
        if (m->heads == 0)
            must_fail = true;
        const int64_t qB = q.shape[0], qN = q.shape[2];
        if (qB > m->max_batch)
            must_fail = true;
        for (int64_t b = 0; b < qB && b < m->max_batch; b++)
            if (m->held[b] < qN)
                must_fail = true;
    }

    trace_tensor("q", &q);
    trace_tensor("out", &out);
    trace_params(cp.arg);
    fz_mem_snapshot(&g_mem);
    const edgeattn_status st = edgeattn_decode(R->ctx, 0, NULL, NULL, &q, &out, cp.arg);
    expect_status_sane(st, "decode", true);
    trace("decode", st, R->ctx, "");
    if (must_fail)
        FZ_CHECK(st != EDGEATTN_OK, "decode succeeded where it must fail (cache %d, heads %d, Nq %lld, kv_lens %d bias %d)",
                 (int)m->on, (int)m->heads, (long long)q.shape[2], p->kv_lens != NULL, p->bias != NULL);
    if (st != EDGEATTN_OK) {
        after_failure(R, st, "decode");
        return;
    }
    expect_message(edgeattn_message_of(R->ctx), false, "decode", st);
    const edgeattn_params *ap = cp.arg;
    fz_mark_view(&g_mem, &q, FZ_MARK_Q, "decode q", true);
    fz_mark_view(&g_mem, &out, FZ_MARK_OUT, "decode out", false);
    if (ap && ap->lse)
        fz_mark_view(&g_mem, ap->lse, FZ_MARK_LSE, "decode lse", false);
    fz_expect_disjoint(&g_mem, FZ_MARK_OUT, FZ_MARK_Q | FZ_MARK_LSE, "decode accepted out sharing bytes with q or lse");
    fz_expect_disjoint(&g_mem, FZ_MARK_LSE, FZ_MARK_Q, "decode accepted lse sharing bytes with q");
    fz_mem_expect_unchanged(&g_mem, FZ_MARK_OUT | FZ_MARK_LSE, "decode");
    expect_lengths(R, "decode");

    const int32_t qB = (int32_t)q.shape[0];
    float *kd = NULL, *vd = NULL;
    int32_t lens[64], mh = 0;
    if (qB > 64 || !fz_kv_dense(m, qB, &kd, &vd, lens, &mh))
        return;
    edgeattn_tensor kt = edgeattn_tensor_bhsd(kd, EDGEATTN_F32, qB, m->heads, mh, m->dim);
    edgeattn_tensor vt = edgeattn_tensor_bhsd(vd, EDGEATTN_F32, qB, m->heads, mh, m->dim);
    if (m->dtype == EDGEATTN_Q8 || m->dtype == EDGEATTN_Q4)
        read_back_quantised(R, m, qB, mh, kd, vd);
    edgeattn_params rp;
    if (ap)
        rp = *ap;
    else
        edgeattn_params_default(&rp);
    rp.kv_lens = lens;
    rp.bias = NULL;
    rp.lse = NULL;
    const edgeattn_tensor qs = fz_tensor_in_snapshot(&g_mem, &q);
    if (fz_check_outputs("decode", &qs, &kt, &vt, &rp, &out, ap ? ap->lse : NULL, m->dtype, g_strict))
        trace("decode", EDGEATTN_OK, NULL, "(checked against the reference)");
    free(kd);
    free(vd);
}

static int32_t seq_from(uint8_t b, int32_t max_batch, bool zero_is_all)
{
    if (b == 0)
        return zero_is_all ? -1 : 0;
    if (b >= 0xFC) {
        const int32_t w[4] = {INT32_MIN, INT32_MAX, -2, max_batch};
        return w[b & 3];
    }
    return (int32_t)(b % ((uint32_t)lim(max_batch, 8) + 3)) - 2;
}

static void op_kv_reset(run *R)
{
    const uint8_t s = fz_u8(&R->in);
    begin_op(R);
    const int32_t seq = seq_from(s, R->kv.on ? R->kv.max_batch : 1, true);
    fz_mem_snapshot(&g_mem);
    const edgeattn_status st = edgeattn_kv_reset(R->ctx, seq);
    expect_status_sane(st, "kv_reset", true);
    trace("kv_reset", st, R->ctx, "");
    const bool valid = R->kv.on && seq >= -1 && seq < R->kv.max_batch;
    FZ_CHECK((st == EDGEATTN_OK) == valid, "kv_reset(%d) returned %s (cache %d, max_batch %d)", (int)seq,
             edgeattn_status_string(st), (int)R->kv.on, (int)R->kv.max_batch);
    if (st != EDGEATTN_OK) {
        after_failure(R, st, "kv_reset");
        return;
    }
    expect_message(edgeattn_message_of(R->ctx), false, "kv_reset", st);
    fz_kv_reset(&R->kv, seq);
    expect_lengths(R, "kv_reset");
}

static void op_kv_length(run *R)
{
    const uint8_t s = fz_u8(&R->in), nulls = fz_u8(&R->in);
    begin_op(R);
    const int32_t seq = seq_from(s, R->kv.on ? R->kv.max_batch : 1, false);
    int64_t total = -5;
    int32_t held = -5;
    const edgeattn_status st = edgeattn_kv_length(R->ctx, 0, seq, (nulls & 1) ? NULL : &total, (nulls & 2) ? NULL : &held);
    expect_status_sane(st, "kv_length", true);
    trace("kv_length", st, R->ctx, "");
    if (!R->kv.on) {
        FZ_CHECK(st == EDGEATTN_ERR_UNSUPPORTED, "kv_length without a cache returned %s", edgeattn_status_string(st));
    } else if (seq < 0 || seq >= R->kv.max_batch) {
        FZ_CHECK(st == EDGEATTN_ERR_INVALID_ARG, "kv_length(%d) returned %s", (int)seq, edgeattn_status_string(st));
    } else {
        FZ_CHECK(st == EDGEATTN_OK, "kv_length(%d) returned %s", (int)seq, edgeattn_status_string(st));
        if (!(nulls & 1))
            FZ_CHECK(total == R->kv.total[seq], "kv_length total %lld != %lld", (long long)total,
                     (long long)R->kv.total[seq]);
        if (!(nulls & 2))
            FZ_CHECK(held == R->kv.held[seq], "kv_length held %d != %d", (int)held, (int)R->kv.held[seq]);
    }
    if (st != EDGEATTN_OK)
        FZ_CHECK(total == -5 && held == -5, "a failed kv_length wrote its outputs");
    expect_message(edgeattn_message_of(R->ctx), st != EDGEATTN_OK, "kv_length", st);
}

static void op_copy(run *R)
{
    uint8_t d[DIMS_BYTES], td[2][TENSOR_BYTES];
    for (int i = 0; i < DIMS_BYTES; i++)
        d[i] = fz_u8(&R->in);
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < TENSOR_BYTES; i++)
            td[j][i] = fz_u8(&R->in);
    begin_op(R);
    const int64_t hint[4] = {1 + d[0] % 3, 1 + d[1] % 8, 1 + d[2] % 32, d[4] >= DIM_WEIRD ? head_dim(R, d[4]) : 1 + d[3] % 64};
    edgeattn_tensor dst, src;
    build_tensor(R, td[0], hint, role_dtype(d[5]), &dst);
    build_tensor(R, td[1], hint, role_dtype(d[5]), &src);
    trace_tensor("dst", &dst);
    trace_tensor("src", &src);
    fz_mem_snapshot(&g_mem);
    const edgeattn_status st = edgeattn_copy(R->ctx, &dst, &src);
    expect_status_sane(st, "copy", true);
    trace("copy", st, R->ctx, "");
    if (st != EDGEATTN_OK) {
        after_failure(R, st, "copy");
        return;
    }
    expect_message(edgeattn_message_of(R->ctx), false, "copy", st);
    fz_mark_view(&g_mem, &src, FZ_MARK_Q, "copy src", false);
    fz_mark_view(&g_mem, &dst, FZ_MARK_OUT, "copy dst", false);
    fz_expect_disjoint(&g_mem, FZ_MARK_OUT, FZ_MARK_Q, "copy accepted dst sharing bytes with src");
    fz_mem_expect_unchanged(&g_mem, FZ_MARK_OUT, "copy");
    const edgeattn_tensor ss = fz_tensor_in_snapshot(&g_mem, &src);
    fz_expect_same_elements(&dst, &ss, "copy");
}

/* NULL arguments: a NULL context gives EDGEATTN_ERR_NULL_ARG; any other NULL a failure with a
 * message and nothing written. */
static void op_nulls(run *R)
{
    const uint8_t which = fz_u8(&R->in) % NULLS_COUNT;
    begin_op(R);
    float *a = (float *)(void *)g_mem.r[0].buf;
    edgeattn_tensor q = edgeattn_tensor_bhsd(a, EDGEATTN_F32, 1, 1, 1, 16);
    edgeattn_tensor k = edgeattn_tensor_bhsd(a + 16, EDGEATTN_F32, 1, 1, 1, 16);
    edgeattn_tensor v = edgeattn_tensor_bhsd(a + 32, EDGEATTN_F32, 1, 1, 1, 16);
    edgeattn_tensor out = edgeattn_tensor_bhsd(a + 48, EDGEATTN_F32, 1, 1, 1, 16);
    edgeattn_status st;
    bool null_ctx = false;
    fz_mem_snapshot(&g_mem);
    switch (which) {
    case 0: st = edgeattn_attention(NULL, &q, &k, &v, &out, NULL); null_ctx = true; break;
    case 1: st = edgeattn_attention(R->ctx, NULL, &k, &v, &out, NULL); break;
    case 2: st = edgeattn_attention(R->ctx, &q, NULL, &v, &out, NULL); break;
    case 3: st = edgeattn_attention(R->ctx, &q, &k, NULL, &out, NULL); break;
    case 4: st = edgeattn_attention(R->ctx, &q, &k, &v, NULL, NULL); break;
    case 5: st = edgeattn_decode(NULL, 0, NULL, NULL, &q, &out, NULL); null_ctx = true; break;
    case 6: st = edgeattn_decode(R->ctx, 0, NULL, NULL, NULL, &out, NULL); break;
    case 7: st = edgeattn_decode(R->ctx, 0, NULL, NULL, &q, NULL, NULL); break;
    case 8: st = edgeattn_kv_append(NULL, 0, NULL, &k, &v, NULL, 0); null_ctx = true; break;
    case 9: st = edgeattn_kv_append(R->ctx, 0, NULL, NULL, &v, NULL, 0); break;
    case 10: st = edgeattn_kv_append(R->ctx, 0, NULL, &k, NULL, NULL, 0); break;
    case 11: st = edgeattn_kv_reset(NULL, -1); null_ctx = true; break;
    case 12: st = edgeattn_kv_length(NULL, 0, 0, NULL, NULL); null_ctx = true; break;
    default: {
        const char *m = edgeattn_message_of(NULL);
        FZ_CHECK(m && m[0], "edgeattn_message_of(NULL) is empty");
        edgeattn_backend_info info;
        FZ_CHECK(edgeattn_get_backend_info(NULL, &info) == EDGEATTN_ERR_NULL_ARG, "get_backend_info(NULL ctx)");
        FZ_CHECK(edgeattn_get_backend_info(R->ctx, NULL) == EDGEATTN_ERR_NULL_ARG, "get_backend_info(NULL info)");
        return;
    }
    }
    expect_status_sane(st, "a call with a NULL argument", true);
    trace("nulls", st, null_ctx ? NULL : R->ctx, "");
    if (null_ctx) {
        FZ_CHECK(st == EDGEATTN_ERR_NULL_ARG, "NULL context (case %d) gave %s", (int)which, edgeattn_status_string(st));
        fz_mem_expect_unchanged(&g_mem, 0, "a call with a NULL context");
        expect_lengths(R, "a call with a NULL context");
        return;
    }
    FZ_CHECK(st != EDGEATTN_OK, "a NULL argument (case %d) was accepted", (int)which);
    after_failure(R, st, "a call with a NULL argument");
}

/* ---------------------------------------------------------------- config, plan, create */

static void config_from_header(run *R, const uint8_t h[HEADER_BYTES])
{
    edgeattn_config *c = &R->cfg;
    edgeattn_config_default(c);
    const unsigned mode = h[0];
    c->backend = EDGEATTN_BACKEND_CPU;
    c->flags = (mode & MODE_NO_KV_CACHE) ? 0 : EDGEATTN_FLAG_KV_CACHE;
    c->max_batch = 1 + h[1] % LIM_BATCH;
    c->max_q_len = 1 + h[2] % LIM_QLEN;
    c->max_kv_len = 1 + h[3] % LIM_KVLEN;
    c->max_kv_heads = 1 + (h[4] & 3);
    c->max_heads = c->max_kv_heads * (1 + ((h[4] >> 2) & 3) % LIM_GROUP);
    c->max_head_dim = 16 * (1 + h[5] % LIM_DIM16);
    if (h[6] >= 0xF0) {
        const int w[4] = {EDGEATTN_DTYPE_COUNT_, -1, 7, 0x7fffffff};
        c->kv_cache_dtype = (edgeattn_dtype)w[h[6] & 3];
    } else {
        c->kv_cache_dtype = (edgeattn_dtype)(h[6] % 5);
    }
    if ((mode & MODE_WINDOW) && c->flags) {
        c->kv_cache_window = 1 + h[7] % c->max_kv_len;
        c->kv_cache_sinks = (h[4] >> 4) % 5; /* attention sinks beside the ring, 0..4 */
    }
    if (c->flags && (h[1] & 0x80)) /* a paged cache with a full pool: the model's capacity rules hold */
        c->kv_page_size = 16 << (h[2] >> 6);
    c->num_threads = (mode & MODE_TWO_THREADS) ? 2 : 1;
    static const uint32_t masks[4] = {0, EDGEATTN_CPU_AVX512,
                                      EDGEATTN_CPU_AVX2 | EDGEATTN_CPU_AVX512 | EDGEATTN_CPU_NEON | EDGEATTN_CPU_NEON_FP16,
                                      EDGEATTN_CPU_AVX2 | EDGEATTN_CPU_NEON_FP16};
    c->cpu_disable_mask = masks[(mode >> MODE_CPU_MASK_SHIFT) & 3];
}

/* Raw mode: each u32 is xor'ed onto the header's config (0 keeps the field). */
static void config_raw(run *R)
{
    edgeattn_config *c = &R->cfg;
    uint32_t f[RAW_FIELDS];
    for (int i = 0; i < RAW_FIELDS; i++)
        f[i] = fz_u32(&R->in);
    c->struct_version ^= f[0];
    c->flags ^= f[1];
    c->max_batch = (int32_t)((uint32_t)c->max_batch ^ f[2]);
    c->max_q_len = (int32_t)((uint32_t)c->max_q_len ^ f[3]);
    c->max_kv_len = (int32_t)((uint32_t)c->max_kv_len ^ f[4]);
    c->max_heads = (int32_t)((uint32_t)c->max_heads ^ f[5]);
    c->max_kv_heads = (int32_t)((uint32_t)c->max_kv_heads ^ f[6]);
    c->max_head_dim = (int32_t)((uint32_t)c->max_head_dim ^ f[7]);
    c->kv_cache_dtype = (edgeattn_dtype)((uint32_t)c->kv_cache_dtype ^ f[8]);
    c->kv_cache_window = (int32_t)((uint32_t)c->kv_cache_window ^ f[9]);
    c->num_threads = (int32_t)((uint32_t)c->num_threads ^ f[10]);
    c->backend = (edgeattn_backend)((uint32_t)c->backend ^ f[11]);
    c->cpu_disable_mask ^= f[12];
    c->device_user_bytes = (uint64_t)f[13] | (uint64_t)f[14] << 32;
    if (f[15])
        c->reserved[(f[15] & 0xff) % sizeof c->reserved] = (uint8_t)(f[15] >> 8);
}

/* Failing creates must not touch a caller block, must leave *ctx NULL and explain themselves. */
static void create_probes(const edgeattn_config *cfg, size_t host_bytes)
{
    edgeattn_message msg;
    edgeattn_plan_info info;
    edgeattn_context *ctx = (edgeattn_context *)(uintptr_t)0x1;
    FZ_CHECK(edgeattn_plan(NULL, &info, &msg) == EDGEATTN_ERR_NULL_ARG && msg.text[0], "plan(NULL config)");
    FZ_CHECK(edgeattn_plan(cfg, NULL, &msg) == EDGEATTN_ERR_NULL_ARG && msg.text[0], "plan(NULL info)");
    FZ_CHECK(edgeattn_create(cfg, NULL, 0, NULL, &msg) == EDGEATTN_ERR_NULL_ARG && msg.text[0], "create(NULL ctx)");
    FZ_CHECK(edgeattn_create(NULL, NULL, 0, &ctx, &msg) == EDGEATTN_ERR_NULL_ARG && !ctx && msg.text[0],
             "create(NULL config)");
    ctx = (edgeattn_context *)(uintptr_t)0x1;
    FZ_CHECK(edgeattn_create(cfg, NULL, 5, &ctx, &msg) == EDGEATTN_ERR_INVALID_ARG && !ctx && msg.text[0],
             "create(NULL buffer, 5 bytes)");
    if (host_bytes < 2 || host_bytes > (64u << 20))
        return;
    uint8_t *blk = NULL;
    FZ_CHECK(posix_memalign((void **)&blk, EDGEATTN_ALIGNMENT, host_bytes + EDGEATTN_ALIGNMENT) == 0, "harness: memory");
    memset(blk, 0xA5, host_bytes + EDGEATTN_ALIGNMENT);
    ctx = (edgeattn_context *)(uintptr_t)0x1;
    edgeattn_status st = edgeattn_create(cfg, blk, host_bytes - 1, &ctx, &msg);
    FZ_CHECK(st == EDGEATTN_ERR_BUFFER_TOO_SMALL && !ctx && msg.text[0], "create into plan - 1 bytes gave %s",
             edgeattn_status_string(st));
    ctx = (edgeattn_context *)(uintptr_t)0x1;
    st = edgeattn_create(cfg, blk + 8, host_bytes, &ctx, &msg);
    FZ_CHECK(st == EDGEATTN_ERR_MISALIGNED && !ctx && msg.text[0], "create into a misaligned block gave %s",
             edgeattn_status_string(st));
    for (size_t i = 0; i < host_bytes + EDGEATTN_ALIGNMENT; i++)
        FZ_CHECK(blk[i] == 0xA5, "a failed create wrote its caller block (byte %zu)", i);
    free(blk);
}

static void run_ops(run *R)
{
    edgeattn_backend_info bi;
    FZ_CHECK(edgeattn_get_backend_info(R->ctx, &bi) == EDGEATTN_OK, "get_backend_info");
    FZ_CHECK(bi.backend == EDGEATTN_BACKEND_CPU && bi.threads == R->cfg.num_threads,
             "backend info: backend %d threads %d (asked CPU, %d)", (int)bi.backend, (int)bi.threads,
             (int)R->cfg.num_threads);
    expect_lengths(R, "create");
    for (int ops = 0; ops < MAX_OPS && fz_more(&R->in); ops++) {
        switch (fz_u8(&R->in) % OP_COUNT) {
        case OP_ATTENTION: op_attention(R); break;
        case OP_KV_APPEND: op_kv_append(R); break;
        case OP_DECODE: op_decode(R); break;
        case OP_KV_RESET: op_kv_reset(R); break;
        case OP_KV_LENGTH: op_kv_length(R); break;
        case OP_REFILL: {
            const uint8_t seed = fz_u8(&R->in), kind = fz_u8(&R->in);
            fill_arena(R, seed, kind);
            break;
        }
        case OP_SPECIAL: op_special(R); break;
        case OP_COPY: op_copy(R); break;
        default: op_nulls(R); break;
        }
        fz_mem_release(&g_mem);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run R;
    memset(&R, 0, sizeof R);
    R.in = (fz_reader){data, size, 0};
    uint8_t h[HEADER_BYTES];
    for (int i = 0; i < HEADER_BYTES; i++)
        h[i] = fz_u8(&R.in);
    config_from_header(&R, h);
    const bool raw = (h[0] & MODE_RAW_CONFIG) != 0;
    if (raw)
        config_raw(&R);
    R.rng = 0xf00du + h[8];
    fill_arena(&R, h[8], FILL_TAME);

    edgeattn_message msg;
    edgeattn_plan_info plan;
    memset(&plan, 0, sizeof plan);
    edgeattn_status pst = edgeattn_plan(&R.cfg, &plan, &msg);
    expect_status_sane(pst, "plan", false);
    if (g_trace) {
        char cfgs[200];
        snprintf(cfgs, sizeof cfgs, "B %d Hq %d Hkv %d D %d Nq %d Nkv %d kv %d dt %d window %d sinks %d page %d thr %d",
                 (int)R.cfg.max_batch, (int)R.cfg.max_heads, (int)R.cfg.max_kv_heads, (int)R.cfg.max_head_dim,
                 (int)R.cfg.max_q_len, (int)R.cfg.max_kv_len, (int)((R.cfg.flags & EDGEATTN_FLAG_KV_CACHE) != 0),
                 (int)R.cfg.kv_cache_dtype, (int)R.cfg.kv_cache_window, (int)R.cfg.kv_cache_sinks,
                 (int)R.cfg.kv_page_size, (int)R.cfg.num_threads);
        trace("plan", pst, NULL, pst != EDGEATTN_OK ? msg.text : cfgs);
    } else {
        trace("plan", pst, NULL, pst != EDGEATTN_OK ? msg.text : "");
    }
    expect_message(msg.text, pst != EDGEATTN_OK, "plan", pst);
    FZ_CHECK(edgeattn_plan(&R.cfg, &plan, NULL) == pst, "plan with a NULL message gave another status");
    if (pst == EDGEATTN_OK) {
        FZ_CHECK(plan.host_bytes > 0 && plan.kv_cache_bytes <= plan.host_bytes,
                 "plan: host_bytes %zu, kv_cache_bytes %zu", plan.host_bytes, plan.kv_cache_bytes);
        FZ_CHECK((plan.kv_cache_bytes > 0) == ((R.cfg.flags & EDGEATTN_FLAG_KV_CACHE) != 0),
                 "plan: kv_cache_bytes %zu with flags 0x%x", plan.kv_cache_bytes, (unsigned)R.cfg.flags);
    }
    /* what create may safely obtain here: small, CPU, at most 2 threads */
    const bool small = pst == EDGEATTN_OK && plan.backend == EDGEATTN_BACKEND_CPU && plan.host_bytes <= (8u << 20) &&
                       plan.num_threads >= 1 && plan.num_threads <= 2 && R.cfg.max_batch <= 64;
    if (pst != EDGEATTN_OK) {
        edgeattn_context *ctx = (edgeattn_context *)(uintptr_t)0x1;
        const edgeattn_status cst = edgeattn_create(&R.cfg, NULL, 0, &ctx, &msg);
        FZ_CHECK(cst == pst && ctx == NULL && msg.text[0], "plan gave %s but create %s", edgeattn_status_string(pst),
                 edgeattn_status_string(cst));
        return 0;
    }
    if (!small)
        return 0;
    if (h[0] & MODE_CREATE_PROBES)
        create_probes(&R.cfg, plan.host_bytes);

    void *blk = NULL;
    size_t blk_bytes = 0;
    if (h[0] & MODE_CALLER_BUFFER) {
        /* exactly the plan: ASan reports a write past it */
        FZ_CHECK(posix_memalign(&blk, EDGEATTN_ALIGNMENT, plan.host_bytes) == 0, "harness: memory");
        blk_bytes = plan.host_bytes;
    }
    const edgeattn_status cst = edgeattn_create(&R.cfg, blk, blk_bytes, &R.ctx, &msg);
    expect_status_sane(cst, "create", false);
    FZ_CHECK(cst == EDGEATTN_OK && R.ctx, "create failed after plan succeeded: %s: %s", edgeattn_status_string(cst),
             msg.text);
    expect_message(edgeattn_message_of(R.ctx), false, "create", cst);
    R.cfg.num_threads = plan.num_threads;
    fz_kv_init(&R.kv, &R.cfg);
    run_ops(&R);
    edgeattn_destroy(R.ctx);
    free(blk);
    fz_kv_free(&R.kv);
    fz_mem_release(&g_mem);
    return 0;
}

/* ---------------------------------------------------------------- start-up */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (int i = 1; i < *argc; i++)
        if (!strncmp((*argv)[i], "--make-seeds=", 13))
            exit(fz_make_seeds((*argv)[i] + 13));
    /* the config decides backend and tiers, not the environment */
    unsetenv("EDGEATTN_BACKEND");
    unsetenv("EDGEATTN_CPU_MASK");
    const char *tr = getenv("FUZZ_API_TRACE");
    g_trace = tr && tr[0] == '1';
    const char *strict = getenv("FUZZ_API_STRICT");
    g_strict = strict && strict[0] == '1';
    const char *mis = getenv("FUZZ_API_MISALIGNED"); /* views off their element alignment are refused
                                                        (EDGEATTN_ERR_MISALIGNED): on unless =0 */
    g_misaligned = !(mis && mis[0] == '0');
    fz_mem_init(&g_mem);
    edgeattn_params p;
    memset(&p, 0, sizeof p);
    edgeattn_params_default(&p);
    uint32_t first;
    memcpy(&first, &p, sizeof first);
    g_params_versioned = first != 0;
    return 0;
}
