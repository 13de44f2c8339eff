"""The collector's own counters, served as Prometheus text on GET /metrics.

Plain counters behind one lock rather than a client library: a handful of series, no extra
dependency, and the future service-graph sink can add its series through `extra` providers.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

PREFIX = "servicemap_collector_"

_HELP = {
    "spans_received_total": ("counter", "Spans in requests that were decoded."),
    "spans_accepted_total": ("counter", "Spans written to the write-ahead log and acknowledged."),
    "spans_rejected_total": ("counter", "Invalid spans refused through OTLP partial success."),
    "spans_refused_total": ("counter", "Spans refused with a retryable code (load shedding)."),
    "requests_total": ("counter", "Export requests by protocol and result code."),
    "files_written_total": ("counter", "Parquet files renamed into the dataset."),
    "bytes_written_total": ("counter", "Bytes of Parquet files renamed into the dataset."),
    "wal_bytes": ("gauge", "Bytes in write-ahead log segments not yet deleted."),
    "buffered_spans": ("gauge", "Spans acknowledged and waiting for the next Parquet file."),
    "memory_bytes": (
        "gauge",
        "Bytes reserved by requests in flight and logged spans not yet in Parquet.",
    ),
    "memory_peak_bytes": ("gauge", "Highest memory_bytes since start."),
    "memory_limit_bytes": ("gauge", "Configured memory limit; above it requests are refused."),
}

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters plus gauges read at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0) + amount

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """Register a gauge whose value is read when scraped."""
        self._gauges[name] = read

    def value(self, name: str, **labels: str) -> float:
        """One series' value (sum over labels not given), for tests and logs."""
        if name in self._gauges:
            return self._gauges[name]()
        with self._lock:
            return sum(
                v for k, v in self._values.get(name, {}).items() if set(labels.items()) <= set(k)
            )

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            snapshot = {name: dict(series) for name, series in self._values.items()}
        for name in _HELP:
            kind, text = _HELP[name]
            full = PREFIX + name
            lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}"]
            if name in self._gauges:
                lines.append(f"{full} {self._gauges[name]():g}")
                continue
            series = snapshot.get(name) or {(): 0.0}
            for labels, value in sorted(series.items()):
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{full}{{{label_text}}} {value:g}" if labels else f"{full} {value:g}")
        return "\n".join(lines) + "\n"
