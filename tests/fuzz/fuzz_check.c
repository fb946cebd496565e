/* Regions of caller memory, snapshots and the checks around each call (fuzz_check.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "fuzz_check.h"

_Noreturn void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("\n==fuzz_api== INVARIANT VIOLATED: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    __builtin_trap();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("fuzz_api: out of memory in the harness\n", stderr);
        abort();
    }
    return p;
}

void fz_mem_init(fz_mem *m)
{
    memset(m, 0, sizeof *m);
    /* exactly FZ_ARENA_BYTES: a read past the arena's end lands in ASan's redzone */
    m->r[0].buf = xmalloc(FZ_ARENA_BYTES);
    m->r[0].snap = xmalloc(FZ_ARENA_BYTES);
    m->r[0].mask = xmalloc(FZ_ARENA_BYTES);
    m->r[0].n = FZ_ARENA_BYTES;
    memset(m->r[0].buf, 0, FZ_ARENA_BYTES);
    m->count = 1;
}

int fz_mem_private(fz_mem *m, size_t n)
{
    if (m->count >= FZ_MAX_REGIONS)
        return -1;
    fz_region *r = &m->r[m->count];
    r->buf = xmalloc(n); /* malloc(n) exactly: ASan reports any access at or past buf + n */
    r->snap = xmalloc(n);
    r->mask = xmalloc(n);
    r->n = n;
    return m->count++;
}

void fz_mem_release(fz_mem *m)
{
    for (int i = 1; i < m->count; i++) {
        free(m->r[i].buf);
        free(m->r[i].snap);
        free(m->r[i].mask);
        memset(&m->r[i], 0, sizeof m->r[i]);
    }
    m->count = 1;
}

int fz_mem_find(const fz_mem *m, const void *p)
{
    if (!p)
        return -1;
    const uintptr_t a = (uintptr_t)p;
    for (int i = 0; i < m->count; i++) {
        const uintptr_t lo = (uintptr_t)m->r[i].buf;
        if (a >= lo && a - lo <= m->r[i].n)
            return i;
    }
    return -1;
}

void fz_mem_snapshot(fz_mem *m)
{
    for (int i = 0; i < m->count; i++) {
        memcpy(m->r[i].snap, m->r[i].buf, m->r[i].n);
        memset(m->r[i].mask, 0, m->r[i].n);
    }
}

void fz_mem_expect_unchanged(const fz_mem *m, unsigned allowed, const char *what)
{
    for (int i = 0; i < m->count; i++) {
        const fz_region *r = &m->r[i];
        if (!allowed) {
            if (memcmp(r->buf, r->snap, r->n) == 0)
                continue;
        }
        for (size_t j = 0; j < r->n; j++) {
            if ((j & 63) == 0 && r->n - j >= 64 && !memcmp(r->buf + j, r->snap + j, 64)) {
                j += 63; /* a clean 64-byte run */
                continue;
            }
            if (r->buf[j] != r->snap[j] && !(r->mask[j] & allowed))
                fz_fail("%s wrote caller memory it was not given: region %d (%s, %zu bytes) byte %zu: 0x%02x -> 0x%02x",
                        what, i, i == 0 ? "arena" : "private block", r->n, j, r->snap[j], r->buf[j]);
        }
    }
}

const void *fz_mem_in_snapshot(const fz_mem *m, const void *p)
{
    const int i = fz_mem_find(m, p);
    if (i < 0)
        return p;
    return m->r[i].snap + ((const uint8_t *)p - m->r[i].buf);
}

edgeattn_tensor fz_tensor_in_snapshot(const fz_mem *m, const edgeattn_tensor *t)
{
    edgeattn_tensor s = *t;
    s.data = (void *)fz_mem_in_snapshot(m, t->data);
    return s;
}

size_t fz_dtype_size(edgeattn_dtype dt)
{
    switch (dt) {
    case EDGEATTN_F32: return 4;
    case EDGEATTN_F16:
    case EDGEATTN_BF16: return 2;
    default: return 0;
    }
}

