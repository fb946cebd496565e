/*
 * edgebench internals: one case (a shape to time), its result, the machine's ceilings and the small
 * helpers the files share. Nothing here is part of the library's API.
 */
#ifndef EDGEBENCH_BENCH_H
#define EDGEBENCH_BENCH_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "edgeattn/edgeattn.h"

typedef enum bench_kind { BENCH_PREFILL = 0, BENCH_DECODE = 1 } bench_kind;

/* One benchmark case. Prefill: edgeattn_attention on Q [B,Hq,Nq,D], K/V [B,Hkv,Nkv,D].
 * Decode: Nkv tokens appended to a KV cache of dtype kv (edgeattn_kv_append), then edgeattn_decode
 * with Nq queries (causal when Nq > 1). */
typedef struct bench_case {
    char name[40];
    bench_kind kind;
    int32_t B, Hq, Hkv, Nq, Nkv, D;
    int32_t causal;
    edgeattn_dtype q_dtype, kv_dtype, out_dtype;
    int32_t opencl_path;      /* 0 library's choice; 1 fused; 2 unfused (EDGEATTN_OPENCL_PATH at create) */
    int32_t auto_name;        /* name made from the shape (no name= key): bench_case_set_n renames it */
    int32_t page;             /* decode: KV-cache page size (config.kv_page_size); 0 contiguous */
    int32_t ragged;           /* decode: batch row b holds Nkv * {512, 3000, 9000, 16000}[b % 4] / 16000
                                 tokens (bench_kv_len), appended 256 at a time round-robin */
    int32_t sinks;            /* decode: a cache of Nkv slots, `sinks` attention sinks and a ring of the
                                 rest (config.kv_cache_sinks); 0: none */
    int32_t stream;           /* decode with sinks: tokens streamed through the cache before the timed
                                 decodes (default Nkv); the cache holds Nkv of them */
    int32_t density_pm;       /* prefill: a block-sparse mask (params.block_mask) listing this many per
                                 mille of the 64-key blocks of each row block (random, per batch row and
                                 KV head); 0: dense */
    int32_t block_q;          /* the mask's query rows per block: 64 (default) or 128 */
    int32_t topk;             /* decode: params.topk_tokens over a cache with block summaries; the keys
                                 then hold a few blocks aligned with the queries (what top-k is for) */
    int32_t sblk;             /* decode: config.kv_summary_block (default 32 with topk) */
    int32_t lowrank;          /* prefill: Linformer projections E, F [1, 1, lowrank, Nkv] (kv dtype); 0: none */
    int32_t Dv;               /* V (and out) head dim (config.max_head_dim_v); 0: D */
    int32_t latent;           /* decode: a latent cache (config.kv_cache_latent): K rows only, V their first Dv
                                 values (MLA); rated in FLOP/s against the FMA peak, as a prefill */
} bench_case;

/* The case's V head dim. */
static inline int32_t bench_dv(const bench_case *c) { return c->Dv ? c->Dv : c->D; }
/* Is the case rated in FLOP/s (against the FMA peak) rather than in K/V bytes read: prefill, and MLA decode
 * (a latent cache read once for a whole group of query heads: about 2 * Hq FLOP per byte). */
static inline int bench_rated_flops(const bench_case *c) { return c->kind == BENCH_PREFILL || c->latent; }

/* Tokens cached for batch row b of a decode case (Nkv unless ragged). */
/* Decode over a quantised cache (Q8, Q4): the K/V appended to it are F16. */
static inline edgeattn_dtype bench_kv_input_dtype(const bench_case *c)
{
    return c->kv_dtype == EDGEATTN_Q8 || c->kv_dtype == EDGEATTN_Q4 ? EDGEATTN_F16 : c->kv_dtype;
}

