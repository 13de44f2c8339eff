"""Where `servicemap render` spends its time: each statement of the build, timed in-process.

    .venv/bin/python bench/profile_build.py [--data bench/data] [--memory-limit 350MB]

Run bench/build.py first to generate the data. Prints wall and CPU seconds per step and the
peak RSS so far; use it to decide what to optimise next, then prove it with bench/build.py.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from servicemap import build, pairing
from servicemap.sources import load_sources
from servicemap.timeparse import TimeRange

DEFAULT_DATA = Path(__file__).resolve().parent / "data"


def _report(name: str, wall: float, cpu: float) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:24s} {wall:7.2f} s wall {cpu:7.2f} s cpu   peak RSS {peak:6.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--memory-limit", default=build.DUCKDB_MEMORY_LIMIT)
    args = parser.parse_args(argv)
    con = build.connect(args.memory_limit)
    build.register_spans(con, load_sources([args.data]), TimeRange())
    con.execute(pairing.SLIM_SPANS)
    wall, cpu = time.perf_counter(), time.process_time()
    row = con.execute(pairing.REPEATED_IDS).fetchone()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    repeated = bool(row and row[0])
    _report("repeated ids", wall, cpu)
    total_wall, total_cpu = wall, cpu
    steps = [
        (
            "dedup" if repeated else "spans view",
            pairing.DEDUPLICATED_SPANS if repeated else pairing.PLAIN_SPANS,
        ),
        ("pairs", pairing.PAIRS),
        ("consumer_destinations", pairing.CONSUMER_DESTINATIONS),
        ("raw_calls", pairing.RAW_CALLS),
        ("quality", pairing.QUALITY),
        ("span_stats", pairing.SPAN_STATS),
        ("call_stats", pairing.CALL_STATS),
    ]
    for name, sql in steps:
        wall, cpu = time.perf_counter(), time.process_time()
        con.execute(sql).fetchall()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        _report(name, wall, cpu)
    print(
        f"{'total':24s} {total_wall:7.2f} s wall {total_cpu:7.2f} s cpu (repeated ids: {repeated})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
