/*
 * edgeattn: transformer attention for edge hardware inside a fixed memory budget.
 *
 * The whole public API is this header. Conventions:
 *   - Every function returns an edgeattn_status (EDGEATTN_OK == 0) unless stated otherwise.
 *   - Every byte a context uses is planned by edgeattn_plan() from the config and obtained once, in
 *     edgeattn_create() (or supplied by the caller). edgeattn_attention(), edgeattn_decode() and the
 *     KV-cache calls allocate nothing, create no threads and load nothing.
 *   - On any failed call nothing the caller owns is written (outputs, the KV cache and its lengths
 *     are unchanged); the context stays usable and edgeattn_message_of() says what was wrong. Every
 *     call on a context writes that message: "" after a success, the reason after a failure.
 *   - Public structs the caller fills (edgeattn_config, edgeattn_params) carry struct_version: start
 *     from edgeattn_config_default() / edgeattn_params_default(). A zero-initialised struct is refused
 *     (EDGEATTN_ERR_INVALID_ARG, naming the default function), never silently taken as meaningful.
 *   - Caller arrays read by a call (kv_lens, n_new) are copied once at validation; caller tensors
 *     that would be both read and written (an output overlapping any input, lse overlapping bias) are
 *     refused with EDGEATTN_ERR_STRIDE.
 *   - A context may be used by one thread at a time. Different contexts are fully independent:
 *     the library has no mutable global state.
 *   - Tensors are described by edgeattn_tensor: a logical shape [B, H, N, D] with element strides,
 *     so BHSD, BSHD and views into larger buffers all work without copies. D must be contiguous.
 */
#ifndef EDGEATTN_EDGEATTN_H
#define EDGEATTN_EDGEATTN_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(EDGEATTN_BUILDING_SHARED)
#define EDGEATTN_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define EDGEATTN_API __attribute__((visibility("default")))
#else
#define EDGEATTN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEATTN_VERSION_MAJOR 0
#define EDGEATTN_VERSION_MINOR 1
#define EDGEATTN_VERSION_PATCH 0
/* Version of the structs below; edgeattn_config_default() and edgeattn_params_default() store it in
 * struct_version. A struct with another value (0 from a zero-initialised struct) is refused. */
#define EDGEATTN_STRUCT_VERSION 3

/* ---------------------------------------------------------------- status codes */
typedef enum edgeattn_status {
    EDGEATTN_OK = 0,
    EDGEATTN_ERR_NULL_ARG = 1,          /* a required pointer is NULL */
    EDGEATTN_ERR_INVALID_ARG = 2,       /* a size, flag or option that makes no sense (zero, negative, ...) */
    EDGEATTN_ERR_SHAPE_MISMATCH = 3,    /* shapes of Q/K/V/out/bias/lse disagree */
    EDGEATTN_ERR_GQA_RATIO = 4,         /* query heads not a multiple of KV heads */
    EDGEATTN_ERR_HEAD_DIM = 5,          /* head dim not supported (Q·K and V head dims: multiples of 8, 8..576) */
    EDGEATTN_ERR_DTYPE = 6,             /* dtype not supported for this tensor */
    EDGEATTN_ERR_STRIDE = 7,            /* strides negative, overlapping, D not contiguous, or view outside its buffer */
    EDGEATTN_ERR_CAPACITY = 8,          /* request beyond the plan (batch, lengths, heads, KV cache full) */
    EDGEATTN_ERR_OVERFLOW = 9,          /* a byte count overflows size_t */
    EDGEATTN_ERR_BUFFER_TOO_SMALL = 10, /* caller buffer smaller than the plan */
    EDGEATTN_ERR_MISALIGNED = 11,       /* caller buffer not aligned to EDGEATTN_ALIGNMENT, or tensor data not
                                           aligned to its element size */
    EDGEATTN_ERR_BACKEND_UNAVAILABLE = 12, /* forced backend not built, not present or unsupported */
    EDGEATTN_ERR_OUT_OF_MEMORY = 13,    /* create could not obtain the planned memory */
    EDGEATTN_ERR_NONFINITE = 14,        /* NaN or Inf in an input, with check_finite set */
    EDGEATTN_ERR_UNSUPPORTED = 15,      /* a valid request this backend/config cannot serve */
    EDGEATTN_ERR_SYSTEM = 16,           /* the OS refused something at create (threads) */
    EDGEATTN_ERR_INTERNAL = 17,         /* a bug in edgeattn; please report */
    EDGEATTN_ERR_LAYER = 18             /* a layer index outside [0, config.num_layers) */
} edgeattn_status;

/* Required alignment (bytes) of a caller-supplied memory block. */
#define EDGEATTN_ALIGNMENT 64

/* ---------------------------------------------------------------- enums */
typedef enum edgeattn_dtype {
    EDGEATTN_F32 = 0,
    EDGEATTN_F16 = 1,   /* IEEE binary16 storage; arithmetic and statistics in FP32 */
    EDGEATTN_BF16 = 2,  /* bfloat16 storage; arithmetic and statistics in FP32 */
    /* KV-cache storage only (config.kv_cache_dtype; never a tensor's dtype). Each (token, KV head) row
     * is quantised with one F32 scale after the sequence's per-channel offset and scale (fixed by its
     * first append) are taken out. The head dim must be a multiple of 32. See docs/QUANTISED-KV.md for
     * the format and the measured accuracy. */
    EDGEATTN_Q8 = 3,    /* 8-bit levels (head dim 128: 132 bytes a row, 0.52x F16) */
    EDGEATTN_Q4 = 4,    /* 4-bit levels (head dim 128: 68 bytes a row, 0.27x F16) */
    EDGEATTN_DTYPE_COUNT_ = 5
} edgeattn_dtype;

