// `batchpole info`: what this build and this machine offer.
#include <fmt/format.h>
#include <omp.h>

#include <nlohmann/json.hpp>

#include "batchpole/device/device.hpp"
#include "batchpole/run/comm.hpp"
#include "commands.hpp"

extern "C" char* openblas_get_config();  // OpenBLAS's own description of its build
extern "C" int openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP build

namespace batchpole::cli {

namespace {

std::string simd_level() {
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2+fma";
  if (__builtin_cpu_supports("sse4.2")) return "sse4.2";
  return "baseline";
}

nlohmann::json collect_info() {
  nlohmann::json j;
  j["version"] = BATCHPOLE_VERSION;
  const CudaStatus& cuda = cuda_status();
  j["cuda_compiled"] = cuda.built;
  j["cuda_plugin"] = cuda.plugin;
  j["cuda_plugin_loaded"] = cuda.loaded;
  j["cuda_devices"] = cuda.device_names;
  j["cuda_unavailable_reason"] = cuda.available() ? nlohmann::json() : nlohmann::json(cuda.reason);
  const int count = cuda.device_count;
  j["blas"] = std::string("OpenBLAS ") + openblas_get_config();
  j["cpu_threads"] = omp_get_max_threads();
  // How the networks use the threads: batchpole's tasks on them, one BLAS thread per call.
  const int parallel = openblas_get_parallel();
  j["blas_build"] = parallel == 2 ? "openmp" : (parallel == 1 ? "pthreads" : "sequential");
  j["simd_runtime"] = simd_level();
  j["march_compiled"] = BATCHPOLE_MARCH;
  j["default_device"] = count > 0 ? "cuda" : "cpu";
  j["mpi"] = comm_built();  // train --distributed
  return j;
}

}  // namespace

void require_cpu_features() {
  const std::string march = BATCHPOLE_MARCH;
  if (march == "x86-64-v3" && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
    BP_REQUIRE(false, kUnavailable,
               "this build uses -march=x86-64-v3 (AVX2, FMA) but this CPU lacks them; rebuild "
               "with -DBATCHPOLE_MARCH=x86-64-v2");
  }
}

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show the build (CUDA, BLAS, SIMD) and the devices found");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON instead of text");
  cmd->callback([json] {
    const auto j = collect_info();
    if (*json) {
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("batchpole {}\n", j["version"].get<std::string>());
    fmt::print("  CUDA plugin      : {}\n",
               j["cuda_plugin_loaded"].get<bool>()
                   ? "loaded from " + j["cuda_plugin"].get<std::string>()
                   : (j["cuda_compiled"].get<bool>() ? "built, not loaded" : "not built"));
    if (j["cuda_devices"].empty()) {
      fmt::print("  CUDA devices     : none usable: {}\n",
                 j["cuda_unavailable_reason"].get<std::string>());
    } else {
      for (std::size_t i = 0; i < j["cuda_devices"].size(); ++i) {
        fmt::print("  CUDA device {}    : {}\n", i, j["cuda_devices"][i].get<std::string>());
      }
    }
    fmt::print("  BLAS             : {}\n", j["blas"].get<std::string>());
    fmt::print(
        "  BLAS threading   : {} build, one thread per call (batchpole spreads the "
        "batch over its CPU threads)\n",
        j["blas_build"].get<std::string>());
    fmt::print("  CPU threads      : {}\n", j["cpu_threads"].get<int>());
    fmt::print("  SIMD (runtime)   : {}, compiled for -march={}\n",
               j["simd_runtime"].get<std::string>(), j["march_compiled"].get<std::string>());
    fmt::print("  default device   : {}\n", j["default_device"].get<std::string>());
    fmt::print("  MPI              : {}\n",
               j["mpi"].get<bool>() ? "yes (train --distributed under mpirun)"
                                    : "no (configure with -DBATCHPOLE_MPI=ON for --distributed)");
  });
}

}  // namespace batchpole::cli
