// Decoding attention: one query row over a KV cache, through the keys in fixed runs whose
// partial results are merged (flash-decoding), one task per (kv head, chunk of its query
// heads, run).
#include <math.h>
#include <string.h>
#include "attention_internal.h"

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

// Decoding task `task` of one sequence: heads h0 .. h0 + g − 1 (sharing kv head c) over the
// keys [j0, j0 + keys) of run r.
typedef struct {
    int h0, g, c, r, j0, keys;
} decode_run;

static decode_run decode_run_of(int task, int heads, int kv_heads, int s) {
    const int group = heads / kv_heads, chunks = ck_div_up(group, GROUP_MAX), runs = ck_attn_key_runs(s);
    decode_run run;
    run.r = task % runs;
    run.c = task / runs / chunks;
    run.h0 = run.c * group + (task / runs % chunks) * GROUP_MAX;
    run.g = (run.c + 1) * group - run.h0 < GROUP_MAX ? (run.c + 1) * group - run.h0 : GROUP_MAX;
    run.j0 = run.r * KEY_RUN;
    run.keys = s - run.j0 < KEY_RUN ? s - run.j0 : KEY_RUN;
    return run;
}

int ck_attn_decode_task_count(int heads, int kv_heads, int s) {
    return kv_heads * ck_div_up(heads / kv_heads, GROUP_MAX) * ck_attn_key_runs(s);
}

// Asks for a run's keys and values ahead of its loops: they come from memory (a cache
// outgrows L3 next to the weights) in strided rows, and without the hint each load would
// wait for its line in turn.
static void prefetch_task(int task, int heads, int kv_heads, int head_dim, const void *v, int s, int ldkv, const void *kt,
                          int ldkt, int kv_half) {
    if (task >= ck_attn_decode_task_count(heads, kv_heads, s)) return;
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
void ck_attn_merge_head(const float *part, int h, int s, int head_dim, float *out) {
    const int runs = ck_attn_key_runs(s), stride = head_dim + 2;
    merge_runs(part + (size_t)h * runs * stride, runs, stride, head_dim, out + (size_t)h * head_dim);
}

// Runs decoding task `task` into the sequence's partials `part` [heads][runs][head_dim + 2],
// having asked for the keys and values of the thread's next task (`ahead` further).
void ck_attn_decode_task(int task, int ahead, const float *q, int heads, int kv_heads, int head_dim, const void *v, int s,
                        int ldkv, const void *kt, int ldkt, int kv_half, float scale, float *part, float *scores) {
    if (task < ahead) prefetch_task(task, heads, kv_heads, head_dim, v, s, ldkv, kt, ldkt, kv_half);  // a thread's first
    prefetch_task(task + ahead, heads, kv_heads, head_dim, v, s, ldkv, kt, ldkt, kv_half);
    const decode_run run = decode_run_of(task, heads, kv_heads, s);
    const int runs = ck_attn_key_runs(s), stride = head_dim + 2;
    group_run(q, run.h0, run.g, run.c, run.j0, run.keys, head_dim, v, ldkv, kt, ldkt, kv_half, scale, scores,
              part + ((size_t)run.h0 * runs + run.r) * stride, runs * stride);
}

// One query row of one head over a cache, inside a task of its own: its runs one after the
// other, then merged (the same arithmetic as decoding tasks).
void ck_attn_decode_row_head(const float *q, int h, int heads, int kv_heads, int head_dim, const void *v, int s, int ldkv,
                            const void *kt, int ldkt, int kv_half, float scale, float *out, float *mine) {
    float *part = mine + (size_t)GROUP_MAX * KEY_RUN;  // this head's runs only
    const int runs = ck_attn_key_runs(s), stride = head_dim + 2;
    for (int r = 0; r < runs; r++) {
        const int j0 = r * KEY_RUN, keys = s - j0 < KEY_RUN ? s - j0 : KEY_RUN;
        group_run(q, h, 1, h / (heads / kv_heads), j0, keys, head_dim, v, ldkv, kt, ldkt, kv_half, scale, mine,
                  part + (size_t)r * stride, stride);
    }
    merge_runs(part, runs, stride, head_dim, out + (size_t)h * head_dim);
}
