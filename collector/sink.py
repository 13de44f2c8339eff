"""Sinks take accepted requests from the receivers. The Parquet sink is the durable one.

A sink's `add` returns once the sink holds the request safely; for `ParquetSink` that means the
request is framed into the write-ahead log as it came (fsynced when `--fsync always`), so the
receiver may acknowledge. Converting to the span table is not on the request path: the sink's
writer thread converts the logged requests in batches (`convert_serialized`, vectorised), which
is many times cheaper per span than one request at a time. Other sinks (the future
service-graph series and live map) only keep in-memory state and can hang off the same fan-out,
converting in batches the same way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from collector.metrics import Metrics
from collector.wal import Segment, WriteAheadLog, encode_request_frame, read_frames
from servicemap.schema import SPAN_SCHEMA
from servicemap.sources.otlp import convert_serialized
from servicemap.storage import SPANS_DIR, partitions, write_file

logger = logging.getLogger(__name__)

# Requests converted together: enough to amortise Arrow's per-call costs, few enough that the
# nested decode of one batch stays small next to the memory limit.
CONVERT_BATCH = 32
# Arrow span columns take about this many times a request's wire size (measured ~1.1).
TABLE_FACTOR = 1.5


def estimate_bytes(body: bytes) -> int:
    """Memory a logged request holds in the sink until its spans are in Parquet."""
    return int(len(body) * TABLE_FACTOR) + 1


class Sink(Protocol):
    """Where accepted requests go."""

    def add(self, body: bytes) -> None:
        """Take a serialized OTLP request that decoded and has valid spans; return only when it
        is safe to acknowledge. The caller has reserved `estimate_bytes(body)` of the budget;
        the sink releases it when it no longer holds the request."""

    def close(self) -> None:
        """Flush everything held and release resources."""


def convert_bodies(bodies: list[bytes]) -> Iterator[pa.Table]:
    """Span tables of logged requests, `CONVERT_BATCH` at a time."""
    for index in range(0, len(bodies), CONVERT_BATCH):
        yield convert_serialized(bodies[index : index + CONVERT_BATCH]).table


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

    def adjust(self, delta: int) -> None:
        """Correct a reservation once the real size is known (may pass the limit briefly:
        the memory is already in use, and new requests are refused until it drops)."""
        with self._lock:
            self._used = max(0, self._used + delta)
            self.peak = max(self.peak, self._used)

    @property
    def used(self) -> int:
        return self._used


def segment_file(root: Path, partition: tuple[str, str], segment: Segment) -> Path:
    """The deterministic name of a segment's file in one partition (see collector.wal)."""
    return root / SPANS_DIR / partition[0] / partition[1] / f"part-{segment.id}.parquet"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ParquetSink:
    """Log requests first, convert them in batches, and roll into Parquet by size and age.

    Appends and the segment rotation share `_lock`, so a segment and the buffer taken with it
    (converted tables plus requests not yet converted) hold the same spans; one writer thread
    converts and turns them into files named after the segment. Only that thread rotates, so a
    batch it converts outside the lock still belongs to the current segment.
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
        self._buffer: list[pa.Table] = []  # converted spans of the current segment
        self._pending: list[bytes] = []  # logged requests of the current segment, unconverted
        self._buffer_rows = 0
        self._buffer_bytes = 0  # budget held: estimates of pending requests and of tables
        self._oldest = 0.0
        self._closing = False
        self._writer: threading.Thread | None = None
        metrics.gauge("wal_bytes", lambda: self.wal.bytes_on_disk)
        metrics.gauge("buffered_spans", lambda: self._buffer_rows)
        metrics.gauge("buffered_requests", lambda: len(self._pending))

    def replay(self) -> int:
        """Write every segment an earlier run left into Parquet; returns the spans replayed."""
        spans = 0
        for segment in self.wal.pending_segments():
            tables = list(_frames_to_tables(read_frames(segment.path)))
            rows = sum(t.num_rows for t in tables)
            if rows:
                self._write(segment, pa.concat_tables(tables))
            self.wal.delete(segment)
            spans += rows
            logger.info("replayed wal segment %s: %d spans", segment.id, rows)
        return spans

    def start(self) -> None:
        self._writer = threading.Thread(target=self._run, name="parquet-writer", daemon=True)
        self._writer.start()

    def add(self, body: bytes) -> None:
        """Log the request, queue it for conversion, and wait for the fsync when `--fsync
        always`. The caller has reserved `estimate_bytes(body)`; the sink releases it once the
        spans are in a Parquet file."""
        frame = encode_request_frame(body)
        with self._lock:
            position = self.wal.append(frame)
            if not self._buffer and not self._pending:
                self._oldest = time.monotonic()
            self._pending.append(body)
            self._buffer_bytes += estimate_bytes(body)
            if len(self._pending) >= CONVERT_BATCH or self._buffer_bytes >= self.roll_bytes:
                self._wake.notify()
        if self.fsync_always:
            self.wal.sync(position)

    def _take(self) -> tuple[Segment | None, list[pa.Table], list[bytes], int]:
        segment = self.wal.rotate()
        tables, bodies, nbytes = self._buffer, self._pending, self._buffer_bytes
        self._buffer, self._pending, self._buffer_rows, self._buffer_bytes = [], [], 0, 0
        return segment, tables, bodies, nbytes

    def _due(self) -> bool:
        if not self._buffer and not self._pending:
            return False
        if self._closing or self._buffer_bytes >= self.roll_bytes:
            return True
        return time.monotonic() - self._oldest >= self.roll_seconds

    def _run(self) -> None:
        wait = min(0.25, self.roll_seconds / 4)
        while True:
            with self._lock:
                while not self._closing and not self._due() and len(self._pending) < CONVERT_BATCH:
                    if not self._wake.wait(timeout=wait) and self._pending:
                        break  # quiet: convert what there is
                if self._closing and not self._buffer and not self._pending:
                    return
                if self._due():
                    segment, tables, bodies, nbytes = self._take()
                    roll = True
                else:
                    bodies, self._pending = self._pending, []
                    roll = False
            if roll:
                self._flush(segment, tables, bodies, nbytes)
            else:
                self._convert(bodies)

    def _convert(self, bodies: list[bytes]) -> None:
        """Convert logged requests of the current segment into its buffer (writer thread)."""
        try:
            tables = list(convert_bodies(bodies))
        except Exception:
            logger.exception("converting logged requests failed; kept for the roll")
            with self._lock:
                self._pending[:0] = bodies
            return
        estimate = sum(estimate_bytes(body) for body in bodies)
        actual = sum(table.nbytes for table in tables)
        self.budget.adjust(actual - estimate)
        with self._lock:
            self._buffer.extend(tables)
            self._buffer_rows += sum(table.num_rows for table in tables)
            self._buffer_bytes += actual - estimate

    def _flush(
        self, segment: Segment | None, tables: list[pa.Table], bodies: list[bytes], nbytes: int
    ) -> None:
        try:
            if segment is not None and (tables or bodies):
                tables = tables + list(convert_bodies(bodies))
                self._write(segment, pa.concat_tables(tables))
                self.wal.delete(segment)
        except Exception:
            # The segment stays on disk and is replayed on the next start; nothing is lost.
            logger.exception("writing Parquet failed; wal segment kept for replay")
        finally:
            self.budget.release(nbytes)

    def _write(self, segment: Segment, table: pa.Table) -> None:
        directories = set()
        for partition, part in sorted(partitions(table.cast(SPAN_SCHEMA)).items()):
            path = segment_file(self.root, partition, segment)
            write_file(part, path)
            directories.add(path.parent)
            self.metrics.inc("files_written_total")
            self.metrics.inc("bytes_written_total", path.stat().st_size)
        for directory in directories:
            _fsync_dir(directory)  # the renames are durable before the segment goes

    def sync(self) -> None:
        """Group-commit fsync of the log (the `--fsync interval` timer calls this)."""
        self.wal.sync()

    def close(self) -> None:
        """Write what is buffered and stop the writer (SIGTERM path)."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        if self._writer is not None:
            self._writer.join()
        else:
            with self._lock:
                segment, tables, bodies, nbytes = self._take()
            self._flush(segment, tables, bodies, nbytes)
        self.wal.close()


def _frames_to_tables(frames: Iterable[pa.Table | bytes]) -> Iterator[pa.Table]:
    """A segment's frames as span tables, in order: request bodies converted in batches."""
    bodies: list[bytes] = []
    for frame in frames:
        if isinstance(frame, bytes):
            bodies.append(frame)
            continue
        yield from convert_bodies(bodies)
        bodies = []
        yield frame
    yield from convert_bodies(bodies)
