"""Small trace scenarios built with the real OpenTelemetry SDK, written as OTLP/JSON files.

Each service (and each version of it) has its own TracerProvider and Resource exporting into an
InMemorySpanExporter; the trace context crosses service boundaries only through a W3C
`traceparent` carrier (inject on the client, extract on the server), as in
scripts/generate_demo.py. Every span has explicit start and end times, ids come from a seeded
generator, so a scenario is deterministic.

    sc = Scenario()
    def leaf(server: Server) -> None:
        server.work(5)
        server.fail()
    def top(server: Server) -> None:
        if not server.call("leaf", leaf):
            server.fail()
    sc.request("top", at_ms=0, handler=top, attributes={"enduser.id": "u1"})
    sc.write(tmp_path / "traces.json")
"""

from __future__ import annotations

import base64
import json
import random
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped, unused-ignore]
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

MS = 1_000_000
START_NS = 1_793_534_400 * 10**9  # 2026-11-01T12:00:00Z
NET_MS = 0.5
PROPAGATOR = TraceContextTextMapPropagator()
Attributes = dict[str, AttributeValue]


class SeededIds(IdGenerator):  # type: ignore[misc, unused-ignore]
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


def iso(offset_ms: float) -> str:
    """The scenario time `offset_ms` after START_NS, as ISO 8601 for --since/--before."""
    from datetime import UTC, datetime

    ns = START_NS + int(offset_ms * MS)
    moment = datetime.fromtimestamp(ns // 10**9, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9 // 1000:06d}Z"


class Server:
    """A SERVER (or CONSUMER) span being handled: a time cursor and outgoing calls."""

    def __init__(self, scenario: Scenario, service: str, span: Span, start: int) -> None:
        self.scenario = scenario
        self.service = service
        self.span = span
        self.t = start
        self.failed = False

    def context(self) -> Context:
        return trace.set_span_in_context(self.span, Context())

    def work(self, ms: float) -> None:
        self.t += int(ms * MS)

    def fail(self) -> None:
        self.failed = True

    def call(
        self, target: str, handler: Callable[[Server], None], attributes: Attributes | None = None
    ) -> bool:
        """An HTTP call to `target`: CLIENT span here, SERVER span there; True if it worked."""
        tracer = self.scenario.tracer(self.service)
        client = tracer.start_span(
            f"GET {target}",
            context=self.context(),
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "server.address": target,
                **(attributes or {}),
            },
            start_time=self.t,
        )
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(client, Context()))
        server_start = self.t + int(NET_MS * MS)
        server = self.scenario.serve(target, carrier, server_start, handler, {})
        end = server.t + int(NET_MS * MS)
        if server.failed:
            client.set_status(Status(StatusCode.ERROR, "500"))
        client.end(end_time=end)
        self.t = end
        return not server.failed

    def internal(self, name: str, body: Callable[[Server], None]) -> bool:
        """An INTERNAL span around `body` (its calls are the span's children), ended without a
        status, as in-process instrumentation often leaves it; True if `body` did not fail."""
        span = self.scenario.tracer(self.service).start_span(
            name, context=self.context(), kind=SpanKind.INTERNAL, start_time=self.t
        )
        inner = Server(self.scenario, self.service, span, self.t)
        body(inner)
        span.end(end_time=inner.t)
        self.t = inner.t
        return not inner.failed

    def db(self, name: str, ms: float, error: bool = False) -> bool:
        """A database query (a CLIENT span with db.system.name and no server)."""
        tracer = self.scenario.tracer(self.service)
        span = tracer.start_span(
            "SELECT",
            context=self.context(),
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "postgresql", "db.namespace": name},
            start_time=self.t,
        )
        self.work(ms)
        if error:
            span.set_status(Status(StatusCode.ERROR, "query failed"))
        span.end(end_time=self.t)
        return not error


class Scenario:
    def __init__(self, seed: int = 7) -> None:
        self.ids = SeededIds(seed)
        self.versions: dict[str, str] = {}
        self.providers: dict[tuple[str, str], tuple[TracerProvider, InMemorySpanExporter]] = {}

    def tracer(self, service: str) -> Tracer:
        version = self.versions.get(service, "1.0.0")
        key = (service, version)
        if key not in self.providers:
            exporter = InMemorySpanExporter()
            provider = TracerProvider(
                resource=Resource({"service.name": service, "service.version": version}),
                id_generator=self.ids,
                shutdown_on_exit=False,
            )
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            self.providers[key] = (provider, exporter)
        return self.providers[key][0].get_tracer("scenario", "1.0.0")

    def serve(
        self,
        service: str,
        carrier: dict[str, str] | None,
        start: int,
        handler: Callable[[Server], None],
        attributes: Attributes,
    ) -> Server:
        parent = PROPAGATOR.extract(carrier, context=Context()) if carrier else Context()
        span = self.tracer(service).start_span(
            f"GET /{service}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.route": f"/{service}", **attributes},
            start_time=start,
        )
        server = Server(self, service, span, start)
        handler(server)
        if server.t == start:
            server.work(1)
        if server.failed:
            span.set_status(Status(StatusCode.ERROR, "500"))
        span.end(end_time=server.t)
        return server

    def request(
        self,
        service: str,
        at_ms: float,
        handler: Callable[[Server], None],
        attributes: Attributes | None = None,
    ) -> Server:
        """A root request from a user into `service` at `at_ms` after the scenario start."""
        return self.serve(service, None, START_NS + int(at_ms * MS), handler, attributes or {})

    def spans(self) -> list[ReadableSpan]:
        return [s for _, exporter in self.providers.values() for s in exporter.get_finished_spans()]

    def to_otlp_json(self) -> dict[str, Any]:
        request = MessageToDict(encode_spans(self.spans()), use_integers_for_enums=True)
        for entry in request.get("resourceSpans", []):
            for scope in entry.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
        return request

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_otlp_json()))
        return path


SVG = "{http://www.w3.org/2000/svg}"


def svg_strokes(svg: str, kind: str) -> dict[str, set[str]]:
    """The stroke colours of each node's outline or edge's line, by its graphviz title."""
    strokes: dict[str, set[str]] = {}
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        if group.get("class") != kind:
            continue
        title = group.find(f"{SVG}title")
        assert title is not None and title.text is not None
        shapes = [
            s for s in group.iter() if s.tag in (f"{SVG}path", f"{SVG}polygon", f"{SVG}ellipse")
        ]
        strokes[title.text] = {s.get("stroke", "") for s in shapes} - {"none", "transparent"}
    return strokes
