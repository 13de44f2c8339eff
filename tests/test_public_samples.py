"""The public OTLP samples in ../shared/fixtures-public/otlp (read in place, never copied)."""

from __future__ import annotations

import pytest

from tests.conftest import SHARED, edges_of, nodes_of, shared

OTLP_SAMPLES = [
    "trace.json",
    "trace.protobuf-bin",
    "hotrod_n_plus_one_full_concurrent.json",
    "jaeger-v3-api_hotrod_getTrace-response.json",
    "otel-demo_error_timeout_masked.json",
]


@pytest.mark.parametrize("name", OTLP_SAMPLES)
def test_every_otlp_sample_renders(run, name: str) -> None:
    path = shared("otlp", name)
    for fmt in ("json", "dot"):
        result = run("render", str(path), "--format", fmt)
        assert result.code == 0, result.err
        assert result.out


def test_json_and_protobuf_samples_give_the_same_graph(run) -> None:
    as_json = run("render", str(shared("otlp", "trace.json"))).out
    as_protobuf = run("render", str(shared("otlp", "trace.protobuf-bin"))).out
    assert as_json == as_protobuf
    graph = run("render", str(shared("otlp", "trace.json"))).json()
    # The only span is a SERVER whose parent is absent: an orphan, no edge.
    assert graph["window"]["spans"] == 1
    assert graph["pairing"]["orphans"] == 1
    assert graph["edges"] == []


def test_hotrod_trace(run) -> None:
    graph = run("render", str(shared("otlp", "hotrod_n_plus_one_full_concurrent.json"))).json()
    edges = edges_of(graph)
    assert edges == {
        ("user", "frontend"): (1, 0),
        ("frontend", "customer"): (1, 0),
        ("frontend", "driver"): (1, 0),
        ("frontend", "route"): (10, 0),
        ("customer", "mysql"): (1, 0),
        ("driver", "redis-manual"): (14, 3),
        ("redis-manual", "redis"): (14, 3),
    }
    assert ("mysql", "mysql") not in edges
    nodes = nodes_of(graph)
    assert nodes["redis"]["kind"] == "database"
    assert nodes["mysql"]["kind"] == "service"
    assert graph["window"]["spans"] == 40
    assert graph["pairing"]["orphans"] == 0


def test_jaeger_v3_wrapper_is_unwrapped(run) -> None:
    graph = run("render", str(shared("otlp", "jaeger-v3-api_hotrod_getTrace-response.json")))
    edges = edges_of(graph.json())
    assert edges[("frontend", "route")] == (10, 0)
    assert edges[("driver", "redis-manual")] == (14, 3)


def test_all_samples_together(run) -> None:
    paths = [str(shared("otlp", name)) for name in OTLP_SAMPLES]
    graph = run("render", *paths).json()
    assert graph["window"]["spans"] == 1 + 1 + 40 + 40 + 26 - 1  # the two trace.* are one span
    assert graph["window"]["traces"] == 4
    assert SHARED.exists()


def test_otel_demo_timeout_is_on_the_proxy_edge(run) -> None:
    graph = run("render", str(shared("otlp", "otel-demo_error_timeout_masked.json"))).json()
    failing = {key: value for key, value in edges_of(graph).items() if value[1]}
    assert failing == {("load-generator", "frontend-proxy"): (2, 1)}
