"""DESIGN §3-§5 pairing, checked against a small pure-Python reference on seeded random spans.

The reference below is written from the rules, one small function per rule, over plain dicts;
it shares no code with servicemap/pairing.py. Each seed generates a few traces of spans
(services, kinds, parents present/missing/root, statuses, naming attributes, consumer links,
spans seen twice), writes them as OTLP/JSON through tests/spans.py, reads them with the real
reader and runs `build_graph`; edges (calls, errors, connection, latency), nodes (kind,
requests, errors, latency), pairing quality and window counts must equal the reference's.

Where DESIGN leaves room, the reference follows servicemap's choices:
- spans of an unknown service are counted but pair with nothing (no rule starts or ends at
  one): a consumer parented or linked to such a producer does not take its destination;
- a CLIENT span with SERVER children in two services makes one call to each; with two in one
  service, one call whose server-side latency is the longer server span;
- a consumer linked to several producers takes the smallest of their destination names;
- a name called as two kinds of node is the first of service, database, messaging,
  external, user (`best_kind`); one that is only a caller takes its caller kinds the same way;
- `virtual` counts every call with a virtual end, also one later dropped as a self-edge;
- `paired` counts the spans of cross-service parent/child pairs of named services, and of
  same-service pairs whose child is a SERVER under a CLIENT parent (rule 1's self-edge).

On a mismatch the failure names the seed and prints its spans as tests/spans.py calls;
`generate(seed)` rebuilds them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

from servicemap.build import build_graph
from servicemap.graph import Latency, ServiceGraph
from servicemap.schema import UNKNOWN_SERVICE
from servicemap.sources import SpanSources
from servicemap.sources.detect import read_documents
from tests.spans import document, span

SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = (
    "server",
    "client",
    "producer",
    "consumer",
    "internal",
)
UNSPECIFIED = None
UNSET, OK, ERROR = 0, 1, 2

Record = dict[str, Any]  # one span: trace, label, parent, service, kind, status, attrs, links, ...
Call = dict[str, Any]  # one call: source(_kind), target(_kind), connection, failed, virtual, ...
Quantiles = tuple[float, float, float] | None
# (source, target) → calls, errors, connection, latency, server-side latency
Edges = dict[tuple[str, str], tuple[int, int, str, Quantiles, Quantiles]]
Nodes = dict[str, tuple[str, int, int, Quantiles]]  # id → kind, requests, errors, latency
Summary = tuple[Edges, Nodes, tuple[int, int, int], tuple[int, int]]

KIND_PRIORITY = ["service", "database", "messaging", "external", "user"]
CONNECTION_PRIORITY = ["direct", "database", "messaging", "virtual"]


# --- the reference ----------------------------------------------------------------------


def attr(record: Record, *keys: str) -> str | None:
    """The first of the attributes that is set (DESIGN's "X, else Y")."""
    for key in keys:
        if key in record["attrs"]:
            return str(record["attrs"][key])
    return None


def failed(record: Record) -> bool:
    return bool(record["status"] == ERROR)


def duration(record: Record) -> int:
    return int(record["duration_ms"] * 1_000_000)


def named(record: Record) -> bool:
    return bool(record["service"] != UNKNOWN_SERVICE)


def copies_of_spans(records: list[Record]) -> list[list[Record]]:
    """The records of each span, in the order spans are first seen (§3: same trace, span id
    and service is the same span)."""
    copies: dict[tuple[str, str, str], list[Record]] = {}
    for record in records:
        copies.setdefault((record["trace"], record["label"], record["service"]), []).append(record)
    return list(copies.values())


def deduplicate(records: list[Record]) -> list[Record]:
    """§3: a span seen twice counts once: its longest copy (the first of equals), failed when
    any copy failed."""
    kept = []
    for copies in copies_of_spans(records):
        longest = dict(max(copies, key=duration))
        if any(failed(copy) for copy in copies):
            longest["status"] = ERROR
        kept.append(longest)
    return kept


class Trace:
    """Parent and child lookups over some spans (ids are per trace)."""

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.by_id = {(r["trace"], r["label"]): r for r in records}
        self.children: dict[tuple[str, str], list[Record]] = {}
        for record in records:
            parent = self.parent(record)
            if parent is not None:
                self.children.setdefault((parent["trace"], parent["label"]), []).append(record)

    def parent(self, record: Record) -> Record | None:
        if record["parent"] is None:
            return None
        return self.by_id.get((record["trace"], record["parent"]))

    def children_of(self, record: Record) -> list[Record]:
        return self.children.get((record["trace"], record["label"]), [])

    def named_pairs(self) -> Iterable[tuple[Record, Record]]:
        """(parent, child) where both spans are of named services."""
        for child in self.records:
            parent = self.parent(child)
            if parent is not None and named(parent) and named(child):
                yield parent, child


def call(
    source: tuple[str, str],
    target: tuple[str, str],
    connection: str,
    is_failed: bool,
    latency: int,
    server_latency: int | None,
    *,
    virtual: bool,
) -> Call:
    """A call from (name, kind) to (name, kind)."""
    return {
        "source": source[0],
        "source_kind": source[1],
        "target": target[0],
        "target_kind": target[1],
        "connection": connection,
        "failed": is_failed,
        "latency": latency,
        "server_latency": server_latency,
        "virtual": virtual,
    }


def service(record: Record) -> tuple[str, str]:
    return (record["service"], "service")


def rule1_client_to_server(trace: Trace) -> list[Call]:
    """CLIENT in A with a SERVER child in B → A→B; timed by the client, server side kept."""
    calls = []
    for client in trace.records:
        if client["kind"] != CLIENT or not named(client):
            continue
        servers = [c for c in trace.children_of(client) if c["kind"] == SERVER and named(c)]
        for name in sorted({s["service"] for s in servers}):
            side = [s for s in servers if s["service"] == name]
            any_failed = failed(client) or any(failed(s) for s in side)
            server_latency = max(duration(s) for s in side)
            calls.append(
                call(
                    service(client),
                    (name, "service"),
                    "direct",
                    any_failed,
                    duration(client),
                    server_latency,
                    virtual=False,
                )
            )
    return calls


def rule2_producer_destination(producer: Record) -> str | None:
    return attr(producer, "messaging.destination.name", "peer.service", "messaging.system")


def rule2_producer_side(trace: Trace) -> list[Call]:
    """PRODUCER in A → A→D, D its destination."""
    calls = []
    for producer in trace.records:
        if producer["kind"] != PRODUCER or not named(producer):
            continue
        topic = rule2_producer_destination(producer)
        if topic is not None:
            calls.append(
                call(
                    service(producer),
                    (topic, "messaging"),
                    "messaging",
                    failed(producer),
                    duration(producer),
                    None,
                    virtual=True,
                )
            )
    return calls


def rule2_consumer_destination(consumer: Record, trace: Trace, everywhere: Trace) -> str | None:
    """Its own destination, else its parent producer's, else a linked producer's, else the
    messaging system."""
    own = attr(consumer, "messaging.destination.name", "peer.service")
    if own is not None:
        return own
    parent = trace.parent(consumer)
    if parent is not None and parent["kind"] == PRODUCER and named(parent):
        by_parent = rule2_producer_destination(parent)
        if by_parent is not None:
            return by_parent
    linked = [everywhere.by_id.get(link) for link in consumer["links"]]
    topics = [
        topic
        for producer in linked
        if producer is not None and producer["kind"] == PRODUCER and named(producer)
        for topic in [rule2_producer_destination(producer)]
        if topic is not None
    ]
    if topics:
        return min(topics)
    return attr(consumer, "messaging.system")


def rule2_consumer_side(trace: Trace, everywhere: Trace) -> list[Call]:
    """CONSUMER in B → D→B; with no destination at all, no edge."""
    calls = []
    for consumer in trace.records:
        if consumer["kind"] != CONSUMER or not named(consumer):
            continue
        destination = rule2_consumer_destination(consumer, trace, everywhere)
        if destination is not None:
            calls.append(
                call(
                    (destination, "messaging"),
                    service(consumer),
                    "messaging",
                    failed(consumer),
                    duration(consumer),
                    duration(consumer),
                    virtual=True,
                )
            )
    return calls


def rules3_4_paired(client: Record, trace: Trace) -> bool:
    """A CLIENT is paired by a SERVER child or by a child in another service (both named)."""
    return any(
        named(child) and (child["kind"] == SERVER or child["service"] != client["service"])
        for child in trace.children_of(client)
    )


def rule3_database_name(client: Record) -> str | None:
    if attr(client, "db.system", "db.system.name") is None:
        return None
    return attr(
        client,
        "peer.service",
        "db.namespace",
        "db.name",
        "server.address",
        "db.system.name",
        "db.system",
    )


def url_host(url: str | None) -> str | None:
    """The host of an absolute URL (scheme://[user@]host[:port]/...), IPv6 brackets kept."""
    if url is None or "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    if not scheme or not scheme[0].isalpha():
        return None
    authority = rest
    for stop in "/?#":
        authority = authority.split(stop, 1)[0]
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):  # [IPv6]:port
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0] or None


