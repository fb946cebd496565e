/*
 * Benchmark cases: the spec syntax of --case, and the default and quick suites.
 *
 *   KIND:KEY=VALUE,KEY=VALUE,...      KIND is prefill or decode; keys are case-insensitive.
 *   B      sequences                       (default 1)
 *   H, HQ  query heads                     (8)
 *   KVH    key/value heads, divides H      (= H)
 *   N      prefill: Nq = Nkv = N; decode: Nkv = N   (prefill 1024, decode 4096)
 *   NQ     query rows                      (prefill N, decode 1)
 *   NKV    key/value rows (decode: tokens appended to the KV cache)
 *   D      head dim                        (64)
 *   causal 0 or 1, bottom-right aligned    (prefill 0; decode: 1 when NQ > 1, as decoding needs)
 *   q, kv, out   f32, f16 or bf16          (f32, f16, f32); kv is the KV-cache dtype for decode, where
 *                q8 and q4 (quantised caches, fed F16 K/V) are taken too
 *   DV     V and out head dim              (= D; config.max_head_dim_v)
 *   latent decode: 1 = a latent KV cache (MLA: K rows only, V their first DV values; rated in FLOP/s
 *          against the FMA peak)           (0)
 *   name   label in the table              (made from the shape)
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"

const char *bench_dtype_name(edgeattn_dtype dt)
{
    switch (dt) {
    case EDGEATTN_F32: return "f32";
    case EDGEATTN_F16: return "f16";
    case EDGEATTN_BF16: return "bf16";
    case EDGEATTN_Q8: return "q8";
    case EDGEATTN_Q4: return "q4";
    default: return "?";
    }
}

static int parse_dtype(const char *s, edgeattn_dtype *dt)
{
    if (!strcasecmp(s, "f32") || !strcasecmp(s, "fp32"))
        *dt = EDGEATTN_F32;
    else if (!strcasecmp(s, "f16") || !strcasecmp(s, "fp16"))
        *dt = EDGEATTN_F16;
    else if (!strcasecmp(s, "bf16"))
        *dt = EDGEATTN_BF16;
    else if (!strcasecmp(s, "q8"))
        *dt = EDGEATTN_Q8;
    else if (!strcasecmp(s, "q4"))
        *dt = EDGEATTN_Q4;
    else
        return -1;
    return 0;
}

static int parse_int(const char *s, int32_t lo, int32_t hi, int32_t *v)
{
    char *end = NULL;
    long x = strtol(s, &end, 10);
    if (!*s || *end || x < lo || x > hi)
        return -1;
    *v = (int32_t)x;
    return 0;
}

int bench_parse_case(const char *spec, bench_case *c, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    const char *colon = strchr(spec, ':');
    const size_t kind_len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (kind_len == 7 && !strncasecmp(spec, "prefill", 7))
        c->kind = BENCH_PREFILL;
    else if (kind_len == 6 && !strncasecmp(spec, "decode", 6))
        c->kind = BENCH_DECODE;
    else {
        snprintf(err, err_len, "case '%s': must start with prefill: or decode:", spec);
        return -1;
    }
    c->B = 1;
    c->Hq = 8;
    c->Hkv = 0; /* = Hq unless given */
    c->D = 64;
    c->Nq = c->Nkv = 0;
    c->causal = -1;
    c->q_dtype = EDGEATTN_F32;
    c->kv_dtype = EDGEATTN_F16;
    c->out_dtype = EDGEATTN_F32;
    int32_t n = 0;

    char buf[256];
    snprintf(buf, sizeof buf, "%s", colon ? colon + 1 : "");
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            snprintf(err, err_len, "case '%s': '%s' is not KEY=VALUE", spec, tok);
            return -1;
        }
        *eq = '\0';
        const char *key = tok, *val = eq + 1;
        int bad = 0;
        if (!strcasecmp(key, "B"))
            bad = parse_int(val, 1, 1 << 16, &c->B);
        else if (!strcasecmp(key, "H") || !strcasecmp(key, "HQ"))
            bad = parse_int(val, 1, 1 << 16, &c->Hq);
        else if (!strcasecmp(key, "KVH") || !strcasecmp(key, "HKV"))
            bad = parse_int(val, 1, 1 << 16, &c->Hkv);
        else if (!strcasecmp(key, "N"))
            bad = parse_int(val, 1, 1 << 30, &n);
        else if (!strcasecmp(key, "NQ"))
            bad = parse_int(val, 1, 1 << 30, &c->Nq);
        else if (!strcasecmp(key, "NKV"))
            bad = parse_int(val, 1, 1 << 30, &c->Nkv);
        else if (!strcasecmp(key, "D"))
            bad = parse_int(val, 1, 4096, &c->D);
        else if (!strcasecmp(key, "DV"))
            bad = parse_int(val, 1, 4096, &c->Dv);
        else if (!strcasecmp(key, "latent"))
            bad = parse_int(val, 0, 1, &c->latent);
        else if (!strcasecmp(key, "page"))
            bad = parse_int(val, 0, 1024, &c->page);
        else if (!strcasecmp(key, "ragged"))
            bad = parse_int(val, 0, 1, &c->ragged);
        else if (!strcasecmp(key, "density")) {
            char *end = NULL;
            const double x = strtod(val, &end);
            bad = !end || *end || !(x > 0.0 && x <= 1.0);
            c->density_pm = bad ? 0 : (int32_t)(x * 1000.0 + 0.5);
            bad = bad || c->density_pm < 1;
        } else if (!strcasecmp(key, "topk"))
            bad = parse_int(val, 1, 1 << 30, &c->topk);
        else if (!strcasecmp(key, "lowrank"))
            bad = parse_int(val, 1, 1 << 20, &c->lowrank);
        else if (!strcasecmp(key, "sblk"))
            bad = parse_int(val, 16, 128, &c->sblk) || (c->sblk & (c->sblk - 1));
        else if (!strcasecmp(key, "bq"))
            bad = parse_int(val, 64, 128, &c->block_q) || (c->block_q != 64 && c->block_q != 128);
        else if (!strcasecmp(key, "sinks"))
            bad = parse_int(val, 1, 1 << 20, &c->sinks);
        else if (!strcasecmp(key, "stream"))
            bad = parse_int(val, 1, 1 << 30, &c->stream);
        else if (!strcasecmp(key, "causal"))
            bad = parse_int(val, 0, 1, &c->causal);
        else if (!strcasecmp(key, "q"))
            bad = parse_dtype(val, &c->q_dtype) || c->q_dtype > EDGEATTN_BF16;
        else if (!strcasecmp(key, "kv"))
            bad = parse_dtype(val, &c->kv_dtype);
        else if (!strcasecmp(key, "out"))
            bad = parse_dtype(val, &c->out_dtype) || c->out_dtype > EDGEATTN_BF16;
        else if (!strcasecmp(key, "path")) {
            if (!strcasecmp(val, "fused"))
                c->opencl_path = 1;
            else if (!strcasecmp(val, "unfused"))
                c->opencl_path = 2;
            else if (!strcasecmp(val, "auto"))
                c->opencl_path = 0;
            else
                bad = 1;
        } else if (!strcasecmp(key, "name")) {
            snprintf(c->name, sizeof c->name, "%s", val);
            c->auto_name = 0;
        } else {
            snprintf(err, err_len, "case '%s': unknown key '%s' (see --help)", spec, key);
            return -1;
        }
        if (bad) {
            snprintf(err, err_len, "case '%s': bad value '%s' for %s", spec, val, key);
            return -1;
        }
    }
    if (c->Hkv == 0)
        c->Hkv = c->Hq;
    if (c->kind == BENCH_PREFILL) {
        if (!n)
            n = 1024;
        if (!c->Nq)
            c->Nq = n;
        if (!c->Nkv)
            c->Nkv = n;
        if (c->causal < 0)
            c->causal = 0;
    } else {
        if (!c->Nkv)
            c->Nkv = n ? n : 4096;
        if (!c->Nq)
            c->Nq = 1;
        if (c->causal == 0 && c->Nq > 1) {
            snprintf(err, err_len, "case '%s': decode with NQ > 1 is causal (the queries are the last tokens)", spec);
            return -1;
        }
        c->causal = c->Nq > 1;
        if (c->Nq > c->Nkv) {
            snprintf(err, err_len, "case '%s': decode needs NQ <= NKV", spec);
            return -1;
        }
    }
    if (c->kind != BENCH_DECODE && c->kv_dtype > EDGEATTN_BF16) {
        snprintf(err, err_len, "case '%s': kv=%s is a KV-cache dtype: decode cases only", spec,
                 bench_dtype_name(c->kv_dtype));
        return -1;
    }
    if ((c->page || c->ragged) && c->kind != BENCH_DECODE) {
        snprintf(err, err_len, "case '%s': page and ragged are decode options", spec);
        return -1;
    }
    if ((c->density_pm || c->block_q) && c->kind != BENCH_PREFILL) {
        snprintf(err, err_len, "case '%s': density and bq are prefill options (a block-sparse mask)", spec);
        return -1;
    }
    if ((c->topk || c->sblk) && (c->kind != BENCH_DECODE || c->Nq != 1 || c->sinks)) {
        snprintf(err, err_len, "case '%s': topk and sblk are options of a decode with one query, without sinks", spec);
        return -1;
    }
    if (c->topk && !c->sblk)
        c->sblk = 32;
    if (c->lowrank && (c->kind != BENCH_PREFILL || c->causal || c->density_pm)) {
        snprintf(err, err_len, "case '%s': lowrank (Linformer) is a prefill option, not causal, without density", spec);
        return -1;
    }
    if (c->latent && (c->kind != BENCH_DECODE || c->kv_dtype > EDGEATTN_BF16 || c->topk || bench_dv(c) > c->D)) {
        snprintf(err, err_len, "case '%s': latent is a decode option over an f32, f16 or bf16 cache, without topk, "
                 "with DV <= D", spec);
        return -1;
    }
    if (c->Dv && c->Dv != c->D && c->kind == BENCH_DECODE && !c->latent) {
        snprintf(err, err_len, "case '%s': a decode with DV != D needs latent=1 (a cache of K and V rows has one "
                 "head dim)", spec);
        return -1;
    }
    if (c->Dv && c->Dv != c->D && c->lowrank) {
        snprintf(err, err_len, "case '%s': lowrank takes DV = D", spec);
        return -1;
    }
    if (c->Dv == c->D)
        c->Dv = 0;
    if (c->density_pm && !c->block_q)
        c->block_q = 64;
    if ((c->sinks || c->stream) && (c->kind != BENCH_DECODE || c->ragged || !c->sinks || c->sinks >= c->Nkv)) {
        snprintf(err, err_len, "case '%s': sinks (and stream) are decode options, not ragged, with 0 < sinks < NKV",
                 spec);
        return -1;
    }
    if (c->sinks && !c->stream)
        c->stream = c->Nkv;
    if (c->stream && c->stream < c->Nq) {
        snprintf(err, err_len, "case '%s': stream must be at least NQ", spec);
        return -1;
    }
    if (c->page && (c->page < 16 || (c->page & (c->page - 1)))) {
        snprintf(err, err_len, "case '%s': page must be 0 or a power of two from 16 to 1024", spec);
        return -1;
    }
    if (c->Hq % c->Hkv) {
        snprintf(err, err_len, "case '%s': H = %d is not a multiple of KVH = %d", spec, (int)c->Hq, (int)c->Hkv);
        return -1;
    }
    if (!c->name[0]) {
        snprintf(c->name, sizeof c->name, "%s-h%d-d%d-n%d", c->kind == BENCH_PREFILL ? "pf" : "dec", (int)c->Hq,
                 (int)c->D, (int)c->Nkv);
        c->auto_name = 1;
    }
    return 0;
}

