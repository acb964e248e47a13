// Private to the C target: the dispatch table and helpers shared by the kernel files.
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include "include/ck_blocks.h"
#include "include/ck_cpu.h"
#include "include/ck_gemm.h"
#include "include/ck_quant.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// The packed formats the GEMM kernels run on, as indices of the dispatch table's rows.
typedef enum { CK_F_Q8_0, CK_F_Q4_0, CK_F_Q4_1, CK_F_Q4_K, CK_F_Q6_K, CK_F_COUNT } ck_format;
// The format of a storage type; -1 when no kernel runs on it.
int ck_format_of(int type);

// Activations quantized for the int8 path: row i holds kb blocks of 32 values.
// q [m][kb*32], d [m][kb] the block scales, sum [m][kb] the sum of each block's q and
// sum_lo [m][kb] that of its first 16: the compensations that turn VPDPBUSD's
// sum(u·x) over unsigned weights u = w + offset into sum(w·x). sd [m][kb] is sum·d, the
// factor of a block's minimum term (Q4_1, Q4_K), formed once per row rather than once per
// row and panel.
typedef struct {
    const int8_t *q;
    const float *d;
    const int32_t *sum;
    const int32_t *sum_lo;
    const float *sd;
    int kb;
} ck_act_q8;

// Up to this many rows of X a product is bound by reading its weights (decoding): the
// driver streams each panel once, and the SIMD tiles prefetch the panel CK_PREFETCH_BYTES
// ahead of the block they multiply. The hardware prefetcher alone left a 7B Q4_0 decode on
// an AVX-512 Xeon at 5.0-5.3 tok/s, 0.68 of the read rate; 2, 4, 8 and 16 KiB ahead gave
// 5.7-6.0, 6.2-6.4, 6.6-6.7 and 5.7-6.5.
#define CK_STREAM_ROWS 8
#define CK_PREFETCH_BYTES 8192

// Computes Y[m0:m1, columns of panels p0:p1] over K blocks of 32 [b0, b1) (columns >= n
// not written) of one packed format; with b0 > 0 it continues the sums already in Y, so K
// can be split into L1-sized chunks without changing a single rounding. For the K-quants
// b0 and b1 are multiples of 8 (whole super-blocks).
typedef void (*ck_tile_fn)(const ck_act_q8 *x, int m0, int m1, const void *w, int p0, int p1, int b0, int b1,
                           int n, float *y, int ldy);
// Quantizes one row of k values (x[j]·scale[j] when scale is not NULL) into kb blocks
// (zero-padded tail).
typedef void (*ck_quantize_act_row_fn)(const float *x, const float *scale, int k, int8_t *q, float *d, int32_t *sum,
                                       int32_t *sum_lo);

// Quantizes one row of k values into kb blocks as ck_quantize_act_row does (same d, same
// rounding) but stores each q biased, q + 128, as an unsigned byte (the tail pads with 128,
// that is q = 0), and no sums: dY for the backward-data product.
typedef void (*ck_quantize_biased_row_fn)(const float *x, int k, uint8_t *q, float *d);

// The backward-data product reads the forward panels one 32-column strip at a time: the
// weights times their row scales requantized per column over blocks of 32 outputs
// (gemm_bwd.c), in the transposed order w[o/4][j][o%4] (j = 0..31, the strip's columns; 4
// consecutive outputs o per 32-bit lane). VPDPBUSD multiplies unsigned by signed bytes, so
// dY's z enters biased (q + 128) and 128·colsum, colsum[c][j] the sum of w[o][j] over block
// c's 32 outputs, takes the bias out again: a per-strip sum of the weights instead of a
// per-row sum of z.
typedef struct {
    const int8_t *w;
    const int32_t *colsum;  // [nb][32]
    const float *d;         // [nb][32] the scale of each block of a column
    int nb;                 // blocks of 32 outputs (the strip holds 32·nb outputs, zero-padded)
    int ldz;                // blocks of a row of z (its rows are 32·ldz bytes and ldz scales apart)
    int accumulate;         // the sums continue from dx: a long strip run a chunk of outputs at a time
} ck_strip;
// dx[i][j] = sum over blocks c of zd[i][c]·d[c][j] · sum_o (zq[i][o] − 128)·w[o][j]
// (+ bias[i] when bias is not NULL) for rows i < rows and columns j < cols (≤ 32), added in
// c's order to dx[i][j] itself when `accumulate`, so that chunks give the bits of one pass.
typedef void (*ck_strip_tile_fn)(const ck_strip *s, const uint8_t *zq, const float *zd, int rows, const float *bias,
                                 float *dx, int ldx, int cols);

