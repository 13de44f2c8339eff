"""Grafana Node Graph frames: the map as the two data frames Grafana's Node graph panel reads.

The output is `{"frames": [NODES, EDGES]}`, each frame in Grafana's data-frame JSON (the
`schema`/`data` form a data source returns from `/api/ds/query`: fields described in
`schema.fields`, their values column by column in `data.values`), both marked with
`meta.preferredVisualisationType: "nodeGraph"`. The data's window travels in each frame's
`meta.custom.window` (start, end, spans, traces) and, as the panel's info notice, in the
nodes frame's `meta.notices`: a frame pasted on its own keeps it.

- nodes: `id`, `title` (the name), `subTitle` (kind · status), `mainStat` (requests),
  `secondaryStat` (error rate), `arc__ok` and `arc__errors` (shares of good and failed
  requests, drawn as the ring round the node; an idle node's ring is all `arc__ok`),
  `color` (the status fill), and `detail__*` fields shown on hover (status and reasons,
  p50/p95/p99, namespace).
- edges: `id` (`source->target`), `source`, `target`, `mainStat` (calls), `secondaryStat`
  (error % · p95, and the status word when failing), `color` (status colour of a failing
  edge), `thickness` (width by calls), and `detail__*` fields.
"""

from __future__ import annotations

import json
from typing import Any

from servicemap.graph import ServiceGraph
from servicemap.render.dot import title_text
from servicemap.render.options import DEFAULT_OPTIONS, RenderOptions
from servicemap.render.style import (
    EDGE_COLOUR,
    STATUS_FILL,
    STATUS_LABEL,
    STATUS_LINE,
    edge_width,
    format_rate,
    is_failing,
    latency_text,
    p95_text,
    status_suffix,
    status_text,
)


def _meta(graph: ServiceGraph, options: RenderOptions, notice: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "preferredVisualisationType": "nodeGraph",
        "custom": {"window": graph.window.to_json()},
    }
    if notice:
        meta["notices"] = [{"severity": "info", "text": title_text(graph, options)}]
    return meta


def _field(name: str, values: list[Any], config: dict[str, Any] | None = None) -> dict[str, Any]:
    kind = "number" if values and all(isinstance(v, int | float) for v in values) else "string"
    field: dict[str, Any] = {"name": name, "type": kind}
    if config:
        field["config"] = config
    return field


def _frame(
    name: str,
    meta: dict[str, Any],
    columns: list[tuple[str, list[Any], dict[str, Any] | None]],
) -> dict[str, Any]:
    return {
        "schema": {
            "name": name,
            "meta": meta,
            "fields": [_field(column, values, config) for column, values, config in columns],
        },
        "data": {"values": [values for _, values, _ in columns]},
    }


def _fixed(colour: str, name: str) -> dict[str, Any]:
    return {"color": {"mode": "fixed", "fixedColor": colour}, "displayName": name}


def grafana_frames(graph: ServiceGraph, options: RenderOptions = DEFAULT_OPTIONS) -> dict[str, Any]:
    nodes = sorted(graph.nodes, key=lambda n: n.id)
    edges = sorted(graph.edges, key=lambda e: (e.source, e.target))
    failed = [round(n.error_rate or 0.0, 6) for n in nodes]
    node_frame = _frame(
        "nodes",
        _meta(graph, options, notice=True),
        [
            ("id", [n.id for n in nodes], None),
            ("title", [n.id for n in nodes], None),
            ("subTitle", [f"{n.kind} · {STATUS_LABEL[n.status]}" for n in nodes], None),
            ("mainStat", [n.requests for n in nodes], {"displayName": "requests"}),
            (
                "secondaryStat",
                [format_rate(n.error_rate) for n in nodes],
                {"displayName": "errors"},
            ),
            ("arc__ok", [round(1.0 - f, 6) for f in failed], _fixed(STATUS_FILL["ok"], "ok")),
            ("arc__errors", failed, _fixed(STATUS_FILL["critical"], "errors")),
            ("color", [STATUS_FILL[n.status] for n in nodes], None),
            ("detail__status", [status_text(n.status, n.reasons) for n in nodes], None),
            ("detail__latency", [latency_text(n.latency_ms) for n in nodes], None),
            ("detail__namespace", [n.namespace or "" for n in nodes], None),
        ],
    )
    low = min((e.calls for e in edges), default=1)
    high = max((e.calls for e in edges), default=1)
    edge_frame = _frame(
        "edges",
        _meta(graph, options, notice=False),
        [
            ("id", [f"{e.source}->{e.target}" for e in edges], None),
            ("source", [e.source for e in edges], None),
            ("target", [e.target for e in edges], None),
            ("mainStat", [e.calls for e in edges], {"displayName": "calls"}),
            (
                "secondaryStat",
                [
                    f"{format_rate(e.error_rate)} err · {p95_text(e.latency_ms)}" + status_suffix(e)
                    for e in edges
                ],
                None,
            ),
            (
                "color",
                [STATUS_LINE[e.status] if is_failing(e) else EDGE_COLOUR for e in edges],
                None,
            ),
            ("thickness", [edge_width(e.calls, low, high) for e in edges], None),
            ("detail__status", [status_text(e.status, e.reasons) for e in edges], None),
            ("detail__latency", [latency_text(e.latency_ms) for e in edges], None),
            ("detail__connection", [e.connection for e in edges], None),
        ],
    )
    return {"title": title_text(graph, options), "frames": [node_frame, edge_frame]}


def render_grafana(graph: ServiceGraph, options: RenderOptions = DEFAULT_OPTIONS) -> str:
    return json.dumps(grafana_frames(graph, options), indent=2, ensure_ascii=False) + "\n"
