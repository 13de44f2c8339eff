"""Reading a file's raw bytes: opened with one-line errors, inflated when gzip-compressed.

Shared by the trace readers (`sources.detect`) and saved graphs (`graph_file`); it imports
neither pyarrow nor DuckDB, so re-drawing a saved graph stays light.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from servicemap.errors import SourceError

GZIP_MAGIC = b"\x1f\x8b"
READ_BLOCK = 1 << 20


def open_file(path: Path) -> io.BufferedReader:
    """The file opened for reading; a missing or unreadable one is a SourceError naming it."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file or directory") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory") from None
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from None


def inflated(raw: io.BufferedReader) -> io.BufferedIOBase:
    """The file's content: `raw` itself, or a gzip stream over it when it is compressed."""
    if raw.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def blocks(
    stream: io.BufferedIOBase,
    raw: io.BufferedReader,
    advance: Callable[[int], None] = lambda _: None,
) -> Iterator[bytes]:
    """The (inflated) bytes a block at a time, reporting progress in bytes of the file.

    A read that fails is a SourceError (without the file's name: the caller adds it).
    """
    done = 0
    while True:
        try:
            block = stream.read(READ_BLOCK)
        except (OSError, EOFError, zlib.error) as exc:
            if stream is raw:
                raise SourceError(f"cannot read: {exc}") from None
            raise SourceError(f"broken gzip data ({exc})") from None
        if not block:
            return
        position = raw.tell()
        advance(position - done)
        done = position
        yield block


def read_bytes(path: Path) -> bytes:
    """The file's bytes, inflated when gzip-compressed; every error names the file."""
    with open_file(path) as raw:
        try:
            return b"".join(blocks(inflated(raw), raw))
        except SourceError as exc:
            raise SourceError(f"{path}: {exc}") from None


def invalid_json(line: int, column: int, message: str) -> SourceError:
    """The one wording of malformed JSON, wherever it is parsed."""
    return SourceError(f"invalid JSON at line {line} column {column}: {message}")


def not_utf8(byte: int) -> SourceError:
    return SourceError(f"not UTF-8 JSON (byte {byte})")
