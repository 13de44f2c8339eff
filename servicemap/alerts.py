"""Alert status of nodes and edges (DESIGN §6). Built-in defaults until a rules file is given."""

from __future__ import annotations

from dataclasses import dataclass, replace

from servicemap.graph import Edge, Node, Reason, ServiceGraph, Status

# The one place the built-in thresholds live.
DEFAULT_ERROR_RATE_WARNING = 0.01
DEFAULT_ERROR_RATE_CRITICAL = 0.05


@dataclass(frozen=True)
class Thresholds:
    """Warning and critical levels of one measure; a value at or above a level fires it."""

    warning: float | None = None
    critical: float | None = None

    def judge(self, rule: str, value: float | None) -> Reason | None:
        if value is None:
            return None
        if self.critical is not None and value >= self.critical:
            return Reason(rule, "critical", value, self.critical)
        if self.warning is not None and value >= self.warning:
            return Reason(rule, "warning", value, self.warning)
        return None


DEFAULT_ERROR_RATE = Thresholds(DEFAULT_ERROR_RATE_WARNING, DEFAULT_ERROR_RATE_CRITICAL)

_RANK: dict[Status, int] = {"no_data": 0, "ok": 1, "warning": 2, "critical": 3}


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__) if statuses else "ok"


def _judge_node(node: Node) -> Node:
    if node.requests == 0:
        return replace(node, status="no_data", reasons=())
    reasons = [r for r in (DEFAULT_ERROR_RATE.judge("error_rate", node.error_rate),) if r]
    return replace(node, status=worst([r.status for r in reasons]), reasons=tuple(reasons))


def _judge_edge(edge: Edge) -> Edge:
    if edge.calls == 0:
        return replace(edge, status="no_data", reasons=())
    reasons = [r for r in (DEFAULT_ERROR_RATE.judge("error_rate", edge.error_rate),) if r]
    return replace(edge, status=worst([r.status for r in reasons]), reasons=tuple(reasons))


def apply_default_status(graph: ServiceGraph) -> ServiceGraph:
    """Every node and edge gets its status and reasons from the built-in thresholds."""
    return replace(
        graph,
        nodes=tuple(_judge_node(n) for n in graph.nodes),
        edges=tuple(_judge_edge(e) for e in graph.edges),
    )
