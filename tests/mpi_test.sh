#!/usr/bin/env bash
# train --distributed under mpirun against one process (README, "Past one machine"): populations
# split over ranks, and one agent data-parallel against --parts R; the same metrics.csv (every column but the clock's: wall_s, steps_per_s) and the same summary.json
# (wall times aside), bit for bit; bad use refused with exit 2; a rank that fails ends the job
# rather than leaving the others waiting. Usage: mpi_test.sh BATCHPOLE MPIRUN.
bp=$1
mpirun=$2
# shellcheck source=tests/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"
# CI runs as root in a container: Open MPI refuses that unless told twice. Ranks may outnumber
# the cores (--oversubscribe); one thread each.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
mpi() {  # mpi RANKS ARGS... : batchpole under mpirun, bounded in time (no hang)
  local n=$1
  shift
  timeout 300 "$mpirun" --allow-run-as-root --oversubscribe -np "$n" "$bp" "$@"
}

# The columns one process and R ranks must agree on: all but wall_s (3) and steps_per_s (17).
same_metrics() {  # same_metrics DIR_A DIR_B WHAT
  if cmp -s <(cut -d, -f1,2,4-16,18- "$1/metrics.csv") <(cut -d, -f1,2,4-16,18- "$2/metrics.csv"); then
    pass=$((pass + 1))
  else
    failures=$((failures + 1)); echo "FAIL: $3: metrics.csv differs"
    diff <(cut -d, -f1,2,4-16,18- "$1/metrics.csv") <(cut -d, -f1,2,4-16,18- "$2/metrics.csv") | head -4
  fi
}
same_summary() {  # same_summary DIR_A DIR_B WHAT: summary.json without wall times and rates
  local strip='walk(if type == "object" then with_entries(select((.key | test("^wall_s|env_steps_per_s|^ranks$")) | not)) else . end)'
  if command -v jq >/dev/null; then
    if cmp -s <(jq -S "$strip" "$1/summary.json") <(jq -S "$strip" "$2/summary.json"); then
      pass=$((pass + 1))
    else
      failures=$((failures + 1)); echo "FAIL: $3: summary.json differs"
    fi
  else
    python3 - "$1/summary.json" "$2/summary.json" <<'PY' && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: $3: summary.json differs"; }
import json, re, sys
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if not re.match(r"^wall_s|env_steps_per_s|^ranks$", k)}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
a, b = (strip(json.load(open(p))) for p in sys.argv[1:3])
sys.exit(0 if a == b else 1)
PY
  fi
}