/* Where a tensor's bytes live. */
typedef enum edgeattn_memory {
    EDGEATTN_MEM_HOST = 0,   /* data is a host pointer (on Jetson also memory from cudaMallocManaged or
                                cudaHostAlloc: the CUDA backend reads it without staging copies) */
    EDGEATTN_MEM_CUDA = 1,   /* data is a CUdeviceptr (cast to void *) on the context's CUDA device */
    EDGEATTN_MEM_OPENCL = 2, /* data is a cl_mem of the context's OpenCL context; the view starts
                                `offset` bytes into it and `bytes` counts from there */
    EDGEATTN_MEMORY_COUNT_ = 3
} edgeattn_memory;

typedef enum edgeattn_backend {
    EDGEATTN_BACKEND_AUTO = 0,  /* first of CUDA, OpenCL, CPU that is present and supports the config */
    EDGEATTN_BACKEND_CPU = 1,
    EDGEATTN_BACKEND_CUDA = 2,
    EDGEATTN_BACKEND_OPENCL = 3
} edgeattn_backend;

/* CPU feature bits, used both for detection (edgeattn_cpu_features()) and for the disable mask. */
enum {
    EDGEATTN_CPU_AVX2 = 1u << 0,      /* x86: AVX2 + FMA + F16C, OS saves YMM */
    EDGEATTN_CPU_AVX512 = 1u << 1,    /* x86: AVX-512 F/BW/VL/DQ, OS saves ZMM */
    EDGEATTN_CPU_NEON = 1u << 8,      /* aarch64: Advanced SIMD */
    EDGEATTN_CPU_NEON_FP16 = 1u << 9  /* aarch64: FP16 arithmetic and FMLAL (asimdhp, fphp, asimdfhm) */
};

/* Attention kinds and flags. */
enum {
    EDGEATTN_FLAG_KV_CACHE = 1u << 0, /* plan a KV cache (max_batch sequences x max_kv_len tokens) */
    /* CUDA backend: every tensor will be device memory (or host memory the GPU addresses directly,
     * e.g. managed or pinned memory, or any host memory on Jetson): no staging area is planned, which
     * on a long KV cache saves as much device memory as the K/V inputs would take. A host tensor that
     * would need staging is then refused with EDGEATTN_ERR_UNSUPPORTED. The OpenCL backend stages
     * host tensors through a bounded area in pieces and plans the same with or without the flag; the
     * CPU backend ignores it. */
    EDGEATTN_FLAG_DEVICE_TENSORS = 1u << 1
};

/* Rotary position embedding (RoPE), applied by the library to keys as kv_append stores them and to
 * queries in decode (edgeattn_attention takes q and k as given: rotate them first). Pair p (0 <= p < dim/2) of a
 * head's first `dim` values is rotated by the angle pos * f_p with f_p = base^(-2p/dim), where
 * base = theta * ntk_alpha^(dim / (dim - 2)) (NTK-aware scaling; alpha 1: none) and pos is the
 * token's absolute position divided by linear_scale (1: none). Angles are computed in double and
 * rounded to FP32 sin/cos, so positions past 100,000 keep their accuracy. */
typedef enum edgeattn_rope_style {
    EDGEATTN_ROPE_NONE = 0,        /* no rotation (the default) */
    EDGEATTN_ROPE_HALF = 1,        /* pairs (p, p + dim/2): GPT-NeoX, Hugging Face Llama */
    EDGEATTN_ROPE_INTERLEAVED = 2  /* pairs (2p, 2p + 1): GPT-J, Meta's and llama2.c's Llama */
} edgeattn_rope_style;

typedef struct edgeattn_rope {
    edgeattn_rope_style style;
    int32_t dim;               /* rotated values per head: even, <= head dim; 0 = the whole head dim */
    float theta;               /* base (10000 for Llama 2, 500000 for Llama 3) */
    float linear_scale;        /* positions are divided by this (>= 1); 0 means 1 */
    float ntk_alpha;           /* NTK-aware base scaling (>= 1); 0 means 1 */
    int32_t pad_;
} edgeattn_rope;

/* A caller-supplied parallel-for (config.parallel_for): must call fn(arg, task, worker) once for
 * every task in [0, n_tasks), with worker in [0, n_workers) such that no two calls running at the same
 * time share a worker index (a thread's own index in the caller's pool does), and return when all have
 * returned. n_workers is the context's num_threads. */
typedef void (*edgeattn_task_fn)(void *arg, int32_t task, int32_t worker);
typedef void (*edgeattn_parallel_for_fn)(void *user, edgeattn_task_fn fn, void *arg, int32_t n_tasks,
                                         int32_t n_workers);

