// Standalone development harness for the edgeattn CUDA kernels (not part of the library).
// Loads the kernels from a cubin/fatbin by the names in ea_cu_kernel_table() (driver API, as the host
// backend does), plans every call with cuda/launch.c, checks against a double-precision CPU reference
// on fresh random inputs with NaN-canaried outputs, and times prefill/decode shapes.
//
//   nvcc -std=c++17 -O3 -arch=sm_90 -cubin -o /tmp/k.cubin cuda/kernels_all.cu
//   nvcc -std=c++17 -O3 -arch=sm_90 -I. -o /tmp/harness cuda/dev/harness.cu cuda/launch.c -lcuda
//   /tmp/harness /tmp/k.cubin [check|bench|all|small|dec|one]
// dec: the fused split-merge decode checks (every split call twice, counters checked zero) + decode timings
// (fused vs split + combine). The workspace's counter area is zeroed once after allocation, as the host does.
#include <cuda.h>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <string>
#include <vector>

extern "C" {
#include "cuda/kernels.h"
size_t ea_cu_split_counters_offset(int32_t, int32_t, int32_t, int32_t, int32_t);
size_t ea_cu_split_counters_bytes(int32_t, int32_t, int32_t, int32_t, int32_t);
}

#define CK(x)                                                                                                    \
    do {                                                                                                         \
        cudaError_t e_ = (x);                                                                                    \
        if (e_ != cudaSuccess) {                                                                                 \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));                   \
            exit(2);                                                                                             \
        }                                                                                                        \
    } while (0)
#define CU(x)                                                                                                    \
    do {                                                                                                         \
        CUresult r_ = (x);                                                                                       \
        if (r_ != CUDA_SUCCESS) {                                                                                \
            const char *s_ = 0;                                                                                  \
            cuGetErrorString(r_, &s_);                                                                           \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, s_ ? s_ : "?");                            \
            exit(2);                                                                                             \
        }                                                                                                        \
    } while (0)

static std::vector<CUfunction> g_fn;
static ea_cu_device g_dev;
static uint64_t g_ws;
static size_t g_ws_bytes;
static size_t g_cnt_off, g_cnt_bytes; // counter area of the workspace: zeroed once, must stay zero
static int g_fail = 0;

// Extra prefill variants (cuda/dev/variants.cu), launched in place of the planned prefill kernel.
struct Variant { const char *name; int D, bm, nt, bn, st, m16; CUfunction fn; };
static Variant g_var[] = {
    {"ea_dev_pf_d128_early", 128, 128, 128, 64, 2, 8, 0},
    {"ea_dev_pf_d64_late", 64, 128, 128, 64, 2, 8, 0},
    {"ea_dev_pf_d128_mt2_bn32_st3", 128, 128, 128, 32, 3, 8, 0},
    {"ea_dev_pf_d64_bn128", 64, 128, 128, 128, 2, 8, 0},
};
static Variant *g_ovr = nullptr;
// Decode variants (cuda/dev/variants.cu): with g_dec_ovr, launched in place of the planned fused D128 decode.
struct DVariant { const char *name, *replaces; CUfunction fn; };
static DVariant g_dvar[] = {
    {"ea_dev_dc_f16_d128_m2", "ea_decode_mma_f16_d128", 0},
    {"ea_dev_dc_bf16_d128_m2", "ea_decode_mma_bf16_d128", 0},
};
static bool g_dec_ovr = false;

// ------------------------------------------------------------------ host conversions
static uint16_t f2h(float f) {
    __half h = __float2half_rn(f);
    return *(uint16_t *)&h;
}
static float h2f(uint16_t u) { return __half2float(*(__half *)&u); }
static uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float bf2f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static int dsize(int dt) { return dt == EA_CU_F32 ? 4 : 2; }
static const char *dname(int dt) { return dt == EA_CU_F32 ? "f32" : dt == EA_CU_F16 ? "f16" : "bf16"; }

static uint64_t g_rng = 0x1234567;
static double urand() {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) * (1.0 / 9007199254740992.0);
}

// A host tensor: values (as rounded to dtype) in double + raw bytes, strided.
struct HT {
    int dt = EA_CU_F32;
    int64_t sb = 0, sh = 0, sn = 0, elems = 0;
    std::vector<uint8_t> raw;
    std::vector<double> val;
    uint64_t dptr = 0;
    void alloc(int dtype, int64_t n) {
        dt = dtype;
        elems = n;
        raw.assign((size_t)n * dsize(dt), 0);
        val.assign((size_t)n, 0.0);
    }
    void set(int64_t i, float f) {
        if (dt == EA_CU_F32) { memcpy(&raw[i * 4], &f, 4); val[i] = f; }
        else if (dt == EA_CU_F16) { uint16_t h = f2h(f); memcpy(&raw[i * 2], &h, 2); val[i] = h2f(h); }
        else { uint16_t h = f2bf(f); memcpy(&raw[i * 2], &h, 2); val[i] = bf2f(h); }
    }
    double get_dev(int64_t i) const { // from raw (after download)
        if (dt == EA_CU_F32) { float f; memcpy(&f, &raw[i * 4], 4); return f; }
        uint16_t h; memcpy(&h, &raw[i * 2], 2);
        return dt == EA_CU_F16 ? h2f(h) : bf2f(h);
    }
    void upload() {
        if (!dptr) CK(cudaMalloc((void **)&dptr, raw.size() + 256));
        CK(cudaMemcpy((void *)dptr, raw.data(), raw.size(), cudaMemcpyHostToDevice));
    }
    void download() { CK(cudaMemcpy(raw.data(), (void *)dptr, raw.size(), cudaMemcpyDeviceToHost)); }
    void canary() { CK(cudaMemset((void *)dptr, 0xff, raw.size())); } // NaN in every dtype
    void free_() { if (dptr) cudaFree((void *)dptr); dptr = 0; }
    ea_cu_tensor desc() const {
        ea_cu_tensor t;
        memset(&t, 0, sizeof t);
        t.ptr = dptr; t.sb = sb; t.sh = sh; t.sn = sn; t.dtype = dt;
        return t;
    }
};

