"""A page as a person sees it: headless Chromium driven over the DevTools protocol, through a pipe (no extra
package). Tests use it to load a page (the documentation's, a report's) and check what the browser reports.

    with Chromium() as browser:
        page = browser.load("http://127.0.0.1:8000/")
        page.errors                              # console errors, uncaught exceptions, failed loads
        page.evaluate("document.images.length")
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome binary on PATH (or $CHROMIUM), else None."""
    for name in (os.environ.get("CHROMIUM"), *NAMES):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@dataclass
class Page:
    """A loaded page: what went wrong while loading it, and a way to ask it questions."""

    url: str
    errors: list[str] = field(default_factory=list)
    browser: Chromium | None = None
    session: str = ""

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        reply = self.browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                       "awaitPromise": True}, self.session)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")


class Chromium:
    """A headless Chromium process; ``load`` opens a page in a fresh tab and waits until it has loaded."""

    def __init__(self, binary: str | None = None, timeout: float = 60):
        self.binary = binary or find_chromium()
        self.timeout = timeout
        self._id = 0
        self._events: list[dict] = []
        self._buffer = b""

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="robench-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--remote-debugging-pipe", f"--user-data-dir={self._profile}", "about:blank"]
        # the protocol pipe is the child's fd 3 (commands in) and fd 4 (replies out): bash maps them
        script = " ".join(['exec "$0" "$@"', f"3<&{to_chrome_r}", f"4>&{from_chrome_w}",
                           *[f"{fd}<&-" for fd in (to_chrome_r, from_chrome_w) if fd not in (3, 4)]])
        self._proc = subprocess.Popen(["bash", "-c", script, self.binary, *args], pass_fds=(to_chrome_r, from_chrome_w),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self._send({"id": self._next_id(), "method": "Browser.close"})
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- the protocol: JSON messages, each ended by a NUL byte

    def _next_id(self) -> int:
        self._id += 1
        return self._id

    def _send(self, message: dict) -> None:
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the protocol pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command and return its result; events that arrive meanwhile are kept for ``wait_for``."""
        ident = self._next_id()
        self._send({"id": ident, "method": method, "params": params or {}, **({"sessionId": session} if session
                                                                             else {})})
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._events.append(message)

    def wait_for(self, method: str, session: str, quiet: float = 0.3) -> None:
        """Wait for the event ``method``, then until no event has arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self._events):
            self._events.append(self._receive(deadline))
        while True:
            try:
                self._events.append(self._receive(min(deadline, time.monotonic() + quiet)))
            except TimeoutError:
                return

    def load(self, url: str) -> Page:
        """Open ``url`` in a new tab and wait for its load event; the page's errors are collected."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=session)
        self._events.clear()
        self.call("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        page = Page(url, browser=self, session=session)
        for event in self._events:
            if event.get("sessionId") != session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                page.errors.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                          for a in params["args"]))
            elif event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                page.errors.append("exception: " + details.get("exception", {}).get("description", details["text"]))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                page.errors.append(f"log: {entry['text']} {entry.get('url', '')}".strip())
        return page


@contextlib.contextmanager
def serve(folder: str | os.PathLike):
    """Serve ``folder`` over HTTP on a free local port (as a documentation host would); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(Path(folder)))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the base class's signature)
        pass
