/*
 * hello_attention: the smallest complete use of edgeattn, built against the installed library.
 *
 *   make -C examples             # through pkg-config; PREFIX=... for a prefix other than /usr/local
 *   ./examples/hello_attention   # (examples/Makefile says how to run from a non-system prefix)
 *
 * Plans the memory, hands the library one buffer of exactly that size (the library obtains nothing
 * else), runs causal attention with grouped-query heads on random inputs, prints the backend and an
 * output checksum, and releases everything. Every call's status is checked.
 */
#include <stdio.h>
#include <stdlib.h>

#include <edgeattn/edgeattn.h>

enum { B = 1, HQ = 8, HKV = 2, N = 64, D = 64 };

static int check(edgeattn_status st, const char *what, const edgeattn_context *ctx, const edgeattn_message *msg)
{
    if (st == EDGEATTN_OK)
        return 0;
    fprintf(stderr, "hello_attention: %s failed: %s: %s\n", what, edgeattn_status_string(st),
            ctx ? edgeattn_message_of(ctx) : msg->text);
    return 1;
}

int main(void)
{
    /* 1. state the largest shapes this context will ever see, and plan the memory */
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    cfg.max_batch = B;
    cfg.max_q_len = N;
    cfg.max_kv_len = N;
    cfg.max_heads = HQ;
    cfg.max_kv_heads = HKV;
    cfg.max_head_dim = D;
    edgeattn_plan_info plan;
    edgeattn_message msg;
    if (check(edgeattn_plan(&cfg, &plan, &msg), "edgeattn_plan", NULL, &msg))
        return 1;

    /* 2. create the context inside our own buffer (pass NULL, 0 to let create obtain it instead) */
    const size_t bytes = (plan.host_bytes + EDGEATTN_ALIGNMENT - 1) / EDGEATTN_ALIGNMENT * EDGEATTN_ALIGNMENT;
    void *arena = aligned_alloc(EDGEATTN_ALIGNMENT, bytes);
    float *q = malloc(sizeof(float) * B * HQ * N * D);    /* [B][HQ][N][D] */
    float *k = malloc(sizeof(float) * B * HKV * N * D);   /* [B][HKV][N][D] */
    float *v = malloc(sizeof(float) * B * HKV * N * D);   /* [B][HKV][N][D] */
    float *out = malloc(sizeof(float) * B * HQ * N * D);  /* [B][HQ][N][D] */
    if (!arena || !q || !k || !v || !out) {
        fprintf(stderr, "hello_attention: out of memory\n");
        return 1;
    }
    edgeattn_context *ctx = NULL;
    if (check(edgeattn_create(&cfg, arena, bytes, &ctx, &msg), "edgeattn_create", NULL, &msg))
        return 1;

    edgeattn_backend_info info;
    if (check(edgeattn_get_backend_info(ctx, &info), "edgeattn_get_backend_info", ctx, NULL))
        return 1;
    printf("edgeattn %s: backend %s, tier %s, device \"%s\", %d threads, %zu bytes planned\n", edgeattn_version(),
           info.backend_name, info.tier, info.device, (int)info.threads, plan.host_bytes);

    /* 3. random inputs (a fixed linear congruential sequence, so the checksum repeats) */
    unsigned s = 12345u;
    for (int i = 0; i < B * HQ * N * D; i++)
        q[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < B * HKV * N * D; i++) {
        k[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
        v[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
    }
    edgeattn_tensor tq = edgeattn_tensor_bhsd(q, EDGEATTN_F32, B, HQ, N, D);
    edgeattn_tensor tk = edgeattn_tensor_bhsd(k, EDGEATTN_F32, B, HKV, N, D);
    edgeattn_tensor tv = edgeattn_tensor_bhsd(v, EDGEATTN_F32, B, HKV, N, D);
    edgeattn_tensor to = edgeattn_tensor_bhsd(out, EDGEATTN_F32, B, HQ, N, D);

    /* 4. causal attention: 8 query heads share 2 KV heads */
    edgeattn_params params;
    edgeattn_params_default(&params);
    params.causal = 1;
    if (check(edgeattn_attention(ctx, &tq, &tk, &tv, &to, &params), "edgeattn_attention", ctx, NULL))
        return 1;

    double sum = 0.0;
    for (int i = 0; i < B * HQ * N * D; i++)
        sum += out[i];
    printf("checksum %.6f over %d outputs (out[0] = %.6f)\n", sum, B * HQ * N * D, (double)out[0]);

    /* 5. destroy the context; our buffer is ours to free afterwards */
    edgeattn_destroy(ctx);
    free(arena);
    free(q);
    free(k);
    free(v);
    free(out);
    return 0;
}
