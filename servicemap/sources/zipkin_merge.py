"""Zipkin records that are pieces of one span, merged into that span: vectorised.

The rules (`zipkin` describes them) group the records of one (trace, id) by (local service,
half): the server half (`shared` or SERVER), the local half (any other kind), or none (a
fragment without a kind). A named fragment joins its service's local half, else its server
half; a record without a local service joins the one named span its half allows, if there is
exactly one. A merged span takes, in the order target rows, joined named fragments, joined
unnamed records (file order within each): the first value present of every column, the first
kind, the earliest start, the longest duration, the worst status, every tag (the first value
of each key).

Memory: only the rows of ids that need merging are grouped, and only the few columns the
rules read are keyed; every other column is picked by row number (`take`). The input table
is taken apart column by column as its rows are split into kept and merging rows, so about
one copy of the table exists at a time, never the input beside its split and merged rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from servicemap.schema import SpanKind
from servicemap.sources.shared_ids import joined, repeated_values

SHARED_FLAG, NAMED_FLAG = 1, 2
ABSENT = int(SpanKind.UNSPECIFIED)  # no kind in the record
_SERVER = pa.scalar(int(SpanKind.SERVER), pa.int8())
_ABSENT = pa.scalar(ABSENT, pa.int8())
_NO_SERVICE = "\0"
# Merge order: a group's own rows, then named fragments joined to it, then unnamed records.
_RANK_SHIFT = 40
_ROW_MASK = (1 << _RANK_SHIFT) - 1
_FOLDED = ("kind", "status_code", "start_time", "duration_ns", "_flags")
_MAPS = ("attributes", "resource_attributes")


def merge_pieces(table: pa.Table) -> pa.Table:
    """The span table with the pieces of each span merged into one row.

    Takes `table` apart column by column: the caller must hold no other reference to it
    (pass it as an expression), or its memory is held twice.
    """
    to_merge = _rows_to_merge(table)
    if to_merge is None:
        return table
    schema = table.schema
    keep = pc.invert(to_merge)
    kept: dict[str, pa.ChunkedArray] = {}
    pieces: dict[str, pa.ChunkedArray] = {}
    for name in schema.names:
        column = table[name]
        kept[name] = column.filter(keep)
        pieces[name] = column.filter(to_merge)
        table = table.drop_columns([name])
        del column
    merged = _merged(pa.table(pieces, schema=schema))
    del pieces
    return pa.concat_tables([pa.table(kept, schema=schema), merged])


def _flag(flags: pa.ChunkedArray, bit: int) -> pa.ChunkedArray:
    return pc.not_equal(pc.bit_wise_and(flags, pa.scalar(bit, pa.int8())), 0)


def _halves(table: pa.Table) -> pa.ChunkedArray:
    """Each row's half: s(erver) when shared or SERVER, l(ocal) for other kinds, - none."""
    kind = table["kind"]
    return pc.if_else(
        pc.or_(_flag(table["_flags"], SHARED_FLAG), pc.equal(kind, _SERVER)),
        "s",
        pc.if_else(pc.equal(kind, _ABSENT), "-", "l"),
    )


def _rows_to_merge(table: pa.Table) -> pa.Array | None:
    """Rows of the ids where two records are one span; None when there are none.

    Only rows whose span id repeats (whatever the trace) get composite keys: few, unless the
    file is all fragments.
    """
    span_ids = table["span_id"]
    candidates = _array(pc.is_in(span_ids, value_set=repeated_values(span_ids)))
    if not pc.any(candidates).as_py():
        return None
    rows = table.select(["trace_id", "span_id", "service_name", "kind", "_flags"])
    rows = rows.filter(candidates)
    ids = joined(rows["trace_id"], rows["span_id"])
    in_repeated = pc.is_in(ids, value_set=repeated_values(ids))
    named = _flag(rows["_flags"], NAMED_FLAG)
    half = _halves(rows)
    piece_keys = joined(ids, pc.if_else(named, rows["service_name"], _NO_SERVICE), half)
    del rows
    # an id needs merging when two rows are the same half in the same service, or one row is
    # a fragment without a kind or without a service
    needs_merge = pc.or_(
        pc.is_in(piece_keys, value_set=repeated_values(piece_keys.filter(in_repeated))),
        pc.and_(in_repeated, pc.or_(pc.equal(half, "-"), pc.invert(named))),
    )
    del piece_keys
    merging = _array(pc.is_in(ids, value_set=pc.unique(ids.filter(needs_merge))))
    if not pc.any(merging).as_py():
        return None
    return pc.replace_with_mask(candidates, candidates, merging)


