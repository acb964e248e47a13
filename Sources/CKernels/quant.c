// Block quantization: fp16, GGUF dequantizers (ggml-quants.c reference semantics) and
// the Q8_0 and Q4_0 quantizers.
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_quant.h"

static inline float f32_from_bits(uint32_t w) { float f; memcpy(&f, &w, 4); return f; }
static inline uint32_t f32_bits(float f) { uint32_t w; memcpy(&w, &f, 4); return w; }

float ck_half_to_float(ck_half h) { return ck_half_to_float_inline(h); }

// float -> half: branch-free, rounding to nearest even (Maratyszcza's FP16 library, as ggml uses).
ck_half ck_float_to_half(float f) {
    float base = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t nonsign = ((bits >> 13) & 0x7C00u) + (bits & 0x0FFFu);
    return (ck_half)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

int ck_type_block_size(ck_type type) {
    switch (type) {
    case CK_TYPE_F32: case CK_TYPE_F16: case CK_TYPE_BF16: return 1;
    case CK_TYPE_Q8_0: case CK_TYPE_Q4_0: case CK_TYPE_Q4_1: case CK_TYPE_Q5_0: case CK_TYPE_Q5_1: return CK_QK;
    case CK_TYPE_Q4_K: case CK_TYPE_Q5_K: case CK_TYPE_Q6_K: return CK_QK_K;
    }
    return 0;
}

size_t ck_type_block_bytes(ck_type type) {
    switch (type) {
    case CK_TYPE_F32: return 4;
    case CK_TYPE_F16: case CK_TYPE_BF16: return 2;
    case CK_TYPE_Q8_0: return sizeof(ck_block_q8_0);
    case CK_TYPE_Q4_0: return sizeof(ck_block_q4_0);
    case CK_TYPE_Q4_1: return sizeof(ck_block_q4_1);
    case CK_TYPE_Q5_0: return sizeof(ck_block_q5_0);
    case CK_TYPE_Q5_1: return sizeof(ck_block_q5_1);
    case CK_TYPE_Q4_K: return sizeof(ck_block_q4_k);
    case CK_TYPE_Q5_K: return sizeof(ck_block_q5_k);
    case CK_TYPE_Q6_K: return sizeof(ck_block_q6_k);
    }
    return 0;
}

static void dequant_q8_0(const ck_block_q8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_half_to_float_inline(x[i].d);
        for (int j = 0; j < CK_QK; j++) y[i * CK_QK + j] = d * x[i].qs[j];
    }
}

static void dequant_q4_0(const ck_block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_half_to_float_inline(x[i].d);
        for (int j = 0; j < CK_QK / 2; j++) {
            y[i * CK_QK + j] = d * ((x[i].qs[j] & 0x0F) - 8);
            y[i * CK_QK + j + CK_QK / 2] = d * ((x[i].qs[j] >> 4) - 8);
        }
    }
}

CK_VECTOR_CLONES static void dequant_q4_1(const ck_block_q4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_half_to_float_inline(x[i].d);
        const float m = ck_half_to_float_inline(x[i].m);
        for (int j = 0; j < CK_QK / 2; j++) {
            y[i * CK_QK + j] = fmaf(d, (float)(x[i].qs[j] & 0x0F), m);
            y[i * CK_QK + j + CK_QK / 2] = fmaf(d, (float)(x[i].qs[j] >> 4), m);
        }
    }
}

CK_VECTOR_CLONES static void dequant_q4_k(const ck_block_q4_k *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        const float d = ck_half_to_float_inline(x[i].d);
        const float dmin = ck_half_to_float_inline(x[i].dmin);
        for (int c = 0; c < 4; c++) {  // 4 chunks of 64: low nibbles, then high nibbles
            uint8_t sc, m;
            ck_q4_k_scale_min(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            ck_q4_k_scale_min(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = fmaf(d1, (float)(q[l] & 0x0F), -m1);
            for (int l = 0; l < 32; l++) *y++ = fmaf(d2, (float)(q[l] >> 4), -m2);
            q += 32;
        }
    }
}

// Q5_0/Q5_1: bit j of qh is weight j's fifth bit (the low nibbles' weights 0…15, the high
// nibbles' 16…31).
static inline uint32_t q5_high_bits(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void dequant_q5_0(const ck_block_q5_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_half_to_float_inline(x[i].d);
        const uint32_t qh = q5_high_bits(x[i].qh);
        for (int j = 0; j < CK_QK / 2; j++) {
            const int lo = (x[i].qs[j] & 0x0F) | ((qh >> j) & 1) << 4;
            const int hi = (x[i].qs[j] >> 4) | ((qh >> (j + CK_QK / 2)) & 1) << 4;
            y[i * CK_QK + j] = d * (lo - 16);
            y[i * CK_QK + j + CK_QK / 2] = d * (hi - 16);
        }
    }
}

CK_VECTOR_CLONES static void dequant_q5_1(const ck_block_q5_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_half_to_float_inline(x[i].d);
        const float m = ck_half_to_float_inline(x[i].m);
        const uint32_t qh = q5_high_bits(x[i].qh);
        for (int j = 0; j < CK_QK / 2; j++) {
            const int lo = (x[i].qs[j] & 0x0F) | ((qh >> j) & 1) << 4;
            const int hi = (x[i].qs[j] >> 4) | ((qh >> (j + CK_QK / 2)) & 1) << 4;
            y[i * CK_QK + j] = fmaf(d, (float)lo, m);
            y[i * CK_QK + j + CK_QK / 2] = fmaf(d, (float)hi, m);
        }
    }
}

