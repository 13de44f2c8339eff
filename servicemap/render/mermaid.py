"""A Mermaid flowchart to paste into an incident document (GitHub, GitLab, Notion render it).

Same visual language as the DOT map: kind by shape, status by class (fill), the status in the
label, edges labelled `calls · error % · p95` (and the status word when failing), width by
calls, failing edges in their status colour (warning dashed), a legend and the window (in the
title). Node ids are `n0`, `n1`, … in name order.
"""

from __future__ import annotations

from servicemap.analysis.focus import groups
from servicemap.graph import Node, ServiceGraph, Status
from servicemap.render.dot import title_text
from servicemap.render.options import DEFAULT_OPTIONS, RenderOptions
from servicemap.render.style import (
    DASHED_STATUSES,
    EDGE_COLOUR,
    STATUS_FILL,
    STATUS_LABEL,
    STATUS_LINE,
    TEXT_COLOUR,
    edge_label,
    edge_width,
    format_rate,
    is_failing,
    p95_text,
    status_suffix,
)

# Mermaid's shape brackets for each kind: (open, close).
SHAPES = {
    "service": ("(", ")"),
    "database": ("[(", ")]"),
    "messaging": (">", "]"),
    "external": ("[", "]"),
    "user": ("((", "))"),
}
CLASS_OF_STATUS: dict[Status, str] = {
    "ok": "ok",
    "warning": "warning",
    "critical": "critical",
    "no_data": "nodata",
}


def text(value: str) -> str:
    """Mermaid's quoted-label text: its entity codes for the characters that would break it."""
    return (
        value.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", "<br/>")
    )


def _label(node: Node) -> str:
    if node.kind == "user":
        return node.id
    lines = [node.id, f"{node.kind} · {STATUS_LABEL[node.status]}"]
    if node.requests:
        lines.append(
            f"{node.requests} req · {format_rate(node.error_rate)} err · "
            f"{p95_text(node.latency_ms)}"
        )
    return "\n".join(lines)


def render_mermaid(graph: ServiceGraph, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    nodes = sorted(graph.nodes, key=lambda n: n.id)
    ids = {node.id: f"n{index}" for index, node in enumerate(nodes)}
    title = title_text(graph, options).replace('"', "'")
    lines = ["---", f'title: "{title}"', "---", "flowchart LR"]

    def declare(node: Node, indent: str) -> str:
        left, right = SHAPES[node.kind]
        return f'{indent}{ids[node.id]}{left}"{text(_label(node))}"{right}'

    clustered = groups(graph, options.group_by)
    in_cluster = set()
    for index, (name, members) in enumerate(clustered.items()):
        lines.append(f'  subgraph g{index}["{text(f"{options.group_by} {name}")}"]')
        for member in members:
            lines.append(declare(graph.node(member), "    "))
            in_cluster.add(member)
        lines.append("  end")
    lines.extend(declare(node, "  ") for node in nodes if node.id not in in_cluster)

    edges = sorted(graph.edges, key=lambda e: (e.source, e.target))
    low = min((e.calls for e in edges), default=1)
    high = max((e.calls for e in edges), default=1)
    styles = []
    for index, edge in enumerate(edges):
        failing = is_failing(edge)
        label = edge_label(edge) + status_suffix(edge)
        lines.append(f'  {ids[edge.source]} -->|"{text(label)}"| {ids[edge.target]}')
        colour = STATUS_LINE[edge.status] if failing else EDGE_COLOUR
        width = edge_width(edge.calls, low, high)
        dashes = ",stroke-dasharray:6 4" if edge.status in DASHED_STATUSES else ""
        styles.append(f"  linkStyle {index} stroke:{colour},stroke-width:{width:g}px{dashes}")

    lines.append('  subgraph legend["status"]')
    for key, label in STATUS_LABEL.items():
        lines.append(f'    legend_{CLASS_OF_STATUS[key]}["{label}"]')
    lines.append("  end")

    lines.extend(styles)
    for key, name in CLASS_OF_STATUS.items():
        lines.append(
            f"  classDef {name} fill:{STATUS_FILL[key]},stroke:{STATUS_LINE[key]},"
            f"color:{TEXT_COLOUR}"
        )
    lines.append("  classDef external stroke-dasharray:5 3")
    for key, name in CLASS_OF_STATUS.items():
        members = [ids[n.id] for n in nodes if n.status == key] + [f"legend_{name}"]
        lines.append(f"  class {','.join(members)} {name}")
    if options.focus in ids:
        lines.append(f"  style {ids[options.focus]} stroke-width:3px")
    external = [ids[n.id] for n in nodes if n.kind == "external"]
    if external:
        lines.append(f"  class {','.join(external)} external")
    return "\n".join(lines) + "\n"
