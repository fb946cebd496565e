/*
 * Caller memory as the fuzz harness sees it, and the checks made around every call.
 *
 * All tensors, kv_lens and n_new arrays of a call live in regions: region 0 is the arena (one block
 * shared by every op of an input, so views can overlap and alias), the others are private blocks of
 * exactly the bytes a tensor declares (so AddressSanitizer catches a read one byte past `bytes`).
 * Before a call every region is copied into its snapshot; after it, bytes the call was not allowed to
 * write are compared with the snapshot. The reference reads its inputs from the snapshot, so it sees
 * the values the call saw even if the call wrote where it should not have.
 */
#ifndef EDGEATTN_FUZZ_CHECK_H
#define EDGEATTN_FUZZ_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgeattn/edgeattn.h"

#define FZ_ARENA_BYTES (128u * 1024u)
#define FZ_MAX_REGIONS 16

/* Stops the run so libFuzzer records the input: prints what was violated, then traps. */
_Noreturn void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define FZ_CHECK(cond, ...)                                                                                      \
    do {                                                                                                         \
        if (!(cond))                                                                                             \
            fz_fail(__VA_ARGS__);                                                                                \
    } while (0)

typedef struct fz_region {
    uint8_t *buf;  /* caller memory handed to the library */
    uint8_t *snap; /* its bytes before the current call */
    uint8_t *mask; /* per byte: FZ_MARK_* bits of the views the current call was given */
    size_t n;
} fz_region;

typedef struct fz_mem {
    fz_region r[FZ_MAX_REGIONS];
    int count; /* r[0] is the arena; r[1..count) private blocks of the current op */
} fz_mem;

/* Roles of the views of one call, one mask bit each. */
enum {
    FZ_MARK_Q = 1u << 0,
    FZ_MARK_K = 1u << 1,
    FZ_MARK_V = 1u << 2,
    FZ_MARK_OUT = 1u << 3,
    FZ_MARK_LSE = 1u << 4,
    FZ_MARK_BIAS = 1u << 5,
    FZ_MARK_INTS = 1u << 6, /* kv_lens or n_new */
};

void fz_mem_init(fz_mem *m);               /* the arena; once per process */
int fz_mem_private(fz_mem *m, size_t n);   /* a private block of exactly n bytes; -1 if none is left */
void fz_mem_release(fz_mem *m);            /* frees the private blocks */
int fz_mem_find(const fz_mem *m, const void *p); /* region holding p (one past the end counts), or -1 */
void fz_mem_snapshot(fz_mem *m);           /* copies every region into its snapshot, clears the masks */
/* Every byte whose mask has none of the `allowed` bits equals its snapshot (what: the call, for the
 * report). */
void fz_mem_expect_unchanged(const fz_mem *m, unsigned allowed, const char *what);
/* The snapshot address of p (p inside some region), or p itself when it is in none (NULL stays). */
const void *fz_mem_in_snapshot(const fz_mem *m, const void *p);
/* A copy of t whose data points into the snapshot. */
edgeattn_tensor fz_tensor_in_snapshot(const fz_mem *m, const edgeattn_tensor *t);

/* Bytes per element (0 for a dtype outside the enum). */
size_t fz_dtype_size(edgeattn_dtype dt);
/* Bytes spanned by a view from data to its last element, saturating at SIZE_MAX; 0 when a shape is
 * <= 0 or a stride negative (no meaningful extent). */
size_t fz_extent(const edgeattn_tensor *t);
/* Do the extents of two views share a byte? (false when either extent is unknown) */
bool fz_extents_overlap(const void *a, size_t na, const void *b, size_t nb);

/* For a view the library accepted: every element lies inside [data, data + bytes) of a region, no
 * element shares a byte with another element of the view; marks its bytes with `bit`. */
/* input: a read-only tensor, which may broadcast (stride 0 over B, H or N). */
void fz_mark_view(fz_mem *m, const edgeattn_tensor *t, unsigned bit, const char *what, bool input);
/* Marks n bytes at p (an int array the call read). */
void fz_mark_bytes(fz_mem *m, const void *p, size_t n, unsigned bit);
/* No byte carries both a bit of `a` and a bit of `b`. */
void fz_expect_disjoint(const fz_mem *m, unsigned a, unsigned b, const char *what);

/* Element by element, dst holds the bytes of src (a successful copy; src from the snapshot). */
void fz_expect_same_elements(const edgeattn_tensor *dst, const edgeattn_tensor *src, const char *what);

/* Outputs out / lse of a successful attention or decode (fuzz_oracle.c): q, k, v and p->bias,
 * p->kv_lens read as the call saw them (the snapshot; decode: the model's rows, kv_lens = held).
 * cache: the KV-cache dtype of a decode (a quantised one: the model holds the rows unquantised, and the
 * tolerance is the format's), EDGEATTN_F32 for attention. strict: also calls whose raw scores exceed
 * FP32 before softcap. Returns true when the reference was compared. */
bool fz_check_outputs(const char *what, const edgeattn_tensor *q, const edgeattn_tensor *k, const edgeattn_tensor *v,
                      const edgeattn_params *p, const edgeattn_tensor *out, const edgeattn_tensor *lse,
                      edgeattn_dtype cache, bool strict);

/* Element [b, h, n, d] of a checked view. */
float fz_load(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d);

/* Fills with values that are small and finite whichever of F32 / F16 / BF16 reads them (see .c). */
void fz_fill_tame(uint8_t *p, size_t n, uint64_t *rng);
uint64_t fz_rand(uint64_t *rng);

#endif
