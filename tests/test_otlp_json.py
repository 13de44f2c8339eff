"""`otlp_json` (OTLP/JSON → protobuf bytes) reads documents exactly as `ParseDict` does.

For every document: the message upb decodes from the encoder's bytes equals the one
`otlp.parse_json_document` (hex ids, then `ParseDict`) builds, and the span tables are equal.
What the encoder does not cover falls back to that path: same result, same error.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import random
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import (
    ResourceSpans,
    ScopeSpans,
    Span,
    Status,
    TracesData,
)

from collector.http_receiver import JSON, decode
from collector.ingest import BadRequest
from servicemap.errors import ServicemapError
from servicemap.sources import jsonstream, otlp, otlp_json
from tests.conftest import DEMO, SHARED

PUBLIC_OTLP = SHARED / "otlp"


def old_message(document: Any) -> TracesData:
    return otlp.parse_json_document(copy.deepcopy(document))  # it rewrites ids in place


def outcome(read: Any, document: Any) -> Any:
    """What reading a copy of the document gives: the message, or the error's type and text."""
    try:
        return read(copy.deepcopy(document))
    except Exception as exc:
        return (type(exc), str(exc))


def new_message(document: Any) -> TracesData:
    return TracesData.FromString(otlp_json.encode(document))


def assert_parity(document: Any, *, fast: bool = True) -> None:
    """Same message and same span table (and refusals) as the ParseDict path; `fast`: the
    encoder covers the document itself, without falling back."""
    before = copy.deepcopy(document)
    data = otlp_json.try_encode(document)
    assert document == before, "the encoder must not change the document"
    if fast:
        assert data is not None, "fell back to ParseDict"
    expected = old_message(document)
    assert TracesData.FromString(otlp_json.encode(document)) == expected
    reference = otlp.convert([expected])
    converted = otlp_json.convert_documents([document])
    assert converted.table.equals(reference.table)
    assert (converted.rejected, converted.errors) == (reference.rejected, reference.errors)


def public_documents() -> list[tuple[str, Any]]:
    """Every OTLP/JSON document of the public samples (.json, .jsonl, gzipped or not)."""
    found = []
    if not PUBLIC_OTLP.is_dir():
        return found
    for path in sorted(PUBLIC_OTLP.iterdir()):
        if not any(path.name.endswith(ext) for ext in (".json", ".jsonl", ".json.gz")):
            continue
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8-sig")
        for number, document in enumerate(jsonstream.documents([text])):
            if otlp.is_otlp_json(document):
                found.append((f"{path.name}#{number}", document))
    return found


def test_demo_fixture() -> None:
    assert_parity(json.loads(DEMO.read_text()))


@pytest.mark.skipif(not PUBLIC_OTLP.is_dir(), reason="public samples not present")
@pytest.mark.parametrize(("name", "document"), public_documents())
def test_public_samples(name: str, document: Any) -> None:
    assert_parity(document)


# ---------------------------------------------------------------- generated documents


def any_value(rng: random.Random, depth: int = 0) -> AnyValue:
    kinds = ["string", "bool", "int", "double", "bytes", "empty", "strindex"]
    if depth < 3:
        kinds += ["array", "kvlist"]
    kind = rng.choice(kinds)
    if kind == "string":
        return AnyValue(
            string_value=rng.choice(["", "GET", "héllo ✓ 😀", "x" * rng.randrange(300)])
        )
    if kind == "bool":
        return AnyValue(bool_value=rng.random() < 0.5)
    if kind == "int":
        return AnyValue(int_value=rng.choice([0, 1, -1, 127, 128, -(2**63), 2**63 - 1, 10**12]))
    if kind == "double":
        return AnyValue(double_value=rng.choice([0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, 3.0]))
    if kind == "bytes":
        return AnyValue(bytes_value=rng.randbytes(rng.randrange(20)))
    if kind == "strindex":
        return AnyValue(string_value_strindex=rng.choice([0, 3, -5, 2**31 - 1]))
    if kind == "array":
        values = [any_value(rng, depth + 1) for _ in range(rng.randrange(4))]
        return AnyValue(array_value=ArrayValue(values=values))
    if kind == "kvlist":
        return AnyValue(kvlist_value=KeyValueList(values=attributes(rng, 3, depth + 1)))
    return AnyValue()


