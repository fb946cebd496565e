// Tensor-core and async-copy primitives (inline PTX), one place for every tile kernel.
//
// Fragment layouts of mma.sync.m16n8k16 (g = lane / 4, t = lane % 4), 16-bit inputs:
//   A (16x16, row): a0 = (row g,   k 2t..2t+1)  a1 = (row g+8, k 2t..2t+1)
//                   a2 = (row g,   k 2t+8..+9)  a3 = (row g+8, k 2t+8..+9)
//   B (16x8, col):  b0 = (k 2t..2t+1, col g)    b1 = (k 2t+8..+9, col g)
//   C/D (16x8 f32): c0,c1 = (row g, col 2t..2t+1)  c2,c3 = (row g+8, col 2t..2t+1)
// So the C fragments of two adjacent n8 tiles, packed to 16 bits, are exactly the A fragment of one k16
// step: P never leaves registers between Q.K^T and P.V.
//
// INT8 (planned, docs/INTENT.md) slots in beside these: mma.sync.m16n8k32.row.col.s32.s8.s8.s32 has the same
// thread/row mapping with 4 bytes per register (A k 4t..4t+3 / 4t+16.., B likewise), so the tile
// loaders (ldmatrix on 16-byte rows) are shared; add ea_mma_s8_16832() below and an s8 traits struct.
#ifndef EDGEATTN_CUDA_MMA_CUH
#define EDGEATTN_CUDA_MMA_CUH

#include "common.cuh"

// 16-bit element traits: F16 and BF16 share every loader, only the MMA opcode and packing differ.
struct ea_f16_t {
    static constexpr int dtype = EA_CU_F16;
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __half2 h = __floats2half2_rn(lo, hi);
        return *(uint32_t *)&h;
    }
    static __device__ __forceinline__ uint16_t from_f(float f) { return ea_f_to_h(f); }
    static __device__ __forceinline__ float to_f(uint16_t h) { return ea_h_to_f(h); }
};
struct ea_bf16_t {
    static constexpr int dtype = EA_CU_BF16;
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
#if EA_SM80
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *(uint32_t *)&h;
#else
        return (uint32_t)ea_f_to_bf16(lo) | ((uint32_t)ea_f_to_bf16(hi) << 16);
#endif
    }
    static __device__ __forceinline__ uint16_t from_f(float f) { return ea_f_to_bf16(f); }
    static __device__ __forceinline__ float to_f(uint16_t h) { return ea_bf16_to_f(h); }
};

template <typename T>
__device__ __forceinline__ void ea_mma_16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void ea_mma_16816<ea_f16_t>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
#if EA_SM80
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
template <>
__device__ __forceinline__ void ea_mma_16816<ea_bf16_t>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
#if EA_SM80
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ uint32_t ea_smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

// Four 8x8 b16 matrices; lane l gives the row address of matrix l/8, row l%8.
__device__ __forceinline__ void ea_ldsm_x4(uint32_t r[4], uint32_t addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#endif
}
__device__ __forceinline__ void ea_ldsm_x4_t(uint32_t r[4], uint32_t addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#endif
}

// 16-byte async copy global -> shared; src_bytes 0 fills the 16 bytes with zeros (rows past the end).
__device__ __forceinline__ void ea_cp_async16(uint32_t saddr, const void *gptr, int src_bytes) {
#if EA_SM80
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(saddr), "l"(gptr), "r"(src_bytes));
#endif
}
__device__ __forceinline__ void ea_cp_commit() {
#if EA_SM80
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void ea_cp_wait() {
#if EA_SM80
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

__device__ __forceinline__ float ea_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

#endif
