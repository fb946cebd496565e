/*
 * One online-softmax step on a tile of scores, AVX-512 (contract in cpu_simd/ukernel.h), in three
 * phases so that no row waits on another's reductions: (1) the max of every row (four vector
 * accumulators per row), (2) per row one pass that writes p = exp(s - max) in place and sums it, with
 * the rr2-p6 exp of avx512-common.h (14 vector operations per 16 scores), (3) alpha, l and m of all
 * rows at once, one vector exp for the 8 alphas. -inf scores give exactly 0; a row whose max is still
 * -inf is zeroed and gets alpha = 1 with m and l unchanged (its m was -inf, its sum is 0).
 */
#include "cpu_simd/x86/avx512-common.h"
#include "cpu_simd/x86/kernels-x86.h"

EA_SOFTMAX_FN(ea_softmax_f32_avx512_rr2_p6)
{
    float mxs[16], sums[16];
    for (int r = 0; r < mr; r++) {
        const float *sr = s + r * lds;
        __m512 m0 = _mm512_set1_ps(m[r]), m1 = m0, m2 = m0, m3 = m0;
        int j = 0;
        for (; j + 64 <= nb; j += 64) {
            m0 = _mm512_max_ps(m0, _mm512_load_ps(sr + j));
            m1 = _mm512_max_ps(m1, _mm512_load_ps(sr + j + 16));
            m2 = _mm512_max_ps(m2, _mm512_load_ps(sr + j + 32));
            m3 = _mm512_max_ps(m3, _mm512_load_ps(sr + j + 48));
        }
        for (; j < nb; j += 16)
            m0 = _mm512_max_ps(m0, _mm512_load_ps(sr + j));
        mxs[r] = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
    }
    for (int r = 0; r < mr; r++) {
        float *sr = s + r * lds;
        if (mxs[r] == -INFINITY) {
            for (int j = 0; j < nb; j += 16)
                _mm512_store_ps(sr + j, _mm512_setzero_ps());
            sums[r] = 0.0f;
            continue;
        }
        const __m512 vmx = _mm512_set1_ps(mxs[r]);
        __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
        int j = 0;
        for (; j + 32 <= nb; j += 32) {
            const __m512 e0 = ea512_exp(_mm512_sub_ps(_mm512_load_ps(sr + j), vmx));
            const __m512 e1 = ea512_exp(_mm512_sub_ps(_mm512_load_ps(sr + j + 16), vmx));
            _mm512_store_ps(sr + j, e0);
            _mm512_store_ps(sr + j + 16, e1);
            sum0 = _mm512_add_ps(sum0, e0);
            sum1 = _mm512_add_ps(sum1, e1);
        }
        if (j < nb) {
            const __m512 e0 = ea512_exp(_mm512_sub_ps(_mm512_load_ps(sr + j), vmx));
            _mm512_store_ps(sr + j, e0);
            sum0 = _mm512_add_ps(sum0, e0);
        }
        sums[r] = _mm512_reduce_add_ps(_mm512_add_ps(sum0, sum1));
    }
    /* rows < mr only (masked loads and stores) */
    const __mmask16 live = (__mmask16)((1u << mr) - 1u);
    const __m512 mold = _mm512_maskz_loadu_ps(live, m), mnew = _mm512_maskz_loadu_ps(live, mxs);
    const __mmask16 masked = _mm512_cmp_ps_mask(mnew, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    /* exp(m_old - m_new): 0 where m_old is -inf; rows still fully masked get 1 */
    const __m512 a = _mm512_mask_blend_ps(masked, ea512_exp(_mm512_sub_ps(mold, mnew)), _mm512_set1_ps(1.0f));
    const __m512 lnew = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(live, l), a, _mm512_maskz_loadu_ps(live, sums));
    _mm512_mask_storeu_ps(alpha, live, a);
    _mm512_mask_storeu_ps(l, live, lnew);
    _mm512_mask_storeu_ps(m, live, mnew);
}