/* ---------------------------------------------------------------- config and plan */
typedef struct edgeattn_config {
    uint32_t struct_version;   /* EDGEATTN_STRUCT_VERSION (set by edgeattn_config_default) */
    uint32_t flags;            /* EDGEATTN_FLAG_* */
    /* maxima: every call is checked against these, and memory is planned from them */
    int32_t max_batch;         /* sequences per call (and KV-cache sequences) */
    int32_t max_q_len;         /* query rows per sequence per call */
    int32_t max_kv_len;        /* key/value rows per sequence (KV-cache capacity when no window) */
    int32_t max_heads;         /* query heads */
    int32_t max_kv_heads;      /* key/value heads (max_heads must be a multiple) */
    int32_t max_head_dim;      /* the Q·K head dim (of Q and K; the latent vector of a latent cache): a
                                  multiple of 8 from 8 to 576 (GPU backends and quantised caches: up to 256) */
    edgeattn_dtype kv_cache_dtype; /* storage of the KV cache: F32, F16, BF16, Q8 or Q4 (Q8/Q4: max_head_dim
                                      a multiple of 32; CPU backend) */
    int32_t kv_cache_window;   /* > 0: the cache is a ring buffer of the last W tokens per sequence */
    int32_t num_threads;       /* CPU worker threads including the caller; 0 = online cores */
    edgeattn_backend backend;  /* AUTO, or a forced backend (an unavailable one is an error) */
    uint32_t cpu_disable_mask; /* EDGEATTN_CPU_* bits to turn off (also EDGEATTN_CPU_MASK env) */
    /* GPU backends (ignored by the CPU backend): */
    uint64_t device_user_bytes; /* extra device-pool bytes the caller may place tensors in
                                   (edgeattn_device_region); 0: none */
    void *gpu_queue;           /* CUDA: a CUstream (cudaStream_t) of the device's primary context to run
                                  on; OpenCL: an in-order cl_command_queue whose context and device are
                                  used. NULL: the context creates its own stream / queue. */
    const char *kernel_cache_dir; /* OpenCL: directory for compiled program binaries (NULL: no cache);
                                     the string need only live during create */
    /* A whole model in one context: */
    int32_t num_layers;        /* layers whose KV caches the context holds (default 1); kv calls take
                                  a layer in [0, num_layers) */
    /* Paged KV cache (0, the default: every (layer, sequence) owns max_kv_len (or window) slots).
     * > 0: tokens per page, a power of two from 16 to 1024. The cache is then a pool of kv_pages pages
     * shared by every layer and sequence: a (layer, sequence) takes a page when its tokens reach it
     * and gives it back on kv_reset / kv_truncate; kv_fork shares the source's pages (a shared page is
     * copied when one of its sequences writes into it). An append the pool cannot serve gets
     * EDGEATTN_ERR_CAPACITY with nothing appended. Each page holds K and V of every KV head. */
    int32_t kv_page_size;
    edgeattn_rope rope;        /* RoPE applied by the library (style NONE: none, the default) */
    /* CPU backend: run parallel work through the caller's pool instead of the context's own threads
     * (then create starts no threads; num_threads says how many workers the caller's pool has). */
    edgeattn_parallel_for_fn parallel_for;
    void *parallel_user;       /* passed to parallel_for */
    int32_t kv_pages;          /* paged cache: pages in the pool; 0 = enough for every (layer, sequence)
                                  to reach its capacity (set fewer to share memory between sequences) */
    int32_t pad_;              /* must be zero */
    /* A tuning file written by `edgebench --tune` on this device (NULL: the EDGEATTN_TUNING_FILE
     * environment variable, or none). Read by plan and create only; the string need only live during
     * them. A file for another device, backend or library version is ignored (backend info's `tuning`
     * says so); a malformed or unreadable one is EDGEATTN_ERR_INVALID_ARG. */
    const char *tuning_file;
    /* Attention sinks (StreamingLLM): with kv_cache_window W > 0, the first kv_cache_sinks tokens of each
     * (layer, sequence) are kept for good beside the ring of the last W, so the cache holds S + W slots
     * however many tokens stream through it, and decode sees the S sinks and the last W keys (each
     * rotated by RoPE at its true position). 0 (default): none. CPU backend. Positions inside calls on
     * such a cache count held keys (the sinks, then the ring), so params windows are refused there. */
    int32_t kv_cache_sinks;
    /* Block summaries for top-k decode (Quest): > 0: for every block of this many positions the cache
     * also keeps the per-channel minimum and maximum of the keys (2 x max_head_dim floats per block and
     * KV head, counted in kv_cache_bytes), and decode may then attend only to the blocks whose bound on
     * q . k is highest (params.topk_tokens). 16, 32, 64 or 128; 0 (default): none. CPU backend; a float
     * cache without a window. */
    int32_t kv_summary_block;
    /* Linformer (params.linformer): the most projected rows k a call may use; the CPU backend plans
     * B x Hkv x k x max_head_dim F32 rows for each of K' and V'. 0 (default): no Linformer calls. */
    int32_t max_lowrank;
    /* Separate V head dim (latent attention, MLA): 0 (default): V and out have the head dim of Q and K in
     * every call, as always. > 0: V and out of a call may have their own last dim D_v (any multiple of 8
     * from 8 to this, at most 576), Q and K keep D (<= max_head_dim); e.g. DeepSeek's MLA decode 576 / 512
     * and prefill 192 / 128. Scratch and split-KV partials are planned for both. A KV cache with this set
     * must be latent (kv_cache_latent). CPU backend. */
    int32_t max_head_dim_v;
    /* Latent KV cache (MLA, absorbed form): 1: the cache stores one vector of head dim D (the first
     * append's k) per (token, KV head) and nothing else: kv_append takes k only (v must be NULL) and
     * decode reads V as the first D_v values (out's last dim, <= D and <= max_head_dim_v or D) of that
     * same vector, so V costs no bytes (kv_cache_bytes counts one row a token). Needs
     * EDGEATTN_FLAG_KV_CACHE and an F32, F16 or BF16 cache; works with windows, sinks, pages, fork,
     * truncate and layers; not with block summaries (top-k) nor config.rope (MLA's RoPE part is the
     * vector's last values: rotate it before the append). 0 (default): separate K and V rows. CPU
     * backend. docs/LOWRANK.md. */
    int32_t kv_cache_latent;
    uint8_t reserved[4];       /* must be zero */
} edgeattn_config;

