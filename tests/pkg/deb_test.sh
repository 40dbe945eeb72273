#!/bin/bash
# The Debian packages (make deb), checked as a user gets them. TAP output.
#  - built by scripts/deb.sh (debhelper; the symbols file checked at level 4 by the build);
#  - lintian finds no error or warning;
#  - each package holds what it should (dpkg -c), no build path, no test program;
#  - dpkg -i into a scratch root (build/deb/root, its own dpkg database): libckpt0, libckpt-dev
#    and ckpt-tool installed, ckpt-dkms unpacked (its postinst runs dkms and addgroup on the
#    host: checked by reading it);
#  - a C program built with only `pkg-config --cflags --libs ckpt` against the scratch root
#    checkpoints in one process and restores in another (file store, userspace tracker), and the
#    installed ckpt-tool verifies the store; a CMake project finds the package;
#  - every function of include/ckpt/ckpt.h has a man page in libckpt-dev, every one of
#    ckpt_mpi.h in libckpt-mpi-dev (libckpt-mpi0/-dev: built against Open MPI), and they render;
#  - dkms builds the packaged module sources against each kernel's headers (6.1 and 6.12,
#    scripts/fetch-headers.sh). The modules stay in build/deb/dkms, where the VM test
#    tests/kselftest/dkms_module.sh loads the one for the kernel the guest boots.
#   tests/pkg/deb_test.sh [SOURCE_DIR]
set -uo pipefail
top=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
out=$top/build/deb
n=0 fail=0
ok() { n=$((n+1)); echo "ok $n $1"; }
nok() { n=$((n+1)); fail=$((fail+1)); echo "not ok $n $1"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else nok "$what"; fi; }
finish() {
  echo "1..$n"
  echo "# Totals: pass:$((n-fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
  [ $fail -eq 0 ]; exit
}
echo "TAP version 13"

ver=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
cmver=$(sed -nE 's/^project\(ckpt VERSION ([0-9.]+).*/\1/p' "$top/CMakeLists.txt")
check "debian/changelog's version ($ver) is the CMake project's ($cmver)" [ "$ver" = "$cmver" ]

t0=$(date +%s)
if ! "$top/scripts/deb.sh" > /dev/null; then nok "make deb builds the packages"; finish; fi
ok "make deb builds the packages ($(( $(date +%s) - t0 )) s)"
arch=$(dpkg --print-architecture)
deb() { echo "$out/${1}_${ver}_${2:-$arch}.deb"; }
for p in libckpt0 libckpt-dev libckpt-mpi0 libckpt-mpi-dev ckpt-tool; do [ -f "$(deb $p)" ] || nok "$(deb $p) exists"; done
[ -f "$(deb ckpt-dkms all)" ] || nok "$(deb ckpt-dkms all) exists"

