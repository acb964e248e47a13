// Residual adds and strided matrix copies, split over the threads: between two products the
// workers would otherwise wait while one thread streams megabytes.
#include <string.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

#define PARALLEL_MIN 65536  // elements below which one thread does it

CK_VECTOR_CLONES static void add_range(const float *y, int64_t lo, int64_t hi, float *x) {
    for (int64_t i = lo; i < hi; i++) x[i] += y[i];
}

void ck_add(const float *y, int64_t n, float *x) {
#pragma omp parallel num_threads(ck_threads()) if (n >= PARALLEL_MIN)
    {
        int64_t lo, hi;
        ck_team_share(n, &lo, &hi);
        add_range(y, lo, hi, x);
    }
}

void ck_copy_matrix(const float *src, int ld_src, int rows, int cols, float *dst, int ld_dst) {
#pragma omp parallel num_threads(ck_threads()) if ((int64_t)rows * cols >= PARALLEL_MIN)
    {
        int64_t lo, hi;
        ck_team_share(rows, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) memcpy(dst + i * ld_dst, src + i * ld_src, (size_t)cols * sizeof(float));
    }
}
