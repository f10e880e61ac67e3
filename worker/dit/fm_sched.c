/* fm_sched — flow-matching schedule, Euler and UniPC steps (see fm_sched.h).
 *
 * Matching diffusers to 1e-7 rather than 1e-4 is a matter of doing the
 * same arithmetic in the same precision:
 *
 * - The schedule is computed by numpy in float64 and cast to float32 once
 *   (sigmas), while FlowMatchEuler takes its end points from a float32
 *   torch schedule built in its constructor, shift already applied (so the
 *   shift is applied twice to the end points: a diffusers quirk that moves
 *   the timesteps, reproduced here on purpose). numpy.linspace computes
 *   start + i * ((stop - start) / (num - 1)) and stores `stop` exactly at
 *   the end; np_linspace reproduces that.
 * - UniPC's timesteps are the float64 1000*sigma truncated to int64; the
 *   model sees those integers, not 1000*sigma.
 * - Every per-step coefficient (log-SNR lambda, h, e^h - 1, the B(h) series,
 *   the small linear solve for the rho weights) is a 0-dim float32 tensor
 *   in diffusers, so here a float computed with logf/expm1f in the same
 *   order. Per-element work is float32 in the same order of operations.
 */
#include "fm_sched.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fm_sched {
    fm_sched_config cfg;
    int steps;
    float *sigmas;    /* steps + 1 */
    float *timesteps; /* steps */

    /* UniPC trajectory state */
    int next;            /* the step expected next */
    size_t n;            /* elements per sample, fixed by step 0 */
    float *hist[FM_MAX_ORDER]; /* x0 predictions, hist[0] newest */
    int nhist;           /* how many of hist hold a prediction */
    float *fresh;        /* the x0 prediction of the current step */
    float *last_sample;  /* the sample the previous step's predictor started from */
    int last_order;      /* the order the previous step's predictor used */
};

/* numpy.linspace(start, stop, num)[i] in float64. */
static double np_linspace(double start, double stop, int num, int i) {
    if (num == 1) return start;
    if (i == num - 1) return stop;
    double div = num - 1;
    double delta = stop - start;
    double step = delta / div;
    if (step == 0) return ((double)i / div) * delta + start;
    return (double)i * step + start;
}

static double shift_f64(double shift, double s) { return shift * s / (1.0 + (shift - 1.0) * s); }

/* The same map on a float32 torch tensor with a Python float shift: the
 * scalars are rounded to float32 first. */
static float shift_f32(double shift, float s) {
    float a = (float)shift * s;
    float b = 1.0f + (float)(shift - 1.0) * s;
    return a / b;
}

static void schedule_euler(fm_sched *s) {
    const fm_sched_config *c = &s->cfg;
    int T = c->num_train_timesteps, N = s->steps;
    float tf = (float)T;
    /* The constructor's float32 schedule runs from T/T to 1/T. */
    double sigma_max = shift_f32(c->shift, (float)T / tf);
    double sigma_min = shift_f32(c->shift, 1.0f / tf);
    for (int i = 0; i < N; i++) {
        double t = np_linspace(sigma_max * T, sigma_min * T, N, i);
        double sg = shift_f64(c->shift, t / T);
        s->sigmas[i] = (float)sg;
        s->timesteps[i] = s->sigmas[i] * tf;
    }
    s->sigmas[N] = 0.0f;
}

static void schedule_unipc(fm_sched *s) {
    const fm_sched_config *c = &s->cfg;
    int T = c->num_train_timesteps, N = s->steps;
    double last = 0.0;
    for (int i = 0; i < N; i++) {
        double sg = shift_f64(c->shift, np_linspace(1.0, 1.0 / T, N + 1, i));
        /* diffusers keeps the first sigma off exactly 1, where alpha = 0
         * would make log(alpha) infinite. */
        if (i == 0 && fabs(sg - 1.0) < 1e-6) sg -= 1e-6;
        s->sigmas[i] = (float)sg;
        s->timesteps[i] = (float)(int64_t)(sg * T);
        last = sg;
    }
    s->sigmas[N] = c->final_sigma_min ? (float)last : 0.0f;
}

