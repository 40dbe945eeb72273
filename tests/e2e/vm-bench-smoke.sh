#!/bin/bash
# Smoke check of make bench inside make test's VM: every benchmark with tiny sizes (--quick),
# no timing asserts. Fails if a benchmark crashes, exits non-zero or writes malformed JSON.
# Run by tests/vm/run-all (or: scripts/vm/run -- tests/e2e/vm-bench-smoke.sh). Prints TAP.
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d /tmp/bench-smoke.XXXXXX)
"$top/bench/run-guest.sh" --out "$out" --quick
rc=$?
rm -rf "$out"
exit $rc
