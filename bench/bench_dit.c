/* rf-bench-dit — the Wan transformer's forward pass on the CPU, timed, with
 * OpenBLAS sgemm's rate on this machine beside it (issue #5's benchmark;
 * bench/bench_dit.py runs it next to diffusers on torch).
 *
 *   rf-bench-dit --config C.json --weights W.safetensors --inputs I.safetensors
 *                [--threads N] [--ranks R] [--iters K] [--text-cache 0|1] [--out O.f32]
 *   rf-bench-dit --sgemm M,N,K [--threads N] [--iters K]
 *
 * The inputs file holds hidden_states [1,C,F,H,W], timestep [1] and
 * encoder_hidden_states [1,L,D] (the golden-data layout). It prints one
 * line of key=value pairs: milliseconds per forward (median of K after one
 * warm-up), the forward's floating-point operations counted from the
 * shapes, and GFLOP/s. --out writes the output (float32, raw) for the
 * caller to compare with another implementation.
 *
 * --text-cache 1 leaves the model's text cache on: the warm-up fills it and
 * every timed forward takes the text side from it, as every sampling step
 * after the first does; the operation count then leaves out the work
 * skipped (the text MLP, every block's cross-attention k and v). The
 * default, 0, turns the cache off so that every forward does all the work.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coll.h"
#include "st.h"
#include "wan_tf.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Multiply-adds of one forward, counted as 2 flops each, from the shapes:
 * every linear layer, the patch embedding, attention's two products. The
 * element-wise work (norms, softmax, rotary, GELU) is left out, as torch's
 * and BLAS's GFLOP/s figures leave it out. text_cached: without the text
 * side, which a forward with a cached text skips. */
static double forward_flops(const wan_tf_config *c, int F, int H, int W, int L, int text_cached) {
    double n = (double)(F / c->patch[0]) * (H / c->patch[1]) * (W / c->patch[2]);
    double d = (double)c->num_heads * c->head_dim, ff = c->ffn_dim;
    double pv = (double)c->patch[0] * c->patch[1] * c->patch[2];
    double f = 2 * n * d * (c->in_channels * pv);             /* patch embedding */
    double tc = text_cached ? 0.0 : 1.0;
    f += tc * 2 * (double)L * (c->text_dim * d + d * d);      /* text MLP */
    double per_block = 2 * n * d * d * 4                       /* self q k v o */
                       + 2 * 2 * n * n * d                     /* self scores, values */
                       + 2 * n * d * d * 2                     /* cross q o */
                       + tc * 2 * (double)L * d * d * 2        /* cross k v */
                       + 2 * 2 * n * (double)L * d             /* cross scores, values */
                       + 2 * n * d * ff * 2;                   /* feed-forward */
    f += per_block * c->num_layers;
    f += 2 * n * d * (c->out_channels * pv);                  /* head */
    return f;
}

typedef struct run {
    const wan_tf_config *cfg;
    const char *weights;
    const float *x, *ctx;
    float t;
    int F, H, W, L, iters, text_cache;
    float *out;
    double *times;
    char err[512];
} run;

static int rank_main(coll *c, void *arg) {
    run *r = arg;
    st_set *st = NULL;
    wan_tf *m = NULL;
    char err[512] = "";
    int rc = st_open(r->weights, &st, err, sizeof err);
    if (rc == 0)
        rc = wan_tf_new(r->cfg, st, c, &m, err, sizeof err);
    st_free(st);
    if (rc == 0)
        wan_tf_set_text_cache(m, r->text_cache);
    for (int i = -1; rc == 0 && i < r->iters; i++) {
        coll_barrier(c);
        double t0 = now_s();
        rc = wan_tf_forward(m, r->x, r->F, r->H, r->W, r->t, r->ctx, r->L, r->out, err,
                            sizeof err);
        if (i >= 0 && coll_rank(c) == 0)
            r->times[i] = now_s() - t0;
    }
    if (rc != 0 && coll_rank(c) == 0)
        snprintf(r->err, sizeof r->err, "%s", err);
    wan_tf_free(m);
    return rc;
}

static float *load(st_set *s, const char *name, int ndim, int64_t *shape) {
    const st_tensor *t = st_find(s, name);
    if (!t || t->ndim != ndim) {
        fprintf(stderr, "rf-bench-dit: inputs: tensor %s missing or not %d-D\n", name, ndim);
        return NULL;
    }
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)(shape[i] = t->shape[i]);
    float *v = malloc(n * sizeof *v);
    char err[512];
    if (v && st_load(s, name, ndim, shape, v, err, sizeof err) != 0) {
        fprintf(stderr, "rf-bench-dit: %s\n", err);
        free(v);
        return NULL;
    }
    return v;
}

