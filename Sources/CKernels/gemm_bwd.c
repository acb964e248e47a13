// Backward-data product dX = dY · W on the forward panels, without a transposed copy.
//
// The panels are read one 32-column strip at a time. A weight's scale varies along the
// summed dimension (one per output row and block), so the strip's weights times their row
// scales, v[o][j] = w[o][j] · scale[o], are requantized per column over blocks of 32 outputs
// as activations are (d = amax/127, rounded half to even) into the transposed order
// q[o/4][j][o%4] that VPDPBUSD reads, with each block's scale dw[c][j] and column sum.
// dY is quantized once per row, over outputs in blocks of 32 and biased (q + 128 as
// unsigned bytes), so dX[j] = sum over blocks c of
// dz[c] · dw[c][j] · (sum_o (z_q[o] + 128) · q[o][j] − 128 · colsum[c][j]), plus
// sum_o dY[o] · min[o] for the formats with a per-block minimum (Q4_1, Q4_K), in f32.
// Requantizing costs a pass over the strip per job, against one over dY per strip and row
// when the scales were folded into dY; the weights move by at most half a step of their
// column block, as the transposed copy's do.
// Every dX element comes from one strip and one row, in one order: bit-identical for any
// thread count and on every path.
#include <math.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_quant.h"

#define ROW_GROUP 16  // rows of z run against each strip of a job in turn, while they are in cache
#define STRIPS 4      // strips a job decodes and runs together: each z row is read from memory once for them
#define OUTPUT_CHUNK 128  // blocks of 32 outputs of a strip run against every row group in turn (128 KB of weights)

static inline size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

typedef uint8_t ck_b16 __attribute__((ext_vector_type(16)));

// 16 stored bytes of 4 rows × 4 weights, [row][weight] as a panel holds them, in the strip's
// order [weight][row], less the format's offset: one byte shuffle.
static inline __attribute__((always_inline)) ck_b16 quad_transposed(ck_b16 v, int offset) {
    return __builtin_shufflevector(v, v, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15) - (uint8_t)offset;
}

// Strip cb of panel p's 16 rows (Q8_0, Q4_0, Q4_1, Q4_K) into sw, one row quad and 4
// weights at a time: w[o/4][j][o%4] for the quad's rows is 16 bytes at sw + 128·quad + 4j.
CK_VECTOR_CLONES static void decode_panel(ck_format f, const char *panel, int cb, int p, int offset, int8_t *sw) {
    for (int gq = 0; gq < CK_PANEL / 4; gq++) {
        int8_t *to = sw + (size_t)(CK_PANEL / 4 * p + gq) * 4 * CK_QK;
        ck_b16 v;
        if (f == CK_F_Q8_0) {
            const ck_panel_block *b = (const ck_panel_block *)panel + cb;
            for (int g = 0; g < CK_QK / 4; g++) {
                memcpy(&v, b->q[g][4 * gq], sizeof v);
                v = quad_transposed(v, offset);
                memcpy(to + 16 * g, &v, sizeof v);
            }
        } else if (f == CK_F_Q4_K) {
            const ck_panel_q4_k *b = (const ck_panel_q4_k *)panel + cb / 8;
            const int sub = cb % 8;
            for (int g = 0; g < CK_QK / 4; g++) {
                memcpy(&v, b->qs[sub / 2][g][4 * gq], sizeof v);
                v = quad_transposed(sub & 1 ? v >> 4 : v & 0x0F, offset);
                memcpy(to + 16 * g, &v, sizeof v);
            }
        } else {  // Q4_0, Q4_1: low nibbles weights 4g+t, high nibbles 16+4g+t
            const uint8_t(*qs)[CK_PANEL][4] =
                f == CK_F_Q4_0 ? ((const ck_panel_q4_0 *)panel + cb)->qs : ((const ck_panel_q4_1 *)panel + cb)->qs;
            for (int g = 0; g < CK_QK / 8; g++) {
                memcpy(&v, qs[g][4 * gq], sizeof v);
                const ck_b16 lo = quad_transposed(v & 0x0F, offset), hi = quad_transposed(v >> 4, offset);
                memcpy(to + 16 * g, &lo, sizeof lo);
                memcpy(to + 16 * (g + CK_QK / 8), &hi, sizeof hi);
            }
        }
    }
}

