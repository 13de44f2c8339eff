"""The span table: one flat Arrow row per span (DESIGN §3).

Every reader (OTLP, Jaeger, Zipkin, Parquet) produces exactly this schema, so pairing and
aggregation never care where a span came from.
"""

from __future__ import annotations

from enum import IntEnum

import pyarrow as pa

SCHEMA_VERSION = "1"
SCHEMA_VERSION_KEY = b"servicemap.schema_version"
UNKNOWN_SERVICE = "unknown_service"

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8


class SpanKind(IntEnum):
    """OTLP `Span.SpanKind` integers."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(IntEnum):
    """OTLP `Status.StatusCode` integers."""

    UNSET = 0
    OK = 1
    ERROR = 2


LINK_TYPE = pa.struct(
    [
        pa.field("trace_id", pa.binary(TRACE_ID_BYTES)),
        pa.field("span_id", pa.binary(SPAN_ID_BYTES)),
    ]
)

# Attribute keys hoisted into their own column, first key present wins.
HOISTED_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "peer_service": ("peer.service", "service.peer.name"),
    "server_address": ("server.address", "net.peer.name"),
    "network_peer_address": ("network.peer.address", "net.sock.peer.addr"),
    "network_peer_port": ("network.peer.port", "net.sock.peer.port"),
    "url_full": ("url.full", "http.url"),
    "db_system": ("db.system",),
    "db_system_name": ("db.system.name",),
    "db_namespace": ("db.namespace",),
    "db_name": ("db.name",),
    "messaging_system": ("messaging.system",),
    "messaging_destination_name": ("messaging.destination.name", "messaging.destination"),
    "rpc_system": ("rpc.system", "rpc.system.name"),
    "http_response_status_code": ("http.response.status_code", "http.status_code"),
    "service_namespace": ("service.namespace",),
    "service_version": ("service.version",),
    "deployment_environment": ("deployment.environment.name", "deployment.environment"),
    "enduser_id": ("enduser.id",),
    "user_id": ("user.id",),
    "session_id": ("session.id",),
}
# Attributes that describe the resource (the service) rather than one span.
RESOURCE_FIRST = frozenset({"service_namespace", "service_version", "deployment_environment"})
INT_COLUMNS = frozenset({"network_peer_port", "http_response_status_code"})

SPAN_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary(TRACE_ID_BYTES), nullable=False),
        pa.field("span_id", pa.binary(SPAN_ID_BYTES), nullable=False),
        pa.field("parent_span_id", pa.binary(SPAN_ID_BYTES)),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("kind", pa.int8(), nullable=False),
        pa.field("status_code", pa.int8(), nullable=False),
        pa.field("start_time", pa.timestamp("ns", tz="UTC")),
        pa.field("duration_ns", pa.int64()),
        *[
            pa.field(column, pa.int32() if column in INT_COLUMNS else pa.string())
            for column in HOISTED_ATTRIBUTES
        ],
        pa.field("links", pa.list_(LINK_TYPE)),
        pa.field("resource_attributes", pa.map_(pa.string(), pa.string())),
        pa.field("attributes", pa.map_(pa.string(), pa.string())),
    ],
    metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()},
)

COLUMNS: tuple[str, ...] = tuple(SPAN_SCHEMA.names)


def empty_span_table() -> pa.Table:
    """A span table with no rows, for sources that hold no spans."""
    return SPAN_SCHEMA.empty_table()
