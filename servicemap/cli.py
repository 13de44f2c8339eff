"""The `servicemap` command: a thin click layer over the library.

The composition root: the only servicemap module allowed to import `collector`. It imports
what a command needs when the command runs: `servicemap --help` and the re-drawing of a saved
graph never load gRPC, DuckDB or pyarrow (tests/test_cli.py checks it).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import ClassVar

import click

from servicemap import __version__
from servicemap.analysis.focus import GROUP_BY_KEYS, narrow
from servicemap.cli_options import window_options
from servicemap.errors import ServicemapError, first_line
from servicemap.graph import ServiceGraph
from servicemap.graph_file import find_graph, saved_graph
from servicemap.output import write_output
from servicemap.render.dot import render_dot
from servicemap.render.grafana import render_grafana
from servicemap.render.html import render_html
from servicemap.render.image import IMAGE_FORMATS, render_image
from servicemap.render.mermaid import render_mermaid
from servicemap.render.options import RenderOptions
from servicemap.timeparse import TimeRange


def _image(graph: ServiceGraph, options: RenderOptions, image_format: str) -> bytes:
    return render_image(graph, image_format, options)


RENDERERS: dict[str, Callable[[ServiceGraph, RenderOptions], str | bytes]] = {
    "json": lambda graph, _options: graph.dumps(),
    "dot": render_dot,
    **{name: functools.partial(_image, image_format=name) for name in IMAGE_FORMATS},
    "html": render_html,
    "mermaid": render_mermaid,
    "grafana": render_grafana,
}


class LazyGroup(click.Group):
    """Commands from heavier modules load only when used: `render` never pays for gRPC, and
    `servicemap --help` lists them by their help line without importing them."""

    # name → (module:attribute, the command's help line, as its docstring starts)
    lazy_commands: ClassVar[dict[str, tuple[str, str]]] = {
        "collect": (
            "collector.command:collect",
            "Receive OTLP traces (gRPC and HTTP) and write them to a Parquet dataset.",
        ),
        "diff": (
            "servicemap.analysis.commands:diff",
            "Compare BEFORE and AFTER: two sources, two windows of SOURCE..., or a release.",
        ),
        "investigate": (
            "servicemap.analysis.commands:investigate",
            "Where SERVICE's errors start, what makes it slow, and who is affected.",
        ),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, _, attribute = self.lazy_commands[cmd_name][0].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy_commands:
                stand_in = click.Command(name, help=self.lazy_commands[name][1])
                text = stand_in.get_short_help_str(limit)
            else:
                command = super().get_command(ctx, name)
                assert command is not None
                text = command.get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="servicemap")
def cli() -> None:
    """Turn OpenTelemetry traces into service maps."""


@cli.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(RENDERERS)),
    default="json",
    show_default=True,
    help="Output format.",
)
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    help="Where to write the map; - is standard output.",
)
@window_options
@click.option(
    "--focus",
    "focus_on",
    metavar="SERVICE",
    help="Only SERVICE and what calls it or what it calls within --depth hops.",
)
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Hops from the --focus service, upstream and downstream.",
)
@click.option(
    "--group-by",
    type=click.Choice(GROUP_BY_KEYS),
    help="Draw the services of one service.namespace inside one box.",
)
@click.option(
    "--min-calls",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Hide edges with fewer calls (and nodes only they connected).",
)
@click.option(
    "--rules",
    "rules_file",
    metavar="FILE",
    help="Alert rules (YAML): thresholds, SLO burn rates, Alertmanager labels. "
    "Without it: error rate >= 1 % warning, >= 5 % critical.",
)
@click.option(
    "--alerts",
    "alerts_file",
    metavar="FILE",
    help="Alertmanager alerts (the JSON of /api/v2/alerts) that mark nodes.",
)
def render(
    sources: tuple[str, ...],
    output_format: str,
    output: str,
    since: str | None,
    until: str | None,
    focus_on: str | None,
    depth: int,
    group_by: str | None,
    min_calls: int,
    rules_file: str | None,
    alerts_file: str | None,
) -> None:
    """Draw the service map of SOURCE... (Parquet dataset directories or trace files).

    Trace files may be OTLP/JSON (one document or one per line, or Jaeger's v3 API
    response), OTLP protobuf, Jaeger JSON (UI download or api_v2) or Zipkin v2 JSON,
    optionally gzip-compressed; the format is read from the content. Every span counts
    unless --since/--until narrow the window.

    SOURCE may instead be one saved graph JSON (what --format json writes): the map is
    re-drawn without reading spans, with its saved statuses unless --rules or --alerts
    judge it again.
    """
    window = since is not None or until is not None
    graph_path = find_graph(sources)
    saved = (
        saved_graph(graph_path, window, rules_file, alerts_file) if graph_path is not None else None
    )
    if saved is not None:
        graph = saved
    else:
        graph = graph_with_status(sources, TimeRange.parse(since, until), rules_file, alerts_file)
    graph, view = narrow(graph, focus_on, depth, min_calls)
    options = RenderOptions(group_by=group_by, focus=focus_on, view=view)
    write_output(RENDERERS[output_format](graph, options), output)


def graph_with_status(
    sources: Sequence[str], window: TimeRange, rules_file: str | None, alerts_file: str | None
) -> ServiceGraph:
    """The build and the judging of trace sources; DuckDB and pyarrow load only here."""
    from servicemap.status import graph_with_status as build_and_judge

    return build_and_judge(sources, window, rules_file, alerts_file)


def _duckdb_error(exc: Exception) -> bool:
    """A DuckDB error, told without importing DuckDB (a command that never used it has none)."""
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(exc, duckdb.Error)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every expected failure is one line on stderr and exit code 1."""
    try:
        cli.main(args=argv, prog_name="servicemap", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("servicemap: aborted", err=True)
        return 1
    except click.ClickException as exc:
        click.echo(f"servicemap: error: {exc.format_message()}", err=True)
        return 1
    except ServicemapError as exc:
        click.echo(f"servicemap: error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("servicemap: interrupted", err=True)
        return 130
    except Exception as exc:
        # a file reader notes the file it was reading (exc.add_note): name it first
        where = "".join(f"{note}: " for note in getattr(exc, "__notes__", ()))
        if _duckdb_error(exc):
            click.echo(f"servicemap: error: {where}{first_line(exc)}", err=True)
            return 1
        # a bug: still one line, the traceback on request
        if os.environ.get("SERVICEMAP_DEBUG"):
            raise
        click.echo(
            f"servicemap: internal error: {where}{type(exc).__name__}: {first_line(exc, '')} "
            "(set SERVICEMAP_DEBUG=1 to see the traceback)",
            err=True,
        )
        return 1
    return 0


def entry_point() -> None:
    sys.exit(main())
