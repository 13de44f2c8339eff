"""Serialized OTLP requests → span table without a per-span Python loop.

`ptars` (Rust) decodes a batch of `ExportTraceServiceRequest`/`TracesData` bodies straight into
one nested Arrow record batch, reading only the fields the span table needs (a pruned copy of
the OTLP schema with the same field numbers; every other field is skipped on the wire). Arrow
compute and numpy then flatten it into `SPAN_SCHEMA`, with exactly the rules of the reference
converter (`otlp.convert_reference`, which stays the source of truth):

- attribute values become strings as `otlp.any_value_to_str` makes them: strings as they are,
  integers and booleans vectorised, the rare doubles, bytes, arrays and maps value by value
  through `any_value_to_str` itself;
- hoisted columns follow `columns.hoist`: keys in order, for each key the span before the
  resource (the resource first for `RESOURCE_FIRST` columns); a hoisted span key leaves the map;
- invalid ids are counted per request with `otlp.id_problem`'s messages.

What the vectorised rules do not cover raises `Unsupported`, and the caller converts those
bodies with the reference: duplicate attribute keys in one span, a wire message with two
members of one `oneof` set, kinds or status codes outside int8, timestamps past 2**63.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList

from servicemap.schema import (
    HOISTED_ATTRIBUTES,
    INT_COLUMNS,
    LINK_TYPE,
    RESOURCE_FIRST,
    SPAN_ID_BYTES,
    SPAN_SCHEMA,
    TRACE_ID_BYTES,
    UNKNOWN_SERVICE,
)
from servicemap.sources.columns import to_int
from servicemap.sources.otlp import MAX_ERRORS, BatchConversion, any_value_to_str, id_problem

_INT64_LIMIT = 2**63
_HOISTED_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys(key for keys in HOISTED_ATTRIBUTES.values() for key in keys)
)
_KEY_INDEX = {key: index for index, key in enumerate(_HOISTED_KEYS)}
_VALUE_FIELDS = (
    "string_value",
    "bool_value",
    "int_value",
    "double_value",
    "array_value",
    "kvlist_value",
    "bytes_value",
    "string_value_strindex",
)
_MAP_TYPE = SPAN_SCHEMA.field("attributes").type


class Unsupported(Exception):
    """The batch holds something only the reference converter handles exactly."""


class Undecodable(Exception):
    """A body of the batch is not a valid protobuf message (of the fields read)."""


def _pruned_file() -> descriptor_pb2.FileDescriptorProto:
    """The OTLP trace messages with only the fields the span table reads (same numbers)."""
    f = descriptor_pb2.FieldDescriptorProto
    optional, repeated = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    proto = descriptor_pb2.FileDescriptorProto(
        name="servicemap/otlp_pruned.proto", package="servicemap.pruned", syntax="proto3"
    )

    def message(
        name: str, fields: list[tuple[str, int, int, int, str]], oneof: bool = False
    ) -> None:
        descriptor = proto.message_type.add(name=name)
        if oneof:
            descriptor.oneof_decl.add(name="value")
        for field_name, number, kind, label, type_name in fields:
            field = descriptor.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".servicemap.pruned.{type_name}"
            if oneof:
                field.oneof_index = 0

    msg = f.TYPE_MESSAGE
    message("Request", [("resource_spans", 1, msg, repeated, "ResourceSpans")])
    message(
        "ResourceSpans",
        [("resource", 1, msg, optional, "Resource"), ("scope_spans", 2, msg, repeated, "Scope")],
    )
    message("Resource", [("attributes", 1, msg, repeated, "KeyValue")])
    message("Scope", [("spans", 2, msg, repeated, "Span")])
    message(
        "Span",
        [
            ("trace_id", 1, f.TYPE_BYTES, optional, ""),
            ("span_id", 2, f.TYPE_BYTES, optional, ""),
            ("parent_span_id", 4, f.TYPE_BYTES, optional, ""),
            ("name", 5, f.TYPE_BYTES, optional, ""),  # strings are read as bytes: see _utf8
            ("kind", 6, f.TYPE_INT32, optional, ""),
            ("start_time_unix_nano", 7, f.TYPE_FIXED64, optional, ""),
            ("end_time_unix_nano", 8, f.TYPE_FIXED64, optional, ""),
            ("attributes", 9, msg, repeated, "KeyValue"),
            ("links", 13, msg, repeated, "Link"),
            ("status", 15, msg, optional, "Status"),
        ],
    )
    message(
        "Link",
        [("trace_id", 1, f.TYPE_BYTES, optional, ""), ("span_id", 2, f.TYPE_BYTES, optional, "")],
    )
    message("Status", [("code", 3, f.TYPE_INT32, optional, "")])
    # The value stays serialized: most are strings, cut out of the bytes by `value_strings`
    # far faster than a decoder builds eight-member structs for them.
    message(
        "KeyValue",
        [("key", 1, f.TYPE_BYTES, optional, ""), ("value", 2, f.TYPE_BYTES, optional, "")],
    )
    message(
        "AnyValue",
        [
            ("string_value", 1, f.TYPE_STRING, optional, ""),
            ("bool_value", 2, f.TYPE_BOOL, optional, ""),
            ("int_value", 3, f.TYPE_INT64, optional, ""),
            ("double_value", 4, f.TYPE_DOUBLE, optional, ""),
            # Arrays and maps stay serialized: rare, and turned to JSON by any_value_to_str.
            ("array_value", 5, f.TYPE_BYTES, optional, ""),
            ("kvlist_value", 6, f.TYPE_BYTES, optional, ""),
            ("bytes_value", 7, f.TYPE_BYTES, optional, ""),
            ("string_value_strindex", 8, f.TYPE_INT32, optional, ""),
        ],
        oneof=True,
    )
    return proto


@cache
def _handler(message: str = "Request") -> Any:
    import ptars

    pool = descriptor_pool.DescriptorPool()
    pool.Add(_pruned_file())
    handlers = ptars.HandlerPool([pool.FindFileByName("servicemap/otlp_pruned.proto")])
    return handlers.get_for_message(pool.FindMessageTypeByName(f"servicemap.pruned.{message}"))


def decode(bodies: Sequence[bytes], message: str = "Request") -> pa.RecordBatch:
    """The nested record batch of `bodies`, one row per body."""
    try:
        return _handler(message).list_to_record_batch(list(bodies))
    except ValueError as exc:
        raise Undecodable(str(exc)) from None


def _np(array: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    return np.asarray(array.to_numpy(zero_copy_only=False))


def _utf8(array: pa.Array) -> pa.Array:
    """Bytes that protobuf declares a string → a string array (zero-copy), checked as UTF-8
    as protobuf checks it: one vectorised check is cheaper than the decoder's own per value."""
    try:
        return array.cast(pa.string())
    except pa.ArrowInvalid as exc:
        raise Undecodable(str(exc)) from None


