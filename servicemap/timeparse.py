"""Times on the command line: ISO 8601, epoch seconds, or a duration back from now (`15m`)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from servicemap.errors import UsageError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d|w)$")
_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
    "w": 7 * 86400 * 10**9,
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_duration_ns(text: str) -> int | None:
    """`90s`, `15m`, `2h`, `7d` → nanoseconds; None if the text is not a duration."""
    match = _DURATION.match(text.strip())
    if not match:
        return None
    return int(float(match.group(1)) * _UNIT_NS[match.group(2)])


def parse_time_ns(text: str, now_ns: int | None = None) -> int:
    """A point in time as nanoseconds since the epoch (UTC when no offset is written)."""
    ns = _parse_time_ns(text, now_ns)
    if not -(2**63) < ns < 2**63:
        raise UsageError(f"time {text.strip()!r} is out of range")
    return ns


def _parse_time_ns(text: str, now_ns: int | None) -> int:
    text = text.strip()
    duration = parse_duration_ns(text)
    if duration is not None:
        return (time.time_ns() if now_ns is None else now_ns) - duration
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return int(float(text) * 10**9)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"invalid time {text!r}: use ISO 8601 (2026-11-28T12:00:00Z), epoch seconds, "
            "or a duration ago such as 15m, 2h, 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


@dataclass(frozen=True)
class TimeRange:
    """Spans whose start is in [since, until); None leaves that side open."""

    since_ns: int | None = None
    until_ns: int | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> TimeRange:
        """The window of `--since`/`--until` as typed on the command line."""
        window = cls(
            since_ns=parse_time_ns(since) if since else None,
            until_ns=parse_time_ns(until) if until else None,
        )
        since_ns, until_ns = window.since_ns, window.until_ns
        if since_ns is not None and until_ns is not None and since_ns >= until_ns:
            raise UsageError("--since must be before --until")
        return window
