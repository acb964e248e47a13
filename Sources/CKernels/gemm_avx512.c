// AVX-512 VNNI path: unsigned weights (offset-binary int8, nibbles, 6-bit values) times
// int8 activations with VPDPBUSD, 16 rows of a panel per register, bit-identical to the
// scalar path in gemm.c (same integer block dots, same float operations per lane).
#include <immintrin.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_quant.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

// Group g (weights 4g..4g+3) of x block b for the 16 rows of a panel, as unsigned bytes.
TARGET INLINE __m512i weights(const ck_format f, const char *panel, int b, int g) {
    const __m512i nib = _mm512_set1_epi8(0x0F);
    switch (f) {
    case CK_F_Q8_0: return _mm512_loadu_si512(((const ck_panel_block *)panel)[b].q[g]);
    case CK_F_Q4_0:
    case CK_F_Q4_1: {
        const uint8_t *qs = f == CK_F_Q4_0 ? ((const ck_panel_q4_0 *)panel)[b].qs[g & 3][0]
                                           : ((const ck_panel_q4_1 *)panel)[b].qs[g & 3][0];
        const __m512i v = _mm512_loadu_si512(qs);
        return g < 4 ? _mm512_and_si512(v, nib) : _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
    }
    case CK_F_Q4_K: {
        const ck_panel_q4_k *p = (const ck_panel_q4_k *)panel + b / 8;
        const int s = b % 8;
        const __m512i v = _mm512_loadu_si512(p->qs[s / 2][g]);
        return s & 1 ? _mm512_and_si512(_mm512_srli_epi16(v, 4), nib) : _mm512_and_si512(v, nib);
    }
    default: {
        const ck_panel_q6_k *p = (const ck_panel_q6_k *)panel + b / 8;
        const int s = b % 8, h = s / 4, j = s % 4;
        const __m512i vl = _mm512_loadu_si512(p->ql[h][j & 1][g]), vh = _mm512_loadu_si512(p->qh[h][g]);
        const __m512i lo = j < 2 ? _mm512_and_si512(vl, nib) : _mm512_and_si512(_mm512_srli_epi16(vl, 4), nib);
        const __m512i hi = _mm512_and_si512(_mm512_srl_epi16(vh, _mm_cvtsi32_si128(2 * j)), _mm512_set1_epi8(3));
        return _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
    }
    }
}

TARGET INLINE __m512 halves(const ck_half *h) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h)); }

// Rows of X a register tile takes (Q6_K: 4, its half-block sums need twice the dot registers).
// With NV = 2 panels, 6 rows are 12 independent VPDPBUSD chains per x block in 24 of the 32
// zmm: every unpacked weight vector then feeds 6 rows instead of 4, and a 4-bit block's
// unpacking and float updates hold the dot products back less (a Xeon that issues two
// VPDPBUSD a cycle, m = 64, one thread, against 4 rows: Q4_1 1.07-1.19x, Q4_0 1.00-1.05x,
// Q8_0 0.97-1.11x).
#define MR_FWD 6

