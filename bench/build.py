"""Benchmark: `servicemap render --format json` against a plain DuckDB client→server join.

DESIGN §10: the build step is measured against the simplest query that yields a call graph,
a DuckDB join of CLIENT spans to their SERVER children, over the same Parquet files in the
same run. Target: render at most 1.25× the plain join's wall time, peak RSS under 600 MB.

1. Generate N realistic spans (default 5 M) into a servicemap Parquet dataset (vectorised:
   numpy and pyarrow, the only Python loops are over ~40 services and a few hundred trace
   templates). Traces of 10–30 spans over 40 services: a root SERVER span called by the user,
   CLIENT→SERVER pairs across services, INTERNAL spans, database and external CLIENT spans,
   PRODUCER/CONSUMER pairs through topics, two kind-less (Jaeger-style) services that
   rule 6 pairs, ~1 % errors, lognormal durations.
2. Run each contender in its own subprocess, interleaved, `--runs` times: the plain join
   (`python -c`, duckdb only) and `python -m servicemap render DATA --format json`. Wall
   time from `time.perf_counter`, CPU time and peak RSS from `os.wait4` (that child's rusage
   only; see LAUNCHER for why a small launcher process sits in between).
3. Print medians (wall and CPU), the ratio, spans/s, and a cheap correctness check: the
   calls on direct service→service edges in the render's JSON against the join's
   CLIENT→SERVER count plus the cross-service pairs rule 6 adds (plus the odd CLIENT span
   whose SERVER child was cut off with the dataset's last trace: rule 4 names it after the
   service it called, so it lands on that service node).

`bench/profile_build.py` breaks the render's time down by step and prototypes faster SQL.

Usage: `.venv/bin/python bench/build.py [--spans N] [--data DIR] [--keep] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from servicemap import storage
from servicemap.schema import SPAN_SCHEMA, SpanKind, StatusCode

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH_DIR / "data"
MARKER = ".servicemap-bench"  # only a directory holding this file is ever deleted
TARGET_RATIO = 1.25
TARGET_RSS_MB = 600.0
BATCH_SPANS = 500_000  # spans generated and written per batch (one or two files each)
WINDOW_NS = 3 * 3600 * 10**9  # the dataset spans three hours
BASE_TIME_NS = 1_736_935_200 * 10**9  # 2025-01-15T10:00:00Z

SERVER, CLIENT, INTERNAL = int(SpanKind.SERVER), int(SpanKind.CLIENT), int(SpanKind.INTERNAL)
PRODUCER, CONSUMER = int(SpanKind.PRODUCER), int(SpanKind.CONSUMER)

EDGE_SERVICES = ("frontend", "mobile-bff", "public-api")
MID_SERVICES = (
    "checkout", "cart", "catalog", "search", "recommendation", "pricing", "inventory",
    "shipping", "payment", "user-profile", "auth", "orders", "reviews", "ads", "currency",
    "fraud-detection", "loyalty", "notification", "email", "sms", "tax", "coupon", "wishlist",
    "media", "geo", "session",
)  # fmt: skip
LEAF_SERVICES = (
    "feature-flags", "config", "rate-limiter", "audit", "ledger", "analytics-ingest",
    "image-resizer", "accounting", "cdn-signer",
)  # fmt: skip
KINDLESS_SERVICES = ("quote", "warehouse")  # Jaeger without span.kind: every span INTERNAL
SERVICES = EDGE_SERVICES + MID_SERVICES + LEAF_SERVICES + KINDLESS_SERVICES
NAMESPACES = ("shop", "platform", "payments", "growth")

# (db.system.name, db.namespace, server.address, old-style attributes?) per database owner
DATABASES = {
    "cart": ("redis", None, "redis-cart", False),
    "catalog": ("postgresql", "catalog_db", "pg-catalog", False),
    "search": ("elasticsearch", None, "es-search", False),
    "inventory": ("postgresql", "inventory_db", "pg-inventory", False),
    "payment": ("postgresql", "payments_db", "pg-payments", False),
    "user-profile": ("mysql", "users", "mysql-users", True),
    "auth": ("redis", None, "redis-sessions", False),
    "orders": ("postgresql", "orders_db", "pg-orders", False),
    "reviews": ("mongodb", "reviews", "mongo-reviews", True),
    "ledger": ("postgresql", "ledger_db", "pg-ledger", False),
    "session": ("redis", None, "redis-sessions", False),
    "config": ("postgresql", "config_db", "pg-config", False),
    "audit": ("cassandra", "audit", "cassandra-audit", False),
    "accounting": ("mssql", "finance", "mssql-finance", True),
}
# (server.address, url.full) per external caller; one has only url.full (rule 4 parses it)
EXTERNALS = {
    "payment": ("api.stripe.com", "https://api.stripe.com/v1/charges"),
    "email": ("smtp.sendgrid.net", None),
    "sms": ("api.twilio.com", "https://api.twilio.com/2010-04-01/Messages.json"),
    "geo": (None, "https://maps.googleapis.com/maps/api/geocode/json?address=x"),
    "fraud-detection": ("api.sift.com", "https://api.sift.com/v205/events"),
}
# producer service → (topic, messaging.system, consumer services)
TOPICS = {
    "orders": ("order-events", "kafka", ("notification", "analytics-ingest", "ledger")),
    "checkout": ("payment-events", "kafka", ("accounting",)),
    "reviews": ("review-moderation", "rabbitmq", ("audit",)),
}


@dataclass
class Templates:
    """Trace templates as flat columns; trace t of template k uses rows offset[k]:offset[k+1]."""

    vocab: list[str] = field(default_factory=lambda: [""])
    index: dict[str, int] = field(default_factory=dict)
    columns: dict[str, list[int]] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list)

    def string(self, text: str | None) -> int:
        """Vocabulary index of a string; -1 stands for null."""
        if text is None:
            return -1
        if text not in self.index:
            self.index[text] = len(self.vocab)
            self.vocab.append(text)
        return self.index[text]


STRING_COLUMNS = (
    "service_name",
    "name",
    "peer_service",
    "server_address",
    "network_peer_address",
    "url_full",
    "db_system",
    "db_system_name",
    "db_namespace",
    "db_name",
    "messaging_system",
    "messaging_destination_name",
    "rpc_system",
    "service_namespace",
    "service_version",
    "deployment_environment",
    "host_name",
    "language",
    "http_method",
)
INT_TEMPLATE_COLUMNS = ("parent", "kind", "median_us", "network_peer_port", "is_http")


def _service_graph(rng: np.random.Generator) -> dict[str, list[str]]:
    """Who calls whom: edge services call 3–6 mid services; calls only go down the list."""
    callees: dict[str, list[str]] = {}
    mid_and_below = list(MID_SERVICES + LEAF_SERVICES + KINDLESS_SERVICES)
    for service in EDGE_SERVICES:
        callees[service] = list(rng.choice(MID_SERVICES, size=rng.integers(3, 7), replace=False))
    for position, service in enumerate(MID_SERVICES):
        below = mid_and_below[position + 1 :]
        count = min(len(below), int(rng.integers(1, 5)))
        callees[service] = list(rng.choice(below, size=count, replace=False))
    for service in LEAF_SERVICES + KINDLESS_SERVICES:
        callees[service] = []
    callers = EDGE_SERVICES + MID_SERVICES
    for position, service in enumerate(mid_and_below):  # every service has a caller
        if not any(service in called for called in callees.values()):
            caller = str(rng.choice(callers[: len(EDGE_SERVICES) + position]))
            callees[caller].append(service)
    return callees


@dataclass
class _Trace:
    """One trace template being walked: its spans as dicts of template columns."""

    rng: np.random.Generator
    rpc: dict[str, str | None]
    spans: list[dict[str, object]] = field(default_factory=list)

    def add(self, parent: int, service: str, kind: int, name: str, **attrs: object) -> int:
        """Append a span; kind-less services record every span as INTERNAL."""
        if service in KINDLESS_SERVICES:
            kind = INTERNAL
        http = kind in (SERVER, CLIENT) and self.rpc[service] is None and "db" not in attrs
        self.spans.append(
            {
                "parent": parent,
                "service_name": service,
                "kind": kind,
                "name": name,
                "median_us": int(self.rng.lognormal(np.log(4000), 1.0)),
                "is_http": int(http),
                **attrs,
            }
        )
        return len(self.spans) - 1


def _walk_trace(
    rng: np.random.Generator, callees: dict[str, list[str]], rpc: dict[str, str | None]
) -> list[dict[str, object]]:
    """One trace of 10–30 spans: a user call into an edge service, then a random walk down."""
    trace = _Trace(rng, rpc)
    target = int(rng.integers(10, 31))
    root_service = str(rng.choice(EDGE_SERVICES))
    root = trace.add(-1, root_service, SERVER, f"GET /{root_service}/{rng.integers(0, 8)}")
    queue = [(root, root_service)]
    while queue and len(trace.spans) < target:
        parent, service = queue.pop(int(rng.integers(0, len(queue))))
        options = ["internal"] + ["call"] * len(callees[service])
        options += ["db"] * 2 * (service in DATABASES) + ["external"] * (service in EXTERNALS)
        options += ["produce"] * (service in TOPICS)
        picked = rng.choice(options, size=min(len(options), int(rng.integers(1, 4))), replace=False)
        for option in picked:
            if len(trace.spans) >= min(target, 28):
                break
            if option == "internal":
                child = trace.add(parent, service, INTERNAL, f"{service}.process")
                queue.append((child, service))
            elif option == "call":
                callee = str(rng.choice(callees[service]))
                method = f"/{callee}.Api/Get" if rpc[callee] else f"GET /api/{callee}"
                client = trace.add(
                    parent, service, CLIENT, method,
                    rpc_system=rpc[callee], server_address=callee,
                    network_peer_port=8080 if rpc[callee] is None else 50051,
                )  # fmt: skip
                server = trace.add(client, callee, SERVER, method, rpc_system=rpc[callee])
                queue.append((server, callee))
            elif option == "db":
                system, namespace, address, old = DATABASES[service]
                db_attrs: dict[str, object] = {"server_address": address, "db": True}
                if old:
                    db_attrs.update(db_system=system, db_name=namespace)
                else:
                    db_attrs.update(db_system_name=system, db_namespace=namespace)
                db_attrs["network_peer_port"] = 5432
                trace.add(parent, service, CLIENT, f"SELECT {namespace or system}", **db_attrs)
            elif option == "external":
                host, url = EXTERNALS[service]
                trace.add(
                    parent, service, CLIENT, "POST",
                    server_address=host, url_full=url, network_peer_port=443,
                )  # fmt: skip
            else:
                topic, system, consumers = TOPICS[service]
                producer = trace.add(
                    parent, service, PRODUCER, f"{topic} publish",
                    messaging_system=system, messaging_destination_name=topic,
                )  # fmt: skip
                consumer = str(rng.choice(consumers))
                child = trace.add(
                    producer, consumer, CONSUMER, f"{topic} process",
                    messaging_system=system, messaging_destination_name=topic,
                )  # fmt: skip
                queue.append((child, consumer))
    while len(trace.spans) < 10:  # a shallow walk: pad with work inside the root service
        trace.add(root, root_service, INTERNAL, f"{root_service}.render")
    return trace.spans


def build_templates(rng: np.random.Generator, count: int) -> Templates:
    """`count` trace templates of 10–30 spans each, flattened into template columns."""
    callees = _service_graph(rng)
    rpc = {s: ("grpc" if rng.random() < 0.4 else None) for s in SERVICES}
    out = Templates()
    for column in (*STRING_COLUMNS, *INT_TEMPLATE_COLUMNS):
        out.columns[column] = []
    for _ in range(count):
        spans = _walk_trace(rng, callees, rpc)
        for span in spans:
            service = str(span["service_name"])
            number = SERVICES.index(service)
            is_db = bool(span.get("db"))
            peer_address = None
            if span["kind"] == CLIENT:
                peer_address = f"10.0.{number}.{7 if is_db else 3}"
            values: dict[str, object] = {
                **span,
                "network_peer_address": peer_address,
                "service_namespace": NAMESPACES[number % len(NAMESPACES)],
                "service_version": f"1.{number % 7}.{number % 3}",
                "deployment_environment": "production",
                "host_name": f"{service}-{number:02d}",
                "language": ("go", "java", "python", "nodejs")[number % 4],
                "http_method": "GET" if span["is_http"] else None,
            }
            for column in STRING_COLUMNS:
                out.columns[column].append(out.string(values.get(column)))  # type: ignore[arg-type]
            for column in INT_TEMPLATE_COLUMNS:
                raw = values.get(column)
                out.columns[column].append(-1 if raw is None else int(raw))  # type: ignore[call-overload]
        out.sizes.append(len(spans))
    return out


def _fixed_binary(data: np.ndarray, width: int) -> pa.Array:
    """A fixed-size binary array over the bytes of a (rows, width) uint8 numpy array."""
    raw = np.ascontiguousarray(data, dtype=np.uint8)
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(raw), [None, pa.py_buffer(raw.tobytes())]
    )


def _null_where(array: pa.Array, null: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(null), pa.scalar(None, array.type), array)


def _strings(vocab: pa.Array, indices: np.ndarray) -> pa.Array:
    return pc.take(vocab, pa.array(indices, type=pa.int32(), mask=indices < 0))


def _map(keys: list[pa.Array], items: list[pa.Array], valid: np.ndarray) -> pa.Array:
    """A map column with len(keys) entries per valid row, null elsewhere."""
    rows, width = len(valid), len(keys)
    counts = valid.astype(np.int32) * width
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    mask = np.append(~valid, False)
    chosen = np.flatnonzero(valid)
    key_cols = [k.take(pa.array(chosen)) for k in keys]
    item_cols = [i.take(pa.array(chosen)) for i in items]
    order = np.arange(len(chosen) * width).reshape(width, -1).T.ravel()  # interleave per row
    flat_keys = pa.concat_arrays(key_cols).take(pa.array(order))
    flat_items = pa.concat_arrays(item_cols).take(pa.array(order))
    return pa.MapArray.from_arrays(pa.array(offsets, mask=mask), flat_keys, flat_items)


def generate_batch(
    rng: np.random.Generator,
    templates: Templates,
    arrays: dict[str, np.ndarray],
    n_traces: int,
    first_trace: int,
    total_traces: int,
    max_spans: int,
    exact: bool,
) -> pa.Table:
    """Up to `n_traces` traces drawn from the templates, as a span table.

    At most `max_spans` rows: whole traces only, or with `exact` exactly `max_spans` rows, the
    last trace cut short (the dataset's final trace; the benchmark's check allows for it).
    """
    sizes_all = np.asarray(templates.sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes_all)])
    weights = 1.0 / np.arange(1, len(sizes_all) + 1) ** 0.8  # a few templates dominate
    chosen = rng.choice(len(sizes_all), size=n_traces, p=weights / weights.sum())
    sizes = sizes_all[chosen]
    ends = np.cumsum(sizes)
    if exact:
        n_traces = int(np.searchsorted(ends, max_spans, side="left")) + 1
    else:
        n_traces = max(1, int(np.searchsorted(ends, max_spans, side="right")))
    n_traces = min(n_traces, len(chosen))
    chosen, sizes, ends = chosen[:n_traces], sizes[:n_traces], ends[:n_traces]
    rows = min(int(ends[-1]), max_spans)
    starts = ends - sizes
    trace_of_row = np.repeat(np.arange(n_traces), sizes)[:rows]
    local = np.arange(rows) - starts[trace_of_row]
    t = offsets[chosen][trace_of_row] + local  # the template row behind each span

    trace_ids = rng.integers(0, 256, size=(n_traces, 16), dtype=np.uint8)
    span_ids = rng.integers(1, 2**63, size=rows, dtype=np.int64).view(np.uint8).reshape(rows, 8)
    parent_local = arrays["parent"][t]
    is_root = parent_local < 0
    parent_row = np.where(is_root, 0, starts[trace_of_row] + parent_local)
    parent_row = np.minimum(parent_row, rows - 1)

    trace_start = (
        BASE_TIME_NS
        + (first_trace + np.arange(n_traces)) * (WINDOW_NS // max(total_traces, 1))
        + rng.integers(0, 10**9, size=n_traces)
    )
    start = trace_start[trace_of_row] + local * 150_000 + rng.integers(0, 100_000, size=rows)
    duration = (arrays["median_us"][t] * 1000 * rng.lognormal(0.0, 0.5, size=rows)).astype(np.int64)
    failed = rng.random(rows) < 0.01
    status = np.where(failed, int(StatusCode.ERROR), int(StatusCode.UNSET)).astype(np.int8)
    kind = arrays["kind"][t].astype(np.int8)
    is_http = arrays["is_http"][t] > 0
    port = arrays["network_peer_port"][t]
    http_status = np.where(failed, 500, 200).astype(np.int32)

    vocab = pa.array(templates.vocab, type=pa.string())
    string = {c: _strings(vocab, arrays[c][t]) for c in STRING_COLUMNS}
    user_ids = rng.integers(0, 200_000, size=rows)
    enduser = pc.binary_join_element_wise("user-", pc.cast(pa.array(user_ids), pa.string()), "")
    enduser = _null_where(enduser, ~is_root)

    span_id_array = _fixed_binary(span_ids, 8)
    parent_ids = _null_where(_fixed_binary(span_ids[parent_row], 8), is_root)
    trace_id_array = _fixed_binary(trace_ids[trace_of_row], 16)
    is_consumer = kind == CONSUMER  # a consumer links to the producer it came from
    link_struct = pa.StructArray.from_arrays(
        [trace_id_array.filter(pa.array(is_consumer)), parent_ids.filter(pa.array(is_consumer))],
        fields=list(SPAN_SCHEMA.field("links").type.value_type),
    )
    link_offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(is_consumer, out=link_offsets[1:])
    links = pa.ListArray.from_arrays(
        pa.array(link_offsets, mask=np.append(~is_consumer, False)), link_struct
    )
    every = np.ones(rows, dtype=bool)
    resource = _map(
        [pa.array(["host.name"] * rows), pa.array(["telemetry.sdk.language"] * rows)],
        [string["host_name"], string["language"]],
        every,
    )
    attributes = _map([pa.array(["http.request.method"] * rows)], [string["http_method"]], is_http)

    columns: dict[str, pa.Array] = {
        "trace_id": trace_id_array,
        "span_id": span_id_array,
        "parent_span_id": parent_ids,
        "service_name": string["service_name"],
        "name": string["name"],
        "kind": pa.array(kind),
        "status_code": pa.array(status),
        "start_time": pa.array(start.astype("datetime64[ns]")).cast(pa.timestamp("ns", "UTC")),
        "duration_ns": pa.array(duration),
        "network_peer_port": pa.array(port, type=pa.int32(), mask=port < 0),
        "http_response_status_code": pa.array(http_status, mask=~is_http),
        "enduser_id": enduser,
        "links": links,
        "resource_attributes": resource,
        "attributes": attributes,
    }
    for column in STRING_COLUMNS:
        if column in SPAN_SCHEMA.names and column not in columns:
            columns[column] = string[column]
    table_columns = [
        columns[f.name] if f.name in columns else pa.nulls(rows, f.type) for f in SPAN_SCHEMA
    ]
    return pa.Table.from_arrays(table_columns, schema=SPAN_SCHEMA)


def count_spans(data: Path) -> int:
    """Rows in the dataset, from the Parquet footers alone."""
    spans = data / storage.SPANS_DIR
    if not spans.is_dir():
        return 0
    files = [p for p in spans.rglob("*.parquet") if not p.name.startswith((".", "_"))]
    return sum(pq.ParquetFile(p).metadata.num_rows for p in files)


def generate(data: Path, n_spans: int, seed: int) -> float:
    """Write `n_spans` spans into `data` (which it owns); returns the seconds it took."""
    if data.exists() and any(data.iterdir()):
        if not (data / MARKER).exists():
            sys.exit(f"{data} is not empty and was not made by this benchmark; not touching it")
        shutil.rmtree(data)
    data.mkdir(parents=True)
    (data / MARKER).write_text("generated by bench/build.py; deleted and rewritten freely\n")

    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    templates = build_templates(rng, 400)
    arrays = {c: np.asarray(v, dtype=np.int64) for c, v in templates.columns.items()}
    mean_size = float(np.mean(templates.sizes))
    total_traces = int(n_spans / mean_size) + 1
    written, traces = 0, 0
    while written < n_spans:
        want = min(BATCH_SPANS, n_spans - written)
        n_traces = int(want / mean_size * 1.3) + 32
        last = n_spans - written <= BATCH_SPANS
        table = generate_batch(
            rng, templates, arrays, n_traces, traces, total_traces, want, exact=last
        )
        traces += len(pc.unique(table.column("trace_id")))
        storage.write_dataset(table, data)
        written += table.num_rows
        if sys.stderr.isatty():
            print(f"\r  generated {written:,} / {n_spans:,} spans", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return time.perf_counter() - began


BASELINE_SCRIPT = """
import json, sys
import duckdb
files = json.load(open(sys.argv[1]))
con = duckdb.connect()
rows = con.execute(
    "SELECT c.service_name, s.service_name, count(*) "
    "FROM read_parquet($files) c JOIN read_parquet($files) s "
    "ON c.trace_id = s.trace_id AND c.span_id = s.parent_span_id "
    "WHERE c.kind = 3 AND s.kind = 2 GROUP BY ALL",
    {"files": files},
).fetchall()
print(json.dumps({"edges": len(rows), "calls": sum(r[2] for r in rows)}))
"""


# Peak RSS needs a small parent: Linux records the old address space's high-water mark as
# the child's ru_maxrss at exec, and subprocess spawns with vfork, so a child of this (large)
# process would report our peak, not its own. This launcher (a bare `python -S`, ~10 MB)
# forks, execs the contender, waits for it with wait4 and reports that child's figures.
LAUNCHER = """
import os, sys, time
began = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - began
cpu = usage.ru_utime + usage.ru_stime
sys.stderr.write(f"{os.waitstatus_to_exitcode(status)} {elapsed} {cpu} {usage.ru_maxrss}\\n")
"""


@dataclass(frozen=True)
class Measurement:
    """One run of one contender: wall and CPU (user + system) seconds, peak RSS."""

    wall_s: float
    cpu_s: float
    rss_mb: float


def timed(command: list[str], stdout: Path) -> Measurement:
    """Run a command in a fresh child; its wall and CPU seconds and its own peak RSS.

    `Popen` + `os.wait4` on a small launcher that itself forks, execs and `wait4`s the command,
    so ru_maxrss is the command's own (see LAUNCHER).
    """
    launcher = [sys.executable, "-S", "-c", LAUNCHER, str(stdout), *command]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(launcher, stderr=errors)
        _, status, _ = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        lines = errors.read().decode(errors="replace").strip().splitlines()
    try:
        code, elapsed, cpu, max_rss_kib = lines[-1].split()
        if process.returncode != 0 or int(code) != 0:
            raise ValueError(code)
    except (IndexError, ValueError):
        sys.exit(f"{command[:5]} failed:\n" + "\n".join(lines))
    return Measurement(float(elapsed), float(cpu), int(max_rss_kib) / 1024)  # KiB on Linux


def direct_service_calls(graph_json: Path) -> int:
    """Calls on direct edges between two service nodes in a render's JSON."""
    graph = json.loads(graph_json.read_text())
    services = {n["id"] for n in graph["nodes"] if n["kind"] == "service"}
    return sum(
        e["calls"]
        for e in graph["edges"]
        if e["connection"] == "direct" and e["source"] in services and e["target"] in services
    )