def _targets(pieces: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(group number, merge order) of every piece row: which span it is part of, and when
    its values count (a group's own rows first, in file order)."""
    ids = joined(pieces["trace_id"], pieces["span_id"])
    named = _flag(pieces["_flags"], NAMED_FLAG)
    service = pc.if_else(named, pieces["service_name"], _NO_SERVICE)
    half = _halves(pieces)
    # a named fragment joins its service's local half, else its server half
    own_keys = pc.unique(joined(ids, service, half).filter(named))
    fragment = pc.and_(named, pc.equal(half, "-"))
    local = pc.is_in(joined(ids, service, "l"), value_set=own_keys)
    server = pc.is_in(joined(ids, service, "s"), value_set=own_keys)
    joined_half = pc.if_else(local, "l", pc.if_else(server, "s", "-"))
    half = pc.if_else(fragment, joined_half, half)
    # an unnamed record joins the one named span of its id (of its half, if it has one)
    spans = (
        pa.table({"id": ids, "service": service, "half": half})
        .filter(named)
        .group_by(["id", "service", "half"])
        .aggregate([])
    )
    by_id = spans.group_by("id").aggregate(
        [("service", "min"), ("half", "min"), ("service", "count")]
    )
    by_half = spans.group_by(["id", "half"]).aggregate([("service", "min"), ("service", "count")])
    unnamed = pc.invert(named)
    id_match = pc.index_in(ids, value_set=by_id["id"])
    half_match = pc.index_in(joined(ids, half), value_set=joined(by_half["id"], by_half["half"]))
    any_half = pc.and_(unnamed, pc.equal(half, "-"))
    sole = pc.if_else(
        any_half,
        pc.equal(pc.take(by_id["service_count"], id_match), 1),
        pc.equal(pc.take(by_half["service_count"], half_match), 1),
    )
    adopted = pc.fill_null(pc.and_(unnamed, sole), False)
    service = pc.if_else(
        adopted,
        pc.if_else(
            any_half,
            pc.take(by_id["service_min"], id_match),
            pc.take(by_half["service_min"], half_match),
        ),
        service,
    )
    half = pc.if_else(pc.and_(adopted, any_half), pc.take(by_id["half_min"], id_match), half)
    group = pc.dictionary_encode(_array(joined(ids, service, half))).indices
    rank = pc.if_else(adopted, 2, pc.if_else(fragment, 1, 0)).cast(pa.int64())
    rows = pa.array(np.arange(len(pieces), dtype=np.int64))
    order = pc.add(pc.shift_left(rank, _RANK_SHIFT), rows)
    return group, _array(order)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _merged(pieces: pa.Table) -> pa.Table:
    """One row per span from the piece rows (see the module docstring for the rules)."""
    group, order = _targets(pieces)
    # the first value present, for the columns where some pieces have one and some not
    mixed: dict[str, pa.Array] = {}
    for name in pieces.schema.names:
        if name not in _FOLDED + _MAPS:
            present = _present(pieces[name])
            if 0 < pc.sum(present).as_py() < len(present):
                mixed[name] = pc.if_else(present, order, None)
    folded = pa.table(
        {
            "group": group,
            "first": order,
            "shared": _flag(pieces["_flags"], SHARED_FLAG),
            "known_kind": pc.if_else(pc.not_equal(pieces["kind"], _ABSENT), order, None),
            "status_code": pieces["status_code"],
            "start_time": pieces["start_time"],
            "duration_ns": pieces["duration_ns"],
            **mixed,
        }
    )
    mixed_names = list(mixed)
    del mixed
    spans = (
        folded.group_by("group", use_threads=False)
        .aggregate(
            [
                ("first", "min"),
                ("shared", "any"),
                ("known_kind", "min"),
                ("status_code", "max"),
                ("start_time", "min"),
                ("duration_ns", "max"),
                *((name, "min") for name in mixed_names),
            ]
        )
        .sort_by("group")
    )
    del folded
    first = _rows(spans["first_min"])
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in pieces.schema.names:
        if name in _MAPS:
            columns[name] = _merged_maps(pieces[name], group, order, spans.num_rows)
        elif name not in _FOLDED:
            chosen = _rows(spans[f"{name}_min"]) if name in mixed_names else None
            rows = first if chosen is None else pc.coalesce(chosen, first)
            columns[name] = pieces[name].take(rows)
    kind = pieces["kind"].take(_rows(spans["known_kind_min"]))
    # a span no piece gave a kind stays ABSENT, carrying the shared bit: zipkin decides it
    columns["kind"] = pc.coalesce(kind, _ABSENT)
    columns["status_code"] = spans["status_code_max"]
    columns["start_time"] = spans["start_time_min"]
    columns["duration_ns"] = spans["duration_ns_max"]
    columns["_flags"] = pc.if_else(
        spans["shared_any"], pa.scalar(SHARED_FLAG, pa.int8()), pa.scalar(0, pa.int8())
    )
    return pa.table({name: columns[name] for name in pieces.schema.names}, schema=pieces.schema)


def _present(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Whether a piece has a value here (an empty string is none)."""
    valid = pc.is_valid(column)
    if pa.types.is_string(column.type):
        return pc.and_(valid, pc.fill_null(pc.not_equal(column, ""), False))
    return valid


def _rows(order: pa.ChunkedArray) -> pa.ChunkedArray:
    """Piece row numbers from merge-order values."""
    return pc.bit_wise_and(order, pa.scalar(_ROW_MASK, pa.int64()))


_ENTRIES = pa.list_(
    pa.field(
        "entries",
        pa.struct([pa.field("key", pa.string(), nullable=False), ("value", pa.string())]),
        nullable=False,
    )
)


def _merged_maps(
    maps: pa.ChunkedArray, group: pa.Array, order: pa.Array, groups: int
) -> pa.MapArray:
    """Each group's maps united, the first value of each key (in merge order) kept."""
    lists = _array(maps).cast(_ENTRIES)
    parents = pc.list_parent_indices(lists)
    entries = pc.list_flatten(lists)
    ranked = pa.table(
        {
            "group": group.take(parents),
            "order": order.take(parents),
            "entry": np.arange(len(entries), dtype=np.int64),
        }
    ).sort_by([("group", "ascending"), ("order", "ascending"), ("entry", "ascending")])
    ranked_keys = entries.field("key").take(ranked["entry"])
    firsts = (
        pa.table(
            {
                "group": ranked["group"],
                "key": ranked_keys,
                "rank": np.arange(len(ranked), dtype=np.int64),
            }
        )
        .group_by(["group", "key"], use_threads=False)
        .aggregate([("rank", "min")])["rank_min"]
    )
    chosen = ranked.take(pc.take(firsts, pc.array_sort_indices(firsts)))
    sizes = np.bincount(chosen["group"].to_numpy(), minlength=groups)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    entry = _array(chosen["entry"])
    return pa.MapArray.from_arrays(
        pa.array(offsets), entries.field("key").take(entry), entries.field("value").take(entry)
    )
