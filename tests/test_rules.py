"""The rules file: thresholds at, just below and just above each level, min_calls, glob
precedence, and validation that names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from servicemap.alerts import apply_status
from servicemap.errors import RulesError
from servicemap.graph import Edge, Latency, Node, ServiceGraph, Window
from servicemap.rules import (
    BUILTIN_DEFAULTS,
    DEFAULT_RULES,
    BurnRate,
    Thresholds,
    literal_chars,
    load_rules,
    parse_rules,
)

WINDOW = Window(start_ns=0, end_ns=10**9, spans=1, traces=1)


def judge_node(rules_text: str, node: Node) -> Node:
    graph = ServiceGraph(window=WINDOW, nodes=(node,))
    return apply_status(graph, parse_rules(rules_text)).nodes[0]


def judge_edge(rules_text: str, edge: Edge) -> Edge:
    graph = ServiceGraph(window=WINDOW, edges=(edge,))
    return apply_status(graph, parse_rules(rules_text)).edges[0]


def latency(p50: float, p95: float, p99: float) -> Latency:
    return Latency(p50, p95, p99)


# --- each rule kind at, just below and just above each threshold ----------------------------

# (measure, warning, critical, make a node whose measured value is v)
KINDS = {
    "error_rate": (0.02, 0.1, lambda v: Node("svc", "service", 1000, round(v * 1000))),
    "latency_p50_ms": (
        100.0,
        200.0,
        lambda v: Node("svc", "service", 100, 0, latency(v, 10_000, 10_000)),
    ),
    "latency_p95_ms": (
        300.0,
        800.0,
        lambda v: Node("svc", "service", 100, 0, latency(1, v, 10_000)),
    ),
    "latency_p99_ms": (
        500.0,
        1500.0,
        lambda v: Node("svc", "service", 100, 0, latency(1, 1, v)),
    ),
}
EPSILON = {"error_rate": 0.001, "latency_p50_ms": 0.001, "latency_p95_ms": 0.001}
CASES = [
    # (measure, where, expected status)
    (measure, where, expected)
    for measure in KINDS
    for where, expected in [
        ("warning-below", "ok"),
        ("warning-at", "warning"),
        ("warning-above", "warning"),
        ("critical-below", "warning"),
        ("critical-at", "critical"),
        ("critical-above", "critical"),
    ]
]


@pytest.mark.parametrize(("measure", "where", "expected"), CASES)
def test_threshold_at_below_and_above(measure: str, where: str, expected: str) -> None:
    warning, critical, make = KINDS[measure]
    level, side = where.split("-")
    base = warning if level == "warning" else critical
    step = EPSILON.get(measure, 0.001)
    value = {"below": base - step, "at": base, "above": base + step}[side]
    switch_off = "" if measure == "error_rate" else "error_rate: {}, "
    rules = f"defaults: {{{switch_off}{measure}: {{warning: {warning}, critical: {critical}}}}}"
    node = judge_node(rules, make(value))
    assert node.status == expected
    if expected == "ok":
        assert node.reasons == ()
    else:
        (reason,) = node.reasons
        assert reason.rule == measure
        assert reason.status == expected
        assert reason.threshold == (warning if expected == "warning" else critical)
        assert reason.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("errors", "calls", "expected"),
    [
        (0, 100, "ok"),
        (1, 101, "ok"),  # 0.99 %
        (1, 100, "warning"),  # 1 %: at the built-in warning level
        (4, 81, "warning"),  # 4.9 %
        (5, 100, "critical"),  # 5 %
        (6, 100, "critical"),
    ],
)
def test_builtin_defaults_without_a_rules_file(errors: int, calls: int, expected: str) -> None:
    graph = ServiceGraph(window=WINDOW, edges=(Edge("a", "b", "direct", calls, errors),))
    assert apply_status(graph).edges[0].status == expected
    assert DEFAULT_RULES.defaults == BUILTIN_DEFAULTS
    assert BUILTIN_DEFAULTS.error_rate == Thresholds(0.01, 0.05)


def test_no_latency_rule_unless_configured() -> None:
    slow = Node("svc", "service", 100, 0, latency(60_000, 60_000, 60_000))
    assert judge_node("", slow).status == "ok"


@pytest.mark.parametrize(
    ("calls", "errors", "min_calls", "expected"),
    [
        (2, 1, 10, "ok"),  # one failed call in two pages nobody
        (9, 9, 10, "ok"),  # just below
        (10, 1, 10, "critical"),  # at: rules fire
        (11, 1, 10, "warning"),  # just above (9.1 %)
        (2, 1, 0, "critical"),
    ],
)
def test_min_calls(calls: int, errors: int, min_calls: int, expected: str) -> None:
    rules = f"defaults: {{min_calls: {min_calls}, error_rate: {{warning: 0.05, critical: 0.1}}}}"
    assert judge_edge(rules, Edge("a", "b", "direct", calls, errors)).status == expected
    assert judge_node(rules, Node("a", "service", calls, errors)).status == expected


def test_min_calls_per_service_overrides_defaults() -> None:
    rules = """
