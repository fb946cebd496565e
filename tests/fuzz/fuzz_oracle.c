/*
 * What the outputs of a successful attention or decode must hold (fuzz_check.h: fz_check_outputs).
 * Compiled without the fuzzer's comparison hooks: these loops say nothing about the library's
 * coverage and would otherwise dominate the run time.
 *
 * Inputs are "tame" when finite with |x| <= 4 (bias: also -Inf or <= -1e20, the usual masking
 * values) and no score can exceed 64: then the result must match the double reference within a
 * tolerance of the output dtype, relative to max |v|. With merely finite inputs and no score near the
 * FP32 range, outputs must be finite and lse finite or -Inf.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "core/reference.h"
#include "fuzz_check.h"

typedef struct stats {
    bool finite;     /* no NaN, no Inf (bias: -Inf allowed) */
    double max_abs;  /* of the finite values */
    bool tame;       /* finite and |x| <= 4 (bias: also -Inf or <= -1e20) */
} stats;

static stats tensor_stats(const edgeattn_tensor *t, bool is_bias)
{
    stats s = {true, 0.0, true};
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t h = 0; h < t->shape[1]; h++)
            for (int64_t n = 0; n < t->shape[2]; n++)
                for (int64_t d = 0; d < t->shape[3]; d++) {
                    const float x = fz_load(t, b, h, n, d);
                    if (is_bias && x == -INFINITY)
                        continue;
                    if (!isfinite(x)) {
                        s.finite = s.tame = false;
                        continue;
                    }
                    const double a = fabs((double)x);
                    if (a > s.max_abs)
                        s.max_abs = a;
                    if (a > 4.0 && !(is_bias && x <= -1e20f))
                        s.tame = false;
                }
    return s;
}

bool fz_check_outputs(const char *what, const edgeattn_tensor *q, const edgeattn_tensor *k, const edgeattn_tensor *v,
                      const edgeattn_params *p, const edgeattn_tensor *out, const edgeattn_tensor *lse,
                      edgeattn_dtype cache, bool strict)
{
    const stats sq = tensor_stats(q, false), sk = tensor_stats(k, false), sv = tensor_stats(v, false);
    stats sb = {true, 0.0, true};
    if (p->bias)
        sb = tensor_stats(p->bias, true);
    const int64_t B = q->shape[0], Hq = q->shape[1], Nq = q->shape[2], D = q->shape[3];
    const double scale = p->scale > 0.0f ? (double)p->scale : 1.0 / sqrt((double)D);
    const double raw = scale * (double)D * sq.max_abs * sk.max_abs; /* |scale q.k| before softcap */
    double sbound = raw;
    if (p->softcap > 0.0f && (double)p->softcap < sbound)
        sbound = (double)p->softcap;
    /* The kernels scale q, then take q.k in FP32: a product beyond FP32 becomes Inf or NaN before
     * softcap could bound it. The reference (double) still gives a finite answer; such calls are
     * checked only with FUZZ_API_STRICT=1 (a limit of FP32 scores, see README.md). */
    if (!strict && raw >= 1e30)
        return false;
    /* A subnormal softcap: the kernels multiply by 1 / softcap, which is +Inf, and a zero score
     * becomes NaN (0 * Inf). Also checked only with FUZZ_API_STRICT=1 (README.md, open findings). */
    if (!strict && p->softcap > 0.0f && p->softcap < FLT_MIN)
        return false;
    const double vlimit = out->dtype == EDGEATTN_F16 ? 6.0e4 : 1e37;
    const bool finite_in = sq.finite && sk.finite && sv.finite && sb.finite;
    if (!finite_in || sbound + sb.max_abs >= 1e30 || sv.max_abs >= vlimit)
        return false;
    /* finite inputs, no score can overflow: finite outputs */
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < Nq; i++) {
                for (int64_t d = 0; d < D; d++) {
                    const float o = fz_load(out, b, h, i, d);
                    FZ_CHECK(isfinite(o), "%s: out[%lld,%lld,%lld,%lld] = %g from finite inputs (score bound %g)", what,
                             (long long)b, (long long)h, (long long)i, (long long)d, (double)o, sbound);
                }
                if (lse) {
                    const float l = fz_load(lse, b, h, i, 0);
                    FZ_CHECK(isfinite(l) || l == -INFINITY, "%s: lse[%lld,%lld,%lld] = %g from finite inputs", what,
                             (long long)b, (long long)h, (long long)i, (double)l);
                }
            }
    if (!(sq.tame && sk.tame && sv.tame && sb.tame && sbound <= 64.0))
        return false;
    /* small inputs: the double reference */
    const size_t rows = (size_t)(B * Hq * Nq);
    double *ro = malloc(sizeof(double) * rows * (size_t)D), *rl = malloc(sizeof(double) * rows);
    FZ_CHECK(ro && rl, "harness: no memory for the reference");
    FZ_CHECK(ea_ref_attention(q, k, v, p, ro, rl) == EDGEATTN_OK, "harness: reference failed");
    /* a quantised cache (docs/QUANTISED-KV.md): k and v are the rows the cache holds (read back,
     * dequantised), so only the smoothing folded around the kernels (q scaled by the channel scales, the
     * offsets' scores left out and added back to lse, the output rescaled and shifted) separates the
     * kernels from the reference: a little wider than plain FP32 */
    double rel = out->dtype == EDGEATTN_BF16 ? 1.6e-2 : 2e-3, lse_frac = 0.0;
    if (cache == EDGEATTN_Q8 || cache == EDGEATTN_Q4)
        rel = out->dtype == EDGEATTN_BF16 ? 1.6e-2 : 5e-3, lse_frac = 1e-3;
    const double tol = rel * (sv.max_abs > 1e-3 ? sv.max_abs : 1e-3);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < Nq; i++) {
                const size_t row = (size_t)((b * Hq + h) * Nq + i);
                for (int64_t d = 0; d < D; d++) {
                    const double o = (double)fz_load(out, b, h, i, d), r = ro[row * (size_t)D + (size_t)d];
                    FZ_CHECK(fabs(o - r) <= tol, "%s: out[%lld,%lld,%lld,%lld] = %.7g, reference %.7g (tolerance %.2g)",
                             what, (long long)b, (long long)h, (long long)i, (long long)d, o, r, tol);
                }
                if (lse) {
                    const double l = (double)fz_load(lse, b, h, i, 0), r = rl[row];
                    if (r == -INFINITY)
                        FZ_CHECK(l == -INFINITY, "%s: lse[%lld,%lld,%lld] = %.7g, reference -inf (masked row)", what,
                                 (long long)b, (long long)h, (long long)i, l);
                    else
                        FZ_CHECK(fabs(l - r) <= 2e-4 * (1.0 + fabs(r)) + lse_frac * (1.0 + sbound),
                                 "%s: lse[%lld,%lld,%lld] = %.7g, reference %.7g",
                                 what, (long long)b, (long long)h, (long long)i, l, r);
                }
            }
    free(ro);
    free(rl);
    return true;
}

