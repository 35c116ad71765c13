#!/usr/bin/env bash
# What a training run leaves behind when it is killed, runs out of disk or is resumed in odd
# ways (README.md, "Failure behaviour"), and the defects of issue 15 that only the command line
# shows: each case is an exit status and the files afterwards.
# usage: failure_test.sh PATH/TO/batchpole
set -u
bp=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
# shellcheck source=tests/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

fail() { failures=$((failures + 1)); echo "FAIL: $*"; }
check() {  # check DESCRIPTION -- COMMAND...: passes when the command succeeds
  local what=$1
  shift 2
  if "$@"; then pass=$((pass + 1)); else fail "$what"; fi
}
no_clock() { cut -d, -f1-2,4-16 "$1"; }
same_metrics() { [ "$(no_clock "$1")" = "$(no_clock "$2")" ]; }
train() { "$bp" train --device cpu --envs 16 --seed 4 -q "$@"; }

# A full disk, simulated with a file-size limit (RLIMIT_FSIZE: writes past it fail with EFBIG;
# SIGXFSZ is ignored so that the write returns instead of killing the process). KiB.
full_disk() {  # full_disk KIB COMMAND...
  local kib=$1
  shift
  (trap '' XFSZ; ulimit -f "$kib"; exec "$@")
}

# ---- Issue 15, item 6: resume on a full disk keeps the metrics history ------------------------
run="$work/full"
expect_code 0 "a run to resume" -- train --updates 200 --checkpoint-every 50 --out "$run"
cp "$run/metrics.csv" "$work/metrics.before"
cp "$run/checkpoint.bin" "$work/checkpoint.before"
# 8 KiB: less than metrics.csv (about 20 KiB), so rewriting it for the resume fails.
expect_code 1 "resume on a full disk" -- full_disk 8 "$bp" train --device cpu --resume "$run" --updates 300 -q
expect_grep "disk full" "$work/err.txt" "the full disk is named"
check "metrics.csv unchanged by a failed resume" -- cmp -s "$run/metrics.csv" "$work/metrics.before"
check "checkpoint unchanged by a failed resume" -- cmp -s "$run/checkpoint.bin" "$work/checkpoint.before"
check "no temporary file left behind" -- test -z "$(find "$run" -name '*.tmp')"
# 48 KiB: the metrics fit, the periodic checkpoint (about 110 KiB) does not: the run stops with
# exit 1 and keeps the previous checkpoint, which still resumes to the same numbers as a run
# that never failed.
expect_code 1 "a checkpoint on a full disk" -- full_disk 48 "$bp" train --device cpu --resume "$run" --updates 300 -q
check "the previous checkpoint kept" -- cmp -s "$run/checkpoint.bin" "$work/checkpoint.before"
check "no temporary file left behind" -- test -z "$(find "$run" -name '*.tmp')"
expect_code 0 "resume after the disk was freed" -- "$bp" train --device cpu --resume "$run" --updates 300 -q
expect_code 0 "an uninterrupted run" -- train --updates 300 --checkpoint-every 50 --out "$work/full_straight"
check "after a full disk: the metrics of an uninterrupted run" -- \
  same_metrics "$run/metrics.csv" "$work/full_straight/metrics.csv"

# ---- SIGKILL at any moment: the checkpoint left behind loads and continues exactly -----------
# Each kill comes a while after the run's first metrics row (a slow start, as under a sanitizer,
# must not turn one case into another); with a checkpoint every 3 updates, the first one is
# often before any checkpoint.
for delay in 0 0.2 0.6; do
  d="$work/killed_$delay"
  # The program itself in the background (not a shell function: $! would be a subshell).
  "$bp" train --device cpu --envs 16 --seed 4 -q --updates 100000 --target-return 1e9 \
    --checkpoint-every 3 --out "$d" &
  pid=$!
  trap 'kill -KILL "$pid" 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 600); do
    [ -s "$d/metrics.csv" ] && [ "$(wc -l <"$d/metrics.csv")" -ge 2 ] && break
    sleep 0.1
  done
  sleep "$delay"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if [ -e "$d/checkpoint.bin" ]; then
    # Beyond the checkpoint (never after the last metrics row written).
    updates=$(($(wc -l <"$d/metrics.csv") + 20))
    expect_code 0 "resume after SIGKILL at +${delay}s" -- "$bp" train --device cpu --resume "$d" \
      --updates "$updates" --target-return 1e9 -q
    train --updates "$updates" --target-return 1e9 --out "$d.straight"
    check "after SIGKILL at +${delay}s: the metrics of an uninterrupted run" -- \
      same_metrics "$d/metrics.csv" "$d.straight/metrics.csv"
  else
    # Killed before the first checkpoint: nothing to resume, and a fresh run takes the
    # directory over (issue 15, item 10).
    expect_code 2 "resume without a checkpoint (+${delay}s)" -- "$bp" train --device cpu --resume "$d" -q
    expect_grep "before its first checkpoint" "$work/err.txt" "says what happened"
    expect_code 0 "a fresh run takes a killed run's directory" -- train --updates 2 --out "$d"
  fi
