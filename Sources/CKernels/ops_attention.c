// Grouped-query causal attention: scores, softmax and the weighted sum of values, per
// (head, block of query rows), each task running single-threaded sgemm on its slice.
#include <math.h>
#include <string.h>
#include "ck_internal.h"
#include "include/ck_attention.h"
#include "include/ck_ops.h"

// Query rows per task: enough rows for sgemm to run at speed, small enough that 9 heads
// of a 512-token prompt still split evenly over the threads.
#define ATTN_ROWS 64

size_t ck_attention_workspace_size(int t, int s) {
    const int rows = t < ATTN_ROWS ? t : ATTN_ROWS;
    return (size_t)ck_threads() * rows * (s > 0 ? s : 1) * sizeof(float);
}

ck_status ck_attention_fwd(const float *q, int t, int heads, int kv_heads, int head_dim, const float *k,
                           const float *v, int s, int ldkv, float scale, float *out, float *probs,
                           void *workspace, size_t workspace_size) {
    if (t < 0 || s < t || heads <= 0 || kv_heads <= 0 || heads % kv_heads || head_dim <= 0 ||
        ldkv < kv_heads * head_dim)
        return CK_ERR_SHAPE;
    if (t == 0) return CK_OK;
    if (!q || !k || !v || !out) return CK_ERR_NULL;
    if (!probs && (!workspace || workspace_size < ck_attention_workspace_size(t, s))) return CK_ERR_WORKSPACE;
    const int group = heads / kv_heads, offset = s - t, ldq = heads * head_dim;
    const int row_blocks = ck_div_up(t, ATTN_ROWS), tasks = heads * row_blocks;
    const int scratch_rows = t < ATTN_ROWS ? t : ATTN_ROWS;
    const int nt = ck_threads();
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (tasks > 1 && (long)t * s * head_dim >= 32768)
    for (int task = 0; task < tasks; task++) {
        const int h = task / row_blocks, r0 = (task % row_blocks) * ATTN_ROWS;
        const int rows = t - r0 < ATTN_ROWS ? t - r0 : ATTN_ROWS;
        const int visible = offset + r0 + rows;  // keys the last row of the block sees
        const float *qh = q + (size_t)r0 * ldq + (size_t)h * head_dim;
        const float *kh = k + (size_t)(h / group) * head_dim, *vh = v + (size_t)(h / group) * head_dim;
        float *p;
        int ldp;
        if (probs) {
            p = probs + ((size_t)h * t + r0) * s;
            ldp = s;
        } else {
#ifdef _OPENMP
            const int thread = omp_get_thread_num();
#else
            const int thread = 0;
#endif
            p = (float *)workspace + (size_t)thread * scratch_rows * s;
            ldp = visible;
        }
        ck_sgemm_serial(0, 1, rows, visible, head_dim, 1.0f, qh, ldq, kh, ldkv, 0.0f, p, ldp);
        for (int i = 0; i < rows; i++) {
            ck_softmax_causal_row(p + (size_t)i * ldp, visible, offset + r0 + i + 1, scale);
            if (probs) memset(p + (size_t)i * ldp + visible, 0, (size_t)(s - visible) * sizeof(float));
        }
        ck_sgemm_serial(0, 0, rows, head_dim, visible, 1.0f, p, ldp, vh, ldkv, 0.0f,
                        out + (size_t)r0 * ldq + (size_t)h * head_dim, ldq);
    }
    return CK_OK;
}

void ck_attention_fwd_ref(const float *q, int t, int heads, int kv_heads, int head_dim, const float *k,
                          const float *v, int s, int ldkv, float scale, float *out) {
    const int group = heads / kv_heads, offset = s - t, ldq = heads * head_dim;
    double scores[s > 0 ? s : 1];
    for (int h = 0; h < heads; h++) {
        const int c = h / group;
        for (int i = 0; i < t; i++) {
            const int visible = offset + i + 1;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < visible; j++) {
                double dot = 0;
                for (int d = 0; d < head_dim; d++)
                    dot += (double)q[(size_t)i * ldq + h * head_dim + d] * k[(size_t)j * ldkv + c * head_dim + d];
                scores[j] = dot * scale;
                if (scores[j] > mx) mx = scores[j];
            }
            for (int j = 0; j < visible; j++) sum += scores[j] = exp(scores[j] - mx);
            for (int d = 0; d < head_dim; d++) {
                double acc = 0;
                for (int j = 0; j < visible; j++) acc += scores[j] * v[(size_t)j * ldkv + c * head_dim + d];
                out[(size_t)i * ldq + h * head_dim + d] = (float)(acc / sum);
            }
        }
    }
}