def rule4_external_name(client: Record) -> str:
    return (
        attr(client, "peer.service", "server.address")
        or url_host(attr(client, "url.full"))
        or "unknown"
    )


def rules3_4_unpaired_client(trace: Trace) -> list[Call]:
    """Unpaired CLIENT → a database node when db.system is set, else an external node."""
    calls = []
    for client in trace.records:
        if client["kind"] != CLIENT or not named(client) or rules3_4_paired(client, trace):
            continue
        database = rule3_database_name(client)
        if database is not None:
            target, connection = (database, "database"), "database"
        else:
            target, connection = (rule4_external_name(client), "external"), "virtual"
        calls.append(
            call(
                service(client),
                target,
                connection,
                failed(client),
                duration(client),
                None,
                virtual=True,
            )
        )
    return calls


def rule5_root_server(trace: Trace) -> list[Call]:
    """A root SERVER span (no parent id at all) ← the user, or the external peer it names."""
    calls = []
    for server in trace.records:
        if server["kind"] != SERVER or server["parent"] is not None or not named(server):
            continue
        peer = attr(server, "peer.service")
        caller = (peer, "external") if peer is not None else ("user", "user")
        calls.append(
            call(
                caller,
                service(server),
                "virtual",
                failed(server),
                duration(server),
                duration(server),
                virtual=True,
            )
        )
    return calls


