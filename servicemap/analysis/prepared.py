"""Shared ground for diff and investigate: one DuckDB connection with the pairing done.

`prepare` runs build's pairing in a connection the caller keeps, so the analyses can query the
slim spans `s` and the calls `raw_calls` after the graph is built. `register_identity` adds a
view `span_identity` with the columns pairing does not read (service.version and the user
identity attributes), windowed the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import duckdb

from servicemap import build
from servicemap.errors import UsageError
from servicemap.graph import ServiceGraph
from servicemap.pairing import span_end_ns
from servicemap.sources import SpanSources
from servicemap.timeparse import TimeRange

IDENTITY_COLUMNS = (
    "trace_id",
    "span_id",
    "service_name",
    "start_time",
    "service_version",
    "enduser_id",
    "user_id",
    "session_id",
)
# User identity attributes, most specific first: a trace's users are the values of the first
# attribute any of its spans carries.
USER_ATTRIBUTES = (
    ("enduser.id", "enduser_id"),
    ("user.id", "user_id"),
    ("session.id", "session_id"),
)
TRACE_HEX = "lpad(lower(to_hex({column})), 32, '0')"
MAX_DEPTH = 64  # recursive walks down a trace stop here, so a cyclic parent chain cannot hang


def intersect(outer: TimeRange, inner: TimeRange) -> TimeRange:
    """The part of `inner` inside `outer` (None is an open side)."""
    since = [v for v in (outer.since_ns, inner.since_ns) if v is not None]
    until = [v for v in (outer.until_ns, inner.until_ns) if v is not None]
    return TimeRange(max(since) if since else None, min(until) if until else None)


def prepare(
    con: duckdb.DuckDBPyConnection, sources: SpanSources, window: TimeRange
) -> ServiceGraph:
    """Pair the spans of the window in `con` (leaving `s`, `pairs`, `raw_calls`); the graph."""
    return build.graph_from_prepared(con, build.prepare_calls(con, sources, window))


def data_coverage(con: duckdb.DuckDBPyConnection, sources: SpanSources) -> TimeRange | None:
    """From the first span's start to the last span's end, over every span of the sources
    (no window); None when they hold no span."""
    build.register_spans(
        con, sources, TimeRange(), ("start_time", "duration_ns"), view="coverage_spans"
    )
    (row,) = con.execute(
        f"SELECT epoch_ns(min(start_time)), max({span_end_ns('greatest(duration_ns, 0)')}) "
        "FROM coverage_spans"
    ).fetchall()
    if row[0] is None:
        return None
    return TimeRange(int(row[0]), int(row[1]))


def register_identity(
    con: duckdb.DuckDBPyConnection, sources: SpanSources, window: TimeRange
) -> None:
    """A view `span_identity` (ids as in `s`) over every span of the window."""
    build.register_spans(con, sources, window, IDENTITY_COLUMNS, view="identity_spans")
    con.execute(
        "CREATE OR REPLACE TEMP VIEW span_identity AS "
        "SELECT trace_id::BIT::UHUGEINT AS trace_id, span_id::BIT::UBIGINT AS span_id, "
        "service_name, start_time, service_version, enduser_id, user_id, session_id "
        "FROM identity_spans"
    )


def no_such_service(option: str, service: str, names: Iterable[str]) -> UsageError:
    """A one-line error naming the closest names, for a service that is not in the data."""
    ids = sorted(set(names))
    close = difflib.get_close_matches(service, ids, n=5, cutoff=0.5)
    if close:
        hint = "did you mean " + ", ".join(close) + "?"
    elif ids:
        hint = f"services seen: {', '.join(ids[:8])}" + (", ..." if len(ids) > 8 else "")
    else:
        hint = "the window has no spans"
    return UsageError(f"{option}: no service {service!r} in the data; {hint}")


def kind_node(kind: str) -> str:
    """`a database node`, `an external node`: a node with no spans of its own, for an error
    that says why it cannot be followed."""
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{article} {kind} node"
