// Linformer projections (kernel_abi.h ea_cu_proj_args): K' = E K and V' = F V per (batch row, KV head),
// E, F [k, N] along the sequence, into workspace that the attention kernels then read as K and V.
//
// ea_proj_mma_f16: tensor cores (sm_80+), F16 K/V (BF16 K/V take ea_proj_simt: a BF16 K' would pass the
// BF16 error bound). CTA = 4 warps, a 64 x 64 tile
// of the output (rows of E, columns of D); keys in steps of 64: the E tile (any dtype, converted) and the
// K/V tile go to shared memory, each warp multiplies its 16 rows by the 64 columns (ldmatrix, mma.m16n8k16,
// FP32 accumulators), the result is rounded once to the 16-bit type. ea_proj_simt: any dtypes, F32 out.
#include "mma.cuh"
#include "tile_config.cuh"

#define EA_PJ_LD 72 // 64 + 8 halves: ldmatrix rows land in distinct bank groups

__device__ __forceinline__ const ea_cu_tensor &ea_pj_src(const ea_cu_proj_args &a, int which, bool proj) {
    return proj ? (which ? a.f : a.e) : (which ? a.v : a.k);
}

template <typename T>
__device__ __forceinline__ void ea_proj_mma_body(const ea_cu_proj_args &a) {
#if EA_SM80
    __shared__ __align__(16) uint16_t sE[64 * EA_PJ_LD];
    __shared__ __align__(16) uint16_t sX[64 * EA_PJ_LD];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int z = blockIdx.z, which = z & 1, bh = z >> 1, b = bh / a.Hkv, h = bh % a.Hkv;
    const int r0 = blockIdx.x * 64, c0 = blockIdx.y * 64;
    const ea_cu_tensor &P = ea_pj_src(a, which, true), &X = ea_pj_src(a, which, false);
    const ea_cu_tensor &O = which ? a.vo : a.ko;
    const int64_t pbase = (int64_t)b * P.sb + (int64_t)h * P.sh, xbase = (int64_t)b * X.sb + (int64_t)h * X.sh;
    const uint16_t *xp = (const uint16_t *)X.ptr;
    const bool xvec = (((uint64_t)X.ptr | (uint64_t)(X.sn * 2) | (uint64_t)(xbase * 2)) & 15) == 0 && c0 + 64 <= a.D;
    float acc[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
    const int a_off = (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * EA_PJ_LD + (lane >> 4) * 8;
    const int b_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * EA_PJ_LD + (lane >> 4) * 8;
    for (int j0 = 0; j0 < a.N; j0 += 64) {
        __syncthreads();
        for (int c = tid; c < 64 * 64; c += 128) { // E rows r0.., keys j0.. (zero outside)
            const int rr = c >> 6, jj = c & 63;
            float x = 0.f;
            if (r0 + rr < a.rows && j0 + jj < a.N)
                x = ea_load((const void *)P.ptr, pbase + (int64_t)(r0 + rr) * P.sn + j0 + jj, P.dtype);
            sE[rr * EA_PJ_LD + jj] = T::from_f(x);
        }
        if (xvec) { // K/V rows j0.., columns c0..c0+63: 16-byte pieces
            for (int c = tid; c < 64 * 8; c += 128) {
                const int rr = c >> 3, cc = (c & 7) * 8;
                const bool ok = j0 + rr < a.N;
                ea_cp_async16(ea_smem_addr(sX + rr * EA_PJ_LD + cc),
                              xp + xbase + (int64_t)(ok ? j0 + rr : 0) * X.sn + c0 + cc, ok ? 16 : 0);
            }
            ea_cp_commit();
            ea_cp_wait<0>();
        } else {
            for (int c = tid; c < 64 * 64; c += 128) {
                const int rr = c >> 6, cc = c & 63;
                uint16_t x = 0;
                if (j0 + rr < a.N && c0 + cc < a.D) x = xp[xbase + (int64_t)(j0 + rr) * X.sn + c0 + cc];
                sX[rr * EA_PJ_LD + cc] = x;
            }
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            uint32_t af[4];
            ea_ldsm_x4(af, ea_smem_addr(sE + a_off + kk * 16));
#pragma unroll
            for (int np = 0; np < 4; ++np) {
                uint32_t bf[4];
                ea_ldsm_x4_t(bf, ea_smem_addr(sX + b_off + kk * 16 * EA_PJ_LD + np * 16));
                ea_mma_16816<T>(acc[2 * np], af, bf[0], bf[1]);
                ea_mma_16816<T>(acc[2 * np + 1], af, bf[2], bf[3]);
            }
        }
    }
    const int64_t obase = (int64_t)b * O.sb + (int64_t)h * O.sh;
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
        const int r = r0 + warp * 16 + g + 8 * hh;
        if (r >= a.rows) continue;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
            const int c = c0 + n * 8 + 2 * t4; // D is a multiple of 8: both columns or neither
            if (c < a.D) ea_store2((void *)O.ptr, obase + (int64_t)r * O.sn + c, O.dtype, acc[n][2 * hh], acc[n][2 * hh + 1]);
        }
    }
#endif
}

