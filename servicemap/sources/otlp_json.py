"""OTLP/JSON → serialized `TracesData`, without `json_format.ParseDict`.

`ParseDict` builds protobuf objects field by field through Python and was most of the time of
reading an OTLP/JSON file (~100 µs a span). The span table is made from protobuf bytes anyway
(`otlp.convert_serialized`), so this walks the JSON document with the message descriptors and
writes those bytes directly: the conversion rules stay in one place, the columnar converter.

The definition of what a document means is still `otlp.parse_json_document` (hex ids rewritten
by `_fix_ids`, then `ParseDict(..., ignore_unknown_fields=True)`). This encoder covers the
documents it is sure to read the same way (the messages decoded from its bytes equal
`ParseDict`'s, tests check it) and hands anything else — an unexpected type, a value out of
range, a duplicate field, an unknown enum name — to that definition, so odd input gives the
same result and bad input the same error as before.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterable
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from servicemap.sources import otlp

MAX_DEPTH = 100  # ParseDict's default max_recursion_depth (TracesData is depth 1)
_LEGACY = "instrumentationLibrarySpans"


class _Fallback(Exception):
    """The document is outside what the encoder covers: `ParseDict` decides."""


# Field kinds. A field is (kind, tag bytes, has presence, argument); the argument is the
# sub-message plan, the enum's names or the integer range, by kind.
_STRING, _MESSAGE, _MESSAGES, _HEX, _FIXED64, _ENUM, _VARINT, _FIXED32 = range(8)
_BOOL, _DOUBLE, _BYTES, _STRINGS, _LEGACY_SCOPES, _UNSUPPORTED = range(8, 14)
_Field = tuple[int, bytes, bool, Any]

_SMALL = 1 << 14
_UINT64 = (1 << 64) - 1
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack
_ZERO_DOUBLE = _pack_double(0.0)
_FALLBACK_ERRORS = (_Fallback, ValueError, TypeError, AttributeError, OverflowError, struct.error)


def _varint(value: int) -> bytes:
    """Unsigned LEB128; negative numbers as their 64-bit two's complement, as protobuf does."""
    value &= _UINT64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_LENGTHS = [_varint(n) for n in range(_SMALL)]  # small varints (lengths), without a call


def _length(size: int) -> bytes:
    return _LENGTHS[size] if size < _SMALL else _varint(size)


class _Plan:
    """How one message type's JSON object is written: its fields by JSON name (and by proto
    name where that is the same), the other proto names, and its oneof members."""

    __slots__ = ("aliases", "fields", "full_name", "oneof_of")

    def __init__(self, full_name: str) -> None:
        self.full_name = full_name
        self.fields: dict[str, _Field] = {}
        self.aliases: dict[str, tuple[str, _Field]] = {}
        self.oneof_of: dict[str, str] = {}

    def other_key(self, key: str, document: dict[str, Any]) -> _Field | None:
        """A key that is not a JSON name: a proto name, or unknown (ignored, as ParseDict
        does with ignore_unknown_fields, except what it would take for an extension)."""
        alias = self.aliases.get(key)
        if alias is None:
            if key.startswith("["):
                raise _Fallback("extension-like key")
            return None
        json_name, field = alias
        if json_name in document:
            raise _Fallback("field given twice")  # ParseDict: the last one wins
        return field

    def check_oneofs(self, document: dict[str, Any]) -> None:
        """Two members of a oneof are an error for ParseDict (and null members clear)."""
        seen: set[str] = set()
        for key in document:
            oneof = self.oneof_of.get(key)
            if oneof is not None:
                if oneof in seen:
                    raise _Fallback("oneof given twice")
                seen.add(oneof)


_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_UINT32: (0, (1 << 32) - 1),
    FieldDescriptor.TYPE_UINT64: (0, _UINT64),
    FieldDescriptor.TYPE_ENUM: (-(1 << 31), (1 << 31) - 1),
}
_WIRE_TYPES = {
    FieldDescriptor.TYPE_FIXED64: 1,
    FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED32: 5,
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_BYTES: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
}


