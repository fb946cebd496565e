/*
 * chat_decode: how a chat application uses edgeattn for one attention layer.
 *
 *   make -C examples && ./examples/chat_decode
 *
 * One context is created at start-up with a KV cache sized for the longest conversation. For each
 * conversation the cache is emptied, the prompt's K/V are appended and the prompt attends to itself
 * (causal), then every generated token appends its K/V row and decodes its one query against
 * everything cached. K/V are stored as FP16 (converted with the library's helpers), Q and the output
 * are FP32. A model with L layers creates L such contexts, once.
 *
 * So that the example proves itself, every output row is compared with a naive attention computed
 * here in double precision from the same FP16 values; the program exits 1 on a mismatch or on any
 * failed call. It also shows that a full cache is refused (EDGEATTN_ERR_CAPACITY) and left intact.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <edgeattn/edgeattn.h>

enum {
    HQ = 8,          /* query heads */
    HKV = 2,         /* key/value heads: 4 query heads share each (grouped-query attention) */
    D = 64,          /* head dim */
    MAX_PROMPT = 48, /* longest prompt: the most query rows one call takes */
    MAX_TOKENS = 64  /* longest conversation, prompt included: the cache's capacity */
};

/* What the "model" produced so far in one conversation: every token's K/V (FP16, as appended to the
 * cache) and the current queries. Only the naive check needs the history; the library keeps its own
 * copy in the cache. */
static uint16_t hist_k[HKV][MAX_TOKENS][D]; /* [kv head][token][dim] */
static uint16_t hist_v[HKV][MAX_TOKENS][D];
static float q[HQ][MAX_PROMPT][D];          /* [head][query row][dim] */
static float out[HQ][MAX_PROMPT][D];

static unsigned rng = 2024u;
static float uniform(float lo, float hi) /* a fixed sequence, so runs repeat */
{
    rng = rng * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

static int failed(edgeattn_status st, const char *what, const edgeattn_context *ctx, const edgeattn_message *msg)
{
    if (st == EDGEATTN_OK)
        return 0;
    fprintf(stderr, "chat_decode: %s: %s: %s\n", what, edgeattn_status_string(st),
            ctx ? edgeattn_message_of(ctx) : msg->text);
    return 1;
}

/* The model's projections for tokens [pos, pos + n): K/V rows into the history (FP16), queries into q. */
static void make_tokens(int pos, int n)
{
    float row[D];
    for (int h = 0; h < HKV; h++)
        for (int t = pos; t < pos + n; t++) {
            for (int d = 0; d < D; d++)
                row[d] = uniform(-2.0f, 2.0f);
            edgeattn_f32_to_f16(row, hist_k[h][t], D);
            for (int d = 0; d < D; d++)
                row[d] = uniform(-1.0f, 1.0f);
            edgeattn_f32_to_f16(row, hist_v[h][t], D);
        }
    for (int h = 0; h < HQ; h++)
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++)
                q[h][i][d] = uniform(-2.0f, 2.0f);
}

/* A view of history rows [pos, pos + n) of every KV head: no copy, the strides step over the rest. */
static edgeattn_tensor history_rows(uint16_t (*hist)[MAX_TOKENS][D], int pos, int n)
{
    edgeattn_tensor t = edgeattn_tensor_bhsd(hist, EDGEATTN_F16, 1, HKV, MAX_TOKENS, D);
    const size_t skip = (size_t)pos * D * sizeof(uint16_t);
    t.data = (char *)t.data + skip;
    t.bytes -= skip; /* the view may reach to the end of the buffer, not beyond */
    t.shape[2] = n;
    return t;
}

/* Naive attention of query rows 0..n-1 (at positions pos..pos+n-1, causal) against the history, in
 * double; returns max |out - ref| / max |ref| over the rows. */
static double check_rows(int pos, int n)
{
    const double scale = 1.0 / sqrt((double)D);
    double max_err = 0.0, max_ref = 0.0;
    float k[D], v[D];
    for (int h = 0; h < HQ; h++) {
        const int g = h / (HQ / HKV); /* the KV head this query head reads */
        for (int i = 0; i < n; i++) {
            const int last = pos + i; /* keys 0..last are visible */
            double s[MAX_TOKENS], m = -INFINITY, l = 0.0, o[D] = {0};
            for (int j = 0; j <= last; j++) {
                edgeattn_f16_to_f32(hist_k[g][j], k, D);
                double dot = 0.0;
                for (int d = 0; d < D; d++)
                    dot += (double)q[h][i][d] * k[d];
                s[j] = dot * scale;
                m = s[j] > m ? s[j] : m;
            }
            for (int j = 0; j <= last; j++) {
                const double p = exp(s[j] - m);
                l += p;
                edgeattn_f16_to_f32(hist_v[g][j], v, D);
                for (int d = 0; d < D; d++)
                    o[d] += p * v[d];
            }
            for (int d = 0; d < D; d++) {
                const double ref = o[d] / l, err = fabs(out[h][i][d] - ref);
                max_err = err > max_err ? err : max_err;
                max_ref = fabs(ref) > max_ref ? fabs(ref) : max_ref;
            }
        }
    }
    return max_err / (max_ref > 0.0 ? max_ref : 1.0);
}

