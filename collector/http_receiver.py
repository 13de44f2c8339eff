"""OTLP/HTTP: `POST /v1/traces` (protobuf or JSON, optionally gzip), `GET /healthz`, `GET /metrics`.

The standard library's threading HTTP server is enough for a sidecar: requests are small and
the work is the decode, not the transport. Codes follow the OTLP/HTTP specification: 200 with
partial success, 400 for an undecodable body, 413 over --max-request-mib (also after gzip
inflation), 415 for other content types or encodings, 503 with Retry-After when overloaded.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.config import Config, parse_address
from collector.ingest import (
    INTERNAL_ERROR,
    BadRequest,
    ExportResult,
    Ingest,
    Overloaded,
    TooLarge,
)
from servicemap.errors import ServicemapError, UsageError
from servicemap.sources import otlp_json

logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
RETRY_AFTER_SECONDS = 1
DISCARD_LIMIT = 64 * 1024 * 1024  # read (and drop) at most this much of a refused body
IDLE_TIMEOUT_SECONDS = 30
_GRPC_CODES = {
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: code_pb2.RESOURCE_EXHAUSTED,
    HTTPStatus.SERVICE_UNAVAILABLE: code_pb2.UNAVAILABLE,
    HTTPStatus.INTERNAL_SERVER_ERROR: code_pb2.INTERNAL,
}


def inflate(body: bytes, limit: int) -> bytes:
    """gunzip at most `limit` bytes; a gzip bomb stops at the limit instead of filling memory."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"invalid gzip body ({exc})") from None
    if len(data) > limit:
        raise TooLarge(f"body inflates past the {limit}-byte limit")
    if not inflater.eof:
        raise BadRequest("truncated gzip body")
    return data


def decode(body: bytes, content_type: str) -> tuple[ExportTraceServiceRequest, bytes]:
    """The request, decoded, and as serialized protobuf: a protobuf body as received, a JSON
    body encoded by `otlp_json` (decoding those bytes is cheap, ParseDict was not)."""
    if content_type == PROTOBUF:
        data = body
    else:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"invalid JSON ({exc})") from None
        try:
            data = otlp_json.encode(document)
        except ServicemapError as exc:
            raise BadRequest(str(exc)) from None
    try:
        return ExportTraceServiceRequest.FromString(data), data
    except DecodeError as exc:
        raise BadRequest(f"not an ExportTraceServiceRequest ({exc})") from None


def _export(ingest: Ingest, body: bytes, content_type: str) -> ExportResult:
    """Decode and export; the sinks log the request as serialized protobuf."""
    message, data = decode(body, content_type)
    return ingest.export(message, "http", data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ingest: Ingest
    config: Config


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _reply(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection or self.server.ingest.closing:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _message(self, status: HTTPStatus, message: Message, content_type: str, **kw: Any) -> None:
        if content_type == PROTOBUF:
            body = message.SerializeToString()
        else:
            body = json_format.MessageToJson(message, indent=None).encode()
        self._reply(status, body, content_type, **kw)

    def _error(self, status: HTTPStatus, text: str, content_type: str, **kw: Any) -> None:
        self.server.ingest.metrics.inc("requests_total", protocol="http", code=str(int(status)))
        grpc_code = _GRPC_CODES.get(status, code_pb2.INVALID_ARGUMENT)
        self._message(status, status_pb2.Status(code=grpc_code, message=text), content_type, **kw)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        ingest = self.server.ingest
        if path == "/healthz":
            ok = not ingest.closing
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            text = '{"status":"ok"}\n' if ok else '{"status":"draining"}\n'
            self._reply(status, text.encode(), JSON)
        elif path == "/metrics":
            body = ingest.metrics.render().encode()
            self._reply(HTTPStatus.OK, body, "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != TRACES_PATH:
            self._discard_body()
            self._reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        raw_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        content_type = CONTENT_TYPES.get(raw_type)
        if content_type is None:
            self._discard_body()
            self._error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"content type must be {PROTOBUF} or {JSON}, got {raw_type or 'none'}",
                JSON,
            )
            return
        self._export(content_type)

    def _discard_body(self) -> None:
        """Drop a refused body so the client reads our answer; close if it is huge."""
        length = self._length()
        if length is None or length > DISCARD_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _length(self) -> int | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None
        return length if length >= 0 else None

    def _export(self, content_type: str) -> None:
        ingest, limit = self.server.ingest, self.server.config.max_request_bytes
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        length = self._length()
        if length is None:
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length required", content_type)
            return
        if encoding not in ("identity", "gzip"):
            self._discard_body()
            self._error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported encoding {encoding}", content_type
            )
            return
        if length > limit:
            self._discard_body()
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes is over the {limit}-byte limit",
                content_type,
            )
            return
        body_read = False
        try:
            with ingest.admit(length):
                body = self.rfile.read(length)
                body_read = True
                if len(body) < length:
                    self.close_connection = True
                    raise BadRequest("body shorter than Content-Length")
                if encoding == "gzip":
                    body = inflate(body, limit)
                    with ingest.admit(len(body)):
                        result = _export(ingest, body, content_type)
                else:
                    result = _export(ingest, body, content_type)
        except BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), content_type)
            return
        except TooLarge as exc:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc), content_type)
            return
        except Overloaded as exc:
            if not body_read:
                self._discard_body()  # unread bytes would reset the connection on close
            self._error(
                HTTPStatus.SERVICE_UNAVAILABLE,
                str(exc),
                content_type,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            return
        except Exception:  # a bug answers 500 and is logged; it never drops the connection
            logger.exception("export failed")
            self.close_connection = True  # the body may be half read
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR, content_type)
            return
        ingest.metrics.inc("requests_total", protocol="http", code="200")
        response = ExportTraceServiceResponse()
        if result.rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=result.rejected, error_message=result.error_message
                )
            )
        self._message(HTTPStatus.OK, response, content_type)


class HttpReceiver:
    """The HTTP server on its own thread; `stop` closes the listening socket."""

    def __init__(self, config: Config, ingest: Ingest) -> None:
        host, port = parse_address(config.otlp_http, "otlp-http")
        server_class = _Server6 if ":" in host else _Server
        try:
            self.server = server_class((host, port), _Handler)
        except OSError as exc:
            message = f"cannot listen on {config.otlp_http} (HTTP): {exc.strerror}"
            raise UsageError(message) from None
        self.server.ingest = ingest
        self.server.config = config
        self.port = self.server.server_address[1]
        self.address = f"{host}:{self.port}" if ":" not in host else f"[{host}]:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="http", kwargs={"poll_interval": 0.05}
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
