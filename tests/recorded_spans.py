"""Tiny builders for Jaeger and Zipkin JSON test data, named by short labels like tests/spans.py.

`zipkin_span` and `jaeger_span` write one span of each format by hand (with what only that format
can say: shared ids, remote endpoints, references); `as_zipkin` and `as_jaeger` translate the
OTLP-shaped spans of tests/spans.py the way the OpenTelemetry Zipkin exporter and the
OpenTelemetry→Jaeger translator do, so one trace can be written in all three formats.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.spans import BASE_NS, hex_id

BASE_US = BASE_NS // 1000
ZIPKIN_KINDS = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
JAEGER_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
# The OpenTelemetry Zipkin exporter's remoteEndpoint.serviceName, first attribute present.
REMOTE_NAME_ATTRIBUTES = ("peer.service", "server.address", "net.peer.name", "network.peer.address")


def trace_hex(trace: str, width: int = 16) -> str:
    """A trace id of `width` bytes (8: Zipkin's and Jaeger's 64-bit ids)."""
    return hex_id(trace, width)


def span_hex(trace: str, label: str) -> str:
    return hex_id(f"{trace}/{label}", 8)


# --- Zipkin v2 ---------------------------------------------------------------------------


def zipkin_span(
    label: str,
    service: str | None,
    kind: str | None = None,
    parent: str | None = None,
    *,
    trace: str = "t1",
    trace_bytes: int = 8,
    same_id_as: str | None = None,
    shared: bool = False,
    remote: str | None = None,
    error: str | None = None,
    tags: dict[str, str] | None = None,
    start_ms: float | None = 0.0,
    duration_ms: float | None = 10.0,
) -> dict[str, Any]:
    """One Zipkin v2 span; `same_id_as` reuses another label's id (a shared server half)."""
    body: dict[str, Any] = {
        "traceId": trace_hex(trace, trace_bytes),
        "id": span_hex(trace, same_id_as or label),
        "name": label,
    }
    if parent:
        body["parentId"] = span_hex(trace, parent)
    if kind:
        body["kind"] = kind.upper()
    if start_ms is not None:
        body["timestamp"] = BASE_US + int(start_ms * 1000)
    if duration_ms is not None:
        body["duration"] = int(duration_ms * 1000)
    if service is not None:
        body["localEndpoint"] = {"serviceName": service, "ipv4": "10.0.0.1"}
    if remote:
        body["remoteEndpoint"] = {"serviceName": remote}
    all_tags = dict(tags or {})
    if error is not None:
        all_tags["error"] = error
    if all_tags:
        body["tags"] = all_tags
    if shared:
        body["shared"] = True
    return body


