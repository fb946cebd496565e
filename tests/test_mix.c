/*
 * A long random mix of calls on one context, as an application makes them: prefill attention of
 * varying shapes, dtypes, layouts and masks; KV-cache appends with K and V each in its own dtype and
 * layout, to some or all sequences; decodes of 1..8 query rows; resets of one or all sequences;
 * length queries. Every result is checked: attention and decode against the double reference with
 * canary-filled outputs, the cache's lengths against a shadow kept here.
 *
 * Suites that make one kind of call per context miss state carried from one call to the next (a
 * cache written in one dtype and read in another, a plan sized by one shape and used by another);
 * this one exists for those.
 *
 * Runs on every CPU tier this machine has, or, where AUTO picks a GPU backend, on that backend alone
 * (CUDA on a GPU machine or under the mock driver; OpenCL through tests/opencl's runner).
 * EDGEATTN_TEST_SEED repeats a run; EDGEATTN_TEST_LONG=1 makes it longer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reference.h"
#include "test_common.h"

enum { MAX_B = 4, MAX_L = 3, MAX_HQ = 4, MAX_HKV = 2, MAX_D = 128, MAX_Q = 40, MAX_KV = 150, SHADOW_TOKENS = 320 };

static const edgeattn_dtype k_dtypes[] = {EDGEATTN_F32, EDGEATTN_F16, EDGEATTN_BF16};

/* The cache as the application believes it to be: every token appended to each (layer, sequence) as
 * given (K before RoPE), rounded to the cache dtype only when RoPE is off ([kv][l][b][h][token][d]),
 * and the counts. */
typedef struct shadow {
    edgeattn_dtype dt;
    edgeattn_rope rope;
    int cap, window, sinks, layers; /* cap = sinks + window with a window */
    int page, pages; /* paged cache: tokens per page and the pool (0: contiguous) */
    int heads, dim; /* 0: fixed by the next append */
    int64_t total[MAX_L][MAX_B];
    int held[MAX_L][MAX_B]; /* min(total, cap), less after a truncate below what the ring dropped */
    float *tok;
} shadow;

#define SH(s, kv, l, b, h, p, d)                                                                                    \
    (s)->tok[((((((size_t)(kv) * MAX_L + (size_t)(l)) * MAX_B + (size_t)(b)) * MAX_HKV + (size_t)(h)) *             \
               SHADOW_TOKENS + (size_t)(p)) * MAX_D) + (size_t)(d)]

static int held_of(const shadow *s, int l, int b)
{
    return s->held[l][b];
}

/* The first position of the ring part of (l, b): the held tokens are the sinks [0, min(total, sinks))
 * and [ring_first, total). */
static int64_t ring_first(const shadow *s, int l, int b)
{
    const int64_t t = s->total[l][b], sh = t < s->sinks ? t : s->sinks;
    return t - (s->held[l][b] - sh);
}

/* The position of the j-th token (l, b) holds. */
static int64_t held_pos(const shadow *s, int l, int b, int j)
{
    const int64_t t = s->total[l][b], sh = t < s->sinks ? t : s->sinks;
    return j < sh ? j : ring_first(s, l, b) + (j - sh);
}

/* What the cache holds for token p of (l, b, h): K rotated at p (in double) and rounded to the cache
 * dtype; V rounded. Writes D values. */
static void stored_row(const shadow *s, int kv, int l, int b, int h, int64_t p, float *row)
{
    double x[MAX_D];
    for (int d = 0; d < s->dim; d++)
        x[d] = SH(s, kv, l, b, h, p, d);
    if (kv == 0)
        ea_ref_rope(&s->rope, s->dim, p, x);
    for (int d = 0; d < s->dim; d++)
        row[d] = tc_round(s->dt, (float)x[d]);
}

typedef struct runner {
    char label[96];
    tc_tier tier;
    bool gpu; /* AUTO picked a GPU backend */
} runner;

static int g_nrun;
static runner g_run[9];

static int setup(void **state)
{
    (void)state;
    tc_clear_env();
    /* The backend AUTO picks, when it is not the CPU: then the mix runs there alone (the CPU tiers
     * have their own run of this program, where AUTO picks the CPU). */
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.max_batch = 1;
    cfg.max_q_len = 16;
    cfg.max_kv_len = 16;
    cfg.max_head_dim = 64;
    edgeattn_context *ctx = tc_create(&cfg);
    edgeattn_backend_info info;
    assert_int_equal(edgeattn_get_backend_info(ctx, &info), EDGEATTN_OK);
    if (info.backend != EDGEATTN_BACKEND_CPU) {
        runner *r = &g_run[g_nrun++];
        memset(r, 0, sizeof *r);
        r->gpu = true;
        r->tier.backend = info.backend;
        snprintf(r->label, sizeof r->label, "%s (%.60s)", info.backend_name, info.device);
    }
    edgeattn_destroy(ctx);
    if (g_nrun == 0) {
        tc_tier tiers[8];
        const int n = tc_cpu_tiers(tiers, 8);
        for (int i = 0; i < n && i < 8; i++) {
            g_run[g_nrun].tier = tiers[i];
            snprintf(g_run[g_nrun].label, sizeof g_run[0].label, "cpu tier %.32s", tiers[i].name);
            g_nrun++;
        }
    }
    return 0;
}

static edgeattn_context *create_runner(const runner *r, const edgeattn_config *cfg)
{
    if (r->gpu)
        return tc_create(cfg); /* AUTO: the GPU backend found above */
    return tc_create_tier(cfg, &r->tier);
}