// One register tile: MR rows of X x NV panels (16 columns each). Constant f/MR/NV after
// inlining keep it in zmm.
TARGET INLINE void tile(const ck_format f, const ck_act_q8 *x, int i0, const int MR, const void *w, int p, const int NV,
                        int b0, int b1, int n, float *y, int ldy, int stream) {
    const int kb = x->kb;
    const size_t row_bytes = ck_format_panel_bytes(f, kb);
    const char *pw[2] = {(const char *)w + (size_t)p * row_bytes, (const char *)w + (size_t)(p + 1) * row_bytes};
    __mmask16 mask[2];
    for (int v = 0; v < NV; v++) {
        const int valid = n - (p + v) * CK_PANEL;
        mask[v] = (__mmask16)(valid >= CK_PANEL ? 0xFFFF : (1u << valid) - 1);
    }
    __m512 acc[MR_FWD][2];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++)
            acc[i][v] = b0 > 0 ? _mm512_maskz_loadu_ps(mask[v], y + (size_t)(i0 + i) * ldy + (p + v) * CK_PANEL)
                               : _mm512_setzero_ps();

    const size_t per_block = row_bytes / kb;  // a K-quant's super-block shared out
    for (int b = b0; b < b1; b++) {
        if (stream)
            for (int v = 0; v < NV; v++)
                for (size_t o = 0; o < per_block; o += 64) _mm_prefetch(pw[v] + b * per_block + CK_PREFETCH_BYTES + o, _MM_HINT_T0);
        __m512i dot[MR_FWD][2], dot_hi[MR_FWD][2];
        for (int i = 0; i < MR; i++) {
            const size_t at = (size_t)(i0 + i) * kb + b;
            const int32_t sum = x->sum[at], lo = x->sum_lo[at];
            // starting from −offset·sum(x) cancels the offset of the stored weights
            const int32_t start = f == CK_F_Q8_0 ? -128 * sum : f == CK_F_Q4_0 ? -8 * sum : f == CK_F_Q6_K ? -32 * lo : 0;
            for (int v = 0; v < NV; v++) {
                dot[i][v] = _mm512_set1_epi32(start);
                dot_hi[i][v] = _mm512_set1_epi32(-32 * (sum - lo));
            }
        }
        for (int g = 0; g < CK_QK / 4; g++) {
            __m512i wv[2];
            for (int v = 0; v < NV; v++) wv[v] = weights(f, pw[v], b, g);
            for (int i = 0; i < MR; i++) {
                int32_t four;
                memcpy(&four, x->q + ((size_t)(i0 + i) * kb + b) * CK_QK + g * 4, 4);
                const __m512i xv = _mm512_set1_epi32(four);
                for (int v = 0; v < NV; v++) {
                    if (f == CK_F_Q6_K && g >= 4) dot_hi[i][v] = _mm512_dpbusd_epi32(dot_hi[i][v], wv[v], xv);
                    else dot[i][v] = _mm512_dpbusd_epi32(dot[i][v], wv[v], xv);
                }
            }
        }
        for (int v = 0; v < NV; v++) {
            const char *panel = pw[v];
            for (int i = 0; i < MR; i++) {
                const size_t at = (size_t)(i0 + i) * kb + b;
                const __m512 xd = _mm512_set1_ps(x->d[at]);
                switch (f) {
                case CK_F_Q8_0:
                    acc[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i][v]),
                                                _mm512_mul_ps(halves(((const ck_panel_block *)panel)[b].d), xd), acc[i][v]);
                    break;
                case CK_F_Q4_0:
                    acc[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i][v]),
                                                _mm512_mul_ps(halves(((const ck_panel_q4_0 *)panel)[b].d), xd), acc[i][v]);
                    break;
                case CK_F_Q4_1: {
                    const ck_panel_q4_1 *pb = (const ck_panel_q4_1 *)panel + b;
                    acc[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i][v]), _mm512_mul_ps(halves(pb->d), xd), acc[i][v]);
                    acc[i][v] = _mm512_fmadd_ps(_mm512_set1_ps(x->sd[at]), halves(pb->m), acc[i][v]);
                    break;
                }
                case CK_F_Q4_K: {
                    const ck_panel_q4_k *pb = (const ck_panel_q4_k *)panel + b / 8;
                    const int s = b % 8;
                    const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)pb->sc[s])));
                    const __m512 m = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)pb->m[s])));
                    acc[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i][v]), _mm512_mul_ps(_mm512_mul_ps(sc, halves(pb->d)), xd),
                                                acc[i][v]);
                    acc[i][v] = _mm512_fnmadd_ps(m, _mm512_mul_ps(halves(pb->dmin), _mm512_set1_ps(x->sd[at])), acc[i][v]);
                    break;
                }
                default: {
                    const ck_panel_q6_k *pb = (const ck_panel_q6_k *)panel + b / 8;
                    const int s = b % 8;
                    const __m512i sc_lo = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)pb->sc[2 * s]));
                    const __m512i sc_hi = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)pb->sc[2 * s + 1]));
                    const __m512i total = _mm512_add_epi32(_mm512_mullo_epi32(sc_lo, dot[i][v]), _mm512_mullo_epi32(sc_hi, dot_hi[i][v]));
                    acc[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(halves(pb->d), xd), acc[i][v]);
                }
                }
            }
        }
    }
    for (int v = 0; v < NV; v++)
        for (int i = 0; i < MR; i++)
            _mm512_mask_storeu_ps(y + (size_t)(i0 + i) * ldy + (p + v) * CK_PANEL, mask[v], acc[i][v]);
}

