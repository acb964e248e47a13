// Matrix products. Weights W are [n, k] row-major (out x in, as in HF and GGUF) and held
// as packed panels of a block type (ck_quant.h); activations are f32 row-major.
#ifndef CK_GEMM_H
#define CK_GEMM_H

#include <stddef.h>
#include "ck_blocks.h"
#include "ck_cpu.h"
#include "ck_quant.h"

typedef enum {
    // Activations quantized on the fly to int8 blocks of 32 (one f32 scale each, as
    // llama.cpp's Q8_0 x Q8_0), integer block dot products: the fast path.
    CK_ACT_INT8 = 0,
    // Activations stay f32; weight tiles are dequantized into a per-thread buffer and
    // multiplied with f32 GEMM: exact with respect to the stored weights.
    CK_ACT_F32 = 1,
} ck_act_mode;

// A row-major f32 matrix held as blocks of columns side by side in separate buffers: part i
// has cols[i] columns, its rows cols[i] floats apart, and starts at the sum of the widths
// before it. Projections that share an input (q, k, v; gate, up) run as one product over
// their stacked weights and read or write their own parts of its matrices in place, so
// nothing is split or joined around the product. Every width but the last is a multiple of
// 32 (whole blocks of the quantized activations, whole panels of the weights); the bits are
// those of the one matrix.
typedef struct {
    int count;
    const int *cols;
    float *const *data;
} ck_parts;

// Workspace bytes ck_gemm needs for an [m, k] input under the current thread count.
size_t ck_gemm_workspace_size(int m, int k, ck_act_mode mode);

// Y[m, n] = X[m, k] · W^T with W [n, k] packed (ck_pack) in `type`: Q8_0, Q4_0, Q4_1,
// Q4_K or Q6_K (CK_ERR_UNSUPPORTED otherwise). With a transposed Q8_0 pack
// (ck_q8_pack_transposed of W [n', k']: n = k', k = n') this is the backward-data product
// dX = dY · W. m == 1 runs the GEMV path. Every ISA path gives the same bits.
ck_status ck_gemm(ck_type type, const float *x, int m, int k, const void *w, int n, float *y, ck_act_mode mode,
                  void *workspace, size_t workspace_size);
// ck_gemm with X in parts along k and Y in parts along n (CK_ACT_INT8 only; a part's width
// not a multiple of 32 before the last, or widths not adding up to k and n: CK_ERR_SHAPE).
ck_status ck_gemm_parts(ck_type type, const ck_parts *x, int m, int k, const void *w, int n, const ck_parts *y,
                        ck_act_mode mode, void *workspace, size_t workspace_size);

// Backward-data product dX[m, k] = dY[m, n] · W on the forward pack of W [n, k], without a
// transposed copy: each 32-column strip of the weights, times its row scales, is
// requantized to int8 per 32 outputs as it is read, and dY quantized once per row
// (gemm_bwd.c). Same bits for any thread count and path.
size_t ck_gemm_bwd_workspace_size(int m, int n, int k);
ck_status ck_gemm_bwd(ck_type type, const float *dy, int m, int n, const void *w, int k, float *dx, void *workspace,
                      size_t workspace_size);
// ck_gemm_bwd with dY in parts along n (the same rules as ck_gemm_parts).
ck_status ck_gemm_bwd_parts(ck_type type, const ck_parts *dy, int m, int n, const void *w, int k, float *dx,
                            void *workspace, size_t workspace_size);

// Exact backward-data product dX[m, k] = dY[m, n] · W on the forward pack: weight column
// tiles are dequantized per thread and multiplied in f32 (reference runs and tests).
size_t ck_gemm_bwd_f32_workspace_size(int n);
ck_status ck_gemm_bwd_f32(ck_type type, const float *dy, int m, int n, const void *w, int k, float *dx, void *workspace,
                          size_t workspace_size);

// C[m, n] = alpha · op(A) · op(B) + beta · C, row-major, f32, through OpenBLAS when it is
// available (the work split over our OpenMP threads), else a blocked plain-C GEMM.
ck_status ck_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
// OpenBLAS's own multithreaded sgemm on the whole problem: the benchmark baseline.
ck_status ck_sgemm_openblas_threaded(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                     const float *a, int lda, const float *b, int ldb, float beta,
                                     float *c, int ldc, int threads);
// Name of the f32 GEMM backend and, for OpenBLAS, the core it runs on ("SkylakeX", ...).
const char *ck_blas_backend(void);

// Plain references, used by tests: the meaning of the fast kernels.
void ck_gemm_ref(ck_type type, const float *x, int m, int k, const void *w, int n, float *y, ck_act_mode mode);
void ck_gemm_bwd_ref(ck_type type, const float *dy, int m, int n, const void *w, int k, float *dx);
void ck_sgemm_ref(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc);

// Activation quantization as the int8 path does it: per block of 32 (zero-padded tail),
// d = max|x|/127, q = round(x/d). Writes kb = ceil(k/32) scales per row.
void ck_quantize_act_ref(const float *x, int m, int k, int8_t *q, float *d);

#endif
