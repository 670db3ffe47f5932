#ifndef LAYERWISE_COPENMPI_SHIM_H
#define LAYERWISE_COPENMPI_SHIM_H
/* Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros over addresses of
 * internal globals, which Swift cannot import; these accessors expose them as functions. */
#include <mpi.h>

static inline MPI_Comm layerwise_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype layerwise_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype layerwise_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype layerwise_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op layerwise_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Errhandler layerwise_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline void *layerwise_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request layerwise_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *layerwise_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int layerwise_mpi_success(void) { return MPI_SUCCESS; }
static inline int layerwise_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int layerwise_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
#endif
