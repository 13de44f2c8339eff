"""The alert rules file (DESIGN §6): YAML in, validated frozen dataclasses out.

Every error names the file, the line and the field, in one line:
`rules.yaml:12: services."checkout*".latency_p95_ms.warning: expected a number`.
The built-in defaults live here and nowhere else.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from servicemap.errors import RulesError
from servicemap.graph import Reason
from servicemap.timeparse import parse_duration_ns

T = TypeVar("T")

MEASURES = ("error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
Severity = Literal["warning", "critical"]
AlertMapping = Literal["warning", "critical", "ignore"]


@dataclass(frozen=True)
class Thresholds:
    """Warning and critical levels of one measure; a value at or above a level fires it."""

    warning: float | None = None
    critical: float | None = None

    def judge(self, rule: str, value: float | None) -> Reason | None:
        if value is None:
            return None
        if self.critical is not None and value >= self.critical:
            return Reason(rule, "critical", value, self.critical)
        if self.warning is not None and value >= self.warning:
            return Reason(rule, "warning", value, self.warning)
        return None


@dataclass(frozen=True)
class RuleSet:
    """Thresholds of one scope (defaults, a service pattern, an edge pattern).

    None means "not set here": a less specific scope decides. `Thresholds()` (written `{}`)
    switches a measure off.
    """

    min_calls: int | None = None
    error_rate: Thresholds | None = None
    latency_p50_ms: Thresholds | None = None
    latency_p95_ms: Thresholds | None = None
    latency_p99_ms: Thresholds | None = None

    def thresholds(self, measure: str) -> Thresholds | None:
        value: Thresholds | None = getattr(self, measure)
        return value

    def over(self, fallback: RuleSet) -> RuleSet:
        """This scope's settings, with the fallback's where this one has none."""
        merged = {
            f.name: getattr(fallback, f.name)
            if getattr(self, f.name) is None
            else getattr(self, f.name)
            for f in fields(self)
        }
        return RuleSet(**merged)


# The built-in defaults of §6: error rate ≥ 1 % warning, ≥ 5 % critical; no latency rule; no
# minimum call count.
BUILTIN_DEFAULTS = RuleSet(min_calls=0, error_rate=Thresholds(0.01, 0.05))

# Burn-rate conditions when an SLO lists none (Google SRE workbook, 30-day budget).
DEFAULT_BURN_RATES: tuple[tuple[Severity, str, str, float], ...] = (
    ("critical", "1h", "5m", 14.4),
    ("warning", "6h", "30m", 6.0),
)
DEFAULT_SLO_WINDOW = "30d"
DEFAULT_ALERT_LABELS = ("service", "service_name", "job")
DEFAULT_SEVERITIES: tuple[tuple[str, AlertMapping], ...] = (
    ("critical", "critical"),
    ("page", "critical"),
    ("warning", "warning"),
)

_WILDCARD = re.compile(r"\[[^\]]*\]|[*?]")


def is_glob(pattern: str) -> bool:
    return _WILDCARD.search(pattern) is not None


def literal_chars(pattern: str) -> int:
    """Characters a pattern matches literally: `checkout*` has 8, `*-db` 3, `[ab]x` 1."""
    return len(_WILDCARD.sub("", pattern))


def matches(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern)


@dataclass(frozen=True)
class NodeRule:
    """A `services:` entry: a node name or glob pattern and its settings."""

    pattern: str
    rules: RuleSet
    order: int = 0

    def specificity(self) -> tuple[bool, int, int]:
        return (not is_glob(self.pattern), literal_chars(self.pattern), -self.order)


@dataclass(frozen=True)
class EdgeRule:
    """An `edges:` entry, `SOURCE -> TARGET` with a name or glob pattern on each side."""

    source: str
    target: str
    rules: RuleSet
    order: int = 0

    def matches(self, source: str, target: str) -> bool:
        return matches(self.source, source) and matches(self.target, target)

    def specificity(self) -> tuple[bool, int, int]:
        exact = not is_glob(self.source) and not is_glob(self.target)
        return (exact, literal_chars(self.source) + literal_chars(self.target), -self.order)


@dataclass(frozen=True)
class BurnRate:
    """Fire `severity` when the burn rate over both windows is at least `factor`."""

    severity: Severity
    long: str
    short: str
    factor: float

    @property
    def long_ns(self) -> int:
        return _duration(self.long)

    @property
    def short_ns(self) -> int:
        return _duration(self.short)


@dataclass(frozen=True)
class Slo:
    """An availability SLO (good = not failed) or, with `threshold_ms`, a latency SLO
    (good = latency at or under the threshold), for the nodes or edges its pattern matches."""

    name: str
    objective: float
    service: str | None = None
    edge: tuple[str, str] | None = None
    window: str = DEFAULT_SLO_WINDOW
    threshold_ms: float | None = None
    burn_rates: tuple[BurnRate, ...] = tuple(
        BurnRate(severity, long, short, factor)
        for severity, long, short, factor in DEFAULT_BURN_RATES
    )
    min_calls: int | None = None

    @property
    def kind(self) -> Literal["availability", "latency"]:
        return "availability" if self.threshold_ms is None else "latency"

    @property
    def window_ns(self) -> int:
        return _duration(self.window)

    def applies_to_node(self, node_id: str) -> bool:
        return self.service is not None and matches(self.service, node_id)

    def applies_to_edge(self, source: str, target: str) -> bool:
        return (
            self.edge is not None
            and matches(self.edge[0], source)
            and matches(self.edge[1], target)
        )


@dataclass(frozen=True)
class AlertConfig:
    """How Alertmanager alerts are matched to nodes and mapped to a status."""

    labels: tuple[str, ...] = DEFAULT_ALERT_LABELS
    severity_label: str = "severity"
    severities: tuple[tuple[str, AlertMapping], ...] = DEFAULT_SEVERITIES
    other: AlertMapping = "warning"

    def status_of(self, severity: str | None) -> AlertMapping:
        if severity is not None:
            for value, mapped in self.severities:
                if value == severity.lower():
                    return mapped
        return self.other


@dataclass(frozen=True)
class Rules:
    defaults: RuleSet = BUILTIN_DEFAULTS
    services: tuple[NodeRule, ...] = ()
    edges: tuple[EdgeRule, ...] = ()
    slos: tuple[Slo, ...] = ()
    alerts: AlertConfig = field(default_factory=AlertConfig)

    def for_node(self, node_id: str) -> RuleSet:
        """The effective settings of a node: the most specific `services` entry first."""
        chosen = sorted(
            (r for r in self.services if matches(r.pattern, node_id)),
            key=NodeRule.specificity,
            reverse=True,
        )
        return _merge([r.rules for r in chosen], self.defaults)

    def for_edge(self, source: str, target: str) -> RuleSet:
        """The effective settings of an edge: the most specific `edges` entry first."""
        chosen = sorted(
            (r for r in self.edges if r.matches(source, target)),
            key=EdgeRule.specificity,
            reverse=True,
        )
        return _merge([r.rules for r in chosen], self.defaults)


def _merge(scopes: Sequence[RuleSet], defaults: RuleSet) -> RuleSet:
    merged = defaults
    for scope in reversed(scopes):
        merged = scope.over(merged)
    return merged


DEFAULT_RULES = Rules()


def _duration(text: str) -> int:
    ns = parse_duration_ns(text)
    if ns is None:
        raise ValueError(f"not a duration: {text!r}")
    return ns


# --- parsing and validation ------------------------------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_TOP_KEYS = ("defaults", "services", "edges", "slos", "alerts")
_SCOPE_KEYS = ("min_calls", *MEASURES)
_SLO_KEYS = (
    "name",
    "service",
    "edge",
    "objective",
    "window",
    "threshold_ms",
    "burn_rates",
    "min_calls",
)
_ALERT_KEYS = ("labels", "severity_label", "severities", "other")
Path_ = tuple[str | int, ...]
_COLLECTION = object()


def _path_text(path: Path_) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if _IDENTIFIER.match(part) else json.dumps(part, ensure_ascii=False)
            text += f".{name}" if text else name
    return text


class _Reader:
    """Walks the composed YAML nodes; every error carries the file, line and field."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.constructor = SafeConstructor()

    def fail(self, node: Node, path: Path_, message: str) -> RulesError:
        where = f"{self.filename}:{node.start_mark.line + 1}"
        field_text = _path_text(path)
        return RulesError(
            f"{where}: {field_text}: {message}" if field_text else f"{where}: {message}"
        )

    def mapping(
        self, node: Node, path: Path_, allowed: Sequence[str] | None = None
    ) -> dict[str, tuple[Node, Node]]:
        """Key → (key node, value node), rejecting non-mappings, unknown and repeated keys."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, path, "expected a mapping")
        entries: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.fail(key_node, path, "keys must be plain strings")
            key = str(key_node.value)
            if key in entries:
                raise self.fail(key_node, (*path, key), "repeated key")
            if allowed is not None and key not in allowed:
                expected = ", ".join(allowed)
                raise self.fail(
                    key_node, (*path, key), f"unknown key (expected one of: {expected})"
                )
            entries[key] = (key_node, value_node)
        return entries

    def sequence(self, node: Node, path: Path_) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, path, "expected a list")
        return list(node.value)

    def scalar(self, node: Node, path: Path_) -> Any:
        """A scalar's value; a list or mapping gives a marker no typed reader accepts."""
        if not isinstance(node, ScalarNode):
            return _COLLECTION
        return self.constructor.construct_object(node)

    def number(self, node: Node, path: Path_) -> float:
        value = self.scalar(node, path)
        if isinstance(value, str) and isinstance(node, ScalarNode) and node.style is None:
            value = float(value) if _FLOAT.match(value) else value  # YAML 1.1 reads 1e-3 as text
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, path, "expected a number")
        if value != value or value in (float("inf"), float("-inf")):
            raise self.fail(node, path, "expected a finite number")
        return float(value)

    def count(self, node: Node, path: Path_) -> int:
        value = self.scalar(node, path)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(node, path, "expected a whole number, 0 or more")
        return value

    def string(self, node: Node, path: Path_) -> str:
        value = self.scalar(node, path)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, path, "expected a non-empty string")
        return value.strip()

    def duration(self, node: Node, path: Path_) -> str:
        value = self.scalar(node, path)
        ns = parse_duration_ns(value) if isinstance(value, str) else None
        if not isinstance(value, str) or ns is None or ns <= 0:
            raise self.fail(node, path, "expected a duration such as 5m, 1h, 30d")
        return value.strip()

    def choice(self, node: Node, path: Path_, options: Sequence[T]) -> T:
        value = self.scalar(node, path)
        for option in options:
            if value == option:
                return option
        raise self.fail(node, path, "expected one of: " + ", ".join(map(str, options)))

    # --- sections ---

    def thresholds(self, node: Node, path: Path_, measure: str) -> Thresholds:
        entries = self.mapping(node, path, ("warning", "critical"))
        levels: dict[str, float] = {}
        for level, (_, value_node) in entries.items():
            value = self.number(value_node, (*path, level))
            if value < 0:
                raise self.fail(value_node, (*path, level), "expected a number, 0 or more")
            if measure == "error_rate" and value > 1:
                raise self.fail(
                    value_node, (*path, level), "expected a fraction between 0 and 1 (0.05 = 5 %)"
                )
            levels[level] = value
        warning, critical = levels.get("warning"), levels.get("critical")
        if warning is not None and critical is not None and warning > critical:
            raise self.fail(node, path, f"warning ({warning:g}) is above critical ({critical:g})")
        return Thresholds(warning, critical)

    def scope(self, node: Node, path: Path_) -> RuleSet:
        entries = self.mapping(node, path, _SCOPE_KEYS)
        values: dict[str, Any] = {}
        for key, (_, value_node) in entries.items():
            if key == "min_calls":
                values[key] = self.count(value_node, (*path, key))
            else:
                values[key] = self.thresholds(value_node, (*path, key), key)
        return RuleSet(**values)

    def node_rules(self, node: Node, path: Path_) -> tuple[NodeRule, ...]:
        rules = []
        for order, (key, (key_node, value_node)) in enumerate(self.mapping(node, path).items()):
            if not key.strip():
                raise self.fail(key_node, (*path, key), "expected a service name or pattern")
            rules.append(NodeRule(key, self.scope(value_node, (*path, key)), order))
        return tuple(rules)

    def edge_key(self, key_node: Node, path: Path_, key: str) -> tuple[str, str]:
        source, arrow, target = key.partition("->")
        if not arrow or not source.strip() or not target.strip() or "->" in target:
            raise self.fail(key_node, (*path, key), 'expected "SOURCE -> TARGET"')
        return source.strip(), target.strip()

    def edge_rules(self, node: Node, path: Path_) -> tuple[EdgeRule, ...]:
        rules = []
        for order, (key, (key_node, value_node)) in enumerate(self.mapping(node, path).items()):
            source, target = self.edge_key(key_node, path, key)
            rules.append(EdgeRule(source, target, self.scope(value_node, (*path, key)), order))
        return tuple(rules)

    def burn_rates(self, node: Node, path: Path_) -> tuple[BurnRate, ...]:
        entries = self.mapping(node, path, ("critical", "warning"))
        conditions: list[BurnRate] = []
        for severity, (_, list_node) in entries.items():
            for index, item in enumerate(self.sequence(list_node, (*path, severity))):
                item_path = (*path, severity, index)
                fields_ = self.mapping(item, item_path, ("long", "short", "factor"))
                for required in ("long", "short", "factor"):
                    if required not in fields_:
                        raise self.fail(item, item_path, f"missing key {required!r}")
                long = self.duration(fields_["long"][1], (*item_path, "long"))
                short = self.duration(fields_["short"][1], (*item_path, "short"))
                factor_node = fields_["factor"][1]
                factor = self.number(factor_node, (*item_path, "factor"))
                if factor <= 0:
                    raise self.fail(
                        factor_node, (*item_path, "factor"), "expected a number above 0"
                    )
                if _duration(short) > _duration(long):
                    raise self.fail(item, item_path, f"short window {short} is longer than {long}")
                level: Severity = "critical" if severity == "critical" else "warning"
                conditions.append(BurnRate(level, long, short, factor))
        return tuple(conditions)

    def slo(self, node: Node, path: Path_) -> Slo:
        entries = self.mapping(node, path, _SLO_KEYS)
        for required in ("name", "objective"):
            if required not in entries:
                raise self.fail(node, path, f"missing key {required!r}")
        if ("service" in entries) == ("edge" in entries):
            raise self.fail(node, path, "give exactly one of 'service' and 'edge'")

        def value(key: str, read: Callable[[Node, Path_], T]) -> T:
            return read(entries[key][1], (*path, key))

        name = value("name", self.string)
        objective_node = entries["objective"][1]
        objective = value("objective", self.number)
        if not 0 < objective < 1:
            raise self.fail(
                objective_node, (*path, "objective"), "expected a fraction between 0 and 1 (0.999)"
            )
        slo = Slo(name=name, objective=objective)
        if "service" in entries:
            slo = replace(slo, service=value("service", self.string))
        else:
            key_node = entries["edge"][1]
            slo = replace(slo, edge=self.edge_key(key_node, path, value("edge", self.string)))
        if "window" in entries:
            slo = replace(slo, window=value("window", self.duration))
        if "threshold_ms" in entries:
            threshold = value("threshold_ms", self.number)
            if threshold <= 0:
                raise self.fail(
                    entries["threshold_ms"][1], (*path, "threshold_ms"), "expected a number above 0"
                )
            slo = replace(slo, threshold_ms=threshold)
        if "burn_rates" in entries:
            slo = replace(slo, burn_rates=value("burn_rates", self.burn_rates))
        if "min_calls" in entries:
            slo = replace(slo, min_calls=value("min_calls", self.count))
        longest = max(slo.burn_rates, key=lambda condition: condition.long_ns, default=None)
        if longest is not None and longest.long_ns > slo.window_ns:
            raise self.fail(
                node,
                (*path, "window"),
                f"SLO window {slo.window} is shorter than its burn-rate window {longest.long}",
            )
        return slo

    def slos(self, node: Node, path: Path_) -> tuple[Slo, ...]:
        slos: list[Slo] = []
        for index, item in enumerate(self.sequence(node, path)):
            slo = self.slo(item, (*path, index))
            if any(other.name == slo.name for other in slos):
                raise self.fail(item, (*path, index, "name"), f"repeated SLO name {slo.name!r}")
            slos.append(slo)
        return tuple(slos)

    def alerts(self, node: Node, path: Path_) -> AlertConfig:
        entries = self.mapping(node, path, _ALERT_KEYS)
        config = AlertConfig()
        if "labels" in entries:
            list_node = entries["labels"][1]
            labels = tuple(
                self.string(item, (*path, "labels", index))
                for index, item in enumerate(self.sequence(list_node, (*path, "labels")))
            )
            if not labels:
                raise self.fail(list_node, (*path, "labels"), "expected at least one label")
            config = replace(config, labels=labels)
        if "severity_label" in entries:
            config = replace(
                config,
                severity_label=self.string(entries["severity_label"][1], (*path, "severity_label")),
            )
        mapped: tuple[AlertMapping, ...] = ("critical", "warning", "ignore")
        if "severities" in entries:
            sev_path = (*path, "severities")
            table = dict(DEFAULT_SEVERITIES)
            for key, (_, value_node) in self.mapping(entries["severities"][1], sev_path).items():
                table[key.lower()] = self.choice(value_node, (*sev_path, key), mapped)
            config = replace(config, severities=tuple(sorted(table.items())))
        if "other" in entries:
            config = replace(
                config, other=self.choice(entries["other"][1], (*path, "other"), mapped)
            )
        return config

    def rules(self, root: Node | None) -> Rules:
        if root is None:
            return Rules()
        entries = self.mapping(root, (), _TOP_KEYS)
        rules = Rules()
        if "defaults" in entries:
            rules = replace(
                rules,
                defaults=self.scope(entries["defaults"][1], ("defaults",)).over(BUILTIN_DEFAULTS),
            )
        if "services" in entries:
            rules = replace(rules, services=self.node_rules(entries["services"][1], ("services",)))
        if "edges" in entries:
            rules = replace(rules, edges=self.edge_rules(entries["edges"][1], ("edges",)))
        if "slos" in entries:
            rules = replace(rules, slos=self.slos(entries["slos"][1], ("slos",)))
        if "alerts" in entries:
            rules = replace(rules, alerts=self.alerts(entries["alerts"][1], ("alerts",)))
        return rules


def parse_rules(text: str, filename: str = "rules.yaml") -> Rules:
    """Validate a rules document; a RulesError names the file, line and field."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "malformed"
        raise RulesError(f"{filename}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{filename}: invalid YAML: {exc}") from None
    return _Reader(filename).rules(root)


def read_text_file(path: str | Path, what: str) -> str:
    """A rules or alerts file's text; a missing or unreadable file is one clear line."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise RulesError(f"{path}: cannot read {what}: {reason}") from None


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file."""
    return parse_rules(read_text_file(path, "rules file"), str(path))