struct Case {
    int B = 1, Hq = 1, Hkv = 1, Nq = 1, Nkv = 1, D = 64;
    int qdt = EA_CU_F16, kvdt = EA_CU_F16, odt = EA_CU_F16;
    int causal = 0, wl = -1, wr = -1;
    float softcap = 0.f;
    int bias = 0;       // 0 none, 1 full, 2 broadcast over B and H
    int lse = 1;
    int seq = 0;        // per-sequence kv_len / ring via seq array
    int ring = 0;       // ring_cap > 0: ring cache of Nkv slots
    int layout = 0;     // 0 BHND contiguous, 1 BNHD (+pad) strided
    int max_check_rows = 1 << 30;
};

static void launch(const ea_cu_launch &l, void *args) {
    void *params[] = {args};
    CU(cuLaunchKernel(l.kernel <= -10 ? g_dvar[-10 - l.kernel].fn : l.kernel < 0 ? g_ovr->fn : g_fn[l.kernel], l.grid[0], l.grid[1], l.grid[2], l.block[0], l.block[1], l.block[2], l.smem,
                      0, params, nullptr));
}

static const char *kname(int k) {
    size_t n;
    if (k <= -10) return g_dvar[-10 - k].name;
    if (k < 0) return g_ovr->name;
    return ea_cu_kernel_table(&n)[k].name;
}

struct Built {
    HT q, k, v, out, bias, lse;
    std::vector<ea_cu_seq> seqs;
    uint64_t dseq = 0;
    ea_cu_attn_args a;
    ea_cu_launch l[2];
    int nl = 0;
};

static void make_tensor(HT &t, int dt, int B, int H, int N, int D, int layout) {
    if (layout == 0) {
        t.sn = D; t.sh = (int64_t)N * D; t.sb = (int64_t)H * N * D;
        t.alloc(dt, (int64_t)B * H * N * D);
    } else {
        int64_t rowpad = (int64_t)H * D + 8;
        t.sh = D; t.sn = rowpad; t.sb = rowpad * N;
        t.alloc(dt, (int64_t)B * N * rowpad);
    }
}

static void build(const Case &c, Built &w, bool fill) {
    make_tensor(w.q, c.qdt, c.B, c.Hq, c.Nq, c.D, c.layout);
    make_tensor(w.k, c.kvdt, c.B, c.Hkv, c.Nkv, c.D, c.layout);
    make_tensor(w.v, c.kvdt, c.B, c.Hkv, c.Nkv, c.D, c.layout);
    make_tensor(w.out, c.odt, c.B, c.Hq, c.Nq, c.D, c.layout);
    if (fill) {
        for (int64_t i = 0; i < w.q.elems; ++i) w.q.set(i, (float)(urand() * 2 - 1));
        for (int64_t i = 0; i < w.k.elems; ++i) w.k.set(i, (float)(urand() * 2 - 1));
        for (int64_t i = 0; i < w.v.elems; ++i) w.v.set(i, (float)(urand() * 2 - 1));
    } else { // fast fill for timing: pattern of small values (never zeros)
        for (HT *t : {&w.q, &w.k, &w.v})
            for (int64_t i = 0; i < t->elems; ++i) {
                g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
                float f = (float)((g_rng >> 40) & 0xffff) / 32768.f - 1.f;
                if (t->dt == EA_CU_F32) memcpy(&t->raw[i * 4], &f, 4);
                else { uint16_t h = t->dt == EA_CU_F16 ? f2h(f) : f2bf(f); memcpy(&t->raw[i * 2], &h, 2); }
            }
    }
    w.q.upload(); w.k.upload(); w.v.upload(); w.out.upload();
    memset(&w.a, 0, sizeof w.a);
    w.a.q = w.q.desc(); w.a.k = w.k.desc(); w.a.v = w.v.desc(); w.a.out = w.out.desc();
    if (c.bias) {
        int bb = c.bias == 2 ? 1 : c.B, bh = c.bias == 2 ? 1 : c.Hq;
        w.bias.alloc(EA_CU_F32, (int64_t)bb * bh * c.Nq * c.Nkv);
        w.bias.sn = c.Nkv; w.bias.sh = c.bias == 2 ? 0 : (int64_t)c.Nq * c.Nkv;
        w.bias.sb = c.bias == 2 ? 0 : (int64_t)c.Hq * c.Nq * c.Nkv;
        for (int64_t i = 0; i < w.bias.elems; ++i) w.bias.set(i, (float)(urand() * 4 - 2));
        w.bias.upload();
        w.a.bias = w.bias.desc();
    }
    if (c.lse) {
        w.lse.alloc(EA_CU_F32, (int64_t)c.B * c.Hq * c.Nq);
        w.lse.sn = 1; w.lse.sh = c.Nq; w.lse.sb = (int64_t)c.Hq * c.Nq;
        w.lse.upload();
        w.a.lse = w.lse.desc();
    }
    w.seqs.resize(c.B);
    for (int b = 0; b < c.B; ++b) {
        ea_cu_seq s;
        s.kv_len = c.Nkv;
        s.slot0 = 0;
        s.key_pos0 = 0;
        s.kv_b = b;
        s.q_len = c.Nq;
        if (c.seq) {
            // sequences of varying length, some empty
            s.kv_len = b == 0 ? c.Nkv : (int)(urand() * (c.Nkv + 1));
            if (b == 2) s.kv_len = 0;
        }
        if (c.ring) {
            s.key_pos0 = (int64_t)(urand() * 100000);
            s.slot0 = (int)(s.key_pos0 % c.Nkv);
        }
        w.seqs[b] = s;
    }
    if (c.seq || c.ring) {
        CK(cudaMalloc((void **)&w.dseq, sizeof(ea_cu_seq) * c.B));
        CK(cudaMemcpy((void *)w.dseq, w.seqs.data(), sizeof(ea_cu_seq) * c.B, cudaMemcpyHostToDevice));
    }
    w.a.seq = w.dseq;
    w.a.B = c.B; w.a.Hq = c.Hq; w.a.Hkv = c.Hkv; w.a.Nq = c.Nq; w.a.Nkv = c.Nkv; w.a.D = c.D;
    w.a.group = c.Hq / c.Hkv;
    w.a.ring_cap = c.ring ? c.Nkv : 0;
    w.a.scale = 1.f / sqrtf((float)c.D);
    w.a.softcap = c.softcap;
    w.a.causal = c.causal;
    w.a.window_left = c.wl;
    w.a.window_right = c.wr;
    w.nl = ea_cu_plan_attention(&g_dev, &w.a, g_ws, g_ws_bytes, w.l);
    if (g_dec_ovr && w.nl == 1 && w.a.ws_cnt)
        for (size_t v = 0; v < sizeof g_dvar / sizeof g_dvar[0]; ++v)
            if (g_dvar[v].fn && !strcmp(kname(w.l[0].kernel), g_dvar[v].replaces)) { w.l[0].kernel = -10 - (int)v; break; }
    if (g_ovr && w.nl == 1 && ((w.l[0].kernel >= 1 && w.l[0].kernel <= 10) || (w.l[0].kernel >= 25 && w.l[0].kernel <= 38)) && c.D == g_ovr->D) {
        const int bm = g_ovr->bm, grp = c.Hq / c.Hkv;
        w.l[0].kernel = -1;
        w.l[0].grid[0] = c.Nq >= bm ? (unsigned)((c.Nq + bm - 1) / bm * grp) : (unsigned)((grp * c.Nq + bm - 1) / bm);
        w.l[0].block[0] = g_ovr->nt;
        w.l[0].smem = (g_ovr->m16 * 16 * (c.D + 8) + 2 * g_ovr->st * g_ovr->bn * (c.D + 8)) * 2;
    }
}

