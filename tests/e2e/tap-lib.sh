# shellcheck shell=bash
# The prologue the end-to-end shell tests share (sourced, not run: tests/vm/run-all runs only
# vm-*.sh). After `. tap-lib.sh PREFIX`:
#   top, build    the source tree and the build to test (CKPT_BUILD, default build/cmake)
#   tap STATUS DESCRIPTION [REASON]   one TAP line (STATUS 0 pass, 4 skip, else fail), counted
#   d             a fresh directory /tmp/PREFIX.XXXXXX, removed on exit with the script's jobs
#   totals        kselftest's "# Totals:" line; its status is 0 when nothing failed
set -u
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034  # for the sourcing script
build=${CKPT_BUILD:-$top/build/cmake}
n=0 pass=0 fail=0 skip=0

tap() {  # tap STATUS DESCRIPTION [REASON]  (STATUS: 0 pass, 4 skip, else fail)
  n=$((n + 1))
  if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
  elif [ "$1" = 4 ]; then skip=$((skip + 1)); echo "ok $n - $2 # SKIP ${3:-}"
  else fail=$((fail + 1)); echo "not ok $n - $2${3:+ # $3}"; fi
}

totals() {
  echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
  [ "$fail" = 0 ]
}

d=$(mktemp -d "/tmp/${1:?tap-lib.sh: a prefix for the temporary directory}.XXXXXX")
# shellcheck disable=SC2046  # one pid a word
cleanup() { kill -9 $(jobs -p) 2>/dev/null; rm -rf "$d"; }
trap cleanup EXIT
