"""The maps of a diff and of an investigation: the map's DOT, restyled so what the analysis
found stands out from the status colours.

The DOT renderer (render/dot.py) writes one line per node (`"id" [..];`) and per edge
(`"a" -> "b" [..];`), and in a DOT attribute list the last value of an attribute wins, so
appending attributes to those lines restyles the map without touching the renderer.

The base map is drawn quiet: node fills are the status colours washed out (the status is in
each label too), outlines and edges grey. What the analysis found is drawn over it in colours
and line styles the status scheme does not use (it uses green, yellow, red and grey, all
solid): purple for where errors start and for what got worse, blue for slow paths and for
what got better, black for new parts, dashed grey for removed ones. Each map's legend says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from html import escape

from servicemap.alerts import apply_default_status
from servicemap.analysis.diff import TIER_ERRORS_UP, TIER_LATENCY_UP, Change, Diff
from servicemap.analysis.investigate import Investigation, origin_path_edges
from servicemap.analysis.report import Judge
from servicemap.graph import Edge, Node, ServiceGraph
from servicemap.render.dot import (
    is_compact,
    legend_row,
    legend_table,
    line_cell,
    quote,
    render_dot,
    swatch_cells,
    title_text,
)
from servicemap.render.options import RenderOptions
from servicemap.render.style import (
    KIND_STYLE,
    STATUS_FILL,
    format_ms,
    format_rate,
)

Style = dict[str, str]

PURPLE = "#7a1fa2"
BLUE = "#0061a8"
BLACK = "#111111"
REMOVED_GREY = "#6e6e6e"
QUIET_LINE = "#a7adb3"  # outlines and edges of the base map
QUIET_EDGE = "#c3c8cd"
QUIET_TEXT = "#7d858c"
WASH = 0.55  # how far the status fills are washed towards white

ORIGIN_EDGE: Style = {"color": PURPLE, "fontcolor": PURPLE, "penwidth": "5", "arrowsize": "1"}
ORIGIN_NODE: Style = {"color": PURPLE, "penwidth": "4.5", "peripheries": "2"}
SLOW_NODE: Style = {"color": BLUE, "penwidth": "3.5", "style": "dashed"}
FOCUS_NODE: Style = {"color": BLACK, "penwidth": "3"}
DEGRADED: Style = {"color": PURPLE, "fontcolor": PURPLE, "penwidth": "5"}
IMPROVED: Style = {"color": BLUE, "fontcolor": BLUE, "penwidth": "3.5"}
ADDED: Style = {"color": BLACK, "fontcolor": BLACK, "penwidth": "4"}
REMOVED: Style = {"color": REMOVED_GREY, "fontcolor": REMOVED_GREY, "penwidth": "2.5"}
SLOW_SHARE = 0.2  # a service drawn as on the slow path holds this share of the critical path
SHOWN = 3  # origins, origin edges and slow services highlighted
# The quoted id(s) heading a node line (`"id" [`) or an edge line (`"a" -> "b" [`); a quoted
# id may itself hold ` [`, `->` or escaped quotes.
_QUOTED = r'"(?:[^"\\]|\\.)*"'
LINE_HEAD = re.compile(rf"^({_QUOTED}(?: -> {_QUOTED})?) \[")


@dataclass(frozen=True)
class Key:
    """One legend entry: a line (or outline) sample and what it means."""

    colour: str
    dashed: bool
    text: str


def _wash(colour: str) -> str:
    channels = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * WASH):02x}" for c in channels)


def _value(value: str) -> str:
    return value if value.startswith("<") and value.endswith(">") else quote(value)


def _append(line: str, style: Style) -> str:
    if not style or not line.endswith("];"):
        return line
    extra = ", ".join(f"{k}={_value(v)}" for k, v in style.items())
    return line[: -len("];")] + f", {extra}];"


def _outline(node: Node, style: Style) -> Style:
    """A dashed outline keeps the node's own style (filled, rounded) beside the dashes."""
    if style.get("style") != "dashed":
        return style
    own = KIND_STYLE[node.kind]
    return {**style, "style": own if "dashed" in own else f"{own},dashed"}


