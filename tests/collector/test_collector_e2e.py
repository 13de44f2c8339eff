"""End to end with the real OpenTelemetry SDK: one TracerProvider per service, the stock OTLP
exporters, a collector subprocess, SIGTERM, then `servicemap render` on what it wrote."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from servicemap.storage import dataset_files
from tests.collector.conftest import CollectorProcess
from tests.conftest import edges_of

TRACES = 60
SERVICES = ("frontend", "checkout", "payments")
EXPECTED = {
    ("user", "frontend"): (TRACES, 0),
    ("frontend", "checkout"): (TRACES, 0),
    ("checkout", "payments"): (TRACES, TRACES // 10),
    ("checkout", "orders"): (TRACES, 0),
}


def send_traces(make_exporter: Callable[[], SpanExporter]) -> None:
    """Three services, each with its own provider and exporter, sharing the trace context."""
    providers = {}
    for service in SERVICES:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(
            BatchSpanProcessor(make_exporter(), max_export_batch_size=50, schedule_delay_millis=50)
        )
        providers[service] = provider
    frontend, checkout, payments = (providers[s].get_tracer("e2e") for s in SERVICES)
    for i in range(TRACES):
        with (
            frontend.start_as_current_span("GET /", kind=SpanKind.SERVER),
            frontend.start_as_current_span("POST checkout", kind=SpanKind.CLIENT),
            checkout.start_as_current_span("POST /checkout", kind=SpanKind.SERVER),
        ):
            with (
                checkout.start_as_current_span("charge", kind=SpanKind.CLIENT),
                payments.start_as_current_span("charge", kind=SpanKind.SERVER) as charge,
            ):
                if i % 10 == 0:
                    charge.set_status(Status(StatusCode.ERROR, "declined"))
            with checkout.start_as_current_span(
                "INSERT orders",
                kind=SpanKind.CLIENT,
                attributes={"db.system": "postgresql", "db.namespace": "orders"},
            ):
                pass
    for provider in providers.values():
        assert provider.force_flush(timeout_millis=20_000)
        provider.shutdown()


def check_map(run: Any, collector: CollectorProcess) -> None:
    graph = run("render", str(collector.data), "--format", "json").json()
    assert edges_of(graph) == EXPECTED
    assert graph["window"]["spans"] == TRACES * 6


def test_sdk_grpc_exporter_to_parquet(start_collector: Any, run: Any) -> None:
    collector = start_collector()
    send_traces(lambda: GrpcExporter(endpoint=collector.grpc_target, insecure=True, timeout=10))
    metrics = collector.metrics()
    assert metrics["servicemap_collector_spans_accepted_total"] == TRACES * 6
    assert collector.terminate() == 0
    assert "collector stopped" in collector.log_text()
    check_map(run, collector)


def test_sdk_http_protobuf_exporter_to_parquet(start_collector: Any, run: Any) -> None:
    collector = start_collector()
    send_traces(lambda: HttpExporter(endpoint=f"{collector.http_url}/v1/traces", timeout=10))
    assert collector.terminate(signal.SIGINT) == 0
    check_map(run, collector)
    # one roll at shutdown: one file per hour partition, named after its log segment
    assert all(path.name.startswith("part-") for path in dataset_files(collector.data))
    assert not list((collector.data / "_wal").glob("*.wal"))
