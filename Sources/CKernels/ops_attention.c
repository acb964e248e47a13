// Grouped-query causal attention, forward: scores, softmax and the weighted sum of values,
// per (head, block of query rows), each task running single-threaded sgemm on its slice; a
// single row over a cache runs the decoding loops (attention_decode.c).
#include <math.h>
#include <string.h>
#include "attention_internal.h"
#include "include/ck_attention.h"
#include "include/ck_ops.h"


// One query row: scores[j] = q · k_j. Built for each vector width (the loops are the whole
// cost of decoding attention); the loader picks the widest this CPU runs.
CK_VECTOR_CLONES static void scores_direct(const float *q, const float *k, int ldk, int head_dim, int keys, float *scores) {
    for (int j = 0; j < keys; j++) {
        const float *kj = k + (size_t)j * ldk;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int d = 0; d < head_dim; d++) dot += q[d] * kj[d];
        scores[j] = dot;
    }
}

// One query row's values mixed: out = sum_j p[j] v_j over f32 rows (no cache), four keys per
// step into one expression so consecutive keys do not wait on each other's additions.
CK_VECTOR_CLONES static void mix_rows(const float *p, const float *v, int ldv, int head_dim, int keys, float *out) {
    for (int d = 0; d < head_dim; d++) out[d] = 0;
    int j = 0;
    for (; j + 4 <= keys; j += 4) {
        const float *v0 = v + (size_t)j * ldv, *v1 = v0 + ldv, *v2 = v1 + ldv, *v3 = v2 + ldv;
#pragma omp simd
        for (int d = 0; d < head_dim; d++)
            out[d] += (p[j] * v0[d] + p[j + 1] * v1[d]) + (p[j + 2] * v2[d] + p[j + 3] * v3[d]);
    }
    for (; j < keys; j++) {
        const float *vj = v + (size_t)j * ldv;
#pragma omp simd
        for (int d = 0; d < head_dim; d++) out[d] += p[j] * vj[d];
    }
}

// Rows [0, rows) x columns [0, cols) of a half matrix (leading dimension ld) into f32 (ldo).
CK_VECTOR_CLONES static void widen(const _Float16 *src, int ld, int rows, int cols, float *dst, int ldo) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)r * ldo + c] = (float)src[(size_t)r * ld + c];
}

// Per thread: the scores of a block of rows (for a half cache also the f32 keys and values
// the block reads), or of a decoding run with a lone decoding row's partials.
static size_t thread_scratch(int t, int s, int head_dim, int kv_half) {
    const int rows = t < ATTN_ROWS ? t : ATTN_ROWS;
    const size_t block = (size_t)rows * (s > 0 ? s : 1) + (kv_half ? 2 * (size_t)head_dim * s : 0);
    const size_t decoding = (size_t)GROUP_MAX * KEY_RUN + ck_attn_partial_floats(1, head_dim, s);
    return block > decoding ? block : decoding;
}

static int is_decoding_row(int t, const void *kt, const float *probs) { return t == 1 && kt && !probs; }

size_t ck_attention_workspace_size(int t, int s, int heads, int head_dim, int kv_half) {
    return ((size_t)ck_threads() * thread_scratch(t, s, head_dim, kv_half) + (t == 1 ? ck_attn_partial_floats(heads, head_dim, s) : 0)) *
           sizeof(float);
}

