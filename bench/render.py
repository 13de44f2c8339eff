"""Benchmark: the SVG of a big map, against plain `dot` on the same map drawn in full.

DESIGN §10: plain `dot` with edge labels takes ~0.25 s for 200 nodes and several seconds for
1000. Target: `render --format svg` end to end under 0.5 s for 200 services and under 2 s for
1000, still readable. Past `COMPACT_NODES` nodes (or `COMPACT_EDGES` edges) render/dot.py
draws the map compact: edge figures move into tooltips (each edge label is a node of its own
to `dot`), node labels keep name and status, and the layout's search is bounded.

1. Generate service graphs of 20, 200 and 1000 services directly as ServiceGraph objects:
   layers of services called left to right (1–3 callees each, some skipping a layer),
   lognormal call counts, a few failing edges, statuses from the built-in rules. Written as
   graph JSON.
2. Per size, interleaved, `--runs` times each, in its own process:
   - render: `python -c` that reads the graph JSON and calls what `render --format svg`
     calls after the build (`render_image`: DOT text, compact past the threshold, then
     `dot -Tsvg`) — Python start-up, imports, DOT and layout, end to end. The build from
     traces (DuckDB, pyarrow) is bench/build.py's subject and is not in this figure;
   - baseline: `dot -Tsvg` on the full DOT (every label, no compact drawing) of the same
     graph, written beforehand.
3. Print the medians, the ratio render/baseline, and whether the target holds.

Usage: `.venv/bin/python bench/render.py [--sizes 20,200,1000] [--runs 3] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import servicemap.render.dot as dot_module
from servicemap.alerts import apply_default_status
from servicemap.graph import Edge, Latency, Node, Pairing, ServiceGraph, Window

TARGETS_S = {200: 0.5, 1000: 2.0}
RENDER = (
    "import json, sys; from pathlib import Path;"
    "from servicemap.graph import ServiceGraph; from servicemap.render.image import render_image;"
    "graph = ServiceGraph.from_json(json.loads(Path(sys.argv[1]).read_text()));"
    "Path(sys.argv[2]).write_bytes(render_image(graph, 'svg'))"
)


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


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


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
    work = Path(tempfile.mkdtemp(prefix="servicemap-bench-render-"))
    print(
        f"{'services':>8} {'edges':>6} {'compact':>7} {'render s':>9} {'plain dot s':>11}"
        f" {'ratio':>6}  target"
    )
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
                render_times.append(timed([sys.executable, "-c", RENDER, str(source), str(out)]))
                dot_times.append(timed([dot, "-Tsvg", str(full), "-o", str(work / "full.svg")]))
            render_s, dot_s = statistics.median(render_times), statistics.median(dot_times)
            target = TARGETS_S.get(size)
            verdict = (
                ""
                if target is None
                else (f"< {target:g} s {'met' if render_s < target else 'MISSED'}")
            )
            print(
                f"{size:>8} {len(graph.edges):>6} {dot_module.is_compact(graph)!s:>7} "
                f"{render_s:>9.3f} {dot_s:>11.3f} {render_s / dot_s:>6.2f}  {verdict}"
            )
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in work.iterdir():
                shutil.copy(path, args.keep / path.name)
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
