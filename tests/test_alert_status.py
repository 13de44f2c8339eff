"""Alert status end to end: `render --rules/--alerts`, Alertmanager files, SLOs over real spans,
bad files in one line, and the demo's colours in the SVG."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from servicemap.alertmanager import load_alerts, parse_alerts
from servicemap.alerts import apply_status
from servicemap.errors import RulesError
from servicemap.graph import Edge, Node, ServiceGraph, Window, parse_time
from servicemap.render.style import EDGE_COLOUR, STATUS_FILL, STATUS_LINE
from servicemap.rules import parse_rules
from tests import spans as sp
from tests.conftest import DEMO, edges_of, nodes_of

DEMO_RULES = DEMO.parent / "rules.yaml"
DEMO_ALERTS = DEMO.parent / "alerts.json"
SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")

# --- Alertmanager ----------------------------------------------------------------------------

WINDOW_END = "2026-11-01T12:10:00Z"


def am_alert(
    name: str,
    labels: dict[str, str],
    state: str = "active",
    silenced: tuple[str, ...] = (),
    inhibited: tuple[str, ...] = (),
    starts: str = "2026-11-01T11:55:00Z",
    ends: str = "2026-11-01T12:30:00Z",
    summary: str | None = None,
) -> dict[str, Any]:
    """One alert as Alertmanager's GET /api/v2/alerts returns it."""
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": summary} if summary else {},
        "startsAt": starts,
        "endsAt": ends,
        "updatedAt": "2026-11-01T12:09:00Z",
        "fingerprint": name.lower(),
        "receivers": [{"name": "team"}],
        "status": {"state": state, "silencedBy": list(silenced), "inhibitedBy": list(inhibited)},
        "generatorURL": "http://prometheus:9090/graph",
    }


AM_FILE = [
    am_alert("CheckoutDown", {"service": "checkout", "severity": "critical"}, summary="down"),
    am_alert("PaymentSlow", {"job": "payment", "severity": "warning"}),
    am_alert("WebPaged", {"service_name": "web", "severity": "page"}),
    am_alert(
        "InventorySilenced",
        {"service": "inventory", "severity": "critical"},
        state="suppressed",
        silenced=("7d2f",),
    ),
    am_alert(
        "ShippingInhibited",
        {"service": "shipping", "severity": "critical"},
        state="suppressed",
        inhibited=("e1",),
    ),
    am_alert(
        "EmailResolved",
        {"service": "email", "severity": "critical"},
        ends="2026-11-01T12:05:00Z",  # before the data's window ends
    ),
    am_alert("OrdersNew", {"service": "orders", "severity": "info"}, state="unprocessed"),
    am_alert(
        "CartLater",
        {"service": "cart", "severity": "critical"},
        starts="2026-11-01T12:20:00Z",  # after the data's window ends: not on this map
        ends="2026-11-01T12:50:00Z",
    ),
    am_alert("Elsewhere", {"service": "not-on-the-map", "severity": "critical"}),
    am_alert("NoServiceLabel", {"instance": "checkout", "severity": "critical"}),
]
NODES = ("checkout", "payment", "web", "inventory", "shipping", "email", "orders", "cart")


def judge_alerts(alerts: list[dict[str, Any]], rules_text: str = "") -> dict[str, Node]:
    graph = ServiceGraph(
        window=Window(0, parse_time(WINDOW_END), 1, 1),
        nodes=tuple(Node(name, "service", 100, 0) for name in NODES),
    )
    judged = apply_status(graph, parse_rules(rules_text), alerts=parse_alerts(alerts))
    return {n.id: n for n in judged.nodes}


def test_alertmanager_firing_silenced_inhibited_and_resolved() -> None:
    nodes = judge_alerts(AM_FILE)
    statuses = {name: node.status for name, node in nodes.items()}
    assert statuses == {
        "checkout": "critical",
        "payment": "warning",  # matched by `job`
        "web": "critical",  # severity page → critical, matched by `service_name`
        "inventory": "ok",  # silenced
        "shipping": "ok",  # inhibited
        "email": "ok",  # resolved before the window's end
        "orders": "warning",  # unprocessed counts as active; unknown severity → warning
        "cart": "ok",  # started after the window's end
    }
    (reason,) = nodes["checkout"].reasons
    assert reason.to_json() == {
        "rule": "alert:CheckoutDown",
        "status": "critical",
        "value": None,
        "threshold": None,
        "detail": "down",
    }


def test_alert_labels_and_severities_are_configurable() -> None:
    rules = """
alerts:
  labels: [instance]
  severities: {info: ignore}
  other: critical
"""
    statuses = {name: node.status for name, node in judge_alerts(AM_FILE, rules).items()}
    assert statuses["checkout"] == "critical"  # only `instance` matches now: NoServiceLabel
    assert nodes_reason_names(judge_alerts(AM_FILE, rules)["checkout"]) == ["alert:NoServiceLabel"]
    assert statuses["payment"] == "ok"  # `job` no longer read
    assert statuses["orders"] == "ok"