/* Checks a hand-made config as strictly as the JSON parser does. */
static int config_check(const fm_sched_config *c, int steps, char *err, size_t errlen) {
    if (c->kind != FM_EULER && c->kind != FM_UNIPC) {
        snprintf(err, errlen, "fm_sched: unknown scheduler kind %d", (int)c->kind);
        return -1;
    }
    if (c->num_train_timesteps < 1) {
        snprintf(err, errlen, "fm_sched: num_train_timesteps %d must be >= 1", c->num_train_timesteps);
        return -1;
    }
    if (!(c->shift > 0.0) || !isfinite(c->shift)) {
        snprintf(err, errlen, "fm_sched: %s %g must be a positive number",
                 c->kind == FM_UNIPC ? "flow_shift" : "shift", c->shift);
        return -1;
    }
    if (steps < 1) {
        snprintf(err, errlen, "fm_sched: num_inference_steps %d must be >= 1", steps);
        return -1;
    }
    if (c->kind == FM_EULER) return 0;
    if (c->solver_order < 1 || c->solver_order > FM_MAX_ORDER) {
        snprintf(err, errlen, "fm_sched: solver_order %d is not supported (1..%d)", c->solver_order,
                 FM_MAX_ORDER);
        return -1;
    }
    if (c->solver_type != FM_BH1 && c->solver_type != FM_BH2) {
        snprintf(err, errlen, "fm_sched: unknown solver_type %d", (int)c->solver_type);
        return -1;
    }
    if (c->n_disable_corrector < 0 || c->n_disable_corrector > FM_MAX_DISABLE) {
        snprintf(err, errlen, "fm_sched: disable_corrector holds %d steps (at most %d)",
                 c->n_disable_corrector, FM_MAX_DISABLE);
        return -1;
    }
    /* A final sigma of 0 makes the last step's log-SNR step h infinite.
     * bh2 (B(h) = e^-h - 1 -> -1) and a first-order last step survive it;
     * diffusers itself returns NaN or inf otherwise, so refuse rather
     * than reproduce that. */
    if (!c->final_sigma_min && c->solver_type == FM_BH1) {
        snprintf(err, errlen,
                 "fm_sched: solver_type bh1 with final_sigmas_type \"zero\" makes the last step NaN "
                 "(B(h) = h is infinite there); use bh2 or final_sigmas_type \"sigma_min\"");
        return -1;
    }
    if (!c->final_sigma_min && !c->lower_order_final && c->solver_order > 1 && steps > 1) {
        snprintf(err, errlen,
                 "fm_sched: lower_order_final false with final_sigmas_type \"zero\" and solver_order %d "
                 "divides by a zero step ratio in the last step; set lower_order_final true",
                 c->solver_order);
        return -1;
    }
    return 0;
}

int fm_sched_new(const fm_sched_config *cfg, int steps, fm_sched **out, char *err, size_t errlen) {
    *out = NULL;
    if (config_check(cfg, steps, err, errlen) != 0) return -1;
    fm_sched *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->cfg = *cfg;
    s->steps = steps;
    s->sigmas = malloc(((size_t)steps + 1) * sizeof(float));
    s->timesteps = malloc((size_t)steps * sizeof(float));
    if (!s->sigmas || !s->timesteps) goto oom;
    if (cfg->kind == FM_EULER)
        schedule_euler(s);
    else
        schedule_unipc(s);
    *out = s;
    return 0;
oom:
    fm_sched_free(s);
    snprintf(err, errlen, "fm_sched: out of memory for a %d-step schedule", steps);
    return -1;
}

static void free_state(fm_sched *s) {
    for (int j = 0; j < FM_MAX_ORDER; j++) {
        free(s->hist[j]);
        s->hist[j] = NULL;
    }
    free(s->fresh);
    free(s->last_sample);
    s->fresh = s->last_sample = NULL;
    s->n = 0;
}

void fm_sched_free(fm_sched *s) {
    if (!s) return;
    free_state(s);
    free(s->sigmas);
    free(s->timesteps);
    free(s);
}

int fm_sched_steps(const fm_sched *s) { return s->steps; }

float fm_sched_timestep(const fm_sched *s, int i) {
    return (i >= 0 && i < s->steps) ? s->timesteps[i] : NAN;
}

float fm_sched_sigma(const fm_sched *s, int i) {
    return (i >= 0 && i <= s->steps) ? s->sigmas[i] : NAN;
}

void fm_cfg_combine(const float *uncond, const float *cond, float guidance, float *out, size_t n) {
    for (size_t e = 0; e < n; e++) {
        float u = uncond[e];
        out[e] = u + guidance * (cond[e] - u);
    }
}

/* ---- UniPC ---- */

/* log-SNR of a flow-matching noise level: alpha = 1 - sigma. */
static float lambda_of(float sigma) { return logf(1.0f - sigma) - logf(sigma); }

/* Solve a x = b (k <= FM_MAX_ORDER) by LU with partial pivoting, the way
 * LAPACK's sgesv orders the float operations. The matrices are tiny
 * Vandermonde systems in the step ratios, well conditioned for the
 * schedules used. */
