"""Span sources → ServiceGraph: the pairing SQL, then exact aggregation in DuckDB.

Arrow and DuckDB stop here; what leaves is the plain graph model.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from servicemap.graph import Edge, Latency, Node, Pairing, ServiceGraph, Window
from servicemap.pairing import PAIRING_COLUMNS, PAIRING_STEPS
from servicemap.schema import SpanKind, empty_span_table
from servicemap.sources import SpanSources, load_sources

log = logging.getLogger(__name__)

QUANTILES = "[0.5, 0.95, 0.99]"
KIND_PRIORITY = {"service": 0, "database": 1, "messaging": 2, "external": 3, "user": 4}
CONNECTION_PRIORITY = {"direct": 0, "database": 1, "messaging": 2, "virtual": 3}
DUCKDB_MEMORY_LIMIT = "1GB"


@dataclass(frozen=True)
class TimeRange:
    """Spans whose start is in [since, until); None leaves that side open."""

    since_ns: int | None = None
    until_ns: int | None = None


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _timestamp_ns(ns: int) -> str:
    """A literal of the span table's own type, so DuckDB can prune Parquet row groups."""
    return f"CAST(make_timestamp_ns({int(ns)}) AS TIMESTAMPTZ_NS)"


def _span_selects(con: duckdb.DuckDBPyConnection, sources: SpanSources) -> list[str]:
    columns = ", ".join(PAIRING_COLUMNS)
    selects = []
    for index, table in enumerate(sources.tables):
        name = f"source_table_{index}"
        con.register(name, table.select(list(PAIRING_COLUMNS)))
        selects.append(f"SELECT {columns} FROM {name}")
    if sources.parquet_files:
        files = ", ".join(_sql_string(str(p)) for p in sources.parquet_files)
        selects.append(
            f"SELECT {columns} FROM read_parquet([{files}], union_by_name = true, "
            "hive_partitioning = false)"
        )
    return selects


def _register_spans(
    con: duckdb.DuckDBPyConnection, sources: SpanSources, window: TimeRange
) -> None:
    if not sources.tables and not sources.parquet_files:
        sources = SpanSources(tables=[empty_span_table()])
    selects = _span_selects(con, sources)
    conditions = []
    if window.since_ns is not None:
        conditions.append(f"start_time >= {_timestamp_ns(window.since_ns)}")
    if window.until_ns is not None:
        conditions.append(f"start_time < {_timestamp_ns(window.until_ns)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    union = " UNION ALL ".join(selects)
    con.execute(f"CREATE OR REPLACE TEMP VIEW spans AS SELECT * FROM ({union}){where}")


def _latency(values: list[float] | None) -> Latency | None:
    if values is None or any(v is None for v in values):
        return None
    p50, p95, p99 = (round(v / 1e6, 3) for v in values)
    return Latency(p50, p95, p99)


def _window(con: duckdb.DuckDBPyConnection) -> Window:
    row = con.execute(
        "SELECT epoch_ns(min(start_time)), max(epoch_ns(start_time) + COALESCE(duration_ns, 0)),"
        " count(*), count(DISTINCT trace_id) FROM s"
    ).fetchone()
    assert row is not None
    start, end, spans, traces = row
    return Window(start_ns=start, end_ns=end, spans=spans, traces=traces)


def _nodes(con: duckdb.DuckDBPyConnection) -> list[Node]:
    """Services count their incoming SERVER/CONSUMER spans; other nodes their incoming calls.

    A service seen only through calls into it (HotROD's `redis-manual` has no SERVER spans)
    counts its incoming calls too, so it is not shown as idle.
    """
    incoming = f"kind IN ({int(SpanKind.SERVER)}, {int(SpanKind.CONSUMER)})"
    service_rows = con.execute(
        f"""SELECT service_name, count(*) FILTER (WHERE {incoming}),
                   count(*) FILTER (WHERE {incoming} AND failed),
                   quantile_cont(duration_ns, {QUANTILES}) FILTER (WHERE {incoming})
            FROM s GROUP BY service_name"""
    ).fetchall()
    nodes: dict[str, Node] = {
        name: Node(name, "service", requests, errors, _latency(latency))
        for name, requests, errors, latency in service_rows
    }
    call_rows = con.execute(
        f"""SELECT target, list(DISTINCT target_kind), count(*), count(*) FILTER (WHERE failed),
                   quantile_cont(latency_ns, {QUANTILES})
            FROM calls GROUP BY target"""
    ).fetchall()
    for name, kinds, calls, errors, latency in call_rows:
        kind = min(kinds, key=KIND_PRIORITY.__getitem__)
        if kind != "service" or nodes[name].requests == 0:
            nodes[name] = Node(name, kind, calls, errors, _latency(latency))
    source_rows = con.execute(
        "SELECT DISTINCT source, source_kind FROM calls WHERE source_kind <> 'service'"
    ).fetchall()
    for name, kind in sorted(source_rows, key=lambda r: KIND_PRIORITY[r[1]]):
        nodes.setdefault(name, Node(name, kind))
    return sorted(nodes.values(), key=lambda n: n.id)


def _edges(con: duckdb.DuckDBPyConnection) -> list[Edge]:
    rows = con.execute(
        f"""SELECT source, target, list(DISTINCT connection), count(*),
                   count(*) FILTER (WHERE failed),
                   quantile_cont(latency_ns, {QUANTILES}),
                   quantile_cont(server_latency_ns, {QUANTILES})
            FROM calls GROUP BY source, target"""
    ).fetchall()
    edges = [
        Edge(
            source=source,
            target=target,
            connection=min(connections, key=CONNECTION_PRIORITY.__getitem__),
            calls=calls,
            errors=errors,
            latency_ms=_latency(latency),
            server_latency_ms=_latency(server_latency),
        )
        for source, target, connections, calls, errors, latency, server_latency in rows
    ]
    return sorted(edges, key=lambda e: (e.source, e.target))


def _pairing(con: duckdb.DuckDBPyConnection) -> Pairing:
    row = con.execute("SELECT paired, virtual, orphans FROM quality").fetchone()
    assert row is not None
    return Pairing(*row)


def connect(memory_limit: str = DUCKDB_MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to a temporary directory instead of growing."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {_sql_string(memory_limit)}")
    con.execute(f"SET temp_directory = {_sql_string(tempfile.gettempdir())}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    return con


def build_graph(sources: SpanSources, window: TimeRange | None = None) -> ServiceGraph:
    """Pair and aggregate every span of the sources (inside the window) into a ServiceGraph."""
    con = connect()
    try:
        _register_spans(con, sources, window or TimeRange())
        for step in PAIRING_STEPS:
            con.execute(step)
        return ServiceGraph(
            window=_window(con),
            pairing=_pairing(con),
            nodes=tuple(_nodes(con)),
            edges=tuple(_edges(con)),
        )
    finally:
        con.close()


def build_from_paths(paths: Sequence[str | Path], window: TimeRange | None = None) -> ServiceGraph:
    """Read the sources and build their graph."""
    return build_graph(load_sources(paths), window)
