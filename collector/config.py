"""Every collector setting and its default in one place (flags, YAML and tests all read these).

The listen defaults are where an OpenTelemetry SDK with no configuration sends
(`OTEL_EXPORTER_OTLP_ENDPOINT` unset): gRPC on localhost:4317, HTTP on localhost:4318.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from servicemap.errors import UsageError

MIB = 1024 * 1024
FSYNC_MODES = ("always", "interval")


@dataclass(frozen=True)
class Config:
    """The collector's settings; `from_mapping` checks them so bad values fail before binding."""

    data: Path
    otlp_grpc: str = "localhost:4317"
    otlp_http: str = "localhost:4318"
    fsync: str = "always"
    fsync_interval_ms: int = 200
    memory_limit_mib: int = 512
    max_request_mib: int = 16
    roll_mib: int = 64
    roll_seconds: float = 60.0
    grace_seconds: float = 10.0

    @property
    def memory_limit_bytes(self) -> int:
        return self.memory_limit_mib * MIB

    @property
    def max_request_bytes(self) -> int:
        return self.max_request_mib * MIB

    @property
    def roll_bytes(self) -> int:
        """Buffered bytes that trigger a Parquet file: the roll size, but at most half the
        memory limit, or a small limit would refuse forever before the buffer ever rolls."""
        return max(1, min(self.roll_mib * MIB, self.memory_limit_bytes // 2))

    def validate(self) -> Config:
        if self.fsync not in FSYNC_MODES:
            raise UsageError(f"fsync must be one of {', '.join(FSYNC_MODES)}, got {self.fsync!r}")
        for name in ("fsync_interval_ms", "memory_limit_mib", "max_request_mib", "roll_mib"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be a positive integer")
        for name in ("roll_seconds", "grace_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be a positive number")
        for name in ("otlp_grpc", "otlp_http"):
            parse_address(getattr(self, name), name.replace("_", "-"))
        return self

    def merged(self, overrides: dict[str, Any]) -> Config:
        """These settings with `overrides` (only keys that are Config fields) on top."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UsageError(f"unknown collector setting(s): {', '.join(unknown)}")
        values = dict(overrides)
        if "data" in values:
            values["data"] = Path(values["data"])
        return replace(self, **values)


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML settings file: the flags' long names, with `-` or `_` (`memory-limit-mib: 256`)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UsageError(f"{path}: expected a mapping of settings")
    return {str(key).replace("-", "_"): value for key, value in document.items()}


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` → (host, port); port 0 asks the OS for a free one."""
    if not isinstance(text, str) or ":" not in text:
        raise UsageError(f"{what} must be HOST:PORT, got {text!r}")
    host, _, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"{what} must be HOST:PORT with a port 0-65535, got {text!r}")
    return host, int(port_text)
