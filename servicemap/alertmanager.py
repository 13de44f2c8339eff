"""Prometheus Alertmanager alerts (`GET /api/v2/alerts`) as external alert status (DESIGN §6).

Also read: Alertmanager's webhook payload (`{"alerts": [...]}`, each with `status` "firing" or
"resolved") and the v1 API's `{"data": [...]}`.
An alert counts when it is active: state `active` or `unprocessed` (or webhook `firing`), not
silenced, inhibited or muted, started (`startsAt`) by the reference time and not ended
(`endsAt`) before it. The reference time is the end of the data's window, never the wall clock:
today's alerts do not colour last week's traces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servicemap.errors import RulesError
from servicemap.graph import parse_time
from servicemap.rules import read_text_file

API_STATES = ("active", "unprocessed", "suppressed")
WEBHOOK_STATES = ("firing", "resolved")


@dataclass(frozen=True)
class ExternalAlert:
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...] = ()
    state: str = "active"
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()
    muted_by: tuple[str, ...] = ()
    starts_at_ns: int | None = None
    ends_at_ns: int | None = None

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)

    def annotation(self, name: str) -> str | None:
        return dict(self.annotations).get(name)

    @property
    def name(self) -> str:
        return self.label("alertname") or "alert"

    def is_active(self, at_ns: int | None) -> bool:
        if self.state not in ("active", "unprocessed", "firing"):
            return False
        if self.silenced_by or self.inhibited_by or self.muted_by:
            return False
        if at_ns is None:
            return True
        if self.starts_at_ns is not None and self.starts_at_ns > at_ns:
            return False
        return not (self.ends_at_ns is not None and self.ends_at_ns < at_ns)


def _strings(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise RulesError(f"{where}: expected an object of strings")
    for key, text in value.items():
        if not isinstance(text, str):
            raise RulesError(f"{where}.{key}: expected a string, got {json.dumps(text)}")
    return tuple(sorted(value.items()))


def _ids(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RulesError(f"{where}: expected a list")
    return tuple(str(v) for v in value)


def _time(value: Any, where: str) -> int | None:
    if value in (None, "", "0001-01-01T00:00:00Z"):
        return None
    if not isinstance(value, str):
        raise RulesError(f"{where}: expected an RFC 3339 time")
    try:
        return parse_time(value)
    except ValueError:
        raise RulesError(f"{where}: expected an RFC 3339 time, got {value!r}") from None


def _alert(item: Any, where: str) -> ExternalAlert:
    if not isinstance(item, Mapping):
        raise RulesError(f"{where}: expected an alert object")
    if not isinstance(item.get("labels"), Mapping):
        raise RulesError(f"{where}.labels: expected an object of strings")
    status = item.get("status")
    state = "active"
    silenced: tuple[str, ...] = ()
    inhibited: tuple[str, ...] = ()
    muted: tuple[str, ...] = ()
    if isinstance(status, str):  # webhook payload: "firing" or "resolved"
        state = status
        if state not in WEBHOOK_STATES:
            raise RulesError(f'{where}.status: expected "firing" or "resolved", got {state!r}')
    elif isinstance(status, Mapping):
        state = status.get("state", "active")
        if state not in API_STATES:
            raise RulesError(
                f"{where}.status.state: expected one of {', '.join(API_STATES)}, got {state!r}"
            )
        silenced = _ids(status.get("silencedBy"), f"{where}.status.silencedBy")
        inhibited = _ids(status.get("inhibitedBy"), f"{where}.status.inhibitedBy")
        muted = _ids(status.get("mutedBy"), f"{where}.status.mutedBy")
    elif status is not None:
        raise RulesError(f"{where}.status: expected an object")
    return ExternalAlert(
        labels=_strings(item["labels"], f"{where}.labels"),
        annotations=_strings(item.get("annotations"), f"{where}.annotations"),
        state=state,
        silenced_by=silenced,
        inhibited_by=inhibited,
        muted_by=muted,
        starts_at_ns=_time(item.get("startsAt"), f"{where}.startsAt"),
        ends_at_ns=_time(item.get("endsAt"), f"{where}.endsAt"),
    )


def parse_alerts(data: Any, filename: str = "alerts.json") -> tuple[ExternalAlert, ...]:
    """Alerts from a decoded document; errors name the file and the alert."""
    items = data
    if isinstance(data, Mapping):
        items = data.get("alerts", data.get("data"))
    if not isinstance(items, list):
        raise RulesError(
            f"{filename}: expected Alertmanager's /api/v2/alerts list (or a webhook payload)"
        )
    return tuple(_alert(item, f"{filename}: alert [{index}]") for index, item in enumerate(items))


def load_alerts(path: str | Path) -> tuple[ExternalAlert, ...]:
    text = read_text_file(path, "alerts file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RulesError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    return parse_alerts(data, str(path))
