"""Malformed Jaeger, Zipkin and JSON files: one line naming the file and where, exit code 1.

One row per kind of damage an audit fed the CLI (numbers too big or not numbers at all, bad
dates, ids, shapes, nesting, encodings). Each row's file is generated here. Odd times that are
only too big or not finite are not damage: such a span is read with its time unknown, as a
time past int64 is.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from servicemap.sources.detect import read_file

ZIPKIN_SPAN = {
    "traceId": "a1",
    "id": "b2",
    "name": "x",
    "timestamp": 1700000000000000,
    "duration": 5,
    "kind": "CLIENT",
    "localEndpoint": {"serviceName": "web"},
}
JAEGER_SPAN = {
    "traceID": "0000000000000001",
    "spanID": "0000000000000002",
    "operationName": "x",
    "references": [],
    "startTime": 1700000000000000,
    "duration": 5,
    "tags": [],
    "processID": "p1",
}
DOMAIN_SPAN = {
    "traceId": "AAAAAAAAAAAAAAAAAAAAAQ==",
    "spanId": "AAAAAAAAAAI=",
    "startTime": "2017-01-26T16:46:31.639875-05:00",
    "duration": "5000ns",
}
GONE = object()  # a field left out
POSITION = re.compile(r"line \d+ column \d+|span #\d+|byte \d+")


def _with(span: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    changed = {**span, **changes}
    return {key: value for key, value in changed.items() if value is not GONE}


def _raw(text: str, raw: dict[str, str]) -> bytes:
    """JSON text with `"@name@"` placeholders replaced by raw text (1e400, a huge integer)."""
    for name, value in raw.items():
        text = text.replace(f'"@{name}@"', value)
    return text.encode()


def zipkin(raw: dict[str, str] | None = None, **changes: Any) -> bytes:
    """Two Zipkin spans, the second changed (so the error names span #2)."""
    return _raw(json.dumps([ZIPKIN_SPAN, _with(ZIPKIN_SPAN, changes)]), raw or {})


def jaeger(raw: dict[str, str] | None = None, **changes: Any) -> bytes:
    """A Jaeger UI download of one trace whose one span is changed."""
    trace = {
        "traceID": "0000000000000001",
        "spans": [_with(JAEGER_SPAN, changes)],
        "processes": {"p1": {"serviceName": "svc"}},
    }
    return _raw(json.dumps({"data": [trace]}), raw or {})


def domain(**changes: Any) -> bytes:
    """An api_v2 model.Trace whose one span is changed."""
    return json.dumps({"spans": [_with(DOMAIN_SPAN, changes)], "processMap": []}).encode()


def tag(kind: str, value: Any) -> list[dict[str, Any]]:
    return [{"key": "x", "vType": kind.upper().removeprefix("V"), kind: value}]


GOOD_ZIPKIN = json.dumps([ZIPKIN_SPAN])
GOOD_JAEGER = jaeger().decode()

# name → (content, words the line must hold besides the file and a position)
WITH_POSITION: dict[str, tuple[bytes, str]] = {
    "integer of 100000 digits": (b"[" + b"9" * 100_000 + b"]", "line 1 column 2: number of more"),
    "timestamp of 5000 digits": (
        zipkin({"n": "9" * 5000}, timestamp="@n@"),
        "number of more than 4300 digits",
    ),
    "nesting 100000 deep": (b"[" * 100_000, "line 1 column 2: nested too deeply"),
    "api_v2 month 13": (domain(startTime="2017-13-45T16:46:31.639875-05:00"), "month must be"),
    "api_v2 offset +99:00": (
        domain(startTime="2017-01-26T16:46:31.639875+99:00"),
        "offset out of range",
    ),
    "api_v2 year 0": (domain(startTime="0000-01-01T00:00:00Z"), "year 0 is out of range"),
    "api_v2 vInt64 not a number": (domain(tags=tag("vInt64", "abc")), "vInt64 'abc'"),
    "api_v2 vFloat64 not a number": (domain(tags=tag("vFloat64", "abc")), "vFloat64 'abc'"),
    "api_v2 vInt64 NaN": (domain(tags=tag("vInt64", "NaN")), "vInt64 'NaN'"),
    "api_v2 id not base64": (domain(traceId="!!!"), "is not base64"),
    "api_v2 duration in parsecs": (domain(duration="5 parsecs"), "is not a duration"),
    "api_v2 time yesterday": (domain(startTime="yesterday"), "is not an RFC 3339 time"),
    "zipkin id of 17 hex digits": (zipkin(id="0123456789abcdef0"), "id '0123456789abcdef0'"),
    "zipkin trace id of 33 digits": (zipkin(traceId="0" * 33), "traceId"),
    "zipkin empty id": (zipkin(id=""), "id ''"),
    "zipkin id a number": (zipkin(id=12), "id must be a hex string"),
    "zipkin id missing": (zipkin(id=GONE), "id must be a hex string"),
    "zipkin id zero": (zipkin(id="0" * 16), "all zeros"),
    "zipkin trace id a number": (zipkin(traceId=1), "traceId must be a hex string"),
    "zipkin trace id missing": (zipkin(traceId=GONE), "traceId must be a hex string"),
    "zipkin parent not hex": (zipkin(parentId="zz"), "parentId 'zz'"),
    "zipkin parent a number": (zipkin(parentId=7), "parentId must be a hex string"),
    "zipkin local endpoint a string": (zipkin(localEndpoint="web"), "localEndpoint must be"),
    "zipkin remote endpoint a list": (zipkin(remoteEndpoint=[]), "remoteEndpoint must be"),
    "zipkin span not an object": (json.dumps([ZIPKIN_SPAN, 7]).encode(), "is not an object"),
    "zipkin tags a list": (zipkin(tags=["a"]), "tags must be an object"),
    "zipkin timestamp a string": (zipkin(timestamp="1700000000000000"), "timestamp must be"),
    "jaeger reference a number": (jaeger(references=[1]), "a reference must be an object"),
    "jaeger references an object": (jaeger(references={"a": 1}), "a reference must be"),
    "jaeger reference without id": (
        jaeger(references=[{"refType": "CHILD_OF", "traceID": "0000000000000001"}]),
        "reference spanID",
    ),
    "jaeger span id of 17 digits": (jaeger(spanID="0" * 16 + "2"), "spanID"),
    "jaeger span id a number": (jaeger(spanID=2), "spanID must be a hex string"),
    "jaeger trace id missing": (jaeger(traceID=GONE), "traceID must be a hex string"),
    "jaeger start soon": (jaeger(startTime="soon"), "startTime must be microseconds"),
    "jaeger tag without key": (jaeger(tags=[{"value": 1}]), "a tag without a key"),
    "jaeger tags an object": (jaeger(tags={"a": 1}), "tags must be a list"),
    "jaeger span not an object": (
        GOOD_JAEGER.replace(json.dumps(JAEGER_SPAN), "7").encode(),
        "span #1 is not an object",
    ),
    "jaeger download cut short": (GOOD_JAEGER[:60].encode(), "line 1 column"),
    "jaeger download with a bad tail": (
        GOOD_JAEGER[:-1].encode() + b', "total": }',
        "Expecting value",
    ),
    "zipkin array with trailing garbage": ((GOOD_ZIPKIN + "xyz").encode(), "line 1 column"),
    "zipkin array cut short": (GOOD_ZIPKIN[:-30].encode(), "line 1 column"),
    "not UTF-8": (b'[{"traceId":"a1","id":"b2","name":"\xc3\x28"}]', "not UTF-8 JSON (byte"),
}

# name → (content, words): errors about the whole file, where no position applies
WHOLE_FILE: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "file is empty"),
    "blank": (b" \n\t\n ", "file is empty"),
    "broken gzip": (b"\x1f\x8bgarbage", "broken gzip data"),
    "array of strings": (b'["a", "b"]', "not a known trace format"),
    "empty object": (b"{}", "not a known trace format"),
    "jaeger data of numbers": (b'{"data": [1, 2]}', "not a known trace format"),
    "jaeger data an object": (b'{"data": {"a": 1}}', "not a known trace format"),
    "jaeger spans an object": (
        b'{"data": [{"traceID": "1", "spans": {"a": 1}}]}',
        "not a known trace format",
    ),
    "zipkin v1": (b'[{"traceId": "a1", "id": "b2", "binaryAnnotations": []}]', "Zipkin v1"),
    "JSON null": (b"null\n", "not a trace file (JSON null found"),
    "JSON number": (b"42", "not a trace file (a JSON number found"),
    "JSON string": (b'"hello"', "not a trace file (a JSON string found"),
    "JSON true": (b" true ", "not a trace file (JSON true found"),
    "UTF-16 JSON": ("[]".encode("utf-16"), "not a trace file (UTF-16 text found"),
    "UTF-16 big-endian JSON": (b"\xfe\xff" + "[]".encode("utf-16-be"), "UTF-16 text found"),
    "plain text": (b"servicemap: error: something\n", "not a trace file (text found"),
    "binary": (bytes(range(256)) * 4, "not an OTLP protobuf message"),
}


