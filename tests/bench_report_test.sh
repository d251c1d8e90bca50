#!/usr/bin/env bash
# tools/bench_report.py on a real lavapipe result (issue #20's "checked in CI"): a quick
# `vkinfer bench peak ops` (a few fast cases, 2 repetitions) reported beside tests/data/bench's
# llama-bench sample (its pp512/tg128 and a depth-512 decode: the bars and depth charts); then
# checks that the page holds its charts (roofline, depth, bars), that every PNG decodes and is
# not blank (pixel variance > 0, more than one colour; decoded with Pillow in the report's
# venv, not by the report's own code), that every row of the results is in the table, and that malformed
# files exit non-zero with the file named.
#
# Usage: tests/bench_report_test.sh VKINFER_EXE SOURCE_DIR
# Exit 77 (skipped) when the report's venv cannot be made (no network to PyPI).
set -uo pipefail
exe="$1"
src="$2"
report="$src/tools/bench_report.py"
fail() { echo "FAIL: $*" >&2; exit 1; }

# The venv lives in the user's cache (made once); the bench runs get a cache of their own so
# that a 2-repetition peak does not replace the user's cached peaks.
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
export VKI_REPORT_VENV="${VKI_REPORT_VENV:-$cache/vkinfer/venv-report}"
python3 "$report" --setup
rc=$?
[ $rc -eq 3 ] && { echo "SKIP: cannot make the report's venv (no network?)"; exit 77; }
[ $rc -eq 0 ] || fail "bench_report.py --setup exited $rc"
py="$VKI_REPORT_VENV/bin/python"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME="$tmp/cache"
# The user's pipeline cache, copied: compiling every pipeline afresh takes minutes on lavapipe.
mkdir -p "$tmp/cache/vkinfer"
cp "$cache"/vkinfer/pipelines-*.bin "$tmp/cache/vkinfer/" 2>/dev/null || true

# Fast cases (about a second each on a loaded 2-core lavapipe): the small-batch matmuls
# (compute-bound there: points under the compute ceiling) with the peaks, then SmolLM2's
# elementwise and norm ops (bandwidth-bound) as a second run on the same device.
"$exe" bench peak ops --filter "x f32 [576, 4]" --reps 2 -o json \
    >"$tmp/lavapipe.json" 2>"$tmp/bench.err" || { cat "$tmp/bench.err"; fail "bench peak ops"; }
"$exe" bench ops --filter "SmolLM2 [576" --reps 2 -o json \
    >"$tmp/ops2.json" 2>"$tmp/ops2.err" || { cat "$tmp/ops2.err"; fail "bench ops"; }

python3 "$report" -o "$tmp/report.html" --note "ctest <run>" "$tmp/lavapipe.json" "$tmp/ops2.json" \
    "$src/tests/data/bench/llama_bench_sample.json" || fail "the report on good files"

"$py" - "$tmp/report.html" "$tmp/lavapipe.json" "$tmp/ops2.json" <<'EOF' || fail "the page's checks"
import base64, io, json, re, sys
import numpy as np
from PIL import Image
page = open(sys.argv[1], encoding="utf-8").read()
assert "http://" not in page and "https://" not in page, "the page refers to something outside"
assert "&lt;run&gt;" in page and "<run>" not in page, "the note is not escaped"
charts = re.findall(r"data-chart='(\w+)'[^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
kinds = [k for k, _ in charts]
for want in ("roofline", "depth", "bars"):
    assert want in kinds, f"no {want} chart (charts: {kinds})"
for kind, b64 in charts:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert img.format == "PNG", kind
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    assert a.shape[0] > 200 and a.shape[1] > 200, f"{kind}: {a.shape}"
    colours = len(np.unique(a.reshape(-1, 3), axis=0))
    var = a.var()
    assert var > 0 and colours > 1, f"{kind} is blank (variance {var}, {colours} colours)"
    # A chart is more than a frame: a fair share of its pixels are not background.
    share = (a.reshape(-1, 3) != a.reshape(-1, 3)[0]).any(axis=1).mean()
    assert share > 0.02, f"{kind}: only {share:.3%} of its pixels drawn"
    print(f"{kind}: {a.shape[1]}x{a.shape[0]}, {colours} colours, variance {var:.0f}, "
          f"{share:.1%} drawn")
# Every result row of our files is in the table (its test name, escaped as HTML escapes it).
import html
for path in sys.argv[2:]:
    doc = json.load(open(path))
    assert doc["system"]["device_name"] in html.unescape(page)
    for r in doc["results"]:
        assert html.escape(r["test"]) in page, f"{r['test']} missing from the table"
    print(f"{path}: {len(doc['results'])} rows in the table")
# llama-bench's tests under the names `vkinfer bench compare` gives them.
for name in ("pp512", "tg128", "tg128_d512", "AMD Radeon RX 7800 XT (RADV NAVI32)"):
    assert f">{name}<" in page, f"llama-bench sample: no {name}"
EOF

# Malformed files: a non-zero exit, the file named, no page written.
printf '{"schema": "vkinfer-bench/1", "results": [{"suite": "ops", "test": 7}]}' \
    >"$tmp/bad row.json"
printf '{"schema": "vkinfer-bench/1", "results": [' >"$tmp/cut.json"
printf '{"schema": "vkinfer-bench/9", "results": []}' >"$tmp/newer.json"
printf '[{"n_prompt": 512, "n_gen": 0}]' >"$tmp/llama-no-ts.json"
printf '{"schema": "vkinfer-bench/1", "results": [{"suite": "a", "test": "b", %s}]}' \
    '"metric": "c", "value": NaN' \
    >"$tmp/nan.json"
for bad in "bad row.json" cut.json newer.json llama-no-ts.json nan.json; do
    rm -f "$tmp/bad.html"
    python3 "$report" -o "$tmp/bad.html" "$tmp/lavapipe.json" "$tmp/$bad" 2>"$tmp/err.txt"
    rc=$?
    [ $rc -eq 1 ] || fail "$bad: exit $rc, not 1"
    grep -qF "$tmp/$bad" "$tmp/err.txt" ||
        fail "$bad: the message does not name the file: $(cat "$tmp/err.txt")"
    [ ! -e "$tmp/bad.html" ] || fail "$bad: a page was written"
    echo "$bad: $(cat "$tmp/err.txt")"
done
python3 "$report" -o "$tmp/bad.html" "$tmp/missing.json" 2>"$tmp/err.txt" &&
    fail "a missing file passed"
grep -qF "$tmp/missing.json" "$tmp/err.txt" || fail "a missing file is not named"
echo "PASS"