extern "C" __global__ void __launch_bounds__(128) ea_proj_mma_f16(const ea_cu_proj_args a) { ea_proj_mma_body<ea_f16_t>(a); }

// ea_proj_pipe_f16_n64 / _n128: the same product, pipelined, for F16 E/F and K/V whose rows start on
// 16-byte boundaries and N a multiple of 8 (the host checks; launch.c EA_PJP_*). CTA = 4 x NC/64 warps,
// a 128 x NC tile of the output, each warp 32 rows x 64 columns (two m16 tiles by eight n8 tiles, FP32
// accumulators); keys in steps of 32 through EA_PJP_ST stages of cp.async (E tile 128 x 32, K/V tile
// 32 x NC), so the loads of later steps are in flight while the tensor cores work on this one. 128-row
// tiles read K/V once per 128 rows of E (Linformer's k is usually 128..256): the K/V bytes, not the
// E tile, are what the product streams from memory.
#define EA_PJP_LDE (EA_PJP_KS + 8) // E rows in shared memory: 80 bytes, ldmatrix rows in distinct banks

template <int NC>
__device__ __forceinline__ void ea_proj_pipe_body(const ea_cu_proj_args &a) {
#if EA_SM80
    constexpr int NT = 128 * (NC / 64), LDX = NC + 8, ST = EA_PJP_ST;
    constexpr int SE = 128 * EA_PJP_LDE, SX = EA_PJP_KS * LDX; // halves per stage
    extern __shared__ __align__(16) uint16_t ea_smem_pj[];
    uint16_t *sE = ea_smem_pj, *sX = ea_smem_pj + ST * SE;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int wm = warp & 3, wn = warp >> 2; // rows wm*32.., columns wn*64..
    const int z = blockIdx.z, which = z & 1, bh = z >> 1, b = bh / a.Hkv, h = bh % a.Hkv;
    const int r0 = blockIdx.x * 128, c0 = blockIdx.y * NC;
    const ea_cu_tensor &P = ea_pj_src(a, which, true), &X = ea_pj_src(a, which, false);
    const ea_cu_tensor &O = which ? a.vo : a.ko;
    const uint16_t *pp = (const uint16_t *)P.ptr + (int64_t)b * P.sb + (int64_t)h * P.sh;
    const uint16_t *xp = (const uint16_t *)X.ptr + (int64_t)b * X.sb + (int64_t)h * X.sh;
    const int nsteps = (a.N + EA_PJP_KS - 1) / EA_PJP_KS;
    // one step's tiles into stage st: E rows r0.. x keys j0.. (16-byte pieces of 8 keys), K/V keys j0.. x
    // columns c0.. (pieces of 8 columns); rows, keys and columns past the end are zero-filled
    auto load = [&](int st, int step) {
        const int j0 = step * EA_PJP_KS;
#pragma unroll
        for (int c = tid; c < 128 * (EA_PJP_KS / 8); c += NT) {
            const int rr = c / (EA_PJP_KS / 8), kk = (c % (EA_PJP_KS / 8)) * 8;
            const bool ok = r0 + rr < a.rows && j0 + kk < a.N;
            ea_cp_async16(ea_smem_addr(sE + st * SE + rr * EA_PJP_LDE + kk),
                          ok ? (const void *)(pp + (int64_t)(r0 + rr) * P.sn + j0 + kk) : (const void *)pp, ok ? 16 : 0);
        }
#pragma unroll
        for (int c = tid; c < EA_PJP_KS * (NC / 8); c += NT) {
            const int rr = c / (NC / 8), cc = (c % (NC / 8)) * 8;
            const bool ok = j0 + rr < a.N && c0 + cc < a.D;
            ea_cp_async16(ea_smem_addr(sX + st * SX + rr * LDX + cc),
                          ok ? (const void *)(xp + (int64_t)(j0 + rr) * X.sn + c0 + cc) : (const void *)xp, ok ? 16 : 0);
        }
    };
    float acc[2][8][4];
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int n = 0; n < 8; ++n) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.f;
#pragma unroll
    for (int s = 0; s < ST - 1; ++s) {
        if (s < nsteps) load(s, s);
        ea_cp_commit(); // (an empty group keeps the count)
    }
    const int a_off = (wm * 32 + (lane & 7) + ((lane >> 3) & 1) * 8) * EA_PJP_LDE + (lane >> 4) * 8;
    const int b_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * LDX + wn * 64 + (lane >> 4) * 8;
    for (int step = 0; step < nsteps; ++step) {
        ea_cp_wait<ST - 2>(); // this step's group has landed (for this thread) ...
        __syncthreads();      // ... and for every thread; the stage read last step is free again
        if (step + ST - 1 < nsteps) load((step + ST - 1) % ST, step + ST - 1);
        ea_cp_commit();
        const uint16_t *e = sE + (step % ST) * SE, *x = sX + (step % ST) * SX;
#pragma unroll
        for (int kk = 0; kk < EA_PJP_KS / 16; ++kk) {
            uint32_t af[2][4];
            ea_ldsm_x4(af[0], ea_smem_addr(e + a_off + kk * 16));
            ea_ldsm_x4(af[1], ea_smem_addr(e + a_off + 16 * EA_PJP_LDE + kk * 16));
#pragma unroll
            for (int np = 0; np < 4; ++np) {
                uint32_t bf[4];
                ea_ldsm_x4_t(bf, ea_smem_addr(x + b_off + kk * 16 * LDX + np * 16));
#pragma unroll
                for (int m = 0; m < 2; ++m) {
                    ea_mma_16816<ea_f16_t>(acc[m][2 * np], af[m], bf[0], bf[1]);
                    ea_mma_16816<ea_f16_t>(acc[m][2 * np + 1], af[m], bf[2], bf[3]);
                }
            }
        }
    }
    ea_cp_wait<0>();
    const int64_t obase = (int64_t)b * O.sb + (int64_t)h * O.sh;
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            const int r = r0 + wm * 32 + m * 16 + g + 8 * hh;
            if (r >= a.rows) continue;
