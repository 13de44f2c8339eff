"""Jaeger JSON → span table.

Three shapes, detected by content:

- the UI's download and the query API's response, `{"data": [trace, …]}` (streamed trace by
  trace), and a bare trace object `{"traceID", "spans", "processes"}`: hex ids (16 or 32
  characters for trace ids), times in µs, tags `{"key", "type", "value"}`, `processID` into
  `processes`;
- the api_v2 `model.Trace` as protobuf JSON, `{"spans": […], "processMap": […]}` (bare or in a
  `{"result": …}` wrapper): base64 ids, RFC 3339 start times, duration strings such as
  `"5000ns"`, typed tags (`vType`, `vStr`, `vInt64`, …) and the process embedded in each span.

Mapping (DESIGN §3): the process's `serviceName` is the service and its tags the resource
attributes; the `span.kind` tag is the kind (absent = unspecified); `error=true` or
`otel.status_code=ERROR` is ERROR (`OK` is OK); the first CHILD_OF reference into the span's
own trace is the parent and every other reference a link (FOLLOWS_FROM, or a CHILD_OF into
another trace, which can be no parent here). Spans that reuse a CLIENT's id for the SERVER side
(Zipkin-style instrumentation) are split as `shared_ids` describes. Logs are dropped, like OTLP
events.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from servicemap.errors import InvalidSpanError, SourceError
from servicemap.schema import (
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    UNKNOWN_SERVICE,
    SpanKind,
    StatusCode,
)
from servicemap.sources.columns import (
    INT64_LIMIT,
    SpanColumns,
    SpanRecord,
    span_id_from_hex,
    trace_id_from_hex,
)
from servicemap.sources.shared_ids import resolve_shared_ids

KINDS: dict[str, int] = {
    "internal": int(SpanKind.INTERNAL),
    "server": int(SpanKind.SERVER),
    "client": int(SpanKind.CLIENT),
    "producer": int(SpanKind.PRODUCER),
    "consumer": int(SpanKind.CONSUMER),
}
_DOMAIN_VALUE_FIELDS = {
    "STRING": "vStr",
    "BOOL": "vBool",
    "INT64": "vInt64",
    "FLOAT64": "vFloat64",
    "BINARY": "vBinary",
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# Times and durations past int64 nanoseconds are unknown (the span table's rule); a number
# this big is never turned into a Python int, which could take minutes for "1e999999999".
_MAX_MICROS = Decimal(INT64_LIMIT) / 1000
_MAX_DIGITS_NS = 19  # a duration part with more integer digits is past int64 ns in any unit
# Integer tag values keep their digits up to this many; a longer one stays the text it was.
_MAX_INT_DIGITS = 40
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})"
)


def _unwrap(document: Any) -> Any:
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        return document["result"]
    return document


def _is_trace(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("spans"), list)


def is_jaeger_json(document: Any) -> bool:
    """`{"data": [trace…]}`, a bare UI trace, or an api_v2 `model.Trace` (maybe in `result`)."""
    document = _unwrap(document)
    if not isinstance(document, dict):
        return False
    data = document.get("data")
    if isinstance(data, list):
        return not data or _is_trace(data[0])
    if not _is_trace(document):
        return False
    if {"traceID", "processes", "processMap"} & document.keys():
        return True
    first = document["spans"][0] if document["spans"] else None
    return isinstance(first, dict) and ("spanID" in first or "spanId" in first)


def _text(value: Any) -> str:
    """A tag value as the OTLP reader writes attribute values: JSON for all but strings."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _ui_tag(tag: Mapping[str, Any]) -> str:
    value, kind = tag.get("value"), str(tag.get("type", "")).lower()
    if kind == "bool" and isinstance(value, str):
        return "true" if value.lower() == "true" else "false"
    if kind == "int64" and isinstance(value, str | float):
        number = _integer_text(value)
        return str(value) if number is None else number
    if kind == "float64" and isinstance(value, int | float) and not isinstance(value, bool):
        number = _float_text(value)
        return str(value) if number is None else number
    return _text(value)


def _finite_decimal(value: Any) -> Decimal | None:
    """A number or its text as a finite Decimal; None for anything else (NaN, Infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _integer_text(value: Any) -> str | None:
    """An integer's digits (a fraction cut off), None when not a number or too long."""
    number = _finite_decimal(value)
    if number is None or number.adjusted() >= _MAX_INT_DIGITS:
        return None
    return str(int(number))