def rule6_other_cross_service(trace: Trace) -> list[Call]:
    """Any other parent/child pair across services: parent → child, timed by the child."""
    calls = []
    for parent, child in trace.named_pairs():
        if parent["service"] == child["service"]:
            continue
        if (parent["kind"], child["kind"]) in ((CLIENT, SERVER), (PRODUCER, CONSUMER)):
            continue
        calls.append(
            call(
                service(parent),
                service(child),
                "direct",
                failed(parent) or failed(child),
                duration(child),
                None,
                virtual=False,
            )
        )
    return calls


def all_calls(records: list[Record]) -> list[Call]:
    everywhere = Trace(records)
    calls: list[Call] = []
    for trace_id in sorted({r["trace"] for r in records}):
        trace = Trace([r for r in records if r["trace"] == trace_id])
        calls += rule1_client_to_server(trace)
        calls += rule2_producer_side(trace)
        calls += rule2_consumer_side(trace, everywhere)
        calls += rules3_4_unpaired_client(trace)
        calls += rule5_root_server(trace)
        calls += rule6_other_cross_service(trace)
    return calls


def resolve_virtual_names(calls: list[Call], services: set[str]) -> list[Call]:
    """The user caller steps aside from a service called `user`; a virtual name that is a
    service is that service, and a self-edge only through such a name is dropped."""
    resolved = []
    for c in calls:
        if c["source_kind"] == "user" and "user" in services:
            c = {**c, "source": "user (virtual)"}
        if c["virtual"] and c["source"] == c["target"]:
            continue
        resolved.append(c)
    return resolved