def _one_line(run, path: Path) -> str:  # type: ignore[no-untyped-def]
    result = run("render", str(path))
    assert result.code == 1, result.out[:200]
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err
    assert lines[0].startswith(f"servicemap: error: {path}: ")
    return lines[0]


@pytest.mark.parametrize("name", list(WITH_POSITION))
def test_a_bad_file_is_one_line_with_the_file_and_the_position(
    run, tmp_path: Path, name: str
) -> None:
    content, words = WITH_POSITION[name]
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    line = _one_line(run, path)
    assert POSITION.search(line), line
    assert words in line


@pytest.mark.parametrize("name", list(WHOLE_FILE))
def test_a_file_that_is_no_trace_file_says_what_it_is(run, tmp_path: Path, name: str) -> None:
    content, words = WHOLE_FILE[name]
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert words in _one_line(run, path)


def test_the_position_of_an_overlong_number_is_the_number(run, tmp_path: Path) -> None:
    content = zipkin({"n": "9" * 5000}, timestamp="@n@")
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    column = content.index(b"9" * 5000) + 1
    assert f"line 1 column {column}: number of more than" in _one_line(run, path)


def test_a_gzip_compressed_bad_file_names_the_position_too(run, tmp_path: Path) -> None:
    path = tmp_path / "bad.json.gz"
    path.write_bytes(gzip.compress(domain(startTime="0000-01-01T00:00:00Z")))
    assert "Jaeger span #1: startTime" in _one_line(run, path)