def _field(array: pa.Array, name: str) -> pa.Array:
    return pc.struct_field(array, name)


def _one_value(row: dict[str, Any]) -> str | None:
    """A rare attribute value (double, bytes, array, map, string index) the reference's way."""
    value = AnyValue()
    if row["double_value"] is not None:
        value.double_value = row["double_value"]
    elif row["bytes_value"] is not None:
        value.bytes_value = row["bytes_value"]
    elif row["array_value"] is not None:
        value.array_value.CopyFrom(ArrayValue.FromString(row["array_value"]))
    elif row["kvlist_value"] is not None:
        value.kvlist_value.CopyFrom(KeyValueList.FromString(row["kvlist_value"]))
    elif row["string_value_strindex"] is not None:
        value.string_value_strindex = row["string_value_strindex"]
    return any_value_to_str(value)


def _decoded_value_strings(values: pa.StructArray) -> pa.Array:
    """Decoded AnyValue structs → their attribute strings; null where no value is set."""
    present = [pc.is_valid(_field(values, name)) for name in _VALUE_FIELDS]
    count = _np(present[0]).astype(np.int8)
    for mask in present[1:]:
        count += _np(mask)
    if len(count) and count.max() > 1:
        raise Unsupported("an AnyValue with two members set")
    text = _field(values, "string_value")
    ints = _field(values, "int_value")
    bools = _field(values, "bool_value")
    parts = [text]
    if ints.null_count < len(ints):
        parts.append(pc.cast(ints, pa.string()))
    if bools.null_count < len(bools):
        parts.append(pc.if_else(bools, "true", "false"))
    rare = np.zeros(len(values), dtype=bool)
    for mask in present[3:]:
        if mask.true_count:
            rare |= _np(mask)
    if rare.any():
        positions = np.flatnonzero(rare)
        rows = values.take(pa.array(positions)).to_pylist()
        strings = pa.array([_one_value(row) for row in rows], pa.string())
        parts.append(_scatter(strings, _slots(positions, len(values))))
    return pc.coalesce(*parts) if len(parts) > 1 else text