/* One conversation: prompt of `prompt` tokens, then `steps` generated tokens. 0 when all is well. */
static int converse(edgeattn_context *ctx, int prompt, int steps, double tol)
{
    edgeattn_params causal;
    edgeattn_params_default(&causal);
    causal.causal = 1; /* prompt row i sees the cache up to its own position */
    edgeattn_params one;
    edgeattn_params_default(&one); /* a single new query sees the whole cache */
    double worst = 0.0;

    /* a new chat: empty the cache (sequence 0), keep the context */
    if (failed(edgeattn_kv_reset(ctx, 0), "edgeattn_kv_reset", ctx, NULL))
        return 1;

    /* prefill: the prompt's K/V go into the cache, then the prompt attends to itself */
    make_tokens(0, prompt);
    edgeattn_tensor k = history_rows(hist_k, 0, prompt), v = history_rows(hist_v, 0, prompt);
    if (failed(edgeattn_kv_append(ctx, 0, NULL, &k, &v, NULL, 0), "edgeattn_kv_append (prompt)", ctx, NULL))
        return 1;
    edgeattn_tensor tq = edgeattn_tensor_bhsd(q, EDGEATTN_F32, 1, HQ, MAX_PROMPT, D);
    edgeattn_tensor to = edgeattn_tensor_bhsd(out, EDGEATTN_F32, 1, HQ, MAX_PROMPT, D);
    tq.shape[2] = to.shape[2] = prompt; /* the first `prompt` rows of each head */
    if (failed(edgeattn_decode(ctx, 0, NULL, NULL, &tq, &to, &causal), "edgeattn_decode (prompt)", ctx, NULL))
        return 1;
    double err = check_rows(0, prompt);
    worst = err > worst ? err : worst;
    if (err > tol) {
        fprintf(stderr, "chat_decode: prompt rows differ from the naive attention: %.3g > %.1g\n", err, tol);
        return 1;
    }

    /* generation: one token at a time, as a chat app streams its answer */
    tq.shape[2] = to.shape[2] = 1;
    for (int pos = prompt; pos < prompt + steps; pos++) {
        make_tokens(pos, 1); /* (a real model computes these from the previous output) */
        k = history_rows(hist_k, pos, 1);
        v = history_rows(hist_v, pos, 1);
        if (failed(edgeattn_kv_append(ctx, 0, NULL, &k, &v, NULL, 0), "edgeattn_kv_append (token)", ctx, NULL) ||
            failed(edgeattn_decode(ctx, 0, NULL, NULL, &tq, &to, &one), "edgeattn_decode (token)", ctx, NULL))
            return 1;
        err = check_rows(pos, 1);
        worst = err > worst ? err : worst;
        if (err > tol) {
            fprintf(stderr, "chat_decode: token %d differs from the naive attention: %.3g > %.1g\n", pos, err, tol);
            return 1;
        }
    }

    int64_t total = 0;
    if (failed(edgeattn_kv_length(ctx, 0, 0, &total, NULL), "edgeattn_kv_length", ctx, NULL))
        return 1;
    if (total != prompt + steps) {
        fprintf(stderr, "chat_decode: the cache holds %lld tokens, expected %d\n", (long long)total, prompt + steps);
        return 1;
    }
    printf("conversation: prompt %d tokens + %d generated, cache %lld tokens, max rel err %.2e\n", prompt, steps,
           (long long)total, worst);
    return 0;
}

int main(void)
{
    /* 1. once, at start-up: the largest shapes this layer will ever see, and a KV cache for them */
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.flags |= EDGEATTN_FLAG_KV_CACHE;
    cfg.kv_cache_dtype = EDGEATTN_F16;
    cfg.max_batch = 1;
    cfg.max_q_len = MAX_PROMPT;
    cfg.max_kv_len = MAX_TOKENS;
    cfg.max_heads = HQ;
    cfg.max_kv_heads = HKV;
    cfg.max_head_dim = D;
    edgeattn_message msg;
    edgeattn_context *ctx = NULL;
    if (failed(edgeattn_create(&cfg, NULL, 0, &ctx, &msg), "edgeattn_create", NULL, &msg))
        return 1;
    edgeattn_backend_info info;
    if (failed(edgeattn_get_backend_info(ctx, &info), "edgeattn_get_backend_info", ctx, NULL))
        return 1;
    printf("edgeattn %s: backend %s, tier %s; planned %zu host + %zu device bytes, KV cache included\n",
           edgeattn_version(), info.backend_name, info.tier, info.host_bytes, info.device_bytes);

    /* FP32 sums on every backend: only rounding separates the result from the double reference */
    const double tol = 1e-3;
    int rc = 0;

    /* 2. many calls on the one context: two conversations, the first filling the cache exactly */
    rc |= converse(ctx, MAX_PROMPT, MAX_TOKENS - MAX_PROMPT, tol);
    if (rc == 0) {
        /* the cache is full: one more token is refused and nothing changes */
        edgeattn_tensor k = history_rows(hist_k, 0, 1), v = history_rows(hist_v, 0, 1);
        const edgeattn_status st = edgeattn_kv_append(ctx, 0, NULL, &k, &v, NULL, 0);
        int64_t total = 0;
        edgeattn_kv_length(ctx, 0, 0, &total, NULL);
        if (st != EDGEATTN_ERR_CAPACITY || total != MAX_TOKENS) {
            fprintf(stderr, "chat_decode: appending to a full cache gave %s and %lld tokens\n",
                    edgeattn_status_string(st), (long long)total);
            rc = 1;
        } else {
            printf("full cache: one more token refused (%s), %lld tokens kept\n", edgeattn_status_string(st),
                   (long long)total);
        }
    }
    if (rc == 0)
        rc |= converse(ctx, 20, 30, tol);

    /* 3. once, at shutdown */
    edgeattn_destroy(ctx);
    if (rc == 0)
        printf("chat_decode: all outputs match the naive attention\n");
    return rc ? 1 : 0;
}