def _float_text(value: Any) -> str | None:
    """A float as JSON writes it (NaN, Infinity included), None when not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return json.dumps(float(value))
    except OverflowError:  # an integer too big for a float
        return str(value)
    except ValueError:
        return None


def _domain_tag(tag: Mapping[str, Any], where: str) -> str:
    field = _DOMAIN_VALUE_FIELDS.get(str(tag.get("vType", "STRING")).upper(), "vStr")
    if field not in tag:
        # jsonpb leaves out default values (an empty string, false, 0)
        field = next((f for f in _DOMAIN_VALUE_FIELDS.values() if f in tag), field)
    value = tag.get(field)
    if field == "vStr":
        return "" if value is None else _text(value)
    if field == "vBool":
        return "true" if value is True or str(value).lower() == "true" else "false"
    if field == "vInt64":
        if _finite_decimal(value or 0) is None:
            raise InvalidSpanError(
                f"{where}: tag {tag['key']!r}: vInt64 {value!r} is not an integer"
            )
        return _integer_text(value or 0) or str(value)
    if field == "vFloat64":
        number = _float_text(value or 0.0)
        if number is None:
            raise InvalidSpanError(
                f"{where}: tag {tag['key']!r}: vFloat64 {value!r} is not a number"
            )
        return number
    return "" if value is None else _text(value)


def _tags(tags: Any, where: str) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, list):
        raise InvalidSpanError(f"{where}: tags must be a list")
    result: dict[str, str] = {}
    for tag in tags:
        if not isinstance(tag, dict) or "key" not in tag:
            raise InvalidSpanError(f"{where}: a tag without a key")
        domain = "vType" in tag or any(f in tag for f in _DOMAIN_VALUE_FIELDS.values())
        result[str(tag["key"])] = _domain_tag(tag, where) if domain else _ui_tag(tag)
    return result


def _base64_id(value: Any, size: int, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidSpanError(f"{where} must be a base64 string, got {type(value).__name__}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSpanError(f"{where} {value!r} is not base64") from None
    if not raw or len(raw) > size or not any(raw):
        raise InvalidSpanError(f"{where} {value!r} must be 1 to {size} non-zero bytes")
    return raw.rjust(size, b"\0")


def _micros_to_ns(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidSpanError(f"{where} must be microseconds, got {value!r}")
    try:
        micros = Decimal(str(value))
    except InvalidOperation:
        raise InvalidSpanError(f"{where} must be microseconds, got {value!r}") from None
    if not micros.is_finite() or micros.copy_abs() >= _MAX_MICROS:
        return None  # NaN, Infinity (1e400 in JSON) or past int64: unknown, like OTLP's
    return int(micros * 1000)


def _rfc3339_to_ns(value: Any, where: str) -> int | None:
    if value is None:
        return None
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidSpanError(f"{where} {value!r} is not an RFC 3339 time")
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    if int(zone[1:3]) > 23 or int(zone[4:6]) > 59:
        raise InvalidSpanError(f"{where} {value!r} is not a valid time (offset out of range)")
    try:
        seconds = int(datetime.fromisoformat(f"{day}T{clock}{zone}").timestamp())
    except (ValueError, OverflowError) as exc:
        raise InvalidSpanError(f"{where} {value!r} is not a valid time ({exc})") from None
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    return seconds * 1_000_000_000 + nanos


def _duration_to_ns(value: Any, where: str) -> int | None:
    """A Go duration string ("5000ns", "1.5ms", "1m2s") or protobuf's "0.000005s"."""
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else ""
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise InvalidSpanError(f"{where} {value!r} is not a duration")
    total = Decimal(0)
    for number, unit in parts:
        amount = Decimal(number)
        if amount.adjusted() >= _MAX_DIGITS_NS:
            return None
        total += amount * _DURATION_UNIT_NS[unit]
    return sign * int(total) if total < INT64_LIMIT else None