def _restyle(
    dot: str,
    graph: ServiceGraph,
    nodes: dict[str, Style],
    edges: dict[tuple[str, str], Style],
    legend: str,
) -> str:
    """The base map made quiet, `nodes` and `edges` drawn over it, and the map's own legend."""
    node_styles = {
        quote(n.id): {
            "fillcolor": _wash(STATUS_FILL[n.status]),
            "color": QUIET_LINE,
            "penwidth": "1.2",
            **_outline(n, nodes.get(n.id, {})),
        }
        for n in graph.nodes
    }
    edge_styles = {
        f"{quote(e.source)} -> {quote(e.target)}": {
            "color": QUIET_EDGE,
            "fontcolor": QUIET_TEXT,
            "style": "solid",  # the base map's dashed warning edges would read as "removed"
            **edges.get((e.source, e.target), {}),
        }
        for e in graph.edges
    }
    out: list[str] = []
    labelled = False
    for line in dot.splitlines():
        match = LINE_HEAD.match(line.lstrip())
        head = match.group(1) if match else ""
        if not labelled and line.startswith("  graph ["):
            line, labelled = _append(line, {"label": legend}), True
        elif head in edge_styles:
            line = _append(line, edge_styles[head])
        elif head in node_styles:
            line = _append(line, node_styles[head])
        out.append(line)
    return "\n".join(out) + "\n"


def _legend(graph: ServiceGraph, options: RenderOptions, keys: Iterable[Key]) -> str:
    """Title, the washed status fills, then what the highlights mean."""
    fills = swatch_cells(
        {s: _wash(fill) for s, fill in STATUS_FILL.items()}, dict.fromkeys(STATUS_FILL, QUIET_LINE)
    )
    samples = "".join(
        line_cell(k.colour, "- - -" if k.dashed else "━━━", k.text, gap="   ") for k in keys
    )
    return legend_table(
        [
            f"<B>{escape(title_text(graph, options))}</B>",
            legend_row(
                f'<TD ALIGN="LEFT">node fill: status  </TD>{fills}'
                f'<TD ALIGN="LEFT"><FONT COLOR="{QUIET_TEXT}">grey edges: calls · error % · p95'
                "</FONT></TD>"
            ),
            legend_row(samples),
        ]
    )


# ---- investigate -----------------------------------------------------------------------------


def investigate_dot(found: Investigation, judge: Judge = apply_default_status) -> str:
    """The neighbourhood of S, the errors' paths from S to their origins in purple, the
    services holding most of the slow requests' time outlined in dashed blue."""
    graph = judge(found.neighbourhood)
    options = RenderOptions(focus=found.service, view=f"investigate {found.service}")
    nodes: dict[str, Style] = {found.service: FOCUS_NODE}
    for contributor in found.latency_contributors[:SHOWN]:
        if contributor.service != found.service and contributor.share >= SLOW_SHARE:
            nodes.setdefault(contributor.service, SLOW_NODE)
    for origin in found.error_origins[:SHOWN]:
        nodes[origin.service] = {**nodes.get(origin.service, {}), **ORIGIN_NODE}
    edges = dict.fromkeys(origin_path_edges(found.graph, found.origin_edges, SHOWN), ORIGIN_EDGE)
    keys = [
        Key(PURPLE, False, "where its errors start: the path from it, the origin (double line)"),
        Key(BLUE, True, f"slow path: ≥ {SLOW_SHARE:.0%} of its slow requests' time"),
        Key(BLACK, False, f"{found.service}, the service investigated"),
    ]
    dot = render_dot(graph, options)
    return _restyle(dot, graph, nodes, edges, _legend(graph, options, keys))


# ---- diff ------------------------------------------------------------------------------------


