"""Zipkin span pieces: the vectorised merge (`zipkin_merge`) against a plain-Python reference.

The reference is written from the rules in `servicemap/sources/zipkin_merge.py` over plain
dicts, one record at a time. Each seed makes a few traces of records that share ids on
purpose (same or other service, with or without kind, shared flag, local service), with
random tags, names, parents, times and errors; the reader turns them into rows, and the
merged table must equal the reference's merge of those rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pytest

from servicemap.schema import SpanKind
from servicemap.sources import zipkin
from servicemap.sources.zipkin_merge import ABSENT, NAMED_FLAG, SHARED_FLAG, merge_pieces

Row = dict[str, Any]
SERVER, INTERNAL = int(SpanKind.SERVER), int(SpanKind.INTERNAL)
FOLDED = ("kind", "status_code", "start_time", "duration_ns", "_flags")
MAPS = ("attributes", "resource_attributes")


def half(row: Row) -> str | None:
    if row["_flags"] & SHARED_FLAG or row["kind"] == SERVER:
        return "server"
    return None if row["kind"] == ABSENT else "local"


def service_key(row: Row) -> str | None:
    return row["service_name"] if row["_flags"] & NAMED_FLAG else None


def present(value: Any) -> bool:
    return value is not None and value != ""


def merge_rows(rows: list[Row]) -> Row:
    """One span from its rows, in merge order."""
    merged: Row = {}
    for name, value in rows[0].items():
        if name in FOLDED or name in MAPS:
            continue
        merged[name] = next((r[name] for r in rows if present(r[name])), value)
    kinds = [r["kind"] for r in rows if r["kind"] != ABSENT]
    shared = any(r["_flags"] & SHARED_FLAG for r in rows)
    merged["kind"] = kinds[0] if kinds else (SERVER if shared else INTERNAL)
    merged["status_code"] = max(r["status_code"] for r in rows)
    starts = [r["start_time"] for r in rows if r["start_time"] is not None]
    merged["start_time"] = min(starts) if starts else None
    durations = [r["duration_ns"] for r in rows if r["duration_ns"] is not None]
    merged["duration_ns"] = max(durations) if durations else None
    merged["_flags"] = 0
    for name in MAPS:
        union: dict[str, str] = {}
        for row in rows:
            for key, value in row[name] or ():
                union.setdefault(key, value)
        merged[name] = union
    return merged


def merge_id(rows: list[Row]) -> list[Row]:
    """The records of one (trace, id) → its spans."""
    spans: dict[tuple[str | None, str | None], list[Row]] = {}
    for row in rows:
        spans.setdefault((service_key(row), half(row)), []).append(row)
    # a named fragment joins its service's local half, else its server half
    for service, part in list(spans):
        if service is not None and part is None:
            for target in ("local", "server"):
                if (service, target) in spans:
                    spans[(service, target)] += spans.pop((service, None))
                    break
    # a record without a service joins the one named span its half allows
    adopted: dict[tuple[str | None, str | None], list[Row]] = {}
    for service, part in [key for key in spans if key[0] is None]:
        named = [k for k in spans if k[0] is not None and part in (None, k[1])]
        if len(named) == 1:
            adopted.setdefault(named[0], []).extend(spans.pop((service, part)))
    for key, extra in adopted.items():
        spans[key] += sorted(extra, key=lambda row: row["_row"])
    return [merge_rows(group) for group in spans.values()]


def needs_merge(rows: list[Row]) -> bool:
    keys = [(service_key(r), half(r)) for r in rows]
    return len(set(keys)) < len(keys) or (
        len(rows) > 1 and any(k[0] is None or k[1] is None for k in keys)
    )


def reference(rows: list[Row]) -> list[Row]:
    by_id: dict[tuple[bytes, bytes], list[Row]] = {}
    for number, row in enumerate(rows):
        row["_row"] = number
        by_id.setdefault((row["trace_id"], row["span_id"]), []).append(row)
    out: list[Row] = []
    for group in by_id.values():
        if needs_merge(group):
            out += merge_id(group)
        else:
            out += [finished(row) for row in group]
    return out


def finished(row: Row) -> Row:
    row = dict(row)
    if row["kind"] == ABSENT:
        row["kind"] = SERVER if row["_flags"] & SHARED_FLAG else INTERNAL
    for name in MAPS:
        row[name] = dict(row[name] or ())
    row["_flags"] = 0
    return row


def comparable(rows: Iterable[Row]) -> list[tuple[tuple[str, Any], ...]]:
    out = []
    for row in rows:
        row = finished(row)
        row.pop("_row", None)
        out.append(
            tuple(sorted((k, repr(v) if isinstance(v, dict) else v) for k, v in row.items()))
        )
    return sorted(out, key=repr)


def random_records(rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for trace in range(rng.randint(1, 3)):
        ids = [f"{trace * 16 + n + 1:016x}" for n in range(rng.randint(1, 4))]
        for _ in range(rng.randint(1, 12)):
            record: dict[str, Any] = {"traceId": f"{trace + 1:032x}", "id": rng.choice(ids)}
            service = rng.choice(["a", "b", "c", None])
            if service:
                record["localEndpoint"] = {"serviceName": service}
            kind = rng.choice([None, None, "CLIENT", "SERVER", "PRODUCER"])
            if kind:
                record["kind"] = kind
            if rng.random() < 0.2:
                record["shared"] = True
            if rng.random() < 0.5:
                record["parentId"] = rng.choice([*ids, "00000000000000ff"])
            record["name"] = rng.choice(["", "get", "post", None])
            if rng.random() < 0.6:
                record["timestamp"] = rng.randint(1, 10**6)
            if rng.random() < 0.6:
                record["duration"] = rng.randint(1, 1000)
            record["tags"] = {
                key: rng.choice(["1", "2", ""])
                for key in ("late", "peer.service", "db.system", "http.status_code", "error")
                if rng.random() < 0.3
            }
            if rng.random() < 0.3:
                record["remoteEndpoint"] = {"serviceName": rng.choice(["x", "y"])}
            if rng.random() < 0.3:
                record["localEndpoint"] = dict(record.get("localEndpoint", {}), ipv4="10.0.0.1")
            records.append(record)
    rng.shuffle(records)
    return records


def rows_read(records: list[dict[str, Any]]) -> pa.Table:
    reader = zipkin._Reader()
    for record in records:
        reader.add(record)
    return reader._take_table()


@pytest.mark.parametrize("seed", range(150))
def test_merge_agrees_with_the_reference(seed: int) -> None:
    records = random_records(random.Random(seed))
    expected = reference(rows_read(records).to_pylist())
    actual = merge_pieces(rows_read(records)).to_pylist()
    assert comparable(actual) == comparable(expected), records


def test_the_random_records_reach_every_rule() -> None:
    """Named fragments joined, unnamed records adopted or left alone, ids left unmerged."""
    seen = {"fragment joins": 0, "adopted": 0, "left alone": 0, "unmerged id": 0}
    for seed in range(150):
        rows = rows_read(random_records(random.Random(seed))).to_pylist()
        by_id: dict[tuple[bytes, bytes], list[Row]] = {}
        for row in rows:
            by_id.setdefault((row["trace_id"], row["span_id"]), []).append(row)
        for group in by_id.values():
            keys = {(service_key(r), half(r)) for r in group}
            seen["unmerged id"] += not needs_merge(group)
            seen["fragment joins"] += any(
                s is not None and h is None and ((s, "local") in keys or (s, "server") in keys)
                for s, h in keys
            )
            named = [k for k in keys if k[0] is not None]
            seen["adopted"] += any(s is None for s, _ in keys) and len(named) == 1
            seen["left alone"] += any(s is None for s, _ in keys) and len(named) > 1
    assert min(seen.values()) >= 20, seen
