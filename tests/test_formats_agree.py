"""The same traces written as OTLP/JSON, Jaeger JSON and Zipkin JSON give the same graph JSON.

The Jaeger and Zipkin files are what the OpenTelemetry→Jaeger translator and the OpenTelemetry
Zipkin exporter make of the OTLP spans (tests/recorded_spans.py), so this also checks that the
readers undo those mappings: kinds, status, ids, times, and Zipkin's remote endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.recorded_spans import as_jaeger, as_zipkin
from tests.spans import span, write

TRACE_SETS: dict[str, list[dict[str, Any]]] = {
    "chain from the user with a failing database call": [
        span("a-in", "web", "server", duration_ms=50),
        span("a-out", "web", "client", "a-in", start_ms=1, duration_ms=40),
        span("b-in", "app", "server", "a-out", start_ms=2, duration_ms=35),
        span(
            "q",
            "app",
            "client",
            "b-in",
            start_ms=3,
            duration_ms=20,
            error=True,
            attrs={
                "db.system": "postgresql",
                "db.namespace": "orders",
                "server.address": "db.internal",
            },
        ),
    ],
    "an error on one of two client spans, and an external peer": [
        span("in", "web", "server", duration_ms=30),
        span("c1", "web", "client", "in", error=True, duration_ms=12),
        span("s1", "api", "server", "c1", error=True, duration_ms=11),
        span("c2", "web", "client", "in", duration_ms=7),
        span("s2", "api", "server", "c2", duration_ms=6),
        span("pay", "web", "client", "in", attrs={"peer.service": "billing-api"}),
        span("ext", "web", "client", "in", attrs={"server.address": "api.stripe.com"}),
    ],
    "messaging through a topic, parented": [
        span(
            "p",
            "orders",
            "producer",
            attrs={"messaging.destination.name": "orders-topic", "messaging.system": "kafka"},
        ),
        span("c", "shipping", "consumer", "p", start_ms=5),
    ],
    "kind-less services and headless spans": [
        span("a", "alpha", "internal"),
        span("b", "beta", "internal", "a", start_ms=1),
        span("c", "gamma", None, "b", start_ms=2),
        span("x", "delta", "server", "gone", trace="t2"),
        span("y", "epsilon", "server", "x", trace="t2", start_ms=3),
    ],
    "several traces, HTTP status and a self-call": [
        span("in", "web", "server", trace="t1", attrs={"http.response.status_code": 200}),
        span("self", "web", "client", "in", trace="t1"),
        span("self-in", "web", "server", "self", trace="t1"),
        span("in", "web", "server", trace="t2", start_ms=100, error=True),
    ],
}


@pytest.mark.parametrize("name", list(TRACE_SETS))
def test_otlp_jaeger_and_zipkin_give_the_same_graph(run, tmp_path: Path, name: str) -> None:
    spans = TRACE_SETS[name]
    otlp = write(tmp_path / "otlp.json", spans)
    jaeger = tmp_path / "jaeger.json"
    jaeger.write_text(json.dumps(as_jaeger(spans)))
    zipkin = tmp_path / "zipkin.json"
    zipkin.write_text(json.dumps(as_zipkin(spans)))
    outputs = {}
    for fmt, path in (("otlp", otlp), ("jaeger", jaeger), ("zipkin", zipkin)):
        result = run("render", str(path), "--format", "json")
        assert result.code == 0, f"{fmt}: {result.err}"
        outputs[fmt] = result.out
    assert json.loads(outputs["otlp"])["edges"], "a trace set with no edge proves little"
    assert outputs["jaeger"] == outputs["otlp"]
    assert outputs["zipkin"] == outputs["otlp"]


def test_all_three_formats_together_count_each_span_once(run, tmp_path: Path) -> None:
    """One trace in three files of three formats: a span seen thrice counts once."""
    spans = TRACE_SETS["chain from the user with a failing database call"]
    otlp = write(tmp_path / "otlp.json", spans)
    jaeger = tmp_path / "jaeger.json"
    jaeger.write_text(json.dumps(as_jaeger(spans)))
    zipkin = tmp_path / "zipkin.json"
    zipkin.write_text(json.dumps(as_zipkin(spans)))
    alone = run("render", str(otlp)).out
    assert run("render", str(otlp), str(jaeger), str(zipkin)).out == alone
