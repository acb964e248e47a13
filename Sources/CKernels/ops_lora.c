// LoRA's products, inference and training. Every sum runs in the same order whatever the
// number of rows or threads (each element over its inner dimension in order), so a sequence
// decoded with an adapter gives the same text alone or in any batch, which sgemm does not
// promise across shapes (it takes other code paths for small products), and a training step
// gives the same gradients with any thread count. One side of every product is the rank
// (16 or so): a tile of rows shares each vector of the other factor, one FMA per step and no
// packing, where sgemm spends as long packing the long factor as multiplying it.
#include <string.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

#define LORA_PARALLEL_MIN 65536  // multiply-adds below which one thread does all
#define TILE_ROWS 8              // rows that share each vector of Aᵀ or Bᵀ
#define PRODUCT_ROWS_T 16        // rows of a transposed-A tile: a whole rank of 16, so b is read once
#define PREFETCH_ROWS 16         // rows ahead a transposed-A tile fetches (see product_tile)
#define NARROW_ROWS 6            // rows of any tile without AVX-512 (see tile_rows)

// n (<= 16) floats into the low lanes of a vector, the rest zero; a whole vector as one load
// (a copy of variable length would be a library call in the innermost loops).
static inline __attribute__((always_inline)) void load16(ck_v16 *v, const float *p, int n) {
    if (n == 16) {
        memcpy(v, p, sizeof *v);
    } else {
        *v = 0;
        memcpy(v, p, (size_t)n * sizeof(float));
    }
}

// The low n (<= 16) lanes of a vector to memory, a whole vector as one store.
static inline __attribute__((always_inline)) void store16(float *p, const ck_v16 *v, int n) {
    memcpy(p, v, n == 16 ? sizeof *v : (size_t)n * sizeof(float));
}

// c[i][0:nc] = alpha · sum over j of A(i, j) · b[j][0:nc] for the rows i < MR of a tile
// (plus c's previous values when `accumulate`), nc <= 16, with A(i, j) = a[i·lda + j], or
// a[j·lda + i] when `trans_a`: each step one vector of b against MR broadcasts. MR and trans_a
// are constants in each instance, so the sums stay in registers.
static inline __attribute__((always_inline)) void product_tile(const float *a, int lda, const int trans_a, const int MR,
                                                               int k, const float *b, int ldb, int nc, float alpha,
                                                               int accumulate, float *c, int ldc) {
    ck_v16 acc[PRODUCT_ROWS_T], w;
    for (int i = 0; i < MR; i++) acc[i] = 0;
    for (int j = 0; j < k; j++) {
        // transposed, both factors advance a whole row of dY or x (thousands of floats) a
        // step, 64 bytes used of each: a stride the hardware prefetcher does not follow
        // across pages (dB and dA ran 1.2-1.9x faster with this)
        if (trans_a) {
            __builtin_prefetch(a + (size_t)(j + PREFETCH_ROWS) * lda);
            __builtin_prefetch(b + (size_t)(j + PREFETCH_ROWS) * ldb);
        }
        load16(&w, b + (size_t)j * ldb, nc);
        for (int i = 0; i < MR; i++) acc[i] += w * (trans_a ? a[(size_t)j * lda + i] : a[(size_t)i * lda + j]);
    }
    for (int i = 0; i < MR; i++) {
        ck_v16 v = alpha * acc[i];
        if (accumulate) {
            ck_v16 old;
            load16(&old, c + (size_t)i * ldc, nc);
            v += old;
        }
        store16(c + (size_t)i * ldc, &v, nc);
    }
}

// For nx <= TILE_ROWS rows of x (`in` apart): u[i][r] = A[r]·x[i] (u rows ldu apart), then
// y[i][o0:o1] += scale · B[o]·u[i] (y rows `out` apart); at [in, rank], bt [rank, out]. nx is
// a constant in each instance (lora_tile).
static inline __attribute__((always_inline)) void lora_tile_fixed(const float *x, const int nx, int in, const float *at,
                                                                  int rank, const float *bt, int out, int o0, int o1,
                                                                  float scale, float *u, int ldu, float *y) {
    for (int r0 = 0; r0 < rank; r0 += 16)
        product_tile(x, in, 0, nx, in, at + r0, rank, rank - r0 < 16 ? rank - r0 : 16, 1, 0, u + r0, ldu);
    for (int ob = o0; ob < o1; ob += 16)
        product_tile(u, ldu, 0, nx, rank, bt + ob, out, o1 - ob < 16 ? o1 - ob : 16, scale, 1, y + ob, out);
}

// Rows a tile keeps in registers: MR accumulators of 16 floats, a vector of the other factor
// and a broadcast. AVX-512 has 32 registers of 16 floats; AVX2 has 16 of 8, where 8 rows
// spilled every step (the gradient products took 1.4-1.7x sgemm's time). The test is the
// one the clones' resolver makes. Each element's sum runs the same way whatever the rows.
static inline int tile_rows(int trans_a) {
    if (__builtin_cpu_supports("avx512f")) return trans_a ? PRODUCT_ROWS_T : TILE_ROWS;
    return NARROW_ROWS;
}

