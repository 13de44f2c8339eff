"""Span sources → ServiceGraph: the pairing SQL, then exact aggregation in DuckDB.

Arrow and DuckDB stop here; what leaves is the plain graph model.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, cast

import duckdb

from servicemap import pairing
from servicemap.graph import Edge, Latency, Node, NodeKind, Pairing, ServiceGraph, Window
from servicemap.pairing import PAIRING_COLUMNS
from servicemap.schema import empty_span_table
from servicemap.sources import SpanSources
from servicemap.timeparse import TimeRange

log = logging.getLogger(__name__)

KIND_PRIORITY = {"service": 0, "database": 1, "messaging": 2, "external": 3, "user": 4}
CONNECTION_PRIORITY = {"direct": 0, "database": 1, "messaging": 2, "virtual": 3}
USER_NODE = "user"
USER_NODE_BESIDE_SERVICE = "user (virtual)"
DUCKDB_MEMORY_LIMIT = "350MB"


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _timestamp_ns(ns: int) -> str:
    """A literal of the span table's own type, so DuckDB can prune Parquet row groups."""
    return f"CAST(make_timestamp_ns({int(ns)}) AS TIMESTAMPTZ_NS)"


def window_condition(window: TimeRange) -> str:
    """SQL over `start_time` for spans in [since, until); TRUE when the window is open."""
    conditions = []
    if window.since_ns is not None:
        conditions.append(f"start_time >= {_timestamp_ns(window.since_ns)}")
    if window.until_ns is not None:
        conditions.append(f"start_time < {_timestamp_ns(window.until_ns)}")
    return " AND ".join(conditions) or "TRUE"


def register_spans(
    con: duckdb.DuckDBPyConnection,
    sources: SpanSources,
    window: TimeRange,
    columns: Sequence[str] = PAIRING_COLUMNS,
    view: str = "spans",
) -> None:
    """A view of `columns` over every span of the sources inside the window."""
    if not sources.tables and not sources.parquet_files:
        sources = SpanSources(tables=[empty_span_table()])
    names = ", ".join(columns)
    selects = []
    for index, table in enumerate(sources.tables):
        table_name = f"{view}_table_{index}"
        con.register(table_name, table.select(list(columns)))
        selects.append(f"SELECT {names} FROM {table_name}")
    if sources.parquet_files:
        files = ", ".join(sql_string(str(p)) for p in sources.parquet_files)
        selects.append(
            f"SELECT {names} FROM read_parquet([{files}], union_by_name = true, "
            "hive_partitioning = false)"
        )
    union = " UNION ALL ".join(selects)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM ({union}) "
        f"WHERE {window_condition(window)}"
    )


def _latency(values: list[float] | None) -> Latency | None:
    if values is None or any(v is None for v in values):
        return None
    p50, p95, p99 = (round(v / 1e6, 3) for v in values)
    return Latency(p50, p95, p99)


