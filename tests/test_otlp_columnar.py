"""The vectorised OTLP converter gives exactly the reference converter's table and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from servicemap.sources import otlp, otlp_columnar

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT.parent / "shared" / "fixtures-public" / "otlp"


def assert_same(messages: list[ExportTraceServiceRequest], *, vectorised: bool = True) -> None:
    reference = otlp.convert_reference(messages)
    bodies = [message.SerializeToString() for message in messages]
    # vectorised: the fast path itself, never falling back to the reference
    fast = otlp.merge(otlp_columnar.convert_batch(bodies)) if vectorised else otlp.convert(messages)
    assert fast.table.schema == reference.table.schema
    for name in reference.table.column_names:  # column by column first, for a readable failure
        fast_column, reference_column = fast.table.column(name), reference.table.column(name)
        if name == "start_time":
            fast_column, reference_column = (
                c.cast("int64") for c in (fast_column, reference_column)
            )
        assert fast_column.to_pylist() == reference_column.to_pylist(), name
    assert fast.table.equals(reference.table)
    assert (fast.rejected, fast.errors) == (reference.rejected, reference.errors)
    # The collector answers partial success without converting: same counts and reasons.
    checked = [otlp.check_ids(message) for message in messages]
    assert sum(rejected for _, rejected, _ in checked) == reference.rejected
    assert sum(spans for spans, _, _ in checked) == reference.rejected + reference.table.num_rows
    assert [e for _, _, errors in checked for e in errors][: otlp.MAX_ERRORS] == reference.errors


def kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))  # type: ignore[arg-type]


EVERY_VALUE = [
    kv("s", string_value="text"),
    kv("empty", string_value=""),
    kv("b", bool_value=True),
    kv("bf", bool_value=False),
    kv("i", int_value=-42),
    kv("i0", int_value=0),
    kv("d", double_value=1.5),
    kv("dbig", double_value=1e300),
    kv("dnan", double_value=float("nan")),
    kv("bytes", bytes_value=b"\x00\x01\xff"),
    kv("arr", array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="x")])),
    kv("map", kvlist_value=KeyValueList(values=[kv("k", bool_value=False), KeyValue(key="n")])),
    KeyValue(key="unset"),
    kv("unicode", string_value="héllo ✓"),
    kv("unicode-first", string_value="été"),
    KeyValue(key="empty-value", value=AnyValue()),
    # String lengths around the one-byte length limit (127) and a three-byte one.
    kv("s127", string_value="a" * 127),
    kv("s128", string_value="b" * 128),
    kv("s300", string_value="ü" * 150),
    kv("s20000", string_value="c" * 20_000),
    # Integers around the varint byte boundaries (1, 2, 3 bytes; then the decoded path).
    *(kv(f"i{n}", int_value=n) for n in (127, 128, 16_383, 16_384, 2**21 - 1, 2**21, 2**40)),
    kv("imin", int_value=-(2**63)),
]


def resource(attrs: list[KeyValue], spans: list[Span]) -> ResourceSpans:
    result = ResourceSpans(scope_spans=[ScopeSpans(spans=spans[:2]), ScopeSpans(spans=spans[2:])])
    result.resource.attributes.extend(attrs)
    return result


def span(n: int, **fields: object) -> Span:
    values: dict[str, object] = {
        "trace_id": (n // 3 + 1).to_bytes(16, "big"),
        "span_id": (n + 1).to_bytes(8, "big"),
        "parent_span_id": n.to_bytes(8, "big") if n % 3 else b"",
        "name": f"op-{n}",
        "kind": n % 6,
        "start_time_unix_nano": 1_767_225_600_000_000_000 + n,
        "end_time_unix_nano": 1_767_225_600_000_000_000 + n * 7,
    }
    values.update(fields)
    return Span(**values)  # type: ignore[arg-type]


def generated() -> list[ExportTraceServiceRequest]:
    hoisted_span = [
        kv("peer.service", string_value="db"),
        kv("net.peer.name", string_value="host-b"),  # fallback key: server.address absent
        kv("server.address", string_value="host-a"),
        kv("http.status_code", int_value=503),
        kv("network.peer.port", string_value=" 8080 "),
        kv("http.response.status_code", string_value="2e2"),
        kv("service.version", string_value="span-version"),  # resource wins
        kv("deployment.environment", string_value="span-env"),  # resource has .name
        kv("db.system", string_value="postgresql"),
        kv("messaging.destination", string_value="old-topic"),
        kv("user.id", double_value=7.0),
        kv("session.id", bool_value=True),
    ]
    odd_ints = [
        kv("network.peer.port", string_value="99999999999"),
        kv("http.status_code", string_value="abc"),
    ]
    spans_a = [
        span(0, attributes=EVERY_VALUE, status=Status(code=Status.STATUS_CODE_ERROR)),
        span(1, attributes=hoisted_span),
        span(2, attributes=odd_ints, start_time_unix_nano=0),
        span(3, trace_id=b"short", attributes=EVERY_VALUE),
        span(4, end_time_unix_nano=1),  # ends before it starts: no duration
        span(5, span_id=bytes(8)),
        span(6, parent_span_id=b"\x01\x02"),
        span(7, trace_id=bytes(16)),
        span(8, span_id=b""),
        span(9, parent_span_id=bytes(8)),  # a zero parent of the right length is kept
        span(
            10,
            links=[
                Span.Link(trace_id=(5).to_bytes(16, "big"), span_id=(6).to_bytes(8, "big")),
                Span.Link(trace_id=b"bad", span_id=(6).to_bytes(8, "big")),
            ],
        ),
        span(11, links=[Span.Link(trace_id=b"", span_id=b"")]),  # no good link: null
        span(12, name="", kind=0, status=Status(code=Status.STATUS_CODE_OK)),
    ]
    resource_attrs = [
        kv("service.name", string_value="checkout"),
        kv("service.version", string_value="1.2.3"),
        kv("deployment.environment.name", string_value="prod"),
        kv("server.address", string_value="resource-host"),
        kv("db.name", string_value="orders"),
        kv("process.command_args", array_value=ArrayValue(values=[AnyValue(string_value="a")])),
        kv("enduser.id", string_value="resource-user"),
    ]
    no_service = [kv("service.namespace", string_value="shop"), kv("host.name", int_value=3)]
    empty_service = [kv("service.name", string_value=""), kv("rpc.system", string_value="grpc")]
    first = ExportTraceServiceRequest(
        resource_spans=[
            resource(resource_attrs, spans_a[:7]),
            resource(no_service, spans_a[7:]),
            resource(empty_service, [span(20, attributes=hoisted_span[:3])]),
            ResourceSpans(),  # no resource, no scopes
            resource([], []),
        ]
    )
    many_bad = ExportTraceServiceRequest(
        resource_spans=[resource([], [span(30 + i, trace_id=b"x" * i) for i in range(8)])]
    )
    many_keys = ExportTraceServiceRequest(  # more than 64 distinct keys in one batch
        resource_spans=[
            resource(
                [kv("service.name", string_value="wide")],
                [
                    span(40 + i, attributes=[kv(f"k{i}.{j}", int_value=j) for j in range(30)])
                    for i in range(5)
                ],
            )
        ]
    )
    return [first, ExportTraceServiceRequest(), many_bad, many_keys]


def test_generated_messages_agree() -> None:
    messages = generated()
    assert_same(messages)
    for message in messages:
        assert_same([message])


def test_demo_fixture_agrees() -> None:
    document = json.loads((ROOT / "fixtures" / "demo" / "traces.otlp.json").read_text())
    assert_same([otlp.parse_json_document(document)])


@pytest.mark.skipif(not PUBLIC.is_dir(), reason="public samples not present")
def test_public_samples_agree() -> None:
    messages = []
    for path in sorted(PUBLIC.iterdir()):
        if path.suffix == ".json":
            messages.append(otlp.parse_json_document(json.loads(path.read_text())))
        elif path.name.endswith(".protobuf-bin"):
            messages.append(otlp.decode_protobuf(path.read_bytes()))
    assert messages
    assert_same(messages)


def duplicate_keys() -> ExportTraceServiceRequest:
    attrs = [kv("a", string_value="1"), kv("b", int_value=2), kv("a", string_value="3")]
    return ExportTraceServiceRequest(
        resource_spans=[
            resource([kv("service.name", string_value="dup")], [span(1, attributes=attrs)])
        ]
    )


def two_oneof_members() -> bytes:
    """A wire AnyValue with string_value then int_value: protobuf keeps the last."""
    value = (
        AnyValue(string_value="x").SerializeToString() + AnyValue(int_value=5).SerializeToString()
    )
    key_value = KeyValue(key="m").SerializeToString() + b"\x12" + bytes([len(value)]) + value
    body = span(1).SerializeToString() + b"\x4a" + bytes([len(key_value)]) + key_value
    scope = b"\x12" + bytes([len(body)]) + body
    resource_spans = b"\x12" + bytes([len(scope)]) + scope
    return b"\x0a" + bytes([len(resource_spans)]) + resource_spans


@pytest.mark.parametrize(
    "body",
    [
        duplicate_keys().SerializeToString(),
        two_oneof_members(),
        ExportTraceServiceRequest(
            resource_spans=[resource([], [span(1, kind=300), span(2)])]
        ).SerializeToString(),
        ExportTraceServiceRequest(
            resource_spans=[resource([], [span(1, start_time_unix_nano=2**63 + 5)])]
        ).SerializeToString(),
    ],
    ids=["duplicate-keys", "two-oneof-members", "kind-outside-int8", "timestamp-past-int64"],
)
def test_what_the_fast_path_declines_goes_to_the_reference(body: bytes) -> None:
    with pytest.raises(otlp_columnar.Unsupported):
        otlp_columnar.convert_batch([body])
    message = ExportTraceServiceRequest.FromString(body)
    try:
        reference = otlp.convert_reference([message])
    except Exception as exc:  # the reference refuses it too: so must the fast path
        with pytest.raises(type(exc)):
            otlp.convert_serialized([body])
        return
    assert otlp.merge(otlp.convert_serialized([body])).table.equals(reference.table)
    others = [m.SerializeToString() for m in generated()]
    batch = otlp.merge(otlp.convert_serialized([*others, body]))
    assert batch.table.equals(otlp.convert_reference([*generated(), message]).table)


def test_batch_results_per_request() -> None:
    messages = generated()
    bodies = [message.SerializeToString() for message in messages]
    batch = otlp.convert_serialized([*bodies, duplicate_keys().SerializeToString()])
    singles = [otlp.convert_reference([m]) for m in [*messages, duplicate_keys()]]
    assert batch.rejected == [single.rejected for single in singles]
    assert batch.errors == [single.errors for single in singles]


def test_undecodable_body_is_a_source_error() -> None:
    from servicemap.errors import SourceError

    with pytest.raises(SourceError):
        otlp.convert_serialized([generated()[0].SerializeToString(), b"\x0a\x05abc"])


def _request_with_attribute(key_value: bytes, span_bytes: bytes) -> bytes:
    body = span_bytes + b"\x4a" + bytes([len(key_value)]) + key_value
    scope = b"\x12" + bytes([len(body)]) + body
    resource_spans = b"\x12" + bytes([len(scope)]) + scope
    return b"\x0a" + bytes([len(resource_spans)]) + resource_spans


_NOT_UTF8 = b"\xff\xfe"
_GOOD_VALUE = b"\x12\x03" + AnyValue(string_value="x").SerializeToString()


@pytest.mark.parametrize(
    "request_bytes",
    [
        _request_with_attribute(  # a string value
            KeyValue(key="bad").SerializeToString() + b"\x12\x04\x0a\x02" + _NOT_UTF8,
            span(1).SerializeToString(),
        ),
        _request_with_attribute(  # an attribute key
            b"\x0a\x02" + _NOT_UTF8 + _GOOD_VALUE, span(1).SerializeToString()
        ),
        _request_with_attribute(  # a span name (field 5)
            KeyValue(key="k").SerializeToString() + _GOOD_VALUE,
            span(1, name="").SerializeToString() + b"\x2a\x02" + _NOT_UTF8,
        ),
    ],
    ids=["value", "key", "span-name"],
)
def test_a_string_that_is_not_utf8_is_a_source_error(request_bytes: bytes) -> None:
    """Read as bytes and cut without protobuf, strings must still be checked as UTF-8."""
    from servicemap.errors import SourceError

    fixed = request_bytes.replace(_NOT_UTF8, b"ok")  # the same request, valid: it converts
    assert otlp_columnar.convert_batch([fixed]).table.num_rows == 1

    with pytest.raises(otlp_columnar.Undecodable):
        otlp_columnar.convert_batch([request_bytes])
    with pytest.raises(SourceError):
        otlp.convert_serialized([request_bytes])
