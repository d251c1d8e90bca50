"""Many clients at once (issue #18): 8 clients against --parallel 4 get their one-client greedy
answers token for token; a client that goes away mid-stream does not disturb the others; a full
queue answers 503 with Retry-After; SIGTERM ends a running stream and the process exits 0."""

import concurrent.futures as cf
import http.client
import json
import socket
import threading
import time
import unittest
import urllib.parse

from serve_common import GREEDY, KEY, SHORT, URL, Server, client, model_id, request, stream_text

PROMPTS = ["Name a fruit.", "What is 2+2?", "Say hi to Bob.", "Name a colour.",
           "What is the sun?", "Count to five.", "Name a dog breed.", "What is water made of?"]


def ask(prompt, stream, max_tokens=SHORT):
    c = client()
    kw = dict(model=model_id(), messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, **GREEDY)
    if stream:
        text, finish, _ = stream_text(c.chat.completions.create(stream=True, **kw))
        return text, finish
    r = c.chat.completions.create(**kw)
    return r.choices[0].message.content, r.choices[0].finish_reason


def metrics(url=None):
    """/metrics as {name: value} (labels kept in the name)."""
    r = request("GET", "/metrics", url=url)
    out = {}
    for l in r.body.decode().splitlines():
        if l and not l.startswith("#"):
            name, _, v = l.rpartition(" ")
            out[name] = float(v)
    return out


class ConcurrencyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The one-client answers, one request at a time.
        cls.alone = {p: ask(p, stream=False) for p in PROMPTS}

    def test_eight_clients_match_their_one_client_answers(self):
        # Half stream, half do not; all start together (a barrier), twice the slots.
        start = threading.Barrier(len(PROMPTS))

        def one(i):
            start.wait()
            return ask(PROMPTS[i], stream=i % 2 == 0)

        t0 = time.time()
        with cf.ThreadPoolExecutor(len(PROMPTS)) as ex:
            got = list(ex.map(one, range(len(PROMPTS))))
        print("\n  8 clients, --parallel 4: %.1f s" % (time.time() - t0), flush=True)
        for p, g in zip(PROMPTS, got):
            with self.subTest(prompt=p):
                self.assertEqual(g, self.alone[p])

    def test_a_client_that_disconnects(self):
        """One long stream is dropped after a few events while three others run; they finish with
        their one-client answers, and the dropped one's slot comes back (four fresh requests run
        together afterwards, which needs all four slots)."""
        u = urllib.parse.urlsplit(URL)
        start = threading.Barrier(4)
        dropped = {}

        def drop():
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
            body = dict(model=model_id(), messages=[{"role": "user", "content": "Tell me a long story."}],
                        max_tokens=400, stream=True, **GREEDY)
            h = {"Content-Type": "application/json"}
            if KEY:
                h["Authorization"] = "Bearer " + KEY
            start.wait()
            conn.request("POST", "/v1/chat/completions", json.dumps(body), h)
            r = conn.getresponse()
            dropped["status"] = r.status
            n = 0
            while n < 3:
                line = r.readline()
                if not line:
                    break
                if line.startswith(b"data: "):
                    n += 1
            dropped["events"] = n
            conn.sock.close()  # gone, without reading the rest
            conn.close()

        def other(p):
            start.wait()
            return ask(p, stream=True)

        with cf.ThreadPoolExecutor(4) as ex:
            fd = ex.submit(drop)
            others = [ex.submit(other, p) for p in PROMPTS[:3]]
            fd.result()
            got = [f.result() for f in others]
        self.assertEqual(dropped.get("status"), 200)
        self.assertEqual(dropped.get("events"), 3)
        for p, g in zip(PROMPTS[:3], got):
            self.assertEqual(g, self.alone[p])
        # The dropped stream's slot is freed: within a few seconds no slot is busy.
        deadline = time.time() + 30
        busy = None
        while time.time() < deadline:
            busy = {k: v for k, v in metrics().items() if "busy" in k}
            if busy and all(v == 0 for v in busy.values()):
                break
            time.sleep(0.5)
        self.assertTrue(busy and all(v == 0 for v in busy.values()), busy)
        with cf.ThreadPoolExecutor(4) as ex:
            got = list(ex.map(lambda p: ask(p, stream=False), PROMPTS[4:]))
        for p, g in zip(PROMPTS[4:], got):
            self.assertEqual(g, self.alone[p])


