#!/usr/bin/env bash
# make deb: the Debian packages (debian/) built with debhelper into build/deb:
#   libckpt0, libckpt-dev, libckpt-mpi0, libckpt-mpi-dev, ckpt-tool (amd64) and ckpt-dkms (all).
#   DEB_CKPT_MPI=openmpi (default) or mpich: the MPI libckpt-mpi is built against.
# dpkg-buildpackage writes its output beside the source tree, so the tree is staged in
# build/deb/ckpt-VERSION (the files git knows, tracked or not ignored; never build/) and built
# there, unsigned and binary only. The staged build directory is kept: a second run rebuilds
# only what changed.    Prints the .deb paths.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/build/deb
ver=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
stage=$out/ckpt-$ver
mkdir -p "$stage"
# The staged tree is replaced whole but for the CMake tree (obj-*); tar keeps the files' mtimes,
# so that tree rebuilds only what changed since the last run.
find "$stage" -mindepth 1 -maxdepth 1 ! -name 'obj-*' -exec rm -rf {} +
(cd "$top" && git ls-files -co --exclude-standard -z | grep -zv '^build/' |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -C "$stage" -xpf -
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
# -nc: no clean first, which would remove the CMake tree.
(cd "$stage" && DEB_BUILD_OPTIONS="parallel=${JOBS:-2} ${DEB_BUILD_OPTIONS:-}" \
   dpkg-buildpackage -us -uc -b -nc > "$out/build.log" 2>&1) ||
  { tail -n 40 "$out/build.log" >&2; echo "deb: dpkg-buildpackage failed (log: $out/build.log)" >&2; exit 1; }
ls "$out"/*.deb
