"""Investigate one service: its neighbourhood, where its errors start, what makes it slow, who
is affected (DESIGN §7, `servicemap investigate`).

Counting rules:
- S's failed requests are its SERVER and CONSUMER spans with status ERROR; a failed retry is
  another failed request.
- Each failed request is followed down its trace through failing children (and through
  unmarked INTERNAL spans with a failing span below); the deepest failing span (the last to
  start among equally deep ones: the attempt whose error propagated) is where that request's
  error starts. Its service is the origin; the origin edge is the call into that service (or,
  for a failing client call that reached no instrumented server, the call out of it to the
  database or external node); the services the walk went through are its path.
- Slow requests (slow.py): S's incoming spans at or above S's p95; their critical paths are
  split by service.
- Affected users: the distinct users in traces where S failed, and in all traces of the window.
  A trace's users are the values of its first identity attribute present, in the order
  enduser.id, user.id, session.id.

The heavy lifting is SQL over the slim spans.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import networkx as nx

from servicemap.analysis.focus import keep_nodes
from servicemap.analysis.prepared import (
    MAX_DEPTH,
    TRACE_HEX,
    USER_ATTRIBUTES,
    kind_node,
    no_such_service,
    prepare,
    register_identity,
)
from servicemap.analysis.slow import EXAMPLES, Contributor, slow_requests
from servicemap.build import connect, sql_string
from servicemap.errors import UsageError
from servicemap.graph import ServiceGraph
from servicemap.pairing import INCOMING, K_CLIENT, K_SERVER
from servicemap.schema import SpanKind
from servicemap.sources import SpanSources
from servicemap.timeparse import TimeRange

IN_PROCESS = f"kind IN ({int(SpanKind.UNSPECIFIED)}, {int(SpanKind.INTERNAL)})"


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
    path: tuple[str, ...] = ()  # the services the errors most often took from S to `target`

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "failed_requests": self.failed_requests,
            "share": self.share,
            "example_traces": list(self.example_traces),
            "path": list(self.path),
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
    digraph = _digraph(graph)
    down = nx.single_source_shortest_path_length(digraph, service, cutoff=depth)
    up = nx.single_source_shortest_path_length(digraph.reverse(copy=False), service, cutoff=depth)

    def ordered(found: dict[str, int]) -> dict[str, int]:
        return {
            k: v for k, v in sorted(found.items(), key=lambda kv: (kv[1], kv[0])) if k != service
        }

    return ordered(up), ordered(down)


# The failing chains below each of S's failed requests, and the deepest failing span of each.
# A chain steps to failing children, and through an unmarked INTERNAL (or unspecified) span
# with a failing span below it: in-process spans often carry no status, and an error passes
# through them unseen. A CLIENT or SERVER span that did not fail is never stepped through: the
# call worked, so whatever failed below it was handled (a retry, a fallback). `path` is the
# services the chain went through, from S to the origin (and on to the database or external
# node of a failing call out of it).
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
), unmarked_above AS (
    -- unmarked in-process spans with a failed span below them (through such spans only)
    SELECT p.trace_id, p.span_id, p.parent_span_id
    FROM s AS f JOIN s AS p ON p.trace_id = f.trace_id AND p.span_id = f.parent_span_id
    WHERE f.failed AND f.trace_id IN (SELECT trace_id FROM failed_requests)
      AND p.{IN_PROCESS} AND NOT p.failed
    UNION
    SELECT p.trace_id, p.span_id, p.parent_span_id
    FROM unmarked_above AS u JOIN s AS p
      ON p.trace_id = u.trace_id AND p.span_id = u.parent_span_id
    WHERE p.{IN_PROCESS} AND NOT p.failed
), failing AS (
    SELECT * FROM s
    WHERE trace_id IN (SELECT trace_id FROM failed_requests)
      AND (failed OR ({IN_PROCESS} AND EXISTS (
          SELECT 1 FROM unmarked_above AS u
          WHERE u.trace_id = s.trace_id AND u.span_id = s.span_id)))
), chain AS (
    SELECT trace_id, span_id AS request_id, span_id, service_name, kind, caller, 0 AS depth,
           start_time, TRUE AS failed, [service_name] AS path
    FROM failed_requests
    UNION ALL
    -- failing children, and the server half of a Zipkin shared span under its client half
    SELECT c.trace_id, chain.request_id, c.span_id, c.service_name, c.kind,
           CASE WHEN c.service_name <> chain.service_name THEN chain.service_name
                ELSE chain.caller END,
           chain.depth + 1, c.start_time, c.failed,
           CASE WHEN c.service_name <> chain.service_name
                THEN list_append(chain.path, c.service_name) ELSE chain.path END
    FROM chain JOIN failing AS c
      ON c.trace_id = chain.trace_id
     AND (c.parent_span_id = chain.span_id
          OR (c.span_id = chain.span_id AND chain.kind = {K_CLIENT} AND c.kind = {K_SERVER}
              AND c.service_name <> chain.service_name))
    WHERE chain.depth < {MAX_DEPTH}
), deepest AS (
    SELECT * FROM chain WHERE failed
    QUALIFY row_number() OVER (
        PARTITION BY trace_id, request_id
        ORDER BY depth DESC, start_time DESC, span_id DESC) = 1
), origins AS (
    SELECT d.trace_id, d.request_id, d.service_name AS origin, d.start_time, d.path,
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
)
SELECT trace_id, request_id, origin, start_time, edge_source, edge_target,
       CASE WHEN edge_target <> origin THEN list_append(path, edge_target) ELSE path END AS path
FROM origins
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
    paths = {
        (src, dst): tuple(path)
        for src, dst, path in con.execute(
            "SELECT edge_source, edge_target, path FROM origin_rows "
            "GROUP BY edge_source, edge_target, path "
            "QUALIFY row_number() OVER (PARTITION BY edge_source, edge_target "
            "ORDER BY count(*) DESC, path) = 1"
        ).fetchall()
    }
    edges = tuple(
        OriginEdge(
            src,
            dst,
            int(n),
            round(n / total, 6),
            tuple(edge_examples[(src, dst)]),
            paths[(src, dst)],
        )
        for src, dst, n in by_edge
    )
    return total, origins, edges


def _digraph(graph: ServiceGraph) -> nx.DiGraph:
    digraph = nx.DiGraph()
    digraph.add_nodes_from(n.id for n in graph.nodes)
    digraph.add_edges_from((e.source, e.target) for e in graph.edges)
    return digraph


def path_edges(digraph: nx.DiGraph, services: Sequence[str]) -> list[tuple[str, str]]:
    """The map's edges along a path of services: each step by its edge, or, where the map has
    none (a message goes through its topic's node), by the shortest way round on the map."""
    found: list[tuple[str, str]] = []
    for step in itertools.pairwise(services):
        if digraph.has_edge(*step):
            found.append(step)
            continue
        try:
            found.extend(itertools.pairwise(nx.shortest_path(digraph, *step)))
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            continue
    return found


def origin_path_edges(
    graph: ServiceGraph, origin_edges: Sequence[OriginEdge], top: int | None = None
) -> list[tuple[str, str]]:
    """The map's edges from S along the errors' path to each of the `top` first origin edges,
    and those edges."""
    digraph = _digraph(graph)
    edges: list[tuple[str, str]] = []
    for origin in origin_edges[:top]:
        for edge in [*path_edges(digraph, origin.path), (origin.source, origin.target)]:
            if edge not in edges:
                edges.append(edge)
    return edges


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


def _not_a_service(graph: ServiceGraph, service: str) -> UsageError:
    """--service names a node with no spans of its own: the user node, a database, an API."""
    kind = graph.node(service).kind
    if kind == "user":
        called = ", ".join(sorted({e.target for e in graph.edges if e.source == service}))
        return UsageError(
            f"--service {service} is the map's user node: the requests that came from outside "
            f"the traced services, not a service; investigate one it calls: {called}"
        )
    callers = ", ".join(sorted({e.source for e in graph.edges if e.target == service}))
    return UsageError(
        f"--service {service} is {kind_node(kind)}, with no spans of its own to "
        f"follow; investigate a service that calls it: {callers}"
    )


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
            raise _not_a_service(graph, service)
        register_identity(con, sources, window)
        counts = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE failed) FROM s "
            f"WHERE service_name = $service AND {INCOMING}",
            {"service": service},
        ).fetchone()
        requests, failed = (int(counts[0]), int(counts[1])) if counts else (0, 0)
        _, origins, origin_edges = _origins(con, service)
        p95_ms, slow, contributors = slow_requests(con, service)
        users = _affected_users(con)
    finally:
        con.close()
    upstream, downstream = _hops(graph, service, depth)
    # Every node on the errors' paths to their origins shows, whatever the depth.
    keep = {service, *upstream, *downstream, *(c.service for c in contributors)}
    keep.update(node for edge in origin_path_edges(graph, origin_edges) for node in edge)
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
