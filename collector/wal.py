"""Write-ahead log: a request is acknowledged only once its spans are in a log file on disk.

Layout: `DATA/_wal/<segment id>.wal` (the leading `_` keeps dataset readers out). A segment is a
sequence of frames `magic | length | crc32 | payload`, each holding an accepted request as it
came (serialized OTLP protobuf, converted in batches later, so the request path never builds
Arrow). One segment holds exactly the spans of one Parquet roll: the converter process writes
the files `part-N.parquet` from segment N's frames alone (following it while it is open,
renaming the files when the sink seals it). That gives the invariant replay relies on:

    a segment file exists  ⇔  its spans may not yet all be in renamed Parquet files;
    the Parquet files of segment N are named after N, one per date/hour partition.

A segment is deleted only after its Parquet files are renamed and their directories fsynced. On
start, every remaining segment is written again under the same names; `os.replace` overwrites
any file a crash left behind with the same rows, so nothing is lost and nothing counts twice.
A truncated or corrupt tail frame (a write cut short) ends the segment: it was never
acknowledged, because acknowledgement waits for the fsync that covers the whole frame. A write
that fails while the collector runs (a full disk) is cut back off the segment at once and the
request refused as retryable, so frames appended once there is room again stay readable.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from servicemap.errors import ServicemapError

logger = logging.getLogger(__name__)

WAL_DIR = "_wal"
SUFFIX = ".wal"
REQUEST_MAGIC = b"SMW2"  # serialized OTLP request
HEADER = struct.Struct(">4sII")  # magic, payload length, crc32 of the payload


class LogWriteError(ServicemapError):
    """A frame could not be written (disk full, I/O error); the request was not logged."""


@dataclass(frozen=True)
class Segment:
    """A closed log segment; `id` names its Parquet files."""

    id: str
    path: Path


def new_segment_id() -> str:
    """Sortable by creation time and unique across restarts (a restarted collector must never
    reuse an id whose Parquet files already exist with other rows)."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


def encode_request_frame(body: bytes) -> bytes:
    """A frame holding one accepted request, serialized OTLP protobuf as received."""
    return HEADER.pack(REQUEST_MAGIC, len(body), zlib.crc32(body)) + body


def read_frames(path: Path) -> Iterator[bytes]:
    """A segment's whole frames (request bodies), stopping at a torn or corrupt tail."""
    for _, frame in iter_frames(path):
        yield frame


def iter_frames(path: Path, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(offset after the frame, frame) from `start`, up to `end` (a frame boundary the writer
    reported) or, without `end`, to the last whole frame of a closed segment."""
    with open(path, "rb") as handle:
        handle.seek(start)
        offset = start
        while end is None or offset < end:
            header = handle.read(HEADER.size)
            if len(header) < HEADER.size:
                if header:
                    logger.warning("wal %s: truncated frame header ignored", path.name)
                return
            magic, length, crc = HEADER.unpack(header)
            known = magic == REQUEST_MAGIC
            payload = handle.read(length) if known else b""
            if not known or len(payload) < length or zlib.crc32(payload) != crc:
                logger.warning("wal %s: torn or corrupt frame, rest of segment ignored", path.name)
                return
            offset += HEADER.size + length
            yield offset, payload


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """Append frames to the current segment; `sync` is a group commit (one fsync covers every
    frame written before it, so concurrent requests share the cost)."""

    def __init__(self, root: Path) -> None:
        self.directory = root / WAL_DIR
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._segment: Segment | None = None
        self._written = 0  # bytes appended since start, over all segments
        self._durable = 0  # bytes known to be on disk
        self._closed_bytes = 0  # bytes of closed segments not yet deleted
        self._current_bytes = 0

    def pending_segments(self) -> list[Segment]:
        """Segments on disk (left by an earlier run), oldest first."""
        return [
            Segment(path.stem, path)
            for path in sorted(self.directory.glob(f"*{SUFFIX}"))
            if not path.name.startswith(".")
        ]

    def append(self, frame: bytes) -> int:
        """Write a frame to the current segment; returns the position `sync` must reach.

        Raises `LogWriteError` when the frame cannot be written (a full disk): the segment is
        cut back to its last whole frame, so the frames appended after it stay readable."""
        with self._lock:
            try:
                if self._file is None:
                    segment_id = new_segment_id()
                    path = self.directory / f"{segment_id}{SUFFIX}"
                    # Unbuffered: a failed write leaves nothing behind to be flushed later.
                    self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - until rotate()
                    self._segment = Segment(segment_id, path)
                    fsync_path(self.directory)
                view = memoryview(frame)
                while view:  # into the OS: a killed process loses nothing from here on
                    view = view[self._file.write(view) or 0 :]
            except OSError as exc:
                self._cut_back()
                raise LogWriteError(f"cannot write the log: {exc.strerror or exc}") from None
            self._written += len(frame)
            self._current_bytes += len(frame)
            return self._written

    def _cut_back(self) -> None:
        """Drop the part of a frame that a failed write left at the end of the segment."""
        if self._file is None:
            return
        try:
            os.ftruncate(self._file.fileno(), self._current_bytes)
        except OSError:
            logger.exception("wal: cannot cut a torn frame; the segment ends before it")

    def sync(self, position: int | None = None) -> None:
        """Return once every byte up to `position` (default: all written) is fsynced."""
        with self._sync_lock:
            if position is not None and self._durable >= position:
                return
            with self._lock:
                target = self._written
                fd = os.dup(self._file.fileno()) if self._file is not None else None
            if fd is not None:
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise LogWriteError(f"cannot sync the log: {exc.strerror or exc}") from None
                finally:
                    os.close(fd)
            self._durable = max(self._durable, target)

    def rotate(self) -> Segment | None:
        """Close the current segment (fsynced) and return it; None when nothing was written.
        The caller takes the matching buffer under the same lock as its appends."""
        with self._lock:
            if self._file is None or self._segment is None:
                return None
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            segment = self._segment
            self._file, self._segment = None, None
            self._closed_bytes += self._current_bytes
            self._current_bytes = 0
            self._durable = max(self._durable, self._written)
            return segment

    def delete(self, segment: Segment) -> None:
        """Forget a segment whose spans are all in renamed Parquet files."""
        size = segment.path.stat().st_size if segment.path.exists() else 0
        segment.path.unlink(missing_ok=True)
        fsync_path(self.directory)
        with self._lock:
            self._closed_bytes = max(0, self._closed_bytes - size)

    def current(self) -> tuple[Segment | None, int]:
        """The segment being appended to and its length (every frame in it is whole)."""
        with self._lock:
            return self._segment, self._current_bytes

    @property
    def bytes_on_disk(self) -> int:
        with self._lock:
            return self._closed_bytes + self._current_bytes

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
