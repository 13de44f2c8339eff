"""`servicemap diff` and `servicemap investigate`: click commands over the analysis library.

Registered lazily by servicemap/cli.py (LazyGroup), so `render` never imports them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from servicemap.alertmanager import load_alerts
from servicemap.alerts import apply_status
from servicemap.analysis import investigate as investigation
from servicemap.analysis import pictures, report
from servicemap.analysis.diff import Diff, Side, diff_sides
from servicemap.analysis.investigate import Investigation
from servicemap.analysis.prepared import intersect
from servicemap.analysis.release import parse_release, release_sides
from servicemap.cli_options import window_options
from servicemap.errors import UsageError
from servicemap.graph import GRAPH_SCHEMA, ServiceGraph
from servicemap.graph_file import looks_like_graph
from servicemap.output import write_output
from servicemap.rules import DEFAULT_RULES, load_rules
from servicemap.slo import measure_sources
from servicemap.sources import SpanSources, load_sources
from servicemap.timeparse import TimeRange, parse_time_ns

F = TypeVar("F", bound=Callable[..., Any])

FORMAT_HELP = (
    "Output format; default text when standard output is a terminal, json otherwise "
    "(svg and html draw the map)."
)


def _default_format(output_format: str | None, output: str) -> str:
    if output_format is not None:
        return output_format
    return "text" if output == "-" and sys.stdout.isatty() else "json"


def parse_span(option: str, text: str) -> TimeRange:
    """`T1..T2` (either side may be left out) → a window [T1, T2)."""
    start, dots, end = text.partition("..")
    if not dots:
        raise UsageError(f"{option}: expected T1..T2, got {text!r}")
    window = TimeRange(
        parse_time_ns(start) if start.strip() else None,
        parse_time_ns(end) if end.strip() else None,
    )
    since_ns, until_ns = window.since_ns, window.until_ns
    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        raise UsageError(f"{option}: {start} is not before {end}")
    return window


class _Judge:
    """Alert status for the pictures: the rules and alerts are read before any span, so a bad
    file fails first; SLO events are counted only when a picture is drawn."""

    def __init__(self, rules_file: str | None, alerts_file: str | None) -> None:
        self.rules = load_rules(rules_file) if rules_file is not None else DEFAULT_RULES
        self.alerts = load_alerts(alerts_file) if alerts_file is not None else ()

    def of(self, sources: SpanSources, window: TimeRange) -> report.Judge:
        def judge(graph: ServiceGraph) -> ServiceGraph:
            inputs = measure_sources(sources, window, self.rules.slos)
            return apply_status(graph, self.rules, inputs, self.alerts)

        return judge


def _emit(
    output_format: str,
    output: str,
    as_json: dict[str, Any],
    text: str,
    dot: Callable[[], str],
    title: str,
) -> None:
    """One report in the asked format: JSON, the terminal text, the map, or both on a page."""
    if output_format == "json":
        write_output(report.dumps(as_json), output)
    elif output_format == "text":
        write_output(text, output)
    elif output_format == "svg":
        write_output(report.layout_svg(dot()), output)
    else:
        write_output(report.html_page(title, text, dot()), output)


def _emit_diff(diff: Diff, output_format: str, output: str, judge: report.Judge) -> None:
    title = f"servicemap diff: {diff.before_label} → {diff.after_label}"
    text = report.diff_text(diff)
    dot = functools.partial(pictures.diff_dot, diff, judge)
    _emit(output_format, output, diff.to_json(), text, dot, title)


def _emit_investigation(
    found: Investigation, output_format: str, output: str, judge: report.Judge
) -> None:
    title = f"servicemap investigate {found.service}"
    text = report.investigate_text(found)
    dot = functools.partial(pictures.investigate_dot, found, judge)
    _emit(output_format, output, found.to_json(), text, dot, title)


def _common(function: F) -> F:
    """The options diff and investigate share with render."""
    options = [
        click.option(
            "--format",
            "output_format",
            type=click.Choice(report.REPORT_FORMATS),
            default=None,
            help=FORMAT_HELP,
        ),
        click.option(
            "-o",
            "--output",
            default="-",
            show_default=True,
            help="Where to write; - is standard output.",
        ),
        window_options,
        click.option(
            "--rules",
            "rules_file",
            metavar="FILE",
            help="Alert rules (YAML) for the status colours of the svg and html maps.",
        ),
        click.option(
            "--alerts",
            "alerts_file",
            metavar="FILE",
            help="Alertmanager alerts (the JSON of /api/v2/alerts) that mark nodes on the map.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _spans(sources: tuple[str, ...]) -> SpanSources:
    """The spans of `sources`; a saved graph JSON has none, which deserves its own message."""
    for source in sources:
        if looks_like_graph(Path(source)):
            raise UsageError(
                f"{source} is a saved graph JSON ({GRAPH_SCHEMA}): diff and investigate need "
                "the spans; give the trace files or the Parquet dataset it was drawn from"
            )
    return load_sources(sources)


def _sides(
    sources: tuple[str, ...],
    window: TimeRange,
    before_span: str | None,
    after_span: str | None,
    release: str | None,
) -> tuple[SpanSources, SpanSources, Side, Side]:
    """The two things to compare, from the arguments of `diff`."""
    if release is not None:
        if before_span or after_span:
            raise UsageError("--release cannot be combined with --before/--after")
        service, version = parse_release(release)
        loaded = _spans(sources)
        before, after = release_sides(loaded, service, version, window)
        return loaded, loaded, before, after
    if before_span or after_span:
        if not (before_span and after_span):
            raise UsageError("--before and --after go together")
        first = intersect(window, parse_span("--before", before_span))
        second = intersect(window, parse_span("--after", after_span))
        loaded = _spans(sources)
        return (
            loaded,
            loaded,
            Side(before_span, first, f"--before {before_span}"),
            Side(after_span, second, f"--after {after_span}"),
        )
    if len(sources) != 2:
        raise UsageError("diff needs BEFORE AFTER (two sources), or --before/--after, or --release")
    return (
        _spans(sources[:1]),
        _spans(sources[1:]),
        Side(sources[0], window, f"BEFORE {sources[0]}"),
        Side(sources[1], window, f"AFTER {sources[1]}"),
    )


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option(
    "--before",
    "before_span",
    metavar="T1..T2",
    help="Compare the spans starting in [T1, T2) of SOURCE... (either side may be left out)...",
)
@click.option("--after", "after_span", metavar="T3..T4", help="...with those in [T3, T4).")
@click.option(
    "--release",
    metavar="SERVICE@VERSION",
    help="Split SOURCE... where the first trace reaching SERVICE at service.version VERSION "
    "starts.",
)
@_common
def diff(
    sources: tuple[str, ...],
    before_span: str | None,
    after_span: str | None,
    release: str | None,
    output_format: str | None,
    output: str,
    since: str | None,
    until: str | None,
    rules_file: str | None,
    alerts_file: str | None,
) -> None:
    """Compare BEFORE and AFTER: two sources, two windows of SOURCE..., or a release.

    `servicemap diff BEFORE AFTER` compares two sources (files or Parquet datasets);
    `servicemap diff SOURCE... --before T1..T2 --after T3..T4` two windows of the same data;
    `servicemap diff SOURCE... --release SERVICE@VERSION` the data before and after a release.
    Lists new and removed nodes and edges, and changes in calls, error rate and p95 latency,
    each with a significance test, most severe first.
    """
    output_format = _default_format(output_format, output)
    judge = _Judge(rules_file, alerts_file)
    window = TimeRange.parse(since, until)
    before_sources, after_sources, before, after = _sides(
        sources, window, before_span, after_span, release
    )
    result = diff_sides(before_sources, after_sources, before, after)
    _emit_diff(result, output_format, output, judge.of(after_sources, after.window))


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--service", required=True, metavar="S", help="The service to investigate.")
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Hops of callers and dependencies shown around the service.",
)
@_common
def investigate(
    sources: tuple[str, ...],
    service: str,
    depth: int,
    output_format: str | None,
    output: str,
    since: str | None,
    until: str | None,
    rules_file: str | None,
    alerts_file: str | None,
) -> None:
    """Where SERVICE's errors start, what makes it slow, and who is affected.

    Shows its callers and dependencies within --depth hops; ranks the services and edges
    where its failed requests (SERVER/CONSUMER spans with status ERROR) start, following each
    failing trace down to the deepest failing span; the services on the critical path of its
    slowest requests (>= p95); and the distinct users (enduser.id, user.id, session.id) in
    traces where it failed, against all users of the window. Example trace ids for each.
    """
    output_format = _default_format(output_format, output)
    judge = _Judge(rules_file, alerts_file)
    window = TimeRange.parse(since, until)
    loaded = _spans(sources)
    found = investigation.investigate(loaded, service, window, depth)
    _emit_investigation(found, output_format, output, judge.of(loaded, window))
