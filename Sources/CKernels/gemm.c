// Fused int8 GEMM/GEMV driver over the packed panels of every format, the scalar path
// (the meaning of the SIMD ones, which must match it bit for bit), the exact-f32 paths
// and the plain references the fast kernels are tested against.
#include <math.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_quant.h"

#define M_CHUNK 64       // rows of X per job: X's int8 tile stays in L2 across panels
#define K_CHUNK 24       // K blocks of 32 per pass (3 K-quant super-blocks): the tile stays in L1
#define F32_CHUNK 64     // weight rows (or columns) dequantized per step of the f32 paths
#define DECODE_RUNS 8    // runs of panels per thread a decoding product is cut into
#define PARALLEL_MIN_MACS (1L << 18)  // below this an OpenMP fork costs more than it saves

static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

int ck_format_of(int type) {
    switch (type) {
    case CK_TYPE_Q8_0: return CK_F_Q8_0;
    case CK_TYPE_Q4_0: return CK_F_Q4_0;
    case CK_TYPE_Q4_1: return CK_F_Q4_1;
    case CK_TYPE_Q4_K: return CK_F_Q4_K;
    case CK_TYPE_Q6_K: return CK_F_Q6_K;
    default: return -1;
    }
}

// Quantized activations [m][kb] in one workspace: q, then d, sum, sum_lo and sd.
size_t ck_act_q8_bytes(int m, int kb) {
    return align64((size_t)m * kb * CK_QK) + 4 * align64((size_t)m * kb * sizeof(float));
}

ck_act_q8 ck_act_q8_in(void *workspace, int m, int kb) {
    char *ws = workspace;
    const size_t q = align64((size_t)m * kb * CK_QK), v = align64((size_t)m * kb * sizeof(float));
    return (ck_act_q8){(int8_t *)ws, (float *)(ws + q), (int32_t *)(ws + q + v), (int32_t *)(ws + q + 2 * v),
                       (float *)(ws + q + 3 * v), kb};
}

size_t ck_gemm_workspace_size(int m, int k, ck_act_mode mode) {
    if (m < 0 || k < 0) return 0;
    const int kb = ck_q8_blocks_per_row(k);
    // the f32 path dequantizes whole K-quant super-blocks
    if (mode == CK_ACT_F32) return (size_t)ck_threads() * F32_CHUNK * ((size_t)ck_div_up(k, CK_QK_K) * CK_QK_K) * sizeof(float);
    // decoding a few rows: a copy of the quantized X for each thread
    if (m <= CK_STREAM_ROWS) return (size_t)ck_threads() * ck_act_q8_bytes(m, kb);
    return ck_act_q8_bytes(m, kb);
}

size_t ck_gemm_bwd_f32_workspace_size(int n) {
    return (size_t)ck_threads() * (size_t)(n > 0 ? n : 0) * F32_CHUNK * sizeof(float);
}

// Block b of a row (x[j]·scale_by[j] when scale_by is not NULL) quantized into q[0..31],
// zero-padded: the int8 path's rounding (gemm_bwd.c's requantize_strip applies the same
// rule to a strip's weights in their transposed layout). Returns the block's scale.
static inline float quantize_block(const float *x, const float *scale_by, int k, int b, int8_t *q) {
    const int len = k - b * CK_QK < CK_QK ? k - b * CK_QK : CK_QK;
    float xb[CK_QK];
    for (int j = 0; j < len; j++) xb[j] = scale_by ? x[b * CK_QK + j] * scale_by[b * CK_QK + j] : x[b * CK_QK + j];
    float amax = 0;
    for (int j = 0; j < len; j++) amax = fmaxf(amax, fabsf(xb[j]));
    const float scale = amax / 127.0f;
    const float inv = scale ? 1.0f / scale : 0.0f;
    // nearbyintf rounds half to even, like the SIMD paths' cvtps2dq
    for (int j = 0; j < CK_QK; j++) q[j] = j < len ? (int8_t)nearbyintf(xb[j] * inv) : 0;
    return scale;
}

void ck_quantize_act_row_scalar(const float *x, const float *scale_by, int k, int8_t *q, float *d, int32_t *sum,
                                int32_t *sum_lo) {
    const int kb = ck_q8_blocks_per_row(k);
    for (int b = 0; b < kb; b++) {
        d[b] = quantize_block(x, scale_by, k, b, q + b * CK_QK);
        int32_t total = 0, lo = 0;
        for (int j = 0; j < CK_QK; j++) {
            total += q[b * CK_QK + j];
            lo += j < CK_QK / 2 ? q[b * CK_QK + j] : 0;
        }
        sum[b] = total;
        sum_lo[b] = lo;
    }
}

