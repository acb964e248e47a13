// Private to the C target: the dispatch table and helpers shared by the kernel files.
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H

#include <stdint.h>
#include "include/ck_blocks.h"
#include "include/ck_cpu.h"
#include "include/ck_gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// Activations quantized for the int8 path: row i holds kb blocks of 32 values.
// q [m][kb*32], d [m][kb] the block scales, s [m][kb] = -128 * sum(q) per block: the
// compensation that turns VPDPBUSD's sum((w+128)·x) into sum(w·x).
typedef struct {
    const int8_t *q;
    const float *d;
    const int32_t *s;
    int kb;
} ck_act_q8;

// Computes Y[m0:m1, columns of panels p0:p1] over K blocks [b0, b1) (columns >= n not
// written); with b0 > 0 it continues the sums already in Y, so K can be split into
// L1-sized chunks without changing a single rounding.
typedef void (*ck_q8_tile_fn)(const ck_act_q8 *x, int m0, int m1, const ck_panel_block *w, int p0,
                              int p1, int b0, int b1, int n, float *y, int ldy);
// Quantizes one row of k values into kb blocks (zero-padded tail).
typedef void (*ck_quantize_act_row_fn)(const float *x, int k, int8_t *q, float *d, int32_t *s);

typedef struct {
    ck_q8_tile_fn q8_tile;
    ck_quantize_act_row_fn quantize_act_row;
} ck_dispatch_table;

extern ck_dispatch_table ck_kernels;

// Per-ISA kernel sets (a path's symbols exist on every build; they run only when chosen).
void ck_q8_tile_scalar(const ck_act_q8 *x, int m0, int m1, const ck_panel_block *w, int p0, int p1, int b0, int b1,
                       int n, float *y, int ldy);
void ck_quantize_act_row_scalar(const float *x, int k, int8_t *q, float *d, int32_t *s);
void ck_q8_tile_avx2(const ck_act_q8 *x, int m0, int m1, const ck_panel_block *w, int p0, int p1, int b0, int b1,
                     int n, float *y, int ldy);
void ck_quantize_act_row_avx2(const float *x, int k, int8_t *q, float *d, int32_t *s);
void ck_q8_tile_avx512_vnni(const ck_act_q8 *x, int m0, int m1, const ck_panel_block *w, int p0,
                            int p1, int b0, int b1, int n, float *y, int ldy);
void ck_quantize_act_row_avx512(const float *x, int k, int8_t *q, float *d, int32_t *s);

// Single-threaded f32 GEMM (OpenBLAS or the plain fallback), for use inside OpenMP workers.
void ck_sgemm_serial(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc);
void ck_blas_load(void);
// row[j] = exp(row[j]·scale − m) over n values, m their largest scaled value (into *max);
// returns the sum of the exponentials.
float ck_exp_row(float *row, int n, float scale, float *max);
// Softmax of row[0:visible) scaled by `scale`; row[visible:cols) becomes 0.
void ck_softmax_causal_row(float *row, int cols, int visible, float scale);
// ds = p ⊙ (dp − p·dp) over one row of cols values; ds may be dp.
void ck_softmax_bwd_row(const float *p, const float *dp, int cols, float *ds);

// Elementwise loops compiled once per vector width and chosen when the library loads
// (ifunc); the int8 kernels use the dispatch table instead, so tests can force a path.
#define CK_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// exp(x) = 2^n · e^r with n = round(x/ln2), |r| <= ln2/2, and Cephes' expf polynomial for
// e^r (about 1 ulp). Unlike libm's expf it inlines, so softmax and SiLU loops vectorize.
static inline float ck_exp(float x) {
    x = x < -87.33654f ? -87.33654f : x > 88.72283f ? 88.72283f : x;
    const float n = __builtin_nearbyintf(x * 1.44269504088896341f);
    const float r = x - n * 0.693359375f - n * -2.12194440e-4f;  // ln2 in two parts: n·C1 is exact
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } two_n = {.i = ((int32_t)n + 127) << 23};
    return p * two_n.f;
}

// 16 floats as one value (clang's vector extension): loops written with it keep their sums in
// registers, and each per-width build lowers it to its own vectors. Pass it by pointer: a
// function returning one would change the calling convention between those builds.
typedef float ck_v16 __attribute__((ext_vector_type(16)));

static inline int ck_threads(void) { return ck_get_num_threads(); }

// This thread's index in the current OpenMP team and the team's size (0 and 1 outside one).
static inline void ck_team(int *rank, int *size) {
#ifdef _OPENMP
    *rank = omp_get_thread_num();
    *size = omp_get_num_threads();
#else
    *rank = 0;
    *size = 1;
#endif
}

// This thread's share [lo, hi) of n items, split in equal contiguous parts over the current
// OpenMP team (what schedule(static) gives). Loops that run vector math call a
// CK_VECTOR_CLONES function on their share from inside `omp parallel`: the body OpenMP
// outlines from a `parallel for` is built for the baseline CPU whatever clone opened it.
// It also skips the runtime's loop scheduling, half a microsecond a call.
static inline void ck_team_share(int64_t n, int64_t *lo, int64_t *hi) {
    int rank, team;
    ck_team(&rank, &team);
    *lo = n * rank / team;
    *hi = n * (rank + 1) / team;
}
static inline int ck_div_up(int a, int b) { return (a + b - 1) / b; }

#endif
