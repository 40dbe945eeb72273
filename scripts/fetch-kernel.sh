#!/usr/bin/env bash
# Fetch the Debian linux-image package matching the installed headers' ABI and unpack it into
# the cache (never installed on the host). Prints the directory. Idempotent.
#   $CKPT_CACHE (default: <tree>/build/cache)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${CKPT_CACHE:-$here/build/cache}
abi=$("$here/scripts/kernel-abi.sh")
dir=$cache/kernel-$abi
if [ -f "$dir/.done" ]; then echo "$dir"; exit 0; fi
mkdir -p "$cache/debs"
pkg=linux-image-$abi
if ! ls "$cache/debs/${pkg}_"*.deb >/dev/null 2>&1; then
  echo "fetch-kernel: downloading $pkg (~70 MB)" >&2
  (cd "$cache/debs" && apt-get download -q "$pkg" >&2) || {
    echo "fetch-kernel: apt-get download $pkg failed; try 'apt-get update'" >&2; exit 1; }
fi
rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
dpkg-deb -x "$cache/debs/${pkg}_"*.deb "$dir.tmp"
[ -f "$dir.tmp/boot/vmlinuz-$abi" ] || { echo "fetch-kernel: no vmlinuz in $pkg" >&2; exit 1; }
depmod -b "$dir.tmp" "$abi"
touch "$dir.tmp/.done"
rm -rf "$dir"; mv "$dir.tmp" "$dir"
echo "$dir"