static int bench_sgemm(const char *dims, int iters) {
    int M, N, K;
    if (sscanf(dims, "%d,%d,%d", &M, &N, &K) != 3 || M < 1 || N < 1 || K < 1) {
        fprintf(stderr, "rf-bench-dit: --sgemm: want M,N,K (got '%s')\n", dims);
        return 2;
    }
    float *a = malloc((size_t)M * K * sizeof *a), *b = malloc((size_t)K * N * sizeof *b);
    float *c = malloc((size_t)M * N * sizeof *c);
    double *times = malloc((size_t)iters * sizeof *times);
    if (!a || !b || !c || !times)
        return 1;
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        b[i] = (float)(i % 5) * 0.1f;
    for (int i = -1; i < iters; i++) {
        double t0 = now_s();
        /* Row-major, B transposed: the layout of x @ W^T in a linear layer. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c,
                    N);
        if (i >= 0)
            times[i] = now_s() - t0;
    }
    double t = median(times, iters), flops = 2.0 * M * N * K;
    printf("sgemm M=%d N=%d K=%d threads=%d ms=%.3f gflops=%.3f gflop_s=%.2f\n", M, N, K,
           openblas_get_num_threads(), t * 1e3, flops * 1e-9, flops / t * 1e-9);
    free(a);
    free(b);
    free(c);
    free(times);
    return 0;
}

int main(int argc, char **argv) {
    const char *config = NULL, *weights = NULL, *inputs = NULL, *out_path = NULL, *sgemm = NULL;
    int threads = 1, ranks = 1, iters = 3, text_cache = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "rf-bench-dit: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--config") == 0)
            config = v;
        else if (strcmp(a, "--weights") == 0)
            weights = v;
        else if (strcmp(a, "--inputs") == 0)
            inputs = v;
        else if (strcmp(a, "--out") == 0)
            out_path = v;
        else if (strcmp(a, "--sgemm") == 0)
            sgemm = v;
        else if (strcmp(a, "--threads") == 0)
            threads = atoi(v);
        else if (strcmp(a, "--ranks") == 0)
            ranks = atoi(v);
        else if (strcmp(a, "--iters") == 0)
            iters = atoi(v);
        else if (strcmp(a, "--text-cache") == 0)
            text_cache = atoi(v);
        else {
            fprintf(stderr, "rf-bench-dit: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (threads < 1 || ranks < 1 || iters < 1) {
        fprintf(stderr, "rf-bench-dit: --threads, --ranks and --iters must be >= 1\n");
        return 2;
    }
    /* Each rank's BLAS calls use this many threads: threads x ranks cores. */
    openblas_set_num_threads(threads);
    if (sgemm)
        return bench_sgemm(sgemm, iters);
    if (!config || !weights || !inputs) {
        fprintf(stderr, "rf-bench-dit: --config, --weights and --inputs are required\n");
        return 2;
    }
    char err[512];
    wan_tf_config cfg;
    if (wan_tf_config_load(config, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "rf-bench-dit: %s\n", err);
        return 1;
    }
    st_set *in = NULL;
    if (st_open(inputs, &in, err, sizeof err) != 0) {
        fprintf(stderr, "rf-bench-dit: %s\n", err);
        return 1;
    }
    int64_t xs[5], ts[1], cs[3];
    float *x = load(in, "hidden_states", 5, xs), *t = load(in, "timestep", 1, ts);
    float *ctx = load(in, "encoder_hidden_states", 3, cs);
    st_free(in);
    int rc = 1;
    run r = {.cfg = &cfg, .weights = weights, .x = x, .ctx = ctx, .iters = iters,
             .text_cache = text_cache != 0};
    if (x && t && ctx) {
        r.t = t[0];
        r.F = (int)xs[2];
        r.H = (int)xs[3];
        r.W = (int)xs[4];
        r.L = (int)cs[1];
        size_t nout = (size_t)cfg.out_channels * r.F * r.H * r.W;
        r.out = malloc(nout * sizeof *r.out);
        r.times = malloc((size_t)iters * sizeof *r.times);
        if (r.out && r.times &&
            coll_run(ranks, rank_main, &r, err, sizeof err) == 0) {
            double med = median(r.times, iters);
            double fl = forward_flops(&cfg, r.F, r.H, r.W, r.L, r.text_cache);
            printf("forward layers=%d dim=%d heads=%d ffn=%d tokens=%d text=%d threads=%d "
                   "ranks=%d text_cache=%d iters=%d ms=%.2f gflops=%.3f gflop_s=%.2f\n",
                   cfg.num_layers, cfg.num_heads * cfg.head_dim, cfg.num_heads, cfg.ffn_dim,
                   (r.F / cfg.patch[0]) * (r.H / cfg.patch[1]) * (r.W / cfg.patch[2]), r.L,
                   threads, ranks, r.text_cache, iters, med * 1e3, fl * 1e-9, fl / med * 1e-9);
            rc = 0;
            if (out_path) {
                FILE *f = fopen(out_path, "wb");
                if (!f || fwrite(r.out, sizeof *r.out, nout, f) != nout) {
                    fprintf(stderr, "rf-bench-dit: --out %s: cannot write\n", out_path);
                    rc = 1;
                }
                if (f)
                    fclose(f);
            }
        } else {
            fprintf(stderr, "rf-bench-dit: %s\n", r.err[0] ? r.err : err);
        }
    }
    free(x);
    free(t);
    free(ctx);
    free(r.out);
    free(r.times);
    return rc;
}
