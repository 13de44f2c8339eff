"""Overload: with a small memory limit and fast senders the collector refuses with the retryable
code (UNAVAILABLE / 503 + Retry-After), stays under its limit, and keeps all it acknowledged.

The converter is stopped (SIGSTOP, as a stalled disk would stop it) while the senders run, so
the budget cannot drain and both receivers must refuse whatever the machine's speed; then it
is resumed and the collector must catch up and accept again.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from servicemap.storage import read_dataset
from tests.collector.otlp_requests import grpc_export, make_request, span_id

LIMIT_MIB = 4
SPANS = 400
GRPC_SENDERS = 4
HTTP_SENDERS = 2
RUN_SECONDS = 30.0
ACKED_AFTER_RESUME = 50


def test_overload_refuses_with_retryable_codes_and_keeps_what_it_acked(
    start_collector: Any,
) -> None:
    collector = start_collector("--memory-limit-mib", str(LIMIT_MIB), "--fsync", "interval")
    acked: list[int] = []
    refused = {"grpc": 0, "http": 0}
    retry_after: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    numbers = iter(range(1_000_000))

    def next_number() -> int:
        with lock:
            return next(numbers)

    def grpc_sender() -> None:
        with grpc.insecure_channel(collector.grpc_target) as channel:
            while not stop.is_set():
                number = next_number()
                try:
                    grpc_export(channel, make_request(number, SPANS).SerializeToString())
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                    with lock:
                        refused["grpc"] += 1
                    continue
                with lock:
                    acked.append(number)

    def http_sender() -> None:
        while not stop.is_set():
            number = next_number()
            body = make_request(number, SPANS).SerializeToString()
            request = urllib.request.Request(
                f"{collector.http_url}/v1/traces",
                data=body,
                headers={"Content-Type": "application/x-protobuf"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
            except urllib.error.HTTPError as error:
                assert error.code == 503, error
                with lock:
                    refused["http"] += 1
                    retry_after.add(error.headers.get("Retry-After", ""))
                continue
            with lock:
                acked.append(number)

    def wait_until(condition: Any) -> bool:
        deadline = time.monotonic() + RUN_SECONDS
        while time.monotonic() < deadline:
            with lock:
                if condition():
                    return True
            time.sleep(0.05)
        return False

    converter = collector.converter_pid
    threads = [threading.Thread(target=grpc_sender) for _ in range(GRPC_SENDERS)]
    threads += [threading.Thread(target=http_sender) for _ in range(HTTP_SENDERS)]
    os.kill(converter, signal.SIGSTOP)
    try:
        for thread in threads:
            thread.start()
        both_refused = wait_until(lambda: refused["grpc"] >= 5 and refused["http"] >= 1)
    finally:
        os.kill(converter, signal.SIGCONT)
    try:
        acked_while_stalled = len(acked)
        caught_up = wait_until(lambda: len(acked) >= acked_while_stalled + ACKED_AFTER_RESUME)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert both_refused, (refused, len(acked))
    assert caught_up, (refused, acked_while_stalled, len(acked))
    metrics = collector.metrics()
    assert retry_after == {"1"}
    assert len(acked) > 0
    assert metrics["servicemap_collector_memory_peak_bytes"] <= LIMIT_MIB * 1024 * 1024
    assert metrics["servicemap_collector_requests_total"] >= len(acked) + sum(refused.values())

    with grpc.insecure_channel(collector.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

    assert collector.terminate() == 0
    stored = read_dataset(collector.data).column("span_id").to_pylist()
    expected = {span_id(n, i) for n in acked for i in range(SPANS)}
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