static void release(Built &w) {
    w.q.free_(); w.k.free_(); w.v.free_(); w.out.free_(); w.bias.free_(); w.lse.free_();
    if (w.dseq) cudaFree((void *)w.dseq);
    w.dseq = 0;
}

static void run(Built &w) {
    for (int i = 0; i < w.nl; ++i) launch(w.l[i], &w.a);
}

// Reference for one row; returns lse; fills o[D].
static double ref_row(const Case &c, const Built &w, int b, int hq, int i, std::vector<double> &o) {
    const int hkv = hq / (c.Hq / c.Hkv);
    const ea_cu_seq &s = w.seqs[b];
    int kvl = s.kv_len;
    const int64_t off = (int64_t)kvl - c.Nq;
    std::vector<double> sc(kvl > 0 ? kvl : 1);
    std::vector<int> slots(kvl > 0 ? kvl : 1);
    double mx = -INFINITY;
    const int64_t qb = b * w.q.sb + hq * w.q.sh + (int64_t)i * w.q.sn;
    for (int j = 0; j < kvl; ++j) {
        const int64_t d = (int64_t)j - i - off;
        bool vis = !(c.causal && d > 0) && !(c.wl >= 0 && d < -c.wl) && !(c.wr >= 0 && d > c.wr);
        if (!vis) { sc[j] = -INFINITY; continue; }
        const int slot = c.ring ? (int)((s.slot0 + (int64_t)j) % c.Nkv) : j;
        slots[j] = slot;
        const int64_t kb = b * w.k.sb + hkv * w.k.sh + (int64_t)slot * w.k.sn;
        double acc = 0;
        for (int e = 0; e < c.D; ++e) acc += w.q.val[qb + e] * w.k.val[kb + e];
        acc *= (double)w.a.scale;
        if (c.softcap > 0) acc = c.softcap * tanh(acc / c.softcap);
        if (c.bias) acc += w.bias.val[b * w.bias.sb + hq * w.bias.sh + (int64_t)i * w.bias.sn + j];
        sc[j] = acc;
        mx = std::max(mx, acc);
    }
    o.assign(c.D, 0.0);
    if (mx == -INFINITY) return -INFINITY;
    double l = 0;
    for (int j = 0; j < kvl; ++j) {
        if (sc[j] == -INFINITY) continue;
        const double p = exp(sc[j] - mx);
        l += p;
        const int64_t vb = b * w.v.sb + hkv * w.v.sh + (int64_t)slots[j] * w.v.sn;
        for (int e = 0; e < c.D; ++e) o[e] += p * w.v.val[vb + e];
    }
    for (int e = 0; e < c.D; ++e) o[e] /= l;
    return mx + log(l);
}

static double tol_for(const Case &c) {
    if (c.kvdt == EA_CU_BF16 || c.qdt == EA_CU_BF16 || c.odt == EA_CU_BF16) return 1e-2;
    if (c.kvdt == EA_CU_F16 || c.qdt == EA_CU_F16 || c.odt == EA_CU_F16) return 2e-3;
    return 1e-5;
}

static std::string describe(const Case &c) {
    char buf[256];
    snprintf(buf, sizeof buf, "B%d Hq%d Hkv%d Nq%d Nkv%d D%d q%s kv%s o%s%s%s%s%s%s%s%s%s", c.B, c.Hq, c.Hkv, c.Nq,
             c.Nkv, c.D, dname(c.qdt), dname(c.kvdt), dname(c.odt), c.causal ? " causal" : "",
             c.wl >= 0 || c.wr >= 0 ? " win" : "", c.softcap > 0 ? " cap" : "", c.bias ? (c.bias == 2 ? " bias-bc" : " bias") : "",
             c.seq ? " seq" : "", c.ring ? " ring" : "", c.layout ? " strided" : "", c.lse ? "" : " nolse");
    if (c.wl >= 0 || c.wr >= 0) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "(%d,%d)", c.wl, c.wr);
    return buf;
}