TARGET INLINE void panel_rows(const ck_format f, const ck_act_q8 *x, int m0, int m1, const void *w, int p, const int NV,
                              int b0, int b1, int n, float *y, int ldy) {
    const int stream = m1 - m0 <= CK_STREAM_ROWS;
    int i = m0;
    if (f == CK_F_Q6_K)
        for (; i + 4 <= m1; i += 4) tile(f, x, i, 4, w, p, NV, b0, b1, n, y, ldy, stream);
    else
        for (; i + MR_FWD <= m1; i += MR_FWD) tile(f, x, i, MR_FWD, w, p, NV, b0, b1, n, y, ldy, stream);
    switch (m1 - i) {
    case 5: tile(f, x, i, 5, w, p, NV, b0, b1, n, y, ldy, stream); break;
    case 4: tile(f, x, i, 4, w, p, NV, b0, b1, n, y, ldy, stream); break;
    case 3: tile(f, x, i, 3, w, p, NV, b0, b1, n, y, ldy, stream); break;
    case 2: tile(f, x, i, 2, w, p, NV, b0, b1, n, y, ldy, stream); break;
    case 1: tile(f, x, i, 1, w, p, NV, b0, b1, n, y, ldy, stream); break;
    }
}

TARGET INLINE void tiles(const ck_format f, const ck_act_q8 *x, int m0, int m1, const void *w, int p0, int p1, int b0,
                         int b1, int n, float *y, int ldy) {
    for (int p = p0; p < p1; p += 2) {
        if (p + 1 < p1) panel_rows(f, x, m0, m1, w, p, 2, b0, b1, n, y, ldy);
        else panel_rows(f, x, m0, m1, w, p, 1, b0, b1, n, y, ldy);
    }
}

#define AVX512_TILE(name, format)                                                                                  \
    TARGET void ck_tile_##name##_avx512(const ck_act_q8 *x, int m0, int m1, const void *w, int p0, int p1, int b0, \
                                        int b1, int n, float *y, int ldy) {                                        \
        tiles(format, x, m0, m1, w, p0, p1, b0, b1, n, y, ldy);                                                    \
    }
AVX512_TILE(q8_0, CK_F_Q8_0)
AVX512_TILE(q4_0, CK_F_Q4_0)
AVX512_TILE(q4_1, CK_F_Q4_1)
AVX512_TILE(q4_k, CK_F_Q4_K)
AVX512_TILE(q6_k, CK_F_Q6_K)

// Reduces 16 vectors to one whose lane c is the reduction of v[c]: four rounds of pairing
// lanes across two vectors (45 shuffles and ops for 16 rows instead of 16 full reductions).
#define REDUCE16(v, op, permute)                                                                             \
    do {                                                                                                       \
        static const int32_t rounds[4][16] = {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},          \
                                              {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},        \
                                              {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},        \
                                              {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}};      \
        static const int shift[4] = {8, 4, 2, 1};                                                              \
        for (int round = 0, count = 16; round < 4; round++, count /= 2) {                                      \
            const __m512i first = _mm512_loadu_si512(rounds[round]);                                           \
            const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(shift[round]));                   \
            for (int i = 0; i < count / 2; i++)                                                                \
                v[i] = op(permute(v[2 * i], first, v[2 * i + 1]), permute(v[2 * i], second, v[2 * i + 1]));      \
        }                                                                                                      \
    } while (0)

