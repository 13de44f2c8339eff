"""Generate the demo trace set `fixtures/demo/traces.otlp.json` with the real OpenTelemetry SDK.

A small web shop (namespace ``shop``) is simulated: six services, each with its own
``TracerProvider`` and ``Resource``, exporting through ``SimpleSpanProcessor`` into an
``InMemorySpanExporter``. Calls between services are plain function calls, but the trace context
travels only through a W3C ``traceparent`` carrier (HTTP headers, gRPC metadata, Kafka message
headers): the client injects, the server extracts. No Python context is ever attached.

Topology (edges as DESIGN §4 pairs them)::

    user -> web                        root SERVER spans, enduser.id for a dozen users
    web -> redis.internal              redis cache (db.system.name=redis, no db.namespace)
    web -> inventory                   HTTP, product pages on a cache miss
    web -> checkout                    HTTP, POST /cart/checkout
    checkout -> inventory              HTTP, stock reservation (409 when out of stock)
    checkout -> shipping               HTTP, shipping quote
    checkout -> payment                gRPC shop.payment.v1.PaymentService/Charge
    payment -> api.stripe.com          uninstrumented external API (fails ~8 %)
    inventory -> inventory-db          PostgreSQL (slow ~3 % of the time)
    checkout -> orders                 Kafka PRODUCER
    orders -> shipping                 CONSUMER, child of the producer span
    orders -> email                    CONSUMER in a new trace, linked to the producer span
    shipping -> shipping-db            PostgreSQL
    email -> api.sendgrid.com          uninstrumented external API

Attributes follow the current semantic conventions (``http.request.method``, ``url.path``,
``http.route``, ``http.response.status_code``, ``server.address``, ``rpc.system``,
``db.system.name``, ``db.namespace``, ``db.query.text``, ``messaging.*``), span status follows the
HTTP/gRPC rules (5xx is an error on both sides, 4xx only on the client side).

Every random choice comes from ``random.Random(seed)``, ids from a seeded ``IdGenerator``, and
every span, event and link has explicit timestamps inside a fixed ten-minute window starting at
2026-11-01T12:00:00Z, so rerunning the script gives a byte-identical file. Resources are built
with ``Resource(...)`` rather than ``Resource.create()``, so neither environment variables nor the
installed SDK version leak into the output.

The finished spans are encoded with the OTLP exporter's ``encode_spans`` and written as one
OTLP/JSON ``ExportTraceServiceRequest`` (hex ids, camelCase keys, integer enums, 64-bit integers
as strings), one ``resourceSpans`` entry per service sorted by service name, scopes sorted by
name, spans sorted by (start time, trace id, span id).

Regenerate with::

    .venv/bin/python scripts/generate_demo.py [--out PATH] [--seed N] [--requests N]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped, unused-ignore]
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "fixtures" / "demo" / "traces.otlp.json"
# A seed whose sample is close to the configured rates: 6 Stripe failures in 75 checkouts (3 of
# them timeouts), 2 out-of-stock reservations and 3 slow inventory-db queries.
DEFAULT_SEED = 20261114
DEFAULT_REQUESTS = 200

WINDOW_START_NS = int(datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
WINDOW_NS = 600 * 1_000_000_000
# Roots start in the first 585 s; the slowest request plus consumer lag stays well under 15 s.
ROOT_SPREAD_NS = 585 * 1_000_000_000
MS = 1_000_000

NAMESPACE = "shop"
ENVIRONMENT = "production"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
SCOPE_VERSION = "1.0.0"

SERVICE_VERSIONS: dict[str, str] = {
    "web": "2.14.0",
    "checkout": "1.9.3",
    "payment": "3.2.1",
    "inventory": "1.22.0",
    "shipping": "0.18.4",
    "email": "1.4.0",
}

# In-cluster addresses that clients put into `server.address`.
CHECKOUT_HOST = "checkout.shop.svc.cluster.local"
INVENTORY_HOST = "inventory.shop.svc.cluster.local"
SHIPPING_HOST = "shipping.shop.svc.cluster.local"
PAYMENT_HOST = "payment.shop.svc.cluster.local"
REDIS_HOST = "redis.internal"
POSTGRES_HOST = "postgres.internal"
KAFKA_HOST = "kafka.internal"
STRIPE_HOST = "api.stripe.com"
SENDGRID_HOST = "api.sendgrid.com"
PUBLIC_HOST = "shop.example.com"

ORDERS_TOPIC = "orders"
ORDERS_PARTITIONS = 6
PAYMENT_RPC_SERVICE = "shop.payment.v1.PaymentService"

USERS = tuple(f"user-{n}" for n in range(1001, 1013))
PRODUCTS = tuple(f"sku-{n}" for n in range(100, 124))
USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:144.0) Gecko/20100101 Firefox/144.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 15_6) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 19_0 like Mac OS X) AppleWebKit/605.1.15 Mobile Safari",
)

# Failure and slowness rates.
STRIPE_FAILURE_RATE = 0.08
INVENTORY_DB_SLOW_RATE = 0.03
OUT_OF_STOCK_RATE = 0.04

PROPAGATOR = TraceContextTextMapPropagator()
LIMITS = SpanLimits(
    max_attributes=128,
    max_events=128,
    max_links=128,
    max_span_attributes=128,
    max_event_attributes=128,
    max_link_attributes=128,
    max_attribute_length=SpanLimits.UNSET,
    max_span_attribute_length=SpanLimits.UNSET,
)

Attributes = dict[str, AttributeValue]
Carrier = dict[str, str]


class SeededIdGenerator(IdGenerator):  # type: ignore[misc, unused-ignore]
    """Trace and span ids from a seeded PRNG, so reruns give the same ids."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def generate_span_id(self) -> int:
        span_id = self._rng.getrandbits(64)
        while span_id == trace.INVALID_SPAN_ID:
            span_id = self._rng.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = self._rng.getrandbits(128)
        while trace_id == trace.INVALID_TRACE_ID:
            trace_id = self._rng.getrandbits(128)
        return trace_id

    def is_trace_id_random(self) -> bool:
        return True


