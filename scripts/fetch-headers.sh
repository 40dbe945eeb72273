#!/usr/bin/env bash
# Print a kernel build directory (KDIR for `make -C KDIR M=...`) for a Debian kernel:
#   scripts/fetch-headers.sh [KERNEL]   KERNEL: 6.1 (default, or $CKPT_KERNEL), 6.12 or an ABI
#                                       (scripts/kernel-abi.sh)
# Installed headers (/usr/src/linux-headers-<abi>, e.g. Debian 12's 6.1 from scripts/deps.sh)
# are used as they are. Otherwise linux-headers-<abi> and the packages it builds with
# (linux-headers-<version>-common, linux-kbuild-<version>) are downloaded and unpacked together
# with dpkg-deb -x under <cache>/headers-<abi> — nothing is installed on the host — and the
# headers' Makefile, which includes the -common tree by its absolute /usr/src path, is pointed at
# the unpacked one. The kbuild programs in linux-kbuild are built for Debian 12 (bookworm), as is
# bookworm-backports' 6.12; they run here as they are. Idempotent; $CKPT_CACHE as fetch-kernel.sh.
#   CKPT_HEADERS_UNPACKED=1 unpacks even when the headers are installed (to test this path).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=$(realpath -m "${CKPT_CACHE:-$here/build/cache}")
# shellcheck source=kernel-deb.sh
. "$here/scripts/kernel-deb.sh"
abi=$("$here/scripts/kernel-abi.sh" "$@")
if [ -z "${CKPT_HEADERS_UNPACKED:-}" ] && [ -f "/usr/src/linux-headers-$abi/Makefile" ]; then
  echo "/usr/src/linux-headers-$abi"; exit 0
fi
dir=$cache/headers-$abi
kdir=$dir/usr/src/linux-headers-$abi
if [ -f "$dir/.done" ]; then echo "$kdir"; exit 0; fi
kernel_fetch_lock
if [ -f "$dir/.done" ]; then echo "$kdir"; exit 0; fi
deb=$(kernel_deb "linux-headers-$abi")
# The headers' own build dependencies: linux-headers-*-common and linux-kbuild-*.
debs=("$deb")
for p in $(dpkg-deb -f "$deb" Depends | tr ',|' '\n\n' | sed -n 's/^ *\(linux-\(headers\|kbuild\)-[^ ]*\).*/\1/p'); do
  debs+=("$(kernel_deb "$p")")
done
rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
for d in "${debs[@]}"; do dpkg-deb -x "$d" "$dir.tmp"; done
mk=$dir.tmp/usr/src/linux-headers-$abi/Makefile
[ -f "$mk" ] || { echo "fetch-headers: no Makefile in linux-headers-$abi" >&2; exit 1; }
# "include /usr/src/linux-headers-X-common/Makefile" -> the unpacked tree.
sed -i "s|^include /usr/src/|include $dir/usr/src/|" "$mk"
# Absolute symlinks would point into the host's /usr: make them point into the unpacked tree.
find "$dir.tmp" -type l -lname '/*' | while read -r l; do
  t=$(readlink "$l"); ln -sfn "$dir$t" "$l"
done
# Relative ones (scripts -> ../../lib/linux-kbuild-V/scripts) resolve inside the tree.
[ -x "$dir.tmp/usr/src/linux-headers-$abi/scripts/basic/fixdep" ] ||
  { echo "fetch-headers: kbuild's scripts/basic/fixdep missing (linux-kbuild not unpacked?)" >&2; exit 1; }
cc=$(sed -n 's/^CC = .*\(gcc-[0-9]*\)$/\1/p' "$dir.tmp/usr/src/linux-headers-$abi/.kernelvariables" 2>/dev/null || true)
[ -z "$cc" ] || command -v "$cc" >/dev/null ||
  echo "fetch-headers: warning: linux-headers-$abi builds with $cc, which is not installed" >&2
touch "$dir.tmp/.done"
rm -rf "$dir"; mv "$dir.tmp" "$dir"
echo "$kdir"
