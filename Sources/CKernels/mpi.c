// Open MPI through dlopen (see ck_mpi.h). Open MPI's handles are the addresses of its
// predefined objects (MPI_COMM_WORLD is &ompi_mpi_comm_world), so dlsym gives them without
// mpi.h; the functions are the standard C bindings. RTLD_GLOBAL: Open MPI's own plugins
// resolve libmpi's symbols through the global scope.
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "include/ck_mpi.h"

typedef void *handle_t; // MPI_Comm, MPI_Datatype: pointers in Open MPI's ABI
enum { MPI_THREAD_SERIALIZED_ = 2 };

static struct {
    int (*init_thread)(int *, char ***, int, int *);
    int (*initialized)(int *);
    int (*comm_rank)(handle_t, int *);
    int (*comm_size)(handle_t, int *);
    int (*allgather)(const void *, int, handle_t, void *, int, handle_t, handle_t);
    int (*allgatherv)(const void *, int, handle_t, void *, const int *, const int *, handle_t, handle_t);
    int (*alltoallv)(const void *, const int *, const int *, handle_t, void *, const int *, const int *, handle_t, handle_t);
    int (*bcast)(void *, int, handle_t, int, handle_t);
    int (*barrier)(handle_t);
    int (*abort)(handle_t, int);
    int (*finalize)(void);
    handle_t world, byte, float_;
    int rank, size, active;
} mpi;

static int load(char *error, size_t error_size) {
    const char *names[] = {"libmpi.so.40", "libmpi.so"};
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(error, error_size, "cannot load Open MPI (libmpi.so.40): %s", dlerror());
        return -1;
    }
#define SYM(field, name)                                                                   \
    if (!(*(void **)&mpi.field = dlsym(lib, name))) {                                     \
        snprintf(error, error_size, "libmpi.so.40 has no %s: not Open MPI's library", name); \
        return -1;                                                                         \
    }
    SYM(init_thread, "MPI_Init_thread")
    SYM(initialized, "MPI_Initialized")
    SYM(comm_rank, "MPI_Comm_rank")
    SYM(comm_size, "MPI_Comm_size")
    SYM(allgather, "MPI_Allgather")
    SYM(allgatherv, "MPI_Allgatherv")
    SYM(alltoallv, "MPI_Alltoallv")
    SYM(bcast, "MPI_Bcast")
    SYM(barrier, "MPI_Barrier")
    SYM(abort, "MPI_Abort")
    SYM(finalize, "MPI_Finalize")
    SYM(world, "ompi_mpi_comm_world")
    SYM(byte, "ompi_mpi_byte")
    SYM(float_, "ompi_mpi_float")
#undef SYM
    return 0;
}

int ck_mpi_init(int *rank, int *size, char *error, size_t error_size) {
    if (!mpi.active) {
        if (load(error, error_size)) return -1;
        int provided = 0;
        if (mpi.init_thread(NULL, NULL, MPI_THREAD_SERIALIZED_, &provided)) {
            snprintf(error, error_size, "MPI_Init_thread failed");
            return -1;
        }
        mpi.comm_rank(mpi.world, &mpi.rank);
        mpi.comm_size(mpi.world, &mpi.size);
        mpi.active = 1;
    }
    *rank = mpi.rank;
    *size = mpi.size;
    return 0;
}

int ck_mpi_active(void) { return mpi.active; }

// MPI counts are ints: transfers of more than INT_MAX elements go in chunks (collectives
// whose per-rank counts differ cannot be chunked uniformly, so those must fit an int).
static int fits(int64_t n) { return n >= 0 && n <= INT_MAX; }

int ck_mpi_allgather(const void *send, size_t bytes, void *recv) {
    if (!mpi.active || !fits((int64_t)bytes)) return -1;
    return mpi.allgather(send, (int)bytes, mpi.byte, recv, (int)bytes, mpi.byte, mpi.world);
}

static int to_ints(const int64_t *src, int *dst, int n) {
    for (int i = 0; i < n; i++) {
        if (!fits(src[i])) return -1;
        dst[i] = (int)src[i];
    }
    return 0;
}

int ck_mpi_allgatherv_float(const float *send, const int64_t *counts, const int64_t *offsets, float *recv) {
    if (!mpi.active) return -1;
    int *c = malloc(2 * sizeof(int) * (size_t)mpi.size), *o = c + mpi.size;
    int status = -1;
    if (c && !to_ints(counts, c, mpi.size) && !to_ints(offsets, o, mpi.size))
        status = mpi.allgatherv(send, c[mpi.rank], mpi.float_, recv, c, o, mpi.float_, mpi.world);
    free(c);
    return status;
}

int ck_mpi_alltoallv_float(const float *send, const int64_t *send_counts, const int64_t *send_offsets, float *recv,
                           const int64_t *recv_counts, const int64_t *recv_offsets) {
    if (!mpi.active) return -1;
    int *ints = malloc(4 * sizeof(int) * (size_t)mpi.size);
    int status = -1;
    if (ints && !to_ints(send_counts, ints, mpi.size) && !to_ints(send_offsets, ints + mpi.size, mpi.size) &&
        !to_ints(recv_counts, ints + 2 * mpi.size, mpi.size) && !to_ints(recv_offsets, ints + 3 * mpi.size, mpi.size))
        status = mpi.alltoallv(send, ints, ints + mpi.size, mpi.float_, recv, ints + 2 * mpi.size, ints + 3 * mpi.size,
                               mpi.float_, mpi.world);
    free(ints);
    return status;
}

int ck_mpi_bcast(void *buffer, size_t bytes, int root) {
    if (!mpi.active) return -1;
    for (size_t done = 0; done < bytes;) {
        const size_t chunk = bytes - done < (size_t)INT_MAX ? bytes - done : (size_t)INT_MAX;
        if (mpi.bcast((char *)buffer + done, (int)chunk, mpi.byte, root, mpi.world)) return -1;
        done += chunk;
    }
    return 0;
}

int ck_mpi_barrier(void) { return mpi.active ? mpi.barrier(mpi.world) : -1; }

void ck_mpi_abort(int code) {
    if (mpi.active) mpi.abort(mpi.world, code);
    exit(code);
}

int ck_mpi_finalize(void) {
    if (!mpi.active) return 0;
    mpi.active = 0;
    return mpi.finalize();
}
