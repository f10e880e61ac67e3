/* dit_model — loading a model directory for R ranks and running a
 * segment on it (see dit_model.h).
 *
 * Loading: configs first (cheap, and a wrong directory is then reported
 * before gigabytes are read), then the transformer shards, one thread per
 * rank reading its own slices of the shared, read-only mapping (st allows
 * concurrent loads), then the VAE decoder. The safetensors mappings are
 * closed once the float32 copies exist.
 *
 * Running: without an abort in the collectives' public interface, a rank
 * that failed alone would leave the others blocked in an all-reduce. So
 * everything a rank could fail on by itself is done before any rank
 * starts: the samplers and latent buffers are made here, on the caller's
 * thread, and the rank threads wait at a gate that opens only when all of
 * them exist (a failed pthread_create turns them back). What is left
 * inside the loop fails on every rank alike (argument checks), except an
 * allocation failure in the transformer's first forward.
 */
#include "dit_model.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "blas.h"
#include "coll.h"
#include "dit_pipe.h"
#include "st.h"

#define DIT_MAX_RANKS 64

struct dit_model {
    char *dir;
    int ranks;
    wan_tf_config tf_cfg;
    wan_vae_config vae_cfg;
    fm_sched_config sched;
    coll_group *group; /* NULL for one rank */
    wan_tf **tf;       /* one shard per rank */
    wan_vae *vae;
    uint64_t tf_bytes;
};

/* ---- loading ---- */

static int join_path(char *out, size_t outlen, const char *dir, const char *rel, char *err,
                     size_t errlen) {
    int n = snprintf(out, outlen, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/",
                     rel);
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "model %s: path of %s is too long", dir, rel);
        return -1;
    }
    return 0;
}

/* A readable message for a path that is not the directory it should be. */
static int want_dir(const char *path, const char *what, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s %s: not a directory", what, path);
        return -1;
    }
    return 0;
}

typedef struct {
    const wan_tf_config *cfg;
    st_set *weights;
    coll *c;
    wan_tf *out;
    int rc;
    char err[512];
} shard_load;

static void *shard_load_main(void *p) {
    shard_load *s = p;
    s->rc = wan_tf_new(s->cfg, s->weights, s->c, &s->out, s->err, sizeof s->err);
    return NULL;
}

/* Every rank's shard, read in parallel. Loading touches no collective, so
 * a rank whose thread cannot start simply loads on this one. */
static int load_shards(dit_model *m, st_set *weights, char *err, size_t errlen) {
    int R = m->ranks;
    shard_load *jobs = calloc((size_t)R, sizeof *jobs);
    pthread_t *th = calloc((size_t)R, sizeof *th);
    char *started = calloc((size_t)R, 1);
    if (!jobs || !th || !started) {
        free(jobs);
        free(th);
        free(started);
        snprintf(err, errlen, "model %s: out of memory", m->dir);
        return -1;
    }
    for (int r = 0; r < R; r++) {
        jobs[r] = (shard_load){.cfg = &m->tf_cfg, .weights = weights,
                               .c = m->group ? coll_get(m->group, r) : NULL};
        if (r > 0 && pthread_create(&th[r], NULL, shard_load_main, &jobs[r]) == 0)
            started[r] = 1;
    }
    for (int r = 0; r < R; r++)
        if (!started[r])
            shard_load_main(&jobs[r]);
    for (int r = 0; r < R; r++)
        if (started[r])
            pthread_join(th[r], NULL);
    int rc = 0;
    for (int r = 0; r < R; r++) {
        m->tf[r] = jobs[r].out;
        if (jobs[r].rc != 0 && rc == 0) {
            snprintf(err, errlen, "model %s: transformer%s: %s", m->dir,
                     R > 1 ? " (loading a rank's shard)" : "", jobs[r].err);
            rc = -1;
        }
        m->tf_bytes += wan_tf_weight_bytes(jobs[r].out);
    }
    free(jobs);
    free(th);
    free(started);
    return rc;
}

