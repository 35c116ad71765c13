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
  # No MPI: the device machine runs one process, and the bundle then carries no Open MPI.
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBATCHPOLE_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DBATCHPOLE_WERROR=ON -DBATCHPOLE_MPI=OFF
  cmake --build build-gpu -j "$jobs"
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/data"
  # The CUDA plugin goes beside the programs, where the registry looks first.
  cp build-gpu/batchpole build-gpu/tests/batchpole_tests build-gpu/bench/batchpole_bench \
    build-gpu/libbatchpole_cuda.so "$bundle/bin/"
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

# One step of the run: its own log, a time limit, a row in the summary table, and the logs
# packed into $OUT after it, so that a run cut short still brings back what it did.
step() {
  local name=$1 limit=$2
  shift 2
  local t0 rc=0
  t0=$(date +%s)
  echo "== $name (limit ${limit}s)"
  if [ "$(type -t "$1")" = function ]; then
    # timeout runs programs, not functions: the function runs in a bash that has it exported.
    timeout --kill-after=5 "$limit" bash -c '"$@"' _ "$@" >"$out/$name.log" 2>&1 || rc=$?
  else
    timeout --kill-after=5 "$limit" "$@" >"$out/$name.log" 2>&1 || rc=$?
  fi
  local secs=$(( $(date +%s) - t0 ))
  tail -n "${TAIL_LINES:-6}" "$out/$name.log"
  local verdict=ok
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then verdict="TIMEOUT"; elif [ "$rc" != 0 ]; then verdict="FAIL($rc)"; fi
  [ "$verdict" = ok ] || status=1
  printf '%-28s %-10s %5ss\n' "$name" "$verdict" "$secs" >>"$out/summary.txt"
  pack
}

pack() {
  if [ -n "${OUT:-}" ]; then
    tar czf "$OUT/gpu-check.tgz" -C "$out" . 2>/dev/null || true
    cp "$out/summary.txt" "$OUT/summary.txt" 2>/dev/null || true
  fi
}

