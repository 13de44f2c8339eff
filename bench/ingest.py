"""Ingest benchmark: spans/s through the collector's gRPC receiver to Parquet, against a
decode-and-discard gRPC server measured in the same run (DESIGN §10).

Both servers run in their own process; separate client processes send the same
pre-serialized requests (512 spans, 10 attributes each) over one channel apiece. The
collector figure includes its final flush: the clock stops when it has exited after SIGTERM,
so every acknowledged span is in a renamed Parquet file.

    .venv/bin/python bench/ingest.py [--requests 400] [--processes 4] [--fsync always] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
EXPORT = f"/{SERVICE}/Export"
SPANS_PER_REQUEST = 512
ATTRIBUTES = 10


def make_request(number: int) -> bytes:
    base = 1_767_225_600_000_000_000 + number * 1_000_000
    spans = []
    for i in range(SPANS_PER_REQUEST):
        attrs = [
            KeyValue(key=f"attr.{k}", value=AnyValue(string_value=f"value-{k}-{i % 7}"))
            for k in range(ATTRIBUTES - 2)
        ]
        attrs.append(KeyValue(key="http.response.status_code", value=AnyValue(int_value=200)))
        attrs.append(KeyValue(key="server.address", value=AnyValue(string_value="backend")))
        spans.append(
            Span(
                trace_id=(number * 1000 + i // 16 + 1).to_bytes(16, "big"),
                span_id=(number * 100_000 + i + 1).to_bytes(8, "big"),
                parent_span_id=(number * 100_000 + i).to_bytes(8, "big") if i % 16 else b"",
                name=f"op-{i % 5}",
                kind=Span.SPAN_KIND_SERVER if i % 2 else Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=base + i * 1000,
                end_time_unix_nano=base + i * 1000 + 500_000,
                attributes=attrs,
            )
        )
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=f"svc-{number % 8}"))
    )
    return ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString()


def serve_baseline() -> None:
    """Decode every request and throw it away: what a gRPC server in Python costs at best."""

    def export(body: bytes, context: grpc.ServicerContext) -> bytes:
        ExportTraceServiceRequest.FromString(body)
        return ExportTraceServiceResponse().SerializeToString()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handler = grpc.unary_unary_rpc_method_handler(export)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"event": "listening", "otlp_grpc": f"127.0.0.1:{port}"}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


def wait_listening(log: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early:\n{log.read_text()}")
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "listening":
                return str(entry["otlp_grpc"])
        time.sleep(0.05)
    raise SystemExit("server did not start")


def _sender(target: str, requests: int, next_number: Any, acked: Any, ready: Any, cpu: Any) -> None:
    """One client process: its own channel and pre-serialized bodies; retries refusals."""
    bodies = [make_request(n) for n in range(32)]
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(EXPORT)
        call(bodies[0], timeout=60)  # connected before the clock starts
        ready.wait()
        started = time.process_time()
        while True:
            with next_number.get_lock():
                number = next_number.value
                next_number.value += 1
            if number >= requests:
                with cpu.get_lock():
                    cpu.value += time.process_time() - started
                return
            while True:
                try:
                    call(bodies[number % len(bodies)], timeout=60)
                    break
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    time.sleep(0.05)
            with acked.get_lock():
                acked.value += SPANS_PER_REQUEST


def send_all(target: str, requests: int, processes: int) -> tuple[int, float, float]:
    """Send `requests` requests from `processes` client processes; (spans acked, start time,
    CPU seconds the clients used)."""
    context = multiprocessing.get_context("spawn")
    next_number, acked = context.Value("q", 0), context.Value("q", 0)
    cpu = context.Value("d", 0.0)
    ready = context.Barrier(processes + 1)
    pool = [
        context.Process(target=_sender, args=(target, requests, next_number, acked, ready, cpu))
        for _ in range(processes)
    ]
    for process in pool:
        process.start()
    ready.wait(timeout=120)
    start = time.perf_counter()
    for process in pool:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a client process failed (exit {process.exitcode})")
    return int(acked.value), start, float(cpu.value)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (VmRSS) or its peak (VmHWM) from /proc, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The process's child processes (the collector's converter)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(text) for text in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Memory:
    """RSS of a server process and its children: idle, and peaks sampled every 20 ms (VmHWM is
    gone once a process exits, so VmRSS is sampled until then). Also the CPU time each used
    from `mark()` on, last seen while they were alive."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.idle = (0.0, 0.0)
        self.peak = [0.0, 0.0, 0.0]  # parent, children, sum at one moment
        self.cpu: dict[int, float] = {}
        self.cpu_marked: dict[int, float] = {}
        self.client_cpu = 0.0

    def mark(self) -> None:
        self.cpu_marked = {pid: cpu_seconds(pid) for pid in [self.pid, *children(self.pid)]}

    def cpu_used(self) -> tuple[float, float]:
        """(parent, children) CPU seconds since `mark()`."""
        used = {pid: seconds - self.cpu_marked.get(pid, 0.0) for pid, seconds in self.cpu.items()}
        parent = used.pop(self.pid, 0.0)
        return parent, sum(used.values())

    def sample(self) -> tuple[float, float]:
        parent = rss_mib(self.pid)
        kids = sum(rss_mib(child) for child in children(self.pid))
        return parent, kids

    def watch(self, stop: threading.Event) -> None:
        while not stop.wait(0.02):
            parent, kids = self.sample()
            hwm = rss_mib(self.pid, "VmHWM")
            kids_hwm = sum(rss_mib(child, "VmHWM") for child in children(self.pid))
            self.peak[0] = max(self.peak[0], parent, hwm)
            self.peak[1] = max(self.peak[1], kids, kids_hwm)
            self.peak[2] = max(self.peak[2], parent + kids)
            for pid in [self.pid, *children(self.pid)]:
                seconds = cpu_seconds(pid)
                if seconds:
                    self.cpu[pid] = seconds

    def text(self) -> str:
        idle, peak = self.idle, self.peak
        return (
            f"idle {sum(idle):.0f} MiB ({idle[0]:.0f} + {idle[1]:.0f} converter), "
            f"peak {peak[2]:.0f} MiB (parent peak {peak[0]:.0f}, converter peak {peak[1]:.0f})"
        )