#pragma unroll
            for (int n = 0; n < 8; ++n) {
                const int c = c0 + wn * 64 + n * 8 + 2 * t4; // D is a multiple of 8: both columns or neither
                if (c < a.D)
                    ea_store2((void *)O.ptr, obase + (int64_t)r * O.sn + c, O.dtype, acc[m][n][2 * hh], acc[m][n][2 * hh + 1]);
            }
        }
#endif
}

extern "C" __global__ void __launch_bounds__(128) ea_proj_pipe_f16_n64(const ea_cu_proj_args a) { ea_proj_pipe_body<64>(a); }
extern "C" __global__ void __launch_bounds__(256) ea_proj_pipe_f16_n128(const ea_cu_proj_args a) { ea_proj_pipe_body<128>(a); }

// grid (ceil(rows * D / 128), 1, B*Hkv*2), block 128: one output element a thread, FP32 accumulation.
extern "C" __global__ void __launch_bounds__(128) ea_proj_simt(const ea_cu_proj_args a) {
    const int z = blockIdx.z, which = z & 1, bh = z >> 1, b = bh / a.Hkv, h = bh % a.Hkv;
    const int64_t e = (int64_t)blockIdx.x * 128 + threadIdx.x;
    if (e >= (int64_t)a.rows * a.D) return;
    const int r = (int)(e / a.D), d = (int)(e % a.D);
    const ea_cu_tensor &P = ea_pj_src(a, which, true), &X = ea_pj_src(a, which, false);
    const ea_cu_tensor &O = which ? a.vo : a.ko;
    const int64_t pb = (int64_t)b * P.sb + (int64_t)h * P.sh + (int64_t)r * P.sn, xb = (int64_t)b * X.sb + (int64_t)h * X.sh + d;
    float acc = 0.f;
    for (int j = 0; j < a.N; ++j)
        acc = fmaf(ea_load((const void *)P.ptr, pb + j, P.dtype), ea_load((const void *)X.ptr, xb + (int64_t)j * X.sn, X.dtype), acc);
    ea_store((void *)O.ptr, (int64_t)b * O.sb + (int64_t)h * O.sh + (int64_t)r * O.sn + d, O.dtype, acc);
}
