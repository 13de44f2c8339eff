"""`servicemap diff` on scenarios built with the real OpenTelemetry SDK."""

from __future__ import annotations

import random
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from servicemap.analysis.pictures import BLACK, PURPLE, QUIET_EDGE
from servicemap.analysis.stats import (
    fisher_exact_p,
    mann_whitney_p,
    poisson_rates_p,
    two_proportion_p,
)
from servicemap.render.style import STATUS_LINE
from tests.conftest import DEMO
from tests.otel_scenarios import SVG, Scenario, Server, iso, svg_strokes

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


def test_no_change_is_reported_as_such(run, tmp_path: Path) -> None:
    source = _shop(tmp_path / "shop.json")
    result = run("diff", str(source), str(source), "--format", "text")
    assert result.code == 0, result.err
    assert "no significant change" in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--release", "stor@2.0.0"], "did you mean store"),
        (["--release", "store@9.9"], "versions seen: 1.0.0"),
        (["--release", "store"], "SERVICE@VERSION"),
        (["--before", "..1h"], "--before and --after go together"),
        (["--before", "1h", "--after", "1h.."], "expected T1..T2"),
        ([], "BEFORE AFTER"),
        # A window with no spans, and a release with nothing before it, compare nothing.
        (
            ["--before", "2099-01-01T00:00:00Z..2099-01-02T00:00:00Z", "--after", f"{iso(0)}.."],
            "--before 2099-01-01T00:00:00Z..2099-01-02T00:00:00Z: the window has no spans "
            f"(the data covers {iso(0)} – ",
        ),
        (
            ["--before", f"..{iso(1)}", "--after", "2099-01-02T00:00:00Z.."],
            "--after 2099-01-02T00:00:00Z..: the window has no spans (the data covers ",
        ),
        (
            ["--release", "store@1.0.0"],
            "--release: store@1.0.0 is the earliest version seen; nothing to compare it with",
        ),
        (["--release", "cache@1"], "cache is a database node on the map, not an instrumented"),
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
    edges, nodes = svg_strokes(svg, "edge"), svg_strokes(svg, "node")
    # New in black, worse in purple (significant), the rest grey: no status colour is used.
    assert edges["api->recommend"] == nodes["recommend"] == {BLACK}
    assert edges["api->store"] == nodes["store"] == {PURPLE}
    assert edges["frontend->catalog"] == {QUIET_EDGE}
    assert not set().union(*edges.values(), *nodes.values()) & set(STATUS_LINE.values())
    # Edge labels say before → after; the legend says what the colours mean.
    assert "p95 14.9 ms → 44.8 ms" in svg and "new: 0 → 60 calls" in svg
    assert "worse (significant)" in svg and "edge labels: before → after" in svg
    page = tmp_path / "diff.html"
    run("diff", str(source), "--release", "api@2.0.0", "--format", "html", "-o", str(page))
    assert "<svg" in page.read_text()


def test_diff_map_dashes_only_removed_parts(run, tmp_path: Path) -> None:
    """A warning edge is dashed on the render map; on the diff map dashed means removed."""
    warning_edges = [
        e for e in run("render", str(DEMO)).json()["edges"] if e["status"] == "warning"
    ]
    assert warning_edges
    out = tmp_path / "same.svg"
    assert run("diff", str(DEMO), str(DEMO), "--format", "svg", "-o", str(out)).code == 0
    dashed = [
        group.findtext(f"{SVG}title")
        for group in ET.parse(out).getroot().iter(f"{SVG}g")
        if group.get("class") == "edge" and any(p.get("stroke-dasharray") for p in group.iter())
    ]
    assert dashed == []


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


@pytest.mark.parametrize("requests", [1, 2])
def test_a_part_seen_in_one_or_two_calls_is_never_a_significant_change(
    run, tmp_path: Path, requests: int
) -> None:
    """One or two traces reached `recommend` before; 59 without it after. Over the before
    side's few milliseconds that is a high rate, but two calls say too little to judge by."""
    before = _shop(tmp_path / "before.json", recommend_from=0, requests=range(requests))
    after = _shop(tmp_path / "after.json", requests=range(1, 60))
    result = run("diff", str(before), str(after), "--format", "json")
    assert result.code == 0, result.err
    removed = {_key(c): c for c in result.json()["changes"] if c["kind"] == "removed"}
    assert set(removed) == {("api", "recommend"), ("recommend", None)}
    assert removed[("api", "recommend")]["before"] == requests
    assert not any(c["significant"] for c in removed.values())


