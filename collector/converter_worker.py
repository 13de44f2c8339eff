"""The converter process: logged requests → the Parquet files of their log segment (DESIGN §8).

The collector starts it as `python -m collector.converter_worker --data DIR --parent PID`, so
conversion and Parquet writing run on another core than the receivers. Commands come on stdin,
one JSON object a line:

    {"op": "data", "id": ID, "path": P, "end": N}   segment ID holds whole frames up to byte N:
                                                    convert them now, streaming into its files
    {"op": "seal", "id": ID, "path": P}             segment ID is closed: convert the rest,
                                                    close, fsync and rename its files, answer
    {"op": "exit"}

and answers on stdout: `{"event": "ready"}` once, `{"progress": ID, "offset": N}` after each
`data` command, and `{"done": ID, "rows": R, "files": F, "bytes": B}` once a sealed segment's
files are renamed and their directories fsynced (the collector deletes the segment only then),
or `{"failed": ID, "error": …}`.

Files are written under temporary names (`.part-ID.parquet.PID.tmp`) and renamed at the seal
to the segment's deterministic names (`collector.wal`), so a segment converted twice (a crash
between the rename and the segment's deletion, or an old converter still finishing) leaves
the same files with the same rows. Memory stays small whatever the backlog: requests are
converted `CONVERT_BATCH` (or `CONVERT_BATCH_BYTES`) at a time and written out as row groups
of at most `ROW_GROUP_BYTES` per segment.

SIGINT and SIGTERM are ignored (the collector runs it in its own process group too): the
process ends at once when stdin reaches end of file (the collector exited or was killed):
what it was writing is temporary, and the restarted collector converts the segment again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from collector.logs import configure_logging
from collector.wal import fsync_path, iter_frames
from servicemap.schema import SPAN_SCHEMA
from servicemap.sources.otlp import convert_serialized
from servicemap.storage import ROW_GROUP_SIZE, SPANS_DIR, parquet_writer_options, partitions

logger = logging.getLogger("collector.converter")

# Requests converted together: enough to amortise Arrow's per-call costs, few enough that the
# nested decode of one batch stays small.
CONVERT_BATCH = 32
CONVERT_BATCH_BYTES = 3 * 1024 * 1024
# Converted spans held before they are written as row groups (all partitions of a segment).
ROW_GROUP_BYTES = 8 * 1024 * 1024
# How often an idle converter checks that the collector is still its parent.
PARENT_CHECK_SECONDS = 1.0


def segment_file(root: Path, partition: tuple[str, str], segment_id: str) -> Path:
    """The deterministic name of a segment's file in one partition (see collector.wal)."""
    return root / SPANS_DIR / partition[0] / partition[1] / f"part-{segment_id}.parquet"


def hour_partitions(table: pa.Table) -> dict[tuple[str, str], pa.Table]:
    """`storage.partitions` (UTC date and hour of each span's start) by integer hours: the
    strftime of every span costs more than converting it. Falls back to `partitions` for
    spans without a start or outside what `datetime` can name."""
    start = table.column("start_time")
    if start.null_count:
        return partitions(table)
    hours = np.floor_divide(
        start.cast(pa.int64()).to_numpy(zero_copy_only=False), NS_PER_HOUR
    ).astype(np.int64)
    first = int(hours[0]) if len(hours) else 0
    try:
        if len(hours) == 0 or bool((hours == first).all()):
            return {_hour_key(first): table} if len(hours) else {}
        return {
            _hour_key(int(hour)): table.filter(pa.array(hours == hour))
            for hour in np.unique(hours).tolist()
        }
    except (OverflowError, ValueError, OSError):
        return partitions(table)


NS_PER_HOUR = 3_600_000_000_000


def _hour_key(hour: int) -> tuple[str, str]:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
    return f"date={moment:%Y-%m-%d}", f"hour={moment:%H}"