typedef int8_t ck_s16 __attribute__((ext_vector_type(16)));
typedef int32_t ck_i16 __attribute__((ext_vector_type(16)));
typedef float ck_v4 __attribute__((ext_vector_type(4)));

// Requantizes the decoded strip in place: block c's 32 outputs of column j, w[o][j]·scale[o]
// (scale0 for columns 0..15, scale1 for 16..31), become int8 with scale dw[c][j] and sum
// colsum[c][j]. A 16-byte group of a row quad holds 4 columns × 4 outputs, so a lane's
// scale repeats every 4 lanes and a column's maximum and sum are over 4 adjacent lanes.
CK_VECTOR_CLONES static void requantize_strip(int8_t *sw, const float *scale0, const float *scale1, int nb, float *dw,
                                              int32_t *colsum) {
    for (int c = 0; c < nb; c++) {
        int8_t *block = sw + (size_t)c * CK_QK * CK_QK;
        ck_v16 v[CK_QK / 4][8], amax[8];
        for (int g = 0; g < 8; g++) amax[g] = (ck_v16)0;
        for (int q = 0; q < CK_QK / 4; q++) {
            ck_v4 s0, s1;
            memcpy(&s0, scale0 + c * CK_QK + 4 * q, sizeof s0);
            memcpy(&s1, scale1 + c * CK_QK + 4 * q, sizeof s1);
            const ck_v16 p0 = __builtin_shufflevector(s0, s0, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
            const ck_v16 p1 = __builtin_shufflevector(s1, s1, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
            for (int g = 0; g < 8; g++) {
                ck_s16 w;
                memcpy(&w, block + 4 * CK_QK * q + 16 * g, sizeof w);
                v[q][g] = __builtin_convertvector(w, ck_v16) * (g < 4 ? p0 : p1);
                amax[g] = __builtin_elementwise_max(amax[g], __builtin_elementwise_abs(v[q][g]));
            }
        }
        ck_v16 inv[8];
        for (int g = 0; g < 8; g++) {
            for (int u = 0; u < 4; u++) {
                float m = amax[g][4 * u];
                for (int t = 1; t < 4; t++) m = fmaxf(m, amax[g][4 * u + t]);
                const float d = m / 127.0f, id = d ? 1.0f / d : 0.0f;
                dw[c * CK_QK + 4 * g + u] = d;
                for (int t = 0; t < 4; t++) inv[g][4 * u + t] = id;
            }
        }
        ck_i16 sums[8];
        for (int g = 0; g < 8; g++) sums[g] = (ck_i16)0;
        for (int q = 0; q < CK_QK / 4; q++) {
            for (int g = 0; g < 8; g++) {
                const ck_i16 r = __builtin_convertvector(__builtin_elementwise_roundeven(v[q][g] * inv[g]), ck_i16);
                sums[g] += r;
                const ck_s16 w = __builtin_convertvector(r, ck_s16);
                memcpy(block + 4 * CK_QK * q + 16 * g, &w, sizeof w);
            }
        }
        for (int g = 0; g < 8; g++)
            for (int u = 0; u < 4; u++)
                colsum[c * CK_QK + 4 * g + u] = sums[g][4 * u] + sums[g][4 * u + 1] + sums[g][4 * u + 2] + sums[g][4 * u + 3];
    }
}

// Decodes column strip cb (columns 32cb..32cb+31) of all n rows into s, requantized
// (requantize_strip); scale0 and scale1 receive each row's scale for columns 0..15 and
// 16..31. Returns whether the format has minimums.
static int decode_strip(ck_type type, const void *w, int n, int k, int cb, int8_t *sw, int32_t *colsum, float *dw,
                        float *scale0, float *scale1) {
    const ck_format f = (ck_format)ck_format_of(type);
    const int nb = ck_div_up(n, CK_QK), kb = ck_q8_blocks_per_row(k);
    const size_t bytes = ck_format_block_bytes(f), panel_bytes = ck_format_panel_bytes(f, kb);
    const int offset = f == CK_F_Q8_0 ? 128 : f == CK_F_Q4_0 ? 8 : f == CK_F_Q6_K ? 32 : 0;
    // whole panels 16 bytes at a time; the rows past them (and every Q6_K row) one by one
    const int panels = f == CK_F_Q6_K ? 0 : n / CK_PANEL;
    const size_t done = (size_t)panels * CK_PANEL * CK_QK;
    memset(sw + done, 0, (size_t)nb * CK_QK * CK_QK - done);  // the rows past n stay zero
    for (int p = 0; p < panels; p++) decode_panel(f, (const char *)w + (size_t)p * panel_bytes, cb, p, offset, sw);
    for (int o = panels * CK_PANEL; o < n; o++) {
        uint8_t u[CK_QK];  // the stored unsigned values
        const int p = o / CK_PANEL, r = o % CK_PANEL;
        const char *panel = (const char *)w + (size_t)p * panel_bytes;
        switch (f) {
        case CK_F_Q8_0: {
            const ck_panel_block *b = (const ck_panel_block *)panel + cb;
            for (int j = 0; j < CK_QK; j++) u[j] = b->q[j / 4][r][j % 4];
            break;
        }
        case CK_F_Q4_0:
        case CK_F_Q4_1: {
            const ck_panel_q4_0 *b0 = (const ck_panel_q4_0 *)panel + cb;
            const ck_panel_q4_1 *b1 = (const ck_panel_q4_1 *)panel + cb;
            for (int j = 0; j < CK_QK / 2; j++) {
                const uint8_t q = f == CK_F_Q4_0 ? b0->qs[j / 4][r][j % 4] : b1->qs[j / 4][r][j % 4];
                u[j] = q & 0x0F;
                u[j + 16] = q >> 4;
            }
            break;
        }
        case CK_F_Q4_K: {
            const ck_panel_q4_k *b = (const ck_panel_q4_k *)panel + cb / 8;
            const int s = cb % 8;
            for (int j = 0; j < CK_QK; j++) {
                const uint8_t q = b->qs[s / 2][j / 4][r][j % 4];
                u[j] = s & 1 ? q >> 4 : q & 0x0F;
            }
            break;
        }
        default: {
            const ck_panel_q6_k *b = (const ck_panel_q6_k *)panel + cb / 8;
            const int s = cb % 8, h = s / 4, jj = s % 4;
            for (int j = 0; j < CK_QK; j++) {
                const uint8_t ql = b->ql[h][jj & 1][j / 4][r][j % 4], qh = b->qh[h][j / 4][r][j % 4];
                u[j] = (uint8_t)((jj < 2 ? ql & 0x0F : ql >> 4) | ((qh >> (2 * jj)) & 3) << 4);
            }
        }
        }
        int8_t *to = sw + (size_t)(o / 4) * 4 * CK_QK + o % 4;  // w[o/4][j][o%4] at to + 4j
        for (int j = 0; j < CK_QK; j++) to[4 * j] = (int8_t)(u[j] - offset);
    }
    // a panel's block at a time; the second half's scale differs only for Q6_K, and the
    // minimums come from the driver (per output and strip, this loop was 4% of an int8 step)
    const int k_quant = f == CK_F_Q4_K || f == CK_F_Q6_K, sub = k_quant ? CK_QK * (cb % 8) : 0;
    for (int p = 0; p < ck_div_up(n, CK_PANEL); p++) {
        const char *block = (const char *)w + (size_t)p * panel_bytes + (size_t)(k_quant ? cb / 8 : cb) * bytes;
        const int rows = n - p * CK_PANEL < CK_PANEL ? n - p * CK_PANEL : CK_PANEL;
        float min, *s0 = scale0 + p * CK_PANEL, *s1 = scale1 + p * CK_PANEL;
        for (int r = 0; r < rows; r++) {
            ck_panel_scale(type, block, r, sub, &s0[r], &min);
            if (f == CK_F_Q6_K) ck_panel_scale(type, block, r, sub + 16, &s1[r], &min);
            else s1[r] = s0[r];
        }
    }
    for (int o = n; o < nb * CK_QK; o++) scale0[o] = scale1[o] = 0;
    requantize_strip(sw, scale0, scale1, nb, dw, colsum);
    return f == CK_F_Q4_1 || f == CK_F_Q4_K;
}

// One decoded strip in a thread's scratch: its requantized weights, column sums and
// scales, and its rows' scales for both halves.
typedef struct {
    ck_strip strip;
    float *scale[2];
} strip_scratch;

static size_t strip_bytes(int n) {
    const int nb = ck_div_up(n, CK_QK), np = nb * CK_QK;
    return align64((size_t)nb * CK_QK * CK_QK) + align64((size_t)np * sizeof(int32_t)) + 3 * align64((size_t)np * sizeof(float));
}

static strip_scratch strip_in(char *at, int n) {
    const int nb = ck_div_up(n, CK_QK), np = nb * CK_QK;
    const size_t floats = align64((size_t)np * sizeof(float));
    char *colsum = at + align64((size_t)nb * CK_QK * CK_QK), *dw = colsum + align64((size_t)np * sizeof(int32_t));
    return (strip_scratch){{(int8_t *)at, (int32_t *)colsum, (float *)dw, nb, nb, 0},
                           {(float *)(dw + floats), (float *)(dw + 2 * floats)}};
}

// Per-thread scratch: STRIPS decoded strips and the minimums' share of ROW_GROUP rows.
static size_t thread_bytes(int n) { return STRIPS * strip_bytes(n) + align64(ROW_GROUP * sizeof(float)); }

// Shared scratch: every row's minimum of every strip, every row of dY's sum over them, and
// dY quantized (q, then d).
static inline int mins_stride(int k) { return ck_div_up(ck_q8_blocks_per_row(k), 16) * 16; }

static size_t z_bytes(int m, int nb) { return align64((size_t)m * nb * CK_QK) + align64((size_t)m * nb * sizeof(float)); }

static size_t shared_bytes(int m, int n, int k) {
    const int strips = ck_q8_blocks_per_row(k);
    return align64((size_t)n * mins_stride(k) * sizeof(float)) + align64((size_t)m * strips * sizeof(float)) +
           z_bytes(m, ck_div_up(n, CK_QK));
}

size_t ck_gemm_bwd_workspace_size(int m, int n, int k) {
    return m < 0 || n < 0 || k < 0 ? 0 : shared_bytes(m, n, k) + (size_t)ck_threads() * thread_bytes(n);
}

#define BIAS_ROWS 8  // rows summed side by side: independent FMA chains, the same order for each
#define BIAS_CHUNK 2048  // outputs of the minimums run against every row group in turn

typedef float ck_v8 __attribute__((ext_vector_type(8)));

// bias[r][b] += sum over o in [o0, o1) of dy[i0 + r][o] · mins[o][b] (from 0 when o0 is 0)
// for the strips b of `rows` rows, in o's
// order: the minimums' share of dX (Q4_1, Q4_K). Lanes are 16 strips (mins rows padded to
// `stride`, a multiple of 16), so the sums stay in registers; a last group of up to 8
// strips runs 8 lanes (K = 576 is 18 strips: 16 + 2), in the same order per lane.
// Always BIAS_ROWS chains (rows past `rows` repeat row 0 and are not stored): a loop of a
// constant count keeps them in registers, where one of `rows` kept them in memory (the
// store-to-load chains made this a fifth of a Q4_1 backward product).
#define BIAS_PASS(V, lanes)                                                                                       \
    do {                                                                                                          \
        V acc[BIAS_ROWS];                                                                                         \
        const int width = strips - b0 < (lanes) ? strips - b0 : (lanes);                                          \
        for (int r = 0; r < BIAS_ROWS; r++) {                                                                     \
            acc[r] = (V)0;                                                                                        \
            if (o0 > 0 && r < rows) memcpy(&acc[r], bias + (size_t)r * strips + b0, (size_t)width * sizeof(float)); \
        }                                                                                                         \
        for (int p = 0, start = 0; p < dy->count; start += dy->cols[p++]) {                                       \
            const int lo = o0 > start ? o0 : start, hi = o1 < start + dy->cols[p] ? o1 : start + dy->cols[p];     \
            const float *row[BIAS_ROWS];                                                                          \
            for (int r = 0; r < BIAS_ROWS; r++) row[r] = dy->data[p] + (size_t)(i0 + (r < rows ? r : 0)) * dy->cols[p];  \
            for (int o = lo; o < hi; o++) {                                                                       \
                V m;                                                                                              \
                memcpy(&m, mins + (size_t)o * stride + b0, sizeof m);                                             \
                for (int r = 0; r < BIAS_ROWS; r++) acc[r] = __builtin_elementwise_fma((V)row[r][o - start], m, acc[r]); \
            }                                                                                                     \
        }                                                                                                         \
        for (int r = 0; r < rows; r++) memcpy(bias + (size_t)r * strips + b0, &acc[r], (size_t)width * sizeof(float)); \
    } while (0)

CK_VECTOR_CLONES static void bias_rows(const ck_parts *dy, int i0, int rows, int o0, int o1, const float *mins, int strips,
                                       int stride, float *bias) {
    for (int b0 = 0; b0 < strips; b0 += 16) {
        if (strips - b0 <= 8) BIAS_PASS(ck_v8, 8);
        else BIAS_PASS(ck_v16, 16);
    }
}
#undef BIAS_PASS

// mins[o][b] = the minimum of row o's block b (Q4_1's m, Q4_K's −dmin·m of the sub-block),
// zero for the padding blocks past k, for the rows of panels [p0, p1): a panel's 16 rows of
// a block at a time, converted side by side (one scalar call a value was 4 ns, 0.2 ms for
// SmolLM2's 1536 x 576 product whatever its rows, on one thread).
CK_VECTOR_CLONES static void gather_mins(ck_type type, const void *w, int p0, int p1, int n, int strips, int stride,
                                         float *mins) {
    const ck_format f = (ck_format)ck_format_of(type);
    const size_t panel_bytes = ck_format_panel_bytes(f, strips);
    for (int p = p0; p < p1; p++) {
        const char *panel = (const char *)w + (size_t)p * panel_bytes;
        const int rows = n - p * CK_PANEL < CK_PANEL ? n - p * CK_PANEL : CK_PANEL;
        for (int b = 0; b < stride; b++) {
            float v[CK_PANEL];
            if (b >= strips) {
                for (int r = 0; r < CK_PANEL; r++) v[r] = 0;
            } else if (f == CK_F_Q4_1) {
                const ck_panel_q4_1 *pb = (const ck_panel_q4_1 *)panel + b;
                for (int r = 0; r < CK_PANEL; r++) v[r] = ck_half_to_float_inline(pb->m[r]);
            } else {
                const ck_panel_q4_k *pb = (const ck_panel_q4_k *)panel + b / 8;
                for (int r = 0; r < CK_PANEL; r++) v[r] = -(ck_half_to_float_inline(pb->dmin[r]) * pb->m[b % 8][r]);
            }
            for (int r = 0; r < rows; r++) mins[(size_t)(p * CK_PANEL + r) * stride + b] = v[r];
        }
    }
}

// dX rows [i0, i1), columns of the `count` strips from cb0; zq and zd hold dY quantized.
static void strip_rows(ck_type type, int i0, int i1, int n, const void *w, int k, int cb0, int count, const uint8_t *zq,
                       const float *zd, float *dx, const float *biases, char *scratch, ck_strip_tile_fn strip_tile) {
    const int nb = ck_div_up(n, CK_QK), strips = ck_q8_blocks_per_row(k);
    strip_scratch s[STRIPS];
    int has_min = 0;
    for (int t = 0; t < count; t++) {
        s[t] = strip_in(scratch + t * strip_bytes(n), n);
        has_min = decode_strip(type, w, n, k, cb0 + t, (int8_t *)s[t].strip.w, (int32_t *)s[t].strip.colsum,
                               (float *)s[t].strip.d, s[t].scale[0], s[t].scale[1]);
    }
    float *bias = (float *)(scratch + STRIPS * strip_bytes(n));
    // A chunk of the strips' outputs stays in L2 for every row group, and a group's rows of z
    // stay in L1 for every strip of the job. Whole strips of a head over 49152 outputs (1.5 MB
    // each) were read from memory again for every group: the head's backward ran 0.6x its
    // forward.
    for (int c0 = 0; c0 < nb; c0 += OUTPUT_CHUNK) {
        const int c1 = c0 + OUTPUT_CHUNK < nb ? c0 + OUTPUT_CHUNK : nb;
        for (int g0 = i0; g0 < i1; g0 += ROW_GROUP) {
            const int rows = i1 - g0 < ROW_GROUP ? i1 - g0 : ROW_GROUP;
            for (int t = 0; t < count; t++) {
                const int cb = cb0 + t, cols = k - CK_QK * cb < CK_QK ? k - CK_QK * cb : CK_QK;
                const ck_strip *whole = &s[t].strip;
                const ck_strip chunk = {whole->w + (size_t)c0 * CK_QK * CK_QK, whole->colsum + c0 * CK_QK, whole->d + c0 * CK_QK,
                                        c1 - c0, nb, c0 > 0};
                const int last = c1 == nb && has_min;  // the minimums' share once, after the sums
                if (last)
                    for (int i = 0; i < rows; i++) bias[i] = biases[(size_t)(g0 + i) * strips + cb];
                strip_tile(&chunk, zq + ((size_t)g0 * nb + c0) * CK_QK, zd + (size_t)g0 * nb + c0, rows, last ? bias : NULL,
                           dx + (size_t)g0 * k + CK_QK * cb, k, cols);
            }
        }
    }
}

void ck_strip_tile_scalar(const ck_strip *s, const uint8_t *zq, const float *zd, int rows, const float *bias, float *dx,
                          int ldx, int cols) {
    const int nb = s->nb, ldz = s->ldz;
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            float acc = s->accumulate ? dx[(size_t)i * ldx + j] : 0;
            for (int c = 0; c < nb; c++) {
                int32_t dot = 0;
                for (int o = c * CK_QK; o < (c + 1) * CK_QK; o++)
                    dot += s->w[(size_t)(o / 4) * 4 * CK_QK + 4 * j + o % 4] * (zq[(size_t)i * ldz * CK_QK + o] - 128);
                acc = fmaf((float)dot, zd[(size_t)i * ldz + c] * s->d[c * CK_QK + j], acc);
            }
            dx[(size_t)i * ldx + j] = bias ? acc + bias[i] : acc;
        }
    }
}