// 16 whole blocks of 32 at once: the same values, scales and sums as one block at a time.
TARGET INLINE void quantize_16_blocks(const float *x, const float *s, int8_t *q, float *d, int32_t *sum, int32_t *sum_lo) {
    __m512 v[16][2], m[16];
    for (int c = 0; c < 16; c++) {
        v[c][0] = _mm512_loadu_ps(x + c * CK_QK);
        v[c][1] = _mm512_loadu_ps(x + c * CK_QK + 16);
        if (s) {
            v[c][0] = _mm512_mul_ps(v[c][0], _mm512_loadu_ps(s + c * CK_QK));
            v[c][1] = _mm512_mul_ps(v[c][1], _mm512_loadu_ps(s + c * CK_QK + 16));
        }
        m[c] = _mm512_max_ps(_mm512_abs_ps(v[c][0]), _mm512_abs_ps(v[c][1]));
    }
    REDUCE16(m, _mm512_max_ps, _mm512_permutex2var_ps);
    const __m512 scale = _mm512_div_ps(m[0], _mm512_set1_ps(127.0f));
    const __mmask16 nonzero = _mm512_cmpneq_ps_mask(scale, _mm512_setzero_ps());
    const __m512 inv = _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0f), scale);
    _mm512_storeu_ps(d, scale);
    __m512i lo[16], hi[16];
    for (int c = 0; c < 16; c++) {
        const __m512 ic = _mm512_permutexvar_ps(_mm512_set1_epi32(c), inv);
        lo[c] = _mm512_cvtps_epi32(_mm512_mul_ps(v[c][0], ic));
        hi[c] = _mm512_cvtps_epi32(_mm512_mul_ps(v[c][1], ic));
        _mm_storeu_si128((__m128i *)(q + c * CK_QK), _mm512_cvtsepi32_epi8(lo[c]));
        _mm_storeu_si128((__m128i *)(q + c * CK_QK + 16), _mm512_cvtsepi32_epi8(hi[c]));
    }
    REDUCE16(lo, _mm512_add_epi32, _mm512_permutex2var_epi32);
    REDUCE16(hi, _mm512_add_epi32, _mm512_permutex2var_epi32);
    _mm512_storeu_si512(sum_lo, lo[0]);
    _mm512_storeu_si512(sum, _mm512_add_epi32(lo[0], hi[0]));
}

// Block b of a row of k (the blocks past the last whole 16): rounds x·s / scale into two
// vectors of 16 int32 (lanes past k are zero) and returns the block's scale.
TARGET INLINE float quantize_block_tail(const float *x, const float *s, int k, int b, __m512i *i0, __m512i *i1) {
    const int len = k - b * CK_QK < CK_QK ? k - b * CK_QK : CK_QK;
    const __mmask16 lo = (__mmask16)(len >= 16 ? 0xFFFF : (1u << len) - 1);
    const __mmask16 hi = (__mmask16)(len >= 32 ? 0xFFFF : len > 16 ? (1u << (len - 16)) - 1 : 0);
    __m512 v0 = _mm512_maskz_loadu_ps(lo, x + b * CK_QK);
    __m512 v1 = _mm512_maskz_loadu_ps(hi, x + b * CK_QK + 16);
    if (s) {
        v0 = _mm512_mul_ps(v0, _mm512_maskz_loadu_ps(lo, s + b * CK_QK));
        v1 = _mm512_mul_ps(v1, _mm512_maskz_loadu_ps(hi, s + b * CK_QK + 16));
    }
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float scale = amax / 127.0f;
    const __m512 inv = _mm512_set1_ps(scale ? 1.0f / scale : 0.0f);
    *i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inv));
    *i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inv));
    return scale;
}

