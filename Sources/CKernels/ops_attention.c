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

// 16 cache elements of either type into a ck_v16.
typedef _Float16 ck_h16 __attribute__((ext_vector_type(16)));
#define WIDEN16_f32(dst, src) memcpy(&(dst), (src), sizeof(ck_v16))
#define WIDEN16_f16(dst, src)                           \
    do {                                                \
        ck_h16 half_;                                   \
        memcpy(&half_, (src), sizeof half_);            \
        (dst) = __builtin_convertvector(half_, ck_v16); \
    } while (0)

// The loops of a decoding step over a cache, for each element type a cache holds (f32 for
// exact models, _Float16 for int8 ones; F16C/AVX-512 widen 8 or 16 halves per instruction,
// so reading half the bytes costs no extra time): one query row of each of G heads that
// share a kv head, against a run of `keys` transposed keys kt [head_dim, >= keys] and value
// rows. The result is partial (flash-decoding): for each head, the unnormalized sum
// o = Σ exp(s_j − m) v_j, then m = max s_j and l = Σ exp(s_j − m), which merge_runs combines.
#define CACHE_LOOPS(NAME, T)                                                                                   \
    /* Each key and value is read and widened once for the group instead of once per head. G is a  */          \
    /* constant at each call (group_##NAME dispatches), so the accumulators stay in registers.     */          \
    /* q: G rows head_dim apart; scores: G rows `keys` apart; out: G rows ldo apart, each o, m, l. */          \
    static inline __attribute__((always_inline)) void group_fixed_##NAME(                                      \
        const float *q, const int G, const T *kt, int ldkt, const T *v, int ldv, int head_dim, int keys,       \
        float scale, float *scores, float *out, int ldo) {                                                     \
        enum { BLOCK = 32 }; /* two vectors a head: enough independent sums to cover FMA latency */            \
        /* whole blocks, then the last keys as a block of their own with the missing ones zero */              \
        for (int j0 = 0; j0 < keys; j0 += BLOCK) {                                                             \
            const int n = keys - j0 < BLOCK ? keys - j0 : BLOCK;                                               \
            float acc[GROUP_MAX][BLOCK];                                                                       \
            for (int h = 0; h < G; h++) _Pragma("omp simd") for (int j = 0; j < BLOCK; j++) acc[h][j] = 0;     \
            for (int d = 0; d < head_dim; d++) {                                                               \
                const T *row = kt + (size_t)d * ldkt + j0;                                                     \
                float k[BLOCK];                                                                                \
                if (n == BLOCK)                                                                                \
                    _Pragma("omp simd") for (int j = 0; j < BLOCK; j++) k[j] = (float)row[j];                  \
                else                                                                                           \
                    _Pragma("omp simd") for (int j = 0; j < BLOCK; j++) k[j] = j < n ? (float)row[j] : 0.0f;   \
                for (int h = 0; h < G; h++) {                                                                  \
                    const float qd = q[(size_t)h * head_dim + d];                                              \
                    _Pragma("omp simd") for (int j = 0; j < BLOCK; j++) acc[h][j] += qd * k[j];                \
                }                                                                                              \
            }                                                                                                  \
            for (int h = 0; h < G; h++)                                                                        \
                memcpy(scores + (size_t)h * keys + j0, acc[h], (size_t)n * sizeof(float));                     \
        }                                                                                                      \
        for (int h = 0; h < G; h++) {                                                                          \
            float *oh = out + (size_t)h * ldo;                                                                 \
            oh[head_dim + 1] = ck_exp_row(scores + (size_t)h * keys, keys, scale, &oh[head_dim]);              \
            for (int d = 0; d < head_dim; d++) oh[d] = 0;                                                      \
        }                                                                                                      \
        /* values widened once per 4 keys, in pieces of 64 dims, then used by every head; a piece's */         \
        /* sums stay in registers over the whole run (G constant, the piece 4 vectors)             */          \
        for (int d0 = 0; d0 < head_dim; d0 += 64) {                                                            \
            const int n = head_dim - d0 < 64 ? head_dim - d0 : 64;                                             \
            if (n == 64) {                                                                                     \
                ck_v16 o[GROUP_MAX][4];                                                                        \
                for (int h = 0; h < G; h++)                                                                    \
                    for (int c = 0; c < 4; c++) o[h][c] = 0;                                                   \
                int j = 0;                                                                                     \
                for (; j + 4 <= keys; j += 4) {                                                                \
                    ck_v16 w[4][4];                                                                            \
                    for (int r = 0; r < 4; r++)                                                                \
                        for (int c = 0; c < 4; c++)                                                            \
                            WIDEN16_##NAME(w[r][c], v + (size_t)(j + r) * ldv + d0 + 16 * c);                  \
                    for (int h = 0; h < G; h++) {                                                              \
                        const float *p = scores + (size_t)h * keys + j;                                        \
                        for (int c = 0; c < 4; c++)                                                            \
                            o[h][c] += (p[0] * w[0][c] + p[1] * w[1][c]) + (p[2] * w[2][c] + p[3] * w[3][c]);  \
                    }                                                                                          \
                }                                                                                              \
                for (; j < keys; j++) {                                                                        \
                    ck_v16 w[4];                                                                               \
                    for (int c = 0; c < 4; c++) WIDEN16_##NAME(w[c], v + (size_t)j * ldv + d0 + 16 * c);       \
                    for (int h = 0; h < G; h++)                                                                \
                        for (int c = 0; c < 4; c++) o[h][c] += scores[(size_t)h * keys + j] * w[c];            \
                }                                                                                              \
                for (int h = 0; h < G; h++)                                                                    \
                    memcpy(out + (size_t)h * ldo + d0, o[h], sizeof o[h]);                                     \
                continue;                                                                                      \
            }                                                                                                  \
            int j = 0;                                                                                         \
            for (; j + 4 <= keys; j += 4) {                                                                    \
                float w[4][64];                                                                                \
                for (int r = 0; r < 4; r++) {                                                                  \
                    const T *vr = v + (size_t)(j + r) * ldv + d0;                                              \
                    _Pragma("omp simd") for (int d = 0; d < n; d++) w[r][d] = (float)vr[d];                    \
                }                                                                                              \
                for (int h = 0; h < G; h++) {                                                                  \
                    const float *p = scores + (size_t)h * keys + j;                                            \
                    float *oh = out + (size_t)h * ldo + d0;                                                    \
                    _Pragma("omp simd") for (int d = 0; d < n; d++) oh[d] +=                                   \
                        (p[0] * w[0][d] + p[1] * w[1][d]) + (p[2] * w[2][d] + p[3] * w[3][d]);                 \
                }                                                                                              \
            }                                                                                                  \
            for (; j < keys; j++) {                                                                            \
                const T *vj = v + (size_t)j * ldv + d0;                                                        \
                for (int h = 0; h < G; h++) {                                                                  \
                    const float ph = scores[(size_t)h * keys + j];                                             \
                    float *oh = out + (size_t)h * ldo + d0;                                                    \
                    _Pragma("omp simd") for (int d = 0; d < n; d++) oh[d] += ph * (float)vj[d];                \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }                                                                                                          \
    CK_VECTOR_CLONES static void group_##NAME(const float *q, int g, const T *kt, int ldkt, const T *v, int ldv, \
                                           int head_dim, int keys, float scale, float *scores, float *out,     \
                                           int ldo) {                                                          \
        switch (g) {                                                                                           \
        case 1: group_fixed_##NAME(q, 1, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out, ldo); break;    \
        case 2: group_fixed_##NAME(q, 2, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out, ldo); break;    \
        case 3: group_fixed_##NAME(q, 3, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out, ldo); break;    \
        case 4: group_fixed_##NAME(q, 4, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out, ldo); break;    \
        default: group_fixed_##NAME(q, g, kt, ldkt, v, ldv, head_dim, keys, scale, scores, out, ldo); break;   \
        }                                                                                                      \
    }

CACHE_LOOPS(f32, float)
CACHE_LOOPS(f16, _Float16)

// One head's row from the partials of its runs of keys (o, m, l each, `stride` apart), in
// run order: out = Σ exp(m_r − M) o_r / Σ exp(m_r − M) l_r with M the largest m_r.
CK_VECTOR_CLONES static void merge_runs(const float *part, int runs, int stride, int head_dim, float *out) {
    float top = -INFINITY, sum = 0;
    for (int r = 0; r < runs; r++) top = fmaxf(top, part[(size_t)r * stride + head_dim]);
    for (int d = 0; d < head_dim; d++) out[d] = 0;
    for (int r = 0; r < runs; r++) {
        const float *o = part + (size_t)r * stride, w = ck_exp(o[head_dim] - top);
        sum += w * o[head_dim + 1];
        for (int d = 0; d < head_dim; d++) out[d] += w * o[d];
    }
    const float inv = 1.0f / sum;
    for (int d = 0; d < head_dim; d++) out[d] *= inv;
}

// Rows [0, rows) x columns [0, cols) of a half matrix (leading dimension ld) into f32 (ldo).
CK_VECTOR_CLONES static void widen(const _Float16 *src, int ld, int rows, int cols, float *dst, int ldo) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)r * ldo + c] = (float)src[(size_t)r * ld + c];
}

