#!/usr/bin/env python3
"""Aggregate generated tokens/s and time to first token of an OpenAI-compatible server at 1, 2, 4
and 8 concurrent streams (issue #18's benchmark): `vkinfer serve` or llama.cpp's llama-server,
same prompts, greedy, a fixed max_tokens. Standard library only.

Start the servers yourself, with as many slots as the largest level, e.g.
  build/vkinfer serve --port 8080 --parallel 8 --ctx 1024
  /tmp/vkinfer-llamacpp/build/bin/llama-server -m MODEL.gguf -ngl 99 --port 8081 -np 8 -c 8192
      (tools/bench_llamacpp.sh --server builds it; -c is split among the -np slots; lavapipe
       needs GGML_VK_VISIBLE_DEVICES=0, see bench_llamacpp.sh)
then
  tools/bench_serve.py --url vkinfer=http://127.0.0.1:8080 --url llama=http://127.0.0.1:8081
or let the script start (and stop) them on free loopback ports, with as many slots as the
largest level and --ctx tokens per slot:
  tools/bench_serve.py --vkinfer build/vkinfer --llama-server /tmp/vkinfer-llamacpp/build/bin/llama-server
Several --url are alternated level by level (each level runs on every server before the next
level starts), so that a change in the machine's load hits both alike.

Per level and server: `streams` requests start together (one thread each, a barrier); each
streams its answer; every prompt starts with its own request number, so no request reuses
another's cached prompt (prefill is part of every TTFT). tokens/s = all completion tokens / wall time from the first request sent to
the last answer ended; TTFT = time from sending a request to its first text; per-stream decode =
(tokens - 1) / (end - first text). Completion tokens come from the usage chunk
(stream_options.include_usage) when the server sends one, else from the count of text events.
"ignore_eos": true goes with every request (llama-server and vkinfer honour it), so that every
answer runs to max_tokens and both servers generate the same number of tokens.
"""

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import tempfile
import sys
import threading
import time
import urllib.parse

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "Describe the water cycle to a child.",
    "List some uses of copper and explain each.",
    "Tell me about the history of the printing press.",
    "Write a poem about autumn leaves.",
    "Explain why the sky is blue.",
    "Describe a day in the life of a baker.",
]