def zipkin_one(raw: dict[str, str], **changes: Any) -> bytes:
    return _raw(json.dumps([_with(ZIPKIN_SPAN, changes)]), raw)


NEAR_INT64_MICROS = 2**63 // 1000 - 1  # fits int64 nanoseconds, twice it does not

# name → (content, column): a span whose time or duration is infinite, NaN or past int64 is
# read with that value unknown, like a time past int64 in OTLP
UNKNOWN_VALUES: dict[str, tuple[bytes, str]] = {
    "zipkin timestamp 1e400": (zipkin_one({"n": "1e400"}, timestamp="@n@"), "start_time"),
    "zipkin timestamp Infinity": (zipkin_one({"n": "Infinity"}, timestamp="@n@"), "start_time"),
    "zipkin timestamp NaN": (zipkin_one({"n": "NaN"}, timestamp="@n@"), "start_time"),
    "zipkin duration 1e400": (zipkin_one({"n": "1e400"}, duration="@n@"), "duration_ns"),
    "jaeger startTime 1e400": (jaeger({"n": "1e400"}, startTime="@n@"), "start_time"),
    "jaeger startTime Infinity": (jaeger(startTime="Infinity"), "start_time"),
    "jaeger startTime NaN": (jaeger(startTime="NaN"), "start_time"),
    "jaeger startTime 1e999999999": (jaeger(startTime="1e999999999"), "start_time"),
    "jaeger duration 1e400": (jaeger({"n": "1e400"}, duration="@n@"), "duration_ns"),
    "api_v2 duration of 40 digits": (domain(duration="1" + "0" * 40 + "ns"), "duration_ns"),
    # each fits int64 nanoseconds, their sum (the span's end) does not
    "zipkin timestamp plus duration past int64": (
        zipkin_one({}, timestamp=NEAR_INT64_MICROS, duration=NEAR_INT64_MICROS),
        "duration_ns",
    ),
    "jaeger startTime plus duration past int64": (
        jaeger(startTime=NEAR_INT64_MICROS, duration=NEAR_INT64_MICROS),
        "duration_ns",
    ),
    "api_v2 startTime plus duration past int64": (
        domain(startTime="2262-04-11T23:00:00Z", duration="1h"),
        "duration_ns",
    ),
}


