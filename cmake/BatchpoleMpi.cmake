# Optional MPI, detected like CUDA: BATCHPOLE_MPI=AUTO (default) uses it when find_package finds
# it, ON requires it, OFF never looks. Only host/run/comm_mpi.cpp includes mpi.h; a build
# without it compiles host/run/comm_none.cpp, and `train --distributed` says so.
set(BATCHPOLE_MPI AUTO CACHE STRING "Build distributed training over MPI: AUTO, ON or OFF")
set_property(CACHE BATCHPOLE_MPI PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${BATCHPOLE_MPI}" _bp_mpi)
if(NOT _bp_mpi MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "BATCHPOLE_MPI must be AUTO, ON or OFF, got '${BATCHPOLE_MPI}'")
endif()

set(BATCHPOLE_WITH_MPI OFF)
if(NOT _bp_mpi STREQUAL "OFF")
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND)
    set(BATCHPOLE_WITH_MPI ON)
    find_program(BATCHPOLE_MPIEXEC NAMES mpirun mpiexec HINTS ${MPIEXEC_EXECUTABLE})
    message(STATUS "batchpole: MPI ${MPI_CXX_VERSION}, launcher ${BATCHPOLE_MPIEXEC}")
  elseif(_bp_mpi STREQUAL "ON")
    message(FATAL_ERROR "BATCHPOLE_MPI=ON but no MPI was found (apt-get install libopenmpi-dev "
                        "openmpi-bin), or configure with -DBATCHPOLE_MPI=OFF.")
  else()
    message(STATUS "batchpole: no MPI; train --distributed will be refused")
  endif()
else()
  message(STATUS "batchpole: MPI off; train --distributed will be refused")
endif()