def _field(field: FieldDescriptor, plans: dict[str, _Plan]) -> _Field:
    """A field's kind, tag and argument; a type OTLP traces do not use is `_UNSUPPORTED`."""
    tag = _varint(field.number << 3 | _WIRE_TYPES.get(field.type, 0))
    presence = bool(field.has_presence)
    kind, argument = _UNSUPPORTED, cast(Any, None)
    repeated = field.is_repeated
    message_type, enum_type = field.message_type, field.enum_type
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        assert message_type is not None
        if not message_type.full_name.startswith("google.protobuf."):  # JSON quirks of their own
            kind = _MESSAGES if repeated else _MESSAGE
            argument = _plan(message_type, plans)
    elif field.type == FieldDescriptor.TYPE_STRING:
        kind = _STRINGS if repeated else _STRING
    elif repeated:
        pass  # repeated numbers (packed) do not occur in OTLP traces
    elif field.type == FieldDescriptor.TYPE_BYTES:
        kind = _BYTES
    elif field.type == FieldDescriptor.TYPE_FIXED64:
        kind, argument = _FIXED64, (0, _UINT64)
    elif field.type == FieldDescriptor.TYPE_FIXED32:
        kind, argument = _FIXED32, (0, (1 << 32) - 1)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        assert enum_type is not None
        if not enum_type.is_closed:  # open enum: any int32 number is kept
            kind = _ENUM
            argument = ({v.name: v.number for v in enum_type.values}, _INT_RANGES[field.type])
    elif field.type in _INT_RANGES:
        kind, argument = _VARINT, _INT_RANGES[field.type]
    elif field.type == FieldDescriptor.TYPE_BOOL:
        kind = _BOOL
    elif field.type == FieldDescriptor.TYPE_DOUBLE:
        kind = _DOUBLE
    return (kind, tag, presence, argument)


def _plan(descriptor: Descriptor, plans: dict[str, _Plan]) -> _Plan:
    plan = plans.get(descriptor.full_name)
    if plan is not None:
        return plan
    plan = plans[descriptor.full_name] = _Plan(descriptor.full_name)
    for field in descriptor.fields:
        encoded = _field(field, plans)
        plan.fields[field.json_name] = encoded
        if field.name != field.json_name:
            plan.aliases[field.name] = (field.json_name, encoded)
        if field.containing_oneof is not None:
            plan.oneof_of[field.json_name] = plan.oneof_of[field.name] = field.containing_oneof.name
    return plan


def _plans() -> _Plan:
    """The plans of `TracesData` and what it contains, with OTLP/JSON's own rules on top."""
    plans: dict[str, _Plan] = {}
    root = _plan(TracesData.DESCRIPTOR, plans)
    # OTLP/JSON ids are hex where protobuf JSON has base64 (`otlp._fix_ids`, camelCase keys).
    for name, keys in (
        ("opentelemetry.proto.trace.v1.Span", otlp.HEX_ID_FIELDS),
        ("opentelemetry.proto.trace.v1.Span.Link", otlp.HEX_LINK_ID_FIELDS),
    ):
        for key in keys:
            _, tag, presence, argument = plans[name].fields[key]
            plans[name].fields[key] = (_HEX, tag, presence, argument)
    # Legacy scopes join the scope spans after them; `scope_spans` meets `_fix_ids`'s
    # `scopeSpans` and is left to ParseDict.
    resource_spans = plans["opentelemetry.proto.trace.v1.ResourceSpans"]
    kind, tag, presence, argument = resource_spans.fields["scopeSpans"]
    assert kind == _MESSAGES
    resource_spans.fields[_LEGACY] = (_LEGACY_SCOPES, tag, False, argument)
    resource_spans.aliases["scope_spans"] = ("scopeSpans", (_UNSUPPORTED, tag, False, None))
    return root


_TRACES_DATA = _plans()


def _integer(value: Any, limits: tuple[int, int]) -> int:
    """A JSON number or decimal string, in range; anything else ParseDict decides."""
    if type(value) is str:
        digits = value[1:] if value[:1] == "-" else value
        if not (digits.isdigit() and digits.isascii()):
            raise _Fallback("unusual integer text")
        number = int(value)
    elif type(value) is int:
        number = value
    else:
        raise _Fallback("not an integer")
    if not limits[0] <= number <= limits[1]:
        raise _Fallback("integer out of range")
    return number


