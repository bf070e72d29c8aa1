#!/usr/bin/env bash
# `make test`: the formatter and the linter, then every suite in three phases. Each phase
# runs even when an earlier one failed; the run fails at the end if any did, and its last
# line says what ran and how it ended.
# The chaos suite, the soak, the node suite and the quick benchmark run alone, after the
# rest: the first two ask a normal client to be served while the attack is held and the
# soak's latency not to drift, and beside other suites they would measure those suites'
# load; the node suite's kubelet and kube-proxy change the machine's iptables and
# forwarding while it runs (test/support/kube-node.ts); the benchmark loads both cores.
set -uo pipefail
cd "$(dirname "$0")/.."
names=("format and lint" "the suites" "chaos, soak and a real node, alone" "the quick benchmark, alone")
commands=(
  "scripts/lint.sh"
  "jest --testPathIgnorePatterns=/test/reliability/(soak|chaos)\\.test\\.ts$ /test/bench/ /test/node/"
  "jest --maxWorkers=1 test/reliability/chaos.test.ts test/reliability/soak.test.ts test/node"
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
