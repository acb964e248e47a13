// Status codes, CPU feature dispatch and threading shared by every kernel family.
#ifndef CK_CPU_H
#define CK_CPU_H

#include <stddef.h>

typedef enum {
    CK_OK = 0,
    CK_ERR_NULL = 1,           // a required pointer was NULL
    CK_ERR_SHAPE = 2,          // a dimension was negative or inconsistent
    CK_ERR_UNSUPPORTED = 3,    // ISA or type not available
    CK_ERR_WORKSPACE = 4,      // workspace smaller than the kernel's *_workspace_size
} ck_status;

// Instruction-set paths, each a complete set of kernels; the scalar one is the reference.
typedef enum {
    CK_ISA_SCALAR = 0,
    CK_ISA_AVX2 = 1,           // AVX2 + FMA + F16C
    CK_ISA_AVX512_VNNI = 2,    // AVX-512 F/BW/VL + VNNI
} ck_isa;

// Detects the CPU, fills the dispatch table with the best path (or the one named by
// $SWIFT_LORA_ISA, e.g. "avx2", when this CPU runs it) and loads OpenBLAS (after steering
// its core detection, see blas.c). Idempotent and thread-safe.
void ck_init(void);

int ck_isa_supported(ck_isa isa);   // 1 when this CPU runs the path
ck_isa ck_best_isa(void);
ck_isa ck_get_isa(void);
// Forces every dispatched kernel to one path (tests, comparisons).
ck_status ck_set_isa(ck_isa isa);
// The path and thread count of the calling thread's kernel calls only, over the
// process-wide ones (a test of one path, work that must not change other threads'
// settings); ck_clear_thread_settings returns the thread to the process-wide ones.
// ck_get_isa and ck_get_num_threads report the calling thread's settings.
ck_status ck_set_thread_isa(ck_isa isa);
void ck_set_thread_num_threads(int n);
void ck_clear_thread_settings(void);
const char *ck_isa_name(ck_isa isa);

// One thread count for OpenMP and for the f32 GEMMs (OpenBLAS itself runs single-threaded
// inside our OpenMP workers, so the two pools never oversubscribe the cores).
// Default: $SWIFT_LORA_THREADS, else the number of cores.
void ck_set_num_threads(int n);
int ck_get_num_threads(void);

// Returns the C heap's free pages to the system (glibc's malloc_trim; a no-op elsewhere).
// Loading frees many conversion buffers between long-lived weights, and without this the
// freed pages would stay resident.
void ck_release_free_heap(void);

#endif
