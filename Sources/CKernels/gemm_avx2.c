// AVX2 path: no VNNI, so block dots run on VPMADDUBSW (u8 × s8 pairs into int16) then
// VPMADDWD. Nibbles and 6-bit values are small enough for that directly; int8 weights use
// llama.cpp's sign trick (|w| as unsigned, x with w's sign), and |q| <= 127 keeps the int16
// pair sums below saturation. Bit-identical to the scalar path in gemm.c.
#include <immintrin.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_quant.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

// Group g of x block b for rows 8h..8h+7 of a panel: unsigned bytes (Q8_0: signed w).
TARGET INLINE __m256i weights(const ck_format f, const char *panel, int b, int g, int h) {
    const __m256i nib = _mm256_set1_epi8(0x0F);
    switch (f) {
    case CK_F_Q8_0:
        // stored w+128 -> signed w is a flip of the top bit
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)((const ck_panel_block *)panel)[b].q[g][8 * h]),
                                _mm256_set1_epi8((char)0x80));
    case CK_F_Q4_0:
    case CK_F_Q4_1: {
        const uint8_t *qs = f == CK_F_Q4_0 ? ((const ck_panel_q4_0 *)panel)[b].qs[g & 3][8 * h]
                                           : ((const ck_panel_q4_1 *)panel)[b].qs[g & 3][8 * h];
        const __m256i v = _mm256_loadu_si256((const __m256i *)qs);
        return g < 4 ? _mm256_and_si256(v, nib) : _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
    }
    case CK_F_Q4_K: {
        const ck_panel_q4_k *p = (const ck_panel_q4_k *)panel + b / 8;
        const int s = b % 8;
        const __m256i v = _mm256_loadu_si256((const __m256i *)p->qs[s / 2][g][8 * h]);
        return s & 1 ? _mm256_and_si256(_mm256_srli_epi16(v, 4), nib) : _mm256_and_si256(v, nib);
    }
    default: {
        const ck_panel_q6_k *p = (const ck_panel_q6_k *)panel + b / 8;
        const int s = b % 8, hh = s / 4, j = s % 4;
        const __m256i vl = _mm256_loadu_si256((const __m256i *)p->ql[hh][j & 1][g][8 * h]);
        const __m256i vh = _mm256_loadu_si256((const __m256i *)p->qh[hh][g][8 * h]);
        const __m256i lo = j < 2 ? _mm256_and_si256(vl, nib) : _mm256_and_si256(_mm256_srli_epi16(vl, 4), nib);
        const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(vh, _mm_cvtsi32_si128(2 * j)), _mm256_set1_epi8(3));
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    }
    }
}

// Pair sums w·x of adjacent bytes as int16 (w unsigned, or signed for Q8_0).
TARGET INLINE __m256i pairs(const ck_format f, __m256i w, __m256i x) {
    return f == CK_F_Q8_0 ? _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w)) : _mm256_maddubs_epi16(w, x);
}

// int16 pair sums widened to sums over each 4 bytes, added to dot.
TARGET INLINE __m256i widen_add(__m256i dot, __m256i p16) { return _mm256_add_epi32(dot, _mm256_madd_epi16(p16, _mm256_set1_epi16(1))); }

// sum over each 4 bytes of w·x, added to dot.
TARGET INLINE __m256i dot4(const ck_format f, __m256i dot, __m256i w, __m256i x) { return widen_add(dot, pairs(f, w, x)); }

// Groups whose pair sums still add up exactly in int16 (|x| <= 128): 8 × 2·15·128 for
// nibbles, 2 × 2·63·128 for 6-bit values, none for int8 (2·127·127 alone nearly fills it).
// Widening once per run of groups instead of once per group saves a third of the tile's
// integer work for the 4-bit formats.
static inline int int16_groups(const ck_format f) { return f == CK_F_Q8_0 ? 1 : f == CK_F_Q6_K ? 2 : CK_QK / 4; }

TARGET INLINE __m256 halves(const ck_half *h) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)); }

TARGET INLINE __m256i bytes8(const uint8_t *p, int is_signed) {
    const __m128i v = _mm_loadl_epi64((const __m128i *)p);
    return is_signed ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v);
}

