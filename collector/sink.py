"""Sinks take accepted requests from the receivers. The Parquet sink is the durable one.

A sink's `add` returns once the sink holds the request safely; for `ParquetSink` that means the
request is framed into the write-ahead log as it came (fsynced when `--fsync always`), so the
receiver may acknowledge. Converting to the span table is not on the request path, nor in this
process: a converter process (`collector.converter_worker`, on another core) follows the open
log segment, converts its requests in batches (`convert_serialized`, vectorised) and streams
them into the segment's Parquet files, which it renames when the segment is sealed. Other sinks
(the future service-graph series and live map) only keep in-memory state and can hang off the
same fan-out, converting in batches the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from collector.converter import ConverterProcess
from collector.metrics import Metrics
from collector.wal import Segment, WriteAheadLog, encode_request_frame
from servicemap.errors import ServicemapError

logger = logging.getLogger(__name__)

# Requests logged before the converter is told to take them (it converts in batches this big).
CONVERT_BATCH = 32
# Arrow span columns take about this many times a request's wire size (measured ~1.1).
TABLE_FACTOR = 1.5
# A converter that does not answer `ready` within this time is a failed start.
READY_SECONDS = 120.0
# Converter restarts within RESTART_WINDOW seconds before the next one waits RESTART_PAUSE.
RESTART_LIMIT, RESTART_WINDOW, RESTART_PAUSE = 3, 30.0, 1.0
# Request threads wait (up to BACKLOG_WAIT_SECONDS, then answer anyway) while more than
# BACKLOG_BYTES of the log are not yet converted: on a machine with few cores this hands the
# converter the CPU it needs to keep up, instead of a long flush after the load stops.
BACKLOG_BYTES = 16 * 1024 * 1024
BACKLOG_WAIT_SECONDS = 1.0
# While stopping, converter restarts allowed before the rest is left to the next start's replay.
CLOSE_RESTARTS = 3
# Conversions of one segment in a run: one that failed (a full disk) is tried again once another
# segment's files are written, at most this many times, then left for the next start's replay.
SEGMENT_ATTEMPTS = 3


def estimate_bytes(body: bytes) -> int:
    """What a logged request counts against the memory limit until its spans are in Parquet:
    its Arrow size, as if held in memory. The converter holds at most a row group of them (the
    rest wait in the log on disk), so this over-counts; it also bounds the backlog, and with
    it the time a SIGTERM flush takes."""
    return int(len(body) * TABLE_FACTOR) + 1


class Sink(Protocol):
    """Where accepted requests go."""

    def add(self, body: bytes, spans: int) -> None:
        """Take a serialized OTLP request that decoded and has `spans` valid spans; return
        only when it is safe to acknowledge. The caller has reserved `estimate_bytes(body)` of
        the budget; the sink releases it when it no longer holds the request."""

    def close(self) -> None:
        """Flush everything held and release resources."""


class MemoryBudget:
    """Bytes reserved by requests in flight and buffered spans, refused above the limit.

    It counts what the collector itself holds (request bodies, decoded tables, the Parquet
    buffer); gRPC's transport buffers and the interpreter's baseline are outside it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self.peak = 0
        self._lock = threading.Lock()

    def reserve(self, amount: int) -> bool:
        with self._lock:
            if self._used + amount > self.limit:
                return False
            self._used += amount
            self.peak = max(self.peak, self._used)
            return True

    def release(self, amount: int) -> None:
        with self._lock:
            self._used = max(0, self._used - amount)

    @property
    def used(self) -> int:
        return self._used


class ConverterFailed(ServicemapError):
    """The converter process could not be started."""


@dataclass
class _Sealed:
    """A closed segment the converter is writing: what to release once its files are in."""

    segment: Segment
    reserved: int
    spans: int
    size: int = 0  # bytes of log
    replay: bool = False
    attempts: int = 1