_TRUE_FALSE = np.frombuffer(b"falsetrue", dtype=np.uint8)
_INLINE = 12  # a binary view holds strings up to this many bytes itself


def _word_masks() -> np.ndarray[Any, Any]:
    """Row n: the masks that keep n bytes of three little-endian words; row 13 (a string too
    long to inline): keep the four-byte prefix, zero the buffer index and the offset."""
    table = np.zeros((_INLINE + 2, 3), dtype=np.uint32)
    for length in range(_INLINE + 1):
        for word in range(3):
            kept = min(max(length - 4 * word, 0), 4)
            table[length, word] = (1 << (8 * kept)) - 1
    table[_INLINE + 1] = (0xFFFFFFFF, 0, 0)
    return table


_WORD_MASKS = _word_masks()


def _binary_views(
    data: np.ndarray[Any, Any], starts: np.ndarray[Any, Any], lengths: np.ndarray[Any, Any]
) -> pa.Buffer:
    """Arrow binary-view structs for the byte ranges [start, start + length) of `data`: the
    length, then the bytes themselves when they fit in 12, else their first four bytes,
    buffer 0 and the start. Strings are then cut out of `data` without copying them one by
    one: each view's 12 bytes are one unaligned read, masked."""
    count = len(starts)
    padded = np.concatenate([data, np.zeros(_INLINE, dtype=np.uint8)])
    chunks = np.ndarray((len(data) + 1,), dtype=f"V{_INLINE}", buffer=padded, strides=(1,))
    head = chunks[starts].view("<u4").reshape(count, 3)
    head &= np.take(_WORD_MASKS, lengths, axis=0, mode="clip")
    long = np.flatnonzero(lengths > _INLINE)
    head[long, 2] = starts[long]
    views = np.empty((count, 4), dtype="<u4")
    views[:, 0] = lengths
    views[:, 1:] = head
    return pa.py_buffer(views)


