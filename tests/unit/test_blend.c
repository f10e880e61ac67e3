/* Blend kernel: exactness of the C reference, and every available backend
 * against it (the CUDA path runs only where a GPU is visible). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blend.h"

static void test_equal_sources_are_exact(void **state) {
    (void)state;
    enum { N = 1000 };
    uint8_t a[N], b[N], c[N], out[N];
    for (int i = 0; i < N; i++)
        a[i] = b[i] = c[i] = (uint8_t)(i * 7);
    const uint8_t *src[3] = {a, b, c};
    /* Any split of the unit weight: equal inputs give exactly themselves. */
    for (uint32_t w0 = 0; w0 <= KN_BLEND_ONE; w0 += 997) {
        uint32_t w[2] = {w0, KN_BLEND_ONE - w0};
        kn_blend_u8_c(src, w, 2, out, N);
        assert_memory_equal(out, a, N);
    }
    uint32_t w3[3] = {10000, 20000, KN_BLEND_ONE - 30000};
    kn_blend_u8_c(src, w3, 3, out, N);
    assert_memory_equal(out, a, N);
}

static void test_known_values(void **state) {
    (void)state;
    uint8_t a[4] = {0, 255, 100, 10}, b[4] = {255, 0, 200, 11}, out[4];
    const uint8_t *src[2] = {a, b};
    uint32_t half[2] = {32768, 32768};
    kn_blend_u8_c(src, half, 2, out, 4);
    /* (0+255)/2 = 127.5 rounds up; 150; 10.5 rounds up */
    assert_int_equal(out[0], 128);
    assert_int_equal(out[1], 128);
    assert_int_equal(out[2], 150);
    assert_int_equal(out[3], 11);
    uint32_t all_a[2] = {KN_BLEND_ONE, 0};
    kn_blend_u8_c(src, all_a, 2, out, 4);
    assert_memory_equal(out, a, 4);
}

static void test_weights_must_sum_to_one(void **state) {
    (void)state;
    uint8_t a[1] = {1}, out[1];
    const uint8_t *src[1] = {a};
    uint32_t w[1] = {65535};
    char err[128];
    assert_int_equal(kn_blend_u8(NULL, src, w, 1, out, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "sum to 65535"));
}

static void test_backends_match_reference(void **state) {
    (void)state;
    kn_ctx *ctx;
    char err[256];
    assert_int_equal(kn_new(KN_AUTO, &ctx, err, sizeof err), 0);
    printf("# blend backend: %s (%s)\n", kn_backend(ctx), kn_reason(ctx));
    unsigned seed = 12345;
    const size_t sizes[] = {1, 31, 4096, 1920 * 1080 * 3 / 2 + 7};
    for (size_t si = 0; si < 4; si++) {
        size_t n = sizes[si];
        for (unsigned nsrc = 1; nsrc <= 5; nsrc++) {
            uint8_t *src[5], *ref = malloc(n), *got = malloc(n);
            uint32_t w[5], left = KN_BLEND_ONE;
            for (unsigned i = 0; i < nsrc; i++) {
                src[i] = malloc(n);
                for (size_t p = 0; p < n; p++)
                    src[i][p] = (uint8_t)(rand_r(&seed) >> 3);
                w[i] = i + 1 == nsrc ? left : (uint32_t)(rand_r(&seed) % (left + 1));
                left -= w[i];
            }
            kn_blend_u8_c((const uint8_t *const *)src, w, nsrc, ref, n);
            assert_int_equal(kn_blend_u8(ctx, (const uint8_t *const *)src, w, nsrc, got, n, err,
                                         sizeof err),
                             0);
            assert_memory_equal(got, ref, n);
            for (unsigned i = 0; i < nsrc; i++)
                free(src[i]);
            free(ref);
            free(got);
        }
    }
    kn_free(ctx);
}

static void test_backend_choice(void **state) {
    (void)state;
    kn_ctx *ctx;
    char err[256];
    assert_int_equal(kn_new(KN_C, &ctx, err, sizeof err), 0);
    assert_string_equal(kn_backend(ctx), "c");
    kn_free(ctx);
    assert_int_equal(kn_new(KN_AUTO, &ctx, err, sizeof err), 0);
    if (strcmp(kn_backend(ctx), "c") == 0) {
        /* Without a usable GPU, asking for CUDA is an error that says why. */
        kn_ctx *cuda = NULL;
        assert_int_equal(kn_new(KN_CUDA, &cuda, err, sizeof err), -1);
        assert_null(cuda);
        assert_non_null(strstr(err, "CUDA requested but unavailable"));
    }
    kn_free(ctx);
    kn_pref p;
    assert_int_equal(kn_pref_parse("cuda", &p), 0);
    assert_int_equal(p, KN_CUDA);
    assert_int_equal(kn_pref_parse("gpu", &p), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_sources_are_exact), cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_weights_must_sum_to_one), cmocka_unit_test(test_backends_match_reference),
        cmocka_unit_test(test_backend_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
