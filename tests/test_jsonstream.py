"""The streamed JSON reader: same values and same error positions as `json`, in any chunking."""

from __future__ import annotations

import json

import pytest

from servicemap.errors import SourceError
from servicemap.sources import jsonstream


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.fixture(autouse=True)
def _small_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonstream, "CHUNK_CHARS", 5)
    monkeypatch.setattr(jsonstream, "SLICE_ITEMS", 3)


GOOD = [
    ('[1, 2, 3, 4, {"a": [1, {"b": "a long string value"}]}, 12345678901234567890]', None),
    ("[]", None),
    ('\n {"data": [{"spans": [1]}, 2, 3, 4], "total": 0, "x": {"y": [1, 2]}}', "data"),
    ('{"data": []}', "data"),
    ('{"traceID": "1", "data": [1]}', "whole"),
    ('{"a": 1}\n{"b": 2}\n', "lines"),
]


@pytest.mark.parametrize(("text", "shape"), GOOD)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_values_whatever_the_chunks(text: str, shape: str | None, size: int) -> None:
    documents = list(jsonstream.documents(_chunks(text, size)))
    if shape == "lines":
        assert documents == [json.loads(line) for line in text.splitlines()]
        return
    whole = json.loads(text)
    if shape == "data":
        assert [item for doc in documents for item in doc["data"]] == whole["data"]
        assert all(len(doc["data"]) <= 3 for doc in documents)
    elif shape is None:
        assert [item for doc in documents for item in doc] == whole
        assert all(len(doc) <= 3 for doc in documents)
    else:
        assert documents == [whole]


BAD = [
    "[1,2",
    "[1,2,]",
    '[{"a": 1},\n {"b": x}]',
    '{"data": [1,2] "x"}',
    "[1 2]",
    '{"a": "unterminated\n}',
    '{"data": [1], "total": 0',
    '\n\n  [1, {"a": tru}]',
    "[1,\n2,\n" + "x" * 300 + "]",
]


@pytest.mark.parametrize("text", BAD)
@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_errors_name_the_line_and_column_json_names(text: str, size: int) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(SourceError) as got:
        list(jsonstream.documents(_chunks(text, size)))
    message = str(got.value)
    assert f"line {expected.value.lineno} column {expected.value.colno}" in message
    assert expected.value.msg in message


def test_an_error_after_other_lines_counts_them() -> None:
    text = '{"a": 1}\n{"b": 2}\n{oops\n'
    with pytest.raises(SourceError, match="line 3 column 2"):
        list(jsonstream.documents(_chunks(text, 4)))


@pytest.mark.parametrize("size", [1, 7, 1000, 10**6])
def test_an_integer_python_refuses_is_an_error_at_its_position(size: int) -> None:
    """More digits than int() converts (4300): ValueError, not JSONDecodeError."""
    text = '[1,\n {"timestamp": ' + "9" * 5000 + "}]"
    with pytest.raises(SourceError) as got:
        list(jsonstream.documents(_chunks(text, size)))
    assert str(got.value) == "invalid JSON at line 2 column 16: number of more than 4300 digits"


@pytest.mark.parametrize("size", [1, 1000, 10**6])
def test_nesting_too_deep_is_an_error_at_the_value(size: int) -> None:
    text = "[1,\n " + "[" * 100_000 + "]" * 100_000 + "]"
    with pytest.raises(SourceError) as got:
        list(jsonstream.documents(_chunks(text, size)))
    assert str(got.value) == "invalid JSON at line 2 column 2: nested too deeply"
