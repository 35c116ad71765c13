#!/usr/bin/env bash
# `batchpole compare`: exit status (0 with a GPU, 3 without one), the JSON report (environment
# parity in both precisions over data that was really compared, network differences, training
# side by side), the per-update CSVs of --metrics-out, and usage errors (exit 2).
# usage: compare_test.sh PATH/TO/batchpole
set -u
bp=$1
# shellcheck source=tests/cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

# Without a GPU the command compares two CPU configurations and exits 3 when every check holds.
"$bp" info --json >"$work/info.json"
if python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["cuda_devices"] else 1)' \
    "$work/info.json"; then
  want=0
else
  want=3
fi

expect_code 0 "compare --help" -- "$bp" compare --help
for opt in --envs --steps --seed --json --metrics-out --threads --skip-training; do
  expect_grep "$opt" "$work/out.txt" "help lists $opt"
done

envs=256
steps=200
expect_code "$want" "compare --json" -- "$bp" compare --json --envs "$envs" --steps "$steps" \
  --seed 7 --threads 2 --metrics-out "$work/metrics"
cp "$work/out.txt" "$work/report.json"
if [ "$want" = 3 ]; then expect_grep "no GPU" "$work/err.txt" "says that there is no GPU"; fi

# The report: every check named below must hold. values_compared must be exactly what envs x
# steps x fields (plus the final observations of every ended episode) gives, so that a parity
# check over empty or partial data fails here.
if python3 - "$work/report.json" "$envs" "$steps" "$want" <<'EOF'; then
import json, sys
path, envs, steps, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
j = json.load(open(path))
errors = []
def check(cond, what):
    if not cond:
        errors.append(what)

check(j["exit_code"] == want, f"exit_code {j['exit_code']} != {want}")
check(j["gpu"]["available"] == (want == 0), "gpu.available")
a, b = j["order"]
check(a != b and a in j["sides"] and b in j["sides"], "two distinct sides")
if want == 3:
    check(j["sides"][a]["threads"] == 1 and j["sides"][b]["threads"] == 2,
          f"sides are 1 and 2 CPU threads: {j['sides']}")
check(j["env"]["envs"] == envs and j["env"]["steps"] == steps, "env sizes")
# Per env and step: action, 4 obs, reward, terminated, truncated, 7 state fields; per ended
# episode: 4 final obs, final return, final length.
for p in ("f32", "f64"):
    e = j["env"][p]
    check(e["equal"] is True, f"{p} env parity: {e}")
    check(e["mismatches"] == 0 and e["first_mismatch"] is None, f"{p} mismatches: {e}")
    check(e["episodes_ended"] > envs, f"{p}: episodes ended {e['episodes_ended']}")
    expected = envs * steps * 15 + 6 * e["episodes_ended"]
    check(e["values_compared"] == expected,
          f"{p}: values_compared {e['values_compared']} != {expected}")
check(j["env_parity"] is True, "env_parity")

net = j["network"]
names = [c["name"] for c in net["checks"]]
for want_name in ("initial parameters", "logits", "values", "gradients",
                  "parameters after one Adam step"):
    check(want_name in names, f"network check '{want_name}' in {names}")
for c in net["checks"]:
    for key in ("max_abs", "max_rel", "measure", "tolerance"):
        check(isinstance(c[key], (int, float)), f"{c['name']}.{key} is a number")
    check(c["within"] is True, f"network {c['name']} within tolerance: {c}")
    check(c["measure"] <= c["tolerance"], f"{c['name']}: measure above tolerance")
check(net["parameters"] > 0 and net["within"] is True, "network parameters and within")
check(j["network_within_tolerance"] is True and j["passed"] is True, "passed")

algos = {t["algo"]: t for t in j["training"]}
check(sorted(algos) == ["a2c", "baseline", "reinforce"], f"training algos {sorted(algos)}")
for t in j["training"]:
    check(len(t["per_update"]) == t["updates"] > 0, f"{t['algo']}: per-update rows")
    check(set(t["final_mean_return"]) == {a, b}, f"{t['algo']}: final returns of both sides")
    first = t["per_update"][0]
    check(first[a]["env_steps"] > 0 and first[b]["env_steps"] > 0, f"{t['algo']}: env steps")
    check("first_divergence" in t and t["max_policy_loss_diff"] >= 0, f"{t['algo']}: divergence")
check(len(j["metrics_files"]) == 6, f"metrics files {j['metrics_files']}")
for e in errors:
    print("  |", e)
sys.exit(1 if errors else 0)
EOF
  pass=$((pass + 1))
else
  failures=$((failures + 1)); echo "FAIL: the JSON report (above)"
fi

# --metrics-out: compare_ALGO_SIDE.csv for each algorithm and side, one row per update.
header="update,env_steps,mean_return,policy_loss,value_loss,entropy,grad_norm"
count=0
for f in "$work"/metrics/compare_*.csv; do
  [ -e "$f" ] || continue
  count=$((count + 1))
  if [ "$(head -1 "$f")" = "$header" ] && [ "$(wc -l <"$f")" -ge 11 ]; then
    pass=$((pass + 1))
  else
    failures=$((failures + 1)); echo "FAIL: $f: header or rows"; head -3 "$f"
  fi
done
[ "$count" = 6 ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: $count CSVs, expected 6"; }
for algo in reinforce baseline a2c; do
  n=$(find "$work/metrics" -name "compare_${algo}_*.csv" | wc -l)
  [ "$n" = 2 ] && pass=$((pass + 1)) || { failures=$((failures + 1)); echo "FAIL: $algo: $n CSVs"; }
done

# The readable table.
expect_code "$want" "compare (text)" -- "$bp" compare --envs 64 --steps 50 --skip-training
expect_grep "environment parity" "$work/out.txt" "table: environment parity"
expect_grep "gradients" "$work/out.txt" "table: network"
expect_grep "f64 .* equal" "$work/out.txt" "table: f64 equal"

# Usage errors: exit 2.
for bad in "--envs 0" "--envs -5" "--steps 0" "--threads -1" "--envs abc" "--bogus"; do
  # shellcheck disable=SC2086
  expect_code 2 "compare $bad" -- "$bp" compare $bad --skip-training
done
expect_code 2 "compare --envs 0 message" -- "$bp" compare --envs 0
expect_grep "\-\-envs must be" "$work/err.txt" "--envs 0 names the flag"
expect_code 2 "unwritable --metrics-out" -- "$bp" compare --metrics-out /proc/batchpole-compare \
  --envs 8 --steps 2 --skip-training

echo "$pass passed, $failures failed"
[ "$failures" = 0 ]
