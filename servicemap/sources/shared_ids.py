"""Client and server halves that share one span id (B3 / Zipkin "shared" spans).

Zipkin-instrumented RPCs often report the client span and the server span under the same id;
Jaeger data from such instrumentation does too. The span table wants one id per span, with the
server a child of the client, so the generic CLIENT→SERVER pairing sees the call (DESIGN §4
rule 6). The readers call `resolve_shared_ids` on their finished span table:

- a SERVER row whose (trace, id) is also a CLIENT's (or that shares its id with SERVER rows of
  other services) gets a synthetic id derived from (id, its service), and the shared id as its
  parent when the client half is present (otherwise it keeps the parent it was recorded with);
- a row whose parent id is such a shared id hangs under the server half in its own service when
  there is one, else under the id itself (the client half), as the Zipkin UI hangs it.

A lone server half (its client not in the data) keeps its id, so it stays a root or keeps its
children. Everything is vectorised except hashing the moved server halves' ids, so a file of
shared spans costs what its span table costs.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from servicemap.schema import SPAN_ID_BYTES, SpanKind

_SERVER = pa.scalar(int(SpanKind.SERVER), pa.int8())
_CLIENT = pa.scalar(int(SpanKind.CLIENT), pa.int8())
_EMPTY = pa.scalar(b"", pa.binary())


def server_half_id(shared_id: bytes, service: str) -> bytes:
    """The deterministic span id of the server half of a shared id, in one service."""
    digest = hashlib.blake2b(
        shared_id + b"\0" + service.encode(), digest_size=SPAN_ID_BYTES, person=b"servicemap-rpc"
    ).digest()
    return digest if any(digest) else b"\x01" * SPAN_ID_BYTES


def joined(*columns: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Columns (ids, names) concatenated as bytes, row by row: a composite key."""
    return pc.binary_join_element_wise(*(pc.cast(c, pa.binary()) for c in columns), _EMPTY)


def repeated_values(keys: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The keys that occur more than once."""
    counts = pc.value_counts(keys)
    return counts.field("values").filter(pc.greater(counts.field("counts"), 1))


def _set(table: pa.Table, name: str, column: pa.Array | pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


def resolve_shared_ids(table: pa.Table) -> pa.Table:
    """The span table with server halves of shared ids split off and their children re-hung."""
    if table.num_rows < 2:
        return table
    ids = joined(table["trace_id"], table["span_id"])
    repeated = repeated_values(ids)
    if not len(repeated):
        return table
    kind = table["kind"]
    is_server = pc.equal(kind, _SERVER)
    candidates = pc.is_in(ids, value_set=repeated)
    groups = (
        pa.table(
            {
                "id": ids,
                "client": pc.equal(kind, _CLIENT),
                "server_service": pc.if_else(is_server, table["service_name"], None),
            }
        )
        .filter(candidates)
        .group_by("id")
        .aggregate(
            [
                ("client", "any"),
                ("server_service", "count_distinct", pc.CountOptions(mode="only_valid")),
            ]
        )
    )
    has_client = groups["client_any"]
    qualifies = pc.or_(has_client, pc.greater_equal(groups["server_service_count_distinct"], 2))
    shared = groups["id"].filter(qualifies)
    row_group = pc.index_in(ids, value_set=shared)
    moved = pc.and_(is_server, pc.is_valid(row_group))
    if not pc.any(moved).as_py():
        return table
    moved_rows = table.select(["trace_id", "span_id", "service_name"]).filter(moved)
    new_ids = pa.array(
        [
            server_half_id(span_id, service)
            for span_id, service in zip(
                moved_rows["span_id"].to_pylist(),
                moved_rows["service_name"].to_pylist(),
                strict=True,
            )
        ],
        pa.binary(SPAN_ID_BYTES),
    )
    halves = joined(moved_rows["trace_id"], moved_rows["span_id"], moved_rows["service_name"])
    # Children first (a moved half's own parent too, when that is another shared id).
    table = rehang_children(table, halves, new_ids)
    with_client = pc.and_(
        moved, pc.fill_null(pc.take(has_client.filter(qualifies), row_group), False)
    )
    parents = pc.replace_with_mask(
        _array(table["parent_span_id"]),
        _array(with_client),
        _array(table["span_id"].filter(with_client)),
    )
    table = _set(table, "parent_span_id", parents)
    span_ids = pc.replace_with_mask(_array(table["span_id"]), _array(moved), new_ids)
    return _set(table, "span_id", span_ids)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def rehang_children(table: pa.Table, keys: pa.Array, new_parents: pa.Array) -> pa.Table:
    """Rows whose (trace, parent, service) is one of `keys` get the matching new parent."""
    row_keys = joined(table["trace_id"], table["parent_span_id"], table["service_name"])
    found = pc.take(new_parents, pc.index_in(row_keys, value_set=keys))
    return _set(table, "parent_span_id", pc.coalesce(found, table["parent_span_id"]))
