"""Compare two maps: new and removed nodes and edges, and changes in calls, error rate and p95,
each with a significance test so that noise on a quiet edge is not flagged (DESIGN §7).

The two sides are two sources, two windows of one source, or the spans before and after a
release (the first span of SERVICE carrying service.version VERSION splits the data).

Tests, each two-sided at `ALPHA`, and a change must also be large enough to matter:
- error rate: two-proportion z-test (pooled), and at least `MIN_ERROR_RATE_DELTA` apart;
- latency: Mann–Whitney U (normal approximation with tie correction) over every call's
  latency, and the p95 at least `MIN_LATENCY_RATIO` apart (relative);
- calls: the two counts as Poisson rates over each side's time span (conditional binomial
  z-test), and at least `MIN_CALLS_RATIO` apart;
- a new (or vanished) node or edge is significant when seeing none of its calls on the other
  side is unlikely at its rate: exp(-expected calls) < ALPHA.

Ranking ("severity"): significant first; then error rates that rose, latencies that rose, new
and removed parts, call-volume changes, improvements; within each group edges before nodes (an
edge says where; a node's change also shows on the edges into it), then by size of the change
(absolute error-rate difference, |log| of the p95 ratio, calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import duckdb

from servicemap.analysis.prepared import (
    intersect,
    no_such_service,
    prepare,
    register_identity,
)
from servicemap.build import connect
from servicemap.errors import UsageError
from servicemap.graph import ServiceGraph
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
            -self.magnitude,
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
    """What one side of the diff is: a label for the report and its window."""

    label: str
    window: TimeRange


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


# ---- statistics ------------------------------------------------------------------------------


def two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def two_proportion_p(errors0: int, calls0: int, errors1: int, calls1: int) -> float | None:
    """Two-sided p-value that two error rates differ (pooled z-test); None when untestable."""
    if calls0 == 0 or calls1 == 0:
        return None
    pooled = (errors0 + errors1) / (calls0 + calls1)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / calls0 + 1 / calls1))
    return two_sided_p((errors1 / calls1 - errors0 / calls0) / se)


def mann_whitney_p(n0: int, n1: int, rank_sum0: float, tie_term: float) -> float | None:
    """Two-sided p-value of the U test from side 0's rank sum; tie_term = Σ(t³ - t)."""
    if n0 == 0 or n1 == 0:
        return None
    n = n0 + n1
    u0 = rank_sum0 - n0 * (n0 + 1) / 2
    variance = n0 * n1 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    return two_sided_p((u0 - n0 * n1 / 2) / math.sqrt(variance))


def poisson_rates_p(count0: int, span0: float, count1: int, span1: float) -> float | None:
    """Two-sided p-value that two event counts over time spans have different rates."""
    if span0 <= 0 or span1 <= 0 or count0 + count1 == 0:
        return None
    n = count0 + count1
    share = span0 / (span0 + span1)
    return two_sided_p((count0 - n * share) / math.sqrt(n * share * (1 - share)))


def _span_s(graph: ServiceGraph) -> float:
    window = graph.window
    if window.start_ns is None or window.end_ns is None:
        return 0.0
    return max(window.end_ns - window.start_ns, 1) / 1e9


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
    """A part seen on one side only; significant when its absence is unlikely by chance."""
    expected = figures.calls * other_span / own_span if own_span > 0 else 0.0
    p = math.exp(-expected) if own_span > 0 and other_span > 0 else None
    significant = p is not None and p < ALPHA
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


def compare(
    before: ServiceGraph, after: ServiceGraph, latency_p: dict[Key, float | None]
) -> tuple[Change, ...]:
    """Every change between the two graphs, ranked by severity."""
    a, b = _figures(before), _figures(after)
    spans = (_span_s(before), _span_s(after))
    changes: list[Change] = []
    for key in sorted(a.keys() | b.keys(), key=lambda k: (k[0], k[1] or "")):
        if key in a and key in b:
            changes.extend(_metric_changes(key, a[key], b[key], spans, latency_p.get(key)))
        elif key in b:
            changes.append(_structure_change("added", key, b[key], spans[1], spans[0]))
        else:
            changes.append(_structure_change("removed", key, a[key], spans[0], spans[1]))
    return tuple(sorted(changes, key=Change.sort_key))


def diff_sides(
    before_sources: SpanSources,
    after_sources: SpanSources,
    before: Side,
    after: Side,
) -> Diff:
    """Pair each side in one connection, keep its samples, then compare."""
    con = connect()
    try:
        graphs = []
        for side, (sources, window) in enumerate(
            ((before_sources, before.window), (after_sources, after.window))
        ):
            graphs.append(prepare(con, sources, window))
            _keep_samples(con, side)
        latency_p = _latency_tests(con)
    finally:
        con.close()
    return Diff(
        graphs[0], graphs[1], before.label, after.label, compare(graphs[0], graphs[1], latency_p)
    )


def parse_release(text: str) -> tuple[str, str]:
    service, at, version = text.rpartition("@")
    if not at or not service or not version:
        raise UsageError(f"--release: expected SERVICE@VERSION, got {text!r}")
    return service, version


def release_time(sources: SpanSources, service: str, version: str, window: TimeRange) -> int:
    """When spans of `service` with service.version `version` first appear in the window.

    The split is the start of the first trace that reached the new version, so that trace
    falls wholly on the after side.
    """
    con = connect()
    try:
        register_identity(con, sources, window)
        # From the start of the trace that first reached the release, so that trace is whole.
        row = con.execute(
            """
            WITH first AS (
                SELECT trace_id FROM span_identity
                WHERE service_name = $service AND service_version = $version
                ORDER BY start_time, trace_id LIMIT 1
            )
            SELECT epoch_ns(min(start_time)) FROM span_identity
            WHERE trace_id IN (SELECT trace_id FROM first)
            """,
            {"service": service, "version": version},
        ).fetchone()
        if row is not None and row[0] is not None:
            return int(row[0])
        versions = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT service_version FROM span_identity "
                "WHERE service_name = $service AND service_version IS NOT NULL ORDER BY 1",
                {"service": service},
            ).fetchall()
        ]
        if versions:
            raise UsageError(
                f"--release: {service} has no spans of version {version!r}; "
                f"versions seen: {', '.join(versions[:10])}"
            )
        names = [
            r[0] for r in con.execute("SELECT DISTINCT service_name FROM span_identity").fetchall()
        ]
    finally:
        con.close()
    if service in names:
        raise UsageError(f"--release: {service} spans carry no service.version")
    raise no_such_service("--release", service, names)


def release_sides(
    sources: SpanSources, service: str, version: str, window: TimeRange
) -> tuple[Side, Side]:
    """The windows before and after the release of `service` at `version`."""
    split = release_time(sources, service, version, window)
    release = f"{service}@{version}"
    return (
        Side(f"before {release}", intersect(window, TimeRange(None, split))),
        Side(f"{release} and after", intersect(window, TimeRange(split, None))),
    )