/* B distinct sequence ids in random order; NULL (0..B-1) one time in three. */
static const int32_t *pick_ids(tc_rng *r, int B, int32_t *ids)
{
    if (tc_randint(r, 0, 2) == 0) {
        for (int b = 0; b < B; b++)
            ids[b] = b;
        return NULL;
    }
    int32_t all[MAX_B];
    for (int i = 0; i < MAX_B; i++)
        all[i] = i;
    for (int i = MAX_B - 1; i > 0; i--) {
        const int j = tc_randint(r, 0, i);
        const int32_t t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    memcpy(ids, all, sizeof(int32_t) * (size_t)B);
    return ids;
}

/* ---------------------------------------------------------------- one call of each kind */

/* Prefill attention of a random case on ctx (any shape within the plan). 1 on failure. */
static int op_attention(edgeattn_context *ctx, tc_rng *r, const char *who, int op)
{
    const int B = tc_randint(r, 1, MAX_B), Hkv = tc_randint(r, 1, MAX_HKV);
    const int Hq = Hkv * tc_randint(r, 1, MAX_HQ / Hkv);
    static const int dims[] = {16, 32, 48, 64, 80, 96, 128};
    const int D = TC_PICK(r, dims);
    static const int lens[] = {1, 2, 7, 15, 16, 17, 31, 33, 40};
    const int Nq = TC_PICK(r, lens);
    const int Nkv = tc_randint(r, 0, 2) ? tc_randint(r, 1, MAX_KV) : Nq;
    tc_attn_case c = tc_case(B, Hq, Hkv, Nq, Nkv, D);
    c.qdt = TC_PICK(r, k_dtypes);
    c.kvdt = TC_PICK(r, k_dtypes);
    c.odt = TC_PICK(r, k_dtypes);
    c.qlayout = tc_randint(r, 0, 1);
    c.kvlayout = tc_randint(r, 0, 1);
    c.olayout = tc_randint(r, 0, 1);
    c.pad = tc_randint(r, 0, 3);
    c.causal = tc_randint(r, 0, 1);
    c.wl = tc_randint(r, 0, 3) ? -1 : tc_randint(r, 0, 20);
    c.wr = tc_randint(r, 0, 3) ? -1 : tc_randint(r, 0, 20);
    c.use_kv_lens = tc_randint(r, 0, 2) == 0;
    for (int b = 0; b < B; b++)
        c.kv_lens[b] = tc_randint(r, 0, Nkv);
    c.bias_mode = tc_randint(r, 0, 3) ? TC_BIAS_NONE : tc_randint(r, TC_BIAS_FULL, TC_BIAS_BCAST_BH);
    c.softcap = tc_randint(r, 0, 4) ? 0.0f : 20.0f;
    c.scale = tc_randint(r, 0, 4) ? 0.0f : 0.3f;
    c.lse = tc_randint(r, 0, 1);
    tc_attn_data d;
    tc_attn_prepare(&d, &c, tc_seed(), tc_next(r));
    const tc_result res = tc_attn_run(ctx, &d, tc_tolerance(c.qdt, c.kvdt, c.odt));
    int fail = 0;
    if (!res.ok) {
        char desc[320];
        tc_case_describe(&c, desc, sizeof desc);
        print_error("FAIL %s op %d attention %s\n     %s\n", who, op, desc, res.why);
        fail = 1;
    }
    tc_attn_free(&d);
    return fail;
}

/* Appends 0..n tokens to B sequences (random ids) of a random layer, K and V in random (independent)
 * dtypes and layouts, sometimes one row broadcast to every sequence (stride 0 over B); mirrors them
 * into the shadow. Sequences that would overflow a cache without a window are reset first (also in
 * the shadow). 1 on failure. */
static int op_append(edgeattn_context *ctx, shadow *s, tc_rng *r, const char *who, int op, bool *refused)
{
    if (s->heads == 0) { /* the first append into an empty cache fixes its heads and dim */
        static const int dims[] = {16, 48, 64, 128};
        s->heads = tc_randint(r, 1, MAX_HKV);
        s->dim = TC_PICK(r, dims);
    }
    const int l = tc_randint(r, 0, s->layers - 1), B = tc_randint(r, 1, MAX_B);
    int32_t idbuf[MAX_B];
    const int32_t *ids = pick_ids(r, B, idbuf);
    const bool big = tc_randint(r, 0, 5) == 0; /* a prompt-sized chunk (with a window: past the ring) */
    const int N = big ? tc_randint(r, 9, s->window > 0 ? s->window + 9 : 60) : tc_randint(r, 1, 8);
    const bool all = tc_randint(r, 0, 3) == 0; /* n_new NULL: N rows to every sequence */
    int32_t n_new[MAX_B];
    for (int b = 0; b < B; b++) {
        const int q = idbuf[b];
        n_new[b] = all ? N : tc_randint(r, 0, N);
        const bool full = s->window == 0 && s->total[l][q] + n_new[b] > s->cap;
        if (full || s->total[l][q] + n_new[b] > SHADOW_TOKENS) {
            if (edgeattn_kv_reset(ctx, q) != EDGEATTN_OK) {
                print_error("FAIL %s op %d: kv_reset(%d): %s\n", who, op, q, edgeattn_message_of(ctx));
                return 1;
            }
            for (int ll = 0; ll < MAX_L; ll++)
                s->total[ll][q] = s->held[ll][q] = 0;
        }
    }
    const edgeattn_dtype kdt = TC_PICK(r, k_dtypes), vdt = TC_PICK(r, k_dtypes);
    const int pad = tc_randint(r, 0, 2);
    tc_tensor k, v;
    tc_tensor_alloc(&k, kdt, B, s->heads, N, s->dim, tc_randint(r, 0, 1), pad, pad, pad);
    tc_tensor_alloc(&v, vdt, B, s->heads, N, s->dim, tc_randint(r, 0, 1), 0, 0, pad);
    tc_fill_random(&k, r, -1.0, 1.0);
    tc_fill_random(&v, r, -1.0, 1.0);
    const bool bcast = B > 1 && tc_randint(r, 0, 5) == 0;
    if (bcast) { /* every sequence gets batch row 0's rows */
        k.t.stride[0] = 0;
        v.t.stride[0] = 0;
    }
    int32_t free_before = 0;
    int64_t worst = 0; /* pages this append could take at most: its rows' pages, plus a shared one copied */
    if (s->page > 0) {
        if (edgeattn_kv_pages(ctx, &free_before, NULL) != EDGEATTN_OK) {
            print_error("FAIL %s op %d: kv_pages: %s\n", who, op, edgeattn_message_of(ctx));
            return 1;
        }
        for (int b = 0; b < B; b++)
            worst += (n_new[b] + s->page - 1) / s->page + 1;
    }
    const edgeattn_status st = edgeattn_kv_append(ctx, l, ids, &k.t, &v.t, all ? NULL : n_new, tc_randint(r, 0, 1));
    int fail = 0;
    char said[256];
    snprintf(said, sizeof said, "%s", edgeattn_message_of(ctx));
    int32_t free_after = free_before;
    if (s->page > 0 && edgeattn_kv_pages(ctx, &free_after, NULL) != EDGEATTN_OK)
        fail = 1;
    if (st == EDGEATTN_ERR_CAPACITY && s->page > 0 && worst > free_before) {
        /* the pool may be short: refused with nothing appended and no page taken (the shadow stays,
         * and later decodes and reads check the cache against it) */
        if (free_after != free_before || strstr(said, "page pool") == NULL) {
            print_error("FAIL %s op %d: a refused append took pages (%d -> %d free) or said: %s\n", who, op,
                        (int)free_before, (int)free_after, said);
            fail = 1;
        }
        *refused = true;
    } else if (st != EDGEATTN_OK) {
        print_error("FAIL %s op %d: kv_append layer %d B=%d N=%d k=%s v=%s bcast=%d returned %d: %s\n", who, op, l, B,
                    N, tc_dtype_name(kdt), tc_dtype_name(vdt), (int)bcast, (int)st, said);
        fail = 1;
    } else {
        for (int b = 0; b < B; b++) {
            const int q = idbuf[b];
            for (int h = 0; h < s->heads; h++)
                for (int i = 0; i < n_new[b]; i++)
                    for (int d = 0; d < s->dim; d++) {
                        SH(s, 0, l, q, h, s->total[l][q] + i, d) = tc_get(&k.t, b, h, i, d);
                        SH(s, 1, l, q, h, s->total[l][q] + i, d) = tc_get(&v.t, b, h, i, d);
                    }
            s->total[l][q] += n_new[b];
            s->held[l][q] = s->held[l][q] + n_new[b] < s->cap ? s->held[l][q] + n_new[b] : s->cap;
        }
    }
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    return fail;
}

/* Decode of a random layer over B random sequences, each with its own number of queries (1..8),
 * against the reference over the held tokens (K rotated at their positions, the queries at theirs);
 * rows past a sequence's queries must stay untouched. */
static int op_decode(edgeattn_context *ctx, const shadow *s, tc_rng *r, const char *who, int op)
{
    if (s->heads == 0)
        return 0;
    const int l = tc_randint(r, 0, s->layers - 1);
    int B = tc_randint(r, 1, MAX_B);
    int32_t idbuf[MAX_B];
    const int32_t *ids = pick_ids(r, B, idbuf);
    for (int b = 0; b < B; b++)
        if (held_of(s, l, idbuf[b]) == 0) { /* every sequence of a decode holds tokens */
            B = b;
            break;
        }
    if (B == 0)
        return 0;
    const bool ragged = tc_randint(r, 0, 1);
    int32_t qlens[MAX_B];
    int Nq = 1;
    for (int b = 0; b < B; b++) {
        const int h = held_of(s, l, idbuf[b]);
        qlens[b] = tc_randint(r, 1, h < 8 ? h : 8);
        Nq = qlens[b] > Nq ? qlens[b] : Nq;
    }
    if (!ragged) { /* one Nq for all: the smallest */
        Nq = qlens[0];
        for (int b = 1; b < B; b++)
            Nq = qlens[b] < Nq ? qlens[b] : Nq;
        for (int b = 0; b < B; b++)
            qlens[b] = Nq;
    }
    const int Hq = s->heads * tc_randint(r, 1, MAX_HQ / s->heads), D = s->dim;
    const edgeattn_dtype qdt = TC_PICK(r, k_dtypes), odt = TC_PICK(r, k_dtypes);
    tc_tensor q, out, lse;
    const int pad = tc_randint(r, 0, 2);
    tc_tensor_alloc(&q, qdt, B, Hq, Nq, D, tc_randint(r, 0, 1), pad, pad, pad);
    tc_tensor_alloc(&out, odt, B, Hq, Nq, D, tc_randint(r, 0, 1), pad, pad, pad);
    tc_tensor_alloc(&lse, EDGEATTN_F32, B, Hq, Nq, 1, TC_BHSD, 1, 1, 1);
    tc_fill_random(&q, r, -1.0, 1.0);
    edgeattn_params p;
    edgeattn_params_default(&p);
    p.causal = Nq > 1 ? 1 : tc_randint(r, 0, 1);
    if (tc_randint(r, 0, 3) == 0 && s->sinks == 0) /* (refused over sinks: bad_input checks it) */
        p.window_left = tc_randint(r, 0, 30);
    if (tc_randint(r, 0, 4) == 0)
        p.softcap = 15.0f;
    const bool want_lse = tc_randint(r, 0, 1);
    tc_fill_canary(&out);
    tc_fill_canary(&lse);
    void *out_before = tc_snapshot(&out), *lse_before = tc_snapshot(&lse);
    edgeattn_tensor lt = lse.t;
    p.lse = want_lse ? &lt : NULL;
    const edgeattn_status st = edgeattn_decode(ctx, l, ids, ragged ? qlens : NULL, &q.t, &out.t, &p);
    int fail = 0;
    char why[512] = "";
    double worst = 0.0;
    const double tol = tc_tolerance(qdt, s->dt, odt);
    if (st != EDGEATTN_OK) {
        snprintf(why, sizeof why, "edgeattn_decode returned %d (%s): %s", (int)st, edgeattn_status_string(st),
                 edgeattn_message_of(ctx));
        fail = 1;
    }
    for (int b = 0; b < B && !fail; b++) {
        /* the reference for batch row b: its held tokens as stored, its queries rotated */
        const int seq = idbuf[b], held = held_of(s, l, seq), nq = qlens[b];
        const int64_t total = s->total[l][seq];
        tc_tensor rk, rv, rq;
        tc_tensor_alloc(&rk, EDGEATTN_F32, 1, s->heads, held, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rv, EDGEATTN_F32, 1, s->heads, held, D, TC_BHSD, 0, 0, 0);
        tc_tensor_alloc(&rq, EDGEATTN_F32, 1, Hq, nq, D, TC_BHSD, 0, 0, 0);
        float row[MAX_D];
        for (int h = 0; h < s->heads; h++)
            for (int j = 0; j < held; j++) {
                const int64_t pos = held_pos(s, l, seq, j);
                stored_row(s, 0, l, seq, h, pos, row);
                for (int d = 0; d < D; d++)
                    tc_set(&rk.t, 0, h, j, d, row[d]);
                stored_row(s, 1, l, seq, h, pos, row);
                for (int d = 0; d < D; d++)
                    tc_set(&rv.t, 0, h, j, d, row[d]);
            }
        for (int h = 0; h < Hq; h++)
            for (int i = 0; i < nq; i++) {
                double x[MAX_D];
                for (int d = 0; d < D; d++)
                    x[d] = tc_get(&q.t, b, h, i, d);
                ea_ref_rope(&s->rope, D, total - nq + i, x);
                for (int d = 0; d < D; d++)
                    tc_set(&rq.t, 0, h, i, d, (float)x[d]);
            }
        double *ref = malloc(sizeof(double) * (size_t)Hq * (size_t)nq * (size_t)D);
        double *ref_lse = malloc(sizeof(double) * (size_t)Hq * (size_t)nq);
        assert_non_null(ref);
        assert_non_null(ref_lse);
        edgeattn_params rp = p;
        rp.lse = NULL;
        assert_int_equal(ea_ref_attention(&rq.t, &rk.t, &rv.t, &rp, ref, ref_lse), EDGEATTN_OK);
        double mx = 0.0, err = 0.0;
        for (size_t e = 0; e < (size_t)Hq * (size_t)nq * (size_t)D; e++)
            mx = fabs(ref[e]) > mx ? fabs(ref[e]) : mx;
        const size_t oes = tc_dtype_size(odt);
        for (int h = 0; h < Hq && !fail; h++)
            for (int i = 0; i < Nq && !fail; i++) {
                if (i >= nq) { /* not this sequence's query: untouched */
                    const size_t o0 = tc_off(&out.t, b, h, i, 0);
                    const size_t base = (size_t)((char *)out.t.data - (char *)out.alloc) / oes;
                    if (memcmp((char *)out.t.data + o0 * oes, (char *)out_before + (base + o0) * oes, (size_t)D * oes)) {
                        snprintf(why, sizeof why, "row [%d,%d,%d] past q_lens[%d] = %d was written", b, h, i, b, nq);
                        fail = 1;
                    }
                    const size_t l0 = tc_off(&lse.t, b, h, i, 0);
                    const size_t lbase = (size_t)((char *)lse.t.data - (char *)lse.alloc) / 4;
                    if (want_lse && memcmp((char *)lse.t.data + l0 * 4, (char *)lse_before + (lbase + l0) * 4, 4)) {
                        snprintf(why, sizeof why, "lse [%d,%d,%d] past q_lens[%d] = %d was written", b, h, i, b, nq);
                        fail = 1;
                    }
                    continue;
                }
                for (int d = 0; d < D; d++) {
                    const double got = tc_get(&out.t, b, h, i, d), want = ref[((size_t)h * nq + i) * D + d];
                    const double e = fabs(got - want) / (mx > 0 ? mx : 1.0);
                    if (!(e <= err))
                        err = isnan(e) ? INFINITY : e;
                }
                if (want_lse) {
                    const double got = tc_get(&lse.t, b, h, i, 0), want = ref_lse[(size_t)h * nq + i];
                    if (!(fabs(got - want) <= 1e-3 * (1.0 + fabs(want)))) {
                        snprintf(why, sizeof why, "lse [%d,%d,%d] = %g, reference %g", b, h, i, got, want);
                        fail = 1;
                    }
                }
            }
        worst = err > worst ? err : worst;
        if (!fail && !(err <= tol)) {
            snprintf(why, sizeof why, "batch row %d (seq %d): max|out-ref|/max|ref| = %.3g > %.3g", b, seq, err, tol);
            fail = 1;
        }
        free(ref);
        free(ref_lse);
        tc_tensor_free(&rk);
        tc_tensor_free(&rv);
        tc_tensor_free(&rq);
    }
    if (fail)
        print_error("FAIL %s op %d decode layer %d B=%d Hq=%d Hkv=%d D=%d Nq=%d ragged=%d q=%s out=%s cache=%s "
                    "causal=%d window_left=%d lse=%d\n     %s\n",
                    who, op, l, B, Hq, s->heads, D, Nq, (int)ragged, tc_dtype_name(qdt), tc_dtype_name(odt),
                    tc_dtype_name(s->dt), p.causal, p.window_left, (int)want_lse, why);
    free(out_before);
    free(lse_before);
    tc_tensor_free(&q);
    tc_tensor_free(&out);
    tc_tensor_free(&lse);
    return fail;
}

/* Reads back a random run of held tokens of a random (layer, sequence) and compares it with what the
 * cache should hold (RoPE'd keys, rounded to the cache dtype). */
static int op_read(edgeattn_context *ctx, const shadow *s, tc_rng *r, const char *who, int op)
{
    if (s->heads == 0)
        return 0;
    const int l = tc_randint(r, 0, s->layers - 1), seq = tc_randint(r, 0, MAX_B - 1);
    const int held = held_of(s, l, seq);
    if (held == 0)
        return 0;
    int N = tc_randint(r, 1, held);
    const int j0 = tc_randint(r, 0, held - N);
    const int64_t first = held_pos(s, l, seq, j0);
    while (held_pos(s, l, seq, j0 + N - 1) != first + N - 1) /* one run: not across the sinks' gap */
        N--;
    const edgeattn_dtype kdt = TC_PICK(r, k_dtypes), vdt = TC_PICK(r, k_dtypes);
    tc_tensor k, v;
    tc_tensor_alloc(&k, kdt, 1, s->heads, N, s->dim, tc_randint(r, 0, 1), 1, 1, 1);
    tc_tensor_alloc(&v, vdt, 1, s->heads, N, s->dim, tc_randint(r, 0, 1), 0, 0, 2);
    tc_fill_canary(&k);
    tc_fill_canary(&v);
    const edgeattn_status st = edgeattn_kv_read(ctx, l, seq, first, &k.t, &v.t);
    char why[256] = "";
    if (st != EDGEATTN_OK)
        snprintf(why, sizeof why, "returned %d: %s", (int)st, edgeattn_message_of(ctx));
    else if (!tc_check_written(&k, "k", why, sizeof why) || !tc_check_written(&v, "v", why, sizeof why))
        ;
    else {
        /* one ulp of the coarser of the cache and the destination dtype, RoPE rounding aside */
        const double rel = (s->dt == EDGEATTN_BF16 || kdt == EDGEATTN_BF16 || vdt == EDGEATTN_BF16) ? 8e-3
                           : (s->dt == EDGEATTN_F16 || kdt == EDGEATTN_F16 || vdt == EDGEATTN_F16) ? 1e-3
                                                                                                   : 1e-6;
        float row[MAX_D];
        for (int kv = 0; kv < 2 && !why[0]; kv++)
            for (int h = 0; h < s->heads && !why[0]; h++)
                for (int i = 0; i < N && !why[0]; i++) {
                    stored_row(s, kv, l, seq, h, first + i, row);
                    for (int d = 0; d < s->dim; d++) {
                        const double got = tc_get(kv ? &v.t : &k.t, 0, h, i, d), want = row[d];
                        if (!(fabs(got - want) <= rel * fabs(want) + 1e-6)) {
                            snprintf(why, sizeof why, "%s[%d, pos %lld, %d] = %g, expected %g", kv ? "v" : "k", h,
                                     (long long)(first + i), d, got, want);
                            break;
                        }
                    }
                }
    }
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    if (why[0]) {
        print_error("FAIL %s op %d: kv_read layer %d seq %d first %lld N %d k=%s v=%s: %s\n", who, op, l, seq,
                    (long long)first, N, tc_dtype_name(kdt), tc_dtype_name(vdt), why);
        return 1;
    }
    return 0;
}

/* Truncates a random sequence to a random length (sometimes one the window forbids: refused, nothing
 * changes), or forks one sequence into another. */
static int op_truncate_or_fork(edgeattn_context *ctx, shadow *s, tc_rng *r, const char *who, int op, bool *refused)
{
    const int seq = tc_randint(r, 0, MAX_B - 1);
    if (tc_randint(r, 0, 1)) {
        int dst = tc_randint(r, 0, MAX_B - 2);
        dst += dst >= seq;
        const edgeattn_status st = edgeattn_kv_fork(ctx, seq, dst);
        if (st != EDGEATTN_OK) {
            print_error("FAIL %s op %d: kv_fork(%d, %d) returned %d: %s\n", who, op, seq, dst, (int)st,
                        edgeattn_message_of(ctx));
            return 1;
        }
        for (int l = 0; l < s->layers; l++) {
            s->total[l][dst] = s->total[l][seq];
            s->held[l][dst] = s->held[l][seq];
            memcpy(&SH(s, 0, l, dst, 0, 0, 0), &SH(s, 0, l, seq, 0, 0, 0), sizeof(float) * MAX_HKV * SHADOW_TOKENS * MAX_D);
            memcpy(&SH(s, 1, l, dst, 0, 0, 0), &SH(s, 1, l, seq, 0, 0, 0), sizeof(float) * MAX_HKV * SHADOW_TOKENS * MAX_D);
        }
        return 0;
    }
    int64_t lo = 0, hi = 0; /* every layer can be cut to the lengths in [lo, hi] (and, with sinks, to
                               lengths inside every layer's sinks) */
    for (int l = 0; l < s->layers; l++) {
        const int64_t gone = ring_first(s, l, seq);
        lo = gone > lo ? gone : lo;
        hi = s->total[l][seq] > hi ? s->total[l][seq] : hi;
    }
    const int64_t length = lo > 0 && tc_randint(r, 0, 3) == 0 ? tc_randint(r, 0, (int)lo - 1)
                                                              : lo + tc_randint(r, 0, (int)(hi - lo));
    bool bad = false; /* a layer would keep a token it no longer holds */
    for (int l = 0; l < s->layers; l++) {
        const int64_t t = s->total[l][seq], sh = t < s->sinks ? t : s->sinks;
        if (length < t && length < ring_first(s, l, seq) && !(s->sinks > 0 && length <= sh))
            bad = true;
    }
    *refused = bad;
    const edgeattn_status st = edgeattn_kv_truncate(ctx, seq, length);
    if (st != (bad ? EDGEATTN_ERR_INVALID_ARG : EDGEATTN_OK)) {
        print_error("FAIL %s op %d: kv_truncate(%d, %lld) returned %d, expected %d: %s\n", who, op, seq,
                    (long long)length, (int)st, bad ? EDGEATTN_ERR_INVALID_ARG : 0, edgeattn_message_of(ctx));
        return 1;
    }
    if (!bad)
        for (int l = 0; l < s->layers; l++)
            if (length < s->total[l][seq]) {
                if (length >= ring_first(s, l, seq))
                    s->held[l][seq] -= (int)(s->total[l][seq] - length);
                else /* inside the sinks: only those remain */
                    s->held[l][seq] = (int)length;
                s->total[l][seq] = length;
            }
    return 0;
}

/* kv_length of every (layer, sequence) against the shadow. */
static int op_lengths(edgeattn_context *ctx, const shadow *s, const char *who, int op)
{
    for (int l = 0; l < s->layers; l++)
        for (int b = 0; b < MAX_B; b++) {
            int64_t t = -1;
            int32_t h = -1;
            const edgeattn_status st = edgeattn_kv_length(ctx, l, b, &t, &h);
            if (st != EDGEATTN_OK || t != s->total[l][b] || h != held_of(s, l, b)) {
                print_error("FAIL %s op %d: kv_length(layer %d, seq %d) = %d (%lld, %d), expected (%lld, %d)\n", who,
                            op, l, b, (int)st, (long long)t, (int)h, (long long)s->total[l][b], held_of(s, l, b));
                return 1;
            }
        }
    return 0;
}

static void random_rope(tc_rng *r, edgeattn_rope *rope)
{
    memset(rope, 0, sizeof *rope);
    rope->style = (edgeattn_rope_style)tc_randint(r, 0, 2);
    if (rope->style == EDGEATTN_ROPE_NONE)
        return;
    rope->dim = tc_randint(r, 0, 1) ? 0 : 16; /* all of the head, or the first 16 values */
    rope->theta = tc_randint(r, 0, 1) ? 10000.0f : 500000.0f;
    rope->linear_scale = tc_randint(r, 0, 2) ? 0.0f : 4.0f;
    rope->ntk_alpha = tc_randint(r, 0, 2) ? 0.0f : 8.0f;
}

/* ---------------------------------------------------------------- sessions */

/* One context, `ops` random calls. Returns the failures. */
static int run_session(const runner *run, uint64_t stream, int ops)
{
    tc_rng r;
    tc_rng_init(&r, tc_seed(), stream);
    shadow s;
    memset(&s, 0, sizeof s);
    s.dt = TC_PICK(&r, k_dtypes);
    s.window = tc_randint(&r, 0, 1) ? 0 : tc_randint(&r, 20, 70);
    /* attention sinks beside the ring (the CPU and OpenCL backends so far) */
    const bool sinks_ok = !run->gpu || run->tier.backend == EDGEATTN_BACKEND_OPENCL;
    s.sinks = s.window > 0 && sinks_ok && tc_randint(&r, 0, 1) ? tc_randint(&r, 1, 6) : 0;
    s.cap = s.window > 0 ? s.sinks + s.window : MAX_KV;
    s.layers = tc_randint(&r, 1, MAX_L);
    random_rope(&r, &s.rope);
    if (tc_randint(&r, 0, 1)) { /* paged: a full pool, or one too small for every sequence at once */
        s.page = tc_randint(&r, 0, 1) ? 16 : 32;
        const int full = s.layers * MAX_B * ((s.cap + s.page - 1) / s.page);
        s.pages = tc_randint(&r, 0, 1) ? 0 : tc_randint(&r, full / 3, full);
    }
    s.tok = malloc(sizeof(float) * 2 * MAX_L * MAX_B * MAX_HKV * SHADOW_TOKENS * MAX_D);
    assert_non_null(s.tok);

    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.flags = EDGEATTN_FLAG_KV_CACHE;
    cfg.max_batch = MAX_B;
    cfg.max_q_len = MAX_Q;
    cfg.max_kv_len = MAX_KV;
    cfg.max_heads = MAX_HQ;
    cfg.max_kv_heads = MAX_HKV;
    cfg.max_head_dim = MAX_D;
    cfg.kv_cache_dtype = s.dt;
    cfg.kv_cache_window = s.window;
    cfg.kv_cache_sinks = s.sinks;
    cfg.num_layers = s.layers;
    cfg.rope = s.rope;
    cfg.num_threads = tc_randint(&r, 1, 2);
    cfg.kv_page_size = s.page;
    cfg.kv_pages = s.pages;
    edgeattn_context *ctx = create_runner(run, &cfg);
    char who[256];
    snprintf(who, sizeof who,
             "%s [cache %s, window %d, sinks %d, pages %d x %d, %d layer(s), rope %d/%d/%g, %d thread(s), seed %llu "
             "stream %llu]",
             run->label, tc_dtype_name(s.dt), s.window, s.sinks, s.pages, s.page, s.layers, (int)s.rope.style, (int)s.rope.dim,
             (double)s.rope.theta, cfg.num_threads, (unsigned long long)tc_seed(), (unsigned long long)stream);

    int fails = 0;
    bool stale = false; /* a refused call's message stays until the next call (some ops make none) */
    for (int op = 0; op < ops && fails < 5; op++) {
        const int kind = tc_randint(&r, 0, 99), fails_before = fails;
        bool refused = false; /* the call was meant to fail */
        if (kind < 20)
            fails += op_attention(ctx, &r, who, op);
        else if (kind < 50)
            fails += op_append(ctx, &s, &r, who, op, &refused);
        else if (kind < 80)
            fails += op_decode(ctx, &s, &r, who, op);
        else if (kind < 86)
            fails += op_read(ctx, &s, &r, who, op);
        else if (kind < 92)
            fails += op_truncate_or_fork(ctx, &s, &r, who, op, &refused);
        else if (kind < 96) {
            const int seq = tc_randint(&r, -1, MAX_B - 1);
            if (edgeattn_kv_reset(ctx, seq) != EDGEATTN_OK) {
                print_error("FAIL %s op %d: kv_reset(%d): %s\n", who, op, seq, edgeattn_message_of(ctx));
                fails++;
            }
            for (int l = 0; l < MAX_L; l++)
                for (int b = 0; b < MAX_B; b++)
                    if (seq == -1 || seq == b)
                        s.total[l][b] = s.held[l][b] = 0;
        } else {
            fails += op_lengths(ctx, &s, who, op);
        }
        bool empty = true; /* an empty cache frees its shape for the next append */
        for (int l = 0; l < MAX_L; l++)
            for (int b = 0; b < MAX_B; b++)
                empty = empty && s.total[l][b] == 0;
        if (empty)
            s.heads = s.dim = 0;
        stale = refused || (stale && edgeattn_message_of(ctx)[0] != '\0');
        if (fails == fails_before && !stale && strcmp(edgeattn_message_of(ctx), "") != 0) {
            print_error("FAIL %s op %d: message after a successful call: %s\n", who, op, edgeattn_message_of(ctx));
            fails++;
        }
    }
    fails += op_lengths(ctx, &s, who, ops);
    if (s.page > 0) { /* every page comes back once every sequence is empty */
        int32_t fr = -1, tot = -2;
        if (edgeattn_kv_reset(ctx, -1) != EDGEATTN_OK || edgeattn_kv_pages(ctx, &fr, &tot) != EDGEATTN_OK || fr != tot) {
            print_error("FAIL %s: after kv_reset(-1), %d of %d pages free: %s\n", who, (int)fr, (int)tot,
                        edgeattn_message_of(ctx));
            fails++;
        }
    }
    edgeattn_destroy(ctx);
    free(s.tok);
    return fails;
}

static void test_mix(void **state)
{
    (void)state;
    const int sessions = tc_long() ? 8 : 4, ops = tc_long() ? 400 : 150;
    int fails = 0;
    for (int i = 0; i < g_nrun; i++) {
        for (int k = 0; k < sessions; k++)
            fails += run_session(&g_run[i], (uint64_t)(i * 100 + k), ops);
        print_message("mix: %s: %d sessions of %d calls\n", g_run[i].label, sessions, ops);
    }
    if (fails)
        fail_msg("%d failing call(s) in the mix, see above (EDGEATTN_TEST_SEED=%llu repeats it)", fails,
                 (unsigned long long)tc_seed());
}

/* RoPE far from the start: a ring of 48 tokens after more than 100,000 appended (five chunks of
 * 20011 rows: only the last chunk's last 48 stay), every style, partial rotations and scalings,
 * decoded against the reference with angles in double at those positions. */
static void test_rope_far_positions(void **state)
{
    (void)state;
    enum { W = 48, D = 64, HQ = 4, HKV = 2, NQ = 4, CHUNK = 20011, CHUNKS = 5 };
    const edgeattn_rope ropes[] = {
        {EDGEATTN_ROPE_HALF, 0, 10000.0f, 0.0f, 0.0f, 0},
        {EDGEATTN_ROPE_INTERLEAVED, 0, 500000.0f, 0.0f, 0.0f, 0},
        {EDGEATTN_ROPE_HALF, 32, 10000.0f, 8.0f, 0.0f, 0},
        {EDGEATTN_ROPE_INTERLEAVED, 16, 10000.0f, 0.0f, 4.0f, 0},
    };
    int fails = 0;
    for (int ri = 0; ri < g_nrun; ri++)
        for (int c = 0; c < (int)(sizeof ropes / sizeof ropes[0]); c++) {
            tc_rng r;
            tc_rng_init(&r, tc_seed(), 7000 + (uint64_t)c);
            edgeattn_config cfg;
            edgeattn_config_default(&cfg);
            cfg.flags = EDGEATTN_FLAG_KV_CACHE;
            cfg.max_batch = 1;
            cfg.max_q_len = NQ;
            cfg.max_kv_len = W;
            cfg.kv_cache_window = W;
            cfg.max_heads = HQ;
            cfg.max_kv_heads = HKV;
            cfg.max_head_dim = D;
            cfg.kv_cache_dtype = EDGEATTN_F32;
            cfg.rope = ropes[c];
            edgeattn_context *ctx = create_runner(&g_run[ri], &cfg);
            tc_tensor k, v, q, out;
            tc_tensor_alloc(&k, EDGEATTN_F32, 1, HKV, CHUNK, D, TC_BSHD, 0, 0, 0);
            tc_tensor_alloc(&v, EDGEATTN_F32, 1, HKV, CHUNK, D, TC_BSHD, 0, 0, 0);
            for (int chunk = 0; chunk < CHUNKS; chunk++) {
                tc_fill_random(&k, &r, -1.0, 1.0);
                tc_fill_random(&v, &r, -1.0, 1.0);
                assert_int_equal(edgeattn_kv_append(ctx, 0, NULL, &k.t, &v.t, NULL, 0), EDGEATTN_OK);
            }
            const int64_t total = (int64_t)CHUNK * CHUNKS; /* 100055: the last key sits at 100054 */
            tc_tensor rk, rv, rq;
            tc_tensor_alloc(&rk, EDGEATTN_F32, 1, HKV, W, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&rv, EDGEATTN_F32, 1, HKV, W, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&rq, EDGEATTN_F32, 1, HQ, NQ, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&q, EDGEATTN_F32, 1, HQ, NQ, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&out, EDGEATTN_F32, 1, HQ, NQ, D, TC_BHSD, 1, 1, 1);
            tc_fill_random(&q, &r, -1.0, 1.0);
            double x[D];
            for (int h = 0; h < HKV; h++)
                for (int j = 0; j < W; j++) {
                    for (int d = 0; d < D; d++)
                        x[d] = tc_get(&k.t, 0, h, CHUNK - W + j, d);
                    ea_ref_rope(&ropes[c], D, total - W + j, x);
                    for (int d = 0; d < D; d++) {
                        tc_set(&rk.t, 0, h, j, d, (float)x[d]);
                        tc_set(&rv.t, 0, h, j, d, tc_get(&v.t, 0, h, CHUNK - W + j, d));
                    }
                }
            for (int h = 0; h < HQ; h++)
                for (int i = 0; i < NQ; i++) {
                    for (int d = 0; d < D; d++)
                        x[d] = tc_get(&q.t, 0, h, i, d);
                    ea_ref_rope(&ropes[c], D, total - NQ + i, x);
                    for (int d = 0; d < D; d++)
                        tc_set(&rq.t, 0, h, i, d, (float)x[d]);
                }
            edgeattn_params p;
            edgeattn_params_default(&p);
            p.causal = 1;
            double ref[HQ * NQ * D], ref_lse[HQ * NQ];
            assert_int_equal(ea_ref_attention(&rq.t, &rk.t, &rv.t, &p, ref, ref_lse), EDGEATTN_OK);
            tc_result res;
            tc_decode_compare(&res, ctx, &q.t, &out, NULL, &p, ref, ref_lse, 1, HQ, NQ, D, 2e-5);
            const edgeattn_status st = res.status;
            /* and the keys read back: rotated as the reference rotates them */
            tc_tensor bk, bv;
            tc_tensor_alloc(&bk, EDGEATTN_F32, 1, HKV, W, D, TC_BHSD, 0, 0, 0);
            tc_tensor_alloc(&bv, EDGEATTN_F32, 1, HKV, W, D, TC_BHSD, 0, 0, 0);
            if (res.ok || st == EDGEATTN_OK) {
                const edgeattn_status rs = edgeattn_kv_read(ctx, 0, 0, total - W, &bk.t, &bv.t);
                if (rs != EDGEATTN_OK) {
                    snprintf(res.why, sizeof res.why, "kv_read returned %d: %s", (int)rs, edgeattn_message_of(ctx));
                    res.ok = false;
                } else
                    for (int h = 0; h < HKV && res.ok; h++)
                        for (int j = 0; j < W && res.ok; j++)
                            for (int d = 0; d < D; d++) {
                                const double got = tc_get(&bk.t, 0, h, j, d), want = tc_get(&rk.t, 0, h, j, d);
                                if (!(fabs(got - want) <= 2e-6)) {
                                    snprintf(res.why, sizeof res.why, "kv_read k[%d, pos %lld, %d] = %.9g, reference %.9g",
                                             h, (long long)(total - W + j), d, got, want);
                                    res.ok = false;
                                    break;
                                }
                            }
            }
            if (st != EDGEATTN_OK || !res.ok) {
                print_error("FAIL rope far: %s, rope style %d dim %d theta %g scale %g alpha %g: %s\n",
                            g_run[ri].label, (int)ropes[c].style, (int)ropes[c].dim, (double)ropes[c].theta,
                            (double)ropes[c].linear_scale, (double)ropes[c].ntk_alpha, res.why);
                fails++;
            }
            tc_tensor *all[] = {&k, &v, &q, &out, &rk, &rv, &rq, &bk, &bv};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                tc_tensor_free(all[i]);
            edgeattn_destroy(ctx);
        }
    if (fails)
        fail_msg("%d RoPE case(s) failed at positions past 100,000 (seed %llu)", fails, (unsigned long long)tc_seed());
}

/* The page pool's accounting, step by step, on each runner: pages taken as tokens arrive, shared by
 * a fork, copied when a sharer writes into a shared page (the other keeps its rows), given back by
 * truncate and reset; a full pool refuses an append whole. Rows are checked through kv_read. */
static int pool_expect(edgeattn_context *ctx, int want_free, const char *label, const char *step)
{
    int32_t fr = -1, tot = -1;
    if (edgeattn_kv_pages(ctx, &fr, &tot) != EDGEATTN_OK || fr != want_free || tot != 10) {
        print_error("FAIL paged pool %s, %s: %d of %d pages free, expected %d of 10\n", label, step, (int)fr, (int)tot,
                    want_free);
        return 1;
    }
    return 0;
}

static int pool_append(edgeattn_context *ctx, int layer, int seq, int n, tc_tensor *src, int first_row)
{
    edgeattn_tensor k = src->t; /* rows [first_row, first_row + n) of src as K and V (V negated below) */
    k.data = (char *)k.data + (size_t)first_row * (size_t)k.stride[2] * sizeof(float);
    k.shape[2] = n;
    k.bytes -= (size_t)first_row * (size_t)k.stride[2] * sizeof(float);
    const int32_t id = seq;
    return (int)edgeattn_kv_append(ctx, layer, &id, &k, &k, NULL, 0);
}

/* Does (layer, seq) hold rows[first .. first + n) at positions pos .. pos + n - 1? */
static int pool_holds(edgeattn_context *ctx, int layer, int seq, int64_t pos, const tc_tensor *rows, int first, int n,
                      const char *label, const char *step)
{
    tc_tensor k, v;
    tc_tensor_alloc(&k, EDGEATTN_F32, 1, 1, n, 16, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&v, EDGEATTN_F32, 1, 1, n, 16, TC_BHSD, 0, 0, 0);
    int bad = edgeattn_kv_read(ctx, layer, seq, pos, &k.t, &v.t) != EDGEATTN_OK;
    for (int i = 0; i < n && !bad; i++)
        for (int d = 0; d < 16; d++)
            if (tc_get(&k.t, 0, 0, i, d) != tc_get(&rows->t, 0, 0, first + i, d) ||
                tc_get(&v.t, 0, 0, i, d) != tc_get(&rows->t, 0, 0, first + i, d)) {
                bad = 1;
                break;
            }
    if (bad)
        print_error("FAIL paged pool %s, %s: layer %d seq %d positions %lld.. do not hold the rows appended: %s\n",
                    label, step, layer, seq, (long long)pos, edgeattn_message_of(ctx));
    tc_tensor_free(&k);
    tc_tensor_free(&v);
    return bad;
}

static void test_paged_pool(void **state)
{
    (void)state;
    tc_rng r;
    tc_rng_init(&r, tc_seed(), 777);
    tc_tensor a, b; /* rows of sequence 0 (and its prefix) and of the fork's continuation */
    tc_tensor_alloc(&a, EDGEATTN_F32, 1, 1, 120, 16, TC_BHSD, 0, 0, 0);
    tc_tensor_alloc(&b, EDGEATTN_F32, 1, 1, 120, 16, TC_BHSD, 0, 0, 0);
    tc_fill_random(&a, &r, -1.0, 1.0);
    tc_fill_random(&b, &r, -1.0, 1.0);
    int fails = 0;
    for (int ri = 0; ri < g_nrun; ri++) {
        edgeattn_config cfg;
        edgeattn_config_default(&cfg);
        cfg.flags = EDGEATTN_FLAG_KV_CACHE;
        cfg.max_batch = 3;
        cfg.max_q_len = 4;
        cfg.max_kv_len = 100; /* 7 pages of 16 per (layer, sequence) */
        cfg.max_heads = 1;
        cfg.max_kv_heads = 1;
        cfg.max_head_dim = 16;
        cfg.kv_cache_dtype = EDGEATTN_F32;
        cfg.num_layers = 2;
        cfg.kv_page_size = 16;
        cfg.kv_pages = 10;
        edgeattn_context *ctx = create_runner(&g_run[ri], &cfg);
        const char *lb = g_run[ri].label;
        int f = 0;
        f += pool_expect(ctx, 10, lb, "fresh");
        f += pool_append(ctx, 0, 0, 40, &a, 0) != EDGEATTN_OK;
        f += pool_expect(ctx, 7, lb, "40 tokens: 3 pages");
        f += edgeattn_kv_fork(ctx, 0, 1) != EDGEATTN_OK;
        f += pool_expect(ctx, 7, lb, "fork: pages shared");
        f += pool_append(ctx, 0, 1, 1, &b, 0) != EDGEATTN_OK;
        f += pool_expect(ctx, 6, lb, "the fork writes into the shared third page: copied");
        f += pool_append(ctx, 0, 1, 8, &b, 1) != EDGEATTN_OK;
        f += pool_expect(ctx, 5, lb, "8 more: one new page");
        f += pool_holds(ctx, 0, 0, 0, &a, 0, 40, lb, "the source keeps its rows");
        f += pool_holds(ctx, 0, 1, 0, &a, 0, 40, lb, "the fork's prefix");
        f += pool_holds(ctx, 0, 1, 40, &b, 0, 9, lb, "the fork's own rows");
        f += edgeattn_kv_truncate(ctx, 1, 20) != EDGEATTN_OK;
        f += pool_expect(ctx, 7, lb, "the fork cut to 20: its two own pages back");
        f += pool_holds(ctx, 0, 1, 0, &a, 0, 20, lb, "the fork after the cut");
        f += pool_append(ctx, 1, 2, 100, &b, 0) != EDGEATTN_OK;
        f += pool_expect(ctx, 0, lb, "100 tokens in layer 1: 7 pages");
        f += pool_append(ctx, 0, 0, 1, &b, 50) != EDGEATTN_OK; /* position 40: the third page has room */
        f += pool_expect(ctx, 0, lb, "one token into a page it owns");
        if (pool_append(ctx, 0, 0, 8, &b, 51) != EDGEATTN_ERR_CAPACITY ||
            strstr(edgeattn_message_of(ctx), "page pool") == NULL) {
            print_error("FAIL paged pool %s: an append past a full pool: %s\n", lb, edgeattn_message_of(ctx));
            f++;
        }
        int64_t total = -1;
        f += edgeattn_kv_length(ctx, 0, 0, &total, NULL) != EDGEATTN_OK || total != 41;
        f += pool_expect(ctx, 0, lb, "the refused append took nothing");
        f += pool_append(ctx, 1, 1, 1, &b, 0) != EDGEATTN_ERR_CAPACITY; /* a first page: none left either */
        f += edgeattn_kv_reset(ctx, 2) != EDGEATTN_OK;
        f += pool_expect(ctx, 7, lb, "reset of sequence 2");
        f += edgeattn_kv_reset(ctx, -1) != EDGEATTN_OK;
        f += pool_expect(ctx, 10, lb, "reset of all");
        edgeattn_destroy(ctx);
        if (f)
            print_error("FAIL paged pool %s: %d step(s) failed\n", lb, f);
        fails += f;
    }
    tc_tensor_free(&a);
    tc_tensor_free(&b);
    if (fails)
        fail_msg("%d paged-pool step(s) failed, see above", fails);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mix), cmocka_unit_test(test_rope_far_positions),
                                       cmocka_unit_test(test_paged_pool)};
    return cmocka_run_group_tests(tests, setup, NULL);
}
