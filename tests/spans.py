"""Tiny builders for OTLP/JSON test data: name spans, services and traces by short labels."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BASE_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5, None: 0}


def hex_id(label: str, size: int) -> str:
    """A stable id of `size` bytes, as OTLP/JSON hex, derived from a label."""
    return hashlib.sha256(label.encode()).hexdigest()[: size * 2]


def span(
    label: str,
    service: str,
    kind: str | None,
    parent: str | None = None,
    *,
    trace: str = "t1",
    error: bool = False,
    attrs: dict[str, Any] | None = None,
    links: Iterable[tuple[str, str]] = (),
    start_ms: float = 0.0,
    duration_ms: float = 10.0,
    parent_trace: str | None = None,
) -> dict[str, Any]:
    """One span, with its service kept beside it until `document` groups by resource."""
    start = BASE_NS + int(start_ms * 1e6)
    body: dict[str, Any] = {
        "traceId": hex_id(trace, 16),
        "spanId": hex_id(f"{trace}/{label}", 8),
        "name": label,
        "kind": KINDS[kind],
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + int(duration_ms * 1e6)),
        "attributes": [
            {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
            for k, v in (attrs or {}).items()
        ],
        "status": {"code": 2} if error else {},
    }
    if parent:
        body["parentSpanId"] = hex_id(f"{parent_trace or trace}/{parent}", 8)
    if links:
        body["links"] = [
            {"traceId": hex_id(t, 16), "spanId": hex_id(f"{t}/{s}", 8)} for t, s in links
        ]
    return {"service": service, "span": body}


def document(spans: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """An OTLP/JSON `TracesData` with one resourceSpans per service."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for item in spans:
        by_service.setdefault(item["service"], []).append(item["span"])
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "test"}, "spans": items}],
            }
            for service, items in by_service.items()
        ]
    }


def write(path: Path, spans: Iterable[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(document(spans)))
    return path
