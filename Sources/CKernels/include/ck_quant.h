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
    CK_TYPE_Q5_0 = 6,
    CK_TYPE_Q5_1 = 7,
    CK_TYPE_Q8_0 = 8,
    CK_TYPE_Q4_K = 12,
    CK_TYPE_Q5_K = 13,
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

// Q4_0 rows as ggml's reference quantizer writes them (ceil(k/32) blocks, zero-padded
// tail). Returns how many values were not finite, each stored as 0.
int ck_quantize_q4_0(const float *src, int rows, int k, ck_block_q4_0 *dst);

// Blocks among `count` GGUF blocks of a quantized type whose scale (or minimum) is a NaN
// or an infinity (0 for other types).
int64_t ck_blocks_nonfinite(ck_type type, const void *blocks, int64_t count);

// Packed panels (ck_blocks.h) of the types the GEMM kernels run on: Q8_0, Q4_0, Q4_1, Q4_K
// and Q6_K. Rows are grouped by CK_PANEL (the last panel padded with zero weights), each
// panel holding its row's ceil(k / block values) consecutive panel blocks. Index:
// panel * blocks_per_row + block. Every function returns 0 (or CK_ERR_UNSUPPORTED) for
// another type.
int ck_packed_block_values(ck_type type);   // weights per block along K: 32 or 256
size_t ck_packed_block_bytes(ck_type type); // bytes of one panel block
int ck_packed_blocks_per_row(ck_type type, int k);
int ck_q8_panels(int rows);                  // panels of `rows` rows (any type)
size_t ck_packed_bytes(ck_type type, int rows, int k);
// Packs `rows` rows of ceil(k / block values) GGUF blocks each, bits as stored.
ck_status ck_pack(ck_type type, const void *src, int rows, int k, void *dst);
// Dequantizes rows [row0, row0+nrows) x columns [col0, col0+ncols) of a packed matrix into
// dst with leading dimension ldd, as ck_dequantize does the GGUF blocks; rows and columns
// past the matrix read as 0.
void ck_packed_dequantize(ck_type type, const void *src, int rows, int k, int row0, int nrows, int col0,
                          int ncols, float *dst, int ldd);
// The scale and minimum of the weight at (row, col): its value is scale·(u − zero) + min,
// u the stored unsigned value (zero: 128 Q8_0, 8 Q4_0, 32 Q6_K, else 0). The backward-data
// product folds the scale into dY and adds the minimum apart.
void ck_packed_scale(ck_type type, const void *src, int rows, int k, int row, int col, float *scale, float *min);
// Q8_0 panels back to GGUF blocks (export is bit-identical).
void ck_q8_unpack(const ck_panel_block *src, int rows, int k, ck_block_q8_0 *dst);
// Packs W^T (k rows of `rows` values) by requantizing W's values in blocks of 32 along
// W's rows: the backward-data product dY·W then runs on the forward kernel.
void ck_q8_pack_transposed(const ck_block_q8_0 *src, int rows, int k, ck_panel_block *dst);

#endif
