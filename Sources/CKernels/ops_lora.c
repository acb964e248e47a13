// LoRA's added output for a few rows (decoding), y += scale · (x·Aᵀ)·Bᵀ: two short loops a
// row instead of two sgemm calls, whose fixed cost dominates at this size. Each row's sums
// run in the same order whatever the number of rows or threads.
//
// Both products end in dot products of 16-lane partial sums; sixteen of them are reduced
// together by one shuffle tree (`sum16`) instead of one horizontal sum each, which would
// cost more than the multiplications.
#include <string.h>
#include "ck_internal.h"
#include "include/ck_ops.h"

#define LORA_PARALLEL_MIN 65536  // multiply-adds below which one thread does all

#define LOAD16(v, p) memcpy(&(v), (p), sizeof(ck_v16))

// n (<= 16) floats into the low lanes of a zero vector.
static inline void load_part(ck_v16 *v, const float *p, int n) {
    *v = 0;
    for (int l = 0; l < n; l++) (*v)[l] = p[l];
}

// s[o] = the sum of p[o]'s 16 lanes, for o < 16: each level adds lanes half a group apart,
// so every sum runs the same tree whichever vectors share it.
static inline void sum16(const ck_v16 p[16], float s[16]) {
    ck_v16 q[8], r[4], t[2];
    for (int k = 0; k < 8; k++)
        q[k] = __builtin_shufflevector(p[2 * k], p[2 * k + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               __builtin_shufflevector(p[2 * k], p[2 * k + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    for (int k = 0; k < 4; k++)
        r[k] = __builtin_shufflevector(q[2 * k], q[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
               __builtin_shufflevector(q[2 * k], q[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    for (int k = 0; k < 2; k++)
        t[k] = __builtin_shufflevector(r[2 * k], r[2 * k + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
               __builtin_shufflevector(r[2 * k], r[2 * k + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    const ck_v16 sum = __builtin_shufflevector(t[0], t[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
                    __builtin_shufflevector(t[0], t[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    memcpy(s, &sum, sizeof sum);
}

// u[r] = A[r]·x for one row, 16 ranks at a time (x read once for them); u: the rank rounded
// up to 16. `zero` (at least `in` zeros) stands in for the rows past the rank, so every loop
// runs 16 wide and the sums stay in registers.
CK_VECTOR_CLONES static void lora_down(const float *x, int in, const float *a, int rank, const float *zero, float *u) {
    for (int r0 = 0; r0 < rank; r0 += 16) {
        const float *rows[16];
        for (int r = 0; r < 16; r++) rows[r] = r0 + r < rank ? a + (size_t)(r0 + r) * in : zero;
        ck_v16 acc[16], xv, av;
        for (int r = 0; r < 16; r++) acc[r] = 0;
        for (int j = 0; j < in; j += 16) {
            const int n = in - j < 16 ? in - j : 16;
            if (n == 16) LOAD16(xv, x + j); else load_part(&xv, x + j, n);
            for (int r = 0; r < 16; r++) {
                if (n == 16) LOAD16(av, rows[r] + j); else load_part(&av, rows[r] + j, n);
                acc[r] += av * xv;
            }
        }
        sum16(acc, u + r0);
    }
}

// y[o0:o1] += scale · B[o]·u for one row, 16 outputs at a time; u is zero past the rank, and
// `zero` (the rank rounded up to 16 zeros) stands in for the outputs past o1.
CK_VECTOR_CLONES static void lora_up(const float *u, const float *b, int rank, int o0, int o1, const float *zero,
                                     float scale, float *y) {
    for (int ob = o0; ob < o1; ob += 16) {
        const int no = o1 - ob < 16 ? o1 - ob : 16;
        ck_v16 p[16], uv, bv;
        for (int o = 0; o < 16; o++) p[o] = 0;
        for (int r0 = 0; r0 < rank; r0 += 16) {
            const int nr = rank - r0 < 16 ? rank - r0 : 16;
            LOAD16(uv, u + r0);
            for (int o = 0; o < 16; o++) {
                const float *row = o < no ? b + (size_t)(ob + o) * rank + r0 : zero;
                if (nr == 16) LOAD16(bv, row); else load_part(&bv, row, nr);
                p[o] += bv * uv;
            }
        }
        float s[16];
        sum16(p, s);
        for (int o = 0; o < no; o++) y[ob + o] += scale * s[o];
    }
}

void ck_lora_fwd(const float *x, int m, int in, const float *a, int rank, const float *b, int out, float scale,
                 float *y) {
    if (m <= 0 || rank <= 0 || out <= 0) return;
    const long work = (long)m * rank * (in + out);
#pragma omp parallel num_threads(ck_threads()) if (work >= LORA_PARALLEL_MIN)
    {
        const int ldu = ck_div_up(rank, 16) * 16;
        float u[ldu], zero[in > ldu ? in : ldu];
        memset(zero, 0, sizeof zero);
        int64_t lo, hi;
        int id, team;
        ck_team(&id, &team);
        if (m >= team) {  // rows split over the team
            ck_team_share(m, &lo, &hi);
            for (int64_t i = lo; i < hi; i++) {
                lora_down(x + i * in, in, a, rank, zero, u);
                lora_up(u, b, rank, 0, out, zero, scale, y + i * out);
            }
        } else {  // fewer rows than threads: outputs split, each thread forms u itself
            ck_team_share(out, &lo, &hi);
            for (int i = 0; i < m; i++) {
                lora_down(x + (size_t)i * in, in, a, rank, zero, u);
                lora_up(u, b, rank, (int)lo, (int)hi, zero, scale, y + (size_t)i * out);
            }
        }
    }
}
