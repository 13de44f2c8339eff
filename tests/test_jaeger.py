"""Jaeger JSON: the reader and DESIGN §4 on Jaeger data, one row per case, via the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from servicemap.schema import SpanKind, StatusCode
from servicemap.sources.detect import read_file
from tests.conftest import edges_of, shared
from tests.recorded_spans import jaeger_document, span_hex, trace_hex, write_jaeger
from tests.recorded_spans import jaeger_span as j

Edges = dict[tuple[str, str], tuple[int, int]]
Case = tuple[str, list[dict[str, Any]], Edges]

DB = {"db.system": "postgresql"}

CASES: list[Case] = [
    (
        "web to app to db, the db call fails",
        [
            j("c1", "web", "client"),
            j("s1", "app", "server", "c1"),
            j("q", "app", "client", "s1", error=True, tags={"peer.service": "db", **DB}),
        ],
        {("web", "app"): (1, 0), ("app", "db"): (1, 1)},
    ),
    (
        "client and server sharing one span id (Zipkin-style instrumentation) are one call",
        [j("c", "web", "client"), j("s", "api", "server", same_id_as="c")],
        {("web", "api"): (1, 0)},
    ),
    (
        "a producer that only knows the broker",
        [j("p", "orders", "producer", tags={"peer.service": "kafka"})],
        {("orders", "kafka"): (1, 0)},
    ),
    (
        "a consumer that only knows the broker",
        [j("c", "shipping", "consumer", "gone", tags={"peer.service": "kafka"})],
        {("kafka", "shipping"): (1, 0)},
    ),
    (
        "producer and consumer both know the broker: two edges, never a direct one",
        [
            j("p", "orders", "producer", tags={"peer.service": "kafka"}),
            j("c", "shipping", "consumer", "p", tags={"peer.service": "kafka"}),
        ],
        {("orders", "kafka"): (1, 0), ("kafka", "shipping"): (1, 0)},
    ),
    (
        "no broker named: no edge",
        [j("p", "orders", "producer"), j("c", "shipping", "consumer", "p")],
        {},
    ),
    (
        "a FOLLOWS_FROM consumer is linked, not parented, and finds the topic by the link",
        [
            j("p", "orders", "producer", tags={"messaging.destination.name": "orders-topic"}),
            j("c", "shipping", "consumer", trace="t2", references=[("FOLLOWS_FROM", "t1", "p")]),
        ],
        {("orders", "orders-topic"): (1, 0), ("orders-topic", "shipping"): (1, 0)},
    ),
    (
        "three services chained with no kinds at all",
        [j("a", "alpha"), j("b", "beta", None, "a"), j("c", "gamma", None, "b")],
        {("alpha", "beta"): (1, 0), ("beta", "gamma"): (1, 0)},
    ),
    (
        "a loopback span: client and server in one service",
        [j("c", "web", "client"), j("s", "web", "server", "c")],
        {("web", "web"): (1, 0)},
    ),
    (
        "an error on one of two client spans under the same parent",
        [
            j("in", "web", "server"),
            j("c1", "web", "client", "in", error=True),
            j("s1", "api", "server", "c1"),
            j("c2", "web", "client", "in"),
            j("s2", "api", "server", "c2"),
        ],
        {("user", "web"): (1, 0), ("web", "api"): (2, 1)},
    ),
    (
        "two headless spans whose absent parents are unrelated: no edge",
        [j("x", "alpha", "server", "gone-1"), j("y", "beta", "server", "gone-2")],
        {},
    ),
    (
        "two headless spans, one the other's parent: one edge",
        [j("x", "alpha", "server", "gone-1"), j("y", "beta", "server", "x")],
        {("alpha", "beta"): (1, 0)},
    ),
    (
        "the first CHILD_OF is the parent, the other references are links",
        [
            j("a", "alpha"),
            j("b", "beta"),
            j("c", "gamma", None, "a", references=[("CHILD_OF", "t1", "b")]),
        ],
        {("alpha", "gamma"): (1, 0)},
    ),
    (
        "a CHILD_OF into another trace cannot be the parent; the next one is",
        [
            j("a", "alpha"),
            j("c", "gamma", None, references=[("CHILD_OF", "t9", "x"), ("CHILD_OF", "t1", "a")]),
        ],
        {("alpha", "gamma"): (1, 0)},
    ),
    (
        "otel.status_code=ERROR is an error",
        [j("c", "web", "client", tags={"otel.status_code": "ERROR", "peer.service": "pay"})],
        {("web", "pay"): (1, 1)},
    ),
    (
        "error=false is no error",
        [j("c", "web", "client", tags={"error": False, "peer.service": "pay"})],
        {("web", "pay"): (1, 0)},
    ),
]


@pytest.mark.parametrize(("name", "spans", "expected"), CASES, ids=[c[0] for c in CASES])
def test_jaeger_pairing(
    run, tmp_path: Path, name: str, spans: list[dict[str, Any]], expected: Edges
) -> None:
    source = write_jaeger(tmp_path / "traces.json", spans)
    result = run("render", str(source), "--format", "json")
    assert result.code == 0, result.err
    assert edges_of(result.json()) == expected


def test_spans_missing_a_service_name_are_counted_but_draw_no_edge(run, tmp_path: Path) -> None:
    spans = [
        j("in", "web", "server"),
        j("s", None, "server", "in"),
        j("q", None, "client", "s", tags=DB),
        j("p", None, "producer", "s", tags={"peer.service": "kafka"}),
    ]
    graph = run("render", str(write_jaeger(tmp_path / "traces.json", spans))).json()
    assert graph["window"]["spans"] == 4
    assert edges_of(graph) == {("user", "web"): (1, 0)}


@pytest.mark.parametrize("order", ["error first", "error last"])
def test_a_span_seen_twice_keeps_the_error_of_its_shorter_copy(
    run, tmp_path: Path, order: str
) -> None:
    """§3/§4.7: the copies count once, as the longest, and failed if either copy failed."""
    copies = [
        j("c", "web", "client", tags={"peer.service": "pay"}, duration_ms=10),
        j("c", "web", "client", tags={"peer.service": "pay"}, duration_ms=5, error=True),
    ]
    if order == "error first":
        copies.reverse()
    graph = run("render", str(write_jaeger(tmp_path / "traces.json", copies))).json()
    assert graph["window"]["spans"] == 1
    assert edges_of(graph) == {("web", "pay"): (1, 1)}
    assert graph["edges"][0]["latency_ms"]["p50"] == 10


def test_bare_trace_and_download_give_the_same_graph(run, tmp_path: Path) -> None:
    spans = CASES[0][1]
    bare = write_jaeger(tmp_path / "bare.json", spans, wrap=False)
    wrapped = write_jaeger(tmp_path / "wrapped.json", spans)
    assert run("render", str(bare)).out == run("render", str(wrapped)).out


def test_span_table_columns(tmp_path: Path) -> None:
    """Process → service and resource attributes, tags → attributes, kinds, status, ids, ns."""
    document = jaeger_document(
        [
            j(
                "c",
                "web",
                "client",
                start_ms=1.5,
                duration_ms=2.25,
                tags={"http.status_code": 503, "peer.service": "pay", "retry": True},
            ),
            j(
                "s",
                "api",
                "server",
                "c",
                trace="t2",
                trace_bytes=16,
                tags={"otel.status_code": "OK"},
            ),
        ]
    )
    for trace in document["data"]:
        for process in trace["processes"].values():
            process["tags"] = [
                {"key": "service.namespace", "type": "string", "value": "shop"},
                {"key": "hostname", "type": "string", "value": "h1"},
            ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(document))
    rows = {row["name"]: row for row in read_file(path).to_pylist()}
    client, server = rows["c"], rows["s"]
    assert client["trace_id"] == bytes(8) + bytes.fromhex(trace_hex("t1", 8))
    assert client["span_id"] == bytes.fromhex(span_hex("t1", "c"))
    assert client["service_name"] == "web"
    assert client["kind"] == SpanKind.CLIENT
    assert client["status_code"] == StatusCode.UNSET
    assert client["peer_service"] == "pay"
    assert client["http_response_status_code"] == 503
    assert client["duration_ns"] == 2_250_000
    assert client["service_namespace"] == "shop"
    assert dict(client["attributes"]) == {"retry": "true"}
    assert dict(client["resource_attributes"]) == {"service.namespace": "shop", "hostname": "h1"}
    assert server["trace_id"] == bytes.fromhex(trace_hex("t2", 16))
    assert server["kind"] == SpanKind.SERVER and server["status_code"] == StatusCode.OK


def test_a_malformed_download_names_the_file_and_the_position(run, tmp_path: Path) -> None:
    text = json.dumps(jaeger_document(CASES[0][1]), indent=1)
    broken = tmp_path / "broken.json"
    broken.write_text(text.replace('"operationName": "s1"', '"operationName": s1'))
    result = run("render", str(broken))
    assert result.code == 1
    (line,) = result.err.strip().splitlines()
    number = next(i for i, row in enumerate(text.splitlines(), 1) if '"operationName": "s1"' in row)
    assert f"{broken}: invalid JSON at line {number} column" in line


# --- the public samples (read in place from ../shared/fixtures-public/jaeger) -------------


@pytest.mark.parametrize("name", ["ui_01.json", "domain_01.json"])
def test_every_jaeger_sample_renders(run, name: str) -> None:
    path = shared("jaeger", name)
    for fmt in ("json", "dot"):
        result = run("render", str(path), "--format", fmt)
        assert result.code == 0, result.err
        assert result.out


def test_ui_01_edges_by_hand(run) -> None:
    """Counted by hand from the 5 spans (no span.kind anywhere, so only DESIGN §4 rule 6):

    - span 02 appears twice in service-x (same trace, id and service): one span, and the copy
      kept carries `error: true`.
    - 03 (service-y) CHILD_OF 02 → service-x→service-y, failed (its parent is in error).
    - 04 (service-y): its first CHILD_OF points into another trace (…ff), which can be no parent
      here and becomes a link; the next CHILD_OF, 02, is the parent → service-x→service-y,
      failed; the FOLLOWS_FROM to 02 is a link.
    - 05 (service-y) CHILD_OF 04: same service, no edge.
    """
    graph = run("render", str(shared("jaeger", "ui_01.json"))).json()
    assert edges_of(graph) == {("service-x", "service-y"): (2, 2)}
    assert graph["window"]["spans"] == 4
    assert graph["pairing"]["orphans"] == 0


def test_domain_01_is_the_same_trace_as_ui_01(run) -> None:
    ui = run("render", str(shared("jaeger", "ui_01.json"))).json()
    domain = run("render", str(shared("jaeger", "domain_01.json"))).json()
    assert edges_of(domain) == edges_of(ui)
    assert domain["nodes"] == ui["nodes"]
    assert domain["pairing"] == ui["pairing"]
