// Grouped-query causal attention, backward over the probabilities the forward kept
// (training: no cache), with its plain reference.
#include "attention_internal.h"
#include "include/ck_attention.h"

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
