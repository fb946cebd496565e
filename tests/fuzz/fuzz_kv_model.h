/*
 * What the KV cache of a context should hold, kept by the harness beside the library: lengths per
 * sequence and, when the config is small enough, every stored row (already rounded to the cache
 * dtype). Lengths are compared with edgeattn_kv_length after every op; the rows feed the reference
 * for edgeattn_decode.
 */
#ifndef EDGEATTN_FUZZ_KV_MODEL_H
#define EDGEATTN_FUZZ_KV_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "edgeattn/edgeattn.h"

typedef struct fz_kv_model {
    bool on;                 /* the config planned a cache */
    bool rows;               /* k, v are kept (small enough) */
    edgeattn_dtype dtype;
    int32_t max_batch, max_heads, max_dim, cap, window, sinks; /* cap = sinks + window with a window */
    int32_t heads, dim;      /* fixed by the first append after a full reset; 0: empty */
    int64_t *total;          /* [max_batch] */
    int32_t *held;           /* [max_batch] */
    float *k, *v;            /* [max_batch][max_heads][cap][max_dim] */
} fz_kv_model;

/* Sets the model up for a created context's config (false: the config is too big to model rows). */
void fz_kv_init(fz_kv_model *m, const edgeattn_config *cfg);
void fz_kv_free(fz_kv_model *m);
/* A successful append of k/v (read from the snapshot) with n_new (snapshot too, or NULL). */
void fz_kv_append(fz_kv_model *m, const edgeattn_tensor *k, const edgeattn_tensor *v, const int32_t *n_new);
/* A successful reset of seq (-1: all). */
void fz_kv_reset(fz_kv_model *m, int32_t seq);
/* Dense F32 copies of the held rows of sequences 0..B-1 in position order, for the reference:
 * [B][heads][max held][dim]; lens[b] = held[b]. Returns false when rows are not kept. The arrays are
 * malloc'ed; free them with free(). */
bool fz_kv_dense(const fz_kv_model *m, int32_t B, float **k, float **v, int32_t *lens, int32_t *max_held);

#endif
