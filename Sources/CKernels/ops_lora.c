// LoRA's added output at inference, y += scale · (x·Aᵀ)·Bᵀ, in one pass over the rows: every
// sum runs in the same order whatever the number of rows or threads (each u[r] over the
// inputs in order, each output over the ranks in order), so a sequence decoded with an
// adapter gives the same text alone or in any batch, which sgemm does not promise across
// shapes (it takes other code paths for small products). The cost stays near two sgemm
// calls': for a 576 → 1536 projection at rank 16, about even at 1 and 32 rows, less at 8,
// 1.5× at 64 (C harness, alternated with sgemm).
//
// Both products walk 16×16 blocks of A or B: a block is transposed in registers, then each
// of a tile of rows takes 16 FMAs from it; the transposition is shared by the tile.
#include <string.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

#define LORA_PARALLEL_MIN 65536  // multiply-adds below which one thread does all
#define TILE_ROWS 8              // rows that share each transposed block

// Rows [0, nr) × columns [0, nc) of a row-major matrix (rows ld apart), zero-padded to 16×16.
static inline void load_block(const float *m, int ld, int nr, int nc, ck_v16 v[16]) {
    if (nr == 16 && nc == 16) {  // the common case, in straight-line loads
        for (int i = 0; i < 16; i++) memcpy(&v[i], m + (size_t)i * ld, sizeof(ck_v16));
        return;
    }
    for (int i = 0; i < 16; i++) {
        float row[16] = {0};
        if (i < nr)
            for (int l = 0; l < nc; l++) row[l] = m[(size_t)i * ld + l];
        memcpy(&v[i], row, sizeof row);
    }
}

// One step of the 16×16 transpose: swaps the off-diagonal b×b sub-blocks of every 2b×2b block.
#define TRANSPOSE_STEP(v, B, ...)                                                         \
    for (int i = 0; i < 16; i++) {                                                        \
        if (i & (B)) continue;                                                            \
        const ck_v16 lo = v[i], hi = v[i + (B)];                                          \
        v[i] = __builtin_shufflevector(lo, hi, __VA_ARGS__);                              \
        v[i + (B)] = __builtin_shufflevector(lo, hi, TRANSPOSE_PARTNER_##B);              \
    }
#define TRANSPOSE_PARTNER_8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define TRANSPOSE_PARTNER_4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define TRANSPOSE_PARTNER_2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define TRANSPOSE_PARTNER_1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31

static inline void transpose16(ck_v16 v[16]) {
    TRANSPOSE_STEP(v, 8, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
    TRANSPOSE_STEP(v, 4, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27)
    TRANSPOSE_STEP(v, 2, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29)
    TRANSPOSE_STEP(v, 1, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30)
}

// For nx <= TILE_ROWS rows of x (`in` apart): u[i][r] = A[r]·x[i] (u rows ldu apart, ldu the
// rank rounded up to 16, zero past the rank), then y[i][o0:o1] += scale · B[o]·u[i] (y rows
// ldy apart). nx is a constant in each instance (lora_tile), so the sums stay in registers.
static inline __attribute__((always_inline)) void lora_tile_fixed(const float *x, const int nx, int in, const float *a,
                                                                  int rank, const float *b, int o0, int o1, float scale,
                                                                  float *u, int ldu, float *y, int ldy) {
    ck_v16 block[16], acc[TILE_ROWS];
    for (int r0 = 0; r0 < rank; r0 += 16) {
        const int nr = rank - r0 < 16 ? rank - r0 : 16;
        for (int i = 0; i < nx; i++) acc[i] = 0;
        for (int j0 = 0; j0 < in; j0 += 16) {
            const int nc = in - j0 < 16 ? in - j0 : 16;
            load_block(a + (size_t)r0 * in + j0, in, nr, nc, block);
            transpose16(block);  // block[j][r] = A[r0 + r][j0 + j]
            // rows innermost: their sums are independent chains the FMA units overlap
            for (int j = 0; j < nc; j++)
                for (int i = 0; i < nx; i++) acc[i] += block[j] * x[(size_t)i * in + j0 + j];
        }
        for (int i = 0; i < nx; i++) memcpy(u + (size_t)i * ldu + r0, &acc[i], sizeof(ck_v16));
    }
    for (int ob = o0; ob < o1; ob += 16) {
        const int no = o1 - ob < 16 ? o1 - ob : 16;
        for (int i = 0; i < nx; i++) acc[i] = 0;
        for (int r0 = 0; r0 < rank; r0 += 16) {
            const int nr = rank - r0 < 16 ? rank - r0 : 16;
            load_block(b + (size_t)ob * rank + r0, rank, no, nr, block);
            transpose16(block);  // block[r][o] = B[ob + o][r0 + r]
            for (int r = 0; r < nr; r++)
                for (int i = 0; i < nx; i++) acc[i] += block[r] * u[(size_t)i * ldu + r0 + r];
        }
        for (int i = 0; i < nx; i++) {  // the same vector update for a last, partial block
            float *yi = y + (size_t)i * ldy + ob;
            ck_v16 yv = 0;
            memcpy(&yv, yi, (size_t)no * sizeof(float));
            yv += scale * acc[i];
            memcpy(yi, &yv, (size_t)no * sizeof(float));
        }
    }
}

CK_VECTOR_CLONES static void lora_tile(const float *x, int nx, int in, const float *a, int rank, const float *b, int o0,
                                       int o1, float scale, float *u, int ldu, float *y, int ldy) {
    switch (nx) {
#define TILE_CASE(N) \
    case N: lora_tile_fixed(x, N, in, a, rank, b, o0, o1, scale, u, ldu, y, ldy); break;
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6) TILE_CASE(7) TILE_CASE(8)
#undef TILE_CASE
    }
}

void ck_lora_fwd(const float *x, int m, int in, const float *a, int rank, const float *b, int out, float scale,
                 float *y) {
    if (m <= 0 || rank <= 0 || out <= 0) return;
    const long work = (long)m * rank * (in + out);
#pragma omp parallel num_threads(ck_threads()) if (work >= LORA_PARALLEL_MIN)
    {
        const int ldu = ck_div_up(rank, 16) * 16;
        float u[TILE_ROWS * ldu];
        int64_t lo, hi;
        int id, team;
        ck_team(&id, &team);
        if (m >= team) {  // rows split over the team, a tile at a time
            ck_team_share(m, &lo, &hi);
            for (int64_t i = lo; i < hi; i += TILE_ROWS) {
                const int nx = hi - i < TILE_ROWS ? (int)(hi - i) : TILE_ROWS;
                lora_tile(x + i * in, nx, in, a, rank, b, 0, out, scale, u, ldu, y + i * out, out);
            }
        } else {  // fewer rows than threads (decoding): blocks of 16 outputs split, each thread forms u itself
            ck_team_share(ck_div_up(out, 16), &lo, &hi);
            const int o0 = 16 * (int)lo, o1 = 16 * (int)hi < out ? 16 * (int)hi : out;
            for (int64_t i = 0; i < m && o0 < o1; i += TILE_ROWS) {
                const int nx = m - i < TILE_ROWS ? (int)(m - i) : TILE_ROWS;
                lora_tile(x + i * in, nx, in, a, rank, b, o0, o1, scale, u, ldu, y + i * out, out);
            }
        }
    }
}
