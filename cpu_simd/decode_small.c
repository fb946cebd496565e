/*
 * Decode with one query row per sequence, the shape of token-by-token generation.
 *
 * A work item is (sequence b, KV head, slice of the keys the query sees). Its rows are the G query
 * heads of the KV head's GQA group (G <= EA_MR), so one micro-block holds them all and every K/V
 * row is read once, in its storage dtype, straight from the cache (the rows kernels; nothing is
 * packed or converted ahead). Per item:
 *   1. the G query rows, scaled and rotated (the angles of the call's position were computed once,
 *      by core, into the context's RoPE cache), and fresh statistics;
 *   2. for each run of up to kb consecutive keys (dec_rows: where key position j of (b, KV head)
 *      lives): S = Q·Kᵀ, softcap, online softmax, O = alpha·O + P·V;
 *   3. out = O / l and lse, or, when the keys are split across items, the partial (O, m, l) goes to
 *      a slot and the item that finishes last in its group merges the group's slots (as attn_cpu.c).
 * The visible keys are the same for all G rows (the query is the last position; a left window
 * trims the start), so there is no per-row mask, and a split cuts the visible keys, not the cache.
 *
 * Threads: a call is a candidate for sharing when its work, scaled by how fast the caller's recent
 * decode calls ran, passes the thresholds of attn_cpu.h (awake workers: a hand-off; asleep: a
 * wake-up). A decode right after the application's own work (a layer's matmuls) finds its cache
 * evicted and streams it from DRAM several times slower than warm: measuring the rate makes such
 * a call a candidate where its nominal work would not. Candidates are then shared only while
 * sharing has been paying, which is measured too: each way keeps a rate, and a probe now and then
 * runs the way not taken. A shared call is cut into slices of about EA_DEC_SPLIT_KEYS keys, so a
 * worker that joins late still finds work.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "cpu_simd/decode_small.h"

/* Keys per slice when a call is shared: about 20 us of work for a cold FP32 cache at D 64 (a few
 * microseconds warm), against a partial write and a share of the merge per slice. */
#define EA_DEC_SPLIT_KEYS 256
/* Calls of at least this many multiply-adds are timed now and then to learn the rate. */
#define EA_DEC_TIMED_WORK 16384
/* Sharing is chosen when its rate beats running alone by this factor. One candidate in
 * EA_DEC_PROBE..EA_DEC_PROBE_MAX goes the other way (a probe); the interval doubles while probes
 * confirm the choice. */
#define EA_DEC_SHARE_GAIN 1.05
#define EA_DEC_PROBE 16 /* a power of two */
#define EA_DEC_PROBE_MAX 256
/* While workers sleep, one call in EA_DEC_ROUSE too small to wake them for, but big enough for a
 * hand-off to awake ones, wakes them anyway. */
#define EA_DEC_ROUSE 64

typedef struct dec_job {
    const ea_cpu_state *st;
    const ea_attn_call *c;
    int32_t nsplit; /* slices per (b, KV head) */
} dec_job;

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* Where the keys of one (b, KV head) live: the runs of the cache (or tensors) in key order. */
typedef struct dec_kv {
    ea_kv_seg seg[EA_KV_SEGS];
    int nseg;
    int64_t gap;   /* a sinks cache's evicted tokens: a position's true value is gap more */
    int64_t total; /* one past the last key position */
    int64_t first; /* first key position held */
} dec_kv;

static inline void dec_kv_open(const ea_attn_call *c, int32_t b, int32_t kvh, dec_kv *kv)
{
    kv->nseg = ea_call_kv_segments(c, b, kvh, kv->seg, &kv->total, &kv->gap);
    kv->first = kv->nseg ? kv->seg[0].pos0 : kv->total;
}

/* The K and V rows of key position j (first <= j < total) and how many consecutive positions from
 * j, at most want, follow them at the row strides *ldk, *ldv (elements). Every K/V read of this
 * file goes through here. */
