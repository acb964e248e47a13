// AVX2 path: no VNNI, so signed x signed int8 dots use llama.cpp's sign trick
// (|w| as unsigned, x with w's sign, VPMADDUBSW then VPMADDWD); |q| <= 127 keeps the
// int16 pair sums below saturation.
#include <immintrin.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_quant.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

// MR rows x one panel (16 columns as two ymm halves): 16 ymm registers bound the tile.
TARGET INLINE void tile(const ck_act_q8 *x, int i0, const int MR, const ck_panel_block *w, int p, int b0, int b1,
                        int n, float *y, int ldy) {
    const int kb = x->kb;
    const ck_panel_block *pw = w + (size_t)p * kb;
    const __m256i offset = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    const int col = p * CK_PANEL, valid = n - col < CK_PANEL ? n - col : CK_PANEL;
    __m256 acc[2][2];
    for (int i = 0; i < MR; i++) {
        float start[CK_PANEL] = {0};
        if (b0 > 0) memcpy(start, y + (size_t)(i0 + i) * ldy + col, (size_t)valid * sizeof(float));
        acc[i][0] = _mm256_loadu_ps(start);
        acc[i][1] = _mm256_loadu_ps(start + 8);
    }
    for (int b = b0; b < b1; b++) {
        __m256i dot[2][2];
        for (int i = 0; i < MR; i++) dot[i][0] = dot[i][1] = _mm256_setzero_si256();
        for (int g = 0; g < CK_QK / 4; g++) {
            __m256i wabs[2], wsgn[2];
            for (int h = 0; h < 2; h++) {
                // stored w+128 -> signed w is a flip of the top bit
                wsgn[h] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)pw[b].q[g][8 * h]), offset);
                wabs[h] = _mm256_abs_epi8(wsgn[h]);
            }
            for (int i = 0; i < MR; i++) {
                int32_t four;
                memcpy(&four, x->q + (size_t)(i0 + i) * kb * CK_QK + b * CK_QK + g * 4, 4);
                const __m256i xv = _mm256_set1_epi32(four);
                for (int h = 0; h < 2; h++) {
                    const __m256i p16 = _mm256_maddubs_epi16(wabs[h], _mm256_sign_epi8(xv, wsgn[h]));
                    dot[i][h] = _mm256_add_epi32(dot[i][h], _mm256_madd_epi16(p16, ones));
                }
            }
        }
        for (int h = 0; h < 2; h++) {
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(pw[b].d + 8 * h)));
            for (int i = 0; i < MR; i++) {
                const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(x->d[(size_t)(i0 + i) * kb + b]));
                acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[i][h]), scale, acc[i][h]);
            }
        }
    }
    for (int i = 0; i < MR; i++) {
        float out[CK_PANEL];
        _mm256_storeu_ps(out, acc[i][0]);
        _mm256_storeu_ps(out + 8, acc[i][1]);
        memcpy(y + (size_t)(i0 + i) * ldy + col, out, (size_t)valid * sizeof(float));
    }
}

TARGET void ck_q8_tile_avx2(const ck_act_q8 *x, int m0, int m1, const ck_panel_block *w, int p0, int p1, int b0,
                            int b1, int n, float *y, int ldy) {
    for (int p = p0; p < p1; p++) {
        int i = m0;
        for (; i + 2 <= m1; i += 2) tile(x, i, 2, w, p, b0, b1, n, y, ldy);
        if (i < m1) tile(x, i, 1, w, p, b0, b1, n, y, ldy);
    }
}

TARGET void ck_quantize_act_row_avx2(const float *x, int k, int8_t *q, float *d, int32_t *s) {
    const int kb = ck_q8_blocks_per_row(k);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int b = 0; b < kb; b++) {
        const int len = k - b * CK_QK < CK_QK ? k - b * CK_QK : CK_QK;
        float v[CK_QK] = {0};
        memcpy(v, x + b * CK_QK, (size_t)len * sizeof(float));
        __m256 vx[4], mx = _mm256_setzero_ps();
        for (int h = 0; h < 4; h++) {
            vx[h] = _mm256_loadu_ps(v + 8 * h);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, vx[h]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float scale = _mm_cvtss_f32(m4) / 127.0f;
        const __m256 inv = _mm256_set1_ps(scale ? 1.0f / scale : 0.0f);
        int32_t ints[CK_QK], sum = 0;
        for (int h = 0; h < 4; h++)
            _mm256_storeu_si256((__m256i *)(ints + 8 * h), _mm256_cvtps_epi32(_mm256_mul_ps(vx[h], inv)));
        for (int j = 0; j < CK_QK; j++) {
            q[b * CK_QK + j] = (int8_t)ints[j];
            sum += ints[j];
        }
        d[b] = scale;
        s[b] = -128 * sum;
    }
}