def attributes(rng: random.Random, most: int, depth: int = 0) -> list[KeyValue]:
    result = []
    for index in range(rng.randrange(most + 1)):
        if rng.random() < 0.1:
            result.append(KeyValue(key=f"k{index}"))  # no value
        else:
            result.append(
                KeyValue(key=rng.choice(["", "a", f"key.{index}"]), value=any_value(rng, depth))
            )
    return result


def span_id(rng: random.Random, size: int) -> bytes:
    choice = rng.random()
    if choice < 0.05:
        return b""
    if choice < 0.08:
        return rng.randbytes(size - 3)  # a refused span
    return rng.randbytes(size)


def random_span(rng: random.Random) -> Span:
    span = Span(
        trace_id=span_id(rng, 16),
        span_id=span_id(rng, 8),
        parent_span_id=rng.randbytes(8) if rng.random() < 0.7 else b"",
        trace_state=rng.choice(["", "a=b,c=d"]),
        flags=rng.choice([0, 1, 256, 2**32 - 1]),
        name=rng.choice(["", "GET /", "naïve ✓"]),
        kind=rng.choice([0, 1, 2, 3, 4, 5, 9]),  # type: ignore[arg-type]
        start_time_unix_nano=rng.choice([0, 1, 1_700_000_000_000_000_000, 2**64 - 1]),
        end_time_unix_nano=rng.choice([0, 1_700_000_000_123_000_000, 2**63]),
        attributes=attributes(rng, 6),
        dropped_attributes_count=rng.choice([0, 3, 2**32 - 1]),
        dropped_events_count=rng.choice([0, 2]),
        dropped_links_count=rng.choice([0, 1]),
    )
    for _ in range(rng.randrange(3)):
        event = span.events.add(time_unix_nano=rng.choice([0, 2**64 - 1, 12345]), name="event")
        event.attributes.extend(attributes(rng, 3))
        event.dropped_attributes_count = rng.choice([0, 1])
    for _ in range(rng.randrange(3)):
        link = span.links.add(trace_id=span_id(rng, 16), span_id=span_id(rng, 8))
        link.trace_state = rng.choice(["", "x=y"])
        link.attributes.extend(attributes(rng, 2))
        link.flags = rng.choice([0, 1, 2**31])
        link.dropped_attributes_count = rng.choice([0, 4])
    if rng.random() < 0.8:
        span.status.CopyFrom(
            Status(code=rng.choice([0, 1, 2, 5]), message=rng.choice(["", "boom"]))  # type: ignore[arg-type]
        )
    return span


def random_message(rng: random.Random) -> TracesData:
    message = TracesData()
    for _ in range(rng.randrange(1, 4)):
        resource_spans = ResourceSpans(schema_url=rng.choice(["", "https://schema"]))
        if rng.random() < 0.9:
            resource = Resource(attributes=attributes(rng, 4))
            if rng.random() < 0.3:
                resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
            resource.dropped_attributes_count = rng.choice([0, 2])
            resource_spans.resource.CopyFrom(resource)
        for _ in range(rng.randrange(3)):
            scope_spans = ScopeSpans(schema_url=rng.choice(["", "s"]))
            if rng.random() < 0.8:
                scope_spans.scope.CopyFrom(
                    InstrumentationScope(name="lib", version="1", attributes=attributes(rng, 2))
                )
            scope_spans.spans.extend(random_span(rng) for _ in range(rng.randrange(5)))
            resource_spans.scope_spans.append(scope_spans)
        message.resource_spans.append(resource_spans)
    return message