def quantiles(values: list[int | None]) -> Quantiles:
    """Exact p50/p95/p99 in ms, linear between closest ranks; None without any value."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    result = []
    for q in (0.5, 0.95, 0.99):
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
        result.append(round(value / 1e6, 3))
    return (result[0], result[1], result[2])


def rules7_8_edges(calls: list[Call]) -> Edges:
    """An edge counts its calls, the failed ones (rule 7) and their latencies (rule 8)."""
    grouped: dict[tuple[str, str], list[Call]] = {}
    for c in calls:
        grouped.setdefault((c["source"], c["target"]), []).append(c)
    return {
        key: (
            len(group),
            sum(c["failed"] for c in group),
            min((c["connection"] for c in group), key=CONNECTION_PRIORITY.index),
            quantiles([c["latency"] for c in group]),
            quantiles([c["server_latency"] for c in group]),
        )
        for key, group in grouped.items()
    }


def best_kind(kinds: Iterable[str]) -> str:
    return min(kinds, key=KIND_PRIORITY.index)


def section5_nodes(records: list[Record], calls: list[Call]) -> Nodes:
    """A service counts its SERVER/CONSUMER spans (its incoming calls when it has none); a
    virtual node the calls into it; a node that only calls counts nothing."""
    services = {r["service"] for r in records}
    nodes: Nodes = {}
    for name in services:
        incoming = [r for r in records if r["service"] == name and r["kind"] in (SERVER, CONSUMER)]
        nodes[name] = (
            "service",
            len(incoming),
            sum(failed(r) for r in incoming),
            quantiles([duration(r) for r in incoming]),
        )
    for target in {c["target"] for c in calls}:
        into = [c for c in calls if c["target"] == target]
        if target in services and nodes[target][1] > 0:
            continue
        kind = "service" if target in services else best_kind(c["target_kind"] for c in into)
        nodes[target] = (
            kind,
            len(into),
            sum(c["failed"] for c in into),
            quantiles([c["latency"] for c in into]),
        )
    for source in {c["source"] for c in calls} - set(nodes):
        kinds = (c["source_kind"] for c in calls if c["source"] == source)
        nodes[source] = (best_kind(kinds), 0, 0, None)
    return nodes


def rule9_quality(records: list[Record], calls: list[Call]) -> tuple[int, int, int]:
    """Spans in pairs, calls with a virtual end, spans whose parent is missing."""
    paired: set[tuple[str, str, str]] = set()
    orphans = 0
    for trace_id in {r["trace"] for r in records}:
        trace = Trace([r for r in records if r["trace"] == trace_id])
        for parent, child in trace.named_pairs():
            cross = parent["service"] != child["service"]
            same_service_pair = parent["kind"] == CLIENT and child["kind"] == SERVER
            if cross or same_service_pair:
                paired.update((r["trace"], r["label"], r["service"]) for r in (parent, child))
        orphans += sum(
            1 for r in trace.records if r["parent"] is not None and trace.parent(r) is None
        )
    return len(paired), sum(c["virtual"] for c in calls), orphans


def reference(raw: list[Record]) -> Summary:
    records = deduplicate(raw)
    calls = all_calls(records)
    kept = resolve_virtual_names(calls, {r["service"] for r in records})
    return (
        rules7_8_edges(kept),
        section5_nodes(records, kept),
        rule9_quality(records, calls),
        (len(records), len({r["trace"] for r in records})),
    )


# --- random span sets ---------------------------------------------------------------------

SERVICES = ["a", "b", "c", "d"]
# An unknown service, and services named like the virtual nodes the attributes name.
ODD_SERVICES = [UNKNOWN_SERVICE, "orders-db", "topic-1", "partner", "user", "api.example"]
KINDS: list[str | None] = [SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL, UNSPECIFIED]
ATTRIBUTES: dict[str, list[str]] = {
    "peer.service": ["b", "partner", "orders-db", "topic-1", "user"],
    "db.system": ["postgresql", "redis"],
    "db.system.name": ["postgresql", "mysql"],
    "db.namespace": ["orders-db", "c"],
    "db.name": ["orders", "users"],
    "server.address": ["api.example", "db.internal"],
    "url.full": [
        "https://api.example:8443/v1?q=1",
        "http://me@pay.example/x",
        "http://[::1]:8080/",
        "http:///nohost",
        "not a url",
    ],
    "messaging.system": ["kafka", "rabbitmq"],
    "messaging.destination.name": ["topic-1", "topic-2", "d"],
}


def generate(seed: int) -> list[Record]:
    """1-4 traces of 1-12 spans, shuffled; in half the seeds some spans are seen twice."""
    rng = random.Random(seed)
    retries = rng.random() < 0.5
    records: list[Record] = []
    for t in range(rng.randint(1, 4)):
        trace: list[Record] = []
        for i in range(rng.randint(1, 12)):
            trace.append(random_span(rng, trace, f"r{seed}t{t}", f"s{i}"))
        records += trace
    add_links(rng, records)
    if retries:
        copies = [dict(r) for r in records if rng.random() < 0.15]
        for copy in copies:
            if rng.random() < 0.3:  # a shorter copy that has the error the longer one lacks
                copy.update(status=ERROR, duration_ms=copy["duration_ms"] / 2)
        records += copies
    rng.shuffle(records)
    return records


def random_span(rng: random.Random, trace: list[Record], trace_id: str, label: str) -> Record:
    parent = rng.choice(trace) if trace and rng.random() < 0.7 else None
    kind = rng.choice(KINDS)
    if parent is not None and parent["kind"] == CLIENT and rng.random() < 0.5:
        kind = SERVER
    if parent is not None and parent["kind"] == PRODUCER and rng.random() < 0.5:
        kind = CONSUMER
    if parent is not None:
        parent_label: str | None = parent["label"]
    else:
        parent_label = None if rng.random() < 0.8 else f"gone-{label}"
    odd = rng.random() < 0.08
    return {
        "trace": trace_id,
        "label": label,
        "parent": parent_label,
        "service": rng.choice(ODD_SERVICES if odd else SERVICES),
        "kind": kind,
        "status": rng.choice([UNSET, UNSET, OK, ERROR]),
        "attrs": {k: rng.choice(v) for k, v in ATTRIBUTES.items() if rng.random() < 0.15},
        "links": [],
        "duration_ms": float(rng.randint(1, 50)),
    }


def add_links(rng: random.Random, records: list[Record]) -> None:
    """Consumers link to producers of any trace of the seed (now and then to nothing)."""
    producers = [(r["trace"], r["label"]) for r in records if r["kind"] == PRODUCER]
    for record in records:
        if record["kind"] != CONSUMER or rng.random() < 0.4:
            continue
        for _ in range(rng.randint(1, 2)):
            if producers and rng.random() < 0.8:
                record["links"].append(rng.choice(producers))
            else:
                record["links"].append((record["trace"], "missing"))


# --- servicemap ---------------------------------------------------------------------------


def otlp_span(record: Record) -> dict[str, Any]:
    item = span(
        record["label"],
        record["service"],
        record["kind"],
        record["parent"],
        trace=record["trace"],
        error=record["status"] == ERROR,
        attrs=record["attrs"],
        links=record["links"],
        duration_ms=record["duration_ms"],
    )
    if record["status"] == OK:
        item["span"]["status"] = {"code": OK}
    return item


def otlp_document(records: list[Record]) -> dict[str, Any]:
    """OTLP/JSON; the unknown service's resource has no `service.name` at all (§3)."""
    doc = document(otlp_span(r) for r in records)
    for resource_spans in doc["resourceSpans"]:
        attributes = resource_spans["resource"]["attributes"]
        if attributes[0]["value"]["stringValue"] == UNKNOWN_SERVICE:
            resource_spans["resource"]["attributes"] = []
    return doc