// A decoding row goes through the cache in runs of KEY_RUN keys, one task per (kv head,
// chunk of its query heads, run), merged afterwards: the work splits evenly over the threads
// at any context length, and each key and value is read once for its group. The runs are
// fixed, not derived from the thread count, so results are the same with any count.
#define KEY_RUN 64

static int key_runs(int s) { return ck_div_up(s > 0 ? s : 1, KEY_RUN); }
static size_t partial_floats(int heads, int head_dim, int s) { return (size_t)heads * key_runs(s) * (head_dim + 2); }

// Per thread: the scores of a block of rows (for a half cache also the f32 keys and values
// the block reads), or of a decoding run with a lone decoding row's partials.
static size_t thread_scratch(int t, int s, int head_dim, int kv_half) {
    const int rows = t < ATTN_ROWS ? t : ATTN_ROWS;
    const size_t block = (size_t)rows * (s > 0 ? s : 1) + (kv_half ? 2 * (size_t)head_dim * s : 0);
    const size_t decoding = (size_t)GROUP_MAX * KEY_RUN + partial_floats(1, head_dim, s);
    return block > decoding ? block : decoding;
}

static int decodes(int t, const void *kt, const float *probs) { return t == 1 && kt && !probs; }

size_t ck_attention_workspace_size(int t, int s, int heads, int head_dim, int kv_half) {
    return ((size_t)ck_threads() * thread_scratch(t, s, head_dim, kv_half) + (t == 1 ? partial_floats(heads, head_dim, s) : 0)) *
           sizeof(float);
}

