#!/usr/bin/env bash
# Fetch the Debian linux-image package of a kernel and unpack it into the cache (never installed
# on the host). Prints the directory (with boot/vmlinuz-<abi> and a depmod'ed lib/modules/<abi>).
# Idempotent.
#   scripts/fetch-kernel.sh [KERNEL]    KERNEL: 6.1 (default, or $CKPT_KERNEL), 6.12 or an ABI
#                                       (scripts/kernel-abi.sh)
#   $CKPT_CACHE (default: <tree>/build/cache)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=$(realpath -m "${CKPT_CACHE:-$here/build/cache}")
# shellcheck source=kernel-deb.sh
. "$here/scripts/kernel-deb.sh"
abi=$("$here/scripts/kernel-abi.sh" "$@")
dir=$cache/kernel-$abi
if [ -f "$dir/.done" ]; then echo "$dir"; exit 0; fi
kernel_fetch_lock
if [ -f "$dir/.done" ]; then echo "$dir"; exit 0; fi
deb=$(kernel_deb "linux-image-$abi" "~70-100 MB")
rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
dpkg-deb -x "$deb" "$dir.tmp"
[ -f "$dir.tmp/boot/vmlinuz-$abi" ] || { echo "fetch-kernel: no vmlinuz in $deb" >&2; exit 1; }
depmod -b "$dir.tmp" "$abi"
touch "$dir.tmp/.done"
rm -rf "$dir"; mv "$dir.tmp" "$dir"
echo "$dir"
