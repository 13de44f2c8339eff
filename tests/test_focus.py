"""Big maps stay readable: --focus/--depth, --min-calls, --group-by, compact drawing."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from servicemap.analysis.focus import focus, groups, hide_quiet_edges, narrow
from servicemap.errors import UsageError
from servicemap.graph import Edge, Node, ServiceGraph, Window
from servicemap.render.dot import COMPACT_NODES, render_dot
from servicemap.render.image import render_image
from servicemap.render.mermaid import render_mermaid
from servicemap.render.options import RenderOptions
from tests.conftest import DEMO, nodes_of

SVG = "{http://www.w3.org/2000/svg}"
WINDOW = Window(1_767_225_600_000_000_000, 1_767_225_660_000_000_000, 10, 2)


def graph_of(
    edges: list[tuple[str, str, int]], namespaces: dict[str, str] | None = None
) -> ServiceGraph:
    names = sorted({s for s, _, _ in edges} | {t for _, t, _ in edges})
    spaces = namespaces or {}
    return ServiceGraph(
        window=WINDOW,
        nodes=tuple(Node(n, "service", 10, 0, status="ok", namespace=spaces.get(n)) for n in names),
        edges=tuple(Edge(s, t, "direct", calls, status="ok") for s, t, calls in edges),
    )


CHAIN = graph_of([("a", "b", 10), ("b", "c", 10), ("c", "d", 10)])


def ids(graph: ServiceGraph) -> set[str]:
    return {n.id for n in graph.nodes}


@pytest.mark.parametrize(
    ("service", "depth", "expected"),
    [
        ("b", 1, {"a", "b", "c"}),  # a 3-hop chain focused on its middle keeps its neighbours
        ("b", 0, {"b"}),
        ("b", 2, {"a", "b", "c", "d"}),
        ("a", 1, {"a", "b"}),
        ("d", 2, {"b", "c", "d"}),
    ],
)
def test_focus_keeps_upstream_and_downstream_within_depth(
    service: str, depth: int, expected: set[str]
) -> None:
    view = focus(CHAIN, service, depth)
    assert ids(view) == expected
    assert {(e.source, e.target) for e in view.edges} == {
        (e.source, e.target) for e in CHAIN.edges if {e.source, e.target} <= expected
    }


def test_focus_follows_call_direction_so_siblings_are_not_neighbours() -> None:
    graph = graph_of([("web", "a", 5), ("web", "b", 5), ("b", "db", 5)])
    assert ids(focus(graph, "a", 1)) == {"web", "a"}
    assert ids(focus(graph, "a", 3)) == {"web", "a"}  # web's other callees are not upstream


def test_unknown_focus_names_close_matches() -> None:
    with pytest.raises(UsageError, match=r"no service 'chekout'.*did you mean checkout"):
        focus(graph_of([("web", "checkout", 1)]), "chekout", 1)


def test_min_calls_hides_quiet_edges_and_the_nodes_only_they_connected() -> None:
    graph = graph_of([("web", "api", 100), ("web", "rare", 2), ("api", "db", 50)])
    view = hide_quiet_edges(graph, 10)
    assert ids(view) == {"web", "api", "db"}
    assert [(e.source, e.target) for e in view.edges] == [("web", "api"), ("api", "db")]
    assert ids(hide_quiet_edges(graph, 10, keep="rare")) == {"web", "api", "db", "rare"}
    assert hide_quiet_edges(graph, 1) is graph


def test_narrow_names_the_view() -> None:
    view, words = narrow(CHAIN, "b", 1, 5)
    assert ids(view) == {"a", "b", "c"}
    assert words == "focus b ±1 hop, edges with ≥ 5 calls"
    assert narrow(CHAIN, None, 1, 1) == (CHAIN, None)


NAMESPACED = graph_of(
    [("web", "cart", 10), ("cart", "cart-db", 10), ("web", "search", 10), ("search", "ads", 3)],
    namespaces={"web": "front", "cart": "shop", "search": "shop", "ads": "marketing"},
)


def test_grouping_puts_one_namespace_in_one_group() -> None:
    assert groups(NAMESPACED, "namespace") == {
        "front": ["web"],
        "marketing": ["ads"],
        "shop": ["cart", "search"],
    }
    assert groups(NAMESPACED, None) == {}
    with pytest.raises(UsageError):
        groups(NAMESPACED, "team")


def _dot_clusters(dot: str) -> dict[str, set[str]]:
    clusters = {}
    for block in re.findall(r"subgraph cluster_\d+ \{(.*?)\n  \}", dot, re.DOTALL):
        label = re.search(r'label="namespace ([^"]+)"', block)
        assert label
        clusters[label.group(1)] = set(re.findall(r'^    "([^"]+)" \[', block, re.MULTILINE))
    return clusters


def test_dot_and_mermaid_draw_a_namespace_as_one_cluster() -> None:
    options = RenderOptions(group_by="namespace")
    assert _dot_clusters(render_dot(NAMESPACED, options)) == {
        "front": {"web"},
        "marketing": {"ads"},
        "shop": {"cart", "search"},
    }
    assert "subgraph cluster" not in render_dot(NAMESPACED)
    mermaid = render_mermaid(NAMESPACED, options)
    shop = re.search(r'subgraph g\d+\["namespace shop"\]\n(.*?)\n  end', mermaid, re.DOTALL)
    assert shop and len(shop.group(1).splitlines()) == 2
    assert "cart<br/>" in shop.group(1) and "search<br/>" in shop.group(1)


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_svg_cluster_holds_the_namespace_services() -> None:
    root = ET.fromstring(render_image(NAMESPACED, "svg", RenderOptions(group_by="namespace")))
    clusters = [g for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"]
    labels = {" ".join(t.text or "" for t in g.iter(f"{SVG}text")) for g in clusters}
    assert labels == {"namespace front", "namespace marketing", "namespace shop"}
    boxes = {}
    for cluster in clusters:
        label = " ".join(t.text or "" for t in cluster.iter(f"{SVG}text"))
        shape = cluster.find(f"{SVG}path")
        shape = shape if shape is not None else cluster.find(f"{SVG}polygon")
        assert shape is not None
        outline = shape.get("d") or shape.get("points") or ""
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", outline)]
        xs, ys = numbers[0::2], numbers[1::2]
        boxes[label] = (min(xs), max(xs), min(ys), max(ys))
    for node in root.iter(f"{SVG}g"):
        if node.get("class") != "node":
            continue
        name = node.findtext(f"{SVG}title")
        text = next(node.iter(f"{SVG}text"), None)
        assert text is not None
        x, y = float(text.get("x", 0)), float(text.get("y", 0))
        inside = {label for label, (x0, x1, y0, y1) in boxes.items() if x0 < x < x1 and y0 < y < y1}
        space = NAMESPACED.node(name or "").namespace
        assert inside == ({f"namespace {space}"} if space else set()), name


def test_cli_focus_min_calls_and_unknown_service(run) -> None:
    result = run("render", str(DEMO), "--focus", "checkout", "--depth", "1")
    assert result.code == 0, result.err
    assert set(nodes_of(result.json())) == {
        "web",
        "checkout",
        "inventory",
        "orders",
        "payment",
        "shipping",
    }
    quiet = run("render", str(DEMO), "--min-calls", "70").json()
    assert all(e["calls"] >= 70 for e in quiet["edges"])
    assert "email" not in nodes_of(quiet)  # only 67-call edges reached it
    dot = run("render", str(DEMO), "--format", "dot", "--focus", "checkout").out
    assert "focus checkout ±1 hop" in dot
    assert re.search(r'"checkout" \[[^\]]*penwidth=3', dot)
    bad = run("render", str(DEMO), "--focus", "chekout")
    assert bad.code == 1
    assert bad.err.count("\n") == 1 and "did you mean checkout" in bad.err


def test_cli_group_by_namespace_clusters_the_demo_shop(run) -> None:
    """The demo's six services share service.namespace `shop`; virtual nodes have none."""
    graph = run("render", str(DEMO)).json()
    spaces = {n["id"]: n.get("namespace") for n in graph["nodes"]}
    dot = run("render", str(DEMO), "--format", "dot", "--group-by", "namespace").out
    expected = {n for n, space in spaces.items() if space == "shop"}
    assert expected == {"web", "checkout", "inventory", "payment", "shipping", "email"}
    assert _dot_clusters(dot) == {"shop": expected}


def _big(n: int) -> ServiceGraph:
    return graph_of([(f"s{i:04d}", f"s{(i * 7 + 1) % n:04d}", i + 1) for i in range(n)])


def test_big_maps_are_drawn_compact_with_figures_in_tooltips() -> None:
    small, big = _big(COMPACT_NODES), _big(COMPACT_NODES + 1)
    assert "calls · " in render_dot(small)
    dot = render_dot(big)
    edge_lines = [line for line in dot.splitlines() if " -> " in line]
    assert edge_lines and not any("label=" in line for line in edge_lines)
    assert all("calls ·" in line for line in edge_lines)  # in the tooltip
    assert "drawn compact" in dot and "--focus" in dot
