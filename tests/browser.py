"""Drive Debian's headless Chromium over the DevTools protocol: load a page, wait until its rendered
text holds a string (apps such as marimo render in the browser after a websocket round trip, which
``--dump-dom`` does not wait for), return the text and a PNG screenshot."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")
        time.sleep(0.5)


#: The page's text including open shadow roots (marimo draws tables and widgets in web components).
DEEP_TEXT = """(() => { const out = []; const walk = (n) => { if (n.shadowRoot) walk(n.shadowRoot);
  for (const c of n.childNodes) { if (c.nodeType === 3) out.push(c.textContent); else if (c.nodeType === 1
  && c.tagName !== 'SCRIPT' && c.tagName !== 'STYLE') walk(c); } }; if (document.body) walk(document.body);
  return out.join(' ').replace(/\\s+/g, ' '); })()"""


def render(url: str, *, wait_for: str, timeout: float = 120.0, size: tuple[int, int] = (1400, 1600),
           steps: list[tuple[str, str]] = ()) -> tuple[str, bytes]:
    """(text of the page, shadow roots included, once it contains ``wait_for``; PNG screenshot).

    ``steps``: after that, each ``(javascript, expected)`` runs the script in the page (a user's
    typing and clicks) and waits until the text contains ``expected``."""
    import websocket

    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="lab-chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                                 f"--window-size={size[0]},{size[1]}", url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            end = time.monotonic() + timeout
            target = None
            while target is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as r:
                        pages = [t for t in json.load(r) if t.get("type") == "page"]
                        target = pages[0]["webSocketDebuggerUrl"] if pages else None
                except OSError:
                    pass
                if time.monotonic() > end:
                    raise TimeoutError("chromium's DevTools endpoint did not come up")
                time.sleep(0.3)
            ws = websocket.create_connection(target, timeout=30, suppress_origin=True)
            ids = iter(range(1, 10**6))

            def call(method: str, **params: object) -> dict:
                n = next(ids)
                ws.send(json.dumps({"id": n, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv())
                    if msg.get("id") == n:
                        return msg.get("result", {})

            for script, expected in [("", wait_for), *steps]:
                if script:
                    done = call("Runtime.evaluate", expression=script)
                    if "exceptionDetails" in done:   # a step that throws would otherwise only time out
                        raise RuntimeError(f"{url}: step failed: {done['result'].get('description')}")
                text = ""
                while expected not in text:
                    if time.monotonic() > end:
                        raise TimeoutError(f"{url}: {expected!r} did not appear within {timeout:.0f} s; "
                                           f"page text: {text[:500]!r}")
                    time.sleep(0.5)
                    got = call("Runtime.evaluate", expression=DEEP_TEXT, returnByValue=True)
                    text = got.get("result", {}).get("value") or ""
            time.sleep(1.0)   # let the last outputs paint
            text = call("Runtime.evaluate", expression=DEEP_TEXT, returnByValue=True)["result"]["value"]
            png = base64.b64decode(call("Page.captureScreenshot", format="png")["data"])
            ws.close()
            return text, png
        finally:   # chromium's helper processes share its session: stop them all
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(10)
                    break
                except subprocess.TimeoutExpired:
                    continue


def save(png: bytes, path: Path) -> Path:
    path.write_bytes(png)
    return path