size_t fz_extent(const edgeattn_tensor *t)
{
    size_t es = fz_dtype_size(t->dtype), last = 0;
    if (!es)
        es = 4;
    for (int i = 0; i < 4; i++) {
        if (t->shape[i] <= 0 || t->stride[i] < 0)
            return 0;
        size_t term;
        if (__builtin_mul_overflow((uint64_t)(t->shape[i] - 1), (uint64_t)t->stride[i], &term) ||
            __builtin_add_overflow(last, term, &last))
            return SIZE_MAX;
    }
    size_t bytes;
    if (__builtin_add_overflow(last, 1, &bytes) || __builtin_mul_overflow(bytes, es, &bytes))
        return SIZE_MAX;
    return bytes;
}

bool fz_extents_overlap(const void *a, size_t na, const void *b, size_t nb)
{
    if (!a || !b || !na || !nb)
        return false;
    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    const bool a_before_b_end = nb == SIZE_MAX || pa < pb + nb;
    const bool b_before_a_end = na == SIZE_MAX || pb < pa + na;
    return a_before_b_end && b_before_a_end;
}

/* Byte offset of element [b, h, n, d] from data; false if it overflows. */
static bool elem_offset(const edgeattn_tensor *t, size_t es, const int64_t idx[4], uint64_t *off)
{
    uint64_t o = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t term;
        if (__builtin_mul_overflow((uint64_t)idx[i], (uint64_t)t->stride[i], &term) ||
            __builtin_add_overflow(o, term, &o))
            return false;
    }
    return !__builtin_mul_overflow(o, (uint64_t)es, off);
}

void fz_mark_view(fz_mem *m, const edgeattn_tensor *t, unsigned bit, const char *what, bool input)
{
    const size_t es = fz_dtype_size(t->dtype);
    FZ_CHECK(es != 0, "%s: accepted a view of dtype %d", what, (int)t->dtype);
    FZ_CHECK(t->memory == EDGEATTN_MEM_HOST && t->offset == 0, "%s: the CPU backend accepted memory kind %d offset %zu",
             what, (int)t->memory, t->offset);
    const int ri = fz_mem_find(m, t->data);
    FZ_CHECK(ri >= 0, "%s: accepted a view whose data is outside every caller block", what);
    fz_region *r = &m->r[ri];
    const size_t base = (size_t)((uint8_t *)t->data - r->buf);
    /* an input may broadcast (stride 0 over B, H or N): such a dim reads one set of elements */
    int64_t ext[4];
    uint64_t count = 1;
    for (int i = 0; i < 4; i++) {
        FZ_CHECK(t->shape[i] > 0 && t->stride[i] >= 0, "%s: accepted shape[%d] = %lld stride %lld", what, i,
                 (long long)t->shape[i], (long long)t->stride[i]);
        ext[i] = input && i < 3 && t->stride[i] == 0 ? 1 : t->shape[i];
        FZ_CHECK(!__builtin_mul_overflow(count, (uint64_t)ext[i], &count) && count <= t->bytes / es,
                 "%s: accepted a view of more elements than its %zu bytes hold", what, t->bytes);
    }
    int64_t idx[4];
    for (idx[0] = 0; idx[0] < ext[0]; idx[0]++)
        for (idx[1] = 0; idx[1] < ext[1]; idx[1]++)
            for (idx[2] = 0; idx[2] < ext[2]; idx[2]++)
                for (idx[3] = 0; idx[3] < t->shape[3]; idx[3]++) {
                    uint64_t off;
                    FZ_CHECK(elem_offset(t, es, idx, &off) && off + es <= t->bytes,
                             "%s: accepted a view whose element [%lld,%lld,%lld,%lld] lies past its %zu bytes", what,
                             (long long)idx[0], (long long)idx[1], (long long)idx[2], (long long)idx[3], t->bytes);
                    FZ_CHECK(base + off + es <= r->n, "%s: harness: view past its block", what);
                    for (size_t j = 0; j < es; j++) {
                        uint8_t *mk = &r->mask[base + off + j];
                        FZ_CHECK(!(*mk & bit), "%s: accepted a view whose elements overlap (element [%lld,%lld,%lld,%lld])",
                                 what, (long long)idx[0], (long long)idx[1], (long long)idx[2], (long long)idx[3]);
                        *mk |= (uint8_t)bit;
                    }
                }
}