def test_call_rates_count_the_quiet_part_of_a_window(run, tmp_path: Path) -> None:
    """20 requests in the first 10 s of a 30 s window, 22 spread over the next 30 s: the same
    rate over the windows asked for, though the first side's spans span only 10 s."""
    sc = Scenario(seed=3)
    at = [i * 500 for i in range(20)] + [30_000 + i * 1_360 for i in range(22)]
    for ms in at:
        sc.request("web", at_ms=ms, handler=lambda s: s.call("api", lambda t: t.work(3)))
    source = sc.write(tmp_path / "quiet.json")
    split = iso(29_999)
    result = run(
        "diff", str(source), "--before", f"..{split}", "--after", f"{split}..", "--format", "json"
    )
    assert result.code == 0, result.err
    calls = [c for c in result.json()["changes"] if c["metric"] == "calls"]
    assert {_key(c) for c in calls} >= {("web", "api"), ("api", None)}
    assert not [c for c in calls if c["significant"]], calls
    assert all(c["p_value"] > 0.5 for c in calls)


def _errors_in_pay(path: Path, requests: range, failing: Any, version: Any = None) -> Path:
    """user → web → pay (and web → cat); pay fails on the requests `failing` picks, and errors
    propagate up to web. `version` picks pay's service.version per request."""
    sc = Scenario(seed=4)
    for i in requests:
        if version is not None:
            sc.versions["pay"] = version(i)

        def pay(server: Server, fail: bool = failing(i)) -> None:
            server.work(3)
            if fail:
                server.fail()

        def web(server: Server) -> None:
            server.call("cat", lambda s: s.work(2))
            if not server.call("pay", pay):
                server.fail()

        sc.request("web", at_ms=i * 300, handler=web)
    return sc.write(path)


def test_error_rate_at_a_handful_of_calls_uses_fishers_exact_test(run, tmp_path: Path) -> None:
    """0 of 4 calls failed before, 4 of 4 after: Fisher's two-sided p is 2/70 = 0.0286, not
    significant at α = 0.01 (the z-test's normal approximation says 0.0047)."""
    before = _errors_in_pay(tmp_path / "before.json", range(4), lambda i: False)
    after = _errors_in_pay(tmp_path / "after.json", range(4), lambda i: True)
    changes = run("diff", str(before), str(after), "--format", "json").json()["changes"]
    rate = {_key(c): c for c in changes if c["metric"] == "error_rate"}[("web", "pay")]
    assert (rate["before"], rate["after"]) == (0.0, 1.0)
    assert rate["p_value"] == 0.0286 and not rate["significant"]


def test_on_equal_change_the_more_downstream_edge_ranks_first(run, tmp_path: Path) -> None:
    """pay 2.0 fails one request in five; web fails with it, so user → web and web → pay
    change exactly alike, and web → pay, where the errors start, comes first."""
    source = _errors_in_pay(
        tmp_path / "pay.json",
        range(200),
        lambda i: (i >= 100 and i % 5 == 0) or i % 50 == 7,
        lambda i: "2.0" if i >= 100 else "1.0",
    )
    result = run("diff", str(source), "--release", "pay@2.0", "--format", "json")
    assert result.code == 0, result.err
    ranked = [(_key(c), c["metric"]) for c in result.json()["changes"] if c["significant"]]
    assert ranked == [
        (("web", "pay"), "error_rate"),
        (("user", "web"), "error_rate"),
        (("pay", None), "error_rate"),
        (("web", None), "error_rate"),
    ]


def test_fishers_exact_test_matches_hand_computed_values() -> None:
    # 0/4 against 4/4: the observed table and its mirror image each have probability
    # C(4,0)·C(4,4)/C(8,4) = 1/70; every other table is likelier. Two-sided p = 2/70.
    assert fisher_exact_p(0, 4, 4, 4) == pytest.approx(2 / 70, rel=1e-9)
    assert two_proportion_p(0, 4, 4, 4) == pytest.approx(2 / 70, rel=1e-9)
    # 1/5 against 4/5: tables with x = 0, 1, 4, 5 errors on side 0 (of 5 errors in 10 calls):
    # (1 + 25 + 25 + 1) / C(10, 5) = 52/252.
    assert fisher_exact_p(1, 5, 4, 5) == pytest.approx(52 / 252, rel=1e-9)
    # Same table either way round; no errors at all is no evidence.
    assert fisher_exact_p(4, 4, 0, 4) == pytest.approx(2 / 70, rel=1e-9)
    assert fisher_exact_p(0, 4, 0, 4) == 1.0
    assert fisher_exact_p(0, 0, 1, 3) is None
