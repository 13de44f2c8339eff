"""SLO burn rates over the spans' own timestamps, on small DuckDB tables shaped like the ones the
pairing leaves behind (`s` and `raw_calls`), with burn rates computed by hand."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pytest

from servicemap.alerts import apply_status
from servicemap.graph import Edge, Node, ServiceGraph, Window
from servicemap.rules import BurnRate, Rules, Slo, parse_rules
from servicemap.slo import SloMeter, WindowCounts, burn_rate, edge_key, evaluate, node_key

END = 1_793_534_400_000_000_000  # 2026-11-01T12:00:00Z: the end of the data
MINUTE = 60 * 10**9
SERVER, INTERNAL = 2, 1


@dataclass(frozen=True)
class Events:
    """`count` calls starting `minutes` before the end, `bad` of them failed (or slow)."""

    minutes: float
    count: int
    bad: int = 0
    latency_ms: float | None = 10.0
    bad_latency_ms: float | None = None


def _expand(events: list[Events]) -> tuple[list[int], list[bool], list[int | None]]:
    starts: list[int] = []
    failed: list[bool] = []
    latencies: list[int | None] = []
    for e in events:
        for i in range(e.count):
            is_bad = i < e.bad
            starts.append(END - int(e.minutes * MINUTE))
            slow = e.bad_latency_ms is not None and is_bad
            failed.append(is_bad and not slow)
            ms = e.bad_latency_ms if slow else e.latency_ms
            latencies.append(None if ms is None else int(ms * 1e6))
    return starts, failed, latencies


def connection(
    edge_events: dict[tuple[str, str], list[Events]] | None = None,
    server_events: dict[str, list[Events]] | None = None,
    virtual_self: int = 0,
) -> duckdb.DuckDBPyConnection:
    """`s` holds SERVER spans per service plus one span that ends exactly at END;
    `raw_calls` holds the calls per edge."""
    rows: dict[str, list[object]] = {
        k: [] for k in ("service_name", "kind", "start_time", "duration_ns", "failed")
    }
    rows["service_name"].append("clock")
    rows["kind"].append(INTERNAL)
    rows["start_time"].append(END - 10**9)
    rows["duration_ns"].append(10**9)
    rows["failed"].append(False)
    for service, events in (server_events or {}).items():
        starts, failed, latencies = _expand(events)
        rows["service_name"] += [service] * len(starts)
        rows["kind"] += [SERVER] * len(starts)
        rows["start_time"] += starts
        rows["duration_ns"] += latencies
        rows["failed"] += failed
    calls: dict[str, list[object]] = {
        k: [] for k in ("source", "target", "failed", "latency_ns", "start_time", "virtual_name")
    }
    for (source, target), events in (edge_events or {}).items():
        starts, failed, latencies = _expand(events)
        calls["source"] += [source] * len(starts)
        calls["target"] += [target] * len(starts)
        calls["failed"] += failed
        calls["latency_ns"] += latencies
        calls["start_time"] += starts
        calls["virtual_name"] += [False] * len(starts)
    for _ in range(virtual_self):  # a self-edge that exists only through a virtual name
        calls["source"].append("checkout")
        calls["target"].append("checkout")
        calls["failed"].append(True)
        calls["latency_ns"].append(1)
        calls["start_time"].append(END)
        calls["virtual_name"].append(True)
    timestamp = pa.timestamp("ns", tz="UTC")
    s = pa.table(
        {
            "service_name": pa.array(rows["service_name"], pa.string()),
            "kind": pa.array(rows["kind"], pa.int32()),
            "start_time": pa.array(rows["start_time"], pa.int64()).cast(timestamp),
            "duration_ns": pa.array(rows["duration_ns"], pa.int64()),
            "failed": pa.array(rows["failed"], pa.bool_()),
        }
    )
    raw_calls = pa.table(
        {
            "source": pa.array(calls["source"], pa.string()),
            "target": pa.array(calls["target"], pa.string()),
            "failed": pa.array(calls["failed"], pa.bool_()),
            "latency_ns": pa.array(calls["latency_ns"], pa.int64()),
            "start_time": pa.array(calls["start_time"], pa.int64()).cast(timestamp),
            "virtual_name": pa.array(calls["virtual_name"], pa.bool_()),
        }
    )
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.register("s_arrow", s)
    con.register("raw_calls_arrow", raw_calls)
    con.execute("CREATE TABLE s AS SELECT * FROM s_arrow")
    con.execute("CREATE TABLE raw_calls AS SELECT * FROM raw_calls_arrow")
    return con


AVAILABILITY = Slo(name="web-checkout", objective=0.99, edge=("web", "checkout"))

# Default conditions: critical 1h & 5m at 14.4, warning 6h & 30m at 6. Objective 0.99, so
# burn rate = bad fraction / 0.01.
# (case, events, expected {(long, short): (long burn, short burn, firing)}, status, budget)
BURN_CASES = [
    (
        "fast burn pages",
        # 5m: 2/10 = 20; 1h, 30m and 6h: 8/50 = 16
        [Events(1, 10, 2), Events(20, 40, 6)],
        {("1h", "5m"): (16.0, 20.0, True), ("6h", "30m"): (16.0, 16.0, True)},
        "critical",
        -15.0,
    ),
    (
        "recovered: the short window is clean",
        # 5m: 0/10 = 0; 1h, 30m, 6h: 8/50 = 16
        [Events(1, 10, 0), Events(20, 40, 8)],
        {("1h", "5m"): (16.0, 0.0, False), ("6h", "30m"): (16.0, 16.0, True)},
        "warning",
        -15.0,
    ),
    (
        "slow burn tickets",
        # 5m: no calls; 1h and 30m: 7/100 = 7; 6h: 70/1000 = 7
        [Events(10, 100, 7), Events(180, 900, 63)],
        {("1h", "5m"): (7.0, None, False), ("6h", "30m"): (7.0, 7.0, True)},
        "warning",
        -6.0,
    ),
    (
        "exactly at the factor fires",
        # 144/1000 = 0.144 → 14.4 everywhere
        [Events(2, 1000, 144)],
        {("1h", "5m"): (14.4, 14.4, True), ("6h", "30m"): (14.4, 14.4, True)},
        "critical",
        -13.4,
    ),
    (
        "just below the factor",
        [Events(2, 1000, 143)],
        {("1h", "5m"): (14.3, 14.3, False), ("6h", "30m"): (14.3, 14.3, True)},
        "warning",
        -13.3,
    ),
    (
        "within budget",
        # 5/1000 = 0.005 → 0.5: half the budget spent
        [Events(2, 1000, 5)],
        {("1h", "5m"): (0.5, 0.5, False), ("6h", "30m"): (0.5, 0.5, False)},
        "ok",
        0.5,
    ),
    (
        "the window start is inclusive",
        # a call exactly 5 minutes before the end is in the 5-minute window: 2/10 = 20
        [Events(5, 10, 2)],
        {("1h", "5m"): (20.0, 20.0, True), ("6h", "30m"): (20.0, 20.0, True)},
        "critical",
        -19.0,
    ),
    (
        "only old data: no burn now, budget spent",
        # 7 h ago: outside every burn window, inside 30 d: 50/100 = 50
        [Events(420, 100, 50)],
        {("1h", "5m"): (None, None, False), ("6h", "30m"): (None, None, False)},
        "ok",
        -49.0,
    ),
]


@pytest.mark.parametrize(
    ("case", "events", "expected", "status", "budget"),
    BURN_CASES,
    ids=[c[0] for c in BURN_CASES],
)
def test_burn_rates(
    case: str,
    events: list[Events],
    expected: dict[tuple[str, str], tuple[float | None, float | None, bool]],
    status: str,
    budget: float,
) -> None:
    meter = SloMeter([AVAILABILITY])
    meter(connection({("web", "checkout"): events}))
    assert meter.inputs.end_ns == END
    result = evaluate(AVAILABILITY, edge_key("web", "checkout"), meter.inputs, min_calls=0)
    measured = {
        (b.long, b.short): (b.long_burn_rate, b.short_burn_rate, b.firing)
        for b in result.burn_rates
    }
    assert measured == expected
    assert result.status == status
    assert result.budget_remaining == pytest.approx(budget)
    assert result.calls == sum(e.count for e in events)


def test_latency_slo_counts_slow_calls_and_skips_calls_without_duration() -> None:
    """Objective 0.9 within 300 ms: 300 ms is good, 301 ms bad; 2 bad of 10 timed calls
    → 0.2 / 0.1 = burn rate 2; the 5 calls without a duration do not count."""
    slo = Slo(name="fast", objective=0.9, edge=("web", "checkout"), threshold_ms=300)
    events = [
        Events(1, 8, 0, latency_ms=300),
        Events(1, 2, 2, latency_ms=300, bad_latency_ms=301),
        Events(1, 5, 0, latency_ms=None),
    ]
    meter = SloMeter([slo])
    meter(connection({("web", "checkout"): events}))
    result = evaluate(slo, edge_key("web", "checkout"), meter.inputs, 0)
    assert (result.calls, result.bad) == (10, 2)
    assert [b.long_burn_rate for b in result.burn_rates] == [2.0, 2.0]
    assert result.budget_remaining == pytest.approx(-1.0)
    assert result.kind == "latency"


def test_failed_but_fast_calls_are_good_for_a_latency_slo() -> None:
    slo = Slo(name="fast", objective=0.9, edge=("web", "checkout"), threshold_ms=300)
    meter = SloMeter([slo])
    meter(connection({("web", "checkout"): [Events(1, 10, 10, latency_ms=5)]}))
    assert evaluate(slo, edge_key("web", "checkout"), meter.inputs, 0).bad == 0


def test_service_slo_counts_incoming_server_spans_and_globs_apply_to_each_match() -> None:
    """checkout: 3 failed SERVER spans of 20 → 0.15 / 0.01 = 15 → critical. A node with only
    incoming calls (redis) counts those; the virtual self-edge is ignored, as in the build."""
    slo = Slo(name="all", objective=0.99, service="*")
    con = connection(
        edge_events={("web", "redis"): [Events(1, 100, 1)], ("web", "checkout"): [Events(1, 5, 5)]},
        server_events={"checkout": [Events(1, 20, 3)]},
        virtual_self=4,
    )
    meter = SloMeter([slo])
    meter(con)
    checkout = evaluate(slo, node_key("checkout"), meter.inputs, 0)
    assert (checkout.calls, checkout.bad) == (20, 3)
    assert checkout.burn_rates[0].long_burn_rate == 15.0
    assert checkout.status == "critical"
    redis = evaluate(slo, node_key("redis"), meter.inputs, 0)
    assert (redis.calls, redis.bad, redis.status) == (100, 1, "ok")
    web = evaluate(slo, node_key("web"), meter.inputs, 0)
    assert (web.calls, web.status, web.budget_remaining) == (0, "no_data", None)


@pytest.mark.parametrize(("min_calls", "firing"), [(10, True), (11, False)])
def test_burn_rate_conditions_need_min_calls_in_both_windows(min_calls: int, firing: bool) -> None:
    slo = Slo(name="a", objective=0.99, edge=("web", "checkout"), min_calls=min_calls)
    meter = SloMeter([slo])
    meter(connection({("web", "checkout"): [Events(1, 10, 5)]}))
    result = evaluate(slo, edge_key("web", "checkout"), meter.inputs, min_calls=0)
    assert result.burn_rates[0].firing is firing


def test_configured_windows_are_measured() -> None:
    """One condition over 10m and 1m: 1/4 in the last minute (burn 25), 2/8 over ten (25)."""
    slo = Slo(
        name="a",
        objective=0.99,
        edge=("web", "checkout"),
        window="1h",
        burn_rates=(BurnRate("critical", "10m", "1m", 20),),
    )
    meter = SloMeter([slo])
    meter(connection({("web", "checkout"): [Events(0.5, 4, 1), Events(9, 4, 1)]}))
    (condition,) = evaluate(slo, edge_key("web", "checkout"), meter.inputs, 0).burn_rates
    assert (condition.long_burn_rate, condition.short_burn_rate) == (25.0, 25.0)
    assert condition.firing


@pytest.mark.parametrize(
    ("calls", "bad", "objective", "expected"),
    [(100, 1, 0.99, 1.0), (1000, 1, 0.999, 1.0), (0, 0, 0.99, None), (10, 10, 0.5, 2.0)],
)
def test_burn_rate_formula(calls: int, bad: int, objective: float, expected: float | None) -> None:
    assert burn_rate(WindowCounts(calls, bad), objective) == expected


def test_slo_reasons_and_json() -> None:
    rules: Rules = parse_rules("""
