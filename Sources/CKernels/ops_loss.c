// Cross-entropy over the vocabulary with ignored positions (HF ForCausalLMLoss semantics
// once the caller has shifted the labels).
#include <math.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

CK_VECTOR_CLONES static float row_log_sum_exp(const float *z, int v) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < v; j++) mx = fmaxf(mx, z[j]);
    double sum = 0;  // 49k terms: double keeps the log-sum-exp exact to f32
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < v; j++) sum += ck_exp(z[j] - mx);
    return mx + (float)log(sum);
}

CK_VECTOR_CLONES static void row_scaled_softmax(const float *z, float lse, int v, float scale, float *dz) {
    for (int j = 0; j < v; j++) dz[j] = ck_exp(z[j] - lse) * scale;
}

int ck_cross_entropy_fwd(const float *logits, const int32_t *targets, int t, int v, float *loss, float *lse) {
    int counted = 0, bad = 0;
#pragma omp parallel for schedule(static) num_threads(ck_threads()) reduction(+ : counted, bad) if ((long)t * v >= 65536)
    for (int i = 0; i < t; i++) {
        const float *z = logits + (size_t)i * v;
        const int y = targets[i];
        if (y < 0 || y >= v) {
            loss[i] = 0.0f;
            lse[i] = 0.0f;
            bad += y >= v;
            continue;
        }
        lse[i] = row_log_sum_exp(z, v);
        loss[i] = lse[i] - z[y];
        counted++;
    }
    return bad ? -1 : counted;
}

void ck_cross_entropy_bwd(const float *logits, const int32_t *targets, const float *lse, int t, int v, float scale,
                          float *dlogits) {
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if ((long)t * v >= 65536)
    for (int i = 0; i < t; i++) {
        const float *z = logits + (size_t)i * v;
        float *dz = dlogits + (size_t)i * v;
        const int y = targets[i];
        if (y < 0 || y >= v) {
            for (int j = 0; j < v; j++) dz[j] = 0.0f;
            continue;
        }
        row_scaled_softmax(z, lse[i], v, scale, dz);
        dz[y] -= scale;
    }
}
