"""Text and JSON of a diff or an investigation, and the HTML page around a map (the maps
themselves are drawn by pictures.py)."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from servicemap.analysis.diff import Diff
from servicemap.analysis.investigate import Investigation
from servicemap.errors import RenderError
from servicemap.graph import ServiceGraph, format_time
from servicemap.render.image import layout
from servicemap.render.style import format_ms, format_rate

REPORT_FORMATS = ("text", "json", "svg", "html")
Judge = Callable[[ServiceGraph], ServiceGraph]  # gives nodes and edges their alert status


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _value(metric: str, value: float | int | None) -> str:
    if metric == "error_rate":
        return format_rate(value)
    if metric == "latency_p95_ms":
        return format_ms(value)
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
        + (f" ({format_rate(found.failed_requests / found.requests)})" if found.requests else ""),
        f"upstream (≤ {found.depth} hops): " + (", ".join(found.upstream) or "none"),
        f"downstream (≤ {found.depth} hops): " + (", ".join(found.downstream) or "none"),
        "",
    ]
    if found.error_origins:
        lines.append("where its errors start:")
        rows = [
            [o.service, str(o.failed_requests), format_rate(o.share), " ".join(o.example_traces)]
            for o in found.error_origins
        ]
        lines.extend("  " + line for line in _table(["origin", "failed", "share", "traces"], rows))
        rows = [
            [
                f"{e.source} -> {e.target}",
                str(e.failed_requests),
                format_rate(e.share),
                " → ".join(e.path),
            ]
            for e in found.origin_edges
        ]
        lines.extend(
            "  " + line for line in _table(["origin edge", "failed", "share", "path"], rows)
        )
    else:
        lines.append("no failed requests in the window")
    lines.append("")
    if found.latency_contributors:
        lines.append(
            f"slow requests (≥ p95 {format_ms(found.p95_ms)}): {found.slow_requests}; "
            "time on their critical path:"
        )
        rows = [
            [
                c.service,
                format_ms(c.critical_path_ms),
                format_rate(c.share),
                " ".join(c.example_traces),
            ]
            for c in found.latency_contributors[:8]
        ]
        lines.extend("  " + line for line in _table(["service", "mean", "share", "traces"], rows))
    else:
        lines.append("no request durations to analyse")
    users = found.affected_users
    lines.append("")
    lines.append(
        f"affected users: {users.failing} of {users.total}"
        + (f" ({format_rate(users.share)})" if users.total else "")
        + (f", e.g. {', '.join(users.examples)}" if users.examples else "")
    )
    return "\n".join(lines) + "\n"


# ---- pictures --------------------------------------------------------------------------------


def layout_svg(dot: str) -> bytes:
    """DOT text → SVG with graphviz."""
    return layout(dot, "svg")


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
