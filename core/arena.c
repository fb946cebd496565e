/* The bump arena over one block, and the sizer that plans it with the same alignment rules. */
#include <string.h>

#include "core/ea_core.h"

static size_t align_up(size_t x, size_t a, bool *overflow)
{
    size_t r;
    if (!ea_add_ok(x, a - 1, &r)) {
        *overflow = true;
        return 0;
    }
    return r & ~(a - 1);
}

size_t ea_sizer_add(ea_sizer *sz, size_t count, size_t elem, size_t align)
{
    size_t bytes, off, end;
    if (!ea_mul_ok(count, elem, &bytes))
        sz->overflow = true;
    off = align_up(sz->total, align, &sz->overflow);
    if (!ea_add_ok(off, bytes, &end))
        sz->overflow = true;
    if (!sz->overflow)
        sz->total = end;
    return off;
}

void ea_arena_init(ea_arena *a, void *base, size_t size)
{
    a->base = base;
    a->size = size;
    a->used = 0;
}

void *ea_arena_alloc(ea_arena *a, size_t count, size_t elem, size_t align)
{
    ea_sizer sz = {a->used, false};
    size_t off = ea_sizer_add(&sz, count, elem, align);
    /* the base is EDGEATTN_ALIGNMENT-aligned, so offsets aligned to align give aligned pointers */
    if (sz.overflow || sz.total > a->size)
        return NULL;
    a->used = sz.total;
    void *p = a->base + off;
    memset(p, 0, sz.total - off);
    return p;
}
