/* dit_test — what the dit model's tests share: the error measure every
 * comparison with diffusers' golden outputs uses. */
#ifndef DIT_TEST_H
#define DIT_TEST_H

#include <math.h>
#include <stddef.h>

/* ||a - ref|| / ||ref|| in double (||a - ref|| when ref is all zeros). */
static inline double dit_rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

#endif
