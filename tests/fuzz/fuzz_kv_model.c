/* The harness's own KV cache (fuzz_kv_model.h). */
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "fuzz_check.h"
#include "fuzz_kv_model.h"

/* Largest row store the model keeps (floats, K and V each). */
#define MODEL_MAX_FLOATS (4u << 20)

void fz_kv_init(fz_kv_model *m, const edgeattn_config *cfg)
{
    memset(m, 0, sizeof *m);
    m->on = (cfg->flags & EDGEATTN_FLAG_KV_CACHE) != 0;
    if (!m->on)
        return;
    m->dtype = cfg->kv_cache_dtype;
    m->max_batch = cfg->max_batch;
    m->max_heads = cfg->max_kv_heads;
    m->max_dim = cfg->max_head_dim;
    m->window = cfg->kv_cache_window;
    m->sinks = cfg->kv_cache_window > 0 ? cfg->kv_cache_sinks : 0;
    m->cap = cfg->kv_cache_window > 0 ? m->sinks + cfg->kv_cache_window : cfg->max_kv_len;
    m->total = calloc((size_t)m->max_batch, sizeof *m->total);
    m->held = calloc((size_t)m->max_batch, sizeof *m->held);
    FZ_CHECK(m->total && m->held, "harness: no memory for the KV model");
    uint64_t n = (uint64_t)m->max_batch * (uint64_t)m->max_heads * (uint64_t)m->cap * (uint64_t)m->max_dim;
    if (n <= MODEL_MAX_FLOATS) {
        m->k = calloc((size_t)n, sizeof(float));
        m->v = calloc((size_t)n, sizeof(float));
        FZ_CHECK(m->k && m->v, "harness: no memory for the KV model");
        m->rows = true;
    }
}

void fz_kv_free(fz_kv_model *m)
{
    free(m->total);
    free(m->held);
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* x as the cache stores it */
static float round_to(edgeattn_dtype dt, float x)
{
    switch (dt) {
    case EDGEATTN_F16: return ea_f16_to_f32(ea_f32_to_f16(x));
    case EDGEATTN_BF16: return ea_bf16_to_f32(ea_f32_to_bf16(x));
    default: return x;
    }
}

/* The slot of position p: the sinks keep theirs, later positions go round the ring after them. */
static int64_t slot_of(const fz_kv_model *m, int64_t p)
{
    return p < m->sinks ? p : m->sinks + (p - m->sinks) % (m->cap - m->sinks);
}

static size_t row_index(const fz_kv_model *m, int64_t b, int64_t h, int64_t slot)
{
    return (((size_t)b * (size_t)m->max_heads + (size_t)h) * (size_t)m->cap + (size_t)slot) * (size_t)m->max_dim;
}

void fz_kv_append(fz_kv_model *m, const edgeattn_tensor *k, const edgeattn_tensor *v, const int32_t *n_new)
{
    const int64_t B = k->shape[0], H = k->shape[1], N = k->shape[2], D = k->shape[3];
    int64_t added = 0;
    for (int64_t b = 0; b < B; b++)
        added += n_new ? n_new[b] : N;
    if (added > 0 || m->heads) { /* an empty cache takes its shape from the first append of tokens */
        m->heads = (int32_t)H;
        m->dim = (int32_t)D;
    }
    for (int64_t b = 0; b < B; b++) {
        const int64_t n = n_new ? n_new[b] : N;
        /* rows kept: those landing in the sinks, and of the rest the last (cap - sinks) */
        const int64_t ring = m->cap - m->sinks;
        if (m->rows)
            for (int64_t h = 0; h < H; h++)
                for (int64_t r = 0; r < n; r++) {
                    const int64_t pos = m->total[b] + r;
                    if (pos >= m->sinks && r < n - ring)
                        continue;
                    const int64_t slot = slot_of(m, pos);
                    float *kd = m->k + row_index(m, b, h, slot), *vd = m->v + row_index(m, b, h, slot);
                    for (int64_t d = 0; d < D; d++) {
                        kd[d] = round_to(m->dtype, fz_load(k, b, h, r, d));
                        vd[d] = round_to(m->dtype, fz_load(v, b, h, r, d));
                    }
                }
        m->total[b] += n;
        m->held[b] = m->held[b] + n < m->cap ? (int32_t)(m->held[b] + n) : m->cap;
    }
}

void fz_kv_reset(fz_kv_model *m, int32_t seq)
{
    bool empty = true;
    for (int32_t b = 0; b < m->max_batch; b++) {
        if (seq == -1 || seq == b)
            m->total[b] = m->held[b] = 0;
        empty = empty && m->total[b] == 0;
    }
    if (empty)
        m->heads = m->dim = 0;
}

bool fz_kv_dense(const fz_kv_model *m, int32_t B, float **k, float **v, int32_t *lens, int32_t *max_held)
{
    if (!m->rows || m->heads == 0)
        return false;
    int32_t mh = 1;
    for (int32_t b = 0; b < B; b++)
        if (m->held[b] > mh)
            mh = m->held[b];
    const size_t n = (size_t)B * (size_t)m->heads * (size_t)mh * (size_t)m->dim;
    *k = calloc(n, sizeof(float));
    *v = calloc(n, sizeof(float));
    FZ_CHECK(*k && *v, "harness: no memory for the decode reference");
    for (int32_t b = 0; b < B; b++) {
        lens[b] = m->held[b];
        /* held positions: [0, sh) (the sinks) and [rf, total) */
        const int64_t t = m->total[b], sh = t < m->sinks ? t : m->sinks, rf = t - (m->held[b] - sh);
        for (int32_t h = 0; h < m->heads; h++)
            for (int32_t j = 0; j < m->held[b]; j++) {
                const int64_t slot = slot_of(m, j < sh ? j : rf + (j - sh));
                const size_t dst = (((size_t)b * (size_t)m->heads + (size_t)h) * (size_t)mh + (size_t)j) * (size_t)m->dim;
                memcpy(*k + dst, m->k + row_index(m, b, h, slot), sizeof(float) * (size_t)m->dim);
                memcpy(*v + dst, m->v + row_index(m, b, h, slot), sizeof(float) * (size_t)m->dim);
            }
    }
    *max_held = mh;
    return true;
}