def as_quantiles(latency: Latency | None) -> Quantiles:
    return None if latency is None else (latency.p50, latency.p95, latency.p99)


def summary(graph: ServiceGraph) -> Summary:
    return (
        {
            (e.source, e.target): (
                e.calls,
                e.errors,
                e.connection,
                as_quantiles(e.latency_ms),
                as_quantiles(e.server_latency_ms),
            )
            for e in graph.edges
        },
        {n.id: (n.kind, n.requests, n.errors, as_quantiles(n.latency_ms)) for n in graph.nodes},
        (graph.pairing.paired, graph.pairing.virtual, graph.pairing.orphans),
        (graph.window.spans, graph.window.traces),
    )


def servicemap_summary(records: list[Record]) -> Summary:
    table = read_documents([otlp_document(records)])
    return summary(build_graph(SpanSources(tables=[table])))


def reproduction(records: list[Record]) -> str:
    lines = ["spans = ["]
    for r in records:
        lines.append(
            f"    span({r['label']!r}, {r['service']!r}, {r['kind']!r}, {r['parent']!r}, "
            f"trace={r['trace']!r}, error={r['status'] == ERROR}, attrs={r['attrs']!r}, "
            f"links={r['links']!r}, duration_ms={r['duration_ms']}),"
            + ("  # status OK" if r["status"] == OK else "")
        )
    lines.append("]")
    return "\n".join(lines)


