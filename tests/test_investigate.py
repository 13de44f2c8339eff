"""`servicemap investigate` on scenarios built with the real OpenTelemetry SDK."""

from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from servicemap.analysis import investigate as investigation
from servicemap.analysis.pictures import BLACK, PURPLE, QUIET_EDGE, investigate_dot
from servicemap.analysis.slow import critical_path
from servicemap.render.style import STATUS_LINE
from servicemap.sources import load_sources
from tests.conftest import DEMO
from tests.otel_scenarios import Scenario, Server, svg_strokes

USERS = [f"user-{n}" for n in range(10)]


def _chain_scenario(path: Path) -> tuple[Path, set[str], set[str], int]:
    """top → a → b → leaf (→ leaf-db); leaf fails on every 6th request, errors propagate up.

    Every 20th request (offset 1) waits 200 ms on leaf-db. Returns the failing and all users.
    """
    sc = Scenario(seed=11)
    rng = random.Random(3)
    failing_users: set[str] = set()
    all_users: set[str] = set()
    failures = 0

    def forward(target: str, handler: Callable[[Server], None]) -> Callable[[Server], None]:
        def handle(server: Server) -> None:
            server.work(1 + rng.random())
            if not server.call(target, handler):
                server.fail()

        return handle

    for i in range(60):
        fail, slow = i % 6 == 0, i % 20 == 1

        def leaf(server: Server, fail: bool = fail, slow: bool = slow) -> None:
            server.work(2)
            server.db("leaf-db", 200 if slow else 3 + rng.random())
            if fail:
                server.fail()

        def top(server: Server) -> None:
            server.call("side", lambda s: s.work(2))
            if not server.call("a", forward("b", forward("leaf", leaf))):
                server.fail()

        user = USERS[i % len(USERS)]
        all_users.add(user)
        if fail:
            failing_users.add(user)
            failures += 1
        sc.request("top", at_ms=i * 500, handler=top, attributes={"enduser.id": user})
    return sc.write(path), failing_users, all_users, failures


