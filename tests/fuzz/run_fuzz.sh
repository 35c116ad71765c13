#!/usr/bin/env bash
# Runs a libFuzzer target for a while over a seed corpus made here from real files: checkpoints
# of two small runs (as files, and as payloads for the target to wrap in a valid checksum), or
# the configuration of a run, with the configuration keys as the dictionary. A crash, a
# sanitizer report, an input slower than 10 s or above 2 GiB fails; the input is kept as
# fuzz-<kind>-crash-* in the working directory and printed in base64.
# usage: run_fuzz.sh checkpoint|config FUZZER BATCHPOLE SECONDS
set -u
kind=$1 fuzzer=$2 bp=$3 seconds=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=$work/corpus
mkdir "$corpus"
: >"$work/dict"

"$bp" train --device cpu --envs 2 --hidden 4 --n-steps 4 --updates 3 --out "$work/a2c" -q || exit 1
"$bp" train --device cpu --algo baseline --envs 2 --hidden 4 --max-episode-steps 20 \
  --updates 3 --out "$work/baseline" -q || exit 1
case $kind in
  checkpoint)
    for run in a2c baseline; do
      f=$work/$run/checkpoint.bin
      { printf '\0'; cat "$f"; } >"$corpus/$run.file"
      size=$(stat -c %s "$f")
      { printf '\1'; dd if="$f" bs=1 skip=20 count=$((size - 28)) status=none; } >"$corpus/$run.payload"
    done
    ;;
  config)
    for run in a2c baseline; do
      python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["config"]))' \
        "$work/$run/summary.json" >"$corpus/$run.json" || exit 1
    done
    printf '%s\n' '{"updates": 3, "threads": 2, "out": "x", "seconds": 1.5}' >"$corpus/run.json"
    help=$("$bp" train --help)
    for key in $(grep -o -E -- '--[a-z][a-z-]+' <<<"$help" | sort -u); do
      key=${key#--}
      printf '"\\"%s\\""\n' "${key//-/_}" >>"$work/dict"
    done
    ;;
  *)
    echo "unknown fuzz target kind $kind" >&2
    exit 2
    ;;
esac

dict=()
[ -s "$work/dict" ] && dict=(-dict="$work/dict")
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$PWD/fuzz-$kind-" "${dict[@]}" "$corpus" 2>"$work/log"
status=$?
grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$work/log"
if [ "$status" != 0 ]; then
  tail -n 60 "$work/log"
  for f in "$PWD"/fuzz-"$kind"-*; do
    [ -e "$f" ] && { echo "input $f (base64):"; base64 "$f"; }
  done
fi
exit $status