int bench_case_set_n(bench_case *c, int32_t n, char *err, size_t err_len)
{
    if (c->kind == BENCH_PREFILL) {
        c->Nq = c->Nkv = n;
    } else {
        if (c->Nq > n) {
            snprintf(err, err_len, "case %s: --sweep N=%d is shorter than its %d decode queries", c->name, (int)n,
                     (int)c->Nq);
            return -1;
        }
        c->Nkv = n;
    }
    if (c->auto_name) /* the length is in the shape column and the JSON's n, not in the name */
        snprintf(c->name, sizeof c->name, "%s-h%d-d%d", c->kind == BENCH_PREFILL ? "pf" : "dec", (int)c->Hq,
                 (int)c->D);
    return 0;
}

void bench_case_spec(const bench_case *c, char *buf, size_t len)
{
    static const char *const path[3] = {"", ",path=fused", ",path=unfused"};
    char extra[80] = "";
    if (c->page || c->ragged)
        snprintf(extra, sizeof extra, ",page=%d,ragged=%d", (int)c->page, (int)c->ragged);
    if (c->sinks)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",sinks=%d,stream=%d", (int)c->sinks,
                 (int)c->stream);
    if (c->density_pm)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",density=%.3f,bq=%d", c->density_pm / 1000.0,
                 (int)c->block_q);
    if (c->sblk)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",topk=%d,sblk=%d", (int)c->topk, (int)c->sblk);
    if (c->lowrank)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",lowrank=%d", (int)c->lowrank);
    if (c->Dv)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",DV=%d", (int)c->Dv);
    if (c->latent)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",latent=1");
    snprintf(buf, len, "%s:B=%d,H=%d,KVH=%d,NQ=%d,NKV=%d,D=%d,causal=%d,q=%s,kv=%s,out=%s%s%s,name=%s",
             c->kind == BENCH_PREFILL ? "prefill" : "decode", (int)c->B, (int)c->Hq, (int)c->Hkv, (int)c->Nq,
             (int)c->Nkv, (int)c->D, (int)c->causal, bench_dtype_name(c->q_dtype), bench_dtype_name(c->kv_dtype),
             bench_dtype_name(c->out_dtype), path[c->opencl_path & 3], extra, c->name);
}