def value_strings(blobs: pa.Array) -> pa.Array:
    """Serialized AnyValues → their attribute strings; null where no value is set.

    Simple values (nearly all) are read from their first bytes with numpy: a string under
    128 bytes (tag, one-byte length, the string), a boolean, an integer in [0, 2**21). Each
    string is then a range of the wire bytes, the others are written after them, and one
    cast of binary views copies every string once and checks it is UTF-8. What is not
    simple is decoded and turned to strings as `_decoded_value_strings` does."""
    blobs = blobs.cast(pa.binary())
    count = len(blobs)
    offsets = np.frombuffer(blobs.buffers()[1], dtype=np.int32)[blobs.offset :][: count + 1]
    data = np.frombuffer(blobs.buffers()[2] or b"", dtype=np.uint8)
    starts = offsets[:-1].astype(np.int64)
    sizes = np.diff(offsets)
    if blobs.null_count:  # no value: nothing to read
        sizes[~_np(blobs.is_valid())] = 0
    padded = np.concatenate([data, np.zeros(4, dtype=np.uint8)])
    tag, b1 = padded[starts], padded[starts + 1]
    string = (tag == 0x0A) & (b1 < 0x80) & (sizes == 2 + b1.astype(np.int32))
    boolean = (tag == 0x10) & (sizes == 2) & (b1 <= 1)
    begin = np.where(string, starts + 2, 0)
    length = np.where(string, b1, 0).astype(np.int64)
    parts = [data]
    end = len(data)

    def append(positions: np.ndarray[Any, Any], texts: pa.Array) -> None:
        """Texts for `positions`, written after the bytes so far (nulls stay null)."""
        nonlocal end
        text_offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset :]
        text_offsets = text_offsets[: len(texts) + 1]
        begin[positions] = end + text_offsets[:-1]
        length[positions] = np.diff(text_offsets)
        valid[positions] = _np(texts.is_valid()) if texts.null_count else True
        parts.append(np.frombuffer(texts.buffers()[2] or b"", dtype=np.uint8))
        end += int(text_offsets[-1])

    valid = string | boolean
    if boolean.any():
        begin[boolean] = end + np.where(b1[boolean] == 1, 5, 0)
        length[boolean] = np.where(b1[boolean] == 1, 4, 5)
        parts.append(_TRUE_FALSE)
        end += len(_TRUE_FALSE)
    candidates = np.flatnonzero((tag == 0x18) & (sizes >= 2) & (sizes <= 4))
    if len(candidates):
        c1, c2, c3 = padded[starts[candidates] + np.arange(1, 4)[:, None]].astype(np.int64)
        size = sizes[candidates]
        fits = (
            ((size == 2) & (c1 < 0x80))
            | ((size == 3) & (c1 >= 0x80) & (c2 < 0x80))
            | ((size == 4) & (c1 >= 0x80) & (c2 >= 0x80) & (c3 < 0x80))
        )
        numbers = (c1 & 0x7F) | np.where(size >= 3, (c2 & 0x7F) << 7, 0)
        numbers |= np.where(size == 4, c3 << 14, 0)
        append(candidates[fits], pa.array(numbers[fits]).cast(pa.string()))
    other = np.flatnonzero(~valid & (sizes > 0))
    if len(other):
        decoded = decode(blobs.take(pa.array(other)).to_pylist(), "AnyValue")
        append(other, _decoded_value_strings(decoded.to_struct_array()))
    source = np.concatenate(parts) if len(parts) > 1 else data
    views = _binary_views(source, begin, length)
    validity = pa.array(valid).buffers()[1] if not valid.all() else None
    array = pa.Array.from_buffers(pa.binary_view(), count, [validity, views, pa.py_buffer(source)])
    try:
        return array.cast(pa.string())
    except pa.ArrowInvalid as exc:  # not UTF-8: protobuf refuses the message
        raise Undecodable(str(exc)) from None


def _slots(positions: np.ndarray[Any, Any], length: int) -> np.ndarray[Any, Any]:
    """For each of `length` places, its index in `positions`, or -1."""
    slot = np.full(length, -1, dtype=np.int64)
    slot[positions] = np.arange(len(positions))
    return slot


def _scatter(values: pa.Array, positions: np.ndarray[Any, Any]) -> pa.Array:
    """values[positions], null where positions is -1."""
    return values.take(pa.array(positions, mask=positions < 0))


