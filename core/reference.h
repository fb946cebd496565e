/*
 * Plain reference kernels, accumulating in double. They define what every backend must compute and
 * are what the parity tests and edgebench compare against. Slow on purpose: clarity over speed.
 */
#ifndef EDGEATTN_CORE_REFERENCE_H
#define EDGEATTN_CORE_REFERENCE_H

#include "edgeattn/edgeattn.h"

/* Same semantics as edgeattn_attention (scale, softcap, bias, causal bottom-right, windows,
 * kv_lens, block mask, Linformer projections, GQA), for inputs of any dtype and strides. Arguments must already be valid (no checks
 * beyond NULLs). V's head dim Dv = v->shape[3] may differ from D (Q, K). out: dense double [B][Hq][Nq][Dv]; lse: dense double [B][Hq][Nq] or NULL
 * (-INFINITY for a fully masked row, whose out row is all zeros).
 * Query i of sequence b sits at position i + kv_len_b - Nq; key j at position j.
 * @return EDGEATTN_OK or EDGEATTN_ERR_NULL_ARG. */
edgeattn_status ea_ref_attention(const edgeattn_tensor *q, const edgeattn_tensor *k, const edgeattn_tensor *v,
                                 const edgeattn_params *params, double *out, double *lse);

/* Latent attention (MLA, absorbed form) over a latent cache's vectors latent [B, Hkv, N, D]: K is each
 * vector, V its first dv values (1 <= dv <= D): ea_ref_attention with v a view of latent. out: dense
 * double [B][Hq][Nq][dv]. @return as ea_ref_attention, or EDGEATTN_ERR_SHAPE_MISMATCH for dv. */
edgeattn_status ea_ref_latent_attention(const edgeattn_tensor *q, const edgeattn_tensor *latent, int64_t dv,
                                        const edgeattn_params *params, double *out, double *lse);

/* Rotates one head's values x[0..head_dim) in place by RoPE at position pos, in double (the
 * definition of edgeattn_config.rope; style NONE or a NULL rope does nothing). */
void ea_ref_rope(const edgeattn_rope *rope, int64_t head_dim, int64_t pos, double *x);

/* Reads element [b,h,n,d] of a tensor as double (F32, F16 or BF16). */
double ea_ref_load(const edgeattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d);

#endif
