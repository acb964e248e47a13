// RMSNorm forward and backward (HF LlamaRMSNorm: f32, eps inside the sqrt, no mean).
#include <math.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

#define ROWS_PARALLEL_MIN 16384  // elements below which rows run on one thread

void ck_rmsnorm_fwd(const float *x, const float *g, int t, int d, float eps, float *y, float *rstd) {
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if ((long)t * d >= ROWS_PARALLEL_MIN)
    for (int i = 0; i < t; i++) {
        const float *xi = x + (size_t)i * d;
        float *yi = y + (size_t)i * d;
        float ss = 0;
        for (int j = 0; j < d; j++) ss += xi[j] * xi[j];
        const float r = 1.0f / sqrtf(ss / (float)d + eps);
        for (int j = 0; j < d; j++) yi[j] = (xi[j] * r) * g[j];
        if (rstd) rstd[i] = r;
    }
}

void ck_rmsnorm_bwd(const float *dy, const float *x, const float *g, const float *rstd, int t, int d, float *dx,
                    float *dg) {
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if ((long)t * d >= ROWS_PARALLEL_MIN)
    for (int i = 0; i < t; i++) {
        const float *xi = x + (size_t)i * d, *dyi = dy + (size_t)i * d;
        const float r = rstd[i];
        float dot = 0;  // sum_j (dy*g)_j * xhat_j
        for (int j = 0; j < d; j++) dot += dyi[j] * g[j] * (xi[j] * r);
        const float mean = dot / (float)d;
        float *dxi = dx + (size_t)i * d;
        for (int j = 0; j < d; j++) dxi[j] = r * (dyi[j] * g[j] - (xi[j] * r) * mean);
    }
    if (!dg) return;
    for (int i = 0; i < t; i++) {
        const float *xi = x + (size_t)i * d, *dyi = dy + (size_t)i * d;
        for (int j = 0; j < d; j++) dg[j] += dyi[j] * (xi[j] * rstd[i]);
    }
}