static void solve_small(int k, float a[FM_MAX_ORDER][FM_MAX_ORDER], float *b, float *x) {
    for (int col = 0; col < k; col++) {
        int p = col;
        for (int r = col + 1; r < k; r++)
            if (fabsf(a[r][col]) > fabsf(a[p][col])) p = r;
        if (p != col) {
            for (int c = 0; c < k; c++) {
                float t = a[col][c];
                a[col][c] = a[p][c];
                a[p][c] = t;
            }
            float t = b[col];
            b[col] = b[p];
            b[p] = t;
        }
        float inv = 1.0f / a[col][col];
        for (int r = col + 1; r < k; r++) {
            a[r][col] *= inv;
            for (int c = col + 1; c < k; c++) a[r][c] -= a[r][col] * a[col][c];
        }
    }
    for (int r = 0; r < k; r++)
        for (int c = 0; c < r; c++) b[r] -= b[c] * a[r][c];
    for (int r = k - 1; r >= 0; r--) {
        x[r] = b[r] / a[r][r];
        for (int c = 0; c < r; c++) b[c] -= x[r] * a[c][r];
    }
}

/* The scalar part of one UniPC update from noise level sig_s0 (where the
 * newest history entry was predicted) to sig_t, with `order` history
 * entries whose noise levels are sig_s[1..order-1]. */
typedef struct {
    float cx, cm, cb; /* x_t = cx * x - cm * m0 - cb * (weighted differences) */
    float rk[FM_MAX_ORDER]; /* step ratios of the older entries */
    float rho_p[FM_MAX_ORDER]; /* predictor weights of the order-1 differences */
    float rho_c[FM_MAX_ORDER]; /* corrector weights: differences, then the new output */
} unipc_coef;

static void unipc_coefs(const fm_sched *s, float sig_t, float sig_s0, const float *sig_s, int order,
                        int corrector, unipc_coef *co) {
    float alpha_t = 1.0f - sig_t;
    if (sig_t == 0.0f) {
        /* The final step to sigma 0: h = +inf, so e^-h - 1 = -1 and the
         * result is the x0 prediction itself. Written out rather than left
         * to IEEE infinities; config_check keeps this step first order and
         * bh2. */
        co->cx = 0.0f;
        co->cm = -alpha_t;
        co->cb = -alpha_t;
        return;
    }
    float lambda_s0 = lambda_of(sig_s0);
    float h = lambda_of(sig_t) - lambda_s0;
    float rks[FM_MAX_ORDER];
    for (int j = 1; j < order; j++) {
        co->rk[j - 1] = (lambda_of(sig_s[j]) - lambda_s0) / h;
        rks[j - 1] = co->rk[j - 1];
    }
    rks[order - 1] = 1.0f;

    /* Predicting x0, UniPC integrates in -h. */
    float hh = -h;
    float h_phi_1 = expm1f(hh);
    float h_phi_k = h_phi_1 / hh - 1.0f;
    float B_h = s->cfg.solver_type == FM_BH1 ? hh : expm1f(hh);
    float R[FM_MAX_ORDER][FM_MAX_ORDER], b[FM_MAX_ORDER];
    long fact = 1;
    for (int i = 1; i <= order; i++) {
        for (int j = 0; j < order; j++) {
            float p = 1.0f;
            for (int e = 0; e < i - 1; e++) p *= rks[j];
            R[i - 1][j] = p;
        }
        b[i - 1] = h_phi_k * (float)fact / B_h;
        fact *= i + 1;
        h_phi_k = h_phi_k / hh - (float)(1.0 / (double)fact);
    }

    if (!corrector) {
        if (order == 2) {
            co->rho_p[0] = 0.5f;
        } else if (order > 2) {
            float Rs[FM_MAX_ORDER][FM_MAX_ORDER], bs[FM_MAX_ORDER];
            for (int i = 0; i < order - 1; i++) {
                for (int j = 0; j < order - 1; j++) Rs[i][j] = R[i][j];
                bs[i] = b[i];
            }
            solve_small(order - 1, Rs, bs, co->rho_p);
        }
    } else {
        if (order == 1)
            co->rho_c[0] = 0.5f;
        else
            solve_small(order, R, b, co->rho_c);
    }
    co->cx = sig_t / sig_s0;
    co->cm = alpha_t * h_phi_1;
    co->cb = alpha_t * B_h;
}

/* Sum over the older history entries of w[j] * (m_j - m0) / rk[j], for
 * one element. */
static inline float weighted_diffs(float *const *hist, size_t e, const float *w, const float *rk,
                                   int nd) {
    float m0 = hist[0][e];
    float acc = w[0] * ((hist[1][e] - m0) / rk[0]);
    for (int j = 1; j < nd; j++) acc += w[j] * ((hist[j + 1][e] - m0) / rk[j]);
    return acc;
}

/* UniC: replace the sample step i-1 predicted by a corrected one, using the
 * model output obtained at it (its x0 prediction `fresh`). */
