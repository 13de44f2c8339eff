"""Which reader a file needs, decided from its content (file names can be anything).

Files are streamed: bytes are read a block at a time (inflated when gzip-compressed), JSON is
decoded value by value and big arrays in slices (`jsonstream`), so memory holds the span table
being built rather than the file's text or its parsed JSON. A long read shows a progress bar
when standard error is a terminal.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq

from servicemap import files, storage
from servicemap.errors import InvalidSpanError, ServicemapError, SourceError
from servicemap.schema import SPAN_SCHEMA
from servicemap.sources import jaeger, jsonstream, otlp, otlp_json, zipkin

PARQUET_MAGIC = b"PAR1"
UTF8_BOM = codecs.BOM_UTF8
PROGRESS_MIN_BYTES = 8 << 20
_BLANK = b" \t\r\n"

JsonReader = Callable[[Iterable[Any]], pa.Table]
# (does this JSON document look like mine?, read such documents) — first match wins. A file's
# documents are its top-level JSON values, a big top-level array (or Jaeger's `data` array)
# coming as several documents of the same shape, each a slice of it.
JSON_READERS: list[tuple[Callable[[Any], bool], JsonReader]] = []
KNOWN_FORMATS = "OTLP/JSON, Jaeger JSON or Zipkin v2 JSON expected"
TEXT_EXPECTED = "UTF-8 OTLP/JSON, Jaeger JSON or Zipkin v2 JSON, OTLP protobuf or Parquet expected"
TEXT_PREVIEW_BYTES = 4096
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _read_otlp_documents(documents: Iterable[Any]) -> pa.Table:
    return _strict(otlp_json.convert_documents(documents))


JSON_READERS.append((otlp.is_otlp_json, _read_otlp_documents))
JSON_READERS.append((jaeger.is_jaeger_json, jaeger.read_documents))
JSON_READERS.append((zipkin.is_zipkin_json, zipkin.read_documents))


def _strict(conversion: otlp.Conversion) -> pa.Table:
    """Recorded files are not partial-success: one bad span makes the file unreadable."""
    if conversion.rejected:
        raise InvalidSpanError(
            f"{conversion.rejected} invalid span(s), first: {conversion.errors[0]}"
        )
    return conversion.table


def read_documents(documents: Iterable[Any]) -> pa.Table:
    """JSON documents → span table, by the reader the first document's shape asks for."""
    iterator = iter(documents)
    first = next(iterator, _NOTHING)
    if first is _NOTHING:
        raise SourceError("no JSON document")
    for looks_like, reader in JSON_READERS:
        if looks_like(first):
            return reader(_all_alike(first, iterator, looks_like))
    raise SourceError(f"JSON is not a known trace format ({KNOWN_FORMATS})")


_NOTHING = object()


def _all_alike(first: Any, rest: Iterator[Any], looks_like: Callable[[Any], bool]) -> Iterator[Any]:
    yield first
    for number, document in enumerate(rest, start=2):
        if not looks_like(document):
            raise SourceError(f"JSON document {number} is not in the trace format of the first")
        yield document


def read_span_parquet(path: Path) -> pa.Table:
    """A Parquet file of spans; another table's file is refused, not read as nulls."""
    storage.check_span_file(path)
    return pq.read_table(path, schema=SPAN_SCHEMA)


def read_file(path: Path) -> pa.Table:
    """A recorded trace file → span table, whatever its format."""
    try:
        with files.open_file(path) as raw:
            if raw.peek(len(PARQUET_MAGIC))[: len(PARQUET_MAGIC)] == PARQUET_MAGIC:
                return read_span_parquet(path)
            return _read_stream(path, raw)
    except ServicemapError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise type(exc)(f"{path}: {exc}") from None
    except Exception as exc:  # a bug, or input no check foresaw: still a bug, naming the file
        exc.add_note(str(path))
        raise


def _read_stream(path: Path, raw: io.BufferedReader) -> pa.Table:
    with _progress(path, raw) as advance:
        blocks = files.blocks(files.inflated(raw), raw, advance)
        head, blocks = _first_content(blocks)
        if head is None:
            raise SourceError("file is empty")
        if head in b"{[":
            return read_documents(jsonstream.documents(_text(blocks)))
        data = b"".join(blocks)
        try:
            return _read_protobuf(data)
        except SourceError:
            found = _text_found(data)
            if found is None:
                raise
            raise SourceError(f"not a trace file ({found} found; {TEXT_EXPECTED})") from None


def _text_found(data: bytes) -> str | None:
    """What a file that is not protobuf holds, when it is text: "JSON null", "UTF-16 text"."""
    if data.startswith(_UTF16_BOMS):
        return "UTF-16 text"
    preview = data[:TEXT_PREVIEW_BYTES]
    try:
        text = preview.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(preview) - 3:
            return None  # binary
        text = preview[: exc.start].decode("utf-8-sig")  # a character cut by the preview
    if _CONTROL.search(text):
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError:
        return "text"
    if isinstance(value, str):
        return "a JSON string"
    if value is None or isinstance(value, bool):
        return f"JSON {json.dumps(value)}"
    return "a JSON number" if isinstance(value, int | float) else "JSON"


def _first_content(blocks: Iterator[bytes]) -> tuple[bytes | None, Iterator[bytes]]:
    """The first byte that is not blank (after a UTF-8 byte-order mark), and all the blocks."""
    seen: list[bytes] = []
    for block in blocks:
        seen.append(block)
        text = block[len(UTF8_BOM) :] if len(seen) == 1 and block.startswith(UTF8_BOM) else block
        content = text.lstrip(_BLANK)
        if content:
            return content[:1], chain(seen, blocks)
    return None, iter(seen)


def _text(blocks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 text (a leading byte-order mark dropped) from blocks of bytes."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset = 0
    for block in blocks:
        try:
            yield decoder.decode(block)
        except UnicodeDecodeError as exc:
            raise files.not_utf8(offset + exc.start) from None
        offset += len(block)
    try:
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise files.not_utf8(offset + exc.start) from None


@contextmanager
def _progress(path: Path, raw: io.BufferedReader) -> Iterator[Callable[[int], None]]:
    """A progress bar over the file's bytes, on a terminal and for big files only."""
    try:
        size = os.fstat(raw.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        size = 0
    if size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield lambda _: None
        return
    with click.progressbar(
        length=size, label=f"reading {path.name}", file=sys.stderr, show_eta=True
    ) as bar:
        yield bar.update


def _read_protobuf(data: bytes) -> pa.Table:
    message = otlp.decode_protobuf(data)
    if not message.resource_spans:
        raise SourceError("not a trace file (OTLP protobuf or JSON, or Parquet, expected)")
    return _strict(otlp.convert([message]))
