"""One self-contained HTML page: the map, hover details, a search box, sortable tables.

No network: the CSS and the script are inline, the picture is graphviz's SVG inlined (without
its DOCTYPE), and the figures are a JSON island the script reads. Without graphviz the page
has the tables alone and says why the picture is missing. The tables are plain HTML, so
they read without the script too.
"""

from __future__ import annotations

import json
import re
import shutil
from html import escape
from typing import Any

from servicemap.graph import Edge, Node, ServiceGraph
from servicemap.render.dot import title_text
from servicemap.render.html_script import SCRIPT
from servicemap.render.image import INSTALL_HINT, render_image
from servicemap.render.options import DEFAULT_OPTIONS, RenderOptions
from servicemap.render.style import (
    STATUS_FILL,
    STATUS_LABEL,
    STATUS_LINE,
    TEXT_COLOUR,
    format_ms,
    format_rate,
    reason_text,
)

_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)


def _node_data(node: Node) -> dict[str, Any]:
    latency = node.latency_ms
    return {
        "id": node.id,
        "kind": node.kind,
        "namespace": node.namespace,
        "status": node.status,
        "calls": node.requests,
        "errors": node.errors,
        "error_rate": format_rate(node.error_rate),
        "p50": format_ms(latency.p50 if latency else None),
        "p95": format_ms(latency.p95 if latency else None),
        "p99": format_ms(latency.p99 if latency else None),
        "reasons": [reason_text(r) for r in node.reasons],
    }


def _edge_data(edge: Edge) -> dict[str, Any]:
    latency = edge.latency_ms
    return {
        "id": f"{edge.source}->{edge.target}",
        "source": edge.source,
        "target": edge.target,
        "connection": edge.connection,
        "status": edge.status,
        "calls": edge.calls,
        "errors": edge.errors,
        "error_rate": format_rate(edge.error_rate),
        "p50": format_ms(latency.p50 if latency else None),
        "p95": format_ms(latency.p95 if latency else None),
        "p99": format_ms(latency.p99 if latency else None),
        "reasons": [reason_text(r) for r in edge.reasons],
    }


def _sort_key(value: str) -> str:
    """What a column sorts by: numbers as numbers (ms and s alike), text as text."""
    match = re.fullmatch(r"([\d.]+)\s*(ms|s|%)?", value)
    if not match:
        return value
    number = float(match.group(1)) * (1000 if match.group(2) == "s" else 1)
    return f"{number:.6f}"


def _cell(value: Any) -> str:
    text = "–" if value is None or value == "" else str(value)
    return f'<td data-sort="{escape(_sort_key(text))}">{escape(text)}</td>'


def _status_cell(status: str) -> str:
    label = STATUS_LABEL[status]  # type: ignore[index]
    return (
        f'<td data-sort="{escape(label)}"><span class="chip s-{status}">{escape(label)}</span></td>'
    )


