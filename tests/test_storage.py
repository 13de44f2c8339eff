"""The Parquet dataset: hive layout, atomic files, schema version, and render reading it."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from servicemap import storage
from servicemap.schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY, SPAN_SCHEMA
from servicemap.sources.detect import read_file
from tests.conftest import DEMO


def test_dataset_layout_and_metadata(tmp_path: Path) -> None:
    table = read_file(DEMO)
    written = storage.write_dataset(table, tmp_path / "data")
    assert written
    for path in written:
        relative = path.relative_to(tmp_path / "data")
        assert relative.parts[0] == "spans"
        assert relative.parts[1].startswith("date=2026-11-01")
        assert relative.parts[2].startswith("hour=12")
        assert relative.name.startswith("part-") and relative.suffix == ".parquet"
        metadata = pq.read_schema(path).metadata
        assert metadata[SCHEMA_VERSION_KEY] == SCHEMA_VERSION.encode()
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    # no temporary files left behind
    assert not [p for p in (tmp_path / "data").rglob("*") if p.name.startswith(".")]
    assert storage.read_dataset(tmp_path / "data").num_rows == table.num_rows


def test_readers_skip_hidden_and_temporary_files(tmp_path: Path) -> None:
    table = read_file(DEMO)
    storage.write_dataset(table, tmp_path)
    hour = next((tmp_path / "spans").glob("date=*/hour=*"))
    (hour / ".part-half.parquet.tmp").write_bytes(b"PAR1 half written")
    (hour / "_temporary.parquet").write_bytes(b"garbage")
    assert storage.read_dataset(tmp_path).num_rows == table.num_rows


def test_render_from_dataset_equals_render_from_file(run, tmp_path: Path) -> None:
    storage.write_dataset(read_file(DEMO), tmp_path / "data")
    from_dataset = run("render", str(tmp_path / "data"))
    assert from_dataset.code == 0, from_dataset.err
    assert from_dataset.out == run("render", str(DEMO)).out
    # the spans/ folder itself, and a single Parquet file, are sources too
    assert run("render", str(tmp_path / "data" / "spans")).out == from_dataset.out


def test_dataset_and_file_sources_mix_without_double_counting(run, tmp_path: Path) -> None:
    storage.write_dataset(read_file(DEMO), tmp_path / "data")
    mixed = run("render", str(tmp_path / "data"), str(DEMO))
    assert mixed.out == run("render", str(DEMO)).out


def test_duckdb_reads_the_dataset_directly(tmp_path: Path) -> None:
    import duckdb

    storage.write_dataset(read_file(DEMO), tmp_path)
    glob = str(tmp_path / "spans" / "*" / "*" / "*.parquet")
    count, hours = duckdb.sql(
        f"SELECT count(*), count(DISTINCT hour) FROM read_parquet('{glob}', hive_partitioning=1)"
    ).fetchall()[0]
    assert count == 1724
    assert hours == 1


def test_written_schema_is_the_span_schema(tmp_path: Path) -> None:
    storage.write_dataset(read_file(DEMO), tmp_path)
    path = next((tmp_path / "spans").rglob("*.parquet"))
    assert pq.read_schema(path).remove_metadata().equals(SPAN_SCHEMA.remove_metadata())