def nodes_reason_names(node: Node) -> list[str]:
    return [r.rule for r in node.reasons]


def test_an_alert_makes_a_node_without_traffic_critical() -> None:
    window = Window(0, parse_time(WINDOW_END), 0, 0)
    graph = ServiceGraph(window=window, nodes=(Node("checkout", "service"),))
    alerts = parse_alerts([am_alert("Down", {"service": "checkout", "severity": "critical"})])
    assert apply_status(graph).nodes[0].status == "no_data"
    assert apply_status(graph, alerts=alerts).nodes[0].status == "critical"


def test_calls_out_are_traffic_but_an_idle_node_has_no_data() -> None:
    """A job that only calls others (or the virtual user) is active; a node with no calls in
    or out in the window is not."""
    graph = ServiceGraph(
        window=Window(0, 1, 0, 0),
        nodes=(Node("cron", "service"), Node("db", "database", 3), Node("idle", "service")),
        edges=(Edge("cron", "db", "database", 3),),
    )
    statuses = {node.id: node.status for node in apply_status(graph).nodes}
    assert statuses == {"cron": "ok", "db": "ok", "idle": "no_data"}


def test_webhook_payload_and_v1_envelope_are_read() -> None:
    webhook = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "A", "service": "checkout"}},
            {"status": "resolved", "labels": {"alertname": "B", "service": "payment"}},
        ],
    }
    assert judge_alerts(webhook)["checkout"].status == "warning"  # type: ignore[arg-type]
    assert judge_alerts(webhook)["payment"].status == "ok"  # type: ignore[arg-type]
    v1 = {"status": "success", "data": [am_alert("C", {"service": "web"})]}
    assert judge_alerts(v1)["web"].status == "warning"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "alerts.json:1: invalid JSON"),
        ('{"x": 1}', "expected Alertmanager's /api/v2/alerts list"),
        ("[1]", "alert [0]: expected an alert object"),
        ('[{"labels": []}]', "alert [0].labels: expected an object of strings"),
        ('[{"labels": {}, "endsAt": "yesterday"}]', "alert [0].endsAt: expected an RFC 3339"),
        ('[{"labels": {"service": 5}}]', "alert [0].labels.service: expected a string, got 5"),
        ('[{"labels": {}, "status": {"state": "bogus"}}]', "alert [0].status.state: expected one"),
        ('[{"labels": {}, "status": "pending"}]', 'alert [0].status: expected "firing"'),
        ('[{"labels": {}, "startsAt": 17}]', "alert [0].startsAt: expected an RFC 3339"),
    ],
)
def test_bad_alerts_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "alerts.json"
    path.write_text(content)
    with pytest.raises(RulesError) as info:
        load_alerts(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# --- the CLI ---------------------------------------------------------------------------------


def test_without_rules_the_built_in_defaults_apply(run) -> None:  # type: ignore[no-untyped-def]
    plain = run("render", str(DEMO))
    assert plain.code == 0
    nodes = nodes_of(plain.json())
    assert nodes["checkout"]["status"] == "critical"  # 8 % ≥ 5 %
    assert nodes["web"]["status"] == "warning"  # 3 % ≥ 1 %
    assert all("slos" not in n for n in plain.json()["nodes"])


DEMO_NODE_STATUS = {
    "api.sendgrid.com": "ok",
    "api.stripe.com": "warning",  # 8.2 % ≥ 2 % (defaults; the edge rule is for edges)
    "checkout": "critical",  # p95 1106 ms ≥ 1000; SLO burns 8× over 6 h and 30 min
    "email": "ok",  # its alert is silenced
    "inventory": "critical",  # p99 848 ms ≥ 800 ("inventory*")
    "inventory-db": "critical",  # p99 845 ms ≥ 800 ("inventory*")
    "orders": "ok",  # its alert was resolved before the window ended
    "payment": "warning",  # 8.2 %: its own error-rate rule, warning at 5 %
    "redis.internal": "ok",
    "shipping": "critical",  # Alertmanager: ShippingQueueBacklog, critical
    "shipping-db": "ok",
    "user": "ok",  # no calls in, but its calls out are traffic
    "web": "warning",  # 3 % ≥ 2 %
}
DEMO_EDGE_STATUS = {
    ("checkout", "inventory"): "warning",
    ("checkout", "orders"): "ok",
    ("checkout", "payment"): "warning",
    ("checkout", "shipping"): "critical",  # p99 18 ms ≥ 15: one slow edge
    ("email", "api.sendgrid.com"): "ok",
    ("inventory", "inventory-db"): "ok",
    ("orders", "email"): "ok",
    ("orders", "shipping"): "ok",
    ("payment", "api.stripe.com"): "ok",  # 8.2 % < 10 % ("* -> api.*")
    ("shipping", "shipping-db"): "ok",
    ("user", "web"): "warning",
    ("web", "checkout"): "critical",
    ("web", "inventory"): "ok",
    ("web", "redis.internal"): "ok",
}


def demo_with_rules(run) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    result = run("render", str(DEMO), "--rules", str(DEMO_RULES), "--alerts", str(DEMO_ALERTS))
    assert result.code == 0, result.err
    graph: dict[str, Any] = result.json()
    return graph


def test_demo_with_rules_and_alerts(run) -> None:  # type: ignore[no-untyped-def]
    graph = demo_with_rules(run)
    assert {n["id"]: n["status"] for n in graph["nodes"]} == DEMO_NODE_STATUS
    assert {(e["source"], e["target"]): e["status"] for e in graph["edges"]} == DEMO_EDGE_STATUS
    checkout = nodes_of(graph)["checkout"]
    (slo,) = checkout["slos"]
    # 6 of 75 requests failed: 0.08 / (1 - 0.99) = 8 over every window holding them all.
    assert (slo["calls"], slo["bad"], slo["budget_remaining"]) == (75, 6, -7.0)
    assert [(b["long_burn_rate"], b["firing"]) for b in slo["burn_rates"]] == [
        (8.0, False),
        (8.0, True),
    ]
    assert {"rule": "slo:checkout-availability", "status": "warning", "value": 8.0,
            "threshold": 6.0, "detail": "over 6h and 30m"} in checkout["reasons"]  # fmt: skip
    edge_slo = next(e for e in graph["edges"] if (e["source"], e["target"]) == ("orders", "email"))
    assert edge_slo["slos"][0]["budget_remaining"] == 1.0
    assert demo_with_rules(run) == graph  # deterministic


@needs_dot
def test_demo_svg_with_rules_shows_the_expected_colours(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "map.svg"
    result = run(
        "render", str(DEMO), "--rules", str(DEMO_RULES), "--alerts", str(DEMO_ALERTS),
        "--format", "svg", "-o", str(out),
    )  # fmt: skip
    assert result.code == 0, result.err
    root = ET.parse(out).getroot()
    groups = {
        g.findtext(f"{SVG}title"): g for g in root.iter(f"{SVG}g") if g.get("class") == "node"
    }
    for node_id, status in DEMO_NODE_STATUS.items():
        fills = {(s.get("fill") or "").lower() for s in groups[node_id].iter() if s.get("fill")}
        assert STATUS_FILL[status] in fills, (node_id, status, fills)  # type: ignore[index]
    tooltips = " ".join(
        a.get("{http://www.w3.org/1999/xlink}title") or "" for a in root.iter(f"{SVG}a")
    )
    assert "ShippingQueueBacklog" in tooltips
    assert "checkout-availability" in tooltips
    assert "budget -700.0% left" in tooltips and "burn 1h 8×" in tooltips
    edges = {g.findtext(f"{SVG}title"): g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"}
    for (source, target), status in DEMO_EDGE_STATUS.items():
        paths = edges[f"{source}->{target}"].iter(f"{SVG}path")
        strokes = {(path.get("stroke") or "").lower() for path in paths}
        failing = status in ("warning", "critical")
        expected = STATUS_LINE[status] if failing else EDGE_COLOUR  # type: ignore[index]
        assert strokes == {expected}, (source, target, status, strokes)


BAD_RULES = [
    ("defaults:\n  error_rat: {warning: 0.1}\n", "rules.yaml:2: defaults.error_rat: unknown key"),
    (
        'services:\n  "checkout*":\n    latency_p95_ms: {warning: "slow"}\n',
        'rules.yaml:3: services."checkout*".latency_p95_ms.warning: expected a number',
    ),
    (
        "edges:\n  web -> checkout:\n    error_rate: {warning: 0.2, critical: 0.1}\n",
        '3: edges."web -> checkout".error_rate: warning (0.2) is above critical (0.1)',
    ),
    ("defaults: {error_rate: [0.1\n", "rules.yaml:2: invalid YAML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RULES)
def test_bad_rules_file_fails_in_one_line(run, tmp_path: Path, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    result = run("render", str(DEMO), "--rules", str(rules))
    assert result.code == 1
    assert result.out == ""
    (line,) = result.err.strip().splitlines()
    assert line.startswith("servicemap: error: ")
    assert message in line


@pytest.mark.parametrize("option", ["--rules", "--alerts"])
def test_missing_rules_or_alerts_file(run, tmp_path: Path, option: str) -> None:  # type: ignore[no-untyped-def]
    result = run("render", str(DEMO), option, str(tmp_path / "absent"))
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1
    assert "no such" in result.err


def test_alerts_file_without_rules(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alerts = tmp_path / "alerts.json"
    firing = am_alert("X", {"service": "email", "severity": "critical"})
    resolved = am_alert("Y", {"service": "shipping"}, ends="2026-11-01T12:09:00Z")
    alerts.write_text(json.dumps([firing, resolved]))
    result = run("render", str(DEMO), "--alerts", str(alerts))
    assert result.code == 0, result.err
    assert nodes_of(result.json())["email"]["status"] == "critical"
    assert nodes_of(result.json())["shipping"]["status"] == "ok"  # ended 12:09, data 12:09:43


# --- rules over real spans -------------------------------------------------------------------


def call(trace: str, caller: str, callee: str, parent: str | None, **kw: Any) -> list[dict]:  # type: ignore[type-arg]
    """A CLIENT span in `caller` and its SERVER child in `callee`."""
    error = kw.pop("error", False)
    return [
        sp.span(f"{caller}->{callee}", caller, "client", parent, trace=trace, **kw),
        sp.span(f"{callee}.srv", callee, "server", f"{caller}->{callee}", trace=trace,
                error=error, **kw),
    ]  # fmt: skip


def test_a_latency_rule_turns_one_slow_edge_critical(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spans = []
    for i in range(20):
        t = f"t{i}"
        start = i * 1000.0
        spans.append(sp.span("web.srv", "web", "server", trace=t, start_ms=start, duration_ms=700))
        spans += call(t, "web", "checkout", "web.srv", start_ms=start, duration_ms=600)
        spans += call(t, "web", "inventory", "web.srv", start_ms=start, duration_ms=10)
        spans += call(t, "checkout", "payment", "checkout.srv", start_ms=start, duration_ms=20)
    traces = sp.write(tmp_path / "traces.json", spans)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "edges:\n"
        '  "web -> *": {latency_p95_ms: {warning: 300, critical: 500}}\n'
        '  "checkout -> *": {latency_p95_ms: {warning: 300, critical: 500}}\n'
    )
    graph = run("render", str(traces), "--rules", str(rules)).json()
    assert edges_of(graph)[("web", "checkout")] == (20, 0)
    statuses = {(e["source"], e["target"]): e["status"] for e in graph["edges"]}
    assert statuses == {
        ("user", "web"): "ok",
        ("web", "checkout"): "critical",
        ("web", "inventory"): "ok",
        ("checkout", "payment"): "ok",
    }


def test_slos_over_span_timestamps(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """50 requests web → checkout: 40 (6 failed) 20 min before the end, 10 (2 failed) in the
    last 5 min. Objective 0.99: 5 min burns 0.2/0.01 = 20; 30 min, 1 h and 6 h burn
    0.16/0.01 = 16 → critical (14.4 over 1 h and 5 min) and warning (6 over 6 h and 30 min);
    budget over 30 d: 1 - 16 = -15. The same for the service SLO on checkout's server spans."""
    spans = []
    minute = 60_000.0
    starts = [40 * minute + i * 100 for i in range(40)] + [
        57 * minute + i * 18_000 for i in range(10)
    ]
    failing = set(range(6)) | {40, 41}
    for i, start in enumerate(starts):
        t = f"t{i}"
        spans.append(sp.span("web.srv", "web", "server", trace=t, start_ms=start))
        spans += call(t, "web", "checkout", "web.srv", start_ms=start, error=i in failing)
    traces = sp.write(tmp_path / "traces.json", spans)
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
defaults: {error_rate: {}}
slos:
  - {name: edge-availability, edge: "web -> checkout", objective: 0.99}
  - {name: checkout-availability, service: "check*", objective: 0.99}
""")
    graph = run("render", str(traces), "--rules", str(rules)).json()
    edge = next(e for e in graph["edges"] if e["target"] == "checkout")
    node = nodes_of(graph)["checkout"]
    for item, name in ((edge, "edge-availability"), (node, "checkout-availability")):
        (slo,) = item["slos"]
        assert slo["name"] == name
        assert (slo["calls"], slo["bad"], slo["budget_remaining"]) == (50, 8, -15.0)
        burn = [
            (b["severity"], b["long_calls"], b["long_burn_rate"], b["short_calls"],
             b["short_burn_rate"], b["firing"])
            for b in slo["burn_rates"]
        ]  # fmt: skip
        assert burn == [
            ("critical", 50, 16.0, 10, 20.0, True),
            ("warning", 50, 16.0, 50, 16.0, True),
        ]
        assert item["status"] == "critical"
        assert [r["status"] for r in item["reasons"]] == ["critical", "warning"]
    assert nodes_of(graph)["web"]["status"] == "ok"
    assert "slos" not in nodes_of(graph)["web"]
