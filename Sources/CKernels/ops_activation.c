// SwiGLU (silu(a) * b), forward and backward.
#include <math.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

CK_VECTOR_CLONES static void swiglu_fwd_range(const float *a, const float *b, int64_t lo, int64_t hi, float *m) {
    for (int64_t i = lo; i < hi; i++) m[i] = a[i] / (1.0f + ck_exp(-a[i])) * b[i];
}

CK_VECTOR_CLONES static void swiglu_bwd_range(const float *a, const float *b, const float *dm, int64_t lo, int64_t hi,
                                              float *da, float *db) {
    for (int64_t i = lo; i < hi; i++) {
        const float sig = 1.0f / (1.0f + ck_exp(-a[i]));
        const float silu = a[i] * sig;
        da[i] = dm[i] * b[i] * sig * (1.0f + a[i] * (1.0f - sig));
        db[i] = dm[i] * silu;
    }
}

void ck_swiglu_fwd(const float *a, const float *b, int64_t n, float *m) {
#pragma omp parallel num_threads(ck_threads()) if (n >= 65536)
    {
        int64_t lo, hi;
        ck_team_share(n, &lo, &hi);
        swiglu_fwd_range(a, b, lo, hi, m);
    }
}

void ck_swiglu_bwd(const float *a, const float *b, const float *dm, int64_t n, float *da, float *db) {
#pragma omp parallel num_threads(ck_threads()) if (n >= 65536)
    {
        int64_t lo, hi;
        ck_team_share(n, &lo, &hi);
        swiglu_bwd_range(a, b, dm, lo, hi, da, db);
    }
}
