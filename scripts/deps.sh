#!/usr/bin/env bash
# Install (idempotently) everything the build, the tests and the VM need, from Debian's packages.
# Usage: scripts/deps.sh [--check]    --check: exit 1 if something is missing, install nothing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  linux-headers-amd64 kmod cpio gzip xz-utils dwarves
  qemu-system-x86 busybox-static ndctl e2fsprogs fdisk dmsetup libsodium23
  liburing-dev libnl-genl-3-dev libnl-3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libxxhash-dev nlohmann-json3-dev libfmt-dev libpmem2-dev libblkid-dev
  python3 clang-14 libclang-rt-14-dev
  python3-matplotlib criu
  debhelper dh-dkms dkms lintian
  libopenmpi-dev openmpi-bin libmpich-dev mpich
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "missing packages: ${missing[*]}" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >&2
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
