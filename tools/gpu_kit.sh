#!/usr/bin/env bash
# Prepares the GPU-session kit here (a machine with network), for tools/device_check.sh to run
# on a lent GPU machine that has a driver but no Vulkan loader and no network.
#
# Usage: tools/gpu_kit.sh A|B [BUILD_DIR]   (BUILD_DIR: default build-kit)
#   A: devices, the cooperative-matrix checks (KHR and NV), vkinfer beside llama-bench, the
#      graph and runtime tests in shards: vkinfer + tests, llama.cpp's Vulkan llama-bench, the
#      loader and the validation layer.
#   B: Stable Diffusion beside stable-diffusion.cpp's Vulkan backend: vkinfer + sd-cli.
# Two kits because the carry limit is 64 MiB for the whole tree and the tracked tree is already
# ~56 MB (tests/data is 50 MB and travels anyway): A is ~9 MB, B ~11 MB; both at once are over.
# The binaries travel stripped and xz-compressed (about 5x smaller); device_check.sh unpacks them.
# Writes .gl/ (the .debs) and .gpu/ (the tarballs, kit.env, run.sh), both ignored by .gitignore.
# Then, with the device tool: run(command="bash .gpu/run.sh", carry=[".gl", ".gpu"],
# timeout_s=560). BUILD_DIR must hold the KHR cooperative-matrix kernels: configure it with
# .venv-shaders present (tools/setup.sh); this script refuses a build without them.
# Sources: BUILD_DIR/vkinfer and tests/vki_{graph,runtime}_tests; llama.cpp's Vulkan build in
# $VKI_LLAMACPP_BIN (default /tmp/vkinfer-llamacpp/build/bin, tools/bench_llamacpp.sh); sd.cpp's
# Vulkan sd-cli in $VKI_SDCPP_DIR/build-vulkan/bin (tools/bench_sdcpp.sh --vulkan --build-only).
# sd-cli is built with GGML_NATIVE=ON for this machine's CPU (Intel Xeon with AVX-512): a device
# host without AVX-512 would stop it with an illegal instruction (its log says so).
set -euo pipefail
cd "$(dirname "$0")/.."
kit="${1:-}"
build="${2:-build-kit}"
case "$kit" in A|B) ;; *) sed -n '5,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;; esac
[ -x "$build/vkinfer" ] || { echo "gpu_kit: no $build/vkinfer" >&2; exit 1; }
# The KHR variants are compiled in only with .venv-shaders' glslang (Debian's is too old).
grep -q matmul_f16_cmk "$build/vkinfer" \
  || { echo "gpu_kit: $build/vkinfer has no KHR cooperative-matrix kernels (configure with .venv-shaders)" >&2; exit 1; }
llamacpp="${VKI_LLAMACPP_BIN:-/tmp/vkinfer-llamacpp/build/bin}"
sdcpp="${VKI_SDCPP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/peers/sdcpp-0.4.7}/build-vulkan/bin/sd-cli"

rm -rf .gl .gpu
mkdir -p .gl .gpu
# Compute needs only the loader (and sd-cli libgomp); kit A has room for the device README's GL
# set too, and for the validation layer (4.5 MB) the tests run with (libcjson1: its dependency).
debs=(libvulkan1 libgomp1)
[ "$kit" = B ] || debs+=(libglvnd0 libegl1 libopengl0 libgl1 libglx0 libgles2 vulkan-validationlayers libcjson1)
lists=/tmp/vkinfer-amd64-lists
mkdir -p "$lists/partial"
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
[ -n "$(ls "$lists" 2>/dev/null | grep -v partial)" ] || apt-get "${o[@]}" update -q >/dev/null
(cd .gl && apt-get "${o[@]}" download "${debs[@]}" >/dev/null 2>&1) \
  || { echo "gpu_kit: apt-get download of ${debs[*]} failed" >&2; exit 1; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pack() { # NAME FILE...: stripped copies of the files in .gpu/NAME.tar.xz
  mkdir -p "$stage/$1"
  cp "${@:2}" "$stage/$1/"
  strip "$stage/$1"/* 2>/dev/null || true
  tar -C "$stage" -cf - "$1" | xz -T2 -9 > ".gpu/$1.tar.xz"
}
bins=("$build/vkinfer")
if [ "$kit" = A ]; then
  for t in vki_graph_tests vki_runtime_tests vki_app_tests vki_model_tests; do
    [ ! -x "$build/tests/$t" ] || bins+=("$build/tests/$t")
  done
fi
pack bin "${bins[@]}"
if [ "$kit" = A ]; then
  [ -x "$llamacpp/llama-bench" ] || { echo "gpu_kit: no $llamacpp/llama-bench" >&2; exit 1; }
  pack llamacpp "$llamacpp/llama-bench" "$llamacpp"/libggml*.so "$llamacpp/libllama.so"
else
  [ -x "$sdcpp" ] || { echo "gpu_kit: no $sdcpp (tools/bench_sdcpp.sh --vulkan --build-only)" >&2; exit 1; }
  pack sdcpp "$sdcpp"
  # bench sd reads CLIP's merges from the cache (no network there): the 48894 CLIP uses, plus
  # the version header (180 KB compressed instead of 1.1 MB for the whole file).
  vocab="${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/models/clip/bpe_simple_vocab_16e6.txt"
  [ -f "$vocab" ] || { echo "gpu_kit: no $vocab (run vkinfer bench sd once here)" >&2; exit 1; }
  head -n $((1 + 49152 - 256 - 2)) "$vocab" | xz -9 > .gpu/clip_vocab.txt.xz
fi
# The test binaries hold this checkout's absolute paths (tests/data, the CLI in the build dir):
# the run script recreates them there.
printf 'KIT=%s\nBUILD=%s\nROOT=%s\n' "$kit" "$(basename "$build")" "$PWD" > .gpu/kit.env
cp tools/device_check.sh .gpu/run.sh

# What travels: tracked and untracked-not-ignored files, and the carried .gl and .gpu.
tree=$(git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
kitb=$(du -cb .gl .gpu | tail -n 1 | cut -f1)
limit=$((64 * 1024 * 1024))
total=$((tree + kitb))
printf 'gpu_kit %s: tree %.1f MiB + .gl/.gpu %.1f MiB = %.1f MiB of 64 MiB\n' "$kit" \
  "$(echo "$tree / 1048576" | bc -l)" "$(echo "$kitb / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)"
ls -l .gl .gpu | grep -v '^total'
[ "$total" -le "$limit" ] || { echo "gpu_kit: over the 64 MiB carry limit" >&2; exit 1; }
echo 'gpu_kit: run(command="bash .gpu/run.sh", carry=[".gl", ".gpu"], timeout_s=560)'
