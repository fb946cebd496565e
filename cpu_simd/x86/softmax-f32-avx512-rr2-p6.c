/*
 * One online-softmax step on a tile of scores, AVX-512 (contract in cpu_simd/ukernel.h). Per row: a
 * max pass (two vector accumulators), then one pass that writes p = exp(s - max) in place and sums it
 * (two accumulators), with the rr2-p6 exp of avx512-common.h: 14 vector operations per 16 scores.
 * -inf scores give exactly 0; a row whose max is still -inf is zeroed with alpha = 1 and keeps m, l.
 */
#include "cpu_simd/x86/avx512-common.h"
#include "cpu_simd/x86/kernels-x86.h"

static float exp1(float x)
{
    return _mm512_cvtss_f32(ea512_exp(_mm512_set1_ps(x)));
}

EA_SOFTMAX_FN(ea_softmax_f32_avx512_rr2_p6)
{
    for (int r = 0; r < mr; r++) {
        float *sr = s + r * lds;
        __m512 mx0 = _mm512_set1_ps(m[r]), mx1 = mx0;
        int j = 0;
        for (; j + 32 <= nb; j += 32) {
            mx0 = _mm512_max_ps(mx0, _mm512_load_ps(sr + j));
            mx1 = _mm512_max_ps(mx1, _mm512_load_ps(sr + j + 16));
        }
        if (j < nb)
            mx0 = _mm512_max_ps(mx0, _mm512_load_ps(sr + j));
        const float mx = _mm512_reduce_max_ps(_mm512_max_ps(mx0, mx1));
        if (mx == -INFINITY) {
            for (j = 0; j < nb; j += 16)
                _mm512_store_ps(sr + j, _mm512_setzero_ps());
            alpha[r] = 1.0f;
            continue;
        }
        const __m512 vmx = _mm512_set1_ps(mx);
        __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
        for (j = 0; j + 32 <= nb; j += 32) {
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
        const float a = m[r] == -INFINITY ? 0.0f : exp1(m[r] - mx);
        alpha[r] = a;
        l[r] = l[r] * a + _mm512_reduce_add_ps(_mm512_add_ps(sum0, sum1));
        m[r] = mx;
    }
}
