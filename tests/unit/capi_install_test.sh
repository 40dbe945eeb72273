#!/bin/bash
# Install libckpt into a temporary prefix and build programs against the installed copy:
# `cc app.c $(pkg-config --cflags --libs ckpt)`, a C++ program, and a CMake project with
# find_package(ckpt); run them; check the exported symbols are only the versioned C API.
#   capi_install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Only libckpt's component: the test does not depend on the rest of the tree being built.
cmake --install "$build" --prefix "$tmp/prefix" --component libckpt >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name ckpt.pc | head -n1)")
export PKG_CONFIG_PATH=$pc
libdir=$(pkg-config --variable=libdir ckpt)
export LD_LIBRARY_PATH=$libdir

echo "# pkg-config: $(pkg-config --cflags --libs ckpt)"
cc -std=c11 -Wall -Werror -pedantic "$src/tests/unit/capi_c11_test.c" $(pkg-config --cflags --libs ckpt) -o "$tmp/app"
"$tmp/app"
# Static: the library alone, with its private dependencies.
cc -std=c11 "$src/tests/unit/capi_c11_test.c" $(pkg-config --cflags ckpt) "$libdir/libckpt.a" \
   $(pkg-config --static --libs-only-l ckpt | sed 's/-lckpt//') -o "$tmp/app-static"
"$tmp/app-static" >/dev/null
! ldd "$tmp/app-static" | grep -q libckpt

# C++: the wrapper header and the C header compile as C++.
cat > "$tmp/app.cpp" <<'CPP'
#include <ckpt/ckpt.hpp>
int main() { auto s = ckpt::Session::open(""); return s.err() == EINVAL ? 0 : 1; }
CPP
c++ -std=c++17 -Wall -Werror "$tmp/app.cpp" $(pkg-config --cflags --libs ckpt) -o "$tmp/appxx"
"$tmp/appxx"

# CMake package.
mkdir -p "$tmp/proj"
cat > "$tmp/proj/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(user C CXX)
find_package(ckpt 0.1 REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE ckpt::ckpt)
CM
cp "$src/tests/unit/capi_c11_test.c" "$tmp/proj/app.c"
cmake -S "$tmp/proj" -B "$tmp/proj/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/proj/b" >/dev/null
"$tmp/proj/b/app" >/dev/null

# Exported symbols: only ckpt_*, all at version CKPT_0.1.
syms=$(objdump -T "$libdir/libckpt.so" | awk '$2 == "g" && $4 == ".text" {print $6, $7}')
echo "$syms" | grep -q '^CKPT_0.1 ckpt_open$'
if echo "$syms" | grep -v '^CKPT_0.1 ckpt_'; then echo "unexpected exports" >&2; exit 1; fi
echo "install test: ok ($(echo "$syms" | wc -l) versioned symbols)"