// MR rows x one panel (16 columns as two ymm halves).
TARGET INLINE void tile(const ck_format f, const ck_act_q8 *x, int i0, const int MR, const void *w, int p, int b0, int b1,
                        int n, float *y, int ldy, int stream) {
    const int kb = x->kb;
    const size_t row_bytes = ck_format_panel_bytes(f, kb);
    const char *pw = (const char *)w + (size_t)p * row_bytes;
    const int col = p * CK_PANEL, valid = n - col < CK_PANEL ? n - col : CK_PANEL;
    __m256 acc[2][2];
    for (int i = 0; i < MR; i++) {
        float start[CK_PANEL] = {0};
        if (b0 > 0) memcpy(start, y + (size_t)(i0 + i) * ldy + col, (size_t)valid * sizeof(float));
        acc[i][0] = _mm256_loadu_ps(start);
        acc[i][1] = _mm256_loadu_ps(start + 8);
    }
    const size_t per_block = row_bytes / kb;  // a K-quant's super-block shared out
    for (int b = b0; b < b1; b++) {
        if (stream)
            for (size_t o = 0; o < per_block; o += 64) _mm_prefetch(pw + b * per_block + CK_PREFETCH_BYTES + o, _MM_HINT_T0);
        __m256i dot[2][2], dot_hi[2][2];
        for (int i = 0; i < MR; i++) {
            const size_t at = (size_t)(i0 + i) * kb + b;
            const int32_t sum = x->sum[at], lo = x->sum_lo[at];
            // Q8_0's sign trick yields signed dots: no offset to cancel
            const int32_t start = f == CK_F_Q4_0 ? -8 * sum : f == CK_F_Q6_K ? -32 * lo : 0;
            for (int h = 0; h < 2; h++) {
                dot[i][h] = _mm256_set1_epi32(start);
                dot_hi[i][h] = _mm256_set1_epi32(-32 * (sum - lo));
            }
        }
        const int run = int16_groups(f);
        for (int g0 = 0; g0 < CK_QK / 4; g0 += run) {
            __m256i p16[2][2];
            for (int g = g0; g < g0 + run; g++) {
                const __m256i w0 = weights(f, pw, b, g, 0), w1 = weights(f, pw, b, g, 1);
                for (int i = 0; i < MR; i++) {
                    int32_t four;
                    memcpy(&four, x->q + ((size_t)(i0 + i) * kb + b) * CK_QK + g * 4, 4);
                    const __m256i xv = _mm256_set1_epi32(four), s0 = pairs(f, w0, xv), s1 = pairs(f, w1, xv);
                    p16[i][0] = g == g0 ? s0 : _mm256_add_epi16(p16[i][0], s0);
                    p16[i][1] = g == g0 ? s1 : _mm256_add_epi16(p16[i][1], s1);
                }
            }
            // a run never straddles Q6_K's two half blocks (groups 0-3 and 4-7)
            for (int i = 0; i < MR; i++) {
                __m256i *to = f == CK_F_Q6_K && g0 >= 4 ? dot_hi[i] : dot[i];
                to[0] = widen_add(to[0], p16[i][0]);
                to[1] = widen_add(to[1], p16[i][1]);
            }
        }
        for (int h = 0; h < 2; h++) {
            for (int i = 0; i < MR; i++) {
                const size_t at = (size_t)(i0 + i) * kb + b;
                const __m256 xd = _mm256_set1_ps(x->d[at]);
                switch (f) {
                case CK_F_Q8_0:
                    acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[i][h]),
                                                _mm256_mul_ps(halves(((const ck_panel_block *)pw)[b].d + 8 * h), xd), acc[i][h]);
                    break;
                case CK_F_Q4_0:
                    acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[i][h]),
                                                _mm256_mul_ps(halves(((const ck_panel_q4_0 *)pw)[b].d + 8 * h), xd), acc[i][h]);
                    break;
                case CK_F_Q4_1: {
                    const ck_panel_q4_1 *pb = (const ck_panel_q4_1 *)pw + b;
                    acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[i][h]), _mm256_mul_ps(halves(pb->d + 8 * h), xd), acc[i][h]);
                    acc[i][h] = _mm256_fmadd_ps(_mm256_set1_ps(x->sd[at]), halves(pb->m + 8 * h), acc[i][h]);
                    break;
                }
                case CK_F_Q4_K: {
                    const ck_panel_q4_k *pb = (const ck_panel_q4_k *)pw + b / 8;
                    const int s = b % 8;
                    const __m256 sc = _mm256_cvtepi32_ps(bytes8(pb->sc[s] + 8 * h, 0));
                    const __m256 m = _mm256_cvtepi32_ps(bytes8(pb->m[s] + 8 * h, 0));
                    acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[i][h]), _mm256_mul_ps(_mm256_mul_ps(sc, halves(pb->d + 8 * h)), xd),
                                                acc[i][h]);
                    acc[i][h] = _mm256_fnmadd_ps(m, _mm256_mul_ps(halves(pb->dmin + 8 * h), _mm256_set1_ps(x->sd[at])), acc[i][h]);
                    break;
                }
                default: {
                    const ck_panel_q6_k *pb = (const ck_panel_q6_k *)pw + b / 8;
                    const int s = b % 8;
                    const __m256i sc_lo = bytes8((const uint8_t *)pb->sc[2 * s] + 8 * h, 1);
                    const __m256i sc_hi = bytes8((const uint8_t *)pb->sc[2 * s + 1] + 8 * h, 1);
                    const __m256i total = _mm256_add_epi32(_mm256_mullo_epi32(sc_lo, dot[i][h]), _mm256_mullo_epi32(sc_hi, dot_hi[i][h]));
                    acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(halves(pb->d + 8 * h), xd), acc[i][h]);
                }
                }
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

