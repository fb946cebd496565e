/*
 * edgebench: measures edgeattn on this machine. Prints the library version and the backend the
 * library chose, measures the machine's ceilings in the same run (FMA peak, streaming read
 * bandwidth), then times a suite of prefill and decode cases and checks each against the double
 * reference. `edgebench --help` lists the options and the case syntax.
 *
 * Exit status: 0; 1 usage or library error (the message says which call and why); 2 --check found an
 * error above its bound.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_CASES 1024 /* after --sweep */
#define MAX_SWEEP 32

static void usage(FILE *f)
{
    fprintf(f,
            "usage: edgebench [options]\n"
            "\n"
            "Times edgeattn on this machine: prefill (edgeattn_attention) and decode over the KV cache\n"
            "(edgeattn_kv_append, then edgeattn_decode), and checks every case against the double reference.\n"
            "\n"
            "options:\n"
            "  --backend auto|cpu|cuda|opencl  backend to force (default auto; EDGEATTN_BACKEND also works)\n"
            "  --tier scalar|avx2|avx512|neon|neon-fp16|best\n"
            "                        CPU SIMD tier: sets the CPU disable mask; fails if this CPU lacks it\n"
            "  --cpu-mask HEX        EDGEATTN_CPU_* bits to disable (ORed with --tier and EDGEATTN_CPU_MASK):\n"
            "                        0x1 avx2, 0x2 avx512, 0x100 neon, 0x200 neon-fp16\n"
            "  --threads N           worker threads including the caller (default: online cores)\n"
            "  --reps N              timed samples per case: median, p10 and p90 are reported (default 10)\n"
            "  --warmup N            untimed calls before them (default 2)\n"
            "  --case SPEC           run this case instead of the suite; repeatable (syntax below)\n"
            "  --sweep N=A..B        run every case (the suite's or the --case ones) at each length A, 2A,\n"
            "                        4A, ... up to B; or --sweep N=A,B,C for a list. Prefill: Nq = Nkv = N;\n"
            "                        decode: Nkv = N cached tokens. tools/plot-edgebench.py plots the JSON\n"
            "  --quick               a small fast suite with odd sizes (for CI): 3 reps, 1 warm-up,\n"
            "                        short ceiling trials over a 256 MiB buffer\n"
            "  --json [FILE]         also write the results as JSON to FILE; without FILE, or '-', JSON goes\n"
            "                        to stdout and the table to stderr\n"
            "  --no-ceiling          skip the FMA-peak and bandwidth measurements\n"
            "  --bw-mib N            bandwidth buffer in MiB (default 1024); keep it several times the\n"
            "                        last-level cache, or the figure is the cache's bandwidth\n"
            "  --no-ref              skip the reference check\n"
            "  --host-tensors        GPU backends: pass host tensors, so the time includes the copies (default:\n"
            "                        inputs and outputs live in device memory, edgeattn_device_region)\n"
            "  --kernel-cache DIR    OpenCL: keep compiled programs in DIR (kernel_cache_dir), so a second\n"
            "                        run starts without building them\n"
            "  --ref-budget X        multiply-adds the reference may spend per case before it checks a\n"
            "                        random sample of rows (at least 16) instead of all (default 5e7)\n"
            "  --check               exit 2 if a case's error exceeds its bound: 1e-5 when q, K/V and out are\n"
            "                        f32; 2e-3 with f16 among them; 1.6e-2 with bf16\n"
            "  --seed N              random inputs' seed (default 1)\n"
            "  --tune FILE           search the backend's knobs (CPU tiles and inline threshold; OpenCL path\n"
            "                        and tiles) for the cases (--case, or the suite), keep what is faster and\n"
            "                        right, write them to FILE (load it with config.tuning_file or\n"
            "                        EDGEATTN_TUNING_FILE), then time each case with and without it\n"
            "  --seconds S           --tune's time budget (default 120); Ctrl-C stops early, keeping the best\n"
            "  --fit BUDGET --model L,H,KVH,D[,CTX]\n"
            "                        print the config edgeattn_config_fit makes for a model of L layers, H\n"
            "                        query heads, KVH KV heads, head dim D (context CTX, default 131072) in\n"
            "                        BUDGET bytes (suffix K, M, G for KiB, MiB, GiB) or a preset's budget and\n"
            "                        backend (phone, orin-nano-8gb, agx-orin-64gb, desktop-gpu-24gb; --backend\n"
            "                        overrides), then exit; --fit-window lets it plan a window\n"
            "  --list                print the suites as case specs, then exit (the default suite follows the\n"
            "                        backend: CPU, CUDA or OpenCL shapes)\n"
            "  --help-json           describe the fields of the --json output, then exit\n"
            "  --version, --help\n"
            "\n"
            "case SPEC: KIND:KEY=VALUE,...   KIND is prefill or decode; keys (case-insensitive):\n"
            "  B sequences (1); H query heads (8); KVH key/value heads (= H); D head dim (64)\n"
            "  N   prefill: Nq = Nkv = N (1024); decode: Nkv = N, the tokens appended to the cache (4096)\n"
            "  NQ  query rows (prefill N; decode 1); NKV key/value rows\n"
            "  causal 0|1  bottom-right aligned (prefill 0; decode: 1 exactly when NQ > 1)\n"
            "  q, kv, out  f32|f16|bf16 (f32, f16, f32); for decode kv is the KV-cache dtype\n"
            "  path  OpenCL only: fused|unfused|auto (EDGEATTN_OPENCL_PATH for that case)\n"
            "  page P, ragged 0|1  decode: a paged cache; four sequences of 512..16000/16000 x NKV tokens\n"
            "  density F, bq 64|128  prefill: a random block-sparse mask listing F of the 64-key blocks\n"
            "  sinks S, stream T  decode: a cache of NKV slots, S sinks + a ring, after T tokens streamed\n"
            "  topk T, sblk 16|32|64|128  decode: top-k over T tokens of block summaries (keys: a few\n"
            "        blocks aligned with the queries)\n"
            "  lowrank K  prefill: Linformer, K and V projected to K rows by random E, F (kv dtype)\n"
            "  DV  V and out head dim (= D)\n"
            "  latent 0|1  decode: a latent cache (MLA: K rows only, V their first DV values), rated in FLOP/s\n"
            "        against the FMA peak\n"
            "  e.g. --case \"decode:H=128,KVH=1,NKV=32768,D=576,DV=512,latent=1,kv=f16\" (MLA decode)\n"
            "  name  label in the table\n"
            "  e.g. --case \"prefill:B=1,H=8,KVH=8,N=1024,D=64,causal=0,q=f32,kv=f16\"\n"
            "       --case \"decode:H=32,KVH=8,NKV=16384,D=128,kv=f16,name=E\"\n");
    fprintf(f,
            "\n"
            "columns: median, p10 and p90 ms of the --reps timed samples; rate: prefill and latent decode FLOP/s =\n"
            "2*B*Hq*(D+DV)*(unmasked query-key pairs) / median time, decode B/s = K and V bytes in the cache read\n"
            "once / median time, in k/M/G/T units that suit the device; %% of the ceiling measured above (FMA\n"
            "peak for prefill, read bandwidth for decode; * when the K/V fit in the last-level cache); max\n"
            "relative error over the checked rows (max|out - ref| / max|ref| per row) against\n"
            "ea_ref_attention in double, ! when above its bound (marked with or without --check); rows\n"
            "checked/total; host memory planned by edgeattn_plan. A closing line counts the cases, those over\n"
            "their bound and the run's total time.\n");
}

