#!/usr/bin/env bash
# GPU check: every test with a GPU required (a skipped GPU test fails), then the GPU benchmarks.
#
# The GPU machines have nvcc, CMake and ninja but no network and no GoogleTest, Google
# Benchmark, OpenBLAS, CLI11 or fmt, so the check runs in two halves:
#
#   here (CPU machine):  scripts/gpu-check.sh --prepare
#       builds for sm_90 into build-gpu/ and packs the programs, the shared libraries they need
#       (except CUDA's own, which the GPU machine has), the test data and a fresh live
#       Gymnasium trace into gpu-bundle/ (git-ignored, about 45 MB);
#   there (device tool): bash scripts/gpu-check.sh        with carry ["gpu-bundle"]
#       runs everything and prints a summary; with $OUT set, a tarball of the logs and JSON
#       lands there.
#
# Options for the run half: --quick (short benchmarks), --bench-filter REGEX.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=gpu-bundle

prepare() {
  local jobs
  jobs=$(nproc)
  export PATH=/usr/local/cuda/bin:$PATH
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBATCHPOLE_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DBATCHPOLE_WERROR=ON
  cmake --build build-gpu -j "$jobs"
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/data"
  cp build-gpu/batchpole build-gpu/tests/batchpole_tests build-gpu/bench/batchpole_bench \
    "$bundle/bin/"
  # Every shared library the programs load, except the C library, the loader and CUDA's own.
  ldd "$bundle"/bin/* | awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so|libcu(blas|dart)' |
    while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
  cp tests/data/*.csv "$bundle/data/"
  python3 tests/live_gym_trace.py "$bundle/data/live_gym_trace.csv"
  git rev-parse --short HEAD >"$bundle/commit"
  du -sh "$bundle"
  echo "prepared $bundle/ for commit $(cat "$bundle/commit"): now run 'bash scripts/gpu-check.sh'" \
       "through the device tool with carry [\"$bundle\"]"
}

run() {
  local quick=0 filter='gpu:1'
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) quick=1 ;;
      --bench-filter) filter="$2"; shift ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
  done
  [ -d "$bundle/bin" ] || { echo "no $bundle/: run scripts/gpu-check.sh --prepare first" >&2; exit 2; }
  # Everything lands in $bundle/out; with $OUT set (the device tool), one tarball of it goes
  # there, since the tool brings back only a few files.
  local out=$bundle/out
  rm -rf "$out"
  mkdir -p "$out"
  local cuda_lib
  cuda_lib=$(dirname "$(command -v nvcc)")/../lib64
  export LD_LIBRARY_PATH="$PWD/$bundle/lib:$cuda_lib:${LD_LIBRARY_PATH:-}"
  export BATCHPOLE_REQUIRE_GPU=1
  export BATCHPOLE_TEST_DATA_DIR="$PWD/$bundle/data"
  export BATCHPOLE_LIVE_TRACE="$PWD/$bundle/data/live_gym_trace.csv"
  local status=0
  echo "== commit $(cat "$bundle/commit"), $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$bundle/bin/batchpole" info | tee "$out/info.txt"

  echo "== tests (GPU required: a skipped GPU test is a failure)"
  if "$bundle/bin/batchpole_tests" --gtest_output="json:$out/tests.json" >"$out/tests.log" 2>&1; then
    echo "tests: $(grep -E '^\[  PASSED  \]' "$out/tests.log")"
  else
    status=1
    grep -E '^\[  FAILED  \]|Failure|error' "$out/tests.log" | head -40
  fi
  if grep -q '^\[  SKIPPED \]' "$out/tests.log"; then
    echo "skipped tests (failures here):"; grep '^\[  SKIPPED \]' "$out/tests.log" | sort -u
    status=1
  fi

  echo "== benchmarks ($filter)"
  local min_time=0.3
  [ "$quick" = 1 ] && min_time=0.05
  "$bundle/bin/batchpole_bench" --benchmark_filter="$filter" --benchmark_min_time="$min_time" \
    --benchmark_out="$out/bench.json" --benchmark_out_format=json \
    --benchmark_counters_tabular=true 2>&1 | tee "$out/bench.txt" | grep -v '^\*\*\*' || status=1
  local bp="$bundle/bin/batchpole"
  for p in f32 f64; do
    for m in step fused; do
      "$bp" bench env --device cuda --precision "$p" --mode "$m" --json \
        >"$out/bench_env_${p}_${m}.json" || status=1
      echo "bench env cuda $p $m: $(grep env_steps_per_s\" "$out/bench_env_${p}_${m}.json")"
    done
  done
  "$bp" bench nn --device cuda --json >"$out/bench_nn.json" || status=1
  echo "bench nn cuda: $(grep -E '"(samples_per_s|train_gflops|train_sgemm_gflops)"' "$out/bench_nn.json" | tr -d '\n ')"
  for n in 65536 1048576; do
    "$bp" bench train --device cuda --envs "$n" --json >"$out/bench_train_$n.json" || status=1
    echo "bench train cuda $n envs: $(grep env_steps_per_s\" "$out/bench_train_$n.json")"
  done

  echo "== training to 475 on the GPU (defaults), and on the CPU of that machine"
  for dev in cuda cpu; do
    rm -rf "$out/train_$dev"
    "$bp" train --device "$dev" --out "$out/train_$dev" --seconds 120 -q || status=1
    echo "train $dev: $(tr -d '\n ' <"$out/train_$dev/summary.json" |
      grep -o '"solved":[a-z]*\|"wall_s_to_solve":[0-9.e+-]*\|"env_steps_per_s":[0-9.e+-]*' | tr '\n' ' ')"
  done

  echo "== compare (CPU against GPU)"
  if "$bp" compare --help >/dev/null 2>&1; then
    "$bp" compare --json --metrics-out "$out" >"$out/compare.json" 2>"$out/compare.err" || status=1
    tail -3 "$out/compare.err"
  fi
  echo "== summary: $([ $status = 0 ] && echo PASS || echo FAIL) (logs in $out)"
  if [ -n "${OUT:-}" ]; then
    tar czf "$OUT/gpu-check.tgz" -C "$out" .
    echo "logs packed into \$OUT/gpu-check.tgz"
  fi
  return $status
}

case "${1:-}" in
  --prepare) prepare ;;
  -h|--help) sed -n '2,16p' "$0" ;;
  *) run "$@" ;;
esac