def expected_extra_calls(files: list[str]) -> tuple[int, int]:
    """Direct service→service calls beyond the plain join's, counted independently.

    Rule 6: cross-service parent/child pairs that are neither CLIENT→SERVER nor
    PRODUCER→CONSUMER. Rule 4 resolved onto a service: an unpaired non-database CLIENT span
    (its SERVER child cut off at the end of the dataset) whose `server.address` is a service.
    """
    import duckdb

    con = duckdb.connect()
    listed = ", ".join("'" + name.replace("'", "''") + "'" for name in files)
    con.execute(f"CREATE TEMP VIEW f AS SELECT * FROM read_parquet([{listed}])")
    rule6 = con.execute(
        f"""SELECT count(*) FROM f p JOIN f c
            ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
            WHERE p.service_name <> c.service_name
              AND NOT (p.kind = {CLIENT} AND c.kind = {SERVER})
              AND NOT (p.kind = {PRODUCER} AND c.kind = {CONSUMER})"""
    ).fetchone()
    named = con.execute(
        f"""WITH paired AS (
                SELECT DISTINCT p.trace_id, p.span_id FROM f p JOIN f c
                ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
                WHERE p.kind = {CLIENT}
                  AND (c.kind = {SERVER} OR c.service_name <> p.service_name))
            SELECT count(*) FROM f c
            WHERE c.kind = {CLIENT} AND c.db_system IS NULL AND c.db_system_name IS NULL
              AND COALESCE(c.peer_service, c.server_address) <> c.service_name
              AND COALESCE(c.peer_service, c.server_address)
                  IN (SELECT DISTINCT service_name FROM f)
              AND NOT EXISTS (SELECT 1 FROM paired WHERE paired.trace_id = c.trace_id
                                                     AND paired.span_id = c.span_id)"""
    ).fetchone()
    con.close()
    assert rule6 is not None and named is not None
    return int(rule6[0]), int(named[0])