// One task: query rows [r0, r0 + ATTN_ROWS) of head h of one sequence, with `mine` the
// calling thread's scratch.
static void attention_task(const float *q, int t, int heads, int kv_heads, int head_dim, const float *k, const void *v,
                           int s, int ldkv, const void *kt, int ldkt, int kv_half, float scale, float *out, float *probs,
                           int h, int r0, float *mine) {
    const int group = heads / kv_heads, offset = s - t, ldq = heads * head_dim;
    const int scratch_rows = t < ATTN_ROWS ? t : ATTN_ROWS;
    const int rows = t - r0 < ATTN_ROWS ? t - r0 : ATTN_ROWS;
    const int visible = offset + r0 + rows;  // keys the last row of the block sees
    const float *qh = q + (size_t)r0 * ldq + (size_t)h * head_dim;
    const size_t c = (size_t)(h / group) * head_dim;  // this head's kv columns
    float *p = probs ? probs + ((size_t)h * t + r0) * s : mine;
    const int ldp = probs ? s : visible;
    float *oh = out + (size_t)r0 * ldq + (size_t)h * head_dim;
    if (rows == 1 && kt && !probs) {
        // one row over a cache: the decoding loops, sgemm's call overhead would outweigh the work
        ck_attn_decode_row_head(q + (size_t)r0 * ldq, h, heads, kv_heads, head_dim, v, visible, ldkv, kt, ldkt, kv_half, scale,
                        out + (size_t)r0 * ldq, mine);
        return;
    }
    if (kv_half) {
        // sgemm reads f32: widen the keys and values this block sees
        float *kts = mine + (size_t)scratch_rows * s, *vs = kts + (size_t)head_dim * s;
        widen((const _Float16 *)kt + c * ldkt, ldkt, head_dim, visible, kts, visible);
        widen((const _Float16 *)v + c, ldkv, visible, head_dim, vs, head_dim);
        ck_sgemm_serial(0, 0, rows, visible, head_dim, 1.0f, qh, ldq, kts, visible, 0.0f, p, ldp);
    } else if (kt) {
        ck_sgemm_serial(0, 0, rows, visible, head_dim, 1.0f, qh, ldq, (const float *)kt + c * ldkt, ldkt, 0.0f, p, ldp);
    } else if (rows == 1) {
        scores_direct(qh, k + c, ldkv, head_dim, visible, p);
    } else {
        ck_sgemm_serial(0, 1, rows, visible, head_dim, 1.0f, qh, ldq, k + c, ldkv, 0.0f, p, ldp);
    }
    for (int i = 0; i < rows; i++) {
        ck_softmax_causal_row(p + (size_t)i * ldp, visible, offset + r0 + i + 1, scale);
        if (probs) memset(p + (size_t)i * ldp + visible, 0, (size_t)(s - visible) * sizeof(float));
    }
    if (kv_half) {
        const float *vs = mine + (size_t)scratch_rows * s + (size_t)head_dim * s;
        ck_sgemm_serial(0, 0, rows, head_dim, visible, 1.0f, p, ldp, vs, head_dim, 0.0f, oh, ldq);
    } else if (rows == 1) {
        mix_rows(p, (const float *)v + c, ldkv, head_dim, visible, oh);
    } else {
        ck_sgemm_serial(0, 0, rows, head_dim, visible, 1.0f, p, ldp, (const float *)v + c, ldkv, 0.0f, oh, ldq);
    }
}

// A sequence's tasks: decoding tasks for a single row over a cache, else one per (head,
// block of ATTN_ROWS query rows).
static int task_count(int t, int s, int heads, int kv_heads, const void *kt, const float *probs) {
    return is_decoding_row(t, kt, probs) ? ck_attn_decode_task_count(heads, kv_heads, s) : heads * ck_div_up(t, ATTN_ROWS);
}

static void run_task(int task, int ahead, const float *q, int t, int heads, int kv_heads, int head_dim, const float *k,
                     const void *v, int s, int ldkv, const void *kt, int ldkt, int kv_half, float scale, float *out,
                     float *probs, float *part, float *mine) {
    if (is_decoding_row(t, kt, probs)) {
        ck_attn_decode_task(task, ahead, q, heads, kv_heads, head_dim, v, s, ldkv, kt, ldkt, kv_half, scale, part, mine);
    } else {
        const int row_blocks = ck_div_up(t, ATTN_ROWS);
        attention_task(q, t, heads, kv_heads, head_dim, k, v, s, ldkv, kt, ldkt, kv_half, scale, out, probs, task / row_blocks,
                       (task % row_blocks) * ATTN_ROWS, mine);
    }
}

static int attention_shape_ok(int t, int s, int heads, int kv_heads, int head_dim, int ldkv, const void *kt, int ldkt,
                              int kv_half) {
    return t >= 0 && s >= t && heads > 0 && kv_heads > 0 && heads % kv_heads == 0 && head_dim > 0 &&
           ldkv >= kv_heads * head_dim && (!kt || ldkt >= s) && (!kv_half || kt);
}

ck_status ck_attention_fwd(const float *q, int t, int heads, int kv_heads, int head_dim, const float *k,
                           const void *v, int s, int ldkv, const void *kt, int ldkt, int kv_half, float scale,
                           float *out, float *probs, void *workspace, size_t workspace_size) {
    if (!attention_shape_ok(t, s, heads, kv_heads, head_dim, ldkv, kt, ldkt, kv_half)) return CK_ERR_SHAPE;
    if (t == 0) return CK_OK;
    if (!q || (!k && !kt) || !v || !out) return CK_ERR_NULL;
    const size_t scratch = thread_scratch(t, s, head_dim, kv_half);
    if ((!probs || kv_half) && (!workspace || workspace_size < ck_attention_workspace_size(t, s, heads, head_dim, kv_half)))
        return CK_ERR_WORKSPACE;
    const int tasks = task_count(t, s, heads, kv_heads, kt, probs), decoding = is_decoding_row(t, kt, probs);
    float *part = workspace, *scratches = part ? part + (decoding ? ck_attn_partial_floats(heads, head_dim, s) : 0) : NULL;
#pragma omp parallel num_threads(ck_threads()) if (tasks > 1 && (long)t * s * head_dim >= 4096)
    {
        int rank, size;
        ck_team(&rank, &size);
        float *mine = scratches ? scratches + (size_t)rank * scratch : NULL;
        // one task at a time round the team: heads and row blocks, whose causal costs differ,
        // interleave over the threads
        for (int task = rank; task < tasks; task += size)
            run_task(task, size, q, t, heads, kv_heads, head_dim, k, v, s, ldkv, kt, ldkt, kv_half, scale, out, probs, part, mine);
        if (decoding) {
#pragma omp barrier
            for (int h = rank; h < heads; h += size) ck_attn_merge_head(part, h, s, head_dim, out);
        }
    }
    return CK_OK;
}