void bench_case_shape(const bench_case *c, char *buf, size_t len)
{
    char heads[32], rows[40];
    if (c->Hkv == c->Hq)
        snprintf(heads, sizeof heads, "H%d", (int)c->Hq);
    else
        snprintf(heads, sizeof heads, "Hq%d/kv%d", (int)c->Hq, (int)c->Hkv);
    if (c->kind == BENCH_PREFILL && c->Nq == c->Nkv)
        snprintf(rows, sizeof rows, "N%d", (int)c->Nkv);
    else if (c->kind == BENCH_DECODE && c->Nq == 1)
        snprintf(rows, sizeof rows, "Nkv%d", (int)c->Nkv);
    else
        snprintf(rows, sizeof rows, "Nq%d Nkv%d", (int)c->Nq, (int)c->Nkv);
    char paged[64] = "";
    if (c->page)
        snprintf(paged, sizeof paged, " paged %d", (int)c->page);
    if (c->lowrank) /* Linformer */
        snprintf(paged + strlen(paged), sizeof paged - strlen(paged), " linformer k%d", (int)c->lowrank);
    if (c->topk) /* top-k decode */
        snprintf(paged + strlen(paged), sizeof paged - strlen(paged), " top-%d/%d", (int)c->topk, (int)c->sblk);
    if (c->density_pm) /* a block-sparse mask */
        snprintf(paged + strlen(paged), sizeof paged - strlen(paged), " sparse %g%% %dx64", c->density_pm / 10.0,
                 (int)c->block_q);
    if (c->sinks) /* Nkv slots: S sinks + a ring, after `stream` tokens */
        snprintf(paged + strlen(paged), sizeof paged - strlen(paged), " S%d+W%d of %d", (int)c->sinks,
                 (int)(c->Nkv - c->sinks), (int)c->stream);
    char dims[32];
    if (c->Dv)
        snprintf(dims, sizeof dims, "D%d/%d", (int)c->D, (int)c->Dv);
    else
        snprintf(dims, sizeof dims, "D%d", (int)c->D);
    if (c->latent)
        snprintf(paged + strlen(paged), sizeof paged - strlen(paged), " latent");
    snprintf(buf, len, "%s B%d %s %s %s%s%s%s", c->kind == BENCH_PREFILL ? "prefill" : "decode", (int)c->B, heads,
             dims, rows, c->kind == BENCH_PREFILL && c->causal ? " causal" : "", c->ragged ? " ragged" : "",
             paged);
}

