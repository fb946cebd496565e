/*
 * The decoder example (examples/llama_decode.c) end to end: a whole Llama-style model generating
 * 500 tokens greedily with edgeattn doing every layer's attention (one context, the KV caches of
 * every layer, RoPE applied by the library) must give the same tokens, and logits within 1e-4, as
 * the same program with its plain C attention loop and its own RoPE.
 *
 * The example is compiled into this program with its main renamed llama_decode_main (so the test
 * also runs under a cross build's exe_wrapper) and called with the arguments a user would type.
 * Usage (meson passes the arguments): test_decoder [PYTHON3 MAKE_CHECKPOINT_PY]
 *
 * The checkpoint is written here, in the llama2.c format, with random weights (4 layers, dim 64,
 * GQA 4/2, head dim 16, a classifier of its own); EDGEATTN_TEST_SEED picks other weights. Runs:
 * edgeattn with 1 and 2 threads, on its own threads and on the example's pool (--app-pool), the
 * plain loop with 2 threads (bit-identical to 1: each head is one thread's loop), an FP16 cache
 * (looser), a truncated checkpoint (refused), and, when python3 is given, checkpoints written by
 * tools/make-checkpoint.py (shared classifier), one of them with head dim 8 (llama2.c's smallest
 * model's shape).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

enum {
    DIM = 64,
    HIDDEN = 172,
    LAYERS = 4,
    HEADS = 4,
    KV_HEADS = 2,
    VOCAB = 256,
    SEQ_LEN = 512,
    STEPS = 500,
    HD = DIM / HEADS,
    KV_DIM = KV_HEADS * HD
};

int llama_decode_main(int argc, char **argv); /* examples/llama_decode.c */

static const char *g_python, *g_script;
static char g_dir[256];
static char g_ckpt[320];
static uint64_t g_seed;

/* one run's output: the token chosen at each step and its logits */
typedef struct run_result {
    int32_t steps;
    int32_t vocab;
    int32_t *token; /* [steps] */
    float *logits;  /* [steps][vocab] */
} run_result;

static run_result g_plain; /* the reference: plain loop, 1 thread */

/* ---------------------------------------------------------------- the checkpoint */

static uint64_t rng_state;
static double uniform01(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* n values, uniform with standard deviation 1/sqrt(fan_in) (or all `fill` when fan_in is 0) */
static void put(FILE *f, size_t n, int fan_in, float fill)
{
    const double w = fan_in > 0 ? sqrt(3.0 / fan_in) : 0.0;
    for (size_t i = 0; i < n; i++) {
        const float v = fan_in > 0 ? (float)((2.0 * uniform01() - 1.0) * w) : fill;
        assert_int_equal(fwrite(&v, sizeof v, 1, f), 1);
    }
}

/* A llama2.c checkpoint of the sizes above; the classifier has its own weights (negative vocab). */
static void write_checkpoint(const char *path, uint64_t seed)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    rng_state = seed;
    const int32_t header[7] = {DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, -VOCAB, SEQ_LEN};
    assert_int_equal(fwrite(header, sizeof header, 1, f), 1);
    put(f, (size_t)VOCAB * DIM, DIM, 0);                    /* token embedding */
    put(f, (size_t)LAYERS * DIM, 0, 1.0f);                  /* attention RMSNorm */
    put(f, (size_t)LAYERS * DIM * DIM, DIM, 0);             /* wq */
    put(f, (size_t)LAYERS * KV_DIM * DIM, DIM, 0);          /* wk */
    put(f, (size_t)LAYERS * KV_DIM * DIM, DIM, 0);          /* wv */
    put(f, (size_t)LAYERS * DIM * DIM, DIM, 0);             /* wo */
    put(f, (size_t)LAYERS * DIM, 0, 1.0f);                  /* FFN RMSNorm */
    put(f, (size_t)LAYERS * HIDDEN * DIM, DIM, 0);          /* w1 */
    put(f, (size_t)LAYERS * DIM * HIDDEN, HIDDEN, 0);       /* w2 */
    put(f, (size_t)LAYERS * HIDDEN * DIM, DIM, 0);          /* w3 */
    put(f, DIM, 0, 1.0f);                                   /* final RMSNorm */
    put(f, (size_t)SEQ_LEN * HD, 0, 0.0f);                  /* the unused RoPE tables */
    put(f, (size_t)VOCAB * DIM, DIM, 0);                    /* classifier */
    assert_int_equal(fclose(f), 0);
}

/* ---------------------------------------------------------------- running the decoder */

/* Runs the program argv (NULL-terminated) with stdout to /dev/null; returns its exit status (-1:
 * killed). */
