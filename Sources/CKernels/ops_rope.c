// Rotary position embedding, forward and backward, in the two pairings Llama files use.
#include <math.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

// sin_sign = -1 rotates by the opposite angle: the backward of an orthogonal rotation.
void ck_rope_inv_freq(float theta, int n_rot, float *inv_freq) {
    // f32 throughout, as transformers computes inv_freq
    for (int p = 0; p < n_rot / 2; p++) inv_freq[p] = 1.0f / powf(theta, (float)(2 * p) / (float)n_rot);
}

static void rope_row(float *x, int heads, int head_dim, int n_rot, int32_t pos, const float *inv_freq, ck_rope_mode mode,
                     float sin_sign) {
    const int half = n_rot / 2;
    float c[half > 0 ? half : 1], s[half > 0 ? half : 1];
    for (int p = 0; p < half; p++) {
        const float angle = (float)pos * inv_freq[p];  // f32, as transformers computes it
        c[p] = cosf(angle);
        s[p] = sin_sign * sinf(angle);
    }
    for (int h = 0; h < heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int p = 0; p < half; p++) {
            const int a = mode == CK_ROPE_NORM ? 2 * p : p;
            const int b = mode == CK_ROPE_NORM ? 2 * p + 1 : p + half;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c[p] - x1 * s[p];
            v[b] = x0 * s[p] + x1 * c[p];
        }
    }
}

static void rope(float *x, int t, int heads, int head_dim, int n_rot, const int32_t *pos, const float *inv_freq,
                 ck_rope_mode mode, float sin_sign) {
#pragma omp parallel num_threads(ck_threads()) if ((long)t * heads * head_dim >= 16384)
    {
        int64_t lo, hi;
        ck_team_share(t, &lo, &hi);
        for (int64_t i = lo; i < hi; i++)
            rope_row(x + i * heads * head_dim, heads, head_dim, n_rot, pos[i], inv_freq, mode, sin_sign);
    }
}

void ck_rope_fwd(float *x, int t, int heads, int head_dim, int n_rot, const int32_t *pos, const float *inv_freq,
                 ck_rope_mode mode) {
    rope(x, t, heads, head_dim, n_rot, pos, inv_freq, mode, 1.0f);
}

void ck_rope_bwd(float *dx, int t, int heads, int head_dim, int n_rot, const int32_t *pos, const float *inv_freq,
                 ck_rope_mode mode) {
    rope(dx, t, heads, head_dim, n_rot, pos, inv_freq, mode, -1.0f);
}
