/*
 * edgebench --tune: searches the knobs the chosen backend reads (the EDGEATTN_* variables a tuning
 * file persists: CPU tiles and inline threshold, CUDA split rule and decode kernel, OpenCL tiles,
 * unrolls, prefetch, register caps and path) for the cases given, by coordinate descent: one knob (or one part
 * of a composite knob) at a time, each candidate value with the others at their best so far, the
 * knobs taken in turn, each one's likeliest values first; after each pass, joint moves of several of
 * one OpenCL kernel's knobs at once (tile, unroll, register cap, prefetch), the likeliest combinations
 * first (joint_moves). A candidate is timed on every case side by side with the defaults (two
 * contexts, the same inputs, their calls alternating: bench_run_pair) and checked against the double
 * reference; one whose answer is over its error bound, or that the library refuses, is discarded. The
 * score is the geometric mean of the cases' fastest samples relative to the defaults' in the same
 * pair; a candidate that slows any case by more than MAX_CASE_LOSS (after RECHECK_ROUNDS more pairs
 * of that case) is not taken. The search stops at the time budget or on Ctrl-C, keeping the best so
 * far; the best is confirmed beside the defaults (else the defaults stay), the file is written, then
 * every case is timed with the defaults and with the file, alternately, side by side.
 */
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define MAX_VALUES 64
#define MAX_KNOBS 16
/* A candidate is taken only if no case is slower than with the defaults by more than this (the
 * fastest samples): tuning must not trade one shape for another. */
#define MAX_CASE_LOSS 1.05
/* Further rounds, each of only the cases then over MAX_CASE_LOSS, before a loss counts. */
#define RECHECK_ROUNDS 2
/* Rounds of the closing comparison (defaults and the file timed alternately, each case's fastest). */
#define FINAL_ROUNDS 3
/* Values per knob in the first pass (the default and the likeliest FIRST_WIDTH - 1 others). */
#define FIRST_WIDTH 5

/* One dimension of the search: knob `name`, or the part `part` ("pf=") of a composite knob whose
 * parts are joined by commas. values[0] is "" (the library's default). */
typedef struct dim {
    const char *name;
    const char *part; /* NULL: the whole value */
    int nvalues;
    char values[MAX_VALUES][128];
    int best; /* index into values */
    bool refused[MAX_VALUES]; /* discarded once: not tried again */
    int kernel; /* the OpenCL kernel a TILES part sets (K_PF, K_PFH, K_DEC), else K_ANY */
    int joint;  /* joint moves (several of one kernel's knobs at once): 0 not part of them, else 1 + the
                   rank its first alternative counts as beyond 1 (a less likely partner comes later) */
} dim;

enum { K_ANY, K_PF, K_PFH, K_DEC };

static volatile sig_atomic_t g_stop;
static int g_flip; /* paired(): which side leads in its first round, alternating from call to call */

