// Fused int8 GEMM/GEMV driver over packed panels, the scalar path, the exact-f32 paths
// and the plain references the fast kernels are tested against.
#include <math.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_quant.h"

#define M_CHUNK 64       // rows of X per job: X's int8 tile stays in L2 across panels
#define K_CHUNK 24       // K blocks per pass: a 2-panel weight tile (27 KB) stays in L1
#define F32_CHUNK 64     // weight rows (or columns) dequantized per step of the f32 paths
#define PARALLEL_MIN_MACS (1L << 18)  // below this an OpenMP fork costs more than it saves

static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static size_t act_bytes(int m, int kb) {
    return align64((size_t)m * kb * CK_QK) + 2 * align64((size_t)m * kb * sizeof(float));
}

size_t ck_gemm_q8_workspace_size(int m, int k, ck_act_mode mode) {
    if (m < 0 || k < 0) return 0;
    const int kb = ck_q8_blocks_per_row(k);
    if (mode == CK_ACT_F32) return (size_t)ck_threads() * F32_CHUNK * (size_t)kb * CK_QK * sizeof(float);
    return act_bytes(m, kb);
}

size_t ck_gemm_q8_bwd_f32_workspace_size(int n) {
    return (size_t)ck_threads() * (size_t)(n > 0 ? n : 0) * F32_CHUNK * sizeof(float);
}

void ck_quantize_act_row_scalar(const float *x, int k, int8_t *q, float *d, int32_t *s) {
    const int kb = ck_q8_blocks_per_row(k);
    for (int b = 0; b < kb; b++) {
        const int len = k - b * CK_QK < CK_QK ? k - b * CK_QK : CK_QK;
        const float *xb = x + b * CK_QK;
        float amax = 0;
        for (int j = 0; j < len; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float scale = amax / 127.0f;
        const float inv = scale ? 1.0f / scale : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < CK_QK; j++) {
            // nearbyintf rounds half to even, like the SIMD paths' cvtps2dq
            const int8_t v = j < len ? (int8_t)nearbyintf(xb[j] * inv) : 0;
            q[b * CK_QK + j] = v;
            sum += v;
        }
        d[b] = scale;
        s[b] = -128 * sum;
    }
}

void ck_quantize_act_ref(const float *x, int m, int k, int8_t *q, float *d) {
    const int kb = ck_q8_blocks_per_row(k);
    int32_t s[kb > 0 ? kb : 1];
    for (int i = 0; i < m; i++)
        ck_quantize_act_row_scalar(x + (size_t)i * k, k, q + (size_t)i * kb * CK_QK, d + (size_t)i * kb, s);
}

void ck_q8_tile_scalar(const ck_act_q8 *x, int m0, int m1, const ck_panel_block *w, int p0, int p1, int b0,
                       int b1, int n, float *y, int ldy) {
    const int kb = x->kb;
    for (int i = m0; i < m1; i++) {
        const int8_t *xq = x->q + (size_t)i * kb * CK_QK;
        const float *xd = x->d + (size_t)i * kb;
        for (int p = p0; p < p1; p++) {
            for (int r = 0; r < CK_PANEL && p * CK_PANEL + r < n; r++) {
                float *out = &y[(size_t)i * ldy + p * CK_PANEL + r];
                float acc = b0 > 0 ? *out : 0.0f;
                for (int b = b0; b < b1; b++) {
                    const ck_panel_block *blk = &w[(size_t)p * kb + b];
                    int32_t dot = 0;
                    for (int j = 0; j < CK_QK; j++)
                        dot += (blk->q[j / 4][r][j % 4] - 128) * xq[b * CK_QK + j];
                    acc = fmaf((float)dot, ck_half_to_float(blk->d[r]) * xd[b], acc);
                }
                *out = acc;
            }
        }
    }
}

static ck_status gemm_q8_f32(const float *x, int m, int k, const ck_panel_block *w, int n, float *y,
                             float *work) {
    const int chunks = ck_div_up(n, F32_CHUNK), nt = ck_threads();
#pragma omp parallel for schedule(static) num_threads(nt) if (chunks > 1)
    for (int c = 0; c < chunks; c++) {
        float *tile = work + (size_t)thread_id() * F32_CHUNK * k;  // [rows, k]
        const int row0 = c * F32_CHUNK, rows = n - row0 < F32_CHUNK ? n - row0 : F32_CHUNK;
        ck_q8_packed_dequantize(w, n, k, row0, rows, 0, k, tile, k);
        ck_sgemm_serial(0, 1, m, rows, k, 1.0f, x, k, tile, k, 0.0f, y + row0, n);
    }
    return CK_OK;
}

