# Shared by the command-line test scripts: a scratch directory, counters and two checks.
# Source it after setting bp (the batchpole binary); it sets work, pass and failures.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
pass=0

expect_code() {  # expect_code CODE DESCRIPTION -- COMMAND...
  local want=$1 what=$2
  shift 3
  "$@" >"$work/out.txt" 2>"$work/err.txt"
  local got=$?
  if [ "$got" = "$want" ]; then
    pass=$((pass + 1))
  else
    failures=$((failures + 1))
    echo "FAIL: $what: exit $got, expected $want"; sed 's/^/  | /' "$work/err.txt" | head -5
  fi
}
expect_grep() {  # expect_grep PATTERN FILE DESCRIPTION
  if grep -q -- "$1" "$2"; then pass=$((pass + 1)); else
    failures=$((failures + 1)); echo "FAIL: $3: '$1' not in $2"; head -5 "$2"; fi
}
