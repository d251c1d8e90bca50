#!/usr/bin/env python3
"""Turns benchmark result files into one self-contained HTML page with PNG charts (issue #20).

Usage: tools/bench_report.py [-o report.html] [--title TEXT] [--note TEXT] FILE [FILE...]
       tools/bench_report.py --setup      (only make the virtual environment; exit 3 if it cannot)

Each FILE is one of:
  - a `vkinfer bench ... -o json` document (schema vkinfer-bench/1, docs/bench/SCHEMA.md),
  - its `-o jsonl` rows (one row object a line, each with the system's columns),
  - llama-bench's `-o json` (an array of tests) or `-o jsonl` (one test a line), mapped to rows
    as `vkinfer bench compare` maps them: suite llm, metric tokens_per_s, value avg_ts, sd
    stddev_ts, test pp<n_prompt> / tg<n_gen> / pp<n_prompt>+tg<n_gen>, `_d<n_depth>` appended
    for a non-zero depth.

The page holds each run's system block; per device, a roofline (log-log: the measured peaks of
`bench peak` as the roofs, or the peaks `bench ops` recorded; each `bench ops` case a point at
its arithmetic intensity and achieved GFLOP/s) and each case's share of its roof; tokens/s by
decode depth (`bench llm -d`, llama-bench -d); pp/tg bars across devices and engines; and a
table of every result. Charts are PNGs embedded as data: URIs, so the page needs nothing else.

matplotlib comes from PyPI into a virtual environment this script makes on first use
(${VKI_REPORT_VENV:-${XDG_CACHE_HOME:-~/.cache}/vkinfer/venv-report}); the script then runs
itself again inside it. Exit status: 0 done, 1 a bad input file (the message names it), 2 a bad
command line, 3 the virtual environment could not be made (no network?).
"""
import math
import os
import re
import subprocess
import sys

MATPLOTLIB = "matplotlib==3.10.8"
MAX_FILE_BYTES = 64 << 20  # as `vkinfer bench compare` reads them
SCHEMA_MAJOR = 1
PROG = "bench_report"


def venv_dir():
    if os.environ.get("VKI_REPORT_VENV"):
        return os.environ["VKI_REPORT_VENV"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "vkinfer", "venv-report")