common=(train --device cpu --threads 1 --envs 16 -q)
# A2C population of 4 over 2 ranks (2 agents each) and over 3 (1, 1 and 2: a rank of one agent
# trains it alone, as its solo run).
expect_code 0 "one process, 4 agents" -- "$bp" "${common[@]}" --agents 4 --updates 8 --seed 3 --out "$work/one"
expect_code 0 "2 ranks, 4 agents" -- mpi 2 "${common[@]}" --agents 4 --updates 8 --seed 3 --out "$work/two" --distributed
same_metrics "$work/one" "$work/two" "2 ranks"
same_summary "$work/one" "$work/two" "2 ranks"
expect_grep '"ranks": 2' "$work/two/summary.json" "the summary names the ranks"
[ -s "$work/two/checkpoint.rank1.bin" ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: rank 1 checkpoints its agents"; }
expect_code 0 "3 ranks, 4 agents" -- mpi 3 "${common[@]}" --agents 4 --updates 8 --seed 3 --out "$work/three" --distributed
same_metrics "$work/one" "$work/three" "3 ranks"
same_summary "$work/one" "$work/three" "3 ranks"
# An agent of rank 1 evaluates from its rank's checkpoint (agent 0 there is agent 2 of the run).
expect_code 0 "eval an agent of rank 1" -- "$bp" eval --checkpoint "$work/two/checkpoint.rank1.bin" --agent 0 --episodes 2 --json

# PPO, and a sweep whose point a rank boundary cuts (2 points x 2 agents over 3 ranks).
expect_code 0 "one process, PPO" -- "$bp" "${common[@]}" --algo ppo --agents 3 --updates 3 --seed 5 --out "$work/ppo1"
expect_code 0 "2 ranks, PPO" -- mpi 2 "${common[@]}" --algo ppo --agents 3 --updates 3 --seed 5 --out "$work/ppo2" --distributed
same_metrics "$work/ppo1" "$work/ppo2" "2 ranks, PPO"
same_summary "$work/ppo1" "$work/ppo2" "2 ranks, PPO"
expect_code 0 "one process, sweep" -- "$bp" "${common[@]}" --agents 2 --updates 4 --sweep lr=0.001,0.003 --out "$work/sw1"
expect_code 0 "3 ranks, sweep" -- mpi 3 "${common[@]}" --agents 2 --updates 4 --sweep lr=0.001,0.003 --out "$work/sw3" --distributed
same_metrics "$work/sw1" "$work/sw3" "3 ranks, sweep"
same_summary "$work/sw1" "$work/sw3" "3 ranks, sweep"
# Agents that solve at different updates: rows of stopped agents end while others go on.
expect_code 0 "one process, to the target" -- "$bp" "${common[@]}" --agents 3 --updates 40 --target-return 30 --seed 1 --out "$work/t1"
expect_code 0 "2 ranks, to the target" -- mpi 2 "${common[@]}" --agents 3 --updates 40 --target-return 30 --seed 1 --out "$work/t2" --distributed
same_metrics "$work/t1" "$work/t2" "2 ranks, to the target"
same_summary "$work/t1" "$work/t2" "2 ranks, to the target"

# Data-parallel: one agent, its envs cut into one part per rank, against one process with
# --parts R: metrics, summary and the checkpoint's contents the same; resumed under the same R.
expect_code 0 "one process, --parts 2" -- "$bp" train --device cpu --threads 1 -q --envs 24 --updates 30 --seed 3 --parts 2 --out "$work/dp1"
expect_code 0 "2 ranks, one agent" -- mpi 2 train --device cpu --threads 1 -q --envs 24 --updates 20 --seed 3 --out "$work/dp2" --distributed
expect_code 0 "2 ranks resume" -- mpi 2 train --device cpu --threads 1 -q --resume "$work/dp2" --updates 30 --distributed
same_metrics "$work/dp1" "$work/dp2" "2 ranks data-parallel, resumed"
same_summary "$work/dp1" "$work/dp2" "2 ranks data-parallel, resumed"
# Resumed with the training flags it was started with (--distributed implies --parts 2).
expect_code 0 "2 ranks, one agent, 10 updates" -- mpi 2 train --device cpu --threads 1 -q --envs 24 --seed 3 --updates 10 --out "$work/dpf" --distributed
expect_code 0 "2 ranks resume with the same flags" -- mpi 2 train --device cpu --threads 1 -q --envs 24 --seed 3 --updates 30 --resume "$work/dpf" --distributed
same_metrics "$work/dp1" "$work/dpf" "2 ranks data-parallel, resumed with its flags"
expect_code 0 "one process, --parts 3" -- "$bp" train --device cpu --threads 1 -q --envs 24 --updates 25 --seed 4 --parts 3 --out "$work/dp3a"
expect_code 0 "3 ranks, one agent" -- mpi 3 train --device cpu --threads 1 -q --envs 24 --updates 25 --seed 4 --out "$work/dp3b" --distributed
same_metrics "$work/dp3a" "$work/dp3b" "3 ranks data-parallel"
same_summary "$work/dp3a" "$work/dp3b" "3 ranks data-parallel"
# The distributed checkpoint continues in one process exactly as the one-process one does.
expect_code 0 "resume 3 ranks' checkpoint in one process" -- "$bp" train --device cpu --threads 1 -q --resume "$work/dp3b" --updates 30
expect_code 0 "resume one process's checkpoint" -- "$bp" train --device cpu --threads 1 -q --resume "$work/dp3a" --updates 30
same_metrics "$work/dp3a" "$work/dp3b" "3 ranks' checkpoint resumed"

# Every algorithm: PPO (its epochs stopped early by the target KL: the ranks agree), REINFORCE
# and baseline (whole episodes: each rank's part collects until its own envs have ended one).
for algo in "ppo --target-kl 0.004" reinforce baseline "a2c --n-steps 0"; do
  name=${algo%% *}$(echo "$algo" | grep -c n-steps)
  # shellcheck disable=SC2086
  expect_code 0 "one process, --parts 2, $algo" -- "$bp" train --device cpu --threads 1 -q --envs 12 --updates 4 --seed 6 --algo $algo --parts 2 --out "$work/dpa-$name"
  # shellcheck disable=SC2086
  expect_code 0 "2 ranks, $algo" -- mpi 2 train --device cpu --threads 1 -q --envs 12 --updates 4 --seed 6 --algo $algo --out "$work/dpb-$name" --distributed
  same_metrics "$work/dpa-$name" "$work/dpb-$name" "2 ranks data-parallel $algo"
  same_summary "$work/dpa-$name" "$work/dpb-$name" "2 ranks data-parallel $algo"
done

expect_code 0 "one process, PPO --parts 3" -- "$bp" train --device cpu --threads 1 -q --envs 12 --updates 4 --seed 7 --algo ppo --parts 3 --out "$work/dpa-ppo3"
expect_code 0 "3 ranks, PPO" -- mpi 3 train --device cpu --threads 1 -q --envs 12 --updates 4 --seed 7 --algo ppo --out "$work/dpb-ppo3" --distributed
same_metrics "$work/dpa-ppo3" "$work/dpb-ppo3" "3 ranks data-parallel PPO"

# DQN: a population over ranks (each agent with its own replay buffer) is one process's; one
# DQN agent is not cut into parts. PPO with the Gaussian head (continuous actions) is.
expect_code 0 "one process, DQN population" -- "$bp" "${common[@]}" --algo dqn --agents 2 --updates 20 --out "$work/dqn1"
expect_code 0 "2 ranks, DQN population" -- mpi 2 "${common[@]}" --algo dqn --agents 2 --updates 20 --out "$work/dqn2" --distributed
same_metrics "$work/dqn1" "$work/dqn2" "2 ranks, DQN population"
expect_code 2 "data-parallel DQN" -- mpi 2 "${common[@]}" --algo dqn --updates 1 --out "$work/dqn3" --distributed
expect_grep "dqn" "$work/err.txt" "says DQN is not cut into parts"
expect_code 0 "one process, continuous PPO --parts 2" -- "$bp" train --device cpu --threads 1 -q --algo ppo --actions continuous --envs 16 --updates 4 --parts 2 --out "$work/cont1"
expect_code 0 "2 ranks, continuous PPO" -- mpi 2 train --device cpu --threads 1 -q --algo ppo --actions continuous --envs 16 --updates 4 --out "$work/cont2" --distributed
same_metrics "$work/cont1" "$work/cont2" "2 ranks data-parallel continuous PPO"

# Bad use, exit 2.
expect_code 2 "--distributed without mpirun" -- "$bp" "${common[@]}" --agents 2 --updates 1 --out "$work/bad1" --distributed
expect_grep "mpirun" "$work/err.txt" "says to start it with mpirun"
expect_code 2 "more ranks than agents" -- mpi 3 "${common[@]}" --agents 2 --updates 1 --out "$work/bad2" --distributed
expect_grep "agents >= 3" "$work/err.txt" "says how many agents"
expect_code 2 "--parts with a population" -- mpi 2 "${common[@]}" --agents 2 --parts 2 --updates 1 --out "$work/bad3" --distributed
expect_code 2 "envs not cut into the ranks" -- mpi 3 "${common[@]}" --updates 1 --out "$work/bad4" --distributed
expect_grep "multiple of parts" "$work/err.txt" "says the envs must divide"
expect_code 2 "--parts other than the ranks" -- mpi 2 "${common[@]}" --parts 4 --updates 1 --out "$work/bad5" --distributed
expect_code 2 "resume under other ranks" -- mpi 3 train --device cpu --threads 1 -q --resume "$work/dp2" --updates 40 --distributed
expect_grep "mpirun -np" "$work/err.txt" "says to resume with its parts"
expect_code 2 "--resume --distributed of a population" -- mpi 2 "${common[@]}" --resume "$work/two" --updates 9 --distributed
expect_grep "trained over ranks" "$work/err.txt" "says a population over ranks is not resumed"
# Nor without --distributed, from its directory or from a rank's checkpoint; its files stay.
cp "$work/two/metrics.csv" "$work/two.metrics"
cp "$work/two/summary.json" "$work/two.summary"
expect_code 2 "--resume of a population over ranks" -- "$bp" "${common[@]}" --resume "$work/two" --updates 9
expect_grep "trained over ranks" "$work/err.txt" "says so from the directory"
expect_code 2 "--resume of a rank's checkpoint" -- "$bp" train --device cpu --threads 1 -q --resume "$work/two/checkpoint.rank1.bin" --updates 9
expect_grep "trained over ranks" "$work/err.txt" "says so from a rank's checkpoint"
if cmp -s "$work/two.metrics" "$work/two/metrics.csv" && cmp -s "$work/two.summary" "$work/two/summary.json"; then
  pass=$((pass + 1))
else
  failures=$((failures + 1)); echo "FAIL: a refused resume changed the population's files"
fi
# A rank that fails (rank 0 finds a run in --out) ends the job: exit 2, no hang.
expect_code 2 "a failing rank ends the job" -- mpi 2 "${common[@]}" --agents 2 --updates 1 --out "$work/two" --distributed
expect_grep "rank 0 of 2" "$work/err.txt" "names the failing rank"

# A rank that dies (killed) ends the job: mpirun reports it and stops the others, no hang.
( mpi 2 train --device cpu --threads 1 -q --envs 64 --updates 1000000 --target-return 1e9 \
    --out "$work/killed" --distributed >"$work/kill.txt" 2>&1
  echo $? >"$work/kill.rc" ) &
job=$!
for _ in $(seq 100); do
  [ -s "$work/killed/metrics.csv" ] && [ "$(wc -l <"$work/killed/metrics.csv")" -gt 3 ] && break
  sleep 0.1
done
rank=$(pgrep -f -- "^$bp train .*--out $work/killed" | head -1)
[ -n "$rank" ] && kill -9 "$rank"
wait "$job"
if [ -n "$rank" ] && [ "$(cat "$work/kill.rc")" != 0 ] && grep -q "signal 9" "$work/kill.txt"; then
  pass=$((pass + 1))
else
  failures=$((failures + 1)); echo "FAIL: a killed rank: exit $(cat "$work/kill.rc" 2>/dev/null), pid '$rank'"; head -5 "$work/kill.txt"
fi

echo "$pass passed, $failures failed"
[ "$failures" = 0 ]