TARGET void ck_quantize_act_row_avx512(const float *x, const float *s, int k, int8_t *q, float *d, int32_t *sum,
                                       int32_t *sum_lo) {
    const int kb = ck_q8_blocks_per_row(k);
    int b = 0;
    for (; (b + 16) * CK_QK <= k; b += 16)
        quantize_16_blocks(x + b * CK_QK, s ? s + b * CK_QK : NULL, q + b * CK_QK, d + b, sum + b, sum_lo + b);
    for (; b < kb; b++) {
        __m512i i0, i1;
        const float scale = quantize_block_tail(x, s, k, b, &i0, &i1);
        _mm_storeu_si128((__m128i *)(q + b * CK_QK), _mm512_cvtsepi32_epi8(i0));
        _mm_storeu_si128((__m128i *)(q + b * CK_QK + 16), _mm512_cvtsepi32_epi8(i1));
        d[b] = scale;
        sum_lo[b] = _mm512_reduce_add_epi32(i0);
        sum[b] = sum_lo[b] + _mm512_reduce_add_epi32(i1);
    }
}

// 16 whole blocks of 32, biased (ck_quantize_biased_row_fn). A first pass keeps only each
// block's largest |x| live (the 32 vectors of quantize_16_blocks would spill), a second
// reloads them from L1 and rounds them; four blocks' int32 pack into one 64-byte store.
// The same values and scales as quantize_16_blocks.
TARGET INLINE void quantize_16_blocks_biased(const float *x, uint8_t *q, float *d) {
    __m512 m[16];
    for (int c = 0; c < 16; c++)
        m[c] = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + c * CK_QK)), _mm512_abs_ps(_mm512_loadu_ps(x + c * CK_QK + 16)));
    REDUCE16(m, _mm512_max_ps, _mm512_permutex2var_ps);
    const __m512 scale = _mm512_div_ps(m[0], _mm512_set1_ps(127.0f));
    const __mmask16 nonzero = _mm512_cmpneq_ps_mask(scale, _mm512_setzero_ps());
    const __m512 inv = _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0f), scale);
    _mm512_storeu_ps(d, scale);
    // packs work within 128-bit lanes: dword 4L+t of the packed bytes holds lane L of the
    // t-th vector, which belongs at dword 4t+L
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int c = 0; c < 16; c += 2) {
        __m512i v[4];
        for (int t = 0; t < 2; t++) {
            const float *xb = x + (c + t) * CK_QK;
            const __m512 ic = _mm512_permutexvar_ps(_mm512_set1_epi32(c + t), inv);
            v[2 * t] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb), ic));
            v[2 * t + 1] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16), ic));
        }
        const __m512i bytes = _mm512_packs_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3]));
        const __m512i biased = _mm512_xor_si512(_mm512_permutexvar_epi32(order, bytes), _mm512_set1_epi8((char)0x80));
        _mm512_storeu_si512(q + c * CK_QK, biased);
    }
}

TARGET void ck_quantize_biased_row_avx512(const float *x, int k, uint8_t *q, float *d) {
    const int kb = ck_q8_blocks_per_row(k);
    int b = 0;
    for (; (b + 16) * CK_QK <= k; b += 16) quantize_16_blocks_biased(x + b * CK_QK, q + b * CK_QK, d + b);
    for (; b < kb; b++) {
        __m512i i0, i1;
        const float scale = quantize_block_tail(x, NULL, k, b, &i0, &i1);
        const __m128i bias = _mm_set1_epi8((char)0x80);
        const __m128i q0 = _mm512_cvtsepi32_epi8(i0), q1 = _mm512_cvtsepi32_epi8(i1);
        _mm_storeu_si128((__m128i *)(q + b * CK_QK), _mm_xor_si128(q0, bias));
        _mm_storeu_si128((__m128i *)(q + b * CK_QK + 16), _mm_xor_si128(q1, bias));
        d[b] = scale;
    }
}

