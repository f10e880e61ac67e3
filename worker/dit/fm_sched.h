/* fm_sched — the flow-matching sampler: noise schedule with shift, the
 * Euler step and the UniPC multistep predictor-corrector, as diffusers'
 * FlowMatchEulerDiscreteScheduler and UniPCMultistepScheduler compute them
 * for Wan2.1 (flow prediction, flow sigmas).
 *
 * A flow-matching model predicts the velocity v = noise - x0 at noise level
 * sigma, where x_sigma = (1 - sigma) * x0 + sigma * noise. A sampler walks
 * sigma from ~1 down to 0 in N steps. The schedule is a linear ramp bent by
 * `shift` (sigma' = shift*s / (1 + (shift-1)*s)), which spends more steps at
 * high noise; its exact float values matter because the model sees the
 * timestep (1000 * sigma), so the schedule is computed with the same
 * float64/float32 roundings as diffusers and the timesteps come out equal.
 *
 * UniPC keeps the last `solver_order` x0 predictions: each step first
 * corrects the sample the previous step predicted (UniC, using the model
 * output just obtained at that sample), then predicts the next sample from
 * the history (UniP). A step is therefore stateful and steps must come in
 * order 0, 1, ..., N-1; step 0 starts a new trajectory.
 *
 * All arrays are float32 and processed whole; the step's scalar
 * coefficients are computed once per step in float32, as diffusers does
 * with its 0-dim float32 tensors.
 */
#ifndef FM_SCHED_H
#define FM_SCHED_H

#include <stddef.h>

typedef enum { FM_EULER = 0, FM_UNIPC = 1 } fm_kind;
typedef enum { FM_BH1 = 0, FM_BH2 = 1 } fm_solver_type;

#define FM_MAX_ORDER 3
#define FM_MAX_DISABLE 64

typedef struct {
    fm_kind kind;
    int num_train_timesteps; /* 1000 for Wan */
    double shift;            /* Euler `shift`, UniPC `flow_shift` */
    /* UniPC only */
    int solver_order;            /* 1..FM_MAX_ORDER; Wan uses 2 */
    fm_solver_type solver_type;  /* B(h) = h (bh1) or e^h - 1 (bh2) */
    int lower_order_final;       /* the last steps drop to lower order */
    int final_sigma_min;         /* final_sigmas_type: 0 "zero", 1 "sigma_min" */
    int disable_corrector[FM_MAX_DISABLE]; /* step indices whose result is not corrected */
    int n_disable_corrector;
} fm_sched_config;

/* The scheduler Wan2.1's diffusers checkpoints ship (UniPC, flow_shift 3,
 * order 2, bh2), or FlowMatchEuler with shift 3. */
void fm_sched_config_default(fm_kind kind, fm_sched_config *out);

/* Parse a diffusers scheduler_config.json (its text / its file). The kind
 * comes from `_class_name`. Every key must be one diffusers defines for that
 * class; a value this implementation does not reproduce (karras sigmas,
 * dynamic shifting, thresholding, epsilon prediction, ...) is refused with a
 * message naming the key and the value. */
int fm_sched_config_parse(const char *json_text, fm_sched_config *out, char *err, size_t errlen);
int fm_sched_config_load(const char *path, fm_sched_config *out, char *err, size_t errlen);

typedef struct fm_sched fm_sched;

/* A sampler for `steps` (>= 1) steps. The config is copied. */
int fm_sched_new(const fm_sched_config *cfg, int steps, fm_sched **out, char *err, size_t errlen);
void fm_sched_free(fm_sched *s);

int fm_sched_steps(const fm_sched *s);
/* The timestep to give the model at step i (0 <= i < steps): 1000*sigma in
 * float32 for Euler, truncated to an integer for UniPC, as diffusers. */
float fm_sched_timestep(const fm_sched *s, int i);
/* sigma_i for 0 <= i <= steps (sigma_steps is the final one, 0 or sigma_min). */
float fm_sched_sigma(const fm_sched *s, int i);

/* Advance `sample` (n floats, updated in place) by step i given the model's
 * (guided) velocity prediction at that sample. Steps come in order; i == 0
 * starts a new trajectory and fixes n for it. The scheduler keeps copies of
 * what UniPC needs (it holds (order + 2) * n floats after the first step). */
int fm_sched_step(fm_sched *s, int i, const float *model_output, float *sample, size_t n,
                  char *err, size_t errlen);

/* Classifier-free guidance: out = uncond + guidance * (cond - uncond),
 * in float32 as diffusers' WanPipeline. out may alias either input. */
void fm_cfg_combine(const float *uncond, const float *cond, float guidance, float *out, size_t n);

#endif
