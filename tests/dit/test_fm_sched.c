/* fm_sched: the flow-matching sampler against diffusers' own numbers.
 *
 * For every scheduler fixture (tests/dit/fixtures/sched_*, made by
 * tests/dit/golden), the schedule's timesteps and sigmas equal diffusers'
 * and, fed diffusers' model outputs, every step's sample matches diffusers'
 * within 1e-4 relative L2 (expected ~1e-7: the same float32 arithmetic).
 * Besides: the config parser accepts Wan2.1's published scheduler config
 * and refuses what it cannot reproduce, naming the key; a model that
 * predicts the exact velocity of a straight noise-to-data path is walked to
 * its data by both samplers; steps out of order are refused.
 *
 * argv[1]: the fixture directory (default tests/dit/fixtures, relative to
 * the source tree, where ctest runs this).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "dit_test.h"
#include "fm_sched.h"
#include "st.h"

static const char *fixture_dir = "tests/dit/fixtures";

/* Wan2.1-T2V-1.3B-Diffusers' scheduler/scheduler_config.json. */
static const char wan21_config[] =
    "{\"_class_name\": \"UniPCMultistepScheduler\", \"_diffusers_version\": \"0.33.0.dev0\","
    " \"beta_end\": 0.02, \"beta_schedule\": \"linear\", \"beta_start\": 0.0001,"
    " \"disable_corrector\": [], \"dynamic_thresholding_ratio\": 0.995,"
    " \"final_sigmas_type\": \"zero\", \"flow_shift\": 3.0, \"lower_order_final\": true,"
    " \"num_train_timesteps\": 1000, \"predict_x0\": true, \"prediction_type\": \"flow_prediction\","
    " \"rescale_betas_zero_snr\": false, \"sample_max_value\": 1.0, \"solver_order\": 2,"
    " \"solver_p\": null, \"solver_type\": \"bh2\", \"steps_offset\": 0, \"thresholding\": false,"
    " \"timestep_spacing\": \"linspace\", \"trained_betas\": null, \"use_beta_sigmas\": false,"
    " \"use_exponential_sigmas\": false, \"use_flow_sigmas\": true, \"use_karras_sigmas\": false}";

