"""Benchmark: the real `servicemap render` CLI drawing a big map, against plain `dot`.

DESIGN §10: plain `dot` with edge labels takes ~0.25 s for 200 nodes and several seconds for
1000. Target: `render --format svg` end to end under 0.5 s for 200 services and under 2 s for
1000, still readable. Past `COMPACT_NODES` nodes (or `COMPACT_EDGES` edges) render/dot.py
draws the map compact: edge figures move into tooltips (each edge label is a node of its own
to `dot`), node labels keep name and status, and the layout's search is bounded.

1. Generate service graphs of 20, 200 and 1000 services directly as ServiceGraph objects:
   layers of services called left to right (1–3 callees each, some skipping a layer),
   lognormal call counts, a few failing edges, statuses from the built-in rules. Written as
   graph JSON (`servicemap.graph/v1`, what `render --format json` writes).
2. Per size, interleaved, `--runs` times each, each in its own process:
   - servicemap: `.venv/bin/servicemap render graph.json --format svg -o out.svg`, the
     installed command as a user types it: Python start-up, imports, reading the saved
     graph, DOT, `dot -Tsvg`, writing the file;
   - baseline: `dot -Tsvg` on the full DOT (every label, no compact drawing) of the same
     graph, written beforehand.
3. Print the medians, the ratio servicemap/baseline, and whether the targets hold.
4. Reported, not a target: `servicemap --help`, and the 200-service map end to end from an
   OTLP/JSON trace file (3 client/server pairs per edge; the build with DuckDB included).

Usage: `.venv/bin/python bench/render.py [--sizes 20,200,1000] [--runs 3] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import servicemap.render.dot as dot_module
from servicemap.alerts import apply_default_status
from servicemap.graph import Edge, Latency, Node, Pairing, ServiceGraph, Window

TARGETS_S = {200: 0.5, 1000: 2.0}
TRACE_SIZE = 200
PAIRS_PER_EDGE = 3
SERVICEMAP = Path(sys.executable).parent / "servicemap"


def synthetic(services: int, seed: int = 1) -> ServiceGraph:
    rng = random.Random(seed)
    layers = max(3, min(8, services // 25 + 3))
    names = [f"svc-{i:04d}" for i in range(services)]
    layer_of = {name: min(layers - 1, i * layers // services) for i, name in enumerate(names)}
    by_layer: dict[int, list[str]] = {}
    for name, layer in layer_of.items():
        by_layer.setdefault(layer, []).append(name)
    pairs = {("user", name) for name in by_layer[0]}
    for name in names:
        layer = layer_of[name]
        if layer == layers - 1:
            continue
        for _ in range(rng.randint(1, 3)):
            callee_layer = min(layers - 1, layer + rng.choice([1, 1, 1, 2]))
            pairs.add((name, rng.choice(by_layer[callee_layer])))
    edges = []
    incoming: dict[str, tuple[int, int]] = {}
    for source, target in sorted(pairs):
        calls = int(rng.lognormvariate(5, 1.5)) + 1
        errors = int(calls * rng.choice([0, 0, 0, 0, 0.005, 0.02, 0.1]))
        p95 = rng.uniform(5, 900)
        edges.append(Edge(source, target, "direct", calls, errors, Latency(p95 / 4, p95, p95 * 2)))
        requests, failed = incoming.get(target, (0, 0))
        incoming[target] = (requests + calls, failed + errors)
    nodes = [Node("user", "user")]
    for name in names:
        requests, errors = incoming.get(name, (0, 0))
        latency = Latency(2.0, 40.0, 90.0) if requests else None
        nodes.append(Node(name, "service", requests, errors, latency))
    window = Window(1_767_225_600_000_000_000, 1_767_229_200_000_000_000, 10**6, 10**5)
    graph = ServiceGraph(window, Pairing(), tuple(nodes), tuple(edges))
    return apply_default_status(graph)


def full_dot(graph: ServiceGraph) -> str:
    """The DOT of the map drawn in full (every label), whatever its size: the baseline."""
    saved = dot_module.COMPACT_NODES, dot_module.COMPACT_EDGES
    dot_module.COMPACT_NODES = dot_module.COMPACT_EDGES = sys.maxsize
    try:
        return dot_module.render_dot(graph)
    finally:
        dot_module.COMPACT_NODES, dot_module.COMPACT_EDGES = saved


def otlp_traces(graph: ServiceGraph) -> dict[str, Any]:
    """An OTLP/JSON document whose map is `graph`'s shape: per edge, PAIRS_PER_EDGE traces of
    one CLIENT span and its SERVER child (a root SERVER span for an edge from the user)."""
    spans: dict[str, list[dict[str, Any]]] = {}
    start = graph.window.start_ns or 0
    number = 0
    for edge in sorted(graph.edges, key=lambda e: (e.source, e.target)):
        for k in range(PAIRS_PER_EDGE):
            number += 1
            trace, begin = f"{number:032x}", start + number * 1_000_000
            failed = {"code": 2} if k == 0 and edge.errors else {}
            server: dict[str, Any] = {
                "traceId": trace,
                "spanId": f"{2 * number + 1:016x}",
                "name": "handle",
                "kind": 2,
                "startTimeUnixNano": str(begin + 5),
                "endTimeUnixNano": str(begin + 900_000),
                "status": failed,
            }
            if edge.source != "user":
                client = {
                    "traceId": trace,
                    "spanId": f"{2 * number:016x}",
                    "name": "call",
                    "kind": 3,
                    "startTimeUnixNano": str(begin),
                    "endTimeUnixNano": str(begin + 910_000),
                    "status": failed,
                }
                spans.setdefault(edge.source, []).append(client)
                server["parentSpanId"] = client["spanId"]
            spans.setdefault(edge.target, []).append(server)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": name}}]
                },
                "scopeSpans": [{"spans": items}],
            }
            for name, items in sorted(spans.items())
        ]
    }


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_of(runs: int, command: list[str]) -> float:
    return statistics.median(timed(command) for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,200,1000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the graphs and pictures in this directory")
    args = parser.parse_args()
    dot = shutil.which("dot")
    if dot is None:
        print("bench/render.py needs graphviz's dot", file=sys.stderr)
        return 1
    if not SERVICEMAP.exists():
        print(f"bench/render.py needs the installed command {SERVICEMAP}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="servicemap-bench-render-"))
    print(
        f"command: {SERVICEMAP} render graph.json --format svg -o out.svg (median of {args.runs})"
    )
    print(
        f"{'services':>8} {'edges':>6} {'compact':>7} {'servicemap s':>12} {'plain dot s':>11}"
        f" {'ratio':>6}  target"
    )
    missed = False
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            graph = synthetic(size)
            source = work / f"graph-{size}.json"
            source.write_text(graph.dumps())
            full = work / f"full-{size}.dot"
            full.write_text(full_dot(graph))
            out = work / f"map-{size}.svg"
            render_times, dot_times = [], []
            for _ in range(args.runs):
                render_times.append(
                    timed(
                        [str(SERVICEMAP), "render", str(source), "--format", "svg", "-o", str(out)]
                    )
                )
                dot_times.append(timed([dot, "-Tsvg", str(full), "-o", str(work / "full.svg")]))
            render_s, dot_s = statistics.median(render_times), statistics.median(dot_times)
            target = TARGETS_S.get(size)
            verdict = ""
            if target is not None:
                met = render_s < target
                missed = missed or not met
                verdict = f"< {target:g} s {'met' if met else 'MISSED'}"
            print(
                f"{size:>8} {len(graph.edges):>6} {dot_module.is_compact(graph)!s:>7} "
                f"{render_s:>12.3f} {dot_s:>11.3f} {render_s / dot_s:>6.2f}  {verdict}"
            )
        help_s = median_of(args.runs, [str(SERVICEMAP), "--help"])
        print(f"servicemap --help: {help_s:.3f} s")
        traces = work / f"traces-{TRACE_SIZE}.otlp.json"
        traces.write_text(json.dumps(otlp_traces(synthetic(TRACE_SIZE))))
        svg = work / f"traces-{TRACE_SIZE}.svg"
        build_s = median_of(
            args.runs, [str(SERVICEMAP), "render", str(traces), "--format", "svg", "-o", str(svg)]
        )
        spans = sum(
            len(scope["spans"])
            for resource in json.loads(traces.read_text())["resourceSpans"]
            for scope in resource["scopeSpans"]
        )
        print(
            f"end to end from OTLP/JSON traces ({TRACE_SIZE} services, {spans} spans, the build "
            f"included; reported, not a target): {build_s:.3f} s"
        )
        print("targets: " + ("MISSED" if missed else "all met"))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in work.iterdir():
                shutil.copy(path, args.keep / path.name)
    finally:
        shutil.rmtree(work)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
