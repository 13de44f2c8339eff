"""What makes a service slow: the critical paths of its slowest requests, split by service.

Slow requests are S's incoming spans at or above S's p95 (the slowest `MAX_SLOW` of them);
SQL fetches the spans under them, and Python walks each request's critical path (the chain of
spans it waited on), adding up the time each service, database or external node holds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import duckdb

from servicemap.analysis.prepared import MAX_DEPTH, TRACE_HEX
from servicemap.pairing import INCOMING, K_CLIENT

EXAMPLES = 3  # example trace ids shown for each finding, here and in investigate.py
MAX_SLOW = 200


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
       t.service_name, epoch_ns(sp.start_time),
       epoch_ns(sp.start_time)::HUGEINT + sp.duration_ns,  -- Parquet from elsewhere may overflow
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


def slow_requests(
    con: duckdb.DuckDBPyConnection, service: str
) -> tuple[float | None, int, tuple[Contributor, ...]]:
    """S's p95 (ms), how many slow requests there were, and who holds their time."""
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
