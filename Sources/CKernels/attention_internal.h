// Private to the attention kernels: the constants and the decoding loops that prefill
// (ops_attention.c) and decoding (attention_decode.c) share.
#ifndef CK_ATTENTION_INTERNAL_H
#define CK_ATTENTION_INTERNAL_H
#include <stddef.h>
#include "ck_internal.h"

// Query rows per task: enough rows for sgemm to run at speed, small enough that 9 heads
// of a 512-token prompt still split evenly over the threads. The backward pass walks the
// causal triangle in blocks of the same size.
#define ATTN_ROWS 64
// Query heads one decoding task serves together (a kv head's group, in chunks of this many).
#define GROUP_MAX 8
// A decoding row goes through the cache in runs of KEY_RUN keys, one task per (kv head,
// chunk of its query heads, run), merged afterwards: the work splits evenly over the threads
// at any context length, and each key and value is read once for its group. The runs are
// fixed, not derived from the thread count, so results are the same with any count.
#define KEY_RUN 64

static inline int ck_attn_key_runs(int s) { return ck_div_up(s > 0 ? s : 1, KEY_RUN); }
// Floats of a decoding row's partials: [heads][runs][head_dim + 2] (o, then m and l).
static inline size_t ck_attn_partial_floats(int heads, int head_dim, int s) {
    return (size_t)heads * ck_attn_key_runs(s) * (head_dim + 2);
}

// Decoding tasks of one row over s cached positions.
int ck_attn_decode_task_count(int heads, int kv_heads, int s);
// Runs decoding task `task` into the sequence's partials `part`, having asked for the keys
// and values of the thread's next task (`ahead` further); `scores` is GROUP_MAX * KEY_RUN floats.
void ck_attn_decode_task(int task, int ahead, const float *q, int heads, int kv_heads, int head_dim, const void *v, int s,
                         int ldkv, const void *kt, int ldkt, int kv_half, float scale, float *part, float *scores);
// Head h's output row from its runs in a decoding row's partials.
void ck_attn_merge_head(const float *part, int h, int s, int head_dim, float *out);
// One query row of head h over a cache inside a task of its own: its runs one after the
// other, then merged (the same arithmetic as decoding tasks); `mine` holds GROUP_MAX *
// KEY_RUN + ck_attn_partial_floats(1, head_dim, s) floats.
void ck_attn_decode_row_head(const float *q, int h, int heads, int kv_heads, int head_dim, const void *v, int s, int ldkv,
                             const void *kt, int ldkt, int kv_half, float scale, float *out, float *mine);

#endif
