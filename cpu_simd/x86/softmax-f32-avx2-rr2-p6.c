/*
 * One online-softmax step on a tile of scores, AVX2 (contract in cpu_simd/ukernel.h): per row a max
 * pass, then one pass writing p = exp(s - max) in place and summing it, with the rr2-p6 exp of
 * avx2-common.h. -inf scores give exactly 0; a row whose max is still -inf is zeroed with alpha = 1.
 */
#include "cpu_simd/x86/avx2-common.h"
#include "cpu_simd/x86/kernels-x86.h"

static float hmax(__m256 v)
{
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

static float hsum(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

EA_SOFTMAX_FN(ea_softmax_f32_avx2_rr2_p6)
{
    for (int r = 0; r < mr; r++) {
        float *sr = s + r * lds;
        __m256 mx0 = _mm256_set1_ps(m[r]), mx1 = mx0;
        for (int j = 0; j < nb; j += 16) { /* nb is a multiple of 16 */
            mx0 = _mm256_max_ps(mx0, _mm256_load_ps(sr + j));
            mx1 = _mm256_max_ps(mx1, _mm256_load_ps(sr + j + 8));
        }
        const float mx = hmax(_mm256_max_ps(mx0, mx1));
        if (mx == -INFINITY) {
            for (int j = 0; j < nb; j += 8)
                _mm256_store_ps(sr + j, _mm256_setzero_ps());
            alpha[r] = 1.0f;
            continue;
        }
        const __m256 vmx = _mm256_set1_ps(mx);
        __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
        for (int j = 0; j < nb; j += 16) {
            const __m256 e0 = ea256_exp(_mm256_sub_ps(_mm256_load_ps(sr + j), vmx));
            const __m256 e1 = ea256_exp(_mm256_sub_ps(_mm256_load_ps(sr + j + 8), vmx));
            _mm256_store_ps(sr + j, e0);
            _mm256_store_ps(sr + j + 8, e1);
            sum0 = _mm256_add_ps(sum0, e0);
            sum1 = _mm256_add_ps(sum1, e1);
        }
        const float a = m[r] == -INFINITY ? 0.0f : _mm256_cvtss_f32(ea256_exp(_mm256_set1_ps(m[r] - mx)));
        alpha[r] = a;
        l[r] = l[r] * a + hsum(_mm256_add_ps(sum0, sum1));
        m[r] = mx;
    }
}
