#!/usr/bin/env bash
# Extract kselftest_harness.h and kselftest.h (GPL-2.0, not committed here) from Debian's
# linux-source package into the cache. Prints the include directory. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${CKPT_CACHE:-$here/build/cache}
dir=$cache/kselftest
if [ -f "$dir/kselftest_harness.h" ] && [ -f "$dir/kselftest.h" ]; then echo "$dir"; exit 0; fi
ver=$(dpkg-query -W -f='${Version}' linux-headers-amd64 | cut -d. -f1,2)   # e.g. 6.1
pkg=linux-source-$ver
mkdir -p "$cache/debs"
if ! ls "$cache/debs/${pkg}_"*.deb >/dev/null 2>&1; then
  echo "fetch-kselftest: downloading $pkg (~140 MB) for the kselftest headers" >&2
  (cd "$cache/debs" && apt-get download -q "$pkg" >&2)
fi
rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
dpkg-deb --fsys-tarfile "$cache/debs/${pkg}_"*.deb |
  tar -xO --wildcards "./usr/src/linux-source-$ver.tar.xz" |
  tar -xJ -C "$dir.tmp" --wildcards --strip-components=4 \
    "linux-source-$ver/tools/testing/selftests/kselftest_harness.h" \
    "linux-source-$ver/tools/testing/selftests/kselftest.h"
[ -f "$dir.tmp/kselftest_harness.h" ] || { echo "fetch-kselftest: headers not found in $pkg" >&2; exit 1; }
rm -rf "$dir"; mv "$dir.tmp" "$dir"
echo "$dir"
