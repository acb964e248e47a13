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
// Q5 blocks: a Q4 block's nibbles plus one high bit a weight in qh. Read (dequantized), not
// computed with: the loader requantizes them to Q8_0.
typedef struct { ck_half d; uint8_t qh[4]; uint8_t qs[CK_QK / 2]; } ck_block_q5_0;
typedef struct { ck_half d; ck_half m; uint8_t qh[4]; uint8_t qs[CK_QK / 2]; } ck_block_q5_1;
typedef struct { ck_half d; ck_half dmin; uint8_t scales[12]; uint8_t qh[CK_QK_K / 8]; uint8_t qs[CK_QK_K / 2]; } ck_block_q5_k;
typedef struct { uint8_t ql[CK_QK_K / 2]; uint8_t qh[CK_QK_K / 4]; int8_t scales[CK_QK_K / 16]; ck_half d; } ck_block_q6_k;

_Static_assert(sizeof(ck_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(ck_block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(ck_block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(ck_block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(ck_block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(ck_block_q5_1) == 24, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(ck_block_q5_k) == 176, "Q5_K block is 176 bytes");
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

// The 4- and 6-bit panels keep a GGUF block's bits as stored, regrouped so one 64-byte load
// holds 4 consecutive weights (one 32-bit lane) of each of the 16 rows, as in the Q8_0 panel;
// the nibbles stay unsigned (VPDPBUSD's u8 operand) and the scales stay the file's.
//
// Q4_0 (32 weights): qs[g][r][t] is row r's GGUF byte qs[4g+t]: its low nibble is weight
// 4g+t, its high nibble weight 16+4g+t; w = d·(q − 8).
typedef struct {
    ck_half d[CK_PANEL];
    uint8_t qs[CK_QK / 8][CK_PANEL][4];
} ck_panel_q4_0;
// Q4_1 (32 weights): as Q4_0 with w = d·q + m.
typedef struct {
    ck_half d[CK_PANEL];
    ck_half m[CK_PANEL];
    uint8_t qs[CK_QK / 8][CK_PANEL][4];
} ck_panel_q4_1;
// Q4_K (256 weights, 8 sub-blocks of 32): sc/m are the 6-bit sub-block scales and mins
// unpacked to bytes; qs[c][g][r][t] is row r's GGUF byte qs[32c+4g+t], whose low nibble is
// weight 64c+4g+t (sub-block 2c) and high nibble weight 64c+32+4g+t (sub-block 2c+1);
// w = d·sc·q − dmin·m.
typedef struct {
    ck_half d[CK_PANEL];
    ck_half dmin[CK_PANEL];
    uint8_t sc[CK_QK_K / CK_QK][CK_PANEL];
    uint8_t m[CK_QK_K / CK_QK][CK_PANEL];
    uint8_t qs[4][CK_QK / 4][CK_PANEL][4];
} ck_panel_q4_k;
// Q6_K (256 weights, 16 sub-blocks of 16, two halves of 128): for half h and l = 4g+t,
// ql[h][0][g][r][t] is row r's GGUF ql[64h+l], ql[h][1] its ql[64h+32+l], qh[h][g][r][t]
// its qh[32h+l]. Weight 128h+32j+l (j = 0..3) takes the low nibble of ql[h][j&1] (j < 2) or
// its high nibble (j ≥ 2) and bits 2j, 2j+1 of qh as bits 4, 5; w = d·sc·(q − 32).
typedef struct {
    ck_half d[CK_PANEL];
    int8_t sc[CK_QK_K / 16][CK_PANEL];
    uint8_t ql[2][2][CK_QK / 4][CK_PANEL][4];
    uint8_t qh[2][CK_QK / 4][CK_PANEL][4];
} ck_panel_q6_k;

_Static_assert(sizeof(ck_panel_q4_0) == 288, "Q4_0 panel block is 288 bytes (4.5 bits a weight)");
_Static_assert(sizeof(ck_panel_q4_1) == 320, "Q4_1 panel block is 320 bytes (5 bits a weight)");
_Static_assert(sizeof(ck_panel_q4_k) == 2368, "Q4_K panel block is 2368 bytes (4.625 bits a weight)");
_Static_assert(sizeof(ck_panel_q6_k) == 3360, "Q6_K panel block is 3360 bytes (6.5625 bits a weight)");

#endif