// Q5_K: Q4_K's scales and nibbles; chunk c's low-nibble weights take bit 2c of qh[l], its
// high-nibble weights bit 2c+1.
CK_VECTOR_CLONES static void dequant_q5_k(const ck_block_q5_k *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs, *qh = x[i].qh;
        const float d = ck_half_to_float_inline(x[i].d);
        const float dmin = ck_half_to_float_inline(x[i].dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t sc, m;
            ck_q4_k_scale_min(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            ck_q4_k_scale_min(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = fmaf(d1, (float)((q[l] & 0x0F) | ((qh[l] >> (2 * c)) & 1) << 4), -m1);
            for (int l = 0; l < 32; l++) *y++ = fmaf(d2, (float)((q[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4), -m2);
            q += 32;
        }
    }
}

static void dequant_q6_k(const ck_block_q6_k *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_half_to_float_inline(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int half = 0; half < 2; half++) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128, ql += 64, qh += 32, sc += 8;
        }
    }
}

ck_status ck_dequantize(ck_type type, const void *src, float *dst, int64_t n) {
    if (!src || !dst) return CK_ERR_NULL;
    const int bs = ck_type_block_size(type);
    if (bs == 0) return CK_ERR_UNSUPPORTED;
    if (n < 0 || n % bs) return CK_ERR_SHAPE;
    const int64_t nb = n / bs;
    switch (type) {
    case CK_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case CK_TYPE_F16: {
        const ck_half *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = ck_half_to_float_inline(h[i]);
        break;
    }
    case CK_TYPE_BF16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = f32_from_bits((uint32_t)h[i] << 16);
        break;
    }
    case CK_TYPE_Q8_0: dequant_q8_0(src, dst, nb); break;
    case CK_TYPE_Q4_0: dequant_q4_0(src, dst, nb); break;
    case CK_TYPE_Q4_1: dequant_q4_1(src, dst, nb); break;
    case CK_TYPE_Q5_0: dequant_q5_0(src, dst, nb); break;
    case CK_TYPE_Q5_1: dequant_q5_1(src, dst, nb); break;
    case CK_TYPE_Q4_K: dequant_q4_k(src, dst, nb); break;
    case CK_TYPE_Q5_K: dequant_q5_k(src, dst, nb); break;
    case CK_TYPE_Q6_K: dequant_q6_k(src, dst, nb); break;
    }
    return CK_OK;
}

int ck_q8_blocks_per_row(int k) { return ck_div_up(k, CK_QK); }

// ggml's quantize_row_q8_0_ref: d = amax/127 stored as fp16, q = round(x/d) away from
// zero, so rows quantized here are bit-identical to GGUF Q8_0 files. Vector clones let
// roundf inline (it is a libm call per value on baseline x86-64): loading requantizes
// every weight of a Q4 file through here.
CK_VECTOR_CLONES int ck_quantize_q8_0(const float *src, int rows, int k, ck_block_q8_0 *dst) {
    const int kb = ck_q8_blocks_per_row(k);
    int nonfinite = 0;
    for (int r = 0; r < rows; r++) {
        for (int b = 0; b < kb; b++) {
            float v[CK_QK] = {0};
            const int len = k - b * CK_QK < CK_QK ? k - b * CK_QK : CK_QK;
            memcpy(v, src + (size_t)r * k + b * CK_QK, (size_t)len * sizeof(float));
            // a NaN or infinity has no int8 value (converting one is undefined): count it, store 0
            for (int j = 0; j < CK_QK; j++) {
                const int bad = !isfinite(v[j]);
                nonfinite += bad;
                v[j] = bad ? 0.0f : v[j];
            }
            float amax = 0;
            for (int j = 0; j < CK_QK; j++) amax = fmaxf(amax, fabsf(v[j]));
            const float d = amax / 127.0f;
            const float id = d ? 1.0f / d : 0.0f;
            ck_block_q8_0 *out = &dst[(size_t)r * kb + b];
            out->d = ck_float_to_half(d);
            for (int j = 0; j < CK_QK; j++) out->qs[j] = (int8_t)roundf(v[j] * id);
        }
    }
    return nonfinite;
}