class _PartFile:
    """One partition's file of a segment, written row group by row group under a temporary
    name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.pending: list[pa.Table] = []
        self.writer: pq.ParquetWriter | None = None

    def write_pending(self) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.pending = []
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.temporary, SPAN_SCHEMA, **parquet_writer_options())
        self.writer.write_table(table, row_group_size=ROW_GROUP_SIZE)

    def finish(self) -> int:
        """Close, fsync and rename; returns the file's size."""
        self.write_pending()
        assert self.writer is not None
        self.writer.close()
        self.writer = None
        fsync_path(self.temporary)
        os.replace(self.temporary, self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        self.pending = []
        if self.writer is not None:
            with contextlib.suppress(Exception):  # the file is dropped anyway
                self.writer.close()
            self.writer = None
        self.temporary.unlink(missing_ok=True)


class SegmentWriter:
    """The files of one log segment, fed as its frames arrive and finished at the seal."""

    def __init__(self, root: Path, segment_id: str, path: Path) -> None:
        self.root, self.id, self.path = root, segment_id, path
        self.offset = 0  # frames before this byte are converted
        self.rows = 0
        self.parts: dict[tuple[str, str], _PartFile] = {}
        self._pending_bytes = 0

    def feed(self, end: int | None) -> None:
        """Convert the frames from where the last call stopped up to `end` (None: to the last
        whole frame, for a closed segment)."""
        bodies: list[bytes] = []
        size = 0
        for offset, frame in iter_frames(self.path, self.offset, end):
            bodies.append(frame)
            size += len(frame)
            if len(bodies) >= CONVERT_BATCH or size >= CONVERT_BATCH_BYTES:
                self._add(convert_serialized(bodies).table)
                bodies, size = [], 0
            self.offset = offset
        if bodies:
            self._add(convert_serialized(bodies).table)

    def _add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.rows += table.num_rows
        for partition, part in hour_partitions(table).items():
            if partition not in self.parts:
                self.parts[partition] = _PartFile(segment_file(self.root, partition, self.id))
            self.parts[partition].pending.append(part)
            self._pending_bytes += part.nbytes
        if self._pending_bytes >= ROW_GROUP_BYTES:
            self._write_pending()

    def _write_pending(self) -> None:
        for part in self.parts.values():
            part.write_pending()
        self._pending_bytes = 0

    def finish(self) -> tuple[int, int]:
        """Convert the rest, then rename every file and fsync the directories: (files,
        bytes)."""
        self.feed(None)
        sizes = [part.finish() for _, part in sorted(self.parts.items())]
        for directory in {part.path.parent for part in self.parts.values()}:
            fsync_path(directory)
        return len(sizes), sum(sizes)

    def abort(self) -> None:
        for part in self.parts.values():
            part.abort()


def convert_segment(root: Path, segment_id: str, path: Path) -> tuple[int, int, int]:
    """A closed segment's files in one go: (rows, files, bytes)."""
    writer = SegmentWriter(root, segment_id, path)
    try:
        files, size = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return writer.rows, files, size


def remove_stale_temporaries(root: Path) -> None:
    """Temporary files of converters that are gone (killed while writing)."""
    for path in (root / SPANS_DIR).glob("*/*/.part-*.tmp"):
        pid_text = path.name.rsplit(".", 2)[-2]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


class Converter:
    """The command loop: segments in progress by id, answers on `out`."""

    def __init__(self, root: Path, out: IO[str]) -> None:
        self.root = root
        self.out = out
        self.segments: dict[str, SegmentWriter] = {}
        self.failed: dict[str, str] = {}

    def answer(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def handle(self, command: dict[str, Any]) -> bool:
        """Run one command; False for exit."""
        op = command.get("op")
        if op == "exit":
            return False
        segment_id, path = str(command["id"]), Path(command["path"])
        writer = self.segments.get(segment_id)
        if writer is None and segment_id not in self.failed:
            writer = self.segments[segment_id] = SegmentWriter(self.root, segment_id, path)
        try:
            if writer is not None and op == "data":
                writer.feed(int(command["end"]))
                self.answer({"progress": segment_id, "offset": writer.offset})
            elif writer is not None and op == "seal":
                files, size = writer.finish()
                del self.segments[segment_id]
                self.answer(
                    {"done": segment_id, "rows": writer.rows, "files": files, "bytes": size}
                )
        except Exception as exc:
            logger.exception("converting wal segment %s failed; kept for replay", segment_id)
            assert writer is not None
            writer.abort()
            self.segments.pop(segment_id, None)
            self.failed[segment_id] = f"{type(exc).__name__}: {exc}"
        if op == "seal" and segment_id in self.failed:
            self.answer({"failed": segment_id, "error": self.failed.pop(segment_id)})
        return True


def coalesce(commands: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Commands in order, without a `data` command that a later one for its segment covers."""
    for index, command in enumerate(commands):
        if command.get("op") == "data" and any(
            later.get("id") == command.get("id") for later in commands[index + 1 :]
        ):
            continue
        yield command


def _read_commands(stream: IO[bytes], commands: queue.Queue[dict[str, Any]]) -> None:
    """Stdin → `commands`; end of file means the collector is gone: stop at once."""
    for line in stream:
        if line.strip():
            commands.put(json.loads(line))
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    # Stopping is the collector's call: it drains, then says "exit" or closes stdin. A signal to
    # the whole group (a service manager stopping the cgroup) must not cut a conversion short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging()
    # Freed Arrow memory goes back to the system between batches rather than staying resident.
    pa.set_memory_pool(pa.system_memory_pool())
    remove_stale_temporaries(args.data)
    commands: queue.Queue[dict[str, Any]] = queue.Queue()
    threading.Thread(
        target=_read_commands, args=(sys.stdin.buffer, commands), name="commands", daemon=True
    ).start()
    converter = Converter(args.data, sys.stdout)
    converter.answer({"event": "ready", "pid": os.getpid()})
    while True:
        try:
            batch = [commands.get(timeout=PARENT_CHECK_SECONDS)]
        except queue.Empty:
            if os.getppid() != args.parent:
                os._exit(0)  # the collector is gone (stdin's end of file should have said so)
            continue
        while True:
            try:
                batch.append(commands.get_nowait())
            except queue.Empty:
                break
        for command in coalesce(batch):
            if not converter.handle(command):
                # Everything answered is written and renamed. Exit at once: the reader thread
                # holds stdin's lock, and a normal interpreter exit waits a second for it.
                sys.stdout.flush()
                os._exit(0)


if __name__ == "__main__":
    main()
