"""A saved map as a source: graph JSON `servicemap.graph/v1`, what `render --format json` writes.

`servicemap render map.json --format svg` re-draws a saved map without the build: no spans
are read, and neither DuckDB nor pyarrow is imported. The map keeps the statuses it was saved
with unless `--rules` or `--alerts` are given; then it is judged again from its own figures
(thresholds and Alertmanager alerts; SLO burn rates need the spans, so a rules file with
`slos` is refused). A graph is drawn alone: its figures (exact percentiles) cannot be merged
with spans or with another graph.

A file is a graph when its JSON object's `schema` is `servicemap.graph/v1`; the key is looked
for in the first and last 64 KiB (graph JSON writes it first; a key-sorting tool moves it to
the end), then the whole document is checked.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servicemap import files
from servicemap.errors import SourceError, UsageError
from servicemap.graph import GRAPH_SCHEMA, ServiceGraph

PEEK = 64 * 1024
_MARK = re.compile(rb'"schema"\s*:\s*"' + re.escape(GRAPH_SCHEMA.encode()) + rb'"')


def _ends(path: Path) -> bytes:
    """The first and last PEEK bytes (inflated when gzip-compressed: then the first only)."""
    try:
        with files.open_file(path) as raw:
            content = files.inflated(raw)
            head = content.read(PEEK)
            if content is not raw:
                return head
            size = raw.seek(0, os.SEEK_END)
            if size <= PEEK:
                return head
            raw.seek(max(PEEK, size - PEEK))
            return head + b"\n" + raw.read()
    except (SourceError, OSError, EOFError, zlib.error):
        return b""  # the trace readers report what is wrong with it


def looks_like_graph(path: Path) -> bool:
    if not path.is_file():
        return False
    ends = _ends(path)
    return ends.lstrip()[:1] == b"{" and _MARK.search(ends) is not None


def find_graph(sources: Sequence[str | Path]) -> Path | None:
    """The saved graph among the sources, if one is; a graph mixed with others is an error."""
    graphs = [Path(s) for s in sources if looks_like_graph(Path(s))]
    if not graphs:
        return None
    if len(sources) > 1:
        raise UsageError(
            f"{graphs[0]} is a saved graph JSON ({GRAPH_SCHEMA}): render it alone; its figures "
            "cannot be merged with trace sources or another graph"
        )
    return graphs[0]


def _document(path: Path) -> Any:
    data = files.read_bytes(path)
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        error = files.invalid_json(exc.lineno, exc.colno, exc.msg)
    except UnicodeDecodeError as exc:
        error = files.not_utf8(exc.start)
    raise SourceError(f"{path}: {error}")


def read_graph(path: Path) -> ServiceGraph | None:
    """The saved graph, or None when the file is not one after all (a trace file that only
    mentions the schema); a graph document with a broken shape is a one-line error."""
    data = _document(path)
    if not isinstance(data, dict) or data.get("schema") != GRAPH_SCHEMA:
        return None
    try:
        return ServiceGraph.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise SourceError(f"{path}: not a valid {GRAPH_SCHEMA} document: {detail}") from None


def rejudge(graph: ServiceGraph, rules_file: str | None, alerts_file: str | None) -> ServiceGraph:
    """Status and reasons again from the graph's own figures, by these rules and alerts."""
    from servicemap.alertmanager import load_alerts
    from servicemap.rules import DEFAULT_RULES, load_rules

    rules = load_rules(rules_file) if rules_file is not None else DEFAULT_RULES
    if rules.slos:
        raise UsageError(
            f"--rules {rules_file}: SLO burn rates need the spans, and a saved graph JSON has "
            "none; render the traces instead, or use rules without `slos`"
        )
    alerts = load_alerts(alerts_file) if alerts_file is not None else ()
    # alerts → slo imports DuckDB and pyarrow: only a re-judged graph pays for them.
    from servicemap.alerts import apply_status

    return apply_status(graph, rules, None, alerts)


def saved_graph(
    path: Path,
    windowed: bool,
    rules_file: str | None,
    alerts_file: str | None,
) -> ServiceGraph | None:
    """What `render` draws from a saved graph: as saved, or judged again when rules or alerts
    are given. None when the file turns out not to be a graph."""
    graph = read_graph(path)
    if graph is None:
        return None
    if windowed:
        raise UsageError(
            f"--since/--until: {path} is a saved graph JSON whose window is fixed; "
            "narrow the traces it was made from instead"
        )
    if rules_file is None and alerts_file is None:
        return graph
    return rejudge(graph, rules_file, alerts_file)
