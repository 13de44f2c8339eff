"""Sinks take span batches from the receivers. The Parquet sink is the durable one.

A sink's `add` returns once the sink holds the batch safely; for `ParquetSink` that means the
spans are framed into the write-ahead log (fsynced when `--fsync always`), so the receiver may
acknowledge. Other sinks (the future service-graph series and live map) only keep in-memory
state and can hang off the same fan-out.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from collector.metrics import Metrics
from collector.wal import Segment, WriteAheadLog, encode_frame, read_segment
from servicemap.schema import SPAN_SCHEMA
from servicemap.storage import SPANS_DIR, partitions, write_file

logger = logging.getLogger(__name__)


class Sink(Protocol):
    """Where accepted span batches go."""

    def add(self, table: pa.Table) -> None:
        """Take a batch; return only when it is safe to acknowledge the request."""

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
    """Buffer spans, log them first, and roll the buffer into Parquet by size and age.

    Appends and the segment rotation share `_lock`, so a segment and the buffer taken with it
    hold the same spans; one writer thread turns them into files named after the segment.
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
        self._buffer: list[pa.Table] = []
        self._buffer_rows = 0
        self._buffer_bytes = 0
        self._oldest = 0.0
        self._closing = False
        self._writer: threading.Thread | None = None
        metrics.gauge("wal_bytes", lambda: self.wal.bytes_on_disk)
        metrics.gauge("buffered_spans", lambda: self._buffer_rows)

    def replay(self) -> int:
        """Write every segment an earlier run left into Parquet; returns the spans replayed."""
        spans = 0
        for segment in self.wal.pending_segments():
            tables = list(read_segment(segment.path))
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

    def add(self, table: pa.Table) -> None:
        """Log the batch, buffer it, and wait for the fsync when `--fsync always`.

        The caller has reserved `table.nbytes` in the budget; the sink releases it once the
        spans are in a Parquet file."""
        frame = encode_frame(table)
        with self._lock:
            position = self.wal.append(frame)
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append(table)
            self._buffer_rows += table.num_rows
            self._buffer_bytes += table.nbytes
            if self._buffer_bytes >= self.roll_bytes:
                self._wake.notify()
        if self.fsync_always:
            self.wal.sync(position)

    def _take(self) -> tuple[Segment | None, list[pa.Table], int]:
        segment = self.wal.rotate()
        tables, nbytes = self._buffer, self._buffer_bytes
        self._buffer, self._buffer_rows, self._buffer_bytes = [], 0, 0
        return segment, tables, nbytes

    def _due(self) -> bool:
        if not self._buffer:
            return False
        if self._closing or self._buffer_bytes >= self.roll_bytes:
            return True
        return time.monotonic() - self._oldest >= self.roll_seconds

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._due() and not self._closing:
                    self._wake.wait(timeout=min(1.0, self.roll_seconds / 4))
                if self._closing and not self._buffer:
                    return
                segment, tables, nbytes = self._take()
            self._flush(segment, tables, nbytes)

    def _flush(self, segment: Segment | None, tables: list[pa.Table], nbytes: int) -> None:
        try:
            if segment is not None and tables:
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
                segment, tables, nbytes = self._take()
            self._flush(segment, tables, nbytes)
        self.wal.close()