/* Bytes of one (token, head) row of K (or V) as the case stores it. */
static inline double bench_kv_row_bytes(const bench_case *c)
{
    switch (c->kv_dtype) {
    case EDGEATTN_F32: return 4.0 * c->D;
    case EDGEATTN_Q8: return c->D + 4.0; /* the levels and an F32 scale */
    case EDGEATTN_Q4: return c->D / 2.0 + 4.0;
    default: return 2.0 * c->D;
    }
}

static inline int64_t bench_kv_len(const bench_case *c, int64_t b)
{
    static const int32_t part[4] = {512, 3000, 9000, 16000};
    if (c->sinks) /* the cache's Nkv slots, or what the stream filled */
        return c->stream < c->Nkv ? c->stream : c->Nkv;
    if (!c->ragged)
        return c->Nkv;
    const int64_t n = (int64_t)c->Nkv * part[b % 4] / 16000;
    return n > c->Nq ? n : c->Nq;
}

/* What running a case measured. */
typedef struct bench_result {
    double median_ms, min_ms;
    double p10_ms, p90_ms;    /* 10th and 90th percentiles of the samples (linear between ranks) */
    int samples;              /* timed samples the figures come from (--reps) */
    double rate;              /* prefill: GFLOP/s over unmasked pairs; decode: GB/s of K/V read */
    double work;              /* prefill: FLOP per call; decode: K/V bytes per call */
    double pct_ceiling;       /* rate / ceiling * 100, or -1 when there is no ceiling */
    double max_rel_err;       /* -1 when the reference check was skipped */
    double min_cos;           /* smallest cosine of an output row with its reference (-2: not checked) */
    int64_t rows_checked, rows_total;
    size_t plan_host_bytes;
    size_t plan_kv_bytes;
    size_t plan_device_bytes;
    int batched;              /* GPU: calls queued back to back per timed sample (time = sample / batched) */
    char tier[32];
} bench_result;

/* Options that apply to every case. */
typedef struct bench_opts {
    edgeattn_backend backend;
    uint32_t cpu_disable_mask;
    int32_t threads;          /* 0: the library's default (online cores) */
    int reps, warmup;
    double rep_seconds;       /* > 0: after the warm-up, as many samples (at least reps, at most reps_max) as
                                 make about this many seconds of timed calls per context */
    int reps_max;
    int cache_ref;            /* keep each case's reference rows for its next run (--tune) */
    int check_ref;            /* compare with the double reference */
    double ref_budget;        /* multiply-adds the reference may spend per case before sampling rows */
    uint64_t seed;
    int host_tensors;         /* GPU backends: pass host tensors (time includes the copies); default:
                                 inputs and outputs live in device memory (edgeattn_device_region) */
    const char *kernel_cache; /* OpenCL: program-binary cache directory (config kernel_cache_dir) */
} bench_opts;

/* Ceilings measured in this run; 0 = not measured. */
typedef struct bench_ceiling {
    double fma_gflops;        /* best ISA, all threads */
    char fma_isa[16];
    double fma_gflops_avx2;   /* x86 with AVX-512 only: the AVX2 figure too (0 otherwise) */
    double read_gbs;          /* streaming read bandwidth, all threads */
    size_t read_bytes;        /* buffer size it was measured with */
    int threads;
    /* GPU backends (edgeattn_measure_ceilings) */
    double gpu_copy_gbs;      /* device copy, bytes read + written */
    double gpu_compute_gflops;
    char gpu_compute_what[48];
} bench_ceiling;

/* ---- cases.c */
/* Parses "prefill:B=1,H=8,KVH=8,N=1024,D=64,causal=0,q=f32,kv=f16" (see --help). Returns 0 or -1
 * with a message in err. */
int bench_parse_case(const char *spec, bench_case *c, char *err, size_t err_len);
/* Sets the case's length to n for --sweep: prefill Nq = Nkv = n, decode Nkv = n (Nq kept). A name made
 * from the shape loses its length. Returns 0, or -1 with a message (decode with Nq > n). */
