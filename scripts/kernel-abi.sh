#!/usr/bin/env bash
# Print the kernel ABI (e.g. 6.1.0-56-amd64) that the installed linux-headers-amd64 meta package
# points at. The module is built against it and the VM boots the matching Debian linux-image.
set -euo pipefail
if [ -n "${CKPT_KERNEL_ABI:-}" ]; then echo "$CKPT_KERNEL_ABI"; exit 0; fi
dep=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 2>/dev/null) || {
  echo "kernel-abi: linux-headers-amd64 is not installed (run scripts/deps.sh)" >&2; exit 1; }
abi=$(printf '%s\n' "$dep" | tr ',' '\n' | sed -n 's/^ *linux-headers-\([0-9][^ ]*-amd64\).*/\1/p' | head -n1)
[ -n "$abi" ] || { echo "kernel-abi: cannot parse '$dep'" >&2; exit 1; }
echo "$abi"