def _message(document: Any, plan: _Plan, depth: int) -> bytes:
    """One JSON object → the message's bytes (fields in the object's order)."""
    if type(document) is not dict or depth > MAX_DEPTH:
        raise _Fallback("not an object, or too deep")
    out: list[bytes] = []
    fields = plan.fields
    for key, value in document.items():
        field = fields.get(key)
        if field is None:
            field = plan.other_key(key, document)
            if field is None:
                continue
        if value is None:  # null clears a field
            continue
        kind, tag, presence, argument = field
        if kind == _STRING:
            if type(value) is not str:
                raise _Fallback("not a string")
            if value or presence:
                data = value.encode()
                size = len(data)
                out += (tag, _LENGTHS[size] if size < _SMALL else _varint(size), data)
        elif kind == _MESSAGE:
            if type(value) is dict and len(value) == 1 and depth < MAX_DEPTH:
                # Inline the common `{"stringValue": "…"}`, a call saved per attribute.
                ((inner_key, inner),) = value.items()
                inner_field = argument.fields.get(inner_key)
                if inner_field is not None and inner_field[0] == _STRING and type(inner) is str:
                    data = inner.encode()
                    if data or inner_field[2]:
                        data = inner_field[1] + _length(len(data)) + data
                    size = len(data)
                    out += (tag, _LENGTHS[size] if size < _SMALL else _varint(size), data)
                    continue
            data = _message(value, argument, depth + 1)
            size = len(data)
            out += (tag, _LENGTHS[size] if size < _SMALL else _varint(size), data)
        elif kind == _HEX:
            if type(value) is not str:
                raise _Fallback("id not a string")
            if value:
                data = bytes.fromhex(value)
                size = len(data)
                out += (tag, _LENGTHS[size] if size < _SMALL else _varint(size), data)
        elif kind == _FIXED64:  # nanosecond times, as decimal strings mostly
            if type(value) is str and value.isdigit() and value.isascii():
                number = int(value)  # too big: struct.error, ParseDict decides
            else:
                number = _integer(value, argument)
            if number or presence:
                out += (tag, _pack_fixed64(number))
        elif kind == _MESSAGES:
            if type(value) is not list:
                raise _Fallback("not an array")
            for item in value:
                data = _message(item, argument, depth + 1)
                size = len(data)
                out += (tag, _LENGTHS[size] if size < _SMALL else _varint(size), data)
        elif kind == _ENUM:
            names, limits = argument
            number = names.get(value) if type(value) is str else _integer(value, limits)
            if number is None:
                raise _Fallback("unknown enum name")  # ParseDict skips it
            if number or presence:
                out += (tag, _LENGTHS[number] if 0 <= number < _SMALL else _varint(number))
        elif kind == _VARINT:
            number = _integer(value, argument)
            if number or presence:
                out += (tag, _LENGTHS[number] if 0 <= number < _SMALL else _varint(number))
        elif kind == _FIXED32:
            number = _integer(value, argument)
            if number or presence:
                out += (tag, _pack_fixed32(number))
        elif kind == _BOOL:
            if type(value) is not bool:
                raise _Fallback("not a boolean")
            if value or presence:
                out += (tag, b"\x01" if value else b"\x00")
        elif kind == _DOUBLE:
            if type(value) is int:
                value = float(value)
            elif type(value) is not float or not math.isfinite(value):
                raise _Fallback("not a finite number")
            data = _pack_double(value)
            if presence or data != _ZERO_DOUBLE:
                out += (tag, data)
        elif kind == _BYTES:
            if type(value) is not str:
                raise _Fallback("bytes not a string")
            text = value.encode()  # as ParseDict reads base64
            data = base64.urlsafe_b64decode(text + b"=" * (4 - len(text) % 4))
            if data or presence:
                out += (tag, _length(len(data)), data)
        elif kind == _LEGACY_SCOPES:
            return _message(_with_legacy_scopes(document), plan, depth)
        elif kind == _STRINGS:
            if type(value) is not list:
                raise _Fallback("not an array")
            for item in value:
                if type(item) is not str:
                    raise _Fallback("not a string")
                data = item.encode()
                out += (tag, _length(len(data)), data)
        else:
            raise _Fallback(f"{plan.full_name}.{key} not covered")
    if plan.oneof_of and len(document) > 1:
        plan.check_oneofs(document)
    return b"".join(out)


def _with_legacy_scopes(resource_spans: dict[str, Any]) -> dict[str, Any]:
    """`instrumentationLibrarySpans` (OTLP before 0.15) appended to `scopeSpans`, as
    `otlp._fix_ids` does; a copy, the document stays as it is."""
    scopes = resource_spans.get("scopeSpans")
    legacy = resource_spans["instrumentationLibrarySpans"]
    if type(scopes) not in (list, type(None)) or type(legacy) not in (list, type(None)):
        raise _Fallback("scopes not arrays")
    merged = {key: value for key, value in resource_spans.items() if key != _LEGACY}
    merged["scopeSpans"] = (scopes or []) + (legacy or [])
    return merged


def try_encode(document: Any) -> bytes | None:
    """One OTLP/JSON document → serialized `TracesData`, or None when `ParseDict` must decide
    (the document is unusual or invalid). Never changes the document."""
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        document = document["result"]  # Jaeger's v3 API wrapper
    if not isinstance(document, dict) or "resourceSpans" not in document:
        return None
    try:
        return _message(document, _TRACES_DATA, 1)
    except _FALLBACK_ERRORS:
        return None


def encode(document: Any) -> bytes:
    """One OTLP/JSON document → serialized `TracesData`, with the errors of
    `otlp.parse_json_document` (`SourceError`, `InvalidSpanError`) for bad input."""
    data = try_encode(document)
    if data is None:
        data = otlp.parse_json_document(document).SerializeToString()
    return data


def convert_documents(documents: Iterable[Any]) -> otlp.Conversion:
    """OTLP/JSON documents → one span table; invalid spans are counted, not kept."""
    return otlp.merge(otlp.convert_serialized([encode(document) for document in documents]))