// Decoding task `task` of one sequence: heads h0 .. h0 + g − 1 (sharing kv head c) over the
// keys [j0, j0 + keys) of run r.
typedef struct {
    int h0, g, c, r, j0, keys;
} decode_run;

static decode_run decode_run_of(int task, int heads, int kv_heads, int s) {
    const int group = heads / kv_heads, chunks = ck_div_up(group, GROUP_MAX), runs = key_runs(s);
    decode_run run;
    run.r = task % runs;
    run.c = task / runs / chunks;
    run.h0 = run.c * group + (task / runs % chunks) * GROUP_MAX;
    run.g = (run.c + 1) * group - run.h0 < GROUP_MAX ? (run.c + 1) * group - run.h0 : GROUP_MAX;
    run.j0 = run.r * KEY_RUN;
    run.keys = s - run.j0 < KEY_RUN ? s - run.j0 : KEY_RUN;
    return run;
}

static int decode_task_count(int heads, int kv_heads, int s) {
    return kv_heads * ck_div_up(heads / kv_heads, GROUP_MAX) * key_runs(s);
}

// Asks for a run's keys and values ahead of its loops: they come from memory (a cache
// outgrows L3 next to the weights) in strided rows, and without the hint each load would
// wait for its line in turn.
static void prefetch_task(int task, int heads, int kv_heads, int head_dim, const void *v, int s, int ldkv, const void *kt,
                          int ldkt, int kv_half) {
    if (task >= decode_task_count(heads, kv_heads, s)) return;
    const decode_run run = decode_run_of(task, heads, kv_heads, s);
    const size_t elem = kv_half ? 2 : 4, col = (size_t)run.c * head_dim;
    const char *k0 = (const char *)kt + (col * ldkt + run.j0) * elem, *v0 = (const char *)v + ((size_t)run.j0 * ldkv + col) * elem;
    for (int d = 0; d < head_dim; d++)
        for (size_t b = 0; b < run.keys * elem; b += 64) __builtin_prefetch(k0 + d * ldkt * elem + b, 0, 2);
    for (int j = 0; j < run.keys; j++)
        for (size_t b = 0; b < head_dim * elem; b += 64) __builtin_prefetch(v0 + j * ldkv * elem + b, 0, 2);
}