void bench_case_dtypes(const bench_case *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/%s", bench_dtype_name(c->q_dtype), bench_dtype_name(c->kv_dtype),
             bench_dtype_name(c->out_dtype));
}

#define F32 EDGEATTN_F32
#define F16 EDGEATTN_F16
#define BF16 EDGEATTN_BF16
#define Q8 EDGEATTN_Q8
#define Q4 EDGEATTN_Q4
#define PF BENCH_PREFILL
#define DEC BENCH_DECODE

/* The CPU suite. A, B, C and E are the shapes of the README's comparison with ggml's CPU flash
 * attention (A: prefill H8 D64 N1024 with FP16 K/V; B: prefill H8 D128 N2048 causal; C and E: decode
 * of a grouped-query model, Hq32 Hkv8 D128, over 4096 and 16384 cached tokens), kept under those
 * letters so a run can be set beside that table; -kv32 and -bf16 are the same shapes with other K/V
 * dtypes. The rest cover a short sequence, GQA prefill, batches and several decode queries; dec-s*
 * are one layer of a small GQA model (Hq8 Hkv2 D64, F32 cache) over 64 to 1024 cached tokens, calls
 * of a few microseconds where handing work to threads costs as much as the work (compare
 * --threads 1 with --threads 2). dec-rag* decode four sequences of 512, 3000, 9000 and 16000 tokens
 * at once, in a contiguous cache and in paged caches of 16- and 64-token pages filled round-robin (the
 * pages of the four sequences interleave in the pool), and on the CPU 256-token pages too (a page
 * holds 64 KiB of each head there, runs long enough for the hardware prefetchers; 16-token pages
 * are 4 KiB runs): paging should cost little beside contiguous.
 * pf-8k-lin256 is pf-8k through Linformer projections to 256 rows (E, F random, in the K/V dtype).
 * pf-8k and pf-8k-sparse10 are the block-sparse pair: the same prefill dense and with a mask listing
 * 10% of the 64x64 blocks (random, per KV head).
 * dec-32k and dec-32k-topk2k are the top-k pair: decode over 32768 tokens, all of them and the best
 * 2048 by the cache's 64-token block summaries (the keys hold a few blocks aligned with the queries).
 * dec-4100 and dec-stream are the streaming pair: a cache of 4 attention sinks and a ring of 4096
 * after 1,000,000 tokens streamed through it, beside a plain cache of the same 4100 tokens.
 * mla-dec-32k is the MLA decode (DeepSeek's absorbed form: 128 query heads over one latent KV head,
 * Q·K over 576 values, V the first 512 of each cached vector, 32768 tokens, F16 cache), rated in FLOP/s
 * against the FMA peak; mla-pf-4k an MLA prefill shape (D 192, D_v 128, H 32, causal).
 * Fields: name, kind, B, Hq, Hkv, Nq, Nkv, D, causal, q, kv, out, OpenCL path, auto_name, page, ragged,
 * sinks, stream, density (per mille), block_q, topk, sblk, lowrank, Dv, latent. */
