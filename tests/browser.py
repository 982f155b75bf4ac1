"""A headless Chromium driven over the DevTools protocol through a pipe (no websocket or driver package).

`--remote-debugging-pipe` makes Chromium read commands from fd 3 and write replies to fd 4, each message a
NUL-terminated JSON object; that is all a test needs to open pages, run JavaScript, collect console errors
and take screenshots.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    """$REGNN_BROWSER, else the first Chromium on PATH (Debian: chromium-headless-shell or chromium)."""
    explicit = os.environ.get("REGNN_BROWSER")
    if explicit:
        return explicit
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium process; `open()` gives a Page. Use as a context manager."""

    def __init__(self, executable: str, timeout: float = 60.0):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # move both ends the child needs above fd 10 so `exec 3<&... 4>&...` cannot clobber one with the other
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._profile = tempfile.mkdtemp(prefix="regnn-chromium-")
        self._stderr = open(Path(self._profile) / "stderr.log", "w")
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-; exec "$@"', "chromium",
             executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--no-first-run",
             f"--user-data-dir={self._profile}", "about:blank"],
            pass_fds=(child_r, child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
        os.close(child_r)
        os.close(child_w)
        self.timeout = timeout
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.process.wait(timeout=10)  # Chromium quits when its command pipe closes
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the DevTools pipe (crashed?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, timeout: float | None = None,
             **params: Any) -> dict[str, Any]:
        """One DevTools command; events that arrive meanwhile are kept in `events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def open(self, url: str, width: int = 1400, height: int = 900) -> "Page":
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride", session=session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.send("Page.navigate", session=session, url=url)
        page.wait_for("document.readyState === 'complete'")
        return page


class Page:
    """One tab: evaluate JavaScript, wait for conditions, read its console errors, take a screenshot."""

    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """The JSON value of `expression` (promises are awaited); a thrown error raises RuntimeError."""
        result = self.browser.send("Runtime.evaluate", session=self.session, timeout=timeout,
                                   expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied: {condition}")
            time.sleep(0.1)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads this page reported so far."""
        out = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(params["exceptionDetails"].get("exception", {}).get("description")
                           or params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
        return out

    def screenshot(self, path: Path) -> None:
        data = self.browser.send("Page.captureScreenshot", session=self.session, format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))


PLAY_VIDEOS = """(async () => {
  const out = [];
  for (const v of document.querySelectorAll('video')) {
    if (v.readyState < 1) {
      await new Promise((ok, bad) => {
        v.addEventListener('loadedmetadata', ok, {once: true});
        v.addEventListener('error', () => bad(new Error('video error ' + (v.error && v.error.message))));
      });
    }
    v.loop = false; v.muted = true; v.playbackRate = 16;
    const ended = new Promise(ok => v.addEventListener('ended', ok, {once: true}));
    await v.play();
    await ended;
    const q = v.getVideoPlaybackQuality();
    out.push({src: v.currentSrc, duration: v.duration, frames: q.totalVideoFrames, width: v.videoWidth,
              height: v.videoHeight, error: v.error && v.error.message});
  }
  return out;
})()"""

IMAGES_LOADED = """Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))"""

LOAD_IMAGE = """new Promise((ok, bad) => { const i = new Image(); i.onload = () => ok(i.naturalWidth);
  i.onerror = () => bad(new Error('image failed to load')); i.src = %s; })"""


def check_report(browser: Browser, report: Path, screenshots: Path) -> dict[str, Any]:
    """Open a Snakemake report and every item in it; return what loaded (raises on the first failure).

    Images must decode; HTML items open as pages without console errors, their images load and their videos
    play to the end (duration and decoded frame count returned per video, with the video's bytes, for the
    caller to compare with a decoder); other items (tables) must decode from their data URI.
    """
    screenshots.mkdir(parents=True, exist_ok=True)
    main = browser.open(Path(report).resolve().as_uri())
    main.wait_for("typeof results === 'object' && document.body.innerText.length > 0")
    time.sleep(0.5)  # let React finish its first render
    main.screenshot(screenshots / "report.png")
    items = main.evaluate("Object.entries(results).map(([path, r]) => ({path, mime: r.mime_type, uri: r.data_uri}))")
    assert items, f"{report}: the report lists no results"
    summary: dict[str, Any] = {"items": {}, "videos": []}
    for item in items:
        path, mime, uri = item["path"], item["mime"], item["uri"]
        if mime.startswith("image/"):
            width = main.evaluate(LOAD_IMAGE % json.dumps(uri))
            assert width > 0, f"{path}: image has no pixels"
        elif mime == "text/html":
            page = browser.open(uri)
            images = page.evaluate(IMAGES_LOADED)
            assert all(i["ok"] for i in images), f"{path}: images failed to load: {images}"
            videos = page.evaluate(PLAY_VIDEOS, timeout=180)
            page.screenshot(screenshots / f"{Path(path).parent.name}-{Path(path).stem}.png")
            assert not page.errors(), f"{path}: console errors {page.errors()}"
            for v in videos:
                assert v["error"] is None, f"{path}: {v['error']}"
                data = base64.b64decode(v.pop("src").split(",", 1)[1])
                summary["videos"].append({"item": path, **v, "bytes": data})
        else:
            size = main.evaluate(f"fetch({json.dumps(uri)}).then(r => r.arrayBuffer()).then(b => b.byteLength)")
            assert size > 0, f"{path}: empty"
        summary["items"][path] = mime
    assert not main.errors(), f"{report}: console errors {main.errors()}"
    return summary
