#!/usr/bin/env bash
# Sets up (idempotent), builds and runs every test with the Khronos validation layer on, then
# the sanitizer job: the same suites (less the op conformance suite) built with clang,
# AddressSanitizer and UBSan in build-asan/, and bounded libFuzzer runs of the GGUF reader and
# of the whole model load path; last, the Windows cross-build of the libraries and the CLI
# (tools/build_windows.sh). Without a GPU the tests run on Mesa's lavapipe.
# Usage: tools/test.sh [ctest options, e.g. -R Tokenizer]   (passed to both runs)
#        VKI_TEST_NO_SANITIZE=1 tools/test.sh              (no sanitizer job)
#        VKI_TEST_NO_WINDOWS=1 tools/test.sh               (no Windows cross-build at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export VKI_VALIDATION=1
# The model tests read the real model cache, so its path is fixed before XDG_CACHE_HOME moves.
export VKI_MODEL_DIR="${VKI_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/models}"
# Tests must not write the user's pipeline cache. Both runs share this one, and Mesa's shader
# cache in it: the sanitized run finds the kernels compiled (LLVM under ASan's allocator
# compiles several times slower).
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$(mktemp -d)}"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"

if [ -z "${VKI_TEST_NO_SANITIZE:-}" ]; then
  echo "test: the sanitizer build (clang, ASan + UBSan, libFuzzer) in build-asan/"
  CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKI_FUZZ=ON \
    -DVKI_FUZZ_SECONDS="${VKI_FUZZ_SECONDS:-30}" >/dev/null
  cmake --build build-asan -j"$(nproc)"
  # Every error stops the test that hit it; leaks are errors too (the Vulkan driver's own
  # allocations are not reported: LSan sees them as reachable).
  export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  # Left out: round trips of buffers past lavapipe's 128 MiB binding limit, which ASan's
  # allocator blows up to over 13 GiB of host memory each (the unsanitised run has them); and
  # the SD 2.x weight conversion, whose host code is SD 1.x's (run here) and whose time is
  # lavapipe's shader compiler under ASan's allocator (8 minutes of the CI's 90).
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)" \
    -E 'BufferAboveMaxStorageRange|SdConvertTest.Sd21' "$@"
fi

# The Windows cross-build: the libraries and the CLI with mingw-w64 (tools/build_windows.sh),
# which must compile without a warning and link build-win/vkinfer.exe.
if [ -z "${VKI_TEST_NO_WINDOWS:-}" ]; then
  echo "test: the Windows cross-build (mingw-w64) in build-win/"
  start=$SECONDS
  bash tools/build_windows.sh
  echo "test: Windows build passed: build-win/vkinfer.exe," \
       "$(stat -c %s build-win/vkinfer.exe) bytes, in $((SECONDS - start)) s"
fi
