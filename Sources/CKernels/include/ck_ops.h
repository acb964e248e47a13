// The Llama elementwise operations, each forward beside its backward (Sources/LoRACore/LoRACore.docc/ModelMath.md).
// Shapes: T tokens (rows), D features; everything f32 row-major.
#ifndef CK_OPS_H
#define CK_OPS_H

#include <stdint.h>
#include "ck_cpu.h"

// RMSNorm: y = x * rstd * g, rstd = 1/sqrt(mean(x^2) + eps). rstd [T] is kept for backward.
void ck_rmsnorm_fwd(const float *x, const float *g, int t, int d, float eps, float *y, float *rstd);
// dx = rstd * (dy*g - x^ * mean(dy*g * x^)), x^ = x*rstd. dg (nullable) accumulates sum_t dy*x^.
void ck_rmsnorm_bwd(const float *dy, const float *x, const float *g, const float *rstd, int t, int d,
                    float *dx, float *dg);

// RoPE on x [T, heads, head_dim] in place, rotating the first n_rot dims of each head:
// pair p turns by pos[t] * inv_freq[p] (n_rot/2 frequencies, so scaled RoPE variants are
// just other frequencies).
typedef enum {
    CK_ROPE_NORM = 0,  // adjacent pairs (2i, 2i+1): GGUF arch llama (Q/K rows permuted)
    CK_ROPE_NEOX = 1,  // pairs (i, i + n_rot/2): Hugging Face rotate_half
} ck_rope_mode;
// The standard frequencies theta^(-2p/n_rot), p < n_rot/2.
void ck_rope_inv_freq(float theta, int n_rot, float *inv_freq);
void ck_rope_fwd(float *x, int t, int heads, int head_dim, int n_rot, const int32_t *pos, const float *inv_freq,
                 ck_rope_mode mode);
// The rotation is orthogonal, so its backward rotates dy by the opposite angle.
void ck_rope_bwd(float *dx, int t, int heads, int head_dim, int n_rot, const int32_t *pos, const float *inv_freq,
                 ck_rope_mode mode);

// Causal softmax over attention scores s [T, S] in place: query row t sees keys
// s <= t + offset (offset = S - T for a KV cache holding S - T earlier positions);
// scores are multiplied by scale first, masked entries become 0.
void ck_softmax_causal_fwd(float *s, int t, int cols, int offset, float scale);
// dS = P * (dP - rowsum(dP * P)); writes into dp (in place allowed: ds == dp).
void ck_softmax_bwd(const float *p, const float *dp, int t, int cols, float *ds);

// SwiGLU: m = silu(a) * b over n values.
void ck_swiglu_fwd(const float *a, const float *b, int64_t n, float *m);
void ck_swiglu_bwd(const float *a, const float *b, const float *dm, int64_t n, float *da, float *db);

// Cross-entropy over logits [T, V] with integer targets; a negative target is ignored.
// Writes loss[t] = logsumexp(z_t) - z_t[y_t] (0 when ignored) and lse[t]; returns the
// number of counted rows.
int ck_cross_entropy_fwd(const float *logits, const int32_t *targets, int t, int v, float *loss, float *lse);
// dlogits = (softmax(z_t) - onehot(y_t)) * scale for counted rows, 0 for ignored ones
// (scale = 1/N for a mean loss). dlogits may be logits itself (each element is read once,
// before its own write).
void ck_cross_entropy_bwd(const float *logits, const int32_t *targets, const float *lse, int t, int v,
                          float scale, float *dlogits);

// x += y over n values.
void ck_add(const float *y, int64_t n, float *x);
// dst[i, 0:cols] = src[i, 0:cols] for rows rows, each matrix with its own row stride: a
// block of columns out of a wider matrix, or into one.
void ck_copy_matrix(const float *src, int ld_src, int rows, int cols, float *dst, int ld_dst);

// LoRA's added output at inference: y[i] += scale · B·(A·x[i]) for x [m, in], y [m, out],
// from the transposes at = Aᵀ [in, rank] and bt = Bᵀ [rank, out]. Each row's result is the
// same bits for any m and thread count.
void ck_lora_fwd(const float *x, int m, int in, const float *at, int rank, const float *bt, int out, float scale,
                 float *y);

// The products of LoRA's training step, C = alpha · op(A) · B (+ C when `accumulate`), for
// row-major op(A) [m, k] (A itself [k, m] when trans_a), B [k, n], C [m, n]: one of the sides
// is the rank, so sgemm's packing costs more than the sums. Each element is summed over k in
// order by one thread: the same bits for any thread count and any m.
void ck_lora_product(int trans_a, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                     int accumulate, float *c, int ldc);

// Inverted dropout: out[i] = x[i] / (1 - p) where keep(seed, i), else 0; keep is drawn with
// probability 1 - p from a counter-based hash of (seed, i), so the mask is the same for any
// thread count and can be drawn again in the backward pass instead of being stored.
void ck_dropout(const float *x, int64_t n, float p, uint64_t seed, float *out);

// One AdamW step over n parameters, as PyTorch's torch.optim.AdamW (decoupled weight decay,
// bias correction; `step` counts from 1):
//   p *= 1 - lr·wd;  m = b1·m + (1-b1)·g;  v = b2·v + (1-b2)·g²;
//   p -= lr / (1 - b1^step) · m / (sqrt(v) / sqrt(1 - b2^step) + eps)
void ck_adamw_step(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                   float eps, float weight_decay, int step);

#endif
