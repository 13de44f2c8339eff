"""JSON read as a stream: value by value, with the exact line and column of any error.

The standard library's C decoder does the decoding (`raw_decode`), one value at a time, over
a text buffer that holds the value being decoded and little more. A top-level array — a Zipkin
span list — and the `data` array of a Jaeger `{"data": [...]}` download are handed out in
slices, each slice a valid document of the same shape, so no reader ever sees the whole file at
once. Several top-level values one after another (JSON lines) are separate documents.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from servicemap.errors import SourceError, first_line
from servicemap.files import invalid_json

CHUNK_CHARS = 1 << 20
SLICE_ITEMS = 2048
SLICE_CHARS = 16 << 20
# An error this close to the end of the buffer may only mean the value goes on in the next chunk.
_END_MARGIN = 64

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Python refuses to convert integers of more digits than this (4300 unless configured).
_MAX_DIGITS = sys.get_int_max_str_digits()
_LONG_NUMBER = re.compile(rf"\d{{{_MAX_DIGITS + 1},}}")


class _Text:
    """A window on the text: what is buffered, where decoding is, and how to say where."""

    def __init__(self, chunks: Iterable[str]) -> None:
        self._chunks = iter(chunks)
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.pinned: int | None = None  # keep the text from here on (to back up to it)
        self.last_size = 0  # characters of the value decoded last
        self._lines_before = 0  # newlines in the text dropped from the buffer's front
        self._column_before = 0  # characters after the last dropped newline

    def more(self, at_least: int = CHUNK_CHARS) -> bool:
        """Append at least `at_least` more characters, or all that is left; False at the end."""
        if self.eof:
            return False
        parts: list[str] = []
        got = 0
        for chunk in self._chunks:
            parts.append(chunk)
            got += len(chunk)
            if got >= at_least:
                break
        else:
            self.eof = True
        if not got:
            return False
        self._drop_consumed()
        self.buf += "".join(parts)
        return True

    def _drop_consumed(self) -> None:
        keep = self.pos if self.pinned is None else min(self.pos, self.pinned)
        if not keep:
            return
        buf = self.buf
        newlines = buf.count("\n", 0, keep)
        if newlines:
            self._lines_before += newlines
            self._column_before = keep - buf.rfind("\n", 0, keep) - 1
        else:
            self._column_before += keep
        self.buf = buf[keep:]
        self.pos -= keep
        if self.pinned is not None:
            self.pinned -= keep

    def error(self, message: str, at: int) -> SourceError:
        """An error naming the line and column (1-based) of buffer position `at`."""
        buf = self.buf
        at = min(at, len(buf))
        newlines = buf.count("\n", 0, at)
        column = at - buf.rfind("\n", 0, at) if newlines else self._column_before + at + 1
        line = self._lines_before + newlines + 1
        return invalid_json(line, column, message)

    def _value_error(self, exc: ValueError) -> SourceError:
        """A value the decoder read but Python refused: name the overlong number if found."""
        match = _LONG_NUMBER.search(self.buf, self.pos)
        if match is not None:
            return self.error(f"number of more than {_MAX_DIGITS} digits", match.start())
        return self.error(first_line(exc), self.pos)

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end); it is not consumed."""
        while True:
            match = _WHITESPACE.match(self.buf, self.pos)
            assert match is not None
            self.pos = match.end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def expect(self, char: str, message: str) -> None:
        if self.peek() != char:
            raise self.error(message, self.pos)
        self.pos += 1

    def value(self) -> Any:
        """Decode the next value, reading on while it may be incomplete."""
        if not self.peek():
            raise self.error("Expecting value", self.pos)
        while True:
            try:
                result, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                maybe_cut = exc.pos >= len(self.buf) - _END_MARGIN or exc.msg.startswith(
                    "Unterminated string"
                )
                if maybe_cut and self.more(max(CHUNK_CHARS, len(self.buf) - self.pos)):
                    continue
                raise self.error(exc.msg, exc.pos) from None
            except ValueError as exc:  # an integer of more digits than Python converts
                raise self._value_error(exc) from None
            except RecursionError:
                raise self.error("nested too deeply", self.pos) from None
            if end >= len(self.buf) and self.more():
                continue  # a number (or anything at the very end) may go on
            self.last_size = end - self.pos
            self.pos = end
            return result


def _array_items(text: _Text) -> Iterator[Any]:
    """The items of the array starting at the current position, consuming it."""
    text.expect("[", "Expecting '['")
    if text.peek() == "]":
        text.pos += 1
        return
    while True:
        yield text.value()
        char = text.peek()
        if char == "]":
            text.pos += 1
            return
        text.expect(",", "Expecting ',' delimiter")


def _slices(items: Iterator[Any], text: _Text) -> Iterator[list[Any]]:
    """Items in lists of bounded count and size; one empty list for an empty array."""
    batch: list[Any] = []
    chars = 0
    produced = False
    for item in items:
        batch.append(item)
        chars += text.last_size
        if len(batch) >= SLICE_ITEMS or chars >= SLICE_CHARS:
            produced = True
            yield batch
            batch, chars = [], 0
    if batch or not produced:
        yield batch


def _starts_data_array(text: _Text) -> bool:
    """Whether the object at the current position opens with `"data": [`; consumes that if so."""
    start = text.pos
    text.pinned = start
    found = False
    try:
        text.pos += 1  # the "{"
        if text.peek() == '"' and text.value() == "data" and text.peek() == ":":
            text.pos += 1
            found = text.peek() == "["
    finally:
        if not found:
            text.pos = start
        text.pinned = None
    return found


def _rest_of_object(text: _Text) -> None:
    """Skip the remaining members of an object whose first member was read."""
    while True:
        char = text.peek()
        if char == "}":
            text.pos += 1
            return
        text.expect(",", "Expecting ',' delimiter")
        if text.peek() != '"':
            raise text.error("Expecting property name enclosed in double quotes", text.pos)
        text.value()
        text.expect(":", "Expecting ':' delimiter")
        text.value()


def documents(chunks: Iterable[str]) -> Iterator[Any]:
    """Every JSON document of a text given in chunks; big arrays come in slices (see above)."""
    text = _Text(chunks)
    while head := text.peek():
        if head == "[":
            yield from _slices(_array_items(text), text)
        elif head == "{" and _starts_data_array(text):
            for batch in _slices(_array_items(text), text):
                yield {"data": batch}
            _rest_of_object(text)
        else:
            yield text.value()
