// RMSNorm forward and backward (HF LlamaRMSNorm: f32, eps inside the sqrt, no mean).
#include <math.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

#define ROWS_PARALLEL_MIN 16384  // elements below which rows run on one thread

// The sums of squares and of products run as vector reductions (a fixed order per build).
CK_VECTOR_CLONES static void rmsnorm_row(const float *x, const float *g, int d, float eps, float *y, float *rstd) {
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int j = 0; j < d; j++) ss += x[j] * x[j];
    const float r = 1.0f / sqrtf(ss / (float)d + eps);
    for (int j = 0; j < d; j++) y[j] = (x[j] * r) * g[j];
    if (rstd) *rstd = r;
}

CK_VECTOR_CLONES static void rmsnorm_bwd_row(const float *dy, const float *x, const float *g, float r, int d, float *dx) {
    float dot = 0;  // sum_j (dy*g)_j * xhat_j
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < d; j++) dot += dy[j] * g[j] * (x[j] * r);
    const float mean = dot / (float)d;
    for (int j = 0; j < d; j++) dx[j] = r * (dy[j] * g[j] - (x[j] * r) * mean);
}

void ck_rmsnorm_fwd(const float *x, const float *g, int t, int d, float eps, float *y, float *rstd) {
#pragma omp parallel num_threads(ck_threads()) if ((long)t * d >= ROWS_PARALLEL_MIN)
    {
        int64_t lo, hi;
        ck_team_share(t, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) rmsnorm_row(x + i * d, g, d, eps, y + i * d, rstd ? rstd + i : NULL);
    }
}

void ck_rmsnorm_bwd(const float *dy, const float *x, const float *g, const float *rstd, int t, int d, float *dx,
                    float *dg) {
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if ((long)t * d >= ROWS_PARALLEL_MIN)
    for (int i = 0; i < t; i++)
        rmsnorm_bwd_row(dy + (size_t)i * d, x + (size_t)i * d, g, rstd[i], d, dx + (size_t)i * d);
    if (!dg) return;
    for (int i = 0; i < t; i++) {
        const float *xi = x + (size_t)i * d, *dyi = dy + (size_t)i * d;
        for (int j = 0; j < d; j++) dg[j] += dyi[j] * (xi[j] * rstd[i]);
    }
}