def _merged(diff: Diff) -> ServiceGraph:
    """The after map plus what only the before map had."""
    after = diff.after
    have_nodes = {n.id for n in after.nodes}
    have_edges = {(e.source, e.target) for e in after.edges}
    nodes: list[Node] = [*after.nodes, *(n for n in diff.before.nodes if n.id not in have_nodes)]
    edges: list[Edge] = [
        *after.edges,
        *(e for e in diff.before.edges if (e.source, e.target) not in have_edges),
    ]
    return replace(after, nodes=tuple(nodes), edges=tuple(edges))


def _change_style(change: Change) -> Style | None:
    if change.kind == "added":
        return ADDED
    if change.kind == "removed":
        return {**REMOVED, "style": "dashed"}
    if not change.significant:
        return None
    return DEGRADED if change.tier in (TIER_ERRORS_UP, TIER_LATENCY_UP) else IMPROVED


def _styles(
    changes: Iterable[Change],
) -> tuple[dict[str, Style], dict[tuple[str, str], Style]]:
    """The most severe change of each part decides its style (changes come ranked)."""
    nodes: dict[str, Style] = {}
    edges: dict[tuple[str, str], Style] = {}
    for change in changes:
        style = _change_style(change)
        if style is None:
            continue
        if change.target is None:
            outline = {k: v for k, v in style.items() if k != "fontcolor"}
            nodes.setdefault(change.source, outline)
        else:
            edges.setdefault((change.source, change.target), style)
    return nodes, edges


def _arrow(before: str, after: str) -> str:
    return after if before == after else f"{before} → {after}"


def _edge_figures(before: Edge | None, after: Edge | None) -> str:
    """`calls · error %` over `p95`, each as before → after."""
    if after is None and before is not None:
        return f"removed: {before.calls} → 0 calls"
    if after is None:
        return ""
    p95_after = format_ms(after.latency_ms.p95) if after.latency_ms else "–"
    if before is None:
        return (
            f"new: 0 → {after.calls} calls · {format_rate(after.error_rate)} err"
            f"<BR/>p95 {p95_after}"
        )
    p95_before = format_ms(before.latency_ms.p95) if before.latency_ms else "–"
    calls = _arrow(str(before.calls), str(after.calls))
    errors = _arrow(format_rate(before.error_rate), format_rate(after.error_rate))
    return f"{calls} calls · {errors} err<BR/>p95 {_arrow(p95_before, p95_after)}"


def _edge_labels(diff: Diff, graph: ServiceGraph) -> dict[tuple[str, str], Style]:
    before = {(e.source, e.target): e for e in diff.before.edges}
    after = {(e.source, e.target): e for e in diff.after.edges}
    labels: dict[tuple[str, str], Style] = {}
    for edge in graph.edges:
        key = (edge.source, edge.target)
        text = _edge_figures(before.get(key), after.get(key))
        labels[key] = {
            "label": '<<TABLE BORDER="0" CELLBORDER="0" CELLPADDING="3" CELLSPACING="0">'
            f"<TR><TD>{text}</TD></TR></TABLE>>"
        }
    return labels


def diff_dot(diff: Diff, judge: Judge = apply_default_status) -> str:
    """The after map plus what was removed; edges labelled before → after; what changed drawn
    over it (significant changes, and every new or removed part)."""
    graph = judge(_merged(diff))
    options = RenderOptions(view=f"diff: {diff.before_label} → {diff.after_label}")
    nodes, edges = _styles(diff.changes)
    if not is_compact(graph):
        labels = _edge_labels(diff, graph)
        edges = {key: {**labels[key], **edges.get(key, {})} for key in labels}
    keys = [
        Key(PURPLE, False, "worse (significant)"),
        Key(BLUE, False, "better (significant)"),
        Key(BLACK, False, "new"),
        Key(REMOVED_GREY, True, "removed"),
        Key(QUIET_TEXT, False, "edge labels: before → after"),
    ]
    dot = render_dot(graph, options)
    return _restyle(dot, graph, nodes, edges, _legend(graph, options, keys))