def stream_one(url, key, model, prompt, max_tokens, seed, timeout):
    """One streamed chat completion. Returns a dict of times (perf_counter seconds) and counts."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}, "temperature": 0, "seed": seed, "ignore_eos": True}
    if model:
        body["model"] = model
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    out = {"t_send": time.perf_counter(), "t_first": None, "events": 0, "usage": None, "error": None}
    try:
        conn.request("POST", u.path.rstrip("/") + "/v1/chat/completions", json.dumps(body), h)
        r = conn.getresponse()
        if r.status != 200:
            out["error"] = "HTTP %d: %s" % (r.status, r.read()[:200].decode(errors="replace"))
            return out
        for raw in r:
            line = raw.decode(errors="replace").rstrip("\r\n")
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            j = json.loads(data)
            if j.get("error"):
                out["error"] = str(j["error"])
                break
            if j.get("usage"):
                out["usage"] = j["usage"]
            for c in j.get("choices") or []:
                d = c.get("delta") or {}
                if d.get("content"):
                    out["events"] += 1
                    if out["t_first"] is None:
                        out["t_first"] = time.perf_counter()
    except (OSError, ValueError, http.client.HTTPException) as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        out["t_end"] = time.perf_counter()
        conn.close()
    return out


RUN = [0]  # requests sent so far: numbers every prompt


def unique(prompt):
    """The prompt with a request number in front, so that no request reuses another's cached
    prefix (beyond the chat template's fixed start): prefill is measured every time."""
    RUN[0] += 1
    return "Request %d. %s" % (RUN[0], prompt)


def run_level(url, key, model, streams, max_tokens, timeout):
    res = [None] * streams
    go = threading.Barrier(streams)
    prompts = [unique(PROMPTS[i % len(PROMPTS)]) for i in range(streams)]

    def worker(i):
        go.wait()
        res[i] = stream_one(url, key, model, prompts[i], max_tokens, 1 + i, timeout)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(streams)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    errors = [r["error"] for r in res if r["error"]]
    tokens = [(r["usage"] or {}).get("completion_tokens", r["events"]) for r in res]
    t0 = min(r["t_send"] for r in res)
    wall = max(r["t_end"] for r in res) - t0
    ttft = [r["t_first"] - r["t_send"] for r in res if r["t_first"] is not None]
    decode = [(n - 1) / (r["t_end"] - r["t_first"]) for r, n in zip(res, tokens)
              if r["t_first"] is not None and n > 1 and r["t_end"] > r["t_first"]]
    return {
        "streams": streams,
        "completion_tokens": sum(tokens),
        "wall_s": wall,
        "tokens_per_s": sum(tokens) / wall if wall > 0 else 0.0,
        "ttft_mean_s": statistics.mean(ttft) if ttft else None,
        "ttft_max_s": max(ttft) if ttft else None,
        "stream_decode_tokens_per_s": statistics.mean(decode) if decode else None,
        "min_tokens": min(tokens),
        "errors": errors,
    }


def model_of(url, key, timeout):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.request("GET", u.path.rstrip("/") + "/v1/models", headers={"Authorization": "Bearer " + key} if key else {})
        r = conn.getresponse()
        data = json.loads(r.read()) if r.status == 200 else {}
        return (data.get("data") or [{}])[0].get("id")
    finally:
        conn.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc, log, url, timeout):
    """Polls GET /health until 200 (llama-server answers 503 while it loads)."""
    u = urllib.parse.urlsplit(url)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            sys.exit("bench_serve: %s exited %d:\n%s" % (proc.args[0], proc.returncode, log.read()[-3000:]))
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    sys.exit("bench_serve: %s did not become ready in %d s" % (proc.args[0], timeout))


def start_servers(a, slots):
    """Starts the servers named by --vkinfer / --llama-server; returns [(name, url, proc, log)]."""
    model = a.model or os.path.join(os.environ.get("VKI_MODEL_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vkinfer", "models"),
        "SmolLM2-135M-Instruct.Q4_1.gguf")
    out = []
    if a.vkinfer:
        log = tempfile.TemporaryFile("w+")
        p = subprocess.Popen([a.vkinfer, "serve", "-m", model, "--port", "0", "--parallel", str(slots),
                              "--ctx", str(a.ctx)], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 600
        url = None
        while url is None:
            log.seek(0)
            m = re.search(r"vkinfer: serving \S+ on (http://\S+:\d+)", log.read())
            if m:
                url = m.group(1)
            elif p.poll() is not None or time.time() > deadline:
                wait_ready(p, log, "http://127.0.0.1:1", 0)  # reports and exits
                sys.exit("bench_serve: vkinfer serve did not start")
            else:
                time.sleep(0.2)
        wait_ready(p, log, url, 600)
        out.append(("vkinfer", url, p, log))
    if a.llama_server:
        log = tempfile.TemporaryFile("w+")
        port = free_port()
        env = dict(os.environ)
        env.setdefault("GGML_VK_VISIBLE_DEVICES", "0")  # else lavapipe is skipped (bench_llamacpp.sh)
        p = subprocess.Popen([a.llama_server, "-m", model, "-ngl", "99", "--host", "127.0.0.1", "--port", str(port),
                              "-np", str(slots), "-c", str(a.ctx * slots)], stdout=log, stderr=log, env=env)
        url = "http://127.0.0.1:%d" % port
        wait_ready(p, log, url, 600)
        out.append(("llama-server", url, p, log))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", action="append", metavar="[NAME=]URL",
                    help="server base URL (repeat to alternate servers); default http://127.0.0.1:8080")
    ap.add_argument("--vkinfer", metavar="EXE", help="start `EXE serve` and benchmark it")
    ap.add_argument("--llama-server", metavar="EXE", help="start llama.cpp's llama-server and benchmark it")
    ap.add_argument("-m", "--model", help="the model the started servers load (default: the model cache's "
                    "SmolLM2-135M-Instruct.Q4_1.gguf)")
    ap.add_argument("--ctx", type=int, default=1024, help="context per slot of the started servers (default 1024)")
    ap.add_argument("--api-key", default="", help="sent as Authorization: Bearer to every server")
    ap.add_argument("--streams", default="1,2,4,8", help="concurrency levels (default 1,2,4,8)")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens per answer (default 64)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per level and server; the best is kept")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per request")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE", help="also write the results as JSON")
    a = ap.parse_args()

    levels = [int(s) for s in a.streams.split(",") if s.strip()]
    started = start_servers(a, max(levels))
    try:
        return bench(a, levels, [(name, url) for name, url, _, _ in started])
    finally:
        for _, _, p, log in started:
            p.terminate()
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
            log.close()


