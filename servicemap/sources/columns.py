"""The span table built row by row: what every reader (OTLP, Jaeger, Zipkin) shares.

A reader turns its records into plain values (ids as bytes, attributes as string maps) and
appends them here; this module hoists the attributes pairing reads into their own columns and
turns the rows into Arrow a batch at a time, so a big file never holds more than one batch of
Python rows beside the Arrow table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from servicemap.errors import InvalidSpanError
from servicemap.schema import (
    HOISTED_ATTRIBUTES,
    INT_COLUMNS,
    RESOURCE_FIRST,
    SPAN_ID_BYTES,
    SPAN_SCHEMA,
    TRACE_ID_BYTES,
    SpanKind,
    StatusCode,
)

BATCH_ROWS = 8_192
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def hoist(span_attrs: dict[str, str], resource_attrs: Mapping[str, str]) -> dict[str, str | None]:
    """Pick the hoisted columns' values, removing the keys used from the span's own map."""
    values: dict[str, str | None] = {}
    for column, keys in HOISTED_ATTRIBUTES.items():
        found: str | None = None
        for key in keys:
            if column in RESOURCE_FIRST and key in resource_attrs:
                found = resource_attrs[key]
                break
            if key in span_attrs:
                found = span_attrs.pop(key)
                break
            if key in resource_attrs:
                found = resource_attrs[key]
                break
        values[column] = found
    return values


def to_int(text: str | None) -> int | None:
    """A hoisted integer column's value, or None when the text is not a 32-bit number."""
    if text is None:
        return None
    try:
        number = int(float(text))
    except (ValueError, OverflowError):  # not a number, or NaN/Infinity
        return None
    return number if -(2**31) <= number < 2**31 else None


def hex_id(value: Any, size: int, where: str) -> bytes:
    """A hex id of up to `size` bytes → exactly `size` bytes, left-padded with zeros.

    Jaeger and Zipkin write 64-bit trace ids as 16 hex characters; OpenTelemetry and Jaeger
    read those as the low half of a 128-bit id, so the padding keeps them comparable.
    """
    if not isinstance(value, str):
        raise InvalidSpanError(f"{where} must be a hex string, got {type(value).__name__}")
    if not value or len(value) > size * 2 or not _HEX_DIGITS.issuperset(value):
        raise InvalidSpanError(f"{where} {value!r} is not hex of at most {size * 2} characters")
    raw = bytes.fromhex(value.rjust(size * 2, "0"))
    if not any(raw):
        raise InvalidSpanError(f"{where} {value!r} is all zeros")
    return raw


def trace_id_from_hex(value: Any, where: str = "trace id") -> bytes:
    return hex_id(value, TRACE_ID_BYTES, where)


def span_id_from_hex(value: Any, where: str = "span id") -> bytes:
    return hex_id(value, SPAN_ID_BYTES, where)


@dataclass(slots=True)
class SpanRecord:
    """One span of a recorded format, in span-table terms, before it becomes a row."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    service: str
    name: str | None
    kind: int
    status_code: int
    start_ns: int | None
    duration_ns: int | None
    attributes: dict[str, str]
    resource_attributes: Mapping[str, str]
    links: list[tuple[bytes, bytes]] = field(default_factory=list)


INT64_LIMIT = 2**63
MAX_KIND = max(SpanKind)
MAX_STATUS = max(StatusCode)


class SpanColumns:
    """Column lists filled span by span, turned into Arrow one batch at a time."""

    def __init__(self, batch_rows: int = BATCH_ROWS) -> None:
        self.batch_rows = batch_rows
        self.batches: list[pa.RecordBatch] = []
        self.rows = 0
        self.data: dict[str, list[Any]] = {name: [] for name in SPAN_SCHEMA.names}

    def __len__(self) -> int:
        return self.rows

    def append(
        self,
        *,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes | None,
        service: str,
        name: str | None,
        kind: int,
        status_code: int,
        start_ns: int | None,
        duration_ns: int | None,
        links: Iterable[tuple[bytes, bytes]] = (),
        resource_attrs: Mapping[str, str],
        span_attrs: dict[str, str],
    ) -> None:
        """One span. `span_attrs` loses the keys hoisted into columns; `resource_attrs` is kept.

        Out-of-range values never fail a whole batch: an unknown kind or status code becomes
        0 (unspecified/unset), a time that does not fit int64 nanoseconds becomes null, and so
        does a duration whose end (start + duration) would not.
        """
        kind = kind if 0 <= kind <= MAX_KIND else 0
        status_code = status_code if 0 <= status_code <= MAX_STATUS else 0
        start_ns = start_ns if start_ns is not None and 0 < start_ns < INT64_LIMIT else None
        if duration_ns is not None and not 0 <= duration_ns < INT64_LIMIT - (start_ns or 0):
            duration_ns = None  # the end (start + duration) must fit int64 too
        data = self.data
        hoisted = hoist(span_attrs, resource_attrs)
        data["trace_id"].append(trace_id)
        data["span_id"].append(span_id)
        data["parent_span_id"].append(parent_span_id or None)
        data["service_name"].append(service)
        data["name"].append(name)
        data["kind"].append(kind)
        data["status_code"].append(status_code)
        data["start_time"].append(start_ns)
        data["duration_ns"].append(duration_ns)
        for column, value in hoisted.items():
            data[column].append(to_int(value) if column in INT_COLUMNS else value)
        data["links"].append(
            [
                {"trace_id": link_trace, "span_id": link_span}
                for link_trace, link_span in links
                if len(link_trace) == TRACE_ID_BYTES and len(link_span) == SPAN_ID_BYTES
            ]
            or None
        )
        data["resource_attributes"].append(list(resource_attrs.items()))
        data["attributes"].append(list(span_attrs.items()))
        self.rows += 1
        if len(data["trace_id"]) >= self.batch_rows:
            self._flush()

    def append_record(self, record: SpanRecord) -> None:
        self.append(
            trace_id=record.trace_id,
            span_id=record.span_id,
            parent_span_id=record.parent_span_id,
            service=record.service,
            name=record.name,
            kind=record.kind,
            status_code=record.status_code,
            start_ns=record.start_ns,
            duration_ns=record.duration_ns,
            links=record.links,
            resource_attrs=record.resource_attributes,
            span_attrs=record.attributes,
        )

    def _flush(self) -> None:
        if self.data["trace_id"]:
            self.batches.append(pa.RecordBatch.from_pydict(self.data, schema=SPAN_SCHEMA))
            self.data = {name: [] for name in SPAN_SCHEMA.names}

    def table(self) -> pa.Table:
        self._flush()
        return pa.Table.from_batches(self.batches, schema=SPAN_SCHEMA)
