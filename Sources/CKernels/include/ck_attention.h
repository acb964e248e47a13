// Grouped-query causal attention over a KV cache, forward with a plain reference beside it.
#ifndef CK_ATTENTION_H
#define CK_ATTENTION_H

#include <stddef.h>
#include "ck_cpu.h"

// T new queries attend to S = offset + T keys (the cache holds `offset` earlier positions,
// then the T new ones). Query head h reads kv head h / (heads / kv_heads), as HF repeat_kv.
//   q    [T, heads * head_dim]
//   k, v [S, kv_heads * head_dim] rows `ldkv` floats apart (a cache's row stride)
//   out  [T, heads * head_dim]
//   kt (nullable) [kv_heads * head_dim, >= S] rows `ldkt` apart: the keys transposed, as a
//        cache keeps them (a single query row then scores all keys with vector FMAs
//        instead of one horizontal sum per key); when given, k is not read and may be NULL
//   kv_half: kt and v hold IEEE half values (a cache at half the memory; needs kt)
//   probs (nullable) [heads, T, S]: the softmax probabilities, kept for a backward pass;
//        masked entries are written as 0.
// Scores are scaled by `scale` (1/sqrt(head_dim)) before the softmax. A single row over a
// cache (decoding) goes through the keys in fixed runs of 64 whose partial results are
// merged (flash-decoding), so that the threads share the work at any context length.
size_t ck_attention_workspace_size(int t, int s, int heads, int head_dim, int kv_half);
ck_status ck_attention_fwd(const float *q, int t, int heads, int kv_heads, int head_dim, const float *k,
                           const void *v, int s, int ldkv, const void *kt, int ldkt, int kv_half, float scale,
                           float *out, float *probs, void *workspace, size_t workspace_size);
// Several sequences, each over its own cache, in one parallel region (batched decoding:
// one call per sequence would fork the threads once per sequence and layer). Sequence i
// has t[i] query rows, consecutive in q and out ([sum t, heads * head_dim]), and attends to
// s[i] positions of its cache: values v[i] (rows ldkv apart) and transposed keys kt[i]
// (rows ldkt[i] apart), as ck_attention_fwd reads a cache. Workspace from
// ck_attention_cached_batch_workspace_size.
size_t ck_attention_cached_batch_workspace_size(int n, const int *t, const int *s, int heads, int head_dim, int kv_half);
ck_status ck_attention_fwd_cached_batch(int n, const float *q, const int *t, int heads, int kv_heads, int head_dim,
                                        const void *const *v, const int *s, int ldkv, const void *const *kt,
                                        const int *ldkt, int kv_half, float scale, float *out, void *workspace,
                                        size_t workspace_size);
// Appends `tokens` rows of keys and values [tokens, width] to a cache at `position`: values
// as rows of vc [capacity, width], keys as columns of kt [width, ldkt]; in IEEE half when
// `half` (round to nearest even), else f32.
void ck_kv_store(const float *k, const float *v, int tokens, int width, void *kt, int ldkt, void *vc, int position,
                 int half);
// Copies a cache's first `positions` keys and values into another cache of the same width
// and element type (keys rows ldkt_out apart there): the continuations of one context.
void ck_kv_copy(const void *kt, int ldkt, const void *vc, int positions, int width, int half, void *kt_out, int ldkt_out,
                void *vc_out);

// Backward of ck_attention_fwd over keys and values of the same T rows (training: no
// cache, offset 0), from the probabilities the forward kept:
//   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = c dS K,  dK = c dSᵀ Q,
// each kv head summing the dK, dV of its query heads in head order (deterministic with any
// thread count).
//   q [T, heads * head_dim], k, v [T, kv_heads * head_dim], probs [heads, T, T],
//   dout [T, heads * head_dim] -> dq [T, heads * head_dim], dk, dv [T, kv_heads * head_dim]
size_t ck_attention_bwd_workspace_size(int t, int heads, int head_dim);
ck_status ck_attention_bwd(const float *q, const float *k, const float *v, const float *probs, const float *dout, int t,
                           int heads, int kv_heads, int head_dim, float scale, float *dq, float *dk, float *dv,
                           void *workspace, size_t workspace_size);

// The same in plain loops with double sums: the meaning of the fast kernels.
void ck_attention_bwd_ref(const float *q, const float *k, const float *v, const float *probs, const float *dout, int t,
                          int heads, int kv_heads, int head_dim, float scale, float *dq, float *dk, float *dv);
void ck_attention_fwd_ref(const float *q, int t, int heads, int kv_heads, int head_dim, const float *k,
                          const float *v, int s, int ldkv, float scale, float *out);

#endif
