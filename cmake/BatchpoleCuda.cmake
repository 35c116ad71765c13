# Optional CUDA: BATCHPOLE_CUDA=AUTO (default) uses nvcc when found, ON requires it, OFF never
# looks. The CPU-only build needs no CUDA header or library.
set(BATCHPOLE_CUDA AUTO CACHE STRING "Build the CUDA path: AUTO, ON or OFF")
set_property(CACHE BATCHPOLE_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${BATCHPOLE_CUDA}" _bp_cuda)
if(NOT _bp_cuda MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "BATCHPOLE_CUDA must be AUTO, ON or OFF, got '${BATCHPOLE_CUDA}'")
endif()

# The CPU emulation of the CUDA path (tests/emulation): the CUDA sources compiled as C++, their
# kernels run on the CPU, so that CI without a GPU runs the "cuda" test instances. Instead of
# nvcc, never with it; for tests, never installed.
option(BATCHPOLE_CUDA_EMULATION "Build the CUDA path for the CPU emulation (tests only)" OFF)
if(BATCHPOLE_CUDA_EMULATION)
  if(_bp_cuda STREQUAL "ON")
    message(FATAL_ERROR "BATCHPOLE_CUDA_EMULATION=ON replaces nvcc: configure with "
                        "-DBATCHPOLE_CUDA=OFF (or AUTO)")
  endif()
  set(_bp_cuda OFF)
endif()

set(BATCHPOLE_WITH_CUDA OFF)
if(NOT _bp_cuda STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Hopper (H100/H200) is what we measure on. The kernels use warp reductions
    # (__reduce_add_sync) that need sm_80 (A100) or newer. Must be set before
    # enable_language(CUDA), which would otherwise pick the compiler default.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    foreach(_bp_arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
      string(REGEX MATCH "^[0-9]+" _bp_num "${_bp_arch}")
      if(_bp_num AND _bp_num LESS 80)
        message(FATAL_ERROR "CMAKE_CUDA_ARCHITECTURES holds ${_bp_arch}; batchpole's kernels need "
                            "80 (A100) or newer")
      endif()
    endforeach()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(BATCHPOLE_WITH_CUDA ON)
  elseif(_bp_cuda STREQUAL "ON")
    message(FATAL_ERROR "BATCHPOLE_CUDA=ON but no CUDA compiler (nvcc) was found. Put nvcc on "
                        "PATH or set CMAKE_CUDA_COMPILER, or configure with -DBATCHPOLE_CUDA=OFF.")
  endif()
endif()

if(BATCHPOLE_WITH_CUDA)
  # Static runtime, shared cuBLAS, never the driver library: one binary then runs everywhere and
  # falls back to the CPU where cudaGetDeviceCount reports no driver.
  set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
  # CMake 3.25 knows no C++20 dialect flag for nvcc 13, so the .cu files are C++17 (the headers
  # they include stay C++17-clean); the host code is C++20.
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  message(STATUS "batchpole: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
elseif(BATCHPOLE_CUDA_EMULATION)
  message(STATUS "batchpole: CUDA emulated on the CPU (tests/emulation); no nvcc, no GPU")
else()
  message(STATUS "batchpole: CUDA off (BATCHPOLE_CUDA=${BATCHPOLE_CUDA}); CPU path only")
endif()