void ck_quantize_biased_row_scalar(const float *x, int k, uint8_t *q, float *d) {
    const int kb = ck_q8_blocks_per_row(k);
    for (int b = 0; b < kb; b++) {
        int8_t v[CK_QK];
        d[b] = quantize_block(x, NULL, k, b, v);
        for (int j = 0; j < CK_QK; j++) q[b * CK_QK + j] = (uint8_t)(v[j] + 128);
    }
}

void ck_quantize_act_ref(const float *x, int m, int k, int8_t *q, float *d) {
    const int kb = ck_q8_blocks_per_row(k);
    int32_t s[kb > 0 ? kb : 1], lo[kb > 0 ? kb : 1];
    for (int i = 0; i < m; i++)
        ck_quantize_act_row_scalar(x + (size_t)i * k, NULL, k, q + (size_t)i * kb * CK_QK, d + (size_t)i * kb, s, lo);
}

// Row r's integer dot with x block b over the weights u[j] of one block of 32 (u unsigned,
// as the panels hold them): sum_j u[j]·x[j] for j in [j0, j1).
static inline int32_t udot(const uint8_t *u, const int8_t *x, int j0, int j1) {
    int32_t dot = 0;
    for (int j = j0; j < j1; j++) dot += u[j] * x[j];
    return dot;
}

// The float update one x block brings to output row r of panel `panel` (its first block):
// the order of operations every path follows.
static inline float block_update(ck_format f, const void *panel, int b, int r, const int8_t *x, float xd, int32_t sum,
                                 int32_t sum_lo, float sd, float acc) {
    uint8_t u[CK_QK];
    switch (f) {
    case CK_F_Q8_0: {
        const ck_panel_block *p = (const ck_panel_block *)panel + b;
        for (int j = 0; j < CK_QK; j++) u[j] = p->q[j / 4][r][j % 4];
        return fmaf((float)(udot(u, x, 0, CK_QK) - 128 * sum), ck_half_to_float_inline(p->d[r]) * xd, acc);
    }
    case CK_F_Q4_0: {
        const ck_panel_q4_0 *p = (const ck_panel_q4_0 *)panel + b;
        for (int j = 0; j < CK_QK / 2; j++) {
            u[j] = p->qs[j / 4][r][j % 4] & 0x0F;
            u[j + 16] = p->qs[j / 4][r][j % 4] >> 4;
        }
        return fmaf((float)(udot(u, x, 0, CK_QK) - 8 * sum), ck_half_to_float_inline(p->d[r]) * xd, acc);
    }
    case CK_F_Q4_1: {
        const ck_panel_q4_1 *p = (const ck_panel_q4_1 *)panel + b;
        for (int j = 0; j < CK_QK / 2; j++) {
            u[j] = p->qs[j / 4][r][j % 4] & 0x0F;
            u[j + 16] = p->qs[j / 4][r][j % 4] >> 4;
        }
        acc = fmaf((float)udot(u, x, 0, CK_QK), ck_half_to_float_inline(p->d[r]) * xd, acc);
        return fmaf(sd, ck_half_to_float_inline(p->m[r]), acc);
    }
    case CK_F_Q4_K: {
        const ck_panel_q4_k *p = (const ck_panel_q4_k *)panel + b / 8;
        const int s = b % 8, c = s / 2;
        for (int j = 0; j < CK_QK; j++) {
            const uint8_t q = p->qs[c][j / 4][r][j % 4];
            u[j] = s & 1 ? q >> 4 : q & 0x0F;
        }
        // the sub-block scale and minimum as floats: no 32-bit integer multiply per output
        acc = fmaf((float)udot(u, x, 0, CK_QK), (float)p->sc[s][r] * ck_half_to_float_inline(p->d[r]) * xd, acc);
        return fmaf(-(float)p->m[s][r], ck_half_to_float_inline(p->dmin[r]) * sd, acc);
    }
    case CK_F_Q6_K: {
        const ck_panel_q6_k *p = (const ck_panel_q6_k *)panel + b / 8;
        const int s = b % 8, h = s / 4, jj = s % 4;
        for (int j = 0; j < CK_QK; j++) {
            const uint8_t ql = p->ql[h][jj & 1][j / 4][r][j % 4], qh = p->qh[h][j / 4][r][j % 4];
            u[j] = (uint8_t)((jj < 2 ? ql & 0x0F : ql >> 4) | ((qh >> (2 * jj)) & 3) << 4);
        }
        const int32_t lo = udot(u, x, 0, 16) - 32 * sum_lo, hi = udot(u, x, 16, CK_QK) - 32 * (sum - sum_lo);
        return fmaf((float)(p->sc[2 * s][r] * lo + p->sc[2 * s + 1][r] * hi), ck_half_to_float_inline(p->d[r]) * xd, acc);
    }
    default: return acc;
    }
}

