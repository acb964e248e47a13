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
// Query heads one decoding task serves together (a kv head's group, in chunks of this many).
#define GROUP_MAX 8

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

// The loops of a decoding step over a cache, for each element type a cache holds (f32 for
// exact models, _Float16 for int8 ones; F16C/AVX-512 widen 8 or 16 halves per instruction,
// so reading half the bytes costs no extra time): one query row of each of G heads that
// share a kv head, against transposed keys kt [head_dim, >= keys] and value rows.
#define CACHE_LOOPS(NAME, T)                                                                                         \
    /* Each key and value is read and widened once for the group instead of once per head. G is a  */         \
    /* constant at each call (group_##NAME dispatches), so the accumulators stay in registers.     */         \
    /* q: G rows head_dim apart; scores: G rows `keys` apart; out: G rows head_dim apart.          */         \
    static inline __attribute__((always_inline)) void group_fixed_##NAME(                                      \
        const float *q, const int G, const T *kt, int ldkt, const T *v, int ldv, int head_dim, int keys,        \
        float scale, float *scores, float *out) {                                                              \
        enum { BLOCK = 16 };                                                                                   \
        int j0 = 0;                                                                                            \
        for (; j0 + BLOCK <= keys; j0 += BLOCK) {                                                              \
            float acc[GROUP_MAX][BLOCK];                                                                       \
            for (int h = 0; h < G; h++) _Pragma("omp simd") for (int j = 0; j < BLOCK; j++) acc[h][j] = 0;     \
            for (int d = 0; d < head_dim; d++) {                                                               \
                const T *row = kt + (size_t)d * ldkt + j0;                                                     \
                float k[BLOCK];                                                                                \
                _Pragma("omp simd") for (int j = 0; j < BLOCK; j++) k[j] = (float)row[j];                      \
                for (int h = 0; h < G; h++) {                                                                  \
                    const float qd = q[(size_t)h * head_dim + d];                                              \
                    _Pragma("omp simd") for (int j = 0; j < BLOCK; j++) acc[h][j] += qd * k[j];                \
                }                                                                                              \
            }                                                                                                  \
            for (int h = 0; h < G; h++) memcpy(scores + (size_t)h * keys + j0, acc[h], sizeof acc[h]);         \
        }                                                                                                      \
        for (int h = 0; h < G; h++)                                                                            \
            for (int j = j0; j < keys; j++) {                                                                  \
                float dot = 0;                                                                                 \
                for (int d = 0; d < head_dim; d++) dot += q[(size_t)h * head_dim + d] * (float)kt[(size_t)d * ldkt + j]; \
                scores[(size_t)h * keys + j] = dot;                                                            \
            }                                                                                                  \
        for (int h = 0; h < G; h++) ck_softmax_causal_row(scores + (size_t)h * keys, keys, keys, scale);       \
        for (int h = 0; h < G; h++)                                                                            \
            for (int d = 0; d < head_dim; d++) out[(size_t)h * head_dim + d] = 0;                              \
        /* values widened once per 4 keys, in pieces of 64 dims, then used by every head */                  \
        for (int d0 = 0; d0 < head_dim; d0 += 64) {                                                            \
            const int n = head_dim - d0 < 64 ? head_dim - d0 : 64;                                             \
            int j = 0;                                                                                         \
            for (; j + 4 <= keys; j += 4) {                                                                    \
                float w[4][64];                                                                                \
                for (int r = 0; r < 4; r++) {                                                                  \
                    const T *vr = v + (size_t)(j + r) * ldv + d0;                                              \
                    _Pragma("omp simd") for (int d = 0; d < n; d++) w[r][d] = (float)vr[d];                    \
                }                                                                                              \
                for (int h = 0; h < G; h++) {                                                                  \
                    const float *p = scores + (size_t)h * keys + j;                                            \
                    float *oh = out + (size_t)h * head_dim + d0;                                               \
                    _Pragma("omp simd") for (int d = 0; d < n; d++) oh[d] +=                                   \
                        (p[0] * w[0][d] + p[1] * w[1][d]) + (p[2] * w[2][d] + p[3] * w[3][d]);                 \
                }                                                                                              \
            }                                                                                                  \
            for (; j < keys; j++) {                                                                            \
                const T *vj = v + (size_t)j * ldv + d0;                                                        \
                for (int h = 0; h < G; h++) {                                                                  \
                    const float ph = scores[(size_t)h * keys + j];                                             \
                    float *oh = out + (size_t)h * head_dim + d0;                                               \
                    _Pragma("omp simd") for (int d = 0; d < n; d++) oh[d] += ph * (float)vj[d];                \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }                                                                                                          \
    CK_VECTOR_CLONES static void group_##NAME(const float *q, int g, const T *kt, int ldkt, const T *v, int ldv,   \
                                           int head_dim, int keys, float scale, float *scores, float *out) {     \
        switch (g) {                                                                                           \
        case 1: group_fixed_##NAME(q, 1, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out); break;        \
        case 2: group_fixed_##NAME(q, 2, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out); break;        \
        case 3: group_fixed_##NAME(q, 3, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out); break;        \
        case 4: group_fixed_##NAME(q, 4, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out); break;        \
        default: group_fixed_##NAME(q, g, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out); break;       \
        }                                                                                                      \
    }

CACHE_LOOPS(f32, float)
CACHE_LOOPS(f16, _Float16)

// Rows [0, rows) x columns [0, cols) of a half matrix (leading dimension ld) into f32 (ldo).
CK_VECTOR_CLONES static void widen(const _Float16 *src, int ld, int rows, int cols, float *dst, int ldo) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)r * ldo + c] = (float)src[(size_t)r * ld + c];
}

