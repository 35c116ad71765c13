#!/usr/bin/env bash
# Issue 15, item 11: in a script under `set -o pipefail`, a pipeline into a reader that stops
# early (`cmd | grep -q`, `| grep -m N`, `| head`) fails at random: the reader exits at its
# first match, cmd can then die of SIGPIPE, and the pipeline takes cmd's status. A check that
# fails at random makes CI fail at random (or pass when it should fail). The scripts capture
# the output first and match it afterwards; this test finds any pipeline that does not.
# usage: scripts_lint.sh SOURCE_DIR
set -u
src=$1

# A pipe (not ||) into grep with -q/-m (alone or among other short options, or spelled long),
# or into head.
pattern='(^|[^|])\|[[:space:]]*(grep([[:space:]]+-[A-Za-z]*[qm][A-Za-z]*\b|[^|]*--(quiet|silent|max-count))|head\b)'

lint() {  # lint FILE: prints the offending lines of a script that sets pipefail
  grep -q pipefail "$1" || return 0
  grep -n -E "$pattern" "$1" | grep -v -E '^[0-9]+:[[:space:]]*#'
}

# The check itself must be able to fail: the lines commit 3512ac4's .ci/run had, and their fix.
sample=$(mktemp)
trap 'rm -f "$sample"' EXIT
cat >"$sample" <<'EOF'
set -euo pipefail
   ldd build-ci-cpu/batchpole | grep -q -i cu; then
LD_LIBRARY_PATH=$openmp_blas ldd build-ci-cpu/tests/batchpole_tests | grep -q "$openmp_blas" ||
grep -E 'FAILED|Failure' "$out/tests.full.log" | head -80
if nvidia-smi | grep -qi h200; then
x=$(ldd prog | grep --quiet cuda)
EOF
found=$(lint "$sample" | wc -l)
if [ "$found" != 5 ]; then
  echo "FAIL: the lint found $found of the 5 bad pipelines in its own sample"
  exit 1
fi
cat >"$sample" <<'EOF'
set -euo pipefail
links=$(ldd build-ci-cpu/batchpole)
grep -q -i cu <<<"$links" || true
if true || grep -q x file; then :; fi
# a comment may show `cmd | grep -q`
ldd "$bundle"/bin/* | awk '/=> \// {print $3}' | sort -u | grep -v libc
EOF
if [ -n "$(lint "$sample")" ]; then
  echo "FAIL: the lint flags correct lines:"
  lint "$sample"
  exit 1
fi

status=0
checked=0
while IFS= read -r -d '' f; do
  [ "$f" -ef "$0" ] && continue  # its samples are bad on purpose
  checked=$((checked + 1))
  bad=$(lint "$f")
  if [ -n "$bad" ]; then
    echo "FAIL: $f: a pipeline into an early-exiting reader under pipefail (capture the output" \
         "first, then match it):"
    echo "$bad" | sed 's/^/  /'
    status=1
  fi
done < <(find "$src" \( -path "$src/build*" -o -path "$src/.git" \) -prune -o -type f \
           \( -name '*.sh' -o -path "$src/.ci/*" \) -print0)
echo "$checked scripts checked"
[ "$checked" -gt 0 ] || status=1
exit $status
