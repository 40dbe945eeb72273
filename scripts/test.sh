#!/usr/bin/env bash
# make test: host unit tests (CTest) and VM tests (tests/vm/run-all in one guest), then one
# summary line "N passed, M failed, K skipped". Exits non-zero on any failure.
#   CKPT_SKIP_VM=1 runs only the host tests (the VM part is then reported as not run).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build/cmake
pass=0 fail=0 skip=0 status=0

echo "=== host tests (ctest)"
ctest --test-dir "$build" --output-on-failure -j2 2>&1 | tee "$build/ctest.log"
crc=${PIPESTATUS[0]}
line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$build/ctest.log" | tail -n1)
if [ -n "$line" ]; then
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  f=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  s=$(grep -cE '\*\*\*Skipped|Not Run' "$build/ctest.log")
  pass=$((total - f - s)) fail=$f skip=$s
else
  echo "test: ctest printed no result line"; fail=$((fail + 1))
fi
[ "$crc" -eq 0 ] || status=1

count_tap() {  # add a TAP program's "# Totals:" to the sums; a missing line is a failure
  local log=$1 rc=$2 t
  t=$(grep -E '^# Totals: pass:' "$log" | tail -n1)
  if [ -z "$t" ]; then fail=$((fail + 1)); status=1; return; fi
  pass=$((pass + $(sed -E 's/.*Totals: pass:([0-9]+).*/\1/' <<<"$t")))
  fail=$((fail + $(sed -E 's/.* fail:([0-9]+).*/\1/' <<<"$t")))
  skip=$((skip + $(sed -E 's/.* skip:([0-9]+).*/\1/' <<<"$t")))
  [ "$rc" -eq 0 ] || status=1
}

if [ -z "${CKPT_SKIP_VM:-}" ]; then
  echo "=== VM harness self-test"
  "$top/tests/harness/vm_selftest.sh" 2>&1 | tee "$top/build/harness.log"
  count_tap "$top/build/harness.log" "${PIPESTATUS[0]}"

  echo "=== VM power-cut test (QEMU killed while the example checkpoints to the NVDIMM)"
  "$top/tests/e2e/powercut.sh" 2 2>&1 | tee "$top/build/powercut.log"
  count_tap "$top/build/powercut.log" "${PIPESTATUS[0]}"

  echo "=== VM tests (scripts/vm/run -- tests/vm/run-all)"
  vmlog=$top/build/vm-test.log
  # The modules CRIU needs (socket diagnostics, netfilter), so the bench smoke runs the CRIU
  # comparison too instead of skipping it (same list as scripts/bench.sh).
  "$top/scripts/vm/run" --timeout "${CKPT_VM_TIMEOUT:-1800}" \
    --modules "unix_diag inet_diag tcp_diag udp_diag netlink_diag nf_tables nft_ct tun veth nf_conntrack nft_compat nft_chain_nat" \
    -- "$top/tests/vm/run-all" 2>&1 | tee "$vmlog"
  vrc=${PIPESTATUS[0]}
  line=$(grep -E '^vm: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$vmlog" | tail -n1)
  if [ -n "$line" ]; then
    read -r p f s < <(sed -E 's/^vm: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped.*/\1 \2 \3/' <<<"$line")
    pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
  fi
  if [ "$vrc" -ne 0 ]; then
    status=1
    # The harness failed the run itself (hang, kernel log problem, setup): count it.
    if [ -z "$line" ] || [ "$vrc" -ge 124 ]; then fail=$((fail + 1)); fi
  fi
else
  echo "=== VM tests skipped (CKPT_SKIP_VM set)"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$status" -eq 0 ]
