"""Alert status of nodes and edges (DESIGN §6): thresholds, SLO burn rates, Alertmanager alerts.

Evaluation only: the rules come parsed from `servicemap.rules`, the SLO counts from
`servicemap.slo`, the alerts from `servicemap.alertmanager`. A node's or edge's status is the
worst that applies; `no_data` when it had no traffic (no calls in or out) and nothing else
fired.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from servicemap.alertmanager import ExternalAlert
from servicemap.graph import Edge, Latency, Node, Reason, ServiceGraph, SloResult, Status
from servicemap.rules import (
    BUILTIN_DEFAULTS,
    DEFAULT_RULES,
    MEASURES,
    AlertConfig,
    Rules,
    RuleSet,
    Thresholds,
)
from servicemap.slo import SloInputs, edge_key, evaluate, node_key, slos_for_edge, slos_for_node

__all__ = [
    "DEFAULT_ERROR_RATE",
    "Thresholds",
    "apply_default_status",
    "apply_status",
    "worst",
]

DEFAULT_ERROR_RATE = BUILTIN_DEFAULTS.error_rate

_RANK: dict[Status, int] = {"no_data": 0, "ok": 1, "warning": 2, "critical": 3}


def worst(statuses: Sequence[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__) if statuses else "ok"


def _measured(measure: str, error_rate: float | None, latency: Latency | None) -> float | None:
    if measure == "error_rate":
        return error_rate
    if latency is None:
        return None
    value: float = getattr(latency, measure.removeprefix("latency_").removesuffix("_ms"))
    return value


def threshold_reasons(
    rules: RuleSet, calls: int, error_rate: float | None, latency: Latency | None
) -> list[Reason]:
    """The threshold rules that fire, in a fixed order; none below `min_calls`."""
    if calls == 0 or calls < (rules.min_calls or 0):
        return []
    reasons = []
    for measure in MEASURES:
        thresholds = rules.thresholds(measure)
        if thresholds is not None:
            reason = thresholds.judge(measure, _measured(measure, error_rate, latency))
            if reason is not None:
                reasons.append(reason)
    return reasons


def slo_reasons(results: Sequence[SloResult]) -> list[Reason]:
    """One reason per firing burn-rate condition: value is the lower of its two burn rates."""
    reasons = []
    for result in results:
        for condition in result.burn_rates:
            if condition.firing:
                assert condition.long_burn_rate is not None
                assert condition.short_burn_rate is not None
                reasons.append(
                    Reason(
                        f"slo:{result.name}",
                        condition.severity,
                        min(condition.long_burn_rate, condition.short_burn_rate),
                        condition.factor,
                        f"over {condition.long} and {condition.short}",
                    )
                )
    return reasons


def alert_reasons(
    node_id: str, alerts: Sequence[ExternalAlert], config: AlertConfig, at_ns: int | None
) -> list[Reason]:
    """Active alerts whose configured labels name the node, mapped to warning/critical."""
    reasons = set()
    for alert in alerts:
        if not alert.is_active(at_ns):
            continue
        if not any(alert.label(label) == node_id for label in config.labels):
            continue
        mapped = config.status_of(alert.label(config.severity_label))
        if mapped == "ignore":
            continue
        detail = alert.annotation("summary") or alert.annotation("description")
        reasons.add(Reason(f"alert:{alert.name}", mapped, None, None, detail))
    return sorted(reasons, key=lambda r: (r.rule, _RANK[r.status], r.detail or ""))


def _status(traffic: int, reasons: Sequence[Reason]) -> Status:
    base: Status = "ok" if traffic else "no_data"
    return worst([base, *(r.status for r in reasons)])


def _judge_node(
    node: Node,
    rules: Rules,
    inputs: SloInputs,
    alerts: Sequence[ExternalAlert],
    at_ns: int | None,
    calls_out: int = 0,
) -> Node:
    scope = rules.for_node(node.id)
    slos = tuple(
        evaluate(slo, node_key(node.id), inputs, scope.min_calls or 0)
        for slo in slos_for_node(rules.slos, node.id)
    )
    reasons = [
        *threshold_reasons(scope, node.requests, node.error_rate, node.latency_ms),
        *slo_reasons(slos),
        *alert_reasons(node.id, alerts, rules.alerts, at_ns),
    ]
    # Calls out are traffic too: the virtual user, or a job that only calls others, is not idle.
    status = _status(node.requests + calls_out, reasons)
    return replace(node, status=status, reasons=tuple(reasons), slos=slos)


def _judge_edge(edge: Edge, rules: Rules, inputs: SloInputs) -> Edge:
    scope = rules.for_edge(edge.source, edge.target)
    key = edge_key(edge.source, edge.target)
    slos = tuple(
        evaluate(slo, key, inputs, scope.min_calls or 0)
        for slo in slos_for_edge(rules.slos, edge.source, edge.target)
    )
    reasons = [
        *threshold_reasons(scope, edge.calls, edge.error_rate, edge.latency_ms),
        *slo_reasons(slos),
    ]
    return replace(edge, status=_status(edge.calls, reasons), reasons=tuple(reasons), slos=slos)


def apply_status(
    graph: ServiceGraph,
    rules: Rules = DEFAULT_RULES,
    slo_inputs: SloInputs | None = None,
    alerts: Sequence[ExternalAlert] = (),
) -> ServiceGraph:
    """Every node and edge gets its status and reasons from the rules, SLOs and alerts.

    Alerts are judged at the end of the data's window (an alert that ended before it is
    resolved), never at the wall clock.
    """
    inputs = slo_inputs if slo_inputs is not None else SloInputs(end_ns=graph.window.end_ns)
    at_ns = graph.window.end_ns
    calls_out: Counter[str] = Counter()
    for edge in graph.edges:
        calls_out[edge.source] += edge.calls
    return replace(
        graph,
        nodes=tuple(
            _judge_node(n, rules, inputs, alerts, at_ns, calls_out[n.id]) for n in graph.nodes
        ),
        edges=tuple(_judge_edge(e, rules, inputs) for e in graph.edges),
    )


def apply_default_status(graph: ServiceGraph) -> ServiceGraph:
    """Every node and edge gets its status and reasons from the built-in thresholds."""
    return apply_status(graph)
