"""The graph model: plain frozen dataclasses, and JSON `servicemap.graph/v1` in and out (§5)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from servicemap.errors import SourceError

GRAPH_SCHEMA = "servicemap.graph/v1"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

NodeKind = Literal["service", "database", "messaging", "external", "user"]
Connection = Literal["direct", "database", "messaging", "virtual"]
Status = Literal["ok", "warning", "critical", "no_data"]
STATUS_ORDER: tuple[Status, ...] = ("no_data", "ok", "warning", "critical")


@dataclass(frozen=True)
class Latency:
    """Exact percentiles of one set of durations, in milliseconds."""

    p50: float
    p95: float
    p99: float

    def to_json(self) -> dict[str, float]:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Latency | None:
        return None if data is None else cls(data["p50"], data["p95"], data["p99"])


@dataclass(frozen=True)
class Reason:
    """Why a status was given: the rule, the measured value and the threshold it crossed.

    An Alertmanager alert has no value or threshold (both None); `detail` carries its summary
    and is written only when set.
    """

    rule: str
    status: Status
    value: float | None
    threshold: float | None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rule": self.rule,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
        }
        if self.detail is not None:
            data["detail"] = self.detail
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reason:
        return cls(
            data["rule"], data["status"], data["value"], data["threshold"], data.get("detail")
        )


@dataclass(frozen=True)
class BurnRateResult:
    """One multi-window burn-rate condition of an SLO, as measured at the window's end."""

    severity: Status
    long: str
    short: str
    factor: float
    long_calls: int
    long_bad: int
    long_burn_rate: float | None
    short_calls: int
    short_bad: int
    short_burn_rate: float | None
    firing: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "long": self.long,
            "short": self.short,
            "factor": self.factor,
            "long_calls": self.long_calls,
            "long_bad": self.long_bad,
            "long_burn_rate": self.long_burn_rate,
            "short_calls": self.short_calls,
            "short_bad": self.short_bad,
            "short_burn_rate": self.short_burn_rate,
            "firing": self.firing,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BurnRateResult:
        return cls(**data)


@dataclass(frozen=True)
class SloResult:
    """An SLO of a node or edge: budget left over its window and its burn-rate conditions."""

    name: str
    kind: Literal["availability", "latency"]
    objective: float
    window: str
    threshold_ms: float | None
    calls: int
    bad: int
    budget_remaining: float | None
    burn_rates: tuple[BurnRateResult, ...]
    status: Status

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "objective": self.objective,
            "window": self.window,
            "threshold_ms": self.threshold_ms,
            "calls": self.calls,
            "bad": self.bad,
            "budget_remaining": self.budget_remaining,
            "burn_rates": [b.to_json() for b in self.burn_rates],
            "status": self.status,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SloResult:
        fields = dict(data)
        fields["burn_rates"] = tuple(BurnRateResult.from_json(b) for b in data["burn_rates"])
        return cls(**fields)


def _with_slos(data: dict[str, Any], slos: tuple[SloResult, ...]) -> dict[str, Any]:
    """`slos` is written only where an SLO applies, so maps without SLOs keep their shape."""
    if slos:
        data["slos"] = [slo.to_json() for slo in slos]
    return data


def _slos_from_json(data: dict[str, Any]) -> tuple[SloResult, ...]:
    return tuple(SloResult.from_json(s) for s in data.get("slos", ()))


