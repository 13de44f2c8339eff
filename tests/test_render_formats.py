"""HTML, Mermaid and Grafana Node Graph output, and the SVG's colours, checked by parsing."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from servicemap.render.style import STATUS_FILL, STATUS_LABEL, STATUS_LINE
from tests.conftest import DEMO, nodes_of

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str]] = []
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr" and values.get("data-id"):
            self.rows.append((values.get("data-kind") or "", values["data-id"] or ""))
        if values.get("id"):
            self.ids.add(values["id"] or "")
        for name in ("src", "href", "xlink:href", "action"):
            if values.get(name):
                self.urls.append(values[name] or "")


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def test_html_has_a_row_for_every_node_and_edge_and_nothing_remote(run) -> None:
    graph = run("render", str(DEMO)).json()
    html = run("render", str(DEMO), "--format", "html").out
    page = _parse(html)
    assert {i for k, i in page.rows if k == "node"} == set(nodes_of(graph))
    assert {i for k, i in page.rows if k == "edge"} == {
        f"{e['source']}->{e['target']}" for e in graph["edges"]
    }
    assert {"search", "details", "nodes", "edges", "servicemap-data"} <= page.ids
    assert page.urls == []  # no script, style, image or link from anywhere
    assert not re.search(r"<!DOCTYPE svg|\.dtd|@import|url\(", html)
    data = json.loads(re.search(r'id="servicemap-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    checkout = next(n for n in data["nodes"] if n["id"] == "checkout")
    assert checkout["reasons"] == ["error rate 8.0% ≥ 5.0% (critical)"]
    assert {"p50", "p95", "p99", "calls", "errors", "error_rate", "status"} <= set(checkout)
    if shutil.which("dot"):
        assert html.count('class="node"') == len(graph["nodes"])


def test_html_without_graphviz_keeps_the_tables_and_says_why(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run("render", str(DEMO), "--format", "html")
    assert result.code == 0, result.err
    assert "<svg" not in result.out
    assert "graphviz" in result.out and "apt-get install graphviz" in result.out
    assert len([r for r in _parse(result.out).rows if r[0] == "node"]) == 13
    for fmt in ("mermaid", "grafana"):
        assert run("render", str(DEMO), "--format", fmt).code == 0


def test_grafana_node_graph_frames(run) -> None:
    graph = run("render", str(DEMO)).json()
    result = run("render", str(DEMO), "--format", "grafana").json()
    nodes, edges = result["frames"]
    for frame, name in ((nodes, "nodes"), (edges, "edges")):
        assert frame["schema"]["name"] == name
        assert frame["schema"]["meta"]["preferredVisualisationType"] == "nodeGraph"
        fields = [f["name"] for f in frame["schema"]["fields"]]
        assert len(fields) == len(frame["data"]["values"])
    columns = {
        f["name"]: values
        for f, values in zip(nodes["schema"]["fields"], nodes["data"]["values"], strict=True)
    }
    assert {"id", "title", "subTitle", "mainStat", "secondaryStat", "color"} <= set(columns)
    assert [c for c in columns if c.startswith("arc__")] == ["arc__ok", "arc__errors"]
    by_id = {n["id"]: n for n in graph["nodes"]}
    for index, node_id in enumerate(columns["id"]):
        assert columns["color"][index] == STATUS_FILL[by_id[node_id]["status"]]
        assert columns["arc__ok"][index] + columns["arc__errors"][index] == pytest.approx(1)
        assert columns["mainStat"][index] == by_id[node_id]["requests"]
    edge_columns = {
        f["name"]: values
        for f, values in zip(edges["schema"]["fields"], edges["data"]["values"], strict=True)
    }
    assert {"id", "source", "target", "mainStat", "secondaryStat"} <= set(edge_columns)
    pairs = set(zip(edge_columns["source"], edge_columns["target"], strict=True))
    assert pairs == {(e["source"], e["target"]) for e in graph["edges"]}
    assert set(edge_columns["source"]) | set(edge_columns["target"]) <= set(columns["id"])


def test_mermaid_classes_match_statuses(run) -> None:
    graph = run("render", str(DEMO)).json()
    text = run("render", str(DEMO), "--format", "mermaid").out
    assert text.startswith("---\ntitle: ") and "1724 spans" in text
    assert "\nflowchart LR\n" in text
    ids = {m.group(2): m.group(1) for m in re.finditer(r'^  (n\d+)\W+"([^"<]+)', text, re.M)}
    classes = {}
    for name, members in re.findall(r"^  class (\S+) (\w+)$", text, re.M):
        for member in name.split(","):
            classes.setdefault(member, set()).add(members)
    status_class = {"ok": "ok", "warning": "warning", "critical": "critical", "no_data": "nodata"}
    for node in graph["nodes"]:
        assert status_class[node["status"]] in classes[ids[node["id"]]], node["id"]
    assert len(re.findall(r"^  n\d+ -->\|", text, re.M)) == len(graph["edges"])
    for label in STATUS_LABEL.values():
        assert f'["{label}"]' in text  # the legend


@needs_dot
def test_svg_failing_edges_in_status_colour_and_legend_above_the_map(run, tmp_path: Path) -> None:
    graph = run("render", str(DEMO)).json()
    out = tmp_path / "map.svg"
    assert run("render", str(DEMO), "--format", "svg", "-o", str(out)).code == 0
    root = ET.parse(out).getroot()
    edges = {g.findtext(f"{SVG}title"): g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"}
    for edge in graph["edges"]:
        group = edges[f"{edge['source']}->{edge['target']}"]
        strokes = {p.get("stroke") for p in group.iter(f"{SVG}path")}
        if edge["status"] in ("warning", "critical"):
            assert strokes == {STATUS_LINE[edge["status"]]}, edge
        else:
            assert strokes.isdisjoint({STATUS_LINE["warning"], STATUS_LINE["critical"]})
        label = " ".join(t.text or "" for t in group.iter(f"{SVG}text"))
        assert f"{edge['calls']} calls" in label
    # The legend's swatches sit in the title block, above every node.
    nodes_top = min(
        float(t.get("y", 0))
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "node"
        for t in g.iter(f"{SVG}text")
    )
    legend = [t for t in root.iter(f"{SVG}text") if (t.text or "").strip() in STATUS_LABEL.values()]
    assert {(t.text or "").strip() for t in legend} == set(STATUS_LABEL.values())
    assert all(float(t.get("y", 0)) < nodes_top for t in legend)