# The steps, each a function so that step() can time-limit it.
run_tests() {
  "$bundle/bin/batchpole_tests" --gtest_output="json:$out/tests.json" >"$out/tests.full.log" 2>&1
  local rc=$?
  grep -m 80 -E '^\[  (PASSED|FAILED) +\]|Failure|SKIPPED' "$out/tests.full.log"
  if grep -q '^\[  SKIPPED \]' "$out/tests.full.log"; then
    echo "skipped tests count as failures here"; return 1
  fi
  return $rc
}
run_bench_cli() {
  local bp=$bundle/bin/batchpole rc=0 p m n sizes="1 4096 1048576 16777216"
  [ "$quick" = 1 ] && sizes="4096 16777216"
  for p in f32 f64; do
    for m in step fused; do
      for n in $sizes; do
        "$bp" bench env --device cuda --precision "$p" --mode "$m" --envs "$n" --json \
          >"$out/env_${p}_${m}_$n.json" || rc=1
        echo "bench env cuda $p $m $n envs: $(tr -d '\n ' <"$out/env_${p}_${m}_$n.json" |
          grep -o '"env_steps_per_s":[0-9.e+-]*')"
      done
    done
  done
  "$bp" bench nn --device cuda --json >"$out/bench_nn.json" || rc=1
  echo "bench nn cuda: $(grep -E '"(samples_per_s|train_gflops|train_sgemm_gflops)"' "$out/bench_nn.json" | tr -d '\n ')"
  # Training throughput: A2C and PPO at 64K and 1M envs, and populations of 32-env agents.
  local algo agents
  for algo in a2c ppo; do
    for n in 65536 1048576; do
      "$bp" bench train --device cuda --algo "$algo" --envs "$n" --json \
        >"$out/train_${algo}_$n.json" || rc=1
      echo "bench train cuda $algo $n envs: $(tr -d '\n ' <"$out/train_${algo}_$n.json" |
        grep -o '"\(env_steps_per_s\|stream_ops_per_update\|host_syncs_per_update\)":[0-9.e+-]*' | tr '\n' ' ')"
    done
  done
  # Updates recorded as one CUDA graph against launched one by one (--no-graphs), where launches
  # cost most: A2C at small and middling batches.
  local graphs
  for n in 256 4096 65536; do
    for graphs in "" --no-graphs; do
      "$bp" bench train --device cuda --envs "$n" $graphs --json \
        >"$out/train_graphs${graphs}_$n.json" || rc=1
      echo "bench train cuda a2c $n envs ${graphs:-graphs}: $(tr -d '\n ' <"$out/train_graphs${graphs}_$n.json" |
        grep -o '"\(env_steps_per_s\|stream_ops_per_update\|host_syncs_per_update\|recorded_updates\)":[0-9.e+-]*' | tr '\n' ' ')"
    done
  done
  for agents in 1 64 1024 4096; do
    "$bp" bench train --device cuda --agents "$agents" --envs 32 --updates 10 --json \
      >"$out/train_agents_$agents.json" || rc=1
    echo "bench train cuda $agents agents x 32 envs: $(tr -d '\n ' <"$out/train_agents_$agents.json" |
      grep -o '"\(env_steps_per_s\|stream_ops_per_update\|host_syncs_per_update\)":[0-9.e+-]*' | tr '\n' ' ')"
  done
  # DQN with its defaults, and PPO with the Gaussian head (issue 13).
  for a in "dqn discrete" "ppo continuous"; do
    set -- $a
    "$bp" bench train --device cuda --algo "$1" --actions "$2" --updates 20 --json \
      >"$out/train_$1_$2.json" || rc=1
    echo "bench train cuda $1 $2: $(tr -d '\n ' <"$out/train_$1_$2.json" |
      grep -o '"\(envs\|env_steps_per_s\|stream_ops_per_update\|host_syncs_per_update\)":[0-9.e+-]*' | tr '\n' ' ')"
  done
  return $rc
}
# A timed training run to solve: run_train NAME DEVICE SECONDS [train flags...].
run_train() {
  local name=$1 dev=$2 secs=$3
  shift 3
  rm -rf "$out/train_$name"
  "$bundle/bin/batchpole" train --device "$dev" --out "$out/train_$name" --seconds "$secs" -q "$@"
  local rc=$?
  tr -d '\n ' <"$out/train_$name/summary.json" |
    grep -o '"\(solved\|env_steps_to_solve\|wall_s_to_solve\|updates_to_solve\|env_steps_per_s\|agents\|median\)":[0-9a-z.e+-]*' | tr '\n' ' '
  echo
  return $rc
}
run_bench() {
  "$bundle/bin/batchpole_bench" --benchmark_filter="$filter" --benchmark_min_time="$bench_time" \
    --benchmark_out="$out/bench.json" --benchmark_out_format=json --benchmark_counters_tabular=true
  local rc=$?
  if grep -q 'ERROR OCCURRED' "$out/bench.log" 2>/dev/null; then return 1; fi
  return $rc
}
run_compare() {
  "$bundle/bin/batchpole" compare --json --metrics-out "$out/compare" >"$out/compare.json"
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
  # Everything lands in $bundle/out; with $OUT set (the device tool), a tarball of it and the
  # summary go there after every step.
  out=$bundle/out
  rm -rf "$out"
  mkdir -p "$out"
  : >"$out/summary.txt"
  status=0
  set +e
  local bench_time=0.2
  [ "$quick" = 1 ] && bench_time=0.05
  export out bundle quick filter bench_time
  export -f run_tests run_bench run_bench_cli run_train run_compare
  export PATH=/usr/local/cuda/bin:$PATH
  local cuda_lib=/usr/local/cuda/lib64
  command -v nvcc >/dev/null && cuda_lib=$(dirname "$(command -v nvcc)")/../lib64
  export LD_LIBRARY_PATH="$PWD/$bundle/lib:$cuda_lib:${LD_LIBRARY_PATH:-}"
  export BATCHPOLE_REQUIRE_GPU=1
  export BATCHPOLE_TEST_DATA_DIR="$PWD/$bundle/data"
  export BATCHPOLE_LIVE_TRACE="$PWD/$bundle/data/live_gym_trace.csv"
  echo "== commit $(cat "$bundle/commit"), $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

  # Every library found before anything runs: a missing one ends the run at once, with its name.
  if ldd "$bundle"/bin/* | grep 'not found'; then
    echo "missing shared libraries (above): nothing can run" | tee -a "$out/summary.txt"
    pack
    return 1
  fi
  TAIL_LINES=30 step info 20 "$bundle/bin/batchpole" info
  TAIL_LINES=40 step tests 150 run_tests
  TAIL_LINES=40 step bench 80 run_bench
  TAIL_LINES=40 step bench_cli 100 run_bench_cli
  if [ "$quick" = 1 ]; then
    step train_cuda 30 run_train cuda cuda 20
  else
    step train_cuda 55 run_train cuda cuda 45
    step train_cpu 30 run_train cpu cpu 20
    step train_ppo_1m 60 run_train ppo_1m cuda 45 --algo ppo --envs 1048576
    step train_agents 90 run_train agents cuda 75 --agents 1024 --envs 32 --checkpoint-every 0
  fi
  step compare 60 run_compare
  echo "== summary: commit $(cat "$bundle/commit")"
  cat "$out/summary.txt"
  echo "== $([ $status = 0 ] && echo PASS || echo FAIL) (logs in $out${OUT:+, packed into \$OUT/gpu-check.tgz})"
  pack
  return $status
}

case "${1:-}" in
  --prepare) prepare ;;
  -h|--help) sed -n '2,16p' "$0" ;;
  *) run "$@" ;;
esac