def _table(table_id: str, headers: list[str], rows: list[str]) -> str:
    head = "".join(f'<th scope="col" tabindex="0">{escape(h)}</th>' for h in headers)
    return (
        f'<table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _tables(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> str:
    node_rows = [
        f'<tr data-id="{escape(n["id"])}" data-kind="node">'
        + _cell(n["id"])
        + _cell(n["kind"])
        + _cell(n["namespace"])
        + _status_cell(n["status"])
        + "".join(_cell(n[k]) for k in ("calls", "errors", "error_rate", "p50", "p95", "p99"))
        + _cell("; ".join(n["reasons"]))
        + "</tr>"
        for n in nodes
    ]
    edge_rows = [
        f'<tr data-id="{escape(e["id"])}" data-kind="edge">'
        + _cell(e["source"])
        + _cell(e["target"])
        + _cell(e["connection"])
        + _status_cell(e["status"])
        + "".join(_cell(e[k]) for k in ("calls", "errors", "error_rate", "p50", "p95", "p99"))
        + _cell("; ".join(e["reasons"]))
        + "</tr>"
        for e in edges
    ]
    figures = ["calls", "errors", "error rate", "p50", "p95", "p99", "reasons"]
    return (
        f"<h2>Nodes ({len(nodes)})</h2>"
        + _table("nodes", ["name", "kind", "namespace", "status", *figures], node_rows)
        + f"<h2>Edges ({len(edges)})</h2>"
        + _table("edges", ["source", "target", "connection", "status", *figures], edge_rows)
    )


def _picture(graph: ServiceGraph, options: RenderOptions) -> str:
    if shutil.which("dot") is None:
        return (
            '<p class="missing">No picture: graphviz\'s <code>dot</code> is not installed; '
            f"{escape(INSTALL_HINT)}. The tables below have every node and edge.</p>"
        )
    svg = render_image(graph, "svg", options).decode()
    svg = _PROLOG.sub("", svg, count=1)
    return f'<div id="map" class="fit">{svg}</div>'


def _css() -> str:
    chips = "".join(
        f".s-{status}{{background:{STATUS_FILL[status]};border-color:{STATUS_LINE[status]}}}"
        for status in STATUS_FILL
    )
    return (
        "body{font:14px/1.4 Helvetica,Arial,sans-serif;margin:0;color:" + TEXT_COLOUR + "}"
        "header{padding:10px 16px;border-bottom:1px solid #ddd;display:flex;flex-wrap:wrap;"
        "gap:8px 16px;align-items:center}"
        "header h1{font-size:16px;margin:0;flex-basis:100%}"
        "#search{font-size:14px;padding:4px 8px;width:260px}"
        "main{padding:8px 16px 32px}"
        "#details{position:fixed;right:16px;bottom:16px;width:320px;max-height:45vh;"
        "overflow:auto;padding:10px 14px;border:1px solid #ccc;border-radius:6px;"
        "background:rgba(250,250,250,.97);box-shadow:0 2px 10px rgba(0,0,0,.18)}"
        "#details[hidden]{display:none}#details.left{right:auto;left:16px}"
        "#details-close{position:absolute;top:4px;right:6px;border:0;background:none;"
        "font-size:20px;line-height:1;cursor:pointer;color:#555}"
        "#details h2{font-size:15px;margin:0 0 6px;padding-right:20px;word-break:break-all}"
        "#details dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:0}"
        "#details dt{color:#666}#details dd{margin:0}"
        "#map{overflow:auto;max-height:75vh;border:1px solid #eee}"
        "#map svg{display:block}"
        "#map g.node,#map g.edge{cursor:pointer}"
        "#map g.node:hover path,#map g.node:hover polygon,#map g.node:hover ellipse,"
        "#map g.edge:hover path{stroke-width:3px}"
        "#map g.dim{opacity:.2}#map g.selected polygon,#map g.selected path,"
        "#map g.selected ellipse{stroke-width:3px}"
        "table{border-collapse:collapse;margin:4px 0 16px;font-size:13px}"
        "th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}"
        "th{background:#f2f2f2;cursor:pointer;user-select:none;white-space:nowrap}"
        "th.asc::after{content:' ▲'}th.desc::after{content:' ▼'}"
        "tr.hidden{display:none}tr.selected td{background:#eef4ff}"
        "h2{font-size:15px}"
        ".chip{display:inline-block;border:1px solid;border-radius:3px;padding:0 6px;"
        "font-size:12px}" + chips + ".missing{padding:8px;background:#fff4d6}"
        "button{font-size:13px}"
    )


def render_html(graph: ServiceGraph, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    nodes = [_node_data(n) for n in sorted(graph.nodes, key=lambda n: n.id)]
    edges = [_edge_data(e) for e in sorted(graph.edges, key=lambda e: (e.source, e.target))]
    payload = {"nodes": nodes, "edges": edges, "labels": STATUS_LABEL}
    island = json.dumps(payload, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")
    title = title_text(graph, options)
    legend = "".join(
        f'<span class="chip s-{status}">{escape(label)}</span> '
        for status, label in STATUS_LABEL.items()
    )
    picture = _picture(graph, options)
    fit = (
        '<button id="fit" type="button" title="fit to width, never below 80 % so labels stay '
        'readable">actual size</button>'
        if 'id="map"' in picture
        else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_css()}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>"
        '<label>Filter <input id="search" type="search" placeholder="service name" '
        'autocomplete="off"></label>'
        f'<span class="legend">{legend}</span>{fit}</header>'
        f"<main>{picture}{_tables(nodes, edges)}</main>"
        '<aside id="details" aria-live="polite" hidden>'
        '<button id="details-close" type="button" aria-label="close" title="close (Esc)">'
        "×</button>"
        '<div id="details-body"></div></aside>'
        f'<script type="application/json" id="servicemap-data">{island}</script>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