typedef struct edgeattn_plan_info {
    edgeattn_backend backend;  /* the backend create would choose */
    size_t host_bytes;         /* total host memory the context needs (pass this to create) */
    size_t kv_cache_bytes;     /* part of host_bytes (or device_bytes) holding the KV cache */
    size_t scratch_bytes_per_thread; /* part of host_bytes: per-thread scratch */
    size_t device_bytes;       /* device memory (0 on the CPU backend) */
    int32_t num_threads;       /* threads the CPU backend will run */
    uint8_t reserved[32];
} edgeattn_plan_info;

/* Message buffer for calls that have no context yet (plan, create). */
typedef struct edgeattn_message {
    char text[256];
} edgeattn_message;

typedef struct edgeattn_context edgeattn_context;

/* ---------------------------------------------------------------- tensors */
typedef struct edgeattn_tensor {
    void *data;             /* first element of the view */
    size_t bytes;           /* bytes readable/writable from data on (bounds of the view's buffer) */
    edgeattn_dtype dtype;
    edgeattn_memory memory; /* EDGEATTN_MEM_HOST (0) unless the tensor lives on the GPU */
    size_t offset;          /* EDGEATTN_MEM_OPENCL only: byte offset of the view in the cl_mem; else 0 */
    int64_t shape[4];       /* [B, H, N, D] (LSE: [B, H, N, 1]) */
    int64_t stride[4];      /* in elements; stride[3] must be 1 */
} edgeattn_tensor;

/* ---------------------------------------------------------------- attention options */
/* A block-sparse mask (block compressed sparse rows, the layout SciPy's BSR and FlashInfer use): the
 * query rows are cut into blocks of block_q rows, the keys into blocks of block_k keys, and only the
 * listed (row block, key block) pairs are computed; every other score is masked, at no cost. One
 * pattern per (batch, KV head) (shared by the query heads of its GQA group), or broadcast over either:
 *   pattern p = (b % batch) * heads + (hkv % heads), with batch 1 or B and heads 1 or Hkv;
 *   row block r of pattern p lists key blocks col_idx[row_ptr[p * (nrb + 1) + r] ..
 *   row_ptr[p * (nrb + 1) + r + 1] - 1], strictly increasing, each < ceil(Nkv / block_k),
 *   with nrb = ceil(Nq / block_q) and every row_ptr entry in [0, nnz], non-decreasing within a pattern.
 * Block sizes: block_q 64 or 128, block_k 64. It combines with causal, windows, kv_lens and bias (a
 * score is kept only where all of them keep it); a row that keeps no key gives zeros. The arrays are
 * read during the call and must not overlap out or lse. edgeattn_attention only. */
typedef struct edgeattn_block_mask {
    int32_t block_q, block_k;
    int32_t batch, heads;    /* patterns: 1 or B, 1 or Hkv */
    int64_t nnz;             /* entries of col_idx */
    const int32_t *row_ptr;  /* [batch * heads * (nrb + 1)] */
    const int32_t *col_idx;  /* [nnz] */
} edgeattn_block_mask;

/* Linformer projections (Wang et al., 2020): K and V are projected along the sequence to k rows, K' = E K
 * and V' = F V, and attention runs over those k rows: out = softmax(scale Q K'^T) V'. E and F are
 * [1 or B, 1 or Hkv, k, Nkv] in F32, F16 or BF16 (one projection for every batch row and KV head, or
 * one each), k from 1 to config.max_lowrank. The projections run on the backend's GEMM kernels into
 * planned workspace. Not with causal, windows, kv_lens, bias or a block mask (a projected key has no
 * position). edgeattn_attention only; CPU backend. */
typedef struct edgeattn_linformer {
    const edgeattn_tensor *e, *f;
    uint8_t reserved[16]; /* must be zero */
} edgeattn_linformer;

typedef struct edgeattn_params {
    uint32_t struct_version; /* EDGEATTN_STRUCT_VERSION (set by edgeattn_params_default); 0 is refused */
    float scale;            /* 0: 1/sqrt(D) */
    float softcap;          /* > 0: s = softcap * tanh(s / softcap) after scaling, before bias */
    int32_t causal;         /* 1: key j visible to query i iff j <= i + (kv_len - q_len) (bottom right) */
    int32_t window_left;    /* >= 0: key j visible only if j >= pos(i) - window_left; -1: unlimited */
    int32_t window_right;   /* >= 0: key j visible only if j <= pos(i) + window_right; -1: unlimited */
    int32_t check_finite;   /* 1: return EDGEATTN_ERR_NONFINITE if Q/K/V (or bias NaN/+Inf) hold NaN/Inf */
    const int32_t *kv_lens; /* attention only: [B] valid keys per sequence (<= N of K/V); NULL = all.
                               Read once at validation (it may alias anything, outputs included). */
    const edgeattn_tensor *bias; /* optional F32 additive bias [B or 1, Hq or 1, Nq, Nkv] */
    edgeattn_tensor *lse;   /* optional F32 output [B, Hq, Nq, 1]: natural-log sum of exp of the
                               scaled scores; -INFINITY for a fully masked row. Must not overlap q, k,
                               v, out or bias. */
    const edgeattn_block_mask *block_mask; /* optional block-sparse mask (attention only; CPU backend) */
    /* decode over a cache with block summaries (config.kv_summary_block): > 0: each KV head attends only
     * to the blocks with the highest bound on q . k (the largest over its query heads) worth this many
     * tokens, rounded up to whole blocks, and always to the first and the newest block; 0: every key.
     * One query per sequence (Nq 1); CPU: the KV head's query heads must fit the tier's row tile. */
    int32_t topk_tokens;
    int32_t pad_;           /* must be zero */
    const edgeattn_linformer *linformer; /* optional Linformer projections (attention only) */
    uint8_t reserved[8];    /* must be zero */
} edgeattn_params;

