"""HTML, Mermaid and Grafana Node Graph output, and the SVG's colours, checked by parsing."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from servicemap.alerts import apply_default_status
from servicemap.graph import Edge, Node, Pairing, ServiceGraph, Window
from servicemap.render.dot import COMPACT_NODES, is_compact, render_dot, window_text
from servicemap.render.style import STATUS_FILL, STATUS_LABEL, STATUS_LINE, TEXT_COLOUR
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
        # Not colour alone: a failing edge says its status, and a warning one is dashed.
        word = STATUS_LABEL[edge["status"]]
        assert (word in label) == (edge["status"] in ("warning", "critical")), (edge, label)
        dashed = {p.get("stroke-dasharray") for p in group.iter(f"{SVG}path")} != {None}
        assert dashed == (edge["status"] == "warning"), edge
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


# ---- colours: WCAG contrast and colour-blind separation, measured --------------------------

# Machado, Oliveira & Fernandes 2009, severity 1.0, applied to linear RGB.
MACHADO = {
    "protanopia": (
        (0.152286, 1.052583, -0.204868),
        (0.114503, 0.786281, 0.099216),
        (-0.003882, -0.048116, 1.051998),
    ),
    "deuteranopia": (
        (0.367322, 0.860646, -0.227968),
        (0.280085, 0.672501, 0.047413),
        (-0.011820, 0.042940, 0.968881),
    ),
}


def _linear(colour: str) -> tuple[float, float, float]:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(colour[i : i + 2], 16)) for i in (1, 3, 5))
    return r, g, b


def _luminance(colour: str) -> float:
    """WCAG 2 relative luminance."""
    r, g, b = _linear(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """Linear sRGB → CIELAB (D65)."""
    r, g, b = (min(1.0, max(0.0, c)) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def _simulated(colour: str, vision: str) -> tuple[float, float, float]:
    rgb = _linear(colour)
    if vision == "normal":
        return _lab(rgb)
    m = MACHADO[vision]
    r, g, b = (sum(m[row][i] * rgb[i] for i in range(3)) for row in range(3))
    return _lab((r, g, b))


def _delta_e(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    return float(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5)


def test_contrast_of_known_colours_is_what_wcag_says() -> None:
    assert _contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert _contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    # The red the audit measured: 3.81:1 under the 5:1 the comment claimed.
    assert _contrast("#df4620", "#222222") == pytest.approx(3.81, abs=0.01)


@pytest.mark.parametrize("status", list(STATUS_FILL))
def test_label_text_on_every_status_fill_keeps_5_to_1(status: str) -> None:
    assert _contrast(STATUS_FILL[status], TEXT_COLOUR) >= 5.0, status  # type: ignore[index]


def test_edge_colours_on_white_keep_4_5_to_1() -> None:
    """Failing edges' labels are drawn in their line colour; the others in TEXT_COLOUR."""
    for colour in (STATUS_LINE["warning"], STATUS_LINE["critical"], TEXT_COLOUR):
        assert _contrast(colour, "#ffffff") >= 4.5, colour


@pytest.mark.parametrize("vision", ["normal", "deuteranopia", "protanopia"])
def test_status_fills_stay_30_cielab_units_apart(vision: str) -> None:
    fills = list(STATUS_FILL.items())
    for index, (a, first) in enumerate(fills):
        for b, second in fills[index + 1 :]:
            distance = _delta_e(_simulated(first, vision), _simulated(second, vision))
            assert distance >= 30.0, (vision, a, b, round(distance, 1))


def test_compact_map_keeps_warning_edges_dashed_without_labels() -> None:
    """Past the compact threshold the labels go; the line style still tells warning from
    critical (amber and red lines are ~8 CIELAB units apart under deuteranopia)."""
    nodes = [Node(f"s{i:03d}", "service", 10) for i in range(COMPACT_NODES + 1)]
    edges = [
        Edge("s000", "s001", "direct", 100, 20),  # 20 %: critical
        Edge("s001", "s002", "direct", 100, 2),  # 2 %: warning
        Edge("s002", "s003", "direct", 100, 0),
    ]
    graph = apply_default_status(
        ServiceGraph(Window(0, 10**9, 1, 1), Pairing(), tuple(nodes), tuple(edges))
    )
    dot = render_dot(graph)
    lines = {line.split(" [")[0].strip(): line for line in dot.splitlines() if " -> " in line}
    assert is_compact(graph) and not any("label=" in line for line in lines.values())
    assert 'style="dashed"' in lines['"s001" -> "s002"']
    assert "style=" not in lines['"s000" -> "s001"'] and "style=" not in lines['"s002" -> "s003"']
    assert "failing:" in dot and "- - -" in dot  # the legend shows both line styles


def test_mermaid_failing_edges_say_their_status_and_warning_is_dashed(run) -> None:
    graph = run("render", str(DEMO)).json()
    text = run("render", str(DEMO), "--format", "mermaid").out
    links = re.findall(r'^  n\d+ -->\|"([^"]*)"\|', text, re.M)
    styles = re.findall(r"^  linkStyle (\d+) (.*)$", text, re.M)
    edges = sorted(graph["edges"], key=lambda e: (e["source"], e["target"]))
    for edge, label, (_, style) in zip(edges, links, styles, strict=True):
        failing = edge["status"] in ("warning", "critical")
        assert label.endswith(STATUS_LABEL[edge["status"]]) == failing, (edge, label)
        assert ("dasharray" in style) == (edge["status"] == "warning"), (edge, style)


def test_titles_show_whole_seconds_and_the_duration(run) -> None:
    graph = run("render", str(DEMO)).json()
    assert graph["window"]["start"] == "2026-11-01T12:00:07.129549Z"  # the JSON keeps µs
    title = "2026-11-01 12:00:07 – 12:09:44 UTC (9 min 37 s) · 1724 spans · 267 traces"
    assert f"servicemap · {title}" in run("render", str(DEMO), "--format", "dot").out
    assert f'title: "servicemap · {title}"' in run("render", str(DEMO), "--format", "mermaid").out
    frames = run("render", str(DEMO), "--format", "grafana").json()
    assert frames["title"] == f"servicemap · {title}"
    for frame in frames["frames"]:
        assert frame["schema"]["meta"]["custom"]["window"] == graph["window"]
    notices = frames["frames"][0]["schema"]["meta"]["notices"]
    assert notices == [{"severity": "info", "text": f"servicemap · {title}"}]


@pytest.mark.parametrize(
    ("start_ns", "end_ns", "expected"),
    [
        (10**9 // 2, 10**9, "1970-01-01 00:00:00 – 00:00:01 UTC (0.5 s)"),
        (0, 7_500 * 10**9, "1970-01-01 00:00:00 – 02:05:00 UTC (2 h 5 min)"),
        (
            86_000 * 10**9,
            87_000 * 10**9,
            "1970-01-01 23:53:20 – 1970-01-02 00:10:00 UTC (16 min 40 s)",
        ),
    ],
)
def test_window_text(start_ns: int, end_ns: int, expected: str) -> None:
    graph = ServiceGraph(Window(start_ns, end_ns, 3, 1))
    assert window_text(graph) == f"{expected} · 3 spans · 1 traces"
