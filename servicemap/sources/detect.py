"""Which reader a file needs, decided from its content (file names can be anything)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from servicemap.errors import InvalidSpanError, ServicemapError, SourceError
from servicemap.schema import SPAN_SCHEMA
from servicemap.sources import otlp

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"

JsonReader = Callable[[list[Any]], pa.Table]
# (does this JSON document look like mine?, read a list of such documents) — first match wins.
JSON_READERS: list[tuple[Callable[[Any], bool], JsonReader]] = []


def _read_otlp_documents(documents: list[Any]) -> pa.Table:
    return _strict(otlp.convert(otlp.parse_json_document(doc) for doc in documents))


JSON_READERS.append((otlp.is_otlp_json, _read_otlp_documents))


def _strict(conversion: otlp.Conversion) -> pa.Table:
    """Recorded files are not partial-success: one bad span makes the file unreadable."""
    if conversion.rejected:
        raise InvalidSpanError(
            f"{conversion.rejected} invalid span(s), first: {conversion.errors[0]}"
        )
    return conversion.table


def read_bytes(path: Path) -> bytes:
    """The file's bytes, inflated when gzip-compressed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file or directory") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory") from None
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from None
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{path}: broken gzip data ({exc})") from None
    return data


def _json_documents(text: str) -> Iterator[Any]:
    """One JSON document, or one per line (newline-delimited, as the OTLP file exporter writes)."""
    try:
        yield json.loads(text)
        return
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise json.JSONDecodeError(exc.msg, exc.doc, exc.pos) from None
            except Exception:
                raise SourceError(f"line {number}: invalid JSON") from None


def read_json(text: str) -> pa.Table:
    """Every document of a JSON or JSON-lines text, each sent to the reader its shape needs."""
    documents = list(_json_documents(text))
    if not documents:
        raise SourceError("no JSON document")
    for looks_like, reader in JSON_READERS:
        if all(looks_like(doc) for doc in documents):
            return reader(documents)
    raise SourceError("JSON is not a known trace format (OTLP/JSON expected)")


def read_file(path: Path) -> pa.Table:
    """A recorded trace file → span table, whatever its format."""
    data = read_bytes(path)
    if not data.strip():
        raise SourceError(f"{path}: file is empty")
    try:
        if data.startswith(PARQUET_MAGIC):
            return pq.read_table(path, schema=SPAN_SCHEMA)
        head = data.lstrip()[:1]
        if head in (b"{", b"["):
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise SourceError("not UTF-8 JSON") from None
            return read_json(text)
        return _read_protobuf(data)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ServicemapError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise type(exc)(f"{path}: {exc}") from None


def _read_protobuf(data: bytes) -> pa.Table:
    message = otlp.decode_protobuf(data)
    if not message.resource_spans:
        raise SourceError("not a trace file (OTLP protobuf or JSON, or Parquet, expected)")
    return _strict(otlp.convert([message]))
