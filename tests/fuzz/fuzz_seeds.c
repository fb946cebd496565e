/*
 * The seed corpus of fuzz_api, written in the byte format of fuzz_input.h: `fuzz_api
 * --make-seeds=DIR` writes one file per seed. The seeds are meaningful runs (prefill in every dtype,
 * layouts, masks, bias, lse, kv_lens, decode sequences over plain and ring caches, copies) and
 * known-bad cases (aliasing, short buffers, odd strides and dtypes, NaN, bad params, capacity), so the
 * fuzzer starts from deep inside the API instead of from its first checks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_input.h"

typedef struct wbuf {
    uint8_t b[2048];
    size_t n;
} wbuf;

static void b1(wbuf *w, unsigned v)
{
    if (w->n < sizeof w->b)
        w->b[w->n++] = (uint8_t)v;
}

static void bn(wbuf *w, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b1(w, p ? p[i] : 0);
}

/* ---- records (each argument is the value wanted; the encoders store what the reader decodes) */

typedef struct cfg_s {
    unsigned mode;
    int batch, qlen, kvlen, kv_heads, group, dim, kv_dtype, window, seed, sinks; /* sinks: 0..4 (with a window) */
} cfg_s;

static void header(wbuf *w, cfg_s c)
{
    b1(w, c.mode);
    b1(w, c.batch - 1);
    b1(w, c.qlen - 1);
    b1(w, c.kvlen - 1);
    b1(w, (unsigned)(c.kv_heads - 1) | (unsigned)(c.group - 1) << 2 | (unsigned)c.sinks << 4);
    b1(w, c.dim / 16 - 1);
    b1(w, (unsigned)c.kv_dtype);
    b1(w, c.window > 0 ? c.window - 1 : 0);
    b1(w, c.seed);
}

typedef struct params_s {
    unsigned flags;
    int wl, wr;          /* -1: unlimited */
    unsigned scale, softcap; /* indices into the special table (0: default) */
    unsigned kvl_base, kvl_place, weird;
    int bias_b1, bias_h1;
} params_s;

static void params(wbuf *w, params_s p)
{
    b1(w, p.flags);
    b1(w, (unsigned)(p.wl + 1));
    b1(w, (unsigned)(p.wr + 1));
    b1(w, p.scale);
    b1(w, p.softcap);
    b1(w, p.kvl_base);
    b1(w, p.kvl_place | (p.bias_b1 ? 0x10u : 0u) | (p.bias_h1 ? 0x20u : 0u));
    b1(w, p.weird);
}

typedef struct td_s {
    unsigned dtype;  /* 0 role, 1 F32, 2 F16, 3 BF16 */
    unsigned layout; /* TL_* */
    unsigned flags;  /* 0x10 invalid dtype, 0x20 device memory, 0x40 offset, 0x80 mutate */
    unsigned b1, b2, b3;
    unsigned place;  /* PL_* */
    unsigned place_hi; /* nudge / slot */
    unsigned arg;
    unsigned bytes;  /* BY_* */
} td_s;

static void tensor(wbuf *w, td_s t)
{
    b1(w, (t.dtype & 3) | (t.layout & 3) << 2 | t.flags);
    b1(w, t.b1);
    b1(w, t.b2);
    b1(w, t.b3);
    b1(w, (t.place & 7) | t.place_hi << 3);
    b1(w, t.arg & 0xff);
    b1(w, t.arg >> 8);
    b1(w, t.bytes);
}

static const td_s T0 = {0};

typedef struct dims_s {
    int B, kv_heads, group, nq, nkv, dim;
    unsigned dq, dkv, dout; /* 0 F32, 1 F16, 2 BF16 */
    unsigned dim_weird;     /* non-zero: the dims byte itself (>= DIM_WEIRD) */
} dims_s;

static void dims(wbuf *w, dims_s d)
{
    b1(w, d.B - 1);
    b1(w, (unsigned)(d.kv_heads - 1) | (unsigned)(d.group - 1) << 4);
    b1(w, d.nq - 1);
    b1(w, d.nkv - 1);
    b1(w, d.dim_weird ? d.dim_weird : (unsigned)(d.dim / 16 - 1));
    b1(w, d.dq | d.dkv << 2 | d.dout << 4);
}