def main(argv: list[str] | None = None) -> int:
    """Generate (or reuse) the dataset, time both contenders, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=5_000_000, help="spans to generate")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset directory")
    parser.add_argument("--keep", action="store_true", help="reuse data with the same span count")
    parser.add_argument("--runs", type=int, default=3, help="runs of each contender")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    data: Path = args.data.resolve()

    existing = count_spans(data) if args.keep else 0
    if args.keep and existing == args.spans:
        print(f"reusing {existing:,} spans in {data}")
    else:
        seconds = generate(data, args.spans, args.seed)
        print(f"generated {args.spans:,} spans in {seconds:.1f} s ({args.spans / seconds:,.0f}/s)")
    files = [str(p) for p in storage.dataset_files(data)]
    size_mb = sum(os.path.getsize(f) for f in files) / 2**20
    print(f"dataset: {len(files)} files, {size_mb:.0f} MB, {data}")

    with tempfile.TemporaryDirectory(prefix="servicemap-bench-") as tmp:
        work = Path(tmp)
        file_list = work / "files.json"
        file_list.write_text(json.dumps(files))
        for name in files:  # warm the page cache so neither contender pays for the first read
            Path(name).read_bytes()
        baseline_cmd = [sys.executable, "-c", BASELINE_SCRIPT, str(file_list)]
        graph_json = work / "graph.json"
        runs: dict[str, list[Measurement]] = {"baseline": [], "render": []}
        for attempt in range(args.runs):
            out = graph_json if attempt == 0 else Path(os.devnull)
            render_cmd = [sys.executable, "-m", "servicemap", "render", str(data)]
            render_cmd += ["--format", "json", "-o", str(out)]
            for name, command, stdout in (
                ("baseline", baseline_cmd, work / "baseline.out"),
                ("render", render_cmd, work / "render.out"),
            ):
                run = timed(command, stdout)
                runs[name].append(run)
                print(
                    f"  run {attempt + 1} {name:8s} {run.wall_s:6.2f} s wall "
                    f"{run.cpu_s:6.2f} s cpu {run.rss_mb:6.0f} MB",
                    flush=True,
                )
        baseline_out = json.loads((work / "baseline.out").read_text())
        render_direct = direct_service_calls(graph_json)
    rule6, named = expected_extra_calls(files)

    def median(name: str, field: str) -> float:
        return float(statistics.median(getattr(run, field) for run in runs[name]))

    ratio = median("render", "wall_s") / median("baseline", "wall_s")
    cpu_ratio = median("render", "cpu_s") / median("baseline", "cpu_s")
    render_rss = max(run.rss_mb for run in runs["render"])
    print()
    print(f"spans: {args.spans:,}   runs: {args.runs} (interleaved)   cores: {os.cpu_count()}")
    print(f"{'contender':<34}{'wall s':>8}{'cpu s':>8}{'spans/s':>13}{'peak RSS MB':>13}")
    labels = {
        "baseline": "plain DuckDB CLIENT→SERVER join",
        "render": "servicemap render --format json",
    }
    for name, label in labels.items():
        wall, cpu = median(name, "wall_s"), median(name, "cpu_s")
        rss = max(run.rss_mb for run in runs[name])
        print(f"{label:<34}{wall:>8.2f}{cpu:>8.2f}{args.spans / wall:>13,.0f}{rss:>13.0f}")
    print(f"ratio render / baseline: {ratio:.2f} wall (medians), {cpu_ratio:.2f} cpu")
    print()
    print("correctness (not a failure condition):")
    print(f"  baseline CLIENT→SERVER calls:          {baseline_out['calls']:>12,}")
    expected = baseline_out["calls"] + rule6 + named
    print(f"  + rule-6 cross-service pairs:          {rule6:>12,}")
    print(f"  + unpaired clients named after a service:{named:>11,}")
    print(f"  = expected direct service→service:     {expected:>12,}")
    print(f"  render direct service→service calls:   {render_direct:>12,}")
    print(f"  match: {render_direct == expected}")
    passed = ratio <= TARGET_RATIO and render_rss < TARGET_RSS_MB
    print()
    print(
        f"target: ratio <= {TARGET_RATIO}, peak RSS < {TARGET_RSS_MB:.0f} MB: "
        f"{'PASS' if passed else 'FAIL'} (ratio {ratio:.2f}, render peak {render_rss:.0f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