/* The --json document, field by field (the README's edgebench section carries the same text). */
static void usage_json(FILE *f)
{
    fprintf(f,
            "edgebench --json: one object. Rates are in fixed units (GFLOP/s, GB/s), times in ms, sizes in\n"
            "bytes; null where a figure was not measured.\n"
            "\n"
            "  format        2 (this layout)\n"
            "  tool          \"edgebench\"; version: the library's version string\n"
            "  backend       name (cpu|cuda|opencl), tier (CPU SIMD tier), device, cores, threads,\n"
            "                cpu_features, cpu_features_used, cpu_disable_mask (EDGEATTN_CPU_* bits)\n"
            "  options       reps, warmup, seed, quick, ref_budget, host_tensors, sweep (the --sweep lengths,\n"
            "                or null)\n"
            "  ceiling       null (--no-ceiling, or not measured), else:\n"
            "                prefill_gflops, decode_gbs: the figures %%ceil divides by (null if absent);\n"
            "                CPU: fma_gflops, fma_isa, fma_gflops_avx2 (0 unless AVX-512), read_gbs,\n"
            "                read_bytes, threads, llc_bytes; GPU: gpu_copy_gbs (read + write),\n"
            "                gpu_compute_gflops, gpu_compute_what\n"
            "  cases[]       one per row of the table, in its order:\n"
            "    name, spec      the label, and the case as a --case spec that runs it again\n"
            "    kind            \"prefill\" or \"decode\"\n"
            "    B, Hq, Hkv, Nq, Nkv, D, causal, q, kv, out   the shape and dtypes\n"
            "    n               the sequence length a sweep varies and a plot's x: Nkv (prefill under\n"
            "                    --sweep: Nq = Nkv = n); a swept case keeps its name at every n\n"
            "    tier            the tier the case ran with\n"
            "    samples         timed samples (--reps); median_ms, p10_ms, p90_ms, min_ms of them\n"
            "                    (percentiles linear between ranks; GPU: time per call of a batched sample)\n"
            "    gflops          prefill and latent (MLA) decode: 2*B*Hq*(D+DV)*(unmasked query-key pairs) / median,\n"
            "                    in GFLOP/s\n"
            "    gbs             other decodes: K and V bytes in the cache, read once / median, in GB/s\n"
            "    pct_ceiling     the rate in %% of the ceiling (null without one)\n"
            "    in_llc          decode on the CPU: K/V fit in the last-level cache (the * mark)\n"
            "    max_rel_err     max over the checked rows of max|out - ref| / max|ref| (null: --no-ref)\n"
            "    error_bound     1e-5 all f32, 2e-3 with f16, 1.6e-2 with bf16 (q8 1.5e-2, q4 0.15, top-k >= 1e-3); over_bound: err > bound\n"
            "    rows_checked, rows_total   rows compared with the double reference\n"
            "    plan_host_bytes, plan_kv_cache_bytes, plan_device_bytes   edgeattn_plan's figures\n"
            "    batched         GPU: calls queued back to back per sample (1 on the CPU)\n"
            "  summary       cases, over_bound (names of the rows above their bound; with \"@n\" under\n"
            "                --sweep), checked (false with --no-ref), total_s (the run's wall time)\n");
}

static const char *features_string(uint32_t f, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s", f & EDGEATTN_CPU_AVX2 ? " avx2" : "", f & EDGEATTN_CPU_AVX512 ? " avx512" : "",
             f & EDGEATTN_CPU_NEON ? " neon" : "", f & EDGEATTN_CPU_NEON_FP16 ? " neon-fp16" : "");
    if (!buf[0])
        snprintf(buf, len, " none");
    return buf + 1;
}

static const char *backend_arg_name(edgeattn_backend b)
{
    switch (b) {
    case EDGEATTN_BACKEND_CPU: return "cpu";
    case EDGEATTN_BACKEND_CUDA: return "cuda";
    case EDGEATTN_BACKEND_OPENCL: return "opencl";
    default: return "auto";
    }
}

/* Size of the largest (last-level) data or unified cache of cpu0 from Linux sysfs; 0 if unknown. */
static size_t llc_bytes(void)
{
    size_t best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96], buf[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "r");
        if (!f)
            break;
        const int ok = fgets(buf, sizeof buf, f) != NULL;
        fclose(f);
        if (!ok)
            continue;
        char *end = NULL;
        size_t v = (size_t)strtoull(buf, &end, 10);
        if (end && (*end == 'K' || *end == 'k'))
            v <<= 10;
        else if (end && *end == 'M')
            v <<= 20;
        if (v > best)
            best = v;
    }
    return best;
}

/* JSON string with the characters that need it escaped. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double x)
{
    if (isfinite(x))
        fprintf(f, "%.6g", x);
    else
        fprintf(f, "null");
}

/* ---- rates in units that suit the device: 3.2 GFLOP/s on a small board, 350 TFLOP/s on a big GPU */
static const char *const si_prefix[5] = {"k", "M", "G", "T", "P"};

/* The prefix (index into si_prefix) that shows a rate of g giga-units as 1 <= value < 1000. */
static int rate_unit(double g)
{
    int u = 2;
    if (!(g > 0.0) || !isfinite(g))
        return u;
    for (; g >= 999.5 && u < 4; u++)
        g *= 1e-3;
    for (; g < 1.0 && u > 0; u--)
        g *= 1e3;
    return u;
}