# lintian: no error, no warning (overrides, each with its reason, in debian/*.lintian-overrides).
if lint=$(lintian --fail-on error,warning --suppress-tags-from-file /dev/null "$out"/*.changes 2>&1); then
  ok "lintian: no error or warning"
else
  nok "lintian: no error or warning"; printf '%s\n' "$lint" | sed 's/^/# /'
fi

# Contents.
contents() { dpkg-deb -c "$1" | awk '{ print $6 }' | sed 's|^\./|/|'; }
has() {  # has DEB PATTERN...: every grep -E pattern matches a path of DEB
  local d=$1 p c; shift; c=$(contents "$d")
  for p in "$@"; do grep -Eq "$p" <<<"$c" || { echo "# $(basename "$d"): nothing matches $p"; return 1; }; done
}
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
check "libckpt0: the shared library" has "$(deb libckpt0)" "^/usr/lib/$ma/libckpt\.so\.0$" "^/usr/lib/$ma/libckpt\.so\.0\.1\.0$"
check "libckpt-dev: headers, static library, .so link, ckpt.pc, CMake package, man pages" \
  has "$(deb libckpt-dev)" "^/usr/include/ckpt/ckpt\.h$" "^/usr/include/ckpt/ckpt\.hpp$" \
  "^/usr/include/linux/ckpt\.h$" "^/usr/lib/$ma/libckpt\.a$" "^/usr/lib/$ma/libckpt\.so$" \
  "^/usr/lib/$ma/pkgconfig/ckpt\.pc$" "^/usr/lib/$ma/cmake/ckpt/ckptConfig\.cmake$" \
  "^/usr/lib/$ma/cmake/ckpt/ckptTargets\.cmake$" "^/usr/share/man/man3/ckpt_open\.3\.gz$" \
  "^/usr/share/man/man3/libckpt\.3\.gz$"
check "libckpt-mpi0: the shared library" has "$(deb libckpt-mpi0)" "^/usr/lib/$ma/libckpt-mpi\.so\.0$" "^/usr/lib/$ma/libckpt-mpi\.so\.0\.1\.0$"
check "libckpt-mpi-dev: header, .so link, ckpt-mpi.pc, man pages" \
  has "$(deb libckpt-mpi-dev)" "^/usr/include/ckpt/ckpt_mpi\.h$" "^/usr/lib/$ma/libckpt-mpi\.so$" \
  "^/usr/lib/$ma/pkgconfig/ckpt-mpi\.pc$" "^/usr/share/man/man3/libckpt-mpi\.3\.gz$" \
  "^/usr/share/man/man3/ckpt_mpi_open\.3\.gz$"
check "libckpt-dev holds none of libckpt-mpi-dev's files" \
  sh -c "! dpkg-deb -c '$(deb libckpt-dev)' | grep -Eq 'ckpt_mpi|libckpt-mpi'"
check "ckpt-tool: the tool and its man page" has "$(deb ckpt-tool)" "^/usr/bin/ckpt-tool$" "^/usr/share/man/man1/ckpt-tool\.1\.gz$"
src=/usr/src/ckpt-$ver
check "ckpt-dkms: module sources, dkms.conf, UAPI header, udev rule, modules-load.d file" \
  has "$(deb ckpt-dkms all)" "^$src/dkms\.conf$" "^$src/kmod/Kbuild$" "^$src/kmod/main\.c$" \
  "^$src/kmod/ckpt\.h$" "^$src/include/uapi/linux/ckpt\.h$" "^/(usr/)?lib/udev/rules\.d/[0-9]+-ckpt.*\.rules$" \
  "^/etc/modules-load\.d/ckpt\.conf$"
bad=$(for d in "$out"/*.deb; do contents "$d" | sed "s|^|$(basename "$d"): |"; done |
      grep -E '(_test|test_|/heat|/kvindex|/bench|gtest|/tests?/|\.o$|\.ko$|\.cmd$|\.mod\.c$|/obj-)' )
if [ -z "$bad" ]; then ok "no test program, bench, example or build product in any package"
else nok "no test program, bench, example or build product in any package"; printf '# %s\n' $bad; fi

# No build path inside the packaged files (the staged tree, this tree).
rm -rf "$out/x" && mkdir -p "$out/x"
for d in "$out"/*.deb; do case $d in *-dbgsym_*) continue ;; esac; dpkg-deb -x "$d" "$out/x"; done
leak=$(grep -rlaF -e "$out" -e "$top/" "$out/x" 2>/dev/null)
if [ -z "$leak" ]; then ok "no build path in the packaged files"; else nok "no build path in the packaged files"; echo "# $leak"; fi
rm -rf "$out/x"

# The symbols file shipped is the library's ABI: the versioned C API, nothing else.
ctl=$(mktemp -d); trap 'rm -rf "$ctl"' EXIT
dpkg-deb -e "$(deb libckpt0)" "$ctl/libckpt0"
dpkg-deb -e "$(deb ckpt-dkms all)" "$ctl/dkms"
hdr=$(grep -oE '\bckpt_[a-z_]+\(' "$top/include/ckpt/ckpt.h" | tr -d '(' | grep -vx 'ckpt_restore_fn' | sort -u)
shipped=$(sed -nE 's/^ (ckpt_[a-z_]+)@CKPT_0\.1 .*/\1/p' "$ctl/libckpt0/symbols" | sort -u)
check "DEBIAN/symbols lists exactly the functions of ckpt.h, at CKPT_0.1" [ -n "$hdr" -a "$hdr" = "$shipped" ]
dpkg-deb -e "$(deb libckpt-mpi0)" "$ctl/libckpt-mpi0"
mhdr=$(grep -oE '\bckpt_mpi_[a-z_]+\(' "$top/include/ckpt/ckpt_mpi.h" | tr -d '(' | sort -u)
mshipped=$(sed -nE 's/^ (ckpt_mpi_[a-z_]+)@CKPT_MPI_0\.1 .*/\1/p' "$ctl/libckpt-mpi0/symbols" | sort -u)
check "libckpt-mpi0's DEBIAN/symbols lists exactly the functions of ckpt_mpi.h, at CKPT_MPI_0.1" \
  [ -n "$mhdr" -a "$mhdr" = "$mshipped" ]

# The postinst: the ckpt group, then DKMS's own.
check "ckpt-dkms postinst adds the system group ckpt and builds the module with dkms" \
  grep -q 'addgroup --system --quiet ckpt' "$ctl/dkms/postinst"
grep -q '/usr/lib/dkms/common.postinst' "$ctl/dkms/postinst" || nok "ckpt-dkms postinst runs dkms"
check "ckpt-dkms postinst parses (sh -n)" sh -n "$ctl/dkms/postinst"

# dpkg -i into a scratch root.
root=$out/root
rm -rf "$root" && mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
: > "$root/var/lib/dpkg/status"; : > "$root/var/lib/dpkg/available"
dpk() { dpkg --root="$root" --force-depends --no-triggers "$@"; }
if log=$(dpk -i "$(deb libckpt0)" "$(deb libckpt-dev)" "$(deb libckpt-mpi0)" "$(deb libckpt-mpi-dev)" "$(deb ckpt-tool)" 2>&1) &&
   log2=$(dpk --unpack "$(deb ckpt-dkms all)" 2>&1); then
  ok "dpkg -i into a scratch root"
else
  nok "dpkg -i into a scratch root"; printf '%s\n%s\n' "$log" "${log2:-}" | sed 's/^/# /' | tail -n 20
fi
state=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Package}=${Status}\n' 2>/dev/null | sort | tr '\n' ' ')
want=$(printf '%s\n' "ckpt-dkms=install ok unpacked" "ckpt-tool=install ok installed" "libckpt-dev=install ok installed" \
  "libckpt-mpi-dev=install ok installed" "libckpt-mpi0=install ok installed" "libckpt0=install ok installed" | sort | tr '\n' ' ')