static inline int32_t dec_rows(const dec_kv *kv, int64_t j, int32_t want, size_t es, const char **k, const char **v,
                               ptrdiff_t *ldk, ptrdiff_t *ldv)
{
    const ea_kv_seg *s = &kv->seg[0];
    for (int i = 1; i < kv->nseg && j >= s->pos0 + s->n; i++)
        s = &kv->seg[i];
    *ldk = s->ldk;
    *ldv = s->ldv;
    return (int32_t)imin(want, ea_kv_seg_rows(s, j, es, k, v)); /* a paged cache: to the end of j's page */
}

/* Writes the G rows of (b, kvh): out = o / l, lse = m + log l (zeros and -inf for a row that saw
 * no key; quantised caches: attn_cpu.h). */
static void dec_write(const ea_attn_call *c, int32_t b, int32_t kvh, const float *o, const float *m, const float *l,
                      const float *shift)
{
    const int32_t D = c->Dv, G = c->group; /* out rows: the V head dim */
    const edgeattn_tensor *out = c->out;
    const float *qst = ea_cpu_qstats(c, b, kvh);
    for (int32_t g = 0; g < G; g++) {
        const int32_t h = kvh * G + g;
        ea_cpu_store_row(out, (ptrdiff_t)(b * out->stride[0] + h * out->stride[1]), o + (size_t)g * (size_t)D, l[g],
                         qst, qst ? c->cache->max_dim : 0, D);
        if (c->lse)
            ((float *)c->lse->data)[b * c->lse->stride[0] + h * c->lse->stride[1]] =
                l[g] > 0.0f ? m[g] + logf(l[g]) + (qst && c->softcap <= 0.0f ? shift[g] : 0.0f) : -INFINITY;
    }
}

/* Merges the nsplit partials of group t = (b, kvh) by log-sum-exp and writes the rows. */
static void dec_merge(const dec_job *J, int64_t t, int thread)
{
    const ea_cpu_state *st = J->st;
    const ea_attn_call *c = J->c;
    const int32_t D = c->Dv, G = c->group, ns = J->nsplit;
    const int32_t kvh = (int32_t)(t % c->Hkv), b = (int32_t)(t / c->Hkv);
    char *scr = st->scratch + (size_t)thread * st->sl.bytes;
    float *o = (float *)(void *)(scr + st->sl.o);
    float *m = (float *)(void *)(scr + st->sl.m);
    float *l = (float *)(void *)(scr + st->sl.l);
    ea_cpu_part_merge(st, t, ns, G, D, o, m, l);
    /* this thread ran one of the group's slices: its scratch holds the rows' shifts */
    dec_write(c, b, kvh, o, m, l, (const float *)(const void *)(scr + st->sl.shift));
}