class QueueTest(unittest.TestCase):
    """A server of its own: one slot, a queue of one, a context of 128 tokens."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--parallel", "1", "--queue", "1", "--ctx", "128", "--timeout", "2")

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def post(self, max_tokens, stream=False):
        return request("POST", "/v1/chat/completions", url=self.srv.url, key=None,
                       body=dict(messages=[{"role": "user", "content": "Tell me a story."}],
                                 max_tokens=max_tokens, stream=stream, **GREEDY))

    def test_full_queue_answers_503(self):
        start = threading.Barrier(5)

        def one(_):
            start.wait()
            return self.post(24)

        with cf.ThreadPoolExecutor(5) as ex:
            got = list(ex.map(one, range(5)))
        status = sorted(r.status for r in got)
        # At most one runs and one waits at any moment: 5 at once leave at least 3 turned away.
        self.assertGreaterEqual(status.count(503), 3, status)
        self.assertGreaterEqual(status.count(200), 1, status)
        self.assertEqual(set(status), {200, 503}, status)
        for r in got:
            if r.status == 503:
                self.assertIn("retry-after", r.headers)
                self.assertRegex(r.headers["retry-after"], r"^\d+$")
                r.error()
            else:
                self.assertEqual(r.json()["usage"]["completion_tokens"], 24)
        # And it serves again once the queue drains.
        self.assertEqual(self.post(2).status, 200)

    def test_reply_stops_at_the_context_end(self):
        # ~90 prompt tokens, 500 asked for, 128 in the context: the reply ends there, "length".
        r = request("POST", "/v1/completions", url=self.srv.url, key=None,
                    body=dict(prompt=" ".join(["apple banana cherry"] * 30), max_tokens=500, **GREEDY))
        self.assertEqual(r.status, 200, r.body[:300])
        j = r.json()
        u = j["usage"]
        self.assertEqual(j["choices"][0]["finish_reason"], "length")
        self.assertGreater(u["prompt_tokens"], 60)
        self.assertLessEqual(u["prompt_tokens"] + u["completion_tokens"], 128)
        self.assertGreaterEqual(u["prompt_tokens"] + u["completion_tokens"], 127)
        # Twice the prompt does not fit at all.
        r = request("POST", "/v1/completions", url=self.srv.url, key=None,
                    body=dict(prompt=" ".join(["apple banana cherry"] * 60), max_tokens=5))
        self.assertEqual(r.status, 400)
        self.assertEqual(r.error().get("code"), "context_length_exceeded")

    def test_stalled_client_times_out(self):
        """Half a request and then silence: the server closes the connection after its --timeout
        (2 s here), while answers that take longer than that to compute are unaffected (the
        24-token answers above)."""
        u = urllib.parse.urlsplit(self.srv.url)
        s = socket.create_connection((u.hostname, u.port), timeout=30)
        t0 = time.time()
        try:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        finally:
            s.close()
        self.assertLess(time.time() - t0, 15)
        self.assertEqual(self.post(2).status, 200)

    def test_z_sigterm_ends_a_stream_and_exits_0(self):
        # Runs last (unittest orders by name, hence the z): the server is gone afterwards.
        u = urllib.parse.urlsplit(self.srv.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("POST", "/v1/chat/completions",
                     json.dumps(dict(messages=[{"role": "user", "content": "Tell me a long story."}],
                                     max_tokens=1000, stream=True)), {"Content-Type": "application/json"})
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.readline().startswith(b"data: "))
        t0 = time.time()
        code = self.srv.stop(timeout=30)
        rest = r.read()  # the stream ends (closed, or with an error event), it does not hang
        conn.close()
        self.assertEqual(code, 0, self.srv.stderr()[-3000:])
        self.assertLess(time.time() - t0, 30)
        self.assertNotIn(b"data: [DONE]\n\n" * 2, rest)


if __name__ == "__main__":
    unittest.main()