static void attention(wbuf *w, dims_s d, params_s p, const td_s t[6])
{
    b1(w, OP_ATTENTION);
    dims(w, d);
    params(w, p);
    for (int i = 0; i < 6; i++)
        tensor(w, t ? t[i] : T0);
}

typedef struct app_s {
    int B, heads, n, dim; /* heads / dim 0: the cache's */
    unsigned dk, dv;
    unsigned nnew;        /* bit 0: array; bits 1-7 base */
    unsigned check, place;
} app_s;

static void append(wbuf *w, app_s a, const td_s t[2])
{
    b1(w, OP_KV_APPEND);
    b1(w, a.B - 1);
    b1(w, a.heads ? (unsigned)(a.heads - 1) : 0);
    b1(w, a.n - 1);
    b1(w, a.dim ? (unsigned)(a.dim / 16 - 1) : 0);
    b1(w, a.dk | a.dv << 2);
    b1(w, a.nnew);
    b1(w, a.check);
    b1(w, a.place);
    for (int i = 0; i < 2; i++)
        tensor(w, t ? t[i] : T0);
}

typedef struct dec_s {
    int B;
    unsigned group_sel; /* group - 1 over the cache's heads; 0x80 | n: Hq = 1 + n */
    int nq, dim;        /* dim 0: the cache's */
    unsigned dq, dout;
} dec_s;

static void decode(wbuf *w, dec_s d, params_s p, const td_s t[3])
{
    b1(w, OP_DECODE);
    b1(w, d.B - 1);
    b1(w, d.group_sel);
    b1(w, d.nq - 1);
    b1(w, d.dim ? (unsigned)(d.dim / 16 - 1) : 0);
    b1(w, d.dq | d.dout << 2);
    b1(w, 0);
    params(w, p);
    for (int i = 0; i < 3; i++)
        tensor(w, t ? t[i] : T0);
}

static void reset(wbuf *w, unsigned s) { b1(w, OP_KV_RESET); b1(w, s); }
static void length(wbuf *w, unsigned s, unsigned nulls) { b1(w, OP_KV_LENGTH); b1(w, s); b1(w, nulls); }
static void refill(wbuf *w, unsigned seed, unsigned kind) { b1(w, OP_REFILL); b1(w, seed); b1(w, kind); }
static void special(wbuf *w, unsigned v, unsigned off, unsigned width)
{
    b1(w, OP_SPECIAL);
    b1(w, v);
    b1(w, off & 0xff);
    b1(w, off >> 8);
    b1(w, width);
}
static void copy(wbuf *w, const uint8_t d6[6], const td_s t[2])
{
    b1(w, OP_COPY);
    bn(w, d6, 6);
    for (int i = 0; i < 2; i++)
        tensor(w, t ? t[i] : T0);
}
static void nulls(wbuf *w, unsigned which) { b1(w, OP_NULLS); b1(w, which); }

/* ---- the corpus */

