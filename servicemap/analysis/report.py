"""Text, JSON and pictures of a diff or an investigation.

Pictures reuse the map's DOT (render/dot.py) and restyle the parts that matter: the DOT
renderer writes one line per node (`"id" [..];`) and per edge (`"a" -> "b" [..];`), and in a
DOT attribute list the last value of an attribute wins, so appending attributes to those
lines overrides the status colours without touching the renderer.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from servicemap.alerts import apply_default_status
from servicemap.analysis.diff import Change, Diff
from servicemap.analysis.investigate import Investigation
from servicemap.errors import RenderError
from servicemap.graph import Edge, Node, ServiceGraph, format_time
from servicemap.render.dot import quote, render_dot
from servicemap.render.image import layout
from servicemap.render.options import RenderOptions

ADDED = {"color": "#1a7f37", "penwidth": "3.5"}
REMOVED = {"color": "#8a8a8a", "style": "dashed", "penwidth": "2"}
DEGRADED = {"color": "#c0162b", "penwidth": "4"}
IMPROVED = {"color": "#1f5fbf", "penwidth": "3"}
ORIGIN = {"color": "#c0162b", "penwidth": "4.5"}
SLOW = {"color": "#d97706", "penwidth": "3.5"}
REPORT_FORMATS = ("text", "json", "svg", "html")
Judge = Callable[[ServiceGraph], ServiceGraph]  # gives nodes and edges their alert status
SLOW_SHARE = 0.2  # a service drawn as on the slow path holds this share of the critical path


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _ms(value: float | int | None) -> str:
    return "–" if value is None else f"{value:.3g} ms"


def _pct(value: float | int | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _value(metric: str, value: float | int | None) -> str:
    if metric == "error_rate":
        return _pct(value)
    if metric == "latency_p95_ms":
        return _ms(value)
    return "–" if value is None else str(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    return lines


def _window(graph: ServiceGraph) -> str:
    w = graph.window
    if w.start_ns is None:
        return "no spans"
    return f"{format_time(w.start_ns) or '–'} – {format_time(w.end_ns) or '–'}, {w.traces} traces"


# ---- text ------------------------------------------------------------------------------------


def diff_text(diff: Diff) -> str:
    lines = [
        f"before: {diff.before_label} ({_window(diff.before)})",
        f"after:  {diff.after_label} ({_window(diff.after)})",
        "",
    ]
    significant = [c for c in diff.changes if c.significant]
    quiet = len(diff.changes) - len(significant)
    if significant:
        rows = [
            [
                str(rank),
                c.kind,
                c.label,
                c.metric,
                _value(c.metric, c.before),
                _value(c.metric, c.after),
                "–" if c.p_value is None else f"{c.p_value:.2g}",
            ]
            for rank, c in enumerate(significant, 1)
        ]
        lines.extend(_table(["#", "change", "node / edge", "metric", "before", "after", "p"], rows))
    else:
        lines.append("no significant change")
    if quiet:
        lines.append(f"({quiet} other changes not significant; --format json lists them all)")
    return "\n".join(lines) + "\n"


def investigate_text(found: Investigation) -> str:
    lines = [
        f"service {found.service} ({_window(found.graph)})",
        f"requests {found.requests}, failed {found.failed_requests}"
        + (f" ({_pct(found.failed_requests / found.requests)})" if found.requests else ""),
        f"upstream (≤ {found.depth} hops): " + (", ".join(found.upstream) or "none"),
        f"downstream (≤ {found.depth} hops): " + (", ".join(found.downstream) or "none"),
        "",
    ]
    if found.error_origins:
        lines.append("where its errors start:")
        rows = [
            [o.service, str(o.failed_requests), _pct(o.share), " ".join(o.example_traces)]
            for o in found.error_origins
        ]
        lines.extend("  " + line for line in _table(["origin", "failed", "share", "traces"], rows))
        rows = [
            [f"{e.source} -> {e.target}", str(e.failed_requests), _pct(e.share)]
            for e in found.origin_edges
        ]
        lines.extend("  " + line for line in _table(["origin edge", "failed", "share"], rows))
    else:
        lines.append("no failed requests in the window")
    lines.append("")
    if found.latency_contributors:
        lines.append(
            f"slow requests (≥ p95 {_ms(found.p95_ms)}): {found.slow_requests}; "
            "time on their critical path:"
        )
        rows = [
            [c.service, _ms(c.critical_path_ms), _pct(c.share), " ".join(c.example_traces)]
            for c in found.latency_contributors[:8]
        ]
        lines.extend("  " + line for line in _table(["service", "mean", "share", "traces"], rows))
    else:
        lines.append("no request durations to analyse")
    users = found.affected_users
    lines.append("")
    lines.append(
        f"affected users: {users.failing} of {users.total}"
        + (f" ({_pct(users.share)})" if users.total else "")
        + (f", e.g. {', '.join(users.examples)}" if users.examples else "")
    )
    return "\n".join(lines) + "\n"


# ---- pictures --------------------------------------------------------------------------------


def _restyle(
    dot: str, nodes: dict[str, dict[str, str]], edges: dict[tuple[str, str], dict[str, str]]
) -> str:
    prefixes_n = {f"{quote(n)} [": style for n, style in nodes.items()}
    prefixes_e = {f"{quote(s)} -> {quote(t)} [": style for (s, t), style in edges.items()}
    out = []
    for line in dot.splitlines():
        stripped = line.lstrip()
        style = None
        for prefix, candidate in (*prefixes_e.items(), *prefixes_n.items()):
            if stripped.startswith(prefix):
                style = candidate
                break
        if style is not None and line.endswith("];"):
            extra = ", ".join(f"{k}={quote(v)}" for k, v in style.items())
            line = line[: -len("];")] + f", {extra}];"
        out.append(line)
    return "\n".join(out) + "\n"


def layout_svg(dot: str) -> bytes:
    """DOT text → SVG with graphviz."""
    return layout(dot, "svg")


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


def _styles(
    changes: Iterable[Change],
) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], dict[str, str]]]:
    nodes: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str], dict[str, str]] = {}
    for change in changes:
        if not change.significant and change.kind == "changed":
            continue
        if change.kind == "added":
            style = ADDED
        elif change.kind == "removed":
            style = REMOVED
        elif change.tier <= 1:
            style = DEGRADED
        else:
            style = IMPROVED
        if change.target is None:
            nodes.setdefault(change.source, style)
        else:
            edges.setdefault((change.source, change.target), style)
    return nodes, edges


def diff_dot(diff: Diff, judge: Judge = apply_default_status) -> str:
    graph = judge(_merged(diff))
    options = RenderOptions(
        view=f"diff: {diff.before_label} → {diff.after_label}; green new, red degraded, "
        "blue improved, dashed grey removed"
    )
    nodes, edges = _styles(diff.changes)
    return _restyle(render_dot(graph, options), nodes, edges)


def investigate_dot(found: Investigation, judge: Judge = apply_default_status) -> str:
    graph = judge(found.neighbourhood)
    options = RenderOptions(
        focus=found.service,
        view=f"investigate {found.service}; red: where its errors start, orange: slow path",
    )
    nodes: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str], dict[str, str]] = {}
    for contributor in found.latency_contributors[:3]:
        if contributor.service != found.service and contributor.share >= SLOW_SHARE:
            nodes.setdefault(contributor.service, SLOW)
    for origin in found.error_origins[:3]:
        nodes[origin.service] = ORIGIN
    for edge in found.origin_edges[:3]:
        edges[(edge.source, edge.target)] = ORIGIN
    # The path from S down to the top origin, along the map's edges.
    if found.error_origins:
        for pair in _path(graph, found.service, found.error_origins[0].service):
            edges.setdefault(pair, ORIGIN)
    return _restyle(render_dot(graph, options), nodes, edges)


def _path(graph: ServiceGraph, source: str, target: str) -> list[tuple[str, str]]:
    import networkx as nx

    digraph = nx.DiGraph()
    digraph.add_edges_from((e.source, e.target) for e in graph.edges)
    try:
        nodes = nx.shortest_path(digraph, source, target)
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return []
    return list(itertools.pairwise(nodes))


def html_page(title: str, text: str, dot: str) -> str:
    """One self-contained page: the picture (when graphviz is there) and the text report."""
    try:
        svg = layout_svg(dot).decode()
        start = svg.find("<svg")
        picture = svg[start:] if start >= 0 else svg
    except RenderError as exc:
        picture = f"<p><em>{html.escape(str(exc))}</em></p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:Helvetica,Arial,sans-serif;margin:1.5em}"
        "pre{background:#f6f8fa;padding:1em;overflow:auto}svg{max-width:100%;height:auto}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{picture}"
        f"<pre>{html.escape(text)}</pre></body></html>\n"
    )
