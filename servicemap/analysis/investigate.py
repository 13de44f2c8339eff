"""Investigate one service: its neighbourhood, where its errors start, what makes it slow, who
is affected (DESIGN §7, `servicemap investigate`).

Counting rules:
- S's failed requests are its SERVER and CONSUMER spans with status ERROR; a failed retry is
  another failed request.
- Each failed request is followed down its trace through failing children only; the deepest
  failing span (the last to start among equally deep ones: the attempt whose error propagated)
  is where that request's error starts. Its service is the origin; the origin edge is the call
  into that service (or, for a failing client call that reached no instrumented server, the
  call out of it to the database or external node).
- Slow requests are S's incoming spans at or above S's p95 (the slowest `MAX_SLOW` of them);
  their critical paths (the chain of spans each request waited on) are split by service.
- Affected users: the distinct users in traces where S failed, and in all traces of the window.
  A trace's users are the values of its first identity attribute present, in the order
  enduser.id, user.id, session.id.

The heavy lifting is SQL over the slim spans; Python only walks the few slow requests' spans.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb
import networkx as nx

from servicemap.analysis.focus import keep_nodes
from servicemap.analysis.prepared import (
    MAX_DEPTH,
    TRACE_HEX,
    USER_ATTRIBUTES,
    no_such_service,
    prepare,
    register_identity,
)
from servicemap.build import connect, sql_string
from servicemap.errors import UsageError
from servicemap.graph import ServiceGraph
from servicemap.pairing import K_CLIENT, K_CONSUMER, K_SERVER
from servicemap.sources import SpanSources
from servicemap.timeparse import TimeRange

EXAMPLES = 3
MAX_SLOW = 200
INCOMING = f"kind IN ({K_SERVER}, {K_CONSUMER})"


@dataclass(frozen=True)
class Origin:
    service: str
    failed_requests: int
    share: float
    example_traces: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "failed_requests": self.failed_requests,
            "share": self.share,
            "example_traces": list(self.example_traces),
        }


@dataclass(frozen=True)
class OriginEdge:
    source: str
    target: str
    failed_requests: int
    share: float
    example_traces: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "failed_requests": self.failed_requests,
            "share": self.share,
            "example_traces": list(self.example_traces),
        }


@dataclass(frozen=True)
class Contributor:
    service: str
    critical_path_ms: float  # mean time on the critical path per slow request
    share: float
    example_traces: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "critical_path_ms": self.critical_path_ms,
            "share": self.share,
            "example_traces": list(self.example_traces),
        }


@dataclass(frozen=True)
class AffectedUsers:
    failing: int
    total: int
    by_attribute: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: tuple[str, ...] = ()

    @property
    def share(self) -> float | None:
        return round(self.failing / self.total, 6) if self.total else None

    def to_json(self) -> dict[str, Any]:
        return {
            "failing": self.failing,
            "total": self.total,
            "share": self.share,
            "by_attribute": self.by_attribute,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class Investigation:
    service: str
    depth: int
    requests: int
    failed_requests: int
    upstream: dict[str, int]  # caller → hops
    downstream: dict[str, int]  # dependency → hops
    error_origins: tuple[Origin, ...]
    origin_edges: tuple[OriginEdge, ...]
    p95_ms: float | None
    slow_requests: int
    latency_contributors: tuple[Contributor, ...]
    affected_users: AffectedUsers
    graph: ServiceGraph  # the whole map of the window
    neighbourhood: ServiceGraph  # S within `depth` hops, plus the origin paths

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "window": self.graph.window.to_json(),
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "neighbourhood": {
                "depth": self.depth,
                "upstream": [{"service": s, "hops": h} for s, h in self.upstream.items()],
                "downstream": [{"service": s, "hops": h} for s, h in self.downstream.items()],
            },
            "error_origins": [o.to_json() for o in self.error_origins],
            "error_origin_edges": [e.to_json() for e in self.origin_edges],
            "latency": {"p95_ms": self.p95_ms, "slow_requests": self.slow_requests},
            "latency_contributors": [c.to_json() for c in self.latency_contributors],
            "affected_users": self.affected_users.to_json(),
        }


def _hops(graph: ServiceGraph, service: str, depth: int) -> tuple[dict[str, int], dict[str, int]]:
    digraph = nx.DiGraph()
    digraph.add_nodes_from(n.id for n in graph.nodes)
    digraph.add_edges_from((e.source, e.target) for e in graph.edges)
    down = nx.single_source_shortest_path_length(digraph, service, cutoff=depth)
    up = nx.single_source_shortest_path_length(digraph.reverse(copy=False), service, cutoff=depth)

    def ordered(found: dict[str, int]) -> dict[str, int]:
        return {
            k: v for k, v in sorted(found.items(), key=lambda kv: (kv[1], kv[0])) if k != service
        }

    return ordered(up), ordered(down)


# The failing chains below each of S's failed requests, and the deepest span of each.
ORIGINS = f"""
CREATE OR REPLACE TEMP TABLE origin_rows AS
WITH RECURSIVE failed_requests AS (
    -- the caller: a Zipkin client half sharing the span's id, else the parent's service
    SELECT r.trace_id, r.span_id, r.service_name, r.kind, r.start_time,
           COALESCE(
               (SELECT min(h.service_name) FROM s AS h
                WHERE h.trace_id = r.trace_id AND h.span_id = r.span_id
                  AND h.service_name <> r.service_name AND h.kind = {K_CLIENT}),
               (SELECT min(p.service_name) FROM s AS p
                WHERE p.trace_id = r.trace_id AND p.span_id = r.parent_span_id),
               'user') AS caller
    FROM s AS r
    WHERE r.service_name = $service AND r.{INCOMING} AND r.failed
), failing AS (
    SELECT * FROM s WHERE failed AND trace_id IN (SELECT trace_id FROM failed_requests)
), chain AS (
    SELECT trace_id, span_id AS request_id, span_id, service_name, kind, caller, 0 AS depth,
           start_time
    FROM failed_requests
    UNION ALL
    -- failing children, and the server half of a Zipkin shared span under its client half
    SELECT c.trace_id, chain.request_id, c.span_id, c.service_name, c.kind,
           CASE WHEN c.service_name <> chain.service_name THEN chain.service_name
                ELSE chain.caller END,
           chain.depth + 1, c.start_time
    FROM chain JOIN failing AS c
      ON c.trace_id = chain.trace_id
     AND (c.parent_span_id = chain.span_id
          OR (c.span_id = chain.span_id AND chain.kind = {K_CLIENT} AND c.kind = {K_SERVER}
              AND c.service_name <> chain.service_name))
    WHERE chain.depth < {MAX_DEPTH}
), deepest AS (
    SELECT * FROM chain
    QUALIFY row_number() OVER (
        PARTITION BY trace_id, request_id
        ORDER BY depth DESC, start_time DESC, span_id DESC) = 1
)
SELECT d.trace_id, d.request_id, d.service_name AS origin, d.start_time,
       CASE WHEN o.kind = {K_CLIENT} THEN d.service_name ELSE d.caller END AS edge_source,
       CASE WHEN o.kind = {K_CLIENT}
            THEN COALESCE((SELECT min(k.service_name) FROM s AS k
                           WHERE k.trace_id = d.trace_id AND k.parent_span_id = d.span_id
                             AND (k.kind = {K_SERVER} OR k.service_name <> d.service_name)),
                          o.client_target, d.service_name)
            ELSE d.service_name END AS edge_target
