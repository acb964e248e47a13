// Block quantization: Q8_0 from/to f32, the packed panel layout, and dequantization of
// the GGUF storage types.
#ifndef CK_QUANT_H
#define CK_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "ck_blocks.h"
#include "ck_cpu.h"

// ggml_type ids as GGUF stores them.
typedef enum {
    CK_TYPE_F32 = 0,
    CK_TYPE_F16 = 1,
    CK_TYPE_Q4_0 = 2,
    CK_TYPE_Q4_1 = 3,
    CK_TYPE_Q8_0 = 8,
    CK_TYPE_Q4_K = 12,
    CK_TYPE_Q6_K = 14,
    CK_TYPE_BF16 = 30,
} ck_type;

int ck_type_block_size(ck_type type);    // values per block; 0 if unknown
size_t ck_type_block_bytes(ck_type type);  // bytes per block; 0 if unknown
// Dequantizes n values (n a multiple of the type's block size) of one storage type.
ck_status ck_dequantize(ck_type type, const void *src, float *dst, int64_t n);

float ck_half_to_float(ck_half h);
ck_half ck_float_to_half(float f);     // round to nearest even

// Q8_0 rows: a row of k values takes ceil(k/32) blocks; a tail block is zero-padded.
// Returns how many values were not finite (NaN or infinity), each stored as 0.
int ck_q8_blocks_per_row(int k);
int ck_quantize_q8_0(const float *src, int rows, int k, ck_block_q8_0 *dst);
void ck_dequantize_q8_0(const ck_block_q8_0 *src, int rows, int k, float *dst);

// Packed panels: rows are grouped by CK_PANEL (the last panel zero-padded), each panel
// holding ceil(k/32) consecutive ck_panel_blocks. Index: panel * kb + block.
int ck_q8_panels(int rows);
size_t ck_q8_packed_bytes(int rows, int k);
void ck_q8_pack(const ck_block_q8_0 *src, int rows, int k, ck_panel_block *dst);
void ck_q8_unpack(const ck_panel_block *src, int rows, int k, ck_block_q8_0 *dst);
// Packs W^T (k rows of `rows` values) by requantizing W's values in blocks of 32 along
// W's rows: the backward-data product dY·W then runs on the forward kernel.
void ck_q8_pack_transposed(const ck_block_q8_0 *src, int rows, int k, ck_panel_block *dst);
// Dequantizes rows [row0, row0+nrows) x columns [col0, col0+ncols) (col0 a multiple of
// 32) of a packed matrix into dst with leading dimension ldd.
void ck_q8_packed_dequantize(const ck_panel_block *src, int rows, int k, int row0, int nrows,
                             int col0, int ncols, float *dst, int ldd);

#endif