ck_status ck_gemm_q8(const float *x, int m, int k, const ck_panel_block *w, int n, float *y,
                     ck_act_mode mode, void *workspace, size_t workspace_size) {
    ck_init();
    if (m < 0 || k < 0 || n < 0) return CK_ERR_SHAPE;
    if (m == 0 || n == 0) return CK_OK;
    if (!x || !w || !y) return CK_ERR_NULL;
    const size_t need = ck_gemm_q8_workspace_size(m, k, mode);
    if (need && (!workspace || workspace_size < need)) return CK_ERR_WORKSPACE;
    if (mode == CK_ACT_F32) return gemm_q8_f32(x, m, k, w, n, y, workspace);

    const int kb = ck_q8_blocks_per_row(k), nt = ck_threads();
    char *ws = workspace;
    int8_t *q = (int8_t *)ws;
    float *d = (float *)(ws + align64((size_t)m * kb * CK_QK));
    int32_t *s = (int32_t *)((char *)d + align64((size_t)m * kb * sizeof(float)));
    const int parallel = (long)m * n * k >= PARALLEL_MIN_MACS && nt > 1;

    const ck_act_q8 act = {q, d, s, kb};
    const int panels = ck_q8_panels(n);
    if (m <= M_CHUNK) {
        // Decoding, one sequence or a batch: X's int8 rows stay in L1, so nothing is gained by
        // K chunks; each thread streams an equal run of panel pairs from memory once, front to
        // back, every row of X against each pair.
#pragma omp parallel num_threads(nt) if (parallel)
        {
            int64_t lo, hi;
            ck_team_share(m, &lo, &hi);
            for (int64_t i = lo; i < hi; i++)
                ck_kernels.quantize_act_row(x + i * k, k, q + i * kb * CK_QK, d + i * kb, s + i * kb);
#pragma omp barrier
            ck_team_share(ck_div_up(panels, 2), &lo, &hi);
            const int p0 = 2 * (int)lo, p1 = 2 * (int)hi < panels ? 2 * (int)hi : panels;
            if (p0 < p1) ck_kernels.q8_tile(&act, 0, m, w, p0, p1, 0, kb, n, y, n);
        }
        return CK_OK;
    }

#pragma omp parallel for schedule(static) num_threads(nt) if (parallel)
    for (int i = 0; i < m; i++)
        ck_kernels.quantize_act_row(x + (size_t)i * k, k, q + (size_t)i * kb * CK_QK, d + (size_t)i * kb,
                                    s + (size_t)i * kb);

    // Many rows: groups of 8 panels, each thread keeping its weight slice hot in L2.
    const int group = 8;
    const int groups = ck_div_up(panels, group), mchunks = ck_div_up(m, M_CHUNK);
    const int jobs = groups * mchunks;
#pragma omp parallel for schedule(static) num_threads(nt) if (parallel && jobs > 1)
    for (int j = 0; j < jobs; j++) {
        const int g = j / mchunks, mc = j % mchunks;
        const int p0 = g * group, p1 = p0 + group < panels ? p0 + group : panels;
        const int m0 = mc * M_CHUNK, m1 = m0 + M_CHUNK < m ? m0 + M_CHUNK : m;
        for (int b0 = 0; b0 < kb; b0 += K_CHUNK)
            ck_kernels.q8_tile(&act, m0, m1, w, p0, p1, b0, b0 + K_CHUNK < kb ? b0 + K_CHUNK : kb, n, y, n);
    }
    return CK_OK;
}

ck_status ck_gemm_q8_bwd_f32(const float *dy, int m, int n, const ck_panel_block *w, int k, float *dx,
                             void *workspace, size_t workspace_size) {
    ck_init();
    if (m < 0 || k < 0 || n < 0) return CK_ERR_SHAPE;
    if (m == 0 || k == 0) return CK_OK;
    if (!dy || !w || !dx) return CK_ERR_NULL;
    const size_t need = ck_gemm_q8_bwd_f32_workspace_size(n);
    if (need && (!workspace || workspace_size < need)) return CK_ERR_WORKSPACE;
    float *work = workspace;
    const int chunks = ck_div_up(k, F32_CHUNK), nt = ck_threads();
#pragma omp parallel for schedule(static) num_threads(nt) if (chunks > 1)
    for (int c = 0; c < chunks; c++) {
        float *tile = work + (size_t)thread_id() * n * F32_CHUNK;  // [n, cols]
        const int col0 = c * F32_CHUNK, cols = k - col0 < F32_CHUNK ? k - col0 : F32_CHUNK;
        ck_q8_packed_dequantize(w, n, k, 0, n, col0, cols, tile, F32_CHUNK);
        ck_sgemm_serial(0, 0, m, cols, n, 1.0f, dy, n, tile, F32_CHUNK, 0.0f, dx + col0, k);
    }
    return CK_OK;
}

void ck_gemm_q8_ref(const float *x, int m, int k, const ck_panel_block *w, int n, float *y,
                    ck_act_mode mode) {
    const int kb = ck_q8_blocks_per_row(k);
    if (mode == CK_ACT_F32) {
        float wrow[k + 1];
        for (int o = 0; o < n; o++) {
            ck_q8_packed_dequantize(w, n, k, o, 1, 0, k, wrow, k);
            for (int i = 0; i < m; i++) {
                double acc = 0;
                for (int j = 0; j < k; j++) acc += (double)x[(size_t)i * k + j] * wrow[j];
                y[(size_t)i * n + o] = (float)acc;
            }
        }
        return;
    }
    // The scalar path is the integer reference: same quantizer, exact int32 block dots.
    int8_t q[(size_t)m * kb * CK_QK + 1];
    float d[(size_t)m * kb + 1];
    int32_t s[(size_t)m * kb + 1];
    for (int i = 0; i < m; i++)
        ck_quantize_act_row_scalar(x + (size_t)i * k, k, q + (size_t)i * kb * CK_QK, d + (size_t)i * kb,
                                   s + (size_t)i * kb);
    const ck_act_q8 act = {q, d, s, kb};
    ck_q8_tile_scalar(&act, 0, m, w, 0, ck_q8_panels(n), 0, kb, n, y, n);
}