def walk(node: Any, visit: Any) -> None:
    """Call `visit(parent_dict, key, value)` for every key of every object, depth first."""
    if isinstance(node, dict):
        for key in list(node):
            visit(node, key, node[key])
            walk(node.get(key), visit)
    elif isinstance(node, list):
        for item in node:
            walk(item, visit)


def hex_ids(document: dict[str, Any]) -> None:
    """ProtoJSON base64 ids → OTLP/JSON hex, for the camelCase keys OTLP/JSON has."""
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for owner, keys in [(span, otlp.HEX_ID_FIELDS)] + [
                    (link, otlp.HEX_LINK_ID_FIELDS) for link in span.get("links", [])
                ]:
                    for key in keys:
                        if key in owner:
                            owner[key] = base64.b64decode(owner[key]).hex()


INT64_KEYS = {
    "startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "intValue",
    "start_time_unix_nano", "end_time_unix_nano", "time_unix_nano", "int_value",
}  # fmt: skip
ENUM_NAMES = {
    "kind": Span.SpanKind,
    "code": Status.StatusCode,
}


def vary(document: dict[str, Any], rng: random.Random) -> None:
    """What OTLP/JSON writers do differently: int64 as numbers, enums as numbers or names,
    upper-case hex, and fields this version does not know."""

    def visit(parent: dict[str, Any], key: str, value: Any) -> None:
        if key in INT64_KEYS and isinstance(value, str) and rng.random() < 0.5:
            parent[key] = int(value)
        elif key in ENUM_NAMES and rng.random() < 0.5:
            enum = ENUM_NAMES[key]
            if isinstance(value, str):
                parent[key] = enum.Value(value)
            elif value in enum.values():
                parent[key] = enum.Name(value)
        elif key in ("traceId", "spanId") and isinstance(value, str) and rng.random() < 0.2:
            parent[key] = value.upper()
        elif isinstance(value, dict) and rng.random() < 0.1:
            value["unknownField"] = rng.choice([1, "x", None, [1, {"a": 2}], {"b": []}])

    walk(document, visit)


def generated_documents(count: int) -> list[tuple[str, Any]]:
    rng = random.Random(20240601)
    documents = []
    for number in range(count):
        message = random_message(rng)
        camel = json_format.MessageToDict(message, use_integers_for_enums=rng.random() < 0.5)
        camel.setdefault("resourceSpans", [])
        hex_ids(camel)
        vary(camel, rng)
        documents.append((f"camel-{number}", camel))
        # Original field names below the two container keys `_fix_ids` reads by their JSON
        # names (ids there are not rewritten: base64, as ProtoJSON has them).
        snake = json_format.MessageToDict(message, preserving_proto_field_name=True)
        snake["resourceSpans"] = snake.pop("resource_spans", [])
        for resource_spans in snake["resourceSpans"]:
            resource_spans["scopeSpans"] = resource_spans.pop("scope_spans", [])
        vary(snake, rng)
        documents.append((f"snake-{number}", snake))
    return documents


@pytest.mark.parametrize(("name", "document"), generated_documents(60))
def test_generated_documents(name: str, document: Any) -> None:
    assert_parity(document)


def test_generated_documents_in_one_batch() -> None:
    documents = [document for _, document in generated_documents(20)]
    expected = otlp.convert([old_message(document) for document in documents])
    converted = otlp_json.convert_documents(documents)
    assert converted.table.equals(expected.table)
    assert (converted.rejected, converted.errors) == (expected.rejected, expected.errors)
    assert converted.table.num_rows > 100


# ---------------------------------------------------------------- shapes and fallbacks


def span_document(span: dict[str, Any], **resource_spans: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}], **resource_spans}]}


GOOD_SPAN = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"}


def attribute(value: Any) -> dict[str, Any]:
    return span_document({**GOOD_SPAN, "attributes": [{"key": "k", "value": value}]})


