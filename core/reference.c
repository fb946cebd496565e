/*
 * The reference: for each (b, h, i) a plain two-pass softmax over the visible keys, in double.
 * This is the definition the backends are tested against; keep it obvious.
 */
#include <math.h>
#include <stdlib.h>

#include "core/ea_core.h"
#include "core/half.h"
#include "core/reference.h"

double ea_ref_load(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d)
{
    ptrdiff_t off = (ptrdiff_t)(b * t->stride[0] + h * t->stride[1] + n * t->stride[2] + d * t->stride[3]);
    return (double)ea_load_f32(t->data, t->dtype, off);
}

/* Is key j visible to the query at position qpos, given kv_len keys? */
static int visible(const edgeattn_params *p, int64_t j, int64_t qpos, int64_t kv_len)
{
    if (j >= kv_len)
        return 0;
    if (p->causal && j > qpos)
        return 0;
    if (p->window_left >= 0 && j < qpos - p->window_left)
        return 0;
    if (p->window_right >= 0 && j > qpos + p->window_right)
        return 0;
    return 1;
}

/* Does the block mask (NULL: none) keep key j for query row i of (b, KV head hk)? */
static int mask_keeps(const edgeattn_block_mask *m, int64_t Nq, int64_t b, int64_t hk, int64_t i, int64_t j)
{
    if (!m)
        return 1;
    const int64_t nrb = (Nq + m->block_q - 1) / m->block_q, pat = (b % m->batch) * m->heads + hk % m->heads;
    const int32_t *rp = m->row_ptr + pat * (nrb + 1) + i / m->block_q;
    for (int32_t e = rp[0]; e < rp[1]; e++) /* a plain scan: the reference is slow on purpose */
        if (m->col_idx[e] == j / m->block_k)
            return 1;
    return 0;
}

edgeattn_status ea_ref_attention(const edgeattn_tensor *q, const edgeattn_tensor *k, const edgeattn_tensor *v,
                                 const edgeattn_params *params, double *out, double *lse)
{
    if (!q || !k || !v || !out)
        return EDGEATTN_ERR_NULL_ARG;
    edgeattn_params defaults;
    if (!params) {
        edgeattn_params_default(&defaults);
        params = &defaults;
    }
    const int64_t B = q->shape[0], Hq = q->shape[1], Nq = q->shape[2], D = q->shape[3];
    const int64_t Hkv = k->shape[1], group = Hq / Hkv, Dv = v->shape[3]; /* Dv: V's (and out's) head dim */
    int64_t Nkv = k->shape[2];
    const double scale = params->scale > 0.0f ? (double)params->scale : 1.0 / sqrt((double)D);
    /* Linformer: K' = E K, V' = F V in double, [B][Hkv][k][D]; attention then runs over their k rows */
    const edgeattn_linformer *lf = params->linformer;
    double *kp = NULL, *vp = NULL;
    if (lf) {
        const int64_t kr = lf->e->shape[2], n = Nkv;
        kp = calloc((size_t)(B * Hkv * kr * D), sizeof(double));
        vp = calloc((size_t)(B * Hkv * kr * Dv), sizeof(double));
        if (!kp || !vp) {
            free(kp);
            free(vp);
            return EDGEATTN_ERR_OUT_OF_MEMORY;
        }
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < Hkv; h++)
                for (int64_t r = 0; r < kr; r++)
                    for (int64_t j = 0; j < n; j++) {
                        const double e = ea_ref_load(lf->e, lf->e->shape[0] == 1 ? 0 : b, lf->e->shape[1] == 1 ? 0 : h, r, j);
                        const double f = ea_ref_load(lf->f, lf->f->shape[0] == 1 ? 0 : b, lf->f->shape[1] == 1 ? 0 : h, r, j);
                        double *ko = kp + ((b * Hkv + h) * kr + r) * D, *vo = vp + ((b * Hkv + h) * kr + r) * Dv;
                        for (int64_t d = 0; d < D; d++)
                            ko[d] += e * ea_ref_load(k, b, h, j, d);
                        for (int64_t d = 0; d < Dv; d++)
                            vo[d] += f * ea_ref_load(v, b, h, j, d);
                    }
        Nkv = kr;
    }
