"""Graphviz DOT text: deterministic, left to right, callers before callees, with a legend.

Past `COMPACT_NODES` nodes or `COMPACT_EDGES` edges the map is drawn compact: the edge
figures move from labels into tooltips (an edge label is a node of its own to `dot`, and they
made a 1000-service map take several seconds), node labels keep the name and status, and the
layout's search is bounded (`nslimit`, `mclimit`). The title says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape

from servicemap.analysis.focus import groups
from servicemap.graph import Edge, Node, ServiceGraph, Status
from servicemap.render.options import DEFAULT_OPTIONS, RenderOptions
from servicemap.render.style import (
    DASHED_STATUSES,
    EDGE_COLOUR,
    KIND_SHAPE,
    KIND_STYLE,
    STATUS_FILL,
    STATUS_LABEL,
    STATUS_LINE,
    TEXT_COLOUR,
    edge_details,
    edge_label,
    edge_width,
    format_rate,
    is_failing,
    node_details,
    p95_text,
    status_suffix,
)

COMPACT_NODES = 300
COMPACT_EDGES = 600
FAILING_SAMPLES: tuple[tuple[Status, str], ...] = (("critical", "━━━"), ("warning", "- - -"))


def quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def is_compact(graph: ServiceGraph) -> bool:
    return len(graph.nodes) > COMPACT_NODES or len(graph.edges) > COMPACT_EDGES


def _node_label(node: Node, compact: bool) -> str:
    if node.kind == "user":
        return node.id
    lines = [node.id, f"{node.kind} · {STATUS_LABEL[node.status]}"]
    if node.requests and not compact:
        lines.append(f"{node.requests} req · {format_rate(node.error_rate)} err")
        lines.append(p95_text(node.latency_ms))
    return "\n".join(lines)


def _attributes(values: dict[str, str | float]) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
            text = value  # an HTML-like label
        elif isinstance(value, str):
            text = quote(value)
        else:
            text = f"{value:g}"
        parts.append(f"{key}={text}")
    return "[" + ", ".join(parts) + "]"


def _clock(ns: int, with_date: bool) -> str:
    moment = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def duration_text(ns: int) -> str:
    """`0.4 s`, `9 min 37 s`, `2 h 5 min`, `3 d 4 h`: the two largest units."""
    if ns < 10 * 1_000_000_000:
        return f"{ns / 1e9:.1f} s"
    seconds = round(ns / 1e9)
    units = [("d", 86_400), ("h", 3600), ("min", 60), ("s", 1)]
    parts: list[str] = []
    for name, size in units:
        if seconds >= size or parts:
            parts.append(f"{seconds // size} {name}")
            seconds %= size
    return " ".join(p for p in parts[:2] if not p.startswith("0 ")) or "0 s"


def window_text(graph: ServiceGraph) -> str:
    """`2026-11-01 12:00:07 – 12:09:44 UTC (9 min 37 s) · 1724 spans · 267 traces`.

    Whole seconds, the start rounded down and the end up so the text covers the window; the
    date is written once when the window stays within one day.
    """
    window = graph.window
    if window.start_ns is None or window.end_ns is None:
        return f"no spans · {window.spans} spans · {window.traces} traces"
    start_ns = window.start_ns - window.start_ns % 1_000_000_000
    end_ns = -(-window.end_ns // 1_000_000_000) * 1_000_000_000
    start, end = _clock(start_ns, True), _clock(end_ns, True)
    if start[:10] == end[:10]:
        end = end[11:]
    span = f"{start} – {end} UTC ({duration_text(window.end_ns - window.start_ns)})"
    return f"{span} · {window.spans} spans · {window.traces} traces"


def title_text(graph: ServiceGraph, options: RenderOptions) -> str:
    parts = ["servicemap", window_text(graph)]
    if options.view:
        parts.append(options.view)
    return " · ".join(parts)


def swatch_cells(fill: Mapping[Status, str], outline: Mapping[Status, str]) -> str:
    """A legend's status swatches, each `fill` outlined in `outline` and named, in one row."""
    return "".join(
        f'<TD BGCOLOR="{fill[status]}" BORDER="1" COLOR="{outline[status]}"'
        f' WIDTH="14" HEIGHT="12"> </TD><TD ALIGN="LEFT">{escape(label)}  </TD>'
        for status, label in STATUS_LABEL.items()
    )


def line_cell(colour: str, sample: str, text: str, gap: str = "  ") -> str:
    """A legend's line sample (`━━━`, `- - -`) in `colour`, then what it means."""
    return (
        f'<TD ALIGN="LEFT"><FONT COLOR="{colour}"><B>{sample}</B></FONT> {escape(text)}{gap}</TD>'
    )


def legend_row(cells: str) -> str:
    """One row of a legend's cells, as a table of its own."""
    return (
        f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="0"><TR>{cells}</TR></TABLE>'
    )


def legend_table(rows: Iterable[str]) -> str:
    """The graph's label (an HTML-like one): `rows` one under another, left aligned."""
    # One cell a row, so a long row never stretches the legend's swatches.
    table = (
        '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1">'
        + "".join(f'<TR><TD ALIGN="LEFT">{row}</TD></TR>' for row in rows)
        + "</TABLE>"
    )
    return f"<{table}>"