class StripeAPIError(Exception):
    """Stand-in for the Stripe client library's API error."""


StripeAPIError.__module__ = "stripe"
StripeAPIError.__qualname__ = "APIError"


class PaymentDeclinedError(Exception):
    """Raised by the checkout service when the payment RPC fails."""


PaymentDeclinedError.__module__ = "shop.checkout.errors"
PaymentDeclinedError.__qualname__ = "PaymentError"


class Service:
    """One instrumented service: its own resource, provider and in-memory exporter."""

    def __init__(self, name: str, ids: IdGenerator) -> None:
        self.name = name
        self.exporter = InMemorySpanExporter()
        resource = Resource(
            {
                "service.name": name,
                "service.namespace": NAMESPACE,
                "service.version": SERVICE_VERSIONS[name],
                "service.instance.id": f"{name}-0",
                "deployment.environment.name": ENVIRONMENT,
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
            },
            schema_url=SCHEMA_URL,
        )
        self.provider = TracerProvider(
            resource=resource,
            sampler=ParentBased(ALWAYS_ON),
            id_generator=ids,
            span_limits=LIMITS,
            shutdown_on_exit=False,
        )
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def tracer(self, scope: str) -> Tracer:
        return self.provider.get_tracer(scope, SCOPE_VERSION, schema_url=SCHEMA_URL)

    def finished_spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())


@dataclass(frozen=True)
class Request:
    """A simulated request as the server receives it: arrival time, headers and payload."""

    start: int
    headers: Carrier
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    """A simulated response: when it left the server and its HTTP status or gRPC code."""

    end: int
    status: int


@dataclass(frozen=True)
class Message:
    """A Kafka record: its headers carry the producer span's context."""

    headers: Carrier
    key: str
    partition: int
    offset: int
    timestamp: int


Handler = Callable[[Request], Response]
Body = Callable[[Context, int], Response]


def child_context(span: Span) -> Context:
    """A context whose current span is `span`, built without touching the ambient context."""
    return trace.set_span_in_context(span, Context())


