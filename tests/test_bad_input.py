"""Bad input gets one clear line on stderr and exit code 1 — never a traceback."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO
from tests.spans import document, span


def _files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name → (file, words the error line must contain)."""
    good = json.dumps(document([span("c", "web", "client"), span("s", "api", "server", "c")]))
    bad_trace = document([span("c", "web", "client")])
    bad_trace["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "abcd"
    not_hex = document([span("c", "web", "client")])
    not_hex["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "zz" * 8
    cases = {
        "empty": (b"", "empty"),
        "blank": (b"  \n\n", "empty"),
        "truncated json": (good[: len(good) // 2].encode(), "invalid JSON at line 1"),
        "binary not otlp": (os.urandom(4096), "not"),
        "trace id of the wrong length": (json.dumps(bad_trace).encode(), "trace id must be 16"),
        "span id not hex": (json.dumps(not_hex).encode(), "not hex"),
        "json of another kind": (b'{"hello": "world"}', "not a known trace format"),
        "broken gzip": (b"\x1f\x8b\x08\x00garbage", "gzip"),
        "bad line in json lines": ((good + "\n" + good + "\n{oops\n").encode(), "invalid JSON"),
    }
    files = {}
    for index, (name, (content, words)) in enumerate(cases.items()):
        path = tmp_path / f"input-{index}"
        path.write_bytes(content)
        files[name] = (path, words)
    return files


CASE_NAMES = [
    "empty",
    "blank",
    "truncated json",
    "binary not otlp",
    "trace id of the wrong length",
    "span id not hex",
    "json of another kind",
    "broken gzip",
    "bad line in json lines",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_file_is_one_line_and_exit_1(run, tmp_path: Path, name: str) -> None:
    path, words = _files(tmp_path)[name]
    result = run("render", str(path))
    assert result.code == 1
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert str(path) in lines[0]
    assert words in lines[0]
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["render", "/no/such/file.json"], "no such file"),
        (["render", str(DEMO), "--format", "gif"], "'gif' is not one of"),
        (["render", str(DEMO), "--bogus"], "No such option"),
        (["render"], "Missing argument"),
        (["render", str(DEMO), "--since", "yesterday-ish"], "invalid time"),
        (["render", str(DEMO), "--since", "2026-11-02", "--until", "2026-11-01"], "before"),
        (["render", str(DEMO), "-o", "/no/such/dir/out.json"], "cannot write"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_command_line_is_one_line_and_exit_1(run, args: list[str], words: str) -> None:
    result = run(*args)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert words in lines[0]


def test_gzip_compressed_file_is_read(run, tmp_path: Path) -> None:
    packed = tmp_path / "traces.bin"
    packed.write_bytes(gzip.compress(DEMO.read_bytes()))
    assert run("render", str(packed)).out == run("render", str(DEMO)).out


def test_json_lines_file_is_read(run, tmp_path: Path) -> None:
    lines = tmp_path / "traces.jsonl"
    first = document([span("c", "web", "client")])
    second = document([span("s", "api", "server", "c")])
    lines.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    graph = run("render", str(lines)).json()
    assert [(e["source"], e["target"], e["calls"]) for e in graph["edges"]] == [("web", "api", 1)]


def test_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    """The real console entry point, as a user runs it."""
    empty = tmp_path / "empty.json"
    empty.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "servicemap", "render", str(empty)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"servicemap: error: {empty}: file is empty"


def test_out_of_range_values_are_read_not_fatal(run, tmp_path: Path) -> None:
    """An unknown kind or status is unspecified, a time past int64 is unknown: one odd span
    must not make the whole file (or a collector's whole log segment) unreadable."""
    doc = document([span("c", "web", "client"), span("s", "api", "server", "c")])
    client, server = (rs["scopeSpans"][0]["spans"][0] for rs in doc["resourceSpans"])
    client["kind"] = 300
    server["status"] = {"code": 77}
    server["startTimeUnixNano"] = str(2**64 - 1)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc))
    result = run("render", str(path))
    assert result.code == 0, result.err
    graph = result.json()
    assert graph["window"]["spans"] == 2
    # the client lost its kind, so web -> api is a kind-less cross-service pair (rule 6)
    assert [(e["source"], e["target"], e["calls"]) for e in graph["edges"]] == [("web", "api", 1)]


@pytest.mark.parametrize(
    "content",
    [
        '{"data":[{"traceID":"1","spans":[{"traceID":"1","spanID":"2","startTime":1e300,'
        '"duration":5,"processID":"p1"}],"processes":{"p1":{"serviceName":"a"}}}]}',
        '[{"traceId":"1","id":"2","timestamp":99999999999999999999999,'
        '"localEndpoint":{"serviceName":"a"}}]',
    ],
    ids=["jaeger", "zipkin"],
)
def test_times_past_int64_in_jaeger_and_zipkin(run, tmp_path: Path, content: str) -> None:
    path = tmp_path / "odd.json"
    path.write_text(content)
    result = run("render", str(path))
    assert result.code == 0, result.err
    assert result.json()["window"] == {"start": None, "end": None, "spans": 1, "traces": 1}


def test_parquet_of_another_table_is_refused(run, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), other)
    dataset = tmp_path / "data" / "spans" / "date=2026-01-01" / "hour=00"
    dataset.mkdir(parents=True)
    pq.write_table(pa.table({"a": [1]}), dataset / "part-1.parquet")
    for source, named in ((other, other), (tmp_path / "data", dataset / "part-1.parquet")):
        result = run("render", str(source))
        assert result.code == 1
        assert result.err.strip() == (
            f"servicemap: error: {named}: not a servicemap span file "
            "(no column trace_id, span_id, service_name, kind)"
        )


def test_an_unexpected_error_is_still_one_line(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug must not print a traceback at a user; SERVICEMAP_DEBUG=1 shows it."""
    import servicemap.cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(servicemap.cli, "graph_with_status", broken)
    result = run("render", str(DEMO))
    assert result.code == 1
    assert result.err.strip() == (
        "servicemap: internal error: RuntimeError: boom "
        "(set SERVICEMAP_DEBUG=1 to see the traceback)"
    )
    monkeypatch.setenv("SERVICEMAP_DEBUG", "1")
    with pytest.raises(RuntimeError):
        run("render", str(DEMO))