def deep(levels: int, value: Any = None) -> dict[str, Any]:
    """An attribute nested `levels` arrays deep; ParseDict allows 100 levels of messages."""
    value = {"stringValue": "x"} if value is None else value
    for _ in range(levels):
        value = {"arrayValue": {"values": [value]}}
    return attribute(value)


KVLIST = {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "x"}}]}}


COVERED = {
    "jaeger v3 wrapper": {"result": span_document(GOOD_SPAN)},
    "legacy instrumentation library spans": {
        "resourceSpans": [
            {
                "instrumentationLibrarySpans": [
                    {"instrumentationLibrary": {"name": "old"}, "spans": [{**GOOD_SPAN}]}
                ],
                "scopeSpans": [{"spans": [{**GOOD_SPAN, "name": "first"}]}],
            }
        ]
    },
    "legacy spans only": {
        "resourceSpans": [{"instrumentationLibrarySpans": [{"spans": [GOOD_SPAN]}]}]
    },
    "empty document": {"resourceSpans": []},
    "null resource spans": {"resourceSpans": None},
    "nulls clear fields": span_document({**GOOD_SPAN, "name": None, "status": None}),
    "empty messages are present": span_document({**GOOD_SPAN, "status": {}}, resource={}),
    "empty strings": span_document({**GOOD_SPAN, "parentSpanId": "", "name": ""}),
    "empty string value": attribute({"stringValue": ""}),
    "zero int value": attribute({"intValue": "0"}),
    "false bool value": attribute({"boolValue": False}),
    "integer double": attribute({"doubleValue": 3}),
    "negative zero double": attribute({"doubleValue": -0.0}),
    "empty any value": attribute({}),
    "unknown key beside a value": attribute({"stringValue": "a", "other": 1}),
    "snake value": attribute({"string_value": "a"}),
    "base64 bytes": attribute({"bytesValue": "AAH/"}),
    "url-safe base64 without padding": attribute({"bytesValue": "-_8"}),
    "hex with spaces": span_document({**GOOD_SPAN, "spanId": "b7ad6b71 69203331"}),
    "enum name": span_document({**GOOD_SPAN, "kind": "SPAN_KIND_CLIENT"}),
    "unknown enum number": span_document({**GOOD_SPAN, "kind": 42}),
    "negative enum number": span_document({**GOOD_SPAN, "kind": -1}),
    "int64 limits": attribute({"intValue": str(-(2**63))}),
    "fixed64 limit": span_document({**GOOD_SPAN, "endTimeUnixNano": str(2**64 - 1)}),
    "deep but allowed": deep(47),
    "deep but allowed, empty array last": deep(46, {"arrayValue": {"values": [{}]}}),
    "deep but allowed, map last": deep(45, KVLIST),
    "refused span": span_document({"traceId": "abcd", "spanId": "b7ad6b7169203331"}),
}


@pytest.mark.parametrize("name", COVERED)
def test_covered_shapes(name: str) -> None:
    assert_parity(COVERED[name])