check "dpkg's database in the root: five installed, ckpt-dkms unpacked ($state)" [ "$state" = "$want" ]

# A program built with only pkg-config, from the scratch root's -dev package.
export PKG_CONFIG_LIBDIR=$root/usr/lib/$ma/pkgconfig PKG_CONFIG_PATH=
flags=$(pkg-config --cflags --libs ckpt)
echo "# pkg-config --cflags --libs ckpt: $flags"
inc=$(realpath -m "$(pkg-config --variable=includedir ckpt)")
check "pkg-config's includedir is the scratch root's ($inc)" [ "$inc" = "$root/usr/include" ]
w=$(mktemp -d); trap 'rm -rf "$ctl" "$w"' EXIT
if cc -std=c11 -Wall -Werror "$top/tests/pkg/app.c" $flags -o "$w/app" 2>&1 | sed 's/^/# /'; [ -x "$w/app" ]; then
  ok "a C program builds with only pkg-config --cflags --libs ckpt"
  lib=$(LD_LIBRARY_PATH=$root/usr/lib/$ma ldd "$w/app" | awk '/libckpt/ { print $3 }')
  check "it runs against the packaged libckpt.so.0 ($lib)" [ "$lib" = "$root/usr/lib/$ma/libckpt.so.0" ]
  unset CKPT_TRACKER
  s=$(LD_LIBRARY_PATH=$root/usr/lib/$ma "$w/app" "$w/app.store" save 2>&1); rc1=$?; echo "# $s"
  r=$(LD_LIBRARY_PATH=$root/usr/lib/$ma "$w/app" "$w/app.store" load 2>&1); rc2=$?; echo "# $r"
  check "it checkpoints in one process and restores in another (file store, userspace tracker)" \
    [ $rc1 -eq 0 -a $rc2 -eq 0 ] && grep -Eq 'tracker (uffd-async|uffd|mprotect),' <<<"$s" && grep -q 'every byte as saved' <<<"$r"
  check "the packaged ckpt-tool verifies that store" "$root/usr/bin/ckpt-tool" verify -q "$w/app.store"
else
  nok "a C program builds with only pkg-config --cflags --libs ckpt"