static void scalar_tile(ck_format f, const ck_act_q8 *x, int m0, int m1, const void *w, int p0, int p1, int b0,
                        int b1, int n, float *y, int ldy) {
    const int kb = x->kb;
    const size_t panel_bytes = ck_format_panel_bytes(f, kb);
    for (int i = m0; i < m1; i++) {
        const int8_t *xq = x->q + (size_t)i * kb * CK_QK;
        const float *xd = x->d + (size_t)i * kb;
        const int32_t *sum = x->sum + (size_t)i * kb, *sum_lo = x->sum_lo + (size_t)i * kb;
        const float *sd = x->sd + (size_t)i * kb;
        for (int p = p0; p < p1; p++) {
            const char *panel = (const char *)w + (size_t)p * panel_bytes;
            for (int r = 0; r < CK_PANEL && p * CK_PANEL + r < n; r++) {
                float *out = &y[(size_t)i * ldy + p * CK_PANEL + r];
                float acc = b0 > 0 ? *out : 0.0f;
                for (int b = b0; b < b1; b++) acc = block_update(f, panel, b, r, xq + b * CK_QK, xd[b], sum[b], sum_lo[b], sd[b], acc);
                *out = acc;
            }
        }
    }
}

#define SCALAR_TILE(name, format)                                                                          \
    void ck_tile_##name##_scalar(const ck_act_q8 *x, int m0, int m1, const void *w, int p0, int p1, int b0, \
                                 int b1, int n, float *y, int ldy) {                                       \
        scalar_tile(format, x, m0, m1, w, p0, p1, b0, b1, n, y, ldy);                                      \
    }
SCALAR_TILE(q8_0, CK_F_Q8_0)
SCALAR_TILE(q4_0, CK_F_Q4_0)
SCALAR_TILE(q4_1, CK_F_Q4_1)
SCALAR_TILE(q4_k, CK_F_Q4_K)
SCALAR_TILE(q6_k, CK_F_Q6_K)

static ck_status gemm_f32(ck_type type, const float *x, int m, int k, const void *w, int n, float *y, float *work) {
    const int chunks = ck_div_up(n, F32_CHUNK), nt = ck_threads();
#pragma omp parallel for schedule(static) num_threads(nt) if (chunks > 1)
    for (int c = 0; c < chunks; c++) {
        float *tile = work + (size_t)thread_id() * F32_CHUNK * k;  // [rows, k]
        const int row0 = c * F32_CHUNK, rows = n - row0 < F32_CHUNK ? n - row0 : F32_CHUNK;
        ck_packed_dequantize(type, w, n, k, row0, rows, 0, k, tile, k);
        ck_sgemm_serial(0, 1, m, rows, k, 1.0f, x, k, tile, k, 0.0f, y + row0, n);
    }
    return CK_OK;
}

// Rows [i0, i1) of X [.., k] (in parts) quantized into their places in a: a part at a time,
// whole blocks each, so the bits are those of the joined row.
static void quantize_rows(ck_quantize_act_row_fn quantize, const ck_parts *x, int i0, int i1, const ck_act_q8 *a) {
    const size_t kb = (size_t)a->kb;
    for (size_t i = (size_t)i0; i < (size_t)i1; i++) {
        for (int p = 0, start = 0; p < x->count; start += x->cols[p++]) {
            const size_t b = i * kb + (size_t)start / CK_QK;
            if (x->cols[p] > 0)
                quantize(x->data[p] + i * x->cols[p], NULL, x->cols[p], (int8_t *)a->q + b * CK_QK, (float *)a->d + b,
                         (int32_t *)a->sum + b, (int32_t *)a->sum_lo + b);
        }
        for (size_t b = i * kb; b < (i + 1) * kb; b++) ((float *)a->sd)[b] = (float)a->sum[b] * a->d[b];
    }
}