static int load_configs(dit_model *m, char *err, size_t errlen) {
    char path[4096], inner[1024];
    if (join_path(path, sizeof path, m->dir, "transformer/config.json", err, errlen) != 0)
        return -1;
    if (wan_tf_config_load(path, &m->tf_cfg, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "model %s: %s", m->dir, inner);
        return -1;
    }
    if (join_path(path, sizeof path, m->dir, "vae/config.json", err, errlen) != 0)
        return -1;
    if (wan_vae_config_load(path, &m->vae_cfg, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "model %s: %s", m->dir, inner);
        return -1;
    }
    if (join_path(path, sizeof path, m->dir, "scheduler/scheduler_config.json", err, errlen) != 0)
        return -1;
    if (fm_sched_config_load(path, &m->sched, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "model %s: %s", m->dir, inner);
        return -1;
    }
    const wan_tf_config *t = &m->tf_cfg;
    if (t->in_channels != m->vae_cfg.z_dim || t->out_channels != m->vae_cfg.z_dim) {
        snprintf(err, errlen,
                 "model %s: the transformer has in_channels %d and out_channels %d but the VAE's "
                 "z_dim is %d; they must be equal (transformer and vae of different models?)",
                 m->dir, t->in_channels, t->out_channels, m->vae_cfg.z_dim);
        return -1;
    }
    if (m->ranks > t->num_heads) {
        snprintf(err, errlen,
                 "ranks: %d ranks but the transformer of %s has %d attention heads; each rank "
                 "needs at least one",
                 m->ranks, m->dir, t->num_heads);
        return -1;
    }
    return 0;
}

int dit_model_load(const char *dir, int ranks, dit_model **out, char *err, size_t errlen) {
    *out = NULL;
    if (ranks < 1 || ranks > DIT_MAX_RANKS) {
        snprintf(err, errlen, "ranks: %d, want 1..%d", ranks, DIT_MAX_RANKS);
        return -1;
    }
    if (want_dir(dir, "model", err, errlen) != 0)
        return -1;
    /* The products need OpenBLAS: say so here rather than mid-render. */
    if (blas_load(err, errlen) != 0)
        return -1;
    dit_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir)) || !(m->tf = calloc((size_t)ranks, sizeof *m->tf))) {
        if (m)
            free(m->dir);
        free(m);
        snprintf(err, errlen, "model %s: out of memory", dir);
        return -1;
    }
    m->ranks = ranks;
    char path[4096], inner[1024];
    st_set *weights = NULL;
    if (load_configs(m, err, errlen) != 0)
        goto fail;
    if (ranks > 1 && coll_group_new(ranks, &m->group, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "model %s: %s", dir, inner);
        goto fail;
    }
    if (join_path(path, sizeof path, dir, "transformer", err, errlen) != 0 ||
        want_dir(path, "model: transformer", err, errlen) != 0)
        goto fail;
    if (st_open(path, &weights, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "model %s: transformer weights: %s", dir, inner);
        goto fail;
    }
    if (load_shards(m, weights, err, errlen) != 0)
        goto fail;
    st_free(weights);
    weights = NULL;
    if (join_path(path, sizeof path, dir, "vae", err, errlen) != 0 ||
        want_dir(path, "model: vae", err, errlen) != 0)
        goto fail;
    if (st_open(path, &weights, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "model %s: vae weights: %s", dir, inner);
        goto fail;
    }
    if (wan_vae_new(&m->vae_cfg, weights, &m->vae, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "model %s: vae: %s", dir, inner);
        goto fail;
    }
    st_free(weights);
    *out = m;
    return 0;
fail:
    st_free(weights);
    dit_model_free(m);
    return -1;
}

void dit_model_free(dit_model *m) {
    if (!m)
        return;
    for (int r = 0; m->tf && r < m->ranks; r++)
        wan_tf_free(m->tf[r]);
    free(m->tf);
    wan_vae_free(m->vae);
    coll_group_free(m->group);
    free(m->dir);
    free(m);
}

const wan_tf_config *dit_model_tf_config(const dit_model *m) { return &m->tf_cfg; }
const wan_vae_config *dit_model_vae_config(const dit_model *m) { return &m->vae_cfg; }
const fm_sched_config *dit_model_sched_config(const dit_model *m) { return &m->sched; }
int dit_model_ranks(const dit_model *m) { return m->ranks; }
uint64_t dit_model_weight_bytes(const dit_model *m) { return m->tf_bytes; }

/* ---- embeddings ---- */

