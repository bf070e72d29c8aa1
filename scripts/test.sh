#!/usr/bin/env bash
# `make test`: every suite, in three phases. Each phase runs even when an earlier one failed;
# the run fails at the end if any did, and its last line says what ran and how it ended.
# The chaos suite, the soak and the quick benchmark run alone, after the rest: their bounds
# (a client served within 2 s under attack, the soak's latency drift) measure the sidecar,
# and beside other suites they would measure those suites' load; the benchmark loads both cores.
set -uo pipefail
cd "$(dirname "$0")/.."
names=("the suites" "chaos and soak, alone" "the quick benchmark, alone")
commands=(
  "jest --testPathIgnorePatterns=/test/reliability/(soak|chaos)\\.test\\.ts$ /test/bench/"
  "jest --maxWorkers=1 test/reliability/chaos.test.ts test/reliability/soak.test.ts"
  "jest test/bench"
)
summary=()
failed=0
for i in "${!names[@]}"; do
  echo "== make test: ${names[$i]}"
  if ${commands[$i]}; then
    summary+=("${names[$i]}: passed")
  else
    summary+=("${names[$i]}: FAILED")
    failed=1
  fi
done
( IFS=';'; echo "make test: ${summary[*]}" | sed 's/;/; /g' )
exit "$failed"