/* Device ceilings measured by edgeattn_measure_ceilings (GPU backends). */
typedef struct edgeattn_ceilings {
    double copy_gbps;       /* device-to-device copy, bytes read + written per second / 1e9 */
    double compute_tflops;  /* CUDA: FP16 tensor-core mma (FP32 accumulate); OpenCL: FP32 FMA */
    char compute_what[48];  /* what compute_tflops measured */
    uint8_t reserved[32];
} edgeattn_ceilings;

/* Information about the context's backend, for logs and edgebench. */
typedef struct edgeattn_backend_info {
    edgeattn_backend backend;
    char backend_name[16];  /* "cpu", "cuda", "opencl" */
    char tier[32];          /* CPU: "scalar", "avx2", "avx512", "neon", "neon-fp16" */
    char device[128];       /* CPU model or GPU name */
    int32_t compute_capability; /* CUDA: major*10 + minor; 0 elsewhere */
    int32_t pad_;
    int32_t cores;          /* online CPU cores (or GPU multiprocessors / compute units) */
    int32_t threads;        /* worker threads used */
    uint32_t cpu_features;  /* EDGEATTN_CPU_* detected on this machine */
    uint32_t cpu_features_used; /* after the disable mask */
    size_t host_bytes;
    size_t device_bytes;
    size_t device_memory;   /* total device memory (GPU), 0 on CPU */
    char tuning[32];        /* the tuning file: "none", "applied", or "ignored: device" (library, backend)
                               when its key is another's */
} edgeattn_backend_info;

/* ---------------------------------------------------------------- functions */

/* Version as "MAJOR.MINOR.PATCH". Never NULL. */
EDGEATTN_API const char *edgeattn_version(void);

/* A short constant English string for a status; "unknown status" for values outside the enum. */
EDGEATTN_API const char *edgeattn_status_string(edgeattn_status status);

/* Fills *config with defaults: max_batch 1, max_q_len 1024, max_kv_len 1024, max_heads 8,
 * max_kv_heads 8, max_head_dim 128, kv_cache_dtype F16, no flags, num_threads 0, backend AUTO.
 * Does nothing if config is NULL. */
EDGEATTN_API void edgeattn_config_default(edgeattn_config *config);

/* Fills *params with defaults: struct_version, scale 0 (1/sqrt(D)), no softcap, not causal, windows -1
 * (unlimited), no check, no kv_lens, bias or lse. Does nothing if params is NULL. A NULL params
 * argument to a call means these defaults. */
EDGEATTN_API void edgeattn_params_default(edgeattn_params *params);

/* Describes a dense tensor: BHSD (layout [B][H][N][D]) or BSHD ([B][N][H][D]). The logical shape is
 * always [B, H, N, D]; bytes is set to the dense size (0 if it overflows, which validation refuses). */
EDGEATTN_API edgeattn_tensor edgeattn_tensor_bhsd(void *data, edgeattn_dtype dtype, int64_t b, int64_t h,
                                                  int64_t n, int64_t d);
EDGEATTN_API edgeattn_tensor edgeattn_tensor_bshd(void *data, edgeattn_dtype dtype, int64_t b, int64_t h,
                                                  int64_t n, int64_t d);

/* CPU features detected on this machine (EDGEATTN_CPU_* bits), before any mask. */
EDGEATTN_API uint32_t edgeattn_cpu_features(void);

/* Computes the memory plan for config without obtaining any memory.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG (config or info NULL); EDGEATTN_ERR_INVALID_ARG (a
 *   maximum <= 0, bad struct_version, reserved bytes set, bad window or thread count);
 *   EDGEATTN_ERR_GQA_RATIO; EDGEATTN_ERR_HEAD_DIM; EDGEATTN_ERR_DTYPE (kv_cache_dtype);
 *   EDGEATTN_ERR_OVERFLOW (the plan exceeds size_t); EDGEATTN_ERR_BACKEND_UNAVAILABLE (forced backend
 *   absent, also via EDGEATTN_BACKEND); EDGEATTN_ERR_INVALID_ARG for a malformed EDGEATTN_BACKEND or
 *   EDGEATTN_CPU_MASK. msg (may be NULL) receives an explanation on failure. */
EDGEATTN_API edgeattn_status edgeattn_plan(const edgeattn_config *config, edgeattn_plan_info *info,
                                           edgeattn_message *msg);

/* ---------------------------------------------------------------- fitting a config to a memory budget
 * A model's attention shape and what the caller allows go in; a config whose plan (host_bytes +
 * device_bytes: on a board with shared memory both come out of one budget) fits the budget comes out,
 * with the longest KV cache that fits. */
