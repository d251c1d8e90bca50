#!/usr/bin/env bash
# The GPU-session kit's run script: on a lent GPU machine (a driver, no Vulkan loader, no network),
# from the kit tools/gpu_kit.sh prepares here (.gl: the loader .debs; .gpu: stripped binaries as
# xz tarballs, kit.env, this script as run.sh). With the device tool:
#   run(command="bash .gpu/run.sh", carry=[".gl", ".gpu"], timeout_s=560)
# Steps, by value per second, each under its own timeout inside one overall budget (KIT_BUDGET,
# default 520 s), each writing to $OUT as it goes (a timeout still returns the earlier results):
#   0 devices (and whether the KHR cooperative-matrix path is there)              devices.txt
#   1 A: the cooperative-matrix kernels, never run on hardware: the matmul conformance rows with
#     the default profile (KHR on NVIDIA) and VKI_NARROW=no-coopmat-khr (NV), bench peak, and
#     bench ops f16 576x49152x128 with both (last NV figure: 984 us), SD's flash attention on
#     them, Granite's MoE down product with and without the combine folded in; the integer-dot
#     mat-vec (VKI_NARROW=int-dot): its conformance rows, and bench ops q8_0 / q4_0 at
#     4096 x 4096 and 4096 x 14336 with and without it                            coopmat.txt
#   2 A: bench llm llama3-1b / llama3-8b-q4_0 shapes, then beside llama-bench     llm.txt
#   3 B: bench sd 512x512 beside stable-diffusion.cpp's Vulkan backend            sd.txt
#   4 A: the suites the kit holds, in shards                                      tests.txt
# and summary.txt: each step's seconds and result lines. At most 8 files come back: keep to these.
# Tests run in shards of <= 20 per process: the NVIDIA driver seen there refused vkCreateInstance
# after about 29 instances in one process.
# Dry run here (lavapipe): OUT=/tmp/kit_out KIT_DRY=1 KIT_SCALE=300 bash .gpu/run.sh
#   KIT_DRY=1: tiny filters and shapes, so every command line runs in minutes; the NVIDIA-only
#   parts log SKIP when no NVIDIA device is there. KIT_SCALE: timeouts in percent (default 100).
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/kit_out}"
mkdir -p "$OUT"
# shellcheck disable=SC1091
. .gpu/kit.env
DRY="${KIT_DRY:-0}"
SCALE="${KIT_SCALE:-100}"
T0=$(date +%s)
BUDGET=$(( ${KIT_BUDGET:-520} * SCALE / 100 ))
S="$OUT/summary.txt"
echo "kit $KIT ($BUILD), dry=$DRY, scale=$SCALE%, budget ${BUDGET}s, $(date -u +%FT%TZ)" > "$S"
# to SECONDS: the step's timeout, scaled, cut to what is left of the budget.
to() {
  local t=$(( $1 * SCALE / 100 )) left=$(( BUDGET - ($(date +%s) - T0) ))
  [ "$left" -gt 5 ] || left=5
  [ "$t" -le "$left" ] || t=$left
  echo "$t"
}
stamp() { echo "$1: $(( $(date +%s) - T0 )) s" >> "$S"; }

# The loader: only where none is installed (never over this machine's own libraries).
if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
K=/tmp/vkikit
rm -rf "$K"; mkdir -p "$K"
for f in .gpu/*.tar.xz; do tar -C "$K" -xJf "$f"; done
B=$K/bin
export XDG_CACHE_HOME=/tmp/vkicache
if [ -f .gpu/clip_vocab.txt.xz ]; then # kit B: bench sd's tokenizer, from the cache as here
  mkdir -p "$XDG_CACHE_HOME/vkinfer/models/clip"
  xz -dc .gpu/clip_vocab.txt.xz > "$XDG_CACHE_HOME/vkinfer/models/clip/bpe_simple_vocab_16e6.txt"
fi
# The test binaries read $ROOT/tests/data and the CLI at $ROOT/$BUILD/vkinfer; make those paths
# where the tree landed elsewhere.
if [ "$ROOT" != "$PWD" ] && [ ! -e "$ROOT" ]; then mkdir -p "$(dirname "$ROOT")"; ln -s "$PWD" "$ROOT"; fi
[ -e "$ROOT/$BUILD/vkinfer" ] || { mkdir -p "$ROOT/$BUILD"; cp "$B/vkinfer" "$ROOT/$BUILD/vkinfer"; }

# 0: devices.
D="$OUT/devices.txt"
timeout "$(to 30)" "$B/vkinfer" devices > "$D" 2>&1; echo "devices rc=$?" >> "$D"
if ! grep -qi nvidia "$D" && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  echo "=== VK_DRIVER_FILES=$VK_DRIVER_FILES" >> "$D"
  timeout "$(to 30)" "$B/vkinfer" devices >> "$D" 2>&1; echo "devices rc=$?" >> "$D"
fi
NV=0; grep -qi 'nvidia' "$D" && NV=1
echo "nvidia=$NV; $(grep -m1 '^device 0' "$D"); $(grep -m1 '^ *arithmetic' "$D" | sed 's/  */ /g')" >> "$S"
stamp "0 devices"