CK_VECTOR_CLONES static void lora_tile(const float *x, int nx, int in, const float *at, int rank, const float *bt, int out,
                                       int o0, int o1, float scale, float *u, int ldu, float *y) {
    switch (nx) {
#define TILE_CASE(N) \
    case N: lora_tile_fixed(x, N, in, at, rank, bt, out, o0, o1, scale, u, ldu, y); break;
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6) TILE_CASE(7) TILE_CASE(8)
#undef TILE_CASE
    }
}

void ck_lora_fwd(const float *x, int m, int in, const float *at, int rank, const float *bt, int out, float scale,
                 float *y) {
    if (m <= 0 || rank <= 0 || out <= 0) return;
    const long work = (long)m * rank * (in + out);
    const int rows = tile_rows(0), row_tiles = ck_div_up(m, rows);
    atomic_int next = 0;
#pragma omp parallel num_threads(ck_threads()) if (work >= LORA_PARALLEL_MIN)
    {
        const int ldu = ck_div_up(rank, 16) * 16;
        float u[TILE_ROWS * ldu];
        int64_t lo, hi;
        int id, team;
        ck_team(&id, &team);
        if (m >= team) {  // tiles of rows to the threads as they finish the last (ck_next_job)
            for (int t; (t = ck_next_job(&next)) < row_tiles;) {
                const int i = t * rows, nx = m - i < rows ? m - i : rows;
                lora_tile(x + (size_t)i * in, nx, in, at, rank, bt, out, 0, out, scale, u, ldu, y + (size_t)i * out);
            }
        } else {  // fewer rows than threads (decoding): blocks of 16 outputs split, each thread forms u itself
            ck_team_share(ck_div_up(out, 16), &lo, &hi);
            const int o0 = 16 * (int)lo, o1 = 16 * (int)hi < out ? 16 * (int)hi : out;
            for (int64_t i = 0; i < m && o0 < o1; i += rows) {
                const int nx = m - i < rows ? (int)(m - i) : rows;
                lora_tile(x + i * in, nx, in, at, rank, bt, out, o0, o1, scale, u, ldu, y + i * out);
            }
        }
    }
}

// One tile of ck_lora_product: MR (<= TILE_ROWS, or <= PRODUCT_ROWS_T with trans_a) rows.
CK_VECTOR_CLONES static void product_tiles(const float *a, int lda, int trans_a, int mr, int k, const float *b, int ldb,
                                           int nc, float alpha, int accumulate, float *c, int ldc) {
    if (trans_a) {
        switch (mr) {
#define T_CASE(N) \
    case N: product_tile(a, lda, 1, N, k, b, ldb, nc, alpha, accumulate, c, ldc); break;
            T_CASE(1) T_CASE(2) T_CASE(3) T_CASE(4) T_CASE(5) T_CASE(6) T_CASE(7) T_CASE(8)
            T_CASE(9) T_CASE(10) T_CASE(11) T_CASE(12) T_CASE(13) T_CASE(14) T_CASE(15) T_CASE(16)
#undef T_CASE
        }
    } else {
        switch (mr) {
#define N_CASE(N) \
    case N: product_tile(a, lda, 0, N, k, b, ldb, nc, alpha, accumulate, c, ldc); break;
            N_CASE(1) N_CASE(2) N_CASE(3) N_CASE(4) N_CASE(5) N_CASE(6) N_CASE(7) N_CASE(8)
#undef N_CASE
        }
    }
}

void ck_lora_product(int trans_a, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                     int accumulate, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    // With trans_a a tile is 16 rows, whole cache lines of a, taken in parts of as many rows
    // as the registers hold (all 16 with AVX-512): the parts read the same lines one after
    // another, from L2 at worst, not each from memory.
    const int mr = trans_a ? PRODUCT_ROWS_T : tile_rows(0), part = tile_rows(trans_a);
    const int64_t row_tiles = ck_div_up(m, mr), col_blocks = ck_div_up(n, 16), tiles = row_tiles * col_blocks;
    // The threads take runs of tiles as they finish the last (ck_next_job), along a row of
    // tiles first (its rows of a stay in L1); a whole row a run when there are many rows, so
    // that short products (dX += dU·A: 16 multiply-adds an element) do not claim each tile.
    const int run = row_tiles >= 8 * ck_threads() ? (int)col_blocks : 1, runs = (int)ck_div_up((int)tiles, run);
    atomic_int next = 0;
#pragma omp parallel num_threads(ck_threads()) if ((long)m * n * k >= LORA_PARALLEL_MIN && tiles > 1)
    for (int r; (r = ck_next_job(&next)) < runs;) {
        const int64_t t1 = (int64_t)(r + 1) * run < tiles ? (int64_t)(r + 1) * run : tiles;
        for (int64_t t = (int64_t)r * run; t < t1; t++) {
            const int top = (int)(t / col_blocks) * mr, i1 = m - top < mr ? m : top + mr, c0 = (int)(t % col_blocks) * 16;
            for (int i0 = top; i0 < i1; i0 += part) {
                const float *at = trans_a ? a + i0 : a + (size_t)i0 * lda;
                product_tiles(at, lda, trans_a, i1 - i0 < part ? i1 - i0 : part, k, b + c0, ldb, n - c0 < 16 ? n - c0 : 16,
                              alpha, accumulate, c + (size_t)i0 * ldc + c0, ldc);
            }
        }
    }
}
