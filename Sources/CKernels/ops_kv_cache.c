// The KV cache's storage: keys kept transposed (a decoding step scores every key with vector
// FMAs), values as rows, in f32 or IEEE half.
#include <string.h>
#include "ck_internal.h"
#include "include/ck_attention.h"

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

void ck_kv_copy(const void *kt, int ldkt, const void *vc, int positions, int width, int half, void *kt_out, int ldkt_out,
                void *vc_out) {
    const size_t elem = half ? 2 : 4;
    memcpy(vc_out, vc, (size_t)positions * width * elem);
    for (int c = 0; c < width; c++)  // one strided run per key dimension
        memcpy((char *)kt_out + (size_t)c * ldkt_out * elem, (const char *)kt + (size_t)c * ldkt * elem, (size_t)positions * elem);
}
