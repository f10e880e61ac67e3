/* dit_noise: the initial latent noise is a function of (seed, absolute
 * latent frame, channel, y, x) alone. Two segments that overlap agree bit
 * for bit on the frames they share; the draws look like N(0, 1); seeds and
 * neighbouring positions are not correlated; and a few pinned values catch
 * any change of the generator, which would change every render. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "dit_noise.h"

enum { C = 4, H = 6, W = 10 };

static float *fill(uint64_t seed, int64_t first, int frames) {
    float *buf = malloc((size_t)C * frames * H * W * sizeof(float));
    assert_non_null(buf);
    char err[256];
    assert_int_equal(dit_noise_fill(seed, first, frames, C, H, W, buf, err, sizeof err), 0);
    return buf;
}

static const float *at(const float *buf, int frames, int c, int f, int y, int x) {
    return &buf[(((size_t)c * frames + f) * H + y) * W + x];
}

/* Segment A covers latent frames [0, 9), segment B [5, 13): frames 5..8 are
 * the same bits in both, and equal to dit_noise_at. */
static void test_overlapping_segments_agree(void **state) {
    (void)state;
    const uint64_t seed = 0x5eed1234abcdULL;
    float *a = fill(seed, 0, 9), *b = fill(seed, 5, 8);
    for (int c = 0; c < C; c++)
        for (int f = 5; f < 9; f++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float va = *at(a, 9, c, f, y, x), vb = *at(b, 8, c, f - 5, y, x);
                    assert_memory_equal(&va, &vb, sizeof va);
                    float direct = dit_noise_at(seed, f, (uint32_t)c, (uint32_t)y, (uint32_t)x);
                    assert_memory_equal(&va, &direct, sizeof va);
                }
    /* and the frames they do not share differ */
    assert_true(*at(a, 9, 0, 0, 0, 0) != *at(b, 8, 0, 0, 0, 0));
    free(a);
    free(b);
}

/* The block function against Random123's published known answers
 * (tests/kat_vectors, the three philox4x32 10 lines). */
static void test_philox_known_answers(void **state) {
    (void)state;
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
         0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
         0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t ctr[4] = {kat[i][0], kat[i][1], kat[i][2], kat[i][3]};
        dit_noise_philox4x32_10(ctr, &kat[i][4]);
        for (int j = 0; j < 4; j++) assert_int_equal(ctr[j], kat[i][6 + j]);
    }
}

/* Pinned values: if this fails the generator changed, and with it every
 * render ever made with a given seed. Change them only on purpose. */
static void test_pinned_values(void **state) {
    (void)state;
    struct {
        uint64_t seed;
        int64_t f;
        uint32_t c, y, x;
        float v;
    } pins[] = {
        {0, 0, 0, 0, 0, -0x1.f1bcd6p-4f},
        {42, 7, 3, 11, 5, 0x1.9f5838p-2f},
        {0xffffffffffffffffULL, 4294967295LL, 15, 103, 59, 0x1.a7c4dep-2f},
    };
    for (size_t i = 0; i < sizeof pins / sizeof pins[0]; i++) {
        float v = dit_noise_at(pins[i].seed, pins[i].f, pins[i].c, pins[i].y, pins[i].x);
        if (v != pins[i].v) fail_msg("pin %zu: got %a, pinned %a", i, (double)v, (double)pins[i].v);
    }
}

/* 2^20 draws: mean 0 and variance 1 within 6 standard errors, the tails
 * where a normal puts them, no correlation between neighbours in x or in
 * frame, nor between two seeds. */
static void test_statistics(void **state) {
    (void)state;
    enum { F = 32, CH = 16, HH = 32, WW = 64 };
    size_t n = (size_t)F * CH * HH * WW;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    assert_non_null(a);
    assert_non_null(b);
    char err[256];
    assert_int_equal(dit_noise_fill(1, 100, F, CH, HH, WW, a, err, sizeof err), 0);
    assert_int_equal(dit_noise_fill(2, 100, F, CH, HH, WW, b, err, sizeof err), 0);
    double s = 0, s2 = 0, s4 = 0, cx = 0, cf = 0, cs = 0;
    size_t tail = 0, nx = 0, nf = 0;
    for (size_t i = 0; i < n; i++) {
        double v = a[i];
        s += v;
        s2 += v * v;
        s4 += v * v * v * v;
        if (fabs(v) > 3.0) tail++;
        if ((i + 1) % WW) {
            cx += v * a[i + 1];
            nx++;
        }
        if ((i / ((size_t)HH * WW)) % F != F - 1) {
            cf += v * a[i + (size_t)HH * WW];
            nf++;
        }
        cs += v * b[i];
    }
    double mean = s / n, var = s2 / n - mean * mean, kurt = s4 / n;
    double p3 = (double)tail / n; /* P(|z| > 3) = 0.0026998 */
    print_message("  n=%zu mean=%.5f var=%.5f E[z^4]=%.4f P(|z|>3)=%.5f corr_x=%.5f corr_f=%.5f corr_seed=%.5f\n",
                  n, mean, var, kurt, p3, cx / nx, cf / nf, cs / n);
    double se = 1.0 / sqrt((double)n);
    assert_true(fabs(mean) < 6 * se);
    assert_true(fabs(var - 1.0) < 6 * sqrt(2.0) * se);
    assert_true(fabs(kurt - 3.0) < 6 * sqrt(96.0) * se);
    assert_true(fabs(p3 - 0.0026998) < 6 * sqrt(0.0027 / n));
    assert_true(fabs(cx / nx) < 6 * se * 1.01);
    assert_true(fabs(cf / nf) < 6 * se * 1.05);
    assert_true(fabs(cs / n) < 6 * se);
    free(a);
    free(b);
}

static void test_seeds_differ(void **state) {
    (void)state;
    float *a = fill(7, 3, 2), *b = fill(8, 3, 2), *c = fill(7ULL << 32, 3, 2);
    size_t n = (size_t)C * 2 * H * W, same_ab = 0, same_ac = 0;
    for (size_t i = 0; i < n; i++) {
        same_ab += a[i] == b[i];
        same_ac += a[i] == c[i];
    }
    assert_int_equal(same_ab, 0);
    assert_int_equal(same_ac, 0);
    free(a);
    free(b);
    free(c);
}

static void test_bad_shapes(void **state) {
    (void)state;
    float buf[8];
    char err[256] = "";
    assert_int_not_equal(dit_noise_fill(1, 0, 0, 1, 1, 1, buf, err, sizeof err), 0);
    assert_non_null(strstr(err, "not positive"));
    assert_int_not_equal(dit_noise_fill(1, -1, 1, 1, 1, 1, buf, err, sizeof err), 0);
    assert_non_null(strstr(err, "2^32"));
    assert_int_not_equal(dit_noise_fill(1, 4294967295LL, 2, 1, 1, 1, buf, err, sizeof err), 0);
    assert_int_equal(dit_noise_fill(1, 4294967294LL, 2, 1, 2, 2, buf, err, sizeof err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlapping_segments_agree),
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_pinned_values),
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_seeds_differ),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
