"""Compare two maps: new and removed nodes and edges, and changes in calls, error rate and p95,
each with a significance test so that noise on a quiet edge is not flagged (DESIGN §7).

The two sides are two sources, two windows of one source, or the spans before and after a
release (the first span of SERVICE carrying service.version VERSION splits the data). A side
with no spans is an error, and so is a release with nothing of SERVICE before it.

Tests (stats.py), each two-sided at `ALPHA`, and a change must also be large enough to matter:
- error rate: two-proportion z-test (pooled; Fisher's exact test at small expected counts),
  and at least `MIN_ERROR_RATE_DELTA` apart;
- latency: Mann–Whitney U over every call's latency, at least `MIN_SAMPLES` a side, and the
  p95 at least `MIN_LATENCY_RATIO` apart (relative);
- calls: the two counts as Poisson rates over each side's time span, at least `MIN_SAMPLES` a
  side and `MIN_CALLS_RATIO` apart. A side's time span is the window asked for (the whole
  source, a `--before`/`--after` window, the time before or after the release) clipped to
  the data the source covers, not the first to last span of the side: a quiet stretch counts;
- a new (or vanished) node or edge is significant when it has at least `MIN_SAMPLES` calls and
  seeing none of them on the other side is unlikely at its rate: exp(-expected calls) < ALPHA.

Ranking ("severity"): significant first; then error rates that rose, latencies that rose, new
and removed parts, call-volume changes, improvements; within each group edges before nodes (an
edge says where; a node's change also shows on the edges into it), then by size of the change
(absolute error-rate difference, |log| of the p95 ratio, calls), and on equal size the more
downstream part first (hops from the map's entry points): when errors start in `pay`, every
edge above it changes as much, and `web -> pay` says where.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Literal

import duckdb

from servicemap.analysis.prepared import (
    data_coverage,
    intersect,
    prepare,
)
from servicemap.analysis.stats import mann_whitney_p, poisson_rates_p, two_proportion_p
from servicemap.build import connect
from servicemap.errors import UsageError
from servicemap.graph import ServiceGraph, format_time
from servicemap.pairing import K_CONSUMER, K_SERVER
from servicemap.sources import SpanSources
from servicemap.timeparse import TimeRange

ALPHA = 0.01
MIN_ERROR_RATE_DELTA = 0.005
MIN_LATENCY_RATIO = 0.10
MIN_CALLS_RATIO = 0.25
MIN_SAMPLES = 5

ChangeKind = Literal["added", "removed", "changed"]
Key = tuple[str, str | None]  # (source, target) for an edge, (node, None) for a node

TIER_ERRORS_UP, TIER_LATENCY_UP, TIER_STRUCTURE, TIER_CALLS, TIER_BETTER = range(5)


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    source: str
    target: str | None  # None for a node
    metric: str  # calls | error_rate | latency_p95_ms
    before: float | int | None
    after: float | int | None
    significant: bool
    p_value: float | None
    tier: int
    magnitude: float
    depth: int = 0  # hops from the map's entry points to the node (an edge: to its source)

    @property
    def is_edge(self) -> bool:
        return self.target is not None

    @property
    def label(self) -> str:
        return f"{self.source} -> {self.target}" if self.target is not None else self.source

    def sort_key(self) -> tuple[Any, ...]:
        return (
            not self.significant,
            self.tier,
            not self.is_edge,
            -round(self.magnitude, 9),
            -self.depth,
            self.source,
            self.target or "",
            self.metric,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "source": self.source}
        if self.target is not None:
            data["target"] = self.target
        data.update(
            {
                "metric": self.metric,
                "before": self.before,
                "after": self.after,
                "significant": self.significant,
                "p_value": None if self.p_value is None else float(f"{self.p_value:.3g}"),
            }
        )
        return data


@dataclass(frozen=True)
class Side:
    """What one side of the diff is: a label for the report, its window, and how it was asked
    for (`--before T1..T2`, a source's name), to name it in an error."""

    label: str
    window: TimeRange
    option: str


@dataclass(frozen=True)
class Diff:
    before: ServiceGraph
    after: ServiceGraph
    before_label: str
    after_label: str
    changes: tuple[Change, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "before": {"label": self.before_label, "window": self.before.window.to_json()},
            "after": {"label": self.after_label, "window": self.after.window.to_json()},
            "changes": [c.to_json() for c in self.changes],
        }


def _rate_span_s(window: TimeRange, coverage: TimeRange) -> float:
    """Seconds of the requested window that the data covers (the window clipped to the data)."""
    clipped = intersect(coverage, window)
    if clipped.since_ns is None or clipped.until_ns is None:
        return 0.0
    return max(clipped.until_ns - clipped.since_ns, 0) / 1e9


# ---- samples ---------------------------------------------------------------------------------

# Every call's latency and every node's requests, tagged with the side; ranks per key.
_RANKS = """
WITH both_sides AS ({samples}),
ranked AS (
    SELECT source, target, side,
           rank() OVER (PARTITION BY source, target ORDER BY latency_ns)
           + (count(*) OVER (PARTITION BY source, target, latency_ns) - 1) / 2.0 AS r
    FROM both_sides
), ties AS (
    SELECT source, target, sum(t * t * t - t) AS tie
    FROM (SELECT source, target, latency_ns, count(*)::DOUBLE AS t FROM both_sides GROUP BY ALL)
    GROUP BY ALL
)
SELECT r.source, r.target, count(*) FILTER (WHERE side = 0), count(*) FILTER (WHERE side = 1),
       COALESCE(sum(r) FILTER (WHERE side = 0), 0), any_value(t.tie)
FROM ranked AS r JOIN ties AS t
  ON r.source = t.source AND r.target IS NOT DISTINCT FROM t.target
GROUP BY r.source, r.target
"""


def _keep_samples(con: duckdb.DuckDBPyConnection, side: int) -> None:
    """Copy the latencies of the pairing just run, so the next side can run in `con`."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE samples_{side} AS
        SELECT source, target, latency_ns FROM raw_calls
        WHERE latency_ns IS NOT NULL AND NOT (virtual_name AND source = target)
        UNION ALL
        SELECT service_name, NULL, duration_ns FROM s
        WHERE kind IN ({K_SERVER}, {K_CONSUMER}) AND duration_ns IS NOT NULL
        UNION ALL
        SELECT target, NULL, latency_ns FROM raw_calls
        WHERE latency_ns IS NOT NULL AND NOT (virtual_name AND source = target)
          AND target NOT IN (SELECT service_name FROM s WHERE kind IN ({K_SERVER}, {K_CONSUMER}))
        """
    )


