"""Shared pieces of the `vkinfer serve` client tests (tests/serve/test_*.py).

run_client_tests.sh starts one server (--parallel 4 --ctx 1024 --api-key KEY) and passes it in
the environment: VKI_SERVE_URL (http://127.0.0.1:PORT), VKI_SERVE_KEY, VKINFER_EXE (for tests
that start a server of their own or run the command line as a reference)."""

import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.parse

URL = os.environ.get("VKI_SERVE_URL", "http://127.0.0.1:8080")
KEY = os.environ.get("VKI_SERVE_KEY", "")
EXE = os.environ.get("VKINFER_EXE", "vkinfer")

# Greedy settings every comparison uses: a fixed seed as well, so that a server that ignored
# temperature=0 would still be caught by the cross-checks (a sampled answer differs).
GREEDY = dict(temperature=0, seed=7)
SHORT = 12  # max_tokens of the short answers (SmolLM2-135M on lavapipe: ~10-40 tokens/s)


def client(api_key=None, **kw):
    import openai
    return openai.OpenAI(base_url=URL + "/v1", api_key=api_key if api_key is not None else (KEY or "x"),
                         max_retries=0, timeout=kw.pop("timeout", 300), **kw)


def model_id():
    return client().models.list().data[0].id


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def error(self):
        """The OpenAI error object, checked for its shape."""
        j = self.json()
        assert isinstance(j, dict) and isinstance(j.get("error"), dict), self.body[:300]
        e = j["error"]
        assert isinstance(e.get("message"), str) and e["message"], self.body[:300]
        assert isinstance(e.get("type"), str) and e["type"], self.body[:300]
        return e


def request(method, path, body=None, headers=None, key=True, url=None, timeout=300):
    """One raw HTTP request (no client library between the test and the server's bytes).
    body: bytes, str or a JSON value. key: True sends the server's key, a string sends that,
    None sends no Authorization header."""
    u = urllib.parse.urlsplit(url or URL)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = {}
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        h["Content-Type"] = "application/json"
    if isinstance(body, str):
        body = body.encode()
    k = KEY if key is True else key
    if k:
        h["Authorization"] = "Bearer " + k
    h.update(headers or {})
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def chat_body(content, max_tokens=SHORT, **kw):
    b = dict(model=model_id(), messages=[{"role": "user", "content": content}], max_tokens=max_tokens)
    b.update(GREEDY)
    b.update(kw)
    return b


def stream_text(chunks):
    """Joins a streamed chat completion's delta texts; returns (text, finish_reason, usage)."""
    text, finish, usage = "", None, None
    for c in chunks:
        if c.usage is not None:
            usage = c.usage
        for ch in c.choices:
            if ch.delta is not None and ch.delta.content:
                text += ch.delta.content
            if ch.finish_reason:
                finish = ch.finish_reason
    return text, finish, usage


def cli_generate(prompt, n, chat):
    """The command line's greedy answer (`vkinfer generate --json`): the reference the server's
    answers are held to (the same engine through another path: one sequence, no scheduler)."""
    args = [EXE, "generate", "-p", prompt, "-n", str(n), "--temp", "0", "--ctx", "1024", "--json"]
    if chat:
        args.append("--chat")
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


class Server:
    """A `vkinfer serve` of the test's own on a free loopback port."""

    LINE = re.compile(r"vkinfer: serving (\S+) on http://([^\s:/]+|\[[^\]]+\]):(\d+)")

    def __init__(self, *args, timeout=300):
        self.log = tempfile.NamedTemporaryFile(prefix="vki_serve_", suffix=".log", delete=False)
        self.proc = subprocess.Popen([EXE, "serve", "--port", "0", *args], stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        deadline = time.time() + timeout
        while True:
            m = self.LINE.search(self.stderr())
            if m:
                self.model, self.url = m.group(1), "http://%s:%s" % (m.group(2), m.group(3))
                return
            if self.proc.poll() is not None:
                raise RuntimeError("vkinfer serve exited %d:\n%s" % (self.proc.returncode, self.stderr()))
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("vkinfer serve did not start:\n" + self.stderr())
            time.sleep(0.2)

    def stderr(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self, timeout=60):
        """SIGTERM, as a user's Ctrl-C; returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def close(self):
        self.stop()
        self.log.close()
        os.unlink(self.log.name)
