"""Zipkin v2 JSON → span table.

A Zipkin file is an array of spans (what `POST /api/v2/spans` takes) or an array of traces, each
an array of spans (what `GET /api/v2/traces` returns). Records are not spans one to one:

- Fragments: a span may be reported in pieces (late tags, a flush without timestamp, retries).
  Records with the same (trace, id, local service, shared or server) are one span: tags are
  united, the earliest timestamp and the longest duration kept, any kind present taken, an
  error in any piece kept. A fragment with no kind and no shared flag belongs to the span of its
  service with that id; one with no local service at all to the single other record with that
  id, if there is one.
- Shared spans: an RPC's client and server halves may carry the same id (`shared: true` on the
  server, or a SERVER record beside a CLIENT one). `shared_ids` gives the server half an id of
  its own and the client half as its parent, so the generic CLIENT→SERVER pairing applies.

Streaming: every record becomes a span-table row as it is read (Arrow a batch at a time), with
two flags beside it (shared, named). Only once the file is read are the ids that occur more
than once picked out and merged (`zipkin_merge`), and the children of shared
ids re-hung (vectorised); so memory holds the span table, not the records.

Mapping: `kind` → OTLP kind (absent = INTERNAL), `localEndpoint.serviceName` → service
(`unknown_service` when absent), an `error` tag (or `otel.status_code=ERROR`) → status ERROR,
`remoteEndpoint.serviceName` → `peer.service` unless the tags carry `peer.service` themselves or
`server.address` (the OpenTelemetry Zipkin exporter derives the remote name from that, and the
tags keep the real attributes, so a database is still named by its `db.namespace`), remote
address and port → `network.peer.address`/`port`, local ones → resource attributes
`network.local.address`/`port`, times µs → ns, ids of up to 16 or 32 hex characters
left-padded. Annotations are dropped, like OTLP events.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from servicemap.errors import InvalidSpanError, SourceError
from servicemap.schema import UNKNOWN_SERVICE, SpanKind, StatusCode
from servicemap.sources.columns import SpanColumns, span_id_from_hex, trace_id_from_hex
from servicemap.sources.shared_ids import resolve_shared_ids
from servicemap.sources.zipkin_merge import ABSENT, NAMED_FLAG, SHARED_FLAG, merge_pieces

KINDS: dict[str, int] = {
    "CLIENT": int(SpanKind.CLIENT),
    "SERVER": int(SpanKind.SERVER),
    "PRODUCER": int(SpanKind.PRODUCER),
    "CONSUMER": int(SpanKind.CONSUMER),
}
_SERVER = int(SpanKind.SERVER)
_INTERNAL = int(SpanKind.INTERNAL)
_ERROR, _OK, _UNSET = int(StatusCode.ERROR), int(StatusCode.OK), int(StatusCode.UNSET)
_SHARED_STRING_CHARS = 64
# Tags the OpenTelemetry Zipkin exporter derives remoteEndpoint.serviceName from, after
# peer.service: a remote name equal to one of these is not a peer.service of its own.
REMOTE_NAME_SOURCES = (
    "server.address",
    "net.peer.name",
    "network.peer.address",
    "net.sock.peer.addr",
    "net.peer.ip",
    "peer.hostname",
    "peer.address",
    "db.name",
)


def _first_span(document: list[Any]) -> Any:
    for item in document:
        if isinstance(item, list):
            if item:
                return item[0]
        else:
            return item
    return None


def is_zipkin_json(document: Any) -> bool:
    """A Zipkin v2 span array or array of traces (an empty array is an empty span list)."""
    if not isinstance(document, list):
        return False
    first = _first_span(document)
    return first is None or (isinstance(first, dict) and "traceId" in first and "id" in first)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _micros(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSpanError(f"{where} must be a number of microseconds, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        return None  # 1e400 or Infinity: unknown, like a time past int64
    return round(value) if value > 0 else None


def _derived(remote_name: str, tags: Mapping[str, str]) -> bool:
    """Whether the remote service name was made from the tags (OpenTelemetry's exporter)."""
    if "server.address" in tags:
        return True
    return any(tags.get(key) == remote_name for key in REMOTE_NAME_SOURCES)


class _Reader:
    """Records in, one span-table row each; repeated ids merged and resolved at the end."""

    def __init__(self) -> None:
        self.columns = SpanColumns()
        self.flags = array("b")
        self.records = 0
        # one copy of each tag key, service, name and short value, however many rows repeat it
        self._strings: dict[str, str] = {}

    def _share(self, text: str) -> str:
        return self._strings.setdefault(text, text) if len(text) <= _SHARED_STRING_CHARS else text

    def _endpoint(self, value: Any, where: str) -> tuple[str | None, str | None, str | None]:
        """(serviceName, address, port) of an endpoint object."""
        if value is None:
            return None, None, None
        if not isinstance(value, dict):
            raise InvalidSpanError(f"{where} must be an object")
        service = value.get("serviceName")
        address = value.get("ipv4") or value.get("ipv6")
        port = value.get("port")
        return (
            self._share(_text(service)) if service else None,
            self._share(_text(address)) if address else None,
            self._share(_text(port)) if port else None,
        )

    def add(self, span: Any) -> None:
        self.records += 1
        if not isinstance(span, dict):
            raise InvalidSpanError(f"Zipkin span #{self.records} is not an object")
        if "binaryAnnotations" in span:
            raise SourceError("Zipkin v1 JSON (binaryAnnotations) is not supported; v2 expected")
        where = f"Zipkin span #{self.records}"
        trace_id = trace_id_from_hex(span.get("traceId"), f"{where}: traceId")
        span_id = span_id_from_hex(span.get("id"), f"{where}: id")
        parent = span.get("parentId")
        parent_id = span_id_from_hex(parent, f"{where}: parentId") if parent else None
        raw_tags = span.get("tags") or {}
        if not isinstance(raw_tags, dict):
            raise InvalidSpanError(f"{where}: tags must be an object")
        share = self._share
        tags = {share(str(key)): share(_text(value)) for key, value in raw_tags.items()}
        service, local_address, local_port = self._endpoint(
            span.get("localEndpoint"), f"{where}: localEndpoint"
        )
        remote, remote_address, remote_port = self._endpoint(
            span.get("remoteEndpoint"), f"{where}: remoteEndpoint"
        )
        if remote and "peer.service" not in tags and not _derived(remote, tags):
            tags["peer.service"] = remote
        if remote_address and "network.peer.address" not in tags:
            tags["network.peer.address"] = remote_address
        if remote_port and "network.peer.port" not in tags:
            tags["network.peer.port"] = remote_port
        resource: dict[str, str] = {}
        if local_address:
            resource["network.local.address"] = local_address
        if local_port:
            resource["network.local.port"] = local_port
        if "error" in tags or tags.get("otel.status_code") == "ERROR":
            status = _ERROR
        elif tags.get("otel.status_code") == "OK":
            status = _OK
        else:
            status = _UNSET
        kind_text = span.get("kind")
        timestamp = _micros(span.get("timestamp"), f"{where}: timestamp")
        duration = _micros(span.get("duration"), f"{where}: duration")
        name = span.get("name")
        self.columns.append(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_id if parent_id != span_id else None,
            service=service or UNKNOWN_SERVICE,
            name=share(name) if isinstance(name, str) and name else None,
            kind=KINDS.get(str(kind_text).upper(), _INTERNAL) if kind_text else ABSENT,
            status_code=status,
            start_ns=timestamp * 1000 if timestamp is not None else None,
            duration_ns=duration * 1000 if duration is not None else None,
            resource_attrs=resource,
            span_attrs=tags,
        )
        shared = span.get("shared") is True
        self.flags.append((SHARED_FLAG if shared else 0) | (NAMED_FLAG if service else 0))

    def table(self) -> pa.Table:
        self._strings.clear()
        # the table goes to merge_pieces as an expression: no reference here keeps it alive
        table = merge_pieces(self._take_table())
        return resolve_shared_ids(_finish_kinds(table).drop_columns(["_flags"]))

    def _take_table(self) -> pa.Table:
        """The rows read, with their flags; the reader lets go of them."""
        columns, self.columns = self.columns, SpanColumns()
        flags = pa.array(np.frombuffer(self.flags, np.int8))
        self.flags = array("b")
        return columns.table().append_column("_flags", flags)


def _finish_kinds(table: pa.Table) -> pa.Table:
    """Rows without a kind (read so, or merged from pieces none of which had one): SERVER
    when flagged shared, else INTERNAL. The one place a kind is decided after merging."""
    kind = table["kind"]
    shared = pc.not_equal(pc.bit_wise_and(table["_flags"], pa.scalar(SHARED_FLAG, pa.int8())), 0)
    absent = pc.equal(kind, pa.scalar(ABSENT, pa.int8()))
    finished = pc.if_else(
        absent,
        pc.if_else(shared, pa.scalar(_SERVER, pa.int8()), pa.scalar(_INTERNAL, pa.int8())),
        kind,
    )
    return table.set_column(table.schema.get_field_index("kind"), "kind", finished)


def read_documents(documents: Iterable[Any]) -> pa.Table:
    """Zipkin v2 documents (span arrays, or arrays of traces) → one span table."""
    reader = _Reader()
    for document in documents:
        if not isinstance(document, list):
            raise SourceError("not a Zipkin v2 span array")
        for item in document:
            if isinstance(item, list):
                for span in item:
                    reader.add(span)
            else:
                reader.add(item)
    return reader.table()