TARGET INLINE void tiles(const ck_format f, const ck_act_q8 *x, int m0, int m1, const void *w, int p0, int p1, int b0,
                         int b1, int n, float *y, int ldy) {
    const int stream = m1 - m0 <= CK_STREAM_ROWS;
    for (int p = p0; p < p1; p++) {
        int i = m0;
        for (; i + 2 <= m1; i += 2) tile(f, x, i, 2, w, p, b0, b1, n, y, ldy, stream);
        if (i < m1) tile(f, x, i, 1, w, p, b0, b1, n, y, ldy, stream);
    }
}

#define AVX2_TILE(name, format)                                                                                  \
    TARGET void ck_tile_##name##_avx2(const ck_act_q8 *x, int m0, int m1, const void *w, int p0, int p1, int b0, \
                                      int b1, int n, float *y, int ldy) {                                        \
        tiles(format, x, m0, m1, w, p0, p1, b0, b1, n, y, ldy);                                                  \
    }
AVX2_TILE(q8_0, CK_F_Q8_0)
AVX2_TILE(q4_0, CK_F_Q4_0)
AVX2_TILE(q4_1, CK_F_Q4_1)
AVX2_TILE(q4_k, CK_F_Q4_K)
AVX2_TILE(q6_k, CK_F_Q6_K)

// Block b of a row (x·s when s is not NULL) rounded to ints[0..31] (zero-padded); returns
// its scale.
TARGET INLINE float quantize_block(const float *x, const float *s, int k, int b, int32_t *ints) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const int len = k - b * CK_QK < CK_QK ? k - b * CK_QK : CK_QK;
    float v[CK_QK] = {0};
    memcpy(v, x + b * CK_QK, (size_t)len * sizeof(float));
    float sv[CK_QK] = {0};
    if (s) memcpy(sv, s + b * CK_QK, (size_t)len * sizeof(float));
    __m256 vx[4], mx = _mm256_setzero_ps();
    for (int h = 0; h < 4; h++) {
        vx[h] = _mm256_loadu_ps(v + 8 * h);
        if (s) vx[h] = _mm256_mul_ps(vx[h], _mm256_loadu_ps(sv + 8 * h));
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, vx[h]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float scale = _mm_cvtss_f32(m4) / 127.0f;
    const __m256 inv = _mm256_set1_ps(scale ? 1.0f / scale : 0.0f);
    for (int h = 0; h < 4; h++) _mm256_storeu_si256((__m256i *)(ints + 8 * h), _mm256_cvtps_epi32(_mm256_mul_ps(vx[h], inv)));
    return scale;
}

