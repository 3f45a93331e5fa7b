#include <mpi.h>
// Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros that take the address
// of a global object, and MPI_IN_PLACE is a cast integer; Swift imports neither, so each gets a
// getter.
static inline MPI_Comm rf_MPI_COMM_WORLD(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype rf_MPI_FLOAT(void) { return MPI_FLOAT; }
static inline MPI_Datatype rf_MPI_DOUBLE(void) { return MPI_DOUBLE; }
static inline MPI_Datatype rf_MPI_BYTE(void) { return MPI_BYTE; }
static inline MPI_Op rf_MPI_SUM(void) { return MPI_SUM; }
static inline MPI_Op rf_MPI_MAX(void) { return MPI_MAX; }
static inline MPI_Op rf_MPI_MIN(void) { return MPI_MIN; }
static inline void *rf_MPI_IN_PLACE(void) { return MPI_IN_PLACE; }
static inline int rf_MPI_THREAD_FUNNELED(void) { return MPI_THREAD_FUNNELED; }