// A batch's workspace in floats: the partials of every decoding row, then one scratch a
// thread, as large as the largest sequence needs.
static void batch_workspace(int n, const int *t, const int *s, int heads, int head_dim, int kv_half, size_t *partials,
                            size_t *scratch) {
    *partials = *scratch = 0;
    for (int i = 0; i < n; i++) {
        const size_t one = thread_scratch(t[i], s[i], head_dim, kv_half);
        if (one > *scratch) *scratch = one;
        if (t[i] == 1) *partials += ck_attn_partial_floats(heads, head_dim, s[i]);
    }
}

size_t ck_attention_cached_batch_workspace_size(int n, const int *t, const int *s, int heads, int head_dim, int kv_half) {
    size_t partials, scratch;
    batch_workspace(n, t, s, heads, head_dim, kv_half, &partials, &scratch);
    return (partials + (size_t)ck_threads() * scratch) * sizeof(float);
}

ck_status ck_attention_fwd_cached_batch(int n, const float *q, const int *t, int heads, int kv_heads, int head_dim,
                                        const void *const *v, const int *s, int ldkv, const void *const *kt,
                                        const int *ldkt, int kv_half, float scale, float *out, void *workspace,
                                        size_t workspace_size) {
    if (n < 0 || (n > 0 && (!q || !t || !v || !s || !kt || !ldkt || !out))) return CK_ERR_NULL;
    int tasks = 0;
    for (int i = 0; i < n; i++) {
        if (!attention_shape_ok(t[i], s[i], heads, kv_heads, head_dim, ldkv, kt[i], ldkt[i], kv_half)) return CK_ERR_SHAPE;
        if (!kt[i] || !v[i]) return CK_ERR_NULL;
        tasks += task_count(t[i], s[i], heads, kv_heads, kt[i], NULL);
    }
    if (!workspace || workspace_size < ck_attention_cached_batch_workspace_size(n, t, s, heads, head_dim, kv_half))
        return CK_ERR_WORKSPACE;
    size_t partials, scratch;
    batch_workspace(n, t, s, heads, head_dim, kv_half, &partials, &scratch);
    const int ldq = heads * head_dim;
    float *scratches = (float *)workspace + partials;
#pragma omp parallel num_threads(ck_threads()) if (tasks > 1)
    {
        int rank, size;
        ck_team(&rank, &size);
        float *mine = scratches + (size_t)rank * scratch;
        // Task i of the flat list: its sequence and its place there, found by a walk that is
        // short next to the task's own work (n is a batch of at most a few dozen sequences).
        int seq = 0, first = 0, row = 0;
        size_t part = 0;
        for (int task = rank; task < tasks; task += size) {
            while (task >= first + task_count(t[seq], s[seq], heads, kv_heads, kt[seq], NULL)) {
                first += task_count(t[seq], s[seq], heads, kv_heads, kt[seq], NULL);
                row += t[seq];
                if (t[seq] == 1) part += ck_attn_partial_floats(heads, head_dim, s[seq]);
                seq++;
            }
            run_task(task - first, size, q + (size_t)row * ldq, t[seq], heads, kv_heads, head_dim, NULL, v[seq], s[seq], ldkv, kt[seq],
                     ldkt[seq], kv_half, scale, out + (size_t)row * ldq, NULL, (float *)workspace + part, mine);
        }
#pragma omp barrier
        // each decoding row's heads from their runs, the (sequence, head) pairs round the team
        row = 0;
        part = 0;
        for (int i = 0, pair = 0; i < n; row += t[i], i++) {
            if (t[i] != 1) continue;
            for (int h = 0; h < heads; h++, pair++)
                if (pair % size == rank) ck_attn_merge_head((float *)workspace + part, h, s[i], head_dim, out + (size_t)row * ldq);
            part += ck_attn_partial_floats(heads, head_dim, s[i]);
        }
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