static int spawn(char *const argv[])
{
    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, STDOUT_FILENO);
        execvp(argv[0], argv); /* (a name without a slash is looked up in PATH) */
        fprintf(stderr, "test_decoder: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs the decoder on ckpt for STEPS steps with the extra flags (NULL-terminated) and reads what
 * --logits wrote. */
static run_result decode(const char *ckpt, int32_t vocab, const char *tag, ...)
{
    char logits_path[400];
    snprintf(logits_path, sizeof logits_path, "%s/%s.logits", g_dir, tag);
    char steps[16];
    snprintf(steps, sizeof steps, "%d", STEPS);
    char *argv[25];
    int n = 0;
    argv[n++] = "llama_decode";
    argv[n++] = (char *)ckpt;
    argv[n++] = "--steps";
    argv[n++] = steps;
    argv[n++] = "--logits";
    argv[n++] = logits_path;
    va_list ap;
    va_start(ap, tag);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 23;)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n++] = "--quiet";
    argv[n] = NULL;
    const int rc = llama_decode_main(n, argv);
    if (rc != 0)
        fail_msg("llama_decode (%s) exited with %d", tag, rc);

    run_result r = {STEPS, vocab, NULL, NULL};
    FILE *f = fopen(logits_path, "rb");
    assert_non_null(f);
    r.token = malloc(sizeof(int32_t) * STEPS);
    r.logits = malloc(sizeof(float) * (size_t)STEPS * (size_t)vocab);
    assert_non_null(r.token);
    assert_non_null(r.logits);
    for (int32_t s = 0; s < STEPS; s++) {
        int32_t rec[2];
        assert_int_equal(fread(rec, sizeof rec, 1, f), 1);
        assert_int_equal(rec[0], s);
        assert_true(rec[1] >= 0 && rec[1] < vocab);
        r.token[s] = rec[1];
        assert_int_equal(fread(r.logits + (size_t)s * (size_t)vocab, sizeof(float), (size_t)vocab, f), (size_t)vocab);
    }
    assert_int_equal(fgetc(f), EOF); /* exactly STEPS records */
    fclose(f);
    remove(logits_path);
    return r;
}

static void free_result(run_result *r)
{
    free(r->token);
    free(r->logits);
    r->token = NULL;
    r->logits = NULL;
}

/* Logits within tol at every step, and the same tokens; or, when the reference had a near tie (the
 * token chosen by a has a reference logit within 2 tol of the largest), the same up to that step,
 * after which the two runs continue different texts and are not compared. With the default seed the
 * reference's two largest logits are never closer than 1e-3, so an FP32 run must match all 500. */
static void compare(const run_result *a, const run_result *ref, double tol, const char *what)
{
    double worst = 0.0, top = 0.0;
    int32_t same = 0;
    for (int32_t s = 0; s < ref->steps; s++) {
        const float *la = a->logits + (size_t)s * (size_t)ref->vocab, *lr = ref->logits + (size_t)s * (size_t)ref->vocab;
        for (int32_t i = 0; i < ref->vocab; i++) {
            const double e = fabs((double)la[i] - (double)lr[i]);
            if (!(e <= tol))
                fail_msg("%s: step %d, logit %d: %.9g, reference %.9g (|diff| %.3g > %.1g)", what, (int)s, (int)i,
                         (double)la[i], (double)lr[i], e, tol);
            worst = e > worst ? e : worst;
            top = fabs((double)lr[i]) > top ? fabs((double)lr[i]) : top;
        }
        if (a->token[s] != ref->token[s]) {
            const double gap = (double)lr[ref->token[s]] - (double)lr[a->token[s]];
            print_message("%s: step %d chose token %d, the reference %d (reference logits %.3g apart)\n", what,
                          (int)s, (int)a->token[s], (int)ref->token[s], gap);
            if (gap > 2.0 * tol)
                fail_msg("%s: token %d differs without a near tie", what, (int)s);
            break;
        }
        same++;
    }
    print_message("%s: %d of %d tokens equal, max |logit diff| %.3g (largest |logit| %.3g)\n", what, (int)same,
                  (int)ref->steps, worst, top);
}

/* ---------------------------------------------------------------- the tests */

static void edgeattn_one_thread(void **state)
{
    (void)state;
    run_result r = decode(g_ckpt, VOCAB, "ea1", "--threads", "1", NULL);
    compare(&r, &g_plain, 1e-4, "edgeattn, 1 thread, FP32 cache");
    free_result(&r);
}

static void edgeattn_two_threads(void **state)
{
    (void)state;
    run_result r = decode(g_ckpt, VOCAB, "ea2", "--threads", "2", NULL);
    compare(&r, &g_plain, 1e-4, "edgeattn, 2 threads, FP32 cache");
    free_result(&r);
    r = decode(g_ckpt, VOCAB, "ea2pool", "--threads", "2", "--app-pool", NULL);
    compare(&r, &g_plain, 1e-4, "edgeattn, 2 threads of the example's pool");
    free_result(&r);
}

static void plain_two_threads(void **state)
{
    (void)state;
    run_result r = decode(g_ckpt, VOCAB, "plain2", "--plain", "--threads", "2", NULL);
    compare(&r, &g_plain, 0.0, "plain loop, 2 threads against 1");
    free_result(&r);
}

/* FP16 keys and values: about 1e-3 relative per value, so a looser bound, and after a while a near
 * tie between two logits may pick another token: the runs must agree up to it. */
