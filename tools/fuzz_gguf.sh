#!/usr/bin/env bash
# Builds tools/fuzz_gguf.c with clang's libFuzzer (ASan + UBSan) and fuzzes the GGUF reader for
# a bounded time. Run by CTest as fuzz_gguf_bounded; by hand: tools/fuzz_gguf.sh clang /tmp/fuzz 600
# Usage: fuzz_gguf.sh CLANG OUT_DIR SECONDS
set -euo pipefail
clang=$1 out=$2 seconds=$3
src="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out/corpus"
"$clang" -std=c17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$src/models" -I"$src/graph" -I"$src/runtime" \
  "$src/tools/fuzz_gguf.c" "$src/models/gguf.c" "$src/runtime/status.c" -o "$out/fuzz_gguf"
# A tiny valid GGUF v3 file (no tensors, one u32 key) seeds the corpus.
printf 'GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00key\x04\x00\x00\x00\x2a\x00\x00\x00' > "$out/corpus/seed.gguf"
"$out/fuzz_gguf" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "$out/corpus"