static ck_status gemm_bwd(ck_type type, const ck_parts *dy, int m, int n, const void *w, int k, float *dx, void *workspace,
                          size_t workspace_size, ck_strip_tile_fn strip_tile, ck_quantize_biased_row_fn quantize, int nt) {
    if (ck_format_of(type) < 0) return CK_ERR_UNSUPPORTED;
    if (m < 0 || k < 0 || n < 0) return CK_ERR_SHAPE;
    if (m == 0 || k == 0) return CK_OK;
    if (!w || !dx) return CK_ERR_NULL;
    const ck_status status = ck_parts_check(dy, n);
    if (status != CK_OK) return status;
    const size_t shared = shared_bytes(m, n, k);
    if (!workspace || workspace_size < shared + (size_t)nt * thread_bytes(n)) return CK_ERR_WORKSPACE;
    const int strips = ck_q8_blocks_per_row(k);
    const int stride = mins_stride(k);
    const int nb = ck_div_up(n, CK_QK);
    float *mins = workspace, *biases = (float *)((char *)workspace + align64((size_t)n * stride * sizeof(float)));
    uint8_t *zq = (uint8_t *)biases + align64((size_t)m * strips * sizeof(float));
    float *zd = (float *)(zq + align64((size_t)m * nb * CK_QK));
    char *scratch = (char *)workspace + shared;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && (long)m * n >= (1L << 16))
    for (int i = 0; i < m; i++)  // a part at a time, whole blocks each: the bits of the joined row
        for (int p = 0, start = 0; p < dy->count; start += dy->cols[p++])
            if (dy->cols[p] > 0)
                quantize(dy->data[p] + (size_t)i * dy->cols[p], dy->cols[p], zq + ((size_t)i * nb + start / CK_QK) * CK_QK,
                         zd + (size_t)i * nb + start / CK_QK);
    if (type == CK_TYPE_Q4_1 || type == CK_TYPE_Q4_K) {
        const int panels = ck_q8_panels(n);
#pragma omp parallel num_threads(nt) if (nt > 1 && (long)n * strips >= (1L << 14))
        {
            int64_t lo, hi;
            ck_team_share(panels, &lo, &hi);
            gather_mins(type, w, (int)lo, (int)hi, n, strips, stride, mins);
        }
        // a chunk of the minimums (256 KB) stays in L2 for every row group of the thread's
        // share; a head's 49152 outputs were 6 MB of them read again for every 8 rows
        const int groups = ck_div_up(m, BIAS_ROWS);
#pragma omp parallel num_threads(nt) if (nt > 1 && (long)m * n * strips >= (1L << 18))
        {
            int64_t lo, hi;
            ck_team_share(groups, &lo, &hi);
            for (int o0 = 0; o0 < n; o0 += BIAS_CHUNK)
                for (int64_t g = lo; g < hi; g++) {
                    const int i = (int)g * BIAS_ROWS, rows = m - i < BIAS_ROWS ? m - i : BIAS_ROWS;
                    const int o1 = o0 + BIAS_CHUNK < n ? o0 + BIAS_CHUNK : n;
                    bias_rows(dy, i, rows, o0, o1, mins, strips, stride, biases + (size_t)i * strips);
                }
        }
    }
    // Strip groups of up to STRIPS, as many as a multiple of the threads and as even as can be
    // (K = 576 is 18 strips: 6 groups of 3, not 4 + 4 + 4 against 4 + 2); rows split only when
    // there are fewer groups than 2 per thread.
    const int even = ck_div_up(ck_div_up(strips, STRIPS), nt) * nt, groups = even < strips ? even : strips;
    const int row_parts = groups >= 2 * nt ? 1 : ck_div_up(2 * nt, groups);
    const int rows_per = ck_div_up(ck_div_up(m, row_parts), 4) * 4;
    // The jobs go to the threads as they finish the last (ck_next_job).
    const int parts = ck_div_up(m, rows_per), jobs = groups * parts;
    atomic_int next = 0;