class ParquetSink:
    """Log requests first; the converter process turns each log segment into Parquet files.

    One segment holds one roll (by size and age): appends and the rotation share `_lock`, so the
    requests counted for a segment are exactly its frames. The segment thread tells the
    converter how far the open segment is written (every `CONVERT_BATCH` requests, or when
    quiet) and seals it when due; the converter's answer for a sealed segment (files renamed
    and fsynced) deletes the segment and releases its budget. A converter that dies is
    restarted and given every segment not yet answered again.
    """

    def __init__(
        self,
        root: Path,
        metrics: Metrics,
        budget: MemoryBudget,
        *,
        fsync_always: bool,
        roll_bytes: int,
        roll_seconds: float,
    ) -> None:
        self.root = root
        self.metrics = metrics
        self.budget = budget
        self.wal = WriteAheadLog(root)
        self.fsync_always = fsync_always
        self.roll_bytes = roll_bytes
        self.roll_seconds = roll_seconds
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # The open segment: requests, budget reserved for them, their spans, oldest append, and
        # requests the converter has not been told about.
        self._requests = self._reserved = self._spans = self._unsent = 0
        self._oldest = 0.0
        self._sealed: dict[str, _Sealed] = {}  # closed segments awaiting the converter
        self._failed: dict[str, _Sealed] = {}  # their conversion failed: to try again
        self._retry = False  # a segment's files were written since a conversion failed
        self._converted = ("", 0)  # (open segment, bytes of it the converter has converted)
        self._replayed = 0
        self._closing = False
        self._writer: threading.Thread | None = None
        self._converter: ConverterProcess | None = None
        self._spawn_lock = threading.Lock()
        self._starts: list[float] = []
        self._close_restarts = 0
        metrics.gauge("wal_bytes", lambda: self.wal.bytes_on_disk)
        metrics.gauge("buffered_spans", self._buffered_spans)

    def _buffered_spans(self) -> int:
        with self._lock:
            return self._spans + sum(sealed.spans for sealed in self._sealed.values())

    @property
    def converter_pid(self) -> int | None:
        converter = self._converter
        return converter.pid if converter is not None else None

    # The converter process.

    def _ensure_converter(self) -> ConverterProcess | None:
        """The running converter, started (and given every unanswered segment) if it is not.
        None once stopping has used up its restarts."""
        with self._spawn_lock:
            converter = self._converter
            if converter is not None:
                return converter
            if self._closing:
                if self._close_restarts >= CLOSE_RESTARTS:
                    return None
                self._close_restarts += 1
            now = time.monotonic()
            self._starts = [t for t in self._starts if now - t < RESTART_WINDOW]
            if len(self._starts) >= RESTART_LIMIT:
                time.sleep(RESTART_PAUSE)
            self._starts.append(time.monotonic())
            converter = ConverterProcess(self.root, self._on_answer, self._on_exit)
            if not _wait_ready(converter):
                converter.stop(0)
                raise ConverterFailed("the converter process did not start (see its log above)")
            with self._lock:
                self._converter = converter
                commands = [_seal_command(sealed.segment) for sealed in self._sealed.values()]
                segment, end = self.wal.current()
                if segment is not None and self._requests:
                    commands.append(_data_command(segment, end))
                    self._unsent = 0
            for command in commands:
                converter.send(command)
            return converter

    def _on_exit(self, converter: ConverterProcess) -> None:
        with self._lock:
            if self._converter is not converter:
                return
            self._converter = None
            self._wake.notify_all()
        code = converter.process.returncode
        logger.error("converter process %d exited (code %s); restarting it", converter.pid, code)

    def _backlog(self) -> int:
        """Bytes of log not yet converted (under `_lock`)."""
        segment, end = self.wal.current()
        converted_id, offset = self._converted
        if segment is not None and segment.id == converted_id:
            end -= offset
        return end + sum(sealed.size for sealed in self._sealed.values())

    def _on_answer(self, answer: dict[str, Any]) -> None:
        if "progress" in answer:
            with self._lock:
                self._converted = (str(answer["progress"]), int(answer.get("offset", 0)))
                self._wake.notify_all()
            return
        segment_id = answer.get("done") or answer.get("failed")
        with self._lock:
            sealed = self._sealed.get(str(segment_id))
        if sealed is None:
            return
        done = "done" in answer
        again = not done and sealed.attempts < SEGMENT_ATTEMPTS and not sealed.replay
        if done:
            self.wal.delete(sealed.segment)
            self.metrics.inc("files_written_total", int(answer.get("files", 0)))
            self.metrics.inc("bytes_written_total", int(answer.get("bytes", 0)))
        else:
            # The segment stays on disk: tried again after the next segment that works (the
            # disk has room again), else replayed on the next start; nothing is lost.
            logger.error(
                "writing Parquet for wal segment %s failed (%s); %s",
                segment_id,
                answer.get("error"),
                "to try again" if again else "kept for replay on the next start",
            )
        with self._lock:
            self._sealed.pop(sealed.segment.id, None)
            if done:
                self._retry = bool(self._failed)
                if sealed.replay:
                    self._replayed += int(answer.get("rows", 0))
                    logger.info("replayed wal segment %s: %s spans", segment_id, answer.get("rows"))
            elif again:
                self._failed[sealed.segment.id] = sealed
            self._wake.notify_all()
        self.budget.release(sealed.reserved)
        sealed.reserved = 0

    # Lifecycle.

    def replay(self) -> int:
        """Write every segment an earlier run left into Parquet; returns the spans replayed."""
        segments = self.wal.pending_segments()
        if not segments:
            return 0
        with self._lock:
            for segment in segments:
                self._sealed[segment.id] = _Sealed(segment, 0, 0, replay=True)
        self._ensure_converter()  # sends every sealed segment
        with self._lock:
            while self._sealed:
                if self._converter is None:
                    self._lock.release()
                    try:
                        self._ensure_converter()
                    finally:
                        self._lock.acquire()
                    continue
                self._wake.wait(0.5)
            return self._replayed

    def start(self) -> None:
        """Start the converter (an error if it cannot run) and the segment thread."""
        self._ensure_converter()
        self._writer = threading.Thread(target=self._run, name="wal-segments", daemon=True)
        self._writer.start()

    def add(self, body: bytes, spans: int = 0) -> None:
        """Log the request and wait for the fsync when `--fsync always`. The caller has
        reserved `estimate_bytes(body)`; the sink releases it once the spans are in Parquet."""
        frame = encode_request_frame(body)
        with self._lock:
            position = self.wal.append(frame)
            if not self._requests:
                self._oldest = time.monotonic()
            self._requests += 1
            self._reserved += estimate_bytes(body)
            self._spans += spans
            self._unsent += 1
            if self._unsent >= CONVERT_BATCH or self._reserved >= self.roll_bytes:
                self._wake.notify_all()
        if self.fsync_always:
            self.wal.sync(position)
        with self._lock:
            deadline = time.monotonic() + BACKLOG_WAIT_SECONDS
            while self._backlog() > BACKLOG_BYTES and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)

    def _due(self) -> bool:
        if not self._requests:
            return False
        if self._closing or self._reserved >= self.roll_bytes:
            return True
        return time.monotonic() - self._oldest >= self.roll_seconds

    def _seal(self) -> dict[str, Any] | None:
        """Close the open segment (under `_lock`) and hand it over; its seal command."""
        _, size = self.wal.current()
        segment = self.wal.rotate()
        reserved, spans = self._reserved, self._spans
        self._requests = self._reserved = self._spans = self._unsent = 0
        if segment is None:
            self.budget.release(reserved)
            return None
        self._sealed[segment.id] = _Sealed(segment, reserved, spans, size)
        return _seal_command(segment)

    def _retry_failed(self) -> list[dict[str, Any]]:
        """Hand the segments whose conversion failed to the converter again (under `_lock`)."""
        self._retry = False
        commands = []
        for segment_id, sealed in list(self._failed.items()):
            del self._failed[segment_id]
            sealed.attempts += 1
            self._sealed[segment_id] = sealed
            commands.append(_seal_command(sealed.segment))
            logger.info("trying wal segment %s again (attempt %d)", segment_id, sealed.attempts)
        return commands

    def _run(self) -> None:
        """Tell the converter what is written, seal segments when due, and on close wait
        until every sealed segment is answered."""
        wait = min(0.25, self.roll_seconds / 4)
        while True:
            with self._lock:
                busy = bool(self._requests or self._sealed)
                converter = self._converter
            if converter is None and busy:
                try:
                    converter = self._ensure_converter()
                except ConverterFailed:
                    logger.exception("cannot start the converter process")
                    converter = None
                    if not self._closing:
                        time.sleep(RESTART_PAUSE)
                        continue
                if converter is None:
                    logger.error("converter keeps failing; the log is left for the next start")
                    return
            command = None
            retries: list[dict[str, Any]] = []
            with self._lock:
                quiet = False
                while self._converter is converter:
                    if self._retry and not self._closing:
                        retries = self._retry_failed()
                        break
                    if self._due():
                        command = self._seal()
                        break
                    if self._unsent >= CONVERT_BATCH or (self._unsent and quiet):
                        segment, end = self.wal.current()
                        self._unsent = 0
                        if segment is not None:
                            command = _data_command(segment, end)
                        break
                    if self._closing and not self._sealed and not self._requests:
                        return
                    quiet = not self._wake.wait(timeout=wait)
            if converter is not None:
                for sent in [*retries, *([command] if command is not None else [])]:
                    converter.send(sent)  # if it is gone, its restart sends this again

    def sync(self) -> None:
        """Group-commit fsync of the log (the `--fsync interval` timer calls this)."""
        self.wal.sync()

    def close(self) -> None:
        """Write what is logged into Parquet, stop the converter, close the log (SIGTERM)."""
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        try:
            if self._writer is not None:
                self._writer.join()
            elif self._requests or self._sealed:
                self._run()
        finally:
            with self._spawn_lock:
                converter, self._converter = self._converter, None
            if converter is not None:
                converter.stop()
            self.wal.close()


def _wait_ready(converter: ConverterProcess) -> bool:
    deadline = time.monotonic() + READY_SECONDS
    while not converter.ready.wait(0.1):
        if not converter.alive() or time.monotonic() > deadline:
            return False
    return True


def _seal_command(segment: Segment) -> dict[str, Any]:
    return {"op": "seal", "id": segment.id, "path": str(segment.path)}


def _data_command(segment: Segment, end: int) -> dict[str, Any]:
    return {"op": "data", "id": segment.id, "path": str(segment.path), "end": end}
