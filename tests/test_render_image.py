"""SVG/PNG/PDF through real graphviz, checked by parsing, not by bytes."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

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