int bench_case_set_n(bench_case *c, int32_t n, char *err, size_t err_len);
/* Writes the case back as a spec string. */
void bench_case_spec(const bench_case *c, char *buf, size_t len);
/* Shape and dtype (q/kv/out) columns of the table. */
void bench_case_shape(const bench_case *c, char *buf, size_t len);
void bench_case_dtypes(const bench_case *c, char *buf, size_t len);
/* The default and the quick suites. */
const bench_case *bench_default_suite(size_t *count);
const bench_case *bench_quick_suite(size_t *count);
/* The GPU suites: CUDA (FP16, H32 D128 prefill N1024..16384, decode up to 128K cached tokens) and
 * OpenCL (FP16 storage, prefill N1024/4096, decode N4096/32768, the fused kernel beside the unfused
 * CLBlast path). */
const bench_case *bench_cuda_suite(size_t *count);
const bench_case *bench_opencl_suite(size_t *count);
const char *bench_dtype_name(edgeattn_dtype dt);

/* ---- run.c */
/* Runs one case. Returns 0, or -1 with a message in err (library status and message included). */
int bench_run_case(const bench_case *c, const bench_opts *o, const bench_ceiling *ceil, bench_result *r, char *err,
                   size_t err_len);
/* A second configuration for bench_run_pair: set(arg, 1) is in force while its context is created (knobs in
 * the environment, a tuning file), set(arg, 0) restores the first's. */
typedef struct bench_alt {
    void (*set)(void *arg, int on);
    void *arg;
    int first; /* 1: the second context is created, filled and timed first (alternate it between runs:
                  memory placed later, or a cache filled later, then falls on each side alike) */
} bench_alt;
/* Runs one case on two contexts side by side, the second created under alt: the same inputs and cache
 * rows, the calls timed alternately (who goes first swaps every sample), both outputs checked against
 * the same reference rows; results in r and r_alt (no ceiling). Returns 0, or -1 with a message. */
int bench_run_pair(const bench_case *c, const bench_opts *o, const bench_alt *alt, bench_result *r,
                   bench_result *r_alt, char *err, size_t err_len);

/* ---- ceiling.c */
/* Measures the FMA peak (seconds_per_trial of FMA chains per thread, best of trials) and the streaming
 * read bandwidth over read_bytes. Returns 0, or -1 with a message (buffer not obtained). */
int bench_measure_ceiling(int threads, uint32_t cpu_features, size_t read_bytes, double seconds_per_trial,
                          int trials, bench_ceiling *out, char *err, size_t err_len);

/* ---- ceiling_kernels.c: register-resident FMA chains and a streaming sum, one version per ISA */
typedef enum bench_isa { BENCH_ISA_GENERIC = 0, BENCH_ISA_AVX2, BENCH_ISA_AVX512, BENCH_ISA_NEON } bench_isa;
/* The best ISA of these EDGEATTN_CPU_* features. */
bench_isa bench_best_isa(uint32_t cpu_features);
const char *bench_isa_name(bench_isa isa);
/* FLOP done by one iteration of bench_fma_chains. */
double bench_fma_flops_per_iter(bench_isa isa);
/* iters iterations of independent FMA chains held in registers; returns a value that depends on all. */
float bench_fma_chains(bench_isa isa, uint64_t iters);
/* Sum of n floats at p (p aligned to 64 bytes, n a multiple of 256). */
float bench_sum_stream(bench_isa isa, const float *p, size_t n);

/* ---- shared helpers (run.c) */
double bench_now_s(void);
uint64_t bench_rng_next(uint64_t *state);

/* The error bound --check applies to a case (that of its least precise dtype). */
double bench_error_bound(const bench_case *c);

/* --tune: searches the backend's knobs for the cases, writes the tuning file out_path, then times
 * every case with the defaults and with the file. Returns the exit status. */
int bench_tune(const bench_case *cases, size_t ncases, const bench_opts *o, const edgeattn_backend_info *info,
               const char *out_path, double seconds, FILE *tab);

#endif
