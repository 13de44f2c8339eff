"""OTLP → span table. Protobuf types stop here: the collector and the file readers both call in.

`convert_reference` is the definition: one small function per message (resource, span,
attribute value) in a per-span Python loop. `convert` and `convert_serialized` give the same
table through `otlp_columnar` (protobuf bytes → Arrow in Rust, then vectorised) and fall back to
the reference for what that does not cover; tests check both agree.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, TracesData

from servicemap.errors import InvalidSpanError, SourceError
from servicemap.schema import SPAN_ID_BYTES, SPAN_SCHEMA, TRACE_ID_BYTES, UNKNOWN_SERVICE
from servicemap.sources.columns import SpanColumns

logger = logging.getLogger(__name__)

MAX_ERRORS = 5  # error messages kept per conversion (and per request)
# OTLP/JSON writes these ids in hex (protobuf JSON would have base64); `otlp_json` follows.
HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
HEX_LINK_ID_FIELDS = ("traceId", "spanId")
_ZERO_TRACE = bytes(TRACE_ID_BYTES)
_ZERO_SPAN = bytes(SPAN_ID_BYTES)


@dataclass
class Conversion:
    """The span table of one request, plus the spans refused and why (OTLP partial success)."""

    table: pa.Table
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class BatchConversion:
    """The span table of several requests (in order), and per request the spans refused."""

    table: pa.Table
    rejected: list[int]
    errors: list[list[str]]


def any_value_to_str(value: AnyValue) -> str | None:
    """Attribute values become strings; arrays and maps become JSON so nothing is lost."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return value.string_value
    return json.dumps(_any_value_to_python(value), separators=(",", ":"))


