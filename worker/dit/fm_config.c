/* fm_config — diffusers scheduler_config.json -> fm_sched_config.
 *
 * A scheduler config is a flat JSON object of the class's constructor
 * arguments. The parser knows every argument of the two classes and sorts
 * them three ways: the ones fm_sched reproduces (read and range-checked),
 * the ones whose value cannot change the result under flow sigmas (the
 * DDPM beta schedule, thresholding bounds while thresholding is off:
 * accepted whatever their value), and the ones that would change the
 * result in a way fm_sched does not implement (accepted only at their
 * neutral value). An unknown key is refused too: a newer diffusers option
 * silently ignored would make the sampler quietly differ from the
 * reference, which is worse than a load error naming the key.
 */
#include "fm_sched.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void fm_sched_config_default(fm_kind kind, fm_sched_config *out) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->num_train_timesteps = 1000;
    out->shift = 3.0;
    out->solver_order = 2;
    out->solver_type = FM_BH2;
    out->lower_order_final = 1;
    out->final_sigma_min = 0;
    out->n_disable_corrector = 0;
}

static const char *const unipc_ignored[] = {
    "beta_start", "beta_end", "beta_schedule", "trained_betas", "rescale_betas_zero_snr",
    "dynamic_thresholding_ratio", "sample_max_value", "steps_offset", "time_shift_type",
    "sigma_min", "sigma_max", NULL};

static const char *const euler_ignored[] = {"base_shift", "max_shift", "base_image_seq_len",
                                            "max_image_seq_len", "time_shift_type", NULL};

static int in_list(const char *const *list, const char *key) {
    for (; *list; list++)
        if (strcmp(*list, key) == 0) return 1;
    return 0;
}

/* Keys that must hold their neutral value: false, or null/0 for numbers. */
static const char *const unipc_off[] = {"thresholding", "use_karras_sigmas", "use_exponential_sigmas",
                                        "use_beta_sigmas", "use_dynamic_shifting", "shift_terminal",
                                        "solver_p", NULL};

static const char *const euler_off[] = {"use_dynamic_shifting", "invert_sigmas", "shift_terminal",
                                        "use_karras_sigmas", "use_exponential_sigmas",
                                        "use_beta_sigmas", "stochastic_sampling", NULL};

static int is_neutral(const json_t *v) {
    if (json_is_null(v) || json_is_false(v)) return 1;
    if (json_is_number(v)) return json_number_value(v) == 0.0;
    return 0;
}

static int want_bool(const char *key, const json_t *v, int *out, char *err, size_t errlen) {
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "scheduler config: '%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int want_int(const char *key, const json_t *v, int lo, int hi, int *out, char *err, size_t errlen) {
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "scheduler config: '%s' must be an integer in [%d, %d]", key, lo, hi);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int want_positive(const char *key, const json_t *v, double *out, char *err, size_t errlen) {
    if (!json_is_number(v) || !(json_number_value(v) > 0.0) || !isfinite(json_number_value(v))) {
        snprintf(err, errlen, "scheduler config: '%s' must be a positive number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int want_string(const char *key, const json_t *v, const char *const *allowed, int *index,
                       char *err, size_t errlen) {
    if (json_is_string(v))
        for (int i = 0; allowed[i]; i++)
            if (strcmp(json_string_value(v), allowed[i]) == 0) {
                *index = i;
                return 0;
            }
    char list[160] = "";
    for (int i = 0; allowed[i]; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s\"%s\"", i ? ", " : "", allowed[i]);
    }
    snprintf(err, errlen, "scheduler config: '%s' is %s%s%s; supported: %s", key,
             json_is_string(v) ? "\"" : "", json_is_string(v) ? json_string_value(v) : "not a string",
             json_is_string(v) ? "\"" : "", list);
    return -1;
}

static int parse_unipc_key(const char *key, const json_t *v, fm_sched_config *c, char *err, size_t errlen) {
    static const char *const flow_only[] = {"flow_prediction", NULL};
    /* diffusers maps the other UniPC variants' names onto bh2 */
    static const char *const solvers[] = {"bh1", "bh2", "midpoint", "heun", "logrho", NULL};
    static const char *const finals[] = {"zero", "sigma_min", NULL};
    static const char *const spacings[] = {"linspace", "leading", "trailing", NULL};
    int idx, b;
    if (strcmp(key, "num_train_timesteps") == 0)
        return want_int(key, v, 1, 1000000, &c->num_train_timesteps, err, errlen);
    if (strcmp(key, "flow_shift") == 0) return want_positive(key, v, &c->shift, err, errlen);
    if (strcmp(key, "solver_order") == 0)
        return want_int(key, v, 1, FM_MAX_ORDER, &c->solver_order, err, errlen);
    if (strcmp(key, "prediction_type") == 0) return want_string(key, v, flow_only, &idx, err, errlen);
    if (strcmp(key, "timestep_spacing") == 0) return want_string(key, v, spacings, &idx, err, errlen);
    if (strcmp(key, "solver_type") == 0) {
        if (want_string(key, v, solvers, &idx, err, errlen) != 0) return -1;
        c->solver_type = idx == 0 ? FM_BH1 : FM_BH2;
        return 0;
    }
    if (strcmp(key, "final_sigmas_type") == 0) {
        if (want_string(key, v, finals, &idx, err, errlen) != 0) return -1;
        c->final_sigma_min = idx == 1;
        return 0;
    }
    if (strcmp(key, "lower_order_final") == 0) return want_bool(key, v, &c->lower_order_final, err, errlen);
    if (strcmp(key, "predict_x0") == 0 || strcmp(key, "use_flow_sigmas") == 0) {
        if (want_bool(key, v, &b, err, errlen) != 0) return -1;
        if (!b) {
            snprintf(err, errlen, "scheduler config: '%s' is false; only true is supported "
                     "(flow-matching x0-predicting UniPC)", key);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "disable_corrector") == 0) {
        if (!json_is_array(v) || json_array_size(v) > FM_MAX_DISABLE) {
            snprintf(err, errlen, "scheduler config: 'disable_corrector' must be a list of at most %d step "
                     "indices", FM_MAX_DISABLE);
            return -1;
        }
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (want_int("disable_corrector[]", e, 0, 1000000, &c->disable_corrector[i], err, errlen) != 0)
                return -1;
        }
        c->n_disable_corrector = (int)json_array_size(v);
        return 0;
    }
    if (in_list(unipc_off, key)) {
        if (is_neutral(v)) return 0;
        snprintf(err, errlen, "scheduler config: '%s' is set; only false/null is supported by this sampler",
                 key);
        return -1;
    }
    if (in_list(unipc_ignored, key)) return 0;
    snprintf(err, errlen, "scheduler config: unknown key '%s' for UniPCMultistepScheduler", key);
    return -1;
}

