// The packed panel layouts the GEMM kernels read (ck_blocks.h): one table row per storage
// type, packing from GGUF blocks and dequantizing back; plus Q8_0's unpack and transposed
// pack, which only the int8 layout has.
#include <math.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_quant.h"

// Copies GGUF block `src` into row r of panel block `dst`; NULL: a padding row, all zero
// (scale 0, so every weight of it is 0).
typedef void (*pack_fn)(const void *src, int r, void *dst);
// The block's values of row r: block_values floats.
typedef void (*values_fn)(const void *panel, int r, float *out);

typedef struct {
    int block_values;      // weights per block along K
    size_t panel_bytes;    // bytes of one panel block (16 rows)
    size_t block_bytes;    // bytes of one GGUF block
    pack_fn pack;
    values_fn values;
} panel_format;

static void pack_q8_0(const void *src, int r, void *dst) {
    const ck_block_q8_0 *b = src;
    ck_panel_block *p = dst;
    p->d[r] = b ? b->d : 0;
    for (int j = 0; j < CK_QK; j++) p->q[j / 4][r][j % 4] = (uint8_t)((b ? b->qs[j] : 0) + 128);
}

static void values_q8_0(const void *panel, int r, float *out) {
    const ck_panel_block *p = panel;
    const float d = ck_half_to_float_inline(p->d[r]);
    for (int j = 0; j < CK_QK; j++) out[j] = d * (float)(p->q[j / 4][r][j % 4] - 128);
}

static void pack_q4_0(const void *src, int r, void *dst) {
    const ck_block_q4_0 *b = src;
    ck_panel_q4_0 *p = dst;
    p->d[r] = b ? b->d : 0;
    for (int j = 0; j < CK_QK / 2; j++) p->qs[j / 4][r][j % 4] = b ? b->qs[j] : 0;
}

static void values_q4_0(const void *panel, int r, float *out) {
    const ck_panel_q4_0 *p = panel;
    const float d = ck_half_to_float_inline(p->d[r]);
    for (int j = 0; j < CK_QK / 2; j++) {
        const uint8_t q = p->qs[j / 4][r][j % 4];
        out[j] = d * (float)((q & 0x0F) - 8);
        out[j + CK_QK / 2] = d * (float)((q >> 4) - 8);
    }
}

static void pack_q4_1(const void *src, int r, void *dst) {
    const ck_block_q4_1 *b = src;
    ck_panel_q4_1 *p = dst;
    p->d[r] = b ? b->d : 0;
    p->m[r] = b ? b->m : 0;
    for (int j = 0; j < CK_QK / 2; j++) p->qs[j / 4][r][j % 4] = b ? b->qs[j] : 0;
}

CK_VECTOR_CLONES static void values_q4_1(const void *panel, int r, float *out) {
    const ck_panel_q4_1 *p = panel;
    const float d = ck_half_to_float_inline(p->d[r]), m = ck_half_to_float_inline(p->m[r]);
    for (int j = 0; j < CK_QK / 2; j++) {
        const uint8_t q = p->qs[j / 4][r][j % 4];
        out[j] = fmaf(d, (float)(q & 0x0F), m);
        out[j + CK_QK / 2] = fmaf(d, (float)(q >> 4), m);
    }
}

static void pack_q4_k(const void *src, int r, void *dst) {
    const ck_block_q4_k *b = src;
    ck_panel_q4_k *p = dst;
    p->d[r] = b ? b->d : 0;
    p->dmin[r] = b ? b->dmin : 0;
    for (int s = 0; s < CK_QK_K / CK_QK; s++) {
        uint8_t sc = 0, m = 0;
        if (b) ck_q4_k_scale_min(s, b->scales, &sc, &m);
        p->sc[s][r] = sc;
        p->m[s][r] = m;
    }
    for (int i = 0; i < CK_QK_K / 2; i++) p->qs[i / 32][i % 32 / 4][r][i % 4] = b ? b->qs[i] : 0;
}

CK_VECTOR_CLONES static void values_q4_k(const void *panel, int r, float *out) {
    const ck_panel_q4_k *p = panel;
    const float d = ck_half_to_float_inline(p->d[r]), dmin = ck_half_to_float_inline(p->dmin[r]);
    for (int c = 0; c < 4; c++) {
        for (int half = 0; half < 2; half++) {
            const int s = 2 * c + half;
            const float scale = d * p->sc[s][r], min = dmin * p->m[s][r];
            for (int l = 0; l < CK_QK; l++) {
                const uint8_t q = p->qs[c][l / 4][r][l % 4];
                out[32 * s + l] = fmaf(scale, (float)(half ? q >> 4 : q & 0x0F), -min);
            }
        }
    }
}

