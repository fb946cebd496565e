// Utility kernels: KV-cache append with dtype conversion, NaN/Inf scan, tensor-core throughput probe.
#include "mma.cuh"

// grid (ceil(N / 4), H, B), block 128: a warp per source row, lanes over D (over the pairs of the rotated
// columns of a key with RoPE). A paged cache: one page-table read per row.
extern "C" __global__ void __launch_bounds__(128) ea_kv_write(const ea_cu_kv_write_args a) {
    const int b = blockIdx.z, h = blockIdx.y;
    const int r = blockIdx.x * 4 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    const ea_cu_kv_row row = ((const ea_cu_kv_row *)a.rows)[b];
    if (r >= row.n) return;
    const int jr = r + (r >= row.at ? row.jump : 0); // past the rows the cache drops (kernel_abi.h)
    const int sr = a.staged ? r : jr;
    if (sr >= a.N) return;
    const long long pos = row.pos0 + jr;
    const int slot = pos < a.sinks ? (int)pos : a.sinks + (int)((pos - a.sinks) % (a.ring_cap - a.sinks));
    int64_t dbase0; // element of the slot's row in K and V
    if (a.pages.table)
        dbase0 = ea_page_base(a.pages, b, slot) + (((int64_t)h << a.pages.page_shift) + ea_page_row(a.pages, slot)) * a.D;
    else
        dbase0 = (((int64_t)row.seq * a.cache_heads + h) * a.ring_cap + slot) * a.D;
#pragma unroll
    for (int kv = 0; kv < 2; ++kv) {
        const ea_cu_tensor &src = kv ? a.v_src : a.k_src;
        const uint64_t dst = kv ? a.v_dst : a.k_dst;
        if (!src.ptr || !dst) continue;
        const int64_t sbase = b * src.sb + h * src.sh + (int64_t)sr * src.sn;
        const int64_t dbase = dbase0;
        int d_lo = 0; // columns below d_lo are written already (rotated)
        if (kv == 0 && a.rope.inv_freq) {
            const int half = a.rope.dim >> 1;
            for (int p = lane; p < half; p += 32) {
                float c, s;
                ea_rope_cs(a.rope, pos, p, c, s);
                int d0, d1;
                ea_rope_pair(a.rope, p, d0, d1);
                const float x0 = ea_load((const void *)src.ptr, sbase + d0, src.dtype);
                const float x1 = ea_load((const void *)src.ptr, sbase + d1, src.dtype);
                ea_store((void *)dst, dbase + d0, a.cache_dtype, x0 * c - x1 * s);
                ea_store((void *)dst, dbase + d1, a.cache_dtype, x0 * s + x1 * c);
            }
            d_lo = a.rope.dim;
        } else if (src.dtype == a.cache_dtype && src.dtype != EA_CU_F32) {
            // same 16-bit type: 4-byte copies (D is even)
            const uint32_t *s32 = (const uint32_t *)((const uint16_t *)src.ptr + sbase);
            uint32_t *d32 = (uint32_t *)((uint16_t *)dst + dbase);
            if ((((uintptr_t)s32) & 3) == 0 && (a.D & 1) == 0) {
                for (int d = lane; d < a.D / 2; d += 32) d32[d] = s32[d];
                continue;
            }
        }
        for (int d = d_lo + lane; d < a.D; d += 32)
            ea_store((void *)dst, dbase + d, a.cache_dtype, ea_load((const void *)src.ptr, sbase + d, src.dtype));
    }
}

// Grid-stride over rows (B*H*N) x D; sets *flag = 1 on a NaN, +Inf, or -Inf unless neg_inf_ok.
extern "C" __global__ void __launch_bounds__(256) ea_finite(const ea_cu_finite_args a) {
    const int64_t total = a.B * a.H * a.N * a.D;
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    bool bad = false;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total && !bad; e += step) {
        const int64_t d = e % a.D, row = e / a.D;
        const int64_t n = row % a.N, h = (row / a.N) % a.H, b = row / (a.N * a.H);
        const int64_t idx = b * a.t.sb + h * a.t.sh + n * a.t.sn + d;
        bool nan, pinf, ninf;
        if (a.t.dtype == EA_CU_F32) {
            const uint32_t u = __float_as_uint(((const float *)a.t.ptr)[idx]);
            nan = (u & 0x7fffffffu) > 0x7f800000u;
            pinf = u == 0x7f800000u;
            ninf = u == 0xff800000u;
        } else if (a.t.dtype == EA_CU_F16) {
            const uint16_t u = ((const uint16_t *)a.t.ptr)[idx];
            nan = (u & 0x7fffu) > 0x7c00u;
            pinf = u == 0x7c00u;
            ninf = u == 0xfc00u;
        } else {
            const uint16_t u = ((const uint16_t *)a.t.ptr)[idx];
            nan = (u & 0x7fffu) > 0x7f80u;
            pinf = u == 0x7f80u;
            ninf = u == 0xff80u;
        }
        bad = nan || pinf || (ninf && !a.neg_inf_ok);
    }
    if (__syncthreads_or(bad) && threadIdx.x == 0) *(volatile uint32_t *)a.flag = 1u;
}

// Each warp runs iters rounds of 8 independent m16n8k16 FP16 MMAs (FP32 accumulate) on register data:
// flops per launch = grid * (block / 32) * iters * 8 * 4096.
extern "C" __global__ void __launch_bounds__(256) ea_peak_mma(const ea_cu_peak_args a) {
#if EA_SM80
    uint32_t fa[4], fb[2];
    const uint32_t seed = threadIdx.x * 0x9e3779b9u;
#pragma unroll
    for (int k = 0; k < 4; ++k) fa[k] = ea_f16_t::pack((float)((seed >> k) & 7) * 0.01f, 0.02f);
    fb[0] = ea_f16_t::pack(0.01f, (float)(seed & 3) * 0.01f);
    fb[1] = ea_f16_t::pack(0.03f, 0.01f);
    float c[8][4];
#pragma unroll
    for (int k = 0; k < 8; ++k) c[k][0] = c[k][1] = c[k][2] = c[k][3] = 0.f;
    for (int it = 0; it < a.iters; ++it) {
#pragma unroll
        for (int k = 0; k < 8; ++k) ea_mma_16816<ea_f16_t>(c[k], fa, fb[0], fb[1]);
    }
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < 8; ++k) s += c[k][0] + c[k][1] + c[k][2] + c[k][3];
    if ((threadIdx.x & 31) == 0) ((float *)a.sink)[blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)] = s;
#endif
}