def _offsets(parents: np.ndarray[Any, Any], length: int) -> np.ndarray[Any, Any]:
    counts = np.bincount(parents, minlength=length) if len(parents) else np.zeros(length, int)
    offsets = np.zeros(length + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _has_duplicates(parents: np.ndarray[Any, Any], codes: np.ndarray[Any, Any], words: int) -> bool:
    """Whether a span (`parents`, sorted) has a key code twice. One bit per code and span:
    a span's keys are distinct when the OR of their bits has one bit per key."""
    if not len(codes):
        return False
    starts = np.flatnonzero(np.r_[True, parents[1:] != parents[:-1]])
    counts = np.diff(np.r_[starts, len(parents)])
    bits = np.left_shift(np.uint64(1), (codes % 64).astype(np.uint64))
    distinct = np.bitwise_count(np.bitwise_or.reduceat(bits, starts)) == counts
    if words <= 64 or distinct.all():
        return not distinct.all()
    # More than 64 key codes: spans whose codes collide modulo 64 are checked exactly.
    suspects = np.repeat(~distinct, counts)
    combined = np.sort(parents[suspects] * words + codes[suspects])
    return bool((combined[1:] == combined[:-1]).any())


@dataclass
class _Resources:
    """Per resource: service name, attributes left after `service.name`, the map array."""

    services: pa.Array
    attributes: list[dict[str, str]]
    maps: pa.Array


def _resources(resource_spans: pa.StructArray) -> _Resources:
    """Resources are few (one or a handful a request): plain dicts, as the reference builds."""
    attributes = _field(_field(resource_spans, "resource"), "attributes")
    dicts: list[dict[str, str]] = [{} for _ in range(len(resource_spans))]
    if len(attributes) and attributes.null_count < len(attributes):
        attributes = attributes.fill_null(pa.scalar([], attributes.type))
        elements = attributes.flatten()
        parents = _np(pc.list_parent_indices(attributes)).tolist()
        keys = _utf8(_field(elements, "key")).to_pylist()
        texts = value_strings(_field(elements, "value")).to_pylist()
        for parent, key, text in zip(parents, keys, texts, strict=True):
            if text is not None:
                dicts[parent][key] = text
    services = [attrs.pop("service.name", "") or UNKNOWN_SERVICE for attrs in dicts]
    maps = pa.array([list(attrs.items()) for attrs in dicts], _MAP_TYPE)
    return _Resources(pa.array(services, pa.string()), dicts, maps)


class _SpanAttributes:
    """A batch's span attributes as flat (span, key, value) columns, hoisting done by numpy."""

    def __init__(self, attributes: pa.ListArray, spans: int) -> None:
        self.spans = spans
        elements = attributes.flatten()
        parents = _np(pc.list_parent_indices(attributes)).astype(np.int64)
        texts = value_strings(_field(elements, "value"))
        keys = _utf8(_field(elements, "key"))
        if texts.null_count:
            keep = pc.is_valid(texts)
            keys, texts = keys.filter(keep), texts.filter(keep)
            parents = parents[_np(keep)]
        self.keys, self.texts, self.parents = keys, texts, parents
        encoded = pc.dictionary_encode(keys)
        codes = _np(encoded.indices).astype(np.int64)
        words = encoded.dictionary
        if _has_duplicates(parents, codes, len(words)):
            raise Unsupported("a span with a duplicate attribute key")
        # Position of each hoisted key's element per span (-1: the span lacks the key).
        lookup = np.array([_KEY_INDEX.get(word, -1) for word in words.to_pylist()], dtype=np.int64)
        key_index = lookup[codes] if len(codes) else codes
        hits = np.flatnonzero(key_index >= 0)
        hit_keys = key_index[hits]
        # Per hoisted key present in the batch: its element in each span, -1 where absent.
        self.where: dict[int, np.ndarray[Any, Any]] = {}
        for index in np.unique(hit_keys).tolist():
            elements_of_key = hits[hit_keys == index]
            positions = np.full(spans, -1, dtype=np.int64)
            positions[parents[elements_of_key]] = elements_of_key
            self.where[index] = positions
        self.remove = np.zeros(len(codes), dtype=bool)

    def value(self, key: str) -> tuple[np.ndarray[Any, Any], pa.Array] | None:
        positions = self.where.get(_KEY_INDEX[key])
        if positions is None:
            return None
        return positions >= 0, _scatter(self.texts, positions)

    def pop(self, key: str, spans: np.ndarray[Any, Any]) -> None:
        positions = self.where[_KEY_INDEX[key]][spans]
        self.remove[positions[positions >= 0]] = True

    def remaining(self) -> pa.Array:
        keep = ~self.remove
        parents = self.parents[keep]
        keys = self.keys.filter(pa.array(keep)) if self.remove.any() else self.keys
        texts = self.texts.filter(pa.array(keep)) if self.remove.any() else self.texts
        offsets = pa.array(_offsets(parents, self.spans), pa.int32())
        return pa.MapArray.from_arrays(offsets, keys, texts, type=_MAP_TYPE)


def _hoist(
    attributes: _SpanAttributes, resources: _Resources, resource_of_span: np.ndarray[Any, Any]
) -> dict[str, pa.Array]:
    """`columns.hoist` for every span at once."""
    spans = attributes.spans
    resource_values: dict[str, tuple[np.ndarray[Any, Any], pa.Array]] = {}

    def from_resource(key: str) -> tuple[np.ndarray[Any, Any], pa.Array] | None:
        if key not in resource_values:
            texts = [attrs.get(key) for attrs in resources.attributes]
            if all(text is None for text in texts):
                return None
            per_resource = pa.array(texts, pa.string())
            found = _np(pc.is_valid(per_resource))[resource_of_span]
            resource_values[key] = (found, per_resource.take(pa.array(resource_of_span)))
        return resource_values[key]

    columns: dict[str, pa.Array] = {}
    for column, keys in HOISTED_ATTRIBUTES.items():
        taken = np.zeros(spans, dtype=bool)
        parts: list[pa.Array] = []
        for key in keys:
            sources = [("span", attributes.value(key)), ("resource", from_resource(key))]
            if column in RESOURCE_FIRST:
                sources.reverse()
            for origin, source in sources:
                if source is None:
                    continue
                found, values = source
                chosen = found & ~taken
                if not chosen.any():
                    continue
                if origin == "span":
                    attributes.pop(key, chosen)
                taken |= chosen
                parts.append(values)
        if not parts:
            result = pa.nulls(spans, pa.string())
        elif len(parts) == 1:
            result = parts[0]
        else:
            result = pc.coalesce(*parts)
        if column in INT_COLUMNS:
            result = _to_int32(result)
        columns[column] = result
    return columns


def _to_int32(texts: pa.Array) -> pa.Array:
    """`columns.to_int` over the distinct texts of a column."""
    if texts.null_count == len(texts):
        return pa.nulls(len(texts), pa.int32())
    encoded = pc.dictionary_encode(texts)
    numbers = pa.array([to_int(text) for text in encoded.dictionary.to_pylist()], pa.int32())
    return numbers.take(encoded.indices)


def _links(links: pa.ListArray, spans: int) -> pa.Array:
    elements = links.flatten()
    trace_ids, span_ids = _field(elements, "trace_id"), _field(elements, "span_id")
    good = pc.and_(
        pc.equal(pc.binary_length(trace_ids), TRACE_ID_BYTES),
        pc.equal(pc.binary_length(span_ids), SPAN_ID_BYTES),
    )
    parents = _np(pc.list_parent_indices(links)).astype(np.int64)[_np(good)]
    values = pa.StructArray.from_arrays(
        [
            trace_ids.filter(good).cast(pa.binary(TRACE_ID_BYTES)),
            span_ids.filter(good).cast(pa.binary(SPAN_ID_BYTES)),
        ],
        fields=list(LINK_TYPE),
    )
    offsets = _offsets(parents, spans)
    empty = pa.array(offsets[1:] == offsets[:-1])
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), values, type=SPAN_SCHEMA.field("links").type, mask=empty
    )