static void pack_q6_k(const void *src, int r, void *dst) {
    const ck_block_q6_k *b = src;
    ck_panel_q6_k *p = dst;
    p->d[r] = b ? b->d : 0;
    for (int s = 0; s < CK_QK_K / 16; s++) p->sc[s][r] = b ? b->scales[s] : 0;
    for (int h = 0; h < 2; h++) {
        for (int l = 0; l < CK_QK; l++) {
            p->ql[h][0][l / 4][r][l % 4] = b ? b->ql[64 * h + l] : 0;
            p->ql[h][1][l / 4][r][l % 4] = b ? b->ql[64 * h + 32 + l] : 0;
            p->qh[h][l / 4][r][l % 4] = b ? b->qh[32 * h + l] : 0;
        }
    }
}

static void values_q6_k(const void *panel, int r, float *out) {
    const ck_panel_q6_k *p = panel;
    const float d = ck_half_to_float_inline(p->d[r]);
    for (int h = 0; h < 2; h++) {
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < CK_QK; l++) {
                const uint8_t ql = p->ql[h][j & 1][l / 4][r][l % 4], qh = p->qh[h][l / 4][r][l % 4];
                const int q = ((j < 2 ? ql & 0x0F : ql >> 4) | ((qh >> (2 * j)) & 3) << 4) - 32;
                const int v = 128 * h + 32 * j + l;
                out[v] = d * p->sc[v / 16][r] * q;  // (d·sc)·q, as ggml
            }
        }
    }
}

static const panel_format *format_of(ck_type type) {
    static const panel_format q8_0 = {CK_QK, sizeof(ck_panel_block), sizeof(ck_block_q8_0), pack_q8_0, values_q8_0};
    static const panel_format q4_0 = {CK_QK, sizeof(ck_panel_q4_0), sizeof(ck_block_q4_0), pack_q4_0, values_q4_0};
    static const panel_format q4_1 = {CK_QK, sizeof(ck_panel_q4_1), sizeof(ck_block_q4_1), pack_q4_1, values_q4_1};
    static const panel_format q4_k = {CK_QK_K, sizeof(ck_panel_q4_k), sizeof(ck_block_q4_k), pack_q4_k, values_q4_k};
    static const panel_format q6_k = {CK_QK_K, sizeof(ck_panel_q6_k), sizeof(ck_block_q6_k), pack_q6_k, values_q6_k};
    switch (type) {
    case CK_TYPE_Q8_0: return &q8_0;
    case CK_TYPE_Q4_0: return &q4_0;
    case CK_TYPE_Q4_1: return &q4_1;
    case CK_TYPE_Q4_K: return &q4_k;
    case CK_TYPE_Q6_K: return &q6_k;
    default: return NULL;
    }
}

int ck_packed_block_values(ck_type type) {
    const panel_format *f = format_of(type);
    return f ? f->block_values : 0;
}

size_t ck_packed_block_bytes(ck_type type) {
    const panel_format *f = format_of(type);
    return f ? f->panel_bytes : 0;
}

int ck_packed_blocks_per_row(ck_type type, int k) {
    const panel_format *f = format_of(type);
    return f && k >= 0 ? ck_div_up(k, f->block_values) : 0;
}

int ck_q8_panels(int rows) { return ck_div_up(rows, CK_PANEL); }

size_t ck_packed_bytes(ck_type type, int rows, int k) {
    const panel_format *f = format_of(type);
    if (!f || rows < 0 || k < 0) return 0;
    return (size_t)ck_q8_panels(rows) * (size_t)ck_div_up(k, f->block_values) * f->panel_bytes;
}