typedef struct edgeattn_fit_request {
    uint32_t struct_version;   /* EDGEATTN_STRUCT_VERSION (set by edgeattn_fit_default) */
    int32_t num_layers, num_heads, num_kv_heads, head_dim; /* the model (required, no defaults) */
    int32_t max_context;       /* the model's context length: never planned longer (default 131072) */
    int32_t min_context;       /* fewer tokens than this is a failure (default 256) */
    int32_t max_batch;         /* sequences served at once (default 1) */
    int32_t max_q_len;         /* query rows per call, the prefill chunk (default 512) */
    uint32_t kv_dtypes;        /* cache dtypes allowed, bits 1u << EDGEATTN_F32/F16/BF16/Q8/Q4 (default F32 | F16;
                                  tried in that order, the most precise first) */
    int32_t allow_window;      /* 1: when max_context does not fit, a ring of the last tokens that do
                                  (generation goes on past it, attending to that window); 0 (default): no */
    edgeattn_backend backend;  /* the backend to plan for (default AUTO: what create would pick here) */
    int32_t num_threads;       /* CPU threads to plan scratch for (default 0: online cores) */
    uint8_t reserved[32];      /* must be zero */
} edgeattn_fit_request;

/* Defaults as listed above; the model's four sizes stay 0 and must be set. Does nothing if NULL. */
EDGEATTN_API void edgeattn_fit_default(edgeattn_fit_request *request);

/* Fills *config (from edgeattn_config_default, KV cache on) for request within budget_bytes: among the
 * allowed cache dtypes, the most precise that plans max_context tokens; if none does, the one that plans
 * the most tokens (as a window when allowed, else as max_kv_len). *plan (may be NULL) receives that
 * config's plan and msg (may be NULL) a line saying what was chosen and why.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_INVALID_ARG (a bad request: sizes <= 0,
 *   no dtype allowed, struct_version, reserved bytes); EDGEATTN_ERR_GQA_RATIO; EDGEATTN_ERR_HEAD_DIM;
 *   EDGEATTN_ERR_CAPACITY (not even min_context tokens fit); what edgeattn_plan returns for the
 *   backend. Nothing is written on failure except msg. */
EDGEATTN_API edgeattn_status edgeattn_config_fit(const edgeattn_fit_request *request, uint64_t budget_bytes,
                                                 edgeattn_config *config, edgeattn_plan_info *plan,
                                                 edgeattn_message *msg);

/* Memory presets for common boards (data, documented in the README's table): the budget for
 * attention and the backend of preset `name` ("phone", "orin-nano-8gb", "agx-orin-64gb",
 * "desktop-gpu-24gb"), to pass to edgeattn_config_fit. index >= 0 with name NULL enumerates them
 * (*name_out receives the name; EDGEATTN_ERR_INVALID_ARG past the last).
 * @return EDGEATTN_OK; EDGEATTN_ERR_INVALID_ARG (unknown name). */
EDGEATTN_API edgeattn_status edgeattn_fit_preset(const char *name, int32_t index, const char **name_out,
                                                 uint64_t *budget_bytes, edgeattn_backend *backend,
                                                 const char **description);

/* Creates a context. buffer/buffer_bytes: caller memory of at least plan.host_bytes, aligned to
 * EDGEATTN_ALIGNMENT, that must outlive the context; or NULL/0 to let create obtain the memory once.
 * Starts num_threads-1 worker threads.
 * @return as edgeattn_plan, plus EDGEATTN_ERR_NULL_ARG (ctx NULL); EDGEATTN_ERR_BUFFER_TOO_SMALL;
 *   EDGEATTN_ERR_MISALIGNED; EDGEATTN_ERR_OUT_OF_MEMORY; EDGEATTN_ERR_SYSTEM (thread creation).
 *   *ctx is NULL on failure. */
EDGEATTN_API edgeattn_status edgeattn_create(const edgeattn_config *config, void *buffer, size_t buffer_bytes,
                                             edgeattn_context **ctx, edgeattn_message *msg);

/* Stops the threads and releases what create obtained (never a caller buffer). NULL is a no-op. */
EDGEATTN_API void edgeattn_destroy(edgeattn_context *ctx);

/* The message of the context's last call: "" after a success, the reason after a failure (every
 * failing call writes its own). Never NULL; valid until the next call on ctx. A NULL ctx gives a
 * constant string. */
EDGEATTN_API const char *edgeattn_message_of(const edgeattn_context *ctx);

/* Backend, tier, device and memory of the context.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG. */
EDGEATTN_API edgeattn_status edgeattn_get_backend_info(edgeattn_context *ctx, edgeattn_backend_info *info);

/* Attention: out[b,h,i,:] = softmax_j(s[b,h,i,j]) . V[b,h/(Hq/Hkv),j,:], with
 * s = scale * Q[b,h,i,:] . K[b,h/(Hq/Hkv),j,:], softcap, + bias, masks (params). Q: [B, Hq, Nq, D];
 * K: [B, Hkv, Nkv, D]; V: [B, Hkv, Nkv, D_v]; out: [B, Hq, Nq, D_v]. D_v is D unless
 * config.max_head_dim_v is set (then any multiple of 8 up to it: MLA prefill, e.g. D 192, D_v 128; scale 0
 * means 1/sqrt(D)). Q, K, V in F32/F16/BF16 (K and V the same dtype); out F32/F16/BF16. Fully
 * masked rows give zeros. params may be NULL (defaults). Linformer takes D_v == D only.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_INVALID_ARG (bad window, kv_lens entry,
 *   scale or softcap not finite/negative, reserved bytes set); EDGEATTN_ERR_SHAPE_MISMATCH;
 *   EDGEATTN_ERR_GQA_RATIO; EDGEATTN_ERR_HEAD_DIM; EDGEATTN_ERR_DTYPE; EDGEATTN_ERR_STRIDE;
 *   EDGEATTN_ERR_OVERFLOW; EDGEATTN_ERR_CAPACITY (beyond the plan); EDGEATTN_ERR_NONFINITE;
 *   EDGEATTN_ERR_UNSUPPORTED. */