/* One embedding tensor: [L, dim] or [1, L, dim], converted to float32. */
static int load_embedding(st_set *set, const char *path, const st_tensor *t, int text_dim,
                          float **out, int *len, char *err, size_t errlen) {
    char shape[128] = "";
    for (int d = 0, o = 0; d < t->ndim && o < (int)sizeof shape; d++)
        o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", d ? ", " : "",
                      (long long)t->shape[d]);
    int ok = (t->ndim == 2) || (t->ndim == 3 && t->shape[0] == 1);
    int64_t L = t->ndim == 2 ? t->shape[0] : (ok ? t->shape[1] : 0);
    int64_t D = t->shape[t->ndim - 1];
    if (!ok || L < 1 || L > 1 << 20) {
        snprintf(err, errlen, "%s: '%s' is [%s]; want [L, %d] or [1, L, %d] with L >= 1", path,
                 t->name, shape, text_dim, text_dim);
        return -1;
    }
    if (D != text_dim) {
        snprintf(err, errlen,
                 "%s: '%s' is [%s] but the transformer's text_dim is %d (embeddings of another "
                 "text encoder?)",
                 path, t->name, shape, text_dim);
        return -1;
    }
    float *buf = malloc((size_t)L * (size_t)D * sizeof *buf);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory for '%s' [%s]", path, t->name, shape);
        return -1;
    }
    char inner[512];
    if (st_load(set, t->name, t->ndim, t->shape, buf, inner, sizeof inner) != 0) {
        free(buf);
        snprintf(err, errlen, "%s", inner);
        return -1;
    }
    *out = buf;
    *len = (int)L;
    return 0;
}

int dit_embeds_load(const char *path, int text_dim, dit_embeds **out, char *err, size_t errlen) {
    *out = NULL;
    st_set *set = NULL;
    char inner[1024];
    if (st_open(path, &set, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "%s", inner);
        return -1;
    }
    dit_embeds *e = calloc(1, sizeof *e);
    if (!e) {
        st_free(set);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    e->dim = text_dim;
    const st_tensor *cond = st_find(set, "prompt_embeds");
    const st_tensor *uncond = st_find(set, "negative_prompt_embeds");
    int rc = -1;
    if (!cond) {
        char names[256] = "";
        for (size_t i = 0, o = 0; i < st_count(set) && o < sizeof names; i++)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "",
                                  st_at(set, i)->name);
        snprintf(err, errlen, "%s: no tensor 'prompt_embeds' (the file holds: %s)", path,
                 names[0] ? names : "nothing");
    } else if (load_embedding(set, path, cond, text_dim, &e->cond, &e->cond_len, err, errlen) ==
                   0 &&
               (!uncond || load_embedding(set, path, uncond, text_dim, &e->uncond,
                                          &e->uncond_len, err, errlen) == 0)) {
        rc = 0;
    }
    st_free(set);
    if (rc != 0) {
        dit_embeds_free(e);
        return -1;
    }
    *out = e;
    return 0;
}

void dit_embeds_free(dit_embeds *e) {
    if (!e)
        return;
    free(e->cond);
    free(e->uncond);
    free(e);
}

/* ---- one segment ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state; /* 0: wait, 1: go, -1: abort */
} gate;

typedef struct {
    dit_model *m;
    const dit_gen_args *a;
    gate *g;
    int rank;
    fm_sched *sched;
    float *latents;
    int coll_failed;
    int rc;
    char err[1024];
} rank_run;

/* After every step: stop only when all ranks agree, which they do because
 * they sum the same flags. */
static int on_step(void *user, int step, int steps, const float *latents) {
    (void)step;
    (void)steps;
    (void)latents;
    rank_run *r = user;
    float v = r->a->stop && atomic_load(r->a->stop) ? 1.0f : 0.0f;
    if (r->m->ranks > 1 &&
        coll_allreduce_sum(coll_get(r->m->group, r->rank), &v, &v, 1, COLL_F32) != 0) {
        r->coll_failed = 1;
        return -1;
    }
    return v > 0.0f ? 1 : 0;
}

static void rank_body(rank_run *r) {
    const dit_gen_args *a = r->a;
    const wan_tf_config *t = &r->m->tf_cfg;
    dit_pipe_args pa = {.channels = t->in_channels,
                        .frames = a->frames,
                        .height = a->height,
                        .width = a->width,
                        .ctx = a->embeds->cond,
                        .ctx_len = a->embeds->cond_len,
                        .ctx_uncond = a->embeds->uncond,
                        .ctx_uncond_len = a->embeds->uncond_len,
                        .guidance = a->guidance,
                        .on_step = on_step,
                        .user = r};
    r->rc = dit_pipe_generate(r->m->tf[r->rank], r->sched, &pa, a->seed, a->first_latent_frame,
                              r->latents, r->err, sizeof r->err);
    if (r->coll_failed)
        snprintf(r->err, sizeof r->err, "rank %d: the stop check between steps failed in the "
                 "collectives", r->rank);
}