fi
mkdir -p "$w/proj"
printf 'cmake_minimum_required(VERSION 3.16)\nproject(user C CXX)\nfind_package(ckpt 0.1 REQUIRED)\nadd_executable(app app.c)\ntarget_link_libraries(app PRIVATE ckpt::ckpt)\n' > "$w/proj/CMakeLists.txt"
cp "$top/tests/pkg/app.c" "$w/proj/"
check "a CMake project finds the packaged ckpt (find_package) and builds" \
  sh -c "cmake -S '$w/proj' -B '$w/proj/b' -DCMAKE_PREFIX_PATH='$root/usr' >/dev/null && cmake --build '$w/proj/b' >/dev/null"

# Man pages: one (page or link) per function of the C API, each renders without warnings.
missing=
for f in $hdr ckpt_config; do [ -f "$root/usr/share/man/man3/$f.3.gz" ] || missing="$missing $f"; done
check "a man page for every function of ckpt.h${missing:+ (missing:$missing)}" [ -z "$missing" ]
missing=
for f in $mhdr libckpt-mpi; do [ -f "$root/usr/share/man/man3/$f.3.gz" ] || missing="$missing $f"; done
check "a man page for every function of ckpt_mpi.h${missing:+ (missing:$missing)}" [ -z "$missing" ]
warn=$(for f in "$root"/usr/share/man/man3/*.3.gz; do
         zcat "$f" | grep -q '^\.so ' && continue
         LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null | sed "s|^|$(basename "$f"): |"
       done)
check "the man pages render without warnings" [ -z "$warn" ]
[ -z "$warn" ] || printf '# %s\n' "$warn"

# DKMS: the packaged sources build against each kernel's headers.
dkms_tree=$out/dkms
rm -rf "$dkms_tree" && mkdir -p "$dkms_tree"
# The kernels: Debian 12's 6.1 and 6.12 (bookworm-backports) through scripts/fetch-headers.sh
# (installed headers as they are, others fetched and unpacked under build/cache); before that
# script, the installed headers of scripts/kernel-abi.sh.
# 6.12 once the module builds there: the port (issue 16) brings kmod/compat.h. CKPT_DKMS_KERNELS
# names others.
kvs="6.1"; [ ! -f "$top/kmod/compat.h" ] || kvs="6.1 6.12"
kernels=()
if [ -x "$top/scripts/fetch-headers.sh" ]; then
  for kv in ${CKPT_DKMS_KERNELS:-$kvs}; do
    if abi=$("$top/scripts/kernel-abi.sh" $kv) && kd=$("$top/scripts/fetch-headers.sh" $kv) && [ -f "$kd/Makefile" ]; then
      kernels+=("$abi=$kd")
    else nok "headers of the $kv kernel (scripts/fetch-headers.sh $kv)"; fi
  done
else
  abi=$("$top/scripts/kernel-abi.sh")
  kernels=("$abi=/usr/src/linux-headers-$abi")
fi
d=(--sourcetree "$root/usr/src" --dkmstree "$dkms_tree")
if dkms add -m ckpt -v "$ver" "${d[@]}" >/dev/null 2>&1; then ok "dkms add"; else nok "dkms add"; fi
for kh in "${kernels[@]}"; do
  k=${kh%%=*} hd=${kh#*=}
  t0=$(date +%s)
  # sign_file: not found, so dkms leaves the module unsigned (as kmod/ builds it) instead of
  # making a MOK key pair in /var/lib/dkms on this host.
  if blog=$(sign_file=/nonexistent dkms build -m ckpt -v "$ver" -k "$k" --kernelsourcedir "$hd" "${d[@]}" 2>&1); then
    ko=$(find "$dkms_tree/ckpt/$ver/$k" -name 'ckpt.ko*' | head -n1)
    vm=$(modinfo -F vermagic "$ko" 2>/dev/null)
    check "dkms build against $k ($(( $(date +%s) - t0 )) s): ckpt.ko's vermagic is $k" grep -q "^$k " <<<"$vm"
  else
    nok "dkms build against $k"; printf '%s\n' "$blog" | tail -n 20 | sed 's/^/# /'
    find "$dkms_tree" -name make.log -exec tail -n 20 {} \; | sed 's/^/# /'
  fi
done
finish