def carrier_for(span: Span) -> Carrier:
    """Inject `span`'s context into a fresh W3C trace-context carrier."""
    carrier: Carrier = {}
    PROPAGATOR.inject(carrier, context=child_context(span))
    return carrier


def extract(carrier: Carrier) -> Context:
    """The remote parent context, from the carrier alone."""
    return PROPAGATOR.extract(carrier, context=Context())


class Shop:
    """The simulated shop: services, scenario randomness and the Kafka topic."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        ids = SeededIdGenerator(seed ^ 0x5EED_1D5)
        self.services = {name: Service(name, ids) for name in SERVICE_VERSIONS}
        self.orders_log: list[Message] = []
        self.next_offset = [0] * ORDERS_PARTITIONS
        self.order_seq = 0

    # ---- helpers ---------------------------------------------------------------------------

    def ms(self, low: float, high: float, mode: float | None = None) -> int:
        """A duration in nanoseconds, triangular between `low` and `high` milliseconds."""
        mode = low + (high - low) * 0.25 if mode is None else mode
        return int(self.rng.triangular(low, high, mode) * MS)

    def net(self) -> int:
        """One-way in-cluster network delay."""
        return self.ms(0.15, 1.2)

    def span(
        self,
        service: str,
        scope: str,
        name: str,
        kind: SpanKind,
        parent: Context,
        start: int,
        attributes: Attributes,
        links: Sequence[Link] = (),
    ) -> Span:
        tracer = self.services[service].tracer(scope)
        return tracer.start_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            links=links,
            start_time=start,
        )

    @staticmethod
    def fail(span: Span, description: str, exception: BaseException | None, at: int) -> None:
        if exception is not None:
            span.record_exception(exception, timestamp=at)
        span.set_status(Status(StatusCode.ERROR, description))

    # ---- protocol wrappers -----------------------------------------------------------------

    def http_call(
        self,
        service: str,
        parent: Context,
        start: int,
        method: str,
        host: str,
        path: str,
        handler: Handler,
        params: dict[str, str] | None = None,
    ) -> Response:
        """An instrumented HTTP client call; the server sees only the injected headers."""
        port = 8080
        span = self.span(
            service,
            "shop.http.client",
            method,
            SpanKind.CLIENT,
            parent,
            start,
            {
                "http.request.method": method,
                "server.address": host,
                "server.port": port,
                "url.full": f"http://{host}:{port}{path}",
                "network.protocol.version": "1.1",
            },
        )
        request = Request(start + self.net(), carrier_for(span), method, path, params or {})
        response = handler(request)
        end = response.end + self.net()
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 400:
            span.set_attribute("error.type", str(response.status))
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
        return Response(end, response.status)

    def http_server(
        self, service: str, request: Request, route: str, body: Body, extra: Attributes
    ) -> Response:
        """An instrumented HTTP server span, parented only by the extracted carrier."""
        attributes: Attributes = {
            "http.request.method": request.method,
            "url.path": request.path,
            "url.scheme": "http",
            "http.route": route,
            "server.address": f"{service}.shop.svc.cluster.local",
            "server.port": 8080,
            "network.protocol.version": "1.1",
        }
        attributes.update(extra)
        span = self.span(
            service,
            "shop.http.server",
            f"{request.method} {route}",
            SpanKind.SERVER,
            extract(request.headers),
            request.start,
            attributes,
        )
        response = body(child_context(span), request.start)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_attribute("error.type", str(response.status))
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=response.end)
        return response

    def grpc_call(
        self, service: str, parent: Context, start: int, method: str, handler: Handler
    ) -> Response:
        """An instrumented gRPC client call; context travels in the request metadata."""
        span = self.span(
            service,
            "shop.grpc.client",
            f"{PAYMENT_RPC_SERVICE}/{method}",
            SpanKind.CLIENT,
            parent,
            start,
            {
                "rpc.system": "grpc",
                "rpc.service": PAYMENT_RPC_SERVICE,
                "rpc.method": method,
                "server.address": PAYMENT_HOST,
                "server.port": 50051,
            },
        )
        request = Request(start + self.net(), carrier_for(span), method, method)
        response = handler(request)
        end = response.end + self.net()
        span.set_attribute("rpc.grpc.status_code", response.status)
        if response.status != 0:
            span.set_status(Status(StatusCode.ERROR, f"UNAVAILABLE: {method} failed"))
        span.end(end_time=end)
        return Response(end, response.status)

    def db_call(
        self,
        service: str,
        parent: Context,
        start: int,
        system: str,
        operation: str,
        query: str,
        duration: int,
        namespace: str | None,
        collection: str | None,
    ) -> int:
        """An instrumented database client span with no server side; returns its end time."""
        host, port = (REDIS_HOST, 6379) if system == "redis" else (POSTGRES_HOST, 5432)
        attributes: Attributes = {
            "db.system.name": system,
            "db.operation.name": operation,
            "db.query.text": query,
            "server.address": host,
            "server.port": port,
        }
        if namespace is not None:
            attributes["db.namespace"] = namespace
        if collection is not None:
            attributes["db.collection.name"] = collection
        name = f"{operation} {collection}" if collection else operation
        span = self.span(
            service,
            f"shop.db.{system}",
            name,
            SpanKind.CLIENT,
            parent,
            start,
            attributes,
        )
        span.end(end_time=start + duration)
        return start + duration

    def postgres(
        self,
        service: str,
        parent: Context,
        start: int,
        operation: str,
        table: str,
        query: str,
    ) -> int:
        if service == "inventory" and self.rng.random() < INVENTORY_DB_SLOW_RATE:
            duration = self.ms(350.0, 1600.0)
        elif operation == "SELECT":
            duration = self.ms(1.5, 12.0)
        else:
            duration = self.ms(3.0, 20.0)
        return self.db_call(
            service,
            parent,
            start,
            "postgresql",
            operation,
            query,
            duration,
            f"{service}-db",
            table,
        )

    def redis(self, parent: Context, start: int, operation: str, key: str) -> int:
        query = f"{operation} {key}" if operation == "GET" else f"{operation} {key} ? EX 300"
        return self.db_call(
            "web",
            parent,
            start,
            "redis",
            operation,
            query,
            self.ms(0.2, 1.8),
            None,
            None,
        )

    def external_call(
        self,
        service: str,
        parent: Context,
        start: int,
        host: str,
        path: str,
        latency: int,
        status: int | None,
        exception: BaseException | None,
    ) -> Response:
        """An HTTP client span to an uninstrumented host: there is no server span."""
        span = self.span(
            service,
            "shop.http.client",
            "POST",
            SpanKind.CLIENT,
            parent,
            start,
            {
                "http.request.method": "POST",
                "server.address": host,
                "server.port": 443,
                "url.full": f"https://{host}{path}",
                "network.protocol.version": "1.1",
            },
        )
        end = start + latency
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if status is None or status >= 400:
            span.set_attribute("error.type", str(status) if status else "timeout")
            self.fail(span, f"{host} {status or 'timeout'}", exception, end)
        span.end(end_time=end)
        return Response(end, status or 0)

    # ---- inventory -------------------------------------------------------------------------

    def inventory_products(self, request: Request) -> Response:
        def body(ctx: Context, t: int) -> Response:
            t += self.ms(0.5, 2.0)
            if "sku" in request.params:
                query = "SELECT id, name, price, stock FROM products WHERE id = $1"
            else:
                query = "SELECT id, name, price FROM products WHERE featured ORDER BY rank LIMIT $1"
            t = self.postgres("inventory", ctx, t, "SELECT", "products", query)
            return Response(t + self.ms(0.3, 1.5), 200)

        route = "/products" if "sku" not in request.params else "/products/{sku}"
        return self.http_server("inventory", request, route, body, {})

    def inventory_reserve(self, request: Request) -> Response:
        def body(ctx: Context, t: int) -> Response:
            t += self.ms(0.5, 2.0)
            t = self.postgres(
                "inventory",
                ctx,
                t,
                "UPDATE",
                "stock",
                "UPDATE stock SET reserved = reserved + $1 WHERE sku = $2 AND available >= $1",
            )
            status = 409 if self.rng.random() < OUT_OF_STOCK_RATE else 200
            return Response(t + self.ms(0.3, 1.5), status)

        return self.http_server("inventory", request, "/reservations", body, {})

    # ---- shipping --------------------------------------------------------------------------

    def shipping_quote(self, request: Request) -> Response:
        def body(ctx: Context, t: int) -> Response:
            rate = self.span(
                "shipping",
                "shop.shipping",
                "compute rate",
                SpanKind.INTERNAL,
                ctx,
                t + self.ms(0.2, 0.8),
                {"shop.shipping.carrier": self.rng.choice(("dhl", "ups"))},
            )
            rate_end = t + self.ms(3.0, 18.0)
            rate.end(end_time=rate_end)
            return Response(rate_end + self.ms(0.2, 1.0), 200)

        return self.http_server("shipping", request, "/quotes", body, {})

    def shipping_consume(self, message: Message) -> None:
        """Shipping's consumer: one process span per record, child of the producer span."""
        start = message.timestamp + self.ms(2.0, 40.0)
        span = self.span(
            "shipping",
            "shop.kafka.consumer",
            f"process {ORDERS_TOPIC}",
            SpanKind.CONSUMER,
            extract(message.headers),
            start,
            self.consumer_attributes(message, "shipping"),
        )
        t = self.postgres(
            "shipping",
            child_context(span),
            start + self.ms(0.3, 1.0),
            "INSERT",
            "shipments",
            "INSERT INTO shipments (order_id, carrier, status) VALUES ($1, $2, 'pending')",
        )
        span.end(end_time=t + self.ms(0.2, 1.0))

    # ---- email -----------------------------------------------------------------------------

    def email_consume(self, message: Message) -> None:
        """Email's batch consumer: a new trace per record, linked to the producer span."""
        producer = trace.get_current_span(extract(message.headers)).get_span_context()
        start = message.timestamp + self.ms(150.0, 1500.0)
        span = self.span(
            "email",
            "shop.kafka.consumer",
            f"process {ORDERS_TOPIC}",
            SpanKind.CONSUMER,
            Context(),
            start,
            self.consumer_attributes(message, "email"),
            links=[Link(producer)],
        )
        sent = self.external_call(
            "email",
            child_context(span),
            start + self.ms(0.5, 2.0),
            SENDGRID_HOST,
            "/v3/mail/send",
            self.ms(60.0, 260.0),
            202,
            None,
        )
        span.end(end_time=sent.end + self.ms(0.2, 1.0))

    @staticmethod
    def consumer_attributes(message: Message, group: str) -> Attributes:
        return {
            "messaging.system": "kafka",
            "messaging.destination.name": ORDERS_TOPIC,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.consumer.group.name": group,
            "messaging.destination.partition.id": str(message.partition),
            "messaging.kafka.offset": message.offset,
            "messaging.kafka.message.key": message.key,
            "server.address": KAFKA_HOST,
            "server.port": 9092,
        }

    # ---- payment ---------------------------------------------------------------------------

    def payment_charge(self, request: Request) -> Response:
        span = self.span(
            "payment",
            "shop.grpc.server",
            f"{PAYMENT_RPC_SERVICE}/{request.method}",
            SpanKind.SERVER,
            extract(request.headers),
            request.start,
            {
                "rpc.system": "grpc",
                "rpc.service": PAYMENT_RPC_SERVICE,
                "rpc.method": request.method,
                "server.address": PAYMENT_HOST,
                "server.port": 50051,
            },
        )
        t = request.start + self.ms(0.8, 3.0)
        exception: StripeAPIError | None = None
        if self.rng.random() < STRIPE_FAILURE_RATE:
            if self.rng.random() < 0.5:
                status: int | None = 503
                latency = self.ms(40.0, 300.0)
                exception = StripeAPIError("Request failed with status 503: api_error")
            else:
                status = None
                latency = self.ms(2500.0, 2510.0, 2500.0)
                exception = StripeAPIError("Request to Stripe timed out after 2500 ms")
        else:
            status = 200
            latency = self.ms(110.0, 480.0)
        charge = self.external_call(
            "payment",
            child_context(span),
            t,
            STRIPE_HOST,
            "/v1/charges",
            latency,
            status,
            exception,
        )
        end = charge.end + self.ms(0.5, 2.0)
        code = 0 if exception is None else 14
        span.set_attribute("rpc.grpc.status_code", code)
        if exception is not None:
            self.fail(span, f"UNAVAILABLE: {exception}", exception, end)
        span.end(end_time=end)
        return Response(end, code)

    # ---- checkout --------------------------------------------------------------------------

    def checkout_place_order(self, request: Request) -> Response:
        user = request.params["user"]

        def body(ctx: Context, t: int) -> Response:
            validate = self.span(
                "checkout",
                "shop.checkout",
                "validate cart",
                SpanKind.INTERNAL,
                ctx,
                t + self.ms(0.2, 0.6),
                {"shop.cart.items": int(request.params["items"])},
            )
            t += self.ms(1.0, 4.0)
            validate.end(end_time=t)
            reserved = self.http_call(
                "checkout",
                ctx,
                t,
                "POST",
                INVENTORY_HOST,
                "/reservations",
                self.inventory_reserve,
            )
            t = reserved.end + self.ms(0.2, 1.0)
            if reserved.status != 200:
                return Response(t, 409)
            quote = self.http_call(
                "checkout",
                ctx,
                t,
                "POST",
                SHIPPING_HOST,
                "/quotes",
                self.shipping_quote,
            )
            t = quote.end + self.ms(0.2, 1.0)
            charge = self.grpc_call("checkout", ctx, t, "Charge", self.payment_charge)
            t = charge.end + self.ms(0.2, 1.0)
            if charge.status != 0:
                server = trace.get_current_span(ctx)
                server.record_exception(
                    PaymentDeclinedError(f"payment failed for {user}: UNAVAILABLE"),
                    timestamp=t,
                )
                return Response(t + self.ms(0.3, 1.0), 502)
            t = self.publish_order(ctx, t)
            return Response(t + self.ms(0.5, 2.0), 200)

        return self.http_server("checkout", request, "/orders", body, {"enduser.id": user})

    def publish_order(self, parent: Context, start: int) -> int:
        """Checkout's Kafka producer; the record headers carry the producer span's context."""
        self.order_seq += 1
        key = f"order-{self.order_seq:05d}"
        partition = self.rng.randrange(ORDERS_PARTITIONS)
        span = self.span(
            "checkout",
            "shop.kafka.producer",
            f"send {ORDERS_TOPIC}",
            SpanKind.PRODUCER,
            parent,
            start,
            {
                "messaging.system": "kafka",
                "messaging.destination.name": ORDERS_TOPIC,
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.kafka.message.key": key,
                "messaging.destination.partition.id": str(partition),
                "messaging.client.id": "checkout-0",
                "server.address": KAFKA_HOST,
                "server.port": 9092,
            },
        )
        offset = self.next_offset[partition]
        self.next_offset[partition] += 1
        span.set_attribute("messaging.kafka.offset", offset)
        end = start + self.ms(1.0, 6.0)
        self.orders_log.append(Message(carrier_for(span), key, partition, offset, end))
        span.end(end_time=end)
        return end

    # ---- web (frontend) --------------------------------------------------------------------

    def web_request(self, start: int, route: str, path: str, user: str | None) -> None:
        """One root request from a browser; no incoming trace context."""
        extra: Attributes = {
            "url.scheme": "https",
            "server.address": PUBLIC_HOST,
            "server.port": 443,
            "user_agent.original": self.rng.choice(USER_AGENTS),
            "client.address": f"203.0.113.{self.rng.randrange(2, 250)}",
        }
        if user is not None:
            extra["enduser.id"] = user
        method = "POST" if route == "/cart/checkout" else "GET"
        request = Request(start, {}, method, path)

        def body(ctx: Context, t: int) -> Response:
            t += self.ms(0.5, 3.0)
            if route == "/cart/checkout":
                assert user is not None
                items = str(self.rng.randint(1, 5))
                placed = self.http_call(
                    "web",
                    ctx,
                    t,
                    "POST",
                    CHECKOUT_HOST,
                    "/orders",
                    self.checkout_place_order,
                    {"user": user, "items": items},
                )
                return Response(placed.end + self.ms(1.0, 5.0), placed.status)
            if route == "/":
                key, hit_rate, params = "home:featured", 0.8, {}
                inventory_path = "/products"
            else:
                sku = path.rsplit("/", 1)[1]
                key, hit_rate, params = f"product:{sku}", 0.55, {"sku": sku}
                inventory_path = f"/products/{sku}"
            t = self.redis(ctx, t, "GET", key) + self.ms(0.1, 0.5)
            if self.rng.random() >= hit_rate:
                fetched = self.http_call(
                    "web",
                    ctx,
                    t,
                    "GET",
                    INVENTORY_HOST,
                    inventory_path,
                    self.inventory_products,
                    params,
                )
                t = self.redis(ctx, fetched.end + self.ms(0.1, 0.5), "SET", key)
            return Response(t + self.ms(3.0, 15.0), 200)

        self.http_server("web", request, route, body, extra)

    # ---- scenario --------------------------------------------------------------------------

    def run(self, requests: int) -> None:
        starts = sorted(
            WINDOW_START_NS + self.rng.randrange(ROOT_SPREAD_NS) for _ in range(requests)
        )
        for start in starts:
            choice = self.rng.random()
            if choice < 0.35:
                user: str | None = self.rng.choice(USERS)
                self.web_request(start, "/cart/checkout", "/cart/checkout", user)
            else:
                user = self.rng.choice(USERS) if self.rng.random() < 0.8 else None
                if choice < 0.60:
                    self.web_request(start, "/", "/", user)
                else:
                    sku = self.rng.choice(PRODUCTS)
                    self.web_request(start, "/product/{sku}", f"/product/{sku}", user)
        for message in self.orders_log:
            self.shipping_consume(message)
        for message in self.orders_log:
            self.email_consume(message)

    def spans_by_service(self) -> dict[str, tuple[ReadableSpan, ...]]:
        return {name: svc.finished_spans() for name, svc in sorted(self.services.items())}