static void test_wan21_config(void **state) {
    (void)state;
    fm_sched_config c;
    char err[512] = "";
    int rc = fm_sched_config_parse(wan21_config, &c, err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
    assert_int_equal(c.kind, FM_UNIPC);
    assert_int_equal(c.num_train_timesteps, 1000);
    assert_true(c.shift == 3.0);
    assert_int_equal(c.solver_order, 2);
    assert_int_equal(c.solver_type, FM_BH2);
    assert_true(c.lower_order_final);
    assert_false(c.final_sigma_min);
    assert_int_equal(c.n_disable_corrector, 0);

    fm_sched *s = NULL;
    assert_int_equal(fm_sched_new(&c, 50, &s, err, sizeof err), 0);
    /* The first sigma is kept just below 1, so the first timestep is 999. */
    assert_true(fm_sched_timestep(s, 0) == 999.0f);
    assert_true(fm_sched_sigma(s, 0) == (float)0.999999);
    assert_true(fm_sched_sigma(s, 50) == 0.0f);
    for (int i = 0; i < 50; i++) {
        assert_true(fm_sched_sigma(s, i + 1) < fm_sched_sigma(s, i));
        assert_true(fm_sched_timestep(s, i) == floorf(fm_sched_timestep(s, i)));
    }
    assert_true(isnan(fm_sched_timestep(s, 50)));
    fm_sched_free(s);
}

static void expect_refusal(const char *json, const char *needle) {
    fm_sched_config c;
    char err[512] = "";
    int rc = fm_sched_config_parse(json, &c, err, sizeof err);
    if (rc == 0) {
        /* some combinations are only refused once the step count is known */
        fm_sched *s = NULL;
        rc = fm_sched_new(&c, 10, &s, err, sizeof err);
        fm_sched_free(s);
    }
    if (rc == 0) fail_msg("accepted: %s", json);
    if (!strstr(err, needle)) fail_msg("message \"%s\" does not name \"%s\"", err, needle);
}

static void test_config_refusals(void **state) {
    (void)state;
    expect_refusal("{\"_class_name\": \"DDIMScheduler\"}", "_class_name");
    expect_refusal("[1, 2]", "not a JSON object");
    expect_refusal("{\"_class_name\": \"UniPCMultistepScheduler\", \"prediction_type\": \"flow_prediction\"}",
                   "use_flow_sigmas");
    expect_refusal("{\"_class_name\": \"UniPCMultistepScheduler\", \"use_flow_sigmas\": true,"
                   " \"prediction_type\": \"epsilon\"}",
                   "prediction_type");
    const char *base = "{\"_class_name\": \"UniPCMultistepScheduler\", \"use_flow_sigmas\": true,"
                       " \"prediction_type\": \"flow_prediction\", ";
    struct {
        const char *tail, *needle;
    } cases[] = {
        {"\"use_karras_sigmas\": true}", "use_karras_sigmas"},
        {"\"thresholding\": true}", "thresholding"},
        {"\"use_dynamic_shifting\": true}", "use_dynamic_shifting"},
        {"\"shift_terminal\": 0.1}", "shift_terminal"},
        {"\"predict_x0\": false}", "predict_x0"},
        {"\"solver_order\": 4}", "solver_order"},
        {"\"solver_type\": \"bh3\"}", "solver_type"},
        {"\"final_sigmas_type\": \"one\"}", "final_sigmas_type"},
        {"\"flow_shift\": -1}", "flow_shift"},
        {"\"disable_corrector\": [\"a\"]}", "disable_corrector"},
        {"\"lower_order_final\": 1}", "lower_order_final"},
        {"\"brand_new_option\": 1}", "brand_new_option"},
        {"\"solver_type\": \"bh1\"}", "bh1"},
        {"\"lower_order_final\": false}", "lower_order_final"},
    };
    char json[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(json, sizeof json, "%s%s", base, cases[i].tail);
        expect_refusal(json, cases[i].needle);
    }
    expect_refusal("{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"invert_sigmas\": true}",
                   "invert_sigmas");
    expect_refusal("{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"stochastic_sampling\": true}",
                   "stochastic_sampling");
    expect_refusal("{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"flow_shift\": 3}", "flow_shift");

    /* bh1 is fine where the schedule does not end at sigma 0 */
    fm_sched_config c;
    char err[512];
    snprintf(json, sizeof json, "%s%s", base, "\"solver_type\": \"bh1\", \"final_sigmas_type\": \"sigma_min\"}");
    assert_int_equal(fm_sched_config_parse(json, &c, err, sizeof err), 0);
    fm_sched *s = NULL;
    assert_int_equal(fm_sched_new(&c, 10, &s, err, sizeof err), 0);
    assert_true(fm_sched_sigma(s, 10) == fm_sched_sigma(s, 9));
    fm_sched_free(s);
}

/* With shift 1 Euler's schedule is the straight ramp from 1 to 1/1000. */
static void test_euler_schedule(void **state) {
    (void)state;
    fm_sched_config c;
    fm_sched_config_default(FM_EULER, &c);
    c.shift = 1.0;
    fm_sched *s = NULL;
    char err[256];
    assert_int_equal(fm_sched_new(&c, 4, &s, err, sizeof err), 0);
    assert_true(fm_sched_sigma(s, 0) == 1.0f);
    assert_true(fm_sched_timestep(s, 0) == 1000.0f);
    assert_true(fm_sched_sigma(s, 3) == 0.001f);
    assert_true(fm_sched_timestep(s, 3) == 1.0f);
    assert_true(fm_sched_sigma(s, 1) == (float)(1.0 - 0.999 / 3));
    assert_true(fm_sched_sigma(s, 4) == 0.0f);
    fm_sched_free(s);
}

/* x_sigma = (1 - sigma) x0 + sigma * noise has velocity noise - x0; a
 * sampler fed that exact velocity must land on x0. */
static void walk_exact_velocity(const fm_sched_config *c, int steps, double tol) {
    enum { n = 257 };
    float x0[n], noise[n], x[n], v[n];
    for (int e = 0; e < n; e++) {
        x0[e] = sinf(0.37f * (float)e);
        noise[e] = cosf(1.3f * (float)e + 0.2f);
        x[e] = noise[e];
        v[e] = noise[e] - x0[e];
    }
    fm_sched *s = NULL;
    char err[256];
    assert_int_equal(fm_sched_new(c, steps, &s, err, sizeof err), 0);
    for (int i = 0; i < steps; i++) assert_int_equal(fm_sched_step(s, i, v, x, n, err, sizeof err), 0);
    /* the point of the line at the final sigma (0, or sigma_min) */
    float end = fm_sched_sigma(s, steps), want[n];
    for (int e = 0; e < n; e++) want[e] = (1.0f - end) * x0[e] + end * noise[e];
    double r = dit_rel_l2(x, want, n);
    print_message("  kind=%s steps=%d rel_l2_to_x0=%.3g\n", c->kind == FM_EULER ? "euler" : "unipc", steps, r);
    assert_true(r < tol);
    fm_sched_free(s);
}

static void test_exact_velocity_reaches_data(void **state) {
    (void)state;
    fm_sched_config c;
    /* Both are exact on a straight line; UniPC starts at sigma 1 - 1e-6, an
     * error of that order. */
    fm_sched_config_default(FM_EULER, &c);
    walk_exact_velocity(&c, 7, 1e-5);
    fm_sched_config_default(FM_UNIPC, &c);
    for (int order = 1; order <= FM_MAX_ORDER; order++) {
        c.solver_order = order;
        walk_exact_velocity(&c, 1, 1e-5);
        walk_exact_velocity(&c, 2, 1e-5);
        walk_exact_velocity(&c, 12, 1e-5);
    }
    /* bh1 ending at sigma_min instead of 0 */
    c.solver_order = 2;
    c.final_sigma_min = 1;
    c.solver_type = FM_BH1;
    walk_exact_velocity(&c, 12, 1e-5);
}

static void test_steps_in_order(void **state) {
    (void)state;
    fm_sched_config c;
    fm_sched_config_default(FM_UNIPC, &c);
    fm_sched *s = NULL;
    char err[256];
    assert_int_equal(fm_sched_new(&c, 5, &s, err, sizeof err), 0);
    float x[4] = {1, 2, 3, 4}, v[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    assert_int_not_equal(fm_sched_step(s, 1, v, x, 4, err, sizeof err), 0);
    assert_non_null(strstr(err, "out of order"));
    assert_int_equal(fm_sched_step(s, 0, v, x, 4, err, sizeof err), 0);
    assert_int_not_equal(fm_sched_step(s, 1, v, x, 3, err, sizeof err), 0);
    assert_non_null(strstr(err, "elements"));
    assert_int_not_equal(fm_sched_step(s, 5, v, x, 4, err, sizeof err), 0);
    assert_non_null(strstr(err, "outside"));
    assert_int_equal(fm_sched_step(s, 1, v, x, 4, err, sizeof err), 0);
    /* step 0 starts over, with a new size */
    assert_int_equal(fm_sched_step(s, 0, v, x, 2, err, sizeof err), 0);
    fm_sched_free(s);
    fm_sched_free(NULL);
    assert_int_not_equal(fm_sched_new(&c, 0, &s, err, sizeof err), 0);
    assert_null(s);
}

static void test_cfg_combine(void **state) {
    (void)state;
    float u[3] = {1, -2, 0.5f}, c[3] = {3, -2, -0.5f}, out[3];
    fm_cfg_combine(u, c, 5.0f, out, 3);
    assert_true(out[0] == 11.0f && out[1] == -2.0f && out[2] == -4.5f);
    fm_cfg_combine(u, c, 1.0f, u, 3); /* in place, guidance 1 is the conditional output */
    assert_true(u[0] == 3.0f && u[1] == -2.0f && u[2] == -0.5f);
}

/* ---- fixtures ---- */

static float *load_any(st_set *set, const char *name, size_t *n) {
    const st_tensor *t = st_find(set, name);
    if (!t) fail_msg("fixture tensor %s is missing", name);
    size_t cnt = 1;
    for (int d = 0; d < t->ndim; d++) cnt *= (size_t)t->shape[d];
    float *buf = malloc((cnt ? cnt : 1) * sizeof(float));
    assert_non_null(buf);
    char err[512];
    if (st_load(set, name, t->ndim, t->shape, buf, err, sizeof err) != 0) fail_msg("%s", err);
    *n = cnt;
    return buf;
}

static void run_fixture(const char *name) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/%s.config.json", fixture_dir, name);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) fail_msg("%s: %s (the golden-data script writes it)", path, je.text);
    json_t *jn = json_object_get(root, "num_inference_steps");
    assert_true(json_is_integer(jn));
    int steps = (int)json_integer_value(jn);
    /* the fixture adds num_inference_steps to a plain scheduler config */
    json_object_del(root, "num_inference_steps");
    char *text = json_dumps(root, 0);
    json_decref(root);
    fm_sched_config c;
    int rc = fm_sched_config_parse(text, &c, err, sizeof err);
    free(text);
    if (rc != 0) fail_msg("%s: %s", path, err);
    fm_sched *s = NULL;
    if (fm_sched_new(&c, steps, &s, err, sizeof err) != 0) fail_msg("%s", err);

    snprintf(path, sizeof path, "%s/%s.io.safetensors", fixture_dir, name);
    st_set *io = NULL;
    if (st_open(path, &io, err, sizeof err) != 0) fail_msg("%s", err);
    size_t nt, ns, n, nm;
    float *ts = load_any(io, "timesteps", &nt);
    float *sg = load_any(io, "sigmas", &ns);
    assert_int_equal(nt, (size_t)steps);
    assert_int_equal(ns, (size_t)steps + 1);
    double dt = 0, ds = 0;
    for (int i = 0; i < steps; i++) dt = fmax(dt, fabs((double)ts[i] - fm_sched_timestep(s, i)));
    for (int i = 0; i <= steps; i++) ds = fmax(ds, fabs((double)sg[i] - fm_sched_sigma(s, i)));
    print_message("  %s: %s shift=%g steps=%d max|dt|=%g max|dsigma|=%g\n", name,
                  c.kind == FM_EULER ? "euler" : "unipc", c.shift, steps, dt, ds);
    assert_true(dt == 0.0);
    assert_true(ds == 0.0);

    float *x = load_any(io, "sample_init", &n);
    double worst = 0;
    for (int i = 0; i < steps; i++) {
        char tn[64];
        snprintf(tn, sizeof tn, "model_output_%d", i);
        float *mo = load_any(io, tn, &nm);
        assert_int_equal(nm, n);
        if (fm_sched_step(s, i, mo, x, n, err, sizeof err) != 0) fail_msg("%s", err);
        snprintf(tn, sizeof tn, "sample_%d", i);
        float *ref = load_any(io, tn, &nm);
        assert_int_equal(nm, n);
        double r = dit_rel_l2(x, ref, n);
        print_message("  %s step %d t=%g rel_l2=%.3g\n", name, i, (double)fm_sched_timestep(s, i), r);
        if (!(r < 1e-4)) fail_msg("%s step %d: rel L2 %g >= 1e-4", name, i, r);
        worst = fmax(worst, r);
        free(ref);
        free(mo);
    }
    print_message("  %s: worst step rel_l2=%.3g\n", name, worst);
    free(x);
    free(ts);
    free(sg);
    st_free(io);
    fm_sched_free(s);
}

static void test_fixture_euler_a(void **state) { (void)state; run_fixture("sched_euler_a"); }
static void test_fixture_unipc_a(void **state) { (void)state; run_fixture("sched_unipc_a"); }
static void test_fixture_unipc_b(void **state) { (void)state; run_fixture("sched_unipc_b"); }
static void test_fixture_unipc_c(void **state) { (void)state; run_fixture("sched_unipc_c"); }

int main(int argc, char **argv) {
    if (argc > 1) fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wan21_config),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_euler_schedule),
        cmocka_unit_test(test_exact_velocity_reaches_data),
        cmocka_unit_test(test_steps_in_order),
        cmocka_unit_test(test_cfg_combine),
        cmocka_unit_test(test_fixture_euler_a),
        cmocka_unit_test(test_fixture_unipc_a),
        cmocka_unit_test(test_fixture_unipc_b),
        cmocka_unit_test(test_fixture_unipc_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
