/* Tile shapes of the tensor-core kernels: plain C macros, read by the kernels (attn_mma.cu, decode.cu)
 * and by the launch planner (launch.c, C11), so the two cannot disagree.
 * Prefill: EA_PF_<D>_{NW,BN,ST,QREG,MT,MINB}: warps (16*MT query rows each), keys per tile, cp.async
 * stages, Q held in registers (1) or re-read from shared memory (0), m16 tiles per warp, CTAs per SM the
 * register budget is set for (__launch_bounds__ minBlocks), K/V prefetch issued after Q.K^T (LATE). Decode: EA_DC_<D>_{NW,WST}: warps, stages per warp
 * (16 keys a stage). Shared bytes follow from these (EA_PF_SMEM / EA_DC_SMEM). */
#ifndef EDGEATTN_CUDA_TILE_CONFIG_H
#define EDGEATTN_CUDA_TILE_CONFIG_H

#define EA_PF_64_NW 4
#define EA_PF_64_BN 64
#define EA_PF_64_ST 2
#define EA_PF_64_QREG 1
#define EA_PF_64_MT 2
#define EA_PF_64_LATE 1
#define EA_PF_64_MINB 2
#define EA_PF_80_NW 4
#define EA_PF_80_BN 64
#define EA_PF_80_ST 3
#define EA_PF_80_QREG 1
#define EA_PF_80_MT 1
#define EA_PF_80_LATE 0
#define EA_PF_80_MINB 1
#define EA_PF_96_NW 4
#define EA_PF_96_BN 64
#define EA_PF_96_ST 3
#define EA_PF_96_QREG 1
#define EA_PF_96_MT 1
#define EA_PF_96_LATE 0
#define EA_PF_96_MINB 1
#define EA_PF_128_NW 4
#define EA_PF_128_BN 64
#define EA_PF_128_ST 2
#define EA_PF_128_QREG 0
#define EA_PF_128_MT 2
#define EA_PF_128_LATE 1
#define EA_PF_128_MINB 2
#define EA_PF_256_NW 4
#define EA_PF_256_BN 32
#define EA_PF_256_ST 2
#define EA_PF_256_QREG 0
#define EA_PF_256_MT 1
#define EA_PF_256_LATE 0
#define EA_PF_256_MINB 1

/* Small-shared-memory D128 configurations for parts with <= 99 KB per block (sm_86, sm_89): 87 KB and 74 KB. */
#define EA_PF_128S_NW 4
#define EA_PF_128S_BN 32
#define EA_PF_128S_ST 3
#define EA_PF_128S_QREG 0
#define EA_PF_128S_MT 2
#define EA_PF_128S_MINB 2
#define EA_PF_128S_LATE 0
#define EA_DC_128S_NW 4
#define EA_DC_128S_WST 2

#define EA_DC_64_NW 4
#define EA_DC_64_WST 4
#define EA_DC_80_NW 4
#define EA_DC_80_WST 4
#define EA_DC_96_NW 4
#define EA_DC_96_WST 4
#define EA_DC_128_NW 4
#define EA_DC_128_WST 3
#define EA_DC_256_NW 4
#define EA_DC_256_WST 2
#define EA_DC_KPW 16
#define EA_RESCALE_SLACK 8.0f /* log2 units the running max may lag before O is rescaled */
#define EA_COMBINE_MAX_SPLITS 128 /* one CTA of 128 threads per row holds the weights */

#define EA_PF_SMEM(D, M16, BN, ST) ((16 * (M16) * ((D) + 8) + 2 * (ST) * (BN) * ((D) + 8)) * 2)
#define EA_DC_STAGE(D, WST) ((WST) * 2 * EA_DC_KPW * ((D) + 8) * 2)
#define EA_DC_MERGE(D, NW) ((NW) * (16 * ((D) + 4) + 32) * 4)
#define EA_DC_SMEM(D, NW, WST)                                                                                   \
    (16 * ((D) + 8) * 2 + ((NW) * EA_DC_STAGE(D, WST) > EA_DC_MERGE(D, NW) ? (NW) * EA_DC_STAGE(D, WST)          \
                                                                           : EA_DC_MERGE(D, NW)))
#define EA_SIMT_SMEM(D) ((3 * 16 * ((D) + 1) + 16 * 17) * 4)
/* Linformer's pipelined projection (proj.cu): stages of 32 keys, an E tile 128 x 32 and a K/V tile
 * 32 x NC (NC = 64 or 128 columns), rows padded by 8 halves */
#define EA_PJP_ST 4
#define EA_PJP_KS 32
#define EA_PJP_SMEM(NC) (EA_PJP_ST * (128 * (EA_PJP_KS + 8) + EA_PJP_KS * ((NC) + 8)) * 2)

#endif
