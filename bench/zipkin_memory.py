"""Benchmark: peak memory of `servicemap render` on Zipkin files full of span fragments.

A Zipkin reader must merge the records of one span (fragments, late tags, retries) and split
shared client/server ids. This measures what that costs in memory against what it produces:

1. Generate Zipkin v2 span arrays of `--spans` sizes (default 250 000 and 1 000 000 records):
   traces of five records over 40 services — a root SERVER, a CLIENT and the shared SERVER half
   of its id in another service, a database CLIENT, and every `--fragment-every`-th trace
   (default every one) a kind-less fragment of the shared id (late tags, no timestamp), else
   an INTERNAL span. 2 % of the calls fail.
2. For each file, in fresh child processes: the Arrow span table's size (`read_file`, then
   `Table.nbytes`), and `servicemap render FILE --format json`'s wall time and peak RSS (that
   child's own `ru_maxrss`, through a small launcher: see LAUNCHER).
3. Print one line per size: records, file MB, table MB, peak RSS MB, RSS / table, wall s.

Usage: `.venv/bin/python bench/zipkin_memory.py [--spans 250000 1000000] [--fragment-every 1]
[--keep DIR]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = [f"svc{i}" for i in range(40)]
BASE_MICROS = 1_700_000_000_000_000

# The command runs in a child of this small launcher, so the peak RSS that wait4 reports is
# the command's own, not inherited from a bigger parent.
LAUNCHER = """
import os, sys, time
began = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"{os.waitstatus_to_exitcode(status)} {time.perf_counter() - began} "
                 f"{usage.ru_maxrss}\\n")
"""

TABLE_SIZE = """
import sys
from pathlib import Path
from servicemap.sources.detect import read_file
table = read_file(Path(sys.argv[1]))
print(table.num_rows, table.nbytes)
"""


def _record(**fields: object) -> str:
    return json.dumps(fields, separators=(",", ":"))


def _trace(number: int, rng: random.Random, fragment: bool) -> list[str]:
    trace_id = f"{number:032x}"
    root, call, query, last = (f"{number * 8 + k:016x}" for k in (1, 2, 3, 4))
    caller, callee = rng.sample(SERVICES, 2)
    start = BASE_MICROS + number * 1000
    failed = {"error": "500"} if number % 50 == 0 else {}
    local = {"serviceName": caller}
    remote = {"serviceName": callee}
    records = [
        _record(
            traceId=trace_id,
            id=root,
            kind="SERVER",
            name="get /",
            timestamp=start,
            duration=900,
            localEndpoint=local,
            tags={"http.status_code": "200"},
        ),
        _record(
            traceId=trace_id,
            parentId=root,
            id=call,
            kind="CLIENT",
            name="call",
            timestamp=start + 10,
            duration=500,
            localEndpoint=local,
            remoteEndpoint=remote,
            tags=failed,
        ),
        _record(
            traceId=trace_id,
            parentId=root,
            id=call,
            kind="SERVER",
            shared=True,
            name="call",
            timestamp=start + 20,
            duration=400,
            localEndpoint=remote,
        ),
        _record(
            traceId=trace_id,
            parentId=call,
            id=query,
            kind="CLIENT",
            name="select",
            timestamp=start + 30,
            duration=100,
            localEndpoint=remote,
            remoteEndpoint={"serviceName": "pg"},
            tags={"db.system": "postgresql", "db.statement": "select * from t where id=?"},
        ),
    ]
    if fragment:
        records.append(
            _record(traceId=trace_id, id=call, name="", localEndpoint=remote, tags={"late": "1"})
        )
    else:
        records.append(
            _record(
                traceId=trace_id,
                parentId=query,
                id=last,
                name="local",
                timestamp=start + 35,
                duration=50,
                localEndpoint=remote,
            )
        )
    return records


def generate(path: Path, spans: int, fragment_every: int) -> None:
    """A Zipkin v2 span array of `spans` records (see the module docstring)."""
    rng = random.Random(1)
    with path.open("w") as out:
        out.write("[\n")
        written, number = 0, 0
        while written < spans:
            number += 1
            for record in _trace(number, rng, number % fragment_every == 0):
                if written == spans:
                    break
                out.write((",\n" if written else "") + record)
                written += 1
        out.write("\n]\n")


def table_size(path: Path) -> tuple[int, int]:
    """(rows, bytes) of the span table `read_file` makes of the file, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", TABLE_SIZE, str(path)], capture_output=True, text=True, check=True
    )
    rows, size = done.stdout.split()
    return int(rows), int(size)


def render_peak(path: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of `servicemap render FILE --format json`."""
    command = [sys.executable, "-m", "servicemap", "render", str(path), "--format", "json"]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, *command], stderr=errors)
        process.wait()
        errors.seek(0)
        lines = errors.read().decode(errors="replace").strip().splitlines()
    code, wall, max_rss_kib = lines[-1].split()
    if process.returncode != 0 or int(code) != 0:
        sys.exit("render failed:\n" + "\n".join(lines))
    return float(wall), int(max_rss_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--fragment-every", type=int, default=1, metavar="N")
    parser.add_argument("--keep", type=Path, help="keep the generated files in this directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for spans in args.spans:
            path = folder / f"zipkin_{spans}_f{args.fragment_every}.json"
            if not path.exists():
                began = time.perf_counter()
                generate(path, spans, args.fragment_every)
                print(f"generated {path.name} in {time.perf_counter() - began:.0f} s", flush=True)
            rows, size = table_size(path)
            wall, rss_mb = render_peak(path)
            table_mb = size / 2**20
            print(
                f"records={spans} file={os.path.getsize(path) / 2**20:.0f}MB rows={rows} "
                f"table={table_mb:.0f}MB peak_rss={rss_mb:.0f}MB "
                f"rss/table={rss_mb / table_mb:.1f} wall={wall:.1f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
