"""What a renderer is told besides the graph: grouping, the focused service, the view's name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderOptions:
    group_by: str | None = None  # "namespace": services of one namespace drawn in one box
    focus: str | None = None  # the service a --focus view is centred on, drawn bolder
    view: str | None = None  # how the graph was narrowed, e.g. "focus checkout ±1 hop"


DEFAULT_OPTIONS = RenderOptions()
