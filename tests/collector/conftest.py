"""Start `servicemap collect` as a subprocess on free loopback ports, and always clean it up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class CollectorProcess:
    """One `servicemap collect` subprocess; ports are chosen by the OS (port 0) and read back
    from the structured start-up log, so there is no free-port race."""

    def __init__(self, data: Path, log: Path, *extra: str) -> None:
        self.data, self.log, self.extra = data, log, extra
        self.process: subprocess.Popen[bytes] | None = None
        self.grpc_port = self.http_port = 0

    def start(self) -> CollectorProcess:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "servicemap", "collect", "--data", str(self.data),
                    "--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", *self.extra,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        line = wait_for(lambda: self._listening(offset), START_TIMEOUT, "the start-up log line")
        self.grpc_port = int(line["otlp_grpc"].rsplit(":", 1)[1])
        self.http_port = int(line["otlp_http"].rsplit(":", 1)[1])
        wait_for(self._healthy, START_TIMEOUT, "/healthz")
        return self

    def _listening(self, offset: int) -> dict[str, Any] | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"collector exited early:\n{self.log_text()}")
        with open(self.log, "rb") as handle:
            handle.seek(offset)
            for raw in handle:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if entry.get("event") == "listening":
                    return dict(entry)
        return None

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def converter_pid(self) -> int:
        """The converter child's pid, from the latest start-up log line."""
        lines = [line for line in self.log_text().splitlines() if line.startswith("{")]
        listening = [entry for entry in map(json.loads, lines) if entry.get("event") == "listening"]
        return int(listening[-1]["converter_pid"])

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def metrics(self) -> dict[str, float]:
        """`/metrics` as {series: value}, label sets summed per metric name too."""
        with urllib.request.urlopen(f"{self.http_url}/metrics", timeout=5) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                series, value = line.rsplit(" ", 1)
                values[series] = float(value)
                name = series.split("{", 1)[0]
                if "{" in series:
                    values[name] = values.get(name, 0.0) + float(value)
        return values

    def terminate(self, sig: int = signal.SIGTERM) -> int:
        """Send SIGTERM (or SIGINT) and wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"collector did not stop:\n{self.log_text()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture
def start_collector(tmp_path: Path) -> Iterator[Callable[..., CollectorProcess]]:
    """`start_collector(*flags, data=...)` → a running collector; every one is killed at the end."""
    started: list[CollectorProcess] = []

    def start(*extra: str, data: Path | None = None) -> CollectorProcess:
        process = CollectorProcess(data or tmp_path / "data", tmp_path / "collector.log", *extra)
        started.append(process)
        return process.start()

    try:
        yield start
    finally:
        for process in started:
            process.kill()