TARGET void ck_quantize_act_row_avx2(const float *x, const float *s, int k, int8_t *q, float *d, int32_t *sum,
                                     int32_t *sum_lo) {
    const int kb = ck_q8_blocks_per_row(k);
    for (int b = 0; b < kb; b++) {
        int32_t ints[CK_QK], total = 0, lo = 0;
        d[b] = quantize_block(x, s, k, b, ints);
        for (int j = 0; j < CK_QK; j++) {
            q[b * CK_QK + j] = (int8_t)ints[j];
            total += ints[j];
            lo += j < CK_QK / 2 ? ints[j] : 0;
        }
        sum[b] = total;
        sum_lo[b] = lo;
    }
}

TARGET void ck_quantize_biased_row_avx2(const float *x, int k, uint8_t *q, float *d) {
    const int kb = ck_q8_blocks_per_row(k);
    for (int b = 0; b < kb; b++) {
        int32_t ints[CK_QK];
        d[b] = quantize_block(x, NULL, k, b, ints);
        for (int j = 0; j < CK_QK; j++) q[b * CK_QK + j] = (uint8_t)(ints[j] + 128);
    }
}

// MR rows of the backward strip: 4 ymm of 8 columns.
TARGET INLINE void strip_rows(const ck_strip *s, const uint8_t *zq, const float *zd, const int MR, const float *bias,
                              float *dx, int ldx, int cols) {
    const int nb = s->nb, ldz = s->ldz;
    __m256 acc[2][4];
    for (int i = 0; i < MR; i++) {
        float in[CK_QK] = {0};
        if (s->accumulate) memcpy(in, dx + (size_t)i * ldx, (size_t)cols * sizeof(float));
        for (int v = 0; v < 4; v++) acc[i][v] = _mm256_loadu_ps(in + 8 * v);
    }
    for (int c = 0; c < nb; c++) {
        __m256i dot[2][4];
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < 4; v++) dot[i][v] = _mm256_setzero_si256();
        for (int q = 0; q < CK_QK / 4; q++) {
            const int8_t *w = s->w + (size_t)(c * (CK_QK / 4) + q) * 4 * CK_QK;
            __m256i wv[4];
            for (int v = 0; v < 4; v++) wv[v] = _mm256_loadu_si256((const __m256i *)(w + 32 * v));
            for (int i = 0; i < MR; i++) {
                // z unbiased (a flip of the top bit) against signed w: the sign trick, as for Q8_0
                int32_t four;
                memcpy(&four, zq + (size_t)i * ldz * CK_QK + c * CK_QK + 4 * q, 4);
                const __m256i xv = _mm256_xor_si256(_mm256_set1_epi32(four), _mm256_set1_epi8((char)0x80));
                for (int v = 0; v < 4; v++) dot[i][v] = dot4(CK_F_Q8_0, dot[i][v], wv[v], xv);
            }
        }
        for (int i = 0; i < MR; i++) {
            const __m256 dz = _mm256_set1_ps(zd[(size_t)i * ldz + c]);
            for (int v = 0; v < 4; v++) {
                const __m256 scale = _mm256_mul_ps(dz, _mm256_loadu_ps(s->d + c * CK_QK + 8 * v));
                acc[i][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[i][v]), scale, acc[i][v]);
            }
        }
    }
    for (int i = 0; i < MR; i++) {
        float out[CK_QK];
        for (int v = 0; v < 4; v++) {
            if (bias) acc[i][v] = _mm256_add_ps(acc[i][v], _mm256_set1_ps(bias[i]));
            _mm256_storeu_ps(out + 8 * v, acc[i][v]);
        }
        memcpy(dx + (size_t)i * ldx, out, (size_t)cols * sizeof(float));
    }
}

TARGET void ck_strip_tile_avx2(const ck_strip *s, const uint8_t *zq, const float *zd, int rows, const float *bias, float *dx,
                               int ldx, int cols) {
    const size_t zrow = (size_t)s->ldz * CK_QK;
    int i = 0;
    for (; i + 2 <= rows; i += 2)
        strip_rows(s, zq + i * zrow, zd + (size_t)i * s->ldz, 2, bias ? bias + i : NULL, dx + (size_t)i * ldx, ldx, cols);
    if (i < rows) strip_rows(s, zq + i * zrow, zd + (size_t)i * s->ldz, 1, bias ? bias + i : NULL, dx + (size_t)i * ldx, ldx, cols);
}
