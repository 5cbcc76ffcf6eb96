#!/usr/bin/env bash
# Runs every Go fuzz target in the repo for FUZZTIME each (default 60s).
# New crashers land in the package's testdata/fuzz and become regression
# tests that plain `go test` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-60s}"
grep -rl --include='*_test.go' '^func Fuzz' cmd gateway 2>/dev/null | sort | while read -r file; do
  dir="./$(dirname "$file")"
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //' | while read -r target; do
    echo "fuzz $dir $target ($fuzztime)"
    out=$(mktemp)
    if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$dir" >"$out" 2>&1; then
      cat "$out"; rm -f "$out"
      echo "fuzz: $target failed; the failing input is now in $dir/testdata/fuzz/$target/ (commit it as a regression)"
      exit 1
    fi
    tail -2 "$out"; rm -f "$out"
  done
done
