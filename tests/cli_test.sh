#!/usr/bin/env bash
# Command-line behaviour: help, JSON keys, usage errors (exit 2), a short training run with its
# files, resume, evaluation, refusal to overwrite a run, and bad checkpoints.
# usage: cli_test.sh PATH/TO/batchpole
set -u
bp=$1
# shellcheck source=tests/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

expect_code 0 "--help" -- "$bp" --help
expect_grep "train" "$work/out.txt" "help lists train"
expect_code 0 "train --help" -- "$bp" train --help
expect_grep "--target-return" "$work/out.txt" "train help lists --target-return"
expect_code 2 "no subcommand" -- "$bp"
expect_code 2 "unknown subcommand" -- "$bp" fly
expect_code 0 "bench nn json" -- "$bp" bench nn --device cpu --batch 512 --repeats 1 --json
expect_grep "\"samples_per_s\"" "$work/out.txt" "bench nn key"
expect_code 0 "bench train json" -- "$bp" bench train --device cpu --envs 64 --updates 2 --json
expect_grep "\"env_steps_per_s\"" "$work/out.txt" "bench train key"
expect_code 0 "bench train chunk rows" -- "$bp" bench train --device cpu --envs 64 --updates 1 \
  --chunk-rows 100 --json
expect_grep "\"chunk_rows\": 100" "$work/out.txt" "bench train uses --chunk-rows"
expect_code 2 "bench train negative chunk rows" -- "$bp" bench train --device cpu --chunk-rows -5
expect_code 2 "bench nn --batch 0" -- "$bp" bench nn --batch 0
expect_code 0 "info --json" -- "$bp" info --json
expect_grep '"blas_build": "\(pthreads\|openmp\|sequential\)"' "$work/out.txt" "info names the BLAS build"
expect_grep '"cuda_compiled"' "$work/out.txt" "info json"
# The CUDA plugin turned off, missing or broken: every command still runs on the CPU, and
# --device cuda says exactly why it cannot (exit 2).
printf 'not a shared object' >"$work/broken_plugin.so"
for plugin in off "$work/no-such-plugin.so" "$work/broken_plugin.so"; do
  BATCHPOLE_CUDA_PLUGIN=$plugin expect_code 0 "info without a plugin ($plugin)" -- "$bp" info
  case $plugin in
    off) why="turned off" ;;
    *) why="could not be loaded" ;;
  esac
  expect_grep "$why" "$work/out.txt" "info says why CUDA is unusable ($plugin)"
  BATCHPOLE_CUDA_PLUGIN=$plugin expect_code 2 "--device cuda without a plugin ($plugin)" -- \
    "$bp" bench env --device cuda --envs 64 --steps 2 --repeats 1
  expect_grep "$why" "$work/err.txt" "--device cuda says why ($plugin)"
  BATCHPOLE_CUDA_PLUGIN=$plugin expect_code 0 "auto falls back to the CPU ($plugin)" -- \
    "$bp" bench env --envs 64 --steps 2 --repeats 1 --json
  expect_grep '"device": "cpu' "$work/out.txt" "auto runs on the CPU ($plugin)"
done
expect_code 0 "bench env json" -- "$bp" bench env --device cpu --envs 512 --steps 20 --repeats 1 --json
expect_grep '"env_steps_per_s"' "$work/out.txt" "bench env key"
expect_code 2 "bench env --envs 0" -- "$bp" bench env --envs 0
expect_code 2 "bench env --envs -3" -- "$bp" bench env --envs -3
expect_code 2 "bench env too many envs" -- "$bp" bench env --device cpu --envs 2000000000 --precision f64
expect_grep "bytes" "$work/err.txt" "too many envs names the bytes"
expect_code 2 "bench env unknown device" -- "$bp" bench env --device tpu

# Usage errors of train: exit 2, nothing written.
for bad in "--lr -1" "--lr nan" "--lr inf" "--gamma 0" "--gamma 1.5" "--n-steps -1" \
           "--algo sarsa" "--envs 0" "--value-lr -0.1" "--envs 4000000000" \
           "--algo dqn --actions continuous" "--actions sideways" "--algo dqn --huber-delta 0" \
           "--algo dqn --buffer-size 50"; do
  # shellcheck disable=SC2086
  expect_code 2 "train $bad" -- "$bp" train --device cpu $bad --out "$work/bad" --updates 1 -q
