"""SVG, PNG and PDF through Graphviz `dot`: the DOT text of render/dot.py, laid out by graphviz."""

from __future__ import annotations

import shutil
import subprocess

from servicemap.errors import RenderError
from servicemap.graph import ServiceGraph
from servicemap.render.dot import render_dot
from servicemap.render.options import DEFAULT_OPTIONS, RenderOptions

IMAGE_FORMATS = ("svg", "png", "pdf")
DOT_TIMEOUT_S = 300
INSTALL_HINT = (
    "install graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"
)


def render_image(
    graph: ServiceGraph, image_format: str, options: RenderOptions = DEFAULT_OPTIONS
) -> bytes:
    """Lay the map out with `dot` and return the image bytes."""
    return layout(render_dot(graph, options), image_format)


def layout(dot_text: str, image_format: str) -> bytes:
    """DOT text → image bytes with graphviz; one line of error when it cannot."""
    if image_format not in IMAGE_FORMATS:
        raise RenderError(f"unknown image format {image_format!r}")
    dot = shutil.which("dot")
    if dot is None:
        raise RenderError(
            f"--format {image_format} needs graphviz's `dot`, not found: {INSTALL_HINT}"
        )
    try:
        done = subprocess.run(
            [dot, f"-T{image_format}"],
            input=dot_text.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RenderError(
            f"graphviz took longer than {DOT_TIMEOUT_S} s to lay out the map"
        ) from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise RenderError(f"graphviz failed: {message[0] if message else done.returncode}")
    return done.stdout
