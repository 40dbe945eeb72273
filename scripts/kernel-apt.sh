#!/usr/bin/env bash
# apt for kernels the host's apt setup does not offer (Debian's 6.12 from bookworm-backports),
# with sources, lists, caches and dpkg status of the harness's own under the cache: the host's
# apt configuration and installed packages are neither read nor changed.
#   scripts/kernel-apt.sh update            fetch the suites' package lists (≈1 s)
#   scripts/kernel-apt.sh cache ARGS...     apt-cache ARGS (updates the lists first if missing)
#   scripts/kernel-apt.sh download PKG...   apt-get download into the current directory
# $CKPT_CACHE (default <tree>/build/cache); $CKPT_DEBIAN_MIRROR (default http://deb.debian.org/debian);
# $CKPT_APT_SUITES (default bookworm-backports).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=$(realpath -m "${CKPT_CACHE:-$here/build/cache}")
dir=$cache/apt
mirror=${CKPT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
: >> "$dir/status"
want=
for s in ${CKPT_APT_SUITES:-bookworm-backports}; do
  want+="deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $s main"$'\n'
done
[ "$(cat "$dir/sources.list" 2>/dev/null)"$'\n' = "$want" ] || printf '%s' "$want" > "$dir/sources.list"
opts=(-q -o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$dir/lists" -o "Dir::State::status=$dir/status"
  -o "Dir::Cache=$dir/cache")
update() {
  # One update at a time across the worktrees that share this cache.
  exec 7>"$dir/.update.lock"; flock 7
  apt-get "${opts[@]}" update >&2
  exec 7>&-
}
cmd=${1:-}; shift || true
case $cmd in
  update) update ;;
  cache)
    ls "$dir/lists/"*_Packages* >/dev/null 2>&1 || update
    apt-cache "${opts[@]}" "$@" ;;
  download)
    ls "$dir/lists/"*_Packages* >/dev/null 2>&1 || update
    apt-get "${opts[@]}" download "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