static void check(const Case &c) {
    Built w;
    build(c, w, true);
    if (w.nl == 0) { printf("UNSUPPORTED %s\n", describe(c).c_str()); g_fail++; release(w); return; }
    // split calls run twice (same inputs, fresh canaries): the fused merge's counters must be reset
    const int reps = w.a.num_splits > 1 ? 2 : 1;
    for (int rep = 0; rep < reps; ++rep) {
    w.out.canary();
    if (c.lse) w.lse.canary();
    if (w.a.num_splits > 1) { // NaN into the partials, never into the counters
        CK(cudaMemset((void *)g_ws, 0xff, g_cnt_off));
        CK(cudaMemset((void *)(g_ws + g_cnt_off + g_cnt_bytes), 0xff, g_ws_bytes - g_cnt_off - g_cnt_bytes));
    }
    run(w);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    w.out.download();
    if (c.lse) w.lse.download();
    int64_t cnt_bad = 0;
    if (g_cnt_bytes) {
        std::vector<uint32_t> cnt(g_cnt_bytes / 4);
        CK(cudaMemcpy(cnt.data(), (void *)(g_ws + g_cnt_off), g_cnt_bytes, cudaMemcpyDeviceToHost));
        for (uint32_t x : cnt) cnt_bad += x != 0;
    }
    // every element written (finite)
    int64_t unwritten = 0;
    for (int b = 0; b < c.B; ++b)
        for (int h = 0; h < c.Hq; ++h)
            for (int i = 0; i < c.Nq; ++i) {
                const int64_t ob = b * w.out.sb + h * w.out.sh + (int64_t)i * w.out.sn;
                for (int e = 0; e < c.D; ++e)
                    if (!std::isfinite(w.out.get_dev(ob + e))) unwritten++;
                if (c.lse) {
                    double l = w.lse.get_dev(b * w.lse.sb + h * w.lse.sh + i);
                    if (std::isnan(l)) unwritten++;
                }
            }
    // reference on all rows or a sample
    const int64_t rows = (int64_t)c.B * c.Hq * c.Nq;
    const int64_t want = std::min<int64_t>(rows, c.max_check_rows);
    double maxerr = 0, maxref = 0, lse_err = 0;
    int lse_bad = 0;
    std::vector<double> o;
    for (int64_t r = 0; r < want; ++r) {
        int64_t row = want == rows ? r : (r < 8 ? rows - 1 - r : (int64_t)(urand() * rows));
        const int i = (int)(row % c.Nq), h = (int)((row / c.Nq) % c.Hq), b = (int)(row / ((int64_t)c.Nq * c.Hq));
        const double lr = ref_row(c, w, b, h, i, o);
        const int64_t ob = b * w.out.sb + h * w.out.sh + (int64_t)i * w.out.sn;
        for (int e = 0; e < c.D; ++e) {
            maxerr = std::max(maxerr, fabs(w.out.get_dev(ob + e) - o[e]));
            maxref = std::max(maxref, fabs(o[e]));
        }
        if (c.lse) {
            const double lg = w.lse.get_dev(b * w.lse.sb + h * w.lse.sh + i);
            if (std::isinf(lr) || std::isinf(lg)) { if (!(std::isinf(lr) && std::isinf(lg) && lr < 0 && lg < 0)) lse_bad++; }
            else lse_err = std::max(lse_err, fabs(lg - lr) / std::max(1.0, fabs(lr)));
        }
    }
    const double rel = maxref > 0 ? maxerr / maxref : maxerr;
    const bool ok = unwritten == 0 && rel < tol_for(c) && lse_bad == 0 && lse_err < tol_for(c) && cnt_bad == 0;
    if (!ok) g_fail++;
    printf("%s %-80s %-24s splits %3d%s%s rel %.2e lse %.1e%s%s%s\n", ok ? "ok  " : "FAIL", describe(c).c_str(),
           kname(w.l[0].kernel), w.a.num_splits, w.a.num_splits > 1 ? (w.a.ws_cnt ? " fused" : " +comb") : "",
           reps > 1 ? (rep ? " run2" : " run1") : "", rel, lse_err,
           unwritten ? " UNWRITTEN" : "", lse_bad ? " LSE-INF" : "", cnt_bad ? " COUNTERS-NOT-ZERO" : "");
    fflush(stdout);
    }
    release(w);
}

static float time_it(Built &w, int reps) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < 3; ++i) run(w);
    CK(cudaDeviceSynchronize());
    std::vector<float> ts;
    for (int r = 0; r < reps; ++r) {
        CK(cudaEventRecord(e0));
        run(w);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        ts.push_back(ms);
    }
    CK(cudaGetLastError());
    std::sort(ts.begin(), ts.end());
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return ts[ts.size() / 2];
}

static void bench_prefill(int B, int H, int N, int D, int causal, int dt) {
    Case c;
    c.B = B; c.Hq = H; c.Hkv = H; c.Nq = N; c.Nkv = N; c.D = D; c.causal = causal;
    c.qdt = c.kvdt = c.odt = dt; c.lse = 1;
    Built w;
    build(c, w, false);
    float ms = time_it(w, 20);
    double flops = 4.0 * B * H * (double)N * N * D / (causal ? 2 : 1);
    printf("bench prefill %-5s B%d H%d N%-6d D%d %-6s %-24s %9.3f ms %7.1f TFLOP/s\n", dname(dt), B, H, N, D,
           causal ? "causal" : "full", kname(w.l[0].kernel), ms, flops / ms / 1e9);
    fflush(stdout);
    release(w);
}

static void bench_decode(int B, int Hq, int Hkv, int N, int D, int dt, int waves = 1) {
    Case c;
    c.B = B; c.Hq = Hq; c.Hkv = Hkv; c.Nq = 1; c.Nkv = N; c.D = D;
    c.qdt = c.kvdt = c.odt = dt; c.lse = 0;
    Built w;
    const int sm = g_dev.sm_count;
    g_dev.sm_count = sm * waves; // plan for more waves (experiment)
    build(c, w, false);
    g_dev.sm_count = sm;
    float ms = time_it(w, 50);
    int nl = w.nl;
    w.nl = 1;
    float ms1 = time_it(w, 50); // split kernel alone
    w.nl = nl;
    double bytes = 2.0 * B * Hkv * (double)N * D * dsize(dt);
    if (nl == 1 && w.a.num_splits > 1 && w.a.ws_cnt && w.l[0].kernel >= 0) { // the same split kernel + ea_attn_combine (before fusing)
        size_t nk;
        const ea_cu_kernel_desc *t = ea_cu_kernel_table(&nk);
        int kc = -1;
        for (size_t k = 0; k < nk; ++k)
            if (!strcmp(t[k].name, "ea_attn_combine")) kc = (int)k;
        const uint64_t cnt = w.a.ws_cnt;
        w.a.ws_cnt = 0;
        w.l[1] = w.l[0];
        w.l[1].kernel = kc;
        w.l[1].grid[0] = (unsigned)((int64_t)B * Hq * 1); w.l[1].grid[1] = w.l[1].grid[2] = 1;
        w.l[1].block[0] = 128; w.l[1].smem = 0;
        w.nl = 2;
        const float ms2 = time_it(w, 50);
        w.nl = 1;
        const float ms3 = time_it(w, 50);
        w.nl = 1;
        w.a.ws_cnt = cnt;
        printf("bench decode  %-5s B%d N%-7d unfused: split + combine %9.4f ms %7.0f GB/s, split kernel alone %.4f ms %7.0f GB/s\n",
               dname(dt), B, N, ms2, bytes / ms2 / 1e6, ms3, bytes / ms3 / 1e6);
    }
    printf("bench decode  %-5s B%d Hq%d Hkv%d N%-7d D%d %-24s splits %3d x %6d %d launch %9.4f ms %7.0f GB/s (first kernel alone %.4f ms)\n",
           dname(dt), B, Hq, Hkv, N, D, kname(w.l[0].kernel), w.a.num_splits, w.a.split_len, nl, ms, bytes / ms / 1e6, ms1);
    fflush(stdout);
    release(w);
}