EDGEATTN_API edgeattn_status edgeattn_attention(edgeattn_context *ctx, const edgeattn_tensor *q,
                                                const edgeattn_tensor *k, const edgeattn_tensor *v,
                                                edgeattn_tensor *out, const edgeattn_params *params);

/* ---------------------------------------------------------------- KV cache
 * With EDGEATTN_FLAG_KV_CACHE the context holds, for each of config.num_layers layers, a cache of
 * max_batch sequences (ids 0..max_batch-1) of up to max_kv_len tokens (or a ring of the last
 * kv_cache_window tokens). Each (layer, sequence) counts its own tokens: an engine appends to layer
 * l, then decodes layer l, for every layer of a step. The KV heads and head dim are fixed by the
 * first append into an empty cache (every layer and sequence empty).
 *
 * Calls name the sequences they touch: seq_ids[b] is the cache sequence that batch row b of the
 * tensors belongs to (distinct ids in [0, max_batch)); NULL means 0..B-1. Arrays are read once, at
 * validation. */

/* Appends rows of k/v [B, Hkv, N, D] to layer `layer` (a latent cache, config.kv_cache_latent: k only, the
 * latent vectors, and v must be NULL: EDGEATTN_ERR_INVALID_ARG otherwise; a cache of separate rows needs
 * v, EDGEATTN_ERR_NULL_ARG): n_new[b] (NULL: N for all) rows of batch row b
 * go to sequence seq_ids[b]. RoPE (config.rope) rotates each key at its absolute position. Without a
 * window, a sequence that would exceed max_kv_len is refused (EDGEATTN_ERR_CAPACITY) and nothing is
 * appended to any sequence; with kv_cache_window W the oldest tokens are overwritten and only the
 * last W are kept. k and v may each be F32, F16 or BF16 (they need not match each other or the
 * cache: rows are converted to the cache dtype on the way in), in any layout; a stride of 0 over B
 * or H (one row broadcast) is allowed.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_UNSUPPORTED (no KV cache planned);
 *   EDGEATTN_ERR_LAYER; EDGEATTN_ERR_INVALID_ARG (n_new entry < 0 or > N, a seq id out of range or
 *   repeated); EDGEATTN_ERR_SHAPE_MISMATCH; EDGEATTN_ERR_HEAD_DIM; EDGEATTN_ERR_DTYPE; EDGEATTN_ERR_STRIDE;
 *   EDGEATTN_ERR_OVERFLOW; EDGEATTN_ERR_CAPACITY; EDGEATTN_ERR_NONFINITE (check_finite set). */
EDGEATTN_API edgeattn_status edgeattn_kv_append(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids,
                                                const edgeattn_tensor *k, const edgeattn_tensor *v,
                                                const int32_t *n_new, int32_t check_finite);

/* Decode over layer `layer` of the cache: batch row b of q [B, Hq, Nq, D] holds the queries of the
 * last q_lens[b] (NULL: Nq) tokens appended to sequence seq_ids[b], query i at position
 * total - q_lens[b] + i; out [B, Hq, Nq, D], or over a latent cache [B, Hq, Nq, D_v]: V is the first D_v
 * values of each cached latent vector (D_v <= D, and <= config.max_head_dim_v when that is set, else
 * D_v == D; MLA decode: D 576, D_v 512, Hq query heads over one KV head). Rows i >= q_lens[b] of out (and lse) are not written.
 * Causal (bottom right) is applied when params->causal is set (the usual choice for more than one
 * query); window_left/right, scale, softcap, check_finite and lse apply as in edgeattn_attention;
 * kv_lens and bias must be NULL. config.rope, when set, rotates each query at its position.
 * @return as edgeattn_attention, plus EDGEATTN_ERR_UNSUPPORTED (no KV cache planned),
 *   EDGEATTN_ERR_LAYER and EDGEATTN_ERR_INVALID_ARG (a q_lens entry < 1 or > Nq or greater than the
 *   tokens held, a seq id out of range or repeated). */
EDGEATTN_API edgeattn_status edgeattn_decode(edgeattn_context *ctx, int32_t layer, const int32_t *seq_ids,
                                             const int32_t *q_lens, const edgeattn_tensor *q, edgeattn_tensor *out,
                                             const edgeattn_params *params);

/* Tokens appended to (layer, seq) so far (*total) and tokens held in the cache (*held, <= window).
 * Either pointer may be NULL.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG (ctx); EDGEATTN_ERR_UNSUPPORTED; EDGEATTN_ERR_LAYER;
 *   EDGEATTN_ERR_INVALID_ARG. */
EDGEATTN_API edgeattn_status edgeattn_kv_length(edgeattn_context *ctx, int32_t layer, int32_t seq, int64_t *total,
                                                int32_t *held);

/* Empties sequence seq in every layer (seq -1: every sequence).
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_UNSUPPORTED; EDGEATTN_ERR_INVALID_ARG. */
EDGEATTN_API edgeattn_status edgeattn_kv_reset(edgeattn_context *ctx, int32_t seq);

/* Rolls sequence seq back to its first `length` tokens in every layer (a layer holding fewer keeps
 * what it has): the next append continues at position `length`. With a window, the tokens that
 * remain must still be in the ring (length >= total - held); else EDGEATTN_ERR_INVALID_ARG and
 * nothing changes.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_UNSUPPORTED; EDGEATTN_ERR_INVALID_ARG. */
EDGEATTN_API edgeattn_status edgeattn_kv_truncate(edgeattn_context *ctx, int32_t seq, int64_t length);

