"""The visual language shared by every picture: status colours, kind shapes, labels (§9)."""

from __future__ import annotations

import math

from servicemap.graph import Edge, Latency, Node, NodeKind, Reason, SloResult, Status

# Fills chosen to stay apart for red-green colour blindness; the status is also in the label.
# Picked by simulating deuteranopia and protanopia (Machado 2009, full severity, in linear
# RGB): every pair of fills stays at least 30 CIELAB units (ΔE*76) apart under both, and
# TEXT_COLOUR keeps a WCAG contrast of 5:1 or more on each fill. tests/test_render_formats.py
# measures both, so a new shade cannot quietly break either.
STATUS_FILL: dict[Status, str] = {
    "ok": "#7ece88",
    "warning": "#f5d63d",
    "critical": "#f44235",
    "no_data": "#ececec",
}
# Outlines, and the colour of failing edges and their labels (4.5:1 or more on white).
STATUS_LINE: dict[Status, str] = {
    "ok": "#4f6b58",
    "warning": "#946200",
    "critical": "#b3261e",
    "no_data": "#8a8a8a",
}
EDGE_COLOUR = "#6b7780"  # an edge that is not failing
TEXT_COLOUR = "#111111"  # node labels on every fill, and edge labels
KIND_SHAPE: dict[NodeKind, str] = {
    "service": "box",
    "database": "cylinder",
    "messaging": "cds",
    "external": "box",
    "user": "circle",
}
KIND_STYLE: dict[NodeKind, str] = {
    "service": "filled,rounded",
    "database": "filled",
    "messaging": "filled",
    "external": "filled,dashed",
    "user": "filled",
}
STATUS_LABEL: dict[Status, str] = {
    "ok": "OK",
    "warning": "WARNING",
    "critical": "CRITICAL",
    "no_data": "NO DATA",
}
FAILING_STATUSES: frozenset[Status] = frozenset({"warning", "critical"})
# Edges drawn dashed: apart from critical ones without colour, labels or not.
DASHED_STATUSES: frozenset[Status] = frozenset({"warning"})


def format_ms(value: float | None) -> str:
    """`0.42 ms`, `12.5 ms`, `250 ms`, `1.25 s`; `–` for no value."""
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def format_rate(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def p95_text(latency: Latency | None) -> str:
    return "p95 –" if latency is None else f"p95 {format_ms(latency.p95)}"


def edge_label(edge: Edge) -> str:
    """`calls · error % · p95`, the edge label in every format (each adds `status_suffix`)."""
    calls = f"{edge.calls} call" + ("" if edge.calls == 1 else "s")
    return f"{calls} · {format_rate(edge.error_rate)} err · {p95_text(edge.latency_ms)}"


def is_failing(edge: Edge) -> bool:
    """A warning or critical edge: drawn in its status colour, its status word on its label."""
    return edge.status in FAILING_STATUSES


def status_suffix(edge: Edge) -> str:
    """` · CRITICAL` after a failing edge's label, so a printed map does not rely on colour;
    nothing on any other edge."""
    return f" · {STATUS_LABEL[edge.status]}" if is_failing(edge) else ""


def edge_width(calls: int, low: int, high: int) -> float:
    """1.2 to 5 points: the quietest edge of the map thinnest, the busiest thickest (log scale)."""
    if high <= low or calls <= 0:
        return 2.0
    share = (math.log(max(calls, low)) - math.log(max(low, 1))) / (
        math.log(high) - math.log(max(low, 1))
    )
    return round(1.2 + 3.8 * share, 2)


def latency_text(latency: Latency | None) -> str:
    if latency is None:
        return "p50/p95/p99 –"
    return (
        f"p50 {format_ms(latency.p50)} · p95 {format_ms(latency.p95)} · "
        f"p99 {format_ms(latency.p99)}"
    )


def reason_text(reason: Reason) -> str:
    """`error rate 8.0% ≥ 5.0% (critical)`: a rule that fired, readable."""
    rule, value, threshold = reason.rule, reason.value, reason.threshold
    name = rule.replace("latency_", "").removesuffix("_ms").replace("_", " ")
    if value is None or threshold is None:
        measured = ""
    elif rule.endswith("error_rate"):
        measured = f" {format_rate(value)} ≥ {format_rate(threshold)}"
    elif rule.endswith("_ms"):
        measured = f" {format_ms(value)} ≥ {format_ms(threshold)}"
    elif rule.startswith("slo:"):
        measured = f" burn rate {value:g}× ≥ {threshold:g}×"
    else:
        measured = f" {value:g} ≥ {threshold:g}"
    detail = f": {reason.detail}" if reason.detail else ""
    return f"{name}{measured}{detail} ({reason.status})"


def status_text(status: Status, reasons: tuple[Reason, ...]) -> str:
    """`CRITICAL: error rate 8.0% ≥ 5.0% (critical)`; just the status when no rule fired."""
    if not reasons:
        return STATUS_LABEL[status]
    return f"{STATUS_LABEL[status]}: " + "; ".join(reason_text(r) for r in reasons)


def slo_text(slo: SloResult) -> str:
    """`SLO checkout-availability 99.9% over 30d: budget 42.0% left · burn 1h 2.1× / 5m 3×`."""
    goal = f"{slo.objective * 100:g}%" + (
        f" within {format_ms(slo.threshold_ms)}" if slo.threshold_ms is not None else ""
    )
    budget = (
        "no calls"
        if slo.budget_remaining is None
        else (f"budget {format_rate(slo.budget_remaining)} left")
    )
    burns = ", ".join(
        f"{b.long} {_times(b.long_burn_rate)} / {b.short} {_times(b.short_burn_rate)}"
        f" (≥ {b.factor:g}× {b.severity}{', firing' if b.firing else ''})"
        for b in slo.burn_rates
    )
    return f"SLO {slo.name} {goal} over {slo.window}: {budget} · burn {burns}"


def _times(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.3g}×"


def node_details(node: Node) -> list[str]:
    """The hover text of a node, one fact a line."""
    lines = [f"{node.id} ({node.kind})", status_text(node.status, node.reasons)]
    if node.namespace:
        lines.append(f"namespace {node.namespace}")
    lines.append(
        f"{node.requests} requests · {node.errors} errors · {format_rate(node.error_rate)} err"
    )
    lines.append(latency_text(node.latency_ms))
    lines.extend(slo_text(slo) for slo in node.slos)
    return lines


def edge_details(edge: Edge) -> list[str]:
    """The hover text of an edge, one fact a line."""
    return [
        f"{edge.source} → {edge.target} ({edge.connection})",
        status_text(edge.status, edge.reasons),
        f"{edge.calls} calls · {edge.errors} errors · {format_rate(edge.error_rate)} err",
        latency_text(edge.latency_ms),
        *(slo_text(slo) for slo in edge.slos),
    ]
