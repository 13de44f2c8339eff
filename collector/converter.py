"""The collector's side of the converter process (`collector.converter_worker`).

One child process converts logged requests and writes Parquet on another core than the
receivers. This handle starts it, writes commands to its stdin and hands every answer line to a
callback from a reader thread. The child ends when its stdin closes, so it cannot outlive the
collector, even one killed with SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STOP_SECONDS = 10.0
# glibc malloc for the converter: large blocks (Arrow buffers, decoded batches) are mapped and
# unmapped one by one instead of kept in the heap once freed, so resident memory falls back
# after every batch rather than settling at the worst batch's high-water mark.
CHILD_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": "262144"}


class ConverterProcess:
    """A running `collector.converter_worker`: `send` commands, answers go to `on_answer`,
    and `on_exit` runs once the process's stdout closes (it exited or was killed)."""

    def __init__(
        self,
        root: Path,
        on_answer: Callable[[dict[str, Any]], None],
        on_exit: Callable[[ConverterProcess], None],
    ) -> None:
        self.on_answer = on_answer
        self.on_exit = on_exit
        self.ready = threading.Event()
        self._send_lock = threading.Lock()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "collector.converter_worker",
                "--data", str(root), "--parent", str(os.getpid()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env={**os.environ, **CHILD_ENVIRONMENT},
            process_group=0,  # Ctrl-C in a terminal is the collector's to handle, not ours
        )  # fmt: skip
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._read, name="converter-answers", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                try:
                    answer = json.loads(line)
                except ValueError:
                    logger.warning("converter: unreadable answer %r", line[:200])
                    continue
                if answer.get("event") == "ready":
                    self.ready.set()
                else:
                    self.on_answer(answer)
        finally:
            self.process.wait()
            self.on_exit(self)

    def send(self, command: dict[str, Any]) -> bool:
        """Write one command; False when the process is gone (its exit callback follows)."""
        assert self.process.stdin is not None
        line = (json.dumps(command) + "\n").encode()
        with self._send_lock:
            try:
                self.process.stdin.write(line)
                self.process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return False
        return True

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ask the process to exit, close its stdin, and wait (kill after `timeout`)."""
        self.send({"op": "exit"})
        with self._send_lock:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("converter %d did not exit; killing it", self.pid)
            self.process.kill()
            self.process.wait()
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout)