#define KLOAD(b_, h_, j_, d_) (kp ? kp[(((b_) * Hkv + (h_)) * Nkv + (j_)) * D + (d_)] : ea_ref_load(k, b_, h_, j_, d_))
#define VLOAD(b_, h_, j_, d_) (vp ? vp[(((b_) * Hkv + (h_)) * Nkv + (j_)) * Dv + (d_)] : ea_ref_load(v, b_, h_, j_, d_))
    double *s = malloc(sizeof(double) * (size_t)Nkv); /* scores of one row */
    if (!s) {
        free(kp);
        free(vp);
        return EDGEATTN_ERR_OUT_OF_MEMORY;
    }
    for (int64_t b = 0; b < B; b++) {
        const int64_t kv_len = params->kv_lens && !lf ? params->kv_lens[b] : Nkv;
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t hk = h / group;
            for (int64_t i = 0; i < Nq; i++) {
                const int64_t qpos = i + kv_len - Nq; /* bottom-right alignment */
                double mx = -INFINITY;
                for (int64_t j = 0; j < Nkv; j++) {
                    s[j] = -INFINITY;
                    if (!visible(params, j, qpos, kv_len) || !mask_keeps(params->block_mask, Nq, b, hk, i, j))
                        continue;
                    double dot = 0.0;
                    for (int64_t d = 0; d < D; d++)
                        dot += ea_ref_load(q, b, h, i, d) * KLOAD(b, hk, j, d);
                    dot *= scale;
                    if (params->softcap > 0.0f)
                        dot = params->softcap * tanh(dot / params->softcap);
                    if (params->bias) {
                        const edgeattn_tensor *bt = params->bias;
                        dot += ea_ref_load(bt, bt->shape[0] == 1 ? 0 : b, bt->shape[1] == 1 ? 0 : h, i, j);
                    }
                    s[j] = dot;
                    if (dot > mx)
                        mx = dot;
                }
                double *o = out + ((b * Hq + h) * Nq + i) * Dv;
                for (int64_t d = 0; d < Dv; d++)
                    o[d] = 0.0;
                if (mx == -INFINITY) { /* fully masked row: zeros */
                    if (lse)
                        lse[(b * Hq + h) * Nq + i] = -INFINITY;
                    continue;
                }
                double sum = 0.0;
                for (int64_t j = 0; j < Nkv; j++) {
                    if (s[j] == -INFINITY)
                        continue;
                    const double e = exp(s[j] - mx);
                    sum += e;
                    for (int64_t d = 0; d < Dv; d++)
                        o[d] += e * VLOAD(b, hk, j, d);
                }
                for (int64_t d = 0; d < Dv; d++)
                    o[d] /= sum;
                if (lse)
                    lse[(b * Hq + h) * Nq + i] = mx + log(sum);
            }
        }
    }
#undef KLOAD
#undef VLOAD
    free(s);
    free(kp);
    free(vp);
    return EDGEATTN_OK;
}

void ea_ref_rope(const edgeattn_rope *rope, int64_t head_dim, int64_t pos, double *x)
{
    if (!rope || rope->style == EDGEATTN_ROPE_NONE)
        return;
    const int64_t dim = rope->dim > 0 ? rope->dim : head_dim, half = dim / 2;
    const double scale = rope->linear_scale > 0.0f ? (double)rope->linear_scale : 1.0;
    const double alpha = rope->ntk_alpha > 0.0f ? (double)rope->ntk_alpha : 1.0;
    const double base = (double)rope->theta * (alpha > 1.0 && dim > 2 ? pow(alpha, (double)dim / (double)(dim - 2)) : 1.0);
    for (int64_t p = 0; p < half; p++) {
        const double angle = ((double)pos / scale) * pow(base, -2.0 * (double)p / (double)dim);
        const int64_t i0 = rope->style == EDGEATTN_ROPE_HALF ? p : 2 * p;
        const int64_t i1 = rope->style == EDGEATTN_ROPE_HALF ? p + half : 2 * p + 1;
        const double a = x[i0], b = x[i1], c = cos(angle), s = sin(angle);
        x[i0] = a * c - b * s;
        x[i1] = a * s + b * c;
    }
}

edgeattn_status ea_ref_latent_attention(const edgeattn_tensor *q, const edgeattn_tensor *latent, int64_t dv,
                                        const edgeattn_params *params, double *out, double *lse)
{
    if (!q || !latent || !out)
        return EDGEATTN_ERR_NULL_ARG;
    if (dv < 1 || dv > latent->shape[3])
        return EDGEATTN_ERR_SHAPE_MISMATCH;
    edgeattn_tensor v = *latent; /* V: the first dv values of every latent vector */
    v.shape[3] = dv;
    return ea_ref_attention(q, latent, &v, params, out, lse);
}
