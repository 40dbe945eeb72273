#!/usr/bin/env bash
# Print the Debian kernel ABI (e.g. 6.1.0-57-amd64, 6.12.95+deb12-amd64) of the kernel to build
# against and boot:
#   scripts/kernel-abi.sh [KERNEL]      KERNEL defaults to $CKPT_KERNEL, then 6.1
#   6.1    the ABI the host's installed linux-headers-amd64 meta package depends on (Debian 12)
#   6.12   the ABI bookworm-backports' linux-headers-amd64 depends on (scripts/kernel-apt.sh;
#          built with bookworm's gcc 12)
#   an ABI string (6.1.0-56-amd64, 6.12.95+deb12-amd64) is printed as it is.
# $CKPT_KERNEL_ABI, if set, overrides everything (kept for older callers).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${CKPT_KERNEL_ABI:-}" ]; then echo "$CKPT_KERNEL_ABI"; exit 0; fi
kernel=${1:-${CKPT_KERNEL:-6.1}}
meta_abi() {  # the ABI named in a linux-headers-amd64 Depends line on stdin
  tr ',' '\n' | sed -n 's/^ *linux-headers-\([0-9][^ ]*-amd64\).*/\1/p' | head -n1
}
case $kernel in
  6.1)
    dep=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 2>/dev/null) || {
      echo "kernel-abi: linux-headers-amd64 is not installed (run scripts/deps.sh)" >&2; exit 1; }
    abi=$(meta_abi <<<"$dep")
    case $abi in 6.1.*) ;; *) echo "kernel-abi: the installed linux-headers-amd64 names '$abi', not a 6.1 kernel" >&2; exit 1 ;; esac ;;
  6.12)
    abi=$("$here/scripts/kernel-apt.sh" cache show linux-headers-amd64 2>/dev/null |
      sed -n 's/^Depends: //p' | meta_abi | grep '^6\.12\.' | sort -V | tail -n1) || true ;;
  [0-9]*-amd64) abi=$kernel ;;
  *) echo "kernel-abi: unknown kernel '$kernel' (6.1, 6.12 or an ABI such as 6.1.0-57-amd64)" >&2; exit 2 ;;
esac
[ -n "$abi" ] || { echo "kernel-abi: no ABI found for kernel '$kernel'" >&2; exit 1; }
echo "$abi"