export B OUT
shard() { # binary, filter, shard count, index: one shard's log in its own file
  GTEST_TOTAL_SHARDS=$3 GTEST_SHARD_INDEX=$4 timeout "$KIT_SHARD_TO" "$B/$1" --gtest_filter="$2" \
    > "$OUT/.shard.$4" 2>&1
  echo "shard $4 rc=$?" >> "$OUT/.shard.$4"
}
export -f shard
gtest() { # binary, filter, log, timeout: the filtered tests in shards of <= 20, 8 at once
  local n shards i log="$OUT/.gtest.log"
  : > "$log"
  n=$("$B/$1" --gtest_filter="$2" --gtest_list_tests | grep -c '^  ')
  shards=$(( (n + 19) / 20 )); [ "$shards" -gt 0 ] || shards=1
  export KIT_SHARD_TO=$4
  echo "=== $1 --gtest_filter='$2' ($n tests, $shards shards) ${VKI_NARROW:+VKI_NARROW=$VKI_NARROW}" >> "$3"
  seq 0 $((shards - 1)) | timeout "$4" xargs -P 8 -I{} bash -c "shard $1 '$2' $shards {}"
  for ((i = 0; i < shards; i++)); do cat "$OUT/.shard.$i" >> "$log" 2>/dev/null; rm -f "$OUT/.shard.$i"; done
  echo "$1 ${VKI_NARROW:+[$VKI_NARROW] }$2: $(grep -c '^\[       OK' "$log") ok, $(grep -c '^\[  FAILED  \].*ms)$' "$log") failed, $(grep -c '^\[  SKIPPED \].*ms)$' "$log") skipped of $n" >> "$S"
  cat "$log" >> "$3"; rm -f "$log"
}

if [ "$KIT" = A ]; then
  # 1: the cooperative-matrix kernels (KHR first: the default profile picks it on NVIDIA).
  C="$OUT/coopmat.txt"
  # bench ops filters (substrings of the rows' names): the f16 prefill product, SD 1.5's
  # first-level self-attention (attention_coopmat.comp, never run on hardware), Granite's MoE
  # down product alone and with the combine folded in (matvec.comp's fold, 8fc899b).
  if [ "$DRY" = 1 ]; then
    # The first matmul row on the full profile (row numbers move as cases are added).
    F=$("$B/vki_graph_tests" --gtest_list_tests --gtest_filter='Ops/Conformance.MatchesReference/*_matmul_full' |
      awk '/^  /{print "Ops/Conformance." $1; exit}')
    OPS=('matmul q4_0 [576, 49152] x f32 [576, 1]')
    FD=$("$B/vki_graph_tests" --gtest_list_tests --gtest_filter='Ops/Conformance.MatchesReference/*_matmul_int_dot_tuning_nvidia' |
      awk '/^  /{print "Ops/Conformance." $1; exit}')
    DOT_OPS=('matmul q4_0 [576, 576] x f32 [576, 1]')
  else
    F='Ops/Conformance.MatchesReference/*_matmul_full:Ops/Conformance.MatchesReference/*_fused_full'
    F="$F:Ops/Conformance.MatchesReference/*_attention_full:*CooperativeMatrix*"
    OPS=('matmul f16 [576, 49152] x f32 [576, 128]' 'SD 1.5 self-attention' '(Granite down)')
    # The int-dot rows that plan the kernel run; the others skip (nvidia's tuning, with and
    # without subgroups).
    FD='Ops/Conformance.MatchesReference/*_matmul_int_dot_tuning_nvidia*'
    DOT_OPS=('q8_0 [4096, ' 'q4_0 [4096, ')
  fi
  if [ "$NV" = 1 ] || [ "$DRY" = 1 ]; then
    [ "$NV" = 1 ] || echo "(no NVIDIA device: the rows run on what is there, dry run)" >> "$C"
    timeout "$(to 30)" "$B/vkinfer" bench peak >> "$C" 2>&1; echo "bench peak rc=$?" >> "$C"
    grep -i 'cooperative matrix' "$C" | head -n 1 >> "$S"
    VKI_VALIDATION=1 gtest vki_graph_tests "$F" "$C" "$(to 90)"
    VKI_NARROW=no-coopmat-khr VKI_VALIDATION=1 gtest vki_graph_tests "$F" "$C" "$(to 90)"
    ops() { # FILTER NARROWING...: bench ops on the rows FILTER names, once per narrowing
      local o=$1 n
      for n in "${@:2}"; do
        echo "=== bench ops '$o' ${n:+VKI_NARROW=$n}" >> "$C"
        VKI_NARROW=$n timeout "$(to 40)" "$B/vkinfer" bench ops --filter "$o" > "$OUT/.ops.txt" 2>&1
        echo "bench ops rc=$?" >> "$OUT/.ops.txt"
        cat "$OUT/.ops.txt" >> "$C"
        grep -F "$o" "$OUT/.ops.txt" | sed "s/  */ /g; s/^/ops ${n:-default}: /" >> "$S"
      done
      rm -f "$OUT/.ops.txt"
    }
    for o in "${OPS[@]}"; do ops "$o" "" no-coopmat-khr no-coopmat; done
    # The integer-dot mat-vec (matvec.comp's INT_DOT, off in every tuning row): right on the
    # hardware, then timed against the default mat-vec on the same shapes.
    VKI_VALIDATION=1 gtest vki_graph_tests "$FD" "$C" "$(to 60)"
    for o in "${DOT_OPS[@]}"; do ops "$o" "" int-dot; done
  else
    echo "SKIP: no NVIDIA device, no cooperative-matrix rows" | tee -a "$C" >> "$S"
  fi
  stamp "1 coopmat"

  # 2: prefill and decode, then beside llama-bench on the same files.
  L="$OUT/llm.txt"
  if [ "$DRY" = 1 ]; then shapes=(smollm2-135m); pn=(-p 8 -n 4); reps=1; else
    shapes=(llama3-1b llama3-8b-q4_0); pn=(-p 512 -n 128); reps=3; fi
  for s in "${shapes[@]}"; do
    echo "=== bench llm --synthetic $s" >> "$L"
    timeout "$(to 60)" "$B/vkinfer" bench llm --synthetic "$s" "${pn[@]}" --reps "$reps" >> "$L" 2>&1
    echo "bench llm $s rc=$?" >> "$L"
  done
  grep -E '^\s*\|? *(pp|tg)[0-9]+' "$L" | head -n 8 >> "$S"
  stamp "2a bench llm"
  if [ -x "$K/llamacpp/llama-bench" ]; then
    timeout "$(to 200)" bash tools/bench_side_by_side.sh --vkinfer "$B/vkinfer" \
      --llama-bench "$K/llamacpp/llama-bench" --out /tmp/sbs --rounds "$([ "$DRY" = 1 ] && echo 1 || echo 2)" \
      "${pn[@]}" -r "$reps" "${shapes[@]}" >> "$L" 2>&1
    echo "side by side rc=$?" >> "$L"
    for s in "${shapes[@]}"; do [ ! -f "/tmp/sbs/$s.md" ] || { echo "=== $s.md"; cat "/tmp/sbs/$s.md"; } >> "$L"; done
    grep -h 'side by side rc' "$L" >> "$S"
  else
    echo "SKIP: no llama-bench in the kit" | tee -a "$L" >> "$S"
  fi
  stamp "2b side by side"
