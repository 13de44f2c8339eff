"""Sources, rules and alerts in, a graph with its alert status out: what `render` runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from servicemap.alertmanager import load_alerts
from servicemap.alerts import apply_status
from servicemap.build import build_graph
from servicemap.graph import ServiceGraph
from servicemap.rules import DEFAULT_RULES, load_rules
from servicemap.slo import SloMeter
from servicemap.sources import load_sources
from servicemap.timeparse import TimeRange


def graph_with_status(
    paths: Sequence[str | Path],
    window: TimeRange | None = None,
    rules_file: str | Path | None = None,
    alerts_file: str | Path | None = None,
) -> ServiceGraph:
    """Build the graph of the sources and judge it; the rules and alerts are read first, so a
    bad file fails before a long read."""
    rules = load_rules(rules_file) if rules_file is not None else DEFAULT_RULES
    alerts = load_alerts(alerts_file) if alerts_file is not None else ()
    window = window or TimeRange()
    sources = load_sources(paths)
    meter = SloMeter(rules.slos)
    graph = build_graph(sources, window, after_pairing=meter if rules.slos else None)
    return apply_status(graph, rules, meter.inputs if rules.slos else None, alerts)
