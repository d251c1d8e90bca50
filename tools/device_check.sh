#!/usr/bin/env bash
# Runs the whole test suite and the benchmarks on a lent GPU machine that has a driver but no
# Vulkan loader, from binaries built here. Prepare (once per build, in the repo root):
#   echo /.gl/ >> .git/info/exclude; echo /.gpu/ >> .git/info/exclude
#   (Vulkan loader + validation layer .debs in .gl/, see the device tool's README), then
#   mkdir -p .gpu/bin && cp build/vkinfer build/tests/vki_*_tests .gpu/bin/ && strip .gpu/bin/*
#   cp tests/data/quant_golden.bin .gpu/ && cp tools/device_check.sh .gpu/run.sh
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
timeout 60 $B/vkinfer devices > $OUT/devices.txt 2>&1; echo "devices rc=$?" >> $OUT/devices.txt

timeout 100 $B/vkinfer bench runtime > $OUT/bench_runtime.txt 2>&1
timeout 200 $B/vkinfer bench ops > $OUT/bench_ops.txt 2>&1; echo "bench ops rc=$?" >> $OUT/bench_ops.txt
# The real model file is over the device tool's carry limit; the synthetic one has its shapes.
timeout 120 $B/vkinfer bench llm --synthetic smollm2-135m --ctx 2048 > $OUT/bench_llm.txt 2>&1; echo "bench llm rc=$?" >> $OUT/bench_llm.txt
timeout 120 $B/vkinfer bench llm --synthetic smollm2-135m --ctx 2048 -ctk q8_0 >> $OUT/bench_llm.txt 2>&1; echo "bench llm q8_0 rc=$?" >> $OUT/bench_llm.txt
timeout 150 $B/vkinfer bench llm --synthetic llama3-1b --ctx 2048 -p 512 -n 64 >> $OUT/bench_llm.txt 2>&1; echo "bench llm llama3-1b rc=$?" >> $OUT/bench_llm.txt

export VKI_VALIDATION=1
for t in vki_runtime_tests vki_graph_tests vki_app_tests; do
  n=$($B/$t --gtest_list_tests | grep -c '^  ')
  shards=$(( (n + 19) / 20 ))
  for ((i = 0; i < shards; i++)); do
    GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i timeout 120 $B/$t >> $OUT/tests_$t.txt 2>&1
    echo "shard $i rc=$?" >> $OUT/tests_$t.txt
  done
  echo "$t: $(grep -c '^\[       OK' $OUT/tests_$t.txt) ok, $(grep -c '^\[  FAILED  \].*ms)$' $OUT/tests_$t.txt) failed, $(grep -c '^\[  SKIPPED \].*ms)$' $OUT/tests_$t.txt) skipped" >> $OUT/summary.txt
done
cat $OUT/summary.txt; grep -h '^\[  FAILED  \].*ms)$' $OUT/tests_*.txt | head -20; cat $OUT/bench_runtime.txt $OUT/bench_ops.txt $OUT/bench_llm.txt