static void dec_task(void *arg, int64_t t, int thread)
{
    const dec_job *J = arg;
    const ea_cpu_state *st = J->st;
    const ea_attn_call *c = J->c;
    const ea_cpu_kernels *K = (c->D | c->Dv) % 16 ? &st->k8 : &st->k; /* 16-wide kernels need dims of 16s */
    const int64_t item = t;
    const int32_t ns = J->nsplit, split = (int32_t)(t % ns);
    t /= ns;
    const int32_t kvh = (int32_t)(t % c->Hkv), b = (int32_t)(t / c->Hkv);
    const int32_t KB = st->tiles.kb, D = c->D, Dv = c->Dv, G = c->group; /* Q·K and V head dims */
    const edgeattn_dtype kdt = c->kv_dtype;
    const size_t es = ea_kv_unit_size(kdt);
    const float *qst = ea_cpu_qstats(c, b, kvh);

    char *scr = st->scratch + (size_t)thread * st->sl.bytes;
    float *shift = (float *)(void *)(scr + st->sl.shift); /* [G] */
    float *q32 = (float *)(void *)(scr + st->sl.q); /* [G][D] */
    float *o = (float *)(void *)(scr + st->sl.o);   /* [G][Dv] */
    float *m = (float *)(void *)(scr + st->sl.m);   /* [G] */
    float *l = (float *)(void *)(scr + st->sl.l);   /* [G] */
    float *alpha = (float *)(void *)(scr + st->sl.alpha);
    float *s = (float *)(void *)(scr + st->sl.s); /* [G][KB] */

    dec_kv kv;
    dec_kv_open(c, b, kvh, &kv);
    /* the query is the last position; causal or not, it sees keys up to itself */
    const int64_t qpos = kv.total - 1;
    int64_t a = kv.first, z = qpos;
    if (c->window_left >= 0)
        a = imax(a, qpos - c->window_left);
    if (ns > 1) { /* this item's slice of the visible keys */
        const int64_t len = z - a + 1;
        const int64_t a0 = a;
        a = a0 + len * split / ns;
        z = a0 + len * (split + 1) / ns - 1;
    }

    /* 1. the group's query rows, scaled and rotated; fresh statistics */
    const ea_rope *rope = c->rope;
    float cs_local[EA_MAX_HEAD_DIM];
    const float *cs = NULL;
    if (rope) {
        if (rope->cs_pos == qpos + kv.gap) {
            cs = rope->cs;
        } else { /* another sequence's position than the one core cached */
            ea_rope_angles(rope, qpos + kv.gap, cs_local);
            cs = cs_local;
        }
    }
    const edgeattn_tensor *qt = c->q;
    for (int32_t g = 0; g < G; g++) {
        const int32_t h = kvh * G + g;
        const ptrdiff_t qo = (ptrdiff_t)(b * qt->stride[0] + h * qt->stride[1]);
        float *qr = q32 + (size_t)g * (size_t)D;
        if (qt->dtype == EDGEATTN_F32) {
            const float *src = (const float *)qt->data + qo;
            for (int32_t d = 0; d < D; d++)
                qr[d] = src[d] * c->scale;
        } else {
            for (int32_t d = 0; d < D; d++)
                qr[d] = ea_load_f32(qt->data, qt->dtype, qo + d) * c->scale;
        }
        if (rope)
            ea_rope_apply(rope, cs, qr);
        shift[g] = qst ? ea_cpu_q_fold(qst, c->cache->max_dim, qr, D) : 0.0f;
        m[g] = -INFINITY;
        l[g] = 0.0f;
        memset(o + (size_t)g * (size_t)Dv, 0, sizeof(float) * (size_t)Dv);
    }

    /* 2. tiles of at most KB keys over the runs of keys to read: [a, z], or the runs of the top-k blocks
     * inside it (consecutive blocks make one run). A tile gathers pieces (rows contiguous in storage)
     * from as many pages and runs as start at a multiple of 16 of its columns. */
    const float cap = c->softcap, inv_cap = cap > 0.0f ? 1.0f / cap : 0.0f;
    const int32_t *sel = NULL;
    const int32_t nsel = c->topk_tokens > 0 ? ea_cpu_topk(c, st, scr, b, kvh, q32, G, kv.total, &sel) : 0;
    const int32_t bs = nsel ? c->cache->sblk : 1;
    int32_t run = 0, c0, c1;
    int64_t j = a, rz = z; /* the next key, and the last of its run */
    bool have = a <= z;
    if (nsel) /* the first selected run that meets [a, z] (runs clipped to it may be empty) */
        for (have = false; !have && ea_sel_run(sel, nsel, &run, &c0, &c1);) {
            j = imax(a, (int64_t)c0 * bs);
            rz = imin(z, ((int64_t)c1 + 1) * bs - 1);
            have = j <= rz;
        }
    while (have) {
        ea_kv_pieces pc = {.count = 0, .rows = 0};
        ptrdiff_t ldk, ldv;
        for (bool more = true; more;) {
            const char *k, *v;
            const int32_t n = dec_rows(&kv, j, (int32_t)imin(KB - pc.rows, rz - j + 1), es, &k, &v, &ldk, &ldv);
            more = ea_pieces_add(&pc, k, v, n, KB);
            j += n;
            while (j > rz && (have = ea_sel_run(sel, nsel, &run, &c0, &c1))) { /* the run is done: the next */
                j = imax(a, (int64_t)c0 * bs);
                rz = imin(z, ((int64_t)c1 + 1) * bs - 1);
            }
            have = have && j <= rz;
            more = more && have;
        }
        const int32_t nt = pc.rows;
        const int32_t nbp = (nt + 15) & ~15;
        if (have) { /* the next tile's first keys, prefetched while this one is scored (ea_qk_pieces) */
            const char *k1, *v1;
            ptrdiff_t ldk1, ldv1;
            pc.next_n = dec_rows(&kv, j, (int32_t)imin(KB, rz - j + 1), es, &k1, &v1, &ldk1, &ldv1);
            pc.next_k = k1; /* (every run of a cache has the same row stride) */
        }
        ea_qk_pieces(K, kdt, G, D, q32, D, &pc, ldk, ldv, s, KB);
        for (int32_t g = 0; g < G; g++) {
            float *sr = s + (size_t)g * (size_t)KB;
            if (cap > 0.0f)
                for (int32_t jj = 0; jj < nt; jj++)
                    sr[jj] = cap * tanhf((sr[jj] + shift[g]) * inv_cap);
            for (int32_t jj = nt; jj < nbp; jj++)
                sr[jj] = -INFINITY;
        }
        K->softmax(G, nbp, s, KB, m, l, alpha);
        ea_pv_pieces(K, kdt, G, Dv, s, KB, &pc, ldv, alpha, o, Dv);
    }

    /* 3. finish, or park the partial; the group's last slice merges */
    if (ns == 1) {
        dec_write(c, b, kvh, o, m, l, shift);
        return;
    }
    if (ea_cpu_part_park(st, item, ns, G, Dv, o, m, l))
        dec_merge(J, item / ns, thread);
}

