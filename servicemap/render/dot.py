"""Graphviz DOT text: deterministic, left to right, callers before callees, with a legend."""

from __future__ import annotations

from servicemap.graph import Node, ServiceGraph, format_time
from servicemap.render.style import (
    KIND_SHAPE,
    KIND_STYLE,
    STATUS_FILL,
    STATUS_LABEL,
    STATUS_LINE,
    edge_label,
    edge_width,
    format_rate,
    p95_text,
)


def quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_label(node: Node) -> str:
    lines = [node.id, f"{node.kind} · {STATUS_LABEL[node.status]}"]
    if node.requests:
        lines.append(
            f"{node.requests} req · {format_rate(node.error_rate)} err · "
            f"{p95_text(node.latency_ms)}"
        )
    return "\n".join(lines)


def _attributes(values: dict[str, str | float]) -> str:
    parts = []
    for key, value in values.items():
        text = quote(value) if isinstance(value, str) else f"{value:g}"
        parts.append(f"{key}={text}")
    return "[" + ", ".join(parts) + "]"


def _legend() -> list[str]:
    """One HTML-table node: a swatch and the name of each status, out of the graph's way."""
    rows = "".join(
        f'<TR><TD BGCOLOR="{STATUS_FILL[status]}" WIDTH="18"> </TD>'
        f'<TD ALIGN="LEFT">{label}</TD></TR>'
        for status, label in STATUS_LABEL.items()
    )
    table = (
        '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="3" COLOR="#bbbbbb">'
        f'<TR><TD COLSPAN="2"><B>status</B></TD></TR>{rows}</TABLE>'
    )
    return [f'  "servicemap_legend" [shape=plaintext, fontsize=9, label=<{table}>];']


def window_text(graph: ServiceGraph) -> str:
    window = graph.window
    start, end = format_time(window.start_ns), format_time(window.end_ns)
    span = f"{start} – {end}" if start and end else "no spans"
    return f"{span} · {window.spans} spans · {window.traces} traces"


def render_dot(graph: ServiceGraph) -> str:
    """The map as DOT text; the same graph always gives the same text."""
    max_calls = max((e.calls for e in graph.edges), default=1)
    lines = [
        "digraph servicemap {",
        "  "
        + _attributes(
            {
                "rankdir": "LR",
                "fontname": "Helvetica",
                "fontsize": 11.0,
                "labelloc": "t",
                "labeljust": "l",
                "nodesep": 0.4,
                "ranksep": 0.9,
                "label": f"servicemap · {window_text(graph)}",
            }
        ).replace("[", "graph [", 1)
        + ";",
        '  node [fontname="Helvetica", fontsize=10, penwidth=1.2];',
        '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];',
    ]
    for node in sorted(graph.nodes, key=lambda n: n.id):
        attributes: dict[str, str | float] = {
            "label": _node_label(node),
            "shape": KIND_SHAPE[node.kind],
            "style": KIND_STYLE[node.kind],
            "fillcolor": STATUS_FILL[node.status],
            "color": STATUS_LINE[node.status],
            "tooltip": f"{node.id}: {STATUS_LABEL[node.status]}",
        }
        if node.kind == "user":
            attributes["label"] = node.id
        lines.append(f"  {quote(node.id)} {_attributes(attributes)};")
    for edge in sorted(graph.edges, key=lambda e: (e.source, e.target)):
        failing = edge.status in ("warning", "critical")
        attributes = {
            "label": edge_label(edge),
            "penwidth": edge_width(edge.calls, max_calls),
            "color": STATUS_LINE[edge.status] if failing else "#5f6b73",
            "fontcolor": STATUS_LINE[edge.status] if failing else "#333333",
            "tooltip": f"{edge.source} → {edge.target}: {STATUS_LABEL[edge.status]}",
        }
        lines.append(f"  {quote(edge.source)} -> {quote(edge.target)} {_attributes(attributes)};")
    lines.extend(_legend())
    lines.append("}")
    return "\n".join(lines) + "\n"