slos:
  - name: web-checkout
    edge: "web -> checkout"
    objective: 0.99
""")
    meter = SloMeter(rules.slos)
    meter(connection({("web", "checkout"): [Events(1, 10, 2), Events(20, 40, 6)]}))
    graph = ServiceGraph(
        window=Window(END - 3600 * 10**9, END, 1, 1),
        nodes=(Node("checkout", "service", 50, 8), Node("web", "service", 0)),
        edges=(Edge("web", "checkout", "direct", 50, 8),),
    )
    judged = apply_status(graph, rules, meter.inputs)
    edge = judged.edges[0]
    assert edge.status == "critical"
    slo_rules = [(r.rule, r.status, r.value, r.threshold) for r in edge.reasons if r.detail]
    assert slo_rules == [
        ("slo:web-checkout", "critical", 16.0, 14.4),
        ("slo:web-checkout", "warning", 16.0, 6.0),
    ]
    data = edge.to_json()["slos"][0]
    assert data["budget_remaining"] == -15.0
    assert data["burn_rates"][0]["short_burn_rate"] == 20.0
    assert Edge.from_json(edge.to_json()) == edge
    assert "slos" not in judged.nodes[1].to_json()  # only where an SLO applies
    assert ServiceGraph.from_json(judged.to_json()) == judged


def test_node_slos_round_trip_through_json() -> None:
    rules = parse_rules("slos: [{name: a, service: checkout, objective: 0.99}]")
    meter = SloMeter(rules.slos)
    meter(connection(server_events={"checkout": [Events(1, 10, 1)]}))
    graph = ServiceGraph(
        window=Window(END - 60 * 10**9, END, 11, 10), nodes=(Node("checkout", "service", 10, 1),)
    )
    judged = apply_status(graph, rules, meter.inputs)
    assert judged.nodes[0].slos[0].burn_rates[0].long_burn_rate == 10.0
    assert ServiceGraph.from_json(judged.to_json()) == judged
