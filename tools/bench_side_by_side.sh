#!/usr/bin/env bash
# vkinfer and llama.cpp's llama-bench on the same device and the very same model file,
# alternated, into one table: the GPU-speed issue's harness for machines that may have no
# network and take only small uploads. The model files are written where they run, by
# `vkinfer bench llm --synthetic NAME --save FILE` (full-size shapes with random weights and a
# byte-level vocabulary that both programs load); llama-bench is built beforehand by
# tools/bench_llamacpp.sh (copy its build/bin folder over; it holds the shared libraries).
#
# Usage: tools/bench_side_by_side.sh [options] SHAPE...   (SHAPE: `vkinfer bench --help` lists
#        them: smollm2-135m, llama3-1b[-q4_0|-q8_0|-f16|-q4_k_m], llama3-3b..., llama3-8b...)
#   --vkinfer PATH       default: build/vkinfer
#   --llama-bench PATH   default: /tmp/vkinfer-llamacpp/build/bin/llama-bench
#   --out DIR            results, model files and the tables (default: bench-side-by-side)
#   --rounds N           alternations of the two programs (default 2), each -r reps
#   -p N -n N -r N       prompt and generated tokens, repetitions (default 512, 128, 3)
# Each round runs llama-bench, then vkinfer (the order flips every round so neither always runs
# on a warmer or cooler device). Results: DIR/SHAPE.llamacpp.N.json and SHAPE.vkinfer.N.json,
# and DIR/SHAPE.md, `vkinfer bench compare` of all of them (ratios to llama.cpp's first round;
# '?' where the runs' spread covers the difference).
# Device: GGML_VK_VISIBLE_DEVICES (default 0) for llama.cpp, VKI_DEVICE for vkinfer.
set -euo pipefail

vk=build/vkinfer
lb=/tmp/vkinfer-llamacpp/build/bin/llama-bench
out=bench-side-by-side
rounds=2 p=512 n=128 r=3
shapes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --vkinfer) vk=$2; shift 2 ;;
    --llama-bench) lb=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -p) p=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    -r) r=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "bench_side_by_side: unknown option $1" >&2; exit 2 ;;
    *) shapes+=("$1"); shift ;;
  esac
done
[ ${#shapes[@]} -gt 0 ] || { echo "bench_side_by_side: name at least one shape" >&2; exit 2; }
[ -x "$vk" ] || { echo "bench_side_by_side: no vkinfer at $vk (--vkinfer)" >&2; exit 2; }
[ -x "$lb" ] || { echo "bench_side_by_side: no llama-bench at $lb (tools/bench_llamacpp.sh builds it)" >&2; exit 2; }
for v in "$rounds" "$p" "$n" "$r"; do
  [[ "$v" =~ ^[1-9][0-9]{0,5}$ ]] || { echo "bench_side_by_side: '$v' is not a count" >&2; exit 2; }
done
mkdir -p "$out"
export GGML_VK_VISIBLE_DEVICES="${GGML_VK_VISIBLE_DEVICES:-0}"
export LD_LIBRARY_PATH="$(dirname "$lb")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

run_llamacpp() { # shape, round
  "$lb" -m "$out/$1.gguf" -p "$p" -n "$n" -r "$r" -ngl 99 -o json > "$out/$1.llamacpp.$2.json"
}
run_vkinfer() {
  "$vk" bench llm -m "$out/$1.gguf" -p "$p" -n "$n" --reps "$r" -o json > "$out/$1.vkinfer.$2.json"
}

for s in "${shapes[@]}"; do
  [[ "$s" =~ ^[a-z0-9._-]+$ ]] || { echo "bench_side_by_side: bad shape name '$s'" >&2; exit 2; }
  if [ ! -f "$out/$s.gguf" ]; then # written once, here; a short vkinfer run checks it loads
    "$vk" bench llm --synthetic "$s" --save "$out/$s.gguf" -p 8 -n 2 --reps 1 --ctx 64 > /dev/null
  fi
  files=()
  for ((i = 1; i <= rounds; i++)); do
    if ((i % 2)); then run_llamacpp "$s" "$i"; run_vkinfer "$s" "$i"
    else run_vkinfer "$s" "$i"; run_llamacpp "$s" "$i"; fi
    echo "$s: round $i of $rounds done" >&2
  done
  for ((i = 1; i <= rounds; i++)); do files+=("$out/$s.llamacpp.$i.json"); done
  for ((i = 1; i <= rounds; i++)); do files+=("$out/$s.vkinfer.$i.json"); done
  "$vk" bench compare "${files[@]}" | tee "$out/$s.md"
done
