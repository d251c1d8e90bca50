#!/usr/bin/env bash
# Sets up (idempotent), builds and runs every test with the Khronos validation layer on.
# Without a GPU the tests run on Mesa's lavapipe.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export VKI_VALIDATION=1
# The model tests read the real model cache, so its path is fixed before XDG_CACHE_HOME moves.
export VKI_MODEL_DIR="${VKI_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/models}"
# Tests must not write the user's pipeline cache.
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$(mktemp -d)}"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
