// AVX-512 VNNI path: int8 x int8 block dots with VPDPBUSD (u8 weights x s8 activations).
#include <immintrin.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_quant.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))
#define INLINE static inline __attribute__((always_inline))

// One register tile: MR rows of X x NV panels (16 columns each). MR*NV int32 dot chains
// run per K block; with MR=4, NV=2 that is 8 independent VPDPBUSD chains, enough to
// cover its latency on two ports. Constant MR/NV after inlining keep everything in zmm.
TARGET INLINE void tile(const ck_act_q8 *x, int i0, const int MR, const ck_panel_block *w, int p,
                        const int NV, int b0, int b1, int n, float *y, int ldy) {
    const int kb = x->kb;
    const int8_t *xq[4];
    const float *xd[4];
    const int32_t *xs[4];
    for (int i = 0; i < MR; i++) {
        xq[i] = x->q + (size_t)(i0 + i) * kb * CK_QK;
        xd[i] = x->d + (size_t)(i0 + i) * kb;
        xs[i] = x->s + (size_t)(i0 + i) * kb;
    }
    const ck_panel_block *pw[2] = {w + (size_t)p * kb, w + (size_t)(p + 1) * kb};
    __mmask16 mask[2];
    for (int v = 0; v < NV; v++) {
        const int valid = n - (p + v) * CK_PANEL;
        mask[v] = (__mmask16)(valid >= CK_PANEL ? 0xFFFF : (1u << valid) - 1);
    }
    __m512 acc[4][2];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++)
            acc[i][v] = b0 > 0 ? _mm512_maskz_loadu_ps(mask[v], y + (size_t)(i0 + i) * ldy + (p + v) * CK_PANEL)
                               : _mm512_setzero_ps();

    for (int b = b0; b < b1; b++) {
        __m512i dot[4][2];
        for (int i = 0; i < MR; i++) {
            // starting from -128*sum(x) cancels the +128 offset of the stored weights
            const __m512i start = _mm512_set1_epi32(xs[i][b]);
            for (int v = 0; v < NV; v++) dot[i][v] = start;
        }
        for (int g = 0; g < CK_QK / 4; g++) {
            __m512i wv[2];
            for (int v = 0; v < NV; v++) wv[v] = _mm512_loadu_si512((const void *)pw[v][b].q[g]);
            for (int i = 0; i < MR; i++) {
                int32_t four;
                memcpy(&four, xq[i] + b * CK_QK + g * 4, 4);
                const __m512i xv = _mm512_set1_epi32(four);
                for (int v = 0; v < NV; v++) dot[i][v] = _mm512_dpbusd_epi32(dot[i][v], wv[v], xv);
            }
        }
        for (int v = 0; v < NV; v++) {
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)pw[v][b].d));
            for (int i = 0; i < MR; i++) {
                const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(xd[i][b]));
                acc[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i][v]), scale, acc[i][v]);
            }
        }
    }
    for (int v = 0; v < NV; v++)
        for (int i = 0; i < MR; i++)
            _mm512_mask_storeu_ps(y + (size_t)(i0 + i) * ldy + (p + v) * CK_PANEL, mask[v], acc[i][v]);
}

TARGET INLINE void rows_tail(const ck_act_q8 *x, int i, int rows, const ck_panel_block *w, int p, const int NV,
                             int b0, int b1, int n, float *y, int ldy) {
    switch (rows) {
    case 3: tile(x, i, 3, w, p, NV, b0, b1, n, y, ldy); break;
    case 2: tile(x, i, 2, w, p, NV, b0, b1, n, y, ldy); break;
    case 1: tile(x, i, 1, w, p, NV, b0, b1, n, y, ldy); break;
    }
}

TARGET void ck_q8_tile_avx512_vnni(const ck_act_q8 *x, int m0, int m1, const ck_panel_block *w, int p0, int p1,
                                   int b0, int b1, int n, float *y, int ldy) {
    for (int p = p0; p < p1; p += 2) {
        int i = m0;
        if (p + 1 < p1) {
            for (; i + 4 <= m1; i += 4) tile(x, i, 4, w, p, 2, b0, b1, n, y, ldy);
            rows_tail(x, i, m1 - i, w, p, 2, b0, b1, n, y, ldy);
        } else {
            for (; i + 4 <= m1; i += 4) tile(x, i, 4, w, p, 1, b0, b1, n, y, ldy);
            rows_tail(x, i, m1 - i, w, p, 1, b0, b1, n, y, ldy);
        }
    }
}

TARGET void ck_quantize_act_row_avx512(const float *x, int k, int8_t *q, float *d, int32_t *s) {
    const int kb = ck_q8_blocks_per_row(k);
    for (int b = 0; b < kb; b++) {
        const int len = k - b * CK_QK < CK_QK ? k - b * CK_QK : CK_QK;
        const __mmask16 lo = (__mmask16)(len >= 16 ? 0xFFFF : (1u << len) - 1);
        const __mmask16 hi = (__mmask16)(len >= 32 ? 0xFFFF : len > 16 ? (1u << (len - 16)) - 1 : 0);
        const __m512 v0 = _mm512_maskz_loadu_ps(lo, x + b * CK_QK);
        const __m512 v1 = _mm512_maskz_loadu_ps(hi, x + b * CK_QK + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float scale = amax / 127.0f;
        const __m512 inv = _mm512_set1_ps(scale ? 1.0f / scale : 0.0f);
        const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inv));
        const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inv));
        _mm_storeu_si128((__m128i *)(q + b * CK_QK), _mm512_cvtsepi32_epi8(i0));
        _mm_storeu_si128((__m128i *)(q + b * CK_QK + 16), _mm512_cvtsepi32_epi8(i1));
        d[b] = scale;
        s[b] = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
    }
}