defaults: {min_calls: 100}
services:
  "pay*": {min_calls: 1}
"""
    assert judge_node(rules, Node("payment", "service", 2, 1)).status == "critical"
    assert judge_node(rules, Node("web", "service", 2, 1)).status == "ok"


def test_no_traffic_is_no_data() -> None:
    assert judge_node("", Node("idle", "service")).status == "no_data"


# --- overrides: globs and precedence ---------------------------------------------------------

PRECEDENCE_RULES = """
defaults:
  latency_p95_ms: {warning: 1000, critical: 2000}
services:
  "*":
    latency_p95_ms: {warning: 900, critical: 1900}
  "check*":
    latency_p95_ms: {warning: 300, critical: 800}
  "checkout*":
    latency_p95_ms: {warning: 200, critical: 700}
  checkout:
    latency_p95_ms: {warning: 100, critical: 600}
  "*-db":
    error_rate: {warning: 0.5, critical: 0.9}
edges:
  "* -> *":
    latency_p95_ms: {warning: 50, critical: 60}
  "web -> *":
    latency_p95_ms: {warning: 40, critical: 45}
  "* -> checkout":
    latency_p95_ms: {warning: 30, critical: 35}
  "web -> checkout":
    latency_p95_ms: {warning: 10, critical: 20}
  "web -> check?ut":
    error_rate: {}
"""


@pytest.mark.parametrize(
    ("node_id", "warning", "critical"),
    [
        ("checkout", 100, 600),  # exact name beats every glob
        ("checkout-v2", 200, 700),  # `checkout*` has more literal characters than `check*`
        ("checker", 300, 800),
        ("web", 900, 1900),  # `*` beats the defaults
    ],
)
def test_service_precedence(node_id: str, warning: float, critical: float) -> None:
    rules = parse_rules(PRECEDENCE_RULES)
    assert rules.for_node(node_id).latency_p95_ms == Thresholds(warning, critical)


def test_settings_merge_per_measure() -> None:
    """A scope sets what it names; the rest comes from the next less specific scope."""
    rules = parse_rules(PRECEDENCE_RULES)
    db = rules.for_node("orders-db")
    assert db.error_rate == Thresholds(0.5, 0.9)  # from "*-db"
    assert db.latency_p95_ms == Thresholds(900, 1900)  # from "*"
    assert rules.for_node("web").error_rate == Thresholds(0.01, 0.05)  # built-in default


@pytest.mark.parametrize(
    ("source", "target", "warning", "critical"),
    [
        ("web", "checkout", 10, 20),  # exact beats globs
        ("api", "checkout", 30, 35),  # "* -> checkout": 8 literal characters
        ("web", "payment", 40, 45),  # "web -> *": 3
        ("api", "payment", 50, 60),  # "* -> *"
    ],
)
def test_edge_precedence(source: str, target: str, warning: float, critical: float) -> None:
    rules = parse_rules(PRECEDENCE_RULES)
    assert rules.for_edge(source, target).latency_p95_ms == Thresholds(warning, critical)


def test_empty_thresholds_switch_a_rule_off_and_edges_ignore_service_rules() -> None:
    rules = parse_rules(PRECEDENCE_RULES)
    assert rules.for_edge("web", "checkout").error_rate == Thresholds()
    assert rules.for_edge("web", "cart").error_rate == Thresholds(0.01, 0.05)
    failing = Edge("web", "checkout", "direct", 100, 100, latency(1, 1, 1))
    assert apply_status(ServiceGraph(WINDOW, edges=(failing,)), rules).edges[0].status == "ok"


def test_same_specificity_first_in_the_file_wins() -> None:
    rules = parse_rules("""
