// The one translation unit nvcc compiles into the embedded fatbin (no -rdc): every kernel of the module.
#include "attn_simt.cu"
#include "attn_mma.cu"
#include "decode.cu"
#include "util.cu"
#include "topk.cu"
#include "proj.cu"