#pragma omp parallel num_threads(nt) if (nt > 1 && jobs > 1 && (long)m * n * k >= (1L << 18))
    {
        int rank, team;
        ck_team(&rank, &team);
        for (int j; (j = ck_next_job(&next)) < jobs;) {
            const int g = j / parts, i0 = (j % parts) * rows_per, i1 = i0 + rows_per < m ? i0 + rows_per : m;
            const int cb0 = (int)((int64_t)strips * g / groups), count = (int)((int64_t)strips * (g + 1) / groups) - cb0;
            strip_rows(type, i0, i1, n, w, k, cb0, count, zq, zd, dx, biases, scratch + (size_t)rank * thread_bytes(n),
                       strip_tile);
        }
    }
    return CK_OK;
}

ck_status ck_gemm_bwd_parts(ck_type type, const ck_parts *dy, int m, int n, const void *w, int k, float *dx,
                            void *workspace, size_t workspace_size) {
    ck_init();
    return gemm_bwd(type, dy, m, n, w, k, dx, workspace, workspace_size, ck_dispatch()->strip_tile, ck_dispatch()->quantize_biased_row,
                    ck_threads());
}

ck_status ck_gemm_bwd(ck_type type, const float *dy, int m, int n, const void *w, int k, float *dx, void *workspace,
                      size_t workspace_size) {
    float *const parts[1] = {(float *)dy};
    const ck_parts one = {1, &n, parts};
    return ck_gemm_bwd_parts(type, &one, m, n, w, k, dx, workspace, workspace_size);
}

void ck_gemm_bwd_ref(ck_type type, const float *dy, int m, int n, const void *w, int k, float *dx) {
    const size_t bytes = shared_bytes(m, n, k) + thread_bytes(n);
    char work[bytes + 64];
    void *aligned = (void *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    float *const parts[1] = {(float *)dy};
    const ck_parts one = {1, &n, parts};
    gemm_bwd(type, &one, m, n, w, k, dx, aligned, bytes, ck_strip_tile_scalar, ck_quantize_biased_row_scalar, 1);
}