static void *rank_main(void *p) {
    rank_run *r = p;
    pthread_mutex_lock(&r->g->mu);
    while (r->g->state == 0)
        pthread_cond_wait(&r->g->cv, &r->g->mu);
    int go = r->g->state > 0;
    pthread_mutex_unlock(&r->g->mu);
    if (go)
        rank_body(r);
    return NULL;
}

static void gate_open(gate *g, int state) {
    pthread_mutex_lock(&g->mu);
    g->state = state;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

int dit_model_generate(dit_model *m, const dit_gen_args *a, float *latents, char *err,
                       size_t errlen) {
    const wan_tf_config *t = &m->tf_cfg;
    if (a->frames <= 0 || a->height <= 0 || a->width <= 0 || a->frames % t->patch[0] ||
        a->height % t->patch[1] || a->width % t->patch[2]) {
        snprintf(err, errlen,
                 "latent shape %dx%dx%d (frames x height x width) is not a positive multiple of "
                 "the transformer's patch %dx%dx%d",
                 a->frames, a->height, a->width, t->patch[0], t->patch[1], t->patch[2]);
        return -1;
    }
    if (a->guidance > 1.0f && !a->embeds->uncond) {
        snprintf(err, errlen, "guidance %g needs negative_prompt_embeds and the embeddings have "
                 "none (add them, or set guidance to 1)", (double)a->guidance);
        return -1;
    }
    int R = m->ranks;
    /* Each rank's products run on OpenBLAS threads; R ranks x all cores
     * would oversubscribe the machine, and OpenBLAS makes concurrent
     * threaded sgemms wait on each other (2 ranks x 2 threads on 2 cores:
     * 2.4x slower than 2 x 1, bench/README.md). Share the cores out. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    blas_set_threads(cores > R ? (int)(cores / R) : 1);
    size_t n = (size_t)t->in_channels * (size_t)a->frames * (size_t)a->height * (size_t)a->width;
    rank_run *runs = calloc((size_t)R, sizeof *runs);
    pthread_t *th = calloc((size_t)R, sizeof *th);
    gate g = {.state = 0};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    int rc = -1, started = 0;
    char inner[512];
    if (!runs || !th) {
        snprintf(err, errlen, "out of memory for %d ranks", R);
        goto done;
    }
    for (int r = 0; r < R; r++) {
        runs[r] = (rank_run){.m = m, .a = a, .g = &g, .rank = r};
        runs[r].latents = r == 0 ? latents : malloc(n * sizeof(float));
        if (!runs[r].latents) {
            snprintf(err, errlen, "out of memory for rank %d's latents (%zu floats)", r, n);
            goto done;
        }
        if (fm_sched_new(&a->sched, a->steps, &runs[r].sched, inner, sizeof inner) != 0) {
            snprintf(err, errlen, "sampler: %s", inner);
            goto done;
        }
    }
    for (started = 1; started < R; started++) {
        int e = pthread_create(&th[started], NULL, rank_main, &runs[started]);
        if (e != 0) {
            snprintf(err, errlen, "cannot start rank %d of %d: %s", started, R, strerror(e));
            break;
        }
    }
    if (started < R) {
        gate_open(&g, -1);
        goto done;
    }
    gate_open(&g, 1);
    rank_body(&runs[0]);
    for (int r = 1; r < started; r++)
        pthread_join(th[r], NULL);
    started = 1; /* joined */
    rc = 0;
    for (int r = 0; r < R && rc == 0; r++)
        if (runs[r].rc != 0) {
            rc = runs[r].rc > 0 && !runs[r].coll_failed ? 1 : -1;
            snprintf(err, errlen, "%s", runs[r].err);
        }
done:
    for (int r = 1; r < started; r++)
        pthread_join(th[r], NULL);
    for (int r = 0; runs && r < R; r++) {
        fm_sched_free(runs[r].sched);
        if (r > 0)
            free(runs[r].latents);
    }
    free(runs);
    free(th);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    return rc;
}

int dit_model_decode(dit_model *m, const float *latents, int T, int h, int w, float *rgb, char *err,
                     size_t errlen) {
    return wan_vae_decode(m->vae, latents, T, h, w, rgb, err, errlen);
}