@pytest.mark.parametrize("name", list(UNKNOWN_VALUES))
def test_an_infinite_or_huge_time_is_unknown(run, tmp_path: Path, name: str) -> None:
    content, column = UNKNOWN_VALUES[name]
    path = tmp_path / "odd.json"
    path.write_bytes(content)
    result = run("render", str(path))
    assert result.code == 0, result.err
    assert result.json()["window"]["spans"] == 1
    assert read_file(path)[column].to_pylist() == [None]


@pytest.mark.parametrize("as_dataset", [False, True])
def test_a_parquet_span_ending_past_int64_has_its_start_as_end(
    run, tmp_path: Path, as_dataset: bool
) -> None:
    """Parquet written by another tool skips the readers' check: the sum is guarded in SQL."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from servicemap.schema import SPAN_SCHEMA

    near = NEAR_INT64_MICROS * 1000
    row = {name: None for name in SPAN_SCHEMA.names}
    row |= {
        "trace_id": bytes(15) + b"\x01",
        "span_id": bytes(7) + b"\x01",
        "service_name": "a",
        "kind": 2,
        "status_code": 0,
        "start_time": near,
        "duration_ns": near,
    }
    table = pa.Table.from_pylist([row], schema=SPAN_SCHEMA)
    path = tmp_path / "spans" / "part.parquet"
    path.parent.mkdir()
    pq.write_table(table, path)
    result = run("render", str(path.parent if as_dataset else path))
    assert result.code == 0, result.err
    window = result.json()["window"]
    assert window["spans"] == 1 and window["start"] == window["end"]
    source = str(path.parent if as_dataset else path)
    result = run("diff", source, source, "--format", "json")
    assert result.code == 0, result.err
    rules = tmp_path / "rules.yaml"
    rules.write_text("slos:\n  - {name: a-up, service: a, objective: 0.99}\n")
    result = run("render", source, "--rules", str(rules))
    assert result.code == 0, result.err
    node = next(n for n in result.json()["nodes"] if n["id"] == "a")
    assert node["slos"][0]["calls"] == 1
    result = run("investigate", source, "--service", "a", "--format", "json")
    assert result.code == 0, result.err
    assert result.json()["latency"]["slow_requests"] == 1


def test_huge_jaeger_tag_numbers_are_kept_as_written(run, tmp_path: Path) -> None:
    """Never turned into a Python int of a billion digits (that takes minutes)."""
    path = tmp_path / "odd.json"
    path.write_bytes(
        domain(tags=[*tag("vInt64", "1e999999999"), *tag("vFloat64", "1e999999999")]).replace(
            b'"x"', b'"a"', 1
        )
    )
    result = run("render", str(path))
    assert result.code == 0, result.err


def test_an_unforeseen_error_still_names_the_file(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servicemap.sources import zipkin

    def broken(documents: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(zipkin, "read_documents", broken)
    monkeypatch.setattr(
        "servicemap.sources.detect.JSON_READERS",
        [(zipkin.is_zipkin_json, broken)],
    )
    path = tmp_path / "spans.json"
    path.write_text(GOOD_ZIPKIN)
    result = run("render", str(path))
    assert result.code == 1
    assert result.out == ""
    assert "Traceback" not in result.err
    # a bug, not the user's error: one line naming the file, with the debug hint
    assert result.err.strip() == (
        f"servicemap: internal error: {path}: ZeroDivisionError: division by zero "
        "(set SERVICEMAP_DEBUG=1 to see the traceback)"
    )
    monkeypatch.setenv("SERVICEMAP_DEBUG", "1")
    with pytest.raises(ZeroDivisionError) as raised:
        run("render", str(path))
    assert raised.value.__notes__ == [str(path)]
