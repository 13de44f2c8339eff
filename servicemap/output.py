"""Where a command's result goes: a file, or standard output for `-`."""

from __future__ import annotations

import sys
from pathlib import Path

from servicemap.errors import UsageError


def write_output(content: str | bytes, output: str) -> None:
    """Write text (as UTF-8) or bytes to `output`; `-` is standard output."""
    data = content.encode() if isinstance(content, str) else content
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None