/* g giga-units of `what` ("FLOP/s", "B/s") in unit u (-1: the one that suits g), three significant
 * digits; a value under 0.01 of unit u gets its own unit instead. */
static const char *fmt_rate(char *buf, size_t len, double g, int u, const char *what)
{
    if (u < 0 || !(g * pow(1e3, 2 - u) >= 0.01))
        u = rate_unit(g);
    const double v = g * pow(1e3, 2 - u);
    const int digits = !isfinite(v) || v >= 99.95 ? 0 : v >= 9.995 ? 1 : v >= 0.9995 ? 2 : 3;
    snprintf(buf, len, "%.*f %s%s", digits, v, si_prefix[u], what);
    return buf;
}

/* --sweep N=A..B (A, 2A, 4A, ... up to B) or N=A,B,C. Returns the count, or -1 with a message. */
static int parse_sweep(const char *s, int32_t *vals, int max, char *err, size_t err_len)
{
    if ((s[0] != 'N' && s[0] != 'n') || s[1] != '=') {
        snprintf(err, err_len, "--sweep %s: expected N=A..B or N=A,B,...", s);
        return -1;
    }
    const char *p = s + 2;
    char *end = NULL;
    int n = 0;
    const char *dots = strstr(p, "..");
    if (dots) {
        const long a = strtol(p, &end, 10);
        if (end != dots) {
            snprintf(err, err_len, "--sweep %s: expected N=A..B", s);
            return -1;
        }
        const long b = strtol(dots + 2, &end, 10);
        if (*end || dots[2] == '\0' || a < 1 || b < a || b > (1L << 30)) {
            snprintf(err, err_len, "--sweep %s: expected N=A..B with 1 <= A <= B <= 2^30", s);
            return -1;
        }
        for (long v = a; v <= b; v *= 2) {
            if (n == max) {
                snprintf(err, err_len, "--sweep %s: more than %d lengths", s, max);
                return -1;
            }
            vals[n++] = (int32_t)v;
        }
        return n;
    }
    for (;;) {
        const long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > (1L << 30) || (*end && *end != ',')) {
            snprintf(err, err_len, "--sweep %s: expected N=A,B,... with lengths 1..2^30", s);
            return -1;
        }
        if (n == max) {
            snprintf(err, err_len, "--sweep %s: more than %d lengths", s, max);
            return -1;
        }
        vals[n++] = (int32_t)v;
        if (!*end)
            return n;
        p = end + 1;
    }
}

/* The error bound --check applies: that of the least precise dtype among q, K/V and out. */
double bench_error_bound(const bench_case *c)
{
    const edgeattn_dtype d[3] = {c->q_dtype, c->kv_dtype, c->out_dtype};
    double bound = 1e-5;
    for (int i = 0; i < 3; i++) {
        if (d[i] == EDGEATTN_F16 && bound < 2e-3)
            bound = 2e-3;
        if (d[i] == EDGEATTN_BF16)
            bound = 1.6e-2;
    }
    /* quantised caches (docs/QUANTISED-KV.md): the format's own error on these uniform inputs */
    if (c->kv_dtype == EDGEATTN_Q8)
        bound = 1.5e-2;
    if (c->kv_dtype == EDGEATTN_Q4)
        bound = 0.15;
    /* top-k decode against dense attention: what the selection leaves out (docs/SPARSE.md) */
    if (c->topk && bound < 1e-3)
        bound = 1e-3;
    return bound;
}

static int parse_u64(const char *s, int base, uint64_t *v)
{
    char *end = NULL;
    if (!s || !*s || *s == '-')
        return -1;
    *v = strtoull(s, &end, base);
    return *end ? -1 : 0;
}

#define NEED_ARG()                                                                                               \
    do {                                                                                                         \
        if (i + 1 >= argc) {                                                                                     \
            fprintf(stderr, "edgebench: %s needs a value (see --help)\n", a);                                    \
            return 1;                                                                                            \
        }                                                                                                        \
    } while (0)

