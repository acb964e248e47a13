// Umbrella header of the CKernels module.
#include "ck_blocks.h"
#include "ck_cpu.h"
#include "ck_quant.h"
#include "ck_gemm.h"
#include "ck_ops.h"
#include "ck_attention.h"
#include "ck_mpi.h"