// Whether `parts` covers `total` columns in widths ck_gemm_parts accepts (ck_gemm.h):
// CK_ERR_NULL for a missing buffer, CK_ERR_SHAPE for widths it does not.
static inline ck_status ck_parts_check(const ck_parts *parts, int total) {
    if (!parts || !parts->cols || !parts->data) return CK_ERR_NULL;
    if (parts->count < 1) return CK_ERR_SHAPE;
    int sum = 0;
    for (int i = 0; i < parts->count; i++) {
        if (parts->cols[i] > 0 && !parts->data[i]) return CK_ERR_NULL;
        if (parts->cols[i] < 0 || (i + 1 < parts->count && parts->cols[i] % 32)) return CK_ERR_SHAPE;
        sum += parts->cols[i];
    }
    return sum == total ? CK_OK : CK_ERR_SHAPE;
}

// Bytes of quantized activations for m rows of kb blocks, and their arrays in a workspace.
size_t ck_act_q8_bytes(int m, int kb);
ck_act_q8 ck_act_q8_in(void *workspace, int m, int kb);

typedef struct {
    ck_tile_fn tile[CK_F_COUNT];
    ck_quantize_act_row_fn quantize_act_row;
    ck_quantize_biased_row_fn quantize_biased_row;
    ck_strip_tile_fn strip_tile;
} ck_dispatch_table;

// The calling thread's table (its own, or the process-wide one): read it before a parallel
// region, whose workers are other threads.
const ck_dispatch_table *ck_dispatch(void);

// Per-ISA kernel sets (a path's symbols exist on every build; they run only when chosen).
#define CK_ISA_KERNELS(isa)                                                                                       \
    void ck_tile_q8_0_##isa(const ck_act_q8 *, int, int, const void *, int, int, int, int, int, float *, int);    \
    void ck_tile_q4_0_##isa(const ck_act_q8 *, int, int, const void *, int, int, int, int, int, float *, int);    \
    void ck_tile_q4_1_##isa(const ck_act_q8 *, int, int, const void *, int, int, int, int, int, float *, int);    \
    void ck_tile_q4_k_##isa(const ck_act_q8 *, int, int, const void *, int, int, int, int, int, float *, int);    \
    void ck_tile_q6_k_##isa(const ck_act_q8 *, int, int, const void *, int, int, int, int, int, float *, int);    \
    void ck_quantize_act_row_##isa(const float *x, const float *scale, int k, int8_t *q, float *d, int32_t *sum,  \
                                   int32_t *sum_lo);                                                             \
    void ck_quantize_biased_row_##isa(const float *x, int k, uint8_t *q, float *d);                              \
    void ck_strip_tile_##isa(const ck_strip *s, const uint8_t *zq, const float *zd, int rows, const float *bias,  \
                             float *dx, int ldx, int cols);
CK_ISA_KERNELS(scalar)
CK_ISA_KERNELS(avx2)
CK_ISA_KERNELS(avx512)

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
// The 256-bit clone is x86-64-v3, not "avx2": AVX2 alone does not imply FMA, and without
// it every vector fma in that clone became a call to libm's fmaf (on an AVX2-only CPU the
// 4-bit backward spent half its time there).
#define CK_VECTOR_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))

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