def _valid_ids(spans: pa.StructArray) -> np.ndarray[Any, Any]:
    trace_ids, span_ids = _field(spans, "trace_id"), _field(spans, "span_id")
    parent_length = pc.binary_length(_field(spans, "parent_span_id"))
    good = pc.and_(
        pc.and_(
            pc.equal(pc.binary_length(trace_ids), TRACE_ID_BYTES),
            pc.not_equal(trace_ids, pa.scalar(bytes(TRACE_ID_BYTES), pa.binary())),
        ),
        pc.and_(
            pc.equal(pc.binary_length(span_ids), SPAN_ID_BYTES),
            pc.not_equal(span_ids, pa.scalar(bytes(SPAN_ID_BYTES), pa.binary())),
        ),
    )
    parent_ok = pc.or_(pc.equal(parent_length, 0), pc.equal(parent_length, SPAN_ID_BYTES))
    return _np(pc.and_(good, parent_ok))


def _int8(values: pa.Array, what: str) -> pa.Array:
    if len(values) and (pc.min(values).as_py() < -128 or pc.max(values).as_py() > 127):
        raise Unsupported(f"{what} outside int8")
    return values.cast(pa.int8())


def convert_batch(bodies: Sequence[bytes]) -> BatchConversion:
    """Bodies (serialized requests) → their valid spans as one table, in request order."""
    batch = decode(bodies)
    requests = batch.num_rows
    resource_lists = batch.column("resource_spans")
    resource_spans = resource_lists.flatten()
    request_of_resource = _np(pc.list_parent_indices(resource_lists)).astype(np.int64)
    scope_lists = _field(resource_spans, "scope_spans")
    scopes = scope_lists.flatten()
    resource_of_scope = _np(pc.list_parent_indices(scope_lists)).astype(np.int64)
    span_lists = _field(scopes, "spans")
    spans = span_lists.flatten()
    resource_of_span = resource_of_scope[_np(pc.list_parent_indices(span_lists))]
    count = len(spans)

    start = _field(spans, "start_time_unix_nano")
    end = _field(spans, "end_time_unix_nano")
    if count and max(pc.max(start).as_py(), pc.max(end).as_py()) >= _INT64_LIMIT:
        raise Unsupported("a timestamp past 2**63")
    kind = _int8(_field(spans, "kind"), "kind")
    status = _int8(_field(_field(spans, "status"), "code").fill_null(0), "status code")

    resources = _resources(resource_spans)
    attributes = _SpanAttributes(_field(spans, "attributes"), count)
    hoisted = _hoist(attributes, resources, resource_of_span)

    valid = _valid_ids(spans)
    rejected = [0] * requests
    errors: list[list[str]] = [[] for _ in range(requests)]
    if not valid.all():
        invalid = np.flatnonzero(~valid)
        request_of_span = request_of_resource[resource_of_span]
        for position in invalid.tolist():
            request = int(request_of_span[position])
            rejected[request] += 1
            if len(errors[request]) < MAX_ERRORS:
                row = spans[position]
                problem = id_problem(
                    row["trace_id"].as_py(),
                    row["span_id"].as_py(),
                    row["parent_span_id"].as_py(),
                )
                service = resources.services[int(resource_of_span[position])].as_py()
                name = (row["name"].as_py() or b"").decode(errors="replace")
                errors[request].append(f"span {name!r} of {service}: {problem}")

    start64 = start.cast(pa.int64())
    end64 = end.cast(pa.int64())
    has_start = pc.not_equal(start64, 0)
    duration = pc.if_else(
        pc.and_(has_start, pc.greater_equal(end64, start64)),
        pc.subtract(end64, start64),
        pa.scalar(None, pa.int64()),
    )
    parent = _field(spans, "parent_span_id")
    resource_take = pa.array(resource_of_span)
    arrays: dict[str, pa.Array] = {
        "trace_id": _field(spans, "trace_id"),
        "span_id": _field(spans, "span_id"),
        "parent_span_id": pc.if_else(
            pc.equal(pc.binary_length(parent), 0), pa.scalar(None, pa.binary()), parent
        ),
        "service_name": resources.services.take(resource_take),
        "name": _utf8(_field(spans, "name")),
        "kind": kind,
        "status_code": status,
        "start_time": pc.if_else(has_start, start64, pa.scalar(None, pa.int64())),
        "duration_ns": duration,
        **hoisted,
        "links": _links(_field(spans, "links"), count),
        "resource_attributes": resources.maps.take(resource_take),
        "attributes": attributes.remaining(),
    }
    table = pa.table(arrays)
    if not valid.all():
        table = table.filter(pa.array(valid))
    columns = [table.column(field.name).cast(field.type) for field in SPAN_SCHEMA]
    return BatchConversion(pa.Table.from_arrays(columns, schema=SPAN_SCHEMA), rejected, errors)
