"""OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` plus gRPC health.

The method is registered with a raw-bytes handler instead of the generated servicer so the
collector decodes the request itself: an undecodable body becomes INVALID_ARGUMENT (grpcio
would answer INTERNAL), and memory is reserved before the decode. Oversize messages are
refused by grpcio's max receive length with RESOURCE_EXHAUSTED, as gRPC specifies.
"""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.config import Config
from collector.ingest import INTERNAL_ERROR, BadRequest, Ingest, Overloaded
from servicemap.errors import UsageError

logger = logging.getLogger(__name__)

SERVICE_NAME = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
RETRY_AFTER_SECONDS = 1
WORKERS = 8


def _retry_metadata() -> tuple[tuple[str, bytes], ...]:
    """The retry hint: RetryInfo, both as the OTel SDKs read it and inside grpc-status-details."""
    retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=RETRY_AFTER_SECONDS))
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="overloaded")
    status.details.add().Pack(retry)
    return (
        ("google.rpc.retryinfo-bin", retry.SerializeToString()),
        ("grpc-status-details-bin", status.SerializeToString()),
    )


class GrpcReceiver:
    """A grpcio server with the Export method and the standard health service."""

    def __init__(self, config: Config, ingest: Ingest) -> None:
        self.ingest = ingest
        self.metrics = ingest.metrics
        self.health = health.HealthServicer()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", config.max_request_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.so_reuseport", 0),  # a second collector on the same port must fail
            ],
        )
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=None,
            response_serializer=ExportTraceServiceResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Export": handler}),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        host, port = config.otlp_grpc.rsplit(":", 1)
        try:
            self.port = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:
            raise UsageError(f"cannot listen on {config.otlp_grpc} (gRPC): {exc}") from None
        if self.port == 0:
            raise UsageError(f"cannot listen on {config.otlp_grpc} (gRPC): address in use?")
        self.address = f"{host}:{self.port}"

    def start(self) -> None:
        self.server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float) -> None:
        """Refuse new calls, let calls in flight finish within `grace` seconds."""
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.server.stop(grace).wait(grace + 1)

    def _done(self, code: grpc.StatusCode) -> None:
        self.metrics.inc("requests_total", protocol="grpc", code=code.name)

    def _export(self, body: bytes, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        try:
            with self.ingest.admit(len(body)):
                try:
                    message = ExportTraceServiceRequest.FromString(body)
                except DecodeError as exc:
                    raise BadRequest(f"not an ExportTraceServiceRequest ({exc})") from None
                result = self.ingest.export(message, "grpc", body)
        except BadRequest as exc:
            self._done(grpc.StatusCode.INVALID_ARGUMENT)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Overloaded as exc:
            self._done(grpc.StatusCode.UNAVAILABLE)
            context.set_trailing_metadata(_retry_metadata())
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception:  # a bug answers INTERNAL and is logged with its traceback
            logger.exception("export failed")
            self._done(grpc.StatusCode.INTERNAL)
            context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR)
        self._done(grpc.StatusCode.OK)
        response = ExportTraceServiceResponse()
        if result.rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=result.rejected, error_message=result.error_message
                )
            )
        return response
