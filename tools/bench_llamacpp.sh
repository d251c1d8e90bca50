#!/usr/bin/env bash
# The baseline of `vkinfer bench llm`: llama.cpp's llama-bench on its Vulkan backend, the same
# model file and the same device. llama.cpp comes from the sdist of llama-cpp-python 0.3.16
# (its vendor/llama.cpp, commit 4227c9b), built once into $VKI_LLAMACPP_DIR (default
# /tmp/vkinfer-llamacpp; about 4 minutes on 2 cores).
#
# Usage: tools/bench_llamacpp.sh [-m model.gguf] [llama-bench options]
#   default model: the model cache's SmolLM2-135M-Instruct.Q4_1.gguf; default options
#   -p 512 -n 128 -r 2 (llama-bench's pp512 / tg128, what `vkinfer bench llm` reports).
#        tools/bench_llamacpp.sh --server [-m model.gguf] [llama-server options]
#   builds llama-server from the same source (another 2-3 minutes once) and runs it, the
#   baseline of tools/bench_serve.py; default options --port 8081 -np 8 -c 8192 (8 slots of
#   1024 tokens: llama-server splits -c among its -np slots).
# Device: GGML_VK_VISIBLE_DEVICES (default 0). Set it: without it this llama.cpp skips CPU-type
# Vulkan devices such as lavapipe and runs on its CPU backend while still printing "Vulkan".
#
# On lavapipe (Mesa 22.3.6, 2-core AMD EPYC, 2026-11-27) this gave pp512 12.86 +- 0.10 and
# tg128 2.28 +- 0.04 tokens/s for SmolLM2-135M-Instruct Q4_1.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${VKI_LLAMACPP_DIR:-/tmp/vkinfer-llamacpp}"
pkg=llama-cpp-python==0.3.16
sdist=llama_cpp_python-0.3.16.tar.gz
sdist_sha256=34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6
model_dir="${VKI_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/models}"
tool=llama-bench
if [ "${1:-}" = "--server" ]; then
  tool=llama-server
  shift
fi
bin="$dir/build/bin/$tool"

if [ ! -x "$bin" ]; then
  # glslc compiles llama.cpp's shaders; Debian's (shaderc 2023.2) lacks the cooperative-matrix
  # and integer-dot extensions, and llama.cpp's configure step then leaves those shaders out.
  if ! command -v glslc >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends glslc
  fi
  mkdir -p "$dir"
  if [ ! -f "$dir/$sdist" ]; then
    echo "bench_llamacpp: downloading $pkg's sdist from PyPI (about 50 MB)"
    python3 -m pip download -q --no-deps --no-binary :all: "$pkg" -d "$dir"
  fi
  echo "$sdist_sha256  $dir/$sdist" | sha256sum -c --quiet -
  tar -xzf "$dir/$sdist" -C "$dir"
  src="$dir/llama_cpp_python-0.3.16/vendor/llama.cpp"
  echo "bench_llamacpp: building $tool (Vulkan) into $dir/build"
  # The server is configured in too (only built when asked for); the same ggml for both.
  cmake -S "$src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_VULKAN=ON -DLLAMA_CURL=OFF \
    -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON >"$dir/configure.log" 2>&1 \
    || { echo "bench_llamacpp: configure failed: $dir/configure.log" >&2; exit 1; }
  cmake --build "$dir/build" --target "$tool" -j"$(nproc)" >"$dir/build.log" 2>&1 \
    || { echo "bench_llamacpp: build failed: $dir/build.log" >&2; exit 1; }
fi

model="$model_dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ "${1:-}" = "-m" ]; then
  model="$2"
  shift 2
fi
[ -f "$model" ] || { echo "bench_llamacpp: no model $model (tools/fetch_models.sh)" >&2; exit 1; }
export GGML_VK_VISIBLE_DEVICES="${GGML_VK_VISIBLE_DEVICES:-0}"
if [ "$tool" = llama-server ]; then
  (($#)) || set -- --port 8081 -np 8 -c 8192
  exec "$bin" -m "$model" -ngl 99 "$@"
fi
(($#)) || set -- -p 512 -n 128 -r 2
exec "$bin" -m "$model" -ngl 99 "$@"
