"""The progress bar of long reads: on standard error, when it is a terminal, for big files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from servicemap.sources import detect
from tests.conftest import edges_of
from tests.recorded_spans import write_zipkin
from tests.recorded_spans import zipkin_span as z


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    return write_zipkin(
        tmp_path / "spans.json", [z("c", "web", "client"), z("s", "api", "server", "c")]
    )


def test_a_big_file_on_a_terminal_shows_a_progress_bar(
    run, spans_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(detect, "PROGRESS_MIN_BYTES", 10)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    result = run("render", str(spans_file))
    assert result.code == 0
    assert f"reading {spans_file.name}" in result.err
    assert "100%" in result.err
    assert edges_of(json.loads(result.out)) == {("web", "api"): (1, 0)}


@pytest.mark.parametrize(("terminal", "threshold"), [(False, 10), (True, 1 << 30)])
def test_no_bar_off_a_terminal_or_for_a_small_file(
    run, spans_file: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool, threshold: int
) -> None:
    monkeypatch.setattr(detect, "PROGRESS_MIN_BYTES", threshold)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    result = run("render", str(spans_file))
    assert result.code == 0
    assert result.err == ""
