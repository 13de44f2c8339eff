"""A real headless Chromium driven over the DevTools protocol, for testing the HTML page.

Debian's `chromium` (found on PATH) is started with its own throwaway profile and
`--remote-debugging-port=0`; the port it picked is read from `DevToolsActivePort`. One
websocket (websocket-client) carries every command, in flattened session mode. Console
errors, uncaught exceptions, log errors and every network request that is not `file:`,
`data:` or `about:` are recorded while the page runs.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    def __init__(self, executable: str, profile: Path) -> None:
        import websocket  # a dev dependency; imported here so collection never needs it

        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}{path}", timeout=COMMAND_TIMEOUT_S, suppress_origin=True
        )
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One command; events that arrive meanwhile are kept in `events`."""
        message_id = next(self.ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        for seen in self.events:
            if seen["method"] == event:
                return seen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if "method" in reply:
                self.events.append(reply)
                if reply["method"] == event:
                    return reply
        raise TimeoutError(event)

    def open_page(self, url: str, width: int = 1400, height: int = 900) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def mouse(self, kind: str, x: float, y: float) -> None:
        params: dict[str, Any] = {"type": kind, "x": x, "y": y}
        if kind != "mouseMoved":
            params.update({"button": "left", "clickCount": 1})
        self.send("Input.dispatchMouseEvent", params)

    def screenshot(self, scale: float = 1.0, full_page: bool = False) -> bytes:
        """The viewport (or the whole page) as PNG, scaled down by `scale` if below 1."""
        size = self.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            if full_page
            else "[window.innerWidth, window.innerHeight]"
        )
        clip = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": scale}
        params = {"format": "png", "clip": clip, "captureBeyondViewport": full_page}
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(f"log: {params['entry'].get('text')}")
        return found

    def remote_requests(self) -> list[str]:
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event["method"] == "Network.requestWillBeSent"
            and not event["params"]["request"]["url"].startswith(LOCAL_SCHEMES)
        ]


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Width, height, channels (3 or 4) and pixel rows of an 8-bit RGB(A) non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unsupported PNG"
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                corner = previous[i - channels] if i >= channels else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def screenshot_page(page: Path, out: Path, hover: str | None, width: int, height: int) -> None:
    """The page's first screen in Chromium, the pointer on node `hover`: docs/demo-html.png."""
    import tempfile

    executable = chromium_path()
    if executable is None:
        raise SystemExit("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="servicemap-shot-") as profile:
        browser = Browser(executable, Path(profile))
        try:
            browser.open_page(page.resolve().as_uri(), width, height)
            if hover is not None:
                centre = browser.evaluate(
                    "(function (id) { var g = Array.from(document.querySelectorAll("
                    "'#map g.node')).find(function (n) { return n.dataset.id === id; });"
                    " var r = g.getBoundingClientRect();"
                    f" return [r.x + r.width / 2, r.y + r.height / 2]; }})({json.dumps(hover)})"
                )
                browser.mouse("mouseMoved", centre[0], centre[1])
            out.write_bytes(browser.screenshot())
        finally:
            browser.close()


if __name__ == "__main__":
    # .venv/bin/servicemap render fixtures/demo/traces.otlp.json --format html -o /tmp/demo.html
    # .venv/bin/python -m tests.browser /tmp/demo.html docs/demo-html.png checkout
    import sys

    arguments = sys.argv[1:]
    if len(arguments) not in (2, 3):
        raise SystemExit("usage: python -m tests.browser PAGE.html OUT.png [NODE-TO-HOVER]")
    screenshot_page(
        Path(arguments[0]),
        Path(arguments[1]),
        arguments[2] if len(arguments) == 3 else None,
        width=1680,  # the demo map fitted at its 80 % minimum, with no scroll bar
        height=900,
    )
