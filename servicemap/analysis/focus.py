"""Views of a big map: one service's neighbourhood, quiet edges hidden, namespaces as groups.

Every function takes a ServiceGraph and returns a new one (or a grouping of its nodes); none
of them changes a node's or an edge's figures, only which of them are shown.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Mapping
from dataclasses import replace

from servicemap.errors import UsageError
from servicemap.graph import ServiceGraph

GROUP_BY_KEYS = ("namespace",)


def _within(start: str, neighbours: Mapping[str, list[str]], depth: int) -> set[str]:
    """Nodes reachable from `start` in at most `depth` hops (breadth first)."""
    seen, queue = {start: 0}, deque([start])
    while queue:
        node = queue.popleft()
        if seen[node] == depth:
            continue
        for other in neighbours.get(node, ()):
            if other not in seen:
                seen[other] = seen[node] + 1
                queue.append(other)
    return set(seen)


def keep_nodes(graph: ServiceGraph, keep: set[str]) -> ServiceGraph:
    """The subgraph of `keep`: those nodes and every edge between two of them."""
    return replace(
        graph,
        nodes=tuple(n for n in graph.nodes if n.id in keep),
        edges=tuple(e for e in graph.edges if e.source in keep and e.target in keep),
    )


def unknown_service(graph: ServiceGraph, service: str) -> UsageError:
    """A one-line error naming the closest node ids, for a --focus that matches none."""
    ids = sorted(n.id for n in graph.nodes)
    close = difflib.get_close_matches(service, ids, n=5, cutoff=0.5)
    if close:
        hint = "did you mean " + ", ".join(close) + "?"
    elif ids:
        hint = f"the map has {len(ids)} nodes, e.g. " + ", ".join(ids[:5])
    else:
        hint = "the map is empty"
    return UsageError(f"--focus: no service {service!r} in the map; {hint}")


def focus(graph: ServiceGraph, service: str, depth: int) -> ServiceGraph:
    """`service`, what calls it within `depth` hops (upstream) and what it calls (downstream).

    Hops follow the direction of the calls: a sibling (another callee of the same caller) is
    not a neighbour. Edges between any two kept nodes stay.
    """
    if depth < 0:
        raise UsageError("--depth must be 0 or more")
    if not any(n.id == service for n in graph.nodes):
        raise unknown_service(graph, service)
    callees: dict[str, list[str]] = {}
    callers: dict[str, list[str]] = {}
    for edge in graph.edges:
        callees.setdefault(edge.source, []).append(edge.target)
        callers.setdefault(edge.target, []).append(edge.source)
    keep = _within(service, callees, depth) | _within(service, callers, depth)
    return keep_nodes(graph, keep)


def hide_quiet_edges(graph: ServiceGraph, min_calls: int, keep: str | None = None) -> ServiceGraph:
    """Drop edges with fewer than `min_calls` calls, and the nodes only they connected.

    A node that had no edge to begin with stays, and so does `keep` (the focused service).
    """
    if min_calls <= 1:
        return graph
    edges = tuple(e for e in graph.edges if e.calls >= min_calls)
    had_edges = {e.source for e in graph.edges} | {e.target for e in graph.edges}
    has_edges = {e.source for e in edges} | {e.target for e in edges}
    nodes = tuple(
        n for n in graph.nodes if n.id in has_edges or n.id not in had_edges or n.id == keep
    )
    return replace(graph, nodes=nodes, edges=edges)


def groups(graph: ServiceGraph, key: str | None) -> dict[str, list[str]]:
    """Node ids by group (`key` is `namespace`), sorted; ungrouped nodes are left out."""
    if key is None:
        return {}
    if key not in GROUP_BY_KEYS:
        raise UsageError(f"--group-by: unknown key {key!r}; one of {', '.join(GROUP_BY_KEYS)}")
    found: dict[str, list[str]] = {}
    for node in sorted(graph.nodes, key=lambda n: n.id):
        if node.namespace:
            found.setdefault(node.namespace, []).append(node.id)
    return dict(sorted(found.items()))


def narrow(
    graph: ServiceGraph, focus_on: str | None, depth: int, min_calls: int
) -> tuple[ServiceGraph, str | None]:
    """The view the command line asked for, and a few words naming it for the picture's title."""
    words = []
    if focus_on is not None:
        graph = focus(graph, focus_on, depth)
        words.append(f"focus {focus_on} ±{depth} hop" + ("" if depth == 1 else "s"))
    if min_calls > 1:
        graph = hide_quiet_edges(graph, min_calls, keep=focus_on)
        words.append(f"edges with ≥ {min_calls} calls")
    return graph, (", ".join(words) or None)
