"""SLOs as multi-window error-budget burn rates, over the spans' own timestamps (DESIGN §6).

Two halves:
- `SloMeter` counts, in DuckDB, the calls and bad calls of every SLO target over every window
  the rules name, each window ending at the data's end (the last span's end). It reads the
  tables the pairing leaves behind (`build.prepare_calls`): `s` (spans) for services, whose
  requests are their incoming SERVER/CONSUMER spans, and `raw_calls` (one row per call, with
  its start time) for edges and for nodes counted through their incoming calls, exactly as the
  build counts them. No per-span Python.
- `evaluate` turns those counts into a `SloResult`: budget remaining over the SLO window, the
  burn rate over each long and short window, and which conditions fire. Pure Python.

Burn rate = (bad / calls) / (1 - objective): 1 spends the budget exactly over the SLO window.
A condition fires when both its long and its short window burn at `factor` or more, and both
windows hold at least the SLO's minimum call count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from servicemap.build import connect, prepare_calls
from servicemap.graph import BurnRateResult, SloResult, Status
from servicemap.pairing import INCOMING, span_end_ns
from servicemap.rules import Slo, matches
from servicemap.sources import SpanSources
from servicemap.timeparse import TimeRange

log = logging.getLogger(__name__)

# Calls as the build counts them: a self-edge that exists only through a virtual name is dropped.
_CALLS = "(SELECT * FROM raw_calls WHERE NOT (virtual_name AND source = target))"

# ("node", id, "") or ("edge", source, target)
TargetKey = tuple[str, str, str]


def node_key(node_id: str) -> TargetKey:
    return ("node", node_id, "")


def edge_key(source: str, target: str) -> TargetKey:
    return ("edge", source, target)


@dataclass(frozen=True)
class WindowCounts:
    calls: int = 0
    bad: int = 0


@dataclass(frozen=True)
class SloInputs:
    """What evaluation needs: for each (SLO name, target), counts per window length (ns),
    each window being [end_ns - length, end_ns]."""

    end_ns: int | None = None
    counts: Mapping[tuple[str, TargetKey], Mapping[int, WindowCounts]] = field(default_factory=dict)

    def get(self, slo: Slo, target: TargetKey, window_ns: int) -> WindowCounts:
        return self.counts.get((slo.name, target), {}).get(window_ns, WindowCounts())


def windows_of(slo: Slo) -> list[int]:
    """Every window length an SLO reads, in nanoseconds."""
    lengths = {slo.window_ns}
    for condition in slo.burn_rates:
        lengths.update((condition.long_ns, condition.short_ns))
    return sorted(lengths)


@dataclass(frozen=True)
class _Target:
    slo: Slo
    key: TargetKey
    source: str  # "spans" (a service's incoming spans) or "calls"


class SloMeter:
    """Counts SLO events on a connection that holds the pairing's `s` and `raw_calls`.

    Call it with the connection (it fits a build hook run after `prepare_calls`); the result
    is in `inputs`.
    """

    def __init__(self, slos: Sequence[Slo]) -> None:
        self.slos = tuple(slos)
        self.inputs = SloInputs()

    def _targets(self, con: duckdb.DuckDBPyConnection) -> list[_Target]:
        span_query = f"SELECT DISTINCT service_name FROM s WHERE {INCOMING}"
        span_services = {row[0] for row in con.execute(span_query).fetchall()}
        edges = con.execute(f"SELECT DISTINCT source, target FROM {_CALLS}").fetchall()
        call_targets = {target for _, target in edges}
        targets: list[_Target] = []
        for slo in self.slos:
            if slo.service is not None:
                for name in sorted(span_services | call_targets):
                    if matches(slo.service, name):
                        source = "spans" if name in span_services else "calls"
                        targets.append(_Target(slo, node_key(name), source))
            for src, dst in sorted(edges):
                if slo.applies_to_edge(src, dst):
                    targets.append(_Target(slo, edge_key(src, dst), "calls"))
        return targets

    def __call__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.inputs = measure(con, self._targets(con) if self.slos else [])


def _window_columns(end_ns: int, lengths: Sequence[int]) -> str:
    columns = []
    for length in lengths:
        since = end_ns - length
        columns.append(
            f"count(*) FILTER (WHERE t >= {since}), count(*) FILTER (WHERE bad AND t >= {since})"
        )
    return ", ".join(columns)


def measure(con: duckdb.DuckDBPyConnection, targets: Sequence[_Target]) -> SloInputs:
    """Calls and bad calls of each target over each window [end - length, end] of its SLO."""
    rows = con.execute(f"SELECT max({span_end_ns()}) FROM s").fetchall()
    end_ns = rows[0][0] if rows else None
    if not targets or end_ns is None:
        return SloInputs(end_ns=end_ns)
    table = pa.table(
        {
            "idx": pa.array(range(len(targets)), pa.int64()),
            "source": [t.source for t in targets],
            "a": [t.key[1] for t in targets],
            "b": [t.key[2] for t in targets],
            "is_edge": [t.key[0] == "edge" for t in targets],
            "threshold_ns": pa.array(
                [
                    None if t.slo.threshold_ms is None else round(t.slo.threshold_ms * 1e6)
                    for t in targets
                ],
                pa.int64(),
            ),
        }
    )
    lengths = sorted({w for t in targets for w in windows_of(t.slo)})
    span_events = f"""
        SELECT g.idx, g.threshold_ns, epoch_ns(x.start_time) AS t, x.failed,
               x.duration_ns AS latency_ns
        FROM slo_targets AS g JOIN s AS x ON x.service_name = g.a
        WHERE g.source = 'spans' AND x.{INCOMING}"""
    call_events = f"""
        SELECT g.idx, g.threshold_ns, epoch_ns(x.start_time) AS t, x.failed, x.latency_ns
        FROM slo_targets AS g JOIN {_CALLS} AS x
          ON x.target = CASE WHEN g.is_edge THEN g.b ELSE g.a END
         AND (NOT g.is_edge OR x.source = g.a)
        WHERE g.source = 'calls'"""
    query = f"""
        WITH events AS ({span_events} UNION ALL {call_events}),
        judged AS (
            SELECT idx, t,
                   CASE WHEN threshold_ns IS NULL THEN COALESCE(failed, FALSE)
                        ELSE latency_ns > threshold_ns END AS bad
            FROM events
            WHERE threshold_ns IS NULL OR latency_ns IS NOT NULL
        )
        SELECT idx, {_window_columns(end_ns, lengths)} FROM judged GROUP BY idx"""
    con.register("slo_targets", table)
    try:
        results = con.execute(query).fetchall()
    finally:
        con.unregister("slo_targets")
    counts: dict[tuple[str, TargetKey], dict[int, WindowCounts]] = {}
    for idx, *values in results:
        target = targets[idx]
        wanted = windows_of(target.slo)
        counts[(target.slo.name, target.key)] = {
            length: WindowCounts(values[2 * i], values[2 * i + 1])
            for i, length in enumerate(lengths)
            if length in wanted
        }
    return SloInputs(end_ns=end_ns, counts=counts)


def burn_rate(counts: WindowCounts, objective: float) -> float | None:
    """(bad / calls) / (1 - objective), rounded to 6 places; None without calls."""
    if counts.calls == 0:
        return None
    return round(counts.bad / counts.calls / (1 - objective), 6)


def evaluate(slo: Slo, target: TargetKey, inputs: SloInputs, min_calls: int) -> SloResult:
    """The SLO's result for one node or edge; `min_calls` applies unless the SLO sets its own."""
    minimum = slo.min_calls if slo.min_calls is not None else min_calls
    total = inputs.get(slo, target, slo.window_ns)
    budget = burn_rate(total, slo.objective)
    results = []
    for condition in slo.burn_rates:
        long = inputs.get(slo, target, condition.long_ns)
        short = inputs.get(slo, target, condition.short_ns)
        long_rate, short_rate = burn_rate(long, slo.objective), burn_rate(short, slo.objective)
        firing = (
            long_rate is not None
            and short_rate is not None
            and min(long.calls, short.calls) >= max(minimum, 1)
            and long_rate >= condition.factor
            and short_rate >= condition.factor
        )
        results.append(
            BurnRateResult(
                severity=condition.severity,
                long=condition.long,
                short=condition.short,
                factor=condition.factor,
                long_calls=long.calls,
                long_bad=long.bad,
                long_burn_rate=long_rate,
                short_calls=short.calls,
                short_bad=short.bad,
                short_burn_rate=short_rate,
                firing=firing,
            )
        )
    fired: list[Status] = [r.severity for r in results if r.firing]
    status: Status = "no_data" if total.calls == 0 else "ok"
    if "critical" in fired:
        status = "critical"
    elif "warning" in fired:
        status = "warning"
    return SloResult(
        name=slo.name,
        kind=slo.kind,
        objective=slo.objective,
        window=slo.window,
        threshold_ms=slo.threshold_ms,
        calls=total.calls,
        bad=total.bad,
        budget_remaining=None if budget is None else round(1 - budget, 6),
        burn_rates=tuple(results),
        status=status,
    )


def slos_for_node(slos: Iterable[Slo], node_id: str) -> list[Slo]:
    return [slo for slo in slos if slo.applies_to_node(node_id)]


def slos_for_edge(slos: Iterable[Slo], source: str, target: str) -> list[Slo]:
    return [slo for slo in slos if slo.applies_to_edge(source, target)]


def measure_sources(sources: SpanSources, window: TimeRange, slos: Sequence[Slo]) -> SloInputs:
    """Count SLO events from span sources on a connection of our own.

    It pairs the spans again, so `render` passes an `SloMeter` to `build_graph` instead; diff
    and investigate use this only to colour their pictures when the rules have SLOs.
    """
    meter = SloMeter(slos)
    if not slos:
        return meter.inputs
    con = connect()
    try:
        prepare_calls(con, sources, window)
        meter(con)
    finally:
        con.close()
    return meter.inputs