FROM deepest AS d
JOIN s AS o ON o.trace_id = d.trace_id AND o.span_id = d.span_id
           AND o.service_name = d.service_name
"""


def _examples(con: duckdb.DuckDBPyConnection, keys: str) -> dict[tuple[Any, ...], list[str]]:
    """A few trace ids per group of `origin_rows`, earliest first."""
    rows = con.execute(
        f"""
        SELECT * FROM (
            SELECT {keys}, {TRACE_HEX.format(column="trace_id")} AS hex, min(start_time) AS t
            FROM origin_rows GROUP BY {keys}, trace_id
        )
        QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY t, hex) <= {EXAMPLES}
        ORDER BY t, hex
        """
    ).fetchall()
    found: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for *key, hex_id, _ in rows:
        found[tuple(key)].append(hex_id)
    return found


def _origins(
    con: duckdb.DuckDBPyConnection, service: str
) -> tuple[int, tuple[Origin, ...], tuple[OriginEdge, ...]]:
    con.execute(ORIGINS, {"service": service})
    total_row = con.execute("SELECT count(*) FROM origin_rows").fetchone()
    total = int(total_row[0]) if total_row else 0
    if not total:
        return 0, (), ()
    by_service = con.execute(
        "SELECT origin, count(*) AS n FROM origin_rows GROUP BY origin ORDER BY n DESC, origin"
    ).fetchall()
    service_examples = _examples(con, "origin")
    origins = tuple(
        Origin(name, int(n), round(n / total, 6), tuple(service_examples[(name,)]))
        for name, n in by_service
    )
    by_edge = con.execute(
        "SELECT edge_source, edge_target, count(*) AS n FROM origin_rows GROUP BY ALL "
        "ORDER BY n DESC, edge_source, edge_target"
    ).fetchall()
    edge_examples = _examples(con, "edge_source, edge_target")
    edges = tuple(
        OriginEdge(src, dst, int(n), round(n / total, 6), tuple(edge_examples[(src, dst)]))
        for src, dst, n in by_edge
    )
    return total, origins, edges


# The spans under S's slowest requests (those at or above its p95).
SLOW_SPANS = f"""
WITH RECURSIVE slow AS (
    SELECT trace_id, span_id, service_name FROM s
    WHERE service_name = $service AND {INCOMING} AND duration_ns >= $p95
    ORDER BY duration_ns DESC, trace_id, span_id LIMIT {MAX_SLOW}
), tree AS (
    SELECT trace_id, span_id AS request_id, span_id, NULL::UBIGINT AS parent_span_id,
           service_name, 0 AS depth
    FROM slow
    UNION ALL
    SELECT c.trace_id, tree.request_id, c.span_id, c.parent_span_id, c.service_name,
           tree.depth + 1
    FROM tree JOIN s AS c ON c.trace_id = tree.trace_id AND c.parent_span_id = tree.span_id
    WHERE tree.depth < {MAX_DEPTH}
      AND c.trace_id IN (SELECT trace_id FROM slow)
)
SELECT {TRACE_HEX.format(column="t.trace_id")}, t.request_id, t.span_id, t.parent_span_id,
       t.service_name, epoch_ns(sp.start_time), epoch_ns(sp.start_time) + sp.duration_ns,
       CASE WHEN sp.kind = {K_CLIENT} THEN sp.client_target END
