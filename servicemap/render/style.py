"""The visual language shared by every picture: status colours, kind shapes, labels (§9)."""

from __future__ import annotations

import math

from servicemap.graph import Edge, Latency, NodeKind, Status

# Fills chosen to stay apart for red-green colour blindness; the status is also in the label.
STATUS_FILL: dict[Status, str] = {
    "ok": "#9bd5a0",
    "warning": "#f5c04a",
    "critical": "#e8685a",
    "no_data": "#d0d0d0",
}
STATUS_LINE: dict[Status, str] = {
    "ok": "#5f6b73",
    "warning": "#a86b00",
    "critical": "#c0392b",
    "no_data": "#9a9a9a",
}
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


def format_ms(value: float) -> str:
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
    """`calls · error % · p95`, the edge label in every format."""
    calls = f"{edge.calls} call" + ("" if edge.calls == 1 else "s")
    return f"{calls} · {format_rate(edge.error_rate)} err · {p95_text(edge.latency_ms)}"


def edge_width(calls: int, max_calls: int) -> float:
    """1 to 5 points, growing with the logarithm of calls."""
    if max_calls <= 1 or calls <= 1:
        return 1.0
    return round(1.0 + 4.0 * math.log(calls) / math.log(max_calls), 2)