def changed(name: str, want: dict[Any, Any], got: dict[Any, Any]) -> list[str]:
    return [
        f"{name} {key}: reference {want.get(key)}, servicemap {got.get(key)}"
        for key in sorted(set(want) | set(got), key=str)
        if want.get(key) != got.get(key)
    ]


def differences(expected: Summary, actual: Summary) -> list[str]:
    out = changed("edge", expected[0], actual[0]) + changed("node", expected[1], actual[1])
    for name, want, got in [
        ("pairing (paired, virtual, orphans)", expected[2], actual[2]),
        ("window (spans, traces)", expected[3], actual[3]),
    ]:
        if want != got:
            out.append(f"{name}: reference {want}, servicemap {got}")
    return out


# --- the test -----------------------------------------------------------------------------

SEEDS = range(300)
# A DuckDB build costs ~80 ms whatever its size, so several seeds (trace ids apart) go into
# one build and the reference runs on the same union; a build that disagrees is retried seed
# by seed to name the seed. Seeds with and without repeated spans build apart, so both the
# deduplicating and the plain path of the pairing run.
SEEDS_PER_BUILD = 6
BLOCKS = [SEEDS[i : i + 30] for i in range(0, len(SEEDS), 30)]


def has_repeats(seed: int) -> bool:
    records = generate(seed)
    return len(deduplicate(records)) < len(records)


def disagreement(seeds: list[int]) -> str | None:
    records = [r for seed in seeds for r in generate(seed)]
    expected = reference(records)
    actual = servicemap_summary(records)
    if actual == expected:
        return None
    if len(seeds) > 1:
        alone = [d for seed in seeds if (d := disagreement([seed])) is not None]
        if alone:
            return "\n\n".join(alone)
    return "\n".join(
        [f"seeds {seeds} disagree:", reproduction(records), *differences(expected, actual)]
    )


@pytest.mark.parametrize("block", BLOCKS, ids=[f"seeds{b.start}-{b.stop - 1}" for b in BLOCKS])
def test_pairing_agrees_with_the_reference(block: range) -> None:
    ordered = sorted(block, key=has_repeats)
    builds = [ordered[i : i + SEEDS_PER_BUILD] for i in range(0, len(ordered), SEEDS_PER_BUILD)]
    failures = [d for build in builds if (d := disagreement(build)) is not None]
    assert not failures, "\n\n".join(failures)


def test_the_random_sets_reach_every_rule() -> None:
    """Each rule and each odd case comes up many times over the seeds."""
    seen: Counter[str] = Counter()
    for seed in SEEDS:
        raw = generate(seed)
        records = deduplicate(raw)
        calls = all_calls(records)
        seen.update(f"{c['source_kind']}→{c['target_kind']} {c['connection']}" for c in calls)
        seen["seed without repeats"] += len(raw) == len(records)
        seen["repeated span"] += len(raw) - len(records)
        seen["error only in a shorter copy"] += sum(
            not failed(max(copies, key=duration)) and any(failed(c) for c in copies)
            for copies in copies_of_spans(raw)
        )
        seen["unknown service"] += sum(not named(r) for r in records)
        seen["service named user"] += sum(r["service"] == "user" for r in records)
        seen["linked consumer"] += sum(bool(r["links"]) for r in records)
        seen["virtual self-edge"] += sum(c["virtual"] and c["source"] == c["target"] for c in calls)
        seen["orphan"] += rule9_quality(records, calls)[2]
    for case in [
        "service→service direct",
        "service→messaging messaging",
        "messaging→service messaging",
        "service→database database",
        "service→external virtual",
        "user→service virtual",
        "external→service virtual",
        "seed without repeats",
        "repeated span",
        "error only in a shorter copy",
        "unknown service",
        "service named user",
        "linked consumer",
        "virtual self-edge",
        "orphan",
    ]:
        assert seen[case] >= 20, (case, seen)
