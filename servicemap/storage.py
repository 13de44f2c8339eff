"""The Parquet dataset: `DATA/spans/date=YYYY-MM-DD/hour=HH/part-*.parquet` (DESIGN §3).

Files are written under a name starting with `.` and renamed, so readers never see half a file.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from servicemap.errors import SourceError
from servicemap.schema import SPAN_SCHEMA

SPANS_DIR = "spans"
ROW_GROUP_SIZE = 128 * 1024
NO_TIME_PARTITION = ("date=unknown", "hour=unknown")


# Min/max statistics let readers skip row groups (by start_time, trace_id, service, ...);
# on the nested columns (maps, links) nobody filters, and computing them costs the writer.
STATISTICS_COLUMNS = [field.name for field in SPAN_SCHEMA if not pa.types.is_nested(field.type)]


def parquet_writer_options() -> dict[str, object]:
    """Every writer setting in one place."""
    return {
        "compression": "zstd",
        "compression_level": 3,
        "use_dictionary": True,
        "write_statistics": STATISTICS_COLUMNS,
    }


def partitions(table: pa.Table) -> dict[tuple[str, str], pa.Table]:
    """Split a span table by the UTC date and hour of each span's start."""
    start = table.column("start_time")
    date = pc.strftime(start, format="date=%Y-%m-%d")
    hour = pc.strftime(start, format="hour=%H")
    keys = pc.binary_join_element_wise(
        pc.fill_null(date, NO_TIME_PARTITION[0]), pc.fill_null(hour, NO_TIME_PARTITION[1]), "/"
    )
    parts: dict[tuple[str, str], pa.Table] = {}
    for key in pc.unique(keys).to_pylist():
        date_part, hour_part = key.split("/")
        parts[(date_part, hour_part)] = table.filter(pc.equal(keys, key))
    return parts


def write_file(table: pa.Table, path: Path) -> None:
    """Write one Parquet file atomically: temporary dot-name, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with pq.ParquetWriter(temporary, SPAN_SCHEMA, **parquet_writer_options()) as writer:
        writer.write_table(table.cast(SPAN_SCHEMA), row_group_size=ROW_GROUP_SIZE)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_dataset(table: pa.Table, root: Path) -> list[Path]:
    """Append a span table to the dataset under `root`; returns the files written."""
    written = []
    for (date_part, hour_part), part in sorted(partitions(table).items()):
        path = root / SPANS_DIR / date_part / hour_part / f"part-{uuid.uuid4().hex}.parquet"
        write_file(part, path)
        written.append(path)
    return written


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


REQUIRED_COLUMNS = ("trace_id", "span_id", "service_name", "kind")


def check_span_file(path: Path) -> None:
    """Refuse a Parquet file that lacks the span table's key columns (another table's file
    would otherwise read as nulls)."""
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{path}: unreadable Parquet file ({exc})") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise SourceError(f"{path}: not a servicemap span file (no column {', '.join(missing)})")


def dataset_files(root: Path) -> list[Path]:
    """Every finished Parquet file under a dataset directory, in a stable order."""
    if not root.is_dir():
        raise SourceError(f"{root}: not a directory")
    files = sorted(p for p in root.rglob("*.parquet") if p.is_file() and _visible(p, root))
    if not files:
        raise SourceError(f"{root}: no Parquet files (expected a servicemap dataset)")
    return files


def read_dataset(root: Path) -> pa.Table:
    """The whole dataset as one span table (for tests and small data; the build reads files)."""
    tables = [pq.read_table(path, schema=SPAN_SCHEMA) for path in dataset_files(root)]
    return pa.concat_tables(tables) if tables else SPAN_SCHEMA.empty_table()