FROM tree AS t
JOIN s AS sp ON sp.trace_id = t.trace_id AND sp.span_id = t.span_id
            AND sp.service_name = t.service_name
WHERE sp.duration_ns IS NOT NULL
ORDER BY 1, 2, 6, 3
"""

SpanRow = tuple[int, str, int, int, str | None]  # id, service, start, end, client target


def critical_path(
    root: SpanRow, children: dict[int, list[SpanRow]], totals: dict[str, int]
) -> None:
    """Add to `totals` the time each service spends on the critical path below `root`.

    Walking back from the span's end, the child that ended last is what the span waited for;
    before that child started, the next one that ended, and so on; gaps are the span's own.
    A client call that reached no instrumented server waited on its database or external
    node: that time is the node's.
    """
    stack: list[tuple[SpanRow, int, int]] = [(root, root[3], 0)]
    while stack:
        span, end, depth = stack.pop()
        span_id, service, start, _, target = span
        kids = children.get(span_id, [])
        if not kids and target is not None:
            service = target
        cursor = end
        for child in sorted(kids, key=lambda c: (-c[3], c[2])):
            if cursor <= start:
                break
            if child[2] >= cursor or depth >= MAX_DEPTH:
                continue
            child_end = min(child[3], cursor)
            totals[service] += cursor - child_end
            stack.append((child, child_end, depth + 1))
            cursor = max(child[2], start)
        totals[service] += max(cursor - start, 0)


def _latency(
    con: duckdb.DuckDBPyConnection, service: str
) -> tuple[float | None, int, tuple[Contributor, ...]]:
    row = con.execute(
        f"SELECT quantile_cont(duration_ns, 0.95) FROM s "
        f"WHERE service_name = $service AND {INCOMING}",
        {"service": service},
    ).fetchone()
    if row is None or row[0] is None:
        return None, 0, ()
    p95 = float(row[0])
    rows = con.execute(SLOW_SPANS, {"service": service, "p95": p95}).fetchall()
    requests: dict[tuple[str, int], list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        requests[(row[0], row[1])].append(row)
    per_service: dict[str, int] = defaultdict(int)
    examples: dict[str, list[str]] = defaultdict(list)
    for (trace_hex, request_id), spans in requests.items():
        children: dict[int, list[SpanRow]] = defaultdict(list)
        root: SpanRow | None = None
        for _, _, span_id, parent_id, name, start, end, target in spans:
            span = (span_id, name, start, end, target)
            if span_id == request_id and root is None:
                root = span
            elif parent_id is not None:
                children[parent_id].append(span)
        if root is None:
            continue
        totals: dict[str, int] = defaultdict(int)
        critical_path(root, children, totals)
        for name, ns in totals.items():
            per_service[name] += ns
            if ns > 0 and len(examples[name]) < EXAMPLES and trace_hex not in examples[name]:
                examples[name].append(trace_hex)
    slow = len(requests)
    whole = sum(per_service.values())
    contributors = tuple(
        Contributor(
            name,
            round(ns / slow / 1e6, 3),
            round(ns / whole, 6) if whole else 0.0,
            tuple(sorted(examples[name])),
        )
        for name, ns in sorted(per_service.items(), key=lambda kv: (-kv[1], kv[0]))
        if ns > 0
    )
    return round(p95 / 1e6, 3), slow, contributors


def _affected_users(con: duckdb.DuckDBPyConnection) -> AffectedUsers:
    """Users of the traces in `origin_rows` (where S failed) against all users of the window."""
    ids = " UNION ALL ".join(
        f"SELECT trace_id, {rank} AS rank, {sql_string(attribute)} AS attribute, "
        f"{column} AS user FROM span_identity WHERE {column} IS NOT NULL"
        for rank, (attribute, column) in enumerate(USER_ATTRIBUTES)
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE trace_users AS
        SELECT DISTINCT trace_id, rank, attribute, user,
               trace_id IN (SELECT trace_id FROM origin_rows) AS failing
        FROM ({ids})
        """
    )
    row = con.execute(
        """
        WITH first AS (
            SELECT * FROM trace_users
            QUALIFY rank = min(rank) OVER (PARTITION BY trace_id)
        )
        SELECT count(DISTINCT (attribute, user)) FILTER (WHERE failing),
               count(DISTINCT (attribute, user))
        FROM first
        """
    ).fetchone()
    failing, total = (int(row[0]), int(row[1])) if row else (0, 0)
    by_attribute = {
        attribute: {"failing": int(f), "total": int(t)}
        for attribute, f, t in con.execute(
            "SELECT attribute, count(DISTINCT user) FILTER (WHERE failing), "
            "count(DISTINCT user) FROM trace_users GROUP BY attribute ORDER BY attribute"
        ).fetchall()
    }
    examples = tuple(
        r[0]
        for r in con.execute(
            "SELECT DISTINCT user FROM trace_users WHERE failing ORDER BY user LIMIT 5"
        ).fetchall()
    )
    return AffectedUsers(failing, total, by_attribute, examples)