// The tile over panels [p0, p1) of a product whose Y is in parts: once per part the panels
// fall in, each part's panels counted from its own first.
static void tile_parts(ck_tile_fn tile, const ck_act_q8 *x, int m0, int m1, const void *w, size_t panel_bytes, int p0,
                       int p1, int b0, int b1, const ck_parts *y) {
    for (int q = 0, first = 0; q < y->count && first < p1; first += ck_q8_panels(y->cols[q++])) {
        const int panels = ck_q8_panels(y->cols[q]), lo = p0 > first ? p0 : first, hi = p1 < first + panels ? p1 : first + panels;
        if (lo < hi)
            tile(x, m0, m1, (const char *)w + (size_t)first * panel_bytes, lo - first, hi - first, b0, b1, y->cols[q], y->data[q],
                 y->cols[q]);
    }
}

ck_status ck_gemm(ck_type type, const float *x, int m, int k, const void *w, int n, float *y, ck_act_mode mode,
                  void *workspace, size_t workspace_size) {
    float *const xs[1] = {(float *)x}, *const ys[1] = {y};
    const ck_parts xp = {1, &k, xs}, yp = {1, &n, ys};
    return ck_gemm_parts(type, &xp, m, k, w, n, &yp, mode, workspace, workspace_size);
}

ck_status ck_gemm_parts(ck_type type, const ck_parts *xp, int m, int k, const void *w, int n, const ck_parts *yp,
                        ck_act_mode mode, void *workspace, size_t workspace_size) {
    ck_init();
    const int format = ck_format_of(type);
    if (format < 0) return CK_ERR_UNSUPPORTED;
    if (m < 0 || k < 0 || n < 0) return CK_ERR_SHAPE;
    if (m == 0 || n == 0) return CK_OK;
    if (!w) return CK_ERR_NULL;
    ck_status status = ck_parts_check(xp, k);
    if (status == CK_OK) status = ck_parts_check(yp, n);
    if (status != CK_OK) return status;
    const size_t need = ck_gemm_workspace_size(m, k, mode);
    if (need && (!workspace || workspace_size < need)) return CK_ERR_WORKSPACE;
    if (mode == CK_ACT_F32) {
        if (xp->count > 1 || yp->count > 1) return CK_ERR_UNSUPPORTED;
        return gemm_f32(type, xp->data[0], m, k, w, n, yp->data[0], workspace);
    }

    const int kb = ck_q8_blocks_per_row(k), nt = ck_threads();
    const int parallel = (long)m * n * k >= PARALLEL_MIN_MACS && nt > 1;
    const ck_tile_fn tile = ck_dispatch()->tile[format];
    const ck_quantize_act_row_fn quantize = ck_dispatch()->quantize_act_row;
    const size_t panel_bytes = ck_format_panel_bytes((ck_format)format, kb);
    const int panels = ck_q8_panels(n);
    if (m <= M_CHUNK) {
        // Decoding, one sequence or a batch: X's int8 rows stay in L1, so nothing is gained by
        // K chunks; the threads take runs of panels as they finish the last (memory serves
        // the two cores unevenly, so equal halves leave one waiting) and stream each run from
        // memory once, front to back. Up to CK_STREAM_ROWS rows of X, memory is the bound and a
        // run goes one panel at a time: a tile over two panels reads two streams at once, and
        // with short rows (K = 576: 5 KB a panel) the prefetchers would meet a new stream
        // every other panel (SmolLM2's products ran 25% slower that way); with more rows the
        // dot products are the bound and two panels share each broadcast of X.
        // Up to CK_STREAM_ROWS rows each thread also quantizes all of X (m·K values against the
        // product's m·K·N) into its own copy: no barrier, so a thread that joins late only
        // takes fewer runs; with more rows the threads share the rows of one copy.
        const int few = m <= CK_STREAM_ROWS;
        const int run = 2 * ck_div_up(panels, 2 * DECODE_RUNS * nt), runs = ck_div_up(panels, run);
        const size_t copy = ck_act_q8_bytes(m, kb);
        atomic_int next = 0;
#pragma omp parallel num_threads(nt) if (parallel)
        {
            const ck_act_q8 act = ck_act_q8_in((char *)workspace + (few ? (size_t)thread_id() * copy : 0), m, kb);
            if (few) {
                quantize_rows(quantize, xp, 0, m, &act);
            } else {
                int64_t lo, hi;
                ck_team_share(m, &lo, &hi);
                quantize_rows(quantize, xp, (int)lo, (int)hi, &act);
#pragma omp barrier
            }
            for (int r; (r = ck_next_job(&next)) < runs;) {
                const int p1 = (r + 1) * run < panels ? (r + 1) * run : panels;
                if (!few) tile_parts(tile, &act, 0, m, w, panel_bytes, r * run, p1, 0, kb, yp);
                else
                    for (int p = r * run; p < p1; p++) tile_parts(tile, &act, 0, m, w, panel_bytes, p, p + 1, 0, kb, yp);
            }
        }
        return CK_OK;
    }

    // Many rows: groups of up to 8 panels, each thread keeping its weight slice hot in L2, and
    // as many groups for each thread: groups of 8 cut SmolLM2's 36 panels into 6 and its 12
    // into 2. The jobs (a group against a run of rows, a group's runs in a row) go to the
    // threads as they finish the last (ck_next_job).
    const ck_act_q8 act = ck_act_q8_in(workspace, m, kb);
    const int per_thread = ck_div_up(panels, 8 * nt);
    const int group = 2 * ck_div_up(panels, 2 * per_thread * nt);  // even: the tile takes panels in pairs
    const int groups = ck_div_up(panels, group), mchunks = ck_div_up(m, M_CHUNK);
    const int jobs = groups * mchunks;
    atomic_int next = 0;
#pragma omp parallel num_threads(nt) if (parallel)
    {
        int64_t lo, hi;
        ck_team_share(m, &lo, &hi);
        quantize_rows(quantize, xp, (int)lo, (int)hi, &act);
#pragma omp barrier
        for (int j; (j = ck_next_job(&next)) < jobs;) {
            const int g = j / mchunks, mc = j % mchunks;
            const int p0 = g * group, p1 = p0 + group < panels ? p0 + group : panels;
            const int m0 = mc * M_CHUNK, m1 = m0 + M_CHUNK < m ? m0 + M_CHUNK : m;
            for (int b0 = 0; b0 < kb; b0 += K_CHUNK)
                tile_parts(tile, &act, m0, m1, w, panel_bytes, p0, p1, b0, b0 + K_CHUNK < kb ? b0 + K_CHUNK : kb, yp);
        }
    }
    return CK_OK;
}