def _graph(
    span_rows: list[tuple[Any, ...]],
    call_rows: list[tuple[Any, ...]],
    traces: int,
    quality: tuple[int, int, int],
) -> ServiceGraph:
    """The few aggregate rows → the graph model; virtual names that are services resolve here.

    A service counts its incoming SERVER/CONSUMER spans; other nodes their incoming calls. A
    service seen only through calls into it (HotROD's `redis-manual` has no SERVER spans)
    counts its incoming calls too, so it is not shown as idle.
    """
    starts = [row[4] for row in span_rows if row[4] is not None]
    ends = [row[5] for row in span_rows if row[5] is not None]
    window = Window(
        start_ns=min(starts) if starts else None,
        end_ns=max(ends) if ends else None,
        spans=sum(row[6] for row in span_rows),
        traces=traces,
    )
    services = {row[0] for row in span_rows}
    nodes: dict[str, Node] = {
        name: Node(name, "service", requests, errors, _latency(latency), namespace=namespace)
        for name, requests, errors, latency, *_, namespace in span_rows
    }
    edges: list[Edge] = []
    callers: set[tuple[str, str]] = set()
    for per_target, source, target, source_kinds, target_kinds, connections, *stats in call_rows:
        calls, errors, latency, server_latency = stats
        if per_target:
            kinds = ["service"] if target in services else target_kinds
            kind = cast(NodeKind, min(kinds, key=KIND_PRIORITY.__getitem__))
            if kind != "service" or nodes[target].requests == 0:
                namespace = nodes[target].namespace if target in nodes else None
                nodes[target] = Node(
                    target, kind, calls, errors, _latency(latency), namespace=namespace
                )
            continue
        if source not in services:
            callers.update((source, kind) for kind in source_kinds if kind != "service")
        edges.append(
            Edge(
                source=source,
                target=target,
                connection=min(connections, key=CONNECTION_PRIORITY.__getitem__),
                calls=calls,
                errors=errors,
                latency_ms=_latency(latency),
                server_latency_ms=_latency(server_latency),
            )
        )
    for name, caller_kind in sorted(callers, key=lambda caller: KIND_PRIORITY[caller[1]]):
        nodes.setdefault(name, Node(name, cast(NodeKind, caller_kind)))
    return ServiceGraph(
        window=window,
        pairing=Pairing(*quality),
        nodes=tuple(sorted(nodes.values(), key=lambda n: n.id)),
        edges=tuple(sorted(edges, key=lambda e: (e.source, e.target))),
    )


def connect(memory_limit: str = DUCKDB_MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to a temporary directory instead of growing."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {sql_string(memory_limit)}")
    con.execute(f"SET temp_directory = {sql_string(tempfile.gettempdir())}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB draws its progress bar on stdout, where `render -o -` writes the map.
    con.execute("SET enable_progress_bar = false")
    return con


def prepare_calls(
    con: duckdb.DuckDBPyConnection, sources: SpanSources, window: TimeRange | None = None
) -> int:
    """Run the pairing in `con`, leaving `s`, `pairs` and `raw_calls`; returns the trace count."""
    register_spans(con, sources, window or TimeRange())
    con.execute(pairing.SLIM_SPANS)
    row = con.execute(pairing.REPEATED_IDS).fetchone()
    assert row is not None
    repeated, traces = row
    con.execute(pairing.DEDUPLICATED_SPANS if repeated else pairing.PLAIN_SPANS)
    for step in pairing.PAIRING_STEPS:
        con.execute(step)
    if repeated:
        traces_row = con.execute(pairing.TRACES).fetchone()
        assert traces_row is not None
        traces = traces_row[0]
    return int(traces)


def build_graph(
    sources: SpanSources,
    window: TimeRange | None = None,
    after_pairing: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> ServiceGraph:
    """Pair and aggregate every span of the sources (inside the window) into a ServiceGraph.

    `after_pairing` runs on the connection once the pairing's tables exist (`s`, `pairs`,
    `raw_calls`): the SLO meter counts its windows there without pairing twice.
    """
    con = connect()
    try:
        traces = prepare_calls(con, sources, window)
        if after_pairing is not None:
            after_pairing(con)
        return graph_from_prepared(con, traces)
    finally:
        con.close()


def graph_from_prepared(con: duckdb.DuckDBPyConnection, traces: int) -> ServiceGraph:
    """The graph of a connection on which `prepare_calls` has run."""
    quality = con.execute(pairing.QUALITY).fetchone()
    assert quality is not None
    span_rows = con.execute(pairing.SPAN_STATS).fetchall()
    if any(row[0] == USER_NODE for row in span_rows):
        # A service is called "user" (Sock Shop has one): the virtual caller must not merge
        # into it, nor its own root requests vanish as a self-edge.
        con.execute(
            f"UPDATE raw_calls SET source = {sql_string(USER_NODE_BESIDE_SERVICE)} "
            "WHERE source_kind = 'user'"
        )
    call_rows = con.execute(pairing.CALL_STATS).fetchall()
    return _graph(span_rows, call_rows, traces, cast(tuple[int, int, int], quality))
