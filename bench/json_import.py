"""Benchmark: OTLP/JSON → span table, `otlp_json` against the ParseDict path it replaces.

Both paths are measured in the same run on the same documents:
- baseline: what `servicemap/sources/detect.py` did before, `otlp.parse_json_document`
  (hex ids rewritten, `json_format.ParseDict` into `TracesData`) per document, then
  `otlp.convert` (each message serialized again, then the columnar converter);
- new: `otlp_json.convert_documents` (the JSON objects written straight to protobuf bytes,
  then the same columnar converter).

1. The input: the demo fixture copied `--copies` times into one JSON-lines file (60 copies:
   ~103k spans), each copy with its own trace and span ids.
2. Per round, interleaved, each path reads the file as `detect.read_file` does: documents
   streamed by `jsonstream` one at a time (the same for both; its time is clocked apart) and
   converted. Then `detect.read_file` itself (the new path) end to end. The tables must be
   equal.
3. Print spans/s of both and the ratio (medians over `--rounds`): of the conversion alone
   (decoded documents → span table) and of the file → span table, JSON decoding included.

Usage: `.venv/bin/python bench/json_import.py [--copies 60] [--rounds 3] [--keep FILE]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from servicemap.sources import detect, jsonstream, otlp, otlp_json

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo" / "traces.otlp.json"
_END = object()


def with_copy_ids(document: Any, copy: int) -> Any:
    """The document with every id's first four hex digits replaced by the copy's number."""
    prefix = f"{copy:04x}"

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = prefix + value[4:] if value else value
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(document)
    return document


def write_input(path: Path, copies: int) -> None:
    text = DEMO.read_text()
    with path.open("w") as out:
        for copy in range(copies):
            out.write(json.dumps(with_copy_ids(json.loads(text), copy), separators=(",", ":")))
            out.write("\n")


class Documents:
    """The file's documents, streamed as the reader streams them, with the decoding clocked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds = 0.0

    def __iter__(self) -> Iterator[Any]:
        documents = jsonstream.documents(self._chunks())
        while True:
            start = time.perf_counter()
            document = next(documents, _END)
            self.seconds += time.perf_counter() - start
            if document is _END:
                return
            yield document

    def _chunks(self) -> Iterator[str]:
        with self.path.open(encoding="utf-8") as text:
            while chunk := text.read(1 << 20):
                yield chunk


def run(path: Path, convert: Callable[[Documents], otlp.Conversion]) -> tuple[float, float, Any]:
    """(JSON decoding seconds, conversion seconds, conversion) of one path over the file."""
    documents = Documents(path)
    start = time.perf_counter()
    conversion = convert(documents)
    total = time.perf_counter() - start
    return documents.seconds, total - documents.seconds, conversion


def baseline(documents: Documents) -> otlp.Conversion:
    """`detect._read_otlp_documents` before `otlp_json`."""
    return otlp.convert(otlp.parse_json_document(document) for document in documents)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the input file here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "traces.otlp.jsonl"
        write_input(path, args.copies)
        size_mb = path.stat().st_size / 1e6
        decode_s, old_s, new_s, read_s = [], [], [], []
        spans = 0
        for round_number in range(args.rounds):
            decode, seconds, new = run(path, otlp_json.convert_documents)
            decode_s.append(decode)
            new_s.append(seconds)
            decode, seconds, old = run(path, baseline)
            decode_s.append(decode)
            old_s.append(seconds)
            if not (new.table.equals(old.table) and new.rejected == old.rejected):
                print("the two paths disagree", file=sys.stderr)
                return 1
            spans = new.table.num_rows
            start = time.perf_counter()
            assert detect.read_file(path).num_rows == spans
            read_s.append(time.perf_counter() - start)
            print(
                f"round {round_number + 1}: otlp_json {new_s[-1]:.2f} s, baseline "
                f"{old_s[-1]:.2f} s (+ JSON decoding {decode_s[-2]:.2f} s, {decode_s[-1]:.2f} s); "
                f"read_file {read_s[-1]:.2f} s",
                flush=True,
            )

    decode, old, new, read = (statistics.median(s) for s in (decode_s, old_s, new_s, read_s))
    print(f"\n{spans} spans in {args.copies} documents, {size_mb:.0f} MB of OTLP/JSON")
    print(f"{'':36}{'baseline':>14}{'otlp_json':>14}{'ratio':>8}")
    rows = [
        ("decoded documents → span table", old, new),
        ("file → span table (JSON decoding)", decode + old, decode + new),
    ]
    for label, old_seconds, new_seconds in rows:
        print(
            f"{label:36}{spans / old_seconds:>10,.0f} sp/s{spans / new_seconds:>10,.0f} sp/s"
            f"{old_seconds / new_seconds:>7.1f}x"
        )
    print(f"{'detect.read_file (new path)':36}{'':14}{spans / read:>10,.0f} sp/s")
    print(f"JSON decoding alone (jsonstream, both paths): {spans / decode:,.0f} sp/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