fi

if [ "$KIT" = B ]; then
  # 3: Stable Diffusion, the synthetic SD 1.5 written here (never carried), both programs on it.
  SD="$OUT/sd.txt"
  if [ "$DRY" = 1 ]; then size=64; steps=1; else size=512; steps=10; fi
  ck=/tmp/sd15.safetensors; rm -f "$ck" # vkinfer never overwrites (a rerun on a warm machine)
  echo "=== bench sd --synthetic sd15 --size $size --steps $steps --save $ck" >> "$SD"
  timeout "$(to 240)" "$B/vkinfer" bench sd --synthetic sd15 --size "$size" --steps "$steps" --save "$ck" >> "$SD" 2>&1
  echo "bench sd rc=$?" >> "$SD"
  grep -iE 's/step|whole image|vae decode' "$SD" | head -n 4 >> "$S"
  stamp "3a bench sd"
  mkdir -p "$K/sdcpp/build-vulkan/bin"; mv "$K/sdcpp/sd-cli" "$K/sdcpp/build-vulkan/bin/" 2>/dev/null
  if [ "$NV" = 1 ] && [ -f "$ck" ]; then
    VKI_SDCPP_DIR=$K/sdcpp timeout "$(to 240)" bash tools/bench_sdcpp.sh --vulkan "$ck" "$size" "$steps" >> "$SD" 2>&1
    echo "bench_sdcpp rc=$?" >> "$SD"
    sed -n '/^sd.cpp 0.4.7/,$p' "$SD" >> "$S"
  else
    # sd.cpp's Vulkan backend segfaults on lavapipe: prove the binary loads and stop there.
    timeout 20 "$K/sdcpp/build-vulkan/bin/sd-cli" --help > /dev/null 2>&1; rc=$?
    echo "SKIP: no NVIDIA device or no checkpoint; sd-cli --help rc=$rc" | tee -a "$SD" >> "$S"
  fi
  stamp "3b sd.cpp"
fi

if [ "$KIT" = A ]; then
  # 4: the suites, what the budget leaves.
  T="$OUT/tests.txt"
  for t in vki_graph_tests vki_runtime_tests vki_model_tests vki_app_tests; do
    [ -x "$B/$t" ] || continue
    # Dry: the first suite of each binary only.
    F='*'; [ "$DRY" != 1 ] || F="$("$B/$t" --gtest_list_tests | grep -m1 -v -e '^ ' -e '^Running' | sed 's/ .*//')*"
    VKI_VALIDATION=1 gtest "$t" "$F" "$T" "$(to 150)"
  done
  grep -h '^\[  FAILED  \].*ms)$' "$T" "$OUT/coopmat.txt" 2>/dev/null | head -n 20 >> "$S"
  stamp "4 tests"
fi
cat "$S"
