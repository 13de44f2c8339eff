"""Click options that several commands take, written once so their help stays the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

SINCE_HELP = (
    "Only spans starting at or after this time (ISO 8601, epoch seconds, or a duration ago: "
    "15m, 2h)."
)
UNTIL_HELP = "Only spans starting before this time."


def window_options(function: F) -> F:
    """`--since` and `--until`: the window of span start times (see `TimeRange.parse`)."""
    function = click.option("--until", help=UNTIL_HELP)(function)
    return click.option("--since", help=SINCE_HELP)(function)