ck_status ck_pack(ck_type type, const void *src, int rows, int k, void *dst) {
    const panel_format *f = format_of(type);
    if (!f) return CK_ERR_UNSUPPORTED;
    if (rows < 0 || k < 0) return CK_ERR_SHAPE;
    if ((!src || !dst) && rows > 0 && k > 0) return CK_ERR_NULL;
    const int kb = ck_div_up(k, f->block_values), panels = ck_q8_panels(rows);
    for (int p = 0; p < panels; p++) {
        for (int b = 0; b < kb; b++) {
            char *out = (char *)dst + ((size_t)p * kb + b) * f->panel_bytes;
            for (int r = 0; r < CK_PANEL; r++) {
                const int row = p * CK_PANEL + r;
                f->pack(row < rows ? (const char *)src + ((size_t)row * kb + b) * f->block_bytes : NULL, r, out);
            }
        }
    }
    return CK_OK;
}

void ck_packed_dequantize(ck_type type, const void *src, int rows, int k, int row0, int nrows, int col0,
                          int ncols, float *dst, int ldd) {
    const panel_format *f = format_of(type);
    if (!f) return;
    const int bv = f->block_values, kb = ck_div_up(k, bv);
    float block[CK_QK_K];
    for (int i = 0; i < nrows; i++) {
        const int row = row0 + i, p = row / CK_PANEL, r = row % CK_PANEL;
        float *out = dst + (size_t)i * ldd;
        int c = 0;
        while (c < ncols) {
            const int col = col0 + c, b = col / bv;
            const int run = (b + 1) * bv - col < ncols - c ? (b + 1) * bv - col : ncols - c;
            if (row >= rows || col >= k) {
                memset(out + c, 0, (size_t)run * sizeof(float));
            } else {
                f->values((const char *)src + ((size_t)p * kb + b) * f->panel_bytes, r, block);
                for (int j = 0; j < run; j++) out[c + j] = col + j < k ? block[col - b * bv + j] : 0.0f;
            }
            c += run;
        }
    }
}

void ck_packed_scale(ck_type type, const void *src, int rows, int k, int row, int col, float *scale, float *min) {
    const panel_format *f = format_of(type);
    *scale = *min = 0;
    if (!f || row < 0 || row >= rows || col < 0 || col >= k) return;
    const int kb = ck_div_up(k, f->block_values);
    const char *block = (const char *)src + ((size_t)(row / CK_PANEL) * kb + col / f->block_values) * f->panel_bytes;
    ck_panel_scale(type, block, row % CK_PANEL, col % f->block_values, scale, min);
}

void ck_q8_unpack(const ck_panel_block *src, int rows, int k, ck_block_q8_0 *dst) {
    const int kb = ck_q8_blocks_per_row(k);
    for (int row = 0; row < rows; row++) {
        const int p = row / CK_PANEL, r = row % CK_PANEL;
        for (int b = 0; b < kb; b++) {
            const ck_panel_block *in = &src[(size_t)p * kb + b];
            ck_block_q8_0 *out = &dst[(size_t)row * kb + b];
            out->d = in->d[r];
            for (int j = 0; j < CK_QK; j++) out->qs[j] = (int8_t)(in->q[j / 4][r][j % 4] - 128);
        }
    }
}

void ck_q8_pack_transposed(const ck_block_q8_0 *src, int rows, int k, ck_panel_block *dst) {
    const int kb = ck_q8_blocks_per_row(k);
    const int t_kb = ck_q8_blocks_per_row(rows), t_panels = ck_q8_panels(k);
    for (int p = 0; p < t_panels; p++) {
        for (int b = 0; b < t_kb; b++) {
            ck_panel_block *out = &dst[(size_t)p * t_kb + b];
            for (int r = 0; r < CK_PANEL; r++) {
                const int col = p * CK_PANEL + r;  // row of W^T = column of W
                float v[CK_QK] = {0}, amax = 0;
                for (int j = 0; j < CK_QK; j++) {
                    const int row = b * CK_QK + j;
                    if (row >= rows || col >= k) continue;
                    const ck_block_q8_0 *blk = &src[(size_t)row * kb + col / CK_QK];
                    v[j] = ck_half_to_float_inline(blk->d) * blk->qs[col % CK_QK];
                    amax = fmaxf(amax, fabsf(v[j]));
                }
                // as ggml's Q8_0: q from the f32 scale, the scale stored as fp16
                const float d = amax / 127.0f;
                const float id = d ? 1.0f / d : 0.0f;
                out->d[r] = ck_float_to_half(d);
                for (int j = 0; j < CK_QK; j++)
                    out->q[j / 4][r][j % 4] = (uint8_t)((int)roundf(v[j] * id) + 128);
            }
        }
    }
}