def investigate(
    sources: SpanSources, service: str, window: TimeRange | None = None, depth: int = 1
) -> Investigation:
    """Everything `servicemap investigate` reports about `service` in the window."""
    window = window or TimeRange()
    con = connect()
    try:
        graph = prepare(con, sources, window)
        services = [n.id for n in graph.nodes if n.kind == "service"]
        if service not in {n.id for n in graph.nodes}:
            raise no_such_service("--service", service, services)
        if service not in services:
            kind = graph.node(service).kind
            callers = ", ".join(sorted({e.source for e in graph.edges if e.target == service}))
            article = "an" if kind[0] in "aeiou" else "a"
            raise UsageError(
                f"--service {service} is {article} {kind} node, with no spans of its own to "
                f"follow; investigate a service that calls it: {callers}"
            )
        register_identity(con, sources, window)
        counts = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE failed) FROM s "
            f"WHERE service_name = $service AND {INCOMING}",
            {"service": service},
        ).fetchone()
        requests, failed = (int(counts[0]), int(counts[1])) if counts else (0, 0)
        _, origins, origin_edges = _origins(con, service)
        p95_ms, slow, contributors = _latency(con, service)
        users = _affected_users(con)
    finally:
        con.close()
    upstream, downstream = _hops(graph, service, depth)
    keep = {service, *upstream, *downstream}
    keep.update(e.source for e in origin_edges)
    keep.update(e.target for e in origin_edges)
    keep.update(c.service for c in contributors)
    return Investigation(
        service=service,
        depth=depth,
        requests=requests,
        failed_requests=failed,
        upstream=upstream,
        downstream=downstream,
        error_origins=origins,
        origin_edges=origin_edges,
        p95_ms=p95_ms,
        slow_requests=slow,
        latency_contributors=contributors,
        affected_users=users,
        graph=graph,
        neighbourhood=keep_nodes(graph, keep),
    )
