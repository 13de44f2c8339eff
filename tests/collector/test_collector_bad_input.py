"""Bad input over both protocols gets the OTLP-specified code; good spans of a partially valid
request are kept; the collector keeps serving."""

from __future__ import annotations

import gzip
import json
import random
import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from servicemap.storage import read_dataset
from tests.collector.otlp_requests import grpc_export, make_request, parse_response

MIB = 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
GOOD = make_request(1, 10).SerializeToString()
MIXED = make_request(2, 10, bad=3).SerializeToString()
GARBAGE = random.Random(7).randbytes(4096)
TRUNCATED = make_request(3, 50).SerializeToString()[:-9]
OVERSIZE = make_request(4, 1).SerializeToString() + b"\x00" * (2 * MIB)


def _out_of_range() -> bytes:
    """Valid ids, but an unknown kind, an unknown status code and a time past int64."""
    request = make_request(6, 10)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].kind = 300  # type: ignore[assignment]
    spans[1].status.code = 77  # type: ignore[assignment]
    spans[2].start_time_unix_nano = 2**64 - 1
    return request.SerializeToString()


OUT_OF_RANGE = _out_of_range()

MIXED_JSON = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]},
            "scopeSpans": [
                {
                    "spans": [
                        {"traceId": "0" * 31 + "9", "spanId": "00000000000000aa", "name": "ok"},
                        {"traceId": "abcd", "spanId": "00000000000000ab", "name": "short id"},
                    ]
                }
            ],
        }
    ]
}

# (case, body, headers, expected HTTP status, rejected spans in a 200 answer)
HTTP_CASES: list[tuple[str, bytes, dict[str, str], int, int]] = [
    ("good protobuf", GOOD, {"Content-Type": PROTOBUF}, 200, 0),
    ("good gzip protobuf", gzip.compress(make_request(5, 10).SerializeToString()),
     {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}, 200, 0),
    ("bad ids mixed with good", MIXED, {"Content-Type": PROTOBUF}, 200, 3),
    ("bad ids in JSON", json.dumps(MIXED_JSON).encode(), {"Content-Type": JSON}, 200, 1),
    ("unknown kind, status, huge time", OUT_OF_RANGE, {"Content-Type": PROTOBUF}, 200, 0),
    ("random bytes", GARBAGE, {"Content-Type": PROTOBUF}, 400, 0),
    ("truncated protobuf", TRUNCATED, {"Content-Type": PROTOBUF}, 400, 0),
    ("invalid JSON", b'{"resourceSpans": [', {"Content-Type": JSON}, 400, 0),
    ("JSON that is not OTLP", b'{"spans": []}', {"Content-Type": JSON}, 400, 0),
    ("wrong content type", GOOD, {"Content-Type": "text/plain"}, 415, 0),
    ("unknown encoding", GOOD, {"Content-Type": PROTOBUF, "Content-Encoding": "br"}, 415, 0),
    ("broken gzip", b"\x1f\x8b\x08\x00garbage",
     {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}, 400, 0),
    ("oversize body", OVERSIZE, {"Content-Type": PROTOBUF}, 413, 0),
    ("gzip inflating past the limit", gzip.compress(b"\x00" * (3 * MIB)),
     {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}, 413, 0),
]  # fmt: skip
HTTP_KEPT = 10 + 10 + 10 + 1 + 10  # the out-of-range request is kept whole, never lost

# (case, body, expected gRPC code, rejected spans in an OK answer)
GRPC_CASES: list[tuple[str, bytes, grpc.StatusCode, int]] = [
    ("good", GOOD, grpc.StatusCode.OK, 0),
    ("bad ids mixed with good", MIXED, grpc.StatusCode.OK, 3),
    ("random bytes", GARBAGE, grpc.StatusCode.INVALID_ARGUMENT, 0),
    ("truncated protobuf", TRUNCATED, grpc.StatusCode.INVALID_ARGUMENT, 0),
    ("oversize message", OVERSIZE, grpc.StatusCode.RESOURCE_EXHAUSTED, 0),
]
GRPC_KEPT = 10 + 10


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(f"{url}/v1/traces", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def test_http_bad_input(start_collector: Any) -> None:
    collector = start_collector("--max-request-mib", "1")
    for case, body, headers, status, rejected in HTTP_CASES:
        code, answer, answer_headers = post(collector.http_url, body, headers)
        assert code == status, case
        json_answer = answer_headers.get("Content-Type") == JSON
        if code == 200 and json_answer:
            partial = json.loads(answer).get("partialSuccess", {})
            assert int(partial.get("rejectedSpans", 0)) == rejected, case
            assert bool(partial.get("errorMessage")) == bool(rejected), case
        elif code == 200:
            response = ExportTraceServiceResponse.FromString(answer)
            assert response.partial_success.rejected_spans == rejected, case
        elif not json_answer:
            assert status_pb2.Status.FromString(answer).message, case
        else:
            assert json.loads(answer)["message"], case
    metrics = collector.metrics()
    assert metrics["servicemap_collector_spans_rejected_total"] == 3 + 1
    assert metrics['servicemap_collector_requests_total{code="400",protocol="http"}'] == 5
    assert post(collector.http_url, GOOD, {"Content-Type": PROTOBUF})[0] == 200  # still serving
    assert collector.terminate() == 0
    assert read_dataset(collector.data).num_rows == HTTP_KEPT + 10


def test_grpc_bad_input(start_collector: Any) -> None:
    collector = start_collector("--max-request-mib", "1")
    with grpc.insecure_channel(collector.grpc_target) as channel:
        for case, body, code, rejected in GRPC_CASES:
            if code == grpc.StatusCode.OK:
                response = parse_response(grpc_export(channel, body))
                assert response.partial_success.rejected_spans == rejected, case
                assert bool(response.partial_success.error_message) == bool(rejected), case
                continue
            with pytest.raises(grpc.RpcError) as error:
                grpc_export(channel, body)
            assert error.value.code() == code, case
        parse_response(grpc_export(channel, make_request(9, 5).SerializeToString()))
    assert collector.terminate() == 0
    assert read_dataset(collector.data).num_rows == GRPC_KEPT + 5


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [("/healthz", "GET", 200), ("/metrics", "GET", 200), ("/nope", "GET", 404),
     ("/v1/logs", "POST", 404)],
)  # fmt: skip
def test_http_other_paths(start_collector: Any, path: str, method: str, status: int) -> None:
    collector = start_collector()
    request = urllib.request.Request(
        f"{collector.http_url}{path}", method=method, data=b"" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            code, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        code, text = error.code, ""
    assert code == status
    if path == "/metrics":
        for name in ("spans_received_total", "spans_accepted_total", "spans_rejected_total",
                     "spans_refused_total", "requests_total", "files_written_total",
                     "bytes_written_total", "wal_bytes", "buffered_spans"):  # fmt: skip
            assert f"servicemap_collector_{name}" in text