def _any_value_to_python(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value_to_python(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind is None:
        return None
    return getattr(value, kind)


def attributes_to_dict(attributes: Iterable[KeyValue]) -> dict[str, str]:
    """KeyValue list → {key: string}; the last duplicate key wins, as in the SDKs."""
    result: dict[str, str] = {}
    for kv in attributes:
        text = any_value_to_str(kv.value)
        if text is not None:
            result[kv.key] = text
    return result


def id_problem(trace_id: bytes, span_id: bytes, parent_span_id: bytes) -> str | None:
    """Why a span's ids break the model, or None when they are fine."""
    if len(trace_id) != TRACE_ID_BYTES or trace_id == _ZERO_TRACE:
        return f"trace id must be {TRACE_ID_BYTES} non-zero bytes, got {len(trace_id)}"
    if len(span_id) != SPAN_ID_BYTES or span_id == _ZERO_SPAN:
        return f"span id must be {SPAN_ID_BYTES} non-zero bytes, got {len(span_id)}"
    if parent_span_id and len(parent_span_id) != SPAN_ID_BYTES:
        return f"parent span id must be {SPAN_ID_BYTES} bytes, got {len(parent_span_id)}"
    return None


def _validate_ids(span: Span) -> str | None:
    return id_problem(span.trace_id, span.span_id, span.parent_span_id)


class _Columns:
    """OTLP resource spans → rows of the shared span-table builder."""

    def __init__(self) -> None:
        self.columns = SpanColumns()

    def add_resource_spans(self, resource_spans: ResourceSpans, conversion: Conversion) -> None:
        resource_attrs = attributes_to_dict(resource_spans.resource.attributes)
        service = resource_attrs.pop("service.name", "") or UNKNOWN_SERVICE
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                problem = _validate_ids(span)
                if problem is not None:
                    conversion.rejected += 1
                    if len(conversion.errors) < MAX_ERRORS:
                        conversion.errors.append(f"span {span.name!r} of {service}: {problem}")
                    continue
                self.add_span(span, service, resource_attrs)

    def add_span(self, span: Span, service: str, resource_attrs: dict[str, str]) -> None:
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        self.columns.append(
            trace_id=span.trace_id,
            span_id=span.span_id,
            parent_span_id=span.parent_span_id or None,
            service=service,
            name=span.name,
            kind=span.kind,
            status_code=span.status.code,
            start_ns=start or None,
            duration_ns=end - start if start and end >= start else None,
            links=[(link.trace_id, link.span_id) for link in span.links],
            resource_attrs=resource_attrs,
            span_attrs=attributes_to_dict(span.attributes),
        )

    def table(self) -> pa.Table:
        return self.columns.table()


def convert_reference(messages: Iterable[TracesData | ExportTraceServiceRequest]) -> Conversion:
    """Spans of OTLP messages → one span table; invalid spans are counted, not kept.

    The reference: one message at a time in Python. `convert` gives the same table faster
    and falls back to this for what its vectorised rules do not cover."""
    columns = _Columns()
    conversion = Conversion(table=SPAN_SCHEMA.empty_table())
    for message in messages:
        for resource_spans in message.resource_spans:
            columns.add_resource_spans(resource_spans, conversion)
    conversion.table = columns.table()
    return conversion


def check_ids(message: TracesData | ExportTraceServiceRequest) -> tuple[int, int, list[str]]:
    """(spans, spans refused, first reasons) of one message under the rules of `convert`,
    without converting it: what a receiver answers as OTLP partial success."""
    spans = rejected = 0
    errors: list[str] = []
    for resource_spans in message.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            batch = scope_spans.spans
            spans += len(batch)
            for span in batch:
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                if (
                    len(trace_id) == TRACE_ID_BYTES
                    and len(span_id) == SPAN_ID_BYTES
                    and (not parent or len(parent) == SPAN_ID_BYTES)
                    and trace_id != _ZERO_TRACE
                    and span_id != _ZERO_SPAN
                ):
                    continue
                rejected += 1
                if len(errors) < MAX_ERRORS:
                    resource_attrs = attributes_to_dict(resource_spans.resource.attributes)
                    service = resource_attrs.get("service.name", "") or UNKNOWN_SERVICE
                    problem = id_problem(trace_id, span_id, parent)
                    errors.append(f"span {span.name!r} of {service}: {problem}")
    return spans, rejected, errors


def convert(messages: Iterable[TracesData | ExportTraceServiceRequest]) -> Conversion:
    """Spans of OTLP messages → one span table; invalid spans are counted, not kept."""
    return merge(convert_serialized([message.SerializeToString() for message in messages]))


def convert_serialized(bodies: Sequence[bytes]) -> BatchConversion:
    """Serialized requests (`ExportTraceServiceRequest` or `TracesData`) → one span table in
    request order, and per request the spans refused and why.

    Vectorised (`otlp_columnar`); a body it does not cover exactly goes through
    `convert_reference`. Raises `SourceError` for a body protobuf cannot decode."""
    from servicemap.sources import otlp_columnar

    if not bodies:
        return BatchConversion(SPAN_SCHEMA.empty_table(), [], [])
    try:
        return otlp_columnar.convert_batch(bodies)
    except (otlp_columnar.Unsupported, otlp_columnar.Undecodable) as exc:
        logger.debug("vectorised conversion declined (%s)", exc)
    if len(bodies) > 1:
        parts = [convert_serialized([body]) for body in bodies]
        return BatchConversion(
            pa.concat_tables([part.table for part in parts]),
            [count for part in parts for count in part.rejected],
            [errors for part in parts for errors in part.errors],
        )
    conversion = convert_reference([decode_protobuf(bodies[0])])
    return BatchConversion(conversion.table, [conversion.rejected], [conversion.errors])


def merge(batch: BatchConversion) -> Conversion:
    """A batch's per-request results as one conversion (the first errors of all requests)."""
    errors = [error for request in batch.errors for error in request][:MAX_ERRORS]
    return Conversion(batch.table, sum(batch.rejected), errors)


def decode_protobuf(data: bytes) -> ExportTraceServiceRequest:
    """Binary OTLP (`ExportTraceServiceRequest`, same wire layout as `TracesData`)."""
    try:
        return ExportTraceServiceRequest.FromString(data)
    except DecodeError as exc:
        raise SourceError(f"not an OTLP protobuf message ({exc})") from None


def _hex_to_base64(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidSpanError(f"{where} must be a hex string, got {type(value).__name__}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InvalidSpanError(f"{where} {value!r} is not hex") from None
    return base64.b64encode(raw).decode()


def _fix_ids(document: dict[str, Any]) -> None:
    """OTLP/JSON writes ids as hex, protobuf JSON expects base64: rewrite them in place."""
    for resource_spans in document.get("resourceSpans") or ():
        # ProtoJSON also takes the field's own name; writing `scopeSpans` beside a
        # `scope_spans` would make ParseDict drop the latter's spans.
        key = "scope_spans" if "scope_spans" in resource_spans else "scopeSpans"
        scopes = (resource_spans.get(key) or []) + (
            resource_spans.pop("instrumentationLibrarySpans", None) or []
        )
        resource_spans[key] = scopes
        for scope_spans in scopes:
            scope_spans.pop("instrumentationLibrary", None)
            for span in scope_spans.get("spans") or ():
                for key in HEX_ID_FIELDS:
                    if span.get(key):
                        span[key] = _hex_to_base64(span[key], key)
                for link in span.get("links") or ():
                    for key in HEX_LINK_ID_FIELDS:
                        if link.get(key):
                            link[key] = _hex_to_base64(link[key], f"link {key}")


def is_otlp_json(document: Any) -> bool:
    """An OTLP/JSON document, bare or in the `{"result": …}` wrapper of Jaeger's v3 API."""
    if not isinstance(document, dict):
        return False
    if isinstance(document.get("result"), dict):
        document = document["result"]
    return "resourceSpans" in document


def parse_json_document(document: Any) -> TracesData:
    """One OTLP/JSON document (a dict) → `TracesData`.

    The definition of OTLP/JSON here; the readers call `otlp_json.encode`, the same message as
    protobuf bytes without `ParseDict`, which falls back to this for what it does not cover."""
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        document = document["result"]
    if not isinstance(document, dict) or "resourceSpans" not in document:
        raise SourceError("not an OTLP/JSON document (no resourceSpans)")
    _fix_ids(document)
    message = TracesData()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise SourceError(f"invalid OTLP/JSON: {exc}") from None
    return message