def run(
    command: list[str], workdir: Path, name: str, args: argparse.Namespace
) -> tuple[float, float, Memory]:
    """(spans/s acknowledged, spans/s until the server exited after SIGTERM, memory)."""
    log = workdir / f"{name}.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=handle)
    memory = Memory(process.pid)
    watching = threading.Event()
    watcher = threading.Thread(target=memory.watch, args=(watching,), daemon=True)
    try:
        target = wait_listening(log, process)
        time.sleep(1.0)
        memory.idle = memory.sample()
        watcher.start()
        send_all(target, 8, 2)  # warm up the server's code paths
        memory.mark()
        spans, start, memory.client_cpu = send_all(target, args.requests, args.processes)
        acked = time.perf_counter() - start
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        done = time.perf_counter() - start
    finally:
        watching.set()
        if process.poll() is None:
            process.kill()
    return spans / acked, spans / done, memory


def one_round(args: argparse.Namespace, number: int) -> tuple[float, float, float]:
    """Baseline then collector, back to back; prints both and returns (baseline, acked,
    to Parquet) in spans/s."""
    with tempfile.TemporaryDirectory(prefix="servicemap-ingest-") as tmp:
        workdir = Path(tmp)
        baseline, _, base_memory = run(
            [sys.executable, __file__, "--serve-baseline"], workdir, "baseline", args
        )
        collector = [
            sys.executable, "-m", "servicemap", "collect", "--data", str(workdir / "data"),
            "--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", "--fsync", args.fsync,
        ]  # fmt: skip
        acked, to_parquet, memory = run(collector, workdir, "collector", args)
        files = list((workdir / "data" / "spans").rglob("*.parquet"))
        size = sum(f.stat().st_size for f in files)
    spans = args.requests * SPANS_PER_REQUEST
    print(f"round {number}")
    print(f"  decode-and-discard gRPC server : {baseline:>10,.0f} spans/s (baseline)")
    print(f"  collector, acknowledged        : {acked:>10,.0f} spans/s  "
          f"ratio {acked / baseline:.2f}")  # fmt: skip
    print(
        f"  collector, through to Parquet  : {to_parquet:>10,.0f} spans/s  "
        f"ratio {to_parquet / baseline:.2f}  ({len(files)} files, {size / 1e6:.1f} MB)"
    )
    print(f"  collector memory (RSS)         : {memory.text()}")
    parent_cpu, converter_cpu = memory.cpu_used()
    print(f"  collector CPU per span         : {parent_cpu / spans * 1e6:.1f} us receiving + "
          f"{converter_cpu / spans * 1e6:.1f} us converting; baseline server "
          f"{sum(base_memory.cpu_used()) / spans * 1e6:.1f} us; clients "
          f"{memory.client_cpu / spans * 1e6:.1f} us (with the baseline: "
          f"{base_memory.client_cpu / spans * 1e6:.1f} us)")  # fmt: skip
    # Both runs are CPU-bound on this machine: the ratio follows the CPU each spends per span.
    base_total = sum(base_memory.cpu_used()) + base_memory.client_cpu
    total = parent_cpu + converter_cpu + memory.client_cpu
    print(f"  CPU per span, all processes    : baseline {base_total / spans * 1e6:.1f} us, "
          f"collector {total / spans * 1e6:.1f} us: ratio {base_total / total:.2f}")  # fmt: skip
    print(f"  baseline server memory (RSS)   : idle {sum(base_memory.idle):.0f} MiB, "
          f"peak {base_memory.peak[2]:.0f} MiB", flush=True)  # fmt: skip
    return baseline, acked, to_parquet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--fsync", choices=("always", "interval"), default="always")
    parser.add_argument("--rounds", type=int, default=3, help="baseline/collector pairs")
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline()
        return
    spans = args.requests * SPANS_PER_REQUEST
    print(f"spans: {spans} in requests of {SPANS_PER_REQUEST} spans x {ATTRIBUTES} attributes, "
          f"{args.processes} client processes, {os.cpu_count()} cores, "
          f"fsync {args.fsync}")  # fmt: skip
    rounds = [one_round(args, number + 1) for number in range(args.rounds)]
    acked = statistics.median(round_[1] / round_[0] for round_ in rounds)
    to_parquet = statistics.median(round_[2] / round_[0] for round_ in rounds)
    print(f"median of {len(rounds)} rounds: ratio acknowledged {acked:.2f}, "
          f"through to Parquet {to_parquet:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
