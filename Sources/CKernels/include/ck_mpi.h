// Collectives between the processes of a job, through Open MPI loaded at run time
// (libmpi.so.40, as Debian's openmpi-bin installs it): the package builds, tests and runs
// where MPI is not installed, and a job started by mpirun or srun finds it. Only the few
// operations data-parallel training and sharded evaluation need; every count is in bytes
// or floats and may exceed INT_MAX (large transfers go in chunks).
#ifndef CK_MPI_H
#define CK_MPI_H

#include <stddef.h>
#include <stdint.h>

// Loads libmpi and initializes it (MPI_Init_thread, serialized calls). Returns 0 and this
// process's rank and the job's size, or -1 with the reason in `error`.
int ck_mpi_init(int *rank, int *size, char *error, size_t error_size);
// 1 once ck_mpi_init succeeded.
int ck_mpi_active(void);

// Every rank contributes `bytes` bytes; recv gets size × bytes, rank r's at r × bytes.
int ck_mpi_allgather(const void *send, size_t bytes, void *recv);
// recv gets every rank's `counts[r]` floats at `offsets[r]` (send holds this rank's).
int ck_mpi_allgatherv_float(const float *send, const int64_t *counts, const int64_t *offsets, float *recv);
// Rank r sends send_counts[d] floats from send + send_offsets[d] to each rank d, and
// receives recv_counts[s] floats from each rank s at recv + recv_offsets[s].
int ck_mpi_alltoallv_float(const float *send, const int64_t *send_counts, const int64_t *send_offsets, float *recv,
                           const int64_t *recv_counts, const int64_t *recv_offsets);
int ck_mpi_bcast(void *buffer, size_t bytes, int root);
int ck_mpi_barrier(void);
// Ends every process of the job (a rank that must stop when the others cannot know).
void ck_mpi_abort(int code);
int ck_mpi_finalize(void);

#endif
