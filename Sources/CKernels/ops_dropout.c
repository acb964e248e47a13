// Inverted dropout with a counter-based mask (no stored state, no thread dependence).
#include "ck_internal.h"
#include "include/ck_ops.h"

// SplitMix64's finalizer of seed + i·golden: the i-th value of a SplitMix stream from seed.
static inline uint64_t splitmix64_at(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ck_dropout(const float *x, int64_t n, float p, uint64_t seed, float *out) {
    // keep when the top 24 bits, as a fraction of 2^24, fall at or above p
    const uint64_t threshold = (uint64_t)((double)p * (1u << 24));
    const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static) num_threads(ck_threads()) if (n >= 65536)
    for (int64_t i = 0; i < n; i++) out[i] = (splitmix64_at(seed, (uint64_t)i) >> 40) >= threshold ? x[i] * keep_scale : 0.0f;
}