done
[ ! -e "$work/bad/metrics.csv" ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: a refused run wrote metrics"; }
expect_code 2 "unwritable --out" -- "$bp" train --device cpu --out /proc/batchpole-run --updates 1 -q

# A short run: files, then refusal to overwrite it, then resume and evaluation.
run="$work/run"
expect_code 0 "short train" -- "$bp" train --device cpu --envs 64 --updates 6 --checkpoint-every 2 --out "$run" -q
for f in metrics.csv summary.json checkpoint.bin; do
  [ -s "$run/$f" ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: $f missing"; }
done
expect_grep '"solved"' "$run/summary.json" "summary solved"
expect_grep '"env_steps_per_s"' "$run/summary.json" "summary rate"
expect_grep '"config"' "$run/summary.json" "summary config"
expect_grep '"reuse_activations": true' "$run/summary.json" "activations reused by default"
expect_code 0 "train --no-reuse-activations" -- "$bp" train --device cpu --envs 64 --updates 2 \
  --no-reuse-activations --out "$work/noreuse" -q
expect_grep '"reuse_activations": false' "$work/noreuse/summary.json" "--no-reuse-activations kept"
[ "$(wc -l <"$run/metrics.csv")" = 7 ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: metrics rows $(wc -l <"$run/metrics.csv")"; }
cp "$run/metrics.csv" "$work/metrics.before"
expect_code 2 "refuse to overwrite a run" -- "$bp" train --device cpu --envs 64 --updates 1 --out "$run" -q
cmp -s "$run/metrics.csv" "$work/metrics.before" && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: metrics changed"; }
expect_code 0 "resume" -- "$bp" train --device cpu --resume "$run" --updates 9 -q
[ "$(wc -l <"$run/metrics.csv")" = 10 ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: resumed metrics rows $(wc -l <"$run/metrics.csv")"; }
# The same seed gives the same metrics.csv (all but the wall-clock columns), and the resumed run
# above equals an uninterrupted one.
no_clock() { cut -d, -f1-2,4-16 "$1"; }
expect_code 0 "uninterrupted run" -- "$bp" train --device cpu --envs 64 --updates 9 --out "$work/straight" -q
if [ "$(no_clock "$work/straight/metrics.csv")" = "$(no_clock "$run/metrics.csv")" ]; then
  pass=$((pass + 1))
else
  failures=$((failures + 1)); echo "FAIL: resumed metrics differ from an uninterrupted run"
  diff <(no_clock "$work/straight/metrics.csv") <(no_clock "$run/metrics.csv") | head -5
fi
expect_code 0 "same seed again" -- "$bp" train --device cpu --envs 64 --updates 9 --out "$work/again" -q
[ "$(no_clock "$work/straight/metrics.csv")" = "$(no_clock "$work/again/metrics.csv")" ] &&
  pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: same seed, different metrics"; }
expect_code 0 "another seed" -- "$bp" train --device cpu --envs 64 --updates 9 --seed 7 --out "$work/other" -q
[ "$(no_clock "$work/straight/metrics.csv")" != "$(no_clock "$work/other/metrics.csv")" ] &&
  pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: another seed, same metrics"; }
# Ctrl-C: a checkpoint and a summary are written, exit 130, and the run resumes from there.
"$bp" train --device cpu --envs 64 --seconds 60 --target-return 1e9 --out "$work/int" -q &
pid=$!
sleep 1.5
kill -INT "$pid"
wait "$pid"
code=$?
[ "$code" = 130 ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: Ctrl-C exit $code"; }
expect_grep '"stop_reason": "interrupted"' "$work/int/summary.json" "interrupted summary"
expect_code 0 "resume after Ctrl-C" -- "$bp" train --device cpu --resume "$work/int" --updates 1000000 --seconds 0.5 --target-return 1e9 -q
expect_code 2 "resume with another configuration" -- "$bp" train --device cpu --resume "$run" --hidden 32 --updates 12 -q
expect_code 0 "eval" -- "$bp" eval --checkpoint "$run/checkpoint.bin" --episodes 8 --device cpu --json
expect_grep '"mean_return"' "$work/out.txt" "eval json"
expect_code 0 "eval greedy" -- "$bp" eval --checkpoint "$run/checkpoint.bin" --episodes 4 --greedy

# DQN: a checkpoint keeps the replay buffer and the target network, so a resumed run equals an
# uninterrupted one; eval plays it greedily. Continuous actions: train, eval sampled and greedy.
dqn=(--algo dqn --envs 4 --n-steps 4 --learning-starts 32 --batch-size 16 --target-update 3)
expect_code 0 "dqn short train" -- "$bp" train --device cpu "${dqn[@]}" --updates 8 --out "$work/dqn" -q
expect_code 0 "dqn resume" -- "$bp" train --device cpu --resume "$work/dqn" --updates 16 -q
expect_code 0 "dqn uninterrupted" -- "$bp" train --device cpu "${dqn[@]}" --updates 16 --out "$work/dqn2" -q
[ "$(no_clock "$work/dqn/metrics.csv")" = "$(no_clock "$work/dqn2/metrics.csv")" ] &&
  pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: resumed dqn differs from an uninterrupted run"; }
expect_code 0 "dqn eval" -- "$bp" eval --checkpoint "$work/dqn/checkpoint.bin" --episodes 4 --json
expect_grep '"greedy": true' "$work/out.txt" "dqn eval is greedy"
expect_code 0 "continuous train" -- "$bp" train --device cpu --algo ppo --actions continuous --envs 8 \
  --n-steps 16 --updates 2 --out "$work/cont" -q
expect_grep '"actions": "continuous"' "$work/cont/summary.json" "continuous config kept"
expect_code 0 "continuous eval" -- "$bp" eval --checkpoint "$work/cont/checkpoint.bin" --episodes 4
expect_code 0 "continuous eval greedy" -- "$bp" eval --checkpoint "$work/cont/checkpoint.bin" --episodes 4 --greedy

# Bad checkpoints are refused with a message, exit 2.
head -c 100 "$run/checkpoint.bin" >"$work/truncated.bin"
expect_code 2 "truncated checkpoint" -- "$bp" eval --checkpoint "$work/truncated.bin"
expect_grep "truncated" "$work/err.txt" "truncated message"
cp "$run/checkpoint.bin" "$work/corrupt.bin"
printf '\x55' | dd of="$work/corrupt.bin" bs=1 seek=200 conv=notrunc 2>/dev/null
expect_code 2 "corrupted checkpoint" -- "$bp" eval --checkpoint "$work/corrupt.bin"
expect_grep "corrupted" "$work/err.txt" "corrupted message"
cp "$run/checkpoint.bin" "$work/version.bin"
printf '\x09' | dd of="$work/version.bin" bs=1 seek=8 conv=notrunc 2>/dev/null
expect_code 2 "other version" -- "$bp" eval --checkpoint "$work/version.bin"
expect_grep "version" "$work/err.txt" "version message"
echo "not a checkpoint" >"$work/text.bin"
expect_code 2 "not a checkpoint" -- "$bp" eval --checkpoint "$work/text.bin"

# A config file with the same keys; an unknown key is refused by name.
echo '{"algo": "reinforce", "envs": 8, "updates": 2, "seed": 3}' >"$work/cfg.json"
expect_code 0 "config file" -- "$bp" train --device cpu --config "$work/cfg.json" --out "$work/cfgrun" -q
expect_grep '"algo": "reinforce"' "$work/cfgrun/summary.json" "config file applied"
echo '{"algo": "a2c", "learning_rate": 3}' >"$work/cfg2.json"
expect_code 2 "unknown config key" -- "$bp" train --device cpu --config "$work/cfg2.json" --out "$work/cfgrun2" -q
expect_grep "learning_rate" "$work/err.txt" "unknown key named"

# Populations: --agents K trains K agents in one run (metrics rows per agent, a summary with the
# agents and their aggregate), resumes as a whole, and each agent evaluates on its own.
pop="$work/pop"
expect_code 0 "train --agents" -- "$bp" train --device cpu --agents 3 --envs 16 --updates 4 \
  --checkpoint-every 2 --out "$pop" -q
[ "$(wc -l <"$pop/metrics.csv")" = 13 ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: population metrics rows $(wc -l <"$pop/metrics.csv")"; }
expect_grep ',agent,seed$' "$pop/metrics.csv" "metrics names agent and seed"
expect_grep '"population"' "$pop/summary.json" "population aggregate"
expect_grep '"seed": 2' "$pop/summary.json" "agent 2 trains seed 2"
expect_code 0 "resume a population" -- "$bp" train --device cpu --resume "$pop" --updates 6 -q
[ "$(wc -l <"$pop/metrics.csv")" = 19 ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: resumed population rows $(wc -l <"$pop/metrics.csv")"; }
expect_code 0 "eval an agent" -- "$bp" eval --checkpoint "$pop/checkpoint.bin" --agent 2 --episodes 4 --json
expect_code 2 "eval an agent that is not there" -- "$bp" eval --checkpoint "$pop/checkpoint.bin" --agent 3
expect_grep "3 agents" "$work/err.txt" "eval --agent names the population"
# Agent 1 of the population is the solo run with seed 1 (all but the clock columns and the
# agent index).
expect_code 0 "solo run of agent 1" -- "$bp" train --device cpu --seed 1 --envs 16 --updates 6 \
  --out "$work/solo1" -q
if [ "$(awk -F, 'NR > 1 && $22 == 1' "$pop/metrics.csv" | cut -d, -f1-2,4-16)" = \
     "$(tail -n +2 "$work/solo1/metrics.csv" | cut -d, -f1-2,4-16)" ]; then
  pass=$((pass + 1))
else
  failures=$((failures + 1)); echo "FAIL: population agent 1 differs from its solo run"
fi
# Sweeps: one population per point, the swept values in metrics.csv and summary.json.
expect_code 0 "train --sweep" -- "$bp" train --device cpu --agents 2 --envs 8 --updates 2 \
  --sweep lr=0.001,0.003 --sweep entropy-coef=0,0.02 --out "$work/sweep" -q
expect_grep ',agent,seed,lr,entropy_coef$' "$work/sweep/metrics.csv" "sweep columns"
[ "$(wc -l <"$work/sweep/metrics.csv")" = 17 ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: sweep metrics rows $(wc -l <"$work/sweep/metrics.csv")"; }
expect_grep '"points"' "$work/sweep/summary.json" "sweep points in the summary"
[ -s "$work/sweep/checkpoint-3.bin" ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: a checkpoint per sweep point"; }
for bad in "--sweep lr" "--sweep lr=" "--sweep nothing=1,2" "--sweep seed=1,2" \
           "--sweep lr=0.1,x" "--sweep lr=1 --sweep lr=2" "--sweep lr=-1" "--agents 0"; do
  # shellcheck disable=SC2086
  expect_code 2 "train $bad" -- "$bp" train --device cpu $bad --out "$work/badsweep" --updates 1 -q
done
[ ! -e "$work/badsweep/metrics.csv" ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: a refused sweep wrote metrics"; }
# --distributed outside mpirun is refused, with or without MPI in the build (tests/mpi_test.sh
# runs it under mpirun where MPI was found).
expect_code 2 "train --distributed without mpirun" -- "$bp" train --device cpu --agents 2 --envs 8 \
  --updates 1 --distributed --out "$work/dist" -q
expect_grep "MPI\|mpirun" "$work/err.txt" "--distributed says what it needs"
expect_code 0 "bench train --agents" -- "$bp" bench train --device cpu --agents 4 --envs 16 --updates 2 --json
expect_grep '"agents": 4' "$work/out.txt" "bench train reports the agents"

echo "$pass passed, $failures failed"
[ "$failures" = 0 ]