// The group loops over one run, for the cache's element type: heads h0 .. h0 + g − 1 against
// kv head c's keys [j0, j0 + keys), their partials into out (rows ldo apart).
static void group_run(const float *q, int h0, int g, int c, int j0, int keys, int head_dim, const void *v, int ldkv,
                      const void *kt, int ldkt, int kv_half, float scale, float *scores, float *out, int ldo) {
    const size_t col = (size_t)c * head_dim;
    if (kv_half)
        group_f16(q + (size_t)h0 * head_dim, g, (const _Float16 *)kt + col * ldkt + j0, ldkt,
                  (const _Float16 *)v + (size_t)j0 * ldkv + col, ldkv, head_dim, keys, scale, scores, out, ldo);
    else
        group_f32(q + (size_t)h0 * head_dim, g, (const float *)kt + col * ldkt + j0, ldkt,
                  (const float *)v + (size_t)j0 * ldkv + col, ldkv, head_dim, keys, scale, scores, out, ldo);
}

// Head h's output row from its runs in a decoding row's partials `part` [heads][runs][head_dim + 2].
static void merge_head(const float *part, int h, int s, int head_dim, float *out) {
    const int runs = key_runs(s), stride = head_dim + 2;
    merge_runs(part + (size_t)h * runs * stride, runs, stride, head_dim, out + (size_t)h * head_dim);
}

// Runs decoding task `task` into the sequence's partials `part` [heads][runs][head_dim + 2],
// having asked for the keys and values of the thread's next task (`ahead` further).
static void decode_task(int task, int ahead, const float *q, int heads, int kv_heads, int head_dim, const void *v, int s,
                        int ldkv, const void *kt, int ldkt, int kv_half, float scale, float *part, float *scores) {
    if (task < ahead) prefetch_task(task, heads, kv_heads, head_dim, v, s, ldkv, kt, ldkt, kv_half);  // a thread's first
    prefetch_task(task + ahead, heads, kv_heads, head_dim, v, s, ldkv, kt, ldkt, kv_half);
    const decode_run run = decode_run_of(task, heads, kv_heads, s);
    const int runs = key_runs(s), stride = head_dim + 2;
    group_run(q, run.h0, run.g, run.c, run.j0, run.keys, head_dim, v, ldkv, kt, ldkt, kv_half, scale, scores,
              part + ((size_t)run.h0 * runs + run.r) * stride, runs * stride);
}

// One query row of one head over a cache, inside a task of its own: its runs one after the
// other, then merged (the same arithmetic as decoding tasks).
static void decode_row_head(const float *q, int h, int heads, int kv_heads, int head_dim, const void *v, int s, int ldkv,
                            const void *kt, int ldkt, int kv_half, float scale, float *out, float *mine) {
    float *part = mine + (size_t)GROUP_MAX * KEY_RUN;  // this head's runs only
    const int runs = key_runs(s), stride = head_dim + 2;
    for (int r = 0; r < runs; r++) {
        const int j0 = r * KEY_RUN, keys = s - j0 < KEY_RUN ? s - j0 : KEY_RUN;
        group_run(q, h, 1, h / (heads / kv_heads), j0, keys, head_dim, v, ldkv, kt, ldkt, kv_half, scale, mine,
                  part + (size_t)r * stride, stride);
    }
    merge_runs(part, runs, stride, head_dim, out + (size_t)h * head_dim);
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
        decode_row_head(q + (size_t)r0 * ldq, h, heads, kv_heads, head_dim, v, visible, ldkv, kt, ldkt, kv_half, scale,
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
    return decodes(t, kt, probs) ? decode_task_count(heads, kv_heads, s) : heads * ck_div_up(t, ATTN_ROWS);
}

static void run_task(int task, int ahead, const float *q, int t, int heads, int kv_heads, int head_dim, const float *k,
                     const void *v, int s, int ldkv, const void *kt, int ldkt, int kv_half, float scale, float *out,
                     float *probs, float *part, float *mine) {
    if (decodes(t, kt, probs)) {
        decode_task(task, ahead, q, heads, kv_heads, head_dim, v, s, ldkv, kt, ldkt, kv_half, scale, part, mine);
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
    const int tasks = task_count(t, s, heads, kv_heads, kt, probs), decoding = decodes(t, kt, probs);
    float *part = workspace, *scratches = part ? part + (decoding ? partial_floats(heads, head_dim, s) : 0) : NULL;
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
            for (int h = rank; h < heads; h += size) merge_head(part, h, s, head_dim, out);
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
        if (t[i] == 1) *partials += partial_floats(heads, head_dim, s[i]);
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
                if (t[seq] == 1) part += partial_floats(heads, head_dim, s[seq]);
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
                if (pair % size == rank) merge_head((float *)workspace + part, h, s[i], head_dim, out + (size_t)row * ldq);
            part += partial_floats(heads, head_dim, s[i]);
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