static const bench_case default_suite[] = {
    {"A", PF, 1, 8, 8, 1024, 1024, 64, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"A-kv32", PF, 1, 8, 8, 1024, 1024, 64, 0, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"B", PF, 1, 8, 8, 2048, 2048, 128, 1, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"B-kv32", PF, 1, 8, 8, 2048, 2048, 128, 1, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-n256", PF, 1, 8, 8, 256, 256, 64, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-gqa4", PF, 1, 32, 8, 1024, 1024, 128, 1, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-b4", PF, 4, 8, 8, 512, 512, 64, 1, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-q16", PF, 1, 8, 8, 1024, 1024, 64, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"C", DEC, 1, 32, 8, 1, 4096, 128, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"C-kv32", DEC, 1, 32, 8, 1, 4096, 128, 0, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"C-bf16", DEC, 1, 32, 8, 1, 4096, 128, 0, F32, BF16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"E", DEC, 1, 32, 8, 1, 16384, 128, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"E-q8", DEC, 1, 32, 8, 1, 16384, 128, 0, F32, Q8, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"E-q4", DEC, 1, 32, 8, 1, 16384, 128, 0, F32, Q4, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"E-kv32", DEC, 1, 32, 8, 1, 16384, 128, 0, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-n1024", DEC, 1, 32, 8, 1, 1024, 128, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-b4", DEC, 4, 32, 8, 1, 4096, 128, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-nq4", DEC, 1, 32, 8, 4, 4096, 128, 1, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-s64", DEC, 1, 8, 2, 1, 64, 64, 0, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-s256", DEC, 1, 8, 2, 1, 256, 64, 0, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-s1024", DEC, 1, 8, 2, 1, 1024, 64, 0, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag", DEC, 4, 32, 8, 1, 16000, 128, 0, F32, F16, F32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag-p16", DEC, 4, 32, 8, 1, 16000, 128, 0, F32, F16, F32, 0, 0, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag-p64", DEC, 4, 32, 8, 1, 16000, 128, 0, F32, F16, F32, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag-p256", DEC, 4, 32, 8, 1, 16000, 128, 0, F32, F16, F32, 0, 0, 256, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-4100", DEC, 1, 32, 8, 1, 4100, 128, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-stream", DEC, 1, 32, 8, 1, 4100, 128, 0, F32, F16, F32, 0, 0, 0, 0, 4, 1000000, 0, 0, 0, 0, 0, 0, 0},
    {"pf-8k", PF, 1, 8, 8, 8192, 8192, 64, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-8k-sparse10", PF, 1, 8, 8, 8192, 8192, 64, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 100, 64, 0, 0, 0, 0, 0},
    {"pf-8k-lin256", PF, 1, 8, 8, 8192, 8192, 64, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 256, 0, 0},
    {"dec-32k", DEC, 1, 32, 8, 1, 32768, 128, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-32k-topk2k", DEC, 1, 32, 8, 1, 32768, 128, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 2048, 64, 0, 0, 0},
    {"mla-dec-32k", DEC, 1, 128, 1, 1, 32768, 576, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 512, 1},
    {"mla-pf-4k", PF, 1, 32, 32, 4096, 4096, 192, 1, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 0},
};

/* Small, odd sizes (not multiples of the tiles), every dtype path once: seconds, not minutes. */
static const bench_case quick_suite[] = {
    {"q-pf", PF, 1, 4, 4, 200, 200, 64, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"q-pf-causal-gqa", PF, 2, 8, 2, 77, 131, 128, 1, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"q-pf-bf16", PF, 1, 2, 1, 64, 96, 80, 1, BF16, BF16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"q-dec", DEC, 1, 8, 2, 1, 1000, 128, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"q-dec-nq3", DEC, 2, 4, 4, 3, 517, 64, 1, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"q-dec-rag-p16", DEC, 4, 4, 2, 1, 700, 64, 0, F32, F16, F32, 0, 0, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"q-dec-sinks", DEC, 2, 4, 2, 3, 300, 64, 1, F32, BF16, F32, 0, 0, 0, 0, 3, 5000, 0, 0, 0, 0, 0, 0, 0},
    {"q-pf-sparse", PF, 2, 4, 2, 300, 333, 64, 1, F32, F16, F32, 0, 0, 0, 0, 0, 0, 300, 128, 0, 0, 0, 0, 0},
    {"q-dec-topk", DEC, 2, 8, 2, 1, 2000, 64, 0, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 256, 16, 0, 0, 0},
    {"q-pf-linformer", PF, 2, 4, 2, 150, 700, 64, 0, F32, BF16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 72, 0, 0},
    {"q-mla-dec", DEC, 1, 16, 1, 1, 1000, 576, 0, F32, F16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 512, 1},
    {"q-mla-pf", PF, 1, 4, 2, 100, 130, 192, 1, BF16, BF16, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 0},
};

/* CUDA: the shapes of the README's GPU table, a 7B-class layer (H32 D128) at 1K, 4K and 16K prefill
 * and 4K to 128K cached tokens for decode, plus batches with D64. FP16 everywhere, the dtype GPU
 * attention libraries are usually measured in, with one BF16 and one FP32 row for the other paths. */
static const bench_case cuda_suite[] = {
    {"pf-4k", PF, 1, 32, 32, 4096, 4096, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-4k-causal", PF, 1, 32, 32, 4096, 4096, 128, 1, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-16k", PF, 1, 32, 32, 16384, 16384, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-16k-causal", PF, 1, 32, 32, 16384, 16384, 128, 1, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-1k", PF, 1, 32, 32, 1024, 1024, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-b4-d64", PF, 4, 16, 16, 2048, 2048, 64, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-b4-d64-causal", PF, 4, 16, 16, 2048, 2048, 64, 1, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-4k-bf16", PF, 1, 32, 32, 4096, 4096, 128, 0, BF16, BF16, BF16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-4k-f32", PF, 1, 32, 32, 4096, 4096, 128, 0, F32, F32, F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-4k", DEC, 1, 32, 8, 1, 4096, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-32k", DEC, 1, 32, 8, 1, 32768, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-128k", DEC, 1, 32, 8, 1, 131072, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-b16-4k", DEC, 16, 32, 8, 1, 4096, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-128k-bf16", DEC, 1, 32, 8, 1, 131072, 128, 0, BF16, BF16, BF16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag", DEC, 4, 32, 8, 1, 16000, 128, 0, F16, F16, F16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag-p16", DEC, 4, 32, 8, 1, 16000, 128, 0, F16, F16, F16, 0, 0, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag-p64", DEC, 4, 32, 8, 1, 16000, 128, 0, F16, F16, F16, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
};

/* OpenCL: FP16 storage (FP32 arithmetic) at the same H32 D128 layer shape; prefill at 1K and 4K with
 * the fused kernel beside the unfused path (CLBlast GEMMs), so a run shows which one a device favours;
 * decode at 4K and 32K cached tokens; the sparse pairs of issue 13 (block-sparse 10% of 64x64 blocks at
 * N8192 beside dense, decode after 1,000,000 tokens through 4 sinks + a ring of 4096 beside a plain
 * cache of 4100, top-k 2048 of 32768 beside dec-32k). */
static const bench_case opencl_suite[] = {
    {"pf-4k", PF, 1, 32, 32, 4096, 4096, 128, 0, F16, F16, F16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-4k-unfused", PF, 1, 32, 32, 4096, 4096, 128, 0, F16, F16, F16, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-4k-causal", PF, 1, 32, 32, 4096, 4096, 128, 1, F16, F16, F16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-1k", PF, 1, 32, 32, 1024, 1024, 128, 0, F16, F16, F16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-1k-unfused", PF, 1, 32, 32, 1024, 1024, 128, 0, F16, F16, F16, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-1k-f32", PF, 1, 32, 32, 1024, 1024, 128, 0, F32, F32, F32, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-32k", DEC, 1, 32, 8, 1, 32768, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-4k", DEC, 1, 32, 8, 1, 4096, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag", DEC, 4, 32, 8, 1, 16000, 128, 0, F16, F16, F16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag-p16", DEC, 4, 32, 8, 1, 16000, 128, 0, F16, F16, F16, 0, 0, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-rag-p64", DEC, 4, 32, 8, 1, 16000, 128, 0, F16, F16, F16, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-8k", PF, 1, 32, 32, 8192, 8192, 128, 0, F16, F16, F16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"pf-8k-sparse10", PF, 1, 32, 32, 8192, 8192, 128, 0, F16, F16, F16, 1, 0, 0, 0, 0, 0, 100, 64, 0, 0, 0, 0, 0},
    {"dec-4100", DEC, 1, 32, 8, 1, 4100, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dec-stream", DEC, 1, 32, 8, 1, 4100, 128, 0, F16, F16, F16, 0, 0, 0, 0, 4, 1000000, 0, 0, 0, 0, 0, 0, 0},
    {"dec-32k-topk2k", DEC, 1, 32, 8, 1, 32768, 128, 0, F16, F16, F16, 0, 0, 0, 0, 0, 0, 0, 0, 2048, 64, 0, 0, 0},
};

const bench_case *bench_cuda_suite(size_t *count)
{
    *count = sizeof cuda_suite / sizeof cuda_suite[0];
    return cuda_suite;
}

const bench_case *bench_opencl_suite(size_t *count)
{
    *count = sizeof opencl_suite / sizeof opencl_suite[0];
    return opencl_suite;
}

const bench_case *bench_default_suite(size_t *count)
{
    *count = sizeof default_suite / sizeof default_suite[0];
    return default_suite;
}

const bench_case *bench_quick_suite(size_t *count)
{
    *count = sizeof quick_suite / sizeof quick_suite[0];
    return quick_suite;
}