// The next job of a loop whose jobs go to the threads as each finishes its last, from a
// counter shared by the team and starting at 0, instead of in equal static shares: memory and
// this kind of VM serve two cores unevenly, and with equal shares one thread waited at the end
// of every product (the main thread 3% of a training step's samples in libomp). A counter
// rather than schedule(dynamic): Debian's libomp predates the entry points the toolchain's
// clang emits for it. A loop using it computes each job the same whichever thread takes it.
static inline int ck_next_job(atomic_int *next) { return atomic_fetch_add_explicit(next, 1, memory_order_relaxed); }

// Branch-free fp16 -> fp32 (Maratyszcza's FP16 library, as ggml uses): exact for every half
// including subnormals, infinities and NaN. Inline for the kernels' per-row scale loops
// (an out-of-line call was 1.6% of a 4-bit training step); ck_half_to_float is this function.
static inline float ck_half_to_float_inline(ck_half h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    uint32_t n = (two_w >> 4) + (0xE0u << 23), d = (two_w >> 17) | (126u << 23);
    float normalized, denormalized;
    __builtin_memcpy(&normalized, &n, 4);
    __builtin_memcpy(&denormalized, &d, 4);
    normalized *= 0x1.0p-112f;
    denormalized -= 0.5f;
    uint32_t bits;
    if (two_w < (1u << 27)) __builtin_memcpy(&bits, &denormalized, 4);
    else __builtin_memcpy(&bits, &normalized, 4);
    bits |= sign;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

// Bytes of one panel block of a format (32 weights of 16 rows; 256 for the K-quants).
static inline size_t ck_format_block_bytes(ck_format f) {
    switch (f) {
    case CK_F_Q8_0: return sizeof(ck_panel_block);
    case CK_F_Q4_0: return sizeof(ck_panel_q4_0);
    case CK_F_Q4_1: return sizeof(ck_panel_q4_1);
    case CK_F_Q4_K: return sizeof(ck_panel_q4_k);
    default: return sizeof(ck_panel_q6_k);
    }
}

// Bytes of one panel (16 rows) of rows of kb blocks of 32: a K-quant block holds 8 of them.
static inline size_t ck_format_panel_bytes(ck_format f, int kb) {
    return (size_t)(f == CK_F_Q4_K || f == CK_F_Q6_K ? ck_div_up(kb, 8) : kb) * ck_format_block_bytes(f);
}

// The scale and minimum of row r of a panel block at weight `sub` of the block (see
// ck_packed_scale): inline, for the backward product's per-strip decoding (plain `inline`
// left it a call, 1.5% of a q4 training step's samples).
static inline __attribute__((always_inline)) void ck_panel_scale(ck_type type, const char *block, int r, int sub, float *scale,
                                                                 float *min) {
    *min = 0;
    switch (type) {
    case CK_TYPE_Q8_0: *scale = ck_half_to_float_inline(((const ck_panel_block *)block)->d[r]); break;
    case CK_TYPE_Q4_0: *scale = ck_half_to_float_inline(((const ck_panel_q4_0 *)block)->d[r]); break;
    case CK_TYPE_Q4_1:
        *scale = ck_half_to_float_inline(((const ck_panel_q4_1 *)block)->d[r]);
        *min = ck_half_to_float_inline(((const ck_panel_q4_1 *)block)->m[r]);
        break;
    case CK_TYPE_Q4_K: {
        const ck_panel_q4_k *p = (const ck_panel_q4_k *)block;
        *scale = ck_half_to_float_inline(p->d[r]) * p->sc[sub / CK_QK][r];  // exact: 11 × 6 bits
        *min = -(ck_half_to_float_inline(p->dmin[r]) * p->m[sub / CK_QK][r]);
        break;
    }
    case CK_TYPE_Q6_K: {
        const ck_panel_q6_k *p = (const ck_panel_q6_k *)block;
        *scale = ck_half_to_float_inline(p->d[r]) * p->sc[sub / 16][r];  // exact: 11 × 8 bits
        break;
    }
    default: *scale = 0;
    }
}

// 6-bit scale and min of sub-block j from Q4_K's packed 12 bytes.
static inline void ck_q4_k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

#endif
