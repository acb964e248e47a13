// LoRA's added output at inference, y += scale · (x·Aᵀ)·Bᵀ, from A and B transposed (the
// adapter keeps the transposes): every sum runs in the same order whatever the number of rows
// or threads (each u[r] over the inputs in order, each output over the ranks in order), so a
// sequence decoded with an adapter gives the same text alone or in any batch, which sgemm
// does not promise across shapes (it takes other code paths for small products). With the
// transposes each step is one vector FMA over 16 ranks or 16 outputs, shared by a tile of rows.
#include <string.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

#define LORA_PARALLEL_MIN 65536  // multiply-adds below which one thread does all
#define TILE_ROWS 8              // rows that share each vector of Aᵀ or Bᵀ

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

// For nx <= TILE_ROWS rows of x (`in` apart): u[i][r] = A[r]·x[i] (u rows ldu apart, ldu the
// rank rounded up to 16, zero past the rank), then y[i][o0:o1] += scale · B[o]·u[i] (y rows
// `out` apart); at [in, rank], bt [rank, out]. nx is a constant in each instance (lora_tile),
// so the sums stay in registers.
static inline __attribute__((always_inline)) void lora_tile_fixed(const float *x, const int nx, int in, const float *at,
                                                                  int rank, const float *bt, int out, int o0, int o1,
                                                                  float scale, float *u, int ldu, float *y) {
    ck_v16 acc[TILE_ROWS], w;
    for (int r0 = 0; r0 < rank; r0 += 16) {
        const int nr = rank - r0 < 16 ? rank - r0 : 16;
        for (int i = 0; i < nx; i++) acc[i] = 0;
        for (int j = 0; j < in; j++) {
            load16(&w, at + (size_t)j * rank + r0, nr);
            for (int i = 0; i < nx; i++) acc[i] += w * x[(size_t)i * in + j];
        }
        for (int i = 0; i < nx; i++) memcpy(u + (size_t)i * ldu + r0, &acc[i], sizeof(ck_v16));
    }
    for (int ob = o0; ob < o1; ob += 16) {
        const int no = o1 - ob < 16 ? o1 - ob : 16;
        for (int i = 0; i < nx; i++) acc[i] = 0;
        for (int r = 0; r < rank; r++) {
            load16(&w, bt + (size_t)r * out + ob, no);
            for (int i = 0; i < nx; i++) acc[i] += w * u[(size_t)i * ldu + r];
        }
        for (int i = 0; i < nx; i++) {  // the same vector update for a last, partial block
            float *yi = y + (size_t)i * out + ob;
            ck_v16 yv;
            load16(&yv, yi, no);
            yv += scale * acc[i];
            store16(yi, &yv, no);
        }
    }
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
                lora_tile(x + i * in, nx, in, at, rank, bt, out, 0, out, scale, u, ldu, y + i * out);
            }
        } else {  // fewer rows than threads (decoding): blocks of 16 outputs split, each thread forms u itself
            ck_team_share(ck_div_up(out, 16), &lo, &hi);
            const int o0 = 16 * (int)lo, o1 = 16 * (int)hi < out ? 16 * (int)hi : out;
            for (int64_t i = 0; i < m && o0 < o1; i += TILE_ROWS) {
                const int nx = m - i < TILE_ROWS ? (int)(m - i) : TILE_ROWS;
                lora_tile(x + i * in, nx, in, at, rank, bt, out, o0, o1, scale, u, ldu, y + i * out);
            }
        }
    }
}