def write_zipkin(path: Path, spans: Iterable[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(list(spans), indent=1))
    return path


# --- Jaeger ------------------------------------------------------------------------------


def jaeger_span(
    label: str,
    service: str | None,
    kind: str | None = None,
    parent: str | None = None,
    *,
    trace: str = "t1",
    trace_bytes: int = 8,
    same_id_as: str | None = None,
    references: Iterable[tuple[str, str, str]] = (),
    error: bool = False,
    tags: dict[str, Any] | None = None,
    start_ms: float = 0.0,
    duration_ms: float = 10.0,
) -> dict[str, Any]:
    """One Jaeger UI-model span, its service kept beside it until `jaeger_document`.

    `references` are (refType, trace label, span label), after the CHILD_OF `parent`.
    """
    refs = [("CHILD_OF", trace, parent)] if parent else []
    refs += list(references)
    all_tags: list[dict[str, Any]] = []
    if kind:
        all_tags.append({"key": "span.kind", "type": "string", "value": kind})
    if error:
        all_tags.append({"key": "error", "type": "bool", "value": True})
    for key, value in (tags or {}).items():
        kind_name = "int64" if isinstance(value, int) and not isinstance(value, bool) else "string"
        kind_name = "bool" if isinstance(value, bool) else kind_name
        all_tags.append({"key": key, "type": kind_name, "value": value})
    body = {
        "traceID": trace_hex(trace, trace_bytes),
        "spanID": span_hex(trace, same_id_as or label),
        "operationName": label,
        "references": [
            {
                "refType": ref_type,
                "traceID": trace_hex(ref_trace, trace_bytes),
                "spanID": span_hex(ref_trace, ref_span),
            }
            for ref_type, ref_trace, ref_span in refs
        ],
        "startTime": BASE_US + int(start_ms * 1000),
        "duration": int(duration_ms * 1000),
        "tags": all_tags,
        "logs": [],
        "warnings": None,
    }
    return {"service": service, "span": body}


def jaeger_document(spans: Iterable[dict[str, Any]], *, wrap: bool = True) -> dict[str, Any]:
    """The UI download `{"data": [trace, ...]}` (or one bare trace when `wrap` is false)."""
    traces: dict[str, dict[str, Any]] = {}
    for item in spans:
        span = dict(item["span"])
        trace = traces.setdefault(
            span["traceID"], {"traceID": span["traceID"], "spans": [], "processes": {}}
        )
        service = item["service"]
        process_id = f"p-{service}"
        trace["processes"][process_id] = {"serviceName": service or "", "tags": []}
        span["processID"] = process_id
        trace["spans"].append(span)
    if not wrap:
        (only,) = traces.values()
        return only
    return {"data": list(traces.values()), "total": 0, "limit": 0, "offset": 0, "errors": None}


def write_jaeger(path: Path, spans: Iterable[dict[str, Any]], *, wrap: bool = True) -> Path:
    path.write_text(json.dumps(jaeger_document(spans, wrap=wrap), indent=1))
    return path


# --- OTLP spans of tests/spans.py, translated ---------------------------------------------


def _attributes(span: dict[str, Any]) -> dict[str, str | int]:
    result: dict[str, str | int] = {}
    for attribute in span.get("attributes", []):
        value = attribute["value"]
        result[attribute["key"]] = (
            int(value["intValue"]) if "intValue" in value else value["stringValue"]
        )
    return result


def _times_us(span: dict[str, Any]) -> tuple[int, int]:
    start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
    return start // 1000, (end - start) // 1000


def as_zipkin(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """OTLP-shaped spans as the OpenTelemetry Zipkin exporter writes them (links are lost)."""
    result = []
    for item in items:
        span = item["span"]
        attributes = _attributes(span)
        start, duration = _times_us(span)
        body: dict[str, Any] = {
            "traceId": span["traceId"],
            "id": span["spanId"],
            "name": span["name"],
            "timestamp": start,
            "duration": duration,
            "localEndpoint": {"serviceName": item["service"]},
            "tags": {key: str(value) for key, value in attributes.items()},
        }
        if span.get("parentSpanId"):
            body["parentId"] = span["parentSpanId"]
        kind = ZIPKIN_KINDS.get(span["kind"])
        if kind:
            body["kind"] = kind
        if kind in ("CLIENT", "PRODUCER"):
            remote = next(
                (str(attributes[k]) for k in REMOTE_NAME_ATTRIBUTES if k in attributes), None
            )
            if remote:
                body["remoteEndpoint"] = {"serviceName": remote}
        if span.get("status", {}).get("code") == 2:
            body["tags"]["otel.status_code"] = "ERROR"
            body["tags"]["error"] = ""
        result.append(body)
    return result


def as_jaeger(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """OTLP-shaped spans as the OpenTelemetry→Jaeger translator writes them, UI-downloaded."""
    converted = []
    for item in items:
        span = item["span"]
        attributes = _attributes(span)
        start, duration = _times_us(span)
        tags: list[dict[str, Any]] = [
            {"key": key, "type": "int64" if isinstance(value, int) else "string", "value": value}
            for key, value in attributes.items()
        ]
        if span["kind"] in JAEGER_KINDS:
            tags.append({"key": "span.kind", "type": "string", "value": JAEGER_KINDS[span["kind"]]})
        if span.get("status", {}).get("code") == 2:
            tags.append({"key": "otel.status_code", "type": "string", "value": "ERROR"})
            tags.append({"key": "error", "type": "bool", "value": True})
        references = []
        if span.get("parentSpanId"):
            references.append(
                {"refType": "CHILD_OF", "traceID": span["traceId"], "spanID": span["parentSpanId"]}
            )
        for link in span.get("links", []):
            references.append(
                {"refType": "FOLLOWS_FROM", "traceID": link["traceId"], "spanID": link["spanId"]}
            )
        body = {
            "traceID": span["traceId"],
            "spanID": span["spanId"],
            "operationName": span["name"],
            "references": references,
            "startTime": start,
            "duration": duration,
            "tags": tags,
            "logs": [],
        }
        converted.append({"service": item["service"], "span": body})
    return jaeger_document(converted)
