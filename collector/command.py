"""`servicemap collect`: the click command (registered by servicemap/cli.py, the composition root).

Precedence: a flag given on the command line, then the --config YAML file, then the defaults
in `collector.config`.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from collector.config import FSYNC_MODES, Config, load_yaml
from collector.server import Collector, configure_logging
from servicemap.errors import UsageError

_DEFAULTS = {f.name: f.default for f in fields(Config) if f.name != "data"}


@click.command()
@click.option(
    "--otlp-grpc",
    metavar="HOST:PORT",
    default=_DEFAULTS["otlp_grpc"],
    show_default=True,
    help="Where to listen for OTLP/gRPC (0.0.0.0:4317 for all interfaces; port 0: any free one).",
)
@click.option(
    "--otlp-http",
    metavar="HOST:PORT",
    default=_DEFAULTS["otlp_http"],
    show_default=True,
    help="Where to listen for OTLP/HTTP POST /v1/traces, GET /healthz and GET /metrics.",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Dataset directory (DATA/spans/…/part-*.parquet; write-ahead log in DATA/_wal).",
)
@click.option(
    "--fsync",
    type=click.Choice(FSYNC_MODES),
    default=_DEFAULTS["fsync"],
    show_default=True,
    help="always: fsync the log before every answer; interval: group commit every "
    "--fsync-interval-ms (a power cut may lose that much, a killed process nothing).",
)
@click.option(
    "--fsync-interval-ms",
    type=click.IntRange(min=1),
    default=_DEFAULTS["fsync_interval_ms"],
    show_default=True,
    help="Log fsync period with --fsync interval.",
)
@click.option(
    "--memory-limit-mib",
    type=click.IntRange(min=1),
    default=_DEFAULTS["memory_limit_mib"],
    show_default=True,
    help="Requests in flight plus buffered spans; above it requests get UNAVAILABLE/503.",
)
@click.option(
    "--max-request-mib",
    type=click.IntRange(min=1),
    default=_DEFAULTS["max_request_mib"],
    show_default=True,
    help="Largest request (after gzip inflation); larger gets RESOURCE_EXHAUSTED/413.",
)
@click.option(
    "--roll-mib",
    type=click.IntRange(min=1),
    default=_DEFAULTS["roll_mib"],
    show_default=True,
    help="Write a Parquet file when this much is buffered (capped at half the memory limit).",
)
@click.option(
    "--roll-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS["roll_seconds"],
    show_default=True,
    help="Write a Parquet file when the oldest buffered span is this old.",
)
@click.option(
    "--grace-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS["grace_seconds"],
    show_default=True,
    help="On SIGTERM/SIGINT, how long requests in flight may take to finish.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML file with any of these settings (otlp-grpc: …, data: …); flags win.",
)
@click.pass_context
def collect(ctx: click.Context, /, config_file: Path | None, **options: Any) -> None:
    """Receive OTLP traces (gRPC and HTTP) and write them to a Parquet dataset.

    Every acknowledged span is in a write-ahead log first and reaches Parquet even if the
    process is killed. SIGTERM or SIGINT stops accepting, drains, flushes and exits 0.
    """
    settings: dict[str, Any] = load_yaml(config_file) if config_file else {}
    for name, value in options.items():
        explicit = ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        if explicit or name not in settings:
            settings[name] = value
    if settings.get("data") is None:
        raise UsageError("--data DIR is required (or `data:` in the --config file)")
    data = Path(settings.pop("data"))
    config = Config(data=data).merged(settings).validate()
    configure_logging()
    try:
        collector = Collector(config)
    except OSError as exc:
        raise UsageError(f"cannot use data directory {data}: {exc.strerror}") from None
    collector.run()
