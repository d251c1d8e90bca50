#!/usr/bin/env bash
# The Windows cross-build check: builds the libraries and the vkinfer CLI for 64-bit Windows
# with Debian's mingw-w64 toolchain into build-win/ (build-win/vkinfer.exe). Idempotent: a second
# run rebuilds only what changed.
#
# What Debian does not ship for mingw is cross-compiled here as static libraries, from Debian's
# own source packages (apt-get source, via a deb-src entry for the mirror the system already
# uses), into build-win/deps/ (never into the repository):
#   PCRE2 (the tokenizer's regexes) and cJSON (the CLI's --json).
# The Vulkan headers (libvulkan-dev) and volk (libvulkan-volk-dev: volk.c loads vulkan-1.dll at
# run time) are platform-neutral and are staged from the host's /usr/include. Shaders are
# compiled by the host's glslangValidator and spirv-val, as in the Linux build.
#
# Usage: tools/build_windows.sh
#        VKI_WIN_JOBS=N tools/build_windows.sh   (parallel jobs; default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/build-win
deps=$out/deps
prefix=$deps/prefix
jobs=${VKI_WIN_JOBS:-$(nproc)}
triple=x86_64-w64-mingw32
say() { echo "build_windows: $*"; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# ---- The toolchain and host tools --------------------------------------------------------------
packages=(gcc-mingw-w64-x86-64 cmake pkg-config dpkg-dev glslang-tools spirv-tools
          libvulkan-dev libvulkan-volk-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ---- Sources of PCRE2 and cJSON, from Debian's source packages ---------------------------------
mkdir -p "$deps/src" "$prefix/include" "$prefix/lib"
src_dir() { find "$deps/src" -maxdepth 1 -type d -name "$1-*" | sort | tail -n 1; }
# apt-get source of the newest version the index lists, and when the mirror lacks its files (a
# security update's .dsc can be missing from a snapshot mirror) of each older one.
fetch_source() {
  [ -z "$(src_dir "$1")" ] || return 0
  local v
  for v in $(apt-cache showsrc "$1" | sed -n 's/^Version: //p' | sort -rVu); do
    say "fetching the Debian source of $1 $v into $deps/src"
    if (cd "$deps/src" && apt-get source -q "$1=$v" 2>&1 | grep -E '^(E|Err):' >&2;
        [ -n "$(find . -maxdepth 1 -type d -name "$1-*")" ])
    then return 0; fi
    say "apt-get source $1=$v failed; trying an older version"
  done
  say "error: no source of $1 could be fetched"
  return 1
}
if [ -z "$(src_dir pcre2)" ] || [ -z "$(src_dir cjson)" ]; then
  list=/etc/apt/sources.list.d/vkinfer-deb-src.sources
  if [ ! -e "$list" ] && ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list \
                                                                 /etc/apt/sources.list.d/; then
    # The same mirrors, suites and keys as the binary entries, for source packages.
    say "adding deb-src entries ($list) for the mirrors in /etc/apt/sources.list.d/debian.sources"
    sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | $sudo tee "$list" >/dev/null
    $sudo apt-get update -q
  fi
  fetch_source pcre2
  fetch_source cjson
fi
pcre2_src=$(src_dir pcre2)
cjson_src=$(src_dir cjson)

# ---- Cross-compile them as static libraries into $prefix ---------------------------------------
cross=(-DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake" -DVKI_WIN_PREFIX="$prefix"
       -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" -DBUILD_SHARED_LIBS=OFF)
if [ ! -e "$prefix/lib/libpcre2-8.a" ]; then
  say "cross-compiling PCRE2 ($(basename "$pcre2_src"))"
  cmake -S "$pcre2_src" -B "$deps/build-pcre2" "${cross[@]}" -DPCRE2_BUILD_PCRE2_8=ON \
    -DPCRE2_BUILD_PCRE2_16=OFF -DPCRE2_BUILD_PCRE2_32=OFF -DPCRE2_SUPPORT_JIT=OFF \
    -DPCRE2_BUILD_PCRE2GREP=OFF -DPCRE2_BUILD_TESTS=OFF -DPCRE2_SUPPORT_UNICODE=ON >/dev/null
  cmake --build "$deps/build-pcre2" -j"$jobs" >/dev/null
  cmake --install "$deps/build-pcre2" >/dev/null
fi
# A static PCRE2 wants PCRE2_STATIC defined by its users (no dllimport); its CMake build leaves
# that out of the pkg-config file.
pc=$prefix/lib/pkgconfig/libpcre2-8.pc
grep -q PCRE2_STATIC "$pc" || sed -i 's/^Cflags:.*/& -DPCRE2_STATIC/' "$pc"
if [ ! -e "$prefix/lib/libcjson.a" ]; then
  say "cross-compiling cJSON ($(basename "$cjson_src"))"
  cmake -S "$cjson_src" -B "$deps/build-cjson" "${cross[@]}" -DENABLE_CJSON_TEST=OFF \
    -DENABLE_CJSON_UTILS=OFF -DENABLE_CUSTOM_COMPILER_FLAGS=OFF -DCJSON_BUILD_SHARED_LIBS=OFF \
    -DENABLE_TARGET_EXPORT=OFF >/dev/null
  cmake --build "$deps/build-cjson" -j"$jobs" >/dev/null
  cmake --install "$deps/build-cjson" >/dev/null
fi

# ---- The platform-neutral headers: Vulkan and volk ---------------------------------------------
# Copied, not put on the include path: /usr/include also holds glibc's headers.
for d in vulkan vk_video stb; do
  [ -d "/usr/include/$d" ] && cp -ru "/usr/include/$d" "$prefix/include/"
done
cp -u /usr/include/volk.h /usr/include/volk.c "$prefix/include/"

# ---- vkinfer: the libraries and the CLI --------------------------------------------------------
say "configuring and building vkinfer for Windows in $out"
export PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig"   # the cross-built PCRE2, never the host's
export PKG_CONFIG_PATH=""
# FindVulkan insists on a loader library; nothing links it (volk loads vulkan-1.dll at run time).
cmake -S . -B "$out" "${cross[@]}" -DVKI_BUILD_TESTS=OFF \
  -DVulkan_INCLUDE_DIR="$prefix/include" -DVulkan_LIBRARY=vulkan-1 >/dev/null
cmake --build "$out" -j"$jobs" --target vkinfer
exe=$out/vkinfer.exe
[ -f "$exe" ] || { say "error: $exe was not produced"; exit 1; }

# The Windows platform layer end to end (file mapping, private folders, temporary file renamed
# over its target), run under Wine where it is installed (Debian: wine64); not needed otherwise.
smoke=$out/platform_win32_smoke.exe
$triple-gcc -std=c17 -D__USE_MINGW_ANSI_STDIO=1 -Wall -Wextra -Wno-unused-parameter -Werror \
  -Iruntime -I"$prefix/include" tests/runtime/platform_win32_smoke.c runtime/platform_win32.c \
  -static -o "$smoke"
wine=$(command -v wine64 || command -v wine || { [ -x /usr/lib/wine/wine64 ] && echo /usr/lib/wine/wine64; } || true)
if [ -n "$wine" ]; then
  say "running the platform layer's checks under Wine ($wine)"
  WINEDEBUG=-all WINEPREFIX="$out/wine" "$wine" "$smoke"
  WINEDEBUG=-all WINEPREFIX="$out/wine" "$wine" "$exe" --version
else
  say "Wine is not installed: $(basename "$smoke") built, not run"
fi
say "built $exe ($(stat -c %s "$exe") bytes; $(file -b "$exe" 2>/dev/null | cut -d, -f1-2))"