def error_rate(errors: int, calls: int) -> float | None:
    return round(errors / calls, 6) if calls else None


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeKind
    requests: int = 0
    errors: int = 0
    latency_ms: Latency | None = None
    status: Status = "no_data"
    reasons: tuple[Reason, ...] = ()
    slos: tuple[SloResult, ...] = ()
    namespace: str | None = None  # the service's `service.namespace`, when it has one

    @property
    def error_rate(self) -> float | None:
        return error_rate(self.errors, self.requests)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms.to_json() if self.latency_ms else None,
            "status": self.status,
            "reasons": [reason.to_json() for reason in self.reasons],
        }
        if self.namespace is not None:
            data["namespace"] = self.namespace
        return _with_slos(data, self.slos)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Node:
        return cls(
            id=data["id"],
            kind=data["kind"],
            requests=data["requests"],
            errors=data["errors"],
            latency_ms=Latency.from_json(data.get("latency_ms")),
            status=data["status"],
            reasons=tuple(Reason.from_json(r) for r in data.get("reasons", ())),
            slos=_slos_from_json(data),
            namespace=data.get("namespace"),
        )


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    connection: Connection
    calls: int
    errors: int = 0
    latency_ms: Latency | None = None
    server_latency_ms: Latency | None = None
    status: Status = "no_data"
    reasons: tuple[Reason, ...] = ()
    slos: tuple[SloResult, ...] = ()

    @property
    def error_rate(self) -> float | None:
        return error_rate(self.errors, self.calls)

    def to_json(self) -> dict[str, Any]:
        data = {
            "source": self.source,
            "target": self.target,
            "connection": self.connection,
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms.to_json() if self.latency_ms else None,
            "server_latency_ms": (
                self.server_latency_ms.to_json() if self.server_latency_ms else None
            ),
            "status": self.status,
            "reasons": [reason.to_json() for reason in self.reasons],
        }
        return _with_slos(data, self.slos)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Edge:
        return cls(
            source=data["source"],
            target=data["target"],
            connection=data["connection"],
            calls=data["calls"],
            errors=data["errors"],
            latency_ms=Latency.from_json(data.get("latency_ms")),
            server_latency_ms=Latency.from_json(data.get("server_latency_ms")),
            status=data["status"],
            reasons=tuple(Reason.from_json(r) for r in data.get("reasons", ())),
            slos=_slos_from_json(data),
        )


@dataclass(frozen=True)
class Window:
    """The data's own time span: first span start to last span end (no wall clock)."""

    start_ns: int | None
    end_ns: int | None
    spans: int
    traces: int

    def to_json(self) -> dict[str, Any]:
        return {
            "start": format_time(self.start_ns),
            "end": format_time(self.end_ns),
            "spans": self.spans,
            "traces": self.traces,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Window:
        return cls(
            parse_time(data["start"]), parse_time(data["end"]), data["spans"], data["traces"]
        )


@dataclass(frozen=True)
class Pairing:
    """How well spans paired: cross-service pairs, spans with a virtual peer, missing parents."""

    paired: int = 0
    virtual: int = 0
    orphans: int = 0

    def to_json(self) -> dict[str, int]:
        return {"paired": self.paired, "virtual": self.virtual, "orphans": self.orphans}


@dataclass(frozen=True)
class ServiceGraph:
    window: Window
    pairing: Pairing = field(default_factory=Pairing)
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def edge(self, source: str, target: str) -> Edge:
        for edge in self.edges:
            if (edge.source, edge.target) == (source, target):
                return edge
        raise KeyError(f"{source} -> {target}")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": GRAPH_SCHEMA,
            "window": self.window.to_json(),
            "pairing": self.pairing.to_json(),
            "nodes": [n.to_json() for n in sorted(self.nodes, key=lambda n: n.id)],
            "edges": [e.to_json() for e in sorted(self.edges, key=lambda e: (e.source, e.target))],
        }

    def dumps(self) -> str:
        """Deterministic text: the same graph always gives the same bytes."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceGraph:
        if not isinstance(data, dict) or data.get("schema") != GRAPH_SCHEMA:
            raise SourceError(f"not a {GRAPH_SCHEMA} document")
        return cls(
            window=Window.from_json(data["window"]),
            pairing=Pairing(**data["pairing"]),
            nodes=tuple(Node.from_json(n) for n in data["nodes"]),
            edges=tuple(Edge.from_json(e) for e in data["edges"]),
        )


def format_time(ns: int | None) -> str | None:
    """Nanoseconds since the epoch → ISO 8601 UTC with microseconds."""
    if ns is None:
        return None
    moment = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000 // 1000:06d}Z"


def parse_time(text: str | None) -> int | None:
    if text is None:
        return None
    delta = datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