static void check_utils() {
    // kv_write: B2 H3 N5 D64, f32 src -> f16 cache, ring 7
    const int B = 2, H = 3, N = 5, D = 64, RC = 7, CH = 4;
    HT ks, vs;
    ks.alloc(EA_CU_F32, (int64_t)B * H * N * D);
    vs.alloc(EA_CU_F32, (int64_t)B * H * N * D);
    ks.sn = D; ks.sh = N * D; ks.sb = H * N * D;
    vs.sn = D; vs.sh = N * D; vs.sb = H * N * D;
    for (int64_t i = 0; i < ks.elems; ++i) { ks.set(i, (float)urand()); vs.set(i, (float)urand()); }
    ks.upload(); vs.upload();
    HT kc, vc;
    kc.alloc(EA_CU_F16, (int64_t)B * CH * RC * D);
    vc.alloc(EA_CU_F16, (int64_t)B * CH * RC * D);
    kc.upload(); vc.upload();
    CK(cudaMemset((void *)kc.dptr, 0, kc.raw.size()));
    CK(cudaMemset((void *)vc.dptr, 0, vc.raw.size()));
    int rows[4] = {1, 5, 0, 3}, slot0[2] = {5, 2};
    ea_cu_kv_row kr[2];
    for (int b = 0; b < 2; ++b) {
        kr[b].pos0 = slot0[b];
        kr[b].r0 = rows[2 * b];
        kr[b].n = rows[2 * b + 1];
        kr[b].slot0 = slot0[b];
        kr[b].seq = b;
    }
    ea_cu_kv_row *drows;
    CK(cudaMalloc((void **)&drows, sizeof kr));
    CK(cudaMemcpy(drows, kr, sizeof kr, cudaMemcpyHostToDevice));
    ea_cu_kv_write_args a;
    memset(&a, 0, sizeof a);
    a.k_src = ks.desc(); a.v_src = vs.desc(); a.k_dst = kc.dptr; a.v_dst = vc.dptr;
    a.rows = (uint64_t)drows;
    a.B = B; a.H = H; a.N = N; a.D = D; a.cache_heads = CH; a.ring_cap = RC; a.cache_dtype = EA_CU_F16;
    ea_cu_launch l;
    ea_cu_plan_kv_write(&g_dev, &a, &l);
    launch(l, &a);
    CK(cudaDeviceSynchronize());
    kc.download(); vc.download();
    int bad = 0;
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < CH; ++h)
            for (int s = 0; s < RC; ++s)
                for (int d = 0; d < D; ++d) {
                    double ek = 0, ev = 0;
                    if (h < H)
                        for (int r = rows[2 * b]; r < rows[2 * b + 1]; ++r)
                            if ((slot0[b] + r) % RC == s) {
                                ek = ks.val[b * ks.sb + h * ks.sh + r * ks.sn + d];
                                ev = vs.val[b * vs.sb + h * vs.sh + r * vs.sn + d];
                            }
                    const int64_t idx = (((int64_t)b * CH + h) * RC + s) * D + d;
                    if (fabs(kc.get_dev(idx) - ek) > 1e-3 || fabs(vc.get_dev(idx) - ev) > 1e-3) bad++;
                }
    printf("%s kv_write f32->f16 ring (%d bad)\n", bad ? "FAIL" : "ok  ", bad);
    if (bad) g_fail++;
    // finite
    HT t;
    t.alloc(EA_CU_F16, 4 * 1000 * 64);
    t.sn = 64; t.sh = 1000 * 64; t.sb = 4 * 1000 * 64;
    for (int64_t i = 0; i < t.elems; ++i) t.set(i, (float)urand());
    uint32_t *flag;
    CK(cudaMalloc((void **)&flag, 4));
    int fin_bad = 0;
    for (int trial = 0; trial < 4; ++trial) {
        uint16_t special[4] = {0, 0x7e00, 0x7c00, 0xfc00}; // none, NaN, +Inf, -Inf
        HT u = t;
        u.dptr = 0;
        if (trial) memcpy(&u.raw[(int64_t)(urand() * u.elems) * 2], &special[trial], 2);
        u.upload();
        for (int ok_neg = 0; ok_neg < 2; ++ok_neg) {
            CK(cudaMemset(flag, 0, 4));
            ea_cu_finite_args f;
            memset(&f, 0, sizeof f);
            f.t = u.desc(); f.B = 1; f.H = 4; f.N = 1000; f.D = 64; f.flag = (uint64_t)flag; f.neg_inf_ok = ok_neg;
            ea_cu_plan_finite(&g_dev, &f, &l);
            launch(l, &f);
            uint32_t got;
            CK(cudaMemcpy(&got, flag, 4, cudaMemcpyDeviceToHost));
            uint32_t want = trial == 0 ? 0 : (trial == 3 ? !ok_neg : 1);
            if (got != want) fin_bad++;
        }
        u.free_();
    }
    printf("%s finite (%d bad)\n", fin_bad ? "FAIL" : "ok  ", fin_bad);
    if (fin_bad) g_fail++;
    ks.free_(); vs.free_(); kc.free_(); vc.free_();
    cudaFree(drows); cudaFree(flag);
}

