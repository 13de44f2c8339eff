"""Hand-built OTLP requests with known span ids, for tests that count spans exactly."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def span_id(request_no: int, index: int) -> bytes:
    return (request_no * 100_000 + index + 1).to_bytes(8, "big")


def make_request(
    request_no: int, spans: int, *, bad: int = 0, service: str = "svc", attributes: int = 4
) -> ExportTraceServiceRequest:
    """`spans` good SERVER spans with ids from `span_id`, then `bad` spans with broken ids."""
    trace_id = (request_no + 1).to_bytes(16, "big")
    attrs = [
        KeyValue(key=f"attr.{k}", value=AnyValue(string_value=f"value-{k}"))
        for k in range(attributes)
    ]
    good = [
        Span(
            trace_id=trace_id,
            span_id=span_id(request_no, i),
            name="op",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=START_NS + i,
            end_time_unix_nano=START_NS + i + 1000,
            attributes=attrs,
        )
        for i in range(spans)
    ]
    broken = [
        Span(trace_id=trace_id[:5], span_id=span_id(request_no, spans + i), name="bad")
        for i in range(bad)
    ]
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=good + broken)])
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def grpc_export(channel: grpc.Channel, body: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes to Export (so tests can send garbage too); returns the raw response."""
    call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
    return bytes(call(body, timeout=timeout))


def parse_response(raw: bytes) -> ExportTraceServiceResponse:
    return ExportTraceServiceResponse.FromString(raw)
