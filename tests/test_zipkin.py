"""Zipkin v2 JSON: the reader and DESIGN §4 on Zipkin data, one row per case, via the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from servicemap.schema import SpanKind, StatusCode
from servicemap.sources.detect import read_file
from tests.conftest import edges_of, nodes_of, shared
from tests.recorded_spans import span_hex, trace_hex, write_zipkin
from tests.recorded_spans import zipkin_span as z

Edges = dict[tuple[str, str], tuple[int, int]]
Case = tuple[str, list[dict[str, Any]], Edges]

DB = {"db.system": "postgresql"}

CASES: list[Case] = [
    (
        "web to app to db, the db call fails",
        [
            z("c1", "web", "client"),
            z("s1", "app", "server", "c1"),
            z("q", "app", "client", "s1", remote="db", tags=DB, error="timeout"),
        ],
        {("web", "app"): (1, 0), ("app", "db"): (1, 1)},
    ),
    (
        "client and server sharing one span id are one call",
        [z("c", "web", "client"), z("s", "api", "server", same_id_as="c", shared=True)],
        {("web", "api"): (1, 0)},
    ),
    (
        "a child of a shared id hangs under the server half in its own service",
        [
            z("c", "web", "client"),
            z("s", "api", "server", same_id_as="c", shared=True),
            z("work", "api", None, "c"),
            z("q", "api", "client", "c", remote="orders-db", tags=DB),
        ],
        {("web", "api"): (1, 0), ("api", "orders-db"): (1, 0)},
    ),
    (
        "a server record beside a client with the same id is its shared half, flag or not",
        [z("c", "web", "client"), z("s", "api", "server", same_id_as="c")],
        {("web", "api"): (1, 0)},
    ),
    (
        "a producer that only knows the broker",
        [z("p", "orders", "producer", remote="kafka")],
        {("orders", "kafka"): (1, 0)},
    ),
    (
        "a consumer that only knows the broker",
        [z("c", "shipping", "consumer", "gone", remote="kafka")],
        {("kafka", "shipping"): (1, 0)},
    ),
    (
        "producer and consumer both know the broker: two edges, never a direct one",
        [
            z("p", "orders", "producer", remote="kafka"),
            z("c", "shipping", "consumer", "p", remote="kafka"),
        ],
        {("orders", "kafka"): (1, 0), ("kafka", "shipping"): (1, 0)},
    ),
    (
        "no broker named: no edge",
        [z("p", "orders", "producer"), z("c", "shipping", "consumer", "p")],
        {},
    ),
    (
        "three services chained with no kinds at all",
        [z("a", "alpha"), z("b", "beta", None, "a"), z("c", "gamma", None, "b")],
        {("alpha", "beta"): (1, 0), ("beta", "gamma"): (1, 0)},
    ),
    (
        "local spans without a kind between two services still link them",
        [
            z("in", "web", "server"),
            z("local", "web", None, "in"),
            z("job", "worker", None, "local"),
        ],
        {("user", "web"): (1, 0), ("web", "worker"): (1, 0)},
    ),
    (
        "a loopback span: client and server halves in one service",
        [z("c", "web", "client"), z("s", "web", "server", same_id_as="c", shared=True)],
        {("web", "web"): (1, 0)},
    ),
    (
        "an error on one of two client spans under the same parent",
        [
            z("in", "web", "server"),
            z("c1", "web", "client", "in", error="500"),
            z("s1", "api", "server", "in", same_id_as="c1", shared=True, error="500"),
            z("c2", "web", "client", "in"),
            z("s2", "api", "server", "in", same_id_as="c2", shared=True),
        ],
        {("user", "web"): (1, 0), ("web", "api"): (2, 1)},
    ),
    (
        "two headless spans whose absent parents are unrelated: no edge",
        [z("x", "alpha", "server", "gone-1"), z("y", "beta", "server", "gone-2")],
        {},
    ),
    (
        "two headless spans, one the other's parent: one edge",
        [z("x", "alpha", "server", "gone-1"), z("y", "beta", "server", "x")],
        {("alpha", "beta"): (1, 0)},
    ),
    (
        "fragments of one span are merged: one call, the error of either counts",
        [
            z("c", "web", "client", start_ms=None, duration_ms=None, error="503"),
            z("c", "web", "client", remote="billing-api"),
            z("c", "web", None, start_ms=None, duration_ms=None),
        ],
        {("web", "billing-api"): (1, 1)},
    ),
    (
        "a kind-less fragment on the server's side joins the shared server half",
        [
            z("in", "web", "server"),
            z("c", "web", "client", "in"),
            z("s", "api", "server", "in", same_id_as="c", shared=True),
            z("s", "api", None, "in", same_id_as="c", start_ms=None, duration_ms=None),
        ],
        {("user", "web"): (1, 0), ("web", "api"): (1, 0)},
    ),
    (
        "remoteEndpoint.serviceName names an unpaired client's peer",
        [z("c", "web", "client", remote="stripe")],
        {("web", "stripe"): (1, 0)},
    ),
    (
        "a remote name derived from server.address leaves the db named by db.namespace",
        [
            z(
                "q",
                "app",
                "client",
                remote="db.internal",
                tags={
                    "db.system": "postgresql",
                    "db.namespace": "orders",
                    "server.address": "db.internal",
                },
            ),
        ],
        {("app", "orders"): (1, 0)},
    ),
]


@pytest.mark.parametrize(("name", "spans", "expected"), CASES, ids=[c[0] for c in CASES])
def test_zipkin_pairing(
    run, tmp_path: Path, name: str, spans: list[dict[str, Any]], expected: Edges
) -> None:
    source = write_zipkin(tmp_path / "spans.json", spans)
    result = run("render", str(source), "--format", "json")
    assert result.code == 0, result.err
    assert edges_of(result.json()) == expected


def test_spans_missing_a_local_service_are_counted_but_draw_no_edge(run, tmp_path: Path) -> None:
    spans = [
        z("in", "web", "server"),
        z("s", None, "server", "in"),
        z("w", None, None, "s"),
        z("q", None, "client", "w", tags=DB),
        z("p", None, "producer", "w", remote="kafka"),
    ]
    graph = run("render", str(write_zipkin(tmp_path / "spans.json", spans))).json()
    assert graph["window"]["spans"] == 5
    assert edges_of(graph) == {("user", "web"): (1, 0)}


def test_spans_missing_a_local_service_are_read_as_unknown_service(tmp_path: Path) -> None:
    source = write_zipkin(
        tmp_path / "spans.json", [z("c", "web", "client"), z("s", None, "server")]
    )
    table = read_file(source)
    assert table.num_rows == 2
    assert sorted(table.column("service_name").to_pylist()) == ["unknown_service", "web"]


def test_span_table_columns(tmp_path: Path) -> None:
    """Kinds, status, ids (16-hex trace ids left-padded), µs → ns, tags → attributes."""
    source = write_zipkin(
        tmp_path / "spans.json",
        [
            z(
                "c",
                "web",
                "client",
                start_ms=1.5,
                duration_ms=2.25,
                error="",
                tags={"http.status_code": "503", "peer.service": "pay"},
                remote="ignored",
            ),
            z("s", "api", "server", "c", trace="t2", trace_bytes=16),
            z("i", "api", None, "s", trace="t2", trace_bytes=16, tags={"otel.status_code": "OK"}),
        ],
    )
    rows = {row["name"]: row for row in read_file(source).to_pylist()}
    client, server, internal = rows["c"], rows["s"], rows["i"]
    assert client["trace_id"] == bytes(8) + bytes.fromhex(trace_hex("t1", 8))
    assert client["span_id"] == bytes.fromhex(span_hex("t1", "c"))
    assert client["parent_span_id"] is None
    assert client["kind"] == SpanKind.CLIENT
    assert client["status_code"] == StatusCode.ERROR
    assert client["peer_service"] == "pay"
    assert client["http_response_status_code"] == 503
    assert client["duration_ns"] == 2_250_000
    assert server["trace_id"] == bytes.fromhex(trace_hex("t2", 16))
    assert server["kind"] == SpanKind.SERVER and server["status_code"] == StatusCode.UNSET
    assert server["parent_span_id"] == bytes.fromhex(span_hex("t2", "c"))
    assert internal["kind"] == SpanKind.INTERNAL and internal["status_code"] == StatusCode.OK
    assert dict(internal["resource_attributes"]) == {"network.local.address": "10.0.0.1"}


def test_array_of_traces_and_gzip(run, tmp_path: Path) -> None:
    first = [z("c", "web", "client"), z("s", "api", "server", "c")]
    second = [z("c", "web", "client", trace="t2"), z("s", "api", "server", "c", trace="t2")]
    packed = tmp_path / "traces"
    packed.write_bytes(gzip.compress(json.dumps([first, second]).encode()))
    graph = run("render", str(packed)).json()
    assert edges_of(graph) == {("web", "api"): (2, 0)}
    assert graph["window"]["traces"] == 2


def test_a_big_span_array_is_read_in_slices(run, tmp_path: Path, monkeypatch) -> None:
    from servicemap.sources import jsonstream

    monkeypatch.setattr(jsonstream, "SLICE_ITEMS", 7)
    monkeypatch.setattr(jsonstream, "CHUNK_CHARS", 512)
    spans = [z("in", "web", "server")]
    for i in range(50):
        spans.append(z(f"c{i}", "web", "client", "in", error="x" if i % 10 == 0 else None))
        spans.append(z(f"s{i}", "api", "server", "in", same_id_as=f"c{i}", shared=True))
    # the fragment of c0 comes last, slices after its span
    spans.append(z("c0", "web", None, start_ms=None, duration_ms=None, tags={"late": "1"}))
    graph = run("render", str(write_zipkin(tmp_path / "big.json", spans))).json()
    assert edges_of(graph) == {("user", "web"): (1, 0), ("web", "api"): (50, 5)}
    assert graph["window"]["spans"] == 101


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('[{"traceId": "a1", "id": "b2"},\n {"traceId": "a1", "id": x}]', "line 2 column 26"),
        ('[{"traceId": "a1", "id": "b2"},\n', "line 2 column 1"),
        ('[{"traceId": "a1", "id": "not hex"}]', "not hex"),
        ('[{"traceId": "a1", "id": "b2", "timestamp": "soon"}]', "timestamp"),
    ],
    ids=["bad value", "truncated", "bad id", "bad timestamp"],
)
def test_a_malformed_file_names_the_file_and_the_position(
    run, tmp_path: Path, content: str, words: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    result = run("render", str(path))
    assert result.code == 1
    (line,) = result.err.strip().splitlines()
    assert str(path) in line and words in line


# --- the public samples (read in place from ../shared/fixtures-public/zipkin) -------------

ZIPKIN_SAMPLES = [
    "yelp.json",
    "simple-db-p6.json",
    "ascend.json",
    "skew.json",
    "smartthings-mobile-web-install.json",
]


@pytest.mark.parametrize("name", ZIPKIN_SAMPLES)
def test_every_zipkin_sample_renders(run, name: str) -> None:
    path = shared("zipkin", name)
    for fmt in ("json", "dot"):
        result = run("render", str(path), "--format", fmt)
        assert result.code == 0, result.err
        assert result.out


def test_yelp_edges_by_hand(run) -> None:
    """Counted by hand from the 16 records (see the fixtures README for the file):

    - 2e8c… `routing` SERVER, shared, no parent and no client half in the file: it keeps its id
      and is a root SERVER → user→routing.
    - f5f2… CLIENT in yelp-main (parent 2e8c, the routing server) + its shared SERVER half in
      mobile_api → yelp-main→mobile_api; the client under routing's server is a cross-service
      pair → routing→yelp-main.
    - 668e… CLIENT in `unknown` (parent 2e8c) + shared SERVER in yelp_main/api_proxy →
      unknown→yelp_main/api_proxy, and routing→unknown.
    - 241c… (no kind) and e7d1… (CLIENT) run in yelp-main with parent 668e, a shared id whose
      server half is in another service: they hang under the client half (as the Zipkin UI
      hangs them) → unknown→yelp-main, 2 calls.
    - 7a77… CLIENT in mobile_api + shared SERVER in spectre → mobile_api→spectre. The children of
      f5f2 in mobile_api (15fc, 7a77, 6a65, cbd4) hang under mobile_api's server half.
    - Unpaired CLIENTs name their peer by remoteEndpoint.serviceName (no db.system tag, so
      external): mobile_api→blt 1 (15fc), mobile_api→memcache 2 (6a65, cbd4),
      yelp-main→memcache 3 (0fac, 2b68, e7d1), yelp-main→mysql 2 (50b5, b593).
    No error tags.
    """
    graph = run("render", str(shared("zipkin", "yelp.json"))).json()
    assert edges_of(graph) == {
        ("user", "routing"): (1, 0),
        ("routing", "yelp-main"): (1, 0),
        ("routing", "unknown"): (1, 0),
        ("unknown", "yelp_main/api_proxy"): (1, 0),
        ("unknown", "yelp-main"): (2, 0),
        ("yelp-main", "mobile_api"): (1, 0),
        ("yelp-main", "memcache"): (3, 0),
        ("yelp-main", "mysql"): (2, 0),
        ("mobile_api", "spectre"): (1, 0),
        ("mobile_api", "blt"): (1, 0),
        ("mobile_api", "memcache"): (2, 0),
    }
    assert graph["window"]["spans"] == 16
    assert graph["pairing"]["orphans"] == 0


def test_skew_shared_server_pairs_despite_clock_skew(run) -> None:
    graph = run("render", str(shared("zipkin", "skew.json"))).json()
    assert edges_of(graph) == {("user", "servicea"): (1, 0), ("servicea", "serviceb"): (1, 0)}


def test_smartthings_renders_with_its_404_as_one_failed_call(run) -> None:
    graph = run("render", str(shared("zipkin", "smartthings-mobile-web-install.json"))).json()
    edges = edges_of(graph)
    # the 404: a CLIENT in execution and its shared SERVER half in alice, both tagged error
    assert edges[("execution", "alice")] == (1, 1)
    assert sum(errors for _, errors in edges.values()) == 1
    # 1041 records: 84 kind-less fragments merge into their server halves, and the 5 shared
    # SERVER records of one id in `pusher` are one span by (trace, id, service): 953 spans.
    assert graph["window"]["spans"] == 953
    assert graph["window"]["traces"] == 1
    assert nodes_of(graph)["alice"]["errors"] == 1


def test_shared_span_halves_in_different_files_are_one_call(run, tmp_path: Path) -> None:
    trace = "0" * 31 + "1"
    caller = [
        {"traceId": trace, "id": "0000000000000001", "kind": "SERVER", "name": "get",
         "timestamp": 1_700_000_000_000_000, "duration": 100_000,
         "localEndpoint": {"serviceName": "web"}},
        {"traceId": trace, "parentId": "0000000000000001", "id": "0000000000000002",
         "kind": "CLIENT", "name": "call", "timestamp": 1_700_000_000_010_000,
         "duration": 50_000, "localEndpoint": {"serviceName": "web"},
         "remoteEndpoint": {"serviceName": "api"}},
    ]  # fmt: skip
    callee = [
        {"traceId": trace, "parentId": "0000000000000001", "id": "0000000000000002",
         "kind": "SERVER", "shared": True, "name": "call", "timestamp": 1_700_000_000_011_000,
         "duration": 40_000, "localEndpoint": {"serviceName": "api"}},
    ]  # fmt: skip
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(caller))
    second.write_text(json.dumps(callee))
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps(caller + callee))
    expected = {("user", "web"): (1, 0), ("web", "api"): (1, 0)}
    assert edges_of(run("render", str(whole)).json()) == expected
    assert edges_of(run("render", str(first), str(second)).json()) == expected
    assert run("render", str(second), str(first)).out == run("render", str(whole)).out
