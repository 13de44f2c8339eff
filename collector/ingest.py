"""What both receivers share: memory admission, OTLP → span table, fan-out to the sinks.

Receivers only translate: bytes in, `ExportResult` or an exception out, and the exception into
their protocol's code (`BadRequest` → INVALID_ARGUMENT/400, `Overloaded` → UNAVAILABLE/503).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from collector.metrics import Metrics
from collector.sink import MemoryBudget, Sink
from servicemap.errors import ServicemapError
from servicemap.sources.otlp import convert

# A request's body is reserved this many times over while it is decoded: the protobuf objects
# and the Arrow columns built from them are a few times the wire size.
DECODE_FACTOR = 3


class BadRequest(ServicemapError):
    """The request cannot be decoded (not retryable)."""


class TooLarge(ServicemapError):
    """The request is over --max-request-mib (not retryable)."""


class Overloaded(ServicemapError):
    """The collector must shed load; the client should retry later."""


@dataclass(frozen=True)
class ExportResult:
    """OTLP partial success: how many spans were refused as invalid, and why."""

    accepted: int
    rejected: int
    error_message: str = ""


class Ingest:
    """Admission control, conversion and fan-out for every protocol."""

    def __init__(self, sinks: Sequence[Sink], budget: MemoryBudget, metrics: Metrics) -> None:
        self.sinks = list(sinks)
        self.budget = budget
        self.metrics = metrics
        self.closing = False
        self._in_flight = 0
        self._idle = threading.Condition()

    @contextmanager
    def admit(self, body_bytes: int) -> Iterator[None]:
        """Hold memory for one request while it is decoded, or refuse it as overloaded."""
        if self.closing:
            raise Overloaded("collector is shutting down")
        reservation = max(1, body_bytes) * DECODE_FACTOR
        if not self.budget.reserve(reservation):
            raise Overloaded("memory limit reached, retry later")
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            self.budget.release(reservation)
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def export(
        self, message: ExportTraceServiceRequest | TracesData, protocol: str
    ) -> ExportResult:
        """Convert one request and hand its valid spans to every sink."""
        conversion = convert([message])
        table = conversion.table
        received = table.num_rows + conversion.rejected
        self.metrics.inc("spans_received_total", received, protocol=protocol)
        if conversion.rejected:
            self.metrics.inc("spans_rejected_total", conversion.rejected, protocol=protocol)
        if table.num_rows:
            if not self.budget.reserve(table.nbytes):
                self.metrics.inc("spans_refused_total", table.num_rows, protocol=protocol)
                raise Overloaded("memory limit reached, retry later")
            try:
                for sink in self.sinks:
                    sink.add(table)
            except Exception:
                self.budget.release(table.nbytes)  # not buffered: the client must retry
                raise
            self.metrics.inc("spans_accepted_total", table.num_rows, protocol=protocol)
        message_text = "; ".join(conversion.errors)
        if conversion.rejected > len(conversion.errors):
            message_text += f" ({conversion.rejected} spans rejected in all)"
        return ExportResult(table.num_rows, conversion.rejected, message_text)

    def wait_idle(self, deadline: float) -> bool:
        """Wait until no request is in flight or the monotonic `deadline` passes."""
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True