class _Reader:
    def __init__(self) -> None:
        self.columns = SpanColumns()
        self.spans = 0

    def add_trace(self, trace: Any) -> None:
        if not _is_trace(trace):
            raise SourceError("a Jaeger trace must be an object with a spans list")
        processes = self._processes(trace)
        for span in trace["spans"]:
            self.columns.append_record(self._record(span, processes))

    def _processes(self, trace: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
        """Process id → (service name, process tags), from `processes` or `processMap`."""
        found: dict[str, Any] = {}
        if isinstance(trace.get("processes"), dict):
            found.update(trace["processes"])
        for entry in trace.get("processMap") or ():
            if isinstance(entry, dict) and "processId" in entry:
                found[str(entry["processId"])] = entry.get("process")
        return {key: self._process(value, f"process {key}") for key, value in found.items()}

    @staticmethod
    def _process(process: Any, where: str) -> tuple[str, dict[str, str]]:
        if not isinstance(process, dict):
            return UNKNOWN_SERVICE, {}
        service = process.get("serviceName")
        return (_text(service) if service else UNKNOWN_SERVICE), _tags(process.get("tags"), where)

    def _record(self, span: Any, processes: Mapping[str, tuple[str, dict[str, str]]]) -> SpanRecord:
        self.spans += 1
        where = f"Jaeger span #{self.spans}"
        if not isinstance(span, dict):
            raise InvalidSpanError(f"{where} is not an object")
        domain = "spanId" in span or "traceId" in span
        if domain:
            trace_id = _base64_id(span.get("traceId"), TRACE_ID_BYTES, f"{where}: traceId")
            span_id = _base64_id(span.get("spanId"), SPAN_ID_BYTES, f"{where}: spanId")
            start_ns = _rfc3339_to_ns(span.get("startTime"), f"{where}: startTime")
            duration_ns = _duration_to_ns(span.get("duration"), f"{where}: duration")
        else:
            trace_id = trace_id_from_hex(span.get("traceID"), f"{where}: traceID")
            span_id = span_id_from_hex(span.get("spanID"), f"{where}: spanID")
            start_ns = _micros_to_ns(span.get("startTime"), f"{where}: startTime")
            duration_ns = _micros_to_ns(span.get("duration"), f"{where}: duration")
        parent, links = self._references(span, trace_id, domain, where)
        if isinstance(span.get("process"), dict):
            service, resource = self._process(span["process"], f"{where}: process")
        else:
            process_id = span.get("processID", span.get("processId"))
            service, resource = processes.get(str(process_id), (UNKNOWN_SERVICE, {}))
        attributes = _tags(span.get("tags"), where)
        kind = KINDS.get(attributes.pop("span.kind", "").lower(), int(SpanKind.UNSPECIFIED))
        otel_status = attributes.get("otel.status_code", "").upper()
        if attributes.get("error", "").lower() == "true" or otel_status == "ERROR":
            status = int(StatusCode.ERROR)
        elif otel_status == "OK":
            status = int(StatusCode.OK)
        else:
            status = int(StatusCode.UNSET)
        name = span.get("operationName")
        return SpanRecord(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            service=service,
            name=name if isinstance(name, str) else None,
            kind=kind,
            status_code=status,
            start_ns=start_ns or None,
            duration_ns=duration_ns if duration_ns is not None and duration_ns >= 0 else None,
            attributes=attributes,
            resource_attributes=resource,
            links=links,
        )

    @staticmethod
    def _references(
        span: Mapping[str, Any], trace_id: bytes, domain: bool, where: str
    ) -> tuple[bytes | None, list[tuple[bytes, bytes]]]:
        """(parent, links): the first CHILD_OF into this trace, and every other reference."""
        parent: bytes | None = None
        links: list[tuple[bytes, bytes]] = []
        for ref in span.get("references") or ():
            if not isinstance(ref, dict):
                raise InvalidSpanError(f"{where}: a reference must be an object")
            if domain:
                ref_trace = _base64_id(ref.get("traceId"), TRACE_ID_BYTES, f"{where}: reference")
                ref_span = _base64_id(ref.get("spanId"), SPAN_ID_BYTES, f"{where}: reference")
            else:
                ref_trace = trace_id_from_hex(ref.get("traceID"), f"{where}: reference traceID")
                ref_span = span_id_from_hex(ref.get("spanID"), f"{where}: reference spanID")
            # jsonpb leaves out the default enum value, CHILD_OF
            child_of = str(ref.get("refType", "CHILD_OF")).upper() == "CHILD_OF"
            if parent is None and child_of and ref_trace == trace_id:
                parent = ref_span
            else:
                links.append((ref_trace, ref_span))
        legacy = span.get("parentSpanID")
        if parent is None and isinstance(legacy, str) and legacy.strip("0"):
            parent = span_id_from_hex(legacy, f"{where}: parentSpanID")
        return parent, links

    def table(self) -> pa.Table:
        return resolve_shared_ids(self.columns.table())


def read_documents(documents: Iterable[Any]) -> pa.Table:
    """Jaeger documents (`{"data": [...]}`, bare traces, api_v2 traces) → one span table."""
    reader = _Reader()
    for document in documents:
        document = _unwrap(document)
        if isinstance(document, dict) and isinstance(document.get("data"), list):
            for trace in document["data"]:
                reader.add_trace(trace)
        else:
            reader.add_trace(document)
    return reader.table()