static int save(const char *dir, const char *name, const wbuf *w)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(w->b, 1, w->n, f) != w->n || fclose(f) != 0) {
        fprintf(stderr, "make-seeds: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* special table indices (fuzz_api.c k_special) */
enum { S_0 = 0, S_0125, S_05, S_1, S_2, S_8, S_1EM30, S_1E30, S_M1, S_M0, S_NAN, S_INF, S_MINF, S_DENORM, S_FLTMAX, S_001 };

int fz_make_seeds(const char *dir);
int fz_make_seeds(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "make-seeds: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int bad = 0, count = 0;
    wbuf w;
#define SEED(name, ...) /* the body may hold commas */                                                          \
    do {                                                                                                         \
        memset(&w, 0, sizeof w);                                                                                 \
        __VA_ARGS__;                                                                                             \
        bad |= save(dir, name, &w);                                                                              \
        count++;                                                                                                 \
    } while (0)

    const cfg_s base = {.mode = 0, .batch = 2, .qlen = 8, .kvlen = 32, .kv_heads = 2, .group = 2, .dim = 64,
                        .kv_dtype = 1, .window = 0, .seed = 1};
    const dims_s d0 = {.B = 2, .kv_heads = 2, .group = 2, .nq = 8, .nkv = 24, .dim = 64};
    const params_s p0 = {0};

    /* ---- prefill, valid */
    SEED("prefill-f32", { header(&w, base); attention(&w, d0, p0, NULL); });
    SEED("prefill-causal", {
        header(&w, base);
        attention(&w, d0, (params_s){.flags = P_CAUSAL}, NULL);
    });
    SEED("prefill-f16-kv-bf16-out", {
        header(&w, base);
        dims_s d = d0;
        d.dq = 1, d.dkv = 1, d.dout = 2;
        attention(&w, d, (params_s){.flags = P_CAUSAL | P_LSE}, NULL);
    });
    SEED("prefill-bf16", {
        header(&w, base);
        dims_s d = d0;
        d.dq = 2, d.dkv = 2, d.dout = 2;
        attention(&w, d, p0, NULL);
    });
    SEED("prefill-mqa-two-threads", {
        cfg_s c = base;
        c.mode = MODE_TWO_THREADS;
        c.kv_heads = 1, c.group = 3;
        header(&w, c);
        dims_s d = d0;
        d.kv_heads = 1, d.group = 3, d.nq = 5, d.nkv = 31;
        attention(&w, d, (params_s){.flags = P_CAUSAL}, NULL);
    });
    SEED("prefill-bias-lse", {
        header(&w, base);
        attention(&w, d0, (params_s){.flags = P_BIAS | P_LSE}, NULL);
    });
    SEED("prefill-bias-broadcast", {
        header(&w, base);
        attention(&w, d0, (params_s){.flags = P_BIAS | P_CAUSAL, .bias_b1 = 1, .bias_h1 = 1}, NULL);
    });
    SEED("prefill-bias-minus-inf", {
        header(&w, base);
        /* bump layout of d0 in F32: q 16 KiB, k 24 KiB, v 24 KiB, out 16 KiB, then bias at byte 81920:
         * its first row (24 keys) all -inf (a fully masked row), one more -inf in the next row */
        for (unsigned j = 0; j < 24; j++)
            special(&w, S_MINF, 40960 + 2 * j, 0);
        special(&w, S_MINF, 40960 + 2 * 24 + 6, 0);
        attention(&w, d0, (params_s){.flags = P_BIAS | P_LSE}, NULL);
        attention(&w, d0, (params_s){.flags = P_BIAS | P_LSE | P_CHECK_FINITE | P_CAUSAL}, NULL);
    });
    SEED("prefill-kv-lens", {
        header(&w, base);
        attention(&w, d0, (params_s){.flags = P_KV_LENS | P_LSE, .kvl_base = 17}, NULL);
    });
    SEED("prefill-kv-lens-zero", {
        header(&w, base);
        attention(&w, d0, (params_s){.flags = P_KV_LENS | P_LSE | P_CAUSAL, .kvl_base = 0}, NULL);
    });
    SEED("prefill-windows", {
        header(&w, base);
        attention(&w, d0, (params_s){.flags = P_CAUSAL, .wl = 3, .wr = 0}, NULL);
        attention(&w, d0, (params_s){.wl = 0, .wr = 2}, NULL);
    });
    SEED("prefill-softcap-scale", {
        header(&w, base);
        attention(&w, d0, (params_s){.scale = S_0125, .softcap = S_8}, NULL);
        attention(&w, d0, (params_s){.scale = S_1E30, .softcap = S_1EM30, .flags = P_LSE}, NULL);
    });
    SEED("prefill-scalar-tier", {
        cfg_s c = base;
        c.mode = 2u << MODE_CPU_MASK_SHIFT;
        header(&w, c);
        attention(&w, d0, (params_s){.flags = P_CAUSAL | P_LSE}, NULL);
    });
    SEED("prefill-layouts", {
        header(&w, base);
        td_s t[6] = {{.layout = TL_BSHD}, {.layout = TL_PADDED, .b2 = 3, .b3 = 5}, {.layout = TL_BSHD},
                     {.layout = TL_PADDED, .b2 = 16}, {0}, {0}};
        attention(&w, d0, (params_s){.flags = P_CAUSAL}, t);
    });
    SEED("prefill-private-blocks", {
        header(&w, base);
        td_s t[6] = {{.place = PL_PRIVATE}, {.place = PL_PRIVATE}, {.place = PL_PRIVATE},
                     {.place = PL_PRIVATE}, {.place = PL_PRIVATE}, {.place = PL_PRIVATE}};
        attention(&w, d0, (params_s){.flags = P_BIAS | P_LSE | P_KV_LENS, .kvl_base = 9, .kvl_place = KVL_PRIVATE}, t);
    });
    SEED("prefill-nudged-unaligned", {
        header(&w, base);
        td_s t[6] = {{.place_hi = 1}, {.place_hi = 3}, {.place_hi = 5}, {.place_hi = 7}, {0}, {0}};
        dims_s d = d0;
        d.dkv = 1;
        attention(&w, d, p0, t);
    });
    SEED("prefill-k-v-same-data", {
        header(&w, base);
        td_s t[6] = {{0}, {0}, {.place = PL_ALIAS, .place_hi = 1}, {0}, {0}, {0}};
        attention(&w, d0, p0, t);
    });
    SEED("prefill-custom-strides-broadcast-1", {
        header(&w, base);
        dims_s d = d0;
        d.B = 1;
        td_s t[6] = {{0}, {.layout = TL_CUSTOM, .b2 = STR_2POW62}, {0}, {0}, {0}, {0}};
        attention(&w, d, p0, t);
    });
    SEED("prefill-check-finite-clean", {
        header(&w, base);
        attention(&w, d0, (params_s){.flags = P_CHECK_FINITE | P_BIAS}, NULL);
    });
    SEED("prefill-then-refills", {
        header(&w, base);
        attention(&w, d0, p0, NULL);
        refill(&w, 7, FILL_SPRINKLE);
        attention(&w, d0, (params_s){.flags = P_CHECK_FINITE}, NULL);
        refill(&w, 9, FILL_RAW);
        attention(&w, d0, (params_s){.flags = P_LSE}, NULL);
    });

    /* ---- prefill, must be refused */
    SEED("bad-out-aliases-q", {
        header(&w, base);
        td_s t[6] = {{0}, {0}, {0}, {.place = PL_ALIAS, .place_hi = 0}, {0}, {0}};
        attention(&w, d0, p0, t);
    });
    SEED("bad-lse-inside-k", {
        header(&w, base);
        td_s t[6] = {{0}, {0}, {0}, {0}, {0}, {.place = PL_INSIDE, .place_hi = 1, .arg = 10}};
        attention(&w, d0, (params_s){.flags = P_LSE}, t);
    });
    SEED("bad-bytes-short", {
        header(&w, base);
        td_s t[6] = {{0}, {.bytes = BY_SHORT1}, {0}, {.place = PL_PRIVATE, .bytes = BY_SHORT1}, {0}, {0}};
        attention(&w, d0, p0, t);
    });
    SEED("bad-stride-zero", {
        header(&w, base);
        td_s t[6] = {{.layout = TL_CUSTOM, .b3 = STR_ZERO}, {0}, {0}, {0}, {0}, {0}};
        attention(&w, d0, p0, t);
    });
    SEED("bad-stride-huge", {
        header(&w, base);
        td_s t[6] = {{0}, {.layout = TL_CUSTOM, .b2 = STR_I64MAX | STR_I64MAX << 4}, {0}, {0}, {0}, {0}};
        attention(&w, d0, p0, t);
    });
    SEED("bad-dtype-invalid", {
        header(&w, base);
        td_s t[6] = {{.flags = 0x10, .dtype = 1}, {0}, {0}, {0}, {0}, {0}};
        attention(&w, d0, p0, t);
    });
    SEED("bad-device-memory", {
        header(&w, base);
        td_s t[6] = {{.flags = 0x20}, {0}, {0}, {.flags = 0x20 | 0x40, .b1 = 1, .arg = 3}, {0}, {0}};
        attention(&w, d0, p0, t);
    });
    SEED("bad-shape-huge", {
        header(&w, base);
        td_s t[6] = {{.flags = 0x80, .b1 = 2 | MUT_HUGE << 2}, {.flags = 0x80, .b1 = 3 | MUT_2POW40 << 2}, {0}, {0}, {0}, {0}};
        attention(&w, d0, p0, t);
    });
    SEED("bad-head-dim", {
        header(&w, base);
        dims_s d = d0;
        d.dim_weird = DIM_WEIRD + 2; /* 17 */
        attention(&w, d, p0, NULL);
    });
    SEED("prefill-head-dims-8-24", { /* odd multiples of 8 */
        header(&w, base);
        dims_s d = d0;
        d.dim_weird = DIM_WEIRD; /* 8 */
        attention(&w, d, (params_s){.flags = P_CAUSAL}, NULL);
        d.dim_weird = DIM_WEIRD + 7; /* 24 */
        attention(&w, d, (params_s){.flags = P_LSE}, NULL);
    });
    SEED("bad-nan-check-finite", {
        header(&w, base);
        special(&w, S_NAN, 300, 0);
        attention(&w, d0, (params_s){.flags = P_CHECK_FINITE}, NULL);
        attention(&w, d0, p0, NULL);
    });
    SEED("bad-params", {
        header(&w, base);
        attention(&w, d0, (params_s){.scale = S_NAN}, NULL);
        attention(&w, d0, (params_s){.softcap = S_M1}, NULL);
        attention(&w, d0, (params_s){.wl = 254}, NULL); /* byte 255: window -2 */
        attention(&w, d0, (params_s){.flags = P_WEIRD, .weird = 0}, NULL);
        attention(&w, d0, (params_s){.flags = P_WEIRD, .weird = 1}, NULL);
        attention(&w, d0, (params_s){.flags = P_WEIRD, .weird = 5}, NULL);
        attention(&w, d0, (params_s){.flags = P_ZEROED | P_CAUSAL}, NULL);
        attention(&w, d0, (params_s){.flags = P_NULL}, NULL);
    });
    SEED("bad-kv-lens-values", {
        header(&w, base);
        attention(&w, d0, (params_s){.flags = P_KV_LENS, .kvl_base = 0xF0}, NULL);
        attention(&w, d0, (params_s){.flags = P_KV_LENS, .kvl_base = 0xF1, .kvl_place = KVL_IN_Q}, NULL);
    });
    SEED("bad-capacity", {
        cfg_s c = base;
        c.qlen = 4, c.kvlen = 8;
        header(&w, c);
        td_s t[6] = {{.flags = 0x80, .b1 = 2 | MUT_PLUS1 << 2}, {0}, {0}, {.flags = 0x80, .b1 = 2 | MUT_PLUS1 << 2}, {0}, {0}};
        dims_s d = d0;
        d.nq = 4, d.nkv = 8;
        attention(&w, d, p0, t);
    });
    SEED("bad-nulls", {
        header(&w, base);
        for (unsigned i = 0; i < NULLS_COUNT; i++)
            nulls(&w, i);
    });

    /* ---- KV cache */
    const app_s a0 = {.B = 2, .heads = 2, .n = 16, .dim = 64};
    const dec_s dc = {.B = 2, .group_sel = 1, .nq = 1};
    SEED("decode-basic", {
        header(&w, base);
        append(&w, a0, NULL);
        decode(&w, dc, p0, NULL);
        append(&w, (app_s){.B = 2, .n = 1}, NULL);
        decode(&w, dc, (params_s){.flags = P_LSE}, NULL);
        length(&w, 3, 0); /* sequence 1 */
    });
    SEED("decode-multi-query-causal", {
        header(&w, base);
        append(&w, a0, NULL);
        dec_s d = dc;
        d.nq = 4;
        decode(&w, d, (params_s){.flags = P_CAUSAL | P_LSE}, NULL);
        decode(&w, d, (params_s){.flags = P_CAUSAL, .wl = 5}, NULL);
    });
    SEED("decode-ring-window", {
        cfg_s c = base;
        c.mode = MODE_WINDOW;
        c.window = 6;
        header(&w, c);
        append(&w, (app_s){.B = 2, .heads = 2, .n = 4, .dim = 64}, NULL);
        append(&w, (app_s){.B = 2, .n = 5}, NULL);
        decode(&w, dc, (params_s){.flags = P_LSE}, NULL);
        append(&w, (app_s){.B = 2, .n = 13}, NULL); /* longer than the window */
        dec_s d = dc;
        d.nq = 3;
        decode(&w, d, (params_s){.flags = P_CAUSAL}, NULL);
    });
    SEED("decode-sinks-ring", { /* 3 sinks beside a ring of 6 */
        cfg_s c = base;
        c.mode = MODE_WINDOW;
        c.window = 6;
        c.sinks = 3;
        header(&w, c);
        append(&w, (app_s){.B = 2, .heads = 2, .n = 2, .dim = 64}, NULL);
        append(&w, (app_s){.B = 2, .n = 5}, NULL);
        decode(&w, dc, (params_s){.flags = P_LSE, .wl = -1, .wr = -1}, NULL);
        append(&w, (app_s){.B = 2, .n = 13}, NULL); /* past the sinks and the ring */
        dec_s d = dc;
        d.nq = 3;
        decode(&w, d, (params_s){.flags = P_CAUSAL, .wl = -1, .wr = -1}, NULL);
        decode(&w, d, (params_s){.flags = P_CAUSAL, .wl = 2, .wr = -1}, NULL); /* refused over sinks */
        append(&w, (app_s){.B = 2, .n = 1}, NULL);
        decode(&w, dc, (params_s){.flags = P_LSE, .wl = -1, .wr = -1}, NULL);
    });
    SEED("decode-bf16-cache-two-threads", {
        cfg_s c = base;
        c.mode = MODE_TWO_THREADS;
        c.kv_dtype = 2;
        header(&w, c);
        append(&w, (app_s){.B = 2, .heads = 2, .n = 20, .dim = 64, .dk = 1, .dv = 1}, NULL);
        dec_s d = dc;
        d.dq = 2, d.dout = 1;
        decode(&w, d, (params_s){.softcap = S_2, .flags = P_LSE}, NULL);
    });
    SEED("decode-f32-cache-n-new", {
        cfg_s c = base;
        c.kv_dtype = 0;
        header(&w, c);
        append(&w, (app_s){.B = 2, .heads = 2, .n = 8, .dim = 64, .nnew = 1 | 5 << 1}, NULL);
        append(&w, (app_s){.B = 2, .n = 8, .nnew = 1 | 2 << 1, .place = 1}, NULL);
        dec_s d = dc;
        decode(&w, d, p0, NULL);
        reset(&w, 2); /* sequence 0 */
        length(&w, 0, 0);
        decode(&w, d, p0, NULL); /* sequence 0 is empty now: refused */
    });
    SEED("decode-reset-reshape", {
        header(&w, base);
        append(&w, a0, NULL);
        reset(&w, 0); /* all */
        append(&w, (app_s){.B = 1, .heads = 1, .n = 5, .dim = 32}, NULL);
        decode(&w, (dec_s){.B = 1, .group_sel = 3, .nq = 2}, (params_s){.flags = P_CAUSAL}, NULL);
    });
    SEED("kv-bad-capacity", {
        cfg_s c = base;
        c.kvlen = 10;
        header(&w, c);
        append(&w, (app_s){.B = 2, .heads = 2, .n = 8, .dim = 64}, NULL);
        append(&w, (app_s){.B = 2, .n = 3}, NULL);                    /* 11 > 10 */
        append(&w, (app_s){.B = 2, .n = 3, .nnew = 1}, NULL);          /* 0 and 3 more: seq 1 overflows */
        append(&w, (app_s){.B = 2, .heads = 3, .n = 1}, NULL);        /* byte 2: 1 + 2 % 2 = 1 head: differs */
        length(&w, 3, 3);
    });
    SEED("kv-bad-args", {
        header(&w, base);
        append(&w, (app_s){.B = 1, .heads = 2, .n = 4, .dim = 64, .check = 7}, NULL);
        append(&w, (app_s){.B = 1, .heads = 2, .n = 4, .dim = 64, .nnew = 1 | 0x7F << 1}, NULL);
        special(&w, S_INF, 40, 1);
        td_s t[2] = {{.dtype = 2}, {.dtype = 2}};
        append(&w, (app_s){.B = 1, .heads = 2, .n = 4, .dim = 64, .check = 1}, t);
        reset(&w, 0xFC);
        reset(&w, 0xFF);
        length(&w, 0xFD, 0);
        decode(&w, dc, p0, NULL); /* empty cache */
    });
    SEED("decode-bad-params", {
        header(&w, base);
        append(&w, (app_s){.B = 2, .heads = 2, .n = 4, .dim = 64}, NULL);
        decode(&w, dc, (params_s){.flags = P_KV_LENS}, NULL);
        decode(&w, dc, (params_s){.flags = P_BIAS}, NULL);
        dec_s d = dc;
        d.nq = 4;
        const td_s more[3] = {{.flags = 0x80, .b1 = 2 | MUT_PLUS1 << 2}, {.flags = 0x80, .b1 = 2 | MUT_PLUS1 << 2}, {0}};
        decode(&w, d, p0, more); /* 5 queries over 4 held tokens */
        decode(&w, (dec_s){.B = 2, .group_sel = 0x80 | 2, .nq = 1}, p0, NULL); /* 3 heads over 2 */
    });
    SEED("no-kv-cache", {
        cfg_s c = base;
        c.mode = MODE_NO_KV_CACHE;
        header(&w, c);
        append(&w, a0, NULL);
        decode(&w, dc, p0, NULL);
        reset(&w, 0);
        length(&w, 0, 0);
        attention(&w, d0, p0, NULL);
    });

    /* ---- copy */
    SEED("copy", {
        header(&w, base);
        const uint8_t d6[6] = {1, 3, 9, 40, 0, 1};
        copy(&w, d6, NULL);
        td_s t[2] = {{.layout = TL_BSHD}, {.layout = TL_PADDED, .b2 = 2}};
        copy(&w, d6, t);
        td_s o[2] = {{0}, {.place = PL_INSIDE, .place_hi = 0, .arg = 8}};
        copy(&w, d6, o); /* overlapping: refused */
    });

    /* ---- config, plan, create */
    SEED("create-caller-buffer-probes", {
        cfg_s c = base;
        c.mode = MODE_CALLER_BUFFER | MODE_CREATE_PROBES;
        header(&w, c);
        append(&w, a0, NULL);
        decode(&w, dc, p0, NULL);
        attention(&w, d0, (params_s){.flags = P_CAUSAL}, NULL);
    });
    SEED("config-raw-valid", {
        cfg_s c = base;
        c.mode = MODE_RAW_CONFIG;
        header(&w, c);
        bn(&w, NULL, 4 * RAW_FIELDS);
        attention(&w, d0, p0, NULL);
    });
    SEED("config-raw-bad-version", {
        cfg_s c = base;
        c.mode = MODE_RAW_CONFIG;
        header(&w, c);
        b1(&w, 1);
        bn(&w, NULL, 4 * RAW_FIELDS - 1);
    });
    SEED("config-raw-bad-gqa", {
        cfg_s c = base;
        c.mode = MODE_RAW_CONFIG;
        header(&w, c);
        bn(&w, NULL, 4 * 5);
        b1(&w, 1); /* max_heads 4 ^ 1 = 5 */
        bn(&w, NULL, 4 * RAW_FIELDS - 21);
    });
    SEED("config-raw-huge", {
        cfg_s c = base;
        c.mode = MODE_RAW_CONFIG;
        header(&w, c);
        bn(&w, NULL, 4 * 2);
        const uint8_t big[4] = {0, 0, 0, 0x40};
        bn(&w, big, 4); /* max_batch */
        bn(&w, NULL, 4);
        bn(&w, big, 4); /* max_kv_len */
        bn(&w, NULL, 4 * RAW_FIELDS - 20);
    });
    SEED("config-raw-reserved-threads", {
        cfg_s c = base;
        c.mode = MODE_RAW_CONFIG;
        header(&w, c);
        bn(&w, NULL, 4 * 10);
        const uint8_t thr[4] = {0xff, 0x7f, 0, 0};
        bn(&w, thr, 4);
        bn(&w, NULL, 4 * 4);
        const uint8_t res[4] = {3, 1, 0, 0};
        bn(&w, res, 4);
    });
    SEED("config-bad-kv-dtype", {
        cfg_s c = base;
        c.kv_dtype = 0xF1;
        header(&w, c);
    });
#undef SEED
    if (!bad)
        printf("make-seeds: %d seeds in %s\n", count, dir);
    return bad;
}