edges:
  "web -> *": {error_rate: {warning: 0.3}}
  "* -> web": {error_rate: {warning: 0.4}}
""")
    assert rules.for_edge("web", "web").error_rate == Thresholds(0.3, None)


@pytest.mark.parametrize(
    ("pattern", "count"), [("checkout", 8), ("checkout*", 8), ("*-db", 3), ("[ab]x?", 1)]
)
def test_literal_chars(pattern: str, count: int) -> None:
    assert literal_chars(pattern) == count


def test_a_latency_rule_turns_one_slow_edge_critical_and_its_neighbours_stay_ok() -> None:
    rules = parse_rules("defaults: {latency_p95_ms: {warning: 300, critical: 500}}")
    edges = (
        Edge("web", "checkout", "direct", 100, 0, latency(50, 650, 900)),
        Edge("web", "inventory", "direct", 100, 0, latency(5, 20, 40)),
        Edge("checkout", "payment", "direct", 100, 0, latency(30, 120, 200)),
    )
    judged = {
        (e.source, e.target): e
        for e in apply_status(ServiceGraph(WINDOW, edges=edges), rules).edges
    }
    assert judged["web", "checkout"].status == "critical"
    assert judged["web", "checkout"].reasons[0].value == 650
    assert judged["web", "inventory"].status == "ok"
    assert judged["checkout", "payment"].status == "ok"


def test_slo_and_alert_sections_parse() -> None:
    rules = parse_rules("""
slos:
  - name: a
    edge: "web -> checkout"
    objective: 0.995
    threshold_ms: 250
    window: 7d
    burn_rates:
      critical: [{long: 1h, short: 5m, factor: 14.4}, {long: 6h, short: 30m, factor: 6}]
      warning: [{long: 1d, short: 2h, factor: 3}]
    min_calls: 5
  - name: b
    service: "pay*"
    objective: 0.999
alerts:
  labels: [app]
  severity_label: level
  severities: {P1: critical, info: ignore}
  other: ignore
""")
    a, b = rules.slos
    assert a.edge == ("web", "checkout") and a.kind == "latency" and a.window == "7d"
    assert a.burn_rates == (
        BurnRate("critical", "1h", "5m", 14.4),
        BurnRate("critical", "6h", "30m", 6.0),
        BurnRate("warning", "1d", "2h", 3.0),
    )
    assert a.min_calls == 5
    assert b.service == "pay*" and b.kind == "availability" and b.window == "30d"
    assert [(c.severity, c.long, c.short, c.factor) for c in b.burn_rates] == [
        ("critical", "1h", "5m", 14.4),
        ("warning", "6h", "30m", 6.0),
    ]
    assert rules.alerts.labels == ("app",)
    assert rules.alerts.status_of("p1") == "critical"
    assert rules.alerts.status_of("page") == "critical"
    assert rules.alerts.status_of("info") == "ignore"
    assert rules.alerts.status_of("whatever") == "ignore"
    assert rules.alerts.status_of(None) == "ignore"


def test_the_design_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("""
defaults:
  min_calls: 10                                  # below this, no rule fires
  error_rate: {warning: 0.01, critical: 0.05}    # fractions
  latency_p95_ms: {warning: 500, critical: 1000} # also latency_p50_ms, latency_p99_ms
services:                                        # keys are names or glob patterns
  "checkout*":
    latency_p95_ms: {warning: 300, critical: 800}
edges:                                           # "SOURCE -> TARGET", globs allowed on both sides
  "checkout -> shipping":
    latency_p99_ms: {critical: 250}
slos:
  - name: checkout-availability
    service: checkout                            # or edge: "web -> checkout"
    objective: 0.999                             # good fraction; latency SLOs add threshold_ms
    window: 30d
    burn_rates:                                  # long window, short window, factor
      critical: [{long: 1h, short: 5m, factor: 14.4}]
      warning: [{long: 6h, short: 30m, factor: 6}]
alerts:
  labels: [service, service_name, job]           # Alertmanager labels matched to node ids
