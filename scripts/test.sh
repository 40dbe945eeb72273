#!/usr/bin/env bash
# make test: host unit tests (CTest; with libckpt-mpi's MPI tests against Open MPI), the MPI tests
# again against MPICH (build/cmake-mpich, make mpich), and VM tests (tests/vm/run-all, one guest per kernel), a
# result line per kernel, then one summary line "N passed, M failed, K skipped". Exits non-zero
# on any failure.
#   CKPT_SKIP_VM=1 runs only the host tests (the VM part is then reported as not run).
#   CKPT_TEST_KERNELS="6.1 6.12" (default) the kernels whose VM suites run, each booted once with
#   its own build/kmod/<abi>/ckpt.ko (make test builds both). The harness self-test and the
#   power-cut test boot the first kernel only: they test the harness and the NVDIMM path.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build/cmake
pass=0 fail=0 skip=0 status=0
t0=$SECONDS
# phase NAME: a "=== NAME" line with the time since make test's tests began, so a slow run
# shows where its time went.
phase() { echo "=== $1 [$(((SECONDS - t0) / 60))m$(((SECONDS - t0) % 60))s]"; }

phase "host tests (ctest)"
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

# libckpt-mpi's tests against MPICH: the second build directory (make mpich); the Open MPI ones
# ran above, in build/cmake. A build without them is a failure, not a skip.
mbuild=${CKPT_MPICH_BUILD:-$top/build/cmake-mpich}
phase "MPI tests against MPICH (ctest -L mpi in $mbuild)"
if ctest --test-dir "$mbuild" -N -L mpi 2>/dev/null | grep -qE 'Total Tests: [1-9]'; then
  ctest --test-dir "$mbuild" --output-on-failure -L mpi 2>&1 | tee "$mbuild/ctest-mpi.log"
  mrc=${PIPESTATUS[0]}
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$mbuild/ctest-mpi.log" | tail -n1)
  if [ -n "$line" ]; then
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
    s=$(grep -cE '\*\*\*Skipped|Not Run' "$mbuild/ctest-mpi.log")
    pass=$((pass + total - f - s)) fail=$((fail + f)) skip=$((skip + s))
  else
    echo "test: ctest printed no result line for $mbuild"; fail=$((fail + 1))
  fi
  [ "$mrc" -eq 0 ] || status=1
else
  echo "test: no MPI tests in $mbuild (make mpich builds them against MPICH)"; fail=$((fail + 1)); status=1
fi

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
  # The kernels' guests run side by side (two VM slots): a TCG guest mostly keeps one host CPU
  # busy (one test program at a time), so two of them fill this machine's two CPUs instead of
  # one; CKPT_VM_SERIAL=1 runs them one after the other. Each guest's output goes to its log,
  # printed whole when the guest ends (vm/run itself prints what is running on a terminal).
  # The other kernels' guests start first; the harness self-test and the power-cut test boot
  # the first kernel in the second slot meanwhile, and its guest starts after them. That
  # guest does not run vm-bench-smoke.sh (a smoke check of make bench's scripts, four
  # minutes; make bench itself runs every benchmark on each kernel): the other guest does.
  kernels=(${CKPT_TEST_KERNELS:-6.1 6.12})
  declare -A abis pids
  results=()
  start_guest() {  # start_guest KERNEL [PROGRAM...]: its guest, without those programs
    local k=$1 abi vmlog
    shift
    abi=$("$top/scripts/kernel-abi.sh" "$k") || { fail=$((fail + 1)); status=1; results+=("kernel $k: no ABI"); return; }
    abis[$k]=$abi
    vmlog=$top/build/vm-test-$k.log
    phase "VM tests on $k ($abi): scripts/vm/run --kernel $k -- tests/vm/run-all (log: $vmlog)${1:+; not here: $*}"
    # The modules CRIU needs (socket diagnostics, netfilter), so the bench smoke runs the CRIU
    # comparison too instead of skipping it (same list as scripts/bench.sh).
    "$top/scripts/vm/run" --kernel "$k" --timeout "${CKPT_VM_TIMEOUT:-3000}" \
      --modules "unix_diag inet_diag tcp_diag udp_diag netlink_diag nf_tables nft_ct tun veth nf_conntrack nft_compat nft_chain_nat" \
      --env "CKPT_VM_NOT_HERE=$*" -- "$top/tests/vm/run-all" > "$vmlog" 2>&1 &
    pids[$k]=$!
    if [ -n "${CKPT_VM_SERIAL:-}" ]; then wait "${pids[$k]}"; echo $? > "$vmlog.rc"; unset "pids[$k]"; fi
  }
  for k in "${kernels[@]:1}"; do start_guest "$k"; done

  phase "VM harness self-test"
  "$top/tests/harness/vm_selftest.sh" 2>&1 | tee "$top/build/harness.log"
  count_tap "$top/build/harness.log" "${PIPESTATUS[0]}"

  phase "VM power-cut test (QEMU killed while the example checkpoints to the NVDIMM)"
  "$top/tests/e2e/powercut.sh" 2 2>&1 | tee "$top/build/powercut.log"
  count_tap "$top/build/powercut.log" "${PIPESTATUS[0]}"

  if [ ${#kernels[@]} -gt 1 ]; then start_guest "${kernels[0]}" vm-bench-smoke.sh
  else start_guest "${kernels[0]}"; fi
  # Progress while they run: each guest's current program, once a minute.
  while [ ${#pids[@]} -gt 0 ]; do
    for k in "${!pids[@]}"; do
      if ! kill -0 "${pids[$k]}" 2>/dev/null; then
        wait "${pids[$k]}"; echo $? > "$top/build/vm-test-$k.log.rc"; unset "pids[$k]"
        echo "vm $k: done after $(((SECONDS - t0) / 60))m ($(grep -E '^vm: [0-9]+ passed' "$top/build/vm-test-$k.log" | tail -n1))"
      fi
    done
    [ ${#pids[@]} -gt 0 ] || break
    sleep 60
    for k in "${!pids[@]}"; do
      echo "vm $k: $(grep -E '^=== ' "$top/build/vm-test-$k.log" | tail -n1 | cut -c5-) ($(grep -cE '^--- .*: exit' "$top/build/vm-test-$k.log") programs done)"
    done
  done
  for k in "${kernels[@]}"; do
    [ -n "${abis[$k]:-}" ] || continue
    abi=${abis[$k]}
    vmlog=$top/build/vm-test-$k.log
    echo "=== VM tests on $k ($abi): output"
    cat "$vmlog"
    vrc=$(cat "$vmlog.rc")
    line=$(grep -E '^vm: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$vmlog" | tail -n1)
    p=0 f=0 s=0
    if [ -n "$line" ]; then
      read -r p f s < <(sed -E 's/^vm: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped.*/\1 \2 \3/' <<<"$line")
    fi
    if [ "$vrc" -ne 0 ]; then
      status=1
      # The harness failed the run itself (hang, kernel log problem, setup): count it.
      if [ -z "$line" ] || [ "$vrc" -ge 124 ]; then f=$((f + 1)); fi
    fi
    pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
    results+=("kernel $k ($abi): $p passed, $f failed, $s skipped$([ "$vrc" -eq 0 ] || echo " (vm/run exit $vrc)")")
  done
  printf '%s\n' "${results[@]}"
else
  echo "=== VM tests skipped (CKPT_SKIP_VM set)"
fi

echo "$pass passed, $fail failed, $skip skipped (tests took $(((SECONDS - t0) / 60))m$(((SECONDS - t0) % 60))s)"
[ "$fail" -eq 0 ] && [ "$status" -eq 0 ]
