"""What both receivers share: memory admission, id checks (partial success), fan-out to sinks.

Receivers only translate: bytes in, `ExportResult` or an exception out, and the exception into
their protocol's code (`BadRequest` → INVALID_ARGUMENT/400, `Overloaded` → UNAVAILABLE/503).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from collector.metrics import Metrics
from collector.sink import MemoryBudget, Sink, estimate_bytes
from collector.wal import LogWriteError
from servicemap.errors import ServicemapError
from servicemap.sources.otlp import check_ids

logger = logging.getLogger(__name__)

# A request's body is reserved this many times over while it is decoded: the protobuf objects
# are a few times the wire size.
DECODE_FACTOR = 3
# What a client is told when a bug (not its request) failed an export; the log has the rest.
INTERNAL_ERROR = "internal error in the collector; its log has the details"


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
        self,
        message: ExportTraceServiceRequest | TracesData,
        protocol: str,
        body: bytes | None = None,
    ) -> ExportResult:
        """Check one decoded request's ids and hand it to every sink.

        `body` is the request as received (serialized protobuf) when the receiver has it; the
        sinks log it as is and convert in batches off the request path."""
        spans, rejected, errors = check_ids(message)
        accepted = spans - rejected
        self.metrics.inc("spans_received_total", spans, protocol=protocol)
        if rejected:
            self.metrics.inc("spans_rejected_total", rejected, protocol=protocol)
        if accepted:
            if body is None:
                body = message.SerializeToString()
            amount = estimate_bytes(body)
            if not self.budget.reserve(amount):
                self.metrics.inc("spans_refused_total", accepted, protocol=protocol)
                raise Overloaded("memory limit reached, retry later")
            try:
                for sink in self.sinks:
                    sink.add(body, accepted)
            except LogWriteError as exc:
                # A full disk may pass: the client keeps the spans and retries later.
                self.budget.release(amount)
                self.metrics.inc("spans_refused_total", accepted, protocol=protocol)
                logger.error("request refused: %s", exc)
                raise Overloaded(f"{exc}, retry later") from None
            except Exception:
                self.budget.release(amount)  # not logged: the client must retry
                raise
            self.metrics.inc("spans_accepted_total", accepted, protocol=protocol)
        message_text = "; ".join(errors)
        if rejected > len(errors):
            message_text += f" ({rejected} spans rejected in all)"
        return ExportResult(accepted, rejected, message_text)

    def wait_idle(self, deadline: float) -> bool:
        """Wait until no request is in flight or the monotonic `deadline` passes."""
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True