void fz_mark_bytes(fz_mem *m, const void *p, size_t n, unsigned bit)
{
    const int ri = fz_mem_find(m, p);
    if (ri < 0)
        return;
    fz_region *r = &m->r[ri];
    const size_t base = (size_t)((const uint8_t *)p - r->buf);
    for (size_t j = 0; j < n && base + j < r->n; j++)
        r->mask[base + j] |= (uint8_t)bit;
}

void fz_expect_disjoint(const fz_mem *m, unsigned a, unsigned b, const char *what)
{
    for (int i = 0; i < m->count; i++)
        for (size_t j = 0; j < m->r[i].n; j++) {
            const unsigned mk = m->r[i].mask[j];
            if ((mk & a) && (mk & b))
                fz_fail("%s (region %d byte %zu, marks 0x%02x)", what, i, j, mk);
        }
}

float fz_load(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d)
{
    const size_t i = (size_t)(b * t->stride[0] + h * t->stride[1] + n * t->stride[2] + d * t->stride[3]);
    const uint8_t *p = (const uint8_t *)t->data + i * fz_dtype_size(t->dtype);
    uint16_t u16;
    float f;
    switch (t->dtype) {
    case EDGEATTN_F16: memcpy(&u16, p, 2); return ea_f16_to_f32(u16);
    case EDGEATTN_BF16: memcpy(&u16, p, 2); return ea_bf16_to_f32(u16);
    default: memcpy(&f, p, 4); return f;
    }
}

void fz_expect_same_elements(const edgeattn_tensor *dst, const edgeattn_tensor *src, const char *what)
{
    const size_t es = fz_dtype_size(src->dtype);
    for (int64_t b = 0; b < src->shape[0]; b++)
        for (int64_t h = 0; h < src->shape[1]; h++)
            for (int64_t n = 0; n < src->shape[2]; n++)
                for (int64_t x = 0; x < src->shape[3]; x++) {
                    const size_t so = (size_t)(b * src->stride[0] + h * src->stride[1] + n * src->stride[2] + x * src->stride[3]) * es;
                    const size_t dof = (size_t)(b * dst->stride[0] + h * dst->stride[1] + n * dst->stride[2] + x * dst->stride[3]) * es;
                    FZ_CHECK(!memcmp((const uint8_t *)src->data + so, (const uint8_t *)dst->data + dof, es),
                             "%s: dst[%lld,%lld,%lld,%lld] differs from src", what, (long long)b, (long long)h,
                             (long long)n, (long long)x);
                }
}

uint64_t fz_rand(uint64_t *rng)
{
    /* splitmix64: any seed, including 0, gives a good stream */
    uint64_t z = (*rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Every 16-bit word is sign | 0b0111_1xxx_xxxx_xxxx: as F16 (exponent field 14 or 15) a value in
 * [0.5, 2); as BF16, or as the high half of an F32 (exponent field 112..127), a value in [2^-15, 2).
 * So any view of any dtype at any even offset reads small finite non-zero values. */
void fz_fill_tame(uint8_t *p, size_t n, uint64_t *rng)
{
    size_t i = 0;
    while (i + 1 < n) {
        uint64_t r = fz_rand(rng);
        for (int w = 0; w < 4 && i + 1 < n; w++, i += 2, r >>= 16) {
            const uint16_t v = (uint16_t)((r & 0x8000u) | 0x3800u | (r & 0x07ffu));
            memcpy(p + i, &v, 2);
        }
    }
    if (i < n)
        p[i] = 0x38;
}