static void edgeattn_f16_cache(void **state)
{
    (void)state;
    run_result r = decode(g_ckpt, VOCAB, "ea16", "--cache", "f16", NULL);
    compare(&r, &g_plain, 2e-2, "edgeattn, FP16 cache");
    free_result(&r);
}

/* A checkpoint shorter than its header says is refused, with a message and exit status 1. */
static void truncated_checkpoint(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/short.bin", g_dir);
    FILE *in = fopen(g_ckpt, "rb"), *out = fopen(path, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t left = 100000; /* the whole file is about 1 MB */
    while (left > 0) {
        const size_t n = fread(buf, 1, left < sizeof buf ? left : sizeof buf, in);
        assert_true(n > 0);
        assert_int_equal(fwrite(buf, 1, n, out), n);
        left -= n;
    }
    fclose(in);
    assert_int_equal(fclose(out), 0);
    char *argv[] = {"llama_decode", path, "--steps", "4", NULL};
    assert_int_equal(llama_decode_main(4, argv), 1);
    remove(path);
}

/* A checkpoint of tools/make-checkpoint.py (shared classifier) with the given shape through both
 * attentions. */
static void script_model(const char *dim, const char *hidden, const char *layers, const char *heads,
                         const char *kv_heads, int vocab, const char *what)
{
    if (!g_python || !g_script) {
        print_message("no python3 given: tools/make-checkpoint.py not tried\n");
        skip();
    }
    char path[400], seed[32], voc[16];
    snprintf(path, sizeof path, "%s/script.bin", g_dir);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)(g_seed % 1000000007u));
    snprintf(voc, sizeof voc, "%d", vocab);
    char *argv[] = {(char *)g_python, (char *)g_script, path, "--dim", (char *)dim, "--hidden", (char *)hidden,
                    "--layers", (char *)layers, "--heads", (char *)heads, "--kv-heads", (char *)kv_heads, "--vocab",
                    voc, "--seq-len", "520", "--seed", seed, NULL};
    assert_int_equal(spawn(argv), 0);
    run_result plain = decode(path, vocab, "sp", "--plain", NULL);
    run_result ea = decode(path, vocab, "se", "--threads", "2", NULL);
    compare(&ea, &plain, 1e-4, what);
    free_result(&ea);
    free_result(&plain);
    remove(path);
}

static void script_checkpoint(void **state)
{
    (void)state;
    script_model("96", "256", "2", "6", "3", 300, "make-checkpoint.py model, edgeattn against the plain loop");
}

/* The shape of llama2.c's smallest model (stories260K: dim 64, 5 layers, 8 heads over 4 KV heads):
 * head dim 8. */
static void script_checkpoint_head_dim_8(void **state)
{
    (void)state;
    script_model("64", "172", "5", "8", "4", 512, "head dim 8 (stories260K's shape), edgeattn against the plain loop");
}

static int setup(void **state)
{
    (void)state;
    const char *env = getenv("EDGEATTN_TEST_SEED");
    g_seed = env && *env ? strtoull(env, NULL, 0) : 2u;
    print_message("seed %llu (EDGEATTN_TEST_SEED=%llu repeats this run)\n", (unsigned long long)g_seed,
                  (unsigned long long)g_seed);
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_decoder.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "test_decoder: mkdtemp %s: %s\n", g_dir, strerror(errno));
        return -1;
    }
    snprintf(g_ckpt, sizeof g_ckpt, "%s/model.bin", g_dir);
    write_checkpoint(g_ckpt, g_seed);
    g_plain = decode(g_ckpt, VOCAB, "plain1", "--plain", "--threads", "1", NULL);
    /* how close the greedy choices come to a tie: the margin the token comparison has */
    double gap = INFINITY;
    int32_t at = 0;
    for (int32_t s = 0; s < STEPS; s++) {
        const float *l = g_plain.logits + (size_t)s * VOCAB;
        double second = -INFINITY;
        for (int32_t i = 0; i < VOCAB; i++)
            if (i != g_plain.token[s] && l[i] > second)
                second = l[i];
        if ((double)l[g_plain.token[s]] - second < gap) {
            gap = (double)l[g_plain.token[s]] - second;
            at = s;
        }
    }
    print_message("reference: smallest gap between the two largest logits %.3g (step %d)\n", gap, (int)at);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free_result(&g_plain);
    remove(g_ckpt);
    rmdir(g_dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 1 && argc != 3) {
        fprintf(stderr, "usage: test_decoder [PYTHON3 MAKE_CHECKPOINT_PY]\n");
        return 2;
    }
    if (argc == 3) {
        g_python = argv[1];
        g_script = argv[2];
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edgeattn_one_thread), cmocka_unit_test(edgeattn_two_threads),
        cmocka_unit_test(plain_two_threads),   cmocka_unit_test(edgeattn_f16_cache),
        cmocka_unit_test(truncated_checkpoint), cmocka_unit_test(script_checkpoint),
        cmocka_unit_test(script_checkpoint_head_dim_8),
    };
    return cmocka_run_group_tests_name("decoder", tests, setup, teardown);
}