ck_status ck_gemm_bwd_f32(ck_type type, const float *dy, int m, int n, const void *w, int k, float *dx, void *workspace,
                          size_t workspace_size) {
    ck_init();
    if (ck_format_of(type) < 0) return CK_ERR_UNSUPPORTED;
    if (m < 0 || k < 0 || n < 0) return CK_ERR_SHAPE;
    if (m == 0 || k == 0) return CK_OK;
    if (!dy || !w || !dx) return CK_ERR_NULL;
    const size_t need = ck_gemm_bwd_f32_workspace_size(n);
    if (need && (!workspace || workspace_size < need)) return CK_ERR_WORKSPACE;
    float *work = workspace;
    const int chunks = ck_div_up(k, F32_CHUNK), nt = ck_threads();
#pragma omp parallel for schedule(static) num_threads(nt) if (chunks > 1)
    for (int c = 0; c < chunks; c++) {
        float *tile = work + (size_t)thread_id() * n * F32_CHUNK;  // [n, cols]
        const int col0 = c * F32_CHUNK, cols = k - col0 < F32_CHUNK ? k - col0 : F32_CHUNK;
        ck_packed_dequantize(type, w, n, k, 0, n, col0, cols, tile, F32_CHUNK);
        ck_sgemm_serial(0, 0, m, cols, n, 1.0f, dy, n, tile, F32_CHUNK, 0.0f, dx + col0, k);
    }
    return CK_OK;
}

void ck_gemm_ref(ck_type type, const float *x, int m, int k, const void *w, int n, float *y, ck_act_mode mode) {
    const int format = ck_format_of(type);
    if (format < 0) return;
    const int kb = ck_q8_blocks_per_row(k);
    if (mode == CK_ACT_F32) {
        float wrow[k + 1];
        for (int o = 0; o < n; o++) {
            ck_packed_dequantize(type, w, n, k, o, 1, 0, k, wrow, k);
            for (int i = 0; i < m; i++) {
                double acc = 0;
                for (int j = 0; j < k; j++) acc += (double)x[(size_t)i * k + j] * wrow[j];
                y[(size_t)i * n + o] = (float)acc;
            }
        }
        return;
    }
    // The scalar path is the integer reference: same quantizer, exact int32 block dots.
    const size_t bytes = ck_act_q8_bytes(m, kb);
    char work[bytes + 64];
    void *aligned = (void *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    const ck_act_q8 act = ck_act_q8_in(aligned, m, kb);
    float *const xs[1] = {(float *)x};
    const ck_parts xp = {1, &k, xs};
    quantize_rows(ck_quantize_act_row_scalar, &xp, 0, m, &act);
    scalar_tile(format, &act, 0, m, w, 0, ck_q8_panels(n), 0, kb, n, y, n);
}
