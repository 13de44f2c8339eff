"""`servicemap diff` on scenarios built with the real OpenTelemetry SDK."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from servicemap.analysis.diff import mann_whitney_p, poisson_rates_p, two_proportion_p
from tests.otel_scenarios import Scenario, Server, iso

REQUESTS = 120
SPACING_MS = 500
UNTOUCHED = {("frontend", "catalog"), ("catalog", None), ("api", "cache"), ("cache", None)}


def _shop(
    path: Path,
    *,
    slow_store_from: int | None = None,
    recommend_from: int | None = None,
    requests: range = range(REQUESTS),
) -> Path:
    """frontend → api → store, api → cache (database), frontend → catalog.

    From request `slow_store_from` on, store runs version 2.0.0 and is 4x slower; from
    `recommend_from` on, api runs version 2.0.0 and also calls a new `recommend` service.
    """
    sc = Scenario(seed=21)
    rng = random.Random(9)
    for i in requests:
        slow = slow_store_from is not None and i >= slow_store_from
        recommend = recommend_from is not None and i >= recommend_from
        sc.versions["store"] = "2.0.0" if slow else "1.0.0"
        sc.versions["api"] = "2.0.0" if recommend else "1.0.0"

        def store(server: Server, slow: bool = slow) -> None:
            server.work((40 if slow else 10) + 4 * rng.random())

        def api(server: Server, recommend: bool = recommend) -> None:
            server.work(1 + rng.random())
            server.db("cache", 1 + rng.random())
            server.call("store", store)
            if recommend:
                server.call("recommend", lambda s: s.work(2 + rng.random()))

        def frontend(server: Server) -> None:
            server.work(1 + rng.random())
            server.call("catalog", lambda s: s.work(5 + 3 * rng.random()))
            server.call("api", api)

        sc.request("frontend", at_ms=i * SPACING_MS, handler=frontend)
    return sc.write(path)


def _key(change: dict[str, Any]) -> tuple[str, str | None]:
    return change["source"], change.get("target")


def test_latency_regression_after_a_release_ranks_that_edge_first(run, tmp_path: Path) -> None:
    source = _shop(tmp_path / "shop.json", slow_store_from=REQUESTS // 2)
    result = run("diff", str(source), "--release", "store@2.0.0", "--format", "json")
    assert result.code == 0, result.err
    changes = result.json()["changes"]
    first = changes[0]
    assert (first["kind"], _key(first), first["metric"]) == (
        "changed",
        ("api", "store"),
        "latency_p95_ms",
    )
    assert first["significant"] and first["after"] > 3 * first["before"]
    flagged = {_key(c) for c in changes if c["significant"]}
    assert ("store", None) in flagged and ("frontend", "api") in flagged
    assert not flagged & UNTOUCHED, flagged & UNTOUCHED
    # Same traffic on both sides: no call-volume or error-rate change is flagged anywhere.
    assert not [c for c in changes if c["significant"] and c["metric"] != "latency_p95_ms"]
    # The required keys, ranked: significant first.
    assert set(first) >= {"kind", "source", "target", "metric", "before", "after", "significant"}
    significance = [c["significant"] for c in changes]
    assert significance == sorted(significance, reverse=True)


def test_a_new_dependency_after_a_release_is_reported_as_new(run, tmp_path: Path) -> None:
    source = _shop(tmp_path / "shop.json", recommend_from=REQUESTS // 2)
    changes = run("diff", str(source), "--release", "api@2.0.0", "--format", "json").json()[
        "changes"
    ]
    added = {_key(c): c for c in changes if c["kind"] == "added"}
    assert set(added) == {("api", "recommend"), ("recommend", None)}
    edge = added[("api", "recommend")]
    assert edge["significant"] and edge["before"] == 0 and edge["after"] == REQUESTS // 2
    assert "target" not in added[("recommend", None)]
    assert not [c for c in changes if c["kind"] == "removed"]


def test_two_windows_and_two_sources_agree(run, tmp_path: Path) -> None:
    half = REQUESTS // 2
    whole = _shop(tmp_path / "shop.json", slow_store_from=half)
    split = iso(half * SPACING_MS - 1)
    windows = run(
        "diff", str(whole), "--before", f"..{split}", "--after", f"{split}..", "--format", "json"
    ).json()
    before = _shop(tmp_path / "before.json", slow_store_from=half, requests=range(half))
    after = _shop(tmp_path / "after.json", slow_store_from=half, requests=range(half, REQUESTS))
    files = run("diff", str(before), str(after), "--format", "json").json()
    assert windows["changes"][0]["source"] == files["changes"][0]["source"] == "api"
    assert windows["changes"][0]["target"] == files["changes"][0]["target"] == "store"
    assert {_key(c) for c in windows["changes"] if c["significant"]} == {
        _key(c) for c in files["changes"] if c["significant"]
    }


def test_no_change_and_empty_windows_do_not_fail(run, tmp_path: Path) -> None:
    source = _shop(tmp_path / "shop.json")
    result = run("diff", str(source), str(source), "--format", "text")
    assert result.code == 0, result.err
    assert "no significant change" in result.out
    empty = run(
        "diff",
        str(source),
        "--before",
        "2099-01-01T00:00:00Z..2099-01-02T00:00:00Z",
        "--after",
        f"{iso(0)}..",
        "--format",
        "json",
    )
    assert empty.code == 0, empty.err
    assert {c["kind"] for c in empty.json()["changes"]} == {"added"}
    both_empty = run(
        "diff",
        str(source),
        "--before",
        "2099-01-01T00:00:00Z..2099-01-02T00:00:00Z",
        "--after",
        "2099-01-02T00:00:00Z..",
        "--format",
        "json",
    )
    assert both_empty.code == 0 and both_empty.json()["changes"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--release", "stor@2.0.0"], "did you mean store"),
        (["--release", "store@9.9"], "versions seen: 1.0.0"),
        (["--release", "store"], "SERVICE@VERSION"),
        (["--before", "..1h"], "--before and --after go together"),
        (["--before", "1h", "--after", "1h.."], "expected T1..T2"),
        ([], "BEFORE AFTER"),
    ],
)
def test_bad_diff_arguments_are_one_line_errors(
    run, tmp_path: Path, args: list[str], message: str
) -> None:
    source = _shop(tmp_path / "shop.json", requests=range(4))
    result = run("diff", str(source), *args)
    assert result.code == 1 and result.out == ""
    assert result.err.count("\n") == 1 and message in result.err, result.err


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_diff_map_marks_added_and_degraded_parts(run, tmp_path: Path) -> None:
    source = _shop(tmp_path / "shop.json", slow_store_from=60, recommend_from=60)
    out = tmp_path / "diff.svg"
    result = run("diff", str(source), "--release", "api@2.0.0", "--format", "svg", "-o", str(out))
    assert result.code == 0, result.err
    svg = out.read_text()
    assert "#1a7f37" in svg and "#c0162b" in svg  # added (green), degraded (red)
    page = tmp_path / "diff.html"
    run("diff", str(source), "--release", "api@2.0.0", "--format", "html", "-o", str(page))
    assert "<svg" in page.read_text()


def test_statistics_match_known_values() -> None:
    # Two-proportion z-test: 10/100 vs 20/100 → z ≈ 1.98, p ≈ 0.0477.
    p = two_proportion_p(10, 100, 20, 100)
    assert p is not None and abs(p - 0.0477) < 0.001
    assert two_proportion_p(0, 10, 0, 10) == 1.0
    assert two_proportion_p(0, 0, 1, 10) is None
    # Mann–Whitney: fully separated samples of 10 → U = 0, z ≈ -3.78.
    p = mann_whitney_p(10, 10, sum(range(1, 11)), 0.0)
    assert p is not None and p < 0.001
    # Identical samples: all tied → no evidence.
    assert mann_whitney_p(5, 5, 27.5, 10**3 - 10) == 1.0
    # Equal rates over equal spans.
    p = poisson_rates_p(100, 60.0, 100, 60.0)
    assert p is not None and p == 1.0