void ck_dequantize_q8_0(const ck_block_q8_0 *src, int rows, int k, float *dst) {
    const int kb = ck_q8_blocks_per_row(k);
    for (int r = 0; r < rows; r++) {
        for (int b = 0; b < kb; b++) {
            const ck_block_q8_0 *blk = &src[(size_t)r * kb + b];
            const float d = ck_half_to_float_inline(blk->d);
            for (int j = 0; j < CK_QK && b * CK_QK + j < k; j++)
                dst[(size_t)r * k + b * CK_QK + j] = d * blk->qs[j];
        }
    }
}

// ggml's quantize_row_q4_0_ref: d = (the block's value of largest magnitude)/−8 stored as
// fp16, q = min(15, trunc(x/d + 8.5)); a zero-padded tail block, non-finite values as 0.
CK_VECTOR_CLONES int ck_quantize_q4_0(const float *src, int rows, int k, ck_block_q4_0 *dst) {
    const int kb = ck_div_up(k, CK_QK);
    int nonfinite = 0;
    for (int r = 0; r < rows; r++) {
        for (int b = 0; b < kb; b++) {
            float v[CK_QK] = {0};
            const int len = k - b * CK_QK < CK_QK ? k - b * CK_QK : CK_QK;
            memcpy(v, src + (size_t)r * k + b * CK_QK, (size_t)len * sizeof(float));
            float amax = 0, max = 0;
            for (int j = 0; j < CK_QK; j++) {
                const int bad = !isfinite(v[j]);
                nonfinite += bad;
                v[j] = bad ? 0.0f : v[j];
                if (amax < fabsf(v[j])) amax = fabsf(v[j]), max = v[j];
            }
            const float d = max / -8.0f;
            const float id = d ? 1.0f / d : 0.0f;
            ck_block_q4_0 *out = &dst[(size_t)r * kb + b];
            out->d = ck_float_to_half(d);
            for (int j = 0; j < CK_QK / 2; j++) {
                const int lo = (int)(int8_t)(v[j] * id + 8.5f), hi = (int)(int8_t)(v[j + CK_QK / 2] * id + 8.5f);
                out->qs[j] = (uint8_t)((lo < 15 ? lo : 15) | (hi < 15 ? hi : 15) << 4);
            }
        }
    }
    return nonfinite;
}

static inline int half_nonfinite(ck_half h) { return (h & 0x7C00) == 0x7C00; }

// Where a block's fp16 scales sit: the offset of d, and whether a minimum (m, dmin)
// follows it.
_Static_assert(offsetof(ck_block_q4_1, m) == 2 && offsetof(ck_block_q5_1, m) == 2, "m follows d");
_Static_assert(offsetof(ck_block_q4_k, dmin) == 2 && offsetof(ck_block_q5_k, dmin) == 2, "dmin follows d");
static int block_scales(ck_type type, size_t *offset) {
    *offset = 0;
    switch (type) {
    case CK_TYPE_Q8_0: case CK_TYPE_Q4_0: case CK_TYPE_Q5_0: return 1;
    case CK_TYPE_Q4_1: case CK_TYPE_Q5_1: case CK_TYPE_Q4_K: case CK_TYPE_Q5_K: return 2;
    case CK_TYPE_Q6_K: *offset = offsetof(ck_block_q6_k, d); return 1;
    default: return 0;
    }
}

int64_t ck_blocks_nonfinite(ck_type type, const void *blocks, int64_t count) {
    size_t offset;
    const int scales = block_scales(type, &offset);
    const size_t stride = ck_type_block_bytes(type);
    const uint8_t *bytes = blocks;
    int64_t bad = 0;
    for (int64_t i = 0; i < count && scales; i++) {
        int any = 0;
        for (int s = 0; s < scales; s++) {
            ck_half h;
            memcpy(&h, bytes + (size_t)i * stride + offset + 2 * (size_t)s, sizeof h);
            any |= half_nonfinite(h);
        }
        bad += any;
    }
    return bad;
}
