"""A bug on the ingest path answers INTERNAL / 500 and is logged; the collector keeps serving.

The fault is injected into a real, in-process collector (real gRPC and HTTP servers, real
Parquet sink): no input reaches such a bug on purpose, which is the point of the catch-all.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from collector.config import Config
from collector.ingest import INTERNAL_ERROR
from collector.server import Collector
from servicemap.storage import read_dataset
from tests.collector.otlp_requests import grpc_export, make_request

PROTOBUF = "application/x-protobuf"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    config = Config(
        data=tmp_path / "data", otlp_grpc="127.0.0.1:0", otlp_http="127.0.0.1:0", fsync="interval"
    ).validate()
    running = Collector(config)
    running.start()
    try:
        yield running
    finally:
        if not running.stopping.is_set():
            running.stop()


def http_post(collector: Collector, body: bytes) -> tuple[int, bytes]:
    assert collector.http is not None
    request = urllib.request.Request(
        f"http://{collector.http.address}/v1/traces",
        data=body,
        headers={"Content-Type": PROTOBUF},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_bug_answers_internal_and_the_collector_keeps_serving(
    collector: Collector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_export = collector.ingest.export

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected bug")

    monkeypatch.setattr(collector.ingest, "export", broken)
    body = make_request(1, 5).SerializeToString()
    with caplog.at_level(logging.ERROR):
        status, answer = http_post(collector, body)
        assert status == 500
        assert INTERNAL_ERROR.encode() in answer
        assert collector.grpc is not None
        with (
            grpc.insecure_channel(collector.grpc.address) as channel,
            pytest.raises(grpc.RpcError) as info,
        ):
            grpc_export(channel, body)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == INTERNAL_ERROR
    assert sum("injected bug" in (r.exc_text or "") for r in caplog.records) == 2

    monkeypatch.setattr(collector.ingest, "export", real_export)
    assert http_post(collector, make_request(2, 5).SerializeToString())[0] == 200
    with grpc.insecure_channel(collector.grpc.address) as channel:
        grpc_export(channel, make_request(3, 5).SerializeToString())
    assert collector.metrics.value("requests_total", protocol="http", code="500") == 1
    collector.stop()
    assert read_dataset(collector.config.data).num_rows == 10