void ea_cpu_decode_small_init(ea_cpu_state *st)
{
    st->dec_rate = EA_CPU_NOMINAL_RATE;
    st->dec_arm[0] = EA_CPU_NOMINAL_RATE;
    for (int a = 1; a < 3; a++) {
        st->dec_arm[a] = 2.0 * EA_CPU_NOMINAL_RATE; /* sharing is tried first */
        st->dec_probe[a] = 0;
        st->dec_probe_every[a] = EA_DEC_PROBE;
    }
    st->dec_rouse = 0;
    st->dec_sample = 0;
}

bool ea_cpu_decode_small_fits(const ea_cpu_state *st, const ea_attn_call *c)
{
    (void)st;
    return c->decode && c->Nq == 1 && c->group <= EA_MR && !c->bias;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

/* rate = 3/4 rate + 1/4 sample, the sample first brought within a factor of 4 of the rate (a time
 * slice lost to another program moves the estimate one bounded step). */
static void dec_fold(double *rate, double work, double us)
{
    double r = work / (us > 0.01 ? us : 0.01);
    r = r < *rate * 0.25 ? *rate * 0.25 : r > *rate * 4.0 ? *rate * 4.0 : r;
    *rate = 0.75 * *rate + 0.25 * r;
}

edgeattn_status ea_cpu_decode_small(ea_cpu_state *st, const ea_attn_call *c)
{
    dec_job J;
    J.st = st;
    J.c = c;
    J.nsplit = 1;
    const int64_t base = (int64_t)c->B * c->Hkv;
    /* keys the call reads per KV head, summed over the sequences, and the most of one sequence */
    int64_t keys = 0, longest = 0;
    for (int32_t b = 0; b < c->B; b++) {
        int64_t n = c->cache->held[ea_kv_idx(c->cache, c->layer, c->seq_ids[b])];
        if (c->window_left >= 0)
            n = imin(n, (int64_t)c->window_left + 1);
        if (c->topk_tokens > 0) /* the budget's blocks (and the bounds of every block: about as many) */
            n = imin(n, 2 * ((int64_t)c->topk_tokens + c->cache->sblk));
        keys += n;
        longest = imax(longest, n);
    }
    const double work = (double)keys * (double)c->Hq * (double)c->D; /* multiply-adds of Q·Kᵀ */
    /* A candidate for sharing: its work at the rate the thresholds assume (a cold cache makes it
     * more) passes the threshold for the workers' state. Candidates are shared while sharing has
     * been paying: the rate of shared candidates (kept apart for workers awake, a hand-off, and
     * asleep, a wake-up) beats that of candidates run alone. A probe now and then takes the other
     * way to keep both rates current. On a machine with more runnable threads than cores, a woken
     * worker takes the caller's own core, or is preempted inside an item and holds the caller up
     * for a time slice; where memory bandwidth does not grow with threads, a second one only costs
     * the hand-off: then calls stay on the caller. */
    const double scaled = work * (EA_CPU_NOMINAL_RATE / st->dec_rate);
    bool share = false, probe = false;
    int arm = 0; /* the shared arm of a candidate: 1 workers awake, 2 asleep; 0 not a candidate */
    if (st->threads > 1) {
        const bool awake = ea_pool_helpful(&st->pool);
        const int64_t threshold = awake ? st->inline_work : st->wake_work;
        if (threshold == 0) { /* EDGEATTN_CPU_INLINE=0: every call shared */
            share = true;
        } else if (scaled >= (double)threshold) {
            arm = awake ? 1 : 2;
            share = st->dec_arm[arm] > EA_DEC_SHARE_GAIN * st->dec_arm[0];
            if (++st->dec_probe[arm] >= st->dec_probe_every[arm]) { /* the other way, once */
                st->dec_probe[arm] = 0;
                share = !share;
                probe = true;
            }
        } else if (!awake && scaled >= (double)st->inline_work && ++st->dec_rouse >= EA_DEC_ROUSE) {
            /* now and then a call big enough for a hand-off wakes sleeping workers: calls that follow
             * closely then find them awake (and the hand-off arm decides) */
            st->dec_rouse = 0;
            share = true;
        }
    }
    /* candidates are all timed (two clock reads), other calls of some size one in EA_DEC_PROBE */
    const bool timed = arm || (work >= EA_DEC_TIMED_WORK && (++st->dec_sample & (EA_DEC_PROBE - 1)) == 0);
    const double t0 = timed ? now_us() : 0.0;
    edgeattn_status rc = EDGEATTN_OK;
    if (!share) {
        ea_pool_run_inline(dec_task, &J, base);
    } else {
        int64_t ns = (longest + EA_DEC_SPLIT_KEYS - 1) / EA_DEC_SPLIT_KEYS;
        ns = imax(ns, (2 * (int64_t)st->threads + base - 1) / base); /* at least two items per thread */
        ns = imin(ns, longest);
        ns = imin(ns, st->part_items / base); /* fits the planned slots */
        J.nsplit = ns >= 2 && c->topk_tokens <= 0 ? (int32_t)ns : 1; /* (top-k: each slice would select again) */
        if (J.nsplit > 1)
            for (int64_t g = 0; g < base; g++)
                atomic_store_explicit(&st->arrive[g], 0, memory_order_relaxed); /* published by the hand-off */
        rc = ea_pool_run(&st->pool, dec_task, &J, base * J.nsplit);
    }
    if (timed) {
        const double us = now_us() - t0;
        if (!share)
            dec_fold(&st->dec_rate, work, us);
        if (arm) {
            const bool before = st->dec_arm[arm] > EA_DEC_SHARE_GAIN * st->dec_arm[0];
            dec_fold(&st->dec_arm[share ? arm : 0], work, us);
            const bool after = st->dec_arm[arm] > EA_DEC_SHARE_GAIN * st->dec_arm[0];
            if (probe) /* a probe that changed nothing: probe half as often; one that did: often again */
                st->dec_probe_every[arm] = before != after                             ? EA_DEC_PROBE
                                           : st->dec_probe_every[arm] < EA_DEC_PROBE_MAX ? 2 * st->dec_probe_every[arm]
                                                                                       : EA_DEC_PROBE_MAX;
        }
    }
    return rc;
}
