// Binary layouts of quantized blocks. This header owns them: GGUF's storage blocks
// (as in ggml-common.h) and the packed int8 panel the GEMM kernels run on.
#ifndef CK_BLOCKS_H
#define CK_BLOCKS_H

#include <stdint.h>

#define CK_QK 32        // values per Q8_0/Q4_0/Q4_1 block
#define CK_QK_K 256     // values per K-quant super-block
#define CK_PANEL 16     // weight rows per packed panel: one zmm of int32 lanes

typedef uint16_t ck_half; // IEEE binary16 bits

// GGUF storage blocks (little-endian, packed, no padding).
typedef struct { ck_half d; int8_t qs[CK_QK]; } ck_block_q8_0;
typedef struct { ck_half d; uint8_t qs[CK_QK / 2]; } ck_block_q4_0;
typedef struct { ck_half d; ck_half m; uint8_t qs[CK_QK / 2]; } ck_block_q4_1;
typedef struct { ck_half d; ck_half dmin; uint8_t scales[12]; uint8_t qs[CK_QK_K / 2]; } ck_block_q4_k;
typedef struct { uint8_t ql[CK_QK_K / 2]; uint8_t qh[CK_QK_K / 4]; int8_t scales[CK_QK_K / 16]; ck_half d; } ck_block_q6_k;

_Static_assert(sizeof(ck_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(ck_block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(ck_block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(ck_block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(ck_block_q6_k) == 210, "Q6_K block is 210 bytes");

// One 32-wide K block of a packed panel of CK_PANEL weight rows.
// d[r] is row r's Q8_0 scale as the file's fp16 (one instruction widens all 16; keeping
// them half costs nothing and saves 6% of the bytes a decoding step streams).
// q[g][r][j] is row r's weight 4g+j stored offset-binary (w + 128, w in [-127, 127]):
// one 64-byte load then feeds VPDPBUSD (u8 x s8) 4 weights for each of the 16 rows.
typedef struct {
    ck_half d[CK_PANEL];
    uint8_t q[CK_QK / 4][CK_PANEL][4];
} ck_panel_block;

_Static_assert(sizeof(ck_panel_block) == 544, "panel block is 544 bytes");

#endif
