"""A full disk: a request whose log write fails is refused with the retryable code, the
collector keeps serving, and once space is back nothing acknowledged is lost.

The disk filling up is the collector's file-size limit (RLIMIT_FSIZE) lowered under the
current log segment: its next write fails part-way as on a full disk (Python ignores
SIGXFSZ, so the write returns EFBIG). Raising the limit again is the space coming back, with
the same segment still open: the frames written after the failure must stay readable.
"""

from __future__ import annotations

import resource
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest

from servicemap.storage import read_dataset
from tests.collector.conftest import wait_for
from tests.collector.otlp_requests import grpc_export, make_request, span_id

SPANS = 20


def _segment_bytes(data: Path) -> int:
    return sum(path.stat().st_size for path in (data / "_wal").glob("*.wal"))


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{url}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After", "")


def test_a_failed_log_write_is_refused_and_loses_nothing_acknowledged(
    start_collector: Any,
) -> None:
    collector = start_collector("--fsync", "always")
    pid = collector.process.pid
    acked: list[int] = []
    with grpc.insecure_channel(collector.grpc_target) as channel:
        for number in range(5):
            grpc_export(channel, make_request(number, SPANS).SerializeToString())
            acked.append(number)

        # The disk fills up: room for part of one more frame only.
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (_segment_bytes(collector.data) + 50, hard))
        try:
            with pytest.raises(grpc.RpcError) as refused:
                grpc_export(channel, make_request(100, SPANS).SerializeToString())
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "cannot write the log" in (refused.value.details() or "")
            status, retry_after = _post(
                collector.http_url, make_request(101, SPANS).SerializeToString()
            )
            assert (status, retry_after) == (503, "1")
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))

        # Space is back, in the same open segment.
        for number in range(5, 10):
            grpc_export(channel, make_request(number, SPANS).SerializeToString())
            acked.append(number)

    metrics = collector.metrics()
    assert metrics["servicemap_collector_spans_refused_total"] == 2 * SPANS
    assert collector.terminate() == 0
    stored = read_dataset(collector.data).column("span_id").to_pylist()
    assert sorted(stored) == sorted(span_id(n, i) for n in acked for i in range(SPANS))


def test_a_segment_whose_parquet_write_failed_is_written_once_the_disk_has_room(
    start_collector: Any,
) -> None:
    """The converter's files cannot be written for a while (its file-size limit lowered, as a
    full disk would do): the segment is kept and written after the next one that works,
    without a restart, exactly once."""
    collector = start_collector("--roll-seconds", "0.3")
    converter = collector.converter_pid
    _, hard = resource.prlimit(converter, resource.RLIMIT_FSIZE)
    resource.prlimit(converter, resource.RLIMIT_FSIZE, (0, hard))
    try:
        with grpc.insecure_channel(collector.grpc_target) as channel:
            for number in range(3):
                grpc_export(channel, make_request(number, SPANS).SerializeToString())
        wait_for(lambda: "writing Parquet for wal segment" in collector.log_text(), 30, "a failure")
    finally:
        resource.prlimit(converter, resource.RLIMIT_FSIZE, (hard, hard))
    with grpc.insecure_channel(collector.grpc_target) as channel:
        for number in range(3, 6):
            grpc_export(channel, make_request(number, SPANS).SerializeToString())

    expected = sorted(span_id(n, i) for n in range(6) for i in range(SPANS))

    def all_written() -> bool:
        if list((collector.data / "_wal").glob("*.wal")):
            return False
        return sorted(read_dataset(collector.data).column("span_id").to_pylist()) == expected

    wait_for(all_written, 30, "every segment in Parquet while the collector runs")
    assert collector.terminate() == 0
    assert sorted(read_dataset(collector.data).column("span_id").to_pylist()) == expected