static void bench_peak() {
    if (g_dev.cc_major < 8) return;
    ea_cu_launch l;
    int64_t flops;
    ea_cu_plan_peak(&g_dev, &l, &flops, 4096);
    float *sink;
    CK(cudaMalloc((void **)&sink, (size_t)l.grid[0] * l.block[0] / 32 * 4));
    ea_cu_peak_args a;
    memset(&a, 0, sizeof a);
    a.sink = (uint64_t)sink; a.iters = 4096;
    launch(l, &a);
    CK(cudaDeviceSynchronize());
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    std::vector<float> ts;
    for (int r = 0; r < 10; ++r) {
        cudaEventRecord(e0);
        launch(l, &a);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        ts.push_back(ms);
    }
    std::sort(ts.begin(), ts.end());
    printf("bench peak mma.sync f16 m16n8k16: %.1f TFLOP/s\n", flops / ts[5] / 1e9);
    // copy bandwidth
    size_t n = (size_t)2 << 30;
    void *x, *y;
    CK(cudaMalloc(&x, n));
    CK(cudaMalloc(&y, n));
    cudaMemset(x, 1, n);
    cudaMemcpy(y, x, n, cudaMemcpyDeviceToDevice);
    ts.clear();
    for (int r = 0; r < 7; ++r) {
        cudaEventRecord(e0);
        cudaMemcpy(y, x, n, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        ts.push_back(ms);
    }
    std::sort(ts.begin(), ts.end());
    printf("bench copy bandwidth (read+write): %.0f GB/s\n", 2.0 * n / ts[3] / 1e6);
    cudaFree(x); cudaFree(y); cudaFree(sink);
    fflush(stdout);
}

// The fused split merge: decode shapes over tile and split edges, both group sizes, B, Nq, dtypes.
static void decode_checks(bool d128_split_only = false) {
    for (int n : {1, 17, 64, 65, 1000, 4096, 131072}) {
        if (d128_split_only && n < 1000) continue;
        for (int grp : {4, 8})
            for (int B : {1, 3})
                for (int nq : {1, 2})
                    for (int dt : {EA_CU_F16, EA_CU_BF16}) {
                        Case c; c.B = B; c.Hkv = n >= 131072 ? 1 : 2; c.Hq = grp * c.Hkv; c.Nq = nq; c.Nkv = n; c.D = 128;
                        c.qdt = c.kvdt = c.odt = dt;
                        if (n >= 4096) c.max_check_rows = 12;
                        check(c);
                    }
    }
    if (d128_split_only) {
        Case c; c.B = 3; c.Hq = 32; c.Hkv = 8; c.Nq = 1; c.Nkv = 5000; c.D = 128; c.seq = 1; c.ring = 1; check(c);
        c.B = 1; c.Hq = 2; c.Hkv = 2; c.Nkv = 20000; c.seq = c.ring = 0; c.qdt = c.kvdt = c.odt = EA_CU_BF16; check(c);
        c.B = 3; c.Hq = 16; c.Hkv = 2; c.Nq = 2; c.Nkv = 3000; c.causal = 1; c.seq = 1; check(c);
        return;
    }
    // other head dims, causal with Nq > 1 and a fully masked sequence (seq: b == 2 has kv_len 0)
    for (int d : {64, 80, 96, 256}) {
        Case c; c.B = 3; c.Hq = 8; c.Hkv = 2; c.Nq = 2; c.Nkv = 3000; c.D = d; c.causal = 1; c.seq = 1; check(c);
    }
    { Case c; c.B = 3; c.Hq = 32; c.Hkv = 8; c.Nq = 1; c.Nkv = 5000; c.D = 128; c.seq = 1; c.ring = 1; check(c); }
    { Case c; c.B = 1; c.Hq = 2; c.Hkv = 2; c.Nq = 1; c.Nkv = 20000; c.D = 128; c.qdt = c.kvdt = c.odt = EA_CU_BF16; check(c); } // group 1: split groups
}

static void checks(bool small) {
    const int F16 = EA_CU_F16, BF = EA_CU_BF16, F32 = EA_CU_F32;
    std::vector<Case> cs;
    auto add = [&](Case c) { cs.push_back(c); };
    // prefill tile edges, f16 D128 / D64, full and causal
    int ns[] = {1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000};
    for (int n : ns)
        for (int causal = 0; causal < 2; ++causal) {
            Case c; c.B = 2; c.Hq = 4; c.Hkv = 2; c.Nq = n; c.Nkv = n; c.D = 128; c.causal = causal;
            add(c);
            if (small) continue;
            c.D = 64; c.kvdt = c.qdt = c.odt = BF; add(c);
        }
    if (!small) {
        // every specialised D, both dtypes, Nq != Nkv (bottom-right), GQA
        for (int d : {64, 80, 96, 128, 256})
            for (int dt : {F16, BF})
                for (int causal = 0; causal < 2; ++causal) {
                    Case c; c.B = 1; c.Hq = 6; c.Hkv = 2; c.Nq = 300; c.Nkv = 517; c.D = d; c.causal = causal;
                    c.qdt = c.kvdt = c.odt = dt; add(c);
                    c.Nq = 5; add(c); // decode-sized rows (group*Nq=15): split-KV kernel
                }
        // options on the tensor-core prefill path
        { Case c; c.B = 3; c.Hq = 8; c.Hkv = 2; c.Nq = 200; c.Nkv = 333; c.D = 128; c.causal = 1; c.seq = 1; add(c); }
        { Case c; c.B = 2; c.Hq = 4; c.Hkv = 4; c.Nq = 257; c.Nkv = 257; c.D = 64; c.wl = 50; c.wr = 10; add(c); }
        { Case c; c.B = 2; c.Hq = 4; c.Hkv = 4; c.Nq = 257; c.Nkv = 400; c.D = 64; c.causal = 1; c.wl = 100; add(c); }
        { Case c; c.B = 2; c.Hq = 4; c.Hkv = 1; c.Nq = 190; c.Nkv = 190; c.D = 96; c.softcap = 5.f; c.bias = 1; add(c); }
        { Case c; c.B = 2; c.Hq = 4; c.Hkv = 1; c.Nq = 190; c.Nkv = 250; c.D = 128; c.bias = 2; c.causal = 1; add(c); }
        { Case c; c.B = 2; c.Hq = 4; c.Hkv = 2; c.Nq = 150; c.Nkv = 150; c.D = 128; c.layout = 1; c.causal = 1; add(c); }
        { Case c; c.B = 1; c.Hq = 4; c.Hkv = 2; c.Nq = 150; c.Nkv = 150; c.D = 128; c.odt = F32; c.qdt = F32; add(c); }
        { Case c; c.B = 1; c.Hq = 4; c.Hkv = 2; c.Nq = 150; c.Nkv = 150; c.D = 128; c.odt = BF; add(c); }
        { Case c; c.B = 2; c.Hq = 8; c.Hkv = 2; c.Nq = 100; c.Nkv = 300; c.D = 128; c.ring = 1; c.seq = 1; c.causal = 1; add(c); }
        { Case c; c.B = 1; c.Hq = 2; c.Hkv = 2; c.Nq = 300; c.Nkv = 100; c.D = 64; c.causal = 1; add(c); } // kv < q: masked rows
        // decode (split-KV) with options
        for (int dt : {F16, BF}) {
            Case c; c.B = 3; c.Hq = 32; c.Hkv = 8; c.Nq = 1; c.Nkv = 5000; c.D = 128; c.qdt = c.kvdt = c.odt = dt;
            add(c);
            c.seq = 1; c.ring = 1; add(c);
            c.ring = 0; c.seq = 0; c.Nq = 4; c.causal = 1; c.wl = 2000; add(c);
            c.Nq = 2; c.causal = 0; c.wl = -1; c.softcap = 10.f; c.bias = 1; c.layout = 1; add(c);
        }
        { Case c; c.B = 1; c.Hq = 16; c.Hkv = 2; c.Nq = 8; c.Nkv = 3000; c.D = 64; c.causal = 1; add(c); } // 64 rows
        { Case c; c.B = 1; c.Hq = 4; c.Hkv = 4; c.Nq = 1; c.Nkv = 1; c.D = 128; add(c); }
        { Case c; c.B = 1; c.Hq = 4; c.Hkv = 1; c.Nq = 1; c.Nkv = 17; c.D = 80; add(c); }
        // SIMT: f32, mixed, odd D, all options
        for (int d : {16, 48, 64, 112, 256}) {
            Case c; c.B = 2; c.Hq = 4; c.Hkv = 2; c.Nq = 70; c.Nkv = 90; c.D = d; c.qdt = c.kvdt = c.odt = F32;
            c.causal = 1; add(c);
        }
        { Case c; c.B = 3; c.Hq = 4; c.Hkv = 2; c.Nq = 33; c.Nkv = 77; c.D = 64; c.qdt = F32; c.kvdt = BF; c.odt = F16;
          c.wl = 20; c.wr = 5; c.bias = 1; c.softcap = 3.f; c.seq = 1; add(c); }
        { Case c; c.B = 2; c.Hq = 8; c.Hkv = 2; c.Nq = 1; c.Nkv = 4000; c.D = 128; c.qdt = c.kvdt = c.odt = F32; add(c); }
        { Case c; c.B = 2; c.Hq = 8; c.Hkv = 2; c.Nq = 1; c.Nkv = 1000; c.D = 128; c.qdt = F32; c.kvdt = F32; c.odt = F32; c.ring = 1; c.seq = 1; add(c); }
        { Case c; c.B = 1; c.Hq = 4; c.Hkv = 4; c.Nq = 40; c.Nkv = 40; c.D = 32; c.kvdt = F16; c.qdt = F16; add(c); } // D32 f16 -> SIMT
        // long: sampled rows
        { Case c; c.B = 1; c.Hq = 2; c.Hkv = 1; c.Nq = 16384; c.Nkv = 16384; c.D = 128; c.causal = 1; c.max_check_rows = 48; add(c); }
        { Case c; c.B = 1; c.Hq = 2; c.Hkv = 2; c.Nq = 4096; c.Nkv = 4096; c.D = 128; c.max_check_rows = 48; c.qdt = c.kvdt = c.odt = BF; add(c); }
        { Case c; c.B = 1; c.Hq = 32; c.Hkv = 8; c.Nq = 1; c.Nkv = 131072; c.D = 128; c.max_check_rows = 8; add(c); }
    } else {
        { Case c; c.B = 2; c.Hq = 8; c.Hkv = 2; c.Nq = 1; c.Nkv = 700; c.D = 128; add(c); }
        { Case c; c.B = 1; c.Hq = 2; c.Hkv = 1; c.Nq = 200; c.Nkv = 230; c.D = 128; c.causal = 1; add(c); }
        { Case c; c.B = 1; c.Hq = 2; c.Hkv = 1; c.Nq = 100; c.Nkv = 100; c.D = 64; c.kvdt = c.qdt = EA_CU_BF16; add(c); }
        { Case c; c.B = 2; c.Hq = 4; c.Hkv = 2; c.Nq = 20; c.Nkv = 50; c.D = 64; c.qdt = c.kvdt = c.odt = EA_CU_F32; c.causal = 1; add(c); }
        { Case c; c.B = 3; c.Hq = 16; c.Hkv = 2; c.Nq = 2; c.Nkv = 1000; c.D = 128; c.kvdt = c.qdt = c.odt = EA_CU_BF16; c.seq = 1; add(c); }
        { Case c; c.B = 1; c.Hq = 2; c.Hkv = 2; c.Nq = 1; c.Nkv = 900; c.D = 64; add(c); }
    }
    for (auto &c : cs) check(c);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: harness kernels.cubin [check|bench|all|small] [seed]\n"); return 2; }
    const std::string mode = argc > 2 ? argv[2] : "all";
    if (argc > 3) g_rng = strtoull(argv[3], 0, 0);
    CK(cudaFree(0));
    CU(cuInit(0));
    CUmodule mod;
    CU(cuModuleLoad(&mod, argv[1]));
    size_t n;
    const ea_cu_kernel_desc *t = ea_cu_kernel_table(&n);
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    g_dev.cc_major = p.major; g_dev.cc_minor = p.minor; g_dev.sm_count = p.multiProcessorCount;
    g_dev.smem_per_block_optin = (int32_t)p.sharedMemPerBlockOptin;
    g_dev.smem_per_sm = (int32_t)p.sharedMemPerMultiprocessor;
    g_dev.l2_bytes = p.l2CacheSize;
    printf("device %s cc %d.%d sms %d smem optin %d per-sm %d seed 0x%llx\n", p.name, p.major, p.minor,
           p.multiProcessorCount, g_dev.smem_per_block_optin, g_dev.smem_per_sm, (unsigned long long)g_rng);
    g_fn.resize(n);
    for (size_t i = 0; i < n; ++i) {
        CU(cuModuleGetFunction(&g_fn[i], mod, t[i].name));
        if (t[i].max_smem > 48 * 1024)
            CU(cuFuncSetAttribute(g_fn[i], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)t[i].max_smem));
        int regs;
        cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, g_fn[i]);
        if (mode != "small") printf("  kernel %-26s regs %3d smem %6u\n", t[i].name, regs, t[i].max_smem);
    }
    for (auto &v : g_var) {
        if (mode == "small") break;
        if (cuModuleGetFunction(&v.fn, mod, v.name) != CUDA_SUCCESS) { v.fn = 0; continue; }
        CU(cuFuncSetAttribute(v.fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 160 * 1024));
        int regs, lbytes;
        cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, v.fn);
        cuFuncGetAttribute(&lbytes, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, v.fn);
        if (mode != "small") printf("  variant %-28s regs %3d local %d\n", v.name, regs, lbytes);
    }
    for (auto &v : g_dvar) {
        if (cuModuleGetFunction(&v.fn, mod, v.name) != CUDA_SUCCESS) { v.fn = 0; continue; }
        for (size_t i = 0; i < n; ++i)
            if (!strcmp(t[i].name, v.replaces) && t[i].max_smem > 48 * 1024)
                CU(cuFuncSetAttribute(v.fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)t[i].max_smem));
    }
    g_ws_bytes = ea_cu_split_workspace_bytes(16, 64, 64, 256, p.multiProcessorCount);
    g_cnt_off = ea_cu_split_counters_offset(16, 64, 64, 256, p.multiProcessorCount);
    g_cnt_bytes = ea_cu_split_counters_bytes(16, 64, 64, 256, p.multiProcessorCount);
    CK(cudaMalloc((void **)&g_ws, g_ws_bytes));
    CK(cudaMemset((void *)(g_ws + g_cnt_off), 0, g_cnt_bytes)); // once, as the host does at create
    printf("workspace %zu bytes, counters [%zu, %zu)\n", g_ws_bytes, g_cnt_off, g_cnt_off + g_cnt_bytes);
    if (mode == "check" || mode == "all" || mode == "small") {
        check_utils();
        checks(mode == "small");
        if (mode != "small") {
            // as a 99 KB part (sm_86 / sm_89) would plan them: the small-shared-memory D128 kernels
            const ea_cu_device keep = g_dev;
            g_dev.smem_per_block_optin = 101376;
            g_dev.smem_per_sm = 102400;
            for (int dt : {EA_CU_F16, EA_CU_BF16}) {
                Case c; c.B = 2; c.Hq = 4; c.Hkv = 2; c.Nq = 300; c.Nkv = 333; c.D = 128; c.causal = 1; c.qdt = c.kvdt = c.odt = dt; check(c);
                c.causal = 0; c.softcap = 4.f; c.Nq = 129; check(c);
                c.softcap = 0.f; c.Nq = 1; c.Nkv = 3000; c.Hq = 8; check(c);
            }
            g_dev = keep;
        }
        printf("checks: %d failed\n", g_fail);
    }
    if (mode == "dec") { // the fused decode: checks and timings
        decode_checks();
        printf("checks: %d failed\n", g_fail);
        bench_peak();
        bench_decode(1, 32, 8, 4096, 128, EA_CU_F16);
        bench_decode(1, 32, 8, 32768, 128, EA_CU_F16);
        bench_decode(1, 32, 8, 131072, 128, EA_CU_F16);
        bench_decode(16, 32, 8, 4096, 128, EA_CU_F16);
        bench_decode(1, 32, 8, 131072, 128, EA_CU_BF16);
        bool any = false;
        for (auto &v : g_dvar) any |= v.fn != 0;
        if (any) { // the candidate merge (variants cubin): checks, then the same timings
            g_dec_ovr = true;
            decode_checks(true);
            printf("checks: %d failed (with the decode variants)\n", g_fail);
            bench_decode(1, 32, 8, 4096, 128, EA_CU_F16);
            bench_decode(1, 32, 8, 32768, 128, EA_CU_F16);
            bench_decode(1, 32, 8, 131072, 128, EA_CU_F16);
            bench_decode(16, 32, 8, 4096, 128, EA_CU_F16);
            bench_decode(1, 32, 8, 131072, 128, EA_CU_BF16);
            g_dec_ovr = false;
        }
    }
    if (mode == "one") { // a single prefill and a single decode call (profilers)
        Case c; c.B = 1; c.Hq = 32; c.Hkv = 32; c.Nq = 4096; c.Nkv = 4096; c.D = 128; c.lse = 1;
        Built w; build(c, w, false); run(w); CK(cudaDeviceSynchronize()); release(w);
        Case d; d.B = 1; d.Hq = 32; d.Hkv = 8; d.Nq = 1; d.Nkv = 131072; d.D = 128; d.lse = 0;
        Built x; build(d, x, false); run(x); CK(cudaDeviceSynchronize()); release(x);
    }
    if (mode == "bench" || mode == "all") {
        bench_peak();
        for (int causal = 0; causal < 2; ++causal) {
            bench_prefill(1, 32, 1024, 128, causal, EA_CU_F16);
            bench_prefill(1, 32, 4096, 128, causal, EA_CU_F16);
            bench_prefill(1, 32, 16384, 128, causal, EA_CU_F16);
            bench_prefill(4, 16, 2048, 64, causal, EA_CU_F16);
            bench_prefill(1, 32, 4096, 128, causal, EA_CU_BF16);
        }
        for (auto &v : g_var) {
            if (!v.fn) continue;
            g_ovr = &v;
            Case c; c.B = 1; c.Hq = 4; c.Hkv = 2; c.Nq = 1000; c.Nkv = 1100; c.D = v.D; c.causal = 1; c.max_check_rows = 300;
            check(c);
            c.causal = 0; c.Nq = 129; c.Nkv = 129; c.wl = 40; check(c);
            for (int causal = 0; causal < 2; ++causal) {
                if (v.D == 128) { bench_prefill(1, 32, 4096, 128, causal, EA_CU_F16); bench_prefill(1, 32, 16384, 128, causal, EA_CU_F16); }
                else bench_prefill(4, 16, 2048, 64, causal, EA_CU_F16);
            }
            g_ovr = nullptr;
        }
        bench_decode(1, 32, 8, 4096, 128, EA_CU_F16);
        bench_decode(1, 32, 8, 32768, 128, EA_CU_F16);
        bench_decode(1, 32, 8, 131072, 128, EA_CU_F16);
        bench_decode(16, 32, 8, 4096, 128, EA_CU_F16);
        bench_decode(1, 32, 8, 131072, 128, EA_CU_BF16);
    }
    return g_fail ? 1 : 0;
}