#define MR_BWD 4  // rows of a backward tile: 2·MR dot and 2·MR f32 accumulators

// MR rows of the backward strip: 2 vectors of 16 columns, VPDPBUSD over 4 outputs a lane.
TARGET INLINE void strip_rows(const ck_strip *s, const uint8_t *zq, const float *zd, const int MR, const float *bias,
                              float *dx, int ldx, __mmask16 mask[2]) {
    const int nb = s->nb, ldz = s->ldz;
    __m512 acc[MR_BWD][2];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 2; v++)
            acc[i][v] = s->accumulate ? _mm512_maskz_loadu_ps(mask[v], dx + (size_t)i * ldx + 16 * v) : _mm512_setzero_ps();
    for (int c = 0; c < nb; c++) {
        // starting from −128·colsum takes the bias of z back out
        __m512i start[2], dot[MR_BWD][2];
        for (int v = 0; v < 2; v++)
            start[v] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(_mm512_loadu_si512(s->colsum + c * CK_QK + 16 * v), 7));
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < 2; v++) dot[i][v] = start[v];
        for (int q = 0; q < CK_QK / 4; q++) {
            const int8_t *w = s->w + (size_t)(c * (CK_QK / 4) + q) * 4 * CK_QK;
            const __m512i w0 = _mm512_loadu_si512(w), w1 = _mm512_loadu_si512(w + 64);
            for (int i = 0; i < MR; i++) {
                int32_t four;
                memcpy(&four, zq + (size_t)i * ldz * CK_QK + c * CK_QK + 4 * q, 4);
                const __m512i x = _mm512_set1_epi32(four);
                dot[i][0] = _mm512_dpbusd_epi32(dot[i][0], x, w0);
                dot[i][1] = _mm512_dpbusd_epi32(dot[i][1], x, w1);
            }
        }
        const __m512 d0 = _mm512_loadu_ps(s->d + c * CK_QK), d1 = _mm512_loadu_ps(s->d + c * CK_QK + 16);
        for (int i = 0; i < MR; i++) {
            const __m512 dz = _mm512_set1_ps(zd[(size_t)i * ldz + c]);
            acc[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i][0]), _mm512_mul_ps(dz, d0), acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i][1]), _mm512_mul_ps(dz, d1), acc[i][1]);
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int v = 0; v < 2; v++) {
            if (bias) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_set1_ps(bias[i]));
            _mm512_mask_storeu_ps(dx + (size_t)i * ldx + 16 * v, mask[v], acc[i][v]);
        }
    }
}

TARGET void ck_strip_tile_avx512(const ck_strip *s, const uint8_t *zq, const float *zd, int rows, const float *bias, float *dx,
                                 int ldx, int cols) {
    __mmask16 mask[2] = {(__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1),
                         (__mmask16)(cols >= 32 ? 0xFFFF : cols > 16 ? (1u << (cols - 16)) - 1 : 0)};
    const size_t zrow = (size_t)s->ldz * CK_QK;
    int i = 0;
    for (; i + MR_BWD <= rows; i += MR_BWD)
        strip_rows(s, zq + i * zrow, zd + (size_t)i * s->ldz, MR_BWD, bias ? bias + i : NULL, dx + (size_t)i * ldx, ldx, mask);
    const uint8_t *zt = zq + i * zrow;
    const float *dt = zd + (size_t)i * s->ldz, *bt = bias ? bias + i : NULL;
    switch (rows - i) {
    case 3: strip_rows(s, zt, dt, 3, bt, dx + (size_t)i * ldx, ldx, mask); break;
    case 2: strip_rows(s, zt, dt, 2, bt, dx + (size_t)i * ldx, ldx, mask); break;
    case 1: strip_rows(s, zt, dt, 1, bt, dx + (size_t)i * ldx, ldx, mask); break;
    }
}