def _latency_tests(con: duckdb.DuckDBPyConnection) -> dict[Key, float | None]:
    samples = " UNION ALL ".join(
        f"SELECT source, target, {side} AS side, latency_ns FROM samples_{side}" for side in (0, 1)
    )
    tests: dict[Key, float | None] = {}
    for source, target, n0, n1, rank_sum, tie in con.execute(
        _RANKS.format(samples=samples)
    ).fetchall():
        if min(n0, n1) < MIN_SAMPLES:
            tests[(source, target)] = None
        else:
            tests[(source, target)] = mann_whitney_p(n0, n1, float(rank_sum), float(tie or 0))
    return tests


# ---- comparing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Figures:
    calls: int
    errors: int
    p95: float | None


def _figures(graph: ServiceGraph) -> dict[Key, _Figures]:
    found: dict[Key, _Figures] = {}
    for node in graph.nodes:
        if node.requests or node.kind != "user":
            p95 = node.latency_ms.p95 if node.latency_ms else None
            found[(node.id, None)] = _Figures(node.requests, node.errors, p95)
    for edge in graph.edges:
        p95 = edge.latency_ms.p95 if edge.latency_ms else None
        found[(edge.source, edge.target)] = _Figures(edge.calls, edge.errors, p95)
    return found


def _rate(errors: int, calls: int) -> float | None:
    return round(errors / calls, 6) if calls else None


def _metric_changes(
    key: Key, a: _Figures, b: _Figures, spans: tuple[float, float], latency_p: float | None
) -> list[Change]:
    source, target = key
    changes: list[Change] = []
    if a.calls != b.calls:
        p = poisson_rates_p(a.calls, spans[0], b.calls, spans[1])
        per_s0 = a.calls / spans[0] if spans[0] else 0.0
        per_s1 = b.calls / spans[1] if spans[1] else 0.0
        ratio = math.log((per_s1 + 1e-9) / (per_s0 + 1e-9))
        significant = (
            p is not None
            and p < ALPHA
            and min(a.calls, b.calls) >= MIN_SAMPLES
            and abs(math.expm1(ratio)) >= MIN_CALLS_RATIO
        )
        changes.append(
            Change(
                "changed",
                source,
                target,
                "calls",
                a.calls,
                b.calls,
                significant,
                p,
                TIER_CALLS,
                abs(ratio),
            )
        )
    rate0, rate1 = _rate(a.errors, a.calls), _rate(b.errors, b.calls)
    if rate0 is not None and rate1 is not None and rate0 != rate1:
        p = two_proportion_p(a.errors, a.calls, b.errors, b.calls)
        delta = rate1 - rate0
        significant = p is not None and p < ALPHA and abs(delta) >= MIN_ERROR_RATE_DELTA
        tier = TIER_ERRORS_UP if delta > 0 else TIER_BETTER
        changes.append(
            Change(
                "changed",
                source,
                target,
                "error_rate",
                rate0,
                rate1,
                significant,
                p,
                tier,
                abs(delta),
            )
        )
    if a.p95 is not None and b.p95 is not None and a.p95 != b.p95:
        ratio = math.log(max(b.p95, 1e-6) / max(a.p95, 1e-6))
        significant = (
            latency_p is not None
            and latency_p < ALPHA
            and abs(math.expm1(ratio)) >= MIN_LATENCY_RATIO
        )
        tier = TIER_LATENCY_UP if ratio > 0 else TIER_BETTER
        changes.append(
            Change(
                "changed",
                source,
                target,
                "latency_p95_ms",
                a.p95,
                b.p95,
                significant,
                latency_p,
                tier,
                abs(ratio),
            )
        )
    return changes