static void unipc_correct(fm_sched *s, int i, float *sample) {
    int order = s->last_order;
    float sig_s[FM_MAX_ORDER];
    for (int j = 1; j < order; j++) sig_s[j] = s->sigmas[i - 1 - j];
    unipc_coef co;
    unipc_coefs(s, s->sigmas[i], s->sigmas[i - 1], sig_s, order, 1, &co);
    const float *x = s->last_sample, *mt = s->fresh, *m0 = s->hist[0];
    float rho_t = co.rho_c[order - 1];
    for (size_t e = 0; e < s->n; e++) {
        float base = co.cx * x[e] - co.cm * m0[e];
        float d1t = mt[e] - m0[e];
        float res = rho_t * d1t;
        if (order > 1) res = weighted_diffs(s->hist, e, co.rho_c, co.rk, order - 1) + res;
        sample[e] = base - co.cb * res;
    }
}

/* UniP: predict the sample at sigma_{i+1} from the history (hist[0] is
 * this step's x0 prediction). In place: x is read before sample is written. */
static void unipc_predict(fm_sched *s, int i, int order, float *sample) {
    float sig_s[FM_MAX_ORDER];
    for (int j = 1; j < order; j++) sig_s[j] = s->sigmas[i - j];
    unipc_coef co;
    unipc_coefs(s, s->sigmas[i + 1], s->sigmas[i], sig_s, order, 0, &co);
    const float *m0 = s->hist[0];
    for (size_t e = 0; e < s->n; e++) {
        float xt = co.cx * sample[e] - co.cm * m0[e];
        if (order > 1) xt = xt - co.cb * weighted_diffs(s->hist, e, co.rho_p, co.rk, order - 1);
        sample[e] = xt;
    }
}

static int unipc_begin(fm_sched *s, size_t n, char *err, size_t errlen) {
    free_state(s);
    int k = s->cfg.solver_order;
    for (int j = 0; j < k; j++)
        if (!(s->hist[j] = malloc(n * sizeof(float)))) goto oom;
    s->fresh = malloc(n * sizeof(float));
    s->last_sample = malloc(n * sizeof(float));
    if (!s->fresh || !s->last_sample) goto oom;
    s->n = n;
    s->nhist = 0;
    s->last_order = 0;
    return 0;
oom:
    free_state(s);
    snprintf(err, errlen, "fm_sched: out of memory for UniPC state (%d x %zu floats)", k + 2, n);
    return -1;
}

static int corrector_disabled(const fm_sched *s, int step) {
    for (int j = 0; j < s->cfg.n_disable_corrector; j++)
        if (s->cfg.disable_corrector[j] == step) return 1;
    return 0;
}

static void unipc_step(fm_sched *s, int i, const float *model_output, float *sample) {
    int k = s->cfg.solver_order;
    /* x0 = x - sigma * v, from the sample before correction (as diffusers). */
    float sg = s->sigmas[i];
    for (size_t e = 0; e < s->n; e++) s->fresh[e] = sample[e] - sg * model_output[e];

    if (i > 0 && !corrector_disabled(s, i - 1)) unipc_correct(s, i, sample);

    /* Push the new prediction; the oldest buffer becomes the next scratch. */
    float *oldest = s->hist[k - 1];
    for (int j = k - 1; j > 0; j--) s->hist[j] = s->hist[j - 1];
    s->hist[0] = s->fresh;
    s->fresh = oldest;
    if (s->nhist < k) s->nhist++;

    int order = k;
    if (s->cfg.lower_order_final && s->steps - i < order) order = s->steps - i;
    if (order > s->nhist) order = s->nhist; /* warm-up: not enough history yet */

    memcpy(s->last_sample, sample, s->n * sizeof(float));
    unipc_predict(s, i, order, sample);
    s->last_order = order;
}

int fm_sched_step(fm_sched *s, int i, const float *model_output, float *sample, size_t n,
                  char *err, size_t errlen) {
    if (i < 0 || i >= s->steps) {
        snprintf(err, errlen, "fm_sched: step %d is outside the schedule (0..%d)", i, s->steps - 1);
        return -1;
    }
    if (i != 0 && i != s->next) {
        snprintf(err, errlen, "fm_sched: step %d out of order (step %d expected, or 0 to restart)", i,
                 s->next);
        return -1;
    }
    if (i != 0 && n != s->n) {
        snprintf(err, errlen, "fm_sched: step %d has %zu elements, the trajectory has %zu", i, n, s->n);
        return -1;
    }
    if (s->cfg.kind == FM_EULER) {
        float dt = s->sigmas[i + 1] - s->sigmas[i];
        for (size_t e = 0; e < n; e++) sample[e] = sample[e] + dt * model_output[e];
        s->n = n;
    } else {
        if (i == 0 && unipc_begin(s, n, err, errlen) != 0) return -1;
        unipc_step(s, i, model_output, sample);
    }
    s->next = i + 1;
    return 0;
}
