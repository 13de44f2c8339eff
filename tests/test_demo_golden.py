"""Golden files: the demo traces in, the expected graph JSON, DOT and Mermaid out.

Regenerate on purpose only: SERVICEMAP_UPDATE_GOLDEN=1 python -m pytest tests/test_demo_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import DEMO, edges_of

GOLDEN = DEMO.parent
UPDATE = os.environ.get("SERVICEMAP_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize(
    ("fmt", "golden"), [("json", "graph.json"), ("dot", "map.dot"), ("mermaid", "map.mmd")]
)
def test_demo_matches_golden(run, fmt: str, golden: str) -> None:
    result = run("render", str(DEMO), "--format", fmt)
    assert result.code == 0, result.err
    path = GOLDEN / golden
    if UPDATE:
        path.write_text(result.out, encoding="utf-8")
    assert result.out == path.read_text(encoding="utf-8")


def test_demo_output_is_byte_identical_across_runs(run, tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert run("render", str(DEMO), "-o", str(first)).code == 0
    assert run("render", str(DEMO), "-o", str(second)).code == 0
    assert first.read_bytes() == second.read_bytes()


def test_demo_edges_match_an_independent_count(run) -> None:
    """Counted by a separate script over the raw JSON when the demo data was generated."""
    graph = run("render", str(DEMO)).json()
    assert edges_of(graph) == {
        ("user", "web"): (200, 6),
        ("web", "checkout"): (75, 8),
        ("web", "inventory"): (44, 0),
        ("web", "redis.internal"): (169, 0),
        ("checkout", "inventory"): (75, 2),
        ("checkout", "shipping"): (73, 0),
        ("checkout", "payment"): (73, 6),
        ("checkout", "orders"): (67, 0),
        ("orders", "shipping"): (67, 0),
        ("orders", "email"): (67, 0),
        ("payment", "api.stripe.com"): (73, 6),
        ("inventory", "inventory-db"): (119, 0),
        ("shipping", "shipping-db"): (67, 0),
        ("email", "api.sendgrid.com"): (67, 0),
    }
    assert graph["window"]["spans"] == 1724
    assert graph["window"]["traces"] == 267
    assert graph["pairing"]["orphans"] == 0
