"""SVG/PNG/PDF through real graphviz, checked by parsing, not by bytes."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from servicemap.alerts import apply_default_status
from servicemap.graph import Edge, Node, Pairing, ServiceGraph, Window
from servicemap.render.image import render_image
from servicemap.render.options import RenderOptions
from servicemap.render.style import STATUS_FILL, STATUS_LABEL
from tests.conftest import DEMO

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")


@needs_dot
def test_svg_has_every_node_and_edge_with_status_fills(run, tmp_path: Path) -> None:
    graph = run("render", str(DEMO)).json()
    out = tmp_path / "map.svg"
    assert run("render", str(DEMO), "--format", "svg", "-o", str(out)).code == 0
    root = ET.parse(out).getroot()
    groups = {
        g.findtext(f"{SVG}title"): g
        for g in root.iter(f"{SVG}g")
        if g.get("class") in ("node", "edge")
    }
    for node in graph["nodes"]:
        group = groups[node["id"]]
        fills = {s.get("fill") for s in group.iter() if s.get("fill") not in (None, "none")}
        assert STATUS_FILL[node["status"]] in {f.lower() for f in fills}, node["id"]
    for edge in graph["edges"]:
        assert f"{edge['source']}->{edge['target']}" in groups
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for label in STATUS_LABEL.values():
        assert label in text  # the legend
    assert "1724 spans" in text  # the window


@needs_dot
@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_binary_images(run, tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = tmp_path / f"map.{fmt}"
    assert run("render", str(DEMO), "--format", fmt, "-o", str(out)).code == 0
    assert out.read_bytes().startswith(magic)


def test_without_graphviz_images_fail_in_one_line_but_text_formats_work(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run("render", str(DEMO), "--format", "svg")
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1
    assert "graphviz" in result.err and "apt-get install graphviz" in result.err
    for fmt in ("json", "dot"):
        assert run("render", str(DEMO), "--format", fmt).code == 0


def _centres(svg: bytes) -> dict[str, float]:
    """Node id → the x of its label's centre (graphviz centres node text on the node)."""
    root = ET.fromstring(svg)
    centres = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "node":
            xs = [float(t.get("x", 0)) for t in group.iter(f"{SVG}text")]
            centres[group.findtext(f"{SVG}title") or ""] = sum(xs) / len(xs)
    return centres


def _in_a_cycle(edges: list[tuple[str, str]], source: str, target: str) -> bool:
    """Whether `source` is reachable from `target`: the edge closes a cycle."""
    callees: dict[str, list[str]] = {}
    for a, b in edges:
        callees.setdefault(a, []).append(b)
    seen, stack = {target}, [target]
    while stack:
        for nxt in callees.get(stack.pop(), []):
            if nxt == source:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def _callers_left_of_callees(svg: bytes, edges: list[tuple[str, str]]) -> list[str]:
    x = _centres(svg)
    return [
        f"{a} ({x[a]:.0f}) -> {b} ({x[b]:.0f})"
        for a, b in edges
        if not _in_a_cycle(edges, a, b) and not x[a] < x[b]
    ]


def _namespaced() -> ServiceGraph:
    """Three namespaces whose calls cross back and forth: front → core → front → data."""
    namespaces = {
        "web": "front",
        "auth": "front",
        "orders": "core",
        "pay": "core",
        "users": "data",
        "ledger": "data",
    }
    calls = [
        ("web", "orders"),
        ("orders", "auth"),
        ("auth", "users"),
        ("orders", "pay"),
        ("pay", "ledger"),
        ("pay", "auth"),
        ("web", "users"),
    ]
    nodes = tuple(Node(n, "service", 10, 0, namespace=ns) for n, ns in namespaces.items())
    edges = tuple(Edge(a, b, "direct", 10) for a, b in calls)
    graph = ServiceGraph(Window(0, 10**9, 20, 10), Pairing(), nodes, edges)
    return apply_default_status(graph)


@needs_dot
def test_grouped_map_keeps_callers_left_of_callees(run, tmp_path: Path) -> None:
    """DESIGN §9 holds with --group-by too: clusters must not rank their members on their own
    (the audit found `email` drawn left of its caller `orders`)."""
    graph = run("render", str(DEMO)).json()
    out = tmp_path / "grouped.svg"
    result = run("render", str(DEMO), "--format", "svg", "--group-by", "namespace", "-o", str(out))
    assert result.code == 0, result.err
    edges = [(e["source"], e["target"]) for e in graph["edges"]]
    assert _callers_left_of_callees(out.read_bytes(), edges) == []

    crossing = _namespaced()
    svg = render_image(crossing, "svg", RenderOptions(group_by="namespace"))
    assert svg.count(b'class="cluster"') == 3
    pairs = [(e.source, e.target) for e in crossing.edges]
    assert _callers_left_of_callees(svg, pairs) == []
