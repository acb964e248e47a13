// CPU detection, the dispatch table and the shared thread count.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "ck_internal.h"

// Every slot starts at the reference path; ck_init moves it to the best supported one.
#define ISA_TABLE(isa)                                                                                     \
    {                                                                                                      \
        .tile = {ck_tile_q8_0_##isa, ck_tile_q4_0_##isa, ck_tile_q4_1_##isa, ck_tile_q4_k_##isa, ck_tile_q6_k_##isa}, \
        .quantize_act_row = ck_quantize_act_row_##isa, .quantize_biased_row = ck_quantize_biased_row_##isa,    \
        .strip_tile = ck_strip_tile_##isa,                                                                 \
    }
static const ck_dispatch_table scalar_table = ISA_TABLE(scalar), avx2_table = ISA_TABLE(avx2),
                               avx512_table = ISA_TABLE(avx512);
static ck_dispatch_table kernels = ISA_TABLE(scalar);

static ck_isa current_isa = CK_ISA_SCALAR;
static int num_threads = 1;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
// The calling thread's own settings when set (NULL, 0: the process-wide ones), so a test
// of one path or thread count never changes what another thread's kernels run with.
static _Thread_local const ck_dispatch_table *thread_table;
static _Thread_local ck_isa thread_isa;
static _Thread_local int thread_threads;

static const ck_dispatch_table *table_of(ck_isa isa) {
    switch (isa) {
    case CK_ISA_SCALAR: return &scalar_table;
    case CK_ISA_AVX2: return &avx2_table;
    case CK_ISA_AVX512_VNNI: return &avx512_table;
    }
    return &scalar_table;
}

const ck_dispatch_table *ck_dispatch(void) { return thread_table ? thread_table : &kernels; }

int ck_isa_supported(ck_isa isa) {
    __builtin_cpu_init();
    switch (isa) {
    case CK_ISA_SCALAR:
        return 1;
    case CK_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case CK_ISA_AVX512_VNNI:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    }
    return 0;
}

ck_isa ck_best_isa(void) {
    if (ck_isa_supported(CK_ISA_AVX512_VNNI)) return CK_ISA_AVX512_VNNI;
    if (ck_isa_supported(CK_ISA_AVX2)) return CK_ISA_AVX2;
    return CK_ISA_SCALAR;
}

const char *ck_isa_name(ck_isa isa) {
    switch (isa) {
    case CK_ISA_SCALAR: return "scalar";
    case CK_ISA_AVX2: return "avx2";
    case CK_ISA_AVX512_VNNI: return "avx512_vnni";
    }
    return "unknown";
}

static void fill_table(ck_isa isa) {
    kernels = *table_of(isa);
    current_isa = isa;
}

static void init_once_body(void) {
    fill_table(ck_best_isa());
    // $SWIFT_LORA_ISA picks a supported path by name: comparisons without a rebuild
    const char *isa = getenv("SWIFT_LORA_ISA");
    for (int i = CK_ISA_SCALAR; isa && i <= CK_ISA_AVX512_VNNI; i++)
        if (!strcmp(isa, ck_isa_name((ck_isa)i)) && ck_isa_supported((ck_isa)i)) fill_table((ck_isa)i);
    const char *env = getenv("SWIFT_LORA_THREADS");
    int n = env ? atoi(env) : 0;
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
#endif
    num_threads = n > 0 ? n : 1;
    ck_blas_load();
}

void ck_init(void) { pthread_once(&init_once, init_once_body); }

ck_isa ck_get_isa(void) {
    ck_init();
    return thread_table ? thread_isa : current_isa;
}

ck_status ck_set_isa(ck_isa isa) {
    ck_init();
    if (!ck_isa_supported(isa)) return CK_ERR_UNSUPPORTED;
    fill_table(isa);
    return CK_OK;
}

// Every parallel region passes num_threads(ck_threads()) explicitly: omp_set_num_threads
// would only reach the calling thread, and callers come from many threads.
void ck_set_num_threads(int n) {
    ck_init();
    num_threads = n > 0 ? n : 1;
}

int ck_get_num_threads(void) {
    ck_init();
    return thread_threads > 0 ? thread_threads : num_threads;
}

ck_status ck_set_thread_isa(ck_isa isa) {
    ck_init();
    if (!ck_isa_supported(isa)) return CK_ERR_UNSUPPORTED;
    thread_table = table_of(isa);
    thread_isa = isa;
    return CK_OK;
}

void ck_set_thread_num_threads(int n) {
    ck_init();
    thread_threads = n > 0 ? n : 1;
}

void ck_clear_thread_settings(void) {
    thread_table = NULL;
    thread_threads = 0;
}

#ifdef __GLIBC__
#include <malloc.h>
#endif

void ck_release_free_heap(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}
