"""The chat page at / in headless Chromium (Debian's chromium and chromium-driver) driven by
selenium: type, send with Enter, see the streamed reply (the same text the openai client gets),
stop a long reply, start a new chat, see an error inline, and model text never parsed as HTML."""

import os
import shutil
import time
import unittest

from serve_common import GREEDY, KEY, SHORT, URL, client, model_id, request

DRIVER = os.environ.get("VKI_CHROMEDRIVER", "/usr/bin/chromedriver")
QUESTION = "What is the capital of France?"


@unittest.skipUnless(os.path.exists(DRIVER) and (shutil.which("chromium") or shutil.which("chromium-browser")),
                     "no chromium / chromedriver (apt-get install chromium chromium-driver)")
class PageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        o = webdriver.ChromeOptions()
        for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1000,800"]:
            o.add_argument(a)
        cls.d = webdriver.Chrome(service=Service(DRIVER), options=o)
        cls.d.set_script_timeout(30)

    @classmethod
    def tearDownClass(cls):
        cls.d.quit()

    def open(self, query="", key=KEY):
        d = self.d
        d.get(URL + "/")
        d.execute_script("localStorage.setItem('vkinfer-api-key', arguments[0])", key)
        d.get(URL + "/" + query)
        self.wait(lambda: d.find_element("id", "model").text not in ("", "connecting\u2026"), 30)

    def wait(self, cond, timeout, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.1)
        self.fail("timed out waiting for " + what)

    def el(self, css):
        return self.d.find_element("css selector", css)

    def els(self, css):
        return self.d.find_elements("css selector", css)

    def state(self):
        a = self.els(".msg.assistant")
        return a[-1].get_attribute("data-state") if a else None

    def type_and_enter(self, text):
        from selenium.webdriver.common.keys import Keys
        box = self.el("#input")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)

    def test_page_is_served(self):
        r = request("GET", "/", key=None)  # the page itself needs no key; its API calls do
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/html"), r.headers)
        self.assertIn(b'id="send"', r.body)
        self.assertNotIn(b"http://", r.body.replace(b"http://www.w3.org", b""))  # no external assets

    def test_send_and_stream(self):
        want = client().chat.completions.create(model=model_id(), messages=[{"role": "user", "content": QUESTION}],
                                                max_tokens=SHORT, **GREEDY).choices[0].message.content
        self.open("?max_tokens=%d&temperature=0&seed=%d" % (SHORT, GREEDY["seed"]))
        self.assertEqual(self.el("#model").text, model_id())
        self.type_and_enter(QUESTION)
        self.assertEqual(self.el(".msg.user").text, QUESTION)
        self.assertEqual(self.el("#input").get_attribute("value"), "")
        self.wait(lambda: self.state() == "done", 120, "the reply")
        # The streamed reply, as the page assembled it from the events, is the client's answer.
        reply = self.d.execute_script("return document.querySelector('.msg.assistant').textContent")
        self.assertEqual(reply, want)
        self.assertFalse(self.el("#send").get_attribute("disabled"))
        self.assertTrue(self.el("#stop").get_attribute("disabled"))
        self.assertIn("tokens", self.el(".meta").text)
        # A second turn goes with the first (the history), then "New chat" clears it all.
        self.type_and_enter("And of Italy?")
        self.wait(lambda: len(self.els(".msg.assistant")) == 2 and self.state() == "done", 120, "the 2nd reply")
        self.el("#new").click()
        self.assertEqual(self.els(".msg"), [])

    def test_shift_enter_is_a_newline(self):
        from selenium.webdriver.common.keys import Keys
        self.open("?max_tokens=1")
        box = self.el("#input")
        box.send_keys("one")
        box.send_keys(Keys.SHIFT, Keys.ENTER)
        box.send_keys("two")
        self.assertEqual(box.get_attribute("value"), "one\ntwo")
        self.assertEqual(self.els(".msg"), [])
        self.el("#send").click()
        self.wait(lambda: self.state() == "done", 60, "the reply")
        self.assertEqual(self.d.execute_script("return document.querySelector('.msg.user').textContent"),
                         "one\ntwo")

    def test_stop(self):
        self.open("?max_tokens=400&temperature=0")
        self.type_and_enter("Tell me a long story about a dragon.")
        self.wait(lambda: self.el(".msg.assistant").text.strip() != "", 120, "the first words")
        self.assertFalse(self.el("#stop").get_attribute("disabled"))
        self.el("#stop").click()
        self.wait(lambda: self.state() == "stopped", 10, "the stop")
        text = self.el(".msg.assistant").text
        time.sleep(1.5)
        self.assertEqual(self.el(".msg.assistant").text, text)  # nothing more arrives
        self.assertFalse(self.el("#send").get_attribute("disabled"))
        # The server freed the slot: a short question after it is answered.
        self.type_and_enter("Hi")
        self.wait(lambda: len(self.els(".msg.assistant")) == 2 and self.state() in ("done", "error"), 120,
                  "the reply after stop")
        self.assertEqual(self.state(), "done")

    def test_model_text_is_not_html(self):
        self.open("?max_tokens=1")
        self.type_and_enter("<b id='x'>bold</b><img src=x onerror=alert(1)>")
        self.wait(lambda: self.state() in ("done", "error"), 60, "the reply")
        self.assertEqual(self.els("#x"), [])
        self.assertEqual(self.els(".msg img"), [])
        self.assertIn("<b id='x'>", self.el(".msg.user").text)

    def test_error_inline(self):
        if not KEY:
            self.skipTest("server started without --api-key")
        self.open(key="wrong-key")
        self.assertEqual(self.el("#model").text, "API key needed")
        self.type_and_enter("Hi")
        self.wait(lambda: self.els(".msg.error"), 30, "the error")
        self.assertIn("401", self.el(".msg.error").text)
        self.assertEqual(self.state(), "error")
        # The right key, typed into the page, is kept and used.
        box = self.el("#apikey")
        box.clear()
        box.send_keys(KEY)
        self.d.execute_script("arguments[0].dispatchEvent(new Event('change'))", box)
        self.wait(lambda: self.el("#model").text == model_id(), 30, "the model after the key")
        self.assertEqual(self.d.execute_script("return localStorage.getItem('vkinfer-api-key')"), KEY)


if __name__ == "__main__":
    unittest.main()
