# The CPU emulation of the CUDA path (README.md beside this file): the project's CUDA sources
# compiled by the host compiler against the shim headers in include/, their kernels run on the
# CPU by cuda_emulation.cpp. For tests only; never installed.

set(BATCHPOLE_CUDA_EMULATION_DIR ${CMAKE_CURRENT_LIST_DIR})

# Builds `target` with the CUDA sources `ARGN` as C++ and the emulation runtime, and defines
# BATCHPOLE_WITH_CUDA so that the "cuda" device exists (and is emulated).
function(batchpole_cuda_emulation target)
  # C++17, as nvcc compiles them (cmake/BatchpoleCuda.cmake): the last -std wins.
  set_source_files_properties(${ARGN} PROPERTIES LANGUAGE CXX COMPILE_OPTIONS "-std=c++17")
  target_sources(${target} PRIVATE ${ARGN} ${BATCHPOLE_CUDA_EMULATION_DIR}/cuda_emulation.cpp)
  target_include_directories(${target} PRIVATE ${BATCHPOLE_CUDA_EMULATION_DIR}/include)
  target_compile_definitions(${target} PUBLIC BATCHPOLE_WITH_CUDA=1
                                       PRIVATE BATCHPOLE_CUDA_EMULATION=1)
endfunction()

# For test programs that call the emulated runtime or cuBLAS themselves.
function(batchpole_cuda_emulation_headers target)
  target_include_directories(${target} PRIVATE ${BATCHPOLE_CUDA_EMULATION_DIR}/include)
  target_compile_definitions(${target} PRIVATE BATCHPOLE_CUDA_EMULATION=1)
endfunction()
