# Sourced by scripts/fetch-kernel.sh and scripts/fetch-headers.sh: fetch a Debian package into
# $cache/debs. The host's apt is asked first (Debian 12's own 6.1 packages), then the harness's
# own apt (scripts/kernel-apt.sh: bookworm-backports' 6.12), with its lists refreshed once if
# the package has left the archive meanwhile. Callers hold the fetch lock (kernel_fetch_lock).
# shellcheck shell=bash

kernel_fetch_lock() {  # one fetch at a time across the worktrees sharing the cache
  mkdir -p "$cache/debs"
  exec 8>"$cache/.fetch.lock"
  flock 8
}

kernel_deb() {  # PKG [SIZE-HINT]: print the path of PKG's .deb in the cache, downloading it
  local pkg=$1 hint=${2:-} f
  f=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | head -n1) || true
  if [ -z "$f" ]; then
    echo "fetch: downloading $pkg${hint:+ ($hint)}" >&2
    (cd "$cache/debs" && { apt-get download -q "$pkg" >/dev/null 2>&1 ||
      "$here/scripts/kernel-apt.sh" download "$pkg" >&2 ||
      { "$here/scripts/kernel-apt.sh" update && "$here/scripts/kernel-apt.sh" download "$pkg" >&2; }; }) || {
      echo "fetch: cannot download $pkg (host apt, then bookworm-backports)" >&2; return 1; }
    f=$(ls "$cache/debs/${pkg}_"*.deb | head -n1)
  fi
  echo "$f"
}