/* --fit: the config edgeattn_config_fit makes, printed. */
static int run_fit(const char *budget_arg, const char *model, edgeattn_backend backend, int backend_set,
                   int32_t threads, int window)
{
    edgeattn_fit_request r;
    edgeattn_fit_default(&r);
    int ctx_len = 0;
    const int n = model ? sscanf(model, "%d,%d,%d,%d,%d", &r.num_layers, &r.num_heads, &r.num_kv_heads, &r.head_dim,
                                 &ctx_len) : 0;
    if (n < 4) {
        fprintf(stderr, "edgebench: --fit needs --model L,H,KVH,D[,CTX] (layers, heads, KV heads, head dim)\n");
        return 1;
    }
    if (n == 5)
        r.max_context = ctx_len;
    uint64_t budget = 0;
    const char *what = NULL;
    edgeattn_backend pb = EDGEATTN_BACKEND_AUTO;
    if (edgeattn_fit_preset(budget_arg, -1, NULL, &budget, &pb, &what) == EDGEATTN_OK) {
        r.backend = backend_set ? backend : pb;
    } else {
        char *end = NULL;
        const double x = strtod(budget_arg, &end);
        double mult = 1.0;
        if (*end == 'K' || *end == 'k')
            mult = 1024.0, end++;
        else if (*end == 'M' || *end == 'm')
            mult = 1048576.0, end++;
        else if (*end == 'G' || *end == 'g')
            mult = 1073741824.0, end++;
        if (*end || !(x > 0.0) || x * mult > 1.8e19) {
            fprintf(stderr, "edgebench: --fit %s: expected bytes (with K, M or G) or a preset name\n", budget_arg);
            return 1;
        }
        budget = (uint64_t)(x * mult);
        r.backend = backend;
    }
    r.num_threads = threads;
    r.allow_window = window;
    edgeattn_config c;
    edgeattn_plan_info plan;
    edgeattn_message msg = {{0}};
    const edgeattn_status st = edgeattn_config_fit(&r, budget, &c, &plan, &msg);
    if (what)
        printf("preset %s: %s\n", budget_arg, what);
    if (st != EDGEATTN_OK) {
        fprintf(stderr, "edgebench: edgeattn_config_fit: %s (status %d): %s\n", edgeattn_status_string(st), (int)st,
                msg.text);
        return 1;
    }
    printf("model      %d layers, %d/%d heads, head dim %d, context %d\n", (int)r.num_layers, (int)r.num_heads,
           (int)r.num_kv_heads, (int)r.head_dim, (int)r.max_context);
    printf("budget     %.1f MiB\n", (double)budget / 1048576.0);
    printf("chosen     %s\n", msg.text);
    printf("config     num_layers=%d max_heads=%d max_kv_heads=%d max_head_dim=%d max_batch=%d max_q_len=%d "
           "max_kv_len=%d kv_cache_window=%d kv_cache_dtype=%s backend=%s\n",
           (int)c.num_layers, (int)c.max_heads, (int)c.max_kv_heads, (int)c.max_head_dim, (int)c.max_batch,
           (int)c.max_q_len, (int)c.max_kv_len, (int)c.kv_cache_window, bench_dtype_name(c.kv_cache_dtype),
           backend_arg_name(plan.backend));
    printf("plan       host %zu bytes, device %zu bytes, KV cache %zu bytes, scratch %zu bytes per thread x %d\n",
           plan.host_bytes, plan.device_bytes, plan.kv_cache_bytes, plan.scratch_bytes_per_thread,
           (int)plan.num_threads);
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o = {.backend = EDGEATTN_BACKEND_AUTO, .reps = 10, .warmup = 2, .check_ref = 1, .ref_budget = 5e7, .seed = 1};
    static bench_case cases[MAX_CASES];
    size_t ncases = 0;
    int quick = 0, ceiling = 1, check = 0, reps_set = 0, warmup_set = 0, bw_set = 0;
    const char *json_path = NULL, *tier = "best", *fit = NULL, *model = NULL;
    int fit_window = 0, backend_set = 0;
    const char *tune_path = NULL;
    double tune_seconds = 120.0;
    uint64_t bw_mib = 1024;
    uint32_t tier_mask = 0, user_mask = 0;
    int32_t sweep[MAX_SWEEP];
    int nsweep = 0;
    char err[512];
    const double t_start = bench_now_s();

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t u = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--help-json")) {
            usage_json(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("edgebench (edgeattn %s)\n", edgeattn_version());
            return 0;
        } else if (!strcmp(a, "--backend")) {
            NEED_ARG();
            const char *b = argv[++i];
            backend_set = 1;
            if (!strcmp(b, "auto"))
                o.backend = EDGEATTN_BACKEND_AUTO;
            else if (!strcmp(b, "cpu"))
                o.backend = EDGEATTN_BACKEND_CPU;
            else if (!strcmp(b, "cuda"))
                o.backend = EDGEATTN_BACKEND_CUDA;
            else if (!strcmp(b, "opencl"))
                o.backend = EDGEATTN_BACKEND_OPENCL;
            else {
                fprintf(stderr, "edgebench: --backend %s: expected auto, cpu, cuda or opencl\n", b);
                return 1;
            }
        } else if (!strcmp(a, "--tier")) {
            NEED_ARG();
            tier = argv[++i];
            if (!strcmp(tier, "best"))
                tier_mask = 0;
            else if (!strcmp(tier, "scalar"))
                tier_mask = EDGEATTN_CPU_AVX2 | EDGEATTN_CPU_AVX512 | EDGEATTN_CPU_NEON | EDGEATTN_CPU_NEON_FP16;
            else if (!strcmp(tier, "avx2"))
                tier_mask = EDGEATTN_CPU_AVX512;
            else if (!strcmp(tier, "avx512"))
                tier_mask = 0;
            else if (!strcmp(tier, "neon"))
                tier_mask = EDGEATTN_CPU_NEON_FP16;
            else if (!strcmp(tier, "neon-fp16"))
                tier_mask = 0;
            else {
                fprintf(stderr, "edgebench: --tier %s: expected scalar, avx2, avx512, neon, neon-fp16 or best\n", tier);
                return 1;
            }
        } else if (!strcmp(a, "--cpu-mask")) {
            NEED_ARG();
            if (parse_u64(argv[++i], 16, &u) || u > 0xffffffffu) {
                fprintf(stderr, "edgebench: --cpu-mask %s: expected a hexadecimal mask\n", argv[i]);
                return 1;
            }
            user_mask = (uint32_t)u;
        } else if (!strcmp(a, "--threads")) {
            NEED_ARG();
            if (parse_u64(argv[++i], 10, &u) || u > 1024) {
                fprintf(stderr, "edgebench: --threads %s: expected 0..1024\n", argv[i]);
                return 1;
            }
            o.threads = (int32_t)u;
        } else if (!strcmp(a, "--reps")) {
            NEED_ARG();
            if (parse_u64(argv[++i], 10, &u) || u < 1 || u > 100000) {
                fprintf(stderr, "edgebench: --reps %s: expected 1..100000\n", argv[i]);
                return 1;
            }
            o.reps = (int)u;
            reps_set = 1;
        } else if (!strcmp(a, "--warmup")) {
            NEED_ARG();
            if (parse_u64(argv[++i], 10, &u) || u > 100000) {
                fprintf(stderr, "edgebench: --warmup %s: expected 0..100000\n", argv[i]);
                return 1;
            }
            o.warmup = (int)u;
            warmup_set = 1;
        } else if (!strcmp(a, "--case")) {
            NEED_ARG();
            if (ncases == MAX_CASES) {
                fprintf(stderr, "edgebench: at most %d --case options\n", MAX_CASES);
                return 1;
            }
            if (bench_parse_case(argv[++i], &cases[ncases], err, sizeof err)) {
                fprintf(stderr, "edgebench: %s\n", err);
                return 1;
            }
            ncases++;
        } else if (!strcmp(a, "--sweep")) {
            NEED_ARG();
            nsweep = parse_sweep(argv[++i], sweep, MAX_SWEEP, err, sizeof err);
            if (nsweep < 0) {
                fprintf(stderr, "edgebench: %s\n", err);
                return 1;
            }
        } else if (!strcmp(a, "--quick")) {
            quick = 1;
        } else if (!strcmp(a, "--json")) {
            json_path = "-";
            if (i + 1 < argc && (argv[i + 1][0] != '-' || !strcmp(argv[i + 1], "-")))
                json_path = argv[++i];
        } else if (!strncmp(a, "--json=", 7)) {
            json_path = a + 7;
        } else if (!strcmp(a, "--no-ceiling")) {
            ceiling = 0;
        } else if (!strcmp(a, "--bw-mib")) {
            NEED_ARG();
            if (parse_u64(argv[++i], 10, &u) || u < 1 || u > (1u << 20)) {
                fprintf(stderr, "edgebench: --bw-mib %s: expected 1..1048576\n", argv[i]);
                return 1;
            }
            bw_mib = u;
            bw_set = 1;
        } else if (!strcmp(a, "--kernel-cache")) {
            NEED_ARG();
            o.kernel_cache = argv[++i];
        } else if (!strcmp(a, "--host-tensors")) {
            o.host_tensors = 1;
        } else if (!strcmp(a, "--no-ref")) {
            o.check_ref = 0;
        } else if (!strcmp(a, "--ref-budget")) {
            NEED_ARG();
            char *end = NULL;
            o.ref_budget = strtod(argv[++i], &end);
            if (*end || !(o.ref_budget > 0.0)) {
                fprintf(stderr, "edgebench: --ref-budget %s: expected a positive number\n", argv[i]);
                return 1;
            }
        } else if (!strcmp(a, "--check")) {
            check = 1;
        } else if (!strcmp(a, "--seed")) {
            NEED_ARG();
            if (parse_u64(argv[++i], 0, &u)) {
                fprintf(stderr, "edgebench: --seed %s: expected a number\n", argv[i]);
                return 1;
            }
            o.seed = u;
        } else if (!strcmp(a, "--tune")) {
            NEED_ARG();
            tune_path = argv[++i];
        } else if (!strcmp(a, "--seconds")) {
            NEED_ARG();
            char *end = NULL;
            tune_seconds = strtod(argv[++i], &end);
            if (*end || !(tune_seconds > 0.0)) {
                fprintf(stderr, "edgebench: --seconds %s: expected a positive number\n", argv[i]);
                return 1;
            }
        } else if (!strcmp(a, "--fit")) {
            NEED_ARG();
            fit = argv[++i];
        } else if (!strcmp(a, "--model")) {
            NEED_ARG();
            model = argv[++i];
        } else if (!strcmp(a, "--fit-window")) {
            fit_window = 1;
        } else if (!strcmp(a, "--list")) {
            size_t n;
            char spec[256];
            const bench_case *s = bench_default_suite(&n);
            printf("# default suite\n");
            for (size_t k = 0; k < n; k++) {
                bench_case_spec(&s[k], spec, sizeof spec);
                printf("%s\n", spec);
            }
            s = bench_quick_suite(&n);
            printf("# quick suite (--quick)\n");
            for (size_t k = 0; k < n; k++) {
                bench_case_spec(&s[k], spec, sizeof spec);
                printf("%s\n", spec);
            }
            s = bench_cuda_suite(&n);
            printf("# default suite on the CUDA backend\n");
            for (size_t k = 0; k < n; k++) {
                bench_case_spec(&s[k], spec, sizeof spec);
                printf("%s\n", spec);
            }
            s = bench_opencl_suite(&n);
            printf("# default suite on the OpenCL backend\n");
            for (size_t k = 0; k < n; k++) {
                bench_case_spec(&s[k], spec, sizeof spec);
                printf("%s\n", spec);
            }
            return 0;
        } else {
            fprintf(stderr, "edgebench: unknown option %s (see --help)\n", a);
            return 1;
        }
    }
    if (fit)
        return run_fit(fit, model, o.backend, backend_set, o.threads, fit_window);
    o.cpu_disable_mask = tier_mask | user_mask;
    if (quick) {
        if (!reps_set)
            o.reps = 3;
        if (!warmup_set)
            o.warmup = 1;
        if (!bw_set)
            bw_mib = 256;
    }
    const int json_stdout = json_path && !strcmp(json_path, "-");
    FILE *tab = json_stdout ? stderr : stdout;

    /* ---- the backend the library chooses, from a small context with the same choices */
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.max_q_len = cfg.max_kv_len = 16;
    cfg.max_heads = cfg.max_kv_heads = 1;
    cfg.max_head_dim = 16;
    cfg.num_threads = o.threads;
    cfg.backend = o.backend;
    cfg.cpu_disable_mask = o.cpu_disable_mask;
    edgeattn_context *ctx = NULL;
    edgeattn_message msg = {{0}};
    edgeattn_status st = edgeattn_create(&cfg, NULL, 0, &ctx, &msg);
    if (st != EDGEATTN_OK) {
        fprintf(stderr, "edgebench: edgeattn_create (backend %s, cpu mask 0x%x) failed: %s (status %d): %s\n",
                backend_arg_name(o.backend), (unsigned)o.cpu_disable_mask, edgeattn_status_string(st), (int)st,
                msg.text);
        return 1;
    }
    edgeattn_backend_info info;
    st = edgeattn_get_backend_info(ctx, &info);
    if (st != EDGEATTN_OK) {
        edgeattn_destroy(ctx);
        fprintf(stderr, "edgebench: edgeattn_get_backend_info failed: %s (status %d)\n", edgeattn_status_string(st),
                (int)st);
        return 1;
    }
    const int on_gpu = info.backend == EDGEATTN_BACKEND_CUDA || info.backend == EDGEATTN_BACKEND_OPENCL;
    edgeattn_ceilings gceil;
    memset(&gceil, 0, sizeof gceil);
    edgeattn_status gceil_st = EDGEATTN_ERR_UNSUPPORTED;
    char gceil_msg[256] = "";
    if (on_gpu && ceiling) {
        gceil_st = edgeattn_measure_ceilings(ctx, &gceil);
        snprintf(gceil_msg, sizeof gceil_msg, "%s", edgeattn_message_of(ctx));
    }
    edgeattn_destroy(ctx);
    if (ncases == 0) {
        size_t n;
        const bench_case *s = quick                                      ? bench_quick_suite(&n)
                              : info.backend == EDGEATTN_BACKEND_CUDA   ? bench_cuda_suite(&n)
                              : info.backend == EDGEATTN_BACKEND_OPENCL ? bench_opencl_suite(&n)
                                                                        : bench_default_suite(&n);
        memcpy(cases, s, n * sizeof *s);
        ncases = n;
    }
    if (nsweep > 0) { /* every case at every length, grouped by case */
        if (ncases * (size_t)nsweep > MAX_CASES) {
            fprintf(stderr, "edgebench: --sweep: %zu cases x %d lengths is more than %d rows\n", ncases, nsweep,
                    MAX_CASES);
            return 1;
        }
        static bench_case base[MAX_CASES];
        memcpy(base, cases, ncases * sizeof *cases);
        size_t m = 0;
        for (size_t k = 0; k < ncases; k++)
            for (int j = 0; j < nsweep; j++) {
                cases[m] = base[k];
                if (bench_case_set_n(&cases[m++], sweep[j], err, sizeof err)) {
                    fprintf(stderr, "edgebench: %s\n", err);
                    return 1;
                }
            }
        ncases = m;
    }
    if (tune_path) {
        /* each case timed side by side with the defaults: a warm-up call each, then samples enough for
         * about 0.1 s of calls per side (at least one, at most 40; --reps N fixes N) */
        if (!reps_set) {
            o.reps = 1;
            o.rep_seconds = 0.1;
            o.reps_max = 40;
        }
        if (!warmup_set)
            o.warmup = 1;
        o.cache_ref = 1;
        return bench_tune(cases, ncases, &o, &info, tune_path, tune_seconds, tab);
    }
    const uint32_t detected = edgeattn_cpu_features();
    char fbuf[64], ubuf[64];
    if (strcmp(tier, "best") && info.backend == EDGEATTN_BACKEND_CPU && strcmp(tier, info.tier)) {
        fprintf(stderr,
                "edgebench: --tier %s: the CPU backend chose tier %s (this CPU has: %s; disable mask 0x%x, "
                "EDGEATTN_CPU_MASK=%s)\n",
                tier, info.tier, features_string(detected, fbuf, sizeof fbuf), (unsigned)o.cpu_disable_mask,
                getenv("EDGEATTN_CPU_MASK") ? getenv("EDGEATTN_CPU_MASK") : "");
        return 1;
    }
    fprintf(tab, "edgebench  edgeattn %s\n", edgeattn_version());
    fprintf(tab, "backend    %s  tier %s  device \"%s\"  cores %d  threads %d\n", info.backend_name, info.tier,
            info.device, (int)info.cores, (int)info.threads);
    fprintf(tab, "features   detected: %s  used: %s\n", features_string(info.cpu_features, fbuf, sizeof fbuf),
            features_string(info.cpu_features_used, ubuf, sizeof ubuf));
    if (info.device_memory)
        fprintf(tab, "device mem %.1f GiB\n", (double)info.device_memory / (1u << 30));

    /* ---- ceilings, with the thread count the library runs */
    bench_ceiling ceil;
    memset(&ceil, 0, sizeof ceil);
    const size_t llc = llc_bytes();
    if (ceiling && info.backend == EDGEATTN_BACKEND_CPU) {
        if (bench_measure_ceiling(info.threads, detected, (size_t)bw_mib << 20, quick ? 0.03 : 0.15, quick ? 2 : 3,
                                  &ceil, err, sizeof err)) {
            fprintf(stderr, "edgebench: %s\n", err);
            return 1;
        }
        char r1[32], r2[32], r3[32];
        fprintf(tab, "ceilings   FMA peak %s (%s, %d threads", fmt_rate(r1, sizeof r1, ceil.fma_gflops, -1, "FLOP/s"),
                ceil.fma_isa, ceil.threads);
        if (ceil.fma_gflops_avx2 > 0.0)
            fprintf(tab, "; avx2 %s", fmt_rate(r2, sizeof r2, ceil.fma_gflops_avx2, -1, "FLOP/s"));
        fprintf(tab, ")  streaming read %s (%zu MiB buffer, %d threads)\n",
                fmt_rate(r3, sizeof r3, ceil.read_gbs, -1, "B/s"), ceil.read_bytes >> 20, ceil.threads);
        if (strcmp(info.tier, "avx2") == 0 && ceil.fma_gflops_avx2 > 0.0) {
            /* the AVX2 tier of an AVX-512 machine (--tier avx2): rated against the AVX2 peak */
            ceil.fma_gflops = ceil.fma_gflops_avx2;
            snprintf(ceil.fma_isa, sizeof ceil.fma_isa, "avx2");
            fprintf(tab, "           %%ceil of prefill: against the avx2 peak (the tier this run uses)\n");
        }
        if (llc && ceil.read_bytes < 3 * llc)
            fprintf(tab, "           note: the bandwidth buffer is not much larger than the %zu MiB last-level "
                         "cache: use --bw-mib %zu or more\n",
                    llc >> 20, (4 * llc) >> 20);
    } else if (ceiling && gceil_st == EDGEATTN_OK) {
        ceil.gpu_copy_gbs = gceil.copy_gbps;
        ceil.gpu_compute_gflops = gceil.compute_tflops * 1e3;
        snprintf(ceil.gpu_compute_what, sizeof ceil.gpu_compute_what, "%s", gceil.compute_what);
        char r1[32], r2[32];
        fprintf(tab, "ceilings   device copy %s (read + write)  compute %s (%s)\n",
                fmt_rate(r1, sizeof r1, ceil.gpu_copy_gbs, -1, "B/s"),
                fmt_rate(r2, sizeof r2, ceil.gpu_compute_gflops, -1, "FLOP/s"), gceil.compute_what);
        fprintf(tab, "           %%ceil: prefill against that compute figure, decode (K/V read once) against the "
                     "copy figure\n");
    } else if (ceiling) {
        fprintf(tab, "ceilings   not measured for the %s backend: %s (status %d): %s\n", info.backend_name,
                edgeattn_status_string(gceil_st), (int)gceil_st, gceil_msg);
    }
    if (on_gpu)
        fprintf(tab, "tensors    %s\n", o.host_tensors ? "host memory (times include the copies to and from the device)"
                                                       : "device memory (edgeattn_device_region); calls queued back to "
                                                         "back, time = sample / calls in it");
    /* the figures %ceil divides by, and the units of the rate column: those of the ceiling, per kind */
    const double ceil_pf = ceil.fma_gflops > 0.0 ? ceil.fma_gflops : ceil.gpu_compute_gflops;
    const double ceil_dec = ceil.read_gbs > 0.0 ? ceil.read_gbs : ceil.gpu_copy_gbs;
    const int unit_pf = ceil_pf > 0.0 ? rate_unit(ceil_pf) : -1, unit_dec = ceil_dec > 0.0 ? rate_unit(ceil_dec) : -1;
    fprintf(tab, "timing     %d timed samples per case after %d warm-up: median, p10 and p90 in ms; inputs uniform "
                 "in [-1, 1), seed %llu\n",
            o.reps, o.warmup, (unsigned long long)o.seed);
    if (o.check_ref)
        fprintf(tab,
                "reference  ea_ref_attention (double) on every row when it costs <= %.0e multiply-adds, else on a "
                "random sample of rows (column rows)\n",
                o.ref_budget);
    if (nsweep > 0) {
        fprintf(tab, "sweep      N =");
        for (int j = 0; j < nsweep; j++)
            fprintf(tab, " %d", (int)sweep[j]);
        fprintf(tab, " (prefill Nq = Nkv = N, decode Nkv = N)\n");
    }

    /* column widths of the text columns, from the cases */
    int w_name = 4, w_shape = 5, w_dt = 8;
    for (size_t k = 0; k < ncases; k++) {
        char shape[64], dt[24];
        bench_case_shape(&cases[k], shape, sizeof shape);
        bench_case_dtypes(&cases[k], dt, sizeof dt);
        const int a = (int)strlen(cases[k].name), b = (int)strlen(shape), d = (int)strlen(dt);
        w_name = a > w_name ? a : w_name;
        w_shape = b > w_shape ? b : w_shape;
        w_dt = d > w_dt ? d : w_dt;
    }
    fprintf(tab, "\n%-*s  %-*s  %-*s %10s %10s %10s %13s %6s %12s %9s %13s %9s%s\n", w_name, "case", w_shape, "shape",
            w_dt, "q/kv/out", "median ms", "p10 ms", "p90 ms", "rate", "%ceil", "max rel err ", "min cos", "rows",
            "plan MiB", on_gpu ? "  dev MiB" : "");

    static bench_result res[MAX_CASES];
    static int over[MAX_CASES], in_llc_of[MAX_CASES];
    int n_over = 0, in_llc_any = 0;
    for (size_t k = 0; k < ncases; k++) {
        const bench_case *c = &cases[k];
        bench_result *r = &res[k];
        if (bench_run_case(c, &o, ceiling ? &ceil : NULL, r, err, sizeof err)) {
            fflush(tab);
            fprintf(stderr, "edgebench: %s\n", err);
            return 1;
        }
        char shape[64], dt[24], rate[32], pct[12], e[16], rows[24], cs[16];
        bench_case_shape(c, shape, sizeof shape);
        bench_case_dtypes(c, dt, sizeof dt);
        if (bench_rated_flops(c))
            fmt_rate(rate, sizeof rate, r->rate, unit_pf, "FLOP/s");
        else
            fmt_rate(rate, sizeof rate, r->rate, unit_dec, "B/s");
        const int in_llc = !on_gpu && !bench_rated_flops(c) && llc && r->work < (double)llc;
        in_llc_of[k] = in_llc;
        in_llc_any |= in_llc && r->pct_ceiling >= 0.0;
        if (r->pct_ceiling >= 0.0)
            snprintf(pct, sizeof pct, "%.0f%%%s", r->pct_ceiling, in_llc ? "*" : "");
        else
            snprintf(pct, sizeof pct, "-");
        char mark = ' ';
        if (o.check_ref) {
            snprintf(e, sizeof e, "%.1e", r->max_rel_err);
            snprintf(cs, sizeof cs, "%.6f", r->min_cos);
            snprintf(rows, sizeof rows, "%lld/%lld", (long long)r->rows_checked, (long long)r->rows_total);
            if (!(r->max_rel_err <= bench_error_bound(c))) { /* NaN counts as over */
                over[k] = 1;
                n_over++;
                mark = '!';
            }
        } else {
            snprintf(e, sizeof e, "-");
            snprintf(cs, sizeof cs, "-");
            snprintf(rows, sizeof rows, "-");
        }
        char devmib[24] = "";
        if (on_gpu)
            snprintf(devmib, sizeof devmib, " %8.1f", (double)r->plan_device_bytes / (1u << 20));
        fprintf(tab, "%-*s  %-*s  %-*s %10.4f %10.4f %10.4f %13s %6s %11s%c %9s %13s %9.1f%s\n", w_name, c->name,
                w_shape, shape, w_dt, dt, r->median_ms, r->p10_ms, r->p90_ms, rate, pct, e, mark, cs, rows,
                (double)r->plan_host_bytes / (1u << 20), devmib);
        fflush(tab);
    }

    if (in_llc_any)
        fprintf(tab, "* K/V fit in the %zu MiB last-level cache: they may be read from it rather than from memory, "
                     "so the share of the memory bandwidth can pass 100%%\n",
                llc >> 20);
    if (n_over)
        fprintf(tab, "! error above its bound: 1e-5 when q, K/V and out are f32, 2e-3 with f16 among them, 1.6e-2 "
                     "with bf16, 1.5e-2 over a q8 cache, 0.15 over q4, 1e-3 at least for top-k decode\n");
    /* the closing line: cases, bounds, total time */
    const double total_s = bench_now_s() - t_start;
    fprintf(tab, "\n%zu case%s, ", ncases, ncases == 1 ? "" : "s");
    if (!o.check_ref) {
        fprintf(tab, "errors not checked (--no-ref)");
    } else if (!n_over) {
        fprintf(tab, "all within their error bounds");
    } else {
        fprintf(tab, "%d over their error bound:", n_over);
        int shown = 0;
        for (size_t k = 0; k < ncases && shown < 8; k++) {
            if (!over[k])
                continue;
            if (nsweep > 0)
                fprintf(tab, "%s %s@%d", shown ? "," : "", cases[k].name, (int)cases[k].Nkv);
            else
                fprintf(tab, "%s %s", shown ? "," : "", cases[k].name);
            shown++;
        }
        if (n_over > shown)
            fprintf(tab, " and %d more", n_over - shown);
    }
    fprintf(tab, ", total %.1f s\n", total_s);
    fflush(tab);

    if (json_path) {
        FILE *f = json_stdout ? stdout : fopen(json_path, "w");
        if (!f) {
            fprintf(stderr, "edgebench: cannot write %s\n", json_path);
            return 1;
        }
        fprintf(f, "{\n  \"format\": 2,\n  \"tool\": \"edgebench\",\n  \"version\": ");
        json_str(f, edgeattn_version());
        fprintf(f, ",\n  \"backend\": {\"name\": ");
        json_str(f, info.backend_name);
        fprintf(f, ", \"tier\": ");
        json_str(f, info.tier);
        fprintf(f, ", \"device\": ");
        json_str(f, info.device);
        fprintf(f, ", \"cores\": %d, \"threads\": %d, \"cpu_features\": %u, \"cpu_features_used\": %u, "
                   "\"cpu_disable_mask\": %u},\n",
                (int)info.cores, (int)info.threads, (unsigned)info.cpu_features, (unsigned)info.cpu_features_used,
                (unsigned)o.cpu_disable_mask);
        fprintf(f, "  \"options\": {\"reps\": %d, \"warmup\": %d, \"seed\": %llu, \"quick\": %s, \"ref_budget\": ",
                o.reps, o.warmup, (unsigned long long)o.seed, quick ? "true" : "false");
        json_num(f, o.ref_budget);
        fprintf(f, ", \"host_tensors\": %s, \"sweep\": ", o.host_tensors ? "true" : "false");
        if (nsweep > 0) {
            for (int j = 0; j < nsweep; j++)
                fprintf(f, "%s%d", j ? ", " : "[", (int)sweep[j]);
            fprintf(f, "]");
        } else {
            fprintf(f, "null");
        }
        fprintf(f, "},\n  \"ceiling\": ");
        if (ceil.threads || ceil.gpu_copy_gbs > 0.0) {
            fprintf(f, "{\"prefill_gflops\": ");
            json_num(f, ceil_pf > 0.0 ? ceil_pf : NAN);
            fprintf(f, ", \"decode_gbs\": ");
            json_num(f, ceil_dec > 0.0 ? ceil_dec : NAN);
        }
        if (ceil.threads) {
            fprintf(f, ", \"fma_gflops\": ");
            json_num(f, ceil.fma_gflops);
            fprintf(f, ", \"fma_isa\": ");
            json_str(f, ceil.fma_isa);
            fprintf(f, ", \"fma_gflops_avx2\": ");
            json_num(f, ceil.fma_gflops_avx2);
            fprintf(f, ", \"read_gbs\": ");
            json_num(f, ceil.read_gbs);
            fprintf(f, ", \"read_bytes\": %zu, \"threads\": %d, \"llc_bytes\": %zu}", ceil.read_bytes, ceil.threads,
                    llc);
        } else if (ceil.gpu_copy_gbs > 0.0) {
            fprintf(f, ", \"gpu_copy_gbs\": ");
            json_num(f, ceil.gpu_copy_gbs);
            fprintf(f, ", \"gpu_compute_gflops\": ");
            json_num(f, ceil.gpu_compute_gflops);
            fprintf(f, ", \"gpu_compute_what\": ");
            json_str(f, ceil.gpu_compute_what);
            fprintf(f, "}");
        } else {
            fprintf(f, "null");
        }
        fprintf(f, ",\n  \"cases\": [\n");
        for (size_t k = 0; k < ncases; k++) {
            const bench_case *c = &cases[k];
            const bench_result *r = &res[k];
            char spec[256];
            bench_case_spec(c, spec, sizeof spec);
            fprintf(f, "    {\"name\": ");
            json_str(f, c->name);
            fprintf(f, ", \"spec\": ");
            json_str(f, spec);
            fprintf(f, ", \"kind\": \"%s\", \"B\": %d, \"Hq\": %d, \"Hkv\": %d, \"Nq\": %d, \"Nkv\": %d, \"D\": %d, "
                       "\"causal\": %d, \"q\": \"%s\", \"kv\": \"%s\", \"out\": \"%s\", \"n\": %d, \"tier\": ",
                    c->kind == BENCH_PREFILL ? "prefill" : "decode", (int)c->B, (int)c->Hq, (int)c->Hkv, (int)c->Nq,
                    (int)c->Nkv, (int)c->D, (int)c->causal, bench_dtype_name(c->q_dtype),
                    bench_dtype_name(c->kv_dtype), bench_dtype_name(c->out_dtype), (int)c->Nkv);
            json_str(f, r->tier);
            fprintf(f, ", \"samples\": %d, \"median_ms\": ", r->samples);
            json_num(f, r->median_ms);
            fprintf(f, ", \"p10_ms\": ");
            json_num(f, r->p10_ms);
            fprintf(f, ", \"p90_ms\": ");
            json_num(f, r->p90_ms);
            fprintf(f, ", \"min_ms\": ");
            json_num(f, r->min_ms);
            fprintf(f, bench_rated_flops(c) ? ", \"gflops\": " : ", \"gbs\": ");
            json_num(f, r->rate);
            fprintf(f, ", \"pct_ceiling\": ");
            json_num(f, r->pct_ceiling >= 0.0 ? r->pct_ceiling : NAN);
            fprintf(f, ", \"in_llc\": %s, \"max_rel_err\": ", in_llc_of[k] ? "true" : "false");
            json_num(f, r->max_rel_err >= 0.0 ? r->max_rel_err : NAN);
            fprintf(f, ", \"min_cos\": ");
            json_num(f, r->min_cos >= -1.0 ? r->min_cos : NAN);
            fprintf(f, ", \"error_bound\": ");
            json_num(f, bench_error_bound(c));
            fprintf(f, ", \"over_bound\": %s, \"rows_checked\": %lld, \"rows_total\": %lld, \"plan_host_bytes\": %zu, "
                       "\"plan_kv_cache_bytes\": %zu, \"plan_device_bytes\": %zu, \"batched\": %d}%s\n",
                    over[k] ? "true" : "false", (long long)r->rows_checked, (long long)r->rows_total,
                    r->plan_host_bytes, r->plan_kv_bytes, r->plan_device_bytes, r->batched, k + 1 < ncases ? "," : "");
        }
        fprintf(f, "  ],\n  \"summary\": {\"cases\": %zu, \"checked\": %s, \"over_bound\": [", ncases,
                o.check_ref ? "true" : "false");
        for (size_t k = 0, shown = 0; k < ncases; k++) {
            if (!over[k])
                continue;
            char label[64];
            if (nsweep > 0)
                snprintf(label, sizeof label, "%.39s@%d", cases[k].name, (int)cases[k].Nkv);
            else
                snprintf(label, sizeof label, "%.39s", cases[k].name);
            fprintf(f, "%s", shown++ ? ", " : "");
            json_str(f, label);
        }
        fprintf(f, "], \"total_s\": ");
        json_num(f, bench_now_s() - t_start);
        fprintf(f, "}\n}\n");
        if (!json_stdout && fclose(f) != 0) {
            fprintf(stderr, "edgebench: cannot write %s\n", json_path);
            return 1;
        }
    }
    if (n_over && check) {
        fprintf(stderr, "edgebench: --check: %d error%s above the bound (f32 1e-5, f16 2e-3, bf16 1.6e-2)\n", n_over,
                n_over == 1 ? " is" : "s are");
        return 2;
    }
    return 0;
}
