"""DESIGN §4 pairing rules, one row per case, driven through `servicemap render`."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import edges_of, nodes_of
from tests.spans import span, write

Case = tuple[str, list[dict[str, Any]], dict[tuple[str, str], tuple[int, int]]]

PEER = {"peer.service": "billing-api"}
CHAIN = [
    span("a-in", "web", "server"),
    span("a-out", "web", "client", "a-in"),
    span("b-in", "api", "server", "a-out"),
    span("b-out", "api", "client", "b-in"),
    span("c-in", "store", "server", "b-out"),
]

CASES: list[Case] = [
    (
        "client to server",
        [span("c", "web", "client"), span("s", "api", "server", "c")],
        {("web", "api"): (1, 0)},
    ),
    (
        "three-hop chain from the user",
        CHAIN,
        {("user", "web"): (1, 0), ("web", "api"): (1, 0), ("api", "store"): (1, 0)},
    ),
    (
        "lone client with peer.service",
        [span("c", "web", "client", attrs=PEER)],
        {("web", "billing-api"): (1, 0)},
    ),
    ("lone client with nothing", [span("c", "web", "client")], {("web", "unknown"): (1, 0)}),
    (
        "lone client named by url.full host",
        [span("c", "web", "client", attrs={"url.full": "https://api.example.com:8443/v1?q=1"})],
        {("web", "api.example.com"): (1, 0)},
    ),
    (
        "lone client named by server.address before url",
        [
            span(
                "c",
                "web",
                "client",
                attrs={"server.address": "pay.example", "url.full": "https://x.example/"},
            )
        ],
        {("web", "pay.example"): (1, 0)},
    ),
    ("root server from the user", [span("s", "api", "server")], {("user", "api"): (1, 0)}),
    (
        "root server whose peer.service names the caller",
        [span("s", "api", "server", attrs={"peer.service": "partner"})],
        {("partner", "api"): (1, 0)},
    ),
    ("server whose parent is missing: no edge", [span("s", "api", "server", "gone")], {}),
    (
        "error on the client only",
        [span("c", "web", "client", error=True), span("s", "api", "server", "c")],
        {("web", "api"): (1, 1)},
    ),
    (
        "error on the server only",
        [span("c", "web", "client"), span("s", "api", "server", "c", error=True)],
        {("web", "api"): (1, 1)},
    ),
    (
        "error on both sides is one failed call",
        [span("c", "web", "client", error=True), span("s", "api", "server", "c", error=True)],
        {("web", "api"): (1, 1)},
    ),
    (
        "error on one of two client spans under one parent",
        [
            span("in", "web", "server"),
            span("c1", "web", "client", "in", error=True),
            span("c2", "web", "client", "in"),
            span("s1", "api", "server", "c1", error=True),
            span("s2", "api", "server", "c2"),
        ],
        {("user", "web"): (1, 0), ("web", "api"): (2, 1)},
    ),
    (
        "producer to consumer by parent goes through the topic",
        [
            span(
                "p",
                "orders",
                "producer",
                attrs={"messaging.destination.name": "orders-topic", "messaging.system": "kafka"},
            ),
            span("c", "shipping", "consumer", "p", attrs={"messaging.system": "kafka"}),
        ],
        {("orders", "orders-topic"): (1, 0), ("orders-topic", "shipping"): (1, 0)},
    ),
    (
        "producer to consumer by link only goes through the topic",
        [
            span("p", "orders", "producer", attrs={"messaging.destination.name": "orders-topic"}),
            span("c", "shipping", "consumer", trace="t2", links=[("t1", "p")]),
        ],
        {("orders", "orders-topic"): (1, 0), ("orders-topic", "shipping"): (1, 0)},
    ),
    (
        "consumer with only messaging.system",
        [span("c", "shipping", "consumer", attrs={"messaging.system": "rabbitmq"})],
        {("rabbitmq", "shipping"): (1, 0)},
    ),
    (
        "consumer with nothing to name a destination: no edge",
        [span("c", "shipping", "consumer")],
        {},
    ),
    (
        "same-service client to server is a real self-edge",
        [span("c", "api", "client"), span("s", "api", "server", "c")],
        {("api", "api"): (1, 0)},
    ),
    (
        "kind-less spans across services link parent to child",
        [span("a", "alpha", None), span("b", "beta", None, "a"), span("c", "gamma", None, "b")],
        {("alpha", "beta"): (1, 0), ("beta", "gamma"): (1, 0)},
    ),
    (
        "client child under another service's server (HotROD pseudo-services)",
        [
            span("in", "driver", "server"),
            span("get", "redis-manual", "client", "in", attrs={"db.system.name": "redis"}),
        ],
        {
            ("user", "driver"): (1, 0),
            ("driver", "redis-manual"): (1, 0),
            ("redis-manual", "redis"): (1, 0),
        },
    ),
    (
        "virtual node named like a service is that service; its self-edge is dropped",
        [
            span("in", "customer", "server"),
            span("q", "mysql", "client", "in", attrs={"db.system.name": "mysql"}),
            span("c", "customer", "client", "in", attrs={"peer.service": "mysql"}),
        ],
        {("user", "customer"): (1, 0), ("customer", "mysql"): (2, 0)},
    ),
]


@pytest.mark.parametrize(("name", "spans", "expected"), CASES, ids=[c[0] for c in CASES])
def test_pairing(
    run,
    tmp_path: Path,
    name: str,
    spans: list[dict[str, Any]],
    expected: dict[tuple[str, str], tuple[int, int]],
) -> None:
    source = write(tmp_path / "traces.json", spans)
    result = run("render", str(source), "--format", "json")
    assert result.code == 0, result.err
    assert edges_of(result.json()) == expected


def test_orphan_is_counted(run, tmp_path: Path) -> None:
    source = write(tmp_path / "t.json", [span("s", "api", "server", "gone")])
    graph = run("render", str(source)).json()
    assert graph["pairing"]["orphans"] == 1
    assert graph["edges"] == []
    assert nodes_of(graph)["api"]["requests"] == 1


def test_shuffled_and_split_across_files_gives_the_same_graph(run, tmp_path: Path) -> None:
    whole = write(tmp_path / "whole.json", CHAIN)
    shuffled = CHAIN[:]
    random.Random(7).shuffle(shuffled)
    first = write(tmp_path / "part1", shuffled[:2])
    second = write(tmp_path / "part2", shuffled[2:])
    expected = run("render", str(whole)).out
    assert run("render", str(second), str(first)).out == expected
    assert edges_of(run("render", str(first), str(second)).json()) == {
        ("user", "web"): (1, 0),
        ("web", "api"): (1, 0),
        ("api", "store"): (1, 0),
    }


def test_a_span_seen_twice_counts_once(run, tmp_path: Path) -> None:
    spans = [span("c", "web", "client"), span("s", "api", "server", "c")]
    a = write(tmp_path / "a.json", spans)
    b = write(tmp_path / "b.json", spans)
    assert edges_of(run("render", str(a), str(b)).json()) == {("web", "api"): (1, 0)}


def test_node_kinds_and_connections(run, tmp_path: Path) -> None:
    source = write(
        tmp_path / "t.json",
        [
            span("in", "web", "server"),
            span("db", "web", "client", "in", attrs={"db.system.name": "postgresql"}),
            span("ext", "web", "client", "in", attrs={"server.address": "api.stripe.com"}),
            span("pub", "web", "producer", "in", attrs={"messaging.destination.name": "events"}),
        ],
    )
    graph = run("render", str(source)).json()
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds == {
        "web": "service",
        "user": "user",
        "postgresql": "database",
        "api.stripe.com": "external",
        "events": "messaging",
    }
    connections = {(e["source"], e["target"]): e["connection"] for e in graph["edges"]}
    assert connections == {
        ("user", "web"): "virtual",
        ("web", "postgresql"): "database",
        ("web", "api.stripe.com"): "virtual",
        ("web", "events"): "messaging",
    }


DB_NAMING = [
    (
        "peer.service wins",
        {
            "peer.service": "orders-db",
            "db.namespace": "x",
            "db.name": "y",
            "server.address": "h",
            "db.system.name": "postgresql",
        },
        "orders-db",
    ),
    (
        "db.namespace beats db.name",
        {"db.namespace": "priority-db", "db.name": "postgres", "db.system.name": "postgresql"},
        "priority-db",
    ),
    (
        "then db.name",
        {"db.name": "postgres", "server.address": "h", "db.system": "postgresql"},
        "postgres",
    ),
    (
        "then server.address",
        {"server.address": "db.internal", "db.system.name": "postgresql"},
        "db.internal",
    ),
    ("db.system.name alone", {"db.system.name": "postgresql"}, "postgresql"),
    (
        "db.system.name before db.system",
        {"db.system": "mssql", "db.system.name": "microsoft.sql_server"},
        "microsoft.sql_server",
    ),
    ("db.system alone", {"db.system": "redis"}, "redis"),
]


@pytest.mark.parametrize(("name", "attrs", "node"), DB_NAMING, ids=[r[0] for r in DB_NAMING])
def test_database_naming(run, tmp_path: Path, name: str, attrs: dict[str, str], node: str) -> None:
    source = write(tmp_path / "t.json", [span("q", "app", "client", attrs=attrs)])
    graph = run("render", str(source)).json()
    assert edges_of(graph) == {("app", node): (1, 0)}
    assert nodes_of(graph)[node]["kind"] == "database"


def test_latency_is_client_side_and_server_side_is_kept(run, tmp_path: Path) -> None:
    source = write(
        tmp_path / "t.json",
        [
            span("c", "web", "client", duration_ms=40.0),
            span("s", "api", "server", "c", duration_ms=30.0),
        ],
    )
    edge = run("render", str(source)).json()["edges"][0]
    assert edge["latency_ms"] == {"p50": 40.0, "p95": 40.0, "p99": 40.0}
    assert edge["server_latency_ms"] == {"p50": 30.0, "p95": 30.0, "p99": 30.0}


def test_percentiles_are_exact(run, tmp_path: Path) -> None:
    spans = [span("in", "web", "server")]
    for i in range(1, 101):
        spans.append(
            span(
                f"c{i}", "web", "client", "in", duration_ms=float(i), attrs={"peer.service": "ext"}
            )
        )
    graph = run("render", str(write(tmp_path / "t.json", spans))).json()
    edge = next(e for e in graph["edges"] if e["target"] == "ext")
    # linear interpolation between closest ranks, as numpy's default
    assert edge["latency_ms"] == {"p50": 50.5, "p95": 95.05, "p99": 99.01}


def test_a_service_named_user_stays_apart_from_the_virtual_user(run, tmp_path: Path) -> None:
    """Sock Shop has a service called `user`: it must not absorb the virtual caller node."""
    source = write(
        tmp_path / "t.json",
        [
            span("in", "front-end", "server"),
            span("c", "front-end", "client", "in"),
            span("s", "user", "server", "c"),
            span("in2", "user", "server", trace="t2"),
        ],
    )
    graph = run("render", str(source)).json()
    assert edges_of(graph) == {
        ("user (virtual)", "front-end"): (1, 0),
        ("user (virtual)", "user"): (1, 0),
        ("front-end", "user"): (1, 0),
    }
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds == {"front-end": "service", "user": "service", "user (virtual)": "user"}
