// Causal softmax over attention scores and its backward.
#include <math.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

CK_VECTOR_CLONES float ck_exp_row(float *row, int n, float scale, float *max) {
    // Separate passes so each vectorizes; the simd reductions may reorder the sum, which
    // changes it by a few ulp at most.
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < n; j++) mx = fmaxf(mx, row[j] * scale);
#pragma omp simd
    for (int j = 0; j < n; j++) row[j] = ck_exp(row[j] * scale - mx);  // minus the max keeps exp finite
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) sum += row[j];
    *max = mx;
    return sum;
}

CK_VECTOR_CLONES void ck_softmax_causal_row(float *row, int cols, int visible, float scale) {
    if (visible > cols) visible = cols;
    if (visible < 0) visible = 0;
    float mx;
    const float sum = ck_exp_row(row, visible, scale, &mx);
    const float inv = visible > 0 ? 1.0f / sum : 0.0f;
    for (int j = 0; j < visible; j++) row[j] *= inv;
    for (int j = visible; j < cols; j++) row[j] = 0.0f;
}

void ck_softmax_causal_fwd(float *s, int t, int cols, int offset, float scale) {
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if ((long)t * cols >= 16384)
    for (int i = 0; i < t; i++) ck_softmax_causal_row(s + (size_t)i * cols, cols, i + offset + 1, scale);
}

CK_VECTOR_CLONES void ck_softmax_bwd_row(const float *p, const float *dp, int cols, float *ds) {
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < cols; j++) dot += p[j] * dp[j];
    for (int j = 0; j < cols; j++) ds[j] = p[j] * (dp[j] - dot);
}

void ck_softmax_bwd(const float *p, const float *dp, int t, int cols, float *ds) {
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if ((long)t * cols >= 16384)
    for (int i = 0; i < t; i++) ck_softmax_bwd_row(p + (size_t)i * cols, dp + (size_t)i * cols, cols, ds + (size_t)i * cols);
}