static void on_sigint(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void add(dim *d, const char *fmt, int a, int b, int c, int e)
{
    if (d->nvalues < MAX_VALUES)
        snprintf(d->values[d->nvalues++], sizeof d->values[0], fmt, a, b, c, e);
}

/* Adds value v unless the dimension has it already. */
static void add_str(dim *d, const char *v)
{
    for (int i = 1; i < d->nvalues; i++)
        if (!strcmp(d->values[i], v))
            return;
    if (d->nvalues < MAX_VALUES)
        snprintf(d->values[d->nvalues++], sizeof d->values[0], "%s", v);
}

/* Factor-of-two steps between a and b (powers of two apart). */
static int steps(int a, int b)
{
    int n = 0;
    for (; a > b; a /= 2)
        n++;
    for (; b > a; b /= 2)
        n++;
    return n;
}

/* The search space of the backend of info; returns the number of dimensions. */
static int space(const edgeattn_backend_info *info, dim *dims)
{
    const edgeattn_backend backend = info->backend;
    int n = 0;
    memset(dims, 0, sizeof(dim) * MAX_KNOBS);
    for (int i = 0; i < MAX_KNOBS; i++)
        dims[i].nvalues = 1; /* values[0]: "" = default */
    if (backend == EDGEATTN_BACKEND_CPU) {
        /* nearest the defaults first (a short budget tries the neighbours, not the far corners): the
         * tiles of cpu_simd/tune.c's table for the tier, the inline thresholds of cpu_simd/attn_cpu.h */
        const bool wide = !strcmp(info->tier, "avx2") || !strcmp(info->tier, "avx512");
        const bool neon = !strncmp(info->tier, "neon", 4);
        const int kb0 = wide ? 256 : 128, rb0 = wide ? 128 : neon ? 64 : 32;
        dim *t = &dims[n++];
        t->name = "EDGEATTN_CPU_TILES";
        static const int kbs[] = {64, 128, 256, 512}, rbs[] = {32, 64, 128, 256};
        for (int dist = 1; dist <= 8; dist++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    if (steps(kbs[i], kb0) + steps(rbs[j], rb0) == dist)
                        add(t, "kb=%d,rb=%d", kbs[i], rbs[j], 0, 0);
        dim *in = &dims[n++];
        in->name = "EDGEATTN_CPU_INLINE";
        static const int aw[] = {16384, 65536, 262144}, as[] = {262144, 1048576, 4194304};
        for (int dist = 1; dist <= 8; dist++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    if (steps(aw[i], 65536) + steps(as[j], 1048576) == dist)
                        add(in, "%d,%d", aw[i], as[j], 0, 0);
    } else if (backend == EDGEATTN_BACKEND_CUDA) {
        dim *sp = &dims[n++];
        sp->name = "EDGEATTN_CUDA_SPLITS";
        static const int keys[] = {64, 128, 256, 512, 1024}, waves[] = {1, 2, 4};
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 3; j++)
                add(sp, "keys=%d,waves=%d", keys[i], waves[j], 0, 0);
        dim *dk = &dims[n++];
        dk->name = "EDGEATTN_CUDA_DECODE";
        add(dk, "small", 0, 0, 0, 0);
        add(dk, "simt", 0, 0, 0, 0);
    } else if (backend == EDGEATTN_BACKEND_OPENCL) {
        /* prefill with F16 Q, decode, prefill with F32 Q; the other device classes' rows first (the
         * likeliest), then a grid with larger tiles first (GPUs favour them) */
        static const char *const parts[] = {"pfh=", "dec=", "pf="};
        static const int kernels[] = {K_PFH, K_DEC, K_PF}; /* the order of every part list below */
        for (int p = 0; p < 3; p++) {
            dim *t = &dims[n++];
            t->name = "EDGEATTN_OPENCL_TILES";
            t->part = parts[p];
            t->kernel = kernels[p];
            t->joint = 1;
            if (p != 1) { /* BM x TM x BN x TN [x PM] */
                static const char *const seeds[] = {"64x2x32x4x4", "64x4x16x2x8", "32x4x16x4", "16x2x16x4", "32x8x32x4"};
                for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
                    add_str(t, seeds[i]);
                static const int bm[] = {64, 32, 16}, tm[] = {4, 2}, bn[] = {16, 32, 64}, tn[] = {2, 4}, pm[] = {8, 4};
                for (int a = 0; a < 3; a++)
                    for (int b = 0; b < 2; b++)
                        for (int c = 0; c < 3; c++)
                            for (int e = 0; e < 2; e++) {
                                char v[40];
                                if (bm[a] < 64) {
                                    snprintf(v, sizeof v, "%dx%dx%dx%d", bm[a], tm[b], bn[c], tn[e]);
                                    add_str(t, v);
                                    continue;
                                }
                                for (int f = 0; f < 2; f++) {
                                    snprintf(v, sizeof v, "%dx%dx%dx%dx%d", bm[a], tm[b], bn[c], tn[e], pm[f]);
                                    add_str(t, v);
                                }
                            }
            } else { /* decode: few rows, long key tiles */
                static const int bm[] = {8, 4, 16}, bn[] = {64, 128, 32}, tn[] = {4, 2};
                for (int a = 0; a < 3; a++)
                    for (int c = 0; c < 3; c++)
                        for (int e = 0; e < 2; e++)
                            add(t, "%dx1x%dx%d", bm[a], bn[c], tn[e], 0);
            }
        }
        dim *path = &dims[n++];
        path->name = "EDGEATTN_OPENCL_PATH";
        add(path, "unfused", 0, 0, 0, 0);
        /* the query rows up to which the decode kernel takes a call (multi-token decode, wide GQA groups) */
        dim *dmr = &dims[n++];
        dmr->name = "EDGEATTN_OPENCL_TILES";
        dmr->part = "dmr=";
        dmr->kernel = K_DEC;
        add_str(dmr, "32");
        add_str(dmr, "16");
        add_str(dmr, "64");
        /* each kernel's unroll factors (score loop x P.V loop) */
        static const char *const uparts[] = {"upfh=", "udec=", "upf="};
        static const char *const unrolls[2][5] = {{"8x4", "16x4", "4x4", "8x2", "4x2"},
                                                  {"16x4", "8x4", "32x4", "16x2", "4x2"}};
        for (int p = 0; p < 3; p++) {
            dim *u = &dims[n++];
            u->name = "EDGEATTN_OPENCL_TILES";
            u->part = uparts[p];
            u->kernel = kernels[p];
            u->joint = 1;
            for (int i = 0; i < 5; i++)
                add_str(u, unrolls[p == 1][i]);
        }
        /* each kernel's register prefetch (off, on), and on NVIDIA its register cap (none: 0) */
        static const char *const pparts[] = {"ppfh=", "pdec=", "ppf="}, *const rparts[] = {"rpfh=", "rdec=", "rpf="};
        for (int p = 0; p < 3; p++) {
            dim *x = &dims[n++];
            x->name = "EDGEATTN_OPENCL_TILES";
            x->part = pparts[p];
            x->kernel = kernels[p];
            x->joint = 3; /* the prefetch: its default is usually one of the two values already */
            add_str(x, "0");
            add_str(x, "1");
        }
        if (strstr(info->device, "NVIDIA"))
            for (int p = 0; p < 3; p++) {
                dim *x = &dims[n++];
                x->name = "EDGEATTN_OPENCL_TILES";
                x->part = rparts[p];
                x->kernel = kernels[p];
                x->joint = 1;
                static const char *const caps[] = {"128", "0", "168", "96"};
                for (int i = 0; i < 4; i++)
                    add_str(x, caps[i]);
            }
    }
    return n;
}

/* Sets every knob of dims in the environment, dimension i at value vals[i] (vals NULL: every one at
 * its default); "" unsets. */
static void apply_vals(const dim *dims, int n, const int *vals)
{
    for (int i = 0; i < n; i++) {
        bool first_of_name = true;
        for (int j = 0; j < i; j++)
            first_of_name = first_of_name && strcmp(dims[j].name, dims[i].name) != 0;
        if (!first_of_name)
            continue;
        char value[256] = "";
        for (int j = i; j < n; j++) {
            if (strcmp(dims[j].name, dims[i].name) != 0)
                continue;
            const char *x = vals ? dims[j].values[vals[j]] : "";
            if (!*x)
                continue;
            const size_t len = strlen(value);
            snprintf(value + len, sizeof value - len, "%s%s%s", len ? "," : "", dims[j].part ? dims[j].part : "", x);
        }
        if (*value)
            setenv(dims[i].name, value, 1);
        else
            unsetenv(dims[i].name);
    }
}

/* Sets every knob of dims (with dimension `which` at value `v`, the others at their best) in the
 * environment; which -2: every knob at its default. */
static void apply(const dim *dims, int n, int which, int v)
{
    int vals[MAX_KNOBS];
    for (int i = 0; i < n; i++)
        vals[i] = i == which ? v : dims[i].best;
    apply_vals(dims, n, which == -2 ? NULL : vals);
}

/* The configuration the second context of a pair is created under: the knobs vals, or the file. */
typedef struct alt_cfg {
    const dim *dims;
    int nd;
    const int *vals;
    const char *file;
} alt_cfg;

static void alt_set(void *arg, int on)
{
    const alt_cfg *a = arg;
    if (a->file) {
        if (on)
            setenv("EDGEATTN_TUNING_FILE", a->file, 1);
        else
            unsetenv("EDGEATTN_TUNING_FILE");
    } else {
        apply_vals(a->dims, a->nd, on ? a->vals : NULL);
    }
}

/* Times every case with the defaults and with the alternative (the knobs vals, else the tuning file as
 * the library loads it) side by side: two contexts fed the same inputs, their calls alternating
 * (bench_run_pair), so a machine's slow drift and other load fall on both alike. `rounds` rounds keep
 * each case's fastest sample of each in def[] and alt[]; *worst gets the largest alt/def of one case.
 * Returns the geometric mean of alt/def, NAN when a case failed, was refused or was wrong. */
static double paired(const bench_case *cases, size_t ncases, const bench_opts *o, const dim *dims, int nd,
                     const int *vals, const char *file, int rounds, double *def, double *alt, double *worst)
{
    alt_cfg a = {dims, nd, vals, file};
    bench_alt ba = {alt_set, &a, 0};
    for (size_t k = 0; k < ncases; k++)
        def[k] = alt[k] = INFINITY;
    apply_vals(dims, nd, NULL);
    /* `rounds` rounds of every case, then up to RECHECK_ROUNDS more of each case still over MAX_CASE_LOSS:
     * one slow pair is more often a busy moment than a real loss, and a loss that is real stays */
    for (int round = 0; round < rounds + RECHECK_ROUNDS && !g_stop; round++)
        for (size_t k = 0; k < ncases && !g_stop; k++) {
            if (round >= rounds && !(alt[k] > MAX_CASE_LOSS * def[k]))
                continue;
            bench_result rd, ra;
            char err[512];
            ba.first = (round + g_flip) & 1; /* who is created and timed first alternates between rounds */
            if (bench_run_pair(&cases[k], o, &ba, &rd, &ra, err, sizeof err) != 0)
                return NAN;
            const double bound = bench_error_bound(&cases[k]);
            if (!(rd.max_rel_err <= bound) || !(ra.max_rel_err <= bound))
                return NAN;
            def[k] = rd.min_ms < def[k] ? rd.min_ms : def[k];
            alt[k] = ra.min_ms < alt[k] ? ra.min_ms : alt[k];
        }
    g_flip ^= 1;
    if (g_stop)
        return NAN;
    double logsum = 0.0;
    *worst = 0.0;
    for (size_t k = 0; k < ncases; k++) {
        logsum += log(alt[k] / def[k]);
        *worst = alt[k] / def[k] > *worst ? alt[k] / def[k] : *worst;
    }
    return exp(logsum / (double)ncases);
}

/* Joint moves: the first pass's reach (the sum of the moved knobs' ranks), one more each later pass. */
#define JOINT_FIRST_COST 3
/* Candidates of one pass's joint moves at most, and configurations remembered (not timed twice). */
#define MAX_JOINT 512
#define MAX_SEEN 4096

typedef struct search {
    dim *dims;
    int nd;
    const bench_case *cases;
    size_t ncases;
    const bench_opts *o;
    double *base, *times;
    FILE *tab;
    double t0, seconds;
    int total;
    double best;
    int tried, discarded;
    bool improved;
    int (*seen)[MAX_KNOBS]; /* value indices of every configuration timed */
    int nseen;
} search;

/* Times the configuration vals (a value index per dimension; those differing from the best are the
 * move: one dimension, `single`, or several of one kernel's with single -1), takes it when it beats the
 * best by half a percent with no case over MAX_CASE_LOSS, and prints a line. Returns false when the
 * budget is spent or the search was interrupted. */
static bool try_candidate(search *st, const int *vals, int single)
{
    dim *dims = st->dims;
    const int nd = st->nd;
    for (int i = 0; i < st->nseen; i++)
        if (!memcmp(st->seen[i], vals, sizeof(int) * (size_t)nd))
            return true; /* timed already (an earlier pass, or a joint move that a single one became) */
    const double left = st->seconds - (bench_now_s() - st->t0);
    if (left <= 0.0) {
        g_stop = 2;
        return false;
    }
    if (st->seen && st->nseen < MAX_SEEN)
        memcpy(st->seen[st->nseen++], vals, sizeof(int) * (size_t)nd);
    /* the move's label (before a taken move becomes the best): the dimensions it sets off their best */
    char what[512] = "";
    const char *name = NULL;
    for (int i = 0; i < nd; i++) {
        if (single >= 0 ? i != single : vals[i] == dims[i].best)
            continue;
        const size_t len = strlen(what);
        snprintf(what + len, sizeof what - len, "%s%s%s", len ? "+" : "", dims[i].part ? dims[i].part : "",
                 dims[i].values[vals[i]]);
        name = dims[i].name;
    }
    double worst = 0.0;
    const double s = paired(st->cases, st->ncases, st->o, dims, nd, vals, NULL, 1, st->base, st->times, &worst);
    st->tried++;
    if (g_stop == 1)
        return false;
    const char *mark = "";
    if (isnan(s)) {
        st->discarded++;
        if (single >= 0)
            dims[single].refused[vals[single]] = true; /* refused tiles stay refused; a wrong answer is not retried */
        mark = "  discarded (refused or wrong)";
    } else if (s < st->best * 0.995 && worst <= MAX_CASE_LOSS) { /* half a percent: not a measurement's noise */
        st->best = s;
        for (int i = 0; i < nd; i++)
            dims[i].best = vals[i];
        mark = "  best";
        st->improved = true;
    } else if (s < st->best * 0.995) {
        mark = "  (one case slower than the defaults: not taken)";
    }
    char span[160] = ""; /* the cases it helped and hurt most */
    if (!isnan(s)) {
        size_t lo = 0, hi = 0;
        for (size_t k = 1; k < st->ncases; k++) {
            lo = st->times[k] / st->base[k] < st->times[lo] / st->base[lo] ? k : lo;
            hi = st->times[k] / st->base[k] > st->times[hi] / st->base[hi] ? k : hi;
        }
        snprintf(span, sizeof span, " (%s %.3fx .. %s %.3fx)", st->cases[lo].name, st->times[lo] / st->base[lo],
                 st->cases[hi].name, st->times[hi] / st->base[hi]);
    }
    if (single >= 0)
        fprintf(st->tab, "  [%3d/%d] %s=%s: %s%.3fx of default%s, best %.3fx, %.0f s left%s\n", st->tried,
                st->total, name, what, isnan(s) ? "-" : "", isnan(s) ? 0.0 : s, span, st->best, left, mark);
    else
        fprintf(st->tab, "  [%3d] joint %s=%s: %s%.3fx of default%s, best %.3fx, %.0f s left%s\n", st->tried,
                name ? name : "", what, isnan(s) ? "-" : "", isnan(s) ? 0.0 : s, span, st->best, left, mark);
    fflush(st->tab);
    return true;
}

typedef struct joint {
    int cost, moved, kernel; /* sort keys: the ranks' sum, knobs moved (more first), kernel (in turn) */
    int seq;
    int vals[MAX_KNOBS];
} joint;

static int joint_cmp(const void *a, const void *b)
{
    const joint *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost - y->cost;
    if (x->moved != y->moved)
        return y->moved - x->moved;
    if (x->kernel != y->kernel)
        return x->kernel - y->kernel;
    return x->seq - y->seq;
}

/* The alternatives of dimension d to its best, likeliest first: its values in order, the default last;
 * refused values left out. Returns how many. */
static int alternatives(const dim *d, int *alt)
{
    int n = 0;
    for (int v = 1; v <= d->nvalues; v++) {
        const int x = v == d->nvalues ? 0 : v;
        if (x != d->best && !d->refused[x])
            alt[n++] = x;
    }
    return n;
}

/* Enumerates the moves of one kernel's joint dimensions ks[0..nk) from index at on: each either at its
 * best (rank 0) or at its r-th alternative (cost r + joint - 1), into list while the cost stays <= cap. */
static void joint_enum(const search *st, const int *ks, int nk, int at, int *vals, int cost, int moved, int cap,
                       int kernel, joint *list, int *n, int (*alt)[MAX_VALUES], const int *nalt)
{
    if (at == nk) {
        if (moved >= 2 && *n < MAX_JOINT) {
            joint *j = &list[*n];
            j->cost = cost;
            j->moved = moved;
            j->kernel = kernel;
            j->seq = *n;
            memcpy(j->vals, vals, sizeof(int) * (size_t)st->nd);
            (*n)++;
        }
        return;
    }
    const dim *d = &st->dims[ks[at]];
    joint_enum(st, ks, nk, at + 1, vals, cost, moved, cap, kernel, list, n, alt, nalt);
    for (int r = 1; r <= nalt[at] && cost + r + d->joint - 1 <= cap; r++) {
        vals[ks[at]] = alt[at][r - 1];
        joint_enum(st, ks, nk, at + 1, vals, cost + r + d->joint - 1, moved + 1, cap, kernel, list, n, alt, nalt);
        vals[ks[at]] = d->best;
    }
}

/* Joint moves: two or more knobs of one kernel (its tile, unroll, register cap and prefetch) at once,
 * each at one of its alternatives to the best so far; ordered by the sum of the alternatives' ranks
 * (each knob's values are listed likeliest first), then more knobs moved before fewer, the kernels in
 * turn; up to a sum of `cap`. The list is drawn up once against the best at the start; a move taken
 * changes the best, and the moves after it are then drawn up again around the new best. */
static void joint_moves(search *st, int cap)
{
    joint *list = malloc(sizeof(joint) * MAX_JOINT);
    if (!list)
        return;
    bool again = true;
    while (again && !g_stop) {
        again = false;
        int n = 0;
        for (int kernel = K_PF; kernel <= K_DEC; kernel++) {
            int ks[MAX_KNOBS], nk = 0, nalt[MAX_KNOBS];
            int(*alt)[MAX_VALUES] = calloc(MAX_KNOBS, sizeof *alt);
            if (!alt)
                break;
            for (int i = 0; i < st->nd; i++)
                if (st->dims[i].kernel == kernel && st->dims[i].joint && st->dims[i].nvalues > 1) {
                    nalt[nk] = alternatives(&st->dims[i], alt[nk]);
                    ks[nk++] = i;
                }
            int vals[MAX_KNOBS];
            for (int i = 0; i < st->nd; i++)
                vals[i] = st->dims[i].best;
            if (nk >= 2)
                joint_enum(st, ks, nk, 0, vals, 0, 0, cap, kernel, list, &n, alt, nalt);
            free(alt);
        }
        qsort(list, (size_t)n, sizeof list[0], joint_cmp);
        for (int c = 0; c < n && !g_stop; c++) {
            const double before = st->best;
            if (!try_candidate(st, list[c].vals, -1))
                break;
            if (st->best < before) { /* taken: the rest are drawn up again around it */
                again = true;
                break;
            }
        }
    }
    free(list);
}

int bench_tune(const bench_case *cases, size_t ncases, const bench_opts *o_in, const edgeattn_backend_info *info,
               const char *out_path, double seconds, FILE *tab)
{
    dim dims[MAX_KNOBS];
    const int nd = space(info, dims);
    if (nd == 0) {
        fprintf(stderr, "edgebench: --tune: the %s backend exposes no knobs yet\n", info->backend_name);
        return 1;
    }
    for (int i = 0; i < nd; i++)
        if (getenv(dims[i].name)) {
            fprintf(stderr, "edgebench: --tune: %s is set in the environment; unset it first\n", dims[i].name);
            return 1;
        }
    if (getenv("EDGEATTN_TUNING_FILE")) {
        fprintf(stderr, "edgebench: --tune: EDGEATTN_TUNING_FILE is set; unset it to tune from the defaults\n");
        return 1;
    }
    /* dimensions no case exercises are left at their defaults (OpenCL: the F16-Q and F32-Q prefill tiles,
     * the decode tiles and the unfused path each serve one kind of call) */
    bool pf16 = false, pf32 = false, dec = false, pf_auto = false, dec_rows = false;
    for (size_t k = 0; k < ncases; k++) {
        if (cases[k].kind == BENCH_DECODE)
            dec = true;
        if (cases[k].kind == BENCH_DECODE && (int64_t)(cases[k].Hq / cases[k].Hkv) * cases[k].Nq > 4)
            dec_rows = true; /* (past the smallest decode tile's rows: dmr= can matter) */
        else if (cases[k].q_dtype == EDGEATTN_F16)
            pf16 = true;
        else
            pf32 = true;
        if (cases[k].kind != BENCH_DECODE && cases[k].opencl_path == 0)
            pf_auto = true; /* a prefill case whose path the knob chooses */
    }
    for (int i = 0; i < nd; i++)
        if ((dims[i].kernel == K_PFH && !pf16) || (dims[i].kernel == K_PF && !pf32) ||
            (dims[i].kernel == K_DEC && !dec) || (!strcmp(dims[i].name, "EDGEATTN_OPENCL_PATH") && !pf_auto) ||
            (dims[i].part && !strcmp(dims[i].part, "dmr=") && !dec_rows))
            dims[i].nvalues = 1;
    bench_opts o = *o_in;
    o.backend = info->backend;
    char cache_dir[64] = "";
    if (info->backend == EDGEATTN_BACKEND_OPENCL && !o.kernel_cache) { /* the cases of a candidate share builds */
        snprintf(cache_dir, sizeof cache_dir, "/tmp/edgebench-tune-XXXXXX");
        if (mkdtemp(cache_dir))
            o.kernel_cache = cache_dir;
    }
    double *base = calloc(ncases, sizeof(double)), *times = calloc(ncases, sizeof(double));
    double *tuned = calloc(ncases, sizeof(double));
    if (!base || !times || !tuned) {
        free(base), free(times), free(tuned);
        return 1;
    }
    g_stop = 0;
    void (*old)(int) = signal(SIGINT, on_sigint);
    const double t0 = bench_now_s();
    int total = 0;
    for (int i = 0; i < nd; i++)
        total += dims[i].nvalues - 1; /* the first pass */
    fprintf(tab, "tune       %s on \"%s\": %d knob dimensions, %d candidates, %zu cases, budget %.0f s (Ctrl-C "
                 "keeps the best so far)\n",
            info->backend_name, info->device, nd, total, ncases, seconds);
    /* every candidate is timed beside the defaults (paired): no baseline pass */
    search st = {dims, nd, cases, ncases, &o, base, times, tab, t0, seconds, total, 1.0, 0, 0, false, NULL, 0};
    st.seen = calloc(MAX_SEEN, sizeof st.seen[0]);
    /* Passes widen: the first tries each knob's FIRST_WIDTH - 1 likeliest values, each later pass twice
     * as many, every one around the best so far, so a knob that only pays off once another has moved
     * (a longer decode tile once its loop is unrolled) is tried again in the new company early, not
     * after every knob's tail. Each pass then moves several knobs of one kernel at once (joint moves,
     * below): optima such as NVIDIA's decode (a longer tile, a deeper unroll and a register cap, each
     * slower than the generic row alone or in pairs) lie where no single move leads. The search ends
     * when a pass over every value changes nothing. */
    int vmax = 0;
    for (int i = 0; i < nd; i++)
        vmax = dims[i].nvalues > vmax ? dims[i].nvalues : vmax;
    bool narrow = true, improved = true;
    for (int pass = 0, width = FIRST_WIDTH; (improved || narrow) && !g_stop; pass++, width *= 2) {
        st.improved = false;
        narrow = width < vmax;
        if (pass > 0)
            fprintf(tab, "  pass %d: each knob's first %d values again around the best so far\n", pass + 1,
                    width < vmax ? width : vmax);
        /* round-robin over the dimensions (value 1 of each, then value 2 of each, ...): every knob gets its
         * most likely values early, so a short budget is not spent on one knob's tail */
        for (int v = pass > 0 ? 0 : 1; v < vmax && v < width && !g_stop; v++)
            for (int i = 0; i < nd && !g_stop; i++) {
                if (v >= dims[i].nvalues || (pass > 0 && v == dims[i].best) || dims[i].refused[v])
                    continue;
                int vals[MAX_KNOBS];
                for (int j = 0; j < nd; j++)
                    vals[j] = j == i ? v : dims[j].best;
                try_candidate(&st, vals, i);
            }
        if (!g_stop)
            joint_moves(&st, JOINT_FIRST_COST + pass);
        improved = st.improved;
    }
    double best = st.best;
    const int tried = st.tried, discarded = st.discarded;
    free(st.seen);
    signal(SIGINT, old);
    fprintf(tab, "tune       %s after %d candidates (%d discarded) in %.0f s: %.3fx of the defaults' time\n",
            g_stop == 1 ? "interrupted" : g_stop == 2 ? "time budget reached" : "done", tried, discarded,
            bench_now_s() - t0, best);
    /* confirm: the best against the defaults, alternately, twice more; a choice that does not hold up
     * (a lucky sample in the search) is dropped for the defaults */
    bool any = false;
    for (int i = 0; i < nd; i++)
        any = any || dims[i].best != 0;
    const int stopped = g_stop;
    g_stop = 0; /* the budget is spent on the search; the checks below run regardless (Ctrl-C skips this one) */
    if (any && stopped != 1) {
        double worst = 0.0;
        int vals[MAX_KNOBS];
        for (int i = 0; i < nd; i++)
            vals[i] = dims[i].best;
        const double g = paired(cases, ncases, &o, dims, nd, vals, NULL, 2, base, tuned, &worst);
        size_t wk = 0;
        for (size_t k = 1; k < ncases; k++)
            wk = tuned[k] / base[k] > tuned[wk] / base[wk] ? k : wk;
        if (!(g < 0.99) || worst > MAX_CASE_LOSS) {
            fprintf(tab, "confirm    the best (%.3fx in the search) gave %.3fx, worst case %s %.3fx, when timed again "
                         "beside the defaults: keeping the defaults\n",
                    best, g, cases[wk].name, worst);
            for (int i = 0; i < nd; i++)
                dims[i].best = 0;
            best = 1.0;
        } else {
            fprintf(tab, "confirm    the best timed again beside the defaults: %.3fx, worst case %s %.3fx\n", g,
                    cases[wk].name, worst);
        }
    }
    apply(dims, nd, -1, 0);
    FILE *f = fopen(out_path, "w");
    if (!f) {
        fprintf(stderr, "edgebench: --tune: cannot write %s\n", out_path);
        free(base), free(times), free(tuned);
        return 1;
    }
    fprintf(f, "# written by edgebench --tune: %d candidates over %zu cases, %.3fx of the defaults' time\n", tried,
            ncases, best);
    fprintf(f, "edgeattn-tuning 1\nlibrary %s\nbackend %s\ndevice %s\n", edgeattn_version(), info->backend_name,
            info->device);
    int written = 0;
    for (int i = 0; i < nd; i++) {
        const char *v = getenv(dims[i].name);
        bool first = true;
        for (int j = 0; j < i; j++)
            first = first && strcmp(dims[j].name, dims[i].name) != 0;
        if (first && v) {
            fprintf(f, "set %s %s\n", dims[i].name, v);
            written++;
        }
    }
    fclose(f);
    for (int i = 0; i < nd; i++)
        unsetenv(dims[i].name);
    fprintf(tab, "wrote      %s (%d knob%s; the defaults won elsewhere)\n\n", out_path, written, written == 1 ? "" : "s");

    /* side by side: the defaults, then the file as the library loads it */
    double worst = 0.0;
    const double s = paired(cases, ncases, &o, dims, nd, NULL, out_path, FINAL_ROUNDS, base, tuned, &worst);
    edgeattn_config cfg; /* does the library take the file? */
    edgeattn_config_default(&cfg);
    cfg.backend = info->backend;
    cfg.num_threads = o.threads;
    cfg.cpu_disable_mask = o.cpu_disable_mask;
    cfg.tuning_file = out_path;
    edgeattn_context *ctx = NULL;
    edgeattn_backend_info bi;
    memset(&bi, 0, sizeof bi);
    edgeattn_message msg = {{0}};
    if (edgeattn_create(&cfg, NULL, 0, &ctx, &msg) == EDGEATTN_OK && edgeattn_get_backend_info(ctx, &bi) == EDGEATTN_OK)
        fprintf(tab, "loaded     a context created with the file reports tuning \"%s\"\n", bi.tuning);
    else
        fprintf(tab, "loaded     create with the file failed: %s\n", msg.text);
    edgeattn_destroy(ctx);
    fprintf(tab, "%-16s %-44s %12s %12s %8s\n", "case", "shape", "default ms", "tuned ms", "faster");
    for (size_t k = 0; k < ncases; k++) {
        char shape[96];
        bench_case_shape(&cases[k], shape, sizeof shape);
        fprintf(tab, "%-16s %-44s %12.4f %12.4f %7.3fx\n", cases[k].name, shape, base[k], tuned[k], base[k] / tuned[k]);
    }
    fprintf(tab, "geometric mean (fastest samples of %d rounds side by side, up to %d more for a case over %.2fx): "
                 "tuned takes %.3fx of the defaults' time%s\n",
            FINAL_ROUNDS, RECHECK_ROUNDS, MAX_CASE_LOSS, s, isnan(s) ? " (a case failed with the file)" : "");
    free(base), free(times), free(tuned);
    return isnan(s) ? 1 : 0;
}