static int parse_euler_key(const char *key, const json_t *v, fm_sched_config *c, char *err, size_t errlen) {
    if (strcmp(key, "num_train_timesteps") == 0)
        return want_int(key, v, 1, 1000000, &c->num_train_timesteps, err, errlen);
    if (strcmp(key, "shift") == 0) return want_positive(key, v, &c->shift, err, errlen);
    if (in_list(euler_off, key)) {
        if (is_neutral(v)) return 0;
        snprintf(err, errlen, "scheduler config: '%s' is set; only false/null is supported by this sampler",
                 key);
        return -1;
    }
    if (in_list(euler_ignored, key)) return 0;
    snprintf(err, errlen, "scheduler config: unknown key '%s' for FlowMatchEulerDiscreteScheduler", key);
    return -1;
}

static int parse_object(json_t *root, fm_sched_config *out, char *err, size_t errlen) {
    if (!json_is_object(root)) {
        snprintf(err, errlen, "scheduler config: not a JSON object");
        return -1;
    }
    const json_t *cls = json_object_get(root, "_class_name");
    if (!json_is_string(cls)) {
        snprintf(err, errlen, "scheduler config: '_class_name' is missing or not a string");
        return -1;
    }
    const char *name = json_string_value(cls);
    fm_kind kind;
    if (strcmp(name, "UniPCMultistepScheduler") == 0)
        kind = FM_UNIPC;
    else if (strcmp(name, "FlowMatchEulerDiscreteScheduler") == 0)
        kind = FM_EULER;
    else {
        snprintf(err, errlen, "scheduler config: '_class_name' is \"%s\"; supported: "
                 "\"UniPCMultistepScheduler\", \"FlowMatchEulerDiscreteScheduler\"", name);
        return -1;
    }
    fm_sched_config c;
    fm_sched_config_default(kind, &c);
    /* diffusers' constructor defaults where they differ from Wan's */
    c.shift = 1.0;
    if (kind == FM_UNIPC) {
        /* UniPC's own defaults are epsilon prediction on DDPM sigmas: a
         * config must say use_flow_sigmas and flow_prediction itself. */
        if (!json_is_true(json_object_get(root, "use_flow_sigmas"))) {
            snprintf(err, errlen, "scheduler config: 'use_flow_sigmas' must be true (only flow-matching "
                     "sigmas are supported)");
            return -1;
        }
        const json_t *pt = json_object_get(root, "prediction_type");
        if (!json_is_string(pt) || strcmp(json_string_value(pt), "flow_prediction") != 0) {
            snprintf(err, errlen, "scheduler config: 'prediction_type' is %s%s%s; only \"flow_prediction\" is "
                     "supported", json_is_string(pt) ? "\"" : "", json_is_string(pt) ? json_string_value(pt)
                     : (pt ? "not a string" : "missing (diffusers' default: epsilon)"), json_is_string(pt) ? "\"" : "");
            return -1;
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (key[0] == '_') continue; /* _class_name, _diffusers_version, ... */
        int rc = kind == FM_UNIPC ? parse_unipc_key(key, v, &c, err, errlen)
                                  : parse_euler_key(key, v, &c, err, errlen);
        if (rc != 0) return -1;
    }
    *out = c;
    return 0;
}

int fm_sched_config_parse(const char *json_text, fm_sched_config *out, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_loads(json_text, 0, &je);
    if (!root) {
        snprintf(err, errlen, "scheduler config: invalid JSON at line %d: %s", je.line, je.text);
        return -1;
    }
    int rc = parse_object(root, out, err, errlen);
    json_decref(root);
    return rc;
}

int fm_sched_config_load(const char *path, fm_sched_config *out, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "scheduler config %s: %s (line %d)", path, je.text, je.line);
        return -1;
    }
    char inner[512];
    int rc = parse_object(root, out, inner, sizeof inner);
    if (rc != 0) snprintf(err, errlen, "%s: %s", path, inner);
    json_decref(root);
    return rc;
}