// Per thread: a block of scores, and for a half cache the f32 keys and values one block reads.
static size_t thread_scratch(int t, int s, int head_dim, int kv_half) {
    const int rows = t == 1 ? GROUP_MAX : t < ATTN_ROWS ? t : ATTN_ROWS;
    return (size_t)rows * (s > 0 ? s : 1) + (kv_half && t > 1 ? 2 * (size_t)head_dim * s : 0);
}

size_t ck_attention_workspace_size(int t, int s, int head_dim, int kv_half) {
    return (size_t)ck_threads() * thread_scratch(t, s, head_dim, kv_half) * sizeof(float);
}

// One decoding task: the single query row of heads h0 .. h0 + g - 1, which share kv head c,
// over a cache's s positions (scores of the g heads in `mine`, g rows of s).
static void attention_group_task(const float *q, int head_dim, const void *v, int s, int ldkv, const void *kt, int ldkt,
                                 int kv_half, float scale, float *out, int h0, int g, int c, float *mine) {
    const size_t col = (size_t)c * head_dim;
    if (kv_half)
        group_f16(q + (size_t)h0 * head_dim, g, (const _Float16 *)kt + col * ldkt, ldkt, (const _Float16 *)v + col, ldkv, head_dim, s,
                  scale, mine, out + (size_t)h0 * head_dim);
    else
        group_f32(q + (size_t)h0 * head_dim, g, (const float *)kt + col * ldkt, ldkt, (const float *)v + col, ldkv, head_dim, s,
                  scale, mine, out + (size_t)h0 * head_dim);
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
    if (rows == 1 && kt) {
        // one row over a cache: the decoding loops for this head alone, sgemm's call overhead
        // would outweigh the work
        attention_group_task(q + (size_t)r0 * ldq, head_dim, v, visible, ldkv, kt, ldkt, kv_half, scale, out + (size_t)r0 * ldq,
                             h, 1, h / group, p);
        if (probs) memset(p + visible, 0, (size_t)(s - visible) * sizeof(float));
        return;
    }
    if (kv_half) {
        // sgemm reads f32: widen the keys and values this block sees
        float *kts = mine + (size_t)scratch_rows * s, *vs = kts + (size_t)head_dim * s;
        widen((const _Float16 *)kt + c * ldkt, ldkt, head_dim, visible, kts, visible);
        widen((const _Float16 *)v + c, ldkv, visible, head_dim, vs, head_dim);
        ck_sgemm_serial(0, 0, rows, visible, head_dim, 1.0f, qh, ldq, kts, visible, 0.0f, p, ldp);
    } else if (rows == 1) {
        scores_direct(qh, k + c, ldkv, head_dim, visible, p);
    } else if (kt) {
        ck_sgemm_serial(0, 0, rows, visible, head_dim, 1.0f, qh, ldq, (const float *)kt + c * ldkt, ldkt, 0.0f, p, ldp);
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

// A sequence's tasks. Decoding one row over a cache runs the group loops: by kv head (the
// group's query heads in chunks of GROUP_MAX, each key and value read once for them) when
// there are enough such tasks to spread over the threads, else one task per head (SmolLM2
// decoding a single sequence: 3 kv heads on 2 threads would leave one idle). Each head's
// arithmetic is the same either way, so the choice never changes a result. Everything else
// goes by (head, block of ATTN_ROWS query rows).
static int decodes_by_group(int t, const void *kt, const float *probs) { return t == 1 && kt && !probs; }

static int groups_whole(int heads, int kv_heads, int sequences) {
    return heads > kv_heads && sequences * kv_heads >= 4 * ck_threads();
}

static int task_count(int t, int heads, int kv_heads, const void *kt, const float *probs, int sequences) {
    if (!decodes_by_group(t, kt, probs)) return heads * ck_div_up(t, ATTN_ROWS);
    return groups_whole(heads, kv_heads, sequences) ? kv_heads * ck_div_up(heads / kv_heads, GROUP_MAX) : heads;
}

static void run_task(int task, int sequences, const float *q, int t, int heads, int kv_heads, int head_dim, const float *k,
                     const void *v, int s, int ldkv, const void *kt, int ldkt, int kv_half, float scale, float *out,
                     float *probs, float *mine) {
    const int group = heads / kv_heads;
    if (decodes_by_group(t, kt, probs) && groups_whole(heads, kv_heads, sequences)) {
        const int chunks = ck_div_up(group, GROUP_MAX);
        const int c = task / chunks, h0 = c * group + (task % chunks) * GROUP_MAX;
        const int g = (c + 1) * group - h0 < GROUP_MAX ? (c + 1) * group - h0 : GROUP_MAX;
        attention_group_task(q, head_dim, v, s, ldkv, kt, ldkt, kv_half, scale, out, h0, g, c, mine);
    } else if (decodes_by_group(t, kt, probs)) {
        attention_group_task(q, head_dim, v, s, ldkv, kt, ldkt, kv_half, scale, out, task, 1, task / group, mine);
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

static float *thread_workspace(void *workspace, size_t scratch) {
#ifdef _OPENMP
    return workspace ? (float *)workspace + (size_t)omp_get_thread_num() * scratch : NULL;
#else
    return workspace;
#endif
}

ck_status ck_attention_fwd(const float *q, int t, int heads, int kv_heads, int head_dim, const float *k,
                           const void *v, int s, int ldkv, const void *kt, int ldkt, int kv_half, float scale,
                           float *out, float *probs, void *workspace, size_t workspace_size) {
    if (!attention_shape_ok(t, s, heads, kv_heads, head_dim, ldkv, kt, ldkt, kv_half)) return CK_ERR_SHAPE;
    if (t == 0) return CK_OK;
    if (!q || (!k && !kt) || !v || !out) return CK_ERR_NULL;
    const size_t scratch = thread_scratch(t, s, head_dim, kv_half);
    if ((!probs || (kv_half && t > 1)) && (!workspace || workspace_size < ck_attention_workspace_size(t, s, head_dim, kv_half)))
        return CK_ERR_WORKSPACE;
    const int tasks = task_count(t, heads, kv_heads, kt, probs, 1);
    // static,1 interleaves heads and row blocks, whose causal costs differ, over the threads
#pragma omp parallel for schedule(static, 1) num_threads(ck_threads()) if (tasks > 1 && (long)t * s * head_dim >= 4096)
    for (int task = 0; task < tasks; task++)
        run_task(task, 1, q, t, heads, kv_heads, head_dim, k, v, s, ldkv, kt, ldkt, kv_half, scale, out, probs,
                 thread_workspace(workspace, scratch));
    return CK_OK;
}

size_t ck_attention_cached_batch_workspace_size(int n, const int *t, const int *s, int head_dim, int kv_half) {
    size_t scratch = 0;
    for (int i = 0; i < n; i++) {
        const size_t one = thread_scratch(t[i], s[i], head_dim, kv_half);
        if (one > scratch) scratch = one;
    }
    return (size_t)ck_threads() * scratch * sizeof(float);
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
        tasks += task_count(t[i], heads, kv_heads, kt[i], NULL, n);
    }
    if (!workspace || workspace_size < ck_attention_cached_batch_workspace_size(n, t, s, head_dim, kv_half))
        return CK_ERR_WORKSPACE;
    const size_t scratch = workspace_size / sizeof(float) / (size_t)ck_threads();
    const int ldq = heads * head_dim;
    // Task i of the flat list: its sequence and its place there, found by a walk that is
    // short next to the task's own work (n is a batch of at most a few dozen sequences).
#pragma omp parallel for schedule(static, 1) num_threads(ck_threads()) if (tasks > 1)
    for (int task = 0; task < tasks; task++) {
        int seq = 0, first = 0, row = 0;
        while (task >= first + task_count(t[seq], heads, kv_heads, kt[seq], NULL, n)) {
            first += task_count(t[seq], heads, kv_heads, kt[seq], NULL, n);
            row += t[seq];
            seq++;
        }
        run_task(task - first, n, q + (size_t)row * ldq, t[seq], heads, kv_heads, head_dim, NULL, v[seq], s[seq], ldkv, kt[seq],
                 ldkt[seq], kv_half, scale, out + (size_t)row * ldq, NULL, thread_workspace(workspace, scratch));
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

CK_VECTOR_CLONES void ck_kv_store(const float *k, const float *v, int tokens, int width, void *kt, int ldkt, void *vc,
                                  int position, int half) {
    for (int i = 0; i < tokens; i++) {
        const float *ki = k + (size_t)i * width, *vi = v + (size_t)i * width;
        const size_t row = (size_t)(position + i) * width;
        if (half) {
            _Float16 *vo = (_Float16 *)vc + row, *ko = (_Float16 *)kt + position + i;
            for (int c = 0; c < width; c++) vo[c] = (_Float16)vi[c];
            for (int c = 0; c < width; c++) ko[(size_t)c * ldkt] = (_Float16)ki[c];
        } else {
            float *vo = (float *)vc + row, *ko = (float *)kt + position + i;
            memcpy(vo, vi, (size_t)width * sizeof(float));
            for (int c = 0; c < width; c++) ko[(size_t)c * ldkt] = ki[c];
        }
    }
}

// Backward: one task per query head, each writing its own dQ columns and its own partial
// dK, dV; the kv heads then sum their group's partials in head order.
size_t ck_attention_bwd_workspace_size(int t, int heads, int head_dim) {
    return ((size_t)ck_threads() * t * t + 2 * (size_t)heads * t * head_dim) * sizeof(float);
}

ck_status ck_attention_bwd(const float *q, const float *k, const float *v, const float *probs, const float *dout, int t,
                           int heads, int kv_heads, int head_dim, float scale, float *dq, float *dk, float *dv,
                           void *workspace, size_t workspace_size) {
    if (t < 0 || heads <= 0 || kv_heads <= 0 || heads % kv_heads || head_dim <= 0) return CK_ERR_SHAPE;
    if (t == 0) return CK_OK;
    if (!q || !k || !v || !probs || !dout || !dq || !dk || !dv) return CK_ERR_NULL;
    if (!workspace || workspace_size < ck_attention_bwd_workspace_size(t, heads, head_dim)) return CK_ERR_WORKSPACE;
    const int group = heads / kv_heads, ldq = heads * head_dim, ldkv = kv_heads * head_dim;
    float *partial_k = (float *)workspace, *partial_v = partial_k + (size_t)heads * t * head_dim;
    float *scratch = partial_v + (size_t)heads * t * head_dim;
#pragma omp parallel for schedule(static, 1) num_threads(ck_threads()) if ((long)t * t * head_dim >= 4096)
    for (int h = 0; h < heads; h++) {
#ifdef _OPENMP
        float *ds = scratch + (size_t)omp_get_thread_num() * t * t;
#else
        float *ds = scratch;
#endif
        const float *p = probs + (size_t)h * t * t, *doh = dout + (size_t)h * head_dim, *qh = q + (size_t)h * head_dim;
        const size_t c = (size_t)(h / group) * head_dim;
        float *dvh = partial_v + (size_t)h * t * head_dim, *dkh = partial_k + (size_t)h * t * head_dim;
        // Causal: row i sees keys 0..i, so P and dS are lower triangular. Each product runs
        // by blocks of ATTN_ROWS over the triangle only (about 40% fewer flops at t = 256):
        // rows [r0, r1) need keys [0, r1); keys [r0, r1) get gradient from rows [r0, t).
        for (int r0 = 0; r0 < t; r0 += ATTN_ROWS) {
            const int rows = t - r0 < ATTN_ROWS ? t - r0 : ATTN_ROWS, r1 = r0 + rows;
            // dV[r0:r1] = P[r0:t, r0:r1]ᵀ · dO[r0:t]
            ck_sgemm_serial(1, 0, rows, head_dim, t - r0, 1.0f, p + (size_t)r0 * t + r0, t, doh + (size_t)r0 * ldq, ldq, 0.0f,
                            dvh + (size_t)r0 * head_dim, head_dim);
            // dP[r0:r1, 0:r1] = dO[r0:r1] · V[0:r1]ᵀ
            ck_sgemm_serial(0, 1, rows, r1, head_dim, 1.0f, doh + (size_t)r0 * ldq, ldq, v + c, ldkv, 0.0f, ds + (size_t)r0 * t, t);
        }
        for (int i = 0; i < t; i++) {
            // masked entries have p = 0, so only the first i + 1 keys carry gradient
            const float *pi = p + (size_t)i * t;
            float *di = ds + (size_t)i * t;
            ck_softmax_bwd_row(pi, di, i + 1, di);
            for (int j = i + 1; j < t; j++) di[j] = 0.0f;
        }
        for (int r0 = 0; r0 < t; r0 += ATTN_ROWS) {
            const int rows = t - r0 < ATTN_ROWS ? t - r0 : ATTN_ROWS, r1 = r0 + rows;
            // dQ[r0:r1] = c · dS[r0:r1, 0:r1] · K[0:r1]
            ck_sgemm_serial(0, 0, rows, head_dim, r1, scale, ds + (size_t)r0 * t, t, k + c, ldkv, 0.0f,
                            dq + (size_t)r0 * ldq + (size_t)h * head_dim, ldq);
            // dK[r0:r1] = c · dS[r0:t, r0:r1]ᵀ · Q[r0:t]
            ck_sgemm_serial(1, 0, rows, head_dim, t - r0, scale, ds + (size_t)r0 * t + r0, t, qh + (size_t)r0 * ldq, ldq, 0.0f,
                            dkh + (size_t)r0 * head_dim, head_dim);
        }
    }
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if ((long)t * ldkv >= 16384)
    for (int i = 0; i < t; i++) {
        for (int kvh = 0; kvh < kv_heads; kvh++) {
            float *dki = dk + (size_t)i * ldkv + (size_t)kvh * head_dim, *dvi = dv + (size_t)i * ldkv + (size_t)kvh * head_dim;
            for (int d = 0; d < head_dim; d++) dki[d] = dvi[d] = 0.0f;
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                const float *pk = partial_k + ((size_t)h * t + i) * head_dim, *pv = partial_v + ((size_t)h * t + i) * head_dim;
                for (int d = 0; d < head_dim; d++) {
                    dki[d] += pk[d];
                    dvi[d] += pv[d];
                }
            }
        }
    }
    return CK_OK;
}

void ck_attention_bwd_ref(const float *q, const float *k, const float *v, const float *probs, const float *dout, int t,
                          int heads, int kv_heads, int head_dim, float scale, float *dq, float *dk, float *dv) {
    const int group = heads / kv_heads, ldq = heads * head_dim, ldkv = kv_heads * head_dim;
    for (size_t i = 0; i < (size_t)t * ldq; i++) dq[i] = 0.0f;
    for (size_t i = 0; i < (size_t)t * ldkv; i++) dk[i] = dv[i] = 0.0f;
    double ds[t > 0 ? t : 1];
    for (int h = 0; h < heads; h++) {
        const int c = (h / group) * head_dim;
        for (int i = 0; i < t; i++) {
            const float *p = probs + ((size_t)h * t + i) * t;
            const float *doi = dout + (size_t)i * ldq + h * head_dim;
            double dot = 0;
            for (int j = 0; j <= i; j++) {
                double dp = 0;
                for (int d = 0; d < head_dim; d++) dp += (double)doi[d] * v[(size_t)j * ldkv + c + d];
                ds[j] = dp;
                dot += dp * p[j];
            }
            for (int j = 0; j <= i; j++) {
                ds[j] = p[j] * (ds[j] - dot) * scale;
                for (int d = 0; d < head_dim; d++) {
                    dq[(size_t)i * ldq + h * head_dim + d] += (float)(ds[j] * k[(size_t)j * ldkv + c + d]);
                    dk[(size_t)j * ldkv + c + d] += (float)(ds[j] * q[(size_t)i * ldq + h * head_dim + d]);
                    dv[(size_t)j * ldkv + c + d] += (float)((double)p[j] * doi[d]);
                }
            }
        }
    }
}
