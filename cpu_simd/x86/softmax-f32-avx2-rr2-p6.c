/*
 * One online-softmax step on a tile of scores, AVX2 (contract in cpu_simd/ukernel.h), in three phases
 * so that no row waits on another's reductions: (1) the max of every row, (2) per row one pass that
 * writes p = exp(s - max) in place and sums it, with the rr2-p6 exp of avx2-common.h, (3) alpha, l
 * and m of all rows at once (one vector exp for the 8 alphas). -inf scores give exactly 0; a row
 * whose max is still -inf is zeroed and gets alpha = 1 with m and l unchanged.
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
    float mxs[EA_MR], sums[EA_MR];
    for (int r = 0; r < mr; r++) {
        const float *sr = s + r * lds;
        __m256 m0 = _mm256_set1_ps(m[r]), m1 = m0, m2 = m0, m3 = m0;
        int j = 0;
        for (; j + 32 <= nb; j += 32) {
            m0 = _mm256_max_ps(m0, _mm256_load_ps(sr + j));
            m1 = _mm256_max_ps(m1, _mm256_load_ps(sr + j + 8));
            m2 = _mm256_max_ps(m2, _mm256_load_ps(sr + j + 16));
            m3 = _mm256_max_ps(m3, _mm256_load_ps(sr + j + 24));
        }
        for (; j < nb; j += 8)
            m0 = _mm256_max_ps(m0, _mm256_load_ps(sr + j));
        mxs[r] = hmax(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
    }
    for (int r = 0; r < mr; r++) {
        float *sr = s + r * lds;
        if (mxs[r] == -INFINITY) {
            for (int j = 0; j < nb; j += 8)
                _mm256_store_ps(sr + j, _mm256_setzero_ps());
            sums[r] = 0.0f;
            continue;
        }
        const __m256 vmx = _mm256_set1_ps(mxs[r]);
        __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
        for (int j = 0; j < nb; j += 16) { /* nb is a multiple of 16 */
            const __m256 e0 = ea256_exp(_mm256_sub_ps(_mm256_load_ps(sr + j), vmx));
            const __m256 e1 = ea256_exp(_mm256_sub_ps(_mm256_load_ps(sr + j + 8), vmx));
            _mm256_store_ps(sr + j, e0);
            _mm256_store_ps(sr + j + 8, e1);
            sum0 = _mm256_add_ps(sum0, e0);
            sum1 = _mm256_add_ps(sum1, e1);
        }
        sums[r] = hsum(_mm256_add_ps(sum0, sum1));
    }
    /* rows < mr only (masked loads and stores) */
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(mr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 mold = _mm256_maskload_ps(m, live), mnew = _mm256_maskload_ps(mxs, live);
    const __m256 masked = _mm256_cmp_ps(mnew, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
    /* exp(m_old - m_new): 0 where m_old is -inf; rows still fully masked get 1 */
    const __m256 a = _mm256_blendv_ps(ea256_exp(_mm256_sub_ps(mold, mnew)), _mm256_set1_ps(1.0f), masked);
    const __m256 lnew = _mm256_fmadd_ps(_mm256_maskload_ps(l, live), a, _mm256_maskload_ps(sums, live));
    _mm256_maskstore_ps(alpha, live, a);
    _mm256_maskstore_ps(l, live, lnew);
    _mm256_maskstore_ps(m, live, mnew);
}