""")
    rules = load_rules(path)
    assert rules.for_node("checkout").latency_p95_ms == Thresholds(300, 800)
    assert rules.for_edge("checkout", "shipping").latency_p99_ms == Thresholds(None, 250)
    assert rules.defaults.min_calls == 10


# --- validation: one line naming the file, the line and the field ----------------------------

BAD = [
    # (rules text, expected message after "rules.yaml:")
    ("defaults:\n  eror_rate: {warning: 0.1}\n", "2: defaults.eror_rate: unknown key"),
    ("default: {}\n", "1: default: unknown key (expected one of: defaults, services"),
    (
        'services:\n  "checkout*":\n    latency_p95_ms: {warning: fast}\n',
        '3: services."checkout*".latency_p95_ms.warning: expected a number',
    ),
    (
        "services:\n  web:\n    latency_p95_ms:\n      warning: 900\n      critical: 300\n",
        "4: services.web.latency_p95_ms: warning (900) is above critical (300)",
    ),
    (
        "defaults:\n  error_rate: {warning: 5, critical: 10}\n",
        "2: defaults.error_rate.warning: expected a fraction between 0 and 1",
    ),
    ("defaults:\n  min_calls: 2.5\n", "2: defaults.min_calls: expected a whole number"),
    ("defaults:\n  min_calls: -1\n", "2: defaults.min_calls: expected a whole number"),
    ("defaults: [1, 2]\n", "1: defaults: expected a mapping"),
    ("- a\n- b\n", "1: expected a mapping"),
    (
        "defaults:\n  error_rate: {warning: true}\n",
        "defaults.error_rate.warning: expected a number",
    ),
    ("defaults:\n  error_rate: 0.1\n", "2: defaults.error_rate: expected a mapping"),
    ('edges:\n  "web checkout": {}\n', '2: edges."web checkout": expected "SOURCE -> TARGET"'),
    ("services:\n  web: {}\n  web: {}\n", "3: services.web: repeated key"),
    ("defaults: {error_rate: {warning: 0.1}\n", "invalid YAML"),
    ("defaults:\n\terror_rate: {}\n", "2: invalid YAML"),
    ("slos:\n  - name: a\n    objective: 1.5\n    service: web\n", "3: slos[0].objective"),
    ("slos:\n  - name: a\n    objective: 0.99\n", "2: slos[0]: give exactly one of"),
    ("slos:\n  - service: web\n    objective: 0.99\n", "2: slos[0]: missing key 'name'"),
    (
        "slos:\n  - {name: a, service: w, objective: 0.9, window: month}\n",
        "2: slos[0].window: expected a duration",
    ),
    (
        "slos:\n  - name: a\n    service: w\n    objective: 0.9\n    burn_rates:\n"
        "      critical: [{long: 5m, short: 1h, factor: 14.4}]\n",
        "6: slos[0].burn_rates.critical[0]: short window 1h is longer than 5m",
    ),
    (
        "slos:\n  - name: a\n    service: w\n    objective: 0.9\n    burn_rates:\n      page: []\n",
        "6: slos[0].burn_rates.page: unknown key",
    ),
    (
        "slos:\n  - {name: a, service: w, objective: 0.9}\n"
        "  - {name: a, service: x, objective: 0.9}\n",
        "3: slos[1].name: repeated SLO name 'a'",
    ),
    (
        "slos:\n  - {name: a, service: w, objective: 0.9, window: 1m}\n",
        "2: slos[0].window: SLO window 1m is shorter than its burn-rate window 6h",
    ),
    ('services:\n  "": {}\n', '2: services."": expected a service name or pattern'),
    ("---\ndefaults: {}\n---\nservices: {}\n", "3: invalid YAML: expected a single document"),
    ("alerts:\n  labels: service\n", "2: alerts.labels: expected a list"),
    ("alerts:\n  severities: {page: loud}\n", "2: alerts.severities.page: expected one of"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_rules_fail_with_the_line_and_field(text: str, message: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "rules.yaml")
    error = str(info.value)
    assert "\n" not in error
    assert error.startswith("rules.yaml:")
    assert message in error


def test_empty_file_means_the_built_in_defaults() -> None:
    assert parse_rules("") == DEFAULT_RULES
    assert parse_rules("# nothing yet\n") == DEFAULT_RULES


def test_scientific_notation_is_a_number() -> None:
    rules = parse_rules("defaults: {error_rate: {warning: 1e-3, critical: 5e-2}}")
    assert rules.defaults.error_rate == Thresholds(0.001, 0.05)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="no such rules file"):
        load_rules(tmp_path / "absent.yaml")
