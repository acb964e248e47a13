// AdamW, in the order of operations of PyTorch's single-tensor implementation.
#include <math.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

void ck_adamw_step(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                   float eps, float weight_decay, int step) {
    const float bias1 = 1.0f - powf(beta1, (float)step), bias2 = 1.0f - powf(beta2, (float)step);
    const float step_size = lr / bias1, bias2_sqrt = sqrtf(bias2), decay = 1.0f - lr * weight_decay;
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if (n >= 65536)
    for (int64_t i = 0; i < n; i++) {
        p[i] *= decay;
        m[i] += (g[i] - m[i]) * (1.0f - beta1);  // torch: m.lerp_(g, 1 - beta1)
        v[i] = v[i] * beta2 + (1.0f - beta2) * g[i] * g[i];
        p[i] -= step_size * m[i] / (sqrtf(v[i]) / bias2_sqrt + eps);
    }
}
