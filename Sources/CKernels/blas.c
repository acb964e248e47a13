// f32 GEMM: OpenBLAS loaded at run time, its work split over our OpenMP threads.
//
// Why dlopen: OpenBLAS picks its kernels in a constructor when the library loads, and
// Debian 12's 0.3.21 does not recognise current Xeons: it falls back to the SSE3
// "Prescott" core (~19 GFLOP/s instead of ~100 at our shapes). OPENBLAS_CORETYPE fixes
// that but must be in the environment before the load, which a linked library cannot
// arrange. Loading it here, after detecting the CPU, can. A user's own setting wins.
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ck_internal.h"

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint, blasint,
                         float, const float *, blasint, const float *, blasint, float, float *, blasint);
typedef void (*set_threads_fn)(int);
typedef char *(*corename_fn)(void);

static sgemm_fn blas_sgemm;
static set_threads_fn blas_set_threads;
static corename_fn blas_corename;
static char backend_name[64] = "plain C";

void ck_blas_load(void) {
    if (!getenv("OPENBLAS_CORETYPE")) {
        if (ck_isa_supported(CK_ISA_AVX512_VNNI)) setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
        else if (ck_isa_supported(CK_ISA_AVX2)) setenv("OPENBLAS_CORETYPE", "Haswell", 0);
    }
    const char *names[] = {"libopenblas.so.0", "libopenblas.so"};
    void *handle = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !handle; i++) handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!handle) return;
    blas_sgemm = (sgemm_fn)dlsym(handle, "cblas_sgemm");
    blas_set_threads = (set_threads_fn)dlsym(handle, "openblas_set_num_threads");
    blas_corename = (corename_fn)dlsym(handle, "openblas_get_corename");
    if (!blas_sgemm) return;
    // OpenBLAS runs single-threaded inside our OpenMP workers: one pool, no oversubscription.
    if (blas_set_threads) blas_set_threads(1);
    snprintf(backend_name, sizeof backend_name, "OpenBLAS %s", blas_corename ? blas_corename() : "");
}

const char *ck_blas_backend(void) {
    ck_init();
    return backend_name;
}

void ck_sgemm_ref(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                const float av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                const float bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += (double)av * bv;
            }
            float *out = &c[(size_t)i * ldc + j];
            *out = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *out));
        }
    }
}

void ck_sgemm_serial(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (blas_sgemm) {
        blas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                   alpha, a, lda, b, ldb, beta, c, ldc);
    } else {
        ck_sgemm_ref(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}

static int args_valid(int trans_a, int trans_b, int m, int n, int k, int lda, int ldb, int ldc) {
    if (m < 0 || n < 0 || k < 0) return 0;
    if (lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || ldc < n) return 0;
    return 1;
}

ck_status ck_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc) {
    ck_init();
    if (!args_valid(trans_a, trans_b, m, n, k, lda, ldb, ldc)) return CK_ERR_SHAPE;
    if (m == 0 || n == 0) return CK_OK;
    if (!c || (k > 0 && (!a || !b))) return CK_ERR_NULL;
    const int nt = ck_threads();
    if (nt == 1 || (long)m * n * k < (1L << 18)) {
        ck_sgemm_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return CK_OK;
    }
    // Split C along its longer side into one slab per thread.
    const int by_rows = m >= n;
    const int extent = by_rows ? m : n, step = by_rows ? 8 : 16;
    const int slab = ck_div_up(ck_div_up(extent, nt), step) * step;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        const int lo = t * slab, len = extent - lo < slab ? extent - lo : slab;
        if (len <= 0) continue;
        if (by_rows) {
            const float *as = trans_a ? a + lo : a + (size_t)lo * lda;
            ck_sgemm_serial(trans_a, trans_b, len, n, k, alpha, as, lda, b, ldb, beta, c + (size_t)lo * ldc, ldc);
        } else {
            const float *bs = trans_b ? b + (size_t)lo * ldb : b + lo;
            ck_sgemm_serial(trans_a, trans_b, m, len, k, alpha, a, lda, bs, ldb, beta, c + lo, ldc);
        }
    }
    return CK_OK;
}

ck_status ck_sgemm_openblas_threaded(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                                     int lda, const float *b, int ldb, float beta, float *c, int ldc, int threads) {
    ck_init();
    if (!blas_sgemm || !blas_set_threads) return CK_ERR_UNSUPPORTED;
    if (!args_valid(trans_a, trans_b, m, n, k, lda, ldb, ldc)) return CK_ERR_SHAPE;
    if (!a || !b || !c) return CK_ERR_NULL;
    blas_set_threads(threads);
    blas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha,
               a, lda, b, ldb, beta, c, ldc);
    blas_set_threads(1);
    return CK_OK;
}