/* Makes sequence dst a copy of sequence src in every layer (its tokens, positions and lengths), e.g.
 * to start several continuations from one prompt; dst's former contents are dropped. A contiguous
 * cache copies src's rows into dst's own; a paged cache (config.kv_page_size) shares src's pages, so
 * the prefix is stored once, and copies a shared page only when one of the two writes into it.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_UNSUPPORTED; EDGEATTN_ERR_INVALID_ARG
 *   (src or dst out of range, or equal). */
EDGEATTN_API edgeattn_status edgeattn_kv_fork(edgeattn_context *ctx, int32_t src, int32_t dst);

/* Paged KV cache: pages not in use by any (layer, sequence) (*free_pages) and the pool's size
 * (*total_pages). A contiguous cache reports 0 and 0. Either pointer may be NULL.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG (ctx); EDGEATTN_ERR_UNSUPPORTED (no KV cache planned). */
EDGEATTN_API edgeattn_status edgeattn_kv_pages(edgeattn_context *ctx, int32_t *free_pages, int32_t *total_pages);

/* Reads the cached keys and values of (layer, seq) at positions first .. first + N - 1 into k and v
 * [1, Hkv, N, D] (any dtype and layout, host memory). A latent cache: k receives the latent vectors and
 * v may be NULL, or [1, Hkv, N, D_v] with D_v <= D receives their first D_v values (the V the decode
 * reads). As stored (after
 * RoPE and the cache dtype's rounding): for saving a session or shifting a context. The positions
 * must be held (first >= total - held, first + N <= total).
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_UNSUPPORTED; EDGEATTN_ERR_LAYER;
 *   EDGEATTN_ERR_INVALID_ARG; EDGEATTN_ERR_SHAPE_MISMATCH; EDGEATTN_ERR_DTYPE; EDGEATTN_ERR_STRIDE. */
EDGEATTN_API edgeattn_status edgeattn_kv_read(edgeattn_context *ctx, int32_t layer, int32_t seq, int64_t first,
                                              edgeattn_tensor *k, edgeattn_tensor *v);

/* ---------------------------------------------------------------- FP16 / BF16 conversion
 * For applications that hold K/V or Q in FP16/BF16 without a compiler type for them: element i of
 * dst receives src[i] converted. FP32 -> FP16/BF16 rounds to nearest even; NaN stays NaN, values
 * beyond the FP16 range become +-Inf; FP16/BF16 -> FP32 is exact. src and dst must not overlap
 * unless they are the same pointer of a same-size type (never here: the sizes differ). n = 0 or a
 * NULL pointer does nothing. Safe to call from any thread; no context needed. */
EDGEATTN_API void edgeattn_f32_to_f16(const float *src, uint16_t *dst, size_t n);
EDGEATTN_API void edgeattn_f16_to_f32(const uint16_t *src, float *dst, size_t n);
EDGEATTN_API void edgeattn_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
EDGEATTN_API void edgeattn_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

/* ---------------------------------------------------------------- GPU memory and ordering
 * On a GPU backend every call is queued on the context's stream/queue. Calls whose tensors are all
 * device memory (EDGEATTN_MEM_CUDA / EDGEATTN_MEM_OPENCL) return without waiting for the GPU; a call
 * that reads or writes host tensors copies them through the device pool and returns when the host
 * outputs hold the result. check_finite on device tensors waits for the scan. On the CPU backend every
 * call is complete when it returns. */

/* Waits until everything queued on the context has finished (no-op on the CPU backend).
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_SYSTEM (the driver reported an error). */
EDGEATTN_API edgeattn_status edgeattn_synchronize(edgeattn_context *ctx);

/* The part of the device pool reserved for the caller (config.device_user_bytes): *memory receives
 * EDGEATTN_MEM_CUDA or EDGEATTN_MEM_OPENCL, *data the CUdeviceptr / cl_mem, *offset its byte offset in
 * that handle (0 on CUDA), *bytes its size. Tensors described inside it can be passed to every call.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_UNSUPPORTED (CPU backend, or 0 bytes planned). */
EDGEATTN_API edgeattn_status edgeattn_device_region(edgeattn_context *ctx, edgeattn_memory *memory, void **data,
                                                    size_t *offset, size_t *bytes);

/* Copies src into dst: same shape and dtype, any strides, either side host or device memory of this
 * context. Returns when host memory involved may be reused (host source) or holds the data (host
 * destination); device-to-device copies are queued.
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_SHAPE_MISMATCH; EDGEATTN_ERR_DTYPE;
 *   EDGEATTN_ERR_STRIDE; EDGEATTN_ERR_UNSUPPORTED (memory kind not of this backend); EDGEATTN_ERR_SYSTEM. */
EDGEATTN_API edgeattn_status edgeattn_copy(edgeattn_context *ctx, edgeattn_tensor *dst, const edgeattn_tensor *src);

/* Measures the device's copy bandwidth and compute throughput (takes about a second, may obtain and
 * release temporary device memory: not for the hot path).
 * @return EDGEATTN_OK; EDGEATTN_ERR_NULL_ARG; EDGEATTN_ERR_UNSUPPORTED (CPU backend);
 *   EDGEATTN_ERR_OUT_OF_MEMORY; EDGEATTN_ERR_SYSTEM. */
EDGEATTN_API edgeattn_status edgeattn_measure_ceilings(edgeattn_context *ctx, edgeattn_ceilings *ceilings);

#ifdef __cplusplus
}
#endif

#endif /* EDGEATTN_EDGEATTN_H */