# ---- OTLP/JSON ------------------------------------------------------------------------------


def b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def fix_ids(span: dict[str, Any]) -> None:
    """ProtoJSON writes bytes as base64; OTLP/JSON wants lowercase hex ids."""
    for key in ("traceId", "spanId", "parentSpanId"):
        if key in span:
            span[key] = b64_to_hex(span[key])
    for link in span.get("links", ()):
        for key in ("traceId", "spanId"):
            if key in link:
                link[key] = b64_to_hex(link[key])


def span_sort_key(span: dict[str, Any]) -> tuple[int, str, str]:
    return int(span["startTimeUnixNano"]), span["traceId"], span["spanId"]


def to_otlp_json(
    spans_by_service: dict[str, tuple[ReadableSpan, ...]],
) -> dict[str, Any]:
    """Encode with the OTLP exporter's encoder, then rewrite as deterministic OTLP/JSON."""
    resource_spans: list[dict[str, Any]] = []
    for name in sorted(spans_by_service):
        request = MessageToDict(encode_spans(spans_by_service[name]), use_integers_for_enums=True)
        for entry in request.get("resourceSpans", []):
            for scope_spans in entry.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    fix_ids(span)
                scope_spans["spans"] = sorted(scope_spans.get("spans", []), key=span_sort_key)
            entry["scopeSpans"] = sorted(
                entry.get("scopeSpans", []),
                key=lambda s: str(s.get("scope", {}).get("name", "")),
            )
            resource_spans.append(entry)
    return {"resourceSpans": resource_spans}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument(
        "--requests", type=int, default=DEFAULT_REQUESTS, help="number of root requests"
    )
    args = parser.parse_args(argv)

    shop = Shop(args.seed)
    shop.run(args.requests)
    spans = shop.spans_by_service()
    for service in shop.services.values():
        service.provider.shutdown()
    document = to_otlp_json(spans)

    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=None, separators=(",", ":"), sort_keys=False)
        handle.write("\n")
    total = sum(len(s) for s in spans.values())
    print(f"wrote {total} spans from {len(spans)} services to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