def ensure_venv():
    """Makes the venv once (under a lock, so that two runs at once do not race) and returns
    its python. The stamp file names the pinned matplotlib: a venv made for another pin is
    made again."""
    import fcntl
    import shutil
    d = venv_dir()
    py = os.path.join(d, "bin", "python")
    stamp = os.path.join(d, "vkinfer-report.stamp")

    def ready():
        try:
            with open(stamp) as f:
                return f.read().strip() == MATPLOTLIB and os.access(py, os.X_OK)
        except OSError:
            return False

    if ready():
        return py
    os.makedirs(os.path.dirname(d), exist_ok=True)
    with open(d + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():
            return py
        shutil.rmtree(d, ignore_errors=True)
        print(f"{PROG}: making {d} with {MATPLOTLIB} from PyPI (once)", file=sys.stderr)
        steps = [[sys.executable, "-m", "venv", d],
                 [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", MATPLOTLIB]]
        for cmd in steps:
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                shutil.rmtree(d, ignore_errors=True)
                tail = "\n".join(r.stderr.strip().splitlines()[-5:])
                _venv_fail(cmd, tail)
        with open(stamp, "w") as f:
            f.write(MATPLOTLIB + "\n")
    return py


def _venv_fail(cmd, tail):
    print(f"{PROG}: cannot make the virtual environment {venv_dir()} "
          f"({os.path.basename(cmd[0])} {' '.join(cmd[1:4])} failed):\n{tail}", file=sys.stderr)
    sys.exit(3)


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(venv_dir())


# ---- reading result files ------------------------------------------------------------------

class BadFile(Exception):
    pass


def _no_constants(name):
    raise ValueError(f"{name} is not a JSON number")


def _loads(json, text):
    return json.loads(text, parse_constant=_no_constants)


def read_values(path):
    """The file's JSON value, or its JSON Lines objects (a list, marked as lines)."""
    import json
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise BadFile(f"cannot read: {e.strerror}")
    if len(data) > MAX_FILE_BYTES:
        raise BadFile(f"larger than {MAX_FILE_BYTES >> 20} MiB")
    if b"\0" in data:
        raise BadFile("holds a NUL byte: not a JSON text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadFile(f"not UTF-8 (byte {e.start})")
    if not text.strip():
        raise BadFile("empty")
    try:
        return _loads(json, text), False
    except ValueError as whole:
        lines = [(i + 1, l) for i, l in enumerate(text.splitlines()) if l.strip()]
        if len(lines) < 2:
            raise BadFile(f"not JSON: {whole}")
        objs = []
        for no, line in lines:
            try:
                v = _loads(json, line)
            except ValueError as e:
                raise BadFile(f"line {no}: not JSON: {e}") if objs or no > 1 else \
                    BadFile(f"not JSON: {whole}")
            if not isinstance(v, dict):
                raise BadFile(f"line {no}: not a JSON object")
            objs.append(v)
        return objs, True


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_str(obj, key, where, required=True):
    v = obj.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str):
        raise BadFile(f"{where}: '{key}' is not a string")
    return v


def check_row(r, where):
    if not isinstance(r, dict):
        raise BadFile(f"{where}: not an object")
    row = {k: check_str(r, k, where) for k in ("suite", "test", "metric")}
    row["unit"] = check_str(r, "unit", where, required=False) or ""
    row["statistic"] = check_str(r, "statistic", where, required=False)
    if not is_num(r.get("value")):
        raise BadFile(f"{where}: 'value' is not a finite number")
    row["value"] = float(r["value"])
    sd = r.get("sd")
    if sd is not None and not (is_num(sd) and sd >= 0):
        raise BadFile(f"{where}: 'sd' is not a number >= 0 or null")
    row["sd"] = None if sd is None else float(sd)
    reps = r.get("reps")
    if reps is not None and not (is_num(reps) and reps >= 0):
        raise BadFile(f"{where}: 'reps' is not a number >= 0 or null")
    row["reps"] = reps
    row["workload"] = check_str(r, "workload", where, required=False) # e.g. "llm-v1"; null: none
    return row


def check_schema(s, where):
    if not isinstance(s, str) or not s.startswith("vkinfer-bench/"):
        raise BadFile(f"{where}: schema {s!r} is not vkinfer-bench/<major>")
    m = re.fullmatch(r"vkinfer-bench/(\d+)", s)
    if not m:
        raise BadFile(f"{where}: schema {s!r} is not vkinfer-bench/<major>")
    if int(m.group(1)) > SCHEMA_MAJOR:
        raise BadFile(f"schema {s} is newer than this script reads (vkinfer-bench/{SCHEMA_MAJOR})")


def llama_test_name(t, where):
    ints = {}
    for k in ("n_prompt", "n_gen", "n_depth"):
        v = t.get(k, 0 if k == "n_depth" else None)
        if not (is_num(v) and v >= 0 and v == int(v) and v <= 1e9):
            raise BadFile(f"{where}: not a llama-bench test ('{k}' is not a count)")
        ints[k] = int(v)
    if ints["n_prompt"] + ints["n_gen"] == 0:
        raise BadFile(f"{where}: not a llama-bench test (n_prompt and n_gen both 0)")
    p, g, d = ints["n_prompt"], ints["n_gen"], ints["n_depth"]
    name = f"pp{p}" if g == 0 else f"tg{g}" if p == 0 else f"pp{p}+tg{g}"
    return name + (f"_d{d}" if d else "")


def read_llama_bench(tests):
    if not tests:
        raise BadFile("an empty array, no tests")
    rows = []
    for i, t in enumerate(tests):
        where = f"entry {i}"
        if not isinstance(t, dict):
            raise BadFile(f"{where}: not an object")
        name = llama_test_name(t, where)
        if not is_num(t.get("avg_ts")):
            raise BadFile(f"{where}: not a llama-bench test ('avg_ts' is not a number)")
        sd = t.get("stddev_ts")
        reps = t.get("samples_ts")
        rows.append({"suite": "llm", "test": name, "metric": "tokens_per_s", "unit": "tokens/s",
                     "value": float(t["avg_ts"]), "statistic": "mean",
                     "sd": float(sd) if is_num(sd) and sd >= 0 else None,
                     "reps": len(reps) if isinstance(reps, list) else None})
    first = tests[0]

    def s(k):
        v = first.get(k)
        return str(v) if isinstance(v, (str, int, float)) and not isinstance(v, bool) else ""
    model = os.path.basename(s("model_filename"))
    system = {"device_name": s("gpu_info") or "(no GPU named)", "backends": s("backends"),
              "cpu": s("cpu_info"), "llama_cpp_commit": s("build_commit"),
              "build_number": s("build_number"), "model": model, "model_type": s("model_type"),
              "n_gpu_layers": s("n_gpu_layers"), "n_batch": s("n_batch"),
              "n_ubatch": s("n_ubatch"), "flash_attn": s("flash_attn"),
              "type_k": s("type_k"), "type_v": s("type_v"), "date": s("test_time")}
    return {"engine": "llama.cpp", "system": {k: v for k, v in system.items() if v},
            "rows": rows, "suites": None}


# The row fields of our -o jsonl lines; every other string key is a system column.
ROW_FIELDS = {"schema", "suite", "test", "metric", "unit", "value", "statistic", "sd", "reps",
              "workload"}


def read_run(path):
    value, lines = read_values(path)
    if isinstance(value, dict):
        if "schema" not in value:
            raise BadFile("an object without 'schema': not a vkinfer bench -o json document")
        check_schema(value.get("schema"), "the document")
        results = value.get("results")
        if not isinstance(results, list):
            raise BadFile("'results' is not an array (an older document? "
                          "`vkinfer bench convert FILE -o json` adds it)")
        rows = [check_row(r, f"results[{i}]") for i, r in enumerate(results)]
        system = value.get("system")
        if system is None:
            dev = value.get("device") if isinstance(value.get("device"), dict) else {}
            system = {"device_name": dev.get("name", "(unnamed device)")}
        if not isinstance(system, dict):
            raise BadFile("'system' is not an object")
        system = {str(k): (v if isinstance(v, str) else str(v)) for k, v in system.items()
                  if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
        suites = value.get("suites")
        if suites is not None and not isinstance(suites, dict):
            raise BadFile("'suites' is not an object")
        return {"engine": "vkinfer", "system": system, "rows": rows, "suites": suites}
    if isinstance(value, list) and not lines:
        if value and isinstance(value[0], dict) and "schema" in value[0]:
            raise BadFile("an array of rows: a -o jsonl file holds one row a line, -o json a "
                          "document")
        return read_llama_bench(value)
    if lines:
        if "schema" in value[0]:
            rows, system = [], {}
            for i, r in enumerate(value):
                check_schema(r.get("schema"), f"line {i + 1}")
                rows.append(check_row(r, f"line {i + 1}"))
                if i == 0:
                    system = {k: v for k, v in r.items()
                              if k not in ROW_FIELDS and isinstance(v, str)}
            return {"engine": "vkinfer", "system": system, "rows": rows, "suites": None}
        return read_llama_bench(value)
    raise BadFile("neither a vkinfer-bench document, its JSON Lines rows, nor llama-bench "
                  "output (a JSON array of tests)")


# ---- what the charts draw ------------------------------------------------------------------

PEAK_TESTS = {"fp32": "fp32", "fp16": "fp16", "coopmat_fp16": "coopmat fp16", "int8": "int8"}


def peaks_of(run):
    """The run's measured peaks: `bench peak`'s rows, else those `bench ops` recorded (its
    peaks.* rows), as {name: value} with 'source' naming which."""
    for suite, prefix, source in (("peak", "", "bench peak"), ("ops", "peaks.", "bench ops")):
        pk = {}
        for r in run["rows"]:
            if r["suite"] != suite or not r["test"].startswith(prefix):
                continue
            t = r["test"][len(prefix):]
            if r["metric"] in ("gflops", "gops") and t in PEAK_TESTS and r["value"] > 0:
                pk[PEAK_TESTS[t]] = r["value"]
            elif r["metric"] == "gbs" and t in ("read", "write", "copy") and r["value"] > 0:
                pk[t] = r["value"]
        if "fp32" in pk and any(k in pk for k in ("read", "write", "copy")):
            pk["bandwidth"] = max(pk.get(k, 0) for k in ("read", "write", "copy"))
            pk["source"] = source
            return pk
    return None


def op_cases(run):
    """`bench ops` cases: {name, op, gbs, gflops, intensity, bound, share}. From the suites
    object where the file has it (intensity and bound as bench ops computed them), else from
    the rows (intensity = GFLOP/s / GB/s = flops / bytes)."""
    out = []
    ops = (run.get("suites") or {}).get("ops")
    if isinstance(ops, dict) and isinstance(ops.get("cases"), list):
        for c in ops["cases"]:
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                continue
            gbs, gflops = c.get("gbs"), c.get("gflops")
            if not is_num(gbs) or not is_num(gflops):
                continue
            inten = c.get("intensity")
            out.append({"name": c["name"], "op": c.get("op") if isinstance(c.get("op"), str)
                        else c["name"].split()[0], "gbs": gbs, "gflops": gflops,
                        "intensity": inten if is_num(inten) else (gflops / gbs if gbs > 0 else 0),
                        "bound": c.get("bound") if isinstance(c.get("bound"), str) else "",
                        "share": c.get("roof_share") if is_num(c.get("roof_share")) else None})
        return out
    byname = {}
    for r in run["rows"]:
        if r["suite"] == "ops" and not r["test"].startswith("peaks.") and "." not in r["metric"]:
            byname.setdefault(r["test"], {})[r["metric"]] = r["value"]
    for name, m in byname.items():
        if "gbs" in m and "gflops" in m:
            out.append({"name": name, "op": name.split()[0], "gbs": m["gbs"], "gflops": m["gflops"],
                        "intensity": m["gflops"] / m["gbs"] if m["gbs"] > 0 else 0,
                        "bound": "", "share": m.get("roof_share")})
    return out


def device_of(run):
    return run["system"].get("device_name") or "(unnamed device)"


def run_label(i, run):
    s = run["system"]
    if run["engine"] == "llama.cpp":
        extra = s.get("llama_cpp_commit", "")
        back = s.get("backends", "")
        return f"{chr(65 + i)}: llama.cpp {extra} ({back})".replace(" ()", "")
    return f"{chr(65 + i)}: vkinfer {s.get('git_commit', '')}".rstrip()


# ---- charts --------------------------------------------------------------------------------

def png_uri(fig):
    import base64
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def roofline_chart(device, pk, series):
    """series: [(label, cases)]. Returns the PNG data: URI."""
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 6.5), gridspec_kw={"width_ratios": [3, 2]})
    pts = [c for _, cases in series for c in cases if c["gflops"] > 0 and c["intensity"] > 0]
    xs = [c["intensity"] for c in pts] + [pk["fp32"] / pk["bandwidth"]]
    lo, hi = min(xs) / 4, max(xs) * 4
    bw = pk["bandwidth"]
    ceilings = [(k, pk[k]) for k in ("fp32", "fp16", "coopmat fp16", "int8") if k in pk]
    xgrid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    # The fp32 roof whole (bandwidth slope, then its ceiling); the other ceilings from where
    # the slope meets them, dashed.
    for name, peak in ceilings:
        unit = "GOP/s" if name == "int8" else "GFLOP/s"
        if name == "fp32":
            ax.plot(xgrid, [min(bw * x, peak) for x in xgrid], "-", lw=2, color="black",
                    label=f"roof: {bw:.3g} GB/s, fp32 {peak:.3g} {unit}")
        else:
            xr = [x for x in xgrid if bw * x >= peak]
            if xr:
                ax.plot(xr, [peak] * len(xr), "--", lw=1.2,
                        label=f"ceiling: {name} {peak:.3g} {unit}")
    ax.axvline(pk["fp32"] / bw, color="grey", lw=0.8, ls=":")
    ops = sorted({c["op"] for _, cases in series for c in cases})
    cmap = plt.get_cmap("tab20")
    colour = {op: cmap(i % 20) for i, op in enumerate(ops)}
    markers = "os^Dv<>"
    for si, (label, cases) in enumerate(series):
        for op in ops:
            sel = [c for c in cases if c["op"] == op and c["gflops"] > 0 and c["intensity"] > 0]
            if sel:
                ax.scatter([c["intensity"] for c in sel], [c["gflops"] for c in sel],
                           color=colour[op], marker=markers[si % len(markers)], s=28,
                           edgecolors="black", linewidths=0.4,
                           label=op if si == 0 else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (flop/byte)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(f"roofline: {device}\n(peaks from {pk['source']}; "
                 f"markers: {', '.join(f'{markers[i]} {l}' for i, (l, _) in enumerate(series))})",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), ncol=1)
    # Every case's share of its roof, data movement (no flops) included: the roofline's log
    # axes cannot show those.
    allc = [(l, c) for l, cases in series for c in cases if c["share"] is not None]
    allc.sort(key=lambda lc: lc[1]["share"])
    if allc:
        bx.barh(range(len(allc)), [100 * c["share"] for _, c in allc],
                color=[colour[c["op"]] for _, c in allc], edgecolor="black", linewidth=0.2)
        bx.axvline(100, color="red", lw=0.8)
        step = max(1, len(allc) // 40)
        bx.set_yticks(range(0, len(allc), step))
        bx.set_yticklabels([allc[i][1]["name"][:48] for i in range(0, len(allc), step)],
                           fontsize=5)
        bx.set_xscale("log")
        bx.set_xlabel("% of the binding roof (bandwidth or compute), log")
        bx.set_title(f"{len(allc)} cases, share of their roof", fontsize=9)
        bx.grid(True, axis="x", which="both", alpha=0.3)
    else:
        bx.text(0.5, 0.5, "no roof shares in these files", ha="center", transform=bx.transAxes)
    fig.tight_layout()
    return png_uri(fig)


DEPTH_RE = re.compile(r"^tg(\d+)_d(\d+)$")
PPTG_RE = re.compile(r"^(pp\d+|tg\d+)$")


def same_build(a, b):
    keys = ("device_name", "git_commit", "llama_cpp_commit", "vkinfer_version")
    return a["engine"] == b["engine"] and all(a["system"].get(k) == b["system"].get(k)
                                              for k in keys)


def depth_series(runs):
    """[(label, n_gen, [(depth, t/s, sd)])] from tg<N>_d<D> rows (tg<N> is depth 0)."""
    out = []
    for i, run in enumerate(runs):
        tps = {r["test"]: r for r in run["rows"]
               if r["suite"] == "llm" and r["metric"] == "tokens_per_s"}
        by_n = {}
        for t, r in tps.items():
            m = DEPTH_RE.match(t)
            if m:
                by_n.setdefault(int(m.group(1)), {})[int(m.group(2))] = r
        for n, d in sorted(by_n.items()):
            label = f"{run_label(i, run)} on {device_of(run)}"
            if 0 not in d and f"tg{n}" in tps:
                d[0] = tps[f"tg{n}"]
            elif 0 not in d:
                # Depth 0 from another run of the same build on the same device (llama-bench
                # run once for pp/tg and once with -d), named in the label.
                for j, other in enumerate(runs):
                    r0 = next((r for r in other["rows"] if r["suite"] == "llm" and
                               r["test"] == f"tg{n}" and r["metric"] == "tokens_per_s"), None)
                    if r0 and j != i and same_build(run, other):
                        d[0] = r0
                        label += f" (depth 0: {chr(65 + j)})"
                        break
            pts = sorted((k, v["value"], v["sd"]) for k, v in d.items())
            out.append((label, n, pts))
    return out


def depth_chart(series):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for label, n, pts in series:
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                    yerr=[p[2] or 0 for p in pts], marker="o", capsize=3, label=f"{label}: tg{n}")
    # A linear axis ticked at the depths measured (0 cannot go on a log axis).
    ticks = sorted({p[0] for _, _, pts in series for p in pts})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks], rotation=45 if len(ticks) > 6 else 0)
    ax.set_xlabel("depth: tokens already in the context (untimed prefill)")
    ax.set_ylabel("decode tokens/s")
    ax.set_ylim(bottom=0)
    ax.set_title("decode speed by depth (mean ± sd)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png_uri(fig)


def bars_chart(runs):
    import matplotlib.pyplot as plt
    tests = []
    for run in runs:
        for r in run["rows"]:
            if r["suite"] == "llm" and r["metric"] == "tokens_per_s" and PPTG_RE.match(r["test"]) \
                    and r["test"] not in tests:
                tests.append(r["test"])
    tests.sort(key=lambda t: (t[:2] != "pp", int(t[2:])))
    who = [(i, run) for i, run in enumerate(runs)
           if any(r["suite"] == "llm" and r["test"] in tests for r in run["rows"])]
    if not tests or not who:
        return None
    fig, axes = plt.subplots(1, len(tests), figsize=(max(6, 4.2 * len(tests)), 5.5), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, t in zip(axes[0], tests):
        names, vals, sds, cols = [], [], [], []
        for i, run in who:
            r = next((r for r in run["rows"] if r["suite"] == "llm" and r["test"] == t
                      and r["metric"] == "tokens_per_s"), None)
            if r is None:
                continue
            names.append(f"{chr(65 + i)}: {run['engine']}\n{device_of(run)[:28]}")
            vals.append(r["value"])
            sds.append(r["sd"] or 0)
            cols.append(cmap(i % 10))
        xs = range(len(vals))
        ax.bar(xs, vals, yerr=sds, capsize=4, color=cols, edgecolor="black", linewidth=0.5)
        for x, v, sd in zip(xs, vals, sds):
            ax.annotate(f"{v:.3g}", (x, v + sd), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, fontsize=7)
        ax.set_title(t)
        ax.set_ylabel("tokens/s")
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("prefill (pp) and decode (tg) across devices and engines (mean ± sd)")
    fig.tight_layout()
    return png_uri(fig)


# ---- the page ------------------------------------------------------------------------------

def fmt(v):
    if v is None:
        return ""
    if v == 0:
        return "0"
    a = abs(v)
    return f"{v:.4g}" if 1e-3 <= a < 1e6 else f"{v:.3e}"


def page(title, note, paths, runs):
    from html import escape as e
    import matplotlib
    import datetime
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{e(title)}"
             "</title><style>body{font-family:sans-serif;margin:1.5em;max-width:1500px}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #bbb;"
             "padding:2px 6px;text-align:left}td.n{text-align:right;font-variant-numeric:"
             "tabular-nums}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}"
             "dl{display:grid;grid-template-columns:max-content auto;gap:0 1em;font-size:13px}"
             "dt{font-weight:bold}dd{margin:0}.note{background:#fff6d8;padding:.5em 1em}"
             "</style></head><body>", f"<h1>{e(title)}</h1>"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts.append(f"<p>Generated {e(now)} by tools/bench_report.py (matplotlib "
                 f"{e(matplotlib.__version__)}) from {len(runs)} result file(s).</p>")
    if note:
        parts.append(f"<p class='note'>{e(note)}</p>")
    parts.append("<h2 id='systems'>Runs and the systems they ran on</h2>")
    for i, (path, run) in enumerate(zip(paths, runs)):
        parts.append(f"<h3>{e(run_label(i, run))}: <code>{e(os.path.basename(path))}</code>"
                     "</h3><dl>")
        for k, v in run["system"].items():
            parts.append(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>")
        suites = sorted({r["suite"] for r in run["rows"]})
        parts.append(f"<dt>suites</dt><dd>{e(', '.join(suites))} ({len(run['rows'])} rows)</dd>"
                     "</dl>")

    charts = []
    parts.append("<h2 id='roofline'>Rooflines</h2>")
    devices = []
    for run in runs:
        if device_of(run) not in devices:
            devices.append(device_of(run))
    drawn = 0
    for dev in devices:
        on = [(i, run) for i, run in enumerate(runs) if device_of(run) == dev]
        pk = next((p for p in (peaks_of(run) for _, run in on) if p), None)
        series = [(run_label(i, run), op_cases(run)) for i, run in on]
        series = [(l, c) for l, c in series if c]
        if not series:
            continue
        if not pk:
            parts.append(f"<p>{e(dev)}: ops results but no measured peaks (run `bench peak` "
                         "or a newer `bench ops`), no roofline.</p>")
            continue
        uri = roofline_chart(dev, pk, series)
        charts.append(uri)
        drawn += 1
        parts.append(f"<h3>{e(dev)}</h3><p>Roofs: bandwidth {fmt(pk['bandwidth'])} GB/s (best of "
                     f"read {fmt(pk.get('read'))}, write {fmt(pk.get('write'))}, copy "
                     f"{fmt(pk.get('copy'))}); fp32 {fmt(pk['fp32'])} GFLOP/s; ridge "
                     f"{fmt(pk['fp32'] / pk['bandwidth'])} flop/byte; from {e(pk['source'])}. "
                     "Cases without flops (pure data movement) appear only in the share chart."
                     f"</p><img data-chart='roofline' alt='roofline of {e(dev)}' src='{uri}'>")
    if not drawn:
        parts.append("<p>No `bench ops` results with peaks in these files.</p>")

    parts.append("<h2 id='depth'>Decode tokens/s by depth</h2>")
    ds = depth_series(runs)
    if ds:
        uri = depth_chart(ds)
        charts.append(uri)
        parts.append(f"<img data-chart='depth' alt='tokens/s by depth' src='{uri}'>")
    else:
        parts.append("<p>No decode-at-depth results (`bench llm -d`, llama-bench -d) in these "
                     "files.</p>")

    parts.append("<h2 id='bars'>Prefill and decode across devices and engines</h2>")
    uri = bars_chart(runs)
    if uri:
        charts.append(uri)
        parts.append(f"<img data-chart='bars' alt='pp and tg bars' src='{uri}'>")
    else:
        parts.append("<p>No pp/tg results in these files.</p>")

    if len(runs) > 1:
        parts.append("<h2 id='shared'>Results in more than one file</h2>")
        keys = []
        index = [{(r["suite"], r["test"], r["metric"]): r for r in reversed(run["rows"])}
                 for run in runs]
        for run in runs:
            for r in run["rows"]:
                k = (r["suite"], r["test"], r["metric"])
                if k not in keys and sum(k in ix for ix in index) > 1:
                    keys.append(k)
        if keys:
            head = "".join(f"<th>{chr(65 + i)}</th>" for i in range(len(runs)))
            parts.append(f"<table><tr><th>suite</th><th>test</th><th>metric</th>{head}"
                         "<th>unit</th></tr>")
            for k in keys:
                cells = []
                unit = ""
                for ix in index:
                    r = ix.get(k)
                    if r:
                        unit = unit or r["unit"]
                    cells.append("<td class='n'>" + (e(fmt(r["value"]) + (f" ± {fmt(r['sd'])}"
                                 if r["sd"] is not None else "")) if r else "") + "</td>")
                parts.append(f"<tr><td>{e(k[0])}</td><td>{e(k[1])}</td><td>{e(k[2])}</td>"
                             f"{''.join(cells)}<td>{e(unit)}</td></tr>")
            parts.append("</table>")
        else:
            parts.append("<p>None.</p>")

    parts.append("<h2 id='results'>All results</h2>")
    for i, (path, run) in enumerate(zip(paths, runs)):
        parts.append(f"<details open><summary>{e(run_label(i, run))}: {e(device_of(run))} "
                     f"({len(run['rows'])} rows)</summary><table><tr><th>suite</th><th>test</th>"
                     "<th>metric</th><th>value</th><th>sd</th><th>unit</th><th>statistic</th>"
                     "<th>reps</th></tr>")
        for r in run["rows"]:
            parts.append(f"<tr><td>{e(r['suite'])}</td><td>{e(r['test'])}</td>"
                         f"<td>{e(r['metric'])}</td><td class='n'>{e(fmt(r['value']))}</td>"
                         f"<td class='n'>{e(fmt(r['sd']))}</td><td>{e(r['unit'])}</td>"
                         f"<td>{e(r['statistic'] or '')}</td>"
                         f"<td class='n'>{e(fmt(r['reps']))}</td></tr>")
        parts.append("</table></details>")
    parts.append("</body></html>\n")
    return "".join(parts), len(charts)


USAGE = ("usage: tools/bench_report.py [-o report.html] [--title TEXT] [--note TEXT] FILE...\n"
         "       tools/bench_report.py --setup")


def parse_args(argv):
    opts = {"out": "bench-report.html", "title": "vkinfer benchmark report", "note": "",
            "files": [], "setup": False}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            print(__doc__.strip())
            sys.exit(0)
        if a == "--setup":
            opts["setup"] = True
        elif a in ("-o", "--title", "--note"):
            if i + 1 >= len(argv):
                print(f"{PROG}: {a} needs a value\n{USAGE}", file=sys.stderr)
                sys.exit(2)
            opts[{"-o": "out", "--title": "title", "--note": "note"}[a]] = argv[i + 1]
            i += 1
        elif a.startswith("-") and a != "-":
            print(f"{PROG}: unknown option {a}\n{USAGE}", file=sys.stderr)
            sys.exit(2)
        else:
            opts["files"].append(a)
        i += 1
    if not opts["setup"] and not opts["files"]:
        print(f"{PROG}: no result files\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    if len(opts["files"]) > 26:
        print(f"{PROG}: at most 26 result files (labelled A..Z)", file=sys.stderr)
        sys.exit(2)
    return opts


def main(argv):
    opts = parse_args(argv)
    if not in_venv():
        py = ensure_venv()
        if opts["setup"]:
            return 0
        os.execv(py, [py, os.path.abspath(__file__)] + argv)
    if opts["setup"]:
        return 0
    import matplotlib
    matplotlib.use("Agg")
    runs = []
    for path in opts["files"]:
        try:
            runs.append(read_run(path))
        except BadFile as ex:
            print(f"{PROG}: {path}: {ex}", file=sys.stderr)
            return 1
        except RecursionError:
            print(f"{PROG}: {path}: nested too deeply", file=sys.stderr)
            return 1
    html, n = page(opts["title"], opts["note"], opts["files"], runs)
    tmp = opts["out"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    os.replace(tmp, opts["out"])
    print(f"{PROG}: wrote {opts['out']} ({len(html) >> 10} KiB, {n} charts)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