def _structure_change(
    kind: ChangeKind, key: Key, figures: _Figures, own_span: float, other_span: float
) -> Change:
    """A part seen on one side only; significant when it has calls enough to judge by and its
    absence on the other side is unlikely at its rate."""
    expected = figures.calls * other_span / own_span if own_span > 0 else 0.0
    p = math.exp(-expected) if own_span > 0 and other_span > 0 else None
    significant = p is not None and p < ALPHA and figures.calls >= MIN_SAMPLES
    before, after = (0, figures.calls) if kind == "added" else (figures.calls, 0)
    return Change(
        kind,
        key[0],
        key[1],
        "calls",
        before,
        after,
        significant,
        p,
        TIER_STRUCTURE,
        float(figures.calls),
    )


def _depths(*graphs: ServiceGraph) -> dict[str, int]:
    """Hops from the entry points (user nodes, and nodes nothing calls) over both maps' edges.

    A node only reachable through a cycle keeps depth 0.
    """
    callees: dict[str, set[str]] = {}
    called: set[str] = set()
    nodes: dict[str, str] = {}
    for graph in graphs:
        nodes.update((n.id, n.kind) for n in graph.nodes)
        for edge in graph.edges:
            callees.setdefault(edge.source, set()).add(edge.target)
            called.add(edge.target)
    roots = sorted(n for n, kind in nodes.items() if kind == "user" or n not in called)
    depth = dict.fromkeys(roots, 0)
    queue = deque(roots)
    while queue:
        node = queue.popleft()
        for other in sorted(callees.get(node, ())):
            if other not in depth:
                depth[other] = depth[node] + 1
                queue.append(other)
    return depth


def compare(
    before: ServiceGraph,
    after: ServiceGraph,
    latency_p: dict[Key, float | None],
    spans: tuple[float, float],
) -> tuple[Change, ...]:
    """Every change between the two graphs, ranked by severity; `spans` are the two sides'
    time spans in seconds, for call rates."""
    a, b = _figures(before), _figures(after)
    changes: list[Change] = []
    for key in sorted(a.keys() | b.keys(), key=lambda k: (k[0], k[1] or "")):
        if key in a and key in b:
            changes.extend(_metric_changes(key, a[key], b[key], spans, latency_p.get(key)))
        elif key in b:
            changes.append(_structure_change("added", key, b[key], spans[1], spans[0]))
        else:
            changes.append(_structure_change("removed", key, a[key], spans[0], spans[1]))
    depth = _depths(before, after)
    placed = (replace(c, depth=depth.get(c.source, 0)) for c in changes)
    return tuple(sorted(placed, key=Change.sort_key))


def _no_spans(side: Side, coverage: TimeRange | None) -> UsageError:
    if coverage is None:
        return UsageError(f"{side.option}: there are no spans in the data")
    start, end = format_time(coverage.since_ns), format_time(coverage.until_ns)
    return UsageError(f"{side.option}: the window has no spans (the data covers {start} – {end})")


def diff_sides(
    before_sources: SpanSources,
    after_sources: SpanSources,
    before: Side,
    after: Side,
) -> Diff:
    """Pair each side in one connection, keep its samples, then compare.

    A side with no spans is a UsageError naming the time the data covers.
    """
    con = connect()
    try:
        graphs: list[ServiceGraph] = []
        spans: list[float] = []
        coverage: TimeRange | None = None
        for side, (sources, part) in enumerate(((before_sources, before), (after_sources, after))):
            if side == 0 or sources is not before_sources:
                coverage = data_coverage(con, sources)
            graph = prepare(con, sources, part.window)
            if coverage is None or graph.window.start_ns is None:
                raise _no_spans(part, coverage)
            graphs.append(graph)
            spans.append(_rate_span_s(part.window, coverage))
            _keep_samples(con, side)
        latency_p = _latency_tests(con)
    finally:
        con.close()
    changes = compare(graphs[0], graphs[1], latency_p, (spans[0], spans[1]))
    return Diff(graphs[0], graphs[1], before.label, after.label, changes)