def bench(a, levels, started):
    servers = list(started)
    for spec in a.url or ([] if started else ["http://127.0.0.1:8080"]):
        name, sep, url = spec.partition("=")
        if not sep or "://" in name:
            name, url = urllib.parse.urlsplit(spec).netloc, spec
        servers.append((name, url))

    models = {}
    for name, url in servers:
        models[name] = model_of(url, a.api_key, a.timeout)
        # A warm-up request: first-use costs (pipeline compilation, page-ins) stay out of the table.
        w = stream_one(url, a.api_key, models[name], unique("Say hello."), 4, 1, a.timeout)
        if w["error"]:
            sys.exit("bench_serve: %s (%s): %s" % (name, url, w["error"]))
        print("bench_serve: %s = %s, model %s" % (name, url, models[name]), file=sys.stderr)

    results = []
    for n in levels:
        for name, url in servers:
            best = None
            for _ in range(a.repeat):
                r = run_level(url, a.api_key, models[name], n, a.max_tokens, a.timeout)
                if best is None or (not r["errors"] and r["tokens_per_s"] > best["tokens_per_s"]):
                    best = r
            best.update(server=name, url=url, model=models[name], max_tokens=a.max_tokens)
            results.append(best)
            print("bench_serve: %s x%d: %.2f tokens/s%s" % (name, n, best["tokens_per_s"],
                  " (%d errors: %s)" % (len(best["errors"]), best["errors"][0]) if best["errors"] else ""),
                  file=sys.stderr, flush=True)

    def f(v, fmt):
        return fmt % v if v is not None else "-"

    print("%-12s %7s %12s %10s %10s %14s %8s" % ("server", "streams", "tokens/s", "TTFT s", "TTFT max",
                                                 "stream tok/s", "tokens"))
    for r in results:
        print("%-12s %7d %12.2f %10s %10s %14s %8d%s" % (
            r["server"], r["streams"], r["tokens_per_s"], f(r["ttft_mean_s"], "%.2f"), f(r["ttft_max_s"], "%.2f"),
            f(r["stream_decode_tokens_per_s"], "%.2f"), r["completion_tokens"],
            "  (%d errors)" % len(r["errors"]) if r["errors"] else ""))
    for name, _ in servers:
        by = {r["streams"]: r["tokens_per_s"] for r in results if r["server"] == name}
        if 1 in by and by[1] > 0:
            print("%s: aggregate tokens/s relative to 1 stream: %s" % (
                name, ", ".join("x%d %.2f" % (n, by[n] / by[1]) for n in sorted(by))))
    if len(servers) > 1:  # the first server against each other one, level by level
        first = servers[0][0]
        mine = {r["streams"]: r["tokens_per_s"] for r in results if r["server"] == first}
        for name, _ in servers[1:]:
            other = {r["streams"]: r["tokens_per_s"] for r in results if r["server"] == name}
            print("%s / %s aggregate tokens/s: %s" % (first, name, ", ".join(
                "x%d %.2f" % (n, mine[n] / other[n]) for n in sorted(mine) if other.get(n))))
    if a.json:
        text = json.dumps({"max_tokens": a.max_tokens, "results": results}, indent=1)
        if a.json == "-":
            print(text)
        else:
            with open(a.json, "w") as fp:
                fp.write(text + "\n")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
