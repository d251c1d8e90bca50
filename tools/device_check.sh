#!/usr/bin/env bash
# Runs the whole test suite and the benchmarks on a lent GPU machine that has a driver but no
# Vulkan loader, from binaries built here. Prepare (once per build, in the repo root):
#   echo /.gl/ >> .git/info/exclude; echo /.gpu/ >> .git/info/exclude
#   .debs in .gl/ (apt-get download with the device README's amd64 options): libvulkan1
#   vulkan-validationlayers libglvnd0 libegl1 libopengl0 libgl1 libglx0 libgles2 libcjson1, then
#   mkdir -p .gpu/bin && cp build/vkinfer build/tests/vki_*_tests .gpu/bin/ && strip .gpu/bin/*
#   cp tests/data/quant_golden.bin .gpu/ && cp tools/device_check.sh .gpu/run.sh
# and, for vkinfer beside llama.cpp on the same files (tools/bench_side_by_side.sh), llama.cpp's
# Vulkan build from tools/bench_llamacpp.sh (about 20 MiB stripped; note its cooperative-matrix
# support: Debian's glslc builds it without, so say so beside the figures):
#   mkdir -p .gpu/llamacpp && cp /tmp/vkinfer-llamacpp/build/bin/{llama-bench,*.so} .gpu/llamacpp/
#   strip .gpu/llamacpp/*
# and run `bash .gpu/run.sh` there, carrying .gl and .gpu; results land in $OUT.
# Each test binary runs in shards of <= 20 tests per process: the NVIDIA driver seen there
# refuses vkCreateInstance after about 29 instances in one process.
cd "$(dirname "$0")/.."
for f in .gl/*.deb; do dpkg -x "$f" / ; done; ldconfig
export XDG_CACHE_HOME=/tmp/vkicache
B=$PWD/.gpu/bin
chmod +x $B/*
# The test binaries hold this checkout's absolute paths to the CLI and the test data.
mkdir -p /work/main/build /work/main/tests/data
cp $B/vkinfer /work/main/build/vkinfer; cp .gpu/quant_golden.bin /work/main/tests/data/
T0=$(date +%s); stamp() { echo "$1: $(( $(date +%s) - T0 )) s" >> $OUT/summary.txt; }
timeout 60 $B/vkinfer devices > $OUT/devices.txt 2>&1; echo "devices rc=$?" >> $OUT/devices.txt
if ! grep -qi nvidia $OUT/devices.txt; then # the loader found no driver: name NVIDIA's
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  timeout 60 $B/vkinfer devices >> $OUT/devices.txt 2>&1; echo "devices rc=$?" >> $OUT/devices.txt
fi
timeout 60 $B/vkinfer devices --json >> $OUT/devices.txt 2>&1

# Tests first (the graph suite holds the conformance table), each binary in shards, 8 shards at
# once (the machine has 16 cores; most of a shard's time is pipeline compilation on the CPU).
export VKI_VALIDATION=1
shard() { # binary, shard count, index: one shard's log in its own file
  GTEST_TOTAL_SHARDS=$2 GTEST_SHARD_INDEX=$3 timeout 120 $B/$1 > $OUT/.$1.$3 2>&1
  echo "shard $3 rc=$?" >> $OUT/.$1.$3
}
export -f shard; export B OUT
for t in vki_graph_tests vki_runtime_tests vki_app_tests; do
  n=$($B/$t --gtest_list_tests | grep -c '^  ')
  shards=$(( (n + 19) / 20 ))
  seq 0 $((shards - 1)) | xargs -P 8 -I{} bash -c "shard $t $shards {}"
  for ((i = 0; i < shards; i++)); do cat $OUT/.$t.$i >> $OUT/tests_$t.txt; rm -f $OUT/.$t.$i; done
  echo "$t: $(grep -c '^\[       OK' $OUT/tests_$t.txt) ok, $(grep -c '^\[  FAILED  \].*ms)$' $OUT/tests_$t.txt) failed, $(grep -c '^\[  SKIPPED \].*ms)$' $OUT/tests_$t.txt) skipped" >> $OUT/summary.txt
  stamp $t
done
unset VKI_VALIDATION

timeout 100 $B/vkinfer bench runtime > $OUT/bench_runtime.txt 2>&1
stamp "bench runtime"
timeout 200 $B/vkinfer bench ops > $OUT/bench_ops.txt 2>&1; echo "bench ops rc=$?" >> $OUT/bench_ops.txt
# The same prefill products without cooperative matrices (the shared-memory kernel, same tiles).
echo "=== VKI_NARROW=no-coopmat,tuning=nvidia" >> $OUT/bench_ops.txt
VKI_NARROW=no-coopmat,tuning=nvidia timeout 60 $B/vkinfer bench ops --filter ', 128]' >> $OUT/bench_ops.txt 2>&1
stamp "bench ops"
# The real model file is over the device tool's carry limit; the synthetic one has its shapes.
L="timeout 120 $B/vkinfer bench llm --ctx 2048"
$L --synthetic smollm2-135m > $OUT/bench_llm.txt 2>&1; echo "bench llm rc=$?" >> $OUT/bench_llm.txt
$L --synthetic smollm2-135m -ctk q8_0 >> $OUT/bench_llm.txt 2>&1; echo "bench llm q8_0 rc=$?" >> $OUT/bench_llm.txt
$L --synthetic llama3-1b -p 512 -n 64 >> $OUT/bench_llm.txt 2>&1; echo "bench llm llama3-1b rc=$?" >> $OUT/bench_llm.txt
echo "=== VKI_NARROW=no-coopmat,tuning=nvidia" >> $OUT/bench_llm.txt
VKI_NARROW=no-coopmat,tuning=nvidia $L --synthetic llama3-1b -p 512 -n 16 --reps 2 >> $OUT/bench_llm.txt 2>&1
stamp "bench llm"
# vkinfer and llama-bench on the same synthetic files, written here, alternated; the GGUF files
# stay out of $OUT (gigabytes), their results and tables come back.
if [ -x .gpu/llamacpp/llama-bench ]; then
  chmod +x .gpu/llamacpp/*
  timeout 300 bash tools/bench_side_by_side.sh --vkinfer $B/vkinfer \
    --llama-bench $PWD/.gpu/llamacpp/llama-bench --out /tmp/sbs --rounds 2 -r 3 \
    llama3-1b llama3-1b-q4_k_m llama3-8b-q4_0 > $OUT/side_by_side.txt 2>&1
  echo "side by side rc=$?" >> $OUT/side_by_side.txt
  mkdir -p $OUT/sbs && cp /tmp/sbs/*.json /tmp/sbs/*.md $OUT/sbs/ 2>/dev/null
  stamp "side by side"
fi

cat $OUT/summary.txt; grep -h '^\[  FAILED  \].*ms)$' $OUT/tests_*.txt | head -20; cat $OUT/devices.txt $OUT/bench_runtime.txt $OUT/bench_ops.txt $OUT/bench_llm.txt $OUT/side_by_side.txt 2>/dev/null | head -c 9000
