"""OpenTelemetry tracing: one prompt is one trace, from the gateway through chat, the outbox
relay and the ai-worker's call to Gemini back to chat.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: then nothing of OpenTelemetry's SDK is
imported and every function here returns at once. When on (:func:`configure_tracing`, at a
service's start), spans go to that endpoint over OTLP/HTTP (the exporter reads the other
``OTEL_EXPORTER_OTLP_*`` and ``OTEL_BSP_*`` variables), and:

- FastAPI (server spans, the W3C ``traceparent`` header read), aiohttp (client spans, the
  header sent: the gateway's forwarding, the ai-worker's Gemini calls), Redis and the Postgres
  pool's connections are instrumented;
- an event's envelope carries the trace context of the code that raised it
  (``traceContext``), so the consumer's span (:func:`consuming`) continues that trace, and the
  outbox relay's publish spans (:func:`publishing`) join it too;
- a trace starts only at an entry point (a request, an event consumed): the background loops'
  own polling (XREADGROUP, the relay's SELECT) would otherwise be a trace each;
- every log line written inside a span carries its ``trace_id`` (shared/logging.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from shared.version import __version__

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer
    from psycopg import AsyncConnection

log = structlog.get_logger(__name__)

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
# Requests no one follows: probes and scrapes.
UNTRACED_URLS = "/healthz$,/readyz$,/livez$,/metrics$"

_tracer: Tracer | None = None
# Paths whose last segment is a credential (a share link's token, chat's snapshot route and
# the gateway's page): client spans record them with the segment replaced.
_SECRET_PATHS = re.compile(r"(/(?:s|api/v1/shared)/)[^/?#]+")


def enabled() -> bool:
    return _tracer is not None


def configure_tracing(service: str, *, exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on for this process if ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (or an
    ``exporter`` is given: tests). Once per process, before the app and its clients are
    made (aiohttp sessions made earlier are not instrumented). Returns whether it is on."""
    global _tracer
    if _tracer is not None:
        return True
    if exporter is None and not os.environ.get(ENDPOINT_ENV):
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.version": __version__}),
        sampler=ParentBased(root=_entry_points()),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    AioHttpClientInstrumentor().instrument(url_filter=redacted_url)
    RedisInstrumentor().instrument()
    _tracer = trace.get_tracer("shared.tracing")
    log.info("tracing.enabled", endpoint=os.environ.get(ENDPOINT_ENV))
    return True


def redacted_url(url: object) -> str:
    """``url`` as a client span records it: a credential in its path replaced (see
    ``_SECRET_PATHS``)."""
    return _SECRET_PATHS.sub(r"\1{token}", str(url))


def _entry_points() -> Any:
    """The root sampler: a span without a parent starts a trace only if it is a server or a
    consumer span."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind

    class EntryPoints(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            keep = kind in (SpanKind.SERVER, SpanKind.CONSUMER)
            return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP)

        def get_description(self) -> str:
            return "EntryPoints"

    return EntryPoints()


# The headers that carry a trace context in, by the W3C (and the baggage beside it).
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def instrument_app(app: FastAPI, *, public: bool = False) -> None:
    """Server spans for ``app``'s requests (probes and /metrics left out; no span per ASGI
    send or receive, which an SSE stream would make by the hundred).

    ``public``: the app faces the internet (the gateway). A client's ``traceparent`` is then
    neither continued nor passed on: anyone could otherwise pick the trace ids of our spans,
    or send the "not sampled" flag and have their requests left out of every trace."""
    if _tracer is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=UNTRACED_URLS, exclude_spans=["receive", "send"]
    )
    if public:
        build = app.build_middleware_stack  # the instrumentor's: its middleware outermost

        def build_without_client_context() -> Any:
            return _WithoutTraceHeaders(build())

        app.build_middleware_stack = build_without_client_context  # type: ignore[method-assign]  # FastAPI has no hook for this


class _WithoutTraceHeaders:
    """ASGI middleware: the request's trace context headers dropped."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and any(
            name in TRACE_HEADERS for name, _ in scope["headers"]
        ):
            headers = [(n, v) for n, v in scope["headers"] if n not in TRACE_HEADERS]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


async def instrument_connection(conn: AsyncConnection) -> None:
    """A pool's ``configure`` callback: a span per statement on ``conn``."""
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    PsycopgInstrumentor.instrument_connection(conn)


def name_route(method: str, template: str) -> None:
    """Name the current server span after the route ``template`` the request matched: the
    gateway routes by its own table, behind one catch-all FastAPI route."""
    if _tracer is None:
        return
    from opentelemetry.trace import get_current_span

    current = get_current_span()
    current.update_name(f"{method} {template}")
    current.set_attribute("http.route", template)


def redact_url(template: str) -> None:
    """Replace the current server span's URL attributes (old and new conventions) with the
    route ``template``: the request's path holds a secret."""
    if _tracer is None:
        return
    from opentelemetry.trace import get_current_span

    current = get_current_span()
    for key in ("http.target", "http.url", "url.path", "url.full"):
        current.set_attribute(key, template)


def current_context() -> dict[str, str] | None:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``), for an
    event's envelope; None when off or outside any span."""
    if _tracer is None:
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier or None


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), for log lines."""
    if _tracer is None:
        return None
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _parent(carrier: Mapping[str, str] | None) -> Any:
    from opentelemetry.propagate import extract

    return extract(dict(carrier or {}))


def _messaging(operation: str, stream: str, **more: str) -> dict[str, str]:
    """The semantic-convention attributes of a span that sends or handles a stream entry."""
    return {
        "messaging.system": "redis",
        "messaging.operation.type": operation,
        "messaging.destination.name": stream,
        **more,
    }


@contextmanager
def consuming(
    carrier: Mapping[str, str] | None, *, event_type: str, event_id: str, stream: str, group: str
) -> Iterator[None]:
    """The span of one event handled by consumer ``group``: a child of the span that raised
    the event (its envelope's ``carrier``), or a trace of its own."""
    if _tracer is None:
        yield
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(
        f"{event_type} process",
        context=_parent(carrier),
        kind=SpanKind.CONSUMER,
        attributes=_messaging(
            "process",
            stream,
            **{"messaging.consumer.group.name": group, "messaging.message.id": event_id},
        ),
    ):
        yield


@contextmanager
def publishing(rows: Sequence[tuple[str, str, str]]) -> Iterator[None]:
    """Spans for the outbox relay's XADDs of ``rows`` (stream, event type, envelope JSON),
    each a child of the span that stored its event."""
    if _tracer is None:
        yield
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    spans: list[Span] = []
    for stream, type_, envelope in rows:
        carrier = orjson.loads(envelope).get("traceContext")
        spans.append(
            _tracer.start_span(
                f"{type_} publish",
                context=_parent(carrier),
                kind=SpanKind.PRODUCER,
                attributes=_messaging("send", stream),
            )
        )
    try:
        yield
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in spans:
            span.end()


@contextmanager
def span(name: str, attributes: Mapping[str, str | int | float] | None = None) -> Iterator[None]:
    """An internal span around a piece of work (the ai-worker's generation)."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=dict(attributes or {})):
        yield


def annotate(**attributes: str | int | float | None) -> None:
    """Attributes on the current span (None values left out)."""
    if _tracer is None:
        return
    from opentelemetry.trace import get_current_span

    get_current_span().set_attributes({k: v for k, v in attributes.items() if v is not None})


def failed(exc: BaseException) -> None:
    """Mark the current span failed by ``exc`` (a handler whose exception is caught)."""
    if _tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode, get_current_span

    current = get_current_span()
    current.record_exception(exc)
    current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
