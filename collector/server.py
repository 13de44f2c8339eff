"""Collector lifecycle: replay the log, listen, and on SIGTERM/SIGINT drain, flush and exit 0.

Order matters for "nothing acknowledged is lost": the log is replayed into Parquet before the
receivers bind; on a signal the receivers stop taking requests first, requests in flight finish
(within --grace-seconds), and only then is the buffer written and the log closed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from collector.config import Config
from collector.grpc_receiver import GrpcReceiver
from collector.http_receiver import HttpReceiver
from collector.ingest import Ingest
from collector.logs import JsonFormatter, configure_logging
from collector.metrics import Metrics
from collector.sink import MemoryBudget, ParquetSink
from collector.wal import WAL_DIR, LogWriteError

logger = logging.getLogger(__name__)

__all__ = ["Collector", "JsonFormatter", "configure_logging"]


class Collector:
    """The receivers, the ingest path and the Parquet sink, wired for one run."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.budget = MemoryBudget(config.memory_limit_bytes)
        config.data.mkdir(parents=True, exist_ok=True)
        self.sink = ParquetSink(
            config.data,
            self.metrics,
            self.budget,
            fsync_always=config.fsync == "always",
            roll_bytes=config.roll_bytes,
            roll_seconds=config.roll_seconds,
        )
        self.ingest = Ingest([self.sink], self.budget, self.metrics)
        self.metrics.gauge("memory_bytes", lambda: self.budget.used)
        self.metrics.gauge("memory_peak_bytes", lambda: self.budget.peak)
        self.metrics.gauge("memory_limit_bytes", lambda: self.budget.limit)
        self.stopping = threading.Event()
        self.grpc: GrpcReceiver | None = None
        self.http: HttpReceiver | None = None

    def start(self) -> None:
        """Replay, bind both receivers (errors before anything listens), then serve."""
        replayed = self.sink.replay()
        self.sink.start()
        self.grpc = GrpcReceiver(self.config, self.ingest)
        self.http = HttpReceiver(self.config, self.ingest)
        self.grpc.start()
        self.http.start()
        if self.config.fsync == "interval":
            threading.Thread(target=self._sync_loop, name="wal-fsync", daemon=True).start()
        logger.info(
            "collector listening",
            extra={
                "fields": {
                    "event": "listening",
                    "otlp_grpc": self.grpc.address,
                    "otlp_http": self.http.address,
                    "traces_path": "/v1/traces",
                    "data": str(self.config.data),
                    "wal": str(self.config.data / WAL_DIR),
                    "fsync": self.config.fsync,
                    "memory_limit_mib": self.config.memory_limit_mib,
                    "max_request_mib": self.config.max_request_mib,
                    "roll_bytes": self.config.roll_bytes,
                    "roll_seconds": self.config.roll_seconds,
                    "replayed_spans": replayed,
                    "converter_pid": self.sink.converter_pid,
                }
            },
        )

    def _sync_loop(self) -> None:
        interval = self.config.fsync_interval_ms / 1000
        while not self.stopping.wait(interval):
            try:
                self.sink.sync()
            except LogWriteError as exc:  # the next round tries again; keep the timer alive
                logger.error("%s", exc)

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish, flush the buffer, close the log."""
        self.stopping.set()
        deadline = time.monotonic() + self.config.grace_seconds
        self.ingest.closing = True
        if self.grpc is not None:
            self.grpc.stop(self.config.grace_seconds)
        if self.http is not None:
            self.http.stop()
        drained = self.ingest.wait_idle(deadline)
        self.sink.close()
        logger.info(
            "collector stopped",
            extra={
                "fields": {
                    "event": "stopped",
                    "drained": drained,
                    "spans_accepted": self.metrics.value("spans_accepted_total"),
                    "files_written": self.metrics.value("files_written_total"),
                }
            },
        )

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop cleanly."""
        requested = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            logger.info(
                "signal received, draining",
                extra={"fields": {"event": "signal", "signal": signal.Signals(signum).name}},
            )
            requested.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not requested.wait(0.5):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