def test_errors_from_a_leaf_three_hops_down_rank_the_leaf_first(run, tmp_path: Path) -> None:
    source, failing_users, all_users, failures = _chain_scenario(tmp_path / "chain.json")
    result = run("investigate", str(source), "--service", "top", "--format", "json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["service"] == "top"
    assert report["failed_requests"] == failures == 10
    origins = report["error_origins"]
    assert origins[0]["service"] == "leaf"
    assert origins[0]["failed_requests"] == failures and origins[0]["share"] == 1.0
    assert len(origins[0]["example_traces"]) == 3
    assert all(len(t) == 32 for t in origins[0]["example_traces"])
    edge = report["error_origin_edges"][0]
    assert (edge["source"], edge["target"]) == ("b", "leaf")
    # Affected users are exactly the injected ones.
    assert report["affected_users"]["failing"] == len(failing_users) == 5
    assert report["affected_users"]["total"] == len(all_users) == 10
    assert report["affected_users"]["by_attribute"]["enduser.id"] == {"failing": 5, "total": 10}
    # The slow requests waited on leaf-db.
    assert report["latency_contributors"][0]["service"] == "leaf-db"
    hood = report["neighbourhood"]
    assert [n["service"] for n in hood["upstream"]] == ["user"]
    assert {n["service"] for n in hood["downstream"]} == {"a", "side"}


def test_depth_widens_the_neighbourhood(run, tmp_path: Path) -> None:
    source, *_ = _chain_scenario(tmp_path / "chain.json")
    report = run("investigate", str(source), "--service", "b", "--depth", "2", "--format", "json")
    hood = report.json()["neighbourhood"]
    assert hood["upstream"] == [{"service": "a", "hops": 1}, {"service": "top", "hops": 2}]
    assert hood["downstream"] == [{"service": "leaf", "hops": 1}, {"service": "leaf-db", "hops": 2}]


def _retry_scenario(path: Path) -> Path:
    """top → a → mid → leaf; `a` retries mid up to three times.

    Per 10 requests: 0-1 mid fails all three attempts (top fails: origin mid); 2-3 mid fails
    once and the retry works (swallowed: top is fine); 4 leaf fails on every attempt (origin
    leaf); 5 mid fails once (swallowed) but top then fails on its own (origin top).
    """
    sc = Scenario(seed=5)
    for i in range(40):
        mode = i % 10

        def mid(attempt: int, mode: int = mode) -> Callable[[Server], None]:
            def handle(server: Server) -> None:
                server.work(2)
                leaf_ok = server.call("leaf", lambda s: s.fail() if mode == 4 else s.work(1))
                if not leaf_ok or mode in (0, 1) or (mode in (2, 3, 5) and attempt == 0):
                    server.fail()

            return handle

        def a(server: Server) -> None:
            for attempt in range(3):
                if server.call("mid", mid(attempt)):
                    return
            server.fail()

        def top(server: Server, mode: int = mode) -> None:
            if not server.call("a", a) or mode == 5:
                server.fail()

        sc.request("top", at_ms=i * 100, handler=top, attributes={"session.id": f"s{i % 7}"})
    return sc.write(path)


def test_errors_starting_in_the_middle_and_swallowed_by_retries(run, tmp_path: Path) -> None:
    source = _retry_scenario(tmp_path / "retry.json")
    report = run("investigate", str(source), "--service", "top", "--format", "json").json()
    assert report["failed_requests"] == 16
    origins = [(o["service"], o["failed_requests"], o["share"]) for o in report["error_origins"]]
    assert origins == [("mid", 8, 0.5), ("leaf", 4, 0.25), ("top", 4, 0.25)]
    edges = [(e["source"], e["target"], e["failed_requests"]) for e in report["error_origin_edges"]]
    assert edges == [("a", "mid", 8), ("mid", "leaf", 4), ("user", "top", 4)]
    # Users by session.id: requests 0,1,4,5 of each ten failed.
    failing = {f"s{i % 7}" for i in range(40) if i % 10 in (0, 1, 4, 5)}
    assert report["affected_users"] == {
        "failing": len(failing),
        "total": 7,
        "share": round(len(failing) / 7, 6),
        "by_attribute": {"session.id": {"failing": len(failing), "total": 7}},
        "examples": sorted(failing)[:5],
    }

    # mid's own failed requests: every failed attempt is one (retries included).
    mid = run("investigate", str(source), "--service", "mid", "--format", "json").json()
    assert mid["failed_requests"] == 8 * 3 + 8 * 1 + 4 * 3 + 4 * 1
    assert [(o["service"], o["failed_requests"]) for o in mid["error_origins"]] == [
        ("mid", 36),
        ("leaf", 12),
    ]


def test_no_errors_no_users_and_text_output(run, tmp_path: Path) -> None:
    sc = Scenario()
    for i in range(5):
        sc.request("web", at_ms=i * 10, handler=lambda s: s.call("api", lambda t: t.work(3)))
    source = sc.write(tmp_path / "ok.json")
    report = run("investigate", str(source), "--service", "api", "--format", "json")
    assert report.code == 0, report.err
    data = report.json()
    assert data["error_origins"] == [] and data["failed_requests"] == 0
    assert data["affected_users"]["failing"] == 0 and data["affected_users"]["total"] == 0
    text = run("investigate", str(source), "--service", "api", "--format", "text")
    assert text.code == 0 and "no failed requests" in text.out
    assert "affected users: 0 of 0" in text.out


def test_unknown_service_and_empty_window_are_one_line_errors(run, tmp_path: Path) -> None:
    source, *_ = _chain_scenario(tmp_path / "chain.json")
    result = run("investigate", str(source), "--service", "leaff")
    assert result.code == 1 and result.out == ""
    assert result.err.count("\n") == 1 and "did you mean leaf" in result.err
    result = run("investigate", str(source), "--service", "top", "--since", "2099-01-01T00:00:00Z")
    assert result.code == 1 and result.err.count("\n") == 1
    assert "the window has no spans" in result.err


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_maps_highlight_the_origin(run, tmp_path: Path) -> None:
    source, *_ = _chain_scenario(tmp_path / "chain.json")
    out = tmp_path / "map.svg"
    result = run("investigate", str(source), "--service", "top", "--format", "svg", "-o", str(out))
    assert result.code == 0, result.err
    svg = out.read_text()
    assert "<svg" in svg and "leaf" in svg and PURPLE in svg
    page = tmp_path / "page.html"
    run("investigate", str(source), "--service", "top", "--format", "html", "-o", str(page))
    html = page.read_text()
    assert (
        html.startswith("<!DOCTYPE html>") and "<svg" in html and "where its errors start" in html
    )


def test_zipkin_shared_spans_find_the_server_half(run, tmp_path: Path) -> None:
    """Zipkin client and server halves share one id (and parent); the server half is deeper."""
    trace = "5af7183fb1d4cf5f"

    def span(span_id: str, parent: str | None, kind: str, service: str, **extra: Any) -> dict:
        record: dict[str, Any] = {
            "traceId": trace,
            "id": span_id,
            "kind": kind,
            "name": "get",
            "timestamp": 1_700_000_000_000_000,
            "duration": 5000,
            "localEndpoint": {"serviceName": service},
            "tags": {"error": "boom"},
            **extra,
        }
        if parent:
            record["parentId"] = parent
        return record

    spans = [
        span("000000000000000a", None, "SERVER", "web", tags={"error": "500", "user.id": "u1"}),
        span("000000000000000b", "000000000000000a", "CLIENT", "web"),
        span("000000000000000b", "000000000000000a", "SERVER", "api", shared=True),
    ]
    source = tmp_path / "zipkin.json"
    source.write_text(json.dumps(spans))
    report = run("investigate", str(source), "--service", "web", "--format", "json")
    assert report.code == 0, report.err
    data = report.json()
    assert [(o["service"], o["failed_requests"]) for o in data["error_origins"]] == [("api", 1)]
    edge = data["error_origin_edges"][0]
    assert (edge["source"], edge["target"]) == ("web", "api")
    assert data["affected_users"]["failing"] == data["affected_users"]["total"] == 1


def test_rules_and_alerts_files_are_read_first(run, tmp_path: Path) -> None:
    source, *_ = _chain_scenario(tmp_path / "chain.json")
    missing = str(tmp_path / "missing.yaml")
    for command in (["investigate", "--service", "top"], ["diff", str(source)]):
        result = run(command[0], str(source), *command[1:], "--rules", missing)
        assert result.code == 1 and result.err.count("\n") == 1 and "missing.yaml" in result.err
    rules = tmp_path / "rules.yaml"
    rules.write_text("defaults:\n  error_rate: {warning: 0.5, critical: 0.9}\n")
    result = run("investigate", str(source), "--service", "top", "--rules", str(rules))
    assert result.code == 0 and result.json()["error_origins"][0]["service"] == "leaf"


def test_a_virtual_node_is_refused_with_its_callers(run) -> None:
    result = run("investigate", str(DEMO), "--service", "api.stripe.com", "--format", "json")
    assert result.code == 1
    assert result.err.strip() == (
        "servicemap: error: --service api.stripe.com is an external node, with no spans of its "
        "own to follow; investigate a service that calls it: payment"
    )


def test_an_unmarked_internal_span_does_not_hide_where_errors_start(run, tmp_path: Path) -> None:
    """web's SERVER span → an INTERNAL span with no status → the failing call to api."""
    sc = Scenario(seed=2)
    for i in range(6):

        def api(server: Server, fail: bool = i % 2 == 0) -> None:
            server.work(3)
            if fail:
                server.fail()

        def web(server: Server) -> None:
            def handler(inner: Server) -> None:
                inner.work(1)
                if not inner.call("api", api):
                    inner.fail()

            if not server.internal("handle request", handler):
                server.fail()

        sc.request("web", at_ms=i * 100, handler=web)
    source = sc.write(tmp_path / "internal.json")
    report = run("investigate", str(source), "--service", "web", "--format", "json").json()
    assert report["failed_requests"] == 3
    assert [(o["service"], o["failed_requests"]) for o in report["error_origins"]] == [("api", 3)]
    edge = report["error_origin_edges"][0]
    assert (edge["source"], edge["target"], edge["path"]) == ("web", "api", ["web", "api"])


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
@pytest.mark.parametrize("depth", ["0", "1"])
def test_the_path_to_the_origin_is_drawn_whole_and_stands_out(
    run, tmp_path: Path, depth: str
) -> None:
    source, *_ = _chain_scenario(tmp_path / "chain.json")
    out = tmp_path / "map.svg"
    result = run(
        "investigate", str(source), "--service", "top", "--depth", depth, "--format", "svg",
        "-o", str(out),
    )  # fmt: skip
    assert result.code == 0, result.err
    svg = out.read_text()
    edges, nodes = svg_strokes(svg, "edge"), svg_strokes(svg, "node")
    # top → a → b → leaf, however few hops --depth shows around top.
    path = ["top->a", "a->b", "b->leaf"]
    assert {"top", "a", "b", "leaf"} <= set(nodes)
    assert all(edges[e] == {PURPLE} for e in path), {e: edges.get(e) for e in path}
    assert not any(PURPLE in strokes for e, strokes in edges.items() if e not in path)
    assert nodes["leaf"] == {PURPLE}  # the origin
    assert not any(PURPLE in nodes[n] for n in nodes if n != "leaf")
    # No line is in a status colour, and the legend names the highlight.
    assert not set().union(*edges.values(), *nodes.values()) & set(STATUS_LINE.values())
    assert "where its errors start" in svg
    if depth == "1":
        assert "side" in nodes and "user->top" in edges


def test_the_user_node_has_its_own_message(run) -> None:
    result = run("investigate", str(DEMO), "--service", "user", "--format", "json")
    assert result.code == 1 and result.err.count("\n") == 1
    assert "an user" not in result.err and result.err.rstrip().endswith(": web")
    assert "--service user is the map's user node" in result.err


def test_critical_path_splits_a_request_by_what_it_waited_on() -> None:
    # web 0-100 calls api 10-40 (api calls the cache 15-25) and the database 30-90; they
    # overlap, so web waited on the database 30-90, on api 10-30 and on itself 0-10, 90-100.
    children = {
        1: [(2, "api", 10, 40, "api"), (3, "web", 30, 90, "db")],
        2: [(4, "api", 15, 25, "cache")],
    }
    totals: dict[str, int] = defaultdict(int)
    critical_path((1, "web", 0, 100, None), children, totals)
    assert dict(totals) == {"web": 20, "db": 60, "api": 10, "cache": 10}
    assert sum(totals.values()) == 100


@pytest.mark.parametrize(
    "args",
    [
        ("investigate", "{graph}", "--service", "checkout"),
        ("diff", "{graph}", "{demo}"),
        ("diff", "{graph}", "--release", "checkout@2.0.0"),
    ],
)
def test_a_saved_graph_is_refused_with_what_to_give_instead(
    run, tmp_path: Path, args: tuple[str, ...]
) -> None:
    graph = tmp_path / "map.json"
    assert run("render", str(DEMO), "-o", str(graph)).code == 0
    argv = [a.format(graph=graph, demo=DEMO) for a in args]
    result = run(*argv, "--format", "json")
    assert result.code == 1 and result.err.count("\n") == 1, result.err
    assert f"{graph} is a saved graph JSON" in result.err and "need the spans" in result.err


def test_ids_holding_a_bracket_are_drawn_on_the_map(tmp_path: Path) -> None:
    """A DOT line's id is the whole quoted string, even when the id itself holds ` [`."""
    sc = Scenario(seed=5)
    for i in range(6):

        def pay(server: Server, fail: bool = i % 2 == 0) -> None:
            server.work(2)
            if fail:
                server.fail()

        def shop(server: Server) -> None:
            if not server.call('pay "x" [eu]', pay):
                server.fail()

        sc.request("shop [eu]", at_ms=i * 100, handler=shop)
    sources = load_sources([str(sc.write(tmp_path / "brackets.json"))])
    found = investigation.investigate(sources, "shop [eu]")
    assert [o.service for o in found.error_origins] == ['pay "x" [eu]']
    lines = {
        line.strip().partition(" [label=")[0]: line
        for line in investigate_dot(found).splitlines()
        if " [label=" in line
    }
    origin_edge = '"shop [eu]" -> "pay \\"x\\" [eu]"'
    assert f'color="{PURPLE}"' in lines[origin_edge]  # the path to the origin
    assert f'color="{PURPLE}"' in lines['"pay \\"x\\" [eu]"']  # the origin
    assert f'color="{BLACK}"' in lines['"shop [eu]"']  # the service investigated
    assert f'color="{QUIET_EDGE}"' in lines['"user" -> "shop [eu]"']  # the quiet base map
