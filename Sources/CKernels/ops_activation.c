// SwiGLU (silu(a) * b), forward and backward.
#include <math.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

CK_VECTOR_CLONES void ck_swiglu_fwd(const float *a, const float *b, int64_t n, float *m) {
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if (n >= 65536)
    for (int64_t i = 0; i < n; i++) m[i] = a[i] / (1.0f + ck_exp(-a[i])) * b[i];
}

CK_VECTOR_CLONES void ck_swiglu_bwd(const float *a, const float *b, const float *dm, int64_t n, float *da, float *db) {
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if (n >= 65536)
    for (int64_t i = 0; i < n; i++) {
        const float sig = 1.0f / (1.0f + ck_exp(-a[i]));
        const float silu = a[i] * sig;
        da[i] = dm[i] * b[i] * sig * (1.0f + a[i] * (1.0f - sig));
        db[i] = dm[i] * silu;
    }
}