done

# ---- Issue 15, item 10: a run killed before its first checkpoint ------------------------------
d="$work/early"
mkdir -p "$d"
printf '%s\n' "update,env_steps" "1,80" >"$d/metrics.csv"
expect_code 2 "resume a run that has no checkpoint" -- "$bp" train --device cpu --resume "$d" -q
expect_grep "before its first checkpoint" "$work/err.txt" "says why"
expect_grep "\-\-out $d" "$work/err.txt" "says what to do"
expect_code 0 "a fresh run takes it over" -- train --updates 2 --out "$d"
check "with its own metrics" -- test "$(wc -l <"$d/metrics.csv")" = 3

# ---- Issue 15, item 7: --resume F --out NEW leaves F alone -----------------------------------
src="$work/src"
expect_code 0 "a run to continue elsewhere" -- train --updates 4 --out "$src"
md5sum "$src"/* >"$work/src.md5"
expect_code 0 "resume into a new directory" -- "$bp" train --device cpu --resume "$src" --updates 7 --out "$work/new" -q
check "the resumed run is unchanged" -- md5sum --quiet -c "$work/src.md5"
for f in checkpoint.bin metrics.csv summary.json; do
  check "the new directory holds $f" -- test -s "$work/new/$f"
done
check "the new metrics hold the history" -- test "$(wc -l <"$work/new/metrics.csv")" = 8
expect_code 0 "an uninterrupted run to 7" -- train --updates 7 --out "$work/straight7"
check "resumed elsewhere: the metrics of an uninterrupted run" -- \
  same_metrics "$work/new/metrics.csv" "$work/straight7/metrics.csv"
# Into a directory that holds another run: refused, nothing written there.
md5sum "$work/straight7"/* >"$work/straight7.md5"
expect_code 2 "resume into another run's directory" -- "$bp" train --device cpu --resume "$src" --updates 9 --out "$work/straight7" -q
expect_grep "already holds a run" "$work/err.txt" "says why"
check "the other run is unchanged" -- md5sum --quiet -c "$work/straight7.md5"
# A bare file name, from inside the run's directory.
expect_code 0 "resume checkpoint.bin from its directory" -- \
  bash -c 'cd "$1" && "$2" train --device cpu --resume checkpoint.bin --updates 6 -q' _ "$src" "$bp"
check "continued in place" -- test "$(wc -l <"$src/metrics.csv")" = 7

# ---- Issue 15, item 2: thread counts --------------------------------------------------------
for args in "bench env --threads 100000 --envs 16384 --steps 2 --repeats 1" \
            "bench env --threads 50000 --envs 16384 --steps 2 --repeats 1" \
            "bench nn --threads 1025 --batch 64 --repeats 1" \
            "bench train --threads 100000 --envs 64 --updates 1" \
            "train --threads 1025 --updates 1 --out $work/threads"; do
  # shellcheck disable=SC2086
  expect_code 2 "$args" -- "$bp" $args --device cpu
done

# ---- Issue 15, item 9: bench nn sizes memory before allocating --------------------------------
expect_code 2 "bench nn --batch 99999999999" -- "$bp" bench nn --device cpu --batch 99999999999 --repeats 1
expect_code 2 "bench nn --batch 2000000000" -- "$bp" bench nn --device cpu --batch 2000000000 --repeats 1
expect_grep "bytes" "$work/err.txt" "names the bytes needed"

# ---- Issue 15, item 8: byte counts and counters that cannot overflow ---------------------------
echo '{"algo": "reinforce", "envs": 2147483647, "max_episode_steps": 2147483647}' >"$work/huge.json"
expect_code 2 "a rollout of 2^62 rows" -- "$bp" train --device cpu --config "$work/huge.json" --out "$work/huge" -q
expect_grep "more than" "$work/err.txt" "the byte count is not a wrapped number"

echo "$pass passed, $failures failed"
[ "$failures" = 0 ]