def _title_and_legend(graph: ServiceGraph, options: RenderOptions, compact: bool) -> str:
    """The graph's label: the title and window, then the legend, above the map, never on it."""
    edges = (
        "edges: width grows with calls; figures in tooltips; failing: "
        if compact
        else "edges: calls · error % · p95; width grows with calls; failing: "
    )
    lines = "".join(
        line_cell(STATUS_LINE[status], sample, STATUS_LABEL[status])
        for status, sample in FAILING_SAMPLES
    )
    legend = legend_row(
        swatch_cells(STATUS_FILL, STATUS_LINE)
        + f'<TD ALIGN="LEFT"><FONT COLOR="#555555">{escape(edges)}</FONT></TD>'
        + lines
    )
    rows = [f"<B>{escape(title_text(graph, options))}</B>", legend]
    if compact:
        note = (
            f"{len(graph.nodes)} nodes and {len(graph.edges)} edges, drawn compact: "
            "narrow the map with --focus SERVICE --depth N, --min-calls N or --group-by namespace"
        )
        rows.append(f'<FONT COLOR="#555555">{escape(note)}</FONT>')
    return legend_table(rows)


def _two_lines(label: str) -> str:
    """`calls · error %` over `p95`: a narrower label keeps the map from growing wide."""
    head, _, tail = label.rpartition(" · ")
    return f"{escape(head)}<BR/>{escape(tail)}" if head else escape(label)


def _edge_label(edge: Edge) -> str:
    """`calls · error %` over `p95`, and on a failing edge its status word after the p95, so
    a printed map does not rely on the line's colour. Padded, so the text keeps clear of its
    own line."""
    # The status word joins the p95 in one text run: a browser keeps it whole.
    text = _two_lines(edge_label(edge)) + escape(status_suffix(edge))
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLPADDING="3" CELLSPACING="0">'
        f"<TR><TD>{text}</TD></TR></TABLE>>"
    )


def _node_line(node: Node, options: RenderOptions, compact: bool) -> str:
    attributes: dict[str, str | float] = {
        "label": _node_label(node, compact),
        "shape": KIND_SHAPE[node.kind],
        "style": KIND_STYLE[node.kind],
        "fillcolor": STATUS_FILL[node.status],
        "color": STATUS_LINE[node.status],
        "tooltip": "\n".join(node_details(node)),
    }
    if node.kind == "messaging":
        attributes["margin"] = "0.2,0.08"  # the queue's pointed end needs room
    if node.id == options.focus:
        attributes["penwidth"] = 3.0
    return f"{quote(node.id)} {_attributes(attributes)};"


def _edge_line(edge: Edge, calls: tuple[int, int], compact: bool) -> str:
    failing = is_failing(edge)
    colour = STATUS_LINE[edge.status] if failing else EDGE_COLOUR
    attributes: dict[str, str | float] = {}
    if not compact:
        attributes["label"] = _edge_label(edge)
    attributes.update(
        {
            "penwidth": edge_width(edge.calls, *calls),
            "color": colour,
            "fontcolor": colour if failing else TEXT_COLOUR,
            "tooltip": "\n".join(edge_details(edge)),
        }
    )
    if edge.status in DASHED_STATUSES:
        attributes["style"] = "dashed"
    return f"  {quote(edge.source)} -> {quote(edge.target)} {_attributes(attributes)};"


def render_dot(graph: ServiceGraph, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    """The map as DOT text; the same graph and options always give the same text."""
    compact = is_compact(graph)
    calls = (
        min((e.calls for e in graph.edges), default=1),
        max((e.calls for e in graph.edges), default=1),
    )
    graph_attributes: dict[str, str | float] = {
        "rankdir": "LR",
        "fontname": "Helvetica",
        "fontsize": 11.0,
        "labelloc": "t",
        "labeljust": "l",
        "nodesep": 0.35,
        "ranksep": 0.9,
        "label": _title_and_legend(graph, options, compact),
    }
    if compact:
        graph_attributes.update({"nslimit": 2.0, "mclimit": 0.5, "ranksep": 1.2})
    clustered = groups(graph, options.group_by)
    if clustered:
        # One ranking over the whole graph: without it `dot` ranks each cluster on its own
        # and can draw a callee left of its caller across a cluster's border.
        graph_attributes["newrank"] = "true"
    lines = [
        "digraph servicemap {",
        "  graph " + _attributes(graph_attributes) + ";",
        f'  node [fontname="Helvetica", fontsize=10, penwidth=1.2, fontcolor="{TEXT_COLOUR}"];',
        '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];',
    ]
    in_cluster = {node_id for members in clustered.values() for node_id in members}
    nodes = {n.id: n for n in graph.nodes}
    for index, (name, members) in enumerate(clustered.items()):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(
            "    graph "
            + _attributes(
                {
                    "label": f"{options.group_by} {name}",
                    "style": "rounded,dashed",
                    "color": "#7a8794",
                    "fontcolor": "#44505a",
                    "fontsize": 10.0,
                    "margin": 12.0,
                }
            )
            + ";"
        )
        lines.extend(f"    {_node_line(nodes[m], options, compact)}" for m in members)
        lines.append("  }")
    for node in sorted(graph.nodes, key=lambda n: n.id):
        if node.id not in in_cluster:
            lines.append(f"  {_node_line(node, options, compact)}")
    for edge in sorted(graph.edges, key=lambda e: (e.source, e.target)):
        lines.append(_edge_line(edge, calls, compact))
    lines.append("}")
    return "\n".join(lines) + "\n"
