"""Readers of every input: recorded trace files and servicemap's Parquet dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from servicemap import storage
from servicemap.errors import SourceError
from servicemap.schema import SPAN_SCHEMA


@dataclass
class SpanSources:
    """What the build reads: span tables from files, and Parquet files it scans itself."""

    tables: list[pa.Table] = field(default_factory=list)
    parquet_files: list[Path] = field(default_factory=list)


def load_sources(paths: Sequence[str | Path]) -> SpanSources:
    """Open every source; a directory is a Parquet dataset, a file is read by its content."""
    sources = SpanSources()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = storage.dataset_files(path)
            for file in files:
                storage.check_span_file(file)
            sources.parquet_files.extend(files)
        elif path.exists():
            # The file readers pull in protobuf; a render of a dataset alone never needs them.
            from servicemap.sources.detect import read_file

            sources.tables.append(read_file(path))
        else:
            raise SourceError(f"{path}: no such file or directory")
    if len(sources.tables) > 1:
        # The client and server halves of a shared id may sit in different files.
        from servicemap.sources.shared_ids import resolve_shared_ids

        combined = pa.concat_tables([table.cast(SPAN_SCHEMA) for table in sources.tables])
        sources.tables = [resolve_shared_ids(combined)]
    return sources