FALLBACK = {
    # errors
    "bad hex": span_document({**GOOD_SPAN, "spanId": "zz"}),
    "odd hex": span_document({**GOOD_SPAN, "traceId": "abc"}),
    "id not a string": span_document({**GOOD_SPAN, "spanId": 12}),
    "falsy id not a string": span_document({**GOOD_SPAN, "spanId": 0}),
    "link id not hex": span_document({**GOOD_SPAN, "links": [{"traceId": "xyz"}]}),
    "kind too big": span_document({**GOOD_SPAN, "kind": 2**40}),
    "negative time": span_document({**GOOD_SPAN, "startTimeUnixNano": "-1"}),
    "time past fixed64": span_document({**GOOD_SPAN, "startTimeUnixNano": 2**64}),
    "time not a number": span_document({**GOOD_SPAN, "startTimeUnixNano": "soon"}),
    "time with a fraction": span_document({**GOOD_SPAN, "startTimeUnixNano": 1.5}),
    "time as bool": span_document({**GOOD_SPAN, "startTimeUnixNano": True}),
    "int64 past range": attribute({"intValue": str(2**63)}),
    "flags past uint32": span_document({**GOOD_SPAN, "flags": 2**32}),
    "string value not a string": attribute({"stringValue": 5}),
    "bool value as text": attribute({"boolValue": "true"}),
    "NaN as a number": attribute({"doubleValue": float("nan")}),
    "bad base64": attribute({"bytesValue": "a"}),
    "two oneof values": attribute({"stringValue": "a", "intValue": "1"}),
    "lone surrogate": span_document({**GOOD_SPAN, "name": "\ud800"}),
    "extension key": span_document({**GOOD_SPAN, "[ext.field]": 1}),
    "resource spans not a list": {"resourceSpans": {"a": 1}},
    "span not an object": {"resourceSpans": [{"scopeSpans": [{"spans": [3]}]}]},
    "null in a list": {"resourceSpans": [{"scopeSpans": [{"spans": [GOOD_SPAN, None]}]}]},
    "null attribute": span_document({**GOOD_SPAN, "attributes": [None]}),
    "too deep": deep(48),
    "too deep by one message": deep(47, {"arrayValue": {}}),
    "too deep by one map value": deep(46, KVLIST),
    "no resourceSpans": {"resource_spans": []},
    "not an object": [1, 2],
    "wrapper without OTLP": {"result": {"spans": []}},
    # accepted by ParseDict, in its own way
    "time in exponent notation": span_document({**GOOD_SPAN, "startTimeUnixNano": "1e3"}),
    "time with a plus": span_document({**GOOD_SPAN, "startTimeUnixNano": "+5"}),
    "integral float time": span_document({**GOOD_SPAN, "startTimeUnixNano": 5.0}),
    "enum number as text": span_document({**GOOD_SPAN, "kind": "2"}),
    "unknown enum name": span_document({**GOOD_SPAN, "kind": "SPAN_KIND_NEW"}),
    "bool double": attribute({"doubleValue": True}),
    "quoted NaN": attribute({"doubleValue": "NaN"}),
    "field twice": span_document({**GOOD_SPAN, "name": "a", "trace_id": "AAAA"}),
    "null oneof member": attribute({"stringValue": "a", "intValue": None}),
    "snake scope spans": {"resourceSpans": [{"scope_spans": [{"spans": [GOOD_SPAN]}]}]},
    "message as a list": span_document({**GOOD_SPAN, "status": []}),
    "empty object as a list": {"resourceSpans": [{"scopeSpans": {}}]},
}


@pytest.mark.parametrize("name", FALLBACK)
def test_fallback_gives_the_same_result_or_error(name: str) -> None:
    document = FALLBACK[name]
    assert otlp_json.try_encode(copy.deepcopy(document)) is None
    assert outcome(new_message, document) == outcome(otlp.parse_json_document, document)


def test_scope_spans_under_their_proto_name_are_read() -> None:
    """ProtoJSON takes `scope_spans` too; its spans must not vanish (they once did)."""
    document = FALLBACK["snake scope spans"]
    table = otlp.convert([otlp.parse_json_document(copy.deepcopy(document))]).table
    assert table.num_rows == 1


def test_collector_decodes_json_as_before() -> None:
    document = json.loads(DEMO.read_text())
    message, data = decode(json.dumps(document).encode(), JSON)
    assert isinstance(message, ExportTraceServiceRequest)
    assert TracesData.FromString(message.SerializeToString()) == old_message(document)
    assert data == otlp_json.try_encode(document)
    for bad in (FALLBACK["bad hex"], FALLBACK["too deep"], {"spans": []}):
        with pytest.raises(BadRequest) as caught:
            decode(json.dumps(bad).encode(), JSON)
        error_type, text = outcome(otlp.parse_json_document, bad)
        assert issubclass(error_type, ServicemapError)
        assert str(caught.value) == text
